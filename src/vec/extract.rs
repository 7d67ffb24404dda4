//! `extract_if` and its iterator `ExtractIf`: remove the elements of a range that a closure
//! picks, yielding them, in one pass that back-shifts the kept ones (std's algorithm).

use super::{RemapVec, slice_range};
use core::fmt;
use core::iter::FusedIterator;
use core::ops::{Range, RangeBounds};
use core::ptr;

impl<T> RemapVec<T> {
    /// Returns an iterator that removes and yields the elements of `range` for which `filter`
    /// returns true, like [`Vec::extract_if`]. An element for which it returns false, or
    /// panics, stays. `filter` may change the elements it sees.
    ///
    /// Elements are only visited as the iterator is advanced; if it is dropped early, the
    /// rest are kept (use `.for_each(drop)` to remove them all). Elements after the range are
    /// moved down once, when the iterator is dropped.
    ///
    /// # Panics
    /// If the range is out of bounds or its start is after its end.
    ///
    /// ```
    /// # use remapvec::RemapVec;
    /// let mut numbers = RemapVec::from([1, 2, 3, 4, 5, 6, 8, 9, 11, 13, 14, 15]);
    /// let evens: Vec<_> = numbers.extract_if(.., |x| *x % 2 == 0).collect();
    /// assert_eq!(evens, [2, 4, 6, 8, 14]);
    /// assert_eq!(numbers, [1, 3, 5, 9, 11, 13, 15]);
    ///
    /// let mut items = RemapVec::from([0, 0, 0, 0, 0, 0, 0, 1, 2, 1, 2, 1, 2]);
    /// let ones = items.extract_if(7.., |x| *x == 1).count();
    /// assert_eq!(ones, 3);
    /// assert_eq!(items, [0, 0, 0, 0, 0, 0, 0, 2, 2, 2]);
    /// ```
    #[track_caller]
    pub fn extract_if<F, R>(&mut self, range: R, filter: F) -> ExtractIf<'_, T, F>
    where
        F: FnMut(&mut T) -> bool,
        R: RangeBounds<usize>,
    {
        let old_len = self.len;
        let Range { start, end } = slice_range(range, old_len);
        // Until the iterator is dropped the vector claims no elements: leaking the iterator
        // leaks the elements, it never exposes a moved-out one.
        self.len = 0;
        ExtractIf {
            vec: self,
            idx: start,
            end,
            del: 0,
            old_len,
            pred: filter,
        }
    }
}

/// The iterator of [`RemapVec::extract_if`].
///
/// ```
/// # use remapvec::RemapVec;
/// let mut v = RemapVec::from([1, 2, 3, 4]);
/// let mut it = v.extract_if(1.., |x| *x > 2);
/// assert_eq!(it.next(), Some(3));
/// drop(it); // 4 was not visited: it stays
/// assert_eq!(v, [1, 2, 4]);
/// ```
#[must_use = "iterators are lazy and do nothing unless consumed"]
pub struct ExtractIf<'a, T, F> {
    vec: &'a mut RemapVec<T>,
    /// The next element to visit.
    idx: usize,
    /// One past the last element of the range to visit.
    end: usize,
    /// How many elements were removed so far; the kept ones visited are at
    /// `..idx - del`, the holes at `idx - del..idx`.
    del: usize,
    /// The length before the call; elements `idx..old_len` are initialized and unvisited.
    old_len: usize,
    pred: F,
}

impl<T, F: FnMut(&mut T) -> bool> Iterator for ExtractIf<'_, T, F> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        while self.idx < self.end {
            let i = self.idx;
            // SAFETY: `i < end <= old_len`: an initialized element not yet visited, inside the
            // buffer; the vector's length is 0, so nothing else refers to it.
            let cur = unsafe { &mut *self.vec.as_mut_ptr().add(i) };
            let drained = (self.pred)(cur);
            // Advance only after the predicate: if it panics, the element is kept.
            self.idx += 1;
            if drained {
                self.del += 1;
                // SAFETY: the element is counted as removed and never touched again.
                return Some(unsafe { ptr::read(cur) });
            } else if self.del > 0 {
                // SAFETY: the hole `i - del` holds a moved-out element and differs from `i`.
                unsafe {
                    let hole = self.vec.as_mut_ptr().add(i - self.del);
                    ptr::copy_nonoverlapping(cur, hole, 1);
                }
            }
        }
        None
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.end - self.idx))
    }
}

impl<T, F: FnMut(&mut T) -> bool> FusedIterator for ExtractIf<'_, T, F> {}

impl<T, F> Drop for ExtractIf<'_, T, F> {
    fn drop(&mut self) {
        if self.del > 0 {
            // SAFETY: the unvisited elements `idx..old_len` are initialized; they move down
            // over the holes, inside the buffer.
            unsafe {
                let base = self.vec.as_mut_ptr();
                ptr::copy(
                    base.add(self.idx),
                    base.add(self.idx - self.del),
                    self.old_len - self.idx,
                );
            }
        }
        // SAFETY: after closing the holes the first `old_len - del` elements are initialized.
        unsafe { self.vec.set_len(self.old_len - self.del) };
    }
}

impl<T: fmt::Debug, F> fmt::Debug for ExtractIf<'_, T, F> {
    /// Shows the elements not yet visited.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // SAFETY: `idx..old_len` are initialized and unvisited.
        let rest = unsafe {
            core::slice::from_raw_parts(self.vec.as_ptr().add(self.idx), self.old_len - self.idx)
        };
        f.debug_struct("ExtractIf").field("rest", &rest).finish()
    }
}
