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
use std::path::{Path, PathBuf};

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

/// The files before `path` in its family on disk, in time order
/// ([`crate::source::family_in_time_order`]), nearest first (empty when no
/// configured pattern's family holds it).
pub fn older_neighbours(
    path: &Path,
    patterns: &[String],
    max_line: usize,
    heads: &Heads,
) -> Vec<PathBuf> {
    let canon = |p: &Path| std::fs::canonicalize(p).ok();
    let me = canon(path);
    for pattern in patterns {
        let family =
            crate::source::family_in_time_order(pattern, max_line, heads).unwrap_or_default();
        if let Some(i) = family
            .iter()
            .position(|f| f.path == path || (me.is_some() && canon(&f.path) == me))
        {
            return family[..i].iter().rev().map(|f| f.path.clone()).collect();
        }
    }
    Vec::new()
}

/// How many older files are read at most to find an anchor: a repeated hour
/// rotated into more files than this is placed by the table instead.
const MAX_CHAIN: usize = 256;

/// The end, in resolved time, of the content before the file whose older
/// neighbours on disk are `neighbours` (nearest first): from the nearest one
/// whose first record names one instant (the anchor), the rule is applied
/// forward through every record up to the file. `None` without an anchor.
pub fn end_before_on_disk(
    neighbours: &[PathBuf],
    max_line: usize,
    heads: &Heads,
) -> Option<DateTime<Utc>> {
    let mut chain = Vec::new();
    for p in neighbours.iter().take(MAX_CHAIN) {
        let stamps = crate::source::record_stamps(p, max_line, heads);
        let anchored = stamps.first().is_some_and(|s| !s.is_ambiguous());
        chain.push(stamps);
        if anchored {
            let mut last: Option<DateTime<Utc>> = None;
            for s in chain.iter().rev().flatten() {
                let t = s.after(last);
                last = Some(last.map_or(t, |l| l.max(t)));
            }
            return last;
        }
    }
    None
}

/// Places a file whose first record `first` is ambiguous, given its own
/// record stamps, the end of the content before it on disk (if an anchor
/// was found), the rows of `source` in the table and the source's latest
/// committed time.
pub async fn place(
    first: Stamp,
    stamps: &[Stamp],
    before_on_disk: Option<DateTime<Utc>>,
    files: &TableFiles,
    source: &str,
    latest: Option<DateTime<Utc>>,
) -> Result<Placed, crate::audit::AuditError> {
    if !first.is_ambiguous() {
        return Ok(Placed::At(first.early));
    }
    if let Some(at) = by_own_records(first, stamps) {
        return Ok(Placed::At(at));
    }
    if let Some(end) = before_on_disk {
        return Ok(Placed::At(first.after(Some(end))));
    }
    let last = stamps.last().copied().unwrap_or(first);
    let days = Days {
        from: Some(first.early.date_naive()),
        to: Some(last.late.date_naive()),
    };
    let (rows, _) = files.read(days, Some(source)).await?;
    let taken = |from: DateTime<Utc>, to: DateTime<Utc>| {
        rows.iter()
            .any(|r| r.timestamp >= from && r.timestamp <= to)
    };
    Ok(
        match (taken(first.early, last.early), taken(first.late, last.late)) {
            (true, false) => Placed::At(first.late),
            (false, true) => Placed::At(first.early),
            _ => match latest {
                // The source's own latest time is the night's: the rule as the
                // live path applies it.
                Some(l) if l >= first.early - chrono::Duration::hours(1) && l <= first.late => {
                    Placed::At(first.after(Some(l)))
                }
                _ => Placed::Undecided(first.early),
            },
        },
    )
}

/// A file's own records decide its first one: the clock going back by the
/// fold inside it means it started in the first pass; running past the
/// fold without going back means it started in the second.
fn by_own_records(first: Stamp, stamps: &[Stamp]) -> Option<DateTime<Utc>> {
    let mut prev = first;
    for s in stamps.iter().skip(1) {
        if s.is_ambiguous() && prev.is_ambiguous() && s.early <= prev.early - FOLD_STEP_BACK {
            return Some(first.early);
        }
        if !s.is_ambiguous() && s.early >= first.fold {
            return Some(first.late);
        }
        prev = *s;
    }
    None
}
