//! One trusted identity provider: issuer, audiences, keys and policy, with presets expanded.

use std::rc::Rc;

use serde_json::Value;

use super::preset::{read_preset, Preset, PresetKeys};
use super::reader::{error, non_empty_strings, string, strings, Obj, Result};
use super::Env;
use crate::crypto::{Algorithm, AlgorithmName, AlgorithmSet};
use crate::jwks::{parse_jwks, KeySet};
use crate::url::{parse_url, Url};

// Defaults: the contract's tables.
pub const DEFAULT_REFRESH_SECONDS: u64 = 600;
pub const DEFAULT_TIMEOUT_MS: u64 = 5000;
/// A day: long enough to ride out an identity-provider outage, short enough that keys it revoked
/// stop working (an extension of the contract).
pub const DEFAULT_MAX_STALE_SECONDS: u64 = 24 * 3600;
/// At most one unknown-`kid` refresh per provider per 30 s: rotation is picked up at once, while a
/// flood of random `kid`s costs the provider two fetches a minute.
pub const DEFAULT_UNKNOWN_KID_REFRESH_SECONDS: u64 = 30;
pub const DEFAULT_CLOCK_SKEW_SECONDS: u64 = 60;
pub const DEFAULT_OPAQUE_TIMEOUT_MS: u64 = 3000;
pub const DEFAULT_OPAQUE_CACHE_SECONDS: u64 = 300;
pub const DEFAULT_OPAQUE_MAX_PENDING: u64 = 64;
/// New introspection calls per second per VM (an extension of the contract): what bounds the calls
/// a flood of random opaque credentials can cause, while a real user costs one call per
/// `cache_seconds`.
pub const DEFAULT_OPAQUE_CALLS_PER_SECOND: u64 = 20;
const DEFAULT_USER_CLAIMS: [&str; 2] = ["oid", "sub"];

// Bounds that catch typos (a timeout in seconds where milliseconds were meant) without getting in
// the way of any real deployment.
const MAX_REFRESH_SECONDS: u64 = 7 * 24 * 3600;
const MAX_STALE_SECONDS: u64 = 30 * 24 * 3600;
const MAX_TIMEOUT_MS: u64 = 60_000;
const MAX_CLOCK_SKEW_SECONDS: u64 = 600;
const MAX_OPAQUE_CACHE_SECONDS: u64 = 24 * 3600;
const MAX_OPAQUE_PENDING: u64 = 10_000;

#[derive(Debug)]
pub struct Provider {
    pub name: String,
    pub issuer: String,
    pub issuer_aliases: Vec<String>,
    pub audiences: Vec<String>,
    pub jwks: JwksSource,
    pub user_claims: Vec<String>,
    pub algorithms: AlgorithmSet,
    pub clock_skew_seconds: u64,
    pub preset: Option<Preset>,
    /// Claim name and accepted values: a string claim must equal one, an array claim hold one.
    pub required_claims: Vec<(String, Vec<String>)>,
    pub required_scopes: Vec<String>,
    pub groups_overage: OveragePolicy,
    /// Google Workspace domains: for opaque tokens, the verified e-mail's domain must be one.
    pub hosted_domains: Vec<String>,
    pub opaque_tokens: Option<OpaqueTokens>,
}

impl Provider {
    pub fn accepts_issuer(&self, iss: &str) -> bool {
        self.issuer == iss || self.issuer_aliases.iter().any(|a| a == iss)
    }

    pub fn issuers(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.issuer.as_str()).chain(self.issuer_aliases.iter().map(String::as_str))
    }
}

#[derive(Debug)]
pub enum JwksSource {
    Inline(Rc<KeySet>),
    Remote(RemoteJwks),
}

