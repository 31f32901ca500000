//! One ONNX node at a time: shape arithmetic and layout changes update what
//! the importer knows; computing nodes become seqnet layers.

use super::builder::Builder;
use super::values::{Const, Data, Layout, SymDim, Value};
use crate::error::{Error, Result};
use crate::proto::{AttributeProto, NodeProto};
use ndarray::{ArrayD, IxDyn};
use seqnet_core::layers::{
    BatchNormalization, BiGru, BiLstm, Convolution1d, Convolution2d, Flatten, FullyConnected,
    GlobalAveragePooling1d, GlobalMaxPooling1d, Gru, LeakyRelu, Lstm, OutputMode, Padding,
    Padding1d, Relu, ResetGateMode, SequenceFolding, SequenceUnfolding, Sigmoid, Softmax, Tanh,
};
use seqnet_core::{ActShape, Layer};

/// The op types the importer reads.
pub(crate) const SUPPORTED: &str = "Shape, Gather, Unsqueeze, Squeeze, Concat, Mul (of shapes), \
ConstantOfShape (zero initial states), Slice (of those), Constant, Identity, Dropout, Transpose, \
Reshape (folding, unfolding + flatten, BiLSTM/BiGRU output), LSTM, GRU, Gemm, MatMul + Add, Add, \
Softmax, Relu, LeakyRelu, Tanh, Sigmoid, Conv (1-D over time, 2-D on folded frames), \
BatchNormalization, ReduceMean/ReduceMax over time";

/// One node, with what the importer needs to read it.
pub(crate) struct Node<'a> {
    pub proto: &'a NodeProto,
}

impl Node<'_> {
    fn name(&self) -> String {
        self.proto.name.clone().unwrap_or_default()
    }
    fn op(&self) -> &str {
        self.proto.op_type.as_deref().unwrap_or("")
    }
    /// An error naming the node, its op type and what is supported.
    fn unsupported(&self, message: impl std::fmt::Display) -> Error {
        Error::Unsupported {
            node: self.name(),
            op_type: self.op().to_string(),
            message: format!("{message} (supported: {SUPPORTED})"),
        }
    }
    fn attr(&self, name: &str) -> Option<&AttributeProto> {
        self.proto
            .attribute
            .iter()
            .find(|a| a.name.as_deref() == Some(name))
    }
    fn int(&self, name: &str) -> Option<i64> {
        self.attr(name).and_then(|a| a.i)
    }
    fn float(&self, name: &str) -> Option<f32> {
        self.attr(name).and_then(|a| a.f)
    }
    fn ints(&self, name: &str) -> Option<Vec<i64>> {
        self.attr(name).map(|a| a.ints.clone())
    }
    fn string(&self, name: &str) -> Option<String> {
        self.attr(name)
            .and_then(|a| a.s.as_ref())
            .map(|s| String::from_utf8_lossy(s).into_owned())
    }
    fn input_name(&self, i: usize) -> &str {
        self.proto.input.get(i).map(String::as_str).unwrap_or("")
    }
}

/// Converts `node`, recording its outputs in `b.values`.
pub(crate) fn convert(b: &mut Builder, proto: &NodeProto) -> Result<()> {
    let node = Node { proto };
    let out = match node.op() {
        "Constant" => vec![Value::Const(constant(&node)?)],
        "Identity" | "Dropout" => vec![input(b, &node, 0)?],
        "Shape" => vec![shape(b, &node)?],
        "Gather" => vec![gather(b, &node)?],
        "Unsqueeze" => vec![unsqueeze(b, &node)?],
        "Squeeze" => vec![squeeze(b, &node)?],
        "Concat" => vec![concat(b, &node)?],
        "Mul" => vec![mul(b, &node)?],
        "ConstantOfShape" => vec![constant_of_shape(b, &node)?],
        "Slice" => vec![slice(b, &node)?],
        "Transpose" => vec![transpose(b, &node)?],
        "Reshape" => vec![reshape(b, &node)?],
        "LSTM" | "GRU" => recurrent(b, &node)?,
        "Gemm" => vec![gemm(b, &node)?],
        "MatMul" => vec![matmul(b, &node)?],
        "Add" => vec![add(b, &node)?],
        "Softmax" => vec![softmax(b, &node)?],
        "Relu" => vec![elementwise(b, &node, Relu::new().into(), "relu")?],
        "Tanh" => vec![elementwise(b, &node, Tanh::new().into(), "tanh")?],
        "Sigmoid" => vec![elementwise(b, &node, Sigmoid::new().into(), "sigmoid")?],
        "LeakyRelu" => {
            let alpha = node.float("alpha").unwrap_or(0.01);
            vec![elementwise(
                b,
                &node,
                LeakyRelu::new(alpha).into(),
                "leakyrelu",
            )?]
        }
        "Conv" => vec![conv(b, &node)?],
        "BatchNormalization" => vec![batch_norm(b, &node)?],
        "ReduceMean" | "ReduceMax" => vec![reduce(b, &node)?],
        _ => return Err(node.unsupported("this op type is not imported")),
    };
    for (name, v) in proto.output.iter().zip(out) {
        if !name.is_empty() {
            b.values.insert(name.clone(), v);
        }
    }
    Ok(())
}

