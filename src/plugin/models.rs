//! Models glue (contract: "Models"): answers `GET /v1/models[/{id}]` once a request is allowed,
//! and holds each request-body chunk of an enforced request to the `models::BodyGate` verdict
//! before it is passed on. Decisions are in `crate::models`; this file reads the body and replies.
//!
//! The state per request lives here, keyed by context id, because the hooks run from the HTTP
//! context and from the root context (a request resumed after its keys or introspection answer
//! came). A body chunk handed over while the request still waits for authentication is held
//! (`Pause`, Envoy buffers it) and scanned from the buffer once the request is allowed, before it
//! is released; a chunk handed over only after the resumption goes through the gate like any
//! other. Either way no chunk of an enforced body passes unscanned.

use std::cell::RefCell;
use std::collections::HashMap;

use log::{debug, warn};
use proxy_wasm::types::Action;

use super::host;
use super::root::Shared;
use crate::identity::Identity;
use crate::models::{self, BodyGate, Refusal, Route};
use crate::reply::{self, Reply};

enum Request {
    /// Authentication not decided yet: body chunks wait (buffered by Envoy) with the headers.
    Undecided { body_seen: bool, end_seen: bool },
    /// An enforced body, for a user with these groups.
    Gated { gate: Box<BodyGate>, groups: Vec<String> },
    /// A reply was sent; nothing more goes upstream.
    Refused,
}

thread_local! {
    static REQUESTS: RefCell<HashMap<u32, Request>> = RefCell::new(HashMap::new());
}

fn set(context_id: u32, request: Request) {
    REQUESTS.with(|r| r.borrow_mut().insert(context_id, request));
}

fn take(context_id: u32) -> Option<Request> {
    REQUESTS.with(|r| r.borrow_mut().remove(&context_id))
}

/// Hook: the request's headers arrived (before authentication).
pub fn on_request_headers(context_id: u32, end_of_stream: bool) {
    set(context_id, Request::Undecided { body_seen: false, end_seen: end_of_stream });
}

/// Hook: the request was allowed (its identity headers are set). `Some` when this module answers
/// or refuses the request instead of letting it continue.
pub fn on_allowed(
    shared: &Shared,
    context_id: u32,
    headers: &[(String, String)],
    identity: &Identity,
) -> Option<Action> {
    let (body_seen, end_seen) = match take(context_id) {
        Some(Request::Undecided { body_seen, end_seen }) => (body_seen, end_seen),
        _ => (false, false),
    };
    let header = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    let config = &shared.config.models;
    let route = config.route(header(":method").unwrap_or_default(), header(":path").unwrap_or_default());
    let groups = identity.group_names();
    match route {
        Route::Other => None,
        Route::List(query) => {
            let entries = config.entries_for(&groups);
            let reply = match models::list_page(&entries, &query) {
                Ok(body) => reply::models_answer(body),
                Err(e) => reply::bad_models_query(&e),
            };
            Some(answer(context_id, &reply))
        }
        Route::One(id) => {
            let entries = config.entries_for(&groups);
            let reply = match models::one(&entries, &id) {
                Some(body) => reply::models_answer(body),
                None => reply::model_not_found(&id),
            };
            Some(answer(context_id, &reply))
        }
        Route::Enforced => {
            let content_length = header("content-length").and_then(|v| v.trim().parse::<u64>().ok());
            let mut gate = Box::new(BodyGate::new(content_length));
            // What arrived while authentication was pending is buffered: read it all now, before
            // it is released.
            let buffered = if body_seen {
                match host::request_body(0, u32::MAX as usize) {
                    Ok(buffered) => buffered,
                    Err(_) => {
                        warn!("cannot read the buffered request body ctx=#{context_id}");
                        return Some(refuse(context_id, &Refusal::NotJson));
                    }
                }
            } else {
                Vec::new()
            };
            // `content-length: 0` is a complete body already, whatever callbacks follow.
            if body_seen || end_seen || content_length == Some(0) {
                gate.read(&buffered, end_seen);
            }
            check(shared, context_id, gate, groups)
        }
    }
}

/// Hook: a request-body chunk (`body_size` bytes) is about to be passed on.
pub fn on_request_body(shared: &Shared, context_id: u32, body_size: usize, end_of_stream: bool) -> Action {
    match take(context_id) {
        None => Action::Continue,
        Some(Request::Undecided { end_seen, .. }) => {
            set(context_id, Request::Undecided { body_seen: true, end_seen: end_seen || end_of_stream });
            Action::Pause
        }
        Some(Request::Refused) => {
            set(context_id, Request::Refused);
            Action::Pause
        }
        Some(Request::Gated { mut gate, groups }) => {
            match host::request_body(0, body_size) {
                Ok(chunk) if chunk.len() == body_size => gate.read(&chunk, end_of_stream),
                _ => {
                    warn!("cannot read the request body ctx=#{context_id}");
                    return refuse(context_id, &Refusal::NotJson);
                }
            }
            check(shared, context_id, gate, groups).unwrap_or(Action::Continue)
        }
    }
}

/// Hook: request trailers arrived: the body has ended (without an end-of-stream chunk).
pub fn on_request_trailers(shared: &Shared, context_id: u32) -> Action {
    match take(context_id) {
        None => Action::Continue,
        Some(Request::Undecided { body_seen, .. }) => {
            set(context_id, Request::Undecided { body_seen, end_seen: true });
            Action::Pause
        }
        Some(Request::Refused) => {
            set(context_id, Request::Refused);
            Action::Pause
        }
        Some(Request::Gated { mut gate, groups }) => {
            gate.read(b"", true);
            check(shared, context_id, gate, groups).unwrap_or(Action::Continue)
        }
    }
}

/// The gate's verdict on what it has read: `None` to let the chunk go (the gate is kept for the
/// next one), `Some(Pause)` once refused.
fn check(shared: &Shared, context_id: u32, gate: Box<BodyGate>, groups: Vec<String>) -> Option<Action> {
    match gate.decide(|model| shared.config.models.may_use(&groups, model)) {
        Some(refusal) => Some(refuse(context_id, &refusal)),
        None => {
            set(context_id, Request::Gated { gate, groups });
            None
        }
    }
}

fn refuse(context_id: u32, refusal: &Refusal) -> Action {
    debug!("model refused reason=\"{}\" ctx=#{context_id}", refusal_kind(refusal));
    answer(context_id, &reply::model_refusal(refusal))
}

/// For logs: the kind of refusal, never the model id the client sent.
fn refusal_kind(refusal: &Refusal) -> &'static str {
    match refusal {
        Refusal::NotAllowed(_) => "model not allowed",
        Refusal::NoModel => "no model",
        Refusal::ModelTooLong => "model too long",
        Refusal::DuplicateModel => "duplicate model",
        Refusal::NotJson => "not json",
    }
}

fn answer(context_id: u32, reply: &Reply) -> Action {
    set(context_id, Request::Refused);
    if host::send_reply(reply).is_err() {
        warn!("cannot send the models answer ctx=#{context_id}");
    }
    Action::Pause
}

/// Hook: the request is gone.
pub fn forget(context_id: u32) {
    take(context_id);
}
