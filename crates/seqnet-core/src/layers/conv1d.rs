//! `Convolution1d`: MATLAB's `convolution1dLayer`, one matrix product for the
//! whole mini-batch: on the sequences copied into slots, whose overlapping
//! windows are the im2col matrix without writing it
//! ([`seqnet_kernels::conv1d`]), when the stride and dilation are 1 and the
//! padding is a value; otherwise by im2col over each sequence's own windows.

use super::util::{grad_or_zeros, no_forward, single};
use super::window1d::{per_sequence_grad, BatchWindows, Padding1d, Window1d};
use super::{name_field, named, weight_bias_options};
use crate::activation::Activation;
use crate::error::{Error, Result};
use crate::format::{ActShape, Format};
use crate::init::{BiasInitializer, WeightsInitializer};
use crate::layer::{ForwardCtx, LayerDef, LayerKernel, Params, ShapeError};
use crate::learnable::{Initializer, Learnable, LearnableSpec};
use crate::torch::TorchLayout;
use ndarray::{ArrayD, ArrayView2, ArrayViewMut2};
use rayon::prelude::*;
use seqnet_kernels::conv1d::{
    gather_slots, scatter_slots, transpose, windows_product, windows_t_product, Span,
};
use seqnet_kernels::gemm::matmul_into;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::sync::Arc;

/// What a 1-D convolution reads in its padding (MATLAB's `'PaddingValue'`).
///
/// Serialised as a number or as `"symmetric-include-edge"`,
/// `"symmetric-exclude-edge"`, `"replicate"`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ConvPaddingValue {
    /// This value (MATLAB's default, 0).
    Value(f32),
    /// The sequence mirrored at its ends, edge steps repeated
    /// (`… x₁ x₀ | x₀ x₁ …`); mirrored again as often as the padding needs.
    SymmetricIncludeEdge,
    /// The sequence mirrored at its ends, edge steps not repeated
    /// (`… x₂ x₁ | x₀ x₁ …`); a one-step sequence repeats its step.
    SymmetricExcludeEdge,
    /// The sequence's first or last step repeated.
    Replicate,
}

impl Default for ConvPaddingValue {
    fn default() -> Self {
        ConvPaddingValue::Value(0.0)
    }
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum PaddingValueRepr {
    Value(f32),
    Name(String),
}

impl Serialize for ConvPaddingValue {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            ConvPaddingValue::Value(v) => PaddingValueRepr::Value(*v),
            ConvPaddingValue::SymmetricIncludeEdge => {
                PaddingValueRepr::Name("symmetric-include-edge".into())
            }
            ConvPaddingValue::SymmetricExcludeEdge => {
                PaddingValueRepr::Name("symmetric-exclude-edge".into())
            }
            ConvPaddingValue::Replicate => PaddingValueRepr::Name("replicate".into()),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for ConvPaddingValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error as _;
        match PaddingValueRepr::deserialize(d)? {
            PaddingValueRepr::Value(v) => Ok(ConvPaddingValue::Value(v)),
            PaddingValueRepr::Name(s) => match s.to_ascii_lowercase().as_str() {
                "symmetric-include-edge" => Ok(ConvPaddingValue::SymmetricIncludeEdge),
                "symmetric-exclude-edge" => Ok(ConvPaddingValue::SymmetricExcludeEdge),
                "replicate" => Ok(ConvPaddingValue::Replicate),
                _ => Err(D::Error::custom(format!(
                    "padding value must be a number, \"symmetric-include-edge\", \"symmetric-exclude-edge\" or \"replicate\", got \"{s}\""
                ))),
            },
        }
    }
}

/// Where window tap position `p` (relative to the first real step) of a
/// sequence of `len ≥ 1` steps reads: a real step, or a constant.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Tap {
    Step(usize),
    Constant(f32),
}

impl ConvPaddingValue {
    fn tap(self, p: isize, len: usize) -> Tap {
        if (0..len as isize).contains(&p) {
            return Tap::Step(p as usize);
        }
        let n = len as isize;
        Tap::Step(match self {
            ConvPaddingValue::Value(v) => return Tap::Constant(v),
            ConvPaddingValue::Replicate => p.clamp(0, n - 1) as usize,
            ConvPaddingValue::SymmetricIncludeEdge => {
                let m = p.rem_euclid(2 * n);
                (if m < n { m } else { 2 * n - 1 - m }) as usize
            }
            ConvPaddingValue::SymmetricExcludeEdge if n == 1 => 0,
            ConvPaddingValue::SymmetricExcludeEdge => {
                let m = p.rem_euclid(2 * n - 2);
                (if m < n { m } else { 2 * n - 2 - m }) as usize
            }
        })
    }
}

