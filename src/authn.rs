//! The whole request decision, in two pure steps: `decide` reads headers, configuration, key and
//! introspection state and the time, and says what the request needs (allow, deny, wait, refresh
//! keys, ask the provider); `settle` takes the decision and the VM's state and makes it final: it
//! caches a verified token, applies the unknown-`kid` rate limit and admits introspection calls.
//! `rule` does both. The plugin layer only carries out the `Ruling`.

use crate::api_keys::{digest, find_api_key};
use crate::config::Config;
use crate::credential::{find_credential, Headers};
use crate::diagnosis;
use crate::identity::Identity;
use crate::ids::{ProviderId, SourceId};
use crate::key_fetch::KeyFetcher;
use crate::key_store::{KeyAvailability, KeyStore, UnknownKid};
use crate::opaque::{self, Answer, Digest, Lookup, OpaqueState};
use crate::policy::{self, Source};
use crate::reason::AuthError;
use crate::token::{self, looks_like_jwt};
use crate::token_cache::{CacheKey, TokenCache, Verified};

#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    Allow(Identity),
    /// A token verified now: allow, and remember it in the token cache.
    Verified(Box<Verified>),
    Deny(AuthError),
    /// A fetch of this key source is under way; decide again when it ends.
    WaitForKeys(SourceId),
    /// The token names a `kid` its provider's keys lack: refresh this key source now and decide
    /// again when the fetch ends.
    RefreshKeys(SourceId),
    /// An introspection call about this very token is under way.
    WaitForIntrospection(Digest),
    /// Ask the opaque-token provider about this credential.
    Introspect {
        provider: ProviderId,
        digest: Digest,
        credential: Credential,
    },
}

/// The final decision, which the plugin layer carries out.
#[derive(Debug, PartialEq, Eq)]
pub enum Ruling {
    /// Set the identity headers (and remove the credential if configured); let the request on.
    Allow(Identity),
    Deny(AuthError),
    /// Wait until the fetch of this key source ends, then rule again.
    WaitForKeys(SourceId),
    /// This request started an unknown-`kid` refresh of the source (the key fetcher begins it on
    /// its next tick): wait for it, then rule again.
    RefreshKeys(SourceId),
    /// Wait for the answer of the introspection call about this token.
    WaitForIntrospection(Digest),
    /// Dispatch the introspection call (admitted: counted in flight until `OpaqueState::finish`).
    Introspect {
        provider: ProviderId,
        digest: Digest,
        credential: Credential,
    },
    /// Introspection calls are at their limit: refuse (503), naming the provider in the log.
    IntrospectionThrottled(ProviderId),
}

/// A credential that must leave the VM (to the introspection endpoint); never printed.
#[derive(PartialEq, Eq)]
pub struct Credential(pub String);

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credential(..)")
    }
}

impl Decision {
    /// Who the user is, when the request is let through.
    pub fn identity(&self) -> Option<&Identity> {
        match self {
            Decision::Allow(identity) => Some(identity),
            Decision::Verified(verified) => Some(&verified.identity),
            _ => None,
        }
    }
}

/// What the request path reads of the VM's state.
pub struct State<'a> {
    pub keys: &'a KeyStore,
    pub opaque: &'a OpaqueState,
    pub tokens: &'a TokenCache,
    pub now: u64,
}

/// What the final step may change in the VM's state.
pub struct StateMut<'a> {
    pub fetcher: &'a mut KeyFetcher,
    pub opaque: &'a mut OpaqueState,
    pub tokens: &'a mut TokenCache,
    pub now: u64,
}

/// Decides the request and makes the decision final.
pub fn rule(headers: &Headers, config: &Config, state: &mut StateMut) -> Ruling {
    let decision = decide(
        headers,
        config,
        &State { keys: state.fetcher.keys(), opaque: state.opaque, tokens: state.tokens, now: state.now },
    );
    settle(decision, config, state)
}

/// Makes a decision final: remembers a verified token, starts an unknown-`kid` refresh, admits an
/// introspection call.
pub fn settle(decision: Decision, config: &Config, state: &mut StateMut) -> Ruling {
    let now = state.now;
    match decision {
        Decision::Allow(identity) => Ruling::Allow(identity),
        Decision::Verified(verified) => {
            let identity = verified.identity.clone();
            state.tokens.insert(*verified, now);
            Ruling::Allow(identity)
        }
        Decision::Deny(reason) => Ruling::Deny(reason),
        Decision::WaitForKeys(source) => Ruling::WaitForKeys(source),
        // `decide` saw the refresh allowed; a decision made against older state may find it taken.
        Decision::RefreshKeys(source) => {
            if state.fetcher.refresh_for_unknown_kid(source, now) {
                Ruling::RefreshKeys(source)
            } else if state.fetcher.keys().is_fetching(source) {
                Ruling::WaitForKeys(source)
            } else {
                Ruling::Deny(AuthError::KeyNotFound)
            }
        }
        Decision::WaitForIntrospection(digest) => Ruling::WaitForIntrospection(digest),
        Decision::Introspect { provider, digest, credential } => {
            let Some(opaque) = config.provider(provider).and_then(|p| p.opaque_tokens.as_ref()) else {
                return Ruling::Deny(AuthError::IntrospectionUnavailable);
            };
            if state.opaque.admit(digest, opaque.max_pending, opaque.max_calls_per_second, now) {
                Ruling::Introspect { provider, digest, credential }
            } else {
                Ruling::IntrospectionThrottled(provider)
            }
        }
    }
}

