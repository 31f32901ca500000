//! Parity of the recurrent layers with PyTorch (fixture format and tolerances:
//! `tests/fixtures/torch/README.md`).
//!
//! A recurrent case this module cannot handle (unknown option, missing or unused
//! tensor) fails.
//!
//! Each case builds `num_layers` stacked layers (layer `l + 1` reads layer `l`'s
//! output sequence) from `config`, loads PyTorch's parameters, runs the stack in
//! `Sequence` mode and, for the top layer, also a copy in `Last` mode on the same
//! input. The loss `sum(output·grad_output) + sum(output_last·grad_output_last)`
//! is backpropagated through both paths (their gradients add up). Checked:
//! `output` (real steps; ours must be exactly zero at padded steps),
//! `output_last`, `hn`, `cn`, `grad.input` and every `grad.<param>`.
//! Every right-padded case is also run re-padded on the left (each sequence moved
//! to the end, padded input steps set to 7.5), which must give the same values.
//! Tolerance: `max|a − b| ≤ 1e-4 · max(1, max|b|)` for forward values,
//! `≤ 1e-3 · max(1, max|b|)` for gradients.

use ndarray::{concatenate, s, ArrayD, Axis, Ix2, IxDyn};
use rand::rngs::StdRng;
use rand::SeedableRng;
use safetensors::{Dtype, SafeTensors};
use seqnet_core::layers::{
    BiGru, BiLstm, Gru, GruKernel, Lstm, LstmKernel, OutputMode, RecurrentState, ResetGateMode,
};
use seqnet_core::{
    ActShape, Activation, ForwardCtx, LayerKernel, Mode, PaddingDirection, SeqLengths,
};
use serde_json::Value;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

const FORWARD_TOL: f32 = 1e-4;
const GRAD_TOL: f32 = 1e-3;
/// The `spec.layer` values this module checks.
pub const RECURRENT: [&str; 5] = ["lstm", "bilstm", "gru", "bigru", "lstm_proj"];
const LOSS_BOTH: &str = "sum(output*grad_output) + sum(output_last*grad_output_last)";
const LOSS_SEQ: &str = "sum(output*grad_output)";

type R<T> = Result<T, String>;

/// The tensors of one file as f64 values, recording which ones the test used.
struct Tensors {
    map: BTreeMap<String, (Vec<usize>, Vec<f64>)>,
    used: RefCell<BTreeSet<String>>,
}

