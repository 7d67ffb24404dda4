//! Compaction of a `PageArena`: the plan (packed targets, runs of regions that move by the
//! same distance, copy or remap per run by a measured cost model), the moves (one
//! multi-mapping `mremap` per run, or one per region), and the repair after a move that
//! stopped part-way.

use super::free::{RangeSet, align_up};
use super::{ArenaError, Entry, PageArena};
use crate::sys::{self, Errno};
use std::time::{Duration, Instant};

/// What one [`PageArena::compact`] did.
///
/// ```
/// let mut arena = remapvec::PageArena::new();
/// let ids: Vec<_> = (0..8).map(|_| arena.alloc(1 << 20)).collect::<Result<_, _>>()?;
/// for id in ids.iter().step_by(2) {
///     arena.free(*id)?;
/// }
/// let r = arena.compact()?;
/// assert_eq!(r.regions_moved, 4);
/// assert_eq!(r.holes_after, 1); // only the free space at the end is left
/// # Ok::<(), remapvec::ArenaError>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct CompactReport {
    /// Regions that changed address.
    pub regions_moved: usize,
    /// Of those, moved by remapping their pages (no byte copied).
    pub regions_remapped: usize,
    /// Of those, copied (small runs, where copying is cheaper than a system call, or no
    /// `mremap` on this platform).
    pub regions_copied: usize,
    /// Of the copied, those copied into warm pages only (warm holes, or pages vacated by
    /// earlier copies): a plain `memmove`, no system call, no page fault.
    pub regions_copied_warm: usize,
    /// Of the copied, those whose destination needed fresh pages (committed, then faulted
    /// in by the copy).
    pub regions_copied_fresh: usize,
    /// Fresh destination pages committed for copies (each one a page fault).
    pub pages_faulted: u64,
    /// Runs: maximal groups of adjacent regions moving by the same distance.
    pub runs: usize,
    /// Bytes that changed address by remapping.
    pub bytes_remapped: u64,
    /// Bytes copied.
    pub bytes_copied: u64,
    /// All system calls made (moves, maps, re-reservations, probes).
    pub syscalls: u64,
    /// `mremap` calls among them.
    pub remap_calls: u64,
    /// Holes before (free ranges of the arena, including the free end).
    pub holes_before: usize,
    /// Holes after.
    pub holes_after: usize,
    /// Whether runs moved with one multi-mapping `mremap` each.
    pub multi_mapping_move: bool,
    /// Bytes of warm pages given back to the kernel (the free tail past the warm budget, and
    /// warm pages a remap was about to land on).
    pub bytes_released: u64,
    /// Warm bytes left for later allocations and growth (see
    /// [`ArenaOptions::warm_holes`](super::ArenaOptions::warm_holes)).
    pub warm_bytes_after: usize,
    /// What the cost model predicted for the choices it made, in nanoseconds: compare with
    /// `duration` to see whether the model fits this machine.
    pub estimated_ns: f64,
    /// The cost model that chose copy or remap for each run.
    pub cost_model: CostModel,
    /// Wall-clock time of the compaction.
    pub duration: Duration,
}

impl CompactReport {
    /// `holes_before - holes_after`.
    ///
    /// ```
    /// let r = remapvec::CompactReport::default();
    /// assert_eq!(r.holes_closed(), 0);
    /// ```
    pub fn holes_closed(&self) -> usize {
        self.holes_before.saturating_sub(self.holes_after)
    }
}

/// Costs that decide, per run of regions, whether compaction copies the bytes or remaps the
/// pages. Remapping costs system calls (the move, and re-reserving what it vacated) plus a
/// little per page. Copying costs a `memcpy` per page, plus a page fault per destination page
/// that is not mapped yet and an `mmap` per such range; pages vacated by earlier copies in
/// the same compaction are still mapped and warm, so a run copied into them costs no system
/// call and no fault.
///
/// The four ways a run can move, and what each costs here:
/// * copy into warm memory (warm holes, pages vacated by earlier copies): `copy_ns_per_page`;
/// * copy into fresh memory: one call per fresh range, plus `fault_ns_per_page` per page;
/// * remap, one mapping per call: `syscall_ns` per call, `remap_ns_per_page`;
/// * remap a run of several mappings in one call (Linux 6.17+): one call, plus
///   `remap_ns_per_mapping` for each mapping it spans.
///
/// Remapping onto warm pages first gives them back (`release_ns_per_page`, two calls).
///
/// The defaults were measured on the development machine (x86_64 VM, 2 cores, Linux 6.18,
/// 4 KiB pages) with [`CostModel::measure`] (`cargo run --release --example arena_compact`
/// prints it; every [`CompactReport`] carries the model it used and its estimate): see
/// [`CostModel::default`]. Call it to calibrate for yours.
///
/// ```
/// use remapvec::CostModel;
/// let c = CostModel::default();
/// // One page into pages vacated earlier: copy. Eight into fresh pages, or 2 MiB: remap.
/// assert!(c.copy_ns(1, 0, 0) < c.remap_ns(1, 1, false));
/// assert!(c.copy_ns(8, 8, 1) > c.remap_ns(8, 1, false));
/// assert!(c.copy_ns(512, 0, 0) > c.remap_ns(512, 1, false));
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CostModel {
    /// Fixed cost of one mapping system call (`mremap`, `mmap`), in nanoseconds.
    pub syscall_ns: f64,
    /// Cost per page moved by `mremap`, in nanoseconds.
    pub remap_ns_per_page: f64,
    /// Cost per page copied into mapped, already touched pages, in nanoseconds.
    pub copy_ns_per_page: f64,
    /// Extra cost per destination page that must be faulted in fresh, in nanoseconds.
    pub fault_ns_per_page: f64,
    /// Extra cost per mapping spanned by a multi-mapping `mremap`, in nanoseconds.
    pub remap_ns_per_mapping: f64,
    /// Cost per warm page given back to the kernel (`MADV_DONTNEED`), in nanoseconds.
    pub release_ns_per_page: f64,
}

