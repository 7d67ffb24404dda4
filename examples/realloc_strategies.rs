//! Which realloc strategy wins? Pushes elements one by one into each strategy at a few sizes
//! and prints one table: total time, the worst single grow, elements/s, how the grows
//! happened (in place / moved / copied), bytes copied, system calls, peak RSS, page faults.
//!
//! `cargo run --release --example realloc_strategies -- [--max 1GiB] [--elem u32|u64] [--csv FILE]`
//!
//! Strategies: std `Vec` on the system allocator (glibc); malloc + memcpy + free done
//! explicitly; mimalloc (a copying allocator); `RemapVec` with default options and with huge
//! pages; `allocator_api2::vec::Vec` in `RemapAlloc`; std `Vec` with `RemapAlloc` as the global
//! allocator (in a child process of this example, since the global allocator is per process).
//!
//! Memory state: every strategy runs twice at each size and the second run is the one
//! reported, so it gets the pages its own first run freed a moment ago (warm memory: this
//! machine is a VM whose first touch of memory idle for seconds is up to 10x slower, and
//! huge pages need whole free 2 MiB blocks). Add your own strategy by implementing
//! `remapvec::strategy::GrowStrategy`.

use remapvec::strategy::{GrowStrategy, Measurement, measure, peak_rss, reset_peak_rss};
use remapvec::{GrowStats, RemapAlloc, RemapVec, VecOptions};
use std::alloc::{GlobalAlloc, Layout, System};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};

/// The global allocator: the system allocator, or `RemapAlloc` in the child process that
/// measures std `Vec` under it. Chosen at the start of `main`, before any large allocation;
/// small blocks go to the system allocator either way, so the switch is consistent.
struct Switch;

static REMAP_GLOBAL: AtomicBool = AtomicBool::new(false);
static REMAP: RemapAlloc = RemapAlloc::new();

// SAFETY: every call forwards to one of two correct allocators; which one is fixed before
// any block that the two would treat differently (large ones) exists.
unsafe impl GlobalAlloc for Switch {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe {
            if REMAP_GLOBAL.load(Ordering::Relaxed) {
                REMAP.alloc(layout)
            } else {
                System.alloc(layout)
            }
        }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees, to the allocator that made it.
        unsafe {
            if REMAP_GLOBAL.load(Ordering::Relaxed) {
                REMAP.dealloc(ptr, layout)
            } else {
                System.dealloc(ptr, layout)
            }
        }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe {
            if REMAP_GLOBAL.load(Ordering::Relaxed) {
                REMAP.alloc_zeroed(layout)
            } else {
                System.alloc_zeroed(layout)
            }
        }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees, to the allocator that made it.
        unsafe {
            if REMAP_GLOBAL.load(Ordering::Relaxed) {
                REMAP.realloc(ptr, layout, new_size)
            } else {
                System.realloc(ptr, layout, new_size)
            }
        }
    }
}

#[global_allocator]
static GLOBAL: Switch = Switch;

/// Element types the table can use.
trait Elem: Copy + PartialEq + std::fmt::Debug + 'static {
    fn at(i: usize) -> Self;
}
impl Elem for u32 {
    fn at(i: usize) -> Self {
        i as u32
    }
}
impl Elem for u64 {
    fn at(i: usize) -> Self {
        i as u64
    }
}

/// malloc a new block, memcpy, free the old one: what every copying allocator does.
struct ExplicitCopy<T> {
    ptr: *mut T,
    len: usize,
    cap: usize,
    copied: u64,
    grows: u64,
}