impl Tensors {
    fn load(st: &SafeTensors) -> R<Self> {
        let mut map = BTreeMap::new();
        for (name, view) in st.tensors() {
            let bytes = view.data();
            let values: Vec<f64> = match view.dtype() {
                Dtype::F32 => bytes
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes(b.try_into().unwrap()) as f64)
                    .collect(),
                Dtype::F64 => bytes
                    .chunks_exact(8)
                    .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
                    .collect(),
                Dtype::I64 => bytes
                    .chunks_exact(8)
                    .map(|b| i64::from_le_bytes(b.try_into().unwrap()) as f64)
                    .collect(),
                Dtype::I32 => bytes
                    .chunks_exact(4)
                    .map(|b| i32::from_le_bytes(b.try_into().unwrap()) as f64)
                    .collect(),
                other => return Err(format!("tensor '{name}' has unsupported dtype {other:?}")),
            };
            map.insert(name, (view.shape().to_vec(), values));
        }
        Ok(Tensors {
            map,
            used: RefCell::new(BTreeSet::new()),
        })
    }

    fn has(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }

    fn get(&self, name: &str) -> R<ArrayD<f32>> {
        let (shape, values) = self
            .map
            .get(name)
            .ok_or_else(|| format!("missing tensor '{name}'"))?;
        self.used.borrow_mut().insert(name.to_string());
        ArrayD::from_shape_vec(IxDyn(shape), values.iter().map(|&v| v as f32).collect())
            .map_err(|e| format!("tensor '{name}': {e}"))
    }

    fn get_shaped(&self, name: &str, shape: &[usize]) -> R<ArrayD<f32>> {
        let a = self.get(name)?;
        if a.shape() != shape {
            return Err(format!(
                "tensor '{name}' has shape {:?}, expected {shape:?}",
                a.shape()
            ));
        }
        Ok(a)
    }

    /// The same case with each sequence moved to the end of the padded length
    /// (left padding), padded input steps filled with `fill`: PyTorch's values
    /// must hold unchanged, shifted with their sequences.
    fn left_padded(&self, fill: f64) -> R<Self> {
        let (_, lengths) = self.map.get("lengths").ok_or("missing tensor 'lengths'")?;
        let mut map = self.map.clone();
        for name in ["input", "output", "grad_output", "grad.input"] {
            let Some((shape, values)) = map.get_mut(name) else {
                continue;
            };
            let [b, t, c] = shape[..] else {
                return Err(format!("'{name}' is not [B, T, C]"));
            };
            let old = values.clone();
            for bi in 0..b {
                let len = lengths[bi] as usize;
                for ti in 0..t {
                    let src = (ti + len).checked_sub(t);
                    for ci in 0..c {
                        values[(bi * t + ti) * c + ci] = match src {
                            Some(k) => old[(bi * t + k) * c + ci],
                            None if name == "input" => fill,
                            None => 0.0,
                        };
                    }
                }
            }
        }
        Ok(Tensors {
            map,
            used: RefCell::new(BTreeSet::new()),
        })
    }

    fn unused(&self) -> Vec<String> {
        let used = self.used.borrow();
        self.map
            .keys()
            .filter(|k| !used.contains(*k))
            .cloned()
            .collect()
    }
}

/// The options of a recurrent case.
#[derive(Debug)]
struct Config {
    layer: String,
    input_size: usize,
    hidden: usize,
    layers: usize,
    bidirectional: bool,
    batch: Option<usize>,
    time: Option<usize>,
    initial_state: bool,
    padding: PaddingDirection,
    has_bias: bool,
    loss_last: bool,
    /// PyTorch's `proj_size` (`lstm_proj` cases).
    proj: Option<usize>,
}

impl Config {
    fn parse(spec: &Value) -> R<Self> {
        let layer = spec["layer"]
            .as_str()
            .ok_or("spec has no 'layer'")?
            .to_string();
        let cfg = spec["config"]
            .as_object()
            .ok_or("spec has no 'config' object")?;
        let usize_of = |k: &str| -> R<Option<usize>> {
            match cfg.get(k) {
                None => Ok(None),
                Some(v) => v
                    .as_u64()
                    .map(|n| Some(n as usize))
                    .ok_or_else(|| format!("config '{k}' is not a count: {v}")),
            }
        };
        let bool_of = |k: &str, default: bool| -> R<bool> {
            match cfg.get(k) {
                None => Ok(default),
                Some(v) => v
                    .as_bool()
                    .ok_or_else(|| format!("config '{k}' is not a boolean: {v}")),
            }
        };
        for (k, v) in cfg {
            match k.as_str() {
                "input_size" | "hidden_size" | "num_layers" | "bidirectional" | "batch"
                | "time" | "has_initial_state" | "padding" | "padding_value" | "bias" => {}
                "batch_first" if v.as_bool() == Some(true) => {}
                "dropout" if v.as_f64() == Some(0.0) => {}
                "proj_size" if v.as_u64().is_some() => {}
                _ => return Err(format!("unsupported config option '{k}': {v}")),
            }
        }
        let padding = match cfg.get("padding").map(|v| v.as_str()) {
            None | Some(Some("right")) => PaddingDirection::Right,
            Some(Some("left")) => PaddingDirection::Left,
            Some(_) => return Err(format!("unsupported padding {}", cfg["padding"])),
        };
        if let Some(v) = cfg.get("padding_value") {
            v.as_f64()
                .ok_or_else(|| format!("padding_value is not a number: {v}"))?;
        }
        let loss_last = match spec["loss"].as_str() {
            Some(LOSS_BOTH) => true,
            Some(LOSS_SEQ) => false,
            other => return Err(format!("unsupported loss {other:?}")),
        };
        let bidirectional = bool_of("bidirectional", layer.starts_with("bi"))?;
        match (layer.as_str(), bidirectional) {
            ("bilstm" | "bigru", false) => {
                return Err(format!("layer '{layer}' with bidirectional false"))
            }
            ("gru", true) => return Err("a bidirectional GRU is spec.layer 'bigru'".into()),
            _ => {}
        }
        let proj = usize_of("proj_size")?.filter(|&p| p > 0);
        if proj.is_some() != (layer == "lstm_proj") {
            return Err(format!("layer '{layer}' with proj_size {proj:?}"));
        }
        Ok(Config {
            proj,
            input_size: usize_of("input_size")?.ok_or("config has no input_size")?,
            hidden: usize_of("hidden_size")?.ok_or("config has no hidden_size")?,
            layers: usize_of("num_layers")?.unwrap_or(1),
            bidirectional,
            batch: usize_of("batch")?,
            time: usize_of("time")?,
            initial_state: bool_of("has_initial_state", false)?,
            padding,
            has_bias: bool_of("bias", true)?,
            loss_last,
            layer,
        })
    }

