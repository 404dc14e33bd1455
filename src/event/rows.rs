//! Events held between the parser and the table, in columns, without an
//! owned [`RiskEvent`] per row: each row's fixed-size values in one list, and
//! each text column (type, states, symbol, metadata, path, the line itself)
//! as its values back to back. A batch of ten thousand events is then a few
//! dozen heap blocks instead of some ninety thousand: parsing a row
//! allocates nothing for it, a text column goes into its Arrow array as one
//! copy, and dropping a committed batch frees a few blocks. A dense backfill
//! spent a fifth of its time allocating, moving and freeing owned events.
//!
//! A row is read through an [`EventRef`]; [`EventRef::to_event`] gives the
//! owned [`RiskEvent`] where one is wanted (`parse`'s JSON, tests).

use chrono::{DateTime, NaiveDate, Utc};
use uuid::Uuid;

use super::fields::{FLOAT_FIELDS, TEXT_FIELDS};
use super::{EventFields, EventOrigin, Field, RiskEvent};

/// The text columns, in the schema's order; [`EventRows`] keeps one per
/// variant, indexed by it.
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

/// How many text columns there are.
pub const TEXTS: usize = 15;

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

/// The text columns a pattern fills, with their [`Field`], in the order
/// [`EventFields::text_at`] gives them.
const FIELD_TEXTS: [(Field, Text); 7] = [
    (Field::ExecutionId, Text::ExecutionId),
    (Field::OldState, Text::OldState),
    (Field::NewState, Text::NewState),
    (Field::Action, Text::Action),
    (Field::LimitType, Text::LimitType),
    (Field::RejectionReason, Text::RejectionReason),
    (Field::Symbol, Text::Symbol),
];

/// The float columns a pattern fills, with their [`Field`], in the order
/// [`EventFields::float_at`] gives them (and [`Row::floats`] holds them).
const FIELD_FLOATS: [(Field, Float); FLOATS] = [
    (Field::EntryPremium, Float::EntryPremium),
    (Field::CurrentPremium, Float::CurrentPremium),
    (Field::HighestPremium, Float::HighestPremium),
    (Field::StopPremium, Float::StopPremium),
    (Field::CurrentValue, Float::CurrentValue),
    (Field::LimitValue, Float::LimitValue),
];

// `push_parsed` reads a pattern's fields by position, so each pair above
// must name the field `event::fields` keeps at that position, and a float
// must sit at its own index: checked when this compiles.
const _: () = {
    let mut i = 0;
    while i < FIELD_TEXTS.len() {
        assert!(FIELD_TEXTS[i].0 as u8 == TEXT_FIELDS[i] as u8);
        i += 1;
    }
    let mut i = 0;
    while i < FLOATS {
        assert!(FIELD_FLOATS[i].0 as u8 == FLOAT_FIELDS[i] as u8);
        assert!(FIELD_FLOATS[i].1 as usize == i);
        i += 1;
    }
};

/// One row's values that are not text.
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
}

/// One text column as an Arrow string array is made: its values back to
/// back, the offsets where each starts and ends, and a validity bit per
/// value. A batch's column is then one copy of each (`event::batch`), not a
/// value at a time, nor a pass turning ends into offsets and flags into bits.
#[derive(Debug, Clone, PartialEq)]
pub struct TextColumn {
    /// The values, back to back.
    bytes: String,
    /// 0, then where each row's value ends in `bytes` (a null's is where the
    /// one before it ends). Held as Arrow's 32-bit offsets, saturated: a
    /// column over 2 GiB is refused when it becomes an array.
    offsets: Vec<i32>,
    /// A bit per row, least significant first: whether its value is there.
    valid: Vec<u8>,
    /// Rows without a value.
    nulls: usize,
}

impl Default for TextColumn {
    fn default() -> TextColumn {
        TextColumn::with_capacity(0, 0)
    }
}

impl TextColumn {
    fn with_capacity(rows: usize, bytes: usize) -> TextColumn {
        let mut offsets = Vec::with_capacity(rows + 1);
        offsets.push(0);
        TextColumn {
            bytes: String::with_capacity(bytes),
            offsets,
            valid: Vec::with_capacity(rows.div_ceil(8)),
            nulls: 0,
        }
    }