impl<T: Copy> GrowStrategy<T> for ExplicitCopy<T> {
    fn name(&self) -> String {
        "malloc+memcpy+free".into()
    }
    fn push(&mut self, x: T) {
        if self.len == self.cap {
            let new_cap = (self.cap * 2).max(16);
            let size = core::mem::size_of::<T>();
            // SAFETY: malloc of a nonzero size; the old block holds `len` initialized
            // elements, copied before it is freed; the new block is checked for null.
            unsafe {
                let p = libc::malloc(new_cap * size).cast::<T>();
                assert!(!p.is_null(), "out of memory");
                if !self.ptr.is_null() {
                    core::ptr::copy_nonoverlapping(self.ptr, p, self.len);
                    libc::free(self.ptr.cast());
                }
                self.ptr = p;
            }
            self.copied += (self.len * size) as u64;
            self.grows += 1;
            self.cap = new_cap;
        }
        // SAFETY: `len < cap` now.
        unsafe { self.ptr.add(self.len).write(x) };
        self.len += 1;
    }
    fn len(&self) -> usize {
        self.len
    }
    fn capacity(&self) -> usize {
        self.cap
    }
    fn as_slice(&self) -> &[T] {
        if self.ptr.is_null() {
            return &[];
        }
        // SAFETY: `len` initialized elements at `ptr`.
        unsafe { core::slice::from_raw_parts(self.ptr, self.len) }
    }
    fn grow_stats(&self) -> Option<GrowStats> {
        let mut s = GrowStats::default();
        s.copied = self.grows;
        s.bytes_copied = self.copied;
        Some(s)
    }
    fn reset(&mut self) {
        if !self.ptr.is_null() {
            // SAFETY: our malloc'd block.
            unsafe { libc::free(self.ptr.cast()) };
        }
        *self = ExplicitCopy {
            ptr: core::ptr::null_mut(),
            len: 0,
            cap: 0,
            copied: 0,
            grows: 0,
        };
    }
}

#[path = "../benches/common/mi.rs"]
mod mi;
use mi::Mi;

/// Another strategy under a table name; with `remap`, its grow counters are the change in
/// `RemapAlloc`'s process-wide counters since the last reset (for vectors in `RemapAlloc`).
struct Named<S> {
    inner: S,
    name: &'static str,
    remap: bool,
    base: GrowStats,
}

impl<S> Named<S> {
    fn new(inner: S, name: &'static str, remap: bool) -> Self {
        Named {
            inner,
            name,
            remap,
            base: GrowStats::default(),
        }
    }
}

impl<T, S: GrowStrategy<T>> GrowStrategy<T> for Named<S> {
    fn name(&self) -> String {
        self.name.into()
    }
    fn push(&mut self, x: T) {
        self.inner.push(x);
    }
    fn len(&self) -> usize {
        self.inner.len()
    }
    fn capacity(&self) -> usize {
        self.inner.capacity()
    }
    fn as_slice(&self) -> &[T] {
        self.inner.as_slice()
    }
    fn grow_stats(&self) -> Option<GrowStats> {
        if self.remap {
            Some(delta(RemapAlloc::<System>::stats().growth, self.base))
        } else {
            self.inner.grow_stats()
        }
    }
    fn reset(&mut self) {
        self.inner.reset();
        self.base = RemapAlloc::<System>::stats().growth;
    }
}

fn delta(now: GrowStats, base: GrowStats) -> GrowStats {
    let mut d = GrowStats::default();
    d.in_place = now.in_place - base.in_place;
    d.moved = now.moved - base.moved;
    d.copied = now.copied - base.copied;
    d.bytes_remapped = now.bytes_remapped - base.bytes_remapped;
    d.bytes_copied = now.bytes_copied - base.bytes_copied;
    d.syscalls = now.syscalls - base.syscalls;
    d
}

/// Minor page faults of this process so far.
fn minor_faults() -> u64 {
    // SAFETY: getrusage fills the struct we pass.
    unsafe {
        let mut ru: libc::rusage = core::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru.ru_minflt as u64
    }
}

fn current_rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let l = s.lines().find(|l| l.starts_with("VmRSS:"))?;
            l.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(0, |kb| kb * 1024)
}

/// One table row.
struct Row {
    /// The first (untimed for the table's other columns) run: memory not yet used by this
    /// strategy in this process.
    first: Measurement,
    m: Measurement,
    bytes: usize,
    peak_rss: u64,
    faults: u64,
}

