//! The attention family's layers: layer normalization and word embedding
//! (self-attention and position embeddings are not exported yet; see
//! `docs/ONNX.md`).

use crate::error::Result;
use seqnet_core::layers::{LayerNormalization, WordEmbedding};
use seqnet_core::onnx::{OnnxAttr, OnnxLayerCtx, OnnxValue};
use seqnet_core::{ActShape, Layer};

/// Exports `layer` if it is one of the attention family's layers.
pub(crate) fn export_layer(
    layer: &Layer,
    ctx: &mut OnnxLayerCtx,
) -> Result<Option<Vec<OnnxValue>>> {
    if let Some(l) = layer.downcast_ref::<LayerNormalization>() {
        return layer_norm(ctx, l.epsilon).map(Some);
    }
    if let Some(l) = layer.downcast_ref::<WordEmbedding>() {
        return embedding(ctx, l).map(Some);
    }
    Ok(None)
}

/// ONNX `LayerNormalization` over the last axis (the channels of `[T, B, C]`
/// or `[B, C]`).
fn layer_norm(ctx: &mut OnnxLayerCtx, epsilon: f32) -> Result<Vec<OnnxValue>> {
    let x = ctx.input(0)?.clone();
    let scale = ctx.param("Scale")?.iter().copied().collect::<Vec<_>>();
    let offset = ctx.param("Offset")?.iter().copied().collect::<Vec<_>>();
    let c = scale.len();
    let scale = ctx.float("Scale", &[c], scale);
    let offset = ctx.float("Offset", &[c], offset);
    let y = ctx.node(
        "LayerNormalization",
        &[&x.name, &scale, &offset],
        vec![
            ("axis", OnnxAttr::Int(-1)),
            ("epsilon", OnnxAttr::Float(epsilon)),
        ],
    );
    Ok(vec![OnnxValue { name: y, ..x }])
}

/// `Gather` of the `Weights` rows at the indices (`[T, B, 1]` floats, less
/// the index base, as int64, clipped to the vocabulary: ONNX has no error
/// for a bad index, and padded steps may hold anything).
fn embedding(ctx: &mut OnnxLayerCtx, l: &WordEmbedding) -> Result<Vec<OnnxValue>> {
    let x = ctx.input(0)?.clone();
    let w = ctx.param("Weights")?.clone();
    let (n, d) = (w.shape()[0], w.shape()[1]);
    let weights = ctx.float("Weights", &[n, d], w.iter().copied().collect());
    let axis = ctx.int64("axis", &[1], vec![2]);
    let idx = ctx.node("Squeeze", &[&x.name, &axis], vec![]);
    let idx = ctx.node("Cast", &[&idx], vec![("to", OnnxAttr::Int(7))]);
    let base = ctx.int64("base", &[], vec![l.index_base as i64]);
    let idx = ctx.node("Sub", &[&idx, &base], vec![]);
    let (lo, hi) = (
        ctx.int64("lo", &[], vec![0]),
        ctx.int64("hi", &[], vec![n as i64 - 1]),
    );
    let idx = ctx.node("Clip", &[&idx, &lo, &hi], vec![]);
    let y = ctx.node(
        "Gather",
        &[&weights, &idx],
        vec![("axis", OnnxAttr::Int(0))],
    );
    Ok(vec![OnnxValue {
        name: y,
        shape: ActShape::sequence(d),
        lengths: x.lengths,
    }])
}
