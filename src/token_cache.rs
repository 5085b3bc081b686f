//! Tokens verified recently, per VM: a hit skips the signature check, the costliest step.
//! Keyed by a 128-bit SipHash-2-4 of the token under a random per-VM key: a keyed PRF, so nobody
//! without the key can make another token land on a cached entry, and several times cheaper in
//! Wasm than SHA-256 on the hit path. An entry never outlives the token's `exp` nor `max_seconds`, is
//! dropped when the key that signed it leaves its provider's key set, and only successes are ever
//! stored. Bounded in entries and bytes; eviction is CLOCK (second chance), an O(1) approximation
//! of least-recently-used.

use std::cell::Cell;
use std::collections::HashMap;

use crate::config::CacheLimits;
use crate::identity::Identity;
use crate::ids::ProviderId;

use siphasher::sip128::{Hasher128, SipHasher24};

/// A token's cache key: its keyed hash.
pub type CacheKey = [u8; 16];

/// What a verified token leaves in the cache.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    pub key: CacheKey,
    pub provider: ProviderId,
    pub identity: Identity,
    pub expires_at: u64,
    pub key_fingerprint: u64,
}

struct Slot {
    entry: Verified,
    bytes: usize,
    referenced: Cell<bool>,
}

pub struct TokenCache {
    limits: CacheLimits,
    hash_key: [u8; 16],
    index: HashMap<CacheKey, usize>,
    slots: Vec<Option<Slot>>,
    free: Vec<usize>,
    hand: usize,
    bytes: usize,
}

/// Fixed cost of an entry beyond its strings (key, indexes, Vec and HashMap overhead).
const ENTRY_OVERHEAD_BYTES: usize = 160;

fn size_of(entry: &Verified) -> usize {
    let identity = &entry.identity;
    ENTRY_OVERHEAD_BYTES
        + identity.user_id.len()
        + identity.email.as_ref().map_or(0, String::len)
        + identity.name.as_ref().map_or(0, String::len)
        + identity.groups.len()
        + identity.provider.len()
        + identity.tenant_id.as_ref().map_or(0, String::len)
}

impl TokenCache {
    /// `hash_key`: random, per VM; it never leaves the VM.
    pub fn new(limits: CacheLimits, hash_key: [u8; 16]) -> Self {
        TokenCache {
            limits,
            hash_key,
            index: HashMap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            hand: 0,
            bytes: 0,
        }
    }

    /// The cache key of a token.
    pub fn key_of(&self, token: &str) -> CacheKey {
        let mut hasher = SipHasher24::new_with_key(&self.hash_key);
        std::hash::Hasher::write(&mut hasher, token.as_bytes());
        hasher.finish128().as_bytes()
    }

    /// The identity of a token verified before and still valid at `now`.
    pub fn get(&self, key: &CacheKey, now: u64) -> Option<&Verified> {
        let slot = self.slots.get(*self.index.get(key)?)?.as_ref()?;
        if now >= slot.entry.expires_at {
            return None;
        }
        slot.referenced.set(true);
        Some(&slot.entry)
    }

    pub fn insert(&mut self, mut entry: Verified, now: u64) {
        if self.limits.max_seconds == 0 || self.limits.max_entries == 0 {
            return;
        }
        entry.expires_at = entry.expires_at.min(now.saturating_add(self.limits.max_seconds));
        if entry.expires_at <= now {
            return;
        }
        let bytes = size_of(&entry);
        if bytes > self.limits.max_bytes {
            return;
        }
        self.remove(&entry.key);
        while self.index.len() >= self.limits.max_entries || self.bytes + bytes > self.limits.max_bytes {
            if !self.evict_one() {
                return;
            }
        }
        let slot = Slot { entry, bytes, referenced: Cell::new(false) };
        let key = slot.entry.key;
        let position = match self.free.pop() {
            Some(position) => {
                if let Some(place) = self.slots.get_mut(position) {
                    *place = Some(slot);
                }
                position
            }
            None => {
                self.slots.push(Some(slot));
                self.slots.len() - 1
            }
        };
        self.bytes += bytes;
        self.index.insert(key, position);
    }

