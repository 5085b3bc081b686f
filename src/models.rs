//! Models (contract: "Models"): which catalog entries a user may use, the filter's own answers to
//! `GET /v1/models` and `GET /v1/models/{id}`, and the enforcement decision on a request body as
//! it streams past (`BodyGate`: chunks in, a verdict out; never the body).

use serde_json::{json, Value};

use crate::json_scan::{Found, Hit, ScanError, Scanner, Want, Watch};

/// Longest model id recorded or accepted (contract: "at most 256 bytes").
pub const MAX_MODEL_BYTES: usize = 256;
/// The Messages API's `limit` for listing models: 1 to 1000, 20 when absent.
pub const DEFAULT_LIMIT: usize = 20;
pub const MAX_LIMIT: usize = 1000;

/// The top-level `model` of a request body.
pub const MODEL_WATCH: &[Watch<'static>] =
    &[Watch { path: &["model"], want: Want::Str { max_bytes: MAX_MODEL_BYTES } }];

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub id: String,
    pub display_name: String,
    pub created_at: String,
    /// `None`: everyone may use it.
    pub groups: Option<Vec<String>>,
}

impl Entry {
    pub fn allows(&self, groups: &[String]) -> bool {
        self.groups.as_ref().is_none_or(|allowed| allowed.iter().any(|g| groups.contains(g)))
    }

    /// The Messages API's model object.
    fn to_json(&self) -> Value {
        json!({"type": "model", "id": self.id, "display_name": self.display_name, "created_at": self.created_at})
    }
}

#[derive(Debug, Default)]
pub struct Models {
    pub catalog: Vec<Entry>,
    pub serve_list: bool,
    pub enforce: bool,
}

impl Models {
    /// The entries a user with these groups may use, in catalog order.
    pub fn entries_for(&self, groups: &[String]) -> Vec<&Entry> {
        self.catalog.iter().filter(|e| e.allows(groups)).collect()
    }

    pub fn may_use(&self, groups: &[String], model: &str) -> bool {
        self.catalog.iter().any(|e| e.id == model && e.allows(groups))
    }

    /// What the filter does with a request, from its method and `:path`.
    pub fn route(&self, method: &str, path: &str) -> Route {
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        // Read the path as a router would: percent-escapes decoded, `//` and a trailing `/` not
        // significant, so `/v1//messages/` cannot slip past enforcement.
        let decoded = percent_decode(path).unwrap_or_else(|| path.to_owned());
        let segments: Vec<&str> = decoded.split('/').filter(|s| !s.is_empty()).collect();
        match segments.as_slice() {
            ["v1", "messages"] | ["v1", "messages", "count_tokens"] if self.enforce => Route::Enforced,
            // A batch names a model per request (`requests[].params.model`), which the gate does not
            // read: refused rather than a way around `enforce`.
            ["v1", "messages", "batches"] if self.enforce && method == "POST" => Route::Batch,
            ["v1", "models"] if self.serve_list && method == "GET" => Route::List(query.to_owned()),
            ["v1", "models", id] if self.serve_list && method == "GET" => Route::One((*id).to_owned()),
            _ => Route::Other,
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    /// `GET /v1/models` with its query string.
    List(String),
    /// `GET /v1/models/{id}`, the id decoded.
    One(String),
    /// A body whose `model` is enforced.
    Enforced,
    /// Creating a message batch while models are enforced.
    Batch,
    Other,
}

#[derive(Debug, PartialEq, Eq)]
pub enum ListError {
    BadLimit,
    BothCursors,
    /// The `after_id` or `before_id` is not one of the user's models.
    UnknownCursor(&'static str),
}

impl ListError {
    pub fn client_message(&self) -> &'static str {
        match self {
            ListError::BadLimit => "limit must be an integer from 1 to 1000",
            ListError::BothCursors => "after_id and before_id cannot be used together",
            ListError::UnknownCursor("after_id") => "after_id is not a model you can use",
            ListError::UnknownCursor(_) => "before_id is not a model you can use",
        }
    }
}

/// The `GET /v1/models` answer for the user's entries: the page `query` asks for
/// (`limit`, `after_id`, `before_id`), in the Messages API list shape.
pub fn list_page(entries: &[&Entry], query: &str) -> Result<String, ListError> {
    let (mut limit, mut after, mut before) = (None, None, None);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_decode(&value.replace('+', " ")).ok_or(ListError::BadLimit);
        match name {
            "limit" => limit = Some(value?),
            "after_id" => after = Some(value.map_err(|_| ListError::UnknownCursor("after_id"))?),
            "before_id" => before = Some(value.map_err(|_| ListError::UnknownCursor("before_id"))?),
            _ => {}
        }
    }
    let limit = match limit {
        None => DEFAULT_LIMIT,
        Some(text) => match text.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => return Err(ListError::BadLimit),
        },
    };
    let position =
        |id: &str, which| entries.iter().position(|e| e.id == id).ok_or(ListError::UnknownCursor(which));
    let (start, end, has_more) = match (after, before) {
        (Some(_), Some(_)) => return Err(ListError::BothCursors),
        (Some(id), None) => {
            let start = position(&id, "after_id")? + 1;
            let end = entries.len().min(start + limit);
            (start, end, end < entries.len())
        }
        (None, Some(id)) => {
            let end = position(&id, "before_id")?;
            let start = end.saturating_sub(limit);
            (start, end, start > 0)
        }
        (None, None) => {
            let end = entries.len().min(limit);
            (0, end, end < entries.len())
        }
    };
    let page = entries.get(start..end).unwrap_or_default();
    let id_at = |e: Option<&&Entry>| e.map_or(Value::Null, |e| Value::from(e.id.as_str()));
    Ok(json!({
        "data": page.iter().map(|e| e.to_json()).collect::<Vec<_>>(),
        "has_more": has_more,
        "first_id": id_at(page.first()),
        "last_id": id_at(page.last()),
    })
    .to_string())
}

