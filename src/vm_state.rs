//! The state one VM's root context and its requests share, with its one owner: keys and their
//! fetches, introspection answers and calls in flight, the verified-token cache, and the requests
//! paused until a fetch or an answer ends. The plugin layer keeps it in one `RefCell` and reaches
//! it only through these methods.

use std::collections::HashMap;

use crate::authn::{self, Ruling, StateMut};
use crate::config::Config;
use crate::credential::Headers;
use crate::ids::{CallId, ContextId, ProviderId, SourceId};
use crate::key_fetch::KeyFetcher;
use crate::key_store::KeyStore;
use crate::opaque::{evaluate, Answer, CallFailure, Digest, OpaqueState, MAX_ANSWER_BYTES};
use crate::token_cache::TokenCache;

/// What a paused request waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitOn {
    /// The end of a fetch of a key source.
    Keys(SourceId),
    /// The answer about an opaque token, by digest.
    Introspection(Digest),
}

/// An introspection call in flight: the request that made it (the host cancels it with that
/// request), the provider asked, the token's digest.
struct Introspection {
    context: ContextId,
    provider: ProviderId,
    digest: Digest,
}

pub struct VmState {
    fetcher: KeyFetcher,
    opaque: OpaqueState,
    tokens: TokenCache,
    introspections: HashMap<CallId, Introspection>,
    waiting: Vec<(ContextId, WaitOn)>,
}

impl VmState {
    /// `vm_id`: this VM's id in fetch leases; `hash_key`: the token cache's random key.
    pub fn new(config: &Config, vm_id: u64, hash_key: [u8; 16]) -> Self {
        VmState {
            fetcher: KeyFetcher::new(config, vm_id),
            opaque: OpaqueState::default(),
            tokens: TokenCache::new(config.token_cache, hash_key),
            introspections: HashMap::new(),
            waiting: Vec::new(),
        }
    }

    /// The final decision about a request (`authn::rule`).
    pub fn rule(&mut self, config: &Config, headers: &Headers, now: u64) -> Ruling {
        let mut state =
            StateMut { fetcher: &mut self.fetcher, opaque: &mut self.opaque, tokens: &mut self.tokens, now };
        authn::rule(headers, config, &mut state)
    }

    pub fn keys(&self) -> &KeyStore {
        self.fetcher.keys()
    }

    /// Whether `call` is one of this VM's key fetches (else an introspection).
    pub fn is_fetch_call(&self, call: CallId) -> bool {
        self.fetcher.is_fetch_call(call)
    }

    /// The key-fetch protocol, for the root context to feed its events.
    pub fn key_fetcher(&mut self) -> &mut KeyFetcher {
        &mut self.fetcher
    }

    /// New keys of `source`: cached tokens of its providers whose signing key is gone are dropped.
    pub fn forget_removed_keys(&mut self, source: SourceId) {
        let Some(keys) = self.fetcher.keys().keys(source) else { return };
        for provider in self.fetcher.keys().providers_using(source) {
            self.tokens.retain_keys(provider, |fingerprint| keys.has_fingerprint(fingerprint));
        }
    }

    pub fn wait(&mut self, context: ContextId, on: WaitOn) {
        self.waiting.push((context, on));
    }

    /// Takes the requests waiting on `on` out of the list: resuming a request may end it.
    pub fn take_waiting(&mut self, on: WaitOn) -> Vec<ContextId> {
        let (woken, still): (Vec<_>, Vec<_>) = self.waiting.drain(..).partition(|(_, w)| *w == on);
        self.waiting = still;
        woken.into_iter().map(|(context, _)| context).collect()
    }

    /// The introspection call `Ruling::Introspect` asked for is dispatched: the request waits for it.
    pub fn introspection_sent(
        &mut self,
        call: CallId,
        context: ContextId,
        provider: ProviderId,
        digest: Digest,
    ) {
        self.introspections.insert(call, Introspection { context, provider, digest });
        self.wait(context, WaitOn::Introspection(digest));
    }

    /// The call could not be dispatched (it was admitted): nothing is in flight for the token.
    pub fn introspection_not_sent(&mut self, digest: &Digest, now: u64) {
        self.opaque.finish(digest, &Answer::Failed(CallFailure::NotDispatched), now);
    }

