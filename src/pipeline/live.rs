//! One source, live: its files followed through rotation
//! ([`crate::source::follow`]), their new lines taken through the same step as
//! every other reader ([`super::step`]), rows held in [`Pending`] and
//! committed with every advanced offset and the source's state in one commit.
//!
//! Startup recovery lives here too: rotated files the table has not finished
//! (rotated while the daemon was down) are read to their end, oldest first,
//! before the live files, so the state machine sees the source in order.

use chrono::Utc;
use std::collections::{HashMap, HashSet};

use super::ingest::{IngestContext, ingest_file};
use super::pending::{FlushPolicy, Pending};
use super::step::{AtFragment, FileRef, NoiseSkip, Rows, Stepped, Stepper};
use crate::metrics::{self, Metrics};
use crate::parse::{SourceParser, SourceState};
use crate::sink::{Committed, DeltaSink, SinkError};
use crate::source;
use crate::source::discover::{self, Found};
use crate::source::follow::{FollowSettings, Follower, Generation};
use crate::tally::Tally;
use std::sync::Arc;

/// What a poll read.
#[derive(Debug, Default)]
pub struct PollReport {
    /// Lines read.
    pub lines: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Reading stopped at the pending-rows bound: there is more to read as
    /// soon as a commit makes room.
    pub saturated: bool,
}

/// One source's files, parser, state and rows not yet committed.
pub struct LiveSource {
    name: String,
    follower: Follower,
    parser: SourceParser,
    state: SourceState,
    pending: Pending,
    /// Lines read, events and quarantined since start (a poll's report is
    /// what it added).
    tally: Tally,
    metrics: Option<Arc<Metrics>>,
    /// The last commit failed: what of it landed is not known yet.
    unsure: bool,
}

impl LiveSource {
    /// A source starting from the state committed in the table.
    /// `first_start` says the source has never committed (for `start_at`).
    pub fn new(
        follow: FollowSettings,
        parser: SourceParser,
        state: SourceState,
        first_start: bool,
    ) -> LiveSource {
        LiveSource {
            name: follow.source.clone(),
            follower: Follower::new(follow, first_start),
            parser,
            state,
            pending: Pending::default(),
            tally: Tally::default(),
            metrics: None,
            unsure: false,
        }
    }

    /// Reads files deleted before a look found them from `holder` (see
    /// `source::hold`).
    pub fn hold_with(&mut self, holder: Arc<crate::source::hold::Holder>) {
        self.follower.hold_with(holder);
    }

    /// Counts lines and bytes read, and the bytes behind, in `metrics`.
    pub fn set_metrics(&mut self, metrics: Arc<Metrics>) {
        self.metrics = Some(metrics);
    }

    /// Counts what recovery read before the source went live.
    pub fn recovered(&mut self, tally: &Tally) {
        self.observe(&PollReport {
            lines: tally.lines,
            bytes: tally.bytes,
            saturated: false,
        });
    }

    fn observe(&self, report: &PollReport) {
        if let Some(m) = &self.metrics {
            let labels = metrics::source(&self.name);
            m.lines_read.get_or_create(&labels).inc_by(report.lines);
            m.bytes_read.get_or_create(&labels).inc_by(report.bytes);
            let behind = i64::try_from(self.follower.bytes_behind()).unwrap_or(i64::MAX);
            m.bytes_behind.get_or_create(&labels).set(behind);
        }
    }

    /// The source's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Replaces the parser's patterns (SIGHUP reload).
    pub fn parser_mut(&mut self) -> &mut SourceParser {
        &mut self.parser
    }

    /// The rows waiting for a commit.
    pub fn pending(&self) -> &Pending {
        &self.pending
    }

    /// Whether a commit is due under `policy`.
    pub fn due(&self, policy: &FlushPolicy) -> bool {
        self.pending.due(policy, self.follower.has_advanced())
    }

    /// When a rotated file read to its end and committed can be let go.
    pub fn retire_at(&self) -> Option<std::time::Instant> {
        self.follower.retire_at()
    }

    /// Looks for new, rotated and truncated files (when `look` is asked, or
    /// a live file no longer holds what was read), then reads every
    /// generation (oldest first) until the pending rows reach the bound.
    /// Without a look, a poll costs a `stat` and a `pread` per live file plus
    /// the reads: what an engine's steady writing needs.
    pub async fn poll(
        &mut self,
        sink: &DeltaSink,
        policy: &FlushPolicy,
        look: bool,
    ) -> Result<PollReport, SinkError> {
        if look || !self.follower.live_intact() {
            self.follower.look(sink).await?;
        }
        let mut report = PollReport::default();
        let mut pass = Pass {
            parser: &self.parser,
            state: &mut self.state,
            pending: &mut self.pending,
            tally: &mut self.tally,
            policy,
            now: Utc::now(),
        };
        // Oldest first, and a generation not read to its end (the rows
        // bound, a read error) holds back the newer ones: the state machine
        // must see the source in time order.
        // A rotated file still being compressed holds back everything
        // newer: nothing is read until a look takes it in.
        let gens = if self.follower.waiting() {
            &mut []
        } else {
            self.follower.generations_mut()
        };
        for g in gens {
            if pass.pending.full(policy) || !pass.read(g, &mut report) {
                break;
            }
        }
        report.saturated = self.pending.full(policy);
        self.follower.retire();
        self.observe(&report);
        Ok(report)
    }

