//! `Region`: one owned anonymous mapping (pointer, mapped length, alignment). Grows in place,
//! else moves without copying, else copies as a last resort, and reports which happened.
//! Unmaps on drop. Untyped: the typed layers above it compile once.

use crate::sys::{self, Errno, PMD_SIZE};
use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering};

pub(crate) mod place;
pub(crate) mod recycle;

pub(crate) use place::ROOMY;

/// What to create at a placement.
#[derive(Clone, Copy)]
enum Kind {
    /// Zeroed read-write memory.
    Memory,
    /// A `PROT_NONE` reservation to move a mapping into.
    Reservation,
}

/// Creates `len` bytes (page multiple) of `kind`, placed by [`place::place`]: with room to grow
/// from [`ROOMY`] on. Counts every system call in `calls`.
fn place(kind: Kind, len: usize, align: usize, calls: &mut u32) -> Result<*mut u8, Errno> {
    place::place(len, align, len >= ROOMY, calls, &|hint, len| match kind {
        Kind::Memory => sys::map_anon(hint, len),
        Kind::Reservation => sys::reserve(hint, len),
    })
}

/// A `PROT_NONE` reservation of `len` bytes (page multiple) placed in the zone with room to
/// grow in place, whatever its size. For the arena.
pub(crate) fn place_reservation(len: usize, calls: &mut u32) -> Result<*mut u8, Errno> {
    place::place(len, sys::page_size(), true, calls, &|hint, len| {
        sys::reserve(hint, len)
    })
}

/// Bytes of all live regions (not counting those kept by the recycler): part of the recycler's
/// limit.
pub(crate) static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);

/// How a grow was carried out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum How {
    /// The mapping was extended where it is: one `mremap`, no move, no copy.
    InPlace,
    /// The page tables were moved to a new address: no byte was copied.
    Moved,
    /// A new mapping was made and the bytes copied (no `mremap`, or it failed).
    Copied,
}

/// What a grow did and what it cost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Growth {
    pub(crate) how: How,
    /// System calls made, including failed attempts.
    pub(crate) syscalls: u32,
    /// Bytes that changed address: moved by remapping, or copied.
    pub(crate) bytes: usize,
}

/// One owned anonymous read-write mapping.
///
/// Invariants: `ptr` is the start of a mapping of exactly `len` bytes that this value alone
/// owns; `len` is a non-zero multiple of the page size; `ptr` is aligned to `align` (a power
/// of two) and, when `len >= 2 MiB`, placed 2 MiB-aligned whenever the address space allowed
/// it (1 GiB-aligned from 1 GiB on).
pub(crate) struct Region {
    ptr: NonNull<u8>,
    len: usize,
    align: usize,
    /// Which kernel mapping this is (a piece of): a number given when the mapping was made or
    /// moved, inherited by the pieces `split_off` makes; 0 when unknown. Adjacent regions of the
    /// same origin are pieces of one kernel mapping (one VMA), so joining them keeps a region
    /// that `mremap` can grow.
    pub(super) origin: usize,
    /// How many times the recycler has handed this mapping out again (saturating): the
    /// allocator turns a block that is reused often and written whole into huge pages.
    pub(super) reuses: u16,
    /// Its transparent huge page advice (as far as the recycler knows).
    pub(super) advice: Advice,
}

/// The transparent huge page advice of a region. Regions of different advice are different
/// kernel mappings (VMAs with other flags), so the recycler never joins them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Advice {
    /// None given: the system's default.
    #[default]
    Default,
    /// `MADV_HUGEPAGE`, asked for (`HugePages::Always`, a vector with huge pages): taken only
    /// by requests that ask for huge pages.
    Huge,
    /// `MADV_NOHUGEPAGE` (a region that was huge and grew, or whose advice is unknown).
    NoHuge,
    /// `MADV_HUGEPAGE`, given because the region proved dense (`HugePages::Dense`): taken by
    /// requests that ask for huge pages and by `Dense` ones.
    Proven,
}

impl Advice {
    /// Whether the kernel has the region advised `MADV_HUGEPAGE`.
    pub(crate) fn is_huge(self) -> bool {
        matches!(self, Advice::Huge | Advice::Proven)
    }

