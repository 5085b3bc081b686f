//! The root context: configuration, key fetches on a timer, and waking requests that wait for keys.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use log::{error, info, warn};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType};

use super::host;
use super::http::{process_request, HttpFilter};
use crate::config::{parse_plugin_configuration, Config, JwksLocation, JwksSource, RemoteJwks};
use crate::discovery::{self, parse_discovery};
use crate::jwks::{self, parse_jwks};
use crate::key_store::KeyStore;
use crate::url::Url;

/// Refresh and retry times are whole seconds; a one-second tick is precise enough and costs nothing.
const TICK: Duration = Duration::from_secs(1);

/// State shared by the root context and every HTTP context of this VM.
pub struct Shared {
    pub config: Config,
    pub keys: RefCell<KeyStore>,
    /// Requests paused until their provider's first key fetch ends: (context id, provider index).
    pub waiting: RefCell<Vec<(u32, usize)>>,
}

impl Shared {
    pub fn provider_name(&self, index: usize) -> &str {
        self.config
            .providers
            .get(index)
            .map_or("?", |p| p.name.as_str())
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
        let Some(call) = self.calls.remove(&token_id) else {
            return;
        };
        let Some(shared) = self.shared.clone() else {
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
                    if had_keys {
                        " keeping=last-good-keys"
                    } else {
                        ""
                    }
                );
                shared.keys.borrow_mut().fetch_failed(provider, now);
            }
            Step::Done => {}
        }
        wake_waiting(&shared, provider);
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
            warn!(
                "key fetch failed provider={} reason=\"{reason}\"",
                shared.provider_name(provider)
            );
            shared
                .keys
                .borrow_mut()
                .fetch_failed(provider, host::now_seconds());
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
        let issuer = shared
            .config
            .providers
            .get(provider)
            .map_or("", |p| p.issuer.as_str());
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
            shared
                .keys
                .borrow_mut()
                .fetch_succeeded(provider, keys, now);
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

/// Re-runs the decision for every request that waited on `provider`. The list is taken out first:
/// resuming a request may end it, and its context then removes itself from the list.
fn wake_waiting(shared: &Shared, provider: usize) {
    let woken: Vec<u32> = {
        let mut waiting = shared.waiting.borrow_mut();
        let (woken, still): (Vec<_>, Vec<_>) = waiting.drain(..).partition(|(_, p)| *p == provider);
        *waiting = still;
        woken.into_iter().map(|(id, _)| id).collect()
    };
    for context_id in woken {
        if host::set_effective_context(context_id).is_err() {
            continue;
        }
        if process_request(shared, context_id) == Action::Continue
            && host::resume_request().is_err()
        {
            warn!("cannot resume request ctx=#{context_id}");
        }
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
        let config = match parse_plugin_configuration(&bytes) {
            Ok(config) => config,
            Err(e) => {
                error!("invalid plugin configuration: {e}");
                return false;
            }
        };
        info!(
            "configured providers={} api_keys={} token_headers={}",
            config
                .providers
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>()
                .join(","),
            config.api_keys.len(),
            config.token_headers.join(",")
        );
        let keys = RefCell::new(KeyStore::new(&config));
        let shared = Rc::new(Shared {
            config,
            keys,
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
        let due = shared
            .keys
            .borrow_mut()
            .start_due_fetches(host::now_seconds());
        for provider in due {
            self.start_fetch(&shared, provider);
        }
    }

    /// Never `None` (the SDK would panic); without a configuration every request is refused.
    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(HttpFilter {
            context_id,
            shared: self.shared.clone(),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