fn input(b: &Builder, node: &Node, i: usize) -> Result<Value> {
    let name = node.input_name(i);
    b.values
        .get(name)
        .cloned()
        .ok_or_else(|| node.unsupported(format!("input '{name}' is unknown")))
}

fn data(b: &Builder, node: &Node, i: usize) -> Result<Data> {
    match input(b, node, i)? {
        Value::Data(d) => Ok(d),
        _ => Err(node.unsupported(format!(
            "input {i} must be data computed from the model input"
        ))),
    }
}

fn konst(b: &Builder, node: &Node, i: usize) -> Result<Const> {
    match input(b, node, i)? {
        Value::Const(c) => Ok(c),
        _ => Err(node.unsupported(format!("input {i} must be a constant"))),
    }
}

fn array(c: &Const) -> ArrayD<f32> {
    ArrayD::from_shape_vec(IxDyn(&c.dims), c.floats.clone())
        .unwrap_or_else(|_| ArrayD::zeros(IxDyn(&[0])))
}

fn constant(node: &Node) -> Result<Const> {
    let a = node
        .attr("value")
        .or_else(|| node.attr("value_int"))
        .or_else(|| node.attr("value_ints"))
        .or_else(|| node.attr("value_float"))
        .ok_or_else(|| node.unsupported("a Constant without value"))?;
    match a.name.as_deref() {
        Some("value") => Const::from_proto(
            a.t.as_ref()
                .ok_or_else(|| node.unsupported("value is not a tensor"))?,
        ),
        Some("value_int") => Ok(Const::ints(vec![], vec![a.i.unwrap_or(0)])),
        Some("value_ints") => Ok(Const::ints(vec![a.ints.len()], a.ints.clone())),
        _ => Ok(Const {
            dims: vec![],
            floats: vec![a.f.unwrap_or(0.0)],
            ints: vec![],
        }),
    }
}

/// A constant's or a computed shape's dimensions as symbols.
fn sym(v: &Value) -> Option<(Vec<SymDim>, bool)> {
    match v {
        Value::Sym { dims, scalar } => Some((dims.clone(), *scalar)),
        Value::Const(c) if !c.ints.is_empty() || c.len() == 0 => Some((
            c.ints.iter().map(|&i| SymDim::Known(i)).collect(),
            c.dims.is_empty(),
        )),
        _ => None,
    }
}

fn shape(b: &Builder, node: &Node) -> Result<Value> {
    let d = data(b, node, 0)?;
    Ok(Value::Sym {
        dims: d.dims(),
        scalar: false,
    })
}

/// A scalar integer constant at input `i`.
fn scalar_index(b: &Builder, node: &Node, i: usize) -> Result<i64> {
    let c = konst(b, node, i)?;
    match (&c.ints[..], c.dims.is_empty()) {
        ([v], true) => Ok(*v),
        _ => Err(node.unsupported("the indices must be one scalar")),
    }
}

