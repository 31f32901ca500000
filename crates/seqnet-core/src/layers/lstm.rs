//! [`Lstm`] and [`BiLstm`]: long short-term memory layers, one or two directions,
//! sharing one fused kernel ([`LstmKernel`]).

use super::recurrent::{
    check_state_len, column_sums, fill_rows, initial_state, input_steps, output_grad, put_slot,
    take_slot, two_slots, view, view_mut, weight_grad, with_acts, write_outputs, Act,
    GateActivation, OutputMode, RecurrentState, StateActivation, Steps,
};
use super::util::{no_forward, single};
use crate::activation::Activation;
use crate::error::{Error, Result};
use crate::format::{ActShape, Format};
use crate::init::{self, BiasInitializer, WeightsInitializer};
use crate::layer::{ForwardCtx, LayerDef, LayerKernel, ShapeError};
use crate::learnable::Learnable;
use crate::linalg::matmul_into;
use ndarray::{s, Array1, Array2, ArrayD, ArrayView2, Axis, Ix2};
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
    /// MATLAB's `OutputMode`: [`OutputMode::Sequence`] or [`OutputMode::Last`].
    #[serde(default)]
    pub output_mode: OutputMode,
    /// MATLAB's `StateActivationFunction`.
    #[serde(default)]
    pub state_activation: StateActivation,
    /// MATLAB's `GateActivationFunction`.
    #[serde(default)]
    pub gate_activation: GateActivation,
    /// MATLAB's `InputWeightsInitializer`, for `InputWeights` (fans `C` and `4·D·H`).
    #[serde(default = "glorot")]
    pub input_weights_initializer: WeightsInitializer,
    /// MATLAB's `RecurrentWeightsInitializer`, for `RecurrentWeights` (fan-in `H`).
    #[serde(default = "orthogonal")]
    pub recurrent_weights_initializer: WeightsInitializer,
    /// MATLAB's `BiasInitializer`; `unit-forget-gate` sets each direction's forget-gate quarter to 1.
    #[serde(default = "unit_forget_gate")]
    pub bias_initializer: BiasInitializer,
    /// Initial hidden state (MATLAB's `HiddenState`): `S = D·H` values, used for
    /// every observation, or `B·S` values, `[B, S]` row-major, one state per
    /// observation (then only batches of that size are accepted).
    /// `None`: zeros. A BiLSTM's state is the forward direction's `H`, then the backward's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hidden_state: Option<Vec<f32>>,
    /// Initial cell state (MATLAB's `CellState`), sized as the `hidden_state` field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cell_state: Option<Vec<f32>>,
    /// MATLAB's `InputWeightsL2Factor`: multiplies the global L2 regularization.
    #[serde(default = "one")]
    pub input_weights_l2_factor: f32,
    /// MATLAB's `RecurrentWeightsL2Factor`.
    #[serde(default = "one")]
    pub recurrent_weights_l2_factor: f32,
    /// MATLAB's `BiasL2Factor`.
    #[serde(default)]
    pub bias_l2_factor: f32,
    /// MATLAB's `InputWeightsLearnRateFactor`: multiplies the global learning rate.
    #[serde(default = "one")]
    pub input_weights_learn_rate_factor: f32,
    /// MATLAB's `RecurrentWeightsLearnRateFactor`.
    #[serde(default = "one")]
    pub recurrent_weights_learn_rate_factor: f32,
    /// MATLAB's `BiasLearnRateFactor`.
    #[serde(default = "one")]
    pub bias_learn_rate_factor: f32,
}

/// MATLAB's `lstmLayer`: see [`LstmConfig`]. Output size `H`.
pub type Lstm = LstmConfig<1>;
/// MATLAB's `bilstmLayer`: see [`LstmConfig`]. Output size `2H` (forward, then backward).
pub type BiLstm = LstmConfig<2>;

fn glorot() -> WeightsInitializer {
    WeightsInitializer::Glorot
}
fn orthogonal() -> WeightsInitializer {
    WeightsInitializer::Orthogonal
}
fn unit_forget_gate() -> BiasInitializer {
    BiasInitializer::UnitForgetGate
}
fn one() -> f32 {
    1.0
}

