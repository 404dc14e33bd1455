//! Trailing stops rebuilt from their events: added, activated, updated,
//! triggered. The engine names the execution in the `added` line and, through
//! the `[exec=… sym=…]` prefix, in the later ones. Lines without it are
//! matched by symbol, then by the values they repeat (ACTIVATED repeats the
//! add's entry, UPDATED the stop it replaces, TRIGGERED the current stop and
//! peak), and kept as unattributed events when that is still ambiguous —
//! never guessed, and never made into a stop of their own. An engine restart
//! (`circuit_breaker_init`) ends every open stop of its source: the engine
//! keeps them in memory. A stop closed by another exit leaves no risk line, so
//! it stays open in this view until a restart or the end of the data.

use chrono::{DateTime, Utc};
use rustc_hash::FxBuildHasher;
use serde::Serialize;
use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use super::load::Row;
use super::row::{StopLine, Sym};
use crate::event::meta::numbers;

/// One point of a stop's path.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Point {
    /// When.
    pub at: DateTime<Utc>,
    /// `ADD`, `ACTIVATE`, `UPDATE`, `TRIGGER`.
    pub action: Sym,
    /// The premium at the trigger.
    pub current: Option<f64>,
    /// The peak so far.
    pub peak: Option<f64>,
    /// The stop level so far.
    pub stop: Option<f64>,
}

/// How a stop ended, if it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum End {
    /// `Trailing stop TRIGGERED`.
    Triggered,
    /// The engine restarted (its stops are in memory).
    Restart,
}

/// One trailing stop.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stop {
    /// The source.
    pub source: Sym,
    /// The execution.
    pub execution_id: Option<Arc<str>>,
    /// The instrument.
    pub symbol: Option<Sym>,
    /// When it was added (the first event seen when the add is not in the data read).
    pub added_at: DateTime<Utc>,
    /// Premium at entry.
    pub entry: Option<f64>,
    /// Activation threshold, percent.
    pub activation_pct: Option<f64>,
    /// Trailing distance, percent.
    pub trailing_pct: Option<f64>,
    /// Every event, in order (empty when the book was asked to keep only
    /// its [`Seen`]: see [`StopBook::paths_from`]).
    pub path: Vec<Point>,
    /// How and when it ended.
    pub ended: Option<(End, DateTime<Utc>)>,
    /// What its events said, kept as they come.
    #[serde(skip)]
    pub seen: Seen,
}

/// What a stop's events said, kept as they come: all the report and the
/// matching of lines without an execution id read of a path. A year holds a
/// million stops and draws a week of them, so the others keep this alone,
/// not a path allocated per stop.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Seen {
    /// Its first event was its add line.
    pub added: bool,
    /// An event other than the add came.
    pub activated: bool,
    /// The last peak given.
    pub peak: Option<f64>,
    /// The last stop level given.
    pub stop: Option<f64>,
    /// When its last event came.
    pub last_at: Option<DateTime<Utc>>,
    /// The first trigger's premium and stop level.
    pub trigger: Option<(Option<f64>, Option<f64>)>,
}

impl Seen {
    fn take(&mut self, p: &Point) {
        if self.last_at.is_none() {
            self.added = p.action == "ADD";
        }
        self.activated |= p.action != "ADD";
        self.peak = p.peak.or(self.peak);
        self.stop = p.stop.or(self.stop);
        self.last_at = Some(p.at);
        if p.action == "TRIGGER" && self.trigger.is_none() {
            self.trigger = Some((p.current, p.stop));
        }
    }
}

impl Stop {
    /// A stop first seen in `r` (its add line, or a later one when the add is
    /// not in the data read).
    fn starting_at(r: &StopLine) -> Stop {
        Stop {
            source: r.source,
            execution_id: r.execution_id.as_deref().map(Arc::from),
            symbol: r.symbol,
            added_at: r.timestamp,
            entry: r.entry_premium,
            activation_pct: None,
            trailing_pct: None,
            path: Vec::new(),
            ended: None,
            seen: Seen::default(),
        }
    }

    /// Takes one more event, into its path too when `keep_path`.
    fn take(&mut self, p: Point, keep_path: bool) {
        self.seen.take(&p);
        if keep_path {
            if self.path.is_empty() {
                // Add, activate, an update or two, trigger.
                self.path.reserve_exact(4);
            }
            self.path.push(p);
        }
    }

