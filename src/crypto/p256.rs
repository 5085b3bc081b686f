//! Verification-only ECDSA over P-256 with SHA-256 (FIPS 186-4 §6.4, SEC 1 v2 §4.1.4): JWS ES256.
//!
//! Why not the `p256` crate: it is constant-time throughout (complete addition formulas, fixed
//! windows, and u1·G + u2·Q as two separate scalar multiplications), which costs ~0.8-0.9 ms per
//! verification in V8, against ~0.05 ms here (bench/p256/RESULTS.md). Verification only handles
//! public values, so this module is variable-time: incomplete Jacobian formulas with their
//! exceptional cases handled by branches; u1·G + u2·Q as one interleaved wNAF multi-scalar
//! multiplication with precomputed tables, for G once per process and for Q once per key, that
//! cut the doublings from 256 to 32; a variable-time inversion mod n and no field inversion per
//! verification.
//! Field elements are 8×32-bit limbs (Wasm has 32×32→64 products, not 64×64→128) reduced by
//! the NIST fast reduction for p = 2^256 - 2^224 + 2^192 + 2^96 - 1. Everything must be exact;
//! nothing here panics.

#![forbid(unsafe_code)]

use std::ops::{Add, Mul, Neg, Sub};
use std::sync::OnceLock;

use sha2::{Digest, Sha256};

/// A P-256 public key: an affine point checked to be on the curve (so not the point at infinity,
/// and, the cofactor being 1, in the group of order n), and its multiples for verification,
/// computed at the first verification (~3 verifications' work, 4 KiB) so that keys never used
/// cost nothing.
#[derive(Clone)]
pub struct P256PublicKey {
    q: Affine,
    tables: OnceLock<Box<Tables<Q_TABLE_LEN>>>,
}

/// The point only: the tables are derived from it.
impl std::fmt::Debug for P256PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("P256PublicKey").field("q", &self.q).finish_non_exhaustive()
    }
}

impl P256PublicKey {
    /// Key from big-endian affine coordinates of 32 bytes each (JWK `x`, `y`; SEC 1 §2.3.4's
    /// uncompressed point without the 0x04). `None` unless both are below p and the point is on
    /// the curve (SEC 1 §3.2.2.1's public key validation; for cofactor 1 that is all of it).
    pub fn new(x: &[u8], y: &[u8]) -> Option<Self> {
        let x = Fe::from_be(x.try_into().ok()?)?;
        let y = Fe::from_be(y.try_into().ok()?)?;
        let q = Affine { x, y };
        q.is_on_curve().then(|| P256PublicKey::from_point(q))
    }

    fn from_point(q: Affine) -> Self {
        P256PublicKey { q, tables: OnceLock::new() }
    }

    fn tables(&self) -> &Tables<Q_TABLE_LEN> {
        self.tables.get_or_init(|| comb_tables(&self.q))
    }

    /// ES256 verification (RFC 7518 §3.4): `signature` is the 64-byte `r || s`, big-endian.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        self.verify_prehash(&Sha256::digest(message).into(), signature)
    }

    /// ECDSA verification of a SHA-256 `digest` (SEC 1 §4.1.4 from step 4 on). The digest is as
    /// long as n, so it is used whole as the integer e, without truncation.
    pub fn verify_prehash(&self, digest: &[u8; 32], signature: &[u8]) -> bool {
        let Some((r, s)) = signature.split_first_chunk::<32>() else {
            return false;
        };
        let Ok(s) = <&[u8; 32]>::try_from(s) else {
            return false;
        };
        let (r, s) = (limbs_from_be(r), limbs_from_be(s));
        // Step 1: r and s in [1, n - 1]. High s is accepted: JWS has no low-s rule.
        if !is_scalar(&r) || !is_scalar(&s) {
            return false;
        }
        let e = limbs_from_be(digest);
        // Steps 4-5: u1 = e·s^-1, u2 = r·s^-1 mod n. Inverting s·R^-1 (one Montgomery product
        // with 1) gives R·s^-1, whose Montgomery products with e and r are e·s^-1 and r·s^-1:
        // no conversions in or out of Montgomery form. e may be up to 2^256 - 1: a Montgomery
        // product only needs e·w < n·R.
        let w = invert_mod(&mont_mul_n(&s, &ONE), &N);
        let u1 = mont_mul_n(&e, &w);
        let u2 = mont_mul_n(&r, &w);
        // Steps 5-8: R = u1·G + u2·Q; valid iff R is not infinity and x(R) mod n = r.
        x_mod_n_is(&double_mul(&u1, &u2, self.tables()), &r)
    }
}

