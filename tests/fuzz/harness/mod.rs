//! The bodies of the fuzz targets, with the invariants they check. Each `fuzz_targets/<name>.rs` is
//! one line calling the function of the same name here, and `tests/fuzz_regressions` includes this
//! file too (`#[path]`), so a regression test runs exactly what the fuzzer ran.
//!
//! Fixed state (configurations, key sets) is built once per thread: `Config` holds `Rc`s, so it
//! cannot live in a `static OnceLock`; libFuzzer runs the target on one thread, and each test
//! thread of `cargo test` builds its own.
#![allow(dead_code)]

use std::rc::Rc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use gateway_filter::api_keys;
use gateway_filter::authn::{decide, Decision, State};
use gateway_filter::config::{
    parse_config_with_env, parse_plugin_configuration, Config, JwksSource, OpaqueStyle, OpaqueTokens,
    Provider,
};
use gateway_filter::credential::find_credential;
use gateway_filter::crypto::{Algorithm, PublicKey};
use gateway_filter::discovery::{self, parse_discovery};
use gateway_filter::identity::{Identity, API_KEY_PROVIDER};
use gateway_filter::ids::{ProviderId, SourceId};
use gateway_filter::jwks::{self, parse_jwks, KeySet};
use gateway_filter::key_store::KeyStore;
use gateway_filter::opaque::{evaluate, Answer, OpaqueState, NEGATIVE_CACHE_SECONDS};
use gateway_filter::reason::AuthError;
use gateway_filter::token;
use gateway_filter::token_cache::TokenCache;
use gateway_filter::{strict_json, struct_pb};
use serde_json::{json, Map, Value};

/// The fixed `now` of every target (tokens in the fixture are valid around it).
pub const NOW: u64 = 1_800_000_000;
/// The public JWKS every fixed provider trusts (RSA-2048 `rsa`, P-256 `p256`, Ed25519 `ed`);
/// written by `make_seeds.py`, which keeps the private keys to itself.
pub const JWKS: &str = include_str!("../fixture/jwks.json");
/// Tokens signed by those keys that the fixed configurations accept, one per line.
pub const GOOD_TOKENS: &str = include_str!("../fixture/good_tokens.txt");
/// Every token `make_seeds.py` signed with those keys: the good ones and ones policy refuses.
pub const SIGNED_TOKENS: &str = include_str!("../fixture/signed_tokens.txt");
pub const ISSUER: &str = "https://idp.example.com";
pub const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
pub const ENTRA_CLIENT: &str = "6e74172b-be56-4843-9ff4-e66a39bb12e3";
pub const DISCOVERY_ISSUER: &str = "https://issuer.example.com";
/// The one valid API key of the decision target.
pub const API_KEY: &str = "sk-fuzz-0123456789abcdef";
/// Opaque tokens the decision target's introspection cache knows: valid, refused, being asked.
pub const OPAQUE_GOOD: &str = "opaque-good-token";
pub const OPAQUE_BAD: &str = "opaque-bad-token";
pub const OPAQUE_PENDING: &str = "opaque-pending-token";
/// The environment of the config target: one secret, so `client_secret_env` can succeed.
pub const SECRET_ENV: &str = "FUZZ_SECRET";

// ------------------------------------------------------------------------------------------------
// Input helpers

