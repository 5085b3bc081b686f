//! Verification-only RSA (RSASSA-PKCS1-v1_5 and RSASSA-PSS, RFC 8017) for JWS.
//!
//! Why not the `rsa` crate: its general big-integer code is slow in Wasm, ~0.5-1.1 ms per RS256
//! verification in V8, against ~0.07 ms for this Montgomery exponentiation with 32-bit limbs (Wasm
//! has 64-bit multiplies, so 32x32->64 products are native) and squarings (bench/rsa/RESULTS.md).
//! Only public values are handled, so nothing needs to be constant-time; everything must be exact.

#![forbid(unsafe_code)]

use sha2::{Digest, Sha256, Sha384, Sha512};

/// Hash of the JWS algorithm (RS256/PS256 → Sha256, …).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hash {
    Sha256,
    Sha384,
    Sha512,
}

impl Hash {
    fn len(self) -> usize {
        match self {
            Hash::Sha256 => 32,
            Hash::Sha384 => 48,
            Hash::Sha512 => 64,
        }
    }

    /// Hash of the concatenation of `parts` (PSS hashes `00..00 || mHash || salt`, MGF1 hashes
    /// `seed || counter`), without copying them into one buffer first.
    fn digest(self, parts: &[&[u8]]) -> Vec<u8> {
        fn run<D: Digest>(parts: &[&[u8]]) -> Vec<u8> {
            let mut d = D::new();
            for p in parts {
                d.update(p);
            }
            d.finalize().to_vec()
        }
        match self {
            Hash::Sha256 => run::<Sha256>(parts),
            Hash::Sha384 => run::<Sha384>(parts),
            Hash::Sha512 => run::<Sha512>(parts),
        }
    }

    /// DER of `DigestInfo` up to the digest itself (RFC 8017 §9.2 note 1), parameters NULL present.
    /// The whole encoding is compared, so a signature with other DER (missing NULL, long-form
    /// lengths, trailing bytes) is refused rather than parsed.
    fn digest_info_prefix(self) -> &'static [u8] {
        match self {
            Hash::Sha256 => &[
                0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01,
                0x05, 0x00, 0x04, 0x20,
            ],
            Hash::Sha384 => &[
                0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02,
                0x05, 0x00, 0x04, 0x30,
            ],
            Hash::Sha512 => &[
                0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03,
                0x05, 0x00, 0x04, 0x40,
            ],
        }
    }
}

/// Smallest modulus accepted here: below 512 bits the PKCS#1 and PSS encodings of SHA-512 do not
/// fit, and no caller has a use for it (the filter itself requires 2048).
const MIN_BITS: usize = 512;
/// Largest modulus accepted here, so a hostile key cannot make one verification arbitrarily slow
/// (work grows with the square of the size); the filter itself stops at 4096.
const MAX_BITS: usize = 16384;

/// An RSA public key with what Montgomery exponentiation needs computed once, at construction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RsaPublicKey {
    /// Modulus, 32-bit limbs, least significant first; the top limb is non-zero.
    n: Vec<u32>,
    /// -n^-1 mod 2^32: the factor that makes the low limb vanish in each reduction step.
    n0_inv: u32,
    /// R^2 mod n with R = 2^(32 * n.len()): one Montgomery product with it puts a value into
    /// Montgomery form.
    rr: Vec<u32>,
    e: u32,
    bits: usize,
    size: usize,
}

impl RsaPublicKey {
    /// Key from the big-endian modulus `n` and exponent `e` (JWK `n` and `e`; leading zeros
    /// allowed). `None` if `n` is even, under 2^511 or over 16384 bits, or `e` is even, below 3 or
    /// over 2^32 - 1. The caller enforces its own size policy (2048..=4096 bits) on top.
    pub fn new(n: &[u8], e: &[u8]) -> Option<Self> {
        let e = exponent(e)?;
        let n_bytes = strip_leading_zeros(n);
        let top = *n_bytes.first()?;
        let bits = 8 * n_bytes.len() - top.leading_zeros() as usize;
        if !(MIN_BITS..=MAX_BITS).contains(&bits) || n_bytes.last().is_some_and(|b| b & 1 == 0) {
            return None;
        }
        let n = limbs_from_be(n_bytes, bits.div_ceil(32));
        let n0_inv = neg_inverse(*n.first()?);
        let mut key = RsaPublicKey { rr: Vec::new(), n, n0_inv, e, bits, size: n_bytes.len() };
        key.rr = key.r_squared();
        Some(key)
    }

