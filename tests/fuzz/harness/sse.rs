//! sse: the SSE reader (`gateway_filter::sse`) and the usage read from a stream
//! (`gateway_filter::metering`, which scans each event's data with `json_scan`), against the same
//! input in one piece. The first two bytes of the input pick the cut points, the rest is the
//! answer's body. In one piece, cut in three, and in chunks of 1 to 16 bytes, the reader must report
//! the same events (name, data, had data) and the meter the same record and the same final filter
//! state, both for a stream that ends and for one cut short (a hang-up).

use gateway_filter::metering::Meter;
use gateway_filter::sse::{Item, SseReader};
use gateway_filter::usage::{CostWeights, Record};

type Event = (Vec<u8>, Vec<u8>, bool);

fn events<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> Vec<Event> {
    let mut reader = SseReader::new();
    let mut out = Vec::new();
    let mut data = Vec::new();
    for chunk in chunks {
        reader.feed(chunk, |item| match item {
            Item::Data(piece) => data.extend_from_slice(piece),
            Item::End { name, has_data } => out.push((name.to_vec(), std::mem::take(&mut data), has_data)),
        });
    }
    out
}

type Metered = (Option<Record>, Vec<(&'static str, String)>);

fn meter<'a>(chunks: impl IntoIterator<Item = &'a [u8]>, cut_short: bool) -> Metered {
    let weights = CostWeights { input: 1000, output: 3000, cache_creation: 1250, cache_read: 100 };
    let mut meter = Meter::new();
    meter.request_body(br#"{"model":"claude-sonnet-4-5"}"#, true);
    meter.response_headers(Some(200), Some("text/event-stream"), None);
    let mut last: Vec<(&'static str, String)> = Vec::new();
    let mut keep = |writes: Vec<(&'static str, String)>| {
        for (name, value) in writes {
            match last.iter_mut().find(|(n, _)| *n == name) {
                Some(slot) => slot.1 = value,
                None => last.push((name, value)),
            }
        }
    };
    keep(meter.writes(&weights));
    for chunk in chunks {
        meter.response_body(chunk, false);
        keep(meter.writes(&weights));
    }
    if cut_short {
        meter.end();
    } else {
        meter.response_body(&[], true);
    }
    keep(meter.writes(&weights));
    last.sort();
    (meter.record(), last)
}

pub fn sse(data: &[u8]) {
    let [a, b, body @ ..] = data else { return };
    let first = usize::from(*a) * body.len() / 256;
    let second = first + (usize::from(*b) * (body.len() - first)) / 256;
    let three = [&body[..first], &body[first..second], &body[second..]];
    let size = usize::from(a % 16) + 1;

    let whole = events([body]);
    assert_eq!(events(three), whole, "events, cut at {first} and {second}");
    assert_eq!(events(body.chunks(size)), whole, "events, chunks of {size}");
    for cut_short in [false, true] {
        let whole = meter([body], cut_short);
        assert_eq!(
            meter(three, cut_short),
            whole,
            "usage, cut at {first} and {second}, cut_short={cut_short}"
        );
        assert_eq!(
            meter(body.chunks(size), cut_short),
            whole,
            "usage, chunks of {size}, cut_short={cut_short}"
        );
    }
}
