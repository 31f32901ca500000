//! `Convolution2d`: MATLAB's `convolution2dLayer`, by im2col and one matrix
//! product per frame, parallel over frames. Also the window geometry
//! ([`Padding`], output sizes) shared with the pooling layers.

use super::util::{check_shape, grad_or_zeros, no_forward, single};
use super::{name_field, named, weight_bias_options};
use crate::activation::Activation;
use crate::error::{Error, Result};
use crate::format::{ActShape, Format};
use crate::init::{BiasInitializer, WeightsInitializer};
use crate::layer::{ForwardCtx, LayerDef, LayerKernel, Params, ShapeError};
use crate::learnable::{Initializer, Learnable, LearnableSpec};
use crate::torch::TorchLayout;
use ndarray::{ArcArray, ArrayD, ArrayView2, ArrayViewMut2, IxDyn};
use rayon::prelude::*;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Padding of the spatial dimensions (MATLAB's `'Padding'`).
///
/// Serialised as `"same"` or `[top, bottom, left, right]`; read also from a
/// single number (all sides) or `[vertical, horizontal]`, as MATLAB accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Padding {
    /// MATLAB's `'same'`: the output is `ceil(H / stride) × ceil(W / stride)`;
    /// the total padding of each dimension is split in two, the odd element
    /// going to the bottom (rows) or the right (columns).
    Same,
    /// Rows of zeros added `[top, bottom, left, right]`.
    Explicit([usize; 4]),
}

impl Default for Padding {
    /// No padding, MATLAB's default.
    fn default() -> Self {
        Padding::Explicit([0; 4])
    }
}

impl Padding {
    /// `p` rows and columns on every side.
    pub fn uniform(p: usize) -> Self {
        Padding::Explicit([p; 4])
    }
    /// `vertical` rows on top and bottom, `horizontal` columns on left and right.
    pub fn symmetric(vertical: usize, horizontal: usize) -> Self {
        Padding::Explicit([vertical, vertical, horizontal, horizontal])
    }
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum PaddingRepr {
    Name(String),
    One(usize),
    List(Vec<usize>),
}

impl Serialize for Padding {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Padding::Same => PaddingRepr::Name("same".into()),
            Padding::Explicit(p) => PaddingRepr::List(p.to_vec()),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Padding {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error as _;
        match PaddingRepr::deserialize(d)? {
            PaddingRepr::Name(s) if s.eq_ignore_ascii_case("same") => Ok(Padding::Same),
            PaddingRepr::Name(s) => Err(D::Error::custom(format!(
                "padding must be \"same\", a number or a list of 2 or 4 numbers, got \"{s}\""
            ))),
            PaddingRepr::One(p) => Ok(Padding::uniform(p)),
            PaddingRepr::List(v) => match v[..] {
                [p] => Ok(Padding::uniform(p)),
                [a, b] => Ok(Padding::symmetric(a, b)),
                [t, b, l, r] => Ok(Padding::Explicit([t, b, l, r])),
                _ => Err(D::Error::custom(format!(
                    "padding must have 1, 2 or 4 elements, got {}",
                    v.len()
                ))),
            },
        }
    }
}

/// Serde helpers for `[rows, columns]` settings that MATLAB also takes as one number.
pub(crate) mod pair {
    use serde::{Deserialize, Deserializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Repr {
        One(usize),
        Two([usize; 2]),
    }

    /// Reads `n` as `[n, n]` or `[a, b]` as is.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[usize; 2], D::Error> {
        Ok(match Repr::deserialize(d)? {
            Repr::One(n) => [n, n],
            Repr::Two(p) => p,
        })
    }

    /// `[1, 1]`, the default stride and dilation.
    pub fn ones() -> [usize; 2] {
        [1, 1]
    }
}

/// A sliding window over `[H, W]` frames, all sizes resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    /// Input `[H, W]`.
    pub input: [usize; 2],
    /// Filter or pool size `[fh, fw]`.
    pub size: [usize; 2],
    /// `[vertical, horizontal]` step.
    pub stride: [usize; 2],
    /// `[vertical, horizontal]` dilation (1 for pooling).
    pub dilation: [usize; 2],
    /// `[top, bottom, left, right]`.
    pub pad: [usize; 4],
    /// Output `[Ho, Wo]`.
    pub output: [usize; 2],
}

