//! Verification-only ECDSA (FIPS 186-4 §6.4, SEC 1 v2 §4.1.4) over a short Weierstrass curve
//! y^2 = x^3 - 3x + b with a prime field and cofactor 1: what P-256 (`p256`) and P-384 (`p384`)
//! share. Each curve brings its constants and its field arithmetic (`Curve`, written out limb by
//! limb for its own size and reduction); everything else is here, generic over the number L of
//! 32-bit limbs.
//!
//! Why not the RustCrypto `p256`/`p384` crates: they are constant-time throughout (complete
//! addition formulas, fixed windows, and u1·G + u2·Q as two separate scalar multiplications),
//! which costs ~0.8-0.9 ms per P-256 and ~8 ms per P-384 verification in V8 (bench/p256).
//! Verification only handles public values, so this module is variable-time: incomplete Jacobian
//! formulas with their exceptional cases handled by branches; u1·G + u2·Q as one interleaved wNAF
//! multi-scalar multiplication with precomputed tables, for G once per process and for Q once per
//! key, that cut the doublings from 32·L to 32; a variable-time inversion mod n and no field
//! inversion per verification. Everything must be exact; nothing here panics.

#![forbid(unsafe_code)]

use std::fmt;
use std::marker::PhantomData;
use std::ops::{Add, Mul, Neg, Sub};
use std::sync::OnceLock;

/// An integer below 2^(32L) as L 32-bit limbs, least significant first.
pub(super) type Limbs<const L: usize> = [u32; L];

/// A curve y^2 = x^3 - 3x + b over the integers mod a prime p < 2^(32L) with 2^(32L) < 2p, whose
/// base point G has prime order n (cofactor 1). Field operations take and give any L-limb value
/// congruent to the result (the residue x or x + p), as `Fe` describes.
pub(super) trait Curve<const L: usize>: Sized + 'static {
    const P: Limbs<L>;
    const N: Limbs<L>;
    /// -n^-1 mod 2^32, for Montgomery reduction mod n.
    const N_NEG_INV: u32;
    const B: Limbs<L>;
    const GX: Limbs<L>;
    const GY: Limbs<L>;

    fn add(a: &Limbs<L>, b: &Limbs<L>) -> Limbs<L>;
    fn sub(a: &Limbs<L>, b: &Limbs<L>) -> Limbs<L>;
    fn mul(a: &Limbs<L>, b: &Limbs<L>) -> Limbs<L>;
    fn square(a: &Limbs<L>) -> Limbs<L>;
    /// k·a for a small k (at most 8 here).
    fn times(a: &Limbs<L>, k: i64) -> Limbs<L>;
    /// The tables of G, computed once per process (a generic function cannot own a static).
    fn g_tables() -> &'static Tables<Self, L, G_TABLE_LEN>;
}

/// A public key: an affine point checked to be on the curve (so not the point at infinity, and,
/// the cofactor being 1, in the group of order n), and its multiples for verification, computed
/// at the first verification (~3 verifications' work, 32·L·8 entries) so that keys never used
/// cost nothing.
pub(super) struct Key<C: Curve<L>, const L: usize> {
    q: Affine<C, L>,
    tables: OnceLock<Box<Tables<C, L, Q_TABLE_LEN>>>,
}

impl<C: Curve<L>, const L: usize> Clone for Key<C, L> {
    fn clone(&self) -> Self {
        Key { q: self.q, tables: self.tables.clone() }
    }
}

/// The point only: the tables are derived from it.
impl<C: Curve<L>, const L: usize> fmt::Debug for Key<C, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key").field("q", &self.q).finish_non_exhaustive()
    }
}

impl<C: Curve<L>, const L: usize> Key<C, L> {
    /// Key from big-endian affine coordinates of 4L bytes each (JWK `x`, `y`; SEC 1 §2.3.4's
    /// uncompressed point without the 0x04). `None` unless both are below p and the point is on
    /// the curve (SEC 1 §3.2.2.1's public key validation; for cofactor 1 that is all of it).
    pub(super) fn new(x: &[u8], y: &[u8]) -> Option<Self> {
        let q = Affine { x: Fe::from_be(x)?, y: Fe::from_be(y)? };
        q.is_on_curve().then(|| Key::from_point(q))
    }

    pub(super) fn from_point(q: Affine<C, L>) -> Self {
        Key { q, tables: OnceLock::new() }
    }

