//! Holding a source's files open from the moment they appear, so a file the
//! engine creates, rotates and deletes while the daemon's loop is busy (a
//! slow commit, a store that retries for a minute, the table opening at
//! start) is still read: its content lives as long as a descriptor does.
//!
//! The follower ([`super::follow`]) opens files when it looks at the
//! folders, and a look waits for the loop. With `RotatingFileHandler
//! (backupCount=2)` a file is deleted two rotations after it was created, so
//! a busy engine can create and delete one between two looks; nothing but a
//! descriptor taken at creation keeps it. The [`Holder`] takes that
//! descriptor on its own thread, woken by inotify only for files created or
//! moved into a watched folder (never for writes: holding costs nothing per
//! line), and keeps it until the follower knows the file (follows it, or has
//! looked at it). A held file no longer in its family when the follower
//! looks (deleted, or renamed out of the pattern) is read from the held
//! descriptor.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use super::discover;

/// (device, inode): what names a file while a descriptor holds it.
pub type Inode = (u64, u64);

/// At most this many files held at once (a stuck loop while the engine
/// rotates every second): well under the usual limit of 1,024 descriptors
/// per process, which the follower's files and the store's sockets share.
pub const MAX_HELD: usize = 256;

/// A file held open since it appeared.
struct Held {
    /// The source whose family it belongs to.
    source: String,
    /// The configured pattern of that family.
    pattern: String,
    /// Its path when it was opened (the `source_file` of its rows if it is
    /// gone by the time the follower looks).
    path: PathBuf,
    /// The descriptor.
    file: File,
}

/// A file's size and time of last writing: with its inode, what tells a
/// file looked at before from another that took its inode after it was
/// deleted (an engine's rotated files often have one size to the byte).
pub type Stat = (u64, Option<SystemTime>);

/// The [`Stat`] of `meta`.
pub fn stat(meta: &std::fs::Metadata) -> Stat {
    (meta.len(), meta.modified().ok())
}

/// What the follower of a source knows: files it follows (by descriptor:
/// whatever their size) and files it looked at, with their [`Stat`] then.
pub type Known = HashMap<Inode, Option<Stat>>;

/// Whether `known` names the file `inode` whose [`Stat`] is `now`.
fn knows(known: &Known, inode: &Inode, now: Option<Stat>) -> bool {
    known
        .get(inode)
        .is_some_and(|seen| seen.is_none() || *seen == now)
}

/// The [`Stat`] of a held file now.
fn stat_of(f: &File) -> Option<Stat> {
    f.metadata().ok().map(|m| stat(&m))
}

#[derive(Default)]
struct State {
    held: HashMap<Inode, Held>,
    known: HashMap<String, Known>,
    /// The limit was logged (once per time it is reached).
    full: bool,
}

/// The files of every source's families, held open as they appear.
pub struct Holder {
    /// (source, configured path pattern).
    families: Vec<(String, String)>,
    state: Mutex<State>,
}

