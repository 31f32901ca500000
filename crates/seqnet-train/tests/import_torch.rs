//! `import_torch` on the PyTorch fixtures (`tests/fixtures/torch/` at the
//! repository root; format in its README): the parameters are imported from
//! each file's `param.*` tensors into a graph through a mapping, and the
//! network must reproduce the stored outputs — `output` and `output_last` of
//! the recurrent cases (one- and two-layer, bidirectional, GRU, with initial
//! states), `probs` of the video network and `output` of conv → batchnorm →
//! ReLU. Cases are discovered, not listed, and every convolution setting
//! PyTorch's `nn.Conv2d` takes is read from the spec (kernel, stride,
//! dilation: an integer or a pair; padding: an integer, a pair, "same" or
//! "valid"). Also: each kind of mismatch is an error naming the tensor and
//! the layer.
//!
//! Tolerance (the fixtures'): `max|a − b| ≤ 1e-4 · max(1, max|b|)`.

use ndarray::{s, ArrayD, Axis, IxDyn};
use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;
use seqnet_core::layers::*;
use seqnet_core::{Activation, Layer, LayerGraph, Mode, PaddingDirection, SeqLengths};
use seqnet_train::{import_torch, TorchMapping};
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

const TOL: f32 = 1e-4;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/torch")
}

/// One fixture: its spec, its bytes, and its tensors as f32 arrays.
struct Fixture {
    name: String,
    spec: Value,
    bytes: Vec<u8>,
}

impl Fixture {
    fn load(path: &Path) -> Fixture {
        let bytes = std::fs::read(path).unwrap();
        let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
        let spec = meta
            .metadata()
            .as_ref()
            .and_then(|m| m.get("spec"))
            .map(|s| serde_json::from_str(s).unwrap())
            .unwrap_or(Value::Null);
        Fixture {
            name: path.file_stem().unwrap().to_string_lossy().into_owned(),
            spec,
            bytes,
        }
    }

    fn array(&self, name: &str) -> ArrayD<f32> {
        let st = SafeTensors::deserialize(&self.bytes).unwrap();
        let t = st
            .tensor(name)
            .unwrap_or_else(|_| panic!("{}: no tensor {name}", self.name));
        let v: Vec<f32> = match t.dtype() {
            Dtype::F32 => t
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                .collect(),
            Dtype::I64 => t
                .data()
                .chunks_exact(8)
                .map(|b| i64::from_le_bytes(b.try_into().unwrap()) as f32)
                .collect(),
            d => panic!("{}: tensor {name} is {d:?}", self.name),
        };
        ArrayD::from_shape_vec(IxDyn(t.shape()), v).unwrap()
    }

    fn config(&self, key: &str) -> &Value {
        &self.spec["config"][key]
    }

    /// `config.<key>` of a convolution as `[rows, columns]` (see [`conv_pair`]).
    fn conv_pair(&self, key: &str, default: usize) -> [usize; 2] {
        conv_pair(&self.name, key, &self.spec["config"][key], default)
    }

    fn count(&self, key: &str) -> usize {
        self.config(key)
            .as_u64()
            .unwrap_or_else(|| panic!("{}: config.{key} is not a count", self.name))
            as usize
    }

    /// The file's tensors plus `extra` (f32), as a new safetensors file.
    fn with_extra(&self, extra: &[(&str, ArrayD<f32>)]) -> Vec<u8> {
        let st = SafeTensors::deserialize(&self.bytes).unwrap();
        let mut owned: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = st
            .tensors()
            .into_iter()
            .map(|(n, v)| (n, v.dtype(), v.shape().to_vec(), v.data().to_vec()))
            .collect();
        for (n, a) in extra {
            owned.push((
                n.to_string(),
                Dtype::F32,
                a.shape().to_vec(),
                a.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ));
        }
        // A PyTorch BatchNorm2d state dict also holds an int64 counter.
        owned.push((
            "param.bn.num_batches_tracked".into(),
            Dtype::I64,
            vec![],
            0i64.to_le_bytes().to_vec(),
        ));
        let views: Vec<(String, TensorView)> = owned
            .iter()
            .map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
            .collect();
        safetensors::serialize(views, None::<HashMap<String, String>>).unwrap()
    }
}

