//! Huge-page advice never reaches a block that did not ask for it or prove dense, whatever
//! mix of `HugePages` policies and `RemapVec`s shares the recycler: shrunk `Always` blocks,
//! regions a grown huge block left advised `MADV_NOHUGEPAGE`, pieces of different advice that
//! must never join (a joined region over two kernel mappings would copy when it grows), and
//! `RemapVec` growth. Found by review.
#![cfg(all(target_os = "linux", not(feature = "force-fallback")))]

#[path = "common/huge.rs"]
mod huge;
use huge::*;

use remapvec::{DENSE_REUSES, HugePages, RemapAlloc, RemapVec};
use std::alloc::{GlobalAlloc, Layout};

/// An `Always` allocator (e.g. a hashbrown map with `huge_pages(true)`) shrinks a 4 MiB block
/// below 2 MiB and frees it: it is kept flagged "not huge" though its mapping is MADV_HUGEPAGE.
/// A `Never` allocator then gets it.
#[test]
fn always_shrunk_block_reaches_never() {
    let _g = serial();
    let always = RemapAlloc::new().huge_pages(true);
    let never = RemapAlloc::new().huge_page_policy(HugePages::Never);
    let l4 = Layout::from_size_align(4 * MIB, 8).unwrap();
    let l1 = Layout::from_size_align(MIB, 8).unwrap();
    // SAFETY: blocks of these allocators, used within their layouts and freed once with them.
    unsafe {
        let p = always.alloc(l4);
        assert!(advised_huge(p as usize), "Always block not advised");
        let q = always.realloc(p, l4, MIB);
        always.dealloc(q, l1);
        let n = never.alloc(l1);
        let bad = advised_huge(n as usize);
        let f = flags(n as usize);
        never.dealloc(n, l1);
        remapvec::release_cached();
        assert!(!bad, "Never block in MADV_HUGEPAGE memory: {f}");
    }
}

/// Same mislabelled piece, then the default (Dense) allocator's sparse 512 MiB table: the
/// recycler grows the 1 MiB "not huge" piece in place, and the growth inherits MADV_HUGEPAGE.
#[test]
fn always_shrunk_block_grown_into_dense_sparse_table() {
    let _g = serial();
    // SAFETY: blocks of these allocators, used within their layouts and freed once with them.
    let run = |mislabel: bool| unsafe {
        remapvec::release_cached();
        let always = RemapAlloc::new().huge_pages(true);
        let dense = RemapAlloc::new();
        let l4 = Layout::from_size_align(4 * MIB, 8).unwrap();
        let l1 = Layout::from_size_align(MIB, 8).unwrap();
        let p = always.alloc(l4);
        p.write_bytes(1, MIB);
        if mislabel {
            let q = always.realloc(p, l4, MIB);
            always.dealloc(q, l1);
        } else {
            let q = dense.alloc(l1);
            q.write_bytes(1, MIB);
            dense.dealloc(q, l1);
            always.dealloc(p, l4);
            remapvec::release_cached();
            let q = dense.alloc(l1);
            q.write_bytes(1, MIB);
            dense.dealloc(q, l1);
        }
        let big = Layout::from_size_align(512 * MIB, 8).unwrap();
        let t = dense.alloc_zeroed(big);
        for i in (0..big.size()).step_by(2 * MIB) {
            t.add(i + 4096 * 7).write(1);
        }
        let r = rss_of(t as usize, big.size());
        let f = flags(t as usize);
        dense.dealloc(t, big);
        remapvec::release_cached();
        (r, f)
    };
    let clean = run(false);
    let bad = run(true);
    eprintln!("clean {clean:?}\nmislabel {bad:?}");
    assert!(
        bad.0.0 < 4 * clean.0.0 + 4096,
        "clean {clean:?} mislabel {bad:?}"
    );
}

/// A RemapVec (default: no huge pages) takes the mislabelled piece and grows in place.
#[test]
fn always_shrunk_block_reaches_remapvec() {
    let _g = serial();
    let always = RemapAlloc::new().huge_pages(true);
    let l4 = Layout::from_size_align(4 * MIB, 8).unwrap();
    let l1 = Layout::from_size_align(MIB, 8).unwrap();
    // SAFETY: blocks of these allocators, used within their layouts and freed once with them.
    unsafe {
        let p = always.alloc(l4);
        let q = always.realloc(p, l4, MIB);
        always.dealloc(q, l1);
    }
    let mut v: RemapVec<u8> = RemapVec::with_capacity(MIB);
    v.push(1);
    let bad = advised_huge(v.as_ptr() as usize);
    let f = flags(v.as_ptr() as usize);
    drop(v);
    remapvec::release_cached();
    assert!(!bad, "default RemapVec in MADV_HUGEPAGE memory: {f}");
}

