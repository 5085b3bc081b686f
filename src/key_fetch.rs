//! The key-fetch protocol of one VM, as a state machine: events in (a tick, a dispatch's result, a
//! call's answer, a request's unknown `kid`), commands out (dispatch a GET, log and count, drop
//! cached tokens whose key left, wake the waiting requests). The VMs of all workers share one fetch
//! per key source through shared data (`shared_keys`: a lease says who fetches, a record holds the
//! last outcome), reached through `SharedStore`: the host's shared data in the filter, a map in
//! tests. Time and jitter come in with each event.

use std::collections::HashMap;
use std::fmt;
use std::rc::Rc;

use crate::config::{Config, JwksLocation, JwksSource, RemoteJwks};
use crate::discovery::{self, parse_discovery, DiscoveryError};
use crate::ids::{CallId, ProviderId, SourceId};
use crate::jwks::{self, parse_jwks, JwksError, KeySet, SkippedKey};
use crate::key_store::KeyStore;
use crate::shared_keys::{
    lease_key, read_published, record_key, Lease, Published, Record, LEASE_SLACK_SECONDS,
};
use crate::url::Url;

/// The shared data of all VMs of one Envoy (proxy-wasm `get/set_shared_data`).
pub trait SharedStore {
    /// The value under `key` and its CAS token.
    fn get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>);
    /// Writes `value`; with `cas`, only if nobody wrote since the read that gave it.
    fn set(&mut self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError>;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreError {
    /// Another VM wrote since the read: it won the race.
    CasMismatch,
    /// The host refused the write for another reason.
    Refused,
}

/// Which document a call fetches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// The OpenID Connect discovery document, which names the JWKS.
    Discovery,
    Jwks,
}

/// A GET the host must dispatch; its result goes back through `KeyFetcher::dispatched`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchRequest {
    pub source: SourceId,
    pub step: Step,
    pub cluster: String,
    pub url: Url,
    pub timeout_ms: u64,
}

/// What the host layer must do.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Dispatch(FetchRequest),
    /// This VM fetched keys: count `fetch_ok`, log `keys loaded`.
    Loaded {
        provider: ProviderId,
        keys: usize,
    },
    /// A key of a fetched JWKS is unusable and left out: log it.
    SkippedKey(SkippedKey),
    /// A fetch failed (`failures`: in a row, this one included). `led`: this VM made the call
    /// (counted in `fetch_failed`), else it followed another VM's.
    Failed {
        provider: ProviderId,
        error: FetchError,
        failures: u32,
        had_keys: bool,
        led: bool,
    },
    /// The outcome could not be written to shared data; the other VMs fetch on their own.
    RecordNotShared {
        provider: ProviderId,
    },
    /// `source` has new keys: drop cached tokens whose signing key is no longer in them.
    NewKeys(SourceId),
    /// The fetch of `source` ended: decide again the requests waiting for it.
    Wake(SourceId),
}

/// Why a fetch failed.
#[derive(Debug, PartialEq, Eq)]
pub enum FetchError {
    /// The host refused the call (`status`: its word): the cluster is probably not defined.
    DispatchRefused {
        cluster: String,
        status: String,
        istio_cluster: String,
    },
    /// The response of a step was unusable.
    Response(Step, ResponseError),
    Discovery(DiscoveryError),
    /// Discovery named a JWKS on a host no cluster is configured for.
    NoClusterFor(String),
    Jwks(JwksError),
    /// The fetch another VM led, which this one waited for, failed.
    FailedElsewhere,
}

#[derive(Debug, PartialEq, Eq)]
pub enum ResponseError {
    /// Timeout or connection failure.
    NoResponse,
    Status(u32),
    TooLarge {
        size: usize,
        limit: usize,
    },
    Unreadable,
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FetchError::DispatchRefused { cluster, status, istio_cluster } => write!(
                f,
                "dispatch to cluster '{cluster}' refused ({status}): is the cluster defined in the Envoy config? (in Istio it is named {istio_cluster})"
            ),
            FetchError::Response(Step::Discovery, e) => write!(f, "discovery: {e}"),
            FetchError::Response(Step::Jwks, e) => write!(f, "{e}"),
            FetchError::Discovery(e) => write!(f, "discovery: {e}"),
            FetchError::NoClusterFor(host) => write!(
                f,
                "discovery: jwks_uri is on host '{host}', which has no cluster: add it under jwks.clusters"
            ),
            FetchError::Jwks(e) => write!(f, "jwks: {e}"),
            FetchError::FailedElsewhere => f.write_str("fetched by another worker"),
        }
    }
}

