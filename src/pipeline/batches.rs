//! Where a file's batches of rows ([`Reading`]) are made: on the caller's
//! thread, on a thread of its own that parses the next batch while the
//! caller encodes and commits the one before (a backfill's second core), or
//! in stretches on several threads ([`Chunks`]). The first two take the same
//! steps over one reader in the same order; the third joins its stretches
//! into the same rows, ids, offsets and source states (see its module).

use std::io;

use super::chunks::Chunks;
pub use super::reading::{Batch, Reading};
use crate::parse::SourceState;
use crate::tally::Tally;

/// Batches the parsing thread may hold ready ahead of the committer: bounds
/// the rows in memory to a few `max_events`.
const AHEAD: usize = 4;

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
