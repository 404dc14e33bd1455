//! One plain file parsed on several threads at once: cut into stretches at
//! line starts ([`crate::source::chunk`]), each stretch after the first
//! parsed ahead from an empty [`SourceState`], and the results joined in
//! file order into the batches one thread would have made.
//!
//! Why the join can be exact: a line's outcome depends on the state before
//! it in two ways only.
//! - A breaker change without its old state in the message takes the state
//!   last seen. Parsed ahead, only a stretch's *first* breaker change can
//!   miss it (later ones see the change before them); the join fills it
//!   from the true state, as the enrichment would have.
//! - A time inside a repeated (autumn) hour is placed by the latest time
//!   seen. Parsed ahead, the latest time is the stretch's own; the true one
//!   is the later of that and the state before the stretch. A stretch whose
//!   first such time was placed while the true latest time was later
//!   (`SourceState::first_fold`) is read again on the joining thread, from
//!   the batch where that happened, with the true state: a stretch that
//!   starts inside an autumn hour, once a year at most.
//!
//! Everything else (ids, offsets, fields, quarantine) depends on the line
//! alone, so the rows are the one-thread rows. Memory stays bounded: no more
//! than [`STRETCHES_PER_THREAD`] stretches a thread are parsed and not yet
//! handed on, and they hold at most about `2 × max_events` rows:
//! `max_events` in the joiner's stretch and as many in the later ones
//! together.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use super::reading::{Batch, Reading};
use super::step::{AtFragment, FileRef};
use crate::event::rows::Text;
use crate::parse::{SourceParser, SourceState};
use crate::source::chunk::Stretch;
use crate::source::fingerprint::FileId;
use crate::source::reader::LineReader;
use crate::tally::Tally;

/// Stretches each thread may have taken and not yet seen joined. A thread
/// that ends a stretch while the joiner is still on an earlier one takes the
/// next instead of waiting. With `threads + 1` stretches in all, the two
/// cores of a mixed 1 GiB backfill sat idle about 8 % of the time while it
/// was parsed, and 1.4 % with three a thread; the file took 1.07× as long
/// (`docs/PERFORMANCE.md`). A stretch taken ahead holds none of the file's
/// bytes, only its reader's buffer and the rows it parsed, which the gate's
/// row bound limits whatever the number of stretches.
const STRETCHES_PER_THREAD: usize = 3;

/// A batch parsed ahead, with what its lines counted.
struct Ahead {
    batch: Batch,
    tally: Tally,
}

/// What a parsing thread sends for a stretch.
enum Sent {
    Batch(Box<Ahead>),
    Failed(io::Error),
}

/// What every stretch is read with.
pub struct Job {
    /// The source's parser.
    pub parser: SourceParser,
    /// The file (plain content), read positionally.
    pub file: Arc<std::fs::File>,
    /// Its identity.
    pub id: FileId,
    /// Its path as rows name it.
    pub path: String,
    /// Quarantine rows below this offset are in the table already.
    pub quarantined_to: u64,
    /// What a fragment at the end means.
    pub at_fragment: AtFragment,
    /// Oversize limit.
    pub max_line_bytes: usize,
    /// Rows per batch.
    pub max_events: usize,
    /// Where each stretch starts (the first at the reading's start); the
    /// last runs to the file's end.
    pub cuts: Vec<u64>,
    /// The true state at the first stretch's start.
    pub state: SourceState,
}

impl Job {
    /// A parsing of stretch `i` from `at` (a line start inside it) with `state`.
    fn reading(&self, i: usize, at: u64, state: SourceState) -> Reading {
        let end = self.cuts.get(i + 1).copied();
        let stretch = Stretch::new(self.file.clone(), at, end);
        let reader = LineReader::new(
            Box::new(stretch) as crate::source::Content,
            at,
            self.max_line_bytes,
        );
        let file = FileRef {
            id: self.id,
            path: &self.path,
            quarantined_to: self.quarantined_to,
        };
        Reading::new(self.parser.clone(), reader, file, self.at_fragment, state)
    }
}

/// How far the parsing threads may run ahead of the joiner.
#[derive(Default)]
struct Gate {
    /// Stretches that may still be taken before the joiner finishes one.
    free: usize,
    /// Rows parsed and sent, not yet taken by the joiner, in all and per
    /// stretch (below zero for a moment when the joiner takes a batch
    /// before its sender counts it).
    queued: isize,
    queued_by: Vec<isize>,
    /// The stretch the joiner is on.
    current: usize,
}

