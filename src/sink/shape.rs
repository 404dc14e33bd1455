//! The shape of a table's Delta log, checked against the protocol: what
//! `risktail verify` reports besides the rows. A commit written where no
//! reader looks (below the newest checkpoint, after it was written), a gap
//! in the versions a reader replays, a `_last_checkpoint` that points
//! nowhere, a data file the snapshot names that is gone or has another
//! size: each is a way rows vanish with every reader agreeing.

use deltalake::DeltaTable;

use crate::event::schema::ColumnDef;
use futures::TryStreamExt;
use std::collections::BTreeMap;

/// One thing wrong with a table's log, said so a person can act on it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Flaw {
    /// What kind: `gap`, `below_checkpoint`, `last_checkpoint`,
    /// `missing_file`, `file_size`, `protocol`, `schema`.
    pub kind: &'static str,
    /// The details (a version, a path).
    pub detail: String,
}

/// What listing `_delta_log` found.
#[derive(Debug, Default)]
struct Listing {
    /// Commit versions and when each was written (ms).
    commits: BTreeMap<u64, i64>,
    /// Checkpoint versions and when each was written (ms).
    checkpoints: BTreeMap<u64, i64>,
    /// `_last_checkpoint`'s version, if the file is there and readable.
    last_checkpoint: Option<Option<u64>>,
}

/// Checks `table`'s log: versions contiguous from the newest checkpoint, no
/// commit below it written after it, `_last_checkpoint` pointing at a
/// checkpoint that exists, every data file of the snapshot present with its
/// recorded size, and the schema (`columns`, partitioned by `partition`) and
/// protocol as risktail writes them.
pub async fn check(
    table: &DeltaTable,
    columns: &[ColumnDef],
    partition: &str,
) -> Result<Vec<Flaw>, deltalake::DeltaTableError> {
    let listing = list_log(table).await?;
    let mut flaws = log_flaws(&listing, table.version().unwrap_or_default());
    flaws.extend(file_flaws(table).await?);
    let uri = table.table_url().to_string();
    if let Err(e) = super::table::check_schema(&uri, table, columns, partition) {
        flaws.push(Flaw {
            kind: "schema",
            detail: e.to_string(),
        });
    }
    if let Err(e) = deltalake::kernel::transaction::PROTOCOL.can_write_to(table.snapshot()?) {
        flaws.push(Flaw {
            kind: "protocol",
            detail: format!("a protocol risktail cannot write: {e}"),
        });
    }
    Ok(flaws)
}

async fn list_log(table: &DeltaTable) -> Result<Listing, deltalake::DeltaTableError> {
    use object_store::ObjectStoreExt;
    let store = table.log_store().object_store(None);
    let prefix = deltalake::Path::from("_delta_log");
    let metas: Vec<_> = store.list(Some(&prefix)).try_collect().await?;
    let mut out = Listing::default();
    for m in metas {
        let name = m.location.filename().unwrap_or_default().to_owned();
        let at = m.last_modified.timestamp_millis();
        let version = |s: &str| s.split('.').next().and_then(|v| v.parse::<u64>().ok());
        if name.ends_with(".json") && !name.starts_with('_') {
            if let Some(v) = version(&name) {
                out.commits.insert(v, at);
            }
        } else if name.contains(".checkpoint.") && name.ends_with(".parquet") {
            if let Some(v) = version(&name) {
                out.checkpoints.entry(v).or_insert(at);
            }
        } else if name == "_last_checkpoint" {
            let got = store.get(&m.location).await?.bytes().await?;
            let v = serde_json::from_slice::<serde_json::Value>(&got)
                .ok()
                .and_then(|j| j.get("version").and_then(|v| v.as_u64()));
            out.last_checkpoint = Some(v);
        }
    }
    Ok(out)
}

fn log_flaws(l: &Listing, head: u64) -> Vec<Flaw> {
    let mut flaws = Vec::new();
    let newest = l.checkpoints.iter().next_back().map(|(v, at)| (*v, *at));
    let from = newest.map_or(0, |(v, _)| v + 1);
    let missing: Vec<u64> = (from..=head)
        .filter(|v| !l.commits.contains_key(v))
        .collect();
    if !missing.is_empty() {
        flaws.push(Flaw {
            kind: "gap",
            detail: format!("versions a reader replays are missing: {missing:?}"),
        });
    }
    if let Some((c, written)) = newest {
        for (v, at) in l.commits.range(..c) {
            if *at > written {
                flaws.push(Flaw {
                    kind: "below_checkpoint",
                    detail: format!(
                        "version {v} was written after the checkpoint at {c}: its rows are where no reader looks"
                    ),
                });
            }
        }
    }
    match (&l.last_checkpoint, newest) {
        (Some(None), _) => flaws.push(Flaw {
            kind: "last_checkpoint",
            detail: "_last_checkpoint cannot be read".into(),
        }),
        (Some(Some(v)), _) if !l.checkpoints.contains_key(v) => flaws.push(Flaw {
            kind: "last_checkpoint",
            detail: format!("_last_checkpoint names version {v}, which has no checkpoint"),
        }),
        (None, Some((c, _))) => flaws.push(Flaw {
            kind: "last_checkpoint",
            detail: format!("no _last_checkpoint beside the checkpoint at {c}"),
        }),
        _ => {}
    }
    flaws
}

async fn file_flaws(table: &DeltaTable) -> Result<Vec<Flaw>, deltalake::DeltaTableError> {
    use object_store::ObjectStoreExt;
    let store = table.object_store();
    let mut flaws = Vec::new();
    let files: Vec<(String, i64)> = table
        .snapshot()?
        .log_data()
        .iter()
        .map(|f| (f.path().into_owned(), f.size()))
        .collect();
    for (path, size) in files {
        let location = deltalake::Path::parse(&path)
            .map_err(|e| deltalake::DeltaTableError::Generic(e.to_string()))?;
        match store.head(&location).await {
            Ok(meta) if meta.size as i64 != size => flaws.push(Flaw {
                kind: "file_size",
                detail: format!("{path}: {} bytes, the log says {size}", meta.size),
            }),
            Ok(_) => {}
            Err(object_store::Error::NotFound { .. }) => flaws.push(Flaw {
                kind: "missing_file",
                detail: format!("{path}: named by the log, not in storage"),
            }),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(flaws)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_commit_below_the_checkpoint_written_after_it_is_a_flaw() {
        let mut l = Listing::default();
        for v in 0..=60 {
            l.commits.insert(v, 1_000 + v as i64);
        }
        l.checkpoints.insert(49, 1_049);
        l.last_checkpoint = Some(Some(49));
        assert!(log_flaws(&l, 60).is_empty());
        l.commits.insert(3, 2_000); // a stale writer's commit, landed late
        let flaws = log_flaws(&l, 60);
        assert_eq!(flaws.len(), 1);
        assert_eq!(flaws[0].kind, "below_checkpoint");
        l.commits.remove(&55);
        assert!(log_flaws(&l, 60).iter().any(|f| f.kind == "gap"));
        l.last_checkpoint = Some(Some(99));
        assert!(
            log_flaws(&l, 60)
                .iter()
                .any(|f| f.kind == "last_checkpoint")
        );
    }
}
