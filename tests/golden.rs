//! The corpus: every `tests/corpus/<case>/` is parsed by the real binary and
//! its output compared with the reviewed `expected.jsonl` (events and
//! quarantine records) and `expected.summary` (the stderr summary), and, for
//! the envelope cases, with `oracle.jsonl`: what the generator knows it
//! logged (event, UTC time, columns), independent of risktail's output.
//!
//! `RISKTAIL_BLESS=1 cargo test --test integration golden` writes the expected
//! files from the current output; they are then read and checked by a person
//! before committing. Without it a missing expected file is a failure.

use std::path::Path;

use crate::util::{risktail, root, run, run_python, stderr, stdout};

/// `ingested_at` and `ingest_date` are the clock at read time; everything else
/// in a row is a function of the input bytes.
fn normalise(out: &str) -> String {
    let re = regex::Regex::new(r#","(ingested_at|ingest_date)":"[^"]*""#).expect("regex");
    out.lines()
        .map(|l| re.replace_all(l, "").into_owned() + "\n")
        .collect()
}

fn cases() -> Vec<String> {
    let dir = root().join("tests/corpus");
    let mut cases: Vec<String> = std::fs::read_dir(&dir)
        .expect("tests/corpus exists")
        .filter_map(Result::ok)
        .filter(|e| e.path().join("config.toml").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    cases.sort();
    cases
}

fn check(path: &Path, got: &str, bless: bool, failures: &mut Vec<String>) {
    if bless {
        std::fs::write(path, got).expect("write golden file");
        return;
    }
    match std::fs::read_to_string(path) {
        Ok(want) if want == got => {}
        Ok(want) => {
            let first = want
                .lines()
                .zip(got.lines())
                .position(|(a, b)| a != b)
                .unwrap_or(want.lines().count().min(got.lines().count()));
            failures.push(format!(
                "{}: differs from line {} on\n--- expected\n{}\n--- got\n{}",
                path.display(),
                first + 1,
                want.lines().nth(first).unwrap_or("<end>"),
                got.lines().nth(first).unwrap_or("<end>")
            ));
        }
        Err(e) => failures.push(format!(
            "{}: {e} (generate with RISKTAIL_BLESS=1, then review)",
            path.display()
        )),
    }
}

#[test]
fn corpus_cases_match_their_golden_files() {
    let bless = std::env::var_os("RISKTAIL_BLESS").is_some();
    let cases = cases();
    assert!(cases.len() >= 11, "corpus has only {cases:?}");
    let mut failures = Vec::new();
    for case in &cases {
        let dir = root().join("tests/corpus").join(case);
        let config = format!("tests/corpus/{case}/config.toml");
        let out = run(risktail().args(["parse", "--quarantine", "--config", &config]));
        assert!(
            out.status.success(),
            "{case}: exit {:?}\n{}",
            out.status,
            stderr(&out)
        );
        check(
            &dir.join("expected.jsonl"),
            &normalise(&stdout(&out)),
            bless,
            &mut failures,
        );
        check(
            &dir.join("expected.summary"),
            &stderr(&out),
            bless,
            &mut failures,
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Every dialect row becomes exactly one event in every envelope: the four
/// envelope cases hold the same messages and must give the same event types,
/// in the same order, with the same typed fields.
#[test]
fn every_envelope_gives_the_same_events() {
    let fields = |case: &str| -> Vec<serde_json::Value> {
        let config = format!("tests/corpus/{case}/config.toml");
        let out = run(risktail().args(["parse", "--config", &config]));
        stdout(&out)
            .lines()
            .map(|l| {
                let mut v: serde_json::Value = serde_json::from_str(l).expect("json line");
                let o = v.as_object_mut().expect("object");
                for k in [
                    "event_id",
                    "timestamp",
                    "source_file",
                    "source_offset",
                    "raw_line",
                    "ingested_at",
                    "event_date",
                    "level",
                    "logger",
                ] {
                    o.remove(k);
                }
                // The JSON case adds extra keys from the record: compare the rest.
                if let Some(serde_json::Value::String(m)) = o.get("metadata").cloned() {
                    let mut meta: serde_json::Map<String, serde_json::Value> =
                        serde_json::from_str(&m).expect("metadata json");
                    meta.retain(|k, _| !matches!(k.as_str(), "strategy" | "attempt"));
                    let meta = if meta.is_empty() {
                        serde_json::Value::Null
                    } else {
                        serde_json::Value::Object(meta)
                    };
                    o.insert("metadata".into(), meta);
                }
                v
            })
            .collect()
    };
    let reference = fields("python_default");
    assert_eq!(reference.len(), 23, "23 dialect lines in the corpus");
    for case in [
        "python_custom_format",
        "loguru_default",
        "json_python_json_logger",
    ] {
        let got = fields(case);
        assert_eq!(got.len(), reference.len(), "{case}");
        for (i, (a, b)) in reference.iter().zip(&got).enumerate() {
            // JSON records carry execution_id/symbol as extra keys on some lines.
            let strip = |v: &serde_json::Value| {
                let mut v = v.clone();
                if case == "json_python_json_logger" {
                    let o = v.as_object_mut().expect("object");
                    o.remove("execution_id");
                    o.remove("symbol");
                }
                v
            };
            assert_eq!(strip(a), strip(b), "{case}: event {i}");
        }
    }
}

/// The events of the four envelope cases are what the engine logged, by the
/// generator's own account (`oracle.jsonl`, written by `generate.py` from the
/// dialect page and the pinned record times, never from risktail's output):
/// one event per risk record, in order, at the UTC millisecond it was logged,
/// with every column the dialect gives it.
#[test]
fn corpus_events_are_what_the_engine_logged() {
    let mut checked = 0;
    for case in cases() {
        let dir = root().join("tests/corpus").join(&case);
        let Ok(oracle) = std::fs::read_to_string(dir.join("oracle.jsonl")) else {
            continue;
        };
        let want: Vec<serde_json::Value> = oracle
            .lines()
            .map(|l| serde_json::from_str(l).expect("oracle line"))
            .collect();
        let config = format!("tests/corpus/{case}/config.toml");
        let out = run(risktail().args(["parse", "--config", &config]));
        assert!(out.status.success(), "{case}: {}", stderr(&out));
        let got: Vec<serde_json::Value> = stdout(&out)
            .lines()
            .map(|l| serde_json::from_str(l).expect("json line"))
            .collect();
        assert_eq!(got.len(), want.len(), "{case}: events");
        for (i, (w, g)) in want.iter().zip(&got).enumerate() {
            let ts = g["timestamp"].as_str().expect("timestamp");
            let ms = chrono::DateTime::parse_from_rfc3339(ts)
                .expect("rfc3339")
                .timestamp_millis();
            assert_eq!(Some(ms), w["utc_ms"].as_i64(), "{case} #{i}: time {ts}");
            for (k, v) in w.as_object().expect("object") {
                if k == "utc_ms" {
                    continue;
                }
                let same = match (v.as_f64(), g[k].as_f64()) {
                    (Some(a), Some(b)) => (a - b).abs() <= 1e-9 * a.abs().max(1.0),
                    _ => *v == g[k],
                };
                assert!(
                    same,
                    "{case} #{i} ({}): {k} is {}, the engine logged {v}",
                    w["event_type"], g[k]
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 4 * 23, "checked {checked} events");
}

/// The corpus inputs are what Python's own `logging`, loguru and
/// python-json-logger write: regenerating them gives the same bytes.
#[test]
fn corpus_inputs_are_what_the_python_tools_write() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out_dir = tmp.path().to_string_lossy().into_owned();
    run_python(&["tests/corpus/generate.py", "--out", &out_dir], &root());
    let mut compared = 0;
    for case in cases() {
        for entry in std::fs::read_dir(root().join("tests/corpus").join(&case)).expect("case dir") {
            let path = entry.expect("entry").path();
            let name = path
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned();
            if !name.starts_with("input") && name != "config.toml" && name != "oracle.jsonl" {
                continue;
            }
            let fresh = std::fs::read(tmp.path().join(&case).join(&name))
                .unwrap_or_else(|e| panic!("{case}/{name} not regenerated: {e}"));
            let committed = std::fs::read(&path).expect("read committed input");
            assert!(
                fresh == committed,
                "{case}/{name} differs from what generate.py writes now"
            );
            compared += 1;
        }
    }
    assert!(compared >= 20, "compared only {compared} files");
}