/// `Gather` of a shape (axis 0), or the last time step of data.
fn gather(b: &mut Builder, node: &Node) -> Result<Value> {
    let axis = node.int("axis").unwrap_or(0);
    let idx = scalar_index(b, node, 1)?;
    match input(b, node, 0)? {
        v @ (Value::Sym { .. } | Value::Const(_)) if axis == 0 => {
            let (dims, _) = sym(&v).ok_or_else(|| node.unsupported("not a shape"))?;
            let i = if idx < 0 {
                idx + dims.len() as i64
            } else {
                idx
            };
            let d = *dims
                .get(i as usize)
                .ok_or_else(|| node.unsupported("index out of range"))?;
            Ok(Value::Sym {
                dims: vec![d],
                scalar: true,
            })
        }
        Value::Data(d) => {
            let time_axis = match d.layout {
                Layout::Btc => 1,
                Layout::Tbc => 0,
                _ => {
                    return Err(node
                        .unsupported("Gather of data takes a time step of [B, T, C] or [T, B, C]"))
                }
            };
            if axis != time_axis || idx != -1 {
                return Err(node.unsupported(
                    "Gather of data must take the last time step (index -1 on the time axis)",
                ));
            }
            last_step(b, node, d)
        }
        _ => Err(node.unsupported("Gather of a shape must be on axis 0")),
    }
}

/// `y[:, -1]`: the recurrent layer that made `d` outputs its last step instead.
fn last_step(b: &mut Builder, node: &Node, d: Data) -> Result<Value> {
    if b.readers.get(&d.port).copied().unwrap_or(0) > 0 {
        return Err(node.unsupported("the last step of a sequence that other layers also read"));
    }
    let layer = b
        .layer_mut(&d.port)
        .ok_or_else(|| node.unsupported("the last step of the input"))?;
    set_last(layer).map_err(|()| {
        node.unsupported("the last time step is taken of a recurrent layer's output only")
    })?;
    Ok(Value::Data(Data {
        layout: Layout::Bc,
        shape: ActShape::features(d.shape.channels),
        ..d
    }))
}

fn set_last(layer: &mut Layer) -> std::result::Result<(), ()> {
    if let Some(l) = layer.downcast_mut::<Lstm>() {
        l.options.output_mode = OutputMode::Last;
    } else if let Some(l) = layer.downcast_mut::<BiLstm>() {
        l.options.output_mode = OutputMode::Last;
    } else if let Some(l) = layer.downcast_mut::<Gru>() {
        l.options.output_mode = OutputMode::Last;
    } else if let Some(l) = layer.downcast_mut::<BiGru>() {
        l.options.output_mode = OutputMode::Last;
    } else {
        return Err(());
    }
    Ok(())
}

/// Axes from the second input (opset 13+) or the `axes` attribute.
fn axes(b: &Builder, node: &Node) -> Result<Vec<i64>> {
    if !node.input_name(1).is_empty() {
        Ok(konst(b, node, 1)?.ints)
    } else {
        node.ints("axes").ok_or_else(|| node.unsupported("no axes"))
    }
}

fn unsqueeze(b: &Builder, node: &Node) -> Result<Value> {
    let v = input(b, node, 0)?;
    match sym(&v) {
        Some((dims, true)) if axes(b, node)? == [0] => Ok(Value::Sym {
            dims,
            scalar: false,
        }),
        _ => Err(node.unsupported("Unsqueeze of a scalar shape element on axis 0 only")),
    }
}

fn squeeze(b: &mut Builder, node: &Node) -> Result<Value> {
    let d = data(b, node, 0)?;
    let ax = axes(b, node)?;
    match (d.layout, &ax[..]) {
        (Layout::Y(1), [1]) => Ok(Value::Data(Data {
            layout: Layout::Tbc,
            ..d
        })),
        (Layout::Yh(1), [0]) => last_step(
            b,
            node,
            Data {
                layout: Layout::Tbc,
                ..d
            },
        ),
        _ => Err(node.unsupported(format!(
            "Squeeze of {:?} on axes {ax:?} (a one-direction Y on axis 1 or Y_h on axis 0 only)",
            d.layout
        ))),
    }
}

fn concat(b: &Builder, node: &Node) -> Result<Value> {
    let mut dims = vec![];
    for i in 0..node.proto.input.len() {
        match sym(&input(b, node, i)?) {
            Some((d, false)) => dims.extend(d),
            _ => return Err(node.unsupported("Concat of shape vectors only")),
        }
    }
    Ok(Value::Sym {
        dims,
        scalar: false,
    })
}

