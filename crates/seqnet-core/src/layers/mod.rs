//! Every layer seqnet offers, as a config struct with MATLAB's defaults and
//! builder setters, gathered in the serialisable [`Layer`] enum.

mod activations;
mod batchnorm;
mod conv;
mod dropout;
mod fc;
mod fold;
mod gru;
mod input;
mod lstm;
mod merge;
mod output;
mod pooling;
mod recurrent;
mod softmax;
mod util;

pub use activations::{LeakyRelu, Relu, Sigmoid, Tanh};
pub use batchnorm::BatchNormalization;
pub use conv::{Convolution2d, Padding};
pub use dropout::Dropout;
pub use fc::FullyConnected;
pub use fold::{Flatten, SequenceFolding, SequenceUnfolding};
pub use gru::{Gru, GruKernel};
pub use input::{InputSize, Normalization, SequenceInput};
pub use lstm::{BiLstm, Lstm, LstmConfig, LstmKernel};
pub use merge::{Addition, Concatenation};
pub use output::{ClassificationOutput, RegressionOutput};
pub use pooling::{AveragePooling2d, MaxPooling2d, PoolPaddingValue};
pub use recurrent::{GateActivation, OutputMode, RecurrentState, StateActivation};
pub use softmax::Softmax;

use crate::layer::LayerDef;
use serde::{Deserialize, Serialize};

macro_rules! layer_enum {
    ($($variant:ident => $ty:ty, $tag:literal;)*) => {
        /// One layer of a layer array or graph: its type and settings, not its weights.
        ///
        /// Serialised with a `"type"` tag, e.g. `{"type": "lstm", "name": "lstm", "numHiddenUnits": 100}`.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "type")]
        pub enum Layer {
            $(#[serde(rename = $tag)] $variant($ty),)*
        }

        impl Layer {
            /// The layer's definition: shape inference, ports, kernel building.
            pub fn def(&self) -> &dyn LayerDef {
                match self { $(Layer::$variant(l) => l,)* }
            }

            /// Sets the layer's name.
            pub fn set_name(&mut self, name: impl Into<String>) {
                match self { $(Layer::$variant(l) => l.name = name.into(),)* }
            }

            /// The layer's name.
            pub fn name(&self) -> &str {
                self.def().name()
            }

            /// The JSON tag of the layer's type (e.g. `"lstm"`), also the stem of auto-names.
            pub fn tag(&self) -> &'static str {
                match self { $(Layer::$variant(_) => $tag,)* }
            }
        }

        $(impl From<$ty> for Layer {
            fn from(l: $ty) -> Self { Layer::$variant(l) }
        })*
    };
}

layer_enum! {
    SequenceInput => SequenceInput, "sequenceInput";
    FullyConnected => FullyConnected, "fullyConnected";
    Softmax => Softmax, "softmax";
    ClassificationOutput => ClassificationOutput, "classification";
    RegressionOutput => RegressionOutput, "regression";
    Dropout => Dropout, "dropout";
    Relu => Relu, "relu";
    LeakyRelu => LeakyRelu, "leakyRelu";
    Tanh => Tanh, "tanh";
    Sigmoid => Sigmoid, "sigmoid";
    SequenceFolding => SequenceFolding, "sequenceFolding";
    SequenceUnfolding => SequenceUnfolding, "sequenceUnfolding";
    Flatten => Flatten, "flatten";
    Addition => Addition, "addition";
    Concatenation => Concatenation, "concatenation";
    Lstm => Lstm, "lstm";
    BiLstm => BiLstm, "bilstm";
    Gru => Gru, "gru";
    Convolution2d => Convolution2d, "convolution2d";
    BatchNormalization => BatchNormalization, "batchNormalization";
    MaxPooling2d => MaxPooling2d, "maxPooling2d";
    AveragePooling2d => AveragePooling2d, "averagePooling2d";
}

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
