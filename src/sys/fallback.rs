//! Portable backend for unixes without `mremap` (and Linux with the `force-fallback` feature,
//! so that it is tested): POSIX `mmap`, `munmap`, `madvise` only. Nothing grows in place or
//! moves; the region layer copies instead, and says so in its statistics.

use super::{Errno, Features};
use libc::{MAP_ANON, MAP_FAILED, MAP_PRIVATE, PROT_NONE, c_void};

const PROT_RW: i32 = libc::PROT_READ | libc::PROT_WRITE;

/// This backend cannot grow or move a mapping: the region layer copies.
pub(crate) const HAS_MREMAP: bool = false;

pub(crate) fn query_page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 { p as usize } else { 4096 }
}

fn mmap_raw(hint: usize, len: usize, prot: i32, flags: i32) -> Result<*mut u8, Errno> {
    if let Some((errno, _)) = super::fault::hit() {
        return Err(Errno(errno));
    }
    // SAFETY: without MAP_FIXED the hint is only a hint: nothing existing is replaced.
    let p = unsafe { libc::mmap(hint as *mut c_void, len, prot, flags, -1, 0) };
    if p == MAP_FAILED {
        return Err(Errno::last());
    }
    if hint != 0 && p as usize != hint {
        // SAFETY: we just created this mapping and nothing refers to it.
        unsafe { libc::munmap(p, len) };
        return Err(Errno(libc::EEXIST));
    }
    Ok(p.cast())
}

/// See the Linux backend: fresh zeroed memory, exactly at `hint` or `EEXIST`.
pub(crate) fn map_anon(hint: usize, len: usize) -> Result<*mut u8, Errno> {
    mmap_raw(hint, len, PROT_RW, MAP_PRIVATE | MAP_ANON)
}

/// See the Linux backend: a `PROT_NONE` reservation.
pub(crate) fn reserve(hint: usize, len: usize) -> Result<*mut u8, Errno> {
    mmap_raw(hint, len, PROT_NONE, MAP_PRIVATE | MAP_ANON)
}

fn mmap_fixed(addr: *mut u8, len: usize, prot: i32) -> Result<(), Errno> {
    if let Some((errno, _)) = super::fault::hit() {
        return Err(Errno(errno));
    }
    // SAFETY: the callers' contracts say that they own `[addr, addr + len)`, so MAP_FIXED
    // replaces only their own memory.
    let p = unsafe {
        libc::mmap(
            addr.cast(),
            len,
            prot,
            MAP_PRIVATE | MAP_ANON | libc::MAP_FIXED,
            -1,
            0,
        )
    };
    if p == MAP_FAILED {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

/// See the Linux backend: fresh zeroed memory over a range the caller owns.
///
/// # Safety
/// The caller owns the whole range and nothing refers to it.
pub(crate) unsafe fn map_fixed(addr: *mut u8, len: usize) -> Result<(), Errno> {
    mmap_fixed(addr, len, libc::PROT_READ | libc::PROT_WRITE)
}

/// See the Linux backend: a `PROT_NONE` reservation over a range the caller owns.
///
/// # Safety
/// The caller owns the whole range and nothing refers to it.
pub(crate) unsafe fn reserve_fixed(addr: *mut u8, len: usize) -> Result<(), Errno> {
    mmap_fixed(addr, len, PROT_NONE)
}

/// No memory files here (`ENOTSUP`): shared buffers copy instead.
pub(crate) fn memfd() -> Result<i32, Errno> {
    Err(Errno(libc::ENOTSUP))
}

/// Makes `[addr, addr + len)`, part of the caller's reservation, zeroed read-write memory. The
/// portable backend replaces the range (`MAP_FIXED`): POSIX has no way to drop pages in place.
///
/// # Safety
/// The caller owns the whole range (its own reservation, never given up since).
pub(crate) unsafe fn commit(addr: *mut u8, len: usize) -> Result<(), Errno> {
    // SAFETY: the caller's contract, passed on.
    unsafe { map_fixed(addr, len) }
}

/// Turns `[addr, addr + len)` back into a reservation, discarding its pages (`MAP_FIXED`).
///
/// # Safety
/// The caller owns the whole range and nothing refers to its contents any more.
pub(crate) unsafe fn decommit(addr: *mut u8, len: usize) -> Result<(), Errno> {
    // SAFETY: the caller's contract, passed on.
    unsafe { reserve_fixed(addr, len) }
}

/// Not reached without `memfd` (`ENOTSUP`).
pub(crate) fn set_file_len(_fd: i32, _len: usize) -> Result<(), Errno> {
    Err(Errno(libc::ENOTSUP))
}

/// Closes `fd`.
pub(crate) fn close(fd: i32) {
    // SAFETY: closing a descriptor the caller owns and no longer uses.
    unsafe { libc::close(fd) };
}

/// Not reached without `memfd` (`ENOTSUP`).
pub(crate) fn map_shared(_hint: usize, _len: usize, _fd: i32) -> Result<*mut u8, Errno> {
    Err(Errno(libc::ENOTSUP))
}

/// Shrinking unmaps the tail; growing is not possible without `mremap` (`ENOTSUP`).
///
/// # Safety
/// As in the Linux backend: the caller owns the mapping and nothing refers to a released tail.
pub(crate) unsafe fn remap_in_place(
    addr: *mut u8,
    old_len: usize,
    new_len: usize,
) -> Result<(), Errno> {
    if new_len > old_len {
        return Err(Errno(libc::ENOTSUP));
    }
    if new_len == old_len {
        return Ok(());
    }
    // SAFETY: the caller owns the tail and nothing refers to it.
    unsafe { unmap(addr.add(new_len), old_len - new_len) }
}

/// Not available without `mremap` (`ENOTSUP`).
///
/// # Safety
/// As in the Linux backend.
pub(crate) unsafe fn remap_maymove(
    _addr: *mut u8,
    _old_len: usize,
    _new_len: usize,
) -> Result<*mut u8, Errno> {
    Err(Errno(libc::ENOTSUP))
}

/// Not available without `mremap` (`ENOTSUP`).
///
/// # Safety
/// As in the Linux backend.
pub(crate) unsafe fn remap_fixed(
    _addr: *mut u8,
    _old_len: usize,
    _new_len: usize,
    _dst: *mut u8,
) -> Result<(), Errno> {
    Err(Errno(libc::ENOTSUP))
}

/// Not available without `mremap` (`ENOTSUP`).
///
/// # Safety
/// As in the Linux backend.
pub(crate) unsafe fn remap_fixed_dontunmap(
    _addr: *mut u8,
    _len: usize,
    _dst: *mut u8,
) -> Result<(), Errno> {
    Err(Errno(libc::ENOTSUP))
}

/// Milliseconds of a monotonic clock (coarse: a few ms of resolution is plenty for decay).
/// Through the vDSO on Linux: no system call, no allocation.
pub(crate) fn now_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into `ts`.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64) * 1000 + (ts.tv_nsec as u64) / 1_000_000
}