    #[cfg(test)]
    pub(super) fn point(&self) -> &Affine<C, L> {
        &self.q
    }

    fn tables(&self) -> &Tables<C, L, Q_TABLE_LEN> {
        self.tables.get_or_init(|| comb_tables(&self.q))
    }

    /// ECDSA verification of a `digest` as long as n (SEC 1 §4.1.4 from step 4 on), used whole as
    /// the integer e, without truncation. `signature` is the 8L-byte big-endian `r || s` of
    /// RFC 7518 §3.4.
    pub(super) fn verify_prehash(&self, digest: &[u8], signature: &[u8]) -> bool {
        let Some((r, s)) = signature.split_at_checked(4 * L) else {
            return false;
        };
        let (Some(r), Some(s), Some(e)) = (limbs_from_be(r), limbs_from_be(s), limbs_from_be(digest)) else {
            return false;
        };
        // Step 1: r and s in [1, n - 1]. High s is accepted: JWS has no low-s rule.
        if !is_scalar::<C, L>(&r) || !is_scalar::<C, L>(&s) {
            return false;
        }
        // Steps 4-5: u1 = e·s^-1, u2 = r·s^-1 mod n. Inverting s·R^-1 (one Montgomery product
        // with 1) gives R·s^-1, whose Montgomery products with e and r are e·s^-1 and r·s^-1:
        // no conversions in or out of Montgomery form. e may be up to 2^(32L) - 1: a Montgomery
        // product only needs e·w < n·R.
        let w = invert_mod(&mont_mul_n::<C, L>(&s, &one()), &C::N);
        let u1 = mont_mul_n::<C, L>(&e, &w);
        let u2 = mont_mul_n::<C, L>(&r, &w);
        // Steps 5-8: R = u1·G + u2·Q; valid iff R is not infinity and x(R) mod n = r.
        x_mod_n_is(&double_mul(&u1, &u2, self.tables()), &r)
    }
}

/// Whether the affine x of `point` is r modulo n, without computing x = X/Z^2: as x < p < 2n,
/// x mod n = r means x = r or x = r + n (possible only when r + n < p), and x = c is X = c·Z^2.
fn x_mod_n_is<C: Curve<L>, const L: usize>(point: &Jacobian<C, L>, r: &Limbs<L>) -> bool {
    if point.is_infinity() {
        return false;
    }
    let zz = point.z.square();
    // r < n < p, so r is a field element as it is.
    if Fe::new(*r) * zz == point.x {
        return true;
    }
    let (r_plus_n, carry) = add_limbs(r, &C::N);
    !carry && less_than(&r_plus_n, &C::P) && Fe::new(r_plus_n) * zz == point.x
}

// ---------------------------------------------------------------------------------------------
// Scalar multiplication

/// Scalars are cut into their L 32-bit limbs, k = Σ k_c·2^(32c), so that k·P = Σ k_c·(2^(32c)·P):
/// with tables of multiples of each 2^(32c)·P, the chunks share 32 doublings instead of 32·L (a
/// fixed-base comb after Lim and Lee, with wNAF digits in each chunk). For G the tables are
/// computed once per process, for Q once per key. On P-256, four chunks of 64 bits would halve
/// the tables, for ~20% more time per verification in V8.
const CHUNK_BITS: usize = 32;
/// wNAF digits of a chunk: one more than its bits, for the final carry.
const CHUNK_DIGITS: usize = CHUNK_BITS + 1;
/// wNAF width for G: 2^(8-2) = 64 odd multiples per chunk (32 KiB for P-256, 72 KiB for P-384).
const G_WINDOW: usize = 8;
/// wNAF width for Q: 8 odd multiples per chunk (4 KiB per P-256 key, 9 KiB per P-384 key).
const Q_WINDOW: usize = 5;
pub(super) const G_TABLE_LEN: usize = 1 << (G_WINDOW - 2);
pub(super) const Q_TABLE_LEN: usize = 1 << (Q_WINDOW - 2);

/// For each chunk c, the odd multiples P', 3P', …, (2K - 1)P' of P' = 2^(32c)·P.
pub(super) type Tables<C, const L: usize, const K: usize> = [[Affine<C, L>; K]; L];

