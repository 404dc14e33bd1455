//! Arrow record batches → [`RiskEvent`]s: the inverse of [`super::batch`],
//! for the readers of the table (`state`, `report`). Columns are found by the
//! names of [`super::schema`] and checked against its types, so a column is
//! named and typed in one place for writing and reading alike. A column left
//! out of a read (a projection: the audit never reads `raw_line`) decodes as
//! its empty value.

use chrono::{DateTime, Utc};
use deltalake::arrow::array::{
    Array, AsArray, BooleanArray, Date32Array, Float64Array, Int32Array, Int64Array, RecordBatch,
    StringArray, TimestampMicrosecondArray,
};
use std::sync::Arc;
use uuid::Uuid;

use super::RiskEvent;
use super::batch::arrow_type;
use super::schema::{RISK_EVENT_COLUMNS, name};

/// A batch that does not hold `risk_events` rows.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// A column has another type than the schema's.
    #[error("column {column} has type {found}, not {wanted}")]
    Type {
        /// The column.
        column: &'static str,
        /// Its Arrow type in the batch.
        found: String,
        /// The schema's.
        wanted: String,
    },
    /// A value the row cannot hold.
    #[error("column {column}: {message}")]
    Value {
        /// The column.
        column: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// One batch's columns, each typed as the schema says (absent when the read
/// left it out).
struct Columns<'a>(&'a RecordBatch);

impl<'a> Columns<'a> {
    /// The column `col`, if read, after checking its type against the schema.
    fn get(&self, col: &'static str) -> Result<Option<&'a dyn Array>, DecodeError> {
        let Some(array) = self.0.column_by_name(col) else {
            return Ok(None);
        };
        let wanted = RISK_EVENT_COLUMNS
            .iter()
            .find(|c| c.name == col)
            .map(|c| arrow_type(c.ty))
            .ok_or_else(|| DecodeError::Value {
                column: col,
                message: "not a column of risk_events".into(),
            })?;
        if array.data_type() != &wanted {
            return Err(DecodeError::Type {
                column: col,
                found: array.data_type().to_string(),
                wanted: wanted.to_string(),
            });
        }
        Ok(Some(array.as_ref()))
    }

    fn typed<T: Array + 'static>(&self, col: &'static str) -> Result<Option<&'a T>, DecodeError> {
        Ok(self.get(col)?.and_then(|a| a.as_any().downcast_ref::<T>()))
    }

    fn text(&self, col: &'static str) -> Result<Option<&'a StringArray>, DecodeError> {
        Ok(self.get(col)?.and_then(|a| a.as_string_opt::<i32>()))
    }
}

fn text(a: Option<&StringArray>, i: usize) -> Option<String> {
    a.filter(|a| !a.is_null(i)).map(|a| a.value(i).to_owned())
}

/// The value as a shared string, one allocation per distinct value: these
/// columns (event type, component, source) hold a handful of values, and a
/// year's report decodes millions of rows.
fn shared(seen: &mut Vec<Arc<str>>, a: Option<&StringArray>, i: usize) -> Arc<str> {
    let v = a.filter(|a| !a.is_null(i)).map_or("", |a| a.value(i));
    if let Some(s) = seen.iter().find(|s| &***s == v) {
        return s.clone();
    }
    let s: Arc<str> = Arc::from(v);
    if seen.len() < 64 {
        seen.push(s.clone());
    }
    s
}

/// The id at `i` (nil when absent or not a UUID).
fn uuid(a: Option<&StringArray>, i: usize) -> Uuid {
    a.filter(|a| !a.is_null(i))
        .and_then(|a| Uuid::parse_str(a.value(i)).ok())
        .unwrap_or_default()
}

fn num<T: Array + 'static>(a: Option<&T>, i: usize) -> Option<&T> {
    a.filter(|a| !a.is_null(i))
}

