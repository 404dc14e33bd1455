//! The report's limit checks and health warnings, tallied on the threads
//! that decode a day instead of in the pass over the days.
//!
//! Why: a year holds 1.5 million limit checks and 190,000 health warnings,
//! a third of its rows, and all the pass needs of a check that the check
//! itself does not say is the breaker's state at its time. So a decoder
//! turns each into a small [`Check`] (not a ~300-byte row), sorts them in
//! the audit's order and tallies them ([`Tally`]); the pass, which alone
//! knows the breaker's state, counts a source's checks between two of its
//! transitions with a binary search ([`Between`]) instead of looking at each.
//!
//! What is counted is what the pass counted row by row before: the tallies
//! are taken in the audit's order, so a mean of excesses sums the same
//! numbers in the same order and prints the same digits.

use chrono::{DateTime, Utc};
use std::cmp::Ordering;
use std::collections::BTreeMap;

use super::sym::{Sym, same, sym_cmp};

/// `event_type` of an entry the limits checked.
pub const LIMIT_CHECK: &str = "portfolio_limit_check";
/// `event_type` of a health warning.
pub const HEALTH_WARNING: &str = "portfolio_health_warning";

/// Whether rows of `event_type` are counted as checks (not passed as rows).
pub fn is_check(event_type: &str) -> bool {
    event_type == LIMIT_CHECK || event_type == HEALTH_WARNING
}

/// A limit check or health warning: where it sits in the audit's order, and
/// what the report counts of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// The source.
    pub source: Sym,
    /// When the engine logged it.
    pub timestamp: DateTime<Utc>,
    /// The file it was read from.
    pub source_file: Sym,
    /// Its place in the file.
    pub source_offset: i64,
    /// What it says.
    pub what: What,
}

/// What a [`Check`] says.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum What {
    /// A health warning about a limit (`other` when it named none).
    Warning {
        /// The limit.
        limit: Sym,
    },
    /// An entry the limits checked.
    Checked {
        /// Whether it was allowed (null: the line did not say).
        allowed: Option<bool>,
        /// The limit that rejected it (`other` when the line named none).
        limit: Sym,
        /// How far over the limit, percent of the limit.
        excess: Option<f64>,
    },
}

impl What {
    /// What a row of `event_type` says, from its columns; `None` for a row
    /// that is neither a check nor a warning.
    pub fn of(
        event_type: &str,
        limit_type: Option<Sym>,
        allowed: Option<bool>,
        current_value: Option<f64>,
        limit_value: Option<f64>,
    ) -> Option<What> {
        let limit = limit_type.unwrap_or("other");
        match event_type {
            HEALTH_WARNING => Some(What::Warning { limit }),
            LIMIT_CHECK => Some(What::Checked {
                allowed,
                limit,
                excess: match (current_value, limit_value) {
                    (Some(c), Some(l)) if l != 0.0 => Some((c - l) / l.abs() * 100.0),
                    _ => None,
                },
            }),
            _ => None,
        }
    }
}

/// A line's place in the audit's order: its source, time, file and
/// offset in the file.
pub type Place = (Sym, DateTime<Utc>, Sym, i64);

/// The audit's order of lines: per source, by time, then by place in the
/// file (lines logged within the same millisecond keep the order they were
/// written in). Rows ([`super::load::sort`]) and checks are sorted by it.
pub fn order(a: Place, b: Place) -> Ordering {
    sym_cmp(a.0, b.0)
        .then(a.1.cmp(&b.1))
        .then_with(|| sym_cmp(a.2, b.2))
        .then(a.3.cmp(&b.3))
}

impl Check {
    /// Its place in the audit's order.
    pub fn place(&self) -> Place {
        (
            self.source,
            self.timestamp,
            self.source_file,
            self.source_offset,
        )
    }
}

/// How many of `sorted` (in the audit's order, each placed by `place`) come
/// before the line at `at`.
pub fn before<T>(sorted: &[T], at: Place, place: impl Fn(&T) -> Place) -> usize {
    sorted.partition_point(|x| order(place(x), at) == Ordering::Less)
}

/// Sorts rows, stop lines or checks (each placed by `place`) in the
/// audit's order.
pub fn sort<T>(all: &mut [T], place: impl Fn(&T) -> Place) {
    all.sort_by(|a, b| order(place(a), place(b)));
}

/// What a day's checks add to the report, whatever the breaker's state.
#[derive(Debug, Default, PartialEq)]
pub struct Tally {
    /// Entries checked.
    pub checked: u64,
    /// Of those, allowed.
    pub allowed: u64,
    /// Per limit, the excess of each rejection, in the audit's order.
    pub over: BTreeMap<Sym, Vec<Option<f64>>>,
    /// Health warnings per limit.
    pub warnings: BTreeMap<Sym, u64>,
}

