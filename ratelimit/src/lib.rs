//! gateway-ratelimit: a rate-limit service for Envoy (RLS v3 `ShouldRateLimit`) that reads
//! envoyproxy/ratelimit's YAML and keeps its counters in Redis with envoyproxy/ratelimit's key
//! layout, so either server can take over the other's counters.

pub mod config;
pub mod counters;
pub mod limiter;
pub mod proto;
pub mod server;
pub mod window;
