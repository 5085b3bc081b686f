//! The root context: configuration, and the key-fetch protocol (`key_fetch`) fed with the timer and
//! the answers of its calls; it carries out the protocol's commands.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use log::{debug, error, info, warn};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::ContextType;

use super::host::{self, HostStore};
use super::http::{on_introspection_response, wake_for_keys, HttpFilter};
use super::metrics::Metrics;
use super::shared::Shared;
use crate::config::parse_plugin_configuration;
use crate::ids::{CallId, ContextId, ProviderId};
use crate::key_fetch::{Command, Response};
use crate::metrics::Metric;
use crate::vm_state::VmState;

/// Refresh and retry times are whole seconds; a one-second tick is precise enough and costs nothing.
const TICK: Duration = Duration::from_secs(1);
const FIRST_TICK: Duration = Duration::from_millis(10);

pub struct Root {
    shared: Option<Rc<Shared>>,
    /// This VM's id in fetch leases.
    vm_id: u64,
    /// Whether the steady tick period is set (the first tick comes sooner).
    ticking: bool,
}

impl Default for Root {
    fn default() -> Self {
        Root { shared: None, vm_id: host::random_u64(), ticking: false }
    }
}

impl Context for Root {
    fn on_http_call_response(
        &mut self,
        token_id: u32,
        _num_headers: usize,
        body_size: usize,
        _trailers: usize,
    ) {
        let Some(shared) = self.shared.clone() else { return };
        let call = CallId(token_id);
        if !shared.state.borrow().is_fetch_call(call) {
            on_introspection_response(&shared, call, body_size);
            return;
        }
        let mut read_body = host::call_response_body;
        let response =
            Response { status: host::call_response_status(), body_size, read_body: &mut read_body };
        let commands = shared.state.borrow_mut().key_fetcher().answered(
            &shared.config,
            &mut HostStore,
            call,
            response,
            host::now_seconds(),
            host::jitter(),
        );
        carry_out(&shared, commands);
    }
}

/// Carries out what the key-fetch protocol asked for.
fn carry_out(shared: &Shared, commands: Vec<Command>) {
    for command in commands {
        match command {
            Command::Dispatch(request) => {
                let url = &request.url;
                let result = host::dispatch_get(
                    &request.cluster,
                    &url.authority,
                    &url.path,
                    url.scheme,
                    request.timeout_ms,
                )
                .map(CallId)
                .map_err(|status| format!("{status:?}"));
                let more = shared.state.borrow_mut().key_fetcher().dispatched(
                    &mut HostStore,
                    request,
                    result,
                    host::now_seconds(),
                    host::jitter(),
                );
                carry_out(shared, more);
            }
            Command::Loaded { provider, keys } => {
                let name = shared.config.provider_name(provider);
                shared.metrics.increment(Metric::KeyFetchOk(name));
                info!("keys loaded provider={name} n={keys}");
            }
            Command::SkippedKey(key) => {
                warn!("skipped key kid={:?} reason={:?}", key.kid.as_deref().unwrap_or("-"), key.reason);
            }
            Command::Failed { provider, error, failures, had_keys, led } => {
                let name = shared.config.provider_name(provider);
                if led {
                    shared.metrics.increment(Metric::KeyFetchFailed(name));
                }
                // Log changes of state, not every retry.
                if failures <= 1 {
                    let keeping = if had_keys { " keeping=last-good-keys" } else { "" };
                    warn!("key fetch failed provider={name} reason=\"{error}\"{keeping}");
                } else {
                    debug!("key fetch failed again provider={name} failures={failures} reason=\"{error}\"");
                }
            }
            Command::RecordNotShared { provider } => {
                debug!("key record not shared provider={}", shared.config.provider_name(provider));
            }
            Command::NewKeys(source) => shared.state.borrow_mut().forget_removed_keys(source),
            Command::Wake(source) => wake_for_keys(shared, source),
        }
    }
}

/// The key gauges of every provider, from this VM's keys (the last VM to record wins).
fn record_gauges(shared: &Shared, now: u64) {
    let gauges: Vec<(usize, Option<u64>)> = {
        let state = shared.state.borrow();
        let keys = state.keys();
        (0..shared.config.providers.len())
            .map(ProviderId)
            .map(|id| (keys.key_count(id), keys.source_of(id).and_then(|s| keys.age(s, now))))
            .collect()
    };
    for (provider, (count, age)) in shared.config.providers.iter().zip(gauges) {
        shared.metrics.record(Metric::KeysLoaded(&provider.name), count as u64);
        if let Some(age) = age {
            shared.metrics.record(Metric::KeySetAgeSeconds(&provider.name), age);
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
        let state = RefCell::new(VmState::new(&config, self.vm_id, host::random_key()));
        self.shared = Some(Rc::new(Shared {
            config,
            state,
            metrics: Metrics::default(),
            allowed: RefCell::default(),
            models: RefCell::default(),
        }));
        self.ticking = false;
        // The first fetch starts on the first tick, right after configuration: the host may not be
        // ready to dispatch calls while it is still configuring the plugin.
        if host::set_tick_period(FIRST_TICK).is_err() {
            error!("cannot set the tick period: keys would never refresh");
            return false;
        }
        true
    }

    fn on_tick(&mut self) {
        let Some(shared) = self.shared.clone() else { return };
        if !self.ticking {
            self.ticking = host::set_tick_period(TICK).is_ok();
        }
        let now = host::now_seconds();
        let commands =
            shared.state.borrow_mut().key_fetcher().tick(&shared.config, &mut HostStore, now, host::jitter());
        carry_out(&shared, commands);
        record_gauges(&shared, now);
    }

    /// Never `None` (the SDK would panic); without a configuration every request is refused.
    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(HttpFilter {
            context: ContextId(context_id),
            shared: self.shared.clone(),
            usage: Default::default(),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
