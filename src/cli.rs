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
///
/// Exit status: 0 success; 1 a check found something (verify, status
/// --max-lag-seconds) or some input failed; 2 bad usage or configuration; 3 the
/// table or store refused or could not be reached; 4 the source is owned by
/// another writer (lease or lock).
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
    #[command(verbatim_doc_comment)]
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
    #[command(verbatim_doc_comment)]
    Backfill(BackfillArgs),
    /// Follow the sources' files and commit their risk events as they are written.
    ///
    /// The sidecar mode (systemd/risktail.service runs it). On start it resumes
    /// every file at the offset committed in the table (files rotated while it
    /// was down included); new files are read from the beginning, or from their
    /// end with `start_at = "end"`. Rows are visible within `flush.interval_ms`.
    /// SIGTERM/SIGINT commit what was read and exit 0; SIGHUP reloads the pattern
    /// files (a broken file keeps the old set). Logs go to stderr (journald);
    /// RISKTAIL_LOG=debug shows each commit. With `[metrics] listen` it serves
    /// Prometheus metrics at /metrics.
    #[command(verbatim_doc_comment)]
    Run(RunArgs),
    /// Show, per source and file, the committed offset and the bytes behind.
    ///
    /// Reads the table and the files; changes nothing. `--json` is for
    /// machines, `--max-lag-seconds` makes it a health check. Exit status: 0
    /// fine, 1 a file unreadable or a source lagging more than
    /// --max-lag-seconds, 2 bad config, 3 no table yet (nothing was ever
    /// committed: status never creates one) or the store unreachable.
    ///
    /// Examples:
    ///   risktail status
    ///   risktail status --json | jq '.sources[].bytes_behind'
    ///   risktail status --max-lag-seconds 300 || echo "risktail lags"
    #[command(verbatim_doc_comment)]
    Status(StatusArgs),
    /// Reconstruct the risk state at an instant, from the table: the post-mortem.
    ///
    /// Per source: the circuit breaker's state, since when and the transition
    /// (and reason) that put it there; the failures inside the breaker's window
    /// before the instant; every trailing stop alive (entry, peak, stop,
    /// activated, last update); the limit rejections and health warnings of the
    /// hour before. Flags an engine restart that reset an OPEN breaker to
    /// CLOSED ("RESET WHILE OPEN"). Reads only the days it needs.
    ///
    /// TIME is RFC 3339 (`2026-01-27T15:02:00Z`, `2026-01-27 10:02:00-05:00`) or
    /// a local time without offset (`2026-01-27 10:02`), read in the source's
    /// timezone from the config.
    ///
    /// Examples:
    ///   risktail state -c risktail.toml --at '2026-01-27 11:40'
    ///   risktail state -c risktail.toml --at 2026-01-27T16:40:00Z --json
    #[command(verbatim_doc_comment)]
    State(StateArgs),
    /// Answer the audit's five questions for a period, per day and in total.
    ///
    ///  1. trailing-stop triggers versus other exits;
    ///  2. entries attempted while the breaker was OPEN or HALF_OPEN;
    ///  3. per activation/trailing setting, the share of stops activated and
    ///     triggered and the premium captured at the trigger;
    ///  4. limit rejections by type and how far over the limit;
    ///  5. the breaker's time in each state, openings, mean time to recover,
    ///     resets by engine restart.
    ///
    /// Days are UTC (the table's `event_date`); default period: every day in
    /// the table.
    ///
    /// Examples:
    ///   risktail report -c risktail.toml
    ///   risktail report -c risktail.toml --from 2026-01-27 --to 2026-01-27 --html day.html
    #[command(verbatim_doc_comment)]
    Report(ReportArgs),
    /// Prove the table against the logs on disk, and the table's log against the protocol.
    ///
    /// Reads every file the config's sources name (live, rotated, gzipped;
    /// archives given as PATHs) again with the same per-line step the daemon
    /// uses, up to the offset the table committed for it, and compares the
    /// rows by event id (file identity + offset): missing, doubled, changed
    /// (any column but ingested_at and source_file), quarantine rows by
    /// offset and line. Checks each table's Delta log: versions contiguous
    /// from the newest checkpoint, no commit below it written after it,
    /// _last_checkpoint sound, every data file present with its size. Reads
    /// one version of each table, takes no lock: safe beside live daemons.
    /// Rows of files no longer on disk are counted as not checkable.
    ///
    /// Exit status: 0 everything checkable matches, 1 something is missing,
    /// doubled, changed or wrong in a log, 2 bad usage or config, 3 a table
    /// cannot be read.
    ///
    /// Examples:
    ///   risktail verify -c /etc/risktail/risktail.toml
    ///   risktail verify -c risktail.toml --json | jq '.sources[].files[] | select(.missing != [])'
    ///   risktail verify -c risktail.toml --source engine '/archive/engine.log.*.gz'
    #[command(verbatim_doc_comment)]
    Verify(VerifyArgs),
    /// Add to the tables the columns this release writes and they lack.
    ///
    /// A table an earlier release created lacks the quarantine table's
    /// `line_id`; this release writes it without, and `verify` matches such
    /// rows by offset and line. An earlier release refuses a table with a
    /// column it does not know and stops, so the columns are added only once
    /// no writer of an earlier release is about: it is refused while the
    /// events table shows a commit of one within the last hour (naming its
    /// holder), unless --force. Run it once every host runs this release.
    /// Exit status: 0 added (or nothing to add), 1 refused, 2 bad config,
    /// 3 a table cannot be read or written.
    ///
    /// Examples:
    ///   risktail migrate -c /etc/risktail/risktail.toml
    #[command(verbatim_doc_comment)]
    Migrate(MigrateArgs),
    /// Print shell completions (bash, zsh, fish, elvish, powershell) to stdout.
    ///
    /// Examples:
    ///   risktail completions bash > /usr/share/bash-completion/completions/risktail
    ///   risktail completions zsh > "${fpath[1]}/_risktail"
    #[command(verbatim_doc_comment, hide = true)]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to stdout: `risktail manpage | man -l -`.
    #[command(hide = true)]
    Manpage,
}

