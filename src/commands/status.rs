//! `risktail status`: per source and file, the committed offset and the bytes
//! not yet committed, and the table's version. Reads the table; changes nothing.

use anyhow::Result;

use crate::cli::StatusArgs;
use crate::config::Config;
use crate::sink::DeltaSink;
use crate::source::{self, discover};
use crate::tally::{bytes, thousands};

/// Prints the status. Returns whether every file could be looked at.
pub fn run(args: &StatusArgs) -> Result<bool> {
    let config = Config::load(&args.config)?;
    let rt = super::runtime()?;
    let sink = rt.block_on(DeltaSink::open(&config.table_uri, &config.quarantine_uri))?;
    println!(
        "table {} at version {}",
        config.table_uri,
        sink.version().map_or("-".into(), |v| v.to_string())
    );
    let mut ok = true;
    println!(
        "{:<10} {:<44} {:<36} {:>12} {:>12} {:>10}",
        "source", "file", "identity", "size", "committed", "behind"
    );
    for s in &config.sources {
        let mut behind_total = 0u64;
        for pattern in &s.paths {
            for f in discover::family(pattern).unwrap_or_default() {
                let size = source::content_len_hint(&f.path).unwrap_or(0);
                let id = source::open_content(&f.path)
                    .and_then(|c| source::lines(c, s.max_line_bytes))
                    .map(|l| l.id);
                let (id_text, committed) = match id {
                    Ok(Some(id)) => {
                        let c = rt.block_on(sink.committed(&s.name, id))?;
                        (id.to_string(), c.events)
                    }
                    Ok(None) => ("(no complete line yet)".into(), 0),
                    Err(e) => {
                        ok = false;
                        (format!("unreadable: {e}"), 0)
                    }
                };
                let behind = size.saturating_sub(committed);
                behind_total += behind;
                println!(
                    "{:<10} {:<44} {:<36} {:>12} {:>12} {:>10}{}",
                    s.name,
                    f.path.display(),
                    id_text,
                    thousands(size),
                    thousands(committed),
                    bytes(behind),
                    if f.live { "  (live)" } else { "" }
                );
            }
        }
        println!("{:<10} {} not yet committed", s.name, bytes(behind_total));
    }
    Ok(ok)
}
