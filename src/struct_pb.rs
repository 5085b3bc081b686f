//! Decodes the binary protobuf encoding of `google.protobuf.Struct` into JSON. Envoy hands a Wasm
//! plugin its configuration as the serialized `Any` payload: JSON text for a `StringValue`, but the
//! wire encoding for a `Struct` (what plain YAML under `value:` becomes).

use serde_json::{Map, Number, Value};

/// Protobuf messages nest for each YAML level; a plugin config is a few levels deep.
const MAX_DEPTH: usize = 32;

#[derive(Debug, PartialEq, Eq)]
pub struct DecodeError(pub &'static str);

/// Decodes a serialized `google.protobuf.Struct`.
pub fn decode_struct(bytes: &[u8]) -> Result<Map<String, Value>, DecodeError> {
    decode_struct_at(bytes, 0)
}

fn decode_struct_at(bytes: &[u8], depth: usize) -> Result<Map<String, Value>, DecodeError> {
    if depth > MAX_DEPTH {
        return Err(DecodeError("nesting too deep"));
    }
    let mut map = Map::new();
    let mut reader = Reader { bytes };
    while let Some((field, wire)) = reader.tag()? {
        match (field, wire) {
            // map<string, Value> fields = 1: each entry is a message { key = 1; value = 2 }.
            (1, LEN) => {
                let entry = reader.len_delimited()?;
                let (key, value) = decode_entry(entry, depth)?;
                // JSON input refuses duplicate keys; the binary form must mean the same.
                if map.insert(key, value).is_some() {
                    return Err(DecodeError("duplicate key"));
                }
            }
            _ => reader.skip(wire)?,
        }
    }
    Ok(map)
}

fn decode_entry(bytes: &[u8], depth: usize) -> Result<(String, Value), DecodeError> {
    let mut reader = Reader { bytes };
    let mut key = String::new();
    let mut value = Value::Null;
    while let Some((field, wire)) = reader.tag()? {
        match (field, wire) {
            (1, LEN) => key = utf8(reader.len_delimited()?)?,
            (2, LEN) => value = decode_value(reader.len_delimited()?, depth + 1)?,
            _ => reader.skip(wire)?,
        }
    }
    Ok((key, value))
}

fn decode_value(bytes: &[u8], depth: usize) -> Result<Value, DecodeError> {
    if depth > MAX_DEPTH {
        return Err(DecodeError("nesting too deep"));
    }
    let mut reader = Reader { bytes };
    // An empty Value message is the default of its oneof: null.
    let mut value = Value::Null;
    while let Some((field, wire)) = reader.tag()? {
        value = match (field, wire) {
            (1, VARINT) => {
                reader.varint()?;
                Value::Null
            }
            (2, I64) => number(f64::from_le_bytes(reader.fixed64()?)),
            (3, LEN) => Value::String(utf8(reader.len_delimited()?)?),
            (4, VARINT) => Value::Bool(reader.varint()? != 0),
            (5, LEN) => Value::Object(decode_struct_at(reader.len_delimited()?, depth + 1)?),
            (6, LEN) => decode_list(reader.len_delimited()?, depth + 1)?,
            _ => {
                reader.skip(wire)?;
                continue;
            }
        };
    }
    Ok(value)
}

fn decode_list(bytes: &[u8], depth: usize) -> Result<Value, DecodeError> {
    let mut reader = Reader { bytes };
    let mut items = Vec::new();
    while let Some((field, wire)) = reader.tag()? {
        match (field, wire) {
            (1, LEN) => items.push(decode_value(reader.len_delimited()?, depth + 1)?),
            _ => reader.skip(wire)?,
        }
    }
    Ok(Value::Array(items))
}

/// Struct numbers are doubles; whole ones become JSON integers so `600` reads back as `600`.
fn number(n: f64) -> Value {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53: doubles are exact integers below it
    if n.fract() == 0.0 && n.abs() < EXACT {
        #[allow(clippy::cast_possible_truncation)]
        return Value::from(n as i64);
    }
    Number::from_f64(n).map_or(Value::Null, Value::Number)
}

fn utf8(bytes: &[u8]) -> Result<String, DecodeError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError("string is not UTF-8"))
}

