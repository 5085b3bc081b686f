//! Fuzz target `jwt_simple_diff`: see `harness/jwt_simple_diff.rs` for what it feeds and the invariants it checks.
#![no_main]

#[path = "../harness/mod.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(
    // Builds the keys and configuration, and checks a valid RS256 token, before the first input's timeout runs.
    init: harness::jwt_simple_diff::jwt_simple_diff(&[0]),
    |data: &[u8]| harness::jwt_simple_diff::jwt_simple_diff(data)
);
