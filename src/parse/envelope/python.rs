//! The `python` envelope: a `logging.Formatter` format string and `datefmt`,
//! pasted from the engine, compiled into a parser of head lines.
//!
//! The format string is parsed with nom into literals and `%(attr)` fields
//! (flags, width, precision, conversion, `%%`). The fields are then compiled
//! into one anchored regex with a group per field. A regex rather than a chain
//! of parsers because layouts like `%(message)s [%(filename)s:%(lineno)d]` are
//! ambiguous left to right; the regex engine's automaton settles them without
//! backtracking and runs in time linear in the line.
//!
//! The format-string grammar, its regex, and the hand splitter of the
//! default layout (checked against that regex) live together.

use nom::{
    IResult, Parser,
    branch::alt,
    bytes::complete::{tag, take_till1, take_while1},
    character::complete::{char, digit0, one_of},
    combinator::{map, opt, recognize},
    multi::many0,
    sequence::{delimited, preceded},
};
use regex::Regex;
use std::borrow::Cow;

use super::{Head, LOG_RECORD_ATTRIBUTES};
use crate::event::Value;
use crate::parse::time::{DateFormat, LocalTime};

/// The engine's default format string (what `logging.basicConfig` is given in
/// the engine; see docs/DIALECT.md), and the layout the hand splitter serves.
pub const DEFAULT_PYTHON_FORMAT: &str = "%(asctime)s - %(name)s - %(levelname)s - %(message)s";

/// One piece of a format string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormatPiece {
    /// Text printed as is.
    Literal(String),
    /// `%(name)<flags><width>.<precision><conversion>`.
    Field {
        /// LogRecord attribute (or a custom one added by a filter).
        name: String,
        /// printf flags: any of `#0- +`.
        flags: String,
        /// Minimum width.
        width: Option<usize>,
        /// Precision (truncates strings).
        precision: Option<usize>,
        /// Conversion letter.
        conversion: char,
    },
}

fn field(input: &str) -> IResult<&str, FormatPiece> {
    map(
        (
            delimited(
                tag("%("),
                take_while1(|c: char| c.is_alphanumeric() || c == '_'),
                char(')'),
            ),
            recognize(many0(one_of("#0- +"))),
            digit0,
            opt(preceded(char('.'), digit0)),
            one_of("diouxXeEfFgGcrsa"),
        ),
        |(name, flags, width, precision, conversion): (&str, &str, &str, Option<&str>, char)| {
            FormatPiece::Field {
                name: name.to_owned(),
                flags: flags.to_owned(),
                width: width.parse().ok(),
                precision: precision.map(|p| p.parse().unwrap_or(0)),
                conversion,
            }
        },
    )
    .parse(input)
}

/// Parses a `%`-style format string, as `logging.PercentStyle` accepts it.
pub fn parse_format(fmt: &str) -> Result<Vec<FormatPiece>, String> {
    let mut items = many0(alt((
        map(tag("%%"), |_| FormatPiece::Literal("%".into())),
        field,
        map(take_till1(|c| c == '%'), |s: &str| {
            FormatPiece::Literal(s.into())
        }),
    )));
    let (rest, pieces) = items
        .parse(fmt)
        .map_err(|e| format!("cannot parse format: {e}"))?;
    if !rest.is_empty() {
        let at = fmt.len() - rest.len();
        let shown: String = rest.chars().take(12).collect();
        return Err(format!(
            "at character {at} ({shown:?}): expected '%(name)s'-style field or '%%'"
        ));
    }
    // Merge adjacent literals so the regex stays readable in error messages.
    let mut merged: Vec<FormatPiece> = Vec::with_capacity(pieces.len());
    for p in pieces {
        match (merged.last_mut(), p) {
            (Some(FormatPiece::Literal(a)), FormatPiece::Literal(b)) => a.push_str(&b),
            (_, p) => merged.push(p),
        }
    }
    Ok(merged)
}

