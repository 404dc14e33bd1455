//! The command line as a user meets it: help, errors that name the file and
//! key, stdin, exit codes, and a new message kind added without a rebuild.

use std::io::Write;
use std::process::Stdio;

use crate::util::{risktail, run, run_python, stderr, stdout};

#[test]
fn help_teaches() {
    let out = run(risktail().arg("--help"));
    assert!(out.status.success());
    let text = stdout(&out);
    assert!(text.contains("parse"), "{text}");
    let out = run(risktail().args(["parse", "--help"]));
    let text = stdout(&out);
    assert!(
        text.contains("Examples:") && text.contains("--quarantine"),
        "{text}"
    );
    // Each example on its own line, ready to copy.
    for cmd in ["parse", "backfill", "status", "state", "report"] {
        let text = stdout(&run(risktail().args([cmd, "--help"])));
        let examples: Vec<&str> = text
            .lines()
            .skip_while(|l| !l.starts_with("Examples:"))
            .skip(1)
            .take_while(|l| !l.trim().is_empty())
            .collect();
        assert!(examples.len() >= 2, "{cmd}: {text}");
        assert!(
            examples
                .iter()
                .all(|l| l.trim_start().starts_with("risktail ")
                    || l.trim_start().starts_with("tail ")),
            "{cmd}: {examples:?}"
        );
    }
}

#[test]
fn bad_config_names_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("risktail.toml");
    std::fs::write(&cfg, "[table]\nuri = \"t\"\n[[source]]\nname = \"e\"\npaths = [\"x.log\"]\nenvelope = \"python\"\ntimezon = \"UTC\"\n").unwrap();
    let out = run(risktail().args(["parse", "--config"]).arg(&cfg));
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains(&cfg.display().to_string()) && err.contains("timezon"),
        "{err}"
    );

    std::fs::write(&cfg, "[table]\nuri = \"t\"\n[[source]]\nname = \"e\"\npaths = [\"x.log\"]\nenvelope = \"python\"\nformat = \"%(asctime)s %(levelname)-8q %(message)s\"\n").unwrap();
    let out = run(risktail().args(["parse", "--config"]).arg(&cfg));
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("source[0] (e).format") && err.contains("at character 12"),
        "{err}"
    );
}

#[test]
fn missing_input_is_named_and_the_rest_is_still_read() {
    let out = run(risktail().args([
        "parse",
        "--config",
        "tests/corpus/python_default/config.toml",
        "tests/corpus/does-not-exist.log",
        "tests/corpus/python_default/input.log",
    ]));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("does-not-exist.log"));
    assert_eq!(stdout(&out).lines().count(), 23);
}

#[test]
fn reads_stdin() {
    let mut child = risktail()
        .args([
            "parse",
            "--config",
            "tests/corpus/python_default/config.toml",
            "-",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"2026-01-28 10:30:00,123 - v6.risk - WARNING - Entry REJECTED by portfolio limits: Position count 11 would exceed limit 10\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(v["limit_type"], "position_count");
    assert_eq!(v["current_value"], 11.0);
    assert_eq!(v["source_file"], "-");
    assert_eq!(v["timestamp"], "2026-01-28T15:30:00.123000Z");
}

/// The pattern language works without recompiling: a new message kind in a
/// new file is parsed, and a broken file is refused with its name and pattern.
#[test]
fn a_new_message_kind_from_a_pattern_file_needs_no_rebuild() {
    let dir = tempfile::tempdir().unwrap();
    let pdir = dir.path().join("my-patterns");
    std::fs::create_dir(&pdir).unwrap();
    std::fs::write(
        dir.path().join("risktail.toml"),
        "[table]\nuri = \"lake/risk_events\"\n[patterns]\ndirs = [\"my-patterns\"]\n\
         [[source]]\nname = \"engine\"\npaths = [\"engine.log\"]\nenvelope = \"python\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("engine.log"),
        "2026-01-28 10:30:00,000 - v6.risk.kill_switch - CRITICAL - Kill switch ENGAGED: daily loss $12,500.50 over limit $10,000.00 (by ops)\n\
         2026-01-28 10:31:00,000 - v6.risk.circuit_breaker - ERROR - Circuit breaker OPENED: 5 failures in 300s window (threshold 5)\n",
    )
    .unwrap();
    let parse = || {
        run(risktail()
            .current_dir(dir.path())
            .args(["parse", "--quarantine"]))
    };

    // Before: the line has no keyword, so it is noise; the built-in patterns still work.
    let out = parse();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).lines().count(), 1);

    std::fs::write(
        pdir.join("kill_switch.toml"),
        r#"component = "kill_switch"
keywords = ["Kill switch"]

[[pattern]]
name = "engaged"
event_type = "kill_switch_engaged"
regex = '^Kill switch ENGAGED: daily loss (?P<current_value>\S+) over limit (?P<limit_value>\S+) \(by (?P<metadata.operator>\w+)\)'
set = { limit_type = "daily_loss", allowed = false }
levels = ["CRITICAL"]
"#,
    )
    .unwrap();
    let out = parse();
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    let k = &lines[0];
    assert_eq!(k["event_type"], "kill_switch_engaged");
    assert_eq!(k["component"], "kill_switch");
    assert_eq!(k["current_value"], 12500.5);
    assert_eq!(k["limit_value"], 10000.0);
    assert_eq!(k["allowed"], false);
    assert_eq!(k["metadata"], r#"{"operator":"ops"}"#);
    assert_eq!(lines[1]["event_type"], "circuit_breaker_state_change");
    assert!(stderr(&out).contains("kill_switch_engaged"));

    // A broken pattern file keeps the daemon from starting and says where.
    std::fs::write(pdir.join("broken.toml"), "component = \"x\"\nkeywords = [\"X\"]\n[[pattern]]\nname = \"bad\"\nevent_type = \"x\"\nregex = '^X (unclosed'\n").unwrap();
    let out = parse();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("broken.toml") && err.contains("pattern \"bad\""),
        "{err}"
    );
}

