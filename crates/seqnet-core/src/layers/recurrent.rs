//! What the recurrent layers ([`super::Lstm`], [`super::BiLstm`], [`super::Gru`]) share:
//! their options, the per-batch state, masking of padded steps, the initial and
//! kept state, and the output modes.
//!
//! The conventions of the fused kernels (layouts, state slots, masking) are
//! documented in [`seqnet_kernels::recurrent`].

use crate::error::{Error, Result};
use crate::init::{BiasInitializer, WeightsInitializer};
use crate::learnable::Learnable;
use crate::learnable::{Initializer, LearnableSpec};
use ndarray::{Array2, ArrayView2, ArrayViewMut2, CowArray, Ix2, IxDyn};
use seqnet_kernels::gemm::matmul_into;
use seqnet_kernels::recurrent::{GatePanels, GruPanels};
use seqnet_kernels::{Acts, GateAct, StateAct};
use serde::{Deserialize, Serialize};
use std::ops::Range;

pub(crate) use seqnet_kernels::recurrent::Steps;

/// What a recurrent layer outputs (MATLAB's `OutputMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OutputMode {
    /// The whole sequence, `S×B×T` (`[T, B, S]`), zero at padded steps.
    #[default]
    Sequence,
    /// The output at each sequence's last real step, `S×B` (`[B, S]`),
    /// whichever side the padding is on; zero for an empty sequence.
    Last,
}

/// The gate activation function (MATLAB's `GateActivationFunction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GateActivation {
    /// `σ(x) = 1 / (1 + e^(−x))`.
    #[default]
    Sigmoid,
    /// MATLAB's hard sigmoid, `clamp(0.2·x + 0.5, 0, 1)`.
    HardSigmoid,
}

/// The state activation function (MATLAB's `StateActivationFunction`), used for
/// the LSTM's cell candidate and cell output and for the GRU's candidate state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StateActivation {
    /// `tanh(x)`.
    #[default]
    Tanh,
    /// `x / (1 + |x|)`.
    Softsign,
}

/// The state of a recurrent layer for a whole batch.
///
/// `S` is the layer's state size: `H` for [`super::Lstm`] and [`super::Gru`],
/// `2H` for [`super::BiLstm`] (forward direction first, then backward).
#[derive(Debug, Clone, PartialEq)]
pub struct RecurrentState {
    /// Hidden state `[B, S]`.
    pub hidden: Array2<f32>,
    /// Cell state `[B, S]` (LSTMs); `None` for a GRU.
    pub cell: Option<Array2<f32>>,
}

impl RecurrentState {
    /// The batch size `B`.
    pub fn batch(&self) -> usize {
        self.hidden.nrows()
    }
}

/// The kernels' activations for a layer's settings.
pub(crate) fn acts(gate: GateActivation, state: StateActivation) -> Acts {
    Acts {
        gate: match gate {
            GateActivation::Sigmoid => GateAct::Sigmoid,
            GateActivation::HardSigmoid => GateAct::HardSigmoid,
        },
        state: match state {
            StateActivation::Tanh => StateAct::Tanh,
            StateActivation::Softsign => StateAct::Softsign,
        },
    }
}

