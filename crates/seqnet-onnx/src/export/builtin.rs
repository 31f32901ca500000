//! The built-in layers' exports, found by downcasting the layer: the simple
//! ones here, recurrent layers in [`super::recurrent`], windows in [`super::conv`].

use super::{attention, conv, recurrent};
use crate::error::Result;
use ndarray::ArrayD;
use seqnet_core::layers::{
    Addition, BatchNormalization, BiGru, BiLstm, Concatenation, Dropout, Flatten, FullyConnected,
    Gru, LeakyRelu, Lstm, Normalization, Relu, SequenceFolding, SequenceInput, SequenceUnfolding,
    Sigmoid, Softmax, Tanh,
};
use seqnet_core::onnx::{OnnxAttr, OnnxGraph, OnnxLayerCtx, OnnxValue};
use seqnet_core::{ActShape, Format, Layer};

/// Exports `layer` if it is a built-in layer (`None` otherwise: the caller
/// then asks the layer's own `onnx_export`).
pub(crate) fn export_layer(
    layer: &Layer,
    ctx: &mut OnnxLayerCtx,
) -> Result<Option<Vec<OnnxValue>>> {
    macro_rules! unary {
        ($op:literal, $attrs:expr) => {{
            let x = ctx.input(0)?.clone();
            let y = ctx.node($op, &[&x.name], $attrs);
            return Ok(Some(vec![OnnxValue { name: y, ..x }]));
        }};
    }
    if layer.is::<Relu>() {
        unary!("Relu", vec![])
    }
    if layer.is::<Tanh>() {
        unary!("Tanh", vec![])
    }
    if layer.is::<Sigmoid>() {
        unary!("Sigmoid", vec![])
    }
    if let Some(l) = layer.downcast_ref::<LeakyRelu>() {
        unary!("LeakyRelu", vec![("alpha", OnnxAttr::Float(l.scale))])
    }
    if layer.is::<Dropout>() {
        unary!("Identity", vec![])
    }
    if layer.is::<Softmax>() {
        softmax_input_check(ctx)?;
        unary!("Softmax", vec![("axis", OnnxAttr::Int(-1))])
    }
    if layer.is::<FullyConnected>() {
        return fully_connected(ctx).map(Some);
    }
    if let Some(l) = layer.downcast_ref::<BatchNormalization>() {
        return batch_norm(ctx, l.epsilon).map(Some);
    }
    if layer.is::<SequenceFolding>() {
        return fold(ctx).map(Some);
    }
    if layer.is::<SequenceUnfolding>() {
        return unfold(ctx).map(Some);
    }
    if layer.is::<Flatten>() {
        return flatten(ctx).map(Some);
    }
    if layer.is::<Addition>() {
        let x = ctx.input(0)?.clone();
        let names: Vec<String> = ctx.inputs.iter().map(|v| v.name.clone()).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let y = ctx.node("Sum", &refs, vec![]);
        return Ok(Some(vec![OnnxValue { name: y, ..x }]));
    }
    if layer.is::<Concatenation>() {
        return concatenation(ctx).map(Some);
    }
    if let Some(l) = layer.downcast_ref::<Lstm>() {
        return recurrent::lstm_like(ctx, l).map(Some);
    }
    if let Some(l) = layer.downcast_ref::<BiLstm>() {
        return recurrent::lstm_like(ctx, l).map(Some);
    }
    if let Some(l) = layer.downcast_ref::<Gru>() {
        return recurrent::gru_like(ctx, l).map(Some);
    }
    if let Some(l) = layer.downcast_ref::<BiGru>() {
        return recurrent::gru_like(ctx, l).map(Some);
    }
    if let Some(outs) = attention::export_layer(layer, ctx)? {
        return Ok(Some(outs));
    }
    conv::export_layer(layer, ctx)
}

/// Softmax runs over the channels, the last axis of `C×B` and `C×B×T` only.
fn softmax_input_check(ctx: &OnnxLayerCtx) -> Result<()> {
    let x = ctx.input(0)?;
    if x.shape.format.is_spatial() {
        return Err(ctx
            .unsupported(format!("softmax of images ({}) is not exported", x.shape))
            .into());
    }
    Ok(())
}

/// A per-channel `(scale, shift)`, `None` for an identity part.
pub(crate) type Affine = (Option<Vec<f32>>, Option<Vec<f32>>);

