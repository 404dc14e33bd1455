//! The nights the clocks change, against the engine's own clock: the engine
//! simulator (tests/samples/autumn.py) logs through Python's `logging` with
//! `TZ=America/New_York`, so every line prints what the engine's host
//! prints, and writes the true UTC instant of every risk line beside the
//! log. Each test backfills the night some way and has polars read the
//! table against that truth (tests/readers/against_truth.py): no row
//! missing, doubled or shifted, and every breaker row's `old_state` the
//! state the engine left.

use serde_json::Value;
use std::path::Path;

use crate::util::{Seeded, risktail, root, run, run_python, stderr, stdout};

/// Writes the night into `dir/logs` with `args` for autumn.py.
fn night(dir: &Path, args: &[&str]) -> Value {
    let logs = dir.join("logs");
    let script = root().join("tests/samples/autumn.py");
    let mut all = vec![script.to_str().expect("path"), logs.to_str().expect("path")];
    all.extend_from_slice(args);
    let out = run_python(&all, dir);
    assert!(out.status.success(), "autumn.py: {}", stderr(&out));
    serde_json::from_slice(&out.stdout).expect("autumn.py prints JSON")
}

/// The config for the night's envelope and format (truth.json says which).
fn config(dir: &Path) {
    let truth: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("logs/truth.json")).expect("truth"))
            .expect("truth JSON");
    let envelope = truth["envelope"].as_str().unwrap_or("python");
    let mut source = format!("envelope = \"{envelope}\"\n");
    if let Some(f) = truth["format"].as_str().filter(|_| envelope == "python") {
        source += &format!("format = \"{f}\"\n");
    }
    // A time that carries its offset (%z) wins over the zone: configured
    // wrong on purpose, a zone that was used would shift every row.
    let mut zone = "America/New_York";
    if let Some(d) = truth["datefmt"].as_str() {
        source += &format!("datefmt = \"{d}\"\n");
        if d.contains("%z") {
            zone = "Asia/Tokyo";
        }
    }
    std::fs::write(
        dir.join("risktail.toml"),
        format!(
            "[table]\nuri = \"lake/risk_events\"\n[[source]]\nname = \"engine\"\n\
             paths = [\"logs/engine.log\"]\n{source}timezone = \"{zone}\"\n"
        ),
    )
    .expect("config");
}

/// What polars reads of the table against the truth.
fn against_truth(dir: &Path) -> Value {
    against_truth_with(dir, &[])
}

/// The same with options for against_truth.py.
fn against_truth_with(dir: &Path, options: &[&str]) -> Value {
    let script = root().join("tests/readers/against_truth.py");
    let table = dir.join("lake/risk_events");
    let truth = dir.join("logs/truth.json");
    let mut args = vec![
        script.to_str().expect("path"),
        table.to_str().expect("path"),
        truth.to_str().expect("path"),
    ];
    args.extend_from_slice(options);
    let out = run_python(&args, dir);
    assert!(out.status.success(), "against_truth.py: {}", stderr(&out));
    serde_json::from_slice(&out.stdout).expect("against_truth.py prints JSON")
}

/// Every engine event once, at its instant, with the engine's old_state.
fn exact(seen: &Value, context: &str) {
    let n = |k: &str| seen[k].as_u64().unwrap_or(u64::MAX);
    assert_eq!(n("rows"), n("engine"), "{context}: {seen}");
    for k in ["missing", "extra", "doubled", "shifted", "old_state_wrong"] {
        assert_eq!(n(k), 0, "{context}: {k}: {seen}");
    }
}

/// Whether a backfill's summary says it added no row.
fn nothing_added(summary: &str) -> bool {
    summary.contains("\n  0 events and 0 quarantined lines added")
}

fn backfill(dir: &Path, files: &[String]) -> String {
    let out = run(risktail().current_dir(dir).arg("backfill").args(files));
    assert!(out.status.success(), "backfill {files:?}: {}", stderr(&out));
    stdout(&out)
}

