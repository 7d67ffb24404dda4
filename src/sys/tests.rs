use super::*;

#[cfg(all(target_os = "linux", not(feature = "force-fallback")))]
fn count_mappings() -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

#[test]
fn page_size_is_a_cached_power_of_two() {
    let p = page_size();
    assert!(p.is_power_of_two() && p >= 4096);
    assert_eq!(page_size(), p);
    assert_eq!(round_to_page(1), Some(p));
    assert_eq!(round_to_page(p), Some(p));
    assert_eq!(round_to_page(0), Some(0));
    assert_eq!(round_to_page(usize::MAX), None);
}

#[test]
fn anonymous_memory_is_zeroed_and_writable() {
    let len = 4 * page_size();
    let p = map_anon(0, len).unwrap();
    // SAFETY: a fresh mapping of `len` bytes that this test owns.
    unsafe {
        assert!(core::slice::from_raw_parts(p, len).iter().all(|&b| b == 0));
        p.add(len - 1).write(7);
        assert!(is_mapped(p, len));
        unmap(p, len).unwrap();
    }
    assert!(!is_mapped(p, len));
}

#[cfg(all(target_os = "linux", not(feature = "force-fallback")))]
#[test]
fn a_hint_never_replaces_an_existing_mapping() {
    let len = page_size();
    let first = reserve(0, len).unwrap();
    // The hint is taken: EEXIST, and the existing mapping is untouched.
    assert_eq!(
        map_anon(first as usize, len).unwrap_err(),
        Errno(libc::EEXIST)
    );
    assert_eq!(
        reserve(first as usize, len).unwrap_err(),
        Errno(libc::EEXIST)
    );
    assert!(is_mapped(first, len));
    // SAFETY: our reservation.
    unsafe { unmap(first, len).unwrap() };
    // Now free: the hint is honoured exactly.
    let again = map_anon(first as usize, len).unwrap();
    assert_eq!(again, first);
    // SAFETY: our mapping.
    unsafe { unmap(again, len).unwrap() };
}

#[cfg(all(target_os = "linux", not(feature = "force-fallback")))]
#[test]
fn remap_in_place_grows_into_free_space_and_keeps_bytes() {
    if valgrind() {
        // valgrind emulates mremap and may refuse in-place growth; runs natively in the suite.
        return;
    }
    let page = page_size();
    // Reserve 4 pages, keep the first as memory: the 3 after it are ours and free.
    let base = reserve(0, 4 * page).unwrap();
    // SAFETY: we own the reservation; release the tail so it is free address space.
    unsafe { unmap(base.add(page), 3 * page).unwrap() };
    // SAFETY: the first page is our reservation; replace it by memory via a fresh map.
    unsafe { unmap(base, page).unwrap() };
    let p = map_anon(base as usize, page).unwrap();
    // SAFETY: our mapping; the pages after it are free (just unmapped by us).
    unsafe {
        p.write(42);
        remap_in_place(p, page, 3 * page).unwrap();
        assert_eq!(p.read(), 42);
        assert_eq!(p.add(2 * page).read(), 0);
        unmap(p, 3 * page).unwrap();
    }
}

#[cfg(all(target_os = "linux", not(feature = "force-fallback")))]
#[test]
fn feature_probe_matches_the_kernel_and_leaks_nothing() {
    if crate::sys::valgrind() {
        // valgrind emulates mremap: in-place growth, MREMAP_FIXED and multi-mapping moves
        // behave differently under it. This test runs natively in the normal suite.
        return;
    }
    // Other tests of this binary map and unmap at the same time: probe 64 times, so that a
    // probe that leaks even one mapping shows far above that noise.
    let before = count_mappings();
    let mut f = probe_features();
    for _ in 0..63 {
        f = probe_features();
    }
    assert!(f.mremap);
    let after = count_mappings();
    assert!(
        after <= before + 16,
        "probes leaked mappings: {before} -> {after} after 64 probes"
    );
    // Multi-mapping moves exist from Linux 6.17, MREMAP_DONTUNMAP for anonymous memory from 5.7.
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let mut nums = release
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|s| s.parse::<u32>().ok());
    let version = (nums.next().unwrap(), nums.next().unwrap());
    assert_eq!(f.multi_mapping_move, version >= (6, 17), "kernel {release}");
    assert_eq!(f.dontunmap, version >= (5, 7), "kernel {release}");
    assert_eq!(features(), f);
}

