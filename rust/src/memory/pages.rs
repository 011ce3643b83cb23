//! Allocator settings for the large, short-lived buffers handed to Python.
//!
//! Every read returns a new `bytes`, often several MiB. glibc maps such blocks afresh by default
//! until a free raises its threshold, and each fresh 4 KiB page costs a fault that clears it —
//! more CPU than the copy that fills it. The pipeline's own buffers are recycled by
//! [`crate::memory::buffer_pool`], so the heaps can serve these blocks without drifting: blocks up to
//! [`HEAP_UP_TO`] come from the heap and a heap keeps as much free at its top for the next one.
//! Larger blocks (a whole large object read at once) are still mapped, with huge pages asked for.

/// Blocks up to this size come from the heap (two default parts).
pub(crate) const HEAP_UP_TO: usize = 16 << 20;

const HUGE_PAGE: usize = 2 << 20;

/// Applies the thresholds; call once, before large buffers exist.
pub(crate) fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, HEAP_UP_TO as libc::c_int);
        libc::mallopt(libc::M_TRIM_THRESHOLD, HEAP_UP_TO as libc::c_int);
    }
}

/// Asks for transparent huge pages on untouched memory `data..data+len` (the whole 2 MiB pages
/// inside it): one fault per 2 MiB instead of 512. A hint; where THP is off nothing changes.
pub(crate) fn prefer_huge_pages(data: *mut u8, len: usize) {
    advise(data, len, HUGE_PAGE, Advice::HugePages);
}

/// Faults in untouched memory `data..data+len` (its whole 4 KiB pages) in one call, ahead of
/// the writes. A hint: where the kernel lacks it (before 5.14), the writes fault as usual.
pub(crate) fn populate(data: *mut u8, len: usize) {
    advise(data, len, 4096, Advice::Populate);
}

#[derive(Clone, Copy)]
enum Advice {
    HugePages,
    Populate,
}

/// `madvise` over the whole `page`-sized pages inside `data..data+len`; its result is ignored.
fn advise(data: *mut u8, len: usize, page: usize, advice: Advice) {
    let start = (data as usize).next_multiple_of(page);
    let end = (data as usize).saturating_add(len) / page * page;
    if end <= start {
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let flag = match advice {
            Advice::HugePages => libc::MADV_HUGEPAGE,
            Advice::Populate => libc::MADV_POPULATE_WRITE,
        };
        // SAFETY: the range lies inside memory the caller owns. MADV_HUGEPAGE leaves contents
        // and mappings as they are; MADV_POPULATE_WRITE only faults pages in (zeroed where new,
        // contents kept where present). Failing changes nothing but speed.
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, flag);
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = advice;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn populate_keeps_what_is_there() {
        // A recycled heap block may be populated again: its bytes must survive.
        let mut block: Vec<u8> = (0..(1usize << 20)).map(|i| (i % 251) as u8).collect();
        populate(block.as_mut_ptr(), block.len());
        populate(block.as_mut_ptr().wrapping_add(1), 10); // less than a page: nothing to do
        assert!(block.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8));
    }
}
