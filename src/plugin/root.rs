//! The root context: configuration, key fetches on a timer, and waking requests that wait for keys.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use log::{debug, error, info, warn};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType};

use super::host;
use super::http::{deny, process_request, resolve, HttpFilter};
use crate::authn::Decision;
use crate::config::{parse_plugin_configuration, Config, JwksLocation, JwksSource, RemoteJwks};
use crate::discovery::{self, parse_discovery};
use crate::jwks::{self, parse_jwks};
use crate::key_store::KeyStore;
use crate::opaque::{evaluate, Answer, Digest, OpaqueState, MAX_ANSWER_BYTES};
use crate::reason::AuthError;
use crate::url::Url;

/// Refresh and retry times are whole seconds; a one-second tick is precise enough and costs nothing.
const TICK: Duration = Duration::from_secs(1);

/// State shared by the root context and every HTTP context of this VM.
pub struct Shared {
    pub config: Config,
    pub keys: RefCell<KeyStore>,
    pub opaque: RefCell<OpaqueState>,
    /// Introspection calls in flight: call token → (context that made it, provider, token digest).
    pub introspections: RefCell<HashMap<u32, (u32, usize, Digest)>>,
    /// Paused requests and what they wait for.
    pub waiting: RefCell<Vec<(u32, WaitOn)>>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum WaitOn {
    /// The first key fetch of a provider.
    Keys(usize),
    /// The answer about an opaque token, by digest.
    Introspection(Digest),
}

impl Shared {
    pub fn provider_name(&self, index: usize) -> &str {
        self.config.providers.get(index).map_or("?", |p| p.name.as_str())
    }
}

/// What a dispatched call was for.
enum Call {
    Discovery(usize),
    Jwks(usize),
}

#[derive(Default)]
pub struct Root {
    shared: Option<Rc<Shared>>,
    calls: HashMap<u32, Call>,
}

impl Context for Root {
    fn on_http_call_response(
        &mut self,
        token_id: u32,
        _num_headers: usize,
        body_size: usize,
        _num_trailers: usize,
    ) {
        let Some(shared) = self.shared.clone() else { return };
        let Some(call) = self.calls.remove(&token_id) else {
            on_introspection_response(&shared, token_id, body_size);
            return;
        };
        let now = host::now_seconds();
        let (provider, outcome) = match call {
            Call::Discovery(p) => (p, self.on_discovery(&shared, p, body_size)),
            Call::Jwks(p) => (p, on_jwks(&shared, p, body_size, now)),
        };
        match outcome {
            Step::Pending => return,
            Step::Failed(reason) => {
                let had_keys = shared.keys.borrow().key_count(provider) > 0;
                warn!(
                    "key fetch failed provider={} reason=\"{reason}\"{}",
                    shared.provider_name(provider),
                    if had_keys { " keeping=last-good-keys" } else { "" }
                );
                shared.keys.borrow_mut().fetch_failed(provider, now);
            }
            Step::Done => {}
        }
        wake_for_keys(&shared, provider);
    }
}

enum Step {
    /// A second call (the JWKS after discovery) is under way.
    Pending,
    Done,
    Failed(String),
}

impl Root {
    fn start_fetch(&mut self, shared: &Shared, provider: usize) {
        let Some(remote) = remote(&shared.config, provider) else {
            return;
        };
        let (url, call) = match &remote.location {
            JwksLocation::Uri(url) => (url, Call::Jwks(provider)),
            JwksLocation::Discovery(url) => (url, Call::Discovery(provider)),
        };
        if let Err(reason) = self.dispatch(remote, url, call) {
            warn!("key fetch failed provider={} reason=\"{reason}\"", shared.provider_name(provider));
            shared.keys.borrow_mut().fetch_failed(provider, host::now_seconds());
        }
    }

    fn dispatch(&mut self, remote: &RemoteJwks, url: &Url, call: Call) -> Result<(), String> {
        match host::dispatch_get(&remote.cluster, &url.authority, &url.path, url.scheme, remote.timeout_ms) {
            Ok(token) => {
                self.calls.insert(token, call);
                Ok(())
            }
            Err(status) => Err(format!(
                "dispatch to cluster '{}' refused ({status:?}): is the cluster defined in the Envoy config?",
                remote.cluster
            )),
        }
    }

