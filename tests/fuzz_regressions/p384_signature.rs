//! `crypto::p384` against the `p384` crate (`harness::p384_signature`): the tests of
//! `ecdsa_signature.rs`.

use crate::harness::p384_signature as h;

const TARGET: &str = "p384_signature";
/// Fewer than for P-256: each input costs ~4 times as much in the unoptimised test build.
const BATCH: usize = 1000;

#[path = "ecdsa_signature.rs"]
mod tests;
