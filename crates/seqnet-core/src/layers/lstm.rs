//! [`Lstm`] and [`BiLstm`]: long short-term memory layers, one or two directions,
//! sharing one fused kernel ([`LstmKernel`]).

use super::name_field;

#[path = "lstm_projection.rs"]
mod projection;
use super::recurrent::{
    acts, check_state_len, gather_rows, initial_state, input_steps, matrix, output_grad,
    pack_directions, project_rows, put_slot, real_rows, recurrent_setters, scatter_rows,
    scatter_rows_or, take_slot, view, weight_grad, write_outputs, GateActivation, OutputMode,
    RecurrentOptions, RecurrentState, StackedWeights, StateActivation, Steps,
};
use super::util::{no_forward, single};
use crate::activation::Activation;
use crate::error::{Error, Result};
use crate::format::{ActShape, Format};
use crate::init::{BiasInitializer, WeightsInitializer};
use crate::layer::{ForwardCtx, LayerDef, LayerKernel, Mode, Params, ShapeError};
use crate::learnable::{Learnable, LearnableSpec};
use crate::torch::TorchLayout;
use ndarray::{ArcArray, Array1, Array2, ArrayD, Axis, Ix2, IxDyn};
use rand::rngs::StdRng;
use seqnet_kernels::gemm::matmul_into;
use seqnet_kernels::recurrent::{
    fold_input, lstm_backward_into, lstm_forward, GatePanels, LstmTrace, OutputGrad, PassBuffers,
    StepWeights,
};
use serde::{Deserialize, Serialize};

/// The settings of an LSTM layer with `D` directions; use the aliases [`Lstm`]
/// (`D = 1`, MATLAB's `lstmLayer`) and [`BiLstm`] (`D = 2`, MATLAB's `bilstmLayer`).
///
/// With `H` hidden units, `C` input channels and `S = D·H`:
///
/// * Input: a feature sequence `C×B×T` (`[T, B, C]`) only.
/// * Output: `S×B×T` (`[T, B, S]`, zero at padded steps) with
///   [`OutputMode::Sequence`], or `S×B` (`[B, S]`, each sequence's last real step)
///   with [`OutputMode::Last`]. A BiLSTM's output is the forward direction's `H`
///   channels, then the backward direction's `H`.
/// * Learnables (MATLAB's names, PyTorch's layout, gate order input `i`, forget `f`,
///   cell candidate `g`, output `o`, forward direction's rows first):
///   `InputWeights` `[4·D·H, C]`, `RecurrentWeights` `[4·D·H, H]`,
///   `Bias` `[4·D·H]` (PyTorch's `bias_ih + bias_hh`).
///
/// Each step computes `i, f, o = gate(W·x + R·h + b)`, `g = state(W_g·x + R_g·h + b_g)`,
/// `c' = f ⊙ c + i ⊙ g`, `h' = o ⊙ state(c')`.
///
/// Padded steps (per the input's [`crate::SeqLengths`], right or left padding) leave
/// the state unchanged and get no gradient, so a padded sequence gives exactly what
/// it gives alone. The backward direction of a BiLSTM starts at each sequence's
/// last real step.
///
/// **State.** A forward starts from the `hidden_state` and `cell_state` fields
/// (zeros when `None`). A stateful forward ([`ForwardCtx::stateful`]) instead starts
/// from the state the previous stateful forward kept, when there is one for the same
/// batch size, and keeps its own final state (each sequence's state after its last
/// real step; for a BiLSTM's backward direction, after its first real step).
/// Gradients never flow into a kept or initial state (truncated backpropagation
/// through time); [`LayerKernel::reset_state`] forgets the kept state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LstmConfig<const D: usize> {
    /// The layer's name (MATLAB's `Name`), unique in its graph.
    #[serde(default)]
    pub name: String,
    /// `H`, the number of hidden units of each direction.
    pub num_hidden_units: usize,
    /// The options all recurrent layers share; a BiLSTM's `hidden_state` is
    /// the forward direction's `H`, then the backward's.
    #[serde(flatten)]
    pub options: RecurrentOptions,
    /// MATLAB's `BiasInitializer`; `unit-forget-gate` sets each direction's forget-gate quarter to 1.
    #[serde(default = "unit_forget_gate")]
    pub bias_initializer: BiasInitializer,
    /// Initial cell state (MATLAB's `CellState`): `D·H` values, or `B·D·H`
    /// (`[B, D·H]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cell_state: Option<Vec<f32>>,
    /// `P`, the size of the output projection (PyTorch's `proj_size`; MATLAB's
    /// `lstmLayer` has no such option): `None` (the default) for none. With
    /// `P`, each direction's hidden state and output are
    /// `ProjectorWeights·(o ⊙ state(c))`, `P` values (`0 < P < H`), the cell
    /// state keeps `H`; the output is `D·P` wide, `RecurrentWeights` is
    /// `[4·D·H, P]` and `ProjectorWeights` `[D·P, H]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub projection_size: Option<usize>,
}

