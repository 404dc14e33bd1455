//! `risktail verify`: proves the table against the logs on disk, and the
//! table's log against the protocol. Every file a source names (live,
//! rotated, gzipped, and archives given on the command line) is read again
//! with the same per-line step the daemon and `backfill` use, up to the
//! offset the table committed for it, in the order ingestion reads them (so
//! `old_state` is derived as it was); the rows it gives are compared with the
//! table's by `event_id` (an id of the file's identity and the offset):
//! missing, doubled, changed (any column but `ingested_at` and
//! `source_file`). Quarantine rows are matched by `line_id` (the same id of
//! file and offset); those an earlier release wrote, without one, by
//! (offset, line).
//! Rows of files no longer on disk are counted as not checkable here. It
//! reads one version of each table and takes no lock and no lease, so it
//! runs beside live daemons.

use anyhow::{Context, Result};
use chrono::Utc;
use deltalake::DeltaTable;
use deltalake::arrow::record_batch::RecordBatch;
use deltalake::arrow::util::display::{ArrayFormatter, FormatOptions};
use std::collections::{BTreeMap, HashMap, HashSet};

use crate::cli::VerifyArgs;
use crate::config::{Config, SourceConfig};
use crate::event::batch::{events_batch, quarantine_batch};
use crate::event::schema::{
    EVENT_PARTITION, QUARANTINE_COLUMNS, QUARANTINE_PARTITION, RISK_EVENT_COLUMNS, name,
};
use crate::parse::SourceState;
use crate::pipeline::step::{AtFragment, FileRef, NoiseSkip, Rows, Stepped, Stepper};
use crate::sink::shape::{self, Flaw};
use crate::source::discover::Found;
use crate::tally::Tally;

/// The store could not be read: exit status 3.
#[derive(Debug, thiserror::Error)]
#[error("cannot read table {table}: {message}")]
pub struct Unreadable {
    /// The table.
    pub table: String,
    /// Why.
    pub message: String,
}

/// One file's comparison.
#[derive(Debug, Default, serde::Serialize)]
pub struct FileCheck {
    /// The path read.
    pub path: String,
    /// Its identity.
    pub id: String,
    /// Lines read (up to the committed offset).
    pub lines: u64,
    /// Bytes not yet committed (beyond the committed offset).
    pub bytes_behind: u64,
    /// Events the lines give.
    pub events_expected: usize,
    /// Of those, found once in the table.
    pub events_found: usize,
    /// Expected, not in the table: (offset, event id).
    pub missing: Vec<(i64, String)>,
    /// In the table more than once.
    pub doubled: Vec<(i64, String)>,
    /// In the table with another value: (offset, column, table, expected).
    pub changed: Vec<(i64, String, String, String)>,
    /// Quarantine rows expected / missing / doubled.
    pub quarantine_expected: usize,
    /// Expected quarantine rows not in the quarantine table: offsets.
    pub quarantine_missing: Vec<i64>,
    /// Quarantine rows there more than once: offsets.
    pub quarantine_doubled: Vec<i64>,
}

impl FileCheck {
    fn faults(&self) -> usize {
        self.missing.len()
            + self.doubled.len()
            + self.changed.len()
            + self.quarantine_missing.len()
            + self.quarantine_doubled.len()
    }
}

/// One source's comparison.
#[derive(Debug, Default, serde::Serialize)]
pub struct SourceCheck {
    /// The source.
    pub source: String,
    /// Each file read.
    pub files: Vec<FileCheck>,
    /// Rows of the table whose file is not on disk here.
    pub not_checkable: usize,
}

/// The whole answer.
#[derive(Debug, Default, serde::Serialize)]
pub struct Verdict {
    /// Versions read.
    pub events_version: u64,
    /// Versions read.
    pub quarantine_version: u64,
    /// Per source.
    pub sources: Vec<SourceCheck>,
    /// What is wrong with each table's log.
    pub log_flaws: BTreeMap<String, Vec<Flaw>>,
}

impl Verdict {
    /// Whether anything checkable disagrees.
    pub fn clean(&self) -> bool {
        self.log_flaws.values().all(Vec::is_empty)
            && self
                .sources
                .iter()
                .all(|s| s.files.iter().all(|f| f.faults() == 0))
    }
}