/// u1·G + u2·Q by interleaved wNAF (Hankerson, Menezes, Vanstone, Guide to ECC, Alg. 3.51) over
/// the chunks of both scalars: one shared chain of doublings, and a mixed addition for each
/// non-zero digit.
pub(super) fn double_mul<C: Curve<L>, const L: usize>(
    u1: &Limbs<L>,
    u2: &Limbs<L>,
    q_tables: &Tables<C, L, Q_TABLE_LEN>,
) -> Jacobian<C, L> {
    let g_digits = u1.map(wnaf::<G_WINDOW>);
    let q_digits = u2.map(wnaf::<Q_WINDOW>);
    let g_tables = C::g_tables();
    let mut acc = Jacobian::INFINITY;
    for j in (0..CHUNK_DIGITS).rev() {
        acc = acc.double();
        acc = add_digits(acc, &g_digits, g_tables, j);
        acc = add_digits(acc, &q_digits, q_tables, j);
    }
    acc
}

/// acc plus, for each chunk, its digit at position j times that chunk's point.
fn add_digits<C: Curve<L>, const L: usize, const K: usize>(
    mut acc: Jacobian<C, L>,
    digits: &[[i8; CHUNK_DIGITS]; L],
    tables: &Tables<C, L, K>,
    j: usize,
) -> Jacobian<C, L> {
    for (chunk, table) in digits.iter().zip(tables) {
        if let Some(p) = chunk.get(j).and_then(|&d| lookup(table, d)) {
            acc = acc.add_affine(&p);
        }
    }
    acc
}

/// The table entry for a wNAF digit: `table[i]` is (2i + 1)·P, negated for negative digits;
/// `None` for digit 0.
pub(super) fn lookup<C: Curve<L>, const L: usize>(table: &[Affine<C, L>], digit: i8) -> Option<Affine<C, L>> {
    let point = *table.get(usize::from(digit.unsigned_abs() >> 1))?;
    match digit {
        0 => None,
        d if d < 0 => Some(-point),
        _ => Some(point),
    }
}

/// The tables of P: 32·(L - 1) doublings for the chunks' points, a doubling and K - 1 additions
/// per chunk for the odd multiples, and one field inversion for all their affine forms.
pub(super) fn comb_tables<C: Curve<L>, const L: usize, const K: usize>(
    p: &Affine<C, L>,
) -> Box<Tables<C, L, K>> {
    let mut jacobian = Vec::with_capacity(L * K);
    let mut base = Jacobian::from(*p);
    for c in 0..L {
        if c > 0 {
            for _ in 0..CHUNK_BITS {
                base = base.double();
            }
        }
        jacobian.extend(odd_multiples::<C, L, K>(&base));
    }
    let mut tables = Box::new([[*p; K]; L]);
    to_affine_all(&jacobian, tables.as_flattened_mut());
    tables
}

/// P, 3P, 5P, …, (2K - 1)P.
fn odd_multiples<C: Curve<L>, const L: usize, const K: usize>(p: &Jacobian<C, L>) -> [Jacobian<C, L>; K] {
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
fn to_affine_all<C: Curve<L>, const L: usize>(points: &[Jacobian<C, L>], out: &mut [Affine<C, L>]) {
    // prefix[i] = Z_0 · … · Z_i.
    let prefix: Vec<Fe<C, L>> = points
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
pub(super) struct Affine<C, const L: usize> {
    pub(super) x: Fe<C, L>,
    pub(super) y: Fe<C, L>,
}

impl<C, const L: usize> Clone for Affine<C, L> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<C, const L: usize> Copy for Affine<C, L> {}

impl<C: Curve<L>, const L: usize> PartialEq for Affine<C, L> {
    fn eq(&self, other: &Self) -> bool {
        self.x == other.x && self.y == other.y
    }
}

impl<C: Curve<L>, const L: usize> Eq for Affine<C, L> {}

impl<C, const L: usize> fmt::Debug for Affine<C, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Affine").field("x", &self.x).field("y", &self.y).finish()
    }
}

impl<C: Curve<L>, const L: usize> Affine<C, L> {
    /// The base point G.
    pub(super) const G: Self = Affine { x: Fe::new(C::GX), y: Fe::new(C::GY) };

    /// y^2 = x^3 - 3x + b.
    pub(super) fn is_on_curve(&self) -> bool {
        let x = self.x;
        self.y.square() == (x.square() - Fe::THREE) * x + Fe::B
    }
}

impl<C: Curve<L>, const L: usize> Neg for Affine<C, L> {
    type Output = Self;
    fn neg(self) -> Self {
        Affine { x: self.x, y: -self.y }
    }
}

