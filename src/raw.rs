//! Typed capacity logic over a `Region` or the heap; never drops a `T`.
//!
//! The work is done by the untyped [`RawInner`], which compiles once for every element type
//! (like std's `RawVecInner`); [`RawVec<T>`] only supplies `T`'s layout and frees on drop.

use crate::error::{TryReserveError, TryReserveErrorKind};
use crate::region::{How, Region, recycle};
use crate::stats::GrowStats;
use crate::sys;
use core::alloc::Layout;
use core::marker::PhantomData;
use core::ptr::NonNull;
use std::alloc::{alloc, dealloc, handle_alloc_error, realloc};

/// Default heap threshold: capacities below 128 KiB live on the heap (glibc's default mmap
/// threshold), so that many small vectors do not each cost a kernel mapping.
///
/// ```
/// use remapvec::{DEFAULT_HEAP_THRESHOLD, RemapVec};
/// assert_eq!(remapvec::VecOptions::new().get_heap_threshold(), DEFAULT_HEAP_THRESHOLD);
/// assert!(!RemapVec::<u8>::with_capacity(DEFAULT_HEAP_THRESHOLD - 1).is_mapped());
/// assert!(RemapVec::<u8>::with_capacity(DEFAULT_HEAP_THRESHOLD).is_mapped());
/// ```
pub const DEFAULT_HEAP_THRESHOLD: usize = 128 << 10;

/// How a [`RemapVec`](crate::RemapVec) places its memory.
///
/// ```
/// use remapvec::{RemapVec, VecOptions};
/// let opts = VecOptions::default().heap_threshold(1 << 20).huge_pages(true);
/// let mut v: RemapVec<u32> = RemapVec::with_options(opts);
/// v.push(7);
/// assert!(!v.is_mapped()); // 4 bytes: still on the heap
/// v.reserve(1 << 20); // 4 MiB: now a mapped region, advised for huge pages
/// assert!(v.is_mapped());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct VecOptions {
    heap_threshold: usize,
    huge_pages: bool,
    reuse_freed: bool,
}

impl VecOptions {
    /// The defaults: heap threshold 128 KiB, no huge pages, dropped mappings kept for reuse.
    /// The same as `Default::default()`.
    pub const fn new() -> Self {
        VecOptions {
            heap_threshold: DEFAULT_HEAP_THRESHOLD,
            huge_pages: false,
            reuse_freed: true,
        }
    }

    /// Whether a dropped vector's mapping (128 KiB to 4 GiB) goes to the process-wide recycler
    /// for the next buffer of about its size, and whether this vector takes its mapping from
    /// there. Default `true`.
    ///
    /// Unmapping gives the pages back to the kernel, and the next large vector faults every
    /// page in again, which is most of the cost of filling it. The recycler (shared with
    /// [`RemapAlloc`](crate::RemapAlloc)) keeps freed mappings as they are, bounded (see
    /// [`CacheConfig`](crate::CacheConfig)) and unmapped after a second unused; a vector that
    /// takes one gets at most twice the capacity it asked for. `shrink_to_fit` and friends
    /// always give memory back. Turn this off where RSS matters more than speed, or call
    /// [`release_cached`](crate::release_cached).
    ///
    /// ```
    /// use remapvec::{RemapVec, VecOptions};
    /// let mut a: RemapVec<u8> = RemapVec::with_capacity(8 << 20);
    /// a.push(1);
    /// drop(a); // its mapping is kept
    /// let b: RemapVec<u8> = RemapVec::with_capacity(6 << 20);
    /// # #[cfg(all(target_os = "linux", not(feature = "force-fallback")))]
    /// # if b.stats().reused == 1 {
    /// assert!(b.capacity() >= 8 << 20); // took the kept mapping (unless another thread did)
    /// # }
    /// assert!(b.capacity() <= 12 << 20); // never more than twice the request
    /// let c: RemapVec<u8> = RemapVec::with_capacity_and_options(1 << 20, VecOptions::new().reuse_freed(false));
    /// assert_eq!(c.stats().reused, 0);
    /// ```
    pub const fn reuse_freed(mut self, on: bool) -> Self {
        self.reuse_freed = on;
        self
    }

    /// Whether dropped mappings are kept for reuse (see [`VecOptions::reuse_freed`]).
    ///
    /// ```
    /// assert!(remapvec::VecOptions::new().is_reuse_freed());
    /// ```
    pub const fn is_reuse_freed(&self) -> bool {
        self.reuse_freed
    }

    /// Capacities whose size in bytes is below `bytes` stay on the global heap; from `bytes`
    /// on the vector lives in its own mapping. `0` maps every non-empty vector.
    ///
    /// ```
    /// # use remapvec::{RemapVec, VecOptions};
    /// let v: RemapVec<u8> = RemapVec::with_capacity_and_options(1, VecOptions::new().heap_threshold(0));
    /// assert!(v.is_mapped());
    /// assert_eq!(v.capacity(), remapvec::sys::page_size()); // the whole page is capacity
    /// ```
    pub const fn heap_threshold(mut self, bytes: usize) -> Self {
        self.heap_threshold = bytes;
        self
    }

