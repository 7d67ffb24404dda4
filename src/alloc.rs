//! `RemapAlloc<A = System>`: size-threshold dispatch between an inner allocator and page
//! regions; `GlobalAlloc` and `allocator_api2` 0.2 `Allocator`. Large reallocations are
//! `mremap`s: in place, else moved, never copied unless the kernel refuses both.
//!
//! Nothing on these paths allocates: the region layer works with raw errno values and fixed
//! statics, so the allocator can be the global allocator without recursing into itself.

use crate::raw::DEFAULT_HEAP_THRESHOLD;
use crate::region::{How, Region, recycle};
use crate::stats::GrowStats;
use crate::sys;
use allocator_api2::alloc::{AllocError, Allocator};
use core::alloc::{GlobalAlloc, Layout};
use core::mem::ManuallyDrop;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::alloc::System;

/// An allocator that serves small requests from an inner allocator and large ones (from the
/// threshold on, default 128 KiB) from page regions placed to grow in place, so that every
/// large `realloc` in a program is zero-copy.
///
/// As the global allocator:
///
/// ```
/// use remapvec::RemapAlloc;
///
/// #[global_allocator]
/// static GLOBAL: RemapAlloc = RemapAlloc::new();
///
/// fn main() {
///     let mut v: Vec<u8> = Vec::with_capacity(1 << 20); // a region
///     v.resize(64 << 20, 1); // grows by mremap, no copy
///     assert_eq!(v[(64 << 20) - 1], 1);
/// }
/// ```
///
/// With the `allocator_api2` 0.2 `Allocator` trait (hashbrown, allocator-api2 collections):
///
/// ```
/// use allocator_api2::vec::Vec;
/// use remapvec::RemapAlloc;
///
/// let alloc = RemapAlloc::new();
/// let mut v = Vec::new_in(&alloc);
/// v.extend(0..1_000_000u64);
/// assert_eq!(v[999_999], 999_999);
/// ```
///
/// Which side a block lives on is decided by its size alone, so `dealloc` and `realloc` find it
/// again from the layout they are given: the inner allocator never sees a block of the
/// threshold or more.
#[derive(Clone, Copy, Debug, Default)]
pub struct RemapAlloc<A = System> {
    inner: A,
    /// Sizes `>= threshold` (and `>= 1`) are regions.
    threshold: usize,
    /// When large blocks of 2 MiB and more get transparent huge pages.
    huge_pages: HugePages,
}

/// When [`RemapAlloc`] gives large blocks (2 MiB and more) transparent huge pages: one page
/// fault and one TLB entry per 2 MiB instead of 512. See [`RemapAlloc::huge_page_policy`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HugePages {
    /// Never: every block is made of 4 KiB pages.
    Never,
    /// Blocks that proved to be written whole and reused (the default). A block freed after
    /// the recycler handed it out [`DENSE_REUSES`] times in a row as it is (not trimmed,
    /// joined, grown or reallocated), 2 MiB-aligned, with every page resident (asked with
    /// `mincore`, last page first) gives its pages back and is advised for huge pages: its
    /// next users fault it in 2 MiB at a time and write it with fewer TLB misses. A block
    /// written sparsely is never advised, so it never costs more memory than its pages; nor
    /// does the advice spread: a kept huge block is not grown for another request, and one
    /// that grows by `realloc` is advised `MADV_NOHUGEPAGE` again.
    #[default]
    Dense,
    /// Every block of 2 MiB and more, from its first page (`madvise(MADV_HUGEPAGE)` when it is
    /// mapped, as mimalloc does for its segments).
    Always,
}

/// Reuses after which a large block written whole is given huge pages under
/// [`HugePages::Dense`]. Giving them costs its next user about 0.12 ms per MiB of huge-page
/// faults (zeroing 2 MiB at a time) and saves it about 3 µs per MiB written on every reuse
/// after (measured on the crate's 2-core VM: writing 8 MiB took 158 µs in 4 KiB pages, 132 µs
/// in huge pages), so it pays after about 40 more reuses; a block reused this often is likely
/// to be reused that much again.
pub const DENSE_REUSES: u16 = 32;

impl RemapAlloc<System> {
    /// Large blocks from 128 KiB on, small ones from [`System`].
    pub const fn new() -> Self {
        RemapAlloc {
            inner: System,
            threshold: DEFAULT_HEAP_THRESHOLD,
            huge_pages: HugePages::Dense,
        }
    }

