//! Offsets as Delta application transactions. A file's read position lives in
//! the table, in the same commit as the rows it produced, under the app id
//! `risktail/<source>/<file identity>`; its version is the byte offset (of the
//! decompressed content) just after the last line ingested. No side file.

use crate::source::fingerprint::FileId;

/// The app id of a file of a source.
pub fn app_id(source: &str, file: FileId) -> String {
    format!("risktail/{source}/{file}")
}

/// The key under which a commit's `commitInfo` carries risktail's own record:
/// `{"source", "file", "offset", "state"}`.
pub const COMMIT_INFO_KEY: &str = "risktail";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_ids_are_per_source_and_file() {
        let f = FileId::from_head(b"x\n");
        assert_eq!(app_id("engine", f), format!("risktail/engine/{f}"));
        assert_ne!(app_id("engine", f), app_id("engine2", f));
    }
}
