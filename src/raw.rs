//! Typed capacity logic over a `Region` or the heap; never drops a `T`.
//!
//! The work is done by the untyped [`RawInner`], which compiles once for every element type
//! (like std's `RawVecInner`); [`RawVec<T>`] only supplies `T`'s layout and frees on drop.

use crate::error::{TryReserveError, TryReserveErrorKind};
use crate::region::{How, Region, recycle};
use crate::stats::GrowStats;
use core::alloc::Layout;
use core::marker::PhantomData;
use core::ptr::NonNull;
use std::alloc::{alloc, dealloc, handle_alloc_error, realloc};

/// Default heap threshold: capacities below 128 KiB live on the heap (glibc's default mmap
/// threshold), so that many small vectors do not each cost a kernel mapping.
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

/// The untyped buffer: a heap block, a mapped region, or nothing.
pub(crate) struct RawInner {
    /// Start of the buffer. Dangling (aligned to the element) when nothing is allocated;
    /// equal to `region.as_ptr()` when mapped.
    ptr: NonNull<u8>,
    /// Capacity in elements. For a heap block, `cap * elem.size()` is exactly the size it was
    /// allocated with; for a region, `cap == region.len() / elem.size()` (the whole mapping is
    /// capacity). `usize::MAX` for zero-sized elements.
    cap: usize,
    /// The mapping, when the buffer is mapped.
    region: Option<Region>,
    opts: VecOptions,
    stats: GrowStats,
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
            region: None,
            opts,
            stats: GrowStats::ZERO,
        }
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
        match self.finish_grow(len, new_cap, elem) {
            Err(e) if e.kind() == TryReserveErrorKind::CapacityOverflow && new_cap > required => {
                self.finish_grow(len, required, elem)
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
        self.finish_grow(len, required, elem)
    }

    /// Makes the capacity at least `new_cap`, keeping the first `len` elements.
    fn finish_grow(
        &mut self,
        len: usize,
        new_cap: usize,
        elem: Layout,
    ) -> Result<(), TryReserveError> {
        let bytes = new_cap
            .checked_mul(elem.size())
            .ok_or(TryReserveError::capacity_overflow())?;
        let layout = Layout::from_size_align(bytes, elem.align())
            .map_err(|_| TryReserveError::capacity_overflow())?;
        if let Some(region) = &mut self.region {
            let g = region
                .grow(bytes)
                .map_err(|e| TryReserveError::alloc(layout, Some(e.0)))?;
            self.stats.syscalls += u64::from(g.syscalls);
            match g.how {
                How::InPlace => self.stats.in_place += 1,
                How::Moved => {
                    self.stats.moved += 1;
                    self.stats.bytes_remapped += g.bytes as u64;
                }
                How::Copied => {
                    self.stats.copied += 1;
                    self.stats.bytes_copied += g.bytes as u64;
                }
            }
            self.ptr = NonNull::new(region.as_ptr()).unwrap_or(self.ptr);
            self.cap = region.len() / elem.size();
            self.advise();
            return Ok(());
        }
        if bytes < self.opts.heap_threshold {
            return self.grow_heap(layout, elem);
        }
        self.move_to_region(len, layout, elem)
    }

    fn heap_layout(&self, elem: Layout) -> Option<Layout> {
        if self.region.is_some() || self.cap == 0 || elem.size() == 0 {
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
        self.stats.heap_grows += 1;
        self.ptr = p;
        self.cap = layout.size() / elem.size();
        debug_assert_eq!(self.cap * elem.size(), layout.size());
        Ok(())
    }

    /// Moves the buffer from the heap (or nothing) into a new region: the one copy.
    fn move_to_region(
        &mut self,
        len: usize,
        layout: Layout,
        elem: Layout,
    ) -> Result<(), TryReserveError> {
        let kept = if self.opts.reuse_freed {
            recycle::take(layout.size(), elem.align(), self.opts.huge_pages, false).map(
                |(region, _dirty, calls)| {
                    self.stats.syscalls += u64::from(calls);
                    region
                },
            )
        } else {
            None
        };
        let region = match kept {
            Some(r) => {
                self.stats.reused += 1;
                r
            }
            None => {
                let (region, calls) = Region::new(layout.size(), elem.align())
                    .map_err(|e| TryReserveError::alloc(layout, Some(e.0)))?;
                self.stats.syscalls += u64::from(calls);
                region
            }
        };
        let copy = len * elem.size();
        if copy > 0 {
            // SAFETY: the first `len` elements of the old buffer are initialized and readable;
            // the region is a fresh mapping at least `layout.size() >= copy` bytes long.
            unsafe { core::ptr::copy_nonoverlapping(self.ptr.as_ptr(), region.as_ptr(), copy) };
            self.stats.copied += 1;
            self.stats.bytes_copied += copy as u64;
        }
        if let Some(old) = self.heap_layout(elem) {
            // SAFETY: allocated by the global allocator with `old`; its contents were copied.
            unsafe { dealloc(self.ptr.as_ptr(), old) };
        }
        self.ptr = NonNull::new(region.as_ptr()).unwrap_or(self.ptr);
        self.cap = region.len() / elem.size();
        self.region = Some(region);
        self.advise();
        Ok(())
    }

    fn advise(&mut self) {
        if let (true, Some(region)) = (self.opts.huge_pages, &self.region) {
            self.stats.syscalls += u64::from(region.advise_huge());
        }
    }

    /// Lowers the capacity to `max(len, min_cap)` if it is above. Best effort: if the smaller
    /// buffer cannot be had, the current one is kept (nothing is lost).
    fn shrink_to(&mut self, len: usize, min_cap: usize, elem: Layout) {
        let target = len.max(min_cap);
        if elem.size() == 0 || target >= self.cap {
            return;
        }
        let bytes = target * elem.size();
        if target == 0 {
            self.free(elem, false);
            return;
        }
        // SAFETY: `bytes <= cap * size`, which was a valid layout size.
        let layout = unsafe { Layout::from_size_align_unchecked(bytes, elem.align()) };
        if self.region.is_some() && bytes < self.opts.heap_threshold {
            // Back to the heap, so a shrunk small vector does not keep a mapping.
            // SAFETY: non-zero size.
            let Some(p) = NonNull::new(unsafe { alloc(layout) }) else {
                return;
            };
            // SAFETY: `len <= target` initialized elements are readable in the region; the new
            // block holds `bytes >= len * size` bytes.
            unsafe {
                core::ptr::copy_nonoverlapping(self.ptr.as_ptr(), p.as_ptr(), len * elem.size())
            };
            self.region = None; // one munmap
            self.stats.syscalls += 1;
            self.ptr = p;
            self.cap = target;
            return;
        }
        if let Some(region) = &mut self.region {
            if let Ok(calls) = region.shrink(bytes) {
                self.stats.syscalls += u64::from(calls);
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
    /// mapping may go to the recycler instead of being unmapped.
    fn free(&mut self, elem: Layout, keep: bool) {
        if let Some(old) = self.heap_layout(elem) {
            // SAFETY: allocated by the global allocator with `old`.
            unsafe { dealloc(self.ptr.as_ptr(), old) };
        }
        if let Some(region) = self.region.take() {
            if keep && self.opts.reuse_freed {
                // The whole mapping may have been written.
                let dirty = region.len();
                self.stats.syscalls += u64::from(recycle::put(region, dirty, self.opts.huge_pages));
            } else {
                drop(region);
                self.stats.syscalls += 1; // the munmap
            }
        }
        self.ptr = dangling(elem.align());
        self.cap = if elem.size() == 0 { usize::MAX } else { 0 };
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
            raw.inner.finish_grow(0, cap, Self::ELEM)?;
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
        if self.inner.region.is_some() {
            return Err(self);
        }
        let me = core::mem::ManuallyDrop::new(self);
        // For zero-sized `T` the capacity is `usize::MAX`, which is also what `Vec` reports.
        Ok((me.inner.ptr.cast(), me.inner.cap))
    }

    /// Gives the buffer up without freeing it (for `leak`).
    pub(crate) fn leak(self) -> NonNull<T> {
        let mut me = core::mem::ManuallyDrop::new(self);
        if let Some(region) = me.inner.region.take() {
            let _ = region.into_raw_parts();
        }
        me.inner.ptr.cast()
    }

    #[inline]
    pub(crate) fn ptr(&self) -> *mut T {
        self.inner.ptr.as_ptr().cast()
    }

    #[inline]
    pub(crate) fn capacity(&self) -> usize {
        self.inner.cap
    }

    pub(crate) fn is_mapped(&self) -> bool {
        self.inner.region.is_some()
    }

    pub(crate) fn stats(&self) -> GrowStats {
        self.inner.stats
    }

    pub(crate) fn options(&self) -> VecOptions {
        self.inner.opts
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

    pub(crate) fn shrink_to(&mut self, len: usize, min_cap: usize) {
        self.inner.shrink_to(len, min_cap, Self::ELEM)
    }
}

impl<T> Drop for RawVec<T> {
    fn drop(&mut self) {
        self.inner.free(Self::ELEM, true)
    }
}

#[cfg(test)]
mod tests;
