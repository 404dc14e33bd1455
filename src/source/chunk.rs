//! Cutting a plain file into stretches that start at line starts, so several
//! threads can read one file at once (`backfill` on every core), and reading
//! one stretch through the file's own descriptor.
//!
//! Every byte after a newline starts a line in a one-pass read too (an
//! oversize line ends at its newline), so reading the stretches in order
//! sees exactly the lines one reader sees. Reads are positional
//! (`read_at`): the stretches share one descriptor and never move its
//! offset, and a file deleted or renamed since it was opened is read all
//! the same.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

/// Bytes read at a time while looking for the newline after a cut.
const PROBE: usize = 64 * 1024;

/// Where stretches of about `every` bytes start in `file` from `start` (a
/// line start) to `end`: `start` first, then the byte after the first
/// newline at or past each multiple of `every`. A stretch whose cut would
/// fall past the next one (a line longer than `every`) is merged with it.
/// The last stretch runs to whatever the file's end is when it is read.
pub fn line_cuts(file: &File, start: u64, end: u64, every: u64) -> io::Result<Vec<u64>> {
    let every = every.max(1);
    let mut cuts = vec![start];
    let mut target = start.saturating_add(every);
    let mut probe = vec![0u8; PROBE];
    while target < end {
        let Some(cut) = newline_after(file, target, end, &mut probe)? else {
            break;
        };
        if cut >= end {
            break;
        }
        cuts.push(cut);
        target = cut.saturating_add(every);
    }
    Ok(cuts)
}

/// The offset after the first newline at or after `from`, before `end`.
fn newline_after(file: &File, from: u64, end: u64, buf: &mut [u8]) -> io::Result<Option<u64>> {
    let mut at = from;
    while at < end {
        let want = buf
            .len()
            .min(usize::try_from(end - at).unwrap_or(buf.len()));
        let n = file.read_at(&mut buf[..want], at)?;
        if n == 0 {
            return Ok(None);
        }
        if let Some(i) = memchr::memchr(b'\n', &buf[..n]) {
            return Ok(Some(at + i as u64 + 1));
        }
        at += n as u64;
    }
    Ok(None)
}

/// The bytes of `file` from `start` to `end` (to the file's end when
/// `None`), read positionally. A stretch with an end that the file no
/// longer reaches (truncated while it was read) is an error, not a short
/// read: what is missing would otherwise look like the end of the data.
pub struct Stretch {
    file: Arc<File>,
    at: u64,
    end: Option<u64>,
}

impl Stretch {
    /// The stretch `[start, end)` of `file`.
    pub fn new(file: Arc<File>, start: u64, end: Option<u64>) -> Stretch {
        Stretch {
            file,
            at: start,
            end,
        }
    }
}

impl Read for Stretch {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let want = match self.end {
            Some(end) if self.at >= end => return Ok(0),
            Some(end) => out
                .len()
                .min(usize::try_from(end - self.at).unwrap_or(out.len())),
            None => out.len(),
        };
        let n = self.file.read_at(&mut out[..want], self.at)?;
        if n == 0 && want > 0 && self.end.is_some() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "the file ends at byte {} while it was being read in stretches (truncated meanwhile?)",
                    self.at
                ),
            ));
        }
        self.at += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file_of(data: &[u8]) -> File {
        let mut f = tempfile::tempfile().expect("temp file");
        f.write_all(data).expect("write");
        f
    }

    fn read_all(s: &mut Stretch) -> Vec<u8> {
        let mut out = Vec::new();
        s.read_to_end(&mut out).expect("read");
        out
    }

    #[test]
    fn cuts_fall_after_newlines_and_stretches_join_to_the_file() {
        let mut data = Vec::new();
        for i in 0..500 {
            data.extend_from_slice(format!("line {i} {}\n", "x".repeat(i % 37)).as_bytes());
        }
        let f = Arc::new(file_of(&data));
        for every in [1, 7, 100, 1000, 100_000] {
            let cuts = line_cuts(&f, 0, data.len() as u64, every).expect("cuts");
            assert_eq!(cuts[0], 0);
            for c in &cuts[1..] {
                assert_eq!(data[*c as usize - 1], b'\n', "every {every}: cut at {c}");
            }
            let mut joined = Vec::new();
            for (i, c) in cuts.iter().enumerate() {
                let end = cuts.get(i + 1).copied();
                joined.extend(read_all(&mut Stretch::new(f.clone(), *c, end)));
            }
            assert_eq!(joined, data, "every {every}");
        }
    }

    #[test]
    fn a_line_longer_than_a_stretch_is_not_cut() {
        let mut data = b"short\n".to_vec();
        data.extend(vec![b'y'; 300_000]);
        data.extend_from_slice(b"\nafter\n");
        let f = file_of(&data);
        let cuts = line_cuts(&f, 0, data.len() as u64, 3).expect("cuts");
        assert_eq!(cuts, vec![0, 6, 300_007]);
    }

    #[test]
    fn a_stretch_the_file_no_longer_reaches_is_an_error() {
        let f = Arc::new(file_of(b"abc\n"));
        let mut s = Stretch::new(f, 0, Some(10));
        let mut out = Vec::new();
        assert!(s.read_to_end(&mut out).is_err());
    }
}
