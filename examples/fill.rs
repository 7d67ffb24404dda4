//! Bulk fills into fresh memory, `Vec<u8>` against `RemapVec<u8>`: `resize(n, 1)` from empty,
//! `extend_from_slice` of an n-byte slice, `extend` from an exact-size iterator of n bytes, and
//! `extend_from_within` doubling an n/2-byte vector, and `extend_from_slice` of the n bytes in
//! pieces of `--piece` KiB (default 64; the vector grows as it goes; a list such as `8,16,64`
//! runs each). Each run is a fresh process (nothing freed
//! before in it, so every page of the fill is faulted in for the first time), `Vec` and
//! `RemapVec` alternating, `--reps` runs each: the median and [min–max] time, the ratio
//! `Vec` / `RemapVec` run by run (above 1: `RemapVec` is faster), and the peak resident memory the
//! fill added (`VmHWM` after it, less the resident memory before it; the source slice is made
//! before). `refill_pieces` pushes the n bytes, clears the vector and times the pieces again:
//! memory already written, where a fill has nothing to fault in.
//!
//! ```text
//! cargo run --release --example fill                     # 1 GiB, 5 runs each: about 1 minute
//! cargo run --release --example fill -- --mib 256 --reps 9 --only resize,extend_from_slice
//! cargo run --release --example fill -- --only extend_pieces --piece 8,16,32,64
//! ```

use remapvec::RemapVec;
use std::process::Command;
use std::time::Instant;

#[path = "common/measure.rs"]
#[allow(dead_code)]
mod measure;

const OPS: [&str; 6] = [
    "resize",
    "extend_from_slice",
    "extend_exact",
    "extend_from_within",
    "extend_pieces",
    "refill_pieces",
];

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    let i = args.iter().position(|a| a == name)?;
    args.get(i + 1).cloned()
}

/// The fill `op` on a vector type: both implement it the same way.
trait Fill: Sized {
    fn new() -> Self;
    fn resize(&mut self, n: usize, x: u8);
    fn extend_from_slice(&mut self, s: &[u8]);
    fn extend_iter(&mut self, it: impl Iterator<Item = u8>);
    fn extend_from_within(&mut self);
    fn push(&mut self, x: u8);
    fn clear(&mut self);
    fn bytes(&self) -> &[u8];
}

/// `Fill` for a vector type whose methods have `Vec`'s names and signatures.
macro_rules! impl_fill {
    ($v:ident) => {
        impl Fill for $v<u8> {
            fn new() -> Self {
                $v::new()
            }
            fn resize(&mut self, n: usize, x: u8) {
                $v::resize(self, n, x)
            }
            fn extend_from_slice(&mut self, s: &[u8]) {
                $v::extend_from_slice(self, s)
            }
            fn extend_iter(&mut self, it: impl Iterator<Item = u8>) {
                self.extend(it)
            }
            fn extend_from_within(&mut self) {
                $v::extend_from_within(self, ..)
            }
            fn push(&mut self, x: u8) {
                $v::push(self, x)
            }
            fn clear(&mut self) {
                $v::clear(self)
            }
            fn bytes(&self) -> &[u8] {
                self
            }
        }
    };
}

impl_fill!(Vec);
impl_fill!(RemapVec);

/// Runs `op` on `V` with `n` bytes; returns (ms, peak KiB added), after checking the contents.
fn run<V: Fill>(op: &str, n: usize, piece: usize) -> (f64, u64) {
    let src: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
    let mut v = V::new();
    if op == "extend_from_within" {
        v.extend_from_slice(&src[..n / 2]);
    }
    if op == "refill_pieces" {
        // Memory already written (by pushes), emptied, filled again: nothing is fresh.
        src.iter().for_each(|&x| v.push(x));
        v.clear();
    }
    let have_peak = measure::reset_peak_rss();
    let before = measure::rss_kib();
    let t = Instant::now();
    match op {
        "resize" => v.resize(n, 1),
        "extend_from_slice" => v.extend_from_slice(&src),
        "extend_exact" => v.extend_iter(src.iter().copied()),
        "extend_from_within" => v.extend_from_within(),
        "extend_pieces" | "refill_pieces" => src.chunks(piece).for_each(|c| v.extend_from_slice(c)),
        _ => panic!("unknown fill {op}"),
    }
    let ms = t.elapsed().as_secs_f64() * 1e3;
    let peak = if have_peak {
        measure::peak_rss_kib().saturating_sub(before)
    } else {
        0
    };
    let b = std::hint::black_box(v.bytes());
    let ok = match op {
        "resize" => b.len() == n && b.iter().all(|&x| x == 1),
        "extend_from_within" => b.len() == n / 2 * 2 && b[..n / 2] == b[n / 2..],
        _ => b == &src[..],
    };
    assert!(ok, "{op}: wrong contents");
    (ms, peak)
}

