//! Reading the events an audit question needs, and nothing else: the current
//! snapshot's data files, pruned by the `event_date` partition before any file
//! is opened, read with the `parquet` crate deltalake already brings (no
//! DataFusion: its build cost buys nothing for a scan with a day filter), and
//! only the columns the audit uses (never `raw_line`, the widest one).

use chrono::NaiveDate;
use futures::StreamExt;
use std::collections::BTreeSet;
use std::sync::Arc;

use super::AuditError;
use super::checks::{self, Check, Tally};
use super::row::{Decoded, StopLine, Sym, intern, rows_from_batch, same};
use crate::event::schema::{EVENT_PARTITION, name};
use crate::sink::read::{FetchedColumns, columns_in_bytes, fetch_text_dictionaries};

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
    /// (day, path relative to the table's root, size in bytes) of each
    /// data file, sorted.
    files: Vec<(NaiveDate, String, u64)>,
    /// The table, whose object store serves the files (local or remote).
    table: deltalake::DeltaTable,
    /// Whether the store is a remote one (a request costs a round trip).
    remote: bool,
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
            let size = u64::try_from(f.size()).map_err(|_| AuditError::Table {
                table: uri.to_owned(),
                message: format!("data file {} has a negative size in the log", f.path()),
            })?;
            files.push((day, f.path().to_string(), size));
        }
        files.sort();
        Ok(TableFiles {
            uri: uri.to_owned(),
            version: table.version(),
            files,
            table,
            remote: !crate::sink::store::is_local(uri),
        })
    }

    /// The days that hold data, oldest first.
    pub fn days(&self) -> Vec<NaiveDate> {
        self.files
            .iter()
            .map(|(d, _, _)| *d)
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
        let mut out = Decoded::rows();
        let mut stats = ReadStats {
            files_total: self.files.len(),
            ..ReadStats::default()
        };
        let one = source.map(|s| [s.to_owned()]);
        for (day, path, size) in &self.files {
            if !days.contains(*day) {
                continue;
            }
            stats.files_read += 1;
            let fetched = self.columns_of(path, *size).await?;
            read_file(fetched, one.as_ref().map(|s| &s[..]), &mut out)?;
        }
        let mut rows = out.rows;
        stats.rows = rows.len();
        sort(&mut rows);
        Ok((rows, stats))
    }

    /// The audit's columns of the data file at `path`, fetched through the
    /// table's store: only those columns' bytes, or, from a remote store, a
    /// file of up to [`WHOLE_REMOTE_BYTES`] whole, in one request instead of
    /// two (its footer, then its columns).
    async fn columns_of(&self, path: &str, size: u64) -> Result<FetchedColumns, AuditError> {
        let fetched = if self.remote && size <= WHOLE_REMOTE_BYTES {
            match crate::sink::store::read_file(&self.table, path).await {
                Ok(bytes) => columns_in_bytes(path, bytes, &COLUMNS),
                Err(e) => {
                    return Err(AuditError::File {
                        path: path.into(),
                        message: e.to_string(),
                    });
                }
            }
        } else {
            fetch_text_dictionaries(&self.table, path, size, &COLUMNS).await
        };
        fetched.map_err(|e| AuditError::File {
            path: path.into(),
            message: cause(&e),
        })
    }

    /// Reads each of `days` as [`TableFiles::read`] does, keeping the rows
    /// of `sources`, and hands it to `each` as a [`Day`] (its limit checks
    /// and stop lines split out, and kept as rows too on the `charted`
    /// days), in the order
    /// given, on a thread of its own; returns `state` as the last day left it.
    ///
    /// Three stages run at once (a year's report decodes 5 million rows, and
    /// its pass over them is the part that cannot be split): this task
    /// fetches a day's columns, one thread per core decodes and sorts whole
    /// days, and the pass takes them in order. At most four days per core
    /// are fetched and not yet passed (two handed on, two more being
    /// fetched), so memory holds a few days, not the year.
    pub async fn for_each_day<S: Send + 'static>(
        &self,
        days: &[NaiveDate],
        charted: &[NaiveDate],
        sources: &[String],
        state: S,
        each: fn(&mut S, NaiveDate, Day, ReadStats),
    ) -> Result<S, AuditError> {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let ahead = threads * 2;
        let (work, decoded) = decoders(threads, sources.into()).map_err(AuditError::Thread)?;
        // A credit per day that may be fetched before the pass takes it.
        let (credit, credits) = std::sync::mpsc::sync_channel::<()>(ahead);
        for _ in 0..ahead {
            let _ = credit.send(());
        }
        let (files_total, order) = (self.files.len(), days.to_vec());
        let pass = std::thread::Builder::new()
            .name("report-pass".into())
            .spawn(move || {
                in_order(order, decoded, state, |state, day, (d, files_read)| {
                    let stats = ReadStats {
                        files_read,
                        files_total,
                        rows: d.events,
                    };
                    each(state, day, d, stats);
                    let _ = credit.send(());
                })
            })
            .map_err(AuditError::Thread)?;
        let mut fetch_failed = None;
        // Days fetched a few at once, handed on in order.
        let fetches = futures::stream::iter(days.iter().copied())
            .map(|day| async move { (self.fetch(day).await, charted.contains(&day)) })
            .buffered(ahead);
        let mut fetches = std::pin::pin!(fetches);
        let mut i = 0;
        while let Some((fetched, as_rows)) = fetches.next().await {
            // No credit left: the pass ended early, on an error it returns.
            if credits.recv().is_err() {
                break;
            }
            match fetched {
                Ok(f) => {
                    if work.send((i, f, as_rows)).is_err() {
                        break;
                    }
                    i += 1;
                }
                Err(e) => {
                    fetch_failed = Some(e);
                    break;
                }
            }
        }
        drop(work);
        // A panic in the pass or a decoder is a bug: carry it to this thread.
        let passed = pass.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
        match fetch_failed {
            Some(e) => Err(e),
            None => passed,
        }
    }

    /// The audit's columns of each data file of `day`, fetched at once (a
    /// remote store answers several requests in the time of one).
    async fn fetch(&self, day: NaiveDate) -> Result<Fetched, AuditError> {
        let files = self.files.iter().filter(|(d, _, _)| *d == day);
        let fetches = files.map(|(_, path, size)| self.columns_of(path, *size));
        // The first failure in the files' order, whichever ended first.
        futures::future::join_all(fetches)
            .await
            .into_iter()
            .collect()
    }
}