impl Default for CostModel {
    /// Measured on the development machine by [`CostModel::measure`]: 8 µs per mapping call,
    /// 20 ns per remapped page, 0.27 µs per page copied, 2.5 µs per fresh page faulted in (a
    /// VM's first touch is slow); the two later terms from one run of `arena_compact` on a
    /// lightly loaded machine (which measured 3.7 µs, 18 ns, 0.27 µs and 2.0 µs for the
    /// others): 7.4 µs per mapping spanned by a multi-mapping move, 0.34 µs per warm page
    /// given back.
    fn default() -> Self {
        CostModel {
            syscall_ns: 8000.0,
            remap_ns_per_page: 20.0,
            copy_ns_per_page: 270.0,
            fault_ns_per_page: 2500.0,
            remap_ns_per_mapping: 7400.0,
            release_ns_per_page: 340.0,
        }
    }
}

impl CostModel {
    /// A model under which compaction always copies: memcpy compaction, to compare against.
    ///
    /// ```
    /// use remapvec::{ArenaOptions, CostModel, PageArena};
    /// let mut a = PageArena::with_options(ArenaOptions::new().cost_model(CostModel::copy_only()));
    /// let x = a.alloc(1 << 20)?;
    /// let _y = a.alloc(1 << 20)?;
    /// a.free(x)?;
    /// assert_eq!(a.compact()?.regions_copied, 1);
    /// # Ok::<(), remapvec::ArenaError>(())
    /// ```
    pub const fn copy_only() -> Self {
        CostModel {
            syscall_ns: 0.0,
            remap_ns_per_page: f64::INFINITY,
            copy_ns_per_page: 0.0,
            fault_ns_per_page: 0.0,
            remap_ns_per_mapping: 0.0,
            release_ns_per_page: 0.0,
        }
    }

    /// A model under which compaction always remaps (where `mremap` exists).
    ///
    /// ```
    /// use remapvec::{ArenaOptions, CostModel, PageArena};
    /// let mut a = PageArena::with_options(ArenaOptions::new().cost_model(CostModel::remap_only()));
    /// let x = a.alloc(4096)?;
    /// let _y = a.alloc(4096)?;
    /// a.free(x)?;
    /// let r = a.compact()?;
    /// # #[cfg(all(target_os = "linux", not(feature = "force-fallback")))]
    /// assert_eq!(r.regions_remapped, 1);
    /// # Ok::<(), remapvec::ArenaError>(())
    /// ```
    pub const fn remap_only() -> Self {
        CostModel {
            syscall_ns: 0.0,
            remap_ns_per_page: 0.0,
            copy_ns_per_page: f64::INFINITY,
            fault_ns_per_page: 0.0,
            remap_ns_per_mapping: 0.0,
            release_ns_per_page: 0.0,
        }
    }

    /// Estimated cost of remapping a run of `pages` pages with `calls` `mremap` calls per
    /// move (1 with the multi-mapping move, one per region without), through scratch space
    /// (two moves) when `overlap`.
    pub fn remap_ns(&self, pages: usize, calls: usize, overlap: bool) -> f64 {
        let moves = if overlap { 2 } else { 1 };
        // Each move is followed by one re-reservation of the pages it vacated.
        let syscalls = moves * (calls + 1);
        syscalls as f64 * self.syscall_ns + (moves * pages) as f64 * self.remap_ns_per_page
    }

    /// Estimated cost of remapping a run of `pages` pages in `mappings` mappings, with one
    /// multi-mapping call per move (`multi`) or one call per mapping, through scratch space
    /// when `overlap`, onto a destination holding `warm` warm pages (given back first).
    pub fn remap_run_ns(
        &self,
        pages: usize,
        mappings: usize,
        multi: bool,
        overlap: bool,
        warm: usize,
    ) -> f64 {
        let moves = if overlap { 2 } else { 1 };
        let calls = if multi { 1 } else { mappings.max(1) };
        let spans = if multi {
            (moves * mappings) as f64
        } else {
            0.0
        };
        let release = if warm > 0 {
            2.0 * self.syscall_ns + warm as f64 * self.release_ns_per_page
        } else {
            0.0
        };
        self.remap_ns(pages, calls, overlap) + spans * self.remap_ns_per_mapping + release
    }

    /// Estimated cost of copying a run of `pages` pages of which `fresh` destination pages,
    /// in `pieces` separate ranges, are not mapped yet (one `mmap` per piece, a fault per
    /// page).
    pub fn copy_ns(&self, pages: usize, fresh: usize, pieces: usize) -> f64 {
        pieces as f64 * self.syscall_ns
            + pages as f64 * self.copy_ns_per_page
            + fresh as f64 * self.fault_ns_per_page
    }

