//! Per-request glue: strip spoofable headers, ask `authn` for a ruling, carry it out; wake the
//! requests that waited for keys or for an introspection answer.

use std::cell::OnceCell;
use std::rc::Rc;

use log::{debug, warn};
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;

use super::host;
use super::models;
use super::shared::Shared;
use super::usage::{self, RequestUsage};
use crate::authn::{credential_headers, rule_on_answer, Ruling};
use crate::ids::{CallId, ContextId, SourceId};
use crate::metrics::{self, Metric};
use crate::opaque::{build_call, Answer, Digest};
use crate::reason::AuthError;
use crate::reply;
use crate::vm_state::WaitOn;

pub struct HttpFilter {
    pub context: ContextId,
    /// `None` only if the host creates requests for a plugin whose configuration failed.
    pub shared: Option<Rc<Shared>>,
    pub usage: RequestUsage,
}

impl Context for HttpFilter {
    /// Introspection calls made while this request was being decided answer here.
    fn on_http_call_response(&mut self, token_id: u32, _headers: usize, body_size: usize, _trailers: usize) {
        if let Some(shared) = &self.shared {
            on_introspection_response(shared, CallId(token_id), body_size);
        }
    }
}

impl HttpContext for HttpFilter {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        match &self.shared {
            Some(shared) => {
                models::on_request_headers(shared, self.context, end_of_stream);
                process_request(shared, self.context)
            }
            None => send_denial(AuthError::NotConfigured, self.context),
        }
    }

    // Models may hold a chunk until its verdict; usage looks at each chunk let through. The chunk
    // is copied out of the host once, when the first of them reads it.
    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let Some(shared) = &self.shared else { return Action::Pause };
        let chunk = OnceCell::new();
        let read = || {
            chunk.get_or_init(|| host::request_body(body_size).filter(|c| c.len() == body_size)).as_deref()
        };
        let action = models::on_request_body(shared, self.context, read, end_of_stream);
        if action == Action::Continue {
            self.usage.request_body(shared, self.context, read, end_of_stream);
        }
        action
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        match &self.shared {
            Some(shared) => models::on_request_trailers(shared, self.context),
            None => Action::Pause,
        }
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if let Some(shared) = &self.shared {
            self.usage.response_headers(shared, self.context);
        }
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if let Some(shared) = &self.shared {
            self.usage.response_body(shared, self.context, body_size, end_of_stream);
        }
        Action::Continue
    }

    fn on_log(&mut self) {
        if let Some(shared) = &self.shared {
            self.usage.log(shared, self.context);
        }
    }
}

impl Drop for HttpFilter {
    /// A request that went away (client gone) must not be resumed, and the host cancels the calls
    /// it made: whoever waits on those answers gets a 503 instead of waiting forever.
    fn drop(&mut self) {
        let Some(shared) = &self.shared else { return };
        models::forget(shared, self.context);
        usage::forget(shared, self.context);
        let abandoned = match shared.state.try_borrow_mut() {
            Ok(mut state) => state.forget(self.context),
            Err(_) => return,
        };
        // Nearly every request ends with no call of its own in flight: no clock read for it.
        if abandoned.is_empty() {
            return;
        }
        let now = host::now_seconds();
        for digest in abandoned {
            let Ok(failed) = shared.state.try_borrow_mut().map(|mut state| state.abandon(&digest, now))
            else {
                continue;
            };
            wake_for_answer(shared, digest, &failed);
        }
    }
}

/// Reads the request headers and removes the identity headers a client may have sent, and their
/// underscore twins (`HeaderNames::spoofed`): first, whatever is decided next.
fn read_and_strip(shared: &Shared) -> Result<Vec<(String, String)>, AuthError> {
    let headers = host::request_headers().map_err(|_| AuthError::Malformed)?;
    for name in shared.config.headers.spoofed(&headers) {
        host::remove_request_header(name).map_err(|_| AuthError::Malformed)?;
    }
    Ok(headers)
}

/// Rules on the request whose context is the effective one and carries the ruling out. Called when
/// its headers arrive and again, when keys it waited for have come.
fn process_request(shared: &Shared, context: ContextId) -> Action {
    let headers = match read_and_strip(shared) {
        Ok(headers) => headers,
        Err(reason) => return deny(shared, reason, context),
    };
    let now = host::now_seconds();
    let ruling = shared.state.borrow_mut().rule(&shared.config, &headers, now);
    carry_out(shared, context, &headers, ruling, now)
}

/// Carries out a ruling made elsewhere (an introspection answer shared by several requests).
fn resolve(shared: &Shared, context: ContextId, ruling: Ruling) -> Action {
    match read_and_strip(shared) {
        Ok(headers) => carry_out(shared, context, &headers, ruling, host::now_seconds()),
        Err(reason) => deny(shared, reason, context),
    }
}

