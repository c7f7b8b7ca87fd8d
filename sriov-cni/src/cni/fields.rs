//! Reading a network config's JSON objects the way Go's decoder does: keys
//! match in any letter case and, of two that differ only in case, the last
//! one in the document wins (serde_json's `preserve_order` keeps document
//! order). Every accessor names the field and the value in its error.

use std::collections::HashMap;

use serde_json::Value;

use super::{Error, Result};

/// An object's fields by lower-cased key; `null` counts as absent.
pub struct Fields<'a> {
    map: HashMap<String, &'a Value>,
    prefix: &'static str,
}

pub fn bad(name: String, value: &Value, what: &str) -> Error {
    Error::Config(format!("{name}: {value} {what}"))
}

impl<'a> Fields<'a> {
    pub fn new(value: &'a Value, prefix: &'static str) -> Result<Self> {
        let object = value.as_object().ok_or_else(|| {
            Error::Decode(format!(
                "{}: {value} is not a JSON object",
                prefix.trim_end_matches('.')
            ))
        })?;
        let map = object
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect();
        Ok(Fields { map, prefix })
    }

    pub fn name(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    pub fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(&key.to_ascii_lowercase()).copied()
    }

    pub fn string(&self, key: &str) -> Result<Option<&'a str>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(v) => Err(bad(self.name(key), v, "is not a string")),
        }
    }

    /// An integer field within `range`, e.g. `vlan: 5000 is not in 0-4094`.
    pub fn integer(&self, key: &str, min: i64, max: i64) -> Result<Option<i64>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => match v.as_i64() {
                Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
                Some(_) => Err(bad(self.name(key), v, &format!("is not in {min}-{max}"))),
                None => Err(bad(self.name(key), v, "is not an integer")),
            },
        }
    }

    /// A string field parsed by `parse`, e.g. `mac: "zz" is not a MAC address`.
    pub fn parsed<T>(
        &self,
        key: &str,
        what: &str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Result<Option<T>> {
        match self.string(key)? {
            None => Ok(None),
            Some(s) => parse(s)
                .map(Some)
                .ok_or_else(|| bad(self.name(key), &Value::from(s), &format!("is not {what}"))),
        }
    }

    pub fn boolean(&self, key: &str) -> Result<Option<bool>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(bad(self.name(key), v, "is not true or false")),
        }
    }

    pub fn on_off(&self, key: &str) -> Result<Option<bool>> {
        self.parsed(key, "on or off", |s| match s {
            "on" => Some(true),
            "off" => Some(false),
            _ => None,
        })
    }
}