/// What a regex group holds.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Attr {
    Asctime,
    Created,
    Msecs,
    Levelname,
    Name,
    Message,
    /// A standard attribute risktail does not store (it stays in `raw_line`).
    Standard,
    /// A custom attribute: fills a column of that name or `metadata`.
    Custom(String),
}

/// A compiled `python` envelope.
#[derive(Debug, Clone)]
pub struct PythonEnvelope {
    regex: Regex,
    /// Attribute of each capture group, by group index.
    attrs: Vec<Attr>,
    datefmt: DateFormat,
    /// A datefmt was given: `asctime` then has no milliseconds, which come from
    /// `%(msecs)` if the format has it.
    custom_datefmt: bool,
    /// The format starts with a plain `%(asctime)s` in the default datefmt:
    /// a line's time is its first 23 bytes.
    time_first: bool,
    /// The format is the engine's default, `%(asctime)s - %(name)s -
    /// %(levelname)s - %(message)s`: lines are split by hand (the same
    /// split the regex makes), falling back to the regex when in doubt.
    default_layout: bool,
}

/// The default layout's separator, searched for once per field of every
/// keyword line: built once (`memmem::find` builds its searcher per call).
static SEPARATOR: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
    std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b" - "));

/// `asctime - name - levelname - message` split as the compiled regex
/// `^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2},\d{3}) - (.+?) - (\S+) - (.*)$`
/// splits it: the shortest name after which a run of non-space characters and
/// ` - ` follow. `None` when the line is not plainly of that shape (ASCII
/// digits only), so the caller asks the regex, which decides the rest.
fn split_default(line: &str) -> Option<(&str, &str, &str, &str)> {
    let b = line.as_bytes();
    if !crate::parse::time::is_millis_stamp(b, b',') || b.get(23..26) != Some(b" - ") {
        return None;
    }
    let rest = line.get(26..)?;
    let mut from = 1; // the name has at least one character
    while let Some(i) = rest.get(from..).and_then(|r| SEPARATOR.find(r.as_bytes())) {
        let name_end = from + i;
        let after = &rest[name_end + 3..];
        let level_end = after.find(char::is_whitespace).unwrap_or(after.len());
        if level_end > 0
            && let Some(message) = after[level_end..].strip_prefix(" - ")
        {
            return Some((&line[..23], &rest[..name_end], &after[..level_end], message));
        }
        from = name_end + 1;
    }
    None
}

const FLOAT_RE: &str = r"-?(?:\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|inf|nan)";

impl Attr {
    /// The attribute a `%(name)` field prints.
    fn of(name: &str) -> Attr {
        match name {
            "asctime" => Attr::Asctime,
            "created" => Attr::Created,
            "msecs" => Attr::Msecs,
            "levelname" => Attr::Levelname,
            "name" => Attr::Name,
            "message" => Attr::Message,
            n if LOG_RECORD_ATTRIBUTES.contains(&n) => Attr::Standard,
            n => Attr::Custom(n.to_owned()),
        }
    }
}

/// A format risktail can read names the message and the time.
fn check_fields(pieces: &[FormatPiece]) -> Result<(), PythonEnvelopeError> {
    let names: Vec<&str> = pieces
        .iter()
        .filter_map(|p| match p {
            FormatPiece::Field { name, .. } => Some(name.as_str()),
            _ => None,
        })
        .collect();
    if !names.contains(&"message") {
        return Err(PythonEnvelopeError::Format(
            "the format has no %(message)s: risktail reads the message".into(),
        ));
    }
    if !names.contains(&"asctime") && !names.contains(&"created") {
        return Err(PythonEnvelopeError::Format(
            "the format has neither %(asctime)s nor %(created)f: risktail needs each line's time"
                .into(),
        ));
    }
    Ok(())
}

