//! The wiring between layers: a file's lines through the parser into the sink,
//! with offsets that only move when a commit lands.

pub mod ingest;
