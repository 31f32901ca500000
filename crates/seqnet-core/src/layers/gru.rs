//! [`Gru`] and [`BiGru`]: gated recurrent units, one or two directions, with
//! MATLAB's three `ResetGateMode`s ([`ResetGateMode`]), sharing one kernel
//! ([`GruKernel`]).

use super::lstm::infer_recurrent;
use super::name_field;
use super::recurrent::{
    acts, check_state_len, column_sums, fill_rows, initial_state, input_steps, matrix, output_grad,
    pack_directions, put_slot, recurrent_setters, take_slot, view, view_mut, weight_grad,
    write_outputs, GateActivation, OutputMode, RecurrentOptions, RecurrentState, StackedWeights,
    StateActivation, Steps,
};
use super::util::no_forward;
use crate::activation::Activation;
use crate::error::{Error, Result};
use crate::format::{ActShape, Format};
use crate::init::{BiasInitializer, WeightsInitializer};
use crate::layer::{ForwardCtx, LayerDef, LayerKernel, Mode, Params, ShapeError};
use crate::learnable::{Learnable, LearnableSpec};
use crate::torch::TorchLayout;
use ndarray::{Array1, Array2, ArrayD, Axis};
use rand::rngs::StdRng;
use seqnet_kernels::gemm::matmul_into;
use seqnet_kernels::recurrent::{
    fold_input, gru_backward_into, gru_before_backward, gru_before_forward, gru_forward,
    GruBuffers, GruGrads, GruPanels, GruTrace,
};
use serde::{Deserialize, Serialize};

/// Where a GRU applies its reset gate (MATLAB's `ResetGateMode`).
///
/// With `H` hidden units, gate order reset `r`, update `z`, candidate `n`, and
/// `h' = (1 − z) ⊙ n + z ⊙ h` in every mode:
///
/// | mode | `r`, `z` | `n` | learnables |
/// |---|---|---|---|
/// | `after-multiplication` | `gate(W·x + b + R·h)` | `state(W_n·x + b_n + r ⊙ (R_n·h))` | `InputWeights`, `RecurrentWeights`, `Bias` |
/// | `before-multiplication` | `gate(W·x + b + R·h)` | `state(W_n·x + b_n + R_n·(r ⊙ h))` | `InputWeights`, `RecurrentWeights`, `Bias` |
/// | `recurrent-bias-after-multiplication` | `gate(W·x + b + R·h + rb)` | `state(W_n·x + b_n + r ⊙ (R_n·h + rb_n))` | as above, and `RecurrentBias` `rb` |
///
/// The last is PyTorch's `nn.GRU` (`bias_hh` is `RecurrentBias`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResetGateMode {
    /// MATLAB's default: the reset gate scales `R_n·h`; one bias.
    #[default]
    AfterMultiplication,
    /// The reset gate scales `h` before `R_n` multiplies it; one bias.
    BeforeMultiplication,
    /// As `AfterMultiplication` with a second bias inside the recurrent
    /// term (`RecurrentBias`): PyTorch's `nn.GRU`.
    RecurrentBiasAfterMultiplication,
}

impl ResetGateMode {
    /// MATLAB's name of the mode (`after-multiplication`, …).
    pub fn label(self) -> &'static str {
        match self {
            ResetGateMode::AfterMultiplication => "after-multiplication",
            ResetGateMode::BeforeMultiplication => "before-multiplication",
            ResetGateMode::RecurrentBiasAfterMultiplication => {
                "recurrent-bias-after-multiplication"
            }
        }
    }

    /// Whether the layer has the `RecurrentBias` learnable.
    pub fn has_recurrent_bias(self) -> bool {
        self == ResetGateMode::RecurrentBiasAfterMultiplication
    }
}

/// The mode of graph JSON and model files written before the option existed:
/// their GRUs were PyTorch's (`RecurrentBias` present), so an absent field
/// must mean `recurrent-bias-after-multiplication`, whatever
/// [`GruConfig::new`] defaults to.
fn legacy_reset_gate_mode() -> ResetGateMode {
    ResetGateMode::RecurrentBiasAfterMultiplication
}