impl Window {
    /// Resolves the padding and the output size, checking that every size is
    /// positive and that the (dilated) window fits the padded input.
    /// `what` names the window in messages (`"filter"`, `"pool"`).
    pub fn resolve(
        input: [usize; 2],
        size: [usize; 2],
        stride: [usize; 2],
        dilation: [usize; 2],
        padding: Padding,
        what: &str,
    ) -> std::result::Result<Window, String> {
        let what_cap = if what == "filter" {
            "FilterSize"
        } else {
            "PoolSize"
        };
        if size.contains(&0) {
            return Err(format!("{what_cap} must be positive, got {size:?}"));
        }
        if stride.contains(&0) {
            return Err(format!("Stride must be positive, got {stride:?}"));
        }
        if dilation.contains(&0) {
            return Err(format!("DilationFactor must be positive, got {dilation:?}"));
        }
        if input.contains(&0) {
            return Err(format!("the input {}×{} is empty", input[0], input[1]));
        }
        let eff = [
            dilation[0] * (size[0] - 1) + 1,
            dilation[1] * (size[1] - 1) + 1,
        ];
        let pad = match padding {
            Padding::Explicit(p) => p,
            Padding::Same => {
                let mut p = [0; 4];
                for d in 0..2 {
                    let out = input[d].div_ceil(stride[d]);
                    let total = ((out - 1) * stride[d] + eff[d]).saturating_sub(input[d]);
                    p[2 * d] = total / 2;
                    p[2 * d + 1] = total - total / 2;
                }
                p
            }
        };
        let padded = [input[0] + pad[0] + pad[1], input[1] + pad[2] + pad[3]];
        if eff[0] > padded[0] || eff[1] > padded[1] {
            let dil = if dilation == [1, 1] {
                String::new()
            } else {
                format!(" (dilated by {dilation:?})")
            };
            return Err(format!(
                "the {what} {}×{}{dil} is larger than the padded input {}×{}",
                eff[0], eff[1], padded[0], padded[1]
            ));
        }
        let output = [
            (padded[0] - eff[0]) / stride[0] + 1,
            (padded[1] - eff[1]) / stride[1] + 1,
        ];
        Ok(Window {
            input,
            size,
            stride,
            dilation,
            pad,
            output,
        })
    }

    /// Output positions `p = oy·Wo + ox` per frame.
    pub fn out_len(&self) -> usize {
        self.output[0] * self.output[1]
    }

    /// The input row of output row `oy` at window row `i`, if inside the input.
    #[inline]
    pub fn in_row(&self, oy: usize, i: usize) -> Option<usize> {
        (oy * self.stride[0] + i * self.dilation[0])
            .checked_sub(self.pad[0])
            .filter(|&r| r < self.input[0])
    }

    /// The output columns `[lo, hi)` whose input column at window column `j`
    /// is inside the input; that column is `ox·stride + j·dilation − left`.
    #[inline]
    pub fn valid_cols(&self, j: usize) -> (usize, usize) {
        let (sw, off, left, w) = (
            self.stride[1],
            j * self.dilation[1],
            self.pad[2],
            self.input[1],
        );
        let lo = if off >= left {
            0
        } else {
            (left - off).div_ceil(sw)
        };
        // Largest ox with ox·sw + off − left ≤ w − 1.
        let hi = if off > w - 1 + left {
            0
        } else {
            (w - 1 + left - off) / sw + 1
        };
        let hi = hi.min(self.output[1]);
        (lo.min(hi), hi)
    }
}

