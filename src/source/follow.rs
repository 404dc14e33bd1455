//! Following one source's files while they are written and rotated.
//!
//! A *generation* is one file's content (its identity, see
//! [`super::fingerprint`]), followed through an open file descriptor. The
//! configured path names the live generation; when the path starts naming
//! another inode (rename rotation, logrotate `create`, WatchedFileHandler
//! reopening), the old generation is *sealed* but keeps its descriptor and is
//! read to its end, even if it is renamed again, compressed or deleted. A
//! generation is let go only once it is sealed, read to its end and its
//! offset is committed: no timers that drop data.
//!
//! Truncation is detected by content, not size: the bytes just before the
//! read offset are kept as a marker and compared on every look. A truncated
//! generation (copytruncate, `FileHandler(mode='w')`) is finished from its
//! copy (a sibling with the same identity, plain or gzipped) at the offset
//! reached, and the truncated path becomes a new generation.
//!
//! This module only finds, opens and positions files; reading their lines is
//! the pipeline's (`pipeline::live`), and offsets come from [`Offsets`].
//!
//! Sealing, truncation, the reconcile of rotated siblings (in time order,
//! waiting for a file still being compressed) and `start_at` are one state
//! machine over the same generations.

use serde::Deserialize;
use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::fingerprint::{self, FileId, Heads};
use super::hold::{self, Holder, Known, Stat};
use super::offsets::{Committed, Offsets};
use super::reader::{BEHIND_MAX, LineReader};
use super::stamp::Stamp;
use super::{self as src, discover};

/// How long a sealed generation must sit at its end before it is let go (or its
/// unterminated tail quarantined): a writer may still finish a line it started
/// before the rename reached it.
pub const SEAL_GRACE: Duration = Duration::from_secs(2);

/// How recently a rotated file that cannot be read yet must have been written
/// to for newer lines to wait for it (see `Follower::unreadable`).
pub const WRITING_GRACE: Duration = Duration::from_secs(5);

/// Where a never-seen file starts being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum StartAt {
    /// From its first byte.
    #[default]
    Beginning,
    /// From its end at first sight.
    End,
}

/// What a follower needs to know of its source.
#[derive(Debug, Clone)]
pub struct FollowSettings {
    /// The source's name (offsets are looked up under it; logs name it).
    pub source: String,
    /// Path globs of the live files.
    pub paths: Vec<String>,
    /// Oversize limit of the line readers.
    pub max_line_bytes: usize,
    /// Where never-seen files start.
    pub start_at: StartAt,
    /// Its records' first lines: what names a file and orders rotated ones.
    pub heads: Heads,
}

impl FollowSettings {
    /// Whether files found at this start are read from their end: only with
    /// `start_at = "end"` and only when the source has never committed
    /// anything (its very first start). After that, a file the table has no
    /// offset for was written since (rotated while the daemon was down) and
    /// is read from its first byte.
    pub fn skip_existing(&self, first_start: bool) -> bool {
        first_start && self.start_at == StartAt::End
    }
}

/// The reader of a followed file's content.
pub type GenReader = LineReader<Box<dyn Read + Send>>;

/// One file's content, followed.
pub struct Generation {
    /// Its identity.
    pub id: FileId,
    /// The time of its first record, if known: rotated files found late are
    /// read in this order, so the state machine sees the source in time.
    first: Option<Stamp>,
    /// The path it was opened as (the `source_file` of its rows).
    pub path: String,
    /// (device, inode) of the descriptor; None once truncated (the inode now
    /// holds another generation) or for a copy that is read to finish one.
    inode: Option<(u64, u64)>,
    /// A second handle on the same file, for `fstat` and `pread` (plain files).
    file: Option<File>,
    /// Its lines.
    pub reader: GenReader,
    /// For a rotated file read through its path (plain or gzip), the
    /// descriptor its content comes from: after a read error (a gzip file
    /// still being written by a rotator) its content is read again from
    /// there, at the offset reached.
    origin: Option<File>,
    /// What the table holds of it.
    pub committed: Committed,
    sealed: Option<Instant>,
    /// Last ≤64 bytes before the read offset.
    marker: Vec<u8>,
    /// When the reader last found nothing new.
    idle_since: Option<Instant>,
    /// The content's length, for a rotated file read through its path (it
    /// no longer grows); live files are measured with `fstat`.
    sealed_len: Option<u64>,
}

impl Generation {
    /// When its file was last written, through its own descriptor (its path
    /// may name another file by now).
    fn written(&self) -> Option<std::time::SystemTime> {
        let f = self.file.as_ref().or(self.origin.as_ref())?;
        f.metadata().and_then(|m| m.modified()).ok()
    }

    /// Bytes of its content not yet committed.
    pub fn bytes_behind(&self) -> u64 {
        let len = match (&self.file, self.sealed_len) {
            (Some(f), _) => f.metadata().map_or(self.offset(), |m| m.len()),
            (None, Some(n)) => n,
            (None, None) => self.offset(),
        };
        len.max(self.offset()).saturating_sub(self.committed.events)
    }

