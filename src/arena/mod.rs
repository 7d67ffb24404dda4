//! `PageArena`: page-granular regions behind generation-checked handles, all inside one
//! reserved address range that the arena owns: the handle table and space management live
//! here; growth by moving and whole-arena relocation in `relocate.rs`; what the arena does
//! after a failed or interrupted kernel call (reclaiming vacated ranges, fences) in
//! `repair.rs`; compaction by multi-mapping `mremap` in `compact.rs`; `SharedArena` in
//! `shared.rs`.
//!
//! # Ownership
//! A range of the arena is the arena's only while it holds a mapping there that it made and
//! that nothing could have replaced since. Regions are committed (`mprotect`) and decommitted
//! (`MADV_DONTNEED` + `mprotect`) in place, which never unmaps; a range that a move vacated is
//! the arena's again only once a `MAP_FIXED_NOREPLACE` over it succeeded, else it becomes a
//! fence: never mapped over, moved, unmapped or handed out (see `repair.rs`).

mod compact;
mod free;
mod relocate;
mod repair;
mod shared;
#[cfg(test)]
mod tests;

use crate::stats::GrowStats;
use crate::sys::{self, Errno};
use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};
use free::{FreeList, RangeSet};
use std::collections::BTreeMap;

pub use compact::{CompactReport, CostModel};
pub use shared::SharedArena;

/// A handle to a region of a [`PageArena`]: `Copy`, 16 bytes, and checked on every use.
///
/// It names the arena that made it, a slot, and the slot's generation. A handle whose region
/// was freed (even if the slot was reused since), or that comes from another arena, is
/// answered with `None` or [`ArenaError::InvalidId`]; it never reaches another region's bytes.
/// Arenas are numbered by a 64-bit counter, so no two arenas of a process ever share a number.
///
/// ```
/// use remapvec::PageArena;
/// let mut arena = PageArena::new();
/// let id = arena.alloc(100)?;
/// arena.free(id)?;
/// let again = arena.alloc(100)?; // may reuse the slot, with a new generation
/// assert!(arena.get(id).is_none());
/// assert!(arena.get(again).is_some());
/// # Ok::<(), remapvec::ArenaError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RegionId {
    arena: u64,
    index: u32,
    generation: u32,
}

impl fmt::Debug for RegionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "RegionId(arena {}, slot {}, generation {})",
            self.arena, self.index, self.generation
        )
    }
}

/// What went wrong in a [`PageArena`] operation. After any error the arena is consistent:
/// every live region keeps its bytes and stays reachable through its id.
#[derive(Debug)]
#[non_exhaustive]
pub enum ArenaError {
    /// The id was freed, or belongs to another arena.
    InvalidId(RegionId),
    /// The size asked for does not fit the address space (or `isize::MAX`).
    CapacityOverflow {
        /// Bytes asked for.
        requested: usize,
    },
    /// The alignment is not a power of two, or too large for the address space.
    InvalidAlign(usize),
    /// The region was cut in two by a move that the kernel refused both to finish and to
    /// undo (it takes two refusals in a row, e.g. at `vm.max_map_count`); its bytes cannot be
    /// handed out as one slice any more. It can still be freed.
    Broken(RegionId),
    /// `grow` to a shorter or `shrink` to a longer length.
    InvalidLength {
        /// The region's length.
        len: usize,
        /// The length asked for.
        requested: usize,
    },
    /// A system call failed; nothing was lost.
    Os {
        /// What the arena was doing: `"mmap"`, `"mremap"`, `"re-reserve"`, ...
        op: &'static str,
        /// The OS error.
        error: std::io::Error,
    },
}

impl ArenaError {
    fn os(op: &'static str, e: Errno) -> Self {
        ArenaError::Os {
            op,
            error: e.to_io(),
        }
    }

    /// The OS error number, for [`ArenaError::Os`].
    ///
    /// ```
    /// use remapvec::{ArenaError, PageArena};
    /// let mut arena = PageArena::new();
    /// let err = arena.alloc(usize::MAX).unwrap_err();
    /// assert!(matches!(err, ArenaError::CapacityOverflow { .. }));
    /// assert_eq!(err.os_error(), None);
    /// ```
    pub fn os_error(&self) -> Option<i32> {
        match self {
            ArenaError::Os { error, .. } => error.raw_os_error(),
            _ => None,
        }
    }
}

impl fmt::Display for ArenaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArenaError::InvalidId(id) => write!(f, "{id:?} is freed or from another arena"),
            ArenaError::CapacityOverflow { requested } => {
                write!(f, "{requested} bytes do not fit the address space")
            }
            ArenaError::InvalidAlign(a) => {
                write!(f, "alignment {a} is not a power of two or too large")
            }
            ArenaError::Broken(id) => write!(
                f,
                "{id:?} was cut in two by a move the kernel refused to finish or undo"
            ),
            ArenaError::InvalidLength { len, requested } => write!(
                f,
                "cannot resize a region of {len} bytes to {requested} bytes in this direction"
            ),
            ArenaError::Os { op, error } => write!(f, "{op} failed: {error}"),
        }
    }
}