/// The per-channel `(scale, shift)` of the input layer's normalization, as
/// its kernel computes them (`None` for an identity part).
pub(crate) fn input_affine(
    layer: &SequenceInput,
    params: &[(&str, ArrayD<f32>)],
) -> Result<Affine> {
    let c = layer.shape().channels;
    let get = |n: &str, d: f32| -> Vec<f32> {
        params
            .iter()
            .find(|(k, _)| *k == n)
            .map(|(_, v)| v.iter().copied().collect())
            .unwrap_or_else(|| vec![d; c])
    };
    let nonzero = |v: f32| if v.abs() > f32::EPSILON { v } else { 1.0 };
    Ok(match layer.normalization {
        Normalization::None => (None, None),
        Normalization::Zerocenter => (None, Some(get("Mean", 0.0).iter().map(|m| -m).collect())),
        Normalization::Zscore => {
            let s: Vec<f32> = get("StandardDeviation", 1.0)
                .iter()
                .map(|&v| 1.0 / nonzero(v))
                .collect();
            let t = get("Mean", 0.0)
                .iter()
                .zip(&s)
                .map(|(m, s)| -m * s)
                .collect();
            (Some(s), Some(t))
        }
        Normalization::RescaleSymmetric | Normalization::RescaleZeroOne => {
            let (lo, hi) = (get("Min", 0.0), get("Max", 1.0));
            let mut s: Vec<f32> = lo
                .iter()
                .zip(&hi)
                .map(|(l, h)| 1.0 / nonzero(h - l))
                .collect();
            let mut t: Vec<f32> = lo.iter().zip(&s).map(|(l, s)| -l * s).collect();
            if layer.normalization == Normalization::RescaleSymmetric {
                s.iter_mut().for_each(|v| *v *= 2.0);
                t.iter_mut().for_each(|v| *v = *v * 2.0 - 1.0);
            }
            (Some(s), Some(t))
        }
    })
}

/// `x · scale + shift` per channel, for any format (the channel axis is the
/// last one of `C×B`/`C×B×T`, the one before `[H, W]` for images).
pub(crate) fn channel_affine(
    g: &mut OnnxGraph,
    stem: &str,
    x: &str,
    shape: &ActShape,
    scale: Option<Vec<f32>>,
    shift: Option<Vec<f32>>,
) -> String {
    let c = shape.channels;
    let dims: Vec<usize> = if shape.format.is_spatial() {
        vec![c, 1, 1]
    } else {
        vec![c]
    };
    let mut y = x.to_string();
    if let Some(s) = scale {
        let s = g.float(&format!("{stem}/scale"), &dims, s);
        y = g.node(stem, "Mul", &[&y, &s], vec![]);
    }
    if let Some(t) = shift {
        let t = g.float(&format!("{stem}/shift"), &dims, t);
        y = g.node(stem, "Add", &[&y, &t], vec![]);
    }
    y
}

/// `Gemm` for `C×B`, `MatMul` + `Add` for `C×B×T`; images are flattened
/// first in `(C, H, W)` order (the layer's own order).
fn fully_connected(ctx: &mut OnnxLayerCtx) -> Result<Vec<OnnxValue>> {
    let x = ctx.input(0)?.clone();
    let w = ctx.param("Weights")?.clone();
    let b = ctx.param("Bias")?.clone();
    let (k, n) = (w.shape()[0], w.shape()[1]);
    let bias = ctx.float("Bias", &[k], b.iter().copied().collect());
    let out_shape = ActShape::features(k).with_time(x.shape.format.has_time());
    let name = if x.shape.format.has_time() {
        let flat = match x.shape.format {
            Format::SSCBT => ctx.graph.reshape(ctx.layer, &x.name, &[0, 0, -1]),
            _ => x.name.clone(),
        };
        let wt = w.t().iter().copied().collect();
        let wt = ctx.float("WeightsT", &[n, k], wt);
        let y = ctx.node("MatMul", &[&flat, &wt], vec![]);
        ctx.node("Add", &[&y, &bias], vec![])
    } else {
        let flat = match x.shape.format {
            Format::SSCB => ctx.graph.reshape(ctx.layer, &x.name, &[0, -1]),
            _ => x.name.clone(),
        };
        let wv = ctx.float("Weights", &[k, n], w.iter().copied().collect());
        ctx.node(
            "Gemm",
            &[&flat, &wv, &bias],
            vec![("transB", OnnxAttr::Int(1))],
        )
    };
    Ok(vec![OnnxValue {
        name,
        shape: out_shape,
        lengths: x.lengths,
    }])
}