/// What one field's value looks like, by its conversion and attribute.
fn field_regex(name: &str, conversion: char, attr: &Attr, date: &DateFormat) -> Cow<'static, str> {
    match conversion {
        'd' | 'i' | 'u' => r"-?\d+".into(),
        'f' | 'F' | 'e' | 'E' | 'g' | 'G' => FLOAT_RE.into(),
        'x' | 'X' | 'o' => "[0-9a-fA-F]+".into(),
        'c' => ".".into(),
        _ => match attr {
            Attr::Asctime => date.regex.clone().into(),
            Attr::Created | Attr::Msecs => FLOAT_RE.into(),
            Attr::Levelname => r"\S+".into(),
            Attr::Message => ".*".into(),
            Attr::Standard if matches!(name, "levelno" | "lineno" | "process" | "thread") => {
                r"-?\d+".into()
            }
            Attr::Standard if name == "relativeCreated" => FLOAT_RE.into(),
            Attr::Custom(_) => ".*?".into(),
            _ => ".+?".into(),
        },
    }
}

impl PythonEnvelope {
    /// Compiles a format string and optional `datefmt`. Errors say which of the two is wrong.
    pub fn new(format: &str, datefmt: Option<&str>) -> Result<PythonEnvelope, PythonEnvelopeError> {
        let pieces = parse_format(format).map_err(PythonEnvelopeError::Format)?;
        let date = match datefmt {
            Some(d) => {
                DateFormat::compile(d).map_err(|e| PythonEnvelopeError::Datefmt(e.to_string()))?
            }
            None => DateFormat::python_default(),
        };
        let mut re = String::from("^");
        let mut attrs = Vec::new();
        check_fields(&pieces)?;
        for p in &pieces {
            match p {
                FormatPiece::Literal(s) => re.push_str(&regex::escape(s)),
                FormatPiece::Field {
                    name,
                    flags,
                    width,
                    conversion,
                    ..
                } => {
                    let attr = Attr::of(name);
                    let group = format!("({})", field_regex(name, *conversion, &attr, &date));
                    let padded = width.is_some_and(|w| w > 0);
                    if padded && flags.contains('-') {
                        re.push_str(&group);
                        re.push_str(" *");
                    } else if padded {
                        re.push_str(" *");
                        re.push_str(&group);
                    } else {
                        re.push_str(&group);
                    }
                    attrs.push(attr);
                }
            }
        }
        re.push('$');
        let regex = Regex::new(&re).map_err(|e| {
            PythonEnvelopeError::Format(format!("compiled line pattern is invalid: {e}"))
        })?;
        let time_first = datefmt.is_none()
            && matches!(pieces.first(), Some(FormatPiece::Field { name, width, .. })
                if name == "asctime" && width.is_none_or(|w| w == 0));
        Ok(PythonEnvelope {
            regex,
            attrs,
            datefmt: date,
            custom_datefmt: datefmt.is_some(),
            time_first,
            default_layout: datefmt.is_none() && format == DEFAULT_PYTHON_FORMAT,
        })
    }

    /// Only the time of a head line (`None`: not a head). With the engine's
    /// default layout the line's shape is checked by the regex's capture-free
    /// automaton and the time read from its first bytes, which is several
    /// times cheaper than splitting the whole line.
    pub fn head_time(&self, line: &str) -> Option<Result<LocalTime, String>> {
        if !self.time_first || self.default_layout {
            return self.parse_head(line).map(|h| h.time);
        }
        if !self.regex.is_match(line) {
            return None;
        }
        let a = line.get(..23)?;
        Some(self.time(Some(a), None, None))
    }