    /// Large blocks from `bytes` on (`0`: every block is a region), small ones from [`System`].
    ///
    /// ```
    /// # use remapvec::RemapAlloc;
    /// static A: RemapAlloc = RemapAlloc::with_threshold(1 << 20);
    /// assert_eq!(A.get_threshold(), 1 << 20);
    /// ```
    pub const fn with_threshold(bytes: usize) -> Self {
        RemapAlloc {
            inner: System,
            threshold: bytes,
            huge_pages: HugePages::Dense,
        }
    }

    /// Process-wide counters of every `RemapAlloc`, whatever its inner allocator (so
    /// `RemapAlloc::stats()` needs no type parameter): large blocks, how large reallocations
    /// happened, and the copies made when a block crossed the threshold.
    ///
    /// ```
    /// use remapvec::RemapAlloc;
    /// let a = RemapAlloc::new();
    /// let mut v = allocator_api2::vec::Vec::<u8, _>::with_capacity_in(1 << 20, &a);
    /// v.resize(8 << 20, 0);
    /// let s = RemapAlloc::stats();
    /// assert!(s.large_allocs >= 1 && s.growth.grows() >= 1);
    /// ```
    pub fn stats() -> AllocStats {
        AllocStats {
            large_live: LARGE_LIVE.load(Relaxed),
            large_allocs: LARGE_ALLOCS.load(Relaxed),
            growth: GrowStats {
                in_place: IN_PLACE.load(Relaxed),
                moved: MOVED.load(Relaxed),
                copied: COPIED.load(Relaxed),
                bytes_remapped: BYTES_REMAPPED.load(Relaxed),
                bytes_copied: BYTES_COPIED.load(Relaxed),
                heap_grows: 0,
                syscalls: SYSCALLS.load(Relaxed),
                reused: REUSED.load(Relaxed),
            },
            crossings: CROSSINGS.load(Relaxed),
            bytes_copied_crossing: BYTES_CROSSING.load(Relaxed),
            made_huge: MADE_HUGE.load(Relaxed),
        }
    }
}

impl<A> RemapAlloc<A> {
    /// Around any inner allocator (jemalloc, mimalloc, a counting wrapper), which serves the
    /// blocks below the threshold (128 KiB).
    ///
    /// ```
    /// # use remapvec::RemapAlloc;
    /// static A: RemapAlloc<std::alloc::System> = RemapAlloc::wrapping(std::alloc::System);
    /// ```
    pub const fn wrapping(inner: A) -> Self {
        RemapAlloc {
            inner,
            threshold: DEFAULT_HEAP_THRESHOLD,
            huge_pages: HugePages::Dense,
        }
    }

    /// The same allocator with another threshold.
    ///
    /// ```
    /// # use remapvec::RemapAlloc;
    /// static A: RemapAlloc = RemapAlloc::wrapping(std::alloc::System).threshold(4096);
    /// ```
    pub const fn threshold(mut self, bytes: usize) -> Self {
        self.threshold = bytes;
        self
    }

    /// `true`: advise every large block of 2 MiB and more for transparent huge pages from the
    /// start ([`HugePages::Always`]); `false`: never ([`HugePages::Never`]). The default is
    /// neither: [`HugePages::Dense`] (see [`huge_page_policy`](Self::huge_page_policy)).
    ///
    /// ```
    /// # use remapvec::RemapAlloc;
    /// static A: RemapAlloc = RemapAlloc::new().huge_pages(true);
    /// assert!(A.is_huge_pages());
    /// ```
    pub const fn huge_pages(self, on: bool) -> Self {
        self.huge_page_policy(if on {
            HugePages::Always
        } else {
            HugePages::Never
        })
    }

    /// When large blocks of 2 MiB and more get transparent huge pages. Default
    /// [`HugePages::Dense`]: blocks that were handed out again [`DENSE_REUSES`] times as they
    /// are and found written whole when freed.
    ///
    /// Writing a block in huge pages costs one page fault and one TLB entry per 2 MiB instead
    /// of 512. Measured on the crate's 2-core VM (`cargo run --release --example churn --
    /// --sizes 8M --only mimalloc,remap+mimalloc,remap+mimalloc-4k`, 12 processes):
    /// allocating, writing and freeing 8 MiB blocks around mimalloc took 0.98x mimalloc's CPU
    /// time under `Dense` and 1.13x under `Never` (mimalloc advises its memory for huge
    /// pages). The price of [`HugePages::Always`] is memory: one byte written
    /// anywhere in a 2 MiB-aligned part of a block makes all 2 MiB of it resident, so a large
    /// block written sparsely (a `calloc`'d table, a big `with_capacity` that stays mostly
    /// empty) can cost up to 512 times the memory it would otherwise. [`HugePages::Dense`]
    /// gives huge pages only to blocks that were written whole: only a later user of such a
    /// block that writes it sparsely pays that price, up to the block's size.
    ///
    /// ```
    /// use remapvec::{HugePages, RemapAlloc};
    /// static A: RemapAlloc = RemapAlloc::new().huge_page_policy(HugePages::Never);
    /// assert_eq!(A.get_huge_page_policy(), HugePages::Never);
    /// assert_eq!(RemapAlloc::new().get_huge_page_policy(), HugePages::Dense);
    /// ```
    pub const fn huge_page_policy(mut self, policy: HugePages) -> Self {
        self.huge_pages = policy;
        self
    }