/// Whether the affine x of `point` is r modulo n, without computing x = X/Z^2: as x < p < 2n,
/// x mod n = r means x = r or x = r + n (possible only when r + n < p), and x = c is X = c·Z^2.
fn x_mod_n_is(point: &Jacobian, r: &Limbs) -> bool {
    if point.is_infinity() {
        return false;
    }
    let zz = point.z.square();
    // r < n < p, so r is a field element as it is.
    if Fe(*r) * zz == point.x {
        return true;
    }
    let (r_plus_n, carry) = add_limbs(r, &N);
    !carry && less_than(&r_plus_n, &P) && Fe(r_plus_n) * zz == point.x
}

// ---------------------------------------------------------------------------------------------
// Scalar multiplication

/// Scalars are cut into their eight 32-bit limbs, k = Σ k_c·2^(32c), so that
/// k·P = Σ k_c·(2^(32c)·P): with tables of multiples of each 2^(32c)·P, the chunks share 32
/// doublings instead of 256 (a fixed-base comb after Lim and Lee, with wNAF digits in each
/// chunk). For G the tables are computed once per process, for Q once per key. Four chunks of
/// 64 bits would halve the tables, for ~20% more time per verification in V8.
const CHUNKS: usize = 8;
const CHUNK_BITS: usize = 32;
/// wNAF digits of a chunk: one more than its bits, for the final carry.
const CHUNK_DIGITS: usize = CHUNK_BITS + 1;
/// wNAF width for G: 2^(8-2) = 64 odd multiples per chunk, 32 KiB in all.
const G_WINDOW: usize = 8;
/// wNAF width for Q: 8 odd multiples per chunk, 4 KiB per key.
const Q_WINDOW: usize = 5;
const G_TABLE_LEN: usize = 1 << (G_WINDOW - 2);
const Q_TABLE_LEN: usize = 1 << (Q_WINDOW - 2);

/// For each chunk c, the odd multiples P', 3P', …, (2K - 1)P' of P' = 2^(32c)·P.
type Tables<const K: usize> = [[Affine; K]; CHUNKS];

/// u1·G + u2·Q by interleaved wNAF (Hankerson, Menezes, Vanstone, Guide to ECC, Alg. 3.51) over
/// the chunks of both scalars: one shared chain of doublings, and a mixed addition for each
/// non-zero digit.
fn double_mul(u1: &Limbs, u2: &Limbs, q_tables: &Tables<Q_TABLE_LEN>) -> Jacobian {
    let g_digits = u1.map(wnaf::<G_WINDOW>);
    let q_digits = u2.map(wnaf::<Q_WINDOW>);
    let g_tables = g_tables();
    let mut acc = Jacobian::INFINITY;
    for j in (0..CHUNK_DIGITS).rev() {
        acc = acc.double();
        acc = add_digits(acc, &g_digits, g_tables, j);
        acc = add_digits(acc, &q_digits, q_tables, j);
    }
    acc
}

/// acc plus, for each chunk, its digit at position j times that chunk's point.
fn add_digits<const K: usize>(
    mut acc: Jacobian,
    digits: &[[i8; CHUNK_DIGITS]; CHUNKS],
    tables: &Tables<K>,
    j: usize,
) -> Jacobian {
    for (chunk, table) in digits.iter().zip(tables) {
        if let Some(p) = chunk.get(j).and_then(|&d| lookup(table, d)) {
            acc = acc.add_affine(&p);
        }
    }
    acc
}

/// The table entry for a wNAF digit: `table[i]` is (2i + 1)·P, negated for negative digits;
/// `None` for digit 0.
fn lookup(table: &[Affine], digit: i8) -> Option<Affine> {
    let point = *table.get(usize::from(digit.unsigned_abs() >> 1))?;
    match digit {
        0 => None,
        d if d < 0 => Some(-point),
        _ => Some(point),
    }
}