impl Gate {
    /// Whether stretch `i`'s thread may parse another batch: the joiner's
    /// stretch while its own rows queued are under `max`, a later one while
    /// the rows queued in all later ones are.
    fn room(&self, i: usize, max: isize) -> bool {
        let of = |j: usize| self.queued_by.get(j).copied().unwrap_or(0);
        match i.cmp(&self.current) {
            std::cmp::Ordering::Less => true,
            std::cmp::Ordering::Equal => of(i) < max,
            std::cmp::Ordering::Greater => self.queued - of(self.current) < max,
        }
    }

    /// Counts `rows` sent (or, negative, taken) of stretch `i`.
    fn count(&mut self, i: usize, rows: isize) {
        self.queued += rows;
        if let Some(q) = self.queued_by.get_mut(i) {
            *q += rows;
        }
    }
}

/// What the parsing threads and the joining one share.
struct Shared {
    job: Job,
    /// The next stretch to parse.
    next: AtomicUsize,
    gate: Mutex<Gate>,
    opened: Condvar,
    /// Rows the joiner's stretch, and the later ones together, may hold
    /// parsed and not yet taken: bounds the memory of a file dense with
    /// events, where the commits are slower than the parsing.
    max_ahead: isize,
    stop: AtomicBool,
    /// Content bytes parsed, not yet reported.
    consumed: AtomicU64,
    /// Each stretch's sender, taken by the thread that parses it.
    senders: Mutex<Vec<Option<tokio::sync::mpsc::UnboundedSender<Sent>>>>,
}

impl Shared {
    fn gate(&self) -> std::sync::MutexGuard<'_, Gate> {
        self.gate.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until `open` holds of the gate or the joiner stopped; then
    /// applies `take` to it. Returns false when stopped.
    fn wait_for(&self, open: impl Fn(&Gate) -> bool, take: impl FnOnce(&mut Gate)) -> bool {
        let mut gate = self.gate();
        while !open(&gate) && !self.stop.load(Ordering::Relaxed) {
            gate = self.opened.wait(gate).unwrap_or_else(|p| p.into_inner());
        }
        if self.stop.load(Ordering::Relaxed) {
            return false;
        }
        take(&mut gate);
        true
    }

    /// Changes the gate on the joiner's side and wakes the waiting threads.
    fn open(&self, change: impl FnOnce(&mut Gate)) {
        change(&mut self.gate());
        self.opened.notify_all();
    }

    /// The next stretch to parse, once fewer than the bound are pending;
    /// `None` when all are taken or the joiner stopped.
    fn claim(&self) -> Option<(usize, tokio::sync::mpsc::UnboundedSender<Sent>)> {
        if !self.wait_for(|g| g.free > 0, |g| g.free -= 1) {
            return None;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        let tx = self
            .senders
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(i)
            .and_then(Option::take);
        if tx.is_none() {
            self.open(|g| g.free += 1);
        }
        Some((i, tx?))
    }

    /// A parsing thread: stretch after stretch, each to its end.
    fn work(&self) {
        while let Some((i, tx)) = self.claim() {
            let state = if i == 0 {
                self.job.state.clone()
            } else {
                SourceState::default()
            };
            let mut reading = self.job.reading(i, self.job.cuts[i], state);
            let mut tick = |n| {
                self.consumed.fetch_add(n, Ordering::Relaxed);
            };
            let room = |g: &Gate| g.room(i, self.max_ahead);
            while self.wait_for(room, |_| {}) {
                let sent = match reading.next_batch(self.job.max_events, &mut tick) {
                    Ok(batch) => {
                        let tally = std::mem::take(&mut reading.tally);
                        Sent::Batch(Box::new(Ahead { batch, tally }))
                    }
                    Err(e) => Sent::Failed(e),
                };
                let (rows, done) = match &sent {
                    Sent::Batch(a) => (rows_of(&a.batch), a.batch.last),
                    Sent::Failed(_) => (0, true),
                };
                if tx.send(sent).is_err() {
                    break;
                }
                self.gate().count(i, rows);
                if done {
                    break;
                }
            }
        }
    }
}

/// The joining side: hands out the batches in file order with the true
/// state, as [`super::batches::Batches`] does.
pub struct Chunks {
    shared: Arc<Shared>,
    threads: Vec<std::thread::JoinHandle<()>>,
    receivers: Vec<Option<tokio::sync::mpsc::UnboundedReceiver<Sent>>>,
    /// The stretch being joined.
    current: usize,
    /// The true state at its start.
    start: SourceState,
    /// The true state after the last batch handed out, and its end.
    at: SourceState,
    resume_at: u64,
    /// Whether the current stretch's first breaker change is still to come.
    breaker_open: bool,
    /// The current stretch read again on this thread (a repeated hour).
    again: Option<Box<Reading>>,
    tally: Tally,
}

impl Chunks {
    /// Starts `threads` parsing threads on `job`'s stretches.
    pub fn start(job: Job, threads: usize) -> io::Result<Chunks> {
        let (n, job_max_events) = (job.cuts.len(), job.max_events);
        let (senders, receivers): (Vec<_>, Vec<_>) = (0..n)
            .map(|_| {
                let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
                (Some(tx), Some(rx))
            })
            .unzip();
        let (start, resume_at) = (job.state.clone(), job.cuts[0]);
        let shared = Arc::new(Shared {
            job,
            next: AtomicUsize::new(0),
            gate: Mutex::new(Gate {
                free: threads.max(1) * STRETCHES_PER_THREAD,
                queued_by: vec![0; n],
                ..Gate::default()
            }),
            opened: Condvar::new(),
            max_ahead: isize::try_from(job_max_events).unwrap_or(isize::MAX),
            stop: AtomicBool::new(false),
            consumed: AtomicU64::new(0),
            senders: Mutex::new(senders),
        });
        let mut chunks = Chunks {
            shared: shared.clone(),
            threads: Vec::new(),
            receivers,
            current: 0,
            at: start.clone(),
            start,
            resume_at,
            breaker_open: false,
            again: None,
            tally: Tally::default(),
        };
        for _ in 0..threads.max(1) {
            let s = shared.clone();
            let spawned = std::thread::Builder::new()
                .name("risktail-parse".into())
                .spawn(move || s.work());
            match spawned {
                Ok(t) => chunks.threads.push(t),
                Err(e) if chunks.threads.is_empty() => return Err(e),
                Err(_) => break,
            }
        }
        Ok(chunks)
    }