impl Tally {
    /// The tally of `checks`, sorted in the audit's order.
    pub fn of(checks: &[Check]) -> Tally {
        let mut t = Tally::default();
        for c in checks {
            match c.what {
                What::Warning { limit } => *t.warnings.entry(limit).or_default() += 1,
                What::Checked {
                    allowed,
                    limit,
                    excess,
                } => {
                    t.checked += 1;
                    match allowed {
                        Some(true) => t.allowed += 1,
                        Some(false) => t.over.entry(limit).or_default().push(excess),
                        None => {}
                    }
                }
            }
        }
        t
    }
}

/// The checks of one source, sorted, taken in stretches: those before a
/// row, then the rest; each stretch counted under one breaker state.
#[derive(Debug)]
pub struct Between<'a> {
    rest: &'a [Check],
}

impl<'a> Between<'a> {
    /// Starts before the first of `checks` (one source's, sorted).
    pub fn new(checks: &'a [Check]) -> Between<'a> {
        Between { rest: checks }
    }

    /// How many entries were checked from the last stretch's end up to the
    /// line at `at`.
    pub fn up_to(&mut self, at: Place) -> u64 {
        let n = before(self.rest, at, Check::place);
        self.take(n)
    }

    /// How many entries were checked after the last stretch.
    pub fn rest(&mut self) -> u64 {
        self.take(self.rest.len())
    }

    fn take(&mut self, n: usize) -> u64 {
        let (taken, rest) = self.rest.split_at(n);
        self.rest = rest;
        taken
            .iter()
            .filter(|c| matches!(c.what, What::Checked { .. }))
            .count() as u64
    }
}

/// The part of `source` in what [`by_source`] gave (none: empty).
pub fn of_source<'a, T>(all: &[(Sym, &'a [T])], source: Sym) -> &'a [T] {
    all.iter().find(|x| same(x.0, source)).map_or(&[], |x| x.1)
}

/// A day's rows, lines or checks (sorted: by source first) per source,
/// in the order of their sources.
pub fn by_source<T>(all: &[T], source: impl Fn(&T) -> Sym) -> Vec<(Sym, &[T])> {
    all.chunk_by(|a, b| same(source(a), source(b)))
        .map(|c| (source(&c[0]), c))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::sym::intern;

    fn at(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(1_769_000_000_000 + ms).expect("time")
    }

    fn check(ms: i64, offset: i64, allowed: Option<bool>) -> Check {
        Check {
            source: intern("engine"),
            timestamp: at(ms),
            source_file: intern("engine.log"),
            source_offset: offset,
            what: What::Checked {
                allowed,
                limit: "max_positions",
                excess: allowed.is_some_and(|a| !a).then_some(12.5),
            },
        }
    }

    fn row(ms: i64, offset: i64) -> Place {
        (intern("engine"), at(ms), intern("engine.log"), offset)
    }

    /// A check in the same millisecond as a row counts before it or after
    /// it by its place in the file; warnings are not entries.
    #[test]
    fn stretches_end_at_a_row_by_time_then_place_in_the_file() {
        let mut checks = vec![
            check(5, 50, Some(true)),
            check(10, 90, Some(false)),
            check(10, 110, None),
            check(20, 200, Some(true)),
        ];
        checks.insert(
            1,
            Check {
                what: What::Warning { limit: "other" },
                ..check(7, 70, None)
            },
        );
        sort(&mut checks, Check::place);
        let mut b = Between::new(&checks);
        assert_eq!(
            b.up_to(row(10, 100)),
            2,
            "the one at 5 ms and at 10 ms before offset 100"
        );
        assert_eq!(b.up_to(row(10, 100)), 0, "taken once");
        assert_eq!(b.up_to(row(15, 150)), 1);
        assert_eq!(b.rest(), 1);
        assert_eq!(b.rest(), 0);
    }

    /// The tally counts entries, the allowed, and each rejection's excess in
    /// order; a check whose outcome is unknown is an entry only.
    #[test]
    fn a_tally_counts_what_the_checks_say() {
        let mut checks = vec![
            check(1, 1, Some(true)),
            check(2, 2, Some(false)),
            check(3, 3, None),
        ];
        checks.push(Check {
            what: What::Warning {
                limit: "daily_loss",
            },
            ..check(4, 4, None)
        });
        let t = Tally::of(&checks);
        assert_eq!((t.checked, t.allowed), (3, 1));
        assert_eq!(t.over.get("max_positions"), Some(&vec![Some(12.5)]));
        assert_eq!(t.warnings.get("daily_loss"), Some(&1));
    }

    #[test]
    fn what_a_row_says() {
        let w = What::of(LIMIT_CHECK, None, Some(false), Some(5.0), Some(4.0));
        assert_eq!(
            w,
            Some(What::Checked {
                allowed: Some(false),
                limit: "other",
                excess: Some(25.0)
            })
        );
        let zero = What::of(LIMIT_CHECK, Some("x"), Some(false), Some(5.0), Some(0.0));
        assert!(matches!(zero, Some(What::Checked { excess: None, .. })));
        assert_eq!(What::of("trailing_stop_add", None, None, None, None), None);
    }
}
