//! Layer normalization of one row (the channels of one time step).

/// Normalizes `x` `[C]` over its channels: `xhat = (x − mean)/sqrt(var + eps)`
/// (biased variance), `y = scale ⊙ xhat + offset`. Writes `y` and `xhat`
/// (`[C]` each, kept for the backward) and returns `1/sqrt(var + eps)`.
/// Mean and variance are taken in f64.
///
/// # Panics
/// When the slices' lengths differ (a bug in the caller).
pub fn layer_norm_row(
    x: &[f32],
    scale: &[f32],
    offset: &[f32],
    eps: f64,
    y: &mut [f32],
    xhat: &mut [f32],
) -> f32 {
    let c = x.len();
    assert!(scale.len() == c && offset.len() == c && y.len() == c && xhat.len() == c);
    #[cfg(target_arch = "x86_64")]
    {
        if crate::cpu::Isa::best().avx512() {
            // SAFETY: `Isa::best` allows AVX-512 only when the CPU has AVX-512F.
            return unsafe { norm_512(x, scale, offset, eps, y, xhat) };
        }
        if crate::cpu::avx2_fma() {
            // SAFETY: `avx2_fma` is true only when the CPU has AVX2 and FMA.
            return unsafe { norm_256(x, scale, offset, eps, y, xhat) };
        }
    }
    norm_body(x, scale, offset, eps, y, xhat)
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
fn norm_body(
    x: &[f32],
    scale: &[f32],
    offset: &[f32],
    eps: f64,
    y: &mut [f32],
    xhat: &mut [f32],
) -> f32 {
    let c = x.len();
    if c == 0 {
        return 0.0;
    }
    let mean = sum_f64(x, |v| v) / c as f64;
    let var = sum_f64(x, |v| (v - mean) * (v - mean)) / c as f64;
    let inv = 1.0 / (var + eps).sqrt();
    let (y, xhat, scale, offset) = (&mut y[..c], &mut xhat[..c], &scale[..c], &offset[..c]);
    for i in 0..c {
        let h = ((x[i] as f64 - mean) * inv) as f32;
        xhat[i] = h;
        y[i] = scale[i] * h + offset[i];
    }
    inv as f32
}

/// [`norm_body`] compiled for AVX-512.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn norm_512(x: &[f32], s: &[f32], o: &[f32], eps: f64, y: &mut [f32], h: &mut [f32]) -> f32 {
    norm_body(x, s, o, eps, y, h)
}

/// [`norm_body`] compiled for AVX2 with FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn norm_256(x: &[f32], s: &[f32], o: &[f32], eps: f64, y: &mut [f32], h: &mut [f32]) -> f32 {
    norm_body(x, s, o, eps, y, h)
}

/// The backward of [`layer_norm_row`]: from the output gradient `dy` `[C]`,
/// the kept `xhat` `[C]` and `inv_std`, writes the input gradient `dx` `[C]`
/// and adds to the learnables' gradients `dscale`, `doffset` `[C]`:
/// `dx = inv_std·(g − mean(g) − xhat·mean(g ⊙ xhat))` with `g = scale ⊙ dy`.
///
/// # Panics
/// When the slices' lengths differ (a bug in the caller).
#[allow(clippy::too_many_arguments)]
pub fn layer_norm_row_backward(
    dy: &[f32],
    xhat: &[f32],
    inv_std: f32,
    scale: &[f32],
    dx: &mut [f32],
    dscale: &mut [f32],
    doffset: &mut [f32],
) {
    let c = dy.len();
    assert!(xhat.len() == c && scale.len() == c && dx.len() == c);
    assert!(dscale.len() == c && doffset.len() == c);
    #[cfg(target_arch = "x86_64")]
    {
        if crate::cpu::Isa::best().avx512() {
            // SAFETY: `Isa::best` allows AVX-512 only when the CPU has AVX-512F.
            return unsafe { backward_512(dy, xhat, inv_std, scale, dx, dscale, doffset) };
        }
        if crate::cpu::avx2_fma() {
            // SAFETY: `avx2_fma` is true only when the CPU has AVX2 and FMA.
            return unsafe { backward_256(dy, xhat, inv_std, scale, dx, dscale, doffset) };
        }
    }
    backward_body(dy, xhat, inv_std, scale, dx, dscale, doffset)
}

