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

use std::time::Duration;

use super::commit::{commit_once, writer};
use super::{DeltaSink, SinkError, txn_version};

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

impl DeltaSink {
    /// Takes the lease of `source` for `holder`, or refuses naming the
    /// process that holds it (see the module doc).
    ///
    /// `at_once`: the claim is a commit of its own now (the daemon, which
    /// then holds the source while idle); otherwise it rides in the first
    /// commit of rows, so a backfill with nothing to add writes nothing.
    pub async fn claim(
        &mut self,
        source: &str,
        holder: &Holder,
        lease: Duration,
        at_once: bool,
    ) -> Result<(), SinkError> {
        self.refresh_events().await?;
        let epoch = txn_version(&self.events, &self.events_uri, &epoch_app(source)).await?;
        let beat = txn_version(&self.events, &self.events_uri, &beat_app(source)).await?;
        let host = txn_version(&self.events, &self.events_uri, &host_app(source)).await?;
        let me = host_code(&holder.host);
        let age = Duration::from_millis(now_ms().saturating_sub(beat));
        if epoch > 0 && beat > RELEASED && age < lease && host != me {
            return Err(self.held_error(source, age).await);
        }
        let mut held = Held {
            epoch: epoch + 1,
            host: me,
            holder: holder.to_string(),
            claimed: false,
        };
        if !at_once {
            self.leases.insert(source.to_owned(), held);
            return Ok(());
        }
        match self.commit_lease(source, &held, now_ms(), "claim").await {
            Ok(_) => {
                tracing::info!(source, epoch = held.epoch, holder = %held.holder, "source claimed");
                held.claimed = true;
                self.leases.insert(source.to_owned(), held);
                Ok(())
            }
            Err(SinkError::ConcurrentWriter { .. }) => {
                Err(self.held_error(source, Duration::ZERO).await)
            }
            Err(e) => Err(e),
        }
    }

    /// Renews the lease of `source` with a commit of its own (an idle daemon).
    pub async fn heartbeat(&mut self, source: &str) -> Result<(), SinkError> {
        let Some(held) = self.leases.get(source).cloned() else {
            return Ok(());
        };
        self.check_lease(source).await?;
        match self
            .commit_lease(source, &held, now_ms(), "heartbeat")
            .await
        {
            Ok(_) => Ok(()),
            // A newer commit carries the epoch app id: a later claim?
            Err(e @ SinkError::ConcurrentWriter { .. }) => {
                self.refresh_events().await?;
                self.check_lease(source).await?;
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    /// Gives the lease of `source` up (a clean exit): the next claim, from
    /// any host, need not wait for it to expire.
    pub async fn release(&mut self, source: &str) -> Result<(), SinkError> {
        let Some(held) = self.leases.get(source).cloned() else {
            return Ok(());
        };
        if !held.claimed {
            self.leases.remove(source);
            return Ok(()); // never committed: nothing to give back
        }
        self.check_lease(source).await?;
        self.commit_lease(source, &held, RELEASED, "release")
            .await?;
        self.leases.remove(source);
        Ok(())
    }

    /// Fails with [`SinkError::LeaseLost`] when the table shows a later claim
    /// of `source` than this process's.
    pub(super) async fn check_lease(&self, source: &str) -> Result<(), SinkError> {
        let Some(held) = self.leases.get(source) else {
            return Ok(());
        };
        let epoch = txn_version(&self.events, &self.events_uri, &epoch_app(source)).await?;
        if !held.claimed && epoch >= held.epoch {
            // Another process claimed it between our look and our first commit.
            return Err(self.held_error(source, Duration::ZERO).await);
        }
        if epoch > held.epoch {
            return Err(SinkError::LeaseLost {
                source_name: source.to_owned(),
                table: self.events_uri.clone(),
                holder: self.holder_name(source).await,
            });
        }
        Ok(())
    }

    async fn commit_lease(
        &mut self,
        source: &str,
        held: &Held,
        beat: u64,
        what: &str,
    ) -> Result<u64, SinkError> {
        let meta = serde_json::json!({ "source": source, "holder": held.holder, "lease": what });
        let w = writer(&self.events, &self.events_uri)?;
        let txns = held.txns(source, beat);
        let m = self.metrics.clone();
        commit_once(
            &mut self.events,
            &self.events_uri,
            &txns,
            w,
            meta,
            m.as_deref(),
            false,
        )
        .await
    }

    pub(super) async fn refresh_events(&mut self) -> Result<(), SinkError> {
        self.events
            .update_incremental(None)
            .await
            .map_err(|source| SinkError::Delta {
                table: self.events_uri.clone(),
                source: Box::new(source),
            })
    }

    async fn held_error(&self, source: &str, age: Duration) -> SinkError {
        SinkError::SourceHeld {
            source_name: source.to_owned(),
            table: self.events_uri.clone(),
            holder: self.holder_name(source).await,
            age_s: age.as_secs(),
        }
    }

    /// The holder named by the newest commit of `source` that names one.
    async fn holder_name(&self, source: &str) -> String {
        let mut name = None;
        let _ = self
            .newest_first(|info| {
                let rec = info.info.get(super::txn::COMMIT_INFO_KEY);
                let of_source =
                    rec.and_then(|r| r.get("source")).and_then(|s| s.as_str()) == Some(source);
                name = rec
                    .filter(|_| of_source)
                    .and_then(|r| r.get("holder"))
                    .and_then(|h| h.as_str())
                    .map(str::to_owned);
                name.is_some()
            })
            .await;
        name.unwrap_or_else(|| "a process whose commits do not name it".into())
    }
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
