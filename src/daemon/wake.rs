//! What wakes the daemon: file events from inotify (through `notify`) on the
//! sources' folders, and signals, both on one channel so the loop waits in one
//! place. A stat-based look every few seconds is the loop's safety net (and
//! covers inotify queue overflows); it is not here.
//!
//! File events are coalesced where they arise: the watcher thread only sets
//! bits (data written to a followed file; anything else: look at the folder)
//! and sends one message while the loop has not taken them yet, so an engine
//! writing thousands of records a second costs the loop one wake-up per pass,
//! not one per write. And the watcher thread itself, given an event that
//! adds nothing to the bits the loop has not taken yet, waits until it has (at most
//! [`HOLD_MAX`]) before it reads the next: meanwhile the kernel merges the
//! engine's writes to a file into one queued event, so the thread too wakes
//! about once per pass instead of once per write (at 5,000 writes a second
//! that was most of the gap to `tail -F`; docs/PERFORMANCE.md).

use anyhow::{Context, Result};
use notify::event::ModifyKind;
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::mpsc;
use std::time::Duration;

/// Why the loop woke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wake {
    /// File events are waiting in the bits.
    Fs,
    /// A signal arrived.
    Signal(i32),
}

/// Data was appended to a followed file.
const DATA: u8 = 1;
/// Something else changed in a watched folder (a file created, renamed,
/// removed, its attributes), or the watcher reported an error.
const LOOK: u8 = 2;

/// How long the watcher thread waits for the loop to take the data bits it
/// already set before it reads the next event anyway (the loop is busy
/// committing, or backing off).
const HOLD_MAX: Duration = Duration::from_millis(500);

/// Lets the watcher thread wait until the loop has taken the bits.
#[derive(Default)]
struct Taken {
    lock: std::sync::Mutex<()>,
    cond: std::sync::Condvar,
}

/// What the wake-ups since the last wait asked for.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Asked {
    /// SIGTERM, SIGINT, or the channel closed: flush and exit.
    pub stop: bool,
    /// SIGHUP: reload the pattern files.
    pub reload: bool,
    /// The folders changed (or the wait timed out): look for new, rotated
    /// and truncated files before reading.
    pub look: bool,
}

/// After SIGTERM the process exits within this, wherever it is stuck (a
/// store that hangs each request for minutes of retries): the final flush
/// has `daemon::STOP_WITHIN` of it, and what was not committed by then stays
/// in the files, behind the committed offsets, exactly as after a kill.
pub const STOP_DEADLINE: Duration = Duration::from_secs(9);

/// Starts the clock of [`STOP_DEADLINE`]: a thread that ends the process
/// with status 3 if it is still running then.
fn stop_deadline() {
    std::thread::spawn(|| {
        std::thread::sleep(STOP_DEADLINE);
        tracing::error!(
            seconds = STOP_DEADLINE.as_secs_f64(),
            "still not stopped after SIGTERM (the store is failing?): exiting; what was not committed stays in the files and is read at the next start"
        );
        std::process::exit(3);
    });
}

/// The wake-up channel and what feeds it.
pub struct Wakes {
    rx: mpsc::Receiver<Wake>,
    /// Set by SIGTERM/SIGINT the moment it arrives, for work in flight (a
    /// commit against a failing store) to give way to the stop.
    stopping: Arc<std::sync::atomic::AtomicBool>,
    bits: Arc<AtomicU8>,
    taken: Arc<Taken>,
    _watcher: RecommendedWatcher,
}