    /// When its last event came (when it was added if none did).
    pub fn last_at(&self) -> DateTime<Utc> {
        self.seen.last_at.unwrap_or(self.added_at)
    }

    /// Whether it is alive at `t`.
    pub fn alive_at(&self, t: DateTime<Utc>) -> bool {
        self.added_at <= t && self.ended.is_none_or(|(_, e)| e > t)
    }

    /// Its values as of `t`: (activated, peak, stop, last event time),
    /// read off its path (a stop the book kept no path of looks as added;
    /// [`Stop::seen`] has what its events said).
    pub fn as_of(&self, t: DateTime<Utc>) -> (bool, Option<f64>, Option<f64>, DateTime<Utc>) {
        let mut out = (false, None, None, self.added_at);
        for p in self.path.iter().take_while(|p| p.at <= t) {
            if p.action != "ADD" {
                out.0 = true;
            }
            out.1 = p.peak.or(out.1);
            out.2 = p.stop.or(out.2);
            out.3 = p.at;
        }
        out
    }

    /// Whether it ever activated.
    pub fn activated(&self) -> bool {
        self.seen.activated
    }

    /// The trigger point, if triggered, from its path (none for a stop the
    /// book kept no path of: [`Seen::trigger`] says whether it triggered).
    pub fn trigger(&self) -> Option<&Point> {
        self.path.iter().find(|p| p.action == "TRIGGER")
    }

    /// Premium captured at the trigger relative to entry, percent.
    pub fn captured_pct(&self) -> Option<f64> {
        let (current, stop) = self.seen.trigger?;
        let exit = current.or(stop)?;
        let entry = self.entry.filter(|e| *e > 0.0)?;
        Some((exit - entry) / entry * 100.0)
    }
}

/// The stops of some rows (in the audit order), and per source how many stop
/// events could not be tied to a stop.
pub fn rebuild(rows: &[Row]) -> (Vec<Stop>, BTreeMap<String, usize>) {
    let mut book = StopBook::default();
    for r in rows {
        book.feed(r);
    }
    let mut all = book.take_done();
    all.extend(book.take_open());
    all.sort_by_key(|s| s.added_at);
    (all, book.unattributed)
}

/// A stop event that could not be tied to one stop: it still counts (a
/// trigger is a trigger), it just belongs to no stop's path.
#[derive(Debug, Clone, PartialEq)]
pub struct Stray {
    /// When.
    pub at: DateTime<Utc>,
    /// `ACTIVATE`, `UPDATE`, `TRIGGER`.
    pub action: Sym,
    /// The instrument, if the line named it.
    pub symbol: Option<Sym>,
}

/// Stops rebuilt incrementally, for reading a long period one day at a time:
/// feed rows in the audit order; stops that ended move to `done`.
///
/// A busy engine holds a thousand stops open by the end of a day: the open
/// ones are kept in the order they were opened under a sequence number, and
/// found by execution through an index, so a line costs a lookup and an end
/// costs a removal, not a scan and a shift of the whole list.
#[derive(Debug, Default)]
pub struct StopBook {
    /// Stops not ended yet, by the order they were opened in.
    open: OpenStops,
    /// The open stops of each execution with their source, oldest first
    /// (keyed by the text alone so a row's id is looked up as it is read,
    /// and hashed with FxHash: a year's report looks up 3.5 million lines).
    by_exec: HashMap<Arc<str>, Seqs, FxBuildHasher>,
    done: Vec<Stop>,
    strays: Vec<Stray>,
    /// Per source, stop events that could not be tied to a stop.
    pub unattributed: BTreeMap<String, usize>,
    /// The last add line's metadata and the setting read from it: an
    /// engine adds its stops with one setting, so the JSON is read once
    /// per change, not once per stop.
    last_setting: Option<(Box<str>, [Option<f64>; 2])>,
    /// Stops added before this time keep only what their events said
    /// ([`Seen`]), not their path (`None`: every stop keeps its path).
    paths_from: Option<DateTime<Utc>>,
}

/// The open stops of one execution id, with their source, oldest first:
/// nearly always one, kept without a list of its own.
#[derive(Debug)]
enum Seqs {
    One(Sym, u64),
    Many(Vec<(Sym, u64)>),
}

impl Seqs {
    fn push(&mut self, source: Sym, seq: u64) {
        match self {
            Seqs::One(s, q) => *self = Seqs::Many(vec![(*s, *q), (source, seq)]),
            Seqs::Many(v) => v.push((source, seq)),
        }
    }

