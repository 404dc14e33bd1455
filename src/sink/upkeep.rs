//! Table upkeep without DataFusion: checkpoints, compaction, log cleanup and
//! vacuum, off the commit path: the daemon hands them to a thread of their
//! own ([`Worker`]) with its own handles on the tables, so a compaction
//! (tens of milliseconds, a reload of the file list included) never holds up
//! reading or the next commit. To the daemon's appends its commits are
//! another writer's, passed like any other (`sink::delta_log`).
//!
//! A daemon that commits every second leaves a small Parquet file per commit
//! and partition, and commit latency grows with the number of active files
//! (measured: 15 ms → 150 ms within 400 commits). `optimize()` needs the
//! `datafusion` feature, which would triple the build; compaction here is
//! plain: read a partition's small files with the `parquet` crate, write them
//! back as one file with the same writer the daemon uses, and commit the new
//! `add` and the old files' `remove`s (both `dataChange=false`, so readers of
//! the change feed and `appendOnly` see no data change) as one `OPTIMIZE`
//! commit. It touches no rows' content and carries no `txn`, so it never
//! conflicts with the offsets of appends. Replaced files are deleted by vacuum
//! only after the retention period, so readers of older versions keep working.

use deltalake::arrow::array::{ArrayRef, Date32Array};
use deltalake::arrow::record_batch::RecordBatch;
use deltalake::kernel::{Add, Remove};
use deltalake::writer::{DeltaWriter, RecordBatchWriter};
use deltalake::{DeltaTable, DeltaTableError};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use super::delta_log::{Appended, DeltaLog};
use super::error::SinkError;
use super::read::read_bytes_columns;
use crate::event::batch::arrow_schema;
use crate::event::schema::ColumnDef;

/// What upkeep is due, decided by the sink after its commits (see
/// `DeltaSink::upkeep_due`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    /// A commit of ours landed on a checkpoint version: (events, quarantine).
    pub checkpoint: (bool, bool),
    /// Compaction and log cleanup (every `COMPACT_EVERY_COMMITS` commits).
    pub compact: bool,
    /// Vacuum (once a day).
    pub vacuum: bool,
    /// The end of a backfill: a table left [`SETTLE_TAIL`] or more versions
    /// past its newest checkpoint gets one at its newest version, so the
    /// readers of a freshly backfilled table (a year's report, the next
    /// daemon) read one file instead of replaying every commit.
    pub settle: bool,
}

/// How many versions past its newest checkpoint a backfill may leave a
/// table before it writes one at its end (see [`Due::settle`]). A backfill
/// of a day makes a commit or two and writes none; one of a year makes
/// dozens, and its one-day report then opens in about half the time.
pub const SETTLE_TAIL: u64 = 10;

impl Due {
    /// Whether anything is due.
    pub fn any(&self) -> bool {
        self.checkpoint.0 || self.checkpoint.1 || self.compact || self.vacuum || self.settle
    }

    /// What is due after `other` too.
    fn merge(&mut self, other: Due) {
        self.checkpoint.0 |= other.checkpoint.0;
        self.checkpoint.1 |= other.checkpoint.1;
        self.compact |= other.compact;
        self.vacuum |= other.vacuum;
        self.settle |= other.settle;
    }

    /// Does what is due on the two tables; returns what the events table's
    /// compaction did, when it ran.
    pub async fn run(
        &self,
        events: &mut DeltaLog,
        quarantine: &mut DeltaLog,
    ) -> Result<Option<CompactReport>, SinkError> {
        use crate::event::schema::{
            EVENT_PARTITION, QUARANTINE_COLUMNS, QUARANTINE_PARTITION, RISK_EVENT_COLUMNS,
        };
        for (log, due) in [
            (&mut *events, self.checkpoint.0),
            (&mut *quarantine, self.checkpoint.1),
        ] {
            // A checkpoint is due on the writer that landed version 49, 99,
            // …; if that writer died first, none is written: the next writer
            // whose upkeep runs notices the gap and writes it.
            if due
                || (self.compact && missed_checkpoint(log).await?)
                || (self.settle && behind_checkpoint(log, SETTLE_TAIL).await?)
            {
                let uri = log.uri().to_owned();
                let table = log.reload().await?;
                deltalake::checkpoints::create_checkpoint(table, None)
                    .await
                    .map_err(|e| SinkError::Delta {
                        table: uri,
                        source: Box::new(e),
                    })?;
            }
        }
        let mut report = None;
        if self.compact {
            let r = compact(events, &RISK_EVENT_COLUMNS, EVENT_PARTITION).await?;
            let q = compact(quarantine, &QUARANTINE_COLUMNS, QUARANTINE_PARTITION).await?;
            if r.files_removed + q.files_removed > 0 {
                tracing::info!(
                    files_removed = r.files_removed + q.files_removed,
                    files_added = r.files_added + q.files_added,
                    rows = r.rows + q.rows,
                    ms = (r.millis + q.millis) as u64,
                    "compacted small files"
                );
            }
            let cleaned = cleanup_logs(events).await? + cleanup_logs(quarantine).await?;
            if cleaned > 0 {
                tracing::info!(entries = cleaned, "deleted expired _delta_log entries");
            }
            report = Some(r);
        }
        if self.vacuum {
            let mut n = 0;
            for log in [&mut *events, &mut *quarantine] {
                let uri = log.uri().to_owned();
                let table = log.reload().await?;
                let retention = vacuum_retention(table);
                n += vacuum(table, &uri, retention).await?;
                log.resync();
            }
            if n > 0 {
                tracing::info!(files_deleted = n, "vacuumed files replaced over a week ago");
            }
        }
        Ok(report)
    }
}

