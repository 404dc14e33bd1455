//! Reading the table back without DataFusion: the current snapshot's data
//! files, read with the `parquet` crate deltalake already brings, projecting
//! only the columns asked for. Used by the audit (text as dictionaries),
//! `verify`, compaction and by tests that must count rows while a daemon
//! writes.

use deltalake::arrow::array::{Array, AsArray};
use deltalake::arrow::datatypes::{DataType, Field, Schema};
use deltalake::arrow::record_batch::RecordBatch;
use deltalake::parquet::arrow::ParquetRecordBatchStreamBuilder;
use deltalake::parquet::arrow::ProjectionMask;
use deltalake::parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReader,
    ParquetRecordBatchReaderBuilder,
};
use deltalake::parquet::arrow::async_reader::AsyncFileReader;
use deltalake::parquet::errors::{ParquetError, Result as ParquetResult};
use deltalake::parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};
use deltalake::parquet::file::statistics::Statistics;
use deltalake::parquet::schema::types::SchemaDescriptor;
use futures::future::BoxFuture;
use object_store::ObjectStoreExt;
use std::ops::Range;

use super::error::SinkError;

/// The local paths of the data files of the table's current version.
pub async fn data_files(uri: &str) -> Result<Vec<String>, SinkError> {
    let derr = |source| SinkError::Delta {
        table: uri.to_owned(),
        source: Box::new(source),
    };
    let table = super::store::open(uri).await.map_err(derr)?;
    let files: Vec<String> = table.get_file_uris().map_err(derr)?.collect();
    Ok(files
        .into_iter()
        .map(|f| f.strip_prefix("file://").map(str::to_owned).unwrap_or(f))
        .collect())
}

/// Reads the named columns of every (local) data file (partition columns are
/// not in the files and cannot be asked for).
pub fn read_columns(files: &[String], columns: &[&str]) -> Result<Vec<RecordBatch>, SinkError> {
    let mut out = Vec::new();
    for path in files {
        let file = std::fs::File::open(path).map_err(|e| SinkError::Io {
            path: path.clone(),
            source: e,
        })?;
        out.extend(columns_of(path, file, columns)?);
    }
    Ok(out)
}

/// [`read_columns`] of one data file already in memory (read through the
/// table's object store, see `store::read_file`).
pub fn read_bytes_columns(
    path: &str,
    bytes: bytes::Bytes,
    columns: &[&str],
) -> Result<Vec<RecordBatch>, SinkError> {
    columns_of(path, bytes, columns)
}

/// [`read_bytes_columns`] with every text column read as a dictionary
/// (`Int32` keys into `Utf8` values), not yet decoded (as
/// [`fetch_text_dictionaries`] gives them): the Parquet file's own
/// dictionary pages come through as they are, so a reader that makes one
/// value per distinct string (the audit, over millions of rows holding a few
/// thousand distinct ids and a handful of states) neither copies nor
/// allocates per row. Other columns come in the types [`read_bytes_columns`]
/// gives.
pub fn columns_in_bytes(
    path: &str,
    bytes: bytes::Bytes,
    columns: &[&str],
) -> Result<FetchedColumns, SinkError> {
    let plain = ArrowReaderMetadata::load(&bytes, ArrowReaderOptions::new()).map_err(pq(path))?;
    let meta = plain.metadata().clone();
    // Batches of up to 64 Ki rows, not the reader's 1,024: each batch is
    // a new view of every column's dictionary, and the audit's decoding
    // starts afresh per batch (the year's report: 0.94x the time).
    let builder = ParquetRecordBatchReaderBuilder::new_with_metadata(bytes, dictionaries_of(plain))
        .with_batch_size(BATCH_ROWS);
    let mask = projection(builder.parquet_schema(), columns);
    let reader = builder.with_projection(mask).build().map_err(pq(path))?;
    Ok(FetchedColumns {
        path: path.to_owned(),
        groups: vec![reader],
        meta,
    })
}

/// Rows per batch the audit's reads give.
const BATCH_ROWS: usize = 1 << 16;

/// A `ParquetError` about the file at `path`, as a [`SinkError`].
fn pq(path: &str) -> impl Fn(deltalake::parquet::errors::ParquetError) -> SinkError + '_ {
    move |e| SinkError::Io {
        path: path.to_owned(),
        source: std::io::Error::other(e),
    }
}