    /// When large blocks get huge pages (see [`huge_page_policy`](Self::huge_page_policy)).
    pub const fn get_huge_page_policy(&self) -> HugePages {
        self.huge_pages
    }

    /// Whether every large block of 2 MiB and more is advised for huge pages from the start
    /// ([`HugePages::Always`], see [`huge_pages`](Self::huge_pages)).
    ///
    /// ```
    /// assert!(!remapvec::RemapAlloc::new().is_huge_pages());
    /// ```
    pub const fn is_huge_pages(&self) -> bool {
        matches!(self.huge_pages, HugePages::Always)
    }

    /// The size from which blocks are regions.
    ///
    /// ```
    /// assert_eq!(remapvec::RemapAlloc::new().get_threshold(), 128 << 10);
    /// ```
    pub const fn get_threshold(&self) -> usize {
        self.threshold
    }

    /// The inner allocator.
    ///
    /// ```
    /// let a = remapvec::RemapAlloc::new();
    /// let _system: &std::alloc::System = a.inner();
    /// ```
    pub const fn inner(&self) -> &A {
        &self.inner
    }

    #[inline]
    fn is_large(&self, size: usize) -> bool {
        size >= self.threshold.max(1)
    }

    /// The huge-page advice of a large block of `size` bytes (see [`want`]).
    #[inline]
    fn huge(&self, size: usize) -> Option<bool> {
        want(self.huge_pages, size)
    }
}

/// Process-wide counters of [`RemapAlloc`], from [`RemapAlloc::stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AllocStats {
    /// Large blocks (regions) alive now.
    pub large_live: u64,
    /// Large blocks allocated so far.
    pub large_allocs: u64,
    /// Reallocations from a large size to a large size: in place, moved, or copied (only when
    /// the kernel refused both), with their bytes and system calls.
    pub growth: GrowStats,
    /// Reallocations that crossed the threshold (one copy each, as with any allocator).
    pub crossings: u64,
    /// Bytes copied by those crossings.
    pub bytes_copied_crossing: u64,
    /// Large blocks given huge pages when freed, having been reused [`DENSE_REUSES`] times and
    /// written whole ([`HugePages::Dense`]).
    pub made_huge: u64,
}

static LARGE_LIVE: AtomicU64 = AtomicU64::new(0);
static LARGE_ALLOCS: AtomicU64 = AtomicU64::new(0);
static IN_PLACE: AtomicU64 = AtomicU64::new(0);
static MOVED: AtomicU64 = AtomicU64::new(0);
static COPIED: AtomicU64 = AtomicU64::new(0);
static BYTES_REMAPPED: AtomicU64 = AtomicU64::new(0);
static BYTES_COPIED: AtomicU64 = AtomicU64::new(0);
static SYSCALLS: AtomicU64 = AtomicU64::new(0);
static REUSED: AtomicU64 = AtomicU64::new(0);
static MADE_HUGE: AtomicU64 = AtomicU64::new(0);
static CROSSINGS: AtomicU64 = AtomicU64::new(0);
static BYTES_CROSSING: AtomicU64 = AtomicU64::new(0);

