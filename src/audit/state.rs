//! `risktail state --at T`: the risk state of each source at one instant, as
//! the engine's own lines recorded it — the breaker's state and the transition
//! that put it there, the failures inside the breaker's window, the trailing
//! stops alive, the limit rejections and health warnings of the hour before —
//! plus the flag the audit exists for: an engine restart that reset an OPEN
//! breaker.
//!
//! Reads the partitions of the lookback (default 48 h before T) and, only for
//! a source whose breaker did not change inside it, walks back one day at a
//! time until its last transition is found.

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;
use std::collections::BTreeMap;

use super::AuditError;
use super::breaker::{self, Transition};
use super::load::{Days, ReadStats, Row, TableFiles};
use super::stops::{self, Stop};

/// The breaker's window when no line said it (the engine's default).
pub const DEFAULT_WINDOW_S: i64 = 300;

/// A recorded failure.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Failure {
    /// When.
    pub at: DateTime<Utc>,
    /// The count the breaker printed.
    pub count: Option<i32>,
    /// Why.
    pub reason: Option<String>,
}

/// A trailing stop as it stood at the instant.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StopAt {
    /// Execution.
    pub execution_id: Option<String>,
    /// Instrument.
    pub symbol: Option<String>,
    /// When added.
    pub added_at: DateTime<Utc>,
    /// Entry premium.
    pub entry: Option<f64>,
    /// Peak so far.
    pub peak: Option<f64>,
    /// Stop level.
    pub stop: Option<f64>,
    /// Whether activated.
    pub activated: bool,
    /// Its last event at or before the instant.
    pub last_update: DateTime<Utc>,
}

/// A limit event of the hour before.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LimitEvent {
    /// When.
    pub at: DateTime<Utc>,
    /// `portfolio_limit_check` (a rejection) or `portfolio_health_warning`.
    pub event_type: String,
    /// Which limit.
    pub limit_type: Option<String>,
    /// Value.
    pub current_value: Option<f64>,
    /// Limit.
    pub limit_value: Option<f64>,
    /// Instrument.
    pub symbol: Option<String>,
    /// The engine's reason.
    pub reason: Option<String>,
}

/// A restart that reset an OPEN or HALF_OPEN breaker.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResetFlag {
    /// The restart.
    pub at: DateTime<Utc>,
    /// The state it wiped out.
    pub was: String,
    /// Since when the breaker had been in that state (if seen).
    pub since: Option<DateTime<Utc>>,
    /// Whether this reset is what put the breaker in its state at the instant.
    pub in_force: bool,
}

/// One source's state at the instant.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceAt {
    /// The source.
    pub source: String,
    /// The breaker's state (null: never seen).
    pub breaker: Option<String>,
    /// The transition that put it there.
    pub transition: Option<Transition>,
    /// The breaker's window.
    pub window_s: i64,
    /// Failures recorded inside the window before the instant.
    pub failures: Vec<Failure>,
    /// Stops alive.
    pub stops: Vec<StopAt>,
    /// Rejections and warnings of the hour before.
    pub limits: Vec<LimitEvent>,
    /// Restarts that reset an OPEN breaker, within the lookback.
    pub resets: Vec<ResetFlag>,
    /// Stop events that could not be tied to a stop.
    pub unattributed_stop_events: usize,
}

/// The whole answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StateAt {
    /// The instant.
    pub at: DateTime<Utc>,
    /// The table's version read.
    pub table_version: Option<u64>,
    /// How far back stops and resets were looked for.
    pub lookback_hours: i64,
    /// Per source.
    pub sources: Vec<SourceAt>,
    /// What was read.
    #[serde(skip)]
    pub read: ReadStats,
}

