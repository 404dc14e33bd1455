//! What an SRE's Prometheus scrapes: the daemon's counters and gauges, and
//! the small HTTP server (`[metrics] listen`) that serves them at `/metrics`
//! in the OpenMetrics text format.
//!
//! Rows are counted by the sink *after* their commit lands (never before), so
//! the sum of `risktail_events_total` is what this process added to the
//! table. The server is a thread blocked in `accept`: an idle daemon with
//! metrics on still uses no CPU.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

/// Label pairs of one series.
pub type Labels = Vec<(&'static str, String)>;

fn commit_seconds() -> Histogram {
    // 5 ms … ~10 s.
    Histogram::new(exponential_buckets(0.005, 2.0, 12))
}

/// Every series the daemon exports.
pub struct Metrics {
    registry: Registry,
    /// `risktail_lines_read_total{source}`.
    pub lines_read: Family<Labels, Counter>,
    /// `risktail_bytes_read_total{source}`.
    pub bytes_read: Family<Labels, Counter>,
    /// `risktail_events_total{source,event_type}`: rows committed.
    pub events: Family<Labels, Counter>,
    /// `risktail_quarantined_total{source,reason}`: quarantine rows committed.
    pub quarantined: Family<Labels, Counter>,
    /// `risktail_commits_total{table}`.
    pub commits: Family<Labels, Counter>,
    /// `risktail_commit_conflicts_total{table}`: versions taken by other writers that a commit read through (lost races).
    pub commit_conflicts: Family<Labels, Counter>,
    /// `risktail_commit_duration_seconds{table}`.
    pub commit_duration: Family<Labels, Histogram, fn() -> Histogram>,
    /// `risktail_bytes_behind{source}`: on disk and not yet committed.
    pub bytes_behind: Family<Labels, Gauge>,
    /// `risktail_last_commit_timestamp_seconds{table}`.
    pub last_commit: Family<Labels, Gauge<f64, AtomicU64>>,
    /// `risktail_breaker_state{source}`: 0 CLOSED, 1 HALF_OPEN, 2 OPEN, as last committed.
    pub breaker_state: Family<Labels, Gauge>,
    /// `risktail_breaker_restart_resets_total{source}`: engine restarts that
    /// initialized the breaker while it was OPEN or HALF_OPEN.
    pub breaker_restart_resets: Family<Labels, Counter>,
    /// `risktail_undecided_files{source}`: files of the source on disk that
    /// start inside the repeated autumn hour with nothing to place them by
    /// (stored in the first pass; see docs/DIALECT.md §1.1), as the table
    /// records them at the daemon's start.
    pub undecided_files: Family<Labels, Gauge>,
}

impl Metrics {
    /// A registry with every series, none observed yet.
    pub fn new() -> Arc<Metrics> {
        let mut m = Metrics {
            registry: Registry::with_prefix("risktail"),
            lines_read: Family::default(),
            bytes_read: Family::default(),
            events: Family::default(),
            quarantined: Family::default(),
            commits: Family::default(),
            commit_conflicts: Family::default(),
            commit_duration: Family::new_with_constructor(commit_seconds),
            bytes_behind: Family::default(),
            last_commit: Family::default(),
            breaker_state: Family::default(),
            breaker_restart_resets: Family::default(),
            undecided_files: Family::default(),
        };
        let r = &mut m.registry;
        r.register(
            "lines_read",
            "Lines read from the source's files",
            m.lines_read.clone(),
        );
        r.register(
            "bytes_read",
            "Bytes read from the source's files",
            m.bytes_read.clone(),
        );
        r.register(
            "events",
            "Risk events committed to the table",
            m.events.clone(),
        );
        r.register(
            "quarantined",
            "Lines committed to the quarantine table",
            m.quarantined.clone(),
        );
        r.register("commits", "Commits to the table", m.commits.clone());
        r.register(
            "commit_conflicts",
            "Versions taken by other writers that a commit read through before it landed",
            m.commit_conflicts.clone(),
        );
        r.register(
            "commit_duration_seconds",
            "Time a commit took, data files included",
            m.commit_duration.clone(),
        );
        r.register(
            "bytes_behind",
            "Bytes of the source's open files not yet committed",
            m.bytes_behind.clone(),
        );
        r.register(
            "last_commit_timestamp_seconds",
            "When the table was last committed to by this process (Unix seconds)",
            m.last_commit.clone(),
        );
        r.register(
            "breaker_state",
            "The engine's circuit breaker as last committed: 0 CLOSED, 1 HALF_OPEN, 2 OPEN",
            m.breaker_state.clone(),
        );
        r.register(
            "breaker_restart_resets",
            "Engine restarts that initialized the breaker while it was OPEN or HALF_OPEN",
            m.breaker_restart_resets.clone(),
        );
        r.register(
            "undecided_files",
            "Files on disk starting inside the repeated autumn hour with nothing to place them by (stored in the first pass)",
            m.undecided_files.clone(),
        );
        Arc::new(m)
    }

    /// The OpenMetrics text of every series.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// `[("source", name)]`.
pub fn source(name: &str) -> Labels {
    vec![("source", name.to_owned())]
}

/// `[("table", uri)]`.
pub fn table(uri: &str) -> Labels {
    vec![("table", uri.to_owned())]
}

/// The breaker gauge's value of a state name (unknown states: -1).
pub fn breaker_value(state: Option<&str>) -> i64 {
    match state {
        Some("CLOSED") => 0,
        Some("HALF_OPEN") => 1,
        Some("OPEN") => 2,
        _ => -1,
    }
}

/// Why the metrics server could not start.
#[derive(Debug, thiserror::Error)]
#[error("metrics.listen = {addr}: cannot listen: {message}")]
pub struct ServeError {
    /// The address.
    pub addr: SocketAddr,
    /// Why.
    pub message: String,
}

/// Serves `/metrics` on `addr` from a thread of its own, for the life of the
/// process. Returns the address actually bound (port 0 picks one).
pub fn serve(addr: SocketAddr, metrics: Arc<Metrics>) -> Result<SocketAddr, ServeError> {
    let server = tiny_http::Server::http(addr).map_err(|e| ServeError {
        addr,
        message: e.to_string(),
    })?;
    let bound = server.server_addr().to_ip().ok_or_else(|| ServeError {
        addr,
        message: "not an IP listener".into(),
    })?;
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            for request in server.incoming_requests() {
                let response = if request.url() == "/metrics" {
                    let header = tiny_http::Header::from_bytes(
                        &b"Content-Type"[..],
                        &b"application/openmetrics-text; version=1.0.0; charset=utf-8"[..],
                    )
                    .expect("a valid header");
                    tiny_http::Response::from_string(metrics.encode()).with_header(header)
                } else {
                    tiny_http::Response::from_string("risktail: see /metrics\n")
                        .with_status_code(404)
                };
                let _ = request.respond(response);
            }
        })
        .map_err(|e| ServeError {
            addr,
            message: e.to_string(),
        })?;
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_series_is_named_and_counters_end_in_total() {
        let m = Metrics::new();
        m.events
            .get_or_create(&vec![
                ("source", "engine".into()),
                ("event_type", "x".into()),
            ])
            .inc();
        m.commit_duration.get_or_create(&table("t")).observe(0.02);
        m.breaker_state.get_or_create(&source("engine")).set(2);
        let text = m.encode();
        assert!(
            text.contains("risktail_events_total{source=\"engine\",event_type=\"x\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("risktail_breaker_state{source=\"engine\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("risktail_commit_duration_seconds_bucket"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn serves_metrics_over_http() {
        let m = Metrics::new();
        m.lines_read.get_or_create(&source("s")).inc_by(7);
        let addr = serve("127.0.0.1:0".parse().unwrap(), m).unwrap();
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        use std::io::{Read, Write};
        s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
        let mut body = String::new();
        s.read_to_string(&mut body).unwrap();
        assert!(
            body.starts_with("HTTP/1.1 200") || body.starts_with("HTTP/1.0 200"),
            "{body}"
        );
        assert!(
            body.contains("risktail_lines_read_total{source=\"s\"} 7"),
            "{body}"
        );
    }
}