/// The options every recurrent layer shares (MATLAB's properties of the same
/// names), flattened into the layer's graph JSON (`"outputMode"`,
/// `"inputWeightsL2Factor"`, …) so that graph files written before they were
/// gathered here still load. Missing fields take MATLAB's defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RecurrentOptions {
    /// MATLAB's `OutputMode`: [`OutputMode::Sequence`] or [`OutputMode::Last`].
    pub output_mode: OutputMode,
    /// MATLAB's `StateActivationFunction`.
    pub state_activation: StateActivation,
    /// MATLAB's `GateActivationFunction`.
    pub gate_activation: GateActivation,
    /// MATLAB's `InputWeightsInitializer` (default `glorot`), for `InputWeights`.
    pub input_weights_initializer: WeightsInitializer,
    /// MATLAB's `RecurrentWeightsInitializer` (default `orthogonal`), for `RecurrentWeights`.
    pub recurrent_weights_initializer: WeightsInitializer,
    /// Initial hidden state (MATLAB's `HiddenState`): `S` values (the layer's
    /// output size) used for every observation, or `B·S` values, `[B, S]`
    /// row-major, one state per observation (then only batches of that size
    /// are accepted). `None`: zeros.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hidden_state: Option<Vec<f32>>,
    /// MATLAB's `InputWeightsL2Factor` (default 1): multiplies the global L2 regularization.
    pub input_weights_l2_factor: f32,
    /// MATLAB's `RecurrentWeightsL2Factor` (default 1).
    pub recurrent_weights_l2_factor: f32,
    /// MATLAB's `BiasL2Factor` (default 0), for every bias of the layer.
    pub bias_l2_factor: f32,
    /// MATLAB's `InputWeightsLearnRateFactor` (default 1): multiplies the global learning rate.
    pub input_weights_learn_rate_factor: f32,
    /// MATLAB's `RecurrentWeightsLearnRateFactor` (default 1).
    pub recurrent_weights_learn_rate_factor: f32,
    /// MATLAB's `BiasLearnRateFactor` (default 1), for every bias of the layer.
    pub bias_learn_rate_factor: f32,
}

impl Default for RecurrentOptions {
    fn default() -> Self {
        RecurrentOptions {
            output_mode: OutputMode::Sequence,
            state_activation: StateActivation::Tanh,
            gate_activation: GateActivation::Sigmoid,
            input_weights_initializer: WeightsInitializer::Glorot,
            recurrent_weights_initializer: WeightsInitializer::Orthogonal,
            hidden_state: None,
            input_weights_l2_factor: 1.0,
            recurrent_weights_l2_factor: 1.0,
            bias_l2_factor: 0.0,
            input_weights_learn_rate_factor: 1.0,
            recurrent_weights_learn_rate_factor: 1.0,
            bias_learn_rate_factor: 1.0,
        }
    }
}

impl RecurrentOptions {
    /// The declarations of `InputWeights` `[G, C]` and `RecurrentWeights`
    /// `[G, H]`, with `G` gate rows in all.
    pub(crate) fn weight_specs(&self, g: usize, c: usize, h: usize) -> [LearnableSpec; 2] {
        let o = self;
        [
            LearnableSpec::weights(
                "InputWeights",
                vec![g, c],
                Initializer::Weights {
                    init: o.input_weights_initializer,
                    fan_in: c,
                    fan_out: g,
                },
            )
            .factors(o.input_weights_l2_factor, o.input_weights_learn_rate_factor),
            LearnableSpec::weights(
                "RecurrentWeights",
                vec![g, h],
                Initializer::Weights {
                    init: o.recurrent_weights_initializer,
                    fan_in: h,
                    fan_out: g,
                },
            )
            .factors(
                o.recurrent_weights_l2_factor,
                o.recurrent_weights_learn_rate_factor,
            ),
        ]
    }

    /// The declaration of a bias `name` of `len` values in `parts` directions
    /// of `gates` gates each.
    pub(crate) fn bias_spec(
        &self,
        name: &'static str,
        len: usize,
        init: BiasInitializer,
        parts: usize,
        gates: usize,
    ) -> LearnableSpec {
        LearnableSpec::bias(name, vec![len], Initializer::Bias { init, parts, gates })
            .factors(self.bias_l2_factor, self.bias_learn_rate_factor)
    }
}

