//! Making a huge zero-filled buffer: `RemapVec::zeroed`, `remapvec![0; n]` and `vec![0; n]`
//! (glibc `calloc`), at 16 MiB and 1 GiB, created and dropped. None of them should touch a page;
//! what is measured is the mapping calls. `cargo bench --bench zeroed`.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use remapvec::{RemapVec, remapvec};
use std::hint::black_box;

fn zeroed(c: &mut Criterion) {
    let mut g = c.benchmark_group("zeroed");
    for (name, n) in [("16MiB", 16usize << 20), ("1GiB", 1 << 30)] {
        g.bench_with_input(BenchmarkId::new("vec![0; n]", name), &n, |b, &n| {
            b.iter(|| black_box(vec![0u8; black_box(n)]))
        });
        g.bench_with_input(BenchmarkId::new("RemapVec::zeroed", name), &n, |b, &n| {
            b.iter(|| black_box(RemapVec::<u8>::zeroed(black_box(n))))
        });
        g.bench_with_input(BenchmarkId::new("remapvec![0; n]", name), &n, |b, &n| {
            b.iter(|| black_box(remapvec![0u8; black_box(n)]))
        });
        g.bench_with_input(
            BenchmarkId::new("RemapVec resize(n, 0)", name),
            &n,
            |b, &n| {
                b.iter(|| {
                    let mut v = RemapVec::<u8>::new();
                    v.resize(black_box(n), 0);
                    black_box(v)
                })
            },
        );
    }
    g.finish();
}

criterion_group!(benches, zeroed);
criterion_main!(benches);
