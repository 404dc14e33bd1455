//! `risktail status`: per source and file, the committed offset and the bytes
//! not yet committed; the table's version and last commit. Reads the table;
//! changes nothing. `--json` is for machines; `--max-lag-seconds` turns it
//! into a health check (exit 1 when a source lags more).

use anyhow::Result;
use serde::Serialize;

use super::out::out_line;
use crate::cli::StatusArgs;
use crate::sink::DeltaSink;
use crate::source::{self, discover};
use crate::tally::{bytes, thousands};

/// The whole answer, as `--json` prints it.
#[derive(Debug, Serialize)]
struct Status {
    table: String,
    version: u64,
    /// Last commit to the table (anyone's), RFC 3339, and its age.
    last_commit: Option<String>,
    last_commit_age_seconds: Option<f64>,
    sources: Vec<SourceStatus>,
    /// Sources lagging more than `--max-lag-seconds`.
    lagging: Vec<String>,
}

#[derive(Debug, Serialize)]
struct SourceStatus {
    name: String,
    last_commit: Option<String>,
    bytes_behind: u64,
    /// 0 when nothing is behind; else seconds since the source last
    /// committed (or, if it never did, since its newest file was written).
    lag_seconds: f64,
    /// Files stored by the rule for a place nothing decides (they start
    /// inside the repeated autumn hour; docs/DIALECT.md §1.1).
    undecided_files: usize,
    files: Vec<FileStatus>,
    /// Seconds since the newest file with bytes behind was written.
    #[serde(skip)]
    newest_write_age: Option<f64>,
}

#[derive(Debug, Serialize)]
struct FileStatus {
    path: String,
    identity: Option<String>,
    live: bool,
    size: u64,
    committed: u64,
    bytes_behind: u64,
    /// Stored in the first pass of the repeated autumn hour by the rule for
    /// a place nothing decides.
    undecided: bool,
    error: Option<String>,
}

/// Prints the status. Returns false when a file could not be looked at or a
/// source lags more than `--max-lag-seconds`.
pub fn run(args: &StatusArgs) -> Result<bool> {
    let config = super::load_config(&args.config)?;
    let rt = super::runtime()?;
    let mut sink = rt.block_on(DeltaSink::open_existing(
        &config.table_uri,
        &config.quarantine_uri,
    ))?;
    // Every file's offsets from one pass over each log, not a log replay per file.
    rt.block_on(sink.know_every_txn())?;
    let names: Vec<&str> = config.sources.iter().map(|s| s.name.as_str()).collect();
    let (newest, per_source) = rt.block_on(sink.last_commits(&names))?;
    let now = chrono::Utc::now();
    let age = |ms: i64| (now.timestamp_millis() - ms).max(0) as f64 / 1000.0;
    let when = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
    };
    let mut status = Status {
        table: config.table_uri.clone(),
        version: sink.version(),
        last_commit: newest.and_then(when),
        last_commit_age_seconds: newest.map(age),
        sources: Vec::new(),
        lagging: Vec::new(),
    };
    let mut ok = true;
    for (s, last) in config.sources.iter().zip(per_source) {
        let (mut src, readable) = source_status(&rt, &sink, &config, s)?;
        ok &= readable;
        src.last_commit = last.and_then(when);
        if src.bytes_behind > 0 {
            src.lag_seconds = match last {
                Some(ms) => age(ms),
                None => src.newest_write_age.unwrap_or(0.0),
            };
        }
        if args
            .max_lag_seconds
            .is_some_and(|max| src.lag_seconds > max)
        {
            status.lagging.push(src.name.clone());
        }
        status.sources.push(src);
    }
    if args.json {
        super::out::print_json(&status)?;
    } else {
        super::out::print(&text(&status))?;
        for name in &status.lagging {
            eprintln!("risktail status: source {name} lags more than --max-lag-seconds");
        }
    }
    Ok(ok && status.lagging.is_empty())
}

/// One source's files: identity, size, committed offset, bytes behind;
/// and whether every file could be read.
fn source_status(
    rt: &tokio::runtime::Runtime,
    sink: &DeltaSink,
    config: &crate::config::Config,
    s: &crate::config::SourceConfig,
) -> Result<(SourceStatus, bool)> {
    let mut src = SourceStatus {
        name: s.name.clone(),
        last_commit: None,
        bytes_behind: 0,
        lag_seconds: 0.0,
        undecided_files: 0,
        files: Vec::new(),
        newest_write_age: None,
    };
    let mut ok = true;
    let mut newest_write: Option<std::time::SystemTime> = None;
    let heads = config.parser(s).heads();
    for pattern in &s.paths {
        for f in discover::family(pattern).unwrap_or_default() {
            // One descriptor for the size and the identity.
            let opened = source::open(&f.path, s.max_line_bytes, &heads);
            let size = opened.as_ref().ok().and_then(|o| o.len_hint).unwrap_or(0);
            let id = opened.map(|o| o.lines.identity(f.live));
            let (identity, committed, undecided, error) = match id {
                Ok(Some(id)) => {
                    let c = rt.block_on(sink.committed(&s.name, id))?;
                    let u = rt.block_on(sink.is_undecided(&s.name, id))?;
                    (Some(id.to_string()), c.events, u, None)
                }
                Ok(None) => (None, 0, false, None),
                Err(e) => {
                    ok = false;
                    (None, 0, false, Some(e.to_string()))
                }
            };
            src.undecided_files += usize::from(undecided);
            let behind = size.saturating_sub(committed);
            if behind > 0 {
                let m = std::fs::metadata(&f.path).and_then(|m| m.modified()).ok();
                newest_write = newest_write.max(m);
            }
            src.bytes_behind += behind;
            src.files.push(FileStatus {
                path: f.path.display().to_string(),
                identity,
                live: f.live,
                size,
                committed,
                bytes_behind: behind,
                undecided,
                error,
            });
        }
    }
    src.newest_write_age = newest_write
        .and_then(|t| t.elapsed().ok())
        .map(|d| d.as_secs_f64());
    Ok((src, ok))
}

fn text(st: &Status) -> String {
    let mut out = String::new();
    out_line!(
        out,
        "table {} at version {}; last commit {}",
        st.table,
        st.version,
        match (&st.last_commit, st.last_commit_age_seconds) {
            (Some(t), Some(a)) => format!("{t} ({a:.0}s ago)"),
            _ => "never".into(),
        }
    );
    out_line!(
        out,
        "{:<10} {:<44} {:<36} {:>12} {:>12} {:>10}",
        "source",
        "file",
        "identity",
        "size",
        "committed",
        "behind"
    );
    for s in &st.sources {
        for f in &s.files {
            let id = match (&f.identity, &f.error) {
                (_, Some(e)) => format!("unreadable: {e}"),
                (Some(id), None) => id.clone(),
                (None, None) => "(no complete line yet)".into(),
            };
            out_line!(
                out,
                "{:<10} {:<44} {:<36} {:>12} {:>12} {:>10}{}",
                s.name,
                f.path,
                id,
                thousands(f.size),
                thousands(f.committed),
                bytes(f.bytes_behind),
                if f.live { "  (live)" } else { "" }
            );
            if f.undecided {
                out_line!(
                    out,
                    "{:<10}   ^ starts inside the repeated autumn hour with nothing to place it by: stored in the first pass",
                    s.name
                );
            }
        }
        out_line!(
            out,
            "{:<10} {} not yet committed{}",
            s.name,
            bytes(s.bytes_behind),
            if s.bytes_behind > 0 {
                format!(", lag {:.0}s", s.lag_seconds)
            } else {
                String::new()
            }
        );
    }
    out
}
