//! Placement: where every new mapping of the crate goes, for every kind of mapping
//! (anonymous memory, a `PROT_NONE` reservation, a shared view of a memory file): one policy,
//! one slot loop. `sys` only makes the calls.
//!
//! Where large regions are placed so that they can grow in place.
//!
//! The kernel packs mappings top-down below the stack, so the addresses just above a fresh
//! mapping are almost always taken and `mremap` cannot extend it. Instead regions are placed at
//! hint addresses in a sparse zone of the address space far from the kernel's own mmap area,
//! each in a slot several times its size, so the space after it stays free. The kernel is asked
//! with `MAP_FIXED_NOREPLACE`, which never replaces an existing mapping: a taken slot is an
//! `EEXIST`, and the next slot is tried.
//!
//! Regions from [`ROOMY`] (2 MiB) on get a zone slot with room to grow, aligned to 2 MiB or
//! 1 GiB so that moves shift whole page-table pages. Smaller ones are placed by the kernel,
//! which packs them densely: they share page-table pages (12 000 live 128 KiB regions each in a
//! 4 GiB slot needed 96 MB of page tables, packed they need 3 MB), and moving one when it grows
//! costs a few µs.

use crate::sys::{self, Errno, PMD_SIZE, PUD_SIZE};
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Regions from this size on get a slot of the zone with room to grow in place; smaller ones
/// are packed densely by the kernel.
pub(crate) const ROOMY: usize = PMD_SIZE;

/// Set once placement in the zone is known to be impossible for good: a one-page reservation
/// at a zone address failed for a reason other than a taken slot while one placed by the
/// kernel succeeded (the zone lies beyond this process's address space, e.g. under valgrind or
/// with a 39-bit VA). Later regions then skip straight to the kernel. A failure that a
/// one-page probe does not reproduce (a request too large for the memory, `RLIMIT_AS`
/// briefly reached by another thread, `vm.max_map_count`) never sets it.
static ZONE_UNUSABLE: AtomicBool = AtomicBool::new(false);

/// After a zone placement at `addr` failed with something else than `EEXIST`: whether the
/// zone itself is unreachable (a permanent cause), decided by two one-page reservations.
fn zone_unreachable(addr: usize, calls: &mut u32) -> bool {
    let page = sys::page_size();
    *calls += 1;
    match sys::reserve(addr, page) {
        Ok(p) => {
            *calls += 1;
            // SAFETY: `p..p + page` is the reservation MAP_FIXED_NOREPLACE just made for us.
            unsafe {
                let _ = sys::unmap(p, page);
            }
            false
        }
        Err(Errno(libc::EEXIST)) => false,
        Err(_) => {
            *calls += 1;
            match sys::reserve(0, page) {
                Ok(p) => {
                    *calls += 1;
                    // SAFETY: `p..p + page` is the reservation the kernel just placed for us.
                    unsafe {
                        let _ = sys::unmap(p, page);
                    }
                    true
                }
                // Nothing can be mapped anywhere right now: a transient shortage.
                Err(_) => false,
            }
        }
    }
}

/// The alignment a region of `len` bytes is placed at: the caller's `align`, at least a page,
/// 2 MiB from 2 MiB on (whole page-table pages move), 1 GiB from 1 GiB on. Without `mremap`
/// nothing moves: the caller's `align` only (the portable backend keeps a trimmed head or tail
/// mapped until the whole map is unmapped, so over-mapping would cost address space).
fn placement_align(len: usize, align: usize) -> usize {
    let size_align = if !sys::HAS_MREMAP {
        sys::page_size()
    } else if len >= PUD_SIZE {
        PUD_SIZE
    } else if len >= PMD_SIZE {
        PMD_SIZE
    } else {
        sys::page_size()
    };
    align.max(size_align)
}

/// Makes a mapping of `len` bytes (a page multiple) with `map(hint, len)`: at a zone slot with
/// room to grow when `roomy` (and the zone works), else where the kernel likes, aligned to
/// `placement_align(len, align)` either way. `map` must never replace anything: with a hint it
/// maps exactly there or fails (`MAP_FIXED_NOREPLACE`), without one the kernel chooses. Counts
/// every system call in `calls`.
pub(crate) fn place(
    len: usize,
    align: usize,
    roomy: bool,
    calls: &mut u32,
    map: &dyn Fn(usize, usize) -> Result<*mut u8, Errno>,
) -> Result<*mut u8, Errno> {
    let align = placement_align(len, align);
    // Without `mremap` nothing grows in place: room to grow is of no use (and the portable
    // backend places nothing at a hint).
    if roomy
        && sys::HAS_MREMAP
        && !ZONE_UNUSABLE.load(Ordering::Relaxed)
        && let Some(slot) = slot_size(len, align)
    {
        for _ in 0..ATTEMPTS {
            let Some(addr) = next_slot(slot) else {
                break;
            };
            *calls += 1;
            match map(addr, len) {
                Ok(p) => return Ok(p),
                Err(Errno(libc::EEXIST)) => continue,
                Err(_) => {
                    if zone_unreachable(addr, calls) {
                        ZONE_UNUSABLE.store(true, Ordering::Relaxed);
                    }
                    break;
                }
            }
        }
    }
    place_by_kernel(len, align, calls, map)
}

