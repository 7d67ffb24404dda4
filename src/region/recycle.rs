//! The recycler: mappings of freed buffers kept for the next buffer of about their size.
//!
//! Unmapping a freed buffer gives its pages back to the kernel, and the next buffer faults every
//! page in again (≈2.5 µs a page on a VM: most of the cost of allocating, filling and freeing a
//! large buffer; glibc and mimalloc avoid it by keeping freed memory). So freed regions of
//! [`MIN_KEEP`] to [`MAX_KEEP`] bytes are kept as they are, pages and all, and handed to the next
//! request of about their size.
//!
//! * **Size classes, most recent first.** Class `c` holds regions of `(2^(c-1), 2^c]` pages, in
//!   [`SLOTS`] slots. A request of `n` pages takes the most recently freed kept region that
//!   fits, from its own class or a larger one (its pages are the likeliest to be in the CPU's
//!   caches: measured on mixed sizes, taking the smallest that fits instead cost 1.2-1.6x
//!   mimalloc's CPU time, against 0.9-1.05x), and trims it to `n` pages when it is more than the request may get (an allocator
//!   block: exactly its pages; a vector: at most twice what it asked for). The excess stays kept
//!   right after the block, whatever its size, as old as the region it was cut from.
//! * **Joining.** A region that is kept joins the kept regions right before and after it that
//!   are pieces of the same kernel mapping (`Region::origin`), so a mapping trimmed for smaller
//!   requests is whole again once they come back. Without it, a churn of mixed sizes chopped
//!   the kept mappings into ever smaller pieces, and the largest requests found nothing and
//!   faulted in fresh mappings.
//! * **Growing a smaller one.** When nothing kept is large enough, the largest smaller region is
//!   grown with `mremap` (in place when the addresses after it are free, else moved, never
//!   copied): its pages stay faulted in, only the missing ones are new.
//! * **Growth without faults.** A growing vector may take the first pages of a larger kept
//!   region ([`Fit::Grow`]); the rest stays kept right after it, and the vector takes it over
//!   when it grows ([`claim_after`]), only from the same kernel mapping (`Region::origin`), so
//!   the joined region is still one mapping that `mremap` can grow.
//! * **Lock-free, allocation-free.** A slot is claimed by a compare-exchange (`EMPTY`/`FULL` to
//!   `BUSY`), filled or emptied, and released with a store; a bitmap of the slots that may be
//!   full keeps scans short. No thread ever waits for another, so
//!   a signal or a `fork` in the middle of a call cannot leave anything held: a child that finds
//!   a slot `BUSY` skips it (the mapping in it is leaked in the child). Usable from `GlobalAlloc`.
//! * **Bounded, exactly.** Bytes are counted in `KEPT` *before* a slot is filled and uncounted
//!   only after it is emptied, against a limit of [`DEFAULT_FLOOR`] plus a quarter of the bytes
//!   of live regions, that part capped at 1 GiB (see [`CacheConfig`]). A child forked in the
//!   middle of a `put` may count bytes it never keeps: its limit is that much lower.
//! * **Decay.** A region kept longer than the decay delay (default 1 s) is unmapped. Checked
//!   lazily by later calls, a few regions per call (no call pays for all of them); no
//!   background thread, and no flag a `fork` could leave set.
//!   [`release_cached`](crate::release_cached) unmaps everything kept at once.
//! * **Known zero.** Each kept region records how many of its leading bytes may be non-zero
//!   (its dirty extent); everything after is zero (fresh pages). Zeroing callers write only that.
//! * **Cheap release.** Keeping a region costs a few atomic operations, whatever its size.

use super::{Advice, LIVE_BYTES, Region};
use crate::sys;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering::*};

/// Smallest region kept: 128 KiB (the default heap threshold of vectors and of the allocator).
pub(crate) const MIN_KEEP: usize = 128 << 10;
/// Largest region kept: 4 GiB.
pub(crate) const MAX_KEEP: usize = 4 << 30;
/// Slots per size class.
const SLOTS: usize = 16;
/// Size classes: by pages, `(2^(c-1), 2^c]`, up to 2^20 pages (4 GiB of 4 KiB pages) and one
/// more for larger pages sizes' rounding.
const CLASSES: usize = 22;

/// The fixed part of the limit on kept bytes: 256 MiB. Enough for a few of the buffers whose
/// churn costs most (64 MiB and up: 16 384 faults each), small against the machines that use
/// such buffers; the part that grows with the program is [`CacheConfig::live_fraction`].
pub const DEFAULT_FLOOR: usize = 256 << 20;
/// Regions idle this long are unmapped (milliseconds). One second: longer than the gap between
/// the phases of a program that reuses its buffers, shorter than the time after which an idle
/// VM's host reclaims the memory anyway.
pub const DEFAULT_DECAY_MS: u64 = 1000;

