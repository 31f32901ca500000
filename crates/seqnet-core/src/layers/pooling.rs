//! `MaxPooling2d` and `AveragePooling2d`: MATLAB's `maxPooling2dLayer` and
//! `averagePooling2dLayer`, every channel of every frame on its own, parallel over frames.

use super::conv::{pair, Padding, Window};
use super::util::{check_shape, grad_or_zeros, no_forward, single};
use super::{name_field, named};
use crate::activation::Activation;
use crate::error::{Error, Result};
use crate::format::{ActShape, Format};
use crate::layer::{ForwardCtx, LayerDef, LayerKernel, Params, ShapeError};
use ndarray::ArrayD;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// What the padding of an average pooling layer holds (MATLAB's `'PaddingValue'`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PoolPaddingValue {
    /// Zeros: every window is divided by the full pool area (MATLAB's default, 0).
    #[default]
    Zero,
    /// MATLAB's `'mean'`: padding takes the mean of the window's real values,
    /// so each window averages only the input values it covers.
    Mean,
}

/// MATLAB's `maxPooling2dLayer(poolSize)`: the maximum of each window, per channel.
///
/// Input `S×S×C×B` (`[N, C, H, W]`); image sequences must be folded first.
/// Output `S×S×C×B` (`[N, C, Ho, Wo]`), `Ho = floor((H + top + bottom − ph) / stride) + 1`.
/// Padding is ignored by the maximum and must be smaller than the pool size.
/// Backward sends each output's gradient to the first maximum of its window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MaxPooling2d {
    /// The layer's name, unique in its graph.
    #[serde(default)]
    pub name: String,
    /// `[ph, pw]`.
    #[serde(deserialize_with = "pair::deserialize")]
    pub pool_size: [usize; 2],
    /// `[vertical, horizontal]` step, default `[1, 1]` as MATLAB.
    #[serde(default = "pair::ones", deserialize_with = "pair::deserialize")]
    pub stride: [usize; 2],
    /// Default: no padding.
    #[serde(default)]
    pub padding: Padding,
}

named!(MaxPooling2d);

impl MaxPooling2d {
    /// Windows of `[ph, pw]`, stride 1, no padding.
    pub fn new(pool_size: [usize; 2]) -> Self {
        MaxPooling2d {
            name: String::new(),
            pool_size,
            stride: [1, 1],
            padding: Padding::default(),
        }
    }
    /// `[vertical, horizontal]` step.
    pub fn stride(mut self, stride: [usize; 2]) -> Self {
        self.stride = stride;
        self
    }
    /// `'same'` or explicit `[top, bottom, left, right]` padding, each side smaller than the pool.
    pub fn padding(mut self, padding: Padding) -> Self {
        self.padding = padding;
        self
    }
}

/// MATLAB's `averagePooling2dLayer(poolSize)`: the mean of each window, per channel.
///
/// Input `S×S×C×B` (`[N, C, H, W]`); image sequences must be folded first.
/// Output `S×S×C×B` (`[N, C, Ho, Wo]`), sizes as [`MaxPooling2d`].
/// Padding must be smaller than the pool size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AveragePooling2d {
    /// The layer's name, unique in its graph.
    #[serde(default)]
    pub name: String,
    /// `[ph, pw]`.
    #[serde(deserialize_with = "pair::deserialize")]
    pub pool_size: [usize; 2],
    /// `[vertical, horizontal]` step, default `[1, 1]` as MATLAB.
    #[serde(default = "pair::ones", deserialize_with = "pair::deserialize")]
    pub stride: [usize; 2],
    /// Default: no padding.
    #[serde(default)]
    pub padding: Padding,
    /// Default: zeros.
    #[serde(default)]
    pub padding_value: PoolPaddingValue,
}

named!(AveragePooling2d);

impl AveragePooling2d {
    /// Windows of `[ph, pw]`, stride 1, no padding.
    pub fn new(pool_size: [usize; 2]) -> Self {
        AveragePooling2d {
            name: String::new(),
            pool_size,
            stride: [1, 1],
            padding: Padding::default(),
            padding_value: PoolPaddingValue::Zero,
        }
    }
    /// `[vertical, horizontal]` step.
    pub fn stride(mut self, stride: [usize; 2]) -> Self {
        self.stride = stride;
        self
    }
    /// `'same'` or explicit `[top, bottom, left, right]` padding, each side smaller than the pool.
    pub fn padding(mut self, padding: Padding) -> Self {
        self.padding = padding;
        self
    }
    /// What the padding holds: zeros or the window's mean.
    pub fn padding_value(mut self, v: PoolPaddingValue) -> Self {
        self.padding_value = v;
        self
    }
}

