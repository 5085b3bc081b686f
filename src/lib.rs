//! A proxy-wasm HTTP filter that lets a request reach an Anthropic Messages API gateway only with a
//! valid OIDC token or API key, and tells the upstream who the user is.
//!
//! Everything but `plugin` is pure and tested on the host; `plugin` is the thin layer that talks to
//! the proxy-wasm host.

pub mod api_keys;
pub mod authn;
pub mod budget;
pub mod config;
pub mod credential;
pub mod crypto;
pub mod delta_shape;
pub mod diagnosis;
pub mod discovery;
pub mod find_byte;
pub mod identity;
pub mod ids;
pub mod json_scan;
pub mod jwks;
pub mod key_fetch;
pub mod key_store;
pub mod metering;
pub mod metrics;
pub mod models;
pub mod opaque;
pub mod policy;
pub mod reason;
pub mod reply;
pub mod shared_keys;
pub mod sse;
pub mod strict_json;
pub mod struct_pb;
pub mod token;
pub mod token_cache;
pub mod url;
pub mod usage;
pub mod vm_state;

#[cfg(target_arch = "wasm32")]
mod plugin;
