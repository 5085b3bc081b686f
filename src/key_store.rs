//! Key state per key source: which keys are usable, whether a fetch is under way, and when the
//! next one is due. Providers that name the same source (Entra's v1 and v2 issuers, say) share it.
//! Time and jitter come in as arguments, so the state machine is tested with any clock.

use std::rc::Rc;

use crate::config::{Config, JwksSource};
use crate::ids::{ProviderId, SourceId};
use crate::jwks::KeySet;

/// First retry after a failed fetch; doubles per failure.
const FIRST_RETRY_SECONDS: u64 = 1;
/// Retries of a provider that never answered stay frequent, so it is usable soon after it is back.
const MAX_RETRY_NEVER_FETCHED_SECONDS: u64 = 30;
/// Retries while the last good keys still serve can wait longer.
const MAX_RETRY_SECONDS: u64 = 300;

/// What a request can do with a provider's keys right now.
pub enum KeyAvailability<'k> {
    Ready(&'k KeySet),
    /// No usable keys, a fetch is under way (or about to start, right after configuration): wait.
    Pending,
    /// No usable keys and no fetch under way: the identity provider could not be reached.
    Unavailable,
}

/// What to do about a token whose `kid` is not in the key set.
#[derive(Debug, PartialEq, Eq)]
pub enum UnknownKid {
    /// A refresh may start now (the caller starts it with `start_unknown_kid_refresh`).
    Refresh(SourceId),
    /// A fetch is under way already: wait for it.
    Wait(SourceId),
    /// A refresh for an unknown `kid` happened too recently: refuse now.
    Refuse,
}

#[derive(Debug)]
struct Source {
    keys: Option<Rc<KeySet>>,
    /// A fetch was started at least once; before that (the first tick after configuration) a
    /// request waits instead of being told the provider is unreachable.
    attempted: bool,
    fetched_at: u64,
    fetching: bool,
    next_fetch_at: u64,
    failures: u32,
    last_unknown_kid_refresh: Option<u64>,
    refresh_seconds: u64,
    max_stale_seconds: u64,
    unknown_kid_refresh_seconds: u64,
}

#[derive(Debug)]
enum ProviderKeys {
    Inline(Rc<KeySet>),
    Source(SourceId),
}

#[derive(Debug)]
pub struct KeyStore {
    providers: Vec<ProviderKeys>,
    sources: Vec<Source>,
    /// Per source: its shared name and the first provider that names it (for logs and fetches).
    names: Vec<(String, ProviderId)>,
}

impl KeyStore {
    /// Remote sources are due at once.
    pub fn new(config: &Config) -> Self {
        let mut store = KeyStore { providers: Vec::new(), sources: Vec::new(), names: Vec::new() };
        for (index, provider) in config.providers.iter().enumerate() {
            let keys = match &provider.jwks {
                JwksSource::Inline(keys) => ProviderKeys::Inline(Rc::clone(keys)),
                JwksSource::Remote(remote) => {
                    let name = remote.shared_name();
                    let source = match store.names.iter().position(|(known, _)| *known == name) {
                        Some(existing) => {
                            // Shared: refresh as often as the most demanding provider asks.
                            if let Some(s) = store.sources.get_mut(existing) {
                                s.refresh_seconds = s.refresh_seconds.min(remote.refresh_seconds);
                                s.max_stale_seconds = s.max_stale_seconds.min(remote.max_stale_seconds);
                            }
                            existing
                        }
                        None => {
                            store.sources.push(Source {
                                keys: None,
                                attempted: false,
                                fetched_at: 0,
                                fetching: false,
                                next_fetch_at: 0,
                                failures: 0,
                                last_unknown_kid_refresh: None,
                                refresh_seconds: remote.refresh_seconds,
                                max_stale_seconds: remote.max_stale_seconds,
                                unknown_kid_refresh_seconds: remote.unknown_kid_refresh_seconds,
                            });
                            store.names.push((name, ProviderId(index)));
                            store.sources.len() - 1
                        }
                    };
                    ProviderKeys::Source(SourceId(source))
                }
            };
            store.providers.push(keys);
        }
        store
    }

    /// The source a provider's keys come from (`None` for inline keys).
    pub fn source_of(&self, provider: ProviderId) -> Option<SourceId> {
        match self.providers.get(provider.0)? {
            ProviderKeys::Source(source) => Some(*source),
            ProviderKeys::Inline(_) => None,
        }
    }

    /// The first provider that names `source`: whose settings its fetches use.
    pub fn provider_of(&self, source: SourceId) -> Option<ProviderId> {
        self.names.get(source.0).map(|(_, provider)| *provider)
    }

    /// What names `source` across VMs (`RemoteJwks::shared_name`), in shared data.
    pub fn shared_name(&self, source: SourceId) -> Option<&str> {
        self.names.get(source.0).map(|(name, _)| name.as_str())
    }