/// The events compared: `[from, to)`.
#[derive(Debug, Default, Clone, Copy)]
struct Range {
    from: Option<chrono::DateTime<Utc>>,
    to: Option<chrono::DateTime<Utc>>,
}

impl Range {
    fn parse(from: Option<&str>, to: Option<&str>) -> Result<Range> {
        let at = |s: &str, end_of_day: bool| -> Result<chrono::DateTime<Utc>> {
            if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
                return Ok(t.to_utc());
            }
            let day = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .with_context(|| format!("{s:?} is neither RFC 3339 nor YYYY-MM-DD"))?;
            let day = if end_of_day {
                day.succ_opt().unwrap_or(day)
            } else {
                day
            };
            Ok(day.and_time(chrono::NaiveTime::MIN).and_utc())
        };
        Ok(Range {
            from: from.map(|s| at(s, false)).transpose()?,
            to: to.map(|s| at(s, true)).transpose()?,
        })
    }

    fn contains(&self, t: chrono::DateTime<Utc>) -> bool {
        self.from.is_none_or(|f| t >= f) && self.to.is_none_or(|e| t < e)
    }

    /// The same for a timestamp as the table's text renders it.
    fn contains_text(&self, t: &str) -> bool {
        match chrono::DateTime::parse_from_rfc3339(t) {
            Ok(t) => self.contains(t.to_utc()),
            Err(_) => self.from.is_none() && self.to.is_none(),
        }
    }
}

/// Runs the command: Ok(true) when everything checkable matches.
pub fn run(args: &VerifyArgs) -> Result<bool> {
    let range = Range::parse(args.from.as_deref(), args.to.as_deref()).context("--from/--to")?;
    let config = super::load_config(&args.config)?;
    let rt = super::runtime()?;
    let events = rt.block_on(open(&config.table_uri))?;
    let quarantine = rt.block_on(open(&config.quarantine_uri))?;
    let mut verdict = Verdict {
        events_version: events.version().unwrap_or_default() as u64,
        quarantine_version: quarantine.version().unwrap_or_default() as u64,
        ..Verdict::default()
    };
    let tables = [
        (
            &config.table_uri,
            &events,
            &RISK_EVENT_COLUMNS[..],
            EVENT_PARTITION,
        ),
        (
            &config.quarantine_uri,
            &quarantine,
            &QUARANTINE_COLUMNS[..],
            QUARANTINE_PARTITION,
        ),
    ];
    for (uri, t, columns, partition) in tables {
        let flaws = rt
            .block_on(shape::check(t, columns, partition))
            .map_err(|e| unreadable(uri, e))?;
        verdict.log_flaws.insert(uri.clone(), flaws);
    }
    let rows = rt.block_on(TableRows::read(&events, &quarantine, &config))?;
    for source in &config.sources {
        if args.source.as_deref().is_some_and(|n| n != source.name) {
            continue;
        }
        let files = super::backfill::source_files(&config, source, &args.inputs)?;
        let tables = (&events, &quarantine);
        let check = rt.block_on(check_source(&config, source, &files, tables, &rows, range))?;
        verdict.sources.push(check);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&verdict)?);
    } else {
        print_verdict(&verdict);
    }
    Ok(verdict.clean())
}

fn unreadable(table: &str, e: impl std::fmt::Display) -> anyhow::Error {
    Unreadable {
        table: table.to_owned(),
        message: e.to_string(),
    }
    .into()
}

async fn open(uri: &str) -> Result<DeltaTable> {
    crate::sink::store::open(uri)
        .await
        .map_err(|e| unreadable(uri, e))
}

/// The table's rows, by source, as strings per column (one version).
struct TableRows {
    /// (source, event_id) → every row with it. The id derives from the
    /// file's content and the offset; two sources whose engines wrote the
    /// very same bytes share ids, so the source is part of the key.
    events: HashMap<(String, String), Vec<Cells>>,
    /// (source, line_id) → how many quarantine rows.
    quarantine_ids: HashMap<(String, String), usize>,
    /// (source, offset, raw line) → how many quarantine rows without a
    /// `line_id` (written by an earlier release): the line (its time
    /// included) and its offset name them.
    quarantine: HashMap<(String, i64, String), usize>,
}

