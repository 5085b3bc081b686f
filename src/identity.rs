//! Who the user is, from verified claims or an API key entry, as header-safe values.

use serde_json::{Map, Value};

use crate::config::{ApiKey, HeaderNames, Provider};
use crate::policy;
use crate::reason::AuthError;

/// Longest identity header value; names and emails are far shorter, anything longer is abuse.
pub const MAX_VALUE_BYTES: usize = 1024;
/// Longest groups header: 200 GUIDs (Entra's cap before overage) is ~7.4 KiB.
pub const MAX_GROUPS_BYTES: usize = 16 * 1024;
/// The provider header's value for API keys.
pub const API_KEY_PROVIDER: &str = "api-key";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub user_id: String,
    pub email: Option<String>,
    pub name: Option<String>,
    /// The groups header's value, joined once here rather than on every request a cached
    /// identity serves (`join_groups`); empty for no groups.
    pub groups: String,
    pub provider: String,
    /// Entra `tid`, when the token has one.
    pub tenant_id: Option<String>,
    /// The provider left the groups out (Entra overage): `groups` is not the user's real list.
    pub groups_overage: bool,
}

impl Identity {
    /// From a claim set the provider vouched for (verified token claims or an introspection
    /// answer), as part of `policy::admit`.
    pub fn from_claim_map(claims: &Map<String, Value>, provider: &Provider) -> Result<Self, AuthError> {
        let user_id = provider
            .user_claims
            .iter()
            .find_map(|name| claims.get(name).and_then(|value| id_value(name, value)))
            .ok_or(AuthError::NoUserId)?;
        check_user_id(&user_id)?;
        let text =
            |name: &str| claims.get(name).and_then(Value::as_str).map(header_safe).filter(|v| !v.is_empty());
        let groups: Vec<String> = match claims.get("groups") {
            Some(Value::Array(items)) => items.iter().filter_map(scalar).collect(),
            Some(Value::String(one)) => vec![one.clone()],
            _ => Vec::new(),
        };
        Ok(Identity {
            user_id,
            email: text("email").filter(|_| !email_unverified(claims)),
            name: text("name"),
            groups: join_groups(&groups),
            provider: provider.name.clone(),
            tenant_id: text("tid"),
            groups_overage: policy::groups_left_out(claims),
        })
    }

    pub fn from_api_key(key: &ApiKey) -> Self {
        Identity {
            user_id: key.name.clone(),
            email: None,
            name: None,
            groups: join_groups(&key.groups),
            provider: API_KEY_PROVIDER.to_owned(),
            tenant_id: None,
            groups_overage: false,
        }
    }

    /// The group names, as `join_groups` kept them (header-safe, capped): the inverse of its
    /// joining and escaping.
    pub fn group_names(&self) -> Vec<String> {
        self.groups
            .split(',')
            .filter(|g| !g.is_empty())
            .map(|g| g.replace("%2C", ",").replace("%25", "%"))
            .collect()
    }

    /// The identity headers to set upstream; absent values produce no header.
    pub fn headers<'a, 'n>(&'a self, names: &'n HeaderNames) -> Vec<(&'n str, &'a str)> {
        let mut out = vec![(names.user_id.as_str(), self.user_id.as_str())];
        if let Some(email) = &self.email {
            out.push((&names.email, email));
        }
        if let Some(name) = &self.name {
            out.push((&names.name, name));
        }
        if !self.groups.is_empty() {
            out.push((&names.groups, &self.groups));
        }
        out.push((&names.provider, &self.provider));
        if let Some(tenant) = &self.tenant_id {
            out.push((&names.tenant_id, tenant));
        }
        if self.groups_overage {
            out.push((&names.groups_overage, "true"));
        }
        out
    }
}

/// Registered claims that are strings by their RFC (RFC 7519 §4.1, RFC 7662 §2.2): as a user id
/// only a string counts.
const STRING_CLAIMS: [&str; 3] = ["iss", "sub", "jti"];

/// A user id from claim `name`: a string, or for a custom claim an integer (some IdPs number their
/// users). Anything else is not an id.
fn id_value(name: &str, value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) if (n.is_i64() || n.is_u64()) && !STRING_CLAIMS.contains(&name) => {
            Some(n.to_string())
        }
        _ => None,
    }
}

/// A user id goes upstream exactly as the provider gave it, or not at all: one with control
/// characters or surrounding blanks (which Envoy or the upstream would drop), or too long to pass
/// whole, is refused, so two different ids can never arrive as one.
fn check_user_id(id: &str) -> Result<(), AuthError> {
    if id.is_empty() {
        return Err(AuthError::NoUserId);
    }
    if id.len() > MAX_VALUE_BYTES {
        return Err(AuthError::UserIdTooLong);
    }
    if id.chars().any(char::is_control) || id.trim() != id {
        return Err(AuthError::UserIdNotHeaderSafe);
    }
    Ok(())
}

