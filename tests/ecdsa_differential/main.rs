//! Our ECDSA verifiers against the RustCrypto crates they replaced as backends (`p256` for ES256,
//! `p384` for ES384): on the same keys, messages and signatures, valid and broken, both must give
//! the same verdict. `differential.rs` holds the tests, run once per curve.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
// differential.rs is included once per curve, on purpose.
#![allow(clippy::duplicate_mod)]

mod es256;
mod es384;

/// A big-endian constant from hex digits.
const fn hex<const LEN: usize>(digits: &str) -> [u8; LEN] {
    let digits = digits.as_bytes();
    assert!(digits.len() == 2 * LEN);
    let mut out = [0u8; LEN];
    let mut i = 0;
    while i < LEN {
        out[i] = nibble(digits[2 * i]) << 4 | nibble(digits[2 * i + 1]);
        i += 1;
    }
    out
}

const fn nibble(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        _ => panic!("not a hex digit"),
    }
}
