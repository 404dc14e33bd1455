//! Backfill against the real thing: logs written by Python's RotatingFileHandler
//! and WatchedFileHandler, rotated and compressed by the real logrotate, read
//! back by the real polars, deltalake and DuckDB packages.

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{
    Seeded, risktail, root, run, run_python, stderr, stdout, string_rows, table_rows_by,
};

fn write_config(dir: &Path, max_events: usize, extra: &str) {
    std::fs::write(
        dir.join("risktail.toml"),
        format!(
            "[table]\nuri = \"lake/risk_events\"\n[flush]\nmax_events = {max_events}\n\
             [backfill]\ncommit_rows = {max_events}\n\
             [[source]]\nname = \"engine\"\npaths = [\"logs/engine.log\"]\nenvelope = \"python\"\n\
             timezone = \"America/New_York\"\n{extra}"
        ),
    )
    .expect("write config");
}

fn backfill(dir: &Path) -> std::process::Output {
    run(risktail().current_dir(dir).arg("backfill"))
}

/// What the readers see (tests/readers/check.py).
fn readers(dir: &Path) -> Value {
    let out = run_python(
        &[
            &root().join("tests/readers/check.py").to_string_lossy(),
            "lake/risk_events",
            "lake/risk_events_quarantine",
        ],
        dir,
    );
    serde_json::from_slice(&out.stdout).expect("check.py prints JSON")
}

