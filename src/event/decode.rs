//! Reading `risk_events` columns back from Arrow: each column found by the
//! name [`super::schema`] gives it and checked against the type
//! [`super::batch`] writes, so a column is named and typed in one place for
//! writing and reading alike, and a file whose column has another type is an
//! error naming the column, not a row of empty values. The audit's rows
//! (`audit::row`) are decoded through it.

use chrono::{DateTime, Utc};
use deltalake::arrow::array::{Array, RecordBatch, TimestampMicrosecondArray};
use deltalake::arrow::datatypes::DataType;

use super::batch::arrow_type;
use super::schema::RISK_EVENT_COLUMNS;

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

/// The Arrow type `risk_events` gives column `col`.
pub fn schema_type(col: &'static str) -> Result<DataType, DecodeError> {
    RISK_EVENT_COLUMNS
        .iter()
        .find(|c| c.name == col)
        .map(|c| arrow_type(c.ty))
        .ok_or_else(|| DecodeError::Value {
            column: col,
            message: "not a column of risk_events".into(),
        })
}

/// The column `col` of `batch`, if read, after checking it has type `wanted`.
pub fn checked_column<'a>(
    batch: &'a RecordBatch,
    col: &'static str,
    wanted: DataType,
) -> Result<Option<&'a dyn Array>, DecodeError> {
    let Some(array) = batch.column_by_name(col) else {
        return Ok(None);
    };
    if array.data_type() != &wanted {
        return Err(DecodeError::Type {
            column: col,
            found: array.data_type().to_string(),
            wanted: wanted.to_string(),
        });
    }
    Ok(Some(array.as_ref()))
}

/// The time at `i` of a timestamp column (the epoch when the column was not read).
pub fn micros(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::schema::name;
    use deltalake::arrow::array::Int64Array;
    use deltalake::arrow::datatypes::{Field, Schema};
    use std::sync::Arc;

    /// A column of another type is an error naming it; one not read is none.
    #[test]
    fn a_column_is_checked_against_the_schema() {
        let schema = Schema::new(vec![Field::new(name::SOURCE_OFFSET, DataType::Int64, true)]);
        let batch =
            RecordBatch::try_new(Arc::new(schema), vec![Arc::new(Int64Array::from(vec![1]))])
                .expect("batch");
        let offset = schema_type(name::SOURCE_OFFSET).expect("a column");
        assert!(checked_column(&batch, name::SOURCE_OFFSET, offset).is_ok_and(|c| c.is_some()));
        let e = checked_column(&batch, name::SOURCE_OFFSET, DataType::Utf8).expect_err("type");
        assert!(e.to_string().contains("source_offset"), "{e}");
        let ts = schema_type(name::TIMESTAMP).expect("a column");
        assert!(checked_column(&batch, name::TIMESTAMP, ts).is_ok_and(|c| c.is_none()));
        assert!(schema_type("no_such_column").is_err());
    }
}
