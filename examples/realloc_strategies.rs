//! Which realloc strategy wins, at which size, for which workload? One table (and optionally a
//! CSV and an SVG plot) comparing growable-buffer strategies on four workloads.
//!
//! ```text
//! cargo run --release --example realloc_strategies                    # about 1 minute on 2 cores
//! cargo run --release --example realloc_strategies -- --quick         # a smoke run, < 15 s
//! cargo run --release --example realloc_strategies -- --workload churn,pipeline --sizes 64M
//! cargo run --release --example realloc_strategies -- --svg strategies.svg --csv runs.csv
//! ```
//!
//! Options: `--workload push,double,churn,pipeline` (default all), `--only KEY,KEY` (strategy
//! keys, listed by `--list`), `--sizes 1M,64M` (bytes; for `pipeline`, MB of CSV), `--reps N`
//! (fresh processes per row, default 5), `--warm N` (warm runs in each, default 1), `--elem u64`
//! (`push` element type, default `u32`), `--md` (a Markdown table), `--csv FILE` (every run),
//! `--svg FILE` (time against size, one panel per workload and memory state), `--quick`.
//!
//! **Strategies** (each row runs in child processes of this example, with the global allocator
//! it names): std `Vec` on glibc, on mimalloc and on jemalloc; explicit malloc + memcpy + free;
//! `RemapVec` (default options, and with huge pages); std `Vec` under a global `RemapAlloc`
//! around glibc, mimalloc and jemalloc; an `allocator_api2` `Vec` in `RemapAlloc`; and a user's
//! own, a `Vec` that grows by 1.5x, added through `remapvec::strategy::GrowStrategy` (push only).
//!
//! **Workloads**: `push` pushes elements one by one up to the size; `double` doubles the capacity
//! by `reserve_exact` from 4 KiB to the size, once leaving the new bytes untouched (`double`) and
//! once writing them (`double-w`); `churn` allocates a buffer of the size, writes every byte and
//! frees it, repeated until 16 MiB were written (at least once); `pipeline` runs a whole program
//! over a generated CSV of the size (read it into one buffer, parse into rows, sort, group into a
//! `HashMap`, serialize with serde_json, while two threads churn scratch buffers:
//! `examples/common/pipeline.rs`, the same program as `--example pipeline`). There the large
//! buffers (the text, the rows, the JSON) are the strategy's; everything else uses the global
//! allocator.
//!
//! **Memory state**: every row runs in `--reps` fresh processes. In each, the first run is `cold`
//! (nothing freed yet in that process) and the next `--warm` runs are `warm` (the same process,
//! so memory freed by the previous run may be reused: glibc's heap and mmap threshold,
//! mimalloc's and jemalloc's caches, and `RemapVec`/`RemapAlloc`'s kept mappings; the `reused`
//! column counts regions the latter took over). Times are the median and [min–max] over runs;
//! CPU time (user + sys of the process) is shown next to wall time, since the machine may be
//! shared. `faults` are minor page faults, `peak` the peak RSS added during the run, `mmap
//! calls` the mmap/mremap/munmap system calls of the run (counted in an extra, untimed run per
//! row where seccomp allows it). Every run checks the contents it produced (`check`); the
//! example exits with an error if any check failed.

use remapvec::strategy::{GrowStrategy, measure};
use remapvec::{RemapAlloc, RemapVec, VecOptions};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::panic::AssertUnwindSafe;
use std::process::Command;
use std::time::Instant;

#[path = "common/buf.rs"]
mod buf;
#[path = "common/measure.rs"]
mod measure;
#[path = "common/pipeline.rs"]
mod pipeline;
#[path = "common/switch.rs"]
mod switch;
#[path = "common/syscount.rs"]
mod syscount;

use buf::Buf;

#[global_allocator]
static GLOBAL: switch::Switch = switch::Switch;

// ---------------------------------------------------------------------------------------------
// Strategies

/// What holds the buffer.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    /// std `Vec` (in whatever the global allocator is).
    StdVec,
    /// malloc a new block, memcpy, free the old one.
    Explicit,
    RemapVec,
    RemapVecHuge,
    /// `allocator_api2::vec::Vec` in `RemapAlloc`.
    Api2Remap,
    /// A user's own strategy through `GrowStrategy` (push only).
    User,
}

struct Strategy {
    key: &'static str,
    name: &'static str,
    /// The child's global allocator (a name of `switch::NAMES`).
    alloc: &'static str,
    kind: Kind,
}

const fn s(key: &'static str, name: &'static str, alloc: &'static str, kind: Kind) -> Strategy {
    Strategy {
        key,
        name,
        alloc,
        kind,
    }
}