impl std::error::Error for ArenaError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ArenaError::Os { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// How a [`PageArena`] behaves: initial reservation, the multi-mapping move, the cost model
/// that picks copy or remap in [`PageArena::compact`].
///
/// ```
/// use remapvec::{ArenaOptions, PageArena};
/// // Force one mremap per region (what kernels before 6.17 can do), e.g. to compare.
/// let arena = PageArena::with_options(ArenaOptions::new().multi_mapping_move(false));
/// assert!(!arena.options().is_multi_mapping_move());
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ArenaOptions {
    initial_capacity: usize,
    multi_mapping_move: bool,
    cost: CostModel,
    warm_fraction: f64,
    warm_max_piece: usize,
}

impl Default for ArenaOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl ArenaOptions {
    /// Defaults: 64 MiB reserved at first use, the multi-mapping move where the kernel has it
    /// ([`sys::features`]), the measured [`CostModel::default`].
    pub fn new() -> Self {
        ArenaOptions {
            initial_capacity: 64 << 20,
            multi_mapping_move: sys::features().multi_mapping_move,
            cost: CostModel::default(),
            warm_fraction: 0.5,
            warm_max_piece: 256 << 10,
        }
    }

    /// Address space to reserve at the first allocation (rounded up to pages). Reserving costs
    /// no memory; the arena doubles it when full.
    pub fn initial_capacity(mut self, bytes: usize) -> Self {
        self.initial_capacity = bytes;
        self
    }

    /// Whether to move several mappings with one `mremap` (Linux 6.17+). `true` on a kernel
    /// without it is ignored; `false` makes one call per region, as on older kernels.
    pub fn multi_mapping_move(mut self, on: bool) -> Self {
        self.multi_mapping_move = on && sys::features().multi_mapping_move;
        self
    }

    /// The cost model `compact` uses to pick copy or remap per run of regions.
    pub fn cost_model(mut self, cost: CostModel) -> Self {
        self.cost = cost;
        self
    }

    /// Warm holes: freed pages the arena keeps committed (read-write, as they are) instead of
    /// giving them back at once, so that an allocation or a growth there needs no system call
    /// and no page fault, and [`compact`](PageArena::compact) can slide small regions into
    /// them with a plain `memmove`. At most `fraction` of the live regions' mapped bytes stay
    /// warm (default 0.5: the resident memory of the arena stays below 1.5 times its live
    /// pages); past that, the highest warm pages are given back first (low addresses are
    /// where compaction packs regions). `0.0` gives every freed page back at once. See also
    /// [`warm_max_piece`](Self::warm_max_piece) and [`PageArena::release_warm`].
    ///
    /// ```
    /// use remapvec::{ArenaOptions, PageArena};
    /// let mut arena = PageArena::with_options(ArenaOptions::new().warm_holes(0.0));
    /// let a = arena.alloc(4096)?;
    /// arena.free(a)?;
    /// assert_eq!(arena.warm_bytes(), 0);
    /// # Ok::<(), remapvec::ArenaError>(())
    /// ```
    pub fn warm_holes(mut self, fraction: f64) -> Self {
        self.warm_fraction = if fraction.is_finite() {
            fraction.max(0.0)
        } else {
            0.0
        };
        self
    }

    /// Only pieces of at most this many bytes (a freed region, a shrunk tail) are kept warm;
    /// larger ones are given back at once, because compaction remaps them (moving page tables
    /// costs the same onto given-back pages) and copying them is never cheaper. Default
    /// 256 KiB: below it, copying into warm memory beats one `mremap` by the default
    /// [`CostModel`].
    pub fn warm_max_piece(mut self, bytes: usize) -> Self {
        self.warm_max_piece = bytes;
        self
    }

    /// See [`ArenaOptions::warm_holes`].
    pub fn get_warm_holes(&self) -> f64 {
        self.warm_fraction
    }

    /// See [`ArenaOptions::warm_max_piece`].
    pub fn get_warm_max_piece(&self) -> usize {
        self.warm_max_piece
    }

    /// See [`ArenaOptions::initial_capacity`].
    pub fn get_initial_capacity(&self) -> usize {
        self.initial_capacity
    }

    /// See [`ArenaOptions::multi_mapping_move`].
    pub fn is_multi_mapping_move(&self) -> bool {
        self.multi_mapping_move
    }