fn sample(dir: &Path, args: &[&str]) -> BTreeMap<String, u64> {
    let out_dir = dir.join("logs").to_string_lossy().into_owned();
    let mut a = vec![
        root()
            .join("tests/samples/generate.py")
            .to_string_lossy()
            .into_owned(),
        "--out".into(),
        out_dir,
    ];
    a.extend(args.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = a.iter().map(String::as_str).collect();
    let out = run_python(&refs, dir);
    serde_json::from_slice(&out.stdout).expect("generator prints counts")
}

fn by_type(v: &Value) -> BTreeMap<String, u64> {
    v["polars"]["by_type"]
        .as_object()
        .expect("by_type")
        .iter()
        .map(|(k, n)| (k.clone(), n.as_u64().expect("count")))
        .collect()
}

/// RotatingFileHandler logs, some generations gzipped: every risk line the
/// engine wrote is a row once, unknown wordings are quarantined, a second run
/// adds nothing, and polars, deltalake and DuckDB read the table as it is.
#[test]
fn rotating_file_handler_logs_backfill_exactly_once_and_every_reader_agrees() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut written = sample(dir, &["--max-bytes", "65536"]);
    let quarantined = written.remove("quarantine").unwrap_or(0);
    assert!(
        std::fs::read_dir(dir.join("logs")).unwrap().count() >= 8,
        "several generations"
    );
    write_config(dir, 10_000, "");

    let first = backfill(dir);
    assert!(
        first.status.success(),
        "{}{}",
        stdout(&first),
        stderr(&first)
    );
    let seen = readers(dir);
    assert_eq!(by_type(&seen), written, "{}", stdout(&first));
    let total: u64 = written.values().sum();
    assert_eq!(seen["polars"]["rows"], total);
    assert_eq!(seen["polars"]["distinct_event_ids"], total);
    assert_eq!(seen["quarantine"]["rows"], quarantined);
    assert!(
        seen["quarantine"]["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r == "unmatched_keyword")
    );

    // The readers, with no options.
    assert_eq!(seen["deltalake"]["rows"], total);
    assert_eq!(seen["deltalake"]["protocol"], serde_json::json!([1, 2]));
    assert_eq!(
        seen["deltalake"]["partitions"],
        serde_json::json!(["event_date"])
    );
    assert_eq!(
        seen["deltalake"]["schema"][3],
        "timestamp:timestamp[us, tz=UTC]:not null"
    );
    assert_eq!(
        seen["polars"]["schema"]["timestamp"],
        "Datetime(time_unit='us', time_zone='UTC')"
    );
    assert_eq!(seen["polars"]["schema"]["event_date"], "Date");
    assert_eq!(seen["polars"]["schema"]["failure_count"], "Int32");
    assert_eq!(
        seen["duckdb_delta_scan"]["rows"], total,
        "{}",
        seen["duckdb_delta_scan"]
    );
    assert_eq!(
        seen["duckdb_delta_scan"]["types"]["timestamp"],
        "TIMESTAMP WITH TIME ZONE"
    );
    assert_eq!(
        seen["duckdb_delta_scan"]["first"], "2026-01-26 14:25:01.025000+00:00",
        "09:25 New York is 14:25 UTC in January"
    );
    assert_eq!(seen["duckdb_dataset"]["rows"], total);
    assert_eq!(
        seen["duckdb_dataset"]["breaker_opens"],
        written["circuit_breaker_state_change"] as i64 / 7 * 3,
        "3 OPEN changes per 7 in the sample"
    );

    let second = backfill(dir);
    assert!(second.status.success());
    assert!(
        stdout(&second).contains("0 events and 0 quarantined lines added in 0 commits"),
        "{}",
        stdout(&second)
    );
    let again = readers(dir);
    assert_eq!(again["polars"]["rows"], total);
    assert_eq!(again["content"], seen["content"]);
}

/// logrotate with `compress` (no delaycompress), the engine writing through
/// WatchedFileHandler, backfills run between rotations as a user would: each
/// risk line once, and files already read come back as `.gz` without adding rows.
#[test]
fn logrotate_compress_with_backfills_in_between_is_exactly_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let logs = dir.join("logs");
    std::fs::create_dir(&logs).unwrap();
    write_config(dir, 7, "");
    std::fs::write(
        dir.join("logrotate.conf"),
        format!(
            "{}/engine.log {{\n  rotate 50\n  compress\n  create\n  missingok\n}}\n",
            logs.display()
        ),
    )
    .unwrap();
    let writer = r#"
import logging, logging.handlers, sys
h = logging.handlers.WatchedFileHandler(sys.argv[1])
h.setFormatter(logging.Formatter("%(asctime)s - %(name)s - %(levelname)s - %(message)s"))
lg = logging.getLogger("v6.risk.portfolio_limits"); lg.addHandler(h); lg.setLevel(logging.DEBUG)
noise = logging.getLogger("v6.feed"); noise.addHandler(h); noise.setLevel(logging.DEBUG)
r = int(sys.argv[2])
for i in range(int(sys.argv[3])):
    noise.debug("quote SPY bid=2.50 ask=2.55 seq=%d", i)
    lg.warning("Entry REJECTED by portfolio limits: Position count %d would exceed limit 10", 1000 * r + i)
"#;
    let logrotate = |state: &str| {
        let out = Command::new("logrotate")
            .args(["-f", "-s", state])
            .arg(dir.join("logrotate.conf"))
            .output()
            .expect("logrotate is installed (.ci/run installs it)");
        assert!(out.status.success(), "logrotate: {}", stderr(&out));
    };
    let state = dir.join("logrotate.state").to_string_lossy().into_owned();
    let mut total = 0;
    for round in 0..5 {
        let n = 40 + round * 13;
        run_python(
            &[
                "-c",
                writer,
                &logs.join("engine.log").to_string_lossy(),
                &round.to_string(),
                &n.to_string(),
            ],
            dir,
        );
        total += n;
        if round % 2 == 1 {
            let out = backfill(dir);
            assert!(out.status.success(), "{}", stderr(&out));
        }
        logrotate(&state);
    }
    let gz = std::fs::read_dir(&logs)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".gz")
        })
        .count();
    assert_eq!(gz, 5, "logrotate compressed every generation");
    let out = backfill(dir);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("already in the table"),
        "{}",
        stdout(&out)
    );
    let seen = readers(dir);
    assert_eq!(seen["polars"]["rows"], total, "{}", stdout(&out));
    assert_eq!(seen["polars"]["distinct_event_ids"], total);
    let out = backfill(dir);
    assert!(
        stdout(&out).contains("0 events and 0 quarantined lines added in 0 commits"),
        "{}",
        stdout(&out)
    );
}