/// MATLAB's `convolution1dLayer(filterSize, numFilters)`: a cross-correlation
/// over time, `y[t, f] = b[f] + Σ_{c,k} W[f, c, k] · x[t·stride − before + k·dilation, c]`.
///
/// Input `C×B×T` (`[T, B, C]`), output `F×B×T'` (`[T', B, F]`).
///
/// **Masking.** Each sequence is convolved as if alone: its padding is
/// resolved from its own length, a window position outside its real steps
/// reads the layer's `PaddingValue` (never the mini-batch's padded steps), and
/// its outputs are placed where the output's sequence lengths say (first for
/// right padding, last for left padding). Output lengths are each sequence's
/// own output length (`L` for `"same"` and `"causal"` with stride 1,
/// `ceil(L / stride)` with a stride, `floor((L + before + after − extent) / stride) + 1`
/// with numbers, 0 for a sequence shorter than the window); `T'` is that of the
/// padded length `T`. Padded output steps are 0 and send back no gradient.
///
/// Learnables: `Weights` `[F, C, K]` (PyTorch's layout), `Bias` `[F]`.
/// Glorot initialization uses MATLAB's fans `K·C` and `K·F`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Convolution1d {
    /// The layer's name, unique in its graph.
    #[serde(default)]
    pub name: String,
    /// `K`, the filter's length in steps.
    pub filter_size: usize,
    /// `F`, the number of output channels.
    pub num_filters: usize,
    /// Step between windows, default 1.
    #[serde(default = "one_usize")]
    pub stride: usize,
    /// Spacing of the filter's taps, default 1.
    #[serde(default = "one_usize")]
    pub dilation_factor: usize,
    /// Default: no padding.
    #[serde(default)]
    pub padding: Padding1d,
    /// What the padding reads; default 0.
    #[serde(default)]
    pub padding_value: ConvPaddingValue,
    /// How `Weights` `[F, C, K]` start; default Glorot with fans `K·C`, `K·F`.
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
fn one_usize() -> usize {
    1
}

named!(Convolution1d);

impl Convolution1d {
    /// `num_filters` filters of `filter_size` steps, stride 1, no padding, no dilation.
    pub fn new(filter_size: usize, num_filters: usize) -> Self {
        Convolution1d {
            name: String::new(),
            filter_size,
            num_filters,
            stride: 1,
            dilation_factor: 1,
            padding: Padding1d::default(),
            padding_value: ConvPaddingValue::default(),
            weights_initializer: glorot(),
            bias_initializer: zeros(),
            weight_l2_factor: 1.0,
            bias_l2_factor: 0.0,
            weight_learn_rate_factor: 1.0,
            bias_learn_rate_factor: 1.0,
        }
    }
    /// Step between windows.
    pub fn stride(mut self, stride: usize) -> Self {
        self.stride = stride;
        self
    }
    /// Spacing of the filter's taps.
    pub fn dilation_factor(mut self, dilation: usize) -> Self {
        self.dilation_factor = dilation;
        self
    }
    /// `'same'`, `'causal'` or `[before, after]` steps of padding.
    pub fn padding(mut self, padding: Padding1d) -> Self {
        self.padding = padding;
        self
    }
    /// What the padding reads.
    pub fn padding_value(mut self, v: ConvPaddingValue) -> Self {
        self.padding_value = v;
        self
    }
    weight_bias_options!("[F, C, K]", "[F]");

    fn window(&self, x: &ActShape) -> std::result::Result<Window1d, ShapeError> {
        if x.format != Format::CBT {
            return Err(ShapeError::new(
                0,
                format!("expects feature sequences (C×B×T), got {x}"),
            ));
        }
        if self.num_filters == 0 {
            return Err(ShapeError::new(0, "NumFilters must be positive"));
        }
        if x.channels == 0 {
            return Err(ShapeError::new(0, "the input has no channels"));
        }
        if let ConvPaddingValue::Value(v) = self.padding_value {
            if !v.is_finite() {
                return Err(ShapeError::new(
                    0,
                    format!("PaddingValue must be finite, got {v}"),
                ));
            }
        }
        Window1d::new(
            self.filter_size,
            self.stride,
            self.dilation_factor,
            self.padding,
            "FilterSize",
        )
        .map_err(|m| ShapeError::new(0, m))
    }
}

