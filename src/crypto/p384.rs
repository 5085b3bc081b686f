//! Verification-only ECDSA over P-384 with SHA-384 (FIPS 186-4 §6.4, SEC 1 v2 §4.1.4): JWS ES384.
//!
//! The verifier is `ecdsa`'s, shared with P-256 (why not the `p384` crate, and how it is fast,
//! are described there): it replaces the `p384` crate, whose constant-time verification took
//! ~8 ms in V8, 20-50 times an RS256 verification, which made forged ES384 tokens a cheap way to
//! burn a worker's CPU (bench/p256/RESULTS.md has the figures). This module holds the curve's
//! constants and its field arithmetic: elements are 12×32-bit limbs reduced by the fast reduction
//! for p = 2^384 - 2^128 - 2^96 + 2^32 - 1. Everything must be exact; nothing here panics.

#![forbid(unsafe_code)]

use std::sync::OnceLock;

use sha2::{Digest, Sha384};

use super::ecdsa::{self, column, cross, cross_plus_square, Affine, Curve, Key, Tables, G_TABLE_LEN};

/// A P-384 public key: a point checked to be on the curve, and its tables for verification
/// (computed at its first verification, 9 KiB).
#[derive(Clone, Debug)]
pub struct P384PublicKey(Key<P384, 12>);

impl P384PublicKey {
    /// Key from big-endian affine coordinates of 48 bytes each (JWK `x`, `y`). `None` unless both
    /// are below p and the point is on the curve.
    pub fn new(x: &[u8], y: &[u8]) -> Option<Self> {
        Key::new(x, y).map(P384PublicKey)
    }

    /// ES384 verification (RFC 7518 §3.4): `signature` is the 96-byte `r || s`, big-endian.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        self.verify_prehash(&Sha384::digest(message).into(), signature)
    }

    /// ECDSA verification of a SHA-384 `digest`. The digest is as long as n, so it is used whole
    /// as the integer e, without truncation.
    pub fn verify_prehash(&self, digest: &[u8; 48], signature: &[u8]) -> bool {
        self.0.verify_prehash(digest, signature)
    }
}

/// The curve P-384 (FIPS 186-4 D.1.2.4).
#[derive(Debug)]
enum P384 {}

/// A 384-bit integer as twelve 32-bit limbs, least significant first.
type Limbs = [u32; 12];

impl Curve<12> for P384 {
    /// p = 2^384 - 2^128 - 2^96 + 2^32 - 1.
    const P: Limbs = [
        0xffff_ffff,
        0,
        0,
        0xffff_ffff,
        0xffff_fffe,
        0xffff_ffff,
        0xffff_ffff,
        0xffff_ffff,
        0xffff_ffff,
        0xffff_ffff,
        0xffff_ffff,
        0xffff_ffff,
    ];
    const N: Limbs = [
        0xccc5_2973,
        0xecec_196a,
        0x48b0_a77a,
        0x581a_0db2,
        0xf437_2ddf,
        0xc763_4d81,
        0xffff_ffff,
        0xffff_ffff,
        0xffff_ffff,
        0xffff_ffff,
        0xffff_ffff,
        0xffff_ffff,
    ];
    const N_NEG_INV: u32 = 0xe88f_dc45;
    const B: Limbs = [
        0xd3ec_2aef,
        0x2a85_c8ed,
        0x8a2e_d19d,
        0xc656_398d,
        0x5013_875a,
        0x0314_088f,
        0xfe81_4112,
        0x181d_9c6e,
        0xe3f8_2d19,
        0x988e_056b,
        0xe23e_e7e4,
        0xb331_2fa7,
    ];
    const GX: Limbs = [
        0x7276_0ab7,
        0x3a54_5e38,
        0xbf55_296c,
        0x5502_f25d,
        0x8254_2a38,
        0x59f7_41e0,
        0x8ba7_9b98,
        0x6e1d_3b62,
        0xf320_ad74,
        0x8eb1_c71e,
        0xbe8b_0537,
        0xaa87_ca22,
    ];
    const GY: Limbs = [
        0x90ea_0e5f,
        0x7a43_1d7c,
        0x1d7e_819d,
        0x0a60_b1ce,
        0xb5f0_b8c0,
        0xe9da_3113,
        0x289a_147c,
        0xf8f4_1dbd,
        0x9292_dc29,
        0x5d9e_98bf,
        0x9626_2c6f,
        0x3617_de4a,
    ];
    fn add(
        &[a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11]: &Limbs,
        &[b0, b1, b2, b3, b4, b5, b6, b7, b8, b9, b10, b11]: &Limbs,
    ) -> Limbs {
        let w = |a: u32, b: u32| i64::from(a) + i64::from(b);
        reduce_words([
            w(a0, b0),
            w(a1, b1),
            w(a2, b2),
            w(a3, b3),
            w(a4, b4),
            w(a5, b5),
            w(a6, b6),
            w(a7, b7),
            w(a8, b8),
            w(a9, b9),
            w(a10, b10),
            w(a11, b11),
        ])
    }

