//! A file's identity: who a file *is*, independent of its path, inode or
//! compression, so `x.log`, `x.log.1` and `x.log.1.gz` are one file.
//!
//! The identity is UUID v5 of the file's bytes up to and including its first
//! *record* line (a line the source's envelope reads as a record's head,
//! newline included), taken from the *decompressed* content. A file that holds
//! no record head within its first 1 KiB is named by that 1 KiB.
//!
//! Why up to the first record and not the first line: an engine that writes a
//! fixed banner or header first would give every file the same first line,
//! and a second file would be resumed at the first one's offset (failure
//! mode 11). The first record carries the time to the millisecond, so two
//! files share an identity only if they start with the same banner *and* the
//! same record at the same millisecond. Why not "the first min(size, 1 KiB)
//! bytes": a young file grows, and an identity that changed while it grew
//! would give the same line two `event_id`s and two offset records. Lines never
//! change once written, so this identity is fixed from the first record's
//! newline on. For the usual file, which starts with a record, it is the
//! first line.
//!
//! What a record head is comes from the parse layer as [`Heads`]; this module
//! knows no envelope. Defined once, here, for `parse`, `backfill` and `run`.

use super::stamp::Stamp;
use std::fmt;
use std::io::{self, Read};
use std::sync::Arc;
use uuid::Uuid;

/// At most this many bytes of content name a file.
pub const FINGERPRINT_MAX: usize = 1024;

const FILE_NAMESPACE: Uuid = Uuid::from_u128(0x1f0e_9c55_3b7a_4c2e_8d61_a4b9_07e2_5c13);

/// What a line is to the source's envelope: `None` for no record's head (a
/// banner, a continuation, garbage), `Some(time)` for a record's first line
/// and its time in UTC when it has a readable one.
type HeadFn = dyn Fn(&[u8]) -> Option<Option<Stamp>> + Send + Sync;

/// Tells a record's first line from anything else, and reads its time: given
/// by the parse layer (`SourceParser::heads`), so that files are named by
/// their first record and ordered by its time without `source` knowing any
/// envelope.
#[derive(Clone)]
pub struct Heads(Arc<HeadFn>);

impl Heads {
    /// Heads as `f` tells them.
    pub fn new(f: impl Fn(&[u8]) -> Option<Option<Stamp>> + Send + Sync + 'static) -> Heads {
        Heads(Arc::new(f))
    }

    /// Every line is a record's head, without a time: the identity is the
    /// first line (for tests and tools that know no envelope).
    pub fn any_line() -> Heads {
        Heads::new(|_| Some(None))
    }

    /// What `line` (newline included or not) is.
    pub fn of(&self, line: &[u8]) -> Option<Option<Stamp>> {
        (self.0)(line)
    }
}

impl fmt::Debug for Heads {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Heads")
    }
}

/// A file's identity with the time of its first record, as its head decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Named {
    /// The identity.
    pub id: FileId,
    /// The time of its first record, if it has one with a readable time
    /// within the identifying bytes (orders files of one source by content).
    pub first: Option<Stamp>,
}

/// The identity of a file's content.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId(Uuid);

