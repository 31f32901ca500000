//! The two faces of a layer: its definition (architecture, serialisable,
//! shape inference) and its kernel (learnables, forward, backward).

use crate::activation::Activation;
use crate::error::Result;
use crate::format::ActShape;
use crate::learnable::{Learnable, StateArray};
use ndarray::ArrayD;
use rand::rngs::StdRng;

/// Whether the network runs for training or for prediction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Dropout drops, batch normalization uses batch statistics.
    Training,
    /// Dropout passes through, batch normalization uses running statistics.
    Inference,
}

/// What a forward pass tells each layer besides its inputs.
pub struct ForwardCtx<'a> {
    pub mode: Mode,
    /// Recurrent layers start from their kept state and keep their final state
    /// (`predict_and_update_state`, and chunks of a split sequence).
    pub stateful: bool,
    /// Randomness for dropout; seeded by the caller.
    pub rng: &'a mut StdRng,
    /// For output layers: the targets, same format and layout as the layer's input
    /// (one-hot classes or responses). Without them the layer computes no loss.
    pub target: Option<&'a Activation>,
}

/// A problem shape inference found at one input port (by index).
#[derive(Debug, Clone, PartialEq)]
pub struct ShapeError {
    pub port: usize,
    pub message: String,
}

impl ShapeError {
    pub fn new(port: usize, message: impl Into<String>) -> Self {
        ShapeError {
            port,
            message: message.into(),
        }
    }
}

/// The architecture of one layer: what the graph, the checks and the summary use.
pub trait LayerDef {
    /// The layer's name, unique in its graph.
    fn name(&self) -> &str;
    /// A short description for the summary, e.g. `"LSTM"`.
    fn type_name(&self) -> &'static str;
    /// Names of the input ports; input layers have none.
    fn input_ports(&self) -> &'static [&'static str] {
        &["in"]
    }
    /// Names of the output ports; output layers have none.
    fn output_ports(&self) -> &'static [&'static str] {
        &["out"]
    }
    /// Whether this layer takes the network's data (its kernel's forward gets it as its one input).
    fn is_input(&self) -> bool {
        false
    }
    /// Whether this layer computes a loss.
    fn is_output(&self) -> bool {
        false
    }
    /// The output shapes for the given input shapes (one per port, in order).
    fn infer(&self, inputs: &[ActShape]) -> Result<Vec<ActShape>, ShapeError>;
    /// Learnable names and shapes for these input shapes.
    fn learnable_shapes(&self, _inputs: &[ActShape]) -> Vec<(&'static str, Vec<usize>)> {
        Vec::new()
    }
    /// The kernel, with learnables initialized from `rng`. `inputs` are inferred shapes.
    fn build(&self, inputs: &[ActShape], rng: &mut StdRng) -> Result<Box<dyn LayerKernel>>;
}

/// A layer ready to run: its learnables and its forward and backward passes.
///
/// Forward keeps what backward needs; backward must follow the forward it belongs to.
pub trait LayerKernel: Send {
    /// One output per output port. An input layer gets the network's data as its one input.
    fn forward(&mut self, inputs: &[&Activation], ctx: &mut ForwardCtx) -> Result<Vec<Activation>>;

    /// Takes the loss gradient for each output port (`None` where nothing flows
    /// back) and returns it for each input port (`None` where it has no meaning,
    /// such as the `miniBatchSize` port). Writes the learnables' gradients.
    /// Each returned gradient has the layout of that input's data.
    fn backward(
        &mut self,
        grad_outputs: Vec<Option<ArrayD<f32>>>,
    ) -> Result<Vec<Option<ArrayD<f32>>>>;

    fn learnables(&self) -> Vec<&Learnable> {
        Vec::new()
    }
    fn learnables_mut(&mut self) -> Vec<&mut Learnable> {
        Vec::new()
    }
    /// Non-learnable arrays a model file stores (statistics).
    fn states(&self) -> Vec<&StateArray> {
        Vec::new()
    }
    fn states_mut(&mut self) -> Vec<&mut StateArray> {
        Vec::new()
    }
    /// Output layers: the loss of the last forward that had targets.
    fn loss(&self) -> Option<f32> {
        None
    }
    /// Recurrent layers: forget the state kept by stateful forwards.
    fn reset_state(&mut self) {}

    /// Tells the kernel whether its backward must return the gradient with
    /// respect to its inputs (default: yes). [`crate::Network::set_input_gradients`]
    /// turns it off for layers whose inputs lead back to nothing that needs a
    /// gradient (no learnable upstream, input gradients not wanted): their
    /// backward may then return `None` for those inputs and skip the work.
    fn set_input_grad_needed(&mut self, _needed: bool) {}

    /// Whether [`LayerKernel::forward_step`] runs for this layer (see [`crate::Network::forward_step`]).
    fn can_step(&self) -> bool {
        false
    }

    /// The lean streaming path: one observation, one time step, inference
    /// mode, recurrent state kept, as a stateful inference forward of a
    /// `[1, 1, C]` sequence would compute, without building activations.
    /// `x` holds the input's features (for input layers, the raw data); the
    /// output's features are written to `out` (cleared first). Only called
    /// when [`LayerKernel::can_step`] is true. It keeps nothing for a backward.
    fn forward_step(&mut self, _x: &[f32], _out: &mut Vec<f32>) -> Result<()> {
        Err(crate::error::Error::InvalidInput(
            "this layer has no streaming step".into(),
        ))
    }
}