    fn sub(
        &[a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11]: &Limbs,
        &[b0, b1, b2, b3, b4, b5, b6, b7, b8, b9, b10, b11]: &Limbs,
    ) -> Limbs {
        let w = |a: u32, b: u32| i64::from(a) - i64::from(b);
        reduce_words([
            w(a0, b0),
            w(a1, b1),
            w(a2, b2),
            w(a3, b3),
            w(a4, b4),
            w(a5, b5),
            w(a6, b6),
            w(a7, b7),
            w(a8, b8),
            w(a9, b9),
            w(a10, b10),
            w(a11, b11),
        ])
    }

    fn times(&[a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11]: &Limbs, k: i64) -> Limbs {
        let w = |a: u32| k * i64::from(a);
        reduce_words([w(a0), w(a1), w(a2), w(a3), w(a4), w(a5), w(a6), w(a7), w(a8), w(a9), w(a10), w(a11)])
    }

    fn mul(a: &Limbs, b: &Limbs) -> Limbs {
        reduce_wide(&mul_wide(a, b))
    }

    fn square(a: &Limbs) -> Limbs {
        reduce_wide(&sqr_wide(a))
    }

    fn g_tables() -> &'static Tables<P384, 12, G_TABLE_LEN> {
        static TABLES: OnceLock<Box<Tables<P384, 12, G_TABLE_LEN>>> = OnceLock::new();
        TABLES.get_or_init(|| ecdsa::comb_tables(&Affine::G))
    }
}

// ---------------------------------------------------------------------------------------------
// The field of integers mod p
//
// Written out limb by limb like P-256's, for the same reason: V8 does not unroll loops.

/// A 768-bit product as column sums: the value is Σ c_k·2^(32k), each c_k below 2^37 but not
/// carried into the next.
type Columns = [u64; 24];

/// a·b by product scanning (Comba): the products of each column together, split into halves.
/// Fully unrolled, which V8 does not do by itself, and no carry chain through the products.
fn mul_wide(a: &Limbs, b: &Limbs) -> Columns {
    let [a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11] = widen(a);
    let [b0, b1, b2, b3, b4, b5, b6, b7, b8, b9, b10, b11] = widen(b);
    columns([
        column!(a0 * b0),
        column!(a0 * b1, a1 * b0),
        column!(a0 * b2, a1 * b1, a2 * b0),
        column!(a0 * b3, a1 * b2, a2 * b1, a3 * b0),
        column!(a0 * b4, a1 * b3, a2 * b2, a3 * b1, a4 * b0),
        column!(a0 * b5, a1 * b4, a2 * b3, a3 * b2, a4 * b1, a5 * b0),
        column!(a0 * b6, a1 * b5, a2 * b4, a3 * b3, a4 * b2, a5 * b1, a6 * b0),
        column!(a0 * b7, a1 * b6, a2 * b5, a3 * b4, a4 * b3, a5 * b2, a6 * b1, a7 * b0),
        column!(a0 * b8, a1 * b7, a2 * b6, a3 * b5, a4 * b4, a5 * b3, a6 * b2, a7 * b1, a8 * b0),
        column!(a0 * b9, a1 * b8, a2 * b7, a3 * b6, a4 * b5, a5 * b4, a6 * b3, a7 * b2, a8 * b1, a9 * b0),
        column!(
            a0 * b10,
            a1 * b9,
            a2 * b8,
            a3 * b7,
            a4 * b6,
            a5 * b5,
            a6 * b4,
            a7 * b3,
            a8 * b2,
            a9 * b1,
            a10 * b0
        ),
        column!(
            a0 * b11,
            a1 * b10,
            a2 * b9,
            a3 * b8,
            a4 * b7,
            a5 * b6,
            a6 * b5,
            a7 * b4,
            a8 * b3,
            a9 * b2,
            a10 * b1,
            a11 * b0
        ),
        column!(
            a1 * b11,
            a2 * b10,
            a3 * b9,
            a4 * b8,
            a5 * b7,
            a6 * b6,
            a7 * b5,
            a8 * b4,
            a9 * b3,
            a10 * b2,
            a11 * b1
        ),
        column!(a2 * b11, a3 * b10, a4 * b9, a5 * b8, a6 * b7, a7 * b6, a8 * b5, a9 * b4, a10 * b3, a11 * b2),
        column!(a3 * b11, a4 * b10, a5 * b9, a6 * b8, a7 * b7, a8 * b6, a9 * b5, a10 * b4, a11 * b3),
        column!(a4 * b11, a5 * b10, a6 * b9, a7 * b8, a8 * b7, a9 * b6, a10 * b5, a11 * b4),
        column!(a5 * b11, a6 * b10, a7 * b9, a8 * b8, a9 * b7, a10 * b6, a11 * b5),
        column!(a6 * b11, a7 * b10, a8 * b9, a9 * b8, a10 * b7, a11 * b6),
        column!(a7 * b11, a8 * b10, a9 * b9, a10 * b8, a11 * b7),
        column!(a8 * b11, a9 * b10, a10 * b9, a11 * b8),
        column!(a9 * b11, a10 * b10, a11 * b9),
        column!(a10 * b11, a11 * b10),
        column!(a11 * b11),
    ])
}

