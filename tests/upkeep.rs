//! Compaction keeps a daemon's table from piling up small files, changes no
//! row, and leaves the table readable by the real readers.

use chrono::Utc;
use std::path::Path;

use risktail::config::Config;
use risktail::parse::{LineRef, Outcome, SourceState};
use risktail::sink::DeltaSink;
use risktail::source::fingerprint::FileId;

use crate::util::{root, run_python};

#[test]
fn compaction_bounds_small_files_and_keeps_every_row() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg_path = tmp.path().join("risktail.toml");
    let config = Config::from_str(
        &cfg_path,
        "[table]\nuri = \"lake/risk_events\"\n[[source]]\nname = \"engine\"\npaths = [\"x.log\"]\nenvelope = \"python\"\n",
    )
    .unwrap();
    let parser = config.parser(&config.sources[0]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut sink = rt
        .block_on(DeltaSink::open(&config.table_uri, &config.quarantine_uri))
        .unwrap();
    let file = FileId::from_head(b"head\n");
    let mut state = SourceState::default();
    let mut offset = 0u64;
    let mut compactions = 0;
    for i in 0..120u64 {
        let line = format!(
            "2026-01-28 10:00:{:02},000 - v6.risk - WARNING - Entry REJECTED by portfolio limits: Position count {i} would exceed limit 10\n",
            i % 60
        );
        let Outcome::Event(e) = parser.parse_line(
            &mut state,
            LineRef {
                file,
                path: "x.log",
                offset,
                bytes: line.as_bytes(),
            },
            Utc::now(),
        ) else {
            panic!("not an event");
        };
        offset += line.len() as u64;
        rt.block_on(sink.commit("engine", &[(file, offset)], &[*e], &[], &state))
            .unwrap();
        if let Some(r) = rt.block_on(sink.upkeep()).unwrap()
            && r.files_removed > 0
        {
            compactions += 1;
            assert!(r.files_added >= 1 && r.rows >= r.files_removed);
        }
    }
    assert!(compactions >= 2, "compacted {compactions} times");
    let uri = Path::new(&config.table_uri).to_string_lossy().into_owned();
    let files = rt.block_on(risktail::sink::read::data_files(&uri)).unwrap();
    assert!(
        files.len() <= 25,
        "{} active files after 120 one-row commits",
        files.len()
    );
    let ids = rt.block_on(risktail::sink::read::event_ids(&uri)).unwrap();
    let distinct: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!((ids.len(), distinct.len()), (120, 120));
    // The offsets survive compaction, and the readers still agree.
    assert_eq!(
        rt.block_on(sink.committed("engine", file)).unwrap().events,
        offset
    );
    let out = run_python(
        &[
            &root().join("tests/readers/check.py").to_string_lossy(),
            &uri,
        ],
        tmp.path(),
    );
    let seen: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(seen["polars"]["rows"], 120);
    assert_eq!(
        seen["duckdb_delta_scan"]["rows"], 120,
        "{}",
        seen["duckdb_delta_scan"]
    );
    assert_eq!(seen["deltalake"]["protocol"], serde_json::json!([1, 2]));
}

/// Expired `_delta_log` entries are deleted by the upkeep every
/// `COMPACT_EVERY_COMMITS` commits, not after every commit (which lists the
/// whole folder each time), and the table and its offsets survive it.
#[test]
fn expired_log_entries_go_with_the_upkeep_not_with_every_commit() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg_path = tmp.path().join("risktail.toml");
    let config = Config::from_str(
        &cfg_path,
        "[table]\nuri = \"lake/risk_events\"\n[[source]]\nname = \"engine\"\npaths = [\"x.log\"]\nenvelope = \"python\"\n",
    )
    .unwrap();
    let parser = config.parser(&config.sources[0]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut sink = rt
        .block_on(DeltaSink::open(&config.table_uri, &config.quarantine_uri))
        .unwrap();
    let log_dir = Path::new(&config.table_uri).join("_delta_log");
    let first = log_dir.join(format!("{:020}.json", 0));
    let file = FileId::from_head(b"log head\n");
    let mut state = SourceState::default();
    let mut offset = 0u64;
    let mut commit = |i: u64, sink: &mut DeltaSink| {
        let line = format!(
            "2026-01-28 11:00:{:02},000 - v6.risk - WARNING - Entry REJECTED by portfolio limits: Position count {i} would exceed limit 10\n",
            i % 60
        );
        let Outcome::Event(e) = parser.parse_line(
            &mut state,
            LineRef {
                file,
                path: "x.log",
                offset,
                bytes: line.as_bytes(),
            },
            Utc::now(),
        ) else {
            panic!("not an event");
        };
        offset += line.len() as u64;
        rt.block_on(sink.commit("engine", &[(file, offset)], &[*e], &[], &state))
            .unwrap();
        rt.block_on(sink.upkeep()).unwrap();
        offset
    };
    for i in 0..60 {
        commit(i, &mut sink);
    }
    // Age every log entry past the 2-hour retention.
    let entries: Vec<_> = std::fs::read_dir(&log_dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    let touched = std::process::Command::new("touch")
        .args(["-m", "-d", "3 hours ago"])
        .args(&entries)
        .status()
        .unwrap();
    assert!(touched.success());
    commit(60, &mut sink);
    assert!(first.exists(), "an ordinary commit deleted expired entries");
    let mut last = 0;
    for i in 61..110 {
        last = commit(i, &mut sink);
    }
    assert!(!first.exists(), "the upkeep did not delete expired entries");
    let left = std::fs::read_dir(&log_dir).unwrap().count();
    assert!(left < 80, "{left} log entries left");
    let uri = Path::new(&config.table_uri).to_string_lossy().into_owned();
    let ids = rt.block_on(risktail::sink::read::event_ids(&uri)).unwrap();
    assert_eq!(ids.len(), 110);
    let reopened = rt
        .block_on(DeltaSink::open(&config.table_uri, &config.quarantine_uri))
        .unwrap();
    assert_eq!(
        rt.block_on(reopened.committed("engine", file))
            .unwrap()
            .events,
        last
    );
}
