//! Portable backend: every target but Linux (Windows, macOS, the BSDs, ...), and Linux with the
//! `force-fallback` feature so that it is tested here. Every mapping is a [`memmap2`] anonymous
//! map; nothing grows in place or moves, so the region layer maps anew and copies, and counts
//! it as `copied` in its statistics.
//!
//! What memmap2 cannot express, this backend emulates on the maps it made:
//!
//! * **No placement.** A map goes where the OS puts it; a call with an address hint fails
//!   with `ENOTSUP` (so the placement layer stops asking, see `region::place`).
//! * **Reservations are memory.** A "reservation" is a read-write map that is never touched
//!   (`MAP_NORESERVE` on unix, so it costs address space only); on Windows memmap2's anonymous
//!   maps are committed pagefile-backed sections, so a reservation counts against the commit
//!   limit.
//! * **Commit / decommit keep the map.** `commit` has nothing to do (the range is read-write
//!   and reads as zero); `decommit` zeroes the range and gives its pages back where the OS
//!   allows (`MADV_DONTNEED`, which also zeroes, on Linux; zeroing then the advice elsewhere on
//!   unix; zeroing only on Windows). Neither ever unmaps, so a failure leaves the range ours.
//! * **Partial unmaps.** The maps live in a registry (below); unmapping part of one gives its
//!   pages back (as `decommit`, without the zeroing) and counts its bytes; the map is dropped
//!   (unmapped for real) when all of its bytes have been unmapped. A freed part is never handed
//!   out again by this backend, so nothing can land there in between.
//!
//! The registry is a fixed table of [`SLOTS`] entries in static memory: it never allocates and
//! has no lock (each entry is a seqlock whose readers never wait, so a fork cannot leave a
//! child waiting for a thread it does not have). A lookup scans the entries in use.

use super::{Errno, Features};
use core::cell::UnsafeCell;
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicUsize, Ordering, fence};
use memmap2::{MmapMut, MmapOptions};

/// This backend cannot grow or move a mapping: the region layer copies.
pub(crate) const HAS_MREMAP: bool = false;

/// Live maps the registry can hold (the default `vm.max_map_count` of Linux is 65530).
pub(crate) const SLOTS: usize = 1 << 16;

/// One registered map. `base` is 0 when the entry is free, 1 while it is claimed and being
/// filled or emptied, else the map's start. `seq` is odd while `base`/`len` change.
struct Slot {
    seq: AtomicUsize,
    base: AtomicUsize,
    len: AtomicUsize,
    /// Bytes of the map unmapped so far; the thread whose part completes it drops the map.
    released: AtomicUsize,
    /// Written by the thread that claimed the entry, taken by the one that completes it.
    map: UnsafeCell<MaybeUninit<MmapMut>>,
}

// SAFETY: `map` is written only by the thread that claimed the entry (the CAS of `base` from
// 0 to 1 gives it exclusive access), read only by callers that own part of the map (so it is
// initialized and not dropped while they run: it is dropped only once every byte has been
// given up), and moved out only by the one thread whose `released` update completes the map.
unsafe impl Sync for Slot {}

const FREE: usize = 0;
const BUSY: usize = 1;

static REGISTRY: [Slot; SLOTS] = [const {
    Slot {
        seq: AtomicUsize::new(0),
        base: AtomicUsize::new(FREE),
        len: AtomicUsize::new(0),
        released: AtomicUsize::new(0),
        map: UnsafeCell::new(MaybeUninit::uninit()),
    }
}; SLOTS];

/// Entries below this index may be in use.
static HIGH: AtomicUsize = AtomicUsize::new(0);

