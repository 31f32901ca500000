//! Softmax over the leading part of a row, the rest masked: attention scores
//! over the keys a query may see.

/// Softmax of `row[..visible]` in place; `row[visible..]` is set to 0 (masked
/// keys: padded steps, or future steps of a causal mask). `visible` 0 gives
/// an all-zero row (a query with nothing to attend to attends to nothing).
///
/// The maximum is subtracted first, so large scores do not overflow.
///
/// # Panics
/// When `visible > row.len()` (a bug in the caller).
pub fn masked_softmax_row(row: &mut [f32], visible: usize) {
    let (seen, masked) = row.split_at_mut(visible);
    masked.fill(0.0);
    if seen.is_empty() {
        return;
    }
    let max = seen.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0f32;
    for v in seen.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    let inv = 1.0 / sum;
    seen.iter_mut().for_each(|v| *v *= inv);
}

/// The backward of a softmax row: from the probabilities `p` `[n]` and their
/// gradient `dp` `[n]`, the scores' gradient `ds = p ⊙ (dp − Σ p ⊙ dp)`,
/// written over `dp`. Masked keys have `p = 0`, so they get 0.
///
/// # Panics
/// When the lengths differ (a bug in the caller).
pub fn softmax_row_backward(p: &[f32], dp: &mut [f32]) {
    assert_eq!(p.len(), dp.len(), "softmax backward: lengths differ");
    let dot: f32 = p.iter().zip(dp.iter()).map(|(a, b)| a * b).sum();
    for (d, &pv) in dp.iter_mut().zip(p) {
        *d = pv * (*d - dot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_row_sums_to_one_over_visible_keys() {
        let mut r = [1.0f32, 2.0, 3.0, 100.0];
        masked_softmax_row(&mut r, 3);
        let e = [1f32.exp(), 2f32.exp(), 3f32.exp()];
        let s: f32 = e.iter().sum();
        for i in 0..3 {
            assert!((r[i] - e[i] / s).abs() < 1e-6);
        }
        assert_eq!(r[3], 0.0);
        let mut z = [5.0f32, 6.0];
        masked_softmax_row(&mut z, 0);
        assert_eq!(z, [0.0, 0.0]);
    }

    #[test]
    fn backward_matches_finite_differences() {
        let s = [0.3f32, -1.2, 0.7];
        let dp = [0.5f32, -0.25, 2.0];
        let loss = |s: &[f32]| {
            let mut p = s.to_vec();
            masked_softmax_row(&mut p, 3);
            p.iter().zip(&dp).map(|(a, b)| a * b).sum::<f32>()
        };
        let mut p = s.to_vec();
        masked_softmax_row(&mut p, 3);
        let mut g = dp;
        softmax_row_backward(&p, &mut g);
        for i in 0..3 {
            let (mut a, mut b) = (s, s);
            a[i] += 1e-3;
            b[i] -= 1e-3;
            let num = (loss(&a) - loss(&b)) / 2e-3;
            assert!((num - g[i]).abs() < 1e-3, "{i}: {num} vs {}", g[i]);
        }
    }
}