fn pool_window(
    x: &ActShape,
    size: [usize; 2],
    stride: [usize; 2],
    padding: Padding,
) -> Result<Window, ShapeError> {
    match x.format {
        Format::SSCB => {}
        Format::SSCBT => {
            return Err(ShapeError::new(
                0,
                format!("expects images (S×S×C×B), got the image sequence {x}: fold it into frames first with a sequence folding layer"),
            ))
        }
        _ => return Err(ShapeError::new(0, format!("expects images (S×S×C×B), got {x}"))),
    }
    if x.channels == 0 {
        return Err(ShapeError::new(0, "the input has no channels"));
    }
    let g = Window::resolve(x.spatial, size, stride, [1, 1], padding, "pool")
        .map_err(|m| ShapeError::new(0, m))?;
    if g.pad[0].max(g.pad[1]) >= size[0] || g.pad[2].max(g.pad[3]) >= size[1] {
        return Err(ShapeError::new(
            0,
            format!("Padding {:?} must be smaller than PoolSize {size:?}", g.pad),
        ));
    }
    Ok(g)
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Max,
    Average(PoolPaddingValue),
}

/// Implements [`LayerDef`] for a pooling config (fields `name`, `pool_size`,
/// `stride`, `padding`; `pool_window(&x, pool_size, stride, padding)` and a
/// `Kind` in the calling module): `$kernel` is the kernel struct (fields
/// `name`, `in_shape`, `window`, `kind`, `cache`), `|$s| $kind` the pooling
/// kind from the config, `|$x, $g| $out` the output shape from the input
/// shape and the window. Shared by the 2-D and 1-D pooling layers.
macro_rules! pool_def {
    ($ty:ty, $type_name:literal, $kernel:ident, |$s:ident| $kind:expr, |$x:ident, $g:ident| $out:expr) => {
        impl LayerDef for $ty {
            name_field!();
            fn type_name(&self) -> &'static str {
                $type_name
            }
            fn infer(&self, inputs: &[ActShape]) -> Result<Vec<ActShape>, ShapeError> {
                let $x = single(inputs)?;
                let $g = pool_window(&$x, self.pool_size, self.stride, self.padding)?;
                Ok(vec![$out])
            }
            fn build(&self, inputs: &[ActShape], _params: Params) -> Result<Box<dyn LayerKernel>> {
                let x = single(inputs).map_err(|e| Error::layer(&self.name, e.message))?;
                let window = pool_window(&x, self.pool_size, self.stride, self.padding)
                    .map_err(|e| Error::layer(&self.name, e.message))?;
                let $s = self;
                Ok(Box::new($kernel {
                    name: self.name.clone(),
                    in_shape: x,
                    window,
                    kind: $kind,
                    cache: None,
                }))
            }
        }
    };
}
pub(super) use pool_def;

pool_def!(
    MaxPooling2d,
    "2-D Max Pooling",
    PoolKernel,
    |_s| Kind::Max,
    |x, g| { ActShape::images(g.output[0], g.output[1], x.channels) }
);
pool_def!(
    AveragePooling2d,
    "2-D Average Pooling",
    PoolKernel,
    |s| Kind::Average(s.padding_value),
    |x, g| ActShape::images(g.output[0], g.output[1], x.channels)
);

struct PoolKernel {
    name: String,
    in_shape: ActShape,
    window: Window,
    kind: Kind,
    /// The last forward's input shape and, for max pooling, the index in its
    /// plane (`iy·W + ix`) of each output's maximum, `[N, C, Ho, Wo]`.
    cache: Option<(Vec<usize>, Vec<u32>)>,
}

/// Planes per parallel task.
fn planes_per_task(planes: usize) -> usize {
    planes.div_ceil(32).max(1)
}

impl Window {
    /// The input rows `[lo, hi)` covered by output row `oy` (no dilation).
    fn rows(&self, oy: usize) -> (usize, usize) {
        let start = oy * self.stride[0];
        let lo = start.saturating_sub(self.pad[0]);
        let hi = (start + self.size[0])
            .saturating_sub(self.pad[0])
            .min(self.input[0]);
        (lo, hi.max(lo))
    }
    /// The input columns `[lo, hi)` covered by output column `ox` (no dilation).
    fn cols(&self, ox: usize) -> (usize, usize) {
        let start = ox * self.stride[1];
        let lo = start.saturating_sub(self.pad[2]);
        let hi = (start + self.size[1])
            .saturating_sub(self.pad[2])
            .min(self.input[1]);
        (lo, hi.max(lo))
    }
}

