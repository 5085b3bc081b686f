//! The plugin configuration: read from the JSON of the contract (or Envoy's binary `Struct`),
//! validated once, and compiled into the types the request path uses without re-checking.
//! Every error names the JSON path of the field and why it was refused.

mod models;
mod preset;
mod provider;
mod reader;
mod usage;

use serde_json::Value;

pub use preset::Preset;
pub use provider::{
    JwksLocation, JwksSource, OpaqueStyle, OpaqueTokens, OveragePolicy, Provider, RemoteJwks, Secret,
};
use reader::{array, error, non_empty_strings, strings, unique, Obj, Result};

use crate::credential::{
    DEFAULT_MAX_CREDENTIAL_BYTES, MAX_CREDENTIAL_BYTES_LIMIT, MIN_CREDENTIAL_BYTES_LIMIT,
};
use crate::ids::ProviderId;
use crate::{strict_json, struct_pb};
pub use usage::{Budgets, Usage};

const DEFAULT_TOKEN_HEADERS: [&str; 2] = ["authorization", "x-api-key"];
/// The configuration is a few KiB; a megabyte is a mistake (or an attack on the VM's memory).
pub const MAX_CONFIG_BYTES: usize = 1024 * 1024;

#[derive(Debug)]
pub struct Config {
    pub providers: Vec<Provider>,
    /// Lowercased header names, in the order they are looked at.
    pub token_headers: Vec<String>,
    pub api_keys: Vec<ApiKey>,
    pub headers: HeaderNames,
    pub remove_credential: bool,
    pub token_cache: CacheLimits,
    pub limits: Limits,
    pub usage: Usage,
    pub budgets: Budgets,
    pub models: crate::models::Models,
}

/// Bounds on what a request may present (an extension of the contract: `limits`).
#[derive(Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest credential read from a token header; a longer one is refused before any decoding.
    pub max_credential_bytes: usize,
}

impl Config {
    /// The provider whose `issuer` or one of its `issuer_aliases` is exactly `iss`.
    pub fn provider_for_issuer(&self, iss: &str) -> Option<(ProviderId, &Provider)> {
        self.providers
            .iter()
            .enumerate()
            .find(|(_, p)| p.accepts_issuer(iss))
            .map(|(i, p)| (ProviderId(i), p))
    }

    /// The provider that validates opaque tokens, if one does (at most one may).
    pub fn opaque_provider(&self) -> Option<(ProviderId, &Provider)> {
        self.providers
            .iter()
            .enumerate()
            .find(|(_, p)| p.opaque_tokens.is_some())
            .map(|(i, p)| (ProviderId(i), p))
    }

    pub fn provider(&self, id: ProviderId) -> Option<&Provider> {
        self.providers.get(id.0)
    }

    /// A provider's name for logs and metrics; `?` for an id from another configuration.
    pub fn provider_name(&self, id: ProviderId) -> &str {
        self.provider(id).map_or("?", |p| p.name.as_str())
    }
}

/// Bounds of the verified-token cache (`token_cache`), an extension of the contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheLimits {
    pub max_entries: usize,
    pub max_bytes: usize,
    /// 0 turns the cache off.
    pub max_seconds: u64,
}

#[derive(Debug)]
pub struct ApiKey {
    pub name: String,
    pub sha256: [u8; 32],
    pub groups: Vec<String>,
}

#[derive(Debug, PartialEq, Eq)]
pub struct HeaderNames {
    pub user_id: String,
    pub email: String,
    pub name: String,
    pub groups: String,
    pub provider: String,
    pub tenant_id: String,
    pub groups_overage: String,
    pub budget_group: String,
}

impl HeaderNames {
    /// Every identity header: each is removed from incoming requests so a client cannot spoof it.
    /// A new identity header is one more entry here.
    pub fn all(&self) -> [&str; 8] {
        [
            &self.user_id,
            &self.email,
            &self.name,
            &self.groups,
            &self.provider,
            &self.tenant_id,
            &self.groups_overage,
            &self.budget_group,
        ]
    }

    /// The names among `incoming` to remove before anything else: every identity header, and every
    /// name that equals one once `_` is read as `-`, in any case. CGI and WSGI upstreams (gunicorn,
    /// Werkzeug, PHP) read `x_gateway_user_id` and `x-gateway-user-id` as the same
    /// `HTTP_X_GATEWAY_USER_ID`, so a twin a client sends would stand in for the real header.
    pub fn spoofed<'h>(&self, incoming: &'h [(String, String)]) -> Vec<&'h str> {
        let same = |a: &str, b: &str| {
            a.len() == b.len()
                && a.bytes().zip(b.bytes()).all(|(x, y)| dash(x).eq_ignore_ascii_case(&dash(y)))
        };
        let mut out: Vec<&str> = Vec::new();
        for (name, _) in incoming {
            if !out.contains(&name.as_str()) && self.all().iter().any(|ours| same(name, ours)) {
                out.push(name);
            }
        }
        out
    }
}