/// The bits of `Slot::meta` below the alignment (which is at least a 4 KiB page): the
/// huge-page advice (bits 0 and 1) and the reuses (bits 2 to 11).
const META_BITS: usize = 0xfff;
/// The most reuses `Slot::meta` holds.
const MAX_REUSES: u16 = (META_BITS >> 2) as u16;

/// Whether a region of advice `a` serves a request for huge pages `huge`: `Some(true)` only
/// ones advised for them, `Some(false)` none advised for them, `None` (`HugePages::Dense`)
/// any but those advised because someone asked (they proved nothing).
fn serves(a: Advice, huge: Option<bool>) -> bool {
    match huge {
        Some(true) => a.is_huge(),
        Some(false) => !a.is_huge(),
        None => a != Advice::Huge,
    }
}

const EMPTY: u8 = 0;
const BUSY: u8 = 1;
const FULL: u8 = 2;

/// One kept region. Its fields are written only by the thread that moved `state` from `EMPTY`
/// to `BUSY`, and taken as a whole only by one that moved it from `FULL` to `BUSY`; others read
/// them as hints (atomics: a racy read is a stale value, never UB).
struct Slot {
    state: AtomicU8,
    addr: AtomicUsize,
    len: AtomicUsize,
    /// Leading bytes that may be non-zero.
    dirty: AtomicUsize,
    /// Alignment of the region (at least a page), with its huge-page advice in bits 0 and 1
    /// (see [`advice_bits`]) and its reuses (`Region::reuses`, saturating) in bits 2 to 11.
    meta: AtomicUsize,
    /// When it was kept (milliseconds of `sys::now_ms`).
    stamp: AtomicU64,
    /// The mapping it is a piece of (see `Region::origin`; 0: unknown).
    origin: AtomicUsize,
    /// When it was freed, in puts ([`SEQ`]): requests take the most recent that fits.
    seq: AtomicU64,
}

#[allow(clippy::declare_interior_mutable_const)]
const NEW_SLOT: Slot = Slot {
    state: AtomicU8::new(EMPTY),
    addr: AtomicUsize::new(0),
    len: AtomicUsize::new(0),
    dirty: AtomicUsize::new(0),
    meta: AtomicUsize::new(0),
    stamp: AtomicU64::new(0),
    origin: AtomicUsize::new(0),
    seq: AtomicU64::new(0),
};

#[allow(clippy::declare_interior_mutable_const)]
const NEW_CLASS: [Slot; SLOTS] = [NEW_SLOT; SLOTS];

static BINS: [[Slot; SLOTS]; CLASSES] = [NEW_CLASS; CLASSES];
/// A bit per slot that may be `FULL` (slot `i` of class `c` is bit `c * SLOTS + i`), 64 to a
/// word: scans look only at those. A bit is set after its slot is stored `FULL` and cleared (by
/// the thread that holds the slot `BUSY`) before it is stored `EMPTY`, so a `FULL` slot's bit
/// is clear only for the moment between the two stores of `fill`; a set bit over a slot that
/// is not `FULL` costs a look.
static OCCUPIED: [AtomicU64; WORDS] = [const { AtomicU64::new(0) }; WORDS];
/// Words of [`OCCUPIED`].
const WORDS: usize = (CLASSES * SLOTS).div_ceil(64);
const _: () = assert!(64 % SLOTS == 0, "a class's bits lie in one word");
/// Bytes in `FULL` slots plus bytes promised to slots being filled.
static KEPT: AtomicUsize = AtomicUsize::new(0);
static FLOOR: AtomicUsize = AtomicUsize::new(DEFAULT_FLOOR);
/// Denominator of the fraction of live bytes added to the limit (0: none).
static LIVE_DIV: AtomicUsize = AtomicUsize::new(4);
static DECAY_MS: AtomicU64 = AtomicU64::new(DEFAULT_DECAY_MS);
static NEXT_DECAY: AtomicU64 = AtomicU64::new(0);
/// 0: not read yet; 1: on; 2: off (`REMAPVEC_CACHE=0` or [`CacheConfig`]).
static ENABLED: AtomicU8 = AtomicU8::new(0);
static HITS: AtomicU64 = AtomicU64::new(0);
static MISSES: AtomicU64 = AtomicU64::new(0);
static DECAYED: AtomicU64 = AtomicU64::new(0);
static GROWN: AtomicU64 = AtomicU64::new(0);
/// Regions freed so far (about: see [`next_seq`]): the order in which kept regions are
/// preferred.
static SEQ: AtomicU64 = AtomicU64::new(0);