/// Registers `map`; gives it back when the table is full.
fn register(map: MmapMut) -> Result<*mut u8, MmapMut> {
    let (base, len) = (map.as_ptr() as usize, map.len());
    for (i, s) in REGISTRY.iter().enumerate() {
        if s.base.load(Ordering::Relaxed) != FREE
            || s.base
                .compare_exchange(FREE, BUSY, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
        {
            continue;
        }
        HIGH.fetch_max(i + 1, Ordering::Relaxed);
        let seq = s.seq.load(Ordering::Relaxed);
        s.seq.store(seq + 1, Ordering::Relaxed);
        fence(Ordering::Release);
        // SAFETY: the CAS above gave this thread the entry; nobody reads `map` of an entry
        // whose `base` is not a map start.
        unsafe { (*s.map.get()).write(map) };
        s.len.store(len, Ordering::Relaxed);
        s.released.store(0, Ordering::Relaxed);
        s.base.store(base, Ordering::Relaxed);
        s.seq.store(seq + 2, Ordering::Release);
        return Ok(base as *mut u8);
    }
    Err(map)
}

/// The entry of the map holding `addr`, with that map's start and length. Only meaningful
/// for an address of a map the caller owns part of (which then cannot change meanwhile);
/// entries that change while they are read are skipped, never waited for.
fn find(addr: usize) -> Option<(&'static Slot, usize, usize)> {
    let high = HIGH.load(Ordering::Relaxed).min(SLOTS);
    REGISTRY[..high].iter().find_map(|s| {
        let seq = s.seq.load(Ordering::Acquire);
        if seq & 1 == 1 {
            return None;
        }
        let base = s.base.load(Ordering::Relaxed);
        let len = s.len.load(Ordering::Relaxed);
        fence(Ordering::Acquire);
        if s.seq.load(Ordering::Relaxed) != seq || base <= BUSY {
            return None;
        }
        (addr >= base && addr - base < len).then_some((s, base, len))
    })
}

/// The map in `slot`.
///
/// # Safety
/// The caller owns part of the map (so the entry is filled and stays so while it runs).
#[cfg_attr(not(unix), allow(dead_code))]
unsafe fn map_of(slot: &Slot) -> &MmapMut {
    // SAFETY: the caller's contract: filled by `register`, not taken before every byte of the
    // map was given up, which the caller has not done yet.
    unsafe { (*slot.map.get()).assume_init_ref() }
}

fn to_errno(e: &std::io::Error) -> Errno {
    Errno(e.raw_os_error().unwrap_or(libc::ENOMEM))
}

#[cfg(unix)]
pub(crate) fn query_page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 { p as usize } else { 4096 }
}

/// 4 KiB: the page of Windows on x86, x86_64 and aarch64 (memmap2 does not report it, and
/// maps start at 64 KiB boundaries there anyway).
#[cfg(not(unix))]
pub(crate) fn query_page_size() -> usize {
    4096
}

/// A new map of `len` bytes, registered. Refuses hints (`ENOTSUP`): memmap2 places maps
/// where the OS likes.
fn map_new(hint: usize, len: usize, reservation: bool) -> Result<*mut u8, Errno> {
    if let Some((errno, _)) = super::fault::hit() {
        return Err(Errno(errno));
    }
    if hint != 0 {
        return Err(Errno(libc::ENOTSUP));
    }
    // memmap2 reports an oversized length with an allocated error message: refused first.
    if len == 0 || len > isize::MAX as usize {
        return Err(Errno(libc::ENOMEM));
    }
    let mut opts = MmapOptions::new();
    opts.len(len);
    if reservation {
        opts.no_reserve_swap();
    }
    let map = opts.map_anon().map_err(|e| to_errno(&e))?;
    // Dropping the map on a full table unmaps it again.
    register(map).map_err(|_| Errno(libc::ENOMEM))
}

/// Fresh zeroed read-write memory, placed by the OS. A hint is refused with `ENOTSUP`.
pub(crate) fn map_anon(hint: usize, len: usize) -> Result<*mut u8, Errno> {
    map_new(hint, len, false)
}

/// A "reservation": memory that is never touched until committed (see the module docs). A
/// hint is refused with `ENOTSUP`.
pub(crate) fn reserve(hint: usize, len: usize) -> Result<*mut u8, Errno> {
    map_new(hint, len, true)
}

/// Gives the pages of `[addr, addr + len)`, part of the map in `slot` that starts at `base`,
/// back to the OS where it can; with `zero` the range reads as zero afterwards.
///
/// # Safety
/// The caller owns the range and nothing refers to its contents.
unsafe fn discard(slot: &Slot, base: usize, addr: usize, len: usize, zero: bool) {
    let off = addr - base;
    // Only Linux's MADV_DONTNEED on private anonymous memory is sure to zero.
    if zero && !cfg!(target_os = "linux") {
        // SAFETY: the caller owns the range, which is read-write memory of its map.
        unsafe { (addr as *mut u8).write_bytes(0, len) };
    }
    #[cfg(unix)]
    {
        // SAFETY: the caller owns part of the map (`map_of`) and the range (the advice drops
        // its pages; nothing refers to them), which lies inside the map (`find`).
        let advised = unsafe {
            map_of(slot).unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, off, len)
        };
        // The kernel refuses the advice for locked pages (`mlock`, `mlockall`): they keep
        // their bytes, so zero them by hand.
        if zero && cfg!(target_os = "linux") && advised.is_err() {
            // SAFETY: the caller owns the range, which is read-write memory of its map.
            unsafe { (addr as *mut u8).write_bytes(0, len) };
        }
    }
    #[cfg(not(unix))]
    let _ = (slot, off);
}

