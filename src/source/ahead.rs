//! Reading a stream on a thread of its own, a few buffers ahead of its
//! reader: a gzip file's inflating then runs beside the parsing of what was
//! inflated before (a stream cannot be cut into stretches like a plain
//! file). The bytes, their order and an error where it happened are the
//! stream's own; only the thread that reads them differs.

use std::io::{self, Read};
use std::sync::mpsc;

/// Bytes read per hand-over.
const PIECE: usize = 256 * 1024;

/// Pieces read ahead and not yet taken: bounds the memory to about 1 MiB.
const PIECES_AHEAD: usize = 4;

/// A stream read ahead on a thread of its own. The thread ends at the
/// stream's end, at its first error (handed on in order), or when this is
/// dropped.
pub struct ReadAhead {
    rx: mpsc::Receiver<io::Result<Vec<u8>>>,
    piece: Vec<u8>,
    at: usize,
    ended: bool,
}

impl ReadAhead {
    /// Starts reading `inner` ahead.
    pub fn start(mut inner: Box<dyn Read + Send>) -> io::Result<ReadAhead> {
        let (tx, rx) = mpsc::sync_channel(PIECES_AHEAD);
        std::thread::Builder::new()
            .name("risktail-inflate".into())
            .spawn(move || {
                loop {
                    let (piece, error) = fill(&mut inner);
                    let end = piece.is_empty() && error.is_none();
                    if !piece.is_empty() && tx.send(Ok(piece)).is_err() {
                        return;
                    }
                    if let Some(e) = error {
                        let _ = tx.send(Err(e));
                        return;
                    }
                    if end {
                        let _ = tx.send(Ok(Vec::new()));
                        return;
                    }
                }
            })?;
        Ok(ReadAhead {
            rx,
            piece: Vec::new(),
            at: 0,
            ended: false,
        })
    }
}

/// Up to [`PIECE`] bytes of `inner` (empty at its end), and the error that
/// stopped the reading, if one did: the bytes before it are handed on
/// first, then the error (a decoder asked again after an error may well
/// answer with an end, which would pass a cut stream off as whole).
fn fill(inner: &mut dyn Read) -> (Vec<u8>, Option<io::Error>) {
    let mut piece = vec![0u8; PIECE];
    let mut got = 0;
    let mut error = None;
    while got < PIECE {
        match inner.read(&mut piece[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    piece.truncate(got);
    (piece, error)
}

impl Read for ReadAhead {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.at == self.piece.len() {
            if self.ended {
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(Ok(piece)) if piece.is_empty() => self.ended = true,
                Ok(Ok(piece)) => (self.piece, self.at) = (piece, 0),
                Ok(Err(e)) => {
                    self.ended = true;
                    return Err(e);
                }
                Err(_) => return Err(io::Error::other("the reading thread stopped")),
            }
        }
        let n = out.len().min(self.piece.len() - self.at);
        out[..n].copy_from_slice(&self.piece[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stream that gives `data` in small reads, then fails (when asked).
    struct Flaky {
        data: Vec<u8>,
        at: usize,
        fail: bool,
    }

    impl Read for Flaky {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            if self.at == self.data.len() {
                return if std::mem::take(&mut self.fail) {
                    Err(io::Error::new(io::ErrorKind::UnexpectedEof, "cut"))
                } else {
                    Ok(0)
                };
            }
            let n = out.len().min(self.data.len() - self.at).min(777);
            out[..n].copy_from_slice(&self.data[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }

    fn data() -> Vec<u8> {
        (0..1_000_003u32).map(|i| (i % 251) as u8).collect()
    }

    /// [`data`] read ahead to its end (failing there when `fail`): the
    /// reader, the bytes it gave and how the reading ended.
    fn read_through(fail: bool) -> (ReadAhead, Vec<u8>, io::Result<usize>) {
        let inner = Flaky {
            data: data(),
            at: 0,
            fail,
        };
        let mut r = ReadAhead::start(Box::new(inner)).expect("start");
        let mut out = Vec::new();
        let ended = r.read_to_end(&mut out);
        (r, out, ended)
    }

    #[test]
    fn the_bytes_come_through_whole_and_in_order() {
        let (mut r, out, ended) = read_through(false);
        ended.expect("read");
        assert_eq!(out, data());
        assert_eq!(r.read(&mut [0u8; 8]).expect("after the end"), 0);
    }

    /// The error a stream ends in comes after every byte before it, and is
    /// not turned into an end (a decoder asked again might answer 0).
    #[test]
    fn an_error_comes_after_the_bytes_before_it() {
        let (_, out, ended) = read_through(true);
        let e = ended.expect_err("the cut");
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(out, data());
    }
}