impl LayerKernel for PoolKernel {
    fn forward(
        &mut self,
        inputs: &[&Activation],
        _ctx: &mut ForwardCtx,
    ) -> Result<Vec<Activation>> {
        let x = inputs
            .first()
            .ok_or_else(|| Error::layer(&self.name, "no input"))?;
        check_shape(&self.name, "in", x, &self.in_shape)?;
        let data = x.data.as_standard_layout();
        let xs = data.as_slice().expect("standard layout");
        let g = self.window;
        let (hw, p) = (g.input[0] * g.input[1], g.out_len());
        let planes = xs.len() / hw;
        let per = planes_per_task(planes);
        let mut y = vec![0f32; planes * p];
        let w = g.input[1];
        let mut argmax = Vec::new();
        match self.kind {
            Kind::Max => {
                argmax = vec![0u32; planes * p];
                y.par_chunks_mut(per * p)
                    .zip(argmax.par_chunks_mut(per * p))
                    .zip(xs.par_chunks(per * hw))
                    .for_each(|((yc, ac), xc)| {
                        for ((yp, ap), xp) in yc
                            .chunks_exact_mut(p)
                            .zip(ac.chunks_exact_mut(p))
                            .zip(xc.chunks_exact(hw))
                        {
                            for oy in 0..g.output[0] {
                                let (r0, r1) = g.rows(oy);
                                for ox in 0..g.output[1] {
                                    let (c0, c1) = g.cols(ox);
                                    let (mut best, mut at) = (f32::NEG_INFINITY, r0 * w + c0);
                                    for iy in r0..r1 {
                                        for (ix, &v) in
                                            xp[iy * w + c0..iy * w + c1].iter().enumerate()
                                        {
                                            // A NaN wins, so that it propagates as in MATLAB and PyTorch.
                                            if v > best || (v.is_nan() && !best.is_nan()) {
                                                best = v;
                                                at = iy * w + c0 + ix;
                                            }
                                        }
                                    }
                                    yp[oy * g.output[1] + ox] = best;
                                    ap[oy * g.output[1] + ox] = at as u32;
                                }
                            }
                        }
                    });
            }
            Kind::Average(value) => {
                let area = (g.size[0] * g.size[1]) as f32;
                y.par_chunks_mut(per * p)
                    .zip(xs.par_chunks(per * hw))
                    .for_each(|(yc, xc)| {
                        for (yp, xp) in yc.chunks_exact_mut(p).zip(xc.chunks_exact(hw)) {
                            for oy in 0..g.output[0] {
                                let (r0, r1) = g.rows(oy);
                                for ox in 0..g.output[1] {
                                    let (c0, c1) = g.cols(ox);
                                    let s: f32 = (r0..r1)
                                        .map(|iy| xp[iy * w + c0..iy * w + c1].iter().sum::<f32>())
                                        .sum();
                                    let div = match value {
                                        PoolPaddingValue::Zero => area,
                                        PoolPaddingValue::Mean => {
                                            ((r1 - r0) * (c1 - c0)).max(1) as f32
                                        }
                                    };
                                    yp[oy * g.output[1] + ox] = s / div;
                                }
                            }
                        }
                    });
            }
        }
        let mut out_shape = data.shape()[..2].to_vec();
        out_shape.extend_from_slice(&g.output);
        self.cache = Some((data.shape().to_vec(), argmax));
        let y = ArrayD::from_shape_vec(out_shape, y).expect("output size");
        Ok(vec![x.like(y)])
    }