/// A convolution setting as PyTorch's `nn.Conv2d` takes it: an integer (both
/// dimensions) or a pair `[rows, columns]`; `default` when absent.
fn conv_pair(case: &str, key: &str, v: &Value, default: usize) -> [usize; 2] {
    let n = |x: &Value| {
        x.as_u64()
            .unwrap_or_else(|| panic!("{case}: {key} = {v}: expected integers")) as usize
    };
    match v {
        Value::Null => [default, default],
        Value::Array(a) if a.len() == 2 => [n(&a[0]), n(&a[1])],
        other => [n(other), n(other)],
    }
}

/// `nn.Conv2d`'s padding: an integer or a pair (rows on top and bottom,
/// columns left and right), "valid" (none) or "same" (stride 1; PyTorch puts
/// the odd row or column at the bottom or right, as MATLAB's 'same' does).
fn conv_padding(case: &str, v: &Value) -> Padding {
    match v.as_str() {
        Some("valid") => Padding::uniform(0),
        Some("same") => Padding::Same,
        Some(other) => panic!("{case}: padding '{other}' is not one of PyTorch's"),
        None => {
            let [ph, pw] = conv_pair(case, "padding", v, 0);
            Padding::symmetric(ph, pw)
        }
    }
}

/// The convolution layer a spec's `conv` settings describe (`config` itself
/// for `conv2d_bn_relu`, `config.conv` for `video_net`), with `[kh, kw]`
/// filters (an integer or a pair in the spec) and `filters` of them.
fn conv_layer(case: &str, conv: &Value, kernel: [usize; 2], filters: usize) -> Convolution2d {
    let setting = |key: &str| conv_pair(case, key, &conv[key], 1);
    Convolution2d::new(kernel, filters)
        .stride(setting("stride"))
        .dilation_factor(setting("dilation"))
        .padding(conv_padding(case, &conv["padding"]))
        .name("conv")
}

/// `max|a − b| ≤ TOL · max(1, max|b|)`, or a panic naming the case.
fn assert_close(what: &str, got: &ArrayD<f32>, want: &ArrayD<f32>) -> f32 {
    assert_eq!(got.shape(), want.shape(), "{what}: shape");
    let err = got
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    let scale = want.iter().map(|b| b.abs()).fold(1.0f32, f32::max);
    assert!(
        err <= TOL * scale,
        "{what}: max|ours − torch| = {err:e} > {:e}",
        TOL * scale
    );
    err / scale
}

/// `[B, T, …]` ↔ `[T, B, …]`.
fn swap01(a: &ArrayD<f32>) -> ArrayD<f32> {
    let mut v = a.view();
    v.swap_axes(0, 1);
    v.as_standard_layout().into_owned()
}

/// Imports the fixture's state dict `bytes` into `graph` through `mapping`
/// and runs one forward of `x` in `mode`; returns the network's output.
fn import_and_run(
    fx: &Fixture,
    graph: &LayerGraph,
    bytes: &[u8],
    mapping: &TorchMapping,
    x: Activation,
    mode: Mode,
) -> Activation {
    let mut model = import_torch(graph, bytes, &fx.name, mapping)
        .unwrap_or_else(|e| panic!("{}: {e}", fx.name));
    model
        .network
        .forward(&[x], None, mode, false)
        .unwrap()
        .remove(0)
}

/// Checks `got` against the fixture's tensor `key` (PyTorch's output);
/// returns the line reporting the largest difference.
fn compared(fx: &Fixture, key: &str, got: &ArrayD<f32>) -> Vec<String> {
    let err = assert_close(&format!("{} {key}", fx.name), got, &fx.array(key));
    vec![format!("{} {key}: {err:.1e}", fx.name)]
}

/// Layer `l`'s initial state `[B, D·H]` (row-major) from PyTorch's `[L·D, B, H]`.
fn state_of(s0: &ArrayD<f32>, l: usize, dirs: usize) -> Vec<f32> {
    let b = s0.shape()[1];
    let mut v = Vec::new();
    for bi in 0..b {
        for d in 0..dirs {
            v.extend(s0.slice(s![l * dirs + d, bi, ..]).iter());
        }
    }
    v
}