/// [`layer_norm_row_backward`]'s loops (lengths checked by the caller), the
/// two sums in 8 f64 lanes so that they vectorize.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn backward_body(
    dy: &[f32],
    xhat: &[f32],
    inv_std: f32,
    scale: &[f32],
    dx: &mut [f32],
    dscale: &mut [f32],
    doffset: &mut [f32],
) {
    let c = dy.len();
    if c == 0 {
        return;
    }
    let (xhat, scale, dx) = (&xhat[..c], &scale[..c], &mut dx[..c]);
    let (dscale, doffset) = (&mut dscale[..c], &mut doffset[..c]);
    let (mut lg, mut lgx) = ([0f64; 8], [0f64; 8]);
    let whole = c / 8 * 8;
    for i0 in (0..whole).step_by(8) {
        for l in 0..8 {
            let g = (scale[i0 + l] * dy[i0 + l]) as f64;
            lg[l] += g;
            lgx[l] += g * xhat[i0 + l] as f64;
        }
    }
    let (mut sum_g, mut sum_gx) = (0f64, 0f64);
    for i in whole..c {
        let g = (scale[i] * dy[i]) as f64;
        sum_g += g;
        sum_gx += g * xhat[i] as f64;
    }
    sum_g += lg.iter().sum::<f64>();
    sum_gx += lgx.iter().sum::<f64>();
    for i in 0..c {
        dscale[i] += dy[i] * xhat[i];
        doffset[i] += dy[i];
    }
    let (mg, mgx) = (sum_g / c as f64, sum_gx / c as f64);
    for i in 0..c {
        let g = (scale[i] * dy[i]) as f64;
        dx[i] = (inv_std as f64 * (g - mg - xhat[i] as f64 * mgx)) as f32;
    }
}

/// [`backward_body`] compiled for AVX-512.
#[allow(clippy::too_many_arguments)]
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn backward_512(
    dy: &[f32],
    xhat: &[f32],
    inv_std: f32,
    scale: &[f32],
    dx: &mut [f32],
    dscale: &mut [f32],
    doffset: &mut [f32],
) {
    backward_body(dy, xhat, inv_std, scale, dx, dscale, doffset)
}

/// [`backward_body`] compiled for AVX2 with FMA.
#[allow(clippy::too_many_arguments)]
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn backward_256(
    dy: &[f32],
    xhat: &[f32],
    inv_std: f32,
    scale: &[f32],
    dx: &mut [f32],
    dscale: &mut [f32],
    doffset: &mut [f32],
) {
    backward_body(dy, xhat, inv_std, scale, dx, dscale, doffset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_version_matches_an_f64_reference() {
        for c in [1usize, 7, 8, 9, 128, 131] {
            let x: Vec<f32> = (0..c)
                .map(|i| ((i * 29) % 17) as f32 * 0.37 + 1e3)
                .collect();
            let scale: Vec<f32> = (0..c).map(|i| 1.0 + i as f32 * 0.01).collect();
            let offset: Vec<f32> = (0..c).map(|i| i as f32 * -0.02).collect();
            let mean = x.iter().map(|&v| v as f64).sum::<f64>() / c as f64;
            let var = x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / c as f64;
            let inv = 1.0 / (var + 1e-5).sqrt();
            let (mut y, mut h) = (vec![0f32; c], vec![0f32; c]);
            let mut versions: Vec<f32> =
                vec![layer_norm_row(&x, &scale, &offset, 1e-5, &mut y, &mut h)];
            let (mut y2, mut h2) = (vec![0f32; c], vec![0f32; c]);
            versions.push(norm_body(&x, &scale, &offset, 1e-5, &mut y2, &mut h2));
            assert_eq!((&y, &h), (&y2, &h2));
            for v in versions {
                assert!((v as f64 - inv).abs() <= 1e-6 * inv);
            }
            for i in 0..c {
                let want = (x[i] as f64 - mean) * inv;
                assert!((h[i] as f64 - want).abs() < 1e-5, "{c} {i}");
                assert!((y[i] - (scale[i] * h[i] + offset[i])).abs() < 1e-6);
            }
        }
    }

    #[test]
    fn backward_versions_match_a_plain_f64_formula() {
        for c in [3usize, 8, 20, 128] {
            let dy: Vec<f32> = (0..c).map(|i| ((i * 13) % 7) as f32 * 0.3 - 1.0).collect();
            let xhat: Vec<f32> = (0..c).map(|i| ((i * 5) % 9) as f32 * 0.25 - 1.0).collect();
            let scale: Vec<f32> = (0..c).map(|i| 0.5 + i as f32 * 0.03).collect();
            let (inv, n) = (1.7f32, c as f64);
            let g: Vec<f64> = (0..c).map(|i| (scale[i] * dy[i]) as f64).collect();
            let mg = g.iter().sum::<f64>() / n;
            let mgx = g.iter().zip(&xhat).map(|(a, &b)| a * b as f64).sum::<f64>() / n;
            let mut outs = Vec::new();
            for plain in [false, true] {
                let (mut dx, mut ds, mut doff) = (vec![0f32; c], vec![1f32; c], vec![2f32; c]);
                if plain {
                    backward_body(&dy, &xhat, inv, &scale, &mut dx, &mut ds, &mut doff);
                } else {
                    layer_norm_row_backward(&dy, &xhat, inv, &scale, &mut dx, &mut ds, &mut doff);
                }
                for i in 0..c {
                    let want = inv as f64 * (g[i] - mg - xhat[i] as f64 * mgx);
                    assert!((dx[i] as f64 - want).abs() < 1e-6, "{c} {i}");
                    assert_eq!(ds[i], 1.0 + dy[i] * xhat[i]);
                    assert_eq!(doff[i], 2.0 + dy[i]);
                }
                outs.push(dx);
            }
            assert_eq!(outs[0], outs[1]);
        }
    }
}
