//! Ingesting one file: resume at the committed offset, parse to the end,
//! stream rows into the next commit's Parquet files in batches of
//! `max_events`, and commit every `commit_rows` rows and once at the end, each
//! commit carrying the offset reached and the source state at that point.
//! Large commits are what make a backfill cheap: a commit costs tens of
//! milliseconds whatever its size.
//!
//! A commit also comes before more than [`crate::sink::STAGED_DAYS`] partitions would
//! be staged: memory grows with the partitions open, not with the rows.
//!
//! Used by `backfill` for whole files; a line without its newline at the end
//! of a *live* file is left for later (not consumed, not committed), at the end
//! of a sealed (rotated) file it is quarantined, since nobody will finish it.

use std::collections::HashMap;

use super::batches::{Batches, Reading};
use super::chunks::{Chunks, Job};
use super::step::{AtFragment, FileRef, Rows};
use crate::config::{Config, SourceConfig};
use crate::parse::{SourceParser, SourceState};
use crate::sink::{Committed, DeltaSink, SinkError};
use crate::source;
use crate::source::discover::Found;
use crate::source::fingerprint::{FileId, Heads};
use crate::tally::Tally;

/// What went wrong with a file.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// Reading it.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// Committing its rows.
    #[error("{path}: {source}")]
    Sink {
        /// The file.
        path: String,
        /// The error.
        source: SinkError,
    },
}

/// What happened to a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileStatus {
    /// Read from `from` to `to`.
    Ingested {
        /// Where reading started (the committed offset; 0 for a new file).
        from: u64,
        /// The offset now committed.
        to: u64,
    },
    /// The table already held everything in it.
    AlreadyIngested {
        /// Its committed offset.
        at: u64,
    },
    /// No complete line yet, so no identity: nothing to ingest.
    NoCompleteLine,
}

/// The outcome for one file.
#[derive(Debug, Clone)]
pub struct FileReport {
    /// The file.
    pub path: String,
    /// Its identity, once decidable.
    pub file: Option<FileId>,
    /// What happened.
    pub status: FileStatus,
    /// What was read (rows counted only when new to the table).
    pub tally: Tally,
    /// Commits made.
    pub commits: u32,
}

/// Settings of one ingest.
pub struct IngestContext<'a> {
    /// The source's parser.
    pub parser: &'a SourceParser,
    /// Oversize limit.
    pub max_line_bytes: usize,
    /// Rows per batch written into the commit's files (bounds the rows held).
    pub max_events: usize,
    /// Rows per commit (at least one batch).
    pub commit_rows: usize,
    /// The parser's record heads (name files).
    pub heads: Heads,
    /// Threads: above one, lines are parsed on a thread of their own while
    /// the caller's encodes and commits (a backfill; the daemon uses one),
    /// and a plain file of at least two stretches is parsed in stretches of
    /// `stretch_bytes` on that many threads.
    pub threads: usize,
    /// See `threads`.
    pub stretch_bytes: u64,
}

impl<'a> IngestContext<'a> {
    /// The settings for `source`'s files, read with `parser`.
    pub fn new(parser: &'a SourceParser, source: &SourceConfig, config: &Config) -> Self {
        IngestContext {
            parser,
            max_line_bytes: source.max_line_bytes,
            max_events: config.flush_max_events,
            commit_rows: config.backfill_commit_rows,
            heads: parser.heads(),
            threads: 1,
            stretch_bytes: config.backfill_stretch_bytes,
        }
    }

    /// The same, parsing on a thread of its own when `threads` is above one.
    pub fn with_threads(self, threads: usize) -> Self {
        IngestContext { threads, ..self }
    }
}

