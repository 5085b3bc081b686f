//! Every token outcome, with the exact reason.

use gateway_filter::config::{parse_config, Config, Provider};
use gateway_filter::jwks::{parse_jwks, KeySet};
use gateway_filter::reason::AuthError;
use gateway_filter::token::{self, VerifiedClaims};
use serde_json::{json, Value};

use crate::fixtures::*;

fn setup() -> (Config, KeySet) {
    let config = parse_config(&config_json()).unwrap();
    let (keys, skipped) = parse_jwks(jwks().to_string().as_bytes()).unwrap();
    assert!(skipped.is_empty());
    (config, keys)
}

fn provider(config: &Config) -> &Provider {
    &config.providers[0]
}

fn verify_at(token: &str, now: u64) -> Result<VerifiedClaims, AuthError> {
    let (config, keys) = setup();
    token::parse(token)?.verify(provider(&config), &keys, now)
}

fn verify(token: &str) -> Result<VerifiedClaims, AuthError> {
    verify_at(token, NOW)
}

fn reason(token: &str) -> AuthError {
    verify(token).unwrap_err()
}

#[test]
fn every_algorithm_verifies() {
    for alg in ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"] {
        let claims = verify(&mint(alg, &claims())).unwrap_or_else(|e| panic!("{alg}: {e}"));
        assert_eq!(claims.claims["email"], "ada@example.com", "{alg}");
    }
}

#[test]
fn times_with_skew() {
    // Default skew: 60 s.
    let expired_inside_skew = claims_with(json!({"exp": NOW - 30}));
    assert!(verify(&mint("RS256", &expired_inside_skew)).is_ok());
    let expired = claims_with(json!({"exp": NOW - 60}));
    assert_eq!(reason(&mint("RS256", &expired)), AuthError::Expired);
    let not_yet_inside_skew = claims_with(json!({"nbf": NOW + 30}));
    assert!(verify(&mint("RS256", &not_yet_inside_skew)).is_ok());
    let not_yet = claims_with(json!({"nbf": NOW + 61}));
    assert_eq!(reason(&mint("RS256", &not_yet)), AuthError::NotYetValid);
    let issued_later = claims_with(json!({"iat": NOW + 61}));
    assert_eq!(reason(&mint("RS256", &issued_later)), AuthError::IssuedInFuture);
    let no_exp = claims_with(json!({"exp": null}));
    assert_eq!(reason(&mint("RS256", &no_exp)), AuthError::NoExpiry);
    let fractional = claims_with(json!({"exp": (NOW as f64) + 0.5 - 60.0}));
    assert!(verify(&mint("RS256", &fractional)).is_ok());
}

#[test]
fn time_claims_must_be_numbers() {
    for bad in [json!({"exp": "1800003600"}), json!({"nbf": true}), json!({"iat": [1]})] {
        assert_eq!(reason(&mint("RS256", &claims_with(bad.clone()))), AuthError::Malformed, "{bad}");
    }
    let far_future = claims_with(json!({"exp": 1e300}));
    assert!(verify(&mint("RS256", &far_future)).is_ok());
    let negative = claims_with(json!({"exp": -1}));
    assert_eq!(reason(&mint("RS256", &negative)), AuthError::Expired);
}

#[test]
fn audience_string_or_array() {
    assert!(verify(&mint("RS256", &claims_with(json!({"aud": "other-app"})))).is_ok());
    assert!(verify(&mint("RS256", &claims_with(json!({"aud": ["x", "claude-desktop"]})))).is_ok());
    assert_eq!(reason(&mint("RS256", &claims_with(json!({"aud": "x"})))), AuthError::AudienceNotAllowed);
    assert_eq!(
        reason(&mint("RS256", &claims_with(json!({"aud": ["x", "y"]})))),
        AuthError::AudienceNotAllowed
    );
    assert_eq!(reason(&mint("RS256", &claims_with(json!({"aud": []})))), AuthError::AudienceNotAllowed);
    assert_eq!(reason(&mint("RS256", &claims_with(json!({"aud": null})))), AuthError::AudienceNotAllowed);
    assert_eq!(reason(&mint("RS256", &claims_with(json!({"aud": 7})))), AuthError::Malformed);
    assert_eq!(
        reason(&mint("RS256", &claims_with(json!({"aud": ["claude-desktop", 7]})))),
        AuthError::Malformed
    );
    // Audience matching is exact: no prefix, case or trailing-slash leniency.
    assert_eq!(
        reason(&mint("RS256", &claims_with(json!({"aud": "Claude-Desktop"})))),
        AuthError::AudienceNotAllowed
    );
}