    /// Offset read to.
    pub fn offset(&self) -> u64 {
        self.reader.offset()
    }

    /// Whether it is sealed (rotated away) and has been quiet long enough
    /// that an unterminated last line will never be finished.
    pub fn sealed_and_quiet(&self) -> bool {
        self.quiet_at().is_some_and(|at| at <= Instant::now())
    }

    /// When it is (or was) sealed and quiet for [`SEAL_GRACE`]: unknown
    /// while it is live or a read found more.
    fn quiet_at(&self) -> Option<Instant> {
        Some(self.sealed?.max(self.idle_since?) + SEAL_GRACE)
    }

    /// Read to its end and committed there: nothing of it is pending.
    fn all_committed(&self) -> bool {
        self.committed.events >= self.offset()
    }

    /// Records a read pass: whether it found anything, and the marker of the
    /// content now before the offset.
    pub fn read_done(&mut self, got_any: bool) {
        if got_any {
            self.idle_since = None;
            let behind = self.reader.behind();
            if !behind.is_empty() {
                self.marker.clear();
                self.marker.extend_from_slice(behind);
            }
        } else {
            self.idle_since.get_or_insert_with(Instant::now);
        }
    }

    /// After a read error: a fresh reader at the offset reached, from the
    /// kept descriptor (a gzip decoder does not resume after an error). The
    /// rows read so far stay read. Without a kept descriptor (a live plain
    /// file), the same reader is tried again.
    pub fn reopen(&mut self) {
        let Some(origin) = &self.origin else { return };
        match src::reopen(origin, self.offset(), self.reader.max_line_bytes()) {
            Ok(Some(reader)) => self.reader = reader,
            Ok(None) => {} // shorter than what was read: try again later
            Err(e) => tracing::warn!(file = %self.path, error = %e, "cannot reopen"),
        }
    }

    /// Whether the content before the read offset is still what was read.
    fn intact(&self) -> bool {
        let Some(f) = &self.file else { return true };
        let off = self.offset();
        let Ok(meta) = f.metadata() else { return true };
        if meta.len() < off {
            return false;
        }
        if self.marker.is_empty() || (self.marker.len() as u64) > off {
            return true;
        }
        let mut buf = vec![0u8; self.marker.len()];
        match f.read_at(&mut buf, off - self.marker.len() as u64) {
            Ok(n) if n == buf.len() => buf == self.marker,
            _ => false,
        }
    }
}

/// A source's files, followed through rotation.
pub struct Follower {
    cfg: FollowSettings,
    gens: Vec<Generation>,
    /// The first look at the files of a source that never committed, with
    /// `start_at = "end"`: what the files hold now is skipped.
    skip_existing: bool,
    /// Rotated siblings already looked at, by (device, inode) → size and
    /// time of writing then: a look only re-reads the head of a file that
    /// changed. Size alone is not enough: a deleted file's inode is soon
    /// another file's, and an engine's rotated files often have one size.
    seen: HashMap<(u64, u64), Stat>,
    /// The rotated siblings the current look listed: what `seen` keeps
    /// after it (a deleted file's entry would stay for ever otherwise, and
    /// an engine rotating every second deletes 86,400 files a day).
    listed: std::collections::HashSet<(u64, u64)>,
    /// The last look found a file at a configured path it could not follow
    /// yet (no complete line, shorter than committed, unreadable).
    unfollowed: bool,
    /// The last look found a rotated file still being written (a rotator
    /// compressing it): nothing is read until a look reads it.
    waiting: bool,
    /// Files held open since they appeared (the daemon's; a backfill has
    /// none): one deleted before a look found it is read from there.
    holder: Option<std::sync::Arc<Holder>>,
}

impl Follower {
    /// A follower with no file open yet; `first_start` says the source has
    /// never committed anything (see [`FollowSettings::skip_existing`]).
    pub fn new(cfg: FollowSettings, first_start: bool) -> Follower {
        Follower {
            skip_existing: cfg.skip_existing(first_start),
            cfg,
            gens: Vec::new(),
            seen: HashMap::new(),
            listed: Default::default(),
            unfollowed: false,
            waiting: false,
            holder: None,
        }
    }

    /// Reads files deleted before a look found them from `holder`, and tells
    /// it after every look which files this follower knows.
    pub fn hold_with(&mut self, holder: std::sync::Arc<Holder>) {
        self.holder = Some(holder);
    }

    /// The files this follower knows: those it follows (by descriptor) and
    /// those it looked at (with their size then).
    fn known(&self, found: &[Generation]) -> Known {
        let mut known: Known = self.seen.iter().map(|(i, st)| (*i, Some(*st))).collect();
        for g in self.gens.iter().chain(found) {
            if let Some(i) = g.inode {
                known.insert(i, None);
            }
        }
        known
    }

    /// Whether reading must wait for a look to take in a rotated file that
    /// is still being written (its lines come before every newer line).
    pub fn waiting(&self) -> bool {
        self.waiting
    }

    /// The generations, oldest first.
    pub fn generations_mut(&mut self) -> &mut [Generation] {
        &mut self.gens
    }

