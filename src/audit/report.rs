//! `risktail report`: the audit's five historical questions for a period, per
//! UTC day and in total.
//!
//! 1. Trailing-stop triggers versus other exits: stops added, activated,
//!    triggered, and those that ended some other way (no trigger line: a time
//!    exit, a manual close or an engine restart); triggers per symbol.
//! 2. Entries that met an open breaker: limit checks (each is an entry the
//!    engine attempted) while the source's breaker was OPEN or HALF_OPEN.
//! 3. The activation threshold's effectiveness: per activation/trailing
//!    setting, the share of stops that activated and triggered and the
//!    premium captured at the trigger relative to entry.
//! 4. Whether the limits prevented trouble: rejections by limit type and how
//!    far over the limit each attempt was.
//! 5. The breaker's uptime: time in each state, how often it opened, the mean
//!    time from OPEN to CLOSED, and resets by engine restart.
//!
//! Stops and breaker outages count on the day they began.
//!
//! The five questions (and the exits by rule) share one pass over each day,
//! and their tallies are one structure.

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use rustc_hash::FxBuildHasher;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

use super::AuditError;
use super::alerts::Exits;
use super::breaker::{self, Transition, secs};
use super::checks::{Between, Check, Tally, before, by_source, of_source};
use super::load::{Day, Days, ReadStats, Row, TableFiles};
use super::row::{StopLine, Sym, intern, same, sym_cmp};
use super::stops::{Stop, StopBook, Stray};

/// Per activation/trailing setting.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Setting {
    /// Activation threshold, percent (null: not in the add line).
    pub activation_pct: Option<f64>,
    /// Trailing distance, percent.
    pub trailing_pct: Option<f64>,
    /// Stops added.
    pub stops: u64,
    /// Of those, activated.
    pub activated: u64,
    /// Of those, triggered.
    pub triggered: u64,
    /// Mean premium captured at the trigger relative to entry, percent.
    pub captured_mean_pct: Option<f64>,
    /// Median of the same.
    pub captured_median_pct: Option<f64>,
}

/// Rejections of one limit type.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rejections {
    /// The limit (`other` when the reason named none).
    pub limit_type: String,
    /// How many entries it rejected.
    pub count: u64,
    /// Mean excess over the limit, percent of the limit.
    pub over_mean_pct: Option<f64>,
    /// Largest excess.
    pub over_max_pct: Option<f64>,
}

/// The breaker of one source.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct BreakerStats {
    /// Seconds in each state.
    pub seconds: BTreeMap<String, f64>,
    /// CLOSED → OPEN.
    pub opened: u64,
    /// HALF_OPEN → OPEN.
    pub reopened: u64,
    /// Outages that ended with CLOSED after the test trades.
    pub recovered: u64,
    /// Mean time from OPEN to CLOSED of those, seconds.
    pub mean_recovery_s: Option<f64>,
    /// Engine restarts that reset an OPEN or HALF_OPEN breaker.
    pub restart_resets: u64,
}

/// The answers for one day, or for the whole period (`day` null).
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct Answers {
    /// The UTC day.
    pub day: Option<NaiveDate>,
    /// Stops added.
    pub stops_added: u64,
    /// Stops activated.
    pub stops_activated: u64,
    /// Stops triggered.
    pub stops_triggered: u64,
    /// Stops that ended without a trigger line (or are still open): closed
    /// by another exit, which risk lines do not say (the engine's alerts
    /// table does), or still open.
    pub stops_other_exit: u64,
    /// Stop events (activations, updates, triggers) whose line names no
    /// execution and whose symbol and values fit no single open stop; their
    /// activations and triggers are counted above all the same.
    pub stop_events_unattributed: u64,
    /// Triggers per symbol.
    pub triggers_by_symbol: BTreeMap<String, u64>,
    /// How the stops' positions were closed, by the rule of the engine's
    /// CLOSE decision in its alerts table (`unmatched`: no decision found);
    /// null without `[audit] alerts_uri`, since risk lines do not say it.
    pub exits_by_rule: Option<BTreeMap<String, u64>>,
    /// Entries checked by the limits.
    pub entries_checked: u64,
    /// Of those, allowed.
    pub entries_allowed: u64,
    /// Checked while the breaker was OPEN.
    pub entries_breaker_open: u64,
    /// Checked while it was HALF_OPEN.
    pub entries_breaker_half_open: u64,
    /// (OPEN + HALF_OPEN) / checked, percent.
    pub entries_breaker_not_closed_pct: Option<f64>,
    /// Per stop setting.
    pub settings: Vec<Setting>,
    /// Per limit type.
    pub rejections: Vec<Rejections>,
    /// Health warnings per limit type.
    pub health_warnings: BTreeMap<String, u64>,
    /// Per source.
    pub breaker: BTreeMap<String, BreakerStats>,
}

