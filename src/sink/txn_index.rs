//! Every `txn` of a table at one version, read in one pass over its log: the
//! newest checkpoint's `txn` column, then each commit after it.
//!
//! Why: the kernel answers one app id at a time, and an id it does not find
//! in the newest commits costs a replay of the whole log segment (the
//! checkpoint and every commit after it, each a request on an object
//! store). `status` asks for three ids per file on disk: with a hundred
//! rotated files on S3 that was 300 replays and up to 100 s. One pass is
//! one request per commit since the checkpoint, and the checkpoint once.
//!
//! The answer is the kernel's: the newest `txn` of each app id, dropped when
//! `delta.setTransactionRetentionDuration` has expired it (its `lastUpdated`
//! at or before now minus the retention). Only a log this pass can read
//! exactly is answered; anything else (a V2 or multi-file checkpoint, a
//! commit already cleaned up, a checkpoint newer than the version asked
//! for) answers `None` and the caller asks the kernel id by id. So does a
//! table with more than [`MAX_TXNS`] app ids (an engine rotating every
//! second for months leaves millions): the map would cost more memory
//! than the replays cost time.

use deltalake::DeltaTable;
use deltalake::arrow::array::{Array, AsArray};
use deltalake::arrow::datatypes::Int64Type;
use deltalake::parquet::arrow::ProjectionMask;
use deltalake::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use object_store::{ObjectStore, ObjectStoreExt};
use std::collections::HashMap;

use super::error::SinkError;

/// App id → (version, `lastUpdated`) of its newest `txn`.
type Newest = HashMap<String, (u64, Option<i64>)>;

/// The most app ids one pass keeps (about 20 MB); beyond, `None`.
pub const MAX_TXNS: usize = 200_000;

/// Too many app ids for one pass (see [`MAX_TXNS`]).
struct TooMany;

/// App id → version of its newest `txn` that has not expired, at `version`
/// of `table` (whose loaded snapshot is at or below it; the commits up to
/// `version` are read). `None` when the log is not one this pass reads
/// exactly (module doc).
pub async fn all_txns(
    table: &DeltaTable,
    version: u64,
) -> Result<Option<HashMap<String, u64>>, SinkError> {
    all_txns_within(table, version, MAX_TXNS).await
}

