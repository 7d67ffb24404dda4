//! Zeroed vectors for element types whose all-zero bytes are a valid value
//! ([`bytemuck::Zeroable`]), and the `remapvec!` macro. Memory known to be zero is not written:
//! a fresh mapping, the grown tail of one, or a kept mapping beyond its dirty extent.

use super::RemapVec;
use crate::error::TryReserveError;
use crate::raw::{RawVec, VecOptions, handle_error};
use bytemuck::Zeroable;

impl<T: Zeroable> RemapVec<T> {
    /// A vector of `len` zero elements. From the heap threshold on (128 KiB by default) it is a
    /// fresh mapping whose pages the kernel provides on first touch: creating a 1 GiB zeroed
    /// vector writes nothing and faults no page, like `vec![0; n]` (`calloc`).
    ///
    /// # Panics
    /// On capacity overflow; calls `handle_alloc_error` when memory is refused.
    ///
    /// ```
    /// # use remapvec::RemapVec;
    /// let v: RemapVec<u64> = RemapVec::zeroed(1 << 27); // 1 GiB, nothing written
    /// assert_eq!(v.len(), 1 << 27);
    /// assert!(v[..1000].iter().chain(&v[v.len() - 1000..]).all(|&x| x == 0));
    /// ```
    #[track_caller]
    pub fn zeroed(len: usize) -> Self {
        Self::zeroed_with_options(len, VecOptions::new())
    }

    /// [`zeroed`](Self::zeroed) with options.
    ///
    /// # Panics
    /// As [`zeroed`](Self::zeroed).
    ///
    /// ```
    /// # use remapvec::{RemapVec, VecOptions};
    /// let v: RemapVec<f32> = RemapVec::zeroed_with_options(1 << 20, VecOptions::new().huge_pages(true));
    /// assert_eq!(v[12345], 0.0);
    /// ```
    #[track_caller]
    pub fn zeroed_with_options(len: usize, opts: VecOptions) -> Self {
        match Self::try_zeroed_with_options(len, opts) {
            Ok(v) => v,
            Err(e) => handle_error(e),
        }
    }

    /// [`zeroed`](Self::zeroed), or an error.
    ///
    /// # Errors
    /// [`TryReserveError`] with kind `CapacityOverflow` when `len` elements exceed `isize::MAX`
    /// bytes, or `AllocError` when the heap or the kernel refuses the memory.
    ///
    /// ```
    /// # use remapvec::RemapVec;
    /// assert!(RemapVec::<u64>::try_zeroed(usize::MAX).is_err());
    /// assert_eq!(RemapVec::<u8>::try_zeroed(3)?, [0, 0, 0]);
    /// # Ok::<(), remapvec::TryReserveError>(())
    /// ```
    pub fn try_zeroed(len: usize) -> Result<Self, TryReserveError> {
        Self::try_zeroed_with_options(len, VecOptions::new())
    }

    /// [`try_zeroed`](Self::try_zeroed) with options.
    ///
    /// # Errors
    /// As [`try_zeroed`](Self::try_zeroed).
    ///
    /// ```
    /// # use remapvec::{RemapVec, VecOptions};
    /// let v = RemapVec::<u16>::try_zeroed_with_options(10, VecOptions::new().heap_threshold(0))?;
    /// assert!(v.is_mapped() && v.iter().all(|&x| x == 0));
    /// # Ok::<(), remapvec::TryReserveError>(())
    /// ```
    pub fn try_zeroed_with_options(len: usize, opts: VecOptions) -> Result<Self, TryReserveError> {
        let mut buf = RawVec::new(opts);
        buf.try_reserve_zeroed(0, len, true)?;
        Ok(RemapVec { buf, len })
    }

    /// Resizes to `new_len`: new elements are zero, written only where the memory may be dirty
    /// (growth into a fresh or grown mapping writes nothing). Shorter: like
    /// [`truncate`](Self::truncate).
    ///
    /// # Panics
    /// On capacity overflow; calls `handle_alloc_error` when memory is refused.
    ///
    /// ```
    /// # use remapvec::RemapVec;
    /// let mut v = RemapVec::from([7u32, 8]);
    /// v.resize_zeroed(4);
    /// assert_eq!(v, [7, 8, 0, 0]);
    /// v.resize_zeroed(1);
    /// assert_eq!(v, [7]);
    /// ```
    #[track_caller]
    pub fn resize_zeroed(&mut self, new_len: usize) {
        if let Err(e) = self.try_resize_zeroed(new_len) {
            handle_error(e)
        }
    }

    /// [`resize_zeroed`](Self::resize_zeroed), or an error with the vector unchanged.
    ///
    /// # Errors
    /// As [`try_reserve`](Self::try_reserve).
    ///
    /// ```
    /// # use remapvec::RemapVec;
    /// let mut v = RemapVec::from([1u8]);
    /// assert!(v.try_resize_zeroed(usize::MAX).is_err());
    /// assert_eq!(v, [1]);
    /// ```
    pub fn try_resize_zeroed(&mut self, new_len: usize) -> Result<(), TryReserveError> {
        if new_len <= self.len {
            self.truncate(new_len);
            return Ok(());
        }
        self.try_extend_zeroed(new_len - self.len)
    }