/// `status --json` says what the table holds of each file, and its lag check
/// fails exactly when a source has bytes not committed for longer than asked.
/// `status` reads and changes nothing: before the first commit it says the
/// table does not exist yet (exit 3); after it, offsets, lag and the check.
#[test]
fn status_json_and_its_lag_check() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    std::fs::create_dir(dir.join("logs")).expect("logs");
    let line = "2026-01-28 10:00:00,000 - v6.risk - WARNING - Circuit breaker OPENED: 5 failures in 300s window (threshold 5)\n";
    std::fs::write(dir.join("logs/engine.log"), line.repeat(3)).expect("log");
    std::fs::write(
        dir.join("risktail.toml"),
        "[table]\nuri = \"lake/risk_events\"\n[[source]]\nname = \"engine\"\npaths = [\"logs/engine.log\"]\nenvelope = \"python\"\n",
    )
    .expect("config");
    // Before anything was committed: status says so, and changes nothing
    // (it once created both tables; a mistyped uri left one behind).
    let out = run(risktail().current_dir(dir).args(["status", "--json"]));
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("table lake/risk_events does not exist yet"),
        "{}",
        stderr(&out)
    );
    assert!(!dir.join("lake").exists(), "status created the table");
    let out = run(risktail().current_dir(dir).arg("backfill"));
    assert!(out.status.success(), "{}", stderr(&out));

    let status = |args: &[&str]| {
        let out = run(risktail()
            .current_dir(dir)
            .args(["status", "--json"])
            .args(args));
        let v: serde_json::Value =
            serde_json::from_str(&stdout(&out)).unwrap_or_else(|e| panic!("{e}: {}", stdout(&out)));
        (out.status.code(), v)
    };
    let (code, v) = status(&["--max-lag-seconds", "0"]);
    assert_eq!(code, Some(0), "nothing behind: no lag, whatever the bound");
    let src = &v["sources"][0];
    assert_eq!(src["name"], "engine");
    assert_eq!(src["bytes_behind"], 0);
    assert_eq!(src["files"][0]["size"], (line.len() * 3) as u64);
    assert_eq!(src["files"][0]["committed"], (line.len() * 3) as u64);
    assert!(v["version"].as_u64().is_some() && v["last_commit"].is_string());
    assert!(
        v["last_commit_age_seconds"]
            .as_f64()
            .is_some_and(|a| a >= 0.0)
    );

    // The engine writes on; nothing commits it.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.join("logs/engine.log"))
        .expect("open");
    f.write_all(line.as_bytes()).expect("append");
    let (code, v) = status(&["--max-lag-seconds", "0"]);
    assert_eq!(code, Some(1), "{v}");
    assert_eq!(v["lagging"][0], "engine");
    assert_eq!(v["sources"][0]["bytes_behind"], line.len() as u64);
    assert!(
        v["sources"][0]["lag_seconds"]
            .as_f64()
            .is_some_and(|l| l > 0.0)
    );
    let (code, v) = status(&["--max-lag-seconds", "86400"]);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["lagging"].as_array().map(Vec::len), Some(0));
    every_command_takes_a_closed_stdout(dir);
}

