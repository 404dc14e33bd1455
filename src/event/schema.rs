//! The one definition of the two tables' columns: names, order, types and
//! nullability. The Arrow schema, the Delta schema, the JSON printed by
//! `risktail parse` and the schema check on an existing table all derive from
//! these lists, so the contract in `risk-events-schema.md` is written down once.

/// The logical type of a column; maps to one Arrow and one Delta type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColType {
    /// Arrow `Utf8`, Delta `string`.
    Utf8,
    /// Arrow `Timestamp(Microsecond, "UTC")`, Delta `timestamp` (never `timestamp_ntz`).
    TimestampUtc,
    /// Arrow `Int32`, Delta `integer`.
    Int32,
    /// Arrow `Int64`, Delta `long`.
    Int64,
    /// Arrow `Float64`, Delta `double`.
    Float64,
    /// Arrow `Boolean`, Delta `boolean`.
    Boolean,
    /// Arrow `Date32`, Delta `date`.
    Date32,
}

/// One column of a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColumnDef {
    /// Column name as readers see it.
    pub name: &'static str,
    /// Its type.
    pub ty: ColType,
    /// Whether it may be null.
    pub nullable: bool,
}

const fn col(name: &'static str, ty: ColType, nullable: bool) -> ColumnDef {
    ColumnDef { name, ty, nullable }
}

use ColType::*;

/// The 28 columns of `risk_events`, in the audited order.
pub const RISK_EVENT_COLUMNS: [ColumnDef; 28] = [
    col("event_id", Utf8, false),
    col("event_type", Utf8, false),
    col("component", Utf8, false),
    col("timestamp", TimestampUtc, false),
    col("execution_id", Utf8, true),
    col("old_state", Utf8, true),
    col("new_state", Utf8, true),
    col("failure_count", Int32, true),
    col("entry_premium", Float64, true),
    col("current_premium", Float64, true),
    col("highest_premium", Float64, true),
    col("stop_premium", Float64, true),
    col("action", Utf8, true),
    col("limit_type", Utf8, true),
    col("current_value", Float64, true),
    col("limit_value", Float64, true),
    col("allowed", Boolean, true),
    col("rejection_reason", Utf8, true),
    col("metadata", Utf8, true),
    col("symbol", Utf8, true),
    col("level", Utf8, true),
    col("logger", Utf8, true),
    col("source", Utf8, false),
    col("source_file", Utf8, false),
    col("source_offset", Int64, false),
    col("raw_line", Utf8, false),
    col("ingested_at", TimestampUtc, false),
    col("event_date", Date32, false),
];

/// The columns of `risk_events_quarantine`: the six the schema page names, then
/// `detail` (the human explanation behind `reason`) and `line_bytes` (the
/// original length, since `raw_line` is truncated to 64 KiB) and the partition
/// column `ingest_date`, so a long-running daemon's quarantine stays prunable.
pub const QUARANTINE_COLUMNS: [ColumnDef; 9] = [
    col("source", Utf8, false),
    col("source_file", Utf8, false),
    col("source_offset", Int64, false),
    col("raw_line", Utf8, false),
    col("reason", Utf8, false),
    col("ingested_at", TimestampUtc, false),
    col("detail", Utf8, true),
    col("line_bytes", Int64, false),
    col("ingest_date", Date32, false),
];

/// Partition column of `risk_events`.
pub const EVENT_PARTITION: &str = "event_date";
/// Partition column of `risk_events_quarantine`.
pub const QUARANTINE_PARTITION: &str = "ingest_date";

/// `raw_line` of a quarantine record is cut to this many bytes.
pub const QUARANTINE_RAW_LINE_MAX: usize = 64 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_names_are_unique_and_partition_exists() {
        for cols in [&RISK_EVENT_COLUMNS[..], &QUARANTINE_COLUMNS[..]] {
            let mut names: Vec<_> = cols.iter().map(|c| c.name).collect();
            names.sort_unstable();
            names.dedup();
            assert_eq!(names.len(), cols.len());
        }
        assert!(RISK_EVENT_COLUMNS.iter().any(|c| c.name == EVENT_PARTITION));
        assert!(
            QUARANTINE_COLUMNS
                .iter()
                .any(|c| c.name == QUARANTINE_PARTITION)
        );
    }

    #[test]
    fn first_nineteen_are_the_audited_schema() {
        let names: Vec<_> = RISK_EVENT_COLUMNS[..19].iter().map(|c| c.name).collect();
        assert_eq!(names[0], "event_id");
        assert_eq!(names[3], "timestamp");
        assert_eq!(names[18], "metadata");
    }
}
