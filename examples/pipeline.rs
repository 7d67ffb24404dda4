//! A whole program under each global allocator: read a generated CSV into one `String`, parse it
//! into a `Vec<Row>`, sort, group into a `HashMap`, serialize groups and rows with serde_json,
//! drop everything, while two threads allocate, fill, check and free scratch buffers of
//! 256 KiB–8 MiB. Prints one line per allocator: CPU time (user + sys, median and range over the
//! runs), wall time, minor page faults and peak RSS of the measured part, and the CPU-time ratios
//! against System and against mimalloc; then the main thread's CPU time per phase.
//!
//! `cargo run --release --example pipeline -- [--mb 500 | --rows N] [--runs 1] [--only remap,system]`
//!
//! The CSV (rows `id,name,city,amount,timestamp`, ~500 MB by default) is generated
//! deterministically once into the temporary directory and reused while its size is right.
//! Each allocator runs in its own child process of this example (the global allocator is per
//! process): glibc (`system`), `mimalloc`, `jemalloc` (tikv-jemallocator), `remap`
//! (`RemapAlloc::new()`, around `System`) and `remap+mimalloc` (`RemapAlloc::wrapping(MiMalloc)`).
//! With `--runs N` the allocators take turns, N rounds. The children check that every allocator
//! produced the same output (a checksum of the JSON) and the scratch threads check every buffer's
//! content before freeing it. `--mb 20` finishes in seconds.

use serde::Serialize;
use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::hash::BuildHasherDefault;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

#[path = "common/switch.rs"]
mod switch;
use switch::{ENV, NAMES};

#[global_allocator]
static GLOBAL: switch::Switch = switch::Switch;

// ---------------------------------------------------------------------------------------------
// Measurement

/// Process CPU time (user + sys of every thread, seconds) and minor page faults so far.
fn usage() -> (f64, u64) {
    // SAFETY: an all-zero rusage is a valid value of this plain C struct.
    let mut ru: libc::rusage = unsafe { core::mem::zeroed() };
    // SAFETY: a valid pointer to a rusage struct, which getrusage fills.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    (secs(ru.ru_utime) + secs(ru.ru_stime), ru.ru_minflt as u64)
}

/// CPU time of the calling thread, seconds.
fn thread_cpu() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid pointer to a timespec, which clock_gettime fills.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// Resets the peak RSS (`VmHWM`) to the current RSS, so that the peak read later is the measured
/// part's. Returns false where the kernel does not allow it (the peak then covers the whole
/// child, whose start-up is small).
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Peak RSS in KiB: `VmHWM`, or `ru_maxrss` where /proc is not readable.
fn peak_rss_kib() -> u64 {
    if let Ok(s) = std::fs::read_to_string("/proc/self/status") {
        for line in s.lines() {
            if let Some(v) = line.strip_prefix("VmHWM:") {
                return v.trim().trim_end_matches("kB").trim().parse().unwrap_or(0);
            }
        }
    }
    // SAFETY: an all-zero rusage is a valid value of this plain C struct.
    let mut ru: libc::rusage = unsafe { core::mem::zeroed() };
    // SAFETY: a valid pointer to a rusage struct, which getrusage fills.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    ru.ru_maxrss as u64
}

// ---------------------------------------------------------------------------------------------
// Deterministic input

/// splitmix64: small, seeded, the same sequence everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

const SYLLABLES: [&str; 24] = [
    "ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "xe", "zu", "an", "el", "or", "is", "um",
    "bra", "che", "sto", "ril", "dan", "mar", "ten", "gol", "fe",
];

fn word(rng: &mut Rng, min: u64, max: u64, out: &mut String) {
    let start = out.len();
    for _ in 0..min + rng.below(max - min + 1) {
        out.push_str(SYLLABLES[rng.below(SYLLABLES.len() as u64) as usize]);
    }
    out[start..start + 1].make_ascii_uppercase();
}

/// Average length of a generated row, for `--mb` (measured on the generator).
const AVG_ROW: u64 = 50;
const CITIES: usize = 400;
const HEADER: &str = "id,name,city,amount,timestamp\n";

/// Calls `emit` with every line of the CSV, header first; the same lines for the same `rows`.
fn generate(rows: u64, mut emit: impl FnMut(&str)) {
    use std::fmt::Write as _;
    let mut rng = Rng(0x00c5_7d47_a11c);
    let cities: Vec<String> = (0..CITIES)
        .map(|_| {
            let mut c = String::new();
            word(&mut rng, 2, 4, &mut c);
            c
        })
        .collect();
    emit(HEADER);
    let mut line = String::with_capacity(128);
    let mut ts = 1_600_000_000u64;
    for id in 0..rows {
        line.clear();
        write!(line, "{id},").unwrap();
        word(&mut rng, 2, 3, &mut line);
        line.push(' ');
        word(&mut rng, 2, 4, &mut line);
        // A skewed city distribution: a few big groups, many small ones.
        let c = (rng.unit() * rng.unit() * CITIES as f64) as usize;
        let cents = rng.below(10_000_000);
        ts += rng.below(20);
        writeln!(
            line,
            ",{},{}.{:02},{ts}",
            cities[c],
            cents / 100,
            cents % 100
        )
        .unwrap();
        emit(&line);
    }
}

