//! Memory owned by the caller that a download writes into directly: the part of a `bytes` or of
//! a `readinto` buffer that a range of an object belongs in, so its bytes skip the pipeline's
//! own buffers.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

/// A writable run of bytes somewhere in the caller's memory.
///
/// It is a raw pointer because the memory belongs to Python: whoever creates one promises
/// that the memory stays valid, and is written by nothing else, until every task given a
/// piece of it has stopped (see [`Writers`]).
#[derive(Debug)]
pub(crate) struct Destination {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: a `Destination` is the only handle to its bytes (`split` hands out disjoint pieces
// and consumes the original), so moving it to another thread moves the exclusive access.
unsafe impl Send for Destination {}

impl Destination {
    /// # Safety
    /// `ptr..ptr+len` is writable memory that nothing else reads or writes while this value or
    /// any piece split from it exists, and that outlives them (wait for [`Writers::stopped`]).
    pub(crate) unsafe fn new(ptr: *mut u8, len: usize) -> Self {
        Destination { ptr, len }
    }

    /// Bytes it holds.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Cuts it at `at` (clamped to its length) into `..at` and `at..`.
    pub(crate) fn split(self, at: usize) -> (Destination, Destination) {
        let at = at.min(self.len);
        // SAFETY: both pieces lie inside this destination's memory and do not overlap; the
        // original is consumed, so each byte keeps exactly one owner.
        unsafe {
            (
                Destination::new(self.ptr, at),
                Destination::new(self.ptr.add(at), self.len - at),
            )
        }
    }

    /// The bytes as they are now (what has been written, for a holder that wrote them).
    pub(crate) fn as_slice(&self) -> &[u8] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: valid memory of `len` bytes (see `new`) that only this handle writes, and
        // not while this shared borrow lasts.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    /// The bytes as a slice, to copy into.
    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        if self.len == 0 {
            return &mut [];
        }
        // SAFETY: valid, exclusive memory of `len` bytes (see `new`); the borrow of `self`
        // keeps the slice from outliving this handle.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }

    /// Copies `data` to offset `at`; false (and nothing written) when it does not fit.
    pub(crate) fn write(&mut self, at: usize, data: &[u8]) -> bool {
        if at.checked_add(data.len()).is_none_or(|end| end > self.len) {
            return false;
        }
        // SAFETY: `at + data.len() <= len`, and this value has exclusive access (see `new`).
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), self.ptr.add(at), data.len()) };
        true
    }
}

/// Counts the tasks writing into a caller's memory, so the caller can wait until none is left
/// before it gives the memory back (after success, an error or Ctrl-C alike).
#[derive(Debug, Default)]
pub(crate) struct Writers {
    live: AtomicUsize,
    stopped: Notify,
}

/// Held by one writing task; dropping it (the task ended or was aborted) counts it out.
#[derive(Debug)]
pub(crate) struct WriterGuard(Arc<Writers>);

impl Writers {
    /// Counts a new writer in.
    pub(crate) fn enter(self: &Arc<Self>) -> WriterGuard {
        self.live.fetch_add(1, Ordering::AcqRel);
        WriterGuard(self.clone())
    }

    /// Resolves once no writer is left.
    pub(crate) async fn stopped(&self) {
        loop {
            let notified = self.stopped.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.live.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for WriterGuard {
    fn drop(&mut self) {
        if self.0.live.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.stopped.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_write_where_they_belong_and_refuse_overflow() {
        let mut memory = vec![0u8; 10];
        // SAFETY: `memory` outlives the destinations and is not touched while they exist.
        let whole = unsafe { Destination::new(memory.as_mut_ptr(), memory.len()) };
        let (mut head, tail) = whole.split(4);
        let (mut mid, mut last) = tail.split(20);
        assert_eq!((head.len(), mid.len(), last.len()), (4, 6, 0));
        assert!(head.write(1, b"abc"));
        assert!(!head.write(2, b"abc"), "past the end");
        assert!(!head.write(usize::MAX, b"a"), "overflowing offset");
        assert!(mid.write(0, b"123456"));
        assert!(last.write(0, b""));
        assert!(!last.write(0, b"x"));
        assert_eq!(&memory, b"\0abc123456");
    }

    #[test]
    fn stopped_waits_for_every_writer() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let writers = Arc::new(Writers::default());
        rt.block_on(writers.stopped()); // none yet
        let a = writers.enter();
        let b = writers.enter();
        let w = writers.clone();
        let waiting = rt.spawn(async move { w.stopped().await });
        drop(a);
        rt.block_on(tokio::task::yield_now());
        assert!(!waiting.is_finished(), "one writer is still live");
        drop(b);
        rt.block_on(waiting).unwrap();
    }
}
