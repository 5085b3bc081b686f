//! p256_signature and p384_signature: our variable-time ECDSA (`crypto::p256`, `crypto::p384`)
//! against the RustCrypto crate of the curve (`p256`, `p384` 0.13) on the same keys, messages or
//! digests and signatures: the verdicts must be equal, always, and so must the verdicts on the key
//! (`new` against `VerifyingKey::from_sec1_bytes` of `04 || x || y`). This body is included once
//! per curve by `p256_signature.rs` and `p384_signature.rs`, which name the curve's crate
//! (`curve`), hash, our key type (`Ours`), its size in bytes (`SIZE`) and its `VALUES`. The fuzzer cannot sign, so the harness does, with fixed keys: it starts from a
//! valid signature (RFC 6979, by the curve's crate) and applies the input's operations to it, to the
//! key's coordinates, or builds signatures with chosen scalars (`Op::Nonce`, `Op::Craft`) that make
//! the verifier's u1·G + u2·Q land on the exceptional cases of incomplete addition formulas
//! (P + P, P + -P, the point at infinity), most of all with the keys Q = G, -G and 2G.
//!
//! The input:
//! - byte 0: `flags`. Bits 0-2 pick the key (`KEYS` 0-5; 6 and 7: raw coordinates, below, with
//!   signatures by key 0); bit 3: a raw SIZE-byte digest (`verify_prehash`) instead of a message.
//! - raw key only: 2·SIZE bytes, x || y.
//! - digest: SIZE bytes; message: 1 byte length L, then L bytes (fewer if the input ends).
//! - then operations of 3 bytes each, `code, a, b` (see `Op`), at most `MAX_OPS`.
//!
//! Too short an input (no room for the raw key or digest) describes no signature.

use super::curve::ecdsa::signature::hazmat::{PrehashSigner, PrehashVerifier};
use super::curve::ecdsa::signature::{Signer, Verifier};
use super::curve::ecdsa::{Signature, SigningKey, VerifyingKey};
use super::curve::elliptic_curve::ops::Reduce;
use super::curve::elliptic_curve::point::AffineCoordinates;
use super::curve::{FieldBytes, ProjectivePoint, Scalar};
use super::{Hash, Ours, Uint, CURVE, SIZE, VALUES};
use sha2::Digest as _;

/// A big-endian integer of SIZE bytes.
pub type Int = [u8; SIZE];

pub const N: usize = 4; // VALUES[N] is n
pub const P: usize = 7; // VALUES[P] is p

/// The operations, by `code % 16`; `a` and `b` are the next two bytes. r and s operations first
/// make the signature 2·SIZE bytes (cut, or padded with zeros).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Flip signature bit `(a << 8 | b) % (8 · len)`.
    Flip,
    /// XOR `b` into signature byte `a % len`.
    Xor,
    /// r = `VALUES[a % 16]`.
    SetR,
    /// s = `VALUES[a % 16]`.
    SetS,
    /// r + n (a even) or s + n (a odd), mod 2^(8·SIZE).
    AddN,
    /// s = n - s (a even) or r = n - r (a odd), mod 2^(8·SIZE).
    Negate,
    /// r (a even) or s (a odd) plus `b as i8`, mod 2^(8·SIZE).
    Nudge,
    /// Swap r and s.
    Swap,
    /// Keep the first `a % (2·SIZE + 1)` bytes.
    Truncate,
    /// Append `a % 8 + 1` bytes `b`.
    Extend,
    /// The valid signature of key `a % KEYS` instead.
    Resign,
    /// A signature by the signing key with nonce `scalar(a)`: R = k·G (r = 0 and s = 0 when k = 0).
    Nonce,
    /// Prehash mode from here on, with a digest e and signature (r, s) such that the verifier
    /// computes R = u1·G + u2·Q with u1 = `scalar(a)`, u2 = `scalar(b)`: valid unless R is the
    /// point at infinity (then r = 1) or u2 = 0 (then s = 0).
    Craft,
    /// x (b even) or y (b odd) = `VALUES[a % 16]`.
    KeySet,
    /// `a % 4`: y = p - y, x = x + p, y = y + p (mod 2^(8·SIZE)), swap x and y.
    KeyMap,
    /// Flip bit `(a << 8 | b) % (16·SIZE)` of x || y.
    KeyFlip,
}