/// [`all_txns`], `None` beyond `max` app ids.
async fn all_txns_within(
    table: &DeltaTable,
    version: u64,
    max: usize,
) -> Result<Option<HashMap<String, u64>>, SinkError> {
    let err = |e: String| SinkError::Delta {
        table: table.table_url().to_string(),
        source: Box::new(deltalake::DeltaTableError::Generic(e)),
    };
    let retention = table
        .snapshot()
        .map(|s| s.table_config().set_transaction_retention_duration)
        .map_err(|e| err(e.to_string()))?;
    let log_store = table.log_store();
    let store = log_store.object_store(None);
    let mut txns = Newest::new();
    let from = match checkpoint(store.as_ref(), version)
        .await
        .map_err(|e| err(e.to_string()))?
    {
        Checkpoint::None => 0,
        Checkpoint::At(v, bytes) => {
            if checkpoint_txns(bytes, &mut txns, max)
                .map_err(err)?
                .is_err()
            {
                return Ok(None);
            }
            v + 1
        }
        Checkpoint::Unreadable => return Ok(None),
    };
    for v in from..=version {
        let Some(bytes) = log_store
            .read_commit_entry(v)
            .await
            .map_err(|e| err(e.to_string()))?
        else {
            return Ok(None); // cleaned up meanwhile: the kernel knows better
        };
        commit_txns(&bytes, &mut txns).map_err(|e| err(format!("commit {v}: {e}")))?;
        if txns.len() > max {
            return Ok(None);
        }
    }
    let expired_at = retention.map(|d| {
        let now = chrono::Utc::now().timestamp_millis();
        now.saturating_sub(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    });
    Ok(Some(
        txns.into_iter()
            .filter(|(_, (_, updated))| match (expired_at, updated) {
                (Some(at), Some(u)) => *u > at,
                _ => true,
            })
            .map(|(app, (v, _))| (app, v))
            .collect(),
    ))
}

/// The checkpoint a pass starts from.
enum Checkpoint {
    /// The table has none: every commit from 0.
    None,
    /// A single-file checkpoint at this version, and its bytes.
    At(u64, bytes::Bytes),
    /// One this pass cannot read exactly.
    Unreadable,
}

/// The checkpoint `_last_checkpoint` names, if it is a single file at or
/// below `version` (read as `sink::log_names` reads it for loads).
async fn checkpoint(store: &dyn ObjectStore, version: u64) -> object_store::Result<Checkpoint> {
    let Some(hint) = super::log_names::last_checkpoint_hint(store).await? else {
        return Ok(Checkpoint::None);
    };
    let at = hint.get("version").and_then(serde_json::Value::as_u64);
    let single = hint.get("parts").is_none() && hint.get("v2Checkpoint").is_none();
    let Some(at) = at.filter(|v| single && *v <= version) else {
        return Ok(Checkpoint::Unreadable);
    };
    match store.get(&super::log_names::checkpoint_path(at)).await {
        Ok(got) => Ok(Checkpoint::At(at, got.bytes().await?)),
        Err(object_store::Error::NotFound { .. }) => Ok(Checkpoint::Unreadable),
        Err(e) => Err(e),
    }
}

/// The `txn` rows of a checkpoint file (only its `txn` column is decoded);
/// `Err(TooMany)` as soon as they are more than `max`.
fn checkpoint_txns(
    bytes: bytes::Bytes,
    out: &mut Newest,
    max: usize,
) -> Result<Result<(), TooMany>, String> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(|e| e.to_string())?;
    let Some(root) = builder
        .schema()
        .fields()
        .iter()
        .position(|f| f.name() == "txn")
    else {
        return Ok(Ok(())); // a checkpoint of a table that never had a txn
    };
    let mask = ProjectionMask::roots(builder.parquet_schema(), [root]);
    let reader = builder
        .with_projection(mask)
        .build()
        .map_err(|e| e.to_string())?;
    for batch in reader {
        let batch = batch.map_err(|e| e.to_string())?;
        let txn = batch.column(0).as_struct();
        let long = |name: &str| {
            txn.column_by_name(name)
                .and_then(|a| a.as_primitive_opt::<Int64Type>())
        };
        let apps = txn
            .column_by_name("appId")
            .and_then(|a| a.as_string_opt::<i32>());
        let (Some(apps), Some(versions)) = (apps, long("version")) else {
            return Err("its txn column is not (appId: string, version: long)".into());
        };
        let updated = long("lastUpdated");
        for i in (0..batch.num_rows()).filter(|i| txn.is_valid(*i) && apps.is_valid(*i)) {
            let at = updated.filter(|u| u.is_valid(i)).map(|u| u.value(i));
            out.insert(
                apps.value(i).to_owned(),
                (versions.value(i).max(0) as u64, at),
            );
        }
        if out.len() > max {
            return Ok(Err(TooMany));
        }
    }
    Ok(Ok(()))
}