    /// Bit length of the modulus.
    pub fn bits(&self) -> usize {
        self.bits
    }

    /// Byte length of the modulus, which is also the length of every valid signature.
    pub fn size(&self) -> usize {
        self.size
    }

    /// RSASSA-PKCS1-v1_5 verification (RFC 8017 §8.2.2): `signature` must be exactly `size()` bytes
    /// and below `n`, and `signature^e mod n` must equal, byte for byte, the one valid encoding
    /// `00 01 FF..FF 00 || DigestInfo(hash(message))`. Building the expected encoding and comparing
    /// (instead of parsing what the signature decrypts to) is what RFC 8017 recommends and leaves
    /// no room for lenient-parsing forgeries (Bleichenbacher 2006).
    pub fn verify_pkcs1v15(&self, hash: Hash, message: &[u8], signature: &[u8]) -> bool {
        let Some(em) = self.public_op(signature) else {
            return false;
        };
        let prefix = hash.digest_info_prefix();
        let digest = hash.digest(&[message]);
        // emLen >= tLen + 11: at least eight 0xFF bytes of padding.
        let t_len = prefix.len() + digest.len();
        let Some(ps_len) = self.size.checked_sub(t_len + 3).filter(|&l| l >= 8) else {
            return false;
        };
        let expected = [0x00, 0x01]
            .iter()
            .chain(std::iter::repeat_n(&0xff, ps_len))
            .chain(std::iter::once(&0x00))
            .chain(prefix)
            .chain(&digest);
        em.iter().eq(expected)
    }

    /// RSASSA-PSS verification (RFC 8017 §8.1.2 and EMSA-PSS-VERIFY §9.1.2) with MGF1 over the
    /// same hash and a salt as long as the hash (RFC 7518 §3.5, the JWS `PS*` algorithms).
    pub fn verify_pss(&self, hash: Hash, message: &[u8], signature: &[u8]) -> bool {
        let Some(m) = self.public_op(signature) else {
            return false;
        };
        // emBits = modBits - 1, so the encoded message may be one byte shorter than the modulus;
        // then the integer's top byte must be zero (I2OSP(m, emLen) fails otherwise, §8.1.2 2c).
        let em_bits = self.bits - 1;
        let em_len = em_bits.div_ceil(8);
        let Some((high, em)) = m.split_at_checked(self.size - em_len) else {
            return false;
        };
        if high.iter().any(|&b| b != 0) {
            return false;
        }
        emsa_pss_verify(hash, message, em, em_bits)
    }

    /// RSAVP1 (RFC 8017 §5.2.2): `signature^e mod n` as `size()` big-endian bytes, or `None` when
    /// the signature is not exactly `size()` bytes or not below `n`.
    fn public_op(&self, signature: &[u8]) -> Option<Vec<u8>> {
        if signature.len() != self.size {
            return None;
        }
        let s = limbs_from_be(signature, self.n.len());
        if !less_than(&s, &self.n) {
            return None;
        }
        // With e odd, s^e = s^(e-1) * s. Doing the last multiplication with s itself rather than
        // its Montgomery form s*R also divides out the R, so the result leaves Montgomery form
        // without an extra product.
        let k = self.n.len();
        let mut wide = vec![0u32; 2 * k];
        let mut s_mont = vec![0u32; k];
        self.mont_mul(&s, &self.rr, &mut s_mont, &mut wide);
        let x = self.pow_mont(&s_mont, u64::from(self.e) - 1, &mut wide);
        let mut m = vec![0u32; k];
        self.mont_mul(&x, &s, &mut m, &mut wide);
        Some(be_from_limbs(&m, self.size))
    }

    /// `base^exp` for `base` in Montgomery form (`exp >= 1`), result in Montgomery form, by
    /// left-to-right square-and-multiply (e = 65537 costs 16 squarings and no multiplication here).
    /// `wide` is scratch space of 2k limbs.
    fn pow_mont(&self, base: &[u32], exp: u64, wide: &mut [u32]) -> Vec<u32> {
        let mut x = base.to_vec();
        let mut y = vec![0u32; x.len()];
        // Index of the top bit; the loop starts below it, x already being base^1.
        let top = 63u32.saturating_sub(exp.leading_zeros());
        for i in (0..top).rev() {
            self.mont_sqr(&x, &mut y, wide);
            std::mem::swap(&mut x, &mut y);
            if (exp >> i) & 1 == 1 {
                self.mont_mul(&x, base, &mut y, wide);
                std::mem::swap(&mut x, &mut y);
            }
        }
        x
    }