    /// See [`ArenaOptions::cost_model`].
    pub fn get_cost_model(&self) -> CostModel {
        self.cost
    }
}

/// Counters of a [`PageArena`]: how regions grew, how the arena's own range grew.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ArenaStats {
    /// Region grows: in place (pages after it were free), moved (remapped elsewhere in the
    /// arena), copied (portable backend).
    pub regions: GrowStats,
    /// Growth of the arena's reserved range: in place, or moved with all its mappings.
    pub arena: GrowStats,
    /// Compactions run.
    pub compactions: u64,
}

/// A live region. Invariant: `off` and `mapped` are page multiples, `len <= mapped`, the
/// address `base + off` is a multiple of `align` (the address, not the offset: the base is
/// only page-aligned in general); `[off, off + mapped)` is read-write memory inside the arena
/// (nothing when `mapped == 0`), and no other region, hole or fence overlaps it. A broken
/// region has no pages in `by_off`: its ranges are fences.
#[derive(Clone, Copy, Debug)]
struct Entry {
    off: usize,
    len: usize,
    mapped: usize,
    align: usize,
    /// A move cut this region in two and the kernel refused both to finish and to undo it
    /// (or a whole-arena relocation could not bring it back): every range that held its pages
    /// is a fence now, and it is no longer in `by_off`. Its bytes are not handed out (`get` is
    /// `None`), it is never moved or resized; `free` forgets it (its pages stay fenced:
    /// leaked, never touched).
    broken: bool,
}

#[derive(Debug)]
struct Slot {
    generation: u32,
    entry: Option<Entry>,
}

/// The next arena's number: 64 bits, so that it never wraps in the life of a process and a
/// `RegionId` can never name another arena's region.
static NEXT_ARENA: AtomicU64 = AtomicU64::new(1);

/// Page-granular regions behind stable [`RegionId`]s, in one reserved address range.
///
/// Every region lives inside the arena's reservation (a `PROT_NONE`, `MAP_NORESERVE` range
/// that costs no memory). Freed pages go back to being reservation in place, never unmapped,
/// so no other mapping of the process lands inside the arena and the arena's moves
/// (`MREMAP_FIXED`) only ever replace its own pages. Where a move vacates a range, the arena
/// takes it back with `MAP_FIXED_NOREPLACE`; if some other thread mapped there in the
/// meantime, that range is left alone for good (a fence), never reused or unmapped.
///
/// * [`grow`](Self::grow) extends a region in place when the pages after it are free, else
///   moves it (its page tables, not its bytes) to free space in the arena.
/// * When the arena is full it grows its range in place, or moves all its mappings at once to
///   a larger range; ids stay valid, addresses change (which `&mut self` makes safe).
/// * [`compact`](Self::compact) slides live regions together, closing holes, with one
///   `mremap` per run of adjacent regions on Linux 6.17+ (one per region before).
///
/// # Mappings
/// The kernel limits mappings per process (`vm.max_map_count`, 65530 by default). A region
/// costs at most two: its own, and the split of the reservation around it. Regions allocated
/// one after another in free space merge into one mapping; after a move a region stays a
/// mapping of its own. 30 000 scattered regions are therefore the practical ceiling of one
/// process with default settings.
///
/// ```
/// use remapvec::PageArena;
/// let mut arena = PageArena::new();
/// let a = arena.alloc(10_000)?;
/// let b = arena.alloc(3 << 20)?;
/// arena.get_mut(a).unwrap()[..5].copy_from_slice(b"hello");
/// arena.grow(a, 64 << 20)?; // moves or extends, never copies
/// assert_eq!(&arena.get(a).unwrap()[..5], b"hello");
/// arena.free(b)?;
/// let report = arena.compact()?;
/// assert_eq!(arena.fragmentation(), 0.0);
/// println!("{report:?}");
/// # Ok::<(), remapvec::ArenaError>(())
/// ```
///
/// A slice borrowed from the arena cannot live across a call that may move regions:
///
/// ```compile_fail
/// use remapvec::PageArena;
/// let mut arena = PageArena::new();
/// let id = arena.alloc(4096)?;
/// let bytes = arena.get(id).unwrap();
/// arena.compact()?; // error: `arena` is borrowed by `bytes`
/// println!("{}", bytes[0]);
/// # Ok::<(), remapvec::ArenaError>(())
/// ```
pub struct PageArena {
    /// Start of the reservation (page-aligned); dangling while `cap == 0`.
    base: *mut u8,
    /// Bytes reserved. Every page of `[base, base + cap)` is a live region's page or a hole's
    /// page (both mappings the arena made and still holds), or a fence's. Between a move and
    /// the `MAP_FIXED_NOREPLACE` that takes its vacated source back (a few instructions
    /// later, inside one `&mut self` method), that source is neither: it is not the arena's
    /// and nothing is done to it but that `MAP_FIXED_NOREPLACE`.
    cap: usize,
    id: u64,
    slots: Vec<Slot>,
    free_slots: Vec<u32>,
    /// Live regions with pages, by offset.
    by_off: BTreeMap<usize, u32>,
    /// Free space of `[0, cap)`: neither a region's nor a fence's.
    holes: FreeList,
    /// Warm holes: the parts of `holes` that are committed read-write pages of the arena
    /// (freed pages kept as they are, see [`ArenaOptions::warm_holes`]); the rest of `holes`
    /// is `PROT_NONE` reservation. Always inside `holes`, so just as much the arena's own.
    warm: RangeSet,
    /// Ranges inside the arena that are not the arena's, or not provably so: a vacated range
    /// some other code mapped before the arena could take it back, a range a failed call may
    /// have released, the pages of a broken region. Never mapped over, moved, unmapped or
    /// handed out (see `repair.rs`); disjoint, not touching merged. Almost always empty.
    fences: BTreeMap<usize, usize>,
    live: usize,
    live_bytes: usize,
    mapped_bytes: usize,
    opts: ArenaOptions,
    stats: ArenaStats,
}

