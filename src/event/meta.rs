//! A few numbers out of a row's `metadata` object without building it.
//!
//! [`super::Meta`] parses the whole object into a map (a `String` per key,
//! a value per value): right for a row or two, but a year's report reads
//! the stop settings of a million `added` lines. [`numbers`] walks the
//! JSON once, keeps the values of the keys asked for and skips the rest,
//! allocating nothing; its answers are [`super::Meta::f64`]'s (a test holds
//! them equal).

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// The value of each of `keys` in `metadata` as a number (ints and floats
/// alike), as [`super::Meta::f64`] gives it: none when the key is absent or
/// not a number, all none when `metadata` is null or not a JSON object, the
/// last value of a repeated key.
pub fn numbers<const N: usize>(metadata: Option<&str>, keys: [&str; N]) -> [Option<f64>; N] {
    let Some(m) = metadata else {
        return [None; N];
    };
    let mut de = serde_json::Deserializer::from_str(m);
    match Scan(&keys)
        .deserialize(&mut de)
        .and_then(|v| de.end().map(|()| v))
    {
        Ok(v) => v,
        Err(_) => [None; N],
    }
}

/// The object, keeping the values of the keys asked for.
struct Scan<'k, const N: usize>(&'k [&'k str; N]);

impl<'de, const N: usize> DeserializeSeed<'de> for Scan<'_, N> {
    type Value = [Option<f64>; N];
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, const N: usize> Visitor<'de> for Scan<'_, N> {
    type Value = [Option<f64>; N];
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = [None; N];
        while let Some(key) = map.next_key_seed(Key(self.0))? {
            match key {
                Some(i) => out[i] = map.next_value_seed(Number)?,
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(out)
    }
}

/// A key: its place among the keys asked for, if it is one.
struct Key<'k, const N: usize>(&'k [&'k str; N]);

impl<'de, const N: usize> DeserializeSeed<'de> for Key<'_, N> {
    type Value = Option<usize>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de, const N: usize> Visitor<'de> for Key<'_, N> {
    type Value = Option<usize>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(self.0.iter().position(|k| *k == v))
    }
}

/// A value as a number, or none when it is something else.
struct Number;

impl<'de> DeserializeSeed<'de> for Number {
    type Value = Option<f64>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Number {
    type Value = Option<f64>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Some(v as f64))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Some(v as f64))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Some(v))
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Meta;

    /// The same answers as parsing the whole object, on every kind of input.
    #[test]
    fn numbers_are_what_the_parsed_object_gives() {
        let inputs = [
            None,
            Some(r#"{"activation_pct":10.0,"trailing_pct":5}"#),
            Some(r#"{"trailing_pct":"5","activation_pct":null,"x":[1,{"a":2}]}"#),
            Some(r#"{"activation_pct":1e400}"#),
            Some(r#"{"activation_pct":-3,"activation_pct":7.5}"#),
            Some(r#"{"activation_pct":7.5,"activation_pct":"no"}"#),
            Some(r#"{"act\u0069vation_pct":2,"nested":{"trailing_pct":9},"trailing_pct":true}"#),
            Some(r#"{"activation_pct":18446744073709551615,"trailing_pct":-0.0}"#),
            Some(r#"[{"activation_pct":1}]"#),
            Some(r#"{"activation_pct":1} trailing"#),
            Some(r#"{"activation_pct":1,"trailing_pct":"#),
            Some("not json"),
            Some(""),
        ];
        let keys = ["activation_pct", "trailing_pct"];
        for m in inputs {
            let parsed = Meta::parse(m);
            let want = keys.map(|k| parsed.f64(k));
            let got = numbers(m, keys);
            // Bits, so -0.0 and 0.0 differ and NaN equals NaN.
            assert_eq!(
                got.map(|v| v.map(f64::to_bits)),
                want.map(|v| v.map(f64::to_bits)),
                "{m:?}"
            );
        }
        assert_eq!(numbers(inputs[1], keys), [Some(10.0), Some(5.0)]);
        assert_eq!(numbers(inputs[4], keys), [Some(7.5), None]);
        assert_eq!(numbers(inputs[6], keys), [Some(2.0), None]);
    }
}
