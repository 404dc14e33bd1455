//! Where a table lives: a local path, or an object store URL (`s3://`,
//! `az://` / `abfss://`, `gs://`), opened with the storage options of
//! `[table.storage]` on top of what the environment says.
//!
//! Credentials and endpoints come the way every tool of each cloud takes
//! them: delta-rs's object stores read the standard environment variables
//! (`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`, …, `AZURE_*`,
//! `GOOGLE_*`) and instance or workload identity; `[table.storage]` adds or
//! overrides keys, passed through unchanged. One process writes one
//! configuration's tables, so the options are set once per process
//! ([`set_storage_options`]) rather than threaded through every reader.

use bytes::Bytes;
use deltalake::{DeltaTable, DeltaTableBuilder, DeltaTableError};
use object_store::ObjectStoreExt;
use std::collections::HashMap;
use std::sync::{Once, OnceLock};

static STORAGE_OPTIONS: OnceLock<HashMap<String, String>> = OnceLock::new();
static HANDLERS: Once = Once::new();

/// Sets the storage options every table of this process is opened with
/// (`[table.storage]`). The first call wins; later ones are ignored.
pub fn set_storage_options(options: HashMap<String, String>) {
    let _ = STORAGE_OPTIONS.set(options);
}

fn options() -> HashMap<String, String> {
    STORAGE_OPTIONS.get().cloned().unwrap_or_default()
}

/// Makes the object stores built into this binary known to delta-rs.
fn register_handlers() {
    HANDLERS.call_once(|| {
        #[cfg(feature = "s3")]
        deltalake::aws::register_handlers(None);
        #[cfg(feature = "azure")]
        deltalake::azure::register_handlers(None);
        #[cfg(feature = "gcs")]
        deltalake::gcp::register_handlers(None);
    });
}

/// The folder of a local table's `uri` (a path or a `file://` URL).
fn local_path(uri: &str) -> Option<&std::path::Path> {
    if !uri.contains("://") {
        return Some(std::path::Path::new(uri));
    }
    uri.strip_prefix("file://").map(std::path::Path::new)
}

/// Whether `uri` names a local table (a path or a `file://` URL): only those
/// have a folder to create and a local lock file.
pub fn is_local(uri: &str) -> bool {
    local_path(uri).is_some()
}

/// The table at `uri`, not loaded yet (to create it if there is none).
pub fn table(uri: &str) -> Result<DeltaTable, DeltaTableError> {
    register_handlers();
    let url = deltalake::ensure_table_uri(uri)?;
    let builder = DeltaTableBuilder::from_url(url.clone())
        .map_err(|e| unknown_scheme(uri, e))?
        .with_storage_options(options());
    let builder = if url.scheme() == "file" {
        // A local log is found by name, not by walking its folder (see
        // `sink::log_names`).
        let local = object_store::local::LocalFileSystem::new();
        let probed = super::log_names::ProbedLog::new(std::sync::Arc::new(local));
        builder.with_storage_backend(std::sync::Arc::new(probed), url)
    } else {
        builder
    };
    builder.build()
}

/// The table at `uri`, loaded at its latest version. A local path that does
/// not exist is no table, and is left absent: delta-rs makes a local table's
/// folder when it builds the table (`ensure_table_uri`), so a read command
/// given a mistyped path used to leave an empty folder behind, which looks
/// like a table's. Creating a table makes its folder itself
/// (`sink::table::open_or_create`).
pub async fn open(uri: &str) -> Result<DeltaTable, DeltaTableError> {
    if let Some(path) = local_path(uri)
        && !path.exists()
    {
        return Err(DeltaTableError::NotATable(format!("{uri}: no such folder")));
    }
    let mut t = table(uri)?;
    t.load().await?;
    Ok(t)
}

/// What the put-if-absent probe found (see [`prove_put_if_absent`]).
#[derive(Debug, PartialEq, Eq)]
pub enum Probe {
    /// The second put of one name was refused: commits are exclusive.
    Honoured,
    /// The second put replaced the first: two writers could both land one
    /// version, and one's rows would vanish.
    Ignored,
}