fn make_one_huge(a: &RemapAlloc, size: usize) {
    let layout = Layout::from_size_align(size, 8).unwrap();
    for r in 0..usize::from(DENSE_REUSES) + 2 {
        // SAFETY: blocks of these allocators, used within their layouts and freed once with them.
        unsafe {
            let p = a.alloc(layout);
            p.write_bytes(r as u8 + 1, layout.size());
            a.dealloc(p, layout);
        }
    }
}

/// A block made huge by Dense, then grown by realloc (forget_huge: MADV_NOHUGEPAGE), freed:
/// an `Always` allocator then takes it as "advised for huge pages" and never gets huge pages.
#[test]
fn always_gets_a_forgotten_nohugepage_block() {
    let _g = serial();
    let dense = RemapAlloc::new();
    let always = RemapAlloc::new().huge_pages(true);
    let before = RemapAlloc::stats().made_huge;
    make_one_huge(&dense, 8 * MIB);
    if !converts() {
        return; // THP is not in madvise mode here: nothing is converted.
    }
    assert!(RemapAlloc::stats().made_huge > before);
    let l8 = Layout::from_size_align(8 * MIB, 8).unwrap();
    let l16 = Layout::from_size_align(16 * MIB, 8).unwrap();
    // SAFETY: blocks of these allocators, used within their layouts and freed once with them.
    unsafe {
        let p = dense.alloc(l8);
        let q = dense.realloc(p, l8, 16 * MIB);
        dense.dealloc(q, l16);
        let a = always.alloc(l16);
        let f = flags(a as usize);
        always.dealloc(a, l16);
        remapvec::release_cached();
        assert!(
            f.contains(" hg"),
            "Always block not advised for huge pages: {f}"
        );
    }
}

/// Forgotten (flagged huge, MADV_NOHUGEPAGE) regions are never reused by a default RemapVec
/// (which asks for Some(false)): it maps and faults anew.
#[test]
fn remapvec_cannot_reuse_forgotten_region() {
    let _g = serial();
    let dense = RemapAlloc::new();
    make_one_huge(&dense, 8 * MIB);
    let l8 = Layout::from_size_align(8 * MIB, 8).unwrap();
    let l16 = Layout::from_size_align(16 * MIB, 8).unwrap();
    // SAFETY: blocks of these allocators, used within their layouts and freed once with them.
    let (addr, f) = unsafe {
        let p = dense.alloc(l8);
        let q = dense.realloc(p, l8, 16 * MIB);
        q.write_bytes(1, 16 * MIB);
        let f = flags(q as usize);
        dense.dealloc(q, l16);
        (q as usize, f)
    };
    let v: RemapVec<u8> = RemapVec::with_capacity(16 * MIB);
    let got = v.as_ptr() as usize;
    drop(v);
    remapvec::release_cached();
    assert_eq!(
        got, addr,
        "RemapVec did not reuse the kept 16 MiB region ({f})"
    );
}

/// A RemapVec region reused as is many times keeps its count through the vector's growth by
/// mremap (a region of another size): the allocator then converts an 8 MiB block after one use.
#[test]
fn remapvec_growth_keeps_reuses() {
    let _g = serial();
    for _ in 0..40 {
        let mut v: RemapVec<u8> = RemapVec::with_capacity(MIB);
        v.push(1);
    }
    let mut v: RemapVec<u8> = RemapVec::with_capacity(MIB);
    v.resize(8 * MIB, 3); // grows the reused 1 MiB region in place
    let addr = v.as_ptr() as usize;
    drop(v);
    let dense = RemapAlloc::new();
    let l8 = Layout::from_size_align(8 * MIB, 8).unwrap();
    let before = RemapAlloc::stats().made_huge;
    // SAFETY: blocks of these allocators, used within their layouts and freed once with them.
    unsafe {
        let p = dense.alloc(l8);
        eprintln!("vec at {addr:#x}, block at {:#x}", p as usize);
        p.write_bytes(5, l8.size());
        dense.dealloc(p, l8);
    }
    let made = RemapAlloc::stats().made_huge - before;
    remapvec::release_cached();
    assert_eq!(
        made, 0,
        "an 8 MiB block made huge after its first use as one"
    );
}

