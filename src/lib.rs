//! risktail: a sidecar that tails a Python trading engine's log files and
//! appends its risk events exactly once to a Delta Lake table.
//!
//! The modules read as the data flow, one way:
//!
//! - [`source`]: files → complete lines with their file identity and offsets
//!   (discovery, fingerprint, following through rotation, line reader, gzip).
//! - [`parse`]: a line → an [`parse::Outcome`]: envelope, context prefix,
//!   pattern files, enrichment (breaker state, DST rule). Pure; no I/O.
//! - [`event`]: the typed rows of `risk_events` and `risk_events_quarantine`
//!   and the one definition of their schema.
//! - [`sink`]: the only writer: rows, offsets (`txn`) and state in one Delta commit.
//! - [`pipeline`]: lines through the parser (one per-item step for every
//!   command) into pending rows and the sink, offsets moving only on commit.
//! - [`daemon`]: `risktail run`'s loop: wake-ups, signals, when to read and commit.
//! - [`config`]: `risktail.toml`, validated at start.
//! - [`commands`]: the subcommands, wiring the layers.
#![deny(missing_docs)]

pub mod audit;
pub mod cli;
pub mod commands;
pub mod config;
pub mod daemon;
pub mod event;
pub mod logs;
pub mod metrics;
pub mod parse;
pub mod pipeline;
pub mod sink;
pub mod source;
pub mod tally;
