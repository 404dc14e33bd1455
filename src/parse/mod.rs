//! From a line's bytes to an event: envelope → context prefix → patterns →
//! enrichment. Pure: no files, no Delta. The caller gives each line with its
//! file identity and offset, and the source's [`SourceState`]; the parser gives
//! back an [`Outcome`] and updates the state.

pub mod enrich;
pub mod envelope;
pub mod fields;
pub mod patterns;
pub mod time;
pub mod walk;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use std::borrow::Cow;
use std::sync::Arc;

pub use crate::event::SourceState;
use crate::event::{
    EventFields, EventOrigin, EventRows, Field, LinePos, QuarantineRecord, Reason, Val, Value,
    ValueKind, event_id,
};
use crate::source::fingerprint::{FileId, Heads};
use envelope::Envelope;
use patterns::{Matched, PatternSet};

/// What became of a line.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// A head line without a risk keyword (or one the prefilter skipped unparsed).
    Noise,
    /// A line that continues the record before it (traceback, wrapped text).
    Continuation,
    /// Known noise that carries a keyword (an `ignore` pattern matched).
    Ignored,
    /// A risk event: added as a row to the [`EventRows`] the parser was
    /// given (its columns go there, not through an owned event).
    Event,
    /// A line kept for review.
    Quarantine(Box<QuarantineRecord>),
    /// Two records on one line: a record cut short (the engine died while
    /// writing it) and, after it, the next record the restarted engine
    /// appended. The cut part is kept for review; the rest is parsed as the
    /// record it is.
    Fused {
        /// The cut part.
        cut: Box<QuarantineRecord>,
        /// What the complete record became.
        rest: Box<Outcome>,
    },
}

/// Where a line came from.
#[derive(Debug, Clone, Copy)]
pub struct LineRef<'a> {
    /// The file's identity.
    pub file: FileId,
    /// The path it was read from.
    pub path: &'a str,
    /// Offset of the line's first byte.
    pub offset: u64,
    /// The line, with or without its newline.
    pub bytes: &'a [u8],
    /// The reader's search over its buffer found a keyword in this line
    /// (see `LineReader::noise_run`), so it need not be searched again;
    /// false says nothing.
    pub keyword: bool,
}

/// The parser of one source.
#[derive(Debug, Clone)]
pub struct SourceParser {
    source: Arc<str>,
    envelope: Envelope,
    patterns: Arc<PatternSet>,
    tz: Tz,
    /// Whether noise lines' times must be read too (zones with DST).
    track_time: bool,
}

/// A line as text: valid UTF-8 (nearly every line) is checked on
/// `from_utf8`'s fast path and borrowed; only invalid bytes pay for the
/// replacement.
fn text_of(raw: &[u8]) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(raw) {
        Ok(s) => std::borrow::Cow::Borrowed(s),
        Err(_) => String::from_utf8_lossy(raw),
    }
}

/// The lines of `bytes` (whole lines, each ending with its newline), last
/// first.
struct LinesBack<'a>(&'a [u8]);

impl<'a> Iterator for LinesBack<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.0.is_empty() {
            return None;
        }
        let body = self.0.strip_suffix(b"\n").unwrap_or(self.0);
        let start = memchr::memrchr(b'\n', body).map_or(0, |nl| nl + 1);
        let line = &self.0[start..];
        self.0 = &self.0[..start];
        Some(line)
    }
}

fn strip_newline(b: &[u8]) -> &[u8] {
    let b = b.strip_suffix(b"\n").unwrap_or(b);
    b.strip_suffix(b"\r").unwrap_or(b)
}

impl SourceParser {
    /// A parser for the source `source`.
    pub fn new(
        source: &str,
        envelope: Envelope,
        patterns: Arc<PatternSet>,
        tz: Tz,
    ) -> SourceParser {
        SourceParser {
            source: source.into(),
            envelope,
            patterns,
            track_time: !time::zone_is_fixed(tz),
            tz,
        }
    }

    /// The source's name.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Replaces the pattern set (SIGHUP reload).
    pub fn set_patterns(&mut self, patterns: Arc<PatternSet>) {
        self.patterns = patterns;
    }

