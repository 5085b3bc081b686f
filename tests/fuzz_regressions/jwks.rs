//! `jwks::parse_jwks` on corner inputs the jwks target reached, with the exact outcome.

use gateway_filter::jwks::{parse_jwks, JwksError, SkippedKey, MAX_DOCUMENT_BYTES};
use serde_json::{json, Value};

use crate::harness::JWKS;

fn fixed() -> Vec<Value> {
    serde_json::from_str::<Value>(JWKS).unwrap()["keys"].as_array().unwrap().clone()
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Why the single key of `{"keys":[key, <the fixed Ed25519 key>]}` is skipped ("" when it is not).
fn skipped(key: Value) -> String {
    let doc = json!({"keys": [key, fixed()[2]]}).to_string();
    let (_, skipped) = parse_jwks(doc.as_bytes()).unwrap();
    skipped.into_iter().map(|s| s.reason).collect::<Vec<_>>().join("; ")
}

#[test]
fn documents_that_are_not_key_sets() {
    assert_eq!(parse_jwks(b"").unwrap_err(), JwksError::NotJson);
    assert_eq!(parse_jwks(b"\xef\xbb\xbf{\"keys\":[]}").unwrap_err(), JwksError::NotJson);
    assert_eq!(parse_jwks(b"{\"keys\":[]} {}").unwrap_err(), JwksError::NotJson);
    assert_eq!(parse_jwks(b"{\"keys\":[],\"keys\":[]}").unwrap_err(), JwksError::NotJson);
    assert_eq!(parse_jwks(b"{\"Keys\":[]}").unwrap_err(), JwksError::NoKeysArray);
    assert_eq!(parse_jwks(b"{\"keys\":null}").unwrap_err(), JwksError::NoKeysArray);
    assert_eq!(parse_jwks(b"{\"keys\":[1,\"x\",null,[]]}").unwrap_err(), JwksError::NoUsableKeys);
    let deep = format!("{{\"keys\":[{}{}]}}", "[".repeat(31), "]".repeat(31));
    assert_eq!(parse_jwks(deep.as_bytes()).unwrap_err(), JwksError::NotJson);
    let big = vec![b' '; MAX_DOCUMENT_BYTES + 1];
    assert_eq!(parse_jwks(&big).unwrap_err(), JwksError::TooLarge(MAX_DOCUMENT_BYTES + 1));
}

#[test]
fn entries_that_are_skipped_one_by_one() {
    let doc = json!({"keys": [1, {"kid": 5, "kty": "RSA"}, fixed()[1]]}).to_string();
    let (keys, skipped) = parse_jwks(doc.as_bytes()).unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(
        skipped,
        vec![
            SkippedKey { kid: None, reason: "not an object".into() },
            SkippedKey { kid: None, reason: "no \"n\"".into() },
        ]
    );
}

#[test]
fn key_members() {
    let [rsa, p256, ed] = <[Value; 3]>::try_from(fixed()).unwrap();
    let with = |key: &Value, member: &str, value: Value| {
        let mut key = key.clone();
        key[member] = value;
        key
    };
    assert_eq!(skipped(with(&rsa, "use", json!("enc"))), "\"use\" is not \"sig\"");
    assert_eq!(skipped(with(&rsa, "use", json!(["sig"]))), "\"use\" is not \"sig\"");
    assert_eq!(skipped(with(&rsa, "key_ops", json!("verify"))), "\"key_ops\" does not allow \"verify\"");
    assert_eq!(skipped(with(&rsa, "key_ops", json!(["sign", "verify"]))), "");
    assert_eq!(skipped(with(&rsa, "alg", json!(5))), "\"alg\" is not a string");
    assert_eq!(skipped(with(&rsa, "alg", json!("none"))), "unsupported \"alg\" none");
    assert_eq!(skipped(with(&rsa, "alg", json!("ES256"))), "\"alg\" ES256 does not fit the key type");
    assert_eq!(skipped(with(&rsa, "kty", json!("rsa"))), "unsupported \"kty\" rsa");
    assert_eq!(skipped(with(&rsa, "kty", json!("\u{1b}[31mX\ny z"))), "unsupported \"kty\" [31mXyz");
    assert_eq!(skipped(with(&rsa, "kty", json!(null))), "no \"kty\"");
    assert_eq!(
        skipped(with(&rsa, "n", json!(rsa["n"].as_str().unwrap().to_owned() + "="))),
        "\"n\" is not base64url"
    );
    assert_eq!(skipped(with(&p256, "crv", json!("P-521"))), "unsupported \"crv\"");
    assert_eq!(skipped(with(&p256, "alg", json!("ES384"))), "\"alg\" ES384 does not fit the key type");
    assert_eq!(skipped(with(&p256, "x", json!(b64(&[1; 32])))), "public key is not a valid curve point");
    assert_eq!(skipped(with(&p256, "y", json!(b64(&[0; 33])))), "public key is not a valid curve point");
    assert_eq!(skipped(with(&ed, "crv", json!("X25519"))), "unsupported \"crv\"");
    assert_eq!(skipped(with(&ed, "x", json!(b64(&[0; 31])))), "public key is not a valid curve point");
}

#[test]
fn rsa_limits() {
    let rsa = |n: &[u8], e: &[u8]| skipped(json!({"kty": "RSA", "n": b64(n), "e": b64(e)}));
    let mut n2048 = vec![0xc5u8; 256];
    n2048[255] |= 1;
    assert_eq!(rsa(&n2048, &[1, 0, 1]), "");
    // Leading zero bytes do not count towards the size.
    assert_eq!(rsa(&[&[0u8; 8][..], &n2048].concat(), &[0, 0, 1, 0, 1]), "");
    assert_eq!(rsa(&n2048[1..], &[1, 0, 1]), "RSA modulus of 2040 bits is under 2048");
    assert_eq!(rsa(&[&[1u8][..], &[0xc5; 512]].concat(), &[3]), "RSA modulus of 4097 bits is over 4096");
    assert_eq!(rsa(&[], &[1, 0, 1]), "RSA modulus of 0 bits is under 2048");
    let exponent = "RSA exponent is not an odd number from 3 to 2^32-1";
    assert_eq!(rsa(&n2048, &[]), exponent);
    assert_eq!(rsa(&n2048, &[1]), exponent);
    assert_eq!(rsa(&n2048, &[1, 0, 0]), exponent);
    assert_eq!(rsa(&n2048, &[3]), "");
    assert_eq!(rsa(&n2048, &[0, 0, 0, 0, 0, 1, 0, 1]), ""); // leading zeros do not count
    assert_eq!(rsa(&n2048, &[0xff, 0xff, 0xff, 0xff]), "");
    assert_eq!(rsa(&n2048, &[1, 0, 0, 0, 1]), exponent);
    let mut even = n2048.clone();
    even[255] &= 0xfe;
    assert_eq!(rsa(&even, &[1, 0, 1]), "RSA modulus is even");
}
