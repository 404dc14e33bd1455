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
use std::collections::{BTreeMap, HashMap, HashSet};

use super::out::out_line;
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
use index::EventIndex;
use uuid::Uuid;

mod index;

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
    let mut rows = rt.block_on(TableRows::read(&events, &quarantine, &config))?;
    let all_txns = |t: &DeltaTable, uri: &str| {
        let v = t.version().unwrap_or_default();
        rt.block_on(crate::sink::txn_index::all_txns(t, v))
            .map_err(|e| unreadable(uri, e))
    };
    let txns = [
        all_txns(&events, &config.table_uri)?,
        all_txns(&quarantine, &config.quarantine_uri)?,
    ];
    let tables = Tables {
        events: &events,
        quarantine: &quarantine,
        txns: [txns[0].as_ref(), txns[1].as_ref()],
    };
    let mut changed = HashMap::new();
    for source in &config.sources {
        if args.source.as_deref().is_some_and(|n| n != source.name) {
            continue;
        }
        let files = super::backfill::source_files(&config, source, &args.inputs)?;
        let at = (range, verdict.sources.len());
        let check = check_source(&config, source, &files, tables, &mut rows, at, &mut changed);
        let check = rt.block_on(check)?;
        verdict.sources.push(check);
    }
    rt.block_on(record_changed(
        &events,
        &config.table_uri,
        changed,
        &mut verdict,
    ))?;
    if args.json {
        super::out::print_json(&verdict)?;
    } else {
        super::out::print(&verdict_text(&verdict))?;
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

/// The table's rows (one version): events in an [`EventIndex`], quarantine
/// rows (few) counted by id.
struct TableRows {
    events: EventIndex,
    /// (source, line_id) → how many quarantine rows.
    quarantine_ids: HashMap<(String, String), usize>,
    /// (source, offset, raw line) → how many quarantine rows without a
    /// `line_id` (written by an earlier release): the line (its time
    /// included) and its offset name them.
    quarantine: HashMap<(String, i64, String), usize>,
}

/// The columns of `risk_events` read (all but the partition).
fn event_columns() -> Vec<&'static str> {
    RISK_EVENT_COLUMNS
        .iter()
        .map(|c| c.name)
        .filter(|c| *c != name::EVENT_DATE)
        .collect()
}

impl TableRows {
    async fn read(
        events: &DeltaTable,
        quarantine: &DeltaTable,
        config: &Config,
    ) -> Result<TableRows> {
        let mut out = TableRows {
            events: EventIndex::default(),
            quarantine_ids: HashMap::new(),
            quarantine: HashMap::new(),
        };
        let cols = event_columns();
        for_each_batch(events, &cols, &config.table_uri, |b| out.events.add(b)).await?;
        out.events.seal();
        let qcols: Vec<&str> = QUARANTINE_COLUMNS
            .iter()
            .map(|c| c.name)
            .filter(|c| *c != name::INGEST_DATE)
            .collect();
        let mut qrows = Vec::new();
        for_each_batch(quarantine, &qcols, &config.quarantine_uri, |b| {
            qrows.extend((0..b.num_rows()).map(|r| index::cells(b, r)));
        })
        .await?;
        for c in qrows {
            let get = |k: &str| c.get(k).cloned().unwrap_or_default();
            let source = get(name::SOURCE);
            match c.get(name::LINE_ID).filter(|id| !id.is_empty()) {
                Some(id) => *out.quarantine_ids.entry((source, id.clone())).or_default() += 1,
                None => {
                    let offset = get(name::SOURCE_OFFSET).parse().unwrap_or(-1);
                    *out.quarantine
                        .entry((source, offset, get(name::RAW_LINE)))
                        .or_default() += 1;
                }
            }
        }
        Ok(out)
    }
}

/// Hands every batch of the table's data files to `each`, one file at a
/// time (a year's table does not fit in memory at once).
async fn for_each_batch(
    table: &DeltaTable,
    cols: &[&str],
    uri: &str,
    mut each: impl FnMut(&RecordBatch),
) -> Result<()> {
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
        for b in crate::sink::read::read_bytes_columns(&path, bytes, cols)? {
            each(&b);
        }
    }
    Ok(())
}

/// An expected row whose hash differed from the table's: its text, and the
/// file check (source, file) it belongs to.
struct Changed {
    want: index::Cells,
    offset: i64,
    at: (usize, usize),
}