/// The mapping (`Region::origin`) of each live large block, by address, so that a freed
/// block joins the kept pieces of its own mapping in the recycler (and a realloc knows which
/// mapping it grows). A fixed table, lock-free and allocation-free: a block is recorded in one
/// of [`PROBE`] entries from its hash, and one that finds them all taken is simply not
/// recorded (its origin is unknown: it is kept alone, never joined).
mod origins {
    use crate::region::Advice;
    use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering::*};

    /// What is recorded of a block: its mapping (`Region::origin`), its reuses and whether it
    /// is advised for huge pages.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub(super) struct Info {
        pub(super) origin: usize,
        pub(super) reuses: u16,
        pub(super) advice: Advice,
    }

    impl Info {
        pub(super) fn of(region: &crate::region::Region) -> Info {
            Info {
                origin: region.origin(),
                reuses: region.reuses(),
                advice: region.advice(),
            }
        }
    }

    /// Entries: 131 072, twice the kernel's default `vm.max_map_count`, so that a window is
    /// seldom full (2 MiB of zeroed statics: address space only, touched as used). With 12 000
    /// live blocks, a table of 8 192 was full and the blocks' pieces could never join again.
    const BITS: u32 = 17;
    const SIZE: usize = 1 << BITS;
    /// Entries looked at from a block's hash.
    const PROBE: usize = 16;
    /// An entry freed by [`take`]; reusable.
    const GONE: usize = 1;

    struct Entry {
        /// 0: never used; [`GONE`]: free again; else the block's address.
        addr: AtomicUsize,
        origin: AtomicUsize,
        /// Reuses (bits 2 and up) and the huge-page advice (bits 0 and 1).
        history: AtomicU32,
    }

    static TABLE: [Entry; SIZE] = [const {
        Entry {
            addr: AtomicUsize::new(0),
            origin: AtomicUsize::new(0),
            history: AtomicU32::new(0),
        }
    }; SIZE];

    /// Where the window of `addr` starts.
    pub(super) fn hash(addr: usize) -> usize {
        (addr >> 12).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (usize::BITS - BITS)
    }

    fn window(addr: usize) -> impl Iterator<Item = &'static Entry> {
        let h = hash(addr);
        (0..PROBE).map(move |i| &TABLE[(h + i) % SIZE])
    }

    /// Records what is known of the block at `addr` (not recorded when its origin is 0 or
    /// when its entries are all taken).
    pub(super) fn record(addr: usize, info: Info) {
        if info.origin == 0 {
            return;
        }
        for e in window(addr) {
            let a = e.addr.load(Relaxed);
            if (a == 0 || a == GONE) && e.addr.compare_exchange(a, addr, Acquire, Relaxed).is_ok() {
                // Read only by whoever frees or reallocates the block, which happens after
                // the allocation that records it returned.
                e.history.store(
                    u32::from(info.reuses) << 2 | info.advice.bits() as u32,
                    Relaxed,
                );
                e.origin.store(info.origin, Release);
                return;
            }
        }
    }

    fn read(e: &Entry) -> Info {
        let origin = e.origin.load(Acquire);
        let h = e.history.load(Relaxed);
        Info {
            origin,
            reuses: (h >> 2) as u16,
            advice: Advice::from_bits(h as usize),
        }
    }

    /// What is recorded of the block at `addr` (all zero: unknown), left recorded.
    #[cfg(test)]
    pub(super) fn get(addr: usize) -> Info {
        window(addr)
            .find(|e| e.addr.load(Relaxed) == addr)
            .map_or(Info::default(), read)
    }

    /// What is recorded of the block at `addr` (all zero: unknown), forgotten.
    pub(super) fn take(addr: usize) -> Info {
        for e in window(addr) {
            if e.addr.load(Relaxed) == addr {
                let info = read(e);
                e.addr.store(GONE, Release);
                return info;
            }
        }
        Info::default()
    }
}

/// The huge-page advice `policy` wants for a large block of `size` bytes: `Some(true)` from
/// the start, `Some(false)` never, `None` when it depends on the block ([`HugePages::Dense`]).
fn want(policy: HugePages, size: usize) -> Option<bool> {
    match policy {
        HugePages::Never => Some(false),
        HugePages::Always => Some(size >= HUGE_BLOCK),
        HugePages::Dense => None,
    }
}

/// With [`RemapAlloc::huge_pages`], blocks of this size and more are advised for transparent
/// huge pages (2 MiB: the smallest size that can hold one).
const HUGE_BLOCK: usize = crate::sys::PMD_SIZE;

/// A large block: a region kept by the recycler if one of exactly this many pages can be had
/// (its first `dirty` bytes may hold old data; zeroed here when `zero`), else a new mapping.
/// `huge`: advised for huge pages from the start (and taken only from kept regions that were),
/// never, or `None`: either, as the region comes ([`HugePages::Dense`]).
fn alloc_large(layout: Layout, zero: bool, huge: Option<bool>) -> *mut u8 {
    if let Some((region, dirty, calls)) = recycle::take(layout.size(), layout.align(), huge, true) {
        LARGE_LIVE.fetch_add(1, Relaxed);
        LARGE_ALLOCS.fetch_add(1, Relaxed);
        REUSED.fetch_add(1, Relaxed);
        if calls > 0 {
            SYSCALLS.fetch_add(u64::from(calls), Relaxed);
        }
        origins::record(region.as_ptr() as usize, origins::Info::of(&region));
        let p = region.into_raw_parts().0.as_ptr();
        if zero {
            // SAFETY: the block is `layout.size()` bytes (rounded up to pages) of our mapping;
            // beyond `dirty` it is zero already.
            unsafe { p.write_bytes(0, dirty.min(layout.size())) };
        }
        return p;
    }
    match Region::new(layout.size(), layout.align()) {
        Ok((mut region, calls)) => {
            let advised = if huge == Some(true) {
                region.advise_huge()
            } else {
                0
            };
            LARGE_LIVE.fetch_add(1, Relaxed);
            LARGE_ALLOCS.fetch_add(1, Relaxed);
            SYSCALLS.fetch_add(u64::from(calls + advised), Relaxed);
            origins::record(region.as_ptr() as usize, origins::Info::of(&region));
            // Fresh anonymous pages are zero: nothing to write even when zeroing.
            region.into_raw_parts().0.as_ptr()
        }
        Err(_) => ptr::null_mut(),
    }
}

