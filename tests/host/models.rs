//! `models::BodyGate`: the enforcement verdict on a request body, the same wherever the body is
//! cut (every offset, 1-byte chunks), and the end of the body by flag or by `content-length`.

use gateway_filter::models::{BodyGate, Refusal, MAX_MODEL_BYTES};

const ALLOWED: &[&str] = &["claude-haiku", "claude-\u{e9}"];

fn may_use(model: &str) -> bool {
    ALLOWED.contains(&model)
}

/// The verdict after each chunk: `None` while the chunk may go on.
fn run(chunks: &[&[u8]], content_length: Option<u64>, flag_end: bool) -> Vec<Option<Refusal>> {
    let mut gate = BodyGate::new(content_length);
    let mut verdicts = Vec::new();
    for (i, chunk) in chunks.iter().enumerate() {
        gate.read(chunk, flag_end && i + 1 == chunks.len());
        let verdict = gate.decide(may_use);
        let refused = verdict.is_some();
        verdicts.push(verdict);
        if refused {
            break;
        }
    }
    verdicts
}

/// The final verdict of `body`, checked for every way of cutting it: the refusal comes on the
/// chunk that holds the byte that decides it, and the last chunk never passes undecided.
fn check(body: &str, expected: Option<Refusal>, decided_at: Option<usize>) {
    let bytes = body.as_bytes();
    let whole = run(&[bytes], None, true);
    assert_eq!(whole, std::slice::from_ref(&expected), "{body}");
    for cut in 0..=bytes.len() {
        let (head, tail) = bytes.split_at(cut);
        let len = Some(bytes.len() as u64);
        for (content_length, flag) in [(None, true), (len, false), (len, true)] {
            let verdicts = run(&[head, tail], content_length, flag);
            assert_eq!(verdicts.last().unwrap(), &expected, "cut {cut} {content_length:?} {body}");
            if let (Some(at), Some(_)) = (decided_at, &expected) {
                // Refused on the chunk holding byte `at`, not later.
                let chunk = usize::from(at >= cut);
                assert_eq!(verdicts.len(), chunk + 1, "cut {cut}: {verdicts:?} {body}");
            }
        }
    }
    if bytes.is_empty() {
        return;
    }
    let ones: Vec<&[u8]> = bytes.chunks(1).collect();
    let verdicts = run(&ones, None, true);
    assert_eq!(verdicts.last().unwrap(), &expected, "1-byte chunks {body}");
    if let (Some(at), Some(_)) = (decided_at, &expected) {
        assert_eq!(verdicts.len(), at + 1, "1-byte chunks {body}");
    }
}

fn not_allowed(model: &str) -> Option<Refusal> {
    Some(Refusal::NotAllowed(model.to_owned()))
}