    /// Bytes of the open files not yet committed.
    pub fn bytes_behind(&self) -> u64 {
        self.gens.iter().map(Generation::bytes_behind).sum()
    }

    /// Whether any file was read past its committed offset.
    pub fn has_advanced(&self) -> bool {
        self.gens.iter().any(|g| g.offset() > g.committed.events)
    }

    /// Offsets read past what is committed: what the next commit carries.
    pub fn advanced(&self) -> Vec<(FileId, u64)> {
        self.gens
            .iter()
            .filter(|g| g.offset() > g.committed.events)
            .map(|g| (g.id, g.offset()))
            .collect()
    }

    /// Records a commit of `offsets`.
    pub fn committed(&mut self, offsets: &[(FileId, u64)]) {
        for g in &mut self.gens {
            if let Some((_, o)) = offsets.iter().find(|(id, _)| *id == g.id) {
                g.committed = g.committed.reached(*o);
            }
        }
    }

    /// The live paths first (sealing what rotated away, finishing what was
    /// truncated), then a reconcile of the rotated siblings: one that no
    /// generation holds and the table has not fully committed (rotated twice
    /// between wake-ups, or while the daemon was down) is read as a sealed
    /// generation, in rotation order.
    pub async fn look<O: Offsets>(&mut self, offsets: &O) -> Result<(), O::Error> {
        let patterns = self.cfg.paths.clone();
        self.listed.clear();
        self.unfollowed = false;
        self.waiting = false;
        for pattern in &patterns {
            let mut paths: Vec<PathBuf> = glob::glob(pattern)
                .map(|g| g.filter_map(Result::ok).collect())
                .unwrap_or_default();
            paths.sort();
            for path in paths {
                self.look_at(&path, pattern, offsets).await?;
            }
            self.look_at_siblings(pattern, offsets).await?;
        }
        self.skip_existing = false;
        // The holder first, while `seen` still names the held files this
        // look took in (they are in no listing: deleted or renamed away).
        if let Some(h) = &self.holder {
            h.settle(&self.cfg.source, self.known(&[]));
        }
        let listed = std::mem::take(&mut self.listed);
        self.seen.retain(|inode, _| listed.contains(inode));
        Ok(())
    }

    /// Whether new data can be read without a [`Follower::look`] at the
    /// folders: every file at a configured path is followed, and every live
    /// one still holds what was read of it (one `fstat` and a 64-byte
    /// `pread` each).
    pub fn live_intact(&self) -> bool {
        !self.unfollowed
            && !self.waiting
            && self
                .gens
                .iter()
                .filter(|g| g.sealed.is_none())
                .all(Generation::intact)
    }

    /// When the next sealed generation that is read to its end and committed
    /// becomes quiet enough to be let go (see [`Follower::retire`]): the
    /// daemon wakes then, instead of holding the file until its next look.
    /// Only times still to come: one past is the next poll's.
    pub fn retire_at(&self) -> Option<Instant> {
        let now = Instant::now();
        self.gens
            .iter()
            .filter(|g| g.all_committed())
            .filter_map(Generation::quiet_at)
            .filter(|at| *at > now)
            .min()
    }

    /// Lets go of sealed generations that are read to their end, committed,
    /// and quiet. They count as looked at (with their size now), so the
    /// holder does not take them again at the next file event and a look
    /// passes over them. The holder hears of it before their descriptors
    /// close: once closed, a deleted file's inode is free for the next file
    /// the engine creates, which the holder must not take for this one.
    pub fn retire(&mut self) {
        let (done, keep): (Vec<Generation>, Vec<Generation>) = std::mem::take(&mut self.gens)
            .into_iter()
            .partition(|g| g.sealed_and_quiet() && g.all_committed());
        self.gens = keep;
        if done.is_empty() {
            return;
        }
        for g in &done {
            let meta = g.file.as_ref().or(g.origin.as_ref()).map(File::metadata);
            if let (Some(inode), Some(Ok(meta))) = (g.inode, meta) {
                self.seen.insert(inode, hold::stat(&meta));
            }
        }
        if let Some(h) = &self.holder {
            h.settle(&self.cfg.source, self.known(&[]));
        }
        for g in done {
            tracing::info!(source = %self.cfg.source, file = %g.path, offset = g.offset(), "file done: read to its end and committed");
        }
    }

    /// Where a rotated file found late goes among the generations: before
    /// the first one whose first record is later than `first`, live or
    /// sealed (the file at the live path may have rotated since it was looked
    /// at, and then this file is newer than it). Rotations can rename files
    /// while a look lists them, so names do not tell the order; the content
    /// does. Without a time, after every sealed generation.
    fn time_slot(&self, first: Option<Stamp>) -> usize {
        let live = self
            .gens
            .iter()
            .position(|g| g.sealed.is_none())
            .unwrap_or(self.gens.len());
        let Some(first) = first else { return live };
        // Surely later: a fold that leaves the order open keeps the file
        // after (rotation order; see `stamp::in_time_order`).
        self.gens
            .iter()
            .position(|g| {
                g.first
                    .is_some_and(|t| t.order(&first) == std::cmp::Ordering::Greater)
            })
            .unwrap_or(self.gens.len())
    }

