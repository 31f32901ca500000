//! The `cnn1d` template: Wang et al.'s fully convolutional network (FCN,
//! "Time series classification from scratch with deep neural networks: a
//! strong baseline", 2017) as MATLAB layers.

use crate::error::{Error, Result};
use crate::layers::*;

/// The FCN's three blocks: filters `[128, 256, 128]`.
pub const FILTERS: [usize; 3] = [128, 256, 128];
/// The FCN's three blocks: filter sizes `[8, 5, 3]`.
pub const FILTER_SIZES: [usize; 3] = [8, 5, 3];

/// The layers after the input: three blocks of `convolution1d(k, n, 'same')
/// → batchnorm → relu`, global average pooling over time, then the output
/// part (`fc → softmax → classification`, or `fc → regression` when
/// `regression`).
///
/// # Errors
/// [`Error::InvalidOption`] (`filters`, `filter-sizes`) when a size is zero.
pub fn layers(
    filters: [usize; 3],
    filter_sizes: [usize; 3],
    outputs: usize,
    regression: bool,
) -> Result<Vec<Layer>> {
    for (option, v) in [("filters", filters), ("filter-sizes", filter_sizes)] {
        if v.contains(&0) {
            return Err(Error::InvalidOption {
                option,
                message: format!("each of the three blocks needs at least 1, got {v:?}"),
            });
        }
    }
    let mut layers: Vec<Layer> = Vec::new();
    for (i, (&n, &k)) in filters.iter().zip(&filter_sizes).enumerate() {
        let i = i + 1;
        layers.push(
            Convolution1d::new(k, n)
                .padding(Padding1d::Same)
                .name(format!("conv1d_{i}"))
                .into(),
        );
        layers.push(
            BatchNormalization::new()
                .name(format!("batchnorm_{i}"))
                .into(),
        );
        layers.push(Relu::new().name(format!("relu_{i}")).into());
    }
    layers.push(GlobalAveragePooling1d::new().name("gap").into());
    layers.push(FullyConnected::new(outputs).name("fc").into());
    if regression {
        layers.push(RegressionOutput::new().name("regressionoutput").into());
    } else {
        layers.push(Softmax::new().name("softmax").into());
        layers.push(ClassificationOutput::new().name("classoutput").into());
    }
    Ok(layers)
}
