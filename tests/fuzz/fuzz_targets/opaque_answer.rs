//! Fuzz target `opaque_answer`: see `harness::opaque_answer` for what it feeds and the invariants it checks.
#![no_main]

#[path = "../harness/mod.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::opaque_answer(data));
