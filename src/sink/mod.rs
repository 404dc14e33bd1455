//! The sink: the only place that writes. Rows of a file go to Delta together
//! with the file's new offset (a `txn` action) and the source's enrichment
//! state (in `commitInfo`), in one commit, so the table alone says how far
//! each file was read and a crash at any moment neither loses nor doubles a row.
//!
//! Two tables, one rule. Quarantine rows are committed first (with the file's
//! offset in *that* table's `txn`), then the events with theirs. After a crash
//! between the two, a restart resumes at the events offset and drops the
//! quarantine rows the quarantine table already holds, so each table gets each
//! row exactly once.

pub mod lock;
pub mod read;
pub mod table;
pub mod txn;
pub mod upkeep;

use deltalake::kernel::Transaction;
use deltalake::kernel::transaction::{CommitConflictError, CommitProperties, TransactionError};
use deltalake::writer::{DeltaWriter, RecordBatchWriter};
use deltalake::{DeltaTable, DeltaTableError};
use futures::TryStreamExt;
use std::time::Duration;

use crate::event::batch::{events_batch, quarantine_batch};
use crate::event::schema::{
    EVENT_PARTITION, QUARANTINE_COLUMNS, QUARANTINE_PARTITION, RISK_EVENT_COLUMNS,
};
use crate::event::{QuarantineRecord, RiskEvent};
use crate::metrics::{self, Metrics};
use crate::parse::SourceState;
use crate::source::fingerprint::FileId;
use std::sync::Arc;

/// What can go wrong writing.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// Delta failed.
    #[error("table {table}: {source}")]
    Delta {
        /// The table.
        table: String,
        /// The error.
        source: Box<DeltaTableError>,
    },
    /// A local folder could not be made.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// The table exists with another schema.
    #[error("table {table} does not have risktail's schema; refusing to write to it ({})", diffs.join("; "))]
    SchemaMismatch {
        /// The table.
        table: String,
        /// Each difference.
        diffs: Vec<String>,
    },
    /// Another writer committed this file's offsets.
    #[error(
        "table {table}: another writer is ingesting {app_id} (a concurrent commit carried the same offsets id); run one writer per source"
    )]
    ConcurrentWriter {
        /// The table.
        table: String,
        /// The app id both carried.
        app_id: String,
    },
    /// Building the batch failed (a bug: the schema is ours).
    #[error("building a batch: {0}")]
    Arrow(#[from] deltalake::arrow::error::ArrowError),
}

pub use crate::source::offsets::Committed;

/// Both tables, open.
pub struct DeltaSink {
    events: DeltaTable,
    quarantine: DeltaTable,
    events_uri: String,
    quarantine_uri: String,
    commits_since_compaction: u32,
    last_vacuum: Option<std::time::Instant>,
    /// Rows written into data files and not committed yet (see [`DeltaSink::stage`]).
    staged: Staged,
    metrics: Option<Arc<Metrics>>,
}

/// Open writers holding rows for the next commit.
#[derive(Default)]
struct Staged {
    events: Option<RecordBatchWriter>,
    quarantine: Option<RecordBatchWriter>,
    rows: usize,
    /// What the staged rows are, for the metrics once they are committed.
    counts: StagedCounts,
}

#[derive(Default)]
struct StagedCounts {
    events: std::collections::HashMap<Arc<str>, u64>,
    restart_resets: u64,
    quarantined: std::collections::HashMap<&'static str, u64>,
}

