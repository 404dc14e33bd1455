//! Following one source's files while they are written and rotated.
//!
//! A *generation* is one file's content (its identity, see
//! `source::fingerprint`), followed through an open file descriptor. The
//! configured path names the live generation; when the path starts naming
//! another inode (rename rotation, logrotate `create`, WatchedFileHandler
//! reopening), the old generation is *sealed* but keeps its descriptor and is
//! read to its end, even if it is renamed again, compressed or deleted. A
//! generation is let go only once it is sealed, read to its end and its
//! offset is committed (tailing-anchors §5 point 5): no timers that drop data.
//!
//! Truncation is detected by content, not size: the bytes just before the
//! read offset are kept as a marker and compared on every poll. A truncated
//! generation (copytruncate, `FileHandler(mode='w')`) is finished from its
//! copy (a sibling with the same identity, plain or gzipped) at the offset
//! reached, and the truncated path becomes a new generation.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::Utc;

use crate::config::{SourceConfig, StartAt};
use crate::event::{QuarantineRecord, RiskEvent};
use crate::parse::{LineRef, Outcome, SourceParser, SourceState};
use crate::sink::{Committed, DeltaSink, SinkError};
use crate::source::discover;
use crate::source::fingerprint::{self, FileId};
use crate::source::reader::{Item, LineReader};
use crate::source::{self as src};
use crate::tally::Tally;

const MARKER_LEN: usize = 64;
/// How long a sealed generation must sit at its end before it is let go (or its
/// unterminated tail quarantined): a writer may still finish a line it started
/// before the rename reached it.
const SEAL_GRACE: Duration = Duration::from_secs(2);

struct Generation {
    id: FileId,
    /// The path it was opened as (the `source_file` of its rows).
    path: String,
    /// (device, inode) of the descriptor; None once truncated (the inode now
    /// holds another generation) or for a copy that is read to finish one.
    inode: Option<(u64, u64)>,
    /// A second handle on the same file, for `fstat` and `pread` (plain files).
    file: Option<File>,
    reader: LineReader<Box<dyn Read + Send>>,
    committed: Committed,
    sealed: Option<Instant>,
    /// Last ≤64 bytes before the read offset.
    marker: Vec<u8>,
    /// When the reader last found nothing new.
    idle_since: Option<Instant>,
}

impl Generation {
    fn offset(&self) -> u64 {
        self.reader.offset()
    }

    /// Whether the content before the read offset is still what was read.
    fn intact(&self) -> bool {
        let Some(f) = &self.file else { return true };
        let off = self.offset();
        let Ok(meta) = f.metadata() else { return true };
        if meta.len() < off {
            return false;
        }
        if self.marker.is_empty() {
            return true;
        }
        let mut buf = vec![0u8; self.marker.len()];
        match f.read_at(&mut buf, off - self.marker.len() as u64) {
            Ok(n) if n == buf.len() => buf == self.marker,
            _ => false,
        }
    }
}

/// What the tracker did since its last flush, for logs and metrics.
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
pub struct SourceTail {
    cfg: SourceConfig,
    parser: SourceParser,
    state: SourceState,
    gens: Vec<Generation>,
    events: Vec<RiskEvent>,
    quarantine: Vec<QuarantineRecord>,
    first_pending: Option<Instant>,
    last_commit: Instant,
    /// Whether this is the first look at the files (for `start_at = "end"`).
    first_scan: bool,
    /// Lines read, events and quarantined since start.
    pub tally: Tally,
    /// Rotated siblings already looked at, by (device, inode) → size then:
    /// a reconcile only re-reads the head of a file that changed.
    seen: std::collections::HashMap<(u64, u64), u64>,
}

impl SourceTail {
    /// A tracker starting from the state committed in the table.
    pub fn new(cfg: SourceConfig, parser: SourceParser, state: SourceState) -> SourceTail {
        SourceTail {
            cfg,
            parser,
            state,
            gens: Vec::new(),
            events: Vec::new(),
            quarantine: Vec::new(),
            first_pending: None,
            last_commit: Instant::now(),
            first_scan: true,
            tally: Tally::default(),
            seen: std::collections::HashMap::new(),
        }
    }

    /// The source's name.
    pub fn name(&self) -> &str {
        &self.cfg.name
    }

    /// The source's config.
    pub fn config(&self) -> &SourceConfig {
        &self.cfg
    }

    /// The source's enrichment state.
    pub fn state_mut(&mut self) -> &mut SourceState {
        &mut self.state
    }

