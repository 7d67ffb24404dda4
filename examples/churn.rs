//! Allocate, write every byte, free: the everyday path of large buffers, under each global
//! allocator. Prints one table: time per iteration (median and range of 5 rounds), CPU time
//! (median of the rounds), minor page faults and, with `--count`, mmap-family system calls per
//! iteration.
//!
//! `cargo run --release --example churn -- [--sizes 256K,1M,8M,64M] [--rounds 5] [--only remap,system] [--count]`
//! `cargo run --release --example churn -- --mixed 128K-8M [--threads 2] [--keep 4]`: mixed
//! sizes instead: every iteration allocates a buffer of a random size (log-uniform between the
//! two bounds, the same sequence for every allocator), writes every byte, and frees the buffer
//! allocated `--keep` iterations earlier (`--keep` alive at a time per thread), from `--threads`
//! threads.
//! `cargo run --release --example churn -- --live 12000`: page tables and mappings of that many
//! live 128 KiB blocks instead.
//!
//! `cargo run --release --example churn -- --placement 256K`: whether the physical pages behind a
//! buffer change how long writing it takes: 32 buffers of that size are allocated and faulted in
//! (each gets its own physical pages), then each is written whole 500 times; prints the time of
//! one write per buffer (median of its passes), sorted, and each buffer's address modulo 64 KiB.
//! No allocation is timed: only writes to resident pages.
//!
//! `--count` adds the `mmap`, `mremap` and `munmap` calls per iteration, counted in one more
//! round after the timed ones (counting slows every such call down, see `common/syscount.rs`).
//!
//! Each allocator runs in its own child process of this example (the global allocator is per
//! process): glibc (`System`), mimalloc, jemalloc, `RemapAlloc` (around `System`) and
//! `RemapAlloc::wrapping(MiMalloc)`. Within a child every size first runs once unmeasured
//! (warm state), then the measured rounds.

use std::hint::black_box;
use std::process::Command;
use std::time::Instant;

#[path = "common/switch.rs"]
mod switch;
#[path = "common/syscount.rs"]
mod syscount;
use switch::{ENV, NAMES};

#[global_allocator]
static GLOBAL: switch::Switch = switch::Switch;

fn usage() -> (f64, u64) {
    // SAFETY: getrusage fills the struct.
    let mut ru: libc::rusage = unsafe { core::mem::zeroed() };
    // SAFETY: a valid pointer to a rusage struct.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let cpu = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    (cpu(ru.ru_utime) + cpu(ru.ru_stime), ru.ru_minflt as u64)
}

/// One round at `size`: `iters` times allocate, write every byte, free. Returns (wall s, cpu s,
/// minor faults).
fn round(size: usize, iters: usize) -> (f64, f64, u64) {
    let (c0, f0) = usage();
    let t = Instant::now();
    for i in 0..iters {
        let mut v: Vec<u8> = Vec::with_capacity(size);
        // SAFETY: `size` bytes of capacity; written before being read.
        unsafe {
            v.as_mut_ptr().write_bytes(i as u8, size);
            v.set_len(size);
        }
        black_box(&mut v);
    }
    let wall = t.elapsed().as_secs_f64();
    let (c1, f1) = usage();
    (wall, c1 - c0, f1 - f0)
}

/// A small deterministic generator (xorshift64*), so that every allocator sees the same sizes.
struct Rng(u64);

impl Rng {
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Sizes of a mixed round and the number of iterations per thread.
#[derive(Clone, Copy)]
struct Mixed {
    lo: usize,
    hi: usize,
    threads: usize,
    keep: usize,
}

impl Mixed {
    /// Iterations per thread: about 256 MiB written per round in all, at least 4 per thread.
    fn iters(&self) -> usize {
        let (lo, hi) = (self.lo as f64, self.hi as f64);
        let mean = if hi > lo {
            (hi - lo) / (hi / lo).ln()
        } else {
            lo
        };
        ((256 << 20) as f64 / mean / self.threads as f64).max(4.0) as usize
    }

    /// One thread's part of round `r`: allocate a log-uniform size, write every byte, free the
    /// buffer made `keep` iterations earlier.
    fn thread(&self, r: usize, t: usize) {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (((r as u64) << 32) | (t as u64 + 1)));
        let mut live: Vec<Vec<u8>> = Vec::with_capacity(self.keep);
        let ratio = self.hi as f64 / self.lo as f64;
        for i in 0..self.iters() {
            let size = (self.lo as f64 * ratio.powf(rng.unit())) as usize;
            let mut v: Vec<u8> = Vec::with_capacity(size);
            // SAFETY: `size` bytes of capacity; written before being read.
            unsafe {
                v.as_mut_ptr().write_bytes(i as u8, size);
                v.set_len(size);
            }
            black_box(&mut v);
            if live.len() < self.keep {
                live.push(v);
            } else {
                live[i % self.keep] = v;
            }
        }
    }

