//! Shared helpers: the built binary, the repository root, a Python to drive
//! the engine's own logging tools.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use deltalake::arrow::util::display::{ArrayFormatter, FormatOptions};
use risktail::event::schema::{QUARANTINE_COLUMNS, RISK_EVENT_COLUMNS, name};

/// The crate root: integration tests run the binary from here so paths in
/// golden files are stable relative paths.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A `risktail` command, run from the crate root.
pub fn risktail() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_risktail"));
    c.current_dir(root());
    c
}

/// Runs and returns the output.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("the risktail binary runs")
}

/// stdout as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The Python with the engine's tools (loguru, python-json-logger, polars,
/// deltalake, duckdb): `RISKTAIL_PYTHON`, as `.ci/run` sets it, else `python3`.
/// Tests that need it fail with a message saying how to get it; they never skip.
pub fn python() -> String {
    std::env::var("RISKTAIL_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// The engine (tests/samples/writer.py, Python's own logging handlers) in
/// `mode`: `count` risk lines numbered from `start` into `path`, `pace`
/// seconds apart. The caller sets the folder, the environment and how it runs.
pub fn engine_writer(mode: &str, path: &str, start: usize, count: usize, pace: &str) -> Command {
    let mut c = Command::new(python());
    c.arg(root().join("tests/samples/writer.py")).args([
        mode,
        path,
        &start.to_string(),
        &count.to_string(),
        pace,
    ]);
    c
}

/// `risktail status --json --config CONFIG` in `dir` with `env`, when it succeeds.
pub fn status_json(
    dir: &Path,
    config: &str,
    env: &[(String, String)],
) -> Option<serde_json::Value> {
    let out = run(risktail()
        .current_dir(dir)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .args(["status", "--json", "--config", config]));
    out.status.success().then_some(())?;
    serde_json::from_slice(&out.stdout).ok()
}

/// Runs Python with the given args, failing the test with its stderr if it fails.
///
/// Code given with `-c` that reads tables leaves with `os._exit(0)` once it
/// ran: polars', deltalake's and DuckDB's runtimes can abort at interpreter
/// teardown, after the work is done (an exception in the code still fails
/// the run). Other code (the engines' loggers) ends as usual: its handlers
/// flush at teardown.
pub fn run_python(args: &[&str], cwd: &Path) -> Output {
    let py = python();
    let mut args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let reads_tables = |code: &str| {
        ["deltalake", "polars", "duckdb"]
            .iter()
            .any(|m| code.contains(m))
    };
    if args.first().is_some_and(|a| a == "-c")
        && let Some(code) = args.get_mut(1)
        && reads_tables(code)
    {
        code.push_str("\nimport os, sys\nsys.stdout.flush(); sys.stderr.flush(); os._exit(0)\n");
    }
    let out = Command::new(&py)
        .args(&args)
        .current_dir(cwd)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {py}: {e}; run .ci/run once or set RISKTAIL_PYTHON to a Python with the packages of .ci/requirements.txt"));
    assert!(
        out.status.success(),
        "{py} {args:?} failed (set RISKTAIL_PYTHON to a Python with .ci/requirements.txt installed):\n{}",
        stderr(&out)
    );
    out
}

/// Rows of a table keyed by `source_offset`, every stored column but
/// `ingested_at` (when it was read) and the partition (not in the files).
pub fn table_rows(uri: &Path, quarantine: bool) -> BTreeMap<i64, String> {
    table_rows_by(uri, quarantine, name::SOURCE_OFFSET)
        .into_iter()
        .map(|(k, v)| (k.parse().expect("offset"), v))
        .collect()
}

/// [`table_rows`] keyed by the column `key` (each value once).
pub fn table_rows_by(uri: &Path, quarantine: bool, key: &str) -> BTreeMap<String, String> {
    let files = table_files(uri).unwrap_or_default();
    let cols: Vec<&str> = if quarantine {
        &QUARANTINE_COLUMNS[..]
    } else {
        &RISK_EVENT_COLUMNS[..]
    }
    .iter()
    .map(|c| c.name)
    .filter(|n| ![name::INGESTED_AT, name::EVENT_DATE, name::INGEST_DATE].contains(n))
    .collect();
    let mut out = BTreeMap::new();
    for b in risktail::sink::read::read_columns(&files, &cols).expect("read") {
        let schema = b.schema();
        let fmts: Vec<_> = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &FormatOptions::default()).expect("fmt"))
            .collect();
        let off = schema.index_of(key).expect("key column");
        for r in 0..b.num_rows() {
            let cells: Vec<String> = fmts
                .iter()
                .enumerate()
                .map(|(i, f)| format!("{}={}", schema.field(i).name(), f.value(r)))
                .collect();
            let k = fmts[off].value(r).to_string();
            assert!(
                out.insert(k.clone(), cells.join(" | ")).is_none(),
                "{key} {k} twice"
            );
        }
    }
    out
}

/// A seeded pseudo-random sequence (a 64-bit LCG): a test's "random" kill
/// moments are the same in every run, so a failure can be run again.
pub struct Seeded(pub u64);

impl Seeded {
    /// The next value, 31 bits.
    pub fn next31(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    /// `n` moments (ms) in `from..from + span`, sorted.
    pub fn moments(&mut self, n: usize, from: u64, span: u64) -> Vec<u64> {
        let mut m: Vec<u64> = (0..n).map(|_| from + self.next31() % span).collect();
        m.sort_unstable();
        m
    }
}

/// Every row of the local table at `table`, as the string values of
/// `columns` in that order (nulls as "").
pub fn string_rows(table: &Path, columns: &[&str]) -> Vec<Vec<String>> {
    let files = table_files(table).expect("table files");
    let mut rows = Vec::new();
    for b in risktail::sink::read::read_columns(&files, columns).expect("read") {
        let cols: Vec<Vec<String>> = columns
            .iter()
            .map(|c| {
                let i = b.schema().index_of(c).expect("column");
                risktail::sink::read::strings(&b, i)
            })
            .collect();
        rows.extend((0..b.num_rows()).map(|r| cols.iter().map(|c| c[r].clone()).collect()));
    }
    rows
}

/// The data files of the local table at `table`.
fn table_files(table: &Path) -> Result<Vec<String>, risktail::sink::SinkError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    rt.block_on(risktail::sink::read::data_files(&table.to_string_lossy()))
}