/// MATLAB's `lstmLayer`: see [`LstmConfig`]. Output size `H`.
pub type Lstm = LstmConfig<1>;
/// MATLAB's `bilstmLayer`: see [`LstmConfig`]. Output size `2H` (forward, then backward).
pub type BiLstm = LstmConfig<2>;

fn unit_forget_gate() -> BiasInitializer {
    BiasInitializer::UnitForgetGate
}

impl<const D: usize> LstmConfig<D> {
    /// A layer with `num_hidden_units` hidden units per direction and MATLAB's defaults.
    pub fn new(num_hidden_units: usize) -> Self {
        LstmConfig {
            name: String::new(),
            num_hidden_units,
            options: RecurrentOptions::default(),
            bias_initializer: unit_forget_gate(),
            cell_state: None,
            projection_size: None,
        }
    }
    /// Sets the layer's name (MATLAB's `'Name'`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }
    recurrent_setters!();
    /// Sets MATLAB's `BiasInitializer` (default `unit-forget-gate`, per direction).
    pub fn bias_initializer(mut self, i: BiasInitializer) -> Self {
        self.bias_initializer = i;
        self
    }
    /// Initial cell state: `D·H` values, or `B·D·H` (`[B, D·H]`).
    pub fn cell_state(mut self, v: Vec<f32>) -> Self {
        self.cell_state = Some(v);
        self
    }

    /// Sets the output projection's size `P` (PyTorch's `proj_size`; see
    /// [`LstmConfig::projection_size`]).
    pub fn projection_size(mut self, p: usize) -> Self {
        self.projection_size = Some(p);
        self
    }

    /// The output size `S = D·H`, or `D·P` with a projection.
    pub fn output_size(&self) -> usize {
        D * self.state_size()
    }

    /// Each direction's hidden-state size: `P` with a projection, else `H`.
    fn state_size(&self) -> usize {
        self.projection_size.unwrap_or(self.num_hidden_units)
    }

    /// The settings' own problems: `(setting, message)`.
    fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.num_hidden_units == 0 {
            return Err(("NumHiddenUnits", "must be positive".into()));
        }
        if let Some(p) = self.projection_size {
            if p == 0 || p >= self.num_hidden_units {
                return Err((
                    "ProjectionSize",
                    format!(
                        "must be between 1 and NumHiddenUnits − 1 ({}), got {p}",
                        self.num_hidden_units - 1
                    ),
                ));
            }
        }
        let s = self.output_size();
        if let Some(v) = &self.options.hidden_state {
            check_state_len("HiddenState", v.len(), s).map_err(|m| ("HiddenState", m))?;
        }
        if let Some(v) = &self.cell_state {
            check_state_len("CellState", v.len(), D * self.num_hidden_units)
                .map_err(|m| ("CellState", m))?;
        }
        Ok(())
    }

    /// The concrete kernel, with learnables initialized from `rng` as a network
    /// initializes them; `inputs` is the one input's shape (`C×B×T`).
    /// [`LayerDef::build`] boxes this; use it directly to read [`LstmKernel::final_state`].
    pub fn kernel(&self, inputs: &[ActShape], rng: &mut StdRng) -> Result<LstmKernel> {
        let params = Params::allocate(&self.name, &self.learnables(inputs), &[], rng);
        self.kernel_from(inputs, params)
    }

    /// The concrete kernel holding `params` (see [`LayerDef::build`]).
    fn kernel_from(&self, inputs: &[ActShape], mut params: Params) -> Result<LstmKernel> {
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
        Ok(LstmKernel {
            name: self.name.clone(),
            hidden: self.num_hidden_units,
            input_size: inputs[0].channels,
            directions: D,
            output_mode: o.output_mode,
            gate: o.gate_activation,
            state: o.state_activation,
            hidden_state: o.hidden_state.clone(),
            cell_state: self.cell_state.clone(),
            input_weights: params.learnable("InputWeights")?,
            recurrent_weights: params.learnable("RecurrentWeights")?,
            bias: params.learnable("Bias")?,
            projector: match self.projection_size {
                Some(_) => Some(params.learnable("ProjectorWeights")?),
                None => None,
            },
            projected: self.state_size(),
            proj_tape: None,
            tape: None,
            kept: None,
            final_state: None,
            step_buf: Vec::new(),
            step_weights: StepWeights::default(),
            step_gates: Vec::new(),
            step_weights_valid: false,
            panels: Vec::new(),
            panels_valid: false,
            dg_buf: Vec::new(),
            input_grad_needed: true,
        })
    }
}

