//! Rows → Arrow record batches, built column by column straight from the typed
//! structs (no JSON round trip). The Arrow schema comes from [`super::schema`].

use deltalake::arrow::array::{
    ArrayBuilder, ArrayRef, BooleanBuilder, Date32Builder, Float64Builder, Int32Builder,
    Int64Builder, StringArray, StringBuilder, TimestampMicrosecondBuilder,
};
use deltalake::arrow::buffer::{BooleanBuffer, Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use deltalake::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use deltalake::arrow::error::ArrowError;
use deltalake::arrow::record_batch::RecordBatch;
use std::sync::Arc;

use super::QuarantineRecord;
use super::rows::{EventRef, EventRows, Float, Text, TextColumn};
use super::schema::{ColType, ColumnDef, QUARANTINE_COLUMNS, RISK_EVENT_COLUMNS};

/// The Arrow type of a column.
pub fn arrow_type(t: ColType) -> DataType {
    match t {
        ColType::Utf8 => DataType::Utf8,
        ColType::TimestampUtc => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        ColType::Int32 => DataType::Int32,
        ColType::Int64 => DataType::Int64,
        ColType::Float64 => DataType::Float64,
        ColType::Boolean => DataType::Boolean,
        ColType::Date32 => DataType::Date32,
    }
}

/// The Arrow schema of a table.
pub fn arrow_schema(cols: &[ColumnDef]) -> SchemaRef {
    Arc::new(Schema::new(
        cols.iter()
            .map(|c| Field::new(c.name, arrow_type(c.ty), c.nullable))
            .collect::<Vec<_>>(),
    ))
}

fn days(d: chrono::NaiveDate) -> i32 {
    (d - chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch")).num_days() as i32
}

/// A text column, its buffer sized once (no regrowth while appending).
fn strings<'a>(n: usize, it: impl Iterator<Item = Option<&'a str>> + Clone) -> ArrayRef {
    let bytes = it.clone().map(|v| v.map_or(0, str::len)).sum();
    let mut b = StringBuilder::with_capacity(n, bytes);
    for v in it {
        b.append_option(v);
    }
    Arc::new(b.finish())
}

fn times(n: usize, it: impl Iterator<Item = i64>) -> ArrayRef {
    let mut b = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
    for v in it {
        b.append_value(v);
    }
    Arc::new(b.finish())
}

fn longs(n: usize, it: impl Iterator<Item = i64>) -> ArrayRef {
    let mut b = Int64Builder::with_capacity(n);
    for v in it {
        b.append_value(v);
    }
    Arc::new(b.finish())
}

fn dates(n: usize, it: impl Iterator<Item = i32>) -> ArrayRef {
    let mut b = Date32Builder::with_capacity(n);
    for v in it {
        b.append_value(v);
    }
    Arc::new(b.finish())
}

/// A batch of `risk_events` rows.
///
/// Each text column is one copy of its values, which the rows hold back to
/// back as Arrow does; the other columns are built row by row, into every
/// builder at once (each row is read once).
pub fn events_batch(rows: &EventRows) -> Result<RecordBatch, ArrowError> {
    let mut columns = EventColumns::with_capacity(rows.len());
    for e in rows.iter() {
        columns.push(e);
    }
    RecordBatch::try_new(arrow_schema(&RISK_EVENT_COLUMNS), columns.finish(rows)?)
}

/// A text column's Arrow array: its values, offsets and validity copied
/// whole.
pub(crate) fn text_array(c: &TextColumn) -> Result<ArrayRef, ArrowError> {
    if i32::try_from(c.bytes().len()).is_err() {
        return Err(ArrowError::InvalidArgumentError(format!(
            "a batch's text column of {} bytes: over the 2 GiB a string array holds",
            c.bytes().len()
        )));
    }
    let nulls = c
        .validity()
        .map(|bits| NullBuffer::new(BooleanBuffer::new(Buffer::from_slice_ref(bits), 0, c.len())));
    let values = Buffer::from_slice_ref(c.bytes().as_bytes());
    let offsets = OffsetBuffer::new(ScalarBuffer::from(c.offsets().to_vec()));
    Ok(Arc::new(StringArray::try_new(offsets, values, nulls)?))
}

/// The text columns of `rows`, as arrays.
fn text_arrays<const N: usize>(
    rows: &EventRows,
    cols: [Text; N],
) -> Result<Vec<ArrayRef>, ArrowError> {
    cols.iter()
        .map(|t| text_array(rows.text_column(*t)))
        .collect()
}

/// The column groups of a batch, in the schema's order.
const KIND: [Text; 2] = [Text::EventType, Text::Component];
const SUBJECT: [Text; 3] = [Text::ExecutionId, Text::OldState, Text::NewState];
const PREMIUMS: [Float; 4] = [
    Float::EntryPremium,
    Float::CurrentPremium,
    Float::HighestPremium,
    Float::StopPremium,
];
const ACTION: [Text; 2] = [Text::Action, Text::LimitType];
const VALUES: [Float; 2] = [Float::CurrentValue, Float::LimitValue];
const CONTEXT: [Text; 7] = [
    Text::RejectionReason,
    Text::Metadata,
    Text::Symbol,
    Text::Level,
    Text::Logger,
    Text::Source,
    Text::SourceFile,
];

/// The builders of `risk_events`' columns that are not text held by the
/// rows, in groups in the schema's order.
struct EventColumns {
    ids: StringBuilder,
    id_buf: [u8; uuid::fmt::Hyphenated::LENGTH],
    timestamp: TimestampMicrosecondBuilder,
    failure_count: Int32Builder,
    /// `entry_premium` to `stop_premium`.
    premiums: [Float64Builder; 4],
    /// `current_value`, `limit_value`.
    values: [Float64Builder; 2],
    allowed: BooleanBuilder,
    source_offset: Int64Builder,
    ingested_at: TimestampMicrosecondBuilder,
    event_date: Date32Builder,
}

fn finished<B: ArrayBuilder>(builders: &mut [B]) -> impl Iterator<Item = ArrayRef> + '_ {
    builders.iter_mut().map(ArrayBuilder::finish)
}