/// The CSV for `rows` rows in the temporary directory, written now unless a file of the right size
/// is already there (written to a temporary name first, so a partial file is never reused).
fn ensure_csv(rows: u64) -> (PathBuf, u64) {
    let path = std::env::temp_dir().join(format!("remapvec-pipeline-v1-{rows}.csv"));
    let mut size = 0u64;
    generate(rows, |l| size += l.len() as u64);
    if std::fs::metadata(&path).is_ok_and(|m| m.len() == size) {
        return (path, size);
    }
    let t = Instant::now();
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut w = BufWriter::with_capacity(1 << 20, File::create(&tmp).expect("create the CSV"));
    generate(rows, |l| w.write_all(l.as_bytes()).expect("write the CSV"));
    w.into_inner()
        .expect("flush the CSV")
        .sync_all()
        .expect("sync");
    std::fs::rename(&tmp, &path).expect("rename the CSV");
    eprintln!(
        "generated {} ({:.1} MB) in {:.1} s",
        path.display(),
        size as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );
    (path, size)
}

// ---------------------------------------------------------------------------------------------
// The workload

#[derive(Serialize)]
struct Row {
    id: u64,
    name: String,
    city: String,
    amount: f64,
    timestamp: u64,
}

#[derive(Serialize)]
struct Agg {
    count: u64,
    total: f64,
    min: f64,
    max: f64,
    first_ts: u64,
    last_ts: u64,
    /// Ids in sorted order: a vector per group that grows by pushes.
    ids: Vec<u64>,
}

/// A deterministic hasher, so that every allocator sees the same table layout and growth.
type Fixed = BuildHasherDefault<DefaultHasher>;

/// Allocates, fills (every byte), checks and frees `iters` buffers of 256 KiB–8 MiB
/// (log-uniform sizes from a seeded RNG), four alive at a time. Returns the thread's CPU time.
fn scratch(seed: u64, iters: usize) -> f64 {
    let mut rng = Rng(seed);
    let mut live: Vec<(u64, Vec<u64>)> = Vec::with_capacity(4);
    let check = |(tag, b): &(u64, Vec<u64>)| {
        let ok = b.iter().enumerate().all(|(k, &w)| w == tag ^ k as u64);
        assert!(ok, "a scratch buffer lost its content");
    };
    for i in 0..iters {
        let bytes = ((256u64 << 10) as f64 * 32f64.powf(rng.unit())) as usize;
        let tag = rng.next();
        let buf: Vec<u64> = (0..bytes / 8).map(|k| tag ^ k as u64).collect();
        if live.len() == 4 {
            check(&live[i % 4]);
            live[i % 4] = (tag, buf);
        } else {
            live.push((tag, buf));
        }
    }
    live.iter().for_each(check);
    drop(live);
    thread_cpu()
}

/// Wrapping sum of the bytes as little-endian words, plus the length: cheap and vectorized.
fn checksum(b: &[u8]) -> u64 {
    let mut chunks = b.chunks_exact(8);
    let mut s = (&mut chunks).fold(b.len() as u64, |s, c| {
        s.wrapping_add(u64::from_le_bytes(c.try_into().unwrap()))
    });
    for (i, &x) in chunks.remainder().iter().enumerate() {
        s = s.wrapping_add((x as u64) << (8 * i));
    }
    s
}