    /// The newest of `source`.
    fn newest(&self, source: Sym) -> Option<u64> {
        match self {
            Seqs::One(s, q) => (*s == source).then_some(*q),
            Seqs::Many(v) => v.iter().rev().find(|(s, _)| *s == source).map(|(_, q)| *q),
        }
    }

    /// Removes `seq`; whether none is left.
    fn remove(&mut self, seq: u64) -> bool {
        match self {
            Seqs::One(_, q) => *q == seq,
            Seqs::Many(v) => {
                v.retain(|(_, q)| *q != seq);
                v.is_empty()
            }
        }
    }
}

/// The open stops under sequence numbers given in the order they were
/// opened: a slot per number from the oldest still open, emptied when its
/// stop ends (most end within the day they began, and an engine restart
/// ends the rest), so a lookup is an index and an end does not shift others.
#[derive(Debug, Default)]
struct OpenStops {
    /// The sequence number of `slots[0]`.
    first: u64,
    slots: VecDeque<Option<Stop>>,
}

impl OpenStops {
    /// Opens `s` under the next number.
    fn push(&mut self, s: Stop) -> u64 {
        self.slots.push_back(Some(s));
        self.first + self.slots.len() as u64 - 1
    }

    fn slot(&self, seq: u64) -> Option<usize> {
        usize::try_from(seq.checked_sub(self.first)?).ok()
    }

    fn get(&self, seq: u64) -> Option<&Stop> {
        self.slots.get(self.slot(seq)?)?.as_ref()
    }

    fn get_mut(&mut self, seq: u64) -> Option<&mut Stop> {
        let i = self.slot(seq)?;
        self.slots.get_mut(i)?.as_mut()
    }

    fn remove(&mut self, seq: u64) -> Option<Stop> {
        let i = self.slot(seq)?;
        let s = self.slots.get_mut(i)?.take();
        while matches!(self.slots.front(), Some(None)) {
            self.slots.pop_front();
            self.first += 1;
        }
        s
    }

    /// The open stops, oldest first, with their numbers.
    fn iter(&self) -> impl Iterator<Item = (u64, &Stop)> {
        (self.first..)
            .zip(&self.slots)
            .filter_map(|(seq, s)| Some((seq, s.as_ref()?)))
    }

    /// Takes every open stop, oldest first.
    fn take_all(&mut self) -> Vec<Stop> {
        self.first += self.slots.len() as u64;
        self.slots.drain(..).flatten().collect()
    }
}

/// Whether a book keeping paths from `from` keeps `s`'s.
fn keeps_path(from: Option<DateTime<Utc>>, s: &Stop) -> bool {
    from.is_none_or(|t| s.added_at >= t)
}

fn same(a: Option<f64>, b: Option<f64>) -> bool {
    matches!((a, b), (Some(x), Some(y)) if (x - y).abs() <= 1e-9 * x.abs().max(1.0))
}

impl StopBook {
    /// A book whose stops added before `t` keep only what their events
    /// said ([`Seen`]), not their path (a default book keeps every path).
    pub fn paths_from(t: DateTime<Utc>) -> StopBook {
        StopBook {
            paths_from: Some(t),
            ..StopBook::default()
        }
    }

    /// Takes the stops still open, in the order they were opened.
    pub fn take_open(&mut self) -> Vec<Stop> {
        self.by_exec.clear();
        self.open.take_all()
    }

    /// Opens `s`; returns its sequence number.
    fn open(&mut self, s: Stop) -> u64 {
        let key = s.execution_id.clone().map(|id| (id, s.source));
        let seq = self.open.push(s);
        if let Some((id, source)) = key {
            match self.by_exec.entry(id) {
                Entry::Occupied(e) => e.into_mut().push(source, seq),
                Entry::Vacant(e) => {
                    e.insert(Seqs::One(source, seq));
                }
            }
        }
        seq
    }

    /// Takes the stops that ended since the last call.
    pub fn take_done(&mut self) -> Vec<Stop> {
        std::mem::take(&mut self.done)
    }

    /// Swaps the stops that ended since the last call with `spare` (empty):
    /// the caller drains them and gives the room back the next time.
    pub fn swap_done(&mut self, spare: &mut Vec<Stop>) {
        debug_assert!(spare.is_empty());
        std::mem::swap(&mut self.done, spare);
    }