impl LayerDef for Convolution1d {
    name_field!();
    fn type_name(&self) -> &'static str {
        "1-D Convolution"
    }
    fn infer(&self, inputs: &[ActShape]) -> Result<Vec<ActShape>, ShapeError> {
        let x = single(inputs)?;
        self.window(&x)?;
        Ok(vec![ActShape::sequence(self.num_filters)])
    }
    fn learnables(&self, inputs: &[ActShape]) -> Vec<LearnableSpec> {
        let c = inputs.first().map(|s| s.channels).unwrap_or(0);
        let (f, k) = (self.num_filters, self.filter_size);
        vec![
            LearnableSpec::weights(
                "Weights",
                vec![f, c, k],
                Initializer::Weights {
                    init: self.weights_initializer,
                    fan_in: k * c,
                    fan_out: k * f,
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
        Ok(Box::new(Conv1dKernel {
            name: self.name.clone(),
            channels: x.channels,
            filters: self.num_filters,
            window,
            padding_value: self.padding_value,
            weights: params.learnable("Weights")?,
            bias: params.learnable("Bias")?,
            cache: None,
            dcol: Vec::new(),
            scratch: Vec::new(),
            input_grad_needed: true,
        }))
    }
    fn torch_layout(&self) -> Option<TorchLayout> {
        Some(TorchLayout::weight_bias("nn.Conv1d"))
    }
}

struct Conv1dKernel {
    name: String,
    /// `C`.
    channels: usize,
    /// `F`.
    filters: usize,
    window: Window1d,
    padding_value: ConvPaddingValue,
    weights: Learnable,
    bias: Learnable,
    cache: Option<Cache>,
    /// Backward's `[T'·B, K·C]` buffer, kept between passes (a fresh one
    /// would be zeroed and page-faulted in every time).
    dcol: Vec<f32>,
    /// The direct path's product output (forward `[M, F]`, backward the
    /// output gradient in slots `[B, S, F]`), kept between passes.
    scratch: Vec<f32>,
    /// Whether backward returns the input's gradient (skipping `dY·Wᵀ` and
    /// col2im when not, e.g. for a convolution right after the input layer).
    input_grad_needed: bool,
}

/// What backward needs from its forward.
struct Cache {
    /// Without `direct`, the im2col matrix `[T'·B, K·C]`, row `t'·B + b`,
    /// column `k·C + c`; rows of padded output steps are 0. With `direct`,
    /// the input in slots `[B, S, C]` ([`Direct`]).
    col: Vec<f32>,
    direct: Option<Direct>,
    /// The weights as the product's right-hand side `[K·C, F]`
    /// ([`Conv1dKernel::taps_matrix`]), as the forward used them.
    wr: Vec<f32>,
    windows: BatchWindows,
    /// The input's `[T, B]`.
    time: usize,
    batch: usize,
}

/// The direct path's layout (stride and dilation 1, a padding value, the
/// same padding before every sequence): sequence `b`'s input step `i` is row
/// `b·S + before + i` of the slots `[B, S, C]`, the rest of its slot holds the
/// padding value, and output `j` of sequence `b` is the window of `K` rows
/// from slot row `b·S + j`; its output gradient sits at slot row
/// `b·S + K − 1 − before + j`, so input step `i`'s gradient is the window of
/// `K` gradient rows from `b·S + i` times the flipped filter.
/// `S = max(T, T') + K − 1` keeps every window needed inside its slot.
#[derive(Debug, Clone, Copy)]
struct Direct {
    /// `S`.
    slot_rows: usize,
    before: usize,
    /// The padding value.
    fill: f32,
}

/// Which of a sequence's steps a [`Span`] places: its input or its output.
#[derive(Debug, Clone, Copy)]
enum Steps {
    Input,
    Output,
}

/// One [`Span`] per sequence of `windows`: its input or output steps, from
/// row `slot_start` of its slot.
fn spans(windows: &BatchWindows, steps: Steps, slot_start: usize) -> Vec<Span> {
    windows
        .seqs
        .iter()
        .map(|s| {
            let (time_start, len) = match steps {
                Steps::Input => (s.in_start, s.len),
                Steps::Output => (s.out_start, s.out_len),
            };
            Span {
                time_start,
                slot_start,
                len,
            }
        })
        .collect()
}

impl Direct {
    /// Windows computed: every slot row whose window ends inside the slots.
    fn rows(&self, batch: usize, k: usize) -> usize {
        batch * self.slot_rows - (k - 1)
    }
}

/// Whether the direct path ([`Direct`]) is taken where the settings allow it
/// (cnn1d-train-step: ~0.87 of im2col's time). It rounds differently from
/// im2col: its sums are as exact, in another order. On seqnet-train's
/// `cnn1d_follows_pytorchs_training_trajectory` that order moved
/// batchnorm_2/Offset by 1.04e-3 of its size after 30 Adam steps, exactly as
/// summing im2col's weight gradient over three row blocks does; that test
/// now measures such values against how far Adam can move them. Forward,
/// gradients and masking match the definition
/// (`value_padding_matches_the_definition`).
const SLOTS_PATH: bool = true;

/// Rows per part of the bias gradient's sum.
const BIAS_GRAD_ROWS: usize = 512;

/// A row-major `[rows, cols]` view of a slice holding exactly that many elements.
fn view(s: &[f32], rows: usize, cols: usize) -> ArrayView2<'_, f32> {
    ArrayView2::from_shape((rows, cols), &s[..rows * cols])
        .expect("matrix view of a slice of its size")
}

fn view_mut(s: &mut [f32], rows: usize, cols: usize) -> ArrayViewMut2<'_, f32> {
    ArrayViewMut2::from_shape((rows, cols), &mut s[..rows * cols])
        .expect("matrix view of a slice of its size")
}

