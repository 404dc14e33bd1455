//! `risktail report`: the five audit answers as text or JSON, and optionally
//! the HTML page with charts.

use anyhow::{Context, Result};

use super::runtime;
use super::state::{selected_sources, zones};
use crate::audit::load::{Days, TableFiles};
use crate::audit::{alerts::Exits, html, report, text};
use crate::cli::ReportArgs;

/// Runs the command.
pub fn run(args: &ReportArgs) -> Result<bool> {
    let config = super::load_config(&args.config)?;
    let sources = selected_sources(&config, args.source.as_deref())?;
    let rt = runtime()?;
    let files = rt.block_on(TableFiles::open(&config.table_uri))?;
    let exits = match &config.alerts_uri {
        Some(uri) => Some(
            rt.block_on(Exits::load(uri))
                .with_context(|| format!("audit.alerts_uri {uri}"))?,
        ),
        None => None,
    };
    let days = Days {
        from: args.from,
        to: args.to,
    };
    let charts = args.html.is_some();
    let r = rt.block_on(report::compute(&files, days, &sources, exits, charts))?;
    if args.json {
        super::out::print_json(&r)?;
    } else {
        super::out::print(&text::report(&r))?;
    }
    if let Some(path) = &args.html {
        let page = html::page(&r, &zones(&config));
        std::fs::write(path, page).with_context(|| format!("{}: cannot write", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    tracing::debug!(
        "read {} of {} files, {} rows",
        r.read.files_read,
        r.read.files_total,
        r.read.rows
    );
    Ok(true)
}