    /// Measures the model on this machine (about 50 ms): moves of 1 and 256 pages by
    /// `mremap`, each followed by re-reserving the vacated source (as the arena does), and
    /// copies of 256 pages into fresh pages. Every scratch mapping lives inside one
    /// reservation held for the whole measurement, so no other thread's memory is ever moved
    /// over or unmapped. Without `mremap` returns the defaults.
    ///
    /// ```no_run
    /// let c = remapvec::CostModel::measure();
    /// println!("{c:?}");
    /// ```
    pub fn measure() -> CostModel {
        let page = sys::page_size();
        let n = 256;
        let reps = 64;
        let mut model = CostModel::default();
        if !sys::HAS_MREMAP {
            return model;
        }
        // Layout, with a reservation page between neighbours so that no two scratch mappings
        // merge: [a1 | - | b1 | - | an | - | bn | - | c].
        let (a1, b1, an) = (0, 2 * page, 4 * page);
        let bn = an + (n + 1) * page;
        let c = bn + (n + 1) * page;
        let Some(mut s) = Scratch::new(c + n * page) else {
            return model;
        };
        if !s.commit(a1, page) || !s.commit(an, n * page) {
            return model;
        }
        // SAFETY: `an` is committed read-write scratch memory of `n` pages, ours alone.
        unsafe { s.at(an).write_bytes(1, n * page) };
        let one = s.time_moves(a1, b1, page, reps);
        let (many, data) = match s.time_moves(an, bn, n * page, reps) {
            (Some(t), at) => (Some(t), at),
            (None, at) => (None, at),
        };
        if let (Some(t1), Some(tn)) = (one.0, many) {
            // Each timed step is a move plus one re-reservation: two system calls.
            model.remap_ns_per_page = ((tn - t1) / (n - 1) as f64).max(0.0);
            model.syscall_ns = ((t1 - model.remap_ns_per_page) / 2.0).max(0.0);
        }
        // Copies into fresh pages (fault + copy) and into the same pages again (copy only).
        let (mut fresh, mut warm, mut release) = (0.0, 0.0, 0.0);
        let rounds = 8;
        let mut done = 0;
        for _ in 0..rounds {
            if !s.commit(c, n * page) {
                break;
            }
            for pass in 0..2 {
                let t = Instant::now();
                // SAFETY: `data` holds the n committed pages (a failed move leaves them where
                // they were), `c` was just committed; both are ours and distinct.
                unsafe {
                    core::ptr::copy_nonoverlapping(s.at(data).cast_const(), s.at(c), n * page)
                };
                let ns = t.elapsed().as_nanos() as f64 / n as f64;
                if pass == 0 { fresh += ns } else { warm += ns }
            }
            done += 1;
            let t = Instant::now();
            if !s.decommit(c, n * page) {
                break;
            }
            release += t.elapsed().as_nanos() as f64 / n as f64;
        }
        if warm > 0.0 && done > 0 {
            model.copy_ns_per_page = warm / done as f64;
            model.fault_ns_per_page = ((fresh - warm) / done as f64).max(0.0);
            model.release_ns_per_page = release / done as f64;
        }
        if sys::features().multi_mapping_move
            && let Some(per) = Self::measure_spans(model)
        {
            model.remap_ns_per_mapping = per;
        }
        model
    }

    /// The extra cost per mapping of a multi-mapping move: moves of a span of 64 pages that
    /// alternate read-write and `PROT_NONE` (64 mappings) back and forth, each followed by
    /// taking the vacated source back, against the model's one-mapping cost of the same.
    fn measure_spans(model: CostModel) -> Option<f64> {
        let page = sys::page_size();
        let n = 64;
        let reps = 32;
        // [span | - | destination]
        let (a, b) = (0, (n + 1) * page);
        let mut s = Scratch::new(b + n * page)?;
        for k in (0..n).step_by(2) {
            if !s.commit(a + k * page, page) {
                return None;
            }
        }
        let t = Instant::now();
        let (mut src, mut dst) = (a, b);
        for _ in 0..reps {
            if !s.move_plain(src, dst, n * page) {
                return None;
            }
            core::mem::swap(&mut src, &mut dst);
        }
        let step = t.elapsed().as_nanos() as f64 / reps as f64;
        let one = 2.0 * model.syscall_ns + n as f64 * model.remap_ns_per_page;
        Some(((step - one) / n as f64).max(0.0))
    }
}

/// The scratch space of [`CostModel::measure`]: one reservation, held until drop, inside
/// which every scratch mapping is made and moved. A range a failed call may have released, or
/// that someone else mapped after a move vacated it, is lost: never touched again, not even
/// by the final unmap (it is leaked).
struct Scratch {
    base: *mut u8,
    len: usize,
    lost: Vec<(usize, usize)>,
}

impl Scratch {
    fn new(len: usize) -> Option<Scratch> {
        // Without a hint the kernel picks free addresses: the reservation is ours.
        let base = sys::reserve(0, len).ok()?;
        Some(Scratch {
            base,
            len,
            lost: Vec::new(),
        })
    }

    fn at(&self, off: usize) -> *mut u8 {
        self.base.wrapping_add(off)
    }

    /// Makes `[off, off + len)` read-write.
    fn commit(&mut self, off: usize, len: usize) -> bool {
        // SAFETY: a range of our reservation, never lost (`commit` is only called on ranges
        // that hold our reservation or our decommitted pages). `measure` runs only with the
        // Linux backend, whose `commit` never unmaps, even on failure.
        unsafe { sys::commit(self.at(off), len) }.is_ok()
    }

    /// Gives the pages of `[off, off + len)` back, keeping the range ours.
    fn decommit(&mut self, off: usize, len: usize) -> bool {
        // SAFETY: committed scratch memory of ours; `decommit` never unmaps on Linux.
        unsafe { sys::decommit(self.at(off), len) }.is_ok()
    }

    /// Moves the scratch mapping at `src` to `dst` (both inside the reservation, distinct),
    /// then makes `src` a reservation again: with `MREMAP_DONTUNMAP` the source never stops
    /// being ours; without it, it is taken back with `MAP_FIXED_NOREPLACE`. `false` when
    /// something failed (the ranges that may have changed hands are lost).
    fn move_once(&mut self, src: usize, dst: usize, len: usize) -> bool {
        let (s, d) = (self.at(src), self.at(dst));
        if sys::features().dontunmap {
            // SAFETY: `[d, d + len)` is ours: our reservation, or a source we emptied with
            // DONTUNMAP and re-reserved in place; `[s, s + len)` is one scratch mapping of
            // ours (guard pages keep it from merging), nothing refers to either.
            if unsafe { sys::remap_fixed_dontunmap(s, len, d) }.is_err() {
                // The destination may have been unmapped before the kernel gave up.
                self.lost.push((dst, len));
                return false;
            }
            // SAFETY: DONTUNMAP left `[s, s + len)` mapped (emptied): still ours.
            if unsafe { sys::reserve_fixed(s, len) }.is_err() {
                self.lost.push((src, len));
                return false;
            }
            return true;
        }
        // SAFETY: as above for the destination; the source is ours and will be vacated.
        if unsafe { sys::remap_fixed(s, len, len, d) }.is_err() {
            self.lost.push((dst, len));
            return false;
        }
        // The source is vacated: ours again only if NOREPLACE succeeds.
        if sys::reserve(s as usize, len).is_err() {
            self.lost.push((src, len));
            return false;
        }
        true
    }

