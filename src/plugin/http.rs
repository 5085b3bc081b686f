//! Per-request glue: strip spoofable headers, ask `authn`, apply the decision.

use std::rc::Rc;

use log::{debug, warn};
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;

use super::host;
use super::models;
use super::root::{on_introspection_response, Shared, WaitOn};
use crate::authn::{decide, Decision, State};
use crate::metrics::{self, Metric};
use crate::opaque::{build_call, Answer};
use crate::reason::AuthError;
use crate::reply;

pub struct HttpFilter {
    pub context_id: u32,
    /// `None` only if the host creates requests for a plugin whose configuration failed.
    pub shared: Option<Rc<Shared>>,
}

impl Context for HttpFilter {
    /// Introspection calls made while this request was being decided answer here.
    fn on_http_call_response(&mut self, token_id: u32, _headers: usize, body_size: usize, _trailers: usize) {
        if let Some(shared) = &self.shared {
            on_introspection_response(shared, token_id, body_size);
        }
    }
}

impl HttpContext for HttpFilter {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        match &self.shared {
            Some(shared) => {
                models::on_request_headers(self.context_id, end_of_stream);
                process_request(shared, self.context_id)
            }
            None => send_denial(AuthError::NotConfigured, self.context_id),
        }
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        match &self.shared {
            Some(shared) => models::on_request_body(shared, self.context_id, body_size, end_of_stream),
            None => Action::Pause,
        }
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        match &self.shared {
            Some(shared) => models::on_request_trailers(shared, self.context_id),
            None => Action::Pause,
        }
    }
}

impl Drop for HttpFilter {
    /// A request that went away (client gone) must not be resumed, and the host cancels the calls
    /// it made: whoever waits on those answers gets a 503 instead of waiting forever.
    fn drop(&mut self) {
        models::forget(self.context_id);
        let Some(shared) = &self.shared else { return };
        if let Ok(mut waiting) = shared.waiting.try_borrow_mut() {
            waiting.retain(|(id, _)| *id != self.context_id);
        }
        super::root::abandon_calls_of(shared, self.context_id);
    }
}

/// Reads the request headers and removes the identity headers a client may have sent: first,
/// whatever is decided next.
fn read_and_strip(shared: &Shared) -> Result<Vec<(String, String)>, AuthError> {
    let headers = host::request_headers().map_err(|_| AuthError::Malformed)?;
    for name in shared.config.headers.all() {
        if headers.iter().any(|(n, _)| n == name) {
            host::remove_request_header(name).map_err(|_| AuthError::Malformed)?;
        }
    }
    Ok(headers)
}

/// Decides the request whose context is the effective one and applies the decision. Called when
/// its headers arrive and again, from the root context, when keys it waited for have come.
pub fn process_request(shared: &Shared, context_id: u32) -> Action {
    let headers = match read_and_strip(shared) {
        Ok(headers) => headers,
        Err(reason) => return deny(shared, reason, context_id),
    };
    let now = host::now_seconds();
    let decision = {
        let keys = shared.keys.borrow();
        let opaque = shared.opaque.borrow();
        let tokens = shared.tokens.borrow();
        decide(&headers, &shared.config, &State { keys: &keys, opaque: &opaque, tokens: &tokens, now })
    };
    apply(shared, context_id, &headers, decision, now)
}

/// Applies a decision reached elsewhere (an introspection answer shared by several requests).
pub fn resolve(shared: &Shared, context_id: u32, decision: Decision) -> Action {
    match read_and_strip(shared) {
        Ok(headers) => apply(shared, context_id, &headers, decision, host::now_seconds()),
        Err(reason) => deny(shared, reason, context_id),
    }
}