/// `plain`'s file read with every text column as a [`text_dictionary`]
/// (or as it is, when the reader cannot give that file's text so).
fn dictionaries_of(plain: ArrowReaderMetadata) -> ArrowReaderMetadata {
    let hint = Schema::new(
        plain
            .schema()
            .fields()
            .iter()
            .map(|f| match f.data_type() {
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
                    f.as_ref().clone().with_data_type(text_dictionary())
                }
                _ => f.as_ref().clone(),
            })
            .collect::<Vec<_>>(),
    );
    let options = ArrowReaderOptions::new().with_schema(std::sync::Arc::new(hint));
    // A file whose text the reader cannot give as dictionaries is read
    // plain; `canonical` then casts it (the same values, built per row).
    ArrowReaderMetadata::try_new(plain.metadata().clone(), options).unwrap_or(plain)
}

/// The named columns (those the file has) as a projection of `schema`.
fn projection(schema: &SchemaDescriptor, columns: &[&str]) -> ProjectionMask {
    let indices: Vec<usize> = columns
        .iter()
        .filter_map(|c| schema.columns().iter().position(|d| d.name() == *c))
        .collect();
    ProjectionMask::leaves(schema, indices)
}

/// The named columns of one data file, fetched and not yet decoded: only
/// their column chunks and the footer were read, never the rest of the file
/// (the audit's columns are a fraction of a `risk_events` file, whose
/// `raw_line` and `event_id` are most of it). Decoding needs no I/O, so it
/// can run on any thread ([`FetchedColumns::decode`]).
pub struct FetchedColumns {
    path: String,
    groups: Vec<ParquetRecordBatchReader>,
    /// The file's footer (its statistics say what the rows hold).
    meta: std::sync::Arc<ParquetMetaData>,
}

impl std::fmt::Debug for FetchedColumns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FetchedColumns")
            .field("path", &self.path)
            .field("row_groups", &self.groups.len())
            .finish()
    }
}

impl FetchedColumns {
    /// How many rows the file holds, as its footer says.
    pub fn rows(&self) -> usize {
        usize::try_from(self.meta.file_metadata().num_rows()).unwrap_or(0)
    }

    /// The file's path inside the table.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The smallest value of the 64-bit integer column `column` (a time
    /// or an offset) in the file, as its footer's statistics say; `None`
    /// when a row group has no statistics for it.
    pub fn min_i64(&self, column: &str) -> Option<i64> {
        let at = (self.meta.file_metadata().schema_descr().columns().iter())
            .position(|c| c.name() == column)?;
        let mut min = None::<i64>;
        for group in self.meta.row_groups() {
            match group.column(at).statistics()? {
                Statistics::Int64(s) => {
                    let m = *s.min_opt()?;
                    min = Some(min.map_or(m, |x| x.min(m)));
                }
                _ => return None,
            }
        }
        min
    }

    /// The batches, text columns as [`text_dictionary`]s, other columns in
    /// the types [`read_bytes_columns`] gives.
    pub fn decode(self) -> Result<Vec<RecordBatch>, SinkError> {
        let io = |e: deltalake::arrow::error::ArrowError| SinkError::Io {
            path: self.path.clone(),
            source: std::io::Error::other(e),
        };
        let mut out = Vec::new();
        for group in self.groups {
            for batch in group {
                out.push(canonical(batch.map_err(io)?, true).map_err(io)?);
            }
        }
        Ok(out)
    }
}

/// Fetches the named columns of the data file at `path` (relative to the
/// table's root, `size` bytes long as the Delta log says) through the
/// table's object store, text as dictionaries, as
/// [`columns_in_bytes`] reads them from a whole file.
pub async fn fetch_text_dictionaries(
    table: &deltalake::DeltaTable,
    path: &str,
    size: u64,
    columns: &[&str],
) -> Result<FetchedColumns, SinkError> {
    let location = deltalake::Path::parse(path).map_err(|e| SinkError::Io {
        path: path.to_owned(),
        source: std::io::Error::other(e),
    })?;
    let mut file = StoreFile {
        store: table.object_store(),
        location,
        size,
    };
    let plain = ArrowReaderMetadata::load_async(&mut file, ArrowReaderOptions::new())
        .await
        .map_err(pq(path))?;
    let meta = plain.metadata().clone();
    let builder = ParquetRecordBatchStreamBuilder::new_with_metadata(file, dictionaries_of(plain))
        .with_batch_size(BATCH_ROWS);
    let mask = projection(builder.parquet_schema(), columns);
    let mut stream = builder.with_projection(mask).build().map_err(pq(path))?;
    let mut groups = Vec::new();
    while let Some(group) = stream.next_row_group().await.map_err(pq(path))? {
        groups.push(group);
    }
    Ok(FetchedColumns {
        path: path.to_owned(),
        groups,
        meta,
    })
}

