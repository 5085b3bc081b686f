//! OpenID Connect discovery (OpenID Connect Discovery 1.0 §4): the document must be for our
//! issuer (§4.3), and names where the keys are.

use serde_json::Value;

use crate::strict_json;
use crate::url::{parse_url, Url};

/// Discovery documents are 1–5 KiB; Entra's is ~1.7 KiB.
pub const MAX_DOCUMENT_BYTES: usize = 64 * 1024;

#[derive(Debug, PartialEq, Eq)]
pub enum DiscoveryError {
    TooLarge(usize),
    NotJson,
    IssuerMismatch,
    NoJwksUri,
    BadJwksUri(&'static str),
}

impl std::fmt::Display for DiscoveryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DiscoveryError::TooLarge(n) => {
                write!(f, "document of {n} bytes is over {MAX_DOCUMENT_BYTES}")
            }
            DiscoveryError::NotJson => f.write_str("document is not a JSON object"),
            DiscoveryError::IssuerMismatch => {
                f.write_str("document's issuer differs from the configured issuer")
            }
            DiscoveryError::NoJwksUri => f.write_str("document has no jwks_uri"),
            DiscoveryError::BadJwksUri(why) => write!(f, "jwks_uri {why}"),
        }
    }
}

/// The `jwks_uri` of a discovery document whose `issuer` is exactly `issuer`.
pub fn parse_discovery(document: &[u8], issuer: &str) -> Result<Url, DiscoveryError> {
    if document.len() > MAX_DOCUMENT_BYTES {
        return Err(DiscoveryError::TooLarge(document.len()));
    }
    let doc = strict_json::parse_object(document).map_err(|_| DiscoveryError::NotJson)?;
    if doc.get("issuer").and_then(Value::as_str) != Some(issuer) {
        return Err(DiscoveryError::IssuerMismatch);
    }
    let uri = doc.get("jwks_uri").and_then(Value::as_str).ok_or(DiscoveryError::NoJwksUri)?;
    parse_url(uri).map_err(DiscoveryError::BadJwksUri)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_jwks_uri_of_our_issuer() {
        let doc = br#"{"issuer":"https://accounts.google.com","jwks_uri":"https://www.googleapis.com/oauth2/v3/certs"}"#;
        let url = parse_discovery(doc, "https://accounts.google.com").unwrap();
        assert_eq!(url.authority, "www.googleapis.com");
        assert_eq!(url.path, "/oauth2/v3/certs");
    }

    #[test]
    fn refuses_other_issuers_and_broken_documents() {
        let doc = br#"{"issuer":"https://evil.example","jwks_uri":"https://evil.example/keys"}"#;
        assert_eq!(parse_discovery(doc, "https://accounts.google.com"), Err(DiscoveryError::IssuerMismatch));
        assert_eq!(parse_discovery(br#"{"issuer":"i"}"#, "i"), Err(DiscoveryError::NoJwksUri));
        assert_eq!(
            parse_discovery(br#"{"issuer":"i","jwks_uri":"ftp://x"}"#, "i"),
            Err(DiscoveryError::BadJwksUri("must start with https:// or http://"))
        );
        assert_eq!(parse_discovery(b"<html>", "i"), Err(DiscoveryError::NotJson));
        let big = vec![b' '; MAX_DOCUMENT_BYTES + 1];
        assert_eq!(parse_discovery(&big, "i"), Err(DiscoveryError::TooLarge(MAX_DOCUMENT_BYTES + 1)));
    }
}
