//! A file's identity: who a file *is*, independent of its path, inode or
//! compression, so `x.log`, `x.log.1` and `x.log.1.gz` are one file.
//!
//! The identity is UUID v5 of the file's first complete line (its newline
//! included), or of its first 1 KiB when that line is longer, taken from the
//! *decompressed* content. Why the first line and not "the first min(size, 1 KiB)
//! bytes": a young file grows, and an identity that changes while it grows would
//! give the same line two `event_id`s and two offset records. Lines never change
//! once written, so this identity is fixed from the first newline on. Python's
//! `%(asctime)s` head with milliseconds makes two files with the same first line
//! vanishingly rare; where it can happen (banner lines) the offset marker of the
//! live tailer resolves it (docs/FAILURE-MODES.md, row 11).
//!
//! Defined once, here, for `parse`, `backfill` and `run`.

use std::fmt;
use std::io::{self, Read};
use uuid::Uuid;

/// At most this many bytes of content name a file.
pub const FINGERPRINT_MAX: usize = 1024;

const FILE_NAMESPACE: Uuid = Uuid::from_u128(0x1f0e_9c55_3b7a_4c2e_8d61_a4b9_07e2_5c13);

/// The identity of a file's content.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId(Uuid);

impl FileId {
    /// The identity of content that starts with `head`, if `head` is long enough
    /// to decide it (holds a newline, or is at least [`FINGERPRINT_MAX`] bytes).
    pub fn try_from_head(head: &[u8]) -> Option<FileId> {
        let window = &head[..head.len().min(FINGERPRINT_MAX)];
        match memchr::memchr(b'\n', window) {
            Some(nl) => Some(FileId::from_head(&window[..=nl])),
            None if window.len() == FINGERPRINT_MAX => Some(FileId::from_head(window)),
            None => None,
        }
    }

    /// Hashes exactly the given identifying bytes (for tests and the two cases above).
    pub fn from_head(identifying: &[u8]) -> FileId {
        FileId(Uuid::new_v5(&FILE_NAMESPACE, identifying))
    }

    /// The 16 bytes, for deriving event ids.
    pub fn as_bytes(&self) -> &[u8; 16] {
        self.0.as_bytes()
    }

    /// Parses the hyphenated form written by `Display`.
    pub fn parse(s: &str) -> Option<FileId> {
        Uuid::parse_str(s).ok().map(FileId)
    }
}

impl fmt::Display for FileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl fmt::Debug for FileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FileId({})", self.0.hyphenated())
    }
}

/// Reads up to [`FINGERPRINT_MAX`] bytes from `r` (already decompressed) and
/// returns them with the identity they decide, if any. The caller chains the
/// returned bytes in front of the rest of `r`, so nothing is read twice and
/// streams that cannot seek (stdin, gzip) work too.
pub fn read_head(r: &mut impl Read) -> io::Result<(Vec<u8>, Option<FileId>)> {
    let mut head = Vec::with_capacity(FINGERPRINT_MAX);
    let mut chunk = [0u8; FINGERPRINT_MAX];
    while head.len() < FINGERPRINT_MAX {
        let want = FINGERPRINT_MAX - head.len();
        let n = match r.read(&mut chunk[..want]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        head.extend_from_slice(&chunk[..n]);
        if memchr::memchr(b'\n', &chunk[..n]).is_some() {
            break;
        }
    }
    let id = FileId::try_from_head(&head);
    Ok((head, id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_is_the_first_line() {
        let a = FileId::try_from_head(b"first\nsecond\n").unwrap();
        let b = FileId::try_from_head(b"first\nother and longer\n").unwrap();
        assert_eq!(a, b, "later lines must not change the identity");
        assert_ne!(a, FileId::try_from_head(b"firsT\n").unwrap());
    }

    #[test]
    fn undecided_until_a_newline_or_1k() {
        assert_eq!(FileId::try_from_head(b"no newline yet"), None);
        let long = vec![b'x'; 2000];
        let id = FileId::try_from_head(&long).unwrap();
        assert_eq!(id, FileId::try_from_head(&long[..FINGERPRINT_MAX]).unwrap());
    }

    #[test]
    fn read_head_stops_early_and_keeps_bytes() {
        let data = b"line one\nline two\n".repeat(100);
        let (head, id) = read_head(&mut &data[..]).unwrap();
        assert!(data.starts_with(&head));
        assert_eq!(id, FileId::try_from_head(&data));
    }

    #[test]
    fn display_round_trips() {
        let id = FileId::from_head(b"x\n");
        assert_eq!(FileId::parse(&id.to_string()), Some(id));
    }
}
