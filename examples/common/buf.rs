//! `Buf`: the few growable-buffer operations the comparison workloads use (push, extend, reserve,
//! resize, slices), implemented for std `Vec`, `RemapVec` and `allocator_api2::vec::Vec` in any
//! allocator, so that one workload function runs on each of them.

// Not every example uses every method.
#![allow(dead_code)]

use allocator_api2::alloc::Allocator;
use remapvec::RemapVec;

/// A growable buffer of `T`.
pub trait Buf<T> {
    /// Appends one element.
    fn push(&mut self, x: T);
    /// Appends a copy of `s`.
    fn extend_from_slice(&mut self, s: &[T])
    where
        T: Clone;
    /// Makes room for exactly `additional` more elements.
    fn reserve_exact(&mut self, additional: usize);
    /// Sets the length to `n`, filling new elements with `x`.
    fn resize(&mut self, n: usize, x: T)
    where
        T: Clone;
    /// Elements that fit without growing.
    fn capacity(&self) -> usize;
    /// The elements.
    fn as_slice(&self) -> &[T];
    /// The elements, mutable.
    fn as_mut_slice(&mut self) -> &mut [T];
}

macro_rules! impl_buf {
    ($($gen:tt)*) => {
        fn push(&mut self, x: T) {
            self.push(x);
        }
        fn extend_from_slice(&mut self, s: &[T])
        where
            T: Clone,
        {
            self.extend_from_slice(s);
        }
        fn reserve_exact(&mut self, additional: usize) {
            self.reserve_exact(additional);
        }
        fn resize(&mut self, n: usize, x: T)
        where
            T: Clone,
        {
            self.resize(n, x);
        }
        fn capacity(&self) -> usize {
            self.capacity()
        }
        fn as_slice(&self) -> &[T] {
            self
        }
        fn as_mut_slice(&mut self) -> &mut [T] {
            self
        }
    };
}

impl<T> Buf<T> for Vec<T> {
    impl_buf!();
}

impl<T> Buf<T> for RemapVec<T> {
    impl_buf!();
}

impl<T, A: Allocator> Buf<T> for allocator_api2::vec::Vec<T, A> {
    impl_buf!();
}

/// `io::Write` into a byte buffer (for serde_json).
pub struct Writer<'a, B>(pub &'a mut B);

impl<B: Buf<u8>> std::io::Write for Writer<'_, B> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