    /// Moves `[src, src + len)` (any number of scratch mappings) to `dst` with one plain
    /// `MREMAP_FIXED` call and takes the vacated source back with `MAP_FIXED_NOREPLACE`.
    /// `false` when something failed (what may have changed hands is lost).
    fn move_plain(&mut self, src: usize, dst: usize, len: usize) -> bool {
        let (s, d) = (self.at(src), self.at(dst));
        // SAFETY: `[d, d + len)` is ours: our reservation, or a source vacated by the previous
        // step and taken back by NOREPLACE; the source holds only our scratch mappings.
        if unsafe { sys::remap_fixed(s, len, len, d) }.is_err() {
            self.lost.push((dst, len));
            self.lost.push((src, len));
            return false;
        }
        if sys::reserve(s as usize, len).is_err() {
            self.lost.push((src, len));
            return false;
        }
        true
    }

    /// Nanoseconds per step of `reps` moves back and forth between `a` and `b` (each a move
    /// and a re-reservation), and where the mapping ended up.
    fn time_moves(&mut self, a: usize, b: usize, len: usize, reps: usize) -> (Option<f64>, usize) {
        let t = Instant::now();
        let (mut src, mut dst) = (a, b);
        for _ in 0..reps {
            if !self.move_once(src, dst, len) {
                // A failed move leaves its source in place; a failed re-reservation happens
                // after the move, so the mapping is at `dst`.
                let at = if self.lost.last().is_some_and(|&(o, _)| o == dst) {
                    src
                } else {
                    dst
                };
                return (None, at);
            }
            core::mem::swap(&mut src, &mut dst);
        }
        (Some(t.elapsed().as_nanos() as f64 / reps as f64), src)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        self.lost.sort_unstable();
        let mut cur = 0;
        let lost = core::mem::take(&mut self.lost);
        for (o, l) in lost.into_iter().chain(core::iter::once((self.len, 0))) {
            if o > cur {
                // SAFETY: `[cur, o)` holds no lost range: every page of it is our reservation
                // or a scratch mapping we made or moved there onto our own range, never
                // vacated without being taken back by NOREPLACE.
                let _ = unsafe { sys::unmap(self.at(cur), o - cur) };
            }
            cur = cur.max(o + l);
        }
    }
}

/// Moves spans of mappings with `mremap(MREMAP_MAYMOVE | MREMAP_FIXED)` and finds out how far
/// a move that failed got.
pub(super) struct Mover {
    pub(super) calls: u64,
    pub(super) remaps: u64,
}

impl Mover {
    pub(super) fn new() -> Self {
        Mover {
            calls: 0,
            remaps: 0,
        }
    }

    /// Moves `[src, src + len)` to `dst` (no overlap) in one call. On failure returns the
    /// errno and bounds `(lo, hi)` on how many bytes at the start had moved (`lo <= moved <=
    /// hi`; equal when known exactly): the kernel moves mappings in address order, so the
    /// moved part is a prefix. See [`moved_bounds`](Self::moved_bounds) for what the bounds
    /// assume of the caller.
    pub(super) fn move_span(
        &mut self,
        src: *mut u8,
        len: usize,
        dst: *mut u8,
    ) -> Result<(), (Errno, usize, usize)> {
        if len == 0 {
            return Ok(());
        }
        self.calls += 1;
        self.remaps += 1;
        // SAFETY: every caller passes a source that holds only the arena's own mappings
        // (regions it committed or moved there, holes it reserved) and a destination it holds
        // and has not given up since: a hole (reserved by the arena, never vacated, or taken
        // back by a MAP_FIXED_NOREPLACE that succeeded), a fresh reservation of its own
        // (relocation), or a range it re-reserved with MAP_FIXED_NOREPLACE just before
        // (`settle`). The call sites say which. `&mut` on the arena means no slice of either
        // is alive.
        match unsafe { sys::remap_fixed(src, len, len, dst) } {
            Ok(()) => Ok(()),
            Err(e) => {
                // The moved prefix of the source is vacated: another thread may map there
                // before the probes below look.
                super::repair::window(src, len);
                let (lo, hi) = self.moved_bounds(src, len, dst);
                Err((e, lo, hi))
            }
        }
    }

