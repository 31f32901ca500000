//! LSTM, BiLSTM and GRU as ONNX `LSTM`/`GRU` nodes on the time-major input,
//! with `sequence_lens` wired in when the export has it.
//!
//! Gate order: seqnet's LSTM blocks are `i, f, g, o`, ONNX's `i, o, f, c`;
//! seqnet's GRU blocks are `r, z, n`, ONNX's `z, r, h`.

use crate::error::Result;
use ndarray::ArrayD;
use seqnet_core::layers::{
    GateActivation, GruConfig, LstmConfig, OutputMode, RecurrentOptions, ResetGateMode,
    StateActivation,
};
use seqnet_core::onnx::{OnnxAttr, OnnxLayerCtx, OnnxValue};
use seqnet_core::ActShape;

/// ONNX's LSTM blocks `i, o, f, c` as seqnet block indices (`i, f, g, o`).
const LSTM_ORDER: [usize; 4] = [0, 3, 1, 2];
/// ONNX's GRU blocks `z, r, h` as seqnet block indices (`r, z, n`).
const GRU_ORDER: [usize; 3] = [1, 0, 2];

/// `a`'s rows (`[D·G·H, …]`, `G` blocks of `H` rows per direction) regrouped
/// per direction in `order`; row-major values.
fn reorder(a: &ArrayD<f32>, dirs: usize, h: usize, order: &[usize]) -> Vec<f32> {
    let cols: usize = a.shape().iter().skip(1).product();
    let v: Vec<f32> = a.iter().copied().collect();
    let g = order.len();
    let mut out = Vec::with_capacity(v.len());
    for d in 0..dirs {
        for &blk in order {
            let start = ((d * g + blk) * h) * cols;
            out.extend_from_slice(&v[start..start + h * cols]);
        }
    }
    out
}

/// Refuses what the ONNX nodes cannot express here: an initial state.
fn check_options(ctx: &OnnxLayerCtx, o: &RecurrentOptions, cell: bool) -> Result<()> {
    if o.hidden_state.is_some() || cell {
        return Err(ctx
            .unsupported("an initial HiddenState or CellState is not exported (only zeros)")
            .into());
    }
    Ok(())
}

/// The `activations` attribute for `dirs` directions, when not ONNX's default.
fn activations(o: &RecurrentOptions, dirs: usize, lstm: bool) -> Option<(&'static str, OnnxAttr)> {
    if o.gate_activation == GateActivation::Sigmoid && o.state_activation == StateActivation::Tanh {
        return None;
    }
    let gate = match o.gate_activation {
        GateActivation::Sigmoid => "Sigmoid",
        GateActivation::HardSigmoid => "HardSigmoid",
    };
    let state = match o.state_activation {
        StateActivation::Tanh => "Tanh",
        StateActivation::Softsign => "Softsign",
    };
    let one: Vec<String> = if lstm {
        vec![gate.into(), state.into(), state.into()]
    } else {
        vec![gate.into(), state.into()]
    };
    Some((
        "activations",
        OnnxAttr::Strings(one.iter().cycle().take(one.len() * dirs).cloned().collect()),
    ))
}

/// An ONNX LSTM for [`seqnet_core::layers::Lstm`] and [`seqnet_core::layers::BiLstm`].
pub(crate) fn lstm_like<const D: usize>(
    ctx: &mut OnnxLayerCtx,
    l: &LstmConfig<D>,
) -> Result<Vec<OnnxValue>> {
    check_options(ctx, &l.options, l.cell_state.is_some())?;
    if l.projection_size.is_some() {
        return Err(ctx
            .unsupported("an LSTM with a projection (ProjectorWeights) has no ONNX LSTM equivalent")
            .into());
    }
    let x = ctx.input(0)?.clone();
    let (h, c) = (l.num_hidden_units, x.shape.channels);
    let w = reorder(ctx.param("InputWeights")?, D, h, &LSTM_ORDER);
    let r = reorder(ctx.param("RecurrentWeights")?, D, h, &LSTM_ORDER);
    let b = reorder(ctx.param("Bias")?, D, h, &LSTM_ORDER);
    let mut bias = Vec::with_capacity(8 * D * h);
    for d in 0..D {
        bias.extend_from_slice(&b[d * 4 * h..(d + 1) * 4 * h]);
        bias.extend(std::iter::repeat_n(0.0, 4 * h));
    }
    let w = ctx.float("W", &[D, 4 * h, c], w);
    let r = ctx.float("R", &[D, 4 * h, h], r);
    let b = ctx.float("B", &[D, 8 * h], bias);
    let mut attrs = vec![("hidden_size", OnnxAttr::Int(h as i64))];
    if D == 2 {
        attrs.push(("direction", OnnxAttr::String("bidirectional".into())));
    }
    attrs.extend(activations(&l.options, D, true));
    let lens = x.lengths.clone().unwrap_or_default();
    let outs = ctx
        .graph
        .node_n(ctx.layer, "LSTM", &[&x.name, &w, &r, &b, &lens], 3, attrs);
    outputs(ctx, &x, &outs, D, h, l.options.output_mode)
}

