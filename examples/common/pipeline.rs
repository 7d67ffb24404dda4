//! The whole-program workload shared by `examples/pipeline.rs` (one process per global allocator,
//! a 500 MB CSV) and the `pipeline` rows of `examples/realloc_strategies.rs` (smaller CSVs, and
//! also with the large buffers in `RemapVec` or in `RemapAlloc`): read a generated CSV into one
//! buffer, parse it into a vector of rows, sort, group into a `HashMap`, serialize groups and
//! rows with serde_json, drop everything, while two threads allocate, fill, check and free scratch
//! buffers of 256 KiB–8 MiB.
//!
//! The large buffers (the CSV text, the rows, the JSON) are of a type the caller chooses ([`Buf`]);
//! everything else (names, the map, its id vectors) is std and uses the global allocator.

// The table uses less of the output than `--example pipeline` does.
#![allow(dead_code)]

use super::buf::{Buf, Writer};
use super::measure::thread_cpu;
use serde::Serialize;
use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::hash::BuildHasherDefault;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// splitmix64: small, seeded, the same sequence everywhere.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
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
    pub fn unit(&mut self) -> f64 {
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

/// Average length of a generated row, to turn MB into rows (measured on the generator).
pub const AVG_ROW: u64 = 50;
const CITIES: usize = 400;
const HEADER: &str = "id,name,city,amount,timestamp\n";
/// Names of the main thread's phases, in the order [`Output::phases`] has them.
pub const PHASES: [&str; 6] = ["read", "parse", "sort", "group", "json", "drop"];

/// Rows for a CSV of about `mb` MB.
pub fn rows_for_mb(mb: f64) -> u64 {
    ((mb * 1e6) as u64 / AVG_ROW).max(1)
}

/// Scratch buffers per thread for `rows` rows: 2000 at 500 MB, in proportion below, at least 4.
pub fn scratch_iters(rows: u64) -> usize {
    ((2000 * rows / rows_for_mb(500.0)) as usize).max(4)
}

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

/// Where the CSV of `rows` rows lives (the temporary directory).
pub fn csv_path(rows: u64) -> PathBuf {
    std::env::temp_dir().join(format!("remapvec-pipeline-v1-{rows}.csv"))
}

/// The CSV for `rows` rows, written now unless a file of the right size is already there
/// (written to a temporary name first, so a partial file is never reused). Returns its path and
/// size in bytes.
pub fn ensure_csv(rows: u64) -> (PathBuf, u64) {
    let path = csv_path(rows);
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

/// One parsed CSV line.
#[derive(Serialize)]
pub struct Row {
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
/// (log-uniform sizes from a seeded RNG), four alive at a time. Returns the thread's CPU time
/// and whether every buffer kept its content.
fn scratch(seed: u64, iters: usize) -> (f64, bool) {
    let mut rng = Rng(seed);
    let mut live: Vec<(u64, Vec<u64>)> = Vec::with_capacity(4);
    let mut ok = true;
    let check =
        |(tag, b): &(u64, Vec<u64>)| b.iter().enumerate().all(|(k, &w)| w == tag ^ k as u64);
    for i in 0..iters {
        let bytes = ((256u64 << 10) as f64 * 32f64.powf(rng.unit())) as usize;
        let tag = rng.next();
        let buf: Vec<u64> = (0..bytes / 8).map(|k| tag ^ k as u64).collect();
        if live.len() == 4 {
            ok &= check(&live[i % 4]);
            live[i % 4] = (tag, buf);
        } else {
            live.push((tag, buf));
        }
    }
    ok &= live.iter().all(check);
    drop(live);
    (thread_cpu(), ok)
}

/// Wrapping sum of the bytes as little-endian words, plus the length: cheap and vectorized.
pub fn checksum(b: &[u8]) -> u64 {
    let mut chunks = b.chunks_exact(8);
    let mut s = (&mut chunks).fold(b.len() as u64, |s, c| {
        s.wrapping_add(u64::from_le_bytes(c.try_into().unwrap()))
    });
    for (i, &x) in chunks.remainder().iter().enumerate() {
        s = s.wrapping_add((x as u64) << (8 * i));
    }
    s
}

/// What one run of the pipeline produced.
pub struct Output {
    /// CPU seconds of the main thread per phase ([`PHASES`]).
    pub phases: Vec<f64>,
    /// CPU seconds of both scratch threads.
    pub scratch_cpu: f64,
    /// Checksum of the JSON output: the same for the same CSV, whatever the allocator.
    pub sum: u64,
    /// Rows, groups and JSON bytes.
    pub shape: (usize, usize, usize),
    /// Whether every scratch buffer kept its content.
    pub scratch_ok: bool,
}

/// Runs the pipeline over the CSV at `path` with `iters` scratch buffers per thread; `bytes` and
/// `rows` make the large buffers.
pub fn run<B: Buf<u8>, R: Buf<Row>>(
    path: &Path,
    iters: usize,
    bytes: impl Fn() -> B,
    rows: impl FnOnce() -> R,
) -> Output {
    let mut phase = Vec::new();
    let mut lap = {
        let mut t = thread_cpu();
        move |phase: &mut Vec<f64>| {
            let now = thread_cpu();
            phase.push(now - t);
            t = now;
        }
    };

    let workers: Vec<_> = (0..2)
        .map(|t| std::thread::spawn(move || scratch(0x5c7a_7c40 + t, iters)))
        .collect();

    // Read: one buffer grown chunk by chunk (the realloc-heavy way a reader without a size hint
    // fills a buffer).
    let mut text = bytes();
    let mut r = BufReader::with_capacity(64 << 10, File::open(path).expect("open the CSV"));
    loop {
        let chunk = r.fill_buf().expect("read the CSV");
        if chunk.is_empty() {
            break;
        }
        text.extend_from_slice(chunk);
        let n = chunk.len();
        r.consume(n);
    }
    drop(r);
    lap(&mut phase);

    // Parse into a vector that grows by pushes.
    let mut table = rows();
    for line in std::str::from_utf8(text.as_slice())
        .expect("the CSV is UTF-8")
        .lines()
        .skip(1)
    {
        let mut f = line.split(',');
        let mut next = || f.next().expect("five fields");
        table.push(Row {
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
    table.as_mut_slice().sort_by(|a, b| {
        a.city
            .cmp(&b.city)
            .then_with(|| b.amount.total_cmp(&a.amount))
    });
    lap(&mut phase);

    // Group by name's first word and by city.
    let mut groups: HashMap<String, Agg, Fixed> = HashMap::default();
    for r in table.as_slice() {
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
    let mut groups_json = bytes();
    serde_json::to_writer(Writer(&mut groups_json), &sorted).expect("groups to JSON");
    drop(sorted);
    let mut rows_json = bytes();
    serde_json::to_writer(Writer(&mut rows_json), table.as_slice()).expect("rows to JSON");
    let sum = checksum(groups_json.as_slice())
        .wrapping_mul(31)
        .wrapping_add(checksum(rows_json.as_slice()));
    let shape = (
        table.as_slice().len(),
        groups.len(),
        groups_json.as_slice().len() + rows_json.as_slice().len(),
    );
    lap(&mut phase);

    drop(groups);
    drop(table);
    drop(groups_json);
    drop(rows_json);
    lap(&mut phase);

    let (mut scratch_cpu, mut scratch_ok) = (0.0, true);
    for w in workers {
        let (cpu, ok) = w.join().expect("a scratch thread");
        scratch_cpu += cpu;
        scratch_ok &= ok;
    }
    Output {
        phases: phase,
        scratch_cpu,
        sum,
        shape,
        scratch_ok,
    }
}