#[derive(Debug)]
pub struct RemoteJwks {
    pub location: JwksLocation,
    pub cluster: String,
    /// Clusters for other hosts, by `:authority`: discovery may name a JWKS on another host
    /// (Google's is on www.googleapis.com).
    pub clusters: Vec<(String, String)>,
    pub refresh_seconds: u64,
    pub timeout_ms: u64,
    /// Keys not refreshed for this long are dropped: requests get 503 rather than trusting keys
    /// the provider may have revoked.
    pub max_stale_seconds: u64,
    /// Least time between refreshes triggered by tokens with an unknown `kid`.
    pub unknown_kid_refresh_seconds: u64,
}

impl RemoteJwks {
    /// The cluster to dispatch to for `authority`: `cluster` for the configured URL's host, else
    /// the one `clusters` names for that host.
    pub fn cluster_for(&self, authority: &str) -> Option<&str> {
        if let Some((_, cluster)) = self.clusters.iter().find(|(host, _)| host == authority) {
            return Some(cluster);
        }
        let home = match &self.location {
            JwksLocation::Uri(url) | JwksLocation::Discovery(url) => url.authority.as_str(),
        };
        (home == authority).then_some(self.cluster.as_str())
    }

    /// The key source's name across VMs (in shared data): providers naming the same one share one
    /// fetch and key set.
    pub fn shared_name(&self) -> String {
        match &self.location {
            JwksLocation::Uri(url) => format!("uri {} {}{}", self.cluster, url.authority, url.path),
            JwksLocation::Discovery(url) => {
                format!("discovery {} {}{}", self.cluster, url.authority, url.path)
            }
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum JwksLocation {
    Uri(Url),
    /// The discovery document's URL, `<issuer>/.well-known/openid-configuration`.
    Discovery(Url),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OveragePolicy {
    Flag,
    Deny,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpaqueStyle {
    Rfc7662,
    GoogleTokeninfo,
}

#[derive(Debug)]
pub struct OpaqueTokens {
    pub style: OpaqueStyle,
    pub uri: Url,
    pub cluster: String,
    pub timeout_ms: u64,
    pub cache_seconds: u64,
    pub max_pending: usize,
    pub max_calls_per_second: u64,
    pub client_id: Option<String>,
    pub client_secret: Option<Secret>,
}

/// A secret read from the VM's environment; never printed.
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

pub fn parse_provider(value: &Value, path: String, env: Env) -> Result<Provider> {
    let obj = Obj::new(value, path)?;
    obj.only(&[
        "name",
        "issuer",
        "audiences",
        "jwks",
        "user_claims",
        "algorithms",
        "clock_skew_seconds",
        "preset",
        "tenant_id",
        "client_id",
        "org_url",
        "authorization_server",
        "hosted_domains",
        "issuer_aliases",
        "required_claims",
        "required_scopes",
        "groups_overage",
        "opaque_tokens",
    ])?;
    let name = obj.required_str("name")?;
    if name.len() > 64 || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) {
        return Err(error(&obj.child("name"), "must be 1 to 64 letters, digits, '-', '_' or '.'"));
    }
    let preset = read_preset(&obj)?;
    let (preset_kind, defaults) = match preset {
        Some((kind, values)) => (Some(kind), Some(values)),
        None => (None, None),
    };

    let issuer = match (obj.get("issuer"), &defaults) {
        (None, Some(d)) => d.issuer.clone(),
        _ => obj.required_str("issuer")?,
    };
    if issuer.ends_with("/.well-known/openid-configuration") {
        return Err(error(
            &obj.child("issuer"),
            "ends with /.well-known/openid-configuration: remove that suffix, the issuer is the URL before it",
        ));
    }
    let explicit_aliases =
        obj.get("issuer_aliases").map(|v| strings(v, &obj.child("issuer_aliases"))).transpose()?;
    let issuer_aliases = match (explicit_aliases, &defaults) {
        (Some(aliases), _) => aliases,
        (None, Some(d)) => d.issuer_aliases.clone(),
        (None, None) => Vec::new(),
    };
    let audiences = match (obj.get("audiences"), defaults.as_ref().and_then(|d| d.audiences.clone())) {
        (None, Some(preset_audiences)) => preset_audiences,
        (None, None) if defaults.is_some() => {
            return Err(error(&obj.child("client_id"), "required with a preset unless audiences is set"))
        }
        _ => non_empty_strings(obj.required("audiences")?, &obj.child("audiences"))?,
    };
    let preset_keys = defaults.as_ref().map(|d| &d.keys);
    let jwks = parse_jwks_source(obj.required("jwks")?, obj.child("jwks"), &issuer, preset_keys)?;
    let user_claims = match (obj.optional_strings("user_claims")?, &defaults) {
        (Some(claims), _) => claims,
        (None, Some(d)) => d.user_claims.clone(),
        (None, None) => DEFAULT_USER_CLAIMS.iter().map(|s| (*s).to_owned()).collect(),
    };
    let algorithms = parse_algorithms(&obj)?;
    let clock_skew_seconds =
        obj.u64_in("clock_skew_seconds", DEFAULT_CLOCK_SKEW_SECONDS, 0, MAX_CLOCK_SKEW_SECONDS)?;
    let pins = defaults.as_ref().map(|d| d.required_claims.clone()).unwrap_or_default();
    let required_claims = match obj.get("required_claims") {
        Some(v) => {
            merge_required_claims(pins, parse_required_claims(v, &obj.child("required_claims"))?, &obj)?
        }
        None => pins,
    };
    let required_scopes = match obj.get("required_scopes") {
        None => Vec::new(),
        Some(v) => strings(v, &obj.child("required_scopes"))?,
    };
    let groups_overage = match obj.optional_str("groups_overage")?.as_deref() {
        None | Some("flag") => OveragePolicy::Flag,
        Some("deny") => OveragePolicy::Deny,
        Some(_) => return Err(error(&obj.child("groups_overage"), "must be flag or deny")),
    };
    let hosted_domains = defaults.map(|d| d.hosted_domains).unwrap_or_default();
    let opaque_tokens = obj
        .get("opaque_tokens")
        .map(|v| parse_opaque_tokens(v, obj.child("opaque_tokens"), env))
        .transpose()?;
    Ok(Provider {
        name,
        issuer,
        issuer_aliases,
        audiences,
        jwks,
        user_claims,
        algorithms,
        clock_skew_seconds,
        preset: preset_kind,
        required_claims,
        required_scopes,
        groups_overage,
        hosted_domains,
        opaque_tokens,
    })
}

fn parse_algorithms(obj: &Obj) -> Result<AlgorithmSet> {
    let Some(names) = obj.optional_strings("algorithms")? else { return Ok(AlgorithmSet::all()) };
    let mut algs = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let path = format!("{}[{i}]", obj.child("algorithms"));
        match Algorithm::parse(name) {
            AlgorithmName::Supported(alg) => algs.push(alg),
            AlgorithmName::Forbidden => {
                return Err(error(&path, "none and HMAC algorithms are never accepted"))
            }
            AlgorithmName::Unknown => return Err(error(&path, "unsupported algorithm")),
        }
    }
    Ok(algs.into_iter().collect())
}

fn parse_required_claims(value: &Value, path: &str) -> Result<Vec<(String, Vec<String>)>> {
    let map = value.as_object().ok_or_else(|| error(path, "must be an object"))?;
    map.iter()
        .map(|(claim, accepted)| {
            let claim_path = format!("{path}.{claim}");
            let values = match accepted {
                Value::String(_) => vec![string(accepted, &claim_path)?],
                _ => non_empty_strings(accepted, &claim_path)?,
            };
            Ok((claim.clone(), values))
        })
        .collect()
}

/// A preset's pins (Entra `tid`, Google `hd`) are security, not defaults: explicit entries are added
/// to them, each entry must hold. An explicit entry for a pinned claim that shares no value with the
/// pin would refuse every token, so it is a configuration error.
fn merge_required_claims(
    pins: Vec<(String, Vec<String>)>,
    explicit: Vec<(String, Vec<String>)>,
    obj: &Obj,
) -> Result<Vec<(String, Vec<String>)>> {
    let mut merged = pins;
    for (claim, values) in explicit {
        if let Some((_, pinned)) = merged.iter().find(|(pinned_claim, _)| *pinned_claim == claim) {
            if !values.iter().any(|v| pinned.contains(v)) {
                return Err(error(
                    &format!("{}.{claim}", obj.child("required_claims")),
                    format!("the preset requires {claim} to be one of {pinned:?}; none of these is, so no token could pass"),
                ));
            }
        }
        merged.push((claim, values));
    }
    Ok(merged)
}

fn parse_jwks_source(
    value: &Value,
    path: String,
    issuer: &str,
    preset: Option<&PresetKeys>,
) -> Result<JwksSource> {
    let obj = Obj::new(value, path)?;
    const REMOTE_ONLY: [&str; 6] = [
        "cluster",
        "clusters",
        "refresh_seconds",
        "timeout_ms",
        "max_stale_seconds",
        "unknown_kid_refresh_seconds",
    ];
    let sources = ["inline", "uri", "discovery"];
    obj.only(&[&sources[..], &REMOTE_ONLY[..]].concat())?;
    let discovery = obj.bool_or("discovery", false)?;
    let inline = obj.get("inline").is_some();
    let uri = obj.get("uri").is_some();
    let explicit = usize::from(inline) + usize::from(uri) + usize::from(discovery);
    if explicit > 1 || (explicit == 0 && preset.is_none()) {
        return Err(error(&obj.path, "set exactly one of inline, uri, discovery"));
    }
    if inline {
        for remote_only in REMOTE_ONLY {
            if obj.get(remote_only).is_some() {
                return Err(error(&obj.child(remote_only), "only applies to uri or discovery"));
            }
        }
        let text = obj.required_str("inline")?;
        let (keys, skipped) =
            parse_jwks(text.as_bytes()).map_err(|e| error(&obj.child("inline"), e.to_string()))?;
        if let Some(first) = skipped.first() {
            return Err(error(
                &obj.child("inline"),
                format!(
                    "key {} is unusable: {}",
                    first.kid.as_deref().unwrap_or("without kid"),
                    first.reason
                ),
            ));
        }
        return Ok(JwksSource::Inline(Rc::new(keys)));
    }
    let discovery_url = || {
        let text = format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/'));
        parse_url(&text)
            .map(JwksLocation::Discovery)
            .map_err(|e| error(&obj.child("discovery"), format!("the issuer URL {e}")))
    };
    let location = if uri {
        let text = obj.required_str("uri")?;
        JwksLocation::Uri(parse_url(&text).map_err(|e| error(&obj.child("uri"), e))?)
    } else if discovery {
        discovery_url()?
    } else {
        match preset {
            Some(PresetKeys::Uri(text)) => {
                JwksLocation::Uri(parse_url(text).map_err(|e| error(&obj.child("uri"), e))?)
            }
            _ => discovery_url()?,
        }
    };
    let cluster = obj.required_str("cluster")?;
    let refresh_seconds = obj.u64_in("refresh_seconds", DEFAULT_REFRESH_SECONDS, 1, MAX_REFRESH_SECONDS)?;
    let timeout_ms = obj.u64_in("timeout_ms", DEFAULT_TIMEOUT_MS, 1, MAX_TIMEOUT_MS)?;
    let max_stale_seconds =
        obj.u64_in("max_stale_seconds", DEFAULT_MAX_STALE_SECONDS, refresh_seconds, MAX_STALE_SECONDS)?;
    let unknown_kid_refresh_seconds = obj.u64_in(
        "unknown_kid_refresh_seconds",
        DEFAULT_UNKNOWN_KID_REFRESH_SECONDS,
        1,
        MAX_REFRESH_SECONDS,
    )?;
    let clusters = match obj.get("clusters") {
        None => Vec::new(),
        Some(value) => {
            let path = obj.child("clusters");
            let map = value.as_object().ok_or_else(|| error(&path, "must be an object of host: cluster"))?;
            map.iter()
                .map(|(host, cluster)| {
                    Ok((host.to_ascii_lowercase(), string(cluster, &format!("{path}.{host}"))?))
                })
                .collect::<Result<Vec<_>>>()?
        }
    };
    if let JwksLocation::Uri(url) = &location {
        if let Some((host, _)) = clusters.iter().find(|(host, _)| *host != url.authority) {
            return Err(error(
                &format!("{}.{host}", obj.child("clusters")),
                "only applies with discovery (the uri's host uses jwks.cluster)",
            ));
        }
    }
    Ok(JwksSource::Remote(RemoteJwks {
        location,
        cluster,
        clusters,
        refresh_seconds,
        timeout_ms,
        max_stale_seconds,
        unknown_kid_refresh_seconds,
    }))
}

fn parse_opaque_tokens(value: &Value, path: String, env: Env) -> Result<OpaqueTokens> {
    let obj = Obj::new(value, path)?;
    obj.only(&[
        "style",
        "uri",
        "cluster",
        "timeout_ms",
        "cache_seconds",
        "client_id",
        "max_pending",
        "max_calls_per_second",
        "client_secret_env",
    ])?;
    let style = match obj.required_str("style")?.as_str() {
        "rfc7662" => OpaqueStyle::Rfc7662,
        "google_tokeninfo" => OpaqueStyle::GoogleTokeninfo,
        _ => return Err(error(&obj.child("style"), "must be rfc7662 or google_tokeninfo")),
    };
    let uri = parse_url(&obj.required_str("uri")?).map_err(|e| error(&obj.child("uri"), e))?;
    let cluster = obj.required_str("cluster")?;
    let timeout_ms = obj.u64_in("timeout_ms", DEFAULT_OPAQUE_TIMEOUT_MS, 1, MAX_TIMEOUT_MS)?;
    let cache_seconds =
        obj.u64_in("cache_seconds", DEFAULT_OPAQUE_CACHE_SECONDS, 0, MAX_OPAQUE_CACHE_SECONDS)?;
    let max_pending = obj.u64_in("max_pending", DEFAULT_OPAQUE_MAX_PENDING, 1, MAX_OPAQUE_PENDING)?;
    let max_pending = usize::try_from(max_pending).unwrap_or(usize::MAX);
    let max_calls_per_second =
        obj.u64_in("max_calls_per_second", DEFAULT_OPAQUE_CALLS_PER_SECOND, 1, MAX_OPAQUE_PENDING)?;
    let client_id = obj.optional_str("client_id")?;
    let secret_env = obj.optional_str("client_secret_env")?;
    if style == OpaqueStyle::GoogleTokeninfo {
        for key in ["client_id", "client_secret_env"] {
            if obj.get(key).is_some() {
                return Err(error(&obj.child(key), "only applies to style rfc7662"));
            }
        }
    }
    if secret_env.is_some() && client_id.is_none() {
        return Err(error(&obj.child("client_id"), "required with client_secret_env"));
    }
    let client_secret = match secret_env {
        None => None,
        Some(var) => match env(&var) {
            Some(secret) if !secret.is_empty() => Some(Secret(secret)),
            _ => {
                return Err(error(
                    &obj.child("client_secret_env"),
                    format!(
                    "environment variable {var} is not set for the Wasm VM (vm_config.environment_variables)"
                ),
                ))
            }
        },
    };
    Ok(OpaqueTokens {
        style,
        uri,
        cluster,
        timeout_ms,
        cache_seconds,
        max_pending,
        max_calls_per_second,
        client_id,
        client_secret,
    })
}