    /// Where the first line that can matter starts in `hay` (a keyword
    /// anywhere), for passing over noise in bulk.
    pub fn find_candidate(&self, hay: &[u8]) -> Option<usize> {
        self.patterns.find_candidate(hay)
    }

    /// Takes note of a run of noise lines passed over in bulk (whole lines,
    /// none with a keyword): the time of its last record head is the
    /// source's latest, which the autumn-hour rule needs. A line that is no
    /// head (a traceback's, wrapped text) changes nothing when parsed, so the
    /// lines after the last head are looked past, and a run without a head
    /// changes nothing. Returns false when that cannot be decided from the
    /// last head alone (a time inside a repeated or missing hour, or one that
    /// does not read), in which case the caller must read the run line by
    /// line. A traceback used to end most runs before a keyword, and each
    /// such run went line by line.
    pub fn observe_noise(&self, state: &mut SourceState, run: &[u8]) -> bool {
        if !self.track_time {
            return true;
        }
        for line in LinesBack(run) {
            let text = text_of(strip_newline(line));
            let Some(local) = self.envelope.head_time(&text) else {
                continue;
            };
            let Some(t) = local.ok().and_then(|l| time::unique_utc(l, self.tz)) else {
                return false;
            };
            state.saw_time(t);
            return true;
        }
        true
    }

    /// What this source's envelope calls a record's first line, with its
    /// time: files are named by their first record and ordered by its time
    /// ([`crate::source::fingerprint`]).
    pub fn heads(&self) -> Heads {
        let (envelope, tz) = (self.envelope.clone(), self.tz);
        Heads::new(move |line| {
            let text = text_of(strip_newline(line));
            let time = envelope.head_time(&text)?;
            Some(time.ok().and_then(|local| time::stamp(local, tz).ok()))
        })
    }

    /// Parses one complete line; an event becomes a row of `events`.
    pub fn parse_line(
        &self,
        state: &mut SourceState,
        line: LineRef<'_>,
        now: DateTime<Utc>,
        events: &mut EventRows,
    ) -> Outcome {
        let outcome = self.parse_record(state, line, now, events);
        match &outcome {
            Outcome::Quarantine(_) | Outcome::Continuation => {
                self.unfuse(state, line, now, events).unwrap_or(outcome)
            }
            _ => outcome,
        }
    }

    /// A keyword line that made no event may hold two records: the first cut
    /// short by a crash, the next appended after it by the restarted engine.
    /// When a complete record starts inside the line, the cut part becomes a
    /// `malformed_record` quarantine row and the rest is parsed on its own
    /// (its offset, and so its event id, is where it starts).
    fn unfuse(
        &self,
        state: &mut SourceState,
        line: LineRef<'_>,
        now: DateTime<Utc>,
        events: &mut EventRows,
    ) -> Option<Outcome> {
        let raw = strip_newline(line.bytes);
        let text = std::str::from_utf8(raw).ok()?;
        let at = self.envelope.fused_at(text)?;
        let cut = QuarantineRecord::new(
            self.pos(line.file, line.path, line.offset),
            &raw[..at],
            at as u64,
            Reason::MalformedRecord,
            Some(format!(
                "a record cut short ({at} bytes, no newline: the engine died while writing it?) and, on the same line, the next record at byte {at}"
            )),
            now,
        );
        let rest = self.parse_line(
            state,
            LineRef {
                offset: line.offset + at as u64,
                bytes: &line.bytes[at..],
                // The keyword may have been in the part cut off.
                keyword: false,
                ..line
            },
            now,
            events,
        );
        Some(Outcome::Fused {
            cut: Box::new(cut),
            rest: Box::new(rest),
        })
    }

