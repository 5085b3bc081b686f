//! Metric names, all under one prefix. Envoy shows Wasm metrics as `wasmcustom.<name>` on
//! `/stats` and as `<name>` with dots as underscores on `/stats/prometheus`.

use crate::reason::AuthError;

pub const PREFIX: &str = "gateway_auth";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric<'a> {
    /// Requests let through.
    Allowed,
    /// Requests refused (401, 403), by reason.
    Denied(AuthError),
    /// Requests answered 503: the identity provider could not be asked, by reason.
    Unavailable(AuthError),
    /// Key fetches per provider (the first provider naming a shared key source).
    KeyFetchOk(&'a str),
    KeyFetchFailed(&'a str),
    /// Gauges per provider: keys loaded, and seconds since they were fetched.
    KeysLoaded(&'a str),
    KeySetAgeSeconds(&'a str),
}

impl Metric<'_> {
    pub fn name(&self) -> String {
        match self {
            Metric::Allowed => format!("{PREFIX}.allowed"),
            Metric::Denied(reason) => format!("{PREFIX}.denied.{}", reason.code()),
            Metric::Unavailable(reason) => format!("{PREFIX}.unavailable.{}", reason.code()),
            Metric::KeyFetchOk(provider) => format!("{PREFIX}.jwks.{provider}.fetch_ok"),
            Metric::KeyFetchFailed(provider) => format!("{PREFIX}.jwks.{provider}.fetch_failed"),
            Metric::KeysLoaded(provider) => format!("{PREFIX}.jwks.{provider}.keys"),
            Metric::KeySetAgeSeconds(provider) => format!("{PREFIX}.jwks.{provider}.age_seconds"),
        }
    }

    /// A cheap identity for caching the host's metric id: no formatting on the request path.
    pub fn key(&self) -> (u8, u16, &str) {
        match self {
            Metric::Allowed => (0, 0, ""),
            Metric::Denied(reason) => (1, *reason as u16, ""),
            Metric::Unavailable(reason) => (2, *reason as u16, ""),
            Metric::KeyFetchOk(provider) => (3, 0, provider),
            Metric::KeyFetchFailed(provider) => (4, 0, provider),
            Metric::KeysLoaded(provider) => (5, 0, provider),
            Metric::KeySetAgeSeconds(provider) => (6, 0, provider),
        }
    }

    pub fn is_gauge(&self) -> bool {
        matches!(self, Metric::KeysLoaded(_) | Metric::KeySetAgeSeconds(_))
    }
}

/// The metric counting a refusal: 503s apart from 401s and 403s.
pub fn for_denial(reason: AuthError) -> Metric<'static> {
    match reason {
        AuthError::KeysUnavailable | AuthError::IntrospectionUnavailable | AuthError::NotConfigured => {
            Metric::Unavailable(reason)
        }
        _ => Metric::Denied(reason),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(Metric::Allowed.name(), "gateway_auth.allowed");
        assert_eq!(Metric::Denied(AuthError::Expired).name(), "gateway_auth.denied.expired");
        assert_eq!(
            for_denial(AuthError::KeysUnavailable).name(),
            "gateway_auth.unavailable.keys_unavailable"
        );
        assert_eq!(Metric::KeyFetchFailed("entra").name(), "gateway_auth.jwks.entra.fetch_failed");
        assert!(Metric::KeySetAgeSeconds("entra").is_gauge());
        assert!(!Metric::KeyFetchOk("entra").is_gauge());
    }
}
