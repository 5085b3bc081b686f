//! Signature algorithms and public keys: the only module that touches cryptographic crates and
//! verifiers, so a backend can be swapped for a faster one without changing callers (RSA, P-256
//! and P-384 have been: the submodules `rsa`, `p256`, `p384`).

#![forbid(unsafe_code)]

mod ecdsa;
pub mod p256;
pub mod p384;
pub mod rsa;

use self::p256::P256PublicKey;
use self::p384::P384PublicKey;
use self::rsa::Hash;

/// JWS algorithms this filter can verify (RFC 7518 §3, RFC 8037). `none` and HMAC have no variant:
/// a value of this type can never be one of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    EdDSA,
}

/// What the `alg` string names: a usable algorithm, one never accepted, or nothing we know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlgorithmName {
    Supported(Algorithm),
    /// `none` and the HMAC family: refused whatever the configuration says.
    Forbidden,
    Unknown,
}

impl Algorithm {
    pub const ALL: [Algorithm; 9] = [
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
    ];

    pub fn parse(name: &str) -> AlgorithmName {
        match name {
            "none" | "HS256" | "HS384" | "HS512" => AlgorithmName::Forbidden,
            _ => Self::ALL
                .iter()
                .find(|a| a.name() == name)
                .map_or(AlgorithmName::Unknown, |a| AlgorithmName::Supported(*a)),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Algorithm::RS256 => "RS256",
            Algorithm::RS384 => "RS384",
            Algorithm::RS512 => "RS512",
            Algorithm::PS256 => "PS256",
            Algorithm::PS384 => "PS384",
            Algorithm::PS512 => "PS512",
            Algorithm::ES256 => "ES256",
            Algorithm::ES384 => "ES384",
            Algorithm::EdDSA => "EdDSA",
        }
    }

    /// Bit for compact sets of algorithms (see `AlgorithmSet`).
    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

/// A set of algorithms; cannot contain `none` or HMAC because `Algorithm` cannot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AlgorithmSet(u16);

impl AlgorithmSet {
    pub fn all() -> Self {
        Self::from_iter(Algorithm::ALL)
    }
    pub fn contains(self, alg: Algorithm) -> bool {
        self.0 & alg.bit() != 0
    }
}

impl FromIterator<Algorithm> for AlgorithmSet {
    fn from_iter<I: IntoIterator<Item = Algorithm>>(iter: I) -> Self {
        AlgorithmSet(iter.into_iter().fold(0, |acc, a| acc | a.bit()))
    }
}

/// RSA moduli below this are refused: 2048 bits is the floor of NIST SP 800-131A and of every major IdP.
pub const RSA_MIN_BITS: usize = 2048;
/// Larger moduli make verification a denial-of-service lever and no identity provider uses them.
pub const RSA_MAX_BITS: usize = 4096;

#[derive(Clone, Debug)]
pub enum PublicKey {
    Rsa(rsa::RsaPublicKey),
    P256(P256PublicKey),
    P384(P384PublicKey),
    Ed25519(ed25519_compact::PublicKey),
}

#[derive(Debug, PartialEq, Eq)]
pub enum KeyError {
    RsaTooSmall(usize),
    RsaTooLarge(usize),
    RsaExponent,
    RsaEvenModulus,
    InvalidPoint,
}

impl std::fmt::Display for KeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyError::RsaTooSmall(bits) => {
                write!(f, "RSA modulus of {bits} bits is under {RSA_MIN_BITS}")
            }
            KeyError::RsaTooLarge(bits) => {
                write!(f, "RSA modulus of {bits} bits is over {RSA_MAX_BITS}")
            }
            KeyError::RsaExponent => f.write_str("RSA exponent is not an odd number from 3 to 2^32-1"),
            KeyError::RsaEvenModulus => f.write_str("RSA modulus is even"),
            KeyError::InvalidPoint => f.write_str("public key is not a valid curve point"),
        }
    }
}

impl PublicKey {
    /// RSA key from big-endian modulus and exponent (JWK `n`, `e`).
    pub fn rsa(n: &[u8], e: &[u8]) -> Result<Self, KeyError> {
        let n = strip_leading_zeros(n);
        let bits = n.first().map_or(0, |top| n.len() * 8 - top.leading_zeros() as usize);
        if bits < RSA_MIN_BITS {
            return Err(KeyError::RsaTooSmall(bits));
        }
        if bits > RSA_MAX_BITS {
            return Err(KeyError::RsaTooLarge(bits));
        }
        if n.last().is_some_and(|low| low & 1 == 0) {
            return Err(KeyError::RsaEvenModulus);
        }
        rsa::RsaPublicKey::new(n, e).map(PublicKey::Rsa).ok_or(KeyError::RsaExponent)
    }

    /// EC key from the JWK's `x` and `y` coordinates on P-256 or P-384 (`crv`): each exactly the
    /// curve's size, below p, and the point on the curve.
    pub fn ec(curve: Curve, x: &[u8], y: &[u8]) -> Result<Self, KeyError> {
        match curve {
            Curve::P256 => P256PublicKey::new(x, y).map(PublicKey::P256),
            Curve::P384 => P384PublicKey::new(x, y).map(PublicKey::P384),
        }
        .ok_or(KeyError::InvalidPoint)
    }