/// The builder setters the recurrent layers' configs ([`super::Lstm`],
/// [`super::BiLstm`], [`super::Gru`]) share: each sets the field of the same
/// name in their [`RecurrentOptions`] (MATLAB's property of the same meaning).
macro_rules! recurrent_setters {
    () => {
        /// Sets MATLAB's `OutputMode`: the whole sequence `[T, B, S]` or the last real step `[B, S]`.
        pub fn output_mode(mut self, m: OutputMode) -> Self {
            self.options.output_mode = m;
            self
        }
        /// Sets MATLAB's `StateActivationFunction` (`tanh` or `softsign`).
        pub fn state_activation(mut self, a: StateActivation) -> Self {
            self.options.state_activation = a;
            self
        }
        /// Sets MATLAB's `GateActivationFunction` (`sigmoid` or `hard-sigmoid`).
        pub fn gate_activation(mut self, a: GateActivation) -> Self {
            self.options.gate_activation = a;
            self
        }
        /// Sets MATLAB's `InputWeightsInitializer` (default `glorot`).
        pub fn input_weights_initializer(mut self, i: WeightsInitializer) -> Self {
            self.options.input_weights_initializer = i;
            self
        }
        /// Sets MATLAB's `RecurrentWeightsInitializer` (default `orthogonal`).
        pub fn recurrent_weights_initializer(mut self, i: WeightsInitializer) -> Self {
            self.options.recurrent_weights_initializer = i;
            self
        }
        /// Initial hidden state: `S` values, or `B·S` (`[B, S]`); see [`RecurrentOptions::hidden_state`].
        pub fn hidden_state(mut self, v: Vec<f32>) -> Self {
            self.options.hidden_state = Some(v);
            self
        }
        /// Sets MATLAB's `InputWeightsL2Factor` (default 1).
        pub fn input_weights_l2_factor(mut self, f: f32) -> Self {
            self.options.input_weights_l2_factor = f;
            self
        }
        /// Sets MATLAB's `RecurrentWeightsL2Factor` (default 1).
        pub fn recurrent_weights_l2_factor(mut self, f: f32) -> Self {
            self.options.recurrent_weights_l2_factor = f;
            self
        }
        /// Sets MATLAB's `BiasL2Factor` of every bias (default 0).
        pub fn bias_l2_factor(mut self, f: f32) -> Self {
            self.options.bias_l2_factor = f;
            self
        }
        /// Sets MATLAB's `InputWeightsLearnRateFactor` (default 1).
        pub fn input_weights_learn_rate_factor(mut self, f: f32) -> Self {
            self.options.input_weights_learn_rate_factor = f;
            self
        }
        /// Sets MATLAB's `RecurrentWeightsLearnRateFactor` (default 1).
        pub fn recurrent_weights_learn_rate_factor(mut self, f: f32) -> Self {
            self.options.recurrent_weights_learn_rate_factor = f;
            self
        }
        /// Sets MATLAB's `BiasLearnRateFactor` of every bias (default 1).
        pub fn bias_learn_rate_factor(mut self, f: f32) -> Self {
            self.options.bias_learn_rate_factor = f;
            self
        }
    };
}
pub(crate) use recurrent_setters;

/// One direction's weights, row-major, `G` gates of `H` rows each: `w_ih`
/// `[G·H, C]`, `w_hh` `[G·H, H]`, `bias` `[G·H]` and the recurrent bias
/// `[G·H]` of a layer that has one (PyTorch's GRU).
pub(crate) struct DirectionWeights<'a> {
    pub w_ih: &'a [f32],
    pub w_hh: &'a [f32],
    pub bias: &'a [f32],
    pub rb: Option<&'a [f32]>,
}

