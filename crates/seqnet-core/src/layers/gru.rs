//! [`Gru`]: the gated recurrent unit, with PyTorch's semantics (reset gate after
//! the recurrent multiplication, separate recurrent bias).

use super::lstm::infer_recurrent;
use super::name_field;
use super::recurrent::{
    acts, check_state_len, column_sums, fill_rows, initial_state, input_steps, matrix, output_grad,
    put_slot, recurrent_setters, take_slot, view, view_mut, weight_grad, write_outputs,
    GateActivation, OutputMode, RecurrentOptions, RecurrentState, StateActivation, Steps,
};
use super::util::no_forward;
use crate::activation::Activation;
use crate::error::{Error, Result};
use crate::format::{ActShape, Format};
use crate::init::{BiasInitializer, WeightsInitializer};
use crate::layer::{ForwardCtx, LayerDef, LayerKernel, Params, ShapeError};
use crate::learnable::{Learnable, LearnableSpec};
use crate::torch::TorchLayout;
use ndarray::{Array1, Array2, ArrayD};
use rand::rngs::StdRng;
use seqnet_kernels::gemm::matmul_into;
use seqnet_kernels::recurrent::{gru_backward, gru_forward, GruBuffers, GruTrace};
use serde::{Deserialize, Serialize};

/// MATLAB's `gruLayer` with `ResetGateMode` `"recurrent-bias-after-multiplication"`,
/// which is PyTorch's `nn.GRU`.
///
/// With `H` hidden units and `C` input channels, each step computes
/// (gate order reset `r`, update `z`, candidate `n`):
///
/// ```text
/// r  = gate(W_r·x + b_r + R_r·h + rb_r)
/// z  = gate(W_z·x + b_z + R_z·h + rb_z)
/// n  = state(W_n·x + b_n + r ⊙ (R_n·h + rb_n))
/// h' = (1 − z) ⊙ n + z ⊙ h
/// ```
///
/// * Input: a feature sequence `C×B×T` (`[T, B, C]`) only.
/// * Output: `H×B×T` (`[T, B, H]`, zero at padded steps) with
///   [`OutputMode::Sequence`], or `H×B` (`[B, H]`, each sequence's last real step)
///   with [`OutputMode::Last`].
/// * Learnables: `InputWeights` `[3H, C]` (`W`), `RecurrentWeights` `[3H, H]` (`R`),
///   `Bias` `[3H]` (`b`, PyTorch's `bias_ih`), `RecurrentBias` `[3H]` (`rb`,
///   PyTorch's `bias_hh`). Both biases use the `Bias*` factors and initializer.
///   (MATLAB's default `"after-multiplication"` mode is this layer with
///   `RecurrentBias` fixed at zero.)
///
/// Masking and state behave as for [`super::Lstm`]: padded steps leave the state
/// unchanged and get no gradient; a forward starts from the `hidden_state` field
/// (zeros when `None`), a stateful forward from the kept state of the previous
/// stateful forward for the same batch size, and keeps its final state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Gru {
    /// The layer's name (MATLAB's `Name`), unique in its graph.
    #[serde(default)]
    pub name: String,
    /// `H`, the number of hidden units.
    pub num_hidden_units: usize,
    /// The options all recurrent layers share; the bias factors apply to
    /// `Bias` and `RecurrentBias`.
    #[serde(flatten)]
    pub options: RecurrentOptions,
    /// `zeros`, `ones` or `narrow-normal` (not `unit-forget-gate`), for `Bias`
    /// and `RecurrentBias`.
    #[serde(default = "zeros")]
    pub bias_initializer: BiasInitializer,
}

fn zeros() -> BiasInitializer {
    BiasInitializer::Zeros
}

super::named!(Gru);

impl Gru {
    /// A layer with `num_hidden_units` hidden units and MATLAB's defaults.
    pub fn new(num_hidden_units: usize) -> Self {
        Gru {
            name: String::new(),
            num_hidden_units,
            options: RecurrentOptions::default(),
            bias_initializer: zeros(),
        }
    }
    recurrent_setters!();
    /// Sets MATLAB's `BiasInitializer` for `Bias` and `RecurrentBias` (default `zeros`).
    pub fn bias_initializer(mut self, i: BiasInitializer) -> Self {
        self.bias_initializer = i;
        self
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
            check_state_len("HiddenState", v.len(), self.num_hidden_units)
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
        Ok(GruKernel {
            name: self.name.clone(),
            hidden: self.num_hidden_units,
            input_size: inputs[0].channels,
            output_mode: o.output_mode,
            gate: o.gate_activation,
            state: o.state_activation,
            hidden_state: o.hidden_state.clone(),
            input_weights: params.learnable("InputWeights")?,
            recurrent_weights: params.learnable("RecurrentWeights")?,
            bias: params.learnable("Bias")?,
            recurrent_bias: params.learnable("RecurrentBias")?,
            tape: None,
            kept: None,
            final_state: None,
        })
    }
}