/// Each printing command, its reader gone before it writes (as `| head`
/// leaves it), ends as it does when read to the end: the same exit status,
/// no panic (they panicked with "failed printing to stdout").
fn every_command_takes_a_closed_stdout(dir: &std::path::Path) {
    let commands: [&[&str]; 9] = [
        &["status"],
        &["status", "--json"],
        &["report"],
        &["report", "--json"],
        &["state", "--at", "2026-01-28T15:00:00Z"],
        &["verify"],
        &["backfill"],
        &["completions", "bash"],
        &["manpage"],
    ];
    for args in commands {
        let read = run(risktail().current_dir(dir).args(args));
        let (reader, writer) = std::io::pipe().expect("pipe");
        drop(reader);
        let closed = run(risktail().current_dir(dir).args(args).stdout(writer));
        assert!(!read.stdout.is_empty(), "{args:?} printed nothing");
        assert_eq!(
            (closed.status.code(), read.status.code()),
            (read.status.code(), read.status.code()),
            "{args:?}: {}",
            stderr(&closed)
        );
        assert!(
            !stderr(&closed).contains("panicked"),
            "{args:?}: {}",
            stderr(&closed)
        );
    }
}

/// Nothing dropped silently, in every envelope: a record cut by a crash with
/// the restarted engine's next record on the same line gives that record's
/// event and a quarantine row for the cut part; in JSON a keyword line that
/// is no JSON object is quarantined, never taken as a continuation.
#[test]
fn fused_and_malformed_lines_keep_every_record() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    let init =
        "Circuit breaker initialized: state=CLOSED, failure_threshold=5, window=300s, cooldown=60s";
    let json = [
        r#"{"asctime": "2026-01-28 10:30:00,123", "name": "v6.risk", "levelname": "WARNING", "message": "Circuit breaker OPENED: 5 failures in 300s window (threshold 5)"}"#.to_owned(),
        format!(r#"{{"asctime": "2026-01-28 10:31:00,000", "name": "v6.risk", "levelname": "WARNING", "message": "Circuit breaker OPEN{{"asctime": "2026-01-28 10:32:00,000", "name": "v6.risk", "levelname": "INFO", "message": "{init}"}}"#),
        r#"{"asctime": "2026-01-28 10:33:00,000", "name": "v6.risk", "levelname": "INFO", "message": "Circuit breaker HALF_OPEN: cooldown of 60s elapsed, allowing test trades"}"#.to_owned(),
        "garbage ~~ Circuit breaker ~~ \u{1}".to_owned(),
    ];
    let python = [
        "2026-01-28 10:30:00,123 - v6.risk - WARNING - Circuit breaker OPENED: 5 failures in 300s window (threshold 5)".to_owned(),
        format!("2026-01-28 10:31:00,000 - v6.risk - WARNING - Circuit breaker OPEN2026-01-28 10:32:00,000 - v6.risk - INFO - {init}"),
        format!("  File \"/opt/engine/risk.py\", line 7, in record_fai2026-01-28 10:34:00,000 - v6.risk - INFO - {init}"),
        "2026-01-28 10:35:00,000 - v6.risk - INFO - Circuit breaker HALF_OPEN: cooldown of 60s elapsed, allowing test trades".to_owned(),
    ];
    for (envelope, lines, events, quarantined) in [("json", &json, 3, 2), ("python", &python, 4, 2)]
    {
        let log = dir.join(format!("{envelope}.log"));
        std::fs::write(&log, lines.join("\n") + "\n").expect("log");
        let conf = dir.join(format!("{envelope}.toml"));
        std::fs::write(
            &conf,
            format!("[table]\nuri = \"t\"\n[[source]]\nname = \"e\"\npaths = [\"{envelope}.log\"]\nenvelope = \"{envelope}\"\n"),
        )
        .expect("config");
        let out = run(risktail()
            .current_dir(dir)
            .args(["parse", "--quarantine", "-c"])
            .arg(&conf));
        assert!(out.status.success(), "{}", stderr(&out));
        let rows: Vec<serde_json::Value> = stdout(&out)
            .lines()
            .map(|l| serde_json::from_str(l).expect("json"))
            .collect();
        let (q, e): (Vec<_>, Vec<_>) = rows.iter().partition(|r| r["quarantine"] == true);
        assert_eq!(e.len(), events, "{envelope} events: {rows:#?}");
        assert_eq!(q.len(), quarantined, "{envelope} quarantine: {rows:#?}");
        assert!(
            q.iter().all(|r| r["reason"] == "malformed_record"),
            "{q:#?}"
        );
        // The record after the cut is an event of its own, at its own offset.
        let second = lines[0].len() as u64 + 1;
        let inits: Vec<_> = e
            .iter()
            .filter(|r| r["event_type"] == "circuit_breaker_init")
            .collect();
        assert_eq!(
            inits[0]["raw_line"]
                .as_str()
                .map(|s| s.contains(init) && !s.contains("OPEN")),
            Some(true)
        );
        assert!(
            inits[0]["source_offset"].as_u64().unwrap() > second,
            "{:?}",
            inits[0]
        );
        assert_eq!(q[0]["source_offset"].as_u64(), Some(second));
        assert!(
            stderr(&out).contains(&format!("{quarantined} quarantined")),
            "{}",
            stderr(&out)
        );
    }
}