/// MATLAB's `convolution2dLayer(filterSize, numFilters)`: 2-D cross-correlation
/// of every frame, `y[f] = b[f] + Σ_c W[f, c] ⋆ x[c]`.
///
/// Input `S×S×C×B` (`[N, C, H, W]`, e.g. folded frames); image sequences must be
/// folded first (`sequenceFoldingLayer`). Output `S×S×F×B` (`[N, F, Ho, Wo]`) with
/// `Ho = floor((H + top + bottom − dil·(fh − 1) − 1) / stride) + 1` (and `Wo` alike).
/// The output keeps the input's `lengths`.
///
/// Learnables: `Weights` `[F, C, fh, fw]` (PyTorch's layout), `Bias` `[F]`.
/// Glorot initialization uses MATLAB's fans `fh·fw·C` and `fh·fw·F`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Convolution2d {
    /// The layer's name, unique in its graph.
    #[serde(default)]
    pub name: String,
    /// `[fh, fw]`.
    #[serde(deserialize_with = "pair::deserialize")]
    pub filter_size: [usize; 2],
    /// `F`, the number of output channels.
    pub num_filters: usize,
    /// `[vertical, horizontal]` step, default `[1, 1]`.
    #[serde(default = "pair::ones", deserialize_with = "pair::deserialize")]
    pub stride: [usize; 2],
    /// Default: no padding.
    #[serde(default)]
    pub padding: Padding,
    /// `[vertical, horizontal]` dilation, default `[1, 1]`.
    #[serde(default = "pair::ones", deserialize_with = "pair::deserialize")]
    pub dilation_factor: [usize; 2],
    /// How `Weights` `[F, C, fh, fw]` start; default Glorot with fans `fh·fw·C`, `fh·fw·F`.
    #[serde(default = "glorot")]
    pub weights_initializer: WeightsInitializer,
    /// How `Bias` `[F]` starts; default zeros.
    #[serde(default = "zeros")]
    pub bias_initializer: BiasInitializer,
    /// Multiplies the global L2 regularization for `Weights`; default 1.
    #[serde(default = "one")]
    pub weight_l2_factor: f32,
    /// Multiplies the global L2 regularization for `Bias`; default 0.
    #[serde(default)]
    pub bias_l2_factor: f32,
    /// Multiplies the global learning rate for `Weights`; default 1.
    #[serde(default = "one")]
    pub weight_learn_rate_factor: f32,
    /// Multiplies the global learning rate for `Bias`; default 1.
    #[serde(default = "one")]
    pub bias_learn_rate_factor: f32,
}

fn glorot() -> WeightsInitializer {
    WeightsInitializer::Glorot
}
fn zeros() -> BiasInitializer {
    BiasInitializer::Zeros
}
fn one() -> f32 {
    1.0
}

named!(Convolution2d);

impl Convolution2d {
    /// `num_filters` filters of `[fh, fw]`, stride 1, no padding, no dilation.
    pub fn new(filter_size: [usize; 2], num_filters: usize) -> Self {
        Convolution2d {
            name: String::new(),
            filter_size,
            num_filters,
            stride: [1, 1],
            padding: Padding::default(),
            dilation_factor: [1, 1],
            weights_initializer: glorot(),
            bias_initializer: zeros(),
            weight_l2_factor: 1.0,
            bias_l2_factor: 0.0,
            weight_learn_rate_factor: 1.0,
            bias_learn_rate_factor: 1.0,
        }
    }
    /// `[vertical, horizontal]` step.
    pub fn stride(mut self, stride: [usize; 2]) -> Self {
        self.stride = stride;
        self
    }
    /// `'same'` or explicit `[top, bottom, left, right]` zero padding.
    pub fn padding(mut self, padding: Padding) -> Self {
        self.padding = padding;
        self
    }
    /// `[vertical, horizontal]` dilation.
    pub fn dilation_factor(mut self, dilation: [usize; 2]) -> Self {
        self.dilation_factor = dilation;
        self
    }
    weight_bias_options!("[F, C, fh, fw]", "[F]");

    fn window(&self, x: &ActShape) -> std::result::Result<Window, ShapeError> {
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
        if self.num_filters == 0 {
            return Err(ShapeError::new(0, "NumFilters must be positive"));
        }
        if x.channels == 0 {
            return Err(ShapeError::new(0, "the input has no channels"));
        }
        Window::resolve(
            x.spatial,
            self.filter_size,
            self.stride,
            self.dilation_factor,
            self.padding,
            "filter",
        )
        .map_err(|m| ShapeError::new(0, m))
    }
}

