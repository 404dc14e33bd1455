//! A line reader that hands out complete lines only, with their absolute byte
//! offsets, in bounded memory.
//!
//! Modelled on ripgrep's line buffer: one reusable buffer, the incomplete tail
//! rolled to the front before the next read, growth only when one line does not
//! fit. A line longer than `max_line_bytes` is not held: its first 64 KiB are
//! kept for the quarantine record and the rest is read past until its newline.
//! A last line without a newline is reported as a [`Item::Fragment`] but never
//! consumed, so a tailer that calls again after the writer finishes the line
//! gets it whole (and a restart re-reads it from its first byte).
//!
//! Over half of this file is its tests: property tests of every way bytes can
//! arrive against a model of the lines.

use std::io::{self, Read};

/// How much of an oversize line is kept (for its quarantine record, whose
/// `raw_line` holds at most as much: `event::schema::QUARANTINE_RAW_LINE_MAX`
/// is defined as this).
pub const KEPT_PREFIX_MAX: usize = 64 * 1024;

const INITIAL_BUFFER: usize = 64 * 1024;

/// Bytes of consumed content kept in front of the unread ones when the buffer
/// is compacted, so [`LineReader::behind`] can always answer.
pub const BEHIND_MAX: usize = 64;

/// Default `max_line_bytes`: 1 MiB.
pub const DEFAULT_MAX_LINE_BYTES: usize = 1024 * 1024;

/// What the reader found next.
#[derive(Debug, PartialEq, Eq)]
pub enum Item<'a> {
    /// A complete line: `bytes` ends with `\n`.
    Line {
        /// Offset of the line's first byte.
        offset: u64,
        /// The line, newline included.
        bytes: &'a [u8],
    },
    /// A complete line longer than the limit, already read past.
    Oversize {
        /// Offset of the line's first byte.
        offset: u64,
        /// Its full length, newline included.
        len: u64,
        /// Its first bytes (up to 64 KiB), for the quarantine record.
        prefix: Vec<u8>,
    },
    /// End of the data so far, with bytes after the last newline. Not consumed:
    /// calling [`LineReader::next_item`] again re-reads from `offset`.
    Fragment {
        /// Offset of the fragment's first byte.
        offset: u64,
        /// Its bytes so far (at most `max_line_bytes`; an oversize fragment
        /// reports its prefix).
        bytes: &'a [u8],
    },
}

/// Complete lines that can be passed over in bulk.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Run {
    /// Bytes in the run (whole lines).
    pub len: usize,
    /// Lines in the run.
    pub lines: u64,
    /// The line right after the run holds a match: the search found it
    /// there, so the caller need not search that line again.
    pub match_next: bool,
}

/// How many newlines `bytes` holds, in fixed 32-byte blocks the compiler
/// can vectorise (one `memchr` call per line costs more than its search on
/// lines of a hundred bytes).
fn newlines(bytes: &[u8]) -> u64 {
    let mut blocks = bytes.chunks_exact(32);
    let mut n = 0u64;
    for block in &mut blocks {
        n += block.iter().filter(|&&b| b == b'\n').count() as u64;
    }
    n + blocks.remainder().iter().filter(|&&b| b == b'\n').count() as u64
}

struct Skipping {
    offset: u64,
    len: u64,
    prefix: Vec<u8>,
}

/// Reads complete lines from any byte stream.
pub struct LineReader<R> {
    inner: R,
    buf: Vec<u8>,
    /// `buf[pos..end]` holds unread bytes.
    pos: usize,
    end: usize,
    /// Absolute offset of `buf[pos]`.
    offset: u64,
    max_line: usize,
    /// Set while reading past an oversize line.
    skipping: Option<Skipping>,
}

impl<R: Read> LineReader<R> {
    /// A reader whose first byte is at absolute offset `start`.
    pub fn new(inner: R, start: u64, max_line_bytes: usize) -> LineReader<R> {
        LineReader {
            inner,
            buf: vec![0; INITIAL_BUFFER.min(max_line_bytes.max(1)).max(4096)],
            pos: 0,
            end: 0,
            offset: start,
            max_line: max_line_bytes.max(1),
            skipping: None,
        }
    }

