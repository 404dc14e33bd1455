//! Events held between the parser and the table, without an owned
//! [`RiskEvent`] per row: each row's fixed-size values in one list and every
//! text value (type, states, symbol, metadata, path, the line itself) back to
//! back in one string. A batch of ten thousand events is then two heap blocks
//! instead of some ninety thousand, so parsing a row allocates nothing for
//! it, appending it copies its text once, and dropping a committed batch
//! frees two blocks. A dense backfill spent a fifth of its time allocating,
//! moving and freeing owned events.
//!
//! A row is read through an [`EventRef`]; [`EventRef::to_event`] gives the
//! owned [`RiskEvent`] where one is wanted (`parse`'s JSON, tests).

use chrono::{DateTime, NaiveDate, Utc};
use std::ops::Range;
use uuid::Uuid;

use super::{EventFields, EventOrigin, Field, RiskEvent, Value};

/// The text columns, in the schema's order; a row's spans are indexed by them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Text {
    /// `event_type`
    EventType,
    /// `component`
    Component,
    /// `execution_id`
    ExecutionId,
    /// `old_state`
    OldState,
    /// `new_state`
    NewState,
    /// `action`
    Action,
    /// `limit_type`
    LimitType,
    /// `rejection_reason`
    RejectionReason,
    /// `metadata`
    Metadata,
    /// `symbol`
    Symbol,
    /// `level`
    Level,
    /// `logger`
    Logger,
    /// `source`
    Source,
    /// `source_file`
    SourceFile,
    /// `raw_line`
    RawLine,
}

const TEXTS: usize = 15;

/// The float columns, in the schema's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Float {
    /// `entry_premium`
    EntryPremium,
    /// `current_premium`
    CurrentPremium,
    /// `highest_premium`
    HighestPremium,
    /// `stop_premium`
    StopPremium,
    /// `current_value`
    CurrentValue,
    /// `limit_value`
    LimitValue,
}

const FLOATS: usize = 6;

/// The text columns a pattern fills, with their [`Field`].
const FIELD_TEXTS: [(Field, Text); 7] = [
    (Field::ExecutionId, Text::ExecutionId),
    (Field::OldState, Text::OldState),
    (Field::NewState, Text::NewState),
    (Field::Action, Text::Action),
    (Field::LimitType, Text::LimitType),
    (Field::RejectionReason, Text::RejectionReason),
    (Field::Symbol, Text::Symbol),
];

/// The float columns a pattern fills, with their [`Field`].
const FIELD_FLOATS: [(Field, Float); FLOATS] = [
    (Field::EntryPremium, Float::EntryPremium),
    (Field::CurrentPremium, Float::CurrentPremium),
    (Field::HighestPremium, Float::HighestPremium),
    (Field::StopPremium, Float::StopPremium),
    (Field::CurrentValue, Float::CurrentValue),
    (Field::LimitValue, Float::LimitValue),
];

/// Where a text value is in [`EventRows`]' string; `None` is a null.
type Span = Option<(usize, usize)>;

/// One row's values that are not text, and where its text is.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Row {
    event_id: Uuid,
    timestamp: DateTime<Utc>,
    ingested_at: DateTime<Utc>,
    event_date: NaiveDate,
    source_offset: i64,
    failure_count: Option<i32>,
    allowed: Option<bool>,
    floats: [Option<f64>; FLOATS],
    texts: [Span; TEXTS],
}

/// Rows of `risk_events`, in the order they were added.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventRows {
    rows: Vec<Row>,
    text: String,
}

thread_local! {
    /// Where a metadata object is written first (`serde_json` writes bytes):
    /// one buffer per thread, not one per row.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// One row of [`EventRows`].
#[derive(Debug, Clone, Copy)]
pub struct EventRef<'a> {
    row: &'a Row,
    text: &'a str,
}

impl EventRows {
    /// No rows, with room for `rows` rows holding `text` bytes of text.
    pub fn with_capacity(rows: usize, text: usize) -> EventRows {
        EventRows {
            rows: Vec::with_capacity(rows),
            text: String::with_capacity(text),
        }
    }

    /// Bytes of text held.
    pub fn text_len(&self) -> usize {
        self.text.len()
    }

