//! A table's log as this process knows it, and appends written straight to
//! it: the commit's JSON put at the next version with put-if-absent, as
//! Delta's protocol defines a commit, with no snapshot rebuilt afterwards.
//!
//! Why not delta-rs's commit: after every commit it advances its snapshot by
//! replaying the new log entry through the kernel and re-materialising the
//! table's file list (stats parsed, schemas converted): most of the 15.6 ms
//! of CPU a one-row commit cost, where writing it directly costs 1.2 ms
//! (docs/PERFORMANCE.md, the live figures). A sidecar committing every
//! 100 ms spent 15 % of a core on that alone.
//!
//! What this process needs between commits is small: the newest version, the
//! `txn` versions (file offsets, state, lease), and whether the protocol or
//! the metadata changed. So a [`DeltaLog`] keeps a loaded [`DeltaTable`] (the
//! *base*, with its file list, for upkeep and reads) and on top of it every
//! `txn` of the commits after the base that it wrote or read. A commit that
//! finds its version taken reads that one commit (another writer's, a few
//! hundred bytes), folds its `txn`s in and tries the next version:
//! - a commit carrying one of our app ids is a conflict (another process
//!   writes this source), exactly as Delta's `ConcurrentTransaction`;
//! - a `metaData` or `protocol` action reloads the base and checks the
//!   schema and the protocol again;
//! - a version that is taken but cannot be read (cleaned up while this
//!   process was stuck) reloads the base.
//!
//! After any other failure the version tried is read back: the bytes are
//! ours (the store kept them, the answer was lost; each commit carries a
//! `txnId` of its own), another writer's, or absent. When the store cannot
//! be asked the error goes up, and the caller asks again before its next
//! commit (`pipeline::live`).

use deltalake::kernel::transaction::{CommitData, PROTOCOL, TransactionError};
use deltalake::kernel::{Action, Add, Remove, Transaction};
use deltalake::logstore::CommitOrBytes;
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::{DeltaTable, DeltaTableError};
use object_store::ObjectStoreExt;
use std::collections::{HashMap, HashSet};

use super::error::SinkError;
use crate::event::schema::ColumnDef;

/// How many versions taken by others one append reads through before it
/// gives up (and goes back to its caller, which tries again later).
const MAX_VERSIONS_PASSED: u32 = 10_000;

/// A table, and what this process knows of its log past the loaded snapshot.
pub struct DeltaLog {
    table: DeltaTable,
    uri: String,
    columns: &'static [ColumnDef],
    partition: &'static str,
    /// Every commit up to this version has been loaded, read or written.
    version: u64,
    /// `txn` versions of the commits after the base snapshot, up to `version`.
    txns: HashMap<String, u64>,
    /// `txns` holds every app id of the table up to `version` (see
    /// [`DeltaLog::know_every_txn`]): one it lacks has none.
    txns_complete: bool,
    /// One of our commits landed on a checkpoint version (see `take_checkpoint_due`).
    checkpoint_due: bool,
    /// When `version` was last known to be the table's head or next to it
    /// (loaded, written, or read as another writer's): see [`DeltaLog::stale`].
    seen_at: std::time::Instant,
    /// A view older than this is reloaded before a commit (see [`DeltaLog::stale`]).
    stale_after: std::time::Duration,
    /// Every `txn` version this process has read or written, kept across
    /// reloads: what a reload that jumps over versions compares with (the
    /// old base may be unreadable by then: cleanup deleted its commits).
    seen: std::sync::Mutex<HashMap<String, u64>>,
    /// The oldest log version log cleanup left, once it has looked
    /// (`log_names::expire`).
    log_floor: Option<u64>,
}

/// How one append ends.
pub(super) enum Appended {
    /// It landed at `version`, after passing `passed` versions other
    /// writers had taken.
    Landed {
        /// The commit's version.
        version: u64,
        /// Versions taken by others that this append read through.
        passed: u32,
    },
    /// A newer commit carries one of its app ids (see the module doc).
    Conflict,
}

impl DeltaLog {
    /// Opens (creating if needed) the table at `uri` with `columns`,
    /// partitioned by `partition` (see [`super::table::open_or_create`]).
    pub async fn open(
        uri: &str,
        name: &str,
        columns: &'static [ColumnDef],
        partition: &'static str,
    ) -> Result<DeltaLog, SinkError> {
        let table = super::table::open_or_create(uri, name, columns, partition).await?;
        DeltaLog::on(table, uri, columns, partition)
    }