/// Shape inference shared by the recurrent layers: a `C×B×T` input gives `S×B×T` or `S×B`.
pub(crate) fn infer_recurrent(
    inputs: &[ActShape],
    size: usize,
    mode: OutputMode,
) -> Result<Vec<ActShape>, ShapeError> {
    let x = single(inputs)?;
    if x.format != Format::CBT {
        return Err(ShapeError::new(
            0,
            format!(
                "expects a feature sequence (C×B×T), got {x} ({})",
                x.format.label()
            ),
        ));
    }
    Ok(vec![match mode {
        OutputMode::Sequence => ActShape::sequence(size),
        OutputMode::Last => ActShape::features(size),
    }])
}

impl<const D: usize> LayerDef for LstmConfig<D> {
    name_field!();
    fn type_name(&self) -> &'static str {
        if D == 2 {
            "BiLSTM"
        } else {
            "LSTM"
        }
    }
    fn infer(&self, inputs: &[ActShape]) -> Result<Vec<ActShape>, ShapeError> {
        self.validate()
            .map_err(|(setting, m)| ShapeError::new(0, format!("{setting} {m}")))?;
        infer_recurrent(inputs, self.output_size(), self.options.output_mode)
    }
    fn learnables(&self, inputs: &[ActShape]) -> Vec<LearnableSpec> {
        let c = inputs.first().map(|s| s.channels).unwrap_or(0);
        let (h, g) = (self.num_hidden_units, 4 * D * self.num_hidden_units);
        let [w, r] = self.options.weight_specs(g, c, self.state_size());
        let b = self
            .options
            .bias_spec("Bias", g, self.bias_initializer, D, 4);
        let mut specs = vec![w, r, b];
        if let Some(p) = self.projection_size {
            specs.push(projection::projector_spec(&self.options, D * p, h));
        }
        specs
    }
    fn build(&self, inputs: &[ActShape], params: Params) -> Result<Box<dyn LayerKernel>> {
        Ok(Box::new(self.kernel_from(inputs, params)?))
    }
    fn torch_layout(&self) -> Option<TorchLayout> {
        let mut layout = TorchLayout::recurrent("nn.LSTM", D, false);
        if self.projection_size.is_some() {
            layout.params.push(projection::projector_torch(D));
        }
        Some(layout)
    }
}

/// What one direction's forward keeps for its backward.
#[derive(Debug, Clone, Default)]
struct LstmDir {
    /// Activated gates `i, f, g, o` of every step, `[T·B, 4H]` (unused at
    /// padded steps); not written by an inference forward (see `LstmTape::complete`).
    gates: Vec<f32>,
    /// Hidden states, `T + 2` slots of `[B, H]` (see [`super::recurrent`]).
    h: Vec<f32>,
    /// Cell states, same slots as `h`.
    c: Vec<f32>,
    /// `state(c)` after every step, `[T·B, H]`; not written by an inference forward.
    tc: Vec<f32>,
}

