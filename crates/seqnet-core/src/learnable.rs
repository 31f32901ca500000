//! Learnable parameters with their gradients and per-parameter factors.

use crate::init::{self, BiasInitializer, WeightsInitializer};
use ndarray::{ArcArray, ArrayD, IxDyn};
use rand::rngs::StdRng;

/// One learnable array of a layer, under MATLAB's name (`InputWeights`, `Bias`, …).
#[derive(Debug, Clone)]
pub struct Learnable {
    pub name: &'static str,
    /// The values, shared copy-on-write: [`crate::Network::share`] gives
    /// another network the same arrays without copying them, and the first
    /// write to a shared array (an update) copies it.
    pub value: ArcArray<f32, IxDyn>,
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

    /// The same learnable sharing its value (copy-on-write), with a zero
    /// gradient (untouched pages until a backward writes it).
    pub fn share(&self) -> Self {
        Learnable {
            name: self.name,
            value: self.value.clone(),
            grad: ArrayD::zeros(self.value.raw_dim()),
            learn_rate_factor: self.learn_rate_factor,
            l2_factor: self.l2_factor,
        }
    }

    fn new(name: &'static str, value: ArrayD<f32>, l2_factor: f32) -> Self {
        let grad = ArrayD::zeros(value.raw_dim());
        Learnable {
            name,
            value: value.into_shared(),
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
    /// The values, shared copy-on-write as [`Learnable::value`].
    pub value: ArcArray<f32, IxDyn>,
}

/// How a learnable or state array gets its first values.
#[derive(Debug, Clone, PartialEq)]
pub enum Initializer {
    /// A weight initializer with the array's fans (MATLAB's `WeightsInitializer`).
    Weights {
        init: WeightsInitializer,
        fan_in: usize,
        fan_out: usize,
    },
    /// A bias initializer (MATLAB's `BiasInitializer`), applied to each of
    /// `parts` equal parts (directions) of `gates` equal gate blocks each, so
    /// that `unit-forget-gate` sets the forget gate of every direction.
    Bias {
        init: BiasInitializer,
        parts: usize,
        gates: usize,
    },
    /// Every element the same value.
    Constant(f32),
    /// These values (shape must match the declaration).
    Values(ArrayD<f32>),
}

impl Initializer {
    /// An array of `shape` drawn from `rng` (only the random initializers draw).
    pub fn sample(&self, shape: &[usize], rng: &mut StdRng) -> ArrayD<f32> {
        match self {
            Initializer::Weights {
                init,
                fan_in,
                fan_out,
            } => init::weights(*init, shape, *fan_in, *fan_out, rng),
            Initializer::Bias { init, parts, gates } => {
                let len: usize = shape.iter().product();
                let parts = (*parts).max(1);
                let pieces: Vec<f32> = (0..parts)
                    .flat_map(|_| init::bias(*init, len / parts, *gates, rng).to_vec())
                    .collect();
                ArrayD::from_shape_vec(IxDyn(shape), pieces)
                    .expect("bias parts add up to the declared shape")
            }
            Initializer::Constant(v) => ArrayD::from_elem(IxDyn(shape), *v),
            Initializer::Values(v) => v.clone(),
        }
    }
}

/// A learnable as a layer declares it: name, shape, first values and factors.
#[derive(Debug, Clone, PartialEq)]
pub struct LearnableSpec {
    /// MATLAB's name (`InputWeights`, `Bias`, …); unique within the layer.
    pub name: &'static str,
    pub shape: Vec<usize>,
    pub initializer: Initializer,
    /// Multiplies the global L2 regularization (MATLAB's `*L2Factor`).
    pub l2_factor: f32,
    /// Multiplies the global learning rate (MATLAB's `*LearnRateFactor`).
    pub learn_rate_factor: f32,
}

impl LearnableSpec {
    /// A weight array: L2 factor 1, learning-rate factor 1.
    pub fn weights(name: &'static str, shape: Vec<usize>, initializer: Initializer) -> Self {
        LearnableSpec {
            name,
            shape,
            initializer,
            l2_factor: 1.0,
            learn_rate_factor: 1.0,
        }
    }

    /// A bias or offset: L2 factor 0, learning-rate factor 1, as MATLAB.
    pub fn bias(name: &'static str, shape: Vec<usize>, initializer: Initializer) -> Self {
        LearnableSpec {
            l2_factor: 0.0,
            ..Self::weights(name, shape, initializer)
        }
    }

    /// Sets the L2 and learning-rate factors.
    pub fn factors(mut self, l2_factor: f32, learn_rate_factor: f32) -> Self {
        self.l2_factor = l2_factor;
        self.learn_rate_factor = learn_rate_factor;
        self
    }

    /// The learnable with its first values drawn from `rng`.
    pub fn allocate(&self, rng: &mut StdRng) -> Learnable {
        let value = self.initializer.sample(&self.shape, rng);
        Learnable {
            name: self.name,
            grad: ArrayD::zeros(value.raw_dim()),
            value: value.into_shared(),
            learn_rate_factor: self.learn_rate_factor,
            l2_factor: self.l2_factor,
        }
    }
}

/// A stored statistic as a layer declares it.
#[derive(Debug, Clone, PartialEq)]
pub struct StateSpec {
    pub name: &'static str,
    pub shape: Vec<usize>,
    pub initializer: Initializer,
}

impl StateSpec {
    /// A statistic of `shape` starting at `value` everywhere.
    pub fn constant(name: &'static str, shape: Vec<usize>, value: f32) -> Self {
        StateSpec {
            name,
            shape,
            initializer: Initializer::Constant(value),
        }
    }

    /// The state with its first values.
    pub fn allocate(&self, rng: &mut StdRng) -> StateArray {
        StateArray {
            name: self.name,
            value: self.initializer.sample(&self.shape, rng).into_shared(),
        }
    }
}

impl Initializer {
    /// A one-part, one-gate bias initializer (fully connected, convolution).
    pub fn bias(init: BiasInitializer) -> Self {
        Initializer::Bias {
            init,
            parts: 1,
            gates: 1,
        }
    }
}