/// A data file in an object store, read by ranges: the footer, then the
/// column chunks asked for (a local store reads each range on its own; a
/// remote one joins near ranges into fewer requests).
struct StoreFile {
    store: std::sync::Arc<dyn object_store::ObjectStore>,
    location: deltalake::Path,
    /// Its length, from the Delta log (so the footer is one bounded read).
    size: u64,
}

impl AsyncFileReader for StoreFile {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, ParquetResult<bytes::Bytes>> {
        Box::pin(async move {
            let got = self.store.get_range(&self.location, range).await;
            got.map_err(|e| ParquetError::External(Box::new(e)))
        })
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<Range<u64>>,
    ) -> BoxFuture<'_, ParquetResult<Vec<bytes::Bytes>>> {
        Box::pin(async move {
            let got = self.store.get_ranges(&self.location, &ranges).await;
            got.map_err(|e| ParquetError::External(Box::new(e)))
        })
    }

    fn get_metadata<'a>(
        &'a mut self,
        _options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, ParquetResult<std::sync::Arc<ParquetMetaData>>> {
        Box::pin(async move {
            // The footer of a risktail file is a few KiB: one read holds it.
            let size = self.size;
            let meta = ParquetMetaDataReader::new()
                .with_prefetch_hint(Some(64 << 10))
                .load_and_finish(self, size)
                .await?;
            Ok(std::sync::Arc::new(meta))
        })
    }
}

/// The type [`columns_in_bytes`] gives text columns.
pub fn text_dictionary() -> DataType {
    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
}

fn columns_of<R: deltalake::parquet::file::reader::ChunkReader + 'static>(
    path: &str,
    data: R,
    columns: &[&str],
) -> Result<Vec<RecordBatch>, SinkError> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(data).map_err(|e| SinkError::Io {
        path: path.to_owned(),
        source: std::io::Error::other(e),
    })?;
    project(path, builder, columns)
}

/// The batches of the named columns (those the file has) of `builder`'s
/// file, in the types [`canonical`] gives.
fn project<R: deltalake::parquet::file::reader::ChunkReader + 'static>(
    path: &str,
    builder: ParquetRecordBatchReaderBuilder<R>,
    columns: &[&str],
) -> Result<Vec<RecordBatch>, SinkError> {
    let io = |e: std::io::Error| SinkError::Io {
        path: path.to_owned(),
        source: e,
    };
    let mask = projection(builder.parquet_schema(), columns);
    let reader = builder
        .with_projection(mask)
        .build()
        .map_err(|e| io(std::io::Error::other(e)))?;
    reader
        .map(|batch| {
            let batch = batch.map_err(|e| io(std::io::Error::other(e)))?;
            canonical(batch, false).map_err(|e| io(std::io::Error::other(e)))
        })
        .collect()
}

