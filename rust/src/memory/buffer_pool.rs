//! Recycled download buffers.
//!
//! Parts are MiB-sized and short-lived: the pipeline fills one, Python copies it out, it is
//! dropped. Freed to the allocator, such a buffer either goes back to the OS and returns as
//! fresh pages, each costing a fault that clears it (which took more CPU than the copies), or
//! stays in the heap of whichever runtime thread allocated it, where heaps grow to their own
//! peaks and the process's RSS drifts above the prefetch budget. Recycling them avoids both:
//! a buffer is reused for any later download of a similar size, and idle buffers are bounded
//! by the largest prefetch budget of the process.

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::per_process::PerProcess;

/// Buffers smaller than this come from the allocator as usual: only large bodies are
/// gathered into buffers of this pool.
pub(crate) const POOLED_FROM: usize = super::LARGE_BODY;

/// Idle buffers by capacity, bounded in total bytes.
#[derive(Debug, Default)]
struct Idle {
    by_capacity: BTreeMap<usize, Vec<Vec<u8>>>,
    bytes: usize,
    limit: usize,
}

/// This process's idle buffers (a forked child starts with none).
static IDLE: PerProcess<Idle> = PerProcess::new();

/// Lets up to `bytes` of idle buffers be kept (the largest limit asked for wins). Whoever
/// budgets the bytes that arrive in these buffers asks for as much (see
/// [`crate::session::Session::budget`]).
pub(crate) fn keep_idle_up_to(bytes: u64) {
    IDLE.with(Idle::default, |idle| {
        idle.limit = idle.limit.max(usize::try_from(bytes).unwrap_or(usize::MAX));
    });
}

/// Bytes of idle buffers held now.
#[cfg(test)]
fn idle_bytes() -> usize {
    IDLE.with(Idle::default, |idle| idle.bytes)
}

/// A buffer being filled; once full, [`PooledBuf::freeze`] turns it into `Bytes` that return the
/// memory to the pool when the last reference is dropped.
#[derive(Debug)]
pub(crate) struct PooledBuf {
    data: Vec<u8>,
}

impl PooledBuf {
    /// An empty buffer with room for at least `len` bytes: an idle one at most a quarter larger,
    /// else a new one.
    pub(crate) fn with_capacity(len: usize) -> Self {
        if len >= POOLED_FROM {
            let fitting = IDLE.with(Idle::default, |idle| {
                let data = idle
                    .by_capacity
                    .range_mut(len..=len.saturating_add(len / 4))
                    .find_map(|(_, list)| list.pop())?;
                idle.bytes -= data.capacity();
                idle.by_capacity.retain(|_, list| !list.is_empty());
                Some(data)
            });
            if let Some(mut data) = fitting {
                data.clear();
                return PooledBuf { data };
            }
        }
        // Small pages, unlike a large result: a pooled buffer faults once per process and is
        // recycled afterwards, and a new process (each DataLoader worker) touches memory its VM
        // may have handed back to the host, where a 2 MiB page's first touch was 2-3x slower
        // than 512 small ones (BENCHMARKS.md, "Where we stand"). Faulted in with one call rather
        // than a fault per page as the socket's bytes are copied in.
        let mut data = Vec::with_capacity(len);
        if len >= POOLED_FROM {
            let spare = data.spare_capacity_mut();
            crate::memory::pages::populate(spare.as_mut_ptr().cast(), spare.len());
        }
        PooledBuf { data }
    }

    /// Bytes written so far.
    pub(crate) fn len(&self) -> usize {
        self.data.len()
    }

    /// Appends bytes (growing the buffer if they do not fit).
    pub(crate) fn extend_from_slice(&mut self, bytes: &[u8]) {
        self.data.extend_from_slice(bytes);
    }

    /// The buffer, for reads that write into its spare capacity in place.
    pub(crate) fn as_vec_mut(&mut self) -> &mut Vec<u8> {
        &mut self.data
    }

    /// The bytes written so far.
    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.data
    }

    /// Shared, immutable bytes over this buffer; the memory returns to the pool once they and
    /// every slice of them are dropped.
    pub(crate) fn freeze(mut self) -> Bytes {
        if self.data.capacity() < POOLED_FROM {
            return Bytes::from(std::mem::take(&mut self.data));
        }
        Bytes::from_owner(Returning(self))
    }
}

impl Drop for PooledBuf {
    fn drop(&mut self) {
        let capacity = self.data.capacity();
        if capacity < POOLED_FROM {
            return;
        }
        IDLE.with(Idle::default, |idle| {
            if idle.bytes + capacity <= idle.limit {
                idle.bytes += capacity;
                let data = std::mem::take(&mut self.data);
                idle.by_capacity.entry(capacity).or_default().push(data);
            }
        });
    }
}

/// Owner of frozen bytes; dropping it drops the buffer, which returns to the pool.
struct Returning(PooledBuf);

impl AsRef<[u8]> for Returning {
    fn as_ref(&self) -> &[u8] {
        self.0.as_slice()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // One test: the pool is process-wide, so parallel tests would see each other's buffers.
    #[test]
    fn buffers_are_reused_within_the_idle_limit() {
        const P: usize = POOLED_FROM;
        keep_idle_up_to(3 * P as u64);
        let before = idle_bytes();

        let mut buf = PooledBuf::with_capacity(2 * P);
        buf.extend_from_slice(&[7; 100]);
        let bytes = buf.freeze();
        let address = bytes.as_ptr();
        let slice = bytes.slice(10..20);
        drop(bytes);
        assert_eq!(idle_bytes(), before, "a slice still holds the buffer");
        assert_eq!(&slice[..], &[7; 10]);
        drop(slice);
        assert_eq!(idle_bytes(), before + 2 * P);

        // A request of similar size gets the same memory back, emptied.
        let again = PooledBuf::with_capacity(2 * P - 10);
        assert_eq!(again.len(), 0);
        assert_eq!(again.as_slice().as_ptr(), address);
        assert_eq!(idle_bytes(), before);
        drop(again);

        // A buffer much larger than asked stays idle for a better fit.
        let half = PooledBuf::with_capacity(P);
        assert_eq!(idle_bytes(), before + 2 * P);
        drop(half);
        assert_eq!(idle_bytes(), before + 3 * P);

        // Beyond the limit, buffers go back to the allocator.
        drop(PooledBuf::with_capacity(P + P / 2));
        assert_eq!(idle_bytes(), before + 3 * P);

        // Small buffers are never pooled.
        let mut tiny = PooledBuf::with_capacity(10);
        tiny.extend_from_slice(b"abc");
        assert_eq!(&tiny.freeze()[..], b"abc");
        assert_eq!(idle_bytes(), before + 3 * P);
    }
}