/// Files up to this size are read whole from a remote store: a request
/// costs a round trip, more than the other columns' bytes of such a file.
const WHOLE_REMOTE_BYTES: u64 = 8 << 20;

/// A day's data files, fetched.
type Fetched = Vec<FetchedColumns>;

/// Where the days to decode go, with their place in the order and whether
/// their checks and stop lines are rows too.
type Jobs = std::sync::mpsc::Sender<(usize, Fetched, bool)>;

/// Where the decoded days come from, with their place in the order (a
/// decoder's panic as the thread's `Err`).
type Results = std::sync::mpsc::Receiver<(usize, std::thread::Result<DayRead>)>;

/// A day as the report's pass takes it.
#[derive(Debug, Default)]
pub struct Day {
    /// Its rows but its limit checks, health warnings and stop lines (with
    /// them on a charted day, for the charts), sorted.
    pub rows: Vec<Row>,
    /// Its limit checks and health warnings, sorted.
    pub checks: Vec<Check>,
    /// Its trailing stops' lines, sorted.
    pub stops: Vec<StopLine>,
    /// What those add to the report whatever the breaker's state.
    pub tally: Tally,
    /// Events read: each row, check and stop line once.
    pub events: usize,
}

/// A day decoded, and how many files it came from.
type DayRead = Result<(Day, usize), AuditError>;

/// A day's fetched files decoded, its rows of the sources `keep` asks for,
/// sorted, its checks and stop lines split out, the checks tallied (and
/// all kept as rows `as_rows`).
fn decode_day(mut files: Fetched, keep: Keep<'_>, as_rows: bool) -> DayRead {
    // A file's rows are in the order they were logged, and a day's files
    // nearly always follow one another: decoded earliest first, they come
    // out sorted or nearly, and sorting them costs a pass of comparisons
    // instead of merging runs of 300-byte rows.
    files.sort_by_cached_key(|f| f.min_i64(name::TIMESTAMP));
    let mut out = Decoded::split(as_rows);
    let n = files.len();
    for file in files {
        read_file(file, keep, &mut out)?;
    }
    let Decoded {
        mut rows,
        mut checks,
        mut stops,
        ..
    } = out;
    sort(&mut rows);
    checks::sort(&mut checks, Check::place);
    checks::sort(&mut stops, StopLine::place);
    let events = if as_rows {
        rows.len()
    } else {
        rows.len() + checks.len() + stops.len()
    };
    let tally = Tally::of(&checks);
    let day = Day {
        rows,
        checks,
        stops,
        tally,
        events,
    };
    Ok((day, n))
}

/// `threads` threads that decode the days sent to the first channel (with
/// their place in the order), each whole, and send them on, in whatever
/// order they finish, to the second. They end when the sender is dropped.
fn decoders(threads: usize, keep: Arc<[String]>) -> std::io::Result<(Jobs, Results)> {
    let (work, jobs) = std::sync::mpsc::channel::<(usize, Fetched, bool)>();
    let (done, decoded) = std::sync::mpsc::channel();
    let jobs = Arc::new(std::sync::Mutex::new(jobs));
    for _ in 0..threads {
        let (jobs, done, keep) = (jobs.clone(), done.clone(), keep.clone());
        std::thread::Builder::new()
            .name("report-decode".into())
            .spawn(move || {
                loop {
                    let job = jobs.lock().unwrap_or_else(|e| e.into_inner()).recv();
                    let Ok((i, files, as_rows)) = job else { break };
                    // A panic (a bug) is carried to the pass, which panics with it.
                    let day = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        decode_day(files, Some(&keep), as_rows)
                    }));
                    if done.send((i, day)).is_err() {
                        break;
                    }
                }
            })?;
    }
    Ok((work, decoded))
}

