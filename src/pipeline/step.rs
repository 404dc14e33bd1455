//! The one per-item step every reader of lines takes: `parse` (a dry run to
//! stdout), `backfill` (whole files into the table) and the live daemon (files
//! while they are written). Each step either passes over a run of noise lines
//! in bulk or takes one item (a line, an oversize line, the fragment at the
//! end of the data) through the parser into [`Rows`], counting it in a
//! [`Tally`]. Having it once is what makes the three commands give the same
//! rows for the same bytes; the callers only decide when to stop and commit.

use chrono::{DateTime, Utc};
use std::io::{self, Read};

use crate::event::rows::TEXTS;
use crate::event::{EventRows, QuarantineRecord};
use crate::parse::{LineRef, Outcome, SourceParser, SourceState};
use crate::source::fingerprint::FileId;
use crate::source::reader::{Item, LineReader};
use crate::tally::Tally;

/// What to do with a line that has no newline yet at the end of the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AtFragment {
    /// Leave it unread: the writer is about to finish it (a live file).
    Wait,
    /// Quarantine it and consume it: nobody will finish it (a sealed or
    /// rotated file, a file given to `parse`).
    Quarantine,
}

/// The file being read, as the rows will name it.
#[derive(Debug, Clone, Copy)]
pub struct FileRef<'a> {
    /// Its identity (event ids derive from it and the offset).
    pub id: FileId,
    /// The path rows carry in `source_file`.
    pub path: &'a str,
    /// Quarantine rows that end at or before this offset are in the
    /// quarantine table already (a crash between the two tables' commits):
    /// they are not produced again.
    pub quarantined_to: u64,
}

/// Rows produced and not yet committed (or printed).
#[derive(Debug, Default)]
pub struct Rows {
    /// Events, in file order.
    pub events: EventRows,
    /// Quarantine records, in file order.
    pub quarantine: Vec<QuarantineRecord>,
    /// The identity of the file each event came from (same length as
    /// `events`). A row's path cannot say which content it came from: after
    /// a rotation two generations share a path, and what a failed commit
    /// landed must be matched to the generation it read (`pipeline::live`).
    pub event_files: Vec<FileId>,
    /// The identity of the file each quarantine record came from.
    pub quarantine_files: Vec<FileId>,
}

impl Rows {
    /// No rows, with room for `events` events holding `text` bytes of text
    /// in each text column.
    pub fn with_room(events: usize, text: &[usize; TEXTS]) -> Rows {
        Rows {
            events: EventRows::with_capacity(events, text),
            event_files: Vec::with_capacity(events),
            ..Rows::default()
        }
    }

    /// Rows held.
    pub fn len(&self) -> usize {
        self.events.len() + self.quarantine.len()
    }

    /// Whether none are held.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty() && self.quarantine.is_empty()
    }

    /// Forgets them (after a commit).
    pub fn clear(&mut self) {
        self.events.clear();
        self.quarantine.clear();
        self.event_files.clear();
        self.quarantine_files.clear();
    }

    /// Takes out the rows of `file` that start below `events_to` (events)
    /// and `quarantine_to` (quarantine records): what a commit that landed
    /// after all already holds. The rest stay, in order. Rows whose identity
    /// was not recorded (the lists differ in length: a bug) are all kept,
    /// so a row can be committed twice but never lost.
    pub fn take_landed(&mut self, file: FileId, events_to: u64, quarantine_to: u64) -> Rows {
        let mut landed = Rows::default();
        if self.events.len() != self.event_files.len()
            || self.quarantine.len() != self.quarantine_files.len()
        {
            debug_assert!(false, "rows without their file identity");
            return landed;
        }
        let below = |to: u64| {
            move |id: FileId, offset: i64| id == file && u64::try_from(offset).is_ok_and(|o| o < to)
        };
        let kept: Vec<bool> = (self.events.iter().zip(&self.event_files))
            .map(|(e, id)| !below(events_to)(*id, e.source_offset()))
            .collect();
        landed.events = self.events.split_off(&kept);
        let ids = std::mem::take(&mut self.event_files).into_iter().zip(&kept);
        let (stay, took): (Vec<_>, Vec<_>) = ids.partition(|(_, kept)| **kept);
        landed.event_files = took.into_iter().map(|(id, _)| id).collect();
        self.event_files = stay.into_iter().map(|(id, _)| id).collect();
        let (quarantine, ids) = (&mut self.quarantine, &mut self.quarantine_files);
        (landed.quarantine, landed.quarantine_files) = split_off(quarantine, ids, |q, id| {
            below(quarantine_to)(id, q.source_offset)
        });
        landed
    }

    /// Adds `other`'s rows after these.
    pub fn extend(&mut self, other: Rows) {
        self.events.extend(&other.events);
        self.quarantine.extend(other.quarantine);
        self.event_files.extend(other.event_files);
        self.quarantine_files.extend(other.quarantine_files);
    }
}

