//! Published JWS examples: RFC 7515 Appendix A.3 (ES256), RFC 8037 Appendix A.4 (EdDSA) and
//! RFC 7520 §4.3 (ES512, which the filter does not support), with their public keys.

use crate::*;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use gateway_filter::crypto::{AlgorithmName, Curve};

fn b64(s: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(s).expect("base64url")
}

/// Splits a compact JWS into (signing input, signature).
fn split(jws: &str) -> (&[u8], Vec<u8>) {
    let dot = jws.rfind('.').expect("compact JWS");
    (&jws.as_bytes()[..dot], b64(&jws[dot + 1..]))
}

/// One bit flipped in every byte of the signature and in the first, a middle and the last byte of
/// the signing input: each must be refused.
fn assert_bit_flips_refused(key: &PublicKey, alg: Algorithm, input: &[u8], sig: &[u8]) {
    for i in 0..sig.len() {
        let mut bad = sig.to_vec();
        bad[i] ^= 1 << (i % 8);
        assert!(!key.verify(alg, input, &bad), "signature byte {i} flipped: accepted");
    }
    for i in [0, input.len() / 2, input.len() - 1] {
        let mut bad = input.to_vec();
        bad[i] ^= 1 << (i % 8);
        assert!(!key.verify(alg, &bad, sig), "signing input byte {i} flipped: accepted");
    }
}

/// The DER `ECDSA-Sig-Value` (RFC 3279 §2.2.3) of an `r || s` signature, what most ECDSA APIs emit.
fn der(sig: &[u8]) -> Vec<u8> {
    let integer = |v: &[u8]| {
        let v = &v[v.iter().take_while(|b| **b == 0).count()..];
        let pad = usize::from(v[0] & 0x80 != 0);
        let mut out = vec![0x02, (pad + v.len()) as u8];
        out.resize(out.len() + pad, 0);
        out.extend_from_slice(v);
        out
    };
    let (r, s) = sig.split_at(sig.len() / 2);
    let body = [integer(r), integer(s)].concat();
    [vec![0x30, body.len() as u8], body].concat()
}

const RFC7515_A3_X: &str = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
const RFC7515_A3_Y: &str = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";

const RFC7515_A3: &str = concat!(
    "eyJhbGciOiJFUzI1NiJ9",
    ".",
    "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFt",
    "cGxlLmNvbS9pc19yb290Ijp0cnVlfQ",
    ".",
    "DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSA",
    "pmWQxfKTUJqPP3-Kg6NU1Q",
);

const RFC8037_A4_X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";

const RFC8037_A4: &str = concat!(
    "eyJhbGciOiJFZERTQSJ9",
    ".",
    "RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc",
    ".",
    "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5B",
    "hVsPt9g7sVvpAr_MuM0KAg",
);

#[test]
fn rfc7515_a3_es256() {
    let key = PublicKey::ec(Curve::P256, &b64(RFC7515_A3_X), &b64(RFC7515_A3_Y)).expect("key");
    let (input, sig) = split(RFC7515_A3);
    assert_eq!(sig.len(), 64);
    assert!(key.verify(Algorithm::ES256, input, &sig));
    assert_other_algorithms_refuse(&key, Algorithm::ES256, input, &sig, "RFC 7515 A.3");
    assert_bit_flips_refused(&key, Algorithm::ES256, input, &sig);
    // The same signature in DER: not a JWS signature (RFC 7518 §3.4), refused.
    assert!(!key.verify(Algorithm::ES256, input, &der(&sig)));
    // Under the Ed25519 example's key, the ES256 example is refused whatever the algorithm.
    let other = PublicKey::ed25519(&b64(RFC8037_A4_X)).expect("key");
    assert!(Algorithm::ALL.iter().all(|alg| !other.verify(*alg, input, &sig)));
}

#[test]
fn rfc8037_a4_eddsa() {
    let key = PublicKey::ed25519(&b64(RFC8037_A4_X)).expect("key");
    let (input, sig) = split(RFC8037_A4);
    assert_eq!(sig.len(), 64);
    assert!(key.verify(Algorithm::EdDSA, input, &sig));
    assert_other_algorithms_refuse(&key, Algorithm::EdDSA, input, &sig, "RFC 8037 A.4");
    assert_bit_flips_refused(&key, Algorithm::EdDSA, input, &sig);
    let other = PublicKey::ec(Curve::P256, &b64(RFC7515_A3_X), &b64(RFC7515_A3_Y)).expect("key");
    assert!(Algorithm::ALL.iter().all(|alg| !other.verify(*alg, input, &sig)));
}

/// RFC 7520 §4.3 signs with ES512 (P-521), which the filter does not implement: the name must not
/// parse as a supported algorithm, so such a token is refused before any key is looked at.
#[test]
fn rfc7520_4_3_es512_unsupported() {
    assert_eq!(Algorithm::parse("ES512"), AlgorithmName::Unknown);
}
