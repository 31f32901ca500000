//! [`SharedMut`]: one buffer written in disjoint parts by several threads.

/// A raw pointer that the threads of a pass share to write disjoint parts of
/// one buffer (the rows or units each thread owns).
#[derive(Debug, Clone, Copy)]
pub(crate) struct SharedMut(pub *mut f32);

// SAFETY: the pointer is only an address; the kernels that share it write
// disjoint elements from each thread and meet (at a barrier, or at the end
// of the pass) before reading what another thread wrote.
unsafe impl Send for SharedMut {}
// SAFETY: as for `Send`.
unsafe impl Sync for SharedMut {}

impl SharedMut {
    /// `len` values at `offset`, as a mutable slice.
    ///
    /// # Safety
    /// The range is inside the buffer and no other slice of it is alive.
    #[inline(always)]
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn at_mut<'a>(self, offset: usize, len: usize) -> &'a mut [f32] {
        // SAFETY: the caller's contract.
        unsafe { std::slice::from_raw_parts_mut(self.0.add(offset), len) }
    }
}
