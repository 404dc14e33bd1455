//! Reading the events an audit question needs, and nothing else: the current
//! snapshot's data files, pruned by the `event_date` partition before any file
//! is opened, read with the `parquet` crate deltalake already brings (no
//! DataFusion: its build cost buys nothing for a scan with a day filter), and
//! only the columns the audit uses (never `raw_line`, the widest one).

use chrono::{DateTime, NaiveDate, Utc};
use deltalake::arrow::array::{
    Array, AsArray, BooleanArray, Float64Array, Int32Array, Int64Array, RecordBatch,
    TimestampMicrosecondArray,
};
use deltalake::arrow::datatypes::TimeUnit;
use std::collections::BTreeSet;

use super::AuditError;
use crate::event::schema::{EVENT_PARTITION, name};

/// The columns the audit reads (the partition column comes from the log).
const COLUMNS: [&str; 22] = [
    name::EVENT_TYPE,
    name::COMPONENT,
    name::TIMESTAMP,
    name::EXECUTION_ID,
    name::OLD_STATE,
    name::NEW_STATE,
    name::FAILURE_COUNT,
    name::ENTRY_PREMIUM,
    name::CURRENT_PREMIUM,
    name::HIGHEST_PREMIUM,
    name::STOP_PREMIUM,
    name::ACTION,
    name::LIMIT_TYPE,
    name::CURRENT_VALUE,
    name::LIMIT_VALUE,
    name::ALLOWED,
    name::REJECTION_REASON,
    name::METADATA,
    name::SYMBOL,
    name::SOURCE,
    name::SOURCE_FILE,
    name::SOURCE_OFFSET,
];

/// One event as the audit sees it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Row {
    /// e.g. `circuit_breaker_state_change`.
    pub event_type: String,
    /// `circuit_breaker`, `trailing_stop`, `portfolio_limits`.
    pub component: String,
    /// When the engine logged it.
    pub timestamp: DateTime<Utc>,
    /// Execution.
    pub execution_id: Option<String>,
    /// Breaker state before.
    pub old_state: Option<String>,
    /// Breaker state after.
    pub new_state: Option<String>,
    /// Breaker failures.
    pub failure_count: Option<i32>,
    /// Stop: entry premium.
    pub entry_premium: Option<f64>,
    /// Stop: current premium.
    pub current_premium: Option<f64>,
    /// Stop: peak.
    pub highest_premium: Option<f64>,
    /// Stop: stop level.
    pub stop_premium: Option<f64>,
    /// Stop action.
    pub action: Option<String>,
    /// Limit type.
    pub limit_type: Option<String>,
    /// Limit: value.
    pub current_value: Option<f64>,
    /// Limit: limit.
    pub limit_value: Option<f64>,
    /// Limit: allowed.
    pub allowed: Option<bool>,
    /// Limit: why rejected.
    pub rejection_reason: Option<String>,
    /// The metadata JSON as stored; parsed only when a field is asked for
    /// (most rows' metadata is never needed).
    pub metadata: Option<String>,
    /// Instrument.
    pub symbol: Option<String>,
    /// Source name.
    pub source: String,
    /// File the line came from.
    pub source_file: String,
    /// Its offset there.
    pub source_offset: i64,
}