    /// Splits a head line; `None` if the line does not have this layout.
    pub fn parse_head<'a>(&self, line: &'a str) -> Option<Head<'a>> {
        if self.default_layout {
            if let Some((asctime, name, level, message)) = split_default(line) {
                return Some(Head {
                    time: self.time(Some(asctime), None, None),
                    level: Some(Cow::Borrowed(level)),
                    logger: Some(Cow::Borrowed(name)),
                    message: Cow::Borrowed(message),
                    extras: Vec::new(),
                });
            }
            // The layout's regex starts with `^\d`: a line starting with an
            // ASCII byte that is no digit (a traceback, wrapped text) cannot
            // be a head, and needs no regex pass to say so.
            if line
                .as_bytes()
                .first()
                .is_none_or(|c| c.is_ascii() && !c.is_ascii_digit())
            {
                return None;
            }
        }
        let caps = self.regex.captures(line)?;
        let mut head = Head {
            time: Err("no time field".into()),
            level: None,
            logger: None,
            message: Cow::Borrowed(""),
            extras: Vec::new(),
        };
        let mut asctime = None;
        let mut created = None;
        let mut msecs = None;
        for (i, attr) in self.attrs.iter().enumerate() {
            let Some(m) = caps.get(i + 1) else { continue };
            let text = m.as_str();
            match attr {
                Attr::Asctime => asctime = Some(text),
                Attr::Created => created = Some(text),
                Attr::Msecs => msecs = Some(text),
                Attr::Levelname => head.level = Some(Cow::Borrowed(text)),
                Attr::Name => head.logger = Some(Cow::Borrowed(text)),
                Attr::Message => head.message = Cow::Borrowed(text),
                Attr::Standard => {}
                Attr::Custom(name) => {
                    let t = text.trim();
                    if !t.is_empty() && t != "None" {
                        head.extras.push((name.clone(), Value::Str(t.to_owned())));
                    }
                }
            }
        }
        head.time = self.time(asctime, created, msecs);
        Some(head)
    }

    fn time(
        &self,
        asctime: Option<&str>,
        created: Option<&str>,
        msecs: Option<&str>,
    ) -> Result<LocalTime, String> {
        if let Some(c) = created {
            return epoch_seconds(c.trim())
                .map(LocalTime::Absolute)
                .ok_or_else(|| format!("created {c:?} is not an epoch time"));
        }
        let Some(a) = asctime else {
            return Err("no time field".into());
        };
        let t = self
            .datefmt
            .parse(a.trim())
            .ok_or_else(|| format!("asctime {a:?} is not a valid date and time"))?;
        // With a custom datefmt, Python prints no milliseconds in asctime; the
        // format may add them with %(msecs)03d.
        // A datefmt with %z makes the time absolute; the milliseconds still
        // come from %(msecs)03d.
        let Some(ms) =
            msecs.filter(|_| self.custom_datefmt && !self.datefmt.chrono.contains("%6f"))
        else {
            return Ok(t);
        };
        let ms: f64 = ms
            .trim()
            .parse()
            .map_err(|_| format!("msecs {ms:?} is not a number"))?;
        if !(0.0..1000.0).contains(&ms) {
            return Err(format!("msecs {ms} is out of range"));
        }
        let extra = chrono::Duration::microseconds((ms * 1000.0).round() as i64);
        Ok(match t {
            LocalTime::Naive(n) => LocalTime::Naive(n + extra),
            LocalTime::Absolute(a) => LocalTime::Absolute(a + extra),
        })
    }
}

/// Seconds since the epoch as Python prints `%(created)f` (`1769596200.123457`),
/// read digit by digit so no float rounding moves the microseconds.
pub fn epoch_seconds(s: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let secs: i64 = int.parse().ok()?;
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut micros = 0i64;
    for (i, b) in frac.bytes().take(6).enumerate() {
        micros += i64::from(b - b'0') * 10i64.pow(5 - i as u32);
    }
    chrono::DateTime::from_timestamp(secs, 0).map(|t| t + chrono::Duration::microseconds(micros))
}