fn mul(b: &Builder, node: &Node) -> Result<Value> {
    let (x, y) = (input(b, node, 0)?, input(b, node, 1)?);
    match (sym(&x), sym(&y)) {
        (Some((a, true)), Some((c, true)))
            if a[..] == [SymDim::Batch] && c[..] == [SymDim::Time] =>
        {
            Ok(Value::Sym {
                dims: vec![SymDim::BatchTime],
                scalar: true,
            })
        }
        _ => Err(node.unsupported(
            "Mul of the batch and time sizes only (data products are MatMul or Gemm)",
        )),
    }
}

fn constant_of_shape(_b: &Builder, node: &Node) -> Result<Value> {
    let zero = match node.attr("value").and_then(|a| a.t.as_ref()) {
        None => true,
        Some(t) => {
            let c = Const::from_proto(t)?;
            c.floats.iter().all(|&v| v == 0.0) && c.ints.iter().all(|&v| v == 0)
        }
    };
    if !zero {
        return Err(node.unsupported("ConstantOfShape of a value other than 0"));
    }
    Ok(Value::Zeros)
}

fn slice(b: &Builder, node: &Node) -> Result<Value> {
    match input(b, node, 0)? {
        Value::Zeros => Ok(Value::Zeros),
        _ => Err(node.unsupported("Slice of a zero initial state only")),
    }
}

fn transpose(b: &Builder, node: &Node) -> Result<Value> {
    let d = data(b, node, 0)?;
    let perm = node.ints("perm").unwrap_or_default();
    let layout = match (d.layout, &perm[..]) {
        (Layout::Btc, [1, 0, 2]) => Layout::Tbc,
        (Layout::Tbc, [1, 0, 2]) => Layout::Btc,
        (Layout::Btc, [0, 2, 1]) => Layout::Bct,
        (Layout::Bct, [0, 2, 1]) => Layout::Btc,
        (Layout::Y(n), [0, 2, 1, 3]) => Layout::Ytbdh(n),
        (l, p) => {
            return Err(node.unsupported(format!("Transpose of {l:?} by {p:?}")));
        }
    };
    Ok(Value::Data(Data { layout, ..d }))
}

fn reshape(b: &mut Builder, node: &Node) -> Result<Value> {
    let d = data(b, node, 0)?;
    let (target, _) = sym(&input(b, node, 1)?).ok_or_else(|| {
        node.unsupported("the shape must be a constant or computed from the input's shape")
    })?;
    use SymDim::*;
    let s = d.shape;
    let frame = [s.channels, s.spatial[0], s.spatial[1]].map(|v| Known(v as i64));
    match (d.layout, &target[..]) {
        (Layout::Ytbdh(_), [Known(0), Known(0), Known(-1)]) => Ok(Value::Data(Data {
            layout: Layout::Tbc,
            ..d
        })),
        (Layout::Btchw, [BatchTime | Known(-1), c, h, w]) if [*c, *h, *w] == frame => {
            let port = b.add("seqfold", SequenceFolding::new().into(), &[&d.port])?;
            let name = port.split('/').next().unwrap_or("").to_string();
            b.fold = Some(format!("{name}/miniBatchSize"));
            Ok(Value::Data(Data {
                port,
                shape: s.with_time(false),
                layout: Layout::Nchw,
            }))
        }
        (Layout::Nchw, [Batch, Time, Known(-1)]) => {
            let fold = b
                .fold
                .clone()
                .ok_or_else(|| node.unsupported("unfolding frames that were not folded"))?;
            let port = b.add("sequnfold", SequenceUnfolding::new().into(), &[&d.port, &fold])?;
            let port = b.add("flatten", Flatten::new().into(), &[&port])?;
            Ok(Value::Data(Data {
                port,
                shape: ActShape::sequence(s.elements()),
                layout: Layout::Btc,
            }))
        }
        (l, t) => Err(node.unsupported(format!(
            "Reshape of {l:?} to {t:?} (folding [B·T, C, H, W], unfolding [B, T, -1], or a BiLSTM's [T, B, 2, H] to [0, 0, -1])"
        ))),
    }
}

