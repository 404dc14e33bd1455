//! `risktail run`: load the config, take each source's lock (one writer per
//! source), open the table, and hand over to the daemon's loop.

use anyhow::Result;

use crate::cli::RunArgs;
use crate::daemon::unless_stopped;
use crate::daemon::wake::Wakes;
use crate::sink::lease::Holder as LeaseHolder;
use crate::sink::{DeltaSink, lock};
use crate::source::discover;
use crate::source::hold::Holder;

/// Runs the daemon until SIGTERM/SIGINT.
pub fn run(args: &RunArgs) -> Result<bool> {
    let config = super::load_config(&args.config)?;
    let _locks: Vec<lock::SourceLock> = config
        .sources
        .iter()
        .map(|s| lock::acquire(&config.table_uri, &s.name, "run"))
        .collect::<Result<_, _>>()?;
    // The signal handlers before the table: a SIGTERM while a store is
    // not reachable yet ends the start (exit 0), not the process.
    let wakes = Wakes::start(config.sources.iter().flat_map(|s| &s.paths))?;
    let stopping = wakes.stopping();
    // Files are held open from here on: one the engine deletes while the
    // table opens (a store not reachable yet) is still read.
    let holder = Holder::new(
        config
            .sources
            .iter()
            .flat_map(|s| s.paths.iter().map(|p| (s.name.clone(), p.clone())))
            .collect(),
    );
    holder.watch(&discover::watch_dirs(
        config.sources.iter().flat_map(|s| &s.paths),
    ));
    let rt = super::runtime()?;
    let me = LeaseHolder::this_process(&crate::config::host_name());
    let sink = crate::sink::until_reachable(&stopping, || {
        rt.block_on(unless_stopped(&stopping, async {
            let mut sink = DeltaSink::open(&config.table_uri, &config.quarantine_uri).await?;
            sink.prove_writes().await?;
            for s in &config.sources {
                sink.claim(&s.name, &me, config.lease, true).await?;
            }
            Ok(sink)
        }))
    })?;
    let Some(sink) = sink else {
        tracing::info!("stopped before the table was opened: nothing was read");
        return Ok(true);
    };
    crate::daemon::run(config, sink, rt, (holder, wakes))?;
    Ok(true)
}