/// The `txn` actions of one commit's JSON, newest winning.
fn commit_txns(bytes: &[u8], out: &mut Newest) -> Result<(), String> {
    for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let action: serde_json::Value = serde_json::from_slice(line).map_err(|e| e.to_string())?;
        let Some(t) = action.get("txn") else { continue };
        if let (Some(app), Some(v)) = (
            t.get("appId").and_then(serde_json::Value::as_str),
            t.get("version").and_then(serde_json::Value::as_i64),
        ) {
            let at = t.get("lastUpdated").and_then(serde_json::Value::as_i64);
            out.insert(app.to_owned(), (v.max(0) as u64, at));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::tests::rt;

    /// What the kernel says of each of `apps`, on the table loaded afresh.
    async fn kernel(uri: &str, apps: &[String]) -> HashMap<String, u64> {
        let t = crate::sink::store::open(uri).await.unwrap();
        let mut out = HashMap::new();
        for app in apps {
            let v = t
                .snapshot()
                .unwrap()
                .transaction_version(t.log_store().as_ref(), app)
                .await
                .unwrap();
            if let Some(v) = v {
                out.insert(app.clone(), v as u64);
            }
        }
        out
    }

    /// Forty app ids over 60 commits (each commit moves three, some again
    /// after the checkpoint at 25): one pass gives what the kernel gives id
    /// by id, before the first checkpoint, after it, and with an id never
    /// written (absent in both).
    #[test]
    fn one_pass_agrees_with_the_kernel_across_a_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let uri = dir.path().to_str().unwrap().to_owned();
        let apps: Vec<String> = (0..41).map(|i| format!("risktail/s/{i}")).collect();
        rt().block_on(async {
            let mut log = crate::sink::tests::quarantine_log(&uri).await;
            for c in 1..=60u64 {
                let txns: Vec<(String, u64)> = (0..3)
                    .map(|k| (apps[((c * 7 + k * 13) % 40) as usize].clone(), c * 100 + k))
                    .collect();
                log.append(Vec::new(), &txns, serde_json::json!({}), None)
                    .await
                    .unwrap();
                if c == 25 {
                    let t = log.reload().await.unwrap();
                    deltalake::checkpoints::create_checkpoint(t, None)
                        .await
                        .unwrap();
                }
                if c == 10 || c == 25 || c == 60 {
                    let t = crate::sink::store::open(&uri).await.unwrap();
                    let got = all_txns(&t, log.version()).await.unwrap();
                    let want = kernel(&uri, &apps).await;
                    assert_eq!(got.as_ref(), Some(&want), "after commit {c}");
                    assert!(!want.contains_key(&apps[40]));
                    assert!(c < 60 || want.len() == 40, "every other id written");
                    let bound = want.len() - 1;
                    let over = all_txns_within(&t, log.version(), bound).await.unwrap();
                    assert_eq!(over, None, "more app ids than the bound, after commit {c}");
                }
            }
        });
    }

    /// A txn the table's retention expired is not answered, as the kernel
    /// does not; a `_last_checkpoint` naming a checkpoint that is not there,
    /// or one in parts, is not read: the caller asks the kernel.
    #[test]
    fn expired_txns_and_checkpoints_it_cannot_name() {
        let dir = tempfile::tempdir().unwrap();
        let uri = dir.path().to_str().unwrap().to_owned();
        rt().block_on(async {
            let mut log = crate::sink::tests::quarantine_log(&uri).await;
            let txns = [("risktail/s/f".to_owned(), 7)];
            log.append(Vec::new(), &txns, serde_json::json!({}), None)
                .await
                .unwrap();
            // A txn last updated in 1970: past the table's retention, so
            // the kernel does not answer it, and neither does one pass.
            let old = r#"{"txn":{"appId":"risktail/s/old","version":3,"lastUpdated":1000}}"#;
            let commit = dir.path().join("_delta_log/00000000000000000002.json");
            std::fs::write(&commit, format!("{old}\n")).unwrap();
            let t = crate::sink::store::open(&uri).await.unwrap();
            let got = all_txns(&t, 2).await.unwrap().unwrap();
            let apps = ["risktail/s/f".to_owned(), "risktail/s/old".to_owned()];
            assert_eq!(got, kernel(&uri, &apps).await);
            assert_eq!(got, HashMap::from([(apps[0].clone(), 7)]));
            let hint = dir.path().join("_delta_log/_last_checkpoint");
            for text in [
                r#"{"version":1,"size":3}"#,
                r#"{"version":1,"size":3,"parts":2}"#,
            ] {
                std::fs::write(&hint, text).unwrap();
                assert_eq!(all_txns(&t, 2).await.unwrap(), None, "{text}");
            }
        });
    }
}
