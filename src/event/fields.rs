//! What a pattern fills while a line is parsed, before it is a row: each
//! column's value in a slot of its own kind, text borrowed from the line (or
//! from the pattern's constants and metadata keys) rather than copied.
//!
//! A row is written from these straight into the columns
//! ([`super::EventRows::push_parsed`]), so a captured symbol or rejection
//! reason is copied once, into its column. Owned fields (a `String` per text
//! value, a map node per metadata key) cost a dense backfill five heap blocks
//! per event, allocated and freed on the parsing thread.

use std::borrow::Cow;

use super::{Field, TypeMismatch, Value, python_float_text};

/// A converted value on its way into a column or `metadata`, its text
/// borrowed where it can be.
#[derive(Debug, Clone, PartialEq)]
pub enum Val<'a> {
    /// Text.
    Str(Cow<'a, str>),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A boolean.
    Bool(bool),
}

impl<'a> From<&'a Value> for Val<'a> {
    /// A pattern's constant, borrowed from it.
    fn from(v: &'a Value) -> Val<'a> {
        match v {
            Value::Str(s) => Val::Str(Cow::Borrowed(s)),
            Value::Int(i) => Val::Int(*i),
            Value::Float(f) => Val::Float(*f),
            Value::Bool(b) => Val::Bool(*b),
        }
    }
}

impl From<Value> for Val<'_> {
    /// An envelope's extra value, owned.
    fn from(v: Value) -> Self {
        match v {
            Value::Str(s) => Val::Str(Cow::Owned(s)),
            Value::Int(i) => Val::Int(i),
            Value::Float(f) => Val::Float(f),
            Value::Bool(b) => Val::Bool(b),
        }
    }
}

impl Val<'_> {
    /// The owned [`Value`] (tests, and where a value outlives its line).
    pub fn to_value(&self) -> Value {
        match self {
            Val::Str(s) => Value::Str(s.as_ref().to_owned()),
            Val::Int(i) => Value::Int(*i),
            Val::Float(f) => Value::Float(*f),
            Val::Bool(b) => Value::Bool(*b),
        }
    }
}

/// Where a [`Field`]'s value is kept.
#[derive(Debug, Clone, Copy)]
enum Slot {
    Text(usize),
    Float(usize),
    FailureCount,
    Allowed,
}

/// The text fields, in the order of [`EventFields::text_at`] (the order of
/// their columns in the schema).
pub const TEXT_FIELDS: [Field; 7] = [
    Field::ExecutionId,
    Field::OldState,
    Field::NewState,
    Field::Action,
    Field::LimitType,
    Field::RejectionReason,
    Field::Symbol,
];

/// The float fields, in the order of [`EventFields::float_at`] (the
/// schema's).
pub const FLOAT_FIELDS: [Field; 6] = [
    Field::EntryPremium,
    Field::CurrentPremium,
    Field::HighestPremium,
    Field::StopPremium,
    Field::CurrentValue,
    Field::LimitValue,
];

/// Each field's slot, by its discriminant: derived from [`TEXT_FIELDS`]
/// and [`FLOAT_FIELDS`] when this compiles, so the order they state is the
/// only one (a field in neither list and not one of the two others fails
/// the build).
const SLOTS: [Slot; Field::ALL.len()] = {
    let mut slots = [None; Field::ALL.len()];
    let mut i = 0;
    while i < TEXT_FIELDS.len() {
        slots[TEXT_FIELDS[i] as usize] = Some(Slot::Text(i));
        i += 1;
    }
    let mut i = 0;
    while i < FLOAT_FIELDS.len() {
        slots[FLOAT_FIELDS[i] as usize] = Some(Slot::Float(i));
        i += 1;
    }
    slots[Field::FailureCount as usize] = Some(Slot::FailureCount);
    slots[Field::Allowed as usize] = Some(Slot::Allowed);
    let mut out = [Slot::Allowed; Field::ALL.len()];
    let mut i = 0;
    while i < out.len() {
        out[i] = slots[i].expect("every field has a slot");
        i += 1;
    }
    out
};

fn slot(field: Field) -> Slot {
    SLOTS[field as usize]
}