/// The settings of a GRU layer with `D` directions; use the aliases [`Gru`]
/// (`D = 1`, MATLAB's `gruLayer`) and [`BiGru`] (`D = 2`, a bidirectional
/// GRU as PyTorch's `nn.GRU(bidirectional=True)`; MATLAB has no such layer).
///
/// With `H` hidden units, `C` input channels and `S = D·H`, each step computes
/// the update of the [`ResetGateMode`] (gate order `r, z, n`).
///
/// * Input: a feature sequence `C×B×T` (`[T, B, C]`) only.
/// * Output: `S×B×T` (`[T, B, S]`, zero at padded steps) with
///   [`OutputMode::Sequence`], or `S×B` (`[B, S]`, each sequence's last real step)
///   with [`OutputMode::Last`]. A BiGRU's output is the forward direction's `H`
///   channels, then the backward direction's `H`; its 'last' output is the
///   output sequence at the last real step (as MATLAB's BiLSTM: the backward
///   half has then seen that one step only).
/// * Learnables (forward direction's rows first): `InputWeights` `[3·D·H, C]`
///   (`W`), `RecurrentWeights` `[3·D·H, H]` (`R`), `Bias` `[3·D·H]` (`b`,
///   PyTorch's `bias_ih`), and with `recurrent-bias-after-multiplication`
///   `RecurrentBias` `[3·D·H]` (`rb`, PyTorch's `bias_hh`). Every bias uses
///   the `Bias*` factors and initializer.
///
/// Masking and state behave as for [`super::Lstm`]: padded steps leave the state
/// unchanged and get no gradient (a BiGRU's backward direction starts at each
/// sequence's last real step); a forward starts from the `hidden_state` field
/// (zeros when `None`), a stateful forward from the kept state of the previous
/// stateful forward for the same batch size, and keeps its final state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GruConfig<const D: usize> {
    /// The layer's name (MATLAB's `Name`), unique in its graph.
    #[serde(default)]
    pub name: String,
    /// `H`, the number of hidden units of each direction.
    pub num_hidden_units: usize,
    /// The options all recurrent layers share; the bias factors apply to
    /// `Bias` and `RecurrentBias`; a BiGRU's `hidden_state` is the forward
    /// direction's `H`, then the backward's.
    #[serde(flatten)]
    pub options: RecurrentOptions,
    /// `zeros`, `ones` or `narrow-normal` (not `unit-forget-gate`), for `Bias`
    /// and `RecurrentBias`.
    #[serde(default = "zeros")]
    pub bias_initializer: BiasInitializer,
    /// MATLAB's `ResetGateMode`. [`GruConfig::new`] gives MATLAB's default,
    /// `after-multiplication`; a file without the field reads as
    /// `recurrent-bias-after-multiplication` (what seqnet's GRU was before
    /// the option existed).
    #[serde(default = "legacy_reset_gate_mode")]
    pub reset_gate_mode: ResetGateMode,
}

/// MATLAB's `gruLayer`: see [`GruConfig`]. Output size `H`.
pub type Gru = GruConfig<1>;
/// A bidirectional GRU: see [`GruConfig`]. Output size `2H` (forward, then backward).
pub type BiGru = GruConfig<2>;

fn zeros() -> BiasInitializer {
    BiasInitializer::Zeros
}

impl<const D: usize> GruConfig<D> {
    /// A layer with `num_hidden_units` hidden units per direction and MATLAB's
    /// defaults (`ResetGateMode` `after-multiplication`).
    pub fn new(num_hidden_units: usize) -> Self {
        GruConfig {
            name: String::new(),
            num_hidden_units,
            options: RecurrentOptions::default(),
            bias_initializer: zeros(),
            reset_gate_mode: ResetGateMode::default(),
        }
    }
    /// Sets the layer's name (MATLAB's `'Name'`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }
    recurrent_setters!();
    /// Sets MATLAB's `BiasInitializer` for `Bias` and `RecurrentBias` (default `zeros`).
    pub fn bias_initializer(mut self, i: BiasInitializer) -> Self {
        self.bias_initializer = i;
        self
    }
    /// Sets MATLAB's `ResetGateMode` (default `after-multiplication`;
    /// `recurrent-bias-after-multiplication` is PyTorch's `nn.GRU`).
    pub fn reset_gate_mode(mut self, m: ResetGateMode) -> Self {
        self.reset_gate_mode = m;
        self
    }