/// The next value of [`SEQ`]. A load and a store, not a read-modify-write (half the cost on
/// the allocation path): two threads may get the same number, which only makes their regions
/// equally recent.
fn next_seq() -> u64 {
    let q = SEQ.load(Relaxed) + 1;
    SEQ.store(q, Relaxed);
    q
}
static RELEASED_BYTES: AtomicU64 = AtomicU64::new(0);

/// The recycler's limits, process-wide. Read with [`CacheConfig::current`], change with
/// [`CacheConfig::apply`]. The environment variable `REMAPVEC_CACHE=0` turns the recycler off
/// before the first allocation.
///
/// ```
/// use remapvec::CacheConfig;
/// let before = CacheConfig::current();
/// CacheConfig::current().floor(64 << 20).decay_ms(100).apply();
/// assert_eq!(CacheConfig::current().get_floor(), 64 << 20);
/// before.apply();
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheConfig {
    enabled: bool,
    floor: usize,
    live_fraction_div: usize,
    decay_ms: u64,
}

impl CacheConfig {
    /// The configuration in force now.
    pub fn current() -> Self {
        CacheConfig {
            enabled: enabled(),
            floor: FLOOR.load(Relaxed),
            live_fraction_div: LIVE_DIV.load(Relaxed),
            decay_ms: DECAY_MS.load(Relaxed),
        }
    }

    /// Keep freed regions at all (default `true`). Turning it off releases what is kept.
    pub fn enabled(mut self, on: bool) -> Self {
        self.enabled = on;
        self
    }

    /// The fixed part of the limit on kept bytes (default 256 MiB).
    pub fn floor(mut self, bytes: usize) -> Self {
        self.floor = bytes;
        self
    }

    /// The limit also grows by `1 / div` of the bytes of live regions (default 4: a quarter;
    /// 0: not at all).
    pub fn live_fraction(mut self, div: usize) -> Self {
        self.live_fraction_div = div;
        self
    }

    /// Regions idle for longer than this are unmapped (default 1000 ms).
    pub fn decay_ms(mut self, ms: u64) -> Self {
        self.decay_ms = ms;
        self
    }

    /// The fixed part of the limit.
    pub fn get_floor(&self) -> usize {
        self.floor
    }

    /// The decay delay in milliseconds.
    pub fn get_decay_ms(&self) -> u64 {
        self.decay_ms
    }

    /// Whether freed regions are kept.
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// Puts this configuration in force for the whole process; what is kept beyond the new
    /// limit is released.
    pub fn apply(self) {
        FLOOR.store(self.floor, Relaxed);
        LIVE_DIV.store(self.live_fraction_div, Relaxed);
        DECAY_MS.store(self.decay_ms, Relaxed);
        ENABLED.store(if self.enabled { 1 } else { 2 }, Relaxed);
        if !self.enabled {
            release_all();
        } else {
            while KEPT.load(Relaxed) > limit() && evict_oldest(None) > 0 {}
        }
    }
}

/// What the recycler holds and has done, process-wide; from [`cache_stats`](crate::cache_stats).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Bytes of freed regions kept now (their pages count in the process's RSS).
    pub kept_bytes: usize,
    /// Regions kept now.
    pub kept_regions: usize,
    /// The limit on kept bytes right now.
    pub limit_bytes: usize,
    /// Requests served from a kept region.
    pub hits: u64,
    /// Requests that found none and mapped anew.
    pub misses: u64,
    /// Requests served by growing a smaller kept region with `mremap` (counted in `hits`
    /// too): its pages were reused, only the missing ones are new.
    pub grown: u64,
    /// Regions unmapped because they stayed unused past the decay delay.
    pub decayed: u64,
    /// Bytes given back to the kernel by the recycler (decay, limit, release).
    pub released_bytes: u64,
}

pub(crate) fn stats() -> CacheStats {
    let (mut bytes, mut n) = (0, 0);
    for s in BINS.iter().flatten() {
        if s.state.load(Acquire) == FULL {
            bytes += s.len.load(Relaxed);
            n += 1;
        }
    }
    CacheStats {
        kept_bytes: bytes,
        kept_regions: n,
        limit_bytes: limit(),
        hits: HITS.load(Relaxed),
        misses: MISSES.load(Relaxed),
        grown: GROWN.load(Relaxed),
        decayed: DECAYED.load(Relaxed),
        released_bytes: RELEASED_BYTES.load(Relaxed),
    }
}

