//! Tests of `gateway_filter::crypto::rsa` against the `rsa` crate (differential), the Wycheproof
//! vectors and the RFC 7515 / RFC 7520 JWS examples.
//!
//! The keys under `keys/` are test-only keys made for these tests (OpenSSL, and the `rsa` crate for
//! the odd sizes OpenSSL rounds); they are fixed files because generating 3072- and 4096-bit keys
//! at test time would take seconds.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod differential;
mod known_answer;
mod wycheproof_vectors;

use gateway_filter::crypto::rsa::{Hash, RsaPublicKey};
use rsa::pkcs8::DecodePrivateKey;
use rsa::traits::{PrivateKeyParts, PublicKeyParts};
use rsa::{BigUint, Pkcs1v15Sign, Pss, RsaPrivateKey};
use sha2::{Digest, Sha256, Sha384, Sha512};

pub const HASHES: [Hash; 3] = [Hash::Sha256, Hash::Sha384, Hash::Sha512];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    Pkcs1,
    Pss,
}

/// (file name, PEM) of every test key.
pub const KEYS: [(&str, &str); 10] = [
    ("rsa2048_e65537", include_str!("keys/rsa2048_e65537.pem")),
    ("rsa2048_e3", include_str!("keys/rsa2048_e3.pem")),
    ("rsa3072_e65537", include_str!("keys/rsa3072_e65537.pem")),
    ("rsa3072_e3", include_str!("keys/rsa3072_e3.pem")),
    ("rsa4096_e65537", include_str!("keys/rsa4096_e65537.pem")),
    ("rsa4096_e3", include_str!("keys/rsa4096_e3.pem")),
    // modBits - 1 a multiple of 8: the PSS encoding is one byte shorter than the modulus.
    ("rsa2049_e65537", include_str!("keys/rsa2049_e65537.pem")),
    ("rsa3073_e65537", include_str!("keys/rsa3073_e65537.pem")),
    // Other bit lengths not multiple of 8: the top bits of the PSS encoding must be masked.
    ("rsa2052_e65537", include_str!("keys/rsa2052_e65537.pem")),
    ("rsa2056_e65537", include_str!("keys/rsa2056_e65537.pem")),
];

pub fn private_key(pem: &str) -> RsaPrivateKey {
    RsaPrivateKey::from_pkcs8_pem(pem).expect("test key")
}

pub fn ours(key: &rsa::RsaPublicKey) -> RsaPublicKey {
    let ours = RsaPublicKey::new(&key.n().to_bytes_be(), &key.e().to_bytes_be()).expect("key");
    assert_eq!(ours.bits(), key.n().bits());
    assert_eq!(ours.size(), key.size());
    ours
}

pub fn verify_ours(key: &RsaPublicKey, scheme: Scheme, hash: Hash, msg: &[u8], sig: &[u8]) -> bool {
    match scheme {
        Scheme::Pkcs1 => key.verify_pkcs1v15(hash, msg, sig),
        Scheme::Pss => key.verify_pss(hash, msg, sig),
    }
}

/// The `rsa` 0.9 verification exactly as `src/crypto.rs` calls it today (length check included).
pub fn verify_theirs(key: &rsa::RsaPublicKey, scheme: Scheme, hash: Hash, msg: &[u8], sig: &[u8]) -> bool {
    if sig.len() != key.size() {
        return false;
    }
    let result = match (scheme, hash) {
        (Scheme::Pkcs1, Hash::Sha256) => key.verify(Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(msg), sig),
        (Scheme::Pkcs1, Hash::Sha384) => key.verify(Pkcs1v15Sign::new::<Sha384>(), &Sha384::digest(msg), sig),
        (Scheme::Pkcs1, Hash::Sha512) => key.verify(Pkcs1v15Sign::new::<Sha512>(), &Sha512::digest(msg), sig),
        (Scheme::Pss, Hash::Sha256) => key.verify(Pss::new::<Sha256>(), &Sha256::digest(msg), sig),
        (Scheme::Pss, Hash::Sha384) => key.verify(Pss::new::<Sha384>(), &Sha384::digest(msg), sig),
        (Scheme::Pss, Hash::Sha512) => key.verify(Pss::new::<Sha512>(), &Sha512::digest(msg), sig),
    };
    result.is_ok()
}

/// A signature made by the `rsa` crate's signing keys (PSS: salt length = hash length).
pub fn sign<R: rand::CryptoRng + rand::RngCore>(
    key: &RsaPrivateKey,
    scheme: Scheme,
    hash: Hash,
    msg: &[u8],
    rng: &mut R,
) -> Vec<u8> {
    use rsa::signature::{RandomizedSigner, SignatureEncoding, Signer};
    let key = key.clone();
    match (scheme, hash) {
        (Scheme::Pkcs1, Hash::Sha256) => rsa::pkcs1v15::SigningKey::<Sha256>::new(key).sign(msg).to_vec(),
        (Scheme::Pkcs1, Hash::Sha384) => rsa::pkcs1v15::SigningKey::<Sha384>::new(key).sign(msg).to_vec(),
        (Scheme::Pkcs1, Hash::Sha512) => rsa::pkcs1v15::SigningKey::<Sha512>::new(key).sign(msg).to_vec(),
        (Scheme::Pss, Hash::Sha256) => {
            rsa::pss::BlindedSigningKey::<Sha256>::new(key).sign_with_rng(rng, msg).to_vec()
        }
        (Scheme::Pss, Hash::Sha384) => {
            rsa::pss::BlindedSigningKey::<Sha384>::new(key).sign_with_rng(rng, msg).to_vec()
        }
        (Scheme::Pss, Hash::Sha512) => {
            rsa::pss::BlindedSigningKey::<Sha512>::new(key).sign_with_rng(rng, msg).to_vec()
        }
    }
}

/// Raw RSA with the private key (CRT): the signature whose public operation gives `em`, for
/// crafting signatures of chosen, malformed encodings. `em` must be below n.
pub fn raw_sign(key: &RsaPrivateKey, em: &[u8]) -> Vec<u8> {
    let c = BigUint::from_bytes_be(em);
    assert!(&c < key.n(), "encoding not below n");
    let (p, q) = (&key.primes()[0], &key.primes()[1]);
    let m1 = c.modpow(key.dp().expect("precomputed"), p);
    let m2 = c.modpow(key.dq().expect("precomputed"), q);
    let q_inv = key.crt_coefficient().expect("precomputed");
    let h = (&q_inv * ((&m1 + p) - (&m2 % p))) % p;
    let s = m2 + h * q;
    left_pad(&s.to_bytes_be(), key.size())
}

/// The public operation with the `rsa` crate's integers: the encoded message in `sig`.
pub fn raw_open(key: &RsaPrivateKey, sig: &[u8]) -> Vec<u8> {
    let m = BigUint::from_bytes_be(sig).modpow(key.e(), key.n());
    left_pad(&m.to_bytes_be(), key.size())
}

pub fn left_pad(bytes: &[u8], len: usize) -> Vec<u8> {
    assert!(bytes.len() <= len);
    let mut out = vec![0u8; len - bytes.len()];
    out.extend_from_slice(bytes);
    out
}

pub fn hash_len(hash: Hash) -> usize {
    match hash {
        Hash::Sha256 => 32,
        Hash::Sha384 => 48,
        Hash::Sha512 => 64,
    }
}