    /// Where a rotated file found late goes when a fold makes its first
    /// record ambiguous (its time cannot place it): before the first
    /// generation whose file was last written after it (the real clock of
    /// this host's writes; the live file is written last), which holds for
    /// a file that rotated between a look and the live file's opening too.
    /// `None` where that does not apply or a time of writing is unknown.
    fn written_slot(&self, g: &Generation) -> Option<usize> {
        if !g.first.is_some_and(|s| s.is_ambiguous()) {
            return None;
        }
        let mine = g.written()?;
        let mut slot = self.gens.len();
        for (i, other) in self.gens.iter().enumerate().rev() {
            match other.written() {
                Some(w) if w > mine => slot = i,
                Some(_) => break,
                None => return None,
            }
        }
        Some(slot)
    }

    /// The rotated siblings of `pattern` that no generation holds and the
    /// table has not finished, taken in as sealed generations in time order.
    /// Scanned newest first: a rotation renaming every file one place older
    /// while the scan runs then moves the files not yet scanned further along
    /// the scan, never behind it. A scan that found something is repeated
    /// (up to three times) to catch a file a rename still hid from it.
    async fn look_at_siblings<O: Offsets>(
        &mut self,
        pattern: &str,
        offsets: &O,
    ) -> Result<(), O::Error> {
        for _ in 0..3 {
            let mut found: Vec<Generation> = Vec::new();
            if let Err(e) = self.scan_siblings(pattern, offsets, &mut found).await {
                // An offsets lookup failed part way (the store down): what
                // this scan found is dropped unread, and so must not count
                // as seen, or no later look would take it in again.
                for i in found.iter().filter_map(|g| g.inode) {
                    self.seen.remove(&i);
                }
                return Err(e);
            }
            if found.is_empty() {
                break;
            }
            // Oldest first, so files without a readable time keep
            // rotation order among themselves.
            found.reverse();
            for g in written_order_in_a_fold(found) {
                let at = self
                    .written_slot(&g)
                    .unwrap_or_else(|| self.time_slot(g.first));
                self.gens.insert(at, g);
            }
        }
        Ok(())
    }

    /// One scan of `pattern`'s rotated siblings, newest first, then of the
    /// held files that are gone: what is to be taken in goes to `found`.
    async fn scan_siblings<O: Offsets>(
        &mut self,
        pattern: &str,
        offsets: &O,
        found: &mut Vec<Generation>,
    ) -> Result<(), O::Error> {
        let family = discover::family(pattern).unwrap_or_default();
        for f in family.iter().rev().filter(|f| !f.live) {
            self.look_at_sibling(&f.path, offsets, found).await?;
        }
        self.take_vanished(pattern, offsets, found).await
    }

    /// A rotated file that cannot be read now. Written to within
    /// [`WRITING_GRACE`] (a rotator still compressing it: a gzip read before
    /// its end is an error), it holds back every newer line until a later
    /// look reads it; the state machine must not see newer lines first.
    /// Untouched for longer, it is broken (a cut or corrupt gzip): that is
    /// logged, and the source goes on without it.
    fn unreadable(
        &mut self,
        path: &Path,
        inode: (u64, u64),
        meta: &std::fs::Metadata,
        e: &std::io::Error,
    ) {
        if e.kind() == std::io::ErrorKind::NotFound {
            return; // renamed meanwhile: the next scan finds it
        }
        let recent = meta
            .modified()
            .ok()
            .and_then(|m| m.elapsed().ok())
            .is_none_or(|age| age < WRITING_GRACE);
        if recent {
            self.seen.remove(&inode);
            self.waiting = true;
        } else {
            tracing::error!(source = %self.cfg.source, file = %path.display(), error = %e,
                "rotated file cannot be read (a cut or corrupt gzip?); going on without the part that cannot be read");
        }
    }

    /// Whether `meta`'s file is a generation (held or just found), or was
    /// looked at when it had this size.
    fn holds_or_saw(&self, meta: &std::fs::Metadata, found: &[Generation]) -> bool {
        let inode = (meta.dev(), meta.ino());
        self.gens
            .iter()
            .chain(found.iter())
            .any(|g| g.inode == Some(inode))
            || self.seen.get(&inode) == Some(&hold::stat(meta))
    }

    async fn look_at_sibling<O: Offsets>(
        &mut self,
        path: &Path,
        offsets: &O,
        found: &mut Vec<Generation>,
    ) -> Result<(), O::Error> {
        let Ok(meta) = std::fs::metadata(path) else {
            return Ok(());
        };
        self.listed.insert((meta.dev(), meta.ino()));
        if self.holds_or_saw(&meta, found) {
            return Ok(());
        }
        let opened = src::open(path, self.cfg.max_line_bytes, &self.cfg.heads);
        self.take_in_sibling(path, &meta, opened, offsets, found)
            .await
    }

