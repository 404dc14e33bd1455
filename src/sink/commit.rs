//! One commit, and the rows staged for it: the open Parquet writers, what
//! their rows are (for the metrics, counted only once the commit lands), and
//! the commit of their files to the log (`log`).

use deltalake::parquet::basic::Compression;
use deltalake::parquet::schema::types::ColumnPath;
use deltalake::writer::{DeltaWriter, RecordBatchWriter};
use std::sync::Arc;

use super::delta_log::{Appended, DeltaLog};
use super::error::SinkError;
use crate::event::SourceState;
use crate::event::rows::Text;
use crate::event::schema::name;
use crate::event::{EventRows, QuarantineRecord};
use crate::metrics::{self, Metrics};

/// Open writers holding rows for the next commit.
#[derive(Default)]
pub(super) struct Staged {
    pub(super) events: Option<RecordBatchWriter>,
    pub(super) quarantine: Option<RecordBatchWriter>,
    pub(super) rows: usize,
    /// The `event_date` partitions the staged events fall in: each is a
    /// Parquet file open in memory until the commit (see [`STAGED_DAYS`]).
    pub(super) days: std::collections::BTreeSet<chrono::NaiveDate>,
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

    pub(super) fn add(&mut self, events: &EventRows, quarantine: &[QuarantineRecord]) {
        for e in events.iter() {
            match self.events.get_mut(e.event_type()) {
                Some(n) => *n += 1,
                None => {
                    self.events.insert(e.event_type().into(), 1);
                }
            }
            if e.event_type() == "circuit_breaker_init"
                && matches!(e.text(Text::OldState), Some("OPEN" | "HALF_OPEN"))
            {
                self.restart_resets += 1;
            }
        }
        for q in quarantine {
            *self.quarantined.entry(q.reason.code()).or_default() += 1;
        }
    }
}

/// Partitions a backfill stages before it commits. Each holds an open
/// Parquet writer whose row group (a day of a sparse log is less than one)
/// stays in memory until the commit closes it, so memory grows with the days
/// staged, not the rows: a year's file (about 14,000 rows a day) committed
/// every million rows held some 70 days open and peaked at 563 MB; with 8 it
/// peaks at 120 MB, the same as a 100 MB file. A commit costs tens of
/// milliseconds, so a commit every few days costs nothing noticeable.
pub const STAGED_DAYS: usize = 8;

/// Rows per Parquet row group: bounds the memory a writer holds while it
/// streams a large commit (a backfill's) into its file.
const ROW_GROUP_ROWS: usize = 128 * 1024;

/// Columns whose values are (nearly) all different: a dictionary for them
/// costs a hash and a copy of every value and is then dropped for plain
/// encoding once it outgrows its page, so they are written plain.
const UNIQUE_COLUMNS: [&str; 5] = [
    name::EVENT_ID,
    name::RAW_LINE,
    name::TIMESTAMP,
    name::SOURCE_OFFSET,
    name::LINE_ID,
];

/// The ids (`event_id`, the quarantine's `line_id`): UUIDs as text, which
/// snappy shrinks by a tenth only (40 MB to 36.1 for a million
/// events), while a dense backfill takes 0.961x the time without it. They
/// are written uncompressed; every other column keeps snappy.
const ID_COLUMNS: [&str; 2] = [name::EVENT_ID, name::LINE_ID];

/// A writer for one commit into `log`'s table.
pub(super) fn writer(log: &DeltaLog) -> Result<RecordBatchWriter, SinkError> {
    Ok(RecordBatchWriter::for_table(log.table())
        .map_err(|source| SinkError::Delta {
            table: log.uri().to_owned(),
            source: Box::new(source),
        })?
        .with_writer_properties(writer_properties()))
}

/// How risktail writes its data files (SCHEMA.md, "The data files"):
/// also what `examples/encode_floor` times the Parquet writer with.
pub fn writer_properties() -> deltalake::parquet::file::properties::WriterProperties {
    let props = deltalake::parquet::file::properties::WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_created_by(format!("risktail {}", env!("CARGO_PKG_VERSION")));
    let props = UNIQUE_COLUMNS.iter().fold(props, |p, c| {
        p.set_column_dictionary_enabled(ColumnPath::from(*c), false)
    });
    let props = ID_COLUMNS.iter().fold(props, |p, c| {
        p.set_column_compression(ColumnPath::from(*c), Compression::UNCOMPRESSED)
    });
    props.build()
}

/// A lease's epoch app id and the highest epoch the table may show for it
/// (see `lease`): a later claim by another process fences a commit off.
/// Checked before every try, whatever snapshot the try starts from (a
/// retry's is fresh, and may hold that claim).
pub(super) type Fence = Option<(String, u64)>;

/// One commit of the rows in `writer` (none: a commit of `txns` alone, an
/// offset, a lease) + `txns` + `meta`: the data files are uploaded, then the
/// commit is appended to the log (see `delta_log`, which reads through versions
/// other writers took and, after any failure, whether this one landed, so a
/// commit is never made twice). See [`Fence`].
pub(super) async fn upload_and_append(
    log: &mut DeltaLog,
    txns: &[(String, u64)],
    writer: Option<RecordBatchWriter>,
    meta: serde_json::Value,
    metrics: Option<&Metrics>,
    fence: Fence,
) -> Result<u64, SinkError> {
    let started = std::time::Instant::now();
    let adds = match writer {
        Some(mut w) => w.flush().await.map_err(|source| SinkError::Delta {
            table: log.uri().to_owned(),
            source: Box::new(source),
        })?,
        None => Vec::new(),
    };
    match log.append(adds, txns, meta, fence.as_ref()).await? {
        Appended::Landed { version, passed } => {
            if let Some(m) = metrics {
                let labels = metrics::table(log.uri());
                m.commits.get_or_create(&labels).inc();
                // Present at 0 from the first commit, so a rate() has a start.
                m.commit_conflicts
                    .get_or_create(&labels)
                    .inc_by(u64::from(passed));
                m.commit_duration
                    .get_or_create(&labels)
                    .observe(started.elapsed().as_secs_f64());
                let now = chrono::Utc::now().timestamp_micros() as f64 / 1e6;
                m.last_commit.get_or_create(&labels).set(now);
            }
            if passed > 0 {
                tracing::debug!(
                    table = log.uri(),
                    version,
                    passed,
                    "versions taken by other writers read through"
                );
            }
            Ok(version)
        }
        // Read as a conflict on the source's own app ids, which it is: the
        // caller names the process that claimed the source.
        Appended::Conflict => Err(concurrent(log.uri(), txns)),
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
