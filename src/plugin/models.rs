//! Models glue (contract: "Models"): feeds each request's events to its `models::RequestGate`
//! (headers, allowed, body chunks, trailers), reads the body when the gate asks, and sends the
//! answers it decides. The gates live in `Shared::models`, keyed by context id, because a paused
//! request is allowed from the root context.

use std::cell::OnceCell;

use log::{debug, warn};
use proxy_wasm::types::Action;

use super::host;
use super::shared::Shared;
use crate::identity::Identity;
use crate::ids::ContextId;
use crate::models::{Answer, Refusal, RequestGate, Step};
use crate::reply;

/// Hook: the request's headers arrived (before authentication).
pub fn on_request_headers(shared: &Shared, context: ContextId, end_of_stream: bool) {
    shared.models.borrow_mut().insert(context, RequestGate::new(end_of_stream));
}

/// Hook: the request was allowed (its identity headers are set). `Some` when this module answers
/// the request instead of letting it continue.
pub fn on_allowed(
    shared: &Shared,
    context: ContextId,
    headers: &[(String, String)],
    identity: &Identity,
) -> Option<Action> {
    let header = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    let content_length = header("content-length").and_then(|v| v.trim().parse::<u64>().ok());
    let mut gate = take(shared, context).unwrap_or_else(|| RequestGate::new(false));
    // What arrived while authentication was pending is buffered: the whole of it.
    let held = OnceCell::new();
    let step = gate.allowed(
        &shared.config.models,
        header(":method").unwrap_or_default(),
        header(":path").unwrap_or_default(),
        content_length,
        identity.group_names(),
        || held.get_or_init(|| host::request_body(u32::MAX as usize)).as_deref(),
    );
    match carry_out(shared, context, gate, step) {
        Action::Continue => None,
        action => Some(action),
    }
}

/// Hook: a request-body chunk is about to be passed on; `chunk` reads it (`None`: not whole).
pub fn on_request_body<'a>(
    shared: &Shared,
    context: ContextId,
    chunk: impl FnOnce() -> Option<&'a [u8]>,
    end_of_stream: bool,
) -> Action {
    let Some(mut gate) = take(shared, context) else { return Action::Continue };
    let step = gate.body(&shared.config.models, chunk, end_of_stream);
    carry_out(shared, context, gate, step)
}

/// `f` of the model the gate has read so far, when the gate scans this request's body.
pub fn enforced_model<R>(
    shared: &Shared,
    context: ContextId,
    f: impl FnOnce(Option<&str>) -> R,
) -> Option<R> {
    shared.models.borrow().get(&context).and_then(RequestGate::enforced_model).map(f)
}

/// Hook: request trailers arrived.
pub fn on_request_trailers(shared: &Shared, context: ContextId) -> Action {
    let Some(mut gate) = take(shared, context) else { return Action::Continue };
    let step = gate.trailers(&shared.config.models);
    carry_out(shared, context, gate, step)
}

/// Hook: the request is gone.
pub fn forget(shared: &Shared, context: ContextId) {
    if let Ok(mut requests) = shared.models.try_borrow_mut() {
        requests.remove(&context);
    }
}

fn take(shared: &Shared, context: ContextId) -> Option<RequestGate> {
    shared.models.borrow_mut().remove(&context)
}

/// Keeps the gate for the request's next event and carries out the step (no borrow is held across
/// the host calls).
fn carry_out(shared: &Shared, context: ContextId, gate: RequestGate, step: Step) -> Action {
    shared.models.borrow_mut().insert(context, gate);
    match step {
        Step::Continue => Action::Continue,
        Step::Hold => Action::Pause,
        Step::Answer(answer) => {
            let request_id = host::request_id();
            let reply = match &answer {
                Answer::Found(body) => reply::models_answer(body.clone(), &request_id),
                Answer::NotFound(id) => reply::model_not_found(id, &request_id),
                Answer::BadQuery(e) => reply::bad_models_query(e, &request_id),
                Answer::Refused(refusal) => {
                    debug!("model refused reason=\"{}\" ctx={context}", refusal_kind(refusal));
                    reply::model_refusal(refusal, &request_id)
                }
            };
            if host::send_reply(&reply).is_err() {
                warn!("cannot send the models answer ctx={context}");
            }
            Action::Pause
        }
    }
}

/// For logs: the kind of refusal, never the model id the client sent.
fn refusal_kind(refusal: &Refusal) -> &'static str {
    match refusal {
        Refusal::NotAllowed(_) => "model not allowed",
        Refusal::NoModel => "no model",
        Refusal::ModelTooLong => "model too long",
        Refusal::DuplicateModel => "duplicate model",
        Refusal::NotJson => "not json",
        Refusal::Batch => "message batch",
    }
}