/// SIGKILL at random moments, re-run until done: the table holds exactly what
/// one clean run writes (every column but the read clock), in both tables.
#[test]
fn kill_nine_at_ten_random_moments_then_rerun_equals_one_clean_run() {
    let tmp = tempfile::tempdir().unwrap();
    let clean = tmp.path().join("clean");
    let killed = tmp.path().join("killed");
    std::fs::create_dir_all(&clean).unwrap();
    std::fs::create_dir_all(&killed).unwrap();
    sample(&clean, &["--max-bytes", "32768"]);
    // Same logs for both: copy, so ids (by content) match.
    std::fs::create_dir_all(killed.join("logs")).unwrap();
    for e in std::fs::read_dir(clean.join("logs")).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, killed.join("logs").join(p.file_name().unwrap())).unwrap();
    }
    // Small batches: many commits, so kills land between and inside them.
    write_config(&clean, 3, "");
    write_config(&killed, 3, "");

    let t0 = Instant::now();
    let out = backfill(&clean);
    let clean_time = t0.elapsed();
    assert!(out.status.success(), "{}", stderr(&out));

    // Deterministic pseudo-random kill delays (an LCG), spread over the run.
    let mut seed = Seeded(0x5eed_1234);
    let mut kills = 0;
    let mut attempts = 0;
    while kills < 10 {
        attempts += 1;
        assert!(
            attempts < 60,
            "could not land 10 kills in 60 attempts ({kills} landed)"
        );
        let frac = seed.next31() as f64 / (1u64 << 31) as f64;
        // Each killed run still commits some batches, so delays are a small
        // share of the clean run: ten kills then fall at ten different places.
        let delay = Duration::from_secs_f64(0.002 + frac * clean_time.as_secs_f64() * 0.08);
        let mut child = risktail()
            .current_dir(&killed)
            .arg("backfill")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            kills += 1;
        }
        child.wait().unwrap();
    }
    let out = backfill(&killed);
    assert!(out.status.success(), "{}", stderr(&out));

    let a = readers(&clean);
    let b = readers(&killed);
    assert_eq!(a["polars"]["rows"], b["polars"]["rows"]);
    assert_eq!(
        b["polars"]["rows"], b["polars"]["distinct_event_ids"],
        "no row doubled"
    );
    assert!(
        a["content"] == b["content"],
        "the killed-and-rerun table differs from the clean one"
    );
    assert_eq!(a["quarantine"]["content"], b["quarantine"]["content"]);
    assert!(a["quarantine"]["rows"].as_u64().unwrap() >= 3);
    eprintln!("landed {kills} kills in {attempts} attempts; clean run {clean_time:?}");
}

/// Someone else's table at the configured place is never written to or widened.
#[test]
fn a_table_with_another_schema_is_refused_with_the_columns_named() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    sample(dir, &["--days", "1"]);
    write_config(dir, 1000, "");
    run_python(
        &[
            "-c",
            "import pyarrow as pa, deltalake; deltalake.write_deltalake('lake/risk_events', pa.table({'event_id': ['a'], 'price': [1.0]}))",
        ],
        dir,
    );
    let out = backfill(dir);
    assert_eq!(out.status.code(), Some(3), "the table refused");
    let err = stderr(&out);
    assert!(err.contains("does not have risktail's schema"), "{err}");
    assert!(
        err.contains("price is not in risktail's schema") && err.contains("event_type is missing"),
        "{err}"
    );
}

