//! Regression tests from fuzzing (tests/fuzz), run by plain `cargo test`: every input a fuzz target
//! failed on, replayed through the very harness the fuzzer ran (`tests/fuzz/harness`, included
//! below), and corner inputs the fuzzer reached, with their exact outcomes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
// The ECDSA harness and tests are included once per curve, on purpose.
#![allow(clippy::duplicate_mod)]

#[path = "../fuzz/harness/mod.rs"]
mod harness;

mod config;
mod corpus;
mod decision;
mod discovery;
mod jwks;
mod jwt_simple_diff;
mod opaque_answer;
mod p256_signature;
mod p384_signature;
mod rsa_signature;
mod token;