/// The report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// First day.
    pub from: NaiveDate,
    /// Last day.
    pub to: NaiveDate,
    /// Table version read.
    pub table_version: Option<u64>,
    /// Per day that has data.
    pub days: Vec<Answers>,
    /// The whole period.
    pub total: Answers,
    /// What was read.
    #[serde(skip)]
    pub read: ReadStats,
    /// Events read in the period.
    pub events: u64,
    /// The rows of the charted days (the period's last [`CHART_DAYS`]).
    #[serde(skip)]
    pub rows: Vec<Row>,
    /// The breaker's transitions per source (with the one in force at the start).
    #[serde(skip)]
    pub timelines: BTreeMap<String, Vec<Transition>>,
    /// The stops added on the charted days.
    #[serde(skip)]
    pub stops: Vec<Stop>,
}

/// Days whose rows and stops are kept for charts: the period's last ones.
pub const CHART_DAYS: usize = 7;

fn day_start(d: NaiveDate) -> DateTime<Utc> {
    d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc()
}

/// Builds the report for `days` (open ends: the table's first and last day).
///
/// Reads one day's partition at a time and keeps only running tallies, the
/// breaker's transitions, the stops still open and, with `charts`, the rows
/// and stops of the last [`CHART_DAYS`] days (what the HTML page draws), so a
/// year costs the memory of a day.
pub async fn compute(
    files: &TableFiles,
    days: Days,
    sources: &[String],
    exits: Option<Exits>,
    charts: bool,
) -> Result<Report, AuditError> {
    let Days { from, to } = days;
    let all_days = files.days();
    let (Some(first), Some(last)) = (all_days.first().copied(), all_days.last().copied()) else {
        return Err(AuditError::Empty(files.uri.clone()));
    };
    let from = from.unwrap_or(first);
    let to = to.unwrap_or(last);
    if from > to {
        return Err(AuditError::Period(format!(
            "--from {from} is after --to {to}"
        )));
    }
    let period: Vec<NaiveDate> = all_days
        .iter()
        .copied()
        .filter(|d| *d >= from && *d <= to)
        .collect();
    let mut pass = Pass::new(period.clone(), sources, exits, charts);
    // The state in force when the period starts, from the last earlier day
    // that changed it.
    let (earlier, r) = breaker::last_before(files, from, sources).await?;
    pass.add_read(r);
    pass.timelines = earlier.into_iter().map(|(s, t)| (s, vec![t])).collect();
    let charted = pass.charted.clone();
    let pass = files
        .for_each_day(&period, &charted, sources, pass, |pass, day, d, r| {
            pass.add_read(r);
            pass.day(day, d);
        })
        .await?;
    Ok(pass.finish(from, to, to >= last, files.version))
}

/// One pass over the period's days: the tallies per day and in total, the
/// breaker's timelines, the stops' lives, and what the charts show.
struct Pass {
    sources: Vec<String>,
    exits: Option<Exits>,
    /// The days whose rows and stops are kept for the charts.
    charted: Vec<NaiveDate>,
    accs: BTreeMap<NaiveDate, Acc>,
    total: Acc,
    book: StopBook,
    timelines: BTreeMap<String, Vec<Transition>>,
    chart_rows: Vec<Row>,
    chart_stops: Vec<Stop>,
    events: u64,
    last_seen: BTreeMap<String, DateTime<Utc>>,
    read: ReadStats,
    /// The stops that ended, being credited: kept between days with its
    /// room, which a day's few thousand stops would otherwise grow again.
    ended: Vec<Stop>,
    /// Takes the rows the pass is done with, to free them.
    dropper: Option<std::sync::mpsc::SyncSender<(Vec<Row>, Vec<StopLine>)>>,
}

