//! Turns a JWKS document (RFC 7517) into verifying keys. Unusable keys are skipped one by one with
//! a reason, so one odd key (an encryption key, an unknown curve) never takes the whole set down.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::crypto::{Algorithm, AlgorithmName, Curve, PublicKey};
use crate::strict_json;

/// Real JWKS documents are a few KiB (Entra's, with ~8 certificates, is ~10 KiB).
pub const MAX_DOCUMENT_BYTES: usize = 256 * 1024;
/// Providers publish 2–10 keys during rotation; more is abuse or misconfiguration.
pub const MAX_KEYS: usize = 64;
/// Keys a token without `kid` is tried against: each try of a forged token is a full signature
/// verification, so trying every key of its type would multiply the cost of a flood by the size
/// of the set. Providers that omit `kid` publish one key, or two during a rotation.
pub const MAX_KIDLESS_CANDIDATES: usize = 2;

#[derive(Debug)]
pub struct Jwk {
    pub kid: Option<String>,
    /// The JWK's own `alg`, when it names one: the key is then used for that algorithm only.
    pub alg: Option<Algorithm>,
    pub key: PublicKey,
    /// Identifies the key across fetches (its `kid` and public values): a verified token is
    /// remembered with the fingerprint of the key that signed it, and forgotten when that key goes.
    pub fingerprint: u64,
}

#[derive(Debug, Default)]
pub struct KeySet {
    keys: Vec<Jwk>,
}

/// A key left out of the set, for a warning in the log (`kid` is public, not secret).
#[derive(Debug, PartialEq, Eq)]
pub struct SkippedKey {
    pub kid: Option<String>,
    pub reason: String,
}

#[derive(Debug, PartialEq, Eq)]
pub enum JwksError {
    TooLarge(usize),
    NotJson,
    NoKeysArray,
    TooManyKeys(usize),
    NoUsableKeys,
}

impl std::fmt::Display for JwksError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JwksError::TooLarge(n) => {
                write!(f, "document of {n} bytes is over {MAX_DOCUMENT_BYTES}")
            }
            JwksError::NotJson => f.write_str("document is not a JSON object"),
            JwksError::NoKeysArray => f.write_str("document has no \"keys\" array"),
            JwksError::TooManyKeys(n) => write!(f, "{n} keys is over the limit of {MAX_KEYS}"),
            JwksError::NoUsableKeys => f.write_str("no usable signing key"),
        }
    }
}

impl KeySet {
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Keys that may have signed a token with this `kid` and `alg`: same `kid` when the token has
    /// one, a key type that fits `alg`, and no JWK `alg` that says otherwise. A token without
    /// `kid` gets the first `MAX_KIDLESS_CANDIDATES` of those, in JWKS order.
    pub fn candidates<'a>(
        &'a self,
        kid: Option<&'a str>,
        alg: Algorithm,
    ) -> impl Iterator<Item = &'a Jwk> + 'a {
        let limit = if kid.is_some() { MAX_KEYS } else { MAX_KIDLESS_CANDIDATES };
        self.keys
            .iter()
            .filter(move |jwk| kid.is_none() || jwk.kid.as_deref() == kid)
            .filter(move |jwk| jwk.alg.is_none_or(|own| own == alg) && jwk.key.fits(alg))
            .take(limit)
    }

    pub fn has_fingerprint(&self, fingerprint: u64) -> bool {
        self.keys.iter().any(|jwk| jwk.fingerprint == fingerprint)
    }
}