    /// Two bits, as the recycler's slots and the allocator's records keep it.
    pub(crate) fn bits(self) -> usize {
        match self {
            Advice::Default => 0,
            Advice::Huge => 1,
            Advice::NoHuge => 2,
            Advice::Proven => 3,
        }
    }

    /// The advice of [`bits`](Self::bits) (only the two low bits count).
    pub(crate) fn from_bits(b: usize) -> Advice {
        match b & 3 {
            1 => Advice::Huge,
            2 => Advice::NoHuge,
            3 => Advice::Proven,
            _ => Advice::Default,
        }
    }
}

/// The next [`Region::origin`].
static NEXT_ORIGIN: AtomicUsize = AtomicUsize::new(1);

fn new_origin() -> usize {
    NEXT_ORIGIN.fetch_add(1, Ordering::Relaxed)
}

// SAFETY: a Region is a unique owner of plain memory, like `Box<[u8]>`; nothing about the
// mapping is tied to the thread that created it.
unsafe impl Send for Region {}
// SAFETY: `&Region` only hands out the pointer and length; reads and writes through it are
// synchronized by whoever holds the region (`&mut` for writes).
unsafe impl Sync for Region {}

impl Region {
    /// Maps a new zeroed region of at least `len` bytes (rounded up to whole pages), aligned
    /// to `align` (a power of two) and placed so it can grow in place.
    ///
    /// Returns the region and the number of system calls made.
    pub(crate) fn new(len: usize, align: usize) -> Result<(Region, u32), Errno> {
        debug_assert!(align.is_power_of_two());
        let len = sys::round_to_page(len.max(1)).ok_or(Errno(libc::ENOMEM))?;
        if len > isize::MAX as usize {
            return Err(Errno(libc::ENOMEM));
        }
        let mut calls = 0;
        let p = place(Kind::Memory, len, align, &mut calls)?;
        debug_assert_eq!(p as usize % align, 0);
        LIVE_BYTES.fetch_add(len, Ordering::Relaxed);
        // SAFETY: mmap never returns null on success (we never ask for address 0).
        let ptr = unsafe { NonNull::new_unchecked(p) };
        Ok((
            Region {
                ptr,
                len,
                align,
                origin: new_origin(),
                reuses: 0,
                advice: Advice::Default,
            },
            calls,
        ))
    }

    /// Takes ownership of a mapping made elsewhere in the crate.
    ///
    /// # Safety
    /// `ptr..ptr + len` is a whole anonymous mapping (or several adjacent ones) owned by the
    /// caller and given up to the region; `len` is a non-zero page multiple; `ptr` is aligned
    /// to `align`.
    pub(crate) unsafe fn from_raw_parts(ptr: NonNull<u8>, len: usize, align: usize) -> Region {
        debug_assert!(len > 0 && len.is_multiple_of(sys::page_size()));
        debug_assert_eq!(ptr.as_ptr() as usize % align, 0);
        Region {
            ptr,
            len,
            align,
            origin: 0,
            reuses: 0,
            advice: Advice::Default,
        }
    }

    /// Which mapping this is a piece of (see the field); 0 when unknown.
    pub(crate) fn origin(&self) -> usize {
        self.origin
    }

    /// Says which mapping this region is a piece of: an `origin` that a region with this
    /// region's pages had before it was given up with [`into_raw_parts`](Self::into_raw_parts).
    /// A wrong origin costs speed only (the recycler may join it with a piece of another
    /// mapping, which `mremap` then cannot grow as one), never memory: a region owns its pages
    /// whatever its origin.
    pub(crate) fn with_origin(mut self, origin: usize) -> Region {
        self.origin = origin;
        self
    }

    /// Gives up ownership without unmapping: returns `(ptr, len)`.
    pub(crate) fn into_raw_parts(self) -> (NonNull<u8>, usize) {
        let parts = (self.ptr, self.len);
        core::mem::forget(self);
        parts
    }