impl<const D: usize> LstmConfig<D> {
    /// A layer with `num_hidden_units` hidden units per direction and MATLAB's defaults.
    pub fn new(num_hidden_units: usize) -> Self {
        LstmConfig {
            name: String::new(),
            num_hidden_units,
            output_mode: OutputMode::Sequence,
            state_activation: StateActivation::Tanh,
            gate_activation: GateActivation::Sigmoid,
            input_weights_initializer: glorot(),
            recurrent_weights_initializer: orthogonal(),
            bias_initializer: unit_forget_gate(),
            hidden_state: None,
            cell_state: None,
            input_weights_l2_factor: 1.0,
            recurrent_weights_l2_factor: 1.0,
            bias_l2_factor: 0.0,
            input_weights_learn_rate_factor: 1.0,
            recurrent_weights_learn_rate_factor: 1.0,
            bias_learn_rate_factor: 1.0,
        }
    }
    /// Sets the layer's name (MATLAB's `'Name'`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }
    /// Sets MATLAB's `OutputMode`: the whole sequence `[T, B, S]` or the last real step `[B, S]`.
    pub fn output_mode(mut self, m: OutputMode) -> Self {
        self.output_mode = m;
        self
    }
    /// Sets MATLAB's `StateActivationFunction` (`tanh` or `softsign`).
    pub fn state_activation(mut self, a: StateActivation) -> Self {
        self.state_activation = a;
        self
    }
    /// Sets MATLAB's `GateActivationFunction` (`sigmoid` or `hard-sigmoid`).
    pub fn gate_activation(mut self, a: GateActivation) -> Self {
        self.gate_activation = a;
        self
    }
    /// Sets MATLAB's `InputWeightsInitializer` (default `glorot`).
    pub fn input_weights_initializer(mut self, i: WeightsInitializer) -> Self {
        self.input_weights_initializer = i;
        self
    }
    /// Sets MATLAB's `RecurrentWeightsInitializer` (default `orthogonal`).
    pub fn recurrent_weights_initializer(mut self, i: WeightsInitializer) -> Self {
        self.recurrent_weights_initializer = i;
        self
    }
    /// Sets MATLAB's `BiasInitializer` (default `unit-forget-gate`, per direction).
    pub fn bias_initializer(mut self, i: BiasInitializer) -> Self {
        self.bias_initializer = i;
        self
    }
    /// Initial hidden state: `D·H` values, or `B·D·H` (`[B, D·H]`); see the `hidden_state` field.
    pub fn hidden_state(mut self, v: Vec<f32>) -> Self {
        self.hidden_state = Some(v);
        self
    }
    /// Initial cell state: `D·H` values, or `B·D·H` (`[B, D·H]`).
    pub fn cell_state(mut self, v: Vec<f32>) -> Self {
        self.cell_state = Some(v);
        self
    }
    /// Sets MATLAB's `InputWeightsL2Factor` (default 1).
    pub fn input_weights_l2_factor(mut self, f: f32) -> Self {
        self.input_weights_l2_factor = f;
        self
    }
    /// Sets MATLAB's `RecurrentWeightsL2Factor` (default 1).
    pub fn recurrent_weights_l2_factor(mut self, f: f32) -> Self {
        self.recurrent_weights_l2_factor = f;
        self
    }
    /// Sets MATLAB's `BiasL2Factor` (default 0).
    pub fn bias_l2_factor(mut self, f: f32) -> Self {
        self.bias_l2_factor = f;
        self
    }
    /// Sets MATLAB's `InputWeightsLearnRateFactor` (default 1).
    pub fn input_weights_learn_rate_factor(mut self, f: f32) -> Self {
        self.input_weights_learn_rate_factor = f;
        self
    }
    /// Sets MATLAB's `RecurrentWeightsLearnRateFactor` (default 1).
    pub fn recurrent_weights_learn_rate_factor(mut self, f: f32) -> Self {
        self.recurrent_weights_learn_rate_factor = f;
        self
    }
    /// Sets MATLAB's `BiasLearnRateFactor` (default 1).
    pub fn bias_learn_rate_factor(mut self, f: f32) -> Self {
        self.bias_learn_rate_factor = f;
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
        if let Some(v) = &self.hidden_state {
            check_state_len("HiddenState", v.len(), s).map_err(|m| ("HiddenState", m))?;
        }
        if let Some(v) = &self.cell_state {
            check_state_len("CellState", v.len(), s).map_err(|m| ("CellState", m))?;
        }
        Ok(())
    }

