//! What the crate asks of the operating system: the page size, and the kernel features it
//! found at run time ([`features`]). The functions that map, move and unmap memory are
//! internal.
//!
//! Exactly one backend is compiled:
//!
//! * **Linux**: `mmap` and `mremap`, so mappings grow in place, move without copying, and
//!   (Linux 6.17+) several mappings move in one call.
//! * **Portable** (every other target, and Linux with the `force-fallback` feature, so that it
//!   is tested there): [`memmap2`](https://docs.rs/memmap2) anonymous maps. No `mremap`:
//!   growth maps anew and copies, and [`features`] reports `mremap: false`.
//!
//! Failed system calls are carried as plain OS error numbers, so that the allocator path,
//! which reaches this module, never allocates.

use core::fmt;
use core::sync::atomic::{AtomicUsize, Ordering};

#[cfg(all(target_os = "linux", not(feature = "force-fallback")))]
#[path = "linux.rs"]
mod backend;

#[cfg(any(not(target_os = "linux"), feature = "force-fallback"))]
#[path = "fallback.rs"]
mod backend;

#[cfg(test)]
mod tests;

pub(crate) use backend::*;

/// An OS error number, as returned by a failed system call.
///
/// A plain integer so that the allocator path can carry it without allocating; convert with
/// [`Errno::to_io`] where allocation is allowed.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Errno(pub(crate) i32);

impl Errno {
    /// The calling thread's `errno` right now.
    #[inline]
    #[cfg_attr(
        any(not(target_os = "linux"), feature = "force-fallback"),
        allow(dead_code)
    )]
    pub(crate) fn last() -> Self {
        // `last_os_error` builds the `Os` variant, which holds the code inline and never
        // allocates.
        Errno(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    }

    /// The same error as a [`std::io::Error`] (no allocation: the `Os` variant is inline).
    pub(crate) fn to_io(self) -> std::io::Error {
        std::io::Error::from_raw_os_error(self.0)
    }
}

impl fmt::Debug for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.to_io(), f)
    }
}

/// The size of a memory page in bytes (4096 on x86_64 Linux).
///
/// Read once from the kernel and cached; never allocates.
///
/// ```
/// let page = remapvec::sys::page_size();
/// assert!(page.is_power_of_two() && page >= 4096);
/// ```
#[inline]
pub fn page_size() -> usize {
    static PAGE: AtomicUsize = AtomicUsize::new(0);
    match PAGE.load(Ordering::Relaxed) {
        0 => {
            let p = backend::query_page_size();
            PAGE.store(p, Ordering::Relaxed);
            p
        }
        p => p,
    }
}

/// Size of the units the kernel moves cheaply: one page-table page maps 2 MiB on x86_64 and
/// aarch64 with 4 KiB pages. Moving a range whose source and destination share their offset
/// modulo this size moves whole page-table entries instead of single PTEs.
///
/// ```
/// assert_eq!(remapvec::sys::PMD_SIZE % remapvec::sys::page_size(), 0);
/// ```
pub const PMD_SIZE: usize = 2 << 20;

/// One PUD entry maps 1 GiB: regions of that size are placed 1 GiB-aligned.
///
/// ```
/// assert_eq!(remapvec::sys::PUD_SIZE / remapvec::sys::PMD_SIZE, 512);
/// ```
pub const PUD_SIZE: usize = 1 << 30;

/// Kernel features this crate can use, probed at run time on scratch mappings.
///
/// ```
/// let f = remapvec::sys::features();
/// // On Linux 6.17 and later one `mremap` call can move several mappings at once.
/// println!("multi-mapping move: {}, MREMAP_DONTUNMAP: {}", f.multi_mapping_move, f.dontunmap);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Features {
    /// `mremap(MREMAP_MAYMOVE | MREMAP_FIXED)` with `old_len == new_len` may span several
    /// mappings and moves them all in one call (Linux 6.17+).
    pub multi_mapping_move: bool,
    /// `MREMAP_DONTUNMAP` works on private anonymous mappings (Linux 5.7+).
    pub dontunmap: bool,
    /// `mremap` exists at all (false on the portable backend).
    pub mremap: bool,
}

/// The kernel features available to this process, probed once (on scratch mappings that are
/// unmapped again) and cached.
///
/// ```
/// let f = remapvec::sys::features();
/// assert_eq!(f, remapvec::sys::features()); // probed once
/// if !f.mremap {
///     // The portable backend: no zero-copy moves of any kind.
///     assert!(!f.multi_mapping_move && !f.dontunmap);
/// }
/// ```
pub fn features() -> Features {
    // 0 = not probed, otherwise 0x80 | bits.
    static FEATURES: core::sync::atomic::AtomicU8 = core::sync::atomic::AtomicU8::new(0);
    let mut bits = FEATURES.load(Ordering::Acquire);
    if bits == 0 {
        let f = backend::probe_features();
        bits = 0x80
            | u8::from(f.multi_mapping_move)
            | (u8::from(f.dontunmap) << 1)
            | (u8::from(f.mremap) << 2);
        FEATURES.store(bits, Ordering::Release);
    }
    Features {
        multi_mapping_move: bits & 1 != 0,
        dontunmap: bits & 2 != 0,
        mremap: bits & 4 != 0,
    }
}

