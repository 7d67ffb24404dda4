//! What a `PageArena` does when a range may no longer be its own: taking a vacated range back
//! (`MAP_FIXED_NOREPLACE`, the only proof of ownership after a window), fencing what it cannot
//! take back, giving pages back without unmapping, the holes recomputed around regions and
//! fences, broken regions, and `Drop`.
//!
//! # The rule
//! A range is the arena's while it holds a mapping there that it made and that nothing could
//! have replaced since: its reservation, a region it committed, a mapping it moved onto its own
//! reservation. It stops being the arena's the instant a plain `mremap` move vacates it, or a
//! failed call may have released it (a failed `MREMAP_FIXED` unmaps its destination before
//! most of its checks; a failed `MAP_FIXED` leaves a gap on kernels before 6.12): from then on
//! another thread's `mmap` may land there, and "it is mapped" or `EEXIST` proves nothing. Such
//! a range is only ever passed to [`PageArena::reclaim`]: a `MAP_FIXED_NOREPLACE` that
//! succeeds makes it the arena's again; what it cannot take back becomes a fence, which the
//! arena never maps over, moves, unmaps or hands out. Leaking a fence is the correct answer.

use super::PageArena;
use crate::sys;

/// Whether [`sys::commit`] and [`sys::decommit`] never unmap, even on failure, so a failed
/// call leaves the range the arena's: true of both backends (`mprotect` and `MADV_DONTNEED` on
/// Linux; the portable backend keeps its maps and zeroes in place). The paths for a backend
/// whose `commit` may leave a gap stay, behind this constant.
const COMMIT_KEEPS_MAPPING: bool = true;

/// A window inside an arena operation (see `window_hook`): nothing outside tests.
#[inline(always)]
pub(super) fn window(addr: *mut u8, len: usize) {
    #[cfg(test)]
    window_hook::open(addr, len);
    #[cfg(not(test))]
    let _ = (addr, len);
}

impl PageArena {
    /// Takes back `[off, off + len)`, a range that is not the arena's right now (a move
    /// vacated it, or a failed call may have released it) and is in neither `holes` nor
    /// `by_off`: `MAP_FIXED_NOREPLACE` over it, and over the parts of it that are unmapped
    /// when the whole cannot be; every part that cannot be taken back (mapped by someone,
    /// or still mapped by us but not provably so) becomes a fence. Does not touch `holes`.
    /// Returns the system calls made and whether all of it was taken back.
    pub(super) fn reclaim(&mut self, off: usize, len: usize) -> (u64, bool) {
        if len == 0 {
            return (0, true);
        }
        let mut calls = 1;
        window(self.base.wrapping_add(off), len);
        if sys::reserve(self.base.wrapping_add(off) as usize, len).is_ok() {
            return (calls, true);
        }
        // Split until each part is taken back, or is mapped all through (fenced whole), or is
        // one page that cannot be taken back. A page found mapped here is never assumed to be
        // ours: the range was not ours when this began.
        let page = sys::page_size();
        let mut stack = vec![(off, len)];
        while let Some((o, l)) = stack.pop() {
            calls += 1;
            if sys::is_mapped(self.base.wrapping_add(o), l) || l == page {
                self.add_fence(o, l);
                continue;
            }
            let half = (l / page).div_ceil(2) * page;
            for (po, pl) in [(o + half, l - half), (o, half)] {
                calls += 1;
                if sys::reserve(self.base.wrapping_add(po) as usize, pl).is_err() {
                    stack.push((po, pl));
                }
            }
        }
        (calls, false)
    }

    /// [`reclaim`](Self::reclaim), then the parts taken back become holes. `by_off` must be
    /// up to date. Returns the system calls made.
    pub(super) fn reclaim_hole(&mut self, off: usize, len: usize) -> u64 {
        let (calls, all) = self.reclaim(off, len);
        if all {
            self.holes.insert(off, len);
        } else {
            self.rebuild_holes();
        }
        calls
    }

    /// After `commit` of `[off, off + len)` (a former hole, taken off `holes`) failed: on
    /// Linux the range is still the arena's reservation and becomes a hole again; where
    /// `commit` is a `MAP_FIXED` the failure may have released it, so it is reclaimed.
    pub(super) fn after_failed_commit(&mut self, off: usize, len: usize) {
        if COMMIT_KEEPS_MAPPING {
            self.holes.insert(off, len);
        } else {
            self.stats.regions.syscalls += self.reclaim_hole(off, len);
        }
    }

