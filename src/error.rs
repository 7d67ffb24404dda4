//! `TryReserveError`: why a `try_reserve` (or any fallible growth) failed.

use core::alloc::Layout;
use core::fmt;

/// The error of [`RemapVec::try_reserve`](crate::RemapVec::try_reserve) and the other
/// fallible growth methods. The vector is unchanged when it is returned.
///
/// ```
/// use remapvec::{RemapVec, TryReserveErrorKind};
/// let mut v: RemapVec<u64> = RemapVec::new();
/// let err = v.try_reserve(usize::MAX).unwrap_err();
/// assert_eq!(err.kind(), TryReserveErrorKind::CapacityOverflow);
/// assert_eq!(err.to_string(), "capacity overflow: the requested capacity exceeds isize::MAX bytes");
/// ```
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct TryReserveError {
    kind: TryReserveErrorKind,
}

/// What went wrong, see [`TryReserveError::kind`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum TryReserveErrorKind {
    /// The requested capacity exceeds `isize::MAX` bytes (or `usize` elements).
    CapacityOverflow,
    /// The allocator or the kernel refused the memory.
    AllocError {
        /// The layout of the allocation that failed.
        layout: Layout,
        /// The OS error number when the kernel refused (`ENOMEM` for an exhausted address space
        /// or `RLIMIT_AS`); `None` when the heap allocator returned null.
        os_error: Option<i32>,
    },
}

impl TryReserveError {
    pub(crate) const fn capacity_overflow() -> Self {
        TryReserveError {
            kind: TryReserveErrorKind::CapacityOverflow,
        }
    }

    pub(crate) const fn alloc(layout: Layout, os_error: Option<i32>) -> Self {
        TryReserveError {
            kind: TryReserveErrorKind::AllocError { layout, os_error },
        }
    }

    /// What went wrong.
    ///
    /// ```
    /// use remapvec::{RemapVec, TryReserveErrorKind};
    /// let mut v: RemapVec<u16> = RemapVec::new();
    /// let e = v.try_reserve(usize::MAX / 2 + 1).unwrap_err();
    /// assert!(matches!(e.kind(), TryReserveErrorKind::CapacityOverflow));
    /// ```
    pub fn kind(&self) -> TryReserveErrorKind {
        self.kind
    }

    /// The OS error behind an allocation failure, if the kernel reported one.
    ///
    /// ```
    /// # use remapvec::RemapVec;
    /// let mut v: RemapVec<u8> = RemapVec::new();
    /// // isize::MAX bytes cannot be mapped: either overflow or ENOMEM from the kernel.
    /// if let Err(e) = v.try_reserve(isize::MAX as usize - 4096) {
    ///     if let Some(os) = e.os_error() {
    ///         println!("kernel said: {os}");
    ///     }
    /// }
    /// ```
    pub fn os_error(&self) -> Option<std::io::Error> {
        match self.kind {
            TryReserveErrorKind::AllocError {
                os_error: Some(code),
                ..
            } => Some(std::io::Error::from_raw_os_error(code)),
            _ => None,
        }
    }
}

impl From<TryReserveErrorKind> for TryReserveError {
    fn from(kind: TryReserveErrorKind) -> Self {
        TryReserveError { kind }
    }
}

impl fmt::Display for TryReserveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            TryReserveErrorKind::CapacityOverflow => {
                f.write_str("capacity overflow: the requested capacity exceeds isize::MAX bytes")
            }
            TryReserveErrorKind::AllocError { layout, os_error } => {
                write!(
                    f,
                    "memory allocation of {} bytes (alignment {}) failed",
                    layout.size(),
                    layout.align()
                )?;
                if let Some(code) = os_error {
                    write!(f, ": {}", std::io::Error::from_raw_os_error(code))?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for TryReserveError {}
