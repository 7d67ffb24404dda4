//! Regression tests for `SharedVec` (issue 10): readers never see elements that were not
//! written to their view when growth copies (defect 3), a forked child and its parent each
//! have their own buffer (defect 7); and `vec::Drain` is covariant like std's.
//!
//! Defect 1 (`SharedVec<T>` must be invariant in `T`) is a `compile_fail` doctest on
//! `SharedVec`.

use remapvec::{Drain, RemapVec, SharedVec};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::thread::JoinHandleExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Element `i`: never zero, and its two halves agree (an unwritten or torn element fails).
fn elem(i: u64) -> u64 {
    let lo = (i as u32).wrapping_mul(2_654_435_761) | 1;
    ((lo as u64) << 32) | lo as u64
}

/// Set in the re-executed child of [`copying_growth_readers_see_only_written_elements`].
const CHILD_ENV: &str = "REMAPVEC_SV_COPY_CHILD";

/// Runs the test `name` of this binary again in a child process with `CHILD_ENV` set; true if
/// it passed.
fn rerun_in_child(name: &str) -> bool {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .output()
        .unwrap();
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    out.status.success()
}

/// Defect 3. Growth that copies (the portable backend, or Linux once `memfd_create` fails)
/// publishes a new view while readers may still be on the old one; a reader must never see an
/// element of its view that was written only to the new view (those read as zero here).
///
/// On Linux the copying path is forced in a child process whose `RLIMIT_NOFILE` is used up,
/// so that `memfd_create` fails with `EMFILE`, as in the report.
#[test]
fn copying_growth_readers_see_only_written_elements() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    assert!(rerun_in_child("copying_growth_child"));
}

/// The body of [`copying_growth_readers_see_only_written_elements`]; does nothing unless it
/// runs in that test's child.
#[test]
fn copying_growth_child() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    // No descriptor can be opened from now on: memfd_create fails with EMFILE.
    let lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: libc::RLIM_INFINITY,
    };
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with valid structs; this process is the test's own child.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut old), 0);
        let lim = libc::rlimit {
            rlim_max: old.rlim_max,
            ..lim
        };
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let current: Arc<parking_lot::RwLock<Arc<SharedVec<u64>>>> =
        Arc::new(parking_lot::RwLock::new(Arc::new(SharedVec::new())));
    let seen = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = (0..8)
        .map(|_| {
            let (stop, current, seen) = (stop.clone(), current.clone(), seen.clone());
            std::thread::spawn(move || {
                let mut reads = 0u64;
                let mut k = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    // Always the buffer being grown now.
                    let v = current.read().clone();
                    {
                        let g = v.read();
                        // The suspects are at the end of the guard: check the last element on
                        // every read (a short loop widens nothing), all of them now and then.
                        let from = if k.is_multiple_of(64) {
                            0
                        } else {
                            g.len().saturating_sub(1)
                        };
                        for i in from..g.len() {
                            assert!(
                                g[i] == elem(i as u64),
                                "element {i} of {} reads {:#x}: never written to this view",
                                g.len(),
                                g[i]
                            );
                        }
                        reads += 1;
                        k = k.wrapping_add(1);
                    }
                }
                seen.fetch_add(reads, Ordering::Relaxed);
            })
        })
        .collect();
    // Readers stop at random points (a signal whose handler sleeps), so that some stop
    // between taking their view and reading its length while the writer grows.
    let nudger = {
        let stop = stop.clone();
        let threads: Vec<libc::pthread_t> = readers.iter().map(|r| r.as_pthread_t()).collect();
        install_sleeping_handler();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                for &t in &threads {
                    // SAFETY: signalling a live thread of ours (joined only after this loop
                    // ends) with a signal whose handler is installed.
                    unsafe { libc::pthread_kill(t, libc::SIGUSR2) };
                }
                std::thread::sleep(std::time::Duration::from_micros(100));
            }
        })
    };
    // Many small buffers (a grow is most likely to happen while a reader is between taking
    // its view and reading the length), each grown from nothing through 4 copying grows,
    // appending in batches that do not end at a capacity boundary (so a grow leaves unwritten
    // room in the old view), for a few seconds.
    let batch: Vec<u64> = (0..1 << 16).map(elem).collect();
    let mut grows = 0;
    let start = std::time::Instant::now();
    while start.elapsed() < std::time::Duration::from_secs(6) {
        let v = current.read().clone();
        let mut n = 0usize;
        while n < 1 << 15 {
            let k = 700 + (n % 977);
            v.extend_from_slice(&batch[n..n + k]);
            n += k;
        }
        let s = v.stats();
        assert!(s.copied > 0 && s.moved == 0, "growth copied: {s:?}");
        grows += s.copied;
        *current.write() = Arc::new(SharedVec::new());
    }
    stop.store(true, Ordering::Relaxed);
    nudger.join().unwrap();
    for r in readers {
        r.join().unwrap();
    }
    eprintln!(
        "{grows} copying grows, {} reads checked",
        seen.load(Ordering::Relaxed)
    );
}

/// Installs a `SIGUSR2` handler that sleeps 50 µs: the signalled thread stops wherever it
/// was.
fn install_sleeping_handler() {
    extern "C" fn sleep_a_little(_: libc::c_int) {
        let t = libc::timespec {
            tv_sec: 0,
            tv_nsec: 50_000,
        };
        // SAFETY: nanosleep is async-signal-safe; a valid timespec.
        unsafe { libc::nanosleep(&t, core::ptr::null_mut()) };
    }
    // SAFETY: a zeroed sigaction with a valid handler and flags; installing it affects only
    // this (child) process.
    unsafe {
        let mut sa: libc::sigaction = core::mem::zeroed();
        sa.sa_sigaction = sleep_a_little as extern "C" fn(libc::c_int) as usize;
        sa.sa_flags = libc::SA_RESTART;
        assert_eq!(
            libc::sigaction(libc::SIGUSR2, &sa, core::ptr::null_mut()),
            0
        );
    }
}