/// Checks that `[addr, addr + len)` lies in one registered map; its entry and start.
fn whole(addr: *mut u8, len: usize) -> Result<(&'static Slot, usize), Errno> {
    let (slot, base, map_len) = find(addr as usize).ok_or(Errno(libc::EINVAL))?;
    if len > map_len - (addr as usize - base) {
        return Err(Errno(libc::EINVAL));
    }
    Ok((slot, base))
}

/// Zeroes `[addr, addr + len)` and gives its pages back where the OS allows; the range stays
/// mapped.
///
/// # Safety
/// The caller owns the whole range and nothing refers to its contents.
unsafe fn zero_fixed(addr: *mut u8, len: usize) -> Result<(), Errno> {
    if let Some((errno, _)) = super::fault::hit() {
        return Err(Errno(errno));
    }
    let (slot, base) = whole(addr, len)?;
    // SAFETY: the caller's contract.
    unsafe { discard(slot, base, addr as usize, len, true) };
    Ok(())
}

/// A reservation over a range the caller owns: it stays the same map, zeroed in place and its
/// pages given back where the OS allows (see [`decommit`]).
///
/// # Safety
/// The caller owns the whole range and nothing refers to it.
pub(crate) unsafe fn reserve_fixed(addr: *mut u8, len: usize) -> Result<(), Errno> {
    // SAFETY: the caller's contract, passed on.
    unsafe { zero_fixed(addr, len) }
}

/// Makes `[addr, addr + len)`, part of the caller's reservation, usable: it is read-write
/// memory that reads as zero already (never written, or zeroed by [`decommit`]), so only the
/// range is checked. Never unmaps anything.
///
/// # Safety
/// The caller owns the whole range (its own reservation, never given up since).
pub(crate) unsafe fn commit(addr: *mut u8, len: usize) -> Result<(), Errno> {
    if let Some((errno, _)) = super::fault::hit() {
        return Err(Errno(errno));
    }
    whole(addr, len).map(|_| ())
}

/// Turns `[addr, addr + len)` back into reservation: zeroed, its pages given back where the
/// OS allows. Never unmaps anything.
///
/// # Safety
/// The caller owns the whole range and nothing refers to its contents any more.
pub(crate) unsafe fn decommit(addr: *mut u8, len: usize) -> Result<(), Errno> {
    // SAFETY: the caller's contract, passed on.
    unsafe { zero_fixed(addr, len) }
}

/// No memory files here (`ENOTSUP`): shared buffers copy instead.
pub(crate) fn memfd() -> Result<i32, Errno> {
    Err(Errno(libc::ENOTSUP))
}

/// Not reached without `memfd` (`ENOTSUP`).
pub(crate) fn set_file_len(_fd: i32, _len: usize) -> Result<(), Errno> {
    Err(Errno(libc::ENOTSUP))
}

/// Not reached without `memfd` (`ENOTSUP`).
pub(crate) fn allocate_file(_fd: i32, _off: usize, _len: usize) -> Result<(), Errno> {
    Err(Errno(libc::ENOTSUP))
}

/// Not reached without `memfd` (`ENOTSUP`).
pub(crate) fn write_zeros(_fd: i32, _off: usize, _len: usize) -> Result<(), Errno> {
    Err(Errno(libc::ENOTSUP))
}

/// Not reached without `memfd`: there is no descriptor to close.
pub(crate) fn close(_fd: i32) {}

/// Not reached without `memfd` (`ENOTSUP`).
pub(crate) fn map_shared(_hint: usize, _len: usize, _fd: i32) -> Result<*mut u8, Errno> {
    Err(Errno(libc::ENOTSUP))
}

/// Shrinking unmaps the tail (see [`unmap`]); growing is not possible (`ENOTSUP`).
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

/// Milliseconds of a monotonic clock (for the recycler's decay). No allocation.
#[cfg(unix)]
pub(crate) fn now_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into `ts`.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64) * 1000 + (ts.tv_nsec as u64) / 1_000_000
}

/// Milliseconds of the system clock (for the recycler's decay, which only compares stamps
/// a second or so apart). No allocation.
#[cfg(not(unix))]
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
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

