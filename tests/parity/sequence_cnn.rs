//! PyTorch parity of the 1-D convolution and pooling layers and of the
//! `cnn1d_net` network, on the `conv1d`, `pool1d`, `global_pool1d` and
//! `cnn1d_net` fixtures (format and tolerances: `tests/fixtures/torch/README.md`).
//!
//! Every option the README's format allows is read from `config`: conv1d
//! padding `"same"`, `"causal"` or an integer (and a `padding_value`, when
//! present), any stride and dilation; pool1d mode, kernel, stride, padding;
//! global pooling mode. Each case is also run re-padded on the left (each
//! sequence moved to the end, padded steps set to 7.5), which must give every
//! sequence the same values at its real steps and zeros elsewhere.

use super::conv_bn_relu::{check_probs_and_loss, compare, Fixture, FORWARD_TOL, GRADIENT_TOL};
use ndarray::{s, ArrayD};
use rand::rngs::StdRng;
use rand::SeedableRng;
use seqnet::prelude::*;
use seqnet_core::{ActShape, BuildKernel, ForwardCtx};
use serde_json::Value;

/// The `spec.layer` values this module checks.
pub const KINDS: [&str; 4] = ["conv1d", "pool1d", "global_pool1d", "cnn1d_net"];

type R<T> = Result<T, String>;

/// Checks one fixture of a kind in [`KINDS`].
pub fn check(bytes: &[u8]) -> R<Vec<String>> {
    let fx = Fixture::parse(bytes)?;
    match fx.spec["layer"].as_str().unwrap_or_default() {
        "conv1d" => check_layer_case(&fx, conv1d_layer(&fx.spec["config"])?.into()),
        "pool1d" => check_layer_case(&fx, pool1d_layer(&fx.spec["config"])?),
        "global_pool1d" => check_layer_case(&fx, global_layer(&fx.spec["config"])?),
        "cnn1d_net" => check_cnn1d_net(&fx),
        other => Err(format!("not a sequence CNN kind: {other}")),
    }
}

fn usize_at(v: &Value, key: &str) -> R<usize> {
    v[key].as_u64().map(|n| n as usize).ok_or_else(|| {
        format!(
            "config.{key} missing or not a non-negative integer: {}",
            v[key]
        )
    })
}

/// `config[key]`, 1 when absent.
fn usize_or_one(v: &Value, key: &str) -> R<usize> {
    if v[key].is_null() {
        Ok(1)
    } else {
        usize_at(v, key)
    }
}

/// `"same"`, `"causal"` or an integer `p` (p steps on each side).
fn padding(v: &Value) -> R<Padding1d> {
    match &v["padding"] {
        Value::Null => Ok(Padding1d::default()),
        Value::String(s) if s == "same" => Ok(Padding1d::Same),
        Value::String(s) if s == "causal" => Ok(Padding1d::Causal),
        Value::String(s) if s == "valid" => Ok(Padding1d::default()),
        p => p
            .as_u64()
            .map(|p| Padding1d::Explicit([p as usize; 2]))
            .ok_or_else(|| format!("padding {p} is not \"same\", \"causal\" or an integer")),
    }
}

/// The convolution a `conv1d` config (or a `c1`/`c2` block of `cnn1d_net`) describes.
fn conv1d_layer(v: &Value) -> R<Convolution1d> {
    let filters = if v["out_channels"].is_null() {
        usize_at(v, "filters")?
    } else {
        usize_at(v, "out_channels")?
    };
    let value = match &v["padding_value"] {
        Value::Null => 0.0,
        p => p
            .as_f64()
            .ok_or(format!("padding_value {p} is not a number"))? as f32,
    };
    Ok(Convolution1d::new(usize_at(v, "kernel")?, filters)
        .stride(usize_or_one(v, "stride")?)
        .dilation_factor(usize_or_one(v, "dilation")?)
        .padding(padding(v)?)
        .padding_value(ConvPaddingValue::Value(value))
        .name("layer"))
}

