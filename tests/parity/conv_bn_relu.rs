//! PyTorch parity of convolution → batch normalization (training mode) → ReLU,
//! against a `conv2d_bn_relu` fixture (format and tolerances in
//! `tests/fixtures/torch/README.md` at the repository root).
//!
//! Self-contained so that a test discovering fixtures can include it with
//! `#[path = "parity/conv_bn_relu.rs"] mod conv_bn_relu;` and call
//! [`check_conv_bn_relu`] on every file whose `spec.layer` is `conv2d_bn_relu`.

use ndarray::ArrayD;
use rand::rngs::StdRng;
use rand::SeedableRng;
use safetensors::{Dtype, SafeTensors};
use seqnet_core::layers::{BatchNormalization, Convolution2d, Padding, Relu};
use seqnet_core::BuildKernel;
use seqnet_core::{ActShape, Activation, ForwardCtx, LayerDef, LayerKernel, Mode};
use std::path::Path;

/// Forward values: `max|a − b| ≤ 1e-4 · max(1, max|b|)`.
pub const FORWARD_TOL: f32 = 1e-4;
/// Gradients: `max|a − b| ≤ 1e-3 · max(1, max|b|)`.
pub const GRADIENT_TOL: f32 = 1e-3;

/// A loaded fixture: its `spec` and its tensors as f32 arrays.
pub struct Fixture<'a> {
    pub spec: serde_json::Value,
    tensors: SafeTensors<'a>,
}

impl<'a> Fixture<'a> {
    /// Parses a safetensors file's bytes.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, String> {
        let (_, meta) = SafeTensors::read_metadata(bytes)
            .map_err(|e| format!("bad safetensors header: {e}"))?;
        let spec = meta
            .metadata()
            .as_ref()
            .and_then(|m| m.get("spec"))
            .ok_or("no `spec` in the metadata")?;
        let spec = serde_json::from_str(spec).map_err(|e| format!("`spec` is not JSON: {e}"))?;
        let tensors =
            SafeTensors::deserialize(bytes).map_err(|e| format!("bad safetensors file: {e}"))?;
        Ok(Fixture { spec, tensors })
    }

    /// Tensor `name` (stored as f32) with its shape.
    pub fn array(&self, name: &str) -> Result<ArrayD<f32>, String> {
        let t = self
            .tensors
            .tensor(name)
            .map_err(|e| format!("tensor `{name}`: {e}"))?;
        if t.dtype() != Dtype::F32 {
            return Err(format!("tensor `{name}` is {:?}, expected F32", t.dtype()));
        }
        let v: Vec<f32> = t
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        ArrayD::from_shape_vec(t.shape(), v).map_err(|e| format!("tensor `{name}`: {e}"))
    }

    /// Integer tensor `name` (stored as I64), flattened.
    pub fn ints(&self, name: &str) -> Result<Vec<i64>, String> {
        let t = self
            .tensors
            .tensor(name)
            .map_err(|e| format!("tensor `{name}`: {e}"))?;
        if t.dtype() != Dtype::I64 {
            return Err(format!("tensor `{name}` is {:?}, expected I64", t.dtype()));
        }
        Ok(t.data()
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
            .collect())
    }

    /// The `labels` tensor (I64, `[B]`) as one-hot targets `[B, classes]`.
    pub fn onehot_labels(&self, classes: usize) -> Result<ndarray::Array2<f32>, String> {
        let labels = self.ints("labels")?;
        let mut onehot = ndarray::Array2::<f32>::zeros((labels.len(), classes));
        for (b, &l) in labels.iter().enumerate() {
            let l = usize::try_from(l)
                .ok()
                .filter(|&l| l < classes)
                .ok_or(format!("label {l} out of range"))?;
            onehot[[b, l]] = 1.0;
        }
        Ok(onehot)
    }
}

/// `conv.<key>` as `[rows, columns]` from a number or a pair (PyTorch's `int | (int, int)`).
pub fn pair(conv: &serde_json::Value, key: &str) -> Result<[usize; 2], String> {
    let v = &conv[key];
    let as_usize = |x: &serde_json::Value| x.as_u64().map(|n| n as usize);
    match v {
        serde_json::Value::Array(a) if a.len() == 2 => match (as_usize(&a[0]), as_usize(&a[1])) {
            (Some(r), Some(c)) => Ok([r, c]),
            _ => Err(format!("{key} = {v}: expected non-negative integers")),
        },
        _ => as_usize(v)
            .map(|n| [n, n])
            .ok_or_else(|| format!("{key} = {v}: expected an integer or a pair")),
    }
}