    /// Bounds on the bytes at the start of `[src, src + len)` that a failed move to `dst`
    /// moved. The moved part is a prefix of `T` bytes.
    ///
    /// Lower bound, from the source: the first page found mapped by a binary search with
    /// one-page `mincore` probes. Every page from `T` on is still ours and mapped, so any
    /// mapped page found is at or below `T`; a foreign mapping in the vacated prefix can only
    /// make the answer smaller.
    ///
    /// Upper bound, from the destination: the first page found unreadable by a binary search
    /// with one-byte `process_vm_readv` probes. The caller guarantees that every page of the
    /// span is a region's read-write page, so the moved prefix `[dst, dst + T)` reads and
    /// any unreadable page found is at or above `T`, whatever lies past `T` (a foreign
    /// mapping in the slice the failed call released, or the arena's own pages). The bound
    /// is tight when the destination was `PROT_NONE` reservation. A span holding
    /// `PROT_NONE` pages (holes) must not be moved by this call: no upper bound holds.
    ///
    /// The bounds decide only what to move, what to take back with `MAP_FIXED_NOREPLACE` and
    /// what to fence: a vacated page is never assumed to be ours.
    fn moved_bounds(&mut self, src: *mut u8, len: usize, dst: *mut u8) -> (usize, usize) {
        let page = sys::page_size();
        let pages = len / page;
        let mapped = |this: &mut Self, i: usize| {
            this.calls += 1;
            sys::is_mapped(src.wrapping_add(i * page), page)
        };
        // First mapped page: `lo` has an unmapped page before it (or is 0), `hi` is mapped
        // (or is `pages`).
        let (mut lo, mut hi) = (0, pages);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if mapped(self, mid) {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        let low = lo;
        let readable = |this: &mut Self, i: usize| {
            this.calls += 1;
            sys::readable(dst.wrapping_add(i * page))
        };
        // First unreadable page at the destination, searched above `low` (every page below
        // `T >= low` reads).
        let (mut lo, mut hi) = (low, pages);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if readable(self, mid) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        (low * page, lo * page)
    }

    /// After a move of `[src, src + len)` (one region: every page read-write) to `dst`
    /// stopped with exactly `done` bytes moved: finish it, or else move the moved part back.
    /// `Some(true)`: all at `dst` (the source is vacated); `Some(false)`: all at `src`
    /// (`[dst, dst + len)` is vacated or may have been released: the caller reclaims it);
    /// `None`: the kernel refused both, or a further move stopped part-way where its
    /// progress could not be told exactly: the region is split between both ranges in a way
    /// not known, and the caller fences both whole.
    ///
    /// The failed call may have released the destination slice of the mapping it stopped at,
    /// so finishing first takes the rest of the destination back with `MAP_FIXED_NOREPLACE`
    /// (which fails while any of it is still our reservation: then we undo instead); undoing
    /// first takes the vacated source prefix back the same way. Each re-reserved destination
    /// is `PROT_NONE`, as `move_span`'s upper bound needs.
    pub(super) fn settle(
        &mut self,
        src: *mut u8,
        len: usize,
        dst: *mut u8,
        mut done: usize,
    ) -> Option<bool> {
        while done < len {
            let (s, d) = (src.wrapping_add(done), dst.wrapping_add(done));
            self.calls += 1;
            super::repair::window(d, len - done);
            // Ownership proof for `move_span`'s destination: this NOREPLACE succeeded.
            if sys::reserve(d as usize, len - done).is_err() {
                break;
            }
            match self.move_span(s, len - done, d) {
                Ok(()) => done = len,
                Err((_, 0, 0)) => break,
                Err((_, lo, hi)) if lo == hi => done += lo,
                Err(_) => return None,
            }
        }
        if done == len {
            return Some(true);
        }
        let mut back = 0;
        while back < done {
            let (s, d) = (dst.wrapping_add(back), src.wrapping_add(back));
            self.calls += 1;
            super::repair::window(d, done - back);
            // Ownership proof for `move_span`'s destination: the vacated source prefix taken
            // back by this NOREPLACE.
            if sys::reserve(d as usize, done - back).is_err() {
                return None;
            }
            match self.move_span(s, done - back, d) {
                Ok(()) => back = done,
                Err((_, lo, hi)) if lo == hi && lo > 0 => back += lo,
                Err(_) => return None,
            }
        }
        Some(false)
    }
}

/// One region of a run: slot index, source offset, mapped bytes.
#[derive(Clone, Copy)]
struct Item {
    index: u32,
    off: usize,
    mapped: usize,
}

/// Adjacent regions that move by the same distance.
struct Run {
    items: Vec<Item>,
    src: usize,
    len: usize,
    dst: usize,
}

impl PageArena {
    /// Slides the live regions together towards the start of the arena, closing the holes
    /// between them. Ids stay valid; addresses change.
    ///
    /// Adjacent regions that move by the same distance form a run. On Linux 6.17+ each run
    /// moves with one `mremap` spanning all its mappings (one call per region on older
    /// kernels, or with [`ArenaOptions::multi_mapping_move`](super::ArenaOptions::multi_mapping_move)
    /// off). A run whose destination overlaps its source moves through free space at the end
    /// of the arena. Small runs are copied instead when the [`CostModel`] says copying is
    /// cheaper.
    ///
    /// If a move fails (also part-way through a multi-mapping move), the regions that moved
    /// are recorded where they are now, a region cut in two is finished or moved back, the
    /// arena's free space is re-reserved, and the error is returned: every region keeps its
    /// bytes and stays reachable.
    ///
    /// # Errors
    ///
    /// [`ArenaError::Os`] when the kernel refuses a move or the re-reservation of free space (e.g.
    /// `ENOMEM` at `vm.max_map_count`); every region keeps its bytes and stays reachable, as
    /// described above. A region the kernel cut in two is reported by later calls as
    /// [`ArenaError::Broken`].
    ///
    /// ```
    /// let mut arena = remapvec::PageArena::new();
    /// let a = arena.alloc(1 << 20)?;
    /// let b = arena.alloc(1 << 20)?;
    /// arena.get_mut(b).unwrap()[0] = 42;
    /// arena.free(a)?;
    /// let before = arena.get(b).unwrap().as_ptr();
    /// arena.compact()?;
    /// assert!(arena.get(b).unwrap().as_ptr() < before);
    /// assert_eq!(arena.get(b).unwrap()[0], 42);
    /// # Ok::<(), remapvec::ArenaError>(())
    /// ```
    pub fn compact(&mut self) -> Result<CompactReport, ArenaError> {
        let t0 = Instant::now();
        let multi = self.opts.multi_mapping_move;
        let mut rep = CompactReport {
            holes_before: self.holes.count(),
            multi_mapping_move: multi,
            ..CompactReport::default()
        };
        self.stats.compactions += 1;
        let runs = self.plan();
        rep.runs = runs.len();
        // Scratch space for runs whose destination overlaps their source: the free end of
        // the arena, grown before anything moves (growth may move the whole arena).
        let scratch_len = if sys::HAS_MREMAP {
            runs.iter()
                .filter(|r| r.dst + r.len > r.src)
                .map(|r| r.len)
                .max()
                .unwrap_or(0)
        } else {
            0
        };
        let old_high = self.high_water();
        let mut scratch = 0;
        let mut scratch_end = 0;
        if scratch_len > 0 {
            // Above every region and every fence: all holes, the arena's own reservation.
            let scratch_span = scratch_len + sys::PMD_SIZE;
            scratch = old_high
                .max(self.fences_end())
                .next_multiple_of(sys::PMD_SIZE);
            if scratch + scratch_span > self.cap {
                let top_free = self.holes.ending_at(self.cap).map_or(0, |(_, l)| l);
                let need = (scratch + scratch_span).saturating_sub(self.cap) + top_free;
                self.grow_arena(need)?;
            }
            scratch_end = scratch + scratch_span;
        }
        let page = sys::page_size();
        let cost = self.opts.cost;
        rep.cost_model = cost;
        // Free pages that are committed read-write: the warm holes (after any growth above,
        // which may have moved the arena and left them behind), then the pages each copy
        // vacates. Exact: a copy or a remap landing on them takes them out.
        let mut garbage = core::mem::take(&mut self.warm);
        // Old `by_off` keys of regions copied since `by_off` was last brought up to date
        // (their entries hold the new offsets already): see `flush_stale`.
        let mut stale: Vec<(usize, u32)> = Vec::new();
        let mut mover = Mover::new();
        let mut result = Ok(());
        // Set when a run is left in scratch space (see below): no later run may use it.
        let mut stranded = false;
        for run in &runs {
            let overlap = run.dst + run.len > run.src;
            let need_end = run.src.min(run.dst + run.len);
            let fresh = garbage.gaps(run.dst, need_end - run.dst);
            let fresh_pages = fresh.iter().map(|(_, l)| l).sum::<usize>() / page;
            let pages = run.len / page;
            let copy_ns = cost.copy_ns(pages, fresh_pages, fresh.len());
            let warm_pages = (need_end - run.dst) / page - fresh_pages;
            let remap_ns = cost.remap_run_ns(pages, run.items.len(), multi, overlap, warm_pages);
            let copy = !sys::HAS_MREMAP || copy_ns < remap_ns;
            rep.estimated_ns += if copy { copy_ns } else { remap_ns };
            if self.fenced(run.dst, run.len) {
                // A range this compaction vacated could not be taken back (someone mapped
                // there), or a failed call fenced it: stop here, consistent, the rest unmoved.
                break;
            }
            if !copy {
                // Remapping reads and changes `by_off`: bring it up to date first.
                self.flush_stale(&mut stale);
            }
            let r = if copy {
                self.copy_run(run, &fresh, &mut garbage, &mut rep, &mut stale)
            } else if run.dst + run.len <= run.src {
                self.chill(&mut garbage, run.dst, run.len, &mut rep)
                    .and_then(|()| self.remap_run(run, run.src, run.dst, &mut mover, &mut rep))
            } else {
                // Through scratch: align the scratch copy like the source modulo 2 MiB so
                // that whole page-table pages move when the run is 2 MiB-aligned.
                let tmp = scratch + run.src % sys::PMD_SIZE;
                if self.fenced(tmp, run.len) {
                    // An earlier run's scratch pages could not be taken back: stop here.
                    break;
                }
                self.chill(&mut garbage, tmp, run.len, &mut rep)
                    .and_then(|()| self.remap_run(run, run.src, tmp, &mut mover, &mut rep))
                    .and_then(|()| {
                        let moved = Run {
                            items: run
                                .items
                                .iter()
                                .map(|it| Item {
                                    off: tmp + (it.off - run.src),
                                    ..*it
                                })
                                .collect(),
                            src: tmp,
                            len: run.len,
                            dst: run.dst,
                        };
                        if self.fenced(run.dst, run.len) {
                            // The run's own vacated source (part of its target) could not be
                            // taken back: the run stays in scratch space, which the next run
                            // through scratch would move onto (unmapping these regions) and
                            // then re-reserve. Stop here, consistent, the rest unmoved.
                            stranded = true;
                            return Ok(());
                        }
                        rep.regions_moved -= run.items.len();
                        rep.regions_remapped -= run.items.len();
                        rep.bytes_remapped -= run.len as u64;
                        self.chill(&mut garbage, run.dst, run.len, &mut rep)?;
                        self.remap_run(&moved, tmp, run.dst, &mut mover, &mut rep)
                    })
            };
            if let Err(e) = r {
                result = Err(e);
                break;
            }
            if stranded {
                break;
            }
        }
        self.flush_stale(&mut stale);
        rep.syscalls += mover.calls;
        rep.remap_calls += mover.remaps;
        // Keep the lowest free read-write pages warm, up to the budget; give the rest back,
        // in one call per free range past that point (after a compaction, the free tail).
        let garbage_end = garbage.last().map_or(0, |(o, l)| o + l);
        let free_end = self.cap.min(old_high.max(scratch_end).max(garbage_end));
        rep.syscalls += self.release_garbage(&garbage, free_end, &mut rep);
        self.rebuild_holes();
        rep.holes_after = self.holes.count();
        rep.warm_bytes_after = self.warm.total();
        rep.duration = t0.elapsed();
        result.map(|()| rep)
    }

