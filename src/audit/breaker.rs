//! The circuit breaker's history per source: every transition the engine
//! logged, with the reason in words, and the one the audit fears most marked:
//! an engine restart (`circuit_breaker_init`, which always says `CLOSED`)
//! while the breaker was `OPEN` or `HALF_OPEN` — a reset that let trading
//! resume before the cooldown and the test trades.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use std::collections::BTreeMap;

use super::AuditError;
use super::load::{Days, ReadStats, Row, TableFiles};

/// One change of the breaker's state (or an initialisation).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Transition {
    /// When the engine logged it.
    pub at: DateTime<Utc>,
    /// The state before, as the table recorded it (null: nothing seen before).
    pub from: Option<String>,
    /// The state after.
    pub to: String,
    /// `circuit_breaker_init` or `circuit_breaker_state_change`.
    pub event_type: String,
    /// Why, in words, from the line's fields.
    pub reason: String,
    /// An engine restart that reset an OPEN or HALF_OPEN breaker to CLOSED.
    pub restart_reset: bool,
}

impl Transition {
    /// The transition a row records, if it is one.
    pub fn from_row(r: &Row) -> Option<Transition> {
        let to = r.new_state?.to_owned();
        let init = r.event_type == "circuit_breaker_init";
        if !init && r.event_type != "circuit_breaker_state_change" {
            return None;
        }
        let m = r.meta();
        let reason = if init {
            let mut s = String::from("engine started (breaker initialized)");
            if let (Some(t), Some(w)) = (m.str("threshold"), m.str("window_s")) {
                s.push_str(&format!(": threshold {t} in {w}s"));
            }
            s
        } else {
            match to.as_str() {
                "OPEN" if r.old_state == Some("HALF_OPEN") => format!(
                    "failure during HALF_OPEN{}",
                    m.str("reason")
                        .map(|x| format!(" ({x})"))
                        .unwrap_or_default()
                ),
                "OPEN" => {
                    let mut s = match r.failure_count {
                        Some(n) => format!("{n} failures"),
                        None => "failures".into(),
                    };
                    if let Some(w) = m.str("window_s") {
                        s.push_str(&format!(" in {w}s window"));
                    }
                    if let Some(t) = m.str("threshold") {
                        s.push_str(&format!(" (threshold {t})"));
                    }
                    s
                }
                "HALF_OPEN" => match m.str("cooldown_s") {
                    Some(c) => format!("cooldown of {c}s elapsed"),
                    None => "cooldown elapsed".into(),
                },
                "CLOSED" => match m.str("successes") {
                    Some(n) => format!("{n} consecutive successes in HALF_OPEN"),
                    None => "recovered".into(),
                },
                _ => String::new(),
            }
        };
        let restart_reset = init && matches!(r.old_state, Some("OPEN" | "HALF_OPEN"));
        Some(Transition {
            at: r.timestamp,
            from: r.old_state.map(str::to_owned),
            to,
            event_type: r.event_type.to_string(),
            reason,
            restart_reset,
        })
    }
}

/// Every source's transitions, in time order (rows must be in the audit order).
pub fn timelines(rows: &[Row]) -> BTreeMap<String, Vec<Transition>> {
    let mut out: BTreeMap<String, Vec<Transition>> = BTreeMap::new();
    for r in rows {
        if let Some(t) = Transition::from_row(r) {
            out.entry(r.source.to_string()).or_default().push(t);
        }
    }
    out
}

/// The last transition of each of `sources` on a day before `before`: the
/// state in force when a window of days starts. Walks back one day's
/// partition at a time, each read once for all the sources still looking,
/// until every one has its transition or the table's first day is passed.
pub async fn last_before(
    files: &TableFiles,
    before: NaiveDate,
    sources: &[String],
) -> Result<(BTreeMap<String, Transition>, ReadStats), AuditError> {
    let mut found = BTreeMap::new();
    let mut read = ReadStats::default();
    let mut wanted: Vec<&String> = sources.iter().collect();
    for day in files.days().into_iter().rev().filter(|d| *d < before) {
        if wanted.is_empty() {
            break;
        }
        let only = (wanted.len() == 1).then(|| wanted[0].as_str());
        let (rows, r) = files.read(Days::one(day), only).await?;
        read.files_total = r.files_total;
        read.files_read += r.files_read;
        read.rows += r.rows;
        let mut day_timelines = timelines(&rows);
        wanted.retain(|s| match day_timelines.get_mut(*s).and_then(Vec::pop) {
            Some(t) => {
                found.insert((*s).clone(), t);
                false
            }
            None => true,
        });
    }
    Ok((found, read))
}