impl Wakes {
    /// Installs the signal handlers (first, so a SIGTERM during recovery is
    /// not lost) and watches the folders holding `paths`.
    pub fn start<'a>(paths: impl IntoIterator<Item = &'a String>) -> Result<Wakes> {
        let (tx, rx) = mpsc::channel::<Wake>();
        let mut signals = signal_hook::iterator::Signals::new([
            signal_hook::consts::SIGTERM,
            signal_hook::consts::SIGINT,
            signal_hook::consts::SIGHUP,
        ])
        .context("installing signal handlers")?;
        let sig_tx = tx.clone();
        let stopping = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let sig_stopping = stopping.clone();
        std::thread::spawn(move || {
            for s in signals.forever() {
                if s != signal_hook::consts::SIGHUP && !sig_stopping.swap(true, Ordering::AcqRel) {
                    stop_deadline();
                }
                if sig_tx.send(Wake::Signal(s)).is_err() {
                    break;
                }
            }
        });
        let paths: Vec<&String> = paths.into_iter().collect();
        let followed = Followed::new(&paths, std::env::current_dir().unwrap_or_default());
        let bits = Arc::new(AtomicU8::new(0));
        let watcher_bits = bits.clone();
        let taken = Arc::new(Taken::default());
        let watcher_taken = taken.clone();
        let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            let Some(bit) = followed.bit(&res) else {
                return;
            };
            let before = watcher_bits.fetch_or(bit, Ordering::AcqRel);
            if before == 0 {
                let _ = tx.send(Wake::Fs);
            } else if before & bit == bit {
                // Nothing new for the loop: hold the thread (and with it the
                // kernel's queue, which merges the writes) until it has taken
                // the bits. Checked under the lock the loop notifies under,
                // so the wake-up cannot slip between check and wait.
                let t = &watcher_taken;
                if let Ok(guard) = t.lock.lock() {
                    let busy = |_: &mut ()| watcher_bits.load(Ordering::Acquire) != 0;
                    let _ = t.cond.wait_timeout_while(guard, HOLD_MAX, busy);
                }
            }
        })
        .context("starting the file watcher")?;
        for dir in crate::source::discover::watch_dirs(paths) {
            if let Err(e) = watcher.watch(&dir, RecursiveMode::NonRecursive) {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot watch folder; relying on the safety poll");
            }
        }
        Ok(Wakes {
            rx,
            stopping,
            bits,
            taken,
            _watcher: watcher,
        })
    }

    /// The flag SIGTERM/SIGINT set (also sent on the channel).
    pub fn stopping(&self) -> Arc<std::sync::atomic::AtomicBool> {
        self.stopping.clone()
    }

    /// Waits up to `wait` for a wake-up, then takes every other one already
    /// queued: a burst of writes costs one pass, not one per write. A wait
    /// that times out asks for a look (the safety net).
    pub fn wait(&self, wait: Duration) -> Asked {
        let mut asked = Asked::default();
        let mut take = |w: Wake| match w {
            Wake::Fs => {}
            Wake::Signal(s) if s == signal_hook::consts::SIGHUP => asked.reload = true,
            Wake::Signal(_) => asked.stop = true,
        };
        match self.rx.recv_timeout(wait) {
            Ok(w) => {
                take(w);
                while let Ok(w) = self.rx.try_recv() {
                    take(w);
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => asked.look = true,
            Err(mpsc::RecvTimeoutError::Disconnected) => asked.stop = true,
        }
        // DATA alone only had to wake the loop: every pass reads.
        asked.look |= self.bits.swap(0, Ordering::AcqRel) & LOOK != 0;
        if let Ok(_guard) = self.taken.lock.lock() {
            self.taken.cond.notify_all();
        }
        asked
    }
}

/// The configured files, to tell data appended to one of them from other
/// changes in their folders.
struct Followed {
    patterns: Vec<glob::Pattern>,
    cwd: PathBuf,
}

impl Followed {
    /// Patterns and event paths are both made absolute against `cwd`: a
    /// config given by a relative path has relative patterns, and notify
    /// may report paths either way; a data event taken for "something else"
    /// would cost a look at the folders on every pass.
    fn new(paths: &[&String], cwd: PathBuf) -> Followed {
        let patterns = paths
            .iter()
            .filter_map(|p| {
                let full = absolute(&cwd, Path::new(p.as_str()));
                glob::Pattern::new(&full.to_string_lossy()).ok()
            })
            .collect();
        Followed { patterns, cwd }
    }

    /// The bit an event sets; none for opening, reading and closing a file
    /// (our own reads included): they say nothing new about it, and waking
    /// on them would make every read wake the next one.
    fn bit(&self, res: &notify::Result<notify::Event>) -> Option<u8> {
        match res {
            Ok(ev) if matches!(ev.kind, EventKind::Access(_)) => None,
            Ok(ev)
                if matches!(ev.kind, EventKind::Modify(ModifyKind::Data(_)))
                    && ev.paths.iter().all(|p| {
                        let p = absolute(&self.cwd, p);
                        self.patterns.iter().any(|g| g.matches_path(&p))
                    }) =>
            {
                Some(DATA)
            }
            // Anything else, errors and queue overflows included, means "look".
            _ => Some(LOOK),
        }
    }
}

/// `p` against `cwd` when it is relative.
fn absolute(cwd: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        cwd.join(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Data appended to a followed file is DATA whether the config's paths
    /// or notify's are relative; another file, or a rename, is LOOK; opening
    /// a file is nothing. (A relative pattern once made every write a LOOK:
    /// a full look at the folders on every pass.)
    #[test]
    fn data_events_are_told_apart_whatever_the_paths_are_relative_to() {
        use notify::event::{AccessKind, DataChange, ModifyKind, RenameMode};
        let cwd = PathBuf::from("/srv/engine");
        let ev = |kind, p: &str| Ok(notify::Event::new(kind).add_path(PathBuf::from(p)));
        let data = EventKind::Modify(ModifyKind::Data(DataChange::Any));
        for pattern in ["logs/*.log", "/srv/engine/logs/*.log"] {
            let p = pattern.to_owned();
            let f = Followed::new(&[&p], cwd.clone());
            for path in ["logs/engine.log", "/srv/engine/logs/engine.log"] {
                assert_eq!(f.bit(&ev(data, path)), Some(DATA), "{pattern} {path}");
            }
            assert_eq!(f.bit(&ev(data, "logs/other.txt")), Some(LOOK));
            let rename = EventKind::Modify(ModifyKind::Name(RenameMode::From));
            assert_eq!(f.bit(&ev(rename, "logs/engine.log")), Some(LOOK));
            let open = EventKind::Access(AccessKind::Open(notify::event::AccessMode::Any));
            assert_eq!(f.bit(&ev(open, "logs/engine.log")), None);
        }
    }
}