    /// Start of the mapping.
    #[inline]
    pub(crate) fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Mapped bytes (a multiple of the page size).
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Grows the mapping to at least `new_len` bytes (rounded up to pages): in place if the
    /// addresses after it are free, else by moving its page tables to an aligned reservation
    /// (no copy), else by copying into a new mapping. The bytes up to the old length are kept;
    /// the new ones are zero.
    ///
    /// On error nothing changed: same address, same length, same contents.
    ///
    /// `&mut self` proves no reference into the mapping is alive, so it may move.
    pub(crate) fn grow(&mut self, new_len: usize) -> Result<Growth, Errno> {
        let new_len = sys::round_to_page(new_len).ok_or(Errno(libc::ENOMEM))?;
        if new_len > isize::MAX as usize {
            return Err(Errno(libc::ENOMEM));
        }
        if new_len <= self.len {
            return Ok(Growth {
                how: How::InPlace,
                syscalls: 0,
                bytes: 0,
            });
        }
        let mut calls = 0;
        let old_len = self.len;
        // A region of another size: its reuses (as it is) start again.
        self.reuses = 0;
        let err = match self.remap_grow(new_len, &mut calls) {
            Ok(how) => {
                return Ok(Growth {
                    how,
                    syscalls: calls,
                    bytes: if how == How::InPlace { 0 } else { old_len },
                });
            }
            Err(e) => e,
        };
        match self.copy_into_new(new_len, &mut calls) {
            Ok(copied) => Ok(Growth {
                how: How::Copied,
                syscalls: calls,
                bytes: copied,
            }),
            Err(e) => Err(if sys::HAS_MREMAP { err } else { e }),
        }
    }

    /// Grows the mapping to `new_len` bytes (a page multiple, more than its length) with
    /// `mremap` alone, as [`Region::grow`] does but without its last resort: it never copies
    /// and never maps anew, so the pages it has stay faulted in and only the new ones are fresh
    /// (zero). A moved region keeps its alignment (raise `align` first for a stricter request)
    /// and, from [`ROOMY`] on, gets room to grow. Returns whether it grew and the system calls
    /// made; when it did not, nothing changed.
    ///
    /// `&mut self` proves no reference into the mapping is alive, so it may move.
    pub(crate) fn grow_by_remap(&mut self, new_len: usize) -> (bool, u32) {
        debug_assert!(new_len > self.len && new_len.is_multiple_of(sys::page_size()));
        if new_len > isize::MAX as usize {
            return (false, 0);
        }
        let mut calls = 0;
        let grown = self.remap_grow(new_len, &mut calls).is_ok();
        if grown {
            self.reuses = 0;
        }
        (grown, calls)
    }

    /// Grows the mapping to `new_len` bytes (a page multiple, more than its length) with
    /// `mremap` alone: in place if the addresses after it are free, else moved into an aligned
    /// reservation with room to grow (from [`ROOMY`] on, or when over-aligned), else moved where
    /// the kernel likes (page-aligned regions only). Counts the system calls in `calls`. On
    /// error nothing changed; the error is the kernel's answer to the most lenient attempt.
    fn remap_grow(&mut self, new_len: usize, calls: &mut u32) -> Result<How, Errno> {
        if !sys::HAS_MREMAP {
            return Err(Errno(libc::ENOMEM));
        }
        *calls += 1;
        // SAFETY: we own the whole mapping; growing in place touches nothing else (the kernel
        // refuses when the addresses after it are taken).
        if unsafe { sys::remap_in_place(self.as_ptr(), self.len, new_len) }.is_ok() {
            LIVE_BYTES.fetch_add(new_len - self.len, Ordering::Relaxed);
            self.len = new_len;
            return Ok(How::InPlace);
        }
        let mut err = Errno(libc::ENOMEM);
        // A small region is moved wherever the kernel likes (no reservation, one call): room
        // to grow and alignment pay only from `ROOMY` on.
        if !sys::valgrind() && (new_len >= ROOMY || self.align > sys::page_size()) {
            match self.move_to_reservation(new_len, calls) {
                Ok(()) => return Ok(How::Moved),
                Err(e) => err = e,
            }
        }
        // The kernel picks the address: page-aligned only, so not for over-aligned regions.
        // An unaligned move still copies nothing, which beats copying.
        if self.align <= sys::page_size() {
            *calls += 1;
            // SAFETY: we own the mapping and `&mut self` means no reference into it; without
            // MREMAP_FIXED the kernel picks free addresses and replaces nothing.
            match unsafe { sys::remap_maymove(self.as_ptr(), self.len, new_len) } {
                Ok(p) => {
                    if p != self.as_ptr() {
                        self.origin = new_origin();
                    }
                    // SAFETY: mremap never returns null on success.
                    self.ptr = unsafe { NonNull::new_unchecked(p) };
                    LIVE_BYTES.fetch_add(new_len - self.len, Ordering::Relaxed);
                    self.len = new_len;
                    return Ok(How::Moved);
                }
                Err(e) => err = e,
            }
        }
        Err(err)
    }