/// Replaces each `<<text>>` by the base64url of `text`, so the fuzzer can mutate a token's JSON
/// directly (`<<{"alg":"RS256"}>>.<<{"iss":...}>>.sig`). `None` when there is nothing to expand.
pub fn expand(text: &str) -> Option<String> {
    if !text.contains("<<") {
        return None;
    }
    let mut out = String::with_capacity(text.len() * 4 / 3 + 4);
    let mut rest = text;
    while let Some(start) = rest.find("<<") {
        let (before, after) = rest.split_at(start);
        out.push_str(before);
        let inner = &after[2..];
        match inner.find(">>") {
            Some(end) => {
                out.push_str(&URL_SAFE_NO_PAD.encode(&inner.as_bytes()[..end]));
                rest = &inner[end + 2..];
            }
            None => {
                out.push_str(after);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    Some(out)
}

/// What a JWS signature covers: everything before the last `.`.
pub fn signing_input(token: &str) -> &str {
    token.rfind('.').map_or("", |dot| &token[..dot])
}

/// Whether a fixed key signed this token's header and payload: the fuzzer cannot forge a
/// signature, so only these may ever verify.
pub fn signed_by_fixed_keys(token: &str) -> bool {
    let input = signing_input(token);
    !input.is_empty() && SIGNED_TOKENS.lines().any(|signed| signing_input(signed) == input)
}

pub fn is_good_token(token: &str) -> bool {
    GOOD_TOKENS.lines().any(|good| good == token)
}

fn sha256_hex(text: &str) -> String {
    api_keys::digest(text).iter().map(|b| format!("{b:02x}")).collect()
}

fn fixed_keys() -> KeySet {
    let (keys, skipped) = parse_jwks(JWKS.as_bytes()).expect("fixture JWKS");
    assert!(skipped.is_empty() && keys.len() == 3, "fixture JWKS: {skipped:?}");
    keys
}

/// The inline-key provider of the token and decision targets.
pub fn fixed_provider() -> Value {
    json!({
        "name": "fuzz-idp",
        "issuer": ISSUER,
        "audiences": ["gateway", "claude-desktop"],
        "jwks": {"inline": JWKS},
        "required_claims": {"tenant": ["acme"]},
    })
}

fn env(name: &str) -> Option<String> {
    (name == SECRET_ENV).then(|| "s3cret".to_owned())
}

// ------------------------------------------------------------------------------------------------
// token: `token::parse` on any text, then `verify` against the fixed provider

thread_local! {
    static TOKEN_CONFIG: Config =
        parse_config_with_env(&json!({"providers": [fixed_provider()]}), &env).expect("token config");
}

pub fn token(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    check_token(&text);
    if let Some(expanded) = expand(&text) {
        check_token(&expanded);
    }
}

/// The outcome of parsing and verifying `text` with the fixed provider (`None`: did not parse).
pub fn verify_token(text: &str) -> Result<Map<String, Value>, Option<AuthError>> {
    let parsed = token::parse(text).map_err(Some)?;
    TOKEN_CONFIG.with(|config| {
        let provider = &config.providers[0];
        let JwksSource::Inline(keys) = &provider.jwks else { unreachable!("inline provider") };
        parsed.verify(provider, keys, NOW).map(|verified| verified.claims).map_err(Some)
    })
}

fn check_token(text: &str) {
    let _ = token::looks_like_jwt(text);
    let Ok(parsed) = token::parse(text) else { return };
    // Whatever parsed has the shape the rest of the filter relies on.
    assert_eq!(text.split('.').count(), 3, "parsed a token without three parts: {text:?}");
    assert!(gateway_filter::crypto::AlgorithmSet::all().contains(parsed.alg));
    let _ = (parsed.issuer(), parsed.audiences(), parsed.header_has("nonce"), parsed.has_claim("scp"));
    let issuer = parsed.issuer().map(str::to_owned);
    match verify_token(text) {
        Ok(claims) => {
            assert!(signed_by_fixed_keys(text), "verified a token no fixed key signed: {text:?}");
            assert_eq!(claims.get("iss").and_then(Value::as_str), Some(ISSUER));
            assert!(token::check_times(&claims, NOW, 60).is_ok());
        }
        Err(reason) => {
            // The fixture's own tokens for this provider must keep verifying.
            assert!(
                !(is_good_token(text) && issuer.as_deref() == Some(ISSUER)),
                "a good token was refused ({reason:?}): {text:?}"
            );
        }
    }
}

// ------------------------------------------------------------------------------------------------
// jwks: `jwks::parse_jwks` on any bytes; the keys it returns are usable

pub fn jwks(data: &[u8]) {
    match parse_jwks(data) {
        Ok((keys, skipped)) => {
            assert!(data.len() <= jwks::MAX_DOCUMENT_BYTES);
            assert!(!keys.is_empty());
            assert!(keys.len() + skipped.len() <= jwks::MAX_KEYS);
            for skip in &skipped {
                assert!(!skip.reason.is_empty());
            }
            let signature = [0x5au8; 512];
            for alg in Algorithm::ALL {
                for kid in [None, Some("rsa"), Some("")] {
                    for jwk in keys.candidates(kid, alg) {
                        let key = &jwk.key;
                        assert!(key.fits(alg));
                        assert!(kid.is_none() || jwk.kid.as_deref() == kid);
                        assert!(keys.has_fingerprint(jwk.fingerprint));
                        // Random bytes never verify, and trying must not panic on any accepted key
                        // (RSA: the common modulus sizes, so the arithmetic runs, not just the length check).
                        let lengths: &[usize] = match key {
                            PublicKey::Rsa(_) => &[256, 257, 384, 512],
                            _ => &[64],
                        };
                        for &len in lengths {
                            assert!(!key.verify(alg, b"fuzz", &signature[..len]));
                        }
                    }
                }
            }
        }
        Err(e) => {
            assert!(!e.to_string().is_empty());
        }
    }
}

// ------------------------------------------------------------------------------------------------
// discovery: `discovery::parse_discovery` on any bytes

pub fn discovery(data: &[u8]) {
    match parse_discovery(data, DISCOVERY_ISSUER) {
        Ok(url) => {
            assert!(data.len() <= discovery::MAX_DOCUMENT_BYTES);
            // What strict parsing accepted, lenient serde_json reads the same way.
            let doc: Value = serde_json::from_slice(data).expect("strictly parsed, so JSON");
            assert_eq!(doc["issuer"], DISCOVERY_ISSUER);
            let uri = doc["jwks_uri"].as_str().expect("jwks_uri is a string");
            assert!(url.scheme == "https" || url.scheme == "http");
            assert!(!url.authority.is_empty() && !url.authority.contains('@'));
            assert!(url.path.starts_with('/') && !url.path.contains('#'));
            assert!(url.path.bytes().all(|b| b.is_ascii_graphic()));
            // The URL is the text it came from, split: nothing added but a leading '/'.
            let rest = uri
                .strip_prefix(url.scheme)
                .and_then(|r| r.strip_prefix("://"))
                .and_then(|r| r.strip_prefix(url.authority.as_str()))
                .expect("uri starts with scheme and authority");
            assert!(rest == url.path || format!("/{rest}") == url.path, "{uri:?} became {url:?}");
        }
        Err(e) => {
            assert!(!e.to_string().is_empty());
        }
    }
}

// ------------------------------------------------------------------------------------------------
// config: `parse_plugin_configuration` on any bytes (JSON text or protobuf `Struct`)

pub fn config(data: &[u8]) {
    let result = parse_plugin_configuration(data, &env);
    let config = match result {
        Ok(config) => config,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            // Bytes that are a valid configuration as a protobuf `Struct` must not be refused, unless
            // they are a JSON object too (JSON wins then).
            let json = strict_json::parse_object(data);
            let fits = data.len() <= gateway_filter::config::MAX_CONFIG_BYTES;
            if let (true, Err(_), Ok(root)) = (fits, json, struct_pb::decode_struct(data)) {
                let root = Value::Object(root);
                assert!(
                    parse_config_with_env(&root, &env).is_err(),
                    "a valid configuration in protobuf form is refused ({e}): {root}"
                );
            }
            return;
        }
    };
    check_config(&config);
    let mut store = KeyStore::new(&config);
    let due = store.start_due_fetches(NOW);
    assert_eq!(due.len(), store.sources());
    for (index, _) in config.providers.iter().enumerate() {
        let _ = store.availability(ProviderId(index), NOW);
        let _ = store.unknown_kid(ProviderId(index), NOW);
    }

    // The same settings must mean the same in both encodings Envoy may hand over: re-encode what
    // was read in the other one and compare the compiled configurations. (JSON is tried first.)
    let (looks_like_json, root, other) = match strict_json::parse_object(data) {
        Ok(root) => {
            let pb = encode_struct(&root);
            (true, root, pb)
        }
        Err(_) => {
            let root = struct_pb::decode_struct(data).expect("decoded before");
            let text = Value::Object(root.clone()).to_string().into_bytes();
            (false, root, text)
        }
    };
    let again = parse_plugin_configuration(&other, &env);
    match again {
        Ok(again) => assert_eq!(format!("{config:?}"), format!("{again:?}"), "root: {root:?}"),
        Err(e) => panic!(
            "a configuration read as {} is refused in the other encoding ({e}); root: {root:?}, other: {other:?}",
            if looks_like_json { "JSON" } else { "protobuf" }
        ),
    }
}

fn check_config(config: &Config) {
    assert!(!config.providers.is_empty() || !config.api_keys.is_empty());
    assert!(!config.token_headers.is_empty());
    for name in config.token_headers.iter().map(String::as_str).chain(config.headers.all()) {
        assert!(!name.is_empty() && name == name.to_ascii_lowercase(), "header name {name:?}");
        assert!(!name.eq_ignore_ascii_case("host") && !name.starts_with(':'));
    }
    assert!(config.providers.iter().filter(|p| p.opaque_tokens.is_some()).count() <= 1);
    for provider in &config.providers {
        assert!(!provider.name.is_empty() && provider.name.len() <= 64);
        assert!(!provider.audiences.is_empty() && !provider.user_claims.is_empty());
        assert!(config.provider_for_issuer(&provider.issuer).is_some_and(|(_, p)| p.name == provider.name));
        if let JwksSource::Inline(keys) = &provider.jwks {
            assert!(!keys.is_empty());
        }
    }
}

/// `google.protobuf.Struct` wire encoding of a JSON object (what Envoy sends for YAML `value:`).
pub fn encode_struct(map: &Map<String, Value>) -> Vec<u8> {
    let mut out = Vec::new();
    for (key, value) in map {
        let mut entry = Vec::new();
        len_field(1, key.as_bytes(), &mut entry);
        len_field(2, &encode_value(value), &mut entry);
        len_field(1, &entry, &mut out);
    }
    out
}

fn encode_value(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    match value {
        Value::Null => out.extend_from_slice(&[0x08, 0x00]),
        Value::Bool(b) => out.extend_from_slice(&[0x20, u8::from(*b)]),
        Value::Number(n) => {
            out.push(2 << 3 | 1);
            out.extend_from_slice(&n.as_f64().unwrap_or(f64::NAN).to_le_bytes());
        }
        Value::String(s) => len_field(3, s.as_bytes(), &mut out),
        Value::Object(map) => len_field(5, &encode_struct(map), &mut out),
        Value::Array(items) => {
            let mut list = Vec::new();
            for item in items {
                len_field(1, &encode_value(item), &mut list);
            }
            len_field(6, &list, &mut out);
        }
    }
    out
}

fn len_field(field: u64, body: &[u8], out: &mut Vec<u8>) {
    varint(field << 3 | 2, out);
    varint(body.len() as u64, out);
    out.extend_from_slice(body);
}

fn varint(mut v: u64, out: &mut Vec<u8>) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

// ------------------------------------------------------------------------------------------------
// decision: `authn::decide` on headers from "name: value" lines

pub struct DecisionFixture {
    pub config: Config,
    pub keys: KeyStore,
    pub opaque: OpaqueState,
    pub tokens: TokenCache,
    /// The fixed keys, to check which key a verified token names.
    pub fixed: KeySet,
    pub opaque_identity: Identity,
    /// Provider index of the opaque-token provider; key sources of Entra (keys fetched) and Okta
    /// (first fetch under way).
    pub sso: ProviderId,
    pub entra_source: SourceId,
    pub okta_source: SourceId,
}

/// API keys; the inline-key provider; Entra with fetched keys (the fixed ones); Okta whose first
/// fetch is under way; an opaque-token provider whose key fetch failed, with one valid, one refused
/// and one pending token in its introspection cache. The verified-token cache (fixed SipHash key
/// here, random per VM in Envoy) holds the first good token.
pub fn decision_fixture() -> DecisionFixture {
    let mut provider = fixed_provider();
    provider["required_scopes"] = json!(["llm"]);
    let config = parse_config_with_env(
        &json!({
            "providers": [
                provider,
                {"name": "entra", "preset": "entra", "tenant_id": TENANT, "client_id": ENTRA_CLIENT,
                 "jwks": {"cluster": "entra"}},
                {"name": "okta", "preset": "okta", "org_url": "https://acme.okta.com", "client_id": "0oa1",
                 "jwks": {"cluster": "okta"}},
                {"name": "sso", "issuer": "https://sso.acme.com/realms/eng", "audiences": ["gateway"],
                 "jwks": {"discovery": true, "cluster": "sso"},
                 "opaque_tokens": {"style": "rfc7662", "uri": "https://sso.acme.com/introspect", "cluster": "sso",
                                   "client_id": "gateway"}},
            ],
            "api_keys": [{"name": "fuzz-bot", "sha256": sha256_hex(API_KEY), "groups": ["bots"]}],
            "token_headers": ["authorization", "x-api-key", "x-goog-iap-jwt-assertion"],
        }),
        &env,
    )
    .expect("decision config");
    let mut keys = KeyStore::new(&config);
    let source = |name: &str| {
        let index = ProviderId(config.providers.iter().position(|p| p.name == name).expect("provider"));
        (index, keys.source_of(index).expect("remote keys"))
    };
    let ((_, entra_source), (_, okta_source), (sso, sso_source)) =
        (source("entra"), source("okta"), source("sso"));
    assert_eq!(keys.start_due_fetches(NOW - 100).len(), 3);
    keys.fetch_succeeded(entra_source, Rc::new(fixed_keys()), NOW - 100, NOW - 100);
    keys.fetch_failed(sso_source, NOW - 100, 0.0);

    let opaque_identity = Identity {
        user_id: "opaque-user".into(),
        email: Some("ada@acme.com".into()),
        name: None,
        groups: "eng".into(),
        provider: "sso".into(),
        tenant_id: None,
        groups_overage: false,
    };
    let mut opaque = OpaqueState::default();
    let good = api_keys::digest(OPAQUE_GOOD);
    let bad = api_keys::digest(OPAQUE_BAD);
    for digest in [good, bad, api_keys::digest(OPAQUE_PENDING)] {
        assert!(opaque.admit(digest, 64, 20, NOW - 10));
    }
    opaque.finish(
        &good,
        &Answer::Verdict { outcome: Ok(opaque_identity.clone()), expires_at: NOW + 300 },
        NOW - 10,
    );
    opaque.finish(
        &bad,
        &Answer::Verdict { outcome: Err(AuthError::TokenInactive), expires_at: NOW + 60 },
        NOW - 10,
    );
    let mut tokens = TokenCache::new(config.token_cache, [0x5a; 16]);
    let first = GOOD_TOKENS.lines().next().expect("a good token");
    let headers = [("authorization".to_owned(), format!("Bearer {first}"))];
    let empty = TokenCache::new(config.token_cache, [0x5a; 16]);
    match decide(&headers, &config, &State { keys: &keys, opaque: &opaque, tokens: &empty, now: NOW - 10 }) {
        Decision::Verified(verified) => tokens.insert(*verified, NOW - 10),
        other => panic!("the first good token does not verify: {other:?}"),
    }
    assert_eq!(tokens.len(), 1);
    let fixed = fixed_keys();
    DecisionFixture { config, keys, opaque, tokens, fixed, opaque_identity, sso, entra_source, okta_source }
}

thread_local! {
    static DECISION: DecisionFixture = decision_fixture();
}

/// Headers from text: one `name: value` per line (split at the first `:`, one space after it
/// dropped); `<<…>>` in a value is expanded (see `expand`).
pub fn parse_headers(text: &str) -> Vec<(String, String)> {
    text.split('\n')
        .filter_map(|line| {
            let (name, value) = line.split_once(':')?;
            let value = value.strip_prefix(' ').unwrap_or(value);
            Some((name.to_owned(), expand(value).unwrap_or_else(|| value.to_owned())))
        })
        .collect()
}

fn state(f: &DecisionFixture) -> State<'_> {
    State { keys: &f.keys, opaque: &f.opaque, tokens: &f.tokens, now: NOW }
}

pub fn decide_headers(headers: &[(String, String)]) -> Decision {
    DECISION.with(|f| decide(headers, &f.config, &state(f)))
}

pub fn decision(data: &[u8]) {
    let headers = parse_headers(&String::from_utf8_lossy(data));
    DECISION.with(|f| {
        let decision = decide(&headers, &f.config, &state(f));
        let found = find_credential(&headers, &f.config.token_headers, f.config.limits.max_credential_bytes);
        let credential = found.map(|found| found.value);
        let known = |c: &str| c == API_KEY || c == OPAQUE_GOOD || is_good_token(c);
        match decision {
            Decision::Allow(identity) => {
                let credential = credential.expect("allowed without a credential");
                if credential == API_KEY {
                    assert_eq!(identity.provider, API_KEY_PROVIDER);
                    assert_eq!(identity.user_id, "fuzz-bot");
                } else if credential == OPAQUE_GOOD {
                    assert_eq!(identity, f.opaque_identity);
                } else {
                    // Nothing else is allowed unless a fixed key signed it.
                    assert!(
                        signed_by_fixed_keys(credential),
                        "allowed a credential nobody issued: {credential:?}"
                    );
                    assert!(identity.provider == "fuzz-idp" || identity.provider == "entra", "{identity:?}");
                }
                assert!(!identity.user_id.is_empty() && !identity.user_id.chars().any(char::is_control));
            }
            Decision::Verified(verified) => {
                let credential = credential.expect("verified without a credential");
                assert!(
                    signed_by_fixed_keys(credential),
                    "verified a credential nobody issued: {credential:?}"
                );
                assert_eq!(verified.key, f.tokens.key_of(credential));
                let provider = &f.config.providers[verified.provider.0];
                assert!(provider.name == "fuzz-idp" || provider.name == "entra", "{verified:?}");
                assert_eq!(verified.identity.provider, provider.name);
                assert!(f.fixed.has_fingerprint(verified.key_fingerprint));
                assert!(verified.expires_at > NOW);
            }
            Decision::Deny(reason) => {
                if let Ok(credential) = credential {
                    assert!(!known(credential), "refused a good credential ({reason:?}): {credential:?}");
                }
            }
            Decision::Introspect { provider, digest, credential: asked } => {
                let credential = credential.expect("introspection without a credential");
                // Only `Authorization: Bearer` values are ever sent out (never x-api-key).
                assert!(found.is_ok_and(|found| found.bearer), "introspection of a non-bearer credential");
                assert_eq!(provider, f.sso);
                assert_eq!(asked.0, credential);
                assert_eq!(digest, api_keys::digest(credential));
                assert!(!token::looks_like_jwt(credential) && !known(credential));
                assert!(credential != OPAQUE_BAD && credential != OPAQUE_PENDING);
            }
            Decision::WaitForIntrospection(digest) => {
                assert_eq!(digest, api_keys::digest(OPAQUE_PENDING));
            }
            Decision::WaitForKeys(source) => assert_eq!(source, f.okta_source),
            Decision::RefreshKeys(source) => assert_eq!(source, f.entra_source),
        }
    });
}

// ------------------------------------------------------------------------------------------------
// opaque_answer: `opaque::evaluate` on any answer, for both styles

pub struct OpaqueFixture {
    pub google: Config,
    pub rfc7662: Config,
}

pub fn opaque_fixture() -> OpaqueFixture {
    let google = parse_config_with_env(
        &json!({"providers": [{
            "name": "google", "preset": "google", "client_id": "1234-abc.apps.googleusercontent.com",
            "hosted_domains": ["acme.com"], "jwks": {"cluster": "google_jwks"},
            "opaque_tokens": {"style": "google_tokeninfo", "uri": "https://oauth2.googleapis.com/tokeninfo",
                              "cluster": "google_oauth"}}]}),
        &env,
    )
    .expect("google config");
    let rfc7662 = parse_config_with_env(
        &json!({"providers": [{
            "name": "keycloak", "issuer": "https://sso.acme.com/realms/eng", "audiences": ["gateway"],
            "jwks": {"discovery": true, "cluster": "sso"}, "required_scopes": ["llm"],
            "opaque_tokens": {"style": "rfc7662", "uri": "https://sso.acme.com/introspect", "cluster": "sso",
                              "client_id": "gateway", "client_secret_env": SECRET_ENV, "cache_seconds": 120}}]}),
        &env,
    )
    .expect("rfc7662 config");
    OpaqueFixture { google, rfc7662 }
}

thread_local! {
    static OPAQUE: OpaqueFixture = opaque_fixture();
}

/// Statuses the first input byte picks from (`(byte >> 1) & 7`).
pub const STATUSES: [Option<u32>; 8] =
    [Some(200), Some(400), Some(401), Some(500), Some(503), Some(200), Some(200), None];

/// The input's first byte picks the style (low bit: 0 rfc7662, 1 google_tokeninfo) and the status;
/// the rest is the answer's body.
pub fn evaluate_input(data: &[u8]) -> Option<(OpaqueStyle, Option<u32>, Answer)> {
    let (&first, body) = data.split_first()?;
    let status = STATUSES[usize::from((first >> 1) & 7)];
    OPAQUE.with(|f| {
        let config = if first & 1 == 1 { &f.google } else { &f.rfc7662 };
        let (provider, opaque) = parts(config);
        Some((opaque.style, status, evaluate(provider, opaque, status, body, NOW)))
    })
}

fn parts(config: &Config) -> (&Provider, &OpaqueTokens) {
    let provider = &config.providers[0];
    (provider, provider.opaque_tokens.as_ref().expect("opaque provider"))
}

pub fn opaque_answer(data: &[u8]) {
    let Some((style, status, answer)) = evaluate_input(data) else { return };
    let body = &data[1..];
    match answer {
        Answer::Verdict { outcome: Ok(identity), expires_at } => {
            assert_eq!(status, Some(200));
            let cache = if style == OpaqueStyle::Rfc7662 { 120 } else { 300 };
            assert!(expires_at <= NOW + cache);
            let answer: Map<String, Value> = serde_json::from_slice(body).expect("strictly parsed, so JSON");
            let text = |k: &str| answer.get(k).and_then(Value::as_str);
            assert!(!identity.user_id.is_empty() && !identity.user_id.chars().any(char::is_control));
            match style {
                OpaqueStyle::Rfc7662 => {
                    assert_eq!(identity.provider, "keycloak");
                    assert_eq!(answer.get("active"), Some(&Value::Bool(true)));
                    let scopes = [answer.get("scp"), answer.get("scope")];
                    let granted = |v: &Value| match v {
                        Value::String(s) => s.split(' ').any(|s| s == "llm"),
                        Value::Array(items) => items.iter().any(|i| i == "llm"),
                        _ => false,
                    };
                    assert!(scopes.into_iter().flatten().any(granted), "no llm scope in {answer:?}");
                }
                OpaqueStyle::GoogleTokeninfo => {
                    assert_eq!(identity.provider, "google");
                    let email = text("email").expect("hosted domain needs an email");
                    let domain = email.rsplit_once('@').map(|(_, d)| d).expect("an @ in the email");
                    assert!(domain.eq_ignore_ascii_case("acme.com"), "{email:?}");
                }
            }
        }
        Answer::Verdict { outcome: Err(_), expires_at } => {
            assert_eq!(expires_at, NOW + NEGATIVE_CACHE_SECONDS)
        }
        Answer::Failed(_) => {
            assert!(
                status != Some(200)
                    || body.len() > gateway_filter::opaque::MAX_ANSWER_BYTES
                    || strict_json::parse_object(body).is_err()
            );
        }
    }
}

// ------------------------------------------------------------------------------------------------
// rsa_signature: `crypto::rsa` (our Montgomery RSA) against the `rsa` crate and an exact oracle, on
// encodings the fuzzer shapes. The fuzzer cannot sign, so the harness does, with fixed test keys:
// it builds the valid encoding of a fixed message, applies the input's patch, and raises the result
// to the private exponent, so the verifiers see exactly the patched encoding.

use gateway_filter::crypto::rsa as rsa_verify;
pub use gateway_filter::crypto::rsa::Hash;
use rsa::traits::{PrivateKeyParts, PublicKeyParts};
use rsa::{BigUint, Pkcs1v15Sign, Pss};
use sha2::{Digest as _, Sha256, Sha384, Sha512};

pub const RSA_MESSAGE: &[u8] = b"eyJhbGciOiJQUzI1NiJ9.eyJzdWIiOiJmdXp6In0";

pub struct RsaKey {
    pub public: rsa::RsaPublicKey,
    pub ours: rsa_verify::RsaPublicKey,
    /// p, q, d mod (p-1), d mod (q-1), q^-1 mod p.
    crt: [BigUint; 5],
}

impl RsaKey {
    /// `c^d mod n` by the CRT (4x faster than one big exponentiation).
    fn private_op(&self, c: &BigUint) -> BigUint {
        let [p, q, dp, dq, q_inv] = &self.crt;
        let m1 = c.modpow(dp, p);
        let m2 = c.modpow(dq, q);
        let h = (q_inv * ((&m1 + p - (&m2 % p)) % p)) % p;
        m2 + h * q
    }
}

/// Test keys from a fixed seed: 2048 bits with e = 65537, and 2049 bits with e = 3 (emLen is then
/// one byte shorter than the modulus, the PSS corner RFC 8017 §8.1.2 step 2c is about); and the same
/// at 1024 and 1025 bits, which sign 8x faster (no room there for PSS with SHA-512).
pub fn rsa_keys() -> Vec<RsaKey> {
    use rand::SeedableRng;
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x6761_7465_7761_7921);
    [(2048, 65537u32), (2049, 3), (1024, 65537), (1025, 3)]
        .into_iter()
        .map(|(bits, e)| {
            let private =
                rsa::RsaPrivateKey::new_with_exp(&mut rng, bits, &BigUint::from(e)).expect("test key");
            let public = private.to_public_key();
            let ours = rsa_verify::RsaPublicKey::new(&public.n().to_bytes_be(), &public.e().to_bytes_be())
                .expect("our key");
            let (p, q) = (private.primes()[0].clone(), private.primes()[1].clone());
            let one = BigUint::from(1u32);
            let (dp, dq) = (private.d() % (&p - &one), private.d() % (&q - &one));
            let q_inv = q.modpow(&(&p - BigUint::from(2u32)), &p);
            RsaKey { public, ours, crt: [p, q, dp, dq, q_inv] }
        })
        .collect()
}