#[derive(Debug, Clone)]
struct LstmTape {
    steps: Steps,
    /// The input `[T, B, C]`, standard layout (viewed as `[T·B, C]` rows).
    x: ArcArray<f32, IxDyn>,
    /// The rows of `x` at the real steps (`real_rows`), `[N, C]`, when the
    /// forward gathered them for its input projection: backward's
    /// input-side products run on the same rows.
    x_real: Option<Vec<f32>>,
    dirs: Vec<LstmDir>,
    /// Whether the forward kept what backward needs (gates, `state(c)`): in
    /// training mode only.
    complete: bool,
}

/// The kernel of [`Lstm`] and [`BiLstm`]: learnables `InputWeights` `[4·D·H, C]`,
/// `RecurrentWeights` `[4·D·H, H]`, `Bias` `[4·D·H]`; input `[T, B, C]`; output
/// `[T, B, D·H]` or `[B, D·H]`.
#[derive(Debug, Clone)]
pub struct LstmKernel {
    name: String,
    hidden: usize,
    input_size: usize,
    directions: usize,
    output_mode: OutputMode,
    gate: GateActivation,
    state: StateActivation,
    hidden_state: Option<Vec<f32>>,
    cell_state: Option<Vec<f32>>,
    input_weights: Learnable,
    recurrent_weights: Learnable,
    bias: Learnable,
    /// `ProjectorWeights` `[D·P, H]`, with a projection.
    projector: Option<Learnable>,
    /// Each direction's hidden-state size: `P` with a projection, else `H`.
    projected: usize,
    /// What a projected forward keeps for its backward.
    proj_tape: Option<projection::ProjTape>,
    tape: Option<LstmTape>,
    kept: Option<RecurrentState>,
    final_state: Option<RecurrentState>,
    /// The streaming step's buffer (gates, recurrent products, cell state).
    step_buf: Vec<f32>,
    /// The streaming step's weights ([`StepWeights`]), valid while
    /// `step_weights_valid` (cleared by every mutable borrow of the
    /// learnables, the only way to change them).
    step_weights: StepWeights,
    /// The streaming step's gate sums.
    step_gates: Vec<f32>,
    step_weights_valid: bool,
    /// Each direction's gate weights packed for the pass through time, valid
    /// while `panels_valid` (cleared as `step_weights_valid` is).
    panels: Vec<GatePanels>,
    panels_valid: bool,
    /// The gate gradients of one direction's backward, `[T·B, 4H]`, kept
    /// between backwards (every value is overwritten: no clearing, no page
    /// faults for a fresh 6.5 MB per training step).
    dg_buf: Vec<f32>,
    /// Whether backward returns the input's gradient (see
    /// [`LayerKernel::set_input_grad_needed`]).
    input_grad_needed: bool,
}

impl LstmKernel {
    /// The final state of the last forward: each sequence's hidden and cell state
    /// after its last real step, `[B, D·H]` each (a BiLSTM's backward half: after
    /// its first real step, as PyTorch's `h_n`, `c_n`).
    pub fn final_state(&self) -> Option<&RecurrentState> {
        self.final_state.as_ref()
    }

    /// The state kept by the last stateful forward (`[B, D·H]` each), if any.
    pub fn kept_state(&self) -> Option<&RecurrentState> {
        self.kept.as_ref()
    }

    /// Packs each direction's weights for the pass through time ([`GatePanels`]),
    /// unless the packed copy is still valid (the weights unchanged since) and
    /// has the input folded in or not as `fold` asks.
    fn pack_panels(&mut self, fold: bool) {
        let w = StackedWeights {
            input_weights: &self.input_weights,
            recurrent_weights: &self.recurrent_weights,
            bias: &self.bias,
            recurrent_bias: None,
            c: self.input_size,
            h: self.hidden,
            directions: self.directions,
        };
        pack_directions(&mut self.panels, &mut self.panels_valid, &w, fold);
    }

