//! `risktail verify` against tables broken on purpose with the Python
//! `deltalake` package (what a careless tool, or a bug, would do): each fault
//! is named by file and offset, and an untouched table verifies clean.

use serde_json::Value;
use std::path::Path;

use crate::util::{engine_writer, risktail, run, run_python, stderr, stdout};

/// A local table backfilled from 300 risk lines of a size-rotating engine
/// with each rotated file gzipped (a line to quarantine every 25th).
fn table() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    std::fs::create_dir(dir.join("logs")).expect("logs");
    std::fs::write(
        dir.join("risktail.toml"),
        "[table]\nuri = \"lake/risk_events\"\n[backfill]\ncommit_rows = 40\n\
         [[source]]\nname = \"engine\"\npaths = [\"logs/engine.log\"]\nenvelope = \"python\"\n",
    )
    .expect("config");
    let out = engine_writer("rotating-gz", "logs/engine.log", 0, 300, "0")
        .env("WRITER_QUARANTINE_EVERY", "25")
        .current_dir(dir)
        .output()
        .expect("writer");
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(risktail().current_dir(dir).arg("backfill"));
    assert!(out.status.success(), "{}", stderr(&out));
    tmp
}

/// `verify --json`: the exit code and what it printed.
fn verify(dir: &Path) -> (i32, Value) {
    let out = run(risktail().current_dir(dir).args(["verify", "--json"]));
    let v = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code().unwrap_or(-1), v)
}