#[cfg(any(not(target_os = "linux"), feature = "force-fallback"))]
#[test]
fn fallback_has_no_mremap() {
    let page = page_size();
    let p = map_anon(0, page).unwrap();
    // SAFETY: our mapping.
    unsafe {
        assert_eq!(
            remap_in_place(p, page, 2 * page).unwrap_err(),
            Errno(libc::ENOTSUP)
        );
        assert!(remap_maymove(p, page, 2 * page).is_err());
        unmap(p, page).unwrap();
    }
    assert!(!features().mremap);
}
/// Issue 10, defect 6: the multi-mapping probe must not unmap the range its move vacated:
/// another thread may have mapped there the instant it was free.
#[cfg(all(target_os = "linux", not(feature = "force-fallback")))]
#[test]
fn the_feature_probe_never_unmaps_a_range_it_vacated() {
    use std::sync::Mutex;
    static FOREIGN: Mutex<Option<(usize, usize)>> = Mutex::new(None);
    if super::valgrind() {
        return;
    }
    super::fault::set_hook(Some(|addr, len| {
        let p = super::map_anon(addr as usize, len).expect("the vacated range is free");
        // SAFETY: the "foreign" mapping just made, `len` bytes.
        unsafe { p.write_bytes(0x3C, len) };
        *FOREIGN.lock().unwrap() = Some((p as usize, len));
    }));
    let f = super::probe_features();
    super::fault::set_hook(None);
    let Some((p, len)) = FOREIGN.lock().unwrap().take() else {
        assert!(
            !f.multi_mapping_move,
            "the move succeeded but the hook did not run"
        );
        return;
    };
    assert!(
        super::is_mapped(p as *mut u8, len),
        "foreign mapping unmapped"
    );
    // SAFETY: the foreign mapping is mapped (checked above) and belongs to this test.
    unsafe {
        assert!(
            core::slice::from_raw_parts(p as *const u8, len)
                .iter()
                .all(|&b| b == 0x3C)
        );
        super::unmap(p as *mut u8, len).unwrap();
    }
}

/// `populate_write` makes every page of a fresh mapping resident in one call, keeps the bytes
/// already written, and fails (instead of faulting) on a range it cannot make writable.
#[cfg(all(target_os = "linux", not(feature = "force-fallback")))]
#[test]
fn populate_write_faults_pages_in_and_keeps_bytes() {
    let page = page_size();
    let len = 16 * page;
    let p = map_anon(0, len).unwrap();
    // SAFETY: our fresh mapping of `len` bytes.
    unsafe { p.add(3 * page).write(0x5A) };
    let resident = |p: *mut u8| {
        let mut v = [0u8; 16];
        // SAFETY: 16 pages of our mapping, one byte each into `v`.
        assert_eq!(unsafe { libc::mincore(p.cast(), len, v.as_mut_ptr()) }, 0);
        v.iter().filter(|&&b| b & 1 != 0).count()
    };
    assert!(resident(p) < 16);
    // SAFETY: our own read-write mapping.
    match unsafe { populate_write(p, len) } {
        // A kernel older than 5.14 does not know the advice.
        Err(Errno(libc::EINVAL)) => {}
        r => {
            r.unwrap();
            assert_eq!(resident(p), 16);
        }
    }
    // SAFETY: our mapping, still mapped.
    unsafe {
        assert_eq!(p.add(3 * page).read(), 0x5A);
        assert_eq!(p.add(4 * page).read(), 0);
    }
    // A reservation cannot be populated for writing: an error, never a fault.
    let r = reserve(0, page).unwrap();
    // SAFETY: our own reservation; the call fails without touching it.
    assert!(unsafe { populate_write(r, page) }.is_err());
    // SAFETY: both ranges are ours and nothing refers to them.
    unsafe {
        unmap(r, page).unwrap();
        unmap(p, len).unwrap();
    }
}

/// `write_zeros` allocates a memory file's pages with zeros past what was written, leaving the
/// written page alone, in pieces larger than its zero buffer; `populate_read` then maps them
/// (writable: a write through the mapping lands in the file).
#[cfg(all(target_os = "linux", not(feature = "force-fallback")))]
#[test]
fn write_zeros_then_populate_read_maps_the_file_pages() {
    let page = page_size();
    let len = (256 << 10) + 3 * page; // more than one `pwritev` of the 64 KiB zero buffer
    let fd = memfd().unwrap();
    set_file_len(fd, len).unwrap();
    let p = map_shared(0, len, fd).unwrap();
    // SAFETY: our shared mapping of `len` bytes.
    unsafe { p.write_bytes(0x77, page) };
    write_zeros(fd, page, len - page).unwrap();
    let resident = |p: *mut u8| {
        let mut v = vec![0u8; len / page];
        // SAFETY: `len` bytes of our mapping, one byte per page into `v`.
        assert_eq!(unsafe { libc::mincore(p.cast(), len, v.as_mut_ptr()) }, 0);
        v.iter().filter(|&&b| b & 1 != 0).count()
    };
    // SAFETY: our own mapping.
    match unsafe { populate_read(p, len) } {
        // A kernel older than 5.14 does not know the advice.
        Err(Errno(libc::EINVAL)) => {}
        r => {
            r.unwrap();
            assert_eq!(resident(p), len / page);
        }
    }
    // SAFETY: our mapping, still mapped; the file is ours.
    unsafe {
        let s = core::slice::from_raw_parts_mut(p, len);
        assert!(s[..page].iter().all(|&b| b == 0x77));
        assert!(s[page..].iter().all(|&b| b == 0));
        s[len - 1] = 9;
        let mut b = 0u8;
        assert_eq!(libc::pread(fd, (&raw mut b).cast(), 1, (len - 1) as i64), 1);
        assert_eq!(b, 9);
        unmap(p, len).unwrap();
    }
    close(fd);
}