    /// The files the holder opened as they appeared that are in no file of
    /// `pattern`'s family now and that no look found (created, rotated and
    /// deleted, or renamed out of the pattern, between two looks): read
    /// like a rotated file, from the held descriptor.
    async fn take_vanished<O: Offsets>(
        &mut self,
        pattern: &str,
        offsets: &O,
        found: &mut Vec<Generation>,
    ) -> Result<(), O::Error> {
        let Some(holder) = self.holder.clone() else {
            return Ok(());
        };
        let held = holder.unknown(&self.cfg.source, pattern, &self.known(found));
        if held.is_empty() {
            return Ok(());
        }
        let present = hold::family_inodes(pattern);
        for (inode, path, file) in held {
            let Ok(meta) = file.metadata() else { continue };
            if present.contains(&inode) || self.holds_or_saw(&meta, found) {
                continue; // a look reads it by its name
            }
            tracing::info!(source = %self.cfg.source, file = %path.display(),
                "file deleted or renamed away before a look found it: reading it from the descriptor held since it appeared");
            let opened = src::open_file(file, self.cfg.max_line_bytes, &self.cfg.heads);
            self.take_in_sibling(&path, &meta, opened, offsets, found)
                .await?;
        }
        Ok(())
    }

    /// A rotated file opened as `opened` (its metadata `meta`), now seen:
    /// taken in as a sealed generation, positioned at its committed offset,
    /// unless the table holds all of it or a generation holds it already.
    async fn take_in_sibling<O: Offsets>(
        &mut self,
        path: &Path,
        meta: &std::fs::Metadata,
        opened: std::io::Result<src::Opened>,
        offsets: &O,
        found: &mut Vec<Generation>,
    ) -> Result<(), O::Error> {
        let inode = (meta.dev(), meta.ino());
        self.seen.insert(inode, hold::stat(meta));
        let opened = match opened {
            Ok(o) => o,
            Err(e) => {
                self.unreadable(path, inode, meta, &e);
                return Ok(());
            }
        };
        let src::Opened {
            mut lines,
            len_hint: sealed_len,
            file: origin,
        } = opened;
        let Some(id) = lines.finished_id else {
            return Ok(());
        };
        if self.gens.iter().chain(found.iter()).any(|g| g.id == id) {
            return Ok(()); // a generation we hold, renamed or compressed
        }
        let committed = match offsets.committed(&self.cfg.source, id).await {
            Ok(c) => c,
            Err(e) => {
                // Not looked at after all: the next look asks again (seen,
                // it would be passed over for as long as it sits there).
                self.seen.remove(&inode);
                return Err(e);
            }
        };
        // A rotated file no longer grows: its length is read once.
        if committed.events > 0 && sealed_len == Some(committed.events) {
            return Ok(()); // fully committed before
        }
        if committed.events == 0 && self.skip_existing {
            // start_at = "end" at a source's first start: a rotated file
            // already there is passed over; the offset of its end is then
            // committed like any other, so no copy of it is read later.
            let _ = lines.reader.skip_to(u64::MAX);
            tracing::info!(source = %self.cfg.source, file = %path.display(), offset = lines.reader.offset(),
                "start_at = end: skipping a rotated file present at the first start");
        } else {
            match lines.reader.skip_to(committed.events) {
                Ok(true) => {}
                // A copy cut short: the table holds all of it.
                Ok(false) => return Ok(()),
                Err(e) => {
                    self.unreadable(path, inode, meta, &e);
                    return Ok(());
                }
            }
        }
        let shown = path.display().to_string();
        tracing::info!(source = %self.cfg.source, file = %shown, id = %id, offset = committed.events,
            "rotated file not fully read yet: reading it");
        found.push(Generation {
            id,
            first: lines.first,
            path: shown,
            inode: Some(inode),
            file: None,
            reader: lines.reader,
            origin: Some(origin),
            committed,
            sealed: Some(Instant::now()),
            marker: Vec::new(),
            idle_since: None,
            sealed_len,
        });
        Ok(())
    }

