//! The root context: configuration, key fetches on a timer (shared between the VMs of all
//! workers), and waking requests that wait for keys or introspection answers.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use log::{debug, error, info, warn};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType};

use super::host;
use super::http::{deny, process_request, resolve, HttpFilter};
use super::metrics::Metrics;
use crate::authn::Decision;
use crate::config::{parse_plugin_configuration, Config, JwksLocation, JwksSource, RemoteJwks};
use crate::discovery::{self, parse_discovery};
use crate::jwks::{self, parse_jwks, KeySet};
use crate::key_store::KeyStore;
use crate::metrics::Metric;
use crate::opaque::{evaluate, Answer, Digest, OpaqueState, MAX_ANSWER_BYTES};
use crate::reason::AuthError;
use crate::shared_keys::{
    lease_key, read_published, record_key, Lease, Published, Record, LEASE_SLACK_SECONDS,
};
use crate::token_cache::TokenCache;
use crate::url::Url;

/// Refresh and retry times are whole seconds; a one-second tick is precise enough and costs nothing.
const TICK: Duration = Duration::from_secs(1);
const FIRST_TICK: Duration = Duration::from_millis(10);

/// State shared by the root context and every HTTP context of this VM.
pub struct Shared {
    pub config: Config,
    pub keys: RefCell<KeyStore>,
    pub opaque: RefCell<OpaqueState>,
    /// Introspection calls in flight: call token → (context that made it, provider, token digest).
    pub introspections: RefCell<HashMap<u32, (u32, usize, Digest)>>,
    /// Paused requests and what they wait for.
    pub waiting: RefCell<Vec<(u32, WaitOn)>>,
    pub metrics: Metrics,
    /// Key sources requests asked to refresh for an unknown `kid`; the next tick fetches them.
    pub refresh_requests: RefCell<Vec<usize>>,
    pub tokens: RefCell<TokenCache>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum WaitOn {
    /// A fetch of a key source.
    Keys(usize),
    /// The answer about an opaque token, by digest.
    Introspection(Digest),
}

impl Shared {
    pub fn provider_name(&self, index: usize) -> &str {
        self.config.providers.get(index).map_or("?", |p| p.name.as_str())
    }

    /// The provider whose settings a key source's fetches use, with its name.
    fn source_provider(&self, source: usize) -> Option<(&str, &RemoteJwks)> {
        let provider = self.config.providers.get(self.keys.borrow().provider_of(source)?)?;
        match &provider.jwks {
            JwksSource::Remote(remote) => Some((provider.name.as_str(), remote)),
            JwksSource::Inline(_) => None,
        }
    }
}

/// What a dispatched call was for.
enum Call {
    Discovery(usize),
    Jwks(usize),
}

pub struct Root {
    shared: Option<Rc<Shared>>,
    calls: HashMap<u32, Call>,
    /// This VM's id in fetch leases.
    vm_id: u64,
    /// Key sources whose fetch another VM leads, and since when this VM waits for it.
    following: Vec<(usize, u64)>,
    /// Whether the steady tick period is set (the first tick comes sooner).
    ticking: bool,
}

impl Default for Root {
    fn default() -> Self {
        Root {
            shared: None,
            calls: HashMap::new(),
            vm_id: host::random_u64(),
            following: Vec::new(),
            ticking: false,
        }
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
        let Some(call) = self.calls.remove(&token_id) else {
            on_introspection_response(&shared, token_id, body_size);
            return;
        };
        let outcome = match call {
            Call::Discovery(source) => match self.on_discovery(&shared, source, body_size) {
                Ok(()) => return,
                Err(reason) => (source, Err(reason)),
            },
            Call::Jwks(source) => (source, read_jwks(body_size)),
        };
        let (source, result) = outcome;
        self.publish(&shared, source, result);
    }
}

impl Root {
    /// Begins a fetch of `source` (already marked as fetching in the key store): adopt what another
    /// VM published if it is newer than this VM's keys and fresh, else take the lease and fetch,
    /// else wait for the leaseholder. `unknown_kid`: the fetch is for a token whose `kid` was
    /// missing, so only keys fetched within the unknown-kid interval will do (older ones may
    /// predate the key).
    fn begin_fetch(&mut self, shared: &Shared, source: usize, now: u64, unknown_kid: bool) {
        let Some((_, remote)) = shared.source_provider(source) else { return };
        let id = remote.source_id();
        let not_before = if unknown_kid { now.saturating_sub(remote.unknown_kid_refresh_seconds) } else { 0 };
        let mine = shared.keys.borrow().age(source, now).map_or(0, |age| now - age);
        let (record, _) = host::shared_data(&record_key(&id));
        if let Some(record) = record.as_deref().and_then(Record::decode) {
            let fresh = now < record.fetched_at.saturating_add(remote.refresh_seconds)
                && record.fetched_at >= not_before;
            if fresh && read_published(Some(&record), mine, now) == Published::NewKeys {
                self.adopt(shared, source, &record, now);
                return;
            }
        }
        let (lease, cas) = host::shared_data(&lease_key(&id));
        let lease = lease.as_deref().and_then(Lease::decode);
        if Lease::is_free_for(lease.as_ref(), self.vm_id, now) {
            let until = now + remote.timeout_ms.div_ceil(1000) * 2 + LEASE_SLACK_SECONDS;
            let mine = Lease { owner: self.vm_id, until, in_flight: true };
            let taken = host::set_shared_data(&lease_key(&id), &mine.encode(), cas);
            // Shared data failing outright (not a lost race) must not stop this VM fetching.
            if !matches!(taken, Err(proxy_wasm::types::Status::CasMismatch)) {
                self.fetch(shared, source);
            } else {
                // Another VM took the lease a moment ago: its fetch is in flight.
                self.following.push((source, now));
            }
            return;
        }
        match lease {
            // The leaseholder failed and retries at `until`: nothing is in flight, so nobody waits.
            // Requests get the last good keys or a fast answer, and this VM looks again then.
            Some(lease) if !lease.in_flight => {
                shared.keys.borrow_mut().defer_fetch(source, lease.until);
                wake_for_keys(shared, source);
            }
            // The leaseholder is fetching: wait for what it publishes (its fetch is bounded).
            _ => self.following.push((source, now)),
        }
    }