// SAFETY: the arena owns its mappings exclusively (like a `Vec<u8>` owns its buffer); the raw
// base pointer is never shared outside borrows of `self`.
unsafe impl Send for PageArena {}
// SAFETY: `&PageArena` only reads region bytes (`get`, `iter`); every mutation takes
// `&mut self`.
unsafe impl Sync for PageArena {}

impl Default for PageArena {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for PageArena {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PageArena")
            .field("regions", &self.live)
            .field("live_bytes", &self.live_bytes)
            .field("reserved_bytes", &self.cap)
            .field("holes", &self.holes.count())
            .finish()
    }
}

impl PageArena {
    /// An empty arena. Reserves nothing until the first allocation.
    ///
    /// ```
    /// let arena = remapvec::PageArena::new();
    /// assert_eq!(arena.len(), 0);
    /// assert_eq!(arena.reserved_bytes(), 0);
    /// ```
    pub fn new() -> Self {
        Self::with_options(ArenaOptions::new())
    }

    /// An empty arena with options.
    ///
    /// ```
    /// use remapvec::{ArenaOptions, PageArena};
    /// let mut arena = PageArena::with_options(ArenaOptions::new().initial_capacity(1 << 30));
    /// arena.alloc(1)?;
    /// assert!(arena.reserved_bytes() >= 1 << 30);
    /// # Ok::<(), remapvec::ArenaError>(())
    /// ```
    pub fn with_options(opts: ArenaOptions) -> Self {
        PageArena {
            base: core::ptr::dangling_mut(),
            cap: 0,
            id: NEXT_ARENA.fetch_add(1, Ordering::Relaxed),
            slots: Vec::new(),
            free_slots: Vec::new(),
            by_off: BTreeMap::new(),
            holes: FreeList::default(),
            warm: RangeSet::default(),
            fences: BTreeMap::new(),
            live: 0,
            live_bytes: 0,
            mapped_bytes: 0,
            opts,
            stats: ArenaStats::default(),
        }
    }

    /// The options the arena was made with.
    ///
    /// ```
    /// let arena = remapvec::PageArena::new();
    /// assert_eq!(arena.options().get_initial_capacity(), 64 << 20);
    /// ```
    pub fn options(&self) -> &ArenaOptions {
        &self.opts
    }

    /// Number of live regions.
    ///
    /// ```
    /// let mut arena = remapvec::PageArena::new();
    /// arena.alloc(1)?;
    /// assert_eq!(arena.len(), 1);
    /// # Ok::<(), remapvec::ArenaError>(())
    /// ```
    pub fn len(&self) -> usize {
        self.live
    }

    /// Whether there are no live regions.
    ///
    /// ```
    /// assert!(remapvec::PageArena::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Sum of the live regions' lengths.
    ///
    /// ```
    /// let mut arena = remapvec::PageArena::new();
    /// arena.alloc(10)?;
    /// arena.alloc(20)?;
    /// assert_eq!(arena.live_bytes(), 30);
    /// # Ok::<(), remapvec::ArenaError>(())
    /// ```
    pub fn live_bytes(&self) -> usize {
        self.live_bytes
    }

    /// Bytes of memory mapped for live regions (their lengths rounded up to pages).
    ///
    /// ```
    /// let mut arena = remapvec::PageArena::new();
    /// arena.alloc(10)?;
    /// assert_eq!(arena.mapped_bytes(), remapvec::sys::page_size());
    /// # Ok::<(), remapvec::ArenaError>(())
    /// ```
    pub fn mapped_bytes(&self) -> usize {
        self.mapped_bytes
    }

