//! The wiring between layers: lines through the parser into rows, and rows
//! into the sink, with offsets that only move when a commit lands.
//!
//! - [`step`]: the one per-item step (noise in bulk, line, oversize line,
//!   fragment) that `parse`, `backfill` and the daemon all take.
//! - [`reading`]: a file's lines parsed into batches of rows by one stepper.
//! - [`batches`]: those batches made on a thread of its own
//!   while the caller commits (a backfill's second core) or on the caller's.
//! - [`chunks`]: one plain file parsed in stretches on every core, joined in
//!   file order into the batches one thread makes.
//! - [`ingest`]: a whole file into the table (backfill, daemon recovery).
//! - [`live`]: a source's files while they are written (the daemon).
//! - [`pending`]: rows not yet committed, when to commit, back-off.

pub mod batches;
pub mod chunks;
pub mod ingest;
pub mod live;
pub mod pending;
pub mod reading;
pub mod step;
