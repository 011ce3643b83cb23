//! Memory a caller lends the pipeline for one whole object: the download writes the body
//! straight into it, and the caller gets it back as the object's bytes — in Python, a `bytes`
//! the download filled, so reading the object whole copies nothing more.

use std::any::Any;
use std::sync::Arc;

use bytes::Bytes;

use crate::memory::destination::Destination;

/// What keeps lent memory alive. The caller recognises its own type again with
/// [`Chunks::lent`](crate::memory::chunks::Chunks::lent) and a downcast.
pub(crate) type Owner = Arc<dyn Any + Send + Sync>;

/// Writable memory kept alive by `owner`.
///
/// The download holds a clone of `owner` for as long as it may write, so the memory outlives
/// every write however the download ends (finished, failed or aborted).
pub(crate) struct Lent {
    memory: Destination,
    owner: Owner,
}

impl std::fmt::Debug for Lent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lent").field("len", &self.len()).finish()
    }
}

impl Lent {
    /// # Safety
    /// `ptr..ptr+len` stays valid while `owner` is alive, and nothing but this value reads or
    /// writes it until the bytes come back through [`Chunks::lent`](crate::memory::chunks::Chunks::lent).
    pub(crate) unsafe fn new(ptr: *mut u8, len: usize, owner: Owner) -> Self {
        // SAFETY: as promised by the caller; `owner`, held beside it, keeps the memory valid.
        let memory = unsafe { Destination::new(ptr, len) };
        Lent { memory, owner }
    }

    /// Cuts it at `at` (clamped to its length) into `..at` and `at..`, both kept alive by the
    /// same owner: one piece per part of a large object lent whole.
    pub(crate) fn split(self, at: usize) -> (Lent, Lent) {
        let (head, tail) = self.memory.split(at);
        let owner = self.owner;
        (
            Lent {
                memory: head,
                owner: owner.clone(),
            },
            Lent {
                memory: tail,
                owner,
            },
        )
    }

    /// What keeps the memory alive.
    pub(crate) fn owner(&self) -> &Owner {
        &self.owner
    }

    /// Bytes lent.
    pub(crate) fn len(&self) -> usize {
        self.memory.len()
    }

    /// Faults the memory in with one call ahead of the writes (fresh memory would otherwise
    /// fault once per page during them; see [`crate::memory::pages::populate`]).
    pub(crate) fn populate(&mut self) {
        let memory = self.memory.as_mut_slice();
        crate::memory::pages::populate(memory.as_mut_ptr(), memory.len());
    }

    /// The lent memory, to write into in place.
    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        self.memory.as_mut_slice()
    }

    /// The lent memory as it is now (what has been written, to whoever wrote it).
    pub(crate) fn as_slice(&self) -> &[u8] {
        self.memory.as_slice()
    }

    /// Copies `data` to offset `at`; false (and nothing written) when it does not fit.
    pub(crate) fn write(&mut self, at: usize, data: &[u8]) -> bool {
        self.memory.write(at, data)
    }

    /// The first `filled` bytes (at most all), now written, as shared bytes that keep the owner
    /// alive; and the owner.
    pub(crate) fn into_bytes(self, filled: usize) -> (Bytes, Owner) {
        let owner = self.owner.clone();
        let filled = filled.min(self.len());
        (Bytes::from_owner(Filled { lent: self, filled }), owner)
    }
}

/// Written lent memory, read-only from here on.
struct Filled {
    lent: Lent,
    filled: usize,
}

impl AsRef<[u8]> for Filled {
    fn as_ref(&self) -> &[u8] {
        &self.lent.memory.as_slice()[..self.filled]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_land_in_the_lent_memory_and_come_back_without_a_copy() {
        let memory: Arc<std::sync::Mutex<Vec<u8>>> = Arc::new(std::sync::Mutex::new(vec![0; 8]));
        let ptr = memory.lock().unwrap().as_mut_ptr();
        // SAFETY: the vector is never resized and is only touched through `lent` below.
        let mut lent = unsafe { Lent::new(ptr, 8, memory.clone()) };
        assert!(lent.write(0, b"abc"));
        assert!(lent.write(3, b"defgh"));
        assert!(!lent.write(6, b"xyz"), "past the end");
        assert!(!lent.write(usize::MAX, b"x"), "overflowing offset");
        let (bytes, owner) = lent.into_bytes(8);
        assert_eq!(&bytes[..], b"abcdefgh");
        assert_eq!(bytes.as_ptr(), ptr, "the same memory");
        assert!(owner.downcast::<std::sync::Mutex<Vec<u8>>>().is_ok());
        assert_eq!(Arc::strong_count(&memory), 2, "the bytes keep it alive");
        drop(bytes);
        assert_eq!(Arc::strong_count(&memory), 1);
    }

    #[test]
    fn pieces_of_lent_memory_write_in_place_and_share_the_owner() {
        let memory: Arc<std::sync::Mutex<Vec<u8>>> = Arc::new(std::sync::Mutex::new(vec![0; 8]));
        let ptr = memory.lock().unwrap().as_mut_ptr();
        // SAFETY: the vector is never resized and is only touched through the pieces below.
        let lent = unsafe { Lent::new(ptr, 8, memory.clone()) };
        let (mut head, tail) = lent.split(3);
        let (mut mid, mut last) = tail.split(10);
        assert_eq!((head.len(), mid.len(), last.len()), (3, 5, 0));
        assert!(head.write(0, b"abc"));
        assert!(mid.write(0, b"defgh"));
        assert!(!last.write(0, b"x"), "nothing left to write");
        assert_eq!(
            Arc::strong_count(&memory),
            4,
            "every piece keeps the memory alive"
        );
        let (bytes, _) = mid.into_bytes(5);
        assert_eq!(&bytes[..], b"defgh");
        assert_eq!(bytes.as_ptr(), ptr.wrapping_add(3), "in place");
        drop((head, last, bytes));
        assert_eq!(memory.lock().unwrap().as_slice(), b"abcdefgh");
        assert_eq!(Arc::strong_count(&memory), 1);
    }
}
