//! Opening and creating the two tables. A table is created on first use with
//! the schema of [`crate::event::schema`], Delta reader 1 / writer 2 and
//! properties fit for an append-only audit table; an existing table whose
//! schema differs is refused with the columns that differ, never widened.

use deltalake::kernel::{DataType, PrimitiveType, StructField};
use deltalake::{DeltaTable, DeltaTableError, TableProperty};

use super::error::SinkError;
use super::store;
use crate::event::schema::{ColType, ColumnDef};

fn delta_type(t: ColType) -> DataType {
    DataType::Primitive(match t {
        ColType::Utf8 => PrimitiveType::String,
        ColType::TimestampUtc => PrimitiveType::Timestamp,
        ColType::Int32 => PrimitiveType::Integer,
        ColType::Int64 => PrimitiveType::Long,
        ColType::Float64 => PrimitiveType::Double,
        ColType::Boolean => PrimitiveType::Boolean,
        ColType::Date32 => PrimitiveType::Date,
    })
}

/// The Delta field of a column.
pub(super) fn field(c: &ColumnDef) -> StructField {
    StructField::new(c.name, delta_type(c.ty), c.nullable)
}

/// Table properties, and why:
/// - appendOnly: an audit table; keeps protocol 1/2 and forbids deletes by accident.
/// - checkpointInterval 50: opening stays fast for a daemon committing every second.
/// - logRetentionDuration 30 days, Delta's own default: how far back time
///   travel reaches, on a table whose purpose is audit. At one commit a
///   second that is 2.6 million log entries; risktail never lists them (a
///   local log is read by name from its newest checkpoint, and cleanup walks
///   versions by name: `sink::log_names`), so loads and commits cost what
///   they cost at 2 hours (`benches/log_length`, docs/PERFORMANCE.md). A
///   value the team sets is kept; the defaults of earlier releases are
///   raised to this one at the next start ([`OLD_DEFAULT_RETENTIONS`]).
/// - setTransactionRetentionDuration 3650 days: a file's offset must outlive any
///   plausible backfill of its rotated `.gz` copy, or the copy would be re-read.
fn properties() -> [(TableProperty, &'static str); 4] {
    [
        (TableProperty::AppendOnly, "true"),
        (TableProperty::CheckpointInterval, "50"),
        (TableProperty::LogRetentionDuration, LOG_RETENTION),
        (
            TableProperty::SetTransactionRetentionDuration,
            "interval 3650 days",
        ),
    ]
}

/// The log retention of a table risktail creates.
pub const LOG_RETENTION: &str = "interval 30 days";

/// `logRetentionDuration` values earlier releases gave the tables they
/// created (2 days, then 2 hours while every load listed the log). A table
/// that still holds one gets [`LOG_RETENTION`] when a writer opens it.
pub const OLD_DEFAULT_RETENTIONS: [&str; 2] = ["interval 2 hours", "interval 2 days"];

/// Raises an earlier release's default log retention to [`LOG_RETENTION`]
/// (a `SET TBLPROPERTIES` commit), for a writer (`run`, `backfill`) before
/// its first write; any other value is the team's and stays.
/// A failure (another writer doing the same at the same moment) is logged
/// and leaves the table as it is: the retention bounds time travel, not rows.
pub(super) async fn raise_old_retention(
    uri: &str,
    table: DeltaTable,
) -> Result<DeltaTable, SinkError> {
    let key = TableProperty::LogRetentionDuration.as_ref().to_owned();
    let current = table
        .snapshot()
        .ok()
        .and_then(|s| s.metadata().configuration().get(&key).cloned());
    let Some(old) = current.filter(|v| OLD_DEFAULT_RETENTIONS.contains(&v.as_str())) else {
        return Ok(table);
    };
    let set = table
        .clone()
        .set_tbl_properties()
        .with_properties([(key, LOG_RETENTION.to_owned())].into())
        .with_commit_properties(
            deltalake::kernel::transaction::CommitProperties::default()
                .with_cleanup_expired_logs(Some(false)),
        )
        .await;
    match set {
        Ok(t) => {
            tracing::info!(
                table = uri,
                from = old,
                to = LOG_RETENTION,
                "raised the log retention of an earlier release's default"
            );
            Ok(t)
        }
        Err(e) => {
            tracing::warn!(table = uri, error = %e, "could not raise the log retention; left as it is");
            store::open(uri).await.map_err(|source| SinkError::Delta {
                table: uri.to_owned(),
                source: Box::new(source),
            })
        }
    }
}

/// Opens the table at `uri`, creating it (and its folder) if there is none.
pub async fn open_or_create(
    uri: &str,
    name: &str,
    columns: &[ColumnDef],
    partition: &str,
) -> Result<DeltaTable, SinkError> {
    let err = |source: DeltaTableError| SinkError::Delta {
        table: uri.to_owned(),
        source: Box::new(source),
    };
    if !uri.contains("://") {
        std::fs::create_dir_all(uri).map_err(|source| SinkError::Io {
            path: uri.to_owned(),
            source,
        })?;
    }
    match load(uri, columns, partition).await? {
        Ok(table) => Ok(table),
        Err(table) => {
            let mut create = table
                .create()
                .with_table_name(name)
                .with_comment("risk events of the trading engine, written by risktail")
                .with_columns(columns.iter().map(field))
                .with_partition_columns([partition]);
            for (k, v) in properties() {
                create = create.with_configuration_property(k, Some(v));
            }
            // No retries: a creation that loses the race to another writer
            // must fail, not land as a later version that replaces the
            // winner's metadata (delta-rs's commit loop would do that).
            let create = create.with_commit_properties(
                deltalake::kernel::transaction::CommitProperties::default().with_max_retries(0),
            );
            match create.await {
                Ok(t) => Ok(t),
                // Another process created it between our load and create: the
                // loser adopts the winner's table when its schema is ours.
                Err(_) => {
                    let t = store::open(uri).await.map_err(err)?;
                    check_schema(uri, &t, columns, partition)?;
                    Ok(t)
                }
            }
        }
    }
}

/// The table at `uri`, loaded and checked against the contract; `Err` of
/// the unloaded table when there is none (for the caller to create, or not).
async fn load(
    uri: &str,
    columns: &[ColumnDef],
    partition: &str,
) -> Result<Result<DeltaTable, DeltaTable>, SinkError> {
    let err = |source: DeltaTableError| SinkError::Delta {
        table: uri.to_owned(),
        source: Box::new(source),
    };
    let mut table = store::table(uri).map_err(err)?;
    match table.load().await {
        Ok(()) => {
            check_schema(uri, &table, columns, partition)?;
            Ok(Ok(table))
        }
        Err(DeltaTableError::NotATable(_)) => Ok(Err(table)),
        Err(e) => Err(err(e)),
    }
}

/// The table at `uri` for a reader: never created (a status check with a
/// mistyped uri must not leave a table, or an empty folder, behind);
/// [`SinkError::NoTable`] when there is none.
pub async fn open_existing(
    uri: &str,
    columns: &[ColumnDef],
    partition: &str,
) -> Result<DeltaTable, SinkError> {
    let no_table = || SinkError::NoTable {
        table: uri.to_owned(),
    };
    if !uri.contains("://") && !std::path::Path::new(uri).is_dir() {
        return Err(no_table());
    }
    load(uri, columns, partition).await?.map_err(|_| no_table())
}

/// Refuses a table whose columns (names, order, types, nullability) or
/// partitioning differ from the contract. A table an earlier release created
/// may lack the trailing columns added since (`schema::ADDED_LATER`): it is
/// written without them (see `sink::stage_into`) until `risktail migrate`
/// adds them.
pub(crate) fn check_schema(
    uri: &str,
    table: &DeltaTable,
    columns: &[ColumnDef],
    partition: &str,
) -> Result<(), SinkError> {
    let err = |source: DeltaTableError| SinkError::Delta {
        table: uri.to_owned(),
        source: Box::new(source),
    };
    let snapshot = table.snapshot().map_err(err)?;
    let schema = snapshot.schema();
    let have: Vec<&StructField> = schema.fields().collect();
    let mut diffs = column_diffs(&have, columns);
    let older = crate::event::schema::without_added_later(columns);
    if !diffs.is_empty() && older.len() < columns.len() && column_diffs(&have, older).is_empty() {
        diffs.clear();
    }
    let parts = snapshot.metadata().partition_columns();
    if parts.len() != 1 || parts[0] != partition {
        diffs.push(format!(
            "partitioned by {parts:?}, expected [{partition:?}]"
        ));
    }
    if diffs.is_empty() {
        Ok(())
    } else {
        Err(SinkError::SchemaMismatch {
            table: uri.to_owned(),
            diffs,
        })
    }
}

/// How the table's columns `have` differ from `columns`.
fn column_diffs(have: &[&StructField], columns: &[ColumnDef]) -> Vec<String> {
    let mut diffs = Vec::new();
    for (i, c) in columns.iter().enumerate() {
        match have.iter().position(|f| f.name() == c.name) {
            None => diffs.push(format!("{} is missing", c.name)),
            Some(j) => {
                let f = have[j];
                if f.data_type() != &delta_type(c.ty) {
                    diffs.push(format!(
                        "{} is {:?}, expected {:?}",
                        c.name,
                        f.data_type(),
                        delta_type(c.ty)
                    ));
                } else if f.is_nullable() != c.nullable {
                    diffs.push(format!(
                        "{} is {}nullable, expected {}nullable",
                        c.name,
                        if f.is_nullable() { "" } else { "not " },
                        if c.nullable { "" } else { "not " }
                    ));
                } else if i != j {
                    diffs.push(format!(
                        "{} is column {}, expected {}",
                        c.name,
                        j + 1,
                        i + 1
                    ));
                }
            }
        }
    }
    for f in have {
        if !columns.iter().any(|c| c.name == f.name()) {
            diffs.push(format!("{} is not in risktail's schema", f.name()));
        }
    }
    diffs
}
