//! The responses the filter sends itself, in the Messages API error shape. The only place that maps
//! a reason to a status, an `error.type` and headers.
//!
//! Every answer carries `x-should-retry` (the official SDKs and Claude Code obey it before their own
//! retry rules: `false` shows the reason at once instead of ~100 s of silent retries) and a
//! `request-id` shaped like the Messages API's, which the denial's log line repeats.

use crate::models::{ListError, Refusal};
use crate::reason::AuthError;

/// RFC 6750 §3 realm: names the protection space, nothing about the configuration.
const REALM: &str = "llm-gateway";
/// Seconds a client should wait when the identity provider is unreachable.
const RETRY_AFTER_SECONDS: &str = "5";
/// Prefix of the filter's `request-id` values (the Messages API's own are `req_` + base62).
pub const REQUEST_ID_PREFIX: &str = "req_gw_";

#[derive(Debug, PartialEq, Eq)]
pub struct Reply {
    pub status: u32,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

/// `request-id` value for 96 random bits: `req_gw_` + 24 lowercase hex digits.
pub fn request_id(random: [u64; 2]) -> String {
    let [high, low] = random;
    format!("{REQUEST_ID_PREFIX}{:08x}{low:016x}", high & 0xffff_ffff)
}

/// The answer to a refused request; `request_id` comes from [`request_id`].
pub fn deny(reason: AuthError, request_id: &str) -> Reply {
    let message = reason.client_message();
    let mut headers =
        vec![("content-type", "application/json".to_owned()), ("request-id", request_id.to_owned())];
    let challenge = |code: &str| {
        format!(
            "Bearer realm=\"{REALM}\", error=\"{code}\", error_description=\"{}\"",
            quoted_string_safe(message)
        )
    };
    let (status, error_type) = match reason {
        AuthError::KeysUnavailable | AuthError::IntrospectionUnavailable | AuthError::NotConfigured => {
            (503, "api_error")
        }
        AuthError::MissingCredential => {
            // No credential presented: no error code (RFC 6750 §3.1).
            headers.push(("www-authenticate", format!("Bearer realm=\"{REALM}\"")));
            (401, "authentication_error")
        }
        AuthError::InsufficientScope => {
            headers.push(("www-authenticate", challenge("insufficient_scope")));
            (403, "permission_error")
        }
        AuthError::GroupsOverage => (403, "permission_error"),
        _ => {
            headers.push(("www-authenticate", challenge("invalid_token")));
            (401, "authentication_error")
        }
    };
    if status == 503 {
        // Temporary: the client may come back after `retry-after`.
        headers.push(("retry-after", RETRY_AFTER_SECONDS.to_owned()));
        headers.push(("x-should-retry", "true".to_owned()));
    } else {
        // The same credential gets the same answer: retrying only hides the reason.
        headers.push(("x-should-retry", "false".to_owned()));
    }
    Reply { status, headers, body: error_body(error_type, message) }
}

fn error_body(error_type: &str, message: &str) -> String {
    let message_json = serde_json::Value::from(message).to_string();
    format!(r#"{{"type":"error","error":{{"type":"{error_type}","message":{message_json}}}}}"#)
}

fn json_reply(status: u32, body: String, request_id: &str) -> Reply {
    let headers =
        vec![("content-type", "application/json".to_owned()), ("request-id", request_id.to_owned())];
    Reply { status, headers, body }
}

/// A request body refused by `models.enforce`: 403 for a model the user may not use or a batch (with
/// `x-should-retry: false`, so clients show it at once), 400 for a body without a usable `model`.
pub fn model_refusal(refusal: &Refusal, request_id: &str) -> Reply {
    let message = refusal.client_message();
    match refusal {
        Refusal::NotAllowed(_) | Refusal::Batch => {
            let mut reply = json_reply(403, error_body("permission_error", &message), request_id);
            reply.headers.push(("x-should-retry", "false".to_owned()));
            reply
        }
        _ => json_reply(400, error_body("invalid_request_error", &message), request_id),
    }
}

/// `GET /v1/models` and `GET /v1/models/{id}` answered by the filter (`models.serve_list`).
pub fn models_answer(body: String, request_id: &str) -> Reply {
    json_reply(200, body, request_id)
}

pub fn model_not_found(id: &str, request_id: &str) -> Reply {
    json_reply(404, error_body("not_found_error", &format!("model: {id}")), request_id)
}

pub fn bad_models_query(error: &ListError, request_id: &str) -> Reply {
    json_reply(400, error_body("invalid_request_error", error.client_message()), request_id)
}

/// RFC 6750 §3: `error_description` is limited to printable ASCII without `"` and `\`.
fn quoted_string_safe(text: &str) -> String {
    text.chars().filter(|c| matches!(c, ' ' | '!' | '#'..='[' | ']'..='~')).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "req_gw_0123456789abcdef01234567";

    /// Every reason there is (a new one missing here still gets checked by the match in `deny`).
    const REASONS: [AuthError; 29] = [
        AuthError::MissingCredential,
        AuthError::CredentialTooLarge,
        AuthError::Malformed,
        AuthError::AlgorithmNotAllowed,
        AuthError::IssuerNotTrusted,
        AuthError::KeyNotFound,
        AuthError::BadSignature,
        AuthError::Expired,
        AuthError::NotYetValid,
        AuthError::IssuedInFuture,
        AuthError::NoExpiry,
        AuthError::AudienceNotAllowed,
        AuthError::NoUserId,
        AuthError::UnknownApiKey,
        AuthError::RequiredClaim,
        AuthError::TenantNotAllowed,
        AuthError::DomainNotAllowed,
        AuthError::EmailNotVerified,
        AuthError::TokenInactive,
        AuthError::GraphToken,
        AuthError::EntraV1Issuer,
        AuthError::EntraV2Issuer,
        AuthError::OktaOrgAccessToken,
        AuthError::IssuerTrailingSlash,
        AuthError::InsufficientScope,
        AuthError::GroupsOverage,
        AuthError::KeysUnavailable,
        AuthError::IntrospectionUnavailable,
        AuthError::NotConfigured,
    ];

    fn header<'a>(reply: &'a Reply, name: &str) -> Option<&'a str> {
        reply.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    #[test]
    fn missing_credential_has_no_error_code() {
        let reply = deny(AuthError::MissingCredential, ID);
        assert_eq!(reply.status, 401);
        assert_eq!(header(&reply, "www-authenticate"), Some("Bearer realm=\"llm-gateway\""));
        assert_eq!(
            reply.body,
            r#"{"type":"error","error":{"type":"authentication_error","message":"missing credential"}}"#
        );
    }

    #[test]
    fn invalid_token_names_the_reason() {
        let reply = deny(AuthError::Expired, ID);
        assert_eq!(reply.status, 401);
        assert_eq!(
            header(&reply, "www-authenticate"),
            Some(
                "Bearer realm=\"llm-gateway\", error=\"invalid_token\", error_description=\"token expired\""
            )
        );
        assert_eq!(header(&reply, "content-type"), Some("application/json"));
        let body: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
        assert_eq!(body["error"]["message"], "token expired");
        assert_eq!(body["error"]["type"], "authentication_error");
    }

    #[test]
    fn policy_refusals_are_403() {
        let reply = deny(AuthError::InsufficientScope, ID);
        assert_eq!(reply.status, 403);
        assert_eq!(
            header(&reply, "www-authenticate"),
            Some("Bearer realm=\"llm-gateway\", error=\"insufficient_scope\", error_description=\"insufficient scope\"")
        );
        assert!(reply.body.contains("\"permission_error\""));
        let reply = deny(AuthError::GroupsOverage, ID);
        assert_eq!(reply.status, 403);
        assert!(reply.body.contains("\"permission_error\""));
    }

    #[test]
    fn unavailable_identity_provider_is_503_not_401() {
        for reason in
            [AuthError::KeysUnavailable, AuthError::IntrospectionUnavailable, AuthError::NotConfigured]
        {
            let reply = deny(reason, ID);
            assert_eq!(reply.status, 503);
            assert_eq!(header(&reply, "www-authenticate"), None);
            assert_eq!(header(&reply, "retry-after"), Some("5"));
            let body: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
            assert_eq!(body["error"]["type"], "api_error");
        }
    }

    #[test]
    fn refusals_say_do_not_retry_and_outages_say_when() {
        for reason in REASONS {
            let reply = deny(reason, ID);
            assert_eq!(header(&reply, "request-id"), Some(ID), "{reason:?}");
            match reply.status {
                401 | 403 => {
                    assert_eq!(header(&reply, "x-should-retry"), Some("false"), "{reason:?}");
                    assert_eq!(header(&reply, "retry-after"), None, "{reason:?}");
                }
                503 => {
                    assert_eq!(header(&reply, "x-should-retry"), Some("true"), "{reason:?}");
                    assert_eq!(header(&reply, "retry-after"), Some("5"), "{reason:?}");
                }
                other => panic!("{reason:?}: unexpected status {other}"),
            }
        }
    }

    #[test]
    fn request_id_is_prefix_and_24_hex_digits() {
        assert_eq!(
            request_id([0xffff_ffff_1234_5678, 0x0123_4567_89ab_cdef]),
            "req_gw_123456780123456789abcdef"
        );
        assert_eq!(request_id([0, 0]), "req_gw_000000000000000000000000");
        let id = request_id([u64::MAX, u64::MAX]);
        assert_eq!(id, format!("req_gw_{}", "f".repeat(24)));
    }

    #[test]
    fn model_refusals() {
        let reply = model_refusal(&Refusal::NotAllowed("claude-opus-\"x".into()), ID);
        assert_eq!(header(&reply, "request-id"), Some(ID));
        assert_eq!(reply.status, 403);
        assert_eq!(header(&reply, "x-should-retry"), Some("false"));
        assert_eq!(
            reply.body,
            r#"{"type":"error","error":{"type":"permission_error","message":"model claude-opus-\"x is not available to you"}}"#
        );
        let reply = model_refusal(&Refusal::Batch, ID);
        assert_eq!(reply.status, 403);
        assert!(reply.headers.contains(&("x-should-retry", "false".to_owned())));
        assert!(reply
            .body
            .contains(r#""type":"permission_error","message":"message batches are not available"#));
        for refusal in [Refusal::NoModel, Refusal::ModelTooLong, Refusal::DuplicateModel, Refusal::NotJson] {
            let reply = model_refusal(&refusal, ID);
            assert_eq!(reply.status, 400);
            let body: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
            assert_eq!(body["error"]["type"], "invalid_request_error");
            assert_eq!(body["error"]["message"], refusal.client_message());
        }
        let reply = model_not_found("nope", ID);
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (404, r#"{"type":"error","error":{"type":"not_found_error","message":"model: nope"}}"#)
        );
        assert_eq!(bad_models_query(&ListError::BadLimit, ID).status, 400);
    }

    #[test]
    fn description_is_quoted_string_safe() {
        assert_eq!(quoted_string_safe("a\"b\\c\nd"), "abcd");
        // Every message is already safe: nothing is lost on the way into the header.
        let apostrophe = AuthError::GraphToken.client_message();
        assert_eq!(quoted_string_safe(apostrophe), apostrophe);
    }
}
