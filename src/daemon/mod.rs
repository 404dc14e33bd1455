//! `risktail run`: the sidecar's loop. Given the loaded config and the open
//! table (see `commands::run`, which also takes the sources' locks), it
//! recovers each source from the table, then waits for file events and
//! signals, reads what is new, and commits every `flush.interval_ms` or
//! `flush.max_events`, whichever comes first.
//!
//! One thread, event driven ([`wake`]): inotify wakes it within milliseconds
//! of a write; a look every few seconds is only a safety net. SIGTERM/SIGINT
//! flush and exit, SIGHUP reloads the pattern files. The reading and the
//! rows are the pipeline's (`pipeline::live`); this module only decides when.

pub mod sd_notify;
pub mod wake;

use anyhow::{Context, Result};
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;

use crate::config::Config;
use crate::metrics::{self, Metrics};
use crate::pipeline::ingest::IngestContext;
use crate::pipeline::live::{self, LiveSource};
use crate::pipeline::pending::{Backoff, FlushPolicy};
use crate::sink::{DeltaSink, SinkError, upkeep};
use crate::source::hold::Holder;
use std::sync::Arc;
use wake::Wakes;

/// The safety-net look when inotify says nothing.
const SAFETY_POLL: Duration = Duration::from_secs(5);
/// Reads follow the latency budget, not the engine's writes: while data keeps
/// coming, at most one read pass per this share of the flush interval (and
/// never more than every 50 ms), so a busy engine's writes are read in bulk.
const READS_PER_INTERVAL: u32 = 10;
const MAX_READ_GAP: Duration = Duration::from_millis(50);

/// The running daemon.
struct Daemon {
    config: Config,
    rt: Runtime,
    sink: DeltaSink,
    sources: Vec<LiveSource>,
    policy: FlushPolicy,
    backoff: Backoff,
    wakes: Wakes,
    last_poll: Instant,
    /// When the folders were last looked at.
    last_look: Instant,
    /// Shortest time between read passes (see [`READS_PER_INTERVAL`]).
    read_gap: Duration,
    /// A poll stopped at the pending bound: after the commit that makes room,
    /// go round again at once instead of waiting for the next file event
    /// (which may never come once the writer is done).
    more_to_read: bool,
    watchdog: Option<(Duration, Instant)>,
    metrics: Option<Arc<Metrics>>,
    /// Compaction, checkpoints and vacuum, on their own thread.
    upkeep: upkeep::Worker,
    /// The sources' files, held open as they appear.
    holder: Arc<Holder>,
}

/// How long the final flush may take after SIGTERM: systemd's default stop
/// timeout is 90 s, but a sidecar that holds its host's shutdown hostage to
/// a failing store is worse than one that leaves lines in the files (they
/// are read at the next start).
pub const STOP_WITHIN: Duration = Duration::from_secs(7);

/// SIGTERM's final commit did not finish within [`STOP_WITHIN`]: the store
/// could not be reached in time (exit status 3, as for any store failure).
#[derive(Debug, thiserror::Error)]
#[error(
    "the final commit did not finish within {} s (the store is failing?); what was not committed stays in the files and is read at the next start",
    STOP_WITHIN.as_secs()
)]
pub struct StopTimedOut;