impl EventColumns {
    fn with_capacity(n: usize) -> EventColumns {
        let time = || TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
        let floats = || Float64Builder::with_capacity(n);
        EventColumns {
            ids: StringBuilder::with_capacity(n, n * uuid::fmt::Hyphenated::LENGTH),
            id_buf: [0; uuid::fmt::Hyphenated::LENGTH],
            timestamp: time(),
            failure_count: Int32Builder::with_capacity(n),
            premiums: std::array::from_fn(|_| floats()),
            values: std::array::from_fn(|_| floats()),
            allowed: BooleanBuilder::with_capacity(n),
            source_offset: Int64Builder::with_capacity(n),
            ingested_at: time(),
            event_date: Date32Builder::with_capacity(n),
        }
    }

    fn push(&mut self, e: EventRef<'_>) {
        let id = e.event_id().hyphenated().encode_lower(&mut self.id_buf);
        self.ids.append_value(id);
        self.timestamp
            .append_value(e.timestamp().timestamp_micros());
        self.failure_count.append_option(e.failure_count());
        for (b, f) in self.premiums.iter_mut().zip(PREMIUMS) {
            b.append_option(e.float(f));
        }
        for (b, f) in self.values.iter_mut().zip(VALUES) {
            b.append_option(e.float(f));
        }
        self.allowed.append_option(e.allowed());
        self.source_offset.append_value(e.source_offset());
        self.ingested_at
            .append_value(e.ingested_at().timestamp_micros());
        self.event_date.append_value(days(e.event_date()));
    }

    /// Every column in the schema's order, the text ones from `rows`.
    fn finish(mut self, rows: &EventRows) -> Result<Vec<ArrayRef>, ArrowError> {
        let mut columns: Vec<ArrayRef> = vec![ArrayBuilder::finish(&mut self.ids)];
        columns.extend(text_arrays(rows, KIND)?);
        columns.push(ArrayBuilder::finish(&mut self.timestamp));
        columns.extend(text_arrays(rows, SUBJECT)?);
        columns.push(ArrayBuilder::finish(&mut self.failure_count));
        columns.extend(finished(&mut self.premiums));
        columns.extend(text_arrays(rows, ACTION)?);
        columns.extend(finished(&mut self.values));
        columns.push(ArrayBuilder::finish(&mut self.allowed));
        columns.extend(text_arrays(rows, CONTEXT)?);
        columns.push(ArrayBuilder::finish(&mut self.source_offset));
        columns.extend(text_arrays(rows, [Text::RawLine])?);
        columns.push(ArrayBuilder::finish(&mut self.ingested_at));
        columns.push(ArrayBuilder::finish(&mut self.event_date));
        Ok(columns)
    }
}