    /// The output size `S = D·H`.
    pub fn output_size(&self) -> usize {
        D * self.num_hidden_units
    }

    fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.num_hidden_units == 0 {
            return Err(("NumHiddenUnits", "must be positive".into()));
        }
        if self.bias_initializer == BiasInitializer::UnitForgetGate {
            return Err((
                "BiasInitializer",
                "unit-forget-gate is for LSTMs; a GRU takes zeros, ones or narrow-normal".into(),
            ));
        }
        if let Some(v) = &self.options.hidden_state {
            check_state_len("HiddenState", v.len(), self.output_size())
                .map_err(|m| ("HiddenState", m))?;
        }
        Ok(())
    }

    /// The concrete kernel, with learnables initialized from `rng` as a network
    /// initializes them; `inputs` is the one input's shape (`C×B×T`).
    /// [`LayerDef::build`] boxes this; use it directly to read [`GruKernel::final_state`].
    pub fn kernel(&self, inputs: &[ActShape], rng: &mut StdRng) -> Result<GruKernel> {
        let params = Params::allocate(&self.name, &self.learnables(inputs), &[], rng);
        self.kernel_from(inputs, params)
    }

    /// The concrete kernel holding `params` (see [`LayerDef::build`]).
    fn kernel_from(&self, inputs: &[ActShape], mut params: Params) -> Result<GruKernel> {
        if let Err((setting, message)) = self.validate() {
            return Err(Error::LayerConfig {
                layer: self.name.clone(),
                setting,
                message,
            });
        }
        self.infer(inputs)
            .map_err(|e| Error::layer(&self.name, e.message))?;
        let o = &self.options;
        let recurrent_bias = if self.reset_gate_mode.has_recurrent_bias() {
            Some(params.learnable("RecurrentBias")?)
        } else {
            None
        };
        Ok(GruKernel {
            name: self.name.clone(),
            hidden: self.num_hidden_units,
            input_size: inputs[0].channels,
            directions: D,
            reset_gate_mode: self.reset_gate_mode,
            output_mode: o.output_mode,
            gate: o.gate_activation,
            state: o.state_activation,
            hidden_state: o.hidden_state.clone(),
            input_weights: params.learnable("InputWeights")?,
            recurrent_weights: params.learnable("RecurrentWeights")?,
            bias: params.learnable("Bias")?,
            recurrent_bias,
            panels: Vec::new(),
            panels_valid: false,
            tape: None,
            kept: None,
            final_state: None,
            input_grad_needed: true,
            dgi_buf: Vec::new(),
            dgh_buf: Vec::new(),
        })
    }
}

impl<const D: usize> LayerDef for GruConfig<D> {
    name_field!();
    fn type_name(&self) -> &'static str {
        if D == 2 {
            "BiGRU"
        } else {
            "GRU"
        }
    }
    fn infer(&self, inputs: &[ActShape]) -> Result<Vec<ActShape>, ShapeError> {
        self.validate()
            .map_err(|(setting, m)| ShapeError::new(0, format!("{setting} {m}")))?;
        infer_recurrent(inputs, self.output_size(), self.options.output_mode)
    }
    fn learnables(&self, inputs: &[ActShape]) -> Vec<LearnableSpec> {
        let c = inputs.first().map(|s| s.channels).unwrap_or(0);
        let (h, g) = (self.num_hidden_units, 3 * D * self.num_hidden_units);
        let [w, r] = self.options.weight_specs(g, c, h);
        let o = &self.options;
        let mut specs = vec![w, r, o.bias_spec("Bias", g, self.bias_initializer, D, 3)];
        if self.reset_gate_mode.has_recurrent_bias() {
            specs.push(o.bias_spec("RecurrentBias", g, self.bias_initializer, D, 3));
        }
        specs
    }
    fn build(&self, inputs: &[ActShape], params: Params) -> Result<Box<dyn LayerKernel>> {
        Ok(Box::new(self.kernel_from(inputs, params)?))
    }
    /// `nn.GRU` (bidirectional for a BiGRU) in `recurrent-bias-after-multiplication`
    /// mode only: PyTorch has no other mode.
    fn torch_layout(&self) -> Option<TorchLayout> {
        self.reset_gate_mode
            .has_recurrent_bias()
            .then(|| TorchLayout::recurrent("nn.GRU", D, true))
    }
}