/// The convolution `conv` describes as `nn.Conv2d` takes it (`config` of a
/// `conv2d_bn_relu` case, `config.conv` of a `video_net` case): kernel,
/// stride and dilation (absent: 1) an integer or a pair; padding an integer,
/// a pair, "valid" or "same" (stride 1; the odd row or column goes to the
/// bottom or right in PyTorch as in MATLAB's 'same').
pub fn convolution(conv: &serde_json::Value, filters: usize) -> Result<Convolution2d, String> {
    let or_one = |key: &str| {
        if conv[key].is_null() {
            Ok([1, 1])
        } else {
            pair(conv, key)
        }
    };
    let padding = match conv["padding"].as_str() {
        Some("valid") => Padding::uniform(0),
        Some("same") => Padding::Same,
        Some(other) => return Err(format!("padding '{other}' is not one of nn.Conv2d's")),
        None => {
            let [ph, pw] = pair(conv, "padding")?;
            Padding::symmetric(ph, pw)
        }
    };
    Ok(Convolution2d::new(pair(conv, "kernel")?, filters)
        .stride(or_one("stride")?)
        .dilation_factor(or_one("dilation")?)
        .padding(padding))
}

/// Compares a classification network's `probs` (`[B, K]`, from a training
/// forward with targets) and its loss with the fixture's `probs` and `loss`,
/// within [`FORWARD_TOL`]; pushes `"{tag}probs: scaled error …"` lines.
pub fn check_probs_and_loss(
    net: &seqnet_core::Network,
    probs: &Activation,
    fx: &Fixture,
    tag: &str,
    report: &mut Vec<String>,
) -> Result<(), String> {
    let loss = ndarray::arr1(&[net.loss().ok_or("no loss")?]).into_dyn();
    let want_loss = fx
        .array("loss")?
        .into_shape_with_order(vec![1])
        .map_err(|e| e.to_string())?;
    let probs = probs.data.to_owned();
    for (what, got, want) in [
        ("probs", &probs, &fx.array("probs")?),
        ("loss", &loss, &want_loss),
    ] {
        let e = compare(&format!("{tag}{what}"), got, want, FORWARD_TOL)?;
        report.push(format!("{tag}{what}: scaled error {e:.2e}"));
    }
    Ok(())
}

/// `Ok(scaled error)` when `max|got − want| ≤ tol · max(1, max|want|)`, else a message.
pub fn compare(what: &str, got: &ArrayD<f32>, want: &ArrayD<f32>, tol: f32) -> Result<f32, String> {
    if got.shape() != want.shape() {
        return Err(format!(
            "{what}: shape {:?}, expected {:?}",
            got.shape(),
            want.shape()
        ));
    }
    let diff = got
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    let scale = want.iter().map(|b| b.abs()).fold(1.0f32, f32::max);
    if diff.is_nan() || diff > tol * scale {
        return Err(format!(
            "{what}: max |difference| {diff:e} exceeds {tol:e} · {scale}"
        ));
    }
    Ok(diff / scale)
}

fn set(kernel: &mut dyn LayerKernel, name: &str, value: ArrayD<f32>) -> Result<(), String> {
    let p = kernel
        .learnables_mut()
        .into_iter()
        .find(|p| p.name == name)
        .ok_or(format!("no learnable {name}"))?;
    if p.value.shape() != value.shape() {
        return Err(format!(
            "learnable {name}: shape {:?}, fixture has {:?}",
            p.value.shape(),
            value.shape()
        ));
    }
    p.value = value.into();
    Ok(())
}

fn grad(kernel: &dyn LayerKernel, name: &str) -> Result<ArrayD<f32>, String> {
    kernel
        .learnables()
        .into_iter()
        .find(|p| p.name == name)
        .map(|p| p.grad.clone())
        .ok_or(format!("no learnable {name}"))
}

fn state(kernel: &dyn LayerKernel, name: &str) -> Result<ArrayD<f32>, String> {
    kernel
        .states()
        .into_iter()
        .find(|p| p.name == name)
        .map(|p| p.value.to_owned())
        .ok_or(format!("no state {name}"))
}

