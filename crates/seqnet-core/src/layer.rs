//! The two faces of a layer: its definition (architecture, serialisable,
//! shape inference) and its kernel (learnables, forward, backward).

use crate::activation::Activation;
use crate::error::Error;
use crate::error::Result;
use crate::format::ActShape;
use crate::learnable::{Learnable, LearnableSpec, StateArray, StateSpec};
use crate::onnx::{OnnxLayerCtx, OnnxValue};
use crate::torch::TorchLayout;
use ndarray::ArrayD;
use rand::rngs::StdRng;
use serde::de::DeserializeOwned;
use serde::Serialize;

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

/// The architecture of one layer: what the graph, the checks, the summary,
/// model files and importers use. Built-in layers and a user's own layers
/// implement it alike; with [`LayerType`] and [`crate::register_layer`] a
/// layer can be saved in graph JSON and model files and loaded back.
///
/// A definition declares its learnables and stored statistics as data
/// ([`LayerDef::learnables`], [`LayerDef::states`]); the network allocates
/// and initializes them and hands them to [`LayerDef::build`].
pub trait LayerDef: std::fmt::Debug + Send + Sync + 'static {
    /// The layer's name, unique in its graph.
    fn name(&self) -> &str;
    /// Renames the layer (a graph names unnamed layers after their type).
    fn set_name(&mut self, name: String);
    /// A short description for the summary, e.g. `"LSTM"`.
    fn type_name(&self) -> &'static str;
    /// Names of the input ports; input layers have none. See [`numbered_ports`]
    /// for layers with a configurable number of inputs.
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
    /// The learnables for these input shapes, in the order they are
    /// initialized (each draws from the network's seeded generator in turn).
    fn learnables(&self, _inputs: &[ActShape]) -> Vec<LearnableSpec> {
        Vec::new()
    }
    /// The non-learnable arrays a model file stores (normalization and
    /// running statistics), for these input shapes.
    fn states(&self, _inputs: &[ActShape]) -> Vec<StateSpec> {
        Vec::new()
    }
    /// The kernel. `inputs` are the inferred input shapes; `params` holds the
    /// learnables and states declared above, allocated and initialized.
    fn build(&self, inputs: &[ActShape], params: Params) -> Result<Box<dyn LayerKernel>>;
    /// Where the layer's learnables and states come from in a PyTorch state
    /// dict (`None`: the layer takes nothing from PyTorch).
    fn torch_layout(&self) -> Option<TorchLayout> {
        None
    }
    /// Writes the layer as ONNX nodes (see [`crate::onnx`]) and returns its
    /// outputs, one per output port. The built-in layers are exported by the
    /// crate `seqnet-onnx`; a user's layer implements this to be exportable.
    /// The default is an error naming the layer: it has no ONNX export.
    fn onnx_export(&self, ctx: &mut OnnxLayerCtx) -> Result<Vec<OnnxValue>> {
        Err(ctx.unsupported(format!(
            "layer type '{}' has no ONNX export (implement LayerDef::onnx_export)",
            self.type_name()
        )))
    }
}

/// Port names `in1` … `inN` (`N` clamped to 1..=16), for layers with a
/// configurable number of inputs such as [`crate::layers::Addition`].
pub fn numbered_ports(n: usize) -> &'static [&'static str] {
    const PORTS: [&str; 16] = [
        "in1", "in2", "in3", "in4", "in5", "in6", "in7", "in8", "in9", "in10", "in11", "in12",
        "in13", "in14", "in15", "in16",
    ];
    &PORTS[..n.clamp(1, PORTS.len())]
}

/// A layer type that graph JSON and model files can hold: its settings
/// serialise with serde, and [`LayerType::TYPE`] is the `"type"` tag it is
/// saved under and registered by ([`crate::register_layer`]).
pub trait LayerType: LayerDef + Clone + PartialEq + Serialize + DeserializeOwned {
    /// The tag in graph JSON, e.g. `"lstm"`; also the stem of automatic names.
    const TYPE: &'static str;
}

/// The learnables and states of one layer, allocated and initialized by the
/// network from the layer's declarations, for [`LayerDef::build`] to take.
#[derive(Debug, Default)]
pub struct Params {
    learnables: Vec<Learnable>,
    states: Vec<StateArray>,
    layer: String,
}

impl Params {
    /// Allocates and initializes `learnables` and `states` of layer `layer`,
    /// drawing from `rng` in declaration order.
    pub fn allocate(
        layer: &str,
        learnables: &[LearnableSpec],
        states: &[StateSpec],
        rng: &mut StdRng,
    ) -> Self {
        Params {
            learnables: learnables.iter().map(|s| s.allocate(rng)).collect(),
            states: states.iter().map(|s| s.allocate(rng)).collect(),
            layer: layer.to_string(),
        }
    }