/// a^2: each cross product a_i·a_j (i < j) once, doubled, plus the squares a_i^2; 78
/// multiplications instead of 144.
fn sqr_wide(a: &Limbs) -> Columns {
    let [a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11] = widen(a);
    let none = (0, 0);
    columns([
        cross_plus_square(none, a0),
        cross(column!(a0 * a1)),
        cross_plus_square(column!(a0 * a2), a1),
        cross(column!(a0 * a3, a1 * a2)),
        cross_plus_square(column!(a0 * a4, a1 * a3), a2),
        cross(column!(a0 * a5, a1 * a4, a2 * a3)),
        cross_plus_square(column!(a0 * a6, a1 * a5, a2 * a4), a3),
        cross(column!(a0 * a7, a1 * a6, a2 * a5, a3 * a4)),
        cross_plus_square(column!(a0 * a8, a1 * a7, a2 * a6, a3 * a5), a4),
        cross(column!(a0 * a9, a1 * a8, a2 * a7, a3 * a6, a4 * a5)),
        cross_plus_square(column!(a0 * a10, a1 * a9, a2 * a8, a3 * a7, a4 * a6), a5),
        cross(column!(a0 * a11, a1 * a10, a2 * a9, a3 * a8, a4 * a7, a5 * a6)),
        cross_plus_square(column!(a1 * a11, a2 * a10, a3 * a9, a4 * a8, a5 * a7), a6),
        cross(column!(a2 * a11, a3 * a10, a4 * a9, a5 * a8, a6 * a7)),
        cross_plus_square(column!(a3 * a11, a4 * a10, a5 * a9, a6 * a8), a7),
        cross(column!(a4 * a11, a5 * a10, a6 * a9, a7 * a8)),
        cross_plus_square(column!(a5 * a11, a6 * a10, a7 * a9), a8),
        cross(column!(a6 * a11, a7 * a10, a8 * a9)),
        cross_plus_square(column!(a7 * a11, a8 * a10), a9),
        cross(column!(a8 * a11, a9 * a10)),
        cross_plus_square(column!(a9 * a11), a10),
        cross(column!(a10 * a11)),
        cross_plus_square(none, a11),
    ])
}

fn widen(&[a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11]: &Limbs) -> [u64; 12] {
    let w = u64::from;
    [w(a0), w(a1), w(a2), w(a3), w(a4), w(a5), w(a6), w(a7), w(a8), w(a9), w(a10), w(a11)]
}

/// Column sums from the 23 columns' (low, high) halves: the high halves of column k weigh
/// 2^(32(k+1)), so they join column k + 1. At most 24 halves meet in one, so each sum is below
/// 2^37.
fn columns(halves: [(u64, u64); 23]) -> Columns {
    let [h0, h1, h2, h3, h4, h5, h6, h7, h8, h9, h10, h11, h12, h13, h14, h15, h16, h17, h18, h19, h20, h21, h22] =
        halves;
    let c = |(lo, _): (u64, u64), (_, hi): (u64, u64)| lo + hi;
    [
        h0.0,
        c(h1, h0),
        c(h2, h1),
        c(h3, h2),
        c(h4, h3),
        c(h5, h4),
        c(h6, h5),
        c(h7, h6),
        c(h8, h7),
        c(h9, h8),
        c(h10, h9),
        c(h11, h10),
        c(h12, h11),
        c(h13, h12),
        c(h14, h13),
        c(h15, h14),
        c(h16, h15),
        c(h17, h16),
        c(h18, h17),
        c(h19, h18),
        c(h20, h19),
        c(h21, h20),
        c(h22, h21),
        h22.1,
    ]
}

/// c mod p by the fast reduction for p = 2^384 - 2^128 - 2^96 + 2^32 - 1 (FIPS 186-4 D.2.4;
/// Solinas, "Generalized Mersenne numbers", 1999): 2^384 ≡ 2^128 + 2^96 - 2^32 + 1 (mod p), so
/// each c_k of weight 2^(32k), k ≥ 12, folds into words k - 8, k - 9, k - 11 and k - 12 (and
/// those above 11 fold again). The identity is linear in the c_k, so it holds for column sums that
/// were never carried; summed here word by word in signed 64-bit accumulators.
fn reduce_wide(c: &Columns) -> Limbs {
    let [c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13, c14, c15, c16, c17, c18, c19, c20, c21, c22, c23] =
        signed(c);
    // Each word sums at most 11 column sums (counted with their multiplicity): below 2^41.
    reduce_words([
        c0 + c12 + c20 + c21 - c23,
        c1 + c13 + c22 + c23 - c12 - c20,
        c2 + c14 + c23 - c13 - c21,
        c3 + c12 + c15 + c20 + c21 - c14 - c22 - c23,
        c4 + c12 + c13 + c16 + c20 + 2 * c21 + c22 - c15 - 2 * c23,
        c5 + c13 + c14 + c17 + c21 + 2 * c22 + c23 - c16,
        c6 + c14 + c15 + c18 + c22 + 2 * c23 - c17,
        c7 + c15 + c16 + c19 + c23 - c18,
        c8 + c16 + c17 + c20 - c19,
        c9 + c17 + c18 + c21 - c20,
        c10 + c18 + c19 + c22 - c21,
        c11 + c19 + c20 + c23 - c22,
    ])
}

