//! `risktail state --at`: parses the instant, reads the table, prints the
//! reconstructed state (text or JSON).

use anyhow::{Result, bail};
use chrono::{DateTime, LocalResult, NaiveDateTime, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;
use std::collections::BTreeMap;

use crate::audit::{load::TableFiles, state, text};
use crate::cli::StateArgs;
use crate::config::Config;

/// Runs the command.
pub fn run(args: &StateArgs) -> Result<bool> {
    let config = super::load_config(&args.config)?;
    let sources = selected_sources(&config, args.source.as_deref())?;
    let zones = zones(&config);
    let zone = common_zone(&config, &sources);
    let at = parse_instant(&args.at, zone)?;
    let rt = super::runtime()?;
    let files = rt.block_on(TableFiles::open(&config.table_uri))?;
    let s = rt.block_on(state::compute(
        &files,
        at,
        &sources,
        TimeDelta::hours(i64::from(args.lookback_hours)),
    ))?;
    if args.json {
        super::out::print_json(&s)?;
    } else {
        super::out::print(&text::state(&s, &zones))?;
    }
    tracing::debug!(
        "read {} of {} files, {} rows",
        s.read.files_read,
        s.read.files_total,
        s.read.rows
    );
    Ok(true)
}

/// The sources to report: one named, or all configured.
pub(crate) fn selected_sources(config: &Config, name: Option<&str>) -> Result<Vec<String>> {
    match name {
        Some(n) => {
            let s = config.source(Some(n)).map_err(anyhow::Error::msg)?;
            Ok(vec![s.name.clone()])
        }
        None => Ok(config.sources.iter().map(|s| s.name.clone()).collect()),
    }
}

/// Each source's timezone.
pub(crate) fn zones(config: &Config) -> BTreeMap<String, Tz> {
    config
        .sources
        .iter()
        .map(|s| (s.name.clone(), s.timezone))
        .collect()
}

/// The zone shared by the selected sources, if they share one.
fn common_zone(config: &Config, sources: &[String]) -> Result<Tz, Vec<String>> {
    let mut zs: Vec<Tz> = config
        .sources
        .iter()
        .filter(|s| sources.contains(&s.name))
        .map(|s| s.timezone)
        .collect();
    zs.dedup();
    match zs.as_slice() {
        [z] => Ok(*z),
        [] => Ok(Tz::UTC),
        _ => Err(config
            .sources
            .iter()
            .map(|s| format!("{} ({})", s.name, s.timezone))
            .collect()),
    }
}

/// RFC 3339 (a space may replace the `T`), or a local time without offset in
/// `zone`. A local time that repeats (autumn) or does not exist (spring) is
/// refused with the candidates, never guessed.
fn parse_instant(s: &str, zone: Result<Tz, Vec<String>>) -> Result<DateTime<Utc>> {
    let t = s.trim();
    if let Ok(x) = DateTime::parse_from_rfc3339(t) {
        return Ok(x.with_timezone(&Utc));
    }
    if let Ok(x) = DateTime::parse_from_rfc3339(&t.replacen(' ', "T", 1)) {
        return Ok(x.with_timezone(&Utc));
    }
    let naive = [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(t, f).ok());
    let Some(naive) = naive else {
        bail!(
            "--at {s:?}: not a time; use RFC 3339 (2026-01-27T15:02:00Z) or a local time (2026-01-27 10:02[:00[.123]])"
        );
    };
    let zone = match zone {
        Ok(z) => z,
        Err(all) => bail!(
            "--at {s:?} has no offset and the sources are in different timezones ({}); add an offset or --source",
            all.join(", ")
        ),
    };
    match zone.from_local_datetime(&naive) {
        LocalResult::Single(x) => Ok(x.with_timezone(&Utc)),
        LocalResult::Ambiguous(a, b) => bail!(
            "--at {s:?} happens twice in {zone} (the autumn hour): say which with an offset, {} or {}",
            a.to_rfc3339(),
            b.to_rfc3339()
        ),
        LocalResult::None => bail!("--at {s:?} does not exist in {zone} (the spring-forward gap)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_in_every_accepted_form() {
        let ny: Tz = "America/New_York".parse().unwrap();
        let want = DateTime::parse_from_rfc3339("2026-01-27T15:02:00Z").unwrap();
        for s in [
            "2026-01-27T15:02:00Z",
            "2026-01-27 15:02:00Z",
            "2026-01-27T10:02:00-05:00",
            "2026-01-27 10:02",
            "2026-01-27T10:02:00.000",
        ] {
            assert_eq!(parse_instant(s, Ok(ny)).unwrap(), want, "{s}");
        }
        let fold = parse_instant("2026-11-01 01:30", Ok(ny))
            .unwrap_err()
            .to_string();
        assert!(
            fold.contains("twice") && fold.contains("-04:00") && fold.contains("-05:00"),
            "{fold}"
        );
        let gap = parse_instant("2026-03-08 02:30", Ok(ny))
            .unwrap_err()
            .to_string();
        assert!(gap.contains("does not exist"), "{gap}");
        assert!(parse_instant("yesterday", Ok(ny)).is_err());
        let mixed = parse_instant("2026-01-27 10:02", Err(vec!["a (UTC)".into()])).unwrap_err();
        assert!(mixed.to_string().contains("different timezones"));
    }
}
