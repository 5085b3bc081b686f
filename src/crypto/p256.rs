//! Verification-only ECDSA over P-256 with SHA-256 (FIPS 186-4 §6.4, SEC 1 v2 §4.1.4): JWS ES256.
//!
//! The verifier is `ecdsa`'s, shared with P-384 (why not the `p256` crate, and how it is fast,
//! are described there): ~0.05 ms per verification in V8 against ~0.8-0.9 ms for the `p256`
//! crate (bench/p256/RESULTS.md). This module holds the curve's constants and its field
//! arithmetic: elements are 8×32-bit limbs (Wasm has 32×32→64 products, not 64×64→128) reduced by
//! the NIST fast reduction for p = 2^256 - 2^224 + 2^192 + 2^96 - 1. Everything must be exact;
//! nothing here panics.

#![forbid(unsafe_code)]

use std::sync::OnceLock;

use sha2::{Digest, Sha256};

use super::ecdsa::{self, column, cross, cross_plus_square, Affine, Curve, Key, Tables, G_TABLE_LEN};

/// A P-256 public key: a point checked to be on the curve, and its tables for verification
/// (computed at its first verification, 4 KiB).
#[derive(Clone, Debug)]
pub struct P256PublicKey(Key<P256, 8>);

impl P256PublicKey {
    /// Key from big-endian affine coordinates of 32 bytes each (JWK `x`, `y`). `None` unless both
    /// are below p and the point is on the curve.
    pub fn new(x: &[u8], y: &[u8]) -> Option<Self> {
        Key::new(x, y).map(P256PublicKey)
    }

    /// ES256 verification (RFC 7518 §3.4): `signature` is the 64-byte `r || s`, big-endian.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        self.verify_prehash(&Sha256::digest(message).into(), signature)
    }

    /// ECDSA verification of a SHA-256 `digest`. The digest is as long as n, so it is used whole
    /// as the integer e, without truncation.
    pub fn verify_prehash(&self, digest: &[u8; 32], signature: &[u8]) -> bool {
        self.0.verify_prehash(digest, signature)
    }
}

/// The curve P-256 (FIPS 186-4 D.1.2.3).
#[derive(Debug)]
enum P256 {}

/// A 256-bit integer as eight 32-bit limbs, least significant first.
type Limbs = [u32; 8];

impl Curve<8> for P256 {
    /// p = 2^256 - 2^224 + 2^192 + 2^96 - 1.
    const P: Limbs = [0xffff_ffff, 0xffff_ffff, 0xffff_ffff, 0, 0, 0, 1, 0xffff_ffff];
    const N: Limbs =
        [0xfc63_2551, 0xf3b9_cac2, 0xa717_9e84, 0xbce6_faad, 0xffff_ffff, 0xffff_ffff, 0, 0xffff_ffff];
    const N_NEG_INV: u32 = 0xee00_bc4f;
    const B: Limbs = [
        0x27d2_604b,
        0x3bce_3c3e,
        0xcc53_b0f6,
        0x651d_06b0,
        0x7698_86bc,
        0xb3eb_bd55,
        0xaa3a_93e7,
        0x5ac6_35d8,
    ];
    const GX: Limbs = [
        0xd898_c296,
        0xf4a1_3945,
        0x2deb_33a0,
        0x7703_7d81,
        0x63a4_40f2,
        0xf8bc_e6e5,
        0xe12c_4247,
        0x6b17_d1f2,
    ];
    const GY: Limbs = [
        0x37bf_51f5,
        0xcbb6_4068,
        0x6b31_5ece,
        0x2bce_3357,
        0x7c0f_9e16,
        0x8ee7_eb4a,
        0xfe1a_7f9b,
        0x4fe3_42e2,
    ];

    fn add(&[a0, a1, a2, a3, a4, a5, a6, a7]: &Limbs, &[b0, b1, b2, b3, b4, b5, b6, b7]: &Limbs) -> Limbs {
        let w = |a: u32, b: u32| i64::from(a) + i64::from(b);
        reduce_words([w(a0, b0), w(a1, b1), w(a2, b2), w(a3, b3), w(a4, b4), w(a5, b5), w(a6, b6), w(a7, b7)])
    }

    fn sub(&[a0, a1, a2, a3, a4, a5, a6, a7]: &Limbs, &[b0, b1, b2, b3, b4, b5, b6, b7]: &Limbs) -> Limbs {
        let w = |a: u32, b: u32| i64::from(a) - i64::from(b);
        reduce_words([w(a0, b0), w(a1, b1), w(a2, b2), w(a3, b3), w(a4, b4), w(a5, b5), w(a6, b6), w(a7, b7)])
    }

