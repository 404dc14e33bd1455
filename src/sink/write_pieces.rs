//! Data files go to a local disk in pieces of at most [`PIECE`] bytes.
//!
//! Why: delta-rs uploads a data file in 5 MiB parts (its floor), and the
//! local store writes each part with one `write(2)`. On this project's
//! machines (a VM, Linux 6.18, ext4) a dense backfill spent 0.77 s in the
//! kernel copying those parts into the page cache, and 0.17 s when the same
//! bytes go in 1 MiB writes (`farm-bench --pin 1`, five runs each,
//! alternating; 0.82x the wall time). The cause is in how the kernel finds
//! memory for a large write, not in the bytes: a Python writer of 88 MiB in
//! 5 MiB writes took 0.58-0.93 s on some runs and 0.02-0.04 s on others; in
//! 1 MiB writes, 0.02-0.09 s. The bytes and their order do not change: a part's
//! buffers are only cut, never copied.

use bytes::Bytes;
use object_store::{MultipartUpload, PutPayload, PutResult, UploadPart};

/// The largest piece handed to the file system in one write.
pub const PIECE: usize = 1 << 20;

/// `payload`'s bytes, in the same order, as buffers of at most [`PIECE`]
/// bytes: the local store writes a payload buffer by buffer.
pub fn in_pieces(payload: PutPayload) -> PutPayload {
    if payload.iter().all(|b| b.len() <= PIECE) {
        return payload;
    }
    payload.into_iter().flat_map(cut).collect()
}

/// `b` cut into slices of at most [`PIECE`] bytes (no copy).
fn cut(b: Bytes) -> impl Iterator<Item = Bytes> {
    (0..b.len())
        .step_by(PIECE)
        .map(move |from| b.slice(from..(from + PIECE).min(b.len())))
}

/// A multipart upload whose parts are written in pieces (see the module doc).
#[derive(Debug)]
pub struct PiecedUpload {
    inner: Box<dyn MultipartUpload>,
}

impl PiecedUpload {
    /// Wraps `inner`, an upload to a local file.
    pub fn new(inner: Box<dyn MultipartUpload>) -> PiecedUpload {
        PiecedUpload { inner }
    }
}

#[async_trait::async_trait]
impl MultipartUpload for PiecedUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        self.inner.put_part(in_pieces(data))
    }

    async fn complete(&mut self) -> object_store::Result<PutResult> {
        self.inner.complete().await
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        self.inner.abort().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes_of(p: &PutPayload) -> Vec<u8> {
        p.iter().flat_map(|b| b.iter().copied()).collect()
    }

    #[test]
    fn pieces_keep_every_byte_in_order_and_none_is_over_the_size() {
        let big: Vec<u8> = (0..(5 * PIECE + 123)).map(|i| (i % 251) as u8).collect();
        let small = vec![7u8; 10];
        let exact = vec![9u8; PIECE];
        let payload = PutPayload::from_iter([
            Bytes::from(big.clone()),
            Bytes::from(small.clone()),
            Bytes::from(exact.clone()),
        ]);
        let want = bytes_of(&payload);
        let got = in_pieces(payload);
        assert_eq!(bytes_of(&got), want);
        assert!(got.iter().all(|b| !b.is_empty() && b.len() <= PIECE));
        // 5 whole pieces and 123 bytes, the small buffer, the exact one.
        assert_eq!(got.iter().count(), 6 + 1 + 1);
    }

    #[tokio::test]
    async fn a_file_written_through_pieces_reads_back_whole() {
        use object_store::ObjectStoreExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let store =
            object_store::local::LocalFileSystem::new_with_prefix(dir.path()).expect("local store");
        let path = object_store::path::Path::from("part.parquet");
        let inner = store.put_multipart(&path).await.expect("upload");
        let mut up = PiecedUpload::new(inner);
        let a: Vec<u8> = (0..(3 * PIECE + 5)).map(|i| (i % 13) as u8).collect();
        let b: Vec<u8> = (0..(2 * PIECE)).map(|i| (i % 7) as u8).collect();
        up.put_part(PutPayload::from(a.clone()))
            .await
            .expect("part a");
        up.put_part(PutPayload::from(b.clone()))
            .await
            .expect("part b");
        up.complete().await.expect("complete");
        let got = store
            .get(&path)
            .await
            .expect("get")
            .bytes()
            .await
            .expect("bytes");
        assert_eq!(got.as_ref(), [a, b].concat().as_slice());
    }
}