thread_local! {
    static RSA_KEYS: Vec<RsaKey> = rsa_keys();
}

pub const HASHES: [Hash; 3] = [Hash::Sha256, Hash::Sha384, Hash::Sha512];

fn hash_of(hash: Hash, data: &[u8]) -> Vec<u8> {
    match hash {
        Hash::Sha256 => Sha256::digest(data).to_vec(),
        Hash::Sha384 => Sha384::digest(data).to_vec(),
        Hash::Sha512 => Sha512::digest(data).to_vec(),
    }
}

fn pkcs1_scheme(hash: Hash) -> Pkcs1v15Sign {
    match hash {
        Hash::Sha256 => Pkcs1v15Sign::new::<Sha256>(),
        Hash::Sha384 => Pkcs1v15Sign::new::<Sha384>(),
        Hash::Sha512 => Pkcs1v15Sign::new::<Sha512>(),
    }
}

fn pss_scheme(hash: Hash) -> Pss {
    match hash {
        Hash::Sha256 => Pss::new::<Sha256>(),
        Hash::Sha384 => Pss::new::<Sha384>(),
        Hash::Sha512 => Pss::new::<Sha512>(),
    }
}

/// `00 01 FF.. 00 DigestInfo(hash(message))` with `ps` bytes of padding.
pub fn pkcs1_encoding(hash: Hash, ps: usize) -> Vec<u8> {
    let mut em = vec![0x00, 0x01];
    em.extend(std::iter::repeat_n(0xff, ps));
    em.push(0x00);
    em.extend_from_slice(&pkcs1_scheme(hash).prefix);
    em.extend(hash_of(hash, RSA_MESSAGE));
    em
}