impl LayerDef for Convolution2d {
    name_field!();
    fn type_name(&self) -> &'static str {
        "2-D Convolution"
    }
    fn infer(&self, inputs: &[ActShape]) -> Result<Vec<ActShape>, ShapeError> {
        let x = single(inputs)?;
        let g = self.window(&x)?;
        Ok(vec![ActShape::images(
            g.output[0],
            g.output[1],
            self.num_filters,
        )])
    }
    fn learnables(&self, inputs: &[ActShape]) -> Vec<LearnableSpec> {
        let c = inputs.first().map(|s| s.channels).unwrap_or(0);
        let (f, [fh, fw]) = (self.num_filters, self.filter_size);
        vec![
            LearnableSpec::weights(
                "Weights",
                vec![f, c, fh, fw],
                Initializer::Weights {
                    init: self.weights_initializer,
                    fan_in: fh * fw * c,
                    fan_out: fh * fw * f,
                },
            )
            .factors(self.weight_l2_factor, self.weight_learn_rate_factor),
            LearnableSpec::bias("Bias", vec![f], Initializer::bias(self.bias_initializer))
                .factors(self.bias_l2_factor, self.bias_learn_rate_factor),
        ]
    }
    fn build(&self, inputs: &[ActShape], mut params: Params) -> Result<Box<dyn LayerKernel>> {
        let x = single(inputs).map_err(|e| Error::layer(&self.name, e.message))?;
        let window = self
            .window(&x)
            .map_err(|e| Error::layer(&self.name, e.message))?;
        Ok(Box::new(ConvKernel {
            name: self.name.clone(),
            in_shape: x,
            window,
            filters: self.num_filters,
            weights: params.learnable("Weights")?,
            bias: params.learnable("Bias")?,
            input: None,
            real: None,
            input_grad_needed: true,
        }))
    }
    fn torch_layout(&self) -> Option<TorchLayout> {
        Some(TorchLayout::weight_bias("nn.Conv2d"))
    }
}

struct ConvKernel {
    name: String,
    in_shape: ActShape,
    window: Window,
    /// `F`.
    filters: usize,
    weights: Learnable,
    bias: Learnable,
    /// The last forward's input `[N, C, H, W]`, standard layout.
    input: Option<ArcArray<f32, IxDyn>>,
    /// Which of the last forward's frames are real (see [`real_frames`]);
    /// `None` when none is padded.
    real: Option<Vec<bool>>,
    /// Whether backward returns the input's gradient (skipping `Wᵀ·dY` and
    /// col2im when not, e.g. for a convolution right after the input layer).
    input_grad_needed: bool,
}

/// Which of `frames` frames are real when they are folded sequences with
/// padding (frame `n` is step `n / B` of observation `n % B`, as the folding
/// layer makes them); `None` when no frame is padded or the input carries no
/// lengths that fit its frames. Padded frames are skipped: their output is
/// zeros, they get no input gradient and add nothing to the weight and bias
/// gradients (the video network's mini-batches are a fifth padding).
fn real_frames(x: &Activation, frames: usize) -> Option<Vec<bool>> {
    let l = x.lengths.as_ref().filter(|l| !l.is_full())?;
    (l.lengths.len() * l.time == frames).then(|| l.real_rows())
}

/// `Σ row` in f64, in eight interleaved partial sums (a single chain of f64
/// additions waits 4 cycles per element; this vectorizes).
fn sum_f64(row: &[f32]) -> f64 {
    let mut lanes = [0f64; 8];
    let chunks = row.chunks_exact(8);
    let tail: f64 = chunks.remainder().iter().map(|&v| v as f64).sum();
    for c in chunks {
        for (l, &v) in lanes.iter_mut().zip(c) {
            *l += v as f64;
        }
    }
    lanes.iter().sum::<f64>() + tail
}

/// Frames per parallel task. A function of `n` only, so that the order of the
/// weight-gradient sums (and so the result) does not depend on the thread count.
fn frames_per_task(n: usize) -> usize {
    n.div_ceil(16).max(1)
}

/// Threads for each frame's matrix product: all of them when there are too few
/// frames to keep the threads busy, else 1 (the frames run in parallel).
fn gemm_threads(n: usize) -> usize {
    let t = rayon::current_num_threads();
    if n < t {
        t
    } else {
        1
    }
}