    /// Every provider whose keys come from `source`.
    pub fn providers_using(&self, source: SourceId) -> impl Iterator<Item = ProviderId> + '_ {
        self.providers.iter().enumerate().filter_map(move |(index, keys)| match keys {
            ProviderKeys::Source(s) if *s == source => Some(ProviderId(index)),
            _ => None,
        })
    }

    pub fn sources(&self) -> usize {
        self.sources.len()
    }

    pub fn availability(&self, provider: ProviderId, now: u64) -> KeyAvailability<'_> {
        let source = match self.providers.get(provider.0) {
            Some(ProviderKeys::Inline(keys)) => return KeyAvailability::Ready(keys),
            Some(ProviderKeys::Source(source)) => self.sources.get(source.0),
            None => None,
        };
        let Some(source) = source else { return KeyAvailability::Unavailable };
        match &source.keys {
            Some(keys) if !source.is_too_stale(now) => KeyAvailability::Ready(keys),
            _ if source.fetching || !source.attempted => KeyAvailability::Pending,
            _ => KeyAvailability::Unavailable,
        }
    }

    /// A token named a `kid` the provider's keys lack: refresh at once unless one was done for this
    /// reason within `unknown_kid_refresh_seconds`.
    pub fn unknown_kid(&self, provider: ProviderId, now: u64) -> UnknownKid {
        match self.source_of(provider) {
            Some(source) => self.unknown_kid_of(source, now),
            None => UnknownKid::Refuse,
        }
    }

    fn unknown_kid_of(&self, index: SourceId, now: u64) -> UnknownKid {
        let Some(source) = self.sources.get(index.0) else { return UnknownKid::Refuse };
        if source.fetching {
            return UnknownKid::Wait(index);
        }
        match source.last_unknown_kid_refresh {
            Some(last) if now < last.saturating_add(source.unknown_kid_refresh_seconds) => UnknownKid::Refuse,
            _ => UnknownKid::Refresh(index),
        }
    }

    /// Starts an unknown-`kid` refresh of `source` if `unknown_kid` allows one; true when it started.
    pub fn start_unknown_kid_refresh(&mut self, source: SourceId, now: u64) -> bool {
        if self.unknown_kid_of(source, now) != UnknownKid::Refresh(source) {
            return false;
        }
        let Some(s) = self.sources.get_mut(source.0) else { return false };
        s.last_unknown_kid_refresh = Some(now);
        s.fetching = true;
        true
    }

    /// Sources whose fetch is due at `now`; they are marked as fetching. Keys past their maximum
    /// staleness are dropped here.
    pub fn start_due_fetches(&mut self, now: u64) -> Vec<SourceId> {
        let mut due = Vec::new();
        for (i, source) in self.sources.iter_mut().enumerate() {
            if source.is_too_stale(now) {
                source.keys = None;
            }
            if !source.fetching && now >= source.next_fetch_at {
                source.fetching = true;
                source.attempted = true;
                due.push(SourceId(i));
            }
        }
        due
    }

    /// New keys: the time they were fetched is `fetched_at` (earlier than `now` when another VM
    /// fetched them).
    pub fn fetch_succeeded(&mut self, source: SourceId, keys: Rc<KeySet>, fetched_at: u64, now: u64) {
        if let Some(s) = self.sources.get_mut(source.0) {
            s.keys = Some(keys);
            s.fetched_at = fetched_at;
            s.fetching = false;
            s.failures = 0;
            s.next_fetch_at = fetched_at.saturating_add(s.refresh_seconds).max(now);
        }
    }

    /// A failed fetch keeps the last good keys and retries after a backoff that doubles per
    /// failure, plus `jitter` (0..1 of the backoff) so workers and gateways do not retry in step.
    pub fn fetch_failed(&mut self, source: SourceId, now: u64, jitter: f64) {
        if let Some(s) = self.sources.get_mut(source.0) {
            s.fetching = false;
            s.failures = s.failures.saturating_add(1);
            let cap = if s.keys.is_some() { MAX_RETRY_SECONDS } else { MAX_RETRY_NEVER_FETCHED_SECONDS };
            let backoff = FIRST_RETRY_SECONDS
                .checked_shl(s.failures.saturating_sub(1))
                .unwrap_or(u64::MAX)
                .min(cap)
                .min(s.refresh_seconds);
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
            let extra = (backoff as f64 * jitter.clamp(0.0, 1.0)) as u64;
            s.next_fetch_at = now.saturating_add(backoff).saturating_add(extra);
        }
    }

    /// Another VM fetches this source and will try again at `retry_at`: nothing is in flight here
    /// (requests do not wait), and this VM looks again then.
    pub fn defer_fetch(&mut self, source: SourceId, retry_at: u64) {
        if let Some(s) = self.sources.get_mut(source.0) {
            s.fetching = false;
            s.next_fetch_at = retry_at;
        }
    }

    /// The keys of `source`, when it has any (to decide whether new keys changed anything).
    pub fn keys(&self, source: SourceId) -> Option<&Rc<KeySet>> {
        self.sources.get(source.0)?.keys.as_ref()
    }

    pub fn key_count(&self, provider: ProviderId) -> usize {
        match self.providers.get(provider.0) {
            Some(ProviderKeys::Inline(keys)) => keys.len(),
            Some(ProviderKeys::Source(source)) => {
                self.sources.get(source.0).and_then(|s| s.keys.as_ref()).map_or(0, |k| k.len())
            }
            None => 0,
        }
    }

    /// Seconds since the keys of `source` were fetched, if it has keys.
    pub fn age(&self, source: SourceId, now: u64) -> Option<u64> {
        let s = self.sources.get(source.0)?;
        s.keys.as_ref().map(|_| now.saturating_sub(s.fetched_at))
    }

    /// When the next fetch of `source` is due.
    pub fn next_fetch_at(&self, source: SourceId) -> Option<u64> {
        self.sources.get(source.0).map(|s| s.next_fetch_at)
    }

    pub fn failures(&self, source: SourceId) -> u32 {
        self.sources.get(source.0).map_or(0, |s| s.failures)
    }

    pub fn is_fetching(&self, source: SourceId) -> bool {
        self.sources.get(source.0).is_some_and(|s| s.fetching)
    }
}

impl Source {
    fn is_too_stale(&self, now: u64) -> bool {
        self.keys.is_some() && now > self.fetched_at.saturating_add(self.max_stale_seconds)
    }
}
