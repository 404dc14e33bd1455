//! Table upkeep without DataFusion: compaction, log cleanup and vacuum, off
//! the commit path.
//!
//! A daemon that commits every second leaves a small Parquet file per commit
//! and partition, and commit latency grows with the number of active files
//! (delta-notes §6: 15 ms → 150 ms within 400 commits). `optimize()` needs the
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
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::kernel::{Action, Remove};
use deltalake::protocol::DeltaOperation;
use deltalake::writer::{DeltaWriter, RecordBatchWriter};
use deltalake::{DeltaTable, DeltaTableError};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use super::SinkError;
use super::read::read_bytes_columns;
use crate::event::batch::arrow_schema;
use crate::event::schema::ColumnDef;

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

/// Compacts every partition holding at least [`MIN_SMALL_FILES`] small files.
pub async fn compact(
    table: &mut DeltaTable,
    uri: &str,
    columns: &[ColumnDef],
    partition: &str,
) -> Result<CompactReport, SinkError> {
    let started = Instant::now();
    let derr = |source: DeltaTableError| SinkError::Delta {
        table: uri.to_owned(),
        source: Box::new(source),
    };
    let mut groups: BTreeMap<String, Vec<Remove>> = BTreeMap::new();
    {
        let snapshot = table.snapshot().map_err(derr)?;
        for f in snapshot.log_data().iter() {
            if f.size() >= SMALL_FILE_BYTES {
                continue;
            }
            let r = f.remove_action(false);
            let value = r
                .partition_values
                .as_ref()
                .and_then(|p| p.get(partition).cloned().flatten())
                .unwrap_or_default();
            groups.entry(value).or_default().push(r);
        }
    }
    groups.retain(|_, files| files.len() >= MIN_SMALL_FILES);
    let mut report = CompactReport::default();
    if groups.is_empty() {
        return Ok(report);
    }
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
                let n = batch.num_rows();
                let mut cols: Vec<ArrayRef> = Vec::with_capacity(columns.len());
                for c in columns {
                    if c.name == partition {
                        cols.push(Arc::new(Date32Array::from(vec![days; n])));
                    } else {
                        let col = batch.column_by_name(c.name).ok_or_else(|| SinkError::Io {
                            path: uri.to_owned(),
                            source: std::io::Error::other(format!(
                                "column {} missing in a data file",
                                c.name
                            )),
                        })?;
                        cols.push(col.clone());
                    }
                }
                let full = RecordBatch::try_new(schema.clone(), cols)?;
                report.rows += n;
                writer.write(full).await.map_err(derr)?;
            }
        }
        report.partitions += 1;
        report.files_removed += files.len();
        removes.extend(files);
    }
    let adds = writer.flush().await.map_err(derr)?;
    report.files_added = adds.len();
    let now_ms = chrono::Utc::now().timestamp_millis();
    let mut actions: Vec<Action> = adds
        .into_iter()
        .map(|mut a| {
            a.data_change = false;
            Action::Add(a)
        })
        .collect();
    actions.extend(removes.into_iter().map(|mut r| {
        r.deletion_timestamp = Some(now_ms);
        Action::Remove(r)
    }));
    // Many writers may compact one table. Delta's conflict check ignores
    // removes that change no data (a compaction's), so two compactions of
    // the same files would both land and every row would be there twice.
    // Hence: reload, make sure every file to remove is still in the table,
    // and commit only as the very next version (no rebase onto another
    // writer's commit); a compaction that loses is dropped and tried again
    // at the next upkeep, from a fresh snapshot.
    table.update_incremental(None).await.map_err(derr)?;
    let present: std::collections::HashSet<String> =
        super::store::data_paths(table).map_err(derr)?.collect();
    if let Some(gone) = actions.iter().find_map(|a| match a {
        Action::Remove(r) if !present.contains(&r.path) => Some(r.path.clone()),
        _ => None,
    }) {
        tracing::info!(table = uri, file = %gone, "another writer compacted these files first; skipping");
        return Ok(CompactReport::default());
    }
    let props = CommitProperties::default()
        .with_metadata([(
            "risktail".to_owned(),
            serde_json::json!({ "compaction": { "files_removed": report.files_removed, "rows": report.rows } }),
        )])
        .with_max_retries(0)
        .with_cleanup_expired_logs(Some(false));
    let snapshot = table.snapshot().map_err(derr)?;
    CommitBuilder::from(props)
        .with_actions(actions)
        .build(
            Some(snapshot),
            table.log_store(),
            DeltaOperation::Optimize {
                predicate: None,
                target_size: SMALL_FILE_BYTES,
            },
        )
        .await
        .map_err(derr)?;
    table.update_incremental(None).await.map_err(derr)?;
    report.millis = started.elapsed().as_millis();
    Ok(report)
}

/// Deletes the `_delta_log` entries older than the table's log retention
/// that the last checkpoint made unnecessary. delta-rs would do this after
/// every commit, listing the whole folder each time (a `stat` per entry:
/// with a commit a second, tens of thousands); the daemon does it with its
/// upkeep. Returns how many entries went.
pub async fn cleanup_logs(table: &DeltaTable, uri: &str) -> Result<usize, SinkError> {
    use deltalake::table::config::TablePropertiesExt;
    let derr = |source: DeltaTableError| SinkError::Delta {
        table: uri.to_owned(),
        source: Box::new(source),
    };
    let Some(version) = table.version() else {
        return Ok(0);
    };
    let retention = table
        .snapshot()
        .map_err(derr)?
        .table_config()
        .log_retention_duration();
    let cutoff = chrono::Utc::now().timestamp_millis() - retention.as_millis() as i64;
    deltalake::protocol::checkpoints::cleanup_expired_logs_for(
        version,
        table.log_store().as_ref(),
        cutoff,
        None,
    )
    .await
    .map_err(derr)
}

/// Deletes files that compaction replaced more than `retention` ago.
pub async fn vacuum(
    table: &mut DeltaTable,
    uri: &str,
    retention: chrono::Duration,
) -> Result<usize, SinkError> {
    let derr = |source: DeltaTableError| SinkError::Delta {
        table: uri.to_owned(),
        source: Box::new(source),
    };
    let (t, metrics) = table
        .clone()
        .vacuum()
        .with_retention_period(retention)
        .with_enforce_retention_duration(false)
        .await
        .map_err(derr)?;
    *table = t;
    Ok(metrics.files_deleted.len())
}
