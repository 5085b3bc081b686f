//! The one shape nearly every streamed event has, read without the general JSON scanner.
//!
//! A Messages API answer is mostly `content_block_delta` events whose data is exactly
//! `{"type":"content_block_delta","index":N,"delta":{"type":"text_delta","text":"..."}}` (or a
//! `thinking_delta` / `input_json_delta`). Reading that shape directly costs a fraction of a full
//! scan, and metering reads every event. Anything else (another key order, whitespace, a `\u`
//! escape, a control character, bad UTF-8, a piece cut short) is `None`, and the caller scans the
//! data the general way, which decides exactly as before: this is a shortcut, never a second
//! opinion.

use crate::find_byte;

/// The decoded UTF-8 byte length of the delta's text (the usage estimate's `n`), when `data` is a
/// whole event data document of the common shape.
pub fn delta_text_len(data: &[u8]) -> Option<u64> {
    let rest = data.strip_prefix(br#"{"type":"content_block_delta","index":"#)?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || (digits > 1 && rest.first() == Some(&b'0')) {
        return None;
    }
    let rest = rest.get(digits..)?.strip_prefix(br#","delta":{"type":""#)?;
    let rest = [
        (&br#"text_delta","text":""#[..]),
        (&br#"thinking_delta","thinking":""#[..]),
        (&br#"input_json_delta","partial_json":""#[..]),
    ]
    .into_iter()
    .find_map(|field| rest.strip_prefix(field))?;
    let (content, escapes, tail) = string_content(rest)?;
    if tail != b"}}" {
        return None;
    }
    std::str::from_utf8(content).ok()?;
    // Each simple escape is two bytes that decode to one.
    Some(content.len().saturating_sub(escapes) as u64)
}

/// Splits `bytes` after a JSON string's closing quote: (content, its number of escapes, what
/// follows the quote). Only simple escapes (`\"`, `\\`, `\/`, `\b`, `\f`, `\n`, `\r`, `\t`), no control
/// characters.
fn string_content(bytes: &[u8]) -> Option<(&[u8], usize, &[u8])> {
    let (mut i, mut escapes) = (0, 0);
    loop {
        let run = find_byte::either(bytes.get(i..)?, b'"', b'\\')?;
        if bytes.get(i..i + run)?.iter().any(|b| *b < 0x20) {
            return None;
        }
        i += run;
        if bytes.get(i) == Some(&b'"') {
            return Some((bytes.get(..i)?, escapes, bytes.get(i + 1..)?));
        }
        if !matches!(bytes.get(i + 1)?, b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') {
            return None;
        }
        escapes += 1;
        i += 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delta(kind: &str, field: &str, text: &str) -> Vec<u8> {
        format!(
            r#"{{"type":"content_block_delta","index":3,"delta":{{"type":"{kind}","{field}":"{text}"}}}}"#
        )
        .into_bytes()
    }

    #[test]
    fn the_common_shape_is_read_with_its_decoded_length() {
        assert_eq!(delta_text_len(&delta("text_delta", "text", "Hello")), Some(5));
        assert_eq!(delta_text_len(&delta("thinking_delta", "thinking", "é ✓")), Some(6));
        assert_eq!(delta_text_len(&delta("input_json_delta", "partial_json", r#"{\"a\":"#)), Some(5));
        assert_eq!(delta_text_len(&delta("text_delta", "text", r"a\\\n\t\/")), Some(5));
        assert_eq!(delta_text_len(&delta("text_delta", "text", "")), Some(0));
        let big = br#"{"type":"content_block_delta","index":10,"delta":{"type":"text_delta","text":"x"}}"#;
        assert_eq!(delta_text_len(big), Some(1));
    }

    #[test]
    fn anything_else_goes_to_the_general_scanner() {
        for data in [
            delta("text_delta", "text", r"\u00e9"),
            delta("text_delta", "text", r"\x"),
            delta("text_delta", "text", "a\nb"),
            delta("signature_delta", "signature", "abc"),
            delta("text_delta", "thinking", "abc"),
            br#"{"type":"content_block_delta","index":01,"delta":{"type":"text_delta","text":"a"}}"#.to_vec(),
            br#"{"type":"content_block_delta","index":-1,"delta":{"type":"text_delta","text":"a"}}"#.to_vec(),
            br#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"a"}} "#.to_vec(),
            br#"{"type":"content_block_delta", "index":0,"delta":{"type":"text_delta","text":"a"}}"#.to_vec(),
            br#"{"index":0,"type":"content_block_delta","delta":{"type":"text_delta","text":"a"}}"#.to_vec(),
            br#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"a"}"#.to_vec(),
            br#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"a""#.to_vec(),
            br#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"a\"#.to_vec(),
            b"{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"\xff\"}}"
                .to_vec(),
        ] {
            assert_eq!(delta_text_len(&data), None, "{}", String::from_utf8_lossy(&data));
        }
    }
}
