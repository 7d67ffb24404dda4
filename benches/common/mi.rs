//! mimalloc as an `allocator_api2` allocator, for the benches and the strategy table: a
//! production copying allocator to compare against.

use std::alloc::{GlobalAlloc, Layout};

/// mimalloc as an `allocator_api2` allocator.
#[derive(Clone, Copy)]
pub struct Mi;

// SAFETY: forwards to mimalloc's GlobalAlloc, which returns blocks valid for the layout
// until freed with the same layout.
unsafe impl allocator_api2::alloc::Allocator for Mi {
    fn allocate(
        &self,
        layout: Layout,
    ) -> Result<core::ptr::NonNull<[u8]>, allocator_api2::alloc::AllocError> {
        if layout.size() == 0 {
            let p = core::ptr::without_provenance_mut::<u8>(layout.align());
            let p = core::ptr::NonNull::new(p).ok_or(allocator_api2::alloc::AllocError)?;
            return Ok(core::ptr::NonNull::slice_from_raw_parts(p, 0));
        }
        // SAFETY: nonzero size.
        let p = unsafe { mimalloc::MiMalloc.alloc(layout) };
        let p = core::ptr::NonNull::new(p).ok_or(allocator_api2::alloc::AllocError)?;
        Ok(core::ptr::NonNull::slice_from_raw_parts(p, layout.size()))
    }
    unsafe fn deallocate(&self, ptr: core::ptr::NonNull<u8>, layout: Layout) {
        if layout.size() != 0 {
            // SAFETY: allocated above with this layout.
            unsafe { mimalloc::MiMalloc.dealloc(ptr.as_ptr(), layout) };
        }
    }
    unsafe fn grow(
        &self,
        ptr: core::ptr::NonNull<u8>,
        old: Layout,
        new: Layout,
    ) -> Result<core::ptr::NonNull<[u8]>, allocator_api2::alloc::AllocError> {
        if old.size() == 0 || old.align() != new.align() {
            let block = self.allocate(new)?;
            // SAFETY: the caller's block holds `old.size()` bytes; the new one is larger.
            unsafe {
                core::ptr::copy_nonoverlapping(ptr.as_ptr(), block.as_ptr().cast(), old.size());
                self.deallocate(ptr, old);
            }
            return Ok(block);
        }
        // SAFETY: `ptr` is mimalloc's block of layout `old`; mimalloc's realloc copies.
        let p = unsafe { mimalloc::MiMalloc.realloc(ptr.as_ptr(), old, new.size()) };
        let p = core::ptr::NonNull::new(p).ok_or(allocator_api2::alloc::AllocError)?;
        Ok(core::ptr::NonNull::slice_from_raw_parts(p, new.size()))
    }
}
