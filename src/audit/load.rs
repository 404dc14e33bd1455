//! Reading the events an audit question needs, and nothing else: the current
//! snapshot's data files, pruned by the `event_date` partition before any file
//! is opened, read with the `parquet` crate deltalake already brings (no
//! DataFusion: its build cost buys nothing for a scan with a day filter), and
//! only the columns the audit uses (never `raw_line`, the widest one).

use chrono::NaiveDate;
use std::collections::BTreeSet;
use std::sync::Arc;

use super::AuditError;
use super::row::rows_from_batch;
use crate::event::schema::{EVENT_PARTITION, name};

/// The columns the audit reads (the partition column comes from the log).
pub(crate) const COLUMNS: [&str; 22] = [
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

pub use super::row::Row;

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
        let one = source.map(|s| [s.to_owned()]);
        for (day, path) in &self.files {
            if !days.contains(*day) {
                continue;
            }
            stats.files_read += 1;
            let bytes = self.bytes_of(path).await?;
            read_file(path, bytes, one.as_ref().map(|s| &s[..]), &mut rows)?;
        }
        stats.rows = rows.len();
        sort(&mut rows);
        Ok((rows, stats))
    }

    /// The bytes of the data file at `path`, through the table's store.
    async fn bytes_of(&self, path: &str) -> Result<bytes::Bytes, AuditError> {
        crate::sink::store::read_file(&self.table, path)
            .await
            .map_err(|e| AuditError::File {
                path: path.into(),
                message: e.to_string(),
            })
    }

    /// Reads each of `days` as [`TableFiles::read`] does, keeping the rows
    /// of `sources`, and hands its rows to `each`, in the order given: a day's files are decoded and sorted
    /// on one of every core, a few days ahead of `each` (a year's report
    /// decodes 5 million rows; memory holds a window of days, not the year).
    /// The next window decodes while `each` takes the current one, so the
    /// pass over a day's rows and the decoding of the next days overlap.
    pub async fn for_each_day(
        &self,
        days: &[NaiveDate],
        sources: &[String],
        mut each: impl FnMut(NaiveDate, Vec<Row>, ReadStats),
    ) -> Result<(), AuditError> {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let sources: Arc<[String]> = sources.into();
        let windows: Vec<&[NaiveDate]> = days.chunks(threads * 2).collect();
        let mut ahead: Option<std::thread::JoinHandle<Vec<Decoded>>> = None;
        for (i, window) in windows.iter().enumerate() {
            let decoded = match ahead.take() {
                Some(h) => h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)),
                None => decode_days(self.fetch_all(window).await?, Some(&sources), threads),
            };
            if let Some(next) = windows.get(i + 1) {
                let (fetched, sources) = (self.fetch_all(next).await?, sources.clone());
                ahead = Some(std::thread::spawn(move || {
                    decode_days(fetched, Some(&sources), threads)
                }));
            }
            for (day, result) in window.iter().zip(decoded) {
                let (rows, files_read) = result?;
                let stats = ReadStats {
                    files_read,
                    files_total: self.files.len(),
                    rows: rows.len(),
                };
                each(*day, rows, stats);
            }
        }
        Ok(())
    }

    /// The bytes of each data file of each of `days`.
    async fn fetch_all(&self, days: &[NaiveDate]) -> Result<Vec<Fetched>, AuditError> {
        let mut fetched = Vec::with_capacity(days.len());
        for day in days {
            fetched.push(self.fetch(*day).await?);
        }
        Ok(fetched)
    }

    /// The bytes of each data file of `day`, with its path.
    async fn fetch(&self, day: NaiveDate) -> Result<Fetched, AuditError> {
        let mut out = Vec::new();
        for (_, path) in self.files.iter().filter(|(d, _)| *d == day) {
            out.push((path.clone(), self.bytes_of(path).await?));
        }
        Ok(out)
    }
}

/// A day's data files, fetched: (path, bytes) of each.
type Fetched = Vec<(String, bytes::Bytes)>;

/// A day decoded: its rows, sorted, and how many files they came from.
type Decoded = Result<(Vec<Row>, usize), AuditError>;

/// Each day's fetched files decoded, the days spread over `threads` threads.
fn decode_days(days: Vec<Fetched>, keep: Keep<'_>, threads: usize) -> Vec<Decoded> {
    let one = |files: Fetched| {
        let mut rows = Vec::new();
        let n = files.len();
        for (path, bytes) in files {
            read_file(&path, bytes, keep, &mut rows)?;
        }
        sort(&mut rows);
        Ok((rows, n))
    };
    if threads <= 1 || days.len() <= 1 {
        return days.into_iter().map(one).collect();
    }
    let mut lanes: Vec<Vec<(usize, Fetched)>> = (0..threads).map(|_| Vec::new()).collect();
    for (i, d) in days.into_iter().enumerate() {
        lanes[i % threads].push((i, d));
    }
    let mut done: Vec<(usize, Decoded)> = std::thread::scope(|scope| {
        let handles: Vec<_> = lanes
            .into_iter()
            .map(|lane| {
                scope.spawn(move || {
                    lane.into_iter()
                        .map(|(i, d)| (i, one(d)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            // A panic in a decoder is a bug: carry it to this thread.
            .flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
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

/// Which sources' rows a read keeps (`None`: every source's).
type Keep<'a> = Option<&'a [String]>;

fn read_file(
    path: &str,
    bytes: bytes::Bytes,
    keep: Keep<'_>,
    out: &mut Vec<Row>,
) -> Result<(), AuditError> {
    let batches = crate::sink::read::read_bytes_text_dictionaries(path, bytes, &COLUMNS)?;
    for batch in &batches {
        rows_from_batch(batch, out).map_err(|source| AuditError::Decode {
            path: path.into(),
            source,
        })?;
    }
    if let Some(sources) = keep {
        // The rows already in `out` passed this filter before.
        out.retain(|r| sources.iter().any(|s| s == r.source));
    }
    Ok(())
}
