//! Identity providers as they really are: preset expansion, and tokens laid out as Entra, Okta
//! and Google document them.

use gateway_filter::authn::{decide, Decision, State};
use gateway_filter::config::{parse_config, Config, JwksLocation, JwksSource, OveragePolicy, Preset};
use gateway_filter::identity::Identity;
use gateway_filter::key_store::KeyStore;
use gateway_filter::opaque::OpaqueState;
use gateway_filter::reason::AuthError;
use serde_json::{json, Value};

use crate::fixtures::*;

const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const CLIENT: &str = "6731de76-14a6-49ae-97bc-6eba6914391e";
const OKTA: &str = "https://acme.okta.com";
const GOOGLE_CLIENT: &str = "1234-abc.apps.googleusercontent.com";

fn remote(provider: &gateway_filter::config::Provider) -> (&str, &JwksLocation) {
    match &provider.jwks {
        JwksSource::Remote(r) => (r.cluster.as_str(), &r.location),
        JwksSource::Inline(_) => panic!("remote keys expected"),
    }
}

#[test]
fn entra_preset_expands_to_the_table() {
    let config = parse_config(&json!({"providers": [{
        "name": "entra", "preset": "entra", "tenant_id": TENANT, "client_id": CLIENT, "jwks": {"cluster": "entra"}
    }]}))
    .unwrap();
    let p = &config.providers[0];
    assert_eq!(p.preset, Some(Preset::Entra));
    assert_eq!(p.issuer, format!("https://login.microsoftonline.com/{TENANT}/v2.0"));
    assert_eq!(p.issuer_aliases, [format!("https://sts.windows.net/{TENANT}/")]);
    assert_eq!(p.audiences, [CLIENT.to_owned(), format!("api://{CLIENT}")]);
    assert_eq!(p.user_claims, ["oid", "sub"]);
    assert_eq!(p.required_claims, [("tid".to_owned(), vec![TENANT.to_owned()])]);
    let (cluster, location) = remote(p);
    assert_eq!(cluster, "entra");
    let JwksLocation::Discovery(url) = location else { panic!("discovery expected") };
    assert_eq!(url.authority, "login.microsoftonline.com");
    assert_eq!(url.path, format!("/{TENANT}/v2.0/.well-known/openid-configuration"));
}

#[test]
fn okta_preset_for_both_authorization_servers() {
    let org = parse_config(&json!({"providers": [{
        "name": "okta", "preset": "okta", "org_url": "https://acme.okta.com/", "client_id": "0oa1", "jwks": {"cluster": "okta"}
    }]}))
    .unwrap();
    let p = &org.providers[0];
    assert_eq!(p.preset, Some(Preset::Okta { org_server: true }));
    assert_eq!(p.issuer, OKTA);
    assert!(p.issuer_aliases.is_empty());
    assert_eq!(p.audiences, ["0oa1"]);
    assert_eq!(p.user_claims, ["uid", "sub"]);
    assert!(p.required_claims.is_empty());
    let JwksLocation::Uri(url) = remote(p).1 else { panic!() };
    assert_eq!((url.authority.as_str(), url.path.as_str()), ("acme.okta.com", "/oauth2/v1/keys"));

    let custom = parse_config(&json!({"providers": [{
        "name": "okta", "preset": "okta", "org_url": OKTA, "authorization_server": "default", "client_id": "0oa1",
        "jwks": {"cluster": "okta"}
    }]}))
    .unwrap();
    let p = &custom.providers[0];
    assert_eq!(p.preset, Some(Preset::Okta { org_server: false }));
    assert_eq!(p.issuer, "https://acme.okta.com/oauth2/default");
    let JwksLocation::Uri(url) = remote(p).1 else { panic!() };
    assert_eq!(url.path, "/oauth2/default/v1/keys");
}

