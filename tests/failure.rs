//! Failure paths: a low `RLIMIT_AS` (in a child process, so the limit does not hurt the other
//! tests) makes growth fail; the vector must keep its contents, length and capacity. And growth
//! past 4 GiB of capacity works.

use remapvec::{RemapVec, TryReserveErrorKind, VecOptions};
use std::process::Command;

mod common;
use common::limit_address_space;

const CHILD_ENV: &str = "REMAPVEC_TEST_CHILD";

/// Runs the test `name` again in a child process and returns false; in the child returns true.
fn in_child(name: &str) -> bool {
    if std::env::var(CHILD_ENV).as_deref() == Ok(name) {
        return true;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, name)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "child failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    false
}

#[test]
fn growth_refused_by_rlimit_as_keeps_everything() {
    if !in_child("growth_refused_by_rlimit_as_keeps_everything") {
        return;
    }
    // Everything the child needs later is allocated before the limit.
    let mut v: RemapVec<u64> = (0..8u64 << 20).collect(); // 64 MiB, mapped
    assert!(v.is_mapped());
    let mut small: RemapVec<u64> = RemapVec::from([1, 2, 3]);
    let mut heap_only: RemapVec<u8> =
        RemapVec::with_options(VecOptions::new().heap_threshold(usize::MAX));
    heap_only.extend_from_slice(b"kept");
    // 600 MiB to write later: calloc'd, untouched, so it costs address space but no memory.
    let big = vec![0u8; 600 << 20];
    limit_address_space(512 << 20);

    let (ptr, len, cap) = (v.as_ptr(), v.len(), v.capacity());
    let err = v.try_reserve(2 << 30).unwrap_err(); // 16 GiB of u64
    match err.kind() {
        TryReserveErrorKind::AllocError { layout, os_error } => {
            assert!(layout.size() >= 16 << 30);
            assert_eq!(os_error, Some(libc::ENOMEM), "{err}");
        }
        k => panic!("unexpected {k:?}"),
    }
    assert!(err.to_string().contains("failed"), "{err}");
    assert_eq!((v.as_ptr(), v.len(), v.capacity()), (ptr, len, cap));
    assert!(
        v.iter().enumerate().all(|(i, &x)| x == i as u64),
        "contents changed"
    );

    // A grow that fits still works afterwards.
    v.try_reserve_exact(4 << 20).unwrap();
    assert!(v.iter().enumerate().all(|(i, &x)| x == i as u64));

    // From the heap into a region: refused, the heap buffer is kept.
    assert!(small.try_reserve(1 << 30).is_err());
    assert_eq!(small, [1, 2, 3]);
    assert!(!small.is_mapped());

    // A heap-only vector: the allocator returns null, no OS error.
    let err = heap_only.try_reserve(1 << 30).unwrap_err();
    assert!(
        matches!(
            err.kind(),
            TryReserveErrorKind::AllocError { os_error: None, .. }
        ),
        "{err:?}"
    );
    assert_eq!(heap_only, *b"kept");

    // io::Write reports OutOfMemory instead of aborting.
    let mut w: RemapVec<u8> = RemapVec::new();
    let e = std::io::Write::write(&mut w, &big).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::OutOfMemory);
    assert!(w.is_empty());

    // try_with_capacity refuses cleanly too.
    assert!(RemapVec::<u8>::try_with_capacity(4 << 30).is_err());
}

#[test]
fn growth_past_4_gib_of_capacity_works() {
    let mut v: RemapVec<u8> = RemapVec::new();
    let step = 1usize << 30;
    for gib in 1..=5u8 {
        v.resize(gib as usize * step, gib);
        assert!(v.capacity() >= gib as usize * step);
    }
    assert!(v.capacity() > 4 << 30);
    for gib in 1..=5usize {
        assert_eq!(v[gib * step - 1], gib as u8);
        assert_eq!(v[(gib - 1) * step], gib as u8);
    }
    let s = v.stats();
    assert!(s.grows() >= 2, "{s:?}");
    #[cfg(all(target_os = "linux", not(feature = "force-fallback")))]
    assert_eq!((s.copied, s.bytes_copied), (0, 0), "nothing copied: {s:?}");
}
