//! The command line: `risktail <command>`. Doc comments here are the `--help`.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// risktail: turns a trading engine's risk log lines into rows of a Delta Lake table.
///
/// It reads the log files the engine already writes (Python logging, loguru or
/// JSON lines, plain or gzipped), recognises circuit-breaker, trailing-stop and
/// portfolio-limit messages with editable pattern files, and appends each one
/// exactly once to the `risk_events` table. Lines it cannot turn into a valid
/// event are kept in `risk_events_quarantine` with the reason.
///
/// Start with `risktail parse` on a log file to see what it recognises.
#[derive(Debug, Parser)]
#[command(name = "risktail", version, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the risk events of log files as JSON lines; writes nothing.
    ///
    /// The dry run for tuning patterns: one JSON object per event on stdout, with
    /// exactly the table's column names; `--quarantine` adds the lines that would
    /// be quarantined (marked `"quarantine": true`). A summary (lines, events by
    /// type, quarantined by reason) goes to stderr.
    ///
    /// Examples:
    ///   risktail parse --config risktail.toml
    ///   risktail parse --config risktail.toml --source engine logs/engine.log.2.gz
    ///   tail -n 1000 engine.log | risktail parse -c risktail.toml --quarantine -
    Parse(ParseArgs),
    /// Ingest historical logs (rotated and gzipped too) into the table, exactly once.
    ///
    /// Without paths: every configured file of every source and its rotated
    /// siblings (x.log.1, x.log.2.gz, x.log.2026-01-27, x.log-20260127.gz,
    /// loguru's x.2026-01-27_10-00-00_000000.log.gz), oldest first. Files the
    /// table already holds are skipped, a half-read file resumes at its
    /// committed offset: re-running, or running after a kill -9, adds each row
    /// once. A progress bar shows on a terminal; a summary is printed at the end.
    /// Exit status 1 names each file that failed.
    ///
    /// Examples:
    ///   risktail backfill --config /etc/risktail/risktail.toml
    ///   risktail backfill -c risktail.toml --source engine '/archive/engine.log.*.gz'
    Backfill(BackfillArgs),
    /// Follow the sources' files and commit their risk events as they are written.
    ///
    /// The sidecar mode (systemd/risktail.service runs it). On start it resumes
    /// every file at the offset committed in the table (files rotated while it
    /// was down included); new files are read from the beginning, or from their
    /// end with `start_at = "end"`. Rows are visible within `flush.interval_ms`.
    /// SIGTERM/SIGINT commit what was read and exit 0; SIGHUP reloads the pattern
    /// files (a broken file keeps the old set). Logs go to stderr (journald);
    /// RISKTAIL_LOG=debug shows each commit.
    Run(RunArgs),
    /// Show, per source and file, the committed offset and the bytes behind.
    Status(StatusArgs),
}

/// `risktail run`
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The config file.
    #[arg(short, long, default_value = "risktail.toml", value_name = "FILE")]
    pub config: PathBuf,
}

/// `risktail status`
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The config file.
    #[arg(short, long, default_value = "risktail.toml", value_name = "FILE")]
    pub config: PathBuf,
}

/// `risktail backfill`
#[derive(Debug, Args)]
pub struct BackfillArgs {
    /// The config file.
    #[arg(short, long, default_value = "risktail.toml", value_name = "FILE")]
    pub config: PathBuf,
    /// Only this source (needed with paths when the config has several).
    #[arg(short, long, value_name = "NAME")]
    pub source: Option<String>,
    /// Files or globs to ingest instead of the configured ones, read in the
    /// order given.
    #[arg(value_name = "PATH")]
    pub inputs: Vec<String>,
}

/// `risktail parse`
#[derive(Debug, Args)]
pub struct ParseArgs {
    /// The config file (sources, envelopes, timezones, pattern folders).
    #[arg(short, long, default_value = "risktail.toml", value_name = "FILE")]
    pub config: PathBuf,
    /// Which source's envelope and timezone to read the files with (needed when
    /// the config has more than one source).
    #[arg(short, long, value_name = "NAME")]
    pub source: Option<String>,
    /// Also print quarantine records.
    #[arg(short, long)]
    pub quarantine: bool,
    /// Files to read: paths, globs, or `-` for stdin. Default: the source's
    /// configured paths. Gzip is detected by content.
    #[arg(value_name = "PATH")]
    pub inputs: Vec<String>,
}