impl StagedCounts {
    fn add(&mut self, events: &[RiskEvent], quarantine: &[QuarantineRecord]) {
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
fn writer(table: &DeltaTable, uri: &str) -> Result<RecordBatchWriter, SinkError> {
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

/// Compaction is considered after this many commits.
pub const COMPACT_EVERY_COMMITS: u32 = 50;
/// Vacuum runs this often...
pub const VACUUM_EVERY: Duration = Duration::from_secs(24 * 3600);
/// ...and deletes files replaced longer ago than this (Delta's default).
pub const VACUUM_RETENTION_HOURS: i64 = 168;

const MAX_COMMIT_TRIES: u32 = 8;

impl DeltaSink {
    /// Opens (creating if needed) `risk_events` at `events_uri` and
    /// `risk_events_quarantine` at `quarantine_uri`.
    pub async fn open(events_uri: &str, quarantine_uri: &str) -> Result<DeltaSink, SinkError> {
        let events = table::open_or_create(
            events_uri,
            "risk_events",
            &RISK_EVENT_COLUMNS,
            EVENT_PARTITION,
        )
        .await?;
        let quarantine = table::open_or_create(
            quarantine_uri,
            "risk_events_quarantine",
            &QUARANTINE_COLUMNS,
            QUARANTINE_PARTITION,
        )
        .await?;
        Ok(DeltaSink {
            events,
            quarantine,
            events_uri: events_uri.to_owned(),
            quarantine_uri: quarantine_uri.to_owned(),
            commits_since_compaction: 0,
            last_vacuum: None,
            staged: Staged::default(),
            metrics: None,
        })
    }

    /// Counts commits and committed rows in `metrics` from now on.
    pub fn set_metrics(&mut self, metrics: Arc<Metrics>) {
        self.metrics = Some(metrics);
    }

    /// The events table's version.
    pub fn version(&self) -> Option<u64> {
        self.events.version()
    }

    /// How far a file of a source has been committed in each table.
    pub async fn committed(&self, source: &str, file: FileId) -> Result<Committed, SinkError> {
        let app = txn::app_id(source, file);
        Ok(Committed {
            events: txn_version(&self.events, &self.events_uri, &app).await?,
            quarantine: txn_version(&self.quarantine, &self.quarantine_uri, &app).await?,
        })
    }

    /// The enrichment state last committed for a source (newest commit first).
    /// Read from the state `txn`s (kept by checkpoints forever); a state a
    /// user's pattern invented is only in `commitInfo`, which is looked up in
    /// the history newest first.
    pub async fn source_state(&self, source: &str) -> Result<Option<SourceState>, SinkError> {
        let code =
            txn_version(&self.events, &self.events_uri, &txn::breaker_app_id(source)).await?;
        let micros = txn_version(
            &self.events,
            &self.events_uri,
            &txn::last_time_app_id(source),
        )
        .await?;
        if code > 0 || micros > 0 {
            return Ok(Some(SourceState {
                breaker: txn::breaker_from_code(code as i64),
                last_time: chrono::DateTime::from_timestamp_micros(micros as i64)
                    .filter(|_| micros > 0),
            }));
        }
        self.state_from_history(source).await
    }

    /// Looks at the newest commits first and widens the window only when
    /// needed: the newest commit is almost always this source's own.
    async fn state_from_history(&self, source: &str) -> Result<Option<SourceState>, SinkError> {
        let mut found = None;
        self.newest_first(|info| {
            let Some(rec) = risktail_record(info, source) else {
                return false;
            };
            match rec.get("state") {
                Some(state) => {
                    found = serde_json::from_value(state.clone()).ok();
                    true
                }
                None => false,
            }
        })
        .await?;
        Ok(found)
    }

    /// When the events table was last committed (by anyone), and when each
    /// of `sources` last committed, from the commits' `commitInfo`, newest
    /// first (milliseconds since the epoch). Reads back only as far as needed.
    pub async fn last_commits(
        &self,
        sources: &[&str],
    ) -> Result<(Option<i64>, Vec<Option<i64>>), SinkError> {
        let mut newest = None;
        let mut per_source = vec![None; sources.len()];
        self.newest_first(|info| {
            newest = newest.or(info.timestamp);
            for (i, s) in sources.iter().enumerate() {
                if per_source[i].is_none() && risktail_record(info, s).is_some() {
                    per_source[i] = info.timestamp;
                }
            }
            per_source.iter().all(Option::is_some)
        })
        .await?;
        Ok((newest, per_source))
    }

    /// Calls `visit` on the commits newest first until it returns true,
    /// widening the window of history read (50, 1000, all) only when needed.
    async fn newest_first(
        &self,
        mut visit: impl FnMut(&deltalake::kernel::CommitInfo) -> bool,
    ) -> Result<(), SinkError> {
        let derr = |e| SinkError::Delta {
            table: self.events_uri.clone(),
            source: Box::new(e),
        };
        let total = self.events.version().map_or(0, |v| v as usize + 1);
        let mut seen = 0;
        for limit in [50usize, 1000, usize::MAX] {
            let infos: Vec<_> = self
                .events
                .history(if limit >= total { None } else { Some(limit) })
                .try_collect()
                .await
                .map_err(derr)?;
            for info in infos.iter().skip(seen) {
                if visit(info) {
                    return Ok(());
                }
            }
            seen = infos.len();
            if limit >= total {
                break;
            }
        }
        Ok(())
    }

    /// Writes rows into the data files of the next commit without committing
    /// them: a backfill stages batch after batch and commits once per many
    /// (fewer, larger files and commits), holding only a row group in memory.
    /// Nothing staged is visible or counted as read until [`DeltaSink::commit`]
    /// lands; a failed commit discards it (the offsets say where to re-read).
    pub async fn stage(
        &mut self,
        events: &[RiskEvent],
        quarantine: &[QuarantineRecord],
    ) -> Result<(), SinkError> {
        let derr = |uri: &str| {
            let uri = uri.to_owned();
            move |source| SinkError::Delta {
                table: uri,
                source: Box::new(source),
            }
        };
        if !quarantine.is_empty() {
            let w = match &mut self.staged.quarantine {
                Some(w) => w,
                None => self
                    .staged
                    .quarantine
                    .insert(writer(&self.quarantine, &self.quarantine_uri)?),
            };
            w.write(quarantine_batch(quarantine)?)
                .await
                .map_err(derr(&self.quarantine_uri))?;
        }
        if !events.is_empty() {
            let w = match &mut self.staged.events {
                Some(w) => w,
                None => self
                    .staged
                    .events
                    .insert(writer(&self.events, &self.events_uri)?),
            };
            w.write(events_batch(events)?)
                .await
                .map_err(derr(&self.events_uri))?;
        }
        self.staged.rows += events.len() + quarantine.len();
        if self.metrics.is_some() {
            self.staged.counts.add(events, quarantine);
        }
        Ok(())
    }

    /// Forgets the staged rows (their files stay unreferenced until vacuum).
    pub fn discard_staged(&mut self) {
        self.staged = Staged::default();
    }

    /// Rows staged and not committed.
    pub fn staged_rows(&self) -> usize {
        self.staged.rows
    }

    /// Commits a source's rows (and any staged before) with the offsets its
    /// files reached: quarantine rows first, then events with the offsets and
    /// the source state, all of the source's files in one commit so the state
    /// matches every offset. Empty rows still commit the offsets and state.
    /// On failure nothing staged survives: the caller keeps or re-reads rows.
    pub async fn commit(
        &mut self,
        source: &str,
        offsets: &[(FileId, u64)],
        events: &[RiskEvent],
        quarantine: &[QuarantineRecord],
        state: &SourceState,
    ) -> Result<u64, SinkError> {
        let result = self
            .commit_staged(source, offsets, events, quarantine, state)
            .await;
        let staged = std::mem::take(&mut self.staged);
        if result.is_ok()
            && let Some(m) = &self.metrics
        {
            let src = metrics::source(source);
            for (t, n) in &staged.counts.events {
                let labels = vec![("source", source.to_owned()), ("event_type", t.to_string())];
                m.events.get_or_create(&labels).inc_by(*n);
            }
            for (r, n) in &staged.counts.quarantined {
                let labels = vec![("source", source.to_owned()), ("reason", (*r).to_owned())];
                m.quarantined.get_or_create(&labels).inc_by(*n);
            }
            m.breaker_restart_resets
                .get_or_create(&src)
                .inc_by(staged.counts.restart_resets);
            if state.breaker.is_some() {
                m.breaker_state
                    .get_or_create(&src)
                    .set(metrics::breaker_value(state.breaker.as_deref()));
            }
        }
        result
    }

    async fn commit_staged(
        &mut self,
        source: &str,
        offsets: &[(FileId, u64)],
        events: &[RiskEvent],
        quarantine: &[QuarantineRecord],
        state: &SourceState,
    ) -> Result<u64, SinkError> {
        self.stage(events, quarantine).await?;
        let txns: Vec<(String, u64)> = offsets
            .iter()
            .map(|(f, o)| (txn::app_id(source, *f), *o))
            .collect();
        let mut state_txns = txns.clone();
        if state.breaker.is_some() {
            let code = txn::breaker_code(state.breaker.as_deref());
            state_txns.push((txn::breaker_app_id(source), code as u64));
        }
        if let Some(t) = state.last_time
            && t.timestamp_micros() > 0
        {
            state_txns.push((txn::last_time_app_id(source), t.timestamp_micros() as u64));
        }
        let files: serde_json::Map<String, serde_json::Value> = offsets
            .iter()
            .map(|(f, o)| (f.to_string(), serde_json::json!(o)))
            .collect();
        if let Some(w) = self.staged.quarantine.take() {
            let meta = serde_json::json!({ "source": source, "offsets": files });
            let m = self.metrics.as_deref();
            commit_once(
                &mut self.quarantine,
                &self.quarantine_uri,
                &txns,
                w,
                meta,
                m,
            )
            .await?;
        }
        let w = match self.staged.events.take() {
            Some(w) => w,
            None => writer(&self.events, &self.events_uri)?,
        };
        let meta = serde_json::json!({
            "source": source,
            "offsets": files,
            "state": state,
        });
        let m = self.metrics.as_deref();
        let v = commit_once(&mut self.events, &self.events_uri, &state_txns, w, meta, m).await?;
        self.commits_since_compaction += 1;
        Ok(v)
    }

    /// Keeps commit latency flat: every [`COMPACT_EVERY_COMMITS`] commits the
    /// partitions with many small files are compacted, and once a day files
    /// replaced more than a week ago are vacuumed. Checkpoints come from the
    /// table's `checkpointInterval` on ordinary commits. Returns what compaction did.
    pub async fn upkeep(&mut self) -> Result<Option<upkeep::CompactReport>, SinkError> {
        let mut report = None;
        if self.commits_since_compaction >= COMPACT_EVERY_COMMITS {
            self.commits_since_compaction = 0;
            let r = upkeep::compact(
                &mut self.events,
                &self.events_uri,
                &RISK_EVENT_COLUMNS,
                EVENT_PARTITION,
            )
            .await?;
            let q = upkeep::compact(
                &mut self.quarantine,
                &self.quarantine_uri,
                &QUARANTINE_COLUMNS,
                QUARANTINE_PARTITION,
            )
            .await?;
            if r.files_removed + q.files_removed > 0 {
                tracing::info!(
                    files_removed = r.files_removed + q.files_removed,
                    files_added = r.files_added + q.files_added,
                    rows = r.rows + q.rows,
                    ms = (r.millis + q.millis) as u64,
                    "compacted small files"
                );
            }
            report = Some(r);
        }
        if self.last_vacuum.is_none_or(|t| t.elapsed() >= VACUUM_EVERY) {
            self.last_vacuum = Some(std::time::Instant::now());
            let retention = chrono::Duration::hours(VACUUM_RETENTION_HOURS);
            let n = upkeep::vacuum(&mut self.events, &self.events_uri, retention).await?
                + upkeep::vacuum(&mut self.quarantine, &self.quarantine_uri, retention).await?;
            if n > 0 {
                tracing::info!(files_deleted = n, "vacuumed files replaced over a week ago");
            }
        }
        Ok(report)
    }
}

/// risktail's record in a commit of `source`, if the commit is one.
fn risktail_record<'a>(
    info: &'a deltalake::kernel::CommitInfo,
    source: &str,
) -> Option<&'a serde_json::Value> {
    let rec = info.info.get(txn::COMMIT_INFO_KEY)?;
    (rec.get("source").and_then(|s| s.as_str()) == Some(source)).then_some(rec)
}

impl crate::source::offsets::Offsets for DeltaSink {
    type Error = SinkError;

