//! `risktail backfill`: every file of every source (and its rotated siblings,
//! oldest first) into the table, skipping what the table already holds and
//! resuming a half-read file at its committed offset. Safe to re-run and to
//! kill at any moment.

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use super::out::out_line;
use super::{archive, expand_inputs};
use crate::cli::BackfillArgs;
use crate::config::{Config, SourceConfig};
use crate::pipeline::ingest::{FileReport, FileStatus, IngestContext, IngestError, ingest_file};
use crate::sink::DeltaSink;
use crate::source::discover::Found;
use crate::tally::{Tally, bytes, thousands};

/// Runs the command. Returns whether every file was ingested.
pub fn run(args: &BackfillArgs) -> Result<bool> {
    let config = super::load_config(&args.config)?;
    let plan = plan(&config, args)?;
    let total: u64 = plan
        .iter()
        .flat_map(|(_, f)| f)
        .map(|f| crate::source::content_len_hint(&f.path).unwrap_or(0))
        .sum();
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:32} {bytes}/{total_bytes} {bytes_per_sec} {wide_msg}")
            .context("progress template")?,
    );
    let rt = super::runtime()?;
    let started = Instant::now();
    // One writer per source: a running daemon (or another backfill) owns it.
    let _locks = plan
        .iter()
        .map(|(s, _)| crate::sink::lock::acquire(&config.table_uri, &s.name, "backfill"))
        .collect::<Result<Vec<_>, _>>()?;
    let mut sink = rt.block_on(DeltaSink::open(&config.table_uri, &config.quarantine_uri))?;
    rt.block_on(sink.prove_writes())?;
    let me = crate::sink::lease::Holder::this_process(&crate::config::host_name());
    for (s, _) in &plan {
        rt.block_on(sink.claim(&s.name, &me, config.lease, false))?;
    }
    let mut reports: Vec<(String, FileReport)> = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    let mut undecided: Vec<String> = Vec::new();
    for (source, files) in &plan {
        let parser = config.parser(source);
        let mut state = rt
            .block_on(sink.source_state(&source.name))?
            .unwrap_or_default();
        let ctx =
            IngestContext::new(&parser, source, &config).with_threads(config.backfill_threads);
        let mut known = HashMap::new();
        for (i, found) in files.iter().enumerate() {
            bar.set_message(found.path.display().to_string());
            let mut progress = |n: u64| bar.inc(n);
            let mut one = OneFile {
                rt: &rt,
                config: &config,
                sink: &mut sink,
                undecided: &mut undecided,
            };
            let result = one.ingest(source, &ctx, found, &mut state, &mut known, &mut progress)?;
            match result {
                Ok(r) => reports.push((source.name.clone(), r)),
                Err(e) => {
                    // Later files of this source would be read with a state
                    // that skipped this one: stop the source, keep the rest.
                    failures.push(format!("{e}"));
                    for rest in &files[i + 1..] {
                        failures.push(format!(
                            "{}: not read (an earlier file of source {} failed; re-run after fixing it)",
                            rest.path.display(),
                            source.name
                        ));
                    }
                    break;
                }
            }
        }
    }
    bar.finish_and_clear();
    release(&rt, &mut sink, plan.iter().map(|(s, _)| s.name.as_str()));
    checkpoint(&rt, &mut sink);
    let secs = started.elapsed().as_secs_f64();
    super::out::print(&summary(&reports, secs, sink.version(), &config))?;
    super::out::print(&undecided_text(&undecided))?;
    for f in &failures {
        eprintln!("risktail backfill: error: {f}");
    }
    Ok(failures.is_empty())
}

/// A checkpoint where a commit of this run landed on the table's interval
/// (49, 99, …), as the daemon's upkeep writes it, and one at the newest
/// version when the run left the table `SETTLE_TAIL` or more versions past
/// its newest checkpoint (its readers then open one file, not the dozens of
/// commits a backfill makes); a failure leaves the rows committed and is
/// logged (the next writer's upkeep writes the one due).
fn checkpoint(rt: &tokio::runtime::Runtime, sink: &mut DeltaSink) {
    if let Err(e) = rt.block_on(sink.checkpoint_if_due()) {
        tracing::warn!(error = %e, "could not write the checkpoint due; the next writer's upkeep writes it");
    }
}

/// Gives back the lease of each source (a failure is logged: the lease
/// expires by itself).
fn release<'a>(
    rt: &tokio::runtime::Runtime,
    sink: &mut DeltaSink,
    sources: impl Iterator<Item = &'a str>,
) {
    for s in sources {
        if let Err(e) = rt.block_on(sink.release(s)) {
            tracing::warn!(source = %s, error = %e, "could not release the source's lease; it expires by itself");
        }
    }
}

