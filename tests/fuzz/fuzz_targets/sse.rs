//! Fuzz target `sse`: see `harness/sse.rs` for what it feeds and the invariants it checks.
#![no_main]

#[path = "../harness/mod.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::sse::sse(data));
