//! The configuration table: every refused field gives its JSON path and reason.

use gateway_filter::config::{parse_config, parse_plugin_configuration, JwksLocation, JwksSource};
use gateway_filter::crypto::Algorithm;
use serde_json::{json, Value};

use gateway_filter::usage::CostWeights;

use crate::fixtures::*;

/// A remote provider config to vary.
fn base() -> Value {
    json!({
        "providers": [{
            "name": "entra",
            "issuer": "https://login.microsoftonline.com/tid/v2.0",
            "audiences": ["client-id"],
            "jwks": {"uri": "https://login.microsoftonline.com/tid/discovery/v2.0/keys", "cluster": "entra_jwks"},
        }]
    })
}

fn with(path: &[&str], value: Value) -> Value {
    let mut config = base();
    let mut target = &mut config;
    for (i, key) in path.iter().enumerate() {
        if i == path.len() - 1 {
            if value.is_null() {
                target.as_object_mut().unwrap().remove(*key);
            } else {
                target[*key] = value.clone();
            }
            break;
        }
        target = match key.parse::<usize>() {
            Ok(index) => &mut target[index],
            Err(_) => &mut target[*key],
        };
    }
    config
}

#[test]
fn defaults_follow_the_contract() {
    let config = parse_config(&base()).unwrap();
    let p = &config.providers[0];
    assert_eq!(config.token_headers, ["authorization", "x-api-key"]);
    assert!(config.remove_credential);
    assert_eq!(config.headers.user_id, "x-gateway-user-id");
    assert_eq!(config.headers.email, "x-gateway-user-email");
    assert_eq!(config.headers.name, "x-gateway-user-name");
    assert_eq!(config.headers.groups, "x-gateway-user-groups");
    assert_eq!(config.headers.provider, "x-gateway-provider");
    assert_eq!(config.headers.tenant_id, "x-gateway-tenant-id");
    assert_eq!(config.headers.groups_overage, "x-gateway-groups-overage");
    assert_eq!(p.user_claims, ["oid", "sub"]);
    assert_eq!(p.clock_skew_seconds, 60);
    for alg in Algorithm::ALL {
        assert!(p.algorithms.contains(alg));
    }
    let JwksSource::Remote(remote) = &p.jwks else { panic!("remote expected") };
    assert_eq!(remote.refresh_seconds, 600);
    assert_eq!(remote.timeout_ms, 5000);
    assert_eq!(remote.cluster, "entra_jwks");
    let JwksLocation::Uri(url) = &remote.location else { panic!("uri expected") };
    assert_eq!(url.authority, "login.microsoftonline.com");
    assert_eq!(url.path, "/tid/discovery/v2.0/keys");
}

#[test]
fn discovery_url_is_derived_from_the_issuer() {
    let config = with(&["providers", "0", "jwks"], json!({"discovery": true, "cluster": "entra"}));
    let config = parse_config(&config).unwrap();
    let JwksSource::Remote(remote) = &config.providers[0].jwks else { panic!() };
    let JwksLocation::Discovery(url) = &remote.location else { panic!() };
    assert_eq!(url.path, "/tid/v2.0/.well-known/openid-configuration");
}

#[test]
fn explicit_values_are_used() {
    let mut config = base();
    config["token_headers"] = json!(["X-Api-Key"]);
    config["remove_credential"] = json!(false);
    config["headers"] = json!({"user_id": "X-User"});
    config["providers"][0]["user_claims"] = json!(["email"]);
    config["providers"][0]["algorithms"] = json!(["ES256", "EdDSA"]);
    config["providers"][0]["clock_skew_seconds"] = json!(0);
    let config = parse_config(&config).unwrap();
    assert_eq!(config.token_headers, ["x-api-key"]);
    assert!(!config.remove_credential);
    assert_eq!(config.headers.user_id, "x-user");
    assert_eq!(config.headers.email, "x-gateway-user-email");
    let p = &config.providers[0];
    assert_eq!(p.user_claims, ["email"]);
    assert!(p.algorithms.contains(Algorithm::EdDSA) && !p.algorithms.contains(Algorithm::RS256));
    assert_eq!(p.clock_skew_seconds, 0);
}

#[test]
fn api_keys_alone_are_enough() {
    let config = json!({"api_keys": [{"name": "bot", "sha256": sha256_hex("k")}]});
    let config = parse_config(&config).unwrap();
    assert!(config.providers.is_empty());
    assert_eq!(config.api_keys[0].name, "bot");
    assert!(config.api_keys[0].groups.is_empty());
}