    /// Bytes of warm holes: freed pages the arena keeps committed for reuse (see
    /// [`ArenaOptions::warm_holes`]).
    ///
    /// ```
    /// let mut arena = remapvec::PageArena::new();
    /// let a = arena.alloc(4096)?;
    /// let _b = arena.alloc(64 << 10)?; // live: 64 KiB, so up to 32 KiB stay warm
    /// arena.free(a)?;
    /// assert_eq!(arena.warm_bytes(), 4096);
    /// let c = arena.alloc(4096)?; // reuses the warm page: no system call, reads as zero
    /// assert!(arena.get(c).unwrap().iter().all(|&b| b == 0));
    /// assert_eq!(arena.warm_bytes(), 0);
    /// arena.free(c)?;
    /// arena.release_warm();
    /// assert_eq!(arena.warm_bytes(), 0);
    /// # Ok::<(), remapvec::ArenaError>(())
    /// ```
    pub fn warm_bytes(&self) -> usize {
        self.warm.total()
    }

    /// Gives every warm page back to the kernel now (they stay the arena's reservation).
    pub fn release_warm(&mut self) {
        let calls = self.trim_warm(0);
        self.stats.regions.syscalls += calls;
    }

    /// Address space the arena has reserved (costs no memory).
    ///
    /// ```
    /// let mut arena = remapvec::PageArena::new();
    /// arena.alloc(1 << 20)?;
    /// assert!(arena.reserved_bytes() >= 1 << 20);
    /// # Ok::<(), remapvec::ArenaError>(())
    /// ```
    pub fn reserved_bytes(&self) -> usize {
        self.cap
    }

    /// The arena's reserved address range (changes when the arena moves).
    ///
    /// ```
    /// let mut arena = remapvec::PageArena::new();
    /// let id = arena.alloc(1)?;
    /// let p = arena.get(id).unwrap().as_ptr();
    /// assert!(arena.address_range().contains(&(p as usize)));
    /// # Ok::<(), remapvec::ArenaError>(())
    /// ```
    pub fn address_range(&self) -> core::ops::Range<usize> {
        let start = if self.cap == 0 { 0 } else { self.base as usize };
        start..start + self.cap
    }

    /// The share of the span up to the end of the last region that is not live regions'
    /// pages: 0.0 when the regions are packed, 0.5 when half the span is holes.
    ///
    /// ```
    /// let mut arena = remapvec::PageArena::new();
    /// let page = remapvec::sys::page_size();
    /// let a = arena.alloc(page)?;
    /// let _b = arena.alloc(page)?;
    /// arena.free(a)?;
    /// assert_eq!(arena.fragmentation(), 0.5);
    /// arena.compact()?;
    /// assert_eq!(arena.fragmentation(), 0.0);
    /// # Ok::<(), remapvec::ArenaError>(())
    /// ```
    pub fn fragmentation(&self) -> f64 {
        let span = self.high_water();
        if span == 0 {
            0.0
        } else {
            (span - self.mapped_bytes) as f64 / span as f64
        }
    }

    /// Number of holes (maximal free ranges), including the free space at the end.
    ///
    /// ```
    /// let mut arena = remapvec::PageArena::new();
    /// let a = arena.alloc(1)?;
    /// let _b = arena.alloc(1)?;
    /// arena.free(a)?;
    /// assert_eq!(arena.holes(), 2); // before b, and after it
    /// # Ok::<(), remapvec::ArenaError>(())
    /// ```
    pub fn holes(&self) -> usize {
        self.holes.count()
    }

    /// Growth counters.
    ///
    /// ```
    /// let mut arena = remapvec::PageArena::new();
    /// let id = arena.alloc(4096)?;
    /// arena.grow(id, 8192)?;
    /// assert_eq!(arena.stats().regions.in_place, 1);
    /// # Ok::<(), remapvec::ArenaError>(())
    /// ```
    pub fn stats(&self) -> ArenaStats {
        self.stats
    }

    /// End offset of the last region (0 if none).
    fn high_water(&self) -> usize {
        self.by_off.last_key_value().map_or(0, |(&off, &slot)| {
            off + self.slots[slot as usize].entry.map_or(0, |e| e.mapped)
        })
    }

    fn entry(&self, id: RegionId) -> Option<&Entry> {
        if id.arena != self.id {
            return None;
        }
        let slot = self.slots.get(id.index as usize)?;
        if slot.generation != id.generation {
            return None;
        }
        slot.entry.as_ref()
    }

    fn lookup(&self, id: RegionId) -> Result<Entry, ArenaError> {
        self.entry(id).copied().ok_or(ArenaError::InvalidId(id))
    }

    /// `lookup`, refusing broken regions (which must not be moved or resized).
    fn lookup_whole(&self, id: RegionId) -> Result<Entry, ArenaError> {
        let e = self.lookup(id)?;
        if e.broken {
            return Err(ArenaError::Broken(id));
        }
        Ok(e)
    }

    fn set_entry(&mut self, index: u32, e: Entry) {
        self.slots[index as usize].entry = Some(e);
    }

