//! The `json` envelope: one JSON object per line, as python-json-logger writes
//! it (`asctime`/`timestamp`/`time`, `levelname`/`level`, `name`, `message`,
//! extra keys), and loguru's `serialize=True` records (`{"text", "record"}`).

use serde_json::{Map, Value as Json};
use std::borrow::Cow;

use super::{Head, LOG_RECORD_ATTRIBUTES};
use crate::event::Value;
use crate::parse::envelope::python::epoch_seconds;
use crate::parse::time::{DateFormat, LocalTime};

/// A JSON-lines envelope.
#[derive(Debug, Clone)]
pub struct JsonEnvelope {
    /// How `asctime` strings are printed (the logger's datefmt; Python's default if unset).
    datefmt: DateFormat,
}

impl JsonEnvelope {
    /// `datefmt`: the formatter's datefmt, if the engine sets one.
    pub fn new(datefmt: Option<DateFormat>) -> JsonEnvelope {
        JsonEnvelope {
            datefmt: datefmt.unwrap_or_else(DateFormat::python_default),
        }
    }

    /// Splits a head line; `None` if the line is not a JSON object.
    pub fn parse_head<'a>(&self, line: &'a str) -> Option<Head<'a>> {
        let trimmed = line.trim_start();
        if !trimmed.starts_with('{') {
            return None;
        }
        let obj: Map<String, Json> = serde_json::from_str(trimmed).ok()?;
        if let Some(Json::Object(record)) = obj.get("record")
            && obj.contains_key("text")
        {
            return Some(self.loguru_record(record));
        }
        let text = |keys: &[&str]| {
            keys.iter().find_map(|k| match obj.get(*k) {
                Some(Json::String(s)) => Some(Cow::Owned(s.clone())),
                _ => None,
            })
        };
        let time_key = ["asctime", "timestamp", "time", "created"]
            .into_iter()
            .find(|k| obj.get(*k).is_some_and(|v| !v.is_null()));
        let time = match time_key {
            Some(k) => self.time(&obj[k]),
            None => Err("no asctime, timestamp or time key".into()),
        };
        let extras = obj
            .iter()
            .filter(|(k, _)| {
                !LOG_RECORD_ATTRIBUTES.contains(&k.as_str())
                    && !matches!(k.as_str(), "timestamp" | "time" | "level" | "logger")
            })
            .filter_map(|(k, v)| json_value(v).map(|v| (k.clone(), v)))
            .collect();
        Some(Head {
            time,
            level: text(&["levelname", "level"]),
            logger: text(&["name", "logger"]),
            message: text(&["message", "msg"]).unwrap_or(Cow::Borrowed("")),
            extras,
        })
    }

    fn time(&self, v: &Json) -> Result<LocalTime, String> {
        match v {
            Json::Number(n) => n
                .as_f64()
                .and_then(|f| epoch_seconds(&format!("{f:.6}")))
                .map(LocalTime::Absolute)
                .ok_or_else(|| format!("time {n} is not an epoch time")),
            Json::String(s) => parse_time_text(s, &self.datefmt),
            other => Err(format!("time {other} is not a string or number")),
        }
    }

    fn loguru_record<'a>(&self, r: &Map<String, Json>) -> Head<'a> {
        let time = match r.get("time").and_then(|t| t.get("timestamp")) {
            Some(ts) => self.time(ts),
            None => Err("loguru record without time.timestamp".into()),
        };
        let s = |v: Option<&Json>| v.and_then(Json::as_str).map(|s| Cow::Owned(s.to_owned()));
        let extras = match r.get("extra") {
            Some(Json::Object(extra)) => extra
                .iter()
                .filter_map(|(k, v)| json_value(v).map(|v| (k.clone(), v)))
                .collect(),
            _ => Vec::new(),
        };
        Head {
            time,
            level: s(r.get("level").and_then(|l| l.get("name"))),
            logger: s(r.get("name")),
            message: s(r.get("message")).unwrap_or(Cow::Borrowed("")),
            extras,
        }
    }
}

/// A time string: RFC 3339 with an offset, the formatter's datefmt, or ISO
/// 8601 without an offset (local).
fn parse_time_text(s: &str, datefmt: &DateFormat) -> Result<LocalTime, String> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(LocalTime::Absolute(t.with_timezone(&chrono::Utc)));
    }
    if let Some(t) = datefmt.parse(s) {
        return Ok(t);
    }
    for f in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S,%3f",
    ] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, f) {
            return Ok(LocalTime::Naive(t));
        }
    }
    Err(format!("time {s:?} is not a date and time risktail knows"))
}

/// A JSON value as a field value; null is no value; objects and arrays keep
/// their JSON text.
fn json_value(v: &Json) -> Option<Value> {
    match v {
        Json::Null => None,
        Json::Bool(b) => Some(Value::Bool(*b)),
        Json::Number(n) => Some(match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        }),
        Json::String(s) => Some(Value::Str(s.clone())),
        other => Some(Value::Str(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_json_logger_line() {
        let e = JsonEnvelope::new(None);
        let h = e
            .parse_head(r#"{"asctime": "2026-01-28 10:30:00,123", "name": "v6.risk.circuit_breaker", "levelname": "WARNING", "message": "Circuit breaker OPENED: 5 failures", "execution_id": null, "symbol": "SPY", "attempt": 2, "lineno": 88}"#)
            .unwrap();
        assert!(matches!(h.time, Ok(LocalTime::Naive(_))));
        assert_eq!(h.level.as_deref(), Some("WARNING"));
        assert_eq!(h.message, "Circuit breaker OPENED: 5 failures");
        assert_eq!(
            h.extras,
            vec![
                ("attempt".into(), Value::Int(2)),
                ("symbol".into(), Value::Str("SPY".into()))
            ]
        );
    }

    #[test]
    fn rfc3339_and_epoch_times() {
        let e = JsonEnvelope::new(None);
        let h = e
            .parse_head(r#"{"timestamp": "2026-01-28T10:30:00.123456-05:00", "message": "m"}"#)
            .unwrap();
        assert_eq!(
            h.time,
            Ok(LocalTime::Absolute(
                chrono::DateTime::from_timestamp(1769614200, 123_456_000).unwrap()
            ))
        );
        let h = e
            .parse_head(r#"{"created": 1769596200.5, "message": "m"}"#)
            .unwrap();
        assert!(matches!(h.time, Ok(LocalTime::Absolute(_))));
    }

    #[test]
    fn non_objects_continue_the_record() {
        let e = JsonEnvelope::new(None);
        assert!(e.parse_head("Traceback (most recent call last):").is_none());
        assert!(e.parse_head("{not json").is_none());
        assert!(e.parse_head("[1,2]").is_none());
    }

    #[test]
    fn loguru_serialized() {
        let e = JsonEnvelope::new(None);
        let line = r#"{"text": "x\n", "record": {"time": {"repr": "2026-01-28 10:30:00.123000-05:00", "timestamp": 1769614200.123}, "level": {"name": "WARNING", "no": 30}, "name": "v6.risk", "message": "Trailing stop added", "extra": {"symbol": "SPY"}}}"#;
        let h = e.parse_head(line).unwrap();
        assert_eq!(h.level.as_deref(), Some("WARNING"));
        assert_eq!(h.message, "Trailing stop added");
        assert_eq!(h.extras, vec![("symbol".into(), Value::Str("SPY".into()))]);
    }
}
