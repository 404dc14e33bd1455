//! A file's lines parsed into batches of rows for the sink: on the caller's
//! thread, or on a thread of its own that parses the next batch while the
//! caller encodes and commits the one before (a backfill's second core).
//! Either way one [`Stepper`] takes the same steps over one reader in the
//! same order, so the rows, their ids and offsets, and the source state each
//! batch ends with are the same; only where the parsing runs differs.

use chrono::Utc;
use std::io;

use super::chunks::Chunks;
use super::step::{AtFragment, FileRef, NoiseSkip, Rows, Stepped, Stepper};
use crate::parse::{SourceParser, SourceState};
use crate::source::Content;
use crate::source::fingerprint::FileId;
use crate::source::reader::LineReader;
use crate::tally::Tally;

/// Batches the parsing thread may hold ready ahead of the committer: bounds
/// the rows in memory to a few `max_events`.
const AHEAD: usize = 4;

/// Content bytes between two progress reports.
const PROGRESS_STEP: u64 = 1 << 20;

/// A stretch of the file parsed: `max_events` rows or more, or the rest.
#[derive(Debug)]
pub struct Batch {
    /// The rows, in file order.
    pub rows: Rows,
    /// The offset the stretch ends at (what a commit of it records).
    pub end: u64,
    /// The source state after its last line (what a commit of it carries).
    pub state: SourceState,
    /// Whether the data ends here.
    pub last: bool,
}

/// One file's parsing: the reader, the state it enriches lines with, and
/// what it counted.
pub struct Reading {
    parser: SourceParser,
    reader: LineReader<Content>,
    id: FileId,
    path: String,
    quarantined_to: u64,
    at_fragment: AtFragment,
    skip: NoiseSkip,
    reported: u64,
    /// The source state at the reader's position.
    pub state: SourceState,
    /// What the lines read so far were.
    pub tally: Tally,
}

impl Reading {
    /// Parsing of `reader` (positioned where reading starts) for `file`,
    /// starting from `state`.
    pub fn new(
        parser: SourceParser,
        reader: LineReader<Content>,
        file: FileRef<'_>,
        at_fragment: AtFragment,
        state: SourceState,
    ) -> Reading {
        Reading {
            parser,
            reported: reader.offset(),
            reader,
            id: file.id,
            path: file.path.to_owned(),
            quarantined_to: file.quarantined_to,
            at_fragment,
            skip: NoiseSkip::default(),
            state,
            tally: Tally::default(),
        }
    }

    /// Parses up to `max_events` rows or the end of the data, telling
    /// `progress` of the content bytes consumed about every MiB.
    pub fn next_batch(
        &mut self,
        max_events: usize,
        progress: &mut dyn FnMut(u64),
    ) -> io::Result<Batch> {
        let stepper = Stepper {
            parser: &self.parser,
            now: Utc::now(),
            at_fragment: self.at_fragment,
        };
        let file = FileRef {
            id: self.id,
            path: &self.path,
            quarantined_to: self.quarantined_to,
        };
        let mut rows = Rows::default();
        loop {
            let stepped = stepper.step(
                &mut self.reader,
                file,
                &mut self.state,
                &mut self.skip,
                &mut self.tally,
                &mut rows,
            )?;
            let end = self.reader.offset();
            let last = stepped == Stepped::End;
            if last || end - self.reported >= PROGRESS_STEP {
                progress(end - self.reported);
                self.reported = end;
            }
            if last || rows.len() >= max_events {
                return Ok(Batch {
                    rows,
                    end,
                    state: self.state.clone(),
                    last,
                });
            }
        }
    }
}

/// What the parsing thread sends. Progress does not go through the channel
/// (a message per MiB would fill it and stall the parsing while a commit
/// runs): the thread adds it to a counter the receiver reads.
pub enum Sent {
    /// A batch.
    Batch(Batch),
    /// Reading failed (the thread stops).
    Failed(io::Error),
}

/// Where the batches come from.
pub enum Batches {
    /// Parsed on the caller's thread when asked for.
    Here {
        /// The parsing.
        reading: Box<Reading>,
        /// Rows per batch.
        max_events: usize,
    },
    /// Parsed ahead on a thread of its own.
    Ahead {
        /// Batches, in order.
        rx: tokio::sync::mpsc::Receiver<Sent>,
        /// Content bytes consumed by the thread, not yet reported.
        consumed: std::sync::Arc<std::sync::atomic::AtomicU64>,
        /// The thread, which gives the parsing back when it stops.
        thread: std::thread::JoinHandle<Reading>,
    },
    /// One plain file parsed in stretches on several threads, joined in
    /// file order ([`Chunks`]).
    Chunked(Box<Chunks>),
}

impl Batches {
    /// Batches of `reading`, parsed ahead on a thread of its own when
    /// `threads` is more than one.
    pub fn start(reading: Reading, threads: usize, max_events: usize) -> io::Result<Batches> {
        if threads <= 1 {
            return Ok(Batches::Here {
                reading: Box::new(reading),
                max_events,
            });
        }
        let (tx, rx) = tokio::sync::mpsc::channel(AHEAD);
        let consumed = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = consumed.clone();
        let thread = std::thread::Builder::new()
            .name("risktail-parse".into())
            .spawn(move || parse_ahead(reading, max_events, &tx, &counter))?;
        Ok(Batches::Ahead {
            rx,
            consumed,
            thread,
        })
    }

    /// The next batch (after one with `last`, an error).
    pub async fn next(&mut self, progress: &mut dyn FnMut(u64)) -> io::Result<Batch> {
        match self {
            Batches::Here {
                reading,
                max_events,
            } => reading.next_batch(*max_events, progress),
            Batches::Ahead { rx, consumed, .. } => {
                let got = rx.recv().await;
                progress(consumed.swap(0, std::sync::atomic::Ordering::Relaxed));
                match got {
                    Some(Sent::Batch(b)) => Ok(b),
                    Some(Sent::Failed(e)) => Err(e),
                    None => Err(io::Error::other("the parsing thread stopped")),
                }
            }
            Batches::Chunked(chunks) => chunks.next(progress).await,
        }
    }

    /// Stops the parsing (a thread stops at its next batch) and gives back
    /// the state and tally where it stopped.
    pub fn finish(self) -> (SourceState, Tally) {
        let reading = match self {
            Batches::Chunked(chunks) => return chunks.finish(),
            Batches::Here { reading, .. } => *reading,
            Batches::Ahead { rx, thread, .. } => {
                drop(rx);
                // A panic while parsing is a bug: carry it to this thread.
                thread
                    .join()
                    .unwrap_or_else(|p| std::panic::resume_unwind(p))
            }
        };
        (reading.state, reading.tally)
    }
}

/// The parsing thread: batch after batch until the end, an error, or the
/// receiver gone.
fn parse_ahead(
    mut reading: Reading,
    max_events: usize,
    tx: &tokio::sync::mpsc::Sender<Sent>,
    consumed: &std::sync::atomic::AtomicU64,
) -> Reading {
    loop {
        let mut tick = |n| {
            consumed.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        };
        match reading.next_batch(max_events, &mut tick) {
            Ok(b) => {
                let last = b.last;
                if tx.blocking_send(Sent::Batch(b)).is_err() || last {
                    return reading;
                }
            }
            Err(e) => {
                let _ = tx.blocking_send(Sent::Failed(e));
                return reading;
            }
        }
    }
}