fn child(cfg: &Config) {
    let path = cfg.path();
    let hwm_reset = reset_peak_rss();
    let (c0, f0) = usage();
    let start = Instant::now();
    let mut phase = Vec::new();
    let mut lap = {
        let mut t = thread_cpu();
        move |phase: &mut Vec<f64>| {
            let now = thread_cpu();
            phase.push(now - t);
            t = now;
        }
    };

    let iters = cfg.scratch_iters();
    let workers: Vec<_> = (0..2)
        .map(|t| std::thread::spawn(move || scratch(0x5c7a_7c40 + t, iters)))
        .collect();

    // Read: one String grown line by line (the realloc-heavy way a reader without a size hint
    // fills a buffer).
    let mut text = String::new();
    let mut r = BufReader::with_capacity(64 << 10, File::open(&path).expect("open the CSV"));
    while r.read_line(&mut text).expect("read the CSV") != 0 {}
    drop(r);
    lap(&mut phase);

    // Parse into a Vec that grows by pushes.
    let mut rows = Vec::new();
    for line in text.lines().skip(1) {
        let mut f = line.split(',');
        let mut next = || f.next().expect("five fields");
        rows.push(Row {
            id: next().parse().expect("id"),
            name: next().to_owned(),
            city: next().to_owned(),
            amount: next().parse().expect("amount"),
            timestamp: next().parse().expect("timestamp"),
        });
    }
    drop(text);
    lap(&mut phase);

    // Sort (stable: a scratch buffer of half the rows) by city, then amount descending.
    rows.sort_by(|a, b| {
        a.city
            .cmp(&b.city)
            .then_with(|| b.amount.total_cmp(&a.amount))
    });
    lap(&mut phase);

    // Group by name's first word and by city.
    let mut groups: HashMap<String, Agg, Fixed> = HashMap::default();
    for r in &rows {
        let key = r.name.split(' ').next().unwrap_or("");
        for key in [key, r.city.as_str()] {
            let a = match groups.get_mut(key) {
                Some(a) => a,
                None => groups.entry(key.to_owned()).or_insert(Agg {
                    count: 0,
                    total: 0.0,
                    min: f64::INFINITY,
                    max: f64::NEG_INFINITY,
                    first_ts: u64::MAX,
                    last_ts: 0,
                    ids: Vec::new(),
                }),
            };
            a.count += 1;
            a.total += r.amount;
            a.min = a.min.min(r.amount);
            a.max = a.max.max(r.amount);
            a.first_ts = a.first_ts.min(r.timestamp);
            a.last_ts = a.last_ts.max(r.timestamp);
            a.ids.push(r.id);
        }
    }
    lap(&mut phase);

    // Serialize the groups (in key order) and the rows.
    let sorted: BTreeMap<&str, &Agg> = groups.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let groups_json = serde_json::to_string(&sorted).expect("groups to JSON");
    drop(sorted);
    let rows_json = serde_json::to_vec(&rows).expect("rows to JSON");
    let sum = checksum(groups_json.as_bytes())
        .wrapping_mul(31)
        .wrapping_add(checksum(&rows_json));
    let (n_rows, n_groups, json_bytes) = (
        rows.len(),
        groups.len(),
        groups_json.len() + rows_json.len(),
    );
    lap(&mut phase);

    drop(groups);
    drop(rows);
    drop(groups_json);
    drop(rows_json);
    lap(&mut phase);

    let scratch_cpu: f64 = workers
        .into_iter()
        .map(|w| w.join().expect("a scratch thread"))
        .sum();
    let wall = start.elapsed().as_secs_f64();
    let (c1, f1) = usage();
    let hwm = peak_rss_kib();
    let p: Vec<String> = phase.iter().map(|x| format!("{x:.4}")).collect();
    println!(
        "{:.4} {wall:.4} {} {hwm} {} {scratch_cpu:.4} {sum:016x} {n_rows} {n_groups} {json_bytes} {}",
        c1 - c0,
        f1 - f0,
        p.join(" "),
        hwm_reset as u8,
    );
}

// ---------------------------------------------------------------------------------------------
// The parent: options, children, table

struct Config {
    rows: u64,
    runs: usize,
    only: Vec<String>,
}

const DEFAULT_MB: u64 = 500;
const PHASES: [&str; 6] = ["read", "parse", "sort", "group", "json", "drop"];

impl Config {
    fn from_args(args: &[String]) -> Config {
        let arg = |name: &str| {
            args.iter()
                .position(|a| a == name)
                .and_then(|i| args.get(i + 1).cloned())
        };
        let num = |name: &str| {
            arg(name).map(|v| {
                v.parse::<u64>()
                    .unwrap_or_else(|_| panic!("{name} takes a number, not {v:?}"))
            })
        };
        let rows = num("--rows")
            .unwrap_or_else(|| num("--mb").unwrap_or(DEFAULT_MB) * 1_000_000 / AVG_ROW)
            .max(1);
        let only: Vec<String> = match arg("--only") {
            Some(o) => o.split(',').map(str::to_owned).collect(),
            None => NAMES.iter().map(|n| n.to_string()).collect(),
        };
        for n in &only {
            assert!(
                NAMES.contains(&n.as_str()),
                "--only: {n:?} is none of {NAMES:?}"
            );
        }
        Config {
            rows,
            runs: num("--runs").unwrap_or(1).max(1) as usize,
            only,
        }
    }
    fn path(&self) -> PathBuf {
        std::env::temp_dir().join(format!("remapvec-pipeline-v1-{}.csv", self.rows))
    }
    /// Scratch buffers per thread: 2000 at the default size, in proportion below it.
    fn scratch_iters(&self) -> usize {
        let full = DEFAULT_MB * 1_000_000 / AVG_ROW;
        ((2000 * self.rows / full) as usize).max(20)
    }
}

