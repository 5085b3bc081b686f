//! `authn::decide` on corner requests the decision target reached, with the exact decision. The
//! configuration is the target's (`harness::decision_fixture`): API key `fuzz-bot`, the inline-key
//! provider, Entra (keys fetched), Okta (first fetch under way), an opaque-token provider.

use gateway_filter::authn::Decision;
use gateway_filter::ids::ProviderId;
use gateway_filter::reason::AuthError;

use crate::harness::{
    self, decide_headers, parse_headers, API_KEY, ENTRA_CLIENT, GOOD_TOKENS, OPAQUE_BAD, OPAQUE_GOOD,
    OPAQUE_PENDING, TENANT,
};

fn decide(text: &str) -> Decision {
    harness::decision(text.as_bytes()); // the target's invariants hold too
    decide_headers(&parse_headers(text))
}

fn user(decision: &Decision) -> Option<&str> {
    decision.identity().map(|identity| identity.user_id.as_str())
}

#[test]
fn api_key_spellings() {
    for text in [
        format!("x-api-key: {API_KEY}"),
        format!("X-API-KEY:\t{API_KEY} \t"),
        format!("authorization: bEaReR \t{API_KEY}\t"),
        format!("authorization: Basic x\nx-api-key: {API_KEY}"),
    ] {
        assert_eq!(user(&decide(&text)), Some("fuzz-bot"), "{text:?}");
    }
    // Only space and tab are trimmed; the key must otherwise match byte for byte (anything else in
    // x-api-key is an unknown key: only bearer tokens go to the opaque-token provider).
    for text in [
        format!("x-api-key: {API_KEY}\r"),
        format!("x-api-key: {API_KEY}\u{a0}"),
        format!("x-api-key: \"{API_KEY}\""),
        format!("x-api-key: {}", API_KEY.to_uppercase()),
    ] {
        assert_eq!(decide(&text), Decision::Deny(AuthError::UnknownApiKey), "{text:?}");
    }
}

#[test]
fn credential_header_order_and_shape() {
    // The first token header present decides, even if its value is no credential.
    let d = decide(&format!("x-api-key: {API_KEY}\nauthorization: Bearer "));
    assert_eq!(d, Decision::Deny(AuthError::Malformed));
    let d = decide(&format!("authorization: Bearer{API_KEY}\nx-api-key: {API_KEY}"));
    assert_eq!(user(&d), Some("fuzz-bot")); // "Bearer" glued to the key is no bearer credential
    assert_eq!(decide("x-goog-iap-jwt-assertion:"), Decision::Deny(AuthError::Malformed));
    assert_eq!(decide("authorization: Bearer"), Decision::Deny(AuthError::Malformed));
    assert_eq!(decide("authorization: Bearer\r"), Decision::Deny(AuthError::MissingCredential));
    assert_eq!(decide(""), Decision::Deny(AuthError::MissingCredential));
    assert_eq!(decide(":authority: x-api-key: k"), Decision::Deny(AuthError::MissingCredential));
    let big = format!("x-api-key: {}", "k".repeat(16 * 1024 + 1));
    assert_eq!(decide(&big), Decision::Deny(AuthError::CredentialTooLarge));
}

#[test]
fn opaque_tokens_by_cache_state() {
    assert_eq!(user(&decide(&format!("authorization: Bearer {OPAQUE_GOOD}"))), Some("opaque-user"));
    assert_eq!(
        decide(&format!("authorization: Bearer {OPAQUE_BAD}")),
        Decision::Deny(AuthError::TokenInactive)
    );
    assert!(matches!(
        decide(&format!("authorization: Bearer {OPAQUE_PENDING}")),
        Decision::WaitForIntrospection(_)
    ));
    match decide("authorization: Bearer sk-ant-api03-guess") {
        Decision::Introspect { provider: ProviderId(3), .. } => {}
        other => panic!("{other:?}"),
    }
    // x-api-key carries API keys: one that is not configured is refused, never sent out.
    for header in [format!("x-api-key: {OPAQUE_PENDING}"), "x-api-key: sk-ant-api03-guess".to_owned()] {
        assert_eq!(decide(&header), Decision::Deny(AuthError::UnknownApiKey), "{header}");
    }
}

