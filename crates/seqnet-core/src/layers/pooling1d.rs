//! `MaxPooling1d` and `AveragePooling1d`: MATLAB's `maxPooling1dLayer` and
//! `averagePooling1dLayer`, each channel pooled over time, each sequence over
//! its own windows (see [`super::window1d`]).

use super::pooling::{pool_def, PoolPaddingValue};
use super::util::{check_shape, grad_or_zeros, no_forward, single};
use super::window1d::{per_sequence_grad, BatchWindows, Padding1d, Window1d};
use super::{name_field, named};
use crate::activation::Activation;
use crate::error::{Error, Result};
use crate::format::{ActShape, Format};
use crate::layer::{ForwardCtx, LayerDef, LayerKernel, Params, ShapeError};
use ndarray::ArrayD;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

fn one() -> usize {
    1
}

/// MATLAB's `maxPooling1dLayer(poolSize)`: the maximum of each window of
/// `PoolSize` steps, per channel.
///
/// Input `C×B×T` (`[T, B, C]`), output `C×B×T'` (`[T', B, C]`) with
/// `T' = floor((T + before + after − PoolSize) / Stride) + 1` (`ceil(T / Stride)`
/// for `"same"`). Padding never wins the maximum, nor do padded steps of the
/// mini-batch: each sequence is pooled as if alone (output lengths as
/// [`super::Convolution1d`]'s). Each side's padding must be smaller than the
/// pool, so every window holds a real step. Backward sends each output's
/// gradient to the first maximum of its window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MaxPooling1d {
    /// The layer's name, unique in its graph.
    #[serde(default)]
    pub name: String,
    /// Steps per window.
    pub pool_size: usize,
    /// Step between windows, default 1 (MATLAB's).
    #[serde(default = "one")]
    pub stride: usize,
    /// `"same"` or `[before, after]`; default no padding.
    #[serde(default)]
    pub padding: Padding1d,
}

named!(MaxPooling1d);

impl MaxPooling1d {
    /// Windows of `pool_size` steps, stride 1, no padding.
    pub fn new(pool_size: usize) -> Self {
        MaxPooling1d {
            name: String::new(),
            pool_size,
            stride: 1,
            padding: Padding1d::default(),
        }
    }
    /// Step between windows.
    pub fn stride(mut self, stride: usize) -> Self {
        self.stride = stride;
        self
    }
    /// `'same'` or `[before, after]`, each side smaller than the pool.
    pub fn padding(mut self, padding: Padding1d) -> Self {
        self.padding = padding;
        self
    }
}

/// MATLAB's `averagePooling1dLayer(poolSize)`: the mean of each window of
/// `PoolSize` steps, per channel.
///
/// Shapes, lengths and masking as [`MaxPooling1d`]. With `PaddingValue` 0 (the
/// default) every window is divided by `PoolSize`, padding counted as zeros
/// (PyTorch's `count_include_pad=True`; a step past a sequence's end is
/// padding too); with `"mean"` each window averages only the real steps it covers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AveragePooling1d {
    /// The layer's name, unique in its graph.
    #[serde(default)]
    pub name: String,
    /// Steps per window.
    pub pool_size: usize,
    /// Step between windows, default 1 (MATLAB's).
    #[serde(default = "one")]
    pub stride: usize,
    /// `"same"` or `[before, after]`; default no padding.
    #[serde(default)]
    pub padding: Padding1d,
    /// Zeros (default) or the window's mean.
    #[serde(default)]
    pub padding_value: PoolPaddingValue,
}

named!(AveragePooling1d);

impl AveragePooling1d {
    /// Windows of `pool_size` steps, stride 1, no padding.
    pub fn new(pool_size: usize) -> Self {
        AveragePooling1d {
            name: String::new(),
            pool_size,
            stride: 1,
            padding: Padding1d::default(),
            padding_value: PoolPaddingValue::Zero,
        }
    }
    /// Step between windows.
    pub fn stride(mut self, stride: usize) -> Self {
        self.stride = stride;
        self
    }
    /// `'same'` or `[before, after]`, each side smaller than the pool.
    pub fn padding(mut self, padding: Padding1d) -> Self {
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
    size: usize,
    stride: usize,
    padding: Padding1d,
) -> std::result::Result<Window1d, ShapeError> {
    if x.format != Format::CBT {
        return Err(ShapeError::new(
            0,
            format!("expects feature sequences (C×B×T), got {x}"),
        ));
    }
    if x.channels == 0 {
        return Err(ShapeError::new(0, "the input has no channels"));
    }
    if padding == Padding1d::Causal {
        return Err(ShapeError::new(
            0,
            "Padding must be \"same\" or [before, after] steps: \"causal\" is for convolutions",
        ));
    }
    let w =
        Window1d::new(size, stride, 1, padding, "PoolSize").map_err(|m| ShapeError::new(0, m))?;
    if w.max_side_padding() >= size {
        return Err(ShapeError::new(
            0,
            format!("Padding {padding:?} must be smaller than PoolSize {size} on each side"),
        ));
    }
    Ok(w)
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Max,
    Average(PoolPaddingValue),
}

// The output keeps the input's shape description (the steps are not part of it).
pool_def!(
    MaxPooling1d,
    "1-D Max Pooling",
    Pool1dKernel,
    |_s| Kind::Max,
    |x, _g| x
);
pool_def!(
    AveragePooling1d,
    "1-D Average Pooling",
    Pool1dKernel,
    |s| Kind::Average(s.padding_value),
    |x, _g| x
);

struct Pool1dKernel {
    name: String,
    in_shape: ActShape,
    window: Window1d,
    kind: Kind,
    cache: Option<Cache>,
}

struct Cache {
    windows: BatchWindows,
    /// The input's `[T, B]`.
    time: usize,
    batch: usize,
    /// Max pooling: for each output value `[T', B, C]`, the window tap that won.
    argmax: Vec<u32>,
}

impl Pool1dKernel {
    /// The real steps (relative to the sequence's start) of output `j`'s window.
    fn real_taps(&self, j: usize, start: isize, len: usize) -> std::ops::Range<usize> {
        let first = j as isize * self.window.stride as isize - start;
        let lo = first.max(0) as usize;
        let hi = (first + self.window.size as isize).clamp(0, len as isize) as usize;
        lo..hi.max(lo)
    }

