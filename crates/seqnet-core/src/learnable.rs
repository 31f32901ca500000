//! Learnable parameters with their gradients and per-parameter factors.

use ndarray::ArrayD;

/// One learnable array of a layer, under MATLAB's name (`InputWeights`, `Bias`, …).
#[derive(Debug, Clone)]
pub struct Learnable {
    pub name: &'static str,
    pub value: ArrayD<f32>,
    /// Gradient of the loss, same shape as `value`; written by the layer's backward.
    pub grad: ArrayD<f32>,
    /// Multiplies the global learning rate (MATLAB's `*LearnRateFactor`).
    pub learn_rate_factor: f32,
    /// Multiplies the global L2 regularization (MATLAB's `*L2Factor`: 1 for weights, 0 for biases).
    pub l2_factor: f32,
}

impl Learnable {
    /// A weight: L2 factor 1.
    pub fn weights(name: &'static str, value: ArrayD<f32>) -> Self {
        Self::new(name, value, 1.0)
    }

    /// A bias or offset: L2 factor 0, as MATLAB.
    pub fn bias(name: &'static str, value: ArrayD<f32>) -> Self {
        Self::new(name, value, 0.0)
    }

    fn new(name: &'static str, value: ArrayD<f32>, l2_factor: f32) -> Self {
        let grad = ArrayD::zeros(value.raw_dim());
        Learnable {
            name,
            value,
            grad,
            learn_rate_factor: 1.0,
            l2_factor,
        }
    }
}

/// A non-learnable array a layer keeps and a model file must store
/// (normalization statistics, batch-norm running statistics).
#[derive(Debug, Clone)]
pub struct StateArray {
    pub name: &'static str,
    pub value: ArrayD<f32>,
}