/// The state `source`'s breaker was in just before `t`, by its last
/// transition before `t` in the table (`None`: none is recorded).
pub async fn state_before(
    files: &TableFiles,
    source: &str,
    t: DateTime<Utc>,
) -> Result<Option<String>, AuditError> {
    let day = t.date_naive();
    let (rows, _) = files.read(Days::one(day), Some(source)).await?;
    let timelines = timelines(&rows);
    if let Some(tr) = timelines
        .get(source)
        .and_then(|v| v.iter().rev().find(|x| x.at < t))
    {
        return Ok(Some(tr.to.clone()));
    }
    let (found, _) = last_before(files, day, &[source.to_owned()]).await?;
    Ok(found.get(source).map(|tr| tr.to.clone()))
}

/// The transition in force at `t`: the last one at or before it.
pub fn at(transitions: &[Transition], t: DateTime<Utc>) -> Option<&Transition> {
    let n = transitions.partition_point(|x| x.at <= t);
    n.checked_sub(1).map(|i| &transitions[i])
}

/// The state in force at `t`, if any transition came before.
pub fn state_at(transitions: &[Transition], t: DateTime<Utc>) -> Option<&str> {
    at(transitions, t).map(|x| x.to.as_str())
}

/// Seconds spent in each state between `from` and `to`, starting from
/// `initial` (the state in force at `from`, if known). Time before the first
/// known state is not counted anywhere.
pub fn time_in_states(
    transitions: &[Transition],
    initial: Option<&str>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    let mut state = initial.map(str::to_owned);
    let mut since = from;
    for t in transitions.iter().filter(|t| t.at > from && t.at < to) {
        if let Some(s) = &state {
            *out.entry(s.clone()).or_insert(0.0) += secs(t.at - since);
        }
        state = Some(t.to.clone());
        since = t.at;
    }
    if let Some(s) = state
        && to > since
    {
        *out.entry(s).or_insert(0.0) += secs(to - since);
    }
    out
}

/// A duration in seconds.
pub fn secs(d: chrono::TimeDelta) -> f64 {
    d.num_microseconds().map_or(0.0, |m| m as f64 / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::row::intern;

    fn row(sec: i64, ty: &str, old: Option<&str>, new: &str) -> Row {
        Row {
            event_type: intern(ty),
            component: "circuit_breaker",
            timestamp: DateTime::from_timestamp(1_769_000_000 + sec, 0).unwrap(),
            old_state: old.map(intern),
            new_state: Some(intern(new)),
            source: "e",
            ..Row::default()
        }
    }

    #[test]
    fn restart_while_open_is_flagged_and_a_normal_one_is_not() {
        let rows = [
            row(0, "circuit_breaker_init", None, "CLOSED"),
            row(10, "circuit_breaker_state_change", Some("CLOSED"), "OPEN"),
            row(20, "circuit_breaker_init", Some("OPEN"), "CLOSED"),
            row(30, "circuit_breaker_init", Some("CLOSED"), "CLOSED"),
        ];
        let t = &timelines(&rows)["e"];
        let flags: Vec<bool> = t.iter().map(|x| x.restart_reset).collect();
        assert_eq!(flags, [false, false, true, false]);
        let base = DateTime::from_timestamp(1_769_000_000, 0).unwrap();
        assert_eq!(
            state_at(t, base + chrono::TimeDelta::seconds(9)),
            Some("CLOSED")
        );
        assert_eq!(
            state_at(t, base + chrono::TimeDelta::seconds(10)),
            Some("OPEN")
        );
        assert_eq!(state_at(t, base - chrono::TimeDelta::seconds(1)), None);
    }

    #[test]
    fn time_in_states_splits_the_window_and_skips_the_unknown_start() {
        let rows = [
            row(10, "circuit_breaker_state_change", Some("CLOSED"), "OPEN"),
            row(
                70,
                "circuit_breaker_state_change",
                Some("OPEN"),
                "HALF_OPEN",
            ),
            row(
                100,
                "circuit_breaker_state_change",
                Some("HALF_OPEN"),
                "CLOSED",
            ),
        ];
        let t = &timelines(&rows)["e"];
        let base = DateTime::from_timestamp(1_769_000_000, 0).unwrap();
        let d = |s| base + chrono::TimeDelta::seconds(s);
        let m = time_in_states(t, None, d(0), d(200));
        assert_eq!(m.get("OPEN"), Some(&60.0));
        assert_eq!(m.get("HALF_OPEN"), Some(&30.0));
        assert_eq!(m.get("CLOSED"), Some(&100.0));
        let m = time_in_states(t, Some("CLOSED"), d(0), d(200));
        assert_eq!(m.get("CLOSED"), Some(&110.0));
    }
}
