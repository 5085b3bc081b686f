//! The usage record read from streams cut at every byte offset: the same record (and the same
//! filter state in the end) as the stream read in one piece, whatever the chunking.

use gateway_filter::config::parse_config;
use gateway_filter::metering::{admit, is_metered, Admission, Meter};
use gateway_filter::usage::{CostWeights, Record, State, Tokens};
use serde_json::json;

use crate::fixtures::config_json;

/// A recorded answer with every hard case: `\r\n` and bare `\n`, comments, `ping`, `data:` without
/// a space, escapes and multi-byte UTF-8 in the text, a `signature_delta` (not counted), thinking
/// and tool input deltas, and a `message_delta` that also carries input and cache counts.
const STREAM: &str = concat!(
    ": keep-alive comment\r\n\r\n",
    "event: message_start\r\n",
    "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",",
    "\"model\":\"claude-sonnet-4-5\",\"content\":[],\"usage\":{\"input_tokens\":1234,",
    "\"cache_creation_input_tokens\":56,\"cache_read_input_tokens\":7890,\"output_tokens\":1}}}\r\n\r\n",
    "event: ping\ndata: {\"type\": \"ping\"}\n\n",
    "event: content_block_start\ndata:{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\"}}\n\n",
    "event: content_block_delta\ndata:{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"Let me think \\u00e9\\ud83d\\ude00\"}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"signature_delta\",\"signature\":\"EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxDwY\"}}\n\n",
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\",\"text\":\"Héllo — wörld ✓ \\\"quoted\\\"\"}}\n\n",
    ": another comment\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"city\\\": \\\"Par\"}}\n\n",
    "event: message_delta\r\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},",
    "\"usage\":{\"input_tokens\":1300,\"cache_read_input_tokens\":8000,\"output_tokens\":98765}}\r\n\r\n",
    "event: message_stop\r\ndata: {\"type\":\"message_stop\"}\r\n\r\n",
);

/// Bytes of decoded streamed text in STREAM before its `message_delta`.
fn streamed_bytes() -> u64 {
    let thinking = "Let me think é😀".len();
    let text = "Héllo — wörld ✓ \"quoted\"".len();
    let json = "{\"city\": \"Par".len();
    (thinking + text + json) as u64
}

fn weights() -> CostWeights {
    CostWeights { input: 1000, output: 5000, cache_creation: 1250, cache_read: 100 }
}