impl LayerDef for Gru {
    name_field!();
    fn type_name(&self) -> &'static str {
        "GRU"
    }
    fn infer(&self, inputs: &[ActShape]) -> Result<Vec<ActShape>, ShapeError> {
        self.validate()
            .map_err(|(setting, m)| ShapeError::new(0, format!("{setting} {m}")))?;
        infer_recurrent(inputs, self.num_hidden_units, self.options.output_mode)
    }
    fn learnables(&self, inputs: &[ActShape]) -> Vec<LearnableSpec> {
        let c = inputs.first().map(|s| s.channels).unwrap_or(0);
        let (h, g) = (self.num_hidden_units, 3 * self.num_hidden_units);
        let [w, r] = self.options.weight_specs(g, c, h);
        let o = &self.options;
        let b = o.bias_spec("Bias", g, self.bias_initializer, 1, 3);
        let rb = o.bias_spec("RecurrentBias", g, self.bias_initializer, 1, 3);
        vec![w, r, b, rb]
    }
    fn build(&self, inputs: &[ActShape], params: Params) -> Result<Box<dyn LayerKernel>> {
        Ok(Box::new(self.kernel_from(inputs, params)?))
    }
    fn torch_layout(&self) -> Option<TorchLayout> {
        Some(TorchLayout::recurrent("nn.GRU", 1, true))
    }
}

/// What the forward keeps for the backward.
#[derive(Debug, Clone)]
struct GruTape {
    steps: Steps,
    /// The input as `[T·B, C]` rows.
    x: Array2<f32>,
    /// Activated `r, z, n` of every step, `[T·B, 3H]` (unused at padded steps).
    gates: Vec<f32>,
    /// `R_n·h + rb_n` of every step, `[T·B, H]`.
    hn: Vec<f32>,
    /// Hidden states, `T + 2` slots of `[B, H]` (see [`super::recurrent`]).
    h: Vec<f32>,
}

/// The kernel of [`Gru`]: learnables `InputWeights` `[3H, C]`, `RecurrentWeights`
/// `[3H, H]`, `Bias` `[3H]`, `RecurrentBias` `[3H]`; input `[T, B, C]`; output
/// `[T, B, H]` or `[B, H]`.
#[derive(Debug, Clone)]
pub struct GruKernel {
    name: String,
    hidden: usize,
    input_size: usize,
    output_mode: OutputMode,
    gate: GateActivation,
    state: StateActivation,
    hidden_state: Option<Vec<f32>>,
    input_weights: Learnable,
    recurrent_weights: Learnable,
    bias: Learnable,
    recurrent_bias: Learnable,
    tape: Option<GruTape>,
    kept: Option<RecurrentState>,
    final_state: Option<RecurrentState>,
}

impl GruKernel {
    /// The final state of the last forward: each sequence's hidden state after its
    /// last real step, `[B, H]` (PyTorch's `h_n`); `cell` is `None`.
    pub fn final_state(&self) -> Option<&RecurrentState> {
        self.final_state.as_ref()
    }

    /// The state kept by the last stateful forward (`[B, H]`), if any.
    pub fn kept_state(&self) -> Option<&RecurrentState> {
        self.kept.as_ref()
    }