/// A recurrent case: the stack imported with `@l` prefixes, run with the top
/// layer in `mode`; returns the top layer's output.
fn run_recurrent(fx: &Fixture, mode: OutputMode) -> ArrayD<f32> {
    let kind = fx.spec["layer"].as_str().unwrap();
    let (c, h) = (fx.count("input_size"), fx.count("hidden_size"));
    let layers = fx.config("num_layers").as_u64().unwrap_or(1) as usize;
    let bidirectional = fx
        .config("bidirectional")
        .as_bool()
        .unwrap_or(kind.starts_with("bi"));
    let dirs = if bidirectional { 2 } else { 1 };
    let initial = fx.config("has_initial_state").as_bool().unwrap_or(false);
    let (h0, c0) = if initial {
        (
            Some(fx.array("h0")),
            (!kind.ends_with("gru")).then(|| fx.array("c0")),
        )
    } else {
        (None, None)
    };
    // PyTorch's proj_size (lstm_proj cases): nn.LSTM's weight_hr_l{k}.
    let proj = fx.config("proj_size").as_u64().filter(|&p| p > 0);
    let mut array: Vec<Layer> = vec![SequenceInput::new(c).name("in").into()];
    let mut pairs = Vec::new();
    let names: Vec<String> = (0..layers).map(|l| format!("rnn{l}")).collect();
    for (l, name) in names.iter().enumerate() {
        let m = if l + 1 == layers {
            mode
        } else {
            OutputMode::Sequence
        };
        let layer: Layer = match (kind, bidirectional) {
            ("gru", _) => {
                let mut g = Gru::new(h)
                    .reset_gate_mode(ResetGateMode::RecurrentBiasAfterMultiplication)
                    .output_mode(m)
                    .name(name);
                if let Some(h0) = &h0 {
                    g = g.hidden_state(state_of(h0, l, dirs));
                }
                g.into()
            }
            ("bigru", _) => {
                let mut g = BiGru::new(h)
                    .reset_gate_mode(ResetGateMode::RecurrentBiasAfterMultiplication)
                    .output_mode(m)
                    .name(name);
                if let Some(h0) = &h0 {
                    g = g.hidden_state(state_of(h0, l, dirs));
                }
                g.into()
            }
            (_, true) => {
                let mut g = BiLstm::new(h).output_mode(m).name(name);
                if let Some(p) = proj {
                    g = g.projection_size(p as usize);
                }
                if let (Some(h0), Some(c0)) = (&h0, &c0) {
                    g = g
                        .hidden_state(state_of(h0, l, dirs))
                        .cell_state(state_of(c0, l, dirs));
                }
                g.into()
            }
            _ => {
                let mut g = Lstm::new(h).output_mode(m).name(name);
                if let Some(p) = proj {
                    g = g.projection_size(p as usize);
                }
                if let (Some(h0), Some(c0)) = (&h0, &c0) {
                    g = g
                        .hidden_state(state_of(h0, l, dirs))
                        .cell_state(state_of(c0, l, dirs));
                }
                g.into()
            }
        };
        array.push(layer);
        pairs.push((name.as_str(), format!("param@{l}")));
    }
    array.push(RegressionOutput::new().name("out").into());
    let graph = LayerGraph::from_layers(array).unwrap();
    let mapping = TorchMapping::new(pairs.iter().map(|(n, p)| (*n, p.as_str())));
    let mut model = import_torch(&graph, &fx.bytes, &fx.name, &mapping)
        .unwrap_or_else(|e| panic!("{}: {e}", fx.name));

    let input = fx.array("input");
    let (b, t) = (input.shape()[0], input.shape()[1]);
    let lengths: Vec<usize> = fx.array("lengths").iter().map(|&v| v as usize).collect();
    let seq = SeqLengths::new(lengths, t, PaddingDirection::Right).unwrap();
    let x = Activation::sequence(swap01(&input), Some(seq)).unwrap();
    let y = model
        .network
        .forward(&[x], None, Mode::Inference, false)
        .unwrap()
        .remove(0);
    assert_eq!(y.batch(), b);
    y.data.to_owned()
}

fn check_recurrent(fx: &Fixture) -> Vec<String> {
    let mut report = Vec::new();
    let seq = swap01(&run_recurrent(fx, OutputMode::Sequence));
    let err = assert_close(&format!("{} output", fx.name), &seq, &fx.array("output"));
    report.push(format!("{} output: {err:.1e}", fx.name));
    let last = run_recurrent(fx, OutputMode::Last);
    let err = assert_close(
        &format!("{} output_last", fx.name),
        &last,
        &fx.array("output_last"),
    );
    report.push(format!("{} output_last: {err:.1e}", fx.name));
    report
}