    /// Dispatches the first call of a fetch: the discovery document or the JWKS.
    fn fetch(&mut self, shared: &Shared, source: usize) {
        let Some((_, remote)) = shared.source_provider(source) else { return };
        let (url, call) = match &remote.location {
            JwksLocation::Uri(url) => (url.clone(), Call::Jwks(source)),
            JwksLocation::Discovery(url) => (url.clone(), Call::Discovery(source)),
        };
        let cluster = remote.cluster.clone();
        let timeout_ms = remote.timeout_ms;
        if let Err(reason) = self.dispatch(&cluster, &url, timeout_ms, call) {
            self.publish(shared, source, Err(reason));
        }
    }

    fn dispatch(&mut self, cluster: &str, url: &Url, timeout_ms: u64, call: Call) -> Result<(), String> {
        match host::dispatch_get(cluster, &url.authority, &url.path, url.scheme, timeout_ms) {
            Ok(token) => {
                self.calls.insert(token, call);
                Ok(())
            }
            Err(status) => Err(format!(
                "dispatch to cluster '{cluster}' refused ({status:?}): is the cluster defined in the Envoy config? (in Istio it is named {})",
                url.istio_cluster()
            )),
        }
    }

    fn on_discovery(&mut self, shared: &Shared, source: usize, body_size: usize) -> Result<(), String> {
        let Some((_, remote)) = shared.source_provider(source) else { return Err("no remote keys".into()) };
        let issuer = shared
            .keys
            .borrow()
            .provider_of(source)
            .and_then(|p| shared.config.providers.get(p))
            .map_or(String::new(), |p| p.issuer.clone());
        let body =
            response_body(body_size, discovery::MAX_DOCUMENT_BYTES).map_err(|e| format!("discovery: {e}"))?;
        let jwks_url = parse_discovery(&body, &issuer).map_err(|e| format!("discovery: {e}"))?;
        let Some(cluster) = remote.cluster_for(&jwks_url.authority).map(str::to_owned) else {
            return Err(format!(
                "discovery: jwks_uri is on host '{}', which has no cluster: add it under jwks.clusters",
                jwks_url.authority
            ));
        };
        let timeout_ms = remote.timeout_ms;
        self.dispatch(&cluster, &jwks_url, timeout_ms, Call::Jwks(source))
    }