/// The daemon's upkeep thread: runs each [`Due`] it is sent on its own
/// runtime and its own table handles, one at a time; jobs sent while one
/// runs are merged into the next. It ends when the sender is dropped.
pub struct Worker {
    tx: std::sync::mpsc::Sender<Due>,
}

impl Worker {
    /// Starts the thread for the tables at `events_uri` and `quarantine_uri`.
    pub fn start(events_uri: &str, quarantine_uri: &str) -> std::io::Result<Worker> {
        let (tx, rx) = std::sync::mpsc::channel::<Due>();
        let uris = (events_uri.to_owned(), quarantine_uri.to_owned());
        std::thread::Builder::new()
            .name("risktail-upkeep".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::error!(error = %e, "the upkeep thread cannot start a runtime; no upkeep");
                        return;
                    }
                };
                let mut tables: Option<(DeltaLog, DeltaLog)> = None;
                while let Ok(mut due) = rx.recv() {
                    while let Ok(more) = rx.try_recv() {
                        due.merge(more);
                    }
                    let result = rt.block_on(async {
                        let (e, q) = match &mut tables {
                            Some(t) => t,
                            None => tables.insert(super::open_logs(&uris.0, &uris.1).await?),
                        };
                        due.run(e, q).await
                    });
                    if let Err(e) = result {
                        tracing::warn!(error = %e, "table upkeep failed; ingestion goes on, retrying later");
                    }
                }
            })?;
        Ok(Worker { tx })
    }

    /// Hands `due` to the thread (dropped quietly if the thread is gone: the
    /// upkeep is never needed for correctness).
    pub fn send(&self, due: Due) {
        let _ = self.tx.send(due);
    }
}

/// Files smaller than this are compaction candidates.
pub const SMALL_FILE_BYTES: i64 = 8 << 20;
/// A partition is compacted once it has this many small files.
pub const MIN_SMALL_FILES: usize = 8;

/// What a compaction did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CompactReport {
    /// Partitions rewritten.
    pub partitions: usize,
    /// Files replaced.
    pub files_removed: usize,
    /// Files written.
    pub files_added: usize,
    /// Rows rewritten.
    pub rows: usize,
    /// Time taken.
    pub millis: u128,
}

/// The table's small files, by partition value. Files carrying a deletion
/// vector are left out: rows another tool deleted are still in the Parquet
/// file, and rewriting it from the raw Parquet would bring them back.
fn small_files(
    snapshot: &deltalake::table::state::DeltaTableState,
    partition: &str,
) -> BTreeMap<String, Vec<Remove>> {
    let mut groups: BTreeMap<String, Vec<Remove>> = BTreeMap::new();
    for f in snapshot.log_data().iter() {
        if f.size() >= SMALL_FILE_BYTES {
            continue;
        }
        let r = f.remove_action(false);
        if r.deletion_vector.is_some() {
            continue;
        }
        let value = r
            .partition_values
            .as_ref()
            .and_then(|p| p.get(partition).cloned().flatten())
            .unwrap_or_default();
        groups.entry(value).or_default().push(r);
    }
    groups
}