    /// Gives the pages of `[off, off + len)` (the arena's own memory, no longer a region's:
    /// not in `by_off`, not in `holes`) back to the kernel and makes them reservation again,
    /// without a window. Returns the system calls made and whether the range is the arena's
    /// reservation now (else it was fenced, wholly or in part). Does not touch `holes`.
    pub(super) fn discard_raw(&mut self, off: usize, len: usize) -> (u64, bool) {
        if len == 0 {
            return (0, true);
        }
        let p = self.base.wrapping_add(off);
        // SAFETY: `[off, off + len)` is memory the arena committed and still holds (the
        // caller's contract), and nothing refers to its contents; `decommit` never unmaps on
        // Linux.
        if unsafe { sys::decommit(p, len) }.is_ok() {
            return (1, true);
        }
        if COMMIT_KEEPS_MAPPING {
            // The range is still mapped by us (decommit never unmaps): a reservation in one
            // call instead, replacing only our own mapping.
            // SAFETY: the failed `decommit` left `[off, off + len)` mapped, and it is the
            // arena's (caller's contract); nothing refers to it.
            if unsafe { sys::reserve_fixed(p, len) }.is_ok() {
                return (2, true);
            }
        }
        // A failed MAP_FIXED may have released the range: from here on only NOREPLACE may
        // claim it.
        let (calls, all) = self.reclaim(off, len);
        (2 + calls, all)
    }

    /// [`discard_raw`](Self::discard_raw), then the range becomes a hole (what of it is the
    /// arena's). `by_off` must be up to date. Returns the system calls made.
    pub(super) fn discard(&mut self, off: usize, len: usize) -> u64 {
        let (calls, all) = self.discard_raw(off, len);
        if all {
            self.holes.insert(off, len);
        } else {
            self.rebuild_holes();
        }
        calls
    }

    /// Turns `[off, off + len)`, just taken off `holes` for a region, into zeroed read-write
    /// memory: its warm parts (committed pages of ours) are zeroed with `memset`, its cold
    /// parts (our reservation) committed, one call each. A range that is warm all through
    /// needs no system call. On error the range is a hole again (what was committed is warm)
    /// and nothing is lost. Returns the system calls made.
    pub(super) fn claim(&mut self, off: usize, len: usize) -> Result<u64, sys::Errno> {
        let warm = self.warm.remove(off, len);
        let mut cold = Vec::new();
        let mut at = off;
        for &(o, l) in warm.iter().chain(core::iter::once(&(off + len, 0))) {
            if o > at {
                cold.push((at, o - at));
            }
            at = o + l;
        }
        let mut calls = 0;
        for (k, &(o, l)) in cold.iter().enumerate() {
            calls += 1;
            // SAFETY: `[o, o + l)` is part of a hole that is not warm: a reservation the
            // arena made and still holds (holes never include vacated or fenced ranges);
            // `commit` only changes its protection on Linux.
            if let Err(e) = unsafe { sys::commit(self.base.add(o), l) } {
                // Everything but the failed piece is ours and mapped: a hole again, warm
                // where it is committed. The failed piece as after any failed commit.
                for &(wo, wl) in warm.iter().chain(&cold[..k]) {
                    self.warm.insert(wo, wl);
                }
                self.holes.insert(off, o - off);
                self.holes.insert(o + l, off + len - o - l);
                self.after_failed_commit(o, l);
                return Err(e);
            }
        }
        for (o, l) in warm {
            // SAFETY: warm pages are committed read-write memory of the arena, no region's
            // (they were a hole until now); `&mut self` means nothing refers to them.
            unsafe { self.base.add(o).write_bytes(0, l) };
        }
        Ok(calls)
    }

    /// `[off, off + len)`, a region's pages no more (not in `by_off`, not in `holes`),
    /// becomes a hole: warm (kept as it is) when it is small enough and the budget allows,
    /// else given back at once (see [`discard`](Self::discard)). `mapped_bytes` must be up to
    /// date. Returns the system calls made.
    pub(super) fn give_back(&mut self, off: usize, len: usize) -> u64 {
        if self.opts.warm_fraction > 0.0 && len <= self.opts.warm_max_piece {
            self.holes.insert(off, len);
            self.warm.insert(off, len);
            self.trim_warm(self.warm_budget())
        } else {
            // The live bytes fell: so did the budget, which the warm pages must keep to.
            self.discard(off, len) + self.trim_warm(self.warm_budget())
        }
    }

    /// The most warm bytes the arena keeps now (see `ArenaOptions::warm_holes`).
    pub(super) fn warm_budget(&self) -> usize {
        let b = (self.mapped_bytes as f64 * self.opts.warm_fraction) as usize;
        b & !(sys::page_size() - 1)
    }

    /// Gives back the highest warm pages until at most `budget` bytes are warm. Returns the
    /// system calls made.
    pub(super) fn trim_warm(&mut self, budget: usize) -> u64 {
        let mut calls = 0;
        let mut fenced = false;
        while self.warm.total() > budget {
            let Some((o, l)) = self.warm.last() else {
                break;
            };
            let excess = (self.warm.total() - budget).min(l);
            let cut = o + l - excess;
            self.warm.remove(cut, excess);
            // `[cut, o + l)` is warm: pages the arena committed and still holds, in `holes`.
            let (c, all) = self.discard_raw(cut, excess);
            calls += c;
            fenced |= !all;
        }
        if fenced {
            self.rebuild_holes();
        }
        calls
    }

    /// Whether every warm range lies in a hole (one lookup per warm range).
    fn warm_in_holes(&self) -> bool {
        self.warm.iter().all(|(o, l)| self.holes.contains(o, l))
    }