/// Whether zone placement was switched off for good (for tests).
#[cfg(all(test, target_os = "linux", not(feature = "force-fallback")))]
pub(crate) fn zone_unusable() -> bool {
    ZONE_UNUSABLE.load(Ordering::Relaxed)
}

/// Lets the kernel choose the address; over-maps by `align - page` and trims to align.
fn place_by_kernel(
    len: usize,
    align: usize,
    calls: &mut u32,
    map: &dyn Fn(usize, usize) -> Result<*mut u8, Errno>,
) -> Result<*mut u8, Errno> {
    let page = sys::page_size();
    let extra = align.saturating_sub(page);
    let total = len.checked_add(extra).ok_or(Errno(libc::ENOMEM))?;
    *calls += 1;
    let raw = map(0, total)?;
    if extra == 0 {
        return Ok(raw);
    }
    let start = (raw as usize).next_multiple_of(align);
    let head = start - raw as usize;
    let tail = total - head - len;
    // SAFETY: `raw..raw + total` is the mapping `map` just made for us (without a hint, so it
    // replaced nothing); head and tail are the parts of it outside `start..start + len`, which
    // nothing refers to.
    unsafe {
        if head > 0 {
            *calls += 1;
            let _ = sys::unmap(raw, head);
        }
        if tail > 0 {
            *calls += 1;
            let _ = sys::unmap(raw.add(head + len), tail);
        }
        Ok(raw.add(head))
    }
}

/// Start of the zone: 16 TiB, far above the program and brk heap of a typical
/// non-PIE/PIE binary and far below the mmap area (which starts below 128 TiB on x86_64).
#[cfg(target_pointer_width = "64")]
pub(crate) const START: usize = 16 << 40;
/// End of the zone (exclusive): 64 TiB, below where PIE executables are loaded (~85 TiB).
#[cfg(target_pointer_width = "64")]
pub(crate) const END: usize = 64 << 40;
// 32-bit address spaces have no room for such a zone: leave placement to the kernel.
#[cfg(not(target_pointer_width = "64"))]
pub(crate) const START: usize = 0;
#[cfg(not(target_pointer_width = "64"))]
pub(crate) const END: usize = 0;

/// How many slots to try before leaving placement to the kernel.
pub(crate) const ATTEMPTS: usize = 8;

static CURSOR: AtomicUsize = AtomicUsize::new(0);

/// Smallest slot: a region placed anywhere can grow in place to 4 GiB. Address space is
/// plentiful (the zone holds 12 288 such slots, more than a process can have regions of
/// 128 KiB and up before `vm.max_map_count` bites) and costs nothing until touched.
const MIN_SLOT: usize = 4 << 30;

/// Size of the slot for a region of `len` bytes with alignment `align`: room to grow 256x
/// in place (at most 4 TiB of room beyond the region), never below [`MIN_SLOT`]. A power
/// of two, and the slot is aligned to it, so every placed region starts 4 GiB-aligned
/// (2 MiB- and 1 GiB-aligned in particular, as the cheap moves need).
pub(crate) fn slot_size(len: usize, align: usize) -> Option<usize> {
    let base = len.max(align).checked_next_power_of_two()?;
    let room = base.saturating_mul(256).min(base.saturating_add(4 << 40));
    let slot = room.max(MIN_SLOT).checked_next_power_of_two()?;
    if slot > (END - START) / 4 {
        None
    } else {
        Some(slot)
    }
}

/// The next free-looking slot of `slot` bytes (a power of two), aligned to `slot`. Slots
/// are handed out in order through the zone and wrap around; whether one is really free is
/// for the kernel to say (`MAP_FIXED_NOREPLACE`).
pub(crate) fn next_slot(slot: usize) -> Option<usize> {
    if END == 0 {
        return None;
    }
    let mut seen = CURSOR.load(Ordering::Relaxed);
    loop {
        // `seen` is what the cursor held; compare-exchange against it, never a derived value.
        let cur = if seen < START {
            START + initial_offset()
        } else {
            seen
        };
        let mut addr = cur.checked_add(slot - 1)? & !(slot - 1);
        if addr.checked_add(slot)? > END {
            addr = START;
        }
        let next = addr + slot;
        match CURSOR.compare_exchange_weak(seen, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return Some(addr),
            Err(actual) => seen = actual,
        }
    }
}

/// A per-process starting point in the zone so that region addresses are not the same in
/// every run: derived from a stack address, which the kernel randomizes (ASLR). 1 GiB
/// granular, within the first quarter of the zone.
fn initial_offset() -> usize {
    let probe = 0u8;
    let seed = (&raw const probe as usize >> 12).wrapping_mul(0x9E37_79B9_7F4A_7C15_u64 as usize);
    let quarter_gib = ((END - START) / 4) >> 30;
    ((seed >> 20) % quarter_gib.max(1)) << 30
}