/// One source: every file read again up to its committed offset, in the
/// order ingestion reads them, compared with the table's rows.
async fn check_source(
    config: &Config,
    source: &SourceConfig,
    files: &[Found],
    tables: Tables<'_>,
    rows: &mut TableRows,
    (range, at): (Range, usize),
    changed: &mut HashMap<(String, Uuid), Changed>,
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
    for (found, o, id) in opened {
        let committed = tables.committed(&source.name, id).await?;
        let path = found.path.display().to_string();
        let mut check = FileCheck {
            path: path.clone(),
            id: id.to_string(),
            ..FileCheck::default()
        };
        let file = FileRef {
            id,
            path: &path,
            quarantined_to: 0,
        };
        let mut place = Place {
            source: &source.name,
            at: (at, out.files.len()),
            changed: &mut *changed,
        };
        let (tally, end) = reread(
            &parser,
            o,
            file,
            committed.0,
            found.live,
            &mut state,
            |got| {
                got.events.retain(|e| range.contains(e.timestamp()));
                compare(got, rows, &mut check, &mut place)
            },
        )?;
        check.lines = tally.lines;
        check.bytes_behind = crate::source::content_len_hint(&found.path)
            .unwrap_or(end)
            .saturating_sub(committed.0);
        out.files.push(check);
    }
    // Rows no file here gives: their files were rotated away, deleted, or
    // are archives not named on the command line.
    out.not_checkable = rows.events.not_seen(&source.name, |us| {
        chrono::DateTime::from_timestamp_micros(us).is_some_and(|t| range.contains(t))
    });
    Ok(out)
}

/// The two tables, and every `txn` of each read in one pass where the log
/// allows (`sink::txn_index`): a file's offsets are then a lookup, not a
/// log replay per file (minutes for a hundred files on an object store).
#[derive(Clone, Copy)]
struct Tables<'a> {
    events: &'a DeltaTable,
    quarantine: &'a DeltaTable,
    txns: [Option<&'a HashMap<String, u64>>; 2],
}

impl<'a> Tables<'a> {
    /// The committed offsets of `id` in the events and quarantine tables.
    async fn committed(
        &self,
        source: &str,
        id: crate::source::fingerprint::FileId,
    ) -> Result<(u64, u64)> {
        let app = crate::sink::txn::app_id(source, id);
        let mut out = [0u64; 2];
        for (i, t) in [self.events, self.quarantine].into_iter().enumerate() {
            out[i] = match self.txns[i] {
                Some(all) => all.get(&app).copied().unwrap_or(0),
                None => t
                    .snapshot()?
                    .transaction_version(t.log_store().as_ref(), &app)
                    .await?
                    .map_or(0, |v| v.max(0) as u64),
            };
        }
        Ok((out[0], out[1]))
    }
}

/// Rows handed to the comparison at a time.
const BATCH: usize = 10_000;

/// Reads one file from its start up to `to` with the per-line step, handing
/// the rows to `each` in batches (a file of a year is millions of rows).
fn reread(
    parser: &crate::parse::SourceParser,
    opened: crate::source::Opened,
    file: FileRef<'_>,
    to: u64,
    live: bool,
    state: &mut SourceState,
    mut each: impl FnMut(&mut Rows) -> Result<()>,
) -> Result<(Tally, u64)> {
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
    loop {
        let stepped = if reader.offset() < to {
            stepper.step(&mut reader, file, state, &mut skip, &mut tally, &mut rows)?
        } else {
            Stepped::End
        };
        if stepped == Stepped::End || rows.len() >= BATCH {
            // A step may read past `to` (a noise run): rows past it are not committed.
            rows.events.retain(|e| (e.source_offset() as u64) < to);
            rows.quarantine.retain(|q| (q.source_offset as u64) < to);
            each(&mut rows)?;
            rows.clear();
        }
        if stepped == Stepped::End {
            return Ok((tally, reader.offset()));
        }
    }
}

/// Where the rows being compared belong, and where changed ones are noted.
struct Place<'a> {
    source: &'a str,
    at: (usize, usize),
    changed: &'a mut HashMap<(String, Uuid), Changed>,
}

