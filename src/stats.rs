//! Counters of how growth happened: in place, moved, copied, bytes, system calls. No unsafe.

use core::ops::AddAssign;

/// How a buffer's growth was carried out so far. Returned by
/// [`RemapVec::stats`](crate::RemapVec::stats).
///
/// Only growth of mapped regions is counted in `in_place`, `moved` and `copied`, plus the one
/// copy that moves a vector from the heap into its first region (a `copied`, with its bytes in
/// `bytes_copied`). Reallocations while the vector is small and on the heap are counted apart,
/// in `heap_grows`.
///
/// ```
/// use remapvec::{RemapVec, VecOptions};
/// let mut v: RemapVec<u8> = RemapVec::with_options(VecOptions::default().heap_threshold(0));
/// v.extend_from_slice(&[1; 100]);
/// v.reserve(64 << 20);
/// let s = v.stats();
/// assert_eq!(s.in_place + s.moved + s.copied, 1); // one grow of the mapped region
/// # #[cfg(all(target_os = "linux", not(feature = "force-fallback")))]
/// assert_eq!(s.bytes_copied, 0); // ... and it copied nothing
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct GrowStats {
    /// Grows that extended the mapping where it was (one `mremap`, nothing moved).
    pub in_place: u64,
    /// Grows that moved the mapping's page tables to a new address (no byte copied).
    pub moved: u64,
    /// Grows that copied bytes: the move from the heap into the first region, or a grow where
    /// `mremap` was unavailable or failed.
    pub copied: u64,
    /// Bytes that changed address by remapping, without being copied.
    pub bytes_remapped: u64,
    /// Bytes copied by `copied` grows.
    pub bytes_copied: u64,
    /// Reallocations on the heap while the capacity was below the heap threshold.
    pub heap_grows: u64,
    /// System calls made for growth, shrinking and placement (including failed attempts).
    pub syscalls: u64,
    /// Regions taken over from recently dropped vectors (their pages may still be in memory,
    /// so filling them causes no page faults); see `VecOptions::reuse_freed`.
    pub reused: u64,
}

impl GrowStats {
    /// All zero (usable in `const` contexts).
    pub(crate) const ZERO: GrowStats = GrowStats {
        in_place: 0,
        moved: 0,
        copied: 0,
        bytes_remapped: 0,
        bytes_copied: 0,
        heap_grows: 0,
        syscalls: 0,
        reused: 0,
    };

    /// All grows of mapped memory: `in_place + moved + copied`.
    ///
    /// ```
    /// let mut v: remapvec::RemapVec<u8> = remapvec::RemapVec::with_capacity(1 << 20);
    /// v.reserve(2 << 20);
    /// assert_eq!(v.stats().grows(), 1);
    /// ```
    pub fn grows(&self) -> u64 {
        self.in_place + self.moved + self.copied
    }

    /// The share of mapped grows done in place, from 0.0 to 1.0 (1.0 when there were none).
    ///
    /// ```
    /// let s = remapvec::GrowStats::default();
    /// assert_eq!(s.in_place_share(), 1.0);
    /// ```
    pub fn in_place_share(&self) -> f64 {
        match self.grows() {
            0 => 1.0,
            n => self.in_place as f64 / n as f64,
        }
    }
}

impl AddAssign for GrowStats {
    fn add_assign(&mut self, o: GrowStats) {
        self.in_place += o.in_place;
        self.moved += o.moved;
        self.copied += o.copied;
        self.bytes_remapped += o.bytes_remapped;
        self.bytes_copied += o.bytes_copied;
        self.heap_grows += o.heap_grows;
        self.syscalls += o.syscalls;
        self.reused += o.reused;
    }
}