/// Says which files the autumn rule could not place (stored in the first
/// pass), after the summary.
fn undecided_text(undecided: &[String]) -> String {
    let mut out = String::new();
    if !undecided.is_empty() {
        out_line!(
            out,
            "{} file(s) start inside the repeated autumn hour with nothing to place them by (no older file on disk, no rows around them in the table): stored in the first pass, as docs/DIALECT.md says: {}",
            undecided.len(),
            undecided.join(", ")
        );
    }
    out
}
/// What one file's ingestion needs beside the file.
struct OneFile<'a> {
    rt: &'a tokio::runtime::Runtime,
    config: &'a Config,
    sink: &'a mut DeltaSink,
    undecided: &'a mut Vec<String>,
}

impl OneFile<'_> {
    /// Opens `found` once (its identity and first record's time decide how
    /// it is enriched, and the same descriptor is then read) and ingests it:
    /// an archive older than what the table holds is enriched as of its own
    /// time, and the source keeps the state it has. The outer error is the
    /// table's (the run stops); the inner one the file's.
    fn ingest(
        &mut self,
        source: &SourceConfig,
        ctx: &IngestContext<'_>,
        found: &Found,
        state: &mut crate::parse::SourceState,
        known: &mut HashMap<crate::source::fingerprint::FileId, crate::source::offsets::Committed>,
        progress: &mut dyn FnMut(u64),
    ) -> Result<Result<FileReport, IngestError>> {
        let opened = match crate::source::open(&found.path, ctx.max_line_bytes, &ctx.heads) {
            Ok(o) => o,
            Err(e) => {
                return Ok(Err(IngestError::Read {
                    path: found.path.display().to_string(),
                    source: e,
                }));
            }
        };
        let (rt, sink, config) = (self.rt, &mut *self.sink, self.config);
        let archive = archive_state(
            rt,
            sink,
            config,
            source,
            found,
            &opened,
            state,
            self.undecided,
        )?;
        let file = (found, opened);
        Ok(match archive {
            Some(mut old) => rt.block_on(ingest_file(
                ctx,
                sink,
                &mut old,
                Some(state),
                file,
                known,
                progress,
            )),
            None => rt.block_on(ingest_file(ctx, sink, state, None, file, known, progress)),
        })
    }
}

/// When `opened` is a file the table has never read whose first record
/// (the one its identity holds) is older than the source's latest committed
/// time (an archive backfilled after newer logs), the state to enrich its
/// lines with: the breaker as the table has it just before that record,
/// and that record's instant as the latest time (so the first line's
/// autumn hour is the one [`archive::place`] found). `None` for every other
/// file, which continues the source's state (its latest time moved to the
/// first record when the fold placed it later). `undecided` counts files
/// whose place nothing decides.
#[allow(clippy::too_many_arguments)]
fn archive_state(
    rt: &tokio::runtime::Runtime,
    sink: &mut DeltaSink,
    config: &Config,
    source: &SourceConfig,
    found: &Found,
    opened: &crate::source::Opened,
    state: &mut crate::parse::SourceState,
    undecided: &mut Vec<String>,
) -> Result<Option<crate::parse::SourceState>> {
    let (Some(first), Some(id)) = (opened.lines.first, opened.lines.finished_id) else {
        return Ok(None);
    };
    let latest = state.last_time;
    if latest.is_none() && !first.is_ambiguous() {
        return Ok(None); // the first file of a source: nothing to decide
    }
    if rt.block_on(sink.committed(&source.name, id))?.events > 0 {
        return Ok(None); // resumed: it is where the source left off
    }
    // The table's rows are read only where they decide something: a first
    // record inside the repeated hour, or an archive's state before it.
    let table_files = || rt.block_on(crate::audit::load::TableFiles::open(&config.table_uri));
    let placed = if first.is_ambiguous() {
        let files = table_files()?;
        let heads = config.parser(source).heads();
        let stamps = crate::source::record_stamps(&found.path, source.max_line_bytes, &heads);
        let neighbours =
            archive::older_neighbours(&found.path, &source.paths, source.max_line_bytes, &heads);
        let before = archive::end_before_on_disk(&neighbours, source.max_line_bytes, &heads);
        let placed = rt.block_on(archive::place(
            first,
            &stamps,
            before,
            &files,
            &source.name,
            latest,
        ))?;
        if let archive::Placed::Undecided(at) = placed {
            tracing::warn!(file = %found.path.display(), at = %at,
                "starts inside the repeated autumn hour with nothing to place it by: stored in the first pass (docs/DIALECT.md)");
            undecided.push(found.path.display().to_string());
            sink.note_undecided(&source.name, id);
        }
        placed.instant()
    } else {
        first.early
    };
    let Some(latest) = latest.filter(|l| placed < *l) else {
        state.last_time = Some(placed);
        return Ok(None); // not older: it continues the source
    };
    let files = table_files()?;
    let breaker = rt.block_on(crate::audit::breaker::state_before(
        &files,
        &source.name,
        placed,
    ))?;
    tracing::info!(file = %found.path.display(), first = %placed, latest = %latest, breaker = ?breaker,
        "older than the source's committed data: enriched as of its own time; the source keeps its state");
    Ok(Some(crate::parse::SourceState {
        breaker,
        last_time: Some(placed),
        ..Default::default()
    }))
}