    /// Advise transparent huge pages (`madvise(MADV_HUGEPAGE)`) on mapped regions of 2 MiB or
    /// more (they are placed 2 MiB-aligned). Fewer page faults and TLB misses for large,
    /// densely used buffers; memory is then committed in 2 MiB steps.
    ///
    /// ```
    /// # use remapvec::VecOptions;
    /// assert!(VecOptions::new().huge_pages(true).is_huge_pages());
    /// ```
    pub const fn huge_pages(mut self, on: bool) -> Self {
        self.huge_pages = on;
        self
    }

    /// The heap threshold in bytes.
    ///
    /// ```
    /// assert_eq!(remapvec::VecOptions::new().get_heap_threshold(), 128 * 1024);
    /// ```
    pub const fn get_heap_threshold(&self) -> usize {
        self.heap_threshold
    }

    /// Whether huge pages are advised.
    ///
    /// ```
    /// assert!(!remapvec::VecOptions::new().is_huge_pages());
    /// ```
    pub const fn is_huge_pages(&self) -> bool {
        self.huge_pages
    }
}

impl Default for VecOptions {
    fn default() -> Self {
        Self::new()
    }
}

/// Bulk fills populate fresh pages in one call from this many bytes on. `extend_from_slice` of
/// 1 GiB in 16 KiB pieces: 1.24x faster than `Vec` with it, in 8 KiB pieces about even
/// (`cargo run --release --example fill -- --only extend_pieces --piece 8,16,64`).
const POPULATE_MIN: usize = 16 << 10;

/// Bulk fills populate at most this many bytes ahead of what they have written, and the next
/// piece when writing reaches it: an iterator whose size hint lies, or a `Clone` or closure that
/// panics, leaves at most this much populated and unwritten (RSS stays within a piece of what
/// `Vec` would use). One call for the whole range was not measurably faster (see DESIGN.md).
pub(crate) const FILL_CHUNK: usize = 4 << 20;

/// A zeroed vector takes a kept mapping only if at most this many of its bytes may be dirty
/// (clearing 256 KiB takes ≈25 µs; a fresh mapping costs nothing until written).
const ZEROED_MAX_DIRTY: usize = 256 << 10;

/// Turns a growth error into the panic or abort `Vec` would give.
#[cold]
#[inline(never)]
#[track_caller]
pub(crate) fn handle_error(e: TryReserveError) -> ! {
    match e.kind() {
        TryReserveErrorKind::CapacityOverflow => panic!("capacity overflow"),
        TryReserveErrorKind::AllocError { layout, .. } => handle_alloc_error(layout),
    }
}

/// [`VecOptions`] and the heap-grow counter of a vector without a [`Header`], in one word:
/// bit 0 set (it tells this word from a header's address, which is even), bit 1 huge pages,
/// bit 2 reuse, bits 3..16 heap grows (the count moves into a header before it would
/// overflow), bits 16..64 the heap threshold in bytes (`THRESHOLD_MAX`, 2^48 - 1, and above
/// mean "never map").
#[derive(Clone, Copy)]
struct Packed(u64);

const TAG_BIT: u64 = 1;
const HUGE_BIT: u64 = 1 << 1;
const REUSE_BIT: u64 = 1 << 2;
const GROWS_SHIFT: u32 = 3;
const GROWS_MAX: u64 = (1 << 13) - 1;
const THRESHOLD_SHIFT: u32 = 16;
/// Heap thresholds of this many bytes and more are stored as "never map" (`usize::MAX`).
pub(crate) const THRESHOLD_MAX: u64 = (1 << 48) - 1;

impl Packed {
    const fn new(opts: VecOptions) -> Packed {
        let t = opts.heap_threshold as u64;
        let t = if t > THRESHOLD_MAX { THRESHOLD_MAX } else { t };
        Packed(
            (t << THRESHOLD_SHIFT)
                | TAG_BIT
                | if opts.huge_pages { HUGE_BIT } else { 0 }
                | if opts.reuse_freed { REUSE_BIT } else { 0 },
        )
    }

    const fn opts(self) -> VecOptions {
        let t = self.0 >> THRESHOLD_SHIFT;
        VecOptions {
            heap_threshold: if t >= THRESHOLD_MAX || t > usize::MAX as u64 {
                usize::MAX
            } else {
                t as usize
            },
            huge_pages: self.0 & HUGE_BIT != 0,
            reuse_freed: self.0 & REUSE_BIT != 0,
        }
    }

    fn huge(self) -> bool {
        self.0 & HUGE_BIT != 0
    }

    fn reuse(self) -> bool {
        self.0 & REUSE_BIT != 0
    }

    fn threshold(self) -> usize {
        self.opts().heap_threshold
    }

    fn heap_grows(self) -> u64 {
        (self.0 >> GROWS_SHIFT) & GROWS_MAX
    }

