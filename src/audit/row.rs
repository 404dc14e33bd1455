//! The audit's row: the columns of a `risk_events` row the audit asks about,
//! decoded from batches whose text columns are dictionaries
//! ([`crate::sink::read::fetch_text_dictionaries`]).
//!
//! Why not a [`crate::event::RiskEvent`]: a year's report decodes 5 million
//! rows, and a `RiskEvent` owns a `String` per text value, so building one
//! per row (and freeing it after the day's pass) was most of the report's
//! time. Here no row owns its text. The columns that hold a handful of
//! values (types, states, actions, symbols, limits, sources, files) are
//! [`Sym`]s, interned once per process (sharing them by reference count cost
//! two atomic operations per value per row, more than the rest of a row's
//! decoding); those of many values (execution ids, metadata, rejection
//! reasons) are [`Shared`]: the batch's own dictionary and a place in it,
//! nothing copied or allocated per row.

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use deltalake::arrow::array::{
    Array, AsArray, BooleanArray, Float64Array, Int32Array, Int64Array, PrimitiveArray,
    RecordBatch, StringArray, TimestampMicrosecondArray,
};
use deltalake::arrow::datatypes::Int32Type;
use std::sync::Arc;

use super::checks::{Check, Place, What};
use crate::event::Meta;
use crate::event::decode::{DecodeError, checked_column, micros, schema_type};
use crate::event::schema::name;
use crate::sink::read::text_dictionary;

pub use super::sym::{Sym, intern, same, sym_cmp};

/// Text from a column of many distinct values: the batch's dictionary of
/// them, shared, and the place of this one. Reads as a `str`; a clone is one
/// reference count. What keeps one beyond its day (a stop's execution id)
/// makes its own copy, so a day's dictionary is not held for a year.
#[derive(Clone)]
pub struct Shared {
    values: Arc<StringArray>,
    at: usize,
}

impl std::ops::Deref for Shared {
    type Target = str;
    fn deref(&self) -> &str {
        self.values.value(self.at)
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&**self, f)
    }
}

impl PartialEq for Shared {
    fn eq(&self, other: &Shared) -> bool {
        **self == **other
    }
}

impl From<&str> for Shared {
    /// One value of its own (rows made by hand, in tests).
    fn from(s: &str) -> Shared {
        Shared {
            values: Arc::new(StringArray::from(vec![s])),
            at: 0,
        }
    }
}

/// One event as the audit sees it. Text is shared (see the module's note);
/// a column the read left out is empty.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Row {
    /// e.g. `circuit_breaker_state_change`.
    pub event_type: Sym,
    /// `circuit_breaker`, `trailing_stop`, `portfolio_limits`, or a user's.
    pub component: Sym,
    /// When the engine logged the line, UTC.
    pub timestamp: DateTime<Utc>,
    /// The execution the line is about.
    pub execution_id: Option<Shared>,
    /// The breaker's state before this change.
    pub old_state: Option<Sym>,
    /// The breaker's state after this change.
    pub new_state: Option<Sym>,
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
    pub action: Option<Sym>,
    /// Which portfolio limit.
    pub limit_type: Option<Sym>,
    /// The limit's current value.
    pub current_value: Option<f64>,
    /// The limit.
    pub limit_value: Option<f64>,
    /// Whether the entry was allowed.
    pub allowed: Option<bool>,
    /// Why an entry was rejected.
    pub rejection_reason: Option<Shared>,
    /// Sorted JSON object of the dialect's fields that have no column.
    pub metadata: Option<Shared>,
    /// The instrument.
    pub symbol: Option<Sym>,
    /// Source name from the config.
    pub source: Sym,
    /// Path the line was read from.
    pub source_file: Sym,
    /// Byte offset of the line in the file's (decompressed) content.
    pub source_offset: i64,
}

