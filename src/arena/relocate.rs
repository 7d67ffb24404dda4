//! Moving a `PageArena`'s mappings: one region to free space of the arena (`grow`), and every
//! region to a larger reservation when the arena cannot grow in place. Every fixed mapping
//! made here lands on a range the arena holds, and every range a move vacates is taken back
//! with `MAP_FIXED_NOREPLACE` or fenced (see `repair.rs`); each call site says which.

use super::compact::Mover;
use super::free::align_up;
use super::{ArenaError, Entry, PageArena, round_len};
use crate::region;
use crate::sys;

impl PageArena {
    /// Grows the region in slot `index` (entry `e`, with its new `len` already set) to
    /// `new_mapped` bytes by moving it to free space of the arena (growing the arena first if
    /// it must) and records it there. On error the region is where it was with its old
    /// length, or (after two refusals in a row by the kernel) broken.
    pub(super) fn move_region(
        &mut self,
        index: u32,
        e: Entry,
        new_mapped: usize,
    ) -> Result<(), ArenaError> {
        let old_len = self.slots[index as usize].entry.map_or(0, |o| o.len);
        let restore = |this: &mut Self| {
            if let Some(x) = this.slots[index as usize].entry.as_mut() {
                x.len = old_len;
            }
        };
        let dst = match self.find_space(new_mapped, e.align) {
            Ok(d) => d,
            Err(err) => {
                restore(self);
                return Err(err);
            }
        };
        let (src, mapped) = (e.off, e.mapped);
        let tail = new_mapped - mapped;
        let mut calls = 0;
        self.holes.remove(dst, new_mapped);
        // The move's destination must be `PROT_NONE` reservation (see `Mover::move_span`):
        // warm pages there are given back first, in one call over their span.
        let head_warm = if sys::HAS_MREMAP {
            self.warm.within(dst, mapped)
        } else {
            Vec::new()
        };
        if let (Some(&(first, _)), Some(&(last, last_len))) = (head_warm.first(), head_warm.last())
        {
            calls += 2;
            let span = last + last_len - first;
            // SAFETY: `[first, first + span)` lies in the hole just taken off `holes`: warm
            // pages and reservation of the arena, which it still holds; nothing refers to
            // them. `decommit` never unmaps on Linux, even when it fails.
            let r = unsafe { sys::decommit(self.base.add(first), span) };
            if let Err(err) = r {
                // Part of the span may be `PROT_NONE` now (or, with locked pages, still hold
                // its bytes): none of it may stay warm. Re-reserve it whole, as any failed
                // decommit, so that the hole holds only zeroed reservation.
                let _ = self.warm.remove(first, span);
                let (c, all) = self.discard_raw(first, span);
                calls += c;
                self.holes.insert(dst, new_mapped);
                if !all {
                    self.rebuild_holes();
                }
                restore(self);
                self.stats.regions.syscalls += calls;
                return Err(ArenaError::os("madvise", err));
            }
            self.warm.remove(dst, mapped);
        }
        // Claim the new tail first: if that fails, nothing has moved.
        match self.claim(dst + mapped, tail) {
            Ok(c) => {
                calls += c;
                // The portable backend copies into the head: its warm pages are zeroed first,
                // since the copy covers only the region's length.
                for (o, l) in self.warm.remove(dst, mapped) {
                    // SAFETY: warm pages: committed read-write memory of the arena in the hole
                    // just taken for this region; `&mut self`, nothing refers to them.
                    unsafe { self.base.add(o).write_bytes(0, l) };
                }
            }
            Err(err) => {
                // `claim` put the tail back (or rebuilt the holes, which then hold the head).
                if !self.holes.contains(dst, mapped) {
                    self.holes.insert(dst, mapped);
                }
                restore(self);
                self.stats.regions.syscalls += calls;
                return Err(ArenaError::os("mmap", err));
            }
        }
        let moved = if mapped == 0 {
            Ok(false)
        } else if sys::HAS_MREMAP {
            self.move_region_by_remap(index, src, mapped, dst, tail, &mut calls)
        } else {
            self.move_region_by_copy(src, mapped, dst, tail, old_len, &mut calls)
        };
        let vacated = match moved {
            Ok(v) => v,
            Err(err) => {
                restore(self);
                self.stats.regions.syscalls += calls;
                return Err(err);
            }
        };
        if mapped > 0 {
            self.by_off.remove(&src);
        }
        self.by_off.insert(dst, index);
        self.set_entry(
            index,
            Entry {
                off: dst,
                mapped: new_mapped,
                ..e
            },
        );
        calls += if vacated {
            // A move vacated the source: not ours until a NOREPLACE takes it back (fenced if
            // someone else mapped there meanwhile).
            self.reclaim_hole(src, mapped)
        } else {
            // A copy left the source ours: its pages go back in place.
            self.discard(src, mapped)
        };
        self.stats.regions.syscalls += calls;
        Ok(())
    }

