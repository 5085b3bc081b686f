//! The responses the filter sends itself, in the Messages API error shape. The only place that maps
//! a reason to a status, an `error.type` and headers.

use crate::reason::AuthError;

/// RFC 6750 §3 realm: names the protection space, nothing about the configuration.
const REALM: &str = "llm-gateway";
/// Seconds a client should wait when the identity provider is unreachable.
const RETRY_AFTER_SECONDS: &str = "5";

#[derive(Debug, PartialEq, Eq)]
pub struct Reply {
    pub status: u32,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

pub fn deny(reason: AuthError) -> Reply {
    let message = reason.client_message();
    let mut headers = vec![("content-type", "application/json".to_owned())];
    let challenge = |code: &str| {
        format!(
            "Bearer realm=\"{REALM}\", error=\"{code}\", error_description=\"{}\"",
            quoted_string_safe(message)
        )
    };
    let (status, error_type) = match reason {
        AuthError::KeysUnavailable | AuthError::IntrospectionUnavailable => {
            headers.push(("retry-after", RETRY_AFTER_SECONDS.to_owned()));
            (503, "api_error")
        }
        AuthError::NotConfigured => (503, "api_error"),
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
    let message_json = serde_json::Value::from(message).to_string();
    let body = format!(r#"{{"type":"error","error":{{"type":"{error_type}","message":{message_json}}}}}"#);
    Reply { status, headers, body }
}

/// RFC 6750 §3: `error_description` is limited to printable ASCII without `"` and `\`.
fn quoted_string_safe(text: &str) -> String {
    text.chars().filter(|c| matches!(c, ' ' | '!' | '#'..='[' | ']'..='~')).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header<'a>(reply: &'a Reply, name: &str) -> Option<&'a str> {
        reply.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    #[test]
    fn missing_credential_has_no_error_code() {
        let reply = deny(AuthError::MissingCredential);
        assert_eq!(reply.status, 401);
        assert_eq!(header(&reply, "www-authenticate"), Some("Bearer realm=\"llm-gateway\""));
        assert_eq!(
            reply.body,
            r#"{"type":"error","error":{"type":"authentication_error","message":"missing credential"}}"#
        );
    }

    #[test]
    fn invalid_token_names_the_reason() {
        let reply = deny(AuthError::Expired);
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
        let reply = deny(AuthError::InsufficientScope);
        assert_eq!(reply.status, 403);
        assert_eq!(
            header(&reply, "www-authenticate"),
            Some("Bearer realm=\"llm-gateway\", error=\"insufficient_scope\", error_description=\"insufficient scope\"")
        );
        assert!(reply.body.contains("\"permission_error\""));
        let reply = deny(AuthError::GroupsOverage);
        assert_eq!(reply.status, 403);
        assert!(reply.body.contains("\"permission_error\""));
    }

    #[test]
    fn unavailable_identity_provider_is_503_not_401() {
        for reason in [AuthError::KeysUnavailable, AuthError::IntrospectionUnavailable] {
            let reply = deny(reason);
            assert_eq!(reply.status, 503);
            assert_eq!(header(&reply, "www-authenticate"), None);
            assert_eq!(header(&reply, "retry-after"), Some("5"));
            let body: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
            assert_eq!(body["error"]["type"], "api_error");
        }
    }

    #[test]
    fn description_is_quoted_string_safe() {
        assert_eq!(quoted_string_safe("a\"b\\c\nd"), "abcd");
        // Every message is already safe: nothing is lost on the way into the header.
        let apostrophe = AuthError::GraphToken.client_message();
        assert_eq!(quoted_string_safe(apostrophe), apostrophe);
    }
}
