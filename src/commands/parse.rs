//! `risktail parse`: lines → events (and quarantine records) as JSON lines on
//! stdout, a summary on stderr. Writes nothing else: the tool for tuning a
//! pattern against real logs.

use anyhow::{Context, Result};
use chrono::Utc;
use serde::Serialize;
use std::io::{self, Write};

use super::{Input, expand_inputs};
use crate::cli::ParseArgs;
use crate::event::{QuarantineRecord, RiskEvent};
use crate::parse::{SourceParser, SourceState};
use crate::pipeline::step::{AtFragment, FileRef, NoiseSkip, Rows, Stepped, Stepper};
use crate::source::{self, fingerprint::FileId};
use crate::tally::Tally;

#[derive(Serialize)]
struct Marked<'a> {
    quarantine: bool,
    #[serde(flatten)]
    record: &'a QuarantineRecord,
}

/// Runs the command. Returns whether every input could be read.
pub fn run(args: &ParseArgs) -> Result<bool> {
    let config = super::load_config(&args.config)?;
    let source = config
        .source(args.source.as_deref())
        .map_err(anyhow::Error::msg)?;
    let inputs = if args.inputs.is_empty() {
        let mut found = Vec::new();
        for pattern in &source.paths {
            let mut paths: Vec<_> = glob::glob(pattern)
                .with_context(|| format!("glob {pattern}"))?
                .filter_map(Result::ok)
                .collect();
            paths.sort();
            if paths.is_empty() {
                eprintln!("risktail parse: warning: {pattern}: no file matches");
            }
            found.extend(paths.into_iter().map(Input::Path));
        }
        found
    } else {
        expand_inputs(&args.inputs).map_err(anyhow::Error::msg)?
    };
    let parser = config.parser(source);
    let mut state = SourceState::default();
    let mut tally = Tally::default();
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let mut all_ok = true;
    for input in &inputs {
        let name = input.display();
        let content: source::Content = match input {
            Input::Stdin => Box::new(io::stdin()),
            Input::Path(p) => match source::open_content(p) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("risktail parse: {name}: {e}");
                    all_ok = false;
                    continue;
                }
            },
        };
        let mut printer = Printer {
            out: &mut out,
            quarantine: args.quarantine,
        };
        match parse_stream(
            &parser,
            &mut state,
            &name,
            content,
            source.max_line_bytes,
            &mut tally,
            &mut printer,
        ) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(all_ok),
            Err(e) => {
                eprintln!("risktail parse: {name}: {e}");
                all_ok = false;
            }
        }
    }
    match out.flush() {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => return Err(e.into()),
        _ => {}
    }
    eprint!("risktail parse: {tally}");
    Ok(all_ok)
}

struct Printer<'a, W: Write> {
    out: &'a mut W,
    quarantine: bool,
}

impl<W: Write> Printer<'_, W> {
    fn print_event(&mut self, e: &RiskEvent) -> io::Result<()> {
        serde_json::to_writer(&mut *self.out, e)?;
        self.out.write_all(b"\n")
    }

    fn print_quarantine(&mut self, q: &QuarantineRecord) -> io::Result<()> {
        if !self.quarantine {
            return Ok(());
        }
        serde_json::to_writer(
            &mut *self.out,
            &Marked {
                quarantine: true,
                record: q,
            },
        )?;
        self.out.write_all(b"\n")
    }
}

/// Reads one whole stream; its unterminated last line, if any, is quarantined
/// (a file given to `parse` is taken as finished).
fn parse_stream<W: Write>(
    parser: &SourceParser,
    state: &mut SourceState,
    name: &str,
    content: source::Content,
    max_line: usize,
    tally: &mut Tally,
    printer: &mut Printer<'_, W>,
) -> io::Result<()> {
    let mut lines = source::lines(content, max_line, &parser.heads())?;
    tally.files += 1;
    // A stream given to `parse` is finished. An empty one has no identity
    // and no line that would use one.
    let file = FileRef {
        id: lines.finished_id.unwrap_or_else(|| FileId::from_head(&[])),
        path: name,
        quarantined_to: 0,
    };
    let stepper = Stepper {
        parser,
        now: Utc::now(),
        at_fragment: AtFragment::Quarantine,
    };
    let mut skip = NoiseSkip::default();
    let mut rows = Rows::default();
    loop {
        let stepped = stepper.step(&mut lines.reader, file, state, &mut skip, tally, &mut rows)?;
        // At most one row per step: printing them now keeps file order.
        for e in rows.events.iter() {
            printer.print_event(&e.to_event())?;
        }
        rows.events.clear();
        for q in rows.quarantine.drain(..) {
            printer.print_quarantine(&q)?;
        }
        if stepped == Stepped::End {
            break;
        }
    }
    Ok(())
}
