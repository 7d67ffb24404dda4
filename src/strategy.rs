//! `GrowStrategy`: a harness that measures how a growable buffer grows (total time, the worst
//! single grow, how each grow happened, peak RSS), so that realloc strategies can be compared
//! in one run. Used by the `realloc_strategies` example; implement it for your own buffer to
//! add it to the same table.

use crate::RemapVec;
use crate::stats::GrowStats;
use std::time::{Duration, Instant};

/// A growable buffer of `T` that the harness can push into and ask about.
///
/// Implemented here for `std::vec::Vec`, [`RemapVec`] and `allocator_api2::vec::Vec` (any
/// allocator); implement it for your own to measure it the same way. Grows of allocator-backed
/// vectors are reported by the allocator (`RemapAlloc::stats`), not by `grow_stats`.
///
/// ```
/// use remapvec::strategy::{measure, GrowStrategy};
///
/// /// A Vec that grows by 1.5x instead of 2x.
/// struct OneAndAHalf(Vec<u32>);
///
/// impl GrowStrategy<u32> for OneAndAHalf {
///     fn name(&self) -> String {
///         "Vec, 1.5x growth".into()
///     }
///     fn push(&mut self, x: u32) {
///         if self.0.len() == self.0.capacity() {
///             let more = (self.0.capacity() / 2).max(16);
///             self.0.reserve_exact(more);
///         }
///         self.0.push(x);
///     }
///     fn len(&self) -> usize {
///         self.0.len()
///     }
///     fn capacity(&self) -> usize {
///         self.0.capacity()
///     }
///     fn as_slice(&self) -> &[u32] {
///         &self.0
///     }
///     fn reset(&mut self) {
///         self.0 = Vec::new();
///     }
/// }
///
/// let m = measure(&mut OneAndAHalf(Vec::new()), 100_000, |i| i as u32);
/// assert_eq!(m.elements, 100_000);
/// assert!(m.grows > 10);
/// ```
pub trait GrowStrategy<T> {
    /// The name shown in tables.
    ///
    /// ```
    /// use remapvec::strategy::GrowStrategy;
    /// assert_eq!(GrowStrategy::<u8>::name(&Vec::<u8>::new()), "std Vec");
    /// ```
    fn name(&self) -> String;
    /// Appends one element, growing when full.
    ///
    /// ```
    /// use remapvec::strategy::GrowStrategy;
    /// let mut v = remapvec::RemapVec::new();
    /// GrowStrategy::push(&mut v, 7u32);
    /// assert_eq!(GrowStrategy::as_slice(&v), &[7]);
    /// ```
    fn push(&mut self, x: T);
    /// Number of elements.
    ///
    /// ```
    /// use remapvec::strategy::GrowStrategy;
    /// assert_eq!(GrowStrategy::len(&vec![1u8, 2]), 2);
    /// ```
    fn len(&self) -> usize;
    /// Whether there are no elements.
    ///
    /// ```
    /// use remapvec::strategy::GrowStrategy;
    /// assert!(GrowStrategy::is_empty(&Vec::<u8>::new()));
    /// ```
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Elements that fit without growing.
    ///
    /// ```
    /// use remapvec::strategy::GrowStrategy;
    /// assert!(GrowStrategy::capacity(&Vec::<u8>::with_capacity(10)) >= 10);
    /// ```
    fn capacity(&self) -> usize;
    /// The elements, to verify them after a run.
    ///
    /// ```
    /// use remapvec::strategy::GrowStrategy;
    /// assert_eq!(GrowStrategy::as_slice(&vec![1u8, 2]), &[1, 2]);
    /// ```
    fn as_slice(&self) -> &[T];
    /// How the grows happened, if the buffer can tell (`None` for buffers that cannot).
    ///
    /// ```
    /// use remapvec::strategy::GrowStrategy;
    /// assert!(GrowStrategy::<u8>::grow_stats(&Vec::<u8>::new()).is_none());
    /// let v: remapvec::RemapVec<u8> = remapvec::RemapVec::new();
    /// assert_eq!(GrowStrategy::grow_stats(&v).unwrap().grows(), 0);
    /// ```
    fn grow_stats(&self) -> Option<GrowStats> {
        None
    }
    /// Frees everything and starts empty.
    ///
    /// ```
    /// use remapvec::strategy::GrowStrategy;
    /// let mut v = vec![1u8; 100];
    /// GrowStrategy::reset(&mut v);
    /// assert_eq!((v.len(), v.capacity()), (0, 0));
    /// ```
    fn reset(&mut self);
}

impl<T> GrowStrategy<T> for Vec<T> {
    fn name(&self) -> String {
        "std Vec".into()
    }
    fn push(&mut self, x: T) {
        Vec::push(self, x);
    }
    fn len(&self) -> usize {
        Vec::len(self)
    }
    fn capacity(&self) -> usize {
        Vec::capacity(self)
    }
    fn as_slice(&self) -> &[T] {
        self
    }
    fn reset(&mut self) {
        *self = Vec::new();
    }
}