    /// Rows held.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether none are held.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Forgets them, keeping the room they took.
    pub fn clear(&mut self) {
        self.rows.clear();
        self.text.clear();
    }

    /// Bytes of text held in each text column (by [`Text`]), for sizing
    /// the columns they are copied into.
    pub fn text_sizes(&self) -> [usize; TEXTS] {
        let mut sizes = [0; TEXTS];
        for row in &self.rows {
            for (size, span) in sizes.iter_mut().zip(&row.texts) {
                *size += span.map_or(0, |(a, b)| b - a);
            }
        }
        sizes
    }

    /// The row at `i`.
    pub fn get(&self, i: usize) -> Option<EventRef<'_>> {
        self.rows.get(i).map(|row| EventRef {
            row,
            text: &self.text,
        })
    }

    /// The rows, in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = EventRef<'_>> + '_ {
        self.rows.iter().map(|row| EventRef {
            row,
            text: &self.text,
        })
    }

    fn put(&mut self, v: Option<&str>) -> Span {
        let v = v?;
        let start = self.text.len();
        self.text.push_str(v);
        Some((start, self.text.len()))
    }

    /// Adds the row a parsed line makes: its origin and the fields its
    /// pattern set (what [`RiskEvent`]'s columns would hold, without owning
    /// them).
    pub fn push_parsed(&mut self, origin: &EventOrigin<'_>, fields: &EventFields) {
        let mut texts = [None; TEXTS];
        texts[Text::EventType as usize] = self.put(Some(origin.event_type));
        texts[Text::Component as usize] = self.put(Some(origin.component));
        for (field, at) in FIELD_TEXTS {
            let v = match fields.get(field) {
                Some(Value::Str(s)) => Some(s.as_str()),
                _ => None,
            };
            texts[at as usize] = self.put(v);
        }
        texts[Text::Metadata as usize] = self.put_metadata(fields);
        texts[Text::Level as usize] = self.put(origin.level);
        texts[Text::Logger as usize] = self.put(origin.logger);
        texts[Text::Source as usize] = self.put(Some(origin.source));
        texts[Text::SourceFile as usize] = self.put(Some(origin.source_file));
        texts[Text::RawLine as usize] = self.put(Some(origin.raw_line));
        let float = |f| match fields.get(f) {
            Some(Value::Float(x)) => Some(*x),
            _ => None,
        };
        self.rows.push(Row {
            event_id: origin.event_id,
            timestamp: origin.timestamp,
            ingested_at: origin.ingested_at,
            event_date: origin.timestamp.date_naive(),
            source_offset: origin.source_offset as i64,
            failure_count: match fields.get(Field::FailureCount) {
                Some(Value::Int(i)) => i32::try_from(*i).ok(),
                _ => None,
            },
            allowed: match fields.get(Field::Allowed) {
                Some(Value::Bool(b)) => Some(*b),
                _ => None,
            },
            floats: FIELD_FLOATS.map(|(f, _)| float(f)),
            texts,
        });
    }

    fn put_metadata(&mut self, fields: &EventFields) -> Span {
        SCRATCH.with_borrow_mut(|scratch| {
            scratch.clear();
            if !fields.write_metadata_json(scratch) {
                return None;
            }
            self.put(std::str::from_utf8(scratch).ok())
        })
    }

    /// Adds an owned event's row.
    pub fn push(&mut self, e: &RiskEvent) {
        let mut texts = [None; TEXTS];
        let values = [
            Some(&*e.event_type),
            Some(&*e.component),
            e.execution_id.as_deref(),
            e.old_state.as_deref(),
            e.new_state.as_deref(),
            e.action.as_deref(),
            e.limit_type.as_deref(),
            e.rejection_reason.as_deref(),
            e.metadata.as_deref(),
            e.symbol.as_deref(),
            e.level.as_deref(),
            e.logger.as_deref(),
            Some(&*e.source),
            Some(e.source_file.as_str()),
            Some(e.raw_line.as_str()),
        ];
        for (t, v) in texts.iter_mut().zip(values) {
            *t = self.put(v);
        }
        self.rows.push(Row {
            event_id: e.event_id,
            timestamp: e.timestamp,
            ingested_at: e.ingested_at,
            event_date: e.event_date,
            source_offset: e.source_offset,
            failure_count: e.failure_count,
            allowed: e.allowed,
            floats: [
                e.entry_premium,
                e.current_premium,
                e.highest_premium,
                e.stop_premium,
                e.current_value,
                e.limit_value,
            ],
            texts,
        });
    }

    /// Adds `other`'s rows after these.
    pub fn extend(&mut self, other: &EventRows) {
        let shift = self.text.len();
        self.text.push_str(&other.text);
        self.rows.extend(other.rows.iter().map(|r| Row {
            texts: r.texts.map(|s| s.map(|(a, b)| (a + shift, b + shift))),
            ..*r
        }));
    }

    /// Keeps the rows for which `keep` holds, in order (the text of the
    /// others stays until the rows are cleared).
    pub fn retain(&mut self, mut keep: impl FnMut(EventRef<'_>) -> bool) {
        let text = &self.text;
        self.rows.retain(|row| keep(EventRef { row, text }));
    }

    /// Keeps the rows for which `keep` holds (given each row's index) and
    /// gives back the others, both in order.
    pub fn split_off(&mut self, mut keep: impl FnMut(usize, EventRef<'_>) -> bool) -> EventRows {
        let mut taken = EventRows::default();
        let mut kept = EventRows::default();
        for (i, e) in self.iter().enumerate() {
            let into = if keep(i, e) { &mut kept } else { &mut taken };
            into.push_ref(e);
        }
        *self = kept;
        taken
    }

    fn push_ref(&mut self, e: EventRef<'_>) {
        let mut row = *e.row;
        for span in &mut row.texts {
            *span = span.and_then(|(a, b)| self.put(e.text.get(a..b)));
        }
        self.rows.push(row);
    }

    /// Sets row `i`'s text column `t` (a later fact about the row: the
    /// breaker's state before a change parsed ahead of its predecessors).
    pub fn set_text(&mut self, i: usize, t: Text, v: Option<&str>) {
        let span = self.put(v);
        if let Some(row) = self.rows.get_mut(i) {
            row.texts[t as usize] = span;
        }
    }
}

impl<'a> EventRef<'a> {
    /// A text column's value.
    pub fn text(&self, t: Text) -> Option<&'a str> {
        let (a, b) = self.row.texts[t as usize]?;
        self.text.get(Range { start: a, end: b })
    }

    /// A float column's value.
    pub fn float(&self, f: Float) -> Option<f64> {
        self.row.floats[f as usize]
    }

    /// `event_id`
    pub fn event_id(&self) -> Uuid {
        self.row.event_id
    }

    /// `event_type`
    pub fn event_type(&self) -> &'a str {
        self.text(Text::EventType).unwrap_or_default()
    }

    /// `component`
    pub fn component(&self) -> &'a str {
        self.text(Text::Component).unwrap_or_default()
    }

    /// `timestamp`
    pub fn timestamp(&self) -> DateTime<Utc> {
        self.row.timestamp
    }

    /// `ingested_at`
    pub fn ingested_at(&self) -> DateTime<Utc> {
        self.row.ingested_at
    }

    /// `event_date`
    pub fn event_date(&self) -> NaiveDate {
        self.row.event_date
    }

    /// `source_offset`
    pub fn source_offset(&self) -> i64 {
        self.row.source_offset
    }

    /// `failure_count`
    pub fn failure_count(&self) -> Option<i32> {
        self.row.failure_count
    }

    /// `allowed`
    pub fn allowed(&self) -> Option<bool> {
        self.row.allowed
    }

    /// The row as an owned event.
    pub fn to_event(&self) -> RiskEvent {
        let s = |t| self.text(t).map(str::to_owned);
        let f = |x| self.float(x);
        RiskEvent {
            event_id: self.event_id(),
            event_type: self.event_type().into(),
            component: self.component().into(),
            timestamp: self.timestamp(),
            execution_id: s(Text::ExecutionId),
            old_state: s(Text::OldState),
            new_state: s(Text::NewState),
            failure_count: self.failure_count(),
            entry_premium: f(Float::EntryPremium),
            current_premium: f(Float::CurrentPremium),
            highest_premium: f(Float::HighestPremium),
            stop_premium: f(Float::StopPremium),
            action: s(Text::Action),
            limit_type: s(Text::LimitType),
            current_value: f(Float::CurrentValue),
            limit_value: f(Float::LimitValue),
            allowed: self.allowed(),
            rejection_reason: s(Text::RejectionReason),
            metadata: s(Text::Metadata),
            symbol: s(Text::Symbol),
            level: s(Text::Level),
            logger: s(Text::Logger),
            source: self.text(Text::Source).unwrap_or_default().into(),
            source_file: s(Text::SourceFile).unwrap_or_default(),
            source_offset: self.source_offset(),
            raw_line: s(Text::RawLine).unwrap_or_default(),
            ingested_at: self.ingested_at(),
            event_date: self.event_date(),
        }
    }
}

