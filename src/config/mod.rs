//! The validated configuration. [`Config::load`] reads `risktail.toml`, checks
//! every value, compiles envelopes and loads pattern files, so a bad config
//! fails at start with the file, the key and what is wrong, never later.
//!
//! Each section has its checker ([`Checker`]), so every message names its key.

pub mod file;

use chrono_tz::Tz;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::parse::SourceParser;
use crate::parse::envelope::{
    Envelope, json::JsonEnvelope, loguru::LoguruEnvelope, python::PythonEnvelope,
};
use crate::parse::patterns::{PatternError, PatternSet};
use crate::parse::time::DateFormat;
use crate::source::fingerprint::Heads;
use crate::source::follow::FollowSettings;
use crate::source::reader::DEFAULT_MAX_LINE_BYTES;
pub use file::{EnvelopeKind, StartAt};

pub use crate::parse::envelope::python::DEFAULT_PYTHON_FORMAT;

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The config file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not TOML, a wrong type, or an unknown key (toml's message names the key and line).
    #[error("{path}: {message}")]
    Toml {
        /// The config file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A value that parses but cannot be used.
    #[error("{path}: {key}: {message}")]
    Invalid {
        /// The config file.
        path: PathBuf,
        /// The key, e.g. `source[0] (engine).timezone`.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// A pattern file could not be loaded.
    #[error("{path}: patterns: {source}")]
    Patterns {
        /// The config file.
        path: PathBuf,
        /// The pattern error (names its file and pattern).
        source: PatternError,
    },
}

/// One validated `[[source]]`.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    /// Its name.
    pub name: String,
    /// Path globs, absolute or relative to the working directory (resolved
    /// against the config file's folder).
    pub paths: Vec<String>,
    /// Which envelope.
    pub envelope_kind: EnvelopeKind,
    /// The compiled envelope.
    pub envelope: Envelope,
    /// Zone of offset-less times.
    pub timezone: Tz,
    /// Oversize limit.
    pub max_line_bytes: usize,
    /// Where never-seen files start.
    pub start_at: StartAt,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from.
    pub path: PathBuf,
    /// `risk_events` location (a local path is absolute after loading).
    pub table_uri: String,
    /// `risk_events_quarantine` location.
    pub quarantine_uri: String,
    /// `[table.storage]`: storage options for object-store tables.
    pub storage_options: std::collections::HashMap<String, String>,
    /// `[table] lease_seconds`: how long a silent writer keeps its sources.
    pub lease: std::time::Duration,
    /// `[flush] interval_ms`.
    pub flush_interval: std::time::Duration,
    /// `[flush] max_events`.
    pub flush_max_events: usize,
    /// `[backfill] commit_rows`.
    pub backfill_commit_rows: usize,
    /// `[backfill] threads` (every core when not set).
    pub backfill_threads: usize,
    /// `[backfill] stretch_bytes`.
    pub backfill_stretch_bytes: u64,
    /// `[metrics] listen`: where `run` serves `/metrics`, if anywhere.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// `[audit] alerts_uri`: the engine's alerts table, if `report` may read it.
    pub alerts_uri: Option<String>,
    /// The sources, in file order.
    pub sources: Vec<SourceConfig>,
    /// The loaded pattern set.
    pub patterns: Arc<PatternSet>,
    /// Pattern folders (for reloads).
    pub pattern_dirs: Vec<PathBuf>,
    /// Whether built-in patterns are loaded.
    pub builtin_patterns: bool,
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::from_str(path, &text)
    }

    /// Validates config text; `path` names it in errors and anchors relative paths.
    pub fn from_str(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let raw: file::ConfigFile = toml::from_str(text).map_err(|e| ConfigError::Toml {
            path: path.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        let ck = Checker::new(path);
        let table = ck.table(&raw.table)?;
        let metrics_listen = ck.limits(&raw)?;
        if raw.sources.is_empty() {
            return Err(ck.invalid(
                "source",
                "at least one [[source]] is needed: name, paths, envelope".into(),
            ));
        }
        let host = host_name();
        let mut sources: Vec<SourceConfig> = Vec::new();
        for (i, s) in raw.sources.iter().enumerate() {
            let source = ck.source(i, s, &host)?;
            if sources.iter().any(|o| o.name == source.name) {
                let key = format!("source[{i}] ({}).name", s.name);
                return Err(ck.invalid(&key, "another source has this name".into()));
            }
            sources.push(source);
        }
        let (patterns, pattern_dirs, builtin_patterns) = ck.patterns(&raw.patterns)?;
        Ok(Config {
            path: path.to_owned(),
            table_uri: table.uri,
            quarantine_uri: table.quarantine_uri,
            storage_options: raw.table.storage.clone().into_iter().collect(),
            lease: table.lease,
            flush_interval: std::time::Duration::from_millis(raw.flush.interval_ms),
            flush_max_events: raw.flush.max_events,
            backfill_commit_rows: raw.backfill.commit_rows,
            backfill_threads: raw.backfill.threads.unwrap_or_else(|| {
                std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
            }),
            backfill_stretch_bytes: raw.backfill.stretch_bytes,
            metrics_listen,
            alerts_uri: raw
                .audit
                .alerts_uri
                .as_deref()
                .map(|u| resolve_uri(&ck.base, u)),
            sources,
            patterns: Arc::new(patterns),
            pattern_dirs,
            builtin_patterns,
        })
    }

    /// The source of this name, or the only source when `name` is None.
    pub fn source(&self, name: Option<&str>) -> Result<&SourceConfig, String> {
        match name {
            Some(n) => self.sources.iter().find(|s| s.name == n).ok_or_else(|| {
                let names: Vec<_> = self.sources.iter().map(|s| s.name.as_str()).collect();
                format!(
                    "no source named {n:?} in {} (sources: {})",
                    self.path.display(),
                    names.join(", ")
                )
            }),
            None if self.sources.len() == 1 => Ok(&self.sources[0]),
            None => {
                let names: Vec<_> = self.sources.iter().map(|s| s.name.as_str()).collect();
                Err(format!(
                    "{} has {} sources; say which with --source ({})",
                    self.path.display(),
                    self.sources.len(),
                    names.join(", ")
                ))
            }
        }
    }

    /// The parser of a source.
    pub fn parser(&self, source: &SourceConfig) -> SourceParser {
        SourceParser::new(
            &source.name,
            source.envelope.clone(),
            self.patterns.clone(),
            source.timezone,
        )
    }
}

/// `[table]` validated.
struct TableChecked {
    uri: String,
    quarantine_uri: String,
    lease: std::time::Duration,
}

/// Validates one config file's sections: knows the file (for messages) and
/// its folder (for relative paths).
struct Checker<'a> {
    path: &'a Path,
    base: PathBuf,
}

impl<'a> Checker<'a> {
    fn new(path: &'a Path) -> Checker<'a> {
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_owned();
        Checker { path, base }
    }

    fn invalid(&self, key: &str, message: String) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.to_owned(),
            key: key.to_owned(),
            message,
        }
    }

    /// `[table]`: both locations (distinct, of a known scheme) and the lease.
    fn table(&self, t: &file::TableSection) -> Result<TableChecked, ConfigError> {
        if t.uri.trim().is_empty() {
            return Err(self.invalid("table.uri", "must not be empty".into()));
        }
        let uri = resolve_uri(&self.base, &t.uri);
        let quarantine_uri = match &t.quarantine_uri {
            Some(q) if q.trim().is_empty() => {
                return Err(self.invalid("table.quarantine_uri", "must not be empty".into()));
            }
            Some(q) => resolve_uri(&self.base, q),
            None => format!("{}_quarantine", uri.trim_end_matches('/')),
        };
        for (key, u) in [
            ("table.uri", &uri),
            ("table.quarantine_uri", &quarantine_uri),
        ] {
            check_scheme(u).map_err(|why| self.invalid(key, why))?;
        }
        if let Some((k, _)) = t.storage.iter().find(|(_, v)| v.trim().is_empty()) {
            return Err(self.invalid(&format!("table.storage.{k}"), "must not be empty".into()));
        }
        let lease = match t.lease_seconds {
            None => crate::sink::lease::DEFAULT_LEASE,
            Some(s) if (2..=86_400).contains(&s) => std::time::Duration::from_secs(s),
            Some(s) => {
                return Err(
                    self.invalid("table.lease_seconds", format!("{s}: between 2 and 86400"))
                );
            }
        };
        if quarantine_uri == uri {
            return Err(self.invalid("table.quarantine_uri", "must differ from table.uri".into()));
        }
        Ok(TableChecked {
            uri,
            quarantine_uri,
            lease,
        })
    }

    /// `[flush]`, `[backfill]` and `[metrics]`: the numbers at least 1, and
    /// the metrics address (returned) a socket address.
    fn limits(&self, raw: &file::ConfigFile) -> Result<Option<std::net::SocketAddr>, ConfigError> {
        for (key, n) in [
            ("flush.interval_ms", raw.flush.interval_ms),
            ("backfill.commit_rows", raw.backfill.commit_rows as u64),
            ("flush.max_events", raw.flush.max_events as u64),
            ("backfill.threads", raw.backfill.threads.unwrap_or(1) as u64),
            ("backfill.stretch_bytes", raw.backfill.stretch_bytes),
        ] {
            if n == 0 {
                return Err(self.invalid(key, "must be at least 1".into()));
            }
        }
        raw.metrics
            .listen
            .as_ref()
            .map(|a| {
                a.parse::<std::net::SocketAddr>().map_err(|e| {
                    self.invalid(
                        "metrics.listen",
                        format!(
                            "{a:?}: {e}; write an IP address and port, e.g. \"127.0.0.1:9898\""
                        ),
                    )
                })
            })
            .transpose()
    }

    /// One `[[source]]` (the `i`th): its name with `{host}` filled in, paths
    /// against the config's folder, zone, envelope and line limit.
    fn source(
        &self,
        i: usize,
        s: &file::SourceSection,
        host: &str,
    ) -> Result<SourceConfig, ConfigError> {
        let key = |k: &str| format!("source[{i}] ({}).{k}", s.name);
        // `{host}` makes one config serve every host of a shared table.
        let name = s.name.replace("{host}", host);
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
        if name.is_empty() || !name.chars().all(allowed) {
            return Err(self.invalid(
                &key("name"),
                format!(
                    "{name:?}: use letters, digits, '_', '-' or '.', and {{host}} for this host's name (it names the source's offsets in the table)"
                ),
            ));
        }
        if s.paths.is_empty() {
            return Err(self.invalid(&key("paths"), "list at least one file or glob".into()));
        }
        let mut paths = Vec::new();
        for p in &s.paths {
            let full = self.base.join(p).to_string_lossy().into_owned();
            glob::Pattern::new(&full).map_err(|e| {
                self.invalid(&key("paths"), format!("{p:?} is not a valid glob: {e}"))
            })?;
            paths.push(full);
        }
        let timezone: Tz = match &s.timezone {
            None => Tz::UTC,
            Some(z) => z.parse().map_err(|_| {
                self.invalid(
                    &key("timezone"),
                    format!("{z:?} is not an IANA timezone (e.g. \"America/New_York\", \"UTC\")"),
                )
            })?,
        };
        let envelope = self.envelope(s, &key)?;
        let max_line_bytes = s.max_line_bytes.unwrap_or(DEFAULT_MAX_LINE_BYTES);
        if max_line_bytes < 256 {
            return Err(self.invalid(&key("max_line_bytes"), "must be at least 256".into()));
        }
        Ok(SourceConfig {
            name,
            paths,
            envelope_kind: s.envelope,
            envelope,
            timezone,
            max_line_bytes,
            start_at: s.start_at.unwrap_or_default(),
        })
    }

    /// A source's envelope, compiled; `format` and `datefmt` only where the
    /// envelope reads them.
    fn envelope(
        &self,
        s: &file::SourceSection,
        key: &dyn Fn(&str) -> String,
    ) -> Result<Envelope, ConfigError> {
        use crate::parse::envelope::python::PythonEnvelopeError;
        match s.envelope {
            EnvelopeKind::Python => {
                let fmt = s.format.as_deref().unwrap_or(DEFAULT_PYTHON_FORMAT);
                let env = PythonEnvelope::new(fmt, s.datefmt.as_deref()).map_err(|e| {
                    let k = match e {
                        PythonEnvelopeError::Format(_) => "format",
                        PythonEnvelopeError::Datefmt(_) => "datefmt",
                    };
                    self.invalid(&key(k), e.to_string())
                })?;
                Ok(Envelope::Python(env))
            }
            EnvelopeKind::Loguru => {
                for (k, v) in [("format", &s.format), ("datefmt", &s.datefmt)] {
                    if v.is_some() {
                        return Err(self.invalid(&key(k), "applies to envelope = \"python\" only; loguru's default format is built in".into()));
                    }
                }
                Ok(Envelope::Loguru(LoguruEnvelope::new()))
            }
            EnvelopeKind::Json => {
                if s.format.is_some() {
                    return Err(self.invalid(
                        &key("format"),
                        "applies to envelope = \"python\" only".into(),
                    ));
                }
                let datefmt = s
                    .datefmt
                    .as_deref()
                    .map(DateFormat::compile)
                    .transpose()
                    .map_err(|e| self.invalid(&key("datefmt"), e.to_string()))?;
                Ok(Envelope::Json(JsonEnvelope::new(datefmt)))
            }
        }
    }

    /// `[patterns]`: the set loaded (built-in first unless switched off),
    /// the folders, and whether built-ins are in.
    fn patterns(
        &self,
        p: &file::PatternsSection,
    ) -> Result<(PatternSet, Vec<PathBuf>, bool), ConfigError> {
        let dirs: Vec<PathBuf> = p.dirs.iter().map(|d| self.base.join(d)).collect();
        let builtin = p.builtin.unwrap_or(true);
        if !builtin && dirs.is_empty() {
            return Err(self.invalid(
                "patterns.builtin",
                "false with no patterns.dirs leaves no patterns at all".into(),
            ));
        }
        let set = PatternSet::load(builtin, &dirs).map_err(|source| ConfigError::Patterns {
            path: self.path.to_owned(),
            source,
        })?;
        Ok((set, dirs, builtin))
    }
}