    fn on_discovery(&mut self, shared: &Shared, provider: usize, body_size: usize) -> Step {
        let Some(remote) = remote(&shared.config, provider) else {
            return Step::Failed("no remote keys".into());
        };
        let issuer = shared.config.providers.get(provider).map_or("", |p| p.issuer.as_str());
        let body = match response_body(body_size, discovery::MAX_DOCUMENT_BYTES) {
            Ok(body) => body,
            Err(reason) => return Step::Failed(format!("discovery: {reason}")),
        };
        let jwks_url = match parse_discovery(&body, issuer) {
            Ok(url) => url,
            Err(e) => return Step::Failed(format!("discovery: {e}")),
        };
        match self.dispatch(remote, &jwks_url, Call::Jwks(provider)) {
            Ok(()) => Step::Pending,
            Err(reason) => Step::Failed(reason),
        }
    }
}

fn on_jwks(shared: &Shared, provider: usize, body_size: usize, now: u64) -> Step {
    let body = match response_body(body_size, jwks::MAX_DOCUMENT_BYTES) {
        Ok(body) => body,
        Err(reason) => return Step::Failed(reason),
    };
    match parse_jwks(&body) {
        Ok((keys, skipped)) => {
            let name = shared.provider_name(provider);
            for key in skipped {
                warn!(
                    "skipped key provider={name} kid={} reason=\"{}\"",
                    key.kid.as_deref().unwrap_or("-"),
                    key.reason
                );
            }
            info!("keys loaded provider={name} n={}", keys.len());
            shared.keys.borrow_mut().fetch_succeeded(provider, keys, now);
            Step::Done
        }
        Err(e) => Step::Failed(format!("jwks: {e}")),
    }
}

/// The body of a call's 200 response, refused when larger than `limit`.
fn response_body(body_size: usize, limit: usize) -> Result<Vec<u8>, String> {
    match host::call_response_status() {
        Some(200) => {}
        Some(status) => return Err(format!("status {status}")),
        None => return Err("no response (timeout or connection failure)".into()),
    }
    if body_size > limit {
        return Err(format!("body of {body_size} bytes is over {limit}"));
    }
    host::call_response_body(body_size).ok_or_else(|| "cannot read the body".into())
}

fn remote(config: &Config, provider: usize) -> Option<&RemoteJwks> {
    match &config.providers.get(provider)?.jwks {
        JwksSource::Remote(remote) => Some(remote),
        JwksSource::Inline(_) => None,
    }
}

/// Takes the requests waiting on `on` out of the list first: resuming a request may end it, and
/// its context then removes itself from the list.
fn take_waiting(shared: &Shared, on: WaitOn) -> Vec<u32> {
    let mut waiting = shared.waiting.borrow_mut();
    let (woken, still): (Vec<_>, Vec<_>) = waiting.drain(..).partition(|(_, w)| *w == on);
    *waiting = still;
    woken.into_iter().map(|(id, _)| id).collect()
}

/// Runs `step` as each woken request, resuming those it lets through.
fn wake(shared: &Shared, on: WaitOn, mut step: impl FnMut(u32) -> Action) {
    for context_id in take_waiting(shared, on) {
        if host::set_effective_context(context_id).is_err() {
            continue;
        }
        if step(context_id) == Action::Continue && host::resume_request().is_err() {
            warn!("cannot resume request ctx=#{context_id}");
        }
    }
}

/// Re-runs the decision for every request that waited on `provider`'s keys.
fn wake_for_keys(shared: &Shared, provider: usize) {
    wake(shared, WaitOn::Keys(provider), |context_id| process_request(shared, context_id));
}

/// Gives every request that waited on this token the provider's answer: the verdict itself (not a
/// new decision, which could start another call), or a 503 when the endpoint failed.
fn wake_for_answer(shared: &Shared, digest: Digest, answer: &Answer) {
    wake(shared, WaitOn::Introspection(digest), |context_id| match answer {
        Answer::Verdict { outcome: Ok(identity), .. } => {
            resolve(shared, context_id, Decision::Allow(identity.clone()))
        }
        Answer::Verdict { outcome: Err(reason), .. } => deny(*reason, context_id),
        Answer::Failed(_) => deny(AuthError::IntrospectionUnavailable, context_id),
    });
}

/// An introspection answer, wherever it arrives (the call belongs to the context that made it).
pub fn on_introspection_response(shared: &Shared, token_id: u32, body_size: usize) {
    let Some((_, provider_index, digest)) = shared.introspections.borrow_mut().remove(&token_id) else {
        return;
    };
    let Some(provider) = shared.config.providers.get(provider_index) else { return };
    let Some(opaque) = provider.opaque_tokens.as_ref() else { return };
    let now = host::now_seconds();
    let body = if body_size <= MAX_ANSWER_BYTES { host::call_response_body(body_size) } else { None };
    let answer = evaluate(provider, opaque, host::call_response_status(), &body.unwrap_or_default(), now);
    match &answer {
        Answer::Failed(reason) => {
            warn!("introspection failed provider={} reason=\"{reason}\"", provider.name)
        }
        Answer::Verdict { outcome: Err(reason), .. } => {
            debug!("introspection refused provider={} reason=\"{reason}\"", provider.name);
        }
        Answer::Verdict { outcome: Ok(_), .. } => {}
    }
    shared.opaque.borrow_mut().finish(&digest, &answer, now);
    wake_for_answer(shared, digest, &answer);
}

/// The host cancels the calls of a context that ends: their waiters get a 503, and the slots are
/// freed.
pub fn abandon_calls_of(shared: &Shared, context_id: u32) {
    let abandoned: Vec<Digest> = match shared.introspections.try_borrow_mut() {
        Ok(mut calls) => {
            let tokens: Vec<u32> =
                calls.iter().filter(|(_, (owner, _, _))| *owner == context_id).map(|(t, _)| *t).collect();
            tokens.iter().filter_map(|t| calls.remove(t)).map(|(_, _, digest)| digest).collect()
        }
        Err(_) => return,
    };
    let now = host::now_seconds();
    let failed = Answer::Failed("request ended".into());
    for digest in abandoned {
        if let Ok(mut opaque) = shared.opaque.try_borrow_mut() {
            opaque.finish(&digest, &failed, now);
        }
        wake_for_answer(shared, digest, &failed);
    }
}
impl RootContext for Root {
    fn on_vm_start(&mut self, _vm_configuration_size: usize) -> bool {
        if let Some(level) = host::host_log_level() {
            proxy_wasm::set_log_level(level);
        }
        true
    }