/// Which files of which source, in order.
fn plan<'c>(
    config: &'c Config,
    args: &BackfillArgs,
) -> Result<Vec<(&'c SourceConfig, Vec<Found>)>> {
    if !args.inputs.is_empty() {
        let source = config
            .source(args.source.as_deref())
            .map_err(anyhow::Error::msg)?;
        let live: Vec<std::path::PathBuf> = source
            .paths
            .iter()
            .flat_map(|p| glob::glob(p).into_iter().flatten().filter_map(Result::ok))
            .collect();
        let mut files = Vec::new();
        for input in expand_inputs(&args.inputs).map_err(anyhow::Error::msg)? {
            match input {
                super::Input::Stdin => anyhow::bail!(
                    "backfill reads files, not stdin (use `risktail parse -` for a dry run)"
                ),
                super::Input::Path(p) => {
                    let is_live = live.iter().any(|l| same_file(l, &p));
                    files.push(Found {
                        path: p,
                        live: is_live,
                    });
                }
            }
        }
        return Ok(vec![(source, files)]);
    }
    let mut out = Vec::new();
    for source in &config.sources {
        if args.source.as_deref().is_some_and(|n| n != source.name) {
            continue;
        }
        let files = source_files(config, source, &[])?;
        if files.is_empty() {
            eprintln!(
                "risktail backfill: warning: source {}: no file matches {:?}",
                source.name, source.paths
            );
        }
        out.push((source, files));
    }
    if let Some(n) = &args.source {
        config.source(Some(n)).map_err(anyhow::Error::msg)?;
    }
    Ok(out)
}

/// Every file of `source` (each configured path and its rotated siblings,
/// oldest first), then the files `extra` names (archives elsewhere).
pub fn source_files(
    config: &Config,
    source: &SourceConfig,
    extra: &[String],
) -> Result<Vec<Found>> {
    let mut files: Vec<Found> = Vec::new();
    let heads = config.parser(source).heads();
    for pattern in &source.paths {
        let family = crate::source::family_in_time_order(pattern, source.max_line_bytes, &heads)
            .with_context(|| format!("listing {pattern}"))?;
        for f in family {
            if !files.iter().any(|g| g.path == f.path) {
                files.push(f);
            }
        }
    }
    if !extra.is_empty() {
        for input in expand_inputs(extra).map_err(anyhow::Error::msg)? {
            if let super::Input::Path(p) = input
                && !files.iter().any(|g| same_file(&g.path, &p))
            {
                files.push(Found {
                    path: p,
                    live: false,
                });
            }
        }
    }
    Ok(files)
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

fn summary(reports: &[(String, FileReport)], secs: f64, version: u64, config: &Config) -> String {
    let mut out = String::new();
    let mut total = Tally::default();
    let mut skipped = 0u64;
    let mut commits = 0u32;
    out_line!(
        out,
        "{:<10} {:<48} {:>16} {:>9} {:>8} {:>6}",
        "source",
        "file",
        "status",
        "lines",
        "events",
        "quar."
    );
    for (source, r) in reports {
        let status = match r.status {
            FileStatus::Ingested { from: 0, .. } => "ingested".to_owned(),
            FileStatus::Ingested { from, .. } => format!("resumed at {from}"),
            FileStatus::AlreadyIngested { .. } => {
                skipped += 1;
                "already in table".to_owned()
            }
            FileStatus::NoCompleteLine => "no complete line".to_owned(),
        };
        out_line!(
            out,
            "{:<10} {:<48} {:>16} {:>9} {:>8} {:>6}",
            source,
            shorten(&r.path, 48),
            status,
            thousands(r.tally.lines),
            thousands(r.tally.event_total()),
            thousands(r.tally.quarantine_total())
        );
        total.add(&r.tally);
        commits += r.commits;
    }
    let secs = secs.max(1e-6);
    out_line!(out);
    out_line!(
        out,
        "risktail backfill: {} files ({} already in the table), {} lines, {} in {:.2} s ({}/s, {} lines/s)",
        thousands(reports.len() as u64),
        thousands(skipped),
        thousands(total.lines),
        bytes(total.bytes),
        secs,
        bytes((total.bytes as f64 / secs) as u64),
        thousands((total.lines as f64 / secs) as u64),
    );
    out_line!(
        out,
        "  {} events and {} quarantined lines added in {} commits; {} is at version {}",
        thousands(total.event_total()),
        thousands(total.quarantine_total()),
        commits,
        config.table_uri,
        version
    );
    for (k, v) in &total.events {
        out_line!(out, "  event       {k:<32} {:>10}", thousands(*v));
    }
    for (k, v) in &total.quarantined {
        out_line!(out, "  quarantined {:<32} {:>10}", k.code(), thousands(*v));
    }
    out
}
/// `s` cut to its last `n` characters (a path's end says most).
pub fn shorten(s: &str, n: usize) -> String {
    let count = s.chars().count();
    if count <= n {
        s.to_owned()
    } else {
        let tail: String = s.chars().skip(count - (n - 1)).collect();
        format!("…{tail}")
    }
}
