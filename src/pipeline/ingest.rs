//! Ingesting one file: resume at the committed offset, parse to the end,
//! commit in batches of at most `max_events` rows and once at the end, each
//! commit carrying the offset reached and the source state at that point.
//!
//! Used by `backfill` for whole files; a line without its newline at the end
//! of a *live* file is left for later (not consumed, not committed), at the end
//! of a sealed (rotated) file it is quarantined, since nobody will finish it.

use chrono::Utc;
use std::collections::HashMap;

use super::step::{AtFragment, FileRef, NoiseSkip, Rows, Stepped, Stepper};
use crate::config::{Config, SourceConfig};
use crate::parse::{SourceParser, SourceState};
use crate::sink::{Committed, DeltaSink, SinkError};
use crate::source;
use crate::source::discover::Found;
use crate::source::fingerprint::FileId;
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
    /// Rows per commit at most.
    pub max_events: usize,
}

impl<'a> IngestContext<'a> {
    /// The settings for `source`'s files, read with `parser`.
    pub fn new(parser: &'a SourceParser, source: &SourceConfig, config: &Config) -> Self {
        IngestContext {
            parser,
            max_line_bytes: source.max_line_bytes,
            max_events: config.flush_max_events,
        }
    }
}

/// Reads `found` from its committed offset to its end and commits what it
/// holds. `known` caches committed offsets by identity (a file and its `.gz`
/// copy share one) and is updated after each commit. `progress` is told the
/// bytes of content consumed as they are read.
pub async fn ingest_file(
    ctx: &IngestContext<'_>,
    sink: &mut DeltaSink,
    state: &mut SourceState,
    found: &Found,
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
    let source_name = ctx.parser.source().to_owned();
    let content = source::open_content(&found.path).map_err(read_err)?;
    let mut lines = source::lines(content, ctx.max_line_bytes).map_err(read_err)?;
    let mut report = FileReport {
        path: path.clone(),
        file: lines.id,
        status: FileStatus::NoCompleteLine,
        tally: Tally::default(),
        commits: 0,
    };
    let Some(file) = lines.id else {
        return Ok(report);
    };
    report.tally.files = 1;
    let committed = match known.get(&file) {
        Some(c) => *c,
        None => sink.committed(&source_name, file).await.map_err(sink_err)?,
    };
    known.insert(file, committed);
    let start = committed.events;
    if start > 0 && source::content_len_hint(&found.path) == Some(start) {
        // Read to its end before (plain size or gzip trailer agrees): no need
        // to read, or inflate, it again.
        report.status = FileStatus::AlreadyIngested { at: start };
        return Ok(report);
    }
    if start > 0 && !lines.reader.skip_to(start).map_err(read_err)? {
        // The content is shorter than what was committed for this identity
        // (a copy cut short): everything it holds is already in the table.
        report.status = FileStatus::AlreadyIngested { at: start };
        return Ok(report);
    }
    progress(start);
    let file_ref = FileRef {
        id: file,
        path: &path,
        quarantined_to: committed.quarantine,
    };
    let mut stepper = Stepper {
        parser: ctx.parser,
        now: Utc::now(),
        at_fragment: if found.live {
            AtFragment::Wait
        } else {
            AtFragment::Quarantine
        },
    };
    let mut rows = Rows::default();
    let mut skip = NoiseSkip::default();
    let mut last_progress = start;
    let mut end;
    loop {
        let stepped = stepper
            .step(
                &mut lines.reader,
                file_ref,
                state,
                &mut skip,
                &mut report.tally,
                &mut rows,
            )
            .map_err(read_err)?;
        end = lines.reader.offset();
        if end - last_progress >= 1 << 20 {
            progress(end - last_progress);
            last_progress = end;
        }
        if stepped == Stepped::End {
            break;
        }
        if rows.len() >= ctx.max_events {
            sink.commit(
                &source_name,
                &[(file, end)],
                &rows.events,
                &rows.quarantine,
                state,
            )
            .await
            .map_err(sink_err)?;
            report.commits += 1;
            known.insert(file, committed.reached(end));
            rows.clear();
            stepper.now = Utc::now();
        }
    }
    progress(end - last_progress);
    let done = known.get(&file).map_or(0, |c| c.events);
    if end > done || !rows.is_empty() {
        sink.commit(
            &source_name,
            &[(file, end)],
            &rows.events,
            &rows.quarantine,
            state,
        )
        .await
        .map_err(sink_err)?;
        report.commits += 1;
        known.insert(file, committed.reached(end));
    }
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