    /// The next batch in file order (after one with `last`, an error).
    pub async fn next(&mut self, progress: &mut dyn FnMut(u64)) -> io::Result<Batch> {
        loop {
            if let Some(again) = self.again.as_mut() {
                let batch = again.next_batch(self.shared.job.max_events, progress)?;
                self.tally.add(&std::mem::take(&mut again.tally));
                if batch.last {
                    self.again = None;
                }
                if let Some(b) = self.hand_on(batch) {
                    return Ok(b);
                }
                continue;
            }
            let i = self.current;
            let rx = self
                .receivers
                .get_mut(i)
                .and_then(Option::as_mut)
                .ok_or_else(|| io::Error::other("read past the file's last stretch"))?;
            let got = rx.recv().await;
            progress(self.shared.consumed.swap(0, Ordering::Relaxed));
            let ahead = match got {
                Some(Sent::Batch(a)) => {
                    self.shared.open(|g| g.count(i, -rows_of(&a.batch)));
                    *a
                }
                Some(Sent::Failed(e)) => return Err(e),
                None => return Err(io::Error::other("a parsing thread stopped")),
            };
            if i > 0 && !fold_agrees(self.start.last_time, ahead.batch.state.first_fold) {
                // Its thread finds its sender closed and moves on.
                self.abandon(i);
                let reading = self.shared.job.reading(i, self.resume_at, self.at.clone());
                self.again = Some(Box::new(reading));
                continue;
            }
            self.tally.add(&ahead.tally);
            let batch = self.join(ahead.batch);
            if let Some(b) = self.hand_on(batch) {
                return Ok(b);
            }
        }
    }

    /// A batch parsed ahead from an empty state, made what it would have
    /// been with the true one (see the module's comment).
    fn join(&mut self, mut b: Batch) -> Batch {
        if self.current == 0 {
            return b;
        }
        if self.breaker_open {
            let change = (b.rows.events.iter().enumerate())
                .find(|(_, e)| {
                    e.component() == "circuit_breaker" && e.text(Text::NewState).is_some()
                })
                .map(|(i, e)| (i, e.text(Text::OldState).is_some()));
            if let Some((i, has_old)) = change {
                if !has_old {
                    let old = self.start.breaker.as_deref();
                    b.rows.events.set_text(i, Text::OldState, old);
                }
                self.breaker_open = false;
            }
        }
        let ahead = &b.state;
        b.state = SourceState {
            breaker: ahead.breaker.clone().or_else(|| self.start.breaker.clone()),
            last_time: ahead.last_time.max(self.start.last_time),
            first_fold: None,
        };
        b
    }