    /// Opens the table at `uri` for a reader, never creating it (see
    /// [`super::table::open_existing`]).
    pub async fn open_existing(
        uri: &str,
        columns: &'static [ColumnDef],
        partition: &'static str,
    ) -> Result<DeltaLog, SinkError> {
        let table = super::table::open_existing(uri, columns, partition).await?;
        DeltaLog::on(table, uri, columns, partition)
    }

    fn on(
        table: DeltaTable,
        uri: &str,
        columns: &'static [ColumnDef],
        partition: &'static str,
    ) -> Result<DeltaLog, SinkError> {
        let version = table.version().unwrap_or_default();
        let stale_after = stale_after(&table);
        let log = DeltaLog {
            table,
            uri: uri.to_owned(),
            columns,
            partition,
            version,
            txns: HashMap::new(),
            txns_complete: false,
            checkpoint_due: false,
            seen_at: std::time::Instant::now(),
            stale_after,
            seen: std::sync::Mutex::default(),
            log_floor: None,
        };
        log.writable()?;
        Ok(log)
    }

    /// Refuses a table whose protocol asks for writer features delta-rs (and
    /// so risktail) cannot honour: a permanent condition, not a failure to
    /// retry.
    pub(super) fn writable(&self) -> Result<(), SinkError> {
        let snapshot = self.table.snapshot().map_err(|e| self.derr(e))?;
        PROTOCOL
            .can_write_to(snapshot)
            .map_err(|e| SinkError::UnsupportedProtocol {
                table: self.uri.clone(),
                detail: e.to_string(),
            })
    }

    /// Raises an earlier release's default log retention (see
    /// [`super::table::raise_old_retention`]).
    pub(super) async fn raise_old_retention(&mut self) -> Result<(), SinkError> {
        let table = self.table.clone();
        self.table = super::table::raise_old_retention(&self.uri, table).await?;
        self.resync();
        self.stale_after = stale_after(&self.table);
        Ok(())
    }