/// The `GET /v1/models/{id}` answer, or `None` (404) for an id the user may not use or that does
/// not exist: the two are not told apart.
pub fn one(entries: &[&Entry], id: &str) -> Option<String> {
    entries.iter().find(|e| e.id == id).map(|e| e.to_json().to_string())
}

/// Why a request body is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// 403: the model is not one of the user's.
    NotAllowed(String),
    /// 400: no top-level string `model` (absent, or another type).
    NoModel,
    /// 400: a model id over `MAX_MODEL_BYTES`.
    ModelTooLong,
    /// 400: two top-level `model` keys.
    DuplicateModel,
    /// 400: not JSON.
    NotJson,
    /// 403: message batches while models are enforced.
    Batch,
}

impl Refusal {
    pub fn client_message(&self) -> String {
        match self {
            Refusal::NotAllowed(model) => format!("model {model} is not available to you"),
            Refusal::NoModel => "model: a top-level string field is required".to_owned(),
            Refusal::ModelTooLong => format!("model: longer than {MAX_MODEL_BYTES} bytes"),
            Refusal::DuplicateModel => "model: the field appears more than once".to_owned(),
            Refusal::NotJson => "the request body is not valid JSON".to_owned(),
            Refusal::Batch => {
                "message batches are not available through this gateway: send each request to /v1/messages"
                    .to_owned()
            }
        }
    }
}

/// The enforcement state of one request body: fed each chunk before it is passed on, it says
/// whether that chunk may go (`decide`). The body ends with the host's end-of-stream flag or when
/// `content-length` bytes have arrived (Envoy may hand over that chunk without the flag, and the
/// upstream then holds a complete body).
#[derive(Debug)]
pub struct BodyGate {
    scanner: Scanner<'static>,
    hits: Vec<Hit>,
    model: Option<Found>,
    error: Option<ScanError>,
    received: u64,
    content_length: Option<u64>,
    ended: bool,
}

impl BodyGate {
    pub fn new(content_length: Option<u64>) -> BodyGate {
        BodyGate {
            scanner: Scanner::new(MODEL_WATCH),
            hits: Vec::new(),
            model: None,
            error: None,
            received: 0,
            content_length,
            ended: false,
        }
    }

    /// Reads the next chunk of the body.
    pub fn read(&mut self, chunk: &[u8], end_of_stream: bool) {
        self.received += chunk.len() as u64;
        if self.error.is_none() {
            if let Err(e) = self.scanner.feed(chunk, &mut self.hits) {
                self.error = Some(e);
            }
            if self.model.is_none() {
                self.model = self.hits.drain(..).next().map(|hit| hit.found);
            }
        }
        self.ended |= end_of_stream || self.content_length.is_some_and(|n| self.received >= n);
        if self.ended && self.error.is_none() {
            self.error = self.scanner.finish().err();
        }
    }