pub const OPS: [Op; 16] = [
    Op::Flip,
    Op::Xor,
    Op::SetR,
    Op::SetS,
    Op::AddN,
    Op::Negate,
    Op::Nudge,
    Op::Swap,
    Op::Truncate,
    Op::Extend,
    Op::Resign,
    Op::Nonce,
    Op::Craft,
    Op::KeySet,
    Op::KeyMap,
    Op::KeyFlip,
];

pub const MAX_OPS: usize = 16;
pub const RAW_KEY: u8 = 6;
pub const PREHASH: u8 = 8;

/// The fixed keys: three from fixed seeds, and d = 1, n - 1 and 2 (Q = G, -G and 2G).
pub const KEYS: usize = 6;

pub struct FixedKey {
    pub signing: SigningKey,
    pub d: Scalar,
    pub theirs: VerifyingKey,
    pub ours: Ours,
    pub x: Int,
    pub y: Int,
}

pub fn hex_value(hex: &str) -> Int {
    let mut out = [0u8; SIZE];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex");
    }
    out
}

pub fn value(i: u8) -> Int {
    hex_value(VALUES[usize::from(i) % VALUES.len()])
}

pub fn fixed_keys() -> Vec<FixedKey> {
    let n_minus_1 = value(3);
    let mut scalars: Vec<Int> = (0..3)
        .map(|i| {
            Hash::digest(format!("gateway_filter fuzz {CURVE}_signature key {i}"))[..]
                .try_into()
                .expect("size")
        })
        .collect();
    scalars.extend([value(1), n_minus_1, value(2)]);
    scalars
        .into_iter()
        .map(|bytes| {
            let signing = SigningKey::from_bytes(&field_bytes(&bytes)).expect("test key");
            let d = *signing.as_nonzero_scalar().as_ref();
            let theirs = *signing.verifying_key();
            let point = theirs.to_encoded_point(false);
            let x: Int = point.x().expect("x")[..].try_into().expect("x");
            let y: Int = point.y().expect("y")[..].try_into().expect("y");
            let ours = Ours::new(&x, &y).expect("our key");
            FixedKey { signing, d, theirs, ours, x, y }
        })
        .collect()
}

thread_local! {
    static FIXED_KEYS: Vec<FixedKey> = fixed_keys();
}

/// (r, s) of the signature made 2·SIZE bytes long (cut, or padded with zeros).
fn rs(sig: &mut Vec<u8>) -> (Int, Int) {
    sig.resize(2 * SIZE, 0);
    (sig[..SIZE].try_into().expect("r"), sig[SIZE..].try_into().expect("s"))
}

/// a + b mod 2^(8·SIZE), big-endian.
pub fn add(a: &Int, b: &Int) -> Int {
    let mut out = [0u8; SIZE];
    let mut carry = 0u16;
    for i in (0..SIZE).rev() {
        let sum = u16::from(a[i]) + u16::from(b[i]) + carry;
        out[i] = sum as u8;
        carry = sum >> 8;
    }
    out
}

/// a - b mod 2^(8·SIZE), big-endian.
pub fn sub(a: &Int, b: &Int) -> Int {
    let mut out = [0u8; SIZE];
    let mut borrow = 0i16;
    for i in (0..SIZE).rev() {
        let d = i16::from(a[i]) - i16::from(b[i]) - borrow;
        out[i] = d.rem_euclid(256) as u8;
        borrow = i16::from(d < 0);
    }
    out
}

/// a + small mod 2^(8·SIZE).
fn add_small(a: &Int, small: i8) -> Int {
    let mut b = if small < 0 { [0xff; SIZE] } else { [0; SIZE] };
    b[SIZE - 1] = small as u8;
    add(a, &b)
}

/// Scalars for `Op::Nonce` and `Op::Craft`: `VALUES[a]` mod n for a < 16, a - 15 (1..=120) for
/// a < 136, and n - (a - 135) (-1..=-120) above.
pub fn scalar(a: u8) -> Scalar {
    match a {
        0..=15 => <Scalar as Reduce<Uint>>::reduce_bytes(&field_bytes(&value(a))),
        16..=135 => Scalar::from(u64::from(a) - 15),
        _ => -Scalar::from(u64::from(a) - 135),
    }
}

fn field_bytes(bytes: &Int) -> FieldBytes {
    let mut out = FieldBytes::default();
    out.copy_from_slice(bytes);
    out
}

