//! The key-state machine under an injected clock: first fetch, waiting, refresh, staleness, backoff,
//! unknown-kid refreshes and their rate limit, shared sources.

use std::rc::Rc;

use gateway_filter::authn::{decide, Decision, State};
use gateway_filter::config::{parse_config, Config};
use gateway_filter::ids::{ProviderId, SourceId};
use gateway_filter::jwks::{parse_jwks, KeySet};
use gateway_filter::key_store::{KeyAvailability, KeyStore, UnknownKid};
use gateway_filter::opaque::OpaqueState;
use gateway_filter::reason::AuthError;
use serde_json::json;

use crate::fixtures::*;

fn remote_config(jwks: serde_json::Value) -> Config {
    let mut config = config_json();
    config["providers"][0]["jwks"] = jwks;
    parse_config(&config).unwrap()
}

fn config() -> Config {
    remote_config(json!({"uri": "https://idp.example.com/keys", "cluster": "idp", "refresh_seconds": 60,
        "max_stale_seconds": 600, "unknown_kid_refresh_seconds": 30}))
}

fn key_set() -> Rc<KeySet> {
    Rc::new(parse_jwks(jwks().to_string().as_bytes()).unwrap().0)
}

fn decide_at(config: &Config, keys: &KeyStore, token: &str, now: u64) -> Decision {
    let headers = vec![("authorization".to_owned(), format!("Bearer {token}"))];
    decide(&headers, config, &State { keys, opaque: &OpaqueState::default(), tokens: &empty_cache(), now })
}

fn ready(keys: &KeyStore, now: u64) -> bool {
    matches!(keys.availability(ProviderId(0), now), KeyAvailability::Ready(_))
}

#[test]
fn first_fetch_waits_then_fails_or_succeeds() {
    let config = config();
    let mut keys = KeyStore::new(&config);
    let token = mint("RS256", &claims());
    // Right after configuration, before the first tick has started the fetch: wait for it.
    assert_eq!(decide_at(&config, &keys, &token, NOW), Decision::WaitForKeys(SourceId(0)));
    assert_eq!(keys.start_due_fetches(NOW), vec![SourceId(0)]);
    assert_eq!(decide_at(&config, &keys, &token, NOW), Decision::WaitForKeys(SourceId(0)));
    // API keys never wait for an identity provider.
    let headers = vec![("x-api-key".to_owned(), "sk-test-key".to_owned())];
    let api_key = decide(
        &headers,
        &config,
        &State { keys: &keys, opaque: &OpaqueState::default(), tokens: &empty_cache(), now: NOW },
    );
    assert!(api_key.identity().is_some());
    keys.fetch_failed(SourceId(0), NOW, 0.0);
    assert_eq!(decide_at(&config, &keys, &token, NOW), Decision::Deny(AuthError::KeysUnavailable));
    // The next attempt after the backoff succeeds: usable without a restart.
    assert!(keys.start_due_fetches(NOW).is_empty());
    assert_eq!(keys.start_due_fetches(NOW + 1), vec![SourceId(0)]);
    keys.fetch_succeeded(SourceId(0), key_set(), NOW + 1, NOW + 1);
    assert!(decide_at(&config, &keys, &token, NOW + 1).identity().is_some());
}

