//! Tokens that fail for reasons admins get wrong again and again, named precisely so they can be
//! fixed: Graph access tokens, Entra v1/v2 issuer mix-ups, Okta org-server access tokens and
//! issuers that differ by a trailing slash. None of these is ever accepted; only the message changes.

use crate::config::{Config, Preset, Provider};
use crate::reason::AuthError;
use crate::token::UnverifiedToken;

/// Microsoft Graph's application id and resource URIs, as they appear in `aud`.
const GRAPH_AUDIENCES: [&str; 4] = [
    "00000003-0000-0000-c000-000000000000",
    "https://graph.microsoft.com",
    "https://graph.microsoft.com/",
    "https://graph.microsoft.us",
];

/// Why no provider accepts `iss`: a near miss, or simply not trusted.
pub fn untrusted_issuer(iss: &str, config: &Config) -> AuthError {
    let issuers = || config.providers.iter().flat_map(Provider::issuers);
    let toggled = match iss.strip_suffix('/') {
        Some(without) => without.to_owned(),
        None => format!("{iss}/"),
    };
    if issuers().any(|i| i == toggled) {
        return AuthError::IssuerTrailingSlash;
    }
    if let Some(tenant) = entra_v1_tenant(iss) {
        if issuers().any(|i| entra_v2_tenant(i) == Some(tenant)) {
            return AuthError::EntraV1Issuer;
        }
    }
    if let Some(tenant) = entra_v2_tenant(iss) {
        if issuers().any(|i| entra_v1_tenant(i) == Some(tenant)) {
            return AuthError::EntraV2Issuer;
        }
    }
    AuthError::IssuerNotTrusted
}

/// A token from a trusted issuer that was never meant for this gateway to verify.
pub fn foreign_token(token: &UnverifiedToken, provider: &Provider) -> Option<AuthError> {
    if is_entra(provider) {
        // Graph access tokens carry a `nonce` in the header that Graph rewrites before checking the
        // signature: nobody else can verify them.
        let graph_audience = token.audiences().iter().any(|aud| GRAPH_AUDIENCES.contains(aud));
        if token.header_has("nonce") || graph_audience {
            return Some(AuthError::GraphToken);
        }
    }
    if is_okta_org_server(provider) && (token.has_claim("scp") || token.has_claim("cid")) {
        return Some(AuthError::OktaOrgAccessToken);
    }
    None
}

fn is_entra(provider: &Provider) -> bool {
    provider.preset == Some(Preset::Entra)
        || provider.issuers().any(|i| entra_v1_tenant(i).is_some() || entra_v2_tenant(i).is_some())
}

fn is_okta_org_server(provider: &Provider) -> bool {
    match provider.preset {
        Some(Preset::Okta { org_server }) => org_server,
        Some(_) => false,
        None => {
            let host = provider.issuer.strip_prefix("https://").unwrap_or("");
            (host.ends_with(".okta.com") || host.ends_with(".oktapreview.com")) && !host.contains('/')
        }
    }
}

/// `https://sts.windows.net/<tenant>/` → tenant.
fn entra_v1_tenant(iss: &str) -> Option<&str> {
    let tenant = iss.strip_prefix("https://sts.windows.net/")?.strip_suffix('/')?;
    (!tenant.is_empty() && !tenant.contains('/')).then_some(tenant)
}

/// `https://login.microsoftonline.com/<tenant>/v2.0` → tenant.
fn entra_v2_tenant(iss: &str) -> Option<&str> {
    let tenant = iss.strip_prefix("https://login.microsoftonline.com/")?.strip_suffix("/v2.0")?;
    (!tenant.is_empty() && !tenant.contains('/')).then_some(tenant)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entra_issuer_forms() {
        assert_eq!(entra_v1_tenant("https://sts.windows.net/t1/"), Some("t1"));
        assert_eq!(entra_v1_tenant("https://sts.windows.net/t1"), None);
        assert_eq!(entra_v2_tenant("https://login.microsoftonline.com/t1/v2.0"), Some("t1"));
        assert_eq!(entra_v2_tenant("https://login.microsoftonline.com/t1/v2.0/"), None);
        assert_eq!(entra_v2_tenant("https://login.microsoftonline.com//v2.0"), None);
    }
}