/// Compares a batch of one file's expected rows with the table's.
fn compare(
    got: &Rows,
    table: &mut TableRows,
    check: &mut FileCheck,
    place: &mut Place<'_>,
) -> Result<()> {
    check.events_expected += got.events.len();
    check.quarantine_expected += got.quarantine.len();
    if !got.events.is_empty() {
        let batch = events_batch(&got.events)?;
        let mut hasher = index::RowHasher::new(&batch);
        for (r, e) in got.events.iter().enumerate() {
            let (offset, id) = (e.source_offset(), e.event_id());
            match table.events.find(place.source, &id) {
                None => check.missing.push((offset, id.to_string())),
                Some(held) if held.count > 1 => {
                    held.seen = true;
                    check.doubled.push((offset, id.to_string()));
                }
                Some(held) => {
                    held.seen = true;
                    check.events_found += 1;
                    if held.hash != hasher.hash(r) {
                        let want = index::cells(&batch, r);
                        let c = Changed {
                            want,
                            offset,
                            at: place.at,
                        };
                        place.changed.insert((place.source.to_owned(), id), c);
                    }
                }
            }
        }
    }
    if !got.quarantine.is_empty() {
        let batch = quarantine_batch(&got.quarantine)?;
        for r in 0..batch.num_rows() {
            let want = index::cells(&batch, r);
            let get = |k: &str| want.get(k).cloned().unwrap_or_default();
            let offset = get(name::SOURCE_OFFSET).parse().unwrap_or(-1);
            let by_id = (place.source.to_owned(), get(name::LINE_ID));
            let by_line = (place.source.to_owned(), offset, get(name::RAW_LINE));
            let rows = table.quarantine_ids.get(&by_id).copied().unwrap_or(0)
                + table.quarantine.get(&by_line).copied().unwrap_or(0);
            match rows {
                0 => check.quarantine_missing.push(offset),
                1 => {}
                _ => check.quarantine_doubled.push(offset),
            }
        }
    }
    Ok(())
}

/// The second read: the table's text of the rows whose hash differed, each
/// column that differs recorded in its file's check.
async fn record_changed(
    events: &DeltaTable,
    uri: &str,
    changed: HashMap<(String, Uuid), Changed>,
    verdict: &mut Verdict,
) -> Result<()> {
    if changed.is_empty() {
        return Ok(());
    }
    let mut have = HashMap::new();
    let cols = event_columns();
    for_each_batch(events, &cols, uri, |b| {
        index::changed_rows(b, &changed, &mut have)
    })
    .await?;
    let mut changed: Vec<_> = changed.into_iter().collect();
    changed.sort_by_key(|(_, c)| (c.at, c.offset));
    for (key, c) in changed {
        let table = have.get(&key).cloned().unwrap_or_default();
        let (s, f) = c.at;
        if let Some(check) = verdict.sources.get_mut(s).and_then(|s| s.files.get_mut(f)) {
            for (col, h, w) in index::diff(&c.want, &table) {
                check.changed.push((c.offset, col, h, w));
            }
        }
    }
    Ok(())
}

fn verdict_text(v: &Verdict) -> String {
    let mut out = String::new();
    out_line!(
        out,
        "risktail verify: risk_events at version {}, quarantine at version {}",
        v.events_version,
        v.quarantine_version
    );
    out_line!(
        out,
        "{:<10} {:<44} {:>8} {:>8} {:>7} {:>7} {:>7} {:>7} {:>10}",
        "source",
        "file",
        "lines",
        "events",
        "missing",
        "doubled",
        "changed",
        "q.fault",
        "behind"
    );
    for s in &v.sources {
        for f in &s.files {
            out_line!(
                out,
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
                out_line!(out, "  missing: offset {o} (event {id})");
            }
            for (o, id) in f.doubled.iter().take(3) {
                out_line!(out, "  doubled: offset {o} (event {id})");
            }
            for (o, col, have, want) in f.changed.iter().take(3) {
                out_line!(
                    out,
                    "  changed: offset {o} {col}: table {have:?}, the log gives {want:?}"
                );
            }
            for o in f.quarantine_missing.iter().take(3) {
                out_line!(out, "  quarantine row missing: offset {o}");
            }
            for o in f.quarantine_doubled.iter().take(3) {
                out_line!(out, "  quarantine row doubled: offset {o}");
            }
        }
        if s.not_checkable > 0 {
            out_line!(
                out,
                "  {}: {} rows of files no longer on disk (not checkable here)",
                s.source,
                s.not_checkable
            );
        }
    }
    for (table, flaws) in &v.log_flaws {
        for f in flaws {
            out_line!(out, "log of {table}: {}: {}", f.kind, f.detail);
        }
    }
    out_line!(
        out,
        "{}",
        if v.clean() {
            "verify: everything checkable matches"
        } else {
            "verify: FAULTS FOUND"
        }
    );
    out
}