    async fn look_at<O: Offsets>(
        &mut self,
        path: &Path,
        pattern: &str,
        offsets: &O,
    ) -> Result<(), O::Error> {
        let shown = path.display().to_string();
        let Ok(meta) = std::fs::metadata(path) else {
            return Ok(());
        };
        let inode = (meta.dev(), meta.ino());
        // Content check of the live generation at this path.
        if let Some(i) = self
            .gens
            .iter()
            .position(|g| g.inode == Some(inode) && g.sealed.is_none())
        {
            if self.gens[i].intact() {
                return Ok(());
            }
            tracing::warn!(source = %self.cfg.source, file = %shown, offset = self.gens[i].offset(),
                "file was truncated or rewritten (copytruncate?): finishing the old content from its copy");
            self.truncated(i, pattern);
        }
        if self.gens.iter().any(|g| g.inode == Some(inode)) {
            return Ok(()); // a sealed generation's inode came back under this name
        }
        // A new inode at the configured path: whatever was live there is sealed.
        for g in self
            .gens
            .iter_mut()
            .filter(|g| g.path == shown && g.sealed.is_none())
        {
            tracing::info!(source = %self.cfg.source, file = %shown, "file rotated away; reading it to its end");
            g.sealed = Some(Instant::now());
        }
        // Until this file is followed, every pass looks again (see
        // `unfollowed`): data written to a file we hold no descriptor of
        // could be lost to a rotation that compresses and deletes it before
        // the safety look.
        let Ok(mut file) = File::open(path) else {
            self.unfollowed = true;
            return Ok(());
        };
        let Ok((_, Some(named))) = fingerprint::read_head(&mut file, &self.cfg.heads) else {
            self.unfollowed = true;
            return Ok(()); // no complete line yet: try again on the next look
        };
        let id = named.id;
        if self.gens.iter().any(|g| g.id == id) {
            return Ok(());
        }
        let committed = offsets.committed(&self.cfg.source, id).await?;
        let mut start = committed.events;
        if committed.events == 0 && self.skip_existing {
            start = last_line_end(&file, meta.len());
            tracing::info!(source = %self.cfg.source, file = %shown, offset = start, "start_at = end: skipping existing content");
        }
        match self.open_live(file, &shown, inode, named, committed, start) {
            Some(g) => {
                tracing::info!(source = %self.cfg.source, file = %shown, id = %id, offset = start, "following file");
                self.gens.push(g);
            }
            None => self.unfollowed = true, // shorter than committed: wait for it
        }
        Ok(())
    }

    /// A live generation on `file`, positioned at `start`; None when the file
    /// is shorter than that (wait for it to grow).
    fn open_live(
        &self,
        mut file: File,
        path: &str,
        inode: (u64, u64),
        named: fingerprint::Named,
        committed: Committed,
        start: u64,
    ) -> Option<Generation> {
        let stat = file.try_clone().ok();
        file.seek(SeekFrom::Start(0)).ok()?;
        let mut reader = LineReader::new(
            Box::new(file) as Box<dyn Read + Send>,
            0,
            self.cfg.max_line_bytes,
        );
        if !reader.skip_to(start).ok()? {
            return None;
        }
        let marker = match &stat {
            Some(f) if start > 0 => {
                let n = start.min(BEHIND_MAX as u64) as usize;
                let mut buf = vec![0u8; n];
                match f.read_at(&mut buf, start - n as u64) {
                    Ok(r) if r == n => buf,
                    _ => Vec::new(),
                }
            }
            _ => Vec::new(),
        };
        Some(Generation {
            id: named.id,
            first: named.first,
            path: path.to_owned(),
            inode: Some(inode),
            file: stat,
            reader,
            origin: None,
            committed,
            sealed: None,
            marker,
            idle_since: None,
            sealed_len: None,
        })
    }

    /// The live generation `i` lost its content: finish it from a sibling with
    /// the same identity, if one holds more than was read; the path's inode is
    /// then free for a new generation.
    fn truncated(&mut self, i: usize, pattern: &str) {
        let (id, offset) = (self.gens[i].id, self.gens[i].offset());
        let max_line = self.cfg.max_line_bytes;
        let heads = self.cfg.heads.clone();
        let g = &mut self.gens[i];
        g.inode = None;
        g.file = None;
        g.sealed = Some(Instant::now());
        g.marker.clear();
        let copy = discover::family(pattern)
            .ok()
            .into_iter()
            .flatten()
            .filter(|f| !f.live)
            .find_map(|f| {
                let mut opened = src::open(&f.path, max_line, &heads).ok()?;
                if opened.lines.finished_id != Some(id) {
                    return None;
                }
                opened
                    .lines
                    .reader
                    .skip_to(offset)
                    .ok()?
                    .then_some((f.path, opened))
            });
        match copy {
            Some((path, opened)) => {
                tracing::info!(source = %self.cfg.source, copy = %path.display(), offset, "finishing from the rotated copy");
                g.path = path.display().to_string();
                g.reader = opened.lines.reader;
                g.origin = Some(opened.file);
            }
            None => {
                // Nothing holds the rest: what was read is all that survived
                // (logrotate's copy-to-truncate window).
                tracing::warn!(source = %self.cfg.source, offset, "no copy of the truncated file holds more than was read");
                g.reader = LineReader::new(Box::new(std::io::empty()), offset, max_line);
            }
        }
    }
}

/// The offset just after the last newline before `len` (start_at = end keeps a
/// partly written line, which the writer is about to finish).
fn last_line_end(file: &File, len: u64) -> u64 {
    let mut pos = len;
    let mut buf = [0u8; 4096];
    while pos > 0 {
        let n = pos.min(buf.len() as u64) as usize;
        let from = pos - n as u64;
        if file
            .read_at(&mut buf[..n], from)
            .map(|r| r != n)
            .unwrap_or(true)
        {
            return 0;
        }
        if let Some(i) = memchr::memrchr(b'\n', &buf[..n]) {
            return from + i as u64 + 1;
        }
        pos = from;
    }
    0
}