    /// The concrete kernel, with learnables initialized from `rng`; `inputs` is the
    /// one input's shape (`C×B×T`). [`LayerDef::build`] boxes this; use it directly
    /// to read [`LstmKernel::final_state`].
    pub fn kernel(&self, inputs: &[ActShape], rng: &mut StdRng) -> Result<LstmKernel> {
        self.infer(inputs)
            .map_err(|e| Error::layer(&self.name, e.message))?;
        let c = inputs[0].channels;
        let h = self.num_hidden_units;
        let g = 4 * D * h;
        let mut input_weights = Learnable::weights(
            "InputWeights",
            init::weights(self.input_weights_initializer, &[g, c], c, g, rng),
        );
        input_weights.l2_factor = self.input_weights_l2_factor;
        input_weights.learn_rate_factor = self.input_weights_learn_rate_factor;
        let mut recurrent_weights = Learnable::weights(
            "RecurrentWeights",
            init::weights(self.recurrent_weights_initializer, &[g, h], h, g, rng),
        );
        recurrent_weights.l2_factor = self.recurrent_weights_l2_factor;
        recurrent_weights.learn_rate_factor = self.recurrent_weights_learn_rate_factor;
        let parts: Vec<Array1<f32>> = (0..D)
            .map(|_| init::bias(self.bias_initializer, 4 * h, 4, rng))
            .collect();
        let views: Vec<_> = parts.iter().map(|p| p.view()).collect();
        let bias_value = ndarray::concatenate(Axis(0), &views).expect("equal bias parts");
        let mut bias = Learnable::bias("Bias", bias_value.into_dyn());
        bias.l2_factor = self.bias_l2_factor;
        bias.learn_rate_factor = self.bias_learn_rate_factor;
        Ok(LstmKernel {
            name: self.name.clone(),
            hidden: h,
            input_size: c,
            directions: D,
            output_mode: self.output_mode,
            gate: self.gate_activation,
            state: self.state_activation,
            hidden_state: self.hidden_state.clone(),
            cell_state: self.cell_state.clone(),
            input_weights,
            recurrent_weights,
            bias,
            tape: None,
            kept: None,
            final_state: None,
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
    fn name(&self) -> &str {
        &self.name
    }
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
        infer_recurrent(inputs, self.output_size(), self.output_mode)
    }
    fn learnable_shapes(&self, inputs: &[ActShape]) -> Vec<(&'static str, Vec<usize>)> {
        let c = inputs.first().map(|s| s.channels).unwrap_or(0);
        let (h, g) = (self.num_hidden_units, 4 * D * self.num_hidden_units);
        vec![
            ("InputWeights", vec![g, c]),
            ("RecurrentWeights", vec![g, h]),
            ("Bias", vec![g]),
        ]
    }
    fn build(&self, inputs: &[ActShape], rng: &mut StdRng) -> Result<Box<dyn LayerKernel>> {
        if let Err((setting, message)) = self.validate() {
            return Err(Error::LayerConfig {
                layer: self.name.clone(),
                setting,
                message,
            });
        }
        Ok(Box::new(self.kernel(inputs, rng)?))
    }
}

/// What one direction's forward keeps for its backward.
#[derive(Debug, Clone)]
struct LstmDir {
    /// Activated gates `i, f, g, o` of every step, `[T·B, 4H]` (unused at padded steps).
    gates: Vec<f32>,
    /// Hidden states, `T + 2` slots of `[B, H]` (see [`super::recurrent`]).
    h: Vec<f32>,
    /// Cell states, same slots as `h`.
    c: Vec<f32>,
    /// `state(c)` after every step, `[T·B, H]`.
    tc: Vec<f32>,
}

#[derive(Debug, Clone)]
struct LstmTape {
    steps: Steps,
    /// The input as `[T·B, C]` rows.
    x: Array2<f32>,
    dirs: Vec<LstmDir>,
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
        let g4 = 4 * h;
        let xr = x
            .data
            .as_standard_layout()
            .into_owned()
            .into_shape_with_order((t * b, c))
            .map_err(|e| Error::layer(&self.name, e.to_string()))?;

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

        let w_ih = self
            .input_weights
            .value
            .view()
            .into_dimensionality::<Ix2>()
            .expect("checked 2-D");
        let w_hh = self
            .recurrent_weights
            .value
            .view()
            .into_dimensionality::<Ix2>()
            .expect("checked 2-D");
        let bias = self.bias.value.as_standard_layout();
        let bias = bias.as_slice().expect("standard layout");
        let mut dirs = Vec::with_capacity(nd);
        for d in 0..nd {
            let reverse = d == 1;
            let rows = d * g4..(d + 1) * g4;
            let mut dir = LstmDir {
                gates: vec![0.0; t * b * g4],
                h: vec![0.0; (t + 2) * b * h],
                c: vec![0.0; (t + 2) * b * h],
                tc: vec![0.0; t * b * h],
            };
            fill_rows(&mut dir.gates, &bias[rows.clone()]);
            matmul_into(
                xr.view(),
                w_ih.slice(s![rows.clone(), ..]).t(),
                view_mut(&mut dir.gates, t * b, g4),
                true,
            );
            put_slot(
                &mut dir.h,
                steps.initial_slot(reverse),
                &start.hidden,
                d * h,
                h,
            );
            put_slot(&mut dir.c, steps.initial_slot(reverse), c0, d * h, h);
            let w = w_hh.slice(s![rows, ..]);
            with_acts!(
                self.gate,
                self.state,
                lstm_pass(&steps, reverse, w, &mut dir)
            );
            dirs.push(dir);
        }

        let mut y = vec![0.0; t * b * s];
        let mut fin = RecurrentState {
            hidden: Array2::zeros((b, s)),
            cell: Some(Array2::zeros((b, s))),
        };
        for (d, dir) in dirs.iter().enumerate() {
            write_outputs(&steps, &dir.h, h, &mut y, s, d * h);
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
                {
                    // Keep the mask as one step per observation (as folded frames
                    // of a one-step sequence): a sequence with no real step here
                    // (a later chunk of a split batch) must not count in a loss.
                    let mut last = Activation::features(
                        super::recurrent::gather_last(&steps, &y, s).into_dyn(),
                    )?;
                    last.lengths = x
                        .lengths
                        .as_ref()
                        .map(|l| std::sync::Arc::new(l.one_step()));
                    last
                }
            }
        };
        self.tape = Some(LstmTape { steps, x: xr, dirs });
        Ok(vec![out])
    }