    fn backward(
        &mut self,
        mut grads: Vec<Option<ArrayD<f32>>>,
    ) -> Result<Vec<Option<ArrayD<f32>>>> {
        let (in_shape, argmax) = self.cache.as_ref().ok_or_else(|| no_forward(&self.name))?;
        let g = self.window;
        let out_shape = [in_shape[0], in_shape[1], g.output[0], g.output[1]];
        let dy = grad_or_zeros(&mut grads, &out_shape);
        if dy.shape() != out_shape {
            return Err(Error::layer(
                &self.name,
                format!(
                    "output gradient of shape {:?}, expected {out_shape:?}",
                    dy.shape()
                ),
            ));
        }
        let dy = dy.as_standard_layout();
        let dys = dy.as_slice().expect("standard layout");
        let (hw, p) = (g.input[0] * g.input[1], g.out_len());
        let planes = in_shape[0] * in_shape[1];
        let per = planes_per_task(planes);
        let w = g.input[1];
        let mut dx = vec![0f32; planes * hw];
        match self.kind {
            Kind::Max => {
                dx.par_chunks_mut(per * hw)
                    .zip(dys.par_chunks(per * p))
                    .zip(argmax.par_chunks(per * p))
                    .for_each(|((dxc, dyc), ac)| {
                        for ((dxp, dyp), ap) in dxc
                            .chunks_exact_mut(hw)
                            .zip(dyc.chunks_exact(p))
                            .zip(ac.chunks_exact(p))
                        {
                            for (&d, &a) in dyp.iter().zip(ap) {
                                dxp[a as usize] += d;
                            }
                        }
                    });
            }
            Kind::Average(value) => {
                let area = (g.size[0] * g.size[1]) as f32;
                dx.par_chunks_mut(per * hw)
                    .zip(dys.par_chunks(per * p))
                    .for_each(|(dxc, dyc)| {
                        for (dxp, dyp) in dxc.chunks_exact_mut(hw).zip(dyc.chunks_exact(p)) {
                            for oy in 0..g.output[0] {
                                let (r0, r1) = g.rows(oy);
                                for ox in 0..g.output[1] {
                                    let (c0, c1) = g.cols(ox);
                                    let div = match value {
                                        PoolPaddingValue::Zero => area,
                                        PoolPaddingValue::Mean => {
                                            ((r1 - r0) * (c1 - c0)).max(1) as f32
                                        }
                                    };
                                    let d = dyp[oy * g.output[1] + ox] / div;
                                    for iy in r0..r1 {
                                        dxp[iy * w + c0..iy * w + c1]
                                            .iter_mut()
                                            .for_each(|v| *v += d);
                                    }
                                }
                            }
                        }
                    });
            }
        }
        Ok(vec![Some(
            ArrayD::from_shape_vec(in_shape.clone(), dx).expect("input size"),
        )])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::Mode;
    use rand::{Rng, SeedableRng};

    /// Direct pooling of one plane: `(max, mean with zero padding, mean of the real values)`.
    fn naive(x: &[f32], g: &Window) -> Vec<(f32, f32, f32)> {
        let ([h, w], [ph, pw], [ho, wo]) = (g.input, g.size, g.output);
        let mut out = Vec::new();
        for oy in 0..ho {
            for ox in 0..wo {
                let (mut mx, mut sum, mut n) = (f32::NEG_INFINITY, 0.0, 0);
                for i in 0..ph {
                    for j in 0..pw {
                        let iy = (oy * g.stride[0] + i) as isize - g.pad[0] as isize;
                        let ix = (ox * g.stride[1] + j) as isize - g.pad[2] as isize;
                        if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                            let v = x[iy as usize * w + ix as usize];
                            mx = mx.max(v);
                            sum += v;
                            n += 1;
                        }
                    }
                }
                out.push((mx, sum / (ph * pw) as f32, sum / n as f32));
            }
        }
        out
    }

    #[test]
    fn pooling_matches_direct_pooling() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(4);
        let mut tried = 0;
        while tried < 150 {
            let mut r = |lo: usize, hi: usize| rng.random_range(lo..=hi);
            let (h, w, size, stride) = (r(1, 8), r(1, 8), [r(1, 4), r(1, 4)], [r(1, 3), r(1, 3)]);
            let padding = if r(0, 2) == 0 {
                Padding::Same
            } else {
                Padding::Explicit([r(0, 3), r(0, 3), r(0, 3), r(0, 3)])
            };
            let x = ActShape::images(h, w, 2);
            let Ok(g) = pool_window(&x, size, stride, padding) else {
                continue;
            };
            tried += 1;
            let data =
                ArrayD::from_shape_simple_fn(vec![3, 2, h, w], || rng.random_range(-1.0f32..1.0));
            let act = Activation::images(data.clone()).unwrap();
            let mut outs = Vec::new();
            for kind in [
                Kind::Max,
                Kind::Average(PoolPaddingValue::Zero),
                Kind::Average(PoolPaddingValue::Mean),
            ] {
                let mut k = PoolKernel {
                    name: "p".into(),
                    in_shape: x,
                    window: g,
                    kind,
                    cache: None,
                };
                let mut srng = rand::rngs::StdRng::seed_from_u64(0);
                let mut ctx = ForwardCtx {
                    mode: Mode::Training,
                    stateful: false,
                    rng: &mut srng,
                    target: None,
                };
                outs.push(
                    k.forward(&[&act], &mut ctx)
                        .unwrap()
                        .remove(0)
                        .data
                        .into_owned()
                        .into_raw_vec_and_offset()
                        .0,
                );
            }
            let p = g.out_len();
            let xs = data.as_slice().unwrap();
            for plane in 0..6 {
                let want = naive(&xs[plane * h * w..(plane + 1) * h * w], &g);
                for (q, &(mx, zero, mean)) in want.iter().enumerate() {
                    let at = plane * p + q;
                    assert_eq!(outs[0][at], mx, "{g:?}");
                    assert!((outs[1][at] - zero).abs() < 1e-6, "{g:?}");
                    assert!((outs[2][at] - mean).abs() < 1e-6, "{g:?}");
                }
            }
        }
    }
}