    /// Whether `id` names a live region of this arena.
    ///
    /// ```
    /// let mut arena = remapvec::PageArena::new();
    /// let id = arena.alloc(1)?;
    /// assert!(arena.contains(id));
    /// arena.free(id)?;
    /// assert!(!arena.contains(id));
    /// # Ok::<(), remapvec::ArenaError>(())
    /// ```
    pub fn contains(&self, id: RegionId) -> bool {
        self.entry(id).is_some()
    }

    /// The region's bytes, or `None` for a freed or foreign id.
    ///
    /// ```
    /// let mut arena = remapvec::PageArena::new();
    /// let id = arena.alloc(3)?;
    /// assert_eq!(arena.get(id), Some(&[0u8, 0, 0][..]));
    /// # Ok::<(), remapvec::ArenaError>(())
    /// ```
    pub fn get(&self, id: RegionId) -> Option<&[u8]> {
        let (p, len) = self.raw_region(id)?;
        // SAFETY: a live entry's `[off, off + len)` lies in read-write memory the arena owns
        // (Entry invariant); `&self` keeps it from being moved, resized or freed while the
        // slice lives.
        Some(unsafe { core::slice::from_raw_parts(p, len) })
    }

    /// The region's bytes, mutable, or `None` for a freed or foreign id.
    ///
    /// ```
    /// let mut arena = remapvec::PageArena::new();
    /// let id = arena.alloc(3)?;
    /// arena.get_mut(id).unwrap().copy_from_slice(b"abc");
    /// assert_eq!(arena.get(id).unwrap(), b"abc");
    /// # Ok::<(), remapvec::ArenaError>(())
    /// ```
    pub fn get_mut(&mut self, id: RegionId) -> Option<&mut [u8]> {
        let (p, len) = self.raw_region(id)?;
        // SAFETY: as in `get`; `&mut self` makes the borrow exclusive.
        Some(unsafe { core::slice::from_raw_parts_mut(p, len) })
    }

    /// Pointer and length of a live region (dangling for an empty one).
    pub(crate) fn raw_region(&self, id: RegionId) -> Option<(*mut u8, usize)> {
        let e = self.entry(id).filter(|e| !e.broken)?;
        if e.mapped == 0 {
            return Some((core::ptr::dangling_mut(), 0));
        }
        // SAFETY: `off < cap`, inside the reservation.
        Some((unsafe { self.base.add(e.off) }, e.len))
    }

