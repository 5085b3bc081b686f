//! Host tests across modules, on the `rlib`: token verification, configuration, the request flow.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod authn_flow;
mod config_table;
mod fixtures;
mod json_scan;
/// The json_scan fuzz target's reference and helpers, shared with the host tests.
#[path = "../fuzz/harness/json_scan.rs"]
#[allow(dead_code)] // the fuzz body itself runs in tests/fuzz_regressions
mod json_scan_oracle;
mod key_fetch;
mod key_lifecycle;
mod models;
mod opaque_tokens;
mod presets;
mod usage_stream;
mod verify;