    fn mul(a: &Limbs, b: &Limbs) -> Limbs {
        reduce_wide(&mul_wide(a, b))
    }

    fn square(a: &Limbs) -> Limbs {
        reduce_wide(&sqr_wide(a))
    }

    fn times(&[a0, a1, a2, a3, a4, a5, a6, a7]: &Limbs, k: i64) -> Limbs {
        let w = |a: u32| k * i64::from(a);
        reduce_words([w(a0), w(a1), w(a2), w(a3), w(a4), w(a5), w(a6), w(a7)])
    }

    fn g_tables() -> &'static Tables<P256, 8, G_TABLE_LEN> {
        static TABLES: OnceLock<Box<Tables<P256, 8, G_TABLE_LEN>>> = OnceLock::new();
        TABLES.get_or_init(|| ecdsa::comb_tables(&Affine::G))
    }
}

// ---------------------------------------------------------------------------------------------
// The field of integers mod p
//
// The arithmetic is written out limb by limb, without loops, `map` or iterator adaptors: V8 does
// not unroll loops, and the same code runs several times faster in the unoptimised builds the
// tests use.

/// A 512-bit product as column sums: the value is Σ c_k·2^(32k), each c_k below 2^37 but not
/// carried into the next.
type Columns = [u64; 16];

/// a·b by product scanning (Comba): the products of each column together, split into halves.
/// Fully unrolled, which V8 does not do by itself, and no carry chain through the products.
fn mul_wide(a: &Limbs, b: &Limbs) -> Columns {
    let [a0, a1, a2, a3, a4, a5, a6, a7] = widen(a);
    let [b0, b1, b2, b3, b4, b5, b6, b7] = widen(b);
    columns([
        column!(a0 * b0),
        column!(a0 * b1, a1 * b0),
        column!(a0 * b2, a1 * b1, a2 * b0),
        column!(a0 * b3, a1 * b2, a2 * b1, a3 * b0),
        column!(a0 * b4, a1 * b3, a2 * b2, a3 * b1, a4 * b0),
        column!(a0 * b5, a1 * b4, a2 * b3, a3 * b2, a4 * b1, a5 * b0),
        column!(a0 * b6, a1 * b5, a2 * b4, a3 * b3, a4 * b2, a5 * b1, a6 * b0),
        column!(a0 * b7, a1 * b6, a2 * b5, a3 * b4, a4 * b3, a5 * b2, a6 * b1, a7 * b0),
        column!(a1 * b7, a2 * b6, a3 * b5, a4 * b4, a5 * b3, a6 * b2, a7 * b1),
        column!(a2 * b7, a3 * b6, a4 * b5, a5 * b4, a6 * b3, a7 * b2),
        column!(a3 * b7, a4 * b6, a5 * b5, a6 * b4, a7 * b3),
        column!(a4 * b7, a5 * b6, a6 * b5, a7 * b4),
        column!(a5 * b7, a6 * b6, a7 * b5),
        column!(a6 * b7, a7 * b6),
        column!(a7 * b7),
    ])
}

/// a^2: each cross product a_i·a_j (i < j) once, doubled, plus the squares a_i^2; 36
/// multiplications instead of 64.
fn sqr_wide(a: &Limbs) -> Columns {
    let [a0, a1, a2, a3, a4, a5, a6, a7] = widen(a);
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
        cross_plus_square(column!(a1 * a7, a2 * a6, a3 * a5), a4),
        cross(column!(a2 * a7, a3 * a6, a4 * a5)),
        cross_plus_square(column!(a3 * a7, a4 * a6), a5),
        cross(column!(a4 * a7, a5 * a6)),
        cross_plus_square(column!(a5 * a7), a6),
        cross(column!(a6 * a7)),
        cross_plus_square(none, a7),
    ])
}

fn widen(&[a0, a1, a2, a3, a4, a5, a6, a7]: &Limbs) -> [u64; 8] {
    let w = u64::from;
    [w(a0), w(a1), w(a2), w(a3), w(a4), w(a5), w(a6), w(a7)]
}

/// Column sums from the 15 columns' (low, high) halves: the high halves of column k weigh
/// 2^(32(k+1)), so they join column k + 1. At most 18 halves meet in one, so each sum is below
/// 2^37.
fn columns(halves: [(u64, u64); 15]) -> Columns {
    let [h0, h1, h2, h3, h4, h5, h6, h7, h8, h9, h10, h11, h12, h13, h14] = halves;
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
        h14.1,
    ]
}