/// One row's columns as text, and where it came from.
struct Cells {
    source: String,
    offset: i64,
    columns: BTreeMap<String, String>,
}

/// Columns compared: all but when it was read, the path at read time, and
/// the partition (not in the data files).
fn compared(c: &str) -> bool {
    ![
        name::INGESTED_AT,
        name::SOURCE_FILE,
        name::EVENT_DATE,
        name::INGEST_DATE,
    ]
    .contains(&c)
}

impl TableRows {
    async fn read(
        events: &DeltaTable,
        quarantine: &DeltaTable,
        config: &Config,
    ) -> Result<TableRows> {
        let cols: Vec<&str> = RISK_EVENT_COLUMNS
            .iter()
            .map(|c| c.name)
            .filter(|c| *c != name::EVENT_DATE)
            .collect();
        let mut out = TableRows {
            events: HashMap::new(),
            quarantine_ids: HashMap::new(),
            quarantine: HashMap::new(),
        };
        for b in read_all(events, &cols, &config.table_uri).await? {
            for cells in cells_of(&b) {
                let id = cells
                    .columns
                    .get(name::EVENT_ID)
                    .cloned()
                    .unwrap_or_default();
                out.events
                    .entry((cells.source.clone(), id))
                    .or_default()
                    .push(cells);
            }
        }
        let qcols: Vec<&str> = QUARANTINE_COLUMNS
            .iter()
            .map(|c| c.name)
            .filter(|c| *c != name::INGEST_DATE)
            .collect();
        for b in read_all(quarantine, &qcols, &config.quarantine_uri).await? {
            for c in cells_of(&b) {
                match c.columns.get(name::LINE_ID).filter(|id| !id.is_empty()) {
                    Some(id) => {
                        *out.quarantine_ids
                            .entry((c.source, id.clone()))
                            .or_default() += 1
                    }
                    None => {
                        let raw = c.columns.get(name::RAW_LINE).cloned().unwrap_or_default();
                        *out.quarantine.entry((c.source, c.offset, raw)).or_default() += 1;
                    }
                }
            }
        }
        Ok(out)
    }
}

async fn read_all(table: &DeltaTable, cols: &[&str], uri: &str) -> Result<Vec<RecordBatch>> {
    let mut out = Vec::new();
    for path in crate::sink::store::data_paths(table).map_err(|e| unreadable(uri, e))? {
        let bytes = match crate::sink::store::read_file(table, &path).await {
            Ok(b) => b,
            // Named by the log, gone from storage: the log check reports
            // it, and its rows show as missing.
            Err(deltalake::DeltaTableError::ObjectStore {
                source: object_store::Error::NotFound { .. },
            }) => continue,
            Err(e) => return Err(unreadable(uri, e)),
        };
        out.extend(crate::sink::read::read_bytes_columns(&path, bytes, cols)?);
    }
    Ok(out)
}

/// Every row of `b` as text per column.
fn cells_of(b: &RecordBatch) -> Vec<Cells> {
    let schema = b.schema();
    let opts = FormatOptions::default();
    let fmts: Vec<_> = b
        .columns()
        .iter()
        .map(|c| ArrayFormatter::try_new(c.as_ref(), &opts).ok())
        .collect();
    (0..b.num_rows())
        .map(|r| {
            let columns: BTreeMap<String, String> = fmts
                .iter()
                .enumerate()
                .filter_map(|(i, f)| {
                    Some((
                        schema.field(i).name().clone(),
                        f.as_ref()?.value(r).to_string(),
                    ))
                })
                .collect();
            let get = |k: &str| columns.get(k).cloned().unwrap_or_default();
            Cells {
                source: get(name::SOURCE),
                offset: get(name::SOURCE_OFFSET).parse().unwrap_or(-1),
                columns,
            }
        })
        .collect()
}