#[test]
fn google_preset_expands_to_the_table() {
    let config = parse_config(&json!({"providers": [{
        "name": "google", "preset": "google", "client_id": GOOGLE_CLIENT, "hosted_domains": ["acme.com"],
        "jwks": {"cluster": "google"}
    }]}))
    .unwrap();
    let p = &config.providers[0];
    assert_eq!(p.issuer, "https://accounts.google.com");
    assert_eq!(p.issuer_aliases, ["accounts.google.com"]);
    assert_eq!(p.audiences, [GOOGLE_CLIENT]);
    assert_eq!(p.user_claims, ["sub"]);
    assert_eq!(p.required_claims, [("hd".to_owned(), vec!["acme.com".to_owned()])]);
    let JwksLocation::Uri(url) = remote(p).1 else { panic!() };
    assert_eq!((url.authority.as_str(), url.path.as_str()), ("www.googleapis.com", "/oauth2/v3/certs"));
}

#[test]
fn explicit_keys_win_over_presets() {
    let config = parse_config(&json!({"providers": [{
        "name": "entra", "preset": "entra", "tenant_id": TENANT, "client_id": CLIENT,
        "issuer": "https://sts.windows.net/t/", "issuer_aliases": [], "audiences": ["api://gateway"],
        "user_claims": ["sub"], "required_claims": {"roles": ["gateway.user"]}, "groups_overage": "deny",
        "jwks": {"uri": "https://keys.example.com/k", "cluster": "c"}
    }]}))
    .unwrap();
    let p = &config.providers[0];
    assert_eq!(p.issuer, "https://sts.windows.net/t/");
    assert!(p.issuer_aliases.is_empty());
    assert_eq!(p.audiences, ["api://gateway"]);
    assert_eq!(p.user_claims, ["sub"]);
    // required_claims is merged with the preset's pin, never replaces it (issue #14 item 3).
    assert_eq!(
        p.required_claims,
        [("tid".to_owned(), vec![TENANT.to_owned()]), ("roles".to_owned(), vec!["gateway.user".to_owned()])]
    );
    assert_eq!(p.groups_overage, OveragePolicy::Deny);
    assert!(matches!(remote(p).1, JwksLocation::Uri(_)));
}

#[test]
fn preset_configuration_errors() {
    let cases = [
        (
            json!({"preset": "entra", "client_id": CLIENT}),
            "providers[0].tenant_id: required with preset entra",
        ),
        (
            json!({"preset": "entra", "tenant_id": "../x", "client_id": CLIENT}),
            "providers[0].tenant_id: must be letters, digits, '-', '_' or '.' only",
        ),
        (
            json!({"preset": "entra", "tenant_id": TENANT}),
            "providers[0].client_id: required with a preset unless audiences is set",
        ),
        (json!({"preset": "okta", "client_id": "x"}), "providers[0].org_url: required with preset okta"),
        (
            json!({"preset": "okta", "client_id": "x", "org_url": "http://acme.okta.com"}),
            "providers[0].org_url: must start with https://",
        ),
        (
            json!({"preset": "google", "client_id": "x"}),
            "providers[0].hosted_domains: required with preset google",
        ),
        (
            json!({"preset": "google", "client_id": "x", "hosted_domains": []}),
            "providers[0].hosted_domains: must not be empty",
        ),
        (json!({"preset": "auth0", "client_id": "x"}), "providers[0].preset: must be entra, okta or google"),
        (
            json!({"preset": "google", "client_id": "x", "hosted_domains": ["a"], "tenant_id": "t"}),
            "providers[0].tenant_id: only applies with preset entra",
        ),
        (
            json!({"issuer": "https://i", "audiences": ["a"], "client_id": "x"}),
            "providers[0].client_id: only applies with preset entra, okta or google",
        ),
        (
            json!({"issuer": "https://i", "audiences": ["a"], "hosted_domains": ["x"]}),
            "providers[0].hosted_domains: only applies with preset google",
        ),
        (
            json!({"issuer": "https://i", "audiences": ["a"], "groups_overage": "ignore"}),
            "providers[0].groups_overage: must be flag or deny",
        ),
        (
            json!({"issuer": "https://i", "audiences": ["a"], "required_claims": {"tid": []}}),
            "providers[0].required_claims.tid: must not be empty",
        ),
        (
            json!({"issuer": "https://i", "audiences": ["a"], "required_claims": ["tid"]}),
            "providers[0].required_claims: must be an object",
        ),
    ];
    for (provider, expected) in cases {
        let mut provider = provider;
        provider["name"] = json!("p");
        provider["jwks"] = json!({"cluster": "c", "discovery": true});
        let error = parse_config(&json!({ "providers": [provider] })).unwrap_err();
        assert_eq!(error.to_string(), expected);
    }
    // Google's two issuer spellings in two providers collide.
    let twice = json!({"providers": [
        {"name": "g1", "preset": "google", "client_id": "x", "hosted_domains": ["a"], "jwks": {"cluster": "c"}},
        {"name": "g2", "issuer": "accounts.google.com", "audiences": ["x"], "jwks": {"cluster": "c", "uri": "https://k/"}},
    ]});
    assert_eq!(
        parse_config(&twice).unwrap_err().to_string(),
        "providers: issuer \"accounts.google.com\" appears twice"
    );
}