/// Rows of `w` (`[D, G·H, …]`) per direction reordered from ONNX's gate
/// blocks to seqnet's: seqnet block `k` is ONNX block `from[k]`.
fn gates(w: &Const, d: usize, h: usize, from: &[usize]) -> Vec<f32> {
    let g = from.len();
    let cols = w.len() / (d * g * h);
    let mut out = Vec::with_capacity(w.len());
    for dir in 0..d {
        for &blk in from {
            let start = (dir * g + blk) * h * cols;
            out.extend_from_slice(&w.floats[start..start + h * cols]);
        }
    }
    out
}

/// seqnet's LSTM blocks `i, f, g, o` from ONNX's `i, o, f, c`.
const LSTM_FROM: [usize; 4] = [0, 2, 3, 1];
/// seqnet's GRU blocks `r, z, n` from ONNX's `z, r, h`.
const GRU_FROM: [usize; 3] = [1, 0, 2];

/// Checks what seqnet's recurrent layers can take (time-major input, no
/// `sequence_lens`, zero initial states, default activations); returns the
/// hidden size and the number of directions.
fn recurrent_settings(b: &Builder, node: &Node, x: &Data) -> Result<(usize, usize)> {
    if x.layout != Layout::Tbc {
        return Err(node.unsupported("the input must be time-major [T, B, C]"));
    }
    for i in 4..node.proto.input.len() {
        let name = node.input_name(i);
        if i == 4 && !name.is_empty() {
            return Err(
                node.unsupported("sequence_lens is not imported (sequences fill the time axis)")
            );
        }
        if i > 4 && !name.is_empty() && input(b, node, i)? != Value::Zeros {
            return Err(node.unsupported("initial states other than zeros are not imported"));
        }
    }
    for a in ["activations", "clip"] {
        if node.attr(a).is_some() {
            return Err(node.unsupported(format!("attribute {a} is not imported (defaults only)")));
        }
    }
    if node.int("input_forget").unwrap_or(0) != 0 || node.int("layout").unwrap_or(0) != 0 {
        return Err(node.unsupported("input_forget and layout must be 0"));
    }
    let h = node
        .int("hidden_size")
        .ok_or_else(|| node.unsupported("no hidden_size"))? as usize;
    let dirs = match node.string("direction").as_deref() {
        None | Some("forward") => 1,
        Some("bidirectional") => 2,
        Some(d) => return Err(node.unsupported(format!("direction {d} is not imported"))),
    };
    Ok((h, dirs))
}

/// A recurrent node's weights in seqnet's gate order: `InputWeights`,
/// `RecurrentWeights` (`[D·G·H, ·]` row-major) and the input and recurrent
/// biases (`[D·G·H]` each), from `W`, `R`, `B` at the node's input positions.
struct RecurrentWeights {
    w: Vec<f32>,
    r: Vec<f32>,
    wb: Vec<f32>,
    rb: Vec<f32>,
}

fn recurrent_weights(
    b: &Builder,
    node: &Node,
    (h, dirs, c): (usize, usize, usize),
    from: &[usize],
) -> Result<RecurrentWeights> {
    let (w, r, bias) = (konst(b, node, 1)?, konst(b, node, 2)?, konst(b, node, 3)?);
    let g = from.len();
    if w.dims != [dirs, g * h, c] || r.dims != [dirs, g * h, h] || bias.dims != [dirs, 2 * g * h] {
        return Err(node.unsupported("W, R and B must be constants of ONNX's shapes"));
    }
    // B[d] = [Wb; Rb]: as `[D·2, G·H]`, direction d's Wb is row 2d, Rb row 2d + 1.
    let halves = Const {
        dims: vec![2 * dirs, g * h],
        ..bias
    };
    let bv = gates(&halves, 2 * dirs, h, from);
    let per = g * h;
    let pick = |k: usize| -> Vec<f32> {
        (0..dirs)
            .flat_map(|d| bv[(2 * d + k) * per..(2 * d + k + 1) * per].to_vec())
            .collect()
    };
    Ok(RecurrentWeights {
        w: gates(&w, dirs, h, from),
        r: gates(&r, dirs, h, from),
        wb: pick(0),
        rb: pick(1),
    })
}

