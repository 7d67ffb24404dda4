//! SharedVec under load: reader threads scan and checksum while a writer grows the buffer to
//! a GiB; no reader sees a torn or unwritten element; old views are unmapped afterwards.

use remapvec::SharedVec;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Element `i`: never zero, and its two halves agree (a torn or unwritten element fails).
fn elem(i: u64) -> u64 {
    let lo = (i as u32).wrapping_mul(2_654_435_761) | 1;
    ((lo as u64) << 32) | lo as u64
}

fn valid(i: usize, x: u64) -> bool {
    x == elem(i as u64)
}

/// Mappings of this crate's memory files (`/memfd:remapvec (deleted)` in `/proc/self/maps`).
#[cfg(all(target_os = "linux", not(feature = "force-fallback")))]
fn views() -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .map(|s| s.lines().filter(|l| l.contains("memfd:remapvec")).count())
        .unwrap_or(0)
}

/// The tests of this file run one at a time: the first counts the process's memory-file
/// mappings, which another test's buffers would add to.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A page mapped at a given address (if free), unmapped on drop.
struct Blocker(usize);

impl Blocker {
    #[cfg(target_os = "linux")]
    fn at(addr: usize) -> Blocker {
        // SAFETY: MAP_FIXED_NOREPLACE never replaces an existing mapping.
        let p = unsafe {
            libc::mmap(
                addr as *mut libc::c_void,
                4096,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
                -1,
                0,
            )
        };
        Blocker(if p == libc::MAP_FAILED { 0 } else { p as usize })
    }
}

impl Drop for Blocker {
    fn drop(&mut self) {
        if self.0 != 0 {
            // SAFETY: our own page.
            unsafe { libc::munmap(self.0 as *mut libc::c_void, 4096) };
        }
    }
}

#[test]
fn readers_never_see_torn_or_unwritten_elements_while_it_grows() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    #[cfg(all(target_os = "linux", not(feature = "force-fallback")))]
    let before = views();
    let v = Arc::new(SharedVec::<u64>::new());
    let stop = Arc::new(AtomicBool::new(false));
    let scanned = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = (0..3)
        .map(|r| {
            let (v, stop, scanned) = (Arc::clone(&v), Arc::clone(&stop), Arc::clone(&scanned));
            std::thread::spawn(move || {
                let mut rounds = 0u64;
                let mut last = 0;
                let mut held = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let g = v.read();
                    assert!(g.len() >= last, "published length never goes back");
                    last = g.len();
                    // Check a window at the end (the newest elements) and a stride through
                    // the rest; the whole slice every 16th round.
                    let step = if rounds.is_multiple_of(16) { 1 } else { 4093 };
                    for i in (0..g.len()).step_by(step) {
                        assert!(valid(i, g[i]), "element {i} of {}", g.len());
                    }
                    for i in g.len().saturating_sub(4096)..g.len() {
                        assert!(valid(i, g[i]), "element {i} of {}", g.len());
                    }
                    scanned.fetch_add(g.len() as u64, Ordering::Relaxed);
                    // Reader 0 holds a few guards for a while (old views stay mapped).
                    if r == 0 && rounds.is_multiple_of(8) {
                        held.push(g);
                        if held.len() > 3 {
                            held.remove(0);
                        }
                    }
                    rounds += 1;
                }
                rounds
            })
        })
        .collect();
    // 128M elements of 8 bytes: 1 GiB, in batches of 64K (and some single pushes).
    let total: u64 = 1 << 27;
    let mut batch = Vec::with_capacity(1 << 16);
    let mut i = 0u64;
    let mut blockers = Vec::new();
    let mut batches = 0u64;
    while i < total {
        batches += 1;
        if batches % 64 == 1 {
            v.push(elem(i));
            i += 1;
            // Now and then take the addresses right after the current view, so that the next
            // grow must map a second view while readers hold the first.
            #[cfg(target_os = "linux")]
            {
                let end = v.read().as_ptr() as usize + v.capacity() * 8;
                blockers.push(Blocker::at(end.next_multiple_of(4096)));
            }
            continue;
        }
        batch.clear();
        let end = (i + (1 << 16)).min(total);
        batch.extend((i..end).map(elem));
        v.extend_from_slice(&batch);
        i = end;
    }
    stop.store(true, Ordering::Relaxed);
    drop(blockers);
    let rounds: u64 = readers.into_iter().map(|r| r.join().unwrap()).sum();
    assert!(rounds > 0);
    let g = v.read();
    assert_eq!(g.len() as u64, total);
    assert!(g.iter().enumerate().all(|(i, &x)| valid(i, x)));
    drop(g);
    let s = v.stats();
    eprintln!(
        "grows: {} in place, {} new views, {} copied; {} reader rounds; {} elements scanned",
        s.in_place,
        s.moved,
        s.copied,
        rounds,
        scanned.load(Ordering::Relaxed)
    );
    // Every guard is gone; the writer unmaps old views at its next append (readers never
    // do): then only the current view is mapped.
    v.extend_from_slice(&[]);
    assert_eq!(v.views_mapped(), 1);
    #[cfg(all(target_os = "linux", not(feature = "force-fallback")))]
    {
        assert_eq!(s.bytes_copied, 0);
        assert!(s.moved > 0, "some grows mapped a second view");
        // The current view, and nothing else of the buffer, is mapped now.
        assert_eq!(views(), before + 1);
        drop(v);
        assert_eq!(views(), before, "all views unmapped");
    }
}