/// The region behind a large block, not to be dropped unless the block is freed.
///
/// # Safety
/// `ptr` was returned by `alloc_large` (or a large resize) for a block of `layout`. `info`:
/// what was recorded of the block (see [`origins`]).
unsafe fn region_of(ptr: *mut u8, layout: Layout, info: origins::Info) -> ManuallyDrop<Region> {
    // A region's length is its block size rounded up to pages, computed the same way here.
    let len = sys::round_to_page(layout.size()).unwrap_or(usize::MAX);
    // SAFETY: per the caller, `ptr..ptr + len` is the mapping made for this block, aligned to
    // `layout.align()`, and it is non-null.
    ManuallyDrop::new(
        unsafe { Region::from_raw_parts(NonNull::new_unchecked(ptr), len, layout.align()) }
            .with_origin(info.origin)
            .with_history(info.reuses, info.advice),
    )
}

/// The region of a large block whose record was lost (its window of the origin table was
/// full): its advice is not known, so under a policy that may have advised it, it is advised
/// against huge pages now (the advice a `Never` request may take). Returns the system calls.
fn unknown_advice(region: &mut Region, info: origins::Info, policy: HugePages) -> u32 {
    if info.origin != 0 || policy == HugePages::Never {
        return 0;
    }
    if policy == HugePages::Always && region.len() >= HUGE_BLOCK {
        region.advise_huge()
    } else {
        region.advise_no_huge()
    }
}

/// # Safety
/// `ptr` is a live large block of `layout`, allocated under `policy`.
unsafe fn dealloc_large(ptr: *mut u8, layout: Layout, policy: HugePages) {
    let info = origins::take(ptr as usize);
    // SAFETY: per the caller, `ptr` is a live large block of `layout`: a mapping this allocator
    // made (or took whole from the recycler) and never gave up, so it is still ours; the region
    // goes to the recycler, which keeps it or unmaps it, and the block is freed.
    let mut region = ManuallyDrop::into_inner(unsafe { region_of(ptr, layout, info) });
    let mut calls = unknown_advice(&mut region, info, policy);
    let mut dirty = region.len();
    if policy == HugePages::Dense && region.reuses() >= DENSE_REUSES {
        // SAFETY: the block is freed: nothing refers to its contents.
        let (dropped, c) = unsafe { region.renew_huge_if_dense() };
        calls += c;
        if dropped {
            // Its pages were given back: it reads as zero.
            dirty = 0;
            MADE_HUGE.fetch_add(1, Relaxed);
        }
    }
    // Kept with the advice it has (`Region::advice`).
    calls += recycle::put(region, dirty);
    if calls > 0 {
        SYSCALLS.fetch_add(u64::from(calls), Relaxed);
    }
    LARGE_LIVE.fetch_sub(1, Relaxed);
}

