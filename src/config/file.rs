//! The serde mirror of `risktail.toml`. Every section denies unknown keys, so
//! a typo is an error that names the key instead of a silently ignored setting.

use serde::Deserialize;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// `[table]`
    pub table: TableSection,
    /// `[flush]`
    #[serde(default)]
    pub flush: FlushSection,
    /// `[backfill]`
    #[serde(default)]
    pub backfill: BackfillSection,
    /// `[metrics]`
    #[serde(default)]
    pub metrics: MetricsSection,
    /// `[audit]`
    #[serde(default)]
    pub audit: AuditSection,
    /// `[[source]]`
    #[serde(default, rename = "source")]
    pub sources: Vec<SourceSection>,
    /// `[patterns]`
    #[serde(default)]
    pub patterns: PatternsSection,
}

/// `[table]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableSection {
    /// Where `risk_events` lives: a local path (relative to the config file) or a URL.
    pub uri: String,
    /// Where the quarantine table lives; default: `<uri>_quarantine`.
    pub quarantine_uri: Option<String>,
    /// `[table.storage]`: object store options passed through to delta-rs
    /// (e.g. `aws_endpoint_url`, `aws_region`, `azure_storage_account_name`),
    /// on top of the standard environment variables.
    #[serde(default)]
    pub storage: std::collections::BTreeMap<String, String>,
    /// How long a silent writer keeps its sources (seconds; default 60).
    pub lease_seconds: Option<u64>,
}

/// `[flush]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlushSection {
    /// Commit at least this often while rows are pending.
    #[serde(default = "default_interval")]
    pub interval_ms: u64,
    /// Commit when this many rows are pending.
    #[serde(default = "default_max_events")]
    pub max_events: usize,
}

/// `[audit]`: what `report` reads beside the table.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AuditSection {
    /// The engine's alerts Delta table (its CLOSE decisions and their rules),
    /// a local path relative to the config file; optional.
    pub alerts_uri: Option<String>,
}

/// `[metrics]`: the Prometheus endpoint of `risktail run`.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct MetricsSection {
    /// `host:port` to serve `/metrics` on (e.g. `127.0.0.1:9898`); off when absent.
    pub listen: Option<String>,
}

/// `[backfill]`: how `backfill` (and the daemon's catch-up of rotated files)
/// writes whole files.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackfillSection {
    /// Rows per commit: rows are streamed into the commit's Parquet files in
    /// batches of `flush.max_events`, and committed with their offsets once
    /// this many are written (and at the end of each file).
    #[serde(default = "default_commit_rows")]
    pub commit_rows: usize,
    /// Threads a backfill uses: one reads and parses a file while another
    /// encodes and commits what it parsed (default: every core; 1 does both
    /// on one, in turn). The daemon always uses one.
    pub threads: Option<usize>,
    /// Bytes of a plain file each thread parses at a time when a backfill
    /// reads one file on several threads (cut at line starts).
    #[serde(default = "default_stretch_bytes")]
    pub stretch_bytes: u64,
}

fn default_commit_rows() -> usize {
    1_000_000
}

fn default_stretch_bytes() -> u64 {
    4 << 20
}

impl Default for BackfillSection {
    fn default() -> Self {
        BackfillSection {
            commit_rows: default_commit_rows(),
            threads: None,
            stretch_bytes: default_stretch_bytes(),
        }
    }
}

fn default_interval() -> u64 {
    1000
}

fn default_max_events() -> usize {
    10_000
}

impl Default for FlushSection {
    fn default() -> Self {
        FlushSection {
            interval_ms: default_interval(),
            max_events: default_max_events(),
        }
    }
}

/// The envelope names a source may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EnvelopeKind {
    /// Python `logging` with a format string.
    Python,
    /// loguru's default format.
    Loguru,
    /// JSON lines.
    Json,
}

pub use crate::source::follow::StartAt;

/// `[[source]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSection {
    /// Unique name; part of every row and of the offsets' ids.
    pub name: String,
    /// Files to follow (globs allowed), relative to the config file.
    pub paths: Vec<String>,
    /// `python`, `loguru` or `json`.
    pub envelope: EnvelopeKind,
    /// The engine's `logging.Formatter` format string (python only).
    pub format: Option<String>,
    /// The formatter's datefmt (python and json).
    pub datefmt: Option<String>,
    /// IANA zone of times without an offset; default UTC.
    pub timezone: Option<String>,
    /// Lines longer than this go to quarantine; default 1 MiB.
    pub max_line_bytes: Option<usize>,
    /// `beginning` (default) or `end`, for files never seen before.
    pub start_at: Option<StartAt>,
}

/// `[patterns]`
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PatternsSection {
    /// Folders of pattern files (relative to the config file).
    #[serde(default)]
    pub dirs: Vec<String>,
    /// Load the built-in patterns first (default true); a file in `dirs` with a
    /// built-in file's name replaces it.
    pub builtin: Option<bool>,
}
