//! The `loguru` envelope: loguru's default format,
//! `{time:YYYY-MM-DD HH:mm:ss.SSS} | {level: <8} | {name}:{function}:{line} - {message}`,
//! with the time in the host's local time and no offset.

use regex::Regex;
use std::borrow::Cow;

use super::Head;
use crate::parse::time::LocalTime;

/// loguru's default head line.
#[derive(Debug, Clone)]
pub struct LoguruEnvelope {
    regex: Regex,
}

impl Default for LoguruEnvelope {
    fn default() -> Self {
        LoguruEnvelope::new()
    }
}

impl LoguruEnvelope {
    /// Compiles the default layout.
    pub fn new() -> LoguruEnvelope {
        LoguruEnvelope {
            // Groups: time, level, name, function, line, message. A function
            // can be `<module>`; names hold no ':'.
            regex: Regex::new(
                r"^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}) \| (\S+(?: \S+)*?) *\| ([^:]*):([^:]*):(\d+) - (.*)$",
            )
            .expect("constant regex compiles"),
        }
    }

    /// Splits a head line; `None` if the line is not one.
    pub fn parse_head<'a>(&self, line: &'a str) -> Option<Head<'a>> {
        let (time_text, level, name, message) = match split(line) {
            Some(parts) => parts,
            None => {
                let c = self.regex.captures(line)?;
                let group = |i| c.get(i).map_or("", |m| m.as_str());
                (group(1), group(2), group(3), group(6))
            }
        };
        let time = chrono::NaiveDateTime::parse_from_str(time_text, "%Y-%m-%d %H:%M:%S%.3f")
            .map(LocalTime::Naive)
            .map_err(|_| format!("time {time_text:?} is not a valid date and time"));
        Some(Head {
            time,
            level: Some(Cow::Borrowed(level)),
            logger: Some(Cow::Borrowed(name)),
            message: Cow::Borrowed(message),
            extras: Vec::new(),
        })
    }
}

/// The regex's first choice, by hand: the time, a level that is one run of
/// non-space characters, padding, `| name:function:line - message`. It is what
/// the regex returns whenever it applies (the regex tries exactly this split
/// first, and every later part is forced); `None` sends the line to the regex.
fn split(line: &str) -> Option<(&str, &str, &str, &str)> {
    let b = line.as_bytes();
    if !crate::parse::time::is_millis_stamp(b, b'.') || b.get(23..26) != Some(b" | ") {
        return None;
    }
    let rest = line.get(26..)?;
    let level_end = rest.find(char::is_whitespace)?;
    if level_end == 0 {
        return None;
    }
    let after_level = rest[level_end..].trim_start_matches(' ');
    let after_bar = after_level.strip_prefix('|')?.strip_prefix(' ')?;
    let (name, after_name) = after_bar.split_once(':')?;
    let (_function, after_function) = after_name.split_once(':')?;
    let digits = after_function
        .bytes()
        .take_while(u8::is_ascii_digit)
        .count();
    if digits == 0 {
        return None;
    }
    let message = after_function[digits..].strip_prefix(" - ")?;
    Some((&line[..23], &rest[..level_end], name, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_format() {
        let e = LoguruEnvelope::new();
        let h = e
            .parse_head("2026-01-28 10:30:00.123 | WARNING  | v6.risk.circuit_breaker:record_failure:88 - Circuit breaker OPENED: 5 failures")
            .unwrap();
        assert_eq!(h.level.as_deref(), Some("WARNING"));
        assert_eq!(h.logger.as_deref(), Some("v6.risk.circuit_breaker"));
        assert_eq!(h.message, "Circuit breaker OPENED: 5 failures");
        assert!(h.time.is_ok());
        let h = e
            .parse_head("2026-01-28 10:30:00.123 | CRITICAL | __main__:<module>:3 - a | b - c")
            .unwrap();
        assert_eq!(h.level.as_deref(), Some("CRITICAL"));
        assert_eq!(h.message, "a | b - c");
        assert!(e.parse_head("Traceback (most recent call last):").is_none());
        assert!(
            e.parse_head("2026-01-28 10:30:00,123 - x - INFO - y")
                .is_none()
        );
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
                    Just(" | "), Just("|"), Just(" "), Just("  "), Just("\t"), Just(":"), Just("WARNING"),
                    Just("v6.risk"), Just("<module>"), Just("88"), Just(" - "), Just("-"), Just("é"), Just("\u{a0}"),
                ],
                0..14,
            ),
            ts in prop_oneof![Just("2026-01-28 10:30:00.123 | "), Just("2026-01-28 10:30:00,123 | "), Just("2026-01-28 10:30:00.123 |")],
        ) {
            let line = format!("{ts}{}", pieces.concat());
            let e = LoguruEnvelope::new();
            let by_regex = e.regex.captures(&line).map(|c| {
                let g = |i| c.get(i).map_or(String::new(), |m| m.as_str().to_owned());
                (g(1), g(2), g(3), g(6))
            });
            if let Some((t, l, n, m)) = split(&line) {
                prop_assert_eq!(Some((t.to_owned(), l.to_owned(), n.to_owned(), m.to_owned())), by_regex);
            }
        }
    }

    #[test]
    fn the_default_layout_takes_the_fast_path() {
        let line = "2026-01-28 10:30:00.123 | WARNING  | v6.risk.circuit_breaker:record_failure:88 - Circuit breaker OPENED: 5 failures";
        assert_eq!(
            split(line),
            Some((
                "2026-01-28 10:30:00.123",
                "WARNING",
                "v6.risk.circuit_breaker",
                "Circuit breaker OPENED: 5 failures"
            ))
        );
        assert_eq!(
            split("2026-01-28 10:30:00.123 | CRITICAL | __main__:<module>:3 - a | b - c")
                .map(|p| p.3),
            Some("a | b - c")
        );
    }
}