    /// Takes the unattributed events seen since the last call.
    pub fn take_strays(&mut self) -> Vec<Stray> {
        std::mem::take(&mut self.strays)
    }

    /// The open stop of `r`'s source a line without an execution id is
    /// about: the only candidate with its symbol (if it names one), else the
    /// only one whose values the line repeats.
    fn by_values(&self, r: &StopLine, action: &str) -> Option<u64> {
        let candidates: Vec<u64> = self
            .open
            .iter()
            .filter(|(_, s)| *s.source == *r.source && (r.symbol.is_none() || s.symbol == r.symbol))
            .map(|(i, _)| i)
            .collect();
        if candidates.len() == 1 {
            return Some(candidates[0]);
        }
        let last = |s: &Stop| (s.seen.peak, s.seen.stop);
        let [was] = numbers(r.metadata.as_deref(), ["previous_stop"]);
        let fits = |s: &Stop| match action {
            "ACTIVATE" => !s.activated() && same(s.entry, r.entry_premium),
            "UPDATE" => s.activated() && same(last(s).1, was),
            "TRIGGER" => {
                let (peak, stop) = last(s);
                same(stop, r.stop_premium) && same(peak, r.highest_premium)
            }
            _ => false,
        };
        let mut fitting = candidates
            .into_iter()
            .filter(|i| self.open.get(*i).is_some_and(fits));
        match (fitting.next(), fitting.next()) {
            (Some(i), None) => Some(i),
            _ => None,
        }
    }

    fn end(&mut self, seq: u64, how: End, at: DateTime<Utc>) {
        let Some(mut s) = self.open.remove(seq) else {
            return;
        };
        if let Some(id) = &s.execution_id
            && self
                .by_exec
                .get_mut(&**id)
                .is_some_and(|seqs| seqs.remove(seq))
        {
            self.by_exec.remove(&**id);
        }
        s.ended = Some((how, at));
        self.done.push(s);
    }

    /// The activation threshold and trailing distance an add line's
    /// metadata gives.
    fn setting_of(&mut self, metadata: Option<&str>) -> [Option<f64>; 2] {
        let text = metadata.unwrap_or_default();
        if let Some((last, setting)) = &self.last_setting
            && **last == *text
        {
            return *setting;
        }
        let setting = numbers(metadata, ["activation_pct", "trailing_pct"]);
        self.last_setting = Some((text.into(), setting));
        setting
    }

    /// Applies one row.
    pub fn feed(&mut self, r: &Row) {
        if self.restart(r) || r.component != "trailing_stop" {
            return;
        }
        self.feed_line(&StopLine::of(r));
    }

    /// Ends every open stop of `r`'s source if `r` is an engine restart
    /// (`circuit_breaker_init`): the engine keeps its stops in memory.
    /// Whether it was one.
    pub fn restart(&mut self, r: &Row) -> bool {
        if r.event_type != "circuit_breaker_init" {
            return false;
        }
        let ending: Vec<u64> = self
            .open
            .iter()
            .filter(|(_, s)| *s.source == *r.source)
            .map(|(i, _)| i)
            .collect();
        for seq in ending {
            self.end(seq, End::Restart, r.timestamp);
        }
        true
    }