fn pool1d_layer(v: &Value) -> R<Layer> {
    let (k, stride, pad) = (
        usize_at(v, "kernel")?,
        usize_or_one(v, "stride")?,
        padding(v)?,
    );
    match v["mode"].as_str() {
        Some("max") => Ok(MaxPooling1d::new(k)
            .stride(stride)
            .padding(pad)
            .name("layer")
            .into()),
        Some("average") => Ok(AveragePooling1d::new(k)
            .stride(stride)
            .padding(pad)
            .name("layer")
            .into()),
        m => Err(format!("pool1d mode {m:?} is not \"max\" or \"average\"")),
    }
}

fn global_layer(v: &Value) -> R<Layer> {
    match v["mode"].as_str() {
        Some("max") => Ok(GlobalMaxPooling1d::new().name("layer").into()),
        Some("average") => Ok(GlobalAveragePooling1d::new().name("layer").into()),
        m => Err(format!(
            "global_pool1d mode {m:?} is not \"max\" or \"average\""
        )),
    }
}

/// `[B, T, …]` ↔ `[T, B, …]`.
pub fn swap01(a: &ArrayD<f32>) -> ArrayD<f32> {
    let mut a = a.clone();
    a.swap_axes(0, 1);
    a.as_standard_layout().to_owned()
}

/// The fixture's right-padded `[T, B, C]` input and lengths, and the same
/// sequences padded on the left with 7.5 in the padded steps.
fn inputs(fx: &Fixture) -> R<[(ArrayD<f32>, SeqLengths); 2]> {
    let x = swap01(&fx.array("input")?);
    let (t, b) = (x.shape()[0], x.shape()[1]);
    let lens: Vec<usize> = fx
        .ints("lengths")?
        .into_iter()
        .map(|l| usize::try_from(l).map_err(|_| format!("negative length {l}")))
        .collect::<R<_>>()?;
    let right =
        SeqLengths::new(lens.clone(), t, PaddingDirection::Right).map_err(|e| e.to_string())?;
    if lens.len() != b {
        return Err(format!("{} lengths for a batch of {b}", lens.len()));
    }
    let left =
        SeqLengths::new(lens.clone(), t, PaddingDirection::Left).map_err(|e| e.to_string())?;
    let mut xl = ArrayD::from_elem(x.shape(), 7.5f32);
    for (bi, &l) in lens.iter().enumerate() {
        xl.slice_mut(s![t - l.., bi, ..])
            .assign(&x.slice(s![..l, bi, ..]));
    }
    Ok([(x, right), (xl, left)])
}

/// Moves each sequence's real steps of a `[T, B, …]` array (laid out by
/// `lengths`) to the start, zeros after: the right-padded equivalent.
pub fn to_right(a: &ArrayD<f32>, lengths: &SeqLengths) -> ArrayD<f32> {
    let mut out = ArrayD::zeros(a.shape());
    for b in 0..lengths.lengths.len() {
        let span = lengths.span(b);
        let n = span.len();
        out.slice_mut(s![..n, b, ..])
            .assign(&a.slice(s![span, b, ..]));
    }
    out
}

/// The inverse of [`to_right`] for an array right-padded by `lengths`' lengths.
pub fn from_right(a: &ArrayD<f32>, lengths: &SeqLengths) -> ArrayD<f32> {
    let mut out = ArrayD::zeros(a.shape());
    for b in 0..lengths.lengths.len() {
        let span = lengths.span(b);
        let n = span.len();
        out.slice_mut(s![span, b, ..])
            .assign(&a.slice(s![..n, b, ..]));
    }
    out
}

/// Whether every step outside the real ones is exactly 0.
pub fn zero_outside(a: &ArrayD<f32>, lengths: &SeqLengths) -> bool {
    (0..lengths.lengths.len()).all(|b| {
        (0..lengths.time)
            .filter(|&t| !lengths.is_real(b, t))
            .all(|t| a.slice(s![t, b, ..]).iter().all(|&v| v == 0.0))
    })
}