/// Moves the rows (with their file identities, same length) for which
/// `take` holds out of `rows` and `ids`, keeping both lists' order.
fn split_off<T>(
    rows: &mut Vec<T>,
    ids: &mut Vec<FileId>,
    take: impl Fn(&T, FileId) -> bool,
) -> (Vec<T>, Vec<FileId>) {
    let mut taken = (Vec::new(), Vec::new());
    let mut kept = (Vec::new(), Vec::new());
    for (row, id) in std::mem::take(rows).into_iter().zip(std::mem::take(ids)) {
        let into = if take(&row, id) {
            &mut taken
        } else {
            &mut kept
        };
        into.0.push(row);
        into.1.push(id);
    }
    (*rows, *ids) = kept;
    taken
}

/// How far bulk noise passing may go: inside a repeated (autumn) hour the
/// source's time must be followed line by line, so a run that cannot be
/// decided from its last record head is read one line at a time.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoiseSkip {
    line_by_line: u64,
    /// The offset of a line the last search found a keyword in: the next
    /// step at that offset takes it without searching the buffer again, and
    /// tells the parser (a keyword line costs one search, not three).
    keyword_at: Option<u64>,
}

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stepped {
    /// Consumed a run of noise lines, or one item.
    Read,
    /// Nothing more to read now: the data ends on a line boundary, or with a
    /// fragment left for later ([`AtFragment::Wait`]), or the fragment was
    /// quarantined ([`AtFragment::Quarantine`], which ends the content).
    End,
}

/// The parser and the clock of one pass.
pub struct Stepper<'a> {
    /// The source's parser.
    pub parser: &'a SourceParser,
    /// `ingested_at` of the rows of this pass.
    pub now: DateTime<Utc>,
    /// What a trailing fragment means here.
    pub at_fragment: AtFragment,
}