fn apply(
    shared: &Shared,
    context_id: u32,
    headers: &[(String, String)],
    decision: Decision,
    now: u64,
) -> Action {
    match decision {
        Decision::Verified(verified) => {
            let identity = verified.identity.clone();
            shared.tokens.borrow_mut().insert(*verified, now);
            apply(shared, context_id, headers, Decision::Allow(identity), now)
        }
        Decision::Allow(identity) => {
            if shared.config.remove_credential {
                for name in &shared.config.token_headers {
                    if headers.iter().any(|(n, _)| n == name) && host::remove_request_header(name).is_err() {
                        return deny(shared, AuthError::Malformed, context_id);
                    }
                }
            }
            for (name, value) in identity.headers(&shared.config.headers) {
                if host::set_request_header(name, value).is_err() {
                    return deny(shared, AuthError::Malformed, context_id);
                }
            }
            debug!("allowed provider={} ctx=#{context_id}", identity.provider);
            shared.metrics.increment(Metric::Allowed);
            models::on_allowed(shared, context_id, headers, &identity).unwrap_or(Action::Continue)
        }
        Decision::Deny(reason) => deny(shared, reason, context_id),
        Decision::WaitForKeys(source) => {
            debug!("waiting for keys source={source} ctx=#{context_id}");
            shared.waiting.borrow_mut().push((context_id, WaitOn::Keys(source)));
            Action::Pause
        }
        Decision::RefreshKeys(source) => {
            let started = shared.keys.borrow_mut().start_unknown_kid_refresh(source, now);
            if started {
                debug!("unknown kid: refreshing keys source={source} ctx=#{context_id}");
                shared.refresh_requests.borrow_mut().push(source);
            } else if !shared.keys.borrow().is_fetching(source) {
                return deny(shared, AuthError::KeyNotFound, context_id);
            }
            shared.waiting.borrow_mut().push((context_id, WaitOn::Keys(source)));
            Action::Pause
        }
        Decision::WaitForIntrospection(digest) => {
            shared.waiting.borrow_mut().push((context_id, WaitOn::Introspection(digest)));
            Action::Pause
        }
        Decision::Introspect { provider, digest, credential } => {
            let Some(opaque) = shared.config.providers.get(provider).and_then(|p| p.opaque_tokens.as_ref())
            else {
                return deny(shared, AuthError::IntrospectionUnavailable, context_id);
            };
            let admitted = shared.opaque.borrow_mut().admit(
                digest,
                opaque.max_pending,
                opaque.max_calls_per_second,
                now,
            );
            if !admitted {
                debug!(
                    "introspection not started: calls at their limit provider={} ctx=#{context_id}",
                    shared.provider_name(provider)
                );
                return deny(shared, AuthError::IntrospectionUnavailable, context_id);
            }
            let call = build_call(opaque, &credential.0);
            match host::dispatch(
                &opaque.cluster,
                &call.headers,
                Some(call.body.as_bytes()),
                opaque.timeout_ms,
            ) {
                Ok(token) => {
                    shared.introspections.borrow_mut().insert(token, (context_id, provider, digest));
                    shared.waiting.borrow_mut().push((context_id, WaitOn::Introspection(digest)));
                    Action::Pause
                }
                Err(status) => {
                    warn!(
                        "introspection failed provider={} reason=\"dispatch to cluster '{}' refused ({status:?})\"",
                        shared.provider_name(provider),
                        opaque.cluster
                    );
                    shared.opaque.borrow_mut().finish(&digest, &Answer::Failed(String::new()), now);
                    deny(shared, AuthError::IntrospectionUnavailable, context_id)
                }
            }
        }
    }
}

/// Refuses the request, counted in the metrics.
pub fn deny(shared: &Shared, reason: AuthError, context_id: u32) -> Action {
    shared.metrics.increment(metrics::for_denial(reason));
    send_denial(reason, context_id)
}

fn send_denial(reason: AuthError, context_id: u32) -> Action {
    debug!("denied reason=\"{reason}\" ctx=#{context_id}");
    if host::send_reply(&reply::deny(reason)).is_err() {
        warn!("cannot send the denial ctx=#{context_id}");
    }
    Action::Pause
}