    /// Grows the region to at least `new_len` bytes by taking over the kept pages right after
    /// it that are pieces of the same mapping (see [`recycle::claim_after`]): no system call,
    /// no page faulted. `huge`: the region's huge-page advice, which the pieces must share.
    /// Returns the system calls made (by the recycler) and how many leading bytes of the grown
    /// region may be non-zero on account of the pieces taken (the caller knows its own).
    pub(crate) fn grow_into_kept(&mut self, new_len: usize, huge: bool) -> Option<(u32, usize)> {
        let need = new_len.checked_sub(self.len)?;
        let end = self.as_ptr() as usize + self.len;
        let advice = if huge { Advice::Huge } else { self.advice };
        let (piece, dirty, calls) = recycle::claim_after(end, self.origin, advice, need)?;
        self.reuses = 0;
        let (p, l) = piece.into_raw_parts();
        debug_assert_eq!(p.as_ptr() as usize, end);
        // `LIVE_BYTES` counted the piece when it was claimed; it is now part of this region.
        let dirty = if dirty > 0 { self.len + dirty } else { 0 };
        self.len += l;
        Some((calls, dirty))
    }

    /// Moves the mapping into a fresh aligned reservation of `new_len` bytes with
    /// `MREMAP_FIXED`; on error the region is unchanged and the reservation released.
    fn move_to_reservation(&mut self, new_len: usize, calls: &mut u32) -> Result<(), Errno> {
        let dst = place(Kind::Reservation, new_len, self.align, calls)?;
        *calls += 1;
        // SAFETY: `dst..dst + new_len` is the reservation we just made, so MREMAP_FIXED
        // replaces only our own PROT_NONE pages; it cannot overlap the source, which was
        // mapped when the reservation was made. We own the source; `&mut self` means no
        // reference into it is alive.
        match unsafe { sys::remap_fixed(self.as_ptr(), self.len, new_len, dst) } {
            Ok(()) => {
                // SAFETY: mremap succeeded at `dst`, which is not null.
                self.ptr = unsafe { NonNull::new_unchecked(dst) };
                self.origin = new_origin();
                LIVE_BYTES.fetch_add(new_len - self.len, Ordering::Relaxed);
                self.len = new_len;
                Ok(())
            }
            Err(e) => {
                release_failed_reservation(dst, new_len, calls);
                Err(e)
            }
        }
    }

    /// Maps a new region and copies the old bytes into it (the last resort).
    fn copy_into_new(&mut self, new_len: usize, calls: &mut u32) -> Result<usize, Errno> {
        let dst = place(Kind::Memory, new_len, self.align, calls)?;
        LIVE_BYTES.fetch_add(new_len, Ordering::Relaxed);
        // SAFETY: `dst` is a fresh mapping of `new_len >= self.len` bytes, distinct from ours;
        // our mapping is readable for `self.len` bytes.
        unsafe { core::ptr::copy_nonoverlapping(self.as_ptr(), dst, self.len) };
        let old = core::mem::replace(
            self,
            // SAFETY: `dst` is a whole fresh mapping of `new_len` bytes, aligned by `place`.
            unsafe { Region::from_raw_parts(NonNull::new_unchecked(dst), new_len, self.align) },
        );
        let copied = old.len;
        self.origin = new_origin();
        *calls += 1;
        drop(old);
        Ok(copied)
    }

