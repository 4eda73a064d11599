//! A YAML document as a tree of nodes that remember where they came from, so that every later
//! error (type, unknown key, semantic) can point at the user's text.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

/// A 1-based line and column in the rendered text; 0 means unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

impl Pos {
    pub fn is_known(&self) -> bool {
        self.line > 0
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub pos: Pos,
    /// Byte range of the scalar in the rendered text where it is defined (an alias's anchor),
    /// when known: [`super::yaml11`] reads the scalar as written from it.
    pub raw: Option<(usize, usize)>,
}

impl Node {
    pub fn kind_name(&self) -> &'static str {
        match self.value {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    /// The scalar as text, the way YAML users expect a key or a value to read.
    pub fn scalar_text(&self) -> Option<String> {
        match &self.value {
            Value::Str(s) => Some(s.clone()),
            Value::Int(i) => Some(i.to_string()),
            Value::Float(f) => Some(f.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Null => None,
            Value::Seq(_) | Value::Map(_) => None,
        }
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<RawValue>::deserialize(deserializer)?;
        let span = spanned.defined.span();
        let raw = match (span.byte_offset(), span.byte_len()) {
            (Some(offset), Some(len)) => usize::try_from(offset)
                .ok()
                .zip(usize::try_from(len).ok())
                .map(|(offset, len)| (offset, offset + len)),
            _ => None,
        };
        Ok(Node {
            raw,
            value: spanned.value.0,
            pos: Pos {
                line: usize::try_from(spanned.referenced.line()).unwrap_or(0),
                column: usize::try_from(spanned.referenced.column()).unwrap_or(0),
            },
        })
    }
}

struct RawValue(Value);

impl<'de> Deserialize<'de> for RawValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(RawVisitor)
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = RawValue;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<RawValue, E> {
        Ok(RawValue(Value::Bool(v)))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawValue, E> {
        Ok(RawValue(Value::Int(v)))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawValue, E> {
        match i64::try_from(v) {
            Ok(i) => Ok(RawValue(Value::Int(i))),
            Err(_) => Ok(RawValue(Value::Str(v.to_string()))),
        }
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<RawValue, E> {
        match i64::try_from(v) {
            Ok(i) => Ok(RawValue(Value::Int(i))),
            Err(_) => Ok(RawValue(Value::Str(v.to_string()))),
        }
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<RawValue, E> {
        match i64::try_from(v) {
            Ok(i) => Ok(RawValue(Value::Int(i))),
            Err(_) => Ok(RawValue(Value::Str(v.to_string()))),
        }
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<RawValue, E> {
        Ok(RawValue(Value::Float(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<RawValue, E> {
        Ok(RawValue(Value::Str(v.to_owned())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<RawValue, E> {
        Ok(RawValue(Value::Str(v)))
    }
    fn visit_none<E: de::Error>(self) -> Result<RawValue, E> {
        Ok(RawValue(Value::Null))
    }
    fn visit_unit<E: de::Error>(self) -> Result<RawValue, E> {
        Ok(RawValue(Value::Null))
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<RawValue, D::Error> {
        RawValue::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawValue, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Ok(RawValue(Value::Seq(items)))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawValue, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Node>()? {
            let value = map.next_value::<Node>()?;
            entries.push((key, value));
        }
        Ok(RawValue(Value::Map(entries)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Node, serde_saphyr::Error> {
        serde_saphyr::from_str::<Node>(text)
    }

    #[test]
    fn positions_and_merge_keys() {
        let node = parse("base: &b {k: 1, j: 2}\nm:\n  <<: *b\n  j: 3\n").ok();
        let Some(Node {
            value: Value::Map(top),
            ..
        }) = node
        else {
            panic!("expected a mapping");
        };
        let (_, m) = &top[1];
        assert_eq!(m.pos.line, 3);
        let Value::Map(entries) = &m.value else {
            panic!("expected a mapping");
        };
        let get = |k: &str| {
            entries
                .iter()
                .find(|(key, _)| key.scalar_text().as_deref() == Some(k))
                .map(|(_, v)| v.value.clone())
        };
        assert_eq!(
            get("j"),
            Some(Value::Int(3)),
            "explicit keys win over merged ones"
        );
        assert_eq!(get("k"), Some(Value::Int(1)));
    }

    #[test]
    fn duplicate_keys_are_errors() {
        let err = parse("a: 1\na: 2\n")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("duplicate"), "{err}");
    }
}