    /// One record's line (or what is left of a fused one).
    fn parse_record(
        &self,
        state: &mut SourceState,
        line: LineRef<'_>,
        now: DateTime<Utc>,
        events: &mut EventRows,
    ) -> Outcome {
        let (raw, line) = after_nuls(line);
        let candidate = line.keyword || self.patterns.is_candidate(raw);
        if !candidate && !self.track_time {
            return Outcome::Noise;
        }
        let text = text_of(raw);
        let Some(head) = self.envelope.parse_head(&text) else {
            return self.not_a_record(candidate, &line, raw, now);
        };
        let utc = head
            .time
            .as_ref()
            .map_err(Clone::clone)
            .and_then(|t| self.place(state, *t));
        if let Ok(t) = utc {
            state.saw_time(t);
        }
        if !candidate {
            return Outcome::Noise;
        }
        let (ctx, message) = enrich::split_context(&head.message);
        let level = head.level.as_deref().map(str::trim);
        let logger = head.logger.as_deref();
        let quarantine = |reason, detail: String| {
            Outcome::Quarantine(Box::new(QuarantineRecord::new(
                self.pos(line.file, line.path, line.offset),
                raw,
                raw.len() as u64,
                reason,
                Some(detail),
                now,
            )))
        };
        let (pattern, caps) = match self.patterns.find(message, level, logger) {
            Matched::Ignored(_) => return Outcome::Ignored,
            Matched::Nothing => {
                return match self.patterns.keyword_in(message) {
                    Some(k) => quarantine(Reason::UnmatchedKeyword, unmatched(k)),
                    None => Outcome::Noise,
                };
            }
            Matched::Event(p, caps) => (p, caps),
        };
        let timestamp = match utc {
            Ok(t) => t,
            Err(detail) => return quarantine(Reason::BadTimestamp, detail),
        };
        let mut fields = match fields_of(head.extras, &ctx, pattern, &caps) {
            Ok(f) => f,
            Err(detail) => return quarantine(Reason::Conversion, detail),
        };
        enrich_breaker(state, pattern, &mut fields);
        // An event pattern always has a type (ignore patterns do not get here).
        let Some(event_type) = pattern.event_type.as_ref() else {
            return Outcome::Ignored;
        };
        let origin = EventOrigin {
            event_id: event_id(line.file, line.offset),
            event_type,
            component: &pattern.component,
            timestamp,
            level,
            logger,
            source: &self.source,
            source_file: line.path,
            source_offset: line.offset,
            raw_line: &text,
            ingested_at: now,
        };
        events.push_parsed(&origin, &fields);
        Outcome::Event
    }

    /// A line's time as an instant: inside a repeated hour, the pass the
    /// latest time seen puts it in (noted in the state, see
    /// `SourceState::first_fold`).
    fn place(&self, state: &mut SourceState, t: time::LocalTime) -> Result<DateTime<Utc>, String> {
        let stamp = time::stamp(t, self.tz).map_err(|e| e.to_string())?;
        if stamp.is_ambiguous() {
            state.note_fold();
        }
        Ok(stamp.after(state.last_time))
    }

    /// A line that does not start like a record. Only keyword lines count
    /// as continuations, whatever the zone, so the summary does not depend
    /// on whether noise was looked at. In an envelope where every line is a
    /// record (JSON), a keyword line that is no record is kept for review,
    /// never taken as a continuation.
    fn not_a_record(
        &self,
        candidate: bool,
        line: &LineRef<'_>,
        raw: &[u8],
        now: DateTime<Utc>,
    ) -> Outcome {
        match (candidate, self.envelope.every_line_is_a_record()) {
            (false, _) => Outcome::Noise,
            (true, false) => Outcome::Continuation,
            (true, true) => Outcome::Quarantine(Box::new(QuarantineRecord::new(
                self.pos(line.file, line.path, line.offset),
                raw,
                raw.len() as u64,
                Reason::MalformedRecord,
                Some("the line holds a risk keyword but is not a JSON object (a record cut short, or text that is no record)".into()),
                now,
            ))),
        }
    }

    fn pos<'a>(&'a self, file: FileId, path: &'a str, offset: u64) -> LinePos<'a> {
        LinePos {
            source: &self.source,
            file,
            source_file: path,
            offset,
        }
    }

    /// The quarantine record of a line over `max_line_bytes`.
    pub fn oversize(
        &self,
        file: FileId,
        path: &str,
        offset: u64,
        len: u64,
        prefix: &[u8],
        now: DateTime<Utc>,
    ) -> QuarantineRecord {
        QuarantineRecord::new(
            self.pos(file, path, offset),
            strip_newline(prefix),
            len,
            Reason::LineTooLong,
            Some(format!(
                "line of {len} bytes is over max_line_bytes; first {} kept",
                prefix.len()
            )),
            now,
        )
    }