impl fmt::Display for ResponseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResponseError::NoResponse => f.write_str("no response (timeout or connection failure)"),
            ResponseError::Status(status) => write!(f, "status {status}"),
            ResponseError::TooLarge { size, limit } => write!(f, "body of {size} bytes is over {limit}"),
            ResponseError::Unreadable => f.write_str("cannot read the body"),
        }
    }
}

/// A call's answer as the host has it: the body is read only when wanted (and not too large).
pub struct Response<'a> {
    pub status: Option<u32>,
    pub body_size: usize,
    pub read_body: &'a mut dyn FnMut(usize) -> Option<Vec<u8>>,
}

impl Response<'_> {
    /// The body of a 200 response, refused when larger than `limit`.
    fn body(self, limit: usize) -> Result<Vec<u8>, ResponseError> {
        match self.status {
            Some(200) => {}
            Some(status) => return Err(ResponseError::Status(status)),
            None => return Err(ResponseError::NoResponse),
        }
        if self.body_size > limit {
            return Err(ResponseError::TooLarge { size: self.body_size, limit });
        }
        (self.read_body)(self.body_size).ok_or(ResponseError::Unreadable)
    }
}

/// A JWKS this VM fetched: the document (published as is) and its usable keys.
struct Fetched {
    body: Vec<u8>,
    keys: KeySet,
    skipped: Vec<SkippedKey>,
}

pub struct KeyFetcher {
    /// This VM's id in leases.
    vm_id: u64,
    keys: KeyStore,
    /// Calls this VM leads, by the host's token.
    calls: HashMap<CallId, (SourceId, Step)>,
    /// Sources whose fetch another VM leads, and since when this VM waits for it.
    following: Vec<(SourceId, u64)>,
    /// Unknown-`kid` refreshes requests started since the last tick.
    refresh_requests: Vec<SourceId>,
}

impl KeyFetcher {
    pub fn new(config: &Config, vm_id: u64) -> Self {
        KeyFetcher {
            vm_id,
            keys: KeyStore::new(config),
            calls: HashMap::new(),
            following: Vec::new(),
            refresh_requests: Vec::new(),
        }
    }

    pub fn keys(&self) -> &KeyStore {
        &self.keys
    }

    /// Whether `call` is a fetch of this VM (else it is someone else's, an introspection).
    pub fn is_fetch_call(&self, call: CallId) -> bool {
        self.calls.contains_key(&call)
    }

    /// A request met a `kid` its provider's keys lack: start a refresh of `source` on the next
    /// tick, unless the unknown-`kid` rate limit refuses one (false) or one is under way.
    pub fn refresh_for_unknown_kid(&mut self, source: SourceId, now: u64) -> bool {
        let started = self.keys.start_unknown_kid_refresh(source, now);
        if started {
            self.refresh_requests.push(source);
        }
        started
    }

    /// The timer: follow other VMs' fetches, start the fetches that are due and the unknown-`kid`
    /// refreshes requested since the last tick.
    pub fn tick(
        &mut self,
        config: &Config,
        store: &mut dyn SharedStore,
        now: u64,
        jitter: f64,
    ) -> Vec<Command> {
        let mut out = Vec::new();
        self.follow(config, store, now, jitter, &mut out);
        for source in self.keys.start_due_fetches(now) {
            self.begin(config, store, source, now, false, &mut out);
        }
        for source in std::mem::take(&mut self.refresh_requests) {
            self.begin(config, store, source, now, true, &mut out);
        }
        out
    }

    /// The host's answer to `Command::Dispatch`: the call's token, or why it refused.
    pub fn dispatched(
        &mut self,
        store: &mut dyn SharedStore,
        request: FetchRequest,
        result: Result<CallId, String>,
        now: u64,
        jitter: f64,
    ) -> Vec<Command> {
        match result {
            Ok(call) => {
                self.calls.insert(call, (request.source, request.step));
                Vec::new()
            }
            Err(status) => {
                let error = FetchError::DispatchRefused {
                    istio_cluster: request.url.istio_cluster(),
                    cluster: request.cluster,
                    status,
                };
                self.publish(store, request.source, Err(error), now, jitter)
            }
        }
    }

    /// A fetch call answered (or timed out). Calls that are not this VM's fetches are ignored.
    pub fn answered(
        &mut self,
        config: &Config,
        store: &mut dyn SharedStore,
        call: CallId,
        response: Response,
        now: u64,
        jitter: f64,
    ) -> Vec<Command> {
        let Some((source, step)) = self.calls.remove(&call) else { return Vec::new() };
        let result = match step {
            Step::Discovery => match self.jwks_request(config, source, response) {
                Ok(request) => return vec![Command::Dispatch(request)],
                Err(error) => Err(error),
            },
            Step::Jwks => read_jwks(response),
        };
        self.publish(store, source, result, now, jitter)
    }