    pub fn ed25519(x: &[u8]) -> Result<Self, KeyError> {
        ed25519_compact::PublicKey::from_slice(x).map(PublicKey::Ed25519).map_err(|_| KeyError::InvalidPoint)
    }

    /// Whether this key can verify `alg` (RFC 7518: RSA for RS*/PS*, the matching curve for ES*).
    pub fn fits(&self, alg: Algorithm) -> bool {
        use Algorithm::*;
        matches!(
            (self, alg),
            (PublicKey::Rsa(_), RS256 | RS384 | RS512 | PS256 | PS384 | PS512)
                | (PublicKey::P256(_), ES256)
                | (PublicKey::P384(_), ES384)
                | (PublicKey::Ed25519(_), EdDSA)
        )
    }

    /// Verifies a JWS signature over `message`. ECDSA signatures are the fixed-size `r || s` of
    /// RFC 7518 §3.4; DER-encoded ones are refused.
    pub fn verify(&self, alg: Algorithm, message: &[u8], signature: &[u8]) -> bool {
        if !self.fits(alg) {
            return false;
        }
        match self {
            PublicKey::Rsa(key) => verify_rsa(key, alg, message, signature),
            PublicKey::P256(key) => key.verify(message, signature),
            PublicKey::P384(key) => key.verify(message, signature),
            PublicKey::Ed25519(key) => ed25519_compact::Signature::from_slice(signature)
                .is_ok_and(|sig| key.verify(message, &sig).is_ok()),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Curve {
    P256,
    P384,
}

fn verify_rsa(key: &rsa::RsaPublicKey, alg: Algorithm, message: &[u8], signature: &[u8]) -> bool {
    use Algorithm::*;
    match alg {
        RS256 => key.verify_pkcs1v15(Hash::Sha256, message, signature),
        RS384 => key.verify_pkcs1v15(Hash::Sha384, message, signature),
        RS512 => key.verify_pkcs1v15(Hash::Sha512, message, signature),
        // RFC 7518 §3.5: MGF1 with the same hash, salt as long as the hash output.
        PS256 => key.verify_pss(Hash::Sha256, message, signature),
        PS384 => key.verify_pss(Hash::Sha384, message, signature),
        PS512 => key.verify_pss(Hash::Sha512, message, signature),
        ES256 | ES384 | EdDSA => false,
    }
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let zeros = bytes.iter().take_while(|b| **b == 0).count();
    bytes.get(zeros..).unwrap_or(&[])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forbidden_and_unknown_names() {
        assert_eq!(Algorithm::parse("none"), AlgorithmName::Forbidden);
        assert_eq!(Algorithm::parse("HS256"), AlgorithmName::Forbidden);
        assert_eq!(Algorithm::parse("HS512"), AlgorithmName::Forbidden);
        assert_eq!(Algorithm::parse("rs256"), AlgorithmName::Unknown);
        assert_eq!(Algorithm::parse("ES512"), AlgorithmName::Unknown);
        for alg in Algorithm::ALL {
            assert_eq!(Algorithm::parse(alg.name()), AlgorithmName::Supported(alg));
        }
    }

    #[test]
    fn algorithm_set() {
        let set: AlgorithmSet = [Algorithm::RS256, Algorithm::EdDSA].into_iter().collect();
        assert!(set.contains(Algorithm::RS256));
        assert!(set.contains(Algorithm::EdDSA));
        assert!(!set.contains(Algorithm::PS256));
        assert!(Algorithm::ALL.iter().all(|a| AlgorithmSet::all().contains(*a)));
    }

    #[test]
    fn rsa_key_limits() {
        let mut small = vec![0xffu8; 128];
        small[127] |= 1;
        assert_eq!(PublicKey::rsa(&small, &[1, 0, 1]).err(), Some(KeyError::RsaTooSmall(1024)));
        let big = vec![0xffu8; 1024];
        assert_eq!(PublicKey::rsa(&big, &[1, 0, 1]).err(), Some(KeyError::RsaTooLarge(8192)));
        let n = vec![0xffu8; 256];
        assert_eq!(PublicKey::rsa(&n, &[1]).err(), Some(KeyError::RsaExponent));
        assert_eq!(PublicKey::rsa(&n, &[1, 0, 0]).err(), Some(KeyError::RsaExponent));
        assert!(PublicKey::rsa(&n, &[1, 0, 1]).is_ok());
    }

    #[test]
    fn ec_point_must_be_on_curve() {
        assert_eq!(PublicKey::ec(Curve::P256, &[1; 32], &[2; 32]).err(), Some(KeyError::InvalidPoint));
        assert_eq!(PublicKey::ec(Curve::P256, &[1; 31], &[2; 32]).err(), Some(KeyError::InvalidPoint));
        assert_eq!(PublicKey::ec(Curve::P256, &[1; 32], &[2; 33]).err(), Some(KeyError::InvalidPoint));
        // Coordinates at or above p.
        assert_eq!(PublicKey::ec(Curve::P256, &[0xff; 32], &[2; 32]).err(), Some(KeyError::InvalidPoint));
        assert_eq!(PublicKey::ec(Curve::P384, &[0xff; 48], &[2; 48]).err(), Some(KeyError::InvalidPoint));
        assert_eq!(PublicKey::ec(Curve::P384, &[1; 32], &[2; 32]).err(), Some(KeyError::InvalidPoint));
        assert_eq!(PublicKey::ed25519(&[0; 31]).err(), Some(KeyError::InvalidPoint));
    }
}
