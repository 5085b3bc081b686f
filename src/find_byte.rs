//! Finding the next of two bytes eight at a time: the SSE reader looks for each line's end, and the
//! delta shortcut for a string's end, in every event of every streamed answer.

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Whether any byte of `word` is `byte` (exact: the classic zero-byte test on `word ^ byte…`).
fn has(word: u64, byte: u8) -> bool {
    let x = word ^ (ONES * u64::from(byte));
    x.wrapping_sub(ONES) & !x & HIGHS != 0
}

/// The index of the first `a` or `b` in `bytes`.
pub fn either(bytes: &[u8], a: u8, b: u8) -> Option<usize> {
    let mut skipped = 0;
    for word in bytes.chunks_exact(8) {
        let word = <[u8; 8]>::try_from(word).map(u64::from_le_bytes).unwrap_or(0);
        if has(word, a) || has(word, b) {
            break;
        }
        skipped += 8;
    }
    let rest = bytes.get(skipped..).unwrap_or_default();
    rest.iter().position(|c| *c == a || *c == b).map(|i| skipped + i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_first_of_either_byte_at_every_position() {
        for len in 0..40 {
            for at in 0..=len {
                for (found, other) in [(b'\n', b'\r'), (b'\r', b'\n')] {
                    let mut bytes = vec![b'x'; len];
                    // Bytes one off from the targets, and high bytes, must not match.
                    for (i, slot) in bytes.iter_mut().enumerate() {
                        *slot = [b'x', b'\x0b', b'\x0c', 0x8a, 0xff, b'\x09'][i % 6];
                    }
                    if at < len {
                        bytes[at] = found;
                        if at + 3 < len {
                            bytes[at + 3] = other;
                        }
                    }
                    let expected = bytes.iter().position(|c| *c == b'\n' || *c == b'\r');
                    assert_eq!(either(&bytes, b'\n', b'\r'), expected, "len {len} at {at}");
                }
            }
        }
        assert_eq!(either(br#"abcdefghij"klmn\"#, b'"', b'\\'), Some(10));
    }
}
