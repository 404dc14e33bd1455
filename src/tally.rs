//! Counting what a run did, for the summaries `parse` and `backfill` print.

use std::collections::BTreeMap;
use std::fmt;

use crate::event::Reason;
use crate::parse::Outcome;

/// Counts of lines and outcomes.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tally {
    /// Files read.
    pub files: u64,
    /// Bytes of content read (decompressed).
    pub bytes: u64,
    /// Complete lines read (oversize ones included).
    pub lines: u64,
    /// Continuation lines recognised (only lines that reached the envelope).
    pub continuation: u64,
    /// Known noise with a keyword.
    pub ignored: u64,
    /// Events by type.
    pub events: BTreeMap<String, u64>,
    /// Quarantined lines by reason.
    pub quarantined: BTreeMap<Reason, u64>,
}

impl Tally {
    /// Counts one outcome. An event is counted by its type where its row is
    /// read ([`Tally::count_event`]): the outcome does not carry it.
    pub fn count(&mut self, o: &Outcome) {
        match o {
            Outcome::Noise => {}
            Outcome::Continuation => self.continuation += 1,
            Outcome::Ignored => self.ignored += 1,
            Outcome::Event => {}
            Outcome::Quarantine(q) => *self.quarantined.entry(q.reason).or_default() += 1,
            Outcome::Fused { cut, rest } => {
                self.count_quarantine(cut.reason);
                self.count(rest);
            }
        }
    }

    /// Counts one event of a type.
    pub fn count_event(&mut self, event_type: &str) {
        match self.events.get_mut(event_type) {
            Some(n) => *n += 1,
            None => {
                self.events.insert(event_type.to_owned(), 1);
            }
        }
    }

    /// Counts a quarantine record made outside `parse_line` (oversize, fragment).
    pub fn count_quarantine(&mut self, r: Reason) {
        *self.quarantined.entry(r).or_default() += 1;
    }

    /// Total events.
    pub fn event_total(&self) -> u64 {
        self.events.values().sum()
    }

    /// Total quarantined.
    pub fn quarantine_total(&self) -> u64 {
        self.quarantined.values().sum()
    }

    /// Adds another tally.
    pub fn add(&mut self, o: &Tally) {
        self.files += o.files;
        self.bytes += o.bytes;
        self.lines += o.lines;
        self.continuation += o.continuation;
        self.ignored += o.ignored;
        for (k, v) in &o.events {
            *self.events.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &o.quarantined {
            *self.quarantined.entry(*k).or_default() += v;
        }
    }
}

/// `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Bytes in binary units.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} files, {} lines, {}: {} events, {} quarantined, {} known noise, {} continuation lines",
            thousands(self.files),
            thousands(self.lines),
            bytes(self.bytes),
            thousands(self.event_total()),
            thousands(self.quarantine_total()),
            thousands(self.ignored),
            thousands(self.continuation),
        )?;
        for (k, v) in &self.events {
            writeln!(f, "  event       {k:<32} {:>10}", thousands(*v))?;
        }
        for (k, v) in &self.quarantined {
            writeln!(f, "  quarantined {:<32} {:>10}", k.code(), thousands(*v))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_numbers() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
    }
}