#[test]
fn tokens_by_key_state() {
    let good: Vec<&str> = GOOD_TOKENS.lines().collect();
    // The first good token is in the verified-token cache: allowed from there.
    assert!(matches!(decide(&format!("authorization: Bearer {}", good[0])), Decision::Allow(_)));
    for token in &good[1..] {
        assert!(
            matches!(decide(&format!("authorization: Bearer {token}")), Decision::Verified(_)),
            "{token}"
        );
    }
    let claims = |iss: &str, extra: &str| {
        format!(
            r#"{{"iss":"{iss}","aud":"gateway","sub":"u","tenant":"acme","scp":"llm","exp":1800003600{extra}}}"#
        )
    };
    let bearer =
        |header: &str, claims: &str| decide(&format!("authorization: Bearer <<{header}>>.<<{claims}>>.AAAA"));
    let entra = format!("https://login.microsoftonline.com/{TENANT}/v2.0");
    let entra_claims = |iss: &str| {
        format!(r#"{{"iss":"{iss}","aud":"{ENTRA_CLIENT}","tid":"{TENANT}","oid":"o","exp":1800003600}}"#)
    };
    let fixture = harness::decision_fixture();

    // Entra: keys fetched; an unknown kid asks for a refresh, a known one checks the signature.
    assert_eq!(
        bearer(r#"{"alg":"RS256","kid":"new"}"#, &entra_claims(&entra)),
        Decision::RefreshKeys(fixture.entra_source)
    );
    assert_eq!(
        bearer(r#"{"alg":"RS256","kid":"rsa"}"#, &entra_claims(&entra)),
        Decision::Deny(AuthError::BadSignature)
    );
    assert_eq!(
        bearer(r#"{"alg":"RS256","kid":"new"}"#, &claims(&entra, "")),
        Decision::Deny(AuthError::AudienceNotAllowed)
    );
    assert_eq!(
        bearer(r#"{"alg":"RS256","nonce":"n"}"#, &entra_claims(&entra)),
        Decision::Deny(AuthError::GraphToken)
    );
    let v1 = format!("https://sts.windows.net/{TENANT}/");
    assert_eq!(
        bearer(r#"{"alg":"RS256","kid":"new"}"#, &entra_claims(&v1)),
        Decision::RefreshKeys(fixture.entra_source)
    );
    assert_eq!(
        bearer(r#"{"alg":"RS256"}"#, &claims(&format!("{entra}/"), "")),
        Decision::Deny(AuthError::IssuerTrailingSlash)
    );

    // Okta: the first fetch is under way, so wait for it; org-server access tokens are named first.
    let okta = |extra: &str| {
        format!(r#"{{"iss":"https://acme.okta.com","aud":"0oa1","uid":"u","exp":1800003600{extra}}}"#)
    };
    assert_eq!(bearer(r#"{"alg":"RS256"}"#, &okta("")), Decision::WaitForKeys(fixture.okta_source));
    assert_eq!(
        bearer(r#"{"alg":"RS256"}"#, &okta(r#","cid":"x""#)),
        Decision::Deny(AuthError::OktaOrgAccessToken)
    );
    assert_eq!(
        bearer(r#"{"alg":"RS256"}"#, &okta(r#","scp":["llm"]"#)),
        Decision::Deny(AuthError::OktaOrgAccessToken)
    );

    // The opaque-token provider's key fetch failed: its JWTs cannot be checked.
    let sso = "https://sso.acme.com/realms/eng";
    assert_eq!(bearer(r#"{"alg":"RS256"}"#, &claims(sso, "")), Decision::Deny(AuthError::KeysUnavailable));
    assert_eq!(
        bearer(r#"{"alg":"RS256"}"#, &claims("https://evil.example", "")),
        Decision::Deny(AuthError::IssuerNotTrusted)
    );
    assert_eq!(bearer(r#"{"alg":"RS256"}"#, r#"{"iss":5}"#), Decision::Deny(AuthError::IssuerNotTrusted));

    // Signed and for this gateway, but without the required scope: refused once known genuine.
    let no_scope = harness::SIGNED_TOKENS.lines().find(|t| {
        !GOOD_TOKENS.contains(t)
            && decide(&format!("authorization: Bearer {t}")) == Decision::Deny(AuthError::InsufficientScope)
    });
    assert!(no_scope.is_some());

    // A JWT-looking credential is never an API key or an opaque token, even when it does not parse.
    assert_eq!(decide("x-api-key: eyJhbGciOi.x"), Decision::Deny(AuthError::Malformed));
}