fn enabled() -> bool {
    match ENABLED.load(Relaxed) {
        0 => {
            // SAFETY: getenv with a NUL-terminated name; it does not allocate, and the value
            // is read at once.
            let p = unsafe { libc::getenv(c"REMAPVEC_CACHE".as_ptr()) };
            // SAFETY: getenv returns null or a NUL-terminated string.
            let off = !p.is_null() && unsafe { core::ffi::CStr::from_ptr(p) }.to_bytes() == b"0";
            ENABLED.store(if off { 2 } else { 1 }, Relaxed);
            !off
        }
        s => s == 1,
    }
}

/// The part of the limit that grows with live regions is capped here: live bytes are mapped
/// bytes, and a huge reservation that is never touched must not let the recycler hold
/// gigabytes of dirty pages.
const LIVE_PART_MAX: usize = 1 << 30;

fn limit() -> usize {
    let div = LIVE_DIV.load(Relaxed);
    let live = LIVE_BYTES.load(Relaxed).checked_div(div).unwrap_or(0);
    FLOOR.load(Relaxed).saturating_add(live.min(LIVE_PART_MAX))
}

/// The class of a region of `len` bytes (a page multiple): `ceil(log2(pages))`.
fn class(len: usize) -> usize {
    let pages = (len / sys::page_size()).max(1);
    (pages.next_power_of_two().trailing_zeros() as usize).min(CLASSES - 1)
}

/// Where slot `s` is in [`BINS`]: its bit in [`OCCUPIED`] (`word`, `mask`).
fn position(s: &Slot) -> (usize, u64) {
    let i = (s as *const Slot as usize - BINS.as_ptr() as usize) / core::mem::size_of::<Slot>();
    (i / 64, 1 << (i % 64))
}

/// The slots whose bits are set in `m`, bits `from..` of word `w`: hints, each to be checked by
/// its `state`.
fn slots_of(w: usize, mut m: u64) -> impl Iterator<Item = &'static Slot> {
    core::iter::from_fn(move || {
        if m == 0 {
            return None;
        }
        let b = m.trailing_zeros() as usize;
        m &= m - 1;
        Some(&BINS.as_flattened()[w * 64 + b])
    })
}

/// The slots of class `c` whose occupancy bit is set.
fn marked(c: usize) -> impl Iterator<Item = &'static Slot> {
    let first = c * SLOTS;
    let (w, shift) = (first / 64, first % 64);
    let m = OCCUPIED[w].load(Acquire) & (((1u64 << SLOTS) - 1) << shift);
    slots_of(w, m)
}

/// The slots of class `c` and every larger class whose occupancy bit is set.
fn marked_from(c: usize) -> impl Iterator<Item = &'static Slot> {
    let first = c * SLOTS;
    (first / 64..WORDS).flat_map(move |w| {
        let mut m = OCCUPIED[w].load(Acquire);
        if w == first / 64 {
            m &= !0u64 << (first % 64);
        }
        slots_of(w, m)
    })
}

/// The slots of every class whose occupancy bit is set.
fn all_marked() -> impl Iterator<Item = &'static Slot> {
    (0..WORDS).flat_map(|w| slots_of(w, OCCUPIED[w].load(Acquire)))
}

/// How old a kept region is: its place in the order regions were freed and when it was kept.
/// A piece trimmed off a kept region inherits its age.
#[derive(Clone, Copy, Debug)]
struct Age {
    seq: u64,
    stamp: u64,
}

/// The contents of a slot: a kept region.
#[derive(Clone, Copy, Debug)]
struct Kept {
    addr: usize,
    len: usize,
    /// Leading bytes that may be non-zero.
    dirty: usize,
    /// Alignment, with the huge-page advice and the reuses (see `Slot::meta`).
    meta: usize,
    /// See `Region::origin`.
    origin: usize,
    /// See `Slot::seq`.
    seq: u64,
    /// See `Slot::stamp`.
    stamp: u64,
}

impl Kept {
    fn end(&self) -> usize {
        self.addr + self.len
    }

    fn advice(&self) -> Advice {
        Advice::from_bits(self.meta)
    }

    fn reuses(&self) -> u16 {
        ((self.meta & META_BITS) >> 2) as u16
    }

