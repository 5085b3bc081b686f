//! Known-answer tests of `gateway_filter::crypto::PublicKey` for ES256, ES384 and EdDSA: the
//! Wycheproof vectors and the RFC 7515 / RFC 8037 JWS examples.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod known_answer;
mod wycheproof_vectors;

use gateway_filter::crypto::{Algorithm, PublicKey};

/// Asserts that a signature valid under `alg` verifies under no other algorithm: the key decides
/// which algorithm it answers to (a P-256 key never ES384, EdDSA or RS256, a P-384 key never ES256,
/// an Ed25519 key never ES256), not the shape of the signature.
pub fn assert_other_algorithms_refuse(key: &PublicKey, alg: Algorithm, msg: &[u8], sig: &[u8], ctx: &str) {
    for other in Algorithm::ALL.into_iter().filter(|a| *a != alg) {
        assert!(!key.verify(other, msg, sig), "{ctx}: {alg:?} signature accepted as {other:?}");
    }
}
