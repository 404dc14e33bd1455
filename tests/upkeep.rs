//! Compaction keeps a daemon's table from piling up small files, changes no
//! row, and leaves the table readable by the real readers; expired log
//! entries go with the upkeep.

use chrono::Utc;
use std::path::Path;

use risktail::config::Config;
use risktail::event::EventRows;
use risktail::parse::{LineRef, Outcome, SourceParser, SourceState};
use risktail::sink::DeltaSink;
use risktail::sink::upkeep::CompactReport;
use risktail::source::fingerprint::FileId;

use crate::util::{root, run_python};

/// A daemon's commit pattern without a daemon: one event per commit, each
/// followed by the upkeep.
struct OneRowCommits {
    tmp: tempfile::TempDir,
    config: Config,
    parser: SourceParser,
    rt: tokio::runtime::Runtime,
    sink: DeltaSink,
    file: FileId,
    state: SourceState,
    offset: u64,
}

impl OneRowCommits {
    fn new() -> OneRowCommits {
        OneRowCommits::on("lake/risk_events", "engine")
    }

    /// Source `source` on the table at `uri` (relative to a folder of its own).
    fn on(uri: &str, source: &str) -> OneRowCommits {
        let tmp = tempfile::tempdir().unwrap();
        let config = Config::from_str(
            &tmp.path().join("risktail.toml"),
            &format!(
                "[table]\nuri = \"{uri}\"\n[[source]]\nname = \"{source}\"\npaths = [\"x.log\"]\nenvelope = \"python\"\n"
            ),
        )
        .unwrap();
        let parser = config.parser(&config.sources[0]);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let sink = rt
            .block_on(DeltaSink::open(&config.table_uri, &config.quarantine_uri))
            .unwrap();
        OneRowCommits {
            tmp,
            config,
            parser,
            rt,
            sink,
            file: FileId::from_head(format!("{source}\n").as_bytes()),
            state: SourceState::default(),
            offset: 0,
        }
    }

    /// Commits risk line `i` with its offset, then runs the upkeep.
    fn commit(&mut self, i: u64) -> Option<CompactReport> {
        let line = format!(
            "2026-01-28 10:00:{:02},000 - v6.risk - WARNING - Entry REJECTED by portfolio limits: Position count {i} would exceed limit 10\n",
            i % 60
        );
        let mut events = EventRows::default();
        let Outcome::Event = self.parser.parse_line(
            &mut self.state,
            LineRef {
                file: self.file,
                path: "x.log",
                offset: self.offset,
                bytes: line.as_bytes(),
                keyword: false,
            },
            Utc::now(),
            &mut events,
        ) else {
            panic!("not an event");
        };
        self.offset += line.len() as u64;
        let offsets = [(self.file, self.offset)];
        let source = self.config.sources[0].name.clone();
        self.rt
            .block_on(
                self.sink
                    .commit(&source, &offsets, &events, &[], &self.state),
            )
            .unwrap();
        self.rt.block_on(self.sink.upkeep()).unwrap()
    }

    /// Another writer (its own sink, source `source` and file) on the same table.
    fn beside(&self, source: &str) -> OneRowCommits {
        let uri = std::fs::canonicalize(self.uri()).unwrap();
        OneRowCommits::on(&uri.to_string_lossy(), source)
    }

    fn uri(&self) -> String {
        Path::new(&self.config.table_uri)
            .to_string_lossy()
            .into_owned()
    }
}