/// One direction's weights packed for a fused pass through time (the LSTM's
/// [`GatePanels`], the GRU's [`GruPanels`]).
pub(crate) trait DirectionPanels: Default {
    /// Gates per hidden unit (rows of `H` in each direction's weights).
    const GATES: usize;
    /// Whether the panels hold `h` units with the input (`c` features)
    /// folded in or not, as `fold` says.
    fn fits(&self, c: usize, h: usize, fold: bool) -> bool;
    /// Packs `w` (`c` inputs, `h` units), folding the input in when `fold`.
    fn pack_direction(&mut self, w: DirectionWeights<'_>, c: usize, h: usize, fold: bool);
}

impl DirectionPanels for GatePanels {
    const GATES: usize = 4;
    fn fits(&self, c: usize, h: usize, fold: bool) -> bool {
        GatePanels::fits(self, c, h, fold)
    }
    fn pack_direction(&mut self, w: DirectionWeights<'_>, c: usize, h: usize, fold: bool) {
        self.pack(w.w_ih, c, w.w_hh, h, w.bias, fold);
    }
}

impl DirectionPanels for GruPanels {
    const GATES: usize = 3;
    fn fits(&self, c: usize, h: usize, fold: bool) -> bool {
        GruPanels::fits(self, c, h, fold)
    }
    fn pack_direction(&mut self, w: DirectionWeights<'_>, c: usize, h: usize, fold: bool) {
        self.pack(w.w_ih, c, w.w_hh, h, w.bias, w.rb, fold);
    }
}

/// A recurrent layer's stacked learnables (directions one after the other,
/// each [`DirectionWeights`]) and its sizes.
pub(crate) struct StackedWeights<'a> {
    pub input_weights: &'a Learnable,
    pub recurrent_weights: &'a Learnable,
    pub bias: &'a Learnable,
    pub recurrent_bias: Option<&'a Learnable>,
    /// Input features `C`.
    pub c: usize,
    /// Hidden units `H`.
    pub h: usize,
    /// Directions (1, or 2 for a bidirectional layer).
    pub directions: usize,
}

/// Packs each direction's weights of `w` into `panels` for the fused pass
/// through time, unless the packed copy is still `valid` (the weights
/// unchanged since) and has the input folded in or not as `fold` asks;
/// `valid` afterwards.
pub(crate) fn pack_directions<P: DirectionPanels>(
    panels: &mut Vec<P>,
    valid: &mut bool,
    w: &StackedWeights,
    fold: bool,
) {
    let (h, c, nd) = (w.h, w.c, w.directions);
    if *valid && panels.len() == nd && panels[0].fits(c, h, fold) {
        return;
    }
    fn standard(l: &Learnable) -> CowArray<'_, f32, IxDyn> {
        l.value.as_standard_layout()
    }
    /// Rows `rows` of a standard-layout matrix `width` wide.
    fn values<'a>(a: &'a CowArray<'_, f32, IxDyn>, rows: Range<usize>, width: usize) -> &'a [f32] {
        &a.as_slice().expect("standard layout")[rows.start * width..rows.end * width]
    }
    let (w_ih, w_hh, bias) = (
        standard(w.input_weights),
        standard(w.recurrent_weights),
        standard(w.bias),
    );
    let rb = w.recurrent_bias.map(standard);
    let gh = P::GATES * h;
    panels.resize_with(nd, P::default);
    for (d, p) in panels.iter_mut().enumerate() {
        let rows = d * gh..(d + 1) * gh;
        let dir = DirectionWeights {
            w_ih: values(&w_ih, rows.clone(), c),
            w_hh: values(&w_hh, rows.clone(), h),
            bias: values(&bias, rows.clone(), 1),
            rb: rb.as_ref().map(|rb| values(rb, rows.clone(), 1)),
        };
        p.pack_direction(dir, c, h, fold);
    }
    *valid = true;
}

/// A 2-D learnable's value as a matrix (its shape checked by the kernel's
/// `check_learnables` before any use).
pub(crate) fn matrix<S: ndarray::Data<Elem = f32>>(
    v: &ndarray::ArrayBase<S, ndarray::IxDyn>,
) -> ArrayView2<'_, f32> {
    v.view().into_dimensionality::<Ix2>().expect("checked 2-D")
}