impl Holder {
    /// A holder of the families of `(source, pattern)`; nothing held yet.
    pub fn new(families: Vec<(String, String)>) -> Arc<Holder> {
        Arc::new(Holder {
            families,
            state: Mutex::new(State::default()),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Opens every file of every family that is neither held nor known to
    /// its follower, newest first (at the limit, the oldest are left to the
    /// follower's own look).
    pub fn scan(&self) {
        for (source, pattern) in &self.families {
            let Ok(family) = discover::family(pattern) else {
                continue;
            };
            for f in family.iter().rev() {
                self.hold(source, pattern, &f.path);
            }
        }
    }

    fn hold(&self, source: &str, pattern: &str, path: &std::path::Path) {
        let Ok(meta) = std::fs::metadata(path) else {
            return; // renamed meanwhile: its new name is another event
        };
        let inode = (meta.dev(), meta.ino());
        let mut st = self.state();
        let known = st
            .known
            .get(source)
            .is_some_and(|k| knows(k, &inode, Some(stat(&meta))));
        if known || st.held.contains_key(&inode) {
            return;
        }
        if st.held.len() >= MAX_HELD {
            if !st.full {
                st.full = true;
                tracing::error!(held = st.held.len(), file = %path.display(),
                    "holding as many files as allowed while the loop has not looked at them; a file deleted before the loop looks may be lost");
            }
            return;
        }
        let Ok(file) = File::open(path) else { return };
        // The path may name another file by now: hold what was opened, under
        // its own inode.
        let Ok(opened) = file.metadata() else { return };
        let inode = (opened.dev(), opened.ino());
        st.held.entry(inode).or_insert(Held {
            source: source.to_owned(),
            pattern: pattern.to_owned(),
            path: path.to_owned(),
            file,
        });
    }

    /// The held files of `source`'s family of `pattern` that `known` does
    /// not name, with a second descriptor each (the holder keeps its own
    /// until [`Holder::settle`]; the two share a read position).
    pub fn unknown(
        &self,
        source: &str,
        pattern: &str,
        known: &Known,
    ) -> Vec<(Inode, PathBuf, File)> {
        self.state()
            .held
            .iter()
            .filter(|(inode, h)| {
                h.source == source && h.pattern == pattern && !knows(known, inode, stat_of(&h.file))
            })
            .filter_map(|(inode, h)| Some((*inode, h.path.clone(), h.file.try_clone().ok()?)))
            .collect()
    }

    /// The follower of `source` now knows `known`: its held files among them
    /// are let go, and a scan passes over them.
    pub fn settle(&self, source: &str, known: Known) {
        let mut st = self.state();
        st.held
            .retain(|inode, h| h.source != source || !knows(&known, inode, stat_of(&h.file)));
        if st.held.len() < MAX_HELD {
            st.full = false;
        }
        st.known.insert(source.to_owned(), known);
    }

    /// How many files are held.
    pub fn held(&self) -> usize {
        self.state().held.len()
    }

    /// Scans once, then on every file created or moved into `dirs` (and on
    /// an inotify queue overflow), on a thread of its own. A folder that
    /// cannot be watched is logged; the follower's looks still find its files.
    #[cfg(target_os = "linux")]
    pub fn watch(self: &Arc<Self>, dirs: &std::collections::BTreeSet<PathBuf>) {
        use inotify::{Inotify, WatchMask};
        self.scan();
        let mut ino = match Inotify::init() {
            Ok(i) => i,
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch for new files; the follower's looks find them");
                return;
            }
        };
        for dir in dirs {
            if let Err(e) = ino
                .watches()
                .add(dir, WatchMask::CREATE | WatchMask::MOVED_TO)
            {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot watch the folder for new files");
            }
        }
        tracing::info!(
            held = self.held(),
            "holding the sources' files open as they appear"
        );
        let holder = self.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            loop {
                match ino.read_events_blocking(&mut buf) {
                    Ok(events) => {
                        if events.count() > 0 {
                            holder.scan();
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "reading new-file events failed");
                        std::thread::sleep(std::time::Duration::from_secs(1));
                        holder.scan();
                    }
                }
            }
        });
    }

    /// Elsewhere than Linux: one scan (the follower's looks do the rest).
    #[cfg(not(target_os = "linux"))]
    pub fn watch(self: &Arc<Self>, _dirs: &std::collections::BTreeSet<PathBuf>) {
        self.scan();
    }
}

