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
        let c = self.regex.captures(line)?;
        let group = |i| c.get(i).map_or("", |m| m.as_str());
        let time_text = group(1);
        let time = chrono::NaiveDateTime::parse_from_str(time_text, "%Y-%m-%d %H:%M:%S%.3f")
            .map(LocalTime::Naive)
            .map_err(|_| format!("time {time_text:?} is not a valid date and time"));
        Some(Head {
            time,
            level: Some(Cow::Borrowed(group(2))),
            logger: Some(Cow::Borrowed(group(3))),
            message: Cow::Borrowed(group(6)),
            extras: Vec::new(),
        })
    }
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