/// The credential headers an allowed request loses before it goes upstream (`remove_credential`).
pub fn credential_headers<'a>(config: &'a Config, headers: &'a Headers) -> impl Iterator<Item = &'a str> {
    config
        .token_headers
        .iter()
        .filter(move |name| config.remove_credential && headers.iter().any(|(n, _)| n == *name))
        .map(String::as_str)
}

/// What the requests waiting on an introspection call get from its answer: the verdict itself
/// (not a new decision, which could start another call), or a 503 when the endpoint failed.
pub fn rule_on_answer(answer: &Answer) -> Ruling {
    match answer {
        Answer::Verdict { outcome: Ok(identity), .. } => Ruling::Allow(identity.clone()),
        Answer::Verdict { outcome: Err(reason), .. } => Ruling::Deny(*reason),
        Answer::Failed(_) => Ruling::Deny(AuthError::IntrospectionUnavailable),
    }
}

pub fn decide(headers: &Headers, config: &Config, state: &State) -> Decision {
    match authenticate(headers, config, state) {
        Ok(decision) => decision,
        Err(reason) => Decision::Deny(reason),
    }
}

fn authenticate(headers: &Headers, config: &Config, state: &State) -> Result<Decision, AuthError> {
    let found = find_credential(headers, &config.token_headers, config.limits.max_credential_bytes)?;
    let credential = found.value;
    if looks_like_jwt(credential) {
        let key = state.tokens.key_of(credential);
        if let Some(hit) = state.tokens.get(&key, state.now) {
            return Ok(Decision::Allow(hit.identity.clone()));
        }
        return verify_jwt(credential, key, config, state);
    }
    // The SHA-256 serves the API keys (configured as SHA-256) and the opaque-token cache.
    let digest = digest(credential);
    if let Some(key) = find_api_key(&config.api_keys, &digest) {
        return Ok(Decision::Allow(Identity::from_api_key(key)));
    }
    // Only a bearer token shaped like the provider's may leave the VM: anything else (a client's
    // own API key in x-api-key) is an unknown API key, never sent out.
    let Some((provider, _)) =
        config.opaque_provider().filter(|(_, p)| found.bearer && opaque::may_ask(p, credential))
    else {
        return Err(AuthError::UnknownApiKey);
    };
    match state.opaque.lookup(&digest, state.now) {
        Lookup::Hit(outcome) => outcome.map(Decision::Allow),
        Lookup::InFlight => Ok(Decision::WaitForIntrospection(digest)),
        Lookup::Miss => {
            Ok(Decision::Introspect { provider, digest, credential: Credential(credential.to_owned()) })
        }
    }
}

fn verify_jwt(
    credential: &str,
    key: CacheKey,
    config: &Config,
    state: &State,
) -> Result<Decision, AuthError> {
    let token = token::parse(credential)?;
    let issuer = token.issuer().ok_or(AuthError::IssuerNotTrusted)?;
    let Some((index, provider)) = config.provider_for_issuer(issuer) else {
        return Err(diagnosis::untrusted_issuer(issuer, config));
    };
    if let Some(reason) = diagnosis::foreign_token(&token, provider) {
        return Err(reason);
    }
    let key_set = match state.keys.availability(index, state.now) {
        KeyAvailability::Ready(key_set) => key_set,
        KeyAvailability::Pending => {
            return state.keys.source_of(index).map(Decision::WaitForKeys).ok_or(AuthError::KeysUnavailable)
        }
        KeyAvailability::Unavailable => return Err(AuthError::KeysUnavailable),
    };
    let has_kid = token.kid.is_some();
    let claims = match token.verify(provider, key_set, state.now) {
        // Rotation: the provider may have published the key since the last fetch.
        Err(AuthError::KeyNotFound) if has_kid => {
            return match state.keys.unknown_kid(index, state.now) {
                UnknownKid::Refresh(source) => Ok(Decision::RefreshKeys(source)),
                UnknownKid::Wait(source) => Ok(Decision::WaitForKeys(source)),
                UnknownKid::Refuse => Err(AuthError::KeyNotFound),
            }
        }
        other => other?,
    };
    // Policy only once the token is known to be genuine.
    let identity = policy::admit(&claims.claims, provider, Source::Token)?;
    Ok(Decision::Verified(Box::new(Verified {
        key,
        provider: index,
        identity,
        expires_at: claims.expires_at(),
        key_fingerprint: claims.key_fingerprint,
    })))
}
