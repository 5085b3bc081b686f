//! Opaque access tokens: the call sent, the answers judged, the cache and the bounds on calls.

use gateway_filter::authn::{decide, Decision, State};
use gateway_filter::config::{parse_config, parse_config_with_env, Config, OpaqueTokens, Provider};
use gateway_filter::ids::ProviderId;
use gateway_filter::key_store::KeyStore;
use gateway_filter::opaque::{
    build_call, evaluate, Answer, CallFailure, Lookup, OpaqueState, NEGATIVE_CACHE_SECONDS,
};
use gateway_filter::reason::AuthError;
use serde_json::{json, Value};

use crate::fixtures::{empty_cache, NOW};

const GOOGLE_CLIENT: &str = "1234-abc.apps.googleusercontent.com";

fn google() -> Config {
    parse_config(&json!({"providers": [{
        "name": "google", "preset": "google", "client_id": GOOGLE_CLIENT, "hosted_domains": ["acme.com"],
        "jwks": {"cluster": "google_jwks"},
        "opaque_tokens": {"style": "google_tokeninfo", "uri": "https://oauth2.googleapis.com/tokeninfo", "cluster": "google_oauth"}
    }]}))
    .unwrap()
}

fn keycloak(secret: Option<&str>) -> Config {
    let env = move |name: &str| (name == "INTROSPECTION_SECRET").then(|| secret.map(str::to_owned)).flatten();
    parse_config_with_env(
        &json!({"providers": [{
            "name": "keycloak", "issuer": "https://sso.acme.com/realms/eng", "audiences": ["gateway"],
            "jwks": {"discovery": true, "cluster": "sso"}, "required_scopes": ["llm"],
            "opaque_tokens": {"style": "rfc7662", "uri": "https://sso.acme.com/realms/eng/protocol/openid-connect/token/introspect",
                "cluster": "sso", "client_id": "gateway", "client_secret_env": "INTROSPECTION_SECRET", "cache_seconds": 120}
        }]}),
        &env,
    )
    .unwrap()
}

fn parts(config: &Config) -> (&Provider, &OpaqueTokens) {
    let p = &config.providers[0];
    (p, p.opaque_tokens.as_ref().unwrap())
}

fn judge(config: &Config, status: u32, answer: Value) -> Answer {
    let (provider, opaque) = parts(config);
    evaluate(provider, opaque, Some(status), answer.to_string().as_bytes(), NOW)
}

fn tokeninfo() -> Value {
    // Google's tokeninfo answer for an access token: numbers as strings.
    json!({"azp": GOOGLE_CLIENT, "aud": GOOGLE_CLIENT, "sub": "110169484474386276334", "scope": "openid email",
           "exp": (NOW + 1800).to_string(), "expires_in": "1800", "email": "ada@acme.com", "email_verified": "true",
           "access_type": "online"})
}

fn introspection() -> Value {
    json!({"active": true, "client_id": "claude-desktop", "aud": ["gateway", "account"], "sub": "f:1:ada",
           "username": "ada", "scope": "openid llm", "exp": NOW + 3600, "iat": NOW - 10, "email": "ada@acme.com"})
}