/// What one direction's forward keeps for its backward.
#[derive(Debug, Clone, Default)]
struct GruDir {
    /// Activated `r, z, n` of every step, `[T·B, 3H]` (unused at padded
    /// steps; stale or empty after an inference forward, see [`GruTape`]).
    gates: Vec<f32>,
    /// `R_n·h + rb_n` (after-multiplication modes) or `r ⊙ h`
    /// (before-multiplication) of every step, `[T·B, H]` (as `gates`).
    hn: Vec<f32>,
    /// Hidden states, `T + 2` slots of `[B, H]` (see [`super::recurrent`]).
    h: Vec<f32>,
}

/// What the forward keeps for the backward.
#[derive(Debug, Clone)]
struct GruTape {
    steps: Steps,
    /// The input as `[T·B, C]` rows.
    x: Array2<f32>,
    dirs: Vec<GruDir>,
    /// Whether `dirs` hold the gates and `hn` (a training forward), not only
    /// the states (an inference forward of the fused pass keeps no gates).
    complete: bool,
}

/// The kernel of [`Gru`] and [`BiGru`]: learnables `InputWeights` `[3·D·H, C]`,
/// `RecurrentWeights` `[3·D·H, H]`, `Bias` `[3·D·H]` and, with
/// `recurrent-bias-after-multiplication`, `RecurrentBias` `[3·D·H]`; input
/// `[T, B, C]`; output `[T, B, D·H]` or `[B, D·H]`.
#[derive(Debug, Clone)]
pub struct GruKernel {
    name: String,
    hidden: usize,
    input_size: usize,
    directions: usize,
    reset_gate_mode: ResetGateMode,
    output_mode: OutputMode,
    gate: GateActivation,
    state: StateActivation,
    hidden_state: Option<Vec<f32>>,
    input_weights: Learnable,
    recurrent_weights: Learnable,
    bias: Learnable,
    recurrent_bias: Option<Learnable>,
    /// Each direction's weights packed for [`gru_forward`] (after-multiplication
    /// modes), valid while `panels_valid` (cleared whenever the learnables
    /// are borrowed mutably).
    panels: Vec<GruPanels>,
    panels_valid: bool,
    tape: Option<GruTape>,
    kept: Option<RecurrentState>,
    final_state: Option<RecurrentState>,
    input_grad_needed: bool,
    /// The backward's gate gradients (`[T·B, 3H]` each), kept between
    /// backwards so that they are neither allocated nor faulted in anew.
    dgi_buf: Vec<f32>,
    dgh_buf: Vec<f32>,
}

impl GruKernel {
    /// The final state of the last forward: each sequence's hidden state after its
    /// last real step, `[B, D·H]` (a BiGRU's backward half: after its first real
    /// step; PyTorch's `h_n`); `cell` is `None`.
    pub fn final_state(&self) -> Option<&RecurrentState> {
        self.final_state.as_ref()
    }

    /// The state kept by the last stateful forward (`[B, D·H]`), if any.
    pub fn kept_state(&self) -> Option<&RecurrentState> {
        self.kept.as_ref()
    }

    fn check_learnables(&self) -> Result<()> {
        let g = 3 * self.directions * self.hidden;
        let mut all = vec![
            (&self.input_weights, vec![g, self.input_size]),
            (&self.recurrent_weights, vec![g, self.hidden]),
            (&self.bias, vec![g]),
        ];
        if let Some(rb) = &self.recurrent_bias {
            all.push((rb, vec![g]));
        }
        for (p, want) in all {
            if p.value.shape() != want.as_slice() {
                return Err(Error::Learnable {
                    layer: self.name.clone(),
                    learnable: p.name.to_string(),
                    message: format!("has shape {:?}, expected {want:?}", p.value.shape()),
                });
            }
        }
        Ok(())
    }