fn dash(byte: u8) -> u8 {
    if byte == b'_' {
        b'-'
    } else {
        byte
    }
}

#[derive(Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub path: String,
    pub reason: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.reason)
        } else {
            write!(f, "{}: {}", self.path, self.reason)
        }
    }
}

/// Where secrets named in the configuration (`client_secret_env`) are looked up: the VM's
/// environment in Envoy, a map in tests.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Reads the bytes Envoy hands the plugin: JSON text (a `StringValue`, as Istio sends) or the
/// binary encoding of a `google.protobuf.Struct` (plain YAML in the Envoy config).
pub fn parse_plugin_configuration(bytes: &[u8], env: Env) -> Result<Config> {
    if bytes.len() > MAX_CONFIG_BYTES {
        return Err(error("", format!("configuration of {} bytes is over {MAX_CONFIG_BYTES}", bytes.len())));
    }
    // A Struct's encoding starts with 0x0a (a newline to JSON) and may go on with `{`: the first
    // byte cannot tell the two forms apart, so the form that decodes wins, JSON first.
    let root = match strict_json::parse_object(bytes) {
        Ok(root) => root,
        Err(json_error) => match struct_pb::decode_struct(bytes) {
            Ok(root) => root,
            Err(pb_error) => {
                let looks_like_json = bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
                let reason = if looks_like_json {
                    format!("not valid JSON: {json_error}")
                } else {
                    format!("not a JSON object or protobuf Struct: {}", pb_error.0)
                };
                return Err(error("", reason));
            }
        },
    };
    parse_config_with_env(&Value::Object(root), env)
}

/// Validates the configuration object and compiles it, with an empty environment.
pub fn parse_config(root: &Value) -> Result<Config> {
    parse_config_with_env(root, &|_| None)
}

pub fn parse_config_with_env(root: &Value, env: Env) -> Result<Config> {
    let root = Obj::new(root, String::new())?;
    root.only(&[
        "providers",
        "token_headers",
        "api_keys",
        "headers",
        "remove_credential",
        "token_cache",
        "limits",
        "usage",
        "budget_groups",
        "default_budget_group",
        "models",
    ])?;

    let api_keys = match root.get("api_keys") {
        None => Vec::new(),
        Some(v) => array(v, "api_keys")?
            .iter()
            .enumerate()
            .map(|(i, v)| parse_api_key(v, format!("api_keys[{i}]")))
            .collect::<Result<_>>()?,
    };
    unique(api_keys.iter().map(|k: &ApiKey| k.name.as_str()), "api_keys", "name")?;

    let providers: Vec<Provider> = match root.get("providers") {
        None if api_keys.is_empty() => return Err(error("providers", "required unless api_keys is set")),
        None => Vec::new(),
        Some(v) => array(v, "providers")?
            .iter()
            .enumerate()
            .map(|(i, v)| provider::parse_provider(v, format!("providers[{i}]"), env))
            .collect::<Result<_>>()?,
    };
    if providers.is_empty() && api_keys.is_empty() {
        return Err(error("providers", "must not be empty unless api_keys is set"));
    }
    unique(providers.iter().map(|p| p.name.as_str()), "providers", "name")?;
    unique(providers.iter().flat_map(Provider::issuers), "providers", "issuer")?;
    if providers.iter().filter(|p| p.opaque_tokens.is_some()).count() > 1 {
        return Err(error("providers", "at most one provider may have opaque_tokens"));
    }

    let token_headers = match root.get("token_headers") {
        None => DEFAULT_TOKEN_HEADERS.iter().map(|s| (*s).to_owned()).collect(),
        Some(v) => {
            let names = non_empty_strings(v, "token_headers")?;
            for (i, name) in names.iter().enumerate() {
                check_header_name(name, &format!("token_headers[{i}]"))?;
            }
            names.iter().map(|n| n.to_ascii_lowercase()).collect::<Vec<_>>()
        }
    };
    unique(token_headers.iter().map(String::as_str), "token_headers", "value")?;

    let headers = parse_header_names(root.get("headers"))?;
    for name in headers.all() {
        if token_headers.iter().any(|t| t == name) {
            return Err(error("headers", format!("\"{name}\" is also a credential header in token_headers")));
        }
    }
    let remove_credential = root.bool_or("remove_credential", true)?;
    let token_cache = parse_cache_limits(root.get("token_cache"))?;
    let limits = parse_limits(root.get("limits"))?;
    let models = models::parse_models(root.get("models"))?;
    let usage = usage::parse_usage(root.get("usage"))?;
    let budgets = usage::parse_budgets(root.get("budget_groups"), root.get("default_budget_group"))?;
    Ok(Config {
        providers,
        token_headers,
        api_keys,
        headers,
        remove_credential,
        token_cache,
        limits,
        usage,
        budgets,
        models,
    })
}

