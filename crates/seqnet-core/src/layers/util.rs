//! Small helpers shared by the layer kernels.

use crate::activation::Activation;
use crate::error::{Error, Result};
use crate::format::ActShape;
use crate::layer::ShapeError;
use ndarray::{ArcArray, ArrayD, ArrayView2, ArrayViewMut2, Ix2, IxDyn};

/// The one input's shape, or a shape error at port 0.
pub fn single(inputs: &[ActShape]) -> Result<ActShape, ShapeError> {
    inputs
        .first()
        .copied()
        .ok_or_else(|| ShapeError::new(0, "no input"))
}

/// Data whose last axis is the channel axis, viewed as `[rows, C]`.
pub fn as_rows(data: &ArrayD<f32>) -> ArrayView2<'_, f32> {
    let c = *data.shape().last().unwrap_or(&1);
    let n = data.len() / c.max(1);
    data.view()
        .into_shape_with_order((n, c))
        .expect("as_rows: standard layout")
        .into_dimensionality::<Ix2>()
        .expect("2-D")
}

/// Mutable `[rows, C]` view of data whose last axis is the channel axis.
pub fn as_rows_mut(data: &mut ArrayD<f32>) -> ArrayViewMut2<'_, f32> {
    let c = *data.shape().last().unwrap_or(&1);
    let n = data.len() / c.max(1);
    data.view_mut()
        .into_shape_with_order((n, c))
        .expect("as_rows_mut: standard layout")
        .into_dimensionality::<Ix2>()
        .expect("2-D")
}

/// The gradient for output port 0, or zeros shaped like `like` when none flows back.
pub fn grad_or_zeros(grads: &mut [Option<ArrayD<f32>>], like: &[usize]) -> ArrayD<f32> {
    grads
        .get_mut(0)
        .and_then(Option::take)
        .unwrap_or_else(|| ArrayD::zeros(like))
}

/// Checks a run-time input against the shape the network was built for.
pub fn check_shape(layer: &str, port: &str, got: &Activation, want: &ActShape) -> Result<()> {
    let shape = got.shape();
    if shape != *want {
        return Err(Error::layer(
            layer,
            format!(
                "input port '{port}' expects {want} ({}), got {shape} ({})",
                want.format.label(),
                shape.format.label()
            ),
        ));
    }
    Ok(())
}

/// The error for a backward called before its forward.
pub fn no_forward(layer: &str) -> Error {
    Error::layer(layer, "backward called before forward")
}

/// The allocation of `last` (a layer's previous output or scratch array),
/// when nothing else holds it anymore, holding exactly `len` values, for a
/// caller that overwrites every one of them. Reusing it keeps its pages
/// mapped: a fresh allocation of a few MB is mapped anew by the allocator
/// and faulted in page by page on every pass. Its values: the last pass's
/// values are kept where the allocation had them (no zeroing pass over
/// memory about to be written), zeros past them. A fresh vector of zeros
/// when nothing can be reused.
pub fn recycled_len<S, D>(last: Option<ndarray::ArrayBase<S, D>>, len: usize) -> Vec<f32>
where
    S: ndarray::Data<Elem = f32>,
    D: ndarray::Dimension,
{
    let mut v = match last.map(ndarray::ArrayBase::try_into_owned_nocopy) {
        Some(Ok(a)) if a.is_standard_layout() => a.into_raw_vec_and_offset().0,
        _ => Vec::new(),
    };
    if v.len() >= len {
        v.truncate(len);
    } else {
        v.resize(len, 0.0);
    }
    v
}

/// A layer's last two outputs, whose allocations its next forward reuses.
///
/// Why two: a consumer that keeps its input for backward (fully connected,
/// layer normalization, attention) still holds the last output when this
/// layer runs again (it runs after this layer), so that allocation is not
/// free; the one before it is (the consumer let it go in the last pass).
/// Reusing it keeps its pages mapped: a fresh allocation of a few MB is
/// mapped anew, zeroed and faulted in page by page on every pass.
#[derive(Default)]
pub struct LastOutputs([Option<ArcArray<f32, IxDyn>>; 2]);

impl LastOutputs {
    /// `len` values for the next output, for a caller that overwrites every
    /// one: the older output's allocation when nothing else holds it, else
    /// the newer one's, else a fresh vector (values as [`recycled_len`]
    /// leaves them).
    pub fn buffer(&mut self, len: usize) -> Vec<f32> {
        for slot in [1, 0] {
            if let Some(a) = self.0[slot].take() {
                match a.try_into_owned_nocopy() {
                    Ok(a) => return recycled_len(Some(a), len),
                    // Still held elsewhere: kept for a later pass.
                    Err(a) => self.0[slot] = Some(a),
                }
            }
        }
        recycled_len(None::<ArcArray<f32, IxDyn>>, len)
    }

    /// Records `y` as the newest output (the older one is let go).
    pub fn keep(&mut self, y: &ArcArray<f32, IxDyn>) {
        self.0[1] = self.0[0].take();
        self.0[0] = Some(y.clone());
    }
}

/// Elements per rayon job in the element-wise passes (activations, addition):
/// long enough that handing a run to the other thread pays off.
pub const RUN: usize = 1 << 14;