impl ConvKernel {
    /// Checks that the learnables still have their shapes (they are public and mutable).
    fn check_learnables(&self) -> Result<()> {
        let want = [
            self.filters,
            self.in_shape.channels,
            self.window.size[0],
            self.window.size[1],
        ];
        for (p, want) in [(&self.weights, &want[..]), (&self.bias, &want[..1])] {
            if p.value.shape() != want {
                return Err(Error::Learnable {
                    layer: self.name.clone(),
                    learnable: p.name.into(),
                    message: format!("expects shape {want:?}, has {:?}", p.value.shape()),
                });
            }
        }
        Ok(())
    }

    /// Whether im2col would copy the frame unchanged (1×1 filter, stride 1, no padding).
    fn is_pointwise(&self) -> bool {
        let g = &self.window;
        g.size == [1, 1] && g.stride == [1, 1] && g.pad == [0; 4]
    }
}

impl LayerKernel for ConvKernel {
    fn forward(
        &mut self,
        inputs: &[&Activation],
        _ctx: &mut ForwardCtx,
    ) -> Result<Vec<Activation>> {
        let x = inputs
            .first()
            .ok_or_else(|| Error::layer(&self.name, "no input"))?;
        check_shape(&self.name, "in", x, &self.in_shape)?;
        self.check_learnables()?;
        let data = if x.data.is_standard_layout() {
            x.data.clone()
        } else {
            x.data.as_standard_layout().into_owned().into_shared()
        };
        let g = self.window;
        let n = data.shape()[0];
        let c = self.in_shape.channels;
        let f = self.weights.value.shape()[0];
        let (k, p) = (c * g.size[0] * g.size[1], g.out_len());
        let frame_in = c * g.input[0] * g.input[1];
        let w = self.weights.value.as_standard_layout();
        let w = w.as_slice().expect("standard layout");
        let bias = self.bias.value.as_standard_layout();
        let bias = bias.as_slice().expect("standard layout");
        let xs = data.as_slice().expect("standard layout");
        let pointwise = self.is_pointwise();
        let real = real_frames(x, n);
        let is_real = |i: usize| real.as_ref().is_none_or(|r| r[i]);
        let mut y = vec![0f32; n * f * p];
        let per = frames_per_task(n);
        let threads = gemm_threads(n);
        y.par_chunks_mut(per * f * p)
            .zip(xs.par_chunks(per * frame_in))
            .enumerate()
            .for_each(|(task, (yc, xc))| {
                let mut col = if pointwise {
                    Vec::new()
                } else {
                    vec![0f32; k * p]
                };
                let frames = yc.chunks_exact_mut(f * p).zip(xc.chunks_exact(frame_in));
                for (i, (yn, xn)) in frames.enumerate() {
                    if !is_real(task * per + i) {
                        continue; // stays zeros
                    }
                    let colm: &[f32] = if pointwise {
                        xn
                    } else {
                        im2col(xn, c, &g, &mut col);
                        &col
                    };
                    // The product overwrites the frame (the gemm crate reads
                    // `C` only when accumulating), then the bias is added.
                    gemm_frame(
                        view(w, f, k),
                        view(colm, k, p),
                        view_mut(yn, f, p),
                        false,
                        threads,
                    );
                    for (row, &b) in yn.chunks_exact_mut(p).zip(bias) {
                        row.iter_mut().for_each(|v| *v += b);
                    }
                }
            });
        self.input = Some(data);
        self.real = real;
        let y =
            ArrayD::from_shape_vec(vec![n, f, g.output[0], g.output[1]], y).expect("output size");
        Ok(vec![x.like(y)])
    }