/// Reads `found`, already opened (`source::open`: who opens it decides from
/// its identity and first record how to enrich it, and recovery opens a
/// source's rotated files before reading them in time order, whatever their
/// names say by then), from its committed offset to its end, and commits
/// what it holds. `state` enriches its lines (and follows them); the commits
/// carry it too, unless `keep_state` is given: then they carry that one, so
/// a file older than what the table holds (an archive) does not replace the
/// state the source resumes from. `known` caches committed offsets by
/// identity (a file and its `.gz` copy share one) and is updated after each
/// commit. `progress` is told the bytes of content consumed as they are read.
pub async fn ingest_file(
    ctx: &IngestContext<'_>,
    sink: &mut DeltaSink,
    state: &mut SourceState,
    keep_state: Option<&SourceState>,
    (found, opened): (&Found, source::Opened),
    known: &mut HashMap<FileId, Committed>,
    progress: &mut dyn FnMut(u64),
) -> Result<FileReport, IngestError> {
    let path = found.path.display().to_string();
    let read_err = |source| IngestError::Read {
        path: path.clone(),
        source,
    };
    let sink_err = |source| IngestError::Sink {
        path: path.clone(),
        source,
    };
    let source::Opened {
        mut lines,
        len_hint,
        file: descriptor,
    } = opened;
    let id = lines.identity(found.live);
    let mut report = FileReport {
        path: path.clone(),
        file: id,
        status: FileStatus::NoCompleteLine,
        tally: Tally::default(),
        commits: 0,
    };
    let Some(file) = id else {
        return Ok(report);
    };
    report.tally.files = 1;
    let committed = committed_of(ctx, sink, file, known)
        .await
        .map_err(sink_err)?;
    let start = committed.events;
    // Read to its end before (plain size or gzip trailer agrees: no need to
    // read, or inflate, it again), or shorter than what was committed for
    // this identity (a copy cut short): the table holds all of it.
    if start > 0 && (len_hint == Some(start) || !lines.reader.skip_to(start).map_err(read_err)?) {
        report.status = FileStatus::AlreadyIngested { at: start };
        return Ok(report);
    }
    progress(start);
    let mut file = FileCommits {
        source: ctx.parser.source(),
        path: &path,
        live: found.live,
        id: file,
        committed,
        commits: 0,
        known,
        keep_state,
    };
    let end = read_and_commit(
        ctx,
        sink,
        state,
        (lines.reader, descriptor),
        &mut file,
        &mut report.tally,
        progress,
    )
    .await?;
    report.commits = file.commits;
    report.status = if end > start {
        FileStatus::Ingested {
            from: start,
            to: end,
        }
    } else {
        FileStatus::AlreadyIngested { at: start }
    };
    Ok(report)
}

/// What the table holds of `file` (from `known`, or looked up and noted there).
async fn committed_of(
    ctx: &IngestContext<'_>,
    sink: &DeltaSink,
    file: FileId,
    known: &mut HashMap<FileId, Committed>,
) -> Result<Committed, SinkError> {
    let committed = match known.get(&file) {
        Some(c) => *c,
        None => sink.committed(ctx.parser.source(), file).await?,
    };
    known.insert(file, committed);
    Ok(committed)
}

/// A file being read: its identity, what is committed of it, and the
/// commits of this read (recorded in `known` as they land).
struct FileCommits<'a> {
    source: &'a str,
    path: &'a str,
    live: bool,
    id: FileId,
    committed: Committed,
    commits: u32,
    known: &'a mut HashMap<FileId, Committed>,
    /// The state the commits carry instead of the file's own (an archive's).
    keep_state: Option<&'a SourceState>,
}

impl FileCommits<'_> {
    /// Commits `rows` with the offset `end` and the state reached there.
    async fn commit(
        &mut self,
        sink: &mut DeltaSink,
        rows: &Rows,
        end: u64,
        state: &SourceState,
    ) -> Result<(), SinkError> {
        let offsets = [(self.id, end)];
        let state = self.keep_state.unwrap_or(state);
        sink.commit(self.source, &offsets, &rows.events, &rows.quarantine, state)
            .await?;
        self.commits += 1;
        self.known.insert(self.id, self.committed.reached(end));
        Ok(())
    }
}