    /// Takes ownership of the kept mapping again as a region.
    ///
    /// # Safety
    /// The caller took `self` out of its slot (or out of a region it owned): nothing else can
    /// reach the mapping.
    unsafe fn into_region(self) -> Option<Region> {
        // SAFETY: per the caller, `addr..addr + len` is a mapping the recycler owned alone, made
        // by a `Region` with alignment `meta & !META_BITS` (its pieces are page-aligned).
        let r = unsafe {
            Region::from_raw_parts(
                NonNull::new(self.addr as *mut u8)?,
                self.len,
                self.meta & !META_BITS,
            )
        };
        Some(
            r.with_origin(self.origin)
                .with_history(self.reuses(), self.advice()),
        )
    }
}

/// The slot's contents as seen now (a consistent value only while the caller holds it `BUSY`).
fn read(s: &Slot) -> Kept {
    Kept {
        addr: s.addr.load(Relaxed),
        len: s.len.load(Relaxed),
        dirty: s.dirty.load(Relaxed),
        meta: s.meta.load(Relaxed),
        origin: s.origin.load(Relaxed),
        seq: s.seq.load(Relaxed),
        stamp: s.stamp.load(Relaxed),
    }
}

/// Empties slot `s`, which the caller moved from `FULL` to `BUSY`, and returns what it held.
/// The bytes stay counted in `KEPT`.
fn empty(s: &Slot) -> Kept {
    let k = read(s);
    let (w, bit) = position(s);
    // Cleared while we hold the slot, so never after a later filler's set.
    OCCUPIED[w].fetch_and(!bit, Relaxed);
    s.state.store(EMPTY, Release);
    k
}

/// Fills slot `s`, which the caller moved from `EMPTY` to `BUSY`, with `k`.
fn fill(s: &Slot, k: Kept) {
    s.addr.store(k.addr, Relaxed);
    s.len.store(k.len, Relaxed);
    s.dirty.store(k.dirty.min(k.len), Relaxed);
    s.meta.store(k.meta, Relaxed);
    s.stamp.store(k.stamp, Relaxed);
    s.seq.store(k.seq, Relaxed);
    s.origin.store(k.origin, Relaxed);
    s.state.store(FULL, Release);
    let (w, bit) = position(s);
    OCCUPIED[w].fetch_or(bit, Release);
}

/// Claims the slot `s` (seen `FULL`) and empties it if `fits` still holds once claimed.
fn claim_slot(s: &Slot, fits: impl Fn(&Kept) -> bool) -> Option<Kept> {
    if s.state
        .compare_exchange(FULL, BUSY, Acquire, Relaxed)
        .is_err()
    {
        return None;
    }
    if !fits(&read(s)) {
        s.state.store(FULL, Release);
        return None;
    }
    Some(empty(s))
}

/// Unmaps a region taken out of a slot and uncounts it.
fn release(k: Kept) {
    // SAFETY: the recycler owned this mapping alone (`put` took it over from a `Region`, which
    // owned it, or joined adjacent ranges it owned) and the caller just emptied its slot: no
    // one else can reach it.
    let _ = unsafe { sys::unmap(k.addr as *mut u8, k.len) };
    KEPT.fetch_sub(k.len, Release);
    RELEASED_BYTES.fetch_add(k.len as u64, Relaxed);
}

/// Unmaps the oldest kept region (of class `only`, or of any). Returns the system calls made:
/// 0 when there was none to claim.
fn evict_oldest(only: Option<usize>) -> u32 {
    for _ in 0..4 {
        let oldest = |it: &mut dyn Iterator<Item = &'static Slot>| {
            it.filter(|s| s.state.load(Relaxed) == FULL)
                .min_by_key(|s| s.stamp.load(Relaxed))
        };
        let Some(s) = (match only {
            Some(c) => oldest(&mut marked(c)),
            None => oldest(&mut all_marked()),
        }) else {
            return 0;
        };
        if let Some(k) = claim_slot(s, |_| true) {
            release(k);
            return 1;
        }
    }
    0
}

/// Regions unmapped by decay in one call at most, so that no unrelated allocation pays for
/// unmapping everything that expired at once (each further call takes the next few).
const DECAY_BATCH: usize = 2;

