//! A real Prometheus (Debian's `prometheus`, installed by `.ci/run`) scrapes
//! a running daemon: the events counter it stores equals the rows in the
//! table, and the breaker gauge equals the last transition in the table. The
//! shipped alert rules pass `promtool check rules`.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{engine_writer, risktail, root, run_python, status_json};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// GET over plain HTTP/1.0; the body, if the server answered 200.
fn get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    head.contains(" 200 ").then(|| body.to_owned())
}

/// A PromQL query's single value, once Prometheus has one.
fn query(port: u16, promql: &str) -> Option<f64> {
    let q: String = promql
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let body = get(port, &format!("/api/v1/query?query={q}"))?;
    let v: Value = serde_json::from_str(&body).ok()?;
    v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `risktail run` in `dir`, its log in `daemon.log`; killed when dropped.
fn daemon_in(dir: &Path) -> Killed {
    Killed(
        risktail()
            .current_dir(dir)
            .arg("run")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("daemon.log")).expect("log"))
            .spawn()
            .expect("risktail run"),
    )
}

/// A config for `logs/engine.log` (New York time) into `lake/`, serving
/// metrics on `mport`.
fn write_config(dir: &Path, mport: u16) {
    std::fs::write(
        dir.join("risktail.toml"),
        format!(
            "[table]\nuri = \"lake/risk_events\"\n[flush]\ninterval_ms = 200\n[metrics]\nlisten = \"127.0.0.1:{mport}\"\n\
             [[source]]\nname = \"engine\"\npaths = [\"logs/engine.log\"]\nenvelope = \"python\"\ntimezone = \"America/New_York\"\n"
        ),
    )
    .expect("config");
}

/// Rows in the table, and the new_state of its last breaker transition
/// (read by polars, not by risktail).
fn table_facts(dir: &Path) -> (u64, String) {
    let script = r#"
import json, sys, polars as pl
df = pl.read_delta(sys.argv[1])
b = df.filter(pl.col("event_type").is_in(["circuit_breaker_state_change", "circuit_breaker_init"]))
last = b.sort(["timestamp", "source_offset"]).tail(1)["new_state"][0]
print(json.dumps({"rows": df.height, "last": last}))
"#;
    let out = run_python(
        &[
            "-c",
            script,
            &dir.join("lake/risk_events").to_string_lossy(),
        ],
        dir,
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    (
        v["rows"].as_u64().expect("rows"),
        v["last"].as_str().expect("last").to_owned(),
    )
}

#[test]
fn prometheus_scrapes_the_events_counter_and_the_breaker_gauge() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    std::fs::create_dir(dir.join("logs")).expect("logs");
    // Three trading days with breaker transitions and a restart reset,
    // written by Python's RotatingFileHandler (two rotated files, one gzipped).
    for f in ["engine.log", "engine.log.1", "engine.log.2.gz"] {
        std::fs::copy(
            root().join("tests/samples/engine").join(f),
            dir.join("logs").join(f),
        )
        .expect("sample");
    }
    let (mport, pport) = (free_port(), free_port());
    write_config(dir, mport);
    std::fs::write(
        dir.join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\nrule_files: [\"{}\"]\nscrape_configs:\n  - job_name: risktail\n    static_configs:\n      - targets: [\"127.0.0.1:{mport}\"]\n",
            root().join("systemd/risktail.rules.yml").display()
        ),
    )
    .expect("prometheus.yml");
    let daemon = daemon_in(dir);
    let _prom = Killed(
        Command::new("prometheus")
            .current_dir(dir)
            .args([
                "--config.file=prometheus.yml",
                "--storage.tsdb.path=tsdb",
                &format!("--web.listen-address=127.0.0.1:{pport}"),
            ])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("prometheus.log")).expect("log"))
            .spawn()
            .expect("prometheus runs (apt-get install prometheus; .ci/run does)"),
    );
    // The engine goes on writing: 2,000 risk lines through Python's FileHandler.
    let status = engine_writer("plain", "logs/engine.log", 0, 2000, "0.005")
        .current_dir(dir)
        .status()
        .expect("writer");
    assert!(status.success());

    // Synchronise on the table: every byte of every file committed.
    let deadline = Instant::now() + Duration::from_secs(60);
    let behind = || {
        status_json(dir, "risktail.toml", &[])
            .and_then(|v| v["sources"][0]["bytes_behind"].as_u64())
    };
    while behind() != Some(0) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    let (rows, last) = table_facts(dir);
    assert!(
        rows >= 2000,
        "{rows} rows: {}",
        std::fs::read_to_string(dir.join("daemon.log")).unwrap_or_default()
    );

    // Then on Prometheus: its stored sample catches up with the table.
    let mut got = None;
    while Instant::now() < deadline {
        got = query(pport, "sum(risktail_events_total)");
        if got == Some(rows as f64) {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(
        got,
        Some(rows as f64),
        "prometheus: {}",
        std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default()
    );
    let want = match last.as_str() {
        "CLOSED" => 0.0,
        "HALF_OPEN" => 1.0,
        "OPEN" => 2.0,
        other => panic!("unexpected state {other}"),
    };
    assert_eq!(
        query(pport, "risktail_breaker_state{source=\"engine\"}"),
        Some(want)
    );
    // The sample holds one restart that reset an OPEN breaker.
    assert_eq!(
        query(pport, "sum(risktail_breaker_restart_resets_total)"),
        Some(1.0)
    );
    // Every series the issue names is exported.
    let text = get(mport, "/metrics").expect("/metrics");
    for series in [
        "risktail_lines_read_total{",
        "risktail_bytes_read_total{",
        "risktail_events_total{",
        "risktail_quarantined_total{",
        "risktail_commits_total{",
        "risktail_commit_duration_seconds_bucket{",
        "risktail_bytes_behind{",
        "risktail_last_commit_timestamp_seconds{",
        "risktail_breaker_state{",
        "risktail_breaker_restart_resets_total{",
    ] {
        assert!(text.contains(series), "{series} missing:\n{text}");
    }
    assert!(text.contains("risktail_commit_conflicts_total{"), "{text}");
    drop(daemon);
}

#[test]
fn alert_rules_pass_promtool() {
    let out = Command::new("promtool")
        .args(["check", "rules"])
        .arg(root().join("systemd/risktail.rules.yml"))
        .output()
        .expect("promtool runs (apt-get install prometheus; .ci/run does)");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let rules = std::fs::read_to_string(root().join("systemd/risktail.rules.yml")).expect("rules");
    let want = format!("SUCCESS: {} rules found", rules.matches("- alert:").count());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&want),
        "{want}"
    );
}