    /// The columns of `columns` added by a later release
    /// (`schema::ADDED_LATER`) that the table lacks, added in one commit;
    /// returns their names.
    pub(super) async fn add_missing_columns(&mut self) -> Result<Vec<&'static str>, SinkError> {
        let have = super::table_width(&self.table, &self.uri)?;
        let missing: Vec<&ColumnDef> = self.columns.iter().skip(have).collect();
        if missing.is_empty() {
            return Ok(Vec::new());
        }
        let fields = missing.iter().map(|c| super::table::field(c));
        let added = self
            .table
            .clone()
            .add_columns()
            .with_fields(fields.collect::<Vec<_>>())
            .with_commit_properties(
                deltalake::kernel::transaction::CommitProperties::default()
                    .with_cleanup_expired_logs(Some(false)),
            )
            .await
            .map_err(|e| self.derr(e))?;
        self.table = added;
        self.resync();
        Ok(missing.iter().map(|c| c.name).collect())
    }

    /// Whether this process's view is too old to put a commit on: log
    /// cleanup deletes commit files older than the table's
    /// `logRetentionDuration` that a checkpoint covers, so after a long
    /// pause (a suspended VM, a quiet quarantine table, SIGSTOP) the version
    /// after `version` may be *free* because it was deleted, and a commit put
    /// there lands below the newest checkpoint, where no reader looks. A view
    /// younger than a tenth of the retention cannot be in that state: the
    /// versions it saw were written or read since, and a checkpoint above
    /// them needs a commit above them, which the put at the next version
    /// would meet. Older views are reloaded first.
    fn stale(&self) -> bool {
        self.seen_at.elapsed() > self.stale_after
    }

    #[cfg(test)]
    pub(super) fn set_stale_after(&mut self, d: std::time::Duration) {
        self.stale_after = d;
    }

    /// The loaded snapshot: its file list may lag behind [`DeltaLog::version`]
    /// by the appends since the last reload (they add files only).
    pub fn table(&self) -> &DeltaTable {
        &self.table
    }

    /// The oldest log version left by the last cleanup, if one ran.
    pub(super) fn log_floor(&self) -> Option<u64> {
        self.log_floor
    }

    pub(super) fn set_log_floor(&mut self, floor: Option<u64>) {
        self.log_floor = floor;
    }

    /// The table's URI.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// The column the table is partitioned by (checked when it opened).
    pub(super) fn partition(&self) -> &'static str {
        self.partition
    }

    /// The newest version this process has seen.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// `source` as this table's error.
    pub(super) fn derr(&self, source: DeltaTableError) -> SinkError {
        SinkError::Delta {
            table: self.uri.clone(),
            source: Box::new(source),
        }
    }

    /// Reloads the base snapshot (files included) to the newest version, for
    /// upkeep, history, and asking what a failed commit left.
    pub async fn reload(&mut self) -> Result<&mut DeltaTable, SinkError> {
        if let Err(e) = self.table.update_incremental(None).await {
            // The versions after the base may have been cleaned up (a view
            // older than the log retention): load the table afresh, from its
            // newest checkpoint.
            tracing::info!(table = self.uri, error = %e, "cannot update the table's view; loading it afresh");
            self.table = super::store::open(&self.uri)
                .await
                .map_err(|e| self.derr(e))?;
            self.version = 0;
        }
        self.resync();
        self.stale_after = stale_after(&self.table);
        Ok(&mut self.table)
    }

    /// Reloads the base as [`DeltaLog::reload`] does, without skipping the
    /// conflict checks of the versions it jumps over: true when one of them
    /// moved an app id of `ours` (another writer committed it) or removed a
    /// file of `guarded`.
    async fn reload_checked(
        &mut self,
        ours: &[(String, u64)],
        guarded: &HashSet<String>,
    ) -> Result<bool, SinkError> {
        let mut before = Vec::with_capacity(ours.len());
        for (app, _) in ours {
            let known = self.seen_version(app);
            // Never looked at by this process: as far as it knew, unset.
            let was = match known {
                Some(v) => v,
                None => self.txn_version(app).await.unwrap_or(0),
            };
            before.push(was);
        }
        self.reload().await?;
        let mut conflict = false;
        for ((app, _), was) in ours.iter().zip(before) {
            conflict |= self.txn_version(app).await? != was;
        }
        if !guarded.is_empty() {
            let snapshot = self.table.snapshot().map_err(|e| self.derr(e))?;
            let live: HashSet<String> = snapshot
                .log_data()
                .iter()
                .map(|f| f.remove_action(false).path)
                .collect();
            conflict |= guarded.iter().any(|p| !live.contains(p));
        }
        Ok(conflict)
    }

    /// Reloads the base only when it lags behind [`DeltaLog::version`]: for
    /// what only the loaded snapshot can answer (the history of commits).
    pub async fn fresh(&mut self) -> Result<&DeltaTable, SinkError> {
        if self.table.version().unwrap_or_default() < self.version {
            self.reload().await?;
        }
        Ok(&self.table)
    }

    /// After the base moved (a reload, or a commit made through it, such as
    /// a compaction's): what it holds need not be kept on top of it.
    pub(super) fn resync(&mut self) {
        let v = self.table.version().unwrap_or_default();
        if v >= self.version {
            self.version = v;
            self.txns.clear();
            self.txns_complete = false;
            self.seen_at = std::time::Instant::now();
        }
    }

    /// Reads every `txn` up to [`DeltaLog::version`] in one pass (see
    /// `txn_index`); afterwards an app id not found has none.
    pub async fn know_every_txn(&mut self) -> Result<(), SinkError> {
        if let Some(all) = super::txn_index::all_txns(&self.table, self.version).await? {
            self.txns = all;
            self.txns_complete = true;
        }
        Ok(())
    }

    /// The version of `app`'s last `txn` (0 when it has none).
    pub async fn txn_version(&self, app: &str) -> Result<u64, SinkError> {
        if let Some(v) = self.txns.get(app) {
            return Ok(*v);
        }
        if self.txns_complete {
            return Ok(0);
        }
        let snapshot = self.table.snapshot().map_err(|e| self.derr(e))?;
        let v = snapshot
            .transaction_version(self.table.log_store().as_ref(), app)
            .await
            .map_err(|e| self.derr(e))?;
        let v = v.map_or(0, |v| v.max(0) as u64);
        self.remember(app, v);
        Ok(v)
    }

    fn remember(&self, app: &str, v: u64) {
        if let Ok(mut seen) = self.seen.lock() {
            seen.insert(app.to_owned(), v);
        }
    }

    fn seen_version(&self, app: &str) -> Option<u64> {
        if let Some(v) = self.txns.get(app) {
            return Some(*v);
        }
        self.seen.lock().ok()?.get(app).copied()
    }

    /// Whether one of our commits since the last call landed on a
    /// checkpoint version: the upkeep then writes the checkpoint.
    pub(super) fn take_checkpoint_due(&mut self) -> bool {
        std::mem::take(&mut self.checkpoint_due)
    }

    /// Appends `adds` with `txns` and risktail's `meta` in `commitInfo`, at
    /// the next free version (see the module doc). `fence`: the highest
    /// version the table may show for an app id before each try (see
    /// `commit::Fence`).
    pub(super) async fn append(
        &mut self,
        adds: Vec<Add>,
        txns: &[(String, u64)],
        meta: serde_json::Value,
        fence: Option<&(String, u64)>,
    ) -> Result<Appended, SinkError> {
        let partition_by = self.partition_columns()?;
        let op = DeltaOperation::Write {
            mode: SaveMode::Append,
            partition_by: Some(partition_by),
            predicate: None,
        };
        let actions = adds.into_iter().map(Action::Add).collect();
        let nothing = HashSet::new();
        self.commit(actions, op, txns, meta, fence, &nothing).await
    }

    /// Replaces files with others holding the same rows (a compaction:
    /// `dataChange` false on both sides). A newer commit that removes one of
    /// `removes` (another writer's compaction of the same files) is a
    /// conflict; appends are passed as always, so a compaction never has to
    /// find the table quiet to land.
    pub(super) async fn replace(
        &mut self,
        adds: Vec<Add>,
        removes: Vec<Remove>,
        meta: serde_json::Value,
        target_size: i64,
    ) -> Result<Appended, SinkError> {
        let guarded: HashSet<String> = removes.iter().map(|r| r.path.clone()).collect();
        let mut actions: Vec<Action> = adds.into_iter().map(Action::Add).collect();
        actions.extend(removes.into_iter().map(Action::Remove));
        let op = DeltaOperation::Optimize {
            predicate: None,
            target_size,
        };
        self.commit(actions, op, &[], meta, None, &guarded).await
    }

    async fn commit(
        &mut self,
        actions: Vec<Action>,
        operation: DeltaOperation,
        txns: &[(String, u64)],
        meta: serde_json::Value,
        fence: Option<&(String, u64)>,
        guarded: &HashSet<String>,
    ) -> Result<Appended, SinkError> {
        let bytes = commit_data(actions, operation, txns, meta)
            .get_bytes()
            .map_err(|e| self.derr(e.into()))?;
        let store = self.table.log_store();
        // Conditional-put stores take the bytes; others (S3's log store)
        // rename a temporary object into place if none is there.
        let entry = if ["DefaultLogStore", "LakeFSLogStore"].contains(&store.name().as_str()) {
            CommitOrBytes::LogBytes(bytes.clone())
        } else {
            let tmp = deltalake::Path::from_iter([
                "_delta_log",
                &format!("_commit_{}.json.tmp", uuid::Uuid::new_v4()),
            ]);
            store
                .object_store(None)
                .put(&tmp, bytes.clone().into())
                .await
                .map_err(|e| self.derr(e.into()))?;
            CommitOrBytes::TmpCommit(tmp)
        };
        let result = self
            .append_entry(&entry, &bytes, txns, fence, guarded)
            .await;
        if let CommitOrBytes::TmpCommit(tmp) = &entry
            && !matches!(result, Ok(Appended::Landed { .. }))
        {
            // Best effort: a leftover is an unreferenced object vacuum ignores.
            let _ = store.object_store(None).delete(tmp).await;
        }
        result
    }

    fn partition_columns(&self) -> Result<Vec<String>, SinkError> {
        Ok(self
            .table
            .snapshot()
            .map_err(|e| self.derr(e))?
            .metadata()
            .partition_columns()
            .to_vec())
    }

    async fn append_entry(
        &mut self,
        entry: &CommitOrBytes,
        bytes: &[u8],
        txns: &[(String, u64)],
        fence: Option<&(String, u64)>,
        guarded: &HashSet<String>,
    ) -> Result<Appended, SinkError> {
        let store = self.table.log_store();
        let op_id = uuid::Uuid::new_v4();
        for passed in 0..MAX_VERSIONS_PASSED {
            if self.stale() && self.reload_checked(txns, guarded).await? {
                return Ok(Appended::Conflict);
            }
            if let Some((app, highest)) = fence
                && self.txn_version(app).await? > *highest
            {
                return Ok(Appended::Conflict);
            }
            self.writable()?;
            let v = self.version + 1;
            let failure = match store.write_commit_entry(v, entry.clone(), op_id).await {
                Ok(()) => return Ok(self.landed(v, passed, txns)),
                Err(TransactionError::VersionAlreadyExists(_)) => None,
                Err(e) => Some(e),
            };
            // Taken, or failed in a way that may still have stored it: the
            // version says which.
            match (store.read_commit_entry(v).await, failure) {
                (Ok(Some(found)), failure) if found.as_ref() == bytes => {
                    if let Some(e) = &failure {
                        tracing::warn!(table = self.uri, version = v, error = %e, "commit reported a failure but had landed");
                    }
                    return Ok(self.landed(v, passed, txns));
                }
                (Ok(Some(found)), _) => {
                    if self.absorb(v, &found, txns, guarded).await? {
                        return Ok(Appended::Conflict);
                    }
                }
                // Taken but gone: cleaned up while this process was away.
                (Ok(None), None) => {
                    if self.reload_checked(txns, guarded).await? {
                        return Ok(Appended::Conflict);
                    }
                }
                (Ok(None), Some(e)) => return Err(self.derr(e.into())),
                (Err(e), failure) => {
                    // The store cannot say: the caller must ask later.
                    tracing::warn!(table = self.uri, version = v, error = %e, "cannot read back a failed commit");
                    return Err(self.derr(failure.map_or(e, DeltaTableError::from)));
                }
            }
        }
        Err(self.derr(DeltaTableError::Generic(format!(
            "{MAX_VERSIONS_PASSED} versions taken by other writers in a row"
        ))))
    }

    fn landed(&mut self, v: u64, passed: u32, txns: &[(String, u64)]) -> Appended {
        self.version = v;
        self.seen_at = std::time::Instant::now();
        for (app, o) in txns {
            self.txns.insert(app.clone(), *o);
            self.remember(app, *o);
        }
        let interval = {
            use deltalake::table::config::TablePropertiesExt;
            self.table
                .snapshot()
                .map(|s| s.table_config().checkpoint_interval().get())
                .unwrap_or(100)
        };
        // As delta-rs decides it: the 50th, 100th, … version (49, 99, …).
        if (v + 1).is_multiple_of(interval) {
            self.checkpoint_due = true;
        }
        Appended::Landed { version: v, passed }
    }

    /// Folds another writer's commit at `v` in. True when it carries one of
    /// `ours`' app ids, or removes one of the `guarded` files (a conflict).
    async fn absorb(
        &mut self,
        v: u64,
        bytes: &[u8],
        ours: &[(String, u64)],
        guarded: &HashSet<String>,
    ) -> Result<bool, SinkError> {
        let mut conflict = false;
        let mut reload = false;
        for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let action: serde_json::Value = serde_json::from_slice(line).map_err(|e| {
                self.derr(DeltaTableError::Generic(format!(
                    "commit {v} is not Delta's JSON: {e}"
                )))
            })?;
            if let Some(t) = action.get("txn") {
                let (Some(app), Some(version)) = (
                    t.get("appId").and_then(|a| a.as_str()),
                    t.get("version").and_then(|a| a.as_i64()),
                ) else {
                    continue;
                };
                conflict |= ours.iter().any(|(a, _)| a == app);
                self.txns.insert(app.to_owned(), version.max(0) as u64);
                self.remember(app, version.max(0) as u64);
            } else if let Some(path) = action
                .get("remove")
                .and_then(|r| r.get("path"))
                .and_then(|p| p.as_str())
            {
                conflict |= guarded.contains(path);
            } else if action.get("metaData").is_some() || action.get("protocol").is_some() {
                reload = true;
            }
        }
        self.version = v;
        self.seen_at = std::time::Instant::now();
        if reload {
            // The versions after `v` are jumped over: checked all the same.
            conflict |= self.reload_checked(ours, guarded).await?;
            let (uri, table) = (&self.uri, &self.table);
            super::table::check_schema(uri, table, self.columns, self.partition)?;
        }
        Ok(conflict)
    }
}