/// Why a format or datefmt cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PythonEnvelopeError {
    /// The format string.
    #[error("{0}")]
    Format(String),
    /// The datefmt.
    #[error("{0}")]
    Datefmt(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;
    use proptest::prelude::*;

    fn local(h: u32, mi: u32, s: u32, ms: u32) -> LocalTime {
        LocalTime::Naive(
            NaiveDate::from_ymd_opt(2026, 1, 28)
                .unwrap()
                .and_hms_milli_opt(h, mi, s, ms)
                .unwrap(),
        )
    }

    #[test]
    fn engine_default_format() {
        let e = PythonEnvelope::new("%(asctime)s - %(name)s - %(levelname)s - %(message)s", None)
            .unwrap();
        let h = e
            .parse_head("2026-01-28 10:30:00,123 - v6.risk.circuit_breaker - WARNING - Circuit breaker OPENED: 5 failures - really")
            .unwrap();
        assert_eq!(h.time, Ok(local(10, 30, 0, 123)));
        assert_eq!(h.logger.as_deref(), Some("v6.risk.circuit_breaker"));
        assert_eq!(h.level.as_deref(), Some("WARNING"));
        assert_eq!(h.message, "Circuit breaker OPENED: 5 failures - really");
        assert!(e.parse_head("Traceback (most recent call last):").is_none());
        assert!(
            e.parse_head("  File \"x.py\", line 3, in <module>")
                .is_none()
        );
    }

    #[test]
    fn msecs_are_added_to_a_time_with_its_offset() {
        let e = PythonEnvelope::new(
            "%(asctime)s.%(msecs)03d - %(name)s - %(levelname)s - %(message)s",
            Some("%Y-%m-%d %H:%M:%S%z"),
        )
        .expect("format");
        let head = e
            .parse_head("2026-11-01 01:30:00-0500.250 - x - WARNING - m")
            .expect("a head");
        let want = chrono::DateTime::parse_from_rfc3339("2026-11-01T06:30:00.250Z")
            .expect("time")
            .with_timezone(&chrono::Utc);
        assert_eq!(head.time, Ok(LocalTime::Absolute(want)));
    }

    #[test]
    fn widths_msecs_and_custom_datefmt() {
        let e = PythonEnvelope::new(
            "%(asctime)s.%(msecs)03d %(levelname)-8s [%(name)s:%(lineno)d] %(message)s",
            Some("%Y-%m-%d %H:%M:%S"),
        )
        .unwrap();
        let h = e
            .parse_head("2026-01-28 10:30:00.007 INFO     [v6.risk.trailing_stop:42] Trailing stop UPDATED: x")
            .unwrap();
        assert_eq!(h.time, Ok(local(10, 30, 0, 7)));
        assert_eq!(h.level.as_deref(), Some("INFO"));
        assert_eq!(h.message, "Trailing stop UPDATED: x");
    }

    #[test]
    fn message_in_the_middle_and_percent_literal() {
        let e = PythonEnvelope::new(
            "%(created)f|%(levelno)2d %(message)s (%(filename)s:%(lineno)d) 100%%",
            None,
        )
        .unwrap();
        let h = e
            .parse_head("1769596200.123457|30 a (b) c (risk.py:9) 100%")
            .unwrap();
        assert_eq!(h.message, "a (b) c");
        assert_eq!(
            h.time,
            Ok(LocalTime::Absolute(
                chrono::DateTime::from_timestamp(1769596200, 123_457_000).unwrap()
            ))
        );
    }

    #[test]
    fn custom_attributes_become_extras() {
        let e = PythonEnvelope::new("%(asctime)s %(execution_id)s %(message)s", None).unwrap();
        let h = e.parse_head("2026-01-28 10:30:00,123 abc-1 hello").unwrap();
        assert_eq!(
            h.extras,
            vec![("execution_id".into(), Value::Str("abc-1".into()))]
        );
    }

    #[test]
    fn bad_formats_are_explained() {
        let err = PythonEnvelope::new("%(asctime)s %s %(message)s", None).unwrap_err();
        assert!(err.to_string().contains("at character 12"), "{err}");
        assert!(PythonEnvelope::new("%(levelname)s %(message)s", None).is_err());
        assert!(PythonEnvelope::new("%(asctime)s %(name)s", None).is_err());
        let err = PythonEnvelope::new("%(asctime)s %(message)s", Some("%H:%M")).unwrap_err();
        assert!(matches!(err, PythonEnvelopeError::Datefmt(_)));
    }

    #[test]
    fn impossible_date_is_reported_not_panicked() {
        let e = PythonEnvelope::new("%(asctime)s %(message)s", None).unwrap();
        let h = e.parse_head("2026-02-30 10:30:00,123 x").unwrap();
        assert!(h.time.is_err());
    }

    proptest! {
        #[test]
        fn format_parser_never_panics(s in "\\PC*") {
            let _ = parse_format(&s);
            let _ = PythonEnvelope::new(&s, None);
        }

        #[test]
        fn head_parser_never_panics(s in "\\PC*") {
            let e = PythonEnvelope::new("%(asctime)s.%(msecs)03d %(levelname)-8s %(name)s %(message)s", Some("%Y-%m-%d %H:%M:%S")).unwrap();
            let _ = e.parse_head(&s);
        }

        /// Whatever Python prints for a record, the parser gets the fields back.
        #[test]
        fn round_trips_python_layout(
            ms in 0u32..1000, level in "(DEBUG|INFO|WARNING|ERROR|CRITICAL)",
            name in "[a-z][a-z0-9_.]{0,20}", msg in "[^\n\r]{0,60}", lineno in 1u32..5000,
        ) {
            let e = PythonEnvelope::new("%(asctime)s %(levelname)-8s %(name)s:%(lineno)d - %(message)s", None).unwrap();
            let line = format!("2026-01-28 10:30:00,{ms:03} {level:<8} {name}:{lineno} - {msg}");
            let h = e.parse_head(&line).unwrap();
            prop_assert_eq!(h.time, Ok(local(10, 30, 0, ms)));
            prop_assert_eq!(h.level.as_deref(), Some(level.as_str()));
            prop_assert_eq!(h.logger.as_deref(), Some(name.as_str()));
            prop_assert_eq!(h.message.as_ref(), msg.as_str());
        }
    }
}