/// The tables of G, computed on first use.
fn g_tables() -> &'static Tables<G_TABLE_LEN> {
    static TABLES: OnceLock<Box<Tables<G_TABLE_LEN>>> = OnceLock::new();
    TABLES.get_or_init(|| comb_tables(&Affine::G))
}

/// The tables of P: 224 doublings for the chunks' points, a doubling and K - 1 additions per
/// chunk for the odd multiples, and one field inversion for all their affine forms.
fn comb_tables<const K: usize>(p: &Affine) -> Box<Tables<K>> {
    let mut jacobian = Vec::with_capacity(CHUNKS * K);
    let mut base = Jacobian::from(*p);
    for c in 0..CHUNKS {
        if c > 0 {
            for _ in 0..CHUNK_BITS {
                base = base.double();
            }
        }
        jacobian.extend(odd_multiples::<K>(&base));
    }
    let mut tables = Box::new([[Affine::G; K]; CHUNKS]);
    to_affine_all(&jacobian, tables.as_flattened_mut());
    tables
}

/// P, 3P, 5P, …, (2K - 1)P.
fn odd_multiples<const K: usize>(p: &Jacobian) -> [Jacobian; K] {
    let two = p.double();
    let mut table = [*p; K];
    let mut prev = *p;
    for entry in table.iter_mut().skip(1) {
        prev = prev.add(&two);
        *entry = prev;
    }
    table
}

/// Affine forms of points that are not infinity, with one field inversion for all of them
/// (Montgomery's trick: invert the product of the Zs, then peel off each 1/Z).
fn to_affine_all(points: &[Jacobian], out: &mut [Affine]) {
    // prefix[i] = Z_0 · … · Z_i.
    let prefix: Vec<Fe> = points
        .iter()
        .scan(Fe::ONE, |product, p| {
            *product = *product * p.z;
            Some(*product)
        })
        .collect();
    // Walking down from the last point, `inv` is 1 / (Z_0 · … · Z_i).
    let mut inv = prefix.last().map_or(Fe::ONE, |product| product.invert());
    let below = prefix.iter().rev().skip(1).chain(std::iter::once(&Fe::ONE));
    for ((o, p), pre) in out.iter_mut().rev().zip(points.iter().rev()).zip(below) {
        let z_inv = inv * *pre;
        inv = inv * p.z;
        let zz_inv = z_inv.square();
        *o = Affine { x: p.x * zz_inv, y: p.y * zz_inv * z_inv };
    }
}

/// Width-`W` non-adjacent form of `k` (Guide to ECC, Alg. 3.35), least significant digit first:
/// each digit is 0 or odd with |d| < 2^(W-1), any W consecutive digits hold at most one non-zero,
/// and Σ d_i·2^i = k. Found by scanning k's bits with a carry, as libsecp256k1's
/// `secp256k1_ecmult_wnaf` does, rather than by repeatedly subtracting from k.
fn wnaf<const W: usize>(k: u32) -> [i8; CHUNK_DIGITS] {
    let mut digits = [0i8; CHUNK_DIGITS];
    let mut carry = 0u32;
    let mut pos = 0;
    while pos < CHUNK_BITS {
        // A bit equal to the carry gives an even remainder: digit 0.
        if (k >> pos) & 1 == carry {
            pos += 1;
            continue;
        }
        let width = W.min(CHUNK_BITS - pos);
        // Odd, at most 2^W - 1; at or over 2^(W-1) it becomes negative, carrying 2^W upwards.
        let window = ((k >> pos) & ((1 << width) - 1)) + carry;
        carry = (window >> (W - 1)) & 1;
        if let Some(d) = digits.get_mut(pos) {
            *d = (i64::from(window) - (i64::from(carry) << W)) as i8;
        }
        pos += width;
    }
    if let Some(top) = digits.last_mut() {
        *top = carry as i8;
    }
    digits
}

// ---------------------------------------------------------------------------------------------
// Points

/// A point in affine coordinates; never the point at infinity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Affine {
    x: Fe,
    y: Fe,
}