/// Unmaps regions that have been idle past the decay delay: at most [`DECAY_BATCH`] per call,
/// and a pass at most every `delay / 8` milliseconds (sooner while expired regions remain).
/// A pass is claimed by a compare-exchange on its deadline: no flag that a `fork` in the middle
/// of a pass could leave set in the child. Returns the system calls made.
fn decay(now: u64) -> u32 {
    let next = NEXT_DECAY.load(Relaxed);
    if now < next {
        return 0;
    }
    let delay = DECAY_MS.load(Relaxed);
    if NEXT_DECAY
        .compare_exchange(next, now + (delay / 8).max(1), Relaxed, Relaxed)
        .is_err()
    {
        return 0; // another thread runs this pass
    }
    let mut calls = 0;
    for s in all_marked() {
        if calls as usize >= DECAY_BATCH {
            // More may have expired: look again at the next call.
            NEXT_DECAY.store(now, Relaxed);
            break;
        }
        if s.state.load(Relaxed) == FULL
            && s.stamp.load(Relaxed).saturating_add(delay) <= now
            && s.state
                .compare_exchange(FULL, BUSY, Acquire, Relaxed)
                .is_ok()
        {
            if s.stamp.load(Relaxed).saturating_add(delay) <= now {
                release(empty(s));
                DECAYED.fetch_add(1, Relaxed);
                calls += 1;
            } else {
                s.state.store(FULL, Release);
            }
        }
    }
    calls
}

/// Unmaps everything kept. Returns the bytes given back.
pub(crate) fn release_all() -> usize {
    let mut bytes = 0;
    // Every slot, not only the marked ones: nothing may stay behind.
    for s in BINS.iter().flatten() {
        if s.state.load(Relaxed) == FULL
            && let Some(k) = claim_slot(s, |_| true)
        {
            release(k);
            bytes += k.len;
        }
    }
    bytes
}

/// Keeps `region` (its first `dirty` bytes may be non-zero, the rest is zero) for a later
/// request, or unmaps it, with the huge-page advice it has (`Region::advice`, which says what
/// the kernel was told: a label the kernel never got would let pieces of two kernel mappings
/// join, and their growth copy). Returns the system calls made.
pub(crate) fn put(region: Region, dirty: usize) -> u32 {
    keep(region, dirty, None)
}

/// Keeps `region`, joined with the kept regions right before and after it (see
/// [`join_neighbours`]). `piece`: `Some(age)` for the excess trimmed off a larger kept region
/// (freed `seq`-th), kept whatever its size, so that it joins its neighbours again once they
/// come back, and as old as the region it was cut from; `None` for a freed region (the most
/// recent now; unmapped below [`MIN_KEEP`]).
fn keep(region: Region, dirty: usize, piece: Option<Age>) -> u32 {
    let len = region.len();
    if len > MAX_KEEP || (len < MIN_KEEP && piece.is_none()) || !enabled() {
        drop(region);
        return 1;
    }
    let now = sys::now_ms();
    let mut calls = decay(now);
    // Count the bytes first, evicting the oldest regions while over the limit.
    LIVE_BYTES.fetch_sub(len, Relaxed);
    let lim = limit();
    let mut kept = KEPT.load(Relaxed);
    loop {
        if kept + len <= lim {
            match KEPT.compare_exchange_weak(kept, kept + len, Acquire, Relaxed) {
                Ok(_) => break,
                Err(k) => kept = k,
            }
            continue;
        }
        // Over the limit (which also falls when live regions are freed): evict the oldest
        // while that helps, so that every put ends within the limit.
        if kept > 0 && (kept > lim || len <= lim) {
            let e = evict_oldest(None);
            if e > 0 {
                calls += e;
                kept = KEPT.load(Relaxed);
                continue;
            }
        }
        LIVE_BYTES.fetch_add(len, Relaxed);
        drop(region);
        return calls + 1;
    }
    // Alignments of at least a page leave the bits of `META_BITS` free.
    let meta = region.align.max(sys::page_size().max(META_BITS + 1))
        | usize::from(region.reuses.min(MAX_REUSES)) << 2
        | region.advice.bits();
    let origin = region.origin;
    let (ptr, len) = region.into_raw_parts();
    let mut k = Kept {
        addr: ptr.as_ptr() as usize,
        len,
        dirty: dirty.min(len),
        meta,
        origin,
        seq: piece.map_or_else(next_seq, |a| a.seq),
        stamp: piece.map_or(now, |a| a.stamp),
    };
    join_neighbours(&mut k);
    calls + store(k)
}