/// The video network of the fixture, imported, run with batch statistics
/// (the fixture's batch normalization runs in training mode).
fn check_video(fx: &Fixture) -> Vec<String> {
    let frame: Vec<usize> = fx
        .config("frame")
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    let [c, hh, ww] = frame[..] else {
        panic!("frame")
    };
    let conv = &fx.spec["config"]["conv"];
    let kernel = conv_pair(&fx.name, "conv.kernel", &conv["kernel"], 1);
    let filters = conv["filters"].as_u64().unwrap() as usize;
    let hidden = fx.count("lstm_hidden");
    let classes = fx.count("classes");
    let layers: Vec<Layer> = vec![
        SequenceInput::image([hh, ww, c]).name("in").into(),
        SequenceFolding::new().name("fold").into(),
        conv_layer(&fx.name, conv, kernel, filters).into(),
        BatchNormalization::new().epsilon(1e-5).name("bn").into(),
        Relu::new().name("relu").into(),
        SequenceUnfolding::new().name("unfold").into(),
        Flatten::new().name("flatten").into(),
        Lstm::new(hidden)
            .output_mode(OutputMode::Last)
            .name("lstm")
            .into(),
        FullyConnected::new(classes).name("fc").into(),
        Softmax::new().name("softmax").into(),
        ClassificationOutput::new().name("classoutput").into(),
    ];
    let mut graph = LayerGraph::from_layers(layers).unwrap();
    graph
        .connect("fold/miniBatchSize", "unfold/miniBatchSize")
        .unwrap();
    // A real state dict has the running statistics (here a fresh module's).
    let sd = fx.with_extra(&[
        ("param.bn.running_mean", ArrayD::zeros(IxDyn(&[filters]))),
        ("param.bn.running_var", ArrayD::ones(IxDyn(&[filters]))),
    ]);
    let mapping = TorchMapping::new([
        ("conv", "param.conv"),
        ("bn", "param.bn"),
        ("lstm", "param.lstm"),
        ("fc", "param.fc"),
    ]);
    let mut model = import_torch(&graph, &sd, &fx.name, &mapping)
        .unwrap_or_else(|e| panic!("{}: {e}", fx.name));
    assert_eq!(model.classes, Vec::<String>::new());
    let input = fx.array("input"); // [B, T, C, H, W]
    let x = Activation::image_sequence(swap01(&input), None).unwrap();
    let probs = model
        .network
        .forward(&[x], None, Mode::Training, false)
        .unwrap()
        .remove(0);
    compared(fx, "probs", &probs.data.to_owned())
}

/// Convolution → batch normalization (batch statistics) → ReLU on images,
/// as a one-step image sequence through folding.
fn check_conv(fx: &Fixture) -> Vec<String> {
    let input = fx.array("input"); // [N, C, H, W]
    let w = fx.array("param.conv.weight"); // [F, C, kh, kw]
    let (n, c, h, wd) = (
        input.shape()[0],
        input.shape()[1],
        input.shape()[2],
        input.shape()[3],
    );
    let (f, kh, kw) = (w.shape()[0], w.shape()[2], w.shape()[3]);
    if !fx.config("kernel").is_null() {
        assert_eq!(
            fx.conv_pair("kernel", 1),
            [kh, kw],
            "{}: config.kernel and the weights' shape",
            fx.name
        );
    }
    let layers: Vec<Layer> = vec![
        SequenceInput::image([h, wd, c]).name("in").into(),
        SequenceFolding::new().name("fold").into(),
        conv_layer(&fx.name, &fx.spec["config"], [kh, kw], f).into(),
        BatchNormalization::new().epsilon(1e-5).name("bn").into(),
        Relu::new().name("relu").into(),
        SequenceUnfolding::new().name("unfold").into(),
        Flatten::new().name("flatten").into(),
        RegressionOutput::new().name("out").into(),
    ];
    let mut graph = LayerGraph::from_layers(layers).unwrap();
    graph
        .connect("fold/miniBatchSize", "unfold/miniBatchSize")
        .unwrap();
    let sd = fx.with_extra(&[
        ("param.bn.running_mean", ArrayD::zeros(IxDyn(&[f]))),
        ("param.bn.running_var", ArrayD::ones(IxDyn(&[f]))),
    ]);
    let mapping = TorchMapping::new([("conv", "param.conv"), ("bn", "param.bn")]);
    let x = Activation::image_sequence(input.insert_axis(Axis(0)), None).unwrap();
    let y = import_and_run(fx, &graph, &sd, &mapping, x, Mode::Training);
    // [1, N, F·H·W] in (F, H, W) order → [N, F, H, W].
    let want = fx.array("output");
    let got = y
        .data
        .to_owned()
        .index_axis_move(Axis(0), 0)
        .into_shape_with_order(want.shape())
        .unwrap();
    assert_eq!(got.shape()[0], n);
    let err = assert_close(&format!("{} output", fx.name), &got, &want);
    vec![format!("{} output: {err:.1e}", fx.name)]
}