impl Conv1dKernel {
    /// Checks that the learnables still have their shapes (they are public and mutable).
    fn check_learnables(&self) -> Result<()> {
        let want = [self.filters, self.channels, self.window.size];
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

    /// `Weights` `[F, C, K]` as the product's right-hand side `[K·C, F]`
    /// (row `k·C + c`), matching the im2col columns.
    fn taps_matrix(&self) -> Vec<f32> {
        let (f, c, k) = (self.filters, self.channels, self.window.size);
        let w = self.weights.value.as_standard_layout();
        let w = w.as_slice().expect("standard layout");
        // `[F, K, C]` first (each filter's `C·K` values in cache), then
        // transposed in tiles (a direct scatter strided by `F` was ~1 % of
        // cnn1d-train-step).
        let mut wkc = vec![0f32; k * c * f];
        for (src, dst) in w.chunks_exact(c * k).zip(wkc.chunks_exact_mut(c * k)) {
            for ci in 0..c {
                for ki in 0..k {
                    dst[ki * c + ci] = src[ci * k + ki];
                }
            }
        }
        let mut wr = vec![0f32; k * c * f];
        transpose(&wkc, f, k * c, &mut wr);
        wr
    }

    /// The direct layout for these windows, if the layer's settings allow
    /// it and [`SLOTS_PATH`] is on.
    fn direct(&self, windows: &BatchWindows, time: usize) -> Option<Direct> {
        let ConvPaddingValue::Value(fill) = self.padding_value else {
            return None;
        };
        if !SLOTS_PATH {
            return None;
        }
        let k = self.window.size;
        if self.window.stride != 1 || self.window.dilation != 1 {
            return None;
        }
        let mut real = windows.seqs.iter().filter(|s| s.len > 0);
        let before = real.next().map_or(0, |s| s.before);
        if before >= k || real.any(|s| s.before != before) {
            return None;
        }
        Some(Direct {
            slot_rows: time.max(windows.out_time()) + k - 1,
            before,
            fill,
        })
    }

    /// The weights `[K·C, F]` of [`Conv1dKernel::taps_matrix`] flipped for
    /// the input gradient: `[K·F, C]`, row `k'·F + f` holding
    /// `W[f, ·, K − 1 − k']`.
    fn flipped_taps(&self, wr: &[f32]) -> Vec<f32> {
        let (f, c, k) = (self.filters, self.channels, self.window.size);
        // `[F, K·C]`, row `f` holding `W[f, c, k]` at `k·C + c`.
        let mut wkc = vec![0f32; k * f * c];
        transpose(wr, k * c, f, &mut wkc);
        let mut wf = vec![0f32; k * f * c];
        for kf in 0..k {
            for fi in 0..f {
                let at = (fi * k + k - 1 - kf) * c;
                wf[(kf * f + fi) * c..(kf * f + fi + 1) * c].copy_from_slice(&wkc[at..at + c]);
            }
        }
        wf
    }

    /// Forward on the direct path: the input into `col` as slots, one
    /// product, the real rows with their bias out as `[T', B, F]`.
    fn forward_direct(
        &mut self,
        xs: &[f32],
        windows: &BatchWindows,
        d: Direct,
        col: &mut Vec<f32>,
        wr: &[f32],
    ) -> Vec<f32> {
        let (c, k, f) = (self.channels, self.window.size, self.filters);
        let input = spans(windows, Steps::Input, d.before);
        gather_slots(xs, c, &input, d.slot_rows, d.fill, col);
        let m = d.rows(input.len(), k);
        let mut yp = std::mem::take(&mut self.scratch);
        yp.resize(m * f, 0.0);
        windows_product(col, c, m, k * c, wr, f, &mut yp);
        let out = spans(windows, Steps::Output, 0);
        let bias = self.bias.value.as_standard_layout();
        let bias = bias.as_slice().expect("standard layout");
        let y = scatter_slots(&yp, f, &out, d.slot_rows, Some(bias), windows.out_time());
        self.scratch = yp;
        y
    }

    /// Backward on the direct path: `dWr` `[K·C, F]` into `dwr`, and the
    /// input gradient `[T, B, C]` when `input_grad` is set.
    fn backward_direct(
        &mut self,
        dys: &[f32],
        d: Direct,
        dwr: &mut [f32],
        input_grad: bool,
    ) -> Option<Vec<f32>> {
        let (c, k, f) = (self.channels, self.window.size, self.filters);
        let cache = self.cache.take().expect("checked by the caller");
        let o = k - 1 - d.before;
        let out = spans(&cache.windows, Steps::Output, o);
        let mut dyq = std::mem::take(&mut self.scratch);
        gather_slots(dys, f, &out, d.slot_rows, 0.0, &mut dyq);
        // Window row r's output gradient is slot row r + o: from `o` on, with
        // zeros wherever a row is not a real output.
        let m = d.rows(cache.batch, k);
        windows_t_product(&cache.col, c, m, k * c, &dyq[o * f..], f, dwr);
        let dx = input_grad.then(|| {
            let wf = self.flipped_taps(&cache.wr);
            let mut dxp = std::mem::take(&mut self.dcol);
            dxp.resize(m * c, 0.0);
            windows_product(&dyq, f, m, k * f, &wf, c, &mut dxp);
            let input = spans(&cache.windows, Steps::Input, 0);
            let dx = scatter_slots(&dxp, c, &input, d.slot_rows, None, cache.time);
            self.dcol = dxp;
            dx
        });
        self.scratch = dyq;
        self.cache = Some(cache);
        dx
    }

    /// Keeps what backward needs and wraps `y` `[T', B, F]` as the output.
    #[allow(clippy::too_many_arguments)]
    fn finish_forward(
        &mut self,
        y: Vec<f32>,
        col: Vec<f32>,
        wr: Vec<f32>,
        windows: BatchWindows,
        direct: Option<Direct>,
        time: usize,
        batch: usize,
    ) -> Vec<Activation> {
        let shape = vec![windows.out_time(), batch, self.filters];
        let lengths = Arc::new(windows.out_lengths.clone());
        self.cache = Some(Cache {
            col,
            direct,
            wr,
            windows,
            time,
            batch,
        });
        let y = ArrayD::from_shape_vec(shape, y).expect("output size");
        vec![Activation {
            data: y.into_shared(),
            format: Format::CBT,
            lengths: Some(lengths),
        }]
    }

    /// Fills `col` (`[T'·B, K·C]`, every element written) from `xs`
    /// (`[T, B, C]`): row `t'·B + b` holds, for each tap `k`, the `C` values
    /// the window of sequence `b`'s output at `t'` reads, or the padding
    /// value; rows of padded output steps are 0.
    fn im2col(&self, xs: &[f32], batch: usize, windows: &BatchWindows, col: &mut [f32]) {
        let (c, k) = (self.channels, self.window.size);
        let row_len = k * c;
        col.par_chunks_mut(batch * row_len)
            .enumerate()
            .for_each(|(t_out, rows)| {
                for (b, (row, sw)) in rows
                    .chunks_exact_mut(row_len)
                    .zip(&windows.seqs)
                    .enumerate()
                {
                    let Some(j) = t_out.checked_sub(sw.out_start).filter(|&j| j < sw.out_len)
                    else {
                        row.fill(0.0);
                        continue;
                    };
                    for (ki, dst) in row.chunks_exact_mut(c).enumerate() {
                        let p = sw.tap(&self.window, j, ki);
                        match self.padding_value.tap(p, sw.len) {
                            Tap::Step(i) => {
                                let at = ((sw.in_start + i) * batch + b) * c;
                                dst.copy_from_slice(&xs[at..at + c]);
                            }
                            Tap::Constant(v) => dst.fill(v),
                        }
                    }
                }
            });
    }

    /// The adjoint of [`Conv1dKernel::im2col`]: adds each real row of `dcol`
    /// onto the input steps it was read from, giving `dx` `[T, B, C]`.
    fn col2im(&self, dcol: &[f32], cache: &Cache) -> Vec<f32> {
        let (c, k, batch) = (self.channels, self.window.size, cache.batch);
        let row_len = k * c;
        per_sequence_grad(cache.time, c, &cache.windows, |b, sw, d| {
            for j in 0..sw.out_len {
                let r = (sw.out_start + j) * batch + b;
                let row = &dcol[r * row_len..(r + 1) * row_len];
                for (ki, src) in row.chunks_exact(c).enumerate() {
                    let p = sw.tap(&self.window, j, ki);
                    if let Tap::Step(i) = self.padding_value.tap(p, sw.len) {
                        d[i * c..(i + 1) * c]
                            .iter_mut()
                            .zip(src)
                            .for_each(|(a, s)| *a += s);
                    }
                }
            }
        })
    }
}

impl LayerKernel for Conv1dKernel {
    fn forward(
        &mut self,
        inputs: &[&Activation],
        _ctx: &mut ForwardCtx,
    ) -> Result<Vec<Activation>> {
        let x = inputs
            .first()
            .ok_or_else(|| Error::layer(&self.name, "no input"))?;
        let want = ActShape::sequence(self.channels);
        super::util::check_shape(&self.name, "in", x, &want)?;
        self.check_learnables()?;
        let (time, batch) = (x.time(), x.batch());
        let windows = self
            .window
            .batch(&x.seq_lengths())
            .map_err(|m| Error::layer(&self.name, m))?;
        let data = x.data.as_standard_layout();
        let xs = data.as_slice().expect("standard layout");
        let (c, k, f) = (self.channels, self.window.size, self.filters);
        let (t_out, row_len) = (windows.out_time(), k * c);
        let rows = t_out * batch;
        // The last pass's buffer, reused: im2col and the slots write every element.
        let mut col = self.cache.take().map(|c| c.col).unwrap_or_default();
        let wr = self.taps_matrix();
        let direct = self.direct(&windows, time);
        if let Some(d) = direct {
            let y = self.forward_direct(xs, &windows, d, &mut col, &wr);
            return Ok(self.finish_forward(y, col, wr, windows, direct, time, batch));
        }
        col.resize(rows * row_len, 0.0);
        self.im2col(xs, batch, &windows, &mut col);
        // The product overwrites `y`, then the bias is added on real rows
        // (padded rows stay 0: their `col` rows are 0). Starting `y` from
        // the bias and letting the product add onto it was no faster: it
        // still takes a pass to write the bias, and the `gemm` crate's
        // microkernel then also reads `C` (cnn1d-train-step 1.03–1.06× this
        // order's time, interleaved).
        let mut y = vec![0f32; rows * f];
        matmul_into(
            view(&col, rows, row_len),
            view(&wr, row_len, f),
            view_mut(&mut y, rows, f),
            false,
        );
        let bias = self.bias.value.as_standard_layout();
        let bias = bias.as_slice().expect("standard layout");
        for (r, yr) in y.chunks_exact_mut(f).enumerate() {
            if windows.out_lengths.is_real(r % batch, r / batch) {
                yr.iter_mut().zip(bias).for_each(|(v, b)| *v += b);
            }
        }
        Ok(self.finish_forward(y, col, wr, windows, None, time, batch))
    }

