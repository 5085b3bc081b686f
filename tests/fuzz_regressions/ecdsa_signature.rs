//! Our ECDSA verifier against the curve's crate, through the harness of the target the including
//! module names (`h`, `TARGET`, `BATCH`: inputs in the generated batch): every seed and saved
//! input, a batch of inputs from a fixed-seed generator through the same operations, and corner
//! inputs with their exact verdicts. See `harness/ecdsa_signature.rs` for the input layout.

use rand::{Rng, SeedableRng};

use super::h::{fixed_keys, hex_value, run, scalar, verdict, Op, KEYS, OPS, PREHASH, RAW_KEY, SIZE, VALUES};
use super::{BATCH, TARGET};
use crate::corpus::replay;

#[test]
fn seeds_and_saved_inputs() {
    replay(TARGET, run);
}

const MESSAGE: &[u8] = b"eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJmdXp6In0";
const DIGEST: [u8; SIZE] = [0x5a; SIZE];

fn op(op: Op, a: u8, b: u8) -> [u8; 3] {
    [u8::try_from(OPS.iter().position(|o| *o == op).unwrap()).unwrap(), a, b]
}

fn msg(key: u8, ops: &[[u8; 3]]) -> Vec<u8> {
    [&[key, u8::try_from(MESSAGE.len()).unwrap()][..], MESSAGE, &ops.concat()].concat()
}

fn prehash(key: u8, ops: &[[u8; 3]]) -> Vec<u8> {
    [&[key | PREHASH][..], &DIGEST, &ops.concat()].concat()
}

/// The index of a value in `VALUES`, by its comment's name.
fn v(name: &str) -> u8 {
    let names = [
        "0", "1", "2", "n-1", "n", "n+1", "p-1", "p", "p+1", "max", "p-n", "gx", "gy", "2^255", "(n-1)/2",
        "(n+1)/2",
    ];
    assert_eq!(names.len(), VALUES.len());
    u8::try_from(names.iter().position(|n| *n == name).unwrap()).unwrap()
}

#[test]
fn fixed_keys_are_distinct_and_special() {
    let keys = fixed_keys();
    assert_eq!(keys.len(), KEYS);
    let g = hex_value(VALUES[usize::from(v("gx"))]);
    assert_eq!(keys[3].x, g, "key 3 is G");
    assert_eq!(keys[4].x, g, "key 4 is -G");
    assert_ne!(keys[3].y, keys[4].y);
    for (i, a) in keys.iter().enumerate() {
        for b in &keys[i + 1..] {
            assert!(a.x != b.x || a.y != b.y);
        }
    }
    assert_eq!(scalar(v("n")), scalar(v("0")));
    assert_eq!(scalar(v("n+1")), scalar(16));
    assert_eq!(-scalar(16), scalar(136));
}

#[test]
fn valid_signatures_verify_with_every_key() {
    for key in 0..u8::try_from(KEYS).unwrap() {
        assert_eq!(verdict(&msg(key, &[])), Some(true), "key {key}");
        assert_eq!(verdict(&prehash(key, &[])), Some(true), "key {key} prehash");
        // Any digest, including ones at or above n (e is reduced mod n).
        for digest in [[0u8; SIZE], [0xff; SIZE], hex_value(VALUES[4])] {
            let input = [&[key | PREHASH][..], &digest].concat();
            assert_eq!(verdict(&input), Some(true), "key {key} digest {digest:02x?}");
        }
    }
    // High s is accepted (JWS has no low-s rule), and so is the other key's valid signature by it.
    assert_eq!(verdict(&msg(0, &[op(Op::Negate, 0, 0)])), Some(true));
    assert_eq!(verdict(&msg(0, &[op(Op::Resign, 0, 0)])), Some(true));
    // The raw key that is key 0's point.
    let keys = fixed_keys();
    let raw = [&[RAW_KEY][..], &keys[0].x, &keys[0].y, &[0]].concat();
    assert_eq!(verdict(&raw), Some(true));
}

#[test]
fn crafted_exceptional_cases() {
    let (g, minus_g, two_g) = (3, 4, 5);
    // Valid signatures where the verifier adds P + P (u1·G + u2·G with u1 = u2) or small multiples.
    for (key, u1, u2) in [
        (g, v("1"), v("1")),
        (g, 17, 17),
        (g, v("(n-1)/2"), v("(n-1)/2")),
        (g, v("0"), v("1")),
        (minus_g, v("2"), v("1")),
        (two_g, v("2"), v("1")),
        (two_g, v("n-1"), v("1")),
        (0, v("0"), v("2")),
        (0, 200, 100),
    ] {
        assert_eq!(verdict(&prehash(key, &[op(Op::Craft, u1, u2)])), Some(true), "{key} {u1} {u2}");
    }
    // R at infinity: u1·G + u2·Q = O (P + -P), refused; u2 = 0 means s = 0, refused.
    for (key, u1, u2) in [
        (minus_g, v("1"), v("1")),
        (minus_g, 30, 30),
        (g, v("n-1"), v("1")),
        (two_g, 137, v("1")),
        (0, v("1"), v("0")),
    ] {
        assert_eq!(verdict(&prehash(key, &[op(Op::Craft, u1, u2)])), Some(false), "{key} {u1} {u2}");
    }
    // Chosen nonces: k = 1 (R = G) and k = n - 1 (R = -G) sign validly; k = 0 gives r = s = 0.
    assert_eq!(verdict(&msg(0, &[op(Op::Nonce, v("1"), 0)])), Some(true));
    assert_eq!(verdict(&prehash(g, &[op(Op::Nonce, v("n-1"), 0)])), Some(true));
    assert_eq!(verdict(&msg(1, &[op(Op::Nonce, v("0"), 0)])), Some(false));
}