/// One child's report.
struct Run {
    cpu: f64,
    wall: f64,
    minflt: u64,
    hwm_kib: u64,
    phases: Vec<f64>,
    scratch: f64,
    sum: String,
    shape: String,
    /// Whether the peak RSS covers only the measured part (`VmHWM` was reset).
    hwm_reset: bool,
}

fn run_child(args: &[String], name: &str) -> Run {
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
    let line = String::from_utf8_lossy(&out.stdout);
    let f: Vec<&str> = line.split_whitespace().collect();
    let num = |i: usize| f[i].parse::<f64>().expect("a number from the child");
    Run {
        cpu: num(0),
        wall: num(1),
        minflt: num(2) as u64,
        hwm_kib: num(3) as u64,
        phases: (4..4 + PHASES.len()).map(num).collect(),
        scratch: num(10),
        sum: f[11].to_owned(),
        shape: format!("{} rows, {} groups, {} JSON bytes", f[12], f[13], f[14]),
        hwm_reset: f[15] == "1",
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn ratio(x: f64, base: Option<f64>) -> String {
    base.map_or("-".into(), |b| format!("{:.3}", x / b))
}

fn report(cfg: &Config, csv: &Path, size: u64, results: &[(String, Vec<Run>)]) {
    let cpu_med = |name: &str| {
        results
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, r)| median(r.iter().map(|r| r.cpu).collect()))
    };
    let (sys, mi) = (cpu_med("system"), cpu_med("mimalloc"));
    println!(
        "pipeline: {} rows, {:.1} MB CSV ({}); 2 scratch threads x {} buffers of 256 KiB-8 MiB; {} run(s) per allocator, alternating",
        cfg.rows,
        size as f64 / 1e6,
        csv.display(),
        cfg.scratch_iters(),
        cfg.runs
    );
    println!(
        "{:<16} {:>8} {:>19} {:>8} {:>10} {:>9} {:>8} {:>9}",
        "allocator", "cpu s", "[min-max]", "wall s", "minflt", "peak MB", "/system", "/mimalloc"
    );
    for (name, runs) in results {
        let cpu = median(runs.iter().map(|r| r.cpu).collect());
        let lo = runs.iter().map(|r| r.cpu).fold(f64::INFINITY, f64::min);
        let hi = runs.iter().map(|r| r.cpu).fold(0.0, f64::max);
        println!(
            "{name:<16} {cpu:>8.2} {:>19} {:>8.2} {:>10.0} {:>9.0} {:>8} {:>9}",
            format!("[{lo:.2}-{hi:.2}]"),
            median(runs.iter().map(|r| r.wall).collect()),
            median(runs.iter().map(|r| r.minflt as f64).collect()),
            median(runs.iter().map(|r| r.hwm_kib as f64).collect()) * 1024.0 / 1e6,
            ratio(cpu, sys),
            ratio(cpu, mi),
        );
    }
    println!("\nCPU s per phase, median (main thread; scratch = both scratch threads):");
    print!("{:<16}", "allocator");
    for p in PHASES.iter().chain(&["scratch"]) {
        print!(" {p:>8}");
    }
    println!();
    for (name, runs) in results {
        print!("{name:<16}");
        for i in 0..PHASES.len() {
            print!(
                " {:>8.3}",
                median(runs.iter().map(|r| r.phases[i]).collect())
            );
        }
        println!(" {:>8.3}", median(runs.iter().map(|r| r.scratch).collect()));
    }
    let first = &results[0].1[0];
    let same = results
        .iter()
        .flat_map(|(_, r)| r)
        .all(|r| r.sum == first.sum && r.shape == first.shape);
    println!(
        "\noutput ({}): {}",
        first.shape,
        if same {
            "identical under every allocator"
        } else {
            "DIFFERS between runs"
        }
    );
    if results.iter().flat_map(|(_, r)| r).any(|r| !r.hwm_reset) {
        println!("(peak RSS could not be reset: it covers each child's start-up too)");
    }
    assert!(same, "the pipeline's output depends on the allocator");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let cfg = Config::from_args(&args);
    if std::env::var_os(ENV).is_some() {
        child(&cfg);
        return;
    }
    let (csv, size) = ensure_csv(cfg.rows);
    let mut results: Vec<(String, Vec<Run>)> =
        cfg.only.iter().map(|n| (n.clone(), Vec::new())).collect();
    for round in 0..cfg.runs {
        for (name, runs) in &mut results {
            let r = run_child(&args, name);
            eprintln!(
                "run {}/{} {name:<16} cpu {:.2} s  wall {:.2} s",
                round + 1,
                cfg.runs,
                r.cpu,
                r.wall
            );
            runs.push(r);
        }
    }
    report(&cfg, &csv, size, &results);
}