    /// Packed targets for every region in address order, grouped into runs.
    fn plan(&self) -> Vec<Run> {
        let mut runs: Vec<Run> = Vec::new();
        let mut w = 0;
        let mut prev_end = usize::MAX;
        for (&off, &index) in &self.by_off {
            let Some(e) = self.slots[index as usize].entry else {
                continue;
            };
            if e.broken {
                // Never moved: the next regions pack after it.
                w = w.max(off + e.mapped);
                prev_end = usize::MAX;
                continue;
            }
            let t = self.target(w, &e);
            debug_assert!(t <= off);
            w = t + e.mapped;
            let item = Item {
                index,
                off,
                mapped: e.mapped,
            };
            match runs.last_mut() {
                Some(run) if prev_end == off && run.src - run.dst == off - t => {
                    run.items.push(item);
                    run.len += e.mapped;
                }
                _ => runs.push(Run {
                    items: vec![item],
                    src: off,
                    len: e.mapped,
                    dst: t,
                }),
            }
            prev_end = off + e.mapped;
        }
        runs.retain(|r| r.src != r.dst);
        runs
    }

    /// The lowest offset at or after `w` whose address is aligned for `e` and whose range
    /// misses every fence.
    fn target(&self, w: usize, e: &Entry) -> usize {
        let phase = self.phase(e.align);
        let up = |o: usize| align_up(o, e.align, phase).expect("offsets inside the arena");
        let mut t = up(w);
        loop {
            let clash = self
                .fences
                .range(..t + e.mapped)
                .next_back()
                .filter(|&(&o, &l)| o + l > t);
            match clash {
                Some((&o, &l)) => t = up(o + l),
                None => return t,
            }
        }
    }

