//! Scans request bodies the way `models.enforce` does (`BodyGate`, 64 KiB chunks as Envoy hands
//! them over) and prints throughput on a 10 MB body with `model` last (the Python SDK's order) and
//! the CPU added to one request with a model-first body (Claude Code's order; the whole body is
//! still scanned, for a second `model`); and the usage record's own work per SSE event of a streamed
//! answer (`metering::Meter` fed one event per chunk), without the copy of each chunk into the VM
//! that Envoy adds (bench/streaming.py measures that).
//!
//! Usage: json-scan-bench [rounds] (default 5); the best and the median round are printed. Times
//! are the process's CPU time (`CLOCK_PROCESS_CPUTIME_ID`, natively and through WASI), so a busy
//! machine slows the run down but does not change the figures much.

use std::hint::black_box;

use gateway_filter::metering::Meter;
use gateway_filter::models::BodyGate;
use gateway_filter::usage::CostWeights;

const CHUNK: usize = 64 * 1024;

/// A Messages API body: `turns` user/assistant messages of what Claude Code sends (source code with
/// its `\n` and `\"` escapes, prose, some non-ASCII), with `model` first or last.
fn body(turns: usize, text_bytes: usize, model_first: bool) -> Vec<u8> {
    let unit = "fn main() {\\n    let greeting = \\\"h\u{e9}llo, world\\\";\\n    println!(\\\"{greeting}\\\");\\n}\\n\\nThe quick brown fox jumps over the lazy dog; the five boxing wizards jump quickly. ";
    let text = unit.repeat(text_bytes / unit.len() + 1);
    let mut messages = Vec::new();
    for i in 0..turns {
        let role = if i % 2 == 0 { "user" } else { "assistant" };
        messages.push(format!(r#"{{"role":"{role}","content":[{{"type":"text","text":"{text}"}}]}}"#));
    }
    let tools = r#"[{"name":"Read","description":"Reads a file","input_schema":{"type":"object","properties":{"file_path":{"type":"string"},"limit":{"type":"number"}},"required":["file_path"]}}]"#;
    let rest =
        format!(r#""max_tokens":32000,"stream":true,"tools":{tools},"messages":[{}]"#, messages.join(","));
    let model = r#""model":"claude-sonnet-4-5""#;
    let json = if model_first { format!("{{{model},{rest}}}") } else { format!("{{{rest},{model}}}") };
    json.into_bytes()
}

fn scan(body: &[u8]) -> bool {
    let mut gate = BodyGate::new(Some(body.len() as u64));
    let chunks: Vec<&[u8]> = body.chunks(CHUNK).collect();
    for chunk in chunks {
        gate.read(chunk, false);
        if gate.decide(|m| m == "claude-sonnet-4-5").is_some() {
            return false;
        }
    }
    gate.model().is_some()
}

/// A streamed answer as the Messages API sends it: `message_start`, `deltas` `content_block_delta`
/// events of 40-byte texts, `message_delta` with the usage, `message_stop`; one event per chunk, as
/// Envoy hands a paced stream over.
fn stream(deltas: usize) -> Vec<Vec<u8>> {
    let event = |name: &str, data: &str| format!("event: {name}\ndata: {data}\n\n").into_bytes();
    let mut events = vec![
        event(
            "message_start",
            r#"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[],"stop_reason":null,"usage":{"input_tokens":1200,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":1}}}"#,
        ),
        event(
            "content_block_start",
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
        ),
    ];
    let text = "The quick brown fox jumps over the lazy.";
    let delta = format!(
        r#"{{"type":"content_block_delta","index":0,"delta":{{"type":"text_delta","text":"{text}"}}}}"#
    );
    events.extend((0..deltas).map(|_| event("content_block_delta", &delta)));
    events.push(event("content_block_stop", r#"{"type":"content_block_stop","index":0}"#));
    events.push(event(
        "message_delta",
        r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":20000}}"#,
    ));
    events.push(event("message_stop", r#"{"type":"message_stop"}"#));
    events
}

/// One streamed answer through the meter, as the filter's response-body callback drives it (the
/// filter-state writes asked for after every chunk); its output tokens.
fn meter(chunks: &[Vec<u8>], weights: &CostWeights) -> u64 {
    let mut meter = Meter::new();
    meter.request_body(br#"{"model":"claude-sonnet-4-5","stream":true}"#, true);
    meter.response_headers(Some(200), Some("text/event-stream"), None);
    let mut writes = 0;
    for (i, chunk) in chunks.iter().enumerate() {
        meter.response_body(black_box(chunk), i + 1 == chunks.len());
        writes += meter.writes(weights).len();
    }
    black_box(writes);
    meter.record().map_or(0, |r| r.tokens.output)
}

/// The process's CPU time in seconds.
fn cpu_seconds() -> f64 {
    const CLOCK_PROCESS_CPUTIME_ID: u32 = 2;
    #[cfg(target_os = "wasi")]
    {
        #[link(wasm_import_module = "wasi_snapshot_preview1")]
        extern "C" {
            fn clock_time_get(id: u32, precision: u64, time: *mut u64) -> u16;
        }
        let mut ns = 0u64;
        // SAFETY: WASI writes one u64 to the pointer it is given.
        let errno = unsafe { clock_time_get(CLOCK_PROCESS_CPUTIME_ID, 1, &mut ns) };
        assert_eq!(errno, 0, "clock_time_get");
        ns as f64 / 1e9
    }
    #[cfg(not(target_os = "wasi"))]
    {
        #[repr(C)]
        struct Timespec {
            sec: i64,
            nsec: i64,
        }
        extern "C" {
            fn clock_gettime(clock: i32, ts: *mut Timespec) -> i32;
        }
        let mut ts = Timespec { sec: 0, nsec: 0 };
        // SAFETY: clock_gettime writes one timespec to the pointer it is given.
        let rc = unsafe { clock_gettime(CLOCK_PROCESS_CPUTIME_ID as i32, &mut ts) };
        assert_eq!(rc, 0, "clock_gettime");
        ts.sec as f64 + ts.nsec as f64 / 1e9
    }
}

/// (best, median) seconds per call of `run` over `rounds` rounds of `iters` calls.
fn measure(rounds: usize, iters: u32, mut run: impl FnMut()) -> (f64, f64) {
    let mut per = Vec::new();
    for _ in 0..rounds {
        let start = cpu_seconds();
        for _ in 0..iters {
            run();
        }
        per.push((cpu_seconds() - start) / f64::from(iters));
    }
    per.sort_by(f64::total_cmp);
    (per[0], per[rounds / 2])
}

fn measure_scan(rounds: usize, iters: u32, body: &[u8]) -> (f64, f64) {
    assert!(scan(body), "the body must be allowed");
    measure(rounds, iters, || assert!(black_box(scan(black_box(body)))))
}

fn main() {
    let rounds = std::env::args().nth(1).map_or(5, |a| a.parse().expect("rounds"));
    println!(
        "model scan (BodyGate over json_scan, {} KiB chunks), target {}",
        CHUNK / 1024,
        std::env::consts::ARCH
    );
    let big = body(40, 10 * 1024 * 1024 / 40, false);
    let (best, median) = measure_scan(rounds, 3, &big);
    let mb = big.len() as f64 / 1e6;
    println!(
        "{:<44} {:>8.0} MB/s best {:>8.0} MB/s median  ({:.1} MB)",
        "10 MB body, model last",
        mb / best,
        mb / median,
        mb
    );
    for (name, turns, text) in [("model-first body, 2 KB", 2, 700), ("model-first body, 50 KB", 10, 4800)] {
        let b = body(turns, text, true);
        let (best, median) = measure_scan(rounds, 2000, &b);
        println!(
            "{:<44} {:>8.1} µs best  {:>8.1} µs median  ({} bytes)",
            name,
            best * 1e6,
            median * 1e6,
            b.len()
        );
    }
    let deltas = 2000;
    let chunks = stream(deltas);
    let weights = CostWeights::default();
    assert_eq!(meter(&chunks, &weights), 20000, "the stream's usage must be read");
    let (best, median) = measure(rounds, 20, || assert_eq!(meter(black_box(&chunks), &weights), 20000));
    let events = chunks.len() as f64;
    println!(
        "{:<44} {:>8.2} µs best  {:>8.2} µs median  per event ({} events of ~{} bytes, one per chunk)",
        "usage record of a streamed answer",
        best * 1e6 / events,
        median * 1e6 / events,
        chunks.len(),
        chunks[2].len()
    );
}
