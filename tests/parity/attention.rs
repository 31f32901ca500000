//! PyTorch parity of the attention family: layer normalization, word
//! embedding, self-attention and the `transformer_block` network, on the
//! `layernorm`, `embedding`, `self_attention` and `transformer_block`
//! fixtures (format and tolerances: `tests/fixtures/torch/README.md`).
//!
//! Every option the README's format gives is read from `config` (epsilon,
//! index base, heads, key/value/output sizes, causal mask, bias). Each case
//! is also run re-padded on the left (each sequence moved to the end, padded
//! steps holding a value no layer may read: 7.5, or an out-of-range index for
//! the embedding), which must give every sequence the same values at its real
//! steps and zeros elsewhere. Learnables are matched to the fixture's
//! `param.<name>` by name: `Scale` → `weight`, `Offset` → `bias`, `Weights`
//! → `weight`, `QueryWeights` → `query_weight`, `QueryBias` → `query_bias`, …

use super::conv_bn_relu::{check_probs_and_loss, compare, Fixture, FORWARD_TOL, GRADIENT_TOL};
use super::sequence_cnn::{from_right, swap01, to_right, zero_outside};
use ndarray::{s, ArrayD};
use rand::rngs::StdRng;
use rand::SeedableRng;
use seqnet::prelude::*;
use seqnet_core::templates::transformer::{self, TransformerSizes};
use seqnet_core::{ActShape, BuildKernel, ForwardCtx};
use serde_json::Value;

/// The `spec.layer` values this module checks.
pub const KINDS: [&str; 4] = [
    "layernorm",
    "embedding",
    "self_attention",
    "transformer_block",
];

type R<T> = Result<T, String>;

/// Checks one fixture of a kind in [`KINDS`].
pub fn check(bytes: &[u8]) -> R<Vec<String>> {
    let fx = Fixture::parse(bytes)?;
    let cfg = &fx.spec["config"];
    match fx.spec["layer"].as_str().unwrap_or_default() {
        "layernorm" => {
            let eps = cfg["eps"].as_f64().unwrap_or(1e-5) as f32;
            let layer = LayerNormalization::new().epsilon(eps).name("layer");
            check_layer_case(&fx, layer.into(), fx.array("input")?, 7.5)
        }
        "embedding" => {
            let base = cfg["index_base"].as_u64().unwrap_or(1) as usize;
            let layer = WordEmbedding::new(usize_at(cfg, "dim")?, usize_at(cfg, "num_words")?)
                .index_base(base)
                .name("layer");
            let idx = fx.ints("input")?;
            let (b, t) = (usize_at(cfg, "batch")?, usize_at(cfg, "time")?);
            let x = ArrayD::from_shape_vec(vec![b, t, 1], idx.iter().map(|&i| i as f32).collect())
                .map_err(|e| format!("input: {e}"))?;
            check_layer_case(&fx, layer.into(), x, -3.0)
        }
        "self_attention" => {
            let layer = attention_layer(cfg)?.name("layer");
            check_layer_case(&fx, layer.into(), fx.array("input")?, 7.5)
        }
        "transformer_block" => check_transformer_block(&fx),
        other => Err(format!("not an attention kind: {other}")),
    }
}

pub fn usize_at(v: &Value, key: &str) -> R<usize> {
    v[key].as_u64().map(|n| n as usize).ok_or_else(|| {
        format!(
            "config.{key} missing or not a non-negative integer: {}",
            v[key]
        )
    })
}

/// The self-attention a `self_attention` config (or a `transformer_block`'s
/// `attention` with its `num_heads`) describes.
pub fn attention_layer(cfg: &Value) -> R<SelfAttention> {
    let mut layer = SelfAttention::new(usize_at(cfg, "num_heads")?, usize_at(cfg, "key_channels")?)
        .num_value_channels(usize_at(cfg, "value_channels")?)
        .output_size(usize_at(cfg, "output_size")?)
        .has_bias(cfg["has_bias"].as_bool().unwrap_or(true));
    if cfg["causal"].as_bool().unwrap_or(false) {
        layer = layer.attention_mask(AttentionMask::Causal);
    }
    Ok(layer)
}