    /// Records a joined batch; at a stretch's end moves to the next one.
    /// Returns it unless it holds nothing worth a step of its own (an empty
    /// batch ending a stretch that is not the last).
    fn hand_on(&mut self, mut b: Batch) -> Option<Batch> {
        self.resume_at = b.end;
        self.at = b.state.clone();
        if b.last {
            self.receivers[self.current] = None;
            self.current += 1;
            let current = self.current;
            self.shared.open(|g| {
                g.free += 1;
                g.current = current;
            });
            self.start = self.at.clone();
            self.breaker_open = true;
            if self.current < self.receivers.len() {
                b.last = false;
            }
        }
        if !b.last && b.rows.is_empty() {
            return None;
        }
        Some(b)
    }

    /// Drops what stretch `i`'s thread parsed ahead (it is read again here).
    fn abandon(&mut self, i: usize) {
        if let Some(mut rx) = self.receivers[i].take() {
            rx.close();
            let mut rows = 0;
            while let Ok(sent) = rx.try_recv() {
                if let Sent::Batch(a) = sent {
                    rows += rows_of(&a.batch);
                }
            }
            self.shared.open(|g| g.count(i, -rows));
        }
    }

    /// Stops the threads and gives back the state and tally reached.
    pub fn finish(mut self) -> (SourceState, Tally) {
        self.stop();
        for t in std::mem::take(&mut self.threads) {
            // A panic while parsing is a bug: carry it to this thread.
            if let Err(p) = t.join() {
                std::panic::resume_unwind(p);
            }
        }
        (
            std::mem::take(&mut self.at),
            std::mem::take(&mut self.tally),
        )
    }

    fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.receivers.clear();
        self.shared.open(|_| {});
    }
}

impl Drop for Chunks {
    fn drop(&mut self) {
        self.stop();
    }
}

fn rows_of(b: &Batch) -> isize {
    isize::try_from(b.rows.len()).unwrap_or(isize::MAX)
}

/// Whether a stretch parsed ahead placed its times as the true state would
/// have: it placed none by the latest time (`None`), or the true latest time
/// at the stretch's start (`before`) was not after the one it used.
fn fold_agrees(
    before: Option<chrono::DateTime<chrono::Utc>>,
    first_fold: Option<Option<chrono::DateTime<chrono::Utc>>>,
) -> bool {
    match first_fold {
        None => true,
        Some(used) => before <= used,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::time::Duration;

    /// A job over a file of `n` noise lines, one stretch each.
    fn job(n: usize) -> Job {
        let line = b"2026-01-05 10:00:00,000 - v6.feed - DEBUG - quote SPY bid=1.00\n";
        let mut f = tempfile::tempfile().expect("temp file");
        for _ in 0..n {
            f.write_all(line).expect("write");
        }
        Job {
            parser: super::super::step::parser_of("python", "UTC"),
            file: Arc::new(f),
            id: FileId::from_head(line),
            path: "x.log".into(),
            quarantined_to: 0,
            at_fragment: AtFragment::Quarantine,
            max_line_bytes: 1 << 20,
            max_events: 10,
            cuts: (0..n as u64).map(|i| i * line.len() as u64).collect(),
            state: SourceState::default(),
        }
    }

    /// The batch stretch `i`'s thread sent, once it has (the bound only
    /// turns a thread that never sends into a failure).
    async fn sent(chunks: &mut Chunks, i: usize) -> Option<Batch> {
        let rx = chunks.receivers[i].as_mut()?;
        match tokio::time::timeout(Duration::from_secs(60), rx.recv()).await {
            Ok(Some(Sent::Batch(a))) => Some(a.batch),
            _ => None,
        }
    }

    #[tokio::test]
    async fn a_thread_parses_three_stretches_ahead_of_the_joiner_and_no_more() {
        let mut chunks = Chunks::start(job(6), 1).expect("start");
        // Nothing joined yet: the one thread still parses stretches 0 to 2.
        let first = sent(&mut chunks, 0).await.expect("stretch 0 parsed");
        assert!(first.last, "a one-line stretch is one batch");
        assert!(sent(&mut chunks, 1).await.is_some(), "stretch 1 not parsed");
        assert!(sent(&mut chunks, 2).await.is_some(), "stretch 2 not parsed");
        // It waits for a free stretch before counting a fourth as taken.
        assert_eq!(
            chunks.shared.next.load(Ordering::Relaxed),
            STRETCHES_PER_THREAD
        );
        let fourth = chunks.receivers[3].as_mut().expect("receiver").try_recv();
        assert!(
            fourth.is_err(),
            "a fourth stretch was parsed before any was joined"
        );
        // The joiner done with stretch 0: the thread takes the fourth.
        chunks.hand_on(first);
        assert!(
            sent(&mut chunks, 3).await.is_some(),
            "joining one did not let the thread go on"
        );
    }
}
