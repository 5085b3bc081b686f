//! Finds the request's credential: the first of `token_headers` that carries one.

use crate::reason::AuthError;

/// Real ID tokens are 1–4 KiB (Entra's with many groups claims stay under 8 KiB): the default of
/// `limits.max_credential_bytes`. A larger credential is refused before any decoding work.
pub const DEFAULT_MAX_CREDENTIAL_BYTES: usize = 16 * 1024;
/// The most `limits.max_credential_bytes` may be: Envoy admits 60 KiB of request headers.
pub const MAX_CREDENTIAL_BYTES_LIMIT: usize = 64 * 1024;
/// The least it may be: below this even a small RSA-signed ID token would not fit.
pub const MIN_CREDENTIAL_BYTES_LIMIT: usize = 1024;

/// Headers as the host gives them: lowercase names, in request order.
pub type Headers = [(String, String)];

/// A credential and where it came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Found<'h> {
    pub value: &'h str,
    /// From `Authorization: Bearer`: the only place an opaque token is taken from. Other headers
    /// (`x-api-key`) carry API keys, which must never be sent to an introspection endpoint.
    pub bearer: bool,
}

/// The credential from the first of `token_headers` present. `authorization` counts only with the
/// `Bearer` scheme (RFC 6750 §2.1; the scheme is case-insensitive per RFC 9110 §11.1). One longer
/// than `max_bytes` is refused.
pub fn find_credential<'h>(
    headers: &'h Headers,
    token_headers: &[String],
    max_bytes: usize,
) -> Result<Found<'h>, AuthError> {
    for name in token_headers {
        let Some(value) = headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
        else {
            continue;
        };
        let bearer = name == "authorization";
        let credential = if bearer {
            match strip_bearer(value) {
                Some(token) => token,
                None => continue,
            }
        } else {
            value.trim_matches([' ', '\t'])
        };
        if credential.len() > max_bytes {
            return Err(AuthError::CredentialTooLarge);
        }
        if credential.is_empty() {
            return Err(AuthError::Malformed);
        }
        return Ok(Found { value: credential, bearer });
    }
    Err(AuthError::MissingCredential)
}

fn strip_bearer(value: &str) -> Option<&str> {
    let value = value.trim_start_matches([' ', '\t']);
    let scheme = value.get(..6)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let rest = value.get(6..)?;
    if !(rest.is_empty() || rest.starts_with([' ', '\t'])) {
        return None;
    }
    Some(rest.trim_matches([' ', '\t']))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect()
    }
    fn names() -> Vec<String> {
        vec!["authorization".into(), "x-api-key".into()]
    }
    fn find<'h>(h: &'h Headers, names: &[String]) -> Result<&'h str, AuthError> {
        find_credential(h, names, DEFAULT_MAX_CREDENTIAL_BYTES).map(|found| found.value)
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        for value in ["Bearer abc", "bearer abc", "BEARER  abc ", " Bearer\tabc"] {
            assert_eq!(find(&headers(&[("authorization", value)]), &names()), Ok("abc"), "{value}");
        }
    }

    #[test]
    fn order_of_token_headers_decides() {
        let h = headers(&[("x-api-key", "key"), ("authorization", "Bearer tok")]);
        assert_eq!(find(&h, &names()), Ok("tok"));
        let reversed = vec!["x-api-key".to_owned(), "authorization".to_owned()];
        assert_eq!(find(&h, &reversed), Ok("key"));
    }

    #[test]
    fn other_schemes_are_not_credentials() {
        let h = headers(&[("authorization", "Basic dXNlcjpwYXNz"), ("x-api-key", "key")]);
        assert_eq!(find(&h, &names()), Ok("key"));
        let h = headers(&[("authorization", "Bearerabc")]);
        assert_eq!(find(&h, &names()), Err(AuthError::MissingCredential));
        assert_eq!(find(&headers(&[]), &names()), Err(AuthError::MissingCredential));
    }

    #[test]
    fn empty_and_oversized_credentials() {
        assert_eq!(find(&headers(&[("authorization", "Bearer ")]), &names()), Err(AuthError::Malformed));
        assert_eq!(find(&headers(&[("x-api-key", "")]), &names()), Err(AuthError::Malformed));
        let big = "a".repeat(DEFAULT_MAX_CREDENTIAL_BYTES + 1);
        assert_eq!(find(&headers(&[("x-api-key", &big)]), &names()), Err(AuthError::CredentialTooLarge));
        let fits = "a".repeat(DEFAULT_MAX_CREDENTIAL_BYTES);
        assert_eq!(find(&headers(&[("x-api-key", &fits)]), &names()), Ok(fits.as_str()));
    }

    #[test]
    fn the_limit_is_the_callers() {
        let h = headers(&[("x-api-key", &"a".repeat(40_000))]);
        assert_eq!(find_credential(&h, &names(), 16 * 1024), Err(AuthError::CredentialTooLarge));
        assert_eq!(find_credential(&h, &names(), 40_000).map(|f| f.value.len()), Ok(40_000));
    }

    #[test]
    fn only_authorization_bearer_is_a_bearer_credential() {
        let h = headers(&[("authorization", "Bearer tok"), ("x-api-key", "key")]);
        assert_eq!(find_credential(&h, &names(), 100), Ok(Found { value: "tok", bearer: true }));
        let reversed = vec!["x-api-key".to_owned(), "authorization".to_owned()];
        assert_eq!(find_credential(&h, &reversed, 100), Ok(Found { value: "key", bearer: false }));
    }
}
