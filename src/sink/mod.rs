//! The sink: the only place that writes. Rows of a file go to Delta together
//! with the file's new offset (a `txn` action) and the source's enrichment
//! state (in `commitInfo`), in one commit, so the table alone says how far
//! each file was read and a crash at any moment neither loses nor doubles a row.
//!
//! Two tables, one rule. Quarantine rows are committed first (with the file's
//! offset in *that* table's `txn`), then the events with theirs. After a crash
//! between the two, a restart resumes at the events offset and drops the
//! quarantine rows the quarantine table already holds, so each table gets each
//! row exactly once. A commit that fails is asked about at once: its version
//! read back says whether it landed after all (a lost answer; see `log`).
//! When the store cannot say then, the live source asks again before its
//! next commit
//! (`pipeline::live`), dropping the rows that landed, quarantine rows
//! included when only the quarantine commit went through.
//!
//! About 500 lines: the error enum, the sink's state and the commit of a
//! source's rows with its offsets, state and lease are one unit; opening
//! tables (`table`, `store`), the log and its appends (`log`), a commit's
//! files and metrics (`commit`), the lease (`lease`), history and upkeep have
//! their own modules.

mod commit;
mod history;
pub mod lease;
pub mod lock;
pub mod log;
pub mod read;
pub mod shape;
pub mod store;
pub mod table;
pub mod txn;
pub mod upkeep;

use deltalake::DeltaTableError;
use deltalake::writer::{DeltaWriter, RecordBatchWriter};
use std::collections::HashMap;
use std::time::Duration;

use commit::{Staged, StagedCounts, commit_once, writer};
use log::Log;

use crate::event::batch::{events_batch, quarantine_batch};
use crate::event::schema::{
    EVENT_PARTITION, QUARANTINE_COLUMNS, QUARANTINE_PARTITION, RISK_EVENT_COLUMNS,
};
use crate::event::{QuarantineRecord, RiskEvent};
use crate::metrics::Metrics;
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
    /// Another live process holds the source's lease (see [`lease`]).
    #[error(
        "source {source_name:?} of table {table} is held by {holder} (last heartbeat {age_s} s ago): run one writer per source; a source name must be unique per table (name = \"engine-{{host}}\")"
    )]
    SourceHeld {
        /// The source.
        source_name: String,
        /// The table.
        table: String,
        /// Who holds it (`host:pid`).
        holder: String,
        /// Seconds since its last heartbeat.
        age_s: u64,
    },
    /// This process's lease of a source was taken by another (it stalled
    /// past the lease time): it must stop writing the source.
    #[error(
        "source {source_name:?} of table {table} was claimed by {holder} while this process held it (stalled past the lease time?); stopping its writes"
    )]
    LeaseLost {
        /// The source.
        source_name: String,
        /// The table.
        table: String,
        /// Who holds it now.
        holder: String,
    },
    /// The object store does not honour put-if-absent: writing would let
    /// writers overwrite each other's commits.
    #[error(
        "table {table}: the store accepted a second put-if-absent of the same object (_risktail/ probe): it ignores conditional writes (If-None-Match), so concurrent commits would overwrite each other and rows would vanish; refusing to write. Use a store that honours them (AWS S3, Azure Blob Storage, Google Cloud Storage, MinIO; see docs/OPERATIONS.md) and make sure no proxy strips the header"
    )]
    NoPutIfAbsent {
        /// The table.
        table: String,
    },
    /// The table's protocol asks for features risktail cannot honour when
    /// writing (another tool upgraded it): writing on would break them.
    #[error(
        "table {table} uses Delta features risktail cannot write safely ({detail}); refusing to write. Another tool upgraded the table's protocol (enabling deletion vectors with the Python deltalake package, for one, adds deletionVectors and invariants); the lines not committed stay in the files behind the committed offsets"
    )]
    UnsupportedProtocol {
        /// The table.
        table: String,
        /// What delta-rs said of the features.
        detail: String,
    },
    /// Building the batch failed (a bug: the schema is ours).
    #[error("building a batch: {0}")]
    Arrow(#[from] deltalake::arrow::error::ArrowError),
}

pub use crate::source::offsets::Committed;