/// `nn.Conv1d` as a `conv1d` config (or a `c1`/`c2` block of `cnn1d_net`)
/// describes it: `kernel`, `out_channels` or `filters`, `stride` and
/// `dilation` (1 when absent), `padding` "same", "causal", "valid" or an integer.
fn conv1d_layer(case: &str, v: &Value, name: &str) -> Convolution1d {
    let n = |key: &str| v[key].as_u64().map(|n| n as usize);
    let padding = match &v["padding"] {
        Value::String(s) if s == "same" => Padding1d::Same,
        Value::String(s) if s == "causal" => Padding1d::Causal,
        Value::String(s) if s == "valid" => Padding1d::default(),
        p => Padding1d::Explicit(
            [p.as_u64().unwrap_or_else(|| panic!("{case}: padding {p}")) as usize; 2],
        ),
    };
    let filters = n("out_channels")
        .or(n("filters"))
        .unwrap_or_else(|| panic!("{case}: filters"));
    Convolution1d::new(
        n("kernel").unwrap_or_else(|| panic!("{case}: kernel")),
        filters,
    )
    .stride(n("stride").unwrap_or(1))
    .dilation_factor(n("dilation").unwrap_or(1))
    .padding(padding)
    .name(name)
}

/// The fixture's `[T, B, C]` input with its (right-padded) lengths.
fn sequence_input(fx: &Fixture) -> Activation {
    let input = fx.array("input");
    let t = input.shape()[1];
    let lengths: Vec<usize> = fx.array("lengths").iter().map(|&v| v as usize).collect();
    let seq = SeqLengths::new(lengths, t, PaddingDirection::Right).unwrap();
    Activation::sequence(swap01(&input), Some(seq)).unwrap()
}

/// An `nn.Conv1d` state dict (`param.weight`, `param.bias`) imported into a
/// `Convolution1d`; its output at every step (zero at padded ones).
fn check_conv1d(fx: &Fixture) -> Vec<String> {
    let layers: Vec<Layer> = vec![
        SequenceInput::new(fx.count("in_channels"))
            .name("in")
            .into(),
        conv1d_layer(&fx.name, &fx.spec["config"], "conv").into(),
        RegressionOutput::new().name("out").into(),
    ];
    let graph = LayerGraph::from_layers(layers).unwrap();
    let mapping = TorchMapping::new([("conv", "param")]);
    let y = import_and_run(
        fx,
        &graph,
        &fx.bytes,
        &mapping,
        sequence_input(fx),
        Mode::Inference,
    );
    compared(fx, "output", &swap01(&y.data.to_owned()))
}

/// The `cnn1d_net` state dict (`nn.Conv1d`, `nn.BatchNorm1d` with its running
/// statistics and counter, `nn.Conv1d`, `nn.Linear`) imported into
/// conv1d → batchnorm → relu → conv1d → relu → global average pooling → fc →
/// softmax; `probs` with batch statistics, as the fixture was made.
fn check_cnn1d_net(fx: &Fixture) -> Vec<String> {
    let cfg = &fx.spec["config"];
    let layers: Vec<Layer> = vec![
        SequenceInput::new(fx.count("in_channels"))
            .name("in")
            .into(),
        conv1d_layer(&fx.name, &cfg["c1"], "c1").into(),
        BatchNormalization::new().epsilon(1e-5).name("bn").into(),
        Relu::new().name("relu1").into(),
        conv1d_layer(&fx.name, &cfg["c2"], "c2").into(),
        Relu::new().name("relu2").into(),
        GlobalAveragePooling1d::new().name("gap").into(),
        FullyConnected::new(fx.count("classes")).name("fc").into(),
        Softmax::new().name("softmax").into(),
        ClassificationOutput::new().name("classoutput").into(),
    ];
    let graph = LayerGraph::from_layers(layers).unwrap();
    let c1 = fx.array("param.bn.weight").len();
    let sd = fx.with_extra(&[
        ("param.bn.running_mean", ArrayD::zeros(IxDyn(&[c1]))),
        ("param.bn.running_var", ArrayD::ones(IxDyn(&[c1]))),
    ]);
    let mapping = TorchMapping::new([
        ("c1", "param.c1"),
        ("bn", "param.bn"),
        ("c2", "param.c2"),
        ("fc", "param.fc"),
    ]);
    let probs = import_and_run(
        fx,
        &graph,
        &sd,
        &mapping,
        sequence_input(fx),
        Mode::Training,
    );
    compared(fx, "probs", &probs.data.to_owned())
}

