//! One metered `POST /v1/messages`: the request body's `model` and the answer's usage, read from
//! chunks as they pass (never held), and the filter state to write as they become known.
//!
//! Events in (`request_body`, `response_headers`, `response_body`, `end`), commands out (`writes`:
//! the `wasm.gateway_*` values that changed since the last call; `counts`: the metrics at the end).

use crate::budget;
use crate::config::Config;
use crate::credential::Headers;
use crate::delta_shape::delta_text_len;
use crate::json_scan::{is_ws, Found, Hit, Scanner, Want, Watch};
use crate::metrics::{Count, Metric};
use crate::sse::{Item, SseReader};
use crate::usage::{Accumulator, CostWeights, Record, Reported, State, Tokens};

/// `wasm.gateway_model` is at most this long; a longer `model` is not recorded.
pub const MAX_MODEL_BYTES: usize = 256;

/// Filter state names (Envoy reads them as `wasm.<name>`).
pub const MODEL: &str = "gateway_model";
pub const INPUT_TOKENS: &str = "gateway_input_tokens";
pub const OUTPUT_TOKENS: &str = "gateway_output_tokens";
pub const CACHE_CREATION_INPUT_TOKENS: &str = "gateway_cache_creation_input_tokens";
pub const CACHE_READ_INPUT_TOKENS: &str = "gateway_cache_read_input_tokens";
pub const COST: &str = "gateway_cost";
pub const USAGE: &str = "gateway_usage";