/// Joins the kept regions of the same mapping (`Region::origin`, known) that end where `k`
/// starts or start where it ends (with the same huge-page advice) to `k`, emptying their
/// slots. Their bytes stay counted in `KEPT`.
///
/// Both are ranges the recycler owns, next to each other: the joined range is ours. Being
/// pieces of one kernel mapping that nothing has split (a piece unmapped, moved or shrunk
/// leaves a gap, and a moved one gets a new origin), the joined region is one mapping again,
/// which `mremap` can grow. Adjacent ranges of different mappings are never joined: the kernel
/// may keep them as two mappings, and `mremap` fails on a range that spans two (a block made
/// of such pieces would then be copied when it grows).
fn join_neighbours(k: &mut Kept) {
    let advice = k.advice();
    if k.origin == 0 {
        return;
    }
    for s in all_marked() {
        let adjacent = |o: &Kept| {
            o.origin == k.origin
                && o.advice() == advice
                && (o.end() == k.addr || o.addr == k.end())
                && o.len <= MAX_KEEP - k.len
        };
        // A racy look first: claiming every kept slot would hide it from other threads.
        if !adjacent(&read(s)) {
            continue;
        }
        let Some(o) = claim_slot(s, adjacent) else {
            continue;
        };
        if o.end() == k.addr {
            // `o` comes first: its dirty extent leads unless ours is not empty.
            k.dirty = if k.dirty > 0 {
                o.len + k.dirty
            } else {
                o.dirty
            };
            k.addr = o.addr;
            k.meta = o.meta;
        } else if o.dirty > 0 {
            k.dirty = k.len + o.dirty;
        }
        k.len += o.len;
        // A region of another shape: its reuses start again.
        k.meta &= !(META_BITS & !3);
        // The joined region is as old as its oldest part: a region idle past the decay delay
        // still decays when pieces cut from it keep coming back.
        k.stamp = k.stamp.min(o.stamp);
    }
}

/// Puts `k` (counted in `KEPT`) in a slot of its class, evicting the oldest of the class when
/// all are taken, or unmaps it. Returns the system calls made.
fn store(k: Kept) -> u32 {
    let c = class(k.len);
    let mut calls = 0;
    for _ in 0..=SLOTS {
        if let Some(s) = BINS[c].iter().find(|s| {
            s.state.load(Relaxed) == EMPTY
                && s.state
                    .compare_exchange(EMPTY, BUSY, Acquire, Relaxed)
                    .is_ok()
        }) {
            fill(s, k);
            return calls;
        }
        let e = evict_oldest(Some(c));
        if e == 0 {
            break;
        }
        calls += e;
    }
    release(k);
    calls + 1
}

/// How closely a kept region must fit a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fit {
    /// Exactly the request rounded up to pages (an allocator block: its size is its layout's).
    Exact,
    /// At least the request and at most twice it (a vector's requested capacity).
    Near,
    /// As `Near`; taken from the start of a larger kept region, whose rest stays kept right
    /// after it: a growing vector takes it over later without a system call
    /// (see [`claim_after`]).
    Grow,
}

/// A kept region of at least `len` bytes (rounded up to pages) aligned to `align`, with the
/// huge-page advice `huge` (`None`: either): exactly `len` rounded up to pages when `exact`, else at most twice
/// that. Returns the region, how many of its leading bytes may be non-zero, and the system
/// calls made.
pub(crate) fn take(
    len: usize,
    align: usize,
    huge: Option<bool>,
    exact: bool,
) -> Option<(Region, usize, u32)> {
    take_for(
        len,
        align,
        huge,
        if exact { Fit::Exact } else { Fit::Near },
        usize::MAX,
    )
}

/// Claims the slot `s` (seen `FULL`) if `fits` still holds once claimed: returns its region
/// (counted as live again) and its dirty extent.
fn claim(s: &Slot, fits: impl Fn(&Kept) -> bool) -> Option<(Region, usize, Age)> {
    let k = claim_slot(s, fits)?;
    KEPT.fetch_sub(k.len, Release);
    LIVE_BYTES.fetch_add(k.len, Relaxed);
    HITS.fetch_add(1, Relaxed);
    // SAFETY: we emptied its slot: the mapping is ours alone now.
    let mut region = unsafe { k.into_region() }?;
    region.reuses = region.reuses.saturating_add(1);
    Some((
        region,
        k.dirty,
        Age {
            seq: k.seq,
            stamp: k.stamp,
        },
    ))
}