    /// The `mremap` part of [`move_region`](Self::move_region): moves `[src, src + mapped)`
    /// onto `dst`. `Ok(true)`: done, the source is vacated (the caller reclaims it). On error
    /// the region is back at `src` and `[dst, dst + mapped + tail)` is a hole or fenced, or the
    /// region is broken.
    fn move_region_by_remap(
        &mut self,
        index: u32,
        src: usize,
        mapped: usize,
        dst: usize,
        tail: usize,
        calls: &mut u64,
    ) -> Result<bool, ArenaError> {
        let (src_p, dst_p) = (self.base.wrapping_add(src), self.base.wrapping_add(dst));
        let mut mover = Mover::new();
        // `move_span`'s destination `[dst, dst + mapped)` is part of the hole `move_region`
        // took off `holes`: the arena's reservation (see `Mover::move_span`).
        // The source is one region (read-write pages), the destination our `PROT_NONE`
        // reservation: `move_span`'s bounds hold.
        let (outcome, err) = match mover.move_span(src_p, mapped, dst_p) {
            Ok(()) => (Some(true), None),
            Err((e, 0, 0)) => (Some(false), Some(e)),
            Err((e, lo, hi)) if lo == hi => (mover.settle(src_p, mapped, dst_p, lo), Some(e)),
            // Where the pages are is not known (a foreign mapping in the vacated source).
            Err((e, _, _)) => (None, Some(e)),
        };
        *calls += mover.calls;
        let fail = |e: Option<sys::Errno>| ArenaError::os("mremap", e.unwrap_or(sys::Errno(0)));
        match outcome {
            Some(true) => {
                self.stats.regions.moved += 1;
                self.stats.regions.bytes_remapped += mapped as u64;
                Ok(true)
            }
            Some(false) => {
                // All of the region is at `src`. The destination's head was vacated by the
                // undo or may have been released by the failed call: reclaimed. The tail is
                // ours (committed in `move_region`): discarded.
                let (c, _) = self.reclaim(dst, mapped);
                let (d, _) = self.discard_raw(dst + mapped, tail);
                *calls += c + d;
                self.rebuild_holes();
                Err(fail(err))
            }
            None => {
                // Cut in two, and the kernel refused to finish or undo, or where the cut is
                // could not be told: both ranges are fenced (part of each may hold the
                // region's pages, or foreign memory), the region is broken.
                self.break_region(index, &[(src, mapped), (dst, mapped + tail)]);
                self.rebuild_holes();
                Err(fail(err))
            }
        }
    }

    /// The portable part of [`move_region`](Self::move_region): commits the destination and
    /// copies. `Ok(false)`: the source is still ours (the caller discards it).
    fn move_region_by_copy(
        &mut self,
        src: usize,
        mapped: usize,
        dst: usize,
        tail: usize,
        len: usize,
        calls: &mut u64,
    ) -> Result<bool, ArenaError> {
        *calls += 1;
        // SAFETY: `[dst, dst + mapped)` is part of the hole `move_region` took off `holes`:
        // the arena's reservation.
        if let Err(err) = unsafe { sys::commit(self.base.add(dst), mapped) } {
            // The tail is ours (committed in `move_region`); the head may have been released
            // by the failed `MAP_FIXED` of the portable backend: reclaimed.
            let (d, tail_ok) = self.discard_raw(dst + mapped, tail);
            let (c, head_ok) = self.reclaim(dst, mapped);
            *calls += c + d;
            if head_ok && tail_ok {
                self.holes.insert(dst, mapped + tail);
            } else {
                self.rebuild_holes();
            }
            return Err(ArenaError::os("mmap", err));
        }
        // SAFETY: both ranges are committed memory of the arena and distinct; `&mut self`
        // means no slice of either is alive.
        unsafe { core::ptr::copy_nonoverlapping(self.base.add(src), self.base.add(dst), len) };
        self.stats.regions.copied += 1;
        self.stats.regions.bytes_copied += len as u64;
        Ok(false)
    }

