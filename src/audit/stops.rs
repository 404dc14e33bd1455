//! Trailing stops rebuilt from their events: added, activated, updated,
//! triggered. The engine names the execution in the `added` line and, through
//! the `[exec=… sym=…]` prefix, in the later ones; lines without it are
//! matched by symbol, or to the only open stop of the source, and counted as
//! unattributed when that is ambiguous — never guessed. An engine restart
//! (`circuit_breaker_init`) ends every open stop of its source: the engine
//! keeps them in memory. A stop closed by another exit leaves no risk line, so
//! it stays open in this view until a restart or the end of the data.

use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeMap;

use super::load::Row;

/// One point of a stop's path.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Point {
    /// When.
    pub at: DateTime<Utc>,
    /// `ADD`, `ACTIVATE`, `UPDATE`, `TRIGGER`.
    pub action: String,
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
    pub source: String,
    /// The execution.
    pub execution_id: Option<String>,
    /// The instrument.
    pub symbol: Option<String>,
    /// When it was added (the first event seen when the add is not in the data read).
    pub added_at: DateTime<Utc>,
    /// Premium at entry.
    pub entry: Option<f64>,
    /// Activation threshold, percent.
    pub activation_pct: Option<f64>,
    /// Trailing distance, percent.
    pub trailing_pct: Option<f64>,
    /// Every event, in order.
    pub path: Vec<Point>,
    /// How and when it ended.
    pub ended: Option<(End, DateTime<Utc>)>,
}

impl Stop {
    /// Whether it is alive at `t`.
    pub fn alive_at(&self, t: DateTime<Utc>) -> bool {
        self.added_at <= t && self.ended.is_none_or(|(_, e)| e > t)
    }

    /// Its values as of `t`: (activated, peak, stop, last event time).
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
        self.path.iter().any(|p| p.action != "ADD")
    }

    /// The trigger point, if triggered.
    pub fn trigger(&self) -> Option<&Point> {
        self.path.iter().find(|p| p.action == "TRIGGER")
    }

    /// Premium captured at the trigger relative to entry, percent.
    pub fn captured_pct(&self) -> Option<f64> {
        let t = self.trigger()?;
        let exit = t.current.or(t.stop)?;
        let entry = self.entry.filter(|e| *e > 0.0)?;
        Some((exit - entry) / entry * 100.0)
    }
}

/// The stops of some rows (in the audit order), and per source how many stop
/// events could not be tied to a stop.
pub fn rebuild(rows: &[Row]) -> (Vec<Stop>, BTreeMap<String, usize>) {
    let mut stops: Vec<Stop> = Vec::new();
    let mut unattributed: BTreeMap<String, usize> = BTreeMap::new();
    for r in rows {
        if r.event_type == "circuit_breaker_init" {
            for s in stops
                .iter_mut()
                .filter(|s| s.source == r.source && s.ended.is_none())
            {
                s.ended = Some((End::Restart, r.timestamp));
            }
            continue;
        }
        if r.component != "trailing_stop" {
            continue;
        }
        let action = r.action.clone().unwrap_or_default();
        let point = Point {
            at: r.timestamp,
            action: action.clone(),
            current: r.current_premium,
            peak: r.highest_premium,
            stop: r.stop_premium,
        };
        if action == "ADD" {
            stops.push(Stop {
                source: r.source.clone(),
                execution_id: r.execution_id.clone(),
                symbol: r.symbol.clone(),
                added_at: r.timestamp,
                entry: r.entry_premium,
                activation_pct: r.meta_f64("activation_pct"),
                trailing_pct: r.meta_f64("trailing_pct"),
                path: vec![point],
                ended: None,
            });
            continue;
        }
        let open = |s: &Stop| s.source == r.source && s.ended.is_none();
        let idx = match (&r.execution_id, &r.symbol) {
            (Some(id), _) => stops
                .iter()
                .enumerate()
                .rev()
                .find(|(_, s)| open(s) && s.execution_id.as_ref() == Some(id))
                .map(|(i, _)| i),
            (None, sym) => {
                let c: Vec<usize> = stops
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| open(s) && (sym.is_none() || s.symbol == *sym))
                    .map(|(i, _)| i)
                    .collect();
                (c.len() == 1).then(|| c[0])
            }
        };
        let idx = match idx {
            Some(i) => i,
            // A stop added before the data read (or by a line the patterns did
            // not know): start it here, with the entry the line may carry.
            None if r.execution_id.is_some() => {
                stops.push(Stop {
                    source: r.source.clone(),
                    execution_id: r.execution_id.clone(),
                    symbol: r.symbol.clone(),
                    added_at: r.timestamp,
                    entry: r.entry_premium,
                    activation_pct: None,
                    trailing_pct: None,
                    path: Vec::new(),
                    ended: None,
                });
                stops.len() - 1
            }
            None => {
                *unattributed.entry(r.source.clone()).or_default() += 1;
                continue;
            }
        };
        let s = &mut stops[idx];
        if s.entry.is_none() {
            s.entry = r.entry_premium;
        }
        if s.symbol.is_none() {
            s.symbol = r.symbol.clone();
        }
        if action == "TRIGGER" {
            s.ended = Some((End::Triggered, r.timestamp));
        }
        s.path.push(point);
    }
    (stops, unattributed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_769_000_000 + s, 0).unwrap()
    }

    fn stop_row(s: i64, action: &str, exec: Option<&str>, sym: Option<&str>) -> Row {
        Row {
            event_type: format!("trailing_stop_{}", action.to_lowercase()),
            component: "trailing_stop".into(),
            timestamp: at(s),
            action: Some(action.into()),
            execution_id: exec.map(Into::into),
            symbol: sym.map(Into::into),
            source: "e".into(),
            entry_premium: (action == "ADD").then_some(2.0),
            highest_premium: (action != "ADD").then_some(2.2),
            stop_premium: (action != "ADD").then_some(2.1),
            current_premium: (action == "TRIGGER").then_some(2.09),
            ..Row::default()
        }
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
                event_type: "circuit_breaker_init".into(),
                component: "circuit_breaker".into(),
                timestamp: at(9),
                source: "e".into(),
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
