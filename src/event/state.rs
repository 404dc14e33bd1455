//! What one source remembers between lines: the enrichment state a line's
//! fields depend on, committed with the offsets so a restart enriches the
//! next line as if nothing had happened. Part of the event model because the
//! parser fills it and the sink commits it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What one source (a stream of files) remembers between lines.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SourceState {
    /// The circuit breaker's state as last seen (`CLOSED`, `OPEN`, `HALF_OPEN`);
    /// `None` until the source has shown one.
    pub breaker: Option<String>,
    /// The latest line time seen (UTC), for the autumn-hour rule.
    pub last_time: Option<DateTime<Utc>>,
    /// The latest time held when a line's time first depended on it (a time
    /// inside a repeated hour), `Some(None)` when none was held; `None` until
    /// then. Not part of the state's value (never committed, not compared):
    /// a stretch of a file parsed ahead from an empty state
    /// (`pipeline::chunks`) is the same as one parsed from the true state
    /// exactly when the true latest time is not after this one.
    #[serde(skip)]
    pub first_fold: Option<Option<DateTime<Utc>>>,
}

impl PartialEq for SourceState {
    fn eq(&self, other: &Self) -> bool {
        self.breaker == other.breaker && self.last_time == other.last_time
    }
}

impl Eq for SourceState {}

impl SourceState {
    /// Records a line's time.
    pub fn saw_time(&mut self, t: DateTime<Utc>) {
        if self.last_time.is_none_or(|l| t > l) {
            self.last_time = Some(t);
        }
    }

    /// Notes that a line's time is being decided by the latest time held
    /// (see `first_fold`).
    pub fn note_fold(&mut self) {
        if self.first_fold.is_none() {
            self.first_fold = Some(self.last_time);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_through_json() {
        let s = SourceState {
            breaker: Some("OPEN".into()),
            last_time: DateTime::from_timestamp(1769596200, 0),
            ..SourceState::default()
        };
        let j = serde_json::to_string(&s).expect("json");
        assert_eq!(serde_json::from_str::<SourceState>(&j).expect("back"), s);
    }
}
