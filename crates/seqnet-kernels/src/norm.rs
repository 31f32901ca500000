//! Layer normalization of one row (the channels of one time step).

/// A row's mean and `1/sqrt(var + eps)`, in f64: all the backward needs
/// besides the row itself (it recomputes `xhat` from them, bit for bit).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RowStats {
    pub mean: f64,
    pub inv_std: f64,
}

impl RowStats {
    /// `xhat = (x − mean)·inv_std` of one element, as the forward rounds it.
    #[inline(always)]
    fn xhat(self, x: f32) -> f32 {
        ((x as f64 - self.mean) * self.inv_std) as f32
    }
}

/// Normalizes `x` `[C]` over its channels: `xhat = (x − mean)/sqrt(var + eps)`
/// (biased variance), `y = scale ⊙ xhat + offset`. Writes `y` `[C]` and
/// returns the row's [`RowStats`] (mean and variance taken in f64).
///
/// # Panics
/// When the slices' lengths differ (a bug in the caller).
pub fn layer_norm_row(
    x: &[f32],
    scale: &[f32],
    offset: &[f32],
    eps: f64,
    y: &mut [f32],
) -> RowStats {
    let c = x.len();
    assert!(scale.len() == c && offset.len() == c && y.len() == c);
    #[cfg(target_arch = "x86_64")]
    {
        if crate::cpu::Isa::best().avx512() {
            // SAFETY: `Isa::best` allows AVX-512 only when the CPU has AVX-512F.
            return unsafe { norm_512(x, scale, offset, eps, y) };
        }
        if crate::cpu::avx2_fma() {
            // SAFETY: `avx2_fma` is true only when the CPU has AVX2 and FMA.
            return unsafe { norm_256(x, scale, offset, eps, y) };
        }
    }
    norm_body(x, scale, offset, eps, y)
}

/// `Σ f(x[i])` in f64, in 8 lanes so that it vectorizes.
#[inline(always)]
fn sum_f64(x: &[f32], f: impl Fn(f64) -> f64) -> f64 {
    let mut lanes = [0f64; 8];
    let chunks = x.chunks_exact(8);
    let tail: f64 = chunks.remainder().iter().map(|&v| f(v as f64)).sum();
    for ch in chunks {
        for l in 0..8 {
            lanes[l] += f(ch[l] as f64);
        }
    }
    lanes.iter().sum::<f64>() + tail
}

/// [`layer_norm_row`]'s loops (lengths checked by the caller).
#[inline(always)]
fn norm_body(x: &[f32], scale: &[f32], offset: &[f32], eps: f64, y: &mut [f32]) -> RowStats {
    let c = x.len();
    if c == 0 {
        return RowStats::default();
    }
    let mean = sum_f64(x, |v| v) / c as f64;
    let var = sum_f64(x, |v| (v - mean) * (v - mean)) / c as f64;
    let stats = RowStats {
        mean,
        inv_std: 1.0 / (var + eps).sqrt(),
    };
    let (y, scale, offset) = (&mut y[..c], &scale[..c], &offset[..c]);
    for i in 0..c {
        y[i] = scale[i] * stats.xhat(x[i]) + offset[i];
    }
    stats
}

/// [`norm_body`] compiled for AVX-512.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn norm_512(x: &[f32], s: &[f32], o: &[f32], eps: f64, y: &mut [f32]) -> RowStats {
    norm_body(x, s, o, eps, y)
}

/// [`norm_body`] compiled for AVX2 with FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn norm_256(x: &[f32], s: &[f32], o: &[f32], eps: f64, y: &mut [f32]) -> RowStats {
    norm_body(x, s, o, eps, y)
}

/// The backward of [`layer_norm_row`]: from the output gradient `dy` `[C]`,
/// the row's input `x` `[C]` and its [`RowStats`], writes the input gradient
/// `dx` `[C]` and adds to the learnables' gradients `dscale`, `doffset` `[C]`:
/// `dx = inv_std·(g − mean(g) − xhat·mean(g ⊙ xhat))` with `g = scale ⊙ dy`
/// (`xhat` recomputed as the forward rounded it, `inv_std` rounded to f32).
///
/// # Panics
/// When the slices' lengths differ (a bug in the caller).
#[allow(clippy::too_many_arguments)]
pub fn layer_norm_row_backward(
    dy: &[f32],
    x: &[f32],
    stats: RowStats,
    scale: &[f32],
    dx: &mut [f32],
    dscale: &mut [f32],
    doffset: &mut [f32],
) {
    let c = dy.len();
    assert!(x.len() == c && scale.len() == c && dx.len() == c);
    assert!(dscale.len() == c && doffset.len() == c);
    #[cfg(target_arch = "x86_64")]
    {
        if crate::cpu::Isa::best().avx512() {
            // SAFETY: `Isa::best` allows AVX-512 only when the CPU has AVX-512F.
            return unsafe { backward_512(dy, x, stats, scale, dx, dscale, doffset) };
        }
        if crate::cpu::avx2_fma() {
            // SAFETY: `avx2_fma` is true only when the CPU has AVX2 and FMA.
            return unsafe { backward_256(dy, x, stats, scale, dx, dscale, doffset) };
        }
    }
    backward_body(dy, x, stats, scale, dx, dscale, doffset)
}