/// A file that cannot be read fails the run with its name and exit status 1;
/// the files before it are still ingested.
#[test]
fn a_failed_file_is_named_and_fails_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    sample(dir, &["--days", "1", "--no-gzip"]);
    write_config(dir, 1000, "");
    let out = run(risktail().current_dir(dir).args([
        "backfill",
        "logs/engine.log",
        "logs/vanished.log.3",
    ]));
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("logs/vanished.log.3"),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).contains("logs/engine.log"), "{}", stdout(&out));
    let seen = readers(dir);
    assert!(seen["polars"]["rows"].as_u64().unwrap() > 0);
}

/// The engine's breaker, through Python's `logging` in zone `tz`: writes
/// `msgs` to `path` (mode "w" or "a"), the first at `start` (ISO 8601 with
/// its offset), the next `step` seconds apart, milliseconds zero.
fn write_breaker(
    dir: &Path,
    tz: &str,
    path: &str,
    mode: &str,
    start: &str,
    step: u64,
    msgs: &[&str],
) {
    let engine = r#"
import logging, os, sys, time, datetime as dt
os.environ["TZ"] = sys.argv[1]
time.tzset()
path, mode, start, step = sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5])
h = logging.FileHandler(path, mode=mode)
h.setFormatter(logging.Formatter("%(asctime)s - %(name)s - %(levelname)s - %(message)s"))
t = dt.datetime.fromisoformat(start).timestamp()
for i, msg in enumerate(sys.argv[6:]):
    rec = logging.getLogger("v6.risk.circuit_breaker").makeRecord("v6.risk.circuit_breaker", logging.WARNING, "x.py", 1, msg, None, None)
    rec.created = t + step * i
    rec.msecs = 0.0
    h.handle(rec)
h.close()
"#;
    let step = step.to_string();
    let mut args = vec!["-c", engine, tz, path, mode, start, &step];
    args.extend_from_slice(msgs);
    run_python(&args, dir);
}

const INIT: &str =
    "Circuit breaker initialized: state=CLOSED, failure_threshold=5, window=300s, cooldown=60s";
const OPENED: &str = "Circuit breaker OPENED: 5 failures in 300s window (threshold 5)";
const HALF_OPEN: &str = "Circuit breaker HALF_OPEN: cooldown of 60s elapsed, allowing test trades";
const CLOSED: &str = "Circuit breaker CLOSED: 3 consecutive successes in HALF_OPEN";
const REOPENED: &str =
    "Circuit breaker re-OPENED: failure during HALF_OPEN (Order rejected: price moved)";

