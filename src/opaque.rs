//! Opaque access tokens (Google's, Okta's or Keycloak's non-JWT tokens): asked of the provider by
//! RFC 7662 introspection or Google's tokeninfo, with answers cached by a digest of the token and
//! the calls bounded, so a flood of random credentials cannot become a flood of calls.

use std::collections::{HashMap, HashSet};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{Map, Value};

use crate::config::{OpaqueStyle, OpaqueTokens, Provider};
use crate::identity::Identity;
use crate::policy::{self, Source};
use crate::reason::AuthError;
use crate::strict_json;
use crate::token::check_audience;

/// How long a refusal is remembered: long enough to absorb retries of a bad token.
pub const NEGATIVE_CACHE_SECONDS: u64 = 60;
/// Entries per VM: about 1 KiB each, so the cache stays under ~10 MiB.
pub const MAX_CACHE_ENTRIES: usize = 10_000;
/// Introspection answers are a few hundred bytes.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// SHA-256 of a credential (`api_keys::digest`): what answers are cached and calls joined by.
pub type Digest = [u8; 32];

/// Google's access tokens start `ya29.`; anything else is not one, and is never sent to tokeninfo.
const GOOGLE_ACCESS_TOKEN_PREFIX: &str = "ya29.";

/// Whether `credential` may be sent to `provider`'s endpoint: any bearer token to an RFC 7662
/// introspection endpoint (the operator's own IdP), only Google-shaped ones to Google's tokeninfo.
pub fn may_ask(provider: &Provider, credential: &str) -> bool {
    match provider.opaque_tokens.as_ref().map(|o| o.style) {
        Some(OpaqueStyle::Rfc7662) => true,
        Some(OpaqueStyle::GoogleTokeninfo) => credential.starts_with(GOOGLE_ACCESS_TOKEN_PREFIX),
        None => false,
    }
}

/// A POST to the introspection endpoint: the token travels in the form body, never in the URL.
pub struct IntrospectionCall {
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

pub fn build_call(opaque: &OpaqueTokens, token: &str) -> IntrospectionCall {
    let mut headers = vec![
        (":method", "POST".to_owned()),
        (":path", opaque.uri.path.clone()),
        (":authority", opaque.uri.authority.clone()),
        (":scheme", opaque.uri.scheme.to_owned()),
        ("content-type", "application/x-www-form-urlencoded".to_owned()),
        ("accept", "application/json".to_owned()),
    ];
    let body = match opaque.style {
        OpaqueStyle::GoogleTokeninfo => format!("access_token={}", form_encode(token)),
        OpaqueStyle::Rfc7662 => {
            let mut body = format!("token={}&token_type_hint=access_token", form_encode(token));
            match (&opaque.client_id, &opaque.client_secret) {
                // RFC 6749 §2.3.1: both parts form-encoded before Basic encoding.
                (Some(id), Some(secret)) => {
                    let pair = format!("{}:{}", form_encode(id), form_encode(&secret.0));
                    headers.push(("authorization", format!("Basic {}", STANDARD.encode(pair))));
                }
                (Some(id), None) => body.push_str(&format!("&client_id={}", form_encode(id))),
                _ => {}
            }
            body
        }
    };
    IntrospectionCall { headers, body }
}

/// `application/x-www-form-urlencoded` for one value: everything but unreserved characters escaped.
fn form_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// What the endpoint's answer means.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// A verdict on the token, remembered until `expires_at`.
    Verdict { outcome: Result<Identity, AuthError>, expires_at: u64 },
    /// The endpoint failed: nothing is remembered, the request gets a 503.
    Failed(CallFailure),
}

/// Why an introspection call gave no verdict (the operator's log says it; the client gets a 503).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallFailure {
    /// The endpoint answered with this status.
    Status(u32),
    /// A timeout or a connection failure.
    NoResponse,
    /// The answer's size in bytes, over `MAX_ANSWER_BYTES`.
    TooLarge(usize),
    NotJsonObject,
    /// The host refused to dispatch the call (no such cluster, say).
    NotDispatched,
    /// The request that made the call went away; the host cancels its calls.
    RequestEnded,
}

impl std::fmt::Display for CallFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallFailure::Status(status) => write!(f, "status {status}"),
            CallFailure::NoResponse => f.write_str("no response (timeout or connection failure)"),
            CallFailure::TooLarge(size) => write!(f, "answer of {size} bytes is over {MAX_ANSWER_BYTES}"),
            CallFailure::NotJsonObject => f.write_str("answer is not a JSON object"),
            CallFailure::NotDispatched => f.write_str("call not dispatched"),
            CallFailure::RequestEnded => f.write_str("request ended"),
        }
    }
}

pub fn evaluate(
    provider: &Provider,
    opaque: &OpaqueTokens,
    status: Option<u32>,
    body: &[u8],
    now: u64,
) -> Answer {
    let refused = |reason| Answer::Verdict {
        outcome: Err(reason),
        expires_at: now.saturating_add(NEGATIVE_CACHE_SECONDS),
    };
    match (opaque.style, status) {
        (_, Some(200)) => {}
        // tokeninfo answers 400 `invalid_token` for tokens it does not know or that expired.
        (OpaqueStyle::GoogleTokeninfo, Some(400)) => return refused(AuthError::TokenInactive),
        (_, Some(status)) => return Answer::Failed(CallFailure::Status(status)),
        (_, None) => return Answer::Failed(CallFailure::NoResponse),
    }
    if body.len() > MAX_ANSWER_BYTES {
        return Answer::Failed(CallFailure::TooLarge(body.len()));
    }
    let Ok(answer) = strict_json::parse_object(body) else {
        return Answer::Failed(CallFailure::NotJsonObject);
    };
    if opaque.style == OpaqueStyle::Rfc7662 && answer.get("active") != Some(&Value::Bool(true)) {
        return refused(AuthError::TokenInactive);
    }
    match check_answer(&answer, provider, opaque.style, now) {
        Ok((identity, exp)) => {
            let cap = now.saturating_add(opaque.cache_seconds);
            Answer::Verdict { outcome: Ok(identity), expires_at: cap.min(exp) }
        }
        Err(reason) => refused(reason),
    }
}