    /// Rows held.
    pub fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    /// Whether no rows are held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The values, back to back.
    pub fn bytes(&self) -> &str {
        &self.bytes
    }

    /// Arrow's offsets of the values (saturated at `i32::MAX`).
    pub fn offsets(&self) -> &[i32] {
        &self.offsets
    }

    /// Arrow's validity bits, when a value is missing.
    pub fn validity(&self) -> Option<&[u8]> {
        (self.nulls > 0).then_some(&self.valid)
    }

    fn push(&mut self, v: Option<&str>) {
        let i = self.len();
        if i.is_multiple_of(8) {
            self.valid.push(0);
        }
        match v {
            Some(v) => {
                self.bytes.push_str(v);
                self.valid[i / 8] |= 1 << (i % 8);
            }
            None => self.nulls += 1,
        }
        let end = i32::try_from(self.bytes.len()).unwrap_or(i32::MAX);
        self.offsets.push(end);
    }

    fn get(&self, i: usize) -> Option<&str> {
        if i >= self.len() || self.valid[i / 8] & (1 << (i % 8)) == 0 {
            return None;
        }
        let at = |j: usize| usize::try_from(self.offsets[j]).unwrap_or(0);
        self.bytes.get(at(i)..at(i + 1))
    }

    /// Adds `other`'s rows after these.
    fn extend(&mut self, other: &TextColumn) {
        self.bytes.reserve(other.bytes.len());
        for i in 0..other.len() {
            self.push(other.get(i));
        }
    }

    fn clear(&mut self) {
        self.bytes.clear();
        self.offsets.truncate(1);
        self.valid.clear();
        self.nulls = 0;
    }
}

/// Rows of `risk_events`, in the order they were added.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventRows {
    rows: Vec<Row>,
    /// Boxed: the rows are moved between threads and queues whole.
    texts: Box<[TextColumn; TEXTS]>,
}

thread_local! {
    /// Where a metadata object is written first (`serde_json` writes bytes):
    /// one buffer per thread, not one per row.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// One row of [`EventRows`].
#[derive(Debug, Clone, Copy)]
pub struct EventRef<'a> {
    rows: &'a EventRows,
    i: usize,
}

impl EventRows {
    /// No rows, with room for `rows` rows holding `text` bytes of text in
    /// each text column (by [`Text`]).
    pub fn with_capacity(rows: usize, text: &[usize; TEXTS]) -> EventRows {
        EventRows {
            rows: Vec::with_capacity(rows),
            texts: Box::new(std::array::from_fn(|t| {
                TextColumn::with_capacity(rows, text[t])
            })),
        }
    }

    /// Bytes of text held in each text column (by [`Text`]).
    pub fn text_sizes(&self) -> [usize; TEXTS] {
        std::array::from_fn(|t| self.texts[t].bytes.len())
    }

    /// A text column, for copying into an Arrow array.
    pub fn text_column(&self, t: Text) -> &TextColumn {
        &self.texts[t as usize]
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
        self.texts.iter_mut().for_each(TextColumn::clear);
    }