impl FileId {
    /// The identity of content that starts with `head`, if `head` is long enough
    /// to decide it: it holds a complete record head line within the first
    /// [`FINGERPRINT_MAX`] bytes, or is at least that long.
    pub fn try_from_head(head: &[u8], heads: &Heads) -> Option<Named> {
        let window = &head[..head.len().min(FINGERPRINT_MAX)];
        let mut from = 0;
        while let Some(nl) = memchr::memchr(b'\n', &window[from..]) {
            let end = from + nl + 1;
            if let Some(first) = heads.of(&window[from..end]) {
                return Some(Named {
                    id: FileId::from_head(&window[..end]),
                    first,
                });
            }
            from = end;
        }
        (window.len() == FINGERPRINT_MAX).then(|| Named {
            id: FileId::from_head(window),
            first: None,
        })
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

/// Reads from `r` (already decompressed) until its identity is decided (a
/// complete record head, see [`FileId::try_from_head`]) or [`FINGERPRINT_MAX`]
/// bytes are read, and returns those bytes with the identity, if any. The
/// caller chains the returned bytes in front of the rest of `r`, so nothing is
/// read twice and streams that cannot seek (stdin, gzip) work too.
pub fn read_head(r: &mut impl Read, heads: &Heads) -> io::Result<(Vec<u8>, Option<Named>)> {
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
        if memchr::memchr(b'\n', &chunk[..n]).is_some()
            && let Some(named) = FileId::try_from_head(&head, heads)
        {
            return Ok((head, Some(named)));
        }
    }
    let named = FileId::try_from_head(&head, heads);
    Ok((head, named))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines starting with a digit are records, timed by nothing.
    fn digits() -> Heads {
        Heads::new(|l| l.first().is_some_and(u8::is_ascii_digit).then_some(None))
    }

    fn id(head: &[u8], heads: &Heads) -> Option<FileId> {
        FileId::try_from_head(head, heads).map(|n| n.id)
    }

    #[test]
    fn identity_is_the_first_line_when_it_is_a_record() {
        let any = Heads::any_line();
        let a = id(b"first\nsecond\n", &any).unwrap();
        let b = id(b"first\nother and longer\n", &any).unwrap();
        assert_eq!(a, b, "later lines must not change the identity");
        assert_ne!(a, id(b"firsT\n", &any).unwrap());
        assert_eq!(id(b"1 x\n2 y\n", &digits()), id(b"1 x\n", &any));
    }

    /// Failure mode 11: two files that start with the same banner are two
    /// files; the identity reaches to the first record, and not beyond.
    #[test]
    fn a_shared_banner_does_not_make_two_files_one() {
        let h = digits();
        let a = id(b"== engine v2 ==\n\n1 first record\n2 next\n", &h).unwrap();
        let b = id(b"== engine v2 ==\n\n1 other record\n", &h).unwrap();
        assert_ne!(a, b);
        assert_eq!(Some(a), id(b"== engine v2 ==\n\n1 first record\n9\n", &h));
        assert_eq!(
            id(b"== engine v2 ==\n\n1 first rec", &h),
            None,
            "undecided until the record is complete"
        );
    }

    #[test]
    fn undecided_until_a_record_or_1k() {
        let any = Heads::any_line();
        assert_eq!(id(b"no newline yet", &any), None);
        let long = vec![b'x'; 2000];
        let got = id(&long, &any).unwrap();
        assert_eq!(Some(got), id(&long[..FINGERPRINT_MAX], &any));
        let banners = b"banner\n".repeat(200);
        assert_eq!(id(&banners[..700], &digits()), None);
        assert_eq!(
            id(&banners, &digits()),
            Some(FileId::from_head(&banners[..FINGERPRINT_MAX]))
        );
    }

    #[test]
    fn the_first_record_time_comes_with_the_identity() {
        let t = chrono::DateTime::parse_from_rfc3339("2026-01-28T10:00:00Z")
            .unwrap()
            .to_utc();
        let h = Heads::new(move |l| l.starts_with(b"rec").then_some(Some(Stamp::exact(t))));
        let named = FileId::try_from_head(b"banner\nrec one\n", &h).unwrap();
        assert_eq!(named.first, Some(Stamp::exact(t)));
    }

    #[test]
    fn read_head_stops_early_and_keeps_bytes() {
        let data = b"banner\nline one\nline two\n".repeat(100);
        let h = Heads::new(|l| l.starts_with(b"line").then_some(None));
        let (head, named) = read_head(&mut &data[..], &h).unwrap();
        assert!(data.starts_with(&head));
        assert_eq!(named, FileId::try_from_head(&data, &h));
        assert_eq!(
            named.map(|n| n.id),
            Some(FileId::from_head(b"banner\nline one\n"))
        );
    }

    #[test]
    fn display_round_trips() {
        let id = FileId::from_head(b"x\n");
        assert_eq!(FileId::parse(&id.to_string()), Some(id));
    }
}
