//! p384_signature: `crypto::p384` against the `p384` crate; the harness is `ecdsa_signature.rs`.

pub use p384 as curve;
pub use p384::U384 as Uint;
pub use sha2::Sha384 as Hash;
pub type Ours = gateway_filter::crypto::p384::P384PublicKey;
pub const CURVE: &str = "p384";
pub const SIZE: usize = 48;

/// Big-endian 384-bit values the operations set r, s, x or y to (`Op::SetR`, `SetS`, `KeySet`).
pub const VALUES: [&str; 16] = [
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000", // 0
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000001", // 1
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000002", // 2
    "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52972", // n - 1
    "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973", // n
    "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52974", // n + 1
    "fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffeffffffff0000000000000000fffffffe", // p - 1
    "fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffeffffffff0000000000000000ffffffff", // p
    "fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffeffffffff000000000000000100000000", // p + 1
    "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff", // 2^384 - 1
    "000000000000000000000000000000000000000000000000389cb27e0bc8d21fa7e5f24cb74f58851313e696333ad68c", // p - n
    "aa87ca22be8b05378eb1c71ef320ad746e1d3b628ba79b9859f741e082542a385502f25dbf55296c3a545e3872760ab7", // Gx
    "3617de4a96262c6f5d9e98bf9292dc29f8f41dbd289a147ce9da3113b5f0b8c00a60b1ce1d7e819d7a431d7c90ea0e5f", // Gy
    "800000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000", // 2^383
    "7fffffffffffffffffffffffffffffffffffffffffffffffe3b1a6c0fa1b96efac0d06d9245853bd76760cb5666294b9", // (n - 1) / 2
    "7fffffffffffffffffffffffffffffffffffffffffffffffe3b1a6c0fa1b96efac0d06d9245853bd76760cb5666294ba", // (n + 1) / 2
];

#[path = "ecdsa_signature.rs"]
mod signature;
pub use signature::*;
