//! The attention family's layers: layer normalization, word embedding,
//! self-attention (as `MatMul`s and `Softmax`) and position embeddings.

use crate::error::Result;
use seqnet_core::layers::{
    AttentionMask, LayerNormalization, PositionEmbedding, SelfAttention,
    SinusoidalPositionEncoding, WordEmbedding,
};
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
    if let Some(l) = layer.downcast_ref::<SelfAttention>() {
        return self_attention(ctx, l).map(Some);
    }
    if layer.is::<PositionEmbedding>() {
        let w = ctx.param("Weights")?.clone();
        let (n, o) = (w.shape()[0], w.shape()[1]);
        let table = ctx.float("Weights", &[n, o], w.iter().copied().collect());
        return positions(ctx, o, |ctx, steps| {
            ctx.node("Gather", &[&table, steps], vec![("axis", OnnxAttr::Int(0))])
        })
        .map(Some);
    }
    if let Some(l) = layer.downcast_ref::<SinusoidalPositionEncoding>() {
        let o = l.output_size;
        return positions(ctx, o, |ctx, steps| sinusoids(ctx, steps, o)).map(Some);
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
/// Multi-head scaled dot-product attention as `MatMul`s and `Softmax` on
/// `[B, h, T, ·]` tensors; keys at padded steps (with `sequence_lens`) and,
/// with a causal mask, keys after the query get a large negative score.
fn self_attention(ctx: &mut OnnxLayerCtx, l: &SelfAttention) -> Result<Vec<OnnxValue>> {
    let x = ctx.input(0)?.clone();
    let h = l.num_heads as i64;
    let xb = ctx.graph.transpose(ctx.layer, &x.name, &[1, 0, 2]);
    let project = |ctx: &mut OnnxLayerCtx, w: &str, b: &str| -> Result<(String, usize)> {
        let wv = ctx.param(w)?.clone();
        let (o, c) = (wv.shape()[0], wv.shape()[1]);
        let wt = ctx.float(w, &[c, o], wv.t().iter().copied().collect());
        let mut y = ctx.node("MatMul", &[&xb, &wt], vec![]);
        if l.has_bias {
            let bv = ctx.param(b)?.iter().copied().collect();
            let bn = ctx.float(b, &[o], bv);
            y = ctx.node("Add", &[&y, &bn], vec![]);
        }
        Ok((y, o))
    };
    let (q, k) = project(ctx, "QueryWeights", "QueryBias")?;
    let (kk, _) = project(ctx, "KeyWeights", "KeyBias")?;
    let (v, vc) = project(ctx, "ValueWeights", "ValueBias")?;
    let heads = |ctx: &mut OnnxLayerCtx, t: &str, perm: &[i64]| {
        let r = ctx.graph.reshape(ctx.layer, t, &[0, 0, h, -1]);
        ctx.graph.transpose(ctx.layer, &r, perm)
    };
    let q = heads(ctx, &q, &[0, 2, 1, 3]);
    let kt = heads(ctx, &kk, &[0, 2, 3, 1]);
    let v = heads(ctx, &v, &[0, 2, 1, 3]);
    let s = ctx.node("MatMul", &[&q, &kt], vec![]);
    let scale = ctx.float("scale", &[], vec![1.0 / ((k as f32 / h as f32).sqrt())]);
    let mut s = ctx.node("Mul", &[&s, &scale], vec![]);
    if let Some(mask) = key_mask(ctx, &x, l.attention_mask == AttentionMask::Causal) {
        let neg = ctx.float("masked", &[], vec![-1e30]);
        s = ctx.node("Where", &[&mask, &s, &neg], vec![]);
    }
    let a = ctx.node("Softmax", &[&s], vec![("axis", OnnxAttr::Int(-1))]);
    let o = ctx.node("MatMul", &[&a, &v], vec![]);
    let o = ctx.graph.transpose(ctx.layer, &o, &[0, 2, 1, 3]);
    let o = ctx.graph.reshape(ctx.layer, &o, &[0, 0, vc as i64]);
    let wo = ctx.param("OutputWeights")?.clone();
    let out = wo.shape()[0];
    let wot = ctx.float(
        "OutputWeights",
        &[vc, out],
        wo.t().iter().copied().collect(),
    );
    let mut y = ctx.node("MatMul", &[&o, &wot], vec![]);
    if l.has_bias {
        let bv = ctx.param("OutputBias")?.iter().copied().collect();
        let bn = ctx.float("OutputBias", &[out], bv);
        y = ctx.node("Add", &[&y, &bn], vec![]);
    }
    let y = ctx.graph.transpose(ctx.layer, &y, &[1, 0, 2]);
    Ok(vec![OnnxValue {
        name: y,
        shape: ActShape::sequence(out),
        lengths: x.lengths,
    }])
}

/// Which keys each query may see, boolean, broadcastable to `[B, h, T, T]`:
/// real keys (`[B, 1, 1, T]`, with lengths) and, for a causal mask, keys up
/// to the query (`[T, T]`); `None` when every key is seen.
fn key_mask(ctx: &mut OnnxLayerCtx, x: &OnnxValue, causal: bool) -> Option<String> {
    if x.lengths.is_none() && !causal {
        return None;
    }
    let shape = ctx.node("Shape", &[&x.name], vec![]);
    let zero = ctx.int64("zero", &[], vec![0]);
    let one = ctx.int64("one", &[], vec![1]);
    let t = ctx.node("Gather", &[&shape, &zero], vec![("axis", OnnxAttr::Int(0))]);
    let steps = ctx.node("Range", &[&zero, &t, &one], vec![]);
    let mut mask: Option<String> = None;
    if let Some(l) = &x.lengths {
        let len = ctx.node("Cast", &[l], vec![("to", OnnxAttr::Int(7))]);
        let ax = ctx.int64("axes", &[3], vec![1, 2, 3]);
        let len = ctx.node("Unsqueeze", &[&len, &ax], vec![]);
        mask = Some(ctx.node("Less", &[&steps, &len], vec![]));
    }
    if causal {
        let ax = ctx.int64("axis1", &[1], vec![1]);
        let queries = ctx.node("Unsqueeze", &[&steps, &ax], vec![]);
        let c = ctx.node("LessOrEqual", &[&steps, &queries], vec![]);
        mask = Some(match mask {
            Some(m) => ctx.node("And", &[&m, &c], vec![]),
            None => c,
        });
    }
    mask
}

/// A position layer's output `[T, B, O]`: `rows(steps)` gives `[T, O]` for
/// the int64 steps `0 … T − 1` (positions count from each sequence's first
/// step: right padding), broadcast over the batch.
fn positions(
    ctx: &mut OnnxLayerCtx,
    o: usize,
    rows: impl FnOnce(&mut OnnxLayerCtx, &str) -> String,
) -> Result<Vec<OnnxValue>> {
    let x = ctx.input(0)?.clone();
    let shape = ctx.node("Shape", &[&x.name], vec![]);
    let zero = ctx.int64("zero", &[], vec![0]);
    let one = ctx.int64("one", &[], vec![1]);
    let t = ctx.node("Gather", &[&shape, &zero], vec![("axis", OnnxAttr::Int(0))]);
    let steps = ctx.node("Range", &[&zero, &t, &one], vec![]);
    let table = rows(ctx, &steps);
    let ax = ctx.int64("axis1", &[1], vec![1]);
    let table = ctx.node("Unsqueeze", &[&table, &ax], vec![]);
    let (start, end) = (
        ctx.int64("start", &[1], vec![0]),
        ctx.int64("end", &[1], vec![2]),
    );
    let tb = ctx.node("Slice", &[&shape, &start, &end], vec![]);
    let width = ctx.int64("width", &[1], vec![o as i64]);
    let dims = ctx.node("Concat", &[&tb, &width], vec![("axis", OnnxAttr::Int(0))]);
    let y = ctx.node("Expand", &[&table, &dims], vec![]);
    Ok(vec![OnnxValue {
        name: y,
        shape: ActShape::sequence(o),
        lengths: x.lengths,
    }])
}

/// `[T, O]`: channel `2k` `sin(p / 10000^(2k/O))`, channel `2k + 1` its
/// cosine, for the int64 steps `p`.
fn sinusoids(ctx: &mut OnnxLayerCtx, steps: &str, o: usize) -> String {
    let p = ctx.node("Cast", &[steps], vec![("to", OnnxAttr::Int(1))]);
    let ax = ctx.int64("axis1", &[1], vec![1]);
    let p = ctx.node("Unsqueeze", &[&p, &ax], vec![]);
    let inv: Vec<f32> = (0..o / 2)
        .map(|k| (1.0 / 10000f64.powf(2.0 * k as f64 / o as f64)) as f32)
        .collect();
    let inv = ctx.float("frequencies", &[1, o / 2], inv);
    let angle = ctx.node("Mul", &[&p, &inv], vec![]);
    let ax2 = ctx.int64("axis2", &[1], vec![2]);
    let sin = ctx.node("Sin", &[&angle], vec![]);
    let sin = ctx.node("Unsqueeze", &[&sin, &ax2], vec![]);
    let cos = ctx.node("Cos", &[&angle], vec![]);
    let cos = ctx.node("Unsqueeze", &[&cos, &ax2], vec![]);
    let pairs = ctx.node("Concat", &[&sin, &cos], vec![("axis", OnnxAttr::Int(2))]);
    ctx.graph.reshape(ctx.layer, &pairs, &[0, -1])
}
