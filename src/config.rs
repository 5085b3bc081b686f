//! The plugin configuration: read from the JSON of the contract (or Envoy's binary `Struct`),
//! validated once, and compiled into the types the request path uses without re-checking.
//! Every error names the JSON path of the field and why it was refused.

use std::rc::Rc;

use serde_json::{Map, Value};

use crate::crypto::{Algorithm, AlgorithmName, AlgorithmSet};
use crate::jwks::{parse_jwks, KeySet};
use crate::url::{parse_url, Url};
use crate::{strict_json, struct_pb};

// Defaults: the contract's table.
pub const DEFAULT_REFRESH_SECONDS: u64 = 600;
pub const DEFAULT_TIMEOUT_MS: u64 = 5000;
pub const DEFAULT_CLOCK_SKEW_SECONDS: u64 = 60;
const DEFAULT_USER_CLAIMS: [&str; 2] = ["oid", "sub"];
const DEFAULT_TOKEN_HEADERS: [&str; 2] = ["authorization", "x-api-key"];

// Bounds that catch typos (a timeout in seconds where milliseconds were meant) without getting in
// the way of any real deployment.
const MAX_REFRESH_SECONDS: u64 = 7 * 24 * 3600;
const MAX_TIMEOUT_MS: u64 = 60_000;
const MAX_CLOCK_SKEW_SECONDS: u64 = 600;
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
}

#[derive(Debug)]
pub struct Provider {
    pub name: String,
    pub issuer: String,
    pub audiences: Vec<String>,
    pub jwks: JwksSource,
    pub user_claims: Vec<String>,
    pub algorithms: AlgorithmSet,
    pub clock_skew_seconds: u64,
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
    pub refresh_seconds: u64,
    pub timeout_ms: u64,
}

#[derive(Debug, PartialEq, Eq)]
pub enum JwksLocation {
    Uri(Url),
    /// The discovery document's URL, `<issuer>/.well-known/openid-configuration`.
    Discovery(Url),
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
}

