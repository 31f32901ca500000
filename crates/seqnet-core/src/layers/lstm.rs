//! [`Lstm`] and [`BiLstm`]: long short-term memory layers, one or two directions,
//! sharing one fused kernel ([`LstmKernel`]).

use super::lstm_forward::{fold_input, lstm_pass, GatePanels, PassBuffers};
use super::lstm_step::StepWeights;
use super::name_field;
use super::recurrent::{
    check_state_len, column_sums, fill_rows, initial_state, input_steps, matrix, output_grad,
    put_slot, recurrent_setters, take_slot, view, view_mut, weight_grad, with_acts, write_outputs,
    Act, GateActivation, OutputMode, RecurrentOptions, RecurrentState, StateActivation, Steps,
};
use super::util::{no_forward, single};
use crate::activation::Activation;
use crate::error::{Error, Result};
use crate::format::{ActShape, Format};
use crate::init::{BiasInitializer, WeightsInitializer};
use crate::layer::{ForwardCtx, LayerDef, LayerKernel, Mode, Params, ShapeError};
use crate::learnable::{Learnable, LearnableSpec};
use crate::linalg::{
    gemm_packed, has_avx512, matmul_into, row_threads, team, team_threads, PackedPanels, SharedMut,
};
use crate::torch::TorchLayout;
use ndarray::{s, ArcArray, Array1, Array2, ArrayD, Ix2, IxDyn};
use rand::rngs::StdRng;
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
    /// Initial cell state (MATLAB's `CellState`), sized as the `hidden_state` option.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cell_state: Option<Vec<f32>>,
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

    /// The output size `S = D·H`.
    pub fn output_size(&self) -> usize {
        D * self.num_hidden_units
    }

    /// The settings' own problems: `(setting, message)`.
    fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.num_hidden_units == 0 {
            return Err(("NumHiddenUnits", "must be positive".into()));
        }
        let s = self.output_size();
        if let Some(v) = &self.options.hidden_state {
            check_state_len("HiddenState", v.len(), s).map_err(|m| ("HiddenState", m))?;
        }
        if let Some(v) = &self.cell_state {
            check_state_len("CellState", v.len(), s).map_err(|m| ("CellState", m))?;
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
            tape: None,
            kept: None,
            final_state: None,
            step_buf: Vec::new(),
            step_weights: StepWeights::default(),
            step_gates: Vec::new(),
            step_weights_valid: false,
            panels: Vec::new(),
            panels_valid: false,
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
        let [w, r] = self.options.weight_specs(g, c, h);
        let b = self
            .options
            .bias_spec("Bias", g, self.bias_initializer, D, 4);
        vec![w, r, b]
    }
    fn build(&self, inputs: &[ActShape], params: Params) -> Result<Box<dyn LayerKernel>> {
        Ok(Box::new(self.kernel_from(inputs, params)?))
    }
    fn torch_layout(&self) -> Option<TorchLayout> {
        Some(TorchLayout::recurrent("nn.LSTM", D, false))
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
        let (h, c, nd) = (self.hidden, self.input_size, self.directions);
        if self.panels_valid && self.panels.len() == nd && self.panels[0].fits(c, h, fold) {
            return;
        }
        let g4 = 4 * h;
        let w_ih = self.input_weights.value.as_standard_layout();
        let w_ih = w_ih.as_slice().expect("standard layout");
        let w_hh = self.recurrent_weights.value.as_standard_layout();
        let w_hh = w_hh.as_slice().expect("standard layout");
        let bias = self.bias.value.as_standard_layout();
        let bias = bias.as_slice().expect("standard layout");
        self.panels.resize_with(nd, GatePanels::default);
        for (d, p) in self.panels.iter_mut().enumerate() {
            let rows = d * g4..(d + 1) * g4;
            p.pack(
                &w_ih[rows.start * c..rows.end * c],
                c,
                &w_hh[rows.start * h..rows.end * h],
                h,
                &bias[rows],
                fold,
            );
        }
        self.panels_valid = true;
    }

    /// Runs every direction's pass through time over `x` (`[T, B, C]`) from
    /// the initial states already in `dirs`' slots, with the packed panels;
    /// with `tape`, keeps what backward needs.
    fn run_passes(
        &self,
        steps: &Steps,
        x: &ArcArray<f32, IxDyn>,
        dirs: &mut [LstmDir],
        tape: bool,
    ) {
        let (h, c) = (self.hidden, self.input_size);
        let (t, b, g4) = (steps.t, steps.b, 4 * h);
        let fold = self.panels[0].folded();
        let x_rows = x.as_slice().expect("standard layout");
        let threads = row_threads(b, b * if fold { c + h } else { h } * 4 * h);
        let w_ih = matrix(&self.input_weights.value);
        let bias = self.bias.value.as_standard_layout();
        let bias = bias.as_slice().expect("standard layout");
        for (d, dir) in dirs.iter_mut().enumerate() {
            if tape || !fold {
                sized(&mut dir.gates, t * b * g4);
            }
            if tape {
                sized(&mut dir.tc, t * b * h);
            }
            if !fold {
                let rows = d * g4..(d + 1) * g4;
                fill_rows(&mut dir.gates, &bias[rows.clone()]);
                matmul_into(
                    view(x_rows, t * b, c),
                    w_ih.slice(s![rows, ..]).t(),
                    view_mut(&mut dir.gates, t * b, g4),
                    true,
                );
            }
            let bufs = PassBuffers {
                gates: &mut dir.gates,
                h: &mut dir.h,
                c: &mut dir.c,
                tc: &mut dir.tc,
            };
            with_acts!(
                self.gate,
                self.state,
                lstm_pass(
                    steps,
                    d == 1,
                    x_rows,
                    &self.panels[d],
                    bufs,
                    tape,
                    threads,
                    has_avx512()
                )
            );
        }
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
            self.run_passes(&tape.steps, &tape.x, &mut tape.dirs, true);
            tape.complete = true;
        }
        self.tape = Some(tape);
    }

    fn check_learnables(&self) -> Result<()> {
        let g = 4 * self.directions * self.hidden;
        for (p, want) in [
            (&self.input_weights, vec![g, self.input_size]),
            (&self.recurrent_weights, vec![g, self.hidden]),
            (&self.bias, vec![g]),
        ] {
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
        self.run_passes(&steps, &x_kept, &mut dirs, tape);

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
            dirs,
            complete: tape,
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
        for (d, dir) in tape.dirs.iter().enumerate() {
            let reverse = d == 1;
            let rows = d * g4..(d + 1) * g4;
            let w = &w_hh_all[rows.start * h..rows.end * h];
            let dg = with_acts!(
                self.gate,
                self.state,
                lstm_pass_back(steps, reverse, w, h, dir, &dy, s, d * h)
            );
            weight_grad(
                &dg,
                tape.x
                    .view()
                    .into_shape_with_order((t * b, c))
                    .map_err(|e| Error::layer(&self.name, e.to_string()))?,
                g4,
                dw_ih.slice_mut(s![rows.clone(), ..]),
            );
            let p0 = steps.prev_start(reverse);
            weight_grad(
                &dg,
                view(&dir.h[p0 * b * h..], t * b, h),
                g4,
                dw_hh.slice_mut(s![rows.clone(), ..]),
            );
            column_sums(&dg, &mut db[rows.clone()]);
            if need_dx {
                matmul_into(
                    view(&dg, t * b, g4),
                    w_ih.slice(s![rows, ..]),
                    dx.view_mut(),
                    d > 0,
                );
            }
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
        vec![&self.input_weights, &self.recurrent_weights, &self.bias]
    }
    fn learnables_mut(&mut self) -> Vec<&mut Learnable> {
        // Whoever borrows the learnables mutably may change them.
        self.step_weights_valid = false;
        self.panels_valid = false;
        vec![
            &mut self.input_weights,
            &mut self.recurrent_weights,
            &mut self.bias,
        ]
    }
    fn reset_state(&mut self) {
        self.kept = None;
    }

    fn set_input_grad_needed(&mut self, needed: bool) {
        self.input_grad_needed = needed;
    }

    /// One direction only: a BiLSTM's backward direction needs the whole sequence.
    fn can_step(&self) -> bool {
        self.directions == 1
    }

    /// One step of one observation from the kept state (or the initial state
    /// when none is kept for a batch of 1), keeping the new state: `W·x + b`
    /// and `R·h` as dot products, then the fused cell update. No allocation
    /// once the kept state and the step buffer exist.
    fn forward_step(&mut self, x: &[f32], out: &mut Vec<f32>) -> Result<()> {
        let (h, c) = (self.hidden, self.input_size);
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
        with_acts!(
            self.gate,
            self.state,
            step_with(&self.step_weights, buf, hv, cell, &mut self.step_gates)
        );
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

/// How many threads run one direction's backward pass through time: two (or rayon's
/// thread count, at most 2) when a step's recurrent product is large enough to
/// pay for meeting at a barrier every step, else one. (Measured: at 1M
/// multiply-adds per step, Japanese Vowels' 27×100·100×400, one thread is as
/// fast on an idle host and many times faster on a loaded one, where a thread
/// waits at every barrier for its partner to be scheduled again.)
fn back_pass_threads(b: usize, h: usize) -> usize {
    let macs = b * 4 * h * h;
    if macs >= 1 << 21 && h >= 32 {
        team_threads(rayon::current_num_threads().clamp(1, 2))
    } else {
        1
    }
}

/// For each time step, one past the last observation with a real step there:
/// the rows a step's product must cover (a batch sorted by decreasing length
/// shrinks as its sequences end, as PyTorch's packed sequences do).
fn active_rows(steps: &Steps) -> Vec<usize> {
    (0..steps.t)
        .map(|t| {
            (0..steps.b)
                .rev()
                .find(|&bi| steps.real(bi, t))
                .map_or(0, |bi| bi + 1)
        })
        .collect()
}

/// Whether a pass multiplies by packed weights ([`PackedPanels`]): packing
/// costs about one row's product per weight, so it pays only over enough rows
/// and steps; a single streaming step (`predict_and_update_state`) multiplies
/// by the weights as they are.
fn use_packing(t: usize, b: usize) -> bool {
    t * b >= 8
}

/// The slices one backward cell update reads and writes for `n` hidden units
/// of one observation at one step.
struct CellBack<'a> {
    /// Activated gates `i, f, g, o`.
    gates: [&'a [f32]; 4],
    c_prev: &'a [f32],
    tc: &'a [f32],
    /// Loss gradient of the output at this step.
    dy: &'a [f32],
    /// Gradient for the hidden state after this step, from later steps.
    dh_next: &'a [f32],
    /// Gradient for the cell state after this step (in), before it (out).
    dc: &'a mut [f32],
    /// Gradient for the gate pre-activations (out).
    dg: [&'a mut [f32]; 4],
}

#[inline(always)]
fn cell_back_body<G: Act, S: Act>(x: CellBack) {
    let [gi, gf, gg, go] = x.gates;
    let n = gi.len();
    let (gf, gg, go) = (&gf[..n], &gg[..n], &go[..n]);
    let (cp, tc, dyr, dhn) = (&x.c_prev[..n], &x.tc[..n], &x.dy[..n], &x.dh_next[..n]);
    let dcr = &mut x.dc[..n];
    let [di, df, dgg, d_o] = x.dg;
    let (di, df, dgg, d_o) = (&mut di[..n], &mut df[..n], &mut dgg[..n], &mut d_o[..n]);
    for j in 0..n {
        let dh = dhn[j] + dyr[j];
        let dcv = dcr[j] + dh * go[j] * S::df(tc[j]);
        d_o[j] = dh * tc[j] * G::df(go[j]);
        di[j] = dcv * gg[j] * G::df(gi[j]);
        df[j] = dcv * cp[j] * G::df(gf[j]);
        dgg[j] = dcv * gi[j] * S::df(gg[j]);
        dcr[j] = dcv * gf[j];
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn cell_back_avx512<G: Act, S: Act>(x: CellBack) {
    cell_back_body::<G, S>(x)
}

#[inline]
fn cell_back<G: Act, S: Act>(x: CellBack, avx512: bool) {
    #[cfg(target_arch = "x86_64")]
    if avx512 {
        // SAFETY: the caller checked that the CPU has AVX-512F.
        unsafe { cell_back_avx512::<G, S>(x) };
        return;
    }
    let _ = avx512;
    cell_back_body::<G, S>(x)
}

/// `len` values at `p + offset`, as a slice.
///
/// # Safety
/// The range is inside the buffer and, while the slice lives, no thread writes it.
#[inline(always)]
unsafe fn at<'a>(p: SharedMut, offset: usize, len: usize) -> &'a [f32] {
    std::slice::from_raw_parts(p.0.add(offset), len)
}

/// `len` values at `p + offset`, as a mutable slice.
///
/// # Safety
/// The range is inside the buffer and no other slice of it is alive.
#[inline(always)]
#[allow(clippy::mut_from_ref)]
unsafe fn at_mut<'a>(p: SharedMut, offset: usize, len: usize) -> &'a mut [f32] {
    std::slice::from_raw_parts_mut(p.0.add(offset), len)
}

/// One direction's backward through time. `dy` is the loss gradient for the
/// layer's output `[T·B, S]`, of which this direction owns columns
/// `offset..offset + H`. Returns the gradient for the gate pre-activations,
/// `[T·B, 4H]` (zero at padded steps). Threads split the hidden units as in
/// [`lstm_pass`]: each computes its units' gate gradients, then (after the
/// step's barrier) its units' share of `dh_prev = dG·R`.
#[allow(clippy::too_many_arguments)]
fn lstm_pass_back<G: Act, S: Act>(
    steps: &Steps,
    reverse: bool,
    w_hh: &[f32],
    h: usize,
    dir: &LstmDir,
    dy: &[f32],
    s: usize,
    offset: usize,
) -> Vec<f32> {
    let (t_len, b) = (steps.t, steps.b);
    let g4 = 4 * h;
    let mut dg = vec![0.0f32; t_len * b * g4];
    let threads = back_pass_threads(b, h);
    let rows = active_rows(steps);
    let avx512 = has_avx512();
    let dgp = SharedMut(dg.as_mut_ptr());
    team(threads, |ti, size, barrier| {
        let r = ti * h / size..(ti + 1) * h / size;
        let (u0, n) = (r.start, r.len());
        // Column `j`: unit `u0 + j` of `dh_prev`, a column of `R` `[4H, H]`.
        let packed = use_packing(t_len, b);
        let mut pack = PackedPanels::default();
        if packed {
            pack.pack(g4, n, |kk, j| w_hh[kk * h + u0 + j]);
        }
        let ldc = if packed { pack.padded_cols() } else { n };
        let mut prod = vec![0f32; b * ldc];
        // Gradients for this thread's units of the hidden and cell state after
        // the step being processed, `[B, n]`.
        let mut dh_next = vec![0.0f32; b * n];
        let mut dh_carry = vec![0.0f32; b * n];
        let mut dc = vec![0.0f32; b * n];
        for k in (0..t_len).rev() {
            let t = steps.step(k, reverse);
            let (prev, _) = steps.slots(t, reverse);
            for bi in 0..b {
                let rb = bi * n..(bi + 1) * n;
                if !steps.real(bi, t) {
                    // The state passes through unchanged: so does its gradient.
                    dh_carry[rb.clone()].copy_from_slice(&dh_next[rb]);
                    continue;
                }
                dh_carry[rb.clone()].fill(0.0);
                let row = t * b + bi;
                let g = &dir.gates[row * g4 + u0..];
                let g0 = row * g4 + u0;
                // SAFETY: this thread alone writes units `u0..u0 + n` of row `row`.
                let dgs = unsafe {
                    [
                        at_mut(dgp, g0, n),
                        at_mut(dgp, g0 + h, n),
                        at_mut(dgp, g0 + 2 * h, n),
                        at_mut(dgp, g0 + 3 * h, n),
                    ]
                };
                cell_back::<G, S>(
                    CellBack {
                        gates: [
                            &g[..n],
                            &g[h..h + n],
                            &g[2 * h..2 * h + n],
                            &g[3 * h..3 * h + n],
                        ],
                        c_prev: &dir.c[(prev * b + bi) * h + u0..][..n],
                        tc: &dir.tc[row * h + u0..][..n],
                        dy: &dy[row * s + offset + u0..][..n],
                        dh_next: &dh_next[rb.clone()],
                        dc: &mut dc[rb],
                        dg: dgs,
                    },
                    avx512,
                );
            }
            barrier.wait_as(ti);
            // dh_prev = carried part + dG_t·R, for this thread's units.
            let m = rows[t];
            // SAFETY: step `t`'s gate gradients are complete (before the barrier)
            // and nobody writes them again.
            let dg_t = unsafe { at(dgp, t * b * g4, b * g4) };
            if packed {
                gemm_packed(dg_t, g4, m, &pack, &mut prod, ldc);
            } else {
                for bi in 0..m {
                    let out = &mut prod[bi * ldc..bi * ldc + n];
                    out.fill(0.0);
                    for (kk, &g) in dg_t[bi * g4..(bi + 1) * g4].iter().enumerate() {
                        let wr = &w_hh[kk * h + u0..kk * h + u0 + n];
                        for (o, &w) in out.iter_mut().zip(wr) {
                            *o = g.mul_add(w, *o);
                        }
                    }
                }
            }
            for bi in 0..b {
                let rb = bi * n..(bi + 1) * n;
                if bi < m {
                    for ((d, c), p) in dh_next[rb.clone()]
                        .iter_mut()
                        .zip(&dh_carry[rb])
                        .zip(&prod[bi * ldc..bi * ldc + n])
                    {
                        *d = c + p;
                    }
                } else {
                    dh_next[rb.clone()].copy_from_slice(&dh_carry[rb]);
                }
            }
        }
    });
    dg
}

/// [`StepWeights::step`] as a function of the activations, for `with_acts!`.
fn step_with<G: Act, S: Act>(
    w: &StepWeights,
    z: &[f32],
    hidden: &mut [f32],
    cell: &mut [f32],
    gates: &mut Vec<f32>,
) {
    w.step::<G, S>(z, hidden, cell, gates)
}
