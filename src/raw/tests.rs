use super::*;
use crate::sys;

/// Without the process-wide reuse cache, which tests running in parallel share: these tests
/// assert exact capacities and counts.
fn opts(threshold: usize) -> VecOptions {
    VecOptions::new()
        .heap_threshold(threshold)
        .reuse_freed(false)
}

#[test]
fn small_capacities_stay_on_the_heap() {
    let mut r: RawVec<u64> = RawVec::new(VecOptions::new().reuse_freed(false));
    r.reserve(0, 100);
    assert!(!r.is_mapped());
    assert_eq!(r.capacity(), 100);
    assert_eq!(r.stats().heap_grows, 1);
    assert_eq!(r.stats().grows(), 0);
}

#[test]
fn crossing_the_threshold_copies_once_then_never() {
    let mut r: RawVec<u8> = RawVec::new(opts(64 << 10));
    r.reserve_exact(0, 1000);
    // SAFETY: the buffer has room for 1000 bytes.
    unsafe { r.ptr().write_bytes(7, 1000) };
    r.reserve_exact(1000, 100 << 10);
    assert!(r.is_mapped());
    let s = r.stats();
    assert_eq!((s.copied, s.bytes_copied), (1, 1000));
    // SAFETY: the first 1000 bytes were initialized and carried over.
    let bytes = unsafe { core::slice::from_raw_parts(r.ptr(), 1000) };
    assert!(bytes.iter().all(|&b| b == 7));
    r.reserve_exact(1000, 100 << 20);
    let s = r.stats();
    if sys::HAS_MREMAP {
        assert_eq!(
            (s.copied, s.bytes_copied),
            (1, 1000),
            "a mapped grow copied"
        );
    }
    assert_eq!(s.grows(), 2);
}

#[test]
fn mapped_capacity_is_the_whole_mapping() {
    let page = sys::page_size();
    let mut r: RawVec<u8> = RawVec::new(opts(0));
    r.reserve_exact(0, 1);
    assert_eq!(r.capacity(), page);
    // 24-byte elements: as many as fit in whole pages.
    let mut r: RawVec<[u64; 3]> = RawVec::new(opts(0));
    r.reserve_exact(0, 1);
    assert_eq!(r.capacity(), page / 24);
}

#[test]
fn zero_sized_elements_never_allocate() {
    let mut r: RawVec<()> = RawVec::new(opts(0));
    assert_eq!(r.capacity(), usize::MAX);
    r.reserve(0, usize::MAX);
    assert!(!r.is_mapped());
    assert_eq!(
        r.try_reserve(1, usize::MAX).unwrap_err().kind(),
        TryReserveErrorKind::CapacityOverflow
    );
}