/// One Envoy-free gate with all three presets and a generic provider, keys inline.
fn gate() -> Config {
    let inline = json!({"inline": jwks().to_string()});
    parse_config(&json!({"providers": [
        {"name": "entra", "preset": "entra", "tenant_id": TENANT, "client_id": CLIENT, "jwks": inline,
         "required_scopes": []},
        {"name": "entra-api", "preset": "entra", "tenant_id": "11111111-1111-1111-1111-111111111111",
         "client_id": CLIENT, "jwks": inline, "required_scopes": ["gateway.use"], "groups_overage": "deny"},
        {"name": "okta-org", "preset": "okta", "org_url": OKTA, "client_id": "0oa1client", "jwks": inline},
        {"name": "okta", "preset": "okta", "org_url": OKTA, "authorization_server": "default",
         "audiences": ["api://default"], "jwks": inline},
        {"name": "google", "preset": "google", "client_id": GOOGLE_CLIENT, "hosted_domains": ["acme.com"], "jwks": inline},
        {"name": "generic", "issuer": ISSUER, "audiences": [AUDIENCE], "jwks": inline},
    ]}))
    .unwrap()
}

fn judge(config: &Config, header: Value, claims: Value) -> Decision {
    let token = mint_with(&header, &claims, header["alg"].as_str().unwrap());
    let headers = vec![("authorization".to_owned(), format!("Bearer {token}"))];
    let keys = KeyStore::new(config);
    decide(
        &headers,
        config,
        &State { keys: &keys, opaque: &OpaqueState::default(), tokens: &empty_cache(), now: NOW },
    )
}

fn rs256() -> Value {
    json!({"alg": "RS256", "typ": "JWT", "kid": "rsa"})
}

fn times() -> Value {
    json!({"iat": NOW - 60, "nbf": NOW - 60, "exp": NOW + 3600})
}

fn with_times(mut claims: Value) -> Value {
    for (k, v) in times().as_object().unwrap() {
        claims[k] = v.clone();
    }
    claims
}

fn allowed(decision: Decision) -> Identity {
    match decision {
        Decision::Allow(identity) => identity,
        Decision::Verified(verified) => verified.identity,
        other => panic!("expected allow, got {other:?}"),
    }
}

fn entra_v2_id_token() -> Value {
    with_times(json!({
        "aud": CLIENT, "iss": format!("https://login.microsoftonline.com/{TENANT}/v2.0"),
        "name": "Ada Lovelace", "oid": "00000000-0000-0000-66f3-3332eca7ea81", "preferred_username": "ada@acme.com",
        "email": "ada@acme.com", "rh": "0.ARoAv4j5cvGGr0GRqy180BHbR1", "sub": "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ",
        "tid": TENANT, "uti": "fqiBqXLPj0eQa82S-IYFAA", "ver": "2.0", "groups": ["b7c1d7c6-0000-0000-0000-000000000001"]
    }))
}