/// A trailing stop's line as the book of stops reads it: the dozen of a
/// row's fields it needs. The report's pass takes a year's 3.5 million stop
/// lines as these (184 bytes) rather than as rows (320), built, moved,
/// sorted and freed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StopLine {
    /// Source name from the config.
    pub source: Sym,
    /// When the engine logged the line, UTC.
    pub timestamp: DateTime<Utc>,
    /// Path the line was read from.
    pub source_file: Sym,
    /// Byte offset of the line in the file.
    pub source_offset: i64,
    /// `ADD`, `ACTIVATE`, `UPDATE`, `TRIGGER`.
    pub action: Option<Sym>,
    /// The execution the line is about.
    pub execution_id: Option<Shared>,
    /// The instrument.
    pub symbol: Option<Sym>,
    /// The fields the line has no column for.
    pub metadata: Option<Shared>,
    /// Premium at entry.
    pub entry_premium: Option<f64>,
    /// Premium when triggered.
    pub current_premium: Option<f64>,
    /// Peak premium.
    pub highest_premium: Option<f64>,
    /// Stop level.
    pub stop_premium: Option<f64>,
}

impl StopLine {
    /// The stop line a row is.
    pub fn of(r: &Row) -> StopLine {
        StopLine {
            source: r.source,
            timestamp: r.timestamp,
            source_file: r.source_file,
            source_offset: r.source_offset,
            action: r.action,
            execution_id: r.execution_id.clone(),
            symbol: r.symbol,
            metadata: r.metadata.clone(),
            entry_premium: r.entry_premium,
            current_premium: r.current_premium,
            highest_premium: r.highest_premium,
            stop_premium: r.stop_premium,
        }
    }

    /// Its place in the audit's order.
    pub fn place(&self) -> Place {
        (
            self.source,
            self.timestamp,
            self.source_file,
            self.source_offset,
        )
    }
}

impl Row {
    /// Its place in the audit's order.
    pub fn place(&self) -> Place {
        (
            self.source,
            self.timestamp,
            self.source_file,
            self.source_offset,
        )
    }

    /// The `metadata` object, parsed once per use (most rows' is never asked for).
    pub fn meta(&self) -> Meta {
        Meta::parse(self.metadata.as_deref())
    }

    /// One metadata value as a number.
    pub fn meta_f64(&self, key: &str) -> Option<f64> {
        self.meta().f64(key)
    }

    /// One metadata value as text.
    pub fn meta_str(&self, key: &str) -> Option<String> {
        self.meta().str(key)
    }
}

/// A text column read as a dictionary: the value of each distinct string
/// (interned, or shared) is made the first time a row asks for it.
struct Text<'a, T> {
    keys: &'a PrimitiveArray<Int32Type>,
    values: Arc<StringArray>,
    made: Vec<Option<T>>,
    make: fn(&Arc<StringArray>, usize) -> T,
}

impl<T: Clone> Text<'_, T> {
    fn at(&mut self, i: usize) -> Option<T> {
        if self.keys.is_null(i) {
            return None;
        }
        let k = usize::try_from(self.keys.value(i)).ok()?;
        if k >= self.values.len() || self.values.is_null(k) {
            return None;
        }
        let (values, make) = (&self.values, self.make);
        Some(self.made[k].get_or_insert_with(|| make(values, k)).clone())
    }
}

/// The text at `i` of a column that may not have been read.
fn text<T: Clone>(t: &mut Option<Text<'_, T>>, i: usize) -> Option<T> {
    t.as_mut().and_then(|t| t.at(i))
}

/// A batch's columns, found by name and checked against the schema (text
/// against [`text_dictionary`]).
struct Columns<'a>(&'a RecordBatch);