/// `LSTM` → `lstm`/`bilstm`; `GRU` → `gru`/`bigru`. Outputs `Y` and `Y_h`
/// as views of the layer's (sequence) output.
fn recurrent(b: &mut Builder, node: &Node) -> Result<Vec<Value>> {
    let x = data(b, node, 0)?;
    let (h, dirs) = recurrent_settings(b, node, &x)?;
    let c = x.shape.channels;
    let lstm = node.op() == "LSTM";
    let from: &[usize] = if lstm { &LSTM_FROM } else { &GRU_FROM };
    let rw = recurrent_weights(b, node, (h, dirs, c), from)?;
    let rows = dirs * from.len() * h;
    let arr = |v: Vec<f32>, dims: &[usize]| {
        ArrayD::from_shape_vec(IxDyn(dims), v).expect("sizes checked")
    };
    let summed: Vec<f32> = rw.wb.iter().zip(&rw.rb).map(|(a, c)| a + c).collect();
    let port = if lstm {
        let layer: Layer = if dirs == 1 {
            Lstm::new(h).into()
        } else {
            BiLstm::new(h).into()
        };
        let port = b.add(if dirs == 1 { "lstm" } else { "bilstm" }, layer, &[&x.port])?;
        b.param(&port, "Bias", arr(summed, &[rows]));
        port
    } else {
        // linear_before_reset = 1 is PyTorch's nn.GRU: the recurrent bias
        // stays apart. With 0, ONNX adds Rb_h outside the reset, as
        // before-multiplication's one bias does: the biases add up.
        let after = node.int("linear_before_reset").unwrap_or(0) == 1;
        let mode = if after {
            ResetGateMode::RecurrentBiasAfterMultiplication
        } else {
            ResetGateMode::BeforeMultiplication
        };
        let (layer, stem): (Layer, &str) = if dirs == 1 {
            (Gru::new(h).reset_gate_mode(mode).into(), "gru")
        } else {
            (BiGru::new(h).reset_gate_mode(mode).into(), "bigru")
        };
        let port = b.add(stem, layer, &[&x.port])?;
        if after {
            b.param(&port, "Bias", arr(rw.wb, &[rows]));
            b.param(&port, "RecurrentBias", arr(rw.rb, &[rows]));
        } else {
            b.param(&port, "Bias", arr(summed, &[rows]));
        }
        port
    };
    b.param(&port, "InputWeights", arr(rw.w, &[rows, c]));
    b.param(&port, "RecurrentWeights", arr(rw.r, &[rows, h]));
    let shape = ActShape::sequence(dirs * h);
    let y = |layout| {
        Value::Data(Data {
            port: port.clone(),
            shape,
            layout,
        })
    };
    Ok(vec![y(Layout::Y(dirs)), y(Layout::Yh(dirs))])
}

fn gemm(b: &mut Builder, node: &Node) -> Result<Value> {
    let x = data(b, node, 0)?;
    if x.layout != Layout::Bc {
        return Err(node.unsupported("Gemm of [B, C] data only"));
    }
    let (alpha, beta) = (
        node.float("alpha").unwrap_or(1.0),
        node.float("beta").unwrap_or(1.0),
    );
    if alpha != 1.0 || beta != 1.0 || node.int("transA").unwrap_or(0) != 0 {
        return Err(node.unsupported("Gemm with alpha = beta = 1 and transA = 0 only"));
    }
    let w = array(&konst(b, node, 1)?);
    let w = if node.int("transB").unwrap_or(0) == 1 {
        w
    } else {
        w.t().to_owned()
    };
    let k = w.shape()[0];
    let bias = if node.input_name(2).is_empty() {
        ArrayD::zeros(IxDyn(&[k]))
    } else {
        let c = konst(b, node, 2)?;
        if c.len() != k {
            return Err(node.unsupported("the bias must have one value per output"));
        }
        ArrayD::from_shape_vec(IxDyn(&[k]), c.floats).expect("length checked")
    };
    fully_connected(b, node, x, w.as_standard_layout().to_owned(), bias)
}

fn fully_connected(
    b: &mut Builder,
    node: &Node,
    x: Data,
    w: ArrayD<f32>,
    bias: ArrayD<f32>,
) -> Result<Value> {
    let (k, n) = (w.shape()[0], w.shape()[1]);
    if n != x.shape.elements() {
        return Err(node.unsupported(format!(
            "weights [{k}, {n}] for {} inputs",
            x.shape.elements()
        )));
    }
    let port = b.add("fc", FullyConnected::new(k).into(), &[&x.port])?;
    b.param(&port, "Weights", w);
    b.param(&port, "Bias", bias);
    Ok(Value::Data(Data {
        port,
        shape: ActShape::features(k).with_time(x.shape.format.has_time()),
        layout: x.layout,
    }))
}

