//! A record's place in time as the source layer knows it before any context:
//! one instant, or — for a wall-clock time the autumn fold repeats — the two
//! instants it may name. The rule that picks one of them, given the latest
//! time seen before it, lives here once; `parse::time` applies it to every
//! line, and the source layer to a file's first record when it orders
//! rotated files and decides whether a file continues the source or is an
//! archive. Having one rule is what keeps `parse`, `backfill` and `run`
//! agreeing across the repeated hour, whatever order files are read in.

use chrono::{DateTime, Duration, Utc};
use std::cmp::Ordering;

/// How far the local clock must step back inside a repeated (autumn) hour
/// for the repeat to have started. Threads of one engine log a few
/// milliseconds (or seconds) out of order; the clock going back is an hour.
pub const FOLD_STEP_BACK: Duration = Duration::minutes(30);

/// A record's time: one instant, or the two an autumn fold gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// The first pass's instant (the only one when not ambiguous).
    pub early: DateTime<Utc>,
    /// The second pass's instant (`early` when not ambiguous).
    pub late: DateTime<Utc>,
    /// The instant the clocks went back (`early` when not ambiguous): a
    /// time at or after it is in the second pass.
    pub fold: DateTime<Utc>,
}

impl Stamp {
    /// An instant that names itself.
    pub fn exact(t: DateTime<Utc>) -> Stamp {
        Stamp {
            early: t,
            late: t,
            fold: t,
        }
    }

    /// Whether the fold makes this time name two instants.
    pub fn is_ambiguous(&self) -> bool {
        self.early != self.late
    }

    /// The instant, given `last`, the latest time seen before it in the
    /// same source (the line before in time order; for a file's first
    /// record, the end of the file before it):
    /// - the second pass when `last` is in it already (at or past the fold);
    /// - the second pass when the first would step back from `last` by
    ///   [`FOLD_STEP_BACK`] or more: the clock went back, the repeat started;
    /// - otherwise the first pass (a smaller step back is threads out of
    ///   order), and the first pass too with nothing before it (a lone file
    ///   wholly inside the repeated hour: callers count it as undecided).
    pub fn after(&self, last: Option<DateTime<Utc>>) -> DateTime<Utc> {
        match last {
            Some(l)
                if self.is_ambiguous() && (l >= self.fold || self.early <= l - FOLD_STEP_BACK) =>
            {
                self.late
            }
            _ => self.early,
        }
    }

    /// Whether this record surely comes before `other` (`Less`), after it
    /// (`Greater`), or cannot be told apart by time alone (`Equal`: the same
    /// instant, or a fold makes either order possible); then the order the
    /// files rotated in decides.
    pub fn order(&self, other: &Stamp) -> Ordering {
        if self.late < other.early {
            Ordering::Less
        } else if other.late < self.early {
            Ordering::Greater
        } else {
            Ordering::Equal
        }
    }
}

/// Puts `items` (given in rotation order, oldest first) in time order by the
/// stamp `of` each: an item moves before another only when its time is
/// surely earlier ([`Stamp::order`]); items without a time, and items a fold
/// makes undecidable, keep rotation order. Stable; quadratic in the worst
/// case, for the tens or hundreds of rotated files of one source.
pub fn in_time_order<T>(items: Vec<T>, of: impl Fn(&T) -> Option<Stamp>) -> Vec<T> {
    let mut out: Vec<T> = Vec::with_capacity(items.len());
    for item in items {
        let at = match of(&item) {
            None => out.len(),
            Some(s) => {
                // After the last item that is not surely later than it.
                let mut at = out.len();
                while at > 0 && of(&out[at - 1]).is_some_and(|o| o.order(&s) == Ordering::Greater) {
                    at -= 1;
                }
                at
            }
        };
        out.insert(at, item);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    /// 01:03 in New York on 2026-11-01: 05:03Z (EDT) or 06:03Z (EST); the
    /// clocks went back at 06:00Z.
    fn ny_0103() -> Stamp {
        Stamp {
            early: t("2026-11-01T05:03:00Z"),
            late: t("2026-11-01T06:03:00Z"),
            fold: t("2026-11-01T06:00:00Z"),
        }
    }

    #[test]
    fn the_rule_picks_a_pass_from_what_came_before() {
        let s = ny_0103();
        assert_eq!(s.after(None), s.early, "nothing before: the first pass");
        assert_eq!(s.after(Some(t("2026-11-01T04:59:00Z"))), s.early);
        assert_eq!(
            s.after(Some(t("2026-11-01T05:20:00Z"))),
            s.early,
            "17 min back"
        );
        assert_eq!(
            s.after(Some(t("2026-11-01T05:59:59Z"))),
            s.late,
            "the clock went back"
        );
        assert_eq!(
            s.after(Some(t("2026-11-01T06:00:01Z"))),
            s.late,
            "in the second pass"
        );
        let exact = Stamp::exact(t("2026-11-01T07:00:00Z"));
        assert_eq!(exact.after(Some(t("2026-11-01T08:00:00Z"))), exact.early);
    }

    #[test]
    fn files_a_fold_cannot_order_keep_rotation_order() {
        let before = Stamp::exact(t("2026-11-01T04:50:00Z"));
        let first_pass = Stamp::exact(t("2026-11-01T05:40:00Z"));
        let after = Stamp::exact(t("2026-11-01T07:10:00Z"));
        // Given in rotation order; the second pass's file must stay after
        // the first pass's, though its early instant is earlier.
        let got = in_time_order(
            vec![
                (0, Some(before)),
                (1, Some(first_pass)),
                (2, Some(ny_0103())),
                (3, Some(after)),
            ],
            |x| x.1,
        );
        assert_eq!(got.iter().map(|x| x.0).collect::<Vec<_>>(), [0, 1, 2, 3]);
        // A listing race put a newer file first: time order mends it.
        let got = in_time_order(vec![(3, Some(after)), (0, Some(before)), (1, None)], |x| {
            x.1
        });
        assert_eq!(got.iter().map(|x| x.0).collect::<Vec<_>>(), [0, 3, 1]);
    }
}
