//! seqnet's core: activations and their formats, layers with exact forward and
//! backward passes, the `LayerGraph` with its checks and schedule, and the
//! executable `Network`. The compute kernels live in [`kernels`] (the crate
//! `seqnet-kernels`), the only crate of seqnet with `unsafe` code.

#![forbid(unsafe_code)]

pub mod activation;
pub mod error;
pub mod format;
pub mod gradcheck;
pub mod graph;
pub mod init;
pub mod layer;
pub mod layers;
pub mod learnable;
pub mod network;
pub mod onnx;
pub mod reduce;
pub mod registry;
pub mod templates;
pub mod torch;

pub use seqnet_kernels as kernels;

pub use activation::{Activation, PaddingDirection, SeqLengths};
pub use error::{Error, GraphProblem, Result};
pub use format::{ActShape, Format};
pub use graph::{Connection, LayerGraph, Plan, Summary};
pub use layer::{
    build_kernel, numbered_ports, BuildKernel, ForwardCtx, LayerDef, LayerKernel, LayerType, Mode,
    Params, ShapeError,
};
pub use learnable::{Initializer, Learnable, LearnableSpec, StateArray, StateSpec};
pub use network::Network;
pub use reduce::{SharedReducer, StatReducer};
pub use registry::{register_layer, registered_types, Layer};
pub use torch::{TorchLayout, TorchParam, TorchSource};