#[test]
fn broken_signatures_and_keys_are_refused() {
    let mut inputs = vec![
        msg(0, &[op(Op::Flip, 0, 0)]),
        msg(0, &[op(Op::Flip, 1, 255)]),
        msg(1, &[op(Op::Xor, 40, 1)]),
        msg(0, &[op(Op::AddN, 0, 0)]),
        msg(0, &[op(Op::AddN, 1, 0)]),
        msg(0, &[op(Op::Negate, 1, 0)]),
        msg(0, &[op(Op::Nudge, 0, 1)]),
        msg(0, &[op(Op::Nudge, 1, 0xff)]),
        msg(0, &[op(Op::Swap, 0, 0)]),
        msg(0, &[op(Op::Truncate, (2 * SIZE - 1) as u8, 0)]),
        msg(0, &[op(Op::Truncate, 0, 0)]),
        msg(0, &[op(Op::Extend, 0, 0)]),
        msg(0, &[op(Op::Resign, 1, 0)]),
        msg(0, &[op(Op::KeyMap, 0, 0)]), // -Q: a valid key, not the signer
        msg(0, &[op(Op::KeyMap, 1, 0)]),
        msg(0, &[op(Op::KeyMap, 2, 0)]),
        msg(0, &[op(Op::KeyMap, 3, 0)]),
        msg(0, &[op(Op::KeyFlip, 0, 7)]),
        msg(0, &[op(Op::KeySet, v("gx"), 0), op(Op::KeySet, v("gy"), 1)]), // G: valid, not the signer
        [&[RAW_KEY][..], &[0; 2 * SIZE], &[0]].concat(),
        [&[RAW_KEY + 1][..], &[0xff; 2 * SIZE], &[0]].concat(),
    ];
    for name in ["0", "1", "n-1", "n", "n+1", "p-1", "p", "max", "p-n", "2^255"] {
        inputs.push(msg(0, &[op(Op::SetR, v(name), 0)]));
        inputs.push(msg(0, &[op(Op::SetS, v(name), 0)]));
        inputs.push(msg(0, &[op(Op::KeySet, v(name), 0)]));
        inputs.push(msg(0, &[op(Op::KeySet, v(name), 1)]));
    }
    for input in inputs {
        // The harness also asserts agreement with the p256 crate.
        assert_eq!(verdict(&input), Some(false), "{input:02x?}");
    }
    // Too short for the raw key or the digest.
    assert_eq!(verdict(&[RAW_KEY, 0]), None);
    assert_eq!(verdict(&[PREHASH, 0]), None);
    assert_eq!(verdict(&[]), None);
}

/// Inputs of the harness's layout from a fixed-seed generator: every operation, mostly near the
/// valid signature, some raw keys and digests.
#[test]
fn generated_batch_agrees_with_the_curves_crate() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x7032_3536_7369_6721);
    let keys = fixed_keys();
    let (mut accepted, mut refused) = (0, 0);
    for _ in 0..BATCH {
        let flags: u8 = rng.gen_range(0..16);
        let mut input = vec![flags];
        if flags & 7 >= RAW_KEY {
            match rng.gen_range(0..3) {
                0 => input.extend((0..2 * SIZE).map(|_| rng.gen::<u8>())),
                _ => {
                    let key = &keys[rng.gen_range(0..KEYS)];
                    input.extend_from_slice(&key.x);
                    input.extend_from_slice(&key.y);
                }
            }
        }
        if flags & PREHASH != 0 {
            input.extend((0..SIZE).map(|_| rng.gen::<u8>()));
        } else {
            let len = rng.gen_range(0..48u8);
            input.push(len);
            input.extend((0..len).map(|_| rng.gen::<u8>()));
        }
        for _ in 0..rng.gen_range(0..4) {
            input.extend([rng.gen::<u8>() % 16, rng.gen(), rng.gen()]);
        }
        match verdict(&input) {
            Some(true) => accepted += 1,
            Some(false) => refused += 1,
            None => panic!("no signature: {input:02x?}"),
        }
    }
    assert!(accepted > BATCH / 5 && refused > BATCH / 5, "accepted {accepted}, refused {refused}");
}
