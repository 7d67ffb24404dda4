//! I/O for `RemapVec<u8>`: reading from any `io::Read` straight into the spare capacity
//! (`read_to_end_from`, `read_file`), `io::Write` (with `write_vectored`), and `bytes::BufMut`
//! behind the `bytes` feature.

use super::RemapVec;
use std::io::{self, IoSlice, Read, Write};
use std::path::Path;

/// Most bytes zeroed and offered to one `read` call: small enough that the zeroed bytes are
/// still in the cache when the reader overwrites them, large enough that the system calls
/// of a file read cost nothing next to the copying (one per MiB).
const READ_CHUNK: usize = 1 << 20;

/// Size of the probe read made when the vector is full, so that a reader already at its end
/// does not make the vector grow (what std's `read_to_end` does too).
const PROBE: usize = 32;

/// Spare room reserved when a read finds the vector full (the amortized growth usually
/// reserves much more: it doubles the capacity, by `mremap` once mapped).
const MIN_READ_ROOM: usize = 8 << 10;

fn out_of_memory(e: crate::TryReserveError) -> io::Error {
    io::Error::new(io::ErrorKind::OutOfMemory, e)
}

impl RemapVec<u8> {
    /// Reads every byte until end of file from `reader` and appends them, returning how many
    /// were read: [`Read::read_to_end`] for a `RemapVec<u8>`.
    ///
    /// The bytes are read straight into the spare capacity (no intermediate buffer). When the
    /// vector is full it grows by its own amortized growth: on the heap below the heap
    /// threshold, then by `mremap` (doubling the mapping, in place or by moving page tables,
    /// never copying the bytes read so far). Reserve first when the size is known, as
    /// [`read_file`](Self::read_file) does: the reads then fill exactly that room.
    ///
    /// Safe Rust cannot hand uninitialized memory to [`Read::read`], so the spare capacity is
    /// zeroed before it is offered, one 1 MiB chunk at a time just before the read that fills
    /// it (the zeroes are still in the cache when the reader overwrites them); bytes zeroed
    /// but not filled by a short read are not zeroed again. Pages of the mapping never touched
    /// before are faulted in with one `MADV_POPULATE_WRITE` per chunk instead of one trap per
    /// page, like the bulk fills (`resize`, `extend_from_slice`).
    ///
    /// # Errors
    /// The first error of `reader` other than [`io::ErrorKind::Interrupted`] (which is
    /// retried), or [`io::ErrorKind::OutOfMemory`] when the vector cannot grow. Either way the
    /// bytes read before the error stay appended, as with `read_to_end`.
    ///
    /// # Panics
    /// If `reader` claims to have read more bytes than the buffer it was given.
    ///
    /// ```
    /// use remapvec::RemapVec;
    /// let mut v = RemapVec::from(*b"head:");
    /// let n = v.read_to_end_from(&mut &b"some bytes"[..])?;
    /// assert_eq!((n, &v[..]), (10, &b"head:some bytes"[..]));
    ///
    /// // Any reader: here 300 KiB through a chain, so the vector moves into a mapping.
    /// let mut big = RemapVec::new();
    /// use std::io::Read;
    /// let mut reader = std::io::repeat(7).take(300 << 10);
    /// big.read_to_end_from(&mut reader)?;
    /// assert!(big.len() == 300 << 10 && big.iter().all(|&b| b == 7) && big.is_mapped());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn read_to_end_from<R: Read + ?Sized>(&mut self, reader: &mut R) -> io::Result<usize> {
        let start = self.len;
        // Bytes after the length that are initialized (zeroed by us, or zeroed and left
        // unfilled by a short read); always `<= capacity - len`.
        let mut init = 0;
        loop {
            if self.len == self.capacity() {
                init = 0;
                let mut probe = [0u8; PROBE];
                let n = match reader.read(&mut probe) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                };
                if n == 0 {
                    return Ok(self.len - start);
                }
                let got = probe
                    .get(..n)
                    .expect("reader returned more bytes than asked");
                self.try_reserve(MIN_READ_ROOM.max(n))
                    .map_err(out_of_memory)?;
                self.extend_from_slice(got);
                continue;
            }
            let want = (self.capacity() - self.len).min(READ_CHUNK);
            let len = self.len;
            if init < want {
                // Pages of a mapping never touched so far are faulted in with one
                // `MADV_POPULATE_WRITE` rather than one trap each (what bulk fills do).
                self.buf.prepare_fill(len + init, want - init);
            }
            let spare = &mut self.spare_capacity_mut()[..want];
            if init < want {
                spare[init..].fill(core::mem::MaybeUninit::new(0));
                init = want;
            }
            // SAFETY: the first `want` bytes of the spare capacity were initialized (zeroed
            // above or earlier, and only ever written with bytes since); `MaybeUninit<u8>` has
            // the layout of `u8`.
            let buf = unsafe { &mut *(core::ptr::from_mut(spare) as *mut [u8]) };
            match reader.read(buf) {
                Ok(0) => return Ok(self.len - start),
                Ok(n) => {
                    assert!(n <= want, "reader returned more bytes than asked");
                    // SAFETY: `n <= want` bytes after the length were written by the reader.
                    unsafe { self.set_len(len + n) };
                    init = want - n;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads a whole file into a new vector, like [`std::fs::read`]: the file's size (from its
    /// metadata) is reserved up front, so a large file lands in one mapping of its size and
    /// is read straight into it; a file that grows meanwhile is read to its end anyway.
    ///
    /// # Errors
    /// Opening the file, its metadata or reading it fails, or the memory is refused
    /// ([`io::ErrorKind::OutOfMemory`]).
    ///
    /// ```
    /// let path = std::env::temp_dir().join(format!("remapvec-read-file-{}", std::process::id()));
    /// std::fs::write(&path, b"hello")?;
    /// let v = remapvec::RemapVec::read_file(&path)?;
    /// assert_eq!(v, *b"hello");
    /// # std::fs::remove_file(&path)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn read_file<P: AsRef<Path>>(path: P) -> io::Result<RemapVec<u8>> {
        let mut file = std::fs::File::open(path)?;
        let size = file.metadata().map(|m| m.len()).ok();
        let mut v = RemapVec::new();
        if let Some(size) = size.and_then(|s| usize::try_from(s).ok()) {
            v.try_reserve_exact(size).map_err(out_of_memory)?;
        }
        v.read_to_end_from(&mut file)?;
        Ok(v)
    }
}

impl Write for RemapVec<u8> {
    /// Appends the bytes, like `Vec<u8>`'s `Write`; a refused allocation is an `io::Error`
    /// (`OutOfMemory`) rather than an abort.
    ///
    /// ```
    /// use std::io::Write;
    /// let mut v = remapvec::RemapVec::new();
    /// write!(v, "{}-{}", 1, 2)?;
    /// assert_eq!(v, *b"1-2");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.try_reserve(buf.len()).map_err(out_of_memory)?;
        self.extend_from_slice(buf);
        Ok(buf.len())
    }