/// Checks a recurrent layer's run-time input (a `[T, B, C]` feature sequence
/// with lengths that fit it) and returns its steps.
pub(crate) fn input_steps(
    layer: &str,
    x: &crate::activation::Activation,
    channels: usize,
) -> Result<Steps> {
    if x.format != crate::format::Format::CBT || x.data.ndim() != 3 {
        return Err(Error::layer(
            layer,
            format!(
                "expects a feature sequence (CBT, [T, B, C]), got {} data of shape {:?}",
                x.format.label(),
                x.data.shape()
            ),
        ));
    }
    let (t, b, c) = (x.data.shape()[0], x.data.shape()[1], x.data.shape()[2]);
    if c != channels {
        return Err(Error::layer(
            layer,
            format!(
                "expects {channels} channels, got shape {:?}",
                x.data.shape()
            ),
        ));
    }
    let lengths = x.seq_lengths();
    if lengths.lengths.len() != b || lengths.time != t || lengths.lengths.iter().any(|&l| l > t) {
        return Err(Error::layer(
            layer,
            format!(
                "sequence lengths {:?} (padded length {}) do not fit data of shape {:?}",
                lengths.lengths,
                lengths.time,
                x.data.shape()
            ),
        ));
    }
    let spans = (0..b).map(|i| lengths.span(i)).collect();
    Ok(Steps::new(t, spans))
}

/// `[rows, cols]` view of a contiguous slice.
#[inline]
pub(crate) fn view(s: &[f32], rows: usize, cols: usize) -> ArrayView2<'_, f32> {
    ArrayView2::from_shape((rows, cols), &s[..rows * cols]).expect("buffer holds rows·cols values")
}

/// Mutable `[rows, cols]` view of a contiguous slice.
#[inline]
pub(crate) fn view_mut(s: &mut [f32], rows: usize, cols: usize) -> ArrayViewMut2<'_, f32> {
    ArrayViewMut2::from_shape((rows, cols), &mut s[..rows * cols])
        .expect("buffer holds rows·cols values")
}

/// Checks a configured initial state: `len` must be `size` (one state broadcast
/// over the batch) or a positive multiple of it (one per observation).
pub(crate) fn check_state_len(
    setting: &'static str,
    len: usize,
    size: usize,
) -> Result<(), String> {
    if size == 0 || len == 0 || len != size * (len / size) {
        return Err(format!(
            "{setting} must hold {size} values (one state for every observation) or {size}·B values ([B, {size}] row-major, one per observation), got {len}"
        ));
    }
    Ok(())
}

/// The initial state `[B, size]` from a configured value (`None`: zeros).
pub(crate) fn initial_state(
    layer: &str,
    setting: &'static str,
    values: Option<&[f32]>,
    batch: usize,
    size: usize,
) -> Result<Array2<f32>> {
    let Some(v) = values else {
        return Ok(Array2::zeros((batch, size)));
    };
    if v.len() == size {
        let row = ArrayView2::from_shape((1, size), v).expect("length checked");
        return Ok(row
            .broadcast((batch, size))
            .expect("broadcast a row")
            .to_owned());
    }
    if v.len() == batch * size {
        return Ok(Array2::from_shape_vec((batch, size), v.to_vec()).expect("length checked"));
    }
    Err(Error::LayerConfig {
        layer: layer.to_string(),
        setting,
        message: format!(
            "holds {} values; a batch of {batch} needs {size} or {} ([B, {size}])",
            v.len(),
            batch * size
        ),
    })
}

/// Fills `rows` (`[N, n]`, contiguous) with copies of `bias` (`n` values).
pub(crate) fn fill_rows(rows: &mut [f32], bias: &[f32]) {
    if bias.is_empty() {
        return;
    }
    for r in rows.chunks_exact_mut(bias.len()) {
        r.copy_from_slice(bias);
    }
}

/// The rows `t·B + b` of a `[T·B, ·]` step buffer that hold real steps, in
/// order, when padded steps are at least a sixteenth of the rows (`None`
/// otherwise, and for a batch without padding). A layer whose input
/// projection is a large product runs it on these rows only: the video
/// network's 11520-wide projection is nearly all its FLOPs, and a mini-batch
/// of 8–14-frame videos is about a fifth padding.
pub(crate) fn real_rows(steps: &Steps) -> Option<Vec<usize>> {
    let (t, b) = (steps.t, steps.b);
    let real: usize = steps.spans.iter().map(|s| s.len()).sum();
    if (t * b - real) * 16 < t * b {
        return None;
    }
    let mut rows = Vec::with_capacity(real);
    for ti in 0..t {
        rows.extend(
            (0..b)
                .filter(|&bi| steps.real(bi, ti))
                .map(|bi| ti * b + bi),
        );
    }
    Some(rows)
}

