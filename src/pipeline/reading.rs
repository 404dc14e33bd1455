//! One file's lines parsed into batches of rows for the sink, by one
//! [`Stepper`] over one reader: what every way of running the parsing
//! (here, ahead on a thread, in stretches on several) is made of.

use chrono::Utc;
use std::io;

use super::step::{AtFragment, FileRef, NoiseSkip, Rows, Stepped, Stepper};
use crate::event::rows::TEXTS;
use crate::parse::{SourceParser, SourceState};
use crate::source::Content;
use crate::source::fingerprint::FileId;
use crate::source::reader::LineReader;
use crate::tally::Tally;

/// Content bytes between two progress reports.
const PROGRESS_STEP: u64 = 1 << 20;

/// A stretch of the file parsed: `max_events` rows or more, or the rest.
#[derive(Debug)]
pub struct Batch {
    /// The rows, in file order.
    pub rows: Rows,
    /// The offset the stretch ends at (what a commit of it records).
    pub end: u64,
    /// The source state after its last line (what a commit of it carries).
    pub state: SourceState,
    /// Whether the data ends here.
    pub last: bool,
}

/// One file's parsing: the reader, the state it enriches lines with, and
/// what it counted.
pub struct Reading {
    parser: SourceParser,
    reader: LineReader<Content>,
    id: FileId,
    path: String,
    quarantined_to: u64,
    at_fragment: AtFragment,
    skip: NoiseSkip,
    reported: u64,
    /// The events and text bytes (by column) the last batch held: the next
    /// one is given that room at once, so its buffers do not grow (and
    /// copy) as it fills.
    last_size: (usize, [usize; TEXTS]),
    /// The source state at the reader's position.
    pub state: SourceState,
    /// What the lines read so far were.
    pub tally: Tally,
}

impl Reading {
    /// Parsing of `reader` (positioned where reading starts) for `file`,
    /// starting from `state`.
    pub fn new(
        parser: SourceParser,
        reader: LineReader<Content>,
        file: FileRef<'_>,
        at_fragment: AtFragment,
        state: SourceState,
    ) -> Reading {
        Reading {
            parser,
            reported: reader.offset(),
            reader,
            id: file.id,
            path: file.path.to_owned(),
            quarantined_to: file.quarantined_to,
            at_fragment,
            skip: NoiseSkip::default(),
            last_size: (0, [0; TEXTS]),
            state,
            tally: Tally::default(),
        }
    }

    /// Parses up to `max_events` rows or the end of the data, telling
    /// `progress` of the content bytes consumed about every MiB.
    pub fn next_batch(
        &mut self,
        max_events: usize,
        progress: &mut dyn FnMut(u64),
    ) -> io::Result<Batch> {
        let stepper = Stepper {
            parser: &self.parser,
            now: Utc::now(),
            at_fragment: self.at_fragment,
        };
        let file = FileRef {
            id: self.id,
            path: &self.path,
            quarantined_to: self.quarantined_to,
        };
        // An eighth more text than last time: a batch a little wordier than
        // the last should not double its buffer.
        let (events, text) = self.last_size;
        let mut rows = Rows::with_room(events + 1, &text.map(|t| t + t / 8));
        loop {
            let stepped = stepper.step(
                &mut self.reader,
                file,
                &mut self.state,
                &mut self.skip,
                &mut self.tally,
                &mut rows,
            )?;
            let end = self.reader.offset();
            let last = stepped == Stepped::End;
            if last || end - self.reported >= PROGRESS_STEP {
                progress(end - self.reported);
                self.reported = end;
            }
            if last || rows.len() >= max_events {
                self.last_size = (rows.events.len(), rows.events.text_sizes());
                return Ok(Batch {
                    rows,
                    end,
                    state: self.state.clone(),
                    last,
                });
            }
        }
    }
}
