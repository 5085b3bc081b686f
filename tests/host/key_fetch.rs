//! The key-fetch protocol between VMs (`key_fetch`), several `KeyFetcher`s over one in-memory shared
//! store with Envoy's semantics: the cases the end-to-end key-lifecycle tests cover, without Envoy.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use gateway_filter::authn::Ruling;
use gateway_filter::config::{parse_config, Config};
use gateway_filter::ids::{CallId, ProviderId, SourceId};
use gateway_filter::key_fetch::{
    Command, FetchError, FetchRequest, KeyFetcher, Response, SharedStore, Step, StoreError,
};
use gateway_filter::key_store::KeyAvailability;
use gateway_filter::reason::AuthError;
use gateway_filter::shared_keys::{lease_key, record_key, Lease, Record};
use gateway_filter::vm_state::VmState;
use serde_json::{json, Value};

use crate::fixtures::*;

const SOURCE: SourceId = SourceId(0);
const PROVIDER: ProviderId = ProviderId(0);

type Map = HashMap<String, (Vec<u8>, u32)>;
type Hook = Box<dyn FnMut(&mut Map)>;

/// Envoy's shared data: a CAS number per key; a write with a CAS fails if the key was written since
/// (a key never written has no CAS: the write goes through). `before_write` runs just before each
/// write: another VM acting between this one's read and write.
#[derive(Clone, Default)]
struct Memory {
    map: Rc<RefCell<Map>>,
    before_write: Rc<RefCell<Option<Hook>>>,
}

impl SharedStore for Memory {
    fn get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>) {
        match self.map.borrow().get(key) {
            Some((value, cas)) => (Some(value.clone()), Some(*cas)),
            None => (None, None),
        }
    }

    fn set(&mut self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError> {
        if let Some(hook) = self.before_write.borrow_mut().as_mut() {
            hook(&mut self.map.borrow_mut());
        }
        let mut map = self.map.borrow_mut();
        let current = map.get(key).map(|(_, cas)| *cas);
        if let (Some(cas), Some(current)) = (cas, current) {
            if cas != current {
                return Err(StoreError::CasMismatch);
            }
        }
        map.insert(key.to_owned(), (value.to_vec(), current.map_or(1, |c| c + 1)));
        Ok(())
    }
}

/// One VM: its fetcher, and the host's side of it (calls in flight, what it was told to do).
struct Vm {
    fetcher: KeyFetcher,
    store: Memory,
    /// Calls dispatched and not answered yet.
    calls: Vec<(CallId, FetchRequest)>,
    dispatched: Vec<FetchRequest>,
    /// Every command but `Dispatch`, in order.
    seen: Vec<Command>,
    refuse_dispatch: bool,
}

static NEXT_CALL: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);

impl Vm {
    fn new(config: &Config, id: u64, store: &Memory) -> Vm {
        Vm {
            fetcher: KeyFetcher::new(config, id),
            store: store.clone(),
            calls: Vec::new(),
            dispatched: Vec::new(),
            seen: Vec::new(),
            refuse_dispatch: false,
        }
    }