/// Rows `rows` of the `[N, width]` buffer `src`, as a `[rows.len(), width]` buffer.
pub(crate) fn gather_rows(src: &[f32], width: usize, rows: &[usize]) -> Vec<f32> {
    let mut out = Vec::with_capacity(rows.len() * width);
    for &r in rows {
        out.extend_from_slice(&src[r * width..(r + 1) * width]);
    }
    out
}

/// Writes row `i` of `src` (`[rows.len(), width]`) to row `rows[i]` of `dst`
/// (`[N, width]`), leaving the other rows of `dst` as they are.
pub(crate) fn scatter_rows(src: &[f32], width: usize, rows: &[usize], dst: &mut [f32]) {
    for (row, &r) in src.chunks_exact(width).zip(rows) {
        dst[r * width..(r + 1) * width].copy_from_slice(row);
    }
}

/// Writes every row of `dst` (`[N, width]`): row `rows[i]` from row `i` of
/// `src` (`[rows.len(), width]`), the rows not in `rows` (ascending) from
/// `fill` (`width` values).
pub(crate) fn scatter_rows_or(
    src: &[f32],
    width: usize,
    rows: &[usize],
    dst: &mut [f32],
    fill: &[f32],
) {
    let mut next = rows.iter().zip(src.chunks_exact(width)).peekable();
    for (r, out) in dst.chunks_exact_mut(width).enumerate() {
        match next.next_if(|&(&row, _)| row == r) {
            Some((_, row)) => out.copy_from_slice(row),
            None => out.copy_from_slice(fill),
        }
    }
}

/// `out = bias + x·wᵀ` (`x` `[n, C]`, `w` `[G, C]` of any strides, `bias`
/// `[G]`, `out` `[n, G]`): an input projection. With fewer rows than gates
/// the product goes into a `[G, n]` buffer (`out` transposed), copied over
/// after: the `gemm` crate then packs the `n` input rows rather than the
/// `[G, C]` weights, and for the video network's 11520-wide projection
/// (n ≈ 176, G = 800) runs about 1.6× as fast (`seqnet-kernels`' example
/// `projection_speed`).
pub(crate) fn project_rows(x: &[f32], n: usize, w: ArrayView2<f32>, bias: &[f32], out: &mut [f32]) {
    let (g, c) = w.dim();
    if n >= g {
        fill_rows(out, bias);
        matmul_into(view(x, n, c), w.t(), view_mut(out, n, g), true);
        return;
    }
    let mut gt = Array2::from_shape_fn((g, n), |(j, _)| bias[j]);
    matmul_into(view(x, n, c), w.t(), gt.view_mut().reversed_axes(), true);
    view_mut(out, n, g).assign(&gt.t());
}

/// Column sums of a `[N, n]` buffer into `out` (`n` values).
pub(crate) fn column_sums(rows: &[f32], out: &mut [f32]) {
    out.fill(0.0);
    if out.is_empty() {
        return;
    }
    for r in rows.chunks_exact(out.len()) {
        for (o, v) in out.iter_mut().zip(r) {
            *o += v;
        }
    }
}

/// The weight gradients of one block of rows: `dW = dGᵀ·A` where `dG` is
/// `[T·B, n]` and `A` is `[T·B, m]`; `dw` is `[n, m]`.
pub(crate) fn weight_grad(dg: &[f32], a: ArrayView2<f32>, n: usize, dw: ArrayViewMut2<f32>) {
    let rows = a.nrows();
    matmul_into(view(dg, rows, n).t(), a, dw, false);
}

