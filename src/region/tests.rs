use super::*;

const MIB: usize = 1 << 20;

fn fill(r: &Region, len: usize, seed: u8) {
    // SAFETY: the region is mapped read-write for at least `len` bytes.
    let s = unsafe { core::slice::from_raw_parts_mut(r.as_ptr(), len) };
    for (i, b) in s.iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(31).wrapping_add(seed);
    }
}

fn check(r: &Region, len: usize, seed: u8) {
    // SAFETY: the region is mapped for at least `len` bytes.
    let s = unsafe { core::slice::from_raw_parts(r.as_ptr(), len) };
    for (i, &b) in s.iter().enumerate() {
        assert_eq!(b, (i as u8).wrapping_mul(31).wrapping_add(seed), "byte {i}");
    }
}

fn zero_from(r: &Region, from: usize) -> bool {
    // SAFETY: the region is mapped for `len()` bytes.
    let s = unsafe { core::slice::from_raw_parts(r.as_ptr(), r.len()) };
    s[from..].iter().all(|&b| b == 0)
}

#[test]
fn new_regions_are_page_rounded_zeroed_and_aligned() {
    let page = sys::page_size();
    let (r, calls) = Region::new(1, 1).unwrap();
    assert_eq!(r.len(), page);
    assert!(calls >= 1);
    assert!(zero_from(&r, 0));
    for len in [2 * MIB, 5 * MIB] {
        let (r, _) = Region::new(len, 8).unwrap();
        assert_eq!(
            r.as_ptr() as usize % PMD_SIZE,
            0,
            "{len} bytes not 2 MiB-aligned"
        );
    }
    // Alignment above the page size.
    for align in [8 << 10, 4 * MIB] {
        let (r, _) = Region::new(3 * page, align).unwrap();
        assert_eq!(r.as_ptr() as usize % align, 0);
    }
}

#[test]
fn grow_keeps_contents_and_zeroes_the_new_bytes() {
    for (start, end) in [
        (8 << 10, 2 * MIB),
        (2 * MIB, 4 * MIB),
        (4 * MIB, 5 * MIB),
        (5 * MIB, 64 * MIB),
    ] {
        let (mut r, _) = Region::new(start, 1).unwrap();
        fill(&r, start, 3);
        let g = r.grow(end).unwrap();
        assert!(r.len() >= end);
        check(&r, start, 3);
        assert!(zero_from(&r, start));
        if sys::HAS_MREMAP {
            assert_ne!(g.how, How::Copied);
        } else {
            assert_eq!(g.how, How::Copied);
            assert_eq!(g.bytes, start);
        }
    }
}

#[cfg(all(target_os = "linux", not(feature = "force-fallback")))]
#[test]
fn blocked_grow_moves_without_clobbering_the_neighbour_and_keeps_alignment() {
    if crate::sys::valgrind() {
        // valgrind emulates mremap: in-place growth, MREMAP_FIXED and multi-mapping moves
        // behave differently under it. This test runs natively in the normal suite.
        return;
    }
    for align in [1, 8 << 10] {
        let (mut r, _) = Region::new(2 * MIB, align).unwrap();
        fill(&r, 2 * MIB, 9);
        // A mapping that is not ours sits right after the region.
        let end = r.as_ptr() as usize + r.len();
        let neighbour = sys::map_anon(end, sys::page_size()).unwrap();
        // SAFETY: our test mapping.
        unsafe { neighbour.write(0xAB) };
        let g = r.grow(8 * MIB).unwrap();
        assert_eq!(g.how, How::Moved);
        assert_eq!(g.bytes, 2 * MIB);
        assert_eq!(
            r.as_ptr() as usize % PMD_SIZE,
            0,
            "moved region lost its 2 MiB alignment"
        );
        check(&r, 2 * MIB, 9);
        assert!(zero_from(&r, 2 * MIB));
        // SAFETY: the neighbour is still ours and must be intact.
        unsafe {
            assert_eq!(neighbour.read(), 0xAB);
            assert!(sys::is_mapped(neighbour, sys::page_size()));
            sys::unmap(neighbour, sys::page_size()).unwrap();
        }
    }
}

#[cfg(all(target_os = "linux", not(feature = "force-fallback")))]
#[test]
fn grow_into_free_space_is_in_place() {
    if crate::sys::valgrind() {
        // valgrind emulates mremap: in-place growth, MREMAP_FIXED and multi-mapping moves
        // behave differently under it. This test runs natively in the normal suite.
        return;
    }
    let (mut r, _) = Region::new(4 * MIB, 1).unwrap();
    let before = r.as_ptr();
    let g = r.grow(16 * MIB).unwrap();
    assert_eq!((g.how, g.syscalls, r.as_ptr()), (How::InPlace, 1, before));
}

#[test]
fn shrink_releases_the_tail() {
    let page = sys::page_size();
    let (mut r, _) = Region::new(16 * page, 1).unwrap();
    fill(&r, 16 * page, 1);
    // SAFETY: 4 pages into a 16-page mapping.
    let tail = unsafe { r.as_ptr().add(4 * page) };
    assert_eq!(r.shrink(3 * page + 1).unwrap(), 1);
    assert_eq!(r.len(), 4 * page);
    check(&r, 4 * page, 1);
    assert!(!sys::is_mapped(tail, 12 * page));
    // Shrinking to more than the length does nothing.
    assert_eq!(r.shrink(100 * page).unwrap(), 0);
}

#[test]
fn a_failed_grow_changes_nothing() {
    let (mut r, _) = Region::new(MIB, 1).unwrap();
    fill(&r, MIB, 5);
    let (p, len) = (r.as_ptr(), r.len());
    // More address space than a 47-bit (or 56-bit) process has.
    assert!(r.grow(usize::MAX / 2).is_err());
    assert_eq!((r.as_ptr(), r.len()), (p, len));
    check(&r, MIB, 5);
}

#[test]
fn drop_unmaps() {
    let (r, _) = Region::new(MIB, 1).unwrap();
    let (p, len) = (r.as_ptr(), r.len());
    drop(r);
    assert!(!sys::is_mapped(p, len));
}