impl Pass {
    fn new(
        mut period: Vec<NaiveDate>,
        sources: &[String],
        exits: Option<Exits>,
        charts: bool,
    ) -> Pass {
        let mut accs: BTreeMap<NaiveDate, Acc> =
            period.iter().map(|d| (*d, Acc::default())).collect();
        let mut total = Acc::default();
        if exits.is_some() {
            for a in accs.values_mut().chain([&mut total]) {
                a.a.exits_by_rule = Some(BTreeMap::new());
            }
        }
        let charted = match charts {
            true => period.split_off(period.len().saturating_sub(CHART_DAYS)),
            false => Vec::new(),
        };
        // Only the charted days' stops are drawn, with their paths.
        let paths_from = charted
            .first()
            .map_or(DateTime::<Utc>::MAX_UTC, |d| day_start(*d));
        let book = StopBook::paths_from(paths_from);
        Pass {
            sources: sources.to_vec(),
            exits,
            charted,
            accs,
            total,
            book,
            timelines: BTreeMap::new(),
            chart_rows: Vec::new(),
            chart_stops: Vec::new(),
            events: 0,
            last_seen: BTreeMap::new(),
            read: ReadStats::default(),
            ended: Vec::new(),
            dropper: crate::freeing::freer("report-free"),
        }
    }

    fn add_read(&mut self, r: ReadStats) {
        self.read.files_total = r.files_total;
        self.read.files_read += r.files_read;
        self.read.rows += r.rows;
    }

    /// One day's rows, stop lines and checks (of the sources asked for),
    /// in the audit's order.
    fn day(&mut self, day: NaiveDate, d: Day) {
        let Day {
            rows,
            checks,
            stops,
            tally,
            events,
        } = d;
        self.events += events as u64;
        for a in self.accs.get_mut(&day).into_iter().chain([&mut self.total]) {
            a.tally(&tally);
        }
        let rows_of = by_source(&rows, |r| r.source);
        let stops_of = by_source(&stops, |l| l.source);
        let mut checks_of = by_source(&checks, |c| c.source);
        // Sources in the order the rows' sort gives them: the stops they end
        // are credited in that order.
        let mut sources: Vec<Sym> = (rows_of.iter().map(|x| x.0))
            .chain(stops_of.iter().map(|x| x.0))
            .collect();
        sources.sort_by(|a, b| sym_cmp(a, b));
        sources.dedup_by(|a, b| same(a, b));
        for source in sources {
            let mine = (checks_of.iter().position(|x| same(x.0, source)))
                .map_or(&[][..], |i| checks_of.swap_remove(i).1);
            let (r, l) = (of_source(&rows_of, source), of_source(&stops_of, source));
            self.source_day(day, r, l, mine);
        }
        // Sources with checks and nothing else that day.
        for (_, mine) in checks_of {
            self.source_day(day, &[], &[], mine);
        }
        self.take_ended();
        if self.charted.contains(&day) {
            self.chart_rows.extend(rows);
        } else if let Some(dropper) = &self.dropper {
            // Freeing a day's rows was a tenth of the pass: another thread
            // does it. (Not the stops: freed there, the memory this thread
            // allocates them from cost it more than it saved, 0.94x the CPU
            // freed here.)
            let _ = dropper.send((rows, stops));
        }
    }

    /// Credits the stops that ended and the stop lines tied to none.
    fn take_ended(&mut self) {
        let mut ended = std::mem::take(&mut self.ended);
        self.book.swap_done(&mut ended);
        for s in ended.drain(..) {
            self.credit(s);
        }
        self.ended = ended;
        for s in self.book.take_strays() {
            if let Some(a) = self.accs.get_mut(&s.at.date_naive()) {
                a.stray(&s);
                self.total.stray(&s);
            }
        }
    }