impl<'a> Columns<'a> {
    fn text<T>(
        &self,
        col: &'static str,
        make: fn(&Arc<StringArray>, usize) -> T,
    ) -> Result<Option<Text<'a, T>>, DecodeError> {
        let Some(a) = checked_column(self.0, col, text_dictionary())? else {
            return Ok(None);
        };
        let dict = a.as_dictionary::<Int32Type>();
        let values = dict
            .values()
            .as_string_opt::<i32>()
            .ok_or_else(|| DecodeError::Value {
                column: col,
                message: "dictionary values are not text".into(),
            })?;
        Ok(Some(Text {
            keys: dict.keys(),
            values: Arc::new(values.clone()),
            made: std::iter::repeat_with(|| None).take(values.len()).collect(),
            make,
        }))
    }

    fn typed<T: Array + 'static>(&self, col: &'static str) -> Result<Option<&'a T>, DecodeError> {
        Ok(checked_column(self.0, col, schema_type(col)?)?
            .and_then(|a| a.as_any().downcast_ref::<T>()))
    }
}

/// A number at `i` of a column that may not have been read.
fn num<T, A>(a: Option<&A>, i: usize, value: impl Fn(&A, usize) -> T) -> Option<T>
where
    A: Array,
{
    a.filter(|a| !a.is_null(i)).map(|a| value(a, i))
}

/// The text columns of a batch, in the order [`rows_from_batch`] fills them.
struct Texts<'a> {
    ty: Option<Text<'a, Sym>>,
    comp: Option<Text<'a, Sym>>,
    exec: Option<Text<'a, Shared>>,
    old: Option<Text<'a, Sym>>,
    new: Option<Text<'a, Sym>>,
    action: Option<Text<'a, Sym>>,
    limit: Option<Text<'a, Sym>>,
    reason: Option<Text<'a, Shared>>,
    meta: Option<Text<'a, Shared>>,
    symbol: Option<Text<'a, Sym>>,
    source: Option<Text<'a, Sym>>,
    file: Option<Text<'a, Sym>>,
}

impl<'a> Texts<'a> {
    fn of(c: &Columns<'a>) -> Result<Texts<'a>, DecodeError> {
        let shared: fn(&Arc<StringArray>, usize) -> Shared = |values, at| Shared {
            values: values.clone(),
            at,
        };
        let interned: fn(&Arc<StringArray>, usize) -> Sym = |values, at| intern(values.value(at));
        Ok(Texts {
            ty: c.text(name::EVENT_TYPE, interned)?,
            comp: c.text(name::COMPONENT, interned)?,
            exec: c.text(name::EXECUTION_ID, shared)?,
            old: c.text(name::OLD_STATE, interned)?,
            new: c.text(name::NEW_STATE, interned)?,
            action: c.text(name::ACTION, interned)?,
            limit: c.text(name::LIMIT_TYPE, interned)?,
            reason: c.text(name::REJECTION_REASON, shared)?,
            meta: c.text(name::METADATA, shared)?,
            symbol: c.text(name::SYMBOL, interned)?,
            source: c.text(name::SOURCE, interned)?,
            file: c.text(name::SOURCE_FILE, interned)?,
        })
    }
}

/// Where [`rows_from_batch`] puts what it decodes.
#[derive(Debug, Default)]
pub struct Decoded {
    /// The rows.
    pub rows: Vec<Row>,
    /// Limit checks and health warnings, when they are split out
    /// ([`Decoded::split`]); else they are rows like the others.
    pub checks: Vec<Check>,
    /// Trailing stops' lines, when split out with the checks.
    pub stops: Vec<StopLine>,
    /// Whether checks and stop lines are split out.
    split: bool,
    /// Whether split-out checks and stop lines are rows too (for a
    /// charted day).
    as_rows: bool,
}

impl Decoded {
    /// Every row a row.
    pub fn rows() -> Decoded {
        Decoded::default()
    }

    /// Limit checks and health warnings as [`Check`]s and trailing stops'
    /// lines as [`StopLine`]s, and also as rows when `as_rows`.
    pub fn split(as_rows: bool) -> Decoded {
        Decoded {
            split: true,
            as_rows,
            ..Decoded::default()
        }
    }

