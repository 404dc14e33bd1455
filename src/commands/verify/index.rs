//! The `risk_events` rows `verify` compares with, held small: per row its
//! source, `event_id`, time, how many rows share the id, and one hash of
//! every compared column as the table renders it. A year is five million
//! rows; held as text per column they took 4.6 KB each and the year's verify
//! was killed at 24 GB. Here a row takes 40 bytes in one sorted array (and
//! each source at most 8 MiB more to find an id in it at once), and
//! the text of a row is only made again for the few a hash says changed (a
//! second read of the table, [`changed_rows`]).

use deltalake::arrow::array::{Array, AsArray, RecordBatch};
use deltalake::arrow::datatypes::TimestampMicrosecondType;
use deltalake::arrow::util::display::{ArrayFormatter, FormatOptions};
use std::collections::{BTreeMap, HashMap};
use std::hash::Hasher;
use uuid::Uuid;

use crate::event::schema::{RISK_EVENT_COLUMNS, name};

/// One row of the table.
#[derive(Debug, Clone, Copy)]
pub struct Held {
    source: u16,
    id: [u8; 16],
    /// Rows with this (source, id).
    pub count: u32,
    /// Whether a file read gave it.
    pub seen: bool,
    /// The hash of its compared columns (of the first row with the id).
    pub hash: u64,
    /// `timestamp`, µs.
    pub micros: i64,
}

/// Every row of the table, sorted by (source, id).
#[derive(Debug, Default)]
pub struct EventIndex {
    sources: Vec<String>,
    rows: Vec<Held>,
    /// Per source, once sealed: where its rows of each id prefix start.
    buckets: Vec<Buckets>,
}

/// Where a source's rows start for each value of their ids' first `bits`
/// bits (and, last, where they end). Event ids are hashes (v5), evenly
/// spread, so a prefix holds a handful of rows: a lookup reads those
/// instead of the twenty-odd rows of a binary search over millions, each
/// one out of the cache (the search was a third of a year's `verify`).
/// The ranges are exact whatever the ids: only their length depends on
/// how evenly the ids are spread.
#[derive(Debug)]
struct Buckets {
    bits: u32,
    starts: Vec<usize>,
}

/// The first `bits` bits of `id` (1 to 32).
fn prefix(id: &[u8; 16], bits: u32) -> usize {
    let head = u32::from_be_bytes([id[0], id[1], id[2], id[3]]);
    (head >> (32 - bits)) as usize
}

impl Buckets {
    /// The buckets of `rows`, sorted by id: about eight rows a bucket, at
    /// most 2^20 buckets (8 MiB).
    fn of(rows: &[Held], first: usize) -> Buckets {
        let wanted = (rows.len() / 8).max(1);
        let bits = (usize::BITS - wanted.leading_zeros()).clamp(1, 20);
        let mut starts = Vec::with_capacity((1 << bits) + 1);
        let mut i = 0;
        for b in 0..1usize << bits {
            while i < rows.len() && prefix(&rows[i].id, bits) < b {
                i += 1;
            }
            starts.push(first + i);
        }
        starts.push(first + rows.len());
        Buckets { bits, starts }
    }

    /// The range of rows whose ids share `id`'s prefix.
    fn range(&self, id: &[u8; 16]) -> std::ops::Range<usize> {
        let b = prefix(id, self.bits);
        self.starts[b]..self.starts[b + 1]
    }
}

/// Columns compared: all but when it was read, the path at read time, and
/// the partition (not in the data files).
pub fn compared(c: &str) -> bool {
    ![
        name::INGESTED_AT,
        name::SOURCE_FILE,
        name::EVENT_DATE,
        name::INGEST_DATE,
    ]
    .contains(&c)
}

/// The compared columns, in the order a row's hash takes them.
fn hashed_columns() -> Vec<&'static str> {
    let mut cols: Vec<&str> = RISK_EVENT_COLUMNS
        .iter()
        .map(|c| c.name)
        .filter(|c| compared(c))
        .collect();
    cols.sort_unstable();
    cols
}

/// Hashes rows of one batch: each compared column's value by its type (the
/// table's reader and the writer give the same Arrow types, `sink::read`
/// casts what another tool rewrote), a column the batch lacks as empty, the
/// same way for the table's rows and the rows a file gives. Hashing values,
/// not their text, keeps the index as cheap as reading the columns.
pub struct RowHasher<'a> {
    cells: Vec<Option<&'a dyn Array>>,
    buf: String,
}

