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

/// How far a file's first record may lie before the end of the file before
/// it and still continue it: threads of one engine out of order by
/// milliseconds or seconds across a rotation.
pub const ROTATION_SLACK: Duration = Duration::seconds(2);

/// Where a file whose first record is `first` starts, when the content
/// before it ended at `end`: files of one source do not overlap in time, so
/// of the two instants a fold gives, the first at or after `end` (within
/// [`ROTATION_SLACK`]).
fn start_after(first: Stamp, end: Option<DateTime<Utc>>) -> DateTime<Utc> {
    match end {
        Some(e) if first.early < e - ROTATION_SLACK && first.late >= e - ROTATION_SLACK => {
            first.late
        }
        _ => first.early,
    }
}

/// A file's first and last record stamps.
pub type Span = (Stamp, Stamp);

/// Files whose starts lie this close together are not told apart by their
/// times (the two passes of the repeated hour can rotate within seconds of
/// each other in local time): when the files were last written decides.
pub const SAME_START: Duration = Duration::seconds(60);

/// Puts files (given in rotation order, oldest first) in time order when a
/// fold makes their names a poor guide: dated names in local time (a timed
/// rotation, loguru's) sort the repeated hour's files among the first
/// pass's. `spans` holds each file's first and last record stamps, and
/// `written` when each was last modified (the real clock, if known). Files
/// are chained: the next is the one that starts first at or after the end
/// of the content before it ([`start_after`]), its end resolved from its
/// start by [`Stamp::after`]; among starts within [`SAME_START`] of each
/// other, the one written first; ties, and files without records, keep
/// rotation order.
pub fn chain_order<T>(
    items: Vec<T>,
    spans: Vec<Option<Span>>,
    written: Vec<Option<std::time::SystemTime>>,
) -> Vec<T> {
    let mut rest: Vec<Pending<T>> = items
        .into_iter()
        .zip(spans.into_iter().zip(written))
        .enumerate()
        .map(|(index, (item, (span, written)))| Pending {
            index,
            item,
            span,
            written,
        })
        .collect();
    let mut out = Vec::with_capacity(rest.len());
    let mut end: Option<DateTime<Utc>> = None;
    while !rest.is_empty() {
        let start = |p: &Pending<T>| {
            let at = p.span.map(|(first, _)| start_after(first, end));
            at.or(end).unwrap_or(DateTime::<Utc>::MIN_UTC)
        };
        let Some(soonest) = rest.iter().map(start).min() else {
            break;
        };
        let Some(k) = (0..rest.len())
            .filter(|&k| start(&rest[k]) <= soonest + SAME_START)
            .min_by_key(|&k| (rest[k].written, rest[k].index))
        else {
            break;
        };
        let p = rest.remove(k);
        if let Some((first, last)) = p.span {
            let start = start_after(first, end);
            let stop = last.after(Some(start)).max(start);
            end = Some(end.map_or(stop, |e| e.max(stop)));
        }
        out.push(p.item);
    }
    out
}

/// A file not yet placed by [`chain_order`].
struct Pending<T> {
    index: usize,
    item: T,
    span: Option<Span>,
    written: Option<std::time::SystemTime>,
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

    /// Dated names in local time across the fold (a timed rotation every 7
    /// minutes): by name the second pass's files sort among the first's;
    /// chained by their records' times they come back in order, and a file
    /// whose first record is a second before the end of the one before it
    /// (threads out of order) still follows it.
    #[test]
    fn files_named_in_local_time_across_the_fold_are_chained() {
        // h:m:s in New York that night: 01:xx names two instants.
        let ny = |h: u32, m: u32, s: u32| {
            let early = t(&format!("2026-11-01T{:02}:{m:02}:{s:02}Z", h + 4));
            if h != 1 {
                return Stamp::exact(early);
            }
            Stamp {
                early,
                late: early + Duration::hours(1),
                fold: t("2026-11-01T06:00:00Z"),
            }
        };
        // (name order, first, last): "00-56", "01-03", "01-06" (second
        // pass), "01-10" (its first record a second before the end of
        // "01-03"), "01-59" (spans the fold), "02-10".
        let files = [
            ("00-56", Some((ny(0, 56, 0), ny(1, 3, 0)))),
            ("01-03", Some((ny(1, 3, 0), ny(1, 10, 0)))),
            ("01-06", Some((ny(1, 6, 0), ny(1, 13, 0)))),
            ("01-10", Some((ny(1, 9, 59), ny(1, 59, 0)))),
            ("01-59", Some((ny(1, 59, 1), ny(1, 6, 0)))),
            (
                "02-10",
                Some((
                    Stamp::exact(t("2026-11-01T07:10:00Z")),
                    Stamp::exact(t("2026-11-01T07:20:00Z")),
                )),
            ),
        ];
        let spans = files.iter().map(|f| f.1).collect();
        let got = chain_order(
            files.iter().map(|f| f.0).collect(),
            spans,
            vec![None; files.len()],
        );
        assert_eq!(got, ["00-56", "01-03", "01-10", "01-59", "01-06", "02-10"]);
    }

    /// Two files that start within seconds of each other in local time, one
    /// in each pass of the repeated hour: times cannot tell them apart, the
    /// real clock of their last writes does (here against their names).
    #[test]
    fn starts_a_fold_makes_alike_go_by_when_they_were_written() {
        let ny = |m: u32, s: u32| {
            let early = t(&format!("2026-11-01T05:{m:02}:{s:02}Z"));
            Stamp {
                early,
                late: early + Duration::hours(1),
                fold: t("2026-11-01T06:00:00Z"),
            }
        };
        let at = |s: u64| Some(std::time::UNIX_EPOCH + std::time::Duration::from_secs(s));
        // By name: "a" (01:19-01:38 first pass), "c" (01:38:55 second pass),
        // "b" (01:38:56 first pass); written a, b, c.
        let files = [
            ("a", Some((ny(19, 0), ny(38, 50))), at(10)),
            ("c", Some((ny(38, 55), ny(58, 0))), at(30)),
            ("b", Some((ny(38, 56), ny(58, 10))), at(20)),
        ];
        let got = chain_order(
            files.iter().map(|f| f.0).collect(),
            files.iter().map(|f| f.1).collect(),
            files.iter().map(|f| f.2).collect(),
        );
        assert_eq!(got, ["a", "b", "c"]);
    }
}
