//! A table's `_delta_log` addressed by version names instead of listed.
//!
//! Why: Delta's log is a folder of numbered files, and the usual way to find
//! its newest entries is to list the folder. On S3, Azure and GCS that list
//! starts after a given name and costs what it returns; on a local file
//! system `object_store` walks the whole folder, whatever offset it is given.
//! At one commit a second a log keeps 86,400 entries a day of retention, so a
//! month's log (Delta's default retention, and risktail's) made every load of
//! a local table walk 2.6 million names (5.5 s, `benches/log_length`), and
//! delta-rs's log cleanup lists the whole folder on every store, with a `stat`
//! per entry, each time it runs.
//!
//! Versions are contiguous from the newest checkpoint on (the protocol), so
//! neither needs a listing:
//! - [`ProbedLog`] wraps a local table's store: a listing of `_delta_log`
//!   from a version (what the Delta kernel asks when it loads or updates a
//!   table) becomes a `stat` of each version's commit and checkpoint from
//!   there until the first version that does not exist; everything else goes
//!   to the file system unchanged;
//! - [`expire`] deletes the entries log cleanup may delete by walking up from
//!   the oldest version still there, which it finds once by bisection;
//! - a listing of a whole table's folder (vacuum's) leaves `_delta_log` out.

use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    ObjectStoreExt, PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use std::ops::Range;
use std::sync::Arc;

const LOG_FOLDER: &str = "_delta_log";

/// A local store whose `_delta_log` listings from a version are answered by
/// name (see the module doc), and whose writes go to disk in pieces (see
/// `sink::write_pieces`).
#[derive(Debug)]
pub struct ProbedLog {
    inner: Arc<dyn ObjectStore>,
}

impl ProbedLog {
    /// Wraps `inner`, a store rooted at `/` of the local file system.
    pub fn new(inner: Arc<dyn ObjectStore>) -> ProbedLog {
        ProbedLog { inner }
    }
}

impl std::fmt::Display for ProbedLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ProbedLog({})", self.inner)
    }
}

/// The version a listing of `prefix` from `offset` starts at, when it is a
/// listing of a `_delta_log` folder from a version name (`…/_delta_log/` and
/// twenty digits): what the kernel asks for the log after a checkpoint.
fn log_listing_from(prefix: Option<&Path>, offset: &Path) -> Option<u64> {
    let prefix = prefix?;
    if prefix.filename() != Some(LOG_FOLDER) {
        return None;
    }
    let rest: Vec<_> = offset.prefix_match(prefix)?.collect();
    let [name] = rest.as_slice() else {
        return None;
    };
    let name = name.as_ref();
    (name.len() == 20 && name.bytes().all(|b| b.is_ascii_digit()))
        .then(|| name.parse().ok())
        .flatten()
}

/// The entry of version `v` of the kind `kind` (`json`, `checkpoint.parquet`,
/// `crc`) in the log folder `log`.
fn entry(log: &Path, v: u64, kind: &str) -> Path {
    log.clone().join(format!("{v:020}.{kind}"))
}

