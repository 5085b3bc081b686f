//! Finds the request's credential: the first of `token_headers` that carries one.

use crate::reason::AuthError;

/// Real ID tokens are 1–4 KiB (Entra's with many groups claims stay under 8 KiB). A larger header
/// is refused before any decoding work is spent on it.
pub const MAX_CREDENTIAL_BYTES: usize = 16 * 1024;

/// Headers as the host gives them: lowercase names, in request order.
pub type Headers = [(String, String)];

/// The credential from the first of `token_headers` present. `authorization` counts only with the
/// `Bearer` scheme (RFC 6750 §2.1; the scheme is case-insensitive per RFC 9110 §11.1).
pub fn find_credential<'h>(headers: &'h Headers, token_headers: &[String]) -> Result<&'h str, AuthError> {
    for name in token_headers {
        let Some(value) = headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
        else {
            continue;
        };
        let credential = if name == "authorization" {
            match strip_bearer(value) {
                Some(token) => token,
                None => continue,
            }
        } else {
            value.trim_matches([' ', '\t'])
        };
        if credential.len() > MAX_CREDENTIAL_BYTES {
            return Err(AuthError::CredentialTooLarge);
        }
        if credential.is_empty() {
            return Err(AuthError::Malformed);
        }
        return Ok(credential);
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

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        for value in ["Bearer abc", "bearer abc", "BEARER  abc ", " Bearer\tabc"] {
            assert_eq!(
                find_credential(&headers(&[("authorization", value)]), &names()),
                Ok("abc"),
                "{value}"
            );
        }
    }

    #[test]
    fn order_of_token_headers_decides() {
        let h = headers(&[("x-api-key", "key"), ("authorization", "Bearer tok")]);
        assert_eq!(find_credential(&h, &names()), Ok("tok"));
        let reversed = vec!["x-api-key".to_owned(), "authorization".to_owned()];
        assert_eq!(find_credential(&h, &reversed), Ok("key"));
    }

    #[test]
    fn other_schemes_are_not_credentials() {
        let h = headers(&[("authorization", "Basic dXNlcjpwYXNz"), ("x-api-key", "key")]);
        assert_eq!(find_credential(&h, &names()), Ok("key"));
        let h = headers(&[("authorization", "Bearerabc")]);
        assert_eq!(find_credential(&h, &names()), Err(AuthError::MissingCredential));
        assert_eq!(find_credential(&headers(&[]), &names()), Err(AuthError::MissingCredential));
    }

    #[test]
    fn empty_and_oversized_credentials() {
        assert_eq!(
            find_credential(&headers(&[("authorization", "Bearer ")]), &names()),
            Err(AuthError::Malformed)
        );
        assert_eq!(find_credential(&headers(&[("x-api-key", "")]), &names()), Err(AuthError::Malformed));
        let big = "a".repeat(MAX_CREDENTIAL_BYTES + 1);
        assert_eq!(
            find_credential(&headers(&[("x-api-key", &big)]), &names()),
            Err(AuthError::CredentialTooLarge)
        );
        let fits = "a".repeat(MAX_CREDENTIAL_BYTES);
        assert_eq!(find_credential(&headers(&[("x-api-key", &fits)]), &names()), Ok(fits.as_str()));
    }
}