#[test]
fn issuer_is_read_for_provider_selection() {
    let token = mint("RS256", &claims_with(json!({"iss": "https://evil.example.com"})));
    assert_eq!(token::parse(&token).unwrap().issuer(), Some("https://evil.example.com"));
    let token = mint("RS256", &claims_with(json!({"iss": null})));
    assert_eq!(token::parse(&token).unwrap().issuer(), None);
}

#[test]
fn key_selection() {
    let unknown_kid = mint_with(&json!({"alg": "RS256", "kid": "rotated-away"}), &claims(), "RS256");
    assert_eq!(reason(&unknown_kid), AuthError::KeyNotFound);
    // No kid: the keys that fit the algorithm are tried (the first two: see below).
    for alg in ["RS256", "PS384", "ES256", "ES384", "EdDSA"] {
        let no_kid = mint_with(&json!({"alg": alg}), &claims(), alg);
        assert!(verify(&no_kid).is_ok(), "{alg}");
    }
    // A kid naming a key of another type is not used: RS256 token pointing at the P-256 key.
    let wrong_type = mint_with(&json!({"alg": "RS256", "kid": "p256"}), &claims(), "RS256");
    assert_eq!(reason(&wrong_type), AuthError::KeyNotFound);
    // A JWK's own alg binds the key: with alg RS384 on the RSA key, an RS256 token finds no key.
    let (config, _) = setup();
    let mut set = jwks();
    set["keys"][0]["alg"] = json!("RS384");
    let (keys, skipped) = parse_jwks(set.to_string().as_bytes()).unwrap();
    assert!(skipped.is_empty());
    let verify_with = |token: &str| token::parse(token).unwrap().verify(provider(&config), &keys, NOW);
    assert_eq!(verify_with(&mint("RS256", &claims())).unwrap_err(), AuthError::KeyNotFound);
    assert!(verify_with(&mint("RS384", &claims())).is_ok());
    // A JWK whose alg does not fit its own key type is skipped when the set is read.
    let mut set = jwks();
    set["keys"][1]["alg"] = json!("ES384");
    let (keys, skipped) = parse_jwks(set.to_string().as_bytes()).unwrap();
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0].kid.as_deref(), Some("p256"));
    let outcome = token::parse(&mint("ES256", &claims())).unwrap().verify(provider(&config), &keys, NOW);
    assert_eq!(outcome.unwrap_err(), AuthError::KeyNotFound);
}

