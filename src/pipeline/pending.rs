//! Rows read and not yet committed, and when to commit them: every
//! `flush.interval_ms` after the oldest pending row, at `flush.max_events`
//! rows, or (noise only) once in a while so a restart replays little. A failed
//! commit backs off exponentially; reading goes on up to a bound, then stops
//! (back-pressure: the files keep the data, memory stays bounded).

use std::time::{Duration, Instant};

use super::step::Rows;

/// When rows are committed.
#[derive(Debug, Clone, Copy)]
pub struct FlushPolicy {
    /// Oldest pending row's age that forces a commit.
    pub interval: Duration,
    /// Pending rows that force a commit.
    pub max_events: usize,
    /// Offsets advanced by noise only are committed this often.
    pub offsets_every: Duration,
    /// Rows held at most while commits fail; past it, reading stops.
    pub max_pending: usize,
}

/// Rows held while the table cannot be written, as a multiple of
/// `max_events`; past it, reading stops and the files keep the data.
pub const MAX_PENDING_FACTOR: usize = 4;

/// Offsets advanced by noise lines only are committed this often (bounds the
/// replay after a restart without a commit per second of noise).
pub const OFFSETS_EVERY: Duration = Duration::from_secs(60);

impl FlushPolicy {
    /// The policy for a flush interval and batch size.
    pub fn new(interval: Duration, max_events: usize) -> FlushPolicy {
        FlushPolicy {
            interval,
            max_events,
            offsets_every: OFFSETS_EVERY,
            max_pending: max_events.saturating_mul(MAX_PENDING_FACTOR),
        }
    }
}

/// A source's rows waiting for a commit.
#[derive(Debug)]
pub struct Pending {
    /// The rows.
    pub rows: Rows,
    first: Option<Instant>,
    last_commit: Instant,
}

impl Default for Pending {
    fn default() -> Self {
        Pending {
            rows: Rows::default(),
            first: None,
            last_commit: Instant::now(),
        }
    }
}

impl Pending {
    /// Notes that rows were added (starts the interval clock).
    pub fn touched(&mut self) {
        if !self.rows.is_empty() {
            self.first.get_or_insert_with(Instant::now);
        }
    }

    /// When the oldest pending row was read.
    pub fn first(&self) -> Option<Instant> {
        self.first
    }

    /// Whether reading must stop until a commit makes room.
    pub fn full(&self, policy: &FlushPolicy) -> bool {
        self.rows.len() >= policy.max_pending
    }

    /// Whether a commit is due; `offsets_advanced` says whether files were
    /// read past their committed offsets.
    pub fn due(&self, policy: &FlushPolicy, offsets_advanced: bool) -> bool {
        self.rows.len() >= policy.max_events
            || self.first.is_some_and(|f| f.elapsed() >= policy.interval)
            || (offsets_advanced && self.last_commit.elapsed() >= policy.offsets_every)
    }

    /// When the next commit falls due by time alone, if rows are pending.
    pub fn due_at(&self, policy: &FlushPolicy) -> Option<Instant> {
        self.first.map(|f| f + policy.interval)
    }

    /// Forgets the committed rows.
    pub fn committed(&mut self) {
        self.rows.clear();
        self.first = None;
        self.last_commit = Instant::now();
    }
}

/// Exponential back-off after failed commits: 0.5 s doubling to 5 s. The cap
/// is short because a sidecar must catch up soon after an outage ends (a
/// try costs a few requests); a quarter of each delay is random, so daemons
/// that failed together do not retry in step.
#[derive(Debug, Default, Clone, Copy)]
pub struct Backoff {
    until: Option<(Instant, Duration)>,
}

impl Backoff {
    /// First and last delay.
    pub const FIRST: Duration = Duration::from_millis(500);
    /// The longest delay.
    pub const MAX: Duration = Duration::from_secs(5);

    /// Records a failure; returns the delay before the next try (the
    /// doubled delay, less up to a quarter of it at random).
    pub fn failed(&mut self) -> Duration {
        let base = self
            .until
            .map_or(Self::FIRST, |(_, d)| (d * 2).min(Self::MAX));
        let quarter = (base / 4).as_micros().max(1) as u64;
        let jitter = u64::from(chrono::Utc::now().timestamp_subsec_nanos()) % quarter;
        let next = base - Duration::from_micros(jitter);
        self.until = Some((Instant::now() + next, base));
        next
    }

    /// Records a success.
    pub fn succeeded(&mut self) {
        self.until = None;
    }

    /// Whether a failure is being backed off from (retry time not reached).
    pub fn waiting(&self) -> bool {
        self.until.is_some_and(|(at, _)| Instant::now() < at)
    }

    /// Whether the last commit failed.
    pub fn failing(&self) -> bool {
        self.until.is_some()
    }

    /// When the next try may start.
    pub fn retry_at(&self) -> Option<Instant> {
        self.until.map(|(at, _)| at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_cap_and_resets() {
        let mut b = Backoff::default();
        let delays: Vec<_> = (0..9).map(|_| b.failed()).collect();
        // Each delay is its step, less at most a quarter of it.
        let within = |d: Duration, step: Duration| d <= step && d >= step * 3 / 4;
        assert!(within(delays[0], Backoff::FIRST), "{delays:?}");
        assert!(within(delays[1], Backoff::FIRST * 2), "{delays:?}");
        assert!(within(*delays.last().unwrap(), Backoff::MAX), "{delays:?}");
        assert!(b.waiting() && b.failing());
        b.succeeded();
        assert!(!b.waiting() && !b.failing());
    }

    #[test]
    fn due_by_size_age_or_noise_offsets() {
        let policy = FlushPolicy {
            interval: Duration::from_secs(3600),
            max_events: 2,
            offsets_every: Duration::from_secs(3600),
            max_pending: 8,
        };
        let mut p = Pending::default();
        assert!(!p.due(&policy, true));
        p.rows.quarantine.push(crate::event::QuarantineRecord::new(
            crate::event::LinePos {
                source: "s",
                file: crate::source::fingerprint::FileId::from_head(b"x\n"),
                source_file: "f",
                offset: 0,
            },
            b"x",
            1,
            crate::event::Reason::IncompleteLine,
            None,
            chrono::Utc::now(),
        ));
        p.touched();
        assert!(p.first().is_some() && !p.due(&policy, false));
        p.rows.quarantine.push(p.rows.quarantine[0].clone());
        assert!(p.due(&policy, false));
        p.committed();
        assert!(p.first().is_none() && !p.due(&policy, false));
        let now = FlushPolicy {
            offsets_every: Duration::ZERO,
            ..policy
        };
        assert!(p.due(&now, true));
    }
}