/// Collects an event's columns while a line is parsed;
/// [`super::EventRows::push_parsed`] adds it as a row. Nothing here is
/// allocated unless a value had to be built (a number printed as text, an
/// envelope's extra) or the event has `metadata` (one list for its keys).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventFields<'a> {
    texts: [Option<Cow<'a, str>>; TEXT_FIELDS.len()],
    floats: [Option<f64>; FLOAT_FIELDS.len()],
    failure_count: Option<i32>,
    allowed: Option<bool>,
    /// `metadata`'s keys and values, sorted by key (a key set again
    /// replaces its value).
    metadata: Vec<(Cow<'a, str>, Val<'a>)>,
}

impl<'a> EventFields<'a> {
    /// Sets a column, replacing an earlier value; checks the value's kind.
    /// An integer is accepted where a float is expected (Python prints `5` for 5.0
    /// only when the engine formats it so, but an integer is still a number).
    pub fn set(&mut self, field: Field, value: Val<'a>) -> Result<(), TypeMismatch> {
        let mismatch = |got: String| TypeMismatch {
            field: field.name(),
            got,
        };
        match (slot(field), value) {
            (Slot::Text(i), Val::Str(s)) => self.texts[i] = Some(s),
            (Slot::Float(i), Val::Float(x)) => self.floats[i] = Some(x),
            (Slot::Float(i), Val::Int(n)) => self.floats[i] = Some(n as f64),
            (Slot::FailureCount, Val::Int(n)) => {
                let n = i32::try_from(n)
                    .map_err(|_| mismatch(format!("{n} (outside 32-bit range)")))?;
                self.failure_count = Some(n);
            }
            (Slot::Allowed, Val::Bool(b)) => self.allowed = Some(b),
            (_, other) => return Err(mismatch(format!("{:?}", other.to_value()))),
        }
        Ok(())
    }

    /// Sets a column only if it has no value yet.
    pub fn set_default(&mut self, field: Field, value: Val<'a>) -> Result<(), TypeMismatch> {
        if self.get(field).is_none() {
            self.set(field, value)?;
        }
        Ok(())
    }