    /// The divisor of an average window holding `real` real steps.
    fn divisor(&self, real: usize) -> f32 {
        match self.kind {
            Kind::Average(PoolPaddingValue::Mean) => real.max(1) as f32,
            _ => self.window.size as f32,
        }
    }
}

impl LayerKernel for Pool1dKernel {
    fn forward(
        &mut self,
        inputs: &[&Activation],
        _ctx: &mut ForwardCtx,
    ) -> Result<Vec<Activation>> {
        let x = inputs
            .first()
            .ok_or_else(|| Error::layer(&self.name, "no input"))?;
        check_shape(&self.name, "in", x, &self.in_shape)?;
        let (time, batch, c) = (x.time(), x.batch(), self.in_shape.channels);
        let windows = self
            .window
            .batch(&x.seq_lengths())
            .map_err(|m| Error::layer(&self.name, m))?;
        let data = x.data.as_standard_layout();
        let xs = data.as_slice().expect("standard layout");
        let t_out = windows.out_time();
        let mut y = vec![0f32; t_out * batch * c];
        let is_max = self.kind == Kind::Max;
        let mut argmax = vec![0u32; if is_max { y.len() } else { 0 }];
        let chunk = batch * c;
        let fill = |t: usize, yt: &mut [f32], at: &mut [u32]| {
            for (b, sw) in windows.seqs.iter().enumerate() {
                let Some(j) = t.checked_sub(sw.out_start).filter(|&j| j < sw.out_len) else {
                    continue;
                };
                let taps = self.real_taps(j, sw.before as isize, sw.len);
                let yb = &mut yt[b * c..(b + 1) * c];
                let row = |i: usize| {
                    let r = ((sw.in_start + i) * batch + b) * c;
                    &xs[r..r + c]
                };
                if is_max {
                    let ab = &mut at[b * c..(b + 1) * c];
                    yb.copy_from_slice(row(taps.start));
                    ab.fill(taps.start as u32);
                    for i in taps.start + 1..taps.end {
                        for ((v, a), &xv) in yb.iter_mut().zip(ab.iter_mut()).zip(row(i)) {
                            if xv > *v {
                                *v = xv;
                                *a = i as u32;
                            }
                        }
                    }
                } else {
                    let n = taps.len();
                    for i in taps {
                        yb.iter_mut().zip(row(i)).for_each(|(v, &xv)| *v += xv);
                    }
                    let d = self.divisor(n);
                    yb.iter_mut().for_each(|v| *v /= d);
                }
            }
        };
        if is_max {
            y.par_chunks_mut(chunk)
                .zip(argmax.par_chunks_mut(chunk))
                .enumerate()
                .for_each(|(t, (yt, at))| fill(t, yt, at));
        } else {
            y.par_chunks_mut(chunk)
                .enumerate()
                .for_each(|(t, yt)| fill(t, yt, &mut []));
        }
        let lengths = Arc::new(windows.out_lengths.clone());
        self.cache = Some(Cache {
            windows,
            time,
            batch,
            argmax,
        });
        let y = ArrayD::from_shape_vec(vec![t_out, batch, c], y).expect("output size");
        Ok(vec![Activation {
            data: y.into_shared(),
            format: Format::CBT,
            lengths: Some(lengths),
        }])
    }

    fn backward(
        &mut self,
        mut grads: Vec<Option<ArrayD<f32>>>,
    ) -> Result<Vec<Option<ArrayD<f32>>>> {
        let cache = self.cache.as_ref().ok_or_else(|| no_forward(&self.name))?;
        let (batch, c) = (cache.batch, self.in_shape.channels);
        let out_shape = [cache.windows.out_time(), batch, c];
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
        let dx = per_sequence_grad(cache.time, c, &cache.windows, |b, sw, d| {
            for j in 0..sw.out_len {
                let at = ((sw.out_start + j) * batch + b) * c;
                let g = &dys[at..at + c];
                if self.kind == Kind::Max {
                    for (ci, (&gv, &i)) in g.iter().zip(&cache.argmax[at..at + c]).enumerate() {
                        d[i as usize * c + ci] += gv;
                    }
                    continue;
                }
                let taps = self.real_taps(j, sw.before as isize, sw.len);
                let inv = 1.0 / self.divisor(taps.len());
                for i in taps {
                    d[i * c..(i + 1) * c]
                        .iter_mut()
                        .zip(g)
                        .for_each(|(a, &gv)| *a += gv * inv);
                }
            }
        });
        let dx = ArrayD::from_shape_vec(vec![cache.time, batch, c], dx).expect("input size");
        Ok(vec![Some(dx)])
    }
}