    fn set_heap_grows(&mut self, n: u64) {
        self.0 = (self.0 & !(GROWS_MAX << GROWS_SHIFT)) | (n.min(GROWS_MAX) << GROWS_SHIFT);
    }
}

/// What a vector keeps out of line once it is mapped (or has counted more heap grows than the
/// packed word holds): its region and its statistics. One heap block per mapped vector, next to
/// a mapping of at least 128 KiB by default.
struct Header {
    /// The options (the word `RawInner::ext` held before the header existed).
    packed: Packed,
    region: Option<Region>,
    stats: GrowStats,
    /// How many bytes from the start of the region may be non-zero apart from the capacity
    /// the vector has exposed: the dirty prefix of a kept mapping it took, or the bytes copied
    /// in from the heap. Beyond `max(dirty, cap * size)` the mapping is known to be zero.
    dirty: usize,
    /// Pages from here on have, as far as the crate knows, never been touched: bulk fills
    /// populate them in one call (see `prepare_fill`). A hint only: pages the user touched
    /// through spare capacity are populated again, which costs a page-table walk, no data.
    /// Raised by fills (what they populate), growth (what pushes wrote) and a shrinking
    /// length (what the elements occupied); lowered to the mapping's length when it shrinks.
    /// Never used to decide what is zero (that is `dirty`): a wrong value costs speed only.
    fresh_from: usize,
    /// Elements from this byte offset up to the length may have been exposed as zeros without
    /// being written (`zeroed`, `resize_zeroed` into fresh pages), so a shorter length does not
    /// prove them written. `usize::MAX` when there are none.
    unwritten_from: usize,
}

/// The untyped buffer: a heap block, a mapped region, or nothing.
///
/// Three words (`Option<RawInner>` too, by the `NonNull` niche): the pointer, the capacity, and
/// one word that holds either the packed options ([`Packed`], odd) or the address of the
/// out-of-line [`Header`] (even), which then holds the options.
pub(crate) struct RawInner {
    /// Start of the buffer. Dangling (aligned to the element) when nothing is allocated;
    /// equal to the region's start when mapped.
    ptr: NonNull<u8>,
    /// Capacity in elements. For a heap block, `cap * elem.size()` is exactly the size it was
    /// allocated with; for a region, `cap == region.len() / elem.size()` (the whole mapping is
    /// capacity). `usize::MAX` for zero-sized elements.
    cap: usize,
    /// [`Packed`] options, or the exposed address of the header: owned, allocated with
    /// `Layout::new::<Header>()` by the global allocator.
    ext: u64,
}

const fn dangling(align: usize) -> NonNull<u8> {
    // An address equal to the alignment is non-null and aligned (what `NonNull::dangling` does).
    NonNull::without_provenance(match core::num::NonZeroUsize::new(align) {
        Some(a) => a,
        None => core::num::NonZeroUsize::MIN,
    })
}

impl RawInner {
    const fn new(elem: Layout, opts: VecOptions) -> Self {
        RawInner {
            ptr: dangling(elem.align()),
            cap: if elem.size() == 0 { usize::MAX } else { 0 },
            ext: Packed::new(opts).0,
        }
    }

    /// The header's address, if there is one.
    fn header_ptr(&self) -> Option<NonNull<Header>> {
        if self.ext & TAG_BIT != 0 {
            return None;
        }
        // The address was exposed when the header was allocated (see `header`).
        NonNull::new(core::ptr::with_exposed_provenance_mut(self.ext as usize))
    }

    fn packed(&self) -> Packed {
        match self.hdr() {
            Some(h) => h.packed,
            None => Packed(self.ext),
        }
    }

    fn hdr(&self) -> Option<&Header> {
        // SAFETY: the header is owned by `self` and only reached through it.
        self.header_ptr().map(|h| unsafe { &*h.as_ptr() })
    }

    fn hdr_mut(&mut self) -> Option<&mut Header> {
        // SAFETY: the header is owned by `self`; `&mut self` makes this the only reference.
        self.header_ptr().map(|h| unsafe { &mut *h.as_ptr() })
    }

    fn region(&self) -> Option<&Region> {
        self.hdr().and_then(|h| h.region.as_ref())
    }

    fn is_mapped(&self) -> bool {
        self.region().is_some()
    }

    fn stats(&self) -> GrowStats {
        match self.hdr() {
            Some(h) => h.stats,
            None => GrowStats {
                heap_grows: self.packed().heap_grows(),
                ..GrowStats::ZERO
            },
        }
    }

    /// The header, allocated on first use. `None` only if the allocator failed.
    fn header(&mut self) -> Option<&mut Header> {
        if self.header_ptr().is_none() {
            let layout = Layout::new::<Header>();
            // SAFETY: `Header` is not zero-sized.
            let p = NonNull::new(unsafe { alloc(layout) }.cast::<Header>())?;
            let stats = GrowStats {
                heap_grows: self.packed().heap_grows(),
                ..GrowStats::ZERO
            };
            // SAFETY: `p` is a fresh allocation with `Header`'s layout.
            unsafe {
                p.as_ptr().write(Header {
                    packed: self.packed(),
                    region: None,
                    stats,
                    dirty: 0,
                    fresh_from: 0,
                    unwritten_from: usize::MAX,
                })
            };
            debug_assert!(align_of::<Header>() >= 2);
            // Even, since `Header` is aligned to at least 2: told apart from `Packed`.
            self.ext = p.as_ptr().expose_provenance() as u64;
        }
        self.hdr_mut()
    }

