//! Splits an `http(s)://host[:port]/path` URL into what a dispatched call needs: `:authority` and
//! `:path`. The Envoy cluster decides the address and TLS; the URL only names the request.

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Url {
    pub scheme: &'static str,
    pub authority: String,
    /// Path with query, always starting with `/`.
    pub path: String,
}

impl Url {
    /// The name Istio gives the cluster of this URL's host: `outbound|<port>||<host>`.
    pub fn istio_cluster(&self) -> String {
        let default_port = if self.scheme == "https" { "443" } else { "80" };
        // A port is digits after the last `:`, outside an IPv6 literal's brackets.
        match self.authority.rsplit_once(':') {
            Some((host, port)) if !port.contains(']') && port.bytes().all(|b| b.is_ascii_digit()) => {
                format!("outbound|{port}||{host}")
            }
            _ => format!("outbound|{default_port}||{}", self.authority),
        }
    }
}

pub fn parse_url(text: &str) -> Result<Url, &'static str> {
    let (scheme, rest) = if let Some(rest) = text.strip_prefix("https://") {
        ("https", rest)
    } else if let Some(rest) = text.strip_prefix("http://") {
        ("http", rest)
    } else {
        return Err("must start with https:// or http://");
    };
    let split = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(split);
    if authority.is_empty() {
        return Err("has no host");
    }
    if authority.contains('@') {
        return Err("must not carry credentials");
    }
    if !authority.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b)) {
        return Err("has an invalid host");
    }
    if path.contains('#') {
        return Err("must not have a fragment");
    }
    if path.bytes().any(|b| !b.is_ascii_graphic()) {
        return Err("has spaces or control characters in its path");
    }
    let path = if path.is_empty() {
        "/".to_owned()
    } else if path.starts_with('?') {
        format!("/{path}")
    } else {
        path.to_owned()
    };
    Ok(Url { scheme, authority: authority.to_owned(), path })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_authority_and_path() {
        let url = parse_url("https://login.microsoftonline.com/t/discovery/v2.0/keys?appid=1").unwrap();
        assert_eq!(url.scheme, "https");
        assert_eq!(url.authority, "login.microsoftonline.com");
        assert_eq!(url.path, "/t/discovery/v2.0/keys?appid=1");
        let url = parse_url("http://127.0.0.1:8080").unwrap();
        assert_eq!((url.authority.as_str(), url.path.as_str()), ("127.0.0.1:8080", "/"));
    }

    #[test]
    fn istio_cluster_names() {
        assert_eq!(
            parse_url("https://login.microsoftonline.com/k").unwrap().istio_cluster(),
            "outbound|443||login.microsoftonline.com"
        );
        assert_eq!(
            parse_url("http://idp.internal:8080/k").unwrap().istio_cluster(),
            "outbound|8080||idp.internal"
        );
        assert_eq!(parse_url("http://idp.internal/k").unwrap().istio_cluster(), "outbound|80||idp.internal");
    }

    #[test]
    fn refuses_what_cannot_be_dispatched() {
        assert_eq!(parse_url("ftp://x/"), Err("must start with https:// or http://"));
        assert_eq!(parse_url("https:///keys"), Err("has no host"));
        assert_eq!(parse_url("https://u:p@host/"), Err("must not carry credentials"));
        assert_eq!(parse_url("https://host/a b"), Err("has spaces or control characters in its path"));
        assert_eq!(parse_url("https://host/#x"), Err("must not have a fragment"));
        assert_eq!(parse_url("https://ho st/"), Err("has an invalid host"));
    }
}