    /// Room for `n` more rows where they will go: split, most of a day is
    /// stop lines, and rows hold only the few others unless they hold all.
    pub fn reserve(&mut self, n: usize) {
        if self.split {
            self.stops.reserve(n);
        }
        if !self.split || self.as_rows {
            self.rows.reserve(n);
        }
    }
}

/// The typed columns of a batch (`None`: not read).
struct Typed<'a> {
    ts: Option<&'a TimestampMicrosecondArray>,
    failures: Option<&'a Int32Array>,
    /// `entry_premium`, `current_premium`, `highest_premium`, `stop_premium`,
    /// `current_value`, `limit_value`.
    floats: [Option<&'a Float64Array>; 6],
    allowed: Option<&'a BooleanArray>,
    offset: Option<&'a Int64Array>,
    /// The date of the last time read.
    day: Day,
}

impl<'a> Typed<'a> {
    fn of(c: &Columns<'a>) -> Result<Typed<'a>, DecodeError> {
        let f = |col| c.typed::<Float64Array>(col);
        Ok(Typed {
            ts: c.typed::<TimestampMicrosecondArray>(name::TIMESTAMP)?,
            failures: c.typed::<Int32Array>(name::FAILURE_COUNT)?,
            floats: [
                f(name::ENTRY_PREMIUM)?,
                f(name::CURRENT_PREMIUM)?,
                f(name::HIGHEST_PREMIUM)?,
                f(name::STOP_PREMIUM)?,
                f(name::CURRENT_VALUE)?,
                f(name::LIMIT_VALUE)?,
            ],
            allowed: c.typed::<BooleanArray>(name::ALLOWED)?,
            offset: c.typed::<Int64Array>(name::SOURCE_OFFSET)?,
            day: Day::default(),
        })
    }

    /// The `timestamp` at `i` (the epoch when the column was not read).
    fn time(&mut self, i: usize) -> Result<DateTime<Utc>, DecodeError> {
        let v = self.ts.map_or(0, |a| a.value(i));
        match self.day.time(v) {
            Some(t) => Ok(t),
            None => micros(name::TIMESTAMP, self.ts, i),
        }
    }

    fn float(&self, col: usize, i: usize) -> Option<f64> {
        num(self.floats[col], i, |a, i| a.value(i))
    }

    fn allowed(&self, i: usize) -> Option<bool> {
        num(self.allowed, i, |a, i| a.value(i))
    }

    fn offset(&self, i: usize) -> i64 {
        num(self.offset, i, |a, i| a.value(i)).unwrap_or(0)
    }
}

const DAY_MICROS: i64 = 86_400_000_000;

/// The stop line at `i` of a batch.
fn stop_line(
    t: &mut Texts<'_>,
    n: &mut Typed<'_>,
    i: usize,
    source: Sym,
) -> Result<StopLine, DecodeError> {
    Ok(StopLine {
        source,
        timestamp: n.time(i)?,
        source_file: text(&mut t.file, i).unwrap_or_default(),
        source_offset: n.offset(i),
        action: text(&mut t.action, i),
        execution_id: text(&mut t.exec, i),
        symbol: text(&mut t.symbol, i),
        metadata: text(&mut t.meta, i),
        entry_premium: n.float(0, i),
        current_premium: n.float(1, i),
        highest_premium: n.float(2, i),
        stop_premium: n.float(3, i),
    })
}

/// A time from microseconds since the epoch, its date worked out once per
/// day instead of for every row (the calendar's arithmetic was 2 % of a
/// year's report: a day's rows share their date).
#[derive(Debug, Default)]
struct Day {
    /// The day's number since the epoch, and its date.
    last: Option<(i64, NaiveDate)>,
}

impl Day {
    /// `micros` as a time, `None` out of range.
    fn time(&mut self, micros: i64) -> Option<DateTime<Utc>> {
        let (day, within) = (micros.div_euclid(DAY_MICROS), micros.rem_euclid(DAY_MICROS));
        let date = match self.last {
            Some((d, date)) if d == day => date,
            _ => {
                let date = DateTime::from_timestamp_micros(day.checked_mul(DAY_MICROS)?)?;
                self.last = Some((day, date.date_naive()));
                date.date_naive()
            }
        };
        let secs = u32::try_from(within / 1_000_000).ok()?;
        let nanos = u32::try_from(within % 1_000_000 * 1_000).ok()?;
        let time = NaiveTime::from_num_seconds_from_midnight_opt(secs, nanos)?;
        Some(NaiveDateTime::new(date, time).and_utc())
    }
}

/// The rows of a `risk_events` batch read with text as dictionaries whose
/// source `keep` accepts (asked once per row, before the rest of the row is
/// read), appended to `out` (built in place: a row is some 300 bytes to
/// move), limit checks and health warnings split out if `out` asks.
pub fn rows_from_batch(
    batch: &RecordBatch,
    keep: impl Fn(Sym) -> bool,
    out: &mut Decoded,
) -> Result<(), DecodeError> {
    let c = Columns(batch);
    let mut t = Texts::of(&c)?;
    let mut n = Typed::of(&c)?;
    for i in 0..batch.num_rows() {
        let source = text(&mut t.source, i).unwrap_or_default();
        if !keep(source) {
            continue;
        }
        let event_type = text(&mut t.ty, i).unwrap_or_default();
        if out.split
            && let Some(what) = What::of(
                event_type,
                text(&mut t.limit, i),
                n.allowed(i),
                n.float(4, i),
                n.float(5, i),
            )
        {
            out.checks.push(Check {
                source,
                timestamp: n.time(i)?,
                source_file: text(&mut t.file, i).unwrap_or_default(),
                source_offset: n.offset(i),
                what,
            });
            if !out.as_rows {
                continue;
            }
        }
        let component = text(&mut t.comp, i).unwrap_or_default();
        if out.split && component == "trailing_stop" {
            out.stops.push(stop_line(&mut t, &mut n, i, source)?);
            if !out.as_rows {
                continue;
            }
        }
        out.rows.push(Row {
            event_type,
            component,
            timestamp: n.time(i)?,
            execution_id: text(&mut t.exec, i),
            old_state: text(&mut t.old, i),
            new_state: text(&mut t.new, i),
            failure_count: num(n.failures, i, |a, i| a.value(i)),
            entry_premium: n.float(0, i),
            current_premium: n.float(1, i),
            highest_premium: n.float(2, i),
            stop_premium: n.float(3, i),
            action: text(&mut t.action, i),
            limit_type: text(&mut t.limit, i),
            current_value: n.float(4, i),
            limit_value: n.float(5, i),
            allowed: n.allowed(i),
            rejection_reason: text(&mut t.reason, i),
            metadata: text(&mut t.meta, i),
            symbol: text(&mut t.symbol, i),
            source,
            source_file: text(&mut t.file, i).unwrap_or_default(),
            source_offset: n.offset(i),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::RiskEvent;
    use crate::event::batch::events_batch;
    use deltalake::arrow::datatypes::{DataType, Field, Schema};
    use deltalake::parquet::arrow::ArrowWriter;

    /// Three events: two of one stop (one execution id), one limit check
    /// with most columns null.
    fn events() -> Vec<RiskEvent> {
        let t = DateTime::from_timestamp(1_769_000_000, 0).expect("time");
        let stop = |action: &str, offset: i64| RiskEvent {
            event_type: format!("trailing_stop_{}", action.to_lowercase()).into(),
            component: "trailing_stop".into(),
            timestamp: t + chrono::Duration::milliseconds(offset),
            execution_id: Some("exec-1".into()),
            action: Some(action.into()),
            entry_premium: Some(2.5),
            highest_premium: (action != "ADD").then_some(2.9),
            symbol: Some("SPY".into()),
            metadata: Some(r#"{"activation_pct":10.0}"#.into()),
            source: "engine".into(),
            source_file: "/var/log/engine.log".into(),
            source_offset: offset,
            raw_line: "not read by the audit".into(),
            ..RiskEvent::default()
        };
        let check = RiskEvent {
            event_type: "portfolio_limit_check".into(),
            component: "portfolio_limits".into(),
            timestamp: t,
            limit_type: Some("max_positions".into()),
            current_value: Some(5.0),
            limit_value: Some(4.0),
            allowed: Some(false),
            failure_count: Some(3),
            rejection_reason: Some("over".into()),
            source: "engine".into(),
            source_file: "/var/log/engine.log".into(),
            source_offset: 900,
            ..RiskEvent::default()
        };
        vec![stop("ADD", 10), stop("ACTIVATE", 200), check]
    }

    /// What the audit must see of an event.
    fn expected(e: &RiskEvent) -> Row {
        let s = |v: &Option<String>| v.as_deref().map(Shared::from);
        let i = |v: &Option<String>| v.as_deref().map(intern);
        Row {
            event_type: intern(&e.event_type),
            component: intern(&e.component),
            timestamp: e.timestamp,
            execution_id: s(&e.execution_id),
            old_state: i(&e.old_state),
            new_state: i(&e.new_state),
            failure_count: e.failure_count,
            entry_premium: e.entry_premium,
            current_premium: e.current_premium,
            highest_premium: e.highest_premium,
            stop_premium: e.stop_premium,
            action: i(&e.action),
            limit_type: i(&e.limit_type),
            current_value: e.current_value,
            limit_value: e.limit_value,
            allowed: e.allowed,
            rejection_reason: s(&e.rejection_reason),
            metadata: s(&e.metadata),
            symbol: i(&e.symbol),
            source: intern(&e.source),
            source_file: intern(&e.source_file),
            source_offset: e.source_offset,
        }
    }

    fn parquet(batch: &RecordBatch) -> bytes::Bytes {
        let mut out = Vec::new();
        let mut w = ArrowWriter::try_new(&mut out, batch.schema(), None).expect("writer");
        w.write(batch).expect("write");
        w.close().expect("close");
        out.into()
    }

    fn read(bytes: bytes::Bytes) -> Vec<Row> {
        let batches =
            crate::sink::read::columns_in_bytes("x.parquet", bytes, &super::super::load::COLUMNS)
                .and_then(crate::sink::read::FetchedColumns::decode)
                .expect("read");
        let mut out = Decoded::rows();
        for b in &batches {
            rows_from_batch(b, |_| true, &mut out).expect("decode");
        }
        out.rows
    }

    /// A file as risktail writes it reads back as the events it was written
    /// from, and rows holding one value share one string.
    #[test]
    fn a_file_reads_back_as_its_events_with_shared_text() {
        let events = events();
        let rows = read(parquet(
            &events_batch(&events.iter().collect()).expect("batch"),
        ));
        assert_eq!(rows, events.iter().map(expected).collect::<Vec<_>>());
        let (a, b) = (&rows[0], &rows[1]);
        let same = |x: &Option<Shared>, y: &Option<Shared>| match (x, y) {
            (Some(x), Some(y)) => std::ptr::eq(x.as_ptr(), y.as_ptr()),
            _ => false,
        };
        assert!(same(&a.execution_id, &b.execution_id) && same(&a.metadata, &b.metadata));
        assert!(std::ptr::eq(a.source, rows[2].source) && std::ptr::eq(a.source, intern("engine")));
    }

    /// A file another tool rewrote (`Utf8View` text, as the Python
    /// `deltalake` package writes, or `LargeUtf8`) reads back the same.
    #[test]
    fn text_in_another_type_reads_back_the_same() {
        let events = events();
        let batch = events_batch(&events.iter().collect()).expect("batch");
        let schema = batch.schema();
        for ty in [DataType::Utf8View, DataType::LargeUtf8] {
            let (fields, columns): (Vec<Field>, Vec<_>) = schema
                .fields()
                .iter()
                .zip(batch.columns())
                .map(|(f, c)| match f.data_type() {
                    DataType::Utf8 => (
                        f.as_ref().clone().with_data_type(ty.clone()),
                        deltalake::arrow::compute::cast(c, &ty).expect("cast"),
                    ),
                    _ => (f.as_ref().clone(), c.clone()),
                })
                .unzip();
            let other =
                RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).expect("batch");
            let rows = read(parquet(&other));
            assert_eq!(
                rows,
                events.iter().map(expected).collect::<Vec<_>>(),
                "{ty}"
            );
        }
    }

    /// More rows than a batch, in row groups with dictionaries of their own:
    /// every row reads back as written.
    #[test]
    fn row_groups_and_batches_of_their_own_dictionaries() {
        let one = events();
        let many: Vec<RiskEvent> = (0..70_000)
            .map(|i| {
                let mut e = one[i % one.len()].clone();
                e.execution_id = Some(format!("exec-{}", i / 3));
                e.source_offset = i as i64;
                e
            })
            .collect();
        let batch = events_batch(&many.iter().collect()).expect("batch");
        let props = deltalake::parquet::file::properties::WriterProperties::builder()
            .set_max_row_group_row_count(Some(30_000))
            .build();
        let mut out = Vec::new();
        let mut w = ArrowWriter::try_new(&mut out, batch.schema(), Some(props)).expect("writer");
        w.write(&batch).expect("write");
        w.close().expect("close");
        let bytes = bytes::Bytes::from(out);
        let meta = deltalake::parquet::arrow::arrow_reader::ArrowReaderMetadata::load(
            &bytes,
            Default::default(),
        )
        .expect("metadata");
        assert_eq!(meta.metadata().num_row_groups(), 3);
        let rows = read(bytes);
        assert_eq!(rows.len(), many.len());
        for (r, e) in rows.iter().zip(&many) {
            assert_eq!(*r, expected(e));
        }
    }

    /// A time made from its day's date is chrono's own, on both sides of
    /// the epoch, at a day's edges and at the ends of the range.
    #[test]
    fn times_by_their_day_are_chronos_own() {
        let mut day = Day::default();
        let (min, max) = (
            DateTime::<Utc>::MIN_UTC.timestamp_micros(),
            DateTime::<Utc>::MAX_UTC.timestamp_micros(),
        );
        let mut at = vec![0, -1, 1, DAY_MICROS - 1, DAY_MICROS, -DAY_MICROS, min, max];
        at.extend((0..5_000).map(|i: i64| 1_769_000_000_000_000 + i * 987_654_321));
        at.extend((0..500).map(|i: i64| -3_000_000_000_000_000 + i * 86_399_999_999));
        for v in at {
            assert_eq!(day.time(v), DateTime::from_timestamp_micros(v), "{v}");
        }
        assert_eq!(
            day.time(i64::MIN),
            DateTime::from_timestamp_micros(i64::MIN)
        );
        assert_eq!(
            day.time(i64::MAX),
            DateTime::from_timestamp_micros(i64::MAX)
        );
    }

    /// A text column that is not text is named, not read as empty.
    #[test]
    fn a_column_of_another_type_is_named() {
        let schema = Schema::new(vec![Field::new(name::SYMBOL, DataType::Int64, true)]);
        let batch =
            RecordBatch::try_new(Arc::new(schema), vec![Arc::new(Int64Array::from(vec![1]))])
                .expect("batch");
        let e = rows_from_batch(&batch, |_| true, &mut Decoded::rows()).expect_err("wrong type");
        assert!(e.to_string().contains("symbol"), "{e}");
    }
}
