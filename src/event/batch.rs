//! Rows → Arrow record batches, built column by column straight from the typed
//! structs (no JSON round trip). The Arrow schema comes from [`super::schema`].

use deltalake::arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Float64Builder, Int32Builder, Int64Builder,
    StringBuilder, TimestampMicrosecondBuilder,
};
use deltalake::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use deltalake::arrow::error::ArrowError;
use deltalake::arrow::record_batch::RecordBatch;
use std::sync::Arc;

use super::schema::{ColType, ColumnDef, QUARANTINE_COLUMNS, RISK_EVENT_COLUMNS};
use super::{QuarantineRecord, RiskEvent};

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

fn floats(n: usize, it: impl Iterator<Item = Option<f64>>) -> ArrayRef {
    let mut b = Float64Builder::with_capacity(n);
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
pub fn events_batch(rows: &[RiskEvent]) -> Result<RecordBatch, ArrowError> {
    let n = rows.len();
    let mut ids = StringBuilder::with_capacity(n, n * uuid::fmt::Hyphenated::LENGTH);
    let mut buf = uuid::Uuid::encode_buffer();
    for e in rows {
        ids.append_value(e.event_id.hyphenated().encode_lower(&mut buf));
    }
    let s = |f: fn(&RiskEvent) -> Option<&str>| strings(n, rows.iter().map(f));
    let fl = |f: fn(&RiskEvent) -> Option<f64>| floats(n, rows.iter().map(f));
    let mut failure = Int32Builder::with_capacity(n);
    let mut allowed = BooleanBuilder::with_capacity(n);
    for e in rows {
        failure.append_option(e.failure_count);
        allowed.append_option(e.allowed);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(ids.finish()),
        s(|e| Some(&e.event_type)),
        s(|e| Some(&e.component)),
        times(n, rows.iter().map(|e| e.timestamp.timestamp_micros())),
        s(|e| e.execution_id.as_deref()),
        s(|e| e.old_state.as_deref()),
        s(|e| e.new_state.as_deref()),
        Arc::new(failure.finish()),
        fl(|e| e.entry_premium),
        fl(|e| e.current_premium),
        fl(|e| e.highest_premium),
        fl(|e| e.stop_premium),
        s(|e| e.action.as_deref()),
        s(|e| e.limit_type.as_deref()),
        fl(|e| e.current_value),
        fl(|e| e.limit_value),
        Arc::new(allowed.finish()),
        s(|e| e.rejection_reason.as_deref()),
        s(|e| e.metadata.as_deref()),
        s(|e| e.symbol.as_deref()),
        s(|e| e.level.as_deref()),
        s(|e| e.logger.as_deref()),
        s(|e| Some(&e.source)),
        s(|e| Some(&e.source_file)),
        longs(n, rows.iter().map(|e| e.source_offset)),
        s(|e| Some(&e.raw_line)),
        times(n, rows.iter().map(|e| e.ingested_at.timestamp_micros())),
        dates(n, rows.iter().map(|e| days(e.event_date))),
    ];
    RecordBatch::try_new(arrow_schema(&RISK_EVENT_COLUMNS), columns)
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
    use crate::event::{EventFields, EventOrigin, Field, Value, event_id};
    use crate::source::fingerprint::FileId;
    use chrono::{TimeZone, Utc};
    use deltalake::arrow::array::{Array, AsArray};
    use deltalake::arrow::datatypes::{Float64Type, TimestampMicrosecondType};

    #[test]
    fn event_batch_has_the_schema_and_values() {
        let t = Utc.with_ymd_and_hms(2026, 1, 28, 15, 30, 0).unwrap();
        let mut f = EventFields::default();
        f.set(Field::EntryPremium, Value::Float(2.5)).unwrap();
        let e = RiskEvent::build(
            EventOrigin {
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
            },
            f,
        );
        let b = events_batch(&[e.clone(), e]).unwrap();
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