/// Column sums as signed words (exact: they are below 2^37).
fn signed(
    &[c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13, c14, c15, c16, c17, c18, c19, c20, c21, c22, c23]: &Columns,
) -> [i64; 24] {
    let s = |x: u64| x as i64;
    [
        s(c0),
        s(c1),
        s(c2),
        s(c3),
        s(c4),
        s(c5),
        s(c6),
        s(c7),
        s(c8),
        s(c9),
        s(c10),
        s(c11),
        s(c12),
        s(c13),
        s(c14),
        s(c15),
        s(c16),
        s(c17),
        s(c18),
        s(c19),
        s(c20),
        s(c21),
        s(c22),
        s(c23),
    ]
}

/// Σ w_j·2^(32j) mod p as a value below 2^384, for signed words of size below 2^41: the whole
/// is then below 2^394 in size, so the carry out of the top, c, is below 2^10. Folding c·2^384
/// back in as c·(2^128 + 2^96 - 2^32 + 1), its residue, leaves a value in (-2^139,
/// 2^384 + 2^139): a carry of at most ±1, whose fold leaves none.
fn reduce_words(words: [i64; 12]) -> Limbs {
    let (mut limbs, mut carry) = carry_words(words);
    while carry != 0 {
        (limbs, carry) = fold((limbs, carry));
    }
    limbs
}

/// limbs + carry·2^384 as limbs + carry·(2^128 + 2^96 - 2^32 + 1), carried again.
fn fold(([l0, l1, l2, l3, l4, l5, l6, l7, l8, l9, l10, l11], carry): (Limbs, i64)) -> (Limbs, i64) {
    let w = i64::from;
    carry_words([
        w(l0) + carry,
        w(l1) - carry,
        w(l2),
        w(l3) + carry,
        w(l4) + carry,
        w(l5),
        w(l6),
        w(l7),
        w(l8),
        w(l9),
        w(l10),
        w(l11),
    ])
}

/// Signed 64-bit words (weights 2^0, 2^32, …, 2^352) to 32-bit limbs and the signed carry out of
/// the top (weight 2^384).
fn carry_words([w0, w1, w2, w3, w4, w5, w6, w7, w8, w9, w10, w11]: [i64; 12]) -> (Limbs, i64) {
    let mut acc: i64 = 0;
    let mut limb = |w: i64| {
        acc += w;
        let low = acc as u32;
        // Arithmetic shift: floor division, so the limb is acc mod 2^32 and the rest carries.
        acc >>= 32;
        low
    };
    let limbs = [
        limb(w0),
        limb(w1),
        limb(w2),
        limb(w3),
        limb(w4),
        limb(w5),
        limb(w6),
        limb(w7),
        limb(w8),
        limb(w9),
        limb(w10),
        limb(w11),
    ];
    (limbs, acc)
}

#[cfg(test)]
mod tests {
    use super::ecdsa::{add_limbs, less_than, sub_limbs, Q_TABLE_LEN};
    use super::*;
    use p384::elliptic_curve::sec1::ToEncodedPoint;
    use p384::elliptic_curve::{Field, Group, PrimeField};
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use rsa::BigUint;

    type Fe = ecdsa::Fe<P384, 12>;
    type Jacobian = ecdsa::Jacobian<P384, 12>;
    const ONE: Limbs = ecdsa::one();

    fn big(a: &[u32]) -> BigUint {
        BigUint::from_slice(a)
    }

    fn limbs(x: &BigUint) -> Limbs {
        let mut bytes = x.to_bytes_le();
        assert!(bytes.len() <= 48, "{x} is over 384 bits");
        bytes.resize(48, 0);
        bytes.reverse();
        ecdsa::limbs_from_be(&bytes).unwrap()
    }

    fn be(a: &Limbs) -> [u8; 48] {
        let mut out = [0u8; 48];
        for (chunk, limb) in out.rchunks_exact_mut(4).zip(a) {
            chunk.copy_from_slice(&limb.to_be_bytes());
        }
        out
    }

    fn p() -> BigUint {
        big(&P384::P)
    }

    fn n() -> BigUint {
        big(&P384::N)
    }

    fn residue(x: &Fe) -> BigUint {
        big(&x.canonical())
    }