    /// Commits the pending rows and every advanced offset in one commit.
    /// On failure the rows stay pending and the next flush tries again, after
    /// asking the table what landed (see [`LiveSource::reconcile`]). Returns
    /// whether anything was committed.
    pub async fn flush(&mut self, sink: &mut DeltaSink) -> Result<bool, SinkError> {
        // A flush given up half way (SIGTERM) may have left rows staged:
        // they are pending here too, and must not ride twice.
        sink.discard_staged();
        if self.unsure {
            self.reconcile(sink).await?;
        }
        let offsets = self.follower.advanced();
        let rows = &self.pending.rows;
        if offsets.is_empty() && rows.is_empty() {
            if self.pending.first().is_some() {
                self.pending.committed(); // all of it had landed
            }
            return Ok(false);
        }
        // Unsure until it answers: a commit abandoned half way (SIGTERM)
        // is asked about like a failed one.
        self.unsure = true;
        let committed = sink
            .commit(
                &self.name,
                &offsets,
                &rows.events,
                &rows.quarantine,
                &self.state,
            )
            .await;
        committed?;
        self.unsure = false;
        self.follower.committed(&offsets);
        self.pending.committed();
        self.observe(&PollReport::default());
        Ok(true)
    }

    /// After a failed commit, what of it landed, as the reloaded tables say:
    /// its quarantine rows (committed first), or all of it (an answer lost
    /// after the store kept it). Only where a table shows a file further
    /// than this process knew it had committed are that file's pending rows
    /// below the table's offset dropped (and counted as committed), so the
    /// next commit, which carries the rows read since as well, makes none of
    /// them twice. Rows are matched by file identity, never by path: after a
    /// rotation a newer file at the same path holds other lines at the same
    /// offsets. Fails, keeping everything, while the tables cannot be read.
    async fn reconcile(&mut self, sink: &mut DeltaSink) -> Result<(), SinkError> {
        sink.refresh().await?;
        let mut landed = Rows::default();
        for g in self.follower.generations_mut() {
            if g.offset() <= g.committed.events {
                continue;
            }
            let table = sink.committed(&self.name, g.id).await?;
            let known = g.committed;
            let events_to = if table.events > known.events {
                table.events
            } else {
                0
            };
            let quarantine_to = if table.quarantine > known.quarantine {
                table.quarantine
            } else {
                0
            };
            if events_to == 0 && quarantine_to == 0 {
                continue;
            }
            let gone = self
                .pending
                .rows
                .take_landed(g.id, events_to, quarantine_to);
            tracing::info!(source = %self.name, file = %g.path, id = %g.id,
                events_to = table.events, quarantine_to = table.quarantine,
                events = gone.events.len(), quarantined = gone.quarantine.len(),
                "a failed commit had landed (in part): not committing its rows again");
            landed.extend(gone);
            g.committed = Committed {
                events: known.events.max(table.events),
                quarantine: known.quarantine.max(table.quarantine),
            };
        }
        sink.record_landed(&self.name, &landed.events, &landed.quarantine, &self.state);
        self.unsure = false;
        Ok(())
    }
}

/// One poll's reading of a source's generations.
struct Pass<'a> {
    parser: &'a SourceParser,
    state: &'a mut SourceState,
    pending: &'a mut Pending,
    tally: &'a mut Tally,
    policy: &'a FlushPolicy,
    now: chrono::DateTime<Utc>,
}

impl Pass<'_> {
    /// Reads one generation's new lines until its data ends or the pending
    /// rows reach the bound. Returns whether its data ended (what it holds
    /// now is read).
    fn read(&mut self, g: &mut Generation, report: &mut PollReport) -> bool {
        // A line without its newline is never emitted; once the file is
        // sealed and quiet, nobody will finish it.
        let stepper = Stepper {
            parser: self.parser,
            now: self.now,
            at_fragment: if g.sealed_and_quiet() {
                AtFragment::Quarantine
            } else {
                AtFragment::Wait
            },
        };
        let file = FileRef {
            id: g.id,
            path: &g.path,
            quarantined_to: g.committed.quarantine,
        };
        let (lines, bytes, start) = (self.tally.lines, self.tally.bytes, g.reader.offset());
        let mut skip = NoiseSkip::default();
        let mut ended = false;
        while !self.pending.full(self.policy) {
            let rows = &mut self.pending.rows;
            match stepper.step(&mut g.reader, file, self.state, &mut skip, self.tally, rows) {
                Ok(Stepped::Read) => {}
                Ok(Stepped::End) => {
                    ended = true;
                    break;
                }
                Err(e) => {
                    tracing::warn!(source = %self.parser.source(), file = %g.path, offset = g.reader.offset(), error = %e,
                        "read failed; newer files wait, and this one is read again from here");
                    g.reopen();
                    break;
                }
            }
        }
        self.pending.touched();
        report.lines += self.tally.lines - lines;
        report.bytes += self.tally.bytes - bytes;
        let moved = g.reader.offset() > start;
        g.read_done(moved);
        ended
    }
}