/// A token without `kid` is tried against the first two keys of its algorithm in JWKS order, no
/// more: signed by the third, it is refused as a bad signature; keys of other types and keys
/// whose JWK `alg` is another do not count.
#[test]
fn kidless_token_tries_at_most_two_keys() {
    let (config, _) = setup();
    let k = keys();
    let p256 = jwks()["keys"][1].clone();
    let verify_with = |set: Value, token: &str| {
        let (keys, skipped) = parse_jwks(set.to_string().as_bytes()).unwrap();
        assert!(skipped.is_empty());
        token::parse(token).unwrap().verify(provider(&config), &keys, NOW)
    };
    let no_kid = mint_with(&json!({"alg": "RS256"}), &claims(), "RS256");
    // The signer (`k.rsa`) third among the RSA keys, behind two others.
    let third = json!({"keys": [
        rsa_jwk(&k.rsa_other, "a"), p256, rsa_jwk(&k.rsa_other, "b"), rsa_jwk(&k.rsa, "c"),
    ]});
    assert_eq!(verify_with(third.clone(), &no_kid).unwrap_err(), AuthError::BadSignature);
    // With its kid the same token finds the key.
    let with_kid = mint_with(&json!({"alg": "RS256", "kid": "c"}), &claims(), "RS256");
    assert!(verify_with(third, &with_kid).is_ok());
    // Second among the RSA keys (third in the set): tried, verified.
    let second = json!({"keys": [
        rsa_jwk(&k.rsa_other, "a"), p256, rsa_jwk(&k.rsa, "b"), rsa_jwk(&k.rsa_other, "c"),
    ]});
    assert!(verify_with(second, &no_kid).is_ok());
    // A key bound to RS384 by its JWK `alg` is not a candidate, so the signer is second again.
    let mut bound = rsa_jwk(&k.rsa_other, "a");
    bound["alg"] = json!("RS384");
    let skipping = json!({"keys": [
        bound, rsa_jwk(&k.rsa_other, "b"), rsa_jwk(&k.rsa, "c"),
    ]});
    assert!(verify_with(skipping, &no_kid).is_ok());
}