impl Row {
    /// The metadata object, parsed once per use (empty when null or not an
    /// object); most rows' metadata is never asked for.
    pub fn meta(&self) -> Meta {
        Meta(
            self.metadata
                .as_deref()
                .and_then(|m| serde_json::from_str(m).ok())
                .unwrap_or_default(),
        )
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

/// A row's parsed `metadata` object.
#[derive(Debug, Default)]
pub struct Meta(serde_json::Map<String, serde_json::Value>);

impl Meta {
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

/// Which days to read: `event_date` partitions, inclusive. `None` is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Days {
    /// First day.
    pub from: Option<NaiveDate>,
    /// Last day.
    pub to: Option<NaiveDate>,
}

impl Days {
    /// Just `day`.
    pub fn one(day: NaiveDate) -> Days {
        Days {
            from: Some(day),
            to: Some(day),
        }
    }

    /// Whether a partition value falls inside.
    pub fn contains(&self, d: NaiveDate) -> bool {
        self.from.is_none_or(|f| d >= f) && self.to.is_none_or(|t| d <= t)
    }
}

/// The table's files by day, listed once from the Delta log; reading a day
/// range opens only that range's files.
#[derive(Debug, Clone)]
pub struct TableFiles {
    /// The table as configured.
    pub uri: String,
    /// The version read.
    pub version: Option<u64>,
    /// (day, path relative to the table's root) of each data file, sorted.
    files: Vec<(NaiveDate, String)>,
    /// The table, whose object store serves the files (local or remote).
    table: deltalake::DeltaTable,
}

/// What a read did, for `--verbose` and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadStats {
    /// Files opened.
    pub files_read: usize,
    /// Files in the table.
    pub files_total: usize,
    /// Rows read.
    pub rows: usize,
}

impl TableFiles {
    /// Lists the data files of the table's current version with their day.
    pub async fn open(uri: &str) -> Result<TableFiles, AuditError> {
        let derr = |e: deltalake::DeltaTableError| AuditError::Table {
            table: uri.to_owned(),
            message: e.to_string(),
        };
        let table = match crate::sink::store::open(uri).await {
            Ok(t) => t,
            Err(deltalake::DeltaTableError::NotATable(_)) => {
                return Err(AuditError::NoTable(uri.to_owned()));
            }
            Err(e) => return Err(derr(e)),
        };
        let mut files = Vec::new();
        for f in table.snapshot().map_err(derr)?.log_data().iter() {
            let day = f
                .partition_values_map()
                .get(EVENT_PARTITION)
                .cloned()
                .flatten()
                .and_then(|v| NaiveDate::parse_from_str(&v, "%Y-%m-%d").ok())
                .ok_or_else(|| AuditError::Table {
                    table: uri.to_owned(),
                    message: format!("data file {} has no event_date partition value", f.path()),
                })?;
            files.push((day, f.path().to_string()));
        }
        files.sort();
        Ok(TableFiles {
            uri: uri.to_owned(),
            version: table.version(),
            files,
            table,
        })
    }

    /// The days that hold data, oldest first.
    pub fn days(&self) -> Vec<NaiveDate> {
        self.files
            .iter()
            .map(|(d, _)| *d)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    }

    /// Reads the rows of the days in `days` (optionally of one source),
    /// sorted by source, time and position in the file.
    pub async fn read(
        &self,
        days: Days,
        source: Option<&str>,
    ) -> Result<(Vec<Row>, ReadStats), AuditError> {
        let mut rows = Vec::new();
        let mut stats = ReadStats {
            files_total: self.files.len(),
            ..ReadStats::default()
        };
        for (day, path) in &self.files {
            if !days.contains(*day) {
                continue;
            }
            stats.files_read += 1;
            let bytes = crate::sink::store::read_file(&self.table, path)
                .await
                .map_err(|e| AuditError::File {
                    path: path.into(),
                    message: e.to_string(),
                })?;
            read_file(path, bytes, source, &mut rows)?;
        }
        stats.rows = rows.len();
        sort(&mut rows);
        Ok((rows, stats))
    }
}

/// The audit's order: per source, by time, then by place in the file (lines
/// logged within the same millisecond keep the order they were written in).
pub fn sort(rows: &mut [Row]) {
    rows.sort_by(|a, b| {
        (&a.source, a.timestamp, &a.source_file, a.source_offset).cmp(&(
            &b.source,
            b.timestamp,
            &b.source_file,
            b.source_offset,
        ))
    });
}

fn read_file(
    path: &str,
    bytes: bytes::Bytes,
    source: Option<&str>,
    out: &mut Vec<Row>,
) -> Result<(), AuditError> {
    let err = |m: String| AuditError::File {
        path: path.into(),
        message: m,
    };
    let batches = crate::sink::read::read_bytes_columns(path, bytes, &COLUMNS)?;
    for batch in &batches {
        rows_of(batch, source, out).map_err(err)?;
    }
    Ok(())
}

/// Typed access to one batch's columns by name.
struct Cols<'a>(&'a RecordBatch);

