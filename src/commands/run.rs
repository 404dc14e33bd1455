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
    let me = Holder::this_process(&crate::config::host_name());
    let sink = crate::sink::until_reachable(|| {
        rt.block_on(async {
            let mut sink = DeltaSink::open(&config.table_uri, &config.quarantine_uri).await?;
            sink.prove_writes().await?;
            for s in &config.sources {
                sink.claim(&s.name, &me, config.lease, true).await?;
            }
            Ok(sink)
        })
    })?;
    crate::daemon::run(config, sink, rt)?;
    Ok(true)
}
