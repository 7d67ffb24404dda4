//! `PageArena::compact` against its floors, on the layouts of `examples/arena_compact.rs`:
//!
//! * tiny: 256 MiB of 4-16 KiB regions, half freed at random, all written: `compact()` against
//!   sliding the same live bytes down inside one committed buffer with `copy_within` (the floor
//!   of any copying compactor);
//! * large: 1 GiB of 64 KiB-8 MiB regions likewise: `compact()` against compaction by
//!   copying (`CostModel::copy_only`).
//!
//! Every iteration compacts a fresh layout (built outside the timing).
//!
//! ```text
//! cargo bench --bench compact
//! REMAPVEC_BENCH_TINY_MIB=64 REMAPVEC_BENCH_BIG_MIB=256 cargo bench --bench compact
//! ```

#![allow(missing_docs)]

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use remapvec::{ArenaOptions, CostModel, PageArena};
use std::hint::black_box;
use std::time::Duration;

fn mib(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
        << 20
}

/// Region lengths and which survive: the generator and seed of `examples/arena_compact.rs`.
fn plan(total: usize, min: usize, max: usize) -> Vec<(usize, bool)> {
    let mut x = 0x5EEDu64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut lens = Vec::new();
    let mut used = 0;
    while used < total {
        let len = (min + (next() as usize % (max - min + 1))).next_multiple_of(4096);
        lens.push(len);
        used += len;
    }
    lens.into_iter()
        .map(|l| (l, !next().is_multiple_of(2)))
        .collect()
}

fn layout(opts: ArenaOptions, plan: &[(usize, bool)]) -> PageArena {
    let total: usize = plan.iter().map(|p| p.0).sum();
    let mut a = PageArena::with_options(opts.initial_capacity(total + (total >> 2)));
    let ids: Vec<_> = plan
        .iter()
        .enumerate()
        .map(|(k, &(len, _))| {
            let id = a.alloc(len).expect("alloc");
            a.get_mut(id).unwrap().fill(k as u8);
            id
        })
        .collect();
    for (id, &(_, live)) in ids.into_iter().zip(plan) {
        if !live {
            a.free(id).expect("free");
        }
    }
    a
}

/// A written buffer of the layout's size, for the floor.
fn buffer(plan: &[(usize, bool)]) -> Vec<u8> {
    let total: usize = plan.iter().map(|p| p.0).sum();
    let mut buf = vec![0u8; total];
    let mut off = 0;
    for (k, &(len, _)) in plan.iter().enumerate() {
        buf[off..off + len].fill(k as u8);
        off += len;
    }
    buf
}

fn slide(buf: &mut [u8], plan: &[(usize, bool)]) {
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
}

fn bench_tiny(c: &mut Criterion) {
    let plan = plan(mib("REMAPVEC_BENCH_TINY_MIB", 256), 4 << 10, 16 << 10);
    let live: usize = plan.iter().filter(|p| p.1).map(|p| p.0).sum();
    let mut g = c.benchmark_group("compact_tiny_4-16KiB");
    g.sample_size(10);
    g.warm_up_time(Duration::from_millis(100));
    g.measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Bytes(live as u64));
    g.bench_function("PageArena::compact", |b| {
        b.iter_batched_ref(
            || layout(ArenaOptions::new(), &plan),
            |a| black_box(a.compact().expect("compact")),
            BatchSize::PerIteration,
        )
    });
    g.bench_function("copy_within floor", |b| {
        b.iter_batched_ref(
            || buffer(&plan),
            |buf| {
                slide(buf, &plan);
                black_box(buf.as_ptr());
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

fn bench_large(c: &mut Criterion) {
    let plan = plan(mib("REMAPVEC_BENCH_BIG_MIB", 1024), 64 << 10, 8 << 20);
    let live: usize = plan.iter().filter(|p| p.1).map(|p| p.0).sum();
    let mut g = c.benchmark_group("compact_large_64KiB-8MiB");
    g.sample_size(10);
    g.warm_up_time(Duration::from_millis(100));
    g.measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Bytes(live as u64));
    g.bench_function("PageArena::compact", |b| {
        b.iter_batched_ref(
            || layout(ArenaOptions::new(), &plan),
            |a| black_box(a.compact().expect("compact")),
            BatchSize::PerIteration,
        )
    });
    g.bench_function("compaction by copying", |b| {
        b.iter_batched_ref(
            || {
                layout(
                    ArenaOptions::new().cost_model(CostModel::copy_only()),
                    &plan,
                )
            },
            |a| black_box(a.compact().expect("compact")),
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, bench_tiny, bench_large);
criterion_main!(benches);