#[test]
fn refresh_schedule_and_backoff_growth() {
    let config = config();
    let mut keys = KeyStore::new(&config);
    assert!(matches!(keys.availability(ProviderId(0), NOW), KeyAvailability::Pending));
    assert_eq!(keys.start_due_fetches(NOW), vec![SourceId(0)]);
    assert!(keys.start_due_fetches(NOW).is_empty(), "no second fetch while one is under way");
    assert!(matches!(keys.availability(ProviderId(0), NOW), KeyAvailability::Pending));
    // Never fetched: 1, 2, 4 ... seconds, capped at 30 so the provider is usable soon after it is back.
    let mut now = NOW;
    for expected in [1, 2, 4, 8, 16, 30, 30] {
        keys.fetch_failed(SourceId(0), now, 0.0);
        assert!(keys.start_due_fetches(now + expected - 1).is_empty());
        assert_eq!(keys.start_due_fetches(now + expected), vec![SourceId(0)], "backoff {expected}");
        now += expected;
    }
    keys.fetch_succeeded(SourceId(0), key_set(), now, now);
    assert_eq!(keys.key_count(ProviderId(0)), 4);
    assert_eq!(keys.age(SourceId(0), now + 5), Some(5));
    // Fresh until refresh_seconds (60), then refreshed in the background: keys stay usable.
    assert!(keys.start_due_fetches(now + 59).is_empty());
    assert_eq!(keys.start_due_fetches(now + 60), vec![SourceId(0)]);
    assert!(ready(&keys, now + 60), "refreshing keeps serving the old keys");
    // Failed refreshes keep the last good keys; backoff grows up to refresh_seconds.
    let mut t = now + 60;
    for expected in [1, 2, 4, 8, 16, 32, 60, 60] {
        keys.fetch_failed(SourceId(0), t, 0.0);
        assert!(ready(&keys, t));
        assert_eq!(keys.start_due_fetches(t + expected), vec![SourceId(0)], "stale backoff {expected}");
        t += expected;
    }
    assert_eq!(keys.failures(SourceId(0)), 8);
}

#[test]
fn following_another_workers_retries() {
    let config = config();
    let mut keys = KeyStore::new(&config);
    let token = mint("RS256", &claims());
    keys.start_due_fetches(NOW);
    // Another VM holds the lease while it backs off until NOW + 8: nothing is in flight here, so
    // requests are answered at once rather than held, and this VM looks again at NOW + 8.
    keys.defer_fetch(SourceId(0), NOW + 8);
    assert_eq!(decide_at(&config, &keys, &token, NOW), Decision::Deny(AuthError::KeysUnavailable));
    assert!(keys.start_due_fetches(NOW + 7).is_empty());
    assert_eq!(keys.start_due_fetches(NOW + 8), vec![SourceId(0)]);
    assert_eq!(keys.failures(SourceId(0)), 0, "another VM's failure is not counted here");
}

#[test]
fn jitter_spreads_retries() {
    let config = config();
    let mut keys = KeyStore::new(&config);
    keys.start_due_fetches(NOW);
    for _ in 0..4 {
        keys.fetch_failed(SourceId(0), NOW, 0.0);
        keys.start_due_fetches(NOW + 100);
    }
    // Fifth failure: backoff 16 s, jitter 0.5 adds 8 s.
    keys.fetch_failed(SourceId(0), NOW, 0.5);
    assert!(keys.start_due_fetches(NOW + 23).is_empty());
    assert_eq!(keys.start_due_fetches(NOW + 24), vec![SourceId(0)]);
}

#[test]
fn keys_past_max_staleness_are_dropped() {
    let config = config();
    let mut keys = KeyStore::new(&config);
    keys.start_due_fetches(NOW);
    keys.fetch_succeeded(SourceId(0), key_set(), NOW, NOW);
    // Every refresh fails from here on; 600 s of staleness are tolerated.
    let mut t = NOW + 60;
    while t <= NOW + 600 {
        for due in keys.start_due_fetches(t) {
            keys.fetch_failed(due, t, 0.0);
        }
        assert!(ready(&keys, t), "t+{}", t - NOW);
        t += 1;
    }
    let expired = NOW + 601;
    let token_now =
        mint("ES256", &claims_with(json!({"exp": expired + 3600, "iat": expired - 1, "nbf": expired - 1})));
    assert!(matches!(
        keys.availability(ProviderId(0), expired),
        KeyAvailability::Unavailable | KeyAvailability::Pending
    ));
    let decision = decide_at(&config, &keys, &token_now, expired);
    assert!(
        matches!(decision, Decision::Deny(AuthError::KeysUnavailable) | Decision::WaitForKeys(SourceId(0))),
        "{decision:?}"
    );
    for due in keys.start_due_fetches(expired) {
        keys.fetch_failed(due, expired, 0.0);
    }
    assert_eq!(keys.key_count(ProviderId(0)), 0, "dropped, not just hidden");
    assert_eq!(decide_at(&config, &keys, &token_now, expired), Decision::Deny(AuthError::KeysUnavailable));
}