    /// Counts a heap grow: in the packed word while it fits, else in the header (best effort:
    /// the count stays saturated if the header cannot be allocated).
    fn count_heap_grow(&mut self) {
        let n = self.packed().heap_grows() + 1;
        if self.header_ptr().is_none() && n < GROWS_MAX {
            let mut p = Packed(self.ext);
            p.set_heap_grows(n);
            self.ext = p.0;
        } else if let Some(h) = self.header() {
            h.stats.heap_grows += 1;
        }
    }

    /// The header, detached from the borrow of `self` so that `self.ptr` and `self.cap` can be
    /// updated while it is in use.
    ///
    /// # Safety
    /// No other reference to the header may be alive while the result is used, and the result
    /// must not outlive the header (freed only by `free_header`).
    unsafe fn header_detached<'a>(&mut self) -> Option<&'a mut Header> {
        // SAFETY: the header is owned by `self`; the caller keeps the result unique and within
        // the header's life.
        self.header_ptr().map(|h| unsafe { &mut *h.as_ptr() })
    }

    #[inline]
    fn needs_to_grow(&self, len: usize, additional: usize) -> bool {
        additional > self.cap.wrapping_sub(len)
    }

    #[cold]
    #[inline(never)]
    fn grow_amortized(
        &mut self,
        len: usize,
        additional: usize,
        elem: Layout,
    ) -> Result<(), TryReserveError> {
        if elem.size() == 0 {
            return Err(TryReserveError::capacity_overflow());
        }
        let required = len
            .checked_add(additional)
            .ok_or(TryReserveError::capacity_overflow())?;
        let min_cap = match elem.size() {
            1 => 8,
            s if s <= 1024 => 4,
            _ => 1,
        };
        let new_cap = required.max(self.cap.saturating_mul(2)).max(min_cap);
        // Doubling may overflow isize::MAX bytes where `required` alone would not.
        match self.finish_grow(len, new_cap, elem, false) {
            Err(e) if e.kind() == TryReserveErrorKind::CapacityOverflow && new_cap > required => {
                self.finish_grow(len, required, elem, false)
            }
            r => r,
        }
    }

    #[cold]
    #[inline(never)]
    fn grow_exact(
        &mut self,
        len: usize,
        additional: usize,
        elem: Layout,
    ) -> Result<(), TryReserveError> {
        if elem.size() == 0 {
            return Err(TryReserveError::capacity_overflow());
        }
        let required = len
            .checked_add(additional)
            .ok_or(TryReserveError::capacity_overflow())?;
        self.finish_grow(len, required, elem, true)
    }

    /// Makes the capacity at least `new_cap`, keeping the first `len` elements. `exact`: the
    /// caller asked for this capacity (`reserve_exact`, `with_capacity`), so a kept mapping
    /// taken for it is trimmed to about that size.
    fn finish_grow(
        &mut self,
        len: usize,
        new_cap: usize,
        elem: Layout,
        exact: bool,
    ) -> Result<(), TryReserveError> {
        self.finish_grow_with(len, new_cap, elem, exact, None)
    }

    /// [`finish_grow`](Self::finish_grow), taking a kept mapping only if at most `max_dirty` of
    /// its bytes may be dirty (for callers that must zero what is dirty).
    fn finish_grow_with(
        &mut self,
        len: usize,
        new_cap: usize,
        elem: Layout,
        exact: bool,
        max_dirty: Option<usize>,
    ) -> Result<(), TryReserveError> {
        let bytes = new_cap
            .checked_mul(elem.size())
            .ok_or(TryReserveError::capacity_overflow())?;
        let layout = Layout::from_size_align(bytes, elem.align())
            .map_err(|_| TryReserveError::capacity_overflow())?;
        let packed = self.packed();
        // SAFETY: `h` is the only reference to the header while this branch runs.
        if let Some(h) = unsafe { self.header_detached() }
            && let Some(region) = &mut h.region
        {
            if packed.reuse()
                && let Some((calls, dirty)) = region.grow_into_kept(bytes, packed.huge())
            {
                // The kept pages right after the mapping, from the same mapping: no system
                // call, and already faulted in.
                h.stats.in_place += 1;
                h.stats.reused += 1;
                h.stats.syscalls += u64::from(calls);
                h.dirty = h.dirty.max(dirty);
                h.fresh_from = h.fresh_from.max(dirty).max(len * elem.size());
                self.cap = region.len() / elem.size();
                if packed.huge() {
                    h.stats.syscalls += u64::from(region.advise_huge());
                }
                return Ok(());
            }
            let g = region
                .grow(bytes)
                .map_err(|e| TryReserveError::alloc(layout, Some(e.0)))?;
            h.stats.syscalls += u64::from(g.syscalls);
            // Pushes wrote up to `len` without telling anyone.
            h.fresh_from = h.fresh_from.max(len * elem.size());
            match g.how {
                How::InPlace => h.stats.in_place += 1,
                How::Moved => {
                    h.stats.moved += 1;
                    h.stats.bytes_remapped += g.bytes as u64;
                }
                How::Copied => {
                    h.stats.copied += 1;
                    h.stats.bytes_copied += g.bytes as u64;
                }
            }
            self.ptr = NonNull::new(region.as_ptr()).unwrap_or(self.ptr);
            self.cap = region.len() / elem.size();
            if packed.huge() {
                h.stats.syscalls += u64::from(region.advise_huge());
            }
            return Ok(());
        }
        if bytes < self.packed().threshold() {
            return self.grow_heap(layout, elem);
        }
        self.move_to_region(len, layout, elem, exact, max_dirty)
    }