/// Opens every rotated file of `pattern` once (by identity), newest first.
/// The engine may rotate while this runs, and a name listed a moment ago can
/// name a newer file by the time it is opened; an open descriptor keeps its
/// content. Newest first, because a rotation renames every file one place
/// older: the files not opened yet move further along the list, not behind
/// it; what moved past its end is caught by listing again (up to three times,
/// until a listing opens nothing new).
fn open_rotated(
    pattern: &str,
    ctx: &IngestContext<'_>,
    source: &str,
) -> Vec<(Found, source::Opened)> {
    let mut files: Vec<(Found, source::Opened)> = Vec::new();
    let mut ids = HashSet::new();
    for _ in 0..3 {
        let mut added = false;
        for found in discover::family(pattern)
            .unwrap_or_default()
            .into_iter()
            .rev()
        {
            if found.live {
                continue;
            }
            match source::open(&found.path, ctx.max_line_bytes, &ctx.heads) {
                Ok(opened) => {
                    let Some(id) = opened.lines.finished_id else {
                        continue; // empty: nothing to read
                    };
                    if ids.insert(id) {
                        files.push((found, opened));
                        added = true;
                    }
                }
                Err(e) => {
                    tracing::warn!(source, file = %found.path.display(), error = %e, "cannot open rotated file (renamed meanwhile?)")
                }
            }
        }
        if !added {
            break;
        }
    }
    files
}

/// Sets the source's `risktail_undecided_files` from the table's marks on
/// the files of its families (a backfill sets them; see
/// `DeltaSink::note_undecided`). A file that cannot be read is not counted.
async fn count_undecided(ctx: &IngestContext<'_>, sink: &DeltaSink, follow: &FollowSettings) {
    let mut n = 0;
    for pattern in &follow.paths {
        for f in source::discover::family(pattern).unwrap_or_default() {
            let id = source::open(&f.path, ctx.max_line_bytes, &ctx.heads)
                .ok()
                .and_then(|o| o.lines.identity(f.live));
            if let Some(id) = id
                && sink.is_undecided(&follow.source, id).await.unwrap_or(false)
            {
                n += 1;
            }
        }
    }
    sink.report_undecided(&follow.source, n);
}

/// Finishes the rotated files of `follow`'s source that the table has not
/// read to their end (rotated while nobody was reading), oldest first, so the
/// live files continue from the right state. A file that cannot be read is
/// logged and left: the live file matters more.
pub async fn recover(
    ctx: &IngestContext<'_>,
    sink: &mut DeltaSink,
    state: &mut SourceState,
    follow: &FollowSettings,
    first_start: bool,
) -> Tally {
    if follow.skip_existing(first_start) {
        // start_at = "end" at the first start: the follower passes over what
        // the rotated files hold (and commits their end offsets).
        return Tally::default();
    }
    count_undecided(ctx, sink, follow).await;
    let mut known = HashMap::new();
    let mut tally = Tally::default();
    for pattern in &follow.paths {
        // Opened newest first; read in rotation order, except where the
        // first records' times surely say otherwise (a rename during the
        // listing). Times a fold leaves open keep rotation order.
        let mut files = open_rotated(pattern, ctx, &follow.source);
        files.reverse();
        let files = source::time_order(
            files,
            |(f, _)| &f.path,
            |(_, o)| o.lines.first,
            ctx.max_line_bytes,
            &ctx.heads,
        );
        for (found, opened) in files {
            let file = (&found, opened);
            let before = state.clone();
            match ingest_file(ctx, sink, state, None, file, &mut known, &mut |_| {}).await {
                Ok(r) => {
                    tracing::info!(source = %follow.source, file = %r.path, status = ?r.status, "recovered rotated file");
                    tally.add(&r.tally);
                }
                Err(e) => {
                    // What it read past its last commit is not committed,
                    // so the state goes back to where the table has it (a
                    // large file may have committed part of itself), and
                    // the newer files wait: the follower reads this one and
                    // them as rotated siblings, in time order (a gzip still
                    // being written by a rotator ends in such an error).
                    match sink.source_state(&follow.source).await {
                        Ok(committed) => *state = committed.unwrap_or_default(),
                        Err(e) => {
                            tracing::warn!(source = %follow.source, error = %e, "cannot read the committed state back; using the one before this file");
                            *state = before;
                        }
                    }
                    tracing::warn!(source = %follow.source, error = %e, "cannot finish a rotated file now; the follower reads it and the newer ones in order");
                    break;
                }
            }
        }
    }
    tally
}
