//! Host calls the filter makes, wrapped so a host error becomes a value instead of the SDK's panic.

use std::time::{Duration, UNIX_EPOCH};

use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, MapType, MetricType, Status};

use crate::key_fetch::{SharedStore, StoreError};
use crate::reply::Reply;

/// Request headers in one host call; values that are not UTF-8 are read lossily (such a value is
/// never a valid credential, and identity headers are removed by name whatever their value).
pub fn request_headers() -> Result<Vec<(String, String)>, Status> {
    Ok(hostcalls::get_map_bytes(MapType::HttpRequestHeaders)?
        .into_iter()
        .map(|(name, value)| {
            // Takes the bytes as they are when they are UTF-8 (always, for a credential): no copy.
            let value = String::from_utf8(value)
                .unwrap_or_else(|invalid| String::from_utf8_lossy(invalid.as_bytes()).into_owned());
            (name, value)
        })
        .collect())
}

pub fn remove_request_header(name: &str) -> Result<(), Status> {
    hostcalls::set_map_value(MapType::HttpRequestHeaders, name, None)
}

pub fn set_request_header(name: &str, value: &str) -> Result<(), Status> {
    hostcalls::set_map_value(MapType::HttpRequestHeaders, name, Some(value))
}

/// Filter state `wasm.<name>`, readable in access logs as `%FILTER_STATE(wasm.<name>:PLAIN)%`.
pub fn set_property(name: &str, value: &str) -> Result<(), Status> {
    hostcalls::set_property(vec![name], Some(value.as_bytes()))
}

pub fn response_header(name: &str) -> Option<String> {
    hostcalls::get_map_value(MapType::HttpResponseHeaders, name).ok().flatten()
}

/// The first `size` bytes of the request body the host holds now (in a body callback, the chunk
/// being handed over; while the request is paused, everything buffered); `None` if unreadable.
pub fn request_body(size: usize) -> Option<Vec<u8>> {
    hostcalls::get_buffer(BufferType::HttpRequestBody, 0, size).ok().map(Option::unwrap_or_default)
}

pub fn response_body(size: usize) -> Option<Vec<u8>> {
    hostcalls::get_buffer(BufferType::HttpResponseBody, 0, size).ok().map(Option::unwrap_or_default)
}

/// A fresh `request-id` for an answer the filter sends itself (`reply::request_id`).
pub fn request_id() -> String {
    crate::reply::request_id([random_u64(), random_u64()])
}

pub fn send_reply(reply: &Reply) -> Result<(), Status> {
    let headers = reply.headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    hostcalls::send_http_response(reply.status, headers, Some(reply.body.as_bytes()))
}

pub fn resume_request() -> Result<(), Status> {
    hostcalls::resume_http_request()
}

pub fn set_effective_context(context_id: u32) -> Result<(), Status> {
    hostcalls::set_effective_context(context_id)
}

/// Seconds since the Unix epoch by the host's clock; 0 if the host cannot say (every token then
/// looks not yet valid rather than forever valid).
pub fn now_seconds() -> u64 {
    hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs())
}

pub fn dispatch_get(
    cluster: &str,
    authority: &str,
    path: &str,
    scheme: &str,
    timeout_ms: u64,
) -> Result<u32, Status> {
    let headers = vec![
        (":method", "GET"),
        (":path", path),
        (":authority", authority),
        (":scheme", scheme),
        ("accept", "application/json"),
    ];
    hostcalls::dispatch_http_call(cluster, headers, None, vec![], Duration::from_millis(timeout_ms))
}

pub fn call_response_status() -> Option<u32> {
    hostcalls::get_map_value(MapType::HttpCallResponseHeaders, ":status")
        .ok()
        .flatten()
        .and_then(|s| s.parse().ok())
}

pub fn call_response_body(size: usize) -> Option<Vec<u8>> {
    match hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, size) {
        Ok(Some(body)) => Some(body),
        Ok(None) => Some(Vec::new()),
        Err(_) => None,
    }
}

pub fn set_tick_period(period: Duration) -> Result<(), Status> {
    hostcalls::set_tick_period(period)
}

pub fn plugin_configuration(size: usize) -> Option<Vec<u8>> {
    hostcalls::get_buffer(BufferType::PluginConfiguration, 0, size).ok().map(Option::unwrap_or_default)
}

/// A variable of the VM's environment (`vm_config.environment_variables`).
pub fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

pub fn host_log_level() -> Option<proxy_wasm::types::LogLevel> {
    hostcalls::get_log_level().ok()
}

/// A dispatched call with any method and body (introspection POSTs).
pub fn dispatch(
    cluster: &str,
    headers: &[(&str, String)],
    body: Option<&[u8]>,
    timeout_ms: u64,
) -> Result<u32, Status> {
    let headers = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    hostcalls::dispatch_http_call(cluster, headers, body, vec![], Duration::from_millis(timeout_ms))
}

/// The shared data of this VM id (all workers).
pub struct HostStore;

impl SharedStore for HostStore {
    fn get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>) {
        hostcalls::get_shared_data(key).unwrap_or((None, None))
    }

    fn set(&mut self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError> {
        hostcalls::set_shared_data(key, Some(value), cas).map_err(|status| match status {
            Status::CasMismatch => StoreError::CasMismatch,
            _ => StoreError::Refused,
        })
    }
}

pub fn define_metric(gauge: bool, name: &str) -> Option<u32> {
    let kind = if gauge { MetricType::Gauge } else { MetricType::Counter };
    hostcalls::define_metric(kind, name).ok()
}

pub fn increment_metric(id: u32) {
    let _ = hostcalls::increment_metric(id, 1);
}

pub fn add_metric(id: u32, n: u64) {
    let _ = hostcalls::increment_metric(id, i64::try_from(n).unwrap_or(i64::MAX));
}

pub fn record_metric(id: u32, value: u64) {
    let _ = hostcalls::record_metric(id, value);
}

/// A random 128-bit key (for the token cache's keyed hash).
pub fn random_key() -> [u8; 16] {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&random_u64().to_le_bytes());
    key[8..].copy_from_slice(&random_u64().to_le_bytes());
    key
}

/// A fraction in 0..1 that spreads retries (`KeyStore::fetch_failed`).
pub fn jitter() -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let jitter = (random_u64() % 1000) as f64 / 1000.0;
    jitter
}

/// 64 unpredictable bits: SipHash output under std's per-thread random keys, which WASI
/// `random_get` seeds; each call uses fresh keys (std advances them per `RandomState`).
pub fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(now_seconds());
    hasher.finish()
}
