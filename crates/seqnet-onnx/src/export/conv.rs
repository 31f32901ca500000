//! Windows: 2-D convolution and pooling of frames (`[N, C, H, W]`, ONNX's
//! own layout), 1-D convolution and pooling over time (the time-major
//! `[T, B, C]` transposed to `[B, C, T]` and back) and global pooling over
//! time, each sequence's real steps only when the export has `sequence_lens`.

use super::masks;
use crate::error::Result;
use seqnet_core::layers::{
    AveragePooling1d, AveragePooling2d, ConvPaddingValue, Convolution1d, Convolution2d,
    GlobalAveragePooling1d, GlobalMaxPooling1d, MaxPooling1d, MaxPooling2d, Padding, Padding1d,
    PoolPaddingValue,
};
use seqnet_core::onnx::{OnnxAttr, OnnxLayerCtx, OnnxValue};
use seqnet_core::{ActShape, Layer};

/// Exports `layer` if it is a built-in window layer.
pub(crate) fn export_layer(
    layer: &Layer,
    ctx: &mut OnnxLayerCtx,
) -> Result<Option<Vec<OnnxValue>>> {
    if let Some(l) = layer.downcast_ref::<Convolution2d>() {
        return conv2d(ctx, l).map(Some);
    }
    if let Some(l) = layer.downcast_ref::<MaxPooling2d>() {
        let w = Win2 {
            size: l.pool_size,
            stride: l.stride,
            dilation: [1, 1],
            padding: l.padding,
        };
        return pool2d(ctx, "MaxPool", &w, None).map(Some);
    }
    if let Some(l) = layer.downcast_ref::<AveragePooling2d>() {
        let w = Win2 {
            size: l.pool_size,
            stride: l.stride,
            dilation: [1, 1],
            padding: l.padding,
        };
        let include = i64::from(l.padding_value == PoolPaddingValue::Zero);
        return pool2d(ctx, "AveragePool", &w, Some(include)).map(Some);
    }
    if let Some(l) = layer.downcast_ref::<Convolution1d>() {
        return conv1d(ctx, l).map(Some);
    }
    if let Some(l) = layer.downcast_ref::<MaxPooling1d>() {
        let w = Win1 {
            size: l.pool_size,
            stride: l.stride,
            dilation: 1,
            padding: l.padding,
        };
        return pool1d(ctx, "MaxPool", &w, None).map(Some);
    }
    if let Some(l) = layer.downcast_ref::<AveragePooling1d>() {
        let w = Win1 {
            size: l.pool_size,
            stride: l.stride,
            dilation: 1,
            padding: l.padding,
        };
        let include = l.padding_value == PoolPaddingValue::Zero;
        return pool1d(ctx, "AveragePool", &w, Some(include)).map(Some);
    }
    if layer.is::<GlobalAveragePooling1d>() {
        return global_pool(ctx, false).map(Some);
    }
    if layer.is::<GlobalMaxPooling1d>() {
        return global_pool(ctx, true).map(Some);
    }
    Ok(None)
}