/// Whether valgrind runs this process (checked once, cached). See the backend's
/// `under_valgrind`: moves then avoid `MREMAP_FIXED`, which valgrind mis-emulates.
pub(crate) fn valgrind() -> bool {
    static STATE: core::sync::atomic::AtomicU8 = core::sync::atomic::AtomicU8::new(0);
    match STATE.load(Ordering::Relaxed) {
        0 => {
            let v = backend::under_valgrind();
            STATE.store(1 + u8::from(v), Ordering::Relaxed);
            v
        }
        s => s == 2,
    }
}

/// Fault injection for tests: make the k-th mapping call of the current thread fail.
///
/// Every backend call that creates, replaces or moves a mapping asks [`fault::hit`] first. In
/// normal builds it is an inlined `None`; under `cfg(test)` a thread-local plan can make the
/// k-th such call fail with a chosen errno, and a failing `remap_fixed` can first move a
/// prefix for real, the way a multi-mapping move stops part-way.
pub(crate) mod fault {
    #[cfg(test)]
    use core::cell::Cell;

    /// A planned failure.
    #[cfg(test)]
    #[derive(Clone, Copy, Debug)]
    pub(crate) struct Plan {
        /// Mapping calls to let through before the failing one.
        pub(crate) skip: u32,
        /// The errno the failing call reports.
        pub(crate) errno: i32,
        /// For `remap_fixed`: bytes moved for real before the failure.
        pub(crate) partial: Option<usize>,
        /// Further calls that fail right after it (without a partial move).
        pub(crate) repeat: u32,
    }

    #[cfg(test)]
    thread_local! {
        static PLAN: Cell<Option<Plan>> = const { Cell::new(None) };
    }

    /// Arms `plan` for the current thread (replacing any earlier one).
    #[cfg(test)]
    pub(crate) fn arm(plan: Plan) {
        PLAN.with(|p| p.set(Some(plan)));
    }

    /// Disarms, returning whether the planned failure is still pending (never reached).
    #[cfg(test)]
    pub(crate) fn disarm() -> bool {
        PLAN.with(|p| p.take()).is_some()
    }

    /// `Some((errno, partial))` when this call must fail.
    #[cfg(test)]
    pub(crate) fn hit() -> Option<(i32, Option<usize>)> {
        PLAN.with(|p| {
            let mut plan = p.get()?;
            if plan.skip > 0 {
                plan.skip -= 1;
                p.set(Some(plan));
                None
            } else {
                let next = if plan.repeat > 0 {
                    Some(Plan {
                        repeat: plan.repeat - 1,
                        partial: None,
                        ..plan
                    })
                } else {
                    None
                };
                p.set(next);
                Some((plan.errno, plan.partial))
            }
        })
    }

    /// Stands for another thread that maps memory the instant a range this crate held became
    /// free: the destination of a failing `remap_fixed` (which the kernel may have unmapped
    /// before refusing) or the source a probe's move vacated. Tests check that the crate never
    /// touches what the hook mapped there.
    #[cfg(test)]
    #[cfg_attr(
        any(not(target_os = "linux"), feature = "force-fallback"),
        allow(dead_code)
    )]
    pub(crate) type Hook = fn(dst: *mut u8, len: usize);

    #[cfg(test)]
    thread_local! {
        static HOOK: Cell<Option<Hook>> = const { Cell::new(None) };
    }

    /// Sets (or clears) the current thread's hook, run once at the next such moment.
    #[cfg(test)]
    #[cfg_attr(
        any(not(target_os = "linux"), feature = "force-fallback"),
        allow(dead_code)
    )]
    pub(crate) fn set_hook(hook: Option<Hook>) {
        HOOK.with(|h| h.set(hook));
    }

    /// Runs and clears the current thread's hook, if any.
    #[cfg(test)]
    #[cfg_attr(
        any(not(target_os = "linux"), feature = "force-fallback"),
        allow(dead_code)
    )]
    pub(crate) fn run_hook(dst: *mut u8, len: usize) {
        if let Some(h) = HOOK.with(Cell::take) {
            h(dst, len);
        }
    }

    /// No hooks outside tests.
    #[cfg(not(test))]
    #[inline(always)]
    #[cfg_attr(
        any(not(target_os = "linux"), feature = "force-fallback"),
        allow(dead_code)
    )]
    pub(crate) fn run_hook(_dst: *mut u8, _len: usize) {}

    /// Never fails outside tests.
    #[cfg(not(test))]
    #[inline(always)]
    pub(crate) fn hit() -> Option<(i32, Option<usize>)> {
        None
    }
}

/// Rounds `n` up to a multiple of the page size; `None` on overflow.
#[inline]
pub(crate) fn round_to_page(n: usize) -> Option<usize> {
    let p = page_size();
    n.checked_add(p - 1).map(|v| v & !(p - 1))
}