    /// Learnables and states with their values (no initialization): for
    /// rebuilding a kernel around existing, shared arrays.
    pub fn from_parts(layer: &str, learnables: Vec<Learnable>, states: Vec<StateArray>) -> Self {
        Params {
            learnables,
            states,
            layer: layer.to_string(),
        }
    }

    /// Takes learnable `name`; an error naming the layer if it was not declared.
    pub fn learnable(&mut self, name: &str) -> Result<Learnable> {
        let i = self
            .learnables
            .iter()
            .position(|l| l.name == name)
            .ok_or_else(|| self.missing(name))?;
        Ok(self.learnables.remove(i))
    }

    /// Takes state `name`; an error naming the layer if it was not declared.
    pub fn state(&mut self, name: &str) -> Result<StateArray> {
        let i = self
            .states
            .iter()
            .position(|l| l.name == name)
            .ok_or_else(|| self.missing(name))?;
        Ok(self.states.remove(i))
    }

    /// Every learnable left, in declaration order (for kernels that keep them in a `Vec`).
    pub fn take_learnables(&mut self) -> Vec<Learnable> {
        std::mem::take(&mut self.learnables)
    }

    /// Every state left, in declaration order.
    pub fn take_states(&mut self) -> Vec<StateArray> {
        std::mem::take(&mut self.states)
    }

    fn missing(&self, name: &str) -> Error {
        Error::Learnable {
            layer: self.layer.clone(),
            learnable: name.to_string(),
            message: "the kernel asks for it, but the layer does not declare it".into(),
        }
    }
}

/// Builds `def`'s kernel: allocates and initializes its declared learnables
/// and states from `rng`, then calls [`LayerDef::build`] and checks that the
/// kernel holds exactly what was declared (names and shapes, in order).
pub fn build_kernel<D: LayerDef + ?Sized>(
    def: &D,
    inputs: &[ActShape],
    rng: &mut StdRng,
) -> Result<Box<dyn LayerKernel>> {
    let (learnables, states) = (def.learnables(inputs), def.states(inputs));
    let params = Params::allocate(def.name(), &learnables, &states, rng);
    let kernel = def.build(inputs, params)?;
    let held: Vec<(&str, &[usize])> = kernel
        .learnables()
        .into_iter()
        .map(|l| (l.name, l.value.shape()))
        .chain(
            kernel
                .states()
                .into_iter()
                .map(|s| (s.name, s.value.shape())),
        )
        .collect();
    let declared: Vec<(&str, &[usize])> = learnables
        .iter()
        .map(|l| (l.name, l.shape.as_slice()))
        .chain(states.iter().map(|s| (s.name, s.shape.as_slice())))
        .collect();
    if held != declared {
        return Err(Error::layer(
            def.name(),
            format!(
                "the kernel holds {held:?} but the layer declares {declared:?} (names and shapes, in order)"
            ),
        ));
    }
    Ok(kernel)
}

/// [`build_kernel`] as a method of every layer definition, for using a layer
/// alone (tests, gradient checks): `Lstm::new(4).build_kernel(&shapes, &mut rng)`.
pub trait BuildKernel {
    /// See [`build_kernel`].
    fn build_kernel(&self, inputs: &[ActShape], rng: &mut StdRng) -> Result<Box<dyn LayerKernel>>;
}

impl<T: LayerDef + ?Sized> BuildKernel for T {
    fn build_kernel(&self, inputs: &[ActShape], rng: &mut StdRng) -> Result<Box<dyn LayerKernel>> {
        build_kernel(self, inputs, rng)
    }
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
        Err(Error::NoStreamingStep)
    }

    /// Data-parallel training: the reducer that adds statistics across
    /// ranks (`None` in a single process). Layers whose training forward
    /// depends on the whole mini-batch (batch normalization) keep it and
    /// reduce through it in [`Mode::Training`]; others ignore it.
    fn set_stat_reducer(&mut self, _reducer: Option<crate::reduce::SharedReducer>) {}

    /// Output layers: the number of observations the last loss was averaged
    /// over (its normalizer), when it computed one.
    fn loss_observations(&self) -> Option<usize> {
        None
    }

    /// Output layers: multiplies the loss gradient the next backward starts
    /// from by `factor` (data-parallel training weights each rank's share
    /// by its part of the global mini-batch's normalizer).
    fn scale_loss_gradient(&mut self, _factor: f32) {}
}