    /// One source's rows, stop lines and checks of a day (any may be empty,
    /// not all), each sorted.
    fn source_day(&mut self, day: NaiveDate, rows: &[Row], lines: &[StopLine], checks: &[Check]) {
        let Pass {
            accs,
            total,
            book,
            timelines,
            last_seen,
            ..
        } = self;
        let places = [
            rows.first().map(Row::place),
            lines.first().map(StopLine::place),
        ];
        let Some(source) = (places.into_iter().flatten().map(|p| p.0))
            .chain(checks.first().map(|c| c.source))
            .next()
        else {
            return;
        };
        let mut acc = accs.get_mut(&day);
        // Everything is in the audit's order: so the breaker's state at a
        // row is the last transition of its source seen so far (what
        // `breaker::state_at` would find), kept as the rows go; the checks
        // before each transition are counted under the state before it, and
        // the stop lines before a row are taken before it.
        let mut state = (timelines.get(source))
            .and_then(|t| t.last())
            .map(|t| intern(&t.to));
        let mut between = Between::new(checks);
        let mut count = |state: Option<Sym>, n: u64| {
            for a in acc.as_deref_mut().into_iter().chain([&mut *total]) {
                a.checked_in(state, n);
            }
        };
        let mut left = lines;
        for row in rows {
            let n = before(left, row.place(), StopLine::place);
            left[..n].iter().for_each(|l| book.feed_line(l));
            left = &left[n..];
            if let Some(t) = Transition::from_row(row) {
                count(state, between.up_to(row.place()));
                // A transition's state is its row's `new_state`.
                state = row.new_state;
                timelines.entry(source.to_string()).or_default().push(t);
            }
            // A stop's row (on a charted day) was taken as its line.
            if row.component != "trailing_stop" {
                book.feed(row);
            }
        }
        left.iter().for_each(|l| book.feed_line(l));
        count(state, between.rest());
        let at = [
            rows.last().map(|r| r.timestamp),
            lines.last().map(|l| l.timestamp),
            checks.last().map(|c| c.timestamp),
        ];
        if let Some(at) = at.into_iter().flatten().max() {
            match last_seen.get_mut(source) {
                Some(seen) => *seen = (*seen).max(at),
                None => {
                    last_seen.insert(source.to_string(), at);
                }
            }
        }
    }

    /// A stop whose life ended (or the period did): counted on the day it
    /// was added, with the rule that closed it where the alerts say.
    fn credit(&mut self, s: Stop) {
        let day = s.added_at.date_naive();
        let rule = self
            .exits
            .as_mut()
            .map(|x| x.rule_of(&s).unwrap_or_else(|| "unmatched".into()));
        if let Some(a) = self.accs.get_mut(&day) {
            let ended = Ended::of(&s);
            a.stop(&ended);
            self.total.stop(&ended);
            if let Some(rule) = rule {
                for acc in [a, &mut self.total] {
                    *acc.a
                        .exits_by_rule
                        .get_or_insert_with(BTreeMap::new)
                        .entry(rule.clone())
                        .or_default() += 1;
                }
            }
        }
        if self.charted.contains(&day) {
            self.chart_stops.push(s);
        }
    }