fn micros(
    col: &'static str,
    a: Option<&TimestampMicrosecondArray>,
    i: usize,
) -> Result<DateTime<Utc>, DecodeError> {
    let v = a.map_or(0, |a| a.value(i));
    DateTime::from_timestamp_micros(v).ok_or_else(|| DecodeError::Value {
        column: col,
        message: format!("{v} µs is out of range"),
    })
}

/// The rows of a `risk_events` batch. `event_date`, when not read (it is the
/// partition column, kept in the Delta log rather than the files), is the UTC
/// date of `timestamp`, which is how it was written.
pub fn events_from_batch(batch: &RecordBatch) -> Result<Vec<RiskEvent>, DecodeError> {
    let c = Columns(batch);
    let s = |col| c.text(col);
    let f = |col| c.typed::<Float64Array>(col);
    let (id, ty, comp, exec, old, new) = (
        s(name::EVENT_ID)?,
        s(name::EVENT_TYPE)?,
        s(name::COMPONENT)?,
        s(name::EXECUTION_ID)?,
        s(name::OLD_STATE)?,
        s(name::NEW_STATE)?,
    );
    let (entry, cur, high, stop, cv, lv) = (
        f(name::ENTRY_PREMIUM)?,
        f(name::CURRENT_PREMIUM)?,
        f(name::HIGHEST_PREMIUM)?,
        f(name::STOP_PREMIUM)?,
        f(name::CURRENT_VALUE)?,
        f(name::LIMIT_VALUE)?,
    );
    let (action, limit, reason, meta, symbol, level, logger, source, file, raw) = (
        s(name::ACTION)?,
        s(name::LIMIT_TYPE)?,
        s(name::REJECTION_REASON)?,
        s(name::METADATA)?,
        s(name::SYMBOL)?,
        s(name::LEVEL)?,
        s(name::LOGGER)?,
        s(name::SOURCE)?,
        s(name::SOURCE_FILE)?,
        s(name::RAW_LINE)?,
    );
    let ts = c.typed::<TimestampMicrosecondArray>(name::TIMESTAMP)?;
    let ingested = c.typed::<TimestampMicrosecondArray>(name::INGESTED_AT)?;
    let failures = c.typed::<Int32Array>(name::FAILURE_COUNT)?;
    let allowed = c.typed::<BooleanArray>(name::ALLOWED)?;
    let offset = c.typed::<Int64Array>(name::SOURCE_OFFSET)?;
    let date = c.typed::<Date32Array>(name::EVENT_DATE)?;
    let (mut out, mut seen) = (
        Vec::with_capacity(batch.num_rows()),
        [(); 3].map(|_| Vec::new()),
    );
    for i in 0..batch.num_rows() {
        let timestamp = micros(name::TIMESTAMP, ts, i)?;
        out.push(RiskEvent {
            event_id: uuid(id, i),
            event_type: shared(&mut seen[0], ty, i),
            component: shared(&mut seen[1], comp, i),
            timestamp,
            execution_id: text(exec, i),
            old_state: text(old, i),
            new_state: text(new, i),
            failure_count: num(failures, i).map(|a| a.value(i)),
            entry_premium: num(entry, i).map(|a| a.value(i)),
            current_premium: num(cur, i).map(|a| a.value(i)),
            highest_premium: num(high, i).map(|a| a.value(i)),
            stop_premium: num(stop, i).map(|a| a.value(i)),
            action: text(action, i),
            limit_type: text(limit, i),
            current_value: num(cv, i).map(|a| a.value(i)),
            limit_value: num(lv, i).map(|a| a.value(i)),
            allowed: num(allowed, i).map(|a| a.value(i)),
            rejection_reason: text(reason, i),
            metadata: text(meta, i),
            symbol: text(symbol, i),
            level: text(level, i),
            logger: text(logger, i),
            source: shared(&mut seen[2], source, i),
            source_file: text(file, i).unwrap_or_default(),
            source_offset: offset.map_or(0, |a| a.value(i)),
            raw_line: text(raw, i).unwrap_or_default(),
            ingested_at: ingested
                .map_or(Ok(timestamp), |_| micros(name::INGESTED_AT, ingested, i))?,
            event_date: date
                .and_then(|a| a.value_as_date(i))
                .unwrap_or_else(|| timestamp.date_naive()),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::batch::events_batch;
    use crate::event::{EventFields, EventOrigin, Field, Value, event_id};
    use crate::source::fingerprint::FileId;
    use chrono::TimeZone;

    /// Two rows with every kind of column filled, and most left null.
    fn sample_events() -> Vec<RiskEvent> {
        let t = Utc
            .with_ymd_and_hms(2026, 11, 1, 5, 30, 0)
            .single()
            .expect("time");
        let mut full = EventFields::default();
        for (f, v) in [
            (Field::ExecutionId, Value::Str("e-1".into())),
            (Field::OldState, Value::Str("CLOSED".into())),
            (Field::NewState, Value::Str("OPEN".into())),
            (Field::FailureCount, Value::Int(5)),
            (Field::EntryPremium, Value::Float(2.5)),
            (Field::Allowed, Value::Bool(false)),
            (Field::Symbol, Value::Str("SPY".into())),
        ] {
            full.set(f, v).expect("field");
        }
        full.metadata.insert("k".into(), Value::Int(1));
        [(full, 7, Some("INFO")), (EventFields::default(), 99, None)]
            .into_iter()
            .map(|(fields, offset, level)| {
                RiskEvent::build(
                    EventOrigin {
                        event_id: event_id(FileId::from_head(b"x\n"), offset),
                        event_type: &"circuit_breaker_state_change".into(),
                        component: &"circuit_breaker".into(),
                        timestamp: t + chrono::Duration::milliseconds(offset as i64),
                        level,
                        logger: None,
                        source: &"engine".into(),
                        source_file: "x.log",
                        source_offset: offset,
                        raw_line: "line",
                        ingested_at: t,
                    },
                    fields,
                )
            })
            .collect()
    }

    /// What the encoder writes, the decoder reads back, column for column.
    #[test]
    fn a_batch_decodes_to_the_rows_it_was_encoded_from() {
        let rows = sample_events();
        let batch = events_batch(&rows).expect("batch");
        assert_eq!(events_from_batch(&batch).expect("decode"), rows);
    }

    /// A projection leaves columns out; they decode as empty, the rest as written.
    #[test]
    fn a_projection_decodes_what_it_read() {
        let rows = sample_events();
        let batch = events_batch(&rows).expect("batch");
        let keep: Vec<usize> = [
            name::EVENT_TYPE,
            name::TIMESTAMP,
            name::SOURCE,
            name::SYMBOL,
        ]
        .iter()
        .map(|n| batch.schema().index_of(n).expect("column"))
        .collect();
        let got = events_from_batch(&batch.project(&keep).expect("project")).expect("decode");
        for (g, r) in got.iter().zip(&rows) {
            assert_eq!(
                (&g.event_type, g.timestamp, &g.source, &g.symbol),
                (&r.event_type, r.timestamp, &r.source, &r.symbol)
            );
            assert_eq!(
                (g.raw_line.as_str(), g.event_date),
                ("", r.timestamp.date_naive())
            );
        }
    }

    /// A column of another type is an error naming it, not a wrong value.
    #[test]
    fn a_column_of_another_type_is_named() {
        use deltalake::arrow::array::Int64Array;
        use deltalake::arrow::datatypes::{DataType, Field, Schema};
        let schema = Schema::new(vec![Field::new(name::SYMBOL, DataType::Int64, true)]);
        let batch =
            RecordBatch::try_new(Arc::new(schema), vec![Arc::new(Int64Array::from(vec![1]))])
                .expect("batch");
        let e = events_from_batch(&batch).expect_err("wrong type");
        assert!(e.to_string().contains("symbol"), "{e}");
    }
}