/// Median, min, max.
fn stats(v: &[f64]) -> (f64, f64, f64) {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    (s[s.len() / 2], s[0], s[s.len() - 1])
}

fn child(op: &str, which: &str, n: usize, piece: usize) -> (f64, u64) {
    let exe = std::env::current_exe().expect("own path");
    let out = Command::new(exe)
        .args(["--child", op, which, "--bytes", &n.to_string()])
        .args(["--piece", &piece.to_string()])
        .output()
        .expect("child process");
    assert!(
        out.status.success(),
        "child failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = String::from_utf8_lossy(&out.stdout);
    let mut it = s.split_whitespace();
    let ms = it.next().and_then(|x| x.parse().ok()).expect("ms");
    let peak = it.next().and_then(|x| x.parse().ok()).expect("peak");
    (ms, peak)
}

fn main() {
    if let Some(op) = arg("--child") {
        let args: Vec<String> = std::env::args().collect();
        let which = &args[args.iter().position(|a| a == "--child").unwrap() + 2];
        let n: usize = arg("--bytes")
            .and_then(|b| b.parse().ok())
            .expect("--bytes");
        let piece: usize = arg("--piece")
            .and_then(|b| b.parse().ok())
            .unwrap_or(64 << 10);
        let (ms, peak) = match which.as_str() {
            "vec" => run::<Vec<u8>>(&op, n, piece),
            _ => run::<RemapVec<u8>>(&op, n, piece),
        };
        println!("{ms} {peak}");
        return;
    }
    let mib: usize = arg("--mib").and_then(|m| m.parse().ok()).unwrap_or(1024);
    let reps: usize = arg("--reps")
        .and_then(|r| r.parse().ok())
        .unwrap_or(5)
        .max(1);
    let only = arg("--only");
    let ops: Vec<&str> = OPS
        .iter()
        .copied()
        .filter(|o| only.as_ref().is_none_or(|s| s.split(',').any(|x| x == *o)))
        .collect();
    let pieces: Vec<usize> = arg("--piece")
        .unwrap_or_else(|| "64".into())
        .split(',')
        .map(|k| k.parse::<usize>().expect("--piece: KiB") << 10)
        .collect();
    let n = mib << 20;
    println!(
        "fill of {mib} MiB into fresh memory, {reps} fresh processes each, Vec and RemapVec \
         alternating; ms median [min-max]; peak RSS added, MiB median"
    );
    let runs = ops.iter().flat_map(|&op| {
        let sizes = if op.ends_with("_pieces") {
            pieces.clone()
        } else {
            vec![0]
        };
        sizes.into_iter().map(move |p| (op, p))
    });
    for (op, piece) in runs {
        let (mut tv, mut tr, mut pv, mut pr) = (vec![], vec![], vec![], vec![]);
        for _ in 0..reps {
            let (t, p) = child(op, "vec", n, piece);
            tv.push(t);
            pv.push(p as f64 / 1024.0);
            let (t, p) = child(op, "remap", n, piece);
            tr.push(t);
            pr.push(p as f64 / 1024.0);
        }
        let ratio: Vec<f64> = tv.iter().zip(&tr).map(|(v, r)| v / r).collect();
        let (v, vlo, vhi) = stats(&tv);
        let (r, rlo, rhi) = stats(&tr);
        let (q, qlo, qhi) = stats(&ratio);
        let name = if piece > 0 {
            format!("{op}/{}K", piece >> 10)
        } else {
            op.to_string()
        };
        println!(
            "{name:<19} Vec {v:7.1} [{vlo:.1}-{vhi:.1}]  RemapVec {r:7.1} [{rlo:.1}-{rhi:.1}]  \
             Vec/RemapVec {q:.2}x [{qlo:.2}-{qhi:.2}]  peak Vec {:.0} RemapVec {:.0}",
            stats(&pv).0,
            stats(&pr).0
        );
    }
}