/// c mod p by the NIST fast reduction (FIPS 186-4 D.2.3; Solinas, "Generalized Mersenne
/// numbers", 1999; Guide to ECC Alg. 2.29): with c = Σ c_k·2^(32k),
/// c ≡ s1 + 2·s2 + 2·s3 + s4 + s5 - d1 - d2 - d3 - d4 (mod p), each term a 256-bit
/// rearrangement of the c_k. The identity is linear in the c_k, so it holds for column sums
/// that were never carried; summed here word by word in signed 64-bit accumulators.
fn reduce_wide(c: &Columns) -> Limbs {
    let [c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13, c14, c15] = signed(c);
    // Each word sums at most 14 column sums (counted with their multiplicity): below 2^41.
    reduce_words([
        c0 + c8 + c9 - c11 - c12 - c13 - c14,
        c1 + c9 + c10 - c12 - c13 - c14 - c15,
        c2 + c10 + c11 - c13 - c14 - c15,
        c3 + 2 * (c11 + c12) + c13 - c15 - c8 - c9,
        c4 + 2 * (c12 + c13) + c14 - c9 - c10,
        c5 + 2 * (c13 + c14) + c15 - c10 - c11,
        c6 + 3 * c14 + 2 * c15 + c13 - c8 - c9,
        c7 + 3 * c15 + c8 - c10 - c11 - c12 - c13,
    ])
}

/// Column sums as signed words (exact: they are below 2^37).
fn signed(&[c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13, c14, c15]: &Columns) -> [i64; 16] {
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
    ]
}

/// Σ w_j·2^(32j) mod p as a value below 2^256, for signed words of size below 2^41: the whole
/// is then below 2^266 in size, so the carry out of the top, c, is below 2^10. Folding c·2^256
/// back in as c·(2^224 - 2^192 - 2^96 + 1), its residue, leaves a value in (-2^234,
/// 2^256 + 2^234): a carry of at most ±1, whose fold leaves none.
fn reduce_words(words: [i64; 8]) -> Limbs {
    let (mut limbs, mut carry) = carry_words(words);
    while carry != 0 {
        (limbs, carry) = fold((limbs, carry));
    }
    limbs
}

/// limbs + carry·2^256 as limbs + carry·(2^224 - 2^192 - 2^96 + 1), carried again.
fn fold(([l0, l1, l2, l3, l4, l5, l6, l7], carry): (Limbs, i64)) -> (Limbs, i64) {
    let w = i64::from;
    carry_words([w(l0) + carry, w(l1), w(l2), w(l3) - carry, w(l4), w(l5), w(l6) - carry, w(l7) + carry])
}

/// Signed 64-bit words (weights 2^0, 2^32, …, 2^224) to 32-bit limbs and the signed carry out of
/// the top (weight 2^256).
fn carry_words([w0, w1, w2, w3, w4, w5, w6, w7]: [i64; 8]) -> (Limbs, i64) {
    let mut acc: i64 = 0;
    let mut limb = |w: i64| {
        acc += w;
        let low = acc as u32;
        // Arithmetic shift: floor division, so the limb is acc mod 2^32 and the rest carries.
        acc >>= 32;
        low
    };
    let limbs = [limb(w0), limb(w1), limb(w2), limb(w3), limb(w4), limb(w5), limb(w6), limb(w7)];
    (limbs, acc)
}

#[cfg(test)]
mod tests {
    use super::ecdsa::{add_limbs, invert_mod, less_than, lookup, sub_limbs, Q_TABLE_LEN};
    use super::*;
    use p256::elliptic_curve::sec1::ToEncodedPoint;
    use p256::elliptic_curve::{Field, Group};
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use rsa::BigUint;

    type Fe = ecdsa::Fe<P256, 8>;
    type Affine = ecdsa::Affine<P256, 8>;
    type Jacobian = ecdsa::Jacobian<P256, 8>;
    const ZERO: Limbs = [0; 8];
    const ONE: Limbs = ecdsa::one();
    const P: Limbs = P256::P;
    const N: Limbs = P256::N;
    const N_NEG_INV: u32 = P256::N_NEG_INV;

    fn limbs_from_be(bytes: &[u8]) -> Limbs {
        ecdsa::limbs_from_be(bytes).unwrap()
    }

    fn mont_mul_n(a: &Limbs, b: &Limbs) -> Limbs {
        ecdsa::mont_mul_n::<P256, 8>(a, b)
    }