/// A point in Jacobian coordinates: (X, Y, Z) is the affine (X/Z^2, Y/Z^3); Z = 0 is the point at
/// infinity. The formulas are the Explicit-Formulas Database's for a = -3
/// (https://hyperelliptic.org/EFD/g1p/auto-shortw-jacobian-3.html); they are not complete, so
/// infinity and equal or opposite inputs are handled before them.
pub(super) struct Jacobian<C, const L: usize> {
    pub(super) x: Fe<C, L>,
    pub(super) y: Fe<C, L>,
    pub(super) z: Fe<C, L>,
}

impl<C, const L: usize> Clone for Jacobian<C, L> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<C, const L: usize> Copy for Jacobian<C, L> {}

impl<C, const L: usize> fmt::Debug for Jacobian<C, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Jacobian").field("x", &self.x).field("y", &self.y).field("z", &self.z).finish()
    }
}

impl<C: Curve<L>, const L: usize> From<Affine<C, L>> for Jacobian<C, L> {
    fn from(p: Affine<C, L>) -> Self {
        Jacobian { x: p.x, y: p.y, z: Fe::ONE }
    }
}

impl<C: Curve<L>, const L: usize> Jacobian<C, L> {
    pub(super) const INFINITY: Self = Jacobian { x: Fe::ONE, y: Fe::ONE, z: Fe::ZERO };

    pub(super) fn is_infinity(&self) -> bool {
        self.z.is_zero()
    }