    /// Shrinks the mapping to `new_len` bytes rounded up to pages (at least one page), releasing
    /// the tail pages to the kernel. Returns the system calls made.
    ///
    /// `&mut self` proves no reference into the released tail is alive.
    pub(crate) fn shrink(&mut self, new_len: usize) -> Result<u32, Errno> {
        let new_len = sys::round_to_page(new_len.max(1)).ok_or(Errno(libc::EINVAL))?;
        if new_len >= self.len {
            return Ok(0);
        }
        // SAFETY: we own the mapping; `&mut self` means nothing refers to the tail.
        unsafe { sys::remap_in_place(self.as_ptr(), self.len, new_len)? };
        LIVE_BYTES.fetch_sub(self.len - new_len, Ordering::Relaxed);
        self.len = new_len;
        self.reuses = 0;
        Ok(1)
    }

    /// Splits off the pages from `at` (a page multiple) on as a region of their own, without a
    /// system call: `None` unless `0 < at < len`. Both parts are ranges of mappings we own.
    pub(crate) fn split_off(&mut self, at: usize) -> Option<Region> {
        if at == 0 || at >= self.len || !at.is_multiple_of(sys::page_size()) {
            return None;
        }
        // SAFETY: `at < len`, so the tail starts inside our mapping and is not null.
        let ptr = unsafe { NonNull::new_unchecked(self.as_ptr().add(at)) };
        let tail = Region {
            ptr,
            len: self.len - at,
            align: sys::page_size(),
            origin: self.origin,
            reuses: self.reuses,
            advice: self.advice,
        };
        self.len = at;
        Some(tail)
    }

    /// Asks for transparent huge pages if the region is 2 MiB-aligned and at least 2 MiB.
    /// Returns the system calls made.
    pub(crate) fn advise_huge(&mut self) -> u32 {
        if self.len >= PMD_SIZE && (self.as_ptr() as usize).is_multiple_of(PMD_SIZE) {
            if sys::advise_huge(self.as_ptr(), self.len).is_ok() && self.advice != Advice::Huge {
                // Asked for now, whatever it was (a region that proved dense and grew proved
                // nothing of its new part). Pieces of its old mapping keep the old advice:
                // they are other kernel mappings now, never to be joined with it.
                self.advice = Advice::Huge;
                self.origin = new_origin();
            }
            1
        } else {
            0
        }
    }

    /// For a region advised for huge pages that grew: advises it `MADV_NOHUGEPAGE` (the grown
    /// part proved nothing: its user may write it sparsely, and each byte would make 2 MiB
    /// resident) and gives it a new origin, so that it never joins the pieces of its old
    /// mapping that keep the other advice (they are other kernel mappings now). The pages
    /// already huge stay so. Not where the system gives every mapping huge pages (THP
    /// `always`): there the advice would only take from it what a `Never` block gets. Returns
    /// the system calls made.
    pub(crate) fn forget_huge(&mut self) -> u32 {
        if !self.advice.is_huge() || sys::thp_mode() == sys::Thp::Always {
            return 0;
        }
        self.advise_no_huge()
    }

    /// Advises the whole region `MADV_NOHUGEPAGE` and gives it a new origin (see
    /// [`forget_huge`](Self::forget_huge)): for a region whose advice is not known. Returns
    /// the system calls made.
    pub(crate) fn advise_no_huge(&mut self) -> u32 {
        self.origin = new_origin();
        if sys::thp_mode() == sys::Thp::Always {
            // Huge by default there: as a `Never` block would be.
            return 0;
        }
        self.advice = if sys::advise_no_huge(self.as_ptr(), self.len).is_ok() {
            Advice::NoHuge
        } else {
            // Perhaps still advised for huge pages: only requests that ask for them take it.
            Advice::Huge
        };
        1
    }

    /// The region's huge-page advice.
    pub(crate) fn advice(&self) -> Advice {
        self.advice
    }

    /// How many times in a row the recycler handed this mapping out again as it is (a piece
    /// cut from it, a join, a growth or a reallocation start the count again).
    pub(crate) fn reuses(&self) -> u16 {
        self.reuses
    }

    /// Starts the count of [`reuses`](Self::reuses) again.
    pub(crate) fn reset_reuses(&mut self) {
        self.reuses = 0;
    }

    /// Says what the allocator recorded of this region while it was a live block (see
    /// [`reuses`](Self::reuses), [`advice`](Self::advice)).
    pub(crate) fn with_history(mut self, reuses: u16, advice: Advice) -> Region {
        self.reuses = reuses;
        self.advice = advice;
        self
    }

