//! Scans request bodies the way `models.enforce` does (`BodyGate`, 64 KiB chunks as Envoy hands
//! them over) and prints throughput on a 10 MB body with `model` last (the Python SDK's order) and
//! the CPU added to one request with a model-first body (Claude Code's order; the whole body is
//! still scanned, for a second `model`).
//!
//! Usage: json-scan-bench [rounds] (default 5); the best and the median round are printed. Times
//! are the process's CPU time (`CLOCK_PROCESS_CPUTIME_ID`, natively and through WASI), so a busy
//! machine slows the run down but does not change the figures much.

use std::hint::black_box;

use gateway_filter::models::BodyGate;

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
    let rest = format!(r#""max_tokens":32000,"stream":true,"tools":{tools},"messages":[{}]"#, messages.join(","));
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

/// (best, median) seconds per scan over `rounds` rounds of `iters` scans.
fn measure(rounds: usize, iters: u32, body: &[u8]) -> (f64, f64) {
    assert!(scan(body), "the body must be allowed");
    let mut per = Vec::new();
    for _ in 0..rounds {
        let start = cpu_seconds();
        for _ in 0..iters {
            assert!(black_box(scan(black_box(body))));
        }
        per.push((cpu_seconds() - start) / f64::from(iters));
    }
    per.sort_by(f64::total_cmp);
    (per[0], per[rounds / 2])
}

fn main() {
    let rounds = std::env::args().nth(1).map_or(5, |a| a.parse().expect("rounds"));
    println!("model scan (BodyGate over json_scan, {} KiB chunks), target {}", CHUNK / 1024, std::env::consts::ARCH);
    let big = body(40, 10 * 1024 * 1024 / 40, false);
    let (best, median) = measure(rounds, 3, &big);
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
        let (best, median) = measure(rounds, 2000, &b);
        println!(
            "{:<44} {:>8.1} µs best  {:>8.1} µs median  ({} bytes)",
            name,
            best * 1e6,
            median * 1e6,
            b.len()
        );
    }
}