#[test]
fn entra_v2_id_token_keys_on_oid() {
    let identity = allowed(judge(&gate(), rs256(), entra_v2_id_token()));
    assert_eq!(identity.user_id, "00000000-0000-0000-66f3-3332eca7ea81");
    assert_eq!(identity.provider, "entra");
    assert_eq!(identity.tenant_id.as_deref(), Some(TENANT));
    assert_eq!(identity.email.as_deref(), Some("ada@acme.com"));
    assert!(!identity.groups_overage);
    let names = gate().headers;
    assert!(identity.headers(&names).contains(&("x-gateway-tenant-id", TENANT)));
}

#[test]
fn entra_v1_id_token_through_the_alias() {
    let claims = with_times(json!({
        "aud": CLIENT, "iss": format!("https://sts.windows.net/{TENANT}/"), "amr": ["pwd"],
        "family_name": "Lovelace", "given_name": "Ada", "name": "Ada Lovelace", "oid": "00000000-0000-0000-66f3-3332eca7ea81",
        "sub": "b1b6c9f7", "tid": TENANT, "unique_name": "ada@acme.com", "upn": "ada@acme.com", "ver": "1.0"
    }));
    let identity = allowed(judge(&gate(), rs256(), claims));
    assert_eq!(identity.user_id, "00000000-0000-0000-66f3-3332eca7ea81");
}

#[test]
fn entra_access_tokens_for_the_apps_api() {
    // v2 access token: aud is the client id; scp checked where required_scopes is set.
    let tenant2 = "11111111-1111-1111-1111-111111111111";
    let v2 = with_times(json!({
        "aud": CLIENT, "iss": format!("https://login.microsoftonline.com/{tenant2}/v2.0"), "azp": "c0ffee",
        "oid": "u-1", "scp": "gateway.use offline_access", "sub": "s", "tid": tenant2, "ver": "2.0", "groups": ["g"]
    }));
    assert_eq!(allowed(judge(&gate(), rs256(), v2.clone())).user_id, "u-1");
    let mut no_scope = v2.clone();
    no_scope["scp"] = json!("offline_access");
    assert_eq!(judge(&gate(), rs256(), no_scope), Decision::Deny(AuthError::InsufficientScope));
    // v1 access token: aud is the Application ID URI.
    let v1 = with_times(json!({
        "aud": format!("api://{CLIENT}"), "iss": format!("https://sts.windows.net/{tenant2}/"), "appid": "c0ffee",
        "oid": "u-1", "scp": "gateway.use", "sub": "s", "tid": tenant2, "ver": "1.0"
    }));
    assert_eq!(allowed(judge(&gate(), rs256(), v1)).user_id, "u-1");
}

#[test]
fn entra_wrong_tenant_and_graph_tokens() {
    let mut foreign = entra_v2_id_token();
    foreign["tid"] = json!("99999999-9999-9999-9999-999999999999");
    assert_eq!(judge(&gate(), rs256(), foreign), Decision::Deny(AuthError::TenantNotAllowed));
    let mut no_tid = entra_v2_id_token();
    no_tid.as_object_mut().unwrap().remove("tid");
    assert_eq!(judge(&gate(), rs256(), no_tid), Decision::Deny(AuthError::TenantNotAllowed));
    // A Graph access token: v1 issuer of our tenant, Graph audience, nonce in the header.
    let graph = with_times(json!({
        "aud": "00000003-0000-0000-c000-000000000000", "iss": format!("https://sts.windows.net/{TENANT}/"),
        "oid": "u", "scp": "User.Read openid profile", "tid": TENANT, "ver": "1.0"
    }));
    let header = json!({"alg": "RS256", "typ": "JWT", "kid": "rsa", "nonce": "AQABAAAAAAD"});
    assert_eq!(judge(&gate(), header, graph.clone()), Decision::Deny(AuthError::GraphToken));
    assert_eq!(judge(&gate(), rs256(), graph), Decision::Deny(AuthError::GraphToken));
}