    fn dirs(&self) -> usize {
        if self.bidirectional {
            2
        } else {
            1
        }
    }

    /// Each direction's hidden-state (and output) size: `P` or `H`.
    fn out(&self) -> usize {
        self.proj.unwrap_or(self.hidden)
    }

    fn is_gru(&self) -> bool {
        self.layer == "gru" || self.layer == "bigru"
    }
}

/// One layer of the stack, as its concrete kernel.
enum Rec {
    Lstm(Box<LstmKernel>),
    Gru(Box<GruKernel>),
}

impl Rec {
    fn kernel(&mut self) -> &mut dyn LayerKernel {
        match self {
            Rec::Lstm(k) => k.as_mut(),
            Rec::Gru(k) => k.as_mut(),
        }
    }
    fn final_state(&self) -> Option<&RecurrentState> {
        match self {
            Rec::Lstm(k) => k.final_state(),
            Rec::Gru(k) => k.final_state(),
        }
    }
    fn grad(&mut self, name: &str) -> R<ArrayD<f32>> {
        self.kernel()
            .learnables()
            .into_iter()
            .find(|p| p.name == name)
            .map(|p| p.grad.clone())
            .ok_or_else(|| format!("no learnable '{name}'"))
    }
    fn set(&mut self, name: &str, value: ArrayD<f32>) -> R<()> {
        let p = self
            .kernel()
            .learnables_mut()
            .into_iter()
            .find(|p| p.name == name)
            .ok_or_else(|| format!("no learnable '{name}'"))?;
        if p.value.shape() != value.shape() {
            return Err(format!(
                "learnable '{name}' has shape {:?}, PyTorch's parameters give {:?}",
                p.value.shape(),
                value.shape()
            ));
        }
        p.value = (value).into();
        Ok(())
    }
}

/// PyTorch's name suffix of layer `l`, direction `d`.
fn suffix(l: usize, d: usize) -> String {
    format!("l{l}{}", if d == 1 { "_reverse" } else { "" })
}

/// Rows of `name` for every direction of layer `l`, stacked (forward first).
fn stacked(ts: &Tensors, cfg: &Config, l: usize, name: &str) -> R<ArrayD<f32>> {
    let parts = (0..cfg.dirs())
        .map(|d| ts.get(&format!("param.{name}_{}", suffix(l, d))))
        .collect::<R<Vec<_>>>()?;
    let views: Vec<_> = parts.iter().map(|p| p.view()).collect();
    concatenate(Axis(0), &views).map_err(|e| format!("{name}: {e}"))
}

/// A bias of layer `l`, or zeros when the model has no biases.
fn bias(ts: &Tensors, cfg: &Config, l: usize, name: &str, len: usize) -> R<ArrayD<f32>> {
    if cfg.has_bias {
        stacked(ts, cfg, l, name)
    } else {
        Ok(ArrayD::zeros(vec![len]))
    }
}

