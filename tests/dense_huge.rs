//! `HugePages::Dense`, the allocator's default: a large block that was reused
//! `DENSE_REUSES` times and is found written whole when freed gets huge pages (its pages are
//! given back, so it reads as zero); a block written sparsely never does, nor does any block
//! under `HugePages::Never`; and no byte is lost on the way.
#![cfg(all(target_os = "linux", not(feature = "force-fallback")))]

use remapvec::{DENSE_REUSES, HugePages, RemapAlloc};
use std::alloc::{GlobalAlloc, Layout};
use std::sync::Mutex;

/// The recycler is process-wide: these tests take turns, each from an empty recycler (a
/// block kept by another test, already in huge pages, could serve or be grown for a request).
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    let g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    remapvec::release_cached();
    g
}

const MIB: usize = 1 << 20;

/// Whether the machine gives transparent huge pages to memory advised for them.
fn thp_usable() -> bool {
    std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
        .is_ok_and(|s| !s.contains("[never]"))
}

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
    if thp_usable() {
        assert!(
            made >= 1,
            "a dense block reused {rounds} times was never given huge pages"
        );
    } else {
        assert_eq!(made, 0, "huge pages are off on this machine");
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
