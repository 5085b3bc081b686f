//! ES384: `gateway_filter::crypto::p384` against the `p384` crate.

use p384 as curve;
pub type Ours = gateway_filter::crypto::p384::P384PublicKey;
pub const SIZE: usize = 48;
/// Fewer than for P-256: each verification costs ~4 times as much in the unoptimised test build.
pub const ROUNDS: usize = 16;
pub const N: [u8; SIZE] = crate::hex(concat!(
    "ffffffffffffffffffffffffffffffffffffffffffffffff",
    "c7634d81f4372ddf581a0db248b0a77aecec196accc52973"
));
pub const P: [u8; SIZE] = crate::hex(concat!(
    "ffffffffffffffffffffffffffffffffffffffffffffffff",
    "fffffffffffffffeffffffff0000000000000000ffffffff"
));

#[path = "differential.rs"]
mod differential;