/// Layer `l`'s initial state `[B, D·H]` from `[L·D, B, H]`, as config values.
fn state_of(s0: &ArrayD<f32>, cfg: &Config, l: usize) -> Vec<f32> {
    let (b, h, nd) = (s0.shape()[1], s0.shape()[2], cfg.dirs());
    let mut v = Vec::with_capacity(b * nd * h);
    for bi in 0..b {
        for d in 0..nd {
            v.extend(s0.slice(s![l * nd + d, bi, ..]).iter());
        }
    }
    v
}

fn build(
    ts: &Tensors,
    cfg: &Config,
    l: usize,
    mode: OutputMode,
    h0: Option<&ArrayD<f32>>,
    c0: Option<&ArrayD<f32>>,
) -> R<Rec> {
    let (h, nd) = (cfg.hidden, cfg.dirs());
    let cin = if l == 0 {
        cfg.input_size
    } else {
        nd * cfg.out()
    };
    let shapes = [ActShape::sequence(cin)];
    let mut rng = StdRng::seed_from_u64(0);
    let name = format!("{}{l}", cfg.layer);
    let err = |e: seqnet_core::Error| e.to_string();
    let mut rec = if cfg.is_gru() {
        // PyTorch's nn.GRU (also bidirectional) is this mode.
        let h0 = h0.map(|h0| state_of(h0, cfg, l));
        let mode_of = ResetGateMode::RecurrentBiasAfterMultiplication;
        let k = if nd == 2 {
            let mut g = BiGru::new(h).reset_gate_mode(mode_of).output_mode(mode);
            if let Some(h0) = h0 {
                g = g.hidden_state(h0);
            }
            g.name(name).kernel(&shapes, &mut rng)
        } else {
            let mut g = Gru::new(h).reset_gate_mode(mode_of).output_mode(mode);
            if let Some(h0) = h0 {
                g = g.hidden_state(h0);
            }
            g.name(name).kernel(&shapes, &mut rng)
        };
        Rec::Gru(Box::new(k.map_err(err)?))
    } else if nd == 2 {
        let mut g = BiLstm::new(h).output_mode(mode).name(name);
        if let Some(p) = cfg.proj {
            g = g.projection_size(p);
        }
        if let (Some(h0), Some(c0)) = (h0, c0) {
            g = g
                .hidden_state(state_of(h0, cfg, l))
                .cell_state(state_of(c0, cfg, l));
        }
        Rec::Lstm(Box::new(g.kernel(&shapes, &mut rng).map_err(err)?))
    } else {
        let mut g = Lstm::new(h).output_mode(mode).name(name);
        if let Some(p) = cfg.proj {
            g = g.projection_size(p);
        }
        if let (Some(h0), Some(c0)) = (h0, c0) {
            g = g
                .hidden_state(state_of(h0, cfg, l))
                .cell_state(state_of(c0, cfg, l));
        }
        Rec::Lstm(Box::new(g.kernel(&shapes, &mut rng).map_err(err)?))
    };
    let g = if cfg.is_gru() { 3 * h } else { 4 * h } * nd;
    rec.set("InputWeights", stacked(ts, cfg, l, "weight_ih")?)?;
    rec.set("RecurrentWeights", stacked(ts, cfg, l, "weight_hh")?)?;
    let (b_ih, b_hh) = (
        bias(ts, cfg, l, "bias_ih", g)?,
        bias(ts, cfg, l, "bias_hh", g)?,
    );
    if cfg.is_gru() {
        rec.set("Bias", b_ih)?;
        rec.set("RecurrentBias", b_hh)?;
    } else {
        rec.set("Bias", b_ih + b_hh)?;
    }
    if cfg.proj.is_some() {
        rec.set("ProjectorWeights", stacked(ts, cfg, l, "weight_hr")?)?;
    }
    Ok(rec)
}