/// The inodes the files of `pattern`'s family have now.
pub fn family_inodes(pattern: &str) -> HashSet<Inode> {
    discover::family(pattern)
        .unwrap_or_default()
        .iter()
        .filter_map(|f| std::fs::metadata(&f.path).ok())
        .map(|m| (m.dev(), m.ino()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inode(p: &std::path::Path) -> Inode {
        let m = std::fs::metadata(p).unwrap();
        (m.dev(), m.ino())
    }

    /// A file created and deleted between two looks is still readable from
    /// the holder; a file the follower knows is let go and not held again.
    #[test]
    fn holds_until_known_and_outlives_deletion() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("engine.log");
        let pattern = live.to_string_lossy().into_owned();
        let h = Holder::new(vec![("engine".into(), pattern.clone())]);
        std::fs::write(&live, "first\n").unwrap();
        let first = inode(&live);
        h.scan();
        std::fs::rename(&live, dir.path().join("engine.log.1")).unwrap();
        std::fs::write(&live, "second\n").unwrap();
        h.scan();
        std::fs::remove_file(dir.path().join("engine.log.1")).unwrap();
        assert_eq!(h.held(), 2);
        let present = family_inodes(&pattern);
        let gone: Vec<_> = h
            .unknown("engine", &pattern, &Known::new())
            .into_iter()
            .filter(|(i, _, _)| !present.contains(i))
            .collect();
        assert_eq!(gone.len(), 1);
        let (i, path, mut f) = gone.into_iter().next().unwrap();
        assert_eq!((i, path), (first, live.clone()));
        let mut text = String::new();
        std::io::Read::read_to_string(&mut f, &mut text).unwrap();
        assert_eq!(text, "first\n");
        // The follower knows both now: nothing held, and a scan keeps it so.
        let first_stat = stat_of(&f);
        let known: Known = [(first, first_stat), (inode(&live), None)].into();
        h.settle("engine", known);
        assert_eq!(h.held(), 0);
        h.scan();
        assert_eq!(h.held(), 0);
        // Another source's follower settling lets go of nothing of this one.
        std::fs::rename(&live, dir.path().join("engine.log.1")).unwrap();
        std::fs::write(&live, "third\n").unwrap();
        h.scan();
        h.settle("other", Known::new());
        assert_eq!(h.held(), 1);
    }

    /// A deleted file's inode soon names a new file, often of the very same
    /// size (an engine's rotated files): what the follower saw of the old
    /// one does not pass for the new one, whose time of writing differs.
    #[test]
    fn a_reused_inode_of_the_same_size_is_another_file() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("engine.log");
        let pattern: String = live.to_string_lossy().into();
        let h = Holder::new(vec![("engine".into(), pattern.clone())]);
        std::fs::write(&live, "same size\n").unwrap();
        let meta = std::fs::metadata(&live).unwrap();
        let earlier = meta.modified().unwrap() - std::time::Duration::from_secs(3);
        // What the follower saw of the file this inode held before.
        let known: Known = [(inode(&live), Some((meta.len(), Some(earlier))))].into();
        h.settle("engine", known.clone());
        h.scan();
        assert_eq!(h.held(), 1, "the new file is held");
        assert_eq!(h.unknown("engine", &pattern, &known).len(), 1);
        // Once the follower saw this one, it is let go.
        h.settle("engine", [(inode(&live), Some(stat(&meta)))].into());
        assert_eq!(h.held(), 0);
    }

    #[test]
    fn stops_at_the_limit_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("engine.log");
        for i in 1..=MAX_HELD + 5 {
            std::fs::write(dir.path().join(format!("engine.log.{i}")), "x\n").unwrap();
        }
        let pattern: String = live.to_string_lossy().into();
        let h = Holder::new(vec![("engine".into(), pattern.clone())]);
        h.scan();
        assert_eq!(h.held(), MAX_HELD);
        // Newest first: engine.log.1 is held, the oldest is not.
        let one = inode(&dir.path().join("engine.log.1"));
        let oldest = inode(&dir.path().join(format!("engine.log.{}", MAX_HELD + 5)));
        let held: HashSet<Inode> = h
            .unknown("engine", &pattern, &Known::new())
            .into_iter()
            .map(|(i, _, _)| i)
            .collect();
        assert!(held.contains(&one) && !held.contains(&oldest));
    }
}
