//! `config::parse_plugin_configuration` on corner inputs of the config target, in both encodings
//! Envoy may hand over: JSON text and the protobuf `Struct` wire format, with the exact outcome.

use gateway_filter::config::{parse_plugin_configuration, ConfigError, MAX_CONFIG_BYTES};
use gateway_filter::struct_pb::{decode_struct, DecodeError};
use serde_json::{json, Map, Value};

use crate::harness::{self, encode_struct};

const SHA: &str = "8254c329a92850f6d539dd376f4816ee2764517da5e0235514af433164480d7a";

fn parse(bytes: &[u8]) -> Result<(), ConfigError> {
    harness::config(bytes); // the target's invariants hold too
    parse_plugin_configuration(bytes, &|_| None).map(drop)
}

fn refused(path: &str, reason: &str) -> Result<(), ConfigError> {
    Err(ConfigError { path: path.into(), reason: reason.into() })
}

fn object(value: Value) -> Map<String, Value> {
    value.as_object().unwrap().clone()
}

fn pb(value: Value) -> Vec<u8> {
    encode_struct(&object(value))
}

/// Found by the config target's JSON/protobuf differential. The protobuf encoding of a `Struct`
/// starts with the tag of its first map entry (0x0a, a newline) and the entry's length: when that
/// length is 123 the second byte is `{`, so the bytes "look like JSON" and are parsed as JSON text.
/// Envoy sends this for ordinary YAML such as
///
/// ```yaml
/// api_keys:
/// - name: xxxxxxxxxxxxxxx
///   sha256: 8254c329…
/// ```
///
/// and the plugin refuses it ("not valid JSON: key must be a string at line 3 column 1").
/// Fails until `parse_plugin_configuration` (src/config/mod.rs) tells the encodings apart by more
/// than the first non-whitespace byte.
#[test]
fn protobuf_struct_whose_first_entry_is_123_bytes_long() {
    let config = json!({"api_keys": [{"name": "xxxxxxxxxxxxxxx", "sha256": SHA}]});
    let bytes = pb(config.clone());
    assert_eq!(&bytes[..2], b"\n{");
    let env = |_: &str| None;
    assert!(parse_plugin_configuration(config.to_string().as_bytes(), &env).is_ok());
    assert_eq!(parse_plugin_configuration(&bytes, &env).map(drop), Ok(()));
    harness::config(&bytes);
}

#[test]
fn both_encodings_of_the_seed_configurations_agree() {
    let seeds = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz/seeds/config");
    let mut checked = 0;
    for entry in std::fs::read_dir(seeds).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read(&path).unwrap();
            let binary = std::fs::read(path.with_extension("pb")).unwrap();
            let from_text = parse_plugin_configuration(&text, &harness_env).map(|c| format!("{c:?}"));
            let from_binary = parse_plugin_configuration(&binary, &harness_env).map(|c| format!("{c:?}"));
            assert_eq!(from_text, from_binary, "{}", path.display());
            assert!(from_text.is_ok(), "{}", path.display());
            checked += 1;
        }
    }
    assert!(checked >= 5);
}

fn harness_env(name: &str) -> Option<String> {
    (name == harness::SECRET_ENV).then(|| "s3cret".into())
}

#[test]
fn what_is_neither_json_nor_a_struct() {
    assert_eq!(parse(b""), refused("providers", "required unless api_keys is set"));
    assert_eq!(parse(b"  \n"), refused("", "not a JSON object or protobuf Struct: truncated varint"));
    assert_eq!(parse(b"[]"), refused("", "not a JSON object or protobuf Struct: unsupported wire type"));
    assert_eq!(
        parse(b"\xef\xbb\xbf{}"),
        refused("", "not a JSON object or protobuf Struct: unsupported wire type")
    );
    assert_eq!(parse(b" {} "), refused("providers", "required unless api_keys is set"));
    assert_eq!(parse(b"{}{}"), refused("", "not valid JSON: trailing characters at line 1 column 3"));
    let big = vec![b' '; MAX_CONFIG_BYTES + 1];
    assert_eq!(
        parse(&big),
        refused("", &format!("configuration of {} bytes is over {MAX_CONFIG_BYTES}", MAX_CONFIG_BYTES + 1))
    );
}