/// Feeds `pieces` as the answer; `cut_short` ends it as a hang-up would (no end of stream).
fn meter(pieces: &[&[u8]], cut_short: bool) -> (Option<Record>, Vec<(&'static str, String)>) {
    let mut meter = Meter::new();
    meter.request_body(br#"{"model":"claude-sonnet-4-5","stream":true}"#, true);
    meter.response_headers(Some(200), Some("text/event-stream; charset=utf-8"), None);
    let mut writes = meter.writes(&weights());
    for (i, piece) in pieces.iter().enumerate() {
        meter.response_body(piece, !cut_short && i + 1 == pieces.len());
        writes.extend(meter.writes(&weights()));
    }
    if cut_short {
        meter.end();
        writes.extend(meter.writes(&weights()));
    }
    (meter.record(), final_values(writes))
}

/// The last value written for each name, sorted by name.
fn final_values(writes: Vec<(&'static str, String)>) -> Vec<(&'static str, String)> {
    let mut last: Vec<(&'static str, String)> = Vec::new();
    for (name, value) in writes {
        match last.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => last.push((name, value)),
        }
    }
    last.sort();
    last
}

#[test]
fn the_recorded_stream_in_one_piece() {
    let (record, writes) = meter(&[STREAM.as_bytes()], false);
    let tokens = Tokens { input: 1300, output: 98765, cache_creation: 56, cache_read: 8000 };
    assert_eq!(record, Some(Record { state: State::Complete, tokens }));
    let cost = (1300 * 1000 + 98765 * 5000 + 56 * 1250 + 8000 * 100_u64).div_ceil(1000);
    let expected: Vec<(&str, String)> = vec![
        ("gateway_cache_creation_input_tokens", "56".into()),
        ("gateway_cache_read_input_tokens", "8000".into()),
        ("gateway_cost", cost.to_string()),
        ("gateway_input_tokens", "1300".into()),
        ("gateway_model", "claude-sonnet-4-5".into()),
        ("gateway_output_tokens", "98765".into()),
        ("gateway_usage", "complete".into()),
    ];
    assert_eq!(writes, expected);
}

#[test]
fn every_cut_of_the_stream_gives_the_same_record() {
    let bytes = STREAM.as_bytes();
    let whole = meter(&[bytes], false);
    for cut in 0..=bytes.len() {
        let (a, b) = bytes.split_at(cut);
        assert_eq!(meter(&[a, b], false), whole, "cut at {cut}");
    }
    // Three pieces: every first cut with a sweep of second cuts.
    for first in 0..bytes.len() {
        for second in (first..=bytes.len()).step_by(97) {
            let (a, rest) = bytes.split_at(first);
            let (b, c) = rest.split_at(second - first);
            assert_eq!(meter(&[a, b, c], false), whole, "cuts at {first} and {second}");
        }
    }
    let singles: Vec<&[u8]> = bytes.chunks(1).collect();
    assert_eq!(meter(&singles, false), whole, "byte by byte");
}

#[test]
fn a_stream_cut_short_anywhere_is_estimated_like_its_prefix_in_one_piece() {
    let bytes = STREAM.as_bytes();
    let delta_at = STREAM.find("event: message_delta").unwrap();
    for end in 0..=bytes.len() {
        let prefix = &bytes[..end];
        let oracle = meter(&[prefix], true);
        for cut in (0..=end).step_by(53) {
            let (a, b) = prefix.split_at(cut);
            assert_eq!(meter(&[a, b], true), oracle, "prefix {end}, cut at {cut}");
        }
        let record = oracle.0.unwrap();
        if end < delta_at {
            // Before the final usage: estimated once message_start is in, with ceil(bytes / 4).
            // The blank line's `\r` already ends message_start: a bare CR ends a line.
            let start_done = end >= STREAM.find("event: ping").unwrap() - 1;
            let expected = if start_done { State::Estimated } else { State::None };
            assert_eq!(record.state, expected, "prefix {end}");
        }
    }
    let before_delta = meter(&[&bytes[..delta_at]], true).0.unwrap();
    assert_eq!(
        before_delta,
        Record {
            state: State::Estimated,
            tokens: Tokens {
                input: 1234,
                output: streamed_bytes().div_ceil(4),
                cache_creation: 56,
                cache_read: 7890
            }
        }
    );
}

#[test]
fn an_error_event_mid_stream_leaves_an_estimate() {
    let delta_at = STREAM.find("event: message_delta").unwrap();
    let mut stream = STREAM[..delta_at].to_owned();
    stream.push_str("event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n");
    let (record, writes) = meter(&[stream.as_bytes()], false);
    assert_eq!(record.unwrap().state, State::Estimated);
    assert!(writes.contains(&("gateway_usage", "estimated".into())));
    assert!(writes.contains(&("gateway_output_tokens", streamed_bytes().div_ceil(4).to_string())));
}

#[test]
fn input_and_cache_counts_are_written_mid_stream_the_estimate_only_at_the_end() {
    let start_end = STREAM.find("event: ping").unwrap();
    let mut meter = Meter::new();
    meter.response_headers(Some(200), Some("text/event-stream"), None);
    assert_eq!(meter.writes(&weights()), vec![("gateway_usage", "none".to_owned())]);
    meter.response_body(&STREAM.as_bytes()[..start_end], false);
    let mid = meter.writes(&weights());
    assert!(mid.contains(&("gateway_input_tokens", "1234".into())), "{mid:?}");
    assert!(mid.contains(&("gateway_usage", "estimated".into())));
    assert!(!mid.iter().any(|(n, _)| *n == "gateway_output_tokens"));
    // Nothing new, nothing written.
    meter.response_body(b": comment\n\n", false);
    assert!(meter.writes(&weights()).is_empty());
}

#[test]
fn non_streamed_answers_read_the_top_level_usage_after_megabytes_of_content() {
    let expected = Some(Record {
        state: State::Complete,
        tokens: Tokens { input: 10, output: 20, cache_creation: 0, cache_read: 3 },
    });
    let read = |pieces: &[&[u8]]| {
        let mut meter = Meter::new();
        meter.response_headers(Some(200), Some("application/json"), None);
        for (i, piece) in pieces.iter().enumerate() {
            meter.response_body(piece, i + 1 == pieces.len());
        }
        meter.record()
    };
    let big = answer(&"é".repeat(1 << 20));
    for chunk in [1 << 14, 4093, 65_536] {
        assert_eq!(read(&big.as_bytes().chunks(chunk).collect::<Vec<_>>()), expected, "chunks of {chunk}");
    }
    let small = answer("short");
    let bytes = small.as_bytes();
    for cut in 0..=bytes.len() {
        assert_eq!(read(&[&bytes[..cut], &bytes[cut..]]), expected, "cut at {cut}");
    }
}

/// A non-streamed answer with `text`, and a decoy `usage` inside its content.
fn answer(text: &str) -> String {
    format!(
        "{{\"id\":\"msg_1\",\"type\":\"message\",\"content\":[{{\"type\":\"text\",\"text\":\"{text}\",\"usage\":{{\"output_tokens\":1}}}}],\
         \"model\":\"m\",\"usage\":{{\"input_tokens\":10,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":3,\"output_tokens\":20}}}}"
    )
}

#[test]
fn errors_and_encoded_answers_record_none() {
    /// Status, content type, content encoding, body, whether it counts as an encoded answer.
    type Case<'a> = (Option<u32>, Option<&'a str>, Option<&'a str>, &'a [u8], bool);
    let cases: [Case; 5] = [
        (Some(429), Some("application/json"), None, br#"{"type":"error","error":{"type":"rate_limit_error","message":"x"},"usage":{"output_tokens":5}}"#, false),
        (Some(529), Some("application/json"), None, br#"{"type":"error","error":{"type":"overloaded_error","message":"x"}}"#, false),
        (Some(200), Some("text/event-stream"), Some("gzip"), b"\x1f\x8b\x08\x00garbage", true),
        (Some(200), Some("application/json"), Some("br"), b"\x0b\x02\x80garbage", true),
        (Some(200), Some("text/plain"), None, b"event: message_delta\ndata: {\"usage\":{\"output_tokens\":5}}\n\n", false),
    ];
    for (status, ctype, encoding, body, encoded) in cases {
        let mut meter = Meter::new();
        meter.response_headers(status, ctype, encoding);
        meter.response_body(body, true);
        let record = meter.record().unwrap();
        assert_eq!(record.state, State::None, "{status:?} {ctype:?} {encoding:?}");
        assert_eq!(meter.encoded(), encoded);
        let writes = meter.writes(&weights());
        assert_eq!(writes, vec![("gateway_usage", "none".to_owned())], "no token value is written");
    }
    let mut identity = Meter::new();
    identity.response_headers(Some(200), Some("application/json"), Some("identity"));
    identity.response_body(br#"{"usage":{"input_tokens":1,"output_tokens":2}}"#, true);
    assert_eq!(identity.record().unwrap().state, State::Complete);
}

#[test]
fn the_request_model_whatever_the_chunking() {
    let padding = "x".repeat(100_000);
    let bodies: Vec<(String, Option<&str>)> = vec![
        (r#"{"model":"claude-opus-4-1","max_tokens":5}"#.into(), Some("claude-opus-4-1")),
        (
            format!(
                r#"{{"messages":[{{"role":"user","content":"{padding}","model":"inner"}}],"mo\u0064el":"claude-h\u00e9"}}"#
            ),
            Some("claude-hé"),
        ),
        (r#"{"metadata":{"model":"nested"}}"#.into(), None),
        (r#"{"model":"a","model":"b"}"#.into(), None),
        (format!(r#"{{"model":"{}"}}"#, "m".repeat(257)), None),
        (r#"{"model":7}"#.into(), None),
        ("not json".into(), None),
    ];
    for (body, expected) in bodies {
        let bytes = body.as_bytes();
        let step = (bytes.len() / 300).max(1);
        for cut in (0..=bytes.len()).step_by(step) {
            let mut meter = Meter::new();
            meter.request_body(&bytes[..cut], false);
            meter.request_body(&bytes[cut..], true);
            assert_eq!(meter.model(), expected, "{} cut at {cut}", &body[..body.len().min(60)]);
            let writes = meter.writes(&weights());
            let model = writes.iter().find(|(n, _)| *n == "gateway_model").map(|(_, v)| v.as_str());
            assert_eq!(model, expected);
        }
    }
}

#[test]
fn a_gated_request_takes_the_gate_s_model_and_writes_it_once_the_body_ends() {
    let model = |meter: &mut Meter| {
        let writes = meter.writes(&weights());
        writes.into_iter().find(|(n, _)| *n == "gateway_model").map(|(_, v)| v)
    };
    let mut meter = Meter::new();
    // Part of the body was held and scanned here before the gate took over.
    meter.request_body(br#"{"max_tokens":5,"#, false);
    meter.follow_gate(None, false);
    assert!(meter.reads_request());
    meter.follow_gate(Some("claude-haiku"), false);
    assert_eq!(model(&mut meter), None, "not written before the body ends");
    meter.follow_gate(Some("claude-haiku"), true);
    assert!(!meter.reads_request());
    assert_eq!(model(&mut meter).as_deref(), Some("claude-haiku"));
    // Once done, later readings change nothing.
    meter.follow_gate(Some("other"), true);
    assert_eq!(meter.model(), Some("claude-haiku"));
    // A body that ends with trailers: the request ends with the exchange.
    let mut meter = Meter::new();
    meter.follow_gate(Some("claude-opus"), false);
    meter.end();
    assert_eq!(model(&mut meter).as_deref(), Some("claude-opus"));
}

#[test]
fn only_post_v1_messages_is_metered() {
    assert!(is_metered("POST", "/v1/messages"));
    assert!(is_metered("POST", "/v1/messages?beta=true"));
    assert!(!is_metered("POST", "/v1/messages/count_tokens"));
    assert!(!is_metered("GET", "/v1/messages"));
    assert!(!is_metered("POST", "/v1/messages/"));
    assert!(!is_metered("GET", "/v1/models"));
}

#[test]
fn admission_of_an_allowed_request() {
    let config = |usage: serde_json::Value| {
        let mut json = config_json();
        json["budget_groups"] = json!(["ml", "eng"]);
        json["usage"] = usage;
        parse_config(&json).unwrap()
    };
    let headers = |method: &str, path: &str, encoding: bool| {
        let mut h = vec![(":method".to_owned(), method.to_owned()), (":path".to_owned(), path.to_owned())];
        if encoding {
            h.push(("accept-encoding".to_owned(), "gzip".to_owned()));
        }
        h
    };
    let on = config(json!({}));
    let plan = |budget_group, metered, strip_accept_encoding| Admission {
        budget_group,
        metered,
        strip_accept_encoding,
    };
    // The first configured group the user is in, whatever the order of their groups.
    assert_eq!(admit(&on, &headers("POST", "/v1/messages", true), "eng,ml"), plan(Some(0), true, true));
    assert_eq!(
        admit(&on, &headers("POST", "/v1/messages?beta=true", false), "eng"),
        plan(Some(1), true, false)
    );
    assert_eq!(admit(&on, &headers("POST", "/v1/messages", true), "sales"), plan(None, true, true));
    assert_eq!(admit(&on, &headers("POST", "/v1/messages", true), ""), plan(None, true, true));
    // Not metered: its accept-encoding stays.
    assert_eq!(
        admit(&on, &headers("POST", "/v1/messages/count_tokens", true), "ml"),
        plan(Some(0), false, false)
    );
    assert_eq!(admit(&on, &headers("GET", "/v1/models", true), "ml"), plan(Some(0), false, false));
    let off = config(json!({"enabled": false}));
    assert_eq!(admit(&off, &headers("POST", "/v1/messages", true), "ml"), plan(Some(0), false, false));
    let keep = config(json!({"strip_accept_encoding": false}));
    assert_eq!(admit(&keep, &headers("POST", "/v1/messages", true), "ml"), plan(Some(0), true, false));
}

#[test]
fn the_common_delta_shape_is_estimated_as_the_general_scan_does() {
    // Each event whole in one piece (the shortcut where it applies) and one byte at a time (the
    // general scanner): the same estimate, valid or not.
    let deltas = [
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}}"#,
        r#"{"type":"content_block_delta","index":12,"delta":{"type":"text_delta","text":"a\\b\"c\/\n\t"}}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"é ✓ 😀"}}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{\"k\": 1"}}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"\u00e9"}}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x"}}  "#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x"}}}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x"}} 1"#,
        r#"{"type":"content_block_delta","index":00,"delta":{"type":"text_delta","text":"x"}}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"\q"}}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"abc"}}"#,
    ];
    for data in deltas {
        for (name, second_line) in
            [("event: content_block_delta\n", ""), ("", ""), ("", "data:\n"), ("", "data: 7\n")]
        {
            let event = format!("{name}data: {data}\n{second_line}\n");
            let start = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":3}}}\n\n";
            let whole = meter(&[start.as_bytes(), event.as_bytes()], true);
            let bytes: Vec<&[u8]> = event.as_bytes().chunks(1).collect();
            let split = meter(&[&[start.as_bytes()], &bytes[..]].concat(), true);
            assert_eq!(whole, split, "{event}");
        }
    }
    // The shortcut counts decoded bytes: 5 + 8 (each escape is one), estimated as ceil(13 / 4).
    let two = [deltas[0], deltas[1]].map(|d| format!("event: content_block_delta\ndata: {d}\n\n")).concat();
    let (record, _) = meter(&[b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":3}}}\n\n", two.as_bytes()], true);
    assert_eq!(record.map(|r| (r.state, r.tokens.output)), Some((State::Estimated, 4)));
}
