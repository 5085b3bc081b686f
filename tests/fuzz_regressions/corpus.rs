//! Every checked-in seed (tests/fuzz/seeds/<target>) and every saved failing input
//! (tests/fuzz_regressions/inputs/<target>) through its fuzz target's harness function, so the
//! harness and its invariants stay in step with the code without running the fuzzer.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use crate::harness;

pub fn replay(target: &str, run: fn(&[u8])) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let mut inputs = 0;
    let mut failures = Vec::new();
    for dir in [root.join("fuzz/seeds").join(target), root.join("fuzz_regressions/inputs").join(target)] {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        let mut paths: Vec<_> = entries.map(|e| e.unwrap().path()).collect();
        paths.sort();
        for path in paths {
            let data = std::fs::read(&path).unwrap();
            inputs += 1;
            if catch_unwind(AssertUnwindSafe(|| run(&data))).is_err() {
                failures.push(path.display().to_string());
            }
        }
    }
    assert!(inputs > 0, "no inputs for {target}");
    assert!(failures.is_empty(), "{target} fails on {} input(s): {failures:#?}", failures.len());
}

#[test]
fn token() {
    replay("token", harness::token);
}

#[test]
fn jwks() {
    replay("jwks", harness::jwks);
}

#[test]
fn discovery() {
    replay("discovery", harness::discovery);
}

#[test]
fn config() {
    replay("config", harness::config);
}

#[test]
fn decision() {
    replay("decision", harness::decision);
}

#[test]
fn opaque_answer() {
    replay("opaque_answer", harness::opaque_answer);
}

#[test]
fn rsa_signature() {
    replay("rsa_signature", harness::rsa_signature);
}

#[test]
fn json_scan() {
    replay("json_scan", harness::json_scan::json_scan);
}

#[test]
fn sse() {
    replay("sse", harness::sse::sse);
}
