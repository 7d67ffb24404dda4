//! The crate never touches memory it does not own, under any interleaving.
//!
//! * A stress test: threads that map, write and verify memory of their own (plain `mmap`, and
//!   `MAP_FIXED_NOREPLACE` at addresses the crate just used, vacated or may grow into) run next
//!   to threads that grow, shrink and drop `RemapVec`s (with failing `try_reserve`s), realloc
//!   through `RemapAlloc`, grow, free and compact `PageArena`s and grow `SharedVec`s. Every
//!   foreign byte is checked; nothing foreign may ever change or disappear.
//! * `fork` while another thread is inside the reuse cache: the child must not hang.
//!
//! `REMAPVEC_STRESS_SECS` sets the stress duration (default 20 s).

use remapvec::{PageArena, RemapAlloc, RemapVec, SharedVec};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::*};
use std::time::{Duration, Instant};

const PAGE: usize = 4096;

/// Addresses the crate used recently (starts and ends of its mappings): where foreign threads
/// aim their `MAP_FIXED_NOREPLACE` hints.
struct Recent {
    slots: [AtomicUsize; 64],
    next: AtomicUsize,
}

impl Recent {
    fn new() -> Self {
        Recent {
            slots: [const { AtomicUsize::new(0) }; 64],
            next: AtomicUsize::new(0),
        }
    }

    fn publish(&self, start: usize, len: usize) {
        for a in [start, start.wrapping_add(len)] {
            let a = a & !(PAGE - 1);
            if a != 0 {
                let i = self.next.fetch_add(1, Relaxed) % self.slots.len();
                self.slots[i].store(a, Relaxed);
            }
        }
    }