/// An ONNX GRU for [`seqnet_core::layers::Gru`] and [`seqnet_core::layers::BiGru`]:
/// `linear_before_reset = 1` for the two after-multiplication modes (the
/// recurrent bias zero when the layer has none), `0` for
/// before-multiplication (ONNX then adds `Rb_h` outside the reset, so the
/// one bias goes in `Wb`).
pub(crate) fn gru_like<const D: usize>(
    ctx: &mut OnnxLayerCtx,
    l: &GruConfig<D>,
) -> Result<Vec<OnnxValue>> {
    check_options(ctx, &l.options, false)?;
    let x = ctx.input(0)?.clone();
    let (h, c) = (l.num_hidden_units, x.shape.channels);
    let w = reorder(ctx.param("InputWeights")?, D, h, &GRU_ORDER);
    let r = reorder(ctx.param("RecurrentWeights")?, D, h, &GRU_ORDER);
    let wb = reorder(ctx.param("Bias")?, D, h, &GRU_ORDER);
    let rb = if l.reset_gate_mode.has_recurrent_bias() {
        reorder(ctx.param("RecurrentBias")?, D, h, &GRU_ORDER)
    } else {
        vec![0.0; 3 * D * h]
    };
    let mut bias = Vec::with_capacity(6 * D * h);
    for d in 0..D {
        bias.extend_from_slice(&wb[d * 3 * h..(d + 1) * 3 * h]);
        bias.extend_from_slice(&rb[d * 3 * h..(d + 1) * 3 * h]);
    }
    let w = ctx.float("W", &[D, 3 * h, c], w);
    let r = ctx.float("R", &[D, 3 * h, h], r);
    let b = ctx.float("B", &[D, 6 * h], bias);
    let before = l.reset_gate_mode == ResetGateMode::BeforeMultiplication;
    let mut attrs = vec![
        ("hidden_size", OnnxAttr::Int(h as i64)),
        ("linear_before_reset", OnnxAttr::Int(i64::from(!before))),
    ];
    if D == 2 {
        attrs.push(("direction", OnnxAttr::String("bidirectional".into())));
    }
    attrs.extend(activations(&l.options, D, false));
    let lens = x.lengths.clone().unwrap_or_default();
    let outs = ctx
        .graph
        .node_n(ctx.layer, "GRU", &[&x.name, &w, &r, &b, &lens], 2, attrs);
    outputs(ctx, &x, &outs, D, h, l.options.output_mode)
}

/// The layer's output from the node's `Y` `[T, D, B, H]` and `Y_h` `[D, B, H]`:
/// the sequence `[T, B, D·H]`, or the last real step `[B, D·H]` (`Y_h` for
/// one direction; for two, the sequence at each sequence's last real step,
/// MATLAB's definition, since `Y_h`'s backward half is the state after step 0).
fn outputs(
    ctx: &mut OnnxLayerCtx,
    x: &OnnxValue,
    outs: &[String],
    dirs: usize,
    h: usize,
    mode: OutputMode,
) -> Result<Vec<OnnxValue>> {
    let (y, y_h) = (&outs[0], &outs[1]);
    if mode == OutputMode::Last && dirs == 1 {
        let ax = ctx.int64("axis0", &[1], vec![0]);
        let name = ctx.node("Squeeze", &[y_h, &ax], vec![]);
        return Ok(vec![OnnxValue {
            name,
            shape: ActShape::features(h),
            lengths: None,
        }]);
    }
    let seq = if dirs == 1 {
        let ax = ctx.int64("axis1", &[1], vec![1]);
        ctx.node("Squeeze", &[y, &ax], vec![])
    } else {
        let t = ctx.graph.transpose(ctx.layer, y, &[0, 2, 1, 3]);
        ctx.graph.reshape(ctx.layer, &t, &[0, 0, -1])
    };
    if mode == OutputMode::Sequence {
        return Ok(vec![OnnxValue {
            name: seq,
            shape: ActShape::sequence(dirs * h),
            lengths: x.lengths.clone(),
        }]);
    }
    let name = match &x.lengths {
        None => {
            let last = ctx.int64("last", &[], vec![-1]);
            ctx.node("Gather", &[&seq, &last], vec![("axis", OnnxAttr::Int(0))])
        }
        Some(lens) => {
            let l = ctx.node("Cast", &[lens], vec![("to", OnnxAttr::Int(7))]);
            let one = ctx.int64("one", &[], vec![1]);
            let l = ctx.node("Sub", &[&l, &one], vec![]);
            let l = ctx.graph.reshape(ctx.layer, &l, &[1, -1, 1]);
            let wide = ctx.int64("wide", &[3], vec![1, 1, (dirs * h) as i64]);
            let idx = ctx.node("Expand", &[&l, &wide], vec![]);
            let g = ctx.node(
                "GatherElements",
                &[&seq, &idx],
                vec![("axis", OnnxAttr::Int(0))],
            );
            let ax = ctx.int64("axis0", &[1], vec![0]);
            ctx.node("Squeeze", &[&g, &ax], vec![])
        }
    };
    Ok(vec![OnnxValue {
        name,
        shape: ActShape::features(dirs * h),
        lengths: None,
    }])
}