    /// Appends `n` zero elements (see [`resize_zeroed`](Self::resize_zeroed)).
    ///
    /// # Panics
    /// On capacity overflow; calls `handle_alloc_error` when memory is refused.
    ///
    /// ```
    /// # use remapvec::RemapVec;
    /// let mut v = RemapVec::from([1i64]);
    /// v.extend_zeroed(2);
    /// assert_eq!(v, [1, 0, 0]);
    /// ```
    #[track_caller]
    pub fn extend_zeroed(&mut self, n: usize) {
        if let Err(e) = self.try_extend_zeroed(n) {
            handle_error(e)
        }
    }

    /// [`extend_zeroed`](Self::extend_zeroed), or an error with the vector unchanged.
    ///
    /// # Errors
    /// As [`try_reserve`](Self::try_reserve).
    ///
    /// ```
    /// # use remapvec::RemapVec;
    /// let mut v: RemapVec<u8> = RemapVec::new();
    /// v.try_extend_zeroed(5)?;
    /// assert_eq!(v, [0; 5]);
    /// # Ok::<(), remapvec::TryReserveError>(())
    /// ```
    pub fn try_extend_zeroed(&mut self, n: usize) -> Result<(), TryReserveError> {
        self.buf.try_reserve_zeroed(self.len, n, false)?;
        // The `n` slots after `len` are zero bytes, a valid `T` (`T: Zeroable`).
        self.len += n;
        Ok(())
    }
}

/// Support for [`remapvec!`](crate::remapvec): for a literal element, picks the zero-lazy path
/// when its type is plain data (`bytemuck::Pod`) and its bytes are all zero, `Clone` otherwise
/// (chosen at the call site by method resolution, "autoref specialization": the first trait
/// applies only to `Pod` types).
#[doc(hidden)]
pub mod __private {
    use super::RemapVec;
    use core::cell::Cell;

    pub struct Elem<T>(pub Cell<Option<T>>);

    impl<T> Elem<T> {
        pub fn new(x: T) -> Self {
            Elem(Cell::new(Some(x)))
        }
        fn take(&self) -> T {
            match self.0.take() {
                Some(x) => x,
                None => unreachable!("the element is taken once"),
            }
        }
    }

    pub trait ViaZeroed<T> {
        fn make(&self, n: usize) -> RemapVec<T>;
    }

    impl<T: bytemuck::Pod> ViaZeroed<T> for Elem<T> {
        #[track_caller]
        fn make(&self, n: usize) -> RemapVec<T> {
            let x = self.take();
            if bytemuck::bytes_of(&x).iter().all(|&b| b == 0) {
                RemapVec::zeroed(n)
            } else {
                from_elem(x, n)
            }
        }
    }

    pub trait ViaClone<T> {
        fn make(&self, n: usize) -> RemapVec<T>;
    }

    impl<T: Clone> ViaClone<T> for &Elem<T> {
        #[track_caller]
        fn make(&self, n: usize) -> RemapVec<T> {
            from_elem(self.take(), n)
        }
    }

    #[track_caller]
    pub fn from_elem<T: Clone>(x: T, n: usize) -> RemapVec<T> {
        let mut v = RemapVec::with_capacity(n);
        v.resize(n, x);
        v
    }
}

/// Creates a [`RemapVec`] like [`vec!`]: `remapvec![]`, `remapvec![a, b, c]`,
/// `remapvec![x; n]`.
///
/// `remapvec![x; n]` clones `x` (`n` times, moving it into the last slot). When `x` is a
/// numeric literal zero (`0`, `0u8`, `0.0`, ...), it is [`RemapVec::zeroed`] instead: nothing is
/// written, and a huge buffer costs nothing until it is touched, like `vec![0; n]`. For other
/// zero values (`[0u8; 4]`, a constant, `T::zeroed()`), call [`RemapVec::zeroed`] directly:
/// a macro cannot tell them apart while their type is still being inferred.
///
/// ```
/// use remapvec::{RemapVec, remapvec};
/// let a: RemapVec<u32> = remapvec![];
/// assert!(a.is_empty());
/// let b = remapvec![1, 2, 3];
/// assert_eq!(b, [1, 2, 3]);
/// let c = remapvec![String::from("x"); 2];
/// assert_eq!(c, ["x", "x"]);
/// let big = remapvec![0u8; 1 << 30]; // 1 GiB, zero-lazy
/// assert_eq!(big[1 << 29], 0);
/// ```
#[macro_export]
macro_rules! remapvec {
    () => {
        $crate::RemapVec::new()
    };
    // A literal's type is a primitive, known or an integer/float being inferred (all `Pod`
    // when numeric): the zero-lazy path can be chosen without fixing the type too early.
    ($elem:literal; $n:expr) => {{
        #[allow(unused_imports)]
        use $crate::__private::{ViaClone as _, ViaZeroed as _};
        (&$crate::__private::Elem::new($elem)).make($n)
    }};
    // Any other expression may have a type not inferred yet (`None`, `Default::default()`):
    // cloned, as `vec!` does.
    ($elem:expr; $n:expr) => {
        $crate::__private::from_elem($elem, $n)
    };
    ($($x:expr),+ $(,)?) => {
        $crate::RemapVec::from(<[_]>::into_vec(::std::boxed::Box::new([$($x),+])))
    };
}
