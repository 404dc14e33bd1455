//! Freeing on a thread of its own.
//!
//! Why: where one thread is the one the others wait for (the thread that
//! stages and commits a backfill on several threads, the report's pass),
//! freeing what it is done with (a batch's events, a day's rows, allocated
//! on other threads) is work it need not do. See `pipeline::ingest` and
//! `audit::report`.

use std::sync::mpsc::SyncSender;

/// A thread named `name` that frees what it is sent; at most two values wait.
/// `None` if no thread can be started: the caller then frees in line.
pub fn freer<T: Send + 'static>(name: &str) -> Option<SyncSender<T>> {
    let (tx, rx) = std::sync::mpsc::sync_channel(2);
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || rx.into_iter().for_each(drop))
        .ok()?;
    Some(tx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn what_is_sent_is_freed() {
        let value = Arc::new(7);
        let tx = freer::<Arc<i32>>("test-free").expect("a thread");
        tx.send(Arc::clone(&value)).expect("sent");
        drop(tx);
        // The thread drops its copy; ten seconds is a bound, not a wait.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while Arc::strong_count(&value) > 1 && std::time::Instant::now() < deadline {
            std::thread::yield_now();
        }
        assert_eq!(Arc::strong_count(&value), 1);
    }
}
