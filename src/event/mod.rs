//! What a risk line becomes: a typed [`RiskEvent`] (one row of `risk_events`)
//! or a [`QuarantineRecord`] (one row of `risk_events_quarantine`).
//!
//! Events are plain typed structs, not JSON maps, so a wrong type is caught
//! where the field is set (and quarantined with a reason) instead of when
//! Parquet is written.
//!
//! The row, its field vocabulary (`Field`, `Value`, their kinds and checks)
//! and the quarantine record are one contract, kept in one module.

pub mod batch;
pub mod decode;
pub mod fields;
pub mod meta;
pub mod rows;
pub mod schema;
pub mod state;

pub use fields::{EventFields, Val};
pub use rows::{EventRef, EventRows};
pub use state::SourceState;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use serde::ser::Serializer;
use std::fmt;
use std::sync::Arc;
use uuid::Uuid;

use crate::source::fingerprint::FileId;

/// Namespace of `event_id`s (UUID v5). Fixed forever: changing it would give
/// every historical line a new id.
const EVENT_NAMESPACE: Uuid = Uuid::from_u128(0x6b2f_1c3e_8a4d_4e51_9f07_52c1_d3a8_e6b0);

/// The deterministic id of the line at `offset` of the file `file`:
/// UUID v5 of the file identity and the big-endian byte offset. `parse`,
/// `backfill` and `run` all call this, so a line keeps its id whichever reads it.
///
/// The SHA-1 is the `sha1` crate's, not `uuid`'s own portable one: it uses
/// the processor's SHA instructions where there are any (the ids went from
/// 2.8 % of a dense backfill's time to 1.1 %); `new_v5_ids_are_uuids_own`
/// checks the two agree.
pub fn event_id(file: FileId, offset: u64) -> Uuid {
    use sha1::Digest;
    let mut name = [0u8; 24];
    name[..16].copy_from_slice(file.as_bytes());
    name[16..].copy_from_slice(&offset.to_be_bytes());
    let hash = sha1::Sha1::new()
        .chain_update(EVENT_NAMESPACE.as_bytes())
        .chain_update(name)
        .finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&hash[..16]);
    uuid::Builder::from_sha1_bytes(bytes).into_uuid()
}

/// A column of `risk_events` that a pattern (or an envelope's extra key) may fill.
/// Identity, lineage and time columns are not in this list: they come from the
/// line's position and envelope, never from its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// `execution_id`
    ExecutionId,
    /// `old_state`
    OldState,
    /// `new_state`
    NewState,
    /// `failure_count`
    FailureCount,
    /// `entry_premium`
    EntryPremium,
    /// `current_premium`
    CurrentPremium,
    /// `highest_premium`
    HighestPremium,
    /// `stop_premium`
    StopPremium,
    /// `action`
    Action,
    /// `limit_type`
    LimitType,
    /// `current_value`
    CurrentValue,
    /// `limit_value`
    LimitValue,
    /// `allowed`
    Allowed,
    /// `rejection_reason`
    RejectionReason,
    /// `symbol`
    Symbol,
}

/// The kind of value a [`Field`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    /// Text.
    Str,
    /// A 32-bit integer.
    Int,
    /// A float.
    Float,
    /// true / false.
    Bool,
}

impl Field {
    /// Every fillable field, for error messages and lookups.
    pub const ALL: [Field; 15] = [
        Field::ExecutionId,
        Field::OldState,
        Field::NewState,
        Field::FailureCount,
        Field::EntryPremium,
        Field::CurrentPremium,
        Field::HighestPremium,
        Field::StopPremium,
        Field::Action,
        Field::LimitType,
        Field::CurrentValue,
        Field::LimitValue,
        Field::Allowed,
        Field::RejectionReason,
        Field::Symbol,
    ];

