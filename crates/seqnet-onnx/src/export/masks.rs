//! Which steps of a right-padded batch are real, as ONNX tensors, for the
//! layers that look across time (1-D windows, global pooling, a BiLSTM's
//! 'last' output) when the export has `sequence_lens`.

use seqnet_core::onnx::{OnnxAttr, OnnxGraph};

/// A boolean `[T, B, 1]` tensor, true at each sequence's real steps (`t <
/// lengths[b]`), for the time-major `x` `[T, B, …]` and int32 `lengths` `[B]`.
pub(crate) fn real_steps(g: &mut OnnxGraph, stem: &str, x: &str, lengths: &str) -> String {
    let shape = g.node(stem, "Shape", &[x], vec![]);
    let zero = g.int64(&format!("{stem}/zero"), &[], vec![0]);
    let one = g.int64(&format!("{stem}/one"), &[], vec![1]);
    let t = g.node(
        stem,
        "Gather",
        &[&shape, &zero],
        vec![("axis", OnnxAttr::Int(0))],
    );
    let steps = g.node(stem, "Range", &[&zero, &t, &one], vec![]);
    let ax1 = g.int64(&format!("{stem}/axis1"), &[1], vec![1]);
    let steps = g.node(stem, "Unsqueeze", &[&steps, &ax1], vec![]);
    let len = g.node(stem, "Cast", &[lengths], vec![("to", OnnxAttr::Int(7))]);
    let ax0 = g.int64(&format!("{stem}/axis0"), &[1], vec![0]);
    let len = g.node(stem, "Unsqueeze", &[&len, &ax0], vec![]);
    let real = g.node(stem, "Less", &[&steps, &len], vec![]);
    let ax2 = g.int64(&format!("{stem}/axis2"), &[1], vec![2]);
    g.node(stem, "Unsqueeze", &[&real, &ax2], vec![])
}

/// `x` `[T, B, C]` with its padded steps set to `fill`.
pub(crate) fn fill_padding(
    g: &mut OnnxGraph,
    stem: &str,
    x: &str,
    lengths: &str,
    fill: f32,
) -> String {
    let real = real_steps(g, stem, x, lengths);
    let fill = g.float(&format!("{stem}/fill"), &[], vec![fill]);
    g.node(stem, "Where", &[&real, x, &fill], vec![])
}

/// The new int32 lengths after a window of `extent` steps with `stride` and
/// `before + after` padding: `(L + before + after − extent) / stride + 1`.
pub(crate) fn window_lengths(
    g: &mut OnnxGraph,
    stem: &str,
    lengths: &str,
    pad: usize,
    extent: usize,
    stride: usize,
) -> String {
    let shift = g.int64(
        &format!("{stem}/shift"),
        &[],
        vec![pad as i64 - extent as i64],
    );
    let stride = g.int64(&format!("{stem}/stride"), &[], vec![stride as i64]);
    let one = g.int64(&format!("{stem}/one"), &[], vec![1]);
    let l = g.node(stem, "Cast", &[lengths], vec![("to", OnnxAttr::Int(7))]);
    let l = g.node(stem, "Add", &[&l, &shift], vec![]);
    let l = g.node(stem, "Div", &[&l, &stride], vec![]);
    let l = g.node(stem, "Add", &[&l, &one], vec![]);
    g.node(stem, "Cast", &[&l], vec![("to", OnnxAttr::Int(6))])
}
