//! `RemapAlloc` through the `allocator_api2` 0.2 `Allocator` trait: other people's
//! collections on it, zero-size and over-aligned requests, and failure without panics.

use allocator_api2::alloc::{Allocator, Layout};
use remapvec::RemapAlloc;
use std::alloc::System;
use std::process::Command;
use std::ptr::NonNull;

mod common;

type Stats = RemapAlloc<System>;

#[test]
fn allocator_api2_vec_grows_to_hundreds_of_mib_without_copying() {
    let alloc = RemapAlloc::new();
    let before = Stats::stats();
    let mut v = allocator_api2::vec::Vec::new_in(&alloc);
    for i in 0..(48u64 << 20) {
        v.push(i); // 384 MiB
    }
    assert!(v.iter().enumerate().all(|(i, &x)| x == i as u64));
    let after = Stats::stats();
    assert!(after.growth.grows() > before.growth.grows());
    #[cfg(all(target_os = "linux", not(feature = "force-fallback")))]
    assert_eq!(after.growth.bytes_copied, 0, "{after:?}");
}

#[test]
fn hashbrown_map_in_remap_alloc() {
    let mut m = hashbrown::HashMap::new_in(RemapAlloc::new());
    for i in 0..(6u64 << 20) {
        m.insert(i, i * 3); // ~200 MiB of table
    }
    assert_eq!(m.len(), 6 << 20);
    assert!((0..(6u64 << 20)).step_by(997).all(|i| m[&i] == i * 3));
    m.retain(|k, _| k % 2 == 0);
    m.shrink_to_fit();
    assert_eq!(m.get(&4), Some(&12));
    assert_eq!(m.get(&5), None);
}

#[test]
fn zero_size_and_over_aligned_requests() {
    let a = RemapAlloc::new();
    for align in [1, 8, 4096, 2 << 20] {
        let l = Layout::from_size_align(0, align).unwrap();
        let p = a.allocate(l).unwrap();
        assert_eq!((p.len(), p.cast::<u8>().as_ptr() as usize % align), (0, 0));
        // SAFETY: a zero-size block of this allocator.
        unsafe { a.deallocate(p.cast(), l) };
    }
    let l = Layout::from_size_align(3 << 20, 2 << 20).unwrap();
    let p = a.allocate_zeroed(l).unwrap();
    assert_eq!(p.cast::<u8>().as_ptr() as usize % (2 << 20), 0);
    // SAFETY: the block is live with layout `l`; grow_zeroed's new bytes must read as zero even
    // after the block was dirtied, shrunk and grown back.
    unsafe {
        let base = p.cast::<u8>();
        base.as_ptr().write_bytes(0xAA, 3 << 20);
        let small = Layout::from_size_align((1 << 20) + 100, 2 << 20).unwrap();
        let q = a.shrink(base, l, small).unwrap();
        let big = Layout::from_size_align(8 << 20, 2 << 20).unwrap();
        let r = a.grow_zeroed(q.cast(), small, big).unwrap().cast::<u8>();
        let s = std::slice::from_raw_parts(r.as_ptr(), 8 << 20);
        assert!(s[..(1 << 20) + 100].iter().all(|&x| x == 0xAA));
        assert!(
            s[(1 << 20) + 100..].iter().all(|&x| x == 0),
            "grow_zeroed left old bytes"
        );
        // Changing the alignment on grow works too.
        let big4k = Layout::from_size_align(9 << 20, 4096).unwrap();
        let t = a.grow(r, big, big4k).unwrap();
        a.deallocate(t.cast(), big4k);
    }
}

#[test]
fn impossible_sizes_fail_without_panicking() {
    let a = RemapAlloc::new();
    let l = Layout::from_size_align(isize::MAX as usize - (2 << 20), 4096).unwrap();
    assert!(a.allocate(l).is_err());
    // SAFETY: GlobalAlloc with a valid non-zero layout; null is the failure answer.
    assert!(unsafe { std::alloc::GlobalAlloc::alloc(&a, l) }.is_null());
    // A failed grow leaves the block valid.
    let small = Layout::from_size_align(1 << 20, 8).unwrap();
    let p = a.allocate(small).unwrap().cast::<u8>();
    // SAFETY: live block of `small`; it stays live after the failed grow.
    unsafe {
        p.as_ptr().write_bytes(7, 1 << 20);
        let huge = Layout::from_size_align(isize::MAX as usize - 4096, 8).unwrap();
        assert!(a.grow(p, small, huge).is_err());
        assert!(
            std::slice::from_raw_parts(p.as_ptr(), 1 << 20)
                .iter()
                .all(|&x| x == 7)
        );
        a.deallocate(p, small);
    }
}

#[test]
fn rlimit_as_refusal_returns_errors_and_keeps_blocks() {
    const CHILD: &str = "REMAPVEC_ALLOC_CHILD";
    if std::env::var(CHILD).is_err() {
        let out = Command::new(std::env::current_exe().unwrap())
            .args([
                "rlimit_as_refusal_returns_errors_and_keeps_blocks",
                "--exact",
                "--test-threads=1",
            ])
            .env(CHILD, "1")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
    let a = RemapAlloc::new();
    let l = Layout::from_size_align(64 << 20, 8).unwrap();
    let p = a.allocate(l).unwrap().cast::<u8>();
    // SAFETY: live block of `l`.
    unsafe { p.as_ptr().write_bytes(9, 64 << 20) };
    common::limit_address_space(256 << 20);
    let big = Layout::from_size_align(1 << 30, 8).unwrap();
    assert!(a.allocate(big).is_err());
    // SAFETY: the block stays live after a failed grow and is freed once.
    unsafe {
        assert!(a.grow(p, l, big).is_err());
        assert!(
            std::slice::from_raw_parts(p.as_ptr(), 64 << 20)
                .iter()
                .all(|&x| x == 9)
        );
        assert!(std::alloc::GlobalAlloc::realloc(&a, p.as_ptr(), l, 1 << 30).is_null());
        let q: NonNull<[u8]> = a
            .grow(p, l, Layout::from_size_align(96 << 20, 8).unwrap())
            .unwrap();
        assert!(
            std::slice::from_raw_parts(q.cast::<u8>().as_ptr(), 64 << 20)
                .iter()
                .all(|&x| x == 9)
        );
        a.deallocate(q.cast(), Layout::from_size_align(96 << 20, 8).unwrap());
    }
}