    /// Packs each direction's weights for the fused pass ([`GruPanels`]),
    /// unless the packed copy is still valid and has the input folded in or
    /// not as `fold` asks.
    fn pack_panels(&mut self, fold: bool) {
        let w = StackedWeights {
            input_weights: &self.input_weights,
            recurrent_weights: &self.recurrent_weights,
            bias: &self.bias,
            recurrent_bias: self.recurrent_bias.as_ref(),
            c: self.input_size,
            h: self.hidden,
            directions: self.directions,
        };
        pack_directions(&mut self.panels, &mut self.panels_valid, &w, fold);
    }

    /// Direction `d`'s pass through time over `x` (`[T·B, C]`) from the
    /// initial state already in `dir.h`'s slot; with `tape` (always in
    /// `before-multiplication` mode), keeps the gates and `hn` for backward.
    /// The after-multiplication modes need [`Self::pack_panels`] first.
    fn run_pass(&self, steps: &Steps, x: &Array2<f32>, d: usize, dir: &mut GruDir, tape: bool) {
        let h = self.hidden;
        let (t, b, g3) = (steps.t, steps.b, 3 * h);
        let rows = d * g3..(d + 1) * g3;
        let before = self.reset_gate_mode == ResetGateMode::BeforeMultiplication;
        let fold = !before && self.panels[d].folded();
        if tape || before || !fold {
            sized(&mut dir.gates, t * b * g3);
        }
        if tape || before {
            sized(&mut dir.hn, t * b * h);
        }
        if !fold {
            // The input projection of every step, one product up front.
            let w_ih = matrix(&self.input_weights.value);
            let bias = self.bias.value.as_standard_layout();
            let bias = bias.as_slice().expect("standard layout");
            fill_rows(&mut dir.gates, &bias[rows.clone()]);
            matmul_into(
                x.view(),
                w_ih.slice_axis(Axis(0), rows.clone().into()).t(),
                view_mut(&mut dir.gates, t * b, g3),
                true,
            );
        }
        let acts = acts(self.gate, self.state);
        let bufs = GruBuffers {
            gates: &mut dir.gates,
            hn: &mut dir.hn,
            h: &mut dir.h,
        };
        let reverse = d == 1;
        if before {
            let w_hh = self.recurrent_weights.value.as_standard_layout();
            let w_hh = &w_hh.as_slice().expect("standard layout")[rows.start * h..rows.end * h];
            gru_before_forward(acts, steps, reverse, w_hh, h, bufs)
        } else {
            let x = x.as_slice().expect("standard layout");
            gru_forward(acts, steps, reverse, x, &self.panels[d], bufs, tape)
        }
    }

    /// Makes the tape of an inference forward (which keeps no gates) complete
    /// for backward, by running its passes again with the tape on (a
    /// backward after an inference forward is rare: training forwards keep
    /// the whole tape).
    fn complete_tape(&mut self) {
        let Some(mut tape) = self.tape.take() else {
            return;
        };
        if !tape.complete {
            self.pack_panels(fold_input(self.input_size, self.hidden, tape.steps.b));
            for (d, dir) in tape.dirs.iter_mut().enumerate() {
                self.run_pass(&tape.steps, &tape.x, d, dir, true);
            }
            tape.complete = true;
        }
        self.tape = Some(tape);
    }

    /// The initial state `[B, D·H]` of a forward over `b` observations.
    fn start_state(&self, b: usize, stateful: bool) -> Result<Array2<f32>> {
        match &self.kept {
            Some(k) if stateful && k.batch() == b => Ok(k.hidden.clone()),
            _ => initial_state(
                &self.name,
                "HiddenState",
                self.hidden_state.as_deref(),
                b,
                self.directions * self.hidden,
            ),
        }
    }
}

