//! Allocator settings for the large, short-lived buffers handed to Python.
//!
//! Every read returns a new `bytes`, often several MiB. glibc maps such blocks afresh by default
//! until a free raises its threshold, and each fresh 4 KiB page costs a fault that clears it —
//! more CPU than the copy that fills it. The pipeline's own buffers are recycled by
//! [`crate::buffer_pool`], so the heaps can serve these blocks without drifting: blocks up to
//! [`HEAP_UP_TO`] come from the heap and a heap keeps as much free at its top for the next one.
//! Larger blocks (a whole large object read at once) are still mapped, with huge pages asked for.

/// Blocks up to this size come from the heap (two default parts).
pub const HEAP_UP_TO: usize = 16 << 20;

const HUGE_PAGE: usize = 2 << 20;

/// Applies the thresholds; call once, before large buffers exist.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, HEAP_UP_TO as libc::c_int);
        libc::mallopt(libc::M_TRIM_THRESHOLD, HEAP_UP_TO as libc::c_int);
    }
}

/// Asks for transparent huge pages on untouched memory `data..data+len` (the whole 2 MiB pages
/// inside it): one fault per 2 MiB instead of 512. A hint; where THP is off nothing changes.
pub fn prefer_huge_pages(data: *mut u8, len: usize) {
    let start = (data as usize).next_multiple_of(HUGE_PAGE);
    let end = (data as usize).saturating_add(len) / HUGE_PAGE * HUGE_PAGE;
    if end <= start {
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: the range lies inside memory the caller owns; MADV_HUGEPAGE leaves contents and
    // mappings as they are. Its result is ignored: failing only means small pages.
    unsafe {
        libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
    }
}