    /// The column name.
    pub fn name(self) -> &'static str {
        match self {
            Field::ExecutionId => "execution_id",
            Field::OldState => "old_state",
            Field::NewState => "new_state",
            Field::FailureCount => "failure_count",
            Field::EntryPremium => "entry_premium",
            Field::CurrentPremium => "current_premium",
            Field::HighestPremium => "highest_premium",
            Field::StopPremium => "stop_premium",
            Field::Action => "action",
            Field::LimitType => "limit_type",
            Field::CurrentValue => "current_value",
            Field::LimitValue => "limit_value",
            Field::Allowed => "allowed",
            Field::RejectionReason => "rejection_reason",
            Field::Symbol => "symbol",
        }
    }

    /// Looks a column up by name.
    pub fn from_name(name: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.name() == name)
    }

    /// What the column holds.
    pub fn kind(self) -> ValueKind {
        match self {
            Field::FailureCount => ValueKind::Int,
            Field::EntryPremium
            | Field::CurrentPremium
            | Field::HighestPremium
            | Field::StopPremium
            | Field::CurrentValue
            | Field::LimitValue => ValueKind::Float,
            Field::Allowed => ValueKind::Bool,
            _ => ValueKind::Str,
        }
    }
}

/// A converted value on its way into a column or `metadata`.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Text.
    Str(String),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A boolean.
    Bool(bool),
}

fn python_float_text(f: f64) -> String {
    if f.is_nan() {
        "nan".into()
    } else if f > 0.0 {
        "inf".into()
    } else {
        "-inf".into()
    }
}

/// A value of the wrong kind for its column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeMismatch {
    /// The column.
    pub field: &'static str,
    /// What it got.
    pub got: String,
}

impl fmt::Display for TypeMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "column {} cannot hold {}", self.field, self.got)
    }
}

/// One row of `risk_events`. Field order is the column order, so the derived
/// `Serialize` prints the schema's keys in the schema's order.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct RiskEvent {
    /// UUID v5 of (file identity, line offset).
    pub event_id: Uuid,
    /// e.g. `circuit_breaker_state_change`.
    pub event_type: Arc<str>,
    /// `circuit_breaker`, `trailing_stop`, `portfolio_limits`, or a user's.
    pub component: Arc<str>,
    /// When the engine logged the line, UTC.
    #[serde(serialize_with = "ser_micros")]
    pub timestamp: DateTime<Utc>,
    /// The execution the line is about.
    pub execution_id: Option<String>,
    /// The breaker's state before this change.
    pub old_state: Option<String>,
    /// The breaker's state after this change.
    pub new_state: Option<String>,
    /// Failures counted by the breaker.
    pub failure_count: Option<i32>,
    /// Trailing stop: premium at entry.
    pub entry_premium: Option<f64>,
    /// Trailing stop: premium when triggered.
    pub current_premium: Option<f64>,
    /// Trailing stop: peak premium.
    pub highest_premium: Option<f64>,
    /// Trailing stop: stop level.
    pub stop_premium: Option<f64>,
    /// Trailing stop action.
    pub action: Option<String>,
    /// Which portfolio limit.
    pub limit_type: Option<String>,
    /// The limit's current value.
    pub current_value: Option<f64>,
    /// The limit.
    pub limit_value: Option<f64>,
    /// Whether the entry was allowed.
    pub allowed: Option<bool>,
    /// Why an entry was rejected.
    pub rejection_reason: Option<String>,
    /// Sorted JSON object of the dialect's fields that have no column; null when empty.
    pub metadata: Option<String>,
    /// The instrument.
    pub symbol: Option<String>,
    /// Log level as printed.
    pub level: Option<String>,
    /// Logger name.
    pub logger: Option<String>,
    /// Source name from the config.
    pub source: Arc<str>,
    /// Path the line was read from.
    pub source_file: String,
    /// Byte offset of the line's first byte in the file's (decompressed) content.
    pub source_offset: i64,
    /// The line as written, without its newline, invalid UTF-8 replaced.
    pub raw_line: String,
    /// When risktail read it.
    #[serde(serialize_with = "ser_micros")]
    pub ingested_at: DateTime<Utc>,
    /// UTC date of `timestamp`: the partition.
    pub event_date: NaiveDate,
}

