//! `json_scan` on every case with its exact outcome, the same in one piece, cut in two at every
//! offset and in 1-byte chunks, and equal to `serde_json` reading the whole document.

use gateway_filter::json_scan::{Found, Hit, ScanError, Scanner, Want, Watch, MAX_DEPTH};

use crate::json_scan_oracle::{
    assert_agrees, reference, scan_chunks, scan_whole, Outcome, Reference, WATCHES,
};

const MODEL: usize = 0;
const OUTPUT_TOKENS: usize = 1;
const DELTA_TEXT: usize = 2;
const INPUT_TOKENS: usize = 3;
const SHORT: usize = 4;
const USAGE: usize = 5;
const DEEP: usize = 6;

fn hit(watch: usize, found: Found) -> Hit {
    Hit { watch, found }
}

fn model(id: &str) -> Hit {
    hit(MODEL, Found::Str(id.into()))
}

fn ok(hits: Vec<Hit>) -> Outcome {
    Outcome { hits, verdict: Ok(()) }
}

fn invalid(offset: u64, reason: &'static str) -> Result<(), ScanError> {
    Err(ScanError::Invalid { offset, reason })
}

/// The exact outcome, agreement with serde_json, and the same outcome however the document is cut.
fn check(doc: impl AsRef<[u8]>, expected: Outcome) {
    let doc = doc.as_ref();
    let whole = scan_whole(WATCHES, doc);
    assert_eq!(whole, expected, "{:?}", String::from_utf8_lossy(doc));
    assert_agrees(WATCHES, doc, &whole);
    for cut in 0..=doc.len() {
        let (head, tail) = doc.split_at(cut);
        assert_eq!(
            scan_chunks(WATCHES, [head, tail]),
            whole,
            "cut at {cut}: {:?}",
            String::from_utf8_lossy(doc)
        );
    }
    assert_eq!(
        scan_chunks(WATCHES, doc.chunks(1)),
        whole,
        "1-byte chunks: {:?}",
        String::from_utf8_lossy(doc)
    );
}