/// Grows or shrinks a large block to another large size. Null on failure, the block intact.
///
/// # Safety
/// `ptr` is a live large block of `layout`, allocated under `policy`; the caller gives up its
/// old address on success.
unsafe fn resize_large(
    ptr: *mut u8,
    layout: Layout,
    new_size: usize,
    policy: HugePages,
) -> *mut u8 {
    // Forgotten while the block is still at `ptr`: once it moves, another thread's block may
    // be mapped and recorded there, and its entry must not be the one forgotten.
    let info = origins::take(ptr as usize);
    // Recorded again wherever the block is when this returns (at `ptr` on failure).
    let fail = || {
        origins::record(ptr as usize, info);
        ptr::null_mut()
    };
    // SAFETY: forwarded from the caller.
    let mut region = unsafe { region_of(ptr, layout, info) };
    SYSCALLS.fetch_add(
        u64::from(unknown_advice(&mut region, info, policy)),
        Relaxed,
    );
    // A block of another size: its reuses start again (see `DENSE_REUSES`).
    region.reset_reuses();
    let old_len = region.len();
    if new_size >= layout.size() {
        let Ok(g) = region.grow(new_size) else {
            return fail();
        };
        SYSCALLS.fetch_add(u64::from(g.syscalls), Relaxed);
        match g.how {
            How::InPlace => IN_PLACE.fetch_add(1, Relaxed),
            How::Moved => {
                BYTES_REMAPPED.fetch_add(g.bytes as u64, Relaxed);
                MOVED.fetch_add(1, Relaxed)
            }
            How::Copied => {
                BYTES_COPIED.fetch_add(g.bytes as u64, Relaxed);
                COPIED.fetch_add(1, Relaxed)
            }
        };
        let advised = match want(policy, new_size) {
            Some(true) => region.advise_huge(),
            // Made huge for having been written whole: what it grew by proved nothing.
            None if region.len() > old_len => region.forget_huge(),
            _ => 0,
        };
        SYSCALLS.fetch_add(u64::from(advised), Relaxed);
    } else {
        match region.shrink(new_size) {
            Ok(calls) => SYSCALLS.fetch_add(u64::from(calls), Relaxed),
            Err(_) => return fail(),
        };
    }
    origins::record(region.as_ptr() as usize, origins::Info::of(&region));
    region.as_ptr()
}

impl<A: GlobalAlloc> RemapAlloc<A> {
    /// Reallocation, optionally zeroing the bytes from `layout.size()` to `new_size` that may
    /// not be zero already. Null on failure, the old block intact.
    ///
    /// # Safety
    /// `ptr` is a live block of this allocator with `layout`; `new_size` is non-zero and,
    /// rounded up to `layout.align()`, at most `isize::MAX`.
    unsafe fn realloc_impl(
        &self,
        ptr: *mut u8,
        layout: Layout,
        new_size: usize,
        zero: bool,
    ) -> *mut u8 {
        let (old_large, new_large) = (self.is_large(layout.size()), self.is_large(new_size));
        let (p, dirty_end) = match (old_large, new_large) {
            (false, false) => {
                // SAFETY: forwarded from the caller; the inner allocator owns small blocks.
                (
                    unsafe { self.inner.realloc(ptr, layout, new_size) },
                    new_size,
                )
            }
            (true, true) => {
                // Pages beyond the old block's last page are fresh (zero); only the rest of that
                // page may hold bytes from before a shrink.
                let page_end = sys::round_to_page(layout.size()).unwrap_or(usize::MAX);
                // SAFETY: forwarded from the caller.
                (
                    unsafe { resize_large(ptr, layout, new_size, self.huge_pages) },
                    page_end.min(new_size),
                )
            }
            _ => {
                // SAFETY: the caller guarantees the new layout is valid.
                let new_layout =
                    unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
                // SAFETY: non-zero size.
                let new = unsafe {
                    if zero {
                        self.alloc_zeroed(new_layout)
                    } else {
                        self.alloc(new_layout)
                    }
                };
                if new.is_null() {
                    return new;
                }
                let n = layout.size().min(new_size);
                // SAFETY: both blocks are live, distinct and at least `n` bytes long; the old one
                // is freed with its own layout.
                unsafe {
                    ptr::copy_nonoverlapping(ptr, new, n);
                    self.dealloc(ptr, layout);
                }
                CROSSINGS.fetch_add(1, Relaxed);
                BYTES_CROSSING.fetch_add(n as u64, Relaxed);
                return new;
            }
        };
        if zero && !p.is_null() && dirty_end > layout.size() {
            // SAFETY: the block is `new_size >= dirty_end` bytes long.
            unsafe {
                p.add(layout.size())
                    .write_bytes(0, dirty_end - layout.size())
            };
        }
        p
    }
}