/// Writes completions for `shell` to `out`.
pub fn completions(shell: clap_complete::Shell, out: &mut dyn std::io::Write) {
    let mut cmd = <Cli as clap::CommandFactory>::command();
    clap_complete::generate(shell, &mut cmd, "risktail", out);
}

/// Writes the man page, every subcommand's help included, to `out`.
pub fn manpage(out: &mut dyn std::io::Write) -> std::io::Result<()> {
    let cmd = <Cli as clap::CommandFactory>::command();
    let man = clap_mangen::Man::new(cmd.clone());
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    man.render_subcommands_section(out)?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("risktail-{}", sub.get_name());
        let bin = format!("risktail {}", sub.get_name());
        let sub = sub.clone().name(name).bin_name(bin);
        let m = clap_mangen::Man::new(sub);
        m.render_name_section(out)?;
        m.render_synopsis_section(out)?;
        m.render_description_section(out)?;
        m.render_options_section(out)?;
    }
    man.render_version_section(out)?;
    Ok(())
}

/// `risktail state`
#[derive(Debug, Args)]
pub struct StateArgs {
    /// The config file (the table, the sources and their timezones).
    #[arg(short, long, default_value = "risktail.toml", value_name = "FILE")]
    pub config: PathBuf,
    /// The instant: RFC 3339, or local time in the source's timezone.
    #[arg(long, value_name = "TIME")]
    pub at: String,
    /// Only this source.
    #[arg(short, long, value_name = "NAME")]
    pub source: Option<String>,
    /// How far back to look for stops still alive and for resets, in hours
    /// (the breaker's last transition is found however old it is).
    #[arg(long, default_value_t = 48, value_name = "HOURS")]
    pub lookback_hours: u32,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `risktail report`
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The config file.
    #[arg(short, long, default_value = "risktail.toml", value_name = "FILE")]
    pub config: PathBuf,
    /// First UTC day (YYYY-MM-DD); default the table's first.
    #[arg(long, value_name = "DATE")]
    pub from: Option<chrono::NaiveDate>,
    /// Last UTC day, inclusive; default the table's last.
    #[arg(long, value_name = "DATE")]
    pub to: Option<chrono::NaiveDate>,
    /// Only this source.
    #[arg(short, long, value_name = "NAME")]
    pub source: Option<String>,
    /// Also write a self-contained HTML page with charts to FILE.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
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
    /// Print JSON (per source and file: identity, size, committed offset,
    /// bytes behind; the table's version and last commit with its age).
    #[arg(long)]
    pub json: bool,
    /// Exit 1 when a source has bytes not yet committed and has not committed
    /// for more than this many seconds (for cron jobs and health checks).
    #[arg(long, value_name = "SECONDS")]
    pub max_lag_seconds: Option<f64>,
}

/// `risktail verify`
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The config file.
    #[arg(short, long, default_value = "risktail.toml", value_name = "FILE")]
    pub config: PathBuf,
    /// Only this source.
    #[arg(short, long, value_name = "NAME")]
    pub source: Option<String>,
    /// Print JSON (per source and file: what was expected, what is missing,
    /// doubled or changed; the log's flaws).
    #[arg(long)]
    pub json: bool,
    /// Compare only events at or after this instant (RFC 3339, or a UTC day
    /// YYYY-MM-DD); quarantine rows carry no event time and are always compared.
    #[arg(long, value_name = "T")]
    pub from: Option<String>,
    /// Compare only events before this instant (RFC 3339), or on or before
    /// this UTC day (YYYY-MM-DD).
    #[arg(long, value_name = "T")]
    pub to: Option<String>,
    /// Archives to check besides the configured files (paths or globs).
    #[arg(value_name = "PATH")]
    pub inputs: Vec<String>,
}

/// `risktail migrate`
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The config file.
    #[arg(short, long, default_value = "risktail.toml", value_name = "FILE")]
    pub config: PathBuf,
    /// Add the columns even if a writer of an earlier release committed
    /// within the last hour (it stops at its next commit; its offsets stay
    /// where they are, so nothing is lost while its logs stay on disk).
    #[arg(long)]
    pub force: bool,
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