/// Compacts every partition holding at least [`MIN_SMALL_FILES`] small files.
pub async fn compact(
    log: &mut DeltaLog,
    columns: &[ColumnDef],
    partition: &str,
) -> Result<CompactReport, SinkError> {
    let started = Instant::now();
    let uri = log.uri().to_owned();
    let uri = uri.as_str();
    let derr = |source: DeltaTableError| SinkError::Delta {
        table: uri.to_owned(),
        source: Box::new(source),
    };
    log.reload().await?;
    let table = log.table();
    let mut groups = small_files(table.snapshot().map_err(derr)?, partition);
    groups.retain(|_, files| files.len() >= MIN_SMALL_FILES);
    let mut report = CompactReport::default();
    if groups.is_empty() {
        return Ok(report);
    }
    // A table an earlier release created may lack columns added since.
    let columns = &columns[..super::table_width(table, uri)?.min(columns.len())];
    let data_columns: Vec<&str> = columns
        .iter()
        .map(|c| c.name)
        .filter(|n| *n != partition)
        .collect();
    let schema = arrow_schema(columns);
    let mut writer = RecordBatchWriter::for_table(table).map_err(derr)?;
    let mut removes = Vec::new();
    for (value, files) in groups {
        let days = chrono::NaiveDate::parse_from_str(&value, "%Y-%m-%d")
            .map(|d| {
                (d - chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch")).num_days() as i32
            })
            .map_err(|e| SinkError::Io {
                path: uri.to_owned(),
                source: std::io::Error::other(format!("partition value {value:?}: {e}")),
            })?;
        // File by file: a partition's small files are never all in memory.
        // (`remove_action` paths are decoded already, as the store wants.)
        for r in &files {
            let bytes = super::store::read_file(table, &r.path)
                .await
                .map_err(derr)?;
            for batch in read_bytes_columns(&r.path, bytes, &data_columns)? {
                report.rows += batch.num_rows();
                let full = with_partition(uri, &schema, columns, partition, days, &batch)?;
                writer.write(full).await.map_err(derr)?;
            }
        }
        report.partitions += 1;
        report.files_removed += files.len();
        removes.extend(files);
    }
    let adds = writer.flush().await.map_err(derr)?;
    report.files_added = adds.len();
    let (adds, removes) = no_data_change(adds, removes);
    // Many writers may compact one table. Delta's conflict check ignores
    // removes that change no data (a compaction's), so two compactions of
    // the same files would both land and every row would be there twice.
    // Hence the files were picked from a fresh snapshot, and a newer commit
    // that removes one of them (another compaction) makes this one give up;
    // appends that land meanwhile are passed (`DeltaLog::replace`), so a busy
    // table does not starve its compaction.
    let meta = serde_json::json!({ "compaction": { "files_removed": report.files_removed, "rows": report.rows } });
    match log.replace(adds, removes, meta, SMALL_FILE_BYTES).await? {
        Appended::Landed { .. } => {
            report.millis = started.elapsed().as_millis();
            Ok(report)
        }
        Appended::Conflict => {
            tracing::info!(
                table = uri,
                "another writer compacted these files first; skipping"
            );
            Ok(CompactReport::default())
        }
    }
}

/// A data file's batch with the partition column put back (as the day
/// `days` since the epoch), in the table's column order.
fn with_partition(
    uri: &str,
    schema: &deltalake::arrow::datatypes::SchemaRef,
    columns: &[ColumnDef],
    partition: &str,
    days: i32,
    batch: &RecordBatch,
) -> Result<RecordBatch, SinkError> {
    let n = batch.num_rows();
    let mut cols: Vec<ArrayRef> = Vec::with_capacity(columns.len());
    for c in columns {
        if c.name == partition {
            cols.push(Arc::new(Date32Array::from(vec![days; n])));
        } else if let Some(col) = batch.column_by_name(c.name) {
            cols.push(col.clone());
        } else if c.nullable {
            // A file written before the column was added: empty in its rows.
            let ty = schema.field_with_name(c.name)?.data_type();
            cols.push(deltalake::arrow::array::new_null_array(ty, n));
        } else {
            return Err(SinkError::Io {
                path: uri.to_owned(),
                source: std::io::Error::other(format!("column {} missing in a data file", c.name)),
            });
        }
    }
    Ok(RecordBatch::try_new(schema.clone(), cols)?)
}

/// A compaction's actions: adds that change no data, removes stamped now.
fn no_data_change(adds: Vec<Add>, removes: Vec<Remove>) -> (Vec<Add>, Vec<Remove>) {
    let now_ms = chrono::Utc::now().timestamp_millis();
    let adds = adds
        .into_iter()
        .map(|mut a| {
            a.data_change = false;
            a
        })
        .collect();
    let removes = removes
        .into_iter()
        .map(|mut r| {
            r.deletion_timestamp = Some(now_ms);
            r
        })
        .collect();
    (adds, removes)
}

/// Deletes the `_delta_log` entries older than the table's log retention
/// that a checkpoint made unnecessary, by name (`log_names::expire`): delta-rs
/// would list the whole folder each time (a `stat` per entry; a month of log
/// at a commit a second is 2.6 million). Returns how many entries went.
pub async fn cleanup_logs(log: &mut DeltaLog) -> Result<usize, SinkError> {
    use deltalake::table::config::TablePropertiesExt;
    let uri = log.uri().to_owned();
    let derr = |source: DeltaTableError| SinkError::Delta {
        table: uri.clone(),
        source: Box::new(source),
    };
    let table = log.table();
    let snapshot = table.snapshot().map_err(derr)?;
    if checkpoint_protected(snapshot) {
        // `checkpointProtection`: history may only be cut by a writer that
        // also keeps the protected checkpoints, which delta-rs's cleanup does
        // not know how to do; risktail leaves the log as it is.
        return Ok(0);
    }
    let retention = snapshot.table_config().log_retention_duration();
    let cutoff = chrono::Utc::now().timestamp_millis() - retention.as_millis() as i64;
    let store = table.log_store().object_store(None);
    let mut floor = log.log_floor();
    let n = super::log_names::expire(store.as_ref(), cutoff, &mut floor)
        .await
        .map_err(|e| derr(e.into()))?;
    log.set_log_floor(floor);
    Ok(n)
}

/// Whether the table's protocol carries the `checkpointProtection` writer
/// feature.
fn checkpoint_protected(snapshot: &deltalake::table::state::DeltaTableState) -> bool {
    snapshot
        .protocol()
        .writer_features()
        .is_some_and(|f| f.iter().any(|f| f.as_ref() == "checkpointProtection"))
}

/// How long replaced files are kept before vacuum deletes them: a week, or
/// the table's `deletedFileRetentionDuration` when the team set it longer.
fn vacuum_retention(table: &DeltaTable) -> chrono::Duration {
    use deltalake::table::config::TablePropertiesExt;
    let week = chrono::Duration::hours(super::VACUUM_RETENTION_HOURS);
    table
        .snapshot()
        .ok()
        .and_then(|s| {
            chrono::Duration::from_std(s.table_config().deleted_file_retention_duration()).ok()
        })
        .map_or(week, |set| set.max(week))
}

/// Whether the table is a whole checkpoint interval or more past its newest
/// checkpoint (`_last_checkpoint`, one small read): the writer that should
/// have written one died first.
async fn missed_checkpoint(log: &mut DeltaLog) -> Result<bool, SinkError> {
    use deltalake::table::config::TablePropertiesExt;
    let interval = log
        .table()
        .snapshot()
        .map_err(|e| log.derr(e))?
        .table_config()
        .checkpoint_interval()
        .get();
    let (version, last) = since_checkpoint(log).await?;
    let due = match last {
        Some(c) => version >= c + interval,
        None => version + 1 >= interval,
    };
    if due {
        tracing::info!(table = log.uri(), version, last_checkpoint = ?last, "a checkpoint was missed; writing it");
    }
    Ok(due)
}

/// Whether the table is `tail` or more versions past its newest checkpoint
/// (counting from version 0 when it has none).
async fn behind_checkpoint(log: &mut DeltaLog, tail: u64) -> Result<bool, SinkError> {
    let (version, last) = since_checkpoint(log).await?;
    let behind = last.map_or(version + 1, |c| version.saturating_sub(c));
    if behind >= tail {
        tracing::info!(table = log.uri(), version, last_checkpoint = ?last, "writing a checkpoint at the end of the backfill");
    }
    Ok(behind >= tail)
}

/// The newest version this writer has seen (its own commits and the ones it
/// passed: no reload, which would list the log) and the one
/// `_last_checkpoint` names (one small read).
async fn since_checkpoint(log: &DeltaLog) -> Result<(u64, Option<u64>), SinkError> {
    let store = log.table().log_store().object_store(None);
    let last = super::log_names::last_checkpoint(store.as_ref())
        .await
        .map_err(|e| log.derr(e.into()))?;
    Ok((log.version(), last))
}

/// Deletes files that compaction replaced more than `retention` ago, and
/// files no commit names (a failed commit's) older than `retention`.
pub async fn vacuum(
    table: &mut DeltaTable,
    uri: &str,
    retention: chrono::Duration,
) -> Result<usize, SinkError> {
    let derr = |source: DeltaTableError| SinkError::Delta {
        table: uri.to_owned(),
        source: Box::new(source),
    };
    // Full: files that failed commits uploaded (no log entry names them)
    // go too, once older than the retention; younger ones may be another
    // writer's commit in flight and stay. Lite would only delete files
    // compaction replaced.
    let (t, metrics) = table
        .clone()
        .vacuum()
        .with_mode(deltalake::operations::vacuum::VacuumMode::Full)
        .with_retention_period(retention)
        .with_enforce_retention_duration(false)
        // Log cleanup is ours (`cleanup_logs`); delta-rs's, after each of
        // vacuum's commits, would list the whole log folder.
        .with_commit_properties(
            deltalake::kernel::transaction::CommitProperties::default()
                .with_cleanup_expired_logs(Some(false)),
        )
        .await
        .map_err(derr)?;
    *table = t;
    Ok(metrics.files_deleted.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::schema::{
        QUARANTINE_COLUMNS, QUARANTINE_PARTITION, name, without_added_later,
    };
    use crate::sink::tests::commit_rows;

    /// Columns whose values all differ are written without a dictionary;
    /// the others keep theirs (the audit reads text as dictionaries). The
    /// ids are not compressed; every other column is, with snappy.
    #[test]
    fn unique_columns_are_written_plain() {
        use deltalake::parquet::basic::Compression;
        use deltalake::parquet::file::reader::{FileReader, SerializedFileReader};
        let dir = tempfile::tempdir().unwrap();
        let uri = dir.path().to_str().unwrap().to_owned();
        let files = crate::sink::tests::rt().block_on(async {
            let mut log = crate::sink::tests::quarantine_log(&uri).await;
            commit_rows(&mut log, 0, 50).await;
            super::super::read::data_files(&uri).await.unwrap()
        });
        assert_eq!(files.len(), 1);
        let file = std::fs::File::open(&files[0]).unwrap();
        let reader = SerializedFileReader::new(file).unwrap();
        let group = reader.metadata().row_group(0);
        let column = |name: &str| {
            (0..group.num_columns())
                .map(|i| group.column(i))
                .find(|c| c.column_path().string() == name)
                .unwrap_or_else(|| panic!("{name} is in the file"))
        };
        let dictionary = |name: &str| column(name).dictionary_page_offset().is_some();
        for plain in [name::RAW_LINE, name::SOURCE_OFFSET, name::LINE_ID] {
            assert!(!dictionary(plain), "{plain} is written plain");
        }
        for kept in [name::SOURCE, name::SOURCE_FILE, name::REASON] {
            assert!(dictionary(kept), "{kept} keeps its dictionary");
        }
        assert_eq!(
            column(name::LINE_ID).compression(),
            Compression::UNCOMPRESSED
        );
        for snappy in [name::RAW_LINE, name::SOURCE, name::SOURCE_OFFSET] {
            assert_eq!(
                column(snappy).compression(),
                Compression::SNAPPY,
                "{snappy}"
            );
        }
    }

    /// A table an earlier release created (no `line_id`) is written without
    /// the column; after the column is added, files with and without it are
    /// compacted together: every row kept, `line_id` empty in the rows
    /// written before and set in the rows after.
    #[test]
    fn a_migrated_table_compacts_files_from_before_and_after() {
        let dir = tempfile::tempdir().unwrap();
        let uri = dir.path().to_str().unwrap().to_owned();
        crate::sink::tests::rt().block_on(async {
            let legacy = without_added_later(&QUARANTINE_COLUMNS);
            let mut old = DeltaLog::open(&uri, "q", legacy, QUARANTINE_PARTITION)
                .await
                .unwrap();
            for i in 0..5 {
                commit_rows(&mut old, i * 10, 10).await;
            }
            let mut log = crate::sink::tests::quarantine_log(&uri).await;
            assert_eq!(
                log.add_missing_columns().await.unwrap(),
                vec![name::LINE_ID]
            );
            for i in 5..9 {
                commit_rows(&mut log, i * 10, 10).await;
            }
            let r = compact(&mut log, &QUARANTINE_COLUMNS, QUARANTINE_PARTITION)
                .await
                .unwrap();
            assert_eq!((r.files_removed, r.rows), (9, 90));
            let files = super::super::read::data_files(&uri).await.unwrap();
            assert_eq!(files.len(), 1);
            let batches =
                super::super::read::read_columns(&files, &[name::SOURCE_OFFSET, name::LINE_ID])
                    .unwrap();
            let mut with_id = 0;
            for b in &batches {
                let offsets = b
                    .column(0)
                    .as_any()
                    .downcast_ref::<deltalake::arrow::array::Int64Array>()
                    .unwrap();
                let ids = b.column(1);
                for row in 0..b.num_rows() {
                    let written_after = offsets.value(row) >= 50;
                    assert_eq!(
                        ids.is_valid(row),
                        written_after,
                        "offset {}",
                        offsets.value(row)
                    );
                    with_id += usize::from(written_after);
                }
            }
            assert_eq!(with_id, 40);
        });
    }
}
