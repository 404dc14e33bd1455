//! How far a file has been read *and committed*. The table is the only place
//! offsets are kept (in `txn` actions of the same commit as the rows); a
//! source asks for them through [`Offsets`], so following files needs no
//! knowledge of Delta.

use std::future::Future;

use super::fingerprint::FileId;

/// How far a file has been ingested, per table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Committed {
    /// Offset committed with the events (the resume point).
    pub events: u64,
    /// Offset committed with the quarantine rows (quarantine rows that end at
    /// or before it are already in the quarantine table).
    pub quarantine: u64,
}

impl Committed {
    /// What is committed once a commit of everything up to `end` lands.
    pub fn reached(self, end: u64) -> Committed {
        Committed {
            events: end,
            quarantine: end.max(self.quarantine),
        }
    }
}

/// Where committed offsets are looked up (the sink implements it).
pub trait Offsets {
    /// Why a lookup failed.
    type Error;
    /// The committed offsets of `file` of `source`; zero for a file never seen.
    fn committed(
        &self,
        source: &str,
        file: FileId,
    ) -> impl Future<Output = Result<Committed, Self::Error>>;
}