    /// Replaces the parser (pattern reload).
    pub fn parser_mut(&mut self) -> &mut SourceParser {
        &mut self.parser
    }

    /// Rows waiting for a commit.
    pub fn pending_rows(&self) -> usize {
        self.events.len() + self.quarantine.len()
    }

    /// When the oldest pending row was read.
    pub fn first_pending(&self) -> Option<Instant> {
        self.first_pending
    }

    /// Whether any generation was read past its committed offset.
    pub fn offsets_advanced(&self) -> bool {
        self.gens.iter().any(|g| g.offset() > g.committed.events)
    }

    /// When the source last committed.
    pub fn last_commit(&self) -> Instant {
        self.last_commit
    }

    /// Open generations (for status and tests).
    pub fn open_files(&self) -> Vec<(String, FileId, u64, u64, bool)> {
        self.gens
            .iter()
            .map(|g| {
                (
                    g.path.clone(),
                    g.id,
                    g.offset(),
                    g.committed.events,
                    g.sealed.is_some(),
                )
            })
            .collect()
    }

    /// Finds new and rotated files, detects truncation, then reads every
    /// generation (oldest first) until `max_pending` rows wait for a commit.
    pub async fn poll(
        &mut self,
        sink: &DeltaSink,
        max_pending: usize,
    ) -> Result<PollReport, SinkError> {
        self.discover(sink).await?;
        self.first_scan = false;
        let mut report = PollReport::default();
        for i in 0..self.gens.len() {
            if self.pending_rows() >= max_pending {
                report.saturated = true; // back-pressure: read on after the next commit
                break;
            }
            self.read_generation(i, max_pending, &mut report);
        }
        report.saturated |= self.pending_rows() >= max_pending;
        self.retire();
        Ok(report)
    }

    /// The live paths first (sealing what rotated away), then a reconcile of
    /// the rotated siblings: one that no generation holds and the table has
    /// not fully committed (rotated twice between wake-ups, or while the
    /// daemon was down) is read as a sealed generation, in rotation order.
    async fn discover(&mut self, sink: &DeltaSink) -> Result<(), SinkError> {
        let patterns = self.cfg.paths.clone();
        for pattern in &patterns {
            let mut paths: Vec<PathBuf> = glob::glob(pattern)
                .map(|g| g.filter_map(Result::ok).collect())
                .unwrap_or_default();
            paths.sort();
            for path in paths {
                self.look_at(&path, pattern, sink).await?;
            }
            for found in discover::family(pattern).unwrap_or_default() {
                if !found.live {
                    self.look_at_sibling(&found.path, sink).await?;
                }
            }
        }
        Ok(())
    }

    async fn look_at_sibling(&mut self, path: &Path, sink: &DeltaSink) -> Result<(), SinkError> {
        let Ok(meta) = std::fs::metadata(path) else {
            return Ok(());
        };
        let inode = (meta.dev(), meta.ino());
        if self.gens.iter().any(|g| g.inode == Some(inode))
            || self.seen.get(&inode) == Some(&meta.len())
        {
            return Ok(());
        }
        self.seen.insert(inode, meta.len());
        let Ok(content) = src::open_content(path) else {
            return Ok(());
        };
        let Ok(mut lines) = src::lines(content, self.cfg.max_line_bytes) else {
            return Ok(());
        };
        let Some(id) = lines.id else { return Ok(()) };
        if self.gens.iter().any(|g| g.id == id) {
            return Ok(()); // a generation we hold, renamed or compressed
        }
        let committed = sink.committed(&self.cfg.name, id).await?;
        if committed.events > 0 && src::content_len_hint(path) == Some(committed.events) {
            return Ok(()); // fully committed before
        }
        if !lines.reader.skip_to(committed.events).unwrap_or(false) {
            return Ok(());
        }
        let shown = path.display().to_string();
        tracing::info!(source = %self.cfg.name, file = %shown, id = %id, offset = committed.events,
            "rotated file not fully read yet: reading it");
        let at = self
            .gens
            .iter()
            .position(|g| g.sealed.is_none())
            .unwrap_or(self.gens.len());
        self.gens.insert(
            at,
            Generation {
                id,
                path: shown,
                inode: Some(inode),
                file: None,
                reader: lines.reader,
                committed,
                sealed: Some(Instant::now()),
                marker: Vec::new(),
                idle_since: None,
            },
        );
        Ok(())
    }