    /// The end of a fetch this VM led: apply it, publish it for the other VMs, release the lease.
    fn publish(&mut self, shared: &Shared, source: usize, result: Result<(Vec<u8>, Rc<KeySet>), String>) {
        let now = host::now_seconds();
        let Some((name, remote)) = shared.source_provider(source) else { return };
        let id = remote.source_id();
        let (old, cas) = host::shared_data(&record_key(&id));
        let old = old.as_deref().and_then(Record::decode);
        let failed = result.is_err();
        let record = match result {
            Ok((body, keys)) => {
                shared.metrics.increment(Metric::KeyFetchOk(name));
                info!("keys loaded provider={name} n={}", keys.len());
                shared.keys.borrow_mut().fetch_succeeded(source, Rc::clone(&keys), now, now);
                forget_removed_keys(shared, source, &keys);
                Record { fetched_at: now, failed_at: old.map_or(0, |r| r.failed_at), jwks: body }
            }
            Err(reason) => {
                shared.metrics.increment(Metric::KeyFetchFailed(name));
                self.record_failure(shared, source, name, &reason, now);
                match old {
                    Some(old) => Record { failed_at: now, ..old },
                    None => Record { fetched_at: 0, failed_at: now, jwks: Vec::new() },
                }
            }
        };
        if host::set_shared_data(&record_key(&id), &record.encode(), cas).is_err() {
            debug!("key record not shared provider={name}");
        }
        // After a failure the lease is kept until this VM's next attempt, so the other VMs follow
        // its retries instead of each retrying the failing provider on their own schedule.
        let until = if failed { shared.keys.borrow().next_fetch_at(source).unwrap_or(now) } else { 0 };
        let lease = Lease { owner: self.vm_id, until, in_flight: false };
        let _ = host::set_shared_data(&lease_key(&id), &lease.encode(), None);
        wake_for_keys(shared, source);
    }

    fn record_failure(&self, shared: &Shared, source: usize, name: &str, reason: &str, now: u64) {
        let (had_keys, failures) = {
            let keys = shared.keys.borrow();
            (keys.keys(source).is_some(), keys.failures(source))
        };
        // Log changes of state, not every retry.
        if failures == 0 {
            let keeping = if had_keys { " keeping=last-good-keys" } else { "" };
            warn!("key fetch failed provider={name} reason=\"{reason}\"{keeping}");
        } else {
            debug!("key fetch failed again provider={name} failures={} reason=\"{reason}\"", failures + 1);
        }
        #[allow(clippy::cast_precision_loss)]
        let jitter = (host::random_u64() % 1000) as f64 / 1000.0;
        shared.keys.borrow_mut().fetch_failed(source, now, jitter);
    }

    /// Keys another VM fetched.
    fn adopt(&self, shared: &Shared, source: usize, record: &Record, now: u64) {
        match parse_jwks(&record.jwks) {
            Ok((keys, _)) => {
                let keys = Rc::new(keys);
                shared.keys.borrow_mut().fetch_succeeded(source, Rc::clone(&keys), record.fetched_at, now);
                forget_removed_keys(shared, source, &keys);
            }
            Err(_) => {
                // Another VM published something this one cannot read: fetch independently next time.
                shared.keys.borrow_mut().fetch_failed(source, now, 0.0);
            }
        }
        wake_for_keys(shared, source);
    }

    /// Follows the fetches other VMs lead: adopt their keys, share their failure, or take over a
    /// lease that ran out.
    fn follow(&mut self, shared: &Shared, now: u64) {
        let following = std::mem::take(&mut self.following);
        for (source, since) in following {
            let Some((_, remote)) = shared.source_provider(source) else { continue };
            let id = remote.source_id();
            let mine = shared.keys.borrow().age(source, now).map_or(0, |age| now - age);
            let (record, _) = host::shared_data(&record_key(&id));
            let record = record.as_deref().and_then(Record::decode);
            match read_published(record.as_ref(), mine, since) {
                Published::NewKeys => {
                    if let Some(record) = record {
                        self.adopt(shared, source, &record, now);
                    }
                }
                Published::Failed => {
                    let name =
                        shared.provider_name(shared.keys.borrow().provider_of(source).unwrap_or(usize::MAX));
                    self.record_failure(shared, source, name, "fetched by another worker", now);
                    wake_for_keys(shared, source);
                }
                Published::Nothing => {
                    let (lease, _) = host::shared_data(&lease_key(&id));
                    let lease = lease.as_deref().and_then(Lease::decode);
                    if Lease::is_free_for(lease.as_ref(), self.vm_id, now) {
                        self.begin_fetch(shared, source, now, false);
                    } else {
                        self.following.push((source, since));
                    }
                }
            }
        }
    }