/// The case: about a hundred gzipped rotated files across the
/// autumn night, backfilled with the config's path; a second run adds
/// nothing.
#[test]
fn the_autumn_night_backfilled_is_at_the_engines_instants() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    let made = night(dir, &["--gzip"]);
    assert!(made["files"].as_u64() > Some(50), "{made}");
    config(dir);
    backfill(dir, &[]);
    let seen = against_truth(dir);
    exact(&seen, "backfill of the night");
    eprintln!("per UTC hour, engine vs table: {}", seen["per_utc_hour"]);
    state_and_report_agree_with_the_engine(dir);
    let again = backfill(dir, &[]);
    assert!(nothing_added(&again), "{again}");
}

/// The same files, one `backfill FILE` call each, in a shuffled order
/// (archives arriving late and out of order), in another format. Every
/// timestamp exact; `old_state` exact but at each file's first breaker
/// line, whose state before is in the file before it, which may not be in
/// the table yet when files come one at a time out of order.
#[test]
fn the_autumn_night_file_by_file_in_any_order() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    night(dir, &["--gzip", "--format", "dmy", "--events", "1500"]);
    config(dir);
    let mut files = night_files(dir);
    let mut seed = Seeded(20);
    for i in (1..files.len()).rev() {
        files.swap(i, seed.next31() as usize % (i + 1));
    }
    for f in &files {
        backfill(dir, std::slice::from_ref(f));
    }
    let seen = against_truth_with(dir, &["--old-state-after-file-start"]);
    exact(&seen, "file by file, shuffled");
    // A second pass over the same files adds nothing.
    for f in &files {
        let again = backfill(dir, std::slice::from_ref(f));
        assert!(nothing_added(&again), "{f}: {again}");
    }
}

/// The property test across rotation kinds: both nights, in the python,
/// JSON and loguru envelopes, through each rotation the engine's hosts use
/// (size rotation, timed rotation whose dated names sort the repeated hour's
/// files among the first pass's, the real logrotate in create and
/// copytruncate mode, loguru's own), plain and gzipped, with risk lines in
/// the repeated hour logged up to 2 s before the line above them (threads); each backfilled whole, then file by file in a
/// shuffled order into a second table, then the night's later files first
/// and its archive after them into a third. Every row at the engine's
/// instant, none missing or doubled, `old_state` as the engine left it.
#[test]
fn every_rotation_kind_across_both_nights() {
    let mut seed = Seeded(41);
    for night_name in ["autumn", "spring"] {
        for rotate in [
            "size",
            "timed",
            "logrotate-create",
            "logrotate-copytruncate",
        ] {
            let mut formats = vec![
                ("python", false),
                ("json", true),
                ("dmy", true),
                ("offset", true),
            ];
            if rotate == "size" {
                formats.push(("loguru", true)); // loguru rotates by size itself
            }
            for (format, gz) in formats {
                let tmp = tempfile::tempdir().expect("tmp");
                let dir = tmp.path();
                let mut args = vec![
                    "--night", night_name, "--rotate", rotate, "--format", format,
                ];
                args.extend([
                    "--events",
                    "250",
                    "--max-bytes",
                    "10000",
                    "--out-of-order",
                    "12",
                ]);
                if gz {
                    args.push("--gzip");
                }
                let made = night(dir, &args);
                let context = format!("{night_name} {rotate} {format} gzip={gz}: {made}");
                assert!(made["files"].as_u64() > Some(8), "{context}");
                config(dir);
                backfill(dir, &[]);
                exact(&against_truth(dir), &context);
                // The same files one at a time, shuffled, into a fresh table.
                std::fs::remove_dir_all(dir.join("lake")).expect("lake");
                let mut files = night_files(dir);
                for i in (1..files.len()).rev() {
                    files.swap(i, seed.next31() as usize % (i + 1));
                }
                for f in &files {
                    backfill(dir, std::slice::from_ref(f));
                }
                let seen = against_truth_with(dir, &["--old-state-after-file-start"]);
                exact(&seen, &format!("{context}, file by file"));
                // The night's later files first (the days after it), then
                // the night's archive in one call, into a fresh table.
                std::fs::remove_dir_all(dir.join("lake")).expect("lake");
                let by_age = files_by_write_time(dir);
                let (older, later) = by_age.split_at(by_age.len() * 2 / 3);
                backfill(dir, later);
                backfill(dir, older);
                let seen = against_truth_with(dir, &["--old-state-after-file-start"]);
                exact(&seen, &format!("{context}, the archive after later days"));
                eprintln!("{context}: exact on all three paths");
            }
        }
    }
}