    /// The same reader over `f(inner)`, which must go on where `inner` is
    /// (what is buffered stays, and is read first): reading the stream on
    /// a thread of its own ([`super::ahead`]).
    pub fn try_map_inner<S>(self, f: impl FnOnce(R) -> io::Result<S>) -> io::Result<LineReader<S>> {
        Ok(LineReader {
            inner: f(self.inner)?,
            buf: self.buf,
            pos: self.pos,
            end: self.end,
            offset: self.offset,
            max_line: self.max_line,
            skipping: self.skipping,
        })
    }

    /// The longest line it hands out whole.
    pub fn max_line_bytes(&self) -> usize {
        self.max_line
    }

    /// Offset just after the last line handed out: where a restart resumes.
    pub fn offset(&self) -> u64 {
        match &self.skipping {
            Some(s) => s.offset,
            None => self.offset,
        }
    }

    /// Skips the content up to absolute offset `target` (a line boundary, e.g.
    /// a committed offset) without splitting lines. Returns false when the
    /// content ends before `target`.
    pub fn skip_to(&mut self, target: u64) -> io::Result<bool> {
        while self.offset < target {
            let avail = (self.end - self.pos) as u64;
            let take = avail.min(target - self.offset) as usize;
            self.pos += take;
            self.offset += take as u64;
            if self.offset == target {
                break;
            }
            self.pos = 0;
            self.end = 0;
            if self.fill()? == 0 {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Consumes the bytes after the last newline (a sealed file's unterminated
    /// tail, already quarantined by the caller); returns how many.
    pub fn consume_fragment(&mut self) -> u64 {
        if let Some(s) = self.skipping.take() {
            // Everything up to `self.offset` was read past already.
            return self.offset - s.offset;
        }
        let n = (self.end - self.pos) as u64;
        self.pos = self.end;
        self.offset += n;
        n
    }

    /// The last bytes (at most [`BEHIND_MAX`]) before [`LineReader::offset`]:
    /// what a follower keeps to notice that a file was truncated and rewritten
    /// under it. Empty while an oversize line is being read past, and before
    /// anything was consumed.
    pub fn behind(&self) -> &[u8] {
        if self.skipping.is_some() {
            return &[];
        }
        &self.buf[self.pos.saturating_sub(BEHIND_MAX)..self.pos]
    }

    /// Reads more into the buffer. Returns the number of bytes added.
    /// The unread bytes move to the front, after the last consumed ones
    /// (see [`LineReader::behind`]).
    fn fill(&mut self) -> io::Result<usize> {
        if self.pos > BEHIND_MAX {
            let from = self.pos - BEHIND_MAX;
            self.buf.copy_within(from..self.end, 0);
            self.end -= from;
            self.pos = BEHIND_MAX;
        }
        if self.end == self.buf.len() {
            let grown = (self.buf.len() * 2)
                .min(self.max_line + 1 + BEHIND_MAX)
                .max(self.end + 1);
            self.buf.resize(grown, 0);
        }
        loop {
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(n) => {
                    self.end += n;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// The run of buffered complete lines before the first one in which
    /// `find` reports a match: the lines that cannot matter, which the caller
    /// may pass over in bulk with [`LineReader::consume_run`] instead of line
    /// by line. Searching the whole buffer at once is what makes a mixed log
    /// cheap: a SIMD literal search (ripgrep's trick) instead of a call per
    /// line. The run stops before a line over the size limit, so oversize
    /// lines still reach [`LineReader::next_item`]. Empty when the next line
    /// is a match, or is not complete in the buffer yet.
    pub fn noise_run(&self, find: impl Fn(&[u8]) -> Option<usize>) -> Run {
        let mut run = Run::default();
        if self.skipping.is_some() {
            return run;
        }
        let avail = &self.buf[self.pos..self.end];
        let Some(last_nl) = memchr::memrchr(b'\n', avail) else {
            return run;
        };
        let complete = &avail[..=last_nl];
        let found = find(complete);
        let limit = match found {
            // Up to the start of the line holding the match.
            Some(i) => memchr::memrchr(b'\n', &complete[..i]).map_or(0, |nl| nl + 1),
            None => complete.len(),
        };
        let lines = &complete[..limit];
        // The line holding the match is handed out whole only if it is
        // under the limit (`next_item`'s rule); `complete` ends with a newline.
        run.match_next = found.is_some_and(|i| {
            memchr::memchr(b'\n', &complete[i..]).is_some_and(|k| i + k - limit < self.max_line)
        });
        if limit <= self.max_line {
            // No line in it can be over the limit: count the newlines in
            // one vectorised pass instead of stopping at each.
            run.lines = newlines(lines);
            run.len = limit;
            return run;
        }
        let mut line_start = 0;
        for nl in memchr::memchr_iter(b'\n', lines) {
            if nl - line_start >= self.max_line {
                break;
            }
            run.lines += 1;
            line_start = nl + 1;
        }
        run.len = line_start;
        // Stopped short of the match by a line over the limit.
        run.match_next &= line_start == limit;
        run
    }

    /// The bytes of a run found by [`LineReader::noise_run`] (nothing else
    /// may have been read in between): its lines, whole.
    pub fn run_bytes(&self, run: &Run) -> &[u8] {
        &self.buf[self.pos..self.pos + run.len]
    }

    /// Consumes a run found by [`LineReader::noise_run`] (nothing else may
    /// have been read in between).
    pub fn consume_run(&mut self, run: &Run) {
        self.pos += run.len;
        self.offset += run.len as u64;
    }

    /// The next complete line, oversize line or end-of-data fragment; `None`
    /// when the data so far ends exactly on a line boundary.
    pub fn next_item(&mut self) -> io::Result<Option<Item<'_>>> {
        loop {
            if let Some(skip) = self.skipping.as_mut() {
                // Read past an oversize line without keeping it.
                let avail = &self.buf[self.pos..self.end];
                let nl = memchr::memchr(b'\n', avail);
                let body = nl.unwrap_or(avail.len());
                let room = KEPT_PREFIX_MAX.saturating_sub(skip.prefix.len());
                skip.prefix.extend_from_slice(&avail[..body.min(room)]);
                if let Some(nl) = nl {
                    skip.len += nl as u64 + 1;
                    self.pos += nl + 1;
                    self.offset += nl as u64 + 1;
                    let done = self.skipping.take().expect("checked above");
                    return Ok(Some(Item::Oversize {
                        offset: done.offset,
                        len: done.len,
                        prefix: done.prefix,
                    }));
                }
                skip.len += avail.len() as u64;
                self.offset += avail.len() as u64;
                self.pos = self.end;
                if self.fill()? == 0 {
                    let s = self.skipping.as_ref().expect("still skipping");
                    return Ok(Some(Item::Fragment {
                        offset: s.offset,
                        bytes: &s.prefix,
                    }));
                }
                continue;
            }

            let avail = &self.buf[self.pos..self.end];
            if let Some(nl) = memchr::memchr(b'\n', avail)
                && nl < self.max_line
            {
                let start = self.pos;
                let offset = self.offset;
                self.pos += nl + 1;
                self.offset += nl as u64 + 1;
                return Ok(Some(Item::Line {
                    offset,
                    bytes: &self.buf[start..=nl + start],
                }));
            }
            if avail.len() >= self.max_line {
                // The line is over the limit: keep its prefix, read past the rest.
                // The prefix is collected while skipping, so it is the same
                // whichever way the bytes arrived.
                self.skipping = Some(Skipping {
                    offset: self.offset,
                    len: 0,
                    prefix: Vec::new(),
                });
                continue;
            }
            if self.fill()? == 0 {
                if self.pos == self.end {
                    return Ok(None);
                }
                return Ok(Some(Item::Fragment {
                    offset: self.offset,
                    bytes: &self.buf[self.pos..self.end],
                }));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A reader that hands out the data in the given chunk sizes, as a slow
    /// writer or a pipe would.
    struct Chunked<'a> {
        data: &'a [u8],
        sizes: Vec<usize>,
        i: usize,
    }

    impl Read for Chunked<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            if self.data.is_empty() {
                return Ok(0);
            }
            let want = self.sizes.get(self.i).copied().unwrap_or(7).max(1);
            self.i += 1;
            let n = want.min(out.len()).min(self.data.len());
            out[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    #[derive(Debug, PartialEq)]
    enum Got {
        Line(u64, Vec<u8>),
        Over(u64, u64),
        Frag(u64, Vec<u8>),
    }

    fn collect(r: impl Read, max: usize) -> Vec<Got> {
        let mut lr = LineReader::new(r, 0, max);
        let mut out = vec![];
        while let Some(item) = lr.next_item().unwrap() {
            match item {
                Item::Line { offset, bytes } => out.push(Got::Line(offset, bytes.to_vec())),
                Item::Oversize { offset, len, .. } => out.push(Got::Over(offset, len)),
                Item::Fragment { offset, bytes } => {
                    out.push(Got::Frag(offset, bytes.to_vec()));
                    break;
                }
            }
        }
        out
    }

    /// The obvious model: split on newlines, classify by length.
    fn model(data: &[u8], max: usize) -> Vec<Got> {
        let mut out = vec![];
        let mut off = 0u64;
        let mut rest = data;
        while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
            let line = &rest[..=nl];
            if nl >= max {
                out.push(Got::Over(off, line.len() as u64));
            } else {
                out.push(Got::Line(off, line.to_vec()));
            }
            off += line.len() as u64;
            rest = &rest[nl + 1..];
        }
        if !rest.is_empty() {
            let keep = if rest.len() >= max {
                rest.len().min(KEPT_PREFIX_MAX)
            } else {
                rest.len()
            };
            out.push(Got::Frag(off, rest[..keep].to_vec()));
        }
        out
    }

    #[test]
    fn lines_offsets_and_fragment() {
        let got = collect(&b"ab\n\ncd\nef"[..], 100);
        assert_eq!(
            got,
            vec![
                Got::Line(0, b"ab\n".to_vec()),
                Got::Line(3, b"\n".to_vec()),
                Got::Line(4, b"cd\n".to_vec()),
                Got::Frag(7, b"ef".to_vec()),
            ]
        );
    }

    #[test]
    fn oversize_line_is_skipped_in_bounded_memory() {
        let mut data = vec![b'x'; 5 * 1024 * 1024];
        data.push(b'\n');
        data.extend_from_slice(b"after\n");
        let mut lr = LineReader::new(&data[..], 0, 1024 * 1024);
        match lr.next_item().unwrap().unwrap() {
            Item::Oversize {
                offset,
                len,
                prefix,
            } => {
                assert_eq!((offset, len), (0, 5 * 1024 * 1024 + 1));
                assert_eq!(prefix.len(), KEPT_PREFIX_MAX);
            }
            other => panic!("expected oversize, got {other:?}"),
        }
        assert!(
            lr.buf.len() <= 1024 * 1024 + 1,
            "buffer grew past the limit"
        );
        assert_eq!(
            lr.next_item().unwrap(),
            Some(Item::Line {
                offset: 5 * 1024 * 1024 + 1,
                bytes: b"after\n"
            })
        );
        assert_eq!(lr.next_item().unwrap(), None);
    }

    #[test]
    fn fragment_is_not_consumed_and_completes_later() {
        // A file that grows between calls, as a tailed log does.
        let shared = std::rc::Rc::new(std::cell::RefCell::new(b"one\ntw".to_vec()));
        struct Growing(std::rc::Rc<std::cell::RefCell<Vec<u8>>>, usize);
        impl Read for Growing {
            fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
                let data = self.0.borrow();
                let n = (data.len() - self.1).min(out.len());
                out[..n].copy_from_slice(&data[self.1..self.1 + n]);
                self.1 += n;
                Ok(n)
            }
        }
        let mut lr = LineReader::new(Growing(shared.clone(), 0), 0, 100);
        assert!(matches!(
            lr.next_item().unwrap(),
            Some(Item::Line { offset: 0, .. })
        ));
        assert!(matches!(
            lr.next_item().unwrap(),
            Some(Item::Fragment {
                offset: 4,
                bytes: b"tw"
            })
        ));
        assert_eq!(lr.offset(), 4);
        shared.borrow_mut().extend_from_slice(b"o\n");
        assert_eq!(
            lr.next_item().unwrap(),
            Some(Item::Line {
                offset: 4,
                bytes: b"two\n"
            })
        );
    }

    #[test]
    fn skip_to_resumes_at_a_line() {
        let data = b"one\ntwo\nthree\n".repeat(5000);
        let mut lr = LineReader::new(&data[..], 0, 100);
        assert!(lr.skip_to(14 * 1000 + 4).unwrap());
        assert_eq!(
            lr.next_item().unwrap(),
            Some(Item::Line {
                offset: 14 * 1000 + 4,
                bytes: b"two\n"
            })
        );
        let mut lr = LineReader::new(&data[..], 0, 100);
        assert!(!lr.skip_to(data.len() as u64 + 1).unwrap());
    }

    proptest! {
        /// However the bytes arrive, the reader agrees with the model.
        #[test]
        fn chunking_does_not_change_lines(
            data in proptest::collection::vec(prop_oneof![Just(b'\n'), Just(b'a'), any::<u8>()], 0..400),
            sizes in proptest::collection::vec(1usize..40, 0..50),
            max in 1usize..30,
        ) {
            let got = collect(Chunked { data: &data, sizes, i: 0 }, max);
            prop_assert_eq!(got, model(&data, max));
        }

        /// Whatever was read, and however, `behind` is the content just before
        /// the offset (up to its bound), except while reading past an oversize line.
        #[test]
        fn behind_is_the_content_before_the_offset(
            data in proptest::collection::vec(prop_oneof![Just(b'\n'), Just(b'a'), Just(b'K'), any::<u8>()], 0..400),
            sizes in proptest::collection::vec(1usize..40, 0..50),
            max in 1usize..30,
            bulk in any::<bool>(),
        ) {
            let mut lr = LineReader::new(Chunked { data: &data, sizes, i: 0 }, 0, max);
            loop {
                let check = |lr: &LineReader<_>| {
                    let off = lr.offset() as usize;
                    let b = lr.behind();
                    b.is_empty() || (b.len() <= BEHIND_MAX && b == &data[off - b.len()..off])
                };
                if bulk {
                    let run = lr.noise_run(|b| memchr::memchr(b'K', b));
                    if run.lines > 0 {
                        lr.consume_run(&run);
                        prop_assert!(check(&lr));
                        continue;
                    }
                }
                let more = !matches!(lr.next_item().unwrap(), None | Some(Item::Fragment { .. }));
                prop_assert!(check(&lr));
                let off = lr.offset() as usize;
                // Past the first few bytes, a consumed line always leaves some behind.
                if more && off > 0 && lr.skipping.is_none() {
                    prop_assert!(!lr.behind().is_empty());
                }
                if !more {
                    break;
                }
            }
        }

        /// Passing over runs of lines without a match in bulk hands out the
        /// same matching lines, oversize lines and fragment as reading line by
        /// line, and the runs add up to the lines passed over.
        #[test]
        fn bulk_runs_agree_with_line_by_line(
            data in proptest::collection::vec(prop_oneof![Just(b'\n'), Just(b'a'), Just(b'K'), any::<u8>()], 0..400),
            sizes in proptest::collection::vec(1usize..40, 0..50),
            max in prop_oneof![1usize..30, Just(DEFAULT_MAX_LINE_BYTES)],
        ) {
            let find = |b: &[u8]| memchr::memchr(b'K', b);
            let keep = |g: &Got| match g {
                Got::Line(_, b) => find(b).is_some(),
                _ => true,
            };
            let all = model(&data, max);
            let want: Vec<&Got> = all.iter().filter(|g| keep(g)).collect();
            let mut lr = LineReader::new(Chunked { data: &data, sizes, i: 0 }, 0, max);
            let mut got = vec![];
            let mut passed = 0u64;
            loop {
                let run = lr.noise_run(find);
                if run.lines > 0 {
                    // Whole lines without a match, as many as it says.
                    let bytes = lr.run_bytes(&run).to_vec();
                    prop_assert_eq!(bytes.last(), Some(&b'\n'));
                    prop_assert!(find(&bytes).is_none());
                    prop_assert_eq!(newlines(&bytes), run.lines);
                    passed += run.lines;
                    lr.consume_run(&run);
                    if !run.match_next {
                        continue;
                    }
                }
                // A run that says the line after it holds a match is right
                // (the caller then takes that line without searching it).
                let promised = run.match_next;
                match lr.next_item().unwrap() {
                    None => {
                        prop_assert!(!promised);
                        break;
                    }
                    Some(Item::Line { offset, bytes }) => {
                        prop_assert!(!promised || find(bytes).is_some());
                        let g = Got::Line(offset, bytes.to_vec());
                        if keep(&g) { got.push(g) } else { passed += 1 }
                    }
                    Some(Item::Oversize { offset, len, .. }) => {
                        prop_assert!(!promised);
                        got.push(Got::Over(offset, len));
                    }
                    Some(Item::Fragment { offset, bytes }) => {
                        prop_assert!(!promised);
                        got.push(Got::Frag(offset, bytes.to_vec()));
                        break;
                    }
                }
            }
            prop_assert_eq!(got.iter().collect::<Vec<_>>(), want);
            prop_assert_eq!(passed as usize, all.len() - got.len());
        }
    }
}
