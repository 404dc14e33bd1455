//! Times: Python `datefmt` (strftime) strings compiled into a matcher and a
//! parser, and the conversion of local times to UTC under the dialect's DST
//! rule: in the autumn hour that repeats, take the offset that keeps a source's
//! times from going backwards; a spring-forward time that does not exist is a
//! bad line.

use chrono::{DateTime, LocalResult, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

use crate::source::stamp::Stamp;
use nom::{
    IResult, Parser,
    branch::alt,
    bytes::complete::{tag, take_till1},
    character::complete::{anychar, one_of},
    combinator::{map, opt},
    multi::many0,
    sequence::preceded,
};

/// One piece of a strftime format.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(String),
    /// A directive letter with an optional glibc flag (`-`, `_`, `0`).
    Directive(Option<char>, char),
}

fn pieces(input: &str) -> IResult<&str, Vec<Piece>> {
    many0(alt((
        map(tag("%%"), |_| Piece::Literal("%".into())),
        map(
            preceded(tag("%"), (opt(one_of("-_0")), anychar)),
            |(flag, c)| Piece::Directive(flag, c),
        ),
        map(take_till1(|c| c == '%'), |s: &str| Piece::Literal(s.into())),
    )))
    .parse(input)
}

/// Python's default `asctime` in chrono's dialect.
const ISO_MILLIS: &str = "%Y-%m-%d %H:%M:%S,%3f";

/// A compiled `datefmt`.
#[derive(Debug, Clone)]
pub struct DateFormat {
    /// Regex (no groups) matching what the format prints.
    pub regex: String,
    /// The same format in chrono's dialect, for parsing the matched text.
    pub chrono: String,
    /// The format prints a UTC offset (`%z`): times are absolute.
    pub has_offset: bool,
    /// The format is Python's default `asctime` layout, parsed by hand
    /// (decided once here, not per line).
    iso_millis: bool,
}

/// A `datefmt` that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DateFormatError {
    /// An unknown or unsupported directive.
    #[error(
        "unsupported strftime directive %{0} (supported: %Y %y %m %d %e %j %H %I %M %S %f %p %b %B %a %A %z %Z %c %x %X %%)"
    )]
    Directive(char),
    /// A `%` at the end.
    #[error("the format ends with a lone '%'")]
    Trailing,
    /// The format cannot name an instant.
    #[error("the format lacks {0}: risktail needs a date and a time of day to place each line")]
    Incomplete(&'static str),
}

/// What a strftime directive's text looks like (`flag`: `-` no padding,
/// `_` space padding).
fn directive_regex(c: char, flag: Option<char>) -> Result<String, DateFormatError> {
    let digits = |n: usize| match flag {
        Some('-') => format!(r"\d{{1,{n}}}"),
        Some('_') => format!(r" *\d{{1,{n}}}"),
        _ => format!(r"\d{{{n}}}"),
    };
    Ok(match c {
        'Y' => r"\d{4}".to_owned(),
        'y' | 'm' | 'd' | 'H' | 'I' | 'M' | 'S' | 'U' | 'W' => digits(2),
        'e' => r" ?\d{1,2}".to_owned(),
        'j' => digits(3),
        'f' => r"\d{6}".to_owned(),
        'p' => "(?:AM|PM|am|pm)".to_owned(),
        'b' | 'h' | 'a' => "[A-Za-z]{3}".to_owned(),
        'B' | 'A' => "[A-Za-z]+".to_owned(),
        'z' => r"[+-]\d{2}:?\d{2}".to_owned(),
        'Z' => r"[A-Za-z][A-Za-z0-9+\-]*".to_owned(),
        'w' | 'u' => r"\d".to_owned(),
        other => return Err(DateFormatError::Directive(other)),
    })
}

/// The directive as chrono reads it.
fn chrono_directive(chrono: &mut String, c: char, flag: Option<char>) {
    match (c, flag) {
        ('f', _) => chrono.push_str("%6f"),
        ('e', _) => chrono.push_str("%e"),
        (c, Some(fl)) => {
            chrono.push('%');
            chrono.push(fl);
            chrono.push(c);
        }
        (c, None) => {
            chrono.push('%');
            chrono.push(c);
        }
    }
}