/// `max|a − b|` and the allowed error `tol · max(1, max|b|)`.
fn compare(
    what: &str,
    ours: &ArrayD<f32>,
    want: &ArrayD<f32>,
    tol: f32,
    report: &mut Vec<String>,
) -> R<()> {
    if ours.shape() != want.shape() {
        return Err(format!(
            "{what}: shape {:?}, PyTorch {:?}",
            ours.shape(),
            want.shape()
        ));
    }
    let err = ours
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    let scale = want.iter().map(|b| b.abs()).fold(1.0f32, f32::max);
    report.push(format!(
        "{what}: max err {err:.2e} (allowed {:.2e})",
        tol * scale
    ));
    if err.is_nan() || err > tol * scale {
        return Err(format!(
            "{what}: max|ours − torch| = {err:e} > {:e}",
            tol * scale
        ));
    }
    Ok(())
}

/// `[B, T, C]` ↔ `[T, B, C]`.
fn swap_bt(a: &ArrayD<f32>) -> ArrayD<f32> {
    let mut v = a.view();
    v.swap_axes(0, 1);
    v.as_standard_layout().into_owned()
}

fn ctx(rng: &mut StdRng) -> ForwardCtx<'_> {
    ForwardCtx {
        mode: Mode::Training,
        stateful: false,
        rng,
        target: None,
    }
}

