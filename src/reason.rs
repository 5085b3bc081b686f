//! Why a request was not let through. `client_message` is the text clients and logs see: precise,
//! but never the token, a configured issuer or a key id.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthError {
    MissingCredential,
    CredentialTooLarge,
    Malformed,
    AlgorithmNotAllowed,
    IssuerNotTrusted,
    KeyNotFound,
    BadSignature,
    Expired,
    NotYetValid,
    IssuedInFuture,
    NoExpiry,
    AudienceNotAllowed,
    NoUserId,
    /// The user id has control characters or surrounding blanks: refused, never rewritten, so two
    /// different ids can never reach the upstream as one.
    UserIdNotHeaderSafe,
    /// The user id is longer than `identity::MAX_VALUE_BYTES`: refused, never cut.
    UserIdTooLong,
    /// `sub` is not a string (RFC 7519 §4.1.2, RFC 7662 §2.2: StringOrURI).
    SubjectNotString,
    UnknownApiKey,
    /// A `required_claims` entry other than the ones below does not match.
    RequiredClaim,
    /// Entra `tid` is not the pinned tenant.
    TenantNotAllowed,
    /// Google `hd` (or an opaque token's e-mail domain) is not a hosted domain.
    DomainNotAllowed,
    EmailNotVerified,
    /// An opaque token the provider says is not active (or does not know).
    TokenInactive,
    // Known identity-provider mistakes, named so an admin can fix them.
    GraphToken,
    EntraV1Issuer,
    EntraV2Issuer,
    OktaOrgAccessToken,
    IssuerTrailingSlash,
    // Authenticated, refused by policy: 403.
    InsufficientScope,
    GroupsOverage,
    // The identity provider could not answer: 503.
    /// The issuer's keys have never been fetched successfully.
    KeysUnavailable,
    /// The opaque-token endpoint failed, timed out, or too many calls are in flight.
    IntrospectionUnavailable,
    /// The plugin has no valid configuration; fail closed.
    NotConfigured,
}

impl AuthError {
    pub fn client_message(self) -> &'static str {
        match self {
            AuthError::MissingCredential => "missing credential",
            AuthError::CredentialTooLarge => "credential too large (over the gateway's limits.max_credential_bytes)",
            AuthError::Malformed => "malformed token",
            AuthError::AlgorithmNotAllowed => "token algorithm not allowed",
            AuthError::IssuerNotTrusted => "token issuer not trusted",
            AuthError::KeyNotFound => "token signing key not found",
            AuthError::BadSignature => "token signature invalid",
            AuthError::Expired => "token expired",
            AuthError::NotYetValid => "token not yet valid",
            AuthError::IssuedInFuture => "token issued in the future",
            AuthError::NoExpiry => "token has no expiry",
            AuthError::AudienceNotAllowed => "audience not allowed",
            AuthError::NoUserId => "token has no user id claim",
            AuthError::UserIdNotHeaderSafe => {
                "token user id has control characters or leading or trailing spaces"
            }
            AuthError::UserIdTooLong => "token user id is over 1024 bytes",
            AuthError::SubjectNotString => "token sub claim is not a string",
            AuthError::UnknownApiKey => "invalid API key",
            AuthError::RequiredClaim => "token not issued for this gateway",
            AuthError::TenantNotAllowed => "token tenant not allowed",
            AuthError::DomainNotAllowed => "account domain not allowed",
            AuthError::EmailNotVerified => "account e-mail not verified",
            AuthError::TokenInactive => "token not active",
            AuthError::GraphToken => {
                "token is a Microsoft Graph access token: send the ID token, or an access token for this gateway's app"
            }
            AuthError::EntraV1Issuer => "token has an Entra ID v1.0 issuer (sts.windows.net) where v2.0 is expected",
            AuthError::EntraV2Issuer => "token has an Entra ID v2.0 issuer where v1.0 (sts.windows.net) is expected",
            AuthError::OktaOrgAccessToken => {
                "token is an Okta org authorization server access token, which only Okta can verify: send the ID token, or use a custom authorization server"
            }
            AuthError::IssuerTrailingSlash => "token issuer differs from a trusted issuer only by a trailing slash",
            AuthError::InsufficientScope => "insufficient scope",
            AuthError::GroupsOverage => "token does not list the user's groups (groups overage)",
            AuthError::KeysUnavailable => "identity provider keys unavailable",
            AuthError::IntrospectionUnavailable => "token introspection unavailable",
            AuthError::NotConfigured => "gateway authentication is not configured",
        }
    }
}

impl AuthError {
    /// A stable snake_case name, for metrics.
    pub fn code(self) -> &'static str {
        match self {
            AuthError::MissingCredential => "missing_credential",
            AuthError::CredentialTooLarge => "credential_too_large",
            AuthError::Malformed => "malformed",
            AuthError::AlgorithmNotAllowed => "algorithm_not_allowed",
            AuthError::IssuerNotTrusted => "issuer_not_trusted",
            AuthError::KeyNotFound => "key_not_found",
            AuthError::BadSignature => "bad_signature",
            AuthError::Expired => "expired",
            AuthError::NotYetValid => "not_yet_valid",
            AuthError::IssuedInFuture => "issued_in_future",
            AuthError::NoExpiry => "no_expiry",
            AuthError::AudienceNotAllowed => "audience_not_allowed",
            AuthError::NoUserId => "no_user_id",
            AuthError::UserIdNotHeaderSafe => "user_id_not_header_safe",
            AuthError::UserIdTooLong => "user_id_too_long",
            AuthError::SubjectNotString => "subject_not_string",
            AuthError::UnknownApiKey => "unknown_api_key",
            AuthError::RequiredClaim => "required_claim",
            AuthError::TenantNotAllowed => "tenant_not_allowed",
            AuthError::DomainNotAllowed => "domain_not_allowed",
            AuthError::EmailNotVerified => "email_not_verified",
            AuthError::TokenInactive => "token_inactive",
            AuthError::GraphToken => "graph_token",
            AuthError::EntraV1Issuer => "entra_v1_issuer",
            AuthError::EntraV2Issuer => "entra_v2_issuer",
            AuthError::OktaOrgAccessToken => "okta_org_access_token",
            AuthError::IssuerTrailingSlash => "issuer_trailing_slash",
            AuthError::InsufficientScope => "insufficient_scope",
            AuthError::GroupsOverage => "groups_overage",
            AuthError::KeysUnavailable => "keys_unavailable",
            AuthError::IntrospectionUnavailable => "introspection_unavailable",
            AuthError::NotConfigured => "not_configured",
        }
    }
}

impl std::fmt::Display for AuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.client_message())
    }
}