    fn record_gauges(&self, shared: &Shared, now: u64) {
        let keys = shared.keys.borrow();
        for (index, provider) in shared.config.providers.iter().enumerate() {
            shared.metrics.record(Metric::KeysLoaded(&provider.name), keys.key_count(index) as u64);
            if let Some(age) = keys.source_of(index).and_then(|s| keys.age(s, now)) {
                shared.metrics.record(Metric::KeySetAgeSeconds(&provider.name), age);
            }
        }
    }
}

/// Cached tokens of the providers using `source` whose signing key is no longer published.
fn forget_removed_keys(shared: &Shared, source: usize, keys: &KeySet) {
    let providers: Vec<usize> = {
        let store = shared.keys.borrow();
        (0..shared.config.providers.len()).filter(|p| store.source_of(*p) == Some(source)).collect()
    };
    let mut tokens = shared.tokens.borrow_mut();
    for provider in providers {
        tokens.retain_keys(provider, |fingerprint| keys.has_fingerprint(fingerprint));
    }
}

/// A JWKS response, parsed; unusable keys are skipped one by one with a warning.
fn read_jwks(body_size: usize) -> Result<(Vec<u8>, Rc<KeySet>), String> {
    let body = response_body(body_size, jwks::MAX_DOCUMENT_BYTES)?;
    let (keys, skipped) = parse_jwks(&body).map_err(|e| format!("jwks: {e}"))?;
    for key in skipped {
        warn!("skipped key kid={:?} reason={:?}", key.kid.as_deref().unwrap_or("-"), key.reason);
    }
    Ok((body, Rc::new(keys)))
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

/// Re-runs the decision for every request that waited on a fetch of `source`.
fn wake_for_keys(shared: &Shared, source: usize) {
    wake(shared, WaitOn::Keys(source), |context_id| process_request(shared, context_id));
}

/// Gives every request that waited on this token the provider's answer: the verdict itself (not a
/// new decision, which could start another call), or a 503 when the endpoint failed.
fn wake_for_answer(shared: &Shared, digest: Digest, answer: &Answer) {
    wake(shared, WaitOn::Introspection(digest), |context_id| match answer {
        Answer::Verdict { outcome: Ok(identity), .. } => {
            resolve(shared, context_id, Decision::Allow(identity.clone()))
        }
        Answer::Verdict { outcome: Err(reason), .. } => deny(shared, *reason, context_id),
        Answer::Failed(_) => deny(shared, AuthError::IntrospectionUnavailable, context_id),
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
    // Nearly every request ends with no call of its own in flight: no clock read for it.
    if abandoned.is_empty() {
        return;
    }
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
        let token_cache = config.token_cache;
        let shared = Rc::new(Shared {
            config,
            keys,
            opaque: RefCell::new(OpaqueState::default()),
            introspections: RefCell::new(HashMap::new()),
            waiting: RefCell::new(Vec::new()),
            metrics: Metrics::default(),
            refresh_requests: RefCell::new(Vec::new()),
            tokens: RefCell::new(TokenCache::new(token_cache, host::random_key())),
        });
        self.shared = Some(Rc::clone(&shared));
        self.calls.clear();
        self.following.clear();
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
        self.follow(&shared, now);
        let due = shared.keys.borrow_mut().start_due_fetches(now);
        for source in due {
            self.begin_fetch(&shared, source, now, false);
        }
        // Unknown-kid refreshes started by requests since the last tick.
        let requested = std::mem::take(&mut *shared.refresh_requests.borrow_mut());
        for source in requested {
            self.begin_fetch(&shared, source, now, true);
        }
        self.record_gauges(&shared, now);
    }

    /// Never `None` (the SDK would panic); without a configuration every request is refused.
    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(HttpFilter { context_id, shared: self.shared.clone(), usage: Default::default() }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