/// The night's log files, as `logs/NAME`, oldest written first.
fn files_by_write_time(dir: &Path) -> Vec<String> {
    let mut files = night_files(dir);
    let written = |f: &String| {
        std::fs::metadata(dir.join(f))
            .and_then(|m| m.modified())
            .expect("mtime")
    };
    files.sort_by_key(written);
    files
}

/// The night's log files, as `logs/NAME`, sorted by name.
fn night_files(dir: &Path) -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(dir.join("logs"))
        .expect("logs")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("engine."))
        .map(|n| format!("logs/{n}"))
        .collect();
    files.sort();
    files
}

/// One file, no rotation, with risk lines inside the repeated hour logged up
/// to 2 s before the line above them (two threads of one engine).
#[test]
fn threads_out_of_order_in_the_repeated_hour_stay_in_their_pass() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    let made = night(dir, &["--max-bytes", "0", "--out-of-order", "60"]);
    assert_eq!(made["out_of_order"].as_u64(), Some(60), "{made}");
    config(dir);
    backfill(dir, &[]);
    exact(&against_truth(dir), "threads out of order");
}

/// The same file backfilled on several threads, cut into stretches small
/// enough that many start inside the repeated hour (each first parsed
/// without the time before it): every row still at the engine's instant.
#[test]
fn the_repeated_hour_cut_into_stretches_on_several_threads() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    let made = night(dir, &["--max-bytes", "0", "--out-of-order", "60"]);
    config(dir);
    let base = std::fs::read_to_string(dir.join("risktail.toml")).expect("config");
    let log_len = std::fs::metadata(dir.join("logs/engine.log"))
        .expect("log")
        .len();
    for (threads, stretch) in [(2, 1500), (8, 400), (3, 7000)] {
        assert!(log_len > 20 * stretch, "{log_len} bytes: {made}");
        std::fs::write(
            dir.join("risktail.toml"),
            format!("{base}[backfill]\nthreads = {threads}\nstretch_bytes = {stretch}\n"),
        )
        .expect("config");
        let _ = std::fs::remove_dir_all(dir.join("lake"));
        backfill(dir, &[]);
        exact(
            &against_truth(dir),
            &format!("{threads} threads, stretches of {stretch} bytes"),
        );
    }
}

/// The spring night (02:00-03:00 skipped) through rotation and gzip.
#[test]
fn the_spring_night_backfilled_is_at_the_engines_instants() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    night(dir, &["--night", "spring", "--gzip", "--events", "1500"]);
    config(dir);
    backfill(dir, &[]);
    exact(&against_truth(dir), "spring night");
}

/// The live daemon through the autumn night, the engine rotating into gzip
/// every ~16 KB while it writes, the daemon SIGKILLed three times on the
/// way: every event at its instant, once, with its old_state.
#[test]
fn the_live_daemon_through_the_autumn_night_with_kills() {
    use std::process::{Child, Stdio};
    use std::time::{Duration, Instant};
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    std::fs::create_dir(dir.join("logs")).expect("logs");
    std::fs::write(
        dir.join("risktail.toml"),
        "[table]\nuri = \"lake/risk_events\"\n[flush]\ninterval_ms = 200\n[[source]]\nname = \"engine\"\n\
         paths = [\"logs/engine.log\"]\nenvelope = \"python\"\n\
         format = \"%(asctime)s - %(name)s - %(levelname)s - %(message)s\"\ntimezone = \"America/New_York\"\n",
    )
    .expect("config");
    let daemon = || -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("daemon.log"))
            .expect("log");
        risktail()
            .current_dir(dir)
            .arg("run")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("run")
    };
    let mut d = daemon();
    let script = root().join("tests/samples/autumn.py");
    let logs = dir.join("logs");
    let mut engine = std::process::Command::new(crate::util::python())
        .args([script.to_str().expect("path"), logs.to_str().expect("path")])
        .args(["--gzip", "--events", "1500", "--pace", "0.05"])
        .current_dir(dir)
        .stdout(Stdio::null())
        .spawn()
        .expect("autumn.py");
    let start = Instant::now();
    for at in [800, 1900, 3100] {
        if let Some(wait) = Duration::from_millis(at).checked_sub(start.elapsed()) {
            std::thread::sleep(wait);
        }
        d.kill().expect("SIGKILL");
        d.wait().expect("reaped");
        d = daemon();
    }
    assert!(engine.wait().expect("engine").success());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let behind = crate::util::status_json(dir, "risktail.toml", &[])
            .and_then(|s| s["sources"][0]["bytes_behind"].as_u64());
        if behind == Some(0) {
            break;
        }
        assert!(Instant::now() < deadline, "not caught up: {behind:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    std::process::Command::new("kill")
        .args(["-TERM", &d.id().to_string()])
        .status()
        .expect("kill");
    assert!(d.wait().expect("exit").success());
    exact(&against_truth(dir), "live through the night with kills");
    let out = run(risktail().current_dir(dir).arg("verify"));
    assert!(out.status.success(), "verify: {}", stdout(&out));
}