/// `backfill` and `status` read every file's offsets in one pass over the
/// log (`sink::txn_index`): across a checkpoint (60 files, a commit each,
/// half of them before a checkpoint the `deltalake` package wrote) a second
/// backfill adds no row twice and writes a checkpoint at its end; after a
/// commit past that one, status's committed offsets are what that package's
/// own `transaction_version` says of each file, a file with bytes behind
/// included.
#[test]
fn offsets_across_a_checkpoint_are_what_deltalake_says() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    std::fs::create_dir(dir.join("logs")).expect("logs");
    let line = |f: usize, i: usize| {
        format!(
            "2026-01-28 {:02}:{:02}:{i:02},000 - v6.risk - WARNING - Circuit breaker OPENED: {f} failures in 300s window (threshold 5)\n",
            (60 - f) / 6,
            (60 - f) % 6 * 10
        )
    };
    for f in 0..60 {
        let name = if f == 0 {
            "engine.log".to_owned()
        } else {
            format!("engine.log.{f}")
        };
        let text: String = (0..2).map(|i| line(f, i)).collect();
        std::fs::write(dir.join("logs").join(name), text).expect("log");
    }
    std::fs::write(
        dir.join("risktail.toml"),
        "[table]\nuri = \"lake/risk_events\"\n[[source]]\nname = \"engine\"\npaths = [\"logs/engine.log\"]\nenvelope = \"python\"\n",
    )
    .expect("config");
    // The older half, a commit a file; a checkpoint by the `deltalake`
    // package; then the newer half: offsets on both sides of it.
    let backfill = |paths: &[&str]| {
        let out = run(risktail().current_dir(dir).arg("backfill").args(paths));
        assert!(out.status.success(), "{}", stderr(&out));
    };
    backfill(&["logs/engine.log.[3-5][0-9]"]);
    let theirs = run_python(
        &[
            "-c",
            "import deltalake\nt = deltalake.DeltaTable('lake/risk_events')\nt.create_checkpoint()\nprint(t.version())",
        ],
        dir,
    );
    let theirs: u64 = stdout(&theirs).trim().parse().expect("version");
    backfill(&[]);
    let versions = |suffix: &str| -> Vec<u64> {
        std::fs::read_dir(dir.join("lake/risk_events/_delta_log"))
            .expect("log")
            .filter_map(|e| {
                let name = e.ok()?.file_name().to_string_lossy().into_owned();
                name.strip_suffix(suffix)?.parse().ok()
            })
            .collect()
    };
    // 30 commits past deltalake's checkpoint: the backfill wrote one at its
    // newest version (the interval's, 49, was due on the way).
    let ours = versions(".checkpoint.parquet");
    let newest = versions(".json").into_iter().max();
    assert!(
        newest.is_some_and(|v| v >= theirs + 30) && ours.iter().max() == newest.as_ref(),
        "the backfill's end ({newest:?}) is not checkpointed after {theirs}: {ours:?}"
    );
    // The live file grows: a commit after that checkpoint, then a line
    // not committed.
    let append = |i: usize| {
        let mut live = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.join("logs/engine.log"))
            .expect("open");
        live.write_all(line(0, i).as_bytes()).expect("append");
    };
    append(2);
    backfill(&[]);
    append(3);
    let out = run(risktail().current_dir(dir).args(["status", "--json"]));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    let files = v["sources"][0]["files"].as_array().expect("files");
    assert_eq!(files.len(), 60);
    let ids: Vec<&str> = files
        .iter()
        .filter_map(|f| f["identity"].as_str())
        .collect();
    let code = format!(
        "import deltalake, json\nt = deltalake.DeltaTable('lake/risk_events')\nprint(json.dumps([t.to_pyarrow_table().num_rows] + [t.transaction_version('risktail/engine/' + i) or 0 for i in {ids:?}]))"
    );
    let out = run_python(&["-c", &code], dir);
    let theirs: Vec<u64> = serde_json::from_str(stdout(&out).trim()).expect("versions");
    let ours: Vec<u64> = files
        .iter()
        .filter_map(|f| f["committed"].as_u64())
        .collect();
    // The second backfill asked for the older half's offsets across the
    // checkpoint too: read wrong, it would have added those rows again.
    assert_eq!(
        theirs[0], 121,
        "rows: two lines in each of 60 files, one more"
    );
    assert_eq!(ours, theirs[1..]);
    assert!(
        files.iter().any(|f| f["bytes_behind"].as_u64() > Some(0)),
        "the live file has a line not committed"
    );
}
