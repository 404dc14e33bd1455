//! What can go wrong writing, for every module of the sink, and the one
//! policy of which errors waiting mends.

use deltalake::DeltaTableError;

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
    /// A reader (`status`) found no table: nothing was ever committed there.
    #[error(
        "table {table} does not exist yet: nothing has been committed there (`risktail run` or `risktail backfill` creates it; is the config's [table] uri the one they write?)"
    )]
    NoTable {
        /// The table.
        table: String,
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
    /// Another live process holds the source's lease (see `sink::lease`).
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

/// Runs `attempt` until it succeeds or fails for a reason waiting cannot
/// mend. A sidecar that starts while its table is unreachable (an object
/// store outage, a network not up yet) waits for it, logging each try, rather
/// than exiting; READY=1 is sent only once it has the table. A table with
/// another schema, or a source another process holds, ends the start.
///
/// SIGTERM ends the wait: `Ok(None)` as soon as `stopping` is set, between
/// tries or during one (an attempt gives `None` when it gave way to it).
/// Nothing is lost by stopping here: what was not committed is still in the
/// files, behind the committed offsets.
pub fn until_reachable<T>(
    stopping: &std::sync::atomic::AtomicBool,
    mut attempt: impl FnMut() -> Option<Result<T, SinkError>>,
) -> Result<Option<T>, SinkError> {
    let stopped = || stopping.load(std::sync::atomic::Ordering::Acquire);
    let mut wait = std::time::Duration::from_millis(500);
    loop {
        if stopped() {
            return Ok(None);
        }
        match attempt() {
            None => return Ok(None),
            Some(Ok(v)) => return Ok(Some(v)),
            Some(Err(e @ (SinkError::Delta { .. } | SinkError::Io { .. }))) => {
                tracing::error!(error = %e, retry_in_ms = wait.as_millis() as u64, "cannot open the table yet; retrying");
                let until = std::time::Instant::now() + wait;
                while !stopped() && std::time::Instant::now() < until {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                wait = (wait * 2).min(std::time::Duration::from_secs(30));
            }
            Some(Err(e)) => return Err(e),
        }
    }
}