/// A row's parsed `metadata` object.
#[derive(Debug, Default)]
pub struct Meta(serde_json::Map<String, serde_json::Value>);

impl Meta {
    /// A `metadata` value parsed (empty when null or not an object).
    pub fn parse(metadata: Option<&str>) -> Meta {
        Meta(
            metadata
                .and_then(|m| serde_json::from_str(m).ok())
                .unwrap_or_default(),
        )
    }

    /// A value as a number (ints and floats alike).
    pub fn f64(&self, key: &str) -> Option<f64> {
        self.0.get(key)?.as_f64()
    }

    /// A value as text (numbers printed).
    pub fn str(&self, key: &str) -> Option<String> {
        match self.0.get(key)? {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Null => None,
            v => Some(v.to_string()),
        }
    }
}

fn ser_micros<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
}

/// Everything about an event that does not come from patterns.
#[derive(Debug, Clone)]
pub struct EventOrigin<'a> {
    /// Its id.
    pub event_id: Uuid,
    /// The pattern's event type.
    pub event_type: &'a Arc<str>,
    /// The pattern's component.
    pub component: &'a Arc<str>,
    /// UTC time of the line.
    pub timestamp: DateTime<Utc>,
    /// Level as printed.
    pub level: Option<&'a str>,
    /// Logger name.
    pub logger: Option<&'a str>,
    /// Source name.
    pub source: &'a Arc<str>,
    /// Path of the file.
    pub source_file: &'a str,
    /// Offset of the line.
    pub source_offset: u64,
    /// The line.
    pub raw_line: &'a str,
    /// When it was read.
    pub ingested_at: DateTime<Utc>,
}

/// Why a line went to quarantine. The `reason` column holds [`Reason::code`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The message holds a risk keyword but no pattern matched it.
    UnmatchedKeyword,
    /// A pattern matched but a captured field did not convert.
    Conversion,
    /// The line is longer than `max_line_bytes`.
    LineTooLong,
    /// A risk line whose time is unparseable or does not exist locally.
    BadTimestamp,
    /// A sealed file ends in a line without its newline.
    IncompleteLine,
    /// A keyword line that is no record: not a JSON object in the JSON
    /// envelope, or the cut part of a record a crash cut short, followed on
    /// the same line by the next complete record.
    MalformedRecord,
}

impl Reason {
    /// The stable text stored in the `reason` column.
    pub fn code(self) -> &'static str {
        match self {
            Reason::UnmatchedKeyword => "unmatched_keyword",
            Reason::Conversion => "conversion",
            Reason::LineTooLong => "line_too_long",
            Reason::BadTimestamp => "bad_timestamp",
            Reason::IncompleteLine => "incomplete_line",
            Reason::MalformedRecord => "malformed_record",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// Where a line is: source, file and offset.
#[derive(Debug, Clone, Copy)]
pub struct LinePos<'a> {
    /// Source name.
    pub source: &'a str,
    /// The file's identity.
    pub file: FileId,
    /// Path of the file.
    pub source_file: &'a str,
    /// Offset of the line's first byte.
    pub offset: u64,
}

/// One row of `risk_events_quarantine`: a line that could not become a valid
/// event, kept with the reason so nothing is dropped silently.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QuarantineRecord {
    /// Source name.
    pub source: String,
    /// Path of the file.
    pub source_file: String,
    /// Offset of the line.
    pub source_offset: i64,
    /// The line, invalid UTF-8 replaced, cut to 64 KiB.
    pub raw_line: String,
    /// Why.
    pub reason: Reason,
    /// When it was read.
    #[serde(serialize_with = "ser_micros")]
    pub ingested_at: DateTime<Utc>,
    /// The explanation a person needs to fix the pattern or the input.
    pub detail: Option<String>,
    /// The line's full length in bytes (before the cut).
    pub line_bytes: i64,
    /// UTC date of `ingested_at`: the partition.
    pub ingest_date: NaiveDate,
    /// The line's identity, as [`event_id`] gives it: empty in rows an
    /// earlier release wrote (see `schema::ADDED_LATER`).
    pub line_id: Option<String>,
}

