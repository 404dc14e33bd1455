//! One commit, and the rows staged for it: the open Parquet writers, what
//! their rows are (for the metrics, counted only once the commit lands), and
//! the commit with its retries when another writer won the version.

use deltalake::kernel::Transaction;
use deltalake::kernel::transaction::{CommitConflictError, CommitProperties, TransactionError};
use deltalake::writer::{DeltaWriter, RecordBatchWriter};
use deltalake::{DeltaTable, DeltaTableError};
use std::sync::Arc;
use std::time::Duration;

use super::{SinkError, txn, txn_version};
use crate::event::{QuarantineRecord, RiskEvent};
use crate::metrics::{self, Metrics};
use crate::parse::SourceState;

const MAX_COMMIT_TRIES: u32 = 8;

/// Open writers holding rows for the next commit.
#[derive(Default)]
pub(super) struct Staged {
    pub(super) events: Option<RecordBatchWriter>,
    pub(super) quarantine: Option<RecordBatchWriter>,
    pub(super) rows: usize,
    /// What the staged rows are, for the metrics once they are committed.
    pub(super) counts: StagedCounts,
}

#[derive(Default)]
pub(super) struct StagedCounts {
    events: std::collections::HashMap<Arc<str>, u64>,
    restart_resets: u64,
    quarantined: std::collections::HashMap<&'static str, u64>,
}

impl StagedCounts {
    /// Counts the quarantine rows alone (their commit landed, the events' did not).
    fn record_quarantine(&self, m: &Metrics, source: &str) {
        for (r, n) in &self.quarantined {
            let labels = vec![("source", source.to_owned()), ("reason", (*r).to_owned())];
            m.quarantined.get_or_create(&labels).inc_by(*n);
        }
    }

    /// Counts committed rows in `m`, and the breaker state committed with them.
    pub(super) fn record(&self, m: &Metrics, source: &str, state: &SourceState) {
        let src = metrics::source(source);
        for (t, n) in &self.events {
            let labels = vec![("source", source.to_owned()), ("event_type", t.to_string())];
            m.events.get_or_create(&labels).inc_by(*n);
        }
        self.record_quarantine(m, source);
        m.breaker_restart_resets
            .get_or_create(&src)
            .inc_by(self.restart_resets);
        if state.breaker.is_some() {
            m.breaker_state
                .get_or_create(&src)
                .set(metrics::breaker_value(state.breaker.as_deref()));
        }
    }

    pub(super) fn add(&mut self, events: &[RiskEvent], quarantine: &[QuarantineRecord]) {
        for e in events {
            match self.events.get_mut(&e.event_type) {
                Some(n) => *n += 1,
                None => {
                    self.events.insert(e.event_type.clone(), 1);
                }
            }
            if &*e.event_type == "circuit_breaker_init"
                && matches!(e.old_state.as_deref(), Some("OPEN" | "HALF_OPEN"))
            {
                self.restart_resets += 1;
            }
        }
        for q in quarantine {
            *self.quarantined.entry(q.reason.code()).or_default() += 1;
        }
    }
}

/// Rows per Parquet row group: bounds the memory a writer holds while it
/// streams a large commit (a backfill's) into its file.
const ROW_GROUP_ROWS: usize = 128 * 1024;

/// A writer for one commit into `table`.
pub(super) fn writer(table: &DeltaTable, uri: &str) -> Result<RecordBatchWriter, SinkError> {
    let props = deltalake::parquet::file::properties::WriterProperties::builder()
        .set_compression(deltalake::parquet::basic::Compression::SNAPPY)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_created_by(format!("risktail {}", env!("CARGO_PKG_VERSION")))
        .build();
    Ok(RecordBatchWriter::for_table(table)
        .map_err(|source| SinkError::Delta {
            table: uri.to_owned(),
            source: Box::new(source),
        })?
        .with_writer_properties(props))
}

/// A lease's epoch app id and the highest epoch the table may show for it
/// (see `lease`): a later claim by another process fences a commit off.
/// Checked before every try, whatever snapshot the try starts from (a
/// retry's is fresh, and may hold that claim).
pub(super) type Fence = Option<(String, u64)>;

/// One commit of rows + txns + metadata. When it loses races to other writers
/// (delta-rs retries 100 times in a tight loop first) it is retried with
/// jittered backoff. After *any* failure (a lost race, a timeout, a 5xx, a
/// connection reset after the store kept the object) the table is reloaded
/// and its `txn` versions say whether this commit landed, so a commit is
/// never made twice; a table that cannot be reloaded then leaves the
/// question to the caller. See [`Fence`].
pub(super) async fn commit_once(
    table: &mut DeltaTable,
    uri: &str,
    txns: &[(String, u64)],
    writer: RecordBatchWriter,
    meta: serde_json::Value,
    metrics: Option<&Metrics>,
    fence: Fence,
) -> Result<u64, SinkError> {
    let started = std::time::Instant::now();
    let fence = fence.as_ref();
    let result = commit_retrying(table, uri, txns, writer, meta, metrics, fence).await;
    if result.is_ok()
        && let Some(m) = metrics
    {
        let labels = metrics::table(uri);
        m.commits.get_or_create(&labels).inc();
        // Present at 0 from the first commit, so a rate() has a start.
        m.commit_conflicts.get_or_create(&labels).inc_by(0);
        m.commit_duration
            .get_or_create(&labels)
            .observe(started.elapsed().as_secs_f64());
        let now = chrono::Utc::now().timestamp_micros() as f64 / 1e6;
        m.last_commit.get_or_create(&labels).set(now);
    }
    result
}