/// The checks of the contract, in order; returns the identity and the token's expiry.
fn check_answer(
    answer: &Map<String, Value>,
    provider: &Provider,
    style: OpaqueStyle,
    now: u64,
) -> Result<(Identity, u64), AuthError> {
    let exp = match (number(answer.get("exp")), style) {
        (Some(exp), _) => exp,
        // tokeninfo may give only the seconds left.
        (None, OpaqueStyle::GoogleTokeninfo) => {
            number(answer.get("expires_in")).ok_or(AuthError::NoExpiry)? + to_f64(now)
        }
        (None, OpaqueStyle::Rfc7662) => return Err(AuthError::NoExpiry),
    };
    if to_f64(now) >= exp + to_f64(provider.clock_skew_seconds) {
        return Err(AuthError::Expired);
    }
    let audience_ok = check_audience(answer, &provider.audiences).is_ok()
        || ["client_id", "azp"]
            .iter()
            .filter_map(|k| answer.get(*k).and_then(Value::as_str))
            .any(|id| provider.audiences.iter().any(|a| a == id));
    if !audience_ok {
        return Err(AuthError::AudienceNotAllowed);
    }
    let identity = policy::admit(answer, provider, Source::Introspection)?;
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let exp = exp.max(0.0).min(u64::MAX as f64) as u64;
    Ok((identity, exp))
}

/// A number, or a string holding one (tokeninfo sends `"exp": "1700000000"`).
fn number(value: Option<&Value>) -> Option<f64> {
    match value? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse::<f64>().ok().filter(|n| n.is_finite()),
        _ => None,
    }
}

#[allow(clippy::cast_precision_loss)]
fn to_f64(n: u64) -> f64 {
    n as f64
}

pub enum Lookup {
    Hit(Result<Identity, AuthError>),
    /// Another request already asked about this token: wait for that answer.
    InFlight,
    Miss,
}

/// Per-VM state: cached verdicts, calls in flight, and a token bucket for new calls.
#[derive(Default)]
pub struct OpaqueState {
    cache: HashMap<Digest, (Result<Identity, AuthError>, u64)>,
    in_flight: HashSet<Digest>,
    tokens: u64,
    refilled_at: u64,
}

impl OpaqueState {
    pub fn lookup(&self, digest: &Digest, now: u64) -> Lookup {
        match self.cache.get(digest) {
            Some((outcome, expires_at)) if now < *expires_at => Lookup::Hit(outcome.clone()),
            _ if self.in_flight.contains(digest) => Lookup::InFlight,
            _ => Lookup::Miss,
        }
    }

    /// Whether a new call may start: under `max_pending` in flight and a call left in this
    /// second's budget. Admitted calls count as in flight until `finish`.
    pub fn admit(&mut self, digest: Digest, max_pending: usize, calls_per_second: u64, now: u64) -> bool {
        let elapsed = now.saturating_sub(self.refilled_at);
        if elapsed > 0 || self.refilled_at == 0 {
            self.tokens =
                self.tokens.saturating_add(elapsed.saturating_mul(calls_per_second)).min(calls_per_second);
            if self.refilled_at == 0 {
                self.tokens = calls_per_second;
            }
            self.refilled_at = now;
        }
        if self.in_flight.len() >= max_pending || self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        self.in_flight.insert(digest)
    }

    pub fn finish(&mut self, digest: &Digest, answer: &Answer, now: u64) {
        self.in_flight.remove(digest);
        if let Answer::Verdict { outcome, expires_at } = answer {
            if *expires_at <= now {
                return;
            }
            if self.cache.len() >= MAX_CACHE_ENTRIES {
                self.cache.retain(|_, (_, expires)| *expires > now);
            }
            if self.cache.len() >= MAX_CACHE_ENTRIES {
                // Still full of live entries: drop the one that would expire first.
                if let Some(oldest) = self.cache.iter().min_by_key(|(_, (_, e))| *e).map(|(k, _)| *k) {
                    self.cache.remove(&oldest);
                }
            }
            self.cache.insert(*digest, (outcome.clone(), *expires_at));
        }
    }

    pub fn cached(&self) -> usize {
        self.cache.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The operator's log line says why a call gave no verdict, in these words.
    #[test]
    fn call_failures_read_as_before() {
        let cases = [
            (CallFailure::Status(502), "status 502".to_owned()),
            (CallFailure::NoResponse, "no response (timeout or connection failure)".to_owned()),
            (CallFailure::TooLarge(70_000), format!("answer of 70000 bytes is over {MAX_ANSWER_BYTES}")),
            (CallFailure::NotJsonObject, "answer is not a JSON object".to_owned()),
            (CallFailure::NotDispatched, "call not dispatched".to_owned()),
            (CallFailure::RequestEnded, "request ended".to_owned()),
        ];
        for (failure, text) in cases {
            assert_eq!(failure.to_string(), text);
        }
    }
}