#[test]
fn failed_reserve_keeps_the_buffer() {
    let mut r: RawVec<u64> = RawVec::new(opts(0));
    r.reserve(0, 10);
    let (p, cap) = (r.ptr(), r.capacity());
    assert_eq!(
        r.try_reserve(10, usize::MAX / 8).unwrap_err().kind(),
        TryReserveErrorKind::CapacityOverflow
    );
    let e = r
        .try_reserve(10, isize::MAX as usize / 8 - 100)
        .unwrap_err();
    assert!(
        matches!(
            e.kind(),
            TryReserveErrorKind::AllocError {
                os_error: Some(_),
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!((r.ptr(), r.capacity()), (p, cap));
}

#[test]
fn shrinking_below_the_threshold_returns_to_the_heap() {
    let mut r: RawVec<u8> = RawVec::new(opts(64 << 10));
    r.reserve_exact(0, 1 << 20);
    assert!(r.is_mapped());
    // SAFETY: room for 10 bytes.
    unsafe { r.ptr().write_bytes(3, 10) };
    let calls = r.stats().syscalls;
    r.shrink_to(10, 0);
    assert!(!r.is_mapped());
    assert_eq!(
        r.stats().syscalls,
        calls + 1,
        "the region's munmap is counted"
    );
    assert_eq!(r.capacity(), 10);
    // SAFETY: the 10 bytes were carried over.
    let bytes = unsafe { core::slice::from_raw_parts(r.ptr(), 10) };
    assert!(bytes.iter().all(|&b| b == 3));
    r.shrink_to(0, 0);
    assert_eq!(r.capacity(), 0);
}

#[test]
fn shrinking_a_large_mapping_stays_mapped_in_whole_pages() {
    let page = sys::page_size();
    let mut r: RawVec<u8> = RawVec::new(opts(64 << 10));
    r.reserve_exact(0, 4 << 20);
    r.shrink_to(0, (1 << 20) + 1);
    assert!(r.is_mapped());
    assert_eq!(r.capacity(), (1 << 20) + page);
}

#[test]
fn over_aligned_elements_are_aligned_in_both_phases() {
    #[repr(align(8192))]
    struct Big(#[allow(dead_code)] u8);
    for threshold in [usize::MAX, 0] {
        let mut r: RawVec<Big> = RawVec::new(opts(threshold));
        r.reserve(0, 3);
        assert_eq!(r.ptr() as usize % 8192, 0);
        r.reserve(3, 300);
        assert_eq!(r.ptr() as usize % 8192, 0);
    }
}

#[test]
fn a_dropped_mapping_is_reused_without_faults_or_syscalls() {
    if !sys::HAS_MREMAP {
        return;
    }
    // Tests in parallel share the cache and may take the region first: try a few times.
    let len = 3 << 20;
    let mut hits = 0;
    for _ in 0..20 {
        let mut a: RawVec<u8> = RawVec::new(VecOptions::new());
        a.reserve_exact(0, len);
        let addr = a.ptr() as usize;
        // SAFETY: `len` bytes of capacity; written, never read as `T`s.
        unsafe { a.ptr().write_bytes(1, len) };
        drop(a);
        let b: RawVec<u8> = RawVec::new(VecOptions::new());
        let mut b = b;
        b.reserve_exact(0, len);
        if b.stats().reused == 1 {
            hits += 1;
            assert_eq!(b.ptr() as usize, addr);
            assert!(b.capacity() >= len);
            assert_eq!(
                b.stats().syscalls,
                0,
                "taking a kept mapping costs no system call"
            );
        }
        // Shrinking to nothing unmaps (never cached): explicit shrinking returns memory.
        b.shrink_to(0, 0);
        assert!(!b.is_mapped());
    }
    assert!(hits > 0);
    // A vector that opts out never takes one.
    let mut c: RawVec<u8> = RawVec::new(VecOptions::new().reuse_freed(false));
    c.reserve_exact(0, len);
    assert_eq!(c.stats().reused, 0);
}

/// The vector is four words, an `Option` of it too, and its iterator five.
#[test]
fn the_vector_is_small() {
    use crate::{IntoIter, RemapVec};
    assert!(size_of::<RemapVec<u8>>() <= 32);
    assert_eq!(size_of::<Option<RemapVec<u8>>>(), size_of::<RemapVec<u8>>());
    assert!(size_of::<IntoIter<u64>>() <= 48);
    assert_eq!(size_of::<RawVec<u64>>(), 3 * size_of::<usize>());
}

/// Options survive being packed into one word; thresholds past 2^48 bytes mean "never map".
#[test]
fn options_are_packed_without_loss() {
    for opts in [
        VecOptions::new(),
        VecOptions::new().heap_threshold(0).huge_pages(true),
        VecOptions::new().heap_threshold(12345).reuse_freed(false),
        VecOptions::new().heap_threshold((1 << 48) - 2),
    ] {
        let r: RawVec<u8> = RawVec::new(opts);
        assert_eq!(r.options(), opts);
    }
    let r: RawVec<u8> = RawVec::new(VecOptions::new().heap_threshold(1 << 50));
    assert_eq!(r.options().get_heap_threshold(), usize::MAX);
}

/// Heap grows are counted exactly, also past what the packed word holds, and statistics
/// survive the move into a mapping.
#[test]
fn heap_grows_are_counted_past_the_packed_counter() {
    let mut r: RawVec<u8> = RawVec::new(opts(1 << 20));
    for len in 0..9000 {
        r.reserve_exact(len, 1);
    }
    assert_eq!(r.stats().heap_grows, 9000);
    r.reserve_exact(9000, 2 << 20);
    assert!(r.is_mapped());
    assert_eq!(r.stats().heap_grows, 9000);
    assert_eq!(r.stats().copied, 1);
}

#[test]
fn a_shrunk_mapping_forgets_the_pages_it_gave_back() {
    let mut r: RawVec<u8> = RawVec::new(opts(64 << 10));
    r.reserve_exact(0, 4 << 20);
    assert!(r.is_mapped());
    r.prepare_fill(0, 4 << 20);
    assert_eq!(r.fresh_from(), Some(4 << 20));
    r.shrink_to(0, 1 << 20);
    assert!(r.is_mapped());
    let len = r.capacity();
    assert!(len < 4 << 20);
    assert!(
        r.fresh_from().is_some_and(|f| f <= len),
        "pages beyond the shrunk mapping are taken for touched"
    );
    // Grown back: the regained pages are fresh, and a fill populates them.
    r.reserve_exact(0, 4 << 20);
    assert!(r.fresh_from().is_some_and(|f| f <= len));
}

#[test]
fn a_shorter_length_marks_its_pages_written_unless_only_zeroed() {
    let mut r: RawVec<u64> = RawVec::new(opts(64 << 10));
    r.reserve_exact(0, 16 << 10);
    assert_eq!(r.fresh_from(), Some(0));
    // 1000 elements written (by pushes, say), then the length drops to 10.
    r.len_dropped(1000, 10);
    assert_eq!(r.fresh_from(), Some(8000));
    // Zeros up to the old capacity (128 KiB) are written; the grown tail is exposed as zeros
    // without being written.
    r.try_reserve_zeroed(2000, 1 << 20, true).unwrap();
    r.len_dropped(2000 + (1 << 20), 0);
    assert_eq!(r.fresh_from(), Some(128 << 10));
    // With nothing unwritten left, a shorter length marks its pages again.
    r.len_dropped(1 << 20, 0);
    assert_eq!(r.fresh_from(), Some(8 << 20));
}
