//! The whole request decision in one pure function: headers, configuration, key and introspection
//! state and the time in; allow, deny, wait, or ask the provider out.

use crate::api_keys::{digest, find_api_key};
use crate::config::Config;
use crate::credential::{find_credential, Headers};
use crate::diagnosis;
use crate::identity::Identity;
use crate::key_store::{KeyAvailability, KeyStore, UnknownKid};
use crate::opaque::{self, Digest, Lookup, OpaqueState};
use crate::policy::{self, Source};
use crate::reason::AuthError;
use crate::token::{self, looks_like_jwt};
use crate::token_cache::{Digest as CacheKey, TokenCache, Verified};

#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    Allow(Identity),
    /// A token verified now: allow, and remember it in the token cache.
    Verified(Box<Verified>),
    Deny(AuthError),
    /// A fetch of this key source is under way; decide again when it ends.
    WaitForKeys(usize),
    /// The token names a `kid` its provider's keys lack: refresh this key source now and decide
    /// again when the fetch ends.
    RefreshKeys(usize),
    /// An introspection call about this very token is under way.
    WaitForIntrospection(Digest),
    /// Ask the opaque-token provider about this credential.
    Introspect {
        provider: usize,
        digest: Digest,
        credential: Credential,
    },
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
        digest: key,
        provider: index,
        identity,
        expires_at: claims.expires_at(),
        key_fingerprint: claims.key_fingerprint,
    })))
}