    /// Makes room for `additional` elements after `len` (amortized unless `exact`) and makes
    /// their bytes zero, writing only what may be dirty: a fresh mapping, the grown tail of
    /// one, and a kept mapping beyond its dirty extent are zero already.
    fn reserve_zeroed(
        &mut self,
        len: usize,
        additional: usize,
        elem: Layout,
        exact: bool,
    ) -> Result<(), TryReserveError> {
        let new_len = len
            .checked_add(additional)
            .ok_or(TryReserveError::capacity_overflow())?;
        let size = elem.size();
        if size == 0 {
            return Ok(());
        }
        let was_mapped = self.is_mapped();
        let old_cap_bytes = self.cap * size;
        if self.needs_to_grow(len, additional) {
            let new_cap = if exact {
                new_len
            } else {
                new_len.max(self.cap.saturating_mul(2))
            };
            // Clearing a kept mapping's dirty bytes costs about what faulting fresh pages in
            // would cost later; a zeroed vector should cost nothing until written.
            let max_dirty = Some(ZEROED_MAX_DIRTY);
            match self.finish_grow_with(len, new_cap, elem, exact, max_dirty) {
                Err(e)
                    if e.kind() == TryReserveErrorKind::CapacityOverflow && new_cap > new_len =>
                {
                    self.finish_grow_with(len, new_len, elem, exact, max_dirty)?
                }
                r => r?,
            }
        }
        // Bytes from `zero_from` on are known to be zero.
        let zero_from = match self.hdr() {
            Some(Header {
                region: Some(_),
                dirty,
                ..
            }) => {
                if was_mapped {
                    // Everything below the old capacity may have been written.
                    (*dirty).max(old_cap_bytes)
                } else {
                    // Just moved in from the heap: the copy and the kept mapping's dirt.
                    *dirty
                }
            }
            _ => usize::MAX, // a heap block
        };
        let (start, end) = (len * size, new_len * size);
        let stop = end.min(zero_from);
        if start < stop {
            // SAFETY: `start..stop` lies within the capacity (`new_len <= cap`), which is
            // allocated and writable; no element lives there (they are at `..len`).
            unsafe { self.ptr.as_ptr().add(start).write_bytes(0, stop - start) };
        }
        if stop < end
            // SAFETY: `h` is the only reference to the header while this runs.
            && let Some(h) = unsafe { self.header_detached() }
        {
            // The caller exposes `stop..end` as zeros it never wrote.
            h.unwritten_from = h.unwritten_from.min(start.max(stop));
        }
        Ok(())
    }

    fn heap_layout(&self, elem: Layout) -> Option<Layout> {
        if self.is_mapped() || self.cap == 0 || elem.size() == 0 {
            return None;
        }
        // SAFETY: this is the layout the block was allocated with (see the `cap` invariant),
        // so it was valid then and is now.
        Some(unsafe { Layout::from_size_align_unchecked(self.cap * elem.size(), elem.align()) })
    }

    fn grow_heap(&mut self, layout: Layout, elem: Layout) -> Result<(), TryReserveError> {
        let p = match self.heap_layout(elem) {
            // SAFETY: `layout` has non-zero size (new_cap > cap >= 0 and the element is sized).
            None => unsafe { alloc(layout) },
            // SAFETY: `ptr` was allocated by the global allocator with `old`; the new size is
            // non-zero and fits isize (checked by `Layout::from_size_align`).
            Some(old) => unsafe { realloc(self.ptr.as_ptr(), old, layout.size()) },
        };
        let p = NonNull::new(p).ok_or(TryReserveError::alloc(layout, None))?;
        self.count_heap_grow();
        self.ptr = p;
        self.cap = layout.size() / elem.size();
        debug_assert_eq!(self.cap * elem.size(), layout.size());
        Ok(())
    }