    /// R^2 mod n, R = 2^(32k). Found as the Montgomery form of 2 (that is 2R mod n) raised to 32k
    /// in Montgomery arithmetic: the Montgomery form of 2^(32k) = R is R*R mod n. About a dozen
    /// products instead of thousands of modular doublings.
    fn r_squared(&self) -> Vec<u32> {
        let k = self.n.len();
        // 2^(bits-1) < n because n is odd and has exactly `bits` bits; double it up to 2^(32k+1),
        // subtracting n whenever it reaches n, to get 2R mod n.
        let mut x = vec![0u32; k];
        if let Some(limb) = x.get_mut((self.bits - 1) / 32) {
            *limb = 1 << ((self.bits - 1) % 32);
        }
        for _ in self.bits - 1..32 * k + 1 {
            let carry = shl1(&mut x);
            if carry || !less_than(&x, &self.n) {
                sub_assign(&mut x, &self.n);
            }
        }
        self.pow_mont(&x, 32 * k as u64, &mut vec![0u32; 2 * k])
    }

    /// Montgomery product `out = a * b / R mod n` for `a`, `b` < n, fully reduced. Separated
    /// operand scanning: the full product first, then the reduction, which lets squaring compute
    /// each cross product once (16 of the 17 products for e = 65537 are squarings).
    fn mont_mul(&self, a: &[u32], b: &[u32], out: &mut [u32], t: &mut [u32]) {
        mul_wide(t, a, b);
        self.reduce(t, out);
    }

    fn mont_sqr(&self, a: &[u32], out: &mut [u32], t: &mut [u32]) {
        sqr_wide(t, a);
        self.reduce(t, out);
    }

    /// Montgomery reduction: `out = t / R mod n` for `t` (2k limbs) < n * R. Each step adds the
    /// multiple of n that clears the lowest remaining limb; after k steps the low half is zero and
    /// the high half is the result, below 2n, so one conditional subtraction finishes it.
    fn reduce(&self, t: &mut [u32], out: &mut [u32]) {
        let k = self.n.len();
        // Carry out of the top limb of the previous step's window; it belongs one limb higher,
        // which is the top of this step's window.
        let mut extra: u64 = 0;
        for i in 0..k {
            let Some((top, window)) = t.get_mut(i..=i + k).and_then(|w| w.split_last_mut()) else {
                return;
            };
            let m = u64::from(window.first().copied().unwrap_or(0).wrapping_mul(self.n0_inv));
            let carry = mul_add(window, &self.n, m);
            let s = *top as u64 + carry + extra;
            *top = s as u32;
            extra = s >> 32;
        }
        for (o, &x) in out.iter_mut().zip(t.iter().skip(k)) {
            *o = x;
        }
        if extra != 0 || !less_than(out, &self.n) {
            sub_assign(out, &self.n);
        }
    }
}

/// row += a * b for equal-length `row` and `a` and a 32-bit `b`, returning the carry out of the
/// top limb: the inner loop of every product and reduction, so nearly all of the time. Unrolled
/// by eight (the limb counts of 2048-, 3072- and 4096-bit keys are multiples of eight), which V8
/// does not do by itself: ~20% faster in Wasm than a plain loop. Slice patterns rather than
/// `chunks_exact`: as fast in release, and twice as fast in debug builds, where the tests run.
fn mul_add(mut row: &mut [u32], mut a: &[u32], b: u64) -> u64 {
    let mut carry: u64 = 0;
    macro_rules! step {
        ($x:ident, $y:ident) => {
            // Fits in 64 bits: (2^32-1) + (2^32-1)^2 + (2^32-1) = 2^64 - 1.
            let s = *$x as u64 + *$y as u64 * b + carry;
            *$x = s as u32;
            carry = s >> 32;
        };
    }
    loop {
        match (row, a) {
            (
                [x0, x1, x2, x3, x4, x5, x6, x7, row_rest @ ..],
                [y0, y1, y2, y3, y4, y5, y6, y7, a_rest @ ..],
            ) => {
                step!(x0, y0);
                step!(x1, y1);
                step!(x2, y2);
                step!(x3, y3);
                step!(x4, y4);
                step!(x5, y5);
                step!(x6, y6);
                step!(x7, y7);
                (row, a) = (row_rest, a_rest);
            }
            (row_rest, a_rest) => {
                for (x, y) in row_rest.iter_mut().zip(a_rest) {
                    step!(x, y);
                }
                return carry;
            }
        }
    }
}