impl SourceConfig {
    /// What following this source's files needs to know.
    /// `heads` tells its records' first lines (its parser's).
    pub fn follow(&self, heads: Heads) -> FollowSettings {
        FollowSettings {
            heads,
            source: self.name.clone(),
            paths: self.paths.clone(),
            max_line_bytes: self.max_line_bytes,
            start_at: self.start_at,
        }
    }
}

/// This host's name (for `{host}` in source names, and to name a lease's
/// holder): `RISKTAIL_HOST` if set (containers whose host name changes at
/// every start), else the kernel's, as `hostname` prints it; `localhost` if
/// neither can be read.
pub fn host_name() -> String {
    std::env::var("RISKTAIL_HOST")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// A table is a local path or `file://`, or on an object store delta-rs
/// serves (`sink::store::scheme_feature`).
fn check_scheme(uri: &str) -> Result<(), String> {
    match uri.split_once("://") {
        None => Ok(()),
        Some(("file", _)) => Ok(()),
        Some((scheme, _)) if crate::sink::store::scheme_feature(scheme).is_some() => Ok(()),
        Some((scheme, _)) => Err(format!(
            "unknown scheme {scheme:?}: a local path, file://, s3://, az:// or abfss://, or gs://"
        )),
    }
}

/// A local path relative to the config file becomes absolute-ish (joined to
/// the config's folder); URLs (`s3://…`, `file://…`) are kept.
fn resolve_uri(base: &Path, uri: &str) -> String {
    if uri.contains("://") || base == Path::new(".") {
        uri.to_owned()
    } else {
        base.join(uri).to_string_lossy().into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[table]
uri = "lake/risk_events"
[[source]]
name = "engine"
paths = ["logs/engine.log"]
envelope = "python"
timezone = "America/New_York"
"#;

    fn load(text: &str) -> Result<Config, ConfigError> {
        Config::from_str(Path::new("/etc/risktail/risktail.toml"), text)
    }

    #[test]
    fn object_store_tables_and_their_storage_options() {
        let c = load(&GOOD.replace(
            "uri = \"lake/risk_events\"",
            "uri = \"s3://lake/risk_events\"\n[table.storage]\naws_region = \"eu-west-1\"",
        ))
        .unwrap();
        assert_eq!(c.table_uri, "s3://lake/risk_events");
        assert_eq!(c.quarantine_uri, "s3://lake/risk_events_quarantine");
        assert_eq!(
            c.storage_options.get("aws_region").map(String::as_str),
            Some("eu-west-1")
        );
        let c = load(&GOOD.replace("name = \"engine\"", "name = \"engine-{host}\"")).unwrap();
        assert_eq!(c.sources[0].name, format!("engine-{}", host_name()));
        let e = load(&GOOD.replace("lake/risk_events", "s4://lake/risk_events")).unwrap_err();
        assert!(
            e.to_string().contains("table.uri") && e.to_string().contains("s4"),
            "{e}"
        );
        let e = load(&GOOD.replace(
            "uri = \"lake/risk_events\"",
            "uri = \"gs://lake/t\"\n[table.storage]\ngoogle_service_account = \"\"",
        ))
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("table.storage.google_service_account"),
            "{e}"
        );
    }

    #[test]
    fn good_config_with_defaults() {
        let c = load(GOOD).unwrap();
        assert_eq!(c.table_uri, "/etc/risktail/lake/risk_events");
        assert_eq!(
            c.quarantine_uri,
            "/etc/risktail/lake/risk_events_quarantine"
        );
        assert_eq!(c.flush_interval.as_millis(), 1000);
        assert_eq!(c.flush_max_events, 10_000);
        assert_eq!(c.sources[0].paths, vec!["/etc/risktail/logs/engine.log"]);
        assert_eq!(c.sources[0].max_line_bytes, 1 << 20);
    }

    #[test]
    fn unknown_key_is_named() {
        let e = load(&GOOD.replace("[table]", "[flush]\nintervall_ms = 5\n[table]")).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("risktail.toml") && msg.contains("intervall_ms"),
            "{msg}"
        );
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases = [
            (
                GOOD.replace("America/New_York", "Mars/Olympus"),
                "source[0] (engine).timezone",
            ),
            (
                GOOD.replace(
                    "envelope = \"python\"",
                    "envelope = \"python\"\nformat = \"%(levelname)s %(message)s\"",
                ),
                "source[0] (engine).format",
            ),
            (
                GOOD.replace(
                    "envelope = \"python\"",
                    "envelope = \"python\"\ndatefmt = \"%H:%M\"",
                ),
                "source[0] (engine).datefmt",
            ),
            (
                GOOD.replace(
                    "envelope = \"python\"",
                    "envelope = \"loguru\"\nformat = \"x\"",
                ),
                "source[0] (engine).format",
            ),
            (
                GOOD.replace("name = \"engine\"", "name = \"en gine\""),
                "name",
            ),
            (
                GOOD.replace("[table]", "[flush]\ninterval_ms = 0\n[table]"),
                "flush.interval_ms",
            ),
        ];
        for (text, key) in cases {
            let msg = load(&text).unwrap_err().to_string();
            assert!(msg.contains(key), "expected {key:?} in {msg}");
            assert!(msg.starts_with("/etc/risktail/risktail.toml"), "{msg}");
        }
        let msg = load(&GOOD.replace("envelope = \"python\"", "envelope = \"xml\""))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("envelope") && msg.contains("xml"), "{msg}");
    }
}
