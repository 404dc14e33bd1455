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
