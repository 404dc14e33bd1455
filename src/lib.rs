//! risktail: a sidecar that tails a Python trading engine's log files and
//! appends its risk events exactly once to a Delta Lake table.
//!
//! The modules read as the data flow, one way: `source` → `parse` → `event`
//! → `sink` → `pipeline` → `daemon` / `commands`, with `audit` reading the
//! table back. The map of the code, each module's one job, is in
//! `docs/DESIGN.md` ("The flow of one line").
#![deny(missing_docs)]

pub mod audit;
pub mod cli;
pub mod commands;
pub mod config;
pub mod daemon;
pub mod event;
pub mod freeing;
pub mod logs;
pub mod metrics;
pub mod parse;
pub mod pipeline;
pub mod sink;
pub mod source;
pub mod tally;