    /// Begins a fetch of `source` (already marked as fetching in the key store): adopt what another
    /// VM published if it is newer than this VM's keys and fresh, else take the lease and fetch,
    /// else wait for the leaseholder. `unknown_kid`: the fetch is for a token whose `kid` was
    /// missing, so only keys fetched within the unknown-kid interval will do (older ones may
    /// predate the key).
    fn begin(
        &mut self,
        config: &Config,
        store: &mut dyn SharedStore,
        source: SourceId,
        now: u64,
        unknown_kid: bool,
        out: &mut Vec<Command>,
    ) {
        let Some(remote) = remote_of(config, &self.keys, source) else { return };
        let Some(name) = self.keys.shared_name(source).map(str::to_owned) else { return };
        let not_before = if unknown_kid { now.saturating_sub(remote.unknown_kid_refresh_seconds) } else { 0 };
        let mine = self.fetched_at(source, now);
        if let Some(record) = store.get(&record_key(&name)).0.as_deref().and_then(Record::decode) {
            let fresh = now < record.fetched_at.saturating_add(remote.refresh_seconds)
                && record.fetched_at >= not_before;
            if fresh && read_published(Some(&record), mine, now) == Published::NewKeys {
                self.adopt(source, &record, now, out);
                return;
            }
        }
        let (lease, cas) = store.get(&lease_key(&name));
        let lease = lease.as_deref().and_then(Lease::decode);
        if Lease::is_free_for(lease.as_ref(), self.vm_id, now) {
            let until = now
                .saturating_add(remote.timeout_ms.div_ceil(1000).saturating_mul(2))
                .saturating_add(LEASE_SLACK_SECONDS);
            let mine = Lease { owner: self.vm_id, until, in_flight: true };
            match store.set(&lease_key(&name), &mine.encode(), cas) {
                // Another VM took the lease a moment ago: its fetch is in flight.
                Err(StoreError::CasMismatch) => self.following.push((source, now)),
                // Shared data failing outright (not a lost race) must not stop this VM fetching.
                Ok(()) | Err(StoreError::Refused) => {
                    out.push(Command::Dispatch(first_request(source, remote)))
                }
            }
            return;
        }
        match lease {
            // The leaseholder failed and retries at `until`: nothing is in flight, so nobody waits.
            // Requests get the last good keys or a fast answer, and this VM looks again then.
            Some(lease) if !lease.in_flight => {
                self.keys.defer_fetch(source, lease.until);
                out.push(Command::Wake(source));
            }
            // The leaseholder is fetching: wait for what it publishes (its fetch is bounded).
            _ => self.following.push((source, now)),
        }
    }

    /// When this VM's keys of `source` were fetched; 0 when it has none.
    fn fetched_at(&self, source: SourceId, now: u64) -> u64 {
        self.keys.age(source, now).map_or(0, |age| now.saturating_sub(age))
    }

    /// The JWKS call a discovery document leads to.
    fn jwks_request(
        &self,
        config: &Config,
        source: SourceId,
        response: Response,
    ) -> Result<FetchRequest, FetchError> {
        let provider = self.keys.provider_of(source).and_then(|p| config.provider(p));
        let remote = remote_of(config, &self.keys, source);
        let (Some(provider), Some(remote)) = (provider, remote) else {
            return Err(FetchError::Response(Step::Discovery, ResponseError::Unreadable));
        };
        let body = response
            .body(discovery::MAX_DOCUMENT_BYTES)
            .map_err(|e| FetchError::Response(Step::Discovery, e))?;
        let url = parse_discovery(&body, &provider.issuer).map_err(FetchError::Discovery)?;
        let Some(cluster) = remote.cluster_for(&url.authority).map(str::to_owned) else {
            return Err(FetchError::NoClusterFor(url.authority));
        };
        Ok(FetchRequest { source, step: Step::Jwks, cluster, url, timeout_ms: remote.timeout_ms })
    }

