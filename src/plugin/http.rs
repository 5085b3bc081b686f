//! Per-request glue: strip spoofable headers, ask `authn`, apply the decision.

use std::rc::Rc;

use log::{debug, warn};
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;

use super::host;
use super::root::Shared;
use crate::authn::{decide, Decision};
use crate::reason::AuthError;
use crate::reply;

pub struct HttpFilter {
    pub context_id: u32,
    /// `None` only if the host creates requests for a plugin whose configuration failed.
    pub shared: Option<Rc<Shared>>,
}

impl Context for HttpFilter {}

impl HttpContext for HttpFilter {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        match &self.shared {
            Some(shared) => process_request(shared, self.context_id),
            None => deny(AuthError::NotConfigured, self.context_id),
        }
    }
}

impl Drop for HttpFilter {
    /// A request that was waiting for keys and went away (client gone) must not be resumed.
    fn drop(&mut self) {
        let Some(shared) = &self.shared else { return };
        if let Ok(mut waiting) = shared.waiting.try_borrow_mut() {
            waiting.retain(|(id, _)| *id != self.context_id);
        }
    }
}

/// Decides the request whose context is the effective one and applies the decision. Called when
/// its headers arrive and again, from the root context, when keys it waited for have come.
pub fn process_request(shared: &Shared, context_id: u32) -> Action {
    let Ok(headers) = host::request_headers() else {
        warn!("cannot read request headers ctx=#{context_id}");
        return deny(AuthError::Malformed, context_id);
    };
    // Identity headers from the client are removed first, whatever is decided next.
    for name in shared.config.headers.all() {
        if headers.iter().any(|(n, _)| n == name) && host::remove_request_header(name).is_err() {
            return deny(AuthError::Malformed, context_id);
        }
    }
    let decision = decide(
        &headers,
        &shared.config,
        &shared.keys.borrow(),
        host::now_seconds(),
    );
    match decision {
        Decision::Allow(identity) => {
            if shared.config.remove_credential {
                for name in &shared.config.token_headers {
                    if headers.iter().any(|(n, _)| n == name)
                        && host::remove_request_header(name).is_err()
                    {
                        return deny(AuthError::Malformed, context_id);
                    }
                }
            }
            for (name, value) in identity.headers(&shared.config.headers) {
                if host::set_request_header(name, &value).is_err() {
                    return deny(AuthError::Malformed, context_id);
                }
            }
            debug!("allowed provider={} ctx=#{context_id}", identity.provider);
            Action::Continue
        }
        Decision::Deny(reason) => deny(reason, context_id),
        Decision::WaitForKeys(provider) => {
            debug!(
                "waiting for keys provider={} ctx=#{context_id}",
                shared.provider_name(provider)
            );
            shared.waiting.borrow_mut().push((context_id, provider));
            Action::Pause
        }
    }
}

fn deny(reason: AuthError, context_id: u32) -> Action {
    debug!("denied reason=\"{reason}\" ctx=#{context_id}");
    if host::send_reply(&reply::deny(reason)).is_err() {
        warn!("cannot send the denial ctx=#{context_id}");
    }
    Action::Pause
}
