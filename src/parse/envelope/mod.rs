//! Envelopes: how a log line starts. An envelope recognises a record's head
//! line and splits it into time, level, logger, message and extra fields; a
//! line it does not recognise continues the record before it (a traceback, a
//! wrapped message) and never becomes an event on its own.

pub mod json;
pub mod loguru;
pub mod python;

use std::borrow::Cow;

use crate::event::Value;
use crate::parse::time::LocalTime;

/// The parts of a record's head line.
#[derive(Debug, Clone, PartialEq)]
pub struct Head<'a> {
    /// The line's time, or why it has none usable.
    pub time: Result<LocalTime, String>,
    /// Log level as printed (`WARNING`), trimmed of padding.
    pub level: Option<Cow<'a, str>>,
    /// Logger name.
    pub logger: Option<Cow<'a, str>>,
    /// The message: what the patterns read.
    pub message: Cow<'a, str>,
    /// Fields beyond the standard ones (custom format attributes, JSON extra
    /// keys): they fill the column of their name or go into `metadata`.
    pub extras: Vec<(String, Value)>,
}

/// The envelope of a source.
#[derive(Debug, Clone)]
pub enum Envelope {
    /// Python `logging` with the engine's format string.
    Python(python::PythonEnvelope),
    /// loguru's default format.
    Loguru(loguru::LoguruEnvelope),
    /// One JSON object per line.
    Json(json::JsonEnvelope),
}

impl Envelope {
    /// Splits a head line (newline already removed); `None` means the line is
    /// not a head: it continues the previous record.
    pub fn parse_head<'a>(&self, line: &'a str) -> Option<Head<'a>> {
        match self {
            Envelope::Python(p) => p.parse_head(line),
            Envelope::Loguru(l) => l.parse_head(line),
            Envelope::Json(j) => j.parse_head(line),
        }
    }

    /// Whether every physical line is a record (JSON lines): then a line the
    /// envelope does not recognise is malformed, never a continuation.
    pub fn every_line_is_a_record(&self) -> bool {
        matches!(self, Envelope::Json(_))
    }

    /// Where a complete record starts inside `line`, after byte 0, if one
    /// does: the mark of a record cut short by a crash with the restarted
    /// engine's next record appended on the same line. Only asked of keyword
    /// lines that made no event, so it may try many positions.
    pub fn fused_at(&self, line: &str) -> Option<usize> {
        let b = line.as_bytes();
        let starts = (1..b.len()).filter(|&i| match self {
            // A JSON record starts with `{"`.
            Envelope::Json(_) => b[i] == b'{' && b.get(i + 1) == Some(&b'"'),
            // Python and loguru heads start with their time (a digit after
            // something that is not one).
            _ => b[i].is_ascii_digit() && !b[i - 1].is_ascii_digit(),
        });
        for i in starts {
            let Some(rest) = line.get(i..) else { continue };
            if self.parse_head(rest).is_some_and(|h| h.time.is_ok()) {
                return Some(i);
            }
        }
        None
    }

    /// Only the time of a head line (`None`: not a head): what noise lines
    /// are read for, in a zone with DST.
    pub fn head_time(&self, line: &str) -> Option<Result<LocalTime, String>> {
        match self {
            Envelope::Python(p) => p.head_time(line),
            _ => self.parse_head(line).map(|h| h.time),
        }
    }
}

/// Attributes of Python's `LogRecord`: in a format string they are envelope,
/// not event fields; in JSON they are not copied to `metadata`.
pub const LOG_RECORD_ATTRIBUTES: &[&str] = &[
    "args",
    "asctime",
    "created",
    "exc_info",
    "exc_text",
    "filename",
    "funcName",
    "levelname",
    "levelno",
    "lineno",
    "message",
    "module",
    "msecs",
    "msg",
    "name",
    "pathname",
    "process",
    "processName",
    "relativeCreated",
    "stack_info",
    "taskName",
    "thread",
    "threadName",
];
