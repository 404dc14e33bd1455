//! The same bytes through `parse`, `backfill` and `run` give the same rows:
//! the three commands share one per-item step (`pipeline::step`), and this is
//! what would catch a copy drifting again (bulk noise passing, oversize
//! lines, quarantine, event ids, every column).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{risktail, root, run, stderr, stdout, table_rows};

fn config(dir: &Path, table: &str) -> std::path::PathBuf {
    let p = dir.join(format!("{table}.toml"));
    std::fs::write(
        &p,
        format!(
            "[table]\nuri = \"{table}/risk_events\"\n[flush]\ninterval_ms = 100\nmax_events = 50\n\
             [[source]]\nname = \"engine\"\npaths = [\"logs/engine.log\"]\nenvelope = \"python\"\n\
             timezone = \"America/New_York\"\nmax_line_bytes = 4096\n"
        ),
    )
    .expect("config");
    p
}

/// The engine's sample log (Python's own handler wrote it), quarantine cases,
/// an oversize line and a long run of noise, ending on a newline.
pub fn input(dir: &Path) {
    let mut data = std::fs::read(root().join("tests/samples/engine/engine.log")).expect("sample");
    for i in 0..20_000 {
        data.extend_from_slice(
            format!(
                "2026-01-28 12:00:{:02},{:03} - v6.feed - DEBUG - quote SPY bid=1.0{i} ask=1.1\n",
                i % 60,
                i % 1000
            )
            .as_bytes(),
        );
    }
    data.extend(
        std::fs::read(root().join("tests/corpus/quarantine_reasons/input.log")).expect("q"),
    );
    data.extend_from_slice(
        b"2026-01-28 12:30:00,000 - v6.risk - WARNING - Circuit breaker OPENED: ",
    );
    data.extend(std::iter::repeat_n(b'x', 10_000));
    data.extend_from_slice(b"\n2026-01-28 12:31:00,000 - v6.risk - WARNING - Circuit breaker OPENED: 5 failures in 300s window (threshold 5)\n");
    std::fs::create_dir(dir.join("logs")).expect("logs");
    std::fs::write(dir.join("logs/engine.log"), data).expect("input");
}

#[test]
fn parse_backfill_and_run_give_the_same_rows_for_the_same_bytes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    input(dir);

    // parse: a dry run to stdout.
    let out = run(risktail()
        .current_dir(dir)
        .args(["parse", "--quarantine", "--config"])
        .arg(config(dir, "parse")));
    assert!(out.status.success(), "{}", stderr(&out));
    let mut parsed_events = BTreeMap::new();
    let mut parsed_quarantine = BTreeMap::new();
    for line in stdout(&out).lines() {
        let v: Value = serde_json::from_str(line).expect("json line");
        let off = v["source_offset"].as_i64().expect("offset");
        if v["quarantine"] == Value::Bool(true) {
            parsed_quarantine.insert(off, v["reason"].as_str().expect("reason").to_owned());
        } else {
            parsed_events.insert(off, v["event_id"].as_str().expect("id").to_owned());
        }
    }
    assert!(parsed_events.len() > 100 && parsed_quarantine.len() >= 5);

    // backfill: the whole file into table A.
    let out = run(risktail()
        .current_dir(dir)
        .args(["backfill", "--config"])
        .arg(config(dir, "a")));
    assert!(out.status.success(), "{}", stderr(&out));

    // run: the daemon into table B, stopped once it has every row.
    let log = std::fs::File::create(dir.join("daemon.log")).expect("log");
    let mut child = risktail()
        .current_dir(dir)
        .args(["run", "--config"])
        .arg(config(dir, "b"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("run starts");
    let deadline = Instant::now() + Duration::from_secs(60);
    let b = dir.join("b/risk_events");
    let bq = dir.join("b/risk_events_quarantine");
    while (table_rows(&b, false).len() < parsed_events.len()
        || table_rows(&bq, true).len() < parsed_quarantine.len())
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    let term = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(term.success());
    assert_eq!(child.wait().expect("exit").code(), Some(0));

    let events_a = table_rows(&dir.join("a/risk_events"), false);
    let events_b = table_rows(&b, false);
    let quarantine_a = table_rows(&dir.join("a/risk_events_quarantine"), true);
    let quarantine_b = table_rows(&bq, true);
    eprintln!(
        "parse {} events {} quarantined; backfill {}/{}; run {}/{}",
        parsed_events.len(),
        parsed_quarantine.len(),
        events_a.len(),
        quarantine_a.len(),
        events_b.len(),
        quarantine_b.len()
    );
    assert_eq!(events_a.len(), parsed_events.len(), "backfill vs parse");
    for (off, id) in &parsed_events {
        let row = &events_a[off];
        assert!(row.contains(&format!("event_id={id}")), "{off}: {row}");
    }
    let reasons: BTreeMap<i64, String> = quarantine_a
        .iter()
        .map(|(o, r)| {
            let reason = r
                .split(" | ")
                .find_map(|c| c.strip_prefix("reason="))
                .expect("reason");
            (*o, reason.to_owned())
        })
        .collect();
    assert_eq!(reasons, parsed_quarantine, "backfill vs parse (quarantine)");
    assert_eq!(events_a, events_b, "backfill vs run: every column");
    assert_eq!(quarantine_a, quarantine_b, "backfill vs run (quarantine)");
}
