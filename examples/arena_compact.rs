//! Compaction of a fragmented `PageArena`, against the floor, on the same layouts:
//!
//! * `multi`: remap by one multi-mapping `mremap` per run (Linux 6.17+), copy where the cost
//!   model says copying is cheaper (the default);
//! * `per-mapping`: the same with one `mremap` per region (what older kernels can do);
//! * `memcpy`: copy every region (what a copying compactor does);
//! * `floor`: the same live bytes slid down with `copy_within` inside one committed, written
//!   buffer: what no copying compactor can beat.
//!
//! Layouts: 1 GiB of regions of 64 KiB-8 MiB with half of them freed at random, and 256 MiB
//! of tiny regions (4-16 KiB) likewise. Every region is fully written first (warm memory).
//! Each mode runs `--reps` times, the modes alternating, each on a fresh layout; the table
//! shows the median and the range, and the ratios are taken rep by rep (median [range]).
//!
//! `cargo run --release --example arena_compact [-- --big-mib 1024 --tiny-mib 256 --reps 5]`

use remapvec::{ArenaOptions, CompactReport, CostModel, PageArena};
use std::time::Instant;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A small deterministic generator (xorshift), so every mode sees the same layout.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// The layout: region lengths (page multiples of `min..=max` bytes, `total` bytes in all) and
/// which of them survive (half, at random).
fn plan(total: usize, min: usize, max: usize) -> Vec<(usize, bool)> {
    let mut rng = Rng(0x5EED);
    let mut lens = Vec::new();
    let mut used = 0;
    while used < total {
        let len = (min + (rng.next() as usize % (max - min + 1))).next_multiple_of(4096);
        lens.push(len);
        used += len;
    }
    lens.into_iter()
        .map(|l| (l, !rng.next().is_multiple_of(2)))
        .collect()
}

/// An arena holding the layout: every region allocated and written, then the dead ones freed.
fn layout(opts: ArenaOptions, plan: &[(usize, bool)]) -> PageArena {
    let total: usize = plan.iter().map(|p| p.0).sum();
    let mut a = PageArena::with_options(opts.initial_capacity(total + (total >> 2)));
    let mut ids = Vec::new();
    for (k, &(len, _)) in plan.iter().enumerate() {
        let id = a.alloc(len).expect("alloc");
        a.get_mut(id).unwrap().fill(k as u8);
        ids.push(id);
    }
    for (id, &(_, live)) in ids.into_iter().zip(plan) {
        if !live {
            a.free(id).expect("free");
        }
    }
    a
}

fn verify(a: &PageArena) {
    for (_, bytes) in a.iter() {
        let first = bytes[0];
        assert!(bytes.iter().all(|&b| b == first), "contents survived");
    }
}

/// One compaction of a fresh layout.
fn compact(opts: ArenaOptions, plan: &[(usize, bool)]) -> CompactReport {
    let mut a = layout(opts, plan);
    let frag = a.fragmentation();
    let r = a.compact().expect("compact");
    verify(&a);
    assert!(r.regions_moved > 0 && frag > 0.3);
    r
}

/// The floor: one buffer of the layout's size, all written, live regions slid down with
/// `copy_within`. Milliseconds.
fn floor(plan: &[(usize, bool)]) -> f64 {
    let total: usize = plan.iter().map(|p| p.0).sum();
    let mut buf = vec![0u8; total];
    let mut off = 0;
    for (k, &(len, _)) in plan.iter().enumerate() {
        buf[off..off + len].fill(k as u8);
        off += len;
    }
    let t = Instant::now();
    let (mut src, mut dst) = (0, 0);
    for &(len, live) in plan {
        if live {
            if src != dst {
                buf.copy_within(src..src + len, dst);
            }
            dst += len;
        }
        src += len;
    }
    let ms = t.elapsed().as_secs_f64() * 1e3;
    std::hint::black_box(&buf);
    ms
}

fn ms(r: &CompactReport) -> f64 {
    r.duration.as_secs_f64() * 1e3
}

/// Median and range of `v`.
fn stats(v: &[f64]) -> (f64, f64, f64) {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    (s[s.len() / 2], s[0], s[s.len() - 1])
}

fn show(label: &str, times: &[f64], last: Option<&CompactReport>) {
    let (m, lo, hi) = stats(times);
    let range = format!("[{lo:.2}-{hi:.2}]");
    match last {
        Some(r) => println!(
            "{label:<12} {m:>9.2} {range:>17} {:>7} {:>8} {:>7} {:>7} {:>6} {:>8} {:>8} {:>8}",
            r.regions_moved,
            r.regions_remapped,
            r.regions_copied_warm,
            r.regions_copied_fresh,
            r.runs,
            r.syscalls,
            r.remap_calls,
            r.pages_faulted,
        ),
        None => println!("{label:<12} {m:>9.2} {range:>17}"),
    }
}

fn ratio(label: &str, num: &[f64], den: &[f64]) {
    let r: Vec<f64> = num.iter().zip(den).map(|(n, d)| n / d).collect();
    let (m, lo, hi) = stats(&r);
    println!("{label}: {m:.2}x [{lo:.2}-{hi:.2}]");
}

fn scenario(title: &str, plan: &[(usize, bool)], reps: usize) {
    println!("\n{title}");
    println!(
        "{:<12} {:>9} {:>17} {:>7} {:>8} {:>7} {:>7} {:>6} {:>8} {:>8} {:>8}",
        "mode",
        "ms",
        "range",
        "moved",
        "remapped",
        "c.warm",
        "c.fresh",
        "runs",
        "syscalls",
        "mremaps",
        "faulted"
    );
    let modes = [
        ("multi", ArenaOptions::new()),
        ("per-mapping", ArenaOptions::new().multi_mapping_move(false)),
        (
            "memcpy",
            ArenaOptions::new().cost_model(CostModel::copy_only()),
        ),
    ];
    let mut times = vec![Vec::new(); modes.len() + 1];
    let mut last = [None; 3];
    for _ in 0..reps {
        for (k, (_, opts)) in modes.iter().enumerate() {
            let r = compact(*opts, plan);
            times[k].push(ms(&r));
            last[k] = Some(r);
        }
        times[3].push(floor(plan));
    }
    for (k, (label, _)) in modes.iter().enumerate() {
        show(label, &times[k], last[k].as_ref());
    }
    show("floor", &times[3], None);
    if let Some(r) = &last[0] {
        println!(
            "multi, last rep: estimated {:.2} ms by the cost model, took {:.2} ms; {} MiB left warm",
            r.estimated_ns / 1e6,
            ms(r),
            r.warm_bytes_after >> 20
        );
    }
    ratio("multi / floor (lower is better)", &times[0], &times[3]);
    ratio("memcpy / multi (higher is better)", &times[2], &times[0]);
}

fn main() {
    let big = arg("--big-mib", 1024) << 20;
    let tiny = arg("--tiny-mib", 256) << 20;
    let reps = arg("--reps", 5).max(1);
    println!(
        "multi-mapping move available: {}",
        remapvec::sys::features().multi_mapping_move
    );
    println!("cost model measured now: {:?}", CostModel::measure());
    println!("cost model in use:       {:?}", CostModel::default());
    scenario(
        &format!("{} MiB, regions 64 KiB-8 MiB, half freed", big >> 20),
        &plan(big, 64 << 10, 8 << 20),
        reps,
    );
    scenario(
        &format!("{} MiB, regions 4-16 KiB, half freed", tiny >> 20),
        &plan(tiny, 4 << 10, 16 << 10),
        reps,
    );
}