/// Every way of bringing pages in ahead of the writer keeps what was appended, across grows in
/// place and grows into a new view, and readers see a valid prefix meanwhile.
#[test]
fn every_prefault_mode_keeps_the_elements_across_grows() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    use remapvec::Prefault;
    for mode in [
        Prefault::Fault,
        Prefault::Populate,
        Prefault::Allocate,
        Prefault::AllocatePopulate,
        Prefault::WriteZeros,
    ] {
        let v = Arc::new(SharedVec::<u64>::with_prefault(mode));
        let stop = Arc::new(AtomicBool::new(false));
        let reader = {
            let (v, stop) = (Arc::clone(&v), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut rounds = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let g = v.read();
                    let n = g.len();
                    // The newest elements are the ones a prefault batch ran ahead of.
                    for (i, &x) in g.iter().enumerate().skip(n.saturating_sub(4096)) {
                        assert!(valid(i, x), "{mode:?}: element {i}");
                    }
                    rounds += 1;
                }
                rounds
            })
        };
        let mut blockers = Vec::new();
        let n = 3 << 20; // 24 MiB of u64: several grows past the 2 MiB batch
        for i in 0..n {
            v.push(elem(i as u64));
            if i % (1 << 20) == 0 {
                // Force the next grow to map a new view now and then.
                let g = v.read();
                let end = g.as_ptr() as usize + v.capacity() * 8;
                #[cfg(target_os = "linux")]
                blockers.push(Blocker::at(end.next_multiple_of(4096)));
                let _ = end;
            }
        }
        stop.store(true, Ordering::Relaxed);
        reader.join().unwrap();
        let g = v.read();
        assert_eq!(g.len(), n);
        assert!(g.iter().enumerate().all(|(i, &x)| valid(i, x)), "{mode:?}");
        let s = v.stats();
        assert!(s.in_place + s.moved + s.copied > 3, "{mode:?}: {s:?}");
        drop(g);
        drop(blockers);
    }
}

/// A process with a file-size limit (`ulimit -f`) gets an error when a buffer would grow its
/// memory file past the limit, not the `SIGXFSZ` that kills it. Runs in a child process,
/// since the limit is process-wide.
#[cfg(all(target_os = "linux", not(feature = "force-fallback")))]
#[test]
fn growth_past_the_file_size_limit_is_an_error_not_a_signal() {
    const NAME: &str = "growth_past_the_file_size_limit_is_an_error_not_a_signal";
    if std::env::var_os("REMAPVEC_TEST_FSIZE_CHILD").is_some() {
        let lim = libc::rlimit {
            rlim_cur: 4 << 20,
            rlim_max: libc::RLIM_INFINITY,
        };
        // SAFETY: setrlimit reads the `rlimit` we pass.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_FSIZE, &lim) }, 0);
        let v: SharedVec<u8> = SharedVec::new();
        v.try_extend_from_slice(&[1; 1 << 20])
            .expect("1 MiB is within the limit");
        let err = v
            .try_extend_from_slice(&vec![2; 16 << 20])
            .expect_err("17 MiB is past the 4 MiB limit");
        assert!(err.to_string().contains("too large"), "{err}");
        // Nothing lost, and the buffer still works within the limit.
        assert_eq!(v.len(), 1 << 20);
        assert!(v.read().iter().all(|&x| x == 1));
        v.push(3);
        assert_eq!(v.read()[1 << 20], 3);
        return;
    }
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", NAME, "--test-threads=1"])
        .env("REMAPVEC_TEST_FSIZE_CHILD", "1")
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "the child failed: {status:?}");
}