impl Affine {
    /// The base point G (FIPS 186-4 D.1.2.3).
    const G: Affine = Affine {
        x: Fe([
            0xd898_c296,
            0xf4a1_3945,
            0x2deb_33a0,
            0x7703_7d81,
            0x63a4_40f2,
            0xf8bc_e6e5,
            0xe12c_4247,
            0x6b17_d1f2,
        ]),
        y: Fe([
            0x37bf_51f5,
            0xcbb6_4068,
            0x6b31_5ece,
            0x2bce_3357,
            0x7c0f_9e16,
            0x8ee7_eb4a,
            0xfe1a_7f9b,
            0x4fe3_42e2,
        ]),
    };

    /// y^2 = x^3 - 3x + b.
    fn is_on_curve(&self) -> bool {
        let x = self.x;
        self.y.square() == (x.square() - Fe::THREE) * x + Fe::B
    }
}

impl Neg for Affine {
    type Output = Affine;
    fn neg(self) -> Affine {
        Affine { x: self.x, y: -self.y }
    }
}

/// A point in Jacobian coordinates: (X, Y, Z) is the affine (X/Z^2, Y/Z^3); Z = 0 is the point at
/// infinity. The formulas are the Explicit-Formulas Database's for a = -3
/// (https://hyperelliptic.org/EFD/g1p/auto-shortw-jacobian-3.html); they are not complete, so
/// infinity and equal or opposite inputs are handled before them.
#[derive(Clone, Copy, Debug)]
struct Jacobian {
    x: Fe,
    y: Fe,
    z: Fe,
}

impl From<Affine> for Jacobian {
    fn from(p: Affine) -> Jacobian {
        Jacobian { x: p.x, y: p.y, z: Fe::ONE }
    }
}

impl Jacobian {
    const INFINITY: Jacobian = Jacobian { x: Fe::ONE, y: Fe::ONE, z: Fe::ZERO };

    fn is_infinity(&self) -> bool {
        self.z.is_zero()
    }

    /// 2P by dbl-2001-b (3M + 5S). P-256 has no point of order 2 (its order n is odd), so Y ≠ 0
    /// and the result is infinity only when P is.
    fn double(&self) -> Jacobian {
        if self.is_infinity() {
            return *self;
        }
        let delta = self.z.square();
        let gamma = self.y.square();
        let beta = self.x * gamma;
        let alpha = ((self.x - delta) * (self.x + delta)).times(3);
        let beta4 = beta.times(4);
        let x3 = alpha.square() - beta4.double();
        let z3 = (self.y + self.z).square() - gamma - delta;
        let y3 = alpha * (beta4 - x3) - gamma.square().times(8);
        Jacobian { x: x3, y: y3, z: z3 }
    }

    /// P + Q for affine Q by madd-2007-bl (7M + 4S).
    fn add_affine(&self, q: &Affine) -> Jacobian {
        if self.is_infinity() {
            return Jacobian::from(*q);
        }
        let z1z1 = self.z.square();
        let u2 = q.x * z1z1;
        let s2 = q.y * self.z * z1z1;
        let h = u2 - self.x;
        let r = (s2 - self.y).double();
        if h.is_zero() {
            // Same x: Q = P or Q = -P.
            return if r.is_zero() { self.double() } else { Jacobian::INFINITY };
        }
        let hh = h.square();
        let i = hh.times(4);
        let j = h * i;
        let v = self.x * i;
        let x3 = r.square() - j - v.double();
        let y3 = r * (v - x3) - (self.y * j).double();
        let z3 = (self.z + h).square() - z1z1 - hh;
        Jacobian { x: x3, y: y3, z: z3 }
    }

    /// P + Q by add-2007-bl (11M + 5S).
    fn add(&self, q: &Jacobian) -> Jacobian {
        if self.is_infinity() {
            return *q;
        }
        if q.is_infinity() {
            return *self;
        }
        let z1z1 = self.z.square();
        let z2z2 = q.z.square();
        let u1 = self.x * z2z2;
        let u2 = q.x * z1z1;
        let s1 = self.y * q.z * z2z2;
        let s2 = q.y * self.z * z1z1;
        let h = u2 - u1;
        let r = (s2 - s1).double();
        if h.is_zero() {
            return if r.is_zero() { self.double() } else { Jacobian::INFINITY };
        }
        let i = h.double().square();
        let j = h * i;
        let v = u1 * i;
        let x3 = r.square() - j - v.double();
        let y3 = r * (v - x3) - (s1 * j).double();
        let z3 = ((self.z + q.z).square() - z1z1 - z2z2) * h;
        Jacobian { x: x3, y: y3, z: z3 }
    }
}