/// `batch` with every column of risktail's tables in the Arrow type
/// `event::batch` writes: another tool's rewrite of a file (a delete or an
/// update with the Python `deltalake` package writes `Utf8View`) holds the
/// same values in another physical type, and every reader here takes one.
/// With `dictionaries`, text columns are [`text_dictionary`]s instead.
fn canonical(
    batch: RecordBatch,
    dictionaries: bool,
) -> Result<RecordBatch, deltalake::arrow::error::ArrowError> {
    use crate::event::schema::{QUARANTINE_COLUMNS, RISK_EVENT_COLUMNS};
    let schema = batch.schema();
    let want = |name: &str| {
        RISK_EVENT_COLUMNS
            .iter()
            .chain(QUARANTINE_COLUMNS.iter())
            .find(|c| c.name == name)
            .map(|c| match crate::event::batch::arrow_type(c.ty) {
                DataType::Utf8 if dictionaries => text_dictionary(),
                t => t,
            })
    };
    if schema
        .fields()
        .iter()
        .all(|f| want(f.name()).is_none_or(|t| &t == f.data_type()))
    {
        return Ok(batch);
    }
    let mut fields = Vec::with_capacity(schema.fields().len());
    let mut columns = Vec::with_capacity(schema.fields().len());
    for (f, c) in schema.fields().iter().zip(batch.columns()) {
        match want(f.name()).filter(|t| t != f.data_type()) {
            Some(t) => {
                columns.push(deltalake::arrow::compute::cast(c, &t)?);
                fields.push(Field::new(f.name(), t, f.is_nullable()));
            }
            None => {
                columns.push(c.clone());
                fields.push(f.as_ref().clone());
            }
        }
    }
    RecordBatch::try_new(std::sync::Arc::new(Schema::new(fields)), columns)
}

/// Every `event_id` in the table (for exactly-once checks).
pub async fn event_ids(uri: &str) -> Result<Vec<String>, SinkError> {
    string_column(uri, crate::event::schema::name::EVENT_ID).await
}

/// Every value of one string column of the table's current version.
pub async fn string_column(uri: &str, column: &str) -> Result<Vec<String>, SinkError> {
    let mut out = Vec::new();
    for b in table_columns(uri, &[column]).await? {
        out.extend(strings(&b, 0));
    }
    Ok(out)
}

/// The named columns of every data file of the table at `uri` (local or on
/// an object store), each file read through the table's object store.
pub async fn table_columns(uri: &str, columns: &[&str]) -> Result<Vec<RecordBatch>, SinkError> {
    let derr = |source| SinkError::Delta {
        table: uri.to_owned(),
        source: Box::new(source),
    };
    let table = super::store::open(uri).await.map_err(derr)?;
    let mut out = Vec::new();
    for path in super::store::data_paths(&table).map_err(derr)? {
        let bytes = super::store::read_file(&table, &path).await.map_err(derr)?;
        out.extend(read_bytes_columns(&path, bytes, columns)?);
    }
    Ok(out)
}

/// The string column `i` of a batch as owned strings (nulls as "").
pub fn strings(batch: &RecordBatch, i: usize) -> Vec<String> {
    let col = batch.column(i).as_string::<i32>();
    (0..col.len())
        .map(|r| {
            if col.is_null(r) {
                String::new()
            } else {
                col.value(r).to_owned()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::schema::name;
    use crate::sink::tests::{commit_rows, rt};

    /// Columns fetched by range read as they read from the whole file (as
    /// the audit reads a small file from a remote store), and only those
    /// asked for; the footer gives an integer column's least value.
    #[test]
    fn fetched_columns_read_as_the_whole_file_does() {
        let dir = tempfile::tempdir().unwrap();
        let uri = dir.path().to_str().unwrap().to_owned();
        rt().block_on(async {
            let mut log = crate::sink::tests::quarantine_log(&uri).await;
            commit_rows(&mut log, 7, 50).await;
            let table = crate::sink::store::open(&uri).await.unwrap();
            let (path, size) = {
                let snapshot = table.snapshot().unwrap();
                let f = snapshot.log_data().iter().next().unwrap();
                (f.path().to_string(), u64::try_from(f.size()).unwrap())
            };
            let columns = [name::SOURCE_OFFSET, name::REASON];
            let fetched = fetch_text_dictionaries(&table, &path, size, &columns)
                .await
                .unwrap();
            assert_eq!(fetched.path(), path);
            assert_eq!(fetched.min_i64(name::SOURCE_OFFSET), Some(7));
            assert_eq!(fetched.min_i64(name::REASON), None, "text has no i64 least");
            let got = fetched.decode().unwrap();
            let whole = crate::sink::store::read_file(&table, &path).await.unwrap();
            let in_memory = columns_in_bytes(&path, whole.clone(), &columns).unwrap();
            assert_eq!(in_memory.min_i64(name::SOURCE_OFFSET), Some(7));
            assert_eq!(in_memory.decode().unwrap(), got);

            assert_eq!(got[0].num_columns(), 2);
            assert_eq!(got.iter().map(RecordBatch::num_rows).sum::<usize>(), 50);
        });
    }
}