#[test]
fn forbidden_algorithms() {
    let payload = b64(claims().to_string().as_bytes());
    let none = format!("{}.{payload}.", b64(br#"{"alg":"none","typ":"JWT"}"#));
    assert_eq!(reason(&none), AuthError::AlgorithmNotAllowed);
    // The classic confusion attack: HS256 keyed with the RSA public key's bytes.
    let header = b64(br#"{"alg":"HS256","kid":"rsa"}"#);
    let forged = format!("{header}.{payload}.{}", b64(&[0u8; 32]));
    assert_eq!(reason(&forged), AuthError::AlgorithmNotAllowed);
    let unknown = format!("{}.{payload}.{}", b64(br#"{"alg":"ES512"}"#), b64(&[1; 132]));
    assert_eq!(reason(&unknown), AuthError::AlgorithmNotAllowed);
}

#[test]
fn algorithm_outside_the_providers_list() {
    let mut config = config_json();
    config["providers"][0]["algorithms"] = json!(["ES256"]);
    let config = parse_config(&config).unwrap();
    let (keys, _) = parse_jwks(jwks().to_string().as_bytes()).unwrap();
    let token = mint("RS256", &claims());
    let outcome = token::parse(&token).unwrap().verify(&config.providers[0], &keys, NOW);
    assert_eq!(outcome.unwrap_err(), AuthError::AlgorithmNotAllowed);
}

#[test]
fn tampering() {
    let token = mint("RS256", &claims());
    let parts: Vec<&str> = token.split('.').collect();
    let evil = b64(claims_with(json!({"sub": "admin", "oid": "admin"})).to_string().as_bytes());
    assert_eq!(reason(&format!("{}.{evil}.{}", parts[0], parts[2])), AuthError::BadSignature);
    // Flipped bit in the signature.
    let mut sig =
        base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, parts[2]).unwrap();
    sig[10] ^= 1;
    assert_eq!(reason(&format!("{}.{}.{}", parts[0], parts[1], b64(&sig))), AuthError::BadSignature);
    // Truncated signature.
    assert_eq!(reason(&format!("{}.{}.{}", parts[0], parts[1], b64(&sig[..255]))), AuthError::BadSignature);
    // Empty signature.
    assert_eq!(reason(&format!("{}.{}.", parts[0], parts[1])), AuthError::BadSignature);
    // Signed by another RSA key with the same kid.
    let input = format!("{}.{}", parts[0], parts[1]);
    let other = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(keys().rsa_other.clone());
    let other_sig =
        rsa::signature::SignatureEncoding::to_vec(&rsa::signature::Signer::sign(&other, input.as_bytes()));
    assert_eq!(reason(&format!("{input}.{}", b64(&other_sig))), AuthError::BadSignature);
    // PS256 signature presented as RS256.
    let ps = mint_with(&json!({"alg": "RS256", "kid": "rsa"}), &claims(), "PS256");
    assert_eq!(reason(&ps), AuthError::BadSignature);
}

#[test]
fn ecdsa_signature_in_der_is_refused() {
    let header = b64(br#"{"alg":"ES256","kid":"p256"}"#);
    let input = format!("{header}.{}", b64(claims().to_string().as_bytes()));
    let sig: p256::ecdsa::Signature = rsa::signature::Signer::sign(&keys().p256, input.as_bytes());
    let der = sig.to_der();
    assert_eq!(reason(&format!("{input}.{}", b64(der.as_bytes()))), AuthError::BadSignature);
    assert!(verify(&format!("{input}.{}", b64(&sig.to_bytes()))).is_ok());
}

#[test]
fn structure() {
    let token = mint("RS256", &claims());
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(reason(&format!("{}.{}", parts[0], parts[1])), AuthError::Malformed);
    assert_eq!(reason(&format!("{token}.{}", parts[2])), AuthError::Malformed);
    assert_eq!(reason(""), AuthError::Malformed);
    assert_eq!(reason(".."), AuthError::Malformed);
    // Header or payload JSON that is not an object.
    let array = b64(b"[1,2]");
    assert_eq!(reason(&format!("{array}.{}.{}", parts[1], parts[2])), AuthError::Malformed);
    assert_eq!(reason(&format!("{}.{array}.{}", parts[0], parts[2])), AuthError::Malformed);
    assert_eq!(reason(&format!("{}.{}.{}", parts[0], b64(b"\"x\""), parts[2])), AuthError::Malformed);
    // Not base64url: standard alphabet, padding, whitespace.
    assert_eq!(reason(&format!("{}=.{}.{}", parts[0], parts[1], parts[2])), AuthError::Malformed);
    assert_eq!(reason(&format!("{}.{}.{}+/", parts[0], parts[1], parts[2])), AuthError::Malformed);
    assert_eq!(reason(&format!("{}.{} .{}", parts[0], parts[1], parts[2])), AuthError::Malformed);
    // Header without alg, kid that is not a string, a critical extension.
    let no_alg = mint_with(&json!({"kid": "rsa"}), &claims(), "RS256");
    assert_eq!(reason(&no_alg), AuthError::Malformed);
    let numeric_kid = mint_with(&json!({"alg": "RS256", "kid": 1}), &claims(), "RS256");
    assert_eq!(reason(&numeric_kid), AuthError::Malformed);
    let crit =
        mint_with(&json!({"alg": "RS256", "kid": "rsa", "crit": ["exp"], "exp": 1}), &claims(), "RS256");
    assert_eq!(reason(&crit), AuthError::Malformed);
}

#[test]
fn duplicate_claims_are_refused() {
    let header = b64(br#"{"alg":"RS256","kid":"rsa"}"#);
    let text = claims().to_string();
    let dup = format!("{{\"sub\":\"admin\",{}", &text[1..]);
    let input = format!("{header}.{}", b64(dup.as_bytes()));
    let token = format!("{input}.{}", b64(&sign("RS256", input.as_bytes())));
    assert_eq!(reason(&token), AuthError::Malformed);
}

#[test]
fn non_canonical_trailing_bits_are_refused() {
    let token = mint("RS256", &claims());
    let parts: Vec<&str> = token.split('.').collect();
    // 256-byte signature: 342 base64 chars, the last carrying 2 unused bits. Setting them changes
    // the text but not the bytes: strict decoding must refuse it.
    let last = parts[2].chars().last().unwrap();
    let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let index = alphabet.find(last).unwrap();
    assert_eq!(index % 16, 0, "a 2048-bit signature leaves 4 spare bits in its last character");
    let altered = alphabet.chars().nth(index + 1).unwrap();
    let sig = format!("{}{altered}", &parts[2][..parts[2].len() - 1]);
    assert_eq!(reason(&format!("{}.{}.{sig}", parts[0], parts[1])), AuthError::Malformed);
}
