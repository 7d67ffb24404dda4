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

/// Populated ahead of the writes at most: the crate's fill piece (4 MiB) and some slack.
const AHEAD: usize = 6 * MIB;

/// An iterator that claims `claim` items, exactly, and yields `yields`.
struct Liar {
    claim: usize,
    yields: usize,
}

impl Iterator for Liar {
    type Item = u64;
    fn next(&mut self) -> Option<u64> {
        self.yields = self.yields.checked_sub(1)?;
        self.claim = self.claim.saturating_sub(1);
        Some(7)
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.claim, Some(self.claim))
    }
}

impl ExactSizeIterator for Liar {}

/// Resident bytes of the whole capacity of `v`.
fn resident_capacity<T>(v: &RemapVec<T>) -> usize {
    let bytes = v.capacity() * size_of::<T>();
    resident_pages(v.as_ptr().cast(), bytes) * 4096
}

#[test]
fn an_exact_size_iterator_that_stops_early_populates_at_most_a_piece() {
    let opts = VecOptions::new().reuse_freed(false);
    let mut v: RemapVec<u64> = RemapVec::with_options(opts);
    // Claims 64 MiB, yields 8000 bytes.
    v.extend(Liar {
        claim: 8 * MIB,
        yields: 1000,
    });
    assert_eq!(v.len(), 1000);
    assert!(v.capacity() >= 8 * MIB);
    let resident = resident_capacity(&v);
    assert!(
        resident <= AHEAD,
        "{} KiB resident for 8000 bytes written",
        resident >> 10
    );
}

thread_local! {
    /// Clones left before `Bomb::clone` panics (0: never).
    static FUSE: core::cell::Cell<usize> = const { core::cell::Cell::new(0) };
}

/// A `u64` whose clone panics when the fuse burns down.
struct Bomb(u64);

impl Clone for Bomb {
    fn clone(&self) -> Self {
        FUSE.with(|f| match f.get() {
            0 => {}
            1 => {
                f.set(0);
                panic!("boom")
            }
            n => f.set(n - 1),
        });
        Bomb(self.0)
    }
}

#[test]
fn a_panic_mid_fill_leaves_at_most_a_piece_populated() {
    const N: usize = 8 * MIB; // 64 MiB of `u64`
    let opts = VecOptions::new().reuse_freed(false);
    let src: Vec<Bomb> = (0..N as u64).map(Bomb).collect();
    type BombFill = fn(&mut RemapVec<Bomb>, &[Bomb]);
    let fills: [(&str, BombFill); 5] = [
        ("extend", |v, _| {
            v.extend((0..N as u64).map(|i| {
                assert!(i != 1000, "boom");
                Bomb(i)
            }))
        }),
        ("resize", |v, _| v.resize(N, Bomb(1))),
        ("resize_with", |v, _| {
            let mut i = 0;
            v.resize_with(N, || {
                i += 1;
                assert!(i != 1000, "boom");
                Bomb(i)
            })
        }),
        ("extend_from_slice", |v, s| v.extend_from_slice(s)),
        ("extend_from_within", |v, s| {
            FUSE.with(|f| f.set(0));
            v.extend_from_slice(&s[..N / 2]);
            FUSE.with(|f| f.set(1000));
            v.extend_from_within(..);
        }),
    ];
    for (name, fill) in fills {
        let mut v: RemapVec<Bomb> = RemapVec::with_options(opts);
        FUSE.with(|f| f.set(1000));
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| fill(&mut v, &src)));
        FUSE.with(|f| f.set(0));
        assert!(r.is_err(), "{name}: no panic");
        let written = v.len() * size_of::<Bomb>();
        let resident = resident_capacity(&v);
        assert!(
            resident <= written + AHEAD,
            "{name}: {} KiB resident for {} KiB written",
            resident >> 10,
            written >> 10
        );
    }
}

#[test]
fn refilling_written_memory_makes_no_call() {
    let opts = VecOptions::new().reuse_freed(false);
    let src = vec![3u8; 4 * MIB];
    type Empty = fn(&mut RemapVec<u8>);
    let empties: [(&str, Empty); 4] = [
        ("clear", |v| v.clear()),
        ("truncate", |v| v.truncate(10)),
        // SAFETY: a shorter length of initialized bytes.
        ("set_len", |v| unsafe { v.set_len(0) }),
        ("drain", |v| drop(v.drain(..))),
    ];
    for (name, empty) in empties {
        let mut v: RemapVec<u8> = RemapVec::with_capacity_and_options(8 * MIB, opts);
        assert!(v.is_mapped());
        src.iter().for_each(|&x| v.push(x));
        empty(&mut v);
        let calls = v.stats().syscalls;
        src.chunks(16 << 10).for_each(|c| v.extend_from_slice(c));
        assert_eq!(
            v.stats().syscalls - calls,
            0,
            "{name}: populate calls over pages already written"
        );
        assert!(v.len() >= 4 * MIB && v[v.len() - 1] == 3, "{name}");
    }
}

#[test]
fn zeroed_elements_are_not_taken_for_written_ones() {
    let opts = VecOptions::new().reuse_freed(false);
    let mut v: RemapVec<u8> = RemapVec::zeroed_with_options(4 * MIB, opts);
    assert!(v.is_mapped());
    v.clear();
    let calls = v.stats().syscalls;
    let src = vec![3u8; 4 * MIB];
    v.extend_from_slice(&src);
    // The zero pages were never written: the fill must still populate them.
    #[cfg(all(target_os = "linux", not(feature = "force-fallback")))]
    assert!(
        v.stats().syscalls > calls,
        "no populate over untouched pages"
    );
    let _ = calls;
    assert_eq!(v[..], src[..]);
}