    fn on_configure(&mut self, plugin_configuration_size: usize) -> bool {
        let bytes = host::plugin_configuration(plugin_configuration_size).unwrap_or_default();
        let config = match parse_plugin_configuration(&bytes, &host::env_var) {
            Ok(config) => config,
            Err(e) => {
                error!("invalid plugin configuration: {e}");
                return false;
            }
        };
        info!(
            "configured providers={} api_keys={} token_headers={}",
            config.providers.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(","),
            config.api_keys.len(),
            config.token_headers.join(",")
        );
        let keys = RefCell::new(KeyStore::new(&config));
        let shared = Rc::new(Shared {
            config,
            keys,
            opaque: RefCell::new(OpaqueState::default()),
            introspections: RefCell::new(HashMap::new()),
            waiting: RefCell::new(Vec::new()),
        });
        self.shared = Some(Rc::clone(&shared));
        self.calls.clear();
        if host::set_tick_period(TICK).is_err() {
            error!("cannot set the tick period: keys would never refresh");
            return false;
        }
        self.on_tick();
        true
    }

    fn on_tick(&mut self) {
        let Some(shared) = self.shared.clone() else {
            return;
        };
        let due = shared.keys.borrow_mut().start_due_fetches(host::now_seconds());
        for provider in due {
            self.start_fetch(&shared, provider);
        }
    }

    /// Never `None` (the SDK would panic); without a configuration every request is refused.
    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(HttpFilter { context_id, shared: self.shared.clone() }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