    /// Values below `m` that stress carries and borrows (the limbs of p are 0, 2^32 - 1 and
    /// 2^32 - 2), then random ones.
    fn samples(m: &BigUint, rng: &mut StdRng, random: usize) -> Vec<Limbs> {
        let one = BigUint::from(1u8);
        let mut v: Vec<BigUint> = vec![
            BigUint::from(0u8),
            one.clone(),
            BigUint::from(2u8),
            m - &one,
            m - 2u8,
            m >> 1usize,
            &one << 383usize,
            (&one << 128usize) - &one,
            (&one << 96usize) + (&one << 32usize),
            (&one << 384usize) - (&one << 128usize) - &one,
        ];
        for _ in 0..random {
            let mut bytes = [0u8; 48];
            rng.fill(&mut bytes[..]);
            v.push(BigUint::from_bytes_be(&bytes) % m);
        }
        v.iter().map(|x| limbs(&(x % m))).collect()
    }

    #[test]
    fn constants() {
        let one = BigUint::from(1u8);
        let two = |k: usize| &one << k;
        assert_eq!(p(), two(384) - two(128) - two(96) + two(32) - &one);
        let g = p384::AffinePoint::GENERATOR.to_encoded_point(false);
        assert_eq!(be(&P384::GX)[..], g.x().unwrap()[..]);
        assert_eq!(be(&P384::GY)[..], g.y().unwrap()[..]);
        assert!(Affine::<P384, 12>::G.is_on_curve());
        // n: the order of G, which the p384 crate's scalars wrap at.
        let n_minus_1 = -p384::Scalar::ONE;
        assert_eq!(BigUint::from_bytes_be(&n_minus_1.to_bytes()) + 1u8, n());
        assert_eq!(P384::N[0].wrapping_mul(P384::N_NEG_INV), u32::MAX);
        // b: G satisfies y^2 = x^3 - 3x + b.
        let (x, y) = (big(&P384::GX), big(&P384::GY));
        assert_eq!((&y * &y) % p(), (&x * &x * &x + big(&P384::B) + &p() * 3u8 - &x * 3u8) % p());
    }

    /// Inputs anywhere below 2^384 (elements need not be below p), results compared as residues.
    #[test]
    fn field_arithmetic_matches_bigint() {
        let mut rng = StdRng::seed_from_u64(1);
        let p = p();
        let two_384 = BigUint::from(1u8) << 384usize;
        let mut values = samples(&p, &mut rng, 16);
        values.extend(samples(&two_384, &mut rng, 8));
        values.extend([
            P384::P,
            add_limbs(&P384::P, &ONE).0,
            [u32::MAX; 12],
            add_limbs(&P384::P, &P384::P).0,
        ]);
        for a in &values {
            let (fa, ba) = (Fe::new(*a), big(a) % &p);
            assert_eq!(fa.canonical(), limbs(&ba));
            assert_eq!(fa.is_zero(), ba == BigUint::from(0u8));
            assert_eq!(residue(&fa.square()), &ba * &ba % &p);
            assert_eq!(residue(&-fa), (&p - &ba) % &p);
            for k in [3u8, 4, 8] {
                assert_eq!(residue(&fa.times(k.into())), &ba * k % &p);
            }
            let inv = fa.invert();
            if ba == BigUint::from(0u8) {
                assert!(inv.is_zero());
            } else {
                assert_eq!(residue(&inv), ba.modpow(&(&p - 2u8), &p), "1/{ba}");
            }
            for b in &values {
                let (fb, bb) = (Fe::new(*b), big(b) % &p);
                assert_eq!(residue(&(fa + fb)), (&ba + &bb) % &p);
                assert_eq!(residue(&(fa - fb)), (&ba + &p - &bb) % &p);
                assert_eq!(residue(&(fa * fb)), &ba * &bb % &p);
                assert_eq!(fa == fb, ba == bb);
            }
        }
    }

    #[test]
    fn products_match_bigint() {
        let mut rng = StdRng::seed_from_u64(6);
        let two_384 = BigUint::from(1u8) << 384usize;
        let mut values = samples(&two_384, &mut rng, 30);
        values.extend([[u32::MAX; 12], [0xffff_0000; 12], [0x0000_ffff; 12]]);
        let value = |c: &Columns| c.iter().rev().fold(BigUint::from(0u8), |acc, &ck| (acc << 32usize) + ck);
        for a in &values {
            assert_eq!(value(&sqr_wide(a)), big(a) * big(a));
            for b in &values {
                assert_eq!(value(&mul_wide(a, b)), big(a) * big(b));
            }
        }
    }

