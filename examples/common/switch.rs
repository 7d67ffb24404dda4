//! The global allocator of the examples that compare allocators (`churn`, `pipeline`): one of
//! glibc, mimalloc, jemalloc, `RemapAlloc` (around `System`), `RemapAlloc::wrapping` mimalloc or
//! jemalloc, `RemapAlloc` with huge pages for every block of 2 MiB and more (`remap-huge`)
//! and without any (`remap-4k`, `remap+mimalloc-4k`: `HugePages::Never`), chosen once from
//! the environment variable [`ENV`] at the first allocation (read with `getenv`, which does not
//! allocate) and fixed from then on. The parent process spawns itself once per allocator.

use mimalloc::MiMalloc;
use remapvec::RemapAlloc;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};
use tikv_jemallocator::Jemalloc;

/// The variable that names the allocator of a child process.
pub const ENV: &str = "REMAPVEC_ALLOC";
/// The allocators, by the names [`ENV`] takes.
pub const NAMES: [&str; 9] = [
    "system",
    "mimalloc",
    "jemalloc",
    "remap",
    "remap+mimalloc",
    "remap+jemalloc",
    "remap-huge",
    "remap-4k",
    "remap+mimalloc-4k",
];

/// Forwards every call to the chosen allocator.
pub struct Switch;

static CHOICE: AtomicU8 = AtomicU8::new(u8::MAX);
static REMAP: RemapAlloc = RemapAlloc::new();
static REMAP_MI: RemapAlloc<MiMalloc> = RemapAlloc::wrapping(MiMalloc);
static REMAP_JE: RemapAlloc<Jemalloc> = RemapAlloc::wrapping(Jemalloc);
static REMAP_HUGE: RemapAlloc = RemapAlloc::new().huge_pages(true);
static REMAP_4K: RemapAlloc = RemapAlloc::new().huge_pages(false);
static REMAP_MI_4K: RemapAlloc<MiMalloc> = RemapAlloc::wrapping(MiMalloc).huge_pages(false);

fn choice() -> u8 {
    match CHOICE.load(Relaxed) {
        u8::MAX => {
            // SAFETY: a NUL-terminated name; the value is read at once.
            let p = unsafe { libc::getenv(c"REMAPVEC_ALLOC".as_ptr()) };
            let c = if p.is_null() {
                0
            } else {
                // SAFETY: getenv returns a NUL-terminated string.
                let v = unsafe { std::ffi::CStr::from_ptr(p) }.to_bytes();
                NAMES.iter().position(|n| n.as_bytes() == v).unwrap_or(0) as u8
            };
            CHOICE.store(c, Relaxed);
            c
        }
        c => c,
    }
}

// SAFETY: every call forwards to one correct allocator, the same one for the whole process (the
// choice is made before the first block exists and never changes).
unsafe impl GlobalAlloc for Switch {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe {
            match choice() {
                1 => MiMalloc.alloc(l),
                2 => Jemalloc.alloc(l),
                3 => REMAP.alloc(l),
                4 => REMAP_MI.alloc(l),
                5 => REMAP_JE.alloc(l),
                6 => REMAP_HUGE.alloc(l),
                7 => REMAP_4K.alloc(l),
                8 => REMAP_MI_4K.alloc(l),
                _ => System.alloc(l),
            }
        }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe {
            match choice() {
                1 => MiMalloc.alloc_zeroed(l),
                2 => Jemalloc.alloc_zeroed(l),
                3 => REMAP.alloc_zeroed(l),
                4 => REMAP_MI.alloc_zeroed(l),
                5 => REMAP_JE.alloc_zeroed(l),
                6 => REMAP_HUGE.alloc_zeroed(l),
                7 => REMAP_4K.alloc_zeroed(l),
                8 => REMAP_MI_4K.alloc_zeroed(l),
                _ => System.alloc_zeroed(l),
            }
        }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: forwarded to the allocator that made the block.
        unsafe {
            match choice() {
                1 => MiMalloc.dealloc(p, l),
                2 => Jemalloc.dealloc(p, l),
                3 => REMAP.dealloc(p, l),
                4 => REMAP_MI.dealloc(p, l),
                5 => REMAP_JE.dealloc(p, l),
                6 => REMAP_HUGE.dealloc(p, l),
                7 => REMAP_4K.dealloc(p, l),
                8 => REMAP_MI_4K.dealloc(p, l),
                _ => System.dealloc(p, l),
            }
        }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        // SAFETY: forwarded to the allocator that made the block.
        unsafe {
            match choice() {
                1 => MiMalloc.realloc(p, l, n),
                2 => Jemalloc.realloc(p, l, n),
                3 => REMAP.realloc(p, l, n),
                4 => REMAP_MI.realloc(p, l, n),
                5 => REMAP_JE.realloc(p, l, n),
                6 => REMAP_HUGE.realloc(p, l, n),
                7 => REMAP_4K.realloc(p, l, n),
                8 => REMAP_MI_4K.realloc(p, l, n),
                _ => System.realloc(p, l, n),
            }
        }
    }
}