    fn backward(
        &mut self,
        mut grads: Vec<Option<ArrayD<f32>>>,
    ) -> Result<Vec<Option<ArrayD<f32>>>> {
        self.check_learnables()?;
        let x = self.input.as_ref().ok_or_else(|| no_forward(&self.name))?;
        let g = self.window;
        let n = x.shape()[0];
        let c = self.in_shape.channels;
        let f = self.weights.value.shape()[0];
        let (k, p) = (c * g.size[0] * g.size[1], g.out_len());
        let frame_in = c * g.input[0] * g.input[1];
        let out_shape = [n, f, g.output[0], g.output[1]];
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
        let xs = x.as_slice().expect("standard layout");
        let w = self.weights.value.as_standard_layout();
        let w = w.as_slice().expect("standard layout");
        let pointwise = self.is_pointwise();
        let need_dx = self.input_grad_needed;
        let real = self.real.as_deref().filter(|r| r.len() == n);
        let is_real = |i: usize| real.is_none_or(|r| r[i]);
        let mut dx = vec![0f32; n * frame_in];
        let per = frames_per_task(n);
        let threads = gemm_threads(n);
        // Each task: its frames' input gradients, and its partial weight and bias gradients.
        let partials: Vec<(Vec<f32>, Vec<f64>)> = dx
            .par_chunks_mut(per * frame_in)
            .zip(xs.par_chunks(per * frame_in))
            .zip(dys.par_chunks(per * f * p))
            .enumerate()
            .map(|(task, ((dxc, xc), dyc))| {
                let mut dw = vec![0f32; f * k];
                let mut db = vec![0f64; f];
                let (mut col, mut dcol) = if pointwise {
                    (Vec::new(), Vec::new())
                } else {
                    (vec![0f32; k * p], vec![0f32; k * p])
                };
                let frames = dxc
                    .chunks_exact_mut(frame_in)
                    .zip(xc.chunks_exact(frame_in))
                    .zip(dyc.chunks_exact(f * p));
                for (i, ((dxn, xn), dyn_)) in frames.enumerate() {
                    if !is_real(task * per + i) {
                        continue; // no gradient to or from a padded frame
                    }
                    for (s, row) in db.iter_mut().zip(dyn_.chunks_exact(p)) {
                        *s += sum_f64(row);
                    }
                    let dym = view(dyn_, f, p);
                    // dW += dY·colᵀ: [F, P]·[P, K].
                    let colm: &[f32] = if pointwise {
                        xn
                    } else {
                        im2col(xn, c, &g, &mut col);
                        &col
                    };
                    gemm_frame(
                        dym,
                        view(colm, k, p).t(),
                        view_mut(&mut dw, f, k),
                        true,
                        threads,
                    );
                    // dcol = Wᵀ·dY: [K, F]·[F, P], then scattered back onto the frame.
                    if !need_dx {
                        continue;
                    }
                    if pointwise {
                        gemm_frame(view(w, f, k).t(), dym, view_mut(dxn, k, p), false, threads);
                    } else {
                        gemm_frame(
                            view(w, f, k).t(),
                            dym,
                            view_mut(&mut dcol, k, p),
                            false,
                            threads,
                        );
                        col2im(&dcol, c, &g, dxn);
                    }
                }
                (dw, db)
            })
            .collect();
        let mut dw = vec![0f32; f * k];
        let mut db = vec![0f64; f];
        for (pw, pb) in partials {
            dw.iter_mut().zip(&pw).for_each(|(a, b)| *a += b);
            db.iter_mut().zip(&pb).for_each(|(a, b)| *a += b);
        }
        self.weights.grad =
            ArrayD::from_shape_vec(self.weights.value.shape(), dw).expect("weights size");
        self.bias.grad =
            ArrayD::from_shape_vec(vec![f], db.into_iter().map(|v| v as f32).collect())
                .expect("bias size");
        if !need_dx {
            return Ok(vec![None]);
        }
        let dx = ArrayD::from_shape_vec(x.shape(), dx).expect("input size");
        Ok(vec![Some(dx)])
    }

    fn set_input_grad_needed(&mut self, needed: bool) {
        self.input_grad_needed = needed;
    }

    fn learnables(&self) -> Vec<&Learnable> {
        vec![&self.weights, &self.bias]
    }
    fn learnables_mut(&mut self) -> Vec<&mut Learnable> {
        vec![&mut self.weights, &mut self.bias]
    }
}

