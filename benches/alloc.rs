//! `RemapAlloc` against `System`: the overhead on small allocations (many 16–1024 byte
//! alloc/free pairs), large-block churn (allocate, write every byte, free, at 256 KiB to
//! 64 MiB, and at 64 mixed sizes of 128 KiB to 8 MiB with four alive at a time, also against
//! mimalloc and `RemapAlloc::wrapping(MiMalloc)`), the allocator's own cost per large block
//! (256 KiB allocated and freed, one byte written), and the time of one
//! 1 GiB -> 2 GiB `realloc` of a block whose pages are all touched.
//!
//! ```text
//! cargo bench --bench alloc                                  # about 2 minutes on 2 cores
//! cargo bench --bench alloc -- --quick                       # one quick pass
//! cargo bench --bench alloc -- churn --measurement-time 2    # command-line settings win
//! ```
//!
//! The sample sizes and times below are defaults set on each `criterion_group!`'s `config`, so
//! `--sample-size`, `--measurement-time`, `--warm-up-time` and `--quick` override them.
//!
//! Memory state: the realloc bench touches its 1 GiB block in the untimed setup of every
//! iteration, so the timed `realloc` always sees warm, resident pages.

// criterion_group!/criterion_main! generate undocumented functions.
#![allow(missing_docs)]

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use remapvec::{HugePages, RemapAlloc};
use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::time::{Duration, Instant};

fn small_pairs<A: GlobalAlloc>(a: &A) {
    // 16..=1024 bytes in a fixed pattern, 64 live at a time.
    let mut live: [(*mut u8, usize); 64] = [(std::ptr::null_mut(), 0); 64];
    for i in 0..1024usize {
        let size = 16 + (i.wrapping_mul(2_654_435_761) % 1009);
        let l = Layout::from_size_align(size, 8).unwrap();
        let slot = i % 64;
        // SAFETY: non-zero sizes; every block is freed with the layout it was made with.
        unsafe {
            let (p, s) = live[slot];
            if !p.is_null() {
                a.dealloc(p, Layout::from_size_align(s, 8).unwrap());
            }
            let q = a.alloc(l);
            assert!(!q.is_null());
            q.write(i as u8);
            live[slot] = (black_box(q), size);
        }
    }
    for (p, s) in live {
        if !p.is_null() {
            // SAFETY: a live block of this size.
            unsafe { a.dealloc(p, Layout::from_size_align(s, 8).unwrap()) };
        }
    }
}

fn bench_small(c: &mut Criterion) {
    let mut g = c.benchmark_group("small_alloc_free_1024_pairs");
    g.throughput(Throughput::Elements(1024));
    g.bench_function("System", |b| b.iter(|| small_pairs(&System)));
    let remap = RemapAlloc::new();
    g.bench_function("RemapAlloc<System>", |b| b.iter(|| small_pairs(&remap)));
    g.finish();
}

/// One churn step: allocate `size` bytes, write every byte, free.
fn churn_once<A: GlobalAlloc>(a: &A, size: usize, fill: u8) {
    let l = Layout::from_size_align(size, 8).unwrap();
    // SAFETY: non-zero size; the block is written within its size and freed with its layout.
    unsafe {
        let p = a.alloc(l);
        assert!(!p.is_null());
        p.write_bytes(fill, size);
        black_box(p);
        a.dealloc(p, l);
    }
}

fn churn_sizes(c: &mut Criterion, sizes: &[usize]) {
    let remap = RemapAlloc::new();
    let remap_mi = RemapAlloc::wrapping(mimalloc::MiMalloc);
    let remap_mi_4k = RemapAlloc::wrapping(mimalloc::MiMalloc).huge_page_policy(HugePages::Never);
    for &size in sizes {
        let mut g = c.benchmark_group(format!("churn_alloc_write_free_{}K", size >> 10));
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_function("System", |b| b.iter(|| churn_once(&System, size, 1)));
        g.bench_function("mimalloc", |b| {
            b.iter(|| churn_once(&mimalloc::MiMalloc, size, 2))
        });
        g.bench_function("RemapAlloc<System>", |b| {
            b.iter(|| churn_once(&remap, size, 3))
        });
        g.bench_function("RemapAlloc<MiMalloc>", |b| {
            b.iter(|| churn_once(&remap_mi, size, 4))
        });
        if size >= 2 << 20 {
            // What the default's huge pages for blocks written whole are worth.
            g.bench_function("RemapAlloc<MiMalloc> HugePages::Never", |b| {
                b.iter(|| churn_once(&remap_mi_4k, size, 5))
            });
        }
        g.finish();
    }
}

/// The allocator's own cost on the large-block path: allocate 256 KiB, write one byte, free
/// (the block's pages stay resident in every allocator, so no page is faulted in).
fn large_pair<A: GlobalAlloc>(a: &A, fill: u8) {
    let l = Layout::from_size_align(256 << 10, 8).unwrap();
    // SAFETY: non-zero size; one byte written within the block, freed with its layout.
    unsafe {
        let p = a.alloc(l);
        assert!(!p.is_null());
        p.write(fill);
        black_box(p);
        a.dealloc(p, l);
    }
}

