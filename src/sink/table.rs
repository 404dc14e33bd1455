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

/// Table properties, and why:
/// - appendOnly: an audit table; keeps protocol 1/2 and forbids deletes by accident.
/// - checkpointInterval 50: opening stays fast for a daemon committing every second.
/// - logRetentionDuration 2 hours: every load of the table lists
///   `_delta_log` (a restart, `status`, `report`, and the daemon's upkeep,
///   which reloads it every 50 commits), and on a local file system that
///   walks the whole folder. Measured (`benches/log_length`, docs/PERFORMANCE.md):
///   a load takes 70 ms with the 7,200 entries of 2 hours at one commit a
///   second, 1.0 s with 3 days' and 5.5 s with 30 days'; the daemon's CPU
///   per commit with its upkeep goes from 12.7 ms to 73 ms at 3 days. The
///   rows themselves are kept forever (the table is append-only); what the
///   retention bounds is time travel to old versions. A value the team sets
///   is kept, and a writer paused past it reloads before committing (see
///   `sink::delta_log`).
/// - setTransactionRetentionDuration 3650 days: a file's offset must outlive any
///   plausible backfill of its rotated `.gz` copy, or the copy would be re-read.
fn properties() -> [(TableProperty, &'static str); 4] {
    [
        (TableProperty::AppendOnly, "true"),
        (TableProperty::CheckpointInterval, "50"),
        (TableProperty::LogRetentionDuration, "interval 2 hours"),
        (
            TableProperty::SetTransactionRetentionDuration,
            "interval 3650 days",
        ),
    ]
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
    let mut table = store::table(uri).map_err(err)?;
    match table.load().await {
        Ok(()) => {
            check_schema(uri, &table, columns, partition)?;
            Ok(table)
        }
        Err(DeltaTableError::NotATable(_)) => {
            let mut create = table
                .create()
                .with_table_name(name)
                .with_comment("risk events of the trading engine, written by risktail")
                .with_columns(
                    columns
                        .iter()
                        .map(|c| StructField::new(c.name, delta_type(c.ty), c.nullable)),
                )
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
        Err(e) => Err(err(e)),
    }
}

/// Refuses a table whose columns (names, order, types, nullability) or
/// partitioning differ from the contract.
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
    let mut diffs = Vec::new();
    let have: Vec<&StructField> = schema.fields().collect();
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
    for f in &have {
        if !columns.iter().any(|c| c.name == f.name()) {
            diffs.push(format!("{} is not in risktail's schema", f.name()));
        }
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