/// One layer on the fixture's input, right- then left-padded: `output`,
/// `grad.input` and, for a convolution, `grad.weight` and `grad.bias`.
fn check_layer_case(fx: &Fixture, layer: Layer) -> R<Vec<String>> {
    let err = |e: seqnet_core::Error| e.to_string();
    let has_time = fx.spec["layer"] != "global_pool1d";
    let want_y = fx.array("output")?;
    let g = fx.array("grad_output")?;
    let c = fx.array("input")?.shape()[2];
    let mut report = Vec::new();
    for (x, lengths) in inputs(fx)? {
        let dir = lengths.direction;
        let shape = ActShape::sequence(c);
        let mut k = layer
            .def()
            .build_kernel(&[shape], &mut StdRng::seed_from_u64(0))
            .map_err(err)?;
        for (name, torch) in [("Weights", "param.weight"), ("Bias", "param.bias")] {
            if let Some(p) = k.learnables_mut().into_iter().find(|p| p.name == name) {
                p.value = fx.array(torch)?.into();
            }
        }
        let x = Activation::sequence(x, Some(lengths.clone())).map_err(err)?;
        let mut rng = StdRng::seed_from_u64(0);
        let mut ctx = ForwardCtx {
            mode: Mode::Training,
            stateful: false,
            rng: &mut rng,
            target: None,
        };
        let y = k.forward(&[&x], &mut ctx).map_err(err)?.remove(0);
        let y_data = y.data.to_owned();
        let (got_y, g_ours) = if has_time {
            let out_lengths = y.seq_lengths();
            if !zero_outside(&y_data, &out_lengths) {
                return Err(format!("{dir:?}: output not zero at padded steps"));
            }
            if let Some(t) = fx.spec["config"]["output_time"].as_u64() {
                if out_lengths.time != t as usize {
                    return Err(format!("output time {}, config says {t}", out_lengths.time));
                }
            }
            (
                swap01(&to_right(&y_data, &out_lengths)),
                from_right(&swap01(&g), &out_lengths),
            )
        } else {
            (y_data, g.clone())
        };
        let mut cmp = |what: &str, got: &ArrayD<f32>, want: &ArrayD<f32>, tol| -> R<()> {
            let e = compare(&format!("{dir:?} {what}"), got, want, tol)?;
            report.push(format!("{dir:?} {what}: scaled error {e:.2e}"));
            Ok(())
        };
        cmp("output", &got_y, &want_y, FORWARD_TOL)?;
        let dx = k
            .backward(vec![Some(g_ours)])
            .map_err(err)?
            .remove(0)
            .ok_or("no input gradient")?;
        if !zero_outside(&dx, &lengths) {
            return Err(format!("{dir:?}: input gradient not zero at padded steps"));
        }
        let dx = swap01(&to_right(&dx, &lengths));
        cmp("grad.input", &dx, &fx.array("grad.input")?, GRADIENT_TOL)?;
        for p in k.learnables() {
            let torch = match p.name {
                "Weights" => "grad.weight",
                "Bias" => "grad.bias",
                other => return Err(format!("unexpected learnable {other}")),
            };
            cmp(torch, &p.grad, &fx.array(torch)?, GRADIENT_TOL)?;
        }
    }
    Ok(report)
}