#[test]
fn protobuf_wire_corner_cases() {
    let reason = |why: &str| refused("", &format!("not a JSON object or protobuf Struct: {why}"));
    assert_eq!(parse(&[0x0a, 0x05, 0x01]), reason("truncated field"));
    assert_eq!(
        parse(&[0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]),
        reason("truncated field")
    );
    assert_eq!(parse(&[0x0a; 1]), reason("truncated varint"));
    assert_eq!(parse(&[0x0b]), reason("unsupported wire type"));
    assert_eq!(parse(&[0x80; 11]), reason("varint too long"));
    // A key that is not UTF-8.
    assert_eq!(parse(&[0x0a, 0x03, 0x0a, 0x01, 0xff]), reason("string is not UTF-8"));
    // A string value that is not UTF-8: {"x": "\xc3("}.
    assert_eq!(
        parse(&[0x0a, 0x09, 0x0a, 0x01, b'x', 0x12, 0x04, 0x1a, 0x02, 0xc3, 0x28]),
        reason("string is not UTF-8")
    );
    // Unknown fields and wire types 0, 1, 5 are skipped; fields of the wrong wire type too.
    let mut skipped = vec![0x10, 0x96, 0x01, 0x19, 0, 0, 0, 0, 0, 0, 0, 0, 0x1d, 0, 0, 0, 0, 0x08, 0x01];
    skipped.extend(pb(json!({"api_keys": [{"name": "a", "sha256": SHA}]})));
    assert_eq!(parse(&skipped), Ok(()));
    // An entry without a key is the key "", an unknown field.
    assert_eq!(parse(&[0x0a, 0x02, 0x12, 0x00]), refused("", "unknown field"));
}

#[test]
fn nesting_depth() {
    let mut deep = json!(1);
    for _ in 0..40 {
        deep = json!({ "a": deep });
    }
    let deep_pb = pb(json!({"api_keys": deep.clone()}));
    assert_eq!(parse(&deep_pb), refused("", "not a JSON object or protobuf Struct: nesting too deep"));
    let deep_json = json!({"api_keys": deep}).to_string();
    assert_eq!(parse(deep_json.as_bytes()), refused("", "not valid JSON: nesting too deep"));
    let very_deep = format!("{{\"a\":{}1{}}}", "[".repeat(200), "]".repeat(200));
    assert_eq!(
        parse(very_deep.as_bytes()),
        refused("", "not valid JSON: recursion limit exceeded at line 1 column 132")
    );
    // Lists count too: each level is a ListValue inside a Value.
    let list = |depth: usize| (0..depth).fold(json!(null), |inner, _| json!([inner]));
    assert!(decode_struct(&pb(json!({"a": list(15)}))).is_ok());
    let bytes = pb(json!({"a": list(16)}));
    assert_eq!(decode_struct(&bytes), Err(DecodeError("nesting too deep")));
}

#[test]
fn numbers_at_the_edges() {
    let with = |refresh: &str| {
        format!(
            r#"{{"providers":[{{"name":"p","issuer":"https://i","audiences":["a"],"jwks":{{"uri":"https://i/k","cluster":"c","refresh_seconds":{refresh}}}}}]}}"#
        )
    };
    let whole = refused("providers[0].jwks.refresh_seconds", "must be a whole number from 1 to 604800");
    assert_eq!(parse(with("600").as_bytes()), Ok(()));
    assert_eq!(parse(with("600.0").as_bytes()), whole);
    assert_eq!(parse(with("6e2").as_bytes()), whole);
    assert_eq!(parse(with("-600").as_bytes()), whole);
    assert_eq!(parse(with("0").as_bytes()), whole);
    assert_eq!(parse(with("18446744073709551616").as_bytes()), whole);
    assert_eq!(
        parse(with("1e400").as_bytes()),
        refused("", "not valid JSON: number out of range at line 1 column 130")
    );
    // The protobuf form has only doubles: whole ones are integers, the rest is refused alike.
    let with_pb = |refresh: f64| {
        let mut config: Value = serde_json::from_str(&with("1")).unwrap();
        let mut bytes = pb(config.take());
        let one = 1f64.to_le_bytes();
        let at = bytes.windows(8).position(|w| w == one).unwrap();
        bytes[at..at + 8].copy_from_slice(&refresh.to_le_bytes());
        parse(&bytes)
    };
    assert_eq!(with_pb(600.0), Ok(()));
    assert_eq!(with_pb(-0.0), whole);
    assert_eq!(with_pb(600.5), whole);
    assert_eq!(with_pb(f64::NAN), whole);
    assert_eq!(with_pb(f64::INFINITY), whole);
    assert_eq!(with_pb(9_007_199_254_740_993.0), whole);
}
