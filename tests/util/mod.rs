//! Shared helpers: the built binary, the repository root, a Python to drive
//! the engine's own logging tools.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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

/// Runs Python with the given args, failing the test with its stderr if it fails.
pub fn run_python(args: &[&str], cwd: &Path) -> Output {
    let py = python();
    let out = Command::new(&py)
        .args(args)
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
