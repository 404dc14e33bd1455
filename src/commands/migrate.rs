//! `risktail migrate`: adds to the tables the columns this release writes
//! and they lack (a table an earlier release created has no quarantine
//! `line_id`). An earlier release refuses a table with a column it does not
//! know and stops, so the columns are added only when the events table shows
//! no commit of such a writer within the last hour (`--force` overrides).

use anyhow::Result;
use std::time::Duration;

use crate::cli::MigrateArgs;
use crate::sink::DeltaSink;

/// How far back a commit of an earlier release refuses the migration: its
/// writer may still be running (a live daemon commits at least every third
/// of its lease time, a minute by default).
const QUIET_FOR: Duration = Duration::from_secs(3600);

/// Adds what is missing. Returns false when refused.
pub fn run(args: &MigrateArgs) -> Result<bool> {
    let config = super::load_config(&args.config)?;
    let rt = super::runtime()?;
    rt.block_on(async {
        let mut sink = DeltaSink::open(&config.table_uri, &config.quarantine_uri).await?;
        if !args.force {
            let earlier = sink.earlier_writers(QUIET_FOR).await?;
            if !earlier.is_empty() {
                eprintln!(
                    "risktail migrate: refused: writers of an earlier release committed within the last hour ({}); \
                     they would stop on the new column. Upgrade them first, or pass --force.",
                    earlier.join(", ")
                );
                return Ok(false);
            }
        }
        let added = sink.add_missing_columns().await?;
        if added.is_empty() {
            super::out::print(
                "risktail migrate: nothing to add; both tables have this release's columns\n",
            )?;
        }
        for (table, column) in added {
            super::out::print(&format!("risktail migrate: added {column} to {table}\n"))?;
        }
        Ok(true)
    })
}
