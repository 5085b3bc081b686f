//! Per-provider key state: which keys are usable, whether a fetch is under way, and when the next
//! one is due. Time comes in as an argument, so the state machine is tested with any clock.

use std::rc::Rc;

use crate::config::{Config, JwksSource};
use crate::jwks::KeySet;

/// First retry after a failed fetch; doubles per failure up to the refresh interval.
const FIRST_RETRY_SECONDS: u64 = 1;
/// Retries never wait longer than this, even with a long refresh interval.
const MAX_RETRY_SECONDS: u64 = 300;

/// What a request can do with a provider's keys right now.
pub enum KeyAvailability<'k> {
    Ready(&'k KeySet),
    /// No keys yet, a fetch is under way: wait for it.
    Pending,
    /// No keys and no fetch under way: the identity provider could not be reached.
    Unavailable,
}

#[derive(Debug)]
struct Entry {
    keys: Option<Rc<KeySet>>,
    /// `None` for inline keys, which never refresh.
    refresh_seconds: Option<u64>,
    fetching: bool,
    next_fetch_at: u64,
    failures: u32,
}

#[derive(Debug)]
pub struct KeyStore {
    entries: Vec<Entry>,
}

impl KeyStore {
    /// One entry per configured provider, in order. Remote providers are due at once.
    pub fn new(config: &Config) -> Self {
        let entries = config
            .providers
            .iter()
            .map(|p| match &p.jwks {
                JwksSource::Inline(keys) => Entry {
                    keys: Some(Rc::clone(keys)),
                    refresh_seconds: None,
                    fetching: false,
                    next_fetch_at: u64::MAX,
                    failures: 0,
                },
                JwksSource::Remote(remote) => Entry {
                    keys: None,
                    refresh_seconds: Some(remote.refresh_seconds),
                    fetching: false,
                    next_fetch_at: 0,
                    failures: 0,
                },
            })
            .collect();
        KeyStore { entries }
    }

    pub fn availability(&self, provider: usize) -> KeyAvailability<'_> {
        match self.entries.get(provider) {
            Some(Entry { keys: Some(keys), .. }) => KeyAvailability::Ready(keys),
            Some(Entry { fetching: true, .. }) => KeyAvailability::Pending,
            _ => KeyAvailability::Unavailable,
        }
    }

    /// Providers whose fetch is due at `now`; they are marked as fetching.
    pub fn start_due_fetches(&mut self, now: u64) -> Vec<usize> {
        let mut due = Vec::new();
        for (i, entry) in self.entries.iter_mut().enumerate() {
            if entry.refresh_seconds.is_some() && !entry.fetching && now >= entry.next_fetch_at {
                entry.fetching = true;
                due.push(i);
            }
        }
        due
    }

    pub fn fetch_succeeded(&mut self, provider: usize, keys: KeySet, now: u64) {
        if let Some(entry) = self.entries.get_mut(provider) {
            entry.keys = Some(Rc::new(keys));
            entry.fetching = false;
            entry.failures = 0;
            entry.next_fetch_at = now.saturating_add(entry.refresh_seconds.unwrap_or(u64::MAX));
        }
    }

    /// A failed fetch keeps the last good keys and schedules a retry with exponential backoff.
    pub fn fetch_failed(&mut self, provider: usize, now: u64) {
        if let Some(entry) = self.entries.get_mut(provider) {
            entry.fetching = false;
            entry.failures = entry.failures.saturating_add(1);
            let backoff = FIRST_RETRY_SECONDS
                .checked_shl(entry.failures.saturating_sub(1))
                .unwrap_or(u64::MAX)
                .min(MAX_RETRY_SECONDS)
                .min(entry.refresh_seconds.unwrap_or(MAX_RETRY_SECONDS));
            entry.next_fetch_at = now.saturating_add(backoff);
        }
    }

    pub fn key_count(&self, provider: usize) -> usize {
        self.entries.get(provider).and_then(|e| e.keys.as_ref()).map_or(0, |k| k.len())
    }
}