    /// Moves the buffer from the heap (or nothing) into a new region: the one copy.
    /// `max_dirty`: take a kept mapping only if at most this many of its bytes may be dirty.
    fn move_to_region(
        &mut self,
        len: usize,
        layout: Layout,
        elem: Layout,
        exact: bool,
        max_dirty: Option<usize>,
    ) -> Result<(), TryReserveError> {
        let (packed, heap) = (self.packed(), self.heap_layout(elem));
        let old_ptr = self.ptr;
        if self.header().is_none() {
            return Err(TryReserveError::alloc(Layout::new::<Header>(), None));
        }
        // SAFETY: just allocated or already there; `h` is the only reference to it below.
        let Some(h) = (unsafe { self.header_detached() }) else {
            return Err(TryReserveError::alloc(Layout::new::<Header>(), None));
        };
        let kept = if packed.reuse() {
            recycle::take_for(
                layout.size(),
                elem.align(),
                Some(packed.huge()),
                if exact {
                    recycle::Fit::Near
                } else {
                    recycle::Fit::Grow
                },
                max_dirty.unwrap_or(usize::MAX),
            )
            .map(|(mut region, dirty, calls)| {
                h.stats.syscalls += u64::from(calls);
                // Reuses count allocator blocks handed out as they are: a vector's use says
                // nothing of how the next block will be written (review: a mapping that a
                // `Vec` and a `RemapVec` took in turns was made huge, and the vector, which
                // takes no huge region, faulted in a fresh one).
                region.reset_reuses();
                (region, dirty)
            })
        } else {
            None
        };
        let (mut region, dirty) = match kept {
            Some(r) => {
                h.stats.reused += 1;
                r
            }
            None => {
                let (region, calls) = Region::new(layout.size(), elem.align())
                    .map_err(|e| TryReserveError::alloc(layout, Some(e.0)))?;
                h.stats.syscalls += u64::from(calls);
                (region, 0)
            }
        };
        let copy = len * elem.size();
        if copy > 0 {
            // SAFETY: the first `len` elements of the old buffer are initialized and readable;
            // the region is a mapping of at least `layout.size() >= copy` bytes, not the old
            // buffer.
            unsafe { core::ptr::copy_nonoverlapping(old_ptr.as_ptr(), region.as_ptr(), copy) };
            h.stats.copied += 1;
            h.stats.bytes_copied += copy as u64;
        }
        if let Some(old) = heap {
            // SAFETY: allocated by the global allocator with `old`; its contents were copied.
            unsafe { dealloc(old_ptr.as_ptr(), old) };
        }
        h.dirty = dirty.max(copy);
        h.fresh_from = h.dirty;
        let cap = region.len() / elem.size();
        let start = region.as_ptr();
        if packed.huge() {
            h.stats.syscalls += u64::from(region.advise_huge());
        }
        h.region = Some(region);
        self.ptr = NonNull::new(start).unwrap_or(self.ptr);
        self.cap = cap;
        Ok(())
    }

    /// Bytes `start..end` of the buffer are about to be written: if they lie in pages of the
    /// mapping never touched so far and are many enough to pay, fault them in with one
    /// `MADV_POPULATE_WRITE` instead of one trap per page. Nothing outside the range the caller
    /// writes is populated, so the resident size stays what it would be.
    fn prepare_fill(&mut self, start: usize, end: usize) {
        // SAFETY: `h` is the only reference to the header while this runs.
        let Some(h) = (unsafe { self.header_detached() }) else {
            return;
        };
        let Some(region) = &h.region else {
            return;
        };
        let page = sys::page_size();
        let from = start.max(h.fresh_from) & !(page - 1);
        let to = end
            .min(region.len())
            .next_multiple_of(page)
            .min(region.len());
        h.fresh_from = h.fresh_from.max(end);
        if to <= from || to - from < POPULATE_MIN {
            return;
        }
        // SAFETY: `from..to` lies within our mapping (`to <= region.len()`); populating for
        // writing changes no byte.
        let r = unsafe { sys::populate_write(region.as_ptr().add(from), to - from) };
        if r.is_ok() || sys::HAS_MREMAP {
            h.stats.syscalls += 1; // the portable backend makes no call
        }
    }

    /// The length dropped from `old` to `new` bytes: the elements that were there were
    /// written (unless exposed as zeros, see `unwritten_from`), so their pages are resident
    /// and a later fill over them needs no populate call.
    #[cold]
    #[inline(never)]
    fn len_dropped(&mut self, old: usize, new: usize) {
        // SAFETY: `h` is the only reference to the header while this runs.
        let Some(h) = (unsafe { self.header_detached() }) else {
            return;
        };
        if h.region.is_none() {
            return;
        }
        h.fresh_from = h.fresh_from.max(old.min(h.unwritten_from));
        if new <= h.unwritten_from {
            // No element exposed as zeros without being written remains.
            h.unwritten_from = usize::MAX;
        }
    }