    fn backward(
        &mut self,
        mut grads: Vec<Option<ArrayD<f32>>>,
    ) -> Result<Vec<Option<ArrayD<f32>>>> {
        self.check_learnables()?;
        let cache = self.cache.as_ref().ok_or_else(|| no_forward(&self.name))?;
        let (c, k, f, batch) = (self.channels, self.window.size, self.filters, cache.batch);
        let (t_out, row_len) = (cache.windows.out_time(), k * c);
        let rows = t_out * batch;
        let out_shape = [t_out, batch, f];
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
        let mut dwr = vec![0f32; row_len * f];
        let direct = cache.direct;
        let dx_direct = match direct {
            Some(d) => self.backward_direct(dys, d, &mut dwr, self.input_grad_needed),
            None => {
                // dWr = colᵀ·dY ([K·C, T'·B]·[T'·B, F]); padded rows of col are 0.
                matmul_into(
                    view(&cache.col, rows, row_len).t(),
                    view(dys, rows, f),
                    view_mut(&mut dwr, row_len, f),
                    false,
                );
                None
            }
        };
        let cache = self.cache.as_ref().ok_or_else(|| no_forward(&self.name))?;
        // dWr `[K·C, F]` → `[F, K·C]` (tiles) → `[F, C, K]` (within each filter).
        let mut dwkc = vec![0f32; f * c * k];
        transpose(&dwr, row_len, f, &mut dwkc);
        let mut dw = vec![0f32; f * c * k];
        for (src, dst) in dwkc.chunks_exact(c * k).zip(dw.chunks_exact_mut(c * k)) {
            for ki in 0..k {
                for ci in 0..c {
                    dst[ci * k + ki] = src[ki * c + ci];
                }
            }
        }
        // Σ dY over the real rows in f64: parts of a fixed number of rows on
        // rayon's threads, added in order (the same sum on any thread count).
        let out_lengths = &cache.windows.out_lengths;
        let parts: Vec<Vec<f64>> = dys
            .par_chunks(f * BIAS_GRAD_ROWS)
            .enumerate()
            .map(|(p, part)| {
                let mut acc = vec![0f64; f];
                for (i, g) in part.chunks_exact(f).enumerate() {
                    let r = p * BIAS_GRAD_ROWS + i;
                    if out_lengths.is_real(r % batch, r / batch) {
                        acc.iter_mut().zip(g).for_each(|(a, &v)| *a += v as f64);
                    }
                }
                acc
            })
            .collect();
        let mut db = vec![0f64; f];
        for p in parts {
            db.iter_mut().zip(p).for_each(|(a, v)| *a += v);
        }
        self.weights.grad = ArrayD::from_shape_vec(vec![f, c, k], dw).expect("weights size");
        self.bias.grad =
            ArrayD::from_shape_vec(vec![f], db.into_iter().map(|v| v as f32).collect())
                .expect("bias size");
        if !self.input_grad_needed {
            return Ok(vec![None]);
        }
        if let Some(dx) = dx_direct {
            let dx = ArrayD::from_shape_vec(vec![cache.time, batch, c], dx).expect("input size");
            return Ok(vec![Some(dx)]);
        }
        // dcol = dY·Wrᵀ ([T'·B, F]·[F, K·C]), then scattered back onto the input.
        let mut dcol = std::mem::take(&mut self.dcol);
        dcol.resize(rows * row_len, 0.0);
        matmul_into(
            view(dys, rows, f),
            view(&cache.wr, row_len, f).t(),
            view_mut(&mut dcol, rows, row_len),
            false,
        );
        let cache = self.cache.as_ref().ok_or_else(|| no_forward(&self.name))?;
        let dx = self.col2im(&dcol, cache);
        self.dcol = dcol;
        let dx = ArrayD::from_shape_vec(vec![cache.time, batch, c], dx).expect("input size");
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::{BuildKernel, Mode};
    use crate::{PaddingDirection, SeqLengths};
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    /// The buffers kept between passes never leak one pass into the next:
    /// batches of other sizes and paddings through one kernel give what a
    /// fresh kernel gives.
    #[test]
    fn a_kernel_reused_on_other_batches_gives_a_fresh_kernels_result() {
        let def = Convolution1d::new(3, 4).padding(Padding1d::Same);
        let shape = ActShape::sequence(2);
        let build = || {
            def.build_kernel(&[shape], &mut StdRng::seed_from_u64(1))
                .unwrap()
        };
        let mut reused = build();
        for (i, (t, lens, dir)) in [
            (9, vec![9, 4, 9], PaddingDirection::Right),
            (4, vec![4, 2], PaddingDirection::Left),
            (6, vec![1, 6, 3, 5], PaddingDirection::Right),
        ]
        .into_iter()
        .enumerate()
        {
            let b = lens.len();
            let data = ArrayD::from_shape_fn(vec![t, b, 2], |ix| {
                (ix[0] * 7 + ix[1] * 3 + ix[2] + i) as f32 * 0.1 - 1.0
            });
            let l = SeqLengths::new(lens, t, dir).unwrap();
            let x = Activation::sequence(data, Some(l)).unwrap();
            let run = |k: &mut Box<dyn LayerKernel>| {
                let mut rng = StdRng::seed_from_u64(0);
                let mut ctx = ForwardCtx {
                    mode: Mode::Training,
                    stateful: false,
                    rng: &mut rng,
                    target: None,
                };
                let y = k
                    .forward(&[&x], &mut ctx)
                    .unwrap()
                    .remove(0)
                    .data
                    .to_owned();
                let g = y.mapv(|v| v * 0.5 + 0.25);
                let dx = k.backward(vec![Some(g)]).unwrap().remove(0).unwrap();
                (y, dx, k.learnables()[0].grad.clone())
            };
            assert_eq!(run(&mut reused), run(&mut build()), "batch {i}");
        }
    }

    /// `(y, dx, dW, db)` of one padded batch from the definition, in f64:
    /// each sequence alone, window positions outside its real steps reading
    /// `fill`, outputs where the windows say.
    #[allow(clippy::type_complexity)]
    fn reference(
        def: &Convolution1d,
        x: &ArrayD<f32>,
        l: &SeqLengths,
        w: &ArrayD<f32>,
        bias: &ArrayD<f32>,
        dy: impl Fn(usize, usize, usize) -> f64,
        fill: f64,
    ) -> (ArrayD<f64>, ArrayD<f64>, ArrayD<f64>, ArrayD<f64>) {
        let (t, batch, c) = (x.shape()[0], x.shape()[1], x.shape()[2]);
        let (f, k) = (def.num_filters, def.filter_size);
        let windows = Window1d::new(k, 1, 1, def.padding, "FilterSize")
            .unwrap()
            .batch(l)
            .unwrap();
        let t_out = windows.out_time();
        let mut y = ArrayD::<f64>::zeros(vec![t_out, batch, f]);
        let mut dx = ArrayD::<f64>::zeros(vec![t, batch, c]);
        let mut dw = ArrayD::<f64>::zeros(vec![f, c, k]);
        let mut db = ArrayD::<f64>::zeros(vec![f]);
        for (b, sw) in windows.seqs.iter().enumerate() {
            let xv = |p: isize, ci: usize| {
                if (0..sw.len as isize).contains(&p) {
                    x[[sw.in_start + p as usize, b, ci]] as f64
                } else {
                    fill
                }
            };
            for j in 0..sw.out_len {
                let to = sw.out_start + j;
                for fi in 0..f {
                    let g = dy(to, b, fi);
                    db[[fi]] += g;
                    let mut acc = bias[[fi]] as f64;
                    for ki in 0..k {
                        let p = j as isize + ki as isize - sw.before as isize;
                        for ci in 0..c {
                            acc += w[[fi, ci, ki]] as f64 * xv(p, ci);
                            dw[[fi, ci, ki]] += g * xv(p, ci);
                            if (0..sw.len as isize).contains(&p) {
                                dx[[sw.in_start + p as usize, b, ci]] += g * w[[fi, ci, ki]] as f64;
                            }
                        }
                    }
                    y[[to, b, fi]] = acc;
                }
            }
        }
        (y, dx, dw, db)
    }

    /// The slots path (stride 1, a padding value) against the definition:
    /// even and odd filters, padded lengths shorter than the filter, one
    /// sequence and several of other lengths (empty ones too), both padding
    /// directions, every padding kind.
    #[test]
    fn value_padding_matches_the_definition() {
        let close = |got: &ArrayD<f32>, want: &ArrayD<f64>, what: &str| {
            assert_eq!(got.shape(), want.shape(), "{what}");
            for (g, w) in got.iter().zip(want) {
                assert!(
                    (*g as f64 - w).abs() < 1e-4 * (1.0 + w.abs()),
                    "{what}: {g} vs {w}"
                );
            }
        };
        let (mut case, mut direct) = (0, 0);
        for k in [1, 2, 3, 4, 5] {
            for padding in [
                Padding1d::Same,
                Padding1d::Causal,
                Padding1d::Explicit([1, 0]),
                Padding1d::Explicit([0, 3]),
            ] {
                for (t, lens) in [
                    (1, vec![1]),
                    (3, vec![3]),
                    (7, vec![7, 2, 0, 5]),
                    (2, vec![2, 1]),
                ] {
                    for dir in [PaddingDirection::Right, PaddingDirection::Left] {
                        case += 1;
                        let fill = [0.0, 0.7][case % 2];
                        let def = Convolution1d::new(k, 3)
                            .padding(padding)
                            .padding_value(ConvPaddingValue::Value(fill));
                        let l = SeqLengths::new(lens.clone(), t, dir).unwrap();
                        let Ok(windows) = def.window(&ActShape::sequence(2)).unwrap().batch(&l)
                        else {
                            continue; // the padded length is shorter than the window
                        };
                        let mut kernel = def
                            .build_kernel(&[ActShape::sequence(2)], &mut StdRng::seed_from_u64(3))
                            .unwrap();
                        let b = lens.len();
                        let x = ArrayD::from_shape_fn(vec![t, b, 2], |ix| {
                            ((ix[0] * 5 + ix[1] * 3 + ix[2] * 7 + case) % 11) as f32 * 0.2 - 1.0
                        });
                        let bias = ArrayD::from_shape_fn(vec![3], |ix| ix[0] as f32 * 0.3 - 0.4);
                        kernel.learnables_mut()[1].value = bias.clone().into();
                        let w = kernel.learnables()[0].value.to_owned();
                        let dy = |t: usize, b: usize, f: usize| {
                            ((t * 3 + b * 5 + f) % 7) as f64 * 0.25 - 0.75
                        };
                        let input = Activation::sequence(x.clone(), Some(l.clone())).unwrap();
                        let mut rng = StdRng::seed_from_u64(0);
                        let mut ctx = ForwardCtx {
                            mode: Mode::Training,
                            stateful: false,
                            rng: &mut rng,
                            target: None,
                        };
                        let y = kernel.forward(&[&input], &mut ctx).unwrap().remove(0);
                        let g = y.data.to_owned();
                        let g =
                            ArrayD::from_shape_fn(g.shape(), |ix| dy(ix[0], ix[1], ix[2]) as f32);
                        let dx = kernel.backward(vec![Some(g)]).unwrap().remove(0).unwrap();
                        let (ry, rdx, rdw, rdb) =
                            reference(&def, &x, &l, &w, &bias, dy, fill as f64);
                        // Padded output steps send back no gradient: the
                        // reference reads `dy` at real outputs only.
                        let what = format!("k {k} {padding:?} t {t} {lens:?} {dir:?}");
                        if windows.seqs.iter().all(|s| s.len == 0 || s.before < k) {
                            direct += 1;
                        }
                        close(&y.data.to_owned(), &ry, &format!("y, {what}"));
                        close(&dx, &rdx, &format!("dx, {what}"));
                        close(&kernel.learnables()[0].grad, &rdw, &format!("dW, {what}"));
                        close(&kernel.learnables()[1].grad, &rdb, &format!("db, {what}"));
                    }
                }
            }
        }
        assert!(
            case > 100 && direct > 100,
            "{case} cases, {direct} on the slots path"
        );
    }

    #[test]
    fn padding_values_read_the_right_steps() {
        use ConvPaddingValue::*;
        let taps = |v: ConvPaddingValue, len: usize| -> Vec<Tap> {
            (-4..len as isize + 4).map(|p| v.tap(p, len)).collect()
        };
        let steps = |s: &[usize]| s.iter().map(|&i| Tap::Step(i)).collect::<Vec<_>>();
        // 3 steps x0 x1 x2, positions −4 … 6.
        assert_eq!(
            taps(Replicate, 3),
            steps(&[0, 0, 0, 0, 0, 1, 2, 2, 2, 2, 2])
        );
        assert_eq!(
            taps(SymmetricIncludeEdge, 3),
            steps(&[2, 2, 1, 0, 0, 1, 2, 2, 1, 0, 0])
        );
        assert_eq!(
            taps(SymmetricExcludeEdge, 3),
            steps(&[0, 1, 2, 1, 0, 1, 2, 1, 0, 1, 2])
        );
        assert_eq!(taps(SymmetricExcludeEdge, 1), steps(&[0; 9]));
        assert_eq!(Value(2.5).tap(-1, 3), Tap::Constant(2.5));
        assert_eq!(Value(2.5).tap(1, 3), Tap::Step(1));
        for (v, json) in [
            (Value(0.5), "0.5"),
            (Replicate, "\"replicate\""),
            (SymmetricExcludeEdge, "\"symmetric-exclude-edge\""),
        ] {
            assert_eq!(serde_json::to_string(&v).unwrap(), json);
            assert_eq!(serde_json::from_str::<ConvPaddingValue>(json).unwrap(), v);
        }
        assert!(serde_json::from_str::<ConvPaddingValue>("\"mirror\"").is_err());
    }
}
