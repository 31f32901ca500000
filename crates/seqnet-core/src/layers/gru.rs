//! [`Gru`]: the gated recurrent unit, with PyTorch's semantics (reset gate after
//! the recurrent multiplication, separate recurrent bias).

use super::lstm::infer_recurrent;
use super::name_field;
use super::recurrent::{
    check_state_len, column_sums, fill_rows, initial_state, input_steps, matrix, output_grad,
    put_slot, recurrent_setters, take_slot, view, view_mut, weight_grad, with_acts, write_outputs,
    Act, GateActivation, OutputMode, RecurrentOptions, RecurrentState, StateActivation, Steps,
};
use super::util::no_forward;
use crate::activation::Activation;
use crate::error::{Error, Result};
use crate::format::{ActShape, Format};
use crate::init::{BiasInitializer, WeightsInitializer};
use crate::layer::{ForwardCtx, LayerDef, LayerKernel, Params, ShapeError};
use crate::learnable::{Learnable, LearnableSpec};
use crate::linalg::{
    gemm_packed, has_avx512, matmul_into, row_threads, share, PackedPanels, SharedMut,
};
use crate::torch::TorchLayout;
use ndarray::{Array1, Array2, ArrayD, ArrayView2};
use rand::rngs::StdRng;
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
        let w_hh = matrix(&self.recurrent_weights.value);
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
        with_acts!(self.gate, self.state, gru_pass(&mut tape, false, w_hh, rb));

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
        let w_hh = matrix(&self.recurrent_weights.value);
        let (dgi, dgh) = with_acts!(self.gate, self.state, gru_pass_back(tape, false, w_hh, &dy));
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

/// The forward through time. On entry `tape.gates` holds `W·x + b` for every
/// step and the initial state is in its slot; on exit the gates are activated and
/// every state slot is filled. `rb` is the recurrent bias (`3H` values).
fn gru_pass<G: Act, S: Act>(tape: &mut GruTape, reverse: bool, w_hh: ArrayView2<f32>, rb: &[f32]) {
    let steps = &tape.steps;
    let (t_len, b, h) = (steps.t, steps.b, w_hh.ncols());
    let (g3, bh) = (3 * h, b * h);
    // `Rᵀ` packed once for the pass ([`PackedPanels`]: no step pays for
    // packing, as the `gemm` crate's would).
    let mut pack = PackedPanels::default();
    pack.pack(h, g3, |kk, j| w_hh[[j, kk]]);
    let ld = pack.padded_cols();
    let avx512 = has_avx512();
    // The observations are independent: two threads take every other one
    // and never meet before the pass ends (as the LSTM's fused pass).
    let parts = row_threads(b, b * h * g3);
    let (gp, hp, np) = (
        SharedMut(tape.gates.as_mut_ptr()),
        SharedMut(tape.h.as_mut_ptr()),
        SharedMut(tape.hn.as_mut_ptr()),
    );
    let ptrs = (gp, hp, np);
    share(parts, |part| {
        let (gp, hp, np) = ptrs;
        let rows: Vec<usize> = (part..b).step_by(parts).collect();
        let m = rows.len();
        // This part's `h_{t-1}` rows (`[m, H]`) and `R·h` (`[m, ld]`).
        let mut a = vec![0.0f32; m * h];
        let mut hw = vec![0.0f32; m * ld];
        for k in 0..t_len {
            let t = steps.step(k, reverse);
            let (prev, out) = steps.slots(t, reverse);
            // SAFETY (every raw slice below): rows `rows` of the tape's buffers
            // are written by this thread only, and the slots differ.
            let row_of = |slot: usize, bi: usize| unsafe {
                std::slice::from_raw_parts_mut(hp.0.add(slot * bh + bi * h), h)
            };
            for (i, &bi) in rows.iter().enumerate() {
                a[i * h..(i + 1) * h].copy_from_slice(row_of(prev, bi));
            }
            gemm_packed(&a, h, m, &pack, &mut hw, ld);
            for (i, &bi) in rows.iter().enumerate() {
                let (h_prev, h_out) = (row_of(prev, bi), row_of(out, bi));
                if !steps.real(bi, t) {
                    h_out.copy_from_slice(h_prev);
                    continue;
                }
                let row = t * b + bi;
                let g = unsafe { std::slice::from_raw_parts_mut(gp.0.add(row * g3), g3) };
                let (gr, rest) = g.split_at_mut(h);
                let (gz, gn) = rest.split_at_mut(h);
                let hwr = &hw[i * ld..i * ld + g3];
                let cell = GruCell {
                    gates: [gr, gz, gn],
                    rec: [&hwr[..h], &hwr[h..2 * h], &hwr[2 * h..]],
                    rb: [&rb[..h], &rb[h..2 * h], &rb[2 * h..]],
                    hn: unsafe { std::slice::from_raw_parts_mut(np.0.add(row * h), h) },
                    h_prev,
                    h: h_out,
                };
                gru_cell::<G, S>(cell, avx512);
            }
        }
    });
}

