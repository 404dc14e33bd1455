//! The wiring between layers: a file's lines through the parser into the sink,
//! with offsets that only move when a commit lands.

pub mod ingest;

use std::io::Read;

use crate::parse::{SourceParser, SourceState};
use crate::source::reader::{LineReader, Run};

/// Passes over the buffered lines that hold no risk keyword, in bulk, when
/// that gives the same result as parsing them one by one: always in a fixed
/// zone; in a zone with DST when the run's last line names a unique instant
/// (it becomes the source's latest time). Otherwise `line_by_line` is set to
/// the run's length and the caller reads those lines one at a time. Returns
/// the run passed over (lines and bytes for the tally), if any.
pub fn pass_noise<R: Read>(
    reader: &mut LineReader<R>,
    parser: &SourceParser,
    state: &mut SourceState,
    line_by_line: &mut u64,
) -> Option<Run> {
    if *line_by_line > 0 {
        return None;
    }
    let run = reader.noise_run(|b| parser.find_candidate(b));
    if run.lines == 0 {
        return None;
    }
    if parser.observe_noise(state, reader.run_bytes(run.last.clone())) {
        reader.consume_run(&run);
        Some(run)
    } else {
        *line_by_line = run.lines;
        None
    }
}
