//! Sources: finding log files ([`discover`]), naming them by content
//! ([`fingerprint`]), following them through rotation ([`follow`]), reading
//! their complete lines with absolute offsets ([`reader`]), and the offsets a
//! file is committed to ([`offsets`], kept by the sink). Nothing here parses
//! or writes.

pub mod ahead;
pub mod chunk;
pub mod discover;
pub mod fingerprint;
pub mod follow;
pub mod hold;
pub mod offsets;
pub mod reader;
pub mod stamp;

use flate2::read::MultiGzDecoder;
use std::fs::File;
use std::io::{self, BufReader, Cursor, Read};
use std::path::Path;

use fingerprint::{FileId, Heads};
use reader::LineReader;

/// The bytes a gzip stream starts with.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// A byte stream of a file's content, decompressed if it is gzip.
pub type Content = Box<dyn Read + Send>;

/// Whether a file starting with `head` is gzip.
pub fn is_gzip(head: &[u8]) -> bool {
    head.starts_with(&GZIP_MAGIC)
}

/// Opens a file's content: gzip is detected by its magic bytes, not its name
/// (logrotate's `compress` and hand-made copies disagree on names), and read
/// as a multi-member stream.
pub fn open_content(path: &Path) -> io::Result<Content> {
    content_of(File::open(path)?)
}

