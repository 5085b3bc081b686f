//! Fuzz target `p256_signature`: see `harness/ecdsa_signature.rs` for what it feeds and the invariants it checks.
#![no_main]

#[path = "../harness/mod.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(
    // Builds the keys (and our verifier's tables for them) and checks a valid signature before the first input's timeout runs.
    init: harness::p256_signature::run(&[0, 0]),
    |data: &[u8]| harness::p256_signature::run(data)
);
