//! [`AlignedBuf`]: f32 buffers aligned to a cache line.

/// A zeroed `f32` buffer whose start is aligned to 64 bytes (a cache line
/// and an AVX-512 register): packed weights read with full-register loads
/// then never straddle two cache lines. (A `Vec<f32>` of this size comes
/// from `mmap` at 16 bytes past a page boundary.)
#[derive(Debug, Clone, Default)]
pub struct AlignedBuf {
    blocks: Vec<Line>,
    len: usize,
}

#[derive(Debug, Clone, Copy, Default)]
#[repr(C, align(64))]
struct Line([f32; 16]);

impl AlignedBuf {
    /// `len` zeros, reusing the allocation.
    pub fn zeroed(&mut self, len: usize) {
        self.blocks.clear();
        self.blocks.resize(len.div_ceil(16), Line::default());
        self.len = len;
    }

    /// The `len` values.
    pub fn as_slice(&self) -> &[f32] {
        // SAFETY: `Line` is `repr(C)` around `[f32; 16]` (size 64, no
        // padding), so `blocks` is `16·blocks.len() ≥ len` contiguous,
        // initialized f32 values, borrowed for as long as `self` is.
        unsafe { std::slice::from_raw_parts(self.blocks.as_ptr().cast(), self.len) }
    }

    /// The `len` values, mutably.
    pub fn as_mut_slice(&mut self) -> &mut [f32] {
        // SAFETY: as in `as_slice`, borrowed mutably through `&mut self`.
        unsafe { std::slice::from_raw_parts_mut(self.blocks.as_mut_ptr().cast(), self.len) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_zeros_of_any_length() {
        let mut b = AlignedBuf::default();
        for len in [0, 1, 16, 37] {
            b.zeroed(len);
            assert_eq!(b.as_slice().len(), len);
            assert!(b.as_slice().iter().all(|&v| v == 0.0));
            assert_eq!(b.as_slice().as_ptr() as usize % 64, 0);
            b.as_mut_slice().fill(1.0);
        }
    }
}