const VARINT: u8 = 0;
const I64: u8 = 1;
const LEN: u8 = 2;
const I32: u8 = 5;

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn tag(&mut self) -> Result<Option<(u64, u8)>, DecodeError> {
        if self.bytes.is_empty() {
            return Ok(None);
        }
        let tag = self.varint()?;
        #[allow(clippy::cast_possible_truncation)]
        Ok(Some((tag >> 3, (tag & 7) as u8)))
    }

    fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = self.bytes.split_first().ok_or(DecodeError("truncated varint"))?;
            self.bytes = rest;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(DecodeError("varint too long"))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.bytes.len() {
            return Err(DecodeError("truncated field"));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn len_delimited(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = usize::try_from(self.varint()?).map_err(|_| DecodeError("truncated field"))?;
        self.take(n)
    }

    fn fixed64(&mut self) -> Result<[u8; 8], DecodeError> {
        let mut out = [0u8; 8];
        out.copy_from_slice(self.take(8)?);
        Ok(out)
    }

    fn skip(&mut self, wire: u8) -> Result<(), DecodeError> {
        match wire {
            VARINT => self.varint().map(drop),
            I64 => self.take(8).map(drop),
            LEN => self.len_delimited().map(drop),
            I32 => self.take(4).map(drop),
            _ => Err(DecodeError("unsupported wire type")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // Minimal encoder for tests: the inverse of the decoder above.
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
    fn len_field(field: u64, body: &[u8], out: &mut Vec<u8>) {
        varint(field << 3 | 2, out);
        varint(body.len() as u64, out);
        out.extend_from_slice(body);
    }
    fn encode_value(v: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        match v {
            Value::Null => out.extend_from_slice(&[0x08, 0x00]),
            Value::Number(n) => {
                out.push(2 << 3 | 1);
                out.extend_from_slice(&n.as_f64().unwrap().to_le_bytes());
            }
            Value::String(s) => len_field(3, s.as_bytes(), &mut out),
            Value::Bool(b) => out.extend_from_slice(&[0x20, u8::from(*b)]),
            Value::Object(m) => len_field(5, &encode_struct(m), &mut out),
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
    fn encode_struct(m: &Map<String, Value>) -> Vec<u8> {
        let mut out = Vec::new();
        for (k, v) in m {
            let mut entry = Vec::new();
            len_field(1, k.as_bytes(), &mut entry);
            len_field(2, &encode_value(v), &mut entry);
            len_field(1, &entry, &mut out);
        }
        out
    }

    #[test]
    fn round_trips_a_plugin_config() {
        let config = json!({
            "providers": [{"name": "entra", "audiences": ["a", "b"], "jwks": {"refresh_seconds": 600, "discovery": true}}],
            "remove_credential": false,
            "skew": 1.5,
            "nothing": null,
            "empty": {}
        });
        let bytes = encode_struct(config.as_object().unwrap());
        assert_eq!(Value::Object(decode_struct(&bytes).unwrap()), config);
    }

    #[test]
    fn whole_numbers_become_integers() {
        assert_eq!(number(600.0), json!(600));
        assert_eq!(number(-3.0), json!(-3));
        assert_eq!(number(0.25), json!(0.25));
        assert_eq!(number(1e300), json!(1e300));
    }

    #[test]
    fn empty_bytes_are_an_empty_struct() {
        assert!(decode_struct(&[]).unwrap().is_empty());
    }

    #[test]
    fn refuses_broken_encodings() {
        assert_eq!(decode_struct(&[0x0a, 0x05, 0x01]), Err(DecodeError("truncated field")));
        assert_eq!(decode_struct(&[0x0a]), Err(DecodeError("truncated varint")));
        assert_eq!(decode_struct(&[0x0b]), Err(DecodeError("unsupported wire type")));
        assert_eq!(decode_struct(&[0xff; 11]), Err(DecodeError("varint too long")));
        let mut bad_utf8 = Vec::new();
        len_field(1, &[0x0a, 0x01, 0xff], &mut bad_utf8);
        assert_eq!(decode_struct(&bad_utf8), Err(DecodeError("string is not UTF-8")));
    }

    #[test]
    fn refuses_duplicate_keys() {
        let mut entry = Vec::new();
        len_field(1, b"k", &mut entry);
        len_field(2, &encode_value(&json!(1)), &mut entry);
        let mut bytes = Vec::new();
        len_field(1, &entry, &mut bytes);
        len_field(1, &entry, &mut bytes);
        assert_eq!(decode_struct(&bytes), Err(DecodeError("duplicate key")));
    }

    #[test]
    fn refuses_deep_nesting() {
        let mut v = json!(1);
        for _ in 0..40 {
            v = json!({ "a": v });
        }
        let bytes = encode_struct(v.as_object().unwrap());
        assert_eq!(decode_struct(&bytes), Err(DecodeError("nesting too deep")));
    }
}