#[test]
fn refused_configurations_name_field_and_reason() {
    let inline_jwks = jwks().to_string();
    let cases: Vec<(Value, &str)> = vec![
        (json!({}), "providers: required unless api_keys is set"),
        (json!({"providers": []}), "providers: must not be empty unless api_keys is set"),
        (json!({"providers": {}}), "providers: must be an array"),
        (json!([]), "must be an object"),
        (with(&["providerz"], json!([])), "providerz: unknown field"),
        (with(&["providers", "0", "issuer"], Value::Null), "providers[0].issuer: required"),
        (with(&["providers", "0", "issuer"], json!("")), "providers[0].issuer: must not be empty"),
        (with(&["providers", "0", "issuer"], json!(7)), "providers[0].issuer: must be a string"),
        (
            with(&["providers", "0", "issuer"], json!("https://accounts.google.com/.well-known/openid-configuration")),
            "providers[0].issuer: ends with /.well-known/openid-configuration: remove that suffix, the issuer is the URL before it",
        ),
        (with(&["providers", "0", "name"], Value::Null), "providers[0].name: required"),
        (with(&["providers", "0", "name"], json!("my idp")), "providers[0].name: must be 1 to 64 letters, digits, '-', '_' or '.'"),
        (with(&["providers", "0", "audiences"], json!([])), "providers[0].audiences: must not be empty"),
        (with(&["providers", "0", "audiences"], json!("client-id")), "providers[0].audiences: must be an array"),
        (with(&["providers", "0", "audiences"], json!(["a", 1])), "providers[0].audiences[1]: must be a string"),
        (with(&["providers", "0", "jwks"], Value::Null), "providers[0].jwks: required"),
        (with(&["providers", "0", "jwks"], json!({})), "providers[0].jwks: set exactly one of inline, uri, discovery"),
        (
            with(&["providers", "0", "jwks", "inline"], json!(inline_jwks)),
            "providers[0].jwks: set exactly one of inline, uri, discovery",
        ),
        (
            with(&["providers", "0", "jwks", "discovery"], json!(true)),
            "providers[0].jwks: set exactly one of inline, uri, discovery",
        ),
        (with(&["providers", "0", "jwks", "discovery"], json!("yes")), "providers[0].jwks.discovery: must be true or false"),
        (with(&["providers", "0", "jwks", "cluster"], Value::Null), "providers[0].jwks.cluster: required"),
        (with(&["providers", "0", "jwks", "uri"], json!("login.microsoftonline.com/keys")), "providers[0].jwks.uri: must start with https:// or http://"),
        (with(&["providers", "0", "jwks", "refresh_seconds"], json!(0)), "providers[0].jwks.refresh_seconds: must be a whole number from 1 to 604800"),
        (with(&["providers", "0", "jwks", "refresh_seconds"], json!(1.5)), "providers[0].jwks.refresh_seconds: must be a whole number from 1 to 604800"),
        (with(&["providers", "0", "jwks", "timeout_ms"], json!(-5)), "providers[0].jwks.timeout_ms: must be a whole number from 1 to 60000"),
        (with(&["providers", "0", "jwks", "timeout_s"], json!(5)), "providers[0].jwks.timeout_s: unknown field"),
        (
            with(&["providers", "0", "jwks"], json!({"inline": inline_jwks, "cluster": "x"})),
            "providers[0].jwks.cluster: only applies to uri or discovery",
        ),
        (with(&["providers", "0", "jwks"], json!({"inline": "{}"})), "providers[0].jwks.inline: document has no \"keys\" array"),
        (with(&["providers", "0", "jwks"], json!({"inline": "{\"keys\":[]}"})), "providers[0].jwks.inline: no usable signing key"),
        (
            with(&["providers", "0", "jwks"], json!({"inline": r#"{"keys":[{"kty":"oct","kid":"h","k":"c2VjcmV0"}]}"#})),
            "providers[0].jwks.inline: no usable signing key",
        ),
        (with(&["providers", "0", "algorithms"], json!(["RS256", "none"])), "providers[0].algorithms[1]: none and HMAC algorithms are never accepted"),
        (with(&["providers", "0", "algorithms"], json!(["HS256"])), "providers[0].algorithms[0]: none and HMAC algorithms are never accepted"),
        (with(&["providers", "0", "algorithms"], json!(["RS1"])), "providers[0].algorithms[0]: unsupported algorithm"),
        (with(&["providers", "0", "algorithms"], json!([])), "providers[0].algorithms: must not be empty"),
        (with(&["providers", "0", "user_claims"], json!([])), "providers[0].user_claims: must not be empty"),
        (with(&["providers", "0", "clock_skew_seconds"], json!(3600)), "providers[0].clock_skew_seconds: must be a whole number from 0 to 600"),
        (with(&["providers", "0", "preset"], json!("entra")), "providers[0].tenant_id: required with preset entra"),
        (with(&["providers", "0", "presets"], json!("entra")), "providers[0].presets: unknown field"),
        (with(&["token_headers"], json!([])), "token_headers: must not be empty"),
        (with(&["token_headers"], json!(["x api key"])), "token_headers[0]: is not a valid HTTP header name"),
        (with(&["token_headers"], json!(["x-api-key", "X-API-KEY"])), "token_headers: value \"x-api-key\" appears twice"),
        (with(&["headers"], json!({"user_id": "x-gateway-user-email"})), "headers: header name \"x-gateway-user-email\" appears twice"),
        (with(&["headers"], json!({"user_id": "authorization"})), "headers: \"authorization\" is also a credential header in token_headers"),
        (with(&["headers"], json!({"user_id": ":path"})), "headers.user_id: is not a valid HTTP header name"),
        (with(&["headers"], json!({"user": "x"})), "headers.user: unknown field"),
        (with(&["remove_credential"], json!("false")), "remove_credential: must be true or false"),
        (with(&["api_keys"], json!([{"name": "bot"}])), "api_keys[0].sha256: required"),
        (with(&["api_keys"], json!([{"name": "bot", "sha256": "abc"}])), "api_keys[0].sha256: must be 64 hex digits (the SHA-256 of the key)"),
        (with(&["api_keys"], json!([{"name": "bot", "key": "sk-plaintext", "sha256": sha256_hex("x")}])), "api_keys[0].key: unknown field"),
        (
            with(&["api_keys"], json!([{"name": "bot", "sha256": sha256_hex("x")}, {"name": "bot", "sha256": sha256_hex("y")}])),
            "api_keys: name \"bot\" appears twice",
        ),
        (with(&["usage"], json!({"enabled": "yes"})), "usage.enabled: must be true or false"),
        (with(&["usage"], json!({"metering": true})), "usage.metering: unknown field"),
        (with(&["usage"], json!({"strip_accept_encoding": 1})), "usage.strip_accept_encoding: must be true or false"),
        (
            with(&["usage"], json!({"cost_weights": {"output_tokens": 0.0005}})),
            "usage.cost_weights.output_tokens: must be a non-negative number with at most three decimals (up to 1000000)",
        ),
        (
            with(&["usage"], json!({"cost_weights": {"input_tokens": -1}})),
            "usage.cost_weights.input_tokens: must be a non-negative number with at most three decimals (up to 1000000)",
        ),
        (with(&["usage"], json!({"cost_weights": {"output": 1}})), "usage.cost_weights.output: unknown field"),
        (with(&["budget_groups"], json!("eng")), "budget_groups: must be an array"),
        (with(&["budget_groups"], json!(["eng", "eng"])), "budget_groups: group \"eng\" appears twice"),
        (
            with(&["budget_groups"], json!(["eng", "team a"])),
            "budget_groups[1]: must be at most 256 printable ASCII characters without spaces or commas",
        ),
        (with(&["budget_groups"], json!(["default"])), "default_budget_group: is also one of budget_groups"),
        (with(&["default_budget_group"], json!("")), "default_budget_group: must not be empty"),
        (with(&["headers"], json!({"budget_group": "x-gateway-user-id"})), "headers: header name \"x-gateway-user-id\" appears twice"),
        (with(&["headers"], json!({"budget_group": "x-api-key"})), "headers: \"x-api-key\" is also a credential header in token_headers"),
    ];
    for (config, expected) in cases {
        let error = parse_config(&config).expect_err(expected);
        assert_eq!(error.to_string(), expected, "config: {config}");
    }
}

#[test]
fn usage_defaults_and_values() {
    let config = parse_config(&base()).unwrap();
    assert!(config.usage.enabled && config.usage.strip_accept_encoding);
    assert_eq!(
        config.usage.cost_weights,
        CostWeights { input: 1000, output: 1000, cache_creation: 1000, cache_read: 0 }
    );
    assert!(config.budgets.groups.is_empty());
    assert_eq!(config.budgets.name(None), "default");
    assert_eq!(config.headers.budget_group, "x-gateway-budget-group");
    assert!(config.headers.all().contains(&"x-gateway-budget-group"));

    let mut custom = base();
    custom["usage"] = json!({"enabled": false, "strip_accept_encoding": false,
                             "cost_weights": {"output_tokens": 5, "cache_read_input_tokens": 0.1}});
    custom["budget_groups"] = json!(["research", "eng"]);
    custom["default_budget_group"] = json!("everyone");
    custom["headers"] = json!({"budget_group": "X-Team"});
    let config = parse_config(&custom).unwrap();
    assert!(!config.usage.enabled && !config.usage.strip_accept_encoding);
    assert_eq!(
        config.usage.cost_weights,
        CostWeights { input: 1000, output: 5000, cache_creation: 1000, cache_read: 100 }
    );
    let names: Vec<&str> = config.budgets.groups.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(names, ["research", "eng"]);
    assert_eq!(config.budgets.name(Some(1)), "eng");
    assert_eq!(config.budgets.name(None), "everyone");
    assert_eq!(config.headers.budget_group, "x-team");
}

#[test]
fn duplicate_provider_names_and_issuers() {
    let mut config = base();
    let second = config["providers"][0].clone();
    config["providers"].as_array_mut().unwrap().push(second);
    assert_eq!(parse_config(&config).unwrap_err().to_string(), "providers: name \"entra\" appears twice");
    config["providers"][1]["name"] = json!("entra-2");
    assert_eq!(
        parse_config(&config).unwrap_err().to_string(),
        "providers: issuer \"https://login.microsoftonline.com/tid/v2.0\" appears twice"
    );
}

fn no_env(_: &str) -> Option<String> {
    None
}

#[test]
fn plugin_configuration_bytes() {
    let json = base().to_string();
    assert!(parse_plugin_configuration(json.as_bytes(), &no_env).is_ok());
    assert!(parse_plugin_configuration(format!("  \n{json}").as_bytes(), &no_env).is_ok());
    assert_eq!(
        parse_plugin_configuration(b"{\"providers\": [}", &no_env).unwrap_err().to_string(),
        "not valid JSON: expected value at line 1 column 16"
    );
    assert_eq!(
        parse_plugin_configuration(br#"{"providers":[],"providers":[]}"#, &no_env).unwrap_err().to_string(),
        "not valid JSON: duplicate key at line 1 column 31"
    );
    // Empty bytes are an empty Struct: no providers, no keys.
    assert_eq!(
        parse_plugin_configuration(b"", &no_env).unwrap_err().to_string(),
        "providers: required unless api_keys is set"
    );
    assert!(parse_plugin_configuration(&[0x0a, 0x05], &no_env)
        .unwrap_err()
        .to_string()
        .starts_with("not a JSON object or protobuf Struct"));
}

/// Issue #14 item 1: every incoming header whose name equals an identity header once `_` is read as
/// `-`, in any case, is stripped; other headers are left alone.
#[test]
fn identity_headers_and_their_underscore_twins_are_stripped() {
    let config = parse_config(&json!({
        "api_keys": [{"name": "k", "sha256": "00".repeat(32)}],
        "headers": {"tenant_id": "X-Org-Id"},
    }))
    .unwrap();
    // (incoming name, whether it is stripped)
    let names = [
        ("x_gateway_user_email", true),
        ("X_GATEWAY_USER_ID", true),
        ("x_gateway_user_groups", true),
        ("x-gateway_user-name", true),
        ("x_gateway_provider", true),
        ("x_org_id", true),
        ("x_gateway_groups_overage", true),
        ("x-gateway-user-id", true),
        ("x_gateway_tenant_id", false), // renamed to X-Org-Id: no longer an identity header
        ("x_gateway_user_ids", false),
        ("x-api-key", false),
        ("x_e2e_id", false),
        ("x-gateway-user-id", false), // already in the answer: named once however often it comes
    ];
    let incoming: Vec<(String, String)> =
        names.iter().map(|(n, _)| ((*n).to_owned(), "evil".to_owned())).collect();
    let stripped: Vec<&str> = names.iter().filter(|(_, s)| *s).map(|(n, _)| *n).collect();
    assert_eq!(config.headers.spoofed(&incoming), stripped);
    // Every identity header, in its own spelling and its underscore twin.
    for name in config.headers.all() {
        let twin = name.replace('-', "_");
        let request = vec![(name.to_owned(), "v".to_owned()), (twin.clone(), "v".to_owned())];
        assert_eq!(config.headers.spoofed(&request), [name, twin.as_str()]);
    }
}
