//! Provider policy beyond signature, expiry and audience: claim types, required claims, hosted
//! domains, scopes, groups overage. One step, `admit`, for verified token claims and introspection
//! answers alike, so the two paths cannot drift apart.

use serde_json::{Map, Value};

use crate::config::{OveragePolicy, Provider};
use crate::identity::Identity;
use crate::reason::AuthError;

/// Where a claim set comes from: both are vouched for by the provider, they differ in shape only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The claims of a JWT whose signature, times and audience were verified.
    Token,
    /// An RFC 7662 or tokeninfo answer that said the token is active, unexpired and for us.
    Introspection,
}

/// The identity of a genuine credential's claims, if the provider's policy lets it in. Refusals
/// that say the credential is not for this gateway are 401s and come first; policy refusals of a
/// known user (scopes, groups overage) are 403s.
pub fn admit(
    claims: &Map<String, Value>,
    provider: &Provider,
    source: Source,
) -> Result<Identity, AuthError> {
    // RFC 7519 §4.1.2 and RFC 7662 §2.2: `sub` is a string; native jwt_authn refuses others too.
    if claims.get("sub").is_some_and(|sub| !sub.is_string()) {
        return Err(AuthError::SubjectNotString);
    }
    if source == Source::Introspection {
        check_hosted_domain(claims, provider)?;
    }
    check_required_claims(claims, provider, source)?;
    let identity = Identity::from_claim_map(claims, provider)?;
    check_scopes(claims, &provider.required_scopes)?;
    if identity.groups_overage && provider.groups_overage == OveragePolicy::Deny {
        return Err(AuthError::GroupsOverage);
    }
    Ok(identity)
}

/// Introspection answers (Google's tokeninfo) carry no `hd`: with `hosted_domains` set, the
/// account is the verified `email`'s, and its domain must be a hosted one.
fn check_hosted_domain(claims: &Map<String, Value>, provider: &Provider) -> Result<(), AuthError> {
    if provider.hosted_domains.is_empty() {
        return Ok(());
    }
    let email = claims.get("email").and_then(Value::as_str).ok_or(AuthError::DomainNotAllowed)?;
    let verified = matches!(claims.get("email_verified"), Some(Value::Bool(true)))
        || claims.get("email_verified").and_then(Value::as_str) == Some("true");
    if !verified {
        return Err(AuthError::EmailNotVerified);
    }
    let domain = email_domain(email);
    if !provider.hosted_domains.iter().any(|d| d.eq_ignore_ascii_case(domain)) {
        return Err(AuthError::DomainNotAllowed);
    }
    Ok(())
}

fn email_domain(email: &str) -> &str {
    email.rsplit_once('@').map_or("", |(_, domain)| domain)
}

/// Each `required_claims` entry: a string claim must equal an accepted value, an array claim must
/// hold one. Missing or other types fail. An introspection answer without `hd` (tokeninfo's) is
/// held to an `hd` entry by the domain of its e-mail, which `check_hosted_domain` found verified.
fn check_required_claims(
    claims: &Map<String, Value>,
    provider: &Provider,
    source: Source,
) -> Result<(), AuthError> {
    for (name, accepted) in &provider.required_claims {
        let derived_hd = match (source, name.as_str(), claims.get(name)) {
            (Source::Introspection, "hd", None) if !provider.hosted_domains.is_empty() => {
                claims.get("email").and_then(Value::as_str).map(email_domain)
            }
            _ => None,
        };
        let matches = match (derived_hd, claims.get(name)) {
            (Some(domain), _) => accepted.iter().any(|a| a.eq_ignore_ascii_case(domain)),
            (None, value) => claim_matches(value, accepted),
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

fn claim_matches(value: Option<&Value>, accepted: &[String]) -> bool {
    match value {
        Some(Value::String(value)) => accepted.contains(value),
        Some(Value::Array(values)) => {
            values.iter().filter_map(Value::as_str).any(|v| accepted.iter().any(|a| a == v))
        }
        _ => false,
    }
}

/// Every required scope must be granted in `scp` (Entra, Okta) or `scope` (RFC 8693/9068, RFC 7662),
/// each a space-separated string or an array.
fn check_scopes(claims: &Map<String, Value>, required: &[String]) -> Result<(), AuthError> {
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
