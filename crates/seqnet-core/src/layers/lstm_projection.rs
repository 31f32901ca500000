//! The projected LSTM's forward and backward (PyTorch's `proj_size`, see
//! [`super::LstmConfig::projection_size`]): a separate, simpler path through
//! [`seqnet_kernels::recurrent::lstm_proj`], leaving the fused unprojected
//! one untouched.

use super::super::recurrent::{
    acts, column_sums, fill_rows, initial_state, input_steps, matrix, output_grad, put_slot,
    take_slot, view, view_mut, weight_grad, write_outputs, OutputMode, RecurrentOptions,
    RecurrentState, Steps,
};
use super::LstmKernel;
use crate::activation::Activation;
use crate::error::{Error, Result};
use crate::format::Format;
use crate::init::WeightsInitializer;
use crate::layer::ForwardCtx;
use crate::learnable::{Initializer, LearnableSpec};
use crate::torch::TorchParam;
use ndarray::{Array2, ArrayD, Axis};
use seqnet_kernels::gemm::matmul_into;
use seqnet_kernels::recurrent::{
    lstm_proj_backward, lstm_proj_forward, ProjBuffers, ProjTrace, ProjWeights,
};

/// The declaration of `ProjectorWeights` `[rows, h]` (`rows = D·P`): Glorot
/// (fans `H` and `P`), with the `RecurrentWeights` factors (the projector
/// sits in the recurrence).
pub(super) fn projector_spec(o: &RecurrentOptions, rows: usize, h: usize) -> LearnableSpec {
    LearnableSpec::weights(
        "ProjectorWeights",
        vec![rows, h],
        Initializer::Weights {
            init: WeightsInitializer::Glorot,
            fan_in: h,
            fan_out: rows,
        },
    )
    .factors(
        o.recurrent_weights_l2_factor,
        o.recurrent_weights_learn_rate_factor,
    )
}

/// `ProjectorWeights` from `weight_hr_l{k}` (and `weight_hr_l{k}_reverse`
/// stacked below for a second direction).
pub(super) fn projector_torch(directions: usize) -> TorchParam {
    TorchParam::stacked(
        "ProjectorWeights",
        (0..directions)
            .map(|d| format!("weight_hr_l{{k}}{}", if d == 1 { "_reverse" } else { "" })),
    )
}

/// What one direction's projected forward keeps.
#[derive(Debug, Clone)]
pub(super) struct ProjDir {
    /// Activated `i, f, g, o`, `[T·B, 4H]`.
    gates: Vec<f32>,
    /// Hidden states, `T + 2` slots of `[B, P]`.
    h: Vec<f32>,
    /// Cell states, `T + 2` slots of `[B, H]`.
    c: Vec<f32>,
    /// `state(c)`, `[T·B, H]`.
    tc: Vec<f32>,
    /// `o ⊙ state(c)`, `[T·B, H]` (the projector's right-hand side).
    m: Vec<f32>,
}

/// What a projected forward keeps for its backward.
#[derive(Debug, Clone)]
pub(super) struct ProjTape {
    steps: Steps,
    /// The input as `[T·B, C]` rows.
    x: Array2<f32>,
    dirs: Vec<ProjDir>,
}

impl LstmKernel {
    /// Direction `d`'s weights for the projected passes, from the standard
    /// layout slices of `RecurrentWeights` and `ProjectorWeights`.
    fn proj_weights<'a>(&self, d: usize, w_hh: &'a [f32], q: &'a [f32]) -> ProjWeights<'a> {
        let (h, p) = (self.hidden, self.projected);
        ProjWeights {
            recurrent: &w_hh[d * 4 * h * p..(d + 1) * 4 * h * p],
            projector: &q[d * p * h..(d + 1) * p * h],
            hidden: h,
            projected: p,
        }
    }