    /// The row at `i`.
    pub fn get(&self, i: usize) -> Option<EventRef<'_>> {
        (i < self.rows.len()).then_some(EventRef { rows: self, i })
    }

    /// The row added last.
    pub fn last(&self) -> Option<EventRef<'_>> {
        self.get(self.rows.len().checked_sub(1)?)
    }

    /// The rows, in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = EventRef<'_>> + '_ {
        (0..self.rows.len()).map(|i| EventRef { rows: self, i })
    }

    fn put(&mut self, t: Text, v: Option<&str>) {
        self.texts[t as usize].push(v);
    }

    /// Adds the row a parsed line makes: its origin and the fields its
    /// pattern set (what [`RiskEvent`]'s columns would hold, without owning
    /// them).
    pub fn push_parsed(&mut self, origin: &EventOrigin<'_>, fields: &EventFields<'_>) {
        self.put(Text::EventType, Some(origin.event_type));
        self.put(Text::Component, Some(origin.component));
        for (i, (_, t)) in FIELD_TEXTS.into_iter().enumerate() {
            self.put(t, fields.text_at(i));
        }
        self.put_metadata(fields);
        self.put(Text::Level, origin.level);
        self.put(Text::Logger, origin.logger);
        self.put(Text::Source, Some(origin.source));
        self.put(Text::SourceFile, Some(origin.source_file));
        self.put(Text::RawLine, Some(origin.raw_line));
        self.rows.push(Row {
            event_id: origin.event_id,
            timestamp: origin.timestamp,
            ingested_at: origin.ingested_at,
            event_date: origin.timestamp.date_naive(),
            source_offset: origin.source_offset as i64,
            failure_count: fields.failure_count(),
            allowed: fields.allowed(),
            floats: std::array::from_fn(|i| fields.float_at(i)),
        });
    }

    fn put_metadata(&mut self, fields: &EventFields<'_>) {
        SCRATCH.with_borrow_mut(|scratch| {
            scratch.clear();
            let json = fields
                .write_metadata_json(scratch)
                .then(|| std::str::from_utf8(scratch).ok())
                .flatten();
            self.put(Text::Metadata, json);
        })
    }

    /// Adds an owned event's row (tests build rows from events).
    #[cfg(test)]
    pub fn push(&mut self, e: &RiskEvent) {
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
        for (column, v) in self.texts.iter_mut().zip(values) {
            column.push(v);
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
        });
    }

    /// Adds `other`'s rows after these.
    pub fn extend(&mut self, other: &EventRows) {
        self.rows.extend_from_slice(&other.rows);
        for (mine, theirs) in self.texts.iter_mut().zip(other.texts.iter()) {
            mine.extend(theirs);
        }
    }

    /// Keeps the rows for which `keep` holds, in order.
    pub fn retain(&mut self, keep: impl FnMut(EventRef<'_>) -> bool) {
        let kept: Vec<bool> = self.iter().map(keep).collect();
        if kept.iter().all(|k| *k) {
            return;
        }
        let mut rows = EventRows::default();
        for e in self.iter().zip(&kept).filter_map(|(e, k)| k.then_some(e)) {
            rows.push_ref(e);
        }
        *self = rows;
    }

    /// Keeps the rows whose `keep` entry is true and gives back the others,
    /// both in order.
    pub fn split_off(&mut self, keep: &[bool]) -> EventRows {
        let mut taken = EventRows::default();
        let mut kept = EventRows::default();
        for (e, keep) in self.iter().zip(keep) {
            let into = if *keep { &mut kept } else { &mut taken };
            into.push_ref(e);
        }
        *self = kept;
        taken
    }

    fn push_ref(&mut self, e: EventRef<'_>) {
        self.rows.push(e.rows.rows[e.i]);
        for (column, from) in self.texts.iter_mut().zip(e.rows.texts.iter()) {
            column.push(from.get(e.i));
        }
    }

    /// Sets row `i`'s text column `t` (a later fact about the row: the
    /// breaker's state before a change parsed ahead of its predecessors).
    /// The column is written again: this is for one row of a batch, rarely.
    pub fn set_text(&mut self, i: usize, t: Text, v: Option<&str>) {
        let old = std::mem::take(&mut self.texts[t as usize]);
        let column = &mut self.texts[t as usize];
        for r in 0..old.len() {
            column.push(if r == i { v } else { old.get(r) });
        }
    }
}