    /// Drops the entries of `provider` whose signing key `still_present` says is gone.
    pub fn retain_keys(&mut self, provider: ProviderId, still_present: impl Fn(u64) -> bool) {
        let gone: Vec<CacheKey> = self
            .slots
            .iter()
            .flatten()
            .filter(|s| s.entry.provider == provider && !still_present(s.entry.key_fingerprint))
            .map(|s| s.entry.key)
            .collect();
        for key in gone {
            self.remove(&key);
        }
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    fn remove(&mut self, key: &CacheKey) {
        if let Some(position) = self.index.remove(key) {
            if let Some(slot) = self.slots.get_mut(position).and_then(Option::take) {
                self.bytes -= slot.bytes;
                self.free.push(position);
            }
        }
    }

    /// Advances the clock hand to an entry not used since the hand last passed, and drops it.
    fn evict_one(&mut self) -> bool {
        if self.index.is_empty() {
            return false;
        }
        // Two sweeps clear every reference bit, so a victim is always found.
        for _ in 0..2 * self.slots.len() {
            let position = self.hand % self.slots.len();
            self.hand = position + 1;
            let victim = match self.slots.get(position) {
                Some(Some(slot)) if slot.referenced.get() => {
                    slot.referenced.set(false);
                    None
                }
                Some(Some(slot)) => Some(slot.entry.key),
                _ => None,
            };
            if let Some(key) = victim {
                self.remove(&key);
                return true;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: u8, provider: usize, expires_at: u64, key: u64) -> Verified {
        Verified {
            key: [n; 16],
            provider: ProviderId(provider),
            identity: Identity {
                user_id: format!("user-{n:03}"),
                email: None,
                name: None,
                groups: String::new(),
                provider: "p".into(),
                tenant_id: None,
                groups_overage: false,
            },
            expires_at,
            key_fingerprint: key,
        }
    }

    fn limits(max_entries: usize) -> CacheLimits {
        CacheLimits { max_entries, max_bytes: 1 << 20, max_seconds: 600 }
    }

    #[test]
    fn hits_until_expiry_or_cap() {
        let mut cache = TokenCache::new(limits(10), [7; 16]);
        cache.insert(entry(1, 0, 1_100, 7), 1_000);
        assert_eq!(cache.get(&[1; 16], 1_099).map(|e| e.identity.user_id.as_str()), Some("user-001"));
        assert!(cache.get(&[1; 16], 1_100).is_none(), "never past exp");
        cache.insert(entry(2, 0, 1_000_000, 7), 1_000);
        assert!(cache.get(&[2; 16], 1_599).is_some());
        assert!(cache.get(&[2; 16], 1_600).is_none(), "never past max_seconds");
        assert!(cache.get(&[3; 16], 1_000).is_none());
        cache.insert(entry(4, 0, 999, 7), 1_000);
        assert!(cache.get(&[4; 16], 998).is_none(), "expired tokens are not stored");
    }

    #[test]
    fn least_recently_used_goes_first() {
        let mut cache = TokenCache::new(limits(3), [7; 16]);
        for n in 1..=3 {
            cache.insert(entry(n, 0, 5_000, 7), 1_000);
        }
        // 1 and 3 are used; 2 is not: it is the one evicted for 4.
        assert!(cache.get(&[1; 16], 1_000).is_some());
        assert!(cache.get(&[3; 16], 1_000).is_some());
        cache.insert(entry(4, 0, 5_000, 7), 1_000);
        assert_eq!(cache.len(), 3);
        assert!(cache.get(&[2; 16], 1_000).is_none());
        for n in [1, 3, 4] {
            assert!(cache.get(&[n; 16], 1_000).is_some(), "{n}");
        }
    }

    #[test]
    fn bounded_in_entries_and_bytes() {
        let mut cache = TokenCache::new(limits(100), [7; 16]);
        for n in 0..=255 {
            cache.insert(entry(n, 0, 5_000, 7), 1_000);
        }
        assert_eq!(cache.len(), 100);
        let one = size_of(&entry(1, 0, 0, 0));
        let mut small =
            TokenCache::new(CacheLimits { max_entries: 1000, max_bytes: one * 5, max_seconds: 600 }, [7; 16]);
        for n in 0..50 {
            small.insert(entry(n, 0, 5_000, 7), 1_000);
        }
        assert_eq!(small.len(), 5);
        assert!(small.bytes() <= one * 5);
    }

    #[test]
    fn entries_go_with_their_signing_key() {
        let mut cache = TokenCache::new(limits(10), [7; 16]);
        cache.insert(entry(1, 0, 5_000, 7), 1_000);
        cache.insert(entry(2, 0, 5_000, 8), 1_000);
        cache.insert(entry(3, 1, 5_000, 8), 1_000);
        cache.retain_keys(ProviderId(0), |key| key == 7);
        assert!(cache.get(&[1; 16], 1_000).is_some());
        assert!(cache.get(&[2; 16], 1_000).is_none(), "key 8 left provider 0");
        assert!(cache.get(&[3; 16], 1_000).is_some(), "provider 1 is not touched");
    }

    #[test]
    fn keys_depend_on_the_token_and_the_vm_key() {
        let a = TokenCache::new(limits(1), [1; 16]);
        let b = TokenCache::new(limits(1), [2; 16]);
        assert_eq!(a.key_of("t"), a.key_of("t"));
        assert_ne!(a.key_of("t"), a.key_of("u"));
        assert_ne!(a.key_of("t"), b.key_of("t"));
    }

    #[test]
    fn off_when_max_seconds_is_zero() {
        let mut cache =
            TokenCache::new(CacheLimits { max_entries: 10, max_bytes: 1 << 20, max_seconds: 0 }, [7; 16]);
        cache.insert(entry(1, 0, 5_000, 7), 1_000);
        assert!(cache.is_empty());
    }
}