fn scalar_bytes(s: &Scalar) -> Int {
    s.to_bytes()[..].try_into().expect("size")
}

/// x(R) mod n, or None for the point at infinity.
fn r_of(point: ProjectivePoint) -> Option<Scalar> {
    if point == ProjectivePoint::IDENTITY {
        return None;
    }
    Some(<Scalar as Reduce<Uint>>::reduce_bytes(&point.to_affine().x()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs the input (see the module comment): the key and signature verdicts of ours and the
/// curve's crate must be equal.
pub fn run(data: &[u8]) {
    FIXED_KEYS.with(|keys| assert_eq!(keys.len(), KEYS)); // builds the keys on the first call
    let _ = verdict(data);
}

/// Splits `n` bytes off the front.
fn take<'a>(data: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    let (head, tail) = data.split_at_checked(n)?;
    *data = tail;
    Some(head)
}

/// Our verdict (a refused key: false) on what the input describes, after checking it against the
/// curve's crate's (`None`: the input describes no signature).
pub fn verdict(data: &[u8]) -> Option<bool> {
    let mut rest = data;
    let flags = *take(&mut rest, 1)?.first()?;
    let key_index = usize::from(flags & 7);
    let raw_key = key_index >= usize::from(RAW_KEY);
    let signer_index = if raw_key { 0 } else { key_index };
    FIXED_KEYS.with(|keys| {
        let signer = &keys[signer_index];
        let (mut x, mut y) = (signer.x, signer.y);
        if raw_key {
            let raw = take(&mut rest, 2 * SIZE)?;
            x.copy_from_slice(&raw[..SIZE]);
            y.copy_from_slice(&raw[SIZE..]);
        }
        let mut message: Option<Vec<u8>> = None;
        let mut digest = [0u8; SIZE];
        if flags & PREHASH != 0 {
            digest.copy_from_slice(take(&mut rest, SIZE)?);
        } else {
            let len = usize::from(*take(&mut rest, 1)?.first()?);
            let available = rest.len();
            let body = take(&mut rest, len.min(available))?;
            digest.copy_from_slice(&Hash::digest(body));
            message = Some(body.to_vec());
        }
        let sign = |key: &FixedKey, message: &Option<Vec<u8>>, digest: &Int| -> Vec<u8> {
            let sig: Signature = match message {
                Some(m) => key.signing.sign(m),
                None => key.signing.sign_prehash(digest).expect("sign_prehash"),
            };
            sig.to_bytes().to_vec()
        };
        let mut sig = sign(signer, &message, &digest);
        let ops: Vec<&[u8]> = rest.chunks_exact(3).take(MAX_OPS).collect();
        for op in &ops {
            let (code, a, b) = (op[0], op[1], op[2]);
            let op = OPS[usize::from(code % 16)];
            match op {
                Op::Flip if !sig.is_empty() => {
                    let bit = usize::from(u16::from_be_bytes([a, b])) % (8 * sig.len());
                    sig[bit / 8] ^= 0x80 >> (bit % 8);
                }
                Op::Xor if !sig.is_empty() => {
                    let at = usize::from(a) % sig.len();
                    sig[at] ^= b;
                }
                Op::Flip | Op::Xor => {}
                Op::SetR => {
                    let (_, s) = rs(&mut sig);
                    sig = [value(a), s].concat();
                }
                Op::SetS => {
                    let (r, _) = rs(&mut sig);
                    sig = [r, value(a)].concat();
                }
                Op::AddN => {
                    let (r, s) = rs(&mut sig);
                    let n = value(N as u8);
                    sig = if a & 1 == 0 { [add(&r, &n), s] } else { [r, add(&s, &n)] }.concat();
                }
                Op::Negate => {
                    let (r, s) = rs(&mut sig);
                    let n = value(N as u8);
                    sig = if a & 1 == 0 { [r, sub(&n, &s)] } else { [sub(&n, &r), s] }.concat();
                }
                Op::Nudge => {
                    let (r, s) = rs(&mut sig);
                    let by = b as i8;
                    sig = if a & 1 == 0 { [add_small(&r, by), s] } else { [r, add_small(&s, by)] }.concat();
                }
                Op::Swap => {
                    let (r, s) = rs(&mut sig);
                    sig = [s, r].concat();
                }
                Op::Truncate => sig.truncate(usize::from(a) % (2 * SIZE + 1)),
                Op::Extend => sig.extend(std::iter::repeat_n(b, usize::from(a % 8) + 1)),
                Op::Resign => sig = sign(&keys[usize::from(a) % KEYS], &message, &digest),
                Op::Nonce => {
                    let k = scalar(a);
                    let e = <Scalar as Reduce<Uint>>::reduce_bytes(&field_bytes(&digest));
                    sig = match (r_of(ProjectivePoint::GENERATOR * k), Option::<Scalar>::from(k.invert())) {
                        (Some(r), Some(k_inv)) => {
                            let s = k_inv * (e + r * signer.d);
                            [scalar_bytes(&r), scalar_bytes(&s)].concat()
                        }
                        _ => vec![0; 2 * SIZE],
                    };
                }
                Op::Craft => {
                    let (u1, u2) = (scalar(a), scalar(b));
                    let point = ProjectivePoint::GENERATOR * (u1 + u2 * signer.d);
                    let r = r_of(point).unwrap_or(Scalar::ONE);
                    let s = Option::<Scalar>::from(u2.invert()).map_or(Scalar::ZERO, |inv| r * inv);
                    digest = scalar_bytes(&(u1 * s));
                    message = None;
                    sig = [scalar_bytes(&r), scalar_bytes(&s)].concat();
                }
                Op::KeySet => {
                    if b & 1 == 0 {
                        x = value(a);
                    } else {
                        y = value(a);
                    }
                }
                Op::KeyMap => {
                    let p = value(P as u8);
                    match a % 4 {
                        0 => y = sub(&p, &y),
                        1 => x = add(&x, &p),
                        2 => y = add(&y, &p),
                        _ => std::mem::swap(&mut x, &mut y),
                    }
                }
                Op::KeyFlip => {
                    let bit = usize::from(u16::from_be_bytes([a, b])) % (16 * SIZE);
                    let coordinate = if bit < 8 * SIZE { &mut x } else { &mut y };
                    coordinate[(bit % (8 * SIZE)) / 8] ^= 0x80 >> (bit % 8);
                }
            }
        }

        let describe = || {
            format!(
                "key x {} y {}, {}, signature {}",
                hex(&x),
                hex(&y),
                match &message {
                    Some(m) => format!("message {}", hex(m)),
                    None => format!("digest {}", hex(&digest)),
                },
                hex(&sig)
            )
        };
        // The key: the fixed key's own objects when the coordinates are its own (ours keeps its
        // tables between inputs, as in production), else both parse the coordinates.
        let fixed = (!raw_key && x == signer.x && y == signer.y).then_some(signer);
        let built_ours;
        let built_theirs;
        let (ours_key, theirs_key) = match fixed {
            Some(key) => (Some(&key.ours), Some(&key.theirs)),
            None => {
                built_ours = Ours::new(&x, &y);
                built_theirs = VerifyingKey::from_sec1_bytes(&[&[4u8][..], &x, &y].concat()).ok();
                (built_ours.as_ref(), built_theirs.as_ref())
            }
        };
        assert_eq!(
            ours_key.is_some(),
            theirs_key.is_some(),
            "key validation differs (ours accepts: {}): {}",
            ours_key.is_some(),
            describe()
        );
        let (Some(ours_key), Some(theirs_key)) = (ours_key, theirs_key) else {
            return Some(false);
        };
        let theirs_sig = Signature::from_slice(&sig).ok();
        let (ours, theirs) = match &message {
            Some(m) => {
                let ours = ours_key.verify(m, &sig);
                let prehashed = ours_key.verify_prehash(&Hash::digest(m)[..].try_into().expect("size"), &sig);
                assert_eq!(ours, prehashed, "verify and verify_prehash of the hash differ: {}", describe());
                (ours, theirs_sig.is_some_and(|s| theirs_key.verify(m, &s).is_ok()))
            }
            None => (
                ours_key.verify_prehash(&digest, &sig),
                theirs_sig.is_some_and(|s| theirs_key.verify_prehash(&digest, &s).is_ok()),
            ),
        };
        assert_eq!(ours, theirs, "verdicts differ (ours: {ours}, {CURVE}: {theirs}): {}", describe());
        if ops.is_empty() && !raw_key {
            assert!(ours, "the valid signature was refused: {}", describe());
        }
        Some(ours)
    })
}