    /// The quarantine record of the unterminated tail of a sealed file.
    pub fn fragment(
        &self,
        file: FileId,
        path: &str,
        offset: u64,
        bytes: &[u8],
        now: DateTime<Utc>,
    ) -> QuarantineRecord {
        QuarantineRecord::new(
            self.pos(file, path, offset),
            bytes,
            bytes.len() as u64,
            Reason::IncompleteLine,
            Some("the file ends in a line without its newline".into()),
            now,
        )
    }
}

/// An envelope's extra field: into the column of its name when the value fits
/// (numbers become text for text columns), otherwise into `metadata`.
fn put_extra(fields: &mut EventFields<'_>, key: String, value: Value) {
    if let Some(f) = Field::from_name(&key) {
        let value = match (f.kind(), value) {
            (ValueKind::Str, Value::Int(i)) => Value::Str(i.to_string()),
            (ValueKind::Str, Value::Float(x)) => Value::Str(x.to_string()),
            (ValueKind::Str, Value::Bool(b)) => Value::Str(b.to_string()),
            (_, v) => v,
        };
        if fields.set(f, Val::from(value.clone())).is_ok() {
            return;
        }
        fields.insert_metadata(key.into(), value.into());
        return;
    }
    fields.insert_metadata(key.into(), value.into());
}

/// Why a message with a risk keyword and no pattern is quarantined.
fn unmatched(keyword: &str) -> String {
    format!("the message holds the risk keyword {keyword:?} but matches no pattern")
}

/// The line without its newline, and without the run of NULs that
/// copytruncate under a writer without O_APPEND leaves in front of the next
/// record (the record, and its offset, start after them).
fn after_nuls(line: LineRef<'_>) -> (&[u8], LineRef<'_>) {
    let raw = strip_newline(line.bytes);
    let nuls = raw.iter().take_while(|&&b| b == 0).count();
    let line = LineRef {
        offset: line.offset + nuls as u64,
        ..line
    };
    (&raw[nuls..], line)
}

/// An event's fields: the envelope's extra keys, the `[exec=… sym=…]`
/// context, then the pattern's captures (which win); a capture that does not
/// convert is the error.
fn fields_of<'a>(
    extras: Vec<(String, Value)>,
    ctx: &enrich::Context<'a>,
    pattern: &'a patterns::Pattern,
    caps: &patterns::Caps<'a>,
) -> Result<EventFields<'a>, String> {
    let mut fields = EventFields::default();
    for (key, value) in extras {
        put_extra(&mut fields, key, value);
    }
    if let Some(e) = ctx.execution_id {
        let _ = fields.set(Field::ExecutionId, Val::Str(Cow::Borrowed(e)));
    }
    if let Some(s) = ctx.symbol {
        let _ = fields.set(Field::Symbol, Val::Str(Cow::Borrowed(s)));
    }
    pattern.extract(caps, &mut fields).map_err(|e| e.0)?;
    Ok(fields)
}