    fn check_learnables(&self) -> Result<()> {
        let g = 3 * self.hidden;
        for (p, want) in [
            (&self.input_weights, vec![g, self.input_size]),
            (&self.recurrent_weights, vec![g, self.hidden]),
            (&self.bias, vec![g]),
            (&self.recurrent_bias, vec![g]),
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

impl LayerKernel for GruKernel {
    fn forward(&mut self, inputs: &[&Activation], ctx: &mut ForwardCtx) -> Result<Vec<Activation>> {
        let x = inputs
            .first()
            .ok_or_else(|| Error::layer(&self.name, "no input"))?;
        let (h, c) = (self.hidden, self.input_size);
        let steps = input_steps(&self.name, x, c)?;
        self.check_learnables()?;
        let (t, b) = (steps.t, steps.b);
        let g3 = 3 * h;
        let xr = x
            .data
            .as_standard_layout()
            .into_owned()
            .into_shape_with_order((t * b, c))
            .map_err(|e| Error::layer(&self.name, e.to_string()))?;
        let h0 = match &self.kept {
            Some(k) if ctx.stateful && k.batch() == b => k.hidden.clone(),
            _ => initial_state(
                &self.name,
                "HiddenState",
                self.hidden_state.as_deref(),
                b,
                h,
            )?,
        };

        let w_ih = matrix(&self.input_weights.value);
        let w_hh = self.recurrent_weights.value.as_standard_layout();
        let bias = self.bias.value.as_standard_layout();
        let rbias = self.recurrent_bias.value.as_standard_layout();
        let mut tape = GruTape {
            steps,
            x: xr,
            gates: vec![0.0; t * b * g3],
            hn: vec![0.0; t * b * h],
            h: vec![0.0; (t + 2) * b * h],
        };
        fill_rows(&mut tape.gates, bias.as_slice().expect("standard layout"));
        matmul_into(
            tape.x.view(),
            w_ih.t(),
            view_mut(&mut tape.gates, t * b, g3),
            true,
        );
        put_slot(&mut tape.h, tape.steps.initial_slot(false), &h0, 0, h);
        let rb = rbias.as_slice().expect("standard layout");
        let bufs = GruBuffers {
            gates: &mut tape.gates,
            hn: &mut tape.hn,
            h: &mut tape.h,
        };
        gru_forward(
            acts(self.gate, self.state),
            &tape.steps,
            false,
            w_hh.as_slice().expect("standard layout"),
            h,
            rb,
            bufs,
        );

        let mut y = vec![0.0; t * b * h];
        write_outputs(&tape.steps, &tape.h, h, &mut y, h, 0);
        let mut fin = RecurrentState {
            hidden: Array2::zeros((b, h)),
            cell: None,
        };
        take_slot(&tape.h, tape.steps.final_slot(false), &mut fin.hidden, 0, h);
        if ctx.stateful {
            self.kept = Some(fin.clone());
        }
        self.final_state = Some(fin);
        let out = match self.output_mode {
            OutputMode::Sequence => {
                let data = ArrayD::from_shape_vec(vec![t, b, h], y).expect("t·b·h values");
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
                        super::recurrent::gather_last(&tape.steps, &y, h).into_dyn(),
                    )?;
                    last.lengths = x
                        .lengths
                        .as_ref()
                        .map(|l| std::sync::Arc::new(l.one_step()));
                    last
                }
            }
        };
        self.tape = Some(tape);
        Ok(vec![out])
    }

    fn backward(
        &mut self,
        mut grads: Vec<Option<ArrayD<f32>>>,
    ) -> Result<Vec<Option<ArrayD<f32>>>> {
        self.check_learnables()?;
        let tape = self.tape.as_ref().ok_or_else(|| no_forward(&self.name))?;
        let steps = &tape.steps;
        let (h, c) = (self.hidden, self.input_size);
        let (t, b, g3) = (steps.t, steps.b, 3 * h);
        let dy = output_grad(&self.name, &mut grads, self.output_mode, steps, h)?;
        let w_ih = matrix(&self.input_weights.value);
        let w_hh = self.recurrent_weights.value.as_standard_layout();
        let trace = GruTrace {
            gates: &tape.gates,
            hn: &tape.hn,
            h: &tape.h,
        };
        let (dgi, dgh) = gru_backward(
            acts(self.gate, self.state),
            steps,
            false,
            w_hh.as_slice().expect("standard layout"),
            h,
            trace,
            &dy,
        );
        let mut dw_ih = Array2::<f32>::zeros((g3, c));
        let mut dw_hh = Array2::<f32>::zeros((g3, h));
        weight_grad(&dgi, tape.x.view(), g3, dw_ih.view_mut());
        let p0 = steps.prev_start(false);
        weight_grad(
            &dgh,
            view(&tape.h[p0 * b * h..], t * b, h),
            g3,
            dw_hh.view_mut(),
        );
        let mut db = vec![0.0f32; g3];
        let mut drb = vec![0.0f32; g3];
        column_sums(&dgi, &mut db);
        column_sums(&dgh, &mut drb);
        let mut dx = Array2::<f32>::zeros((t * b, c));
        matmul_into(view(&dgi, t * b, g3), w_ih, dx.view_mut(), false);
        self.input_weights.grad = dw_ih.into_dyn();
        self.recurrent_weights.grad = dw_hh.into_dyn();
        self.bias.grad = Array1::from(db).into_dyn();
        self.recurrent_bias.grad = Array1::from(drb).into_dyn();
        Ok(vec![Some(
            dx.into_shape_with_order(vec![t, b, c])
                .expect("t·b·c values"),
        )])
    }

    fn learnables(&self) -> Vec<&Learnable> {
        vec![
            &self.input_weights,
            &self.recurrent_weights,
            &self.bias,
            &self.recurrent_bias,
        ]
    }
    fn learnables_mut(&mut self) -> Vec<&mut Learnable> {
        vec![
            &mut self.input_weights,
            &mut self.recurrent_weights,
            &mut self.bias,
            &mut self.recurrent_bias,
        ]
    }
    fn reset_state(&mut self) {
        self.kept = None;
    }
}