    /// Applies one trailing stop's line.
    pub fn feed_line(&mut self, r: &StopLine) {
        let action = r.action.unwrap_or_default();
        let point = Point {
            at: r.timestamp,
            action,
            current: r.current_premium,
            peak: r.highest_premium,
            stop: r.stop_premium,
        };
        if action == "ADD" {
            let mut s = Stop::starting_at(r);
            [s.activation_pct, s.trailing_pct] = self.setting_of(r.metadata.as_deref());
            s.take(point, keeps_path(self.paths_from, &s));
            self.open(s);
            return;
        }
        let idx = match &r.execution_id {
            Some(id) => self
                .by_exec
                .get(&**id)
                .and_then(|seqs| seqs.newest(r.source)),
            None => self.by_values(r, action),
        };
        let idx = match idx {
            Some(i) => i,
            // A stop added before the data read: the line names its
            // execution, so it is that stop, started here.
            None if r.execution_id.is_some() => self.open(Stop::starting_at(r)),
            None => {
                *self.unattributed.entry(r.source.to_string()).or_default() += 1;
                self.strays.push(Stray {
                    at: r.timestamp,
                    action,
                    symbol: r.symbol,
                });
                return;
            }
        };
        let keep_from = self.paths_from;
        let Some(s) = self.open.get_mut(idx) else {
            return;
        };
        if s.entry.is_none() {
            s.entry = r.entry_premium;
        }
        if s.symbol.is_none() {
            s.symbol = r.symbol;
        }
        s.take(point, keeps_path(keep_from, s));
        if action == "TRIGGER" {
            self.end(idx, End::Triggered, r.timestamp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::row::intern;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_769_000_000 + s, 0).unwrap()
    }

    fn stop_row(s: i64, action: &str, exec: Option<&str>, sym: Option<&str>) -> Row {
        Row {
            event_type: intern(&format!("trailing_stop_{}", action.to_lowercase())),
            component: "trailing_stop",
            timestamp: at(s),
            action: Some(intern(action)),
            execution_id: exec.map(Into::into),
            symbol: sym.map(intern),
            source: "e",
            entry_premium: (action == "ADD").then_some(2.0),
            highest_premium: (action != "ADD").then_some(2.2),
            stop_premium: (action != "ADD").then_some(2.1),
            current_premium: (action == "TRIGGER").then_some(2.09),
            ..Row::default()
        }
    }

    /// Each add line's setting is its own, read from its metadata, when
    /// the setting changes between adds and changes back.
    #[test]
    fn each_add_gets_the_setting_of_its_own_line() {
        let setting = |a: f64, t: f64| format!(r#"{{"activation_pct":{a},"trailing_pct":{t}}}"#);
        let metas = [
            setting(2.0, 1.5),
            setting(3.0, 1.0),
            setting(2.0, 1.5),
            String::new(),
        ];
        let rows: Vec<Row> = metas
            .iter()
            .enumerate()
            .map(|(i, m)| Row {
                metadata: (!m.is_empty()).then(|| m.as_str().into()),
                ..stop_row(i as i64, "ADD", Some(&format!("x-{i}")), Some("SPY"))
            })
            .collect();
        let (stops, _) = rebuild(&rows);
        let got: Vec<_> = stops
            .iter()
            .map(|s| (s.activation_pct, s.trailing_pct))
            .collect();
        assert_eq!(
            got,
            [
                (Some(2.0), Some(1.5)),
                (Some(3.0), Some(1.0)),
                (Some(2.0), Some(1.5)),
                (None, None)
            ]
        );
    }

    /// Open stops keep their numbers and their order whichever ends first.
    #[test]
    fn open_stops_keep_numbers_and_order() {
        let stop =
            |sym: &str| Stop::starting_at(&StopLine::of(&stop_row(0, "ADD", None, Some(sym))));
        let mut open = OpenStops::default();
        let seqs: Vec<u64> = ["A", "B", "C", "D"].map(|s| open.push(stop(s))).into();
        assert_eq!(seqs, [0, 1, 2, 3]);
        let sym = |s: Option<&Stop>| s.and_then(|s| s.symbol);
        assert_eq!(sym(open.remove(1).as_ref()), Some("B"));
        assert_eq!(sym(open.remove(0).as_ref()), Some("A"));
        assert!(open.remove(0).is_none() && open.get(1).is_none());
        assert_eq!(open.push(stop("E")), 4, "numbers are never reused");
        assert_eq!(sym(open.get(3)), Some("D"));
        let order: Vec<(u64, Option<Sym>)> = open.iter().map(|(i, s)| (i, s.symbol)).collect();
        assert_eq!(order, [(2, Some("C")), (3, Some("D")), (4, Some("E"))]);
        let all: Vec<Option<Sym>> = open.take_all().into_iter().map(|s| s.symbol).collect();
        assert_eq!(all, [Some("C"), Some("D"), Some("E")]);
        assert_eq!(open.push(stop("F")), 5);
    }

    /// One execution id added twice, and again by another source: a line
    /// goes to its source's newest open stop of that id, and after that one
    /// ends, to the older.
    #[test]
    fn an_execution_added_twice_and_by_another_source() {
        let other = |mut r: Row| {
            r.source = "f";
            r
        };
        let rows = vec![
            stop_row(0, "ADD", Some("a"), Some("SPY")),
            stop_row(1, "ADD", Some("a"), Some("QQQ")),
            other(stop_row(2, "ADD", Some("a"), Some("IWM"))),
            stop_row(3, "TRIGGER", Some("a"), None),
            stop_row(4, "ACTIVATE", Some("a"), None),
            other(stop_row(5, "TRIGGER", Some("a"), None)),
            stop_row(6, "TRIGGER", Some("a"), None),
        ];
        let (stops, unattributed) = rebuild(&rows);
        assert!(unattributed.is_empty(), "{unattributed:?}");
        let ended: Vec<_> = stops
            .iter()
            .map(|s| (s.source, s.symbol, s.path.len(), s.ended.map(|e| e.1)))
            .collect();
        assert_eq!(
            ended,
            [
                ("e", Some("SPY"), 3, Some(at(6))),
                ("e", Some("QQQ"), 2, Some(at(3))),
                ("f", Some("IWM"), 2, Some(at(5))),
            ]
        );
    }

    /// A book that keeps no paths ends the same stops, ties the same lines
    /// without an execution id, and says the same of each, as one that does.
    #[test]
    fn stops_without_paths_say_what_their_paths_say() {
        let mut rows = [
            stop_row(0, "ADD", Some("a"), Some("SPY")),
            stop_row(1, "ADD", Some("b"), Some("QQQ")),
            stop_row(2, "ACTIVATE", Some("a"), Some("SPY")),
            stop_row(3, "UPDATE", None, Some("QQQ")),
            stop_row(4, "UPDATE", Some("a"), None),
            stop_row(5, "TRIGGER", None, Some("SPY")),
            stop_row(6, "TRIGGER", Some("c"), Some("IWM")),
            stop_row(7, "UPDATE", None, None),
        ];
        rows[2].stop_premium = Some(2.05);
        rows[4].highest_premium = Some(2.4);
        rows[4].stop_premium = None;
        let feed = |mut book: StopBook| {
            rows.iter().for_each(|r| book.feed(r));
            let mut all = book.take_done();
            all.extend(book.take_open());
            (all, book.unattributed)
        };
        let (with, with_u) = feed(StopBook::default());
        let (without, without_u) = feed(StopBook::paths_from(at(100)));
        assert_eq!(with_u, without_u);
        assert_eq!(with.len(), 3);
        for (w, o) in with.iter().zip(&without) {
            assert!(o.path.is_empty() && !w.path.is_empty());
            assert_eq!(
                Stop {
                    path: Vec::new(),
                    ..w.clone()
                },
                *o
            );
            let (activated, peak, stop, last) = w.as_of(DateTime::<Utc>::MAX_UTC);
            assert_eq!(
                (activated, peak, stop),
                (o.activated(), o.seen.peak, o.seen.stop)
            );
            assert_eq!(last, o.last_at());
            assert_eq!(w.path[0].action == "ADD", o.seen.added);
            assert_eq!(w.trigger().map(|t| (t.current, t.stop)), o.seen.trigger);
            assert_eq!(w.captured_pct(), o.captured_pct());
        }
        assert!(with[0].captured_pct().is_some() && !with[1].seen.added && with[2].seen.added);
    }

    #[test]
    fn lifecycle_by_execution_symbol_and_restart() {
        let rows = vec![
            stop_row(0, "ADD", Some("a"), Some("SPY")),
            stop_row(1, "ADD", Some("b"), Some("QQQ")),
            stop_row(2, "ACTIVATE", Some("a"), Some("SPY")),
            stop_row(3, "UPDATE", None, Some("QQQ")),
            stop_row(4, "UPDATE", None, None),
            stop_row(5, "TRIGGER", Some("a"), None),
            Row {
                event_type: "circuit_breaker_init",
                component: "circuit_breaker",
                timestamp: at(9),
                source: "e",
                ..Row::default()
            },
        ];
        let (stops, unattributed) = rebuild(&rows);
        assert_eq!(
            unattributed.get("e"),
            Some(&1),
            "two open stops, no exec, no symbol"
        );
        assert_eq!(stops.len(), 2);
        assert_eq!(stops[0].ended, Some((End::Triggered, at(5))));
        assert_eq!(stops[1].ended, Some((End::Restart, at(9))));
        assert!(stops[1].activated());
        let cap = stops[0].captured_pct().unwrap();
        assert!((cap - 4.5).abs() < 1e-9, "{cap}");
        assert!(stops[0].alive_at(at(4)) && !stops[0].alive_at(at(5)));
        assert_eq!(stops[0].as_of(at(1)), (false, None, None, at(0)));
        assert_eq!(stops[0].as_of(at(2)), (true, Some(2.2), Some(2.1), at(2)));
    }
}