/// Defect 7. After `fork` the child and the parent each have their own buffer: the parent's
/// appends change nothing the child sees (neither a guard held across the fork nor a fresh
/// read), and the child's appends change nothing the parent sees.
#[test]
fn fork_gives_the_child_its_own_buffer() {
    // No other test of this binary runs while we fork (the child would inherit its pipes).
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let v = SharedVec::<u64>::new();
    let first: Vec<u64> = (0..10_000).map(elem).collect();
    v.extend_from_slice(&first);
    let g = v.read();
    assert_eq!(g.len(), 10_000);
    // One byte at a time: parent -> child "go on", child -> parent "appended".
    let (to_child_r, to_child_w) = pipe();
    let (to_parent_r, to_parent_w) = pipe();
    // SAFETY: the child only reads memory it inherited, uses the SharedVec (no allocation on
    // its paths), pipes, and leaves with `_exit`.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        // SAFETY: child side: closes and one-byte reads/writes on our pipes, then `_exit`.
        unsafe {
            libc::close(to_child_w.as_raw_fd());
            libc::close(to_parent_r.as_raw_fd());
            let (rd, wr) = (to_child_r.as_raw_fd(), to_parent_w.as_raw_fd());
            let mut b = 0u8;
            // Wait until the parent has appended after the fork.
            if libc::read(rd, (&raw mut b).cast(), 1) != 1 {
                libc::_exit(10);
            }
            let check =
                |g: &[u64], n: usize| g.len() == n && (0..n).all(|i| g[i] == elem(i as u64));
            // The guard held across the fork and a fresh read: what was there at the fork.
            if !check(&g, 10_000) {
                libc::_exit(11);
            }
            if !check(&v.read(), 10_000) {
                libc::_exit(12);
            }
            // The child appends its own elements (where the parent appended its own).
            for i in 10_000..30_000u64 {
                v.push(!elem(i));
            }
            let r = v.read();
            if r.len() != 30_000
                || !(0..10_000).all(|i| r[i] == elem(i as u64))
                || !(10_000..30_000).all(|i| r[i] == !elem(i as u64))
            {
                libc::_exit(13);
            }
            if !check(&g, 10_000) {
                libc::_exit(14);
            }
            // Let the parent check that the child's appends did not reach it, then check
            // that the parent's further appends do not reach the child.
            if libc::write(wr, (&raw const b).cast(), 1) != 1 {
                libc::_exit(15);
            }
            if libc::read(rd, (&raw mut b).cast(), 1) != 1 {
                libc::_exit(16);
            }
            let r2 = v.read();
            if r2.len() != 30_000
                || (10_000..30_000).any(|i| r2[i] != !elem(i as u64))
                || !check(&g, 10_000)
            {
                libc::_exit(17);
            }
            libc::_exit(0);
        }
    }
    drop((to_child_r, to_parent_w));
    // Parent: append after the fork (the same indices the child will write).
    let more: Vec<u64> = (10_000..20_000).map(elem).collect();
    v.extend_from_slice(&more);
    send(&to_child_w);
    let appended = receive(&to_parent_r);
    let check_parent = |n: usize| {
        let p = v.read();
        assert_eq!(p.len(), n);
        for (i, &x) in p.iter().enumerate() {
            assert_eq!(x, elem(i as u64), "parent element {i} changed by the child");
        }
    };
    if appended {
        check_parent(20_000);
        // Append more (and grow) while the child still reads its buffer.
        let rest: Vec<u64> = (20_000..200_000).map(elem).collect();
        v.extend_from_slice(&rest);
        check_parent(200_000);
        send(&to_child_w);
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "child failed: status {status:#x}, exit code {}",
        libc::WEXITSTATUS(status)
    );
    assert!(appended);
    assert!(g.iter().enumerate().all(|(i, &x)| x == elem(i as u64)));
    check_parent(200_000);
}

/// Serializes the tests that fork or spawn children.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A pipe: (read end, write end).
fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0i32; 2];
    // SAFETY: `pipe` writes two descriptors into `fds`, which we then own.
    unsafe {
        assert_eq!(libc::pipe(fds.as_mut_ptr()), 0);
        (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1]))
    }
}

/// Writes one byte.
fn send(fd: &OwnedFd) {
    let b = 1u8;
    // SAFETY: one byte from a valid buffer to our descriptor.
    let n = unsafe { libc::write(fd.as_raw_fd(), (&raw const b).cast(), 1) };
    assert_eq!(n, 1);
}

/// Reads one byte; false at end of file (the other side is gone).
fn receive(fd: &OwnedFd) -> bool {
    let mut b = 0u8;
    // SAFETY: one byte into a valid buffer from our descriptor.
    unsafe { libc::read(fd.as_raw_fd(), (&raw mut b).cast(), 1) == 1 }
}

/// `Drain` is covariant in `T` (and in its lifetime), like `std::vec::Drain`: a drain of
/// `&'static str` serves as a drain of `&'a str` for a local `'a`.
#[test]
fn drain_is_covariant() {
    fn shorten<'a, 'd>(d: Drain<'d, &'static str>) -> Drain<'d, &'a str> {
        d
    }
    let local = String::from("c");
    let mut v: RemapVec<&'static str> = RemapVec::from(["a", "b", "x"]);
    let d = shorten(v.drain(..2));
    let all: Vec<&str> = d.chain([local.as_str()]).collect();
    assert_eq!(all, ["a", "b", "c"]);
    assert_eq!(v, ["x"]);
}