    async fn look_at(
        &mut self,
        path: &Path,
        pattern: &str,
        sink: &DeltaSink,
    ) -> Result<(), SinkError> {
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
            if !self.gens[i].intact() {
                tracing::warn!(source = %self.cfg.name, file = %shown, offset = self.gens[i].offset(),
                    "file was truncated or rewritten (copytruncate?): finishing the old content from its copy");
                self.truncated(i, pattern, sink).await?;
            } else {
                return Ok(());
            }
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
            tracing::info!(source = %self.cfg.name, file = %shown, "file rotated away; reading it to its end");
            g.sealed = Some(Instant::now());
        }
        let Ok(mut file) = File::open(path) else {
            return Ok(());
        };
        let (head, id) = match fingerprint::read_head(&mut file) {
            Ok(x) => x,
            Err(_) => return Ok(()),
        };
        drop(head);
        let Some(id) = id else {
            return Ok(()); // no complete line yet: try again on the next wake-up
        };
        if self.gens.iter().any(|g| g.id == id) {
            return Ok(());
        }
        let committed = sink.committed(&self.cfg.name, id).await?;
        let mut start = committed.events;
        if committed.events == 0 && self.first_scan && self.cfg.start_at == StartAt::End {
            start = last_line_end(&file, meta.len());
            tracing::info!(source = %self.cfg.name, file = %shown, offset = start, "start_at = end: skipping existing content");
        }
        let stat = file.try_clone().ok();
        if file.seek(SeekFrom::Start(0)).is_err() {
            return Ok(());
        }
        let mut reader = LineReader::new(
            Box::new(file) as Box<dyn Read + Send>,
            0,
            self.cfg.max_line_bytes,
        );
        match reader.skip_to(start) {
            Ok(true) => {}
            _ => return Ok(()), // shorter than committed: wait for it to grow
        }
        let marker = match &stat {
            Some(f) if start > 0 => {
                let n = start.min(MARKER_LEN as u64) as usize;
                let mut buf = vec![0u8; n];
                if f.read_at(&mut buf, start - n as u64)
                    .map(|r| r == n)
                    .unwrap_or(false)
                {
                    buf
                } else {
                    Vec::new()
                }
            }
            _ => Vec::new(),
        };
        tracing::info!(source = %self.cfg.name, file = %shown, id = %id, offset = start, "following file");
        self.gens.push(Generation {
            id,
            path: shown,
            inode: Some(inode),
            file: stat,
            reader,
            committed,
            sealed: None,
            marker,
            idle_since: None,
        });
        Ok(())
    }

    /// The live generation `i` lost its content: finish it from a sibling with
    /// the same identity, if one holds more than was read; the path's inode is
    /// then free for a new generation.
    async fn truncated(
        &mut self,
        i: usize,
        pattern: &str,
        _sink: &DeltaSink,
    ) -> Result<(), SinkError> {
        let (id, offset) = (self.gens[i].id, self.gens[i].offset());
        self.gens[i].inode = None;
        self.gens[i].file = None;
        self.gens[i].sealed = Some(Instant::now());
        let copy = discover::family(pattern)
            .ok()
            .into_iter()
            .flatten()
            .filter(|f| !f.live)
            .find_map(|f| {
                let content = src::open_content(&f.path).ok()?;
                let mut lines = src::lines(content, self.cfg.max_line_bytes).ok()?;
                if lines.id != Some(id) {
                    return None;
                }
                lines
                    .reader
                    .skip_to(offset)
                    .ok()?
                    .then_some((f.path, lines))
            });
        match copy {
            Some((path, lines)) => {
                tracing::info!(source = %self.cfg.name, copy = %path.display(), offset, "finishing from the rotated copy");
                let g = &mut self.gens[i];
                g.path = path.display().to_string();
                g.reader = lines.reader;
                g.marker.clear();
            }
            None => {
                // Nothing holds the rest: what was read is all that survived
                // (the copytruncate window, tailing-anchors row 5).
                tracing::warn!(source = %self.cfg.name, offset, "no copy of the truncated file holds more than was read");
                let g = &mut self.gens[i];
                g.reader =
                    LineReader::new(Box::new(std::io::empty()), offset, self.cfg.max_line_bytes);
            }
        }
        Ok(())
    }

    fn read_generation(&mut self, i: usize, max_pending: usize, report: &mut PollReport) {
        let now = Utc::now();
        let source = self.cfg.name.clone();
        let g = &mut self.gens[i];
        let mut got_any = false;
        loop {
            if self.events.len() + self.quarantine.len() >= max_pending {
                break;
            }
            let item = match g.reader.next_item() {
                Ok(item) => item,
                Err(e) => {
                    tracing::warn!(source = %source, file = %g.path, error = %e, "read failed; will retry");
                    break;
                }
            };
            let q = match item {
                None => break,
                Some(Item::Line { offset, bytes }) => {
                    got_any = true;
                    report.lines += 1;
                    report.bytes += bytes.len() as u64;
                    self.tally.lines += 1;
                    let keep = bytes.len().min(MARKER_LEN);
                    g.marker.clear();
                    g.marker.extend_from_slice(&bytes[bytes.len() - keep..]);
                    let end = offset + bytes.len() as u64;
                    match self.parser.parse_line(
                        &mut self.state,
                        LineRef {
                            file: g.id,
                            path: &g.path,
                            offset,
                            bytes,
                        },
                        now,
                    ) {
                        Outcome::Event(e) => {
                            self.tally.count_event(&e.event_type);
                            self.events.push(*e);
                            self.first_pending.get_or_insert_with(Instant::now);
                            None
                        }
                        Outcome::Quarantine(q) => Some((end, *q)),
                        other => {
                            self.tally.count(&other);
                            None
                        }
                    }
                }
                Some(Item::Oversize {
                    offset,
                    len,
                    prefix,
                }) => {
                    got_any = true;
                    self.tally.lines += 1;
                    g.marker.clear();
                    Some((
                        offset + len,
                        self.parser.oversize(&g.path, offset, len, &prefix, now),
                    ))
                }
                Some(Item::Fragment { offset, bytes }) => {
                    // A line without its newline is never emitted; once the file
                    // is sealed and quiet, nobody will finish it.
                    let quiet = g.sealed.is_some_and(|s| s.elapsed() >= SEAL_GRACE)
                        && g.idle_since.is_some_and(|s| s.elapsed() >= SEAL_GRACE);
                    if !quiet {
                        break;
                    }
                    let q = self.parser.fragment(&g.path, offset, bytes, now);
                    let end = offset + bytes.len() as u64;
                    g.reader.consume_fragment();
                    g.marker.clear();
                    Some((end, q))
                }
            };
            if let Some((end, q)) = q
                && end > g.committed.quarantine
            {
                self.tally.count_quarantine(q.reason);
                self.quarantine.push(q);
                self.first_pending.get_or_insert_with(Instant::now);
            }
        }
        if got_any {
            g.idle_since = None;
        } else {
            g.idle_since.get_or_insert_with(Instant::now);
        }
    }

    /// Lets go of sealed generations that are read to their end, committed,
    /// and quiet.
    fn retire(&mut self) {
        let name = &self.cfg.name;
        self.gens.retain(|g| {
            let done = g.sealed.is_some_and(|s| s.elapsed() >= SEAL_GRACE)
                && g.idle_since.is_some_and(|s| s.elapsed() >= SEAL_GRACE)
                && g.committed.events >= g.offset();
            if done {
                tracing::info!(source = %name, file = %g.path, offset = g.offset(), "file done: read to its end and committed");
            }
            !done
        });
    }

    /// Commits the pending rows and every advanced offset in one commit.
    /// On failure nothing changes, and the next flush tries again.
    pub async fn flush(&mut self, sink: &mut DeltaSink) -> Result<bool, SinkError> {
        let offsets: Vec<(FileId, u64)> = self
            .gens
            .iter()
            .filter(|g| g.offset() > g.committed.events)
            .map(|g| (g.id, g.offset()))
            .collect();
        if offsets.is_empty() && self.events.is_empty() && self.quarantine.is_empty() {
            return Ok(false);
        }
        let started = Instant::now();
        let version = sink
            .commit(
                &self.cfg.name,
                &offsets,
                &self.events,
                &self.quarantine,
                &self.state,
            )
            .await?;
        tracing::debug!(source = %self.cfg.name, version, events = self.events.len(), quarantined = self.quarantine.len(),
            files = offsets.len(), ms = started.elapsed().as_millis() as u64, "committed");
        for g in &mut self.gens {
            if let Some((_, o)) = offsets.iter().find(|(id, _)| *id == g.id) {
                g.committed.events = *o;
                g.committed.quarantine = g.committed.quarantine.max(*o);
            }
        }
        self.events.clear();
        self.quarantine.clear();
        self.first_pending = None;
        self.last_commit = Instant::now();
        Ok(true)
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