/// Runs Python with the `deltalake` package on the events table. It exits
/// with `os._exit(0)` once `code` ran: the package's runtime can abort at
/// interpreter teardown, after the work is done (an exception in `code`
/// still fails the run before that line).
fn python(dir: &Path, code: &str) {
    let code =
        format!("{code}\nimport os, sys\nsys.stdout.flush(); sys.stderr.flush(); os._exit(0)\n");
    let out = run_python(&["-c", &code, "lake/risk_events"], dir);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// The files' faults of one kind, as (path, offsets).
fn named(v: &Value, kind: &str) -> Vec<(String, Vec<i64>)> {
    v["sources"][0]["files"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| {
            let offsets: Vec<i64> = f[kind]
                .as_array()?
                .iter()
                .filter_map(|x| x.as_i64().or_else(|| x[0].as_i64()))
                .collect();
            (!offsets.is_empty()).then(|| (f["path"].as_str().unwrap_or("").to_owned(), offsets))
        })
        .collect()
}

const UNLOCK: &str = "import sys\nfrom deltalake import DeltaTable, write_deltalake\n\
    dt = DeltaTable(sys.argv[1])\ndt.alter.set_table_properties({'delta.appendOnly': 'false'})\n";

#[test]
fn an_untouched_table_verifies_clean() {
    let t = table();
    let (code, v) = verify(t.path());
    assert_eq!(code, 0, "{v}");
    let files = v["sources"][0]["files"].as_array().expect("files");
    assert!(files.len() > 5, "{v}");
    let events: u64 = files
        .iter()
        .filter_map(|f| f["events_found"].as_u64())
        .sum();
    assert_eq!(events, 300);
    let text = run(risktail().current_dir(t.path()).arg("verify"));
    assert!(
        stdout(&text).contains("everything checkable matches"),
        "{}",
        stdout(&text)
    );
}

#[test]
fn deleted_rows_are_named_by_file_and_offset() {
    let t = table();
    python(
        t.path(),
        &format!("{UNLOCK}dt.delete(\"raw_line LIKE '%Position count 7 would%'\")"),
    );
    let (code, v) = verify(t.path());
    assert_eq!(code, 1, "{v}");
    let missing = named(&v, "missing");
    assert_eq!(missing.len(), 1, "{v}");
    assert_eq!(missing[0].1.len(), 1, "{v}");
    // A period that leaves the deleted row out finds nothing; one that
    // holds it finds it.
    for (from, to, code) in [
        ("2099-01-01", "2099-12-31", 0),
        ("2000-01-01", "2099-12-31", 1),
    ] {
        let out = run(risktail()
            .current_dir(t.path())
            .args(["verify", "--from", from, "--to", to]));
        assert_eq!(
            out.status.code(),
            Some(code),
            "{from}..{to}: {}",
            stdout(&out)
        );
    }
    // The delete rewrote a file with string columns as Utf8View: the audit
    // commands read it all the same.
    for cmd in [
        &["report"][..],
        &["state", "--at", "2030-01-01T00:00:00Z"][..],
    ] {
        let out = run(risktail().current_dir(t.path()).args(cmd));
        assert!(out.status.success(), "{cmd:?}: {}", stderr(&out));
    }
}

#[test]
fn doubled_and_changed_rows_are_named() {
    let t = table();
    python(
        t.path(),
        &format!(
            "{UNLOCK}import pyarrow.compute as pc\n\
             rows = dt.to_pyarrow_table()\n\
             one = rows.filter(pc.match_substring(rows['raw_line'], 'Position count 12 would'))\n\
             write_deltalake(sys.argv[1], one, mode='append')\n\
             DeltaTable(sys.argv[1]).update(updates={{'limit_value': '99.0'}}, predicate=\"raw_line LIKE '%Position count 20 would%'\")"
        ),
    );
    let (code, v) = verify(t.path());
    assert_eq!(code, 1, "{v}");
    assert_eq!(named(&v, "doubled").len(), 1, "{v}");
    let changed = named(&v, "changed");
    assert_eq!(changed.len(), 1, "{v}");
    let text = stdout(&run(risktail().current_dir(t.path()).arg("verify")));
    assert!(
        text.contains("changed: offset") && text.contains("limit_value"),
        "{text}"
    );
}

#[test]
fn a_missing_data_file_and_a_commit_below_the_checkpoint_are_named() {
    let t = table();
    let dir = t.path();
    python(
        dir,
        "import sys\nfrom deltalake import DeltaTable\nDeltaTable(sys.argv[1]).create_checkpoint()",
    );
    // A commit below the checkpoint written after it (what a writer with a
    // view older than the log retention did before this release).
    let log = dir.join("lake/risk_events/_delta_log");
    let first = log.join(format!("{:020}.json", 1));
    let text = std::fs::read(&first).expect("version 1");
    std::fs::remove_file(&first).expect("rm");
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(&first, text).expect("rewritten");
    let (code, v) = verify(dir);
    assert_eq!(code, 1, "{v}");
    let flaws = v["log_flaws"].to_string();
    assert!(
        flaws.contains("below_checkpoint") && flaws.contains("version 1 "),
        "{flaws}"
    );
    // A data file gone.
    let data = walk(&dir.join("lake/risk_events"))
        .into_iter()
        .find(|p| {
            p.extension().is_some_and(|e| e == "parquet")
                && !p.to_string_lossy().contains("_delta_log")
        })
        .expect("a data file");
    std::fs::remove_file(&data).expect("rm data");
    let (code, v) = verify(dir);
    assert_eq!(code, 1, "{v}");
    assert!(v["log_flaws"].to_string().contains("missing_file"), "{v}");
}

#[test]
fn a_table_that_cannot_be_read_exits_3() {
    let t = table();
    std::fs::write(
        t.path().join("risktail.toml"),
        "[table]\nuri = \"nowhere/risk_events\"\n[[source]]\nname = \"engine\"\npaths = [\"logs/engine.log\"]\nenvelope = \"python\"\n",
    )
    .expect("config");
    let out = run(risktail().current_dir(t.path()).arg("verify"));
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Two sources whose engines wrote the very same bytes (ids derive from the
/// content and the offset, so they share ids): each source's rows are
/// checked against its own files, not taken for doubles.
#[test]
fn two_sources_with_identical_files_verify_clean() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    std::fs::create_dir(dir.join("logs")).expect("logs");
    let line = "2026-01-28 10:00:00,000 - v6.risk - WARNING - Entry REJECTED by portfolio limits: Position count 1 would exceed limit 10\n";
    for n in ["a", "b"] {
        std::fs::write(dir.join(format!("logs/{n}.log")), line.repeat(3)).expect("log");
    }
    std::fs::write(
        dir.join("risktail.toml"),
        "[table]\nuri = \"lake/risk_events\"\n\
         [[source]]\nname = \"a\"\npaths = [\"logs/a.log\"]\nenvelope = \"python\"\n\
         [[source]]\nname = \"b\"\npaths = [\"logs/b.log\"]\nenvelope = \"python\"\n",
    )
    .expect("config");
    assert!(
        run(risktail().current_dir(dir).arg("backfill"))
            .status
            .success()
    );
    let (code, v) = verify(dir);
    assert_eq!(code, 0, "{v}");
}

/// A protocol another tool upgraded past what risktail writes is named as a
/// flaw of the table (the rows still verify).
#[test]
fn a_protocol_risktail_cannot_write_is_named() {
    let t = table();
    let script = crate::util::root().join("tests/support/foreign_writer.py");
    let out = run_python(
        &[
            script.to_str().expect("path"),
            "lake/risk_events",
            "deletion-vectors",
        ],
        t.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let (code, v) = verify(t.path());
    assert_eq!(code, 1, "{v}");
    let flaws = v["log_flaws"].to_string();
    assert!(
        flaws.contains("\"protocol\"") && flaws.contains("Invariants"),
        "{flaws}"
    );
    assert!(named(&v, "missing").is_empty(), "{v}");
}

/// Quarantine rows carry their line's identity (`line_id`), every one of
/// them: a quarantine row appended again is named as doubled at its file and
/// offset, and nothing as missing.
#[test]
fn a_quarantine_row_appended_again_is_named_doubled() {
    let t = table();
    let q = "lake/risk_events_quarantine";
    let out = run_python(
        &[
            "-c",
            "import sys; from deltalake import DeltaTable, write_deltalake\n\
             t = DeltaTable(sys.argv[1]).to_pyarrow_table().sort_by('source_offset')\n\
             assert t.column('line_id').null_count == 0, 'rows without line_id'\n\
             write_deltalake(sys.argv[1], t.slice(0, 1), mode='append')\n\
             print(t.column('source_offset')[0].as_py(), flush=True)\n\
             import os; os._exit(0)  # deltalake's runtime can abort at teardown",
            q,
        ],
        t.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let doubled: i64 = stdout(&out).trim().parse().expect("an offset");
    let (code, v) = verify(t.path());
    assert_eq!(code, 1, "{v}");
    let named_doubled = named(&v, "quarantine_doubled");
    assert_eq!(named_doubled.len(), 1, "{v}");
    assert_eq!(named_doubled[0].1, vec![doubled], "{v}");
    assert!(named(&v, "quarantine_missing").is_empty(), "{v}");
}

/// The Python script that creates the quarantine table as releases before
/// `line_id` did: nine columns, partitioned by `ingest_date`.
const LEGACY_QUARANTINE: &str = "import sys, pyarrow as pa\n\
from deltalake import DeltaTable\n\
s = pa.schema([('source', pa.string(), False), ('source_file', pa.string(), False), \
('source_offset', pa.int64(), False), ('raw_line', pa.string(), False), \
('reason', pa.string(), False), ('ingested_at', pa.timestamp('us', tz='UTC'), False), \
('detail', pa.string(), True), ('line_bytes', pa.int64(), False), \
('ingest_date', pa.date32(), False)])\n\
DeltaTable.create(sys.argv[1], schema=s, partition_by=['ingest_date'], \
configuration={'delta.appendOnly': 'true'})";

/// A rolling upgrade: the quarantine table of an earlier release (no
/// `line_id`) is written by this one without the column and verifies clean;
/// `migrate` adds it (refused while the events table shows a commit of an
/// earlier release's writer within the hour, unless --force); rows written
/// after have it, rows before stay empty, and the table still verifies clean.
#[test]
fn a_quarantine_table_of_an_earlier_release_is_written_then_migrated() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    std::fs::create_dir(dir.join("logs")).expect("logs");
    std::fs::write(
        dir.join("risktail.toml"),
        "[table]\nuri = \"lake/risk_events\"\n[[source]]\nname = \"engine\"\n\
         paths = [\"logs/engine.log\"]\nenvelope = \"python\"\n",
    )
    .expect("config");
    let q = "lake/risk_events_quarantine";
    let out = run_python(&["-c", LEGACY_QUARANTINE, q], dir);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines = |from: usize| {
        (from..from + 3)
            .map(|i| format!("2026-01-28 10:00:0{i},000 - v6.risk - WARNING - Circuit breaker confused #{i}\n"))
            .collect::<String>()
    };
    let log = dir.join("logs/engine.log");
    std::fs::write(&log, lines(0)).expect("log");
    let out = run(risktail().current_dir(dir).arg("backfill"));
    assert!(out.status.success(), "{}", stderr(&out));
    let ids = |dir: &Path| {
        let out = run_python(
            &[
                "-c",
                "import sys; from deltalake import DeltaTable\n\
                 t = DeltaTable(sys.argv[1]).to_pyarrow_table()\n\
                 names = t.schema.names\n\
                 print(t.num_rows, sum(1 for x in t.column('line_id').to_pylist() if x) if 'line_id' in names else 'no-column', flush=True)\n\
                 import os; os._exit(0)  # deltalake's runtime can abort at teardown",
                q,
            ],
            dir,
        );
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out).trim().to_owned()
    };
    assert_eq!(ids(dir), "3 no-column", "written without the column");
    assert_eq!(verify(dir).0, 0, "{}", verify(dir).1);

    // A commit of an earlier release's writer, a minute ago, in the events table.
    let older = tempfile::tempdir().expect("tmp");
    copy_dir(dir, older.path());
    let events_log = older.path().join("lake/risk_events/_delta_log");
    let next = std::fs::read_dir(&events_log)
        .expect("log")
        .filter_map(|e| {
            e.ok()?
                .file_name()
                .to_str()?
                .strip_suffix(".json")?
                .parse::<u64>()
                .ok()
        })
        .max()
        .expect("a commit")
        + 1;
    let ts = chrono::Utc::now().timestamp_millis() - 60_000;
    std::fs::write(
        events_log.join(format!("{next:020}.json")),
        format!("{{\"commitInfo\":{{\"timestamp\":{ts},\"operation\":\"WRITE\",\"risktail\":{{\"source\":\"engine\",\"holder\":\"old-host:42\"}}}}}}\n"),
    )
    .expect("commit");
    let out = run(risktail().current_dir(older.path()).arg("migrate"));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("old-host:42"), "{}", stderr(&out));
    let out = run(risktail()
        .current_dir(older.path())
        .args(["migrate", "--force"]));
    assert!(out.status.success(), "{}", stderr(&out));

    let out = run(risktail().current_dir(dir).arg("migrate"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("added line_id to"),
        "{}",
        stdout(&out)
    );
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .expect("log");
    std::io::Write::write_all(&mut f, lines(3).as_bytes()).expect("append");
    let out = run(risktail().current_dir(dir).arg("backfill"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(ids(dir), "6 3", "rows after the migration have line_id");
    assert_eq!(verify(dir).0, 0, "{}", verify(dir).1);
    let out = run(risktail().current_dir(dir).arg("migrate"));
    assert!(stdout(&out).contains("nothing to add"), "{}", stdout(&out));
}

fn copy_dir(from: &Path, to: &Path) {
    let ok = std::process::Command::new("cp")
        .args(["-a", &format!("{}/.", from.display())])
        .arg(to)
        .status()
        .expect("cp");
    assert!(ok.success());
}
