//! The differential tests proper, for the curve the including module names: `curve` (the
//! RustCrypto crate), `Ours` (our key type), `SIZE` (bytes of a scalar or coordinate), `N` and `P`
//! (big-endian), `ROUNDS` (keys per test, fewer where verification is slower).

use super::{curve, Ours, N, P, ROUNDS, SIZE};
use curve::ecdsa::signature::hazmat::{PrehashSigner, PrehashVerifier};
use curve::ecdsa::signature::{Signer, Verifier};
use curve::ecdsa::{Signature, SigningKey, VerifyingKey};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A big-endian integer of SIZE bytes.
type Int = [u8; SIZE];

/// Big-endian a + n, if below 2^(8·SIZE).
fn add_n(a: &Int) -> Option<Int> {
    let mut out = [0u8; SIZE];
    let mut carry = 0u16;
    for i in (0..SIZE).rev() {
        let s = u16::from(a[i]) + u16::from(N[i]) + carry;
        out[i] = s as u8;
        carry = s >> 8;
    }
    (carry == 0).then_some(out)
}

/// Big-endian n - a, for a < n.
fn n_minus(a: &Int) -> Int {
    let mut out = [0u8; SIZE];
    let mut borrow = 0i16;
    for i in (0..SIZE).rev() {
        let d = i16::from(N[i]) - i16::from(a[i]) - borrow;
        out[i] = d.rem_euclid(256) as u8;
        borrow = i16::from(d < 0);
    }
    out
}

/// Big-endian a + b (mod 2^(8·SIZE)), for values next to n.
fn add(a: &Int, b: i64) -> Int {
    let mut out = *a;
    let mut carry = b;
    for byte in out.iter_mut().rev() {
        let s = i64::from(*byte) + carry;
        *byte = s.rem_euclid(256) as u8;
        carry = s.div_euclid(256);
    }
    out
}

fn coordinates(key: &VerifyingKey) -> (Vec<u8>, Vec<u8>) {
    let point = key.to_encoded_point(false);
    (point.x().unwrap().to_vec(), point.y().unwrap().to_vec())
}

fn ours(x: &[u8], y: &[u8]) -> Option<Ours> {
    Ours::new(x, y)
}

fn theirs(x: &[u8], y: &[u8]) -> Option<VerifyingKey> {
    VerifyingKey::from_sec1_bytes(&[&[4u8][..], x, y].concat()).ok()
}

/// The crate's verdict the way `src/crypto.rs` called it when it was the backend: `r || s` of
/// exactly 2·SIZE bytes, r and s in [1, n - 1], the curve's hash of the message.
fn their_verdict(key: &VerifyingKey, message: &[u8], signature: &[u8]) -> bool {
    Signature::from_slice(signature).is_ok_and(|sig| key.verify(message, &sig).is_ok())
}

fn their_prehash_verdict(key: &VerifyingKey, digest: &Int, signature: &[u8]) -> bool {
    Signature::from_slice(signature).is_ok_and(|sig| key.verify_prehash(digest, &sig).is_ok())
}

struct Pair {
    ours: Ours,
    theirs: VerifyingKey,
}

impl Pair {
    fn random(rng: &mut StdRng) -> (SigningKey, Pair) {
        let secret = SigningKey::random(rng);
        let (x, y) = coordinates(secret.verifying_key());
        let pair = Pair { ours: ours(&x, &y).expect("valid key refused"), theirs: *secret.verifying_key() };
        (secret, pair)
    }

    /// Both verdicts on one input; returns the verdict.
    fn check(&self, message: &[u8], signature: &[u8], what: &str) -> bool {
        let theirs = their_verdict(&self.theirs, message, signature);
        assert_eq!(self.ours.verify(message, signature), theirs, "{what}");
        theirs
    }

    fn check_prehash(&self, digest: &Int, signature: &[u8], what: &str) -> bool {
        let theirs = their_prehash_verdict(&self.theirs, digest, signature);
        assert_eq!(self.ours.verify_prehash(digest, signature), theirs, "{what}");
        theirs
    }
}

fn random_message(rng: &mut StdRng) -> Vec<u8> {
    let len = rng.gen_range(0..200);
    (0..len).map(|_| rng.gen()).collect()
}

/// The ways of breaking a valid signature: bit flips, r and s at and around 0 and n, swapped,
/// random, resized.
fn mutations(sig: &[u8; 2 * SIZE], rng: &mut StdRng) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for _ in 0..4 {
        let bit = rng.gen_range(0..16 * SIZE);
        let mut s = sig.to_vec();
        s[bit / 8] ^= 1 << (bit % 8);
        out.push((format!("signature bit {bit}"), s));
    }
    let (r, s) = (&sig[..SIZE], &sig[SIZE..]);
    for value in [[0u8; SIZE], add(&[0; SIZE], 1), add(&N, -1), N, add(&N, 1), [0xff; SIZE]] {
        out.push((format!("r = {value:02x?}"), [&value[..], s].concat()));
        out.push((format!("s = {value:02x?}"), [r, &value[..]].concat()));
    }
    let s_val: Int = s.try_into().unwrap();
    let r_val: Int = r.try_into().unwrap();
    // n - s: the other valid s (high s is not refused).
    let neg_s = n_minus(&s_val);
    out.push(("n - s".into(), [r, &neg_s[..]].concat()));
    if let Some(r_plus_n) = add_n(&r_val) {
        out.push(("r + n".into(), [&r_plus_n[..], s].concat()));
    }
    out.push(("r and s swapped".into(), [s, r].concat()));
    out.push(("r = s".into(), [s, s].concat()));
    out.push(("s + 1".into(), [r, &add(&s_val, 1)[..]].concat()));
    out.push(("r - 1".into(), [&add(&r_val, -1)[..], s].concat()));
    let mut random = [0u8; 2 * SIZE];
    rng.fill(&mut random[..]);
    out.push(("random".into(), random.to_vec()));
    out.push(("truncated".into(), sig[..2 * SIZE - 1].to_vec()));
    out.push(("extended".into(), [&sig[..], &[0]].concat()));
    out.push(("leading zero".into(), [&[0], &sig[..]].concat()));
    out.push(("empty".into(), Vec::new()));
    out
}