/// t = a * b, schoolbook; `t` has room for both lengths' sum.
fn mul_wide(t: &mut [u32], a: &[u32], b: &[u32]) {
    t.fill(0);
    let k = a.len();
    for (i, &bi) in b.iter().enumerate() {
        let Some((top, row)) = t.get_mut(i..=i + k).and_then(|r| r.split_last_mut()) else {
            return;
        };
        // Nothing was written at i + k yet: earlier rows end below it.
        *top = mul_add(row, a, bi as u64) as u32;
    }
}

/// t = a^2: the products a_i a_j with i < j once, doubled, plus the squares a_i^2 on the diagonal.
/// About half the multiplications of `mul_wide(t, a, a)`.
fn sqr_wide(t: &mut [u32], a: &[u32]) {
    t.fill(0);
    let k = a.len();
    for (i, &ai) in a.iter().enumerate() {
        let Some(rest) = a.get(i + 1..) else {
            return;
        };
        // Row i covers positions 2i+1 ..= i+k-1 and its carry lands at i+k, untouched so far.
        let Some((top, row)) = t.get_mut(2 * i + 1..=i + k).and_then(|r| r.split_last_mut()) else {
            continue;
        };
        *top = mul_add(row, rest, ai as u64) as u32;
    }
    // The cross products sum to less than a^2 / 2, so doubling cannot overflow 2k limbs.
    shl1(t);
    let mut carry: u64 = 0;
    for (pair, &ai) in t.chunks_exact_mut(2).zip(a) {
        let [lo, hi] = pair else {
            return;
        };
        let sq = ai as u64 * ai as u64;
        let s = *lo as u64 + (sq & 0xffff_ffff) + carry;
        *lo = s as u32;
        let s = *hi as u64 + (sq >> 32) + (s >> 32);
        *hi = s as u32;
        carry = s >> 32;
    }
}

/// EMSA-PSS-VERIFY (RFC 8017 §9.1.2) for an `em` of emLen = ceil(emBits/8) bytes, salt length
/// = hash length.
fn emsa_pss_verify(hash: Hash, message: &[u8], em: &[u8], em_bits: usize) -> bool {
    let h_len = hash.len();
    let s_len = h_len;
    let em_len = em.len();
    // Step 3.
    if em_len < h_len + s_len + 2 {
        return false;
    }
    // Steps 4-5: EM = maskedDB || H || 0xbc.
    let Some((&0xbc, rest)) = em.split_last() else {
        return false;
    };
    let Some((masked_db, h)) = rest.split_at_checked(em_len - h_len - 1) else {
        return false;
    };
    // Step 6: the bits above emBits must be zero.
    let zero_bits = 8 * em_len - em_bits;
    let top_mask = 0xffu8.checked_shr(zero_bits as u32).unwrap_or(0);
    let Some(&first) = masked_db.first() else {
        return false;
    };
    if first & !top_mask != 0 {
        return false;
    }
    // Steps 7-9: DB = maskedDB xor MGF1(H), then clear the bits above emBits.
    let mut db = masked_db.to_vec();
    mgf1_xor(hash, h, &mut db);
    if let Some(b) = db.first_mut() {
        *b &= top_mask;
    }
    // Step 10: DB = 00..00 || 01 || salt.
    let Some((ps, rest)) = db.split_at_checked(em_len - h_len - s_len - 2) else {
        return false;
    };
    let Some((&0x01, salt)) = rest.split_first() else {
        return false;
    };
    if ps.iter().any(|&b| b != 0) {
        return false;
    }
    // Steps 12-14: H = Hash(00 x 8 || Hash(M) || salt).
    let m_hash = hash.digest(&[message]);
    let h2 = hash.digest(&[&[0u8; 8], &m_hash, salt]);
    h2 == h
}

