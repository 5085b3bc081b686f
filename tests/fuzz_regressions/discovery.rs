//! `discovery::parse_discovery` on corner inputs the discovery target reached, with the exact outcome.

use gateway_filter::discovery::{parse_discovery, DiscoveryError, MAX_DOCUMENT_BYTES};
use gateway_filter::url::Url;

use crate::harness::DISCOVERY_ISSUER;

fn parse(jwks_uri: &str) -> Result<Url, DiscoveryError> {
    let doc = serde_json::json!({"issuer": DISCOVERY_ISSUER, "jwks_uri": jwks_uri}).to_string();
    parse_discovery(doc.as_bytes(), DISCOVERY_ISSUER)
}

fn url(scheme: &'static str, authority: &str, path: &str) -> Result<Url, DiscoveryError> {
    Ok(Url { scheme, authority: authority.into(), path: path.into() })
}

#[test]
fn issuer_must_match_exactly() {
    let doc = |issuer: &str| format!(r#"{{"issuer":{issuer},"jwks_uri":"https://k/"}}"#);
    for issuer in [
        r#""https://issuer.example.com/""#,
        r#""HTTPS://issuer.example.com""#,
        r#""https://issuer.example.com\u0000""#,
        r#"["https://issuer.example.com"]"#,
        "null",
    ] {
        assert_eq!(
            parse_discovery(doc(issuer).as_bytes(), DISCOVERY_ISSUER),
            Err(DiscoveryError::IssuerMismatch),
            "{issuer}"
        );
    }
    // The same issuer spelt with JSON escapes is the same string.
    let escaped = doc(r#""https:\/\/issuer.example.\u0063om""#);
    assert_eq!(parse_discovery(escaped.as_bytes(), DISCOVERY_ISSUER), url("https", "k", "/"));
}

#[test]
fn documents_that_are_not_json_objects() {
    for doc in [&b""[..], b"null", b"[]", b"\xef\xbb\xbf{}", b"{\"issuer\":\"a\",\"issuer\":\"a\"}", b"{} x"]
    {
        assert_eq!(parse_discovery(doc, DISCOVERY_ISSUER), Err(DiscoveryError::NotJson), "{doc:?}");
    }
    let big = vec![b' '; MAX_DOCUMENT_BYTES + 1];
    assert_eq!(parse_discovery(&big, "i"), Err(DiscoveryError::TooLarge(MAX_DOCUMENT_BYTES + 1)));
    let doc = format!(r#"{{"issuer":"{DISCOVERY_ISSUER}","jwks_uri":5}}"#);
    assert_eq!(parse_discovery(doc.as_bytes(), DISCOVERY_ISSUER), Err(DiscoveryError::NoJwksUri));
}

#[test]
fn jwks_uri_corner_cases() {
    assert_eq!(parse("https://k.example.com"), url("https", "k.example.com", "/"));
    assert_eq!(parse("https://k.example.com?v=2"), url("https", "k.example.com", "/?v=2"));
    assert_eq!(parse("http://[::1]:8443/keys"), url("http", "[::1]:8443", "/keys"));
    assert_eq!(parse("https://k/%2e%2e/keys"), url("https", "k", "/%2e%2e/keys"));
    assert_eq!(parse("https://"), Err(DiscoveryError::BadJwksUri("has no host")));
    assert_eq!(parse("https:///keys"), Err(DiscoveryError::BadJwksUri("has no host")));
    assert_eq!(parse("HTTPS://k/"), Err(DiscoveryError::BadJwksUri("must start with https:// or http://")));
    assert_eq!(parse("https://a@k/"), Err(DiscoveryError::BadJwksUri("must not carry credentials")));
    assert_eq!(parse("https://k\u{e9}.com/"), Err(DiscoveryError::BadJwksUri("has an invalid host")));
    assert_eq!(parse("https://k#frag"), Err(DiscoveryError::BadJwksUri("must not have a fragment")));
    assert_eq!(
        parse("https://k/a\u{e9}"),
        Err(DiscoveryError::BadJwksUri("has spaces or control characters in its path"))
    );
    assert_eq!(
        parse("https://k/a\r\nHost: x"),
        Err(DiscoveryError::BadJwksUri("has spaces or control characters in its path"))
    );
}