/// Enrichment in time order: an archive backfilled after newer logs is
/// enriched with the breaker state the table has *before* it in time, not
/// with the newest state, and it never replaces the state the source resumes
/// from. The expected `old_state`s follow from the engine's sequence below.
#[test]
fn an_archive_backfilled_after_newer_logs_is_enriched_as_of_its_own_time() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    std::fs::create_dir_all(dir.join("archive")).unwrap();
    let (init, opened, half, reopened) = (INIT, OPENED, HALF_OPEN, REOPENED);
    let write = |path: &str, start: &str, mode: &str, msgs: &[&str]| {
        write_breaker(dir, "UTC", path, mode, &format!("{start}+00:00"), 60, msgs);
    };
    std::fs::write(
        dir.join("risktail.toml"),
        "[table]\nuri = \"lake/risk_events\"\n[[source]]\nname = \"engine\"\npaths = [\"logs/engine.log\"]\nenvelope = \"python\"\n",
    )
    .unwrap();
    let backfill = |args: &[&str]| {
        let out = run(risktail().current_dir(dir).arg("backfill").args(args));
        assert!(out.status.success(), "{}", stderr(&out));
    };
    // The newer logs first (a daemon had been running): ends OPEN.
    write(
        "logs/engine.log",
        "2026-01-20T10:00:00",
        "w",
        &[init, opened, half, reopened],
    );
    backfill(&[]);
    // Then last month's archive: ends HALF_OPEN.
    write(
        "archive/engine.log.2026-01-10",
        "2026-01-10T10:00:00",
        "w",
        &[init, opened, half],
    );
    backfill(&["archive/engine.log.2026-01-10"]);
    // The engine restarts and the live file goes on: the state before it is
    // the newer logs' OPEN, not the archive's HALF_OPEN.
    write("logs/engine.log", "2026-01-20T11:00:00", "a", &[init]);
    backfill(&[]);

    let columns = ["source_file", "raw_line", "old_state"];
    let mut rows: Vec<(String, String, String)> =
        string_rows(&dir.join("lake/risk_events"), &columns)
            .into_iter()
            .map(|r| (r[0].clone(), r[1].clone(), r[2].clone()))
            .collect();
    rows.sort();
    let got = &rows;
    let by_line = |which: &str, time: &str| -> String {
        rows.iter()
            .find(|(f, l, _)| f.contains(which) && l.starts_with(time))
            .map(|(_, _, o)| o.clone())
            .unwrap_or_else(|| panic!("no {which} row at {time}: {got:?}"))
    };
    // The archive: nothing before it in the table, then its own sequence.
    assert_eq!(
        by_line("archive", "2026-01-10 10:00:00"),
        "",
        "archive init: no state before it"
    );
    assert_eq!(by_line("archive", "2026-01-10 10:01:00"), "CLOSED");
    assert_eq!(by_line("archive", "2026-01-10 10:02:00"), "OPEN");
    // The live file, before and after the archive was read.
    assert_eq!(by_line("logs", "2026-01-20 10:01:00"), "CLOSED");
    assert_eq!(by_line("logs", "2026-01-20 10:03:00"), "HALF_OPEN");
    assert_eq!(
        by_line("logs", "2026-01-20 11:00:00"),
        "OPEN",
        "the restart after the archive was read: the state before it is the newer logs' OPEN"
    );
}