impl<T> GrowStrategy<T> for RemapVec<T> {
    fn name(&self) -> String {
        if self.options().is_huge_pages() {
            "RemapVec, huge pages".into()
        } else {
            "RemapVec".into()
        }
    }
    fn push(&mut self, x: T) {
        RemapVec::push(self, x);
    }
    fn len(&self) -> usize {
        RemapVec::len(self)
    }
    fn capacity(&self) -> usize {
        RemapVec::capacity(self)
    }
    fn as_slice(&self) -> &[T] {
        self
    }
    fn grow_stats(&self) -> Option<GrowStats> {
        Some(self.stats())
    }
    fn reset(&mut self) {
        *self = RemapVec::with_options(self.options());
    }
}

impl<T, A: allocator_api2::alloc::Allocator + Clone> GrowStrategy<T>
    for allocator_api2::vec::Vec<T, A>
{
    fn name(&self) -> String {
        format!("allocator_api2 Vec in {}", core::any::type_name::<A>())
    }
    fn push(&mut self, x: T) {
        allocator_api2::vec::Vec::push(self, x);
    }
    fn len(&self) -> usize {
        allocator_api2::vec::Vec::len(self)
    }
    fn capacity(&self) -> usize {
        allocator_api2::vec::Vec::capacity(self)
    }
    fn as_slice(&self) -> &[T] {
        self
    }
    fn reset(&mut self) {
        *self = allocator_api2::vec::Vec::new_in(self.allocator().clone());
    }
}

/// What [`measure`] saw.
///
/// ```
/// let m = remapvec::strategy::measure(&mut Vec::new(), 1000, |i| i as u16);
/// assert_eq!((m.name.as_str(), m.elements), ("std Vec", 1000));
/// assert!(m.grows >= 1 && m.worst_grow <= m.total);
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Measurement {
    /// The strategy's name.
    pub name: String,
    /// Elements pushed.
    pub elements: usize,
    /// Time for all pushes.
    pub total: Duration,
    /// The slowest single push that grew the buffer.
    pub worst_grow: Duration,
    /// Capacity of the buffer before that worst grow, in elements.
    pub worst_grow_from: usize,
    /// Pushes that grew the buffer.
    pub grows: u64,
    /// The buffer's own account of its grows, if it keeps one.
    pub stats: Option<GrowStats>,
}

impl Measurement {
    /// Elements per second over the whole run.
    ///
    /// ```
    /// let m = remapvec::strategy::measure(&mut Vec::new(), 1000, |i| i as u8);
    /// assert!(m.elements_per_sec() > 0.0);
    /// ```
    pub fn elements_per_sec(&self) -> f64 {
        self.elements as f64 / self.total.as_secs_f64().max(1e-12)
    }
}

/// Resets `s`, pushes `n` elements `value(0)..value(n - 1)` one by one, timing the whole run
/// and, separately, every push made when the buffer was full (a grow), then checks the
/// contents and resets `s` again (freeing its memory).
///
/// Timing only the pushes that grow costs two clock reads per grow, not per push.
///
/// ```
/// use remapvec::strategy::measure;
/// let m = measure(&mut remapvec::RemapVec::new(), 1 << 20, |i| i as u64);
/// assert_eq!(m.elements, 1 << 20);
/// // Only the move off the heap copied (at most the 128 KiB heap threshold).
/// # #[cfg(all(target_os = "linux", not(feature = "force-fallback")))]
/// assert!(m.stats.unwrap().bytes_copied <= 128 << 10);
/// ```
pub fn measure<T: PartialEq + core::fmt::Debug, S: GrowStrategy<T> + ?Sized>(
    s: &mut S,
    n: usize,
    value: impl Fn(usize) -> T,
) -> Measurement {
    s.reset();
    let mut worst = Duration::ZERO;
    let mut worst_from = 0;
    let mut grows = 0;
    let start = Instant::now();
    for i in 0..n {
        if s.len() == s.capacity() {
            let cap = s.capacity();
            let t = Instant::now();
            s.push(value(i));
            let d = t.elapsed();
            grows += 1;
            if d > worst {
                worst = d;
                worst_from = cap;
            }
        } else {
            s.push(value(i));
        }
    }
    let total = start.elapsed();
    let stats = s.grow_stats();
    let name = s.name();
    let ok = s.len() == n
        && s.as_slice()
            .iter()
            .enumerate()
            .step_by((n / 4096).max(1))
            .all(|(i, x)| *x == value(i));
    assert!(ok, "{name}: contents differ after the run");
    s.reset();
    Measurement {
        name,
        elements: n,
        total,
        worst_grow: worst,
        worst_grow_from: worst_from,
        grows,
        stats,
    }
}

/// The process's peak resident set size in bytes (`VmHWM`), if the OS reports it.
///
/// ```
/// if let Some(peak) = remapvec::strategy::peak_rss() {
///     assert!(peak > 0);
/// }
/// ```
pub fn peak_rss() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Resets the peak RSS to the current RSS (Linux: writes `5` to `/proc/self/clear_refs`), so
/// that [`peak_rss`] measures one run. Returns whether it worked.
///
/// ```
/// let _ = remapvec::strategy::reset_peak_rss();
/// ```
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}
