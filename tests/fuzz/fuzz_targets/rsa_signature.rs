//! Fuzz target `rsa_signature`: see `harness::rsa_signature` for what it feeds and the invariants it checks.
#![no_main]

#[path = "../harness/mod.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(
    // Generating the test keys takes seconds under ASan: do it before the first input's timeout runs.
    init: harness::rsa_signature(&[]),
    |data: &[u8]| harness::rsa_signature(data)
);
