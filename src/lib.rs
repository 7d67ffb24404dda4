#![doc = include_str!("../README.md")]

mod alloc;
mod arena;
mod error;
mod raw;
mod region;
mod shared_vec;
mod stats;
pub mod strategy;
pub mod sys;
mod vec;

pub use alloc::{AllocStats, DENSE_REUSES, HugePages, RemapAlloc};
pub use arena::{
    ArenaError, ArenaOptions, ArenaStats, CompactReport, CostModel, PageArena, RegionId,
    SharedArena,
};
pub use error::{TryReserveError, TryReserveErrorKind};
pub use raw::{DEFAULT_HEAP_THRESHOLD, VecOptions};
pub use region::recycle::{CacheConfig, CacheStats};

/// Unmaps every freed mapping the recycler keeps (see [`CacheConfig`]) and returns how many
/// bytes went back to the kernel. Kept mappings are otherwise unmapped after a second unused.
///
/// ```
/// let v: remapvec::RemapVec<u8> = remapvec::RemapVec::with_capacity(1 << 20);
/// drop(v); // kept for the next buffer of about 1 MiB
/// remapvec::release_cached();
/// assert_eq!(remapvec::cache_stats().kept_bytes, 0); // unless another thread freed one since
/// ```
pub fn release_cached() -> usize {
    region::recycle::release_all()
}

/// What the recycler of freed mappings holds now and has done so far, process-wide.
///
/// ```
/// let s = remapvec::cache_stats();
/// assert!(s.kept_bytes <= s.limit_bytes);
/// ```
pub fn cache_stats() -> CacheStats {
    region::recycle::stats()
}
pub use shared_vec::{MAX_VIEWS, Prefault, ReadGuard, SharedVec};
pub use stats::GrowStats;
#[doc(hidden)]
pub use vec::__private;
pub use vec::{Drain, ExtractIf, IntoIter, RemapVec, Splice};