/// EMSA-PSS-ENCODE (RFC 8017 §9.1.1) of the fixed message, MGF1 with the same hash, `em_bits`
/// bits; the salt may be any length (the JWS algorithms require the hash's length).
pub fn pss_encoding(hash: Hash, salt: &[u8], em_bits: usize) -> Option<Vec<u8>> {
    let em_len = em_bits.div_ceil(8);
    let m_hash = hash_of(hash, RSA_MESSAGE);
    let h_len = m_hash.len();
    let db_len = em_len.checked_sub(h_len + 1)?;
    let ps = db_len.checked_sub(salt.len() + 1)?;
    let h = hash_of(hash, &[&[0u8; 8][..], &m_hash, salt].concat());
    let mut db = vec![0u8; ps];
    db.push(0x01);
    db.extend_from_slice(salt);
    let mut mask = Vec::with_capacity(db_len + h_len);
    let mut counter = 0u32;
    while mask.len() < db_len {
        mask.extend(hash_of(hash, &[&h[..], &counter.to_be_bytes()].concat()));
        counter += 1;
    }
    for (byte, m) in db.iter_mut().zip(mask) {
        *byte ^= m;
    }
    db[0] &= 0xff >> (8 * em_len - em_bits);
    db.extend(h);
    db.push(0xbc);
    Some(db)
}