/// One source: every file read again up to its committed offset, in the
/// order ingestion reads them, compared with the table's rows.
async fn check_source(
    config: &Config,
    source: &SourceConfig,
    files: &[Found],
    (events, quarantine): (&DeltaTable, &DeltaTable),
    rows: &TableRows,
    range: Range,
) -> Result<SourceCheck> {
    let parser = config.parser(source);
    let heads = parser.heads();
    let mut opened = Vec::new();
    let mut ids = HashSet::new();
    for f in files {
        let o = crate::source::open(&f.path, source.max_line_bytes, &heads)
            .with_context(|| format!("reading {}", f.path.display()))?;
        if let Some(id) = o.lines.identity(f.live)
            && ids.insert(id)
        {
            opened.push((f.clone(), o, id));
        }
    }
    let opened = crate::source::time_order(
        opened,
        |(f, _, _)| &f.path,
        |(_, o, _)| o.lines.first,
        source.max_line_bytes,
        &heads,
    );
    let mut state = SourceState::default();
    let mut out = SourceCheck {
        source: source.name.clone(),
        ..SourceCheck::default()
    };
    let mut expected_ids = HashSet::new();
    for (found, o, id) in opened {
        let committed = committed(events, quarantine, &source.name, id).await?;
        let path = found.path.display().to_string();
        let file = FileRef {
            id,
            path: &path,
            quarantined_to: 0,
        };
        let (mut got, tally, end) = reread(&parser, o, file, committed.0, found.live, &mut state)?;
        got.events.retain(|e| range.contains(e.timestamp));
        let mut check = compare(&path, id, &got, rows, &source.name, &mut expected_ids)?;
        check.lines = tally.lines;
        check.bytes_behind = crate::source::content_len_hint(&found.path)
            .unwrap_or(end)
            .saturating_sub(committed.0);
        out.files.push(check);
    }
    // Rows no file here gives: their files were rotated away, deleted, or
    // are archives not named on the command line.
    out.not_checkable = rows
        .events
        .iter()
        .filter(|((s, id), _)| *s == source.name && !expected_ids.contains(id))
        .flat_map(|(_, cells)| cells)
        .filter(|c| range.contains_text(c.columns.get(name::TIMESTAMP).map_or("", String::as_str)))
        .count();
    Ok(out)
}

/// The committed offsets of `id` in the events and quarantine tables.
async fn committed(
    events: &DeltaTable,
    quarantine: &DeltaTable,
    source: &str,
    id: crate::source::fingerprint::FileId,
) -> Result<(u64, u64)> {
    let app = crate::sink::txn::app_id(source, id);
    let mut out = [0u64; 2];
    for (i, t) in [events, quarantine].into_iter().enumerate() {
        let v = t
            .snapshot()?
            .transaction_version(t.log_store().as_ref(), &app)
            .await?;
        out[i] = v.map_or(0, |v| v.max(0) as u64);
    }
    Ok((out[0], out[1]))
}

/// Reads one file from its start up to `to` with the per-line step.
fn reread(
    parser: &crate::parse::SourceParser,
    opened: crate::source::Opened,
    file: FileRef<'_>,
    to: u64,
    live: bool,
    state: &mut SourceState,
) -> Result<(Rows, Tally, u64)> {
    let stepper = Stepper {
        parser,
        now: Utc::now(),
        at_fragment: if live {
            AtFragment::Wait
        } else {
            AtFragment::Quarantine
        },
    };
    let mut reader = opened.lines.reader;
    let (mut rows, mut tally, mut skip) = (Rows::default(), Tally::default(), NoiseSkip::default());
    while reader.offset() < to {
        match stepper.step(&mut reader, file, state, &mut skip, &mut tally, &mut rows)? {
            Stepped::Read => {}
            Stepped::End => break,
        }
    }
    // A step may read past `to` (a noise run): rows past it are not committed.
    rows.events.retain(|e| (e.source_offset as u64) < to);
    rows.quarantine.retain(|q| (q.source_offset as u64) < to);
    Ok((rows, tally, reader.offset()))
}

