//! Host tests across modules, on the `rlib`: token verification, configuration, the request flow.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod authn_flow;
mod config_table;
mod fixtures;
mod key_fetch;
mod key_lifecycle;
mod opaque_tokens;
mod presets;
mod verify;