/// `state --at` just before and just after every breaker transition of the
/// repeated hour (both passes, 05:00-07:00 UTC), and `report`'s breaker and
/// entry counts over the night, against what the engine did.
fn state_and_report_agree_with_the_engine(dir: &Path) {
    let truth: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("logs/truth.json")).expect("truth"))
            .expect("truth JSON");
    let events = truth["events"].as_array().expect("events");
    let transitions: Vec<(i64, &str)> = events
        .iter()
        .filter_map(|e| Some((e["utc_ms"].as_i64()?, e["new_state"].as_str()?)))
        .collect();
    let fold = (1_793_509_200_000i64, 1_793_516_400_000i64); // 05:00Z, 07:00Z
    let at_ms = |t: i64| {
        transitions
            .iter()
            .filter(|(ms, _)| *ms <= t)
            .map(|(_, s)| *s)
            .next_back()
            .unwrap_or("")
    };
    let mut checked = 0;
    for &(ms, _) in transitions
        .iter()
        .filter(|(ms, _)| *ms >= fold.0 && *ms < fold.1)
        .step_by(30)
    {
        for t in [ms - 1, ms + 1] {
            let at = chrono::DateTime::from_timestamp_millis(t).expect("instant");
            let at = at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
            let out = run(risktail()
                .current_dir(dir)
                .args(["state", "--json", "--at", &at]));
            assert!(out.status.success(), "{}", stderr(&out));
            let v: Value = serde_json::from_slice(&out.stdout).expect("state JSON");
            assert_eq!(
                v["sources"][0]["breaker"].as_str().unwrap_or(""),
                at_ms(t),
                "state at {at}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 40, "{checked} instants");
    let out = run(risktail().current_dir(dir).args(["report", "--json"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let r: Value = serde_json::from_slice(&out.stdout).expect("report JSON");
    let t = &r["total"];
    let count = |f: &dyn Fn(&Value) -> bool| events.iter().filter(|e| f(e)).count() as u64;
    let b = &t["breaker"]["engine"];
    assert_eq!(
        b["opened"].as_u64(),
        Some(count(&|e| e["new_state"] == "OPEN")),
        "{b}"
    );
    assert_eq!(
        b["recovered"].as_u64(),
        Some(count(&|e| e["new_state"] == "CLOSED")),
        "{b}"
    );
    assert_eq!(b["reopened"].as_u64(), Some(0), "{b}");
    assert_eq!(
        t["entries_breaker_open"].as_u64(),
        Some(count(&|e| e["breaker"] == "OPEN")),
        "{t}"
    );
    assert_eq!(
        t["entries_breaker_half_open"].as_u64(),
        Some(count(&|e| e["breaker"] == "HALF_OPEN")),
        "{t}"
    );
}

/// The night in the other envelopes, through their own handlers: JSON lines
/// (python-json-logger, `asctime` local without offset) rotated and gzipped
/// by RotatingFileHandler, and loguru with its own size rotation and gzip
/// compression. Backfilled whole: every event at the engine's instant.
#[test]
fn the_autumn_night_in_json_and_loguru() {
    for envelope in ["json", "loguru"] {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path();
        night(dir, &["--gzip", "--format", envelope, "--events", "1500"]);
        config(dir);
        backfill(dir, &[]);
        exact(&against_truth(dir), envelope);
    }
}
