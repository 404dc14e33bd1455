//! What one source remembers between lines: the enrichment state a line's
//! fields depend on, committed with the offsets so a restart enriches the
//! next line as if nothing had happened. Part of the event model because the
//! parser fills it and the sink commits it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What one source (a stream of files) remembers between lines.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceState {
    /// The circuit breaker's state as last seen (`CLOSED`, `OPEN`, `HALF_OPEN`);
    /// `None` until the source has shown one.
    pub breaker: Option<String>,
    /// The latest line time seen (UTC), for the autumn-hour rule.
    pub last_time: Option<DateTime<Utc>>,
}

impl SourceState {
    /// Records a line's time.
    pub fn saw_time(&mut self, t: DateTime<Utc>) {
        if self.last_time.is_none_or(|l| t > l) {
            self.last_time = Some(t);
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
        };
        let j = serde_json::to_string(&s).expect("json");
        assert_eq!(serde_json::from_str::<SourceState>(&j).expect("back"), s);
    }
}