/// Copies the states of one direction into the output sequence `[T·B, S]`
/// (columns `offset..offset + H`), leaving padded steps at zero.
pub(crate) fn write_outputs(
    steps: &Steps,
    hbuf: &[f32],
    h: usize,
    y: &mut [f32],
    s: usize,
    offset: usize,
) {
    let b = steps.b;
    for t in 0..steps.t {
        for bi in 0..b {
            if steps.real(bi, t) {
                let src = &hbuf[((t + 1) * b + bi) * h..][..h];
                y[(t * b + bi) * s + offset..][..h].copy_from_slice(src);
            }
        }
    }
}

/// The output at each sequence's last real step: `[B, S]` from `y` `[T·B, S]`.
pub(crate) fn gather_last(steps: &Steps, y: &[f32], s: usize) -> Array2<f32> {
    let b = steps.b;
    let mut out = Array2::zeros((b, s));
    for (bi, span) in steps.spans.iter().enumerate() {
        if !span.is_empty() {
            let t = span.end - 1;
            out.row_mut(bi)
                .as_slice_mut()
                .expect("standard layout")
                .copy_from_slice(&y[(t * b + bi) * s..][..s]);
        }
    }
    out
}

/// The gradient of [`gather_last`]: `[T·B, S]` from `g` `[B, S]`.
pub(crate) fn scatter_last(steps: &Steps, g: ArrayView2<f32>, s: usize) -> Vec<f32> {
    let b = steps.b;
    let mut dy = vec![0.0; steps.t * b * s];
    for (bi, span) in steps.spans.iter().enumerate() {
        if !span.is_empty() {
            let t = span.end - 1;
            for (d, v) in dy[(t * b + bi) * s..][..s].iter_mut().zip(g.row(bi)) {
                *d = *v;
            }
        }
    }
    dy
}

/// Copies columns `offset..offset + h` of `state` (`[B, S]`) into slot `slot` of
/// a state buffer (`[slots·B, h]`).
pub(crate) fn put_slot(buf: &mut [f32], slot: usize, state: &Array2<f32>, offset: usize, h: usize) {
    let b = state.nrows();
    for bi in 0..b {
        let dst = &mut buf[(slot * b + bi) * h..][..h];
        for (d, v) in dst.iter_mut().zip(state.row(bi).iter().skip(offset)) {
            *d = *v;
        }
    }
}

/// Copies slot `slot` of a state buffer into columns `offset..offset + h` of `state`.
pub(crate) fn take_slot(
    buf: &[f32],
    slot: usize,
    state: &mut Array2<f32>,
    offset: usize,
    h: usize,
) {
    let b = state.nrows();
    for bi in 0..b {
        let src = &buf[(slot * b + bi) * h..][..h];
        for (d, v) in state.row_mut(bi).iter_mut().skip(offset).zip(src) {
            *d = *v;
        }
    }
}

/// The loss gradient for the output, checked against the output's shape, as
/// `[T·B, S]` rows (a `Last` gradient is scattered to each last real step).
pub(crate) fn output_grad(
    layer: &str,
    grads: &mut [Option<ndarray::ArrayD<f32>>],
    mode: OutputMode,
    steps: &Steps,
    s: usize,
) -> Result<Vec<f32>> {
    let want: Vec<usize> = match mode {
        OutputMode::Sequence => vec![steps.t, steps.b, s],
        OutputMode::Last => vec![steps.b, s],
    };
    let Some(g) = grads.get_mut(0).and_then(Option::take) else {
        return Ok(vec![0.0; steps.t * steps.b * s]);
    };
    if g.shape() != want.as_slice() {
        return Err(Error::layer(
            layer,
            format!(
                "output gradient has shape {:?}, the output has shape {want:?}",
                g.shape()
            ),
        ));
    }
    Ok(match mode {
        OutputMode::Sequence => g.as_standard_layout().iter().copied().collect(),
        OutputMode::Last => {
            let g2 = g
                .view()
                .into_shape_with_order((steps.b, s))
                .map_err(|e| Error::layer(layer, e.to_string()))?;
            scatter_last(steps, g2, s)
        }
    })
}
