//! Reading the events an audit question needs, and nothing else: the current
//! snapshot's data files, pruned by the `event_date` partition before any file
//! is opened, read with the `parquet` crate deltalake already brings (no
//! DataFusion: its build cost buys nothing for a scan with a day filter), and
//! only the columns the audit uses (never `raw_line`, the widest one).

use chrono::NaiveDate;
use std::collections::BTreeSet;

use super::AuditError;
use crate::event::decode::events_from_batch;
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

/// One event as the audit sees it: a `risk_events` row, decoded by
/// [`crate::event::decode`] from the columns in [`COLUMNS`] (the rest empty).
pub type Row = crate::event::RiskEvent;

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
    let batches = crate::sink::read::read_bytes_columns(path, bytes, &COLUMNS)?;
    for batch in &batches {
        let rows = events_from_batch(batch).map_err(|source| AuditError::Decode {
            path: path.into(),
            source,
        })?;
        out.extend(
            rows.into_iter()
                .filter(|r| source.is_none_or(|s| &*r.source == s)),
        );
    }
    Ok(())
}