impl<'a> FromIterator<&'a RiskEvent> for EventRows {
    fn from_iter<I: IntoIterator<Item = &'a RiskEvent>>(it: I) -> EventRows {
        let mut rows = EventRows::default();
        for e in it {
            rows.push(e);
        }
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::fingerprint::FileId;

    /// Events whose every text differs (and some are null), by number.
    fn event(i: i64) -> RiskEvent {
        let text = |name: &str| (i % 3 != 0).then(|| format!("{name} {i}"));
        RiskEvent {
            event_id: crate::event::event_id(FileId::from_head(b"x\n"), i as u64),
            event_type: format!("type {i}").into(),
            component: "circuit_breaker".into(),
            execution_id: text("exec"),
            old_state: text("old"),
            new_state: Some(format!("new {i}")),
            metadata: text("{}"),
            stop_premium: (i % 2 == 0).then_some(i as f64),
            source: "engine".into(),
            source_file: format!("file {i}"),
            source_offset: 100 * i,
            raw_line: format!("line {i} é"),
            ..RiskEvent::default()
        }
    }

    fn events(rows: &EventRows) -> Vec<RiskEvent> {
        rows.iter().map(|e| e.to_event()).collect()
    }

    #[test]
    fn extend_and_split_off_keep_every_rows_values_in_order() {
        let first: Vec<RiskEvent> = (0..7).map(event).collect();
        let second: Vec<RiskEvent> = (7..12).map(event).collect();
        let mut rows: EventRows = first.iter().collect();
        rows.extend(&second.iter().collect());
        let all: Vec<RiskEvent> = first.iter().chain(&second).cloned().collect();
        assert_eq!(events(&rows), all);
        let gone = rows.split_off(|i, e| i % 4 != 1 && e.source_offset() != 300);
        let (kept, taken): (Vec<_>, Vec<_>) = all
            .into_iter()
            .enumerate()
            .partition(|(i, e)| i % 4 != 1 && e.source_offset != 300);
        let strip = |v: Vec<(usize, RiskEvent)>| v.into_iter().map(|(_, e)| e).collect::<Vec<_>>();
        assert_eq!(events(&rows), strip(kept));
        assert_eq!(events(&gone), strip(taken));
        assert_eq!(gone.len(), 4, "rows 1, 3, 5 and 9");
    }

    #[test]
    fn set_text_and_retain_change_only_what_they_name() {
        let all: Vec<RiskEvent> = (0..6).map(event).collect();
        let mut rows: EventRows = all.iter().collect();
        rows.set_text(3, Text::OldState, Some("OPEN"));
        rows.set_text(4, Text::OldState, None);
        let mut want = all.clone();
        want[3].old_state = Some("OPEN".into());
        want[4].old_state = None;
        assert_eq!(events(&rows), want);
        rows.retain(|e| e.source_offset() % 200 == 0);
        want.retain(|e| e.source_offset % 200 == 0);
        assert_eq!(events(&rows), want);
        let sizes = rows.text_sizes();
        let raw: usize = want.iter().map(|e| e.raw_line.len()).sum();
        assert_eq!(sizes[Text::RawLine as usize], raw);
        let old: usize = want
            .iter()
            .filter_map(|e| e.old_state.as_ref())
            .map(String::len)
            .sum();
        assert_eq!(sizes[Text::OldState as usize], old);
    }
}
