//! Reading the events table's history newest first: the state a source last
//! committed (when its `txn` codes cannot say it) and when each source last
//! committed (for `status`). Reads only as far back as needed.

use futures::TryStreamExt;

use super::delta_log::DeltaLog;
use super::error::SinkError;
use super::txn;
use crate::event::SourceState;

/// The state `source` last committed to `events`, looking at the newest
/// commits first and widening the window only when needed: the newest
/// commit is almost always this source's own.
pub(super) async fn state_from_history(
    events: &mut DeltaLog,
    source: &str,
) -> Result<Option<SourceState>, SinkError> {
    let mut found = None;
    newest_first(events, |info| {
        let Some(rec) = risktail_record(info, source) else {
            return false;
        };
        match rec.get("state") {
            Some(state) => {
                found = serde_json::from_value(state.clone()).ok();
                true
            }
            None => false,
        }
    })
    .await?;
    Ok(found)
}

/// When the events table was last committed (by anyone), and when each of
/// `sources` last committed, from the commits' `commitInfo`, newest first
/// (milliseconds since the epoch). Reads back only as far as needed.
pub(super) async fn last_commits(
    events: &mut DeltaLog,
    sources: &[&str],
) -> Result<(Option<i64>, Vec<Option<i64>>), SinkError> {
    let mut newest = None;
    let mut per_source = vec![None; sources.len()];
    newest_first(events, |info| {
        newest = newest.or(info.timestamp);
        for (i, s) in sources.iter().enumerate() {
            if per_source[i].is_none() && risktail_record(info, s).is_some() {
                per_source[i] = info.timestamp;
            }
        }
        per_source.iter().all(Option::is_some)
    })
    .await?;
    Ok((newest, per_source))
}

/// Calls `visit` on the commits of `log` newest first until it returns
/// true, widening the window of history read (50, 1,000, 10,000, 100,000,
/// all) only when needed: a month of log at a commit a second is 2.6
/// million commits.
pub(super) async fn newest_first(
    log: &mut DeltaLog,
    mut visit: impl FnMut(&deltalake::kernel::CommitInfo) -> bool,
) -> Result<(), SinkError> {
    let uri = log.uri().to_owned();
    let derr = |e| SinkError::Delta {
        table: uri.clone(),
        source: Box::new(e),
    };
    let table = log.fresh().await?;
    let total = table.version().map_or(0, |v| v as usize + 1);
    let mut seen = 0;
    for limit in [50usize, 1_000, 10_000, 100_000, usize::MAX] {
        let infos: Vec<_> = table
            .history(if limit >= total { None } else { Some(limit) })
            .try_collect()
            .await
            .map_err(derr)?;
        for info in infos.iter().skip(seen) {
            if visit(info) {
                return Ok(());
            }
        }
        seen = infos.len();
        if limit >= total {
            break;
        }
    }
    Ok(())
}

/// Who committed to `events` within `within` of now without knowing the
/// tables' shape [`txn::SCHEMA_LEVEL`] (a writer of an earlier release,
/// which stops on a column it does not know): holders, or sources where a
/// commit names no holder. Commits of other tools are not risktail's and
/// are passed. Reads newest first until a commit older than `within`.
pub(super) async fn earlier_writers(
    events: &mut DeltaLog,
    within: std::time::Duration,
) -> Result<Vec<String>, SinkError> {
    let since = chrono::Utc::now().timestamp_millis() - within.as_millis() as i64;
    let mut found: Vec<String> = Vec::new();
    newest_first(events, |info| {
        if info.timestamp.is_some_and(|t| t < since) {
            return true;
        }
        if let Some(who) = earlier_writer(info).filter(|w| !found.contains(w)) {
            found.push(who);
        }
        false
    })
    .await?;
    Ok(found)
}

/// The writer of a commit of an earlier release (its risktail record has
/// no [`txn::SCHEMA_KEY`] of this level), if the commit is one.
fn earlier_writer(info: &deltalake::kernel::CommitInfo) -> Option<String> {
    let rec = info.info.get(txn::COMMIT_INFO_KEY)?;
    let level = rec
        .get(txn::SCHEMA_KEY)
        .and_then(|v| v.as_u64())
        .unwrap_or(0);
    if level >= txn::SCHEMA_LEVEL {
        return None;
    }
    let text = |k: &str| rec.get(k).and_then(|v| v.as_str());
    Some(match (text("holder"), text("source")) {
        (Some(h), _) => h.to_owned(),
        (None, Some(s)) => format!("a writer of source {s}"),
        (None, None) => "a writer".to_owned(),
    })
}

/// risktail's record in a commit of `source`, if the commit is one.
pub(super) fn risktail_record<'a>(
    info: &'a deltalake::kernel::CommitInfo,
    source: &str,
) -> Option<&'a serde_json::Value> {
    let rec = info.info.get(txn::COMMIT_INFO_KEY)?;
    (rec.get("source").and_then(|s| s.as_str()) == Some(source)).then_some(rec)
}