    /// Lowers the capacity to `max(len, min_cap)` if it is above. Best effort: if the smaller
    /// buffer cannot be had, the current one is kept (nothing is lost).
    fn shrink_to(&mut self, len: usize, min_cap: usize, elem: Layout) {
        let target = len.max(min_cap);
        if elem.size() == 0 {
            return;
        }
        if target >= self.cap {
            return;
        }
        let bytes = target * elem.size();
        if target == 0 {
            self.free(elem, false);
            return;
        }
        // SAFETY: `bytes <= cap * size`, which was a valid layout size.
        let layout = unsafe { Layout::from_size_align_unchecked(bytes, elem.align()) };
        let threshold = self.packed().threshold();
        let ptr = self.ptr;
        // SAFETY: `h` is the only reference to the header while this branch runs.
        if let Some(h) = unsafe { self.header_detached() }
            && let Some(region) = &mut h.region
        {
            if bytes < threshold {
                // Back to the heap, so a shrunk small vector does not keep a mapping.
                // SAFETY: non-zero size.
                let Some(p) = NonNull::new(unsafe { alloc(layout) }) else {
                    return;
                };
                // SAFETY: `len <= target` initialized elements are readable in the region;
                // the new block holds `bytes >= len * size` bytes.
                unsafe {
                    core::ptr::copy_nonoverlapping(ptr.as_ptr(), p.as_ptr(), len * elem.size())
                };
                h.region = None; // one munmap
                h.stats.syscalls += 1;
                h.dirty = 0;
                h.fresh_from = 0;
                h.unwritten_from = usize::MAX;
                self.ptr = p;
                self.cap = target;
                return;
            }
            if let Ok(calls) = region.shrink(bytes) {
                h.stats.syscalls += u64::from(calls);
                h.dirty = h.dirty.min(region.len());
                // Pages given back and grown into again are fresh.
                h.fresh_from = h.fresh_from.min(region.len());
                self.cap = region.len() / elem.size();
            }
            return;
        }
        if let Some(old) = self.heap_layout(elem) {
            // SAFETY: allocated with `old`; the new size is non-zero and smaller.
            if let Some(p) = NonNull::new(unsafe { realloc(self.ptr.as_ptr(), old, bytes) }) {
                self.ptr = p;
                self.cap = target;
            }
        }
    }

    /// Releases the buffer; the capacity becomes 0. With `keep` (the vector is dropped) a
    /// mapping may go to the recycler instead of being unmapped. The header stays (with the
    /// statistics) unless the vector is dropped.
    fn free(&mut self, elem: Layout, keep: bool) {
        if let Some(old) = self.heap_layout(elem) {
            // SAFETY: allocated by the global allocator with `old`.
            unsafe { dealloc(self.ptr.as_ptr(), old) };
        }
        let (packed, cap) = (self.packed(), self.cap);
        // SAFETY: `h` is the only reference to the header while this branch runs.
        if let Some(h) = unsafe { self.header_detached() }
            && let Some(region) = h.region.take()
        {
            if keep && packed.reuse() {
                // What the vector may have written: everything it exposed, and what was dirty
                // when it took the mapping.
                let dirty = h.dirty.max(cap.saturating_mul(elem.size()));
                h.stats.syscalls += u64::from(recycle::put(region, dirty));
            } else {
                drop(region);
                h.stats.syscalls += 1; // the munmap
            }
            h.dirty = 0;
            h.fresh_from = 0;
            h.unwritten_from = usize::MAX;
        }
        self.ptr = dangling(elem.align());
        self.cap = if elem.size() == 0 { usize::MAX } else { 0 };
    }

    /// Frees the header (the buffer must already be freed or given away).
    fn free_header(&mut self) {
        if let Some(h) = self.header_ptr() {
            self.ext = self.packed().0;
            // SAFETY: allocated in `header` with this layout and written there; owned by us,
            // and no longer reachable from `self`.
            unsafe {
                core::ptr::drop_in_place(h.as_ptr());
                dealloc(h.as_ptr().cast(), Layout::new::<Header>());
            }
        }
    }
}

/// A typed buffer: capacity, the heap/mapped choice and statistics, never the elements.
pub(crate) struct RawVec<T> {
    inner: RawInner,
    _marker: PhantomData<T>,
}

impl<T> RawVec<T> {
    const ELEM: Layout = Layout::new::<T>();

    pub(crate) const fn new(opts: VecOptions) -> Self {
        RawVec {
            inner: RawInner::new(Self::ELEM, opts),
            _marker: PhantomData,
        }
    }

    pub(crate) fn try_with_capacity(cap: usize, opts: VecOptions) -> Result<Self, TryReserveError> {
        let mut raw = Self::new(opts);
        if cap > 0 && Self::ELEM.size() > 0 {
            raw.inner.finish_grow(0, cap, Self::ELEM, true)?;
        }
        Ok(raw)
    }

    /// Adopts a buffer of the global allocator.
    ///
    /// # Safety
    /// `ptr` was allocated by the global allocator with the layout of `[T; cap]` (or is
    /// dangling with `cap == 0`), and is given up to the new value.
    pub(crate) unsafe fn from_heap(ptr: NonNull<T>, cap: usize, opts: VecOptions) -> Self {
        let mut raw = Self::new(opts);
        if Self::ELEM.size() > 0 && cap > 0 {
            raw.inner.ptr = ptr.cast();
            raw.inner.cap = cap;
        }
        raw
    }