impl LayerKernel for GruKernel {
    fn forward(&mut self, inputs: &[&Activation], ctx: &mut ForwardCtx) -> Result<Vec<Activation>> {
        let x = inputs
            .first()
            .ok_or_else(|| Error::layer(&self.name, "no input"))?;
        let (h, c, nd) = (self.hidden, self.input_size, self.directions);
        let steps = input_steps(&self.name, x, c)?;
        self.check_learnables()?;
        let (t, b, s) = (steps.t, steps.b, nd * h);
        let xr = x
            .data
            .as_standard_layout()
            .into_owned()
            .into_shape_with_order((t * b, c))
            .map_err(|e| Error::layer(&self.name, e.to_string()))?;
        let h0 = self.start_state(b, ctx.stateful)?;

        let mut y = vec![0.0; t * b * s];
        let mut fin = RecurrentState {
            hidden: Array2::zeros((b, s)),
            cell: None,
        };
        let tape = ctx.mode == Mode::Training;
        if self.reset_gate_mode != ResetGateMode::BeforeMultiplication {
            self.pack_panels(fold_input(c, h, b));
        }
        // Last forward's buffers, reused: every value a pass or its backward
        // reads is written first (states slot by slot, gates and `hn` at real
        // steps), so buffers of the same size need no clearing.
        let mut old = self
            .tape
            .take()
            .map(|tp| tp.dirs)
            .unwrap_or_default()
            .into_iter();
        let mut dirs = Vec::with_capacity(nd);
        for d in 0..nd {
            let reverse = d == 1;
            let mut dir = old.next().unwrap_or_default();
            sized(&mut dir.h, (t + 2) * b * h);
            put_slot(&mut dir.h, steps.initial_slot(reverse), &h0, d * h, h);
            self.run_pass(&steps, &xr, d, &mut dir, tape);
            write_outputs(&steps, &dir.h, h, &mut y, s, d * h);
            take_slot(&dir.h, steps.final_slot(reverse), &mut fin.hidden, d * h, h);
            dirs.push(dir);
        }
        if ctx.stateful {
            self.kept = Some(fin.clone());
        }
        self.final_state = Some(fin);
        let out = match self.output_mode {
            OutputMode::Sequence => {
                let data = ArrayD::from_shape_vec(vec![t, b, s], y).expect("t·b·s values");
                Activation {
                    data: data.into_shared(),
                    format: Format::CBT,
                    lengths: x.lengths.clone(),
                }
            }
            OutputMode::Last => {
                // Keep the mask as one step per observation (as folded frames
                // of a one-step sequence): a sequence with no real step here
                // (a later chunk of a split batch) must not count in a loss.
                let mut last =
                    Activation::features(super::recurrent::gather_last(&steps, &y, s).into_dyn())?;
                last.lengths = x
                    .lengths
                    .as_ref()
                    .map(|l| std::sync::Arc::new(l.one_step()));
                last
            }
        };
        self.tape = Some(GruTape {
            steps,
            x: xr,
            dirs,
            complete: tape || self.reset_gate_mode == ResetGateMode::BeforeMultiplication,
        });
        Ok(vec![out])
    }