/// The portable backend has no populate advice: it says so instead of pretending.
#[cfg(any(not(target_os = "linux"), feature = "force-fallback"))]
#[test]
fn populate_write_is_unsupported_on_the_portable_backend() {
    let page = page_size();
    let p = map_anon(0, page).unwrap();
    // SAFETY: our own mapping.
    let r = unsafe { populate_write(p, page) };
    assert_eq!(r.unwrap_err(), Errno(libc::ENOTSUP));
    // SAFETY: our mapping, nothing refers to it.
    unsafe { unmap(p, page).unwrap() };
}

/// The portable backend places nothing at a hint (memmap2 maps where the OS likes): the call
/// is refused, and the mapping that was there is untouched.
#[cfg(any(not(target_os = "linux"), feature = "force-fallback"))]
#[test]
fn the_portable_backend_refuses_hints() {
    let len = page_size();
    let first = map_anon(0, len).unwrap();
    // SAFETY: our fresh mapping.
    unsafe { first.write(9) };
    assert_eq!(
        map_anon(first as usize, len).unwrap_err(),
        Errno(libc::ENOTSUP)
    );
    assert_eq!(
        reserve(first as usize + len, len).unwrap_err(),
        Errno(libc::ENOTSUP)
    );
    // SAFETY: our mapping, still there.
    unsafe {
        assert_eq!(first.read(), 9);
        unmap(first, len).unwrap();
    }
}

/// The portable backend unmaps a map in parts (an aligned region trimmed from a larger map, a
/// shrunk tail, then the rest): the map stays until every part is given up, then it is gone.
#[cfg(any(not(target_os = "linux"), feature = "force-fallback"))]
#[test]
fn the_portable_backend_unmaps_a_map_once_every_part_is_given_up() {
    let page = page_size();
    let p = map_anon(0, 8 * page).unwrap();
    // SAFETY: parts of our 8-page mapping, each given up once.
    unsafe {
        p.add(2 * page).write_bytes(5, 4 * page);
        unmap(p, page).unwrap(); // head
        unmap(p.add(7 * page), page).unwrap(); // tail
        remap_in_place(p.add(page), 6 * page, 4 * page).unwrap(); // pages 5 and 6
        assert!(is_mapped(p.add(page), 4 * page));
        assert_eq!(p.add(2 * page).read(), 5);
        assert_eq!(p.add(5 * page - 1).read(), 5);
        unmap(p.add(page), 4 * page).unwrap();
    }
    assert!(!is_mapped(p, 8 * page));
    // Nothing of ours there any more: unmapping again is refused, not done.
    // SAFETY: refused before anything is touched (no map of this backend holds `p`).
    assert_eq!(unsafe { unmap(p, page) }.unwrap_err(), Errno(libc::EINVAL));
}

/// Decommitted memory reads as zero once committed again, on the portable backend too.
#[test]
fn decommitted_memory_reads_as_zero_when_committed_again() {
    let page = page_size();
    let p = reserve(0, 4 * page).unwrap();
    // SAFETY: ranges of our own reservation.
    unsafe {
        commit(p, 4 * page).unwrap();
        p.write_bytes(0xAB, 4 * page);
        decommit(p.add(page), 2 * page).unwrap();
        commit(p.add(page), 2 * page).unwrap();
        let bytes = core::slice::from_raw_parts(p, 4 * page);
        assert!(bytes[..page].iter().all(|&b| b == 0xAB));
        assert!(bytes[page..3 * page].iter().all(|&b| b == 0));
        assert!(bytes[3 * page..].iter().all(|&b| b == 0xAB));
        unmap(p, 4 * page).unwrap();
    }
}

/// Memory the portable backend zeroes reads zero even when its pages are locked (the kernel
/// refuses `MADV_DONTNEED` for them). A reviewer's reproduction: an arena region freed while
/// locked came back with its old bytes.
#[cfg(any(not(target_os = "linux"), feature = "force-fallback"))]
#[test]
fn decommitted_locked_memory_reads_zero() {
    let page = page_size();
    let len = 16 * page;
    // SAFETY: a fresh reservation of ours, committed, written, locked, decommitted, unmapped.
    unsafe {
        let p = map_anon(0, len).unwrap();
        p.write_bytes(0xAB, len);
        if libc::mlock(p.cast(), len) != 0 {
            let _ = unmap(p, len);
            return; // RLIMIT_MEMLOCK too low here: nothing to check
        }
        decommit(p, len).unwrap();
        commit(p, len).unwrap();
        let bytes = core::slice::from_raw_parts(p, len);
        assert!(
            bytes.iter().all(|&b| b == 0),
            "locked pages kept their bytes"
        );
        libc::munlock(p.cast(), len);
        let _ = unmap(p, len);
    }
}