/// Inference batch normalization as `x · s + t` with
/// `s = Scale / √(TrainedVariance + ε)`, `t = Offset − TrainedMean · s`.
fn batch_norm(ctx: &mut OnnxLayerCtx, epsilon: f32) -> Result<Vec<OnnxValue>> {
    let x = ctx.input(0)?.clone();
    let gamma = ctx.param("Scale")?.clone();
    let beta = ctx.param("Offset")?.clone();
    let mean = ctx.param("TrainedMean")?.clone();
    let var = ctx.param("TrainedVariance")?.clone();
    let s: Vec<f32> = gamma
        .iter()
        .zip(var.iter())
        .map(|(g, v)| g / (v + epsilon).sqrt())
        .collect();
    let t: Vec<f32> = beta
        .iter()
        .zip(mean.iter())
        .zip(&s)
        .map(|((b, m), s)| b - m * s)
        .collect();
    let y = channel_affine(ctx.graph, ctx.layer, &x.name, &x.shape, Some(s), Some(t));
    Ok(vec![OnnxValue { name: y, ..x }])
}

/// `[T, B, …]` → `[T·B, …]`; the `miniBatchSize` port carries `Shape(x)[0:2]`
/// (`[T, B]`, int64) for the unfolding layer.
fn fold(ctx: &mut OnnxLayerCtx) -> Result<Vec<OnnxValue>> {
    let x = ctx.input(0)?.clone();
    let mut dims = vec![-1i64];
    if x.shape.format.is_spatial() {
        dims.extend([
            x.shape.channels as i64,
            x.shape.spatial[0] as i64,
            x.shape.spatial[1] as i64,
        ]);
    } else {
        dims.push(x.shape.channels as i64);
    }
    let y = ctx.graph.reshape(ctx.layer, &x.name, &dims);
    let shape = ctx.node("Shape", &[&x.name], vec![]);
    let (zero, two) = (
        ctx.int64("start", &[1], vec![0]),
        ctx.int64("end", &[1], vec![2]),
    );
    let tb = ctx.node("Slice", &[&shape, &zero, &two], vec![]);
    Ok(vec![
        OnnxValue {
            name: y,
            shape: x.shape.with_time(false),
            lengths: x.lengths.clone(),
        },
        OnnxValue {
            name: tb,
            shape: ActShape::batch_size(),
            lengths: x.lengths,
        },
    ])
}

/// `[T·B, …]` → `[T, B, …]` with `[T, B]` from the folding layer.
fn unfold(ctx: &mut OnnxLayerCtx) -> Result<Vec<OnnxValue>> {
    let x = ctx.input(0)?.clone();
    let tb = ctx.input(1)?.clone();
    let rest: Vec<i64> = if x.shape.format.is_spatial() {
        vec![
            x.shape.channels as i64,
            x.shape.spatial[0] as i64,
            x.shape.spatial[1] as i64,
        ]
    } else {
        vec![x.shape.channels as i64]
    };
    let rest_len = rest.len();
    let rest = ctx.int64("frame", &[rest_len], rest);
    let dims = ctx.node(
        "Concat",
        &[&tb.name, &rest],
        vec![("axis", OnnxAttr::Int(0))],
    );
    let y = ctx.node("Reshape", &[&x.name, &dims], vec![]);
    Ok(vec![OnnxValue {
        name: y,
        shape: x.shape.with_time(true),
        lengths: tb.lengths,
    }])
}

/// Images flattened in `(C, H, W)` order; features pass through.
fn flatten(ctx: &mut OnnxLayerCtx) -> Result<Vec<OnnxValue>> {
    let x = ctx.input(0)?.clone();
    let (dims, shape): (&[i64], ActShape) = match x.shape.format {
        Format::SSCBT => (&[0, 0, -1], ActShape::sequence(x.shape.elements())),
        Format::SSCB => (&[0, -1], ActShape::features(x.shape.elements())),
        _ => return Ok(vec![x]),
    };
    let y = ctx.graph.reshape(ctx.layer, &x.name, dims);
    Ok(vec![OnnxValue {
        name: y,
        shape,
        ..x
    }])
}

/// Concatenation along the channel axis of the inputs' format.
fn concatenation(ctx: &mut OnnxLayerCtx) -> Result<Vec<OnnxValue>> {
    let x = ctx.input(0)?.clone();
    let axis = match x.shape.format {
        Format::CB | Format::SSCB => 1,
        _ => 2,
    };
    let channels = ctx.inputs.iter().map(|v| v.shape.channels).sum();
    let names: Vec<String> = ctx.inputs.iter().map(|v| v.name.clone()).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let y = ctx.node("Concat", &refs, vec![("axis", OnnxAttr::Int(axis))]);
    Ok(vec![OnnxValue {
        name: y,
        shape: ActShape {
            channels,
            ..x.shape
        },
        lengths: x.lengths,
    }])
}