fn carry_out(
    shared: &Shared,
    context: ContextId,
    headers: &[(String, String)],
    ruling: Ruling,
    now: u64,
) -> Action {
    match ruling {
        Ruling::Allow(identity) => {
            for name in credential_headers(&shared.config, headers) {
                if host::remove_request_header(name).is_err() {
                    return deny(shared, AuthError::Malformed, context);
                }
            }
            for (name, value) in identity.headers(&shared.config.headers) {
                if host::set_request_header(name, value).is_err() {
                    return deny(shared, AuthError::Malformed, context);
                }
            }
            if usage::on_allowed(shared, context, headers, &identity).is_err() {
                return deny(shared, AuthError::Malformed, context);
            }
            debug!("allowed provider={} ctx={context}", identity.provider);
            shared.metrics.increment(Metric::Allowed);
            models::on_allowed(shared, context, headers, &identity).unwrap_or(Action::Continue)
        }
        Ruling::Deny(reason) => deny(shared, reason, context),
        Ruling::WaitForKeys(source) => {
            debug!("waiting for keys source={source} ctx={context}");
            shared.state.borrow_mut().wait(context, WaitOn::Keys(source));
            Action::Pause
        }
        Ruling::RefreshKeys(source) => {
            debug!("unknown kid: refreshing keys source={source} ctx={context}");
            shared.state.borrow_mut().wait(context, WaitOn::Keys(source));
            Action::Pause
        }
        Ruling::WaitForIntrospection(digest) => {
            shared.state.borrow_mut().wait(context, WaitOn::Introspection(digest));
            Action::Pause
        }
        Ruling::IntrospectionThrottled(provider) => {
            debug!(
                "introspection not started: calls at their limit provider={} ctx={context}",
                shared.config.provider_name(provider)
            );
            deny(shared, AuthError::IntrospectionUnavailable, context)
        }
        Ruling::Introspect { provider, digest, credential } => {
            let Some(opaque) = shared.config.provider(provider).and_then(|p| p.opaque_tokens.as_ref()) else {
                return deny(shared, AuthError::IntrospectionUnavailable, context);
            };
            let call = build_call(opaque, &credential.0);
            match host::dispatch(
                &opaque.cluster,
                &call.headers,
                Some(call.body.as_bytes()),
                opaque.timeout_ms,
            ) {
                Ok(token) => {
                    shared.state.borrow_mut().introspection_sent(CallId(token), context, provider, digest);
                    Action::Pause
                }
                Err(status) => {
                    warn!(
                        "introspection failed provider={} reason=\"dispatch to cluster '{}' refused ({status:?})\"",
                        shared.config.provider_name(provider),
                        opaque.cluster
                    );
                    shared.state.borrow_mut().introspection_not_sent(&digest, now);
                    deny(shared, AuthError::IntrospectionUnavailable, context)
                }
            }
        }
    }
}

/// Refuses the request, counted in the metrics.
fn deny(shared: &Shared, reason: AuthError, context: ContextId) -> Action {
    shared.metrics.increment(metrics::for_denial(reason));
    send_denial(reason, context)
}

fn send_denial(reason: AuthError, context: ContextId) -> Action {
    // The id the client shows (`request-id`) matches this line, never the credential.
    let request_id = host::request_id();
    debug!("denied reason=\"{reason}\" request_id={request_id} ctx={context}");
    if host::send_reply(&reply::deny(reason, &request_id)).is_err() {
        warn!("cannot send the denial ctx={context}");
    }
    Action::Pause
}

/// Runs `step` as each request waiting on `on`, resuming those it lets through.
fn wake(shared: &Shared, on: WaitOn, mut step: impl FnMut(ContextId) -> Action) {
    let woken = shared.state.borrow_mut().take_waiting(on);
    for context in woken {
        if host::set_effective_context(context.0).is_err() {
            continue;
        }
        if step(context) == Action::Continue && host::resume_request().is_err() {
            warn!("cannot resume request ctx={context}");
        }
    }
}

/// Rules again on every request that waited on a fetch of `source`.
pub fn wake_for_keys(shared: &Shared, source: SourceId) {
    wake(shared, WaitOn::Keys(source), |context| process_request(shared, context));
}

/// Gives every request that waited on this token the provider's answer.
fn wake_for_answer(shared: &Shared, digest: Digest, answer: &Answer) {
    wake(shared, WaitOn::Introspection(digest), |context| resolve(shared, context, rule_on_answer(answer)));
}

/// An introspection answer, wherever it arrives (the call belongs to the context that made it).
pub fn on_introspection_response(shared: &Shared, call: CallId, body_size: usize) {
    let status = host::call_response_status();
    let answered = shared.state.borrow_mut().introspection_answered(
        &shared.config,
        call,
        status,
        body_size,
        host::call_response_body,
        host::now_seconds(),
    );
    let Some((provider, digest, answer)) = answered else { return };
    let name = shared.config.provider_name(provider);
    match &answer {
        Answer::Failed(reason) => warn!("introspection failed provider={name} reason=\"{reason}\""),
        Answer::Verdict { outcome: Err(reason), .. } => {
            debug!("introspection refused provider={name} reason=\"{reason}\"");
        }
        Answer::Verdict { outcome: Ok(_), .. } => {}
    }
    wake_for_answer(shared, digest, &answer);
}