/// Proves that the store behind `table` honours put-if-absent (S3's
/// `If-None-Match: *`, Azure's and GCS's equivalents): an object under
/// `_risktail/` is put twice with [`object_store::PutMode::Create`] and the
/// second must be refused. Every commit of risktail (and of delta-rs) relies
/// on it; a self-hosted store or a proxy that drops the header makes every
/// commit "succeed" and writers overwrite each other's versions silently.
/// The probe object is deleted afterwards (best effort).
pub async fn prove_put_if_absent(table: &DeltaTable) -> Result<Probe, DeltaTableError> {
    use object_store::{PutMode, PutOptions};
    let log_store = table.log_store();
    let store = log_store.object_store(None);
    let probe = |what: &str| {
        deltalake::Path::from_iter(["_risktail", &format!("{what}-{}", uuid::Uuid::new_v4())])
    };
    let path = probe("put-if-absent-probe");
    // S3 configured for copy-if-not-exists (`aws_copy_if_not_exists`)
    // commits by copying a temporary object into place: probe that.
    let copying = log_store.name() == "S3LogStore";
    let tmp = probe("put-if-absent-probe-tmp");
    let second = if copying {
        store.put(&tmp, Bytes::from_static(b"1").into()).await?;
        store.copy_if_not_exists(&tmp, &path).await?;
        store.copy_if_not_exists(&tmp, &path).await.map(|_| ())
    } else {
        let create = || PutOptions::from(PutMode::Create);
        store
            .put_opts(&path, Bytes::from_static(b"1").into(), create())
            .await?;
        store
            .put_opts(&path, Bytes::from_static(b"2").into(), create())
            .await
            .map(|_| ())
    };
    let _ = store.delete(&path).await;
    if copying {
        let _ = store.delete(&tmp).await;
    }
    match second {
        Ok(()) => Ok(Probe::Ignored),
        Err(
            object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. },
        ) => Ok(Probe::Honoured),
        Err(e) => Err(e.into()),
    }
}

/// The paths of the data files of `table`'s current version, relative to its
/// root and decoded (what [`read_file`] takes).
pub fn data_paths(table: &DeltaTable) -> Result<impl Iterator<Item = String>, DeltaTableError> {
    let paths: Vec<String> = table
        .snapshot()?
        .log_data()
        .iter()
        .map(|f| f.path().into_owned())
        .collect();
    Ok(paths.into_iter())
}

/// A data file of `table` (a path relative to its root, as the log names
/// it), read whole through the table's object store.
pub async fn read_file(table: &DeltaTable, path: &str) -> Result<Bytes, DeltaTableError> {
    let store = table.object_store();
    let location =
        deltalake::Path::parse(path).map_err(|e| DeltaTableError::Generic(e.to_string()))?;
    let got = store.get(&location).await?;
    Ok(got.bytes().await?)
}

/// The cargo feature that serves object-store URLs of `scheme`, if any.
pub fn scheme_feature(scheme: &str) -> Option<&'static str> {
    match scheme {
        "s3" | "s3a" => Some("s3"),
        "az" | "abfs" | "abfss" | "azure" | "adl" => Some("azure"),
        "gs" => Some("gcs"),
        _ => None,
    }
}

/// A scheme this binary was built without gets a message that says so.
fn unknown_scheme(uri: &str, e: DeltaTableError) -> DeltaTableError {
    let scheme = uri.split("://").next().unwrap_or("");
    match scheme_feature(scheme) {
        Some(f) if !built_with(f) => DeltaTableError::Generic(format!(
            "{uri}: this risktail was built without the `{f}` feature (cargo build --features {f}); {e}"
        )),
        _ => e,
    }
}

fn built_with(feature: &str) -> bool {
    let built = [
        ("s3", cfg!(feature = "s3")),
        ("azure", cfg!(feature = "azure")),
        ("gcs", cfg!(feature = "gcs")),
    ];
    built.iter().any(|(f, on)| *f == feature && *on)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_or_not() {
        assert!(is_local("lake/risk_events"));
        assert!(is_local("/var/lib/risktail/lake"));
        assert!(is_local("file:///var/lib/risktail/lake"));
        assert!(!is_local("s3://lake/risk_events"));
        assert!(!is_local("abfss://c@acct.dfs.core.windows.net/risk_events"));
        assert!(!is_local("gs://lake/risk_events"));
    }

    #[test]
    fn object_store_schemes_are_known() {
        for uri in [
            "s3://lake/t",
            "az://c/t",
            "abfss://c@a.dfs.core.windows.net/t",
            "gs://lake/t",
        ] {
            // Azure wants an account before it builds; a missing one is not
            // an unknown scheme.
            if let Err(e) = table(uri) {
                let e = e.to_string();
                assert!(e.contains("Account must be specified"), "{uri}: {e}");
            }
        }
    }
}