/// Random keys and messages: the signature verifies with both, and every mutation of the
/// signature or the message gets the same verdict from both.
#[test]
fn signatures_and_mutations() {
    let mut rng = StdRng::seed_from_u64(1);
    let (mut cases, mut accepted) = (0, 0);
    for _ in 0..ROUNDS {
        let (secret, pair) = Pair::random(&mut rng);
        for _ in 0..3 {
            let message = random_message(&mut rng);
            let sig: Signature = secret.sign(&message);
            let sig: [u8; 2 * SIZE] = sig.to_bytes()[..].try_into().unwrap();
            assert!(pair.check(&message, &sig, "valid signature"), "valid signature refused");
            for (what, broken) in mutations(&sig, &mut rng) {
                accepted += usize::from(pair.check(&message, &broken, &what));
                cases += 1;
            }
            let mut other = message.clone();
            if other.is_empty() {
                other.push(0);
            } else {
                let i = rng.gen_range(0..other.len());
                other[i] ^= 1 << rng.gen_range(0..8);
            }
            assert!(!pair.check(&other, &sig, "message changed"));
            assert!(!pair.check(&[message.as_slice(), b"."].concat(), &sig, "message extended"));
            cases += 3;
        }
    }
    // Only "n - s" of the mutations is valid, once per signature.
    assert_eq!(accepted, 3 * ROUNDS);
    eprintln!("{cases} signature and message cases, {accepted} mutations accepted by both");
}

/// Digests chosen rather than hashed: at and around 0 and n, all ones (e ≥ n is reduced mod n),
/// and random; signed by the crate and verified by both.
#[test]
fn chosen_digests() {
    let mut rng = StdRng::seed_from_u64(2);
    let mut cases = 0;
    for _ in 0..ROUNDS / 2 {
        let (secret, pair) = Pair::random(&mut rng);
        let mut random = [0u8; SIZE];
        rng.fill(&mut random[..]);
        for digest in [[0u8; SIZE], add(&[0; SIZE], 1), add(&N, -1), N, add(&N, 1), [0xff; SIZE], random] {
            let sig: Signature = secret.sign_prehash(&digest).unwrap();
            let sig: [u8; 2 * SIZE] = sig.to_bytes()[..].try_into().unwrap();
            assert!(pair.check_prehash(&digest, &sig, "valid"), "valid signature of {digest:02x?} refused");
            // e and e + n are the same residue when both fit: both valid.
            if let Some(plus_n) = add_n(&digest) {
                assert!(pair.check_prehash(&plus_n, &sig, "digest + n"));
            }
            for (what, broken) in mutations(&sig, &mut rng) {
                pair.check_prehash(&digest, &broken, &what);
                cases += 1;
            }
            let mut other = digest;
            other[rng.gen_range(0..SIZE)] ^= 1 << rng.gen_range(0..8);
            assert!(!pair.check_prehash(&other, &sig, "digest bit"));
            cases += 3;
        }
    }
    eprintln!("{cases} chosen-digest cases");
}

/// Keys: valid ones, and the same with a bit of x or y flipped, coordinates swapped, at or above
/// p: both accept exactly the same keys.
#[test]
fn key_validation() {
    let mut rng = StdRng::seed_from_u64(3);
    let (mut cases, mut valid) = (0, 0);
    for _ in 0..ROUNDS {
        let (_, pair) = Pair::random(&mut rng);
        let (x, y) = coordinates(&pair.theirs);
        let mut candidates = vec![(x.clone(), y.clone()), (y.clone(), x.clone())];
        for _ in 0..4 {
            let bit = rng.gen_range(0..8 * SIZE);
            let mut bx = x.clone();
            bx[bit / 8] ^= 1 << (bit % 8);
            let mut by = y.clone();
            by[bit / 8] ^= 1 << (bit % 8);
            candidates.push((bx, y.clone()));
            candidates.push((x.clone(), by));
        }
        for bad in [P, add(&P, 1), add(&P, -1), [0xff; SIZE], [0; SIZE]] {
            candidates.push((bad.to_vec(), y.clone()));
            candidates.push((x.clone(), bad.to_vec()));
        }
        for (cx, cy) in candidates {
            let theirs = theirs(&cx, &cy).is_some();
            assert_eq!(ours(&cx, &cy).is_some(), theirs, "x = {cx:02x?}, y = {cy:02x?}");
            valid += usize::from(theirs);
            cases += 1;
        }
    }
    // Each round: the key itself, and (p - 1, y) or (x, p - 1) essentially never.
    assert!(valid >= ROUNDS, "{valid}");
    eprintln!("{cases} keys, {valid} valid for both");
}

/// Random r and s against random keys and messages: almost never valid, and always the same.
#[test]
fn random_signatures() {
    let mut rng = StdRng::seed_from_u64(4);
    let (_, pair) = Pair::random(&mut rng);
    for i in 0..12 * ROUNDS {
        let message = random_message(&mut rng);
        let mut sig = [0u8; 2 * SIZE];
        rng.fill(&mut sig[..]);
        // Half of them with a top byte that keeps r and s below n.
        if i % 2 == 0 {
            sig[0] &= 0x7f;
            sig[SIZE] &= 0x7f;
        }
        assert!(!pair.check(&message, &sig, "random signature"));
    }
}
