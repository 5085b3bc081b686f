//! JWTs in JWS compact form (RFC 7515, RFC 7519): split and decode strictly, then verify the
//! signature with the provider's keys and check the registered claims against its policy.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{Map, Value};

use crate::config::Provider;
use crate::crypto::{Algorithm, AlgorithmName};
use crate::jwks::KeySet;
use crate::reason::AuthError;
use crate::strict_json;

/// A token whose structure is sound but whose signature and claims are not yet checked.
#[derive(Debug)]
pub struct UnverifiedToken<'a> {
    pub alg: Algorithm,
    pub kid: Option<String>,
    header: Map<String, Value>,
    claims: Map<String, Value>,
    /// `BASE64URL(header) . BASE64URL(payload)`: what the signature covers.
    signing_input: &'a [u8],
    signature: Vec<u8>,
}

/// Claims of a token that passed every check, and which key signed it.
#[derive(Debug)]
pub struct VerifiedClaims {
    pub claims: Map<String, Value>,
    pub key_fingerprint: u64,
}

impl VerifiedClaims {
    /// `exp` as whole seconds (verification guaranteed it is a number).
    pub fn expires_at(&self) -> u64 {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        numeric_date(&self.claims, "exp").ok().flatten().map_or(0, |exp| exp.max(0.0) as u64)
    }
}

/// Whether a credential is meant as a JWT: its first segment starts a JSON object (`eyJ...` in
/// practice). API keys and opaque tokens (Google's `ya29.` ones have dots too) do not.
pub fn looks_like_jwt(credential: &str) -> bool {
    let start = credential.get(..4).unwrap_or("");
    URL_SAFE_NO_PAD
        .decode(start)
        .is_ok_and(|bytes| bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{'))
}

pub fn parse(token: &str) -> Result<UnverifiedToken<'_>, AuthError> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::Malformed);
    };
    let header = decode_object(header)?;
    let alg = match header.get("alg") {
        Some(Value::String(name)) => match Algorithm::parse(name) {
            AlgorithmName::Supported(alg) => alg,
            AlgorithmName::Forbidden | AlgorithmName::Unknown => return Err(AuthError::AlgorithmNotAllowed),
        },
        _ => return Err(AuthError::Malformed),
    };
    // RFC 7515 §4.1.11: we understand no extension, so any critical one makes the token unusable.
    if header.contains_key("crit") {
        return Err(AuthError::Malformed);
    }
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(kid)) => Some(kid.clone()),
        Some(_) => return Err(AuthError::Malformed),
    };
    let claims = decode_object(payload)?;
    let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| AuthError::Malformed)?;
    let signing_input = token.get(..header_len(token)).ok_or(AuthError::Malformed)?.as_bytes();
    Ok(UnverifiedToken { alg, kid, header, claims, signing_input, signature })
}

/// Length of `header.payload` in the compact form (everything before the second dot).
fn header_len(token: &str) -> usize {
    token.rfind('.').unwrap_or(0)
}

fn decode_object(segment: &str) -> Result<Map<String, Value>, AuthError> {
    let bytes = URL_SAFE_NO_PAD.decode(segment).map_err(|_| AuthError::Malformed)?;
    strict_json::parse_object(&bytes).map_err(|_| AuthError::Malformed)
}

impl UnverifiedToken<'_> {
    /// The unverified `iss`: only used to pick which provider's keys to check the signature with.
    pub fn issuer(&self) -> Option<&str> {
        self.claims.get("iss").and_then(Value::as_str)
    }

    pub fn header_has(&self, name: &str) -> bool {
        self.header.contains_key(name)
    }

    pub fn has_claim(&self, name: &str) -> bool {
        self.claims.contains_key(name)
    }

    /// The unverified `aud` values (string or array), for diagnosing foreign tokens.
    pub fn audiences(&self) -> Vec<&str> {
        match self.claims.get("aud") {
            Some(Value::String(aud)) => vec![aud.as_str()],
            Some(Value::Array(auds)) => auds.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        }
    }

    /// Checks the token against `provider`, cheapest checks first, the signature last; the claims
    /// are only trusted once all of it passed.
    pub fn verify(self, provider: &Provider, keys: &KeySet, now: u64) -> Result<VerifiedClaims, AuthError> {
        if !provider.algorithms.contains(self.alg) {
            return Err(AuthError::AlgorithmNotAllowed);
        }
        check_times(&self.claims, now, provider.clock_skew_seconds)?;
        check_audience(&self.claims, &provider.audiences)?;
        let mut candidates = keys.candidates(self.kid.as_deref(), self.alg).peekable();
        if candidates.peek().is_none() {
            return Err(AuthError::KeyNotFound);
        }
        let signer = candidates
            .find(|jwk| jwk.key.verify(self.alg, self.signing_input, &self.signature))
            .ok_or(AuthError::BadSignature)?;
        Ok(VerifiedClaims { claims: self.claims, key_fingerprint: signer.fingerprint })
    }
}

/// `exp` is required; `exp`, `nbf` and `iat` are NumericDates (RFC 7519 §2: numbers, possibly
/// fractional) checked with `skew` seconds of leeway.
pub fn check_times(claims: &Map<String, Value>, now: u64, skew: u64) -> Result<(), AuthError> {
    #[allow(clippy::cast_precision_loss)]
    let (now, skew) = (now as f64, skew as f64);
    let exp = numeric_date(claims, "exp")?.ok_or(AuthError::NoExpiry)?;
    if now >= exp + skew {
        return Err(AuthError::Expired);
    }
    if let Some(nbf) = numeric_date(claims, "nbf")? {
        if now + skew < nbf {
            return Err(AuthError::NotYetValid);
        }
    }
    if let Some(iat) = numeric_date(claims, "iat")? {
        if now + skew < iat {
            return Err(AuthError::IssuedInFuture);
        }
    }
    Ok(())
}

pub fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<Option<f64>, AuthError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => n.as_f64().map(Some).ok_or(AuthError::Malformed),
        Some(_) => Err(AuthError::Malformed),
    }
}

/// `aud` is a string or an array of strings (RFC 7519 §4.1.3); one must be an accepted audience.
pub fn check_audience(claims: &Map<String, Value>, accepted: &[String]) -> Result<(), AuthError> {
    let accepted_one = |aud: &str| accepted.iter().any(|a| a == aud);
    match claims.get("aud") {
        Some(Value::String(aud)) if accepted_one(aud) => Ok(()),
        Some(Value::String(_)) | None => Err(AuthError::AudienceNotAllowed),
        Some(Value::Array(auds)) => {
            if auds.iter().any(|a| !a.is_string()) {
                return Err(AuthError::Malformed);
            }
            if auds.iter().filter_map(Value::as_str).any(accepted_one) {
                Ok(())
            } else {
                Err(AuthError::AudienceNotAllowed)
            }
        }
        Some(_) => Err(AuthError::Malformed),
    }
}