#[test]
fn unknown_kid_refresh_is_rate_limited() {
    let config = config();
    let mut keys = KeyStore::new(&config);
    keys.start_due_fetches(NOW);
    keys.fetch_succeeded(SourceId(0), key_set(), NOW, NOW);
    let rotated = mint_with(&json!({"alg": "RS256", "kid": "new-key"}), &claims(), "RS256");
    assert_eq!(decide_at(&config, &keys, &rotated, NOW + 5), Decision::RefreshKeys(SourceId(0)));
    assert!(keys.start_unknown_kid_refresh(SourceId(0), NOW + 5));
    // While it runs, other unknown kids wait for it instead of starting more fetches.
    assert_eq!(keys.unknown_kid(ProviderId(0), NOW + 5), UnknownKid::Wait(SourceId(0)));
    assert_eq!(decide_at(&config, &keys, &rotated, NOW + 5), Decision::WaitForKeys(SourceId(0)));
    assert!(!keys.start_unknown_kid_refresh(SourceId(0), NOW + 5));
    keys.fetch_succeeded(SourceId(0), key_set(), NOW + 6, NOW + 6);
    // Still unknown after the refresh: refused at once, no new fetch for 30 s.
    assert_eq!(decide_at(&config, &keys, &rotated, NOW + 6), Decision::Deny(AuthError::KeyNotFound));
    assert_eq!(decide_at(&config, &keys, &rotated, NOW + 34), Decision::Deny(AuthError::KeyNotFound));
    assert!(!keys.start_unknown_kid_refresh(SourceId(0), NOW + 34));
    assert_eq!(decide_at(&config, &keys, &rotated, NOW + 35), Decision::RefreshKeys(SourceId(0)));
    // A flood of 500 random kids in one window causes one refresh.
    let mut refreshes = 0;
    for i in 0..500 {
        let token = mint_with(&json!({"alg": "ES256", "kid": format!("random-{i}")}), &claims(), "ES256");
        let now = NOW + 40 + i / 100;
        match decide_at(&config, &keys, &token, now) {
            Decision::RefreshKeys(source) => {
                assert!(keys.start_unknown_kid_refresh(source, now));
                keys.fetch_succeeded(source, key_set(), now, now);
                refreshes += 1;
            }
            Decision::Deny(AuthError::KeyNotFound) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(refreshes, 1);
    // A token without kid that fails is a bad signature, never a refresh.
    let no_kid = mint_with(&json!({"alg": "RS256"}), &claims(), "PS256");
    assert_eq!(decide_at(&config, &keys, &no_kid, NOW + 100), Decision::Deny(AuthError::BadSignature));
}

#[test]
fn rotation_removes_keys() {
    let config = config();
    let mut keys = KeyStore::new(&config);
    keys.start_due_fetches(NOW);
    keys.fetch_succeeded(SourceId(0), key_set(), NOW, NOW);
    let token = mint("RS256", &claims());
    assert!(decide_at(&config, &keys, &token, NOW).identity().is_some());
    // The provider drops the RSA key.
    let mut rotated = jwks();
    rotated["keys"].as_array_mut().unwrap().remove(0);
    let rotated = Rc::new(parse_jwks(rotated.to_string().as_bytes()).unwrap().0);
    keys.start_due_fetches(NOW + 60);
    keys.fetch_succeeded(SourceId(0), rotated, NOW + 60, NOW + 60);
    assert_eq!(decide_at(&config, &keys, &token, NOW + 60), Decision::RefreshKeys(SourceId(0)));
}

#[test]
fn providers_naming_one_source_share_it() {
    let inline = jwks().to_string();
    let config = parse_config(&json!({"providers": [
        {"name": "entra-v2", "issuer": "https://login.microsoftonline.com/t/v2.0", "audiences": ["a"],
         "jwks": {"uri": "https://login.microsoftonline.com/t/discovery/v2.0/keys", "cluster": "entra", "refresh_seconds": 300}},
        {"name": "entra-v1", "issuer": "https://sts.windows.net/t/", "audiences": ["a"],
         "jwks": {"uri": "https://login.microsoftonline.com/t/discovery/v2.0/keys", "cluster": "entra", "refresh_seconds": 120}},
        {"name": "other", "issuer": "https://other", "audiences": ["a"],
         "jwks": {"uri": "https://other/keys", "cluster": "other"}},
        {"name": "inline", "issuer": "https://inline", "audiences": ["a"], "jwks": {"inline": inline}},
    ]}))
    .unwrap();
    let mut keys = KeyStore::new(&config);
    assert_eq!(keys.sources(), 2);
    assert_eq!(
        (
            keys.source_of(ProviderId(0)),
            keys.source_of(ProviderId(1)),
            keys.source_of(ProviderId(2)),
            keys.source_of(ProviderId(3))
        ),
        (Some(SourceId(0)), Some(SourceId(0)), Some(SourceId(1)), None)
    );
    assert_eq!(keys.provider_of(SourceId(0)), Some(ProviderId(0)));
    assert_eq!(keys.start_due_fetches(NOW), vec![SourceId(0), SourceId(1)]);
    keys.fetch_succeeded(SourceId(0), key_set(), NOW, NOW);
    assert_eq!(
        (keys.key_count(ProviderId(0)), keys.key_count(ProviderId(1)), keys.key_count(ProviderId(2))),
        (4, 4, 0)
    );
    // The shared source refreshes as often as its most demanding provider asks (120 s).
    assert!(keys.start_due_fetches(NOW + 119).is_empty());
    assert_eq!(keys.start_due_fetches(NOW + 120), vec![SourceId(0)]);
}

#[test]
fn keys_from_another_worker_keep_their_fetch_time() {
    let config = config();
    let mut keys = KeyStore::new(&config);
    keys.start_due_fetches(NOW);
    // Another VM fetched 50 s ago: the next refresh is due 10 s from now, not 60.
    keys.fetch_succeeded(SourceId(0), key_set(), NOW - 50, NOW);
    assert_eq!(keys.age(SourceId(0), NOW), Some(50));
    assert!(keys.start_due_fetches(NOW + 9).is_empty());
    assert_eq!(keys.start_due_fetches(NOW + 10), vec![SourceId(0)]);
}

#[test]
fn discovery_clusters_by_host() {
    let config =
        remote_config(json!({"discovery": true, "cluster": "idp", "clusters": {"KEYS.example.com": "keys"}}));
    let gateway_filter::config::JwksSource::Remote(remote) = &config.providers[0].jwks else { panic!() };
    assert_eq!(remote.cluster_for("idp.example.com"), Some("idp"));
    assert_eq!(remote.cluster_for("keys.example.com"), Some("keys"));
    assert_eq!(remote.cluster_for("elsewhere.example.com"), None);
    let mut bad = config_json();
    bad["providers"][0]["jwks"] =
        json!({"uri": "https://idp.example.com/k", "cluster": "idp", "clusters": {"other": "x"}});
    assert_eq!(
        parse_config(&bad).unwrap_err().to_string(),
        "providers[0].jwks.clusters.other: only applies with discovery (the uri's host uses jwks.cluster)"
    );
    bad["providers"][0]["jwks"] = json!({"uri": "https://idp.example.com/k", "cluster": "idp", "refresh_seconds": 600, "max_stale_seconds": 60});
    assert_eq!(
        parse_config(&bad).unwrap_err().to_string(),
        "providers[0].jwks.max_stale_seconds: must be a whole number from 600 to 2592000"
    );
}
