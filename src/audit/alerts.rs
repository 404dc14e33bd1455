//! The engine's own alerts table (`[audit] alerts_uri`): it records every
//! CLOSE decision with the rule that made it (`TrailingStop`, `TakeProfit`,
//! `StopLoss`, …), which the risk lines do not say. `report` uses it to tell
//! how each trailing stop's position was closed.
//!
//! Read columns: `type`, `rule`, `symbol`, `strategy_id`, `created_at` (the
//! others, `alert_id`, `severity`, `status`, `title`, `message`, `metadata`,
//! are not needed). A row is an exit when its `type` is `CLOSE` (any case)
//! and it names a `rule`. A stop is matched to the first exit at or after it
//! was added whose `strategy_id` is the stop's execution id; failing that, to
//! the first exit of its symbol at or after its last event; each exit closes
//! one stop. A stop with neither is counted as unmatched, never guessed.

use chrono::{DateTime, Utc};
use deltalake::arrow::array::{Array, AsArray, RecordBatch};
use deltalake::arrow::compute::cast;
use deltalake::arrow::datatypes::{DataType, TimeUnit, TimestampMicrosecondType};
use std::collections::{HashMap, HashSet};

use super::AuditError;
use super::stops::Stop;
use crate::sink::read;

/// One CLOSE decision.
#[derive(Debug, Clone, PartialEq)]
pub struct Exit {
    /// Its rule.
    pub rule: String,
    /// The instrument.
    pub symbol: Option<String>,
    /// The execution or strategy it closed.
    pub strategy_id: Option<String>,
    /// When it was decided.
    pub at: DateTime<Utc>,
}

/// The exits of an alerts table, indexed for matching stops to them.
#[derive(Debug, Default)]
pub struct Exits {
    by_strategy: HashMap<String, Vec<usize>>,
    by_symbol: HashMap<String, Vec<usize>>,
    all: Vec<Exit>,
    taken: HashSet<usize>,
}

impl Exits {
    /// Reads the CLOSE decisions of the Delta table at `uri` (local or on an
    /// object store).
    pub async fn load(uri: &str) -> Result<Exits, AuditError> {
        let cols = ["type", "rule", "symbol", "strategy_id", "created_at"];
        let mut all = Vec::new();
        for b in read::table_columns(uri, &cols).await? {
            all.extend(exits_of(&b).map_err(|source| AuditError::Alerts {
                table: uri.to_owned(),
                source,
            })?);
        }
        Ok(Exits::new(all))
    }

    /// Indexes exits (any order).
    pub fn new(mut all: Vec<Exit>) -> Exits {
        all.sort_by_key(|e| e.at);
        let mut x = Exits {
            all,
            ..Exits::default()
        };
        for (i, e) in x.all.iter().enumerate() {
            if let Some(s) = &e.strategy_id {
                x.by_strategy.entry(s.clone()).or_default().push(i);
            }
            if let Some(s) = &e.symbol {
                x.by_symbol.entry(s.clone()).or_default().push(i);
            }
        }
        x
    }

    /// The rule that closed `stop`'s position, if an exit matches it (each
    /// exit closes one stop).
    pub fn rule_of(&mut self, stop: &Stop) -> Option<String> {
        let free = |taken: &HashSet<usize>, all: &[Exit], i: &usize, from: DateTime<Utc>| {
            !taken.contains(i) && all[*i].at >= from
        };
        let by_id = stop
            .execution_id
            .as_ref()
            .and_then(|id| self.by_strategy.get(&**id))
            .and_then(|v| {
                v.iter()
                    .find(|i| free(&self.taken, &self.all, i, stop.added_at))
                    .copied()
            });
        let last = stop.last_at();
        let i = by_id.or_else(|| {
            let sym = stop.symbol.as_ref()?;
            self.by_symbol
                .get(&**sym)?
                .iter()
                .find(|i| free(&self.taken, &self.all, i, last))
                .copied()
        })?;
        self.taken.insert(i);
        Some(self.all[i].rule.clone())
    }
}

/// A column of the engine's alerts table that is missing or cannot be read
/// as the audit needs it.
#[derive(Debug, thiserror::Error)]
#[error("column {column}: {problem}")]
pub struct ColumnProblem {
    /// The column.
    pub column: &'static str,
    /// What is wrong with it.
    pub problem: String,
}

fn missing(column: &'static str) -> ColumnProblem {
    ColumnProblem {
        column,
        problem: "not in the table".into(),
    }
}

/// The CLOSE rows of one batch.
fn exits_of(b: &RecordBatch) -> Result<Vec<Exit>, ColumnProblem> {
    let text = |name: &'static str| -> Result<Option<Vec<Option<String>>>, ColumnProblem> {
        let Some(col) = b.column_by_name(name) else {
            return Ok(None);
        };
        let col = cast(col, &DataType::Utf8).map_err(|e| ColumnProblem {
            column: name,
            problem: e.to_string(),
        })?;
        let s = col.as_string::<i32>();
        Ok(Some(
            (0..s.len())
                .map(|i| (!s.is_null(i)).then(|| s.value(i).to_owned()))
                .collect(),
        ))
    };
    let rule = text("rule")?.ok_or_else(|| missing("rule"))?;
    let kind = text("type")?.ok_or_else(|| missing("type"))?;
    let symbol = text("symbol")?.unwrap_or_else(|| vec![None; b.num_rows()]);
    let strategy = text("strategy_id")?.unwrap_or_else(|| vec![None; b.num_rows()]);
    let created = b
        .column_by_name("created_at")
        .ok_or_else(|| missing("created_at"))?;
    let created = cast(
        created,
        &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
    )
    .map_err(|e| ColumnProblem {
        column: "created_at",
        problem: e.to_string(),
    })?;
    let created = created.as_primitive::<TimestampMicrosecondType>();
    let mut out = Vec::new();
    for i in 0..b.num_rows() {
        let (Some(r), Some(k)) = (&rule[i], &kind[i]) else {
            continue;
        };
        if !k.eq_ignore_ascii_case("close") || created.is_null(i) {
            continue;
        }
        let Some(at) = DateTime::from_timestamp_micros(created.value(i)) else {
            continue;
        };
        out.push(Exit {
            rule: r.clone(),
            symbol: symbol[i].clone(),
            strategy_id: strategy[i].clone(),
            at,
        });
    }
    Ok(out)
}