/// A per-step `Linear`: `MatMul(x [B, T, C], Wᵀ [C, K])`; its bias comes
/// with the `Add` that follows (see [`add`]).
fn matmul(b: &mut Builder, node: &Node) -> Result<Value> {
    let x = data(b, node, 0)?;
    if !matches!(x.layout, Layout::Btc | Layout::Tbc | Layout::Bc) {
        return Err(node.unsupported("MatMul of [B, T, C], [T, B, C] or [B, C] data only"));
    }
    let wt = array(&konst(b, node, 1)?);
    if wt.ndim() != 2 {
        return Err(node.unsupported("MatMul by a constant matrix only"));
    }
    let k = wt.shape()[1];
    let w = wt.t().as_standard_layout().to_owned();
    fully_connected(b, node, x, w, ArrayD::zeros(IxDyn(&[k])))
}

/// `Add` of a bias to a fully connected layer's output (either operand
/// order), or of two data tensors (an addition layer).
fn add(b: &mut Builder, node: &Node) -> Result<Value> {
    let (p, q) = (input(b, node, 0)?, input(b, node, 1)?);
    match (p, q) {
        (Value::Const(c), Value::Data(d)) | (Value::Data(d), Value::Const(c)) => {
            let fresh = b.readers.get(&d.port).copied().unwrap_or(0) == 0;
            let is_fc = b
                .layer_mut(&d.port)
                .is_some_and(|l| l.is::<FullyConnected>());
            if !(fresh && is_fc && c.len() == d.shape.channels) {
                return Err(node.unsupported("Add of a constant: a bias after MatMul only"));
            }
            let bias = ArrayD::from_shape_vec(IxDyn(&[c.len()]), c.floats).expect("length checked");
            b.param(&d.port, "Bias", bias);
            Ok(Value::Data(d))
        }
        (Value::Data(x), Value::Data(y)) if x.layout == y.layout && x.shape == y.shape => {
            let port = b.add(
                "addition",
                seqnet_core::layers::Addition::new(2).into(),
                &[&x.port, &y.port],
            )?;
            Ok(Value::Data(Data { port, ..x }))
        }
        _ => Err(node.unsupported("Add of a bias or of two tensors of one shape")),
    }
}

fn softmax(b: &mut Builder, node: &Node) -> Result<Value> {
    let x = data(b, node, 0)?;
    let rank = x.dims().len() as i64;
    let axis = node.int("axis").unwrap_or(-1);
    let channel_last = matches!(x.layout, Layout::Bc | Layout::Btc | Layout::Tbc);
    if !channel_last || (axis != -1 && axis != rank - 1) {
        return Err(
            node.unsupported("Softmax over the channels (last axis) of [B, C] or [B, T, C] only")
        );
    }
    elementwise(b, node, Softmax::new().into(), "softmax")
}

fn elementwise(b: &mut Builder, node: &Node, layer: Layer, stem: &str) -> Result<Value> {
    let x = data(b, node, 0)?;
    let port = b.add(stem, layer, &[&x.port])?;
    Ok(Value::Data(Data { port, ..x }))
}

