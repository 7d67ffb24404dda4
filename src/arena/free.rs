//! Free space of an arena: the holes between regions, by offset (to coalesce neighbours) and
//! by size (best fit in O(log n)). Offsets and lengths are page multiples. No unsafe.

use std::collections::{BTreeMap, BTreeSet};

/// Holes of an arena's address range. Invariant: `by_off` and `by_size` hold the same holes,
/// none empty, none overlapping or touching (touching holes are merged on insert).
#[derive(Debug, Default, Clone)]
pub(super) struct FreeList {
    by_off: BTreeMap<usize, usize>,
    by_size: BTreeSet<(usize, usize)>,
    total: usize,
}

impl FreeList {
    /// Total free bytes.
    #[cfg(test)]
    pub(super) fn total(&self) -> usize {
        self.total
    }

    /// Number of holes.
    pub(super) fn count(&self) -> usize {
        self.by_off.len()
    }

    /// The hole that starts at `off`, if any.
    pub(super) fn starting_at(&self, off: usize) -> Option<usize> {
        self.by_off.get(&off).copied()
    }

    /// The hole that ends exactly at `end`, if any: `(off, len)`.
    pub(super) fn ending_at(&self, end: usize) -> Option<(usize, usize)> {
        self.by_off
            .range(..end)
            .next_back()
            .map(|(&o, &l)| (o, l))
            .filter(|&(o, l)| o + l == end)
    }

    /// Iterates holes in address order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.by_off.iter().map(|(&o, &l)| (o, l))
    }

    fn put(&mut self, off: usize, len: usize) {
        debug_assert!(len > 0);
        self.by_off.insert(off, len);
        self.by_size.insert((len, off));
    }

    fn take(&mut self, off: usize) -> usize {
        let len = self.by_off.remove(&off).expect("hole exists");
        self.by_size.remove(&(len, off));
        len
    }

    /// Adds `[off, off + len)` as free, merging with the holes it touches.
    pub(super) fn insert(&mut self, mut off: usize, mut len: usize) {
        if len == 0 {
            return;
        }
        self.total += len;
        if let Some((prev, plen)) = self.ending_at(off) {
            self.take(prev);
            off = prev;
            len += plen;
        }
        if let Some(nlen) = self.starting_at(off + len) {
            self.take(off + len);
            len += nlen;
        }
        self.put(off, len);
    }

    /// Marks `[off, off + len)` as used; it must lie inside one hole.
    pub(super) fn remove(&mut self, off: usize, len: usize) {
        if len == 0 {
            return;
        }
        let (hoff, hlen) = self
            .by_off
            .range(..=off)
            .next_back()
            .map(|(&o, &l)| (o, l))
            .expect("range lies in a hole");
        debug_assert!(hoff + hlen >= off + len, "range lies in a hole");
        self.take(hoff);
        self.total -= len;
        if off > hoff {
            self.put(hoff, off - hoff);
        }
        let end = off + len;
        if hoff + hlen > end {
            self.put(end, hoff + hlen - end);
        }
    }

    /// Whether `[off, off + len)` is entirely free.
    pub(super) fn contains(&self, off: usize, len: usize) -> bool {
        self.by_off
            .range(..=off)
            .next_back()
            .is_some_and(|(&o, &l)| o + l >= off + len)
    }

    /// The best-fitting place for `len` bytes at an offset `o` with `o % align == phase`
    /// (`align` a power of two, `phase < align`): the smallest hole that can hold it, at the
    /// lowest such offset in that hole. The arena passes the phase that makes the *address*
    /// `base + o` a multiple of `align`.
    pub(super) fn best_fit(&self, len: usize, align: usize, phase: usize) -> Option<usize> {
        for &(hlen, hoff) in self.by_size.range((len, 0)..) {
            let start = align_up(hoff, align, phase)?;
            if start.checked_add(len)? <= hoff + hlen {
                return Some(start);
            }
        }
        None
    }

    /// Removes everything.
    pub(super) fn clear(&mut self) {
        self.by_off.clear();
        self.by_size.clear();
        self.total = 0;
    }
}

/// A set of disjoint, non-touching ranges (offset -> length; touching ranges merge), with
/// their total: the warm pages of an arena, and the pages a compaction left read-write.
#[derive(Debug, Default, Clone)]
pub(super) struct RangeSet {
    ranges: BTreeMap<usize, usize>,
    total: usize,
}

impl RangeSet {
    /// Total bytes.
    pub(super) fn total(&self) -> usize {
        self.total
    }