impl QuarantineRecord {
    /// Builds a record from raw bytes, cutting them to the quarantine limit on
    /// a character boundary.
    pub fn new(
        at: LinePos<'_>,
        raw: &[u8],
        line_bytes: u64,
        reason: Reason,
        detail: Option<String>,
        ingested_at: DateTime<Utc>,
    ) -> QuarantineRecord {
        let cut = &raw[..raw.len().min(schema::QUARANTINE_RAW_LINE_MAX)];
        let mut text = String::from_utf8_lossy(cut).into_owned();
        // Cutting may split a multi-byte character: the lossy decode then ends
        // in U+FFFD, which is the honest rendering of a cut character.
        if text.len() > schema::QUARANTINE_RAW_LINE_MAX {
            let mut end = schema::QUARANTINE_RAW_LINE_MAX;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
        }
        QuarantineRecord {
            source: at.source.to_owned(),
            source_file: at.source_file.to_owned(),
            source_offset: at.offset as i64,
            raw_line: text,
            reason,
            ingested_at,
            detail,
            line_bytes: line_bytes as i64,
            ingest_date: ingested_at.date_naive(),
            line_id: Some(event_id(at.file, at.offset).to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_id_is_deterministic_and_offset_sensitive() {
        let f = FileId::from_head(b"2026-01-28 10:30:00,123 - a - INFO - x\n");
        assert_eq!(event_id(f, 10), event_id(f, 10));
        assert_ne!(event_id(f, 10), event_id(f, 11));
        let g = FileId::from_head(b"2026-01-28 10:30:00,124 - a - INFO - x\n");
        assert_ne!(event_id(f, 10), event_id(g, 10));
        assert_eq!(event_id(f, 0).get_version_num(), 5);
    }

    #[test]
    fn new_v5_ids_are_uuids_own() {
        for (i, head) in [
            &b"a\n"[..],
            b"2026-01-28 10:30:00,123 - a - INFO - x\n",
            b"",
        ]
        .into_iter()
        .enumerate()
        {
            let f = FileId::from_head(head);
            for offset in [0, 1, 255, 256, 1 << 32, u64::MAX - i as u64] {
                let mut name = [0u8; 24];
                name[..16].copy_from_slice(f.as_bytes());
                name[16..].copy_from_slice(&offset.to_be_bytes());
                assert_eq!(
                    event_id(f, offset),
                    Uuid::new_v5(&EVENT_NAMESPACE, &name),
                    "{head:?} at {offset}"
                );
            }
        }
    }

    #[test]
    fn quarantine_cuts_long_lines_on_a_char_boundary() {
        let raw = "é".repeat(40_000); // 80,000 bytes
        let now = Utc::now();
        let at = LinePos {
            source: "s",
            file: FileId::from_head(b"x\n"),
            source_file: "f",
            offset: 0,
        };
        let q = QuarantineRecord::new(at, raw.as_bytes(), 80_000, Reason::LineTooLong, None, now);
        assert!(q.raw_line.len() <= schema::QUARANTINE_RAW_LINE_MAX);
        assert!(q.raw_line.chars().all(|c| c == 'é'));
        assert_eq!(q.line_bytes, 80_000);
        let id = event_id(FileId::from_head(b"x\n"), 0).to_string();
        assert_eq!(q.line_id, Some(id), "the line's identity, as an event's");
    }
}
