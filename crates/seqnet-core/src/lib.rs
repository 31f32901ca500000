//! seqnet's core: activations and their formats, layers with exact forward and
//! backward passes, the `LayerGraph` with its checks and schedule, and the
//! executable `Network`.

pub mod activation;
pub mod error;
pub mod format;
pub mod gradcheck;
pub mod graph;
mod helper;
pub mod init;
pub mod layer;
pub mod layers;
pub mod learnable;
pub mod linalg;
pub mod network;
pub mod templates;

pub use activation::{Activation, PaddingDirection, SeqLengths};
pub use error::{Error, GraphProblem, Result};
pub use format::{ActShape, Format};
pub use graph::{Connection, LayerGraph, Plan, Summary};
pub use layer::{ForwardCtx, LayerDef, LayerKernel, Mode};
pub use layers::Layer;
pub use learnable::{Learnable, StateArray};
pub use network::Network;