/// `c1 → batch norm (batch statistics) → ReLU → c2 → ReLU → global average
/// pooling → fully connected → softmax → cross-entropy`, right- then left-padded.
fn check_cnn1d_net(fx: &Fixture) -> R<Vec<String>> {
    let cfg = &fx.spec["config"];
    let err = |e: seqnet::core::Error| e.to_string();
    let c = usize_at(cfg, "in_channels")?;
    let classes = usize_at(cfg, "classes")?;
    let layers: Vec<Layer> = vec![
        SequenceInput::new(c).name("input").into(),
        conv1d_layer(&cfg["c1"])?.name("c1").into(),
        BatchNormalization::new()
            .epsilon(1e-5)
            .mean_decay(1.0)
            .variance_decay(1.0)
            .name("bn")
            .into(),
        Relu::new().name("relu1").into(),
        conv1d_layer(&cfg["c2"])?.name("c2").into(),
        Relu::new().name("relu2").into(),
        GlobalAveragePooling1d::new().name("gap").into(),
        FullyConnected::new(classes).name("fc").into(),
        Softmax::new().name("softmax").into(),
        ClassificationOutput::new().name("output").into(),
    ];
    let graph = LayerGraph::from_layers(layers).map_err(err)?;
    let onehot = fx.onehot_labels(classes)?;
    let params = ["c1", "c2", "fc"]
        .iter()
        .flat_map(|l| [(*l, "Weights", "weight"), (*l, "Bias", "bias")])
        .chain([("bn", "Scale", "weight"), ("bn", "Offset", "bias")]);
    let params: Vec<(&str, &str, String)> =
        params.map(|(l, n, t)| (l, n, format!("{l}.{t}"))).collect();
    let mut report = Vec::new();
    for (x, lengths) in inputs(fx)? {
        let dir = lengths.direction;
        let mut net = Network::new(&graph, 0).map_err(err)?;
        for (layer, name, torch) in &params {
            net.set_learnable(layer, name, fx.array(&format!("param.{torch}"))?)
                .map_err(err)?;
        }
        let x = Activation::sequence(x, Some(lengths.clone())).map_err(err)?;
        let t = Activation::features(onehot.clone().into_dyn()).map_err(err)?;
        let probs = net
            .forward(&[x], Some(&[t]), Mode::Training, false)
            .map_err(err)?;
        check_probs_and_loss(&net, &probs[0], fx, &format!("{dir:?} "), &mut report)?;
        let mut cmp = |what: &str, got: &ArrayD<f32>, want: &ArrayD<f32>, tol| -> R<()> {
            let e = compare(&format!("{dir:?} {what}"), got, want, tol)?;
            report.push(format!("{dir:?} {what}: scaled error {e:.2e}"));
            Ok(())
        };
        let m = lengths.real_steps() as f32;
        let state = |name: &str| -> R<ArrayD<f32>> {
            net.states()
                .into_iter()
                .find(|(l, s)| *l == "bn" && s.name == name)
                .map(|(_, s)| s.value.to_owned())
                .ok_or(format!("no state bn.{name}"))
        };
        let (mean, var) = (state("TrainedMean")?, state("TrainedVariance")?);
        cmp(
            "bn.batch_mean",
            &mean,
            &fx.array("bn.batch_mean")?,
            FORWARD_TOL,
        )?;
        let var = var.mapv(|v| v * (m - 1.0) / m);
        cmp(
            "bn.batch_var_biased",
            &var,
            &fx.array("bn.batch_var_biased")?,
            FORWARD_TOL,
        )?;
        net.backward().map_err(err)?;
        let gx = net.input_gradients()[0]
            .clone()
            .ok_or("no input gradient")?;
        if !zero_outside(&gx, &lengths) {
            return Err(format!("{dir:?}: input gradient not zero at padded steps"));
        }
        let gx = swap01(&to_right(&gx, &lengths));
        cmp("grad.input", &gx, &fx.array("grad.input")?, GRADIENT_TOL)?;
        for (layer, name, torch) in &params {
            let g = net
                .learnables()
                .into_iter()
                .find(|(l, p)| l == layer && p.name == *name)
                .map(|(_, p)| p.grad.clone())
                .ok_or(format!("no learnable {layer}.{name}"))?;
            cmp(
                &format!("grad.{torch}"),
                &g,
                &fx.array(&format!("grad.{torch}"))?,
                GRADIENT_TOL,
            )?;
        }
    }
    Ok(report)
}