impl Stepper<'_> {
    /// Takes one step on `reader`: a bulk run of noise, or one item.
    pub fn step<R: Read>(
        &self,
        reader: &mut LineReader<R>,
        file: FileRef<'_>,
        state: &mut SourceState,
        skip: &mut NoiseSkip,
        tally: &mut Tally,
        rows: &mut Rows,
    ) -> io::Result<Stepped> {
        if self.pass_noise(reader, state, skip, tally) {
            return Ok(Stepped::Read);
        }
        let parser = self.parser;
        let record = match reader.next_item()? {
            None => return Ok(Stepped::End),
            Some(Item::Line { offset, bytes }) => {
                skip.line_by_line = skip.line_by_line.saturating_sub(1);
                tally.lines += 1;
                tally.bytes += bytes.len() as u64;
                let line = LineRef {
                    file: file.id,
                    path: file.path,
                    offset,
                    bytes,
                    keyword: skip.keyword_at == Some(offset),
                };
                let outcome = parser.parse_line(state, line, self.now, &mut rows.events);
                take(outcome, reader.offset(), file, tally, rows);
                return Ok(Stepped::Read);
            }
            Some(Item::Oversize {
                offset,
                len,
                prefix,
            }) => {
                tally.lines += 1;
                tally.bytes += len;
                parser.oversize(file.id, file.path, offset, len, &prefix, self.now)
            }
            Some(Item::Fragment { offset, bytes }) => {
                if self.at_fragment == AtFragment::Wait {
                    return Ok(Stepped::End);
                }
                tally.bytes += bytes.len() as u64;
                let q = parser.fragment(file.id, file.path, offset, bytes, self.now);
                reader.consume_fragment();
                keep_quarantine(q, reader.offset(), file, tally, rows);
                return Ok(Stepped::End);
            }
        };
        keep_quarantine(record, reader.offset(), file, tally, rows);
        Ok(Stepped::Read)
    }

    /// Passes over the buffered lines that hold no risk keyword, in bulk,
    /// when that gives the same result as parsing them one by one: always in
    /// a fixed zone; in a zone with DST when the run's last record head
    /// names a unique instant (it becomes the source's latest time; the
    /// lines after it, a traceback's, are no heads and change nothing), or
    /// the run has no head. Otherwise the run's lines are read one at a
    /// time. Returns whether a run was passed.
    fn pass_noise<R: Read>(
        &self,
        reader: &mut LineReader<R>,
        state: &mut SourceState,
        skip: &mut NoiseSkip,
        tally: &mut Tally,
    ) -> bool {
        if skip.line_by_line > 0 || skip.keyword_at == Some(reader.offset()) {
            return false;
        }
        let run = reader.noise_run(|b| self.parser.find_candidate(b));
        skip.keyword_at = run.match_next.then(|| reader.offset() + run.len as u64);
        if run.lines == 0 {
            return false;
        }
        if !self.parser.observe_noise(state, reader.run_bytes(&run)) {
            skip.line_by_line = run.lines;
            return false;
        }
        reader.consume_run(&run);
        tally.lines += run.lines;
        tally.bytes += run.len as u64;
        true
    }
}

/// Puts a line's outcome where it belongs: events and quarantine records
/// into the rows, the rest counted. `end` is the line's end offset.
fn take(outcome: Outcome, end: u64, file: FileRef<'_>, tally: &mut Tally, rows: &mut Rows) {
    match outcome {
        Outcome::Event => {
            // `parse_line` added it to the rows' events: it is the last.
            if let Some(e) = rows.events.last() {
                tally.count_event(e.event_type());
            }
            rows.event_files.push(file.id);
        }
        Outcome::Quarantine(q) => keep_quarantine(*q, end, file, tally, rows),
        Outcome::Fused { cut, rest } => {
            keep_quarantine(*cut, end, file, tally, rows);
            take(*rest, end, file, tally, rows);
        }
        other => tally.count(&other),
    }
}

/// Keeps a quarantine record unless the quarantine table has it already.
fn keep_quarantine(
    q: QuarantineRecord,
    end: u64,
    file: FileRef<'_>,
    tally: &mut Tally,
    rows: &mut Rows,
) {
    if end > file.quarantined_to {
        tally.count_quarantine(q.reason);
        rows.quarantine.push(q);
        rows.quarantine_files.push(file.id);
    }
}