// SAFETY: small blocks are the inner allocator's, with its guarantees; large blocks are fresh
// mappings of at least `layout.size()` bytes aligned to `layout.align()` (the region layer
// places them so), unique to the caller until `dealloc`. `dealloc`/`realloc` find the side from
// the layout's size, which is the one the block was allocated or last reallocated with. No path
// panics or allocates.
unsafe impl<A: GlobalAlloc> GlobalAlloc for RemapAlloc<A> {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if self.is_large(layout.size()) {
            alloc_large(layout, false, self.huge(layout.size()))
        } else {
            // SAFETY: forwarded from the caller.
            unsafe { self.inner.alloc(layout) }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if self.is_large(layout.size()) {
            alloc_large(layout, true, self.huge(layout.size()))
        } else {
            // SAFETY: forwarded from the caller.
            unsafe { self.inner.alloc_zeroed(layout) }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if self.is_large(layout.size()) {
            // SAFETY: a large block of this layout, per the caller.
            unsafe { dealloc_large(ptr, layout, self.huge_pages) }
        } else {
            // SAFETY: forwarded from the caller.
            unsafe { self.inner.dealloc(ptr, layout) }
        }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded from the caller (GlobalAlloc::realloc has the same contract).
        unsafe { self.realloc_impl(ptr, layout, new_size, false) }
    }
}

/// The answer of an `Allocator` method for a raw block of `size` bytes (null: failure).
fn block(p: *mut u8, size: usize) -> Result<NonNull<[u8]>, AllocError> {
    NonNull::new(p)
        .map(|p| NonNull::slice_from_raw_parts(p, size))
        .ok_or(AllocError)
}

fn dangling(align: usize) -> NonNull<[u8]> {
    // SAFETY: an alignment is a non-zero power of two, so the address is non-null and aligned.
    let p = unsafe { NonNull::new_unchecked(ptr::without_provenance_mut::<u8>(align)) };
    NonNull::slice_from_raw_parts(p, 0)
}

impl<A: GlobalAlloc> RemapAlloc<A> {
    /// `Allocator::allocate` and `allocate_zeroed`: zero-size requests get a dangling, aligned
    /// pointer and never reach `GlobalAlloc`.
    fn allocate_api(&self, layout: Layout, zeroed: bool) -> Result<NonNull<[u8]>, AllocError> {
        if layout.size() == 0 {
            return Ok(dangling(layout.align()));
        }
        // SAFETY: the size is non-zero.
        let p = unsafe {
            if zeroed {
                GlobalAlloc::alloc_zeroed(self, layout)
            } else {
                GlobalAlloc::alloc(self, layout)
            }
        };
        block(p, layout.size())
    }

    /// Moves a block to a new layout, for the `Allocator` methods.
    ///
    /// # Safety
    /// As `Allocator::grow`/`shrink`: `ptr` is a live block of `old` from this allocator.
    unsafe fn resize_api(
        &self,
        ptr: NonNull<u8>,
        old: Layout,
        new: Layout,
        zero: bool,
    ) -> Result<NonNull<[u8]>, AllocError> {
        if old.size() == 0 {
            return self.allocate_api(new, zero);
        }
        if new.size() == 0 {
            // SAFETY: a live block of `old`.
            unsafe { self.deallocate(ptr, old) };
            return Ok(dangling(new.align()));
        }
        let p = if old.align() == new.align() {
            // SAFETY: a live block of `old`; `new` is a valid layout with a non-zero size.
            unsafe { self.realloc_impl(ptr.as_ptr(), old, new.size(), zero) }
        } else {
            let fresh = self.allocate_api(new, zero)?;
            // SAFETY: both live and distinct; `ptr` is freed with its own layout.
            unsafe {
                ptr::copy_nonoverlapping(
                    ptr.as_ptr(),
                    fresh.as_ptr().cast(),
                    old.size().min(new.size()),
                );
                self.deallocate(ptr, old);
            }
            return Ok(fresh);
        };
        block(p, new.size())
    }
}

// SAFETY: blocks are valid for their layout until deallocated (see the `GlobalAlloc` impl);
// zero-size requests get a dangling, aligned pointer and are never passed on; copies and moves
// of the allocator share the process-wide regions and the inner allocator's blocks, so any copy
// may free a block of another, as `Allocator` requires of clones when `A: Copy` or `System`.
unsafe impl<A: GlobalAlloc> Allocator for RemapAlloc<A> {
    #[inline]
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        self.allocate_api(layout, false)
    }

    #[inline]
    fn allocate_zeroed(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        self.allocate_api(layout, true)
    }

    #[inline]
    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        if layout.size() != 0 {
            // SAFETY: a live block of this layout, per the caller.
            unsafe { GlobalAlloc::dealloc(self, ptr.as_ptr(), layout) }
        }
    }

    unsafe fn grow(
        &self,
        ptr: NonNull<u8>,
        old: Layout,
        new: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        // SAFETY: forwarded from the caller.
        unsafe { self.resize_api(ptr, old, new, false) }
    }

    unsafe fn grow_zeroed(
        &self,
        ptr: NonNull<u8>,
        old: Layout,
        new: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        // SAFETY: forwarded from the caller.
        unsafe { self.resize_api(ptr, old, new, true) }
    }

    unsafe fn shrink(
        &self,
        ptr: NonNull<u8>,
        old: Layout,
        new: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        // SAFETY: forwarded from the caller.
        unsafe { self.resize_api(ptr, old, new, false) }
    }
}