/// The fixture's name of a learnable: `Scale` → `weight`, `QueryWeights` →
/// `query_weight`, `OutputBias` → `output_bias`.
pub fn torch_name(learnable: &str) -> String {
    match learnable {
        "Scale" | "Weights" => "weight".into(),
        "Offset" | "Bias" => "bias".into(),
        other => {
            let split = other[1..]
                .find(|c: char| c.is_ascii_uppercase())
                .map_or(other.len(), |i| i + 1);
            let (head, tail) = other.split_at(split);
            let tail = match tail {
                "Weights" => "weight",
                "Bias" => "bias",
                t => t,
            };
            format!("{}_{}", head.to_lowercase(), tail.to_lowercase())
        }
    }
}

/// The fixture's lengths.
pub fn lengths(fx: &Fixture, t: usize) -> R<Vec<SeqLengths>> {
    let lens: Vec<usize> = fx
        .ints("lengths")?
        .into_iter()
        .map(|l| usize::try_from(l).map_err(|_| format!("negative length {l}")))
        .collect::<R<_>>()?;
    [PaddingDirection::Right, PaddingDirection::Left]
        .into_iter()
        .map(|d| SeqLengths::new(lens.clone(), t, d).map_err(|e| e.to_string()))
        .collect()
}

/// `[B, T, C]` right-padded input as `[T, B, C]` laid out by `lengths`,
/// `pad` at its padded steps.
pub fn laid_out(x: &ArrayD<f32>, lengths: &SeqLengths, pad: f32) -> ArrayD<f32> {
    let x = swap01(x);
    let mut out = ArrayD::from_elem(x.shape(), pad);
    for b in 0..lengths.lengths.len() {
        let span = lengths.span(b);
        let n = span.len();
        out.slice_mut(s![span, b, ..])
            .assign(&x.slice(s![..n, b, ..]));
    }
    out
}

/// One layer on the fixture's input `x` (`[B, T, C]`), right- then
/// left-padded: `output`, `grad.input` (when the fixture has it) and every
/// learnable's gradient.
fn check_layer_case(fx: &Fixture, layer: Layer, x: ArrayD<f32>, pad: f32) -> R<Vec<String>> {
    let err = |e: seqnet_core::Error| e.to_string();
    let (t, c) = (x.shape()[1], x.shape()[2]);
    let want_y = fx.array("output")?;
    let g = fx.array("grad_output")?;
    let mut report = Vec::new();
    for lengths in lengths(fx, t)? {
        let dir = lengths.direction;
        let mut k = layer
            .def()
            .build_kernel(&[ActShape::sequence(c)], &mut StdRng::seed_from_u64(0))
            .map_err(err)?;
        for p in k.learnables_mut() {
            p.value = fx.array(&format!("param.{}", torch_name(p.name)))?.into();
        }
        let xa = Activation::sequence(laid_out(&x, &lengths, pad), Some(lengths.clone()))
            .map_err(err)?;
        let mut rng = StdRng::seed_from_u64(0);
        let mut ctx = ForwardCtx {
            mode: Mode::Training,
            stateful: false,
            rng: &mut rng,
            target: None,
        };
        let y = k.forward(&[&xa], &mut ctx).map_err(err)?.remove(0);
        let y = y.data.to_owned();
        if !zero_outside(&y, &lengths) {
            return Err(format!("{dir:?}: output not zero at padded steps"));
        }
        let mut cmp = |what: &str, got: &ArrayD<f32>, want: &ArrayD<f32>, tol| -> R<()> {
            let e = compare(&format!("{dir:?} {what}"), got, want, tol)?;
            report.push(format!("{dir:?} {what}: scaled error {e:.2e}"));
            Ok(())
        };
        cmp(
            "output",
            &swap01(&to_right(&y, &lengths)),
            &want_y,
            FORWARD_TOL,
        )?;
        let dx = k
            .backward(vec![Some(from_right(&swap01(&g), &lengths))])
            .map_err(err)?
            .remove(0);
        if let Ok(want_dx) = fx.array("grad.input") {
            let dx = dx.ok_or("no input gradient")?;
            if !zero_outside(&dx, &lengths) {
                return Err(format!("{dir:?}: input gradient not zero at padded steps"));
            }
            cmp(
                "grad.input",
                &swap01(&to_right(&dx, &lengths)),
                &want_dx,
                GRADIENT_TOL,
            )?;
        }
        for p in k.learnables() {
            let torch = format!("grad.{}", torch_name(p.name));
            cmp(&torch, &p.grad, &fx.array(&torch)?, GRADIENT_TOL)?;
        }
    }
    Ok(report)
}

