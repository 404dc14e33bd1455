//! Offsets as Delta application transactions. A file's read position lives in
//! the table, in the same commit as the rows it produced, under the app id
//! `risktail/<source>/<file identity>`; its version is the byte offset (of the
//! decompressed content) just after the last line ingested. No side file.

use crate::source::fingerprint::FileId;

/// The app id of a file of a source.
pub fn app_id(source: &str, file: FileId) -> String {
    format!("risktail/{source}/{file}")
}

/// App id whose version encodes a source's breaker state (see [`breaker_code`]).
pub fn breaker_app_id(source: &str) -> String {
    format!("risktail-state/{source}/breaker")
}

/// App id whose version is a source's latest line time, in UTC microseconds.
pub fn last_time_app_id(source: &str) -> String {
    format!("risktail-state/{source}/last_time")
}

/// App id set (version 1) in the commit of a file that starts inside the
/// repeated autumn hour with nothing to place it by (stored in the first
/// pass by the documented rule): `status` and the metrics count them.
pub fn undecided_app_id(source: &str, file: FileId) -> String {
    format!("risktail-undecided/{source}/{file}")
}

/// The enrichment state rides in `txn` actions too, because checkpoints keep
/// every `txn` while `commitInfo` goes with the expired JSON commits: a source
/// quiet for longer than the log retention must still resume with its
/// breaker's state. 0 = unknown, 1 = CLOSED, 2 = OPEN, 3 = HALF_OPEN, and a
/// state a user's pattern invented is 0 here (commitInfo still names it).
pub fn breaker_code(state: Option<&str>) -> i64 {
    match state {
        Some("CLOSED") => 1,
        Some("OPEN") => 2,
        Some("HALF_OPEN") => 3,
        _ => 0,
    }
}

/// The inverse of [`breaker_code`].
pub fn breaker_from_code(code: i64) -> Option<String> {
    match code {
        1 => Some("CLOSED".into()),
        2 => Some("OPEN".into()),
        3 => Some("HALF_OPEN".into()),
        _ => None,
    }
}

/// The key under which a commit's `commitInfo` carries risktail's own record:
/// `{"source", "file", "offset", "state"}`.
pub const COMMIT_INFO_KEY: &str = "risktail";

/// The key in risktail's record of a commit that says which shape of the
/// tables its writer knows: [`SCHEMA_LEVEL`]; records of earlier releases
/// have none.
pub const SCHEMA_KEY: &str = "schema";

/// The tables' shape this release knows: 2 = the quarantine table's
/// `line_id` (written when the table has it; see `schema::ADDED_LATER`).
pub const SCHEMA_LEVEL: u64 = 2;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breaker_codes_round_trip() {
        for s in ["CLOSED", "OPEN", "HALF_OPEN"] {
            assert_eq!(breaker_from_code(breaker_code(Some(s))).as_deref(), Some(s));
        }
        assert_eq!(breaker_code(None), 0);
        assert_eq!(breaker_from_code(0), None);
    }

    #[test]
    fn app_ids_are_per_source_and_file() {
        let f = FileId::from_head(b"x\n");
        assert_eq!(app_id("engine", f), format!("risktail/engine/{f}"));
        assert_ne!(app_id("engine", f), app_id("engine2", f));
    }
}