/// The entry's metadata, or `None` when it does not exist.
async fn stat(store: &dyn ObjectStore, path: &Path) -> object_store::Result<Option<ObjectMeta>> {
    match store.head(path).await {
        Ok(meta) => Ok(Some(meta)),
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// How many versions a listing is answered by name at most: a load reads
/// from the newest checkpoint (a few dozen versions; checkpoints come every
/// 50), an update from the version it has; a walk of a whole long history
/// (`DeltaTable::history` without a limit, from version 0) costs less as
/// one listing than as two `stat`s a version.
const PROBE_MAX: u64 = 10_000;

/// The log's entries from version `from` on, in name order: each version's
/// checkpoint (single-file) and commit, until a version has neither; an
/// empty answer when version `from` has neither but the commit before it
/// exists (an update with nothing new). `None`, and the caller lists the
/// folder, when neither exists (a listing from a version that was cleaned
/// up, or from 0 before the first checkpoint), when more than `max`
/// versions follow, or when the newest checkpoint is one a name cannot find
/// (multi-part, or a V2 checkpoint named by a UUID: `_last_checkpoint` says
/// so).
async fn probe(
    store: &dyn ObjectStore,
    log: &Path,
    from: u64,
    max: u64,
) -> object_store::Result<Option<Vec<ObjectMeta>>> {
    let hint = checkpoint_hint(store, log).await?;
    if hint.is_some_and(|h| h.get("parts").is_some() || h.get("v2Checkpoint").is_some()) {
        return Ok(None);
    }
    let mut found = Vec::new();
    for v in from.. {
        if v - from >= max {
            return Ok(None);
        }
        let checkpoint = stat(store, &entry(log, v, "checkpoint.parquet")).await?;
        let commit = stat(store, &entry(log, v, "json")).await?;
        if checkpoint.is_none() && commit.is_none() {
            break;
        }
        found.extend(checkpoint.into_iter().chain(commit));
    }
    if found.is_empty() {
        let before = from.checked_sub(1).map(|v| entry(log, v, "json"));
        let up_to_date = match before {
            Some(path) => stat(store, &path).await?.is_some(),
            None => false,
        };
        return Ok(up_to_date.then_some(found));
    }
    Ok(Some(found))
}

/// `_last_checkpoint` of the log folder `log`, parsed, if there is one.
async fn checkpoint_hint(
    store: &dyn ObjectStore,
    log: &Path,
) -> object_store::Result<Option<serde_json::Value>> {
    match store.get(&log.clone().join("_last_checkpoint")).await {
        Ok(got) => Ok(serde_json::from_slice(&got.bytes().await?).ok()),
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

#[async_trait::async_trait]
impl ObjectStore for ProbedLog {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let payload = super::write_pieces::in_pieces(payload);
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        let upload = self.inner.put_multipart_opts(location, opts).await?;
        Ok(Box::new(super::write_pieces::PiecedUpload::new(upload)))
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    /// A listing of a table's folder leaves its `_delta_log` out: the one
    /// caller is vacuum (delta-rs lists a table partitioned by one column
    /// whole, looking for data files no commit names), which skips the log's
    /// entries anyway, and at 30 days of a commit a second there are 2.6
    /// million of them, each `stat`ed. Any other listing is the file system's.
    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let Some(root) = prefix.cloned().filter(|p| p.filename() != Some(LOG_FOLDER)) else {
            // The log folder itself (verify's look at the log's shape) or
            // everything: the file system's listing, without a look first.
            return self.inner.list(prefix);
        };
        let inner = Arc::clone(&self.inner);
        stream::once(async move {
            let top = match inner.list_with_delimiter(Some(&root)).await {
                Ok(top) => top,
                Err(e) => return stream::iter([Err(e)]).boxed(),
            };
            let log = root.clone().join(LOG_FOLDER);
            if !top.common_prefixes.contains(&log) {
                return inner.list(Some(&root));
            }
            let files = stream::iter(top.objects.into_iter().map(Ok));
            let folders = top.common_prefixes.into_iter().filter(|p| *p != log);
            let below = stream::iter(folders.collect::<Vec<_>>())
                .map(move |p| inner.list(Some(&p)))
                .flatten();
            files.chain(below).boxed()
        })
        .flatten()
        .boxed()
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let (Some(from), Some(log)) = (log_listing_from(prefix, offset), prefix.cloned()) else {
            return self.inner.list_with_offset(prefix, offset);
        };
        let inner = Arc::clone(&self.inner);
        let offset = offset.clone();
        stream::once(async move {
            match probe(inner.as_ref(), &log, from, PROBE_MAX).await {
                Ok(Some(found)) => stream::iter(found.into_iter().map(Ok)).boxed(),
                Ok(None) => inner.list_with_offset(Some(&log), &offset),
                Err(e) => stream::iter([Err(e)]).boxed(),
            }
        })
        .flatten()
        .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

/// The version `_last_checkpoint` names, if the table (`store` is rooted
/// at it) has one.
pub async fn last_checkpoint(store: &dyn ObjectStore) -> object_store::Result<Option<u64>> {
    let hint = last_checkpoint_hint(store).await?;
    Ok(hint.and_then(|v| v.get("version").and_then(|v| v.as_u64())))
}

/// The table's `_last_checkpoint` (`store` is rooted at the table), parsed,
/// if there is one.
pub(super) async fn last_checkpoint_hint(
    store: &dyn ObjectStore,
) -> object_store::Result<Option<serde_json::Value>> {
    checkpoint_hint(store, &Path::from(LOG_FOLDER)).await
}

/// The path of the single-file checkpoint at version `v`, from the table's root.
pub(super) fn checkpoint_path(v: u64) -> Path {
    entry(&Path::from(LOG_FOLDER), v, "checkpoint.parquet")
}

/// The oldest version at or below `top` whose commit still exists, found by
/// bisection (cleanup deletes from the bottom, so the commits that exist
/// below `top` are a run ending at `top`).
async fn oldest_commit(store: &dyn ObjectStore, log: &Path, top: u64) -> object_store::Result<u64> {
    let (mut lo, mut hi) = (0, top);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if stat(store, &entry(log, mid, "json")).await?.is_some() {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    Ok(lo)
}

/// Deletes the log entries Delta's log cleanup may delete, as delta-rs's
/// `cleanup_expired_logs_for` decides, without listing: every entry of the
/// versions below the newest checkpoint that is no newer than the oldest
/// commit written at or after `cutoff_ms` (all of them older than the
/// retention). `store` is rooted at the table; `floor` carries the oldest
/// version left from one call to the next (`None` at first: found by
/// bisection). Returns how many entries went.
pub async fn expire(
    store: &dyn ObjectStore,
    cutoff_ms: i64,
    floor: &mut Option<u64>,
) -> object_store::Result<usize> {
    let log = Path::from(LOG_FOLDER);
    let Some(newest_checkpoint) = last_checkpoint(store).await? else {
        return Ok(0);
    };
    let bottom = match *floor {
        Some(f) => f,
        None => oldest_commit(store, &log, newest_checkpoint).await?,
    };
    // The first version within the retention (or the newest checkpoint).
    let mut keep = bottom;
    while keep < newest_checkpoint {
        match stat(store, &entry(&log, keep, "json")).await? {
            Some(meta) if meta.last_modified.timestamp_millis() >= cutoff_ms => break,
            _ => keep += 1,
        }
    }
    // The newest checkpoint at or below it: what a reader of any version
    // still kept starts from.
    let mut safe = None;
    for v in (bottom..=keep).rev() {
        if stat(store, &entry(&log, v, "checkpoint.parquet"))
            .await?
            .is_some()
        {
            safe = Some(v);
            break;
        }
    }
    let Some(safe) = safe else {
        *floor = Some(bottom);
        return Ok(0);
    };
    let doomed: Vec<Path> = (bottom..safe)
        .flat_map(|v| ["json", "checkpoint.parquet", "crc"].map(|k| entry(&log, v, k)))
        .collect();
    let mut deleted = 0;
    let mut results = store.delete_stream(stream::iter(doomed.into_iter().map(Ok)).boxed());
    while let Some(r) = results.next().await {
        match r {
            Ok(_) => deleted += 1,
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    *floor = Some(safe);
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::schema::{QUARANTINE_COLUMNS, QUARANTINE_PARTITION};
    use crate::sink::delta_log::DeltaLog;
    use std::collections::BTreeSet;

    use crate::sink::tests::rt;

    /// `commits` more appends to the table at `uri` (created if needed),
    /// with a checkpoint at each version in `checkpoints`.
    async fn table(uri: &str, commits: u64, checkpoints: &[u64]) {
        let mut log = DeltaLog::open(uri, "q", &QUARANTINE_COLUMNS, QUARANTINE_PARTITION)
            .await
            .unwrap();
        for i in 1..=commits {
            let txns = [("risktail/t/f".to_owned(), i)];
            let meta = serde_json::json!({ "source": "t" });
            log.append(Vec::new(), &txns, meta, None).await.unwrap();
            if checkpoints.contains(&log.version()) {
                let t = log.reload().await.unwrap();
                deltalake::checkpoints::create_checkpoint(t, None)
                    .await
                    .unwrap();
            }
        }
    }

    /// The table at `uri` loaded by delta-rs's own store, which lists.
    async fn listed(uri: &str) -> deltalake::DeltaTable {
        let url = deltalake::ensure_table_uri(uri).unwrap();
        let mut t = deltalake::DeltaTableBuilder::from_url(url)
            .unwrap()
            .build()
            .unwrap();
        t.load().await.unwrap();
        t
    }

    fn entries(dir: &std::path::Path) -> BTreeSet<String> {
        std::fs::read_dir(dir.join(LOG_FOLDER))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    }

    /// Sets the modification time of version `v`'s entries to `t0 + v` s.
    fn age(dir: &std::path::Path, t0: std::time::SystemTime) {
        for name in entries(dir) {
            let Some(v) = name.get(..20).and_then(|v| v.parse::<u64>().ok()) else {
                continue;
            };
            let f = std::fs::File::options()
                .write(true)
                .open(dir.join(LOG_FOLDER).join(&name))
                .unwrap();
            f.set_modified(t0 + std::time::Duration::from_secs(v))
                .unwrap();
        }
    }

    async fn load_both_ways(uri: &str) -> (u64, u64, i64, i64) {
        let probed = crate::sink::store::open(uri).await.unwrap();
        let listed = listed(uri).await;
        let txn = |t: deltalake::DeltaTable| async move {
            t.snapshot()
                .unwrap()
                .transaction_version(t.log_store().as_ref(), "risktail/t/f")
                .await
                .unwrap()
                .unwrap_or(-1)
        };
        let (pv, lv) = (probed.version().unwrap(), listed.version().unwrap());
        (pv, lv, txn(probed).await, txn(listed).await)
    }

    /// Answered by name up to the bound, with what a listing gives; past
    /// it, or with a checkpoint no name finds, not at all (the folder is
    /// listed then).
    #[test]
    fn a_long_run_of_versions_is_listed_instead() {
        let dir = tempfile::tempdir().unwrap();
        let uri = dir.path().to_str().unwrap().to_owned();
        rt().block_on(async {
            table(&uri, 30, &[]).await;
            let store = object_store::local::LocalFileSystem::new_with_prefix(dir.path()).unwrap();
            let log = Path::from(LOG_FOLDER);
            let names = |found: Vec<ObjectMeta>| -> Vec<String> {
                found.into_iter().map(|m| m.location.to_string()).collect()
            };
            let by_name = probe(&store, &log, 0, 100).await.unwrap().unwrap();
            let all: Vec<_> = store
                .list_with_offset(Some(&log), &log.clone().join(format!("{:020}", 0)))
                .collect()
                .await;
            let mut listed: Vec<String> = all
                .into_iter()
                .map(|m| m.unwrap().location.to_string())
                .filter(|p| p.ends_with(".json"))
                .collect();
            listed.sort();
            assert_eq!(names(by_name), listed);
            assert!(probe(&store, &log, 0, 10).await.unwrap().is_none());
            // Nothing after the newest version: an empty answer, not a listing.
            let after = probe(&store, &log, 31, 100).await.unwrap();
            assert_eq!(after.map(|f| f.len()), Some(0));
            // A version whose predecessor is gone too: a listing.
            assert!(probe(&store, &log, 40, 100).await.unwrap().is_none());
            // A multi-part newest checkpoint cannot be found by name.
            let hint = dir.path().join("_delta_log/_last_checkpoint");
            std::fs::write(&hint, r#"{"version":20,"size":9,"parts":2}"#).unwrap();
            assert!(probe(&store, &log, 0, 100).await.unwrap().is_none());
        });
    }

    /// A table folder listed through the wrapper is what the file system
    /// lists, less `_delta_log`; any other folder is listed whole.
    #[test]
    fn a_table_folder_is_listed_without_its_log() {
        let dir = tempfile::tempdir().unwrap();
        let uri = dir.path().join("t");
        let uri = uri.to_str().unwrap().to_owned();
        rt().block_on(async {
            table(&uri, 3, &[]).await;
            for (p, body) in [
                ("t/ingest_date=2026-12-01/a.parquet", "a"),
                ("t/b.txt", "b"),
            ] {
                let path = dir.path().join(p);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(path, body).unwrap();
            }
            let local: Arc<dyn ObjectStore> = Arc::new(
                object_store::local::LocalFileSystem::new_with_prefix(dir.path()).unwrap(),
            );
            let probed = ProbedLog::new(Arc::clone(&local));
            let names = |s: BoxStream<'static, object_store::Result<ObjectMeta>>| async move {
                let all: Vec<_> = s.collect().await;
                let mut v: Vec<String> = all
                    .into_iter()
                    .map(|m| m.unwrap().location.to_string())
                    .collect();
                v.sort();
                v
            };
            let whole = names(local.list(Some(&Path::from("t")))).await;
            let without_log: Vec<String> = whole
                .iter()
                .filter(|p| !p.starts_with("t/_delta_log/"))
                .cloned()
                .collect();
            assert!(whole.len() > without_log.len() + 3, "{whole:?}");
            assert_eq!(
                names(probed.list(Some(&Path::from("t")))).await,
                without_log
            );
            let part = Path::from("t/ingest_date=2026-12-01");
            assert_eq!(
                names(probed.list(Some(&part))).await,
                names(local.list(Some(&part))).await
            );
            let log = Path::from("t/_delta_log");
            assert_eq!(
                names(probed.list(Some(&log))).await,
                names(local.list(Some(&log))).await
            );
        });
    }

    #[test]
    fn only_listings_of_a_log_from_a_version_are_probed() {
        let p = |s: &str| Path::from(s);
        let log = p("lake/t/_delta_log");
        let at = log_listing_from(Some(&log), &p("lake/t/_delta_log/00000000000000000049"));
        assert_eq!(at, Some(49));
        assert_eq!(
            log_listing_from(Some(&log), &p("lake/t/_delta_log/49")),
            None
        );
        assert_eq!(
            log_listing_from(Some(&p("lake/t")), &p("lake/t/00000000000000000049")),
            None
        );
        let other = p("lake/u/_delta_log/00000000000000000049");
        assert_eq!(log_listing_from(Some(&log), &other), None);
        assert_eq!(
            log_listing_from(None, &p("_delta_log/00000000000000000049")),
            None
        );
    }

    /// What the kernel is told by name is what it would have listed: the
    /// same version and offsets, on a table with checkpoints, after log
    /// cleanup, and with `_last_checkpoint` gone (a listing from 0, where
    /// nothing is left: the folder is listed then).
    #[test]
    fn a_log_read_by_name_loads_as_a_listed_one() {
        let dir = tempfile::tempdir().unwrap();
        let uri = dir.path().to_str().unwrap().to_owned();
        rt().block_on(async {
            table(&uri, 30, &[]).await;
            assert_eq!(load_both_ways(&uri).await, (30, 30, 30, 30));
            table(&uri, 90, &[49, 99]).await;
            assert_eq!(load_both_ways(&uri).await, (120, 120, 90, 90));
            let store = object_store::local::LocalFileSystem::new_with_prefix(dir.path()).unwrap();
            let mut floor = None;
            let n = expire(&store, i64::MAX, &mut floor).await.unwrap();
            assert!(n >= 99, "{n} entries deleted");
            assert!(!entries(dir.path()).contains("00000000000000000000.json"));
            assert_eq!(load_both_ways(&uri).await, (120, 120, 90, 90));
            std::fs::remove_file(dir.path().join("_delta_log/_last_checkpoint")).unwrap();
            assert_eq!(load_both_ways(&uri).await, (120, 120, 90, 90));
        });
    }

    /// Cleanup by name deletes exactly what delta-rs's cleanup (which lists)
    /// deletes, on two copies of one log whose versions were written a
    /// second apart: with the cutoff inside the log, past it, and again
    /// after more versions expired (the floor carried over).
    #[test]
    fn cleanup_by_name_deletes_what_listing_cleanup_deletes() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let t0 = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        let ms = |s: u64| {
            (t0 + std::time::Duration::from_secs(s))
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis() as i64
        };
        rt().block_on(async {
            table(a.path().to_str().unwrap(), 160, &[49, 99, 149]).await;
            age(a.path(), t0);
            let copy = std::process::Command::new("cp")
                .args(["-a", &format!("{}/.", a.path().display())])
                .arg(b.path())
                .status()
                .unwrap();
            assert!(copy.success());
            let b_store = object_store::local::LocalFileSystem::new_with_prefix(b.path()).unwrap();
            let mut floor = None;
            for cutoff in [ms(75), ms(120), ms(10_000)] {
                let la = listed(a.path().to_str().unwrap()).await;
                let by_list = deltalake::protocol::checkpoints::cleanup_expired_logs_for(
                    la.version().unwrap() as u64,
                    la.log_store().as_ref(),
                    cutoff,
                    None,
                )
                .await
                .unwrap();
                let by_name = expire(&b_store, cutoff, &mut floor).await.unwrap();
                assert_eq!(entries(a.path()), entries(b.path()), "cutoff {cutoff}");
                assert_eq!(by_name, by_list, "cutoff {cutoff}");
            }
            assert_eq!(floor, Some(149));
        });
    }
}
