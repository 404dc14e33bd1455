//! `risktail run`: load the config, take each source's lock (one writer per
//! source), open the table, and hand over to the daemon's loop.

use anyhow::Result;

use crate::cli::RunArgs;
use crate::sink::lease::Holder;
use crate::sink::{DeltaSink, lock};

/// Runs the daemon until SIGTERM/SIGINT.
pub fn run(args: &RunArgs) -> Result<bool> {
    let config = super::load_config(&args.config)?;
    let _locks: Vec<lock::SourceLock> = config
        .sources
        .iter()
        .map(|s| lock::acquire(&config.table_uri, &s.name, "run"))
        .collect::<Result<_, _>>()?;
    let rt = super::runtime()?;
    let mut sink = rt.block_on(DeltaSink::open(&config.table_uri, &config.quarantine_uri))?;
    let me = Holder::this_process(&crate::config::host_name());
    for s in &config.sources {
        rt.block_on(sink.claim(&s.name, &me, config.lease))?;
    }
    crate::daemon::run(config, sink, rt)?;
    Ok(true)
}