    async fn committed(&self, source: &str, file: FileId) -> Result<Committed, SinkError> {
        DeltaSink::committed(self, source, file).await
    }
}

async fn txn_version(table: &DeltaTable, uri: &str, app: &str) -> Result<u64, SinkError> {
    let snapshot = table.snapshot().map_err(|e| SinkError::Delta {
        table: uri.to_owned(),
        source: Box::new(e),
    })?;
    let v = snapshot
        .transaction_version(table.log_store().as_ref(), app)
        .await
        .map_err(|e| SinkError::Delta {
            table: uri.to_owned(),
            source: Box::new(e),
        })?;
    Ok(v.map_or(0, |v| v.max(0) as u64))
}

/// One commit of rows + txns + metadata. When it loses races to other writers
/// (delta-rs retries 100 times in a tight loop first) it is retried with
/// jittered backoff; before each retry the txns are re-read, so a commit that
/// did land is not made twice.
async fn commit_once(
    table: &mut DeltaTable,
    uri: &str,
    txns: &[(String, u64)],
    writer: RecordBatchWriter,
    meta: serde_json::Value,
    metrics: Option<&Metrics>,
) -> Result<u64, SinkError> {
    let started = std::time::Instant::now();
    let result = commit_retrying(table, uri, txns, writer, meta, metrics).await;
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
        .with_max_retries(100);
    let mut writer = writer.with_commit_properties(props);
    let mut attempt = 0;
    loop {
        match writer.flush_and_commit(table).await {
            Ok(v) => return Ok(v),
            Err(DeltaTableError::Transaction {
                source: TransactionError::CommitConflict(CommitConflictError::ConcurrentTransaction),
            }) => {
                return Err(SinkError::ConcurrentWriter {
                    table: uri.to_owned(),
                    app_id: txns
                        .iter()
                        .map(|(a, _)| a.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
            // Only lost races are retried here (other writers' commits won the
            // version): anything else (I/O, permissions, a full disk) goes back
            // to the caller at once, whose backoff does not block reading.
            Err(
                e @ DeltaTableError::Transaction {
                    source:
                        TransactionError::MaxCommitAttempts(_)
                        | TransactionError::VersionAlreadyExists(_),
                },
            ) if attempt + 1 < MAX_COMMIT_TRIES => {
                attempt += 1;
                if let Some(m) = metrics {
                    m.commit_conflicts.get_or_create(&metrics::table(uri)).inc();
                }
                tracing::warn!(table = uri, attempt, error = %e, "commit failed; retrying");
                let jitter = u64::from(chrono::Utc::now().timestamp_subsec_micros() % 100);
                tokio::time::sleep(Duration::from_millis((50u64 << attempt.min(6)) + jitter)).await;
                table.update_incremental(None).await.map_err(derr)?;
                // Only file offsets only grow; state codes may go down.
                let offsets: Vec<_> = txns
                    .iter()
                    .filter(|(a, _)| a.starts_with("risktail/"))
                    .collect();
                let mut landed = !offsets.is_empty();
                for (app, offset) in offsets {
                    landed &= *offset > 0 && txn_version(table, uri, app).await? >= *offset;
                }
                if landed {
                    return Ok(table.version().unwrap_or_default());
                }
            }
            Err(e) => return Err(derr(e)),
        }
    }
}