    fn run(&mut self, commands: Vec<Command>, now: u64) {
        for command in commands {
            match command {
                Command::Dispatch(request) => {
                    self.dispatched.push(request.clone());
                    let result = if self.refuse_dispatch {
                        Err("BadArgument".to_owned())
                    } else {
                        let call = CallId(NEXT_CALL.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
                        self.calls.push((call, request.clone()));
                        Ok(call)
                    };
                    let more = self.fetcher.dispatched(&mut self.store, request, result, now, 0.0);
                    self.run(more, now);
                }
                other => self.seen.push(other),
            }
        }
    }

    fn tick(&mut self, config: &Config, now: u64) {
        let commands = self.fetcher.tick(config, &mut self.store, now, 0.0);
        self.run(commands, now);
    }

    /// Answers the oldest call in flight.
    fn answer(&mut self, config: &Config, status: Option<u32>, body: &[u8], now: u64) -> FetchRequest {
        assert!(!self.calls.is_empty(), "no call in flight");
        let (call, request) = self.calls.remove(0);
        let mut read = |size: usize| Some(body.get(..size).unwrap_or(body).to_vec());
        let response = Response { status, body_size: body.len(), read_body: &mut read };
        let commands = self.fetcher.answered(config, &mut self.store, call, response, now, 0.0);
        self.run(commands, now);
        request
    }

    fn answer_jwks(&mut self, config: &Config, jwks: &Value, now: u64) {
        let request = self.answer(config, Some(200), jwks.to_string().as_bytes(), now);
        assert_eq!(request.step, Step::Jwks);
    }

    fn has_keys(&self, now: u64) -> bool {
        matches!(self.fetcher.keys().availability(PROVIDER, now), KeyAvailability::Ready(_))
    }

    fn woken(&self) -> usize {
        self.seen.iter().filter(|c| **c == Command::Wake(SOURCE)).count()
    }

    fn failures(&self) -> Vec<(&FetchError, bool)> {
        self.seen
            .iter()
            .filter_map(|c| match c {
                Command::Failed { error, led, .. } => Some((error, *led)),
                _ => None,
            })
            .collect()
    }

    fn loaded(&self) -> usize {
        self.seen.iter().filter(|c| matches!(c, Command::Loaded { .. })).count()
    }
}

fn remote_config(jwks: Value) -> Config {
    let mut config = config_json();
    config["providers"][0]["jwks"] = jwks;
    parse_config(&config).unwrap()
}

/// refresh 60 s, stale after 600 s, unknown-kid refreshes 30 s apart, timeout 1 s (lease 4 s).
fn config() -> Config {
    remote_config(json!({"uri": "https://idp.example.com/keys", "cluster": "idp", "refresh_seconds": 60,
        "max_stale_seconds": 600, "unknown_kid_refresh_seconds": 30, "timeout_ms": 1000}))
}

fn two_vms(config: &Config) -> (Vm, Vm) {
    let store = Memory::default();
    (Vm::new(config, 1, &store), Vm::new(config, 2, &store))
}

#[test]
fn racing_vms_make_one_fetch_and_share_it() {
    let config = config();
    let (mut a, mut b) = two_vms(&config);
    a.tick(&config, NOW);
    b.tick(&config, NOW);
    assert_eq!(a.dispatched.len(), 1);
    assert_eq!(a.dispatched[0].cluster, "idp");
    assert_eq!(a.dispatched[0].url.path, "/keys");
    assert!(b.dispatched.is_empty(), "b follows a's fetch in flight");
    assert!(!b.has_keys(NOW) && b.woken() == 0, "b's requests keep waiting for it");
    a.answer_jwks(&config, &jwks(), NOW);
    assert!(a.has_keys(NOW));
    assert_eq!((a.loaded(), a.woken()), (1, 1));
    assert!(a.seen.contains(&Command::NewKeys(SOURCE)));
    b.tick(&config, NOW + 1);
    assert!(b.has_keys(NOW + 1), "b adopts what a published");
    assert_eq!(
        (b.dispatched.len(), b.loaded(), b.woken()),
        (0, 0, 1),
        "adopted keys are not counted as a fetch"
    );
    assert_eq!(b.fetcher.keys().age(SOURCE, NOW + 1), Some(1), "they keep a's fetch time");
    // Steady state: each refresh is one fetch for both VMs, whoever comes first.
    for t in NOW + 2..NOW + 600 {
        a.tick(&config, t);
        b.tick(&config, t);
        if !a.calls.is_empty() {
            a.answer_jwks(&config, &jwks(), t);
        }
        if !b.calls.is_empty() {
            b.answer_jwks(&config, &jwks(), t);
        }
        assert!(a.has_keys(t) && b.has_keys(t), "t+{}", t - NOW);
    }
    let fetches = a.dispatched.len() + b.dispatched.len();
    assert_eq!(fetches, 10, "one fetch per 60 s refresh for two VMs");
}

#[test]
fn a_vm_that_loses_the_lease_race_follows() {
    let config = config();
    let (mut a, _) = two_vms(&config);
    a.tick(&config, NOW);
    a.answer_jwks(&config, &jwks(), NOW);
    // VM 2 writes its lease between a's read of the lease and a's write: a's CAS write fails.
    let key = lease_key("uri idp idp.example.com/keys");
    let theirs = Lease { owner: 2, until: NOW + 64, in_flight: true }.encode();
    *a.store.before_write.borrow_mut() = Some(Box::new(move |map: &mut Map| {
        let cas = map.get(&key).map_or(0, |(_, cas)| *cas);
        map.insert(key.clone(), (theirs.clone(), cas + 1));
    }));
    a.tick(&config, NOW + 60);
    *a.store.before_write.borrow_mut() = None;
    assert_eq!(a.dispatched.len(), 1, "a lost the race: no second fetch");
    // VM 2 fetches under its lease and publishes; a adopts on its next tick.
    let mut b = Vm::new(&config, 2, &a.store);
    b.tick(&config, NOW + 61);
    assert_eq!(b.dispatched.len(), 1);
    b.answer_jwks(&config, &jwks(), NOW + 61);
    let woken = a.woken();
    a.tick(&config, NOW + 62);
    assert_eq!(a.woken(), woken + 1);
    assert_eq!(a.fetcher.keys().age(SOURCE, NOW + 62), Some(1), "a has VM 2's keys of NOW + 61");
    assert_eq!(a.dispatched.len(), 1);
}

#[test]
fn a_leaseholder_that_dies_mid_fetch_is_replaced_when_its_lease_runs_out() {
    let config = config();
    let (mut a, mut b) = two_vms(&config);
    a.tick(&config, NOW);
    assert_eq!(a.dispatched.len(), 1);
    // a's VM goes away with its call in flight. The lease covers twice the timeout plus 2 s: 4 s.
    b.tick(&config, NOW);
    for t in NOW + 1..NOW + 4 {
        b.tick(&config, t);
        assert!(b.dispatched.is_empty(), "t+{}: the lease still holds", t - NOW);
    }
    b.tick(&config, NOW + 4);
    assert_eq!(b.dispatched.len(), 1, "b takes the lease over once it ran out");
    b.answer_jwks(&config, &jwks(), NOW + 4);
    assert!(b.has_keys(NOW + 4));
    assert_eq!(b.woken(), 1, "the requests that waited on a's fetch are decided once");
}

#[test]
fn a_failure_is_shared_and_the_retry_followed() {
    let config = config();
    let (mut a, mut b) = two_vms(&config);
    a.tick(&config, NOW);
    b.tick(&config, NOW);
    a.answer(&config, Some(500), b"", NOW);
    assert_eq!(
        a.failures(),
        vec![(
            &FetchError::Response(Step::Jwks, gateway_filter::key_fetch::ResponseError::Status(500)),
            true
        )]
    );
    assert_eq!(a.failures()[0].0.to_string(), "status 500");
    assert!(matches!(a.seen.last(), Some(Command::Wake(SOURCE))));
    // b waited for a's fetch: it learns the failure (not counted as its own fetch) and answers
    // its requests at once.
    b.tick(&config, NOW + 1);
    assert_eq!(b.failures(), vec![(&FetchError::FailedElsewhere, false)]);
    assert_eq!(b.failures()[0].0.to_string(), "fetched by another worker");
    assert!(matches!(b.fetcher.keys().availability(PROVIDER, NOW + 1), KeyAvailability::Unavailable));
    // a holds the lease until its retry (1 s backoff): b's own attempts defer to it, a retries.
    let mut t = NOW + 1;
    while a.dispatched.len() < 2 {
        a.tick(&config, t);
        b.tick(&config, t);
        t += 1;
        assert!(t < NOW + 10, "a never retried");
    }
    assert!(b.dispatched.is_empty(), "b follows a's retries instead of retrying on its own");
    a.answer_jwks(&config, &jwks(), t);
    for later in t..t + 3 {
        b.tick(&config, later);
    }
    assert!(b.has_keys(t + 2), "b adopts the keys of a's successful retry");
    assert!(b.dispatched.is_empty());
}

#[test]
fn a_refused_dispatch_is_a_failure_naming_the_cluster() {
    let config = config();
    let (mut a, mut b) = two_vms(&config);
    a.refuse_dispatch = true;
    a.tick(&config, NOW);
    let (error, led) = a.failures()[0];
    assert!(led);
    assert_eq!(
        error.to_string(),
        "dispatch to cluster 'idp' refused (BadArgument): is the cluster defined in the Envoy config? (in Istio it is named outbound|443||idp.example.com)"
    );
    assert!(matches!(a.fetcher.keys().availability(PROVIDER, NOW), KeyAvailability::Unavailable));
    // The failure is published with the lease kept until a's retry: b defers to it.
    b.tick(&config, NOW);
    assert!(b.dispatched.is_empty());
    assert_eq!(b.woken(), 1);
}

#[test]
fn keys_of_another_vm_are_adopted_with_their_age() {
    let config = config();
    let (mut a, mut b) = two_vms(&config);
    a.tick(&config, NOW);
    a.answer_jwks(&config, &jwks(), NOW);
    // b starts 50 s later (a new worker): it takes a's keys, due for refresh when a's are.
    b.tick(&config, NOW + 50);
    assert!(b.dispatched.is_empty());
    assert_eq!(b.fetcher.keys().age(SOURCE, NOW + 50), Some(50));
    b.tick(&config, NOW + 59);
    assert!(b.dispatched.is_empty());
    // Published keys too old to be fresh are not adopted: a new VM fetches.
    let mut c = Vm::new(&config, 3, &a.store);
    c.tick(&config, NOW + 61);
    assert_eq!(c.dispatched.len(), 1);
    // Something unreadable published by another VM counts as a failed fetch here, without a log.
    let store = Memory::default();
    let record = Record { fetched_at: NOW, failed_at: 0, jwks: b"not json".to_vec() };
    store.map.borrow_mut().insert(record_key("uri idp idp.example.com/keys"), (record.encode(), 1));
    let mut d = Vm::new(&config, 4, &store);
    d.tick(&config, NOW + 1);
    assert!(d.dispatched.is_empty() && d.failures().is_empty());
    assert_eq!((d.woken(), d.fetcher.keys().failures(SOURCE)), (1, 1));
    assert!(matches!(d.fetcher.keys().availability(PROVIDER, NOW + 1), KeyAvailability::Unavailable));
}

#[test]
fn keys_are_dropped_past_max_staleness_on_every_vm_and_come_back() {
    let config = config();
    let (mut a, mut b) = two_vms(&config);
    a.tick(&config, NOW);
    a.answer_jwks(&config, &jwks(), NOW);
    b.tick(&config, NOW);
    // Every refresh fails from NOW + 60 on, whoever makes it.
    let mut t = NOW + 1;
    while t <= NOW + 600 {
        for vm in [&mut a, &mut b] {
            vm.tick(&config, t);
            while !vm.calls.is_empty() {
                vm.answer(&config, None, b"", t);
            }
            assert!(vm.has_keys(t), "t+{}: the last good keys serve until max_stale_seconds", t - NOW);
        }
        t += 1;
    }
    let (error, _) = a.failures().into_iter().chain(b.failures()).find(|(_, led)| *led).unwrap();
    assert_eq!(error.to_string(), "no response (timeout or connection failure)");
    // One VM's schedule, not two: the first fetch, backoffs of 1 to 32 s, then one per 60 s.
    let fetches = a.dispatched.len() + b.dispatched.len();
    assert_eq!(fetches, 1 + 6 + 8, "retries of a failing source are shared");
    let mut dropped = t;
    while a.has_keys(dropped) || b.has_keys(dropped) {
        for vm in [&mut a, &mut b] {
            vm.tick(&config, dropped);
            while !vm.calls.is_empty() {
                vm.answer(&config, None, b"", dropped);
            }
        }
        dropped += 1;
        assert!(dropped < NOW + 700, "stale keys were never dropped");
    }
    assert!(dropped > NOW + 600, "kept until max_stale_seconds");
    // Each VM's next tick drops them, not just hides them.
    for vm in [&mut a, &mut b] {
        vm.tick(&config, dropped);
        while !vm.calls.is_empty() {
            vm.answer(&config, None, b"", dropped);
        }
    }
    assert_eq!((a.fetcher.keys().key_count(PROVIDER), b.fetcher.keys().key_count(PROVIDER)), (0, 0));
    // The provider answers again: keys come back on both VMs within the retry schedule (<= 300 s).
    let back = dropped;
    let mut now = back;
    while !(a.has_keys(now) && b.has_keys(now)) {
        for vm in [&mut a, &mut b] {
            vm.tick(&config, now);
            while !vm.calls.is_empty() {
                vm.answer_jwks(&config, &jwks(), now);
            }
        }
        now += 1;
        assert!(now <= back + 300, "keys did not come back");
    }
}

#[test]
fn discovery_then_jwks_on_another_host() {
    let config = remote_config(json!({"discovery": true, "cluster": "idp",
        "clusters": {"keys.example.com": "keys"}, "timeout_ms": 1000}));
    let (mut a, _) = two_vms(&config);
    a.tick(&config, NOW);
    assert_eq!(a.dispatched[0].step, Step::Discovery);
    assert_eq!(a.dispatched[0].url.path, "/.well-known/openid-configuration");
    let document = json!({"issuer": ISSUER, "jwks_uri": "https://keys.example.com/certs"}).to_string();
    a.answer(&config, Some(200), document.as_bytes(), NOW);
    let jwks_call = &a.dispatched[1];
    assert_eq!((jwks_call.step, jwks_call.cluster.as_str()), (Step::Jwks, "keys"));
    assert_eq!(
        (jwks_call.url.authority.as_str(), jwks_call.url.path.as_str()),
        ("keys.example.com", "/certs")
    );
    assert_eq!(a.woken(), 0, "requests wait through both steps");
    a.answer_jwks(&config, &jwks(), NOW);
    assert!(a.has_keys(NOW));

    // A jwks_uri on a host no cluster is named for, and a document for another issuer.
    for (document, message) in [
        (
            json!({"issuer": ISSUER, "jwks_uri": "https://elsewhere.example.com/certs"}),
            "discovery: jwks_uri is on host 'elsewhere.example.com', which has no cluster: add it under jwks.clusters",
        ),
        (
            json!({"issuer": "https://other.example.com", "jwks_uri": "https://keys.example.com/certs"}),
            "discovery: document's issuer differs from the configured issuer",
        ),
    ] {
        let (mut vm, _) = two_vms(&config);
        vm.tick(&config, NOW);
        vm.answer(&config, Some(200), document.to_string().as_bytes(), NOW);
        assert_eq!(vm.dispatched.len(), 1, "nothing is fetched from the wrong place");
        assert_eq!(vm.failures()[0].0.to_string(), message);
        assert!(matches!(vm.fetcher.keys().availability(PROVIDER, NOW), KeyAvailability::Unavailable));
    }
    let (mut vm, _) = two_vms(&config);
    vm.tick(&config, NOW);
    vm.answer(&config, Some(404), b"", NOW);
    assert_eq!(vm.failures()[0].0.to_string(), "discovery: status 404");
}

#[test]
fn oversized_and_unusable_documents_fail_the_fetch() {
    let config = config();
    let big = vec![b' '; gateway_filter::jwks::MAX_DOCUMENT_BYTES + 1];
    for (body, message) in [
        (big.as_slice(), format!("body of {} bytes is over {}", big.len(), big.len() - 1)),
        (b"{\"keys\": []}".as_slice(), "jwks: no usable signing key".to_owned()),
    ] {
        let (mut vm, _) = two_vms(&config);
        vm.tick(&config, NOW);
        vm.answer(&config, Some(200), body, NOW);
        assert_eq!(vm.failures()[0].0.to_string(), message);
    }
}

fn vm_state(config: &Config, id: u64, store: &Memory) -> (VmState, Memory) {
    (VmState::new(config, id, [7; 16]), store.clone())
}

fn rule(state: &mut VmState, config: &Config, token: &str, now: u64) -> Ruling {
    state.rule(config, &[("authorization".to_owned(), format!("Bearer {token}"))], now)
}

/// Runs a VM's fetch commands against `jwks` as the provider's answer, as the plugin layer would.
fn serve(
    state: &mut VmState,
    store: &mut Memory,
    config: &Config,
    commands: Vec<Command>,
    jwks: &Value,
    now: u64,
) -> usize {
    let mut fetches = 0;
    for command in commands {
        match command {
            Command::Dispatch(request) => {
                fetches += 1;
                let call = CallId(NEXT_CALL.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
                let more = state.key_fetcher().dispatched(store, request, Ok(call), now, 0.0);
                fetches += serve(state, store, config, more, jwks, now);
                let body = jwks.to_string();
                let mut read = |_: usize| Some(body.as_bytes().to_vec());
                let response = Response { status: Some(200), body_size: body.len(), read_body: &mut read };
                let more = state.key_fetcher().answered(config, store, call, response, now, 0.0);
                fetches += serve(state, store, config, more, jwks, now);
            }
            Command::NewKeys(source) => state.forget_removed_keys(source),
            _ => {}
        }
    }
    fetches
}

fn tick(state: &mut VmState, store: &mut Memory, config: &Config, jwks: &Value, now: u64) -> usize {
    let commands = state.key_fetcher().tick(config, store, now, 0.0);
    serve(state, store, config, commands, jwks, now)
}

#[test]
fn an_unknown_kid_flood_on_two_vms_costs_one_fetch_per_interval() {
    let config = config();
    let shared = Memory::default();
    let (mut a, mut store_a) = vm_state(&config, 1, &shared);
    let (mut b, mut store_b) = vm_state(&config, 2, &shared);
    let start =
        tick(&mut a, &mut store_a, &config, &jwks(), NOW) + tick(&mut b, &mut store_b, &config, &jwks(), NOW);
    assert_eq!(start, 1);
    let mut fetches = 0;
    let mut refreshes = 0;
    for i in 0..500u64 {
        let now = NOW + 5 + i / 100;
        let token = mint_with(&json!({"alg": "ES256", "kid": format!("random-{i}")}), &claims(), "ES256");
        let vm = if i % 2 == 0 { &mut a } else { &mut b };
        match rule(vm, &config, &token, now) {
            Ruling::RefreshKeys(SOURCE) => refreshes += 1,
            Ruling::WaitForKeys(SOURCE) | Ruling::Deny(AuthError::KeyNotFound) => {}
            other => panic!("{other:?}"),
        }
        // Each VM's tick comes between requests now and then.
        if i % 50 == 49 {
            fetches += tick(&mut a, &mut store_a, &config, &jwks(), now);
            fetches += tick(&mut b, &mut store_b, &config, &jwks(), now);
        }
    }
    assert_eq!(refreshes, 2, "one unknown-kid refresh per VM in the interval");
    assert_eq!(fetches, 1, "the second VM adopts the first one's refresh");
    // Once the interval has passed, a token signed by a newly published key gets through.
    let mut rotated = jwks();
    rotated["keys"][0]["kid"] = json!("rsa-2");
    let token = mint_with(&json!({"alg": "RS256", "kid": "rsa-2"}), &claims(), "RS256");
    let later = NOW + 40;
    assert_eq!(rule(&mut b, &config, &token, later), Ruling::RefreshKeys(SOURCE));
    assert_eq!(tick(&mut b, &mut store_b, &config, &rotated, later), 1);
    assert!(matches!(rule(&mut b, &config, &token, later), Ruling::Allow(i) if i.provider == "test-idp"));
    assert_eq!(rule(&mut a, &config, &token, later), Ruling::RefreshKeys(SOURCE));
    assert_eq!(tick(&mut a, &mut store_a, &config, &rotated, later), 0, "a adopts b's fresh keys");
    assert!(matches!(rule(&mut a, &config, &token, later), Ruling::Allow(_)));
}

#[test]
fn a_key_that_leaves_the_set_takes_its_cached_tokens_with_it() {
    let config = config();
    let (mut a, mut store) = vm_state(&config, 1, &Memory::default());
    tick(&mut a, &mut store, &config, &jwks(), NOW);
    let token = mint("RS256", &claims());
    assert!(matches!(rule(&mut a, &config, &token, NOW), Ruling::Allow(_)));
    assert!(matches!(rule(&mut a, &config, &token, NOW), Ruling::Allow(_)), "from the token cache");
    let mut without_rsa = jwks();
    without_rsa["keys"].as_array_mut().unwrap().remove(0);
    assert_eq!(tick(&mut a, &mut store, &config, &without_rsa, NOW + 60), 1);
    assert_eq!(
        rule(&mut a, &config, &token, NOW + 60),
        Ruling::RefreshKeys(SOURCE),
        "not served from the cache"
    );
}