/// The provider says the address is not verified (`email_verified` false, or "false" as Google's
/// tokeninfo writes it): then it is nobody's proven address and is not forwarded.
fn email_unverified(claims: &Map<String, Value>) -> bool {
    match claims.get("email_verified") {
        Some(Value::Bool(verified)) => !verified,
        Some(Value::String(verified)) => verified.eq_ignore_ascii_case("false"),
        _ => false,
    }
}

/// Group names: strings, and numbers as some IdPs use; anything else is not a group.
fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Drops control characters (CR/LF would split headers, NUL truncates them) and caps the length
/// on a character boundary. Other UTF-8 is kept as is: header values may carry it (RFC 9110 §5.5).
pub fn header_safe(value: &str) -> String {
    let mut out = String::new();
    for c in value.chars().filter(|c| !c.is_control()) {
        if out.len() + c.len_utf8() > MAX_VALUE_BYTES {
            break;
        }
        out.push(c);
    }
    out.trim().to_owned()
}

/// A group as it appears in the groups header (see `join_groups`).
pub fn encode_group(group: &str) -> String {
    header_safe(group).replace('%', "%25").replace(',', "%2C")
}

/// Comma-separated groups; a comma or `%` inside a name is percent-encoded so the list stays
/// unambiguous. Groups past `MAX_GROUPS_BYTES` are left out whole, never cut in the middle.
fn join_groups(groups: &[String]) -> String {
    let mut out = String::new();
    for group in groups {
        let safe = encode_group(group);
        if safe.is_empty() {
            continue;
        }
        if out.len() + safe.len() + 1 > MAX_GROUPS_BYTES {
            break;
        }
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(&safe);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_safe_drops_controls_and_caps() {
        assert_eq!(header_safe("a\r\nx-evil: 1\0b"), "ax-evil: 1b");
        assert_eq!(header_safe("José Müller"), "José Müller");
        let long = "é".repeat(MAX_VALUE_BYTES);
        let capped = header_safe(&long);
        assert!(capped.len() <= MAX_VALUE_BYTES && capped.len() >= MAX_VALUE_BYTES - 1);
        assert!(capped.chars().all(|c| c == 'é'));
    }

    #[test]
    fn user_ids_pass_whole_or_not_at_all() {
        assert_eq!(check_user_id("00000000-0000-0000-0000-000000000001"), Ok(()));
        assert_eq!(check_user_id("jörg-ß"), Ok(()));
        assert_eq!(check_user_id(""), Err(AuthError::NoUserId));
        for bad in [" admin\r\n", "admin ", " admin", "ad\0min", "ad\u{85}min", "a\tb", "admin\u{a0}"] {
            assert_eq!(check_user_id(bad), Err(AuthError::UserIdNotHeaderSafe), "{bad:?}");
        }
        assert_eq!(check_user_id(&"a".repeat(MAX_VALUE_BYTES)), Ok(()));
        assert_eq!(check_user_id(&"a".repeat(MAX_VALUE_BYTES + 1)), Err(AuthError::UserIdTooLong));
    }

    #[test]
    fn registered_claims_keep_their_types() {
        use serde_json::json;
        assert_eq!(id_value("sub", &json!(12345)), None);
        assert_eq!(id_value("jti", &json!(7)), None);
        assert_eq!(id_value("sub", &json!("12345")), Some("12345".into()));
        assert_eq!(id_value("oid", &json!(12345)), Some("12345".into()));
        assert_eq!(id_value("uid", &json!(-3)), Some("-3".into()));
        assert_eq!(id_value("uid", &json!(1.5)), None);
        assert_eq!(id_value("uid", &json!(true)), None);
    }

    #[test]
    fn groups_are_joined_unambiguously() {
        let groups = vec!["eng".to_owned(), "a,b".to_owned(), "100%".to_owned(), "\r\n".to_owned()];
        assert_eq!(join_groups(&groups), "eng,a%2Cb,100%25");
        let identity = Identity {
            groups: join_groups(&groups),
            ..Identity::from_api_key(&ApiKey { name: "k".into(), sha256: [0; 32], groups: vec![] })
        };
        assert_eq!(identity.group_names(), ["eng", "a,b", "100%"]);
        let many: Vec<String> = (0..1000).map(|i| format!("{i:036}")).collect();
        let joined = join_groups(&many);
        assert!(joined.len() <= MAX_GROUPS_BYTES);
        assert!(joined.split(',').all(|g| g.len() == 36));
    }
}
