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

/// Every column's name, once: code that reads or writes a column by name
/// takes it from here, never from a literal.
pub mod name {
    /// `event_id`.
    pub const EVENT_ID: &str = "event_id";
    /// `event_type`.
    pub const EVENT_TYPE: &str = "event_type";
    /// `component`.
    pub const COMPONENT: &str = "component";
    /// `timestamp`.
    pub const TIMESTAMP: &str = "timestamp";
    /// `execution_id`.
    pub const EXECUTION_ID: &str = "execution_id";
    /// `old_state`.
    pub const OLD_STATE: &str = "old_state";
    /// `new_state`.
    pub const NEW_STATE: &str = "new_state";
    /// `failure_count`.
    pub const FAILURE_COUNT: &str = "failure_count";
    /// `entry_premium`.
    pub const ENTRY_PREMIUM: &str = "entry_premium";
    /// `current_premium`.
    pub const CURRENT_PREMIUM: &str = "current_premium";
    /// `highest_premium`.
    pub const HIGHEST_PREMIUM: &str = "highest_premium";
    /// `stop_premium`.
    pub const STOP_PREMIUM: &str = "stop_premium";
    /// `action`.
    pub const ACTION: &str = "action";
    /// `limit_type`.
    pub const LIMIT_TYPE: &str = "limit_type";
    /// `current_value`.
    pub const CURRENT_VALUE: &str = "current_value";
    /// `limit_value`.
    pub const LIMIT_VALUE: &str = "limit_value";
    /// `allowed`.
    pub const ALLOWED: &str = "allowed";
    /// `rejection_reason`.
    pub const REJECTION_REASON: &str = "rejection_reason";
    /// `metadata`.
    pub const METADATA: &str = "metadata";
    /// `symbol`.
    pub const SYMBOL: &str = "symbol";
    /// `level`.
    pub const LEVEL: &str = "level";
    /// `logger`.
    pub const LOGGER: &str = "logger";
    /// `source`.
    pub const SOURCE: &str = "source";
    /// `source_file`.
    pub const SOURCE_FILE: &str = "source_file";
    /// `source_offset`.
    pub const SOURCE_OFFSET: &str = "source_offset";
    /// `raw_line`.
    pub const RAW_LINE: &str = "raw_line";
    /// `ingested_at`.
    pub const INGESTED_AT: &str = "ingested_at";
    /// `event_date`.
    pub const EVENT_DATE: &str = "event_date";
    /// `reason`.
    pub const REASON: &str = "reason";
    /// `detail`.
    pub const DETAIL: &str = "detail";
    /// `line_bytes`.
    pub const LINE_BYTES: &str = "line_bytes";
    /// `ingest_date`.
    pub const INGEST_DATE: &str = "ingest_date";
    /// `line_id`.
    pub const LINE_ID: &str = "line_id";
}

/// The 28 columns of `risk_events`, in the audited order.
pub const RISK_EVENT_COLUMNS: [ColumnDef; 28] = [
    col(name::EVENT_ID, Utf8, false),
    col(name::EVENT_TYPE, Utf8, false),
    col(name::COMPONENT, Utf8, false),
    col(name::TIMESTAMP, TimestampUtc, false),
    col(name::EXECUTION_ID, Utf8, true),
    col(name::OLD_STATE, Utf8, true),
    col(name::NEW_STATE, Utf8, true),
    col(name::FAILURE_COUNT, Int32, true),
    col(name::ENTRY_PREMIUM, Float64, true),
    col(name::CURRENT_PREMIUM, Float64, true),
    col(name::HIGHEST_PREMIUM, Float64, true),
    col(name::STOP_PREMIUM, Float64, true),
    col(name::ACTION, Utf8, true),
    col(name::LIMIT_TYPE, Utf8, true),
    col(name::CURRENT_VALUE, Float64, true),
    col(name::LIMIT_VALUE, Float64, true),
    col(name::ALLOWED, Boolean, true),
    col(name::REJECTION_REASON, Utf8, true),
    col(name::METADATA, Utf8, true),
    col(name::SYMBOL, Utf8, true),
    col(name::LEVEL, Utf8, true),
    col(name::LOGGER, Utf8, true),
    col(name::SOURCE, Utf8, false),
    col(name::SOURCE_FILE, Utf8, false),
    col(name::SOURCE_OFFSET, Int64, false),
    col(name::RAW_LINE, Utf8, false),
    col(name::INGESTED_AT, TimestampUtc, false),
    col(name::EVENT_DATE, Date32, false),
];

/// The columns of `risk_events_quarantine`: the six the schema page names, then
/// `detail` (the human explanation behind `reason`) and `line_bytes` (the
/// original length, since `raw_line` is truncated to 64 KiB) and the partition
/// column `ingest_date`, so a long-running daemon's quarantine stays prunable;
/// last `line_id`, the line's identity (as `event_id`: the file's identity and
/// the offset), added by this release at the end so tables of earlier ones,
/// which lack it, stay readable and writable ([`ADDED_LATER`]).
pub const QUARANTINE_COLUMNS: [ColumnDef; 10] = [
    col(name::SOURCE, Utf8, false),
    col(name::SOURCE_FILE, Utf8, false),
    col(name::SOURCE_OFFSET, Int64, false),
    col(name::RAW_LINE, Utf8, false),
    col(name::REASON, Utf8, false),
    col(name::INGESTED_AT, TimestampUtc, false),
    col(name::DETAIL, Utf8, true),
    col(name::LINE_BYTES, Int64, false),
    col(name::INGEST_DATE, Date32, false),
    col(name::LINE_ID, Utf8, true),
];

/// Columns a release added at the end of a table (nullable): a table created
/// before lacks them and is written without them until `risktail migrate`
/// adds them; readers see them empty in the rows written before.
pub const ADDED_LATER: [&str; 1] = [name::LINE_ID];

/// `columns` without the trailing ones a table of an earlier release lacks
/// ([`ADDED_LATER`]).
pub fn without_added_later(columns: &[ColumnDef]) -> &[ColumnDef] {
    let mut n = columns.len();
    while n > 0 && ADDED_LATER.contains(&columns[n - 1].name) {
        n -= 1;
    }
    &columns[..n]
}

/// Partition column of `risk_events`.
pub const EVENT_PARTITION: &str = name::EVENT_DATE;
/// Partition column of `risk_events_quarantine`.
pub const QUARANTINE_PARTITION: &str = name::INGEST_DATE;

/// `raw_line` of a quarantine record is cut to this many bytes: what the line
/// reader keeps of an oversize line, so nothing kept is cut again.
pub const QUARANTINE_RAW_LINE_MAX: usize = crate::source::reader::KEPT_PREFIX_MAX;

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