#[test]
fn imported_pytorch_parameters_reproduce_the_fixtures_outputs() {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    paths.sort();
    let mut kinds = std::collections::BTreeSet::new();
    for path in &paths {
        let fx = Fixture::load(path);
        let kind = fx.spec["layer"].as_str().unwrap_or_default().to_string();
        let report = match kind.as_str() {
            "lstm" | "bilstm" | "gru" | "bigru" | "lstm_proj" => check_recurrent(&fx),
            "video_net" => check_video(&fx),
            "conv2d_bn_relu" => check_conv(&fx),
            "conv1d" => check_conv1d(&fx),
            "cnn1d_net" => check_cnn1d_net(&fx),
            "layernorm" | "embedding" | "self_attention" => check_attention_family(&fx),
            "transformer_block" => check_transformer_block(&fx),
            // No parameters to import.
            "pool1d" | "global_pool1d" => Vec::new(),
            other => panic!("{}: unknown fixture layer '{other}'", fx.name),
        };
        for line in report {
            eprintln!("{line} (scaled error)");
        }
        kinds.insert(kind);
    }
    for k in [
        "lstm",
        "bilstm",
        "gru",
        "bigru",
        "lstm_proj",
        "video_net",
        "conv1d",
        "cnn1d_net",
    ] {
        assert!(
            kinds.contains(k),
            "no '{k}' fixture was found in {}",
            fixtures().display()
        );
    }
}

/// `nn.MultiheadAttention`'s tensors under `prefix` made from the
/// fixture's separate projections `param.<stem>.query_weight`, …: the packed
/// `in_proj_weight`/`in_proj_bias` (query, key, value rows stacked) and `out_proj.*`.
fn packed_attention(fx: &Fixture, stem: &str, prefix: &str) -> Vec<(String, ArrayD<f32>)> {
    let p = |n: &str| fx.array(&format!("param.{stem}{n}"));
    let stack = |names: [&str; 3]| {
        let parts: Vec<ArrayD<f32>> = names.iter().map(|n| p(n)).collect();
        let views: Vec<_> = parts.iter().map(|a| a.view()).collect();
        ndarray::concatenate(Axis(0), &views).unwrap()
    };
    vec![
        (
            format!("{prefix}.in_proj_weight"),
            stack(["query_weight", "key_weight", "value_weight"]),
        ),
        (
            format!("{prefix}.in_proj_bias"),
            stack(["query_bias", "key_bias", "value_bias"]),
        ),
        (format!("{prefix}.out_proj.weight"), p("output_weight")),
        (format!("{prefix}.out_proj.bias"), p("output_bias")),
    ]
}

/// The `transformer` template with one block, every layer imported from the
/// fixture's state dict (the attention from a packed `nn.MultiheadAttention`);
/// `probs` of the right-padded input.
fn check_transformer_block(fx: &Fixture) -> Vec<String> {
    use seqnet_core::templates::transformer::{graph, TransformerSizes};
    let sizes = TransformerSizes {
        model_dim: Some(fx.count("model_dim")),
        heads: Some(fx.count("num_heads")),
        blocks: Some(1),
        ffn_dim: Some(fx.count("ffn_dim")),
        max_position: Some(fx.count("max_position")),
    }
    .resolve()
    .unwrap();
    let input = SequenceInput::new(fx.count("input_channels")).name("in");
    let graph = graph(input, &sizes, fx.count("classes"), false).unwrap();
    let extra = packed_attention(fx, "attn.", "mha");
    let extra: Vec<(&str, ArrayD<f32>)> =
        extra.iter().map(|(n, a)| (n.as_str(), a.clone())).collect();
    let bytes = fx.with_extra(&extra);
    let mapping = TorchMapping::new([
        ("fc_in", "param.fc_in"),
        ("pos", "param.pos"),
        ("ln1_1", "param.ln1"),
        ("attn_1", "mha"),
        ("ln2_1", "param.ln2"),
        ("fc1_1", "param.fc1"),
        ("fc2_1", "param.fc2"),
        ("fc", "param.fc_out"),
    ]);
    let probs = import_and_run(
        fx,
        &graph,
        &bytes,
        &mapping,
        sequence_input(fx),
        Mode::Inference,
    );
    compared(fx, "probs", &probs.data.to_owned())
}