fn run_one<T: Elem, S: GrowStrategy<T>>(s: &mut S, n: usize) -> Row {
    let bytes = n * core::mem::size_of::<T>();
    // A first run: the reported run then gets the pages this one just freed (warm).
    let first = measure(s, n, T::at);
    reset_peak_rss();
    let before = current_rss();
    let f0 = minor_faults();
    let m = measure(s, n, T::at);
    let faults = minor_faults() - f0;
    let peak = peak_rss().unwrap_or(0).saturating_sub(before);
    Row {
        first,
        m,
        bytes,
        peak_rss: peak,
        faults,
    }
}

/// Every strategy of this process at `n` elements, each run monomorphized (no dynamic
/// dispatch in the push loop).
fn run_all<T: Elem>(n: usize) -> Vec<Row> {
    vec![
        run_one(&mut Vec::<T>::new(), n),
        run_one(
            &mut ExplicitCopy::<T> {
                ptr: core::ptr::null_mut(),
                len: 0,
                cap: 0,
                copied: 0,
                grows: 0,
            },
            n,
        ),
        run_one(
            &mut Named::new(
                allocator_api2::vec::Vec::<T, Mi>::new_in(Mi),
                "mimalloc Vec",
                false,
            ),
            n,
        ),
        run_one(&mut RemapVec::<T>::new(), n),
        run_one(
            &mut RemapVec::<T>::with_options(VecOptions::default().huge_pages(true)),
            n,
        ),
        run_one(
            &mut Named::new(
                allocator_api2::vec::Vec::<T, RemapAlloc>::new_in(RemapAlloc::new()),
                "api2 Vec in RemapAlloc",
                true,
            ),
            n,
        ),
    ]
}

fn fmt_row(r: &Row) -> String {
    let m = &r.m;
    let (how, copied, calls) = match m.stats {
        Some(s) => (
            format!("{}/{}/{}", s.in_place, s.moved, s.copied),
            format!("{}", s.bytes_copied >> 20),
            format!("{}", s.syscalls),
        ),
        None => ("-".into(), "-".into(), "-".into()),
    };
    format!(
        "{:<28} {:>9} {:>10.1} {:>10.1} {:>12.1} {:>9} {:>8.1} {:>12} {:>10} {:>8} {:>9} {:>9}",
        m.name,
        format!("{}M", r.bytes >> 20),
        m.total.as_secs_f64() * 1e3,
        r.first.total.as_secs_f64() * 1e3,
        m.worst_grow.as_secs_f64() * 1e6,
        human(m.worst_grow_from * (r.bytes / m.elements.max(1))),
        m.elements_per_sec() / 1e6,
        how,
        copied,
        calls,
        r.peak_rss >> 20,
        r.faults,
    )
}

fn human(bytes: usize) -> String {
    if bytes >= 1 << 20 {
        format!("{}M", bytes >> 20)
    } else {
        format!("{}K", bytes >> 10)
    }
}

fn csv_row(r: &Row) -> String {
    let m = &r.m;
    let s = m.stats;
    let f = |x: Option<u64>| x.map_or(String::new(), |v| v.to_string());
    format!(
        "{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
        m.name,
        r.bytes,
        m.elements,
        m.total.as_nanos(),
        r.first.total.as_nanos(),
        m.worst_grow.as_nanos(),
        m.worst_grow_from,
        f(s.map(|s| s.in_place)),
        f(s.map(|s| s.moved)),
        f(s.map(|s| s.copied)),
        f(s.map(|s| s.bytes_copied)),
        f(s.map(|s| s.syscalls)),
        r.peak_rss,
        r.faults
    )
}

fn parse_size(s: &str) -> Option<usize> {
    let s = s.trim().to_ascii_lowercase();
    let (num, mul) = if let Some(n) = s.strip_suffix("gib").or(s.strip_suffix('g')) {
        (n, 1 << 30)
    } else if let Some(n) = s.strip_suffix("mib").or(s.strip_suffix('m')) {
        (n, 1 << 20)
    } else if let Some(n) = s.strip_suffix("kib").or(s.strip_suffix('k')) {
        (n, 1 << 10)
    } else {
        (s.as_str(), 1)
    };
    num.trim().parse::<usize>().ok()?.checked_mul(mul)
}

