//! Bulk fills (`resize`, `extend_from_slice`, `extend_from_within`, exact-size `extend`) fault
//! fresh pages in with one call, but never more pages than they write: the resident size stays
//! what `Vec` would use.

use remapvec::{RemapVec, VecOptions};

/// Resident pages of `len` bytes from `p` (`mincore`).
fn resident_pages(p: *const u8, len: usize) -> usize {
    let page = 4096;
    let start = (p as usize) & !(page - 1);
    let end = (p as usize + len).next_multiple_of(page);
    let mut v = vec![0u8; (end - start) / page];
    // SAFETY: `start..end` is page-aligned and mapped (the vector's capacity); `v` has one byte
    // per page.
    let r = unsafe { libc::mincore(start as *mut libc::c_void, end - start, v.as_mut_ptr()) };
    assert_eq!(r, 0);
    v.iter().filter(|&&b| b & 1 == 1).count()
}

const MIB: usize = 1 << 20;

/// A way of appending the bytes of a slice.
type Fill = fn(&mut RemapVec<u8>, &[u8]);

#[test]
fn fills_populate_only_what_they_write() {
    // No recycler: the capacity must be fresh pages for this count to mean anything.
    let opts = VecOptions::new().reuse_freed(false);
    let src = vec![5u8; 8 * MIB];
    let fills: [(&str, Fill); 4] = [
        ("extend_from_slice", |v, s| v.extend_from_slice(s)),
        ("resize", |v, s| v.resize(v.len() + s.len(), 9)),
        ("extend exact", |v, s| v.extend(s.iter().copied())),
        ("extend_from_within", |v, s| {
            v.extend_from_slice(&s[..MIB]);
            v.extend_from_within(..);
            let n = s.len() - v.len();
            v.extend_from_slice(&s[..n]);
        }),
    ];
    for (name, fill) in fills {
        let mut v: RemapVec<u8> = RemapVec::with_capacity_and_options(64 * MIB, opts);
        assert!(v.is_mapped());
        let calls = v.stats().syscalls;
        fill(&mut v, &src);
        // The capacity was there: the only system call is the populate.
        #[cfg(all(target_os = "linux", not(feature = "force-fallback")))]
        assert!(v.stats().syscalls > calls, "{name}: no populate call");
        let _ = calls;
        assert_eq!(v.len(), 8 * MIB, "{name}");
        let tail = resident_pages(v.as_ptr().wrapping_add(9 * MIB), 55 * MIB);
        assert_eq!(
            tail, 0,
            "{name}: {tail} pages populated beyond what was written"
        );
        let written = resident_pages(v.as_ptr(), 8 * MIB);
        assert_eq!(written, 8 * MIB / 4096, "{name}");
        assert!(v.iter().all(|&b| b == v[0]), "{name}");
    }
}
