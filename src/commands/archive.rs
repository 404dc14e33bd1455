//! Where an archive goes in time when its first record is inside the
//! repeated autumn hour. A file backfilled after newer logs (an archive
//! arriving late, files given one at a time in any order) has no file before
//! it to resolve its first record against: the rule of
//! [`crate::source::stamp::Stamp::after`] needs the end of the file before it.
//! Its place is then decided by its own records and the table: a file that
//! steps back by the fold inside itself starts in the first pass; one that
//! runs on past the fold without stepping back starts in the second; one
//! that lies wholly inside the repeated hour goes where the table's other
//! rows of the source leave room for it (files of one source do not overlap
//! in time). What stays undecided is stored in the first pass and counted.

use chrono::{DateTime, Utc};

use crate::audit::load::{Days, TableFiles};
use crate::source::fingerprint::Heads;
use crate::source::stamp::{FOLD_STEP_BACK, Stamp};

/// Where an archive's first record was placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placed {
    /// The first record's instant, decided.
    At(DateTime<Utc>),
    /// Nothing decides it: the first pass, counted as undecided.
    Undecided(DateTime<Utc>),
}

impl Placed {
    /// The instant either way.
    pub fn instant(self) -> DateTime<Utc> {
        match self {
            Placed::At(t) | Placed::Undecided(t) => t,
        }
    }
}

/// The stamps of every record head of the file at `path`, in file order.
pub fn record_stamps(path: &std::path::Path, max_line: usize, heads: &Heads) -> Vec<Stamp> {
    let mut out = Vec::new();
    let Ok(opened) = crate::source::open(path, max_line, heads) else {
        return out;
    };
    let mut reader = opened.lines.reader;
    while let Ok(Some(item)) = reader.next_item() {
        match item {
            crate::source::reader::Item::Line { bytes, .. } => {
                if let Some(Some(s)) = heads.of(bytes) {
                    out.push(s);
                }
            }
            crate::source::reader::Item::Fragment { .. } => break,
            crate::source::reader::Item::Oversize { .. } => {}
        }
    }
    out
}

/// Places an archive whose records have `stamps` (the first ambiguous),
/// using the rows of `source` the table holds around it.
pub async fn place(
    stamps: &[Stamp],
    files: &TableFiles,
    source: &str,
) -> Result<Placed, crate::audit::AuditError> {
    let Some(first) = stamps.first().copied() else {
        return Ok(Placed::Undecided(DateTime::<Utc>::MIN_UTC));
    };
    if !first.is_ambiguous() {
        return Ok(Placed::At(first.early));
    }
    // Inside the file, in its own order: the clock going back means it
    // started in the first pass; running past the fold without going back
    // means it started in the second.
    let mut prev = first;
    for s in &stamps[1..] {
        if s.is_ambiguous() && prev.is_ambiguous() && s.early <= prev.early - FOLD_STEP_BACK {
            return Ok(Placed::At(first.early));
        }
        if !s.is_ambiguous() && s.early >= first.fold {
            return Ok(Placed::At(first.late));
        }
        prev = *s;
    }
    let last = stamps.last().copied().unwrap_or(first);
    let day = first.early.date_naive();
    let days = Days {
        from: Some(day),
        to: Some(last.late.date_naive()),
    };
    let (rows, _) = files.read(days, Some(source)).await?;
    let taken = |from: DateTime<Utc>, to: DateTime<Utc>| {
        rows.iter().any(|r| r.timestamp >= from && r.timestamp <= to)
    };
    let first_pass_taken = taken(first.early, last.early);
    let second_pass_taken = taken(first.late, last.late);
    Ok(match (first_pass_taken, second_pass_taken) {
        (true, false) => Placed::At(first.late),
        (false, true) => Placed::At(first.early),
        _ => Placed::Undecided(first.early),
    })
}