/// The parser of a one-source config with `envelope` and `tz`, for the
/// pipeline's tests.
#[cfg(test)]
pub(super) fn parser_of(envelope: &str, tz: &str) -> SourceParser {
    let cfg = crate::config::Config::from_str(
        std::path::Path::new("risktail.toml"),
        &format!("[table]\nuri = \"t\"\n[[source]]\nname = \"e\"\npaths = [\"x.log\"]\nenvelope = \"{envelope}\"\ntimezone = \"{tz}\"\n"),
    )
    .expect("a valid config");
    cfg.parser(&cfg.sources[0])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parser() -> SourceParser {
        parser_of("python", "UTC")
    }

    fn read_all(data: &[u8], at: AtFragment, quarantined_to: u64) -> (Rows, Tally, u64) {
        read_with(&parser(), data, at, quarantined_to)
    }

    fn read_with(
        parser: &SourceParser,
        data: &[u8],
        at: AtFragment,
        quarantined_to: u64,
    ) -> (Rows, Tally, u64) {
        let stepper = Stepper {
            parser,
            now: Utc::now(),
            at_fragment: at,
        };
        let mut reader = LineReader::new(data, 0, 1 << 20);
        let file = FileRef {
            id: FileId::from_head(b"head"),
            path: "x.log",
            quarantined_to,
        };
        let (mut state, mut skip) = (SourceState::default(), NoiseSkip::default());
        let (mut tally, mut rows) = (Tally::default(), Rows::default());
        while stepper
            .step(
                &mut reader,
                file,
                &mut state,
                &mut skip,
                &mut tally,
                &mut rows,
            )
            .unwrap()
            == Stepped::Read
        {}
        (rows, tally, reader.offset())
    }

    const LOG: &[u8] = b"2026-01-28 10:00:00,000 - v6.engine - INFO - started\n\
2026-01-28 10:00:01,000 - v6.risk - WARNING - Circuit breaker OPENED: 5 failures in 300s window (threshold 5)\n\
2026-01-28 10:00:02,000 - v6.risk - WARNING - Circuit breaker gibberish\n\
2026-01-28 10:00:03,000 - v6.engine - INFO - tail without newline";

    #[test]
    fn a_live_file_keeps_its_fragment_and_a_sealed_one_quarantines_it() {
        let (rows, tally, end) = read_all(LOG, AtFragment::Wait, 0);
        assert_eq!(rows.events.len(), 1);
        assert_eq!(
            rows.quarantine.len(),
            1,
            "the keyword line that is no event"
        );
        assert_eq!(tally.lines, 3);
        let fragment_at = LOG.iter().rposition(|&b| b == b'\n').unwrap() as u64 + 1;
        assert_eq!(end, fragment_at);

        let (rows, tally, end) = read_all(LOG, AtFragment::Quarantine, 0);
        assert_eq!(rows.quarantine.len(), 2);
        assert_eq!(tally.bytes, LOG.len() as u64);
        assert_eq!(end, LOG.len() as u64);
    }

    #[test]
    fn quarantine_rows_already_committed_are_not_made_again() {
        let (rows, _, _) = read_all(LOG, AtFragment::Quarantine, LOG.len() as u64);
        assert!(rows.quarantine.is_empty());
        assert_eq!(rows.events.len(), 1, "events are not filtered by it");
    }

    /// A keyword line is found once, by the search over the buffer, and the
    /// parser is told so; the lines around it, which hold none, are not taken
    /// for keyword lines: in a JSON log a line that is no object and holds no
    /// keyword is noise, one that holds a keyword is quarantined. In a zone
    /// with DST every line is read, keyword or not.
    #[test]
    fn only_the_lines_the_search_found_a_keyword_in_are_keyword_lines() {
        let rec = |msg: &str| {
            format!(
                r#"{{"asctime": "2026-03-08 0{}:30:00,000", "name": "v6.risk", "levelname": "WARNING", "message": "{msg}"}}"#,
                msg.len() % 3
            )
        };
        let log = [
            rec("started"),
            "plain text, no object".into(),
            rec("Circuit breaker OPENED: 5 failures in 300s window (threshold 5)"),
            "a traceback line".into(),
            "Circuit breaker gibberish, no object".into(),
            rec("Entry REJECTED by portfolio limits: market closed"),
            "the end".into(),
        ]
        .join("\n")
            + "\n";
        for tz in ["UTC", "America/New_York"] {
            let (rows, tally, _) = read_with(
                &parser_of("json", tz),
                log.as_bytes(),
                AtFragment::Quarantine,
                0,
            );
            assert_eq!(rows.events.len(), 2, "{tz}");
            let offsets: Vec<i64> = rows.quarantine.iter().map(|q| q.source_offset).collect();
            let want = log.find("Circuit breaker gibberish").map(|o| o as i64);
            assert_eq!(offsets, want.into_iter().collect::<Vec<_>>(), "{tz}");
            assert_eq!(tally.lines, 7, "{tz}");
        }
    }
}
