//! The `risktail` binary: parse the command line, run the command, map the
//! result to an exit status (0 ok, 1 a check found something or some input
//! failed, 2 bad usage/config, 3 the table or store refused or could not be
//! reached, 4 the source is owned by another writer).

use clap::Parser;
use std::process::ExitCode;

use risktail::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Run(_)) {
        keep_freed_memory();
    }
    let sink = risktail::logs::sink();
    risktail::logs::init(
        sink,
        tracing_subscriber::EnvFilter::try_from_env("RISKTAIL_LOG")
            // delta-kernel logs an ERROR when it probes a table that does
            // not exist yet, which is how every first run starts.
            .unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new(match &cli.command {
                    Command::Run(_) => "info,buoyant_kernel=warn,buoyant_kernel_engine=warn,deltalake_core=warn,buoyant_kernel::snapshot::builder=off",
                    _ => "warn,buoyant_kernel::snapshot::builder=off",
                })
            }),
    );
    let result = match &cli.command {
        Command::Parse(args) => risktail::commands::parse::run(args),
        Command::Backfill(args) => risktail::commands::backfill::run(args),
        Command::Run(args) => risktail::commands::run::run(args),
        Command::Status(args) => risktail::commands::status::run(args),
        Command::State(args) => risktail::commands::state::run(args),
        Command::Report(args) => risktail::commands::report::run(args),
        Command::Verify(args) => risktail::commands::verify::run(args),
        Command::Migrate(args) => risktail::commands::migrate::run(args),
        // Made in memory, then printed as every command's result is.
        Command::Completions { shell } => {
            let mut text = Vec::new();
            risktail::cli::completions(*shell, &mut text);
            risktail::commands::out::print(&String::from_utf8_lossy(&text)).map(|()| true)
        }
        Command::Manpage => {
            let mut text = Vec::new();
            risktail::cli::manpage(&mut text)
                .map_err(anyhow::Error::from)
                .and_then(|()| risktail::commands::out::print(&String::from_utf8_lossy(&text)))
                .map(|()| true)
        }
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!(
                "{}risktail: error: {}",
                risktail::logs::error_prefix(sink),
                risktail::commands::message(&e)
            );
            ExitCode::from(risktail::commands::exit_code(&e))
        }
    }
}

/// Lets glibc's malloc keep what a one-shot command frees, for its next
/// allocation, instead of handing it back to the kernel at once.
///
/// Why: by default glibc maps each allocation over a threshold (128 KiB,
/// growing as such blocks are freed) on its own and unmaps it when freed,
/// and gives back the top of a heap once 128 KiB of it is free. A command
/// that frees and allocates megabytes a day of the table (`report` decodes a
/// day's columns into rows, the pass frees them) then takes a page fault for
/// every page of every day again: 220,000 faults for the year's report,
/// 0.3 s of kernel time; kept, about 45,000. `report` on the year takes 0.93x the
/// time (peak 181 MiB against 152), a dense backfill 0.97x (the same peak)
/// (docs/PERFORMANCE.md, "The allocator").
/// Not for `run`: a daemon's peak would then stay its footprint.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets two of malloc's tunables; it is called
    // before any other thread of this process exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}
