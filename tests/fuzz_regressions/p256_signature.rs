//! `crypto::p256` against the `p256` crate (`harness::p256_signature`): the tests of
//! `ecdsa_signature.rs`.

use crate::harness::p256_signature as h;

const TARGET: &str = "p256_signature";
const BATCH: usize = 3000;

#[path = "ecdsa_signature.rs"]
mod tests;