/// The slices one GRU cell update reads and writes for one observation at
/// one step (`H` values each).
struct GruCell<'a> {
    /// `W·x + b` for `r, z, n` (in), the activated gates (out).
    gates: [&'a mut [f32]; 3],
    /// `R·h` for `r, z, n`.
    rec: [&'a [f32]; 3],
    /// The recurrent bias for `r, z, n`.
    rb: [&'a [f32]; 3],
    /// `R_n·h + rb_n` (out), kept for the backward pass.
    hn: &'a mut [f32],
    h_prev: &'a [f32],
    h: &'a mut [f32],
}

#[inline(always)]
fn gru_cell_body<G: Act, S: Act>(x: GruCell) {
    let [gr, gz, gn] = x.gates;
    let h = gr.len();
    let (gz, gn) = (&mut gz[..h], &mut gn[..h]);
    let [hr, hz, hn] = x.rec;
    let (hr, hz, hn) = (&hr[..h], &hz[..h], &hn[..h]);
    let [rbr, rbz, rbn] = x.rb;
    let (rbr, rbz, rbn) = (&rbr[..h], &rbz[..h], &rbn[..h]);
    let (hn_keep, hp, ho) = (&mut x.hn[..h], &x.h_prev[..h], &mut x.h[..h]);
    for j in 0..h {
        let hn_j = hn[j] + rbn[j];
        let rv = G::f(gr[j] + (hr[j] + rbr[j]));
        let zv = G::f(gz[j] + (hz[j] + rbz[j]));
        let nv = S::f(gn[j] + rv * hn_j);
        gr[j] = rv;
        gz[j] = zv;
        gn[j] = nv;
        hn_keep[j] = hn_j;
        ho[j] = (1.0 - zv) * nv + zv * hp[j];
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn gru_cell_avx512<G: Act, S: Act>(x: GruCell) {
    gru_cell_body::<G, S>(x)
}

/// [`gru_cell_body`], vectorized where the CPU allows (the activations'
/// `floor` is then an instruction, not a library call).
fn gru_cell<G: Act, S: Act>(x: GruCell, avx512: bool) {
    #[cfg(target_arch = "x86_64")]
    if avx512 {
        // SAFETY: the caller checked that the CPU has AVX-512F.
        unsafe { gru_cell_avx512::<G, S>(x) };
        return;
    }
    let _ = avx512;
    gru_cell_body::<G, S>(x)
}

/// The backward through time for the output gradient `dy` (`[T·B, H]`). Returns
/// the gradients for `W·x + b` and for `R·h + rb`, both `[T·B, 3H]` (zero at
/// padded steps).
fn gru_pass_back<G: Act, S: Act>(
    tape: &GruTape,
    reverse: bool,
    w_hh: ArrayView2<f32>,
    dy: &[f32],
) -> (Vec<f32>, Vec<f32>) {
    let steps = &tape.steps;
    let (t_len, b, h) = (steps.t, steps.b, w_hh.ncols());
    let (g3, bh) = (3 * h, b * h);
    let mut dgi = vec![0.0f32; t_len * b * g3];
    let mut dgh = vec![0.0f32; t_len * b * g3];
    let mut dh_next = vec![0.0f32; bh];
    let mut dh_carry = vec![0.0f32; bh];
    // `R` packed once for the pass; `dG_h·R` of the current step in `prod`.
    let mut pack = PackedPanels::default();
    pack.pack(g3, h, |kk, j| w_hh[[kk, j]]);
    let ld = pack.padded_cols();
    let mut prod = vec![0.0f32; b * ld];
    for k in (0..t_len).rev() {
        let t = steps.step(k, reverse);
        let (prev, _) = steps.slots(t, reverse);
        for bi in 0..b {
            let r = bi * h..(bi + 1) * h;
            if !steps.real(bi, t) {
                dh_carry[r.clone()].copy_from_slice(&dh_next[r]);
                continue;
            }
            let row = t * b + bi;
            let g = &tape.gates[row * g3..(row + 1) * g3];
            let (gr, gz, gn) = (&g[..h], &g[h..2 * h], &g[2 * h..]);
            let hn = &tape.hn[row * h..(row + 1) * h];
            let hp = &tape.h[(prev * b + bi) * h..][..h];
            let dyr = &dy[row * h..(row + 1) * h];
            let dhn = &dh_next[r.clone()];
            let dhc = &mut dh_carry[r];
            let (di_r, rest) = dgi[row * g3..(row + 1) * g3].split_at_mut(h);
            let (di_z, di_n) = rest.split_at_mut(h);
            let (dh_r, rest) = dgh[row * g3..(row + 1) * g3].split_at_mut(h);
            let (dh_z, dh_n) = rest.split_at_mut(h);
            for j in 0..h {
                let dh = dhn[j] + dyr[j];
                let dn = dh * (1.0 - gz[j]) * S::df(gn[j]);
                let dz = dh * (hp[j] - gn[j]) * G::df(gz[j]);
                let dr = dn * hn[j] * G::df(gr[j]);
                di_r[j] = dr;
                di_z[j] = dz;
                di_n[j] = dn;
                dh_r[j] = dr;
                dh_z[j] = dz;
                dh_n[j] = dn * gr[j];
                dhc[j] = dh * gz[j];
            }
        }
        std::mem::swap(&mut dh_next, &mut dh_carry);
        gemm_packed(&dgh[t * b * g3..], g3, b, &pack, &mut prod, ld);
        for (d, p) in dh_next.chunks_exact_mut(h).zip(prod.chunks_exact(ld)) {
            d.iter_mut().zip(p).for_each(|(d, p)| *d += p);
        }
    }
    (dgi, dgh)
}