impl<'a> RowHasher<'a> {
    /// A hasher of `batch`'s rows.
    pub fn new(batch: &'a RecordBatch) -> RowHasher<'a> {
        let cells = hashed_columns()
            .into_iter()
            .map(|c| batch.column_by_name(c).map(|a| a.as_ref()))
            .collect();
        RowHasher {
            cells,
            buf: String::new(),
        }
    }

    /// The hash of row `r`.
    pub fn hash(&mut self, r: usize) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        for cell in &self.cells {
            match cell {
                Some(a) if a.is_valid(r) => {
                    h.write_u8(1);
                    hash_value(&mut h, &mut self.buf, *a, r);
                }
                _ => h.write_u8(0),
            }
        }
        h.finish()
    }
}

/// Feeds value `r` of `a` to `h` by its type (`buf`: room for the text of a
/// type risktail does not write).
fn hash_value(h: &mut impl Hasher, buf: &mut String, a: &dyn Array, r: usize) {
    use deltalake::arrow::datatypes::DataType as T;
    use deltalake::arrow::datatypes::{Date32Type, Float64Type, Int32Type, Int64Type};
    match a.data_type() {
        T::Utf8 => {
            let s = a.as_string::<i32>().value(r);
            h.write_usize(s.len());
            h.write(s.as_bytes());
        }
        T::Int32 => h.write_i32(a.as_primitive::<Int32Type>().value(r)),
        T::Int64 => h.write_i64(a.as_primitive::<Int64Type>().value(r)),
        T::Float64 => h.write_u64(a.as_primitive::<Float64Type>().value(r).to_bits()),
        T::Date32 => h.write_i32(a.as_primitive::<Date32Type>().value(r)),
        T::Boolean => h.write_u8(u8::from(a.as_boolean().value(r))),
        T::Timestamp(deltalake::arrow::datatypes::TimeUnit::Microsecond, _) => {
            h.write_i64(a.as_primitive::<TimestampMicrosecondType>().value(r));
        }
        _ => {
            // Not a type risktail writes: its text.
            use std::fmt::Write;
            buf.clear();
            if let Ok(f) = ArrayFormatter::try_new(a, &FormatOptions::default()) {
                // Writing into a String cannot fail.
                let _ = write!(buf, "{}", f.value(r));
            }
            h.write(buf.as_bytes());
        }
    }
}

impl EventIndex {
    /// Adds the rows of one batch of the table.
    pub fn add(&mut self, batch: &RecordBatch) {
        // Rows added after sealing are found by the whole search until the
        // next seal.
        self.buckets.clear();
        let mut hasher = RowHasher::new(batch);
        let text = |c: &str| {
            batch
                .column_by_name(c)
                .and_then(|a| a.as_string_opt::<i32>())
        };
        let (ids, sources) = (text(name::EVENT_ID), text(name::SOURCE));
        let times = batch
            .column_by_name(name::TIMESTAMP)
            .and_then(|a| a.as_primitive_opt::<TimestampMicrosecondType>());
        for r in 0..batch.num_rows() {
            let source = self.source_index(value(sources, r));
            let id = Uuid::parse_str(value(ids, r)).unwrap_or_default();
            self.rows.push(Held {
                source,
                id: id.into_bytes(),
                count: 1,
                seen: false,
                hash: hasher.hash(r),
                micros: times.map_or(0, |t| t.value(r)),
            });
        }
    }

    fn source_index(&mut self, source: &str) -> u16 {
        match self.sources.iter().position(|s| s == source) {
            Some(i) => i as u16,
            None => {
                self.sources.push(source.to_owned());
                (self.sources.len() - 1) as u16
            }
        }
    }

    /// Sorts the rows and folds rows of one id into one with a count.
    pub fn seal(&mut self) {
        self.rows.sort_unstable_by_key(|h| (h.source, h.id));
        self.rows.dedup_by(|later, first| {
            let same = (later.source, later.id) == (first.source, first.id);
            if same {
                first.count += later.count;
            }
            same
        });
        self.rows.shrink_to_fit();
        self.buckets = (0..self.sources.len())
            .map(|s| {
                let lo = self.rows.partition_point(|h| usize::from(h.source) < s);
                let hi = self.rows.partition_point(|h| usize::from(h.source) <= s);
                Buckets::of(&self.rows[lo..hi], lo)
            })
            .collect();
    }

    /// The row of (`source`, `id`), once sealed.
    pub fn find(&mut self, source: &str, id: &Uuid) -> Option<&mut Held> {
        let s = self.sources.iter().position(|x| x == source)?;
        let id = id.into_bytes();
        let Some(buckets) = self.buckets.get(s) else {
            // Not sealed: the rows are searched whole.
            let key = (s as u16, id);
            let i = (self.rows)
                .binary_search_by_key(&key, |h| (h.source, h.id))
                .ok()?;
            return self.rows.get_mut(i);
        };
        let range = buckets.range(&id);
        let first = range.start;
        let i = self
            .rows
            .get(range)?
            .binary_search_by_key(&id, |h| h.id)
            .ok()?;
        self.rows.get_mut(first + i)
    }