    /// Words at the extremes of the range `reduce_words` is for: every word 0, the largest or its
    /// negative, in random combinations and in the uniform ones.
    #[test]
    fn reduction_of_extreme_words() {
        let p = p();
        let max = (1i64 << 41) - 1;
        let mut rng = StdRng::seed_from_u64(7);
        let mut combos: Vec<[i64; 12]> =
            (0..4000).map(|_| [0; 12].map(|_: i64| [0, max, -max][rng.gen_range(0..3)])).collect();
        combos.extend([[max; 12], [-max; 12], [0; 12]]);
        for words in combos {
            let (mut pos, mut neg) = (BigUint::from(0u8), BigUint::from(0u8));
            for (j, w) in words.iter().enumerate() {
                let term = BigUint::from(w.unsigned_abs()) << (32 * j);
                if *w > 0 {
                    pos += term;
                } else {
                    neg += term;
                }
            }
            let expected = (pos + (&p << 20usize) - neg) % &p;
            assert_eq!(residue(&Fe::new(reduce_words(words))), expected, "{words:?}");
        }
    }

    /// The coefficient of column sum k in word j of the reduction, from 2^384 ≡ 2^128 + 2^96 -
    /// 2^32 + 1 (mod p) applied until every weight is below 2^384.
    fn reduction_coefficients() -> [[i64; 24]; 12] {
        fn place(m: &mut [[i64; 24]; 12], k: usize, pos: usize, c: i64) {
            if pos < 12 {
                m[pos][k] += c;
            } else {
                for (offset, sign) in [(4, 1), (3, 1), (1, -1), (0, 1)] {
                    place(m, k, pos - 12 + offset, c * sign);
                }
            }
        }
        let mut m = [[0i64; 24]; 12];
        for k in 0..24 {
            place(&mut m, k, k, 1);
        }
        m
    }

    /// The reduction's word sums are linear in the 24 column sums, so each word is largest and
    /// smallest where the column sums it adds are at their maximum and those it subtracts are 0,
    /// or the reverse: those corners for every word, single columns, and random inputs.
    #[test]
    fn reduction_of_extreme_and_random_inputs() {
        let p = p();
        let top = (1u64 << 37) - 1;
        let mut rng = StdRng::seed_from_u64(2);
        let mut inputs: Vec<Columns> =
            (0..3000).map(|_| [0u64; 24].map(|_| rng.gen::<u64>() >> 27)).collect();
        inputs.extend((0..3000).map(|_| [0u64; 24].map(|_| if rng.gen() { top } else { 0 })));
        for k in 0..24 {
            let mut c = [0u64; 24];
            c[k] = top;
            inputs.push(c);
        }
        let coefficients = reduction_coefficients();
        for row in &coefficients {
            // The bound `reduce_wide` relies on: at most 11 column sums per word.
            assert!(row.iter().map(|c| c.abs()).sum::<i64>() <= 11, "{row:?}");
            inputs.push(row.map(|c| if c > 0 { top } else { 0 }));
            inputs.push(row.map(|c| if c < 0 { top } else { 0 }));
        }
        inputs.extend([[top; 24], [0; 24]]);
        let value = |c: &Columns| c.iter().rev().fold(BigUint::from(0u8), |acc, &ck| (acc << 32usize) + ck);
        for c in inputs {
            assert_eq!(residue(&Fe::new(reduce_wide(&c))), value(&c) % &p, "{c:x?}");
        }
    }

    fn affine_of(p: &Jacobian) -> Option<Affine<P384, 12>> {
        if p.is_infinity() {
            return None;
        }
        let z_inv = p.z.invert();
        Some(Affine { x: p.x * z_inv.square(), y: p.y * z_inv.square() * z_inv })
    }

    fn from_p384(p: &p384::ProjectivePoint) -> Affine<P384, 12> {
        let e = p.to_affine().to_encoded_point(false);
        Affine { x: Fe::from_be(e.x().unwrap()).unwrap(), y: Fe::from_be(e.y().unwrap()).unwrap() }
    }

    fn p384_scalar(k: &Limbs) -> p384::Scalar {
        p384::Scalar::from_repr(be(k).into()).unwrap()
    }

    /// u1·G + u2·Q, Q's tables computed for the occasion.
    fn mul2(u1: &Limbs, u2: &Limbs, q: &Affine<P384, 12>) -> Jacobian {
        ecdsa::double_mul(u1, u2, &ecdsa::comb_tables::<P384, 12, Q_TABLE_LEN>(q))
    }

    #[test]
    fn scalar_multiples_match_p384() {
        let mut rng = StdRng::seed_from_u64(5);
        let g = p384::ProjectivePoint::GENERATOR;
        for k in 1u64..=20 {
            let mut u1 = [0u32; 12];
            u1[0] = k as u32;
            let ours = mul2(&u1, &[0; 12], &Affine::G);
            assert_eq!(affine_of(&ours), Some(from_p384(&(g * p384::Scalar::from(k)))), "{k}G");
        }
        let q_secret = p384::Scalar::random(&mut rng);
        let q = from_p384(&(g * q_secret));
        for (a, b) in samples(&n(), &mut rng, 12).iter().zip(samples(&n(), &mut rng, 12).iter().rev()) {
            let expected = g * p384_scalar(a) + g * q_secret * p384_scalar(b);
            let ours = mul2(a, b, &q);
            if bool::from(expected.is_identity()) {
                assert!(ours.is_infinity());
            } else {
                assert_eq!(affine_of(&ours), Some(from_p384(&expected)));
            }
        }
    }