/// A datefmt must name the whole instant down to the minute: `seen` holds
/// the directives it uses.
fn complete(seen: &str) -> Result<(), DateFormatError> {
    let has = |d: &str| seen.contains(d);
    if !(has("%Y") || has("%y")) {
        return Err(DateFormatError::Incomplete("a year (%Y or %y)"));
    }
    if !(has("%m") || has("%b") || has("%B") || has("%h") || has("%j")) {
        return Err(DateFormatError::Incomplete("a month (%m, %b or %B)"));
    }
    if !(has("%d") || has("%e") || has("%j")) {
        return Err(DateFormatError::Incomplete("a day (%d)"));
    }
    if !(has("%H") || (has("%I") && has("%p"))) {
        return Err(DateFormatError::Incomplete("an hour (%H, or %I with %p)"));
    }
    if !has("%M") {
        return Err(DateFormatError::Incomplete("minutes (%M)"));
    }
    Ok(())
}

impl DateFormat {
    /// Python's default `asctime`: `%Y-%m-%d %H:%M:%S,mmm`.
    pub fn python_default() -> DateFormat {
        DateFormat {
            regex: r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2},\d{3}".into(),
            chrono: ISO_MILLIS.into(),
            has_offset: false,
            iso_millis: true,
        }
    }

    /// Compiles a Python `datefmt`.
    pub fn compile(fmt: &str) -> Result<DateFormat, DateFormatError> {
        DateFormat::compile_inner(fmt, true)
    }

    /// `check`: whether the format must name an instant (not for the
    /// expansions of `%c`, `%x`, `%X`, which are pieces of a format).
    fn compile_inner(fmt: &str, check: bool) -> Result<DateFormat, DateFormatError> {
        let (rest, parts) = pieces(fmt).map_err(|_| DateFormatError::Trailing)?;
        if !rest.is_empty() {
            return Err(DateFormatError::Trailing);
        }
        let mut regex = String::new();
        let mut chrono = String::new();
        let mut seen = String::new();
        for p in parts {
            match p {
                Piece::Literal(s) => {
                    regex.push_str(&regex::escape(&s));
                    chrono.push_str(&s.replace('%', "%%"));
                }
                Piece::Directive(flag, c) => {
                    let expanded = match c {
                        'c' => Some("%a %b %e %H:%M:%S %Y"),
                        'x' => Some("%m/%d/%y"),
                        'X' => Some("%H:%M:%S"),
                        'T' => Some("%H:%M:%S"),
                        'D' => Some("%m/%d/%y"),
                        'F' => Some("%Y-%m-%d"),
                        _ => None,
                    };
                    if let Some(e) = expanded {
                        let inner = DateFormat::compile_inner(e, false)?;
                        regex.push_str(&inner.regex);
                        chrono.push_str(&inner.chrono);
                        seen.push_str(e);
                        continue;
                    }
                    regex.push_str(&directive_regex(c, flag)?);
                    chrono_directive(&mut chrono, c, flag);
                    seen.push('%');
                    seen.push(c);
                }
            }
        }
        if check {
            complete(&seen)?;
        }
        Ok(DateFormat {
            iso_millis: chrono == ISO_MILLIS,
            regex,
            chrono,
            has_offset: seen.contains("%z"),
        })
    }

    /// Parses text the regex matched. Returns a local or an absolute time.
    pub fn parse(&self, text: &str) -> Option<LocalTime> {
        if self.iso_millis {
            return iso_millis(text.as_bytes()).map(LocalTime::Naive);
        }
        if self.has_offset {
            DateTime::parse_from_str(text, &self.chrono)
                .ok()
                .map(|t| LocalTime::Absolute(t.with_timezone(&Utc)))
        } else {
            NaiveDateTime::parse_from_str(text, &self.chrono)
                .ok()
                .map(LocalTime::Naive)
        }
    }
}

/// Whether `b` starts with `YYYY-MM-DD HH:MM:SS<sep>mmm` in ASCII digits:
/// the time at the head of Python's default `asctime` (`sep` `,`) and of
/// loguru's default format (`.`). The hand-written line splitters check it
/// before trusting a line's layout.
pub fn is_millis_stamp(b: &[u8], sep: u8) -> bool {
    const DIGITS: [usize; 17] = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18, 20, 21, 22];
    const MARKS: [(usize, u8); 5] = [(4, b'-'), (7, b'-'), (10, b' '), (13, b':'), (16, b':')];
    b.len() >= 23
        && b[19] == sep
        && MARKS.iter().all(|&(i, c)| b[i] == c)
        && DIGITS.iter().all(|&i| b[i].is_ascii_digit())
}

