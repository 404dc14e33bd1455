//! `[backfill] threads`: with more than one, a plain file is parsed in
//! stretches on that many threads (a gzip file on a thread of its own) while
//! the backfill commits; the table must be the same as with one (rows, ids,
//! offsets, the source state committed last, every column but
//! `ingested_at`) on the sample family (rotated and gzipped), a day of the
//! sample generator, every golden corpus case (the autumn fold among them)
//! and the one-path input (noise runs, quarantine, an oversize line), each
//! with stretches, batches and commits small enough to cross often: a
//! stretch starts inside the repeated hour, and after nearly every breaker
//! change.

use std::collections::BTreeMap;
use std::path::Path;

use crate::util::{risktail, root, run, run_python, stderr, table_rows_by};

/// What a backfill left: event rows by `event_id`, quarantine rows by
/// `line_id`, and each file's committed offset (the `txn` actions).
type Table = (
    BTreeMap<String, String>,
    BTreeMap<String, String>,
    BTreeMap<String, u64>,
);

/// Backfills with `config` (a TOML text without `[table]`/`[flush]`/
/// `[backfill]`) into `dir/lake-N` on `threads` threads; returns the table.
fn backfill(dir: &Path, config: &str, threads: usize) -> Table {
    let lake = dir.join(format!("lake-{threads}"));
    let text = format!(
        "[table]\nuri = \"{}/risk_events\"\n[flush]\nmax_events = 5\n\
         [backfill]\ncommit_rows = 12\nthreads = {threads}\nstretch_bytes = 700\n{config}",
        lake.display()
    );
    let path = dir.join(format!("threads-{threads}.toml"));
    std::fs::write(&path, text).expect("config");
    let out = run(risktail()
        .current_dir(dir)
        .args(["backfill", "--config"])
        .arg(&path));
    assert!(
        out.status.success(),
        "threads = {threads}: {}",
        stderr(&out)
    );
    let events = table_rows_by(&lake.join("risk_events"), false, "event_id");
    let quarantine = table_rows_by(&lake.join("risk_events_quarantine"), true, "line_id");
    (events, quarantine, offsets(&lake.join("risk_events")))
}

/// The `txn` version per app id as the table's last JSON commit to carry it
/// left it: every file's committed offset and the source state (the lease
/// ids, which differ from run to run, left out).
fn offsets(table: &Path) -> BTreeMap<String, u64> {
    let mut commits: Vec<_> = std::fs::read_dir(table.join("_delta_log"))
        .expect("log")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    // Zero-padded version numbers: in name order is in version order.
    commits.sort();
    let mut out = BTreeMap::new();
    for p in commits {
        for line in std::fs::read_to_string(&p).expect("commit").lines() {
            let v: serde_json::Value = serde_json::from_str(line).expect("action");
            if let Some(t) = v.get("txn") {
                let id = t["appId"].as_str().expect("appId");
                if !id.contains("lease") {
                    out.insert(id.to_owned(), t["version"].as_u64().expect("version"));
                }
            }
        }
    }
    out
}

/// Backfills `config` on 1, 2 and 8 threads and asserts the tables equal.
fn same_on_every_thread_count(dir: &Path, config: &str, what: &str) -> usize {
    let one = backfill(dir, config, 1);
    assert!(!one.0.is_empty(), "{what}: no events at all");
    assert!(!one.2.is_empty(), "{what}: no offsets committed");
    for threads in [2, 8] {
        let other = backfill(dir, config, threads);
        assert_eq!(
            one.0.len(),
            other.0.len(),
            "{what}: events, {threads} threads"
        );
        assert!(
            one.0 == other.0,
            "{what}: event rows differ on {threads} threads"
        );
        assert!(
            one.1 == other.1,
            "{what}: quarantine rows differ on {threads} threads"
        );
        assert_eq!(one.2, other.2, "{what}: offsets, {threads} threads");
    }
    one.0.len()
}

fn source(name: &str, paths: &str) -> String {
    format!(
        "[[source]]\nname = \"{name}\"\npaths = [{paths}]\nenvelope = \"python\"\n\
         timezone = \"America/New_York\"\nmax_line_bytes = 4096\n"
    )
}

#[test]
fn backfill_gives_the_same_table_on_one_two_and_eight_threads() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    // The sample family, a generated day (rotated by Python's handler,
    // gzipped) and the one-path input, each a source of one table.
    let sample = dir.join("sample");
    std::fs::create_dir(&sample).expect("sample dir");
    for f in ["engine.log", "engine.log.1", "engine.log.2.gz"] {
        std::fs::copy(root().join("tests/samples/engine").join(f), sample.join(f)).expect("copy");
    }
    let day = dir.join("day");
    let gen_path = root().join("tests/samples/generate.py");
    let gen_py = gen_path.to_str().expect("utf-8 path");
    let day_dir = day.to_str().expect("utf-8 path");
    run_python(
        &[
            gen_py,
            "--out",
            day_dir,
            "--days",
            "1",
            "--max-bytes",
            "50000",
        ],
        dir,
    );
    crate::one_path::input(dir);
    // Each its own table: the one-path input begins with the sample's
    // newest file and the day with its oldest one's first record, so they
    // share file identities (and would share event ids) with the sample.
    let n = same_on_every_thread_count(dir, &source("sample", "\"sample/engine.log\""), "sample");
    let logs = dir.join("logs");
    let o = same_on_every_thread_count(&logs, &source("engine", "\"engine.log\""), "one-path");
    let day_dir = dir.join("day");
    let m = same_on_every_thread_count(&day_dir, &source("day", "\"engine.log\""), "a day");
    eprintln!(
        "{n} events (the sample), {o} (one-path), {m} (a day): the same on 1, 2 and 8 threads"
    );
}

#[test]
fn every_corpus_case_backfills_the_same_on_one_two_and_eight_threads() {
    let cases = root().join("tests/corpus");
    let mut checked = 0;
    for e in std::fs::read_dir(&cases).expect("corpus") {
        let case = e.expect("entry").path();
        let Ok(text) = std::fs::read_to_string(case.join("config.toml")) else {
            continue;
        };
        // The case's sources as they are (paths relative to the case), without
        // its [table].
        let sources = &text[text.find("[[source]]").expect("a source")..];
        let tmp = tempfile::tempdir().expect("tempdir");
        for f in std::fs::read_dir(&case).expect("case") {
            let f = f.expect("entry").path();
            if f.is_file() {
                std::fs::copy(&f, tmp.path().join(f.file_name().expect("name"))).expect("copy");
            }
        }
        let what = case.display().to_string();
        if case.ends_with("near_misses_only") {
            // No event by design: compare what there is.
            let one = backfill(tmp.path(), sources, 1);
            assert_eq!(one, backfill(tmp.path(), sources, 2), "{what}");
        } else {
            same_on_every_thread_count(tmp.path(), sources, &what);
        }
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} corpus cases found");
}
