//! The subcommands: wiring and policy only; the work is in the layers.

pub mod archive;
pub mod backfill;
pub mod migrate;
pub mod out;
pub mod parse;
pub mod report;
pub mod run;
pub mod state;
pub mod status;
pub mod verify;

use anyhow::Context;
use std::path::PathBuf;

/// Loads the configuration and makes its `[table.storage]` options those of
/// every table this process opens.
pub fn load_config(path: &std::path::Path) -> anyhow::Result<crate::config::Config> {
    let config = crate::config::Config::load(path)?;
    crate::sink::store::set_storage_options(config.storage_options.clone());
    Ok(config)
}

/// A current-thread runtime for the table's async API (the commands do one
/// thing at a time; the daemon builds its own).
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")
}

/// Expands CLI inputs: `-` stays stdin, globs expand (sorted), plain paths stay.
/// A glob that matches nothing is an error, so a typo does not read nothing quietly.
pub fn expand_inputs(inputs: &[String]) -> Result<Vec<Input>, String> {
    let mut out = Vec::new();
    for i in inputs {
        if i == "-" {
            out.push(Input::Stdin);
            continue;
        }
        if i.contains(['*', '?', '[']) {
            let paths = glob::glob(i).map_err(|e| format!("{i}: not a valid glob: {e}"))?;
            let mut found: Vec<PathBuf> = paths.filter_map(Result::ok).collect();
            if found.is_empty() {
                return Err(format!("{i}: no file matches"));
            }
            found.sort();
            out.extend(found.into_iter().map(Input::Path));
        } else {
            out.push(Input::Path(PathBuf::from(i)));
        }
    }
    Ok(out)
}

/// Something to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Standard input.
    Stdin,
    /// A file.
    Path(PathBuf),
}

impl Input {
    /// How it is named in rows and messages.
    pub fn display(&self) -> String {
        match self {
            Input::Stdin => "-".into(),
            Input::Path(p) => p.display().to_string(),
        }
    }
}

/// The exit status for an error, by kind: 3 the table or store refused or
/// could not be reached, 4 the source is owned by another writer (a lease
/// or lock), 2 anything else (bad usage or configuration).
pub fn exit_code(e: &anyhow::Error) -> u8 {
    use crate::sink::SinkError;
    for cause in e.chain() {
        if cause.is::<verify::Unreadable>() || cause.is::<crate::daemon::StopTimedOut>() {
            return 3;
        }
        if cause.is::<crate::sink::lock::LockError>() {
            return 4;
        }
        if let Some(s) = cause.downcast_ref::<SinkError>() {
            return match s {
                SinkError::SourceHeld { .. }
                | SinkError::LeaseLost { .. }
                | SinkError::ConcurrentWriter { .. } => 4,
                _ => 3,
            };
        }
    }
    2
}

/// What an error says, each cause once: the causes joined as `{:#}` joins
/// them, leaving out a cause whose words the error that wraps it already
/// says (an error that prints its source in its own message and also gives
/// it as its source would otherwise say it twice, and a chain of such, a
/// store's "not found" four times).
pub fn message(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error whose message already holds its source's says it once;
    /// causes that add words are all kept, in order.
    #[test]
    fn each_cause_is_said_once() {
        let inner = std::io::Error::new(std::io::ErrorKind::NotFound, "x.parquet not found");
        let e = anyhow::Error::from(crate::sink::SinkError::Io {
            path: "day/x.parquet".into(),
            source: inner,
        })
        .context("reading the table");
        assert_eq!(
            message(&e),
            "reading the table: day/x.parquet: x.parquet not found"
        );
        assert_eq!(
            format!("{e:#}").matches("not found").count(),
            2,
            "the chain repeats it"
        );
        let plain = anyhow::anyhow!("no such key").context("config line 3");
        assert_eq!(message(&plain), "config line 3: no such key");
    }

    /// docs/OPERATIONS.md's exit statuses: a store that could not be reached
    /// in time at SIGTERM is 3, like any store failure (systemd restarts
    /// it); 2 is bad configuration, which systemd does not restart.
    #[test]
    fn a_final_commit_that_timed_out_exits_3() {
        let e = anyhow::Error::from(crate::daemon::StopTimedOut).context("stopping");
        assert_eq!(exit_code(&e), 3);
        assert_eq!(exit_code(&anyhow::anyhow!("a bad key")), 2);
    }
}