    /// The value of a column, if set.
    pub fn get(&self, field: Field) -> Option<Val<'_>> {
        match slot(field) {
            Slot::Text(i) => self.texts[i].as_deref().map(|s| Val::Str(Cow::Borrowed(s))),
            Slot::Float(i) => self.floats[i].map(Val::Float),
            Slot::FailureCount => self.failure_count.map(|n| Val::Int(n.into())),
            Slot::Allowed => self.allowed.map(Val::Bool),
        }
    }

    /// A text column's value as it is held (borrowed or built).
    pub fn text(&self, field: Field) -> Option<&Cow<'a, str>> {
        match slot(field) {
            Slot::Text(i) => self.texts[i].as_ref(),
            _ => None,
        }
    }

    /// The `i`th of [`TEXT_FIELDS`].
    pub fn text_at(&self, i: usize) -> Option<&str> {
        self.texts.get(i)?.as_deref()
    }

    /// The `i`th of [`FLOAT_FIELDS`].
    pub fn float_at(&self, i: usize) -> Option<f64> {
        *self.floats.get(i)?
    }

    /// `failure_count`.
    pub fn failure_count(&self) -> Option<i32> {
        self.failure_count
    }

    /// `allowed`.
    pub fn allowed(&self) -> Option<bool> {
        self.allowed
    }

    /// Sets a `metadata` key, replacing an earlier value.
    pub fn insert_metadata(&mut self, key: Cow<'a, str>, value: Val<'a>) {
        match self.metadata.binary_search_by(|(k, _)| (**k).cmp(&*key)) {
            Ok(at) => self.metadata[at].1 = value,
            Err(at) => self.metadata.insert(at, (key, value)),
        }
    }

    /// A `metadata` key's value, if set.
    pub fn metadata(&self, key: &str) -> Option<&Val<'a>> {
        let at = (self.metadata)
            .binary_search_by(|(k, _)| (**k).cmp(key))
            .ok()?;
        Some(&self.metadata[at].1)
    }

    /// The metadata object as sorted JSON text, or None when empty.
    #[cfg(test)]
    pub fn metadata_json(&self) -> Option<String> {
        let mut out = Vec::new();
        self.write_metadata_json(&mut out)
            .then(|| String::from_utf8(out).ok())
            .flatten()
    }

    /// Writes the metadata object as sorted JSON text (what
    /// `serde_json::Value::to_string` of the sorted map gives, without
    /// building the map) after `out`; false, writing nothing, when empty.
    pub fn write_metadata_json(&self, out: &mut Vec<u8>) -> bool {
        if self.metadata.is_empty() {
            return false;
        }
        out.push(b'{');
        for (i, (k, v)) in self.metadata.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            // Writing JSON into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut *out, k);
            out.push(b':');
            let _ = match v {
                Val::Str(s) => serde_json::to_writer(&mut *out, s),
                Val::Int(i) => serde_json::to_writer(&mut *out, i),
                Val::Bool(b) => serde_json::to_writer(&mut *out, b),
                Val::Float(f) if f.is_finite() => serde_json::to_writer(&mut *out, f),
                Val::Float(f) => serde_json::to_writer(&mut *out, &python_float_text(*f)),
            };
        }
        out.push(b'}');
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::ValueKind;

    #[test]
    fn set_checks_kinds_and_ranges() {
        let mut e = EventFields::default();
        assert!(e.set(Field::EntryPremium, Val::Int(2)).is_ok());
        assert_eq!(e.get(Field::EntryPremium), Some(Val::Float(2.0)));
        assert!(e.set(Field::FailureCount, Val::Int(1 << 40)).is_err());
        assert!(e.set(Field::FailureCount, Val::Int(7)).is_ok());
        assert_eq!(e.failure_count(), Some(7));
        assert!(e.set(Field::Allowed, Val::Str("yes".into())).is_err());
        assert!(e.set(Field::Symbol, Val::Float(1.0)).is_err());
        assert_eq!(e.get(Field::Symbol), None);
    }

    /// Every field goes to a slot of its own: setting each to a value of
    /// its kind and reading them all back gives each its own value.
    #[test]
    fn every_field_keeps_its_own_value() {
        let mut e = EventFields::default();
        let value = |i: usize, f: Field| match f.kind() {
            ValueKind::Str => Val::Str(Cow::Owned(format!("v{i}"))),
            ValueKind::Int => Val::Int(i as i64),
            ValueKind::Float => Val::Float(i as f64 + 0.5),
            ValueKind::Bool => Val::Bool(i.is_multiple_of(2)),
        };
        for (i, f) in Field::ALL.into_iter().enumerate() {
            e.set(f, value(i, f)).unwrap();
        }
        for (i, f) in Field::ALL.into_iter().enumerate() {
            assert_eq!(e.get(f), Some(value(i, f)), "{}", f.name());
        }
        for (i, f) in TEXT_FIELDS.into_iter().enumerate() {
            assert_eq!(
                e.text_at(i).map(str::to_owned),
                e.text(f).map(|s| s.to_string())
            );
        }
        for (i, f) in FLOAT_FIELDS.into_iter().enumerate() {
            assert_eq!(e.float_at(i).map(Val::Float), e.get(f));
        }
    }

    #[test]
    fn set_default_keeps_what_is_set() {
        let mut e = EventFields::default();
        e.set_default(Field::OldState, Val::Str("OPEN".into()))
            .unwrap();
        e.set_default(Field::OldState, Val::Str("CLOSED".into()))
            .unwrap();
        assert_eq!(e.get(Field::OldState), Some(Val::Str("OPEN".into())));
    }

    #[test]
    fn metadata_is_sorted_json_and_null_when_empty() {
        let mut e = EventFields::default();
        assert_eq!(e.metadata_json(), None);
        e.insert_metadata("z".into(), Val::Int(1));
        e.insert_metadata("a".into(), Val::Float(f64::NAN));
        e.insert_metadata("m".into(), Val::Str("x".into()));
        e.insert_metadata("m".into(), Val::Str("y \"q\"".into()));
        assert_eq!(
            e.metadata_json().as_deref(),
            Some(r#"{"a":"nan","m":"y \"q\"","z":1}"#)
        );
        assert_eq!(e.metadata("m"), Some(&Val::Str("y \"q\"".into())));
        assert_eq!(e.metadata("b"), None);
    }
}