/// A batch of `risk_events_quarantine` rows.
pub fn quarantine_batch(rows: &[QuarantineRecord]) -> Result<RecordBatch, ArrowError> {
    let n = rows.len();
    let s = |f: fn(&QuarantineRecord) -> Option<&str>| strings(n, rows.iter().map(f));
    let columns: Vec<ArrayRef> = vec![
        s(|q| Some(&q.source)),
        s(|q| Some(&q.source_file)),
        longs(n, rows.iter().map(|q| q.source_offset)),
        s(|q| Some(&q.raw_line)),
        s(|q| Some(q.reason.code())),
        times(n, rows.iter().map(|q| q.ingested_at.timestamp_micros())),
        s(|q| q.detail.as_deref()),
        longs(n, rows.iter().map(|q| q.line_bytes)),
        dates(n, rows.iter().map(|q| days(q.ingest_date))),
        s(|q| q.line_id.as_deref()),
    ];
    RecordBatch::try_new(arrow_schema(&QUARANTINE_COLUMNS), columns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EventFields, EventOrigin, Field, RiskEvent, Val, event_id};
    use crate::source::fingerprint::FileId;
    use chrono::{TimeZone, Utc};
    use deltalake::arrow::array::{Array, AsArray};
    use deltalake::arrow::datatypes::{Float64Type, TimestampMicrosecondType};

    /// A cell of a batch or of an event, typed, for comparing the two.
    #[derive(Debug, PartialEq)]
    enum Cell {
        T(Option<String>),
        F(Option<f64>),
        I(Option<i64>),
        B(Option<bool>),
    }

    fn cell(column: &dyn Array, row: usize) -> Cell {
        use deltalake::arrow::datatypes::{Date32Type, Int32Type, Int64Type};
        let valid = column.is_valid(row);
        match column.data_type() {
            DataType::Utf8 => Cell::T(valid.then(|| column.as_string::<i32>().value(row).into())),
            DataType::Float64 => {
                Cell::F(valid.then(|| column.as_primitive::<Float64Type>().value(row)))
            }
            DataType::Boolean => Cell::B(valid.then(|| column.as_boolean().value(row))),
            DataType::Int32 => {
                Cell::I(valid.then(|| column.as_primitive::<Int32Type>().value(row).into()))
            }
            DataType::Int64 => {
                Cell::I(valid.then(|| column.as_primitive::<Int64Type>().value(row)))
            }
            DataType::Date32 => {
                Cell::I(valid.then(|| column.as_primitive::<Date32Type>().value(row).into()))
            }
            DataType::Timestamp(..) => {
                Cell::I(valid.then(|| column.as_primitive::<TimestampMicrosecondType>().value(row)))
            }
            other => panic!("no cell for {other}"),
        }
    }

    /// What the column `name` holds for `e`, read off the event's fields.
    fn expected(e: &RiskEvent, name: &str) -> Cell {
        let t = |v: &Option<String>| Cell::T(v.clone());
        let s = |v: &str| Cell::T(Some(v.to_owned()));
        match name {
            "event_id" => s(&e.event_id.to_string()),
            "event_type" => s(&e.event_type),
            "component" => s(&e.component),
            "timestamp" => Cell::I(Some(e.timestamp.timestamp_micros())),
            "execution_id" => t(&e.execution_id),
            "old_state" => t(&e.old_state),
            "new_state" => t(&e.new_state),
            "failure_count" => Cell::I(e.failure_count.map(i64::from)),
            "entry_premium" => Cell::F(e.entry_premium),
            "current_premium" => Cell::F(e.current_premium),
            "highest_premium" => Cell::F(e.highest_premium),
            "stop_premium" => Cell::F(e.stop_premium),
            "action" => t(&e.action),
            "limit_type" => t(&e.limit_type),
            "current_value" => Cell::F(e.current_value),
            "limit_value" => Cell::F(e.limit_value),
            "allowed" => Cell::B(e.allowed),
            "rejection_reason" => t(&e.rejection_reason),
            "metadata" => t(&e.metadata),
            "symbol" => t(&e.symbol),
            "level" => t(&e.level),
            "logger" => t(&e.logger),
            "source" => s(&e.source),
            "source_file" => s(&e.source_file),
            "source_offset" => Cell::I(Some(e.source_offset)),
            "raw_line" => s(&e.raw_line),
            "ingested_at" => Cell::I(Some(e.ingested_at.timestamp_micros())),
            "event_date" => Cell::I(Some(days(e.event_date).into())),
            other => panic!("a column the test does not know: {other}"),
        }
    }

    /// Every cell of every column is its row's value, whichever fields a
    /// row has (each field's value differs from every other field's).
    #[test]
    fn every_cell_is_its_events_field() {
        let t0 = Utc.with_ymd_and_hms(2026, 3, 8, 6, 59, 59).unwrap();
        let rows: Vec<RiskEvent> = (0..9i64)
            .map(|i| {
                let has = |k: i64| (i + k) % 3 != 0;
                let text = |name: &str, k| has(k).then(|| format!("{name} {i}"));
                let float = |k: i64| has(k).then_some(k as f64 + i as f64 / 10.0);
                RiskEvent {
                    event_id: event_id(FileId::from_head(b"x\n"), i as u64),
                    event_type: format!("type {i}").into(),
                    component: format!("component {i}").into(),
                    timestamp: t0 + chrono::Duration::hours(i),
                    execution_id: text("exec", 1),
                    old_state: text("old", 2),
                    new_state: text("new", 3),
                    failure_count: has(4).then_some(i as i32 + 400),
                    entry_premium: float(5),
                    current_premium: float(6),
                    highest_premium: float(7),
                    stop_premium: float(8),
                    action: text("action", 9),
                    limit_type: text("limit", 10),
                    current_value: float(11),
                    limit_value: float(12),
                    allowed: has(13).then_some(i % 2 == 0),
                    rejection_reason: text("reason", 14),
                    metadata: text("meta", 15),
                    symbol: text("symbol", 16),
                    level: text("level", 17),
                    logger: text("logger", 18),
                    source: format!("source {i}").into(),
                    source_file: format!("file {i}"),
                    source_offset: 1000 + i,
                    raw_line: format!("line {i}"),
                    ingested_at: t0 + chrono::Duration::seconds(i),
                    event_date: (t0 + chrono::Duration::hours(i)).date_naive(),
                }
            })
            .collect();
        let held: EventRows = rows.iter().collect();
        for (i, e) in rows.iter().enumerate() {
            assert_eq!(
                held.get(i).map(|r| r.to_event()).as_ref(),
                Some(e),
                "row {i}"
            );
        }
        let b = events_batch(&held).unwrap();
        assert_eq!(b.num_columns(), RISK_EVENT_COLUMNS.len());
        for (c, def) in RISK_EVENT_COLUMNS.iter().enumerate() {
            assert_eq!(b.schema().field(c).name(), def.name);
            for (row, e) in rows.iter().enumerate() {
                let got = cell(b.column(c).as_ref(), row);
                assert_eq!(got, expected(e, def.name), "{} of row {row}", def.name);
            }
        }
    }

    #[test]
    fn event_batch_has_the_schema_and_values() {
        let t = Utc.with_ymd_and_hms(2026, 1, 28, 15, 30, 0).unwrap();
        let mut f = EventFields::default();
        f.set(Field::EntryPremium, Val::Float(2.5)).unwrap();
        let mut rows = EventRows::default();
        let origin = EventOrigin {
            event_id: event_id(FileId::from_head(b"x\n"), 7),
            event_type: &"trailing_stop_add".into(),
            component: &"trailing_stop".into(),
            timestamp: t,
            level: Some("INFO"),
            logger: None,
            source: &"engine".into(),
            source_file: "x.log",
            source_offset: 7,
            raw_line: "line",
            ingested_at: t,
        };
        rows.push_parsed(&origin, &f);
        rows.push_parsed(&origin, &f);
        let b = events_batch(&rows).unwrap();
        assert_eq!(b.num_rows(), 2);
        assert_eq!(b.num_columns(), 28);
        assert_eq!(
            b.schema().field(3).data_type(),
            &arrow_type(ColType::TimestampUtc)
        );
        let ts = b.column(3).as_primitive::<TimestampMicrosecondType>();
        assert_eq!(ts.value(0), t.timestamp_micros());
        assert_eq!(b.column(8).as_primitive::<Float64Type>().value(0), 2.5);
        assert!(b.column(9).is_null(0));
        assert_eq!(
            b.column(27)
                .as_primitive::<deltalake::arrow::datatypes::Date32Type>()
                .value(0),
            20481
        );
    }
}