const REQUEST_WATCHES: &[Watch<'static>] =
    &[Watch { path: &["model"], want: Want::Str { max_bytes: MAX_MODEL_BYTES } }];

/// Paths read in an SSE event's data or a non-streamed answer (the same `usage` paths serve both).
const ANSWER_WATCHES: &[Watch<'static>] = &[
    Watch { path: &["type"], want: Want::Str { max_bytes: crate::sse::MAX_EVENT_NAME } },
    Watch { path: &["message", "usage", "input_tokens"], want: Want::Int },
    Watch { path: &["message", "usage", "cache_creation_input_tokens"], want: Want::Int },
    Watch { path: &["message", "usage", "cache_read_input_tokens"], want: Want::Int },
    Watch { path: &["usage", "input_tokens"], want: Want::Int },
    Watch { path: &["usage", "output_tokens"], want: Want::Int },
    Watch { path: &["usage", "cache_creation_input_tokens"], want: Want::Int },
    Watch { path: &["usage", "cache_read_input_tokens"], want: Want::Int },
    Watch { path: &["delta", "text"], want: Want::StrLen },
    Watch { path: &["delta", "thinking"], want: Want::StrLen },
    Watch { path: &["delta", "partial_json"], want: Want::StrLen },
];

/// What one SSE event's data (or one JSON answer) said.
#[derive(Debug, Default)]
struct Said {
    kind: Option<String>,
    start: Reported,
    usage: Reported,
    streamed: u64,
}

impl Said {
    fn take(&mut self, hits: &mut Vec<Hit>) {
        for hit in hits.drain(..) {
            let int = match hit.found {
                Found::Int(n) => Some(n),
                _ => None,
            };
            match hit.watch {
                0 => self.kind = if let Found::Str(kind) = hit.found { Some(kind) } else { None },
                1 => self.start.input = int,
                2 => self.start.cache_creation = int,
                3 => self.start.cache_read = int,
                4 => self.usage.input = int,
                5 => self.usage.output = int,
                6 => self.usage.cache_creation = int,
                7 => self.usage.cache_read = int,
                _ => {
                    if let Found::Len(n) = hit.found {
                        self.streamed = self.streamed.saturating_add(n);
                    }
                }
            }
        }
    }
}

/// How the current SSE event's data is being read.
#[derive(Debug)]
enum EventData {
    /// No data yet.
    None,
    /// Its first piece was a whole `content_block_delta` of the common shape (`delta_shape`);
    /// `valid` while only whitespace followed.
    Delta { valid: bool },
    /// Read by the general scanner.
    Scanned(Box<Scanner<'static>>),
}

const DELTA: &str = "content_block_delta";

/// A later piece of an event's data (an event that took the shortcut, or is being scanned).
fn read_data(event: &mut EventData, data: &[u8], hits: &mut Vec<Hit>, said: &mut Said) {
    match event {
        // After a whole document only whitespace may follow (a second, empty data line).
        EventData::Delta { valid } => *valid &= data.iter().all(|b| is_ws(*b)),
        EventData::Scanned(scanner) => {
            // An event whose data is not JSON is skipped, whatever it held before.
            let _ = scanner.feed(data, hits);
            said.take(hits);
        }
        // Not reached: the first piece decides which of the two reads the event.
        EventData::None => {}
    }
}

/// How the answer's body is read.
#[derive(Debug)]
enum Body {
    /// The response headers have not come yet.
    Waiting,
    /// `text/event-stream`: events, each one's data scanned on its own.
    Events { reader: SseReader, data: EventData, said: Said },
    /// A non-streamed JSON answer: only its top-level `usage`.
    Json { scanner: Scanner<'static>, said: Said },
    /// Nothing to read: an error status, an encoded or unexpected body.
    Unread,
}

/// Values written so far, so that only changes go to the host.
#[derive(Debug, Default)]
struct Written {
    model: bool,
    /// Input, output, cache creation, cache read, cost.
    values: [Option<u64>; 5],
    state: Option<State>,
}

#[derive(Debug)]
pub struct Meter {
    request: Option<Scanner<'static>>,
    model: Option<String>,
    body: Body,
    usage: Accumulator,
    /// The answer came compressed: counted, never parsed.
    encoded: bool,
    /// The exchange is over (the answer ended, or the stream was cut): estimates may be written.
    ended: bool,
    written: Written,
    hits: Vec<Hit>,
}

impl Default for Meter {
    fn default() -> Self {
        Meter {
            request: Some(Scanner::new(REQUEST_WATCHES)),
            model: None,
            body: Body::Waiting,
            usage: Accumulator::default(),
            encoded: false,
            ended: false,
            written: Written::default(),
            hits: Vec::new(),
        }
    }
}

/// Whether a request is metered: `POST /v1/messages`, with or without a query.
pub fn is_metered(method: &str, path: &str) -> bool {
    method == "POST" && path.split(['?', '#']).next() == Some("/v1/messages")
}

/// What letting a request through settles for its usage record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Admission {
    /// Index into `budget_groups`; `None` for the default group.
    pub budget_group: Option<usize>,
    /// Its bodies are read for the usage record.
    pub metered: bool,
    /// Remove `accept-encoding` from it, so the answer comes back as readable text.
    pub strip_accept_encoding: bool,
}

/// The admission of an allowed request: its `headers` (as the client sent them) and the user's
/// groups header value (`Identity::groups`).
pub fn admit(config: &Config, headers: &Headers, groups: &str) -> Admission {
    let header = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    let metered =
        config.usage.enabled && is_metered(header(":method").unwrap_or(""), header(":path").unwrap_or(""));
    Admission {
        budget_group: budget::choose(&config.budgets.groups, groups),
        metered,
        strip_accept_encoding: metered
            && config.usage.strip_accept_encoding
            && header("accept-encoding").is_some(),
    }
}

impl Meter {
    pub fn new() -> Self {
        Self::default()
    }

    /// A chunk of the request body. A body that is not JSON, or names `model` twice (which one the
    /// upstream reads is anyone's guess), records no model.
    pub fn request_body(&mut self, chunk: &[u8], end_of_stream: bool) {
        let Some(scanner) = self.request.as_mut() else { return };
        let mut outcome = scanner.feed(chunk, &mut self.hits);
        if outcome.is_ok() && end_of_stream {
            outcome = scanner.finish();
        }
        for hit in self.hits.drain(..) {
            self.model = match hit.found {
                Found::Str(model) => Some(model),
                _ => None,
            };
        }
        if let Err(crate::json_scan::ScanError::DuplicateKey { .. }) = outcome {
            self.model = None;
        }
        if outcome.is_err() || end_of_stream {
            self.request = None;
        }
    }

    /// The request body is scanned by the models gate (`models.enforce`, which refuses what this
    /// scan would record no model for): its reading so far stands for a scan of our own.
    pub fn follow_gate(&mut self, model: Option<&str>, end_of_stream: bool) {
        if self.request.is_none() {
            return;
        }
        if self.model.as_deref() != model {
            self.model = model.map(str::to_owned);
        }
        if end_of_stream {
            self.request = None;
        }
    }

    /// Whether the request body is still read (by `request_body` or `follow_gate`).
    pub fn reads_request(&self) -> bool {
        self.request.is_some()
    }

    /// The response headers: only a 2xx answer in plain SSE or JSON has usage to read.
    pub fn response_headers(
        &mut self,
        status: Option<u32>,
        content_type: Option<&str>,
        content_encoding: Option<&str>,
    ) {
        let encoded = content_encoding
            .is_some_and(|e| !e.trim().is_empty() && !e.trim().eq_ignore_ascii_case("identity"));
        let media = content_type.and_then(|t| t.split(';').next()).map(|t| t.trim().to_ascii_lowercase());
        let success = status.is_some_and(|s| (200..300).contains(&s));
        self.encoded = encoded && success;
        self.body = match media.as_deref() {
            _ if !success || encoded => Body::Unread,
            Some("text/event-stream") => {
                Body::Events { reader: SseReader::new(), data: EventData::None, said: Said::default() }
            }
            Some("application/json") => {
                Body::Json { scanner: Scanner::new(ANSWER_WATCHES), said: Said::default() }
            }
            _ => Body::Unread,
        };
    }

    /// A chunk of the answer's body.
    pub fn response_body(&mut self, chunk: &[u8], end_of_stream: bool) {
        let hits = &mut self.hits;
        let usage = &mut self.usage;
        match &mut self.body {
            Body::Events { reader, data: event, said } => reader.feed(chunk, |item| match item {
                Item::Data(data) => match event {
                    EventData::None => match delta_text_len(data) {
                        Some(len) => {
                            *event = EventData::Delta { valid: true };
                            said.streamed = len;
                        }
                        None => {
                            *event = EventData::Scanned(Box::new(Scanner::new(ANSWER_WATCHES)));
                            read_data(event, data, hits, said);
                        }
                    },
                    _ => read_data(event, data, hits, said),
                },
                Item::End { name, has_data } => {
                    let (valid, delta) = match std::mem::replace(event, EventData::None) {
                        EventData::None => (false, false),
                        EventData::Delta { valid } => (valid, true),
                        EventData::Scanned(mut scanner) => (scanner.finish().is_ok(), false),
                    };
                    // A delta's own `type` names it when no `event:` line did.
                    let name = if name.is_empty() && delta { DELTA.as_bytes() } else { name };
                    let said = std::mem::take(said);
                    if has_data && valid {
                        apply_event(usage, name, said);
                    }
                }
            }),
            Body::Json { scanner, said } => {
                let _ = scanner.feed(chunk, hits);
                said.take(hits);
            }
            Body::Waiting | Body::Unread => {}
        }
        if end_of_stream {
            self.end();
        }
    }

    /// The exchange is over, finished or cut short (the stream's end, a reset, a hang-up).
    pub fn end(&mut self) {
        if self.ended {
            return;
        }
        self.ended = true;
        if let Body::Json { said, .. } = &mut self.body {
            // A non-streamed answer's usage counts only when final (it comes after the content).
            if said.usage.output.is_some() {
                self.usage.answer(&said.usage);
            }
        }
        self.request = None;
    }

    /// The record as of now. While the answer still streams, an estimate is not yet written.
    pub fn record(&self) -> Option<Record> {
        let record = self.usage.record();
        match (&self.body, record.state) {
            (Body::Waiting, _) => None,
            (Body::Unread | Body::Json { .. }, State::Estimated) => {
                Some(Record { state: State::None, ..record })
            }
            _ => Some(record),
        }
    }

    /// The filter state that changed since the last call, as (name, value). Mid-stream, input and
    /// cache counts are final once `message_start` came; the output estimate is not, and is
    /// written when the stream ends, whichever way it ends.
    pub fn writes(&mut self, weights: &CostWeights) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if !self.written.model && self.request.is_none() {
            if let Some(model) = &self.model {
                out.push((MODEL, model.clone()));
            }
            self.written.model = true;
        }
        let Some(record) = self.record() else { return out };
        if record.state != State::None {
            let t = record.tokens;
            let settled = record.state == State::Complete || self.ended;
            let values = [
                (INPUT_TOKENS, Some(t.input)),
                (OUTPUT_TOKENS, settled.then_some(t.output)),
                (CACHE_CREATION_INPUT_TOKENS, Some(t.cache_creation)),
                (CACHE_READ_INPUT_TOKENS, Some(t.cache_read)),
                (COST, Some(weights.cost(&Tokens { output: if settled { t.output } else { 0 }, ..t }))),
            ];
            for ((name, value), was) in values.into_iter().zip(self.written.values.iter_mut()) {
                if value.is_some() && value != *was {
                    *was = value;
                    out.push((name, value.unwrap_or_default().to_string()));
                }
            }
        }
        if self.written.state != Some(record.state) {
            self.written.state = Some(record.state);
            out.push((USAGE, record.state.as_str().to_owned()));
        }
        out
    }

    /// Metrics of the finished exchange, per budget group and per model (`model_label`).
    pub fn counts<'a>(
        &self,
        weights: &CostWeights,
        group: &'a str,
        model_label: &'a str,
    ) -> Vec<(Metric<'a>, u64)> {
        let mut out = vec![
            (Metric::BudgetGroup(group, Count::Requests), 1),
            (Metric::Model(model_label, Count::Requests), 1),
        ];
        if self.encoded {
            out.push((Metric::EncodedAnswer, 1));
        }
        let Some(record) = self.record() else { return out };
        out.push((Metric::UsageState(record.state), 1));
        if record.state == State::None {
            return out;
        }
        let t = record.tokens;
        for (count, n) in [
            (Count::InputTokens, t.input),
            (Count::OutputTokens, t.output),
            (Count::CacheCreationInputTokens, t.cache_creation),
            (Count::CacheReadInputTokens, t.cache_read),
            (Count::Cost, weights.cost(&t)),
        ] {
            if n > 0 {
                out.push((Metric::BudgetGroup(group, count), n));
                out.push((Metric::Model(model_label, count), n));
            }
        }
        out
    }

    /// The model the request named, if it was found (and not ambiguous).
    pub fn model(&self) -> Option<&str> {
        self.model.as_deref()
    }

    pub fn encoded(&self) -> bool {
        self.encoded
    }
}

/// Folds one complete SSE event into the usage; its kind is the `event:` name, else the data's
/// `type`.
fn apply_event(usage: &mut Accumulator, name: &[u8], said: Said) {
    let kind =
        if name.is_empty() { said.kind.as_deref().map(str::as_bytes).unwrap_or_default() } else { name };
    match kind {
        b"message_start" => usage.message_start(&said.start),
        b"message_delta" => usage.message_delta(&said.usage),
        kind if kind == DELTA.as_bytes() => usage.streamed(said.streamed),
        _ => {}
    }
}
