//! Every layer seqnet offers, as a config struct with MATLAB's defaults and
//! builder setters, each a registered [`crate::LayerType`]; [`crate::Layer`]
//! holds any of them.

mod activations;
mod attention;
mod batchnorm;
mod conv;
mod conv1d;
mod dropout;
mod embedding;
mod fc;
mod fold;
mod global_pooling1d;
mod gru;
mod input;
mod layernorm;
mod lstm;
mod merge;
mod output;
mod pooling;
mod pooling1d;
mod position;
mod recurrent;
mod softmax;
mod util;
mod window1d;

pub use activations::{LeakyRelu, Relu, Sigmoid, Tanh};
pub use attention::{AttentionMask, SelfAttention};
pub use batchnorm::BatchNormalization;
pub use conv::{Convolution2d, Padding};
pub use conv1d::{ConvPaddingValue, Convolution1d};
pub use dropout::Dropout;
pub use embedding::WordEmbedding;
pub use fc::FullyConnected;
pub use fold::{Flatten, SequenceFolding, SequenceUnfolding};
pub use global_pooling1d::{GlobalAveragePooling1d, GlobalMaxPooling1d};
pub use gru::{BiGru, Gru, GruConfig, GruKernel, ResetGateMode};
pub use input::{InputSize, Normalization, SequenceInput};
pub use layernorm::LayerNormalization;
pub use lstm::{BiLstm, Lstm, LstmConfig, LstmKernel};
pub use merge::{Addition, Concatenation};
pub use output::{ClassificationOutput, RegressionOutput};
pub use pooling::{AveragePooling2d, MaxPooling2d, PoolPaddingValue};
pub use pooling1d::{AveragePooling1d, MaxPooling1d};
pub use position::{PositionEmbedding, SinusoidalPositionEncoding};
pub use recurrent::{
    GateActivation, OutputMode, RecurrentOptions, RecurrentState, StateActivation,
};
pub use softmax::Softmax;
pub use window1d::Padding1d;

pub use crate::registry::Layer;

use crate::layer::LayerType;
use crate::registry::{entry_of, Entry};

macro_rules! layer_types {
    ($($ty:ty => $tag:literal;)*) => {
        $(impl LayerType for $ty {
            const TYPE: &'static str = $tag;
        })*

        /// Every built-in layer type's registry entry: they register exactly as
        /// a user's layer does (see [`crate::register_layer`]).
        pub(crate) fn builtins() -> Vec<(&'static str, Entry)> {
            vec![$(entry_of::<$ty>(),)*]
        }
    };
}

layer_types! {
    SequenceInput => "sequenceInput";
    FullyConnected => "fullyConnected";
    Softmax => "softmax";
    ClassificationOutput => "classification";
    RegressionOutput => "regression";
    Dropout => "dropout";
    Relu => "relu";
    LeakyRelu => "leakyRelu";
    Tanh => "tanh";
    Sigmoid => "sigmoid";
    SequenceFolding => "sequenceFolding";
    SequenceUnfolding => "sequenceUnfolding";
    Flatten => "flatten";
    Addition => "addition";
    Concatenation => "concatenation";
    Lstm => "lstm";
    BiLstm => "bilstm";
    Gru => "gru";
    BiGru => "bigru";
    Convolution2d => "convolution2d";
    BatchNormalization => "batchNormalization";
    MaxPooling2d => "maxPooling2d";
    AveragePooling2d => "averagePooling2d";
    Convolution1d => "convolution1d";
    MaxPooling1d => "maxPooling1d";
    AveragePooling1d => "averagePooling1d";
    GlobalMaxPooling1d => "globalMaxPooling1d";
    GlobalAveragePooling1d => "globalAveragePooling1d";
    LayerNormalization => "layerNormalization";
    WordEmbedding => "wordEmbedding";
    SelfAttention => "selfAttention";
    PositionEmbedding => "positionEmbedding";
    SinusoidalPositionEncoding => "sinusoidalPositionEncoding";
}

/// Implements [`crate::LayerDef::name`] and [`crate::LayerDef::set_name`] for
/// a config with a `name` field (inside its `impl LayerDef`).
macro_rules! name_field {
    () => {
        fn name(&self) -> &str {
            &self.name
        }
        fn set_name(&mut self, name: String) {
            self.name = name;
        }
    };
}
pub(crate) use name_field;

/// Implements the `name` setter shared by every layer config.
macro_rules! named {
    ($ty:ty) => {
        impl $ty {
            /// Sets the layer's name (MATLAB's `'Name'`).
            pub fn name(mut self, name: impl Into<String>) -> Self {
                self.name = name.into();
                self
            }
        }
    };
}
pub(crate) use named;

/// The builder setters of a layer config with `Weights` and `Bias` learnables
/// (fields `weights_initializer`, `bias_initializer`, `weight_l2_factor`,
/// `bias_l2_factor`, `weight_learn_rate_factor`, `bias_learn_rate_factor`),
/// inside its `impl`; the arguments are the weights' and the bias's shapes
/// for the docs.
macro_rules! weight_bias_options {
    ($weights:literal, $bias:literal) => {
        #[doc = concat!("How `Weights` `", $weights, "` start.")]
        pub fn weights_initializer(mut self, i: WeightsInitializer) -> Self {
            self.weights_initializer = i;
            self
        }
        #[doc = concat!("How `Bias` `", $bias, "` starts.")]
        pub fn bias_initializer(mut self, i: BiasInitializer) -> Self {
            self.bias_initializer = i;
            self
        }
        /// L2 factor of `Weights`.
        pub fn weight_l2_factor(mut self, f: f32) -> Self {
            self.weight_l2_factor = f;
            self
        }
        /// L2 factor of `Bias`.
        pub fn bias_l2_factor(mut self, f: f32) -> Self {
            self.bias_l2_factor = f;
            self
        }
        /// Learning-rate factor of `Weights`.
        pub fn weight_learn_rate_factor(mut self, f: f32) -> Self {
            self.weight_learn_rate_factor = f;
            self
        }
        /// Learning-rate factor of `Bias`.
        pub fn bias_learn_rate_factor(mut self, f: f32) -> Self {
            self.bias_learn_rate_factor = f;
            self
        }
    };
}
pub(crate) use weight_bias_options;