/// A file that lies wholly inside the repeated autumn hour, with nothing
/// before it in the source or the table, has no evidence of its pass: it is
/// stored by the documented rule (the first pass) and counted, in the
/// backfill summary, in `status --json` and in the daemon's
/// `risktail_undecided_files`.
#[test]
fn a_file_nothing_places_is_counted_in_status_and_the_metrics() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    std::fs::create_dir(dir.join("logs")).expect("logs");
    // 01:10-01:20 New York on 2026-11-01, a time that happened twice.
    let lines: String = (0..10)
        .map(|i| {
            format!(
                "2026-11-01 01:{:02}:00,000 - v6.risk.portfolio_limits - WARNING - Entry REJECTED by portfolio limits: Position count {i} would exceed limit 10\n",
                10 + i
            )
        })
        .collect();
    std::fs::write(dir.join("logs/engine.log"), lines).expect("log");
    let mport = free_port();
    write_config(dir, mport);
    let out = risktail()
        .current_dir(dir)
        .arg("backfill")
        .output()
        .expect("backfill");
    let summary =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{summary}");
    assert!(
        summary.contains("1 file(s) start inside the repeated autumn hour"),
        "{summary}"
    );
    let st = status_json(dir, "risktail.toml", &[]).expect("status --json");
    assert_eq!(st["sources"][0]["undecided_files"], 1, "{st}");
    assert_eq!(st["sources"][0]["files"][0]["undecided"], true, "{st}");
    let _daemon = daemon_in(dir);
    let deadline = Instant::now() + Duration::from_secs(60);
    let series = "risktail_undecided_files{source=\"engine\"} 1";
    loop {
        let body = get(mport, "/metrics").unwrap_or_default();
        if body.lines().any(|l| l == series) {
            break;
        }
        assert!(Instant::now() < deadline, "no `{series}` in:\n{body}");
        std::thread::sleep(Duration::from_millis(200));
    }
}