    /// The verdict on what has been read: `None` lets the chunk go, `Some` refuses the request.
    /// Undecided is `None` only while the body has not ended.
    pub fn decide(&self, may_use: impl Fn(&str) -> bool) -> Option<Refusal> {
        match (&self.model, self.error) {
            (Some(Found::Str(model)), _) if !may_use(model) => Some(Refusal::NotAllowed(model.clone())),
            (_, Some(ScanError::DuplicateKey { .. })) => Some(Refusal::DuplicateModel),
            (_, Some(ScanError::Invalid { .. })) => Some(Refusal::NotJson),
            (Some(Found::TooLong), _) => Some(Refusal::ModelTooLong),
            (Some(Found::Str(_)), None) => None,
            (Some(_), None) => Some(Refusal::NoModel),
            (None, None) if self.ended => Some(Refusal::NoModel),
            (None, None) => None,
        }
    }

    /// The model id, once read (for logs and the usage record).
    pub fn model(&self) -> Option<&str> {
        match &self.model {
            Some(Found::Str(model)) => Some(model),
            _ => None,
        }
    }
}

/// What the filter does with a request's models part at one of its events.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Let the request (or this body chunk) go on.
    Continue,
    /// Hold this chunk: Envoy buffers it until the request is decided.
    Hold,
    /// Answer the request instead of letting it go on; nothing more goes upstream.
    Answer(Answer),
}

/// An answer the filter sends for `models`.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// 200: a `/v1/models` page or one entry (JSON).
    Found(String),
    /// 404 for `/v1/models/{id}`.
    NotFound(String),
    /// 400: a bad `/v1/models` query.
    BadQuery(ListError),
    /// 403/400: the body of an enforced request.
    Refused(Refusal),
}

/// Where one request stands with `models`, from its headers to its last body chunk. A chunk that
/// arrives while authentication is pending is held; once the request is allowed, what was held is
/// read from the buffer before anything is released, so no chunk of an enforced body passes
/// unscanned, and the chunk that ends the body never passes undecided.
#[derive(Debug)]
pub enum RequestGate {
    /// Authentication not decided yet.
    Undecided { body_seen: bool, end_seen: bool },
    /// Allowed, and nothing of it is enforced.
    Passing,
    /// An enforced body, for a user with these groups.
    Gated { gate: Box<BodyGate>, groups: Vec<String> },
    /// Answered: nothing more goes upstream.
    Answered,
}

impl RequestGate {
    /// The request's headers arrived (`end_of_stream`: it has no body).
    pub fn new(end_of_stream: bool) -> RequestGate {
        RequestGate::Undecided { body_seen: false, end_seen: end_of_stream }
    }