/// A breaker change's `old_state` is the state last seen in this source,
/// unless the message itself names it (re-OPENED from HALF_OPEN); the new
/// state becomes the source's.
fn enrich_breaker(
    state: &mut SourceState,
    pattern: &patterns::Pattern,
    fields: &mut EventFields<'_>,
) {
    if &*pattern.component != "circuit_breaker" {
        return;
    }
    let Some(new) = fields.text(Field::NewState).cloned() else {
        return;
    };
    // The state last seen, taken out of the source's state when the new one
    // replaces it (no copy), or the new one itself when it is the same.
    let prev = if state.breaker.as_deref() == Some(&*new) {
        Some(new)
    } else {
        state.breaker.replace(new.into_owned()).map(Cow::Owned)
    };
    if let Some(prev) = prev {
        let _ = fields.set_default(Field::OldState, Val::Str(prev));
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::envelope::python::PythonEnvelope;
    use proptest::prelude::*;

    fn parser(tz: &str) -> SourceParser {
        let env = PythonEnvelope::new("%(asctime)s - %(name)s - %(levelname)s - %(message)s", None)
            .unwrap();
        let patterns = Arc::new(PatternSet::load(true, &[]).unwrap());
        SourceParser::new(
            "engine",
            Envelope::Python(env),
            patterns,
            tz.parse().unwrap(),
        )
    }

    proptest! {
        /// Any bytes, with risk keywords and a valid head spliced in, give an
        /// outcome and never a panic; events always carry the line's offset.
        #[test]
        fn any_bytes_never_panic(
            pre in proptest::collection::vec(any::<u8>(), 0..40),
            kw in prop_oneof![Just(""), Just("Circuit breaker OPENED: "), Just("Trailing stop UPDATED: peak="), Just("Entry REJECTED by portfolio limits: Total exposure $")],
            post in proptest::collection::vec(any::<u8>(), 0..60),
            head in any::<bool>(),
            tz in prop_oneof![Just("UTC"), Just("America/New_York")],
        ) {
            let mut line = Vec::new();
            if head {
                line.extend_from_slice(b"2026-11-01 01:30:00,000 - v6.risk - WARNING - ");
            }
            line.extend_from_slice(&pre);
            line.extend_from_slice(kw.as_bytes());
            line.extend_from_slice(&post);
            let p = parser(tz);
            let mut state = SourceState::default();
            let file = FileId::from_head(b"x\n");
            let mut events = EventRows::default();
            let out = p.parse_line(&mut state, LineRef { file, path: "x", offset: 9, bytes: &line, keyword: false }, Utc::now(), &mut events);
            prop_assert_eq!(events.len(), usize::from(out == Outcome::Event || matches!(&out, Outcome::Fused { rest, .. } if **rest == Outcome::Event)));
            for e in events.iter() {
                prop_assert!(e.source_offset() >= 9);
            }
        }
    }

    /// A run of noise passed in bulk leaves the state that parsing its lines
    /// one by one leaves, whenever `observe_noise` says it can: runs ending
    /// in a traceback, runs with no head at all, runs whose last head is in
    /// the repeated autumn hour (which must go line by line), and one whose
    /// last head comes after one that is.
    #[test]
    fn a_run_in_bulk_leaves_the_state_its_lines_leave() {
        let head = |t: &str| format!("{t},000 - v6.execution - ERROR - Order submission failed\n");
        let traceback = "Traceback (most recent call last):\n  File \"/opt/engine/v6/execution.py\", line 41, in submit\n";
        let noise = |t: &str| format!("{t},500 - v6.orders - INFO - fill IWM qty=2 @ 4.03\n");
        let runs: Vec<(String, bool)> = vec![
            (
                noise("2026-01-26 09:25:05") + &head("2026-01-26 09:25:06") + traceback,
                true,
            ),
            (traceback.to_owned(), true),
            (noise("2026-01-26 09:25:05"), true),
            (head("2026-11-01 01:30:00") + traceback, false),
            (
                noise("2026-11-01 00:59:00") + &noise("2026-11-01 01:10:00"),
                false,
            ),
            (
                noise("2026-11-01 01:10:00") + &noise("2026-11-01 02:10:00") + traceback,
                true,
            ),
        ];
        let p = parser("America/New_York");
        let file = FileId::from_head(b"x\n");
        let earlier = SourceState {
            last_time: Some("2026-01-26T14:00:00Z".parse().unwrap()),
            ..SourceState::default()
        };
        for (run, decidable) in runs {
            let mut bulk = earlier.clone();
            assert_eq!(
                p.observe_noise(&mut bulk, run.as_bytes()),
                decidable,
                "{run}"
            );
            let mut by_line = earlier.clone();
            let mut events = EventRows::default();
            let mut offset = 0;
            for line in run.split_inclusive('\n') {
                let line = LineRef {
                    file,
                    path: "x",
                    offset,
                    bytes: line.as_bytes(),
                    keyword: false,
                };
                assert_eq!(
                    p.parse_line(&mut by_line, line, Utc::now(), &mut events),
                    Outcome::Noise
                );
                offset += line.bytes.len() as u64;
            }
            if decidable {
                assert_eq!(bulk, by_line, "{run}");
            }
        }
    }
}