// ---------------------------------------------------------------------------------------------
// The field of integers mod p
//
// The arithmetic is written out limb by limb, without loops, `map` or iterator adaptors: V8 does
// not unroll loops, and the same code runs several times faster in the unoptimised builds the
// tests use.

/// A 256-bit integer as eight 32-bit limbs, least significant first.
type Limbs = [u32; 8];

const ZERO: Limbs = [0; 8];
const ONE: Limbs = [1, 0, 0, 0, 0, 0, 0, 0];
/// p = 2^256 - 2^224 + 2^192 + 2^96 - 1.
const P: Limbs = [0xffff_ffff, 0xffff_ffff, 0xffff_ffff, 0, 0, 0, 1, 0xffff_ffff];

/// An integer mod p held as any 256-bit value congruent to it: as 2^256 < 2p, that is the residue
/// x or x + p. Arithmetic takes and gives such values, which spares every operation a final
/// comparison with p; `canonical` reduces fully where it matters, for comparisons.
#[derive(Clone, Copy, Debug)]
struct Fe(Limbs);

impl PartialEq for Fe {
    fn eq(&self, other: &Fe) -> bool {
        self.canonical() == other.canonical()
    }
}

impl Eq for Fe {}

impl Fe {
    const ZERO: Fe = Fe(ZERO);
    const ONE: Fe = Fe(ONE);
    const THREE: Fe = Fe([3, 0, 0, 0, 0, 0, 0, 0]);
    /// The curve coefficient b (FIPS 186-4 D.1.2.3).
    const B: Fe = Fe([
        0x27d2_604b,
        0x3bce_3c3e,
        0xcc53_b0f6,
        0x651d_06b0,
        0x7698_86bc,
        0xb3eb_bd55,
        0xaa3a_93e7,
        0x5ac6_35d8,
    ]);

    /// The element for a big-endian integer, `None` unless it is below p.
    fn from_be(bytes: &[u8; 32]) -> Option<Fe> {
        let limbs = limbs_from_be(bytes);
        less_than(&limbs, &P).then_some(Fe(limbs))
    }

    /// The residue, below p.
    fn canonical(&self) -> Limbs {
        let (reduced, borrow) = sub_limbs(&self.0, &P);
        if borrow {
            self.0
        } else {
            reduced
        }
    }

    fn is_zero(&self) -> bool {
        self.0 == ZERO || self.0 == P
    }

    fn double(self) -> Fe {
        self + self
    }

    /// k·a for a small k (at most 8 here), with one reduction.
    fn times(self, k: i64) -> Fe {
        let [a0, a1, a2, a3, a4, a5, a6, a7] = self.0;
        let w = |a: u32| k * i64::from(a);
        reduce_words([w(a0), w(a1), w(a2), w(a3), w(a4), w(a5), w(a6), w(a7)])
    }

    fn square(self) -> Fe {
        reduce_wide(&sqr_wide(&self.0))
    }

    /// 1/a, or 0 for a = 0 (as a^(p-2) would give).
    fn invert(self) -> Fe {
        Fe(invert_mod(&self.canonical(), &P))
    }
}

impl Add for Fe {
    type Output = Fe;
    fn add(self, rhs: Fe) -> Fe {
        let ([a0, a1, a2, a3, a4, a5, a6, a7], [b0, b1, b2, b3, b4, b5, b6, b7]) = (self.0, rhs.0);
        let w = |a: u32, b: u32| i64::from(a) + i64::from(b);
        reduce_words([w(a0, b0), w(a1, b1), w(a2, b2), w(a3, b3), w(a4, b4), w(a5, b5), w(a6, b6), w(a7, b7)])
    }
}

impl Sub for Fe {
    type Output = Fe;
    fn sub(self, rhs: Fe) -> Fe {
        let ([a0, a1, a2, a3, a4, a5, a6, a7], [b0, b1, b2, b3, b4, b5, b6, b7]) = (self.0, rhs.0);
        let w = |a: u32, b: u32| i64::from(a) - i64::from(b);
        reduce_words([w(a0, b0), w(a1, b1), w(a2, b2), w(a3, b3), w(a4, b4), w(a5, b5), w(a6, b6), w(a7, b7)])
    }
}