/// Rotated files found together whose first records a fold makes ambiguous
/// and whose names are local times (a timed rotation, loguru's): their names
/// do not tell the order, and their times may not either (both passes of
/// the repeated hour rotate at like local times). Files this host's engine
/// just rotated were last written in the order they were written, so that
/// order (mtime) decides; without every mtime, rotation order stays.
fn written_order_in_a_fold(found: Vec<Generation>) -> Vec<Generation> {
    let fold = found
        .iter()
        .any(|g| g.first.is_some_and(|s| s.is_ambiguous()));
    if !fold
        || !found
            .iter()
            .any(|g| discover::named_by_date(Path::new(&g.path)))
    {
        return found;
    }
    let written = |g: &Generation| std::fs::metadata(&g.path).and_then(|m| m.modified()).ok();
    let mut keyed: Vec<_> = found
        .into_iter()
        .enumerate()
        .map(|(i, g)| (written(&g), i, g))
        .collect();
    if keyed.iter().all(|k| k.0.is_some()) {
        keyed.sort_by_key(|k| (k.0, k.1));
    }
    keyed.into_iter().map(|k| k.2).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Nothing committed anywhere: every file is read from its start.
    struct Nothing;

    impl Offsets for Nothing {
        type Error = std::convert::Infallible;
        async fn committed(&self, _: &str, _: FileId) -> Result<Committed, Self::Error> {
            Ok(Committed::default())
        }
    }

    fn follower(live: &Path) -> Follower {
        Follower::new(
            FollowSettings {
                source: "engine".into(),
                paths: vec![live.to_string_lossy().into_owned()],
                max_line_bytes: 1 << 20,
                start_at: StartAt::Beginning,
                heads: Heads::any_line(),
            },
            false,
        )
    }

    fn look(f: &mut Follower) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(f.look(&Nothing)).unwrap();
    }

    fn lines_of(f: &mut Follower) -> Vec<String> {
        let mut out = Vec::new();
        for g in f.generations_mut() {
            while let Ok(Some(super::super::reader::Item::Line { bytes, .. })) =
                g.reader.next_item()
            {
                out.push(String::from_utf8_lossy(bytes).into_owned());
            }
        }
        out
    }

    /// A file created and deleted between two looks is read from
    /// the descriptor the holder took when it appeared, before the newer
    /// live file; without a holder it is gone.
    #[test]
    fn a_file_deleted_between_looks_is_read_from_the_holder() {
        for with_holder in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            let live = dir.path().join("engine.log");
            let rotated = dir.path().join("engine.log.1");
            let pattern = live.to_string_lossy().into_owned();
            let holder = Holder::new(vec![("engine".into(), pattern)]);
            let mut f = follower(&live);
            if with_holder {
                f.hold_with(holder.clone());
            }
            std::fs::write(&live, "2026-01-28 10:00:00,000 - a - INFO - one\n").unwrap();
            look(&mut f);
            std::fs::rename(&live, &rotated).unwrap();
            std::fs::write(&live, "2026-01-28 10:00:01,000 - a - INFO - two\n").unwrap();
            holder.scan(); // what the holder's thread does on the creation
            std::fs::remove_file(&live).unwrap(); // "two", deleted unseen
            std::fs::write(&live, "2026-01-28 10:00:02,000 - a - INFO - three\n").unwrap();
            look(&mut f);
            let got = lines_of(&mut f);
            let want: Vec<&str> = if with_holder {
                vec!["one", "two", "three"]
            } else {
                vec!["one", "three"]
            };
            assert_eq!(
                got.iter()
                    .map(|l| l.trim_end().rsplit(" - ").next().unwrap_or(""))
                    .collect::<Vec<_>>(),
                want,
                "with a holder: {with_holder}"
            );
            if with_holder {
                assert_eq!(holder.held(), 0, "the follower knows every file now");
            }
        }
    }

    /// A rotated file read to its end and committed names when it can be
    /// let go (the daemon wakes then), is let go then, and the holder does
    /// not take it again at the next file event.
    #[test]
    fn a_finished_rotated_file_is_let_go_once_quiet_and_not_held_again() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("engine.log");
        let holder = Holder::new(vec![("engine".into(), live.to_string_lossy().into_owned())]);
        let mut f = follower(&live);
        f.hold_with(holder.clone());
        std::fs::write(&live, "2026-01-28 10:00:00,000 - a - INFO - one\n").unwrap();
        look(&mut f);
        std::fs::rename(&live, dir.path().join("engine.log.1")).unwrap();
        std::fs::write(&live, "2026-01-28 10:00:01,000 - a - INFO - two\n").unwrap();
        look(&mut f);
        assert_eq!(lines_of(&mut f).len(), 2);
        for g in f.generations_mut() {
            g.read_done(false);
        }
        assert_eq!(f.retire_at(), None, "nothing committed yet");
        f.committed(&f.advanced());
        let at = f.retire_at().expect("the sealed file is due to be let go");
        assert!(at > Instant::now() && at <= Instant::now() + SEAL_GRACE);
        let long_ago = Instant::now().checked_sub(SEAL_GRACE * 2).unwrap();
        let sealed = &mut f.generations_mut()[0];
        (sealed.sealed, sealed.idle_since) = (Some(long_ago), Some(long_ago));
        assert_eq!(f.retire_at(), None, "a time past is the next poll's");
        f.retire();
        assert_eq!(
            f.generations_mut().len(),
            1,
            "only the live file is followed"
        );
        holder.scan(); // what a file event makes the holder do
        assert_eq!(holder.held(), 0, "the finished file is held again");
    }

    /// Every file committed to `len` bytes.
    struct CommittedTo(u64);

    impl Offsets for CommittedTo {
        type Error = std::convert::Infallible;
        async fn committed(&self, _: &str, _: FileId) -> Result<Committed, Self::Error> {
            Ok(Committed::default().reached(self.0))
        }
    }

    /// A held file that is gone and that the table holds all of is let go
    /// by the look that finds so (it was once taken in again by every look).
    #[test]
    fn a_gone_held_file_the_table_holds_is_let_go() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("engine.log");
        let holder = Holder::new(vec![("engine".into(), live.to_string_lossy().into_owned())]);
        let mut f = follower(&live);
        f.hold_with(holder.clone());
        let line = "2026-01-28 10:00:00,000 - a - INFO - one\n";
        std::fs::write(&live, line).unwrap();
        holder.scan();
        std::fs::remove_file(&live).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(f.look(&CommittedTo(line.len() as u64)))
            .unwrap();
        assert_eq!(holder.held(), 0);
        assert!(f.generations_mut().is_empty());
    }

    /// Offsets that cannot be looked up on the `fail_at`th call (an outage
    /// in the middle of a look), and are all zero otherwise.
    struct FailsOnce {
        calls: std::sync::atomic::AtomicUsize,
        fail_at: usize,
    }

    impl Offsets for FailsOnce {
        type Error = String;
        async fn committed(&self, _: &str, _: FileId) -> Result<Committed, Self::Error> {
            let n = self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            if n == self.fail_at {
                return Err("the store is down".into());
            }
            Ok(Committed::default())
        }
    }

    /// A rotated file whose offsets could not be looked up (the store down
    /// mid-look) is looked at again by the next look, not passed over as
    /// seen for as long as it sits there.
    #[test]
    fn a_rotated_file_whose_lookup_failed_is_read_at_the_next_look() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("engine.log");
        std::fs::write(&live, "2026-01-28 10:00:01,000 - a - INFO - live\n").unwrap();
        std::fs::write(
            dir.path().join("engine.log.1"),
            "2026-01-28 10:00:00,000 - a - INFO - rotated\n",
        )
        .unwrap();
        let mut f = follower(&live);
        let offsets = FailsOnce {
            calls: Default::default(),
            fail_at: 2, // the live file's lookup, then the rotated one's
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        assert!(rt.block_on(f.look(&offsets)).is_err());
        rt.block_on(f.look(&offsets)).unwrap();
        let got = lines_of(&mut f);
        assert_eq!(
            got.iter().map(|l| l.trim_end()).collect::<Vec<_>>(),
            [
                "2026-01-28 10:00:00,000 - a - INFO - rotated",
                "2026-01-28 10:00:01,000 - a - INFO - live"
            ]
        );
    }

    /// The store goes down after a scan took in one rotated file and before
    /// it looked up the next: the next look takes in both (the first was
    /// once dropped unread, yet counted as seen, and never read).
    #[test]
    fn a_scan_cut_short_by_a_failed_lookup_loses_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("engine.log");
        std::fs::write(&live, "2026-01-28 10:00:02,000 - a - INFO - live\n").unwrap();
        for (i, t) in [(1, "01"), (2, "00")] {
            std::fs::write(
                dir.path().join(format!("engine.log.{i}")),
                format!("2026-01-28 10:00:{t},000 - a - INFO - r{i}\n"),
            )
            .unwrap();
        }
        let mut f = follower(&live);
        // The live file's lookup, then .2's (newest first: .1, then .2).
        let offsets = FailsOnce {
            calls: Default::default(),
            fail_at: 3,
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        assert!(rt.block_on(f.look(&offsets)).is_err());
        rt.block_on(f.look(&offsets)).unwrap();
        let got: Vec<String> = lines_of(&mut f)
            .iter()
            .map(|l| l.trim_end().rsplit(" - ").next().unwrap_or("").to_owned())
            .collect();
        assert_eq!(got, ["r2", "r1", "live"]);
    }

    /// What a look saw of a rotated file is forgotten once the file is gone
    /// (an engine rotating every second deletes 86,400 files a day).
    #[test]
    fn seen_forgets_deleted_files() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("engine.log");
        let mut f = follower(&live);
        std::fs::write(&live, "2026-01-28 10:00:03,000 - a - INFO - live\n").unwrap();
        for i in 1..=3 {
            let p = dir.path().join(format!("engine.log.{i}"));
            std::fs::write(&p, format!("2026-01-28 10:00:0{i},000 - a - INFO - r{i}\n")).unwrap();
        }
        look(&mut f);
        assert_eq!(f.seen.len(), 3);
        std::fs::remove_file(dir.path().join("engine.log.3")).unwrap();
        look(&mut f);
        assert_eq!(f.seen.len(), 2);
    }
}