fn conv(b: &mut Builder, node: &Node) -> Result<Value> {
    let x = data(b, node, 0)?;
    let w = konst(b, node, 1)?;
    if node.int("group").unwrap_or(1) != 1 {
        return Err(node.unsupported("grouped convolution is not imported"));
    }
    if node.string("auto_pad").is_some_and(|p| p != "NOTSET") {
        return Err(node.unsupported("auto_pad is not imported (explicit pads only)"));
    }
    let f = w.dims[0];
    let bias = if node.input_name(2).is_empty() {
        vec![0.0; f]
    } else {
        konst(b, node, 2)?.floats
    };
    let ints = |n: &str, k: usize, d: i64| node.ints(n).unwrap_or_else(|| vec![d; k]);
    let usz = |v: Vec<i64>| v.into_iter().map(|x| x.max(0) as usize).collect::<Vec<_>>();
    match (x.layout, w.dims.len()) {
        (Layout::Nchw, 4) => {
            let (s, d, p) = (usz(ints("strides", 2, 1)), usz(ints("dilations", 2, 1)), usz(ints("pads", 4, 0)));
            let layer = Convolution2d::new([w.dims[2], w.dims[3]], f)
                .stride([s[0], s[1]])
                .dilation_factor([d[0], d[1]])
                .padding(Padding::Explicit([p[0], p[2], p[1], p[3]]));
            let port = b.add("conv", layer.into(), &[&x.port])?;
            b.param(&port, "Weights", array(&w));
            b.param(&port, "Bias", ArrayD::from_shape_vec(IxDyn(&[f]), bias).expect("one per filter"));
            let sp = x.shape.spatial;
            let out = |a: usize| (sp[a] + p[a] + p[a + 2] - d[a] * (w.dims[2 + a] - 1) - 1) / s[a] + 1;
            Ok(Value::Data(Data {
                port,
                shape: ActShape::images(out(0), out(1), f),
                layout: Layout::Nchw,
            }))
        }
        (Layout::Bct, 3) => {
            let (s, d, p) = (usz(ints("strides", 1, 1)), usz(ints("dilations", 1, 1)), usz(ints("pads", 2, 0)));
            let layer = Convolution1d::new(w.dims[2], f)
                .stride(s[0])
                .dilation_factor(d[0])
                .padding(Padding1d::Explicit([p[0], p[1]]));
            let port = b.add("conv1d", layer.into(), &[&x.port])?;
            b.param(&port, "Weights", array(&w));
            b.param(&port, "Bias", ArrayD::from_shape_vec(IxDyn(&[f]), bias).expect("one per filter"));
            Ok(Value::Data(Data {
                port,
                shape: ActShape::sequence(f),
                layout: Layout::Bct,
            }))
        }
        (l, k) => Err(node.unsupported(format!(
            "Conv with {k}-D weights on {l:?} (2-D on folded frames [B·T, C, H, W], 1-D on [B, C, T])"
        ))),
    }
}

fn batch_norm(b: &mut Builder, node: &Node) -> Result<Value> {
    let x = data(b, node, 0)?;
    if node.int("training_mode").unwrap_or(0) != 0 {
        return Err(node.unsupported("training_mode must be 0"));
    }
    if !matches!(x.layout, Layout::Nchw | Layout::Bct | Layout::Bc) {
        return Err(
            node.unsupported("BatchNormalization of [N, C, H, W], [B, C, T] or [B, C] only")
        );
    }
    let eps = node.float("epsilon").unwrap_or(1e-5);
    let mut layer = BatchNormalization::new();
    layer.epsilon = eps;
    let port = b.add("batchnorm", layer.into(), &[&x.port])?;
    for (i, what) in [
        (1, "Scale"),
        (2, "Offset"),
        (3, "TrainedMean"),
        (4, "TrainedVariance"),
    ] {
        let c = konst(b, node, i)?;
        b.param(&port, what, array(&c));
    }
    Ok(Value::Data(Data { port, ..x }))
}

/// Mean or maximum over time: global pooling.
fn reduce(b: &mut Builder, node: &Node) -> Result<Value> {
    let x = data(b, node, 0)?;
    let ax = if node.input_name(1).is_empty() {
        node.ints("axes").unwrap_or_default()
    } else {
        konst(b, node, 1)?.ints
    };
    let time_axis = match x.layout {
        Layout::Bct => 2,
        Layout::Btc => 1,
        Layout::Tbc => 0,
        _ => -1,
    };
    let rank = x.dims().len() as i64;
    let on_time = ax.len() == 1 && (ax[0] == time_axis || ax[0] + rank == time_axis);
    if !on_time || node.int("keepdims").unwrap_or(1) != 0 {
        return Err(
            node.unsupported("a reduction over the time axis of a sequence with keepdims = 0 only")
        );
    }
    let layer: Layer = if node.op() == "ReduceMean" {
        GlobalAveragePooling1d::new().into()
    } else {
        GlobalMaxPooling1d::new().into()
    };
    let stem = if node.op() == "ReduceMean" {
        "gap1d"
    } else {
        "gmp1d"
    };
    let port = b.add(stem, layer, &[&x.port])?;
    Ok(Value::Data(Data {
        port,
        shape: ActShape::features(x.shape.channels),
        layout: Layout::Bc,
    }))
}