    #[test]
    fn group_order() {
        let n = P384::N;
        let n_minus_1 = sub_limbs(&n, &ONE).0;
        let q = from_p384(&(p384::ProjectivePoint::GENERATOR * p384::Scalar::from(12345u64)));
        assert!(mul2(&n, &[0; 12], &q).is_infinity());
        assert!(mul2(&[0; 12], &n, &q).is_infinity());
        assert_eq!(affine_of(&mul2(&n_minus_1, &[0; 12], &q)), Some(-Affine::G));
        assert_eq!(affine_of(&mul2(&[0; 12], &n_minus_1, &q)), Some(-q));
        assert!(mul2(&n_minus_1, &ONE, &Affine::G).is_infinity());
        assert!(mul2(&ONE, &n_minus_1, &Affine::G).is_infinity());
    }

    /// Entry i of chunk c's table is (2i + 1)·2^(32c)·P.
    #[test]
    fn tables() {
        let g = p384::ProjectivePoint::GENERATOR;
        let two_32 = p384::Scalar::from(1u64 << 32);
        let q = g * p384::Scalar::from(98765u64);
        let check = |tables: &[[Affine<P384, 12>; 8]], p: &p384::ProjectivePoint| {
            let mut base = *p;
            for table in tables {
                for (i, entry) in table.iter().enumerate() {
                    assert_eq!(*entry, from_p384(&(base * p384::Scalar::from(2 * i as u64 + 1))));
                }
                base *= two_32;
            }
        };
        check(&ecdsa::comb_tables::<P384, 12, Q_TABLE_LEN>(&from_p384(&q))[..], &q);
        let g_tables: Vec<[Affine<P384, 12>; 8]> =
            P384::g_tables().iter().map(|t| t[..8].try_into().unwrap()).collect();
        check(&g_tables, &g);
        assert_eq!(P384::g_tables()[3][63], from_p384(&(g * p384::Scalar::from(127u64) * two_32.pow([3]))));
    }

    fn sig(r: &Limbs, s: &Limbs) -> Vec<u8> {
        [be(r), be(s)].concat()
    }

    /// Our verdict on a prehashed signature, checked against the p384 crate's.
    fn check(q: &Affine<P384, 12>, digest: &Limbs, r: &Limbs, s: &Limbs, expected: bool, what: &str) {
        let key = P384PublicKey(Key::from_point(*q));
        assert_eq!(key.verify_prehash(&be(digest), &sig(r, s)), expected, "{what}");
        use p384::ecdsa::signature::hazmat::PrehashVerifier;
        let theirs =
            p384::ecdsa::VerifyingKey::from_sec1_bytes(&[&[4], &be(&q.x.0)[..], &be(&q.y.0)].concat())
                .unwrap()
                .verify_prehash(&be(digest), &p384::ecdsa::Signature::from_slice(&sig(r, s)).unwrap())
                .is_ok();
        assert_eq!(theirs, expected, "p384 crate: {what}");
    }

    fn reduce_n(x: &Fe) -> Limbs {
        limbs(&(residue(x) % n()))
    }

    #[test]
    fn signatures_of_the_p384_crate() {
        use p384::ecdsa::signature::Signer;
        let mut rng = StdRng::seed_from_u64(8);
        let signing = p384::ecdsa::SigningKey::random(&mut rng);
        let point = signing.verifying_key().to_encoded_point(false);
        let key = P384PublicKey::new(point.x().unwrap(), point.y().unwrap()).unwrap();
        for len in [0usize, 1, 55, 200] {
            let message: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
            let signature: p384::ecdsa::Signature = signing.sign(&message);
            let bytes = signature.to_bytes();
            assert!(key.verify(&message, &bytes));
            assert!(!key.verify(&[message.clone(), vec![0]].concat(), &bytes));
            assert!(!key.verify(&message, &bytes[..95]));
            assert!(!key.verify(&message, &[&bytes[..], &[0]].concat()));
            // s and n - s are both valid (no low-s rule); r ± 1, s + n and r = 0 are not.
            let r: Limbs = ecdsa::limbs_from_be(&bytes[..48]).unwrap();
            let s: Limbs = ecdsa::limbs_from_be(&bytes[48..]).unwrap();
            assert!(key.verify(&message, &sig(&r, &sub_limbs(&P384::N, &s).0)));
            assert!(!key.verify(&message, &sig(&add_limbs(&r, &ONE).0, &s)));
            assert!(!key.verify(&message, &sig(&r, &add_limbs(&s, &P384::N).0)));
            assert!(!key.verify(&message, &sig(&[0; 12], &s)));
        }
    }