fn refused(answer: Answer) -> AuthError {
    match answer {
        Answer::Verdict { outcome: Err(reason), expires_at } => {
            assert_eq!(expires_at, NOW + NEGATIVE_CACHE_SECONDS);
            reason
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn tokeninfo_answers() {
    let config = google();
    match judge(&config, 200, tokeninfo()) {
        Answer::Verdict { outcome: Ok(identity), expires_at } => {
            assert_eq!(identity.user_id, "110169484474386276334");
            assert_eq!(identity.provider, "google");
            assert_eq!(identity.email.as_deref(), Some("ada@acme.com"));
            // cache_seconds (300) comes before exp (1800 s away).
            assert_eq!(expires_at, NOW + 300);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(refused(judge(&config, 400, json!({"error": "invalid_token"}))), AuthError::TokenInactive);
    let mut wrong_aud = tokeninfo();
    wrong_aud["aud"] = json!("other.apps.googleusercontent.com");
    wrong_aud["azp"] = json!("other.apps.googleusercontent.com");
    assert_eq!(refused(judge(&config, 200, wrong_aud)), AuthError::AudienceNotAllowed);
    let mut expired = tokeninfo();
    expired["exp"] = json!((NOW - 120).to_string());
    assert_eq!(refused(judge(&config, 200, expired)), AuthError::Expired);
    let mut foreign = tokeninfo();
    foreign["email"] = json!("ada@gmail.com");
    assert_eq!(refused(judge(&config, 200, foreign)), AuthError::DomainNotAllowed);
    let mut unverified = tokeninfo();
    unverified["email_verified"] = json!("false");
    assert_eq!(refused(judge(&config, 200, unverified)), AuthError::EmailNotVerified);
    let mut no_email = tokeninfo();
    no_email.as_object_mut().unwrap().remove("email");
    assert_eq!(refused(judge(&config, 200, no_email)), AuthError::DomainNotAllowed);
    let mut only_expires_in = tokeninfo();
    only_expires_in.as_object_mut().unwrap().remove("exp");
    assert!(matches!(judge(&config, 200, only_expires_in), Answer::Verdict { outcome: Ok(_), .. }));
}

#[test]
fn introspection_answers() {
    let config = keycloak(Some("s3cret"));
    match judge(&config, 200, introspection()) {
        Answer::Verdict { outcome: Ok(identity), expires_at } => {
            assert_eq!(identity.user_id, "f:1:ada");
            assert_eq!(expires_at, NOW + 120);
        }
        other => panic!("{other:?}"),
    }
    // A token about to expire is cached only until its exp.
    let mut short = introspection();
    short["exp"] = json!(NOW + 30);
    assert!(
        matches!(judge(&config, 200, short), Answer::Verdict { expires_at, .. } if expires_at == NOW + 30)
    );
    assert_eq!(refused(judge(&config, 200, json!({"active": false}))), AuthError::TokenInactive);
    assert_eq!(
        refused(judge(&config, 200, json!({"active": "true", "exp": NOW + 60}))),
        AuthError::TokenInactive
    );
    let mut wrong_aud = introspection();
    wrong_aud["aud"] = json!("account");
    assert_eq!(refused(judge(&config, 200, wrong_aud.clone())), AuthError::AudienceNotAllowed);
    // client_id counts as the audience too.
    wrong_aud["client_id"] = json!("gateway");
    assert!(matches!(judge(&config, 200, wrong_aud), Answer::Verdict { outcome: Ok(_), .. }));
    let mut no_scope = introspection();
    no_scope["scope"] = json!("openid");
    assert_eq!(refused(judge(&config, 200, no_scope)), AuthError::InsufficientScope);
    let mut no_exp = introspection();
    no_exp.as_object_mut().unwrap().remove("exp");
    assert_eq!(refused(judge(&config, 200, no_exp)), AuthError::NoExpiry);
    let mut anonymous = introspection();
    anonymous.as_object_mut().unwrap().remove("sub");
    assert_eq!(refused(judge(&config, 200, anonymous)), AuthError::NoUserId);
}

#[test]
fn endpoint_failures_are_not_verdicts() {
    let config = keycloak(Some("s3cret"));
    let (provider, opaque) = parts(&config);
    assert!(matches!(judge(&config, 500, introspection()), Answer::Failed(_)));
    assert!(matches!(judge(&config, 401, introspection()), Answer::Failed(_)));
    assert!(matches!(evaluate(provider, opaque, None, b"", NOW), Answer::Failed(_)));
    assert!(matches!(evaluate(provider, opaque, Some(200), b"<html>", NOW), Answer::Failed(_)));
    let google = google();
    assert!(matches!(judge(&google, 503, tokeninfo()), Answer::Failed(_)));
}

#[test]
fn the_call_carries_the_token_in_the_body_only() {
    let config = keycloak(Some("s3cret/+"));
    let (_, opaque) = parts(&config);
    let call = build_call(opaque, "tok&en=1");
    let header = |name: &str| call.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.clone());
    assert_eq!(header(":method").as_deref(), Some("POST"));
    assert_eq!(header(":path").as_deref(), Some("/realms/eng/protocol/openid-connect/token/introspect"));
    assert_eq!(header(":authority").as_deref(), Some("sso.acme.com"));
    assert_eq!(header("content-type").as_deref(), Some("application/x-www-form-urlencoded"));
    assert_eq!(call.body, "token=tok%26en%3D1&token_type_hint=access_token");
    // Basic auth of the form-encoded id and secret (RFC 6749 §2.3.1): "gateway:s3cret%2F%2B".
    assert_eq!(header("authorization").as_deref(), Some("Basic Z2F0ZXdheTpzM2NyZXQlMkYlMkI="));
    assert!(call.headers.iter().all(|(_, v)| !v.contains("tok&en") && !v.contains("tok%26en")));

    let google = google();
    let call = build_call(parts(&google).1, "ya29.a0Af");
    assert_eq!(call.body, "access_token=ya29.a0Af");
    assert!(call.headers.iter().all(|(n, _)| *n != "authorization"));
}

#[test]
fn secrets_come_from_the_environment() {
    let error = parse_config_with_env(
        &json!({"providers": [{"name": "k", "issuer": "https://i", "audiences": ["a"], "jwks": {"discovery": true, "cluster": "c"},
            "opaque_tokens": {"style": "rfc7662", "uri": "https://i/introspect", "cluster": "c", "client_id": "g", "client_secret_env": "MISSING"}}]}),
        &|_| None,
    )
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "providers[0].opaque_tokens.client_secret_env: environment variable MISSING is not set for the Wasm VM (vm_config.environment_variables)"
    );
    let secret = format!("{:?}", keycloak(Some("s3cret")).providers[0].opaque_tokens);
    assert!(!secret.contains("s3cret"), "{secret}");
    let two = json!({"providers": [
        {"name": "a", "issuer": "https://a", "audiences": ["a"], "jwks": {"discovery": true, "cluster": "c"},
         "opaque_tokens": {"style": "rfc7662", "uri": "https://a/i", "cluster": "c"}},
        {"name": "b", "issuer": "https://b", "audiences": ["a"], "jwks": {"discovery": true, "cluster": "c"},
         "opaque_tokens": {"style": "rfc7662", "uri": "https://b/i", "cluster": "c"}},
    ]});
    assert_eq!(
        parse_config(&two).unwrap_err().to_string(),
        "providers: at most one provider may have opaque_tokens"
    );
}

fn decide_opaque(config: &Config, opaque: &OpaqueState, credential: &str) -> Decision {
    let headers = vec![("authorization".to_owned(), format!("Bearer {credential}"))];
    let keys = KeyStore::new(config);
    decide(&headers, config, &State { keys: &keys, opaque, tokens: &empty_cache(), now: NOW })
}

#[test]
fn decisions_use_the_cache_and_share_calls() {
    let config = google();
    let mut state = OpaqueState::default();
    let Decision::Introspect { provider, digest, credential } =
        decide_opaque(&config, &state, "ya29.token-one")
    else {
        panic!("expected a call");
    };
    assert_eq!((provider, credential.0.as_str()), (ProviderId(0), "ya29.token-one"));
    assert_eq!(format!("{credential:?}"), "Credential(..)");
    assert!(state.admit(digest, 64, 20, NOW));
    // A second request with the same token waits for the same call.
    assert_eq!(decide_opaque(&config, &state, "ya29.token-one"), Decision::WaitForIntrospection(digest));
    let answer = judge(&config, 200, tokeninfo());
    state.finish(&digest, &answer, NOW);
    assert!(
        matches!(decide_opaque(&config, &state, "ya29.token-one"), Decision::Allow(i) if i.user_id == "110169484474386276334")
    );
    // A refusal is remembered; a failure is not.
    let Decision::Introspect { digest: bad, .. } = decide_opaque(&config, &state, "ya29.bad") else {
        panic!()
    };
    assert!(state.admit(bad, 64, 20, NOW));
    state.finish(&bad, &judge(&config, 400, json!({})), NOW);
    assert_eq!(decide_opaque(&config, &state, "ya29.bad"), Decision::Deny(AuthError::TokenInactive));
    let Decision::Introspect { digest: flaky, .. } = decide_opaque(&config, &state, "ya29.flaky") else {
        panic!()
    };
    assert!(state.admit(flaky, 64, 20, NOW));
    state.finish(&flaky, &judge(&config, 500, json!({})), NOW);
    assert!(matches!(decide_opaque(&config, &state, "ya29.flaky"), Decision::Introspect { .. }));
    assert_eq!(state.cached(), 2);
    // Without an opaque-token provider, such a credential is an unknown API key.
    let plain =
        parse_config(&json!({"api_keys": [{"name": "k", "sha256": crate::fixtures::sha256_hex("k")}]}))
            .unwrap();
    assert_eq!(
        decide_opaque(&plain, &OpaqueState::default(), "ya29.x"),
        Decision::Deny(AuthError::UnknownApiKey)
    );
}

#[test]
fn cache_entries_expire() {
    let config = google();
    let mut state = OpaqueState::default();
    let digest = [7u8; 32];
    assert!(state.admit(digest, 64, 20, NOW));
    state.finish(&digest, &judge(&config, 400, json!({})), NOW);
    assert!(matches!(state.lookup(&digest, NOW + NEGATIVE_CACHE_SECONDS - 1), Lookup::Hit(Err(_))));
    assert!(matches!(state.lookup(&digest, NOW + NEGATIVE_CACHE_SECONDS), Lookup::Miss));
}

#[test]
fn calls_are_bounded_in_flight_and_per_second() {
    let mut state = OpaqueState::default();
    // max_pending 3: the fourth concurrent call is refused until one finishes.
    for i in 0..3u8 {
        assert!(state.admit([i; 32], 3, 100, NOW));
    }
    assert!(!state.admit([9; 32], 3, 100, NOW));
    state.finish(&[0; 32], &Answer::Failed(CallFailure::NoResponse), NOW);
    assert!(state.admit([9; 32], 3, 100, NOW));

    // 5 calls per second: a flood of 300 distinct tokens in one second starts 5 calls.
    let mut state = OpaqueState::default();
    let started = (0..300u16)
        .filter(|i| {
            let mut digest = [0u8; 32];
            digest[..2].copy_from_slice(&i.to_le_bytes());
            let ok = state.admit(digest, 1000, 5, NOW);
            if ok {
                state.finish(&digest, &Answer::Failed(CallFailure::NoResponse), NOW);
            }
            ok
        })
        .count();
    assert_eq!(started, 5);
    // The budget refills with time, up to one second's worth.
    assert!(state.admit([1; 32], 1000, 5, NOW + 1));
    let mut later = 0;
    for i in 0..20u8 {
        if state.admit([i.wrapping_add(100); 32], 1000, 5, NOW + 100) {
            later += 1;
        }
    }
    assert_eq!(later, 5);
}

/// Issue #14 item 2: an introspection answer passes the same policy step as a JWT's claims:
/// `required_claims`, `groups_overage: deny`, the user id rules and the e-mail rule.
#[test]
fn introspection_answers_meet_the_jwt_policy() {
    let config = parse_config(&json!({"providers": [{
        "name": "keycloak", "issuer": "https://sso.acme.com/realms/eng", "audiences": ["gateway"],
        "jwks": {"discovery": true, "cluster": "sso"},
        "required_claims": {"tenant": ["acme"]}, "groups_overage": "deny",
        "opaque_tokens": {"style": "rfc7662", "uri": "https://sso.acme.com/introspect", "cluster": "sso"}
    }]}))
    .unwrap();
    let answer = |changes: Value| {
        let mut a = introspection();
        a["tenant"] = json!("acme");
        for (k, v) in changes.as_object().unwrap() {
            a[k] = v.clone();
        }
        judge(&config, 200, a)
    };
    let Answer::Verdict { outcome: Ok(identity), .. } = answer(json!({})) else { panic!("accepted") };
    assert_eq!(identity.user_id, "f:1:ada");
    assert_eq!(refused(answer(json!({"tenant": "evil"}))), AuthError::RequiredClaim);
    assert_eq!(refused(answer(json!({"tenant": null}))), AuthError::RequiredClaim);
    assert_eq!(refused(answer(json!({"hasgroups": true}))), AuthError::GroupsOverage);
    assert_eq!(refused(answer(json!({"sub": 12345}))), AuthError::SubjectNotString);
    assert_eq!(refused(answer(json!({"sub": " admin\r\n"}))), AuthError::UserIdNotHeaderSafe);
    let Answer::Verdict { outcome: Ok(unverified), .. } = answer(json!({"email_verified": false})) else {
        panic!("accepted")
    };
    assert_eq!(unverified.email, None);
}

/// The `hd` pin of the google preset holds for tokeninfo answers (which carry no `hd`) through the
/// verified e-mail's domain, with explicit `required_claims` merged in.
#[test]
fn tokeninfo_answers_keep_the_hosted_domain_pin() {
    let config = parse_config(&json!({"providers": [{
        "name": "google", "preset": "google", "client_id": GOOGLE_CLIENT, "hosted_domains": ["acme.com"],
        "jwks": {"cluster": "google_jwks"}, "required_claims": {"access_type": ["online"]},
        "opaque_tokens": {"style": "google_tokeninfo", "uri": "https://oauth2.googleapis.com/tokeninfo", "cluster": "google_oauth"}
    }]}))
    .unwrap();
    assert!(matches!(judge(&config, 200, tokeninfo()), Answer::Verdict { outcome: Ok(_), .. }));
    let mut gmail = tokeninfo();
    gmail["email"] = json!("eve@gmail.com");
    assert_eq!(refused(judge(&config, 200, gmail)), AuthError::DomainNotAllowed);
    let mut offline = tokeninfo();
    offline["access_type"] = json!("offline");
    assert_eq!(refused(judge(&config, 200, offline)), AuthError::RequiredClaim);
}
