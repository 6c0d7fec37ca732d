//! JSON helpers shared by the LTS and Proliferate decoders: borrowed strings, raw values,
//! and objects read as ordered key/value lists, all without failing a whole batch for
//! one entry of the wrong type.

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

/// Parses a body as JSON after checking it is UTF-8 once, so that strings are not
/// checked one by one.
pub fn parse<'a, T: Deserialize<'a>>(raw: &'a [u8]) -> Result<T, String> {
    let text = std::str::from_utf8(raw).map_err(|e| format!("not valid utf-8: {e}"))?;
    serde_json::from_str(text).map_err(|e| format!("not valid json: {e}"))
}

/// A JSON string, borrowed from the input unless it has escapes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Str<'a>(pub Cow<'a, str>);

impl std::ops::Deref for Str<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StrVisitor;
        impl<'de> Visitor<'de> for StrVisitor {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(StrVisitor)
    }
}

/// An object's members in order, values left as raw JSON.
#[derive(Debug, Default)]
pub struct Members<'a>(pub Vec<(Str<'a>, &'a RawValue)>);

struct MembersVisitor;

impl<'de> Visitor<'de> for MembersVisitor {
    type Value = Members<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }
    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
        let mut members = Vec::with_capacity(map.size_hint().unwrap_or(8));
        while let Some(key) = map.next_key::<Str<'de>>()? {
            members.push((key, map.next_value::<&'de RawValue>()?));
        }
        Ok(Members(members))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Members<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(MembersVisitor)
    }
}

/// Any JSON value where an object is expected. Other values are skipped and reported as
/// [`MaybeMembers::Other`], so that one bad entry does not fail a batch.
#[derive(Debug, Default)]
pub enum MaybeMembers<'a> {
    Object(Members<'a>),
    #[default]
    Null,
    Other,
}

impl<'de: 'a, 'a> Deserialize<'de> for MaybeMembers<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct AnyVisitor;
        impl<'de> Visitor<'de> for AnyVisitor {
            type Value = MaybeMembers<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any value")
            }
            fn visit_map<M: MapAccess<'de>>(self, map: M) -> Result<Self::Value, M::Error> {
                MembersVisitor.visit_map(map).map(MaybeMembers::Object)
            }
            fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<Self::Value, S::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(MaybeMembers::Other)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(MaybeMembers::Other)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(MaybeMembers::Other)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(MaybeMembers::Other)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(MaybeMembers::Other)
            }
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(MaybeMembers::Other)
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(MaybeMembers::Null)
            }
        }
        deserializer.deserialize_any(AnyVisitor)
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
        assert_eq!(&*members.0[0].0, "a");
        let strs: Vec<Str<'_>> = serde_json::from_str(r#"["x", "y\n"]"#).unwrap();
        assert!(matches!(strs[0].0, Cow::Borrowed("x")));
        assert_eq!(&*strs[1], "y\n");
        let maybe: Vec<MaybeMembers<'_>> =
            serde_json::from_str(r#"[{"a": 1}, [1, {"b": 2}], 3, "s", null, true]"#).unwrap();
        let kinds: Vec<u8> = maybe
            .iter()
            .map(|m| match m {
                MaybeMembers::Object(_) => 0,
                MaybeMembers::Null => 1,
                MaybeMembers::Other => 2,
            })
            .collect();
        assert_eq!(kinds, [0, 2, 2, 2, 1, 2]);
    }

    #[test]
    fn refuses_invalid_utf8_once() {
        assert!(parse::<IgnoredAny>(b"[\"\xff\"]").unwrap_err().contains("utf-8"));
        assert!(parse::<IgnoredAny>(b"[1,").unwrap_err().contains("json"));
    }
}
