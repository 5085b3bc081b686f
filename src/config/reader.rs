//! Reading JSON values with their path, so every configuration error names the field it is about.

use serde_json::{Map, Value};

use super::ConfigError;

pub type Result<T> = std::result::Result<T, ConfigError>;

pub fn error(path: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError { path: path.to_owned(), reason: reason.into() }
}

/// An object being read, with its JSON path for error messages.
pub struct Obj<'a> {
    map: &'a Map<String, Value>,
    pub path: String,
}

impl<'a> Obj<'a> {
    pub fn new(value: &'a Value, path: String) -> Result<Self> {
        match value.as_object() {
            Some(map) => Ok(Obj { map, path }),
            None => Err(error(&path, "must be an object")),
        }
    }

    pub fn child(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// Unknown keys are errors: a typo in a security setting must stop the plugin, not be ignored.
    pub fn only(&self, allowed: &[&str]) -> Result<()> {
        match self.map.keys().find(|k| !allowed.contains(&k.as_str())) {
            Some(k) => Err(error(&self.child(k), "unknown field")),
            None => Ok(()),
        }
    }

    pub fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key)
    }

    pub fn required(&self, key: &str) -> Result<&'a Value> {
        self.get(key).ok_or_else(|| error(&self.child(key), "required"))
    }

    pub fn required_str(&self, key: &str) -> Result<String> {
        string(self.required(key)?, &self.child(key))
    }

    pub fn optional_str(&self, key: &str) -> Result<Option<String>> {
        self.get(key).map(|v| string(v, &self.child(key))).transpose()
    }

    pub fn bool_or(&self, key: &str, default: bool) -> Result<bool> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v.as_bool().ok_or_else(|| error(&self.child(key), "must be true or false")),
        }
    }

    pub fn u64_in(&self, key: &str, default: u64, min: u64, max: u64) -> Result<u64> {
        let Some(value) = self.get(key) else { return Ok(default) };
        match value.as_u64() {
            Some(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(error(&self.child(key), format!("must be a whole number from {min} to {max}"))),
        }
    }

    /// A non-empty array of non-empty strings, or `None` when absent.
    pub fn optional_strings(&self, key: &str) -> Result<Option<Vec<String>>> {
        self.get(key).map(|v| non_empty_strings(v, &self.child(key))).transpose()
    }
}

pub fn string(value: &Value, path: &str) -> Result<String> {
    match value {
        Value::String(s) if !s.is_empty() => Ok(s.clone()),
        Value::String(_) => Err(error(path, "must not be empty")),
        _ => Err(error(path, "must be a string")),
    }
}

pub fn array<'a>(value: &'a Value, path: &str) -> Result<&'a Vec<Value>> {
    value.as_array().ok_or_else(|| error(path, "must be an array"))
}

pub fn strings(value: &Value, path: &str) -> Result<Vec<String>> {
    array(value, path)?.iter().enumerate().map(|(i, v)| string(v, &format!("{path}[{i}]"))).collect()
}

pub fn non_empty_strings(value: &Value, path: &str) -> Result<Vec<String>> {
    let values = strings(value, path)?;
    if values.is_empty() {
        return Err(error(path, "must not be empty"));
    }
    Ok(values)
}

pub fn unique<'a>(values: impl Iterator<Item = &'a str>, path: &str, what: &str) -> Result<()> {
    let mut seen: Vec<&str> = Vec::new();
    for v in values {
        if seen.contains(&v) {
            return Err(error(path, format!("{what} \"{v}\" appears twice")));
        }
        seen.push(v);
    }
    Ok(())
}
