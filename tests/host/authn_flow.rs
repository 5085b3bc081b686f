//! The whole decision: credential lookup, API keys, provider selection, key availability, identity.

use gateway_filter::authn::{credential_headers, decide, Decision, State};
use gateway_filter::config::{parse_config, Config};
use gateway_filter::identity::Identity;
use gateway_filter::ids::ProviderId;
use gateway_filter::key_store::KeyStore;
use gateway_filter::opaque::OpaqueState;
use gateway_filter::reason::AuthError;
use serde_json::{json, Value};

use crate::fixtures::*;

fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect()
}

fn run(config: &Config, pairs: &[(&str, &str)]) -> Decision {
    decide_at(&headers(pairs), config, &KeyStore::new(config), NOW)
}

fn decide_at(request: &[(String, String)], config: &Config, keys: &KeyStore, now: u64) -> Decision {
    decide(request, config, &State { keys, opaque: &OpaqueState::default(), tokens: &empty_cache(), now })
}

fn inline_config() -> Config {
    parse_config(&config_json()).unwrap()
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn allowed(decision: Decision) -> Identity {
    match decision {
        Decision::Allow(identity) => identity,
        Decision::Verified(verified) => verified.identity,
        other => panic!("expected allow, got {other:?}"),
    }
}

#[test]
fn token_maps_to_identity() {
    let config = inline_config();
    let identity = allowed(run(&config, &[("authorization", &bearer(&mint("RS256", &claims())))]));
    assert_eq!(
        identity,
        Identity {
            user_id: "00000000-0000-0000-0000-000000000001".into(),
            email: Some("ada@example.com".into()),
            name: Some("Ada Lovelace".into()),
            groups: "eng,ml".into(),
            provider: "test-idp".into(),
            tenant_id: None,
            groups_overage: false,
        }
    );
    let set: Vec<(&str, &str)> = identity.headers(&config.headers);
    assert_eq!(
        set,
        vec![
            ("x-gateway-user-id", "00000000-0000-0000-0000-000000000001"),
            ("x-gateway-user-email", "ada@example.com"),
            ("x-gateway-user-name", "Ada Lovelace"),
            ("x-gateway-user-groups", "eng,ml"),
            ("x-gateway-provider", "test-idp"),
        ]
    );
}

#[test]
fn user_id_falls_back_to_sub_and_is_required() {
    let config = inline_config();
    let no_oid = claims_with(json!({"oid": null, "groups": "solo"}));
    let identity = allowed(run(&config, &[("x-api-key", &mint("ES256", &no_oid))]));
    assert_eq!(identity.user_id, "pairwise-sub");
    assert_eq!(identity.groups, "solo");
    let anonymous = claims_with(json!({"oid": null, "sub": null}));
    assert_eq!(
        run(&config, &[("x-api-key", &mint("ES256", &anonymous))]),
        Decision::Deny(AuthError::NoUserId)
    );
    let empty = claims_with(json!({"oid": "", "sub": "pairwise-sub"}));
    assert_eq!(run(&config, &[("x-api-key", &mint("ES256", &empty))]), Decision::Deny(AuthError::NoUserId));
}

/// Issue #14 item 5: an id that is not already header-safe is refused, never trimmed or cut, so two
/// different ids can never reach the upstream as one.
#[test]
fn user_ids_are_refused_not_rewritten() {
    let config = inline_config();
    let judge =
        |changes: Value| run(&config, &[("authorization", &bearer(&mint("RS256", &claims_with(changes))))]);
    for oid in [
        " admin\r\n",
        "admin\r\n",
        " admin",
        "admin ",
        "ad\u{0}min",
        "\r\n",
        "u1\r\nx-gateway-provider: admin",
    ] {
        assert_eq!(judge(json!({ "oid": oid })), Decision::Deny(AuthError::UserIdNotHeaderSafe), "{oid:?}");
    }
    assert_eq!(judge(json!({"oid": "a".repeat(1025)})), Decision::Deny(AuthError::UserIdTooLong));
    assert_eq!(allowed(judge(json!({"oid": "a".repeat(1024)}))).user_id, "a".repeat(1024));
    assert_eq!(allowed(judge(json!({"oid": "jörg-ß"}))).user_id, "jörg-ß");
}

/// Issue #14 item 6: `sub` is a StringOrURI (RFC 7519 §4.1.2), refused as anything else, even when
/// another claim gives the user id; a custom `user_claims` entry may be a string or an integer.
#[test]
fn sub_must_be_a_string_custom_ids_may_be_integers() {
    let config = inline_config();
    let judge =
        |changes: Value| run(&config, &[("authorization", &bearer(&mint("RS256", &claims_with(changes))))]);
    assert_eq!(judge(json!({"oid": null, "sub": 12345})), Decision::Deny(AuthError::SubjectNotString));
    assert_eq!(judge(json!({"sub": 12345})), Decision::Deny(AuthError::SubjectNotString));
    assert_eq!(judge(json!({"sub": ["a"]})), Decision::Deny(AuthError::SubjectNotString));
    assert_eq!(allowed(judge(json!({"oid": 12345}))).user_id, "12345");
    // A non-integer custom id is no id: the next claim serves.
    assert_eq!(allowed(judge(json!({"oid": 1.5}))).user_id, "pairwise-sub");
}

/// Issue #14 item 4: an address the token says is unverified is not forwarded.
#[test]
fn unverified_email_is_not_forwarded() {
    let config = inline_config();
    let judge =
        |changes: Value| run(&config, &[("authorization", &bearer(&mint("RS256", &claims_with(changes))))]);
    let identity = allowed(judge(json!({"email_verified": false})));
    assert_eq!(identity.email, None);
    assert!(identity.headers(&config.headers).iter().all(|(name, _)| *name != "x-gateway-user-email"));
    assert_eq!(allowed(judge(json!({"email_verified": "false"}))).email, None);
    assert_eq!(allowed(judge(json!({"email_verified": true}))).email.as_deref(), Some("ada@example.com"));
    // No claim either way: forwarded as before (most IdPs only issue verified addresses).
    assert_eq!(allowed(judge(json!({}))).email.as_deref(), Some("ada@example.com"));
}

/// Issue #14 item 7: only `Authorization: Bearer` values go to introspection, and to Google's
/// tokeninfo only Google-shaped access tokens; anything else is an unknown API key.
#[test]
fn only_bearer_tokens_are_introspected() {
    let with_opaque = |style: &str| {
        let mut config = config_json();
        config["providers"][0]["opaque_tokens"] =
            json!({"style": style, "uri": "https://sso.example.com/introspect", "cluster": "sso"});
        parse_config(&config).unwrap()
    };
    let rfc = with_opaque("rfc7662");
    let client_key = "sk-ant-api03-a-clients-real-key";
    assert_eq!(run(&rfc, &[("x-api-key", client_key)]), Decision::Deny(AuthError::UnknownApiKey));
    assert!(matches!(run(&rfc, &[("authorization", &bearer("opaque-token"))]), Decision::Introspect { .. }));
    // Configured keys still work from either header.
    assert_eq!(allowed(run(&rfc, &[("x-api-key", "sk-test-key")])).user_id, "ci-bot");
    assert_eq!(allowed(run(&rfc, &[("authorization", &bearer("sk-test-key"))])).user_id, "ci-bot");
    let google = with_opaque("google_tokeninfo");
    for header in [("authorization", bearer(client_key)), ("x-api-key", "ya29.a0Af".to_owned())] {
        assert_eq!(
            run(&google, &[(header.0, &header.1)]),
            Decision::Deny(AuthError::UnknownApiKey),
            "{header:?}"
        );
    }
    let Decision::Introspect { credential, .. } = run(&google, &[("authorization", &bearer("ya29.a0Af"))])
    else {
        panic!("a Google access token is asked about")
    };
    assert_eq!(credential.0, "ya29.a0Af");
}

/// Issue #14 item 10: `limits.max_credential_bytes`, default 16 KiB, at most 64 KiB.
#[test]
fn credential_limit_is_configurable() {
    let token = mint("RS256", &claims_with(json!({"pad": "x".repeat(30 * 1024)})));
    let request = [("authorization", bearer(&token))];
    let request: Vec<(&str, &str)> = request.iter().map(|(n, v)| (*n, v.as_str())).collect();
    assert_eq!(run(&inline_config(), &request), Decision::Deny(AuthError::CredentialTooLarge));
    let mut config = config_json();
    config["limits"] = json!({"max_credential_bytes": 48 * 1024});
    let config = parse_config(&config).unwrap();
    assert_eq!(config.limits.max_credential_bytes, 48 * 1024);
    assert_eq!(allowed(run(&config, &request)).user_id, "00000000-0000-0000-0000-000000000001");
    assert_eq!(inline_config().limits.max_credential_bytes, 16 * 1024);
    for (limits, error) in [
        (
            json!({"max_credential_bytes": 65537}),
            "limits.max_credential_bytes: must be a whole number from 1024 to 65536",
        ),
        (
            json!({"max_credential_bytes": 100}),
            "limits.max_credential_bytes: must be a whole number from 1024 to 65536",
        ),
        (
            json!({"max_credential_bytes": "16k"}),
            "limits.max_credential_bytes: must be a whole number from 1024 to 65536",
        ),
        (json!({"max_token_bytes": 1}), "limits.max_token_bytes: unknown field"),
        (json!(5), "limits: must be an object"),
    ] {
        let mut config = config_json();
        config["limits"] = limits;
        assert_eq!(parse_config(&config).unwrap_err().to_string(), error);
    }
    assert!(AuthError::CredentialTooLarge.client_message().contains("limits.max_credential_bytes"));
}

#[test]
fn claim_values_are_made_header_safe() {
    let config = inline_config();
    let hostile = claims_with(json!({
        "oid": "u1",
        "name": "Eve\u{0}\u{7f}",
        "email": "",
        "groups": ["a,b", "c\nd", 7, {"x": 1}],
    }));
    let identity = allowed(run(&config, &[("authorization", &bearer(&mint("EdDSA", &hostile)))]));
    assert_eq!(identity.user_id, "u1");
    assert_eq!(identity.name.as_deref(), Some("Eve"));
    assert_eq!(identity.email, None);
    let groups =
        identity.headers(&config.headers).into_iter().find(|(n, _)| *n == "x-gateway-user-groups").unwrap().1;
    assert_eq!(groups, "a%2Cb,cd,7");
}

#[test]
fn api_keys() {
    let config = inline_config();
    let identity = allowed(run(&config, &[("x-api-key", "sk-test-key")]));
    assert_eq!(
        identity,
        Identity {
            user_id: "ci-bot".into(),
            email: None,
            name: None,
            groups: "bots,ci".into(),
            provider: "api-key".into(),
            tenant_id: None,
            groups_overage: false,
        }
    );
    assert_eq!(allowed(run(&config, &[("authorization", "Bearer sk-test-key")])).user_id, "ci-bot");
    assert_eq!(run(&config, &[("x-api-key", "sk-wrong")]), Decision::Deny(AuthError::UnknownApiKey));
    // Dots do not make a token: only a first segment that starts a JSON object does.
    assert_eq!(run(&config, &[("x-api-key", "sk.wrong")]), Decision::Deny(AuthError::UnknownApiKey));
    assert_eq!(run(&config, &[("x-api-key", "eyJhbGciOi")]), Decision::Deny(AuthError::Malformed));
}

#[test]
fn claude_code_sends_the_same_secret_twice() {
    let config = inline_config();
    let token = mint("RS256", &claims());
    let identity = allowed(run(&config, &[("x-api-key", &token), ("authorization", &bearer(&token))]));
    assert_eq!(identity.provider, "test-idp");
}

#[test]
fn first_credential_decides() {
    let config = inline_config();
    let expired = mint("RS256", &claims_with(json!({"exp": NOW - 3600})));
    // authorization comes first in token_headers: its expired token is judged, not the good key.
    let decision = run(&config, &[("x-api-key", "sk-test-key"), ("authorization", &bearer(&expired))]);
    assert_eq!(decision, Decision::Deny(AuthError::Expired));
    assert_eq!(run(&config, &[]), Decision::Deny(AuthError::MissingCredential));
    assert_eq!(
        run(&config, &[("authorization", "Basic YTpi")]),
        Decision::Deny(AuthError::MissingCredential)
    );
}

#[test]
fn issuer_selects_the_provider() {
    let config = inline_config();
    let slash = mint("RS256", &claims_with(json!({"iss": "https://idp.example.com/"})));
    assert_eq!(
        run(&config, &[("authorization", &bearer(&slash))]),
        Decision::Deny(AuthError::IssuerTrailingSlash)
    );
    for iss in [json!("https://evil.example.com"), json!("https://idp.example.com.evil"), Value::Null] {
        let token = mint("RS256", &claims_with(json!({ "iss": iss })));
        assert_eq!(
            run(&config, &[("authorization", &bearer(&token))]),
            Decision::Deny(AuthError::IssuerNotTrusted),
            "{iss}"
        );
    }
}

#[test]
fn oversized_credential() {
    let config = inline_config();
    let big = format!("{}.{}.{}", "a".repeat(9000), "b".repeat(9000), "c");
    assert_eq!(
        run(&config, &[("authorization", &bearer(&big))]),
        Decision::Deny(AuthError::CredentialTooLarge)
    );
}

#[test]
fn verified_tokens_are_remembered_until_their_key_goes() {
    let config = inline_config();
    let keys = KeyStore::new(&config);
    let mut cache = crate::fixtures::empty_cache();
    let token = mint("ES256", &claims());
    let request = headers(&[("authorization", &bearer(&token))]);
    let decide_with = |cache: &gateway_filter::token_cache::TokenCache, request: &[(String, String)]| {
        decide(
            request,
            &config,
            &State { keys: &keys, opaque: &OpaqueState::default(), tokens: cache, now: NOW },
        )
    };
    let Decision::Verified(verified) = decide_with(&cache, &request) else {
        panic!("expected a fresh verification")
    };
    assert_eq!(verified.expires_at, NOW + 3600);
    let identity = verified.identity.clone();
    cache.insert(*verified, NOW);
    // The same token again: served from the cache, the same identity.
    assert_eq!(decide_with(&cache, &request), Decision::Allow(identity));
    // Another token (one character of the signature changed) is not a hit: verified, and refused.
    let mut forged = token.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    let forged_request = headers(&[("authorization", &bearer(&forged))]);
    assert!(matches!(decide_with(&cache, &forged_request), Decision::Deny(_)));
    // Failures are never cached: the forged token is judged again every time.
    assert!(matches!(decide_with(&cache, &forged_request), Decision::Deny(_)));
    assert_eq!(cache.len(), 1);
    // The provider stops publishing the P-256 key: the entry is forgotten.
    let mut without_p256 = jwks();
    without_p256["keys"].as_array_mut().unwrap().remove(1);
    let (remaining, _) = gateway_filter::jwks::parse_jwks(without_p256.to_string().as_bytes()).unwrap();
    cache.retain_keys(ProviderId(0), |fingerprint| remaining.has_fingerprint(fingerprint));
    assert!(cache.is_empty());
}

#[test]
fn token_cache_limits_are_configurable() {
    let mut config = config_json();
    config["token_cache"] = json!({"max_entries": 5, "max_seconds": 0});
    let config = parse_config(&config).unwrap();
    assert_eq!((config.token_cache.max_entries, config.token_cache.max_seconds), (5, 0));
    assert_eq!(config.token_cache.max_bytes, 16 * 1024 * 1024);
    let mut bad = config_json();
    bad["token_cache"] = json!({"max_age": 5});
    assert_eq!(parse_config(&bad).unwrap_err().to_string(), "token_cache.max_age: unknown field");
}

#[test]
fn an_allowed_request_loses_the_credential_headers_it_has() {
    let mut json = config_json();
    json["token_headers"] = json!(["authorization", "x-api-key", "x-goog-iap-jwt-assertion"]);
    let config = parse_config(&json).unwrap();
    let request = headers(&[("x-api-key", "sk-test-key"), ("authorization", "Basic x"), ("accept", "*/*")]);
    let removed: Vec<&str> = credential_headers(&config, &request).collect();
    assert_eq!(removed, vec!["authorization", "x-api-key"]);
    json["remove_credential"] = json!(false);
    let keep = parse_config(&json).unwrap();
    assert_eq!(credential_headers(&keep, &request).count(), 0);
}