/// Hands the decoded days to `each` in the order of `days`, whatever order
/// they arrive in; the first day that failed ends it with its error.
fn in_order<S>(
    days: Vec<NaiveDate>,
    decoded: Results,
    mut state: S,
    mut each: impl FnMut(&mut S, NaiveDate, (Day, usize)),
) -> Result<S, AuditError> {
    let mut arrived = std::collections::BTreeMap::new();
    for (i, day) in days.into_iter().enumerate() {
        let day_rows = loop {
            if let Some(d) = arrived.remove(&i) {
                break d;
            }
            match decoded.recv() {
                Ok((j, d)) => {
                    arrived.insert(j, d);
                }
                // Nothing more will come: the fetching stopped, on the error
                // the caller returns instead of this one.
                Err(_) => {
                    return Err(AuditError::Period(format!(
                        "{day}: the day's data files were not read"
                    )));
                }
            }
        };
        let day_rows = day_rows.unwrap_or_else(|p| std::panic::resume_unwind(p));
        each(&mut state, day, day_rows?);
    }
    Ok(state)
}

/// The audit's order: per source, by time, then by place in the file (lines
/// logged within the same millisecond keep the order they were written in).
pub fn sort(rows: &mut [Row]) {
    checks::sort(rows, Row::place);
}

/// Which sources' rows a read keeps (`None`: every source's).
type Keep<'a> = Option<&'a [String]>;

/// What went wrong with a data file, said once: the sink's error names the
/// file (as the audit's does) around the store's or the reader's answer,
/// which Parquet's reader wraps as "External".
fn cause(e: &crate::sink::SinkError) -> String {
    let inner = std::error::Error::source(e).map_or_else(|| e.to_string(), |s| s.to_string());
    inner
        .strip_prefix("External: ")
        .unwrap_or(&inner)
        .to_owned()
}

fn read_file(file: FetchedColumns, keep: Keep<'_>, out: &mut Decoded) -> Result<(), AuditError> {
    let path = file.path().to_owned();
    let kept: Option<Vec<Sym>> = keep.map(|k| k.iter().map(|s| intern(s)).collect());
    let keep = |source: Sym| (kept.as_ref()).is_none_or(|k| k.iter().any(|s| same(s, source)));
    // Room for the file at once: grown batch by batch, a day's rows were
    // copied as the vector doubled, into fresh memory each time.
    out.reserve(file.rows());
    let batches = file.decode().map_err(|e| AuditError::File {
        path: path.clone().into(),
        message: cause(&e),
    })?;
    for batch in &batches {
        rows_from_batch(batch, keep, out).map_err(|source| AuditError::Decode {
            path: path.clone().into(),
            source,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::channel;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 3, d).expect("a day")
    }

    /// `n` rows stamped with their day's number in `source_offset`.
    fn rows(d: u32, n: usize) -> std::thread::Result<DayRead> {
        let row = Row {
            source_offset: i64::from(d),
            ..Row::default()
        };
        let day = Day {
            rows: vec![row; n],
            ..Day::default()
        };
        Ok(Ok((day, 1)))
    }

    /// Whatever order the decoders finish in, the pass gets the days in
    /// the order asked, each with its own rows.
    #[test]
    fn days_are_passed_in_order_whatever_order_they_arrive_in() {
        let (tx, rx) = channel();
        for (i, d) in [(2, 3), (0, 1), (1, 2)] {
            tx.send((i, rows(d, i + 1))).expect("send");
        }
        let days = vec![day(1), day(2), day(3)];
        let seen = in_order(days, rx, Vec::new(), |seen, d, (day, _)| {
            seen.push((d, day.rows.len(), day.rows[0].source_offset));
        })
        .expect("passed");
        assert_eq!(
            seen,
            [(day(1), 1, 1), (day(2), 2, 2), (day(3), 3, 3)],
            "in order, each its own"
        );
    }

    /// A day that failed ends the pass with its error; a day that never
    /// comes ends it too, instead of waiting for ever; a decoder's panic
    /// reaches the pass.
    #[test]
    fn a_failed_or_missing_day_ends_the_pass() {
        let (tx, rx) = channel();
        tx.send((1, rows(2, 1))).expect("send");
        tx.send((0, Ok(Err(AuditError::Period("broken".into())))))
            .expect("send");
        let r = in_order(vec![day(1), day(2)], rx, 0, |n, _, _| *n += 1);
        assert!(matches!(r, Err(AuditError::Period(m)) if m == "broken"));

        let (tx, rx) = channel();
        tx.send((1, rows(2, 1))).expect("send");
        drop(tx);
        let r = in_order(vec![day(1), day(2)], rx, 0, |n, _, _| *n += 1);
        assert!(matches!(r, Err(AuditError::Period(m)) if m.starts_with("2026-03-01")));

        let (tx, rx) = channel();
        tx.send((
            0,
            Err(Box::new("decoder bug") as Box<dyn std::any::Any + Send>),
        ))
        .expect("send");
        let r = std::panic::catch_unwind(|| in_order(vec![day(1)], rx, 0, |n, _, _| *n += 1));
        assert!(r.is_err(), "the panic is carried");
    }
}