/// `db ^= MGF1(seed, db.len())` (RFC 8017 §B.2.1).
fn mgf1_xor(hash: Hash, seed: &[u8], db: &mut [u8]) {
    for (counter, chunk) in (0u32..).zip(db.chunks_mut(hash.len())) {
        let mask = hash.digest(&[seed, &counter.to_be_bytes()]);
        for (d, m) in chunk.iter_mut().zip(mask) {
            *d ^= m;
        }
    }
}

/// The public exponent as a u32, if odd, at least 3 and below 2^32.
fn exponent(e: &[u8]) -> Option<u32> {
    let e = strip_leading_zeros(e);
    if e.len() > 4 {
        return None;
    }
    let e = e.iter().fold(0u32, |acc, &b| (acc << 8) | u32::from(b));
    (e >= 3 && e & 1 == 1).then_some(e)
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let zeros = bytes.iter().take_while(|&&b| b == 0).count();
    bytes.get(zeros..).unwrap_or_default()
}

/// -x^-1 mod 2^32 for odd x, by Newton's iteration: y = x is right to 3 bits (x*x = 1 mod 8 for
/// odd x) and each step doubles the correct bits: 3, 6, 12, 24, 48.
fn neg_inverse(x: u32) -> u32 {
    let mut y = x;
    for _ in 0..4 {
        y = y.wrapping_mul(2u32.wrapping_sub(x.wrapping_mul(y)));
    }
    y.wrapping_neg()
}

/// Big-endian bytes to `k` little-endian limbs (bytes beyond `k` limbs are dropped; callers pass
/// values that fit).
fn limbs_from_be(bytes: &[u8], k: usize) -> Vec<u32> {
    let mut limbs: Vec<u32> =
        bytes.rchunks(4).map(|c| c.iter().fold(0u32, |acc, &b| (acc << 8) | u32::from(b))).take(k).collect();
    limbs.resize(k, 0);
    limbs
}

/// Little-endian limbs to `len` big-endian bytes (the value must fit in `len` bytes).
fn be_from_limbs(limbs: &[u32], len: usize) -> Vec<u8> {
    let mut bytes: Vec<u8> = limbs.iter().flat_map(|l| l.to_le_bytes()).take(len).collect();
    bytes.resize(len, 0);
    bytes.reverse();
    bytes
}

/// a < b for equal-length limb vectors.
fn less_than(a: &[u32], b: &[u32]) -> bool {
    a.iter().rev().zip(b.iter().rev()).find(|(x, y)| x != y).is_some_and(|(x, y)| x < y)
}

/// a -= b mod 2^(32k) (the borrow out is dropped: callers only subtract when a >= b, or when a
/// has overflowed into an implicit top limb that the borrow clears).
fn sub_assign(a: &mut [u32], b: &[u32]) {
    let mut borrow = false;
    for (x, &y) in a.iter_mut().zip(b) {
        let (d, b1) = x.overflowing_sub(y);
        let (d, b2) = d.overflowing_sub(u32::from(borrow));
        *x = d;
        borrow = b1 || b2;
    }
}

