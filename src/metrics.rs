//! Metric names, all under one prefix. Envoy shows Wasm metrics as `wasmcustom.<name>` on
//! `/stats` and as `<name>` with dots as underscores on `/stats/prometheus`.

use crate::reason::AuthError;
use crate::usage::State;

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
    /// Per budget group (configured ones and the default): requests, tokens of each kind, cost.
    BudgetGroup(&'a str, Count),
    /// Per model (the catalog's ids and `other`), the same counts for `/v1/messages`.
    Model(&'a str, Count),
    /// Metered answers by the state of their usage record.
    UsageState(State),
    /// Metered answers that came compressed and could not be read (`usage.strip_accept_encoding`).
    EncodedAnswer,
}

/// What a per-group or per-model counter counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Count {
    Requests,
    InputTokens,
    OutputTokens,
    CacheCreationInputTokens,
    CacheReadInputTokens,
    Cost,
}

impl Count {
    pub const ALL: [Count; 6] = [
        Count::Requests,
        Count::InputTokens,
        Count::OutputTokens,
        Count::CacheCreationInputTokens,
        Count::CacheReadInputTokens,
        Count::Cost,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Count::Requests => "requests",
            Count::InputTokens => "input_tokens",
            Count::OutputTokens => "output_tokens",
            Count::CacheCreationInputTokens => "cache_creation_input_tokens",
            Count::CacheReadInputTokens => "cache_read_input_tokens",
            Count::Cost => "cost",
        }
    }
}

/// The catalog id `model` is, or `other`: per-model metrics stay bounded whatever clients send.
pub fn model_label<'a>(mut catalog: impl Iterator<Item = &'a str>, model: Option<&'a str>) -> &'a str {
    match model {
        Some(model) if catalog.any(|id| id == model) => model,
        _ => "other",
    }
}

/// A budget group or model id as one segment of a stat name: `.` would split it, and Prometheus
/// names allow only `[a-zA-Z0-9_]` (Envoy maps the rest itself, but `-`/`_` collisions are ours).
fn segment(label: &str) -> String {
    label.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect()
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
            Metric::BudgetGroup(group, count) => {
                format!("{PREFIX}.usage.budget_group.{}.{}", segment(group), count.as_str())
            }
            Metric::Model(model, count) => {
                format!("{PREFIX}.usage.model.{}.{}", segment(model), count.as_str())
            }
            Metric::UsageState(state) => format!("{PREFIX}.usage.state.{}", state.as_str()),
            Metric::EncodedAnswer => format!("{PREFIX}.usage.encoded_answers"),
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
            Metric::BudgetGroup(group, count) => (7, *count as u16, group),
            Metric::Model(model, count) => (8, *count as u16, model),
            Metric::UsageState(state) => (9, *state as u16, ""),
            Metric::EncodedAnswer => (10, 0, ""),
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
        assert_eq!(
            Metric::BudgetGroup("team.a", Count::OutputTokens).name(),
            "gateway_auth.usage.budget_group.team_a.output_tokens"
        );
        assert_eq!(
            Metric::Model("claude-3.5", Count::Requests).name(),
            "gateway_auth.usage.model.claude-3_5.requests"
        );
        assert_eq!(Metric::UsageState(State::Estimated).name(), "gateway_auth.usage.state.estimated");
    }

    #[test]
    fn models_outside_the_catalog_are_other() {
        let catalog = ["claude-sonnet-4-5", "claude-opus-4-1"];
        assert_eq!(model_label(catalog.into_iter(), Some("claude-opus-4-1")), "claude-opus-4-1");
        assert_eq!(model_label(catalog.into_iter(), Some("gpt-5")), "other");
        assert_eq!(model_label(catalog.into_iter(), None), "other");
    }
}