    fn backward(
        &mut self,
        mut grads: Vec<Option<ArrayD<f32>>>,
    ) -> Result<Vec<Option<ArrayD<f32>>>> {
        self.check_learnables()?;
        self.complete_tape();
        let tape = self.tape.as_ref().ok_or_else(|| no_forward(&self.name))?;
        let steps = &tape.steps;
        let (h, c, nd) = (self.hidden, self.input_size, self.directions);
        let (t, b, s, g3) = (steps.t, steps.b, nd * h, 3 * h);
        let dy_all = output_grad(&self.name, &mut grads, self.output_mode, steps, s)?;
        let w_ih = matrix(&self.input_weights.value);
        let w_hh_all = self.recurrent_weights.value.as_standard_layout();
        let w_hh_all = w_hh_all.as_slice().expect("standard layout");
        let mut dw_ih = Array2::<f32>::zeros((nd * g3, c));
        let mut dw_hh = Array2::<f32>::zeros((nd * g3, h));
        let mut db = vec![0.0f32; nd * g3];
        let mut drb = vec![0.0f32; nd * g3];
        let need_dx = self.input_grad_needed;
        let mut dx = Array2::<f32>::zeros(if need_dx { (t * b, c) } else { (0, c) });
        let acts = acts(self.gate, self.state);
        let before = self.reset_gate_mode == ResetGateMode::BeforeMultiplication;
        for (d, dir) in tape.dirs.iter().enumerate() {
            let reverse = d == 1;
            let rows = d * g3..(d + 1) * g3;
            let w_hh = &w_hh_all[rows.start * h..rows.end * h];
            // This direction's `H` columns of the output gradient.
            let dy: Vec<f32> = if nd == 1 {
                dy_all.clone()
            } else {
                dy_all
                    .chunks_exact(s)
                    .flat_map(|r| r[d * h..(d + 1) * h].iter().copied())
                    .collect()
            };
            let trace = GruTrace {
                gates: &dir.gates,
                hn: &dir.hn,
                h: &dir.h,
            };
            let (db_d, drb_d) = (&mut db[rows.clone()], &mut drb[rows.clone()]);
            let fresh;
            let (dgi, dgh): (&[f32], &[f32]) = if before {
                fresh = gru_before_backward(acts, steps, reverse, w_hh, h, trace, &dy);
                column_sums(&fresh.0, db_d);
                column_sums(&fresh.1, drb_d);
                (&fresh.0, &fresh.1)
            } else {
                // The bias gradients are summed in the pass (no column sums
                // on one thread afterwards).
                let out = GruGrads {
                    dgi: &mut self.dgi_buf,
                    dgh: &mut self.dgh_buf,
                    db: db_d,
                    drb: drb_d,
                };
                gru_backward_into(acts, steps, reverse, w_hh, h, trace, &dy, out);
                (&self.dgi_buf, &self.dgh_buf)
            };
            weight_grad(
                dgi,
                tape.x.view(),
                g3,
                dw_ih.slice_axis_mut(Axis(0), rows.clone().into()),
            );
            let h_prev = view(&dir.h[steps.prev_start(reverse) * b * h..], t * b, h);
            let mut dr = dw_hh.slice_axis_mut(Axis(0), rows.clone().into());
            if before {
                // `R_r`, `R_z` against `h_{t−1}`; `R_n` against `r ⊙ h_{t−1}`.
                let dgh = view(dgh, t * b, g3);
                let (rz, n) = (0..2 * h, 2 * h..g3);
                matmul_into(
                    dgh.slice_axis(Axis(1), rz.clone().into()).t(),
                    h_prev,
                    dr.slice_axis_mut(Axis(0), rz.into()),
                    false,
                );
                matmul_into(
                    dgh.slice_axis(Axis(1), n.clone().into()).t(),
                    view(&dir.hn, t * b, h),
                    dr.slice_axis_mut(Axis(0), n.into()),
                    false,
                );
            } else {
                weight_grad(dgh, h_prev, g3, dr);
            }
            if need_dx {
                matmul_into(
                    view(dgi, t * b, g3),
                    w_ih.slice_axis(Axis(0), rows.into()),
                    dx.view_mut(),
                    d > 0,
                );
            }
        }
        self.input_weights.grad = dw_ih.into_dyn();
        self.recurrent_weights.grad = dw_hh.into_dyn();
        self.bias.grad = Array1::from(db).into_dyn();
        if let Some(rb) = &mut self.recurrent_bias {
            rb.grad = Array1::from(drb).into_dyn();
        }
        if !need_dx {
            return Ok(vec![None]);
        }
        Ok(vec![Some(
            dx.into_shape_with_order(vec![t, b, c])
                .expect("t·b·c values"),
        )])
    }

    fn learnables(&self) -> Vec<&Learnable> {
        let mut v = vec![&self.input_weights, &self.recurrent_weights, &self.bias];
        v.extend(self.recurrent_bias.as_ref());
        v
    }
    fn learnables_mut(&mut self) -> Vec<&mut Learnable> {
        // Whoever borrows the learnables mutably may change them.
        self.panels_valid = false;
        let mut v = vec![
            &mut self.input_weights,
            &mut self.recurrent_weights,
            &mut self.bias,
        ];
        v.extend(self.recurrent_bias.as_mut());
        v
    }
    fn reset_state(&mut self) {
        self.kept = None;
    }
    fn set_input_grad_needed(&mut self, needed: bool) {
        self.input_grad_needed = needed;
    }
}

/// `v` with `n` values: kept as it is when it has them already (its values
/// are overwritten before they are read), else zeros.
fn sized(v: &mut Vec<f32>, n: usize) {
    if v.len() != n {
        v.clear();
        v.resize(n, 0.0);
    }
}
