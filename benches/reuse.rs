//! Memory that is reused, not faulted in again: a 16 MiB `push`-then-drop loop of `u32`, `Vec`
//! (glibc keeps the freed block in its heap) against `RemapVec` (the recycler keeps the
//! mapping; a growing vector takes over the kept rest of its own mapping without a system
//! call). Warm state: every iteration reuses what the previous one freed.
//! `cargo bench --bench reuse`.

use criterion::{Criterion, criterion_group, criterion_main};
use remapvec::RemapVec;
use std::hint::black_box;

const N: u32 = 4 << 20; // 16 MiB of u32

fn push_then_drop(c: &mut Criterion) {
    let mut g = c.benchmark_group("push_then_drop_16MiB");
    g.bench_function("Vec", |b| {
        b.iter(|| {
            let mut v = Vec::new();
            for i in 0..black_box(N) {
                v.push(i);
            }
            black_box(v)
        })
    });
    g.bench_function("RemapVec", |b| {
        b.iter(|| {
            let mut v = RemapVec::new();
            for i in 0..black_box(N) {
                v.push(i);
            }
            black_box(v)
        })
    });
    g.finish();
}

criterion_group!(benches, push_then_drop);
criterion_main!(benches);
