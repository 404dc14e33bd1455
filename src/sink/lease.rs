//! Who owns a source, across hosts: a lease kept in the events table itself,
//! so it works wherever the table does (a local folder, S3, Azure, GCS) with
//! no lock service.
//!
//! Three `txn` app ids per source carry it, in the same commits as the
//! source's rows: `risktail-lease/<source>/epoch` (a claim counter),
//! `…/heartbeat` (the holder's clock at its last commit, in milliseconds) and
//! `…/host` (a code of the holder's host name). Each commit also names the
//! holder (`host:pid`) in its `commitInfo`, which is where a refusal finds
//! the name.
//!
//! - **Claim** (at `run` start, with a commit of its own; a `backfill` claims
//!   with its first commit of rows, so one with nothing to add writes
//!   nothing): the lease is free when no one
//!   ever held it, its heartbeat is older than the lease time (the holder
//!   died), it was released (a clean exit), or its holder is this host (the
//!   host-local lock already proved that process gone). Then a commit
//!   carrying epoch + 1 takes it; two claims at once both carry the epoch app
//!   id, so Delta's conflict check lets one win and the other refuses.
//! - **Holding**: every commit of the source carries the epoch and a fresh
//!   heartbeat; an idle daemon commits a heartbeat alone every third of the
//!   lease time.
//! - **Fencing**: a holder whose lease was taken (it stalled past the lease
//!   time) finds a higher epoch in the table, or a conflict on the epoch app
//!   id, at its next commit, and stops with [`SinkError::LeaseLost`] instead
//!   of writing over the new holder's offsets.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::commit::{Fence, upload_and_append};
use super::delta_log::DeltaLog;
use super::error::SinkError;
use super::history::{newest_first, risktail_record};
use crate::metrics::Metrics;

/// The default lease time: how long a silent holder keeps its sources.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(60);

/// Who holds (or claims) a lease.
#[derive(Debug, Clone)]
pub struct Holder {
    /// The host's name (see `config::host_name`).
    pub host: String,
    /// The process.
    pub pid: u32,
}

impl Holder {
    /// This process on `host`.
    pub fn this_process(host: &str) -> Holder {
        Holder {
            host: host.to_owned(),
            pid: std::process::id(),
        }
    }
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.host, self.pid)
    }
}

/// A lease this process holds.
#[derive(Debug, Clone)]
pub(super) struct Held {
    pub(super) epoch: u64,
    pub(super) host: u64,
    pub(super) holder: String,
    /// Whether a commit carrying this epoch has landed: until then the
    /// claim is only intended (a backfill claims with its first commit).
    pub(super) claimed: bool,
    /// When a commit carrying it last landed (any commit of the source).
    pub(super) renewed: Instant,
}

fn epoch_app(source: &str) -> String {
    format!("risktail-lease/{source}/epoch")
}

fn beat_app(source: &str) -> String {
    format!("risktail-lease/{source}/heartbeat")
}

fn host_app(source: &str) -> String {
    format!("risktail-lease/{source}/host")
}

/// A positive 63-bit code of a host name (a `txn` version is a signed long).
fn host_code(host: &str) -> u64 {
    let id = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_DNS, host.as_bytes());
    let bytes: [u8; 8] = id.as_bytes()[..8].try_into().unwrap_or([1; 8]);
    (u64::from_be_bytes(bytes) >> 1).max(1)
}

/// The heartbeat of a released lease.
const RELEASED: u64 = 1;

fn now_ms() -> u64 {
    chrono::Utc::now().timestamp_millis().max(0) as u64
}

impl Held {
    /// The lease's txns for a commit made now.
    pub(super) fn txns(&self, source: &str, beat: u64) -> Vec<(String, u64)> {
        vec![
            (epoch_app(source), self.epoch),
            (beat_app(source), beat),
            (host_app(source), self.host),
        ]
    }
}

/// The leases this process holds, by source.
#[derive(Debug, Default)]
pub(super) struct Leases {
    held: HashMap<String, Held>,
}

impl Leases {
    /// The lease of `source`, if this process holds (or claims) it.
    pub(super) fn get(&self, source: &str) -> Option<&Held> {
        self.held.get(source)
    }

    /// Takes the lease of `source` for `holder` in `events`, or refuses
    /// naming the process that holds it (see the module doc).
    ///
    /// `at_once`: the claim is a commit of its own now (the daemon, which
    /// then holds the source while idle); otherwise it rides in the first
    /// commit of rows, so a backfill with nothing to add writes nothing.
    pub(super) async fn claim(
        &mut self,
        events: &mut DeltaLog,
        metrics: Option<&Metrics>,
        source: &str,
        holder: &Holder,
        lease: Duration,
        at_once: bool,
    ) -> Result<(), SinkError> {
        events.reload().await?;
        // The claim starts a run or a backfill, which asks next for the
        // offsets of every file on disk: all of them in one pass.
        events.know_every_txn().await?;
        let epoch = events.txn_version(&epoch_app(source)).await?;
        let beat = events.txn_version(&beat_app(source)).await?;
        let host = events.txn_version(&host_app(source)).await?;
        let me = host_code(&holder.host);
        let age = Duration::from_millis(now_ms().saturating_sub(beat));
        if epoch > 0 && beat > RELEASED && age < lease && host != me {
            return Err(held_error(events, source, age).await);
        }
        let held = Held {
            epoch: epoch + 1,
            host: me,
            holder: holder.to_string(),
            claimed: false,
            renewed: Instant::now(),
        };
        self.held.insert(source.to_owned(), held);
        if !at_once {
            return Ok(());
        }
        match self
            .commit_lease(events, metrics, source, now_ms(), "claim")
            .await
        {
            Ok(()) => {
                tracing::info!(source, epoch = epoch + 1, holder = %holder, "source claimed");
                Ok(())
            }
            Err(e) => {
                self.held.remove(source);
                Err(e)
            }
        }
    }