    /// 2P by dbl-2001-b (3M + 5S). The curves here have no point of order 2 (n is odd), so
    /// Y ≠ 0 and the result is infinity only when P is.
    pub(super) fn double(&self) -> Self {
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
    pub(super) fn add_affine(&self, q: &Affine<C, L>) -> Self {
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
    pub(super) fn add(&self, q: &Self) -> Self {
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

/// An integer mod p held as any L-limb value congruent to it: as 2^(32L) < 2p, that is the
/// residue x or x + p. Arithmetic takes and gives such values, which spares every operation a
/// final comparison with p; `canonical` reduces fully where it matters, for comparisons.
pub(super) struct Fe<C, const L: usize>(pub(super) Limbs<L>, PhantomData<C>);

impl<C, const L: usize> Clone for Fe<C, L> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<C, const L: usize> Copy for Fe<C, L> {}

impl<C, const L: usize> fmt::Debug for Fe<C, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Fe").field(&self.0).finish()
    }
}

impl<C: Curve<L>, const L: usize> PartialEq for Fe<C, L> {
    fn eq(&self, other: &Self) -> bool {
        self.canonical() == other.canonical()
    }
}

impl<C: Curve<L>, const L: usize> Eq for Fe<C, L> {}

impl<C: Curve<L>, const L: usize> Fe<C, L> {
    pub(super) const ZERO: Self = Fe::new([0; L]);
    pub(super) const ONE: Self = Fe::new(one());
    pub(super) const THREE: Self = Fe::new(small(3));
    /// The curve coefficient b.
    pub(super) const B: Self = Fe::new(C::B);

    /// The element for an L-limb value (below 2^(32L), so below 2p).
    pub(super) const fn new(limbs: Limbs<L>) -> Self {
        Fe(limbs, PhantomData)
    }

    /// The element for a big-endian integer of 4L bytes, `None` unless it is below p.
    pub(super) fn from_be(bytes: &[u8]) -> Option<Self> {
        let limbs = limbs_from_be(bytes)?;
        less_than(&limbs, &C::P).then_some(Fe::new(limbs))
    }

    /// The residue, below p.
    pub(super) fn canonical(&self) -> Limbs<L> {
        let (reduced, borrow) = sub_limbs(&self.0, &C::P);
        if borrow {
            self.0
        } else {
            reduced
        }
    }

    pub(super) fn is_zero(&self) -> bool {
        self.0 == [0; L] || self.0 == C::P
    }

    pub(super) fn double(self) -> Self {
        self + self
    }

    /// k·a for a small k (at most 8 here), with one reduction.
    pub(super) fn times(self, k: i64) -> Self {
        Fe::new(C::times(&self.0, k))
    }

    pub(super) fn square(self) -> Self {
        Fe::new(C::square(&self.0))
    }

    /// 1/a, or 0 for a = 0 (as a^(p-2) would give).
    pub(super) fn invert(self) -> Self {
        Fe::new(invert_mod(&self.canonical(), &C::P))
    }
}

impl<C: Curve<L>, const L: usize> Add for Fe<C, L> {
    type Output = Self;
    fn add(self, rhs: Self) -> Self {
        Fe::new(C::add(&self.0, &rhs.0))
    }
}

impl<C: Curve<L>, const L: usize> Sub for Fe<C, L> {
    type Output = Self;
    fn sub(self, rhs: Self) -> Self {
        Fe::new(C::sub(&self.0, &rhs.0))
    }
}

impl<C: Curve<L>, const L: usize> Neg for Fe<C, L> {
    type Output = Self;
    fn neg(self) -> Self {
        Fe::ZERO - self
    }
}

impl<C: Curve<L>, const L: usize> Mul for Fe<C, L> {
    type Output = Self;
    fn mul(self, rhs: Self) -> Self {
        Fe::new(C::mul(&self.0, &rhs.0))
    }
}

/// Σ of 32×32→64-bit products as (Σ low halves, Σ high halves): at most L of each, so no
/// carries between words are needed until the reduction. The curves' product-scanning (Comba)
/// multiplications are written with it column by column.
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
pub(super) use column;

/// A column of cross products of a square: each appears twice.
pub(super) fn cross((lo, hi): (u64, u64)) -> (u64, u64) {
    (2 * lo, 2 * hi)
}

/// A column of cross products and the square of x.
pub(super) fn cross_plus_square(sums: (u64, u64), x: u64) -> (u64, u64) {
    let (lo, hi) = cross(sums);
    let sq = x * x;
    (lo + (sq & 0xffff_ffff), hi + (sq >> 32))
}

// ---------------------------------------------------------------------------------------------
// Integers mod n

/// 0 < k < n.
pub(super) fn is_scalar<C: Curve<L>, const L: usize>(k: &Limbs<L>) -> bool {
    *k != [0; L] && less_than(k, &C::N)
}

/// Montgomery product a·b·2^(-32L) mod n, for a < 2^(32L) and b < n (then a·b < n·2^(32L),
/// which is all the reduction needs), fully reduced. Coarsely integrated operand scanning (Koç,
/// Acar, Kaliski, "Analyzing and comparing Montgomery multiplication algorithms", 1996): each
/// step adds a·b_i, then the multiple of n that clears the lowest word, and drops that word.
/// Three per verification: loops are good enough.
pub(super) fn mont_mul_n<C: Curve<L>, const L: usize>(a: &Limbs<L>, b: &Limbs<L>) -> Limbs<L> {
    let mut t = [0u32; L];
    // The words of t above its L limbs: t_L and t_(L+1).
    let mut top = 0u64;
    for &b_i in b {
        let carry = mul_add_row(&mut t, a, b_i);
        top += carry;
        let m = t.first().map_or(0, |&low| low.wrapping_mul(C::N_NEG_INV));
        let carry = mul_add_row(&mut t, &C::N, m);
        top += carry;
        // t is now divisible by 2^32: drop its zero lowest word.
        t.rotate_left(1);
        if let Some(high) = t.last_mut() {
            *high = top as u32;
        }
        top >>= 32;
    }
    // (a·b + m·n) / 2^(32L) < 2n: one subtraction at most.
    let (reduced, borrow) = sub_limbs(&t, &C::N);
    if top != 0 || !borrow {
        reduced
    } else {
        t
    }
}

/// row += a·b, returning the carry out (below 2^32).
fn mul_add_row<const L: usize>(row: &mut Limbs<L>, a: &Limbs<L>, b: u32) -> u64 {
    let b = u64::from(b);
    let mut carry = 0u64;
    for (t, &x) in row.iter_mut().zip(a) {
        // At most (2^32 - 1) + (2^32 - 1)^2 + (2^32 - 1) = 2^64 - 1.
        let s = u64::from(*t) + u64::from(x) * b + carry;
        *t = s as u32;
        carry = s >> 32;
    }
    carry
}

// ---------------------------------------------------------------------------------------------
// Multi-limb helpers

/// a^-1 mod m for an odd prime m and 0 < a < m, by the binary extended Euclidean algorithm
/// (Guide to ECC Alg. 2.22), in variable time; 0 for any other a. Invariants: x1·a ≡ u and
/// x2·a ≡ v (mod m); gcd(u, v) = 1 throughout, so neither becomes 0 before one reaches 1.
pub(super) fn invert_mod<const L: usize>(a: &Limbs<L>, m: &Limbs<L>) -> Limbs<L> {
    if *a == [0; L] || !less_than(a, m) {
        return [0; L];
    }
    let one = one();
    let (mut u, mut v) = (*a, *m);
    let (mut x1, mut x2) = (one, [0; L]);
    while u != one && v != one {
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
    if u == one {
        x1
    } else {
        x2
    }
}

/// x/2 mod odd m for x < m: x/2 if x is even, else (x + m)/2 (x + m may take 32L + 1 bits).
fn halve_mod<const L: usize>(x: &mut Limbs<L>, m: &Limbs<L>) {
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
fn sub_mod<const L: usize>(a: &Limbs<L>, b: &Limbs<L>, m: &Limbs<L>) -> Limbs<L> {
    let (diff, borrow) = sub_limbs(a, b);
    if borrow {
        add_limbs(&diff, m).0
    } else {
        diff
    }
}

fn is_even<const L: usize>(a: &Limbs<L>) -> bool {
    a.first().is_some_and(|low| low & 1 == 0)
}

/// a >>= 1, shifting `top` in as the new top bit.
fn shr1<const L: usize>(a: &mut Limbs<L>, top: bool) {
    let mut high = u32::from(top);
    for limb in a.iter_mut().rev() {
        let low = *limb;
        *limb = (low >> 1) | (high << 31);
        high = low & 1;
    }
}

/// a + b and the carry out.
pub(super) fn add_limbs<const L: usize>(a: &Limbs<L>, b: &Limbs<L>) -> (Limbs<L>, bool) {
    let mut sum = [0u32; L];
    let mut carry = 0u64;
    for ((s, &x), &y) in sum.iter_mut().zip(a).zip(b) {
        let t = u64::from(x) + u64::from(y) + carry;
        *s = t as u32;
        carry = t >> 32;
    }
    (sum, carry != 0)
}

/// a - b mod 2^(32L) and whether it borrowed (a < b).
pub(super) fn sub_limbs<const L: usize>(a: &Limbs<L>, b: &Limbs<L>) -> (Limbs<L>, bool) {
    let mut diff = [0u32; L];
    let mut borrow = 0i64;
    for ((d, &x), &y) in diff.iter_mut().zip(a).zip(b) {
        let t = i64::from(x) - i64::from(y) + borrow;
        *d = t as u32;
        // Arithmetic shift: -1 when the difference went below 0.
        borrow = t >> 32;
    }
    (diff, borrow != 0)
}

pub(super) fn less_than<const L: usize>(a: &Limbs<L>, b: &Limbs<L>) -> bool {
    sub_limbs(a, b).1
}

/// The limbs of a big-endian integer of exactly 4L bytes.
pub(super) fn limbs_from_be<const L: usize>(bytes: &[u8]) -> Option<Limbs<L>> {
    if bytes.len() != 4 * L {
        return None;
    }
    let mut limbs = [0; L];
    for (limb, chunk) in limbs.iter_mut().zip(bytes.rchunks_exact(4)) {
        *limb = chunk.iter().fold(0, |acc, &b| (acc << 8) | u32::from(b));
    }
    Some(limbs)
}

/// The L-limb value of a small integer.
pub(super) const fn small<const L: usize>(value: u32) -> Limbs<L> {
    let mut limbs = [0; L];
    if let Some(low) = limbs.first_mut() {
        *low = value;
    }
    limbs
}

pub(super) const fn one<const L: usize>() -> Limbs<L> {
    small(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

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

    #[test]
    fn limb_helpers() {
        assert_eq!(limbs_from_be::<2>(&[1, 2, 3, 4, 5, 6, 7, 8]), Some([0x0506_0708, 0x0102_0304]));
        assert_eq!(limbs_from_be::<2>(&[1, 2, 3, 4, 5, 6, 7]), None);
        assert_eq!(limbs_from_be::<2>(&[0; 9]), None);
        assert_eq!(add_limbs(&[u32::MAX, 1], &[1, u32::MAX]), ([0, 1], true));
        assert_eq!(sub_limbs(&[0, 1], &[1, 0]), ([u32::MAX, 0], false));
        assert_eq!(sub_limbs(&[0, 0], &[1, 0]), ([u32::MAX, u32::MAX], true));
        let mut a = [0x8000_0001, 0x0000_0003];
        shr1(&mut a, true);
        assert_eq!(a, [0xc000_0000, 0x8000_0001]);
        assert_eq!(small::<3>(7), [7, 0, 0]);
    }
}