    /// The end of a fetch this VM led: apply it, publish it for the other VMs, release the lease.
    fn publish(
        &mut self,
        store: &mut dyn SharedStore,
        source: SourceId,
        result: Result<Fetched, FetchError>,
        now: u64,
        jitter: f64,
    ) -> Vec<Command> {
        let mut out = Vec::new();
        let (Some(provider), Some(name)) =
            (self.keys.provider_of(source), self.keys.shared_name(source).map(str::to_owned))
        else {
            return out;
        };
        let (old, cas) = store.get(&record_key(&name));
        let old = old.as_deref().and_then(Record::decode);
        let failed = result.is_err();
        let record = match result {
            Ok(Fetched { body, keys, skipped }) => {
                out.extend(skipped.into_iter().map(Command::SkippedKey));
                out.push(Command::Loaded { provider, keys: keys.len() });
                self.keys.fetch_succeeded(source, Rc::new(keys), now, now);
                out.push(Command::NewKeys(source));
                Record { fetched_at: now, failed_at: old.map_or(0, |r| r.failed_at), jwks: body }
            }
            Err(error) => {
                self.fail(source, provider, error, true, now, jitter, &mut out);
                match old {
                    Some(old) => Record { failed_at: now, ..old },
                    None => Record { fetched_at: 0, failed_at: now, jwks: Vec::new() },
                }
            }
        };
        if store.set(&record_key(&name), &record.encode(), cas).is_err() {
            out.push(Command::RecordNotShared { provider });
        }
        // After a failure the lease is kept until this VM's next attempt, so the other VMs follow
        // its retries instead of each retrying the failing provider on their own schedule.
        let until = if failed { self.keys.next_fetch_at(source).unwrap_or(now) } else { 0 };
        let lease = Lease { owner: self.vm_id, until, in_flight: false };
        // Not written: the lease runs out by itself.
        let _ = store.set(&lease_key(&name), &lease.encode(), None);
        out.push(Command::Wake(source));
        out
    }

    #[allow(clippy::too_many_arguments)]
    fn fail(
        &mut self,
        source: SourceId,
        provider: ProviderId,
        error: FetchError,
        led: bool,
        now: u64,
        jitter: f64,
        out: &mut Vec<Command>,
    ) {
        let had_keys = self.keys.keys(source).is_some();
        self.keys.fetch_failed(source, now, jitter);
        out.push(Command::Failed { provider, error, failures: self.keys.failures(source), had_keys, led });
    }

    /// Keys another VM fetched.
    fn adopt(&mut self, source: SourceId, record: &Record, now: u64, out: &mut Vec<Command>) {
        match parse_jwks(&record.jwks) {
            Ok((keys, _)) => {
                self.keys.fetch_succeeded(source, Rc::new(keys), record.fetched_at, now);
                out.push(Command::NewKeys(source));
            }
            // Another VM published something this one cannot read: fetch independently next time.
            Err(_) => self.keys.fetch_failed(source, now, 0.0),
        }
        out.push(Command::Wake(source));
    }

    /// Follows the fetches other VMs lead: adopt their keys, share their failure, or take over a
    /// lease that ran out.
    fn follow(
        &mut self,
        config: &Config,
        store: &mut dyn SharedStore,
        now: u64,
        jitter: f64,
        out: &mut Vec<Command>,
    ) {
        for (source, since) in std::mem::take(&mut self.following) {
            let (Some(provider), Some(name)) =
                (self.keys.provider_of(source), self.keys.shared_name(source).map(str::to_owned))
            else {
                continue;
            };
            let mine = self.fetched_at(source, now);
            let record = store.get(&record_key(&name)).0.as_deref().and_then(Record::decode);
            match (read_published(record.as_ref(), mine, since), record) {
                (Published::NewKeys, Some(record)) => self.adopt(source, &record, now, out),
                (Published::Failed, _) => {
                    self.fail(source, provider, FetchError::FailedElsewhere, false, now, jitter, out);
                    out.push(Command::Wake(source));
                }
                _ => {
                    let lease = store.get(&lease_key(&name)).0.as_deref().and_then(Lease::decode);
                    if Lease::is_free_for(lease.as_ref(), self.vm_id, now) {
                        self.begin(config, store, source, now, false, out);
                    } else {
                        self.following.push((source, since));
                    }
                }
            }
        }
    }
}

/// The remote settings a key source's fetches use: those of the first provider naming it.
fn remote_of<'c>(config: &'c Config, keys: &KeyStore, source: SourceId) -> Option<&'c RemoteJwks> {
    match &config.provider(keys.provider_of(source)?)?.jwks {
        JwksSource::Remote(remote) => Some(remote),
        JwksSource::Inline(_) => None,
    }
}

/// The first call of a fetch: the discovery document or the JWKS.
fn first_request(source: SourceId, remote: &RemoteJwks) -> FetchRequest {
    let (url, step) = match &remote.location {
        JwksLocation::Uri(url) => (url.clone(), Step::Jwks),
        JwksLocation::Discovery(url) => (url.clone(), Step::Discovery),
    };
    FetchRequest { source, step, cluster: remote.cluster.clone(), url, timeout_ms: remote.timeout_ms }
}

/// A JWKS response, parsed; unusable keys are left out one by one.
fn read_jwks(response: Response) -> Result<Fetched, FetchError> {
    let body = response.body(jwks::MAX_DOCUMENT_BYTES).map_err(|e| FetchError::Response(Step::Jwks, e))?;
    let (keys, skipped) = parse_jwks(&body).map_err(FetchError::Jwks)?;
    Ok(Fetched { body, keys, skipped })
}