/// `limits.max_credential_bytes`: 16 KiB fits real ID tokens; Keycloak and ADFS tokens with many
/// roles need more, and Envoy admits 60 KiB of request headers, hence at most 64 KiB.
fn parse_limits(value: Option<&Value>) -> Result<Limits> {
    let defaults = Limits { max_credential_bytes: DEFAULT_MAX_CREDENTIAL_BYTES };
    let Some(value) = value else { return Ok(defaults) };
    let obj = Obj::new(value, "limits".into())?;
    obj.only(&["max_credential_bytes"])?;
    let max = obj.u64_in(
        "max_credential_bytes",
        DEFAULT_MAX_CREDENTIAL_BYTES as u64,
        MIN_CREDENTIAL_BYTES_LIMIT as u64,
        MAX_CREDENTIAL_BYTES_LIMIT as u64,
    )?;
    Ok(Limits { max_credential_bytes: usize::try_from(max).unwrap_or(MAX_CREDENTIAL_BYTES_LIMIT) })
}

/// An extension of the contract: the verified-token cache (see `token_cache`).
fn parse_cache_limits(value: Option<&Value>) -> Result<CacheLimits> {
    let defaults = CacheLimits { max_entries: 10_000, max_bytes: 16 * 1024 * 1024, max_seconds: 600 };
    let Some(value) = value else { return Ok(defaults) };
    let obj = Obj::new(value, "token_cache".into())?;
    obj.only(&["max_entries", "max_bytes", "max_seconds"])?;
    let to_usize = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
    Ok(CacheLimits {
        max_entries: to_usize(obj.u64_in("max_entries", defaults.max_entries as u64, 0, 1_000_000)?),
        max_bytes: to_usize(obj.u64_in("max_bytes", defaults.max_bytes as u64, 0, 1 << 30)?),
        max_seconds: obj.u64_in("max_seconds", defaults.max_seconds, 0, 24 * 3600)?,
    })
}

fn parse_api_key(value: &Value, path: String) -> Result<ApiKey> {
    let obj = Obj::new(value, path)?;
    obj.only(&["name", "sha256", "groups"])?;
    let name = obj.required_str("name")?;
    if name.bytes().any(|b| b.is_ascii_control()) || name.len() > 256 {
        return Err(error(&obj.child("name"), "must be at most 256 characters without control characters"));
    }
    let hex = obj.required_str("sha256")?;
    let sha256 = decode_sha256_hex(&hex)
        .ok_or_else(|| error(&obj.child("sha256"), "must be 64 hex digits (the SHA-256 of the key)"))?;
    let groups = match obj.get("groups") {
        None => Vec::new(),
        Some(v) => strings(v, &obj.child("groups"))?,
    };
    Ok(ApiKey { name, sha256, groups })
}

fn parse_header_names(value: Option<&Value>) -> Result<HeaderNames> {
    let defaults = HeaderNames {
        user_id: "x-gateway-user-id".into(),
        email: "x-gateway-user-email".into(),
        name: "x-gateway-user-name".into(),
        groups: "x-gateway-user-groups".into(),
        provider: "x-gateway-provider".into(),
        tenant_id: "x-gateway-tenant-id".into(),
        groups_overage: "x-gateway-groups-overage".into(),
        budget_group: "x-gateway-budget-group".into(),
    };
    let Some(value) = value else { return Ok(defaults) };
    let obj = Obj::new(value, "headers".into())?;
    obj.only(&[
        "user_id",
        "email",
        "name",
        "groups",
        "provider",
        "tenant_id",
        "groups_overage",
        "budget_group",
    ])?;
    let pick = |key: &str, default: String| -> Result<String> {
        match obj.optional_str(key)? {
            None => Ok(default),
            Some(name) => {
                check_header_name(&name, &obj.child(key))?;
                Ok(name.to_ascii_lowercase())
            }
        }
    };
    let names = HeaderNames {
        user_id: pick("user_id", defaults.user_id)?,
        email: pick("email", defaults.email)?,
        name: pick("name", defaults.name)?,
        groups: pick("groups", defaults.groups)?,
        provider: pick("provider", defaults.provider)?,
        tenant_id: pick("tenant_id", defaults.tenant_id)?,
        groups_overage: pick("groups_overage", defaults.groups_overage)?,
        budget_group: pick("budget_group", defaults.budget_group)?,
    };
    unique(names.all().into_iter(), "headers", "header name")?;
    Ok(names)
}

/// RFC 9110 token characters; pseudo-headers (`:path`) and `host` are not ours to set or strip.
fn check_header_name(name: &str, path: &str) -> Result<()> {
    let token = !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !token {
        return Err(error(path, "is not a valid HTTP header name"));
    }
    if name.eq_ignore_ascii_case("host") {
        return Err(error(path, "must not be the host header"));
    }
    Ok(())
}

fn decode_sha256_hex(hex: &str) -> Option<[u8; 32]> {
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        let text = std::str::from_utf8(pair).ok()?;
        *byte = u8::from_str_radix(text, 16).ok()?;
    }
    Some(out)
}