    fn is_scalar(k: &Limbs) -> bool {
        ecdsa::is_scalar::<P256, 8>(k)
    }

    fn g_tables() -> &'static Tables<P256, 8, G_TABLE_LEN> {
        P256::g_tables()
    }

    fn comb_tables(p: &Affine) -> Box<Tables<P256, 8, Q_TABLE_LEN>> {
        ecdsa::comb_tables(p)
    }

    fn double_mul(u1: &Limbs, u2: &Limbs, q_tables: &Tables<P256, 8, Q_TABLE_LEN>) -> Jacobian {
        ecdsa::double_mul(u1, u2, q_tables)
    }

    fn big(a: &Limbs) -> BigUint {
        BigUint::from_slice(a)
    }

    fn limbs(x: &BigUint) -> Limbs {
        let mut bytes = x.to_bytes_le();
        assert!(bytes.len() <= 32, "{x} is over 256 bits");
        bytes.resize(32, 0);
        bytes.reverse();
        limbs_from_be(bytes.as_slice())
    }

    fn be(a: &Limbs) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (chunk, limb) in out.rchunks_exact_mut(4).zip(a) {
            chunk.copy_from_slice(&limb.to_be_bytes());
        }
        out
    }

    fn hex(s: &str) -> BigUint {
        BigUint::parse_bytes(s.as_bytes(), 16).unwrap()
    }

    fn p() -> BigUint {
        big(&P)
    }

    fn n() -> BigUint {
        big(&N)
    }

    /// Values below `m` that stress carries and borrows, then random ones.
    fn samples(m: &BigUint, rng: &mut StdRng, random: usize) -> Vec<Limbs> {
        let one = BigUint::from(1u8);
        let mut v: Vec<BigUint> = vec![
            BigUint::from(0u8),
            one.clone(),
            BigUint::from(2u8),
            BigUint::from(3u8),
            m - &one,
            m - 2u8,
            m >> 1usize,
            (m >> 1usize) + &one,
            &one << 255usize,
            (&one << 224usize) - &one,
            (&one << 96usize) - &one,
            &one << 192usize,
            hex("ffffffff00000000ffffffffffffffff00000000ffffffff00000000ffffffff") % m,
        ];
        for _ in 0..random {
            let mut bytes = [0u8; 32];
            rng.fill(&mut bytes);
            v.push(BigUint::from_bytes_be(&bytes) % m);
        }
        v.iter().map(limbs).collect()
    }

    #[test]
    fn constants() {
        let one = BigUint::from(1u8);
        assert_eq!(
            p(),
            (&one << 256usize) - (&one << 224usize) + (&one << 192usize) + (&one << 96usize) - &one
        );
        assert_eq!(n(), hex("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551"));
        assert_eq!(N[0].wrapping_mul(N_NEG_INV), u32::MAX);
        let g = p256::AffinePoint::GENERATOR.to_encoded_point(false);
        assert_eq!(be(&Affine::G.x.0), &g.x().unwrap()[..]);
        assert_eq!(be(&Affine::G.y.0), &g.y().unwrap()[..]);
        assert!(Affine::G.is_on_curve());
        let b = hex("5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604b");
        assert_eq!(big(&Fe::B.0), b);
    }

    fn residue(x: &Fe) -> BigUint {
        big(&x.canonical())
    }

    /// Inputs anywhere below 2^256 (elements need not be below p), results compared as residues.
    #[test]
    fn field_arithmetic_matches_bigint() {
        let mut rng = StdRng::seed_from_u64(1);
        let p = p();
        let two_256 = BigUint::from(1u8) << 256usize;
        let mut values = samples(&p, &mut rng, 20);
        values.extend(samples(&two_256, &mut rng, 10));
        values.extend([P, add_limbs(&P, &ONE).0, [u32::MAX; 8], add_limbs(&P, &P).0]);
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

    /// Words at the extremes of the range `reduce_words` is for, in every combination of signs.
    #[test]
    fn reduction_of_extreme_words() {
        let p = p();
        let max = (1i64 << 41) - 1;
        for combo in 0..3u32.pow(8) {
            let mut words = [0i64; 8];
            let (mut pos, mut neg) = (BigUint::from(0u8), BigUint::from(0u8));
            for (j, w) in words.iter_mut().enumerate() {
                *w = [0, max, -max][(combo / 3u32.pow(j as u32) % 3) as usize];
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

    fn value(c: &Columns) -> BigUint {
        c.iter().rev().fold(BigUint::from(0u8), |acc, &ck| (acc << 32usize) + BigUint::from(ck))
    }

    /// The reduction's word sums are linear in the 16 column sums, so their extremes are at
    /// inputs whose column sums are each 0 or the largest possible: all 2^16 of those, and
    /// random ones.
    #[test]
    fn reduction_of_extreme_and_random_inputs() {
        let p = p();
        let mut rng = StdRng::seed_from_u64(2);
        let random = (0..2000).map(|_| {
            let mut c = [0u64; 16];
            rng.fill(&mut c);
            c.map(|x| x >> 27)
        });
        let corners = (0u32..1 << 16).map(|mask| {
            let mut c = [0u64; 16];
            for (i, w) in c.iter_mut().enumerate() {
                *w = if mask >> i & 1 == 1 { (1 << 37) - 1 } else { 0 };
            }
            c
        });
        for c in corners.chain(random) {
            assert_eq!(residue(&Fe::new(reduce_wide(&c))), value(&c) % &p, "{c:x?}");
        }
    }

    #[test]
    fn products_match_bigint() {
        let mut rng = StdRng::seed_from_u64(6);
        let two_256 = BigUint::from(1u8) << 256usize;
        let mut values = samples(&two_256, &mut rng, 40);
        values.extend([[u32::MAX; 8], [0xffff_0000; 8], [0x0000_ffff; 8]]);
        for a in &values {
            assert_eq!(value(&sqr_wide(a)), big(a) * big(a));
            for b in &values {
                let c = mul_wide(a, b);
                assert_eq!(value(&c), big(a) * big(b));
            }
        }
    }

    #[test]
    fn scalar_arithmetic_matches_bigint() {
        let mut rng = StdRng::seed_from_u64(3);
        let n = n();
        let r_inv = (BigUint::from(1u8) << 256usize).modpow(&(&n - 2u8), &n);
        let values = samples(&n, &mut rng, 20);
        // Any a < 2^256 (e is not reduced), b < n.
        let mut wide = values.clone();
        wide.extend([[u32::MAX; 8], P, N]);
        for a in &wide {
            for b in &values {
                assert_eq!(big(&mont_mul_n(a, b)), big(a) * big(b) * &r_inv % &n);
            }
        }
        for m in [N, P] {
            let mb = big(&m);
            for a in samples(&mb, &mut rng, 20) {
                let expected = if a == ZERO { BigUint::from(0u8) } else { big(&a).modpow(&(&mb - 2u8), &mb) };
                assert_eq!(big(&invert_mod(&a, &m)), expected, "1/{} mod {mb}", big(&a));
            }
            // Not below m: refused rather than looped on.
            assert_eq!(invert_mod(&m, &m), ZERO);
            assert_eq!(invert_mod(&[u32::MAX; 8], &m), ZERO);
        }
        assert!(!is_scalar(&ZERO) && !is_scalar(&N) && !is_scalar(&[u32::MAX; 8]));
        assert!(is_scalar(&ONE) && is_scalar(&sub_limbs(&N, &ONE).0));
    }

    fn affine_of(p: &Jacobian) -> Option<Affine> {
        if p.is_infinity() {
            return None;
        }
        let z_inv = p.z.invert();
        Some(Affine { x: p.x * z_inv.square(), y: p.y * z_inv.square() * z_inv })
    }

    fn from_p256(p: &p256::ProjectivePoint) -> Affine {
        let e = p.to_affine().to_encoded_point(false);
        let x = Fe::from_be(e.x().unwrap()[..].as_ref()).unwrap();
        let y = Fe::from_be(e.y().unwrap()[..].as_ref()).unwrap();
        Affine { x, y }
    }

    /// u1·G + u2·Q, Q's tables computed for the occasion.
    fn mul2(u1: &Limbs, u2: &Limbs, q: &Affine) -> Jacobian {
        double_mul(u1, u2, &comb_tables(q))
    }

    fn p256_scalar(k: &Limbs) -> p256::Scalar {
        use p256::elliptic_curve::PrimeField;
        p256::Scalar::from_repr(be(k).into()).unwrap()
    }

    #[test]
    fn scalar_multiples_match_p256() {
        let mut rng = StdRng::seed_from_u64(5);
        let g = p256::ProjectivePoint::GENERATOR;
        for k in 1u64..=40 {
            let ours = mul2(&[k as u32, (k >> 32) as u32, 0, 0, 0, 0, 0, 0], &ZERO, &Affine::G);
            assert_eq!(affine_of(&ours), Some(from_p256(&(g * p256::Scalar::from(k)))), "{k}G");
        }
        let q_secret = p256::Scalar::random(&mut rng);
        let q = from_p256(&(g * q_secret));
        for (a, b) in samples(&n(), &mut rng, 30).iter().zip(samples(&n(), &mut rng, 30).iter().rev()) {
            let expected = g * p256_scalar(a) + g * q_secret * p256_scalar(b);
            let ours = mul2(a, b, &q);
            if bool::from(expected.is_identity()) {
                assert!(ours.is_infinity());
            } else {
                assert_eq!(affine_of(&ours), Some(from_p256(&expected)));
            }
        }
    }

    #[test]
    fn group_order() {
        let n_minus_1 = sub_limbs(&N, &ONE).0;
        let q = from_p256(&(p256::ProjectivePoint::GENERATOR * p256::Scalar::from(12345u64)));
        assert!(mul2(&N, &ZERO, &q).is_infinity());
        assert!(mul2(&ZERO, &N, &q).is_infinity());
        assert!(mul2(&ZERO, &ZERO, &q).is_infinity());
        assert_eq!(affine_of(&mul2(&n_minus_1, &ZERO, &q)), Some(-Affine::G));
        assert_eq!(affine_of(&mul2(&ZERO, &n_minus_1, &q)), Some(-q));
        // (n - 1)·G + 1·G and 1·G + (n - 1)·G, the last addition cancelling.
        assert!(mul2(&n_minus_1, &ONE, &Affine::G).is_infinity());
        assert!(mul2(&ONE, &n_minus_1, &Affine::G).is_infinity());
    }

    #[test]
    fn exceptional_additions() {
        let g = Jacobian::from(Affine::G);
        // A Jacobian point with Z ≠ 1 (3G from 2G + G), and the same point's affine form.
        let p = g.double().add(&g);
        let pa = affine_of(&p).unwrap();
        let minus_p = Jacobian { y: -p.y, ..p };
        let twice = affine_of(&p.double());
        assert_eq!(affine_of(&p.add(&p)), twice);
        assert_eq!(affine_of(&p.add_affine(&pa)), twice);
        assert_eq!(affine_of(&p.add(&Jacobian::from(pa))), twice);
        assert!(p.add(&minus_p).is_infinity());
        assert!(p.add_affine(&-pa).is_infinity());
        assert_eq!(affine_of(&Jacobian::INFINITY.add(&p)), Some(pa));
        assert_eq!(affine_of(&p.add(&Jacobian::INFINITY)), Some(pa));
        assert_eq!(affine_of(&Jacobian::INFINITY.add_affine(&pa)), Some(pa));
        assert!(Jacobian::INFINITY.double().is_infinity());
    }

    /// Entry i of chunk c's table is (2i + 1)·2^(32c)·P.
    fn check_tables<const K: usize>(tables: &Tables<P256, 8, K>, p: &p256::ProjectivePoint) {
        let two_32 = p256::Scalar::from(1u64 << 32);
        let mut base = *p;
        for table in tables {
            for (i, entry) in table.iter().enumerate() {
                assert_eq!(*entry, from_p256(&(base * p256::Scalar::from(2 * i as u64 + 1))));
            }
            base *= two_32;
        }
    }

    #[test]
    fn tables() {
        let g = p256::ProjectivePoint::GENERATOR;
        check_tables(g_tables(), &g);
        let q = g * p256::Scalar::from(98765u64);
        check_tables(&comb_tables(&from_p256(&q)), &q);
        let table = &g_tables()[0];
        assert_eq!(lookup(table, 0), None);
        assert_eq!(lookup(table, 3), Some(table[1]));
        assert_eq!(lookup(table, -15), Some(-table[7]));
        assert_eq!(lookup(table, 127), Some(table[63]));
        assert_eq!(lookup(table, -127), Some(-table[63]));
        assert_eq!(lookup(&table[..8], 17), None);
    }

    // RFC 6979 A.2.5: P-256 key and SHA-256 signatures of "sample" and "test".
    const RFC6979_X: &str = "60fed4ba255a9d31c961eb74c6356d68c049b8923b61fa6ce669622e60f29fb6";
    const RFC6979_Y: &str = "7903fe1008b8bc99a41ae9e95628bc64f2f1b20c2d7e9f5177a3c294d4462299";
    const SAMPLE: &str = "efd48b2aacb6a8fd1140dd9cd45e81d69d2c877b56aaf991c34d0ea84eaf3716\
                          f7cb1c942d657c41d436c7a1b6e29f65f3e900dbb9aff4064dc4ab2f843acda8";
    const TEST: &str = "f1abb023518351cd71d881567b1ea663ed3efcf6c5132b354f28d3b0b7d38367\
                        019f4113742a2b14bd25926b49c649155f267e60d3814b4c0cc84250e46f0083";

    fn bytes(s: &str) -> Vec<u8> {
        let b = hex(s).to_bytes_be();
        [vec![0; s.len() / 2 - b.len()], b].concat()
    }

    fn rfc6979_key() -> P256PublicKey {
        P256PublicKey::new(&bytes(RFC6979_X), &bytes(RFC6979_Y)).unwrap()
    }

    fn sig(r: &Limbs, s: &Limbs) -> Vec<u8> {
        [be(r), be(s)].concat()
    }

    #[test]
    fn rfc6979_signatures() {
        let key = rfc6979_key();
        assert!(key.verify(b"sample", &bytes(SAMPLE)));
        assert!(key.verify(b"test", &bytes(TEST)));
        assert!(!key.verify(b"test", &bytes(SAMPLE)));
        assert!(!key.verify(b"sample", &bytes(TEST)));
        assert!(!key.verify(b"sample", &bytes(SAMPLE)[..63]));
        assert!(!key.verify(b"sample", &[bytes(SAMPLE), vec![0]].concat()));
        assert!(!key.verify(b"sample", &[]));
        // s and n - s are both valid (no low-s rule).
        let s = limbs_from_be(bytes(SAMPLE)[32..].as_ref());
        let r = limbs_from_be(bytes(SAMPLE)[..32].as_ref());
        assert!(key.verify(b"sample", &sig(&r, &sub_limbs(&N, &s).0)));
    }

    #[test]
    fn out_of_range_r_and_s() {
        let key = rfc6979_key();
        let valid = bytes(SAMPLE);
        let (r, s) = (limbs_from_be(valid[..32].as_ref()), limbs_from_be(valid[32..].as_ref()));
        for bad in [ZERO, N, add_limbs(&N, &ONE).0, [u32::MAX; 8]] {
            assert!(!key.verify(b"sample", &sig(&bad, &s)), "r = {:x}", big(&bad));
            assert!(!key.verify(b"sample", &sig(&r, &bad)), "s = {:x}", big(&bad));
        }
        // n - 1 is in range (and verifies nothing here).
        let n_minus_1 = sub_limbs(&N, &ONE).0;
        assert!(!key.verify(b"sample", &sig(&n_minus_1, &n_minus_1)));
    }

    /// Signatures built around u1 = 0, u1 = u2 = 1 and other values that meet the exceptional
    /// cases of the formulas, each checked against the `p256` crate too.
    fn check(q: &Affine, digest: &Limbs, r: &Limbs, s: &Limbs, expected: bool, what: &str) {
        let key = P256PublicKey(Key::from_point(*q));
        assert_eq!(key.verify_prehash(&be(digest), &sig(r, s)), expected, "{what}");
        use p256::ecdsa::signature::hazmat::PrehashVerifier;
        let theirs =
            p256::ecdsa::VerifyingKey::from_sec1_bytes(&[&[4], &be(&q.x.0)[..], &be(&q.y.0)].concat())
                .unwrap()
                .verify_prehash(&be(digest), &p256::ecdsa::Signature::from_slice(&sig(r, s)).unwrap())
                .is_ok();
        assert_eq!(theirs, expected, "p256 crate: {what}");
    }

    fn reduce_n(x: &Fe) -> Limbs {
        limbs(&(residue(x) % n()))
    }

    #[test]
    fn exceptional_signatures() {
        let g = p256::ProjectivePoint::GENERATOR;
        let q = *rfc6979_key().0.point();
        // e = 0 and e = n: u1 = 0, and with s = r, u2 = 1, so R = Q.
        let r = reduce_n(&q.x);
        check(&q, &ZERO, &r, &r, true, "e = 0");
        check(&q, &N, &r, &r, true, "e = n");
        check(&q, &ONE, &r, &r, false, "e = 1");
        // e = s = r: u1 = u2 = 1. With Q = -G, R = G - G = infinity.
        let r = [1234, 0, 0, 0, 0, 0, 0, 0];
        check(&-Affine::G, &r, &r, &r, false, "R = infinity, Q = -G");
        // With Q = G, u1 + u2 = (n - r + r)/s = 0: infinity again.
        let e = sub_limbs(&N, &r).0;
        check(&Affine::G, &e, &r, &[77, 0, 0, 0, 0, 0, 0, 0], false, "R = infinity, Q = G");
        // With Q = G and u1 = u2 = 1, the two additions of the last step add G to G: the
        // doubling case of the addition. R = 2G.
        let r = reduce_n(&from_p256(&g.double()).x);
        check(&Affine::G, &r, &r, &r, true, "G + G");
        // With Q = G/2, u2 = 2 and u1 = 1, Q's digit (at position 1) comes first and the
        // accumulator is 2·(G/2) = G when G is added. u2 = r/s = 2 and u1 = e/s = 1 for
        // s = e = r/2.
        let half = p256::Scalar::from(2u64).invert().unwrap();
        let q_half = from_p256(&(g * half));
        let s = limbs(&(big(&r) * ((n() + 1u8) >> 1usize) % n()));
        check(&q_half, &s, &r, &s, true, "G/2 doubled, plus G");
        // Q = -G/2: G is added to -G, R = infinity.
        check(&-q_half, &s, &r, &s, false, "-G/2 doubled, plus G");
    }

    /// A point whose x is at least n: x(R) mod n is then x - n, and a signature with r = x - n
    /// is valid (r·Z^2 ≠ X, (r + n)·Z^2 = X).
    #[test]
    fn x_at_least_n() {
        let (p, n) = (p(), n());
        let q = (0u32..)
            .find_map(|k| {
                let x = &n + k;
                let rhs = (&x * &x * &x + &p * 3u8 - &x * 3u8 + big(&Fe::B.0)) % &p;
                // p = 3 mod 4: a square's root is rhs^((p + 1)/4).
                let y = rhs.modpow(&((&p + 1u8) >> 2usize), &p);
                (&y * &y % &p == rhs).then(|| Affine { x: Fe::new(limbs(&x)), y: Fe::new(limbs(&y)) })
            })
            .unwrap();
        assert!(q.is_on_curve() && !less_than(&q.x.0, &N));
        let r = reduce_n(&q.x);
        check(&q, &ZERO, &r, &r, true, "x(R) = r + n");
        // R = Q again, reached as G + (Q - G) with u1 = u2 = 1.
        let q_minus_g = affine_of(&Jacobian::from(q).add_affine(&-Affine::G)).unwrap();
        check(&q_minus_g, &r, &r, &r, true, "x(R) = r + n via G + (Q - G)");
        // x itself is not a valid r (not below n), and r + 1 is another point's.
        check(&q, &ZERO, &add_limbs(&r, &ONE).0, &r, false, "r + 1");
    }

    #[test]
    fn key_validation() {
        let (x, y) = (bytes(RFC6979_X), bytes(RFC6979_Y));
        assert!(P256PublicKey::new(&x, &y).is_some());
        let mut bad_y = y.clone();
        bad_y[31] ^= 1;
        assert!(P256PublicKey::new(&x, &bad_y).is_none());
        assert!(P256PublicKey::new(&x[1..], &y).is_none());
        assert!(P256PublicKey::new(&x, &[y.clone(), vec![0]].concat()).is_none());
        assert!(P256PublicKey::new(&[0; 32], &[0; 32]).is_none());
        // -y = p - y is the other valid y.
        let neg_y = be(&(-Fe::new(limbs_from_be(y.as_slice()))).0);
        assert!(P256PublicKey::new(&x, &neg_y).is_some());
        // A point with a small x, so that x + p fits in 32 bytes: it satisfies the equation mod p
        // but is refused, not being below p.
        let p = p();
        let q = (1u32..)
            .find_map(|x| {
                let x = BigUint::from(x);
                let rhs = (&x * &x * &x + &p - &x * 3u8 + big(&Fe::B.0)) % &p;
                let y = rhs.modpow(&((&p + 1u8) >> 2usize), &p);
                (&y * &y % &p == rhs).then(|| (be(&limbs(&x)), be(&limbs(&y)), be(&limbs(&(x + &p)))))
            })
            .unwrap();
        let (small_x, y, x_plus_p) = q;
        assert!(P256PublicKey::new(&small_x, &y).is_some());
        assert!(P256PublicKey::new(&x_plus_p, &y).is_none());
        assert_eq!(Fe::from_be(&be(&P)), None);
        assert_eq!(Fe::from_be(&[0xff; 32]), None);
        assert_eq!(Fe::from_be(&be(&sub_limbs(&P, &ONE).0)), Some(-Fe::ONE));
    }
}