    /// The report: stops still open are credited, and time is measured up
    /// to the last event of the data when the period reaches the table's
    /// last day (`at_end`), not into the future.
    fn finish(
        mut self,
        from: NaiveDate,
        to: NaiveDate,
        at_end: bool,
        version: Option<u64>,
    ) -> Report {
        for s in self.book.take_open() {
            self.credit(s);
        }
        self.chart_stops.sort_by_key(|s| s.added_at);
        let last_seen = &self.last_seen;
        let end_of = |s: &str| {
            let end = day_start(to) + TimeDelta::days(1);
            match last_seen.get(s) {
                Some(l) if at_end => end.min(*l),
                _ => end,
            }
        };
        let (timelines, sources) = (&self.timelines, &self.sources[..]);
        let days = std::mem::take(&mut self.accs)
            .into_iter()
            .map(|(day, acc)| {
                let b = breaker_stats(Some(day), timelines, sources, |s| {
                    let start = day_start(day);
                    (start, (start + TimeDelta::days(1)).min(end_of(s)))
                });
                acc.finish(Some(day), b)
            })
            .collect();
        let b = breaker_stats(None, timelines, sources, |s| (day_start(from), end_of(s)));
        Report {
            from,
            to,
            table_version: version,
            days,
            total: self.total.finish(None, b),
            events: self.events,
            read: self.read,
            rows: self.chart_rows,
            timelines: self.timelines,
            stops: self.chart_stops,
        }
    }
}

/// `part` as a percentage of `whole` (none of nothing).
pub fn share(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64 * 100.0)
}

