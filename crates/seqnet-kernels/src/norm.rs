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
    if c == 0 {
        return 0.0;
    }
    let mean = x.iter().map(|&v| v as f64).sum::<f64>() / c as f64;
    let var = x
        .iter()
        .map(|&v| {
            let d = v as f64 - mean;
            d * d
        })
        .sum::<f64>()
        / c as f64;
    let inv = 1.0 / (var + eps).sqrt();
    for i in 0..c {
        let h = ((x[i] as f64 - mean) * inv) as f32;
        xhat[i] = h;
        y[i] = scale[i] * h + offset[i];
    }
    inv as f32
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
    if c == 0 {
        return;
    }
    let (mut sum_g, mut sum_gx) = (0f64, 0f64);
    for i in 0..c {
        let g = (scale[i] * dy[i]) as f64;
        sum_g += g;
        sum_gx += g * xhat[i] as f64;
        dscale[i] += dy[i] * xhat[i];
        doffset[i] += dy[i];
    }
    let (mg, mgx) = (sum_g / c as f64, sum_gx / c as f64);
    for i in 0..c {
        let g = (scale[i] * dy[i]) as f64;
        dx[i] = (inv_std as f64 * (g - mg - xhat[i] as f64 * mgx)) as f32;
    }
}
