//! JSON helpers shared by the LTS and Proliferate decoders: borrowed strings out of raw
//! values, and objects read as ordered key/value lists.

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

/// An object's members in order, values left as raw JSON.
#[derive(Debug, Default)]
pub struct Members<'a>(pub Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de: 'a, 'a> Deserialize<'de> for Members<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MembersVisitor;
        impl<'de> Visitor<'de> for MembersVisitor {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(4));
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    members.push((key, map.next_value::<&'de RawValue>()?));
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(MembersVisitor)
    }
}

/// What a raw JSON value holds, as far as the decoders care.
#[derive(Debug, PartialEq, Eq)]
pub enum Scalar<'a> {
    Null,
    Str(Cow<'a, str>),
    /// Any other value, as its JSON text.
    Other(&'a str),
}

/// Reads a raw value, borrowing strings that have no escapes.
pub fn scalar(raw: &RawValue) -> Scalar<'_> {
    let text = raw.get();
    match text.as_bytes().first() {
        Some(b'"') => {
            let inner = &text[1..text.len() - 1];
            if inner.contains('\\') {
                // The raw value was validated as a JSON string, so this cannot fail.
                Scalar::Str(Cow::Owned(serde_json::from_str::<String>(text).unwrap_or_default()))
            } else {
                Scalar::Str(Cow::Borrowed(inner))
            }
        }
        Some(b'n') => Scalar::Null,
        _ => Scalar::Other(text),
    }
}

/// A string member: `Ok(None)` when absent or null, `Err` when of another type.
pub fn opt_str<'a>(raw: Option<&'a RawValue>) -> Result<Option<Cow<'a, str>>, ()> {
    match raw.map(scalar) {
        None | Some(Scalar::Null) => Ok(None),
        Some(Scalar::Str(s)) => Ok(Some(s)),
        Some(Scalar::Other(_)) => Err(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn borrows_plain_strings_and_unescapes_the_rest() {
        let members: Members<'_> =
            serde_json::from_str(r#"{"a": "plain", "b": "tab\tand \"q\"", "c": 3, "d": null}"#).unwrap();
        let values: Vec<Scalar<'_>> = members.0.iter().map(|(_, v)| scalar(v)).collect();
        assert!(matches!(&values[0], Scalar::Str(Cow::Borrowed("plain"))));
        assert_eq!(values[1], Scalar::Str(Cow::Owned("tab\tand \"q\"".into())));
        assert_eq!(values[2], Scalar::Other("3"));
        assert_eq!(values[3], Scalar::Null);
        assert_eq!(members.0[0].0, "a");
    }
}