/// One layer of the attention family imported from a PyTorch state dict and
/// run on the fixture's input: `nn.LayerNorm` (`weight`, `bias`),
/// `nn.Embedding` (`weight`, 0-based indices), and `nn.MultiheadAttention`,
/// whose packed `in_proj_weight`/`in_proj_bias` (query, key, value rows
/// stacked) and `out_proj.*` are made here from the fixture's separate
/// projections.
fn check_attention_family(fx: &Fixture) -> Vec<String> {
    let cfg = &fx.spec["config"];
    let (layer, channels, bytes, prefix): (Layer, usize, Vec<u8>, &str) =
        match fx.spec["layer"].as_str().unwrap_or_default() {
            "layernorm" => (
                LayerNormalization::new().name("layer").into(),
                fx.count("channels"),
                fx.bytes.clone(),
                "param",
            ),
            "embedding" => (
                WordEmbedding::new(fx.count("dim"), fx.count("num_words"))
                    .index_base(cfg["index_base"].as_u64().unwrap_or(1) as usize)
                    .name("layer")
                    .into(),
                1,
                fx.bytes.clone(),
                "param",
            ),
            _ => {
                let extra = packed_attention(fx, "", "mha");
                let extra: Vec<(&str, ArrayD<f32>)> =
                    extra.iter().map(|(n, a)| (n.as_str(), a.clone())).collect();
                let mut layer = SelfAttention::new(fx.count("num_heads"), fx.count("key_channels"))
                    .num_value_channels(fx.count("value_channels"))
                    .output_size(fx.count("output_size"))
                    .name("layer");
                if cfg["causal"].as_bool().unwrap_or(false) {
                    layer = layer.attention_mask(AttentionMask::Causal);
                }
                (
                    layer.into(),
                    fx.count("input_channels"),
                    fx.with_extra(&extra),
                    "mha",
                )
            }
        };
    let graph = LayerGraph::from_layers(vec![
        SequenceInput::new(channels).name("in").into(),
        layer,
        RegressionOutput::new().name("out").into(),
    ])
    .unwrap();
    let mapping = TorchMapping::new([("layer", prefix)]);
    let mut input = fx.array("input");
    if input.ndim() == 2 {
        input = input.insert_axis(Axis(2));
    }
    let t = input.shape()[1];
    let lengths: Vec<usize> = fx.array("lengths").iter().map(|&v| v as usize).collect();
    let seq = SeqLengths::new(lengths, t, PaddingDirection::Right).unwrap();
    let x = Activation::sequence(swap01(&input), Some(seq)).unwrap();
    let y = import_and_run(fx, &graph, &bytes, &mapping, x, Mode::Inference);
    compared(fx, "output", &swap01(&y.data.to_owned()))
}

/// The fixture of a one-layer LSTM with a graph and a mapping that fit it.
fn lstm_case() -> (Fixture, LayerGraph) {
    let fx = Fixture::load(&fixtures().join("lstm_fixed.safetensors"));
    let graph = LayerGraph::from_layers(vec![
        SequenceInput::new(fx.count("input_size")).name("in").into(),
        Lstm::new(fx.count("hidden_size")).name("lstm").into(),
        FullyConnected::new(2).name("fc").into(),
        RegressionOutput::new().name("out").into(),
    ])
    .unwrap();
    (fx, graph)
}

