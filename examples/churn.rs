//! Allocate, write every byte, free: the everyday path of large buffers, under each global
//! allocator. Prints one table: time per iteration (median and range of 5 rounds), CPU time,
//! minor page faults and mmap-family system calls per iteration.
//!
//! `cargo run --release --example churn -- [--sizes 256K,1M,8M,64M] [--rounds 5]`
//! `cargo run --release --example churn -- --live 12000`: page tables and mappings of that many
//! live 128 KiB blocks instead.
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

fn parse_size(s: &str) -> usize {
    let (n, mul) = match s.as_bytes().last() {
        Some(b'K') => (&s[..s.len() - 1], 1 << 10),
        Some(b'M') => (&s[..s.len() - 1], 1 << 20),
        Some(b'G') => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    n.parse::<usize>().expect("a size like 256K") * mul
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

fn child(sizes: &[usize], rounds: usize) {
    for &size in sizes {
        // About 256 MiB written per round, at least 4 iterations.
        let iters = ((256 << 20) / size).max(4);
        round(size, iters);
        let mut walls = Vec::new();
        let mut cpu = 0.0;
        let mut faults = 0;
        for _ in 0..rounds {
            let (w, c, f) = round(size, iters);
            walls.push(w / iters as f64);
            cpu += c / iters as f64;
            faults += f;
        }
        walls.sort_by(f64::total_cmp);
        println!(
            "{size} {:.3} {:.3} {:.3} {:.3} {:.1}",
            walls[walls.len() / 2] * 1e6,
            walls[0] * 1e6,
            walls[walls.len() - 1] * 1e6,
            cpu / rounds as f64 * 1e6,
            faults as f64 / (rounds * iters) as f64
        );
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
    if std::env::var(ENV).is_ok() {
        match live {
            Some(n) => live_blocks(n),
            None => child(&sizes, rounds),
        }
        return;
    }
    if let Some(n) = live {
        println!("{n} live 128 KiB blocks, one byte written in each");
        println!(
            "{:>16} {:>10} {:>10} {:>10}",
            "allocator", "VmPTE KiB", "mappings", "ms"
        );
        for name in NAMES {
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
    println!(
        "alloc + write every byte + free, per iteration: median [min-max] of {rounds} rounds, CPU time, minor faults"
    );
    println!(
        "{:>8} {:>16} {:>28} {:>10} {:>8}",
        "size", "allocator", "wall µs", "cpu µs", "faults"
    );
    for name in NAMES {
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
            let size: usize = f[0].parse().unwrap();
            let human = if size >= 1 << 20 {
                format!("{}M", size >> 20)
            } else {
                format!("{}K", size >> 10)
            };
            println!(
                "{human:>8} {name:>16} {:>10} [{:>7}-{:>7}] {:>10} {:>8}",
                f[1], f[2], f[3], f[4], f[5]
            );
        }
    }
}