#[test]
fn model_first_last_and_ignored_look_alikes() {
    check(r#"{"model":"claude-opus-4","max_tokens":5,"messages":[]}"#, ok(vec![model("claude-opus-4")]));
    check(
        r#"{"messages":[{"role":"user","content":"say \"model\":\"x\" {\"model\":\"y\"}"},{"model":"nested"}],
           "metadata":{"model":"n2","user_id":"u"},"tools":[{"input_schema":{"model":{"type":"string"}}}],
           "model" : "claude-haiku" }"#,
        ok(vec![model("claude-haiku")]),
    );
    check(r#"{"models":"a","Model":"b","model ":"c","mode":"d"}"#, ok(vec![]));
    check(r#"{"messages":[]}"#, ok(vec![]));
    check(r#"[{"model":"x"}]"#, ok(vec![]));
    check(r#""model""#, ok(vec![]));
    check("  {\n\t\"model\" :\r\n \"a\" }\n ", ok(vec![model("a")]));
}

#[test]
fn escapes_are_decoded_in_keys_and_values() {
    check(r#"{"mod\u0065l":"claude"}"#, ok(vec![model("claude")]));
    check(
        r#"{"\u006D\u006f\u0064\u0065\u006c":"\u0063laude\/x\"\\\b\f\n\r\t"}"#,
        ok(vec![model("claude/x\"\\\u{8}\u{c}\n\r\t")]),
    );
    check(r#"{"model":"\ud83d\ude00 \u00e9 \u20ac"}"#, ok(vec![model("\u{1f600} \u{e9} \u{20ac}")]));
    check("{\"model\":\"\u{e9}\u{20ac}\u{1f600}\"}", ok(vec![model("\u{e9}\u{20ac}\u{1f600}")]));
    check(r#"{"a":{"\u00e9":{"\ud83d\ude00":"deep"}}}"#, ok(vec![hit(DEEP, Found::Str("deep".into()))]));
    check("{\"a\":{\"\u{e9}\":{\"\u{1f600}\":\"deep\"}}}", ok(vec![hit(DEEP, Found::Str("deep".into()))]));
    check(r#"{"model":"\u0000"}"#, ok(vec![model("\0")]));
}

#[test]
fn duplicate_keys_on_watched_paths() {
    let dup = |offset, watch, hits| Outcome { hits, verdict: Err(ScanError::DuplicateKey { offset, watch }) };
    check(r#"{"model":"a","model":"b"}"#, dup(13, MODEL, vec![model("a")]));
    check(r#"{"model":"a","mod\u0065l":"a"}"#, dup(13, MODEL, vec![model("a")]));
    check(r#"{"model":5,"messages":[],"model":"b"}"#, dup(25, MODEL, vec![hit(MODEL, Found::Other)]));
    // A repeated parent of a watched path: the last `usage` would win elsewhere.
    check(
        r#"{"usage":{"output_tokens":1},"usage":{}}"#,
        dup(29, OUTPUT_TOKENS, vec![hit(USAGE, Found::Other), hit(OUTPUT_TOKENS, Found::Int(1))]),
    );
    check(
        r#"{"usage":{"output_tokens":1,"output_tokens":2}}"#,
        dup(28, OUTPUT_TOKENS, vec![hit(USAGE, Found::Other), hit(OUTPUT_TOKENS, Found::Int(1))]),
    );
    // Repeats off the watched paths are fine.
    check(
        r#"{"messages":[{"model":1},{"model":2}],"x":{"model":1,"model":2},"other":1,"other":2,"model":"m"}"#,
        ok(vec![model("m")]),
    );
}

#[test]
fn invalid_json_is_refused_where_it_breaks() {
    check(
        r#"{"messages":[1,],"model":"a"}"#,
        Outcome { hits: vec![], verdict: invalid(15, "expected a value") },
    );
    check(
        r#"{"model":"a"}}"#,
        Outcome { hits: vec![model("a")], verdict: invalid(13, "trailing characters after the document") },
    );
    check(
        r#"{"model":"a""#,
        Outcome { hits: vec![model("a")], verdict: invalid(12, "unexpected end of the document") },
    );
    check("", Outcome { hits: vec![], verdict: invalid(0, "unexpected end of the document") });
    check("   ", Outcome { hits: vec![], verdict: invalid(3, "unexpected end of the document") });
    check(r#"{"model" "a"}"#, Outcome { hits: vec![], verdict: invalid(9, "expected ':'") });
    check(r#"{model:"a"}"#, Outcome { hits: vec![], verdict: invalid(1, "expected a key") });
    check(r#"{"a":1,}"#, Outcome { hits: vec![], verdict: invalid(7, "expected a key") });
    check(r#"{"a":[}"#, Outcome { hits: vec![], verdict: invalid(6, "expected a value") });
    check(r#"{"a":[1}"#, Outcome { hits: vec![], verdict: invalid(7, "mismatched close") });
    check(r#"{"a":tru}"#, Outcome { hits: vec![], verdict: invalid(8, "invalid literal") });
    check(
        r#"{"a":truex}"#,
        Outcome { hits: vec![], verdict: invalid(9, "expected ',' or the end of the container") },
    );
    check("\u{feff}{}", Outcome { hits: vec![], verdict: invalid(0, "expected a value") });
    check(
        "{\"model\":\"a\tb\"}",
        Outcome { hits: vec![], verdict: invalid(11, "control character in a string") },
    );
    check(r#"{"model":"\x"}"#, Outcome { hits: vec![], verdict: invalid(11, "invalid escape") });
    check(r#"{"model":"\u00g0"}"#, Outcome { hits: vec![], verdict: invalid(14, "invalid \\u escape") });
    for lone in [
        r#""\ud800""#,
        r#""\ud800x""#,
        r#""\ud800\n""#,
        r#""\ud800\ud800""#,
        r#""\udc00""#,
        r#""\ude00\ud83d""#,
    ] {
        let doc = format!(r#"{{"model":{lone}}}"#);
        let whole = scan_whole(WATCHES, doc.as_bytes());
        assert!(
            matches!(whole.verdict, Err(ScanError::Invalid { reason: "lone surrogate", .. })),
            "{doc}: {whole:?}"
        );
        check(&doc, whole);
    }
    for bytes in [
        &b"\xc0\xaf"[..],
        b"\xe0\x80\xaf",
        b"\xed\xa0\x80",
        b"\xf4\x90\x80\x80",
        b"\xf8",
        b"\x80",
        b"\xc3",
        b"\xe2\x82",
    ] {
        let doc = [&b"{\"model\":\"a"[..], bytes, b"\"}"].concat();
        let whole = scan_whole(WATCHES, &doc);
        assert!(
            matches!(whole.verdict, Err(ScanError::Invalid { reason: "invalid UTF-8 in a string", .. })),
            "{doc:?}"
        );
        check(&doc, whole);
    }
    // Outside strings, non-ASCII is simply unexpected.
    check("{\"a\":\u{e9}}", Outcome { hits: vec![], verdict: invalid(5, "expected a value") });
}

#[test]
fn numbers() {
    let tokens = |n: &str| format!(r#"{{"usage":{{"output_tokens":{n}}}}}"#);
    for (n, found) in [
        ("0", Found::Int(0)),
        ("12", Found::Int(12)),
        ("18446744073709551615", Found::Int(u64::MAX)),
        ("18446744073709551616", Found::Other),
        ("-1", Found::Other),
        ("-0", Found::Other),
        ("1.0", Found::Other),
        ("1e2", Found::Other),
        ("\"12\"", Found::Other),
        ("null", Found::Other),
    ] {
        // `usage` itself is watched too (as a string): an object there is `Other`.
        check(tokens(n), ok(vec![hit(USAGE, Found::Other), hit(OUTPUT_TOKENS, found)]));
    }
    for n in ["01", "-", "1.", ".5", "1e", "1e+", "+1", "--1", "1.e3", "0x1", "1_0", "Infinity", "NaN"] {
        let doc = tokens(n);
        let whole = scan_whole(WATCHES, doc.as_bytes());
        assert!(matches!(whole.verdict, Err(ScanError::Invalid { .. })), "{n}: {whole:?}");
        check(&doc, whole);
    }
    for root in ["0", "-0.5e-3", "123 ", "1E+2", "true", "null", " false "] {
        check(root, ok(vec![]));
    }
    check(
        r#"{"message":{"usage":{"input_tokens":7,"output_tokens":8}}}"#,
        ok(vec![hit(INPUT_TOKENS, Found::Int(7))]),
    );
}

#[test]
fn a_number_beyond_f64_is_the_one_difference_from_serde_json() {
    let doc = br#"{"model":"a","x":1e400}"#;
    assert_eq!(reference(WATCHES, doc), Reference::NumberOutOfRange);
    check(doc, ok(vec![model("a")]));
}

#[test]
fn capped_strings_and_lengths() {
    let id = "m".repeat(256);
    check(format!(r#"{{"model":"{id}"}}"#), ok(vec![model(&id)]));
    check(format!(r#"{{"model":"{id}x"}}"#), ok(vec![hit(MODEL, Found::TooLong)]));
    // The cap counts decoded bytes: 255 + a 2-byte character from an escape is over it.
    check(format!(r#"{{"model":"{}\u00e9"}}"#, "m".repeat(255)), ok(vec![hit(MODEL, Found::TooLong)]));
    check(
        format!(r#"{{"model":"{}\u00e9"}}"#, "m".repeat(254)),
        ok(vec![model(&format!("{}\u{e9}", "m".repeat(254)))]),
    );
    check(r#"{"k":"abcd"}"#, ok(vec![hit(SHORT, Found::Str("abcd".into()))]));
    check(r#"{"k":"abc\u00e9"}"#, ok(vec![hit(SHORT, Found::TooLong)]));
    check(
        r#"{"delta":{"type":"text_delta","text":"h\u00e9 \ud83d\ude00\n"}}"#,
        ok(vec![hit(DELTA_TEXT, Found::Len(9))]),
    );
    check(r#"{"delta":{"text":""}}"#, ok(vec![hit(DELTA_TEXT, Found::Len(0))]));
    check(r#"{"delta":{"text":["x"]}}"#, ok(vec![hit(DELTA_TEXT, Found::Other)]));
    // A key longer than any watched key never matches, however it is cut.
    check(format!(r#"{{"{}":"x","model":"y"}}"#, "model".repeat(100)), ok(vec![model("y")]));
}

#[test]
fn paths_go_through_objects_only() {
    check(r#"{"usage":[{"output_tokens":1}]}"#, ok(vec![hit(USAGE, Found::Other)]));
    check(
        r#"{"x":{"usage":{"output_tokens":1}},"usage":{"x":{"output_tokens":2}}}"#,
        ok(vec![hit(USAGE, Found::Other)]),
    );
    check(
        r#"{"usage":{"output_tokens":1},"delta":{"text":"ab","x":{"text":"no"}},"message":{"usage":{"input_tokens":3}}}"#,
        ok(vec![
            hit(USAGE, Found::Other),
            hit(OUTPUT_TOKENS, Found::Int(1)),
            hit(DELTA_TEXT, Found::Len(2)),
            hit(INPUT_TOKENS, Found::Int(3)),
        ]),
    );
}

#[test]
fn nesting_up_to_serde_jsons_limit() {
    let depth = MAX_DEPTH as usize;
    let deepest = format!(r#"{{"model":"a","x":{}{}}}"#, "[".repeat(depth - 1), "]".repeat(depth - 1));
    assert!(matches!(reference(WATCHES, deepest.as_bytes()), Reference::Valid(_)));
    check(&deepest, ok(vec![model("a")]));
    let too_deep = format!(r#"{{"model":"a","x":{}{}}}"#, "[".repeat(depth), "]".repeat(depth));
    assert_eq!(reference(WATCHES, too_deep.as_bytes()), Reference::Invalid);
    check(
        &too_deep,
        Outcome { hits: vec![model("a")], verdict: invalid(17 + depth as u64 - 1, "nesting too deep") },
    );
}

#[test]
fn a_model_after_ten_megabytes_in_any_chunking() {
    let text = "lorem ipsum \\\"quoted\\\" \u{e9}\u{1f600} \\u00e9 ".repeat((10 << 20) / 37 + 1);
    let doc = format!(r#"{{"messages":[{{"role":"user","content":"{text}"}}],"model":"claude-sonnet"}}"#);
    assert!(doc.len() > 10 << 20);
    let expected = ok(vec![model("claude-sonnet")]);
    assert_eq!(scan_whole(WATCHES, doc.as_bytes()), expected);
    for size in [1 << 16, 16_381, 7] {
        assert_eq!(scan_chunks(WATCHES, doc.as_bytes().chunks(size)), expected, "chunks of {size}");
    }
}

#[test]
fn errors_are_final_and_hits_before_them_are_kept() {
    let watches = [Watch { path: &["model"], want: Want::Str { max_bytes: 256 } }];
    let mut scanner = Scanner::new(&watches);
    let mut hits = Vec::new();
    assert_eq!(scanner.feed(br#"{"model":"a"]"#, &mut hits), invalid(12, "mismatched close"));
    assert_eq!(hits, [model("a")]);
    assert_eq!(scanner.feed(b"}", &mut hits), invalid(12, "mismatched close"));
    assert_eq!(scanner.finish(), invalid(12, "mismatched close"));
}
