//! Keys generated at test time and tokens minted from them, good and bad. Signing uses RustCrypto's
//! signers, independent of the verifier's code paths (PSS with a random salt, ECDSA raw r||s).

use std::sync::OnceLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rsa::pkcs1v15::SigningKey as RsaPkcs1Key;
use rsa::pss::BlindedSigningKey as RsaPssKey;
use rsa::signature::{RandomizedSigner, SignatureEncoding, Signer};
use rsa::traits::PublicKeyParts;
use rsa::RsaPrivateKey;
use serde_json::{json, Value};
use sha2::{Sha256, Sha384, Sha512};

pub const ISSUER: &str = "https://idp.example.com";
pub const AUDIENCE: &str = "claude-desktop";
pub const NOW: u64 = 1_800_000_000;

pub struct Keys {
    pub rsa: RsaPrivateKey,
    pub rsa_other: RsaPrivateKey,
    pub p256: p256::ecdsa::SigningKey,
    pub p384: p384::ecdsa::SigningKey,
    pub ed25519: ed25519_compact::KeyPair,
}

pub fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let mut rng = rand::thread_rng();
        Keys {
            rsa: RsaPrivateKey::new(&mut rng, 2048).unwrap(),
            rsa_other: RsaPrivateKey::new(&mut rng, 2048).unwrap(),
            p256: p256::ecdsa::SigningKey::random(&mut rng),
            p384: p384::ecdsa::SigningKey::random(&mut rng),
            ed25519: ed25519_compact::KeyPair::generate(),
        }
    })
}

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn rsa_jwk(key: &RsaPrivateKey, kid: &str) -> Value {
    json!({"kty": "RSA", "kid": kid, "use": "sig", "n": b64(&key.n().to_bytes_be()), "e": b64(&key.e().to_bytes_be())})
}

/// The JWKS every provider in the tests publishes: one key of each type, kids named for the type.
pub fn jwks() -> Value {
    let k = keys();
    let p256 = k.p256.verifying_key().to_encoded_point(false);
    let p384 = k.p384.verifying_key().to_encoded_point(false);
    json!({"keys": [
        rsa_jwk(&k.rsa, "rsa"),
        {"kty": "EC", "kid": "p256", "crv": "P-256", "alg": "ES256", "x": b64(p256.x().unwrap()), "y": b64(p256.y().unwrap())},
        {"kty": "EC", "kid": "p384", "crv": "P-384", "x": b64(p384.x().unwrap()), "y": b64(p384.y().unwrap())},
        {"kty": "OKP", "kid": "ed", "crv": "Ed25519", "x": b64(k.ed25519.pk.as_ref())},
    ]})
}

/// Claims of a token that every default provider in the tests accepts.
pub fn claims() -> Value {
    json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": "pairwise-sub", "oid": "00000000-0000-0000-0000-000000000001",
        "email": "ada@example.com", "name": "Ada Lovelace", "groups": ["eng", "ml"],
        "iat": NOW - 10, "nbf": NOW - 10, "exp": NOW + 3600,
    })
}

pub fn kid_for(alg: &str) -> &'static str {
    match alg {
        "ES256" => "p256",
        "ES384" => "p384",
        "EdDSA" => "ed",
        _ => "rsa",
    }
}

/// Signs `header.payload` with the test key that fits `alg`.
pub fn sign(alg: &str, input: &[u8]) -> Vec<u8> {
    let k = keys();
    let mut rng = rand::thread_rng();
    match alg {
        "RS256" => RsaPkcs1Key::<Sha256>::new(k.rsa.clone()).sign(input).to_vec(),
        "RS384" => RsaPkcs1Key::<Sha384>::new(k.rsa.clone()).sign(input).to_vec(),
        "RS512" => RsaPkcs1Key::<Sha512>::new(k.rsa.clone()).sign(input).to_vec(),
        "PS256" => RsaPssKey::<Sha256>::new(k.rsa.clone()).sign_with_rng(&mut rng, input).to_vec(),
        "PS384" => RsaPssKey::<Sha384>::new(k.rsa.clone()).sign_with_rng(&mut rng, input).to_vec(),
        "PS512" => RsaPssKey::<Sha512>::new(k.rsa.clone()).sign_with_rng(&mut rng, input).to_vec(),
        "ES256" => {
            let sig: p256::ecdsa::Signature = k.p256.sign(input);
            sig.to_bytes().to_vec()
        }
        "ES384" => {
            let sig: p384::ecdsa::Signature = k.p384.sign(input);
            sig.to_bytes().to_vec()
        }
        "EdDSA" => k.ed25519.sk.sign(input, None).to_vec(),
        other => panic!("no test key for {other}"),
    }
}

/// A compact JWS of `header` and `claims`, signed as `sign_alg` says (which may differ from the
/// header's `alg`, to forge).
pub fn mint_with(header: &Value, claims: &Value, sign_alg: &str) -> String {
    let input = format!("{}.{}", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()));
    let sig = sign(sign_alg, input.as_bytes());
    format!("{input}.{}", b64(&sig))
}

pub fn mint(alg: &str, claims: &Value) -> String {
    mint_with(&json!({"alg": alg, "typ": "JWT", "kid": kid_for(alg)}), claims, alg)
}

/// The default claims with some replaced (`null` removes a claim).
pub fn claims_with(changes: Value) -> Value {
    let mut c = claims();
    for (k, v) in changes.as_object().unwrap() {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = v.clone();
        }
    }
    c
}

/// A plugin configuration with one provider holding `jwks()` inline.
pub fn config_json() -> Value {
    json!({
        "providers": [{
            "name": "test-idp",
            "issuer": ISSUER,
            "audiences": [AUDIENCE, "other-app"],
            "jwks": {"inline": jwks().to_string()},
        }],
        "api_keys": [{"name": "ci-bot", "sha256": sha256_hex("sk-test-key"), "groups": ["bots", "ci"]}],
    })
}

pub fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// A token cache with the default limits, empty.
pub fn empty_cache() -> gateway_filter::token_cache::TokenCache {
    gateway_filter::token_cache::TokenCache::new(
        gateway_filter::config::CacheLimits { max_entries: 10_000, max_bytes: 1 << 24, max_seconds: 600 },
        [42; 16],
    )
}
