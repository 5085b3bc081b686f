//! `opaque::evaluate` on corner answers the opaque_answer target reached, for both styles, with the
//! exact outcome. The first byte of an input picks the style and status (see `harness::STATUSES`):
//! `0` is rfc7662 with 200, `1` google_tokeninfo with 200.

use gateway_filter::opaque::{Answer, CallFailure, MAX_ANSWER_BYTES, NEGATIVE_CACHE_SECONDS};
use gateway_filter::reason::AuthError;
use serde_json::{json, Value};

use crate::harness::{evaluate_input, opaque_answer, NOW};

const RFC: u8 = b'0';
const GOOGLE: u8 = b'1';

fn answer(first: u8, body: &[u8]) -> Answer {
    let input = [&[first][..], body].concat();
    opaque_answer(&input); // the target's invariants hold too
    evaluate_input(&input).unwrap().2
}

fn refused(reason: AuthError) -> Answer {
    Answer::Verdict { outcome: Err(reason), expires_at: NOW + NEGATIVE_CACHE_SECONDS }
}

fn rfc(changes: Value) -> Vec<u8> {
    let mut body = json!({"active": true, "aud": "gateway", "sub": "ada", "scope": "llm", "exp": NOW + 3600});
    for (k, v) in changes.as_object().unwrap() {
        if v.is_null() {
            body.as_object_mut().unwrap().remove(k);
        } else {
            body[k] = v.clone();
        }
    }
    body.to_string().into_bytes()
}

fn google(changes: Value) -> Vec<u8> {
    let mut body = json!({"aud": "1234-abc.apps.googleusercontent.com", "sub": "110", "email": "ada@acme.com",
                          "email_verified": "true", "exp": (NOW + 1800).to_string()});
    for (k, v) in changes.as_object().unwrap() {
        if v.is_null() {
            body.as_object_mut().unwrap().remove(k);
        } else {
            body[k] = v.clone();
        }
    }
    body.to_string().into_bytes()
}

fn expires_at(answer: Answer) -> u64 {
    match answer {
        Answer::Verdict { outcome: Ok(_), expires_at } => expires_at,
        other => panic!("not allowed: {other:?}"),
    }
}

#[test]
fn statuses_and_bodies_that_are_not_answers() {
    assert_eq!(answer(b'2', b"{}"), Answer::Failed(CallFailure::Status(400)));
    assert_eq!(answer(b'3', b"{}"), refused(AuthError::TokenInactive)); // tokeninfo's 400: unknown token
    assert_eq!(answer(b'>', b"{}"), Answer::Failed(CallFailure::NoResponse));
    for body in [&b""[..], b"null", b"[]", b"{\"active\":true,\"active\":true}", b"\xef\xbb\xbf{}", b"{}}"] {
        assert_eq!(answer(RFC, body), Answer::Failed(CallFailure::NotJsonObject), "{body:?}");
    }
    let big = vec![b' '; MAX_ANSWER_BYTES + 1];
    assert_eq!(answer(GOOGLE, &big), Answer::Failed(CallFailure::TooLarge(MAX_ANSWER_BYTES + 1)));
}

#[test]
fn rfc7662_active_must_be_true_itself() {
    for active in [json!("true"), json!(1), json!([true]), Value::Null] {
        assert_eq!(
            answer(RFC, &rfc(json!({"active": active}))),
            refused(AuthError::TokenInactive),
            "{active}"
        );
    }
    assert_eq!(expires_at(answer(RFC, &rfc(json!({})))), NOW + 120);
}