    fn backward(
        &mut self,
        mut grads: Vec<Option<ArrayD<f32>>>,
    ) -> Result<Vec<Option<ArrayD<f32>>>> {
        self.check_learnables()?;
        let tape = self.tape.as_ref().ok_or_else(|| no_forward(&self.name))?;
        let steps = &tape.steps;
        let (h, c, nd) = (self.hidden, self.input_size, self.directions);
        let (t, b, s, g4) = (steps.t, steps.b, nd * h, 4 * h);
        let dy = output_grad(&self.name, &mut grads, self.output_mode, steps, s)?;
        let w_ih = self
            .input_weights
            .value
            .view()
            .into_dimensionality::<Ix2>()
            .expect("checked 2-D");
        let w_hh = self
            .recurrent_weights
            .value
            .view()
            .into_dimensionality::<Ix2>()
            .expect("checked 2-D");
        let mut dw_ih = Array2::<f32>::zeros((nd * g4, c));
        let mut dw_hh = Array2::<f32>::zeros((nd * g4, h));
        let mut db = vec![0.0f32; nd * g4];
        let mut dx = Array2::<f32>::zeros((t * b, c));
        for (d, dir) in tape.dirs.iter().enumerate() {
            let reverse = d == 1;
            let rows = d * g4..(d + 1) * g4;
            let w = w_hh.slice(s![rows.clone(), ..]);
            let dg = with_acts!(
                self.gate,
                self.state,
                lstm_pass_back(steps, reverse, w, dir, &dy, s, d * h)
            );
            weight_grad(
                &dg,
                tape.x.view(),
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
            matmul_into(
                view(&dg, t * b, g4),
                w_ih.slice(s![rows, ..]),
                dx.view_mut(),
                d > 0,
            );
        }
        self.input_weights.grad = dw_ih.into_dyn();
        self.recurrent_weights.grad = dw_hh.into_dyn();
        self.bias.grad = Array1::from(db).into_dyn();
        Ok(vec![Some(
            dx.into_shape_with_order(vec![t, b, c])
                .expect("t·b·c values"),
        )])
    }

    fn learnables(&self) -> Vec<&Learnable> {
        vec![&self.input_weights, &self.recurrent_weights, &self.bias]
    }
    fn learnables_mut(&mut self) -> Vec<&mut Learnable> {
        vec![
            &mut self.input_weights,
            &mut self.recurrent_weights,
            &mut self.bias,
        ]
    }
    fn reset_state(&mut self) {
        self.kept = None;
    }
}

/// One direction's forward through time. On entry `dir.gates` holds `W·x + b` for
/// every step and the initial state is in its slot; on exit the gates are
/// activated and every state slot is filled.
fn lstm_pass<G: Act, S: Act>(
    steps: &Steps,
    reverse: bool,
    w_hh: ArrayView2<f32>,
    dir: &mut LstmDir,
) {
    let (t_len, b, h) = (steps.t, steps.b, w_hh.ncols());
    let (g4, bh) = (4 * h, b * h);
    for k in 0..t_len {
        let t = steps.step(k, reverse);
        let (prev, out) = steps.slots(t, reverse);
        let gates = &mut dir.gates[t * b * g4..(t + 1) * b * g4];
        matmul_into(
            view(&dir.h[prev * bh..], b, h),
            w_hh.t(),
            view_mut(gates, b, g4),
            true,
        );
        let (hp, ho) = two_slots(&mut dir.h, prev, out, bh);
        let (cp, co) = two_slots(&mut dir.c, prev, out, bh);
        let tc = &mut dir.tc[t * bh..(t + 1) * bh];
        for bi in 0..b {
            let r = bi * h..(bi + 1) * h;
            if !steps.real(bi, t) {
                ho[r.clone()].copy_from_slice(&hp[r.clone()]);
                co[r.clone()].copy_from_slice(&cp[r]);
                continue;
            }
            let g = &mut gates[bi * g4..(bi + 1) * g4];
            let (gi, rest) = g.split_at_mut(h);
            let (gf, rest) = rest.split_at_mut(h);
            let (gg, go) = rest.split_at_mut(h);
            let (cp, co, ho, tc) = (
                &cp[r.clone()],
                &mut co[r.clone()],
                &mut ho[r.clone()],
                &mut tc[r],
            );
            for j in 0..h {
                let i = G::f(gi[j]);
                let f = G::f(gf[j]);
                let gv = S::f(gg[j]);
                let o = G::f(go[j]);
                let cv = f * cp[j] + i * gv;
                let sc = S::f(cv);
                gi[j] = i;
                gf[j] = f;
                gg[j] = gv;
                go[j] = o;
                co[j] = cv;
                tc[j] = sc;
                ho[j] = o * sc;
            }
        }
    }
}

/// One direction's backward through time. `dy` is the loss gradient for the
/// layer's output `[T·B, S]`, of which this direction owns columns
/// `offset..offset + H`. Returns the gradient for the gate pre-activations,
/// `[T·B, 4H]` (zero at padded steps).
fn lstm_pass_back<G: Act, S: Act>(
    steps: &Steps,
    reverse: bool,
    w_hh: ArrayView2<f32>,
    dir: &LstmDir,
    dy: &[f32],
    s: usize,
    offset: usize,
) -> Vec<f32> {
    let (t_len, b, h) = (steps.t, steps.b, w_hh.ncols());
    let (g4, bh) = (4 * h, b * h);
    let mut dg = vec![0.0f32; t_len * b * g4];
    // Gradient for the hidden and cell state after the step being processed.
    let mut dh_next = vec![0.0f32; bh];
    let mut dh_carry = vec![0.0f32; bh];
    let mut dc = vec![0.0f32; bh];
    for k in (0..t_len).rev() {
        let t = steps.step(k, reverse);
        let (prev, _) = steps.slots(t, reverse);
        let dg_t = &mut dg[t * b * g4..(t + 1) * b * g4];
        for bi in 0..b {
            let r = bi * h..(bi + 1) * h;
            if !steps.real(bi, t) {
                // The state passes through unchanged: so does its gradient.
                dh_carry[r.clone()].copy_from_slice(&dh_next[r]);
                continue;
            }
            dh_carry[r.clone()].fill(0.0);
            let row = t * b + bi;
            let g = &dir.gates[row * g4..(row + 1) * g4];
            let (gi, gf, gg, go) = (&g[..h], &g[h..2 * h], &g[2 * h..3 * h], &g[3 * h..]);
            let cp = &dir.c[(prev * b + bi) * h..][..h];
            let tc = &dir.tc[row * h..(row + 1) * h];
            let dyr = &dy[row * s + offset..][..h];
            let dhn = &dh_next[r.clone()];
            let dcr = &mut dc[r];
            let out = &mut dg_t[bi * g4..(bi + 1) * g4];
            let (di, rest) = out.split_at_mut(h);
            let (df, rest) = rest.split_at_mut(h);
            let (dgg, d_o) = rest.split_at_mut(h);
            for j in 0..h {
                let dh = dhn[j] + dyr[j];
                let dcv = dcr[j] + dh * go[j] * S::df(tc[j]);
                d_o[j] = dh * tc[j] * G::df(go[j]);
                di[j] = dcv * gg[j] * G::df(gi[j]);
                df[j] = dcv * cp[j] * G::df(gf[j]);
                dgg[j] = dcv * gi[j] * S::df(gg[j]);
                dcr[j] = dcv * gf[j];
            }
        }
        // dh_prev = carried part + dGates_t · R.
        std::mem::swap(&mut dh_next, &mut dh_carry);
        matmul_into(view(dg_t, b, g4), w_hh, view_mut(&mut dh_next, b, h), true);
    }
    dg
}
