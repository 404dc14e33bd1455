//! Reading the table back without DataFusion: the current snapshot's data
//! files, read with the `parquet` crate deltalake already brings, projecting
//! only the columns asked for. Used by `status`-like tools and by tests that
//! must count rows while a daemon writes.

use deltalake::arrow::array::{Array, AsArray};
use deltalake::arrow::record_batch::RecordBatch;
use deltalake::parquet::arrow::ProjectionMask;
use deltalake::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::SinkError;

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

fn columns_of<R: deltalake::parquet::file::reader::ChunkReader + 'static>(
    path: &str,
    data: R,
    columns: &[&str],
) -> Result<Vec<RecordBatch>, SinkError> {
    let io = |e: std::io::Error| SinkError::Io {
        path: path.to_owned(),
        source: e,
    };
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(data).map_err(|e| io(std::io::Error::other(e)))?;
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
    let mut out = Vec::new();
    for batch in reader {
        out.push(batch.map_err(|e| io(std::io::Error::other(e)))?);
    }
    Ok(out)
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