#[test]
fn expiry_corner_cases() {
    // Strings that are numbers count (tokeninfo's style), but not NaN or infinities.
    for exp in [json!("NaN"), json!("inf"), json!("1e999"), json!(""), json!(true)] {
        assert_eq!(answer(RFC, &rfc(json!({"exp": exp}))), refused(AuthError::NoExpiry), "{exp}");
    }
    assert_eq!(expires_at(answer(RFC, &rfc(json!({"exp": (NOW + 30).to_string()})))), NOW + 30);
    assert_eq!(expires_at(answer(RFC, &rfc(json!({"exp": 1e300})))), NOW + 120);
    assert_eq!(expires_at(answer(RFC, &rfc(json!({"exp": 1.8e19})))), NOW + 120);
    assert_eq!(answer(RFC, &rfc(json!({"exp": -1e300}))), refused(AuthError::Expired));
    // Within the clock skew (60 s): allowed, with an expiry already past, so never cached.
    assert_eq!(expires_at(answer(RFC, &rfc(json!({"exp": NOW - 59})))), NOW - 59);
    assert_eq!(answer(RFC, &rfc(json!({"exp": NOW - 60}))), refused(AuthError::Expired));
    // tokeninfo may give only expires_in; exp wins when both are there.
    assert_eq!(expires_at(answer(GOOGLE, &google(json!({"exp": null, "expires_in": "100"})))), NOW + 100);
    assert_eq!(
        answer(GOOGLE, &google(json!({"exp": null, "expires_in": "-1e300"}))),
        refused(AuthError::Expired)
    );
    assert_eq!(answer(GOOGLE, &google(json!({"exp": null}))), refused(AuthError::NoExpiry));
    assert_eq!(expires_at(answer(GOOGLE, &google(json!({"expires_in": "1"})))), NOW + 300);
}

#[test]
fn audience_and_scope() {
    assert_eq!(answer(RFC, &rfc(json!({"aud": ["other", 5]}))), refused(AuthError::AudienceNotAllowed));
    assert_eq!(
        expires_at(answer(RFC, &rfc(json!({"aud": ["other", 5], "client_id": "gateway"})))),
        NOW + 120
    );
    assert_eq!(expires_at(answer(RFC, &rfc(json!({"aud": null, "azp": "gateway"})))), NOW + 120);
    assert_eq!(
        answer(RFC, &rfc(json!({"aud": null, "azp": ["gateway"]}))),
        refused(AuthError::AudienceNotAllowed)
    );
    assert_eq!(answer(RFC, &rfc(json!({"scope": "llmx openid"}))), refused(AuthError::InsufficientScope));
    assert_eq!(answer(RFC, &rfc(json!({"scope": null}))), refused(AuthError::InsufficientScope));
    assert_eq!(expires_at(answer(RFC, &rfc(json!({"scope": null, "scp": ["x", "llm"]})))), NOW + 120);
    assert_eq!(answer(RFC, &rfc(json!({"sub": null}))), refused(AuthError::NoUserId));
    assert_eq!(answer(RFC, &rfc(json!({"sub": 7}))), refused(AuthError::SubjectNotString));
    // A user id passes whole or not at all (issue #14 item 5).
    assert_eq!(answer(RFC, &rfc(json!({"sub": "\r\n\u{0}"}))), refused(AuthError::UserIdNotHeaderSafe));
}

#[test]
fn google_hosted_domain() {
    assert_eq!(expires_at(answer(GOOGLE, &google(json!({"email": "ADA@ACME.COM"})))), NOW + 300);
    assert_eq!(
        answer(GOOGLE, &google(json!({"email": "ada@acme.com.evil.io"}))),
        refused(AuthError::DomainNotAllowed)
    );
    assert_eq!(answer(GOOGLE, &google(json!({"email": "acme.com"}))), refused(AuthError::DomainNotAllowed));
    assert_eq!(answer(GOOGLE, &google(json!({"email": null}))), refused(AuthError::DomainNotAllowed));
    assert_eq!(
        answer(GOOGLE, &google(json!({"email_verified": "True"}))),
        refused(AuthError::EmailNotVerified)
    );
    assert_eq!(
        answer(GOOGLE, &google(json!({"email_verified": null}))),
        refused(AuthError::EmailNotVerified)
    );
    assert_eq!(expires_at(answer(GOOGLE, &google(json!({"email_verified": true})))), NOW + 300);
    // The domain is what follows the last '@'.
    assert_eq!(expires_at(answer(GOOGLE, &google(json!({"email": "eve@evil.io@acme.com"})))), NOW + 300);
}