impl Neg for Fe {
    type Output = Fe;
    fn neg(self) -> Fe {
        Fe::ZERO - self
    }
}

impl Mul for Fe {
    type Output = Fe;
    fn mul(self, rhs: Fe) -> Fe {
        reduce_wide(&mul_wide(&self.0, &rhs.0))
    }
}

/// A 512-bit product as column sums: the value is Σ c_k·2^(32k), each c_k below 2^37 but not
/// carried into the next.
type Columns = [u64; 16];

/// Σ of 32×32→64-bit products as (Σ low halves, Σ high halves): at most 8 of each, so no
/// carries between words are needed until the reduction.
macro_rules! column {
    ($($x:ident * $y:ident),+) => {{
        let (mut lo, mut hi) = (0u64, 0u64);
        $(
            let p = $x * $y;
            lo += p & 0xffff_ffff;
            hi += p >> 32;
        )+
        (lo, hi)
    }};
}

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

/// A column of cross products of a square: each appears twice.
fn cross((lo, hi): (u64, u64)) -> (u64, u64) {
    (2 * lo, 2 * hi)
}

/// A column of cross products and the square of x.
fn cross_plus_square(sums: (u64, u64), x: u64) -> (u64, u64) {
    let (lo, hi) = cross(sums);
    let sq = x * x;
    (lo + (sq & 0xffff_ffff), hi + (sq >> 32))
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
fn reduce_wide(c: &Columns) -> Fe {
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
fn reduce_words(words: [i64; 8]) -> Fe {
    let (mut limbs, mut carry) = carry_words(words);
    while carry != 0 {
        (limbs, carry) = fold((limbs, carry));
    }
    Fe(limbs)
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

// ---------------------------------------------------------------------------------------------
// Integers mod n

/// n, the order of G (FIPS 186-4 D.1.2.3).
const N: Limbs =
    [0xfc63_2551, 0xf3b9_cac2, 0xa717_9e84, 0xbce6_faad, 0xffff_ffff, 0xffff_ffff, 0, 0xffff_ffff];
/// -n^-1 mod 2^32, for Montgomery reduction mod n.
const N_NEG_INV: u32 = 0xee00_bc4f;

/// 0 < k < n.
fn is_scalar(k: &Limbs) -> bool {
    *k != ZERO && less_than(k, &N)
}

/// Montgomery product a·b·2^-256 mod n, for a < 2^256 and b < n (then a·b < n·2^256, which is
/// all the reduction needs), fully reduced. Word-by-word Montgomery reduction (Handbook of
/// Applied Cryptography, Alg. 14.32): each step adds the multiple of n that clears the lowest
/// word.
fn mont_mul_n(a: &Limbs, b: &Limbs) -> Limbs {
    let mut t = carried(&mul_wide(a, b));
    // The carry out of the top of each step's window; it lands one word higher, at the top of
    // the next step's window.
    let mut extra = 0u64;
    for i in 0..8 {
        let m = t.get(i).map_or(0, |&low| low.wrapping_mul(N_NEG_INV));
        let carry = mul_add_row(t.iter_mut().skip(i), N.iter(), m);
        if let Some(top) = t.get_mut(i + 8) {
            let s = u64::from(*top) + u64::from(carry) + extra;
            *top = s as u32;
            extra = s >> 32;
        }
    }
    // (a·b + m·n) / 2^256 < 2n: one subtraction at most.
    let [_, _, _, _, _, _, _, _, high @ ..] = t;
    let (reduced, borrow) = sub_limbs(&high, &N);
    if extra != 0 || !borrow {
        reduced
    } else {
        high
    }
}

/// row += a·b over the shorter of the two, returning the carry out.
fn mul_add_row<'a>(row: impl Iterator<Item = &'a mut u32>, a: impl Iterator<Item = &'a u32>, b: u32) -> u32 {
    let b = u64::from(b);
    let mut carry = 0u64;
    for (t, &x) in row.zip(a) {
        // At most (2^32 - 1) + (2^32 - 1)^2 + (2^32 - 1) = 2^64 - 1.
        let s = u64::from(*t) + u64::from(x) * b + carry;
        *t = s as u32;
        carry = s >> 32;
    }
    carry as u32
}

/// Column sums carried into 16 limbs (the value must be below 2^512).
fn carried(c: &Columns) -> [u32; 16] {
    let mut t = [0u32; 16];
    let mut acc = 0u64;
    for (limb, &ck) in t.iter_mut().zip(c) {
        acc += ck;
        *limb = acc as u32;
        acc >>= 32;
    }
    t
}

// ---------------------------------------------------------------------------------------------
// Multi-limb helpers

/// a^-1 mod m for an odd prime m and 0 < a < m, by the binary extended Euclidean algorithm
/// (Guide to ECC Alg. 2.22), in variable time; 0 for any other a. Invariants: x1·a ≡ u and
/// x2·a ≡ v (mod m); gcd(u, v) = 1 throughout, so neither becomes 0 before one reaches 1.
fn invert_mod(a: &Limbs, m: &Limbs) -> Limbs {
    if *a == ZERO || !less_than(a, m) {
        return ZERO;
    }
    let (mut u, mut v) = (*a, *m);
    let (mut x1, mut x2) = (ONE, ZERO);
    while u != ONE && v != ONE {
        while is_even(&u) {
            shr1(&mut u, false);
            halve_mod(&mut x1, m);
        }
        while is_even(&v) {
            shr1(&mut v, false);
            halve_mod(&mut x2, m);
        }
        if less_than(&u, &v) {
            v = sub_limbs(&v, &u).0;
            x2 = sub_mod(&x2, &x1, m);
        } else {
            u = sub_limbs(&u, &v).0;
            x1 = sub_mod(&x1, &x2, m);
        }
    }
    if u == ONE {
        x1
    } else {
        x2
    }
}

/// x/2 mod odd m for x < m: x/2 if x is even, else (x + m)/2 (x + m may take 257 bits).
fn halve_mod(x: &mut Limbs, m: &Limbs) {
    let carry = if is_even(x) {
        false
    } else {
        let (sum, carry) = add_limbs(x, m);
        *x = sum;
        carry
    };
    shr1(x, carry);
}

/// a - b mod m for a, b < m.
fn sub_mod(a: &Limbs, b: &Limbs, m: &Limbs) -> Limbs {
    let (diff, borrow) = sub_limbs(a, b);
    if borrow {
        add_limbs(&diff, m).0
    } else {
        diff
    }
}

fn is_even(a: &Limbs) -> bool {
    a.first().is_some_and(|low| low & 1 == 0)
}

/// a >>= 1, shifting `top` in as the new bit 255.
fn shr1(a: &mut Limbs, top: bool) {
    let [a0, a1, a2, a3, a4, a5, a6, a7] = *a;
    let s = |low: u32, high: u32| (low >> 1) | (high << 31);
    *a = [s(a0, a1), s(a1, a2), s(a2, a3), s(a3, a4), s(a4, a5), s(a5, a6), s(a6, a7), s(a7, u32::from(top))];
}

/// a + b and the carry out.
fn add_limbs(
    &[a0, a1, a2, a3, a4, a5, a6, a7]: &Limbs,
    &[b0, b1, b2, b3, b4, b5, b6, b7]: &Limbs,
) -> (Limbs, bool) {
    let w = |a: u32, b: u32| i64::from(a) + i64::from(b);
    let (sum, carry) =
        carry_words([w(a0, b0), w(a1, b1), w(a2, b2), w(a3, b3), w(a4, b4), w(a5, b5), w(a6, b6), w(a7, b7)]);
    (sum, carry != 0)
}

/// a - b mod 2^256 and whether it borrowed (a < b).
fn sub_limbs(
    &[a0, a1, a2, a3, a4, a5, a6, a7]: &Limbs,
    &[b0, b1, b2, b3, b4, b5, b6, b7]: &Limbs,
) -> (Limbs, bool) {
    let w = |a: u32, b: u32| i64::from(a) - i64::from(b);
    let (diff, borrow) =
        carry_words([w(a0, b0), w(a1, b1), w(a2, b2), w(a3, b3), w(a4, b4), w(a5, b5), w(a6, b6), w(a7, b7)]);
    (diff, borrow != 0)
}

fn less_than(a: &Limbs, b: &Limbs) -> bool {
    sub_limbs(a, b).1
}

fn limbs_from_be(bytes: &[u8; 32]) -> Limbs {
    let mut limbs = ZERO;
    for (limb, chunk) in limbs.iter_mut().zip(bytes.rchunks_exact(4)) {
        *limb = chunk.iter().fold(0, |acc, &b| (acc << 8) | u32::from(b));
    }
    limbs
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::elliptic_curve::sec1::ToEncodedPoint;
    use p256::elliptic_curve::{Field, Group};
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use rsa::BigUint;

    fn big(a: &Limbs) -> BigUint {
        BigUint::from_slice(a)
    }

    fn limbs(x: &BigUint) -> Limbs {
        let mut bytes = x.to_bytes_le();
        assert!(bytes.len() <= 32, "{x} is over 256 bits");
        bytes.resize(32, 0);
        bytes.reverse();
        limbs_from_be(bytes.as_slice().try_into().unwrap())
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
            let (fa, ba) = (Fe(*a), big(a) % &p);
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
                let (fb, bb) = (Fe(*b), big(b) % &p);
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
            assert_eq!(residue(&reduce_words(words)), expected, "{words:?}");
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
            assert_eq!(residue(&reduce_wide(&c)), value(&c) % &p, "{c:x?}");
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
                assert_eq!(BigUint::from_slice(&carried(&c)), big(a) * big(b));
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

    fn check_wnaf<const W: usize>(k: u32) {
        let digits = wnaf::<W>(k);
        let mut sum: i64 = 0;
        let mut last_nonzero: Option<usize> = None;
        for (i, &d) in digits.iter().enumerate() {
            if d == 0 {
                continue;
            }
            assert!(d % 2 != 0 && i32::from(d).abs() < 1 << (W - 1), "digit {d} at {i}");
            if let Some(last) = last_nonzero {
                assert!(i - last >= W, "digits at {last} and {i} for W = {W}");
            }
            last_nonzero = Some(i);
            sum += i64::from(d) << i;
        }
        assert_eq!(sum, i64::from(k), "W = {W}");
    }

    #[test]
    fn wnaf_digits_sum_to_the_scalar() {
        let mut rng = StdRng::seed_from_u64(4);
        let mut values: Vec<u32> = (0..3000).map(|_| rng.gen()).collect();
        values.extend([0, 1, 2, 3, u32::MAX, u32::MAX - 1, 1 << 31, (1 << 31) - 1, 0xaaaa_aaaa, 0x5555_5555]);
        values.extend([0x7f, 0x80, 0xff, 0x8000_007f, 0xf0f0_f0f1, 0xffff_ff80, 0xc000_0000]);
        for k in values {
            check_wnaf::<5>(k);
            check_wnaf::<8>(k);
            check_wnaf::<2>(k);
        }
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
        let x = Fe::from_be(e.x().unwrap()[..].try_into().unwrap()).unwrap();
        let y = Fe::from_be(e.y().unwrap()[..].try_into().unwrap()).unwrap();
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
    fn check_tables<const K: usize>(tables: &Tables<K>, p: &p256::ProjectivePoint) {
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
        check_tables(&comb_tables::<Q_TABLE_LEN>(&from_p256(&q)), &q);
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
        let s = limbs_from_be(bytes(SAMPLE)[32..].try_into().unwrap());
        let r = limbs_from_be(bytes(SAMPLE)[..32].try_into().unwrap());
        assert!(key.verify(b"sample", &sig(&r, &sub_limbs(&N, &s).0)));
    }

    #[test]
    fn out_of_range_r_and_s() {
        let key = rfc6979_key();
        let valid = bytes(SAMPLE);
        let (r, s) =
            (limbs_from_be(valid[..32].try_into().unwrap()), limbs_from_be(valid[32..].try_into().unwrap()));
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
        let key = P256PublicKey::from_point(*q);
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
        let q = rfc6979_key().q;
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
                (&y * &y % &p == rhs).then(|| Affine { x: Fe(limbs(&x)), y: Fe(limbs(&y)) })
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
        let neg_y = be(&(-Fe(limbs_from_be(y.as_slice().try_into().unwrap()))).0);
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