/// Reads from the reader's position to the end of the data, committing every
/// `commit_rows` rows and once at the end; returns the offset reached and
/// leaves `state` where reading stopped. On an error, rows staged and not
/// committed are discarded (a re-run reads them again from the committed
/// offset). With `ctx.threads` above one the lines are parsed on a thread of
/// their own while this one encodes and commits ([`Batches`]).
async fn read_and_commit(
    ctx: &IngestContext<'_>,
    sink: &mut DeltaSink,
    state: &mut SourceState,
    (reader, descriptor): (source::reader::LineReader<source::Content>, std::fs::File),
    file: &mut FileCommits<'_>,
    tally: &mut Tally,
    progress: &mut dyn FnMut(u64),
) -> Result<u64, IngestError> {
    let read_err = |source| IngestError::Read {
        path: file.path.to_owned(),
        source,
    };
    let file_ref = FileRef {
        id: file.id,
        path: file.path,
        quarantined_to: file.committed.quarantine,
    };
    let at_fragment = if file.live {
        AtFragment::Wait
    } else {
        AtFragment::Quarantine
    };
    let gzip = is_gzip(&descriptor);
    let cuts = stretches(ctx, &descriptor, gzip, reader.offset()).map_err(read_err)?;
    let mut batches = match cuts {
        Some(cuts) => {
            let job = Job {
                parser: ctx.parser.clone(),
                file: std::sync::Arc::new(descriptor),
                id: file.id,
                path: file.path.to_owned(),
                quarantined_to: file.committed.quarantine,
                at_fragment,
                max_line_bytes: reader.max_line_bytes(),
                max_events: ctx.max_events,
                cuts,
                state: state.clone(),
            };
            Batches::Chunked(Box::new(Chunks::start(job, ctx.threads).map_err(read_err)?))
        }
        None => {
            let reader = if ctx.threads > 1 && gzip {
                reader
                    .try_map_inner(|inner| {
                        source::ahead::ReadAhead::start(inner)
                            .map(|r| Box::new(r) as source::Content)
                    })
                    .map_err(read_err)?
            } else {
                reader
            };
            let reading = Reading::new(
                ctx.parser.clone(),
                reader,
                file_ref,
                at_fragment,
                state.clone(),
            );
            Batches::start(reading, ctx.threads, ctx.max_events).map_err(read_err)?
        }
    };
    let reached = commit_batches(ctx, sink, &mut batches, file, progress).await;
    let (at, read) = batches.finish();
    *state = at;
    tally.add(&read);
    reached
}

/// Where the stretches of a file parsed on several threads start (from
/// `at`, where reading starts), or `None` to read it on one: one thread, a
/// gzip file (a stream cannot be cut), or less than two stretches to read.
fn stretches(
    ctx: &IngestContext<'_>,
    f: &std::fs::File,
    gzip: bool,
    at: u64,
) -> std::io::Result<Option<Vec<u64>>> {
    if ctx.threads < 2 || gzip {
        return Ok(None);
    }
    let len = f.metadata()?.len();
    if len.saturating_sub(at) < ctx.stretch_bytes.saturating_mul(2) {
        return Ok(None);
    }
    let cuts = source::chunk::line_cuts(f, at, len, ctx.stretch_bytes)?;
    Ok((cuts.len() > 1).then_some(cuts))
}

/// Whether `f` is a gzip file (one that cannot be read at all is not).
fn is_gzip(f: &std::fs::File) -> bool {
    use std::os::unix::fs::FileExt;
    let mut magic = [0u8; 2];
    f.read_exact_at(&mut magic, 0).is_ok() && source::is_gzip(&magic)
}

/// Stages or commits each batch as it comes; returns the offset reached.
async fn commit_batches(
    ctx: &IngestContext<'_>,
    sink: &mut DeltaSink,
    batches: &mut Batches,
    file: &mut FileCommits<'_>,
    progress: &mut dyn FnMut(u64),
) -> Result<u64, IngestError> {
    let sink_err = |source| IngestError::Sink {
        path: file.path.to_owned(),
        source,
    };
    // With several parsing threads this one is the one they wait for, and
    // freeing a batch's events, allocated on those threads, was a tenth of
    // its work (a dense backfill on two cores took 0.86x the time without
    // it). At most two batches wait to be freed.
    let freer = if ctx.threads > 1 {
        crate::freeing::freer::<Rows>("risktail-free")
    } else {
        None
    };
    let free = |rows: Rows| match &freer {
        Some(tx) => drop(tx.send(rows)),
        None => drop(rows),
    };
    loop {
        let b = match batches.next(progress).await {
            Ok(b) => b,
            Err(source) => {
                sink.discard_staged();
                return Err(IngestError::Read {
                    path: file.path.to_owned(),
                    source,
                });
            }
        };
        if b.last {
            let done = file.known.get(&file.id).map_or(0, |c| c.events);
            if b.end > done || !b.rows.is_empty() {
                file.commit(sink, &b.rows, b.end, &b.state)
                    .await
                    .map_err(sink_err)?;
            }
            free(b.rows);
            return Ok(b.end);
        }
        if sink.staged_rows() + b.rows.len() >= ctx.commit_rows
            || sink.stage_would_exceed_days(&b.rows.events)
        {
            file.commit(sink, &b.rows, b.end, &b.state)
                .await
                .map_err(sink_err)?;
        } else {
            sink.stage(&b.rows.events, &b.rows.quarantine)
                .await
                .map_err(sink_err)?;
        }
        free(b.rows);
    }
}