    /// Runs every direction's pass through time over `x` (`[T, B, C]`) from
    /// the initial states already in `dirs`' slots, with the packed panels;
    /// with `tape`, keeps what backward needs. Returns the real steps' input
    /// rows when the input projection gathered them.
    fn run_passes(
        &self,
        steps: &Steps,
        x: &ArcArray<f32, IxDyn>,
        dirs: &mut [LstmDir],
        tape: bool,
    ) -> Option<Vec<f32>> {
        let (h, c) = (self.hidden, self.input_size);
        let (t, b, g4) = (steps.t, steps.b, 4 * h);
        let fold = self.panels[0].folded();
        let x_rows = x.as_slice().expect("standard layout");
        let w_ih = matrix(&self.input_weights.value);
        let bias = self.bias.value.as_standard_layout();
        let bias = bias.as_slice().expect("standard layout");
        // Without the input folded into the step product, the projection
        // of every step is one product up front, on the real steps' rows
        // only when padding is a large share of them.
        let real = if fold { None } else { real_rows(steps) };
        let x_real = real.as_ref().map(|r| gather_rows(x_rows, c, r));
        for (d, dir) in dirs.iter_mut().enumerate() {
            if tape || !fold {
                sized(&mut dir.gates, t * b * g4);
            }
            if tape {
                sized(&mut dir.tc, t * b * h);
            }
            if !fold {
                let rows = d * g4..(d + 1) * g4;
                let w = w_ih.slice_axis(Axis(0), rows.clone().into());
                let bias = &bias[rows.clone()];
                match (&real, &x_real) {
                    (Some(real), Some(xr)) => {
                        // The real rows' gates on a buffer of their own,
                        // then every row of the step buffer: the real rows
                        // from it, the padded ones the bias alone.
                        let mut g = vec![0.0; real.len() * g4];
                        project_rows(xr, real.len(), w, bias, &mut g);
                        scatter_rows_or(&g, g4, real, &mut dir.gates, bias);
                    }
                    _ => project_rows(x_rows, t * b, w, bias, &mut dir.gates),
                }
            }
            let bufs = PassBuffers {
                gates: &mut dir.gates,
                h: &mut dir.h,
                c: &mut dir.c,
                tc: &mut dir.tc,
            };
            lstm_forward(
                acts(self.gate, self.state),
                steps,
                d == 1,
                x_rows,
                &self.panels[d],
                bufs,
                tape,
            );
        }
        x_real
    }

    /// Makes the tape of an inference forward (which keeps no gates) complete
    /// for backward, by running its passes again with the tape on: backward
    /// after an inference forward is allowed (as after PyTorch's `eval()`),
    /// but rare enough not to make every prediction keep the gates.
    fn complete_tape(&mut self) {
        let Some(mut tape) = self.tape.take() else {
            return;
        };
        if !tape.complete {
            self.pack_panels(fold_input(self.input_size, self.hidden, tape.steps.b));
            tape.x_real = self.run_passes(&tape.steps, &tape.x, &mut tape.dirs, true);
            tape.complete = true;
        }
        self.tape = Some(tape);
    }