#[test]
fn compaction_bounds_small_files_and_keeps_every_row() {
    let mut t = OneRowCommits::new();
    let mut compactions = 0;
    for i in 0..120u64 {
        if let Some(r) = t.commit(i)
            && r.files_removed > 0
        {
            compactions += 1;
            assert!(r.files_added >= 1 && r.rows >= r.files_removed);
        }
    }
    assert!(compactions >= 2, "compacted {compactions} times");
    let uri = t.uri();
    let files =
        t.rt.block_on(risktail::sink::read::data_files(&uri))
            .unwrap();
    assert!(
        files.len() <= 25,
        "{} active files after 120 one-row commits",
        files.len()
    );
    let ids =
        t.rt.block_on(risktail::sink::read::event_ids(&uri))
            .unwrap();
    let distinct: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!((ids.len(), distinct.len()), (120, 120));
    // The offsets survive compaction, and the readers still agree.
    assert_eq!(
        t.rt.block_on(t.sink.committed("engine", t.file))
            .unwrap()
            .events,
        t.offset
    );
    let out = run_python(
        &[
            &root().join("tests/readers/check.py").to_string_lossy(),
            &uri,
        ],
        t.tmp.path(),
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
    let mut t = OneRowCommits::new();
    let log_dir = Path::new(&t.config.table_uri).join("_delta_log");
    let first = log_dir.join(format!("{:020}.json", 0));
    for i in 0..60 {
        t.commit(i);
    }
    // Age every log entry past the 30-day retention.
    let entries: Vec<_> = std::fs::read_dir(&log_dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    let touched = std::process::Command::new("touch")
        .args(["-m", "-d", "31 days ago"])
        .args(&entries)
        .status()
        .unwrap();
    assert!(touched.success());
    t.commit(60);
    assert!(first.exists(), "an ordinary commit deleted expired entries");
    for i in 61..110 {
        t.commit(i);
    }
    assert!(!first.exists(), "the upkeep did not delete expired entries");
    let left = std::fs::read_dir(&log_dir).unwrap().count();
    assert!(left < 80, "{left} log entries left");
    let uri = t.uri();
    let ids =
        t.rt.block_on(risktail::sink::read::event_ids(&uri))
            .unwrap();
    assert_eq!(ids.len(), 110);
    let reopened =
        t.rt.block_on(DeltaSink::open(
            &t.config.table_uri,
            &t.config.quarantine_uri,
        ))
        .unwrap();
    assert_eq!(
        t.rt.block_on(reopened.committed("engine", t.file))
            .unwrap()
            .events,
        t.offset
    );
}

/// Many daemons on one table each run the upkeep. Two compactions of the
/// same small files, one after the other from two handles on the table:
/// only one rewrites them, the other finds nothing left to do, and no row
/// is there twice. (The race itself, both picking the files before either
/// lands, is `sink::delta_log`'s test
/// `a_compaction_gives_way_to_another_of_the_same_files_not_to_appends`:
/// Delta's own conflict check ignores removes that change no data, which a
/// compaction's are, and both would land, doubling every compacted row.)
#[test]
fn two_writers_compacting_the_same_files_do_not_double_rows() {
    use risktail::event::schema::{EVENT_PARTITION, RISK_EVENT_COLUMNS};
    use risktail::sink::delta_log::DeltaLog;
    use risktail::sink::upkeep;
    let mut t = OneRowCommits::new();
    for i in 0..30u64 {
        t.commit(i);
    }
    let uri = t.uri();
    let open = || DeltaLog::open(&uri, "risk_events", &RISK_EVENT_COLUMNS, EVENT_PARTITION);
    let mut a = t.rt.block_on(open()).unwrap();
    let mut b = t.rt.block_on(open()).unwrap();
    let first =
        t.rt.block_on(upkeep::compact(
            &mut a,
            &RISK_EVENT_COLUMNS,
            EVENT_PARTITION,
        ))
        .unwrap();
    assert!(first.files_removed >= 8, "{first:?}");
    let second = t.rt.block_on(upkeep::compact(
        &mut b,
        &RISK_EVENT_COLUMNS,
        EVENT_PARTITION,
    ));
    assert!(
        second.as_ref().map_or(true, |r| r.files_removed == 0),
        "the second compaction landed too: {second:?}"
    );
    let ids =
        t.rt.block_on(risktail::sink::read::event_ids(&uri))
            .unwrap();
    let distinct: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!((ids.len(), distinct.len()), (30, 30));
}

/// Two writers on one table, each running the daemon's upkeep after every
/// commit (appends of one pass the other's versions): every 50th version
/// gets its checkpoint, whoever landed it, every row is there once,
/// and vacuum deletes a data file no commit names (what a failed commit
/// leaves) once it is older than the retention, but not a younger one,
/// which may be another writer's commit in flight.
#[test]
fn two_writers_share_the_upkeep_and_vacuum_removes_what_failed_commits_left() {
    let mut a = OneRowCommits::new();
    let mut b = a.beside("engine-b");
    for i in 0..60u64 {
        a.commit(i);
        b.commit(1000 + i);
    }
    let uri = a.uri();
    let log = Path::new(&uri).join("_delta_log");
    let version =
        a.rt.block_on(risktail::sink::store::open(&uri))
            .unwrap()
            .version()
            .unwrap();
    let mut checkpoints: Vec<u64> = std::fs::read_dir(&log)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".checkpoint.parquet")?.parse().ok()
        })
        .collect();
    checkpoints.sort_unstable();
    // delta-rs's rule, which compaction's commits follow too: versions 49, 99, …
    let want: Vec<u64> = (1..=(version + 1) / 50).map(|k| k * 50 - 1).collect();
    assert!(version >= 120, "{version}");
    assert_eq!(checkpoints, want, "at version {version}");

    // What a failed commit leaves: a data file the log does not name.
    let part = Path::new(&uri).join("event_date=2026-01-28");
    let data = std::fs::read_dir(&part)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "parquet"))
        .unwrap();
    let (old, new) = (
        part.join("part-failed-old.parquet"),
        part.join("part-failed-new.parquet"),
    );
    std::fs::copy(&data, &old).unwrap();
    std::fs::copy(&data, &new).unwrap();
    let eight_days = std::time::SystemTime::now() - std::time::Duration::from_secs(8 * 24 * 3600);
    std::fs::File::options()
        .write(true)
        .open(&old)
        .unwrap()
        .set_modified(eight_days)
        .unwrap();
    // A fresh sink's first upkeep vacuums (then once a day).
    let mut c = a.beside("engine-c");
    c.rt.block_on(c.sink.upkeep()).unwrap();
    assert!(
        !old.exists(),
        "vacuum left a failed commit's file older than the retention"
    );
    assert!(
        new.exists(),
        "vacuum deleted a file younger than the retention"
    );
    let ids =
        a.rt.block_on(risktail::sink::read::event_ids(&uri))
            .unwrap();
    let distinct: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!((ids.len(), distinct.len()), (120, 120));
}