impl HeaderNames {
    /// Every identity header: each is removed from incoming requests so a client cannot spoof it.
    pub fn all(&self) -> [&str; 7] {
        [
            &self.user_id,
            &self.email,
            &self.name,
            &self.groups,
            &self.provider,
            &self.tenant_id,
            &self.groups_overage,
        ]
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

type Result<T> = std::result::Result<T, ConfigError>;

fn error(path: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

/// Reads the bytes Envoy hands the plugin: JSON text (a `StringValue`, as Istio sends) or the
/// binary encoding of a `google.protobuf.Struct` (plain YAML in the Envoy config).
pub fn parse_plugin_configuration(bytes: &[u8]) -> Result<Config> {
    if bytes.len() > MAX_CONFIG_BYTES {
        return Err(error(
            "",
            format!(
                "configuration of {} bytes is over {MAX_CONFIG_BYTES}",
                bytes.len()
            ),
        ));
    }
    let looks_like_json = bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    let root = if looks_like_json {
        strict_json::parse_object(bytes).map_err(|e| error("", format!("not valid JSON: {e}")))?
    } else {
        struct_pb::decode_struct(bytes)
            .map_err(|e| error("", format!("not a JSON object or protobuf Struct: {}", e.0)))?
    };
    parse_config(&Value::Object(root))
}

/// Validates the configuration object and compiles it.
pub fn parse_config(root: &Value) -> Result<Config> {
    let root = Obj::new(root, String::new())?;
    root.only(&[
        "providers",
        "token_headers",
        "api_keys",
        "headers",
        "remove_credential",
    ])?;

    let api_keys = match root.get("api_keys") {
        None => Vec::new(),
        Some(v) => array(v, &root.child("api_keys"))?
            .iter()
            .enumerate()
            .map(|(i, v)| parse_api_key(v, format!("{}[{i}]", root.child("api_keys"))))
            .collect::<Result<_>>()?,
    };
    unique(
        api_keys.iter().map(|k: &ApiKey| k.name.as_str()),
        &root.child("api_keys"),
        "name",
    )?;

    let providers: Vec<Provider> = match root.get("providers") {
        None if api_keys.is_empty() => {
            return Err(error("providers", "required unless api_keys is set"))
        }
        None => Vec::new(),
        Some(v) => array(v, "providers")?
            .iter()
            .enumerate()
            .map(|(i, v)| parse_provider(v, format!("providers[{i}]")))
            .collect::<Result<_>>()?,
    };
    if providers.is_empty() && api_keys.is_empty() {
        return Err(error(
            "providers",
            "must not be empty unless api_keys is set",
        ));
    }
    unique(
        providers.iter().map(|p| p.name.as_str()),
        "providers",
        "name",
    )?;
    unique(
        providers.iter().map(|p| p.issuer.as_str()),
        "providers",
        "issuer",
    )?;

    let token_headers = match root.get("token_headers") {
        None => DEFAULT_TOKEN_HEADERS
            .iter()
            .map(|s| (*s).to_owned())
            .collect(),
        Some(v) => {
            let names = non_empty_strings(v, "token_headers")?;
            for (i, name) in names.iter().enumerate() {
                check_header_name(name, &format!("token_headers[{i}]"))?;
            }
            names
                .iter()
                .map(|n| n.to_ascii_lowercase())
                .collect::<Vec<_>>()
        }
    };
    unique(
        token_headers.iter().map(String::as_str),
        "token_headers",
        "value",
    )?;

    let headers = parse_header_names(root.get("headers"))?;
    for name in headers.all() {
        if token_headers.iter().any(|t| t == name) {
            return Err(error(
                "headers",
                format!("\"{name}\" is also a credential header in token_headers"),
            ));
        }
    }
    let remove_credential = match root.get("remove_credential") {
        None => true,
        Some(v) => v
            .as_bool()
            .ok_or_else(|| error("remove_credential", "must be true or false"))?,
    };
    Ok(Config {
        providers,
        token_headers,
        api_keys,
        headers,
        remove_credential,
    })
}

fn parse_provider(value: &Value, path: String) -> Result<Provider> {
    let obj = Obj::new(value, path)?;
    obj.only(&[
        "name",
        "issuer",
        "audiences",
        "jwks",
        "user_claims",
        "algorithms",
        "clock_skew_seconds",
    ])?;
    let name = obj.required_str("name")?;
    if name.len() > 64
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        return Err(error(
            &obj.child("name"),
            "must be 1 to 64 letters, digits, '-', '_' or '.'",
        ));
    }
    let issuer = obj.required_str("issuer")?;
    if issuer.ends_with("/.well-known/openid-configuration") {
        return Err(error(
            &obj.child("issuer"),
            "ends with /.well-known/openid-configuration: remove that suffix, the issuer is the URL before it",
        ));
    }
    let audiences = non_empty_strings(obj.required("audiences")?, &obj.child("audiences"))?;
    let jwks = parse_jwks_source(obj.required("jwks")?, obj.child("jwks"), &issuer)?;
    let user_claims = match obj.get("user_claims") {
        None => DEFAULT_USER_CLAIMS
            .iter()
            .map(|s| (*s).to_owned())
            .collect(),
        Some(v) => non_empty_strings(v, &obj.child("user_claims"))?,
    };
    let algorithms = match obj.get("algorithms") {
        None => AlgorithmSet::all(),
        Some(v) => {
            let names = non_empty_strings(v, &obj.child("algorithms"))?;
            let mut algs = Vec::new();
            for (i, name) in names.iter().enumerate() {
                match Algorithm::parse(name) {
                    AlgorithmName::Supported(alg) => algs.push(alg),
                    AlgorithmName::Forbidden => {
                        return Err(error(
                            &format!("{}[{i}]", obj.child("algorithms")),
                            "none and HMAC algorithms are never accepted",
                        ))
                    }
                    AlgorithmName::Unknown => {
                        return Err(error(
                            &format!("{}[{i}]", obj.child("algorithms")),
                            "unsupported algorithm",
                        ))
                    }
                }
            }
            algs.into_iter().collect()
        }
    };
    let clock_skew_seconds = obj.u64_in(
        "clock_skew_seconds",
        DEFAULT_CLOCK_SKEW_SECONDS,
        0,
        MAX_CLOCK_SKEW_SECONDS,
    )?;
    Ok(Provider {
        name,
        issuer,
        audiences,
        jwks,
        user_claims,
        algorithms,
        clock_skew_seconds,
    })
}

fn parse_jwks_source(value: &Value, path: String, issuer: &str) -> Result<JwksSource> {
    let obj = Obj::new(value, path)?;
    obj.only(&[
        "inline",
        "uri",
        "discovery",
        "cluster",
        "refresh_seconds",
        "timeout_ms",
    ])?;
    let discovery = match obj.get("discovery") {
        None => false,
        Some(v) => v
            .as_bool()
            .ok_or_else(|| error(&obj.child("discovery"), "must be true or false"))?,
    };
    let inline = obj.get("inline").is_some();
    let uri = obj.get("uri").is_some();
    if usize::from(inline) + usize::from(uri) + usize::from(discovery) != 1 {
        return Err(error(
            &obj.path,
            "set exactly one of inline, uri, discovery",
        ));
    }
    if inline {
        for remote_only in ["cluster", "refresh_seconds", "timeout_ms"] {
            if obj.get(remote_only).is_some() {
                return Err(error(
                    &obj.child(remote_only),
                    "only applies to uri or discovery",
                ));
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
    let location = if uri {
        let text = obj.required_str("uri")?;
        JwksLocation::Uri(parse_url(&text).map_err(|e| error(&obj.child("uri"), e))?)
    } else {
        let text = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        JwksLocation::Discovery(
            parse_url(&text)
                .map_err(|e| error(&obj.child("discovery"), format!("the issuer URL {e}")))?,
        )
    };
    let cluster = obj.required_str("cluster")?;
    let refresh_seconds = obj.u64_in(
        "refresh_seconds",
        DEFAULT_REFRESH_SECONDS,
        1,
        MAX_REFRESH_SECONDS,
    )?;
    let timeout_ms = obj.u64_in("timeout_ms", DEFAULT_TIMEOUT_MS, 1, MAX_TIMEOUT_MS)?;
    Ok(JwksSource::Remote(RemoteJwks {
        location,
        cluster,
        refresh_seconds,
        timeout_ms,
    }))
}

fn parse_api_key(value: &Value, path: String) -> Result<ApiKey> {
    let obj = Obj::new(value, path)?;
    obj.only(&["name", "sha256", "groups"])?;
    let name = obj.required_str("name")?;
    if name.bytes().any(|b| b.is_ascii_control()) || name.len() > 256 {
        return Err(error(
            &obj.child("name"),
            "must be at most 256 characters without control characters",
        ));
    }
    let hex = obj.required_str("sha256")?;
    let sha256 = decode_sha256_hex(&hex).ok_or_else(|| {
        error(
            &obj.child("sha256"),
            "must be 64 hex digits (the SHA-256 of the key)",
        )
    })?;
    let groups = match obj.get("groups") {
        None => Vec::new(),
        Some(v) => strings(v, &obj.child("groups"))?,
    };
    Ok(ApiKey {
        name,
        sha256,
        groups,
    })
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
    };
    let Some(value) = value else {
        return Ok(defaults);
    };
    let obj = Obj::new(value, "headers".into())?;
    obj.only(&[
        "user_id",
        "email",
        "name",
        "groups",
        "provider",
        "tenant_id",
        "groups_overage",
    ])?;
    let pick = |key: &str, default: String| -> Result<String> {
        match obj.get(key) {
            None => Ok(default),
            Some(_) => {
                let name = obj.required_str(key)?;
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
    };
    unique(names.all().into_iter(), "headers", "header name")?;
    Ok(names)
}

/// RFC 9110 token characters; pseudo-headers (`:path`) and `host` are not ours to set or strip.
fn check_header_name(name: &str, path: &str) -> Result<()> {
    let token = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
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

fn unique<'a>(values: impl Iterator<Item = &'a str>, path: &str, what: &str) -> Result<()> {
    let mut seen: Vec<&str> = Vec::new();
    for v in values {
        if seen.contains(&v) {
            return Err(error(path, format!("{what} \"{v}\" appears twice")));
        }
        seen.push(v);
    }
    Ok(())
}

fn array<'a>(value: &'a Value, path: &str) -> Result<&'a Vec<Value>> {
    value
        .as_array()
        .ok_or_else(|| error(path, "must be an array"))
}

fn strings(value: &Value, path: &str) -> Result<Vec<String>> {
    array(value, path)?
        .iter()
        .enumerate()
        .map(|(i, v)| match v {
            Value::String(s) if !s.is_empty() => Ok(s.clone()),
            Value::String(_) => Err(error(&format!("{path}[{i}]"), "must not be empty")),
            _ => Err(error(&format!("{path}[{i}]"), "must be a string")),
        })
        .collect()
}

fn non_empty_strings(value: &Value, path: &str) -> Result<Vec<String>> {
    let values = strings(value, path)?;
    if values.is_empty() {
        return Err(error(path, "must not be empty"));
    }
    Ok(values)
}

/// An object being read, with its JSON path for error messages.
struct Obj<'a> {
    map: &'a Map<String, Value>,
    path: String,
}

impl<'a> Obj<'a> {
    fn new(value: &'a Value, path: String) -> Result<Self> {
        match value.as_object() {
            Some(map) => Ok(Obj { map, path }),
            None => Err(error(&path, "must be an object")),
        }
    }

    fn child(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// Unknown keys are errors: a typo in a security setting must stop the plugin, not be ignored.
    fn only(&self, allowed: &[&str]) -> Result<()> {
        match self.map.keys().find(|k| !allowed.contains(&k.as_str())) {
            Some(k) => Err(error(&self.child(k), "unknown field")),
            None => Ok(()),
        }
    }

    fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key)
    }

    fn required(&self, key: &str) -> Result<&'a Value> {
        self.get(key)
            .ok_or_else(|| error(&self.child(key), "required"))
    }

    fn required_str(&self, key: &str) -> Result<String> {
        match self.required(key)? {
            Value::String(s) if !s.is_empty() => Ok(s.clone()),
            Value::String(_) => Err(error(&self.child(key), "must not be empty")),
            _ => Err(error(&self.child(key), "must be a string")),
        }
    }

    fn u64_in(&self, key: &str, default: u64, min: u64, max: u64) -> Result<u64> {
        let Some(value) = self.get(key) else {
            return Ok(default);
        };
        match value.as_u64() {
            Some(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(error(
                &self.child(key),
                format!("must be a whole number from {min} to {max}"),
            )),
        }
    }
}
