//! Reading the table back without DataFusion: the current snapshot's data
//! files, read with the `parquet` crate deltalake already brings, projecting
//! only the columns asked for. Used by the audit (text as dictionaries),
//! `verify`, compaction and by tests that must count rows while a daemon
//! writes.

use deltalake::arrow::array::{Array, AsArray};
use deltalake::arrow::datatypes::{DataType, Field, Schema};
use deltalake::arrow::record_batch::RecordBatch;
use deltalake::parquet::arrow::ProjectionMask;
use deltalake::parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};

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
/// (`Int32` keys into `Utf8` values): the Parquet file's own dictionary
/// pages come through as they are, so a reader that makes one value per
/// distinct string (the audit, over millions of rows holding a few thousand
/// distinct ids and a handful of states) neither copies nor allocates per row.
/// Other columns come in the types [`read_bytes_columns`] gives.
pub fn read_bytes_text_dictionaries(
    path: &str,
    bytes: bytes::Bytes,
    columns: &[&str],
) -> Result<Vec<RecordBatch>, SinkError> {
    let io = |e: deltalake::parquet::errors::ParquetError| SinkError::Io {
        path: path.to_owned(),
        source: std::io::Error::other(e),
    };
    let plain = ArrowReaderMetadata::load(&bytes, ArrowReaderOptions::new()).map_err(io)?;
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
    let meta = ArrowReaderMetadata::try_new(plain.metadata().clone(), options).unwrap_or(plain);
    // Batches of up to 64 Ki rows, not the reader's 1,024: each batch is
    // a new view of every column's dictionary, and the audit's decoding
    // starts afresh per batch (the year's report: 0.94x the time).
    let builder =
        ParquetRecordBatchReaderBuilder::new_with_metadata(bytes, meta).with_batch_size(1 << 16);
    project(path, builder, columns, true)
}

/// The type [`read_bytes_text_dictionaries`] gives text columns.
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
    project(path, builder, columns, false)
}

/// The batches of the named columns (those the file has) of `builder`'s
/// file, in the types [`canonical`] gives.
fn project<R: deltalake::parquet::file::reader::ChunkReader + 'static>(
    path: &str,
    builder: ParquetRecordBatchReaderBuilder<R>,
    columns: &[&str],
    dictionaries: bool,
) -> Result<Vec<RecordBatch>, SinkError> {
    let io = |e: std::io::Error| SinkError::Io {
        path: path.to_owned(),
        source: e,
    };
    let schema = builder.parquet_schema();
    let indices: Vec<usize> = columns
        .iter()
        .filter_map(|c| schema.columns().iter().position(|d| d.name() == *c))
        .collect();
    let mask = ProjectionMask::leaves(schema, indices);
    let reader = builder
        .with_projection(mask)
        .build()
        .map_err(|e| io(std::io::Error::other(e)))?;
    reader
        .map(|batch| {
            let batch = batch.map_err(|e| io(std::io::Error::other(e)))?;
            canonical(batch, dictionaries).map_err(|e| io(std::io::Error::other(e)))
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
