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
//! The steps of a commit, top down: [`DeltaSink::commit`] (a source's rows
//! and offsets, both tables) → `commit_tables` (quarantine, then events) →
//! `commit::upload_and_append` (one table: data files uploaded, then the
//! commit) → `DeltaLog::append` (the commit JSON put at the
//! next version). Beside them: opening tables (`table`, `store`), the lease
//! (`lease`), history (`history`), upkeep (`upkeep`), reads (`read`) and the
//! log's shape (`shape`); every module's error is [`SinkError`] (`error`).

mod commit;
pub use commit::writer_properties;
pub mod delta_log;
mod error;
mod history;
pub mod lease;
pub mod lock;
pub mod log_names;
pub mod read;
pub mod shape;
pub mod store;
pub mod table;
pub mod txn;
pub mod txn_index;
pub mod upkeep;
pub mod write_pieces;

use delta_kernel::expressions::Scalar;
use deltalake::arrow::array::{Array, AsArray};
use deltalake::arrow::datatypes::Date32Type;
use deltalake::arrow::record_batch::RecordBatch;
use deltalake::writer::{DeltaWriter, RecordBatchWriter, WriteMode};
use indexmap::IndexMap;
use std::time::Duration;

pub use commit::STAGED_DAYS;
use commit::{Staged, StagedCounts, upload_and_append, writer};
use delta_log::DeltaLog;
pub use error::{SinkError, until_reachable};

use crate::event::SourceState;
use crate::event::batch::{events_batch, quarantine_batch};
use crate::event::schema::{
    EVENT_PARTITION, QUARANTINE_COLUMNS, QUARANTINE_PARTITION, RISK_EVENT_COLUMNS,
};
use crate::event::{EventRows, QuarantineRecord};
use crate::metrics::Metrics;
use crate::source::fingerprint::FileId;
use std::collections::HashMap;
use std::sync::Arc;

pub use crate::source::offsets::Committed;

/// Both tables, open.
pub struct DeltaSink {
    events: DeltaLog,
    quarantine: DeltaLog,
    commits_since_compaction: u32,
    last_vacuum: Option<std::time::Instant>,
    /// Rows written into data files and not committed yet (see [`DeltaSink::stage`]).
    staged: Staged,
    /// The sources whose lease this process holds.
    leases: lease::Leases,
    /// Files of each source placed by no evidence, marked in the source's
    /// next commit (see [`txn::undecided_app_id`]).
    undecided: HashMap<String, Vec<FileId>>,
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
    ///
    /// Every `txn` of the quarantine table is read at once (see
    /// [`DeltaSink::know_every_txn`]; the events table's, by the claim of a
    /// source that follows): a start looks up the offsets of every file on
    /// disk, each a log replay on its own (two minutes for 100 rotated
    /// files on S3).
    pub async fn open(events_uri: &str, quarantine_uri: &str) -> Result<DeltaSink, SinkError> {
        let (events, mut quarantine) = open_logs(events_uri, quarantine_uri).await?;
        quarantine.know_every_txn().await?;
        Ok(DeltaSink::on(events, quarantine))
    }

    /// Opens both tables for a reader (`status`): never creates them;
    /// [`SinkError::NoTable`] names the one that is not there.
    pub async fn open_existing(
        events_uri: &str,
        quarantine_uri: &str,
    ) -> Result<DeltaSink, SinkError> {
        let events =
            DeltaLog::open_existing(events_uri, &RISK_EVENT_COLUMNS, EVENT_PARTITION).await?;
        let quarantine =
            DeltaLog::open_existing(quarantine_uri, &QUARANTINE_COLUMNS, QUARANTINE_PARTITION)
                .await?;
        Ok(DeltaSink::on(events, quarantine))
    }

    fn on(events: DeltaLog, quarantine: DeltaLog) -> DeltaSink {
        DeltaSink {
            events,
            quarantine,
            commits_since_compaction: 0,
            last_vacuum: None,
            staged: Staged::default(),
            leases: lease::Leases::default(),
            undecided: HashMap::new(),
            metrics: None,
        }
    }

    /// Readies both tables for the first write of a writer (`run`,
    /// `backfill`); readers such as `status` skip it: proves that an object
    /// store behind either table honours put-if-absent (see
    /// [`store::prove_put_if_absent`]), then raises an earlier release's
    /// default log retention (see `table::raise_old_retention`).
    pub async fn prove_writes(&mut self) -> Result<(), SinkError> {
        for log in [&mut self.events, &mut self.quarantine] {
            if !store::is_local(log.uri()) {
                prove_put_if_absent(log).await?;
            }
            log.raise_old_retention().await?;
        }
        Ok(())
    }