/// Fills `col` (`[C·fh·fw, Ho·Wo]`, row `(c·fh + i)·fw + j`) from one frame
/// `x` (`[C, H, W]`); positions in the padding get 0.
fn im2col(x: &[f32], channels: usize, g: &Window, col: &mut [f32]) {
    let ([h, w], [fh, fw], [ho, wo]) = (g.input, g.size, g.output);
    let p = ho * wo;
    let (sw, dw, left) = (g.stride[1], g.dilation[1], g.pad[2]);
    for ci in 0..channels {
        let plane = &x[ci * h * w..(ci + 1) * h * w];
        for i in 0..fh {
            for j in 0..fw {
                let row = ((ci * fh + i) * fw + j) * p;
                let dst_row = &mut col[row..row + p];
                let (lo, hi) = g.valid_cols(j);
                for (oy, dst) in dst_row.chunks_exact_mut(wo).enumerate() {
                    let Some(iy) = g.in_row(oy, i).filter(|_| lo < hi) else {
                        dst.fill(0.0);
                        continue;
                    };
                    let src = &plane[iy * w..(iy + 1) * w];
                    dst[..lo].fill(0.0);
                    dst[hi..].fill(0.0);
                    let first = lo * sw + j * dw - left;
                    if sw == 1 {
                        dst[lo..hi].copy_from_slice(&src[first..first + (hi - lo)]);
                    } else {
                        for (d, s) in dst[lo..hi].iter_mut().zip(src[first..].iter().step_by(sw)) {
                            *d = *s;
                        }
                    }
                }
            }
        }
    }
}

/// The adjoint of [`im2col`]: adds each element of `col` (`[C·fh·fw, Ho·Wo]`)
/// onto the input position it was read from in `x` (`[C, H, W]`).
fn col2im(col: &[f32], channels: usize, g: &Window, x: &mut [f32]) {
    let ([h, w], [fh, fw], [ho, wo]) = (g.input, g.size, g.output);
    let p = ho * wo;
    let (sw, dw, left) = (g.stride[1], g.dilation[1], g.pad[2]);
    for ci in 0..channels {
        let plane = &mut x[ci * h * w..(ci + 1) * h * w];
        for i in 0..fh {
            for j in 0..fw {
                let row = ((ci * fh + i) * fw + j) * p;
                let src_row = &col[row..row + p];
                let (lo, hi) = g.valid_cols(j);
                if lo >= hi {
                    continue;
                }
                for (oy, src) in src_row.chunks_exact(wo).enumerate() {
                    let Some(iy) = g.in_row(oy, i) else { continue };
                    let dst = &mut plane[iy * w..(iy + 1) * w];
                    let first = lo * sw + j * dw - left;
                    if sw == 1 {
                        dst[first..first + (hi - lo)]
                            .iter_mut()
                            .zip(&src[lo..hi])
                            .for_each(|(d, s)| *d += s);
                    } else {
                        for (d, s) in dst[first..].iter_mut().step_by(sw).zip(&src[lo..hi]) {
                            *d += s;
                        }
                    }
                }
            }
        }
    }
}

/// A row-major `[rows, cols]` view of a slice holding exactly that many elements.
fn view(s: &[f32], rows: usize, cols: usize) -> ArrayView2<'_, f32> {
    ArrayView2::from_shape((rows, cols), &s[..rows * cols])
        .expect("matrix view of a slice of its size")
}

fn view_mut(s: &mut [f32], rows: usize, cols: usize) -> ArrayViewMut2<'_, f32> {
    ArrayViewMut2::from_shape((rows, cols), &mut s[..rows * cols])
        .expect("matrix view of a slice of its size")
}