    /// Brings `by_off` up to date with the regions copied since the last call (`stale`: their
    /// old keys): one removal and one insertion each, or, when many moved, `by_off` rebuilt
    /// from the entries in one pass (a copy loop over thousands of small regions would
    /// otherwise pay two tree updates per region).
    fn flush_stale(&mut self, stale: &mut Vec<(usize, u32)>) {
        if stale.is_empty() {
            return;
        }
        if stale.len() > self.by_off.len() / 8 {
            self.by_off = self
                .slots
                .iter()
                .enumerate()
                .filter_map(|(i, s)| {
                    s.entry
                        .filter(|e| e.mapped > 0 && !e.broken)
                        .map(|e| (e.off, i as u32))
                })
                .collect();
        } else {
            for &(old, index) in stale.iter() {
                if self.by_off.get(&old) == Some(&index) {
                    self.by_off.remove(&old);
                }
            }
            for &(_, index) in stale.iter() {
                if let Some(e) = self.slots[index as usize].entry {
                    self.by_off.insert(e.off, index);
                }
            }
        }
        stale.clear();
    }

    /// Records that the items of a run now start at `new_src` instead of `run_src`.
    fn rehome(&mut self, items: &[Item], run_src: usize, new_src: usize) {
        for it in items {
            self.by_off.remove(&it.off);
        }
        for it in items {
            let off = new_src + (it.off - run_src);
            self.by_off.insert(off, it.index);
            if let Some(e) = self.slots[it.index as usize].entry.as_mut() {
                e.off = off;
            }
        }
    }

    /// Copies a run to its target: maps `fresh` (free ranges between the target and the
    /// source that are neither the run's own pages nor pages vacated by earlier copies, which
    /// are still mapped), `memmove`s, and leaves the vacated pages for `release_garbage`.
    fn copy_run(
        &mut self,
        run: &Run,
        fresh: &[(usize, usize)],
        garbage: &mut RangeSet,
        rep: &mut CompactReport,
        stale: &mut Vec<(usize, u32)>,
    ) -> Result<(), ArenaError> {
        for &(start, len) in fresh {
            let end = start + len;
            rep.syscalls += 1;
            // SAFETY: `[start, end)` lies at or after the target and before the run's source,
            // so above every region already placed and below every region not yet moved:
            // free space of the arena, which is its own (holes it reserved, and sources
            // vacated earlier in this compaction that a MAP_FIXED_NOREPLACE took back; what
            // it could not take back is a fence, and the caller checked the run's target
            // for fences). `commit` only changes the protection.
            if let Err(e) = unsafe { sys::commit(self.base.add(start), end - start) } {
                // Linux: the range is still our reservation. Portable backend (`MAP_FIXED`):
                // it may have been released, so it is reclaimed before anything else.
                if !sys::HAS_MREMAP {
                    rep.syscalls += self.reclaim(start, end - start).0;
                }
                return Err(ArenaError::os("mmap", e));
            }
            garbage.insert(start, end - start);
            rep.pages_faulted += ((end - start) / sys::page_size()) as u64;
        }
        // SAFETY: both ranges are mapped read-write now and belong to the arena; `copy`
        // handles the overlap; `&mut self` means no slice of either is alive.
        unsafe {
            core::ptr::copy(self.base.add(run.src), self.base.add(run.dst), run.len);
        }
        let vacated = run.src.max(run.dst + run.len);
        garbage.remove(run.dst, run.len);
        garbage.insert(vacated, run.src + run.len - vacated);
        // The entries now; `by_off` later (`flush_stale`), before anything reads it.
        for it in &run.items {
            if let Some(e) = self.slots[it.index as usize].entry.as_mut() {
                e.off = run.dst + (it.off - run.src);
            }
            stale.push((it.off, it.index));
        }
        rep.regions_moved += run.items.len();
        rep.regions_copied += run.items.len();
        if fresh.is_empty() {
            rep.regions_copied_warm += run.items.len();
        } else {
            rep.regions_copied_fresh += run.items.len();
        }
        rep.bytes_copied += run.len as u64;
        Ok(())
    }

