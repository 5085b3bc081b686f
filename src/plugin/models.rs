//! Models glue (contract: "Models"): answers `GET /v1/models[/{id}]` once a request is allowed,
//! and holds each request-body chunk of an enforced request to the `models::BodyGate` verdict
//! before it is passed on. Decisions are in `crate::models`; this file reads the body and replies.
//!
//! The state per request lives in `Shared::models`, keyed by context id, because the hooks run from
//! the HTTP context and from the root context (a request resumed after its keys or introspection
//! answer came). A body chunk handed over while the request still waits for authentication is held
//! (`Pause`, Envoy buffers it) and scanned from the buffer once the request is allowed, before it
//! is released; a chunk handed over only after the resumption goes through the gate like any
//! other. Either way no chunk of an enforced body passes unscanned.

use log::{debug, warn};
use proxy_wasm::types::Action;

use super::host;
use super::shared::Shared;
use crate::identity::Identity;
use crate::ids::ContextId;
use crate::models::{self, BodyGate, Refusal, Route};
use crate::reply::{self, Reply};

pub enum Request {
    /// Authentication not decided yet: body chunks wait (buffered by Envoy) with the headers.
    Undecided { body_seen: bool, end_seen: bool },
    /// An enforced body, for a user with these groups.
    Gated { gate: Box<BodyGate>, groups: Vec<String> },
    /// A reply was sent; nothing more goes upstream.
    Refused,
}

fn set(shared: &Shared, context: ContextId, request: Request) {
    shared.models.borrow_mut().insert(context, request);
}

fn take(shared: &Shared, context: ContextId) -> Option<Request> {
    shared.models.borrow_mut().remove(&context)
}

/// Hook: the request's headers arrived (before authentication).
pub fn on_request_headers(shared: &Shared, context: ContextId, end_of_stream: bool) {
    set(shared, context, Request::Undecided { body_seen: false, end_seen: end_of_stream });
}

/// Hook: the request was allowed (its identity headers are set). `Some` when this module answers
/// or refuses the request instead of letting it continue.
pub fn on_allowed(
    shared: &Shared,
    context: ContextId,
    headers: &[(String, String)],
    identity: &Identity,
) -> Option<Action> {
    let (body_seen, end_seen) = match take(shared, context) {
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
                Ok(body) => reply::models_answer(body, &host::request_id()),
                Err(e) => reply::bad_models_query(&e, &host::request_id()),
            };
            Some(answer(shared, context, &reply))
        }
        Route::One(id) => {
            let entries = config.entries_for(&groups);
            let reply = match models::one(&entries, &id) {
                Some(body) => reply::models_answer(body, &host::request_id()),
                None => reply::model_not_found(&id, &host::request_id()),
            };
            Some(answer(shared, context, &reply))
        }
        Route::Enforced => {
            let content_length = header("content-length").and_then(|v| v.trim().parse::<u64>().ok());
            let mut gate = Box::new(BodyGate::new(content_length));
            // What arrived while authentication was pending is buffered: read it all now, before
            // it is released.
            let buffered = if body_seen {
                match host::request_body(u32::MAX as usize) {
                    Some(buffered) => buffered,
                    None => {
                        warn!("cannot read the buffered request body ctx={context}");
                        return Some(refuse(shared, context, &Refusal::NotJson));
                    }
                }
            } else {
                Vec::new()
            };
            // `content-length: 0` is a complete body already, whatever callbacks follow.
            if body_seen || end_seen || content_length == Some(0) {
                gate.read(&buffered, end_seen);
            }
            check(shared, context, gate, groups)
        }
    }
}

/// Hook: a request-body chunk (`body_size` bytes) is about to be passed on.
pub fn on_request_body(shared: &Shared, context: ContextId, body_size: usize, end_of_stream: bool) -> Action {
    match take(shared, context) {
        None => Action::Continue,
        Some(Request::Undecided { end_seen, .. }) => {
            set(shared, context, Request::Undecided { body_seen: true, end_seen: end_seen || end_of_stream });
            Action::Pause
        }
        Some(Request::Refused) => {
            set(shared, context, Request::Refused);
            Action::Pause
        }
        Some(Request::Gated { mut gate, groups }) => {
            match host::request_body(body_size) {
                Some(chunk) if chunk.len() == body_size => gate.read(&chunk, end_of_stream),
                _ => {
                    warn!("cannot read the request body ctx={context}");
                    return refuse(shared, context, &Refusal::NotJson);
                }
            }
            check(shared, context, gate, groups).unwrap_or(Action::Continue)
        }
    }
}

/// Hook: request trailers arrived: the body has ended (without an end-of-stream chunk).
pub fn on_request_trailers(shared: &Shared, context: ContextId) -> Action {
    match take(shared, context) {
        None => Action::Continue,
        Some(Request::Undecided { body_seen, .. }) => {
            set(shared, context, Request::Undecided { body_seen, end_seen: true });
            Action::Pause
        }
        Some(Request::Refused) => {
            set(shared, context, Request::Refused);
            Action::Pause
        }
        Some(Request::Gated { mut gate, groups }) => {
            gate.read(b"", true);
            check(shared, context, gate, groups).unwrap_or(Action::Continue)
        }
    }
}

/// The gate's verdict on what it has read: `None` to let the chunk go (the gate is kept for the
/// next one), `Some(Pause)` once refused.
fn check(shared: &Shared, context: ContextId, gate: Box<BodyGate>, groups: Vec<String>) -> Option<Action> {
    match gate.decide(|model| shared.config.models.may_use(&groups, model)) {
        Some(refusal) => Some(refuse(shared, context, &refusal)),
        None => {
            set(shared, context, Request::Gated { gate, groups });
            None
        }
    }
}

fn refuse(shared: &Shared, context: ContextId, refusal: &Refusal) -> Action {
    debug!("model refused reason=\"{}\" ctx={context}", refusal_kind(refusal));
    answer(shared, context, &reply::model_refusal(refusal, &host::request_id()))
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

fn answer(shared: &Shared, context: ContextId, reply: &Reply) -> Action {
    set(shared, context, Request::Refused);
    if host::send_reply(reply).is_err() {
        warn!("cannot send the models answer ctx={context}");
    }
    Action::Pause
}

/// Hook: the request is gone.
pub fn forget(shared: &Shared, context: ContextId) {
    if let Ok(mut requests) = shared.models.try_borrow_mut() {
        requests.remove(&context);
    }
}