/// a <<= 1, returning the bit shifted out.
fn shl1(a: &mut [u32]) -> bool {
    let mut carry = 0u32;
    for x in a.iter_mut() {
        let next = *x >> 31;
        *x = (*x << 1) | carry;
        carry = next;
    }
    carry == 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::BigUint;

    fn to_big(limbs: &[u32]) -> BigUint {
        BigUint::from_bytes_be(&be_from_limbs(limbs, 4 * limbs.len()))
    }

    #[test]
    fn neg_inverse_is_exact() {
        for x in [1u32, 3, 0xffff_ffff, 0x1234_5679, 65537] {
            assert_eq!(x.wrapping_mul(neg_inverse(x)), u32::MAX, "{x:#x}");
        }
    }

    #[test]
    fn r_squared_matches_bigint() {
        // Odd moduli of awkward sizes: bits a multiple of 32, one over, one under.
        for bits in [512usize, 513, 543, 544, 1023, 2048, 2049] {
            let mut n = vec![0xa5u8; bits.div_ceil(8)];
            n[0] = 0xff >> ((8 - bits % 8) % 8);
            *n.last_mut().unwrap() |= 1;
            let key = RsaPublicKey::new(&n, &[1, 0, 1]).unwrap();
            assert_eq!(key.bits(), bits);
            let n_big = BigUint::from_bytes_be(&n);
            let r = BigUint::from(1u8) << (32 * key.n.len());
            assert_eq!(to_big(&key.rr), (&r * &r) % &n_big, "{bits} bits");
        }
    }

    /// Odd moduli of several sizes (limb counts that are and are not multiples of the unrolling),
    /// including the carry extremes 2^b - 1 and 2^(b-1) + 1, against `BigUint::modpow`.
    #[test]
    fn public_op_matches_bigint() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        for bits in [512usize, 1000, 2048, 2049, 3072, 4096] {
            let len = bits.div_ceil(8);
            let top_mask = 0xffu8 >> (8 * len - bits);
            let mut random = vec![0u8; len];
            rng.fill(&mut random[..]);
            random[0] = (random[0] | 0x80u8 >> (8 * len - bits)) & top_mask;
            random[len - 1] |= 1;
            let mut ones = vec![0xffu8; len];
            ones[0] = top_mask;
            let mut sparse = vec![0u8; len];
            sparse[0] = 0x80 >> (8 * len - bits);
            sparse[len - 1] = 1;
            for n in [random, ones, sparse] {
                let n_big = BigUint::from_bytes_be(&n);
                for e in [3u32, 65537, 0xffff_ffff] {
                    let key = RsaPublicKey::new(&n, &e.to_be_bytes()).unwrap();
                    assert_eq!((key.bits(), key.size()), (bits, len));
                    let mut s = vec![0u8; len];
                    rng.fill(&mut s[..]);
                    s[0] &= top_mask >> 1;
                    let one = BigUint::from(1u8);
                    let n_minus_1 = &n_big - &one;
                    for s in [BigUint::from_bytes_be(&s), BigUint::from(0u8), one, n_minus_1] {
                        let bytes = be_pad(&s, len);
                        let got = BigUint::from_bytes_be(&key.public_op(&bytes).unwrap());
                        assert_eq!(got, s.modpow(&BigUint::from(e), &n_big), "{bits} bits, e = {e}");
                    }
                    // s >= n and wrong lengths are refused before any arithmetic.
                    assert!(key.public_op(&n).is_none());
                    assert!(key.public_op(&vec![0; len - 1]).is_none());
                    assert!(key.public_op(&vec![0; len + 1]).is_none());
                }
            }
        }
    }

    fn be_pad(x: &BigUint, len: usize) -> Vec<u8> {
        let b = x.to_bytes_be();
        let b = if b == [0] { Vec::new() } else { b };
        [vec![0u8; len - b.len()], b].concat()
    }

    #[test]
    fn key_checks() {
        let mut n = vec![0xffu8; 256];
        assert!(RsaPublicKey::new(&n, &[1, 0, 1]).is_some());
        let mut padded = vec![0u8; 3];
        padded.extend_from_slice(&n);
        let key = RsaPublicKey::new(&padded, &[0, 0, 1, 0, 1]).unwrap();
        assert_eq!((key.bits(), key.size()), (2048, 256));
        // Exponents.
        for e in [&[][..], &[1], &[2], &[0, 3][..], &[1, 0, 0], &[1, 0, 0, 0, 1]] {
            let ok = RsaPublicKey::new(&n, e).is_some();
            assert_eq!(ok, e == [0, 3], "{e:?}");
        }
        assert!(RsaPublicKey::new(&n, &[0xff, 0xff, 0xff, 0xff]).is_some());
        // Even modulus, too small, too large, empty.
        n[255] = 0xfe;
        assert!(RsaPublicKey::new(&n, &[3]).is_none());
        assert!(RsaPublicKey::new(&[0xff; 63], &[3]).is_none());
        assert!(RsaPublicKey::new(&[0xff; 64], &[3]).is_some());
        let mut small = vec![0xffu8; 64];
        small[0] = 0x7f;
        assert!(RsaPublicKey::new(&small, &[3]).is_none());
        assert!(RsaPublicKey::new(&[0xff; 2049], &[3]).is_none());
        assert!(RsaPublicKey::new(&[0; 300], &[3]).is_none());
        assert!(RsaPublicKey::new(&[], &[3]).is_none());
    }
}