fn import_error(graph: &LayerGraph, bytes: &[u8], pairs: &[(&str, &str)]) -> String {
    match import_torch(
        graph,
        bytes,
        "weights.safetensors",
        &TorchMapping::new(pairs.iter().copied()),
    ) {
        Ok(_) => panic!("importing with {pairs:?} should fail"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn every_mismatch_names_the_tensor_and_the_layer() {
    let (fx, graph) = lstm_case();
    let fc_w = ArrayD::<f32>::zeros(IxDyn(&[2, fx.count("hidden_size")]));
    let good = fx.with_extra(&[
        ("param.fc.weight", fc_w.clone()),
        ("param.fc.bias", ArrayD::zeros(IxDyn(&[2]))),
    ]);
    // It imports when everything fits (fc's tensors added, the LSTM's under "param").
    import_torch(
        &graph,
        &good,
        "w",
        &TorchMapping::new([("lstm", "param"), ("fc", "param.fc")]),
    )
    .unwrap();

    // A missing tensor: the prefix has none of the LSTM's parameters.
    let e = import_error(&graph, &good, &[("lstm", "param.lstm"), ("fc", "param.fc")]);
    assert!(
        e.contains("layer 'lstm'") && e.contains("'param.lstm.weight_ih_l0' is missing"),
        "{e}"
    );
    // A wrong shape: fc's weight has the wrong number of columns.
    let bad = fx.with_extra(&[
        ("param.fc.weight", ArrayD::zeros(IxDyn(&[2, 3]))),
        ("param.fc.bias", ArrayD::zeros(IxDyn(&[2]))),
    ]);
    let e = import_error(&graph, &bad, &[("lstm", "param"), ("fc", "param.fc")]);
    assert!(
        e.contains("layer 'fc'") && e.contains("'param.fc.weight' has shape [2, 3]"),
        "{e}"
    );
    // A layer with learnables left out of the mapping.
    let e = import_error(&graph, &good, &[("lstm", "param")]);
    assert!(
        e.contains("layer 'fc'") && e.contains("no state-dict prefix"),
        "{e}"
    );
    // A mapped layer that is not in the graph.
    let e = import_error(
        &graph,
        &good,
        &[("lstm", "param"), ("fc", "param.fc"), ("gru", "x")],
    );
    assert!(e.contains("layer 'gru'"), "{e}");
    // A tensor under a mapped prefix that no layer takes.
    let extra = fx.with_extra(&[
        ("param.fc.weight", fc_w),
        ("param.fc.bias", ArrayD::zeros(IxDyn(&[2]))),
        ("param.weight_ih_l1", ArrayD::zeros(IxDyn(&[4]))),
    ]);
    let e = import_error(&graph, &extra, &[("lstm", "param"), ("fc", "param.fc")]);
    assert!(
        e.contains("'param.weight_ih_l1'") && e.contains("no layer uses it"),
        "{e}"
    );
    // '@k' on a layer that is not recurrent.
    let e = import_error(&graph, &good, &[("lstm", "param"), ("fc", "param.fc@1")]);
    assert!(e.contains("layer 'fc'") && e.contains("@k"), "{e}");
    // Not a safetensors file at all.
    let e = import_error(&graph, b"{not safetensors", &[("lstm", "param")]);
    assert!(e.starts_with("weights.safetensors:"), "{e}");
}

#[test]
fn a_gru_in_a_mode_pytorch_lacks_is_refused_with_the_mode() {
    let fx = Fixture::load(&fixtures().join("gru_varlen.safetensors"));
    let (c, h) = (fx.count("input_size"), fx.count("hidden_size"));
    for mode in [
        ResetGateMode::AfterMultiplication,
        ResetGateMode::BeforeMultiplication,
    ] {
        let graph = LayerGraph::from_layers(vec![
            SequenceInput::new(c).name("in").into(),
            Gru::new(h).reset_gate_mode(mode).name("gru").into(),
            RegressionOutput::new().name("out").into(),
        ])
        .unwrap();
        let e = import_error(&graph, &fx.bytes, &[("gru", "param")]);
        assert!(
            e.contains("layer 'gru'")
                && e.contains(mode.label())
                && e.contains("recurrent-bias-after-multiplication"),
            "{e}"
        );
    }
}

#[test]
fn mapping_json_errors_name_the_file_and_line() {
    let m =
        TorchMapping::from_json("{\"lstm\": \"lstm@0\",\n \"fc\": \"fc\"}", "map.json").unwrap();
    assert_eq!(m.layers["lstm"], "lstm@0");
    let e = TorchMapping::from_json("{\"lstm\": \"lstm\",\n \"fc\": 3}", "map.json").unwrap_err();
    assert!(e.to_string().starts_with("map.json:2:"), "{e}");
}