/// [`layer_norm_row_backward`]'s loops (lengths checked by the caller), the
/// two sums in 8 f64 lanes so that they vectorize.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn backward_body(
    dy: &[f32],
    x: &[f32],
    stats: RowStats,
    scale: &[f32],
    dx: &mut [f32],
    dscale: &mut [f32],
    doffset: &mut [f32],
) {
    let c = dy.len();
    if c == 0 {
        return;
    }
    let (x, scale, dx) = (&x[..c], &scale[..c], &mut dx[..c]);
    let (dscale, doffset) = (&mut dscale[..c], &mut doffset[..c]);
    let (mut lg, mut lgx) = ([0f64; 8], [0f64; 8]);
    let whole = c / 8 * 8;
    for i0 in (0..whole).step_by(8) {
        for l in 0..8 {
            let g = (scale[i0 + l] * dy[i0 + l]) as f64;
            lg[l] += g;
            lgx[l] += g * stats.xhat(x[i0 + l]) as f64;
        }
    }
    let (mut sum_g, mut sum_gx) = (0f64, 0f64);
    for i in whole..c {
        let g = (scale[i] * dy[i]) as f64;
        sum_g += g;
        sum_gx += g * stats.xhat(x[i]) as f64;
    }
    sum_g += lg.iter().sum::<f64>();
    sum_gx += lgx.iter().sum::<f64>();
    let (mg, mgx) = (sum_g / c as f64, sum_gx / c as f64);
    let inv = stats.inv_std as f32 as f64;
    for i in 0..c {
        let h = stats.xhat(x[i]);
        dscale[i] += dy[i] * h;
        doffset[i] += dy[i];
        let g = (scale[i] * dy[i]) as f64;
        dx[i] = (inv * (g - mg - h as f64 * mgx)) as f32;
    }
}

/// [`backward_body`] compiled for AVX-512.
#[allow(clippy::too_many_arguments)]
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn backward_512(
    dy: &[f32],
    x: &[f32],
    stats: RowStats,
    scale: &[f32],
    dx: &mut [f32],
    dscale: &mut [f32],
    doffset: &mut [f32],
) {
    backward_body(dy, x, stats, scale, dx, dscale, doffset)
}

/// [`backward_body`] compiled for AVX2 with FMA.
#[allow(clippy::too_many_arguments)]
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn backward_256(
    dy: &[f32],
    x: &[f32],
    stats: RowStats,
    scale: &[f32],
    dx: &mut [f32],
    dscale: &mut [f32],
    doffset: &mut [f32],
) {
    backward_body(dy, x, stats, scale, dx, dscale, doffset)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A row with a large common offset (the sums must not lose it).
    fn row(c: usize) -> Vec<f32> {
        (0..c)
            .map(|i| ((i * 29) % 17) as f32 * 0.37 + 1e3)
            .collect()
    }

    #[test]
    fn every_version_matches_an_f64_reference() {
        for c in [1usize, 7, 8, 9, 128, 131] {
            let x = row(c);
            let scale: Vec<f32> = (0..c).map(|i| 1.0 + i as f32 * 0.01).collect();
            let offset: Vec<f32> = (0..c).map(|i| i as f32 * -0.02).collect();
            let mean = x.iter().map(|&v| v as f64).sum::<f64>() / c as f64;
            let var = x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / c as f64;
            let inv = 1.0 / (var + 1e-5).sqrt();
            let (mut y, mut y2) = (vec![0f32; c], vec![0f32; c]);
            let stats = layer_norm_row(&x, &scale, &offset, 1e-5, &mut y);
            assert_eq!(stats, norm_body(&x, &scale, &offset, 1e-5, &mut y2));
            assert_eq!(y, y2);
            assert!((stats.mean - mean).abs() <= 1e-9 * mean.abs());
            assert!((stats.inv_std - inv).abs() <= 1e-6 * inv);
            for i in 0..c {
                let want = (x[i] as f64 - mean) * inv;
                let h = stats.xhat(x[i]);
                assert!((h as f64 - want).abs() < 1e-5, "{c} {i}");
                assert!((y[i] - (scale[i] * h + offset[i])).abs() < 1e-6);
            }
        }
    }

    #[test]
    fn backward_versions_match_a_plain_f64_formula() {
        for c in [1usize, 3, 8, 20, 128, 131] {
            let dy: Vec<f32> = (0..c).map(|i| ((i * 13) % 7) as f32 * 0.3 - 1.0).collect();
            let x = row(c);
            let scale: Vec<f32> = (0..c).map(|i| 0.5 + i as f32 * 0.03).collect();
            let stats = layer_norm_row(&x, &scale, &scale, 1e-5, &mut vec![0f32; c]);
            let xhat: Vec<f32> = x
                .iter()
                .map(|&v| ((v as f64 - stats.mean) * stats.inv_std) as f32)
                .collect();
            let (inv, n) = (stats.inv_std as f32 as f64, c as f64);
            let g: Vec<f64> = (0..c).map(|i| (scale[i] * dy[i]) as f64).collect();
            let mg = g.iter().sum::<f64>() / n;
            let mgx = g.iter().zip(&xhat).map(|(a, &b)| a * b as f64).sum::<f64>() / n;
            let mut outs = Vec::new();
            for plain in [false, true] {
                let (mut dx, mut ds, mut doff) = (vec![0f32; c], vec![1f32; c], vec![2f32; c]);
                if plain {
                    backward_body(&dy, &x, stats, &scale, &mut dx, &mut ds, &mut doff);
                } else {
                    layer_norm_row_backward(&dy, &x, stats, &scale, &mut dx, &mut ds, &mut doff);
                }
                for i in 0..c {
                    let want = inv * (g[i] - mg - xhat[i] as f64 * mgx);
                    assert!((dx[i] as f64 - want).abs() < 1e-5 * inv.max(1.0), "{c} {i}");
                    assert_eq!(ds[i], 1.0 + dy[i] * xhat[i]);
                    assert_eq!(doff[i], 2.0 + dy[i]);
                }
                outs.push(dx);
            }
            assert_eq!(outs[0], outs[1]);
        }
    }
}