#[test]
fn entra_groups_overage_in_both_forms() {
    let mut overage = entra_v2_id_token();
    overage.as_object_mut().unwrap().remove("groups");
    overage["_claim_names"] = json!({"groups": "src1"});
    overage["_claim_sources"] =
        json!({"src1": {"endpoint": "https://graph.microsoft.com/v1.0/users/x/getMemberObjects"}});
    let identity = allowed(judge(&gate(), rs256(), overage));
    assert!(identity.groups_overage);
    assert!(identity.groups.is_empty());
    assert!(identity.headers(&gate().headers).contains(&("x-gateway-groups-overage", "true")));

    let tenant2 = "11111111-1111-1111-1111-111111111111";
    let implicit = with_times(json!({
        "aud": CLIENT, "iss": format!("https://login.microsoftonline.com/{tenant2}/v2.0"), "oid": "u",
        "tid": tenant2, "scp": "gateway.use", "hasgroups": true
    }));
    assert_eq!(judge(&gate(), rs256(), implicit), Decision::Deny(AuthError::GroupsOverage));
}

#[test]
fn entra_issuer_mix_up_is_named() {
    // Only the v2 issuer configured, a v1 token arrives (and the other way round).
    let v2_only = parse_config(&json!({"providers": [{"name": "e", "issuer": format!("https://login.microsoftonline.com/{TENANT}/v2.0"),
        "audiences": [CLIENT], "jwks": {"inline": jwks().to_string()}}]}))
    .unwrap();
    let mut v1 = entra_v2_id_token();
    v1["iss"] = json!(format!("https://sts.windows.net/{TENANT}/"));
    assert_eq!(judge(&v2_only, rs256(), v1), Decision::Deny(AuthError::EntraV1Issuer));
    let v1_only = parse_config(
        &json!({"providers": [{"name": "e", "issuer": format!("https://sts.windows.net/{TENANT}/"),
        "audiences": [CLIENT], "jwks": {"inline": jwks().to_string()}}]}),
    )
    .unwrap();
    assert_eq!(judge(&v1_only, rs256(), entra_v2_id_token()), Decision::Deny(AuthError::EntraV2Issuer));
}

#[test]
fn okta_tokens() {
    // Org authorization server ID token: sub is the user id (no uid in ID tokens).
    let id_token = with_times(json!({
        "sub": "00uid4BxXw6I6TV4m0g3", "name": "Ada", "email": "ada@acme.com", "ver": 1, "iss": OKTA,
        "aud": "0oa1client", "jti": "ID.4eAWJOCMB3SX8XewDfVR", "amr": ["pwd"], "idp": "00ok1u7AsAkrwdZL3z0g",
        "auth_time": NOW - 100, "at_hash": "preU5NL0Sv0sLF2Tzu3JdQ"
    }));
    let identity = allowed(judge(&gate(), rs256(), id_token));
    assert_eq!((identity.user_id.as_str(), identity.provider.as_str()), ("00uid4BxXw6I6TV4m0g3", "okta-org"));
    // Custom authorization server access token: login name in sub, immutable id in uid.
    let access = with_times(json!({
        "ver": 1, "jti": "AT.u5ms", "iss": "https://acme.okta.com/oauth2/default", "aud": "api://default",
        "cid": "0oa1client", "uid": "00uid4BxXw6I6TV4m0g3", "scp": ["openid", "email"], "sub": "ada@acme.com"
    }));
    let identity = allowed(judge(&gate(), rs256(), access));
    assert_eq!((identity.user_id.as_str(), identity.provider.as_str()), ("00uid4BxXw6I6TV4m0g3", "okta"));
    // Org authorization server access token: only Okta can verify those.
    let org_access = with_times(json!({
        "ver": 1, "iss": OKTA, "aud": OKTA, "cid": "0oa1client", "uid": "00uid4BxXw6I6TV4m0g3",
        "scp": ["openid"], "sub": "ada@acme.com"
    }));
    assert_eq!(judge(&gate(), rs256(), org_access), Decision::Deny(AuthError::OktaOrgAccessToken));
}

fn google_id_token(iss: &str) -> Value {
    with_times(json!({
        "iss": iss, "azp": GOOGLE_CLIENT, "aud": GOOGLE_CLIENT, "sub": "110169484474386276334", "hd": "acme.com",
        "email": "ada@acme.com", "email_verified": true, "at_hash": "HK6E_P6Dh8Y93mRNtsDB1Q", "name": "Ada Lovelace"
    }))
}