    /// Who wrote to the events table within `within` without knowing the
    /// tables' shape of this release (see `history::earlier_writers`).
    pub async fn earlier_writers(&mut self, within: Duration) -> Result<Vec<String>, SinkError> {
        history::earlier_writers(&mut self.events, within).await
    }

    /// Adds to both tables the columns of a later release they lack
    /// (`schema::ADDED_LATER`): (table, column) for each added.
    pub async fn add_missing_columns(&mut self) -> Result<Vec<(String, &'static str)>, SinkError> {
        let mut added = Vec::new();
        for log in [&mut self.events, &mut self.quarantine] {
            for c in log.add_missing_columns().await? {
                added.push((log.uri().to_owned(), c));
            }
        }
        Ok(added)
    }

    /// Counts commits and committed rows in `metrics` from now on.
    pub fn set_metrics(&mut self, metrics: Arc<Metrics>) {
        self.metrics = Some(metrics);
    }

    /// The events table's version (the newest this process has seen).
    pub fn version(&self) -> u64 {
        self.events.version()
    }

    /// Reads every `txn` of both tables in one pass over each log, so that
    /// the lookups that follow ([`DeltaSink::committed`],
    /// [`DeltaSink::is_undecided`]) cost nothing: for a reader that asks
    /// about many files at once (`status`, a start). Until the next reload;
    /// where a log is not one that pass reads exactly, lookups go to the
    /// kernel one by one.
    pub async fn know_every_txn(&mut self) -> Result<(), SinkError> {
        self.events.know_every_txn().await?;
        self.quarantine.know_every_txn().await
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
                ..SourceState::default()
            }));
        }
        history::state_from_history(&mut self.events, source).await
    }

    /// When the events table was last committed (by anyone), and when each
    /// of `sources` last committed (milliseconds since the epoch).
    pub async fn last_commits(
        &mut self,
        sources: &[&str],
    ) -> Result<(Option<i64>, Vec<Option<i64>>), SinkError> {
        history::last_commits(&mut self.events, sources).await
    }

    /// Takes the lease of `source` for `holder`, or refuses naming the
    /// process that holds it (see [`lease`]). `at_once`: the claim is a
    /// commit of its own now (the daemon); otherwise it rides in the first
    /// commit of rows, so a backfill with nothing to add writes nothing.
    pub async fn claim(
        &mut self,
        source: &str,
        holder: &lease::Holder,
        lease: Duration,
        at_once: bool,
    ) -> Result<(), SinkError> {
        let m = self.metrics.clone();
        self.leases
            .claim(
                &mut self.events,
                m.as_deref(),
                source,
                holder,
                lease,
                at_once,
            )
            .await
    }

    /// Renews the lease of `source` with a commit of its own when no commit
    /// has renewed it for `every` (an idle daemon).
    pub async fn heartbeat(&mut self, source: &str, every: Duration) -> Result<(), SinkError> {
        let m = self.metrics.clone();
        self.leases
            .heartbeat(&mut self.events, m.as_deref(), source, every)
            .await
    }

    /// Marks a file of `source` as placed by no evidence (its first record
    /// inside the repeated autumn hour, nothing before it): the source's
    /// next commit records it, for `status` and the metrics.
    pub fn note_undecided(&mut self, source: &str, file: FileId) {
        self.undecided
            .entry(source.to_owned())
            .or_default()
            .push(file);
    }

    /// Whether a file of `source` was stored by the rule for an undecided
    /// place (see [`DeltaSink::note_undecided`]).
    pub async fn is_undecided(&self, source: &str, file: FileId) -> Result<bool, SinkError> {
        Ok(self
            .events
            .txn_version(&txn::undecided_app_id(source, file))
            .await?
            > 0)
    }

    /// Sets `risktail_undecided_files{source}` (when metrics are on).
    pub fn report_undecided(&self, source: &str, files: usize) {
        if let Some(m) = &self.metrics {
            m.undecided_files
                .get_or_create(&crate::metrics::source(source))
                .set(files as i64);
        }
    }

    /// Gives the lease of `source` up (a clean exit).
    pub async fn release(&mut self, source: &str) -> Result<(), SinkError> {
        let m = self.metrics.clone();
        self.leases
            .release(&mut self.events, m.as_deref(), source)
            .await
    }

    /// Writes rows into the data files of the next commit without committing
    /// them: a backfill stages batch after batch and commits once per many
    /// (fewer, larger files and commits), holding only a row group in memory.
    /// Nothing staged is visible or counted as read until [`DeltaSink::commit`]
    /// lands; a failed commit discards it (the offsets say where to re-read).
    pub async fn stage(
        &mut self,
        events: &EventRows,
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
        self.staged
            .days
            .extend(events.iter().map(|e| e.event_date()));
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
        events: &EventRows,
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

    /// Whether staging `events` too would hold more than [`STAGED_DAYS`]
    /// partitions open: then they go with a commit instead.
    pub fn stage_would_exceed_days(&self, events: &EventRows) -> bool {
        let mut days = self.staged.days.clone();
        days.extend(events.iter().map(|e| e.event_date()));
        days.len() > STAGED_DAYS
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
        events: &EventRows,
        quarantine: &[QuarantineRecord],
        state: &SourceState,
    ) -> Result<u64, SinkError> {
        let started = std::time::Instant::now();
        let result = self
            .commit_tables(source, offsets, events, quarantine, state)
            .await;
        let result = self
            .leases
            .explain_conflict(&mut self.events, source, result)
            .await;
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
            self.leases.renewed(source);
            if let Some(m) = &self.metrics {
                staged.counts.record(m, source, state);
            }
        }
        result
    }

    /// The two appends of a commit: the quarantine table's (its rows and the
    /// files' offsets), then the events table's (rows, offsets, the source
    /// state and the lease), each through [`upload_and_append`].
    async fn commit_tables(
        &mut self,
        source: &str,
        offsets: &[(FileId, u64)],
        events: &EventRows,
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
        for f in self.undecided.remove(source).unwrap_or_default() {
            state_txns.push((txn::undecided_app_id(source, f), 1));
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
            self.leases.check(&mut self.events, source).await?;
            let meta = serde_json::json!({ "source": source, "offsets": files });
            let m = self.metrics.as_deref();
            upload_and_append(&mut self.quarantine, &txns, Some(w), meta, m, None).await?;
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
        let fence = self.leases.fence(source);
        let v = upload_and_append(&mut self.events, &state_txns, events, meta, m, fence).await?;
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

    /// The checkpoints the commits so far call for, and nothing else of the
    /// upkeep: for `backfill`, which has no upkeep thread and must not
    /// leave a table of hundreds of commits without one (every reader would
    /// replay them all), and one at the newest version of a table left
    /// [`upkeep::SETTLE_TAIL`] or more versions past its newest checkpoint
    /// (a backfill's end). Compaction and vacuum are left to the daemons.
    pub async fn checkpoint_if_due(&mut self) -> Result<(), SinkError> {
        let due = upkeep::Due {
            checkpoint: self.checkpoints_due(),
            settle: true,
            ..upkeep::Due::default()
        };
        if due.any() {
            due.run(&mut self.events, &mut self.quarantine).await?;
        }
        Ok(())
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
            checkpoint: self.checkpoints_due(),
            compact,
            vacuum,
            settle: false,
        }
    }

    /// Whether a commit of ours landed on a checkpoint version of (events,
    /// quarantine) since the last call.
    fn checkpoints_due(&mut self) -> (bool, bool) {
        (
            self.events.take_checkpoint_due(),
            self.quarantine.take_checkpoint_due(),
        )
    }
}