    #[test]
    fn out_of_range_r_and_s() {
        let q = from_p384(&(p384::ProjectivePoint::GENERATOR * p384::Scalar::from(777u64)));
        let r = reduce_n(&q.x);
        let n = P384::N;
        // e = 0 and s = r: u1 = 0, u2 = 1, R = Q: valid.
        check(&q, &[0; 12], &r, &r, true, "e = 0");
        let key = P384PublicKey(Key::from_point(q));
        for bad in [[0; 12], n, add_limbs(&n, &ONE).0, [u32::MAX; 12]] {
            assert!(!key.verify_prehash(&[0; 48], &sig(&bad, &r)), "r = {:x}", big(&bad));
            assert!(!key.verify_prehash(&[0; 48], &sig(&r, &bad)), "s = {:x}", big(&bad));
        }
    }

    /// Signatures where the last additions meet the exceptional cases of the formulas, and a
    /// point whose x is at least n, each checked against the `p384` crate too.
    #[test]
    fn exceptional_signatures() {
        let g = p384::ProjectivePoint::GENERATOR;
        let q = from_p384(&(g * p384::Scalar::from(4242u64)));
        let r = reduce_n(&q.x);
        check(&q, &P384::N, &r, &r, true, "e = n");
        check(&q, &ONE, &r, &r, false, "e = 1");
        let r = ecdsa::small(1234);
        check(&-Affine::G, &r, &r, &r, false, "R = infinity, Q = -G");
        let e = sub_limbs(&P384::N, &r).0;
        check(&Affine::G, &e, &r, &ecdsa::small(77), false, "R = infinity, Q = G");
        let r = reduce_n(&from_p384(&g.double()).x);
        check(&Affine::G, &r, &r, &r, true, "G + G");
        let half = p384::Scalar::from(2u64).invert().unwrap();
        let q_half = from_p384(&(g * half));
        let s = limbs(&(big(&r) * ((n() + 1u8) >> 1usize) % n()));
        check(&q_half, &s, &r, &s, true, "G/2 doubled, plus G");
        check(&-q_half, &s, &r, &s, false, "-G/2 doubled, plus G");
        // x(R) ≥ n: r = x - n is valid, reached directly and as G + (Q - G).
        let (p, nb) = (p(), n());
        // From k = 1: x = n is a point's, but its r would be 0.
        let q = (1u32..)
            .find_map(|k| {
                let x = &nb + k;
                let rhs = (&x * &x * &x + &p * 3u8 - &x * 3u8 + big(&P384::B)) % &p;
                // p = 3 mod 4: a square's root is rhs^((p + 1)/4).
                let y = rhs.modpow(&((&p + 1u8) >> 2usize), &p);
                (&y * &y % &p == rhs).then(|| Affine { x: Fe::new(limbs(&x)), y: Fe::new(limbs(&y)) })
            })
            .unwrap();
        assert!(q.is_on_curve() && !less_than(&q.x.0, &P384::N));
        let r = reduce_n(&q.x);
        check(&q, &[0; 12], &r, &r, true, "x(R) = r + n");
        let q_minus_g = affine_of(&Jacobian::from(q).add_affine(&-Affine::G)).unwrap();
        check(&q_minus_g, &r, &r, &r, true, "x(R) = r + n via G + (Q - G)");
        check(&q, &[0; 12], &add_limbs(&r, &ONE).0, &r, false, "r + 1");
    }

    #[test]
    fn key_validation() {
        let g = p384::AffinePoint::GENERATOR.to_encoded_point(false);
        let (x, y) = (g.x().unwrap().to_vec(), g.y().unwrap().to_vec());
        assert!(P384PublicKey::new(&x, &y).is_some());
        let mut bad_y = y.clone();
        bad_y[47] ^= 1;
        assert!(P384PublicKey::new(&x, &bad_y).is_none());
        assert!(P384PublicKey::new(&x[1..], &y).is_none());
        assert!(P384PublicKey::new(&x, &[y.clone(), vec![0]].concat()).is_none());
        assert!(P384PublicKey::new(&[0; 48], &[0; 48]).is_none());
        assert!(P384PublicKey::new(&x[..32], &y[..32]).is_none());
        let neg_y = be(&(-Fe::from_be(&y).unwrap()).canonical());
        assert!(P384PublicKey::new(&x, &neg_y).is_some());
        // y + p fits in 48 bytes when y is small enough: find such a point; y + p is refused.
        let p = p();
        let found = (1u32..)
            .find_map(|x| {
                let x = BigUint::from(x);
                let rhs = (&x * &x * &x + &p - &x * 3u8 + big(&P384::B)) % &p;
                let y = rhs.modpow(&((&p + 1u8) >> 2usize), &p);
                (&y * &y % &p == rhs).then(|| ((be(&limbs(&x)), be(&limbs(&(&x + &p)))), y))
            })
            .unwrap();
        let ((small_x, x_plus_p), y) = found;
        let y = be(&limbs(&y));
        assert!(P384PublicKey::new(&small_x, &y).is_some());
        assert!(P384PublicKey::new(&x_plus_p, &y).is_none());
        assert_eq!(Fe::from_be(&be(&P384::P)), None);
        assert_eq!(Fe::from_be(&[0xff; 48]), None);
    }
}
