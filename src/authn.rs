//! The whole request decision in one pure function: headers, configuration, keys and the time in;
//! allow with an identity, deny with a reason, or wait for keys out.

use crate::api_keys::find_api_key;
use crate::config::Config;
use crate::credential::{find_credential, Headers};
use crate::identity::Identity;
use crate::key_store::{KeyAvailability, KeyStore};
use crate::reason::AuthError;
use crate::token::{self, looks_like_jwt};

#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    Allow(Identity),
    Deny(AuthError),
    /// The token's provider has no keys yet but a fetch is under way (index into `providers`).
    WaitForKeys(usize),
}

pub fn decide(headers: &Headers, config: &Config, keys: &KeyStore, now: u64) -> Decision {
    match authenticate(headers, config, keys, now) {
        Ok(decision) => decision,
        Err(reason) => Decision::Deny(reason),
    }
}

fn authenticate(
    headers: &Headers,
    config: &Config,
    keys: &KeyStore,
    now: u64,
) -> Result<Decision, AuthError> {
    let credential = find_credential(headers, &config.token_headers)?;
    if let Some(key) = find_api_key(&config.api_keys, credential) {
        return Ok(Decision::Allow(Identity::from_api_key(key)));
    }
    if !looks_like_jwt(credential) {
        return Err(AuthError::UnknownApiKey);
    }
    let token = token::parse(credential)?;
    let issuer = token.issuer().ok_or(AuthError::IssuerNotTrusted)?;
    let (index, provider) = config
        .providers
        .iter()
        .enumerate()
        .find(|(_, p)| p.issuer == issuer)
        .ok_or(AuthError::IssuerNotTrusted)?;
    let key_set = match keys.availability(index) {
        KeyAvailability::Ready(key_set) => key_set,
        KeyAvailability::Pending => return Ok(Decision::WaitForKeys(index)),
        KeyAvailability::Unavailable => return Err(AuthError::KeysUnavailable),
    };
    let claims = token.verify(provider, key_set, now)?;
    Identity::from_claims(&claims, provider).map(Decision::Allow)
}
