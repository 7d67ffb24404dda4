//! Huge-page labels say what the kernel was told, so pieces of two kernel mappings never
//! join (their growth would copy), and a `Dense` block never gets memory advised because a
//! vector or an `Always` allocator asked (it proved nothing). Found by review.
#![cfg(all(target_os = "linux", not(feature = "force-fallback")))]

#[path = "common/huge.rs"]
mod huge;
use huge::*;

use remapvec::{DENSE_REUSES, HugePages, RemapAlloc, RemapVec, VecOptions};
use std::alloc::{GlobalAlloc, Layout};

/// A Dense block renewed huge (origin kept) joins a piece of the same mapping that an
/// `Always` allocator grew in place (unaligned, so never advised) and labelled huge at free:
/// one kept region over two VMAs; growing it copies.
#[test]
fn renewed_block_joins_a_piece_labelled_huge_but_not_advised() {
    let _s = serial();
    remapvec::release_cached();
    let dense = RemapAlloc::new();
    let always = RemapAlloc::new().huge_page_policy(HugePages::Always);
    let l8 = Layout::from_size_align(8 * MIB, 8).unwrap();
    let l7 = Layout::from_size_align(7 * MIB, 8).unwrap();
    let l1 = Layout::from_size_align(MIB, 8).unwrap();
    let l3 = Layout::from_size_align(3 * MIB, 8).unwrap();
    let l10 = Layout::from_size_align(10 * MIB, 8).unwrap();
    // SAFETY: blocks of these allocators, used within their layouts and freed once with them.
    unsafe {
        let p = dense.alloc(l8);
        p.write_bytes(1, l8.size());
        dense.dealloc(p, l8);
        let a = dense.alloc(l7);
        assert_eq!(a, p);
        let b = always.alloc(l1);
        assert_eq!(
            b as usize,
            a as usize + 7 * MIB,
            "Always did not take the tail"
        );
        let b2 = always.realloc(b, l1, 3 * MIB);
        assert_eq!(b2, b, "not grown in place");
        b2.write_bytes(2, l3.size());
        always.dealloc(b2, l3);
        let mut a = a;
        let made = RemapAlloc::stats().made_huge;
        for r in 0..usize::from(DENSE_REUSES) + 2 {
            a.write_bytes(r as u8 + 3, l7.size());
            dense.dealloc(a, l7);
            a = dense.alloc(l7);
            assert_eq!(a, p);
        }
        // (Labels say what the kernel was told: `a` now joins the Always piece, which was never
        // advised, and counts its reuses again, so it may not be made huge at all.)
        let _ = made;
        dense.dealloc(a, l7);
        let c = dense.alloc(l10);
        let flags = vmas(c as usize, 10 * MIB);
        c.write_bytes(9, l10.size());
        let copied = RemapAlloc::stats().growth.copied;
        let d = dense.realloc(c, l10, 64 * MIB);
        let copied_after = RemapAlloc::stats().growth.copied;
        assert_eq!(*d.add(10 * MIB - 1), 9);
        dense.dealloc(d, Layout::from_size_align(64 * MIB, 8).unwrap());
        assert_eq!(
            copied_after, copied,
            "growth copied: the kept region spanned two mappings: {flags:?}"
        );
    }
}

/// A default (Dense) allocator block that never proved dense gets MADV_HUGEPAGE memory
/// because a huge-pages RemapVec (or an Always allocator) freed it: sparse writes make every
/// touched 2 MiB resident.
#[test]
fn dense_block_gets_huge_vector_region_and_blows_up_sparse() {
    let _s = serial();
    remapvec::release_cached();
    let dense = RemapAlloc::new();
    let l = Layout::from_size_align(64 * MIB, 8).unwrap();
    {
        let mut v: RemapVec<u8> = RemapVec::with_options(VecOptions::new().huge_pages(true));
        v.reserve_exact(64 * MIB);
        v.push(1);
    }
    // SAFETY: blocks of these allocators, used within their layouts and freed once with them.
    unsafe {
        let p = dense.alloc(l);
        for i in (0..64 * MIB).step_by(2 * MIB) {
            *p.add(i + 4096) = 1;
        }
        let (rss, huge) = rss_of(p as usize, 64 * MIB);
        eprintln!("Dense 64 MiB block, 32 sparse writes: Rss {rss} KiB, AnonHuge {huge} KiB");
        dense.dealloc(p, l);
        assert!(
            rss < 4 * 1024,
            "a Dense block that never proved dense: {rss} KiB resident"
        );
    }
}

#[test]
fn dense_block_gets_always_region() {
    let _s = serial();
    remapvec::release_cached();
    let dense = RemapAlloc::new();
    let always = RemapAlloc::new().huge_page_policy(HugePages::Always);
    let l = Layout::from_size_align(64 * MIB, 8).unwrap();
    // SAFETY: blocks of these allocators, used within their layouts and freed once with them.
    unsafe {
        let q = always.alloc(l);
        *q = 1;
        always.dealloc(q, l);
        let p = dense.alloc(l);
        for i in (0..64 * MIB).step_by(2 * MIB) {
            *p.add(i + 4096) = 1;
        }
        let (rss, huge) = rss_of(p as usize, 64 * MIB);
        eprintln!("Dense 64 MiB block after Always: Rss {rss} KiB, AnonHuge {huge} KiB");
        dense.dealloc(p, l);
        assert!(
            rss < 4 * 1024,
            "a Dense block that never proved dense: {rss} KiB resident"
        );
    }
}