/// Answers `state --at`. `sources` are the names to report (the config's);
/// a source with no data gets an empty entry, so silence is visible.
pub async fn compute(
    files: &TableFiles,
    at: DateTime<Utc>,
    sources: &[String],
    lookback: TimeDelta,
) -> Result<StateAt, AuditError> {
    let start = at - lookback;
    let days = Days {
        from: Some(start.date_naive()),
        to: Some(at.date_naive()),
    };
    let only = (sources.len() == 1).then(|| sources[0].as_str());
    let (mut rows, mut read) = files.read(days, only).await?;
    rows.retain(|r| r.timestamp <= at && sources.iter().any(|s| **s == *r.source));
    let mut timelines = breaker::timelines(&rows);
    // Walk back for the sources whose breaker last changed before the lookback.
    let quiet: Vec<String> = sources
        .iter()
        .filter(|s| {
            timelines
                .get(*s)
                .is_none_or(|t| breaker::at(t, at).is_none())
        })
        .cloned()
        .collect();
    let (earlier, r) = breaker::last_before(files, start.date_naive(), &quiet).await?;
    read.files_read += r.files_read;
    read.rows += r.rows;
    for (s, t) in earlier {
        timelines.entry(s).or_default().insert(0, t);
    }
    let mut by_source: BTreeMap<&str, Vec<&Row>> = BTreeMap::new();
    for r in &rows {
        by_source.entry(r.source).or_default().push(r);
    }
    let (all_stops, unattributed) = stops::rebuild(&rows);
    let out = sources
        .iter()
        .map(|s| {
            let mine = by_source.get(s.as_str()).cloned().unwrap_or_default();
            let tl = timelines.get(s).cloned().unwrap_or_default();
            let mut one = source_at(s, &mine, &tl, at, start);
            one.stops = stops_alive(&all_stops, s, at);
            one.unattributed_stop_events = unattributed.get(s).copied().unwrap_or(0);
            one
        })
        .collect();
    Ok(StateAt {
        at,
        table_version: files.version,
        lookback_hours: lookback.num_hours(),
        sources: out,
        read,
    })
}

/// One source's breaker, failures, limit events and resets at `at`, from its
/// rows and its breaker timeline (stops are filled in by the caller).
fn source_at(
    s: &str,
    mine: &[&Row],
    tl: &[Transition],
    at: DateTime<Utc>,
    start: DateTime<Utc>,
) -> SourceAt {
    let transition = breaker::at(tl, at).cloned();
    let window_s = mine
        .iter()
        .rev()
        .filter(|r| r.component == "circuit_breaker")
        .find_map(|r| r.meta_f64("window_s"))
        .map_or(DEFAULT_WINDOW_S, |w| w as i64);
    let window_start = at - TimeDelta::seconds(window_s);
    let failures = mine
        .iter()
        .filter(|r| r.event_type == "circuit_breaker_failure" && r.timestamp > window_start)
        .map(|r| Failure {
            at: r.timestamp,
            count: r.failure_count,
            reason: r.meta_str("reason"),
        })
        .collect();
    let hour = at - TimeDelta::hours(1);
    let limits = mine
        .iter()
        .filter(|r| r.timestamp > hour)
        .filter(|r| {
            r.event_type == "portfolio_health_warning"
                || (r.component == "portfolio_limits" && r.allowed == Some(false))
        })
        .map(|r| LimitEvent {
            at: r.timestamp,
            event_type: r.event_type.to_string(),
            limit_type: r.limit_type.map(str::to_owned),
            current_value: r.current_value,
            limit_value: r.limit_value,
            symbol: r.symbol.map(str::to_owned),
            reason: r.rejection_reason.as_deref().map(str::to_owned),
        })
        .collect();
    let resets = resets(tl, transition.as_ref(), at, start);
    SourceAt {
        source: s.to_owned(),
        breaker: transition.as_ref().map(|t| t.to.clone()),
        transition,
        window_s,
        failures,
        stops: Vec::new(),
        limits,
        resets,
        unattributed_stop_events: 0,
    }
}

/// The stops of source `s` alive at `at`, as they stood then.
fn stops_alive(all: &[Stop], s: &str, at: DateTime<Utc>) -> Vec<StopAt> {
    all.iter()
        .filter(|st| st.source == s && st.alive_at(at))
        .map(|st| {
            let (activated, peak, stop, last_update) = st.as_of(at);
            StopAt {
                execution_id: st.execution_id.as_deref().map(str::to_owned),
                symbol: st.symbol.map(str::to_owned),
                added_at: st.added_at,
                entry: st.entry,
                peak,
                stop,
                activated,
                last_update,
            }
        })
        .collect()
}

/// Restarts between `start` and `at` that reset an OPEN or HALF_OPEN breaker
/// (`in_force`: the state at `at` comes from that reset).
fn resets(
    tl: &[Transition],
    in_force: Option<&Transition>,
    at: DateTime<Utc>,
    start: DateTime<Utc>,
) -> Vec<ResetFlag> {
    let mut out = Vec::new();
    for (i, t) in tl.iter().enumerate() {
        if !t.restart_reset || t.at < start || t.at > at {
            continue;
        }
        let was = t.from.clone().unwrap_or_default();
        // When the wiped-out state began: the transition before the restart.
        let since = i
            .checked_sub(1)
            .map(|j| &tl[j])
            .filter(|p| p.to == was)
            .map(|p| p.at);
        out.push(ResetFlag {
            at: t.at,
            was,
            since,
            in_force: in_force == Some(t),
        });
    }
    out
}