fn run_case(ts: &Tensors, cfg: &Config) -> R<Vec<String>> {
    let mut report = Vec::new();
    let (h, nd, nl) = (cfg.hidden, cfg.dirs(), cfg.layers);
    let s = nd * cfg.out();
    if nl == 0 {
        return Err("num_layers is 0".into());
    }
    let input = ts.get("input")?;
    if input.ndim() != 3 || input.shape()[2] != cfg.input_size {
        return Err(format!(
            "input has shape {:?}, expected [B, T, {}]",
            input.shape(),
            cfg.input_size
        ));
    }
    let (b, t) = (input.shape()[0], input.shape()[1]);
    if cfg.batch.is_some_and(|x| x != b) || cfg.time.is_some_and(|x| x != t) {
        return Err(format!(
            "input shape {:?} disagrees with config batch {:?} / time {:?}",
            input.shape(),
            cfg.batch,
            cfg.time
        ));
    }
    let lengths: Vec<usize> = ts
        .get_shaped("lengths", &[b])?
        .iter()
        .map(|&v| {
            if v >= 0.0 && v.fract() == 0.0 {
                Ok(v as usize)
            } else {
                Err(format!("bad length {v}"))
            }
        })
        .collect::<R<_>>()?;
    let seq = SeqLengths::new(lengths, t, cfg.padding).map_err(|e| e.to_string())?;
    let x = Activation::sequence(swap_bt(&input), Some(seq.clone())).map_err(|e| e.to_string())?;

    let (h0, c0) = if cfg.initial_state {
        let h0 = ts.get_shaped("h0", &[nl * nd, b, cfg.out()])?;
        let c0 = if cfg.is_gru() {
            None
        } else {
            Some(ts.get_shaped("c0", &[nl * nd, b, h])?)
        };
        (Some(h0), c0)
    } else {
        (None, None)
    };

    // Forward: the Sequence-mode stack, and the top layer again in Last mode.
    let mut rng = StdRng::seed_from_u64(0);
    let mut stack = (0..nl)
        .map(|l| build(ts, cfg, l, OutputMode::Sequence, h0.as_ref(), c0.as_ref()))
        .collect::<R<Vec<_>>>()?;
    let mut acts = vec![x];
    for rec in stack.iter_mut() {
        let y = rec
            .kernel()
            .forward(&[acts.last().expect("input")], &mut ctx(&mut rng))
            .map_err(|e| e.to_string())?;
        acts.push(y.into_iter().next().ok_or("no output")?);
    }
    let top_in = &acts[nl - 1];
    let y = acts[nl].data.to_owned();

    let want = ts.get_shaped("output", &[b, t, s])?;
    let ours = swap_bt(&y);
    let mut ours_real = ours.clone();
    let mut want_real = want.clone();
    for bi in 0..b {
        for ti in 0..t {
            if !seq.is_real(bi, ti) {
                if ours.slice(s![bi, ti, ..]).iter().any(|&v| v != 0.0) {
                    return Err(format!(
                        "output is not zero at padded step {ti} of observation {bi}"
                    ));
                }
                want_real.slice_mut(s![bi, ti, ..]).fill(0.0);
                ours_real.slice_mut(s![bi, ti, ..]).fill(0.0);
            }
        }
    }
    compare("output", &ours_real, &want_real, FORWARD_TOL, &mut report)?;

    let mut last = None;
    if cfg.loss_last || ts.has("output_last") {
        let mut rec = build(ts, cfg, nl - 1, OutputMode::Last, h0.as_ref(), c0.as_ref())?;
        let out = rec
            .kernel()
            .forward(&[top_in], &mut ctx(&mut rng))
            .map_err(|e| e.to_string())?;
        let ol = out.into_iter().next().ok_or("no output")?.data.to_owned();
        compare(
            "output_last",
            &ol,
            &ts.get_shaped("output_last", &[b, s])?,
            FORWARD_TOL,
            &mut report,
        )?;
        // The Last output is the Sequence output at each last real step.
        for bi in 0..b {
            if let Some(tl) = seq.span(bi).last() {
                if ol.slice(s![bi, ..]) != y.slice(s![tl, bi, ..]) {
                    return Err(format!(
                        "Last output of observation {bi} differs from the sequence at step {tl}"
                    ));
                }
            }
        }
        last = Some(rec);
    }

    for (name, cell) in [("hn", false), ("cn", true)] {
        if !ts.has(name) {
            if !(cell && cfg.is_gru()) {
                return Err(format!("missing tensor '{name}'"));
            }
            continue;
        }
        if cell && cfg.is_gru() {
            return Err("a GRU case has a cell state 'cn'".into());
        }
        let w = if cell { h } else { cfg.out() };
        let mut ours = ArrayD::<f32>::zeros(vec![nl * nd, b, w]);
        for (l, rec) in stack.iter().enumerate() {
            let st = rec.final_state().ok_or("no final state")?;
            let m = if cell {
                st.cell.as_ref().ok_or("no cell state")?
            } else {
                &st.hidden
            };
            for d in 0..nd {
                ours.slice_mut(s![l * nd + d, .., ..])
                    .assign(&m.slice(s![.., d * w..(d + 1) * w]));
            }
        }
        compare(
            name,
            &ours,
            &ts.get_shaped(name, &[nl * nd, b, w])?,
            FORWARD_TOL,
            &mut report,
        )?;
    }

    // Backward through both paths.
    let gy = swap_bt(&ts.get_shaped("grad_output", &[b, t, s])?);
    let mut d_in = stack[nl - 1]
        .kernel()
        .backward(vec![Some(gy)])
        .map_err(|e| e.to_string())?
        .remove(0)
        .ok_or("no input gradient")?;
    let mut names = vec!["InputWeights", "RecurrentWeights", "Bias"];
    if cfg.is_gru() {
        names.push("RecurrentBias");
    }
    if cfg.proj.is_some() {
        names.push("ProjectorWeights");
    }
    let names = names.as_slice();
    let mut grads: Vec<BTreeMap<&str, ArrayD<f32>>> = vec![BTreeMap::new(); nl];
    for n in names {
        grads[nl - 1].insert(n, stack[nl - 1].grad(n)?);
    }
    if let Some(rec) = last.as_mut() {
        if cfg.loss_last {
            let gl = ts.get_shaped("grad_output_last", &[b, s])?;
            let d = rec
                .kernel()
                .backward(vec![Some(gl)])
                .map_err(|e| e.to_string())?
                .remove(0)
                .ok_or("no input gradient")?;
            d_in = d_in + d;
            for n in names {
                let g = rec.grad(n)?;
                *grads[nl - 1].get_mut(n).expect("inserted") += &g;
            }
        }
    }
    for l in (0..nl - 1).rev() {
        d_in = stack[l]
            .kernel()
            .backward(vec![Some(d_in)])
            .map_err(|e| e.to_string())?
            .remove(0)
            .ok_or("no input gradient")?;
        for n in names {
            grads[l].insert(n, stack[l].grad(n)?);
        }
    }
    compare(
        "grad.input",
        &swap_bt(&d_in),
        &ts.get_shaped("grad.input", &[b, t, cfg.input_size])?,
        GRAD_TOL,
        &mut report,
    )?;

    let g = if cfg.is_gru() { 3 * h } else { 4 * h };
    for (l, gl) in grads.iter().enumerate() {
        for d in 0..nd {
            let sfx = suffix(l, d);
            let rows = |a: &ArrayD<f32>| -> ArrayD<f32> {
                match a.ndim() {
                    2 => a
                        .view()
                        .into_dimensionality::<Ix2>()
                        .expect("2-D")
                        .slice(s![d * g..(d + 1) * g, ..])
                        .to_owned()
                        .into_dyn(),
                    _ => a.slice(s![d * g..(d + 1) * g]).to_owned().into_dyn(),
                }
            };
            compare(
                &format!("grad.weight_ih_{sfx}"),
                &rows(&gl["InputWeights"]),
                &ts.get(&format!("grad.weight_ih_{sfx}"))?,
                GRAD_TOL,
                &mut report,
            )?;
            compare(
                &format!("grad.weight_hh_{sfx}"),
                &rows(&gl["RecurrentWeights"]),
                &ts.get(&format!("grad.weight_hh_{sfx}"))?,
                GRAD_TOL,
                &mut report,
            )?;
            if let Some(p) = cfg.proj {
                let q = gl["ProjectorWeights"].slice(s![d * p..(d + 1) * p, ..]);
                compare(
                    &format!("grad.weight_hr_{sfx}"),
                    &q.to_owned().into_dyn(),
                    &ts.get(&format!("grad.weight_hr_{sfx}"))?,
                    GRAD_TOL,
                    &mut report,
                )?;
            }
            if cfg.has_bias {
                // An LSTM's Bias is bias_ih + bias_hh: both get its gradient.
                let hh = if cfg.is_gru() {
                    "RecurrentBias"
                } else {
                    "Bias"
                };
                compare(
                    &format!("grad.bias_ih_{sfx}"),
                    &rows(&gl["Bias"]),
                    &ts.get(&format!("grad.bias_ih_{sfx}"))?,
                    GRAD_TOL,
                    &mut report,
                )?;
                compare(
                    &format!("grad.bias_hh_{sfx}"),
                    &rows(&gl[hh]),
                    &ts.get(&format!("grad.bias_hh_{sfx}"))?,
                    GRAD_TOL,
                    &mut report,
                )?;
            }
        }
    }
    let unused = ts.unused();
    if !unused.is_empty() {
        return Err(format!("tensors this test does not check: {unused:?}"));
    }
    Ok(report)
}

/// Checks one recurrent case (`spec.layer` lstm, bilstm, gru, bigru or lstm_proj) from a fixture
/// file's bytes and `spec`; right-padded cases are also re-run padded on the left.
/// Returns a line per checked quantity.
pub fn check_recurrent(bytes: &[u8], spec: &Value) -> R<Vec<String>> {
    let cfg = Config::parse(spec)?;
    let st = SafeTensors::deserialize(bytes).map_err(|e| e.to_string())?;
    let ts = Tensors::load(&st)?;
    let mut report = run_case(&ts, &cfg)?;
    if cfg.padding == PaddingDirection::Right {
        // The same sequences, padded on the left with garbage: same results.
        let left = ts.left_padded(7.5)?;
        let cfg = Config {
            padding: PaddingDirection::Left,
            ..cfg
        };
        let r = run_case(&left, &cfg).map_err(|e| format!("re-padded on the left: {e}"))?;
        report.extend(r.into_iter().map(|l| format!("(left-padded) {l}")));
    }
    Ok(report)
}
