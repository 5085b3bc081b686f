//! Static API keys: the configuration holds only their SHA-256, compared in constant time.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::ApiKey;

/// SHA-256 of a credential: how API keys are matched and opaque-token answers are cached.
pub fn digest(credential: &str) -> [u8; 32] {
    Sha256::digest(credential.as_bytes()).into()
}

/// The configured key with this digest. Every entry is compared, whatever matched, so the time
/// taken says nothing about which digests are configured.
pub fn find_api_key<'k>(keys: &'k [ApiKey], digest: &[u8; 32]) -> Option<&'k ApiKey> {
    let mut found = None;
    for key in keys {
        if bool::from(key.sha256.ct_eq(digest)) {
            found = Some(key);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str, secret: &str) -> ApiKey {
        ApiKey { name: name.into(), sha256: digest(secret), groups: vec![] }
    }

    #[test]
    fn matches_by_digest() {
        let keys = [key("a", "secret-a"), key("b", "secret-b")];
        assert_eq!(find_api_key(&keys, &digest("secret-b")).map(|k| k.name.as_str()), Some("b"));
        assert!(find_api_key(&keys, &digest("secret-c")).is_none());
        assert!(find_api_key(&keys, &digest("")).is_none());
        assert!(find_api_key(&[], &digest("secret-a")).is_none());
    }
}