    /// The live regions in address order, with their ids.
    ///
    /// ```
    /// let mut arena = remapvec::PageArena::new();
    /// let a = arena.alloc(1)?;
    /// let b = arena.alloc(2)?;
    /// let ids: Vec<_> = arena.iter().map(|(id, bytes)| (id, bytes.len())).collect();
    /// assert_eq!(ids, [(a, 1), (b, 2)]);
    /// # Ok::<(), remapvec::ArenaError>(())
    /// ```
    pub fn iter(&self) -> impl Iterator<Item = (RegionId, &[u8])> + '_ {
        let empty = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.entry.filter(|e| e.mapped == 0).map(|_| i as u32));
        self.by_off
            .values()
            .copied()
            .chain(empty)
            .filter_map(move |index| {
                let id = RegionId {
                    arena: self.id,
                    index,
                    generation: self.slots[index as usize].generation,
                };
                // Broken regions (see `ArenaError::Broken`) are not handed out.
                self.get(id).map(|bytes| (id, bytes))
            })
    }

    /// Allocates a region of `len` zeroed bytes (page-aligned, pages mapped lazily).
    ///
    /// # Errors
    ///
    /// [`ArenaError::CapacityOverflow`] when `len` rounded up to pages does not fit `isize::MAX`
    /// or the address space; [`ArenaError::Os`] when the kernel refuses the memory (`ENOMEM`).
    /// The arena is unchanged on error.
    ///
    /// ```
    /// let mut arena = remapvec::PageArena::new();
    /// let id = arena.alloc(5 << 20)?;
    /// assert!(arena.get(id).unwrap().iter().all(|&b| b == 0));
    /// # Ok::<(), remapvec::ArenaError>(())
    /// ```
    pub fn alloc(&mut self, len: usize) -> Result<RegionId, ArenaError> {
        self.alloc_aligned(len, 1)
    }

    /// Allocates a region of `len` zeroed bytes whose address is a multiple of `align` (a
    /// power of two; at least the page size is always given). The address stays aligned
    /// through growth, compaction and relocation of the arena. An alignment the address space
    /// cannot give is an error ([`ArenaError::InvalidAlign`], or [`ArenaError::Os`] when the
    /// kernel has no such range), never a misaligned region.
    ///
    /// # Errors
    ///
    /// [`ArenaError::InvalidAlign`] when `align` is not a power of two or too large;
    /// otherwise as [`alloc`](Self::alloc). The arena is unchanged on error.
    ///
    /// ```
    /// let mut arena = remapvec::PageArena::new();
    /// let id = arena.alloc_aligned(4 << 20, 2 << 20)?;
    /// assert_eq!(arena.get(id).unwrap().as_ptr() as usize % (2 << 20), 0);
    /// let big = arena.alloc_aligned(4096, 1 << 36)?; // 64 GiB: reserved, not allocated
    /// assert_eq!(arena.get(big).unwrap().as_ptr() as usize % (1 << 36), 0);
    /// # Ok::<(), remapvec::ArenaError>(())
    /// ```
    pub fn alloc_aligned(&mut self, len: usize, align: usize) -> Result<RegionId, ArenaError> {
        if !align.is_power_of_two() || align > MAX_ALIGN {
            return Err(ArenaError::InvalidAlign(align));
        }
        let align = align.max(sys::page_size());
        let mapped = round_len(len)?;
        if self.slots.len() >= u32::MAX as usize && self.free_slots.is_empty() {
            return Err(ArenaError::CapacityOverflow { requested: len });
        }
        let off = if mapped == 0 {
            0
        } else {
            let off = self.find_space(mapped, align)?;
            debug_assert_eq!((self.base as usize + off) % align, 0);
            self.holes.remove(off, mapped);
            match self.claim(off, mapped) {
                Ok(calls) => self.stats.regions.syscalls += calls,
                Err(e) => return Err(ArenaError::os("mmap", e)),
            }
            off
        };
        let entry = Entry {
            off,
            len,
            mapped,
            align,
            broken: false,
        };
        let index = match self.free_slots.pop() {
            Some(i) => i,
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    entry: None,
                });
                (self.slots.len() - 1) as u32
            }
        };
        self.set_entry(index, entry);
        if mapped > 0 {
            self.by_off.insert(off, index);
        }
        self.live += 1;
        self.live_bytes += len;
        self.mapped_bytes += mapped;
        Ok(RegionId {
            arena: self.id,
            index,
            generation: self.slots[index as usize].generation,
        })
    }

    /// Frees a region: its pages go back to being reservation (memory returned to the OS).
    ///
    /// # Errors
    ///
    /// [`ArenaError::InvalidId`] when `id` was already freed or belongs to another arena.
    ///
    /// ```
    /// let mut arena = remapvec::PageArena::new();
    /// let id = arena.alloc(1)?;
    /// arena.free(id)?;
    /// assert!(arena.free(id).is_err()); // a stale id is an error, not a crash
    /// # Ok::<(), remapvec::ArenaError>(())
    /// ```
    pub fn free(&mut self, id: RegionId) -> Result<(), ArenaError> {
        let e = self.lookup(id)?;
        let give_back = e.mapped > 0 && !e.broken;
        if give_back {
            self.by_off.remove(&e.off);
        }
        let slot = &mut self.slots[id.index as usize];
        slot.entry = None;
        slot.generation = slot.generation.wrapping_add(1);
        // A slot whose generation wrapped is retired, so an old id can never match again.
        if slot.generation != 0 {
            self.free_slots.push(id.index);
        }
        self.live -= 1;
        self.live_bytes -= e.len;
        self.mapped_bytes -= e.mapped;
        if give_back {
            // The region's pages become a (warm) hole, or, if the kernel refuses, a fence.
            self.stats.regions.syscalls += self.give_back(e.off, e.mapped);
        }
        Ok(())
    }

    /// Grows a region to `new_len` bytes; the new bytes are zero. In place when the pages
    /// after it are free (one `mprotect`), else the region's mappings move to free space in
    /// the arena (`mremap`, no byte copied) and the arena grows first if it must.
    ///
    /// # Errors
    ///
    /// [`ArenaError::InvalidId`] for a stale id, [`ArenaError::Broken`] for a broken region,
    /// [`ArenaError::InvalidLength`] when `new_len` is shorter than the region,
    /// [`ArenaError::CapacityOverflow`] when it does not fit the address space, and
    /// [`ArenaError::Os`] when the kernel refuses the memory or the move. The region keeps its
    /// bytes and its length on error.
    ///
    /// ```
    /// let mut arena = remapvec::PageArena::new();
    /// let a = arena.alloc(4096)?;
    /// let _b = arena.alloc(4096)?; // right after a: a must move to grow
    /// arena.get_mut(a).unwrap()[0] = 7;
    /// arena.grow(a, 1 << 20)?;
    /// let bytes = arena.get(a).unwrap();
    /// assert_eq!((bytes[0], bytes.len(), bytes[4096]), (7, 1 << 20, 0));
    /// # Ok::<(), remapvec::ArenaError>(())
    /// ```
    pub fn grow(&mut self, id: RegionId, new_len: usize) -> Result<(), ArenaError> {
        let e = self.lookup_whole(id)?;
        if new_len < e.len {
            return Err(ArenaError::InvalidLength {
                len: e.len,
                requested: new_len,
            });
        }
        let new_mapped = round_len(new_len)?;
        if e.mapped > e.len {
            // Bytes past `len` in the last page may be left from before a shrink.
            // SAFETY: `[off + len, off + mapped)` is the region's own memory; `&mut self`.
            unsafe {
                self.base
                    .add(e.off + e.len)
                    .write_bytes(0, e.mapped - e.len)
            };
        }
        let mut e2 = Entry { len: new_len, ..e };
        if new_mapped <= e.mapped {
            self.set_entry(id.index, e2);
            self.live_bytes += new_len - e.len;
            return Ok(());
        }
        let extra = new_mapped - e.mapped;
        if e.mapped > 0 && self.holes.contains(e.off + e.mapped, extra) {
            let tail = e.off + e.mapped;
            self.holes.remove(tail, extra);
            // A warm hole needs no call at all.
            match self.claim(tail, extra) {
                Ok(calls) => self.stats.regions.syscalls += calls,
                Err(err) => return Err(ArenaError::os("mmap", err)),
            }
            self.stats.regions.in_place += 1;
            e2.mapped = new_mapped;
            self.set_entry(id.index, e2);
        } else {
            // Moves the region, records it and its new length (see `relocate.rs`).
            self.move_region(id.index, e2, new_mapped)?;
        }
        self.live_bytes += new_len - e.len;
        self.mapped_bytes += extra;
        Ok(())
    }

    /// Shrinks a region to `new_len` bytes; whole pages past it go back to the reservation.
    ///
    /// # Errors
    ///
    /// [`ArenaError::InvalidId`] for a stale id, [`ArenaError::Broken`] for a broken region, and
    /// [`ArenaError::InvalidLength`] when `new_len` is longer than the region.
    ///
    /// ```
    /// let mut arena = remapvec::PageArena::new();
    /// let id = arena.alloc(1 << 20)?;
    /// arena.shrink(id, 10)?;
    /// assert_eq!(arena.get(id).unwrap().len(), 10);
    /// assert_eq!(arena.mapped_bytes(), remapvec::sys::page_size());
    /// # Ok::<(), remapvec::ArenaError>(())
    /// ```
    pub fn shrink(&mut self, id: RegionId, new_len: usize) -> Result<(), ArenaError> {
        let e = self.lookup_whole(id)?;
        if new_len > e.len {
            return Err(ArenaError::InvalidLength {
                len: e.len,
                requested: new_len,
            });
        }
        let new_mapped = round_len(new_len)?;
        let mut e2 = Entry {
            len: new_len,
            mapped: new_mapped,
            ..e
        };
        if new_mapped < e.mapped {
            if new_mapped == 0 {
                self.by_off.remove(&e.off);
                e2.off = 0;
            }
            // The region first (`give_back` may recompute the holes from the regions).
            self.set_entry(id.index, e2);
        }
        self.set_entry(id.index, e2);
        self.live_bytes -= e.len - new_len;
        self.mapped_bytes -= e.mapped - new_mapped;
        if new_mapped < e.mapped {
            // The tail becomes a (warm) hole, or, if the kernel refuses, a fence.
            self.stats.regions.syscalls +=
                self.give_back(e.off + new_mapped, e.mapped - new_mapped);
        }
        Ok(())
    }

    /// A free offset for `len` bytes whose address is aligned to `align`, growing the arena
    /// if needed.
    fn find_space(&mut self, len: usize, align: usize) -> Result<usize, ArenaError> {
        if self.cap > 0
            && let Some(off) = self.holes.best_fit(len, align, self.phase(align))
        {
            return Ok(off);
        }
        self.grow_arena(
            len.checked_add(align)
                .ok_or(ArenaError::CapacityOverflow { requested: len })?,
        )?;
        self.holes
            .best_fit(len, align, self.phase(align))
            .ok_or(ArenaError::CapacityOverflow { requested: len })
    }

    /// The offsets `o` whose address `base + o` is a multiple of `align` are those with
    /// `o % align == phase(align)`.
    fn phase(&self, align: usize) -> usize {
        (self.base as usize).wrapping_neg() & (align - 1)
    }

    /// The largest alignment a live region asks for (at least the page size): a relocated
    /// arena's base keeps this alignment's phase, so every region stays aligned.
    fn max_align(&self) -> usize {
        self.slots
            .iter()
            .filter_map(|s| s.entry.filter(|e| e.mapped > 0 && !e.broken))
            .map(|e| e.align)
            .max()
            .unwrap_or(1)
            .max(sys::page_size())
    }
}

/// Alignments above this cannot be given by any address space.
const MAX_ALIGN: usize = 1 << (usize::BITS - 2);

/// `len` rounded up to pages, at most `isize::MAX`.
fn round_len(len: usize) -> Result<usize, ArenaError> {
    sys::round_to_page(len)
        .filter(|&m| m <= isize::MAX as usize)
        .ok_or(ArenaError::CapacityOverflow { requested: len })
}