const STRATEGIES: [Strategy; 11] = [
    s("vec", "std Vec (glibc)", "system", Kind::StdVec),
    s(
        "vec-mimalloc",
        "std Vec (mimalloc)",
        "mimalloc",
        Kind::StdVec,
    ),
    s(
        "vec-jemalloc",
        "std Vec (jemalloc)",
        "jemalloc",
        Kind::StdVec,
    ),
    s(
        "malloc-memcpy",
        "malloc+memcpy+free",
        "system",
        Kind::Explicit,
    ),
    s("remapvec", "RemapVec", "system", Kind::RemapVec),
    s(
        "remapvec-huge",
        "RemapVec, huge pages",
        "system",
        Kind::RemapVecHuge,
    ),
    s(
        "remapalloc",
        "std Vec, RemapAlloc(glibc)",
        "remap",
        Kind::StdVec,
    ),
    s(
        "remapalloc-mi",
        "std Vec, RemapAlloc(mimalloc)",
        "remap+mimalloc",
        Kind::StdVec,
    ),
    s(
        "remapalloc-je",
        "std Vec, RemapAlloc(jemalloc)",
        "remap+jemalloc",
        Kind::StdVec,
    ),
    s(
        "api2-remap",
        "api2 Vec in RemapAlloc",
        "system",
        Kind::Api2Remap,
    ),
    s(
        "own-1.5x",
        "own: Vec 1.5x (GrowStrategy)",
        "system",
        Kind::User,
    ),
];

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Workload {
    Push,
    Double,
    DoubleWrite,
    Churn,
    Pipeline,
}

const WORKLOADS: [Workload; 5] = [
    Workload::Push,
    Workload::Double,
    Workload::DoubleWrite,
    Workload::Churn,
    Workload::Pipeline,
];

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Workload::Push => "push",
            Workload::Double => "double",
            Workload::DoubleWrite => "double-w",
            Workload::Churn => "churn",
            Workload::Pipeline => "pipeline",
        }
    }
    fn from_name(s: &str) -> Option<Workload> {
        WORKLOADS.into_iter().find(|w| w.name() == s)
    }
    fn supports(self, k: Kind) -> bool {
        match self {
            Workload::Push => true,
            Workload::Double | Workload::DoubleWrite | Workload::Churn => k != Kind::User,
            Workload::Pipeline => !matches!(k, Kind::User | Kind::Explicit),
        }
    }
    /// Default sizes (bytes; MB of CSV for the pipeline), and those of `--quick`.
    fn sizes(self, quick: bool) -> Vec<u64> {
        const M: u64 = 1 << 20;
        match (self, quick) {
            (Workload::Push, false) => vec![M, 16 * M, 64 * M],
            (Workload::Push, true) => vec![M, 8 * M],
            (Workload::Double | Workload::DoubleWrite, false) => vec![16 * M, 64 * M],
            (Workload::Double | Workload::DoubleWrite, true) => vec![8 * M],
            (Workload::Churn, false) => vec![256 << 10, 4 * M, 64 * M],
            (Workload::Churn, true) => vec![256 << 10, 4 * M],
            (Workload::Pipeline, false) => vec![1, 2],
            (Workload::Pipeline, true) => vec![1],
        }
    }
    fn size_label(self, size: u64) -> String {
        match self {
            Workload::Pipeline => format!("{size} MB CSV"),
            _ => human(size),
        }
    }
}

fn human(b: u64) -> String {
    match b {
        b if b >= 1 << 30 && b % (1 << 30) == 0 => format!("{} GiB", b >> 30),
        b if b >= 1 << 20 => format!("{} MiB", b >> 20),
        b => format!("{} KiB", b >> 10),
    }
}

fn huge() -> VecOptions {
    VecOptions::default().huge_pages(true)
}

// ---------------------------------------------------------------------------------------------
// malloc + memcpy + free, and a user's own strategy

/// malloc a new block, memcpy, free the old one: what every copying allocator does.
struct ExplicitCopy<T> {
    ptr: *mut T,
    len: usize,
    cap: usize,
}

impl<T: Copy> ExplicitCopy<T> {
    fn new() -> Self {
        ExplicitCopy {
            ptr: core::ptr::null_mut(),
            len: 0,
            cap: 0,
        }
    }
    /// Moves to a new block of exactly `new_cap` elements (`new_cap > len`).
    fn regrow(&mut self, new_cap: usize) {
        let size = core::mem::size_of::<T>().max(1);
        let bytes = new_cap.checked_mul(size).expect("capacity overflow");
        // SAFETY: malloc of a nonzero size, checked for null; the old block holds `len`
        // initialized elements, copied before it is freed.
        unsafe {
            let p = libc::malloc(bytes).cast::<T>();
            assert!(!p.is_null(), "malloc of {bytes} bytes failed");
            if !self.ptr.is_null() {
                core::ptr::copy_nonoverlapping(self.ptr, p, self.len);
                libc::free(self.ptr.cast());
            }
            self.ptr = p;
        }
        self.cap = new_cap;
    }
}

impl<T> Drop for ExplicitCopy<T> {
    fn drop(&mut self) {
        if !self.ptr.is_null() {
            // SAFETY: our malloc'd block, not used after this.
            unsafe { libc::free(self.ptr.cast()) };
        }
    }
}