    /// If every page of the region is resident (it was written whole) and it is 2 MiB-aligned
    /// and at least 2 MiB, advises it for huge pages and gives its pages back, so that its next
    /// writes fault in 2 MiB pages: it then reads as zero. Returns whether its pages were given
    /// back (it is advised even when that failed), and the system calls made.
    ///
    /// A region that was written whole gets no more resident memory from huge pages than it
    /// had; only a later user that writes it sparsely gets more (up to 2 MiB per 2 MiB it
    /// touches).
    ///
    /// # Safety
    /// Nothing refers to the region's contents any more (its block was freed).
    pub(crate) unsafe fn renew_huge_if_dense(&mut self) -> (bool, u32) {
        // Under THP `always` its pages are huge already (or could not be had).
        if self.advice.is_huge()
            || self.len < PMD_SIZE
            || !(self.as_ptr() as usize).is_multiple_of(PMD_SIZE)
            || sys::thp_mode() != sys::Thp::Madvise
        {
            return (false, 0);
        }
        // The last page first: a block written from the start but not to its end is found in
        // one call. A block found sparse is asked again only after as many reuses more.
        let page = sys::page_size();
        // SAFETY: the last page of the region, which is at least 2 MiB.
        let last = unsafe { self.as_ptr().add(self.len - page) };
        if !sys::resident(last, page) {
            self.reuses = 0;
            return (false, 1);
        }
        if !sys::resident(self.as_ptr(), self.len) {
            self.reuses = 0;
            return (false, 2);
        }
        if sys::advise_huge(self.as_ptr(), self.len).is_err() {
            return (false, 2);
        }
        self.advice = Advice::Proven;
        // Pieces of its old mapping keep the old advice: other kernel mappings now.
        self.origin = new_origin();
        // SAFETY: the region owns its mapping (type invariant) and, per the caller, nothing
        // refers to its contents; the mapping stays in place, so it stays ours.
        let dropped = unsafe { sys::drop_pages(self.as_ptr(), self.len) }.is_ok();
        (dropped, 3)
    }
}

/// Bytes of address space given up after a failed move because their ownership could not be
/// proven again (see [`release_failed_reservation`]): left alone for the life of the process.
static ABANDONED: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);

/// Address space abandoned so far by failed moves (reservations that may still be ours but
/// cannot be proven to be).
#[cfg(all(test, target_os = "linux", not(feature = "force-fallback")))]
pub(crate) fn abandoned_bytes() -> usize {
    ABANDONED.load(Ordering::Relaxed)
}

/// After a failed `MREMAP_FIXED` into our reservation at `dst`.
///
/// The kernel unmaps the destination before it moves anything, and most refusals (commit
/// accounting, `RLIMIT_AS` on older kernels, the map count) come after that: the range was
/// free for a moment, and another thread's `mmap` may have landed there. So "still mapped"
/// proves nothing. Ownership is proven again only by a `MAP_FIXED_NOREPLACE` of the whole
/// range that succeeds; then it is ours and is given back. Otherwise (`EEXIST`: someone
/// else's mapping, or our reservation if the kernel refused before unmapping it) the range is
/// left alone for good: at worst a `PROT_NONE`, `MAP_NORESERVE` reservation is leaked, never
/// someone else's memory unmapped.
fn release_failed_reservation(dst: *mut u8, len: usize, calls: &mut u32) {
    *calls += 1;
    match sys::reserve(dst as usize, len) {
        // SAFETY: MAP_FIXED_NOREPLACE just made `p..p + len` for us: no one else can have a
        // mapping there, and we never hand it out.
        Ok(p) => unsafe {
            *calls += 1;
            let _ = sys::unmap(p, len);
        },
        Err(_) => {
            ABANDONED.fetch_add(len, Ordering::Relaxed);
        }
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        LIVE_BYTES.fetch_sub(self.len, Ordering::Relaxed);
        // SAFETY: we own the whole mapping and, being dropped, nothing refers to it.
        unsafe {
            let _ = sys::unmap(self.as_ptr(), self.len);
        }
    }
}

impl core::fmt::Debug for Region {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Region")
            .field("ptr", &self.ptr)
            .field("len", &self.len)
            .field("align", &self.align)
            .finish()
    }
}

#[cfg(test)]
pub(crate) mod tests;
