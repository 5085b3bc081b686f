//! ES256: `gateway_filter::crypto::p256` against the `p256` crate.

use p256 as curve;
pub type Ours = gateway_filter::crypto::p256::P256PublicKey;
pub const SIZE: usize = 32;
pub const ROUNDS: usize = 80;
pub const N: [u8; SIZE] = crate::hex("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551");
pub const P: [u8; SIZE] = crate::hex("ffffffff00000001000000000000000000000000ffffffffffffffffffffffff");

#[path = "differential.rs"]
mod differential;