/// A tenth of `table`'s `logRetentionDuration` (see [`DeltaLog::stale`]).
fn stale_after(table: &DeltaTable) -> std::time::Duration {
    use deltalake::table::config::TablePropertiesExt;
    table
        .snapshot()
        .map(|s| s.table_config().log_retention_duration())
        .unwrap_or(std::time::Duration::from_secs(2 * 3600))
        / 10
}

/// A commit's content as delta-rs writes it: `commitInfo` (with risktail's
/// `meta` and a `txnId` of its own), the actions, then the `txn`s.
fn commit_data(
    actions: Vec<Action>,
    operation: DeltaOperation,
    txns: &[(String, u64)],
    mut meta: serde_json::Value,
) -> CommitData {
    let now_ms = chrono::Utc::now().timestamp_millis();
    if let Some(record) = meta.as_object_mut() {
        // What this writer knows of the tables' shape: `risktail migrate`
        // adds a column only once no writer without it is about.
        record.insert(
            super::txn::SCHEMA_KEY.to_owned(),
            serde_json::json!(super::txn::SCHEMA_LEVEL),
        );
    }
    CommitData::new(
        actions,
        operation,
        // txnId (as Spark writes it) makes every commit's bytes unique, so
        // reading a version back tells ours from another writer's even when
        // both carry the same rows' metadata.
        HashMap::from([
            (super::txn::COMMIT_INFO_KEY.to_owned(), meta),
            (
                "txnId".to_owned(),
                serde_json::json!(uuid::Uuid::new_v4().to_string()),
            ),
        ]),
        txns.iter()
            .map(|(app, v)| Transaction::new_with_last_update(app, *v as i64, Some(now_ms)))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::schema::{QUARANTINE_COLUMNS, QUARANTINE_PARTITION};

    use crate::sink::tests::rt;

    async fn open(uri: &str) -> DeltaLog {
        DeltaLog::open(uri, "q", &QUARANTINE_COLUMNS, QUARANTINE_PARTITION)
            .await
            .unwrap()
    }

    async fn append(log: &mut DeltaLog, app: &str, offset: u64) -> Appended {
        let txns = [(app.to_owned(), offset)];
        let meta = serde_json::json!({ "source": app });
        log.append(Vec::new(), &txns, meta, None).await.unwrap()
    }

    /// Runs `due` on `log` (the quarantine side on a table of its own).
    async fn upkeep(log: &mut DeltaLog, due: crate::sink::upkeep::Due) {
        let q = tempfile::tempdir().unwrap();
        let mut other = open(q.path().to_str().unwrap()).await;
        due.run(log, &mut other).await.unwrap();
    }

    fn landed(a: Appended) -> (u64, u32) {
        match a {
            Appended::Landed { version, passed } => (version, passed),
            Appended::Conflict => panic!("a conflict"),
        }
    }

    /// Two writers on one table: the one whose view is stale reads the
    /// other's commit, takes the next version, and knows the other's offsets
    /// (which delta-rs, reading the table afresh, agrees with).
    #[test]
    fn a_writer_passes_versions_others_took_and_learns_their_offsets() {
        let dir = tempfile::tempdir().unwrap();
        let uri = dir.path().to_str().unwrap().to_owned();
        rt().block_on(async {
            let mut a = open(&uri).await;
            let mut b = open(&uri).await;
            assert_eq!(landed(append(&mut a, "risktail/a/f", 10).await), (1, 0));
            assert_eq!(landed(append(&mut a, "risktail/a/f", 20).await), (2, 0));
            assert_eq!(landed(append(&mut b, "risktail/b/f", 5).await), (3, 2));
            assert_eq!(b.txn_version("risktail/a/f").await.unwrap(), 20);
            assert_eq!(a.version(), 2, "a has not looked since");
            let fresh = crate::sink::store::open(&uri).await.unwrap();
            assert_eq!(fresh.version(), Some(3));
            for (app, v) in [("risktail/a/f", 20), ("risktail/b/f", 5)] {
                let got = fresh
                    .snapshot()
                    .unwrap()
                    .transaction_version(fresh.log_store().as_ref(), app)
                    .await
                    .unwrap();
                assert_eq!(got, Some(v));
            }
        });
    }

    /// A commit carrying one of our app ids that landed after our view is a
    /// conflict, as Delta's `ConcurrentTransaction` is; nothing is written.
    #[test]
    fn another_commit_of_our_app_id_is_a_conflict() {
        let dir = tempfile::tempdir().unwrap();
        let uri = dir.path().to_str().unwrap().to_owned();
        rt().block_on(async {
            let mut a = open(&uri).await;
            let mut b = open(&uri).await;
            landed(append(&mut a, "risktail/s/f", 10).await);
            assert!(matches!(
                append(&mut b, "risktail/s/f", 10).await,
                Appended::Conflict
            ));
            assert_eq!(
                crate::sink::store::open(&uri).await.unwrap().version(),
                Some(1)
            );
        });
    }

    /// A fence: a version above the highest allowed for an app id, even one
    /// learnt by passing another's commit, stops the append.
    #[test]
    fn a_fenced_append_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let uri = dir.path().to_str().unwrap().to_owned();
        rt().block_on(async {
            let mut a = open(&uri).await;
            let mut b = open(&uri).await;
            landed(append(&mut a, "risktail-lease/s/epoch", 2).await);
            let fence = ("risktail-lease/s/epoch".to_owned(), 1);
            let txns = [("risktail/s/f".to_owned(), 7)];
            let got = b
                .append(Vec::new(), &txns, serde_json::json!({}), Some(&fence))
                .await
                .unwrap();
            assert!(matches!(got, Appended::Conflict));
            assert_eq!(b.version(), 1);
            assert_eq!(
                crate::sink::store::open(&uri).await.unwrap().version(),
                Some(1)
            );
        });
    }

    /// Another writer's metadata change (here: a column added by a tool
    /// other than risktail) is noticed while passing its version, and the
    /// schema check refuses the table, naming the column.
    #[test]
    fn a_schema_changed_by_another_writer_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let uri = dir.path().to_str().unwrap().to_owned();
        rt().block_on(async {
            let mut a = open(&uri).await;
            // Version 1, as another tool would write it: the metaData of
            // version 0 with one more column.
            let log = dir.path().join("_delta_log");
            let v0 = std::fs::read_to_string(log.join(format!("{:020}.json", 0))).unwrap();
            let mut meta: serde_json::Value = v0
                .lines()
                .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
                .find(|a| a.get("metaData").is_some())
                .unwrap();
            let m = &mut meta["metaData"];
            let mut schema: serde_json::Value =
                serde_json::from_str(m["schemaString"].as_str().unwrap()).unwrap();
            schema["fields"]
                .as_array_mut()
                .unwrap()
                .push(serde_json::json!(
                    {"name": "extra", "type": "string", "nullable": true, "metadata": {}}
                ));
            m["schemaString"] = serde_json::json!(schema.to_string());
            std::fs::write(log.join(format!("{:020}.json", 1)), meta.to_string()).unwrap();
            let txns = [("risktail/s/f".to_owned(), 7)];
            let err = a
                .append(Vec::new(), &txns, serde_json::json!({}), None)
                .await
                .err()
                .expect("refused");
            assert!(err.to_string().contains("extra"), "{err}");
            assert!(!log.join(format!("{:020}.json", 2)).exists());
        });
    }

    /// The commit that makes the table's 50th version (49: `checkpointInterval`
    /// is 50 for risktail's tables, counted as delta-rs counts it) asks the
    /// upkeep for a checkpoint, once.
    #[test]
    fn a_commit_on_a_checkpoint_version_asks_for_a_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let uri = dir.path().to_str().unwrap().to_owned();
        rt().block_on(async {
            let mut a = open(&uri).await;
            for i in 1..49u64 {
                landed(append(&mut a, "risktail/s/f", i).await);
                assert!(!a.take_checkpoint_due(), "at {i}");
            }
            assert_eq!(landed(append(&mut a, "risktail/s/f", 49).await).0, 49);
            assert!(a.take_checkpoint_due());
            assert!(!a.take_checkpoint_due());
            // What the upkeep then does: a checkpoint readers start from.
            let due = crate::sink::upkeep::Due {
                checkpoint: (true, false),
                ..Default::default()
            };
            upkeep(&mut a, due).await;
            assert!(
                dir.path()
                    .join("_delta_log/00000000000000000049.checkpoint.parquet")
                    .exists()
            );
        });
    }

    /// A table with 60 commits, a checkpoint at 49 and its log cleaned up
    /// as far as that checkpoint allows (as the upkeep's cleanup does once
    /// the retention passed): versions 0..48 are gone.
    async fn cleaned_table(uri: &str, last_app: &str) -> DeltaLog {
        let mut a = open(uri).await;
        for i in 1..60u64 {
            let app = if i == 59 { last_app } else { "risktail/busy/f" };
            landed(append(&mut a, app, i).await);
        }
        let due = crate::sink::upkeep::Due {
            checkpoint: (true, false),
            ..Default::default()
        };
        upkeep(&mut a, due).await;
        let future = chrono::Utc::now().timestamp_millis() + 86_400_000;
        let table = a.reload().await.unwrap();
        let gone = deltalake::protocol::checkpoints::cleanup_expired_logs_for(
            59,
            table.log_store().as_ref(),
            future,
            None,
        )
        .await
        .unwrap();
        assert!(gone >= 40, "cleanup deleted {gone}");
        a
    }

    /// A writer paused past the log retention (SIGSTOP, a suspended VM, a
    /// quiet quarantine table) finds the version after its view free because
    /// cleanup deleted it. Without the staleness check it commits there,
    /// below the newest checkpoint, where no reader looks (the control
    /// below); with it, it reloads first and lands after the newest version.
    #[test]
    fn a_view_older_than_the_retention_is_reloaded_before_a_commit() {
        let dir = tempfile::tempdir().unwrap();
        let uri = dir.path().to_str().unwrap().to_owned();
        rt().block_on(async {
            let mut quiet = open(&uri).await;
            let mut control = open(&uri).await;
            cleaned_table(&uri, "risktail/busy/f").await;
            quiet.set_stale_after(std::time::Duration::ZERO);
            let (v, _) = landed(append(&mut quiet, "risktail/quiet/f", 7).await);
            assert_eq!(v, 60, "after the newest version");
            let fresh = crate::sink::store::open(&uri).await.unwrap();
            let seen = fresh
                .snapshot()
                .unwrap()
                .transaction_version(fresh.log_store().as_ref(), "risktail/quiet/f")
                .await
                .unwrap();
            assert_eq!(seen, Some(7), "a reader sees the quiet writer's commit");
            // The control: a view taken for fresh lands in a deleted version.
            control.set_stale_after(std::time::Duration::from_secs(3600));
            let (v, _) = landed(append(&mut control, "risktail/control/f", 1).await);
            assert!(v < 49, "the control landed at {v}, below the checkpoint");
        });
    }

    /// A reload inside the commit loop jumps over versions: their app ids
    /// are checked all the same. The stale writer's own app id was committed
    /// (by another process) in a version it jumps over: a conflict, not a
    /// second commit of the same offsets.
    #[test]
    fn a_reload_in_the_commit_loop_keeps_the_app_id_check() {
        let dir = tempfile::tempdir().unwrap();
        let uri = dir.path().to_str().unwrap().to_owned();
        rt().block_on(async {
            let mut stale = open(&uri).await;
            cleaned_table(&uri, "risktail/s/f").await;
            stale.set_stale_after(std::time::Duration::ZERO);
            let got = append(&mut stale, "risktail/s/f", 59).await;
            assert!(matches!(got, Appended::Conflict));
            let fresh = crate::sink::store::open(&uri).await.unwrap();
            assert_eq!(fresh.version(), Some(59), "nothing written");
        });
    }

    /// The writer that landed version 49 died before its upkeep wrote the
    /// checkpoint: the next writer whose compaction round runs notices the
    /// gap and writes it.
    #[test]
    fn a_missed_checkpoint_is_written_by_the_next_writer() {
        let dir = tempfile::tempdir().unwrap();
        let uri = dir.path().to_str().unwrap().to_owned();
        rt().block_on(async {
            let mut dead = open(&uri).await;
            for i in 1..55u64 {
                landed(append(&mut dead, "risktail/dead/f", i).await);
            }
            drop(dead); // its checkpoint_due never reached an upkeep
            let mut next = open(&uri).await;
            let due = crate::sink::upkeep::Due {
                compact: true,
                ..Default::default()
            };
            upkeep(&mut next, due).await;
            let log = dir.path().join("_delta_log");
            let checkpoints: Vec<_> = std::fs::read_dir(&log)
                .unwrap()
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.contains(".checkpoint."))
                .collect();
            assert_eq!(checkpoints.len(), 1, "{checkpoints:?}");
        });
    }

    /// Two compactions of the same file: the one whose view is stale finds
    /// the other's `remove` of it while passing versions, and gives up
    /// (both landing would double every row of the file); appends it passes
    /// are no conflict.
    #[test]
    fn a_compaction_gives_way_to_another_of_the_same_files_not_to_appends() {
        let dir = tempfile::tempdir().unwrap();
        let uri = dir.path().to_str().unwrap().to_owned();
        rt().block_on(async {
            let mut a = open(&uri).await;
            let mut b = open(&uri).await;
            let remove = |path: &str| Remove {
                path: path.to_owned(),
                data_change: false,
                ..Default::default()
            };
            let meta = || serde_json::json!({});
            landed(append(&mut a, "risktail/s/f", 1).await);
            let (v, _) = landed(
                a.replace(Vec::new(), vec![remove("p=1/x.parquet")], meta(), 1)
                    .await
                    .unwrap(),
            );
            assert_eq!(v, 2);
            landed(append(&mut a, "risktail/s/f", 2).await);
            let lost = b
                .replace(Vec::new(), vec![remove("p=1/x.parquet")], meta(), 1)
                .await
                .unwrap();
            assert!(matches!(lost, Appended::Conflict));
            let other = b
                .replace(Vec::new(), vec![remove("p=1/y.parquet")], meta(), 1)
                .await
                .unwrap();
            assert_eq!(landed(other), (4, 1), "passing the append at 3");
        });
    }
}