#[cfg(test)]
mod split_tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whenever the hand split answers, it answers what the regex does.
        #[test]
        fn hand_split_agrees_with_the_regex(
            pieces in proptest::collection::vec(
                prop_oneof![
                    Just(" - "), Just("-"), Just(" "), Just("\t"), Just("a"), Just("WARNING"),
                    Just("v6.risk"), Just("é"), Just(" -"), Just("- "), Just("\u{a0}"), Just("1"),
                ],
                0..12,
            ),
            ts in prop_oneof![Just("2026-01-28 10:30:00,123"), Just("2026-01-28 10:30:00.123"), Just("2026-1-28 10:30:00,123")],
        ) {
            let line = format!("{ts}{}", pieces.concat());
            let env = PythonEnvelope::new(DEFAULT_PYTHON_FORMAT, None).unwrap();
            let by_regex = env.regex.captures(&line).map(|c| {
                (
                    c.get(1).unwrap().as_str().to_owned(),
                    c.get(2).unwrap().as_str().to_owned(),
                    c.get(3).unwrap().as_str().to_owned(),
                    c.get(4).unwrap().as_str().to_owned(),
                )
            });
            if let Some((a, n, l, m)) = split_default(&line) {
                prop_assert_eq!(Some((a.to_owned(), n.to_owned(), l.to_owned(), m.to_owned())), by_regex);
            }
        }
    }

    #[test]
    fn the_default_layout_takes_the_fast_path() {
        let line = "2026-01-28 10:30:00,123 - v6.risk.circuit_breaker - WARNING - Circuit breaker OPENED: 5 failures";
        assert_eq!(
            split_default(line),
            Some((
                "2026-01-28 10:30:00,123",
                "v6.risk.circuit_breaker",
                "WARNING",
                "Circuit breaker OPENED: 5 failures"
            ))
        );
        // A name with " - " in it: the shortest name that leaves a level.
        let line = "2026-01-28 10:30:00,123 - a - b c - INFO - m";
        assert_eq!(
            split_default(line),
            Some(("2026-01-28 10:30:00,123", "a - b c", "INFO", "m"))
        );
    }
}