    /// Records `[off, off + len)` as a fence, merged with the fences it overlaps or touches.
    pub(super) fn add_fence(&mut self, mut off: usize, len: usize) {
        if len == 0 {
            return;
        }
        let mut end = off + len;
        while let Some((&o, &l)) = self.fences.range(..=end).next_back() {
            if o + l < off {
                break;
            }
            self.fences.remove(&o);
            off = off.min(o);
            end = end.max(o + l);
        }
        self.fences.insert(off, end - off);
    }

    /// Whether `[off, off + len)` touches a fence.
    pub(super) fn fenced(&self, off: usize, len: usize) -> bool {
        self.fences
            .range(..off + len)
            .next_back()
            .is_some_and(|(&o, &l)| o + l > off)
    }

    /// The end of the highest fence (0 if none).
    pub(super) fn fences_end(&self) -> usize {
        self.fences.last_key_value().map_or(0, |(&o, &l)| o + l)
    }

    /// Marks the region in slot `index` broken (see `Entry::broken`): off `by_off`, its
    /// pages no longer counted, every range in `ranges` fenced.
    pub(super) fn break_region(&mut self, index: u32, ranges: &[(usize, usize)]) {
        for &(o, l) in ranges {
            self.add_fence(o, l);
        }
        let Some(e) = self.slots[index as usize].entry.as_mut() else {
            return;
        };
        if e.mapped > 0 && self.by_off.get(&e.off) == Some(&index) {
            self.by_off.remove(&e.off);
        }
        self.mapped_bytes -= e.mapped;
        e.mapped = 0;
        e.off = 0;
        e.broken = true;
    }

    /// Recomputes the holes from the regions and fences.
    pub(super) fn rebuild_holes(&mut self) {
        self.holes.clear();
        let mut cur = 0;
        let used = self
            .by_off
            .iter()
            .map(|(&o, &i)| (o, self.slots[i as usize].entry.map_or(0, |e| e.mapped)))
            .chain(self.fences.iter().map(|(&o, &l)| (o, l)));
        let mut used: Vec<(usize, usize)> = used.collect();
        used.sort_unstable();
        for (o, l) in used {
            if o > cur {
                self.holes.insert(cur, o - cur);
            }
            cur = cur.max(o + l);
        }
        if self.cap > cur {
            self.holes.insert(cur, self.cap - cur);
        }
        // Warm pages stay warm only where they are still holes.
        if !self.warm.is_empty() && !self.warm_in_holes() {
            let old = core::mem::take(&mut self.warm);
            for (o, l) in self.holes.iter() {
                for (wo, wl) in old.within(o, l) {
                    self.warm.insert(wo, wl);
                }
            }
        }
    }

    /// Unmaps every part of `[base, base + cap)` that is not a fence: the arena's own
    /// regions and reservation (the `cap` invariant), which it gives up now. Returns the
    /// system calls made.
    pub(super) fn unmap_all_but_fences(&mut self, base: *mut u8, cap: usize) -> u64 {
        let mut cur = 0;
        let mut calls = 0;
        let fences: Vec<(usize, usize)> = self.fences.iter().map(|(&o, &l)| (o, l)).collect();
        for (o, l) in fences.into_iter().chain(core::iter::once((cap, 0))) {
            if o > cur {
                calls += 1;
                // SAFETY: `[cur, o)` holds no fence, so by the `cap` invariant every page of
                // it is a region's or a hole's: mappings the arena made and still holds, none
                // vacated since (vacated ranges are reclaimed or fenced before any method
                // returns). The caller gives them up and no slice of them is alive.
                let _ = unsafe { sys::unmap(base.add(cur), o - cur) };
            }
            cur = cur.max(o + l);
        }
        calls
    }
}

impl Drop for PageArena {
    fn drop(&mut self) {
        if self.cap == 0 {
            return;
        }
        // Fences stay mapped: they are not ours, or not provably so (leaked on purpose).
        self.unmap_all_but_fences(self.base, self.cap);
    }
}

/// Test hook: stands for another thread that maps memory at an instant inside an arena
/// operation when a range is not the arena's (a source a move just vacated, a destination a
/// failed call may have released, the addresses past the arena's end it is about to claim).
/// Every such window calls [`window`] with the range; the regression tests map foreign pages
/// there at random and check that the arena never touches them and never hands out a region
/// over pages it does not hold read-write.
#[cfg(test)]
pub(super) mod window_hook {
    use core::cell::Cell;

    /// What the hook is given: the start and length of the range that is open right now.
    pub(in crate::arena) type Hook = fn(addr: *mut u8, len: usize);

    thread_local! {
        static HOOK: Cell<Option<Hook>> = const { Cell::new(None) };
    }

    /// Sets (or clears) the current thread's hook; it stays set until cleared.
    pub(in crate::arena) fn set(hook: Option<Hook>) {
        HOOK.with(|h| h.set(hook));
    }

    /// Runs the current thread's hook, if any.
    pub(in crate::arena) fn open(addr: *mut u8, len: usize) {
        if let Some(h) = HOOK.with(Cell::get) {
            h(addr, len);
        }
    }
}