/// A node's attributes.
type Attrs = Vec<(&'static str, OnnxAttr)>;

/// A 2-D window's settings.
struct Win2 {
    size: [usize; 2],
    stride: [usize; 2],
    dilation: [usize; 2],
    padding: Padding,
}

impl Win2 {
    /// ONNX `pads` `[top, left, bottom, right]` and the output `[Ho, Wo]` for frames `[H, W]`.
    fn resolve(&self, input: [usize; 2]) -> ([i64; 4], [usize; 2]) {
        let mut pad = [0usize; 4]; // seqnet's [top, bottom, left, right]
        for a in 0..2 {
            let extent = self.dilation[a] * (self.size[a] - 1) + 1;
            match &self.padding {
                Padding::Same => {
                    let out = input[a].div_ceil(self.stride[a]);
                    let total = ((out - 1) * self.stride[a] + extent).saturating_sub(input[a]);
                    pad[2 * a] = total / 2;
                    pad[2 * a + 1] = total - total / 2;
                }
                Padding::Explicit(p) => {
                    pad[2 * a] = p[2 * a];
                    pad[2 * a + 1] = p[2 * a + 1];
                }
            }
        }
        let out = |a: usize| {
            let extent = self.dilation[a] * (self.size[a] - 1) + 1;
            (input[a] + pad[2 * a] + pad[2 * a + 1] - extent) / self.stride[a] + 1
        };
        (
            [pad[0] as i64, pad[2] as i64, pad[1] as i64, pad[3] as i64],
            [out(0), out(1)],
        )
    }

    fn attrs(&self, input: [usize; 2]) -> (Attrs, [usize; 2]) {
        let (pads, out) = self.resolve(input);
        let ints = |v: [usize; 2]| OnnxAttr::Ints(v.iter().map(|&x| x as i64).collect());
        (
            vec![
                ("kernel_shape", ints(self.size)),
                ("strides", ints(self.stride)),
                ("pads", OnnxAttr::Ints(pads.to_vec())),
            ],
            out,
        )
    }
}

fn conv2d(ctx: &mut OnnxLayerCtx, l: &Convolution2d) -> Result<Vec<OnnxValue>> {
    let x = ctx.input(0)?.clone();
    let w = ctx.param("Weights")?.clone();
    let b = ctx.param("Bias")?.clone();
    let win = Win2 {
        size: l.filter_size,
        stride: l.stride,
        dilation: l.dilation_factor,
        padding: l.padding,
    };
    let (mut attrs, out) = win.attrs(x.shape.spatial);
    let d = l.dilation_factor;
    attrs.push(("dilations", OnnxAttr::Ints(vec![d[0] as i64, d[1] as i64])));
    let wv = ctx.float("Weights", w.shape(), w.iter().copied().collect());
    let bv = ctx.float("Bias", b.shape(), b.iter().copied().collect());
    let y = ctx.node("Conv", &[&x.name, &wv, &bv], attrs);
    Ok(vec![OnnxValue {
        name: y,
        shape: ActShape::images(out[0], out[1], l.num_filters),
        lengths: x.lengths,
    }])
}

fn pool2d(
    ctx: &mut OnnxLayerCtx,
    op: &str,
    win: &Win2,
    count_include_pad: Option<i64>,
) -> Result<Vec<OnnxValue>> {
    let x = ctx.input(0)?.clone();
    let (mut attrs, out) = win.attrs(x.shape.spatial);
    if let Some(c) = count_include_pad {
        attrs.push(("count_include_pad", OnnxAttr::Int(c)));
    }
    let y = ctx.node(op, &[&x.name], attrs);
    Ok(vec![OnnxValue {
        name: y,
        shape: ActShape::images(out[0], out[1], x.shape.channels),
        lengths: x.lengths,
    }])
}

/// A 1-D window's settings.
#[derive(Clone, Copy)]
struct Win1 {
    size: usize,
    stride: usize,
    dilation: usize,
    padding: Padding1d,
}

impl Win1 {
    fn extent(&self) -> usize {
        self.dilation * (self.size - 1) + 1
    }

    /// The window attributes and, with lengths, the new lengths. `'same'`
    /// with a stride pads each sequence after its own length, which one
    /// padded batch cannot do: refused when the export has `sequence_lens`.
    fn attrs(
        &self,
        ctx: &mut OnnxLayerCtx,
        lengths: Option<&str>,
    ) -> Result<(Attrs, Option<String>)> {
        let mut attrs = vec![
            ("kernel_shape", OnnxAttr::Ints(vec![self.size as i64])),
            ("strides", OnnxAttr::Ints(vec![self.stride as i64])),
        ];
        let pads = match self.padding {
            Padding1d::Same if self.stride == 1 => {
                let total = self.extent() - 1;
                [total / 2, total - total / 2]
            }
            Padding1d::Same => {
                if lengths.is_some() {
                    return Err(ctx
                        .unsupported(
                            "'same' padding with a stride depends on each sequence's length; \
                             export without sequence_lens",
                        )
                        .into());
                }
                attrs.push(("auto_pad", OnnxAttr::String("SAME_UPPER".into())));
                return Ok((attrs, None));
            }
            Padding1d::Causal => [self.extent() - 1, 0],
            Padding1d::Explicit(p) => p,
        };
        attrs.push(("pads", OnnxAttr::Ints(vec![pads[0] as i64, pads[1] as i64])));
        let keeps = self.stride == 1 && pads[0] + pads[1] + 1 == self.extent();
        let lengths = match lengths {
            Some(l) if !keeps => Some(masks::window_lengths(
                ctx.graph,
                ctx.layer,
                l,
                pads[0] + pads[1],
                self.extent(),
                self.stride,
            )),
            other => other.map(str::to_string),
        };
        Ok((attrs, lengths))
    }
}

/// Runs `op` on the time-major sequence `x` `[T, B, C]` as `[B, C, T]`,
/// padded steps set to `fill` first (with lengths); returns `[T', B, C']`.
fn over_time(
    ctx: &mut OnnxLayerCtx,
    x: &OnnxValue,
    fill: f32,
    op: &str,
    extra_inputs: &[&str],
    attrs: Vec<(&'static str, OnnxAttr)>,
) -> String {
    let mut input = x.name.clone();
    if let Some(l) = &x.lengths {
        input = masks::fill_padding(ctx.graph, ctx.layer, &input, l, fill);
    }
    let bct = ctx.graph.transpose(ctx.layer, &input, &[1, 2, 0]);
    let mut inputs = vec![bct.as_str()];
    inputs.extend_from_slice(extra_inputs);
    let y = ctx.node(op, &inputs, attrs);
    ctx.graph.transpose(ctx.layer, &y, &[2, 0, 1])
}

fn conv1d(ctx: &mut OnnxLayerCtx, l: &Convolution1d) -> Result<Vec<OnnxValue>> {
    let x = ctx.input(0)?.clone();
    if l.padding_value != ConvPaddingValue::Value(0.0) {
        return Err(ctx
            .unsupported(format!(
                "padding value {:?} is not exported (only zeros)",
                l.padding_value
            ))
            .into());
    }
    let win = Win1 {
        size: l.filter_size,
        stride: l.stride,
        dilation: l.dilation_factor,
        padding: l.padding,
    };
    let (mut attrs, lengths) = win.attrs(ctx, x.lengths.as_deref())?;
    attrs.push(("dilations", OnnxAttr::Ints(vec![l.dilation_factor as i64])));
    let w = ctx.param("Weights")?.clone();
    let b = ctx.param("Bias")?.clone();
    let wv = ctx.float("Weights", w.shape(), w.iter().copied().collect());
    let bv = ctx.float("Bias", b.shape(), b.iter().copied().collect());
    let y = over_time(ctx, &x, 0.0, "Conv", &[&wv, &bv], attrs);
    Ok(vec![OnnxValue {
        name: y,
        shape: ActShape::sequence(l.num_filters),
        lengths,
    }])
}

fn pool1d(
    ctx: &mut OnnxLayerCtx,
    op: &str,
    win: &Win1,
    count_include_pad: Option<bool>,
) -> Result<Vec<OnnxValue>> {
    let x = ctx.input(0)?.clone();
    if count_include_pad == Some(false) && x.lengths.is_some() {
        return Err(ctx
            .unsupported(
                "average pooling with padding value 'mean' counts each sequence's real \
                 steps, which one padded batch cannot do; export without sequence_lens",
            )
            .into());
    }
    let (mut attrs, lengths) = win.attrs(ctx, x.lengths.as_deref())?;
    let fill = match count_include_pad {
        Some(c) => {
            attrs.push(("count_include_pad", OnnxAttr::Int(i64::from(c))));
            0.0
        }
        None => f32::NEG_INFINITY,
    };
    let y = over_time(ctx, &x, fill, op, &[], attrs);
    Ok(vec![OnnxValue {
        name: y,
        shape: x.shape,
        lengths,
    }])
}

/// Mean or maximum over time: `[T, B, C]` → `[B, C]`, real steps only.
fn global_pool(ctx: &mut OnnxLayerCtx, max: bool) -> Result<Vec<OnnxValue>> {
    let x = ctx.input(0)?.clone();
    let axes = ctx.int64("axes", &[1], vec![0]);
    let keep = vec![("keepdims", OnnxAttr::Int(0))];
    let reduce = |ctx: &mut OnnxLayerCtx, op: &str, input: &str| {
        if ctx.opset >= 18 || op == "ReduceSum" {
            ctx.node(op, &[input, &axes], keep.clone())
        } else {
            let mut a = keep.clone();
            a.push(("axes", OnnxAttr::Ints(vec![0])));
            ctx.node(op, &[input], a)
        }
    };
    let y = match (&x.lengths, max) {
        (None, false) => reduce(ctx, "ReduceMean", &x.name),
        (None, true) => reduce(ctx, "ReduceMax", &x.name),
        (Some(l), true) => {
            let f = masks::fill_padding(ctx.graph, ctx.layer, &x.name, l, f32::NEG_INFINITY);
            reduce(ctx, "ReduceMax", &f)
        }
        (Some(l), false) => {
            let f = masks::fill_padding(ctx.graph, ctx.layer, &x.name, l, 0.0);
            let sum = reduce(ctx, "ReduceSum", &f);
            let n = ctx.node("Cast", &[l], vec![("to", OnnxAttr::Int(1))]);
            let ax = ctx.int64("axis1", &[1], vec![1]);
            let n = ctx.node("Unsqueeze", &[&n, &ax], vec![]);
            ctx.node("Div", &[&sum, &n], vec![])
        }
    };
    Ok(vec![OnnxValue {
        name: y,
        shape: ActShape::features(x.shape.channels),
        lengths: None,
    }])
}