struct Args {
    max: usize,
    elem: String,
    csv: Option<String>,
    child: bool,
}

fn args() -> Args {
    let mut a = Args {
        max: 1 << 30,
        elem: "u32".into(),
        csv: None,
        child: false,
    };
    let v: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < v.len() {
        let next = v.get(i + 1).cloned().unwrap_or_default();
        match v[i].as_str() {
            "--max" => {
                a.max = parse_size(&next).unwrap_or_else(|| {
                    eprintln!("--max takes a size like 1GiB or 256MiB");
                    std::process::exit(2)
                });
                i += 1;
            }
            "--elem" => {
                a.elem = next;
                i += 1;
            }
            "--csv" => {
                a.csv = Some(next);
                i += 1;
            }
            "--child" => a.child = true,
            other => {
                eprintln!("unknown argument {other}; see the file's header for usage");
                std::process::exit(2)
            }
        }
        i += 1;
    }
    a
}

fn sizes(max: usize) -> Vec<usize> {
    let mut v = vec![max];
    let mut s = max / 8;
    while s >= (1 << 20) && v.len() < 3 {
        v.push(s);
        s /= 8;
    }
    v.reverse();
    v
}

fn table<T: Elem>(a: &Args) {
    let size = core::mem::size_of::<T>();
    let mut out = String::new();
    let mut csv = String::from(
        "strategy,bytes,elements,total_ns,first_run_ns,worst_grow_ns,worst_grow_from_elems,in_place,moved,copied,bytes_copied,syscalls,peak_rss,minor_faults\n",
    );
    println!(
        "{:<28} {:>9} {:>10} {:>10} {:>12} {:>9} {:>8} {:>12} {:>10} {:>8} {:>9} {:>9}",
        "strategy",
        "size",
        "total ms",
        "1st run",
        "worst grow µs",
        "from",
        "Melem/s",
        "in/mv/copy",
        "copied MiB",
        "syscalls",
        "peak MiB",
        "faults"
    );
    for bytes in sizes(a.max) {
        let n = bytes / size;
        for r in run_all::<T>(n) {
            println!("{}", fmt_row(&r));
            csv.push_str(&csv_row(&r));
        }
        // std Vec under the global RemapAlloc: in a child process.
        let exe = std::env::current_exe().expect("current exe");
        let child = std::process::Command::new(exe)
            .args(["--child", "--elem", &a.elem, "--max", &format!("{bytes}")])
            .output()
            .expect("child runs");
        let text = String::from_utf8_lossy(&child.stdout);
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("ROW\t") {
                println!("{rest}");
            } else if let Some(rest) = line.strip_prefix("CSV\t") {
                csv.push_str(rest);
                csv.push('\n');
            }
        }
        let _ = writeln!(out);
    }
    if let Some(path) = &a.csv {
        std::fs::write(path, csv).expect("write csv");
        println!("wrote {path}");
    }
}

fn child<T: Elem>(a: &Args) {
    REMAP_GLOBAL.store(true, Ordering::Relaxed);
    let n = a.max / core::mem::size_of::<T>();
    let mut s = Named::new(Vec::<T>::new(), "std Vec, global RemapAlloc", true);
    let r = run_one(&mut s, n);
    println!("ROW\t{}", fmt_row(&r));
    print!("CSV\t{}", csv_row(&r));
}

fn main() {
    let a = args();
    match (a.child, a.elem.as_str()) {
        (true, "u64") => child::<u64>(&a),
        (true, _) => child::<u32>(&a),
        (false, "u64") => table::<u64>(&a),
        (false, "u32") => table::<u32>(&a),
        (false, other) => {
            eprintln!("--elem takes u32 or u64, not {other}");
            std::process::exit(2)
        }
    }
}
