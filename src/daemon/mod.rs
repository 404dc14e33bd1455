//! `risktail run`: the sidecar. Recovers from the table, follows every
//! source's files through rotation, and commits rows with their offsets every
//! `flush.interval_ms` or `flush.max_events`, whichever comes first.
//!
//! One thread, event driven: inotify (through `notify`) on the sources'
//! folders wakes it within milliseconds of a write; a stat-based poll every
//! few seconds is only a safety net (and covers inotify queue overflows).
//! Signals arrive on the same channel: SIGTERM/SIGINT flush and exit,
//! SIGHUP reloads the pattern files.

pub mod lock;
pub mod sd_notify;
pub mod tail;

use anyhow::{Context, Result};
use notify::{RecursiveMode, Watcher};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::pipeline::ingest::{IngestContext, ingest_file};
use crate::sink::DeltaSink;
use crate::source::discover;
use tail::SourceTail;

/// Rows per source held while the table cannot be written; past it, reading
/// stops (back-pressure) and the files keep the data.
const MAX_PENDING_FACTOR: usize = 4;
/// The safety-net poll when inotify says nothing.
const SAFETY_POLL: Duration = Duration::from_secs(5);
/// Offsets advanced by noise lines only are committed this often (bounds the
/// replay after a restart without a commit per second of noise).
const OFFSET_ONLY_COMMIT: Duration = Duration::from_secs(60);

enum Wake {
    Fs,
    Signal(i32),
}