    fn pick(&self, rng: &mut Rng) -> usize {
        self.slots[rng.below(self.slots.len())].load(Relaxed)
    }
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// A mapping owned by a foreign thread, filled with a pattern derived from its address.
struct Foreign {
    addr: usize,
    len: usize,
    seed: u64,
}

impl Foreign {
    fn word(&self, i: usize) -> u64 {
        (self.addr as u64 ^ self.seed).wrapping_add((i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }

    fn map(hint: usize, len: usize, seed: u64) -> Option<Foreign> {
        let flags = libc::MAP_PRIVATE
            | libc::MAP_ANONYMOUS
            | if hint != 0 {
                libc::MAP_FIXED_NOREPLACE
            } else {
                0
            };
        // SAFETY: a new anonymous mapping; NOREPLACE never replaces anything.
        let p = unsafe {
            libc::mmap(
                hint as *mut libc::c_void,
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                flags,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return None;
        }
        if hint != 0 && p as usize != hint {
            // SAFETY: our own fresh mapping.
            unsafe { libc::munmap(p, len) };
            return None;
        }
        let f = Foreign {
            addr: p as usize,
            len,
            seed,
        };
        // SAFETY: our own mapping of `len` bytes, a multiple of 8.
        let words = unsafe { std::slice::from_raw_parts_mut(p.cast::<u64>(), len / 8) };
        for (i, w) in words.iter_mut().enumerate() {
            *w = f.word(i);
        }
        Some(f)
    }

    /// Panics if any page was unmapped or any byte changed. Reads through
    /// `process_vm_readv`, so that a page the crate unmapped is reported, not a crash.
    fn verify(&self) {
        let mut buf = vec![0u64; self.len / 8];
        let local = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: self.len,
        };
        let remote = libc::iovec {
            iov_base: self.addr as *mut _,
            iov_len: self.len,
        };
        // SAFETY: reads this process's own memory into `buf`; an unmapped page is an error
        // (EFAULT or a short read), never a fault.
        let n = unsafe { libc::process_vm_readv(libc::getpid(), &local, 1, &remote, 1, 0) };
        assert_eq!(
            n as isize, self.len as isize,
            "foreign mapping at {:#x} (+{:#x}) was unmapped by the crate",
            self.addr, self.len
        );
        for (i, &w) in buf.iter().enumerate() {
            assert_eq!(
                w,
                self.word(i),
                "foreign mapping at {:#x}: word {i} changed",
                self.addr
            );
        }
    }
}

impl Drop for Foreign {
    fn drop(&mut self) {
        // SAFETY: our own mapping.
        unsafe { libc::munmap(self.addr as *mut _, self.len) };
    }
}

fn foreign_thread(recent: &Recent, stop: &AtomicBool, seed: u64) -> u64 {
    let mut rng = Rng(seed | 1);
    let mut live: Vec<Foreign> = Vec::new();
    let mut made = 0;
    while !stop.load(Relaxed) {
        let len = (1 + rng.below(16)) * PAGE;
        let hint = match rng.below(4) {
            0 => 0,
            1 => recent.pick(&mut rng),
            // Just before or after a recent address: a neighbour the crate must not grow over.
            2 => recent.pick(&mut rng).wrapping_sub(len),
            _ => recent.pick(&mut rng).wrapping_add(PAGE * rng.below(4)),
        };
        if let Some(f) = Foreign::map(hint, len, rng.next()) {
            made += 1;
            live.push(f);
        }
        if live.len() > 24 {
            let f = live.swap_remove(rng.below(live.len()));
            f.verify();
        }
        if rng.below(8) == 0 {
            for f in &live {
                f.verify();
            }
        }
    }
    for f in &live {
        f.verify();
    }
    made
}

fn vec_thread(recent: &Recent, stop: &AtomicBool, seed: u64) {
    let mut rng = Rng(seed | 1);
    while !stop.load(Relaxed) {
        let mut v: RemapVec<u64> = RemapVec::new();
        let target = 1 + rng.below(8 << 20); // up to 64 MiB
        let mut i = 0u64;
        while (i as usize) < target {
            let n = (1 + rng.below(1 << 18)).min(target - i as usize);
            v.extend(i..i + n as u64);
            i += n as u64;
            recent.publish(v.as_ptr() as usize, v.capacity() * 8);
            if rng.below(16) == 0 {
                // More than any machine has: must fail and change nothing.
                let (p, len) = (v.as_ptr(), v.len());
                assert!(v.try_reserve_exact(1 << 40).is_err() || v.capacity() >= 1 << 40);
                assert_eq!((v.as_ptr(), v.len()), (p, len));
            }
            if rng.below(16) == 0 {
                v.truncate(v.len() / 2);
                i = v.len() as u64;
                v.shrink_to_fit();
                recent.publish(v.as_ptr() as usize, v.capacity() * 8);
            }
        }
        assert!(v.iter().enumerate().all(|(k, &x)| x == k as u64));
        recent.publish(v.as_ptr() as usize, v.capacity() * 8);
    }
}

fn alloc_thread(recent: &Recent, stop: &AtomicBool, seed: u64) {
    let mut rng = Rng(seed | 1);
    let alloc = RemapAlloc::new();
    while !stop.load(Relaxed) {
        let mut v = allocator_api2::vec::Vec::new_in(&alloc);
        let target = 1 + rng.below(4 << 20);
        for k in 0..target as u32 {
            v.push(k);
            if k & 0xFFFF == 0 {
                recent.publish(v.as_ptr() as usize, v.capacity() * 4);
            }
        }
        assert!(v.iter().enumerate().all(|(k, &x)| x == k as u32));
        v.shrink_to(target / 3);
        assert!(v.iter().enumerate().all(|(k, &x)| x == k as u32));
        recent.publish(v.as_ptr() as usize, v.capacity() * 4);
    }
}

fn arena_thread(recent: &Recent, stop: &AtomicBool, seed: u64) {
    let mut rng = Rng(seed | 1);
    while !stop.load(Relaxed) {
        let mut arena = PageArena::new();
        let mut live = Vec::new();
        for round in 0..200 {
            if stop.load(Relaxed) {
                break;
            }
            match rng.below(5) {
                0 | 1 => {
                    let len = (1 + rng.below(64)) * PAGE;
                    if let Ok(id) = arena.alloc(len) {
                        let tag = rng.next() as u8;
                        arena.get_mut(id).unwrap().fill(tag);
                        live.push((id, tag));
                    }
                }
                2 if !live.is_empty() => {
                    let (id, _) = live.swap_remove(rng.below(live.len()));
                    arena.free(id).unwrap();
                }
                3 if !live.is_empty() => {
                    let k = rng.below(live.len());
                    let (id, tag) = live[k];
                    let old = arena.get(id).unwrap().len();
                    let new = old + (1 + rng.below(128)) * PAGE;
                    if arena.grow(id, new).is_ok() {
                        let r = arena.get_mut(id).unwrap();
                        assert!(r[..old].iter().all(|&b| b == tag), "arena lost bytes");
                        r.fill(tag);
                    }
                }
                _ => {
                    if round % 3 == 0 {
                        let _ = arena.compact();
                    }
                }
            }
            let r = arena.address_range();
            recent.publish(r.start, r.end - r.start);
            for &(id, _) in live.iter().take(4) {
                if let Some(s) = arena.get(id) {
                    recent.publish(s.as_ptr() as usize, s.len());
                }
            }
        }
        for &(id, tag) in &live {
            assert!(arena.get(id).unwrap().iter().all(|&b| b == tag));
        }
    }
}

fn shared_thread(recent: &Recent, stop: &AtomicBool) {
    while !stop.load(Relaxed) {
        let v = SharedVec::<u64>::new();
        for round in 0..64u64 {
            let start = v.read().len() as u64;
            let batch: Vec<u64> = (start..start + 32 * 1024).collect();
            v.extend_from_slice(&batch);
            let g = v.read();
            recent.publish(g.as_ptr() as usize, g.len() * 8);
            if round % 8 == 0 {
                assert!(g.iter().enumerate().all(|(k, &x)| x == k as u64));
            }
        }
    }
}

#[test]
fn foreign_memory_survives_every_crate_operation() {
    let secs: u64 = std::env::var("REMAPVEC_STRESS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let recent = Arc::new(Recent::new());
    let stop = Arc::new(AtomicBool::new(false));
    let mut crate_threads = Vec::new();
    for k in 0..2u64 {
        let (r, s) = (Arc::clone(&recent), Arc::clone(&stop));
        crate_threads.push(std::thread::spawn(move || vec_thread(&r, &s, 11 + k)));
    }
    {
        let (r, s) = (Arc::clone(&recent), Arc::clone(&stop));
        crate_threads.push(std::thread::spawn(move || alloc_thread(&r, &s, 23)));
    }
    {
        let (r, s) = (Arc::clone(&recent), Arc::clone(&stop));
        crate_threads.push(std::thread::spawn(move || arena_thread(&r, &s, 37)));
    }
    {
        let (r, s) = (Arc::clone(&recent), Arc::clone(&stop));
        crate_threads.push(std::thread::spawn(move || shared_thread(&r, &s)));
    }
    let mut foreign = Vec::new();
    for k in 0..4u64 {
        let (r, s) = (Arc::clone(&recent), Arc::clone(&stop));
        foreign.push(std::thread::spawn(move || {
            foreign_thread(&r, &s, 0x1234_5678 + k)
        }));
    }
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(secs) {
        std::thread::sleep(Duration::from_millis(100));
        if crate_threads.iter().any(|t| t.is_finished()) || foreign.iter().any(|t| t.is_finished())
        {
            break; // a thread panicked: stop and report
        }
    }
    stop.store(true, Relaxed);
    let mut made = 0;
    for t in foreign {
        made += t.join().expect("a foreign thread found its memory changed");
    }
    for t in crate_threads {
        t.join().expect("a crate thread failed");
    }
    assert!(made > 0);
}

/// Issue 10, defect 8: a child forked while another thread was inside the reuse cache must
/// not hang on it.
#[test]
fn fork_while_another_thread_uses_the_reuse_cache_never_hangs() {
    let stop = Arc::new(AtomicBool::new(false));
    let churn = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            while !stop.load(Relaxed) {
                // 1-2 MiB vectors: kept by the reuse cache on drop, taken on creation.
                let v: RemapVec<u8> = RemapVec::with_capacity(1 << 20);
                drop(v);
                let mut w: RemapVec<u8> = RemapVec::with_capacity(2 << 20);
                w.push(1);
            }
        })
    };
    for round in 0..60 {
        // SAFETY: the child only allocates, frees and exits with _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            let mut v: RemapVec<u8> = RemapVec::with_capacity(1 << 20);
            v.extend_from_slice(&[7; 4096]);
            let ok = v.iter().all(|&b| b == 7);
            drop(v);
            let w: RemapVec<u8> = RemapVec::with_capacity(1 << 20);
            drop(w);
            // SAFETY: ends the child without running the parent's destructors.
            unsafe { libc::_exit(if ok { 0 } else { 3 }) };
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut status = 0;
        loop {
            // SAFETY: waiting for our own child.
            let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
            if r == pid {
                break;
            }
            if Instant::now() > deadline {
                // SAFETY: our own child.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                stop.store(true, Relaxed);
                panic!("child of fork {round} hung for 10 s (deadlock in the crate)");
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "child {round} failed: status {status}"
        );
    }
    stop.store(true, Relaxed);
    churn.join().unwrap();
}
