#![doc = include_str!("../README.md")]
#![cfg(unix)]

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

pub use alloc::{AllocStats, RemapAlloc};
pub use arena::{
    ArenaError, ArenaOptions, ArenaStats, CompactReport, CostModel, PageArena, RegionId,
    SharedArena,
};
pub use error::{TryReserveError, TryReserveErrorKind};
pub use raw::{DEFAULT_HEAP_THRESHOLD, VecOptions};
pub use shared_vec::{MAX_VIEWS, ReadGuard, SharedVec};
pub use stats::GrowStats;
pub use vec::{Drain, IntoIter, RemapVec, Splice};
