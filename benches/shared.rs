//! `SharedVec` against `RwLock<Vec<u64>>`: append throughput (one by one, and in batches), and
//! the latency of taking a read view (uncontended). The reader stall *during* a grow is
//! measured by `cargo run --release --example shared_read`.
//!
//! ```text
//! cargo bench --bench shared              # about 1 minute on 2 cores
//! cargo bench --bench shared -- --quick   # one quick pass
//! ```
//!
//! Sample sizes and times are defaults on each `criterion_group!`'s `config`, so the command
//! line's `--sample-size`, `--measurement-time` and `--quick` override them.
//!
//! Memory state: iterations run back to back, so each fills memory freed a moment ago (warm).

#![allow(missing_docs)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use remapvec::SharedVec;
use std::hint::black_box;
use std::sync::RwLock;
use std::time::Duration;

const N: usize = 1 << 24; // 128 MiB of u64

fn bench_append(c: &mut Criterion) {
    let mut g = c.benchmark_group("append_16M_u64");
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("SharedVec push", |b| {
        b.iter(|| {
            let v = SharedVec::new();
            for i in 0..N as u64 {
                v.push(i);
            }
            black_box(v.len());
        })
    });
    g.bench_function("RwLock<Vec> push", |b| {
        b.iter(|| {
            let v = RwLock::new(Vec::new());
            for i in 0..N as u64 {
                v.write().unwrap().push(i);
            }
            black_box(v.read().unwrap().len());
        })
    });
    let batch: Vec<u64> = (0..1 << 16).collect();
    g.bench_function("SharedVec extend_from_slice 64K", |b| {
        b.iter(|| {
            let v = SharedVec::new();
            for _ in 0..N >> 16 {
                v.extend_from_slice(&batch);
            }
            black_box(v.len());
        })
    });
    g.bench_function("RwLock<Vec> extend_from_slice 64K", |b| {
        b.iter(|| {
            let v = RwLock::new(Vec::new());
            for _ in 0..N >> 16 {
                v.write().unwrap().extend_from_slice(&batch);
            }
            black_box(v.read().unwrap().len());
        })
    });
    g.finish();
}

fn bench_read(c: &mut Criterion) {
    let mut g = c.benchmark_group("take_read_view");
    let v = SharedVec::new();
    v.extend_from_slice(&[1u64; 4096]);
    let l = RwLock::new(vec![1u64; 4096]);
    g.bench_function("SharedVec read()", |b| {
        b.iter(|| black_box(v.read().last().copied()))
    });
    g.bench_function("RwLock<Vec> read()", |b| {
        b.iter(|| black_box(l.read().unwrap().last().copied()))
    });
    g.finish();
}

criterion_group! {
    name = append;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = bench_append
}
criterion_group!(read, bench_read);
criterion_main!(append, read);
