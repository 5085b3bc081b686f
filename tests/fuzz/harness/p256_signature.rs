//! p256_signature: `crypto::p256` against the `p256` crate; the harness is `ecdsa_signature.rs`.

pub use p256 as curve;
pub use p256::U256 as Uint;
pub use sha2::Sha256 as Hash;
pub type Ours = gateway_filter::crypto::p256::P256PublicKey;
pub const CURVE: &str = "p256";
pub const SIZE: usize = 32;

/// Big-endian 256-bit values the operations set r, s, x or y to (`Op::SetR`, `SetS`, `KeySet`).
pub const VALUES: [&str; 16] = [
    "0000000000000000000000000000000000000000000000000000000000000000", // 0
    "0000000000000000000000000000000000000000000000000000000000000001", // 1
    "0000000000000000000000000000000000000000000000000000000000000002", // 2
    "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632550", // n - 1
    "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551", // n
    "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632552", // n + 1
    "ffffffff00000001000000000000000000000000fffffffffffffffffffffffe", // p - 1
    "ffffffff00000001000000000000000000000000ffffffffffffffffffffffff", // p
    "ffffffff00000001000000000000000000000001000000000000000000000000", // p + 1
    "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff", // 2^256 - 1
    "000000000000000000000000000000004319055358e8617b0c46353d039cdaae", // p - n
    "6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296", // Gx
    "4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5", // Gy
    "8000000000000000000000000000000000000000000000000000000000000000", // 2^255
    "7fffffff800000007fffffffffffffffde737d56d38bcf4279dce5617e3192a8", // (n - 1) / 2
    "7fffffff800000007fffffffffffffffde737d56d38bcf4279dce5617e3192a9", // (n + 1) / 2
];

#[path = "ecdsa_signature.rs"]
mod signature;
pub use signature::*;