#[test]
fn google_id_tokens() {
    for iss in ["https://accounts.google.com", "accounts.google.com"] {
        let identity = allowed(judge(&gate(), rs256(), google_id_token(iss)));
        assert_eq!(
            (identity.user_id.as_str(), identity.provider.as_str()),
            ("110169484474386276334", "google")
        );
    }
    let mut foreign = google_id_token("https://accounts.google.com");
    foreign["hd"] = json!("evil.com");
    assert_eq!(judge(&gate(), rs256(), foreign), Decision::Deny(AuthError::DomainNotAllowed));
    let mut gmail = google_id_token("https://accounts.google.com");
    gmail.as_object_mut().unwrap().remove("hd");
    gmail["email"] = json!("ada@gmail.com");
    assert_eq!(judge(&gate(), rs256(), gmail), Decision::Deny(AuthError::DomainNotAllowed));
}

#[test]
fn generic_provider_untouched_by_diagnostics() {
    let identity = allowed(judge(&gate(), rs256(), claims()));
    assert_eq!(identity.provider, "generic");
    // A nonce in the header of a non-Microsoft token is nothing special.
    let header = json!({"alg": "RS256", "kid": "rsa", "nonce": "n"});
    assert_eq!(allowed(judge(&gate(), header, claims())).provider, "generic");
}

/// Issue #14 item 3: preset pins are security, not defaults. An explicit `required_claims` adds to
/// Google's `hd` pin and Entra's `tid` pin; it never drops them.
#[test]
fn explicit_required_claims_keep_the_preset_pins() {
    let inline = json!({"inline": jwks().to_string()});
    let config = parse_config(&json!({"providers": [
        {"name": "google", "preset": "google", "client_id": GOOGLE_CLIENT, "hosted_domains": ["acme.com"],
         "jwks": inline, "required_claims": {"azp": [GOOGLE_CLIENT]}},
        {"name": "entra", "preset": "entra", "tenant_id": TENANT, "client_id": CLIENT, "jwks": inline,
         "required_claims": {"ver": ["2.0"]}},
    ]}))
    .unwrap();
    let mut gmail = google_id_token("https://accounts.google.com");
    gmail.as_object_mut().unwrap().remove("hd");
    gmail["email"] = json!("eve@gmail.com");
    assert_eq!(judge(&config, rs256(), gmail), Decision::Deny(AuthError::DomainNotAllowed));
    assert_eq!(allowed(judge(&config, rs256(), google_id_token("accounts.google.com"))).provider, "google");
    let mut no_azp = google_id_token("accounts.google.com");
    no_azp.as_object_mut().unwrap().remove("azp");
    assert_eq!(judge(&config, rs256(), no_azp), Decision::Deny(AuthError::RequiredClaim));

    let mut other_tenant = entra_v2_id_token();
    other_tenant["tid"] = json!("00000000-0000-0000-0000-000000000000");
    assert_eq!(judge(&config, rs256(), other_tenant), Decision::Deny(AuthError::TenantNotAllowed));
    assert_eq!(allowed(judge(&config, rs256(), entra_v2_id_token())).provider, "entra");

    // Narrowing a pin is allowed (both hold); an entry no pinned value satisfies is an error.
    let narrowed = parse_config(&json!({"providers": [{"name": "g", "preset": "google", "client_id": "x",
        "hosted_domains": ["acme.com", "b.com"], "jwks": inline, "required_claims": {"hd": ["b.com"]}}]}))
    .unwrap();
    assert_eq!(narrowed.providers[0].required_claims.len(), 2);
    let disjoint = parse_config(&json!({"providers": [{"name": "g", "preset": "google", "client_id": "x",
        "hosted_domains": ["acme.com"], "jwks": inline, "required_claims": {"hd": ["gmail.com"]}}]}));
    assert_eq!(
        disjoint.unwrap_err().to_string(),
        "providers[0].required_claims.hd: the preset requires hd to be one of [\"acme.com\"]; none of these is, so no token could pass"
    );
}