#[test]
fn allowed_and_refused_models_first_and_last() {
    check(r#"{"model":"claude-haiku","messages":[{"role":"user","content":"hi"}]}"#, None, None);
    let refused = r#"{"model":"claude-opus","messages":[]}"#;
    check(refused, not_allowed("claude-opus"), Some(refused.find(",").unwrap() - 1));
    let last = r#"{"messages":[{"role":"user","content":"{\"model\":\"claude-haiku\"}"}],"metadata":{"model":"claude-haiku"},"model":"claude-opus"}"#;
    check(last, not_allowed("claude-opus"), Some(last.len() - 2));
    check(r#"{"messages":[],"model":"claude-haiku"}"#, None, None);
    check(r#"{"mod\u0065l":"claude-\u00e9"}"#, None, None);
    check(r#"{"model":"claude-\u0068aiku"}"#, None, None);
    check(r#"{"model":"claude-\u00e9x"}"#, not_allowed("claude-\u{e9}x"), None);
}

#[test]
fn bodies_without_a_usable_model() {
    check(r#"{"messages":[]}"#, Some(Refusal::NoModel), None);
    check(r#"{"messages":[{"model":"claude-haiku"}]}"#, Some(Refusal::NoModel), None);
    check(r#"{"model":["claude-haiku"]}"#, Some(Refusal::NoModel), Some(9));
    check(r#"{"model":null}"#, Some(Refusal::NoModel), Some(9));
    check(r#"[{"model":"claude-haiku"}]"#, Some(Refusal::NoModel), None);
    check("", Some(Refusal::NotJson), None);
    check(
        &format!(r#"{{"model":"{}"}}"#, "m".repeat(MAX_MODEL_BYTES + 1)),
        Some(Refusal::ModelTooLong),
        None,
    );
    // Decided on the second key's closing quote.
    check(r#"{"model":"claude-haiku","model":"claude-haiku"}"#, Some(Refusal::DuplicateModel), Some(30));
    check(r#"{"model":"claude-haiku","mod\u0065l":"claude-opus"}"#, Some(Refusal::DuplicateModel), Some(35));
    // Refused before the second one is read: the first is not allowed.
    check(r#"{"model":"claude-opus","model":"claude-haiku"}"#, not_allowed("claude-opus"), None);
}

#[test]
fn invalid_json_is_refused() {
    check(r#"{"messages":[1,],"model":"claude-haiku"}"#, Some(Refusal::NotJson), Some(15));
    check(r#"{"model":"claude-haiku"}}"#, Some(Refusal::NotJson), Some(24));
    check(r#"{"model":"claude-haiku""#, Some(Refusal::NotJson), None);
    check("{\"model\":\"claude-haiku\",\"x\":\"\\ud800\"}", Some(Refusal::NotJson), None);
}

#[test]
fn the_content_length_end_is_the_end() {
    let body = br#"{"messages":[]}"#;
    let mut gate = BodyGate::new(Some(body.len() as u64));
    gate.read(body, false);
    assert_eq!(gate.decide(may_use), Some(Refusal::NoModel));
    // Without a length, the same chunk without the flag is not the end yet.
    let mut gate = BodyGate::new(None);
    gate.read(body, false);
    assert_eq!(gate.decide(may_use), None);
    gate.read(b"", true);
    assert_eq!(gate.decide(may_use), Some(Refusal::NoModel));
}

#[test]
fn ten_megabytes_before_the_model() {
    let content = "x".repeat(10 << 20);
    for (model, expected) in [("claude-haiku", None), ("claude-opus", not_allowed("claude-opus"))] {
        let body = format!(r#"{{"messages":[{{"role":"user","content":"{content}"}}],"model":"{model}"}}"#);
        let mut gate = BodyGate::new(Some(body.len() as u64));
        let chunks: Vec<&[u8]> = body.as_bytes().chunks(1 << 16).collect();
        let (last, rest) = chunks.split_last().unwrap();
        for chunk in rest {
            gate.read(chunk, false);
            assert_eq!(gate.decide(may_use), None);
        }
        gate.read(last, false);
        assert_eq!(gate.decide(may_use), expected);
        assert_eq!(gate.model(), Some(model));
    }
}

mod config {
    use gateway_filter::config::parse_config;
    use gateway_filter::models::Entry;
    use serde_json::{json, Value};

    fn with_models(models: Value) -> Value {
        json!({"api_keys": [{"name": "k", "sha256": "00".repeat(32)}], "models": models})
    }

    fn entry(extra: Value) -> Value {
        let mut e =
            json!({"id": "claude-x", "display_name": "Claude X", "created_at": "2025-05-14T00:00:00Z"});
        e.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        e
    }

    #[test]
    fn defaults_and_a_catalog() {
        let config = parse_config(&with_models(json!({}))).unwrap();
        assert!(config.models.catalog.is_empty() && !config.models.serve_list && !config.models.enforce);
        let absent = parse_config(&json!({"api_keys": [{"name": "k", "sha256": "00".repeat(32)}]})).unwrap();
        assert!(!absent.models.enforce);
        let config = parse_config(&with_models(json!({
            "catalog": [entry(json!({})), entry(json!({"id": "claude-y", "groups": ["eng"]}))],
            "serve_list": true, "enforce": true,
        })))
        .unwrap();
        assert!(config.models.serve_list && config.models.enforce);
        assert_eq!(
            config.models.catalog[1],
            Entry {
                id: "claude-y".into(),
                display_name: "Claude X".into(),
                created_at: "2025-05-14T00:00:00Z".into(),
                groups: Some(vec!["eng".into()]),
            }
        );
        assert_eq!(config.models.catalog[0].groups, None);
    }

    #[test]
    fn refused_fields_are_named() {
        let long = "m".repeat(257);
        for (models, expected) in [
            (json!([]), "models: must be an object"),
            (json!({"catalogue": []}), "models.catalogue: unknown field"),
            (json!({"enforce": "yes"}), "models.enforce: must be true or false"),
            (json!({"serve_list": 1}), "models.serve_list: must be true or false"),
            (
                json!({"enforce": true}),
                "models.enforce: needs a non-empty models.catalog (every request would be refused)",
            ),
            (json!({"catalog": {}}), "models.catalog: must be an array"),
            (json!({"catalog": [entry(json!({"id": ""}))]}), "models.catalog[0].id: must not be empty"),
            (
                json!({"catalog": [entry(json!({"id": long}))]}),
                "models.catalog[0].id: must be at most 256 bytes",
            ),
            (
                json!({"catalog": [entry(json!({})), entry(json!({}))]}),
                "models.catalog: id \"claude-x\" appears twice",
            ),
            (
                json!({"catalog": [{"id": "a", "created_at": "2025-05-14T00:00:00Z"}]}),
                "models.catalog[0].display_name: required",
            ),
            (
                json!({"catalog": [entry(json!({"created_at": "2025-05-14"}))]}),
                "models.catalog[0].created_at: must be an RFC 3339 date-time (2025-05-14T00:00:00Z)",
            ),
            (
                json!({"catalog": [entry(json!({"groups": []}))]}),
                "models.catalog[0].groups: must not be empty (leave groups out to allow everyone)",
            ),
            (
                json!({"catalog": [entry(json!({"groups": ["eng", 5]}))]}),
                "models.catalog[0].groups[1]: must be a string",
            ),
            (json!({"catalog": [entry(json!({"owner": "x"}))]}), "models.catalog[0].owner: unknown field"),
        ] {
            let error = parse_config(&with_models(models.clone())).unwrap_err();
            assert_eq!(error.to_string(), expected, "{models}");
        }
    }
}

/// `RequestGate`: one request's models events (headers, allowed, body, trailers) and what the
/// filter does at each, including chunks held while authentication is pending.
mod request_gate {
    use gateway_filter::config::parse_config;
    use gateway_filter::models::{Answer, ListError, Models, Refusal, RequestGate, Step};
    use serde_json::json;

    fn models() -> Models {
        let entry = |id: &str, groups: Option<&[&str]>| {
            let mut e = json!({"id": id, "display_name": id, "created_at": "2025-05-14T00:00:00Z"});
            if let Some(groups) = groups {
                e["groups"] = json!(groups);
            }
            e
        };
        let catalog = json!([entry("claude-haiku", None), entry("claude-opus", Some(&["ml"]))]);
        let config = json!({"api_keys": [{"name": "k", "sha256": "00".repeat(32)}],
                            "models": {"catalog": catalog, "serve_list": true, "enforce": true}});
        parse_config(&config).unwrap().models
    }

    fn groups(names: &[&str]) -> Vec<String> {
        names.iter().map(|g| (*g).to_owned()).collect()
    }

    fn no_buffer() -> Option<&'static [u8]> {
        panic!("nothing was held: the buffer must not be read")
    }

    const OPUS: &[u8] = br#"{"model":"claude-opus","max_tokens":1,"messages":[]}"#;
    const HAIKU: &[u8] = br#"{"model":"claude-haiku","max_tokens":1,"messages":[]}"#;

    #[test]
    fn chunks_held_before_the_decision_are_read_from_the_buffer() {
        let m = models();
        let mut gate = RequestGate::new(false);
        let (head, tail) = OPUS.split_at(10);
        assert_eq!(gate.body(&m, || panic!("held chunks are not read"), false), Step::Hold);
        assert_eq!(gate.body(&m, || panic!("held chunks are not read"), true), Step::Hold);
        // Allowed for a user without `ml`: the held body (all of it, ended) is refused.
        let held = [head, tail].concat();
        let step = gate.allowed(&m, "POST", "/v1/messages", None, groups(&["eng"]), || Some(&held[..]));
        assert_eq!(step, Step::Answer(Answer::Refused(Refusal::NotAllowed("claude-opus".into()))));
        // Answered: nothing more goes upstream.
        assert_eq!(gate.body(&m, || Some(&[][..]), true), Step::Hold);
        assert_eq!(gate.trailers(&m), Step::Hold);
        // The same for a user in `ml` goes on.
        let mut gate = RequestGate::new(false);
        assert_eq!(gate.body(&m, || None, true), Step::Hold);
        let step = gate.allowed(&m, "POST", "/v1/messages", None, groups(&["ml"]), || Some(OPUS));
        assert_eq!(step, Step::Continue);
        // A buffer that cannot be read is refused, never passed unscanned.
        let mut gate = RequestGate::new(false);
        assert_eq!(gate.body(&m, || None, false), Step::Hold);
        let step = gate.allowed(&m, "POST", "/v1/messages", None, groups(&["ml"]), || None);
        assert_eq!(step, Step::Answer(Answer::Refused(Refusal::NotJson)));
    }

    #[test]
    fn chunks_after_the_decision_go_through_the_gate() {
        let m = models();
        let mut gate = RequestGate::new(false);
        assert_eq!(gate.allowed(&m, "POST", "/v1/messages", None, groups(&[]), no_buffer), Step::Continue);
        let (head, tail) = HAIKU.split_at(5);
        assert_eq!(gate.body(&m, || Some(head), false), Step::Continue);
        assert_eq!(gate.body(&m, || Some(tail), false), Step::Continue);
        // The body ends with trailers: decided, and allowed.
        assert_eq!(gate.trailers(&m), Step::Continue);
        // A chunk that cannot be read whole is refused.
        let mut gate = RequestGate::new(false);
        gate.allowed(&m, "POST", "/v1/messages/count_tokens", None, groups(&[]), no_buffer);
        assert_eq!(gate.body(&m, || None, false), Step::Answer(Answer::Refused(Refusal::NotJson)));
        // A refused model on the chunk that reveals it.
        let mut gate = RequestGate::new(false);
        gate.allowed(&m, "POST", "/v1/messages", None, groups(&[]), no_buffer);
        let step = gate.body(&m, || Some(OPUS), false);
        assert_eq!(step, Step::Answer(Answer::Refused(Refusal::NotAllowed("claude-opus".into()))));
    }

    #[test]
    fn the_model_read_so_far_is_told_while_the_gate_scans() {
        let m = models();
        let mut gate = RequestGate::new(false);
        assert_eq!(gate.body(&m, || panic!("held chunks are not read"), false), Step::Hold);
        assert_eq!(gate.enforced_model(), None);
        let (head, tail) = HAIKU.split_at(12);
        assert_eq!(
            gate.allowed(&m, "POST", "/v1/messages", None, groups(&[]), || Some(head)),
            Step::Continue
        );
        assert_eq!(gate.enforced_model(), Some(None));
        assert_eq!(gate.body(&m, || Some(tail), true), Step::Continue);
        assert_eq!(gate.enforced_model(), Some(Some("claude-haiku")));
        // Not enforced: nothing is scanned, so nothing is told.
        let mut gate = RequestGate::new(false);
        gate.allowed(&m, "POST", "/v1/complete", None, groups(&[]), no_buffer);
        assert_eq!(gate.enforced_model(), None);
    }

    #[test]
    fn empty_bodies_are_decided_when_allowed() {
        let m = models();
        // No body at all (end of stream with the headers), or `content-length: 0`: an empty body is
        // not JSON (400), decided before anything goes upstream.
        let mut gate = RequestGate::new(true);
        let step = gate.allowed(&m, "POST", "/v1/messages", None, groups(&[]), no_buffer);
        assert_eq!(step, Step::Answer(Answer::Refused(Refusal::NotJson)));
        let mut gate = RequestGate::new(false);
        let step = gate.allowed(&m, "POST", "/v1/messages", Some(0), groups(&[]), no_buffer);
        assert_eq!(step, Step::Answer(Answer::Refused(Refusal::NotJson)));
    }

    #[test]
    fn lists_and_other_routes() {
        let m = models();
        let mut gate = RequestGate::new(true);
        let Step::Answer(Answer::Found(page)) =
            gate.allowed(&m, "GET", "/v1/models", None, groups(&[]), no_buffer)
        else {
            panic!("a list page")
        };
        let page: serde_json::Value = serde_json::from_str(&page).unwrap();
        assert_eq!(page["data"].as_array().unwrap().len(), 1, "{page}");
        let mut gate = RequestGate::new(true);
        let step = gate.allowed(&m, "GET", "/v1/models/claude-opus", None, groups(&["eng"]), no_buffer);
        assert_eq!(step, Step::Answer(Answer::NotFound("claude-opus".into())));
        let mut gate = RequestGate::new(true);
        let step = gate.allowed(&m, "GET", "/v1/models?limit=0", None, groups(&[]), no_buffer);
        assert_eq!(step, Step::Answer(Answer::BadQuery(ListError::BadLimit)));
        // Any other path passes, body and all, unscanned.
        let mut gate = RequestGate::new(false);
        assert_eq!(gate.allowed(&m, "POST", "/v1/complete", None, groups(&[]), no_buffer), Step::Continue);
        assert_eq!(gate.body(&m, || panic!("not read"), true), Step::Continue);
        assert_eq!(gate.trailers(&m), Step::Continue);
    }
}