#[cfg(test)]
mod origin_tests {
    use super::origins::{self, Info};
    use crate::region::Advice;

    fn o(origin: usize) -> Info {
        Info {
            origin,
            reuses: 0,
            advice: Advice::Default,
        }
    }

    /// A block moved away from `x` forgets its entry before it moves, so the block mapped at
    /// `x` next (by another thread) keeps its own origin. Replays that interleaving with an
    /// earlier entry of `x`'s window freed in between, which made the late forget remove the
    /// new block's entry.
    #[test]
    fn a_reused_address_keeps_its_own_origin() {
        // Addresses nothing maps at (below the zone, far above the kernel's placement floor).
        let x = 0x6543_0000_0000usize;
        let z = (1..)
            .map(|k| x + k * 4096)
            .find(|&z| origins::hash(z) == origins::hash(x))
            .unwrap();
        origins::record(z, o(5));
        origins::record(x, o(100)); // thread 1's block at x
        assert_eq!(origins::take(z).origin, 5);
        // Thread 1 reallocates: as `resize_large` does, it forgets x first ...
        assert_eq!(origins::take(x).origin, 100);
        // ... moves away, and thread 2's new block lands at x and is recorded.
        origins::record(x, o(200));
        origins::record(x + (1 << 30), o(100)); // thread 1 records its new address
        assert_eq!(origins::get(x).origin, 200);
        assert_eq!(origins::take(x).origin, 200);
        assert_eq!(origins::take(x + (1 << 30)).origin, 100);
        assert_eq!(origins::get(x).origin, 0);
    }

    /// The reuses and the huge-page flag come back with the origin.
    #[test]
    fn the_history_comes_back() {
        let x = 0x6544_0000_0000usize;
        let info = Info {
            origin: 7,
            reuses: 1234,
            advice: Advice::NoHuge,
        };
        origins::record(x, info);
        assert_eq!(origins::get(x), info);
        assert_eq!(origins::take(x), info);
        assert_eq!(origins::take(x), Info::default());
    }
}

#[cfg(all(test, target_os = "linux", not(feature = "force-fallback")))]
mod lost_records {
    use super::origins::{self, Info};
    use super::*;

    fn flags(p: usize) -> String {
        let s = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut inside = false;
        for line in s.lines() {
            let first = line.split_whitespace().next().unwrap_or("");
            if let Some((a, b)) = first.split_once('-')
                && let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
            {
                inside = a <= p && p < b;
                continue;
            }
            if inside && line.starts_with("VmFlags:") {
                return line.to_string();
            }
        }
        panic!("not mapped")
    }

    /// A block made huge whose address finds its origins window full has no record: it must
    /// not be kept as "not advised", or a `Never` allocator (or a realloc) would get
    /// `MADV_HUGEPAGE` memory (review).
    #[test]
    fn a_block_whose_record_is_lost_never_gives_a_never_block_huge_advice() {
        let _serial = crate::region::tests::RECYCLER
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        crate::release_cached();
        let dense = RemapAlloc::new();
        let never = RemapAlloc::new().huge_page_policy(HugePages::Never);
        let l8 = Layout::from_size_align(8 << 20, 8).unwrap();
        let before = RemapAlloc::stats().made_huge;
        // SAFETY: blocks of these allocators, written within their layouts and freed once.
        unsafe {
            for r in 0..usize::from(DENSE_REUSES) + 2 {
                let p = dense.alloc(l8);
                p.write_bytes(r as u8 + 1, l8.size());
                dense.dealloc(p, l8);
            }
            assert!(RemapAlloc::stats().made_huge > before, "not made huge");
            let p = dense.alloc(l8);
            let a = p as usize;
            dense.dealloc(p, l8);
            // Other live blocks whose hashes fall on the same window.
            let fakes: Vec<usize> = (1..)
                .map(|k| 0x6600_0000_0000usize + k * 4096)
                .filter(|&z| origins::hash(z) == origins::hash(a))
                .take(16)
                .collect();
            for &z in &fakes {
                origins::record(
                    z,
                    Info {
                        origin: 99,
                        reuses: 0,
                        advice: crate::region::Advice::Default,
                    },
                );
            }
            let p = dense.alloc(l8);
            assert_eq!(p as usize, a);
            dense.dealloc(p, l8);
            let n = never.alloc(l8);
            let f = flags(n as usize);
            never.dealloc(n, l8);
            for &z in &fakes {
                origins::take(z);
            }
            crate::release_cached();
            assert!(
                !f.contains(" hg"),
                "Never block at {:#x} (was {a:#x}): {f}",
                n as usize
            );
        }
    }
}