/// Unmaps `[addr, addr + len)`, which may be part of a map or span several: each map's part
/// gives its pages back and is counted; a map all of whose bytes are unmapped is dropped.
/// `EINVAL` (and nothing more done) when part of the range is not a map of this backend.
///
/// # Safety
/// The caller owns the range and nothing refers to it any more.
pub(crate) unsafe fn unmap(addr: *mut u8, len: usize) -> Result<(), Errno> {
    let (mut cur, end) = (addr as usize, addr as usize + len);
    while cur < end {
        let (slot, base, map_len) = find(cur).ok_or(Errno(libc::EINVAL))?;
        let part = (end - cur).min(base + map_len - cur);
        let released = slot.released.load(Ordering::Relaxed);
        if released + part < map_len {
            // SAFETY: the caller owns this part of the map and gives it up.
            unsafe { discard(slot, base, cur, part, false) };
        }
        // After this update the map may be dropped by another owner of part of it: the slot
        // is not touched again unless this update completes it.
        if slot.released.fetch_add(part, Ordering::AcqRel) + part >= map_len {
            // SAFETY: every byte of the map has been given up, by the caller and by the
            // owners of its other parts: this thread alone may take it.
            let map = unsafe { (*slot.map.get()).assume_init_read() };
            let seq = slot.seq.load(Ordering::Relaxed);
            slot.seq.store(seq + 1, Ordering::Relaxed);
            fence(Ordering::Release);
            slot.base.store(BUSY, Ordering::Relaxed);
            slot.len.store(0, Ordering::Relaxed);
            slot.seq.store(seq + 2, Ordering::Release);
            slot.base.store(FREE, Ordering::Release);
            drop(map);
        }
        cur += part;
    }
    Ok(())
}

/// Advises transparent huge pages for `[addr, addr + len)` where the OS has them (Linux);
/// a successful no-op elsewhere.
pub(crate) fn advise_huge(addr: *mut u8, len: usize) -> Result<(), Errno> {
    #[cfg(target_os = "linux")]
    {
        let (slot, base) = whole(addr, len)?;
        // SAFETY: the range is part of a registered map (checked above) that the caller owns
        // (every caller advises its own fresh region).
        let map = unsafe { map_of(slot) };
        map.advise_range(memmap2::Advice::HugePage, addr as usize - base, len)
            .map_err(|e| to_errno(&e))
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (addr, len);
        Ok(())
    }
}

/// Not asked on the portable backend: `false` (no block is found dense, none is renewed).
pub(crate) fn resident(_addr: *mut u8, _len: usize) -> bool {
    false
}

/// What the system does with transparent huge pages (see the Linux backend).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(dead_code)] // The same variants as the Linux backend's; only `Off` is answered here.
pub(crate) enum Thp {
    /// None to be had.
    Off,
    /// Only for memory advised for them.
    Madvise,
    /// For all memory.
    Always,
}

/// Not asked on the portable backend: [`Thp::Off`] (the recycler makes no block huge).
pub(crate) fn thp_mode() -> Thp {
    Thp::Off
}

/// Nothing to undo on the portable backend, which never advises huge pages for the recycler.
pub(crate) fn advise_no_huge(_addr: *mut u8, _len: usize) -> Result<(), Errno> {
    Ok(())
}

/// Not available on the portable backend (`ENOTSUP`): the pages stay.
///
/// # Safety
/// None needed (nothing is done); `unsafe` to match the Linux backend.
pub(crate) unsafe fn drop_pages(_addr: *mut u8, _len: usize) -> Result<(), Errno> {
    Err(Errno(libc::ENOTSUP))
}

/// No populate advice here (`ENOTSUP`): callers fault pages in by touching them.
///
/// # Safety
/// As in the Linux backend: the caller owns the range.
pub(crate) unsafe fn populate_write(_addr: *mut u8, _len: usize) -> Result<(), Errno> {
    Err(Errno(libc::ENOTSUP))
}

/// Not available on the portable backend (`ENOTSUP`): pages fault in when touched.
///
/// # Safety
/// None needed (nothing is done); `unsafe` to match the Linux backend.
pub(crate) unsafe fn populate_read(_addr: *mut u8, _len: usize) -> Result<(), Errno> {
    Err(Errno(libc::ENOTSUP))
}

/// Whether every page of `[addr, addr + len)` lies in a map of this backend (unmapped parts
/// of a map still count until the whole map is dropped: they are never handed out again).
pub(crate) fn is_mapped(addr: *mut u8, len: usize) -> bool {
    let (mut cur, end) = (addr as usize, (addr as usize).saturating_add(len));
    while cur < end {
        let Some((_, base, map_len)) = find(cur) else {
            return false;
        };
        cur = base + map_len;
    }
    true
}

/// Whether the byte at `addr` can be read: this backend's maps are all read-write, so it is
/// whether `addr` lies in one.
pub(crate) fn readable(addr: *mut u8) -> bool {
    find(addr as usize).is_some()
}

/// Nothing beyond plain maps.
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