/// Parses a JWKS document; returns the usable keys and the ones skipped, with why.
pub fn parse_jwks(document: &[u8]) -> Result<(KeySet, Vec<SkippedKey>), JwksError> {
    if document.len() > MAX_DOCUMENT_BYTES {
        return Err(JwksError::TooLarge(document.len()));
    }
    let root = strict_json::parse_object(document).map_err(|_| JwksError::NotJson)?;
    let Some(Value::Array(entries)) = root.get("keys") else {
        return Err(JwksError::NoKeysArray);
    };
    if entries.len() > MAX_KEYS {
        return Err(JwksError::TooManyKeys(entries.len()));
    }
    let mut keys = Vec::new();
    let mut skipped = Vec::new();
    for entry in entries {
        let kid = entry.get("kid").and_then(Value::as_str).map(str::to_owned);
        match entry.as_object().ok_or_else(|| "not an object".to_owned()).and_then(parse_jwk) {
            Ok((alg, key, material)) => {
                let fingerprint = fingerprint(kid.as_deref(), &material);
                keys.push(Jwk { kid, alg, key, fingerprint });
            }
            Err(reason) => skipped.push(SkippedKey { kid, reason }),
        }
    }
    if keys.is_empty() {
        return Err(JwksError::NoUsableKeys);
    }
    Ok((KeySet { keys }, skipped))
}

/// A parsed JWK: its own `alg`, the key, and the public values it was built from.
type ParsedJwk = (Option<Algorithm>, PublicKey, Vec<u8>);

fn parse_jwk(jwk: &Map<String, Value>) -> Result<ParsedJwk, String> {
    if let Some(use_) = jwk.get("use") {
        if use_ != "sig" {
            return Err("\"use\" is not \"sig\"".into());
        }
    }
    if let Some(ops) = jwk.get("key_ops") {
        let allows_verify = ops.as_array().is_some_and(|ops| ops.iter().any(|op| op == "verify"));
        if !allows_verify {
            return Err("\"key_ops\" does not allow \"verify\"".into());
        }
    }
    let alg = match jwk.get("alg") {
        None => None,
        Some(Value::String(name)) => match Algorithm::parse(name) {
            AlgorithmName::Supported(alg) => Some(alg),
            _ => return Err(format!("unsupported \"alg\" {}", printable(name))),
        },
        Some(_) => return Err("\"alg\" is not a string".into()),
    };
    let kty = jwk.get("kty").and_then(Value::as_str).ok_or("no \"kty\"")?;
    let mut material = kty.as_bytes().to_vec();
    let mut take = |name: &str| -> Result<Vec<u8>, String> {
        let bytes = member(jwk, name)?;
        material.push(0);
        material.extend_from_slice(&bytes);
        Ok(bytes)
    };
    let key = match kty {
        "RSA" => PublicKey::rsa(&take("n")?, &take("e")?),
        "EC" => {
            let curve = match jwk.get("crv").and_then(Value::as_str) {
                Some("P-256") => Curve::P256,
                Some("P-384") => Curve::P384,
                _ => return Err("unsupported \"crv\"".into()),
            };
            PublicKey::ec(curve, &take("x")?, &take("y")?)
        }
        "OKP" => match jwk.get("crv").and_then(Value::as_str) {
            Some("Ed25519") => PublicKey::ed25519(&take("x")?),
            _ => return Err("unsupported \"crv\"".into()),
        },
        other => return Err(format!("unsupported \"kty\" {}", printable(other))),
    }
    .map_err(|e| e.to_string())?;
    if let Some(alg) = alg {
        if !key.fits(alg) {
            return Err(format!("\"alg\" {} does not fit the key type", alg.name()));
        }
    }
    Ok((alg, key, material))
}

/// First 8 bytes of SHA-256 over `kid` and the key's public values.
fn fingerprint(kid: Option<&str>, material: &[u8]) -> u64 {
    let mut hasher = Sha256::new();
    hasher.update(kid.unwrap_or("").as_bytes());
    hasher.update([0xff]);
    hasher.update(material);
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(digest.get(..8).unwrap_or(&[0; 8]));
    u64::from_le_bytes(first)
}

/// A base64url member such as `n` or `x`, decoded strictly (no padding, no stray bits).
fn member(jwk: &Map<String, Value>, name: &str) -> Result<Vec<u8>, String> {
    let text = jwk.get(name).and_then(Value::as_str).ok_or_else(|| format!("no \"{name}\""))?;
    URL_SAFE_NO_PAD.decode(text).map_err(|_| format!("\"{name}\" is not base64url"))
}

