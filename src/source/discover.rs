//! Finding a source's files and their rotated siblings, oldest first, so a
//! backfill reads a stream of files in the order it was written and the
//! enrichment state (breaker `old_state`, the autumn-hour rule) sees events in
//! time order.
//!
//! For a configured file `dir/engine.log` the siblings are, as the engine's
//! rotations name them:
//! - `engine.log.1`, `engine.log.2.gz` (RotatingFileHandler, logrotate): a
//!   higher number is older;
//! - `engine.log.2026-01-27`, `engine.log.2026-01-27_10` (TimedRotatingFileHandler),
//!   `engine.log-20260127` (logrotate `dateext`), each maybe `.gz`: by date;
//! - `engine.2026-01-27_10-00-00_000000.log[.gz]` (loguru's rotation): by date.
//!
//! Dated files come before numbered ones and the configured file is last: it
//! is the one still being written (the only *live* file of the family).

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// A file to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Its path.
    pub path: PathBuf,
    /// Whether a writer may still append to it (its unterminated tail may
    /// still be completed, so it is not quarantined).
    pub live: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Rank {
    Dated(String),
    Numbered(u64),
    Live,
}

impl Rank {
    fn order(&self, other: &Rank) -> Ordering {
        use Rank::*;
        match (self, other) {
            (Dated(a), Dated(b)) => a.cmp(b),
            (Numbered(a), Numbered(b)) => b.cmp(a),
            (Live, Live) => Ordering::Equal,
            (Dated(_), _) | (Numbered(_), Live) => Ordering::Less,
            _ => Ordering::Greater,
        }
    }
}

fn digits(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

fn is_date_like(s: &str) -> bool {
    let d = digits(s);
    d.len() >= 8
        && s.starts_with(|c: char| c.is_ascii_digit())
        && s.chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '-' | '_' | '.'))
}

/// Whether a file's name carries a date (and time) that orders it among its
/// siblings (`engine.log.2026-11-01_01-06`, `engine.log-20261101`, loguru's
/// `engine.2026-11-01_01-06-00_000000.log`). Such names are local time: in
/// the autumn fold they do not follow the order the files were written in.
pub fn named_by_date(path: &Path) -> bool {
    let Some(name) = path.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return false;
    };
    let name = name.strip_suffix(".gz").unwrap_or(&name);
    name.split('.').any(|part| {
        is_date_like(part) || part.split_once('-').is_some_and(|(_, d)| is_date_like(d))
    })
}

/// How `name` relates to the configured file name `base`, if it is its sibling.
fn rank(base: &str, name: &str) -> Option<Rank> {
    if name == base {
        return Some(Rank::Live);
    }
    let unzipped = name.strip_suffix(".gz").unwrap_or(name);
    if let Some(rest) = unzipped.strip_prefix(base) {
        if let Some(n) = rest.strip_prefix('.') {
            if let Ok(n) = n.parse::<u64>() {
                return Some(Rank::Numbered(n));
            }
            if is_date_like(n) {
                return Some(Rank::Dated(digits(n)));
            }
        }
        if let Some(d) = rest.strip_prefix('-')
            && is_date_like(d)
        {
            return Some(Rank::Dated(digits(d)));
        }
        if rest.is_empty() {
            // `engine.log.gz`: the configured file compressed in place.
            return Some(Rank::Numbered(0));
        }
    }
    // loguru: engine.log -> engine.2026-01-27_10-00-00_000000.log
    let (stem, ext) = base.rsplit_once('.')?;
    let middle = unzipped
        .strip_prefix(stem)?
        .strip_prefix('.')?
        .strip_suffix(ext)?
        .strip_suffix('.')?;
    is_date_like(middle).then(|| Rank::Dated(digits(middle)))
}