    /// The request was allowed, for a user with `groups`. `buffered` reads what Envoy held while
    /// authentication was pending (`None` if it cannot be read); it is called only if a chunk was.
    pub fn allowed<'a>(
        &mut self,
        models: &Models,
        method: &str,
        path: &str,
        content_length: Option<u64>,
        groups: Vec<String>,
        buffered: impl FnOnce() -> Option<&'a [u8]>,
    ) -> Step {
        let (body_seen, end_seen) = match self {
            RequestGate::Undecided { body_seen, end_seen } => (*body_seen, *end_seen),
            _ => (false, false),
        };
        match models.route(method, path) {
            Route::Other => {
                *self = RequestGate::Passing;
                Step::Continue
            }
            Route::List(query) => self.answer(match list_page(&models.entries_for(&groups), &query) {
                Ok(body) => Answer::Found(body),
                Err(e) => Answer::BadQuery(e),
            }),
            Route::One(id) => self.answer(match one(&models.entries_for(&groups), &id) {
                Some(body) => Answer::Found(body),
                None => Answer::NotFound(id),
            }),
            Route::Batch => self.answer(Answer::Refused(Refusal::Batch)),
            Route::Enforced => {
                let mut gate = Box::new(BodyGate::new(content_length));
                let held = if body_seen {
                    match buffered() {
                        Some(held) => held,
                        None => return self.answer(Answer::Refused(Refusal::NotJson)),
                    }
                } else {
                    &[]
                };
                // `content-length: 0` is a complete body already, whatever callbacks follow.
                if body_seen || end_seen || content_length == Some(0) {
                    gate.read(held, end_seen);
                }
                self.check(models, gate, groups)
            }
        }
    }

    /// A body chunk is about to be passed on. `chunk` reads it (`None` if it cannot be read whole).
    pub fn body<'a>(
        &mut self,
        models: &Models,
        chunk: impl FnOnce() -> Option<&'a [u8]>,
        end_of_stream: bool,
    ) -> Step {
        match std::mem::replace(self, RequestGate::Answered) {
            RequestGate::Undecided { end_seen, .. } => {
                *self = RequestGate::Undecided { body_seen: true, end_seen: end_seen || end_of_stream };
                Step::Hold
            }
            RequestGate::Passing => {
                *self = RequestGate::Passing;
                Step::Continue
            }
            RequestGate::Answered => Step::Hold,
            RequestGate::Gated { mut gate, groups } => match chunk() {
                Some(chunk) => {
                    gate.read(chunk, end_of_stream);
                    self.check(models, gate, groups)
                }
                None => self.answer(Answer::Refused(Refusal::NotJson)),
            },
        }
    }

    /// `Some` while this gate scans the body (`models.enforce`), with the model it has read so far:
    /// the usage record takes it from here instead of scanning the same bytes again.
    pub fn enforced_model(&self) -> Option<Option<&str>> {
        match self {
            RequestGate::Gated { gate, .. } => Some(gate.model()),
            _ => None,
        }
    }

    /// Request trailers arrived: the body has ended (without an end-of-stream chunk).
    pub fn trailers(&mut self, models: &Models) -> Step {
        match std::mem::replace(self, RequestGate::Answered) {
            RequestGate::Undecided { body_seen, .. } => {
                *self = RequestGate::Undecided { body_seen, end_seen: true };
                Step::Hold
            }
            RequestGate::Passing => {
                *self = RequestGate::Passing;
                Step::Continue
            }
            RequestGate::Answered => Step::Hold,
            RequestGate::Gated { mut gate, groups } => {
                gate.read(b"", true);
                self.check(models, gate, groups)
            }
        }
    }

    /// The gate's verdict on what it has read: go on (and keep gating), or refuse.
    fn check(&mut self, models: &Models, gate: Box<BodyGate>, groups: Vec<String>) -> Step {
        match gate.decide(|model| models.may_use(&groups, model)) {
            Some(refusal) => self.answer(Answer::Refused(refusal)),
            None => {
                *self = RequestGate::Gated { gate, groups };
                Step::Continue
            }
        }
    }

    fn answer(&mut self, answer: Answer) -> Step {
        *self = RequestGate::Answered;
        Step::Answer(answer)
    }
}