    /// Whether the set is empty.
    pub(super) fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Iterates ranges in address order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.ranges.iter().map(|(&o, &l)| (o, l))
    }

    /// The highest range.
    pub(super) fn last(&self) -> Option<(usize, usize)> {
        self.ranges.last_key_value().map(|(&o, &l)| (o, l))
    }

    /// Adds `[off, off + len)` (which may overlap ranges already in the set).
    pub(super) fn insert(&mut self, off: usize, len: usize) {
        if len == 0 {
            return;
        }
        // Whatever of it is in the set already goes first, so that the total stays exact.
        if self.touches(off, len) {
            self.remove(off, len);
        }
        let (mut off, mut len) = (off, len);
        self.total += len;
        if let Some((&p, &pl)) = self.ranges.range(..off).next_back()
            && p + pl == off
        {
            self.ranges.remove(&p);
            off = p;
            len += pl;
        }
        if let Some(nl) = self.ranges.remove(&(off + len)) {
            len += nl;
        }
        self.ranges.insert(off, len);
    }

    /// Where the ranges touching `[off, ..)` begin: the start of the range that holds `off`,
    /// else `off`.
    fn first_touching(&self, off: usize) -> usize {
        self.ranges
            .range(..off)
            .next_back()
            .filter(|&(&o, &l)| o + l > off)
            .map_or(off, |(&o, _)| o)
    }

    /// Removes `[off, off + len)` from the set; returns the pieces that were in it, in
    /// address order.
    pub(super) fn remove(&mut self, off: usize, len: usize) -> Vec<(usize, usize)> {
        let end = off + len;
        let mut out = Vec::new();
        if !self.touches(off, len) {
            return out;
        }
        let first = self.first_touching(off);
        let hits: Vec<(usize, usize)> = self
            .ranges
            .range(first..end)
            .map(|(&o, &l)| (o, l))
            .collect();
        for (o, l) in hits {
            self.ranges.remove(&o);
            let (s, e) = (o.max(off), (o + l).min(end));
            if o < s {
                self.ranges.insert(o, s - o);
            }
            if o + l > e {
                self.ranges.insert(e, o + l - e);
            }
            self.total -= e - s;
            out.push((s, e - s));
        }
        out
    }

    /// The pieces of `[off, off + len)` in the set, in address order (the set is unchanged).
    pub(super) fn within(&self, off: usize, len: usize) -> Vec<(usize, usize)> {
        let end = off + len;
        let first = self.first_touching(off);
        self.ranges
            .range(first..end)
            .map(|(&o, &l)| (o.max(off), (o + l).min(end)))
            .filter(|&(s, e)| e > s)
            .map(|(s, e)| (s, e - s))
            .collect()
    }

    /// Whether any of `[off, off + len)` is in the set.
    pub(super) fn touches(&self, off: usize, len: usize) -> bool {
        len > 0
            && self
                .ranges
                .range(..off + len)
                .next_back()
                .is_some_and(|(&o, &l)| o + l > off)
    }

    /// The parts of `[off, off + len)` not in the set, in address order.
    pub(super) fn gaps(&self, off: usize, len: usize) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        let mut at = off;
        for (s, l) in self.within(off, len) {
            if s > at {
                out.push((at, s - at));
            }
            at = s + l;
        }
        if at < off + len {
            out.push((at, off + len - at));
        }
        out
    }

    /// Removes everything.
    pub(super) fn clear(&mut self) {
        self.ranges.clear();
        self.total = 0;
    }
}

/// The lowest `o >= at` with `o % align == phase` (`align` a power of two, `phase < align`).
pub(super) fn align_up(at: usize, align: usize, phase: usize) -> Option<usize> {
    debug_assert!(align.is_power_of_two() && phase < align);
    let r = at & (align - 1);
    let add = phase.wrapping_sub(r) & (align - 1);
    at.checked_add(add)
}

#[cfg(test)]
mod tests {
    use super::{FreeList, RangeSet, align_up};

    #[test]
    fn range_set_merges_splits_and_counts() {
        let mut r = RangeSet::default();
        r.insert(0, 4);
        r.insert(8, 4);
        r.insert(2, 8); // overlaps both: one range
        assert_eq!(r.iter().collect::<Vec<_>>(), [(0, 12)]);
        assert_eq!(r.total(), 12);
        assert_eq!(r.remove(3, 2), [(3, 2)]);
        assert_eq!(r.iter().collect::<Vec<_>>(), [(0, 3), (5, 7)]);
        assert_eq!(r.within(2, 5), [(2, 1), (5, 2)]);
        assert_eq!(r.gaps(2, 5), [(3, 2)]);
        assert!(r.touches(2, 2) && !r.touches(3, 2));
        assert_eq!(r.remove(0, 100), [(0, 3), (5, 7)]);
        assert!(r.is_empty() && r.total() == 0);
    }

    #[test]
    fn insert_merges_and_remove_splits() {
        let mut f = FreeList::default();
        f.insert(0, 4);
        f.insert(8, 4);
        assert_eq!(f.count(), 2);
        f.insert(4, 4);
        assert_eq!(f.iter().collect::<Vec<_>>(), [(0, 12)]);
        f.remove(4, 2);
        assert_eq!(f.iter().collect::<Vec<_>>(), [(0, 4), (6, 6)]);
        assert_eq!(f.total(), 10);
        assert!(f.contains(6, 6) && !f.contains(3, 2));
    }

    #[test]
    fn best_fit_prefers_the_smallest_hole_that_fits_aligned() {
        let mut f = FreeList::default();
        f.insert(0, 100);
        f.insert(200, 10);
        f.insert(300, 20);
        assert_eq!(f.best_fit(10, 1, 0), Some(200));
        assert_eq!(f.best_fit(11, 1, 0), Some(300));
        assert_eq!(f.best_fit(10, 16, 0), Some(304));
        assert_eq!(f.best_fit(20, 16, 0), Some(0));
        assert_eq!(f.best_fit(101, 1, 0), None);
        // A phase: offsets 4 mod 16 (an arena whose base is 12 mod 16).
        assert_eq!(f.best_fit(10, 16, 4), Some(308));
        assert_eq!(f.best_fit(20, 16, 4), Some(4));
    }

    #[test]
    fn align_up_with_phase() {
        assert_eq!(align_up(0, 16, 4), Some(4));
        assert_eq!(align_up(4, 16, 4), Some(4));
        assert_eq!(align_up(5, 16, 4), Some(20));
        assert_eq!(align_up(17, 16, 0), Some(32));
        assert_eq!(align_up(usize::MAX, 16, 4), None);
    }
}