/// The configured file (or each file a glob matches) and its rotated
/// siblings, oldest first. Paths appear once.
pub fn family(pattern: &str) -> std::io::Result<Vec<Found>> {
    let mut bases: Vec<PathBuf> = match glob::glob(pattern) {
        Ok(paths) => paths.filter_map(Result::ok).collect(),
        Err(_) => Vec::new(),
    };
    if bases.is_empty() {
        // The live file may not exist right now (just rotated away); its
        // siblings still do. Spelled as glob spells what it finds (no
        // leading `./`), so a file's `source_file` does not depend on
        // whether the live file existed at that moment.
        let p = Path::new(pattern);
        bases.push(p.strip_prefix(".").unwrap_or(p).to_path_buf());
    }
    bases.sort();
    let mut out: Vec<Found> = Vec::new();
    for base in bases {
        let dir = match base.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
            _ => PathBuf::from("."),
        };
        let Some(base_name) = base.file_name().map(|n| n.to_string_lossy().into_owned()) else {
            continue;
        };
        let mut members: Vec<(Rank, PathBuf)> = Vec::new();
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(r) = rank(&base_name, &name)
                && entry.file_type().is_ok_and(|t| t.is_file())
            {
                members.push((r, join(&dir, &name, &base)));
            }
        }
        members.sort_by(|a, b| a.0.order(&b.0).then_with(|| a.1.cmp(&b.1)));
        for (r, path) in members {
            let live = r == Rank::Live;
            match out.iter_mut().find(|f| f.path == path) {
                Some(f) => f.live |= live,
                None => out.push(Found { path, live }),
            }
        }
    }
    Ok(out)
}

/// Keeps the configured path's spelling (relative stays relative).
fn join(dir: &Path, name: &str, base: &Path) -> PathBuf {
    match base.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.join(name),
        _ => dir
            .join(name)
            .strip_prefix(".")
            .map(Path::to_owned)
            .unwrap_or_else(|_| PathBuf::from(name)),
    }
}

/// The folders holding the configured files (the non-glob prefix of each pattern).
pub fn watch_dirs<'a>(paths: impl IntoIterator<Item = &'a String>) -> BTreeSet<PathBuf> {
    let mut dirs = BTreeSet::new();
    for p in paths {
        let parent = |d: &Path| {
            d.parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from("."))
        };
        let mut dir = parent(Path::new(p));
        while dir.to_string_lossy().contains(['*', '?', '[']) {
            dir = parent(&dir);
        }
        if dir.as_os_str().is_empty() {
            dir = PathBuf::from(".");
        }
        dirs.insert(dir);
    }
    dirs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_every_rotation_naming_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        let names = [
            "engine.log",
            "engine.log.1",
            "engine.log.2.gz",
            "engine.log.10.gz",
            "engine.log.2026-01-27",
            "engine.log.2026-01-26.gz",
            "engine.log-20260125.gz",
            "engine.2026-01-24_10-00-00_000000.log.gz",
            "engine.2026-01-24_09-00-00_000000.log",
            "other.log",
            "engine.log.bak",
            "engine.logger",
        ];
        for n in names {
            std::fs::write(dir.path().join(n), "x\n").unwrap();
        }
        let base = dir.path().join("engine.log");
        let got: Vec<String> = family(&base.to_string_lossy())
            .unwrap()
            .into_iter()
            .map(|f| {
                format!(
                    "{}{}",
                    f.path.file_name().unwrap().to_string_lossy(),
                    if f.live { " (live)" } else { "" }
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                "engine.2026-01-24_09-00-00_000000.log",
                "engine.2026-01-24_10-00-00_000000.log.gz",
                "engine.log-20260125.gz",
                "engine.log.2026-01-26.gz",
                "engine.log.2026-01-27",
                "engine.log.10.gz",
                "engine.log.2.gz",
                "engine.log.1",
                "engine.log (live)",
            ]
        );
    }

    #[test]
    fn missing_live_file_still_finds_siblings() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.log.1"), "x\n").unwrap();
        let got = family(&dir.path().join("a.log").to_string_lossy()).unwrap();
        assert_eq!(got.len(), 1);
        assert!(!got[0].live);
    }

    #[test]
    fn names_that_order_by_date() {
        for dated in [
            "engine.log.2026-11-01_01-06",
            "engine.log.2026-11-01_01-06.gz",
            "engine.log-20261101",
            "engine.2026-11-01_01-06-00_000000.log.gz",
        ] {
            assert!(named_by_date(Path::new(dated)), "{dated}");
        }
        for numbered in ["engine.log", "engine.log.12", "engine.log.3.gz"] {
            assert!(!named_by_date(Path::new(numbered)), "{numbered}");
        }
    }

    #[test]
    fn folders_are_the_non_glob_prefixes() {
        let paths = [
            "/var/log/engine/engine.log".to_owned(),
            "/var/log/*/x.log".to_owned(),
            "rel.log".to_owned(),
        ];
        let dirs: Vec<_> = watch_dirs(&paths).into_iter().collect();
        assert_eq!(
            dirs,
            [
                PathBuf::from("/var/log"),
                PathBuf::from("/var/log/engine"),
                PathBuf::from(".")
            ]
        );
    }
}
