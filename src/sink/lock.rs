//! One writer per source: an advisory lock (`flock`) on
//! `<table>/_risktail/<source>.lock`, held for the life of the process and
//! released by the kernel however it ends (kill -9 included). Delta readers
//! ignore `_`-prefixed folders. The file says who holds it, so the second
//! writer's refusal can name the process.
//!
//! A table on an object store has no folder to lock: the lock file is then
//! this host's, under `$RUNTIME_DIRECTORY` (systemd's `RuntimeDirectory=`)
//! or the temporary folder, named after the table's URL. It keeps two
//! processes of one host off one source; across hosts, source names must
//! differ (the default includes the host name).

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// A held lock; dropping it releases it.
#[derive(Debug)]
pub struct SourceLock {
    _file: File,
    /// Where it is.
    pub path: PathBuf,
}

/// Why a lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it.
    #[error(
        "source {source_name:?} of table {table} is already being written by another risktail ({holder}; lock {path}): run one writer per source"
    )]
    Held {
        /// The source.
        source_name: String,
        /// The table.
        table: String,
        /// What the lock file says about its holder.
        holder: String,
        /// The lock file.
        path: PathBuf,
    },
    /// The lock file could not be made.
    #[error("{path}: {error}")]
    Io {
        /// The lock file.
        path: PathBuf,
        /// The error.
        error: std::io::Error,
    },
}

/// Takes the lock of `source` on the local table at `table_uri`; `what` says
/// which command holds it (for the other process's message).
pub fn acquire(table_uri: &str, source: &str, what: &str) -> Result<SourceLock, LockError> {
    let dir = lock_dir(table_uri);
    let path = dir.join(format!("{source}.lock"));
    let io = |error| LockError::Io {
        path: path.clone(),
        error,
    };
    std::fs::create_dir_all(&dir).map_err(io)?;
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            return Err(LockError::Held {
                source_name: source.to_owned(),
                table: table_uri.to_owned(),
                holder: holder.trim().replace('\n', ", "),
                path,
            });
        }
        Err(TryLockError::Error(e)) => return Err(io(e)),
    }
    file.set_len(0).map_err(io)?;
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    writeln!(
        file,
        "pid {}\ncommand risktail {what}\nsince {}",
        std::process::id(),
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    )
    .map_err(io)?;
    Ok(SourceLock { _file: file, path })
}

/// Where the locks of the table at `table_uri` live (see the module doc).
fn lock_dir(table_uri: &str) -> PathBuf {
    if super::store::is_local(table_uri) {
        let local = table_uri.strip_prefix("file://").unwrap_or(table_uri);
        return Path::new(local).join("_risktail");
    }
    let base = std::env::var_os("RUNTIME_DIRECTORY")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let name = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, table_uri.as_bytes());
    base.join("risktail-locks").join(name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_is_refused_with_the_first_named() {
        let dir = tempfile::tempdir().unwrap();
        let uri = dir.path().to_string_lossy().into_owned();
        let first = acquire(&uri, "engine", "run").unwrap();
        let err = acquire(&uri, "engine", "backfill").unwrap_err().to_string();
        assert!(
            err.contains(&format!("pid {}", std::process::id())) && err.contains("risktail run"),
            "{err}"
        );
        assert!(
            acquire(&uri, "other", "run").is_ok(),
            "locks are per source"
        );
        drop(first);
        assert!(acquire(&uri, "engine", "backfill").is_ok());
    }

    #[test]
    fn an_object_store_table_is_locked_on_this_host_not_in_the_working_folder() {
        let d = lock_dir("s3://lake/risk_events");
        assert!(!d.starts_with("s3:"), "{}", d.display());
        assert!(
            d.starts_with(std::env::temp_dir()) || std::env::var_os("RUNTIME_DIRECTORY").is_some()
        );
        assert_ne!(d, lock_dir("s3://lake/other"));
    }
}