/// `c = a·b` (or `c += a·b` with `accumulate`) for one frame, on `threads`
/// threads: 1 when the convolution already runs frames in parallel (nesting the
/// product's own parallelism would only add overhead), all of them when there
/// are fewer frames than threads. Shapes: `a` `[m, k]`, `b` `[k, n]`, `c` `[m, n]`.
fn gemm_frame(
    a: ArrayView2<f32>,
    b: ArrayView2<f32>,
    c: ArrayViewMut2<f32>,
    accumulate: bool,
    threads: usize,
) {
    seqnet_kernels::gemm::matmul_into_threads(a, b, c, accumulate, threads);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct cross-correlation of one frame, for reference.
    fn naive(x: &[f32], c: usize, g: &Window, w: &[f32], f: usize) -> Vec<f32> {
        let ([h, wd], [fh, fw], [ho, wo]) = (g.input, g.size, g.output);
        let mut y = vec![0f32; f * ho * wo];
        for fi in 0..f {
            for oy in 0..ho {
                for ox in 0..wo {
                    let mut s = 0.0;
                    for ci in 0..c {
                        for i in 0..fh {
                            for j in 0..fw {
                                let iy = (oy * g.stride[0] + i * g.dilation[0]) as isize
                                    - g.pad[0] as isize;
                                let ix = (ox * g.stride[1] + j * g.dilation[1]) as isize
                                    - g.pad[2] as isize;
                                if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < wd {
                                    s += x[(ci * h + iy as usize) * wd + ix as usize]
                                        * w[((fi * c + ci) * fh + i) * fw + j];
                                }
                            }
                        }
                    }
                    y[(fi * ho + oy) * wo + ox] = s;
                }
            }
        }
        y
    }

    #[test]
    fn same_padding_matches_matlab() {
        // 7 wide, filter 4, stride 2: out ceil(7/2) = 4, total pad (4−1)·2 + 4 − 7 = 3: 1 left, 2 right.
        let g = Window::resolve([7, 7], [4, 4], [2, 2], [1, 1], Padding::Same, "filter").unwrap();
        assert_eq!(g.output, [4, 4]);
        assert_eq!(g.pad, [1, 2, 1, 2]);
        let g = Window::resolve([6, 5], [3, 3], [1, 1], [2, 2], Padding::Same, "filter").unwrap();
        assert_eq!(g.output, [6, 5]);
        assert_eq!(g.pad, [2, 2, 2, 2]);
        assert!(Window::resolve(
            [3, 3],
            [5, 5],
            [1, 1],
            [1, 1],
            Padding::uniform(0),
            "filter"
        )
        .is_err());
    }

    #[test]
    fn im2col_product_matches_direct_convolution() {
        let cases = [
            ([9, 8], [3, 2], [1, 1], [1, 1], Padding::default()),
            (
                [9, 8],
                [3, 3],
                [2, 3],
                [1, 1],
                Padding::Explicit([1, 2, 0, 3]),
            ),
            ([10, 7], [2, 3], [1, 2], [2, 2], Padding::Same),
            ([5, 5], [5, 5], [1, 1], [1, 1], Padding::uniform(2)),
        ];
        // And random geometries, including windows that hang over the padding.
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(9);
        let mut r = |lo: usize, hi: usize| rand::Rng::random_range(&mut rng, lo..=hi);
        let random: Vec<_> = (0..300)
            .map(|_| {
                let pad = if r(0, 3) == 0 {
                    Padding::Same
                } else {
                    Padding::Explicit([r(0, 3), r(0, 3), r(0, 3), r(0, 3)])
                };
                (
                    [r(1, 9), r(1, 9)],
                    [r(1, 4), r(1, 4)],
                    [r(1, 3), r(1, 3)],
                    [r(1, 3), r(1, 3)],
                    pad,
                )
            })
            .filter(|&(i, s, st, d, p)| Window::resolve(i, s, st, d, p, "filter").is_ok())
            .collect();
        assert!(random.len() > 100);
        for (input, size, stride, dil, pad) in cases.into_iter().chain(random) {
            let g = Window::resolve(input, size, stride, dil, pad, "filter").unwrap();
            let (c, f) = (2, 3);
            let x: Vec<f32> = (0..c * input[0] * input[1])
                .map(|i| ((i * 37) % 11) as f32 - 5.0)
                .collect();
            let w: Vec<f32> = (0..f * c * size[0] * size[1])
                .map(|i| ((i * 13) % 7) as f32 - 3.0)
                .collect();
            let (k, p) = (c * size[0] * size[1], g.out_len());
            let mut col = vec![0f32; k * p];
            im2col(&x, c, &g, &mut col);
            let mut y = vec![0f32; f * p];
            gemm_frame(
                view(&w, f, k),
                view(&col, k, p),
                view_mut(&mut y, f, p),
                false,
                1,
            );
            assert_eq!(y, naive(&x, c, &g, &w, f), "{g:?}");
            // col2im is im2col's adjoint: <im2col(x), z> = <x, col2im(z)>.
            let z: Vec<f32> = (0..k * p).map(|i| ((i * 7) % 5) as f32 - 2.0).collect();
            let mut back = vec![0f32; x.len()];
            col2im(&z, c, &g, &mut back);
            let lhs: f32 = col.iter().zip(&z).map(|(a, b)| a * b).sum();
            let rhs: f32 = x.iter().zip(&back).map(|(a, b)| a * b).sum();
            assert_eq!(lhs, rhs, "{g:?}");
        }
    }
}