    /// The forward of a projected LSTM: output `[T, B, D·P]` or `[B, D·P]`.
    pub(super) fn forward_projected(
        &mut self,
        x: &Activation,
        ctx: &mut ForwardCtx,
    ) -> Result<Vec<Activation>> {
        let (h, c, nd, p) = (
            self.hidden,
            self.input_size,
            self.directions,
            self.projected,
        );
        let steps = input_steps(&self.name, x, c)?;
        self.check_learnables()?;
        let (t, b, s, g4) = (steps.t, steps.b, nd * p, 4 * h);
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
                    nd * h,
                )?),
            },
        };
        let c0 = start.cell.as_ref().expect("an LSTM state has a cell state");
        let w_ih = matrix(&self.input_weights.value);
        let bias = self.bias.value.as_standard_layout();
        let bias = bias.as_slice().expect("standard layout");
        let w_hh = self.recurrent_weights.value.as_standard_layout();
        let w_hh = w_hh.as_slice().expect("standard layout");
        let q = self
            .projector
            .as_ref()
            .expect("a projected LSTM")
            .value
            .as_standard_layout();
        let q = q.as_slice().expect("standard layout");
        let mut y = vec![0.0f32; t * b * s];
        let mut fin = RecurrentState {
            hidden: Array2::zeros((b, s)),
            cell: Some(Array2::zeros((b, nd * h))),
        };
        let mut dirs = Vec::with_capacity(nd);
        for d in 0..nd {
            let reverse = d == 1;
            let rows = d * g4..(d + 1) * g4;
            let mut dir = ProjDir {
                gates: vec![0.0; t * b * g4],
                h: vec![0.0; (t + 2) * b * p],
                c: vec![0.0; (t + 2) * b * h],
                tc: vec![0.0; t * b * h],
                m: vec![0.0; t * b * h],
            };
            put_slot(
                &mut dir.h,
                steps.initial_slot(reverse),
                &start.hidden,
                d * p,
                p,
            );
            put_slot(&mut dir.c, steps.initial_slot(reverse), c0, d * h, h);
            fill_rows(&mut dir.gates, &bias[rows.clone()]);
            matmul_into(
                xr.view(),
                w_ih.slice_axis(Axis(0), rows.clone().into()).t(),
                view_mut(&mut dir.gates, t * b, g4),
                true,
            );
            let bufs = ProjBuffers {
                gates: &mut dir.gates,
                h: &mut dir.h,
                c: &mut dir.c,
                tc: &mut dir.tc,
                m: &mut dir.m,
            };
            lstm_proj_forward(
                acts(self.gate, self.state),
                &steps,
                reverse,
                self.proj_weights(d, w_hh, q),
                bufs,
            );
            write_outputs(&steps, &dir.h, p, &mut y, s, d * p);
            let slot = steps.final_slot(reverse);
            take_slot(&dir.h, slot, &mut fin.hidden, d * p, p);
            take_slot(&dir.c, slot, fin.cell.as_mut().expect("cell"), d * h, h);
            dirs.push(dir);
        }
        if ctx.stateful {
            self.kept = Some(fin.clone());
        }
        self.final_state = Some(fin);
        let out = match self.output_mode {
            OutputMode::Sequence => Activation {
                data: ArrayD::from_shape_vec(vec![t, b, s], y)
                    .expect("t·b·s values")
                    .into_shared(),
                format: Format::CBT,
                lengths: x.lengths.clone(),
            },
            OutputMode::Last => {
                // One step per observation kept in the mask (see the unprojected path).
                let last = super::super::recurrent::gather_last(&steps, &y, s);
                let mut a = Activation::features(last.into_dyn())?;
                a.lengths = x
                    .lengths
                    .as_ref()
                    .map(|l| std::sync::Arc::new(l.one_step()));
                a
            }
        };
        self.tape = None;
        self.proj_tape = Some(ProjTape { steps, x: xr, dirs });
        Ok(vec![out])
    }

    /// The backward of [`LstmKernel::forward_projected`].
    pub(super) fn backward_projected(
        &mut self,
        mut grads: Vec<Option<ArrayD<f32>>>,
    ) -> Result<Vec<Option<ArrayD<f32>>>> {
        self.check_learnables()?;
        let tape = self
            .proj_tape
            .as_ref()
            .ok_or_else(|| super::super::util::no_forward(&self.name))?;
        let steps = &tape.steps;
        let (h, c, nd, p) = (
            self.hidden,
            self.input_size,
            self.directions,
            self.projected,
        );
        let (t, b, s, g4) = (steps.t, steps.b, nd * p, 4 * h);
        let dy_all = output_grad(&self.name, &mut grads, self.output_mode, steps, s)?;
        let w_ih = matrix(&self.input_weights.value);
        let w_hh = self.recurrent_weights.value.as_standard_layout();
        let w_hh = w_hh.as_slice().expect("standard layout");
        let q = self
            .projector
            .as_ref()
            .expect("a projected LSTM")
            .value
            .as_standard_layout();
        let q = q.as_slice().expect("standard layout");
        let mut dw_ih = Array2::<f32>::zeros((nd * g4, c));
        let mut dw_hh = Array2::<f32>::zeros((nd * g4, p));
        let mut dq = Array2::<f32>::zeros((nd * p, h));
        let mut db = vec![0.0f32; nd * g4];
        let need_dx = self.input_grad_needed;
        let mut dx = Array2::<f32>::zeros(if need_dx { (t * b, c) } else { (0, c) });
        for (d, dir) in tape.dirs.iter().enumerate() {
            let reverse = d == 1;
            let rows = d * g4..(d + 1) * g4;
            let dy: Vec<f32> = dy_all
                .chunks_exact(s)
                .flat_map(|r| r[d * p..(d + 1) * p].iter().copied())
                .collect();
            let trace = ProjTrace {
                gates: &dir.gates,
                c: &dir.c,
                tc: &dir.tc,
            };
            let (dg, dhs) = lstm_proj_backward(
                acts(self.gate, self.state),
                steps,
                reverse,
                self.proj_weights(d, w_hh, q),
                trace,
                &dy,
            );
            weight_grad(
                &dg,
                tape.x.view(),
                g4,
                dw_ih.slice_axis_mut(Axis(0), rows.clone().into()),
            );
            let h_prev = view(&dir.h[steps.prev_start(reverse) * b * p..], t * b, p);
            weight_grad(
                &dg,
                h_prev,
                g4,
                dw_hh.slice_axis_mut(Axis(0), rows.clone().into()),
            );
            weight_grad(
                &dhs,
                view(&dir.m, t * b, h),
                p,
                dq.slice_axis_mut(Axis(0), (d * p..(d + 1) * p).into()),
            );
            column_sums(&dg, &mut db[rows.clone()]);
            if need_dx {
                matmul_into(
                    view(&dg, t * b, g4),
                    w_ih.slice_axis(Axis(0), rows.into()),
                    dx.view_mut(),
                    d > 0,
                );
            }
        }
        self.input_weights.grad = dw_ih.into_dyn();
        self.recurrent_weights.grad = dw_hh.into_dyn();
        self.bias.grad = ndarray::Array1::from(db).into_dyn();
        if let Some(q) = &mut self.projector {
            q.grad = dq.into_dyn();
        }
        if !need_dx {
            return Ok(vec![None]);
        }
        Ok(vec![Some(
            dx.into_shape_with_order(vec![t, b, c])
                .expect("t·b·c values"),
        )])
    }
}