fn bench_churn_small(c: &mut Criterion) {
    churn_sizes(c, &[256 << 10, 1 << 20]);
    let remap = RemapAlloc::new();
    let remap_mi = RemapAlloc::wrapping(mimalloc::MiMalloc);
    let mut g = c.benchmark_group("alloc_free_256K_no_write");
    g.bench_function("System", |b| b.iter(|| large_pair(&System, 1)));
    g.bench_function("mimalloc", |b| {
        b.iter(|| large_pair(&mimalloc::MiMalloc, 2))
    });
    g.bench_function("RemapAlloc<System>", |b| b.iter(|| large_pair(&remap, 3)));
    g.bench_function("RemapAlloc<MiMalloc>", |b| {
        b.iter(|| large_pair(&remap_mi, 4))
    });
    g.finish();
}

fn bench_churn_large(c: &mut Criterion) {
    churn_sizes(c, &[8 << 20, 64 << 20]);
}

/// 64 sizes of 128 KiB to 8 MiB, log-uniform, the same for every allocator.
fn mixed_sizes() -> Vec<usize> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..64)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            let u = (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64;
            ((128 << 10) as f64 * 64f64.powf(u)) as usize
        })
        .collect()
}

/// Mixed-size churn: each of `sizes` allocated, written whole, and freed four allocations
/// later (four alive at a time), as a program's scratch buffers are.
fn churn_mixed<A: GlobalAlloc>(a: &A, sizes: &[usize], fill: u8) {
    let mut live = [(std::ptr::null_mut::<u8>(), 0usize); 4];
    let free = |(p, s): (*mut u8, usize)| {
        if !p.is_null() {
            // SAFETY: a live block of `s` bytes, allocated with this layout.
            unsafe { a.dealloc(p, Layout::from_size_align(s, 8).unwrap()) };
        }
    };
    for (i, &size) in sizes.iter().enumerate() {
        free(live[i % 4]);
        // SAFETY: non-zero size; the block is written within its size.
        let p = unsafe { a.alloc(Layout::from_size_align(size, 8).unwrap()) };
        assert!(!p.is_null());
        // SAFETY: `size` bytes of a live block.
        unsafe { p.write_bytes(fill, size) };
        live[i % 4] = (black_box(p), size);
    }
    live.into_iter().for_each(free);
}

fn bench_churn_mixed(c: &mut Criterion) {
    let sizes = mixed_sizes();
    let remap = RemapAlloc::new();
    let remap_mi = RemapAlloc::wrapping(mimalloc::MiMalloc);
    let mut g = c.benchmark_group("churn_mixed_128K_8M_x64");
    g.throughput(Throughput::Bytes(sizes.iter().sum::<usize>() as u64));
    g.bench_function("System", |b| b.iter(|| churn_mixed(&System, &sizes, 1)));
    g.bench_function("mimalloc", |b| {
        b.iter(|| churn_mixed(&mimalloc::MiMalloc, &sizes, 2))
    });
    g.bench_function("RemapAlloc<System>", |b| {
        b.iter(|| churn_mixed(&remap, &sizes, 3))
    });
    g.bench_function("RemapAlloc<MiMalloc>", |b| {
        b.iter(|| churn_mixed(&remap_mi, &sizes, 4))
    });
    g.finish();
}

/// Times only the realloc: setup (allocate, touch every page) and free are outside the clock.
fn realloc_1g_to_2g<A: GlobalAlloc>(a: &A, iters: u64) -> Duration {
    let mut total = Duration::ZERO;
    let old = Layout::from_size_align(1 << 30, 8).unwrap();
    for _ in 0..iters {
        // SAFETY: non-zero sizes; the block is freed with its final layout.
        unsafe {
            let p = a.alloc(old);
            assert!(!p.is_null());
            p.write_bytes(1, 1 << 30);
            let t = Instant::now();
            let q = a.realloc(p, old, 2 << 30);
            total += t.elapsed();
            assert!(!q.is_null());
            assert_eq!(q.add((1 << 30) - 1).read(), 1);
            a.dealloc(q, Layout::from_size_align(2 << 30, 8).unwrap());
        }
    }
    total
}

fn bench_realloc(c: &mut Criterion) {
    let mut g = c.benchmark_group("realloc_1GiB_to_2GiB");
    g.bench_with_input(BenchmarkId::new("System", "warm"), &(), |b, _| {
        b.iter_custom(|iters| realloc_1g_to_2g(&System, iters))
    });
    let remap = RemapAlloc::new();
    g.bench_with_input(
        BenchmarkId::new("RemapAlloc<System>", "warm"),
        &(),
        |b, _| b.iter_custom(|iters| realloc_1g_to_2g(&remap, iters)),
    );
    g.finish();
}

criterion_group!(small, bench_small, bench_churn_small);
criterion_group! {
    name = large;
    config = Criterion::default().sample_size(20);
    targets = bench_churn_large, bench_churn_mixed
}
criterion_group! {
    name = realloc;
    // Each iteration touches 1 GiB in its untimed setup: few samples, a long measurement.
    config = Criterion::default().sample_size(10).measurement_time(Duration::from_secs(20));
    targets = bench_realloc
}
criterion_main!(small, large, realloc);