/// Dense makes a block huge, a realloc grows it (forget_huge: MADV_NOHUGEPAGE, new origin X,
/// still flagged huge); an `Always` allocator takes a 4 MiB piece of it and reallocs it to its
/// own page count: advised MADV_HUGEPAGE in place, origin X kept. Freed, it joins the rest of X
/// (flag huge, but MADV_NOHUGEPAGE): one kept region over two VMAs, whose growth copies.
#[test]
fn forgotten_and_readvised_pieces_join_and_growth_copies() {
    let _g = serial();
    let dense = RemapAlloc::new();
    let always = RemapAlloc::new().huge_pages(true);
    make_one_huge(&dense, 8 * MIB);
    let l8 = Layout::from_size_align(8 * MIB, 8).unwrap();
    let l16 = Layout::from_size_align(16 * MIB, 8).unwrap();
    // SAFETY: blocks of these allocators, used within their layouts and freed once with them.
    unsafe {
        let p = dense.alloc(l8);
        let q = dense.realloc(p, l8, 16 * MIB);
        q.write_bytes(1, 16 * MIB);
        dense.dealloc(q, l16);
        let l4m = Layout::from_size_align(4 * MIB - 1, 8).unwrap();
        let a = always.alloc(l4m);
        // `Always` takes only memory advised for huge pages: not the forgotten region.
        assert_ne!(
            a as usize, q as usize,
            "an Always block lies in MADV_NOHUGEPAGE memory"
        );
        let a2 = always.realloc(a, l4m, 4 * MIB);
        assert_eq!(a2, a);
        let f_head = flags(a as usize);
        always.dealloc(a2, Layout::from_size_align(4 * MIB, 8).unwrap());
        let before = RemapAlloc::stats().growth.copied;
        let d = dense.alloc(l16);
        d.write_bytes(2, 16 * MIB);
        let e = dense.realloc(d, l16, 64 * MIB);
        assert!(!e.is_null());
        for i in (0..16 * MIB).step_by(4096) {
            assert_eq!(*e.add(i), 2);
        }
        let copied = RemapAlloc::stats().growth.copied - before;
        dense.dealloc(e, Layout::from_size_align(64 * MIB, 8).unwrap());
        remapvec::release_cached();
        assert_eq!(
            copied, 0,
            "growth copied; block at {:#x} was {d:?}, the Always block {f_head}",
            q as usize
        );
    }
}

/// Passes on 97a2ac4; fails if `forget_huge` keeps the old origin (mutation M3): the tail of a
/// huge 16 MiB region grown in place by realloc (MADV_NOHUGEPAGE) would join the head (still
/// MADV_HUGEPAGE) and a later growth of the joined block would copy.
#[test]
fn forgotten_tail_never_joins_its_huge_head() {
    let _g = serial();
    let dense = RemapAlloc::new();
    make_one_huge(&dense, 16 * MIB);
    let l8 = Layout::from_size_align(8 * MIB, 8).unwrap();
    let l16 = Layout::from_size_align(16 * MIB, 8).unwrap();
    let l24 = Layout::from_size_align(24 * MIB, 8).unwrap();
    // SAFETY: blocks of these allocators, used within their layouts and freed once with them.
    unsafe {
        let h = dense.alloc(l8);
        let t = dense.alloc(l8);
        assert_eq!(t as usize, h as usize + 8 * MIB, "tail not taken");
        let t2 = dense.realloc(t, l8, 16 * MIB);
        let in_place = t2 == t;
        dense.dealloc(t2, l16);
        dense.dealloc(h, l8);
        let before = RemapAlloc::stats().growth.copied;
        let d = dense.alloc(l24);
        d.write_bytes(2, 24 * MIB);
        let e = dense.realloc(d, l24, 64 * MIB);
        let copied = RemapAlloc::stats().growth.copied - before;
        dense.dealloc(e, Layout::from_size_align(64 * MIB, 8).unwrap());
        remapvec::release_cached();
        assert_eq!(
            copied, 0,
            "growth copied (tail grown in place: {in_place}, d {d:?} h {h:?})"
        );
    }
}