/// Opens (creating if needed) `risk_events` at `events_uri` and
/// `risk_events_quarantine` at `quarantine_uri`.
async fn open_logs(
    events_uri: &str,
    quarantine_uri: &str,
) -> Result<(DeltaLog, DeltaLog), SinkError> {
    let events = DeltaLog::open(
        events_uri,
        "risk_events",
        &RISK_EVENT_COLUMNS,
        EVENT_PARTITION,
    )
    .await?;
    let quarantine = DeltaLog::open(
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
async fn prove_put_if_absent(log: &DeltaLog) -> Result<(), SinkError> {
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
/// A table an earlier release created lacks the columns added since at the
/// end (`schema::ADDED_LATER`): they are left out of its files.
async fn stage_into(
    slot: &mut Option<RecordBatchWriter>,
    log: &DeltaLog,
    batch: RecordBatch,
) -> Result<(), SinkError> {
    let width = table_width(log.table(), log.uri())?;
    let batch = if width < batch.num_columns() {
        let data: Vec<usize> = (0..width).collect();
        batch.project(&data)?
    } else {
        batch
    };
    let w = match slot {
        Some(w) => w,
        None => slot.insert(writer(log)?),
    };
    let written = match one_partition(&batch, log.partition()) {
        Some(values) => w
            .write_partition(batch, &values, WriteMode::Default)
            .await
            .map(drop),
        None => w.write(batch).await,
    };
    written.map_err(|source| SinkError::Delta {
        table: log.uri().to_owned(),
        source: Box::new(source),
    })
}

/// The partition all of `batch`'s rows fall in, when they fall in one (a
/// live commit's and nearly every backfill batch's rows are of one day).
/// Handed to deltalake with it, the batch is written as it is; without it,
/// deltalake groups the rows by partition and copies every column of every
/// batch, even when there is only one group.
fn one_partition(batch: &RecordBatch, column: &str) -> Option<IndexMap<String, Scalar>> {
    let days = batch
        .column_by_name(column)?
        .as_primitive_opt::<Date32Type>()?;
    let &first = days.values().first()?;
    if days.null_count() > 0 || days.values().iter().any(|&d| d != first) {
        return None;
    }
    Some(IndexMap::from([(column.to_owned(), Scalar::Date(first))]))
}

/// How many columns the table at `uri` has (its schema, partition column
/// included).
pub(crate) fn table_width(table: &deltalake::DeltaTable, uri: &str) -> Result<usize, SinkError> {
    let snapshot = table.snapshot().map_err(|source| SinkError::Delta {
        table: uri.to_owned(),
        source: Box::new(source),
    })?;
    Ok(snapshot.schema().fields().count())
}

impl crate::source::offsets::Offsets for DeltaSink {
    type Error = SinkError;

    async fn committed(&self, source: &str, file: FileId) -> Result<Committed, SinkError> {
        DeltaSink::committed(self, source, file).await
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use deltalake::arrow::array::{ArrayRef, Date32Array};
    use deltalake::arrow::datatypes::{DataType, Field, Schema};

    /// A quarantine table's log at `uri`, made if there is none.
    pub(crate) async fn quarantine_log(uri: &str) -> DeltaLog {
        use crate::event::schema::{QUARANTINE_COLUMNS, QUARANTINE_PARTITION};
        DeltaLog::open(uri, "q", &QUARANTINE_COLUMNS, QUARANTINE_PARTITION)
            .await
            .unwrap()
    }

    /// One small file of `n` quarantine rows from `offset` on, committed.
    pub(crate) async fn commit_rows(log: &mut DeltaLog, offset: u64, n: u64) {
        let file = crate::source::fingerprint::FileId::from_head(b"x\n");
        let now = chrono::Utc::now();
        let rows: Vec<crate::event::QuarantineRecord> = (offset..offset + n)
            .map(|o| {
                let at = crate::event::LinePos {
                    source: "s",
                    file,
                    source_file: "f",
                    offset: o,
                };
                crate::event::QuarantineRecord::new(
                    at,
                    b"line",
                    4,
                    crate::event::Reason::IncompleteLine,
                    None,
                    now,
                )
            })
            .collect();
        let batch = crate::event::batch::quarantine_batch(&rows).unwrap();
        let mut slot = None;
        stage_into(&mut slot, log, batch).await.unwrap();
        let txns = [("risktail/s/f".to_owned(), offset + n)];
        let meta = serde_json::json!({ "source": "s" });
        commit::upload_and_append(log, &txns, slot, meta, None, None)
            .await
            .unwrap();
    }

    fn days(values: Vec<Option<i32>>) -> RecordBatch {
        let schema = Schema::new(vec![Field::new("d", DataType::Date32, true)]);
        let column: ArrayRef = Arc::new(Date32Array::from(values));
        RecordBatch::try_new(Arc::new(schema), vec![column]).unwrap()
    }

    #[test]
    fn a_batch_of_one_day_is_handed_over_with_its_day() {
        let one = one_partition(&days(vec![Some(3), Some(3), Some(3)]), "d");
        assert_eq!(one, Some(IndexMap::from([("d".into(), Scalar::Date(3))])));
        for other in [
            vec![Some(3), Some(3), Some(4)],
            vec![Some(4), Some(3)],
            vec![Some(3), None],
            vec![Some(0), None],
            vec![],
        ] {
            assert_eq!(one_partition(&days(other.clone()), "d"), None, "{other:?}");
        }
        assert_eq!(one_partition(&days(vec![Some(3)]), "e"), None);
    }

    /// The runtime the sink's tests drive the async API with.
    pub(crate) fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
    }
}