/// Runs the fixture at `path` through seqnet's `Convolution2d` →
/// `BatchNormalization` (training mode) → `Relu` and compares every stored
/// value and gradient. Returns each compared quantity with its scaled error,
/// or every mismatch found.
///
/// The batch statistics are read from the running statistics after one
/// forward with `MeanDecay = VarianceDecay = 1` (running mean = batch mean,
/// running variance = unbiased batch variance `σ²·m/(m − 1)`).
pub fn check_conv_bn_relu(path: &Path) -> Result<Vec<(String, f32)>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let fx = Fixture::parse(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    let layer = fx.spec["layer"].as_str().unwrap_or_default();
    if layer != "conv2d_bn_relu" {
        return Err(format!(
            "{}: layer is `{layer}`, not conv2d_bn_relu",
            path.display()
        ));
    }
    let eps = fx.spec["config"]["bn_eps"].as_f64().unwrap_or(1e-5) as f32;
    let input = fx.array("input")?;
    let w = fx.array("param.conv.weight")?;
    if input.ndim() != 4 || w.ndim() != 4 {
        return Err(format!(
            "input {:?} and conv.weight {:?} must be 4-D",
            input.shape(),
            w.shape()
        ));
    }
    let (c, h, wd, f) = (
        input.shape()[1],
        input.shape()[2],
        input.shape()[3],
        w.shape()[0],
    );

    let conv_def = convolution(&fx.spec["config"], f)?.name("conv");
    let bn_def = BatchNormalization::new()
        .epsilon(eps)
        .mean_decay(1.0)
        .variance_decay(1.0)
        .name("bn");
    let relu_def = Relu::new().name("relu");
    let in_shape = ActShape::images(h, wd, c);
    let conv_shape = conv_def.infer(&[in_shape]).map_err(|e| e.message)?[0];
    let mut rng = StdRng::seed_from_u64(0);
    let err = |e: seqnet_core::Error| e.to_string();
    let mut conv = conv_def.build_kernel(&[in_shape], &mut rng).map_err(err)?;
    let mut bn = bn_def.build_kernel(&[conv_shape], &mut rng).map_err(err)?;
    let mut relu = relu_def
        .build_kernel(&[conv_shape], &mut rng)
        .map_err(err)?;
    set(conv.as_mut(), "Weights", w)?;
    set(conv.as_mut(), "Bias", fx.array("param.conv.bias")?)?;
    set(bn.as_mut(), "Scale", fx.array("param.bn.weight")?)?;
    set(bn.as_mut(), "Offset", fx.array("param.bn.bias")?)?;

    let mut frng = StdRng::seed_from_u64(0);
    let mut ctx = ForwardCtx {
        mode: Mode::Training,
        stateful: false,
        rng: &mut frng,
        target: None,
    };
    let x = Activation::images(input).map_err(err)?;
    let y_conv = conv.forward(&[&x], &mut ctx).map_err(err)?.remove(0);
    let y_bn = bn.forward(&[&y_conv], &mut ctx).map_err(err)?.remove(0);
    let y = relu.forward(&[&y_bn], &mut ctx).map_err(err)?.remove(0);

    let m = (y_conv.data.len() / f) as f32;
    let batch_mean = state(bn.as_ref(), "TrainedMean")?;
    let batch_var = state(bn.as_ref(), "TrainedVariance")?.mapv(|v| v * (m - 1.0) / m);

    let g = fx.array("grad_output")?;
    let g_bn = relu.backward(vec![Some(g)]).map_err(err)?.remove(0);
    let g_conv = bn.backward(vec![g_bn]).map_err(err)?.remove(0);
    let g_in = conv
        .backward(vec![g_conv])
        .map_err(err)?
        .remove(0)
        .ok_or("no input gradient")?;

    let checks: Vec<(&str, ArrayD<f32>, f32)> = vec![
        ("conv_output", y_conv.data.to_owned(), FORWARD_TOL),
        ("bn.batch_mean", batch_mean, FORWARD_TOL),
        ("bn.batch_var_biased", batch_var, FORWARD_TOL),
        ("output", y.data.to_owned(), FORWARD_TOL),
        ("grad.input", g_in, GRADIENT_TOL),
        (
            "grad.conv.weight",
            grad(conv.as_ref(), "Weights")?,
            GRADIENT_TOL,
        ),
        ("grad.conv.bias", grad(conv.as_ref(), "Bias")?, GRADIENT_TOL),
        ("grad.bn.weight", grad(bn.as_ref(), "Scale")?, GRADIENT_TOL),
        ("grad.bn.bias", grad(bn.as_ref(), "Offset")?, GRADIENT_TOL),
    ];
    let mut ok = Vec::new();
    let mut failures = Vec::new();
    for (name, got, tol) in checks {
        match fx
            .array(name)
            .and_then(|want| compare(name, &got, &want, tol))
        {
            Ok(e) => ok.push((name.to_string(), e)),
            Err(e) => failures.push(e),
        }
    }
    if failures.is_empty() {
        Ok(ok)
    } else {
        Err(format!("{}:\n  {}", path.display(), failures.join("\n  ")))
    }
}