/// `%XX` escapes decoded; `None` for a bad escape or a result that is not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let mut out = Vec::with_capacity(text.len());
    let mut bytes = text.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let high = char::from(bytes.next()?).to_digit(16)?;
            let low = char::from(bytes.next()?).to_digit(16)?;
            out.push(u8::try_from(high << 4 | low).ok()?);
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, groups: Option<&[&str]>) -> Entry {
        Entry {
            id: id.into(),
            display_name: id.to_uppercase(),
            created_at: "2025-01-01T00:00:00Z".into(),
            groups: groups.map(|g| g.iter().map(|s| (*s).to_owned()).collect()),
        }
    }

    fn catalog() -> Vec<Entry> {
        vec![
            entry("a", None),
            entry("b", Some(&["eng"])),
            entry("c", Some(&["eng", "research"])),
            entry("d", None),
            entry("e", Some(&["research"])),
        ]
    }

    fn page(groups: &[&str], query: &str) -> Result<Value, ListError> {
        let models = Models { catalog: catalog(), serve_list: true, enforce: false };
        let groups: Vec<String> = groups.iter().map(|g| (*g).to_owned()).collect();
        list_page(&models.entries_for(&groups), query).map(|body| serde_json::from_str(&body).unwrap())
    }

    fn ids(page: &Value) -> Vec<&str> {
        page["data"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap()).collect()
    }

    #[test]
    fn entries_per_group() {
        let models = Models { catalog: catalog(), serve_list: true, enforce: true };
        let of = |groups: &[&str]| {
            let groups: Vec<String> = groups.iter().map(|g| (*g).to_owned()).collect();
            models.entries_for(&groups).iter().map(|e| e.id.clone()).collect::<Vec<_>>()
        };
        assert_eq!(of(&[]), ["a", "d"]);
        assert_eq!(of(&["eng"]), ["a", "b", "c", "d"]);
        assert_eq!(of(&["research", "other"]), ["a", "c", "d", "e"]);
        assert_eq!(of(&["ENG"]), ["a", "d"]);
        assert!(models.may_use(&["eng".to_owned()], "b"));
        assert!(!models.may_use(&[], "b"));
        assert!(!models.may_use(&["eng".to_owned()], "zzz"));
    }

    #[test]
    fn list_pages_like_the_messages_api() {
        let all = page(&["eng", "research"], "").unwrap();
        assert_eq!(ids(&all), ["a", "b", "c", "d", "e"]);
        assert_eq!(
            (all["has_more"].as_bool(), all["first_id"].as_str(), all["last_id"].as_str()),
            (Some(false), Some("a"), Some("e"))
        );
        assert_eq!(
            all["data"][1],
            json!({"type": "model", "id": "b", "display_name": "B", "created_at": "2025-01-01T00:00:00Z"})
        );
        let first = page(&["eng", "research"], "limit=2").unwrap();
        assert_eq!((ids(&first), first["has_more"].as_bool()), (vec!["a", "b"], Some(true)));
        let next = page(&["eng", "research"], "limit=2&after_id=b").unwrap();
        assert_eq!((ids(&next), next["has_more"].as_bool()), (vec!["c", "d"], Some(true)));
        let last = page(&["eng", "research"], "after_id=d&limit=2").unwrap();
        assert_eq!((ids(&last), last["has_more"].as_bool()), (vec!["e"], Some(false)));
        let end = page(&["eng", "research"], "after_id=e").unwrap();
        assert_eq!((ids(&end), end["has_more"].as_bool()), (vec![], Some(false)));
        assert_eq!((end["first_id"].clone(), end["last_id"].clone()), (Value::Null, Value::Null));
        let before = page(&["eng", "research"], "before_id=e&limit=2").unwrap();
        assert_eq!((ids(&before), before["has_more"].as_bool()), (vec!["c", "d"], Some(true)));
        let before = page(&["eng", "research"], "before_id=c&limit=5").unwrap();
        assert_eq!((ids(&before), before["has_more"].as_bool()), (vec!["a", "b"], Some(false)));
        assert_eq!(ids(&page(&[], "limit=1000&beta=true").unwrap()), ["a", "d"]);
        assert_eq!(page(&[], "limit=0"), Err(ListError::BadLimit));
        assert_eq!(page(&[], "limit=1001"), Err(ListError::BadLimit));
        assert_eq!(page(&[], "limit=x"), Err(ListError::BadLimit));
        assert_eq!(page(&[], "after_id=a&before_id=d"), Err(ListError::BothCursors));
        // A model the user may not use is no cursor, as if it did not exist.
        assert_eq!(page(&[], "after_id=b"), Err(ListError::UnknownCursor("after_id")));
        assert_eq!(page(&[], "before_id=nope"), Err(ListError::UnknownCursor("before_id")));
    }

    #[test]
    fn one_entry_or_none() {
        let models = Models { catalog: catalog(), serve_list: true, enforce: false };
        let eng = ["eng".to_owned()];
        let entries = models.entries_for(&eng);
        let body: Value = serde_json::from_str(&one(&entries, "b").unwrap()).unwrap();
        assert_eq!(body["id"], "b");
        assert_eq!(one(&entries, "e"), None);
        assert_eq!(one(&entries, "nope"), None);
    }

    #[test]
    fn routes() {
        let models = Models { catalog: vec![], serve_list: true, enforce: true };
        assert_eq!(models.route("POST", "/v1/messages"), Route::Enforced);
        assert_eq!(models.route("POST", "/v1/messages?beta=true"), Route::Enforced);
        assert_eq!(models.route("POST", "//v1/messages/"), Route::Enforced);
        assert_eq!(models.route("POST", "/v1/%6Dessages/count_tokens"), Route::Enforced);
        assert_eq!(models.route("POST", "/v1/messages/batches"), Route::Batch);
        assert_eq!(models.route("POST", "/v1//messages/batches/"), Route::Batch);
        assert_eq!(models.route("GET", "/v1/messages/batches"), Route::Other);
        assert_eq!(models.route("POST", "/v1/messages/batches/msgbatch_1/cancel"), Route::Other);
        let open = Models { catalog: vec![], serve_list: false, enforce: false };
        assert_eq!(open.route("POST", "/v1/messages/batches"), Route::Other);
        assert_eq!(models.route("GET", "/v1/models?limit=5"), Route::List("limit=5".into()));
        assert_eq!(models.route("GET", "/v1/models/claude%2Dx"), Route::One("claude-x".into()));
        assert_eq!(models.route("POST", "/v1/models"), Route::Other);
        let off = Models::default();
        assert_eq!(off.route("POST", "/v1/messages"), Route::Other);
        assert_eq!(off.route("GET", "/v1/models"), Route::Other);
    }
}