    /// An introspection call answered: what it means, remembered for the token. `None` when the call
    /// is not one of this VM's introspections. The body is read only when small enough.
    pub fn introspection_answered(
        &mut self,
        config: &Config,
        call: CallId,
        status: Option<u32>,
        body_size: usize,
        read_body: impl FnOnce(usize) -> Option<Vec<u8>>,
        now: u64,
    ) -> Option<(ProviderId, Digest, Answer)> {
        let Introspection { provider: id, digest, .. } = self.introspections.remove(&call)?;
        let provider = config.provider(id)?;
        let opaque = provider.opaque_tokens.as_ref()?;
        let body = if body_size <= MAX_ANSWER_BYTES { read_body(body_size) } else { None };
        let answer = evaluate(provider, opaque, status, &body.unwrap_or_default(), now);
        self.opaque.finish(&digest, &answer, now);
        Some((id, digest, answer))
    }

    /// A request ended: it waits for nothing any more, and the host cancelled its calls. Returns
    /// the digests of those calls (`abandon` each).
    pub fn forget(&mut self, context: ContextId) -> Vec<Digest> {
        self.waiting.retain(|(waiting, _)| *waiting != context);
        let calls: Vec<CallId> =
            self.introspections.iter().filter(|(_, c)| c.context == context).map(|(call, _)| *call).collect();
        calls.iter().filter_map(|call| self.introspections.remove(call)).map(|c| c.digest).collect()
    }

    /// The answer other requests get about a token whose call was cancelled.
    pub fn abandon(&mut self, digest: &Digest, now: u64) -> Answer {
        let failed = Answer::Failed(CallFailure::RequestEnded);
        self.opaque.finish(digest, &failed, now);
        failed
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::config::parse_config;
    use crate::reason::AuthError;

    fn config() -> Config {
        parse_config(&json!({"providers": [{"name": "sso", "issuer": "https://sso.example.com", "audiences": ["gw"],
            "jwks": {"uri": "https://sso.example.com/keys", "cluster": "sso"},
            "opaque_tokens": {"style": "rfc7662", "uri": "https://sso.example.com/introspect", "cluster": "sso"}}]}))
        .unwrap()
    }

    #[test]
    fn waiters_are_woken_once_and_forgotten_when_they_end() {
        let mut state = VmState::new(&config(), 1, [0; 16]);
        state.wait(ContextId(1), WaitOn::Keys(SourceId(0)));
        state.wait(ContextId(2), WaitOn::Introspection([9; 32]));
        state.wait(ContextId(3), WaitOn::Keys(SourceId(0)));
        state.forget(ContextId(3));
        assert_eq!(state.take_waiting(WaitOn::Keys(SourceId(0))), vec![ContextId(1)]);
        assert!(state.take_waiting(WaitOn::Keys(SourceId(0))).is_empty());
        assert_eq!(state.take_waiting(WaitOn::Introspection([9; 32])), vec![ContextId(2)]);
    }

    #[test]
    fn an_introspection_ends_with_its_answer_or_its_request() {
        let config = config();
        let mut state = VmState::new(&config, 1, [0; 16]);
        let headers = [("authorization".to_owned(), "Bearer opaque-1".to_owned())];
        let Ruling::Introspect { provider, digest, .. } = state.rule(&config, &headers, 1_000) else {
            panic!()
        };
        state.introspection_sent(CallId(7), ContextId(1), provider, digest);
        // A second request for the same token waits for that call instead of making another.
        assert_eq!(state.rule(&config, &headers, 1_000), Ruling::WaitForIntrospection(digest));
        assert!(state.introspection_answered(&config, CallId(8), Some(200), 0, |_| None, 1_000).is_none());
        let body = br#"{"active": false}"#;
        let (_, answered, answer) = state
            .introspection_answered(&config, CallId(7), Some(200), body.len(), |_| Some(body.to_vec()), 1_000)
            .unwrap();
        assert_eq!(answered, digest);
        assert_eq!(authn::rule_on_answer(&answer), Ruling::Deny(AuthError::TokenInactive));
        assert_eq!(
            state.rule(&config, &headers, 1_001),
            Ruling::Deny(AuthError::TokenInactive),
            "remembered"
        );
        // The request that made a call ends first: the call is abandoned, the token asked again later.
        let other = [("authorization".to_owned(), "Bearer opaque-2".to_owned())];
        let Ruling::Introspect { provider, digest, .. } = state.rule(&config, &other, 1_000) else {
            panic!()
        };
        state.introspection_sent(CallId(9), ContextId(2), provider, digest);
        assert_eq!(state.forget(ContextId(2)), vec![digest]);
        assert!(matches!(state.abandon(&digest, 1_000), Answer::Failed(_)));
        assert!(matches!(state.rule(&config, &other, 1_000), Ruling::Introspect { .. }));
    }
}