/// No memory files on this backend, so nothing to watch: always 0.
#[inline]
pub(crate) fn fork_generation() -> usize {
    0
}

/// No memory files on this backend: nothing is shared, nothing to watch.
pub(crate) fn watch_forks() -> bool {
    false
}

/// Unmaps `[addr, addr + len)`.
///
/// # Safety
/// The caller owns the range and nothing refers to it any more.
pub(crate) unsafe fn unmap(addr: *mut u8, len: usize) -> Result<(), Errno> {
    // SAFETY: the caller owns the range and no longer uses it.
    if unsafe { libc::munmap(addr.cast(), len) } == 0 {
        Ok(())
    } else {
        Err(Errno::last())
    }
}

/// No transparent huge pages here: a successful no-op.
pub(crate) fn advise_huge(_addr: *mut u8, _len: usize) -> Result<(), Errno> {
    Ok(())
}

/// No populate advice here (`ENOTSUP`): callers fault pages in by touching them.
///
/// # Safety
/// As in the Linux backend: the caller owns the range.
// Its callers (bulk fills, SharedVec) land separately; no warning meanwhile.
#[allow(dead_code)]
pub(crate) unsafe fn populate_write(_addr: *mut u8, _len: usize) -> Result<(), Errno> {
    Err(Errno(libc::ENOTSUP))
}

/// Whether every page of `[addr, addr + len)` is mapped.
pub(crate) fn is_mapped(addr: *mut u8, len: usize) -> bool {
    let page = super::page_size();
    let mut off = 0;
    while off < len {
        // SAFETY: msync(MS_ASYNC) on anonymous memory writes nothing anywhere; on an unmapped
        // page it fails with ENOMEM. `addr + off` stays inside the range the caller named.
        let rc = unsafe { libc::msync(addr.add(off).cast(), page, libc::MS_ASYNC) };
        if rc != 0 {
            return false;
        }
        off += page;
    }
    true
}

/// Whether the byte at `addr` can be read. This backend cannot tell without touching it and
/// answers `true` (its only caller, after a partial `mremap` move, never runs here: this
/// backend has no `mremap`; `true` keeps an upper bound conservative).
pub(crate) fn readable(_addr: *mut u8) -> bool {
    true
}

/// Nothing beyond POSIX mmap.
pub(crate) fn probe_features() -> Features {
    Features {
        multi_mapping_move: false,
        dontunmap: false,
        mremap: false,
    }
}

/// This backend never uses `MREMAP_FIXED`; valgrind needs no accommodation.
pub(crate) fn under_valgrind() -> bool {
    false
}