/// `YYYY-MM-DD HH:MM:SS,mmm` (Python's default `asctime`) without the
/// general strftime machinery: the one layout most lines have.
fn iso_millis(b: &[u8]) -> Option<NaiveDateTime> {
    if b.len() != 23 || !is_millis_stamp(b, b',') {
        return None;
    }
    let n = |r: std::ops::Range<usize>| -> u32 {
        b[r].iter()
            .fold(0u32, |acc, &c| acc * 10 + u32::from(c - b'0'))
    };
    let key: [u8; 10] = b[..10].try_into().ok()?;
    let date = match LAST_DATE.get() {
        Some((k, d)) if k == key => d,
        _ => {
            let d =
                chrono::NaiveDate::from_ymd_opt(i32::try_from(n(0..4)).ok()?, n(5..7), n(8..10))?;
            LAST_DATE.set(Some((key, d)));
            d
        }
    };
    date.and_hms_milli_opt(n(11..13), n(14..16), n(17..19), n(20..23))
}

thread_local! {
    /// The date of the last stamp read ([`iso_millis`]), by its ten bytes:
    /// a file's lines share their date for hours, and a calendar check per
    /// line was 2 % of a backfill.
    static LAST_DATE: std::cell::Cell<Option<([u8; 10], chrono::NaiveDate)>> =
        const { std::cell::Cell::new(None) };
}

/// A time read from a line, before the source's timezone is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalTime {
    /// Wall-clock time without an offset: in the source's timezone.
    Naive(NaiveDateTime),
    /// A time that carried its offset (or an epoch).
    Absolute(DateTime<Utc>),
}

/// A local time that names no instant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("local time {time} does not exist in {tz} (clocks skipped it)")]
pub struct NonexistentTime {
    /// The time.
    pub time: NaiveDateTime,
    /// The zone.
    pub tz: Tz,
}

/// Converts a line's time to UTC. `last` is the latest time already seen in
/// the same source (the line before, in time order; for a file's first line,
/// the end of the file before it). A local time the autumn fold repeats is
/// resolved by the one rule every path shares, [`Stamp::after`]. The parser
/// places times itself (`SourceParser::place`, which also notes the fold for
/// stretches parsed ahead); this is that rule for the tests below.
#[cfg(test)]
fn to_utc(
    t: LocalTime,
    tz: Tz,
    last: Option<DateTime<Utc>>,
) -> Result<DateTime<Utc>, NonexistentTime> {
    Ok(stamp(t, tz)?.after(last))
}

/// A line's time as the instant(s) it may name, before any context: one,
/// or the two of a repeated (autumn) hour with the instant of the fold.
pub fn stamp(t: LocalTime, tz: Tz) -> Result<Stamp, NonexistentTime> {
    match t {
        LocalTime::Absolute(u) => Ok(Stamp::exact(u)),
        LocalTime::Naive(n) => match in_zone(n, tz) {
            LocalResult::Single(t) => Ok(Stamp::exact(t.with_timezone(&Utc))),
            LocalResult::Ambiguous(a, b) => {
                let (early, late) = if a <= b { (a, b) } else { (b, a) };
                let (early, late) = (early.with_timezone(&Utc), late.with_timezone(&Utc));
                Ok(Stamp {
                    early,
                    late,
                    fold: fold_between(early, late, tz),
                })
            }
            LocalResult::None => Err(NonexistentTime { time: n, tz }),
        },
    }
}

/// The instant in `(early, late]` at which `tz`'s offset changes (the
/// clocks going back), to the second: a binary search, run only for times
/// inside a repeated hour.
fn fold_between(early: DateTime<Utc>, late: DateTime<Utc>, tz: Tz) -> DateTime<Utc> {
    use chrono::Offset;
    let offset = |t: DateTime<Utc>| tz.offset_from_utc_datetime(&t.naive_utc()).fix();
    let before = offset(early);
    let (mut lo, mut hi) = (early.timestamp(), late.timestamp());
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        match DateTime::from_timestamp(mid, 0) {
            Some(t) if offset(t) == before => lo = mid,
            _ => hi = mid,
        }
    }
    DateTime::from_timestamp(hi, 0).unwrap_or(late)
}