    /// Rows of `source` no file read gave, whose time `within` accepts.
    pub fn not_seen(&self, source: &str, within: impl Fn(i64) -> bool) -> usize {
        let Some(s) = self.sources.iter().position(|x| x == source) else {
            return 0;
        };
        self.rows
            .iter()
            .filter(|h| usize::from(h.source) == s && !h.seen && within(h.micros))
            .map(|h| h.count as usize)
            .sum()
    }
}

/// Row `r` of a text column ("" when null or absent).
fn value(a: Option<&deltalake::arrow::array::StringArray>, r: usize) -> &str {
    a.filter(|a| !a.is_null(r)).map_or("", |a| a.value(r))
}

/// One row's columns as text.
pub type Cells = BTreeMap<String, String>;

/// Every column of row `r` of `b` as text.
pub fn cells(b: &RecordBatch, r: usize) -> Cells {
    let opts = FormatOptions::default();
    let schema = b.schema();
    b.columns()
        .iter()
        .enumerate()
        .filter_map(|(i, c)| {
            let f = ArrayFormatter::try_new(c.as_ref(), &opts).ok()?;
            Some((schema.field(i).name().clone(), f.value(r).to_string()))
        })
        .collect()
}

/// The compared columns where `have` differs from `want`: (column, table's
/// value, expected value).
pub fn diff(want: &Cells, have: &Cells) -> Vec<(String, String, String)> {
    want.iter()
        .filter(|(k, _)| compared(k))
        .filter_map(|(k, w)| {
            let h = have.get(k).cloned().unwrap_or_default();
            (&h != w).then(|| (k.clone(), h, w.clone()))
        })
        .collect()
}

/// The table's text of the rows in `wanted` ((source, id) → anything), from
/// one batch: the second read, for rows whose hash differed.
pub fn changed_rows<T>(
    batch: &RecordBatch,
    wanted: &HashMap<(String, Uuid), T>,
    out: &mut HashMap<(String, Uuid), Cells>,
) {
    let text = |c: &str| {
        batch
            .column_by_name(c)
            .and_then(|a| a.as_string_opt::<i32>())
    };
    let (Some(ids), Some(sources)) = (text(name::EVENT_ID), text(name::SOURCE)) else {
        return;
    };
    for r in 0..batch.num_rows() {
        let id = Uuid::parse_str(ids.value(r)).unwrap_or_default();
        let key = (sources.value(r).to_owned(), id);
        if wanted.contains_key(&key) && !out.contains_key(&key) {
            out.insert(key, cells(batch, r));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(source: u16, id: Uuid) -> Held {
        Held {
            source,
            id: id.into_bytes(),
            count: 1,
            seen: false,
            hash: u64::from(source),
            micros: 0,
        }
    }

    /// Every row is found under its own source and no other, ids not in
    /// the table are not, and the buckets find what the whole search finds:
    /// a source of many rows, one of a few, one of none.
    #[test]
    fn sealed_lookups_find_what_the_whole_search_finds() {
        let id = |i: u32| Uuid::new_v5(&Uuid::NAMESPACE_OID, &i.to_be_bytes());
        let mut index = EventIndex {
            sources: vec!["big".into(), "small".into(), "empty".into()],
            ..EventIndex::default()
        };
        for i in 0..20_000 {
            index.rows.push(held(0, id(i)));
        }
        for i in [3, 20_001, 20_002] {
            index.rows.push(held(1, id(i)));
        }
        index.rows.push(held(0, id(7)));
        index.seal();
        // The same rows without the buckets: found by the whole search.
        let mut whole = EventIndex {
            sources: index.sources.clone(),
            rows: index.rows.clone(),
            ..EventIndex::default()
        };
        assert!(index.buckets[0].bits > 8, "many buckets for many rows");
        let found = |x: &mut EventIndex, source: &str, i: u32| {
            x.find(source, &id(i)).map(|h| (h.source, h.id, h.count))
        };
        for i in (0..20_000).chain([20_001, 20_002, 30_000]) {
            for source in ["big", "small", "empty", "none"] {
                let got = found(&mut index, source, i);
                assert_eq!(got, found(&mut whole, source, i), "{source} {i}");
                let want = match source {
                    "big" => i < 20_000,
                    "small" => [3, 20_001, 20_002].contains(&i),
                    _ => false,
                };
                assert_eq!(got.is_some(), want, "{source} {i}");
            }
        }
        assert_eq!(found(&mut index, "big", 7).map(|h| h.2), Some(2), "folded");
    }
}