    /// Grows the reservation so that its free end holds at least `need` more bytes: in place
    /// when the addresses after it are free, else by moving the whole arena.
    pub(super) fn grow_arena(&mut self, need: usize) -> Result<(), ArenaError> {
        let overflow = ArenaError::CapacityOverflow { requested: need };
        let top_free = self.holes.ending_at(self.cap).map_or(0, |(_, l)| l);
        let want = self
            .cap
            .checked_add(need.saturating_sub(top_free))
            .ok_or(overflow)?;
        let new_cap = round_len(
            want.max(self.cap.saturating_mul(2))
                .max(self.opts.initial_capacity),
        )?;
        let mut calls = 0u32;
        if self.cap == 0 {
            // A fresh reservation: ours (`place_reservation` maps only without MAP_FIXED or
            // with MAP_FIXED_NOREPLACE).
            let base = region::place_reservation(new_cap, &mut calls)
                .map_err(|e| ArenaError::os("reserve", e))?;
            self.base = base;
            self.cap = new_cap;
            self.holes.insert(0, new_cap);
            self.stats.arena.syscalls += u64::from(calls);
            return Ok(());
        }
        let extra = new_cap - self.cap;
        let end = self.base.wrapping_add(self.cap);
        self.stats.arena.syscalls += 1;
        super::repair::window(end, extra);
        // MAP_FIXED_NOREPLACE: success makes `[end, end + extra)` ours, failure touches nothing.
        if sys::reserve(end as usize, extra).is_ok() {
            self.holes.insert(self.cap, extra);
            self.cap = new_cap;
            self.stats.arena.in_place += 1;
            return Ok(());
        }
        self.relocate_arena(new_cap)
    }

    /// A fresh reservation of `len` bytes whose start is congruent to the current base modulo
    /// `align` (so every region keeps its address alignment when the arena moves there).
    fn reserve_like(&mut self, len: usize, align: usize) -> Result<*mut u8, ArenaError> {
        let phase = self.base as usize & (align - 1);
        let mut calls = 0u32;
        if phase == 0
            && let Ok(p) = region::place_reservation(len, &mut calls)
        {
            if p as usize & (align - 1) == 0 {
                self.stats.arena.syscalls += u64::from(calls);
                return Ok(p);
            }
            calls += 1;
            // SAFETY: `place_reservation` just made this reservation for us (without
            // MAP_FIXED); nothing refers to it.
            let _ = unsafe { sys::unmap(p, len) };
        }
        let total = len
            .checked_add(align)
            .ok_or(ArenaError::CapacityOverflow { requested: len })?;
        calls += 1;
        // Without a hint the kernel picks free addresses: the reservation is ours.
        let raw = sys::reserve(0, total).map_err(|e| ArenaError::os("reserve", e))?;
        let start = align_up(raw as usize, align, phase).expect("inside the reservation");
        let head = start - raw as usize;
        let tail = total - head - len;
        // SAFETY: head and tail are the parts of the reservation we made two lines up outside
        // `[start, start + len)`; nothing refers to them.
        unsafe {
            if head > 0 {
                calls += 1;
                let _ = sys::unmap(raw, head);
            }
            if tail > 0 {
                calls += 1;
                let _ = sys::unmap(raw.add(head + len), tail);
            }
        }
        self.stats.arena.syscalls += u64::from(calls);
        Ok(raw.wrapping_add(head))
    }

    /// Moves every region of the arena to a new reservation of `new_cap` bytes whose base
    /// keeps the alignment phase of every live region. On error the arena is where it was
    /// (a region the kernel would not let back is broken).
    fn relocate_arena(&mut self, new_cap: usize) -> Result<(), ArenaError> {
        let align = self.max_align();
        let new_base = self.reserve_like(new_cap, align)?;
        let mut calls = 0u64;
        let res = if sys::HAS_MREMAP {
            self.relocate_by_remap(new_base, &mut calls)
        } else {
            self.relocate_by_copy(new_base, new_cap, &mut calls)
        };
        self.stats.arena.syscalls += calls;
        res?;
        let old_cap = self.cap;
        self.base = new_base;
        self.cap = new_cap;
        // Fences are ranges of the old reservation; the new one is all ours, and all
        // reservation (warm holes stayed behind and were given up with the old range).
        self.fences.clear();
        self.warm.clear();
        self.rebuild_holes();
        self.stats.arena.moved += 1;
        self.stats.arena.bytes_remapped += old_cap as u64;
        Ok(())
    }