async fn commit_retrying(
    table: &mut DeltaTable,
    uri: &str,
    txns: &[(String, u64)],
    writer: RecordBatchWriter,
    meta: serde_json::Value,
    metrics: Option<&Metrics>,
    fence: Option<&(String, u64)>,
) -> Result<u64, SinkError> {
    let derr = |source: DeltaTableError| SinkError::Delta {
        table: uri.to_owned(),
        source: Box::new(source),
    };
    let now_ms = chrono::Utc::now().timestamp_millis();
    let props = CommitProperties::default()
        .with_application_transactions(
            txns.iter()
                .map(|(app, offset)| {
                    Transaction::new_with_last_update(app, *offset as i64, Some(now_ms))
                })
                .collect(),
        )
        .with_metadata([(txn::COMMIT_INFO_KEY.to_owned(), meta)])
        .with_max_retries(100)
        // delta-rs would list the whole `_delta_log` folder after every
        // commit to delete expired entries; the upkeep does it every
        // COMPACT_EVERY_COMMITS commits instead (upkeep::cleanup_logs).
        .with_cleanup_expired_logs(Some(false));
    let mut writer = writer.with_commit_properties(props);
    let mut attempt = 0;
    loop {
        if let Some((app, highest)) = fence
            && txn_version(table, uri, app).await? > *highest
        {
            // Read as a conflict on the source's own app id, which it is:
            // the caller names the process that claimed the source.
            return Err(concurrent(uri, txns));
        }
        let err = match writer.flush_and_commit(table).await {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        // Whatever failed, the table says whether the commit landed.
        if let Some(v) = landed(table, uri, txns).await? {
            tracing::warn!(table = uri, version = v, error = %err, "commit reported a failure but had landed");
            return Ok(v);
        }
        match err {
            DeltaTableError::Transaction {
                source: TransactionError::CommitConflict(CommitConflictError::ConcurrentTransaction),
            } => return Err(concurrent(uri, txns)),
            // Lost races (other writers' commits won the version, or changed
            // the protocol or metadata under an old snapshot) are retried
            // here from the fresh snapshot `landed` loaded; anything else
            // (I/O, permissions, a full disk, an unreachable store) goes back
            // to the caller at once, whose backoff does not block reading.
            e @ DeltaTableError::Transaction {
                source:
                    TransactionError::MaxCommitAttempts(_)
                    | TransactionError::VersionAlreadyExists(_)
                    | TransactionError::CommitConflict(_),
            } if attempt + 1 < MAX_COMMIT_TRIES => {
                attempt += 1;
                if let Some(m) = metrics {
                    m.commit_conflicts.get_or_create(&metrics::table(uri)).inc();
                }
                tracing::warn!(table = uri, attempt, error = %e, "commit lost a race; retrying");
                let jitter = u64::from(chrono::Utc::now().timestamp_subsec_micros())
                    % (25u64 << attempt.min(6));
                tokio::time::sleep(Duration::from_millis((50u64 << attempt.min(6)) + jitter)).await;
            }
            e => return Err(derr(e)),
        }
    }
}

/// A newer commit carried one of `txns`' app ids.
fn concurrent(uri: &str, txns: &[(String, u64)]) -> SinkError {
    SinkError::ConcurrentWriter {
        table: uri.to_owned(),
        app_id: txns
            .iter()
            .map(|(a, _)| a.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// Reloads `table` and says whether a commit of `txns` is in it: every file
/// offset it carries (app ids `risktail/…`; offsets only grow, while state
/// codes may go down) is at or past the table's. Returns the version then.
/// A table that cannot be reloaded (the store is unreachable) is an error:
/// nothing may be committed before the outcome is known.
async fn landed(
    table: &mut DeltaTable,
    uri: &str,
    txns: &[(String, u64)],
) -> Result<Option<u64>, SinkError> {
    let offsets: Vec<_> = txns
        .iter()
        .filter(|(a, o)| a.starts_with("risktail/") && *o > 0)
        .collect();
    if offsets.is_empty() {
        return Ok(None);
    }
    table
        .update_incremental(None)
        .await
        .map_err(|source| SinkError::Delta {
            table: uri.to_owned(),
            source: Box::new(source),
        })?;
    for (app, offset) in offsets {
        if txn_version(table, uri, app).await? < *offset {
            return Ok(None);
        }
    }
    Ok(Some(table.version().unwrap_or_default()))
}