fn mean(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// The median in `f64::total_cmp`'s order: the middle value, or the mean
/// of the two middle ones. Found by selection, not a sort: a year's stops
/// are a million values, and a sort of them was most of the report's last
/// 0.1 s, when the pass is over and one thread works.
fn median(mut v: Vec<f64>) -> Option<f64> {
    let n = v.len();
    if n == 0 {
        return None;
    }
    let (below, mid, _) = v.select_nth_unstable_by(n / 2, f64::total_cmp);
    let mid = *mid;
    if n % 2 == 1 {
        return Some(mid);
    }
    let low = below.iter().copied().max_by(f64::total_cmp).unwrap_or(mid);
    Some((low + mid) / 2.0)
}

/// Counts one more `key` (allocating the key only the first time: these
/// maps see a row or a stop each, and hold a handful of keys).
fn bump(counts: &mut BTreeMap<String, u64>, key: &str) {
    match counts.get_mut(key) {
        Some(n) => *n += 1,
        None => {
            counts.insert(key.to_owned(), 1);
        }
    }
}

/// What the tallies count of a stop whose life is known, read off its path
/// once for the day's tallies and the period's.
struct Ended {
    /// Its add is in the data read (else it was added before).
    added: bool,
    activated: bool,
    triggered: bool,
    symbol: Option<Sym>,
    activation_pct: Option<f64>,
    trailing_pct: Option<f64>,
    captured_pct: Option<f64>,
}

impl Ended {
    fn of(s: &Stop) -> Ended {
        Ended {
            added: s.seen.added,
            activated: s.activated(),
            triggered: s.seen.trigger.is_some(),
            symbol: s.symbol,
            activation_pct: s.activation_pct,
            trailing_pct: s.trailing_pct,
            captured_pct: s.captured_pct(),
        }
    }
}

/// Running tallies of one day or of the period.
#[derive(Debug, Default)]
struct Acc {
    a: Answers,
    /// Per setting: its tallies and the premiums captured, in the order
    /// first seen; `by_text` orders them for the report.
    settings: Vec<(Setting, Vec<f64>)>,
    /// The place in `settings` of each setting's text (the report's order).
    by_text: BTreeMap<(String, String), usize>,
    /// The place in `settings` of each (activation, trailing) seen, by its
    /// bits: a year holds a million stops and a handful of settings, so the
    /// text is made once per setting and a stop costs one hashed lookup.
    setting_of: HashMap<(Option<u64>, Option<u64>), usize, FxBuildHasher>,
    over: BTreeMap<String, Vec<Option<f64>>>,
}

impl Acc {
    /// A stop event tied to no stop: a trigger is a trigger all the same.
    fn stray(&mut self, s: &Stray) {
        let a = &mut self.a;
        a.stop_events_unattributed += 1;
        match s.action {
            "ACTIVATE" => a.stops_activated += 1,
            "TRIGGER" => {
                a.stops_triggered += 1;
                *a.triggers_by_symbol
                    .entry(s.symbol.unwrap_or("?").to_owned())
                    .or_default() += 1;
            }
            _ => {}
        }
    }

    /// A stop whose life is known (ended, or open at the end of the data).
    fn stop(&mut self, s: &Ended) {
        let a = &mut self.a;
        a.stops_added += u64::from(s.added);
        a.stops_activated += u64::from(s.activated);
        a.stops_triggered += u64::from(s.triggered);
        if s.triggered {
            bump(&mut a.triggers_by_symbol, s.symbol.unwrap_or("?"));
        } else {
            a.stops_other_exit += 1;
        }
        let bits = (
            s.activation_pct.map(f64::to_bits),
            s.trailing_pct.map(f64::to_bits),
        );
        let i = match self.setting_of.get(&bits) {
            Some(i) => *i,
            None => {
                let i = self.setting(s.activation_pct, s.trailing_pct);
                self.setting_of.insert(bits, i);
                i
            }
        };
        let Some((set, captured)) = self.settings.get_mut(i) else {
            return;
        };
        set.stops += 1;
        set.activated += u64::from(s.activated);
        set.triggered += u64::from(s.triggered);
        captured.extend(s.captured_pct);
    }

    /// The place in `settings` of a setting, by its text (values whose
    /// text is one, as two NaNs, are one setting), added if new.
    fn setting(&mut self, activation_pct: Option<f64>, trailing_pct: Option<f64>) -> usize {
        let text = (format!("{activation_pct:?}"), format!("{trailing_pct:?}"));
        if let Some(i) = self.by_text.get(&text) {
            return *i;
        }
        self.settings.push((
            Setting {
                activation_pct,
                trailing_pct,
                stops: 0,
                activated: 0,
                triggered: 0,
                captured_mean_pct: None,
                captured_median_pct: None,
            },
            Vec::new(),
        ));
        self.by_text.insert(text, self.settings.len() - 1);
        self.settings.len() - 1
    }

    /// What a day's limit checks and health warnings add, whatever the
    /// breaker's state.
    fn tally(&mut self, t: &Tally) {
        let a = &mut self.a;
        a.entries_checked += t.checked;
        a.entries_allowed += t.allowed;
        for (limit, n) in &t.warnings {
            match a.health_warnings.get_mut(*limit) {
                Some(m) => *m += n,
                None => {
                    a.health_warnings.insert((*limit).to_owned(), *n);
                }
            }
        }
        for (limit, excess) in &t.over {
            match self.over.get_mut(*limit) {
                Some(v) => v.extend_from_slice(excess),
                None => {
                    self.over.insert((*limit).to_owned(), excess.clone());
                }
            }
        }
    }

    /// `n` entries checked while the breaker was in `state`.
    fn checked_in(&mut self, state: Option<Sym>, n: u64) {
        match state {
            Some("OPEN") => self.a.entries_breaker_open += n,
            Some("HALF_OPEN") => self.a.entries_breaker_half_open += n,
            _ => {}
        }
    }

    fn finish(self, day: Option<NaiveDate>, breaker: BTreeMap<String, BreakerStats>) -> Answers {
        let mut a = self.a;
        a.day = day;
        a.breaker = breaker;
        a.entries_breaker_not_closed_pct = share(
            a.entries_breaker_open + a.entries_breaker_half_open,
            a.entries_checked,
        );
        let mut settings: Vec<_> = self.settings.into_iter().map(Some).collect();
        a.settings = self
            .by_text
            .into_values()
            .filter_map(|i| settings.get_mut(i)?.take())
            .map(|(mut s, c)| {
                s.captured_mean_pct = mean(&c);
                s.captured_median_pct = median(c);
                s
            })
            .collect();
        a.rejections = self
            .over
            .into_iter()
            .map(|(limit_type, v)| {
                let known: Vec<f64> = v.iter().flatten().copied().collect();
                Rejections {
                    limit_type,
                    count: v.len() as u64,
                    over_mean_pct: mean(&known),
                    over_max_pct: known.iter().copied().reduce(f64::max),
                }
            })
            .collect();
        a
    }
}

/// Question 5 for one day (`Some`) or the period (`None`); `span` gives each
/// source's measured time window.
fn breaker_stats(
    day: Option<NaiveDate>,
    timelines: &BTreeMap<String, Vec<Transition>>,
    sources: &[String],
    span: impl Fn(&str) -> (DateTime<Utc>, DateTime<Utc>),
) -> BTreeMap<String, BreakerStats> {
    let on = |t: DateTime<Utc>| day.is_none_or(|d| t.date_naive() == d);
    let mut out = BTreeMap::new();
    for s in sources {
        let Some(tl) = timelines.get(s) else { continue };
        let (from, to) = span(s);
        let mut b = BreakerStats {
            seconds: breaker::time_in_states(tl, breaker::state_at(tl, from), from, to),
            ..BreakerStats::default()
        };
        let mut recoveries = Vec::new();
        let mut outage: Option<DateTime<Utc>> = None;
        for t in tl {
            let counts = on(t.at);
            match (t.from.as_deref(), t.to.as_str()) {
                (Some("HALF_OPEN"), "OPEN") => b.reopened += u64::from(counts),
                (_, "OPEN") => {
                    b.opened += u64::from(counts);
                    outage = outage.or(Some(t.at));
                }
                (_, "CLOSED") => {
                    if let Some(start) = outage.take()
                        && on(start)
                    {
                        if t.restart_reset {
                            b.restart_resets += 1;
                        } else {
                            recoveries.push(secs(t.at - start));
                        }
                    } else if t.restart_reset && counts {
                        b.restart_resets += 1;
                    }
                }
                _ => {}
            }
        }
        b.recovered = recoveries.len() as u64;
        b.mean_recovery_s = mean(&recoveries);
        if b != BreakerStats::default() {
            out.insert(s.clone(), b);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stop lines and breaker rows are taken in the audit's order: an
    /// engine restart between a stop's add line and its trigger line ends
    /// the stop there, and the trigger belongs to a stop of its own.
    #[test]
    fn a_restart_between_stop_lines_ends_the_stop() {
        let day = NaiveDate::from_ymd_opt(2026, 3, 2).expect("a day");
        let at = |s: i64| day_start(day) + TimeDelta::seconds(s);
        let line = |s: i64, action: Sym| StopLine {
            source: "e",
            timestamp: at(s),
            source_file: "f",
            source_offset: s,
            action: Some(action),
            execution_id: Some("a".into()),
            symbol: Some("SPY"),
            entry_premium: Some(2.0),
            ..StopLine::default()
        };
        let restart = Row {
            event_type: "circuit_breaker_init",
            component: "circuit_breaker",
            timestamp: at(5),
            new_state: Some("CLOSED"),
            source: "e",
            source_file: "f",
            source_offset: 5,
            ..Row::default()
        };
        let mut pass = Pass::new(vec![day], &["e".into()], None, false);
        let d = Day {
            rows: vec![restart],
            stops: vec![line(1, "ADD"), line(10, "TRIGGER")],
            events: 3,
            ..Day::default()
        };
        pass.day(day, d);
        let t = pass.finish(day, day, true, None).total;
        let got = (t.stops_added, t.stops_triggered, t.stops_other_exit);
        assert_eq!(got, (1, 1, 1), "ended by the restart, then a trigger");
    }

    #[test]
    fn median_and_mean() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(vec![]), None);
        // Against a sort, on lists of every parity with repeats and signs.
        let mut x = 0x2545_f491_u64;
        for n in 1..200 {
            let v: Vec<f64> = (0..n)
                .map(|_| {
                    x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                    ((x >> 40) % 97) as f64 - 48.5
                })
                .collect();
            let mut sorted = v.clone();
            sorted.sort_by(f64::total_cmp);
            let want = if n % 2 == 1 {
                sorted[n / 2]
            } else {
                (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
            };
            assert_eq!(median(v.clone()), Some(want), "{v:?}");
        }
        assert_eq!(mean(&[1.0, 2.0]), Some(1.5));
        assert_eq!(share(1, 4), Some(25.0));
        assert_eq!(share(1, 0), None);
    }
}