/// Creating the table is a race every loser wins too: four backfills (four
/// sources) started at once on a table that does not exist yet all succeed,
/// exactly one `_delta_log` entry holds the table's metadata (a losing
/// creation does not land as a later version replacing it), and every row is
/// there once. Five rounds.
#[test]
fn four_writers_creating_one_table_at_once_all_adopt_it() {
    let line = |i: usize| {
        format!(
            "2026-01-28 10:00:{:02},000 - v6.risk - WARNING - Entry REJECTED by portfolio limits: Position count {i} would exceed limit 10\n",
            i % 60
        )
    };
    for round in 0..5 {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        std::fs::create_dir(dir.join("logs")).unwrap();
        for s in 0..4 {
            let text: String = (0..25).map(|i| line(s * 100 + i)).collect();
            std::fs::write(dir.join(format!("logs/e{s}.log")), text).unwrap();
            std::fs::write(
                dir.join(format!("c{s}.toml")),
                format!(
                    "[table]\nuri = \"lake/risk_events\"\n[[source]]\nname = \"engine-{s}\"\npaths = [\"logs/e{s}.log\"]\nenvelope = \"python\"\n"
                ),
            )
            .unwrap();
        }
        let children: Vec<_> = (0..4)
            .map(|s| {
                risktail()
                    .current_dir(dir)
                    .args(["backfill", "-c", &format!("c{s}.toml")])
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for c in children {
            let out = c.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "round {round}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let with_metadata = std::fs::read_dir(dir.join("lake/risk_events/_delta_log"))
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .filter(|e| {
                std::fs::read_to_string(e.path())
                    .unwrap_or_default()
                    .contains("\"metaData\"")
            })
            .count();
        assert_eq!(
            with_metadata, 1,
            "round {round}: metadata written more than once"
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let ids = rt
            .block_on(risktail::sink::read::event_ids(
                &dir.join("lake/risk_events").to_string_lossy(),
            ))
            .unwrap();
        let distinct: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!((ids.len(), distinct.len()), (100, 100), "round {round}");
    }
}

/// Failure mode 11: an engine that writes a fixed banner before its first
/// record gives every file the same first line. Two such files are still two
/// files: after the first is ingested and rotated away, the second (shorter
/// than the first) is read from its start, not taken for the first one and
/// resumed at its offset. Then the daemon follows a third one the same way.
#[test]
fn files_that_start_with_the_same_banner_are_two_files() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    write_config(dir, 1000, "");
    let engine = r#"
import logging, sys
path, first, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
h = logging.FileHandler(path, mode="w")
h.stream.write("=== v6 trading engine: risk layers armed ===\n")
h.setFormatter(logging.Formatter("%(asctime)s - %(name)s - %(levelname)s - %(message)s"))
lg = logging.getLogger("v6.risk.portfolio_limits")
lg.addHandler(h)
for i in range(first, first + count):
    lg.warning("Entry REJECTED by portfolio limits: Position count %d would exceed limit 10", i)
h.close()
"#;
    let write = |first: usize, count: usize| {
        run_python(
            &[
                "-c",
                engine,
                "logs/engine.log",
                &first.to_string(),
                &count.to_string(),
            ],
            dir,
        );
    };
    let counts_in_table = || -> Vec<usize> {
        let mut got: Vec<usize> = string_rows(&dir.join("lake/risk_events"), &["raw_line"])
            .iter()
            .map(|row| {
                let n = row[0]
                    .split("Position count ")
                    .nth(1)
                    .and_then(|r| r.split(' ').next());
                n.and_then(|n| n.parse().ok()).expect("a writer line")
            })
            .collect();
        got.sort_unstable();
        got
    };
    write(0, 5);
    let out = backfill(dir);
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::rename(dir.join("logs/engine.log"), dir.join("logs/engine.log.1")).unwrap();
    write(5, 2);
    let out = backfill(dir);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(counts_in_table(), (0..7).collect::<Vec<_>>(), "backfill");

    // The daemon: a third file with the same banner, rotated in under it.
    std::fs::rename(dir.join("logs/engine.log.1"), dir.join("logs/engine.log.2")).unwrap();
    std::fs::rename(dir.join("logs/engine.log"), dir.join("logs/engine.log.1")).unwrap();
    write(7, 3);
    let mut daemon = risktail()
        .current_dir(dir)
        .arg("run")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run starts");
    let deadline = Instant::now() + Duration::from_secs(30);
    while counts_in_table().len() < 10 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status();
    let status = daemon.wait().expect("daemon exits");
    assert_eq!(counts_in_table(), (0..10).collect::<Vec<_>>(), "run");
    assert!(status.success(), "run exit status {status}");
}

/// Enrichment in time order, whichever order the files come in: three
/// archives (October; 1 November across the autumn hour, when New York's
/// clocks show 01:00–02:00 twice; 10 November as the live file) are
/// backfilled in time order into one table, and live first, then the
/// October archive, then the November one into another, then the engine
/// restarts on the live file in both. Every row, `old_state` and the autumn
/// hour's `timestamp` included, is the same in both tables, but one: the live
/// file's first line, read when nothing before it was in the table (rows are
/// never rewritten). The restart after the archives, and the archives
/// themselves, agree: a late archive neither takes the newer state nor
/// replaces the one the source resumes from.
#[test]
fn archives_in_any_order_give_the_rows_of_a_time_ordered_ingest() {
    let (init, opened, half, closed, reopened) = (INIT, OPENED, HALF_OPEN, CLOSED, REOPENED);
    let write = |dir: &Path, path: &str, mode: &str, start: &str, step: u64, msgs: &[&str]| {
        write_breaker(dir, "America/New_York", path, mode, start, step, msgs);
    };
    let files = |dir: &Path| {
        std::fs::create_dir_all(dir.join("logs")).unwrap();
        std::fs::create_dir_all(dir.join("archive")).unwrap();
        write_config(dir, 1000, "");
        // October: ends OPEN.
        write(
            dir,
            "archive/engine.log.2026-10-20",
            "w",
            "2026-10-20T14:00:00+00:00",
            60,
            &[init, opened, half, reopened],
        );
        // 1 November, every 20 minutes from 00:40 EDT to 02:00 EST: the
        // clock shows 01:00, 01:20 and 01:40 twice. Ends HALF_OPEN.
        write(
            dir,
            "archive/engine.log.2026-11-01",
            "w",
            "2026-11-01T04:40:00+00:00",
            1200,
            &[opened, half, closed, opened, half, reopened, half],
        );
        // 10 November, the live file: an engine restart, then a cycle.
        write(
            dir,
            "logs/engine.log",
            "w",
            "2026-11-10T15:00:00+00:00",
            60,
            &[init, opened, half, closed],
        );
    };
    let backfill_args = |dir: &Path, args: &[&str]| {
        let out = run(risktail().current_dir(dir).arg("backfill").args(args));
        assert!(out.status.success(), "{}", stderr(&out));
    };
    let restart = |dir: &Path| {
        write(
            dir,
            "logs/engine.log",
            "a",
            "2026-11-10T16:00:00+00:00",
            60,
            &[init, opened],
        );
        backfill_args(dir, &[]);
    };

    let in_order = tempfile::tempdir().unwrap();
    files(in_order.path());
    backfill_args(in_order.path(), &["archive/engine.log.2026-10-20"]);
    backfill_args(in_order.path(), &["archive/engine.log.2026-11-01"]);
    backfill_args(in_order.path(), &[]);
    restart(in_order.path());

    let any_order = tempfile::tempdir().unwrap();
    files(any_order.path());
    backfill_args(any_order.path(), &[]);
    backfill_args(any_order.path(), &["archive/engine.log.2026-10-20"]);
    backfill_args(any_order.path(), &["archive/engine.log.2026-11-01"]);
    restart(any_order.path());

    let a = table_rows_by(&in_order.path().join("lake/risk_events"), false, "event_id");
    let b = table_rows_by(
        &any_order.path().join("lake/risk_events"),
        false,
        "event_id",
    );
    assert_eq!(a.len(), 17, "every line a row: {a:#?}");
    // The expected autumn times, from what the writer wrote: 05:00Z is
    // 01:00 EDT, 06:00Z is 01:00 EST.
    let times: Vec<&String> = a.values().filter(|r| r.contains("2026-11-01")).collect();
    for utc in ["T05:00:00", "T06:00:00", "T05:40:00", "T06:40:00"] {
        assert!(
            times.iter().any(|r| r.contains(utc)),
            "no row at {utc}: {times:#?}"
        );
    }
    assert_eq!(a.len(), b.len());
    for (id, row) in &a {
        let other = b
            .get(id)
            .unwrap_or_else(|| panic!("row {id} missing: {row}"));
        // The one row that cannot agree: the live file's first line was
        // read before the archives were, when nothing came before it.
        if row.contains("source_offset=0 ") && row.contains("source_file=logs/engine.log ") {
            assert!(row.contains("old_state=HALF_OPEN "), "{row}");
            assert!(other.contains("old_state= "), "{other}");
            assert_eq!(row.replace("old_state=HALF_OPEN ", "old_state= "), *other);
            continue;
        }
        assert_eq!(row, other, "row {id} differs");
    }
}

/// The log retention: a table risktail creates keeps 30 days of log (see
/// `sink::table`); a table that holds an earlier release's default (2 hours,
/// or 2 days before that) gets 30 days at the next start; a value the team
/// set is kept by every later start (both tables). The properties are set
/// and read back by the Python `deltalake` package.
#[test]
fn the_log_retention_a_team_sets_is_kept() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    std::fs::create_dir(dir.join("logs")).expect("logs");
    write_config(dir, 1000, "");
    std::fs::write(
        dir.join("logs/engine.log"),
        "2026-01-28 10:00:00,000 - v6.risk - WARNING - Entry REJECTED by portfolio limits: Position count 1 would exceed limit 10\n",
    )
    .expect("log");
    let retention = |table: &str| {
        let out = run_python(
            &[
                "-c",
                "import sys; from deltalake import DeltaTable; print(DeltaTable(sys.argv[1]).metadata().configuration.get('delta.logRetentionDuration'))",
                table,
            ],
            dir,
        );
        stdout(&out).trim().to_owned()
    };
    let set = |table: &str, value: &str| {
        let out = run_python(
            &[
                "-c",
                "import sys; from deltalake import DeltaTable; DeltaTable(sys.argv[1]).alter.set_table_properties({'delta.logRetentionDuration': sys.argv[2]})",
                table,
                value,
            ],
            dir,
        );
        assert!(out.status.success(), "{}", stderr(&out));
    };
    let tables = ["lake/risk_events", "lake/risk_events_quarantine"];
    assert!(backfill(dir).status.success());
    for (t, old) in tables.iter().zip(["interval 2 hours", "interval 2 days"]) {
        assert_eq!(retention(t), "interval 30 days", "{t}: a new table");
        set(t, old); // what an earlier release created it with
    }
    assert!(backfill(dir).status.success());
    for t in tables {
        assert_eq!(retention(t), "interval 30 days", "{t}: raised");
        set(t, "interval 60 days"); // the team's choice
    }
    assert!(backfill(dir).status.success());
    for t in tables {
        assert_eq!(
            retention(t),
            "interval 60 days",
            "{t}: the team's value kept"
        );
    }
}

/// A backfill that leaves the table ten or more versions past its newest
/// checkpoint writes one at its end, so its readers open one file instead of
/// replaying its commits; one that adds a version or two writes none. The
/// rows `deltalake` reads through that checkpoint are the generator's.
#[test]
fn a_backfill_of_many_commits_leaves_a_checkpoint_at_its_end() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    let written = sample(dir, &["--max-bytes", "0", "--no-gzip"]);
    let total: u64 = written
        .iter()
        .filter(|(k, _)| *k != "quarantine")
        .map(|(_, n)| n)
        .sum();
    write_config(dir, 25, "");
    let first = backfill(dir);
    assert!(first.status.success(), "{}", stderr(&first));
    let log = dir.join("lake/risk_events/_delta_log");
    let newest = |suffix: &str| -> Option<u64> {
        std::fs::read_dir(&log)
            .expect("log")
            .filter_map(|e| {
                let name = e.ok()?.file_name().to_string_lossy().into_owned();
                name.strip_suffix(suffix)?.parse().ok()
            })
            .max()
    };
    let version = newest(".json").expect("commits");
    assert!(
        (10..49).contains(&version),
        "a sample of {total} events in commits of 25 rows makes dozens of versions, none on the interval: {version}"
    );
    assert_eq!(
        newest(".checkpoint.parquet"),
        Some(version),
        "the backfill's end is checkpointed"
    );
    let out = run_python(
        &[
            "-c",
            "import deltalake\nt = deltalake.DeltaTable('lake/risk_events')\nprint(t.version(), t.to_pyarrow_table().num_rows)",
        ],
        dir,
    );
    assert_eq!(stdout(&out).trim(), format!("{version} {total}"));

    // A line more: a commit or two, no checkpoint.
    let mut live = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.join("logs/engine.log"))
        .expect("open");
    std::io::Write::write_all(
        &mut live,
        b"2027-12-31 10:00:00,000 - v6.risk - WARNING - Entry REJECTED by portfolio limits: Position count 1 would exceed limit 10\n",
    )
    .expect("append");
    let second = backfill(dir);
    assert!(second.status.success(), "{}", stderr(&second));
    assert!(newest(".json") > Some(version), "{}", stdout(&second));
    assert_eq!(newest(".checkpoint.parquet"), Some(version));
}