/// A kept region for a request of `len` bytes (rounded up to pages) aligned to `align`, with
/// the huge-page advice `huge` (`None`: either), fitting as `fit` says, of which at most `max_dirty` leading bytes
/// may be non-zero. Returns the region, how many of its leading bytes may be non-zero, and the
/// system calls made.
///
/// The most recently kept region that fits is taken (from the request's class or a larger
/// one), and trimmed to the request when it is larger than allowed: the excess stays kept
/// right after it, and joins the region again when the region comes back.
pub(crate) fn take_for(
    len: usize,
    align: usize,
    huge: Option<bool>,
    fit: Fit,
    max_dirty: usize,
) -> Option<(Region, usize, u32)> {
    if !enabled() {
        return None;
    }
    let n = sys::round_to_page(len)?;
    if !(MIN_KEEP / 2..=MAX_KEEP).contains(&n) {
        return None;
    }
    let mut calls = decay(sys::now_ms());
    let fits = |k: &Kept| {
        k.len >= n
            && k.addr.is_multiple_of(align)
            && serves(k.advice(), huge)
            && k.dirty.min(n) <= max_dirty
    };
    for _ in 0..SLOTS {
        // Pick by the (possibly stale) contents, then claim and check again.
        let Some(s) = marked_from(class(n))
            .filter(|s| s.state.load(Acquire) == FULL && fits(&read(s)))
            .max_by_key(|s| s.seq.load(Relaxed))
        else {
            break;
        };
        let Some((mut region, dirty, age)) = claim(s, fits) else {
            continue;
        };
        if region.align < align {
            region.align = align;
        }
        let l = region.len();
        let keep = if fit == Fit::Exact || l > 2 * n { n } else { l };
        if keep < l {
            // Reuses count a region handed out as it is, time after time: a piece cut from
            // a larger one starts again (and so does the rest).
            region.reuses = 0;
            // Hand the tail back: it is a range of the mapping we own.
            if let Some(tail) = region.split_off(keep) {
                calls += self::keep(tail, dirty.saturating_sub(keep), Some(age));
            }
        }
        return Some((region, dirty.min(keep), calls));
    }
    // None is large enough: grow the largest smaller one with `mremap` (its pages stay
    // faulted in; only the missing ones are new), rather than map all of it anew. Not one
    // advised for huge pages for a request that did not ask for them: the advice would cover
    // the grown part, which its new user may write sparsely (it proved nothing).
    let growable = |k: &Kept| {
        k.len < n
            && k.len >= MIN_KEEP
            && fits(&Kept { len: n, ..*k })
            && (huge.is_some() || !k.advice().is_huge())
    };
    if let Some(s) = all_marked()
        .filter(|s| s.state.load(Acquire) == FULL && growable(&read(s)))
        .max_by_key(|s| s.len.load(Relaxed))
        && let Some((mut region, dirty, age)) = claim(s, growable)
    {
        region.reuses = 0;
        // A move must give the request's alignment, not the kept region's.
        let kept_align = region.align;
        region.align = kept_align.max(align);
        let (grown, c) = region.grow_by_remap(n);
        calls += c;
        if grown {
            GROWN.fetch_add(1, Relaxed);
            return Some((region, dirty, calls));
        }
        HITS.fetch_sub(1, Relaxed);
        // The caller maps anew: what this costs is in that count.
        region.align = kept_align;
        let _ = keep(region, dirty, Some(age));
    }
    MISSES.fetch_add(1, Relaxed);
    None
}

/// The kept pages that start at `end` and belong to the same mapping (`origin`, non-zero) with
/// the same huge-page advice, if there are at least `need` bytes of them: returns the first
/// `need` bytes (rounded up to pages) as a region, how many of its leading bytes may be
/// non-zero, and the system calls made. The rest stays kept.
///
/// Being pieces of one kernel mapping, a region and the piece after it form one mapping again
/// when joined: it can still grow and shrink with `mremap`.
pub(crate) fn claim_after(
    end: usize,
    origin: usize,
    advice: Advice,
    need: usize,
) -> Option<(Region, usize, u32)> {
    if origin == 0 || !enabled() {
        return None;
    }
    let need = sys::round_to_page(need)?;
    let fits =
        |k: &Kept| k.addr == end && k.origin == origin && k.len >= need && k.advice() == advice;
    let s = all_marked().find(|s| s.state.load(Acquire) == FULL && fits(&read(s)))?;
    let (mut region, dirty, age) = claim(s, fits)?;
    region.reuses = 0;
    let mut calls = 0;
    if let Some(tail) = region.split_off(need) {
        calls += keep(tail, dirty.saturating_sub(need), Some(age));
    }
    Some((region, dirty.min(need), calls))
}

/// The kept region that starts at `addr`, if any: `(len, dirty, origin)`. For tests.
#[cfg(all(test, target_os = "linux", not(feature = "force-fallback")))]
pub(crate) fn kept_at(addr: usize) -> Option<(usize, usize, usize)> {
    BINS.iter()
        .flatten()
        .filter(|s| s.state.load(Acquire) == FULL)
        .map(read)
        .find(|k| k.addr == addr)
        .map(|k| (k.len, k.dirty, k.origin))
}