/// The fixture's name stem of a layer of the `transformer` template with one block.
fn block_stem(layer: &str) -> R<&'static str> {
    Ok(match layer {
        "fc_in" => "fc_in",
        "pos" => "pos",
        "ln1_1" => "ln1",
        "attn_1" => "attn",
        "ln2_1" => "ln2",
        "fc1_1" => "fc1",
        "fc2_1" => "fc2",
        "fc" => "fc_out",
        other => return Err(format!("no fixture parameters for layer {other}")),
    })
}

/// The `transformer` template with one block (`seqnet new transformer`'s
/// graph) against `transformer_block`, right- then left-padded: `probs`,
/// `loss`, `grad.input` and every learnable's gradient.
fn check_transformer_block(fx: &Fixture) -> R<Vec<String>> {
    let cfg = &fx.spec["config"];
    let err = |e: seqnet::core::Error| e.to_string();
    let (c, classes) = (usize_at(cfg, "input_channels")?, usize_at(cfg, "classes")?);
    let d = usize_at(cfg, "model_dim")?;
    let att = &cfg["attention"];
    for key in ["key_channels", "value_channels", "output_size"] {
        if usize_at(att, key)? != d {
            return Err(format!(
                "attention.{key} is not model_dim: the template has K = V = O = D"
            ));
        }
    }
    if cfg["causal"].as_bool().unwrap_or(false) {
        return Err("a causal transformer_block: the template's attention is not causal".into());
    }
    let sizes = TransformerSizes {
        model_dim: Some(d),
        heads: Some(usize_at(cfg, "num_heads")?),
        blocks: Some(1),
        ffn_dim: Some(usize_at(cfg, "ffn_dim")?),
        max_position: Some(usize_at(cfg, "max_position")?),
    }
    .resolve()
    .map_err(err)?;
    let mut graph = transformer::graph(SequenceInput::new(c).name("input"), &sizes, classes, false)
        .map_err(err)?;
    let eps = cfg["layernorm_eps"].as_f64().unwrap_or(1e-5) as f32;
    for ln in ["ln1_1", "ln2_1"] {
        graph
            .replace_layer(ln, LayerNormalization::new().epsilon(eps).name(ln).into())
            .map_err(err)?;
    }
    let onehot = fx.onehot_labels(classes)?;
    let x = fx.array("input")?;
    let t = x.shape()[1];
    let mut report = Vec::new();
    for lengths in lengths(fx, t)? {
        let dir = lengths.direction;
        let mut net = Network::new(&graph, 0).map_err(err)?;
        let names: Vec<(String, &'static str)> = net
            .learnables()
            .into_iter()
            .map(|(l, p)| (l.to_string(), p.name))
            .collect();
        let torch = |layer: &str, name: &str| -> R<String> {
            Ok(format!("{}.{}", block_stem(layer)?, torch_name(name)))
        };
        for (layer, name) in &names {
            let value = fx.array(&format!("param.{}", torch(layer, name)?))?;
            net.set_learnable(layer, name, value).map_err(err)?;
        }
        let xa = Activation::sequence(laid_out(&x, &lengths, 7.5), Some(lengths.clone()))
            .map_err(err)?;
        let target = Activation::features(onehot.clone().into_dyn()).map_err(err)?;
        let probs = net
            .forward(&[xa], Some(&[target]), Mode::Training, false)
            .map_err(err)?;
        check_probs_and_loss(&net, &probs[0], fx, &format!("{dir:?} "), &mut report)?;
        let mut cmp = |what: &str, got: &ArrayD<f32>, want: &ArrayD<f32>, tol| -> R<()> {
            let e = compare(&format!("{dir:?} {what}"), got, want, tol)?;
            report.push(format!("{dir:?} {what}: scaled error {e:.2e}"));
            Ok(())
        };
        net.backward().map_err(err)?;
        let gx = net.input_gradients()[0]
            .clone()
            .ok_or("no input gradient")?;
        if !zero_outside(&gx, &lengths) {
            return Err(format!("{dir:?}: input gradient not zero at padded steps"));
        }
        cmp(
            "grad.input",
            &swap01(&to_right(&gx, &lengths)),
            &fx.array("grad.input")?,
            GRADIENT_TOL,
        )?;
        for (layer, p) in net.learnables() {
            let name = format!("grad.{}", torch(layer, p.name)?);
            cmp(&name, &p.grad, &fx.array(&name)?, GRADIENT_TOL)?;
        }
    }
    Ok(report)
}