    /// One round from all threads. Returns (wall s, cpu s, minor faults).
    fn round(&self, r: usize) -> (f64, f64, u64) {
        let (c0, f0) = usage();
        let t = Instant::now();
        std::thread::scope(|s| {
            for k in 1..self.threads {
                s.spawn(move || self.thread(r, k));
            }
            self.thread(r, 0);
        });
        let wall = t.elapsed().as_secs_f64();
        let (c1, f1) = usage();
        (wall, c1 - c0, f1 - f0)
    }
}

fn parse_size(s: &str) -> usize {
    let (n, mul) = match s.as_bytes().last() {
        Some(b'K') => (&s[..s.len() - 1], 1 << 10),
        Some(b'M') => (&s[..s.len() - 1], 1 << 20),
        Some(b'G') => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    n.parse::<usize>().expect("a size like 256K") * mul
}

/// `--placement SIZE`: the time of writing resident buffers that differ only in their pages.
fn placement(size: usize) {
    let mut bufs: Vec<Vec<u8>> = (0..32).map(|_| vec![1u8; size]).collect();
    let mut rows: Vec<(f64, usize)> = bufs
        .iter_mut()
        .enumerate()
        .map(|(i, b)| {
            let mut passes: Vec<f64> = (0..500)
                .map(|k| {
                    let t = Instant::now();
                    // SAFETY: `size` bytes of this buffer.
                    unsafe { b.as_mut_ptr().write_bytes((i + k) as u8, size) };
                    black_box(&mut *b);
                    t.elapsed().as_secs_f64()
                })
                .collect();
            passes.sort_by(f64::total_cmp);
            (
                passes[passes.len() / 2] * 1e6,
                b.as_ptr() as usize % (64 << 10),
            )
        })
        .collect();
    rows.sort_by(|a, b| a.0.total_cmp(&b.0));
    let t: Vec<String> = rows.iter().map(|r| format!("{:.2}", r.0)).collect();
    let a: Vec<String> = rows.iter().map(|r| format!("{:#x}", r.1)).collect();
    println!("{}", t.join(" "));
    println!("{}", a.join(" "));
}

/// `--live N`: N live 128 KiB blocks, one byte written in each: page-table memory (`VmPTE`)
/// and mappings (`/proc/self/maps` lines) they add.
fn live_blocks(n: usize) {
    let field = |name: &str| -> u64 {
        std::fs::read_to_string("/proc/self/status")
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|s| s.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    let maps = || {
        std::fs::read_to_string("/proc/self/maps")
            .unwrap()
            .lines()
            .count()
    };
    let mut blocks: Vec<Vec<u8>> = Vec::with_capacity(n);
    let (pte0, maps0) = (field("VmPTE:"), maps());
    let t = Instant::now();
    for i in 0..n {
        let mut b = Vec::with_capacity(128 << 10);
        b.push(i as u8);
        blocks.push(b);
    }
    let el = t.elapsed().as_secs_f64();
    println!(
        "live {n} {} {} {:.1}",
        field("VmPTE:") - pte0,
        maps() as i64 - maps0 as i64,
        el * 1e3
    );
    black_box(&blocks);
}

/// Prints one line: label, wall median/min/max and CPU (µs per iteration), faults and, when
/// counted, mmap/mremap/munmap calls per iteration.
fn report(
    label: &str,
    rounds: usize,
    iters: usize,
    mut run: impl FnMut(usize) -> (f64, f64, u64),
    count: bool,
) {
    run(0);
    let mut walls = Vec::new();
    let mut cpus = Vec::new();
    let mut faults = 0;
    for r in 1..=rounds {
        let (w, c, f) = run(r);
        walls.push(w / iters as f64);
        cpus.push(c / iters as f64);
        faults += f;
    }
    walls.sort_by(f64::total_cmp);
    cpus.sort_by(f64::total_cmp);
    let calls = if count {
        let c0 = syscount::counts();
        run(rounds + 1);
        let c1 = syscount::counts();
        let per = |i: usize| (c1[i] - c0[i]) as f64 / iters as f64;
        format!("{:.2}/{:.2}/{:.2}", per(0), per(1), per(2))
    } else {
        "-".into()
    };
    println!(
        "{label} {:.3} {:.3} {:.3} {:.3} {:.1} {calls} {}",
        walls[walls.len() / 2] * 1e6,
        walls[0] * 1e6,
        walls[walls.len() - 1] * 1e6,
        cpus[cpus.len() / 2] * 1e6,
        faults as f64 / (rounds * iters) as f64,
        huge_mib()
    );
}

/// MiB of the process's anonymous memory in transparent huge pages now (`AnonHugePages` of
/// `/proc/self/smaps_rollup`; `-` where there is none to read), and the blocks `RemapAlloc` has
/// given huge pages (`AllocStats::made_huge`).
fn huge_mib() -> String {
    std::fs::read_to_string("/proc/self/smaps_rollup")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("AnonHugePages:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or_else(|| "-".into(), |kib| (kib >> 10).to_string())
        + &format!("/{}", remapvec::RemapAlloc::stats().made_huge)
}

fn human(size: usize) -> String {
    if size >= 1 << 20 && size.is_multiple_of(1 << 20) {
        format!("{}M", size >> 20)
    } else {
        format!("{}K", size >> 10)
    }
}

fn child(sizes: &[usize], mixed: Option<Mixed>, rounds: usize, count: bool) {
    if count && let Err(e) = syscount::start() {
        eprintln!("cannot count system calls: {e}");
    }
    if let Some(m) = mixed {
        let iters = m.iters() * m.threads;
        let label = format!("{}-{}x{}", human(m.lo), human(m.hi), m.threads);
        report(&label, rounds, iters, |r| m.round(r), count);
        return;
    }
    for &size in sizes {
        // About 256 MiB written per round, at least 4 iterations.
        let iters = ((256 << 20) / size).max(4);
        report(&human(size), rounds, iters, |_| round(size, iters), count);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let sizes: Vec<usize> = arg("--sizes")
        .unwrap_or_else(|| "256K,1M,8M,64M".into())
        .split(',')
        .map(parse_size)
        .collect();
    let rounds: usize = arg("--rounds").and_then(|r| r.parse().ok()).unwrap_or(5);
    let live: Option<usize> = arg("--live").and_then(|r| r.parse().ok());
    let count = args.iter().any(|a| a == "--count");
    if let Some(size) = arg("--placement") {
        placement(parse_size(&size));
        return;
    }
    let mixed = arg("--mixed").map(|m| {
        let (lo, hi) = m.split_once('-').expect("--mixed LO-HI, like 128K-8M");
        let num = |name: &str, d: usize| {
            arg(name)
                .map(|v| v.parse::<usize>().expect("a number"))
                .unwrap_or(d)
                .max(1)
        };
        Mixed {
            lo: parse_size(lo),
            hi: parse_size(hi),
            threads: num("--threads", 1),
            keep: num("--keep", 4),
        }
    });
    let names: Vec<&str> = match arg("--only") {
        Some(o) => o
            .split(',')
            .map(|n| {
                *NAMES
                    .iter()
                    .find(|&&k| k == n)
                    .unwrap_or_else(|| panic!("--only: {n:?} is none of {NAMES:?}"))
            })
            .collect(),
        None => NAMES.to_vec(),
    };
    if std::env::var(ENV).is_ok() {
        match live {
            Some(n) => live_blocks(n),
            None => child(&sizes, mixed, rounds, count),
        }
        return;
    }
    if let Some(n) = live {
        println!("{n} live 128 KiB blocks, one byte written in each");
        println!(
            "{:>16} {:>10} {:>10} {:>10}",
            "allocator", "VmPTE KiB", "mappings", "ms"
        );
        for name in &names {
            let out = Command::new(std::env::current_exe().expect("own path"))
                .args(args.iter().skip(1))
                .env(ENV, name)
                .output()
                .expect("child runs");
            let line = String::from_utf8_lossy(&out.stdout);
            let f: Vec<&str> = line.split_whitespace().collect();
            println!("{name:>16} {:>10} {:>10} {:>10}", f[2], f[3], f[4]);
        }
        return;
    }
    if let Some(m) = mixed {
        println!(
            "mixed sizes {}-{} (log-uniform), {} alive per thread, {} thread(s)",
            human(m.lo),
            human(m.hi),
            m.keep,
            m.threads
        );
    }
    println!(
        "alloc + write every byte + free, per iteration: wall time median [min-max] of {rounds} rounds, CPU time (all threads) median of the rounds, minor faults, mmap/mremap/munmap calls (--count), MiB in huge pages at the end / blocks RemapAlloc made huge"
    );
    println!(
        "{:>14} {:>18} {:>28} {:>10} {:>8} {:>16} {:>10}",
        "size", "allocator", "wall µs", "cpu µs", "faults", "calls", "huge/made"
    );
    for name in &names {
        let out = Command::new(std::env::current_exe().expect("own path"))
            .args(args.iter().skip(1))
            .env(ENV, name)
            .output()
            .expect("child runs");
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let f: Vec<&str> = line.split(' ').collect();
            println!(
                "{:>14} {name:>18} {:>10} [{:>7}-{:>7}] {:>10} {:>8} {:>16} {:>10}",
                f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7]
            );
        }
    }
}