    /// Relocation with `mremap`: one call per region, each moving the pages of one region
    /// only. (One multi-mapping call for the whole range would also move the holes, whose
    /// `PROT_NONE` pages a move that stopped part-way leaves indistinguishable from unmoved
    /// ones at the destination, so its progress could not be bounded from above once a
    /// foreign mapping lands in the vacated source.) On error every region is back in the old
    /// range or broken, and the new reservation is given up: leaked, since a failed call may
    /// have released part of it.
    fn relocate_by_remap(&mut self, new_base: *mut u8, calls: &mut u64) -> Result<(), ArenaError> {
        let mut mover = Mover::new();
        let regions: Vec<(usize, usize)> = self
            .by_off
            .iter()
            .map(|(&off, &i)| (off, self.slots[i as usize].entry.map_or(0, |e| e.mapped)))
            .collect();
        for (k, &(off, len)) in regions.iter().enumerate() {
            let (src, dst) = (self.base.wrapping_add(off), new_base.wrapping_add(off));
            // `[dst, dst + len)` is part of our fresh reservation (`PROT_NONE`), never
            // targeted before; the source is one region (read-write pages): `move_span`'s
            // bounds hold.
            let Err((err, lo, hi)) = mover.move_span(src, len, dst) else {
                // The old place is vacated and given up: never touched again.
                super::repair::window(src, len);
                continue;
            };
            let outcome = match (lo, hi) {
                (0, 0) => Some(false),
                (lo, hi) if lo == hi => mover.settle(src, len, dst, lo),
                // Where its pages are is not known (a foreign mapping in the vacated source).
                _ => None,
            };
            match outcome {
                Some(true) => continue,
                Some(false) => {}
                None => {
                    // Part of it may be in the new range (leaked with it), part of its old
                    // place vacated and maybe anyone's: the old place is fenced whole.
                    let index = self.by_off[&off];
                    self.break_region(index, &[(off, len)]);
                }
            }
            // Bring the regions already moved back into their vacated old places: each only
            // once a NOREPLACE has made its old place ours again, else it is broken.
            for &(off, len) in regions[..k].iter().rev() {
                let (src, dst) = (self.base.wrapping_add(off), new_base.wrapping_add(off));
                mover.calls += 1;
                super::repair::window(src, len);
                let back = sys::reserve(src as usize, len).is_ok()
                    // SAFETY of the move: the old place is ours again (NOREPLACE just now),
                    // the new one holds our moved region (see `Mover::move_span`).
                    && mover.move_span(dst, len, src).is_ok();
                if !back {
                    // Its pages stay in the new range (leaked with it), or are split between
                    // both; the old place may be anyone's, or partly ours: fenced.
                    let index = self.by_off[&off];
                    self.break_region(index, &[(off, len)]);
                }
            }
            *calls += mover.calls;
            // The new reservation held moved regions and may have parts released by the
            // failed call: leaked whole.
            self.rebuild_holes();
            return Err(ArenaError::os("mremap", err));
        }
        *calls += mover.calls;
        // The old range now holds holes (the arena's reservation, which it gives up), vacated
        // sources (not ours: left alone) and fences (left alone).
        let holes: Vec<(usize, usize)> = self.holes.iter().collect();
        for (off, len) in holes {
            *calls += 1;
            // SAFETY: a hole is a reservation the arena made and still holds (holes never
            // include vacated or fenced ranges); it gives it up now.
            let _ = unsafe { sys::unmap(self.base.add(off), len) };
        }
        Ok(())
    }

    /// Relocation without `mremap`: commit each region in the new range and copy it; the old
    /// range is given up whole (but its fences). On error the new range is given up where it
    /// is provably ours.
    fn relocate_by_copy(
        &mut self,
        new_base: *mut u8,
        new_cap: usize,
        calls: &mut u64,
    ) -> Result<(), ArenaError> {
        let regions: Vec<(usize, usize, usize)> = self
            .by_off
            .iter()
            .filter_map(|(&off, &i)| self.slots[i as usize].entry.map(|e| (off, e.mapped, e.len)))
            .collect();
        for &(off, mapped, len) in &regions {
            *calls += 1;
            // SAFETY: `[new_base + off, + mapped)` is part of the reservation made in
            // `relocate_arena`, committed at most once.
            if let Err(err) = unsafe { sys::commit(new_base.add(off), mapped) } {
                // The failed piece may have been released (a `MAP_FIXED` here): leaked. The
                // rest of the new range is ours: given up.
                // SAFETY: `[0, off)` and `[off + mapped, new_cap)` of the new reservation are
                // ours: reservation, or regions we committed and copied into.
                unsafe {
                    let _ = sys::unmap(new_base, off);
                    let _ = sys::unmap(new_base.add(off + mapped), new_cap - off - mapped);
                }
                *calls += 2;
                return Err(ArenaError::os("mmap", err));
            }
            // SAFETY: the source is the region's committed memory, the destination was just
            // committed; `&mut self` means no slice of either is alive.
            unsafe { core::ptr::copy_nonoverlapping(self.base.add(off), new_base.add(off), len) };
            self.stats.arena.bytes_copied += len as u64;
        }
        self.stats.arena.copied += 1;
        // Copying vacates nothing: every page of the old range but its fences is ours.
        *calls += self.unmap_all_but_fences(self.base, self.cap);
        Ok(())
    }
}