/// Echoes a short, printable excerpt of an untrusted string for a log line.
fn printable(text: &str) -> String {
    text.chars().filter(|c| c.is_ascii_graphic()).take(32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const P256_X: &str = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
    const P256_Y: &str = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";

    fn ec(kid: &str) -> Value {
        serde_json::json!({"kty": "EC", "crv": "P-256", "kid": kid, "x": P256_X, "y": P256_Y})
    }

    fn parse(keys: Vec<Value>) -> Result<(KeySet, Vec<SkippedKey>), JwksError> {
        parse_jwks(serde_json::json!({ "keys": keys }).to_string().as_bytes())
    }

    #[test]
    fn unusable_keys_are_skipped_one_by_one() {
        let mut enc = ec("enc");
        enc["use"] = "enc".into();
        let mut ops = ec("ops");
        ops["key_ops"] = serde_json::json!(["encrypt"]);
        let mut bad_b64 = ec("b64");
        bad_b64["x"] = "not base64!".into();
        let mut crv = ec("crv");
        crv["crv"] = "P-521".into();
        let small_rsa =
            serde_json::json!({"kty": "RSA", "kid": "small", "n": "AQAB".repeat(40), "e": "AQAB"});
        let oct = serde_json::json!({"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"});
        let (keys, skipped) = parse(vec![ec("good"), enc, ops, bad_b64, crv, small_rsa, oct]).unwrap();
        assert_eq!(keys.len(), 1);
        let reasons: Vec<(Option<&str>, &str)> =
            skipped.iter().map(|s| (s.kid.as_deref(), s.reason.as_str())).collect();
        assert_eq!(
            reasons,
            vec![
                (Some("enc"), "\"use\" is not \"sig\""),
                (Some("ops"), "\"key_ops\" does not allow \"verify\""),
                (Some("b64"), "\"x\" is not base64url"),
                (Some("crv"), "unsupported \"crv\""),
                (Some("small"), "RSA modulus of 953 bits is under 2048"),
                (Some("hmac"), "unsupported \"kty\" oct"),
            ]
        );
    }

    #[test]
    fn limits_on_documents() {
        let at_limit: Vec<Value> = (0..MAX_KEYS).map(|i| ec(&format!("k{i}"))).collect();
        assert_eq!(parse(at_limit).unwrap().0.len(), MAX_KEYS);
        let over: Vec<Value> = (0..=MAX_KEYS).map(|i| ec(&format!("k{i}"))).collect();
        assert_eq!(parse(over).unwrap_err(), JwksError::TooManyKeys(MAX_KEYS + 1));
        let padded = format!("{{\"keys\":[{}],\"pad\":\"{}\"}}", ec("k"), "x".repeat(MAX_DOCUMENT_BYTES));
        assert_eq!(parse_jwks(padded.as_bytes()).unwrap_err(), JwksError::TooLarge(padded.len()));
        assert_eq!(parse_jwks(b"[]").unwrap_err(), JwksError::NotJson);
        assert_eq!(parse_jwks(b"{\"keys\":{}}").unwrap_err(), JwksError::NoKeysArray);
        assert_eq!(parse(vec![]).unwrap_err(), JwksError::NoUsableKeys);
    }

    #[test]
    fn fingerprints_follow_kid_and_key() {
        let (a, _) = parse(vec![ec("a"), ec("b")]).unwrap();
        let (again, _) = parse(vec![ec("a")]).unwrap();
        let fingerprints: Vec<u64> = a.keys.iter().map(|k| k.fingerprint).collect();
        assert_ne!(fingerprints[0], fingerprints[1], "same key, other kid");
        assert!(a.has_fingerprint(again.keys[0].fingerprint), "stable across fetches");
    }
}