/// Runs `attempt` until it succeeds or fails for a reason waiting cannot
/// mend. A sidecar that starts while its table is unreachable (an object
/// store outage, a network not up yet) waits for it, logging each try, rather
/// than exiting; READY=1 is sent only once it has the table. A table with
/// another schema, or a source another process holds, ends the start.
pub fn until_reachable<T>(
    mut attempt: impl FnMut() -> Result<T, SinkError>,
) -> Result<T, SinkError> {
    let mut wait = std::time::Duration::from_millis(500);
    loop {
        match attempt() {
            Ok(v) => return Ok(v),
            Err(e @ (SinkError::Delta { .. } | SinkError::Io { .. })) => {
                tracing::error!(error = %e, retry_in_ms = wait.as_millis() as u64, "cannot open the table yet; retrying");
                std::thread::sleep(wait);
                wait = (wait * 2).min(std::time::Duration::from_secs(30));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Both tables, open.
pub struct DeltaSink {
    events: Log,
    quarantine: Log,
    commits_since_compaction: u32,
    last_vacuum: Option<std::time::Instant>,
    /// Rows written into data files and not committed yet (see [`DeltaSink::stage`]).
    staged: Staged,
    /// The sources whose lease this process holds.
    leases: HashMap<String, lease::Held>,
    metrics: Option<Arc<Metrics>>,
}

/// Compaction is considered after this many commits.
pub const COMPACT_EVERY_COMMITS: u32 = 50;
/// Vacuum runs this often...
pub const VACUUM_EVERY: Duration = Duration::from_secs(24 * 3600);
/// ...and deletes files replaced longer ago than this (Delta's default).
pub const VACUUM_RETENTION_HOURS: i64 = 168;

impl DeltaSink {
    /// Opens (creating if needed) `risk_events` at `events_uri` and
    /// `risk_events_quarantine` at `quarantine_uri`.
    pub async fn open(events_uri: &str, quarantine_uri: &str) -> Result<DeltaSink, SinkError> {
        let (events, quarantine) = open_logs(events_uri, quarantine_uri).await?;
        Ok(DeltaSink {
            events,
            quarantine,
            commits_since_compaction: 0,
            last_vacuum: None,
            staged: Staged::default(),
            leases: HashMap::new(),
            metrics: None,
        })
    }

    /// Proves, before the first write of a writer (`run`, `backfill`), that
    /// an object store behind either table honours put-if-absent (see
    /// [`store::prove_put_if_absent`]); readers such as `status` skip it.
    pub async fn prove_writes(&self) -> Result<(), SinkError> {
        for log in [&self.events, &self.quarantine] {
            if !store::is_local(log.uri()) {
                prove_put_if_absent(log).await?;
            }
        }
        Ok(())
    }

    /// Counts commits and committed rows in `metrics` from now on.
    pub fn set_metrics(&mut self, metrics: Arc<Metrics>) {
        self.metrics = Some(metrics);
    }

    /// The events table's version (the newest this process has seen).
    pub fn version(&self) -> u64 {
        self.events.version()
    }

    /// How far a file of a source has been committed in each table.
    pub async fn committed(&self, source: &str, file: FileId) -> Result<Committed, SinkError> {
        let app = txn::app_id(source, file);
        Ok(Committed {
            events: self.events.txn_version(&app).await?,
            quarantine: self.quarantine.txn_version(&app).await?,
        })
    }

    /// The enrichment state last committed for a source (newest commit first).
    /// Read from the state `txn`s (kept by checkpoints forever); a state a
    /// user's pattern invented is only in `commitInfo`, which is looked up in
    /// the history newest first.
    pub async fn source_state(&mut self, source: &str) -> Result<Option<SourceState>, SinkError> {
        let code = self
            .events
            .txn_version(&txn::breaker_app_id(source))
            .await?;
        let micros = self
            .events
            .txn_version(&txn::last_time_app_id(source))
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
        if !quarantine.is_empty() {
            let batch = quarantine_batch(quarantine)?;
            stage_into(&mut self.staged.quarantine, &self.quarantine, batch).await?;
        }
        if !events.is_empty() {
            let batch = events_batch(events)?;
            stage_into(&mut self.staged.events, &self.events, batch).await?;
        }
        self.staged.rows += events.len() + quarantine.len();
        if self.metrics.is_some() {
            self.staged.counts.add(events, quarantine);
        }
        Ok(())
    }

    /// Reloads both tables (to ask what a failed commit left in them).
    pub async fn refresh(&mut self) -> Result<(), SinkError> {
        self.events.reload().await?;
        self.quarantine.reload().await?;
        Ok(())
    }

    /// Counts rows that a commit reported as failed had landed (the caller
    /// found them in the table) as committed, in the metrics.
    pub fn record_landed(
        &self,
        source: &str,
        events: &[RiskEvent],
        quarantine: &[QuarantineRecord],
        state: &SourceState,
    ) {
        if let Some(m) = &self.metrics {
            let mut counts = StagedCounts::default();
            counts.add(events, quarantine);
            counts.record(m, source, state);
        }
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
        let started = std::time::Instant::now();
        let result = self
            .commit_staged(source, offsets, events, quarantine, state)
            .await;
        let result = self.explain_conflict(source, result).await;
        let staged = std::mem::take(&mut self.staged);
        if let Ok(version) = &result {
            tracing::debug!(
                source,
                version,
                events = events.len(),
                quarantined = quarantine.len(),
                rows = staged.rows,
                files = offsets.len(),
                ms = started.elapsed().as_millis() as u64,
                "commit landed"
            );
            self.lease_renewed(source);
            if let Some(m) = &self.metrics {
                staged.counts.record(m, source, state);
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
        let held = self.leases.get(source).cloned();
        if let Some(h) = &held {
            let now = chrono::Utc::now().timestamp_millis().max(0) as u64;
            state_txns.extend(h.txns(source, now));
        }
        let files: serde_json::Map<String, serde_json::Value> = offsets
            .iter()
            .map(|(f, o)| (f.to_string(), serde_json::json!(o)))
            .collect();
        if let Some(w) = self.staged.quarantine.take() {
            // The quarantine table holds no lease: the events table says
            // whether this process still holds the source.
            self.check_lease(source).await?;
            let meta = serde_json::json!({ "source": source, "offsets": files });
            let m = self.metrics.as_deref();
            commit_once(&mut self.quarantine, &txns, Some(w), meta, m, None).await?;
        }
        let mut meta = serde_json::json!({
            "source": source,
            "offsets": files,
            "state": state,
        });
        if let Some(h) = &held {
            meta["holder"] = serde_json::json!(h.holder);
        }
        let m = self.metrics.as_deref();
        let events = self.staged.events.take();
        let fence = self.fence(source);
        let v = commit_once(&mut self.events, &state_txns, events, meta, m, fence).await?;
        self.commits_since_compaction += 1;
        Ok(v)
    }

    /// Keeps commit latency flat: every [`COMPACT_EVERY_COMMITS`] commits the
    /// partitions with many small files are compacted and expired log
    /// entries deleted (not after every commit, as delta-rs would), and once a day files
    /// replaced more than a week ago are vacuumed. A checkpoint is written
    /// after each of our commits that makes a multiple of the table's
    /// `checkpointInterval` versions (49, 99, …, as delta-rs's own commit
    /// would). Returns what
    /// compaction did. Done here, in line (tests, examples); the daemon
    /// hands [`DeltaSink::upkeep_due`] to an [`upkeep::Worker`] instead.
    pub async fn upkeep(&mut self) -> Result<Option<upkeep::CompactReport>, SinkError> {
        let due = self.upkeep_due();
        if !due.any() {
            return Ok(None);
        }
        due.run(&mut self.events, &mut self.quarantine).await
    }

    /// What upkeep the commits so far call for (see [`DeltaSink::upkeep`]),
    /// counted as done: the daemon hands it to its [`upkeep::Worker`].
    pub fn upkeep_due(&mut self) -> upkeep::Due {
        let compact = self.commits_since_compaction >= COMPACT_EVERY_COMMITS;
        if compact {
            self.commits_since_compaction = 0;
        }
        let vacuum = self.last_vacuum.is_none_or(|t| t.elapsed() >= VACUUM_EVERY);
        if vacuum {
            self.last_vacuum = Some(std::time::Instant::now());
        }
        upkeep::Due {
            checkpoint: (
                self.events.take_checkpoint_due(),
                self.quarantine.take_checkpoint_due(),
            ),
            compact,
            vacuum,
        }
    }
}

/// Opens (creating if needed) `risk_events` at `events_uri` and
/// `risk_events_quarantine` at `quarantine_uri`.
async fn open_logs(events_uri: &str, quarantine_uri: &str) -> Result<(Log, Log), SinkError> {
    let events = Log::open(
        events_uri,
        "risk_events",
        &RISK_EVENT_COLUMNS,
        EVENT_PARTITION,
    )
    .await?;
    let quarantine = Log::open(
        quarantine_uri,
        "risk_events_quarantine",
        &QUARANTINE_COLUMNS,
        QUARANTINE_PARTITION,
    )
    .await?;
    Ok((events, quarantine))
}

/// Refuses a table on a store that ignores put-if-absent (see
/// [`store::prove_put_if_absent`]).
async fn prove_put_if_absent(log: &Log) -> Result<(), SinkError> {
    let table = log.uri().to_owned();
    match store::prove_put_if_absent(log.table()).await {
        Ok(store::Probe::Honoured) => Ok(()),
        Ok(store::Probe::Ignored) => Err(SinkError::NoPutIfAbsent { table }),
        Err(e) => Err(SinkError::Delta {
            table,
            source: Box::new(e),
        }),
    }
}

/// Writes `batch` into the open writer of `slot`, opening one for `log` first.
async fn stage_into(
    slot: &mut Option<RecordBatchWriter>,
    log: &Log,
    batch: deltalake::arrow::record_batch::RecordBatch,
) -> Result<(), SinkError> {
    let w = match slot {
        Some(w) => w,
        None => slot.insert(writer(log)?),
    };
    w.write(batch).await.map_err(|source| SinkError::Delta {
        table: log.uri().to_owned(),
        source: Box::new(source),
    })
}

impl crate::source::offsets::Offsets for DeltaSink {
    type Error = SinkError;

    async fn committed(&self, source: &str, file: FileId) -> Result<Committed, SinkError> {
        DeltaSink::committed(self, source, file).await
    }
}
