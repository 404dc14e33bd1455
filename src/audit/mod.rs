//! The audit: questions asked of the `risk_events` table after the fact.
//!
//! The reading side of the flow, and the reason the table exists: after a
//! crash, what was the risk state at an instant ([`state`]); over history, how
//! did the three risk layers behave ([`report`], with charts in [`html`]).
//! [`load`] reads only the partitions and columns a question needs;
//! [`breaker`] and [`stops`] rebuild the breaker's transitions and the
//! trailing stops' lives from their events; [`text`] prints them for a terminal.

pub mod alerts;
pub mod breaker;
pub mod checks;
pub mod html;
pub mod load;
pub mod report;
pub mod row;
pub mod state;
pub mod stops;
pub mod sym;
pub mod text;

use std::path::PathBuf;

/// Why an audit question could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// No table at the configured place.
    #[error("{0}: no risk_events table here yet (run `risktail backfill` or `risktail run` first)")]
    NoTable(String),
    /// The table holds no rows.
    #[error("{0}: the table holds no events")]
    Empty(String),
    /// The Delta log could not be read.
    #[error("{table}: {message}")]
    Table {
        /// The table.
        table: String,
        /// What went wrong.
        message: String,
    },
    /// A data file could not be read.
    #[error("{path}: {message}")]
    File {
        /// The Parquet file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A data file could not be read (the error names it).
    #[error("{0}")]
    Read(#[from] crate::sink::SinkError),
    /// A data file's columns are not `risk_events` columns.
    #[error("{path}: {source}")]
    Decode {
        /// The Parquet file.
        path: PathBuf,
        /// Which column, and why.
        source: crate::event::decode::DecodeError,
    },
    /// The engine's alerts table lacks a column `report` reads.
    #[error("alerts table {table}: {source}")]
    Alerts {
        /// The alerts table.
        table: String,
        /// Which column, and why.
        source: alerts::ColumnProblem,
    },
    /// A reading thread could not be started.
    #[error("cannot start a thread to read the table: {0}")]
    Thread(std::io::Error),
    /// A period that makes no sense.
    #[error("{0}")]
    Period(String),
}