    /// Appends all the slices (room for all of them is reserved at once), like `Vec<u8>`'s
    /// `write_vectored`; returns their total length.
    ///
    /// ```
    /// use std::io::{IoSlice, Write};
    /// let mut v = remapvec::RemapVec::new();
    /// let n = v.write_vectored(&[IoSlice::new(b"ab"), IoSlice::new(b""), IoSlice::new(b"c")])?;
    /// assert_eq!((n, &v[..]), (3, &b"abc"[..]));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        // The same slice may be passed many times: saturate, the reservation then fails.
        let len = bufs.iter().fold(0usize, |n, b| n.saturating_add(b.len()));
        self.try_reserve(len).map_err(out_of_memory)?;
        for b in bufs {
            self.extend_from_slice(b);
        }
        Ok(len)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.write(buf).map(drop)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// `bytes::BufMut` for `RemapVec<u8>` (feature `bytes`), like the crate's impl for `Vec<u8>`:
/// `chunk_mut` hands out the spare capacity, growing when it is empty.
///
/// ```
/// use bytes::BufMut;
/// let mut v = remapvec::RemapVec::new();
/// v.put_u16(0x0102);
/// v.put_slice(b"xy");
/// v.put_bytes(0, 2);
/// assert_eq!(v, [1, 2, b'x', b'y', 0, 0]);
/// ```
#[cfg(feature = "bytes")]
// SAFETY: `advance_mut` only counts bytes inside the capacity (it panics otherwise), and
// `chunk_mut` hands out exactly the spare capacity, so the length only ever covers bytes the
// caller was given to initialize.
unsafe impl bytes::BufMut for RemapVec<u8> {
    #[inline]
    fn remaining_mut(&self) -> usize {
        // A vector never holds more than `isize::MAX` bytes.
        isize::MAX as usize - self.len()
    }

    #[inline]
    unsafe fn advance_mut(&mut self, cnt: usize) {
        let len = self.len();
        let remaining = self.capacity() - len;
        if remaining < cnt {
            panic!("advance out of bounds: the len is {remaining} but advancing by {cnt}");
        }
        // SAFETY: `len + cnt <= capacity`; the caller initialized those bytes (the trait's
        // contract).
        unsafe { self.set_len(len + cnt) };
    }

    #[inline]
    fn chunk_mut(&mut self) -> &mut bytes::buf::UninitSlice {
        if self.capacity() == self.len() {
            self.reserve(64);
        }
        bytes::buf::UninitSlice::uninit(self.spare_capacity_mut())
    }

    #[inline]
    fn put_slice(&mut self, src: &[u8]) {
        self.extend_from_slice(src);
    }

    #[inline]
    fn put_u8(&mut self, n: u8) {
        self.push(n);
    }

    #[inline]
    fn put_bytes(&mut self, val: u8, cnt: usize) {
        // On overflow the `resize` fails with "capacity overflow".
        let new_len = self.len().saturating_add(cnt);
        self.resize(new_len, val);
    }
}
