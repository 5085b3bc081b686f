//! Fuzz target `json_scan`: see `harness/json_scan.rs` for what it feeds and the invariants it checks.
#![no_main]

#[path = "../harness/mod.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::json_scan::json_scan(data));
