//! Sources: finding log files ([`discover`]), naming them by content
//! ([`fingerprint`]), following them through rotation ([`follow`]), reading
//! their complete lines with absolute offsets ([`reader`]), and the offsets a
//! file is committed to ([`offsets`], kept by the sink). Nothing here parses
//! or writes.

pub mod discover;
pub mod fingerprint;
pub mod follow;
pub mod offsets;
pub mod reader;

use flate2::read::MultiGzDecoder;
use std::fs::File;
use std::io::{self, BufReader, Cursor, Read};
use std::path::Path;

use fingerprint::FileId;
use reader::LineReader;

/// The bytes a gzip stream starts with.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// A byte stream of a file's content, decompressed if it is gzip.
pub type Content = Box<dyn Read + Send>;

/// Opens a file's content: gzip is detected by its magic bytes, not its name
/// (logrotate's `compress` and hand-made copies disagree on names), and read
/// as a multi-member stream.
pub fn open_content(path: &Path) -> io::Result<Content> {
    let mut file = File::open(path)?;
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
    use std::io::{Seek, SeekFrom};
    let mut f = File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    let mut magic = [0u8; 2];
    if f.read_exact(&mut magic).is_err() || magic != GZIP_MAGIC {
        return Some(len);
    }
    if len < 18 {
        return None;
    }
    let mut isize = [0u8; 4];
    f.seek(SeekFrom::End(-4)).ok()?;
    f.read_exact(&mut isize).ok()?;
    Some(u64::from(u32::from_le_bytes(isize)))
}

/// A file opened for reading lines: its identity (once decidable) and a line
/// reader positioned at the start of its content.
pub struct Lines {
    /// The identity; `None` when the content has no complete line yet and is
    /// under 1 KiB (then it has no lines to give either).
    pub id: Option<FileId>,
    /// The reader.
    pub reader: LineReader<Content>,
}

/// Reads the identifying head of `content` and returns a line reader over the
/// whole content (head included: nothing is read twice from the source).
pub fn lines(mut content: Content, max_line_bytes: usize) -> io::Result<Lines> {
    let (head, id) = fingerprint::read_head(&mut content)?;
    let chained: Content = Box::new(Cursor::new(head).chain(content));
    let reader = LineReader::new(chained, 0, max_line_bytes);
    Ok(Lines { id, reader })
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
        let mut a = lines(open_content(&plain).unwrap(), 1 << 20).unwrap();
        let mut b = lines(open_content(&gz).unwrap(), 1 << 20).unwrap();
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

    #[test]
    fn tiny_and_empty_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.log");
        std::fs::write(&p, b"x").unwrap();
        let l = lines(open_content(&p).unwrap(), 100).unwrap();
        assert_eq!(l.id, None);
        std::fs::write(&p, b"").unwrap();
        let mut l = lines(open_content(&p).unwrap(), 100).unwrap();
        assert_eq!(l.id, None);
        assert_eq!(l.reader.next_item().unwrap(), None);
    }
}