impl<'a> Cols<'a> {
    fn get(&self, name: &str) -> Result<&'a dyn Array, String> {
        self.0
            .column_by_name(name)
            .map(|c| c.as_ref())
            .ok_or_else(|| format!("column {name} is missing"))
    }
    fn str(&self, name: &str) -> Result<&'a deltalake::arrow::array::StringArray, String> {
        self.get(name)?
            .as_string_opt::<i32>()
            .ok_or_else(|| format!("column {name} is not a string"))
    }
    fn f64(&self, name: &str) -> Result<&'a Float64Array, String> {
        self.get(name)?
            .as_any()
            .downcast_ref()
            .ok_or_else(|| format!("column {name} is not a double"))
    }
}

fn opt_str(a: &deltalake::arrow::array::StringArray, i: usize) -> Option<String> {
    (!a.is_null(i)).then(|| a.value(i).to_owned())
}

fn opt_f64(a: &Float64Array, i: usize) -> Option<f64> {
    (!a.is_null(i)).then(|| a.value(i))
}

fn rows_of(batch: &RecordBatch, source: Option<&str>, out: &mut Vec<Row>) -> Result<(), String> {
    let c = Cols(batch);
    let src = c.str(name::SOURCE)?;
    let ts = c.get(name::TIMESTAMP)?;
    let ts: &TimestampMicrosecondArray = match ts.data_type() {
        deltalake::arrow::datatypes::DataType::Timestamp(TimeUnit::Microsecond, _) => ts
            .as_any()
            .downcast_ref()
            .ok_or("timestamp: not microseconds")?,
        other => {
            return Err(format!(
                "column timestamp has type {other}, not timestamp[us]"
            ));
        }
    };
    let fc: &Int32Array = c
        .get(name::FAILURE_COUNT)?
        .as_any()
        .downcast_ref()
        .ok_or("column failure_count is not an int")?;
    let allowed: &BooleanArray = c
        .get(name::ALLOWED)?
        .as_any()
        .downcast_ref()
        .ok_or("column allowed is not a boolean")?;
    let offset: &Int64Array = c
        .get(name::SOURCE_OFFSET)?
        .as_any()
        .downcast_ref()
        .ok_or("column source_offset is not a long")?;
    let (event_type, component, exec, old, new) = (
        c.str(name::EVENT_TYPE)?,
        c.str(name::COMPONENT)?,
        c.str(name::EXECUTION_ID)?,
        c.str(name::OLD_STATE)?,
        c.str(name::NEW_STATE)?,
    );
    let (entry, cur, high, stop) = (
        c.f64(name::ENTRY_PREMIUM)?,
        c.f64(name::CURRENT_PREMIUM)?,
        c.f64(name::HIGHEST_PREMIUM)?,
        c.f64(name::STOP_PREMIUM)?,
    );
    let (action, limit_type, cv, lv, reason, meta, symbol, file) = (
        c.str(name::ACTION)?,
        c.str(name::LIMIT_TYPE)?,
        c.f64(name::CURRENT_VALUE)?,
        c.f64(name::LIMIT_VALUE)?,
        c.str(name::REJECTION_REASON)?,
        c.str(name::METADATA)?,
        c.str(name::SYMBOL)?,
        c.str(name::SOURCE_FILE)?,
    );
    for i in 0..batch.num_rows() {
        if source.is_some_and(|s| src.value(i) != s) {
            continue;
        }
        let timestamp = DateTime::from_timestamp_micros(ts.value(i))
            .ok_or_else(|| format!("timestamp {} out of range", ts.value(i)))?;
        out.push(Row {
            event_type: event_type.value(i).to_owned(),
            component: component.value(i).to_owned(),
            timestamp,
            execution_id: opt_str(exec, i),
            old_state: opt_str(old, i),
            new_state: opt_str(new, i),
            failure_count: (!fc.is_null(i)).then(|| fc.value(i)),
            entry_premium: opt_f64(entry, i),
            current_premium: opt_f64(cur, i),
            highest_premium: opt_f64(high, i),
            stop_premium: opt_f64(stop, i),
            action: opt_str(action, i),
            limit_type: opt_str(limit_type, i),
            current_value: opt_f64(cv, i),
            limit_value: opt_f64(lv, i),
            allowed: (!allowed.is_null(i)).then(|| allowed.value(i)),
            rejection_reason: opt_str(reason, i),
            metadata: opt_str(meta, i),
            symbol: opt_str(symbol, i),
            source: src.value(i).to_owned(),
            source_file: file.value(i).to_owned(),
            source_offset: offset.value(i),
        });
    }
    Ok(())
}
