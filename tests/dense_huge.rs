//! `HugePages::Dense`, the allocator's default: a large block that was reused
//! `DENSE_REUSES` times and is found written whole when freed gets huge pages (its pages are
//! given back, so it reads as zero); a block written sparsely never does, nor does any block
//! under `HugePages::Never`; and no byte is lost on the way.
#![cfg(all(target_os = "linux", not(feature = "force-fallback")))]

#[path = "common/huge.rs"]
mod huge;
use huge::*;

use remapvec::{DENSE_REUSES, HugePages, RemapAlloc};
use std::alloc::{GlobalAlloc, Layout};

/// The allocator's own count of blocks given huge pages.
fn made_huge() -> u64 {
    RemapAlloc::stats().made_huge
}

/// Allocates, writes (every `stride`-th byte, with a pattern of the round), checks and frees
/// a block of `layout` `rounds` times. Returns the addresses the blocks had.
fn churn(a: &RemapAlloc, layout: Layout, rounds: usize, stride: usize) -> Vec<usize> {
    let mut addrs = Vec::new();
    for r in 0..rounds {
        // SAFETY: a non-zero size.
        let p = unsafe { a.alloc(layout) };
        assert!(!p.is_null());
        addrs.push(p as usize);
        let v = (r % 251) as u8 + 1;
        for i in (0..layout.size()).step_by(stride) {
            // SAFETY: inside the block.
            unsafe { p.add(i).write(v) };
        }
        for i in (0..layout.size()).step_by(stride * 7 + 1) {
            let want = if i % stride == 0 { v } else { 0 };
            // SAFETY: inside the block.
            let got = unsafe { p.add(i).read() };
            // Bytes not written this round may hold an older round's (a plain alloc).
            assert!(
                got == want || want == 0,
                "round {r}, byte {i}: {got} != {want}"
            );
        }
        // SAFETY: the block was allocated above with this layout.
        unsafe { a.dealloc(p, layout) };
    }
    addrs
}

#[test]
fn a_block_reused_and_written_whole_gets_huge_pages_and_reads_zero_after() {
    let _s = serial();
    let a = RemapAlloc::new();
    assert_eq!(a.get_huge_page_policy(), HugePages::Dense);
    let layout = Layout::from_size_align(8 * MIB, 8).unwrap();
    let before = made_huge();
    let rounds = usize::from(DENSE_REUSES) + 4;
    churn(&a, layout, rounds, 1);
    let made = made_huge() - before;
    if converts() {
        assert!(
            made >= 1,
            "a dense block reused {rounds} times was never given huge pages"
        );
    } else {
        assert_eq!(
            made, 0,
            "THP is not in madvise mode here: nothing is converted"
        );
    }
    // Whatever block comes next, zeroed means zero everywhere (the renewed one needs no memset:
    // its pages were given back).
    // SAFETY: a non-zero size.
    let p = unsafe { a.alloc_zeroed(layout) };
    assert!(!p.is_null());
    // SAFETY: the block is `layout.size()` bytes.
    let s = unsafe { std::slice::from_raw_parts(p, layout.size()) };
    assert!(s.iter().all(|&b| b == 0), "a zeroed block held old bytes");
    // SAFETY: allocated above with this layout.
    unsafe { a.dealloc(p, layout) };
    // And a block that got huge pages keeps every byte written to it.
    churn(&a, layout, 4, 1);
}

#[test]
fn a_block_written_sparsely_never_gets_huge_pages() {
    let _s = serial();
    let a = RemapAlloc::new();
    // One byte in every 64 KiB: most pages are never touched.
    let layout = Layout::from_size_align(8 * MIB + 4096, 8).unwrap();
    let before = made_huge();
    churn(&a, layout, usize::from(DENSE_REUSES) + 8, 64 << 10);
    assert_eq!(
        made_huge() - before,
        0,
        "a sparse block was given huge pages"
    );
}

#[test]
fn never_means_never() {
    let _s = serial();
    let a = RemapAlloc::new().huge_page_policy(HugePages::Never);
    assert!(!a.is_huge_pages());
    let layout = Layout::from_size_align(4 * MIB + 8192, 8).unwrap();
    let before = made_huge();
    churn(&a, layout, usize::from(DENSE_REUSES) + 8, 1);
    assert_eq!(made_huge() - before, 0);
}