    /// Remaps a run from `src` (where its items are now) to `dst` (no overlap): one call, or
    /// one per region without the multi-mapping move; then takes the vacated pages back with
    /// `MAP_FIXED_NOREPLACE` (fencing what it cannot). On failure records what moved, settles
    /// a region cut in two, reclaims what is not ours any more, and returns the error.
    fn remap_run(
        &mut self,
        run: &Run,
        src: usize,
        dst: usize,
        mover: &mut Mover,
        rep: &mut CompactReport,
    ) -> Result<(), ArenaError> {
        let base = self.base;
        let at = |off: usize| base.wrapping_add(off);
        // Ownership of the destination (for `move_span`): `[dst, dst + len)` is free space
        // of the arena that `compact` checked for fences just before: holes it reserved, or
        // sources vacated earlier in this compaction that a MAP_FIXED_NOREPLACE took back
        // (what it could not take back is fenced), or the scratch space above every region
        // and every fence (holes). The source holds only this run's regions.
        let failure = if self.opts.multi_mapping_move {
            mover.move_span(at(src), run.len, at(dst)).err()
        } else {
            let mut fail = None;
            for it in &run.items {
                let rel = it.off - run.src;
                if let Err((e, lo, hi)) = mover.move_span(at(src + rel), it.mapped, at(dst + rel)) {
                    fail = Some((e, rel + lo, rel + hi));
                    break;
                }
            }
            fail
        };
        let Some((err, lo, hi)) = failure else {
            // The whole source is vacated: ours again only through NOREPLACE (else fenced).
            rep.syscalls += self.reclaim(src, run.len).0;
            self.rehome(&run.items, run.src, dst);
            rep.regions_moved += run.items.len();
            rep.regions_remapped += run.items.len();
            rep.bytes_remapped += run.len as u64;
            return Ok(());
        };
        // Whole regions below `lo` moved, whole regions at or above `hi` did not. When the
        // bounds differ (a foreign mapping in the vacated source made the source probe
        // under-count), every region touching `[lo, hi)` is broken: where its pages are is
        // not known, so both its ranges are fenced whole and never touched again.
        let mut moved = Vec::new();
        let mut cut = None;
        let mut broken = Vec::new();
        // Run-relative ends: `[0, vacated)` of the source no longer holds our pages;
        // `[kept, len)` of the destination holds none of them either (and may have been
        // released by the failed call, or vacated by an undo).
        let (mut vacated, mut kept) = (lo, hi);
        for it in &run.items {
            let rel = it.off - run.src;
            if rel + it.mapped <= lo {
                moved.push(*it);
            } else if lo == hi && rel < lo {
                cut = Some((*it, lo - rel));
            } else if lo < hi && rel < hi {
                broken.push((it.index, src + rel, dst + rel, it.mapped));
                vacated = vacated.min(rel);
                kept = kept.max(rel + it.mapped);
            }
        }
        if let Some((it, part)) = cut {
            let rel = it.off - run.src;
            match mover.settle(at(src + rel), it.mapped, at(dst + rel), part) {
                Some(true) => {
                    moved.push(it);
                    (vacated, kept) = (rel + it.mapped, rel + it.mapped);
                }
                Some(false) => (vacated, kept) = (rel, rel),
                None => {
                    // Both finishing and undoing were refused, or their progress could not
                    // be told: the region is broken, both its ranges fenced (each holds part
                    // of it).
                    broken.push((it.index, src + rel, dst + rel, it.mapped));
                    (vacated, kept) = (rel, rel + it.mapped);
                }
            }
        }
        rep.regions_moved += moved.len();
        rep.regions_remapped += moved.len();
        rep.bytes_remapped += moved.iter().map(|i| i.mapped as u64).sum::<u64>();
        // `it.off` is where each item is now (`src`-relative from the run's start).
        for it in &moved {
            self.by_off.remove(&it.off);
        }
        for it in &moved {
            let off = dst + (it.off - run.src);
            self.by_off.insert(off, it.index);
            if let Some(e) = self.slots[it.index as usize].entry.as_mut() {
                e.off = off;
            }
        }
        for (index, s, d, len) in broken {
            self.break_region(index, &[(s, len), (d, len)]);
        }
        rep.syscalls += self.reclaim(src, vacated).0;
        rep.syscalls += self.reclaim(dst + kept, run.len - kept).0;
        Err(ArenaError::os("mremap", err))
    }

    /// Before a remap onto `[dst, dst + len)` (free space of the arena, checked for fences):
    /// gives the read-write pages there back in one call over their span, because a move's
    /// destination must be `PROT_NONE` reservation for its progress to be bounded (see
    /// `Mover::moved_bounds`). On error nothing moved and the pages are still ours.
    fn chill(
        &mut self,
        garbage: &mut RangeSet,
        dst: usize,
        len: usize,
        rep: &mut CompactReport,
    ) -> Result<(), ArenaError> {
        let warm = garbage.within(dst, len);
        let (Some(&(first, _)), Some(&(last, last_len))) = (warm.first(), warm.last()) else {
            return Ok(());
        };
        rep.syscalls += 2;
        // SAFETY: `[first, last + last_len)` lies in `[dst, dst + len)`, free space of the
        // arena with no fence (the caller checked): read-write pages it committed and still
        // holds, and its reservation. `decommit` never unmaps on Linux (the only backend that
        // remaps), even when it fails.
        if let Err(e) = unsafe { sys::decommit(self.base.add(first), last + last_len - first) } {
            // Part of the span may now be `PROT_NONE` (or, with locked pages, still hold its
            // bytes): none of it may stay warm. Re-reserve it whole, as any failed decommit.
            garbage.remove(dst, len);
            let (calls, all) = self.discard_raw(first, last + last_len - first);
            rep.syscalls += calls;
            if all {
                return Ok(());
            }
            self.rebuild_holes();
            return Err(ArenaError::os("madvise", e));
        }
        garbage.remove(dst, len);
        rep.bytes_released += warm.iter().map(|&(_, l)| l as u64).sum::<u64>();
        Ok(())
    }

    /// After the moves: keeps the lowest free read-write pages (`garbage`) warm up to the
    /// budget, and gives the others back: every free range of the arena (no region, no
    /// fence) from the first page past the budget to `free_end` is re-reserved whole, in one
    /// call each (its other pages are reservation already: holes, or vacated sources taken
    /// back by `MAP_FIXED_NOREPLACE`). Returns the system calls made.
    fn release_garbage(
        &mut self,
        garbage: &RangeSet,
        free_end: usize,
        rep: &mut CompactReport,
    ) -> u64 {
        let budget = self.warm_budget();
        let mut kept = RangeSet::default();
        let mut cut = None;
        for (o, l) in garbage.iter() {
            let room = budget - kept.total();
            if l <= room {
                kept.insert(o, l);
            } else {
                kept.insert(o, room);
                cut = Some(o + room);
                break;
            }
        }
        self.warm = kept;
        let Some(first) = cut else {
            return 0;
        };
        let mut used: Vec<(usize, usize)> = self
            .by_off
            .iter()
            .map(|(&o, &i)| (o, self.slots[i as usize].entry.map_or(0, |e| e.mapped)))
            .chain(self.fences.iter().map(|(&o, &l)| (o, l)))
            .collect();
        used.sort_unstable();
        let mut free: Vec<(usize, usize)> = Vec::new();
        let mut cur = 0;
        for (o, l) in used {
            if o > cur {
                free.push((cur, o));
            }
            cur = cur.max(o + l);
        }
        if free_end > cur {
            free.push((cur, free_end));
        }
        let mut calls = 0;
        for (s, e) in free {
            let s = s.max(first);
            if e > s && garbage.touches(s, e - s) {
                rep.bytes_released += garbage
                    .within(s, e - s)
                    .iter()
                    .map(|&(_, l)| l as u64)
                    .sum::<u64>();
                calls += self.release(s, e);
            }
        }
        calls
    }

    fn release(&mut self, start: usize, end: usize) -> u64 {
        // `[start, end)` is free space of the arena (no region, no fence): its own pages
        // vacated by copies in this compaction or its reservation.
        self.discard_raw(start, end - start).0
    }
}