/// Left-pads (or cuts from the left) to `len` bytes.
fn fit(bytes: &[u8], len: usize) -> Vec<u8> {
    if bytes.len() >= len {
        bytes[bytes.len() - len..].to_vec()
    } else {
        [vec![0; len - bytes.len()], bytes.to_vec()].concat()
    }
}

/// The first input byte picks the key (bit 0: 2048 or 2049 bits; bit 7: 1024 or 1025 bits
/// instead), the scheme (bit 1: PSS), the hash (((b >> 2) & 3) % 3) and what the rest does
/// ((b >> 4) & 7): 0 overwrite the encoding at `offset` (bytes 1-2) with the patch (the rest),
/// 1 XOR it in, 2 overwrite from the end, 3 rebuild with the patch as salt (PSS) or `patch.len()`
/// bytes of padding (PKCS#1), 4 XOR the patch into the signature instead, 5 add the modulus to the
/// signature, 6-7 as 0.
pub fn rsa_signature(data: &[u8]) {
    RSA_KEYS.with(|keys| assert_eq!(keys.len(), 4)); // builds the keys on the first call
    let _ = rsa_verdict(data);
}

/// Our verifier's verdict on the signature `data` describes, after checking it against the rsa
/// crate and the exact PKCS#1 comparison (`None`: the input describes no signature).
pub fn rsa_verdict(data: &[u8]) -> Option<bool> {
    let (&first, rest) = data.split_first()?;
    let (offset, patch) = match rest {
        [a, b, patch @ ..] => (usize::from(u16::from_be_bytes([*a, *b])), patch),
        _ => (0, &[][..]),
    };
    let pss = first & 2 != 0;
    let hash = HASHES[usize::from((first >> 2) & 3) % 3];
    let mode = (first >> 4) & 7;
    RSA_KEYS.with(|keys| {
        let key = &keys[usize::from(first & 1) + 2 * usize::from(first >> 7)];
        let size = key.ours.size();
        let bits = key.ours.bits();
        let salt = hash_of(hash, b"salt");
        let valid = if pss {
            fit(&pss_encoding(hash, &salt, bits - 1)?, size)
        } else {
            fit(&pkcs1_encoding(hash, size - 3 - 19 - hash_of(hash, b"").len()), size)
        };
        let mut em = valid.clone();
        let at = offset % size;
        match mode {
            1 => em.iter_mut().skip(at).zip(patch).for_each(|(e, p)| *e ^= p),
            2 => em.iter_mut().rev().skip(at).zip(patch).for_each(|(e, p)| *e = *p),
            3 if pss => em = fit(&pss_encoding(hash, patch, bits - 1)?, size),
            3 => em = fit(&pkcs1_encoding(hash, patch.len() % size), size),
            4 | 5 => {}
            _ => em.iter_mut().skip(at).zip(patch).for_each(|(e, p)| *e = *p),
        }
        let n = key.public.n();
        let mut sig = fit(&key.private_op(&BigUint::from_bytes_be(&em)).to_bytes_be(), size);
        match mode {
            4 => sig.iter_mut().skip(at).zip(patch).for_each(|(s, p)| *s ^= p),
            5 => sig = (BigUint::from_bytes_be(&sig) + n).to_bytes_be(),
            _ => {}
        }
        let ours = if pss {
            key.ours.verify_pss(hash, RSA_MESSAGE, &sig)
        } else {
            key.ours.verify_pkcs1v15(hash, RSA_MESSAGE, &sig)
        };
        // What the signature decrypts to, by plain big-integer arithmetic.
        let s = BigUint::from_bytes_be(&sig);
        if sig.len() != size || &s >= n {
            assert!(!ours, "accepted a signature that is not an integer below n of size() bytes");
            return Some(ours);
        }
        let m = fit(&s.modpow(key.public.e(), n).to_bytes_be(), size);
        if !pss {
            // PKCS#1 v1.5 has exactly one valid encoding.
            assert_eq!(ours, m == valid, "PKCS#1 v1.5 verdict differs from the exact comparison");
        }
        if pss && bits % 8 == 1 && m[0] != 0 {
            // RFC 8017 §8.1.2 step 2c: the integer must fit in emLen bytes (the rsa crate skips this).
            assert!(!ours, "PSS accepted an encoding longer than emLen");
            return Some(ours);
        }
        let digest = hash_of(hash, RSA_MESSAGE);
        let theirs = if pss {
            key.public.verify(pss_scheme(hash), &digest, &sig).is_ok()
        } else {
            key.public.verify(pkcs1_scheme(hash), &digest, &sig).is_ok()
        };
        assert_eq!(
            ours, theirs,
            "our verifier and the rsa crate disagree (pss: {pss}, hash: {hash:?}, m: {m:02x?})"
        );
        if em == valid && mode != 4 && mode != 5 {
            assert!(ours, "the valid encoding was refused");
        }
        Some(ours)
    })
}

// ------------------------------------------------------------------------------------------------
// jwt_simple_diff: the filter's verdict against jwt-simple's on mutated, validly signed tokens

pub mod jwt_simple_diff;

// ------------------------------------------------------------------------------------------------
// p256_signature, p384_signature: `crypto::p256` and `crypto::p384` against the `p256` and `p384`
// crates on mutated, validly signed ES256 and ES384 signatures (one harness, ecdsa_signature.rs)

pub mod p256_signature;
pub mod p384_signature;

// ------------------------------------------------------------------------------------------------
// json_scan: the incremental JSON scanner against serde_json on the whole document

pub mod json_scan;

// ------------------------------------------------------------------------------------------------
// sse: the SSE reader and the usage read from a stream, cut anywhere, against one piece

pub mod sse;