/// `work`, or `None` as soon as `stopping` is set (checked every 50 ms).
pub async fn unless_stopped<T>(
    stopping: &std::sync::atomic::AtomicBool,
    work: impl std::future::Future<Output = T>,
) -> Option<T> {
    let stopped = async {
        while !stopping.load(std::sync::atomic::Ordering::Acquire) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::select! {
        r = work => Some(r),
        () = stopped => None,
    }
}

/// Runs until SIGTERM/SIGINT, on the table `sink` holds open. Returns after
/// the final commit.
///
/// `holder` holds the sources' files open from the moment they appear (see
/// `source::hold`); it is started before the table is opened, so a file
/// deleted while the table opens, or while a commit waits, is still read.
///
/// `wakes` holds the signal handlers, installed before the table was opened
/// so that a SIGTERM during the start ends it cleanly.
pub fn run(
    config: Config,
    mut sink: DeltaSink,
    rt: Runtime,
    (holder, wakes): (Arc<Holder>, Wakes),
) -> Result<()> {
    let metrics = match config.metrics_listen {
        Some(addr) => {
            let m = Metrics::new();
            let bound = metrics::serve(addr, m.clone())?;
            tracing::info!(listen = %bound, "serving /metrics");
            sink.set_metrics(m.clone());
            Some(m)
        }
        None => None,
    };
    let policy = FlushPolicy::new(config.flush_interval, config.flush_max_events);
    let read_gap = (config.flush_interval / READS_PER_INTERVAL).min(MAX_READ_GAP);
    let upkeep = upkeep::Worker::start(&config.table_uri, &config.quarantine_uri)
        .context("starting the upkeep thread")?;
    let mut d = Daemon {
        config,
        rt,
        sink,
        sources: Vec::new(),
        policy,
        backoff: Backoff::default(),
        wakes,
        last_poll: Instant::now(),
        last_look: Instant::now(),
        read_gap,
        more_to_read: false,
        watchdog: sd_notify::watchdog_interval().map(|w| (w, Instant::now())),
        metrics,
        upkeep,
        holder,
    };
    if !d.recover()? {
        tracing::info!(
            "stopped during the start: what was not committed is read at the next start"
        );
        return Ok(());
    }
    sd_notify::notify("READY=1\nSTATUS=following log files");
    tracing::info!(table = %d.config.table_uri, sources = d.sources.len(), "ready");
    loop {
        d.pace();
        let asked = d.wakes.wait(d.next_wait());
        if asked.reload {
            d.reload();
        }
        if asked.stop {
            return d.stop();
        }
        d.poll(asked.look);
        d.flush_due()?;
        d.heartbeat()?;
        d.upkeep();
        d.pet_watchdog();
    }
}

impl Daemon {
    /// Each source from its committed state: rotated files the table has not
    /// finished first, then a first look at the live files. Returns false
    /// when SIGTERM came while the store could not be reached.
    fn recover(&mut self) -> Result<bool> {
        let stopping = self.wakes.stopping();
        for source in &self.config.sources {
            let parser = self.config.parser(source);
            let (rt, sink) = (&self.rt, &mut self.sink);
            let Some(committed_state) = crate::sink::until_reachable(&stopping, || {
                rt.block_on(unless_stopped(&stopping, sink.source_state(&source.name)))
            })?
            else {
                return Ok(false);
            };
            let first_start = committed_state.is_none();
            let mut state = committed_state.unwrap_or_default();
            let ctx = IngestContext::new(&parser, source, &self.config);
            let follow = source.follow(parser.heads());
            let recovered = self.rt.block_on(live::recover(
                &ctx,
                &mut self.sink,
                &mut state,
                &follow,
                first_start,
            ));
            let mut live = LiveSource::new(follow, parser, state, first_start);
            live.hold_with(self.holder.clone());
            if let Some(m) = &self.metrics {
                live.set_metrics(m.clone());
                live.recovered(&recovered);
            }
            self.sources.push(live);
        }
        for s in &mut self.sources {
            let (rt, sink, policy) = (&self.rt, &self.sink, &self.policy);
            let polled = crate::sink::until_reachable(&stopping, || {
                rt.block_on(unless_stopped(&stopping, s.poll(sink, policy, true)))
            })?;
            if polled.is_none() {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// When the oldest pending row of any source must be committed.
    fn next_due(&self) -> Option<Instant> {
        self.sources
            .iter()
            .filter_map(|s| s.pending().due_at(&self.policy))
            .min()
    }

    /// Lets `read_gap` pass since the last read, unless a commit falls due
    /// sooner: data arriving meanwhile is read in one pass (its wake-up stays
    /// queued, nothing is missed).
    fn pace(&self) {
        let mut gap = self.read_gap.saturating_sub(self.last_poll.elapsed());
        if let Some(due) = self.next_due() {
            gap = gap.min(due.saturating_duration_since(Instant::now()));
        }
        if !gap.is_zero() {
            std::thread::sleep(gap);
        }
    }

    /// How long to sleep: until the safety look, the oldest pending row's
    /// flush time, a finished rotated file's letting go, the end of a
    /// back-off or the watchdog, whichever is first.
    fn next_wait(&self) -> Duration {
        let now = Instant::now();
        let mut wait = SAFETY_POLL.saturating_sub(self.last_look.elapsed());
        if self.more_to_read && !self.backoff.failing() {
            wait = Duration::ZERO;
        }
        let retire = self.sources.iter().filter_map(LiveSource::retire_at);
        if let Some(at) = self.next_due().into_iter().chain(retire).min() {
            wait = wait.min(at.saturating_duration_since(now));
        }
        if let Some(at) = self.backoff.retry_at() {
            wait = wait.max(at.saturating_duration_since(now));
        }
        if let Some((every, last)) = self.watchdog {
            wait = wait.min(every.saturating_sub(last.elapsed()));
        }
        wait
    }

    /// SIGHUP: new pattern files for every source; a broken file keeps the
    /// patterns in use.
    fn reload(&mut self) {
        match Config::load(&self.config.path) {
            Ok(c) => {
                for s in &mut self.sources {
                    s.parser_mut().set_patterns(c.patterns.clone());
                }
                tracing::info!(files = ?c.patterns.files, "pattern files reloaded");
                self.config.patterns = c.patterns;
            }
            Err(e) => tracing::error!(error = %e, "reload failed; keeping the patterns in use"),
        }
    }

    /// Reads what is new in every source's files, looking at the folders
    /// first when asked (or when the safety look is due).
    fn poll(&mut self, look: bool) {
        let look = look || self.last_look.elapsed() >= SAFETY_POLL;
        if look {
            self.last_look = Instant::now();
        }
        self.last_poll = Instant::now();
        self.more_to_read = false;
        for s in &mut self.sources {
            match self.rt.block_on(s.poll(&self.sink, &self.policy, look)) {
                Ok(r) => self.more_to_read |= r.saturated,
                Err(e) => {
                    tracing::warn!(source = %s.name(), error = %e, "looking up offsets failed; will retry")
                }
            }
        }
    }

    /// Commits each source whose rows are due, unless backing off. Fails
    /// only when a source's lease was taken by another process.
    fn flush_due(&mut self) -> Result<()> {
        if self.backoff.waiting() {
            return Ok(());
        }
        for s in &mut self.sources {
            if !s.due(&self.policy) {
                continue;
            }
            let stopping = self.wakes.stopping();
            let flushed = self
                .rt
                .block_on(unless_stopped(&stopping, s.flush(&mut self.sink)));
            let Some(flushed) = flushed else {
                // SIGTERM during a commit (a failing store retries for
                // minutes): the loop's next wait takes the signal.
                return Ok(());
            };
            match flushed {
                Ok(_) => self.backoff.succeeded(),
                Err(e @ (SinkError::LeaseLost { .. } | SinkError::UnsupportedProtocol { .. })) => {
                    return Err(e.into());
                }
                Err(e) => {
                    let next = self.backoff.failed();
                    tracing::error!(source = %s.name(), error = %e, retry_in_ms = next.as_millis() as u64,
                        pending = s.pending().rows.len(), "commit failed; holding rows and retrying");
                }
            }
        }
        Ok(())
    }

    /// Renews the lease of each source that has not committed for a third
    /// of the lease time (an idle engine), so no other host takes it over.
    fn heartbeat(&mut self) -> Result<()> {
        let every = self.config.lease / 3;
        let stopping = self.wakes.stopping();
        for s in &self.sources {
            let beat = self.sink.heartbeat(s.name(), every);
            let Some(beat) = self.rt.block_on(unless_stopped(&stopping, beat)) else {
                return Ok(()); // SIGTERM: the loop's next wait takes it
            };
            match beat {
                Ok(()) => {}
                Err(e @ (SinkError::LeaseLost { .. } | SinkError::UnsupportedProtocol { .. })) => {
                    return Err(e.into());
                }
                Err(e) => {
                    tracing::warn!(source = %s.name(), error = %e, "lease heartbeat failed; retrying")
                }
            }
        }
        Ok(())
    }

    /// Hands the upkeep the commits call for to its thread (not while
    /// commits fail: the table is unreachable or unwritable).
    fn upkeep(&mut self) {
        if self.backoff.failing() {
            return;
        }
        let due = self.sink.upkeep_due();
        if due.any() {
            self.upkeep.send(due);
        }
    }

    fn pet_watchdog(&mut self) {
        if let Some((every, last)) = &mut self.watchdog
            && last.elapsed() >= *every
        {
            sd_notify::notify("WATCHDOG=1");
            *last = Instant::now();
        }
    }

    /// SIGTERM: read what is there, commit it, exit, within
    /// [`STOP_WITHIN`] even while the store fails: what could not be
    /// committed stays in the files, behind the committed offsets.
    fn stop(mut self) -> Result<()> {
        sd_notify::notify("STOPPING=1");
        tracing::info!("stopping: final flush");
        let rt = std::mem::replace(
            &mut self.rt,
            tokio::runtime::Builder::new_current_thread().build()?,
        );
        let done = rt.block_on(async {
            tokio::time::timeout(STOP_WITHIN, async { self.final_flush().await }).await
        });
        match done {
            Ok(r) => r,
            Err(_) => Err(StopTimedOut.into()),
        }
    }

    async fn final_flush(&mut self) -> Result<()> {
        for s in &mut self.sources {
            s.poll(&self.sink, &self.policy, true).await?;
            s.flush(&mut self.sink)
                .await
                .with_context(|| format!("final commit of source {}", s.name()))?;
            if let Err(e) = self.sink.release(s.name()).await {
                tracing::warn!(source = %s.name(), error = %e, "could not release the source's lease; it expires by itself");
            }
        }
        Ok(())
    }
}