/// The content of an open file, from its current position (its start).
fn content_of(mut file: File) -> io::Result<Content> {
    let mut magic = [0u8; 2];
    let mut got = 0;
    while got < 2 {
        match file.read(&mut magic[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let head = Cursor::new(magic[..got].to_vec());
    let raw = head.chain(file);
    if got == 2 && magic == GZIP_MAGIC {
        Ok(Box::new(MultiGzDecoder::new(BufReader::with_capacity(
            128 * 1024,
            raw,
        ))))
    } else {
        Ok(Box::new(raw))
    }
}

/// The length of a file's content without reading it: the size of a plain
/// file, or the size a gzip trailer records (exact for a single-member file
/// under 4 GiB; a multi-member file may disagree, and then it is read).
pub fn content_len_hint(path: &Path) -> Option<u64> {
    len_hint_of(&File::open(path).ok()?)
}

/// [`content_len_hint`] of an open file (positional reads: its offset stays).
fn len_hint_of(f: &File) -> Option<u64> {
    use std::os::unix::fs::FileExt;
    let len = f.metadata().ok()?.len();
    let mut magic = [0u8; 2];
    if f.read_exact_at(&mut magic, 0).is_err() || magic != GZIP_MAGIC {
        return Some(len);
    }
    if len < 18 {
        return None;
    }
    let mut isize = [0u8; 4];
    f.read_exact_at(&mut isize, len - 4).ok()?;
    Some(u64::from(u32::from_le_bytes(isize)))
}

/// A file opened once: its lines and its content's length as
/// [`content_len_hint`] reads it, both from one descriptor, so a rotation
/// renaming files meanwhile cannot pair one file's length with another's
/// lines, and the content stays this file's whatever its path names later.
pub struct Opened {
    /// Its lines and identity.
    pub lines: Lines,
    /// Its content's length, if cheap to know.
    pub len_hint: Option<u64>,
    /// The descriptor, to read the content again from its start with
    /// [`reopen`] (a gzip file read while it was still being written ends
    /// in an error, and a decoder does not resume after one).
    pub file: File,
}

/// Opens `path` once for [`Opened`].
pub fn open(path: &Path, max_line_bytes: usize, heads: &Heads) -> io::Result<Opened> {
    open_file(File::open(path)?, max_line_bytes, heads)
}

/// [`open`] of a file already open (one held since it appeared, maybe
/// deleted since), read from its start whatever its position was.
pub fn open_file(mut file: File, max_line_bytes: usize, heads: &Heads) -> io::Result<Opened> {
    use std::io::{Seek, SeekFrom};
    file.seek(SeekFrom::Start(0))?;
    let len_hint = len_hint_of(&file);
    let kept = file.try_clone()?;
    let lines = lines(content_of(file)?, max_line_bytes, heads)?;
    Ok(Opened {
        lines,
        len_hint,
        file: kept,
    })
}

/// The stamps of every record head of the file at `path`, in file order
/// (empty when it cannot be read).
pub fn record_stamps(path: &Path, max_line: usize, heads: &Heads) -> Vec<stamp::Stamp> {
    let mut out = Vec::new();
    let Ok(opened) = open(path, max_line, heads) else {
        return out;
    };
    let mut reader = opened.lines.reader;
    while let Ok(Some(item)) = reader.next_item() {
        match item {
            reader::Item::Line { bytes, .. } => {
                if let Some(Some(s)) = heads.of(bytes) {
                    out.push(s);
                }
            }
            reader::Item::Fragment { .. } => break,
            reader::Item::Oversize { .. } => {}
        }
    }
    out
}

/// A source's files (given in rotation order, oldest first) in time order:
/// by their first records' times ([`stamp::in_time_order`]), so numbered
/// names (`.1`, `.2.gz`: a sure rotation order) decide where times cannot.
/// Names that carry a local date and time are no sure order across the
/// autumn fold: when a fold makes a first record name two instants and the
/// files are named by date, every file's records are read for its last one
/// too and the files are chained ([`stamp::chain_order`]).
pub fn time_order<T>(
    items: Vec<T>,
    path: impl Fn(&T) -> &Path,
    first: impl Fn(&T) -> Option<stamp::Stamp>,
    max_line: usize,
    heads: &Heads,
) -> Vec<T> {
    let fold = items
        .iter()
        .any(|x| first(x).is_some_and(|s| s.is_ambiguous()));
    if !fold || !items.iter().any(|x| discover::named_by_date(path(x))) {
        return stamp::in_time_order(items, first);
    }
    let spans = items
        .iter()
        .map(|x| {
            let stamps = record_stamps(path(x), max_line, heads);
            Some((*stamps.first()?, *stamps.last()?))
        })
        .collect();
    let written = items
        .iter()
        .map(|x| std::fs::metadata(path(x)).and_then(|m| m.modified()).ok())
        .collect();
    stamp::chain_order(items, spans, written)
}

/// The family of `pattern` (see [`discover::family`]) in time order
/// ([`time_order`]).
pub fn family_in_time_order(
    pattern: &str,
    max_line: usize,
    heads: &Heads,
) -> io::Result<Vec<discover::Found>> {
    let files = discover::family(pattern)?;
    let first = |f: &discover::Found| open(&f.path, max_line, heads).ok()?.lines.first;
    let firsts: Vec<Option<stamp::Stamp>> = files.iter().map(first).collect();
    let mut paired: Vec<(discover::Found, Option<stamp::Stamp>)> =
        files.into_iter().zip(firsts).collect();
    paired = time_order(paired, |(f, _)| &f.path, |(_, s)| *s, max_line, heads);
    Ok(paired.into_iter().map(|(f, _)| f).collect())
}

/// A new line reader over the content of `file` (kept by [`Opened`]),
/// positioned at `offset`; `None` when the content now ends before it.
pub fn reopen(
    file: &File,
    offset: u64,
    max_line_bytes: usize,
) -> io::Result<Option<LineReader<Content>>> {
    use std::io::{Seek, SeekFrom};
    let mut f = file.try_clone()?;
    f.seek(SeekFrom::Start(0))?;
    let mut reader = LineReader::new(content_of(f)?, 0, max_line_bytes);
    Ok(reader.skip_to(offset)?.then_some(reader))
}

/// A file opened for reading lines: its identity (once decidable) and a line
/// reader positioned at the start of its content.
pub struct Lines {
    /// The identity; `None` while the content has no complete record line
    /// and is under 1 KiB (see [`fingerprint`]).
    pub id: Option<FileId>,
    /// The time of its first record, when the identity holds one.
    pub first: Option<stamp::Stamp>,
    /// The identity the content has if it is finished (a rotated file, an
    /// archive): [`Lines::id`], or, for content under 1 KiB without a record
    /// line (a banner only, garbage), all of it, so that such a file is still
    /// read and its lines quarantined rather than passed over. Never used
    /// for a live file, which may still grow.
    pub finished_id: Option<FileId>,
    /// The reader.
    pub reader: LineReader<Content>,
}

impl Lines {
    /// The identity of a file that is `live` (still written: it may grow
    /// into its identity) or finished (see [`Lines::finished_id`]).
    pub fn identity(&self, live: bool) -> Option<FileId> {
        if live { self.id } else { self.finished_id }
    }
}

/// Reads the identifying head of `content` and returns a line reader over the
/// whole content (head included: nothing is read twice from the source).
pub fn lines(mut content: Content, max_line_bytes: usize, heads: &Heads) -> io::Result<Lines> {
    let (head, named) = fingerprint::read_head(&mut content, heads)?;
    let finished_id = match named {
        Some(n) => Some(n.id),
        None if head.is_empty() => None,
        None => Some(FileId::from_head(&head)),
    };
    let chained: Content = Box::new(Cursor::new(head).chain(content));
    let reader = LineReader::new(chained, 0, max_line_bytes);
    Ok(Lines {
        id: named.map(|n| n.id),
        first: named.and_then(|n| n.first),
        finished_id,
        reader,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{Compression, write::GzEncoder};
    use std::io::Write;

    #[test]
    fn plain_and_gzip_share_identity_and_lines() {
        let dir = tempfile::tempdir().unwrap();
        let data = b"2026-01-28 10:00:00,000 - a - INFO - one\nsecond line\n";
        let plain = dir.path().join("x.log");
        std::fs::write(&plain, data).unwrap();
        // Two gzip members, as a concatenated archive has.
        let gz = dir.path().join("x.log.1.gz");
        let mut out = Vec::new();
        for part in [&data[..20], &data[20..]] {
            let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
            enc.write_all(part).unwrap();
            out.extend(enc.finish().unwrap());
        }
        std::fs::write(&gz, out).unwrap();
        let mut a = lines(open_content(&plain).unwrap(), 1 << 20, &Heads::any_line()).unwrap();
        let mut b = lines(open_content(&gz).unwrap(), 1 << 20, &Heads::any_line()).unwrap();
        assert!(a.id.is_some());
        assert_eq!(a.id, b.id);
        loop {
            let x = a.reader.next_item().unwrap().map(|i| format!("{i:?}"));
            let y = b.reader.next_item().unwrap().map(|i| format!("{i:?}"));
            assert_eq!(x, y);
            if x.is_none() {
                break;
            }
        }
    }

    /// A rotator gzipping a file is seen half way: the content ends in an
    /// error, never in a clean end that would pass for the whole file, and
    /// once the file is complete, [`reopen`] goes on from the offset reached.
    #[test]
    fn a_gzip_still_being_written_ends_in_an_error_then_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let text: String = (0..2000)
            .map(|i| format!("2026-01-28 10:00:00,000 - a - INFO - line {i}\n"))
            .collect();
        let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
        enc.write_all(text.as_bytes()).unwrap();
        let gz = enc.finish().unwrap();
        let p = dir.path().join("x.log.1.gz");
        std::fs::write(&p, &gz[..gz.len() / 2]).unwrap();
        let mut opened = open(&p, 1 << 20, &Heads::any_line()).unwrap();
        let mut got = Vec::new();
        let failed = loop {
            match opened.lines.reader.next_item() {
                Ok(Some(reader::Item::Line { bytes, .. })) => got.push(bytes.to_vec()),
                Ok(Some(other)) => panic!("{other:?}"),
                Ok(None) => break false,
                Err(_) => break true,
            }
        };
        assert!(
            failed,
            "a cut gzip must not end cleanly ({} lines)",
            got.len()
        );
        std::fs::write(&p, &gz).unwrap();
        let at = opened.lines.reader.offset();
        let mut again = reopen(&opened.file, at, 1 << 20).unwrap().unwrap();
        while let Some(reader::Item::Line { bytes, .. }) = again.next_item().unwrap() {
            got.push(bytes.to_vec());
        }
        assert_eq!(got.concat(), text.as_bytes());
    }

    #[test]
    fn tiny_and_empty_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.log");
        std::fs::write(&p, b"x").unwrap();
        let l = lines(open_content(&p).unwrap(), 100, &Heads::any_line()).unwrap();
        assert_eq!(l.id, None);
        std::fs::write(&p, b"").unwrap();
        let mut l = lines(open_content(&p).unwrap(), 100, &Heads::any_line()).unwrap();
        assert_eq!(l.id, None);
        assert_eq!(l.reader.next_item().unwrap(), None);
    }
}
