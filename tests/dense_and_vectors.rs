//! A program that uses both `RemapAlloc` (the default, `HugePages::Dense`) as its global
//! allocator and default `RemapVec`s of the same size, in turns: every vector reuses a kept
//! mapping (review: the shared mapping was made huge after 32 turns, and the vector, which
//! takes no huge region, faulted in a fresh one every time).
#![cfg(all(target_os = "linux", not(feature = "force-fallback")))]
use remapvec::{RemapAlloc, RemapVec};

#[global_allocator]
static A: RemapAlloc = RemapAlloc::new();

fn minflt() -> i64 {
    // SAFETY: `rusage` is plain data, valid when zeroed.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes one `rusage` into `u`.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    u.ru_minflt
}

#[test]
fn vec_and_remapvec_alternate() {
    const N: usize = 8 << 20;
    let rounds = 200;
    let f0 = minflt();
    let mut vec_reused = 0;
    let t = std::time::Instant::now();
    for _ in 0..rounds {
        let v = vec![7u8; N];
        std::hint::black_box(&v);
        drop(v);
        let mut r: RemapVec<u8> = RemapVec::with_capacity(N);
        r.resize(N, 7);
        std::hint::black_box(&r);
        vec_reused += r.stats().reused;
        drop(r);
    }
    let f = minflt() - f0;
    eprintln!(
        "rounds {rounds}: faults/round {:.1}, vector reuses {vec_reused}/{rounds}, made_huge {}, {:?}",
        f as f64 / rounds as f64,
        RemapAlloc::stats().made_huge,
        t.elapsed()
    );
    assert!(vec_reused >= rounds as u64 - 2, "vectors lost reuse");
}
