//! `token::parse`, `looks_like_jwt` and `verify` on corner inputs the token target reached.

use gateway_filter::reason::AuthError;
use gateway_filter::token::{looks_like_jwt, parse};

use crate::harness::{self, expand, verify_token, GOOD_TOKENS, NOW};

/// A token from `<<header>>.<<claims>>.signature`, as the fuzz target expands it.
fn tpl(text: &str) -> String {
    expand(text).unwrap()
}

/// Claims the fixed provider accepts but for the signature, with `extra` spliced in first (later
/// duplicates would be refused, so `extra` must only name other claims or replace via `claims`).
fn claims(extra: &str) -> String {
    format!(
        r#"{{{extra}"iss":"https://idp.example.com","aud":"gateway","sub":"u","tenant":"acme","exp":{}}}"#,
        NOW + 3600
    )
}

fn outcome(text: &str) -> Result<(), Option<AuthError>> {
    verify_token(text).map(drop)
}

#[test]
fn good_tokens_verify_and_their_templates_expand_to_them() {
    for token in GOOD_TOKENS.lines().filter(|t| verify_token(t).is_ok()) {
        assert!(looks_like_jwt(token));
        harness::token(token.as_bytes());
    }
    assert_eq!(GOOD_TOKENS.lines().filter(|t| verify_token(t).is_ok()).count(), 5);
}

#[test]
fn shapes_that_are_not_three_parts() {
    for text in ["", ".", "..", "a.b", "a.b.c.d", "...", "e30.e30.e30.e30"] {
        assert_eq!(parse(text).err(), Some(AuthError::Malformed), "{text:?}");
        assert!(!looks_like_jwt(text), "{text:?}");
    }
}