    /// Renews the lease of `source` with a commit of its own when no commit
    /// has renewed it for `every` (an idle daemon).
    pub(super) async fn heartbeat(
        &mut self,
        events: &mut DeltaLog,
        metrics: Option<&Metrics>,
        source: &str,
        every: Duration,
    ) -> Result<(), SinkError> {
        match self.held.get(source) {
            Some(h) if h.renewed.elapsed() >= every => {
                self.commit_lease(events, metrics, source, now_ms(), "heartbeat")
                    .await
            }
            _ => Ok(()),
        }
    }

    /// Gives the lease of `source` up (a clean exit): the next claim, from
    /// any host, need not wait for it to expire.
    pub(super) async fn release(
        &mut self,
        events: &mut DeltaLog,
        metrics: Option<&Metrics>,
        source: &str,
    ) -> Result<(), SinkError> {
        let Some(held) = self.held.get(source) else {
            return Ok(());
        };
        if held.claimed {
            self.commit_lease(events, metrics, source, RELEASED, "release")
                .await?;
        } // else never committed: nothing to give back
        self.held.remove(source);
        Ok(())
    }

    /// The fence of the lease of `source` for a commit (see
    /// `commit::Fence`): the table may show no later epoch than ours, nor,
    /// before our first commit, ours.
    pub(super) fn fence(&self, source: &str) -> Fence {
        let h = self.held.get(source)?;
        let highest = if h.claimed { h.epoch } else { h.epoch - 1 };
        Some((epoch_app(source), highest))
    }

    /// A commit carrying the lease of `source` landed.
    pub(super) fn renewed(&mut self, source: &str) {
        if let Some(h) = self.held.get_mut(source) {
            h.claimed = true;
            h.renewed = Instant::now();
        }
    }

    /// A conflict on the app ids of a source whose lease this process holds
    /// is another process's claim, as the reloaded table tells:
    /// [`SinkError::LeaseLost`], or [`SinkError::SourceHeld`] before our
    /// first commit. Any other result is returned as it is.
    pub(super) async fn explain_conflict<T>(
        &mut self,
        events: &mut DeltaLog,
        source: &str,
        result: Result<T, SinkError>,
    ) -> Result<T, SinkError> {
        match result {
            Err(SinkError::ConcurrentWriter { .. }) if self.held.contains_key(source) => {
                if events.reload().await.is_ok() {
                    self.check(events, source).await?;
                }
                result
            }
            other => other,
        }
    }

    /// Fails with [`SinkError::LeaseLost`] when `events` shows a later claim
    /// of `source` than this process's ([`SinkError::SourceHeld`] when this
    /// process has not committed its claim yet).
    pub(super) async fn check(&self, events: &mut DeltaLog, source: &str) -> Result<(), SinkError> {
        let Some((app, highest)) = self.fence(source) else {
            return Ok(());
        };
        if events.txn_version(&app).await? <= highest {
            return Ok(());
        }
        if self.held.get(source).is_some_and(|h| h.claimed) {
            Err(SinkError::LeaseLost {
                source_name: source.to_owned(),
                table: events.uri().to_owned(),
                holder: holder_name(events, source).await,
            })
        } else {
            // Another process claimed it between our look and our first commit.
            Err(held_error(events, source, Duration::ZERO).await)
        }
    }

    /// A commit of the lease of `source` alone, with heartbeat `beat`.
    async fn commit_lease(
        &mut self,
        events: &mut DeltaLog,
        metrics: Option<&Metrics>,
        source: &str,
        beat: u64,
        what: &str,
    ) -> Result<(), SinkError> {
        let Some(held) = self.held.get(source) else {
            return Ok(());
        };
        let meta = serde_json::json!({ "source": source, "holder": held.holder, "lease": what });
        let txns = held.txns(source, beat);
        let fence = self.fence(source);
        let result = upload_and_append(events, &txns, None, meta, metrics, fence).await;
        let version = self.explain_conflict(events, source, result).await?;
        tracing::debug!(source, version, lease = what, "commit landed");
        self.renewed(source);
        Ok(())
    }
}

async fn held_error(events: &mut DeltaLog, source: &str, age: Duration) -> SinkError {
    SinkError::SourceHeld {
        source_name: source.to_owned(),
        table: events.uri().to_owned(),
        holder: holder_name(events, source).await,
        age_s: age.as_secs(),
    }
}

/// The holder named by the newest commit of `source` that names one.
async fn holder_name(events: &mut DeltaLog, source: &str) -> String {
    let mut name = None;
    let _ = newest_first(events, |info| {
        name = risktail_record(info, source)
            .and_then(|r| r.get("holder"))
            .and_then(|h| h.as_str())
            .map(str::to_owned);
        name.is_some()
    })
    .await;
    name.unwrap_or_else(|| "a process whose commits do not name it".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_codes_are_positive_and_tell_hosts_apart() {
        let a = host_code("engine-1");
        assert!(a > 0 && a <= i64::MAX as u64);
        assert_ne!(a, host_code("engine-2"));
        assert_eq!(a, host_code("engine-1"));
    }
}