/// Runs until SIGTERM/SIGINT. Returns after the final flush.
pub fn run(config_path: &Path) -> Result<()> {
    let mut config = Config::load(config_path)?;
    let _locks: Vec<lock::SourceLock> = config
        .sources
        .iter()
        .map(|s| lock::acquire(&config.table_uri, &s.name, "run"))
        .collect::<Result<_, _>>()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let mut sink = rt.block_on(DeltaSink::open(&config))?;
    let (tx, rx) = mpsc::channel::<Wake>();

    // Signals first, so a SIGTERM during recovery is not lost.
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGHUP,
    ])
    .context("installing signal handlers")?;
    let sig_tx = tx.clone();
    std::thread::spawn(move || {
        for s in signals.forever() {
            if sig_tx.send(Wake::Signal(s)).is_err() {
                break;
            }
        }
    });

    let fs_tx = tx.clone();
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        // Opening, reading and closing a file (our own polls included) are
        // access events: they say nothing new about the file, and waking on
        // them would make every poll wake the next one.
        if let Ok(ev) = &res
            && matches!(ev.kind, notify::EventKind::Access(_))
        {
            return;
        }
        // Anything else, errors and queue overflows included, means "look".
        let _ = fs_tx.send(Wake::Fs);
    })
    .context("starting the file watcher")?;
    for dir in watch_dirs(&config) {
        if let Err(e) = watcher.watch(&dir, RecursiveMode::NonRecursive) {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot watch folder; relying on the safety poll");
        }
    }

    // Recovery: files rotated while we were down (sealed siblings, plain or
    // gzipped) are finished from their committed offsets first, oldest first.
    let mut tails = Vec::new();
    for source in &config.sources {
        let parser = config.parser(source);
        let mut state = rt
            .block_on(sink.source_state(&source.name))?
            .unwrap_or_default();
        let ctx = IngestContext::new(&parser, source, &config);
        let mut known = std::collections::HashMap::new();
        for pattern in &source.paths {
            for found in discover::family(pattern).unwrap_or_default() {
                if found.live {
                    continue;
                }
                let r = rt.block_on(ingest_file(
                    &ctx,
                    &mut sink,
                    &mut state,
                    &found,
                    &mut known,
                    &mut |_| {},
                ));
                match r {
                    Ok(r) => {
                        tracing::info!(source = %source.name, file = %r.path, status = ?r.status, "recovered rotated file")
                    }
                    Err(e) => {
                        tracing::error!(source = %source.name, error = %e, "cannot recover rotated file; continuing with the live file")
                    }
                }
            }
        }
        tails.push(SourceTail::new(source.clone(), parser, state));
    }
    for t in &mut tails {
        rt.block_on(t.poll(&sink, config.flush_max_events * MAX_PENDING_FACTOR))?;
    }
    sd_notify::notify("READY=1\nSTATUS=following log files");
    tracing::info!(table = %config.table_uri, sources = tails.len(), "ready");

    let watchdog = sd_notify::watchdog_interval();
    let mut last_watchdog = Instant::now();
    let mut last_poll = Instant::now();
    let mut backoff: Option<(Instant, Duration)> = None;
    let max_pending = config.flush_max_events * MAX_PENDING_FACTOR;
    // A poll that stopped at the pending bound has more to read: after the
    // commit that makes room, go round again at once instead of waiting for
    // the next file event (which may never come once the writer is done).
    let mut more_to_read = false;
    loop {
        let now = Instant::now();
        let mut wait = SAFETY_POLL.saturating_sub(last_poll.elapsed());
        if more_to_read && backoff.is_none() {
            wait = Duration::ZERO;
        }
        for t in &tails {
            if let Some(first) = t.first_pending() {
                wait = wait.min((first + config.flush_interval).saturating_duration_since(now));
            }
        }
        if let Some((at, _)) = backoff {
            wait = wait.max(at.saturating_duration_since(now));
        }
        if let Some(w) = watchdog {
            wait = wait.min(w.saturating_sub(last_watchdog.elapsed()));
        }
        let mut stop = false;
        let mut reload = false;
        match rx.recv_timeout(wait) {
            Ok(w) => {
                let mut handle = |w: Wake| match w {
                    Wake::Fs => {}
                    Wake::Signal(s) if s == signal_hook::consts::SIGHUP => reload = true,
                    Wake::Signal(_) => stop = true,
                };
                handle(w);
                while let Ok(w) = rx.try_recv() {
                    handle(w);
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => stop = true,
        }
        if reload {
            match Config::load(config_path) {
                Ok(c) => {
                    for t in &mut tails {
                        t.parser_mut().set_patterns(c.patterns.clone());
                    }
                    tracing::info!(files = ?c.patterns.files, "pattern files reloaded");
                    config.patterns = c.patterns;
                }
                Err(e) => tracing::error!(error = %e, "reload failed; keeping the patterns in use"),
            }
        }
        if stop {
            sd_notify::notify("STOPPING=1");
            tracing::info!("stopping: final flush");
            for t in &mut tails {
                rt.block_on(t.poll(&sink, max_pending))?;
                rt.block_on(t.flush(&mut sink))
                    .with_context(|| format!("final commit of source {}", t.name()))?;
            }
            return Ok(());
        }
        last_poll = Instant::now();
        more_to_read = false;
        for t in &mut tails {
            match rt.block_on(t.poll(&sink, max_pending)) {
                Ok(r) => more_to_read |= r.saturated,
                Err(e) => {
                    tracing::warn!(source = %t.name(), error = %e, "looking up offsets failed; will retry")
                }
            }
        }
        let in_backoff = backoff.is_some_and(|(at, _)| Instant::now() < at);
        if !in_backoff {
            for t in &mut tails {
                let due = t.pending_rows() >= config.flush_max_events
                    || t.first_pending()
                        .is_some_and(|f| f.elapsed() >= config.flush_interval)
                    || (t.offsets_advanced() && t.last_commit().elapsed() >= OFFSET_ONLY_COMMIT);
                if !due {
                    continue;
                }
                match rt.block_on(t.flush(&mut sink)) {
                    Ok(_) => backoff = None,
                    Err(e) => {
                        let next = backoff.map_or(Duration::from_millis(500), |(_, d)| {
                            (d * 2).min(Duration::from_secs(30))
                        });
                        tracing::error!(source = %t.name(), error = %e, retry_in_ms = next.as_millis() as u64,
                            pending = t.pending_rows(), "commit failed; holding rows and retrying");
                        backoff = Some((Instant::now() + next, next));
                    }
                }
            }
        }
        if backoff.is_none()
            && let Err(e) = rt.block_on(sink.upkeep())
        {
            tracing::warn!(error = %e, "table upkeep failed; ingestion goes on, retrying later");
        }
        if watchdog.is_some() && last_watchdog.elapsed() >= watchdog.unwrap_or_default() {
            sd_notify::notify("WATCHDOG=1");
            last_watchdog = Instant::now();
        }
    }
}

/// The folders holding the configured files (the non-glob prefix of each pattern).
fn watch_dirs(config: &Config) -> BTreeSet<PathBuf> {
    let mut dirs = BTreeSet::new();
    for s in &config.sources {
        for p in &s.paths {
            let path = Path::new(p);
            let mut dir = path
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from("."));
            while dir.to_string_lossy().contains(['*', '?', '[']) {
                dir = dir
                    .parent()
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| PathBuf::from("."));
            }
            if dir.as_os_str().is_empty() {
                dir = PathBuf::from(".");
            }
            dirs.insert(dir);
        }
    }
    dirs
}