/// Compares one file's expected rows with the table's.
fn compare(
    path: &str,
    id: crate::source::fingerprint::FileId,
    got: &Rows,
    table: &TableRows,
    source: &str,
    expected_ids: &mut HashSet<String>,
) -> Result<FileCheck> {
    let mut check = FileCheck {
        path: path.to_owned(),
        id: id.to_string(),
        events_expected: got.events.len(),
        quarantine_expected: got.quarantine.len(),
        ..FileCheck::default()
    };
    if !got.events.is_empty() {
        for want in cells_of(&events_batch(&got.events)?) {
            let id = want
                .columns
                .get(name::EVENT_ID)
                .cloned()
                .unwrap_or_default();
            expected_ids.insert(id.clone());
            match table
                .events
                .get(&(source.to_owned(), id.clone()))
                .map(Vec::as_slice)
            {
                None | Some([]) => check.missing.push((want.offset, id)),
                Some([one]) => {
                    check.events_found += 1;
                    diff(&want, one, &mut check.changed);
                }
                Some(_) => check.doubled.push((want.offset, id)),
            }
        }
    }
    if !got.quarantine.is_empty() {
        for want in cells_of(&quarantine_batch(&got.quarantine)?) {
            let get = |k: &str| want.columns.get(k).cloned().unwrap_or_default();
            let by_id = (source.to_owned(), get(name::LINE_ID));
            let by_line = (source.to_owned(), want.offset, get(name::RAW_LINE));
            let rows = table.quarantine_ids.get(&by_id).copied().unwrap_or(0)
                + table.quarantine.get(&by_line).copied().unwrap_or(0);
            match rows {
                0 => check.quarantine_missing.push(want.offset),
                1 => {}
                _ => check.quarantine_doubled.push(want.offset),
            }
        }
    }
    Ok(check)
}

/// Records the compared columns where `have` differs from `want`.
fn diff(want: &Cells, have: &Cells, changed: &mut Vec<(i64, String, String, String)>) {
    for (k, w) in want.columns.iter().filter(|(k, _)| compared(k)) {
        let h = have.columns.get(k).cloned().unwrap_or_default();
        if &h != w {
            changed.push((want.offset, k.clone(), h, w.clone()));
        }
    }
}

fn print_verdict(v: &Verdict) {
    println!(
        "risktail verify: risk_events at version {}, quarantine at version {}",
        v.events_version, v.quarantine_version
    );
    println!(
        "{:<10} {:<44} {:>8} {:>8} {:>7} {:>7} {:>7} {:>7} {:>10}",
        "source", "file", "lines", "events", "missing", "doubled", "changed", "q.fault", "behind"
    );
    for s in &v.sources {
        for f in &s.files {
            println!(
                "{:<10} {:<44} {:>8} {:>8} {:>7} {:>7} {:>7} {:>7} {:>10}",
                s.source,
                super::backfill::shorten(&f.path, 44),
                f.lines,
                f.events_expected,
                f.missing.len(),
                f.doubled.len(),
                f.changed.len(),
                f.quarantine_missing.len() + f.quarantine_doubled.len(),
                f.bytes_behind
            );
            for (o, id) in f.missing.iter().take(3) {
                println!("  missing: offset {o} (event {id})");
            }
            for (o, id) in f.doubled.iter().take(3) {
                println!("  doubled: offset {o} (event {id})");
            }
            for (o, col, have, want) in f.changed.iter().take(3) {
                println!("  changed: offset {o} {col}: table {have:?}, the log gives {want:?}");
            }
            for o in f.quarantine_missing.iter().take(3) {
                println!("  quarantine row missing: offset {o}");
            }
            for o in f.quarantine_doubled.iter().take(3) {
                println!("  quarantine row doubled: offset {o}");
            }
        }
        if s.not_checkable > 0 {
            println!(
                "  {}: {} rows of files no longer on disk (not checkable here)",
                s.source, s.not_checkable
            );
        }
    }
    for (table, flaws) in &v.log_flaws {
        for f in flaws {
            println!("log of {table}: {}: {}", f.kind, f.detail);
        }
    }
    println!(
        "{}",
        if v.clean() {
            "verify: everything checkable matches"
        } else {
            "verify: FAULTS FOUND"
        }
    );
}