impl<'a> EventRef<'a> {
    fn row(&self) -> &'a Row {
        &self.rows.rows[self.i]
    }

    /// A text column's value.
    pub fn text(&self, t: Text) -> Option<&'a str> {
        self.rows.texts[t as usize].get(self.i)
    }

    /// A float column's value.
    pub fn float(&self, f: Float) -> Option<f64> {
        self.row().floats[f as usize]
    }

    /// `event_id`
    pub fn event_id(&self) -> Uuid {
        self.row().event_id
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
        self.row().timestamp
    }

    /// `ingested_at`
    pub fn ingested_at(&self) -> DateTime<Utc> {
        self.row().ingested_at
    }

    /// `event_date`
    pub fn event_date(&self) -> NaiveDate {
        self.row().event_date
    }

    /// `source_offset`
    pub fn source_offset(&self) -> i64 {
        self.row().source_offset
    }

    /// `failure_count`
    pub fn failure_count(&self) -> Option<i32> {
        self.row().failure_count
    }

    /// `allowed`
    pub fn allowed(&self) -> Option<bool> {
        self.row().allowed
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

#[cfg(test)]
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
    use deltalake::arrow::array::{Array, StringArray};
    use proptest::prelude::*;

    /// Every field a pattern fills lands in the column of its name, each
    /// with its own value (the row reads the fields by position: see the
    /// check under `FIELD_FLOATS`).
    #[test]
    fn each_field_a_pattern_fills_is_its_own_columns_value() {
        use crate::event::{Val, ValueKind};
        let mut fields = EventFields::default();
        let value = |i: usize, f: Field| match f.kind() {
            ValueKind::Str => Val::Str(format!("v{i}").into()),
            ValueKind::Int => Val::Int(i as i64 + 100),
            ValueKind::Float => Val::Float(i as f64 + 0.5),
            ValueKind::Bool => Val::Bool(true),
        };
        for (i, f) in Field::ALL.into_iter().enumerate() {
            fields.set(f, value(i, f)).unwrap();
        }
        let t = chrono::Utc::now();
        let origin = EventOrigin {
            event_id: crate::event::event_id(FileId::from_head(b"x\n"), 7),
            event_type: &"e".into(),
            component: &"c".into(),
            timestamp: t,
            level: None,
            logger: None,
            source: &"s".into(),
            source_file: "x.log",
            source_offset: 7,
            raw_line: "line",
            ingested_at: t,
        };
        let mut rows = EventRows::default();
        rows.push_parsed(&origin, &fields);
        let row = serde_json::to_value(rows.get(0).unwrap().to_event()).unwrap();
        for (i, f) in Field::ALL.into_iter().enumerate() {
            let want = match value(i, f) {
                Val::Str(s) => serde_json::json!(s),
                Val::Int(n) => serde_json::json!(n),
                Val::Float(x) => serde_json::json!(x),
                Val::Bool(b) => serde_json::json!(b),
            };
            assert_eq!(row[f.name()], want, "{}", f.name());
        }
    }

    proptest! {
        /// A text column gives back each value it was given, and the Arrow
        /// array made of it is the one Arrow builds from the same values,
        /// nulls where they were, also after a second column is appended to
        /// it (its validity bits then start mid-byte).
        #[test]
        fn a_text_column_is_the_array_of_its_values(
            first in proptest::collection::vec(proptest::option::of("[a-zé]{0,5}"), 0..40),
            second in proptest::collection::vec(proptest::option::of("[a-z]{0,3}"), 0..20),
        ) {
            let column = |values: &[Option<String>]| {
                let mut c = TextColumn::with_capacity(values.len(), 0);
                values.iter().for_each(|v| c.push(v.as_deref()));
                c
            };
            let mut c = column(&first);
            c.extend(&column(&second));
            let all: Vec<Option<String>> = first.iter().chain(&second).cloned().collect();
            prop_assert_eq!(c.len(), all.len());
            for (i, v) in all.iter().enumerate() {
                prop_assert_eq!(c.get(i), v.as_deref(), "row {}", i);
            }
            let got = crate::event::batch::text_array(&c).unwrap();
            let want = StringArray::from(all.clone());
            prop_assert_eq!(got.as_any().downcast_ref::<StringArray>(), Some(&want));
            prop_assert_eq!(got.null_count(), all.iter().filter(|v| v.is_none()).count());
            c.clear();
            prop_assert!(c.is_empty());
            prop_assert_eq!(c, TextColumn::default());
        }
    }

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
        let keep: Vec<bool> = rows
            .iter()
            .enumerate()
            .map(|(i, e)| i % 4 != 1 && e.source_offset() != 300)
            .collect();
        let gone = rows.split_off(&keep);
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