impl<T: Copy> GrowStrategy<T> for ExplicitCopy<T> {
    fn name(&self) -> String {
        "malloc+memcpy+free".into()
    }
    fn push(&mut self, x: T) {
        Buf::push(self, x)
    }
    fn len(&self) -> usize {
        self.len
    }
    fn capacity(&self) -> usize {
        self.cap
    }
    fn as_slice(&self) -> &[T] {
        Buf::as_slice(self)
    }
    fn reset(&mut self) {
        *self = ExplicitCopy::new();
    }
}

impl<T: Copy> Buf<T> for ExplicitCopy<T> {
    fn push(&mut self, x: T) {
        if self.len == self.cap {
            self.regrow((self.cap * 2).max(16));
        }
        // SAFETY: `len < cap` now.
        unsafe { self.ptr.add(self.len).write(x) };
        self.len += 1;
    }
    fn extend_from_slice(&mut self, s: &[T]) {
        if self.cap - self.len < s.len() {
            self.regrow((self.cap * 2).max(self.len + s.len()));
        }
        // SAFETY: room for `s.len()` more elements; `s` cannot overlap our own block (we hold
        // `&mut self`).
        unsafe { core::ptr::copy_nonoverlapping(s.as_ptr(), self.ptr.add(self.len), s.len()) };
        self.len += s.len();
    }
    fn reserve_exact(&mut self, additional: usize) {
        let want = self.len.checked_add(additional).expect("capacity overflow");
        if want > self.cap {
            self.regrow(want);
        }
    }
    fn resize(&mut self, n: usize, x: T) {
        if n > self.len {
            self.reserve_exact(n - self.len);
            for i in self.len..n {
                // SAFETY: `i < n <= cap`.
                unsafe { self.ptr.add(i).write(x) };
            }
        }
        self.len = n;
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
    fn as_mut_slice(&mut self) -> &mut [T] {
        if self.ptr.is_null() {
            return &mut [];
        }
        // SAFETY: `len` initialized elements at `ptr`, borrowed mutably through `&mut self`.
        unsafe { core::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

/// A user's own strategy: a `Vec` that grows by 1.5x instead of 2x, measured through
/// `GrowStrategy` like every other push row.
struct OneAndAHalf<T>(Vec<T>);

impl<T> GrowStrategy<T> for OneAndAHalf<T> {
    fn name(&self) -> String {
        "own: Vec 1.5x (GrowStrategy)".into()
    }
    fn push(&mut self, x: T) {
        if self.0.len() == self.0.capacity() {
            let more = (self.0.capacity() / 2).max(16);
            self.0.reserve_exact(more);
        }
        self.0.push(x);
    }
    fn len(&self) -> usize {
        self.0.len()
    }
    fn capacity(&self) -> usize {
        self.0.capacity()
    }
    fn as_slice(&self) -> &[T] {
        &self.0
    }
    fn reset(&mut self) {
        self.0 = Vec::new();
    }
}

// ---------------------------------------------------------------------------------------------
// Workloads (run in a child process)

/// Element types of `push`.
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

/// What one run reports besides time.
#[derive(Default)]
struct RunResult {
    ok: bool,
    /// Pipeline: the output's checksum (compared across rows by the parent).
    sum: u64,
    /// Push: the slowest single grow, ns.
    worst_grow_ns: u64,
}

/// Runs `$body` with `$make` a closure that makes an empty buffer of `$t` of the strategy.
macro_rules! with_buf {
    ($kind:expr, $t:ty, |$make:ident| $body:expr) => {
        match $kind {
            Kind::StdVec => {
                let $make = Vec::<$t>::new;
                $body
            }
            Kind::Explicit => {
                let $make = ExplicitCopy::<$t>::new;
                $body
            }
            Kind::RemapVec => {
                let $make = RemapVec::<$t>::new;
                $body
            }
            Kind::RemapVecHuge => {
                let $make = || RemapVec::<$t>::with_options(huge());
                $body
            }
            Kind::Api2Remap => {
                let $make = || allocator_api2::vec::Vec::<$t, _>::new_in(RemapAlloc::new());
                $body
            }
            Kind::User => unreachable!("the user's strategy only pushes"),
        }
    };
}

fn push<T: Elem>(kind: Kind, bytes: u64) -> RunResult {
    let n = bytes as usize / core::mem::size_of::<T>();
    // `measure` checks the contents and panics if they differ.
    let m = std::panic::catch_unwind(AssertUnwindSafe(|| match kind {
        Kind::StdVec => measure(&mut Vec::<T>::new(), n, T::at),
        Kind::Explicit => measure(&mut ExplicitCopy::<T>::new(), n, T::at),
        Kind::RemapVec => measure(&mut RemapVec::<T>::new(), n, T::at),
        Kind::RemapVecHuge => measure(&mut RemapVec::<T>::with_options(huge()), n, T::at),
        Kind::Api2Remap => measure(
            &mut allocator_api2::vec::Vec::<T, _>::new_in(RemapAlloc::new()),
            n,
            T::at,
        ),
        Kind::User => measure(&mut OneAndAHalf(Vec::<T>::new()), n, T::at),
    }));
    match m {
        Ok(m) => RunResult {
            ok: m.elements == n,
            sum: 0,
            worst_grow_ns: m.worst_grow.as_nanos() as u64,
        },
        Err(_) => RunResult::default(),
    }
}

/// 4 KiB of content, then capacity doubling by `reserve_exact` up to `size` bytes, writing the
/// new bytes (a different value per step) or not; checks every step's bytes (one per page) and
/// the first 4 KiB at the end.
fn double<B: Buf<u8>>(mut b: B, size: usize, write: bool) -> RunResult {
    let head: Vec<u8> = (0..4096u32).map(|i| (i * 7) as u8).collect();
    b.extend_from_slice(&head);
    let mut steps = Vec::new();
    let mut value = 1u8;
    while b.capacity() < size {
        let len = b.as_slice().len();
        let target = (b.capacity() * 2).min(size);
        b.reserve_exact(target - len);
        if write {
            b.resize(target, value);
            steps.push((len, target, value));
            value = value.wrapping_add(1).max(1);
        }
    }
    let s = b.as_slice();
    let ok = s[..4096] == head[..]
        && steps
            .iter()
            .all(|&(lo, hi, v)| s[lo..hi].iter().step_by(4096).all(|&x| x == v) && s[hi - 1] == v);
    RunResult {
        ok,
        ..RunResult::default()
    }
}

/// Bytes written per `churn` run.
const CHURN_VOLUME: usize = 16 << 20;

/// Allocates `size` bytes, writes every byte, checks one byte per page, frees; repeated until
/// `CHURN_VOLUME` bytes were written (at least once).
fn churn<B: Buf<u8>>(make: impl Fn() -> B, size: usize) -> RunResult {
    let iters = (CHURN_VOLUME / size).max(1);
    let mut ok = true;
    for i in 0..iters {
        let tag = (i % 251) as u8 + 1;
        let mut b = make();
        b.reserve_exact(size);
        b.resize(size, tag);
        let s = b.as_slice();
        ok &= s.len() == size && s.iter().step_by(4096).all(|&x| x == tag) && s[size - 1] == tag;
        drop(b);
    }
    RunResult {
        ok,
        ..RunResult::default()
    }
}

fn run_pipeline(kind: Kind, mb: u64) -> RunResult {
    let rows = pipeline::rows_for_mb(mb as f64);
    let path = pipeline::csv_path(rows);
    let iters = pipeline::scratch_iters(rows);
    let out = match kind {
        Kind::StdVec => pipeline::run(&path, iters, Vec::new, Vec::new),
        Kind::RemapVec => pipeline::run(&path, iters, RemapVec::new, RemapVec::new),
        Kind::RemapVecHuge => pipeline::run(
            &path,
            iters,
            || RemapVec::with_options(huge()),
            || RemapVec::with_options(huge()),
        ),
        Kind::Api2Remap => pipeline::run(
            &path,
            iters,
            || allocator_api2::vec::Vec::new_in(RemapAlloc::new()),
            || allocator_api2::vec::Vec::new_in(RemapAlloc::new()),
        ),
        Kind::Explicit | Kind::User => unreachable!("no pipeline for this strategy"),
    };
    RunResult {
        ok: out.scratch_ok && out.shape.0 as u64 == rows,
        sum: out.sum,
        worst_grow_ns: 0,
    }
}

fn run_workload(kind: Kind, w: Workload, size: u64, elem: &str) -> RunResult {
    match w {
        Workload::Push if elem == "u64" => push::<u64>(kind, size),
        Workload::Push => push::<u32>(kind, size),
        Workload::Double | Workload::DoubleWrite => {
            let write = w == Workload::DoubleWrite;
            with_buf!(kind, u8, |make| double(make(), size as usize, write))
        }
        Workload::Churn => with_buf!(kind, u8, |make| churn(make, size as usize)),
        Workload::Pipeline => run_pipeline(kind, size),
    }
}

/// One measured run: wall and CPU seconds, minor faults, peak RSS added (KiB), regions reused
/// from `RemapVec`/`RemapAlloc`'s recycler, and the workload's own result.
struct Sample {
    wall: f64,
    cpu: f64,
    faults: u64,
    peak_kib: u64,
    reused: u64,
    /// mmap, mremap and munmap calls (runs that count them are not timed).
    calls: Option<[u64; 3]>,
    res: RunResult,
}

fn sample(kind: Kind, w: Workload, size: u64, elem: &str) -> Sample {
    measure::reset_peak_rss();
    let rss0 = measure::rss_kib();
    let hits0 = remapvec::cache_stats().hits;
    let calls0 = syscount::counts();
    let (c0, f0) = measure::usage();
    let t = Instant::now();
    let res = run_workload(kind, w, size, elem);
    let wall = t.elapsed().as_secs_f64();
    let (c1, f1) = measure::usage();
    let calls1 = syscount::counts();
    Sample {
        wall,
        cpu: c1 - c0,
        faults: f1 - f0,
        peak_kib: measure::peak_rss_kib().saturating_sub(rss0),
        reused: remapvec::cache_stats().hits - hits0,
        calls: Some([0, 1, 2].map(|i| calls1[i] - calls0[i])),
        res,
    }
}

fn child(a: &Args) {
    let key = a.child.as_deref().unwrap_or_default();
    let st = STRATEGIES
        .iter()
        .find(|s| s.key == key)
        .unwrap_or_else(|| die(&format!("no strategy {key:?}")));
    let w = a.workloads[0];
    let size = a.sizes.as_ref().expect("--sizes")[0];
    let counting = a.count && {
        let r = syscount::start();
        if let Err(e) = &r {
            eprintln!("cannot count system calls: {e}");
        }
        r.is_ok()
    };
    for i in 0..=a.warm {
        let s = sample(st.kind, w, size, &a.elem);
        let calls = match s.calls {
            Some([m, r, u]) if counting => format!("{m} {r} {u}"),
            _ => "- - -".into(),
        };
        println!(
            "RUN {} {:.6} {:.6} {} {} {} {} {} {} {calls}",
            if i == 0 { "cold" } else { "warm" },
            s.wall,
            s.cpu,
            s.faults,
            s.peak_kib,
            s.reused,
            s.res.ok as u8,
            s.res.sum,
            s.res.worst_grow_ns,
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The parent: options, children, table, CSV, SVG

struct Args {
    workloads: Vec<Workload>,
    only: Option<Vec<String>>,
    sizes: Option<Vec<u64>>,
    reps: usize,
    warm: usize,
    elem: String,
    md: bool,
    csv: Option<String>,
    svg: Option<String>,
    quick: bool,
    child: Option<String>,
    /// Child: count system calls (the runs are not timed).
    count: bool,
}

fn die(msg: &str) -> ! {
    eprintln!("realloc_strategies: {msg} (see the file's header for usage)");
    std::process::exit(2)
}

fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim().to_ascii_lowercase();
    let s = s.trim_end_matches("ib").trim_end_matches('b');
    let (num, mul) = match s.as_bytes().last() {
        Some(b'g') => (&s[..s.len() - 1], 1 << 30),
        Some(b'm') => (&s[..s.len() - 1], 1 << 20),
        Some(b'k') => (&s[..s.len() - 1], 1 << 10),
        _ => (s, 1),
    };
    num.trim().parse::<u64>().ok()?.checked_mul(mul)
}

fn args() -> Args {
    let mut a = Args {
        workloads: WORKLOADS.to_vec(),
        only: None,
        sizes: None,
        reps: 5,
        warm: 1,
        elem: "u32".into(),
        md: false,
        csv: None,
        svg: None,
        quick: false,
        child: None,
        count: false,
    };
    let v: Vec<String> = std::env::args().skip(1).collect();
    let mut reps = None;
    let mut i = 0;
    while i < v.len() {
        let flag = v[i].as_str();
        let mut value = || {
            i += 1;
            v.get(i)
                .cloned()
                .unwrap_or_else(|| die(&format!("{flag} takes a value")))
        };
        match flag {
            "--workload" => {
                let mut ws = Vec::new();
                for w in value().split(',') {
                    match w {
                        "double" => ws.extend([Workload::Double, Workload::DoubleWrite]),
                        w => ws.push(
                            Workload::from_name(w)
                                .unwrap_or_else(|| die(&format!("no workload {w:?}"))),
                        ),
                    }
                }
                ws.sort();
                ws.dedup();
                a.workloads = ws;
            }
            "--only" => a.only = Some(value().split(',').map(str::to_owned).collect()),
            "--sizes" => {
                let sizes = value()
                    .split(',')
                    .map(|s| parse_size(s).unwrap_or_else(|| die(&format!("bad size {s:?}"))))
                    .collect();
                a.sizes = Some(sizes);
            }
            "--reps" => reps = Some(value().parse().unwrap_or_else(|_| die("--reps N"))),
            "--warm" => a.warm = value().parse().unwrap_or_else(|_| die("--warm N")),
            "--elem" => {
                a.elem = value();
                if a.elem != "u32" && a.elem != "u64" {
                    die("--elem takes u32 or u64");
                }
            }
            "--md" => a.md = true,
            "--csv" => a.csv = Some(value()),
            "--svg" => a.svg = Some(value()),
            "--quick" => a.quick = true,
            "--child" => a.child = Some(value()),
            "--count" => a.count = true,
            "--list" => {
                for s in &STRATEGIES {
                    println!("{:<16} {:<32} global allocator: {}", s.key, s.name, s.alloc);
                }
                std::process::exit(0)
            }
            other => die(&format!("unknown argument {other:?}")),
        }
        i += 1;
    }
    a.reps = reps.unwrap_or(if a.quick { 2 } else { 5 }).max(1);
    if let Some(only) = &a.only {
        for k in only {
            if !STRATEGIES.iter().any(|s| s.key == k) {
                die(&format!("no strategy {k:?}; --list shows them"));
            }
        }
    }
    a
}

/// The runs of one row (strategy, workload, size).
#[derive(Default)]
struct Cell {
    cold: Vec<Sample>,
    warm: Vec<Sample>,
    /// Children that failed (exited with an error, or printed nothing).
    failed: Vec<String>,
    /// Set by the parent when the pipeline output differs from the other rows'.
    differs: bool,
    /// mmap/mremap/munmap calls of a cold and a warm run (an extra, untimed child).
    calls: [Option<[u64; 3]>; 2],
}

impl Cell {
    fn ok(&self) -> bool {
        self.failed.is_empty()
            && !self.differs
            && !self.cold.is_empty()
            && self.cold.iter().chain(&self.warm).all(|s| s.res.ok)
    }
}

fn spawn(
    a: &Args,
    st: &Strategy,
    w: Workload,
    size: u64,
    count: bool,
) -> Result<Vec<(bool, Sample)>, String> {
    let mut cmd = Command::new(std::env::current_exe().expect("own path"));
    cmd.args(["--child", st.key, "--workload", w.name(), "--sizes"])
        .arg(size.to_string())
        .args(["--warm", &a.warm.to_string(), "--elem", &a.elem])
        .env(switch::ENV, st.alloc);
    if count {
        cmd.arg("--count");
    }
    let out = cmd
        .output()
        .map_err(|e| format!("could not start a child: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!(
            "{} {} {}: {}: {}",
            st.key,
            w.name(),
            size,
            out.status,
            err.lines().last().unwrap_or("")
        ));
    }
    let mut runs = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let f: Vec<&str> = line.split(' ').collect();
        if f.len() != 13 || f[0] != "RUN" {
            continue;
        }
        let calls = (f[10] != "-").then(|| [10, 11, 12].map(|i| f[i].parse().unwrap_or(0)));
        let n = |i: usize| f[i].parse::<f64>().unwrap_or(f64::NAN);
        let u = |i: usize| f[i].parse::<u64>().unwrap_or(0);
        runs.push((
            f[1] == "cold",
            Sample {
                wall: n(2),
                cpu: n(3),
                faults: u(4),
                peak_kib: u(5),
                reused: u(6),
                calls,
                res: RunResult {
                    ok: f[7] == "1",
                    sum: u(8),
                    worst_grow_ns: u(9),
                },
            },
        ));
    }
    if runs.is_empty() {
        return Err(format!("{} {} {}: no output", st.key, w.name(), size));
    }
    Ok(runs)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn range(v: &[f64]) -> (f64, f64) {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (lo, hi)
}

fn ms(x: f64) -> String {
    let ms = x * 1e3;
    if ms >= 100.0 {
        format!("{ms:.0}")
    } else if ms >= 10.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.2}")
    }
}

fn time_cell(v: &[Sample]) -> (String, String) {
    if v.is_empty() {
        return ("-".into(), "-".into());
    }
    let walls: Vec<f64> = v.iter().map(|s| s.wall).collect();
    let (lo, hi) = range(&walls);
    (
        format!("{} [{}–{}]", ms(median(walls)), ms(lo), ms(hi)),
        ms(median(v.iter().map(|s| s.cpu).collect())),
    )
}

fn med_u(v: &[Sample], f: impl Fn(&Sample) -> u64) -> String {
    if v.is_empty() {
        return "-".into();
    }
    format!("{:.0}", median(v.iter().map(|s| f(s) as f64).collect()))
}

const HEADERS: [&str; 13] = [
    "workload",
    "strategy",
    "size",
    "cold ms [min–max]",
    "cold CPU",
    "warm ms [min–max]",
    "warm CPU",
    "faults cold/warm",
    "peak MiB",
    "reused",
    "mmap/mremap/munmap cold; warm",
    "worst grow µs",
    "check",
];

fn row_cells(w: Workload, size: u64, st: &Strategy, c: &Cell) -> Vec<String> {
    let (cold, cold_cpu) = time_cell(&c.cold);
    let (warm, warm_cpu) = time_cell(&c.warm);
    let worst = if w == Workload::Push && !c.cold.is_empty() {
        let all: Vec<&Sample> = c.cold.iter().chain(&c.warm).collect();
        format!(
            "{:.0}",
            median(
                all.iter()
                    .map(|s| s.res.worst_grow_ns as f64 / 1e3)
                    .collect()
            )
        )
    } else {
        "-".into()
    };
    let peak = if c.cold.is_empty() {
        "-".into()
    } else {
        format!(
            "{:.0}",
            median(c.cold.iter().map(|s| s.peak_kib as f64 / 1024.0).collect())
        )
    };
    let reused = if matches!(
        st.kind,
        Kind::RemapVec | Kind::RemapVecHuge | Kind::Api2Remap
    ) || st.alloc.starts_with("remap")
    {
        format!(
            "{}/{}",
            med_u(&c.cold, |s| s.reused),
            med_u(&c.warm, |s| s.reused)
        )
    } else {
        "-".into()
    };
    let calls = |c: Option<[u64; 3]>| c.map_or("-".into(), |[m, r, u]| format!("{m}/{r}/{u}"));
    let runs = c.cold.len() + c.warm.len();
    let check = if c.ok() {
        format!("ok ({runs} runs)")
    } else if c.differs {
        "FAIL: output differs".into()
    } else {
        format!("FAIL {}", c.failed.first().map_or("", |s| s.as_str()))
    };
    vec![
        w.name().into(),
        st.name.into(),
        w.size_label(size),
        cold,
        cold_cpu,
        warm,
        warm_cpu,
        format!(
            "{}/{}",
            med_u(&c.cold, |s| s.faults),
            med_u(&c.warm, |s| s.faults)
        ),
        peak,
        reused,
        format!("{}; {}", calls(c.calls[0]), calls(c.calls[1])),
        worst,
        check,
    ]
}

const WIDTHS: [usize; 13] = [9, 30, 11, 24, 9, 24, 9, 16, 8, 7, 24, 13, 12];

fn print_row(md: bool, cells: &[String]) {
    if md {
        println!("| {} |", cells.join(" | "));
    } else {
        let mut line = String::new();
        for (c, w) in cells.iter().zip(WIDTHS) {
            let _ = write!(line, "{c:<w$} ");
        }
        println!("{}", line.trim_end());
    }
}

type Results = BTreeMap<(Workload, u64, usize), Cell>;

fn table(a: &Args) {
    let strategies: Vec<(usize, &Strategy)> = STRATEGIES
        .iter()
        .enumerate()
        .filter(|(_, s)| a.only.as_ref().is_none_or(|o| o.iter().any(|k| k == s.key)))
        .collect();
    let started = Instant::now();
    println!(
        "realloc_strategies: {} fresh process(es) per row, each 1 cold + {} warm run(s); push of {}; times in ms, median [min–max]",
        a.reps, a.warm, a.elem
    );
    let headers: Vec<String> = HEADERS.iter().map(|h| h.to_string()).collect();
    print_row(a.md, &headers);
    if a.md {
        println!("|{}", "---|".repeat(HEADERS.len()));
    }
    let mut results: Results = BTreeMap::new();
    let mut csv = String::from(
        "workload,strategy,global_allocator,size,state,wall_s,cpu_s,minor_faults,peak_rss_kib,reused,ok,worst_grow_ns\n",
    );
    for &w in &a.workloads {
        let sizes = a.sizes.clone().unwrap_or_else(|| w.sizes(a.quick));
        for size in sizes {
            if w == Workload::Pipeline {
                pipeline::ensure_csv(pipeline::rows_for_mb(size as f64));
            }
            // Repetitions outermost, so that a disturbance spreads over the strategies.
            for _ in 0..a.reps {
                for &(i, st) in &strategies {
                    if !w.supports(st.kind) {
                        continue;
                    }
                    let cell = results.entry((w, size, i)).or_default();
                    match spawn(a, st, w, size, false) {
                        Ok(runs) => {
                            for (cold, s) in runs {
                                let _ = writeln!(
                                    csv,
                                    "{},\"{}\",{},{},{},{:.6},{:.6},{},{},{},{},{}",
                                    w.name(),
                                    st.name,
                                    st.alloc,
                                    size,
                                    if cold { "cold" } else { "warm" },
                                    s.wall,
                                    s.cpu,
                                    s.faults,
                                    s.peak_kib,
                                    s.reused,
                                    s.res.ok as u8,
                                    s.res.worst_grow_ns
                                );
                                if cold {
                                    cell.cold.push(s);
                                } else {
                                    cell.warm.push(s);
                                }
                            }
                        }
                        Err(e) => cell.failed.push(e),
                    }
                }
            }
            // One more child per row, untimed, counts the system calls.
            for &(i, st) in &strategies {
                if !w.supports(st.kind) {
                    continue;
                }
                let cell = results.entry((w, size, i)).or_default();
                match spawn(a, st, w, size, true) {
                    Ok(runs) => {
                        for (cold, s) in runs {
                            let slot = &mut cell.calls[usize::from(!cold)];
                            if slot.is_none() {
                                *slot = s.calls;
                            }
                            // Its contents checks count like the timed runs'.
                            if !s.res.ok {
                                cell.failed.push("the counting run's check failed".into());
                            }
                        }
                    }
                    Err(e) => cell.failed.push(e),
                }
            }
            if w == Workload::Pipeline {
                mark_differing(&mut results, w, size);
            }
            for ((_, _, i), c) in results.range((w, size, 0)..=(w, size, usize::MAX)) {
                print_row(a.md, &row_cells(w, size, &STRATEGIES[*i], c));
            }
        }
    }
    let total = results.len();
    let passed = results.values().filter(|c| c.ok()).count();
    println!(
        "contents checks: {passed} of {total} rows passed; {:.0} s in all",
        started.elapsed().as_secs_f64()
    );
    if let Some(path) = &a.csv {
        std::fs::write(path, csv).unwrap_or_else(|e| die(&format!("writing {path}: {e}")));
        println!("wrote {path}");
    }
    if let Some(path) = &a.svg {
        svg::draw(path, &results, a).unwrap_or_else(|e| die(&format!("drawing {path}: {e}")));
        println!("wrote {path}");
    }
    if passed != total {
        std::process::exit(1);
    }
}

/// Pipeline rows at one size must all produce the same output: marks those that do not agree
/// with the most common checksum.
fn mark_differing(results: &mut Results, w: Workload, size: u64) {
    let mut counts: BTreeMap<u64, usize> = BTreeMap::new();
    for (_, c) in results.range((w, size, 0)..=(w, size, usize::MAX)) {
        for s in c.cold.iter().chain(&c.warm) {
            *counts.entry(s.res.sum).or_default() += 1;
        }
    }
    let Some((&common, _)) = counts.iter().max_by_key(|(_, n)| **n) else {
        return;
    };
    for (_, c) in results.range_mut((w, size, 0)..=(w, size, usize::MAX)) {
        c.differs = c.cold.iter().chain(&c.warm).any(|s| s.res.sum != common);
    }
}

mod svg {
    use super::{Args, Results, STRATEGIES, Sample, WORKLOADS, median};
    use plotters::prelude::*;

    /// Time against size, one line per strategy; one row of panels per workload, cold on the
    /// left and warm on the right; both axes logarithmic.
    pub fn draw(path: &str, r: &Results, a: &Args) -> Result<(), Box<dyn std::error::Error>> {
        let workloads: Vec<_> = WORKLOADS
            .into_iter()
            .filter(|w| r.keys().any(|k| k.0 == *w))
            .collect();
        let root = SVGBackend::new(path, (1200, 330 * workloads.len() as u32)).into_drawing_area();
        root.fill(&WHITE)?;
        let panels = root.split_evenly((workloads.len(), 2));
        for (row, &w) in workloads.iter().enumerate() {
            for (col, state) in ["cold", "warm"].into_iter().enumerate() {
                let area = &panels[row * 2 + col];
                let pick = |c: &super::Cell| -> Vec<f64> {
                    let v: &Vec<Sample> = if col == 0 { &c.cold } else { &c.warm };
                    v.iter().map(|s| s.wall * 1e3).collect()
                };
                let cells: Vec<_> = r.iter().filter(|(k, _)| k.0 == w).collect();
                let xs: Vec<f64> = cells.iter().map(|(k, _)| k.1 as f64).collect();
                let ys: Vec<f64> = cells
                    .iter()
                    .flat_map(|(_, c)| pick(c))
                    .filter(|y| *y > 0.0)
                    .collect();
                if xs.is_empty() || ys.is_empty() {
                    continue;
                }
                let (x0, x1) = super::range(&xs);
                let mut ticks = xs.clone();
                ticks.sort_by(f64::total_cmp);
                ticks.dedup();
                let (y0, y1) = super::range(&ys);
                let unit = if w == super::Workload::Pipeline {
                    "CSV size, MB"
                } else {
                    "size"
                };
                let mut chart = ChartBuilder::on(area)
                    .caption(format!("{} — {state}", w.name()), ("sans-serif", 18))
                    .margin(8)
                    .x_label_area_size(32)
                    .y_label_area_size(56)
                    .build_cartesian_2d(
                        (x0 / 1.3..x1 * 1.3).log_scale().with_key_points(ticks),
                        (y0 / 1.5..y1 * 1.5).log_scale(),
                    )?;
                chart
                    .configure_mesh()
                    .x_desc(unit)
                    .y_desc("ms per run (median)")
                    .x_label_formatter(&|x| {
                        if w == super::Workload::Pipeline {
                            format!("{x:.0}")
                        } else {
                            super::human(*x as u64)
                        }
                    })
                    .draw()?;
                for (i, st) in STRATEGIES.iter().enumerate() {
                    let pts: Vec<(f64, f64)> = cells
                        .iter()
                        .filter(|(k, _)| k.2 == i)
                        .filter_map(|(k, c)| {
                            let m = median(pick(c));
                            (m > 0.0).then_some((k.1 as f64, m))
                        })
                        .collect();
                    if pts.is_empty() {
                        continue;
                    }
                    let color = Palette99::pick(i).to_rgba();
                    chart
                        .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))?
                        .label(st.name)
                        .legend(move |(x, y)| {
                            PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
                        });
                    chart.draw_series(PointSeries::of_element(
                        pts,
                        3,
                        color.filled(),
                        &|c, s, st| Circle::new(c, s, st),
                    ))?;
                }
                if row == 0 && col == 0 {
                    chart
                        .configure_series_labels()
                        .position(SeriesLabelPosition::UpperLeft)
                        .background_style(WHITE.mix(0.8))
                        .border_style(BLACK)
                        .label_font(("sans-serif", 11))
                        .draw()?;
                }
            }
        }
        let _ = a;
        root.present()?;
        Ok(())
    }
}

fn main() {
    let a = args();
    if a.child.is_some() {
        child(&a);
    } else {
        table(&a);
    }
}