    fn check_learnables(&self) -> Result<()> {
        let g = 4 * self.directions * self.hidden;
        let mut all = vec![
            (&self.input_weights, vec![g, self.input_size]),
            (&self.recurrent_weights, vec![g, self.projected]),
            (&self.bias, vec![g]),
        ];
        if let Some(q) = &self.projector {
            all.push((q, vec![self.directions * self.projected, self.hidden]));
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
}

impl LayerKernel for LstmKernel {
    fn forward(&mut self, inputs: &[&Activation], ctx: &mut ForwardCtx) -> Result<Vec<Activation>> {
        let x = inputs
            .first()
            .ok_or_else(|| Error::layer(&self.name, "no input"))?;
        if self.projector.is_some() {
            return self.forward_projected(x, ctx);
        }
        let (h, c, nd) = (self.hidden, self.input_size, self.directions);
        let steps = input_steps(&self.name, x, c)?;
        self.check_learnables()?;
        let (t, b, s) = (steps.t, steps.b, nd * h);
        // The input as `[T·B, C]` rows; kept for the weight gradient without a
        // copy when it is in standard layout (it nearly always is).
        let x_kept = if x.data.is_standard_layout() {
            x.data.clone()
        } else {
            x.data.as_standard_layout().into_owned().into_shared()
        };
        if x_kept.len() != t * b * c {
            return Err(Error::layer(
                &self.name,
                format!("expects {t}·{b}·{c} input values, got {}", x_kept.len()),
            ));
        }

        let start = match &self.kept {
            Some(k) if ctx.stateful && k.batch() == b => k.clone(),
            _ => RecurrentState {
                hidden: initial_state(
                    &self.name,
                    "HiddenState",
                    self.hidden_state.as_deref(),
                    b,
                    s,
                )?,
                cell: Some(initial_state(
                    &self.name,
                    "CellState",
                    self.cell_state.as_deref(),
                    b,
                    s,
                )?),
            },
        };
        let c0 = start.cell.as_ref().expect("an LSTM state has a cell state");

        let tape = ctx.mode == Mode::Training;
        self.pack_panels(fold_input(c, h, b));
        let mut dirs = Vec::with_capacity(nd);
        // Last forward's buffers, reused: every value a pass reads is written
        // first in it (gates from the bias, states slot by slot), so buffers
        // of the same size need no clearing.
        let mut old = self
            .tape
            .take()
            .map(|tp| tp.dirs)
            .unwrap_or_default()
            .into_iter();
        for d in 0..nd {
            let reverse = d == 1;
            let mut dir = old.next().unwrap_or_default();
            sized(&mut dir.h, (t + 2) * b * h);
            sized(&mut dir.c, (t + 2) * b * h);
            put_slot(
                &mut dir.h,
                steps.initial_slot(reverse),
                &start.hidden,
                d * h,
                h,
            );
            put_slot(&mut dir.c, steps.initial_slot(reverse), c0, d * h, h);
            dirs.push(dir);
        }
        let x_real = self.run_passes(&steps, &x_kept, &mut dirs, tape);

        let mut y = match self.output_mode {
            OutputMode::Sequence => vec![0.0; t * b * s],
            OutputMode::Last => Vec::new(),
        };
        let mut last = Array2::zeros((b, s));
        let mut fin = RecurrentState {
            hidden: Array2::zeros((b, s)),
            cell: Some(Array2::zeros((b, s))),
        };
        for (d, dir) in dirs.iter().enumerate() {
            match self.output_mode {
                OutputMode::Sequence => write_outputs(&steps, &dir.h, h, &mut y, s, d * h),
                // The output at step `t` is the state in slot `t + 1`.
                OutputMode::Last => {
                    for (bi, span) in steps.spans.iter().enumerate() {
                        if let Some(tl) = span.clone().last() {
                            let src = &dir.h[((tl + 1) * b + bi) * h..][..h];
                            last.row_mut(bi)
                                .iter_mut()
                                .skip(d * h)
                                .zip(src)
                                .for_each(|(o, v)| *o = *v);
                        }
                    }
                }
            }
            let slot = steps.final_slot(d == 1);
            take_slot(&dir.h, slot, &mut fin.hidden, d * h, h);
            take_slot(&dir.c, slot, fin.cell.as_mut().expect("cell"), d * h, h);
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
                let mut a = Activation::features(last.into_dyn())?;
                a.lengths = x
                    .lengths
                    .as_ref()
                    .map(|l| std::sync::Arc::new(l.one_step()));
                a
            }
        };
        self.tape = Some(LstmTape {
            steps,
            x: x_kept,
            x_real: x_real.filter(|_| tape),
            dirs,
            complete: tape,
        });
        Ok(vec![out])
    }

    fn backward(
        &mut self,
        mut grads: Vec<Option<ArrayD<f32>>>,
    ) -> Result<Vec<Option<ArrayD<f32>>>> {
        if self.projector.is_some() {
            return self.backward_projected(grads);
        }
        self.check_learnables()?;
        self.complete_tape();
        let tape = self.tape.as_ref().ok_or_else(|| no_forward(&self.name))?;
        let steps = &tape.steps;
        let (h, c, nd) = (self.hidden, self.input_size, self.directions);
        let (t, b, s, g4) = (steps.t, steps.b, nd * h, 4 * h);
        let dy = output_grad(&self.name, &mut grads, self.output_mode, steps, s)?;
        let w_ih = matrix(&self.input_weights.value);
        let w_hh_all = self.recurrent_weights.value.as_standard_layout();
        let w_hh_all = w_hh_all.as_slice().expect("standard layout");
        // The weight gradients are overwritten block by block: reuse last
        // backward's buffers (for the video network, 37 MB each) when they fit.
        let mut dw_ih = reuse_grad(&mut self.input_weights.grad, (nd * g4, c));
        let mut dw_hh = reuse_grad(&mut self.recurrent_weights.grad, (nd * g4, h));
        let mut db = vec![0.0f32; nd * g4];
        let need_dx = self.input_grad_needed;
        let mut dx = if need_dx {
            Array2::<f32>::zeros((t * b, c))
        } else {
            Array2::<f32>::zeros((0, c))
        };
        // The input-side products on the real steps' rows only when padding
        // is a large share (padded rows of `dg` are zero: they add nothing).
        let x_all = tape
            .x
            .as_slice()
            .ok_or_else(|| Error::layer(&self.name, "kept input not contiguous"))?;
        let real = real_rows(steps);
        let gathered;
        let x_real: Option<&[f32]> = match (&real, &tape.x_real) {
            (Some(_), Some(kept)) => Some(kept),
            (Some(r), None) => {
                gathered = gather_rows(x_all, c, r);
                Some(&gathered)
            }
            (None, _) => None,
        };
        let n_rows = real.as_ref().map_or(t * b, |r| r.len());
        let mut dx_rows = if need_dx && real.is_some() {
            Array2::<f32>::zeros((n_rows, c))
        } else {
            Array2::<f32>::zeros((0, c))
        };
        for (d, dir) in tape.dirs.iter().enumerate() {
            let reverse = d == 1;
            let rows = d * g4..(d + 1) * g4;
            let w = &w_hh_all[rows.start * h..rows.end * h];
            let trace = LstmTrace {
                gates: &dir.gates,
                c: &dir.c,
                tc: &dir.tc,
            };
            let grad = OutputGrad {
                dy: &dy,
                width: s,
                offset: d * h,
            };
            lstm_backward_into(
                acts(self.gate, self.state),
                steps,
                reverse,
                w,
                h,
                trace,
                grad,
                &mut self.dg_buf,
                &mut db[rows.clone()],
            );
            let dg = &self.dg_buf[..t * b * g4];
            let dg_real = real.as_ref().map(|r| gather_rows(dg, g4, r));
            let (dg_in, x_in) = match (&dg_real, x_real) {
                (Some(dgr), Some(xr)) => (&dgr[..], xr),
                _ => (dg, x_all),
            };
            weight_grad(
                dg_in,
                view(x_in, n_rows, c),
                g4,
                dw_ih.slice_axis_mut(Axis(0), rows.clone().into()),
            );
            let p0 = steps.prev_start(reverse);
            weight_grad(
                dg,
                view(&dir.h[p0 * b * h..], t * b, h),
                g4,
                dw_hh.slice_axis_mut(Axis(0), rows.clone().into()),
            );
            if need_dx {
                let into = if real.is_some() {
                    dx_rows.view_mut()
                } else {
                    dx.view_mut()
                };
                matmul_into(
                    view(dg_in, n_rows, g4),
                    w_ih.slice_axis(Axis(0), rows.into()),
                    into,
                    d > 0,
                );
            }
        }
        if let (true, Some(real)) = (need_dx, &real) {
            let src = dx_rows.as_slice().expect("standard layout");
            let dst = dx.as_slice_mut().expect("standard layout");
            scatter_rows(src, c, real, dst);
        }
        self.input_weights.grad = dw_ih.into_dyn();
        self.recurrent_weights.grad = dw_hh.into_dyn();
        self.bias.grad = Array1::from(db).into_dyn();
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
        v.extend(self.projector.as_ref());
        v
    }
    fn learnables_mut(&mut self) -> Vec<&mut Learnable> {
        // Whoever borrows the learnables mutably may change them.
        self.step_weights_valid = false;
        self.panels_valid = false;
        let mut v = vec![
            &mut self.input_weights,
            &mut self.recurrent_weights,
            &mut self.bias,
        ];
        v.extend(self.projector.as_mut());
        v
    }
    fn reset_state(&mut self) {
        self.kept = None;
    }

    fn set_input_grad_needed(&mut self, needed: bool) {
        self.input_grad_needed = needed;
    }

    /// One direction only: a BiLSTM's backward direction needs the whole
    /// sequence. Not with a projection: the streaming step is the fused
    /// unprojected one; a projected LSTM streams through stateful forwards.
    fn can_step(&self) -> bool {
        self.directions == 1 && self.projector.is_none()
    }

    /// One step of one observation from the kept state (or the initial state
    /// when none is kept for a batch of 1), keeping the new state: `W·x + b`
    /// and `R·h` as dot products, then the fused cell update. No allocation
    /// once the kept state and the step buffer exist.
    fn forward_step(&mut self, x: &[f32], out: &mut Vec<f32>) -> Result<()> {
        let (h, c) = (self.hidden, self.input_size);
        if !self.can_step() {
            return Err(Error::layer(
                &self.name,
                "has no streaming step (a BiLSTM or a projected LSTM): use a stateful forward",
            ));
        }
        if x.len() != c {
            return Err(Error::layer(
                &self.name,
                format!("expects {c} features per step, got {}", x.len()),
            ));
        }
        self.check_learnables()?;
        self.tape = None;
        if self.kept.as_ref().is_none_or(|k| k.batch() != 1) {
            self.kept = Some(RecurrentState {
                hidden: initial_state(
                    &self.name,
                    "HiddenState",
                    self.hidden_state.as_deref(),
                    1,
                    h,
                )?,
                cell: Some(initial_state(
                    &self.name,
                    "CellState",
                    self.cell_state.as_deref(),
                    1,
                    h,
                )?),
            });
        }
        if !self.step_weights_valid || !self.step_weights.is_packed() {
            let w_ih = self.input_weights.value.as_standard_layout();
            let w_hh = self.recurrent_weights.value.as_standard_layout();
            let bias = self.bias.value.as_standard_layout();
            self.step_weights = StepWeights::pack(
                w_ih.as_slice().expect("standard layout"),
                c,
                w_hh.as_slice().expect("standard layout"),
                h,
                bias.as_slice().expect("standard layout"),
                rayon::current_num_threads(),
            );
            self.step_weights_valid = true;
        }
        let kept = self.kept.as_mut().expect("set above");
        let hv = kept.hidden.as_slice_mut().expect("standard layout");
        let cell = kept
            .cell
            .as_mut()
            .expect("an LSTM state has a cell state")
            .as_slice_mut()
            .expect("standard layout");
        // The step buffer: `[x; h]`, then the gates.
        let buf = &mut self.step_buf;
        buf.clear();
        buf.extend_from_slice(x);
        buf.extend_from_slice(hv);
        let acts = acts(self.gate, self.state);
        self.step_weights
            .step(acts, buf, hv, cell, &mut self.step_gates);
        out.clear();
        out.extend_from_slice(hv);
        match &mut self.final_state {
            Some(f) if f.batch() == 1 => f.clone_from(kept),
            slot => *slot = Some(kept.clone()),
        }
        Ok(())
    }
}

/// Makes `v` hold `n` values: unchanged when it already does, else cleared and
/// zero-filled.
fn sized(v: &mut Vec<f32>, n: usize) {
    if v.len() != n {
        v.clear();
        v.resize(n, 0.0);
    }
}

/// A `[rows, cols]` buffer for a gradient that is overwritten whole: `grad`'s
/// own memory when it has that shape and layout, else zeros.
fn reuse_grad(grad: &mut ArrayD<f32>, shape: (usize, usize)) -> Array2<f32> {
    let g = std::mem::take(grad);
    if g.shape() == [shape.0, shape.1] && g.is_standard_layout() {
        if let Ok(g) = g.into_dimensionality::<Ix2>() {
            return g;
        }
    }
    Array2::zeros(shape)
}