#[test]
fn dense_blocks_of_many_threads_keep_their_bytes() {
    let _s = serial();
    static A: RemapAlloc = RemapAlloc::new();
    let threads: Vec<_> = (0..4usize)
        .map(|t| {
            std::thread::spawn(move || {
                let layout = Layout::from_size_align((2 + t) * MIB, 8).unwrap();
                churn(&A, layout, usize::from(DENSE_REUSES) + 6, 1 + t * 4096);
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

// Found by review: a block grown from or out of one made huge, sparse writes, a conversion that
// would claim zero pages it did not drop, a dense head over a sparse rest, a `Never` allocator
// next to huge pieces, and mixed sizes with reallocations.

/// Makes the allocator's recycler hold an 8 MiB block that was made huge (Dense): reused
/// `DENSE_REUSES` + 2 times, written whole.
fn make_one_huge(a: &RemapAlloc) {
    let layout = Layout::from_size_align(8 * MIB, 8).unwrap();
    for r in 0..usize::from(DENSE_REUSES) + 2 {
        // SAFETY: blocks of this allocator, used within their layouts and freed once with them.
        unsafe {
            let p = a.alloc(layout);
            p.write_bytes(r as u8 + 1, layout.size());
            a.dealloc(p, layout);
        }
    }
}

/// A large zeroed table written sparsely (one byte per 2 MiB), as a hash table or a bitmap
/// would be, allocated after a busy 8 MiB buffer churned. Returns (Rss, AnonHuge) KiB of it.
fn sparse_table_after_churn(a: &RemapAlloc) -> (u64, u64) {
    remapvec::release_cached();
    make_one_huge(a);
    let big = Layout::from_size_align(512 * MIB, 8).unwrap();
    // SAFETY: blocks of this allocator, used within their layouts and freed once with them.
    unsafe {
        let p = a.alloc_zeroed(big);
        assert!(!p.is_null());
        for i in (0..big.size()).step_by(2 * MIB) {
            p.add(i + 4096 * 7).write(1);
        }
        let r = rss_of(p as usize, big.size());
        a.dealloc(p, big);
        remapvec::release_cached();
        r
    }
}

#[test]
fn sparse_table_grown_from_a_huge_kept_block() {
    let _g = serial();
    let never = sparse_table_after_churn(&RemapAlloc::new().huge_page_policy(HugePages::Never));
    let before = RemapAlloc::stats().made_huge;
    let dense = sparse_table_after_churn(&RemapAlloc::new());
    let made = RemapAlloc::stats().made_huge - before;
    assert!(
        dense.0 < 4 * never.0,
        "Dense: {dense:?} KiB, Never: {never:?} KiB ({made} made huge)"
    );
}

/// realloc of a block that got huge pages to 512 MiB, then sparse writes past the old end.
fn realloc_sparse(a: &RemapAlloc) -> (u64, u64) {
    remapvec::release_cached();
    make_one_huge(a);
    let l8 = Layout::from_size_align(8 * MIB, 8).unwrap();
    // SAFETY: blocks of this allocator, used within their layouts and freed once with them.
    unsafe {
        let p = a.alloc(l8);
        p.write_bytes(7, l8.size());
        let q = a.realloc(p, l8, 512 * MIB);
        assert!(!q.is_null());
        for i in (0..8 * MIB).step_by(4096) {
            assert_eq!(*q.add(i), 7);
        }
        for i in (8 * MIB..512 * MIB).step_by(2 * MIB) {
            q.add(i + 4096 * 3).write(1);
        }
        let r = rss_of(q as usize, 512 * MIB);
        a.dealloc(q, Layout::from_size_align(512 * MIB, 8).unwrap());
        remapvec::release_cached();
        r
    }
}

#[test]
fn realloc_of_a_huge_block_written_sparsely() {
    let _g = serial();
    let never = realloc_sparse(&RemapAlloc::new().huge_page_policy(HugePages::Never));
    let dense = realloc_sparse(&RemapAlloc::new());
    assert!(
        dense.0 < 4 * never.0,
        "Dense: {dense:?} KiB, Never: {never:?} KiB"
    );
}

/// The block freed right when it is made huge reads as zero to the next `alloc_zeroed`
/// (catches a conversion that claims a dirty extent of 0 without dropping the pages).
#[test]
fn zeroed_right_after_the_conversion() {
    let _g = serial();
    let a = RemapAlloc::new();
    let layout = Layout::from_size_align(8 * MIB, 8).unwrap();
    let before = RemapAlloc::stats().made_huge;
    for r in 0..200 {
        // SAFETY: blocks of this allocator, used within their layouts and freed once with them.
        unsafe {
            let p = a.alloc(layout);
            p.write_bytes(r as u8 + 1, layout.size());
            a.dealloc(p, layout);
        }
        if RemapAlloc::stats().made_huge > before {
            break;
        }
    }
    if !converts() {
        return; // THP is not in madvise mode here: nothing is converted.
    }
    assert!(RemapAlloc::stats().made_huge > before, "never made huge");
    // SAFETY: blocks of this allocator, used within their layouts and freed once with them.
    unsafe {
        let p = a.alloc_zeroed(layout);
        let s = std::slice::from_raw_parts(p, layout.size());
        let bad = s.iter().position(|&b| b != 0);
        assert_eq!(
            bad, None,
            "alloc_zeroed right after the conversion held old bytes"
        );
        a.dealloc(p, layout);
    }
    remapvec::release_cached();
}

/// Dense in its first 2 MiB only: never made huge (catches a `resident` that looks at the
/// first 512 pages only).
#[test]
fn dense_head_sparse_rest_is_not_made_huge() {
    let _g = serial();
    let a = RemapAlloc::new();
    let layout = Layout::from_size_align(8 * MIB, 8).unwrap();
    let before = RemapAlloc::stats().made_huge;
    for r in 0..usize::from(DENSE_REUSES) + 8 {
        // SAFETY: blocks of this allocator, used within their layouts and freed once with them.
        unsafe {
            let p = a.alloc(layout);
            p.write_bytes(r as u8 + 1, 2 * MIB);
            for i in (2 * MIB..layout.size()).step_by(64 << 10) {
                p.add(i).write(1);
            }
            a.dealloc(p, layout);
        }
    }
    assert_eq!(
        RemapAlloc::stats().made_huge,
        before,
        "a sparse block was made huge"
    );
    remapvec::release_cached();
}

/// After a Dense block was made huge and trimmed by a smaller Dense request, a `Never`
/// allocator never gets memory advised for huge pages (catches a trimmed tail that loses its
/// huge flag).
#[test]
fn never_gets_no_advised_piece_of_a_huge_block() {
    let _g = serial();
    let dense = RemapAlloc::new();
    let never = RemapAlloc::new().huge_page_policy(HugePages::Never);
    let before = RemapAlloc::stats().made_huge;
    make_one_huge(&dense);
    if !converts() {
        return; // THP is not in madvise mode here: nothing is converted.
    }
    assert!(RemapAlloc::stats().made_huge > before, "never made huge");
    let l4 = Layout::from_size_align(4 * MIB, 8).unwrap();
    // SAFETY: blocks of this allocator, used within their layouts and freed once with them.
    unsafe {
        let d = dense.alloc(l4);
        let n = never.alloc(l4);
        n.write_bytes(1, l4.size());
        let bad = advised_huge(n as usize);
        never.dealloc(n, l4);
        dense.dealloc(d, l4);
        assert!(
            !bad,
            "a HugePages::Never block lies in memory advised MADV_HUGEPAGE"
        );
    }
    remapvec::release_cached();
}

/// Several threads, mixed sizes, alloc / alloc_zeroed / realloc / free under Dense, every
/// byte checked: nothing lost, zeroed is zero, alignment kept.
#[test]
fn dense_mixed_stress_keeps_every_byte() {
    let _g = serial();
    static A: RemapAlloc = RemapAlloc::new();
    let before = RemapAlloc::stats().made_huge;
    let threads: Vec<_> = (0..3u64)
        .map(|t| {
            std::thread::spawn(move || {
                let mut s = 0x9e37_79b9_7f4a_7c15u64 ^ (t + 1);
                let mut rnd = move || {
                    s ^= s >> 12;
                    s ^= s << 25;
                    s ^= s >> 27;
                    s.wrapping_mul(0x2545_f491_4f6c_dd1d)
                };
                let mut live: Vec<(usize, Layout, u8)> = Vec::new();
                // SAFETY: blocks of this allocator, used within their layouts and freed once with them.
                let fill = |p: *mut u8, from: usize, to: usize, v: u8| unsafe {
                    for i in (from..to).step_by(512) {
                        p.add(i).write(v ^ (i >> 9) as u8);
                    }
                };
                // SAFETY: blocks of this allocator, used within their layouts and freed once with them.
                let check = |p: *mut u8, to: usize, v: u8, what: &str| unsafe {
                    for i in (0..to).step_by(512) {
                        assert_eq!(*p.add(i), v ^ (i >> 9) as u8, "{what}: byte {i} of {to}");
                    }
                };
                for i in 0..3000u32 {
                    let u = rnd();
                    let size = ((128u64 << 10) as f64
                        * (96f64).powf((u >> 11) as f64 / (1u64 << 53) as f64))
                        as usize;
                    let align = [8usize, 4096, 2 << 20][(u % 3) as usize];
                    let layout = Layout::from_size_align(size, align).unwrap();
                    let v = (i % 251) as u8 + 1;
                    let p = if u & 8 == 0 {
                        // SAFETY: blocks of this allocator, used within their layouts and freed once with them.
                        let p = unsafe { A.alloc_zeroed(layout) };
                        assert!(!p.is_null());
                        // SAFETY: blocks of this allocator, used within their layouts and freed once with them.
                        let z = unsafe { std::slice::from_raw_parts(p, size) };
                        assert!(z.iter().all(|&b| b == 0), "alloc_zeroed not zero");
                        p
                    } else {
                        // SAFETY: blocks of this allocator, used within their layouts and freed once with them.
                        unsafe { A.alloc(layout) }
                    };
                    assert!((p as usize).is_multiple_of(align), "misaligned");
                    // Dense writes: every page written (as the churn does).
                    // SAFETY: blocks of this allocator, used within their layouts and freed once with them.
                    unsafe { p.write_bytes(0xee, size) };
                    fill(p, 0, size, v);
                    live.push((p as usize, layout, v));
                    if live.len() > 4 {
                        let k = (rnd() % live.len() as u64) as usize;
                        let (p, layout, v) = live.swap_remove(k);
                        let p = p as *mut u8;
                        check(p, layout.size(), v, "before free/realloc");
                        if rnd() % 4 == 0 {
                            let new = (layout.size() as f64 * [0.3, 1.7, 3.0][(rnd() % 3) as usize])
                                as usize;
                            let new = new.max(1);
                            // SAFETY: blocks of this allocator, used within their layouts and freed once with them.
                            let q = unsafe { A.realloc(p, layout, new) };
                            assert!(!q.is_null());
                            assert!(
                                (q as usize).is_multiple_of(layout.align()),
                                "realloc misaligned"
                            );
                            check(q, layout.size().min(new), v, "after realloc");
                            let nl = Layout::from_size_align(new, layout.align()).unwrap();
                            if new > layout.size() {
                                // SAFETY: blocks of this allocator, used within their layouts and freed once with them.
                                unsafe {
                                    q.add(layout.size()).write_bytes(0xee, new - layout.size())
                                };
                            }
                            fill(q, 0, new, v);
                            live.push((q as usize, nl, v));
                        } else {
                            // SAFETY: blocks of this allocator, used within their layouts and freed once with them.
                            unsafe { A.dealloc(p, layout) };
                        }
                    }
                }
                for (p, layout, v) in live {
                    check(p as *mut u8, layout.size(), v, "at the end");
                    // SAFETY: blocks of this allocator, used within their layouts and freed once with them.
                    unsafe { A.dealloc(p as *mut u8, layout) };
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let _ = RemapAlloc::stats().made_huge - before;
    remapvec::release_cached();
}