#[test]
fn header_corner_cases() {
    let body = claims("");
    let cases: [(&str, AuthError); 9] = [
        (r#"{"alg":"none"}"#, AuthError::AlgorithmNotAllowed),
        (r#"{"alg":"HS256","kid":"rsa"}"#, AuthError::AlgorithmNotAllowed),
        (r#"{"alg":"rs256"}"#, AuthError::AlgorithmNotAllowed),
        (r#"{"alg":"RS256","crit":["exp"]}"#, AuthError::Malformed),
        (r#"{"alg":"RS256","kid":7}"#, AuthError::Malformed),
        (r#"{"alg":"RS256","alg":"RS256"}"#, AuthError::Malformed),
        (r#"{"alg":["RS256"]}"#, AuthError::Malformed),
        (r#"["alg","RS256"]"#, AuthError::Malformed),
        ("{\"alg\":\"RS256\"}\u{0}", AuthError::Malformed),
    ];
    for (header, reason) in cases {
        let token = tpl(&format!("<<{header}>>.<<{body}>>.AAAA"));
        assert_eq!(outcome(&token), Err(Some(reason)), "{header}");
    }
}

#[test]
fn segments_that_are_not_base64url_json() {
    let header = "eyJhbGciOiJFZERTQSJ9"; // {"alg":"EdDSA"}
    let claims = harness::expand(&format!("<<{}>>", claims(""))).unwrap();
    for token in [
        format!("{header}=.{claims}.AAAA"),     // padding
        format!("{header}.{claims}.AAAA="),     // padding in the signature
        format!("{header}.{claims}.AAA+"),      // standard alphabet
        format!("{header}.{claims}.AAB"),       // stray bits in the last character
        format!("{header}.{claims}.A"),         // impossible length
        format!("{header}.{}.AAAA", "_w"),      // 0xff: not UTF-8
        format!("{header}.{claims} .AAAA"),     // space
        format!("{header}.{}.AAAA", "77u_e30"), // BOM before {}
    ] {
        assert_eq!(parse(&token).err(), Some(AuthError::Malformed), "{token}");
    }
    // An empty signature parses (and is refused by verification, not by parsing).
    assert_eq!(outcome(&format!("{header}.{claims}.")), Err(Some(AuthError::BadSignature)));
}

#[test]
fn claim_corner_cases() {
    let header = r#"{"alg":"EdDSA","kid":"ed"}"#;
    let run = |claims: &str| outcome(&tpl(&format!("<<{header}>>.<<{claims}>>.AAAA")));
    let base = |exp: &str, rest: &str| {
        format!(
            r#"{{"iss":"https://idp.example.com","aud":"gateway","sub":"u","tenant":"acme","exp":{exp}{rest}}}"#
        )
    };
    // Times: numbers only, any magnitude, no overflow.
    assert_eq!(run(&base("\"1800003600\"", "")), Err(Some(AuthError::Malformed)));
    assert_eq!(run(&base("1e400", "")), Err(Some(AuthError::Malformed))); // out of f64 range: not JSON
    assert_eq!(run(&base("1e300", r#","nbf":-1e300,"iat":-1e300"#)), Err(Some(AuthError::BadSignature)));
    assert_eq!(run(&base("18446744073709551616", "")), Err(Some(AuthError::BadSignature)));
    assert_eq!(run(&base("-1", "")), Err(Some(AuthError::Expired)));
    assert_eq!(run(&base("1800003600", r#","nbf":1e300"#)), Err(Some(AuthError::NotYetValid)));
    assert_eq!(run(&base("1800003600", r#","iat":1800000061"#)), Err(Some(AuthError::IssuedInFuture)));
    assert_eq!(run(&base("1800003600", r#","iat":1800000060"#)), Err(Some(AuthError::BadSignature)));
    assert_eq!(run(&base("null", "")), Err(Some(AuthError::Malformed)));
    assert_eq!(
        run(r#"{"iss":"https://idp.example.com","aud":"gateway","tenant":"acme"}"#),
        Err(Some(AuthError::NoExpiry))
    );
    // Audiences: a non-string in the array is malformed, even next to an accepted one.
    let aud = |aud: &str| run(&format!(r#"{{"aud":{aud},"tenant":"acme","exp":1800003600}}"#));
    assert_eq!(aud(r#"["gateway",5]"#), Err(Some(AuthError::Malformed)));
    assert_eq!(aud(r#"[]"#), Err(Some(AuthError::AudienceNotAllowed)));
    assert_eq!(aud(r#""Gateway""#), Err(Some(AuthError::AudienceNotAllowed)));
    assert_eq!(aud(r#"{"gateway":1}"#), Err(Some(AuthError::Malformed)));
    assert_eq!(aud(r#"["x","claude-desktop"]"#), Err(Some(AuthError::BadSignature)));
    // Required claims are policy (`policy::admit`, tests/fuzz_regressions/decision.rs), checked only
    // once the signature holds: a forged token learns nothing about them.
    let tenant = |t: &str| run(&format!(r#"{{"aud":"gateway","tenant":{t},"exp":1800003600}}"#));
    assert_eq!(tenant(r#"["evil"]"#), Err(Some(AuthError::BadSignature)));
    // Duplicate claims are refused whichever value comes last.
    assert_eq!(
        run(r#"{"aud":"gateway","tenant":"acme","exp":1800003600,"exp":1}"#),
        Err(Some(AuthError::Malformed))
    );
}

#[test]
fn key_selection() {
    let run = |header: &str| outcome(&tpl(&format!("<<{header}>>.<<{}>>.AAAA", claims(""))));
    assert_eq!(run(r#"{"alg":"RS256","kid":"nope"}"#), Err(Some(AuthError::KeyNotFound)));
    assert_eq!(run(r#"{"alg":"ES256","kid":"rsa"}"#), Err(Some(AuthError::KeyNotFound)));
    assert_eq!(run(r#"{"alg":"ES384"}"#), Err(Some(AuthError::KeyNotFound)));
    assert_eq!(run(r#"{"alg":"PS512"}"#), Err(Some(AuthError::BadSignature)));
    assert_eq!(run(r#"{"alg":"EdDSA","kid":""}"#), Err(Some(AuthError::KeyNotFound)));
}

#[test]
fn nesting_depth_limit_in_claims() {
    let nest = |depth: usize| format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
    let with = |depth: usize| {
        tpl(&format!(
            r#"<<{{"alg":"EdDSA"}}>>.<<{{"x":{},"aud":"gateway","tenant":"acme","exp":1800003600}}>>.AAAA"#,
            nest(depth)
        ))
    };
    // The object itself is one level: 31 arrays inside it make 32, the limit.
    assert_eq!(outcome(&with(31)), Err(Some(AuthError::BadSignature)));
    assert_eq!(outcome(&with(32)), Err(Some(AuthError::Malformed)));
    assert_eq!(outcome(&with(5000)), Err(Some(AuthError::Malformed))); // serde_json's recursion limit first
}

#[test]
fn signature_of_a_good_token_moved_to_other_claims_is_refused() {
    let good = GOOD_TOKENS.lines().next().unwrap();
    let signature = good.rsplit('.').next().unwrap();
    let forged = tpl(&format!(
        r#"<<{{"alg":"RS256","typ":"JWT","kid":"rsa"}}>>.<<{}>>.{signature}"#,
        claims(r#""sub2":"x","#)
    ));
    assert_eq!(outcome(&forged), Err(Some(AuthError::BadSignature)));
}

/// `looks_like_jwt` reads only the first four characters: a header with three or more leading
/// whitespace bytes parses as a JWT but is not recognised as one, so `decide` treats it as an API
/// key or opaque token (refused or introspected, never allowed). Pinned as found; see the report.
#[test]
fn whitespace_before_the_header_object() {
    let token = tpl(&format!("<<   {{\"alg\":\"EdDSA\"}}>>.<<{}>>.AAAA", claims("")));
    assert!(parse(&token).is_ok());
    assert!(!looks_like_jwt(&token));
    let two = tpl(&format!("<<  {{\"alg\":\"EdDSA\"}}>>.<<{}>>.AAAA", claims("")));
    assert!(looks_like_jwt(&two));
}