/// The instant a line's time names when it names exactly one (not in a
/// repeated or skipped hour), whatever came before.
pub fn unique_utc(t: LocalTime, tz: Tz) -> Option<DateTime<Utc>> {
    match t {
        LocalTime::Absolute(u) => Some(u),
        LocalTime::Naive(n) => match in_zone(n, tz) {
            LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
            _ => None,
        },
    }
}

/// Local hours kept per thread (see [`in_zone`]): a few, so a daemon whose
/// sources log in different zones on one thread does not evict one zone's
/// hour with the other's at every line.
const HOURS_KEPT: usize = 4;

/// A kept hour: its zone, its date and hour, the zone's offset then
/// (seconds east).
type KeptHour = (Tz, chrono::NaiveDate, u32, i32);

thread_local! {
    /// The last local hours looked up that name one instant throughout:
    /// zone, start and the zone's offset then (seconds east of UTC), and
    /// the slot the next one replaces.
    static HOURS: std::cell::Cell<([Option<KeptHour>; HOURS_KEPT], usize)> =
        const { std::cell::Cell::new(([None; HOURS_KEPT], 0)) };
}

/// `tz.from_local_datetime(&n)` in UTC, with the answer for a whole local hour kept
/// per thread: lines come in time order, so nearly every line shares the
/// hour of the one before, and a zone lookup (a search of its transitions)
/// costs more than reading the time. An hour is kept only when its first
/// and last instant are unique at the same offset, so a transition inside
/// it (a repeated or skipped hour, a half-hour zone's change) is looked up
/// line by line as before.
fn in_zone(n: NaiveDateTime, tz: Tz) -> LocalResult<DateTime<Utc>> {
    use chrono::{Offset, Timelike};
    let at = |east: i32| {
        LocalResult::Single((n - chrono::TimeDelta::seconds(i64::from(east))).and_utc())
    };
    let (date, h) = (n.date(), n.hour());
    let (mut kept, next) = HOURS.get();
    if let Some((_, _, _, east)) = kept
        .iter()
        .flatten()
        .find(|(z, d, kh, _)| *kh == h && *d == date && *z == tz)
    {
        return at(*east);
    }
    let Some(hour) = date.and_hms_opt(h, 0, 0) else {
        return tz.from_local_datetime(&n).map(|t| t.with_timezone(&Utc));
    };
    let east = |t: LocalResult<DateTime<Tz>>| match t {
        LocalResult::Single(t) => Some(t.offset().fix().local_minus_utc()),
        _ => None,
    };
    let last = hour + chrono::TimeDelta::nanoseconds(3_599_999_999_999);
    if let Some(e) = east(tz.from_local_datetime(&hour))
        && east(tz.from_local_datetime(&last)) == Some(e)
    {
        kept[next] = Some((tz, date, h, e));
        HOURS.set((kept, (next + 1) % HOURS_KEPT));
        return at(e);
    }
    tz.from_local_datetime(&n).map(|t| t.with_timezone(&Utc))
}

