//! `HugePages::Dense` counts a block's reuses only while it is handed out as it is: a
//! reallocation, a growth from a smaller kept region or a join starts the count again, and a
//! block found sparse is not asked again at every free. Found by review (each test fails when
//! its reset is removed).

#![cfg(all(target_os = "linux", not(feature = "force-fallback")))]

#[path = "common/huge.rs"]
mod huge;
use huge::*;
use remapvec::{HugePages, RemapAlloc};
use std::alloc::{GlobalAlloc, Layout};
fn made() -> u64 {
    RemapAlloc::stats().made_huge
}
fn lay(n: usize) -> Layout {
    Layout::from_size_align(n, 8).unwrap()
}

/// M9: a realloc starts the count again.
#[test]
fn realloc_resets_reuses() {
    let _g = serial();
    let a = RemapAlloc::new();
    let before = made();
    for r in 0..48u8 {
        // SAFETY: blocks of these allocators, used within their layouts and freed once with them.
        unsafe {
            let p = a.alloc(lay(8 * MIB));
            let q = a.realloc(p, lay(8 * MIB), 4 * MIB);
            let p = a.realloc(q, lay(4 * MIB), 8 * MIB);
            p.write_bytes(r, 8 * MIB);
            a.dealloc(p, lay(8 * MIB));
        }
    }
    let m = made() - before;
    remapvec::release_cached();
    assert_eq!(m, 0, "blocks reallocated every round were made huge");
}

/// M8: a kept region grown for a larger request starts the count again.
#[test]
fn grown_kept_region_resets_reuses() {
    let _g = serial();
    let never = RemapAlloc::new().huge_page_policy(HugePages::Never);
    let dense = RemapAlloc::new();
    for r in 0..40u8 {
        // SAFETY: blocks of these allocators, used within their layouts and freed once with them.
        unsafe {
            let p = never.alloc(lay(4 * MIB));
            p.write_bytes(r, 4 * MIB);
            never.dealloc(p, lay(4 * MIB));
        }
    }
    let before = made();
    // SAFETY: blocks of these allocators, used within their layouts and freed once with them.
    unsafe {
        let p = dense.alloc(lay(8 * MIB));
        p.write_bytes(1, 8 * MIB);
        dense.dealloc(p, lay(8 * MIB));
    }
    let m = made() - before;
    remapvec::release_cached();
    assert_eq!(
        m, 0,
        "a region grown for its first 8 MiB user was made huge"
    );
}

/// M6: a join starts the count again (the piece before carries 40 reuses).
#[test]
fn join_resets_reuses() {
    let _g = serial();
    let never = RemapAlloc::new().huge_page_policy(HugePages::Never);
    let dense = RemapAlloc::new();
    // SAFETY: blocks of these allocators, used within their layouts and freed once with them.
    unsafe {
        let w = never.alloc(lay(16 * MIB));
        never.dealloc(w, lay(16 * MIB));
        let h = never.alloc(lay(8 * MIB));
        let t = never.alloc(lay(8 * MIB));
        assert_eq!(t as usize, h as usize + 8 * MIB);
        never.dealloc(h, lay(8 * MIB));
        for r in 0..40u8 {
            let p = never.alloc(lay(8 * MIB));
            assert_eq!(p, h);
            p.write_bytes(r, 8 * MIB);
            never.dealloc(p, lay(8 * MIB));
        }
        never.dealloc(t, lay(8 * MIB));
        let before = made();
        let p = dense.alloc(lay(16 * MIB));
        assert_eq!(p, h);
        p.write_bytes(1, 16 * MIB);
        dense.dealloc(p, lay(16 * MIB));
        let m = made() - before;
        remapvec::release_cached();
        assert_eq!(m, 0, "a joined region was made huge after its first use");
    }
}

/// M10/M11: a block found sparse is asked again only after as many reuses more (at most a
/// few mincore calls over 96 reuses), whether its hole is at the end or in the middle.
#[test]
fn sparse_blocks_are_not_probed_at_every_free() {
    let _g = serial();
    let a = RemapAlloc::new();
    for hole_at_end in [true, false] {
        remapvec::release_cached();
        let before = RemapAlloc::stats().growth.syscalls;
        for r in 0..96u8 {
            // SAFETY: blocks of these allocators, used within their layouts and freed once with them.
            unsafe {
                let p = a.alloc(lay(8 * MIB));
                if hole_at_end {
                    p.write_bytes(r, 4 * MIB);
                } else {
                    p.write_bytes(r, 4 * MIB);
                    p.add(4 * MIB + 4096).write_bytes(r, 4 * MIB - 4096);
                }
                a.dealloc(p, lay(8 * MIB));
            }
        }
        let calls = RemapAlloc::stats().growth.syscalls - before;
        eprintln!("hole_at_end {hole_at_end}: {calls} calls");
        assert!(
            calls <= 12,
            "hole_at_end {hole_at_end}: {calls} system calls in 96 rounds"
        );
    }
    remapvec::release_cached();
}
