//! Provider policy beyond signature and registered claims: required claims, scopes, groups overage.

use serde_json::{Map, Value};

use crate::config::Provider;
use crate::reason::AuthError;

/// Each `required_claims` entry: a string claim must equal an accepted value, an array claim must
/// hold one. Missing or other types fail.
pub fn check_required_claims(claims: &Map<String, Value>, provider: &Provider) -> Result<(), AuthError> {
    for (name, accepted) in &provider.required_claims {
        let matches = match claims.get(name) {
            Some(Value::String(value)) => accepted.contains(value),
            Some(Value::Array(values)) => {
                values.iter().filter_map(Value::as_str).any(|v| accepted.iter().any(|a| a == v))
            }
            _ => false,
        };
        if !matches {
            return Err(match name.as_str() {
                "tid" => AuthError::TenantNotAllowed,
                "hd" => AuthError::DomainNotAllowed,
                _ => AuthError::RequiredClaim,
            });
        }
    }
    Ok(())
}

/// Every required scope must be granted in `scp` (Entra, Okta) or `scope` (RFC 8693/9068, RFC 7662),
/// each a space-separated string or an array.
pub fn check_scopes(claims: &Map<String, Value>, required: &[String]) -> Result<(), AuthError> {
    if required.is_empty() {
        return Ok(());
    }
    let granted: Vec<&str> = ["scp", "scope"]
        .iter()
        .filter_map(|name| claims.get(*name))
        .flat_map(|value| match value {
            Value::String(s) => s.split(' ').filter(|s| !s.is_empty()).collect::<Vec<_>>(),
            Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        })
        .collect();
    if required.iter().all(|scope| granted.contains(&scope.as_str())) {
        Ok(())
    } else {
        Err(AuthError::InsufficientScope)
    }
}

/// Entra leaves `groups` out when a user is in too many and says so with `_claim_names.groups`
/// (ID and access tokens) or `hasgroups: true` (implicit flow).
pub fn groups_left_out(claims: &Map<String, Value>) -> bool {
    let claim_names = claims.get("_claim_names").and_then(|v| v.get("groups")).is_some();
    let has_groups = claims.get("hasgroups").and_then(Value::as_bool) == Some(true);
    (claim_names || has_groups) && !claims.contains_key("groups")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn scopes_from_scp_or_scope() {
        let required = vec!["gateway.use".to_owned(), "openid".to_owned()];
        assert!(check_scopes(&map(json!({"scp": "openid gateway.use"})), &required).is_ok());
        assert!(check_scopes(&map(json!({"scope": ["gateway.use", "openid"]})), &required).is_ok());
        assert!(check_scopes(&map(json!({"scp": "gateway.use", "scope": "openid"})), &required).is_ok());
        assert_eq!(
            check_scopes(&map(json!({"scp": "openid"})), &required),
            Err(AuthError::InsufficientScope)
        );
        assert_eq!(check_scopes(&map(json!({})), &required), Err(AuthError::InsufficientScope));
        assert_eq!(
            check_scopes(&map(json!({"scp": "gateway.useopenid"})), &required),
            Err(AuthError::InsufficientScope)
        );
        assert!(check_scopes(&map(json!({})), &[]).is_ok());
    }

    #[test]
    fn overage_in_both_forms() {
        assert!(groups_left_out(&map(json!({"_claim_names": {"groups": "src1"}, "_claim_sources": {}}))));
        assert!(groups_left_out(&map(json!({"hasgroups": true}))));
        assert!(!groups_left_out(&map(json!({"hasgroups": false}))));
        assert!(!groups_left_out(&map(json!({"groups": ["a"]}))));
        assert!(!groups_left_out(&map(json!({"_claim_names": {"other": "x"}}))));
    }
}