/// Whether a zone ever changes its offset (no DST bookkeeping needed if not).
pub fn zone_is_fixed(tz: Tz) -> bool {
    matches!(
        tz,
        Tz::UTC
            | Tz::Etc__UTC
            | Tz::Etc__GMT
            | Tz::GMT
            | Tz::Etc__UCT
            | Tz::UCT
            | Tz::Zulu
            | Tz::Etc__Zulu
            | Tz::Universal
            | Tz::Etc__Universal
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    /// The kept hour gives what the zone gives, line after line in time
    /// order and jumping about, through every kind of transition: DST in
    /// New York, half an hour on Lord Howe Island, Kathmandu's +5:45, the
    /// Chatham Islands' +12:45/+13:45.
    #[test]
    fn a_kept_hour_agrees_with_the_zone() {
        let zones: [Tz; 4] = [
            Tz::America__New_York,
            Tz::Australia__Lord_Howe,
            Tz::Asia__Kathmandu,
            Tz::Pacific__Chatham,
        ];
        let start = NaiveDate::from_ymd_opt(2025, 1, 1)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .expect("start");
        let mut x: u64 = 7;
        let mut checked = 0;
        for tz in zones {
            let mut t = start;
            for _ in 0..60_000 {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                // Mostly forward by up to ~17 minutes; now and then a jump back.
                let step = if x.is_multiple_of(97) {
                    -7200
                } else {
                    (x >> 33) as i64 % 1000
                };
                t += chrono::TimeDelta::seconds(step)
                    + chrono::TimeDelta::milliseconds((x % 1000) as i64);
                let zone = tz.from_local_datetime(&t).map(|d| d.with_timezone(&Utc));
                assert_eq!(in_zone(t, tz), zone, "{tz} {t}");
                checked += 1;
            }
        }
        assert_eq!(checked, 240_000);
        // The same hour of two days on either side of a change, in turn: a
        // kept hour is the day's, not the clock's.
        let tz = Tz::America__New_York;
        for d in [7, 8, 7, 8, 31, 1] {
            let (m, day) = if d == 1 { (4, 1) } else { (3, d) };
            let t = NaiveDate::from_ymd_opt(2026, m, day)
                .and_then(|x| x.and_hms_opt(10, 15, 0))
                .expect("time");
            let zone = tz.from_local_datetime(&t).map(|x| x.with_timezone(&Utc));
            assert_eq!(in_zone(t, tz), zone, "{t}");
        }
    }

    #[test]
    fn the_fast_default_layout_agrees_with_chrono() {
        // Twice, and backwards the second time: each date read once kept
        // (the last date is), then met again after another.
        let stamps = [
            "2026-01-28 10:30:00,123",
            "2026-02-29 10:30:00,123",
            "2028-02-29 23:59:59,999",
            "2026-13-01 00:00:00,000",
            "2026-01-28 24:00:00,000",
            "2026-01-28 10:30:00.123",
            "2026-01-28 10:30:00,12",
            "2026-1-28 10:30:00,1234",
            "2026-01-28 1a:30:00,123",
            "2026-01-28 10:30:01,000",
            "2026-01-28 10:31:59,999",
            "2026-01-29 00:00:00,000",
            "2026-01-28 23:59:59,999",
        ];
        for t in stamps.iter().chain(stamps.iter().rev()) {
            let slow = NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S,%3f").ok();
            assert_eq!(iso_millis(t.as_bytes()), slow, "{t}");
        }
    }

    fn naive(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap()
    }

    #[test]
    fn compiles_common_formats() {
        let f = DateFormat::compile("%Y-%m-%d %H:%M:%S").unwrap();
        let re = regex::Regex::new(&format!("^{}$", f.regex)).unwrap();
        assert!(re.is_match("2026-01-28 10:30:00"));
        assert_eq!(
            f.parse("2026-01-28 10:30:00"),
            Some(LocalTime::Naive(naive("2026-01-28 10:30:00")))
        );
        let f = DateFormat::compile("%d/%b/%Y:%I:%M:%S %p").unwrap();
        assert_eq!(
            f.parse("28/Jan/2026:01:30:00 PM"),
            Some(LocalTime::Naive(naive("2026-01-28 13:30:00")))
        );
        let f = DateFormat::compile("%Y-%m-%dT%H:%M:%S%z").unwrap();
        assert!(f.has_offset);
        assert_eq!(
            f.parse("2026-01-28T10:30:00-0500"),
            Some(LocalTime::Absolute(naive("2026-01-28 15:30:00").and_utc()))
        );
        let f = DateFormat::compile("%c").unwrap();
        let re = regex::Regex::new(&format!("^{}$", f.regex)).unwrap();
        assert!(re.is_match("Wed Jan 28 10:30:00 2026"), "{}", f.regex);
        assert_eq!(
            f.parse("Wed Jan 28 10:30:00 2026"),
            Some(LocalTime::Naive(naive("2026-01-28 10:30:00")))
        );
    }

    #[test]
    fn default_asctime_has_milliseconds() {
        let f = DateFormat::python_default();
        let got = f.parse("2026-01-28 10:30:00,123").unwrap();
        let want = NaiveDate::from_ymd_opt(2026, 1, 28)
            .unwrap()
            .and_hms_milli_opt(10, 30, 0, 123)
            .unwrap();
        assert_eq!(got, LocalTime::Naive(want));
    }

    #[test]
    fn rejects_incomplete_and_unknown() {
        assert_eq!(
            DateFormat::compile("%H:%M:%S").unwrap_err(),
            DateFormatError::Incomplete("a year (%Y or %y)")
        );
        assert_eq!(
            DateFormat::compile("%Y-%m-%d %H:%M:%Q").unwrap_err(),
            DateFormatError::Directive('Q')
        );
    }

    #[test]
    fn autumn_fold_keeps_time_monotonic() {
        let ny: Tz = "America/New_York".parse().unwrap();
        // 2026-11-01 01:30 happens twice in New York: 05:30Z (EDT) then 06:30Z (EST).
        let t = LocalTime::Naive(naive("2026-11-01 01:30:00"));
        let first = to_utc(t, ny, Some(naive("2026-11-01 05:10:00").and_utc())).unwrap();
        assert_eq!(first, naive("2026-11-01 05:30:00").and_utc());
        // After 01:59 EDT (05:59Z) has been seen, 01:30 (29 minutes back)
        // is still EDT, 01:29 (the clock went back 30 minutes) is EST.
        let last = Some(naive("2026-11-01 05:59:00").and_utc());
        assert_eq!(to_utc(t, ny, last).unwrap(), first);
        let t = LocalTime::Naive(naive("2026-11-01 01:29:00"));
        let second = to_utc(t, ny, last).unwrap();
        assert_eq!(second, naive("2026-11-01 06:29:00").and_utc());
        let t = LocalTime::Naive(naive("2026-11-01 01:30:00"));
        // With nothing seen, the first occurrence.
        assert_eq!(to_utc(t, ny, None).unwrap(), first);
    }

    /// Threads of one engine log out of order by milliseconds or seconds:
    /// inside either pass of the repeated hour, a small step back stays in
    /// the pass; the clock going back (30 minutes or more) enters the second.
    #[test]
    fn small_steps_back_stay_in_their_pass() {
        let ny: Tz = "America/New_York".parse().unwrap();
        let at = |s: &str| LocalTime::Naive(naive(s));
        let utc = |s: &str| naive(s).and_utc();
        // First pass (EDT): 01:30:00.5 seen, then 01:30:00 and 01:29:58.
        let last = Some(utc("2026-11-01 05:30:00") + chrono::Duration::milliseconds(500));
        assert_eq!(
            to_utc(at("2026-11-01 01:30:00"), ny, last).unwrap(),
            utc("2026-11-01 05:30:00")
        );
        assert_eq!(
            to_utc(at("2026-11-01 01:29:58"), ny, last).unwrap(),
            utc("2026-11-01 05:29:58")
        );
        // 29 minutes back is still the first pass; 30 is the fold.
        let last = Some(utc("2026-11-01 05:59:00"));
        assert_eq!(
            to_utc(at("2026-11-01 01:30:00"), ny, last).unwrap(),
            utc("2026-11-01 05:30:00")
        );
        assert_eq!(
            to_utc(at("2026-11-01 01:29:00"), ny, last).unwrap(),
            utc("2026-11-01 06:29:00")
        );
        // Second pass (EST): a step back of seconds stays in it, and so does
        // a step forward inside it.
        let last = Some(utc("2026-11-01 06:30:02"));
        assert_eq!(
            to_utc(at("2026-11-01 01:30:00"), ny, last).unwrap(),
            utc("2026-11-01 06:30:00")
        );
        let last = Some(utc("2026-11-01 06:05:00"));
        assert_eq!(
            to_utc(at("2026-11-01 01:50:00"), ny, last).unwrap(),
            utc("2026-11-01 06:50:00")
        );
        // Last winter's EST is no reason to take the second pass.
        let last = Some(utc("2026-02-01 06:05:00"));
        assert_eq!(
            to_utc(at("2026-11-01 01:50:00"), ny, last).unwrap(),
            utc("2026-11-01 05:50:00")
        );
        assert!(stamp(at("2026-11-01 01:50:00"), ny).unwrap().is_ambiguous());
        assert!(!stamp(at("2026-11-01 02:00:00"), ny).unwrap().is_ambiguous());
    }

    #[test]
    fn spring_gap_is_an_error() {
        let ny: Tz = "America/New_York".parse().unwrap();
        let t = LocalTime::Naive(naive("2026-03-08 02:30:00"));
        assert!(to_utc(t, ny, None).is_err());
    }
}
