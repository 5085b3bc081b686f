//! Why a request was not let through. `Display` is for operators' logs; what clients see is built
//! from `client_message` in `reply.rs`.

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
    UnknownApiKey,
    /// The issuer's keys have never been fetched successfully: the identity provider is unreachable.
    KeysUnavailable,
    /// The plugin has no valid configuration; fail closed.
    NotConfigured,
}

impl AuthError {
    /// Short, stable text: the 401 message, the `error_description`, and the log's `reason=`.
    pub fn client_message(self) -> &'static str {
        match self {
            AuthError::MissingCredential => "missing credential",
            AuthError::CredentialTooLarge => "credential too large",
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
            AuthError::UnknownApiKey => "invalid API key",
            AuthError::KeysUnavailable => "identity provider keys unavailable",
            AuthError::NotConfigured => "gateway authentication is not configured",
        }
    }
}

impl std::fmt::Display for AuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.client_message())
    }
}