    /// The heap block, if the buffer is one: `(ptr, cap)`, ownership passes to the caller.
    pub(crate) fn into_heap(self) -> Result<(NonNull<T>, usize), Self> {
        if self.inner.is_mapped() {
            return Err(self);
        }
        let mut me = core::mem::ManuallyDrop::new(self);
        me.inner.free_header();
        // For zero-sized `T` the capacity is `usize::MAX`, which is also what `Vec` reports.
        Ok((me.inner.ptr.cast(), me.inner.cap))
    }

    /// Gives the buffer up without freeing it (for `leak`).
    pub(crate) fn leak(self) -> NonNull<T> {
        let mut me = core::mem::ManuallyDrop::new(self);
        if let Some(region) = me.inner.hdr_mut().and_then(|h| h.region.take()) {
            let _ = region.into_raw_parts();
        }
        me.inner.free_header();
        me.inner.ptr.cast()
    }

    #[inline]
    pub(crate) const fn ptr(&self) -> *mut T {
        self.inner.ptr.as_ptr().cast()
    }

    #[inline]
    pub(crate) const fn capacity(&self) -> usize {
        self.inner.cap
    }

    pub(crate) fn is_mapped(&self) -> bool {
        self.inner.is_mapped()
    }

    pub(crate) fn stats(&self) -> GrowStats {
        self.inner.stats()
    }

    pub(crate) fn options(&self) -> VecOptions {
        self.inner.packed().opts()
    }

    /// Ensures room for `additional` more elements after `len`, amortized (doubling).
    #[inline]
    pub(crate) fn try_reserve(
        &mut self,
        len: usize,
        additional: usize,
    ) -> Result<(), TryReserveError> {
        if self.inner.needs_to_grow(len, additional) {
            self.inner.grow_amortized(len, additional, Self::ELEM)
        } else {
            Ok(())
        }
    }

    /// Ensures room for exactly `additional` more elements after `len` (rounded up to the
    /// mapping's pages when mapped).
    #[inline]
    pub(crate) fn try_reserve_exact(
        &mut self,
        len: usize,
        additional: usize,
    ) -> Result<(), TryReserveError> {
        if self.inner.needs_to_grow(len, additional) {
            self.inner.grow_exact(len, additional, Self::ELEM)
        } else {
            Ok(())
        }
    }

    #[inline]
    #[track_caller]
    pub(crate) fn reserve(&mut self, len: usize, additional: usize) {
        if let Err(e) = self.try_reserve(len, additional) {
            handle_error(e)
        }
    }

    #[inline]
    #[track_caller]
    pub(crate) fn reserve_exact(&mut self, len: usize, additional: usize) {
        if let Err(e) = self.try_reserve_exact(len, additional) {
            handle_error(e)
        }
    }

    /// For `push` when full.
    #[cold]
    #[inline(never)]
    #[track_caller]
    pub(crate) fn grow_one(&mut self, len: usize) {
        if let Err(e) = self.inner.grow_amortized(len, 1, Self::ELEM) {
            handle_error(e)
        }
    }

    /// Room for `additional` more elements after `len`, whose bytes are all zero (amortized
    /// unless `exact`).
    pub(crate) fn try_reserve_zeroed(
        &mut self,
        len: usize,
        additional: usize,
        exact: bool,
    ) -> Result<(), TryReserveError> {
        self.inner
            .reserve_zeroed(len, additional, Self::ELEM, exact)
    }

    /// Elements `len..len + n` (within the capacity) are about to be written in one go.
    #[inline]
    pub(crate) fn prepare_fill(&mut self, len: usize, n: usize) {
        let size = Self::ELEM.size();
        if n.saturating_mul(size) >= POPULATE_MIN && self.inner.header_ptr().is_some() {
            self.inner.prepare_fill(len * size, (len + n) * size)
        }
    }

    /// The length is about to drop from `old` to `new` elements (see `RawInner::len_dropped`);
    /// a branch when the vector is not mapped.
    #[inline]
    pub(crate) fn len_dropped(&mut self, old: usize, new: usize) {
        let size = Self::ELEM.size();
        if self.inner.header_ptr().is_some() {
            self.inner.len_dropped(old * size, new * size)
        }
    }

    /// Where the pages never touched begin, as the header knows it (for tests).
    #[cfg(test)]
    pub(crate) fn fresh_from(&self) -> Option<usize> {
        self.inner.hdr().map(|h| h.fresh_from)
    }

    pub(crate) fn shrink_to(&mut self, len: usize, min_cap: usize) {
        self.inner.shrink_to(len, min_cap, Self::ELEM)
    }
}

impl<T> Drop for RawVec<T> {
    fn drop(&mut self) {
        self.inner.free(Self::ELEM, true);
        self.inner.free_header();
    }
}

#[cfg(test)]
mod tests;
