//! Buffers written once: a new vector whose every element the caller's fill
//! writes, in parallel blocks of rows, with no zeroing pass before.

use rayon::prelude::*;

/// A new `[rows, width]` buffer whose rows `fill(first, block)` writes, in
/// parallel blocks of at most `block_rows` rows (`first` is the block's first
/// row, `block` `[r, width]`), each block written once: no zeroing pass
/// before (as `vec![0.0; n]` costs when the allocator recycles memory), no
/// page touched twice. `block` arrives holding unspecified values: `fill`
/// writes every element.
pub fn fresh_rows(
    rows: usize,
    width: usize,
    block_rows: usize,
    fill: impl Fn(usize, &mut [f32]) + Sync,
) -> Vec<f32> {
    let n = rows * width;
    let mut dst: Vec<f32> = Vec::with_capacity(n);
    if n > 0 {
        let block = block_rows.max(1) * width;
        dst.spare_capacity_mut()[..n]
            .par_chunks_mut(block)
            .enumerate()
            .for_each_init(Vec::new, |buf: &mut Vec<f32>, (i, out)| {
                buf.resize(out.len(), 0.0);
                fill(i * block_rows.max(1), buf);
                // SAFETY: `buf` holds `out.len()` initialized values and is a
                // different allocation from `out`; `MaybeUninit<f32>` has
                // `f32`'s layout. (Element by element, `MaybeUninit::write`
                // did not become a `memcpy`.)
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        buf.as_ptr(),
                        out.as_mut_ptr().cast::<f32>(),
                        out.len(),
                    )
                };
            });
    }
    // SAFETY: the chunks cover all `n` elements of the spare capacity
    // (`capacity ≥ n`), and every element of each chunk was copied from `buf`
    // (resized to the chunk's length) above.
    unsafe { dst.set_len(n) };
    dst
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_rows_writes_every_row_once() {
        for (rows, width, block) in [(0, 3, 2), (1, 1, 1), (7, 3, 2), (100, 5, 16), (33, 0, 4)] {
            let got = fresh_rows(rows, width, block, |first, out| {
                for (i, v) in out.iter_mut().enumerate() {
                    *v = (first * width + i) as f32;
                }
            });
            let want: Vec<f32> = (0..rows * width).map(|i| i as f32).collect();
            assert_eq!(got, want, "{rows}x{width} in blocks of {block}");
        }
    }
}
