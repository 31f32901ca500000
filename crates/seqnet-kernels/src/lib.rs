//! seqnet's compute kernels, apart from the layers that use them: matrix
//! products, packed right-hand panels, vector activations, the fused LSTM and
//! GRU passes through time (forward, backward, streaming step) and the threads
//! they run on. This is the only crate of seqnet with `unsafe` code; every
//! entry point is safe and works on slices (`&[f32]`, `&mut [f32]`) with
//! their sizes, each buffer's shape documented where it is taken.
//!
//! | module | job |
//! |---|---|
//! | [`cpu`] | the instruction set, detected once ([`cpu::Isa`]) |
//! | [`gemm`] | `c = a·b` on strided views through the `gemm` crate |
//! | [`packed`] | right-hand matrices packed once, multiplied many times |
//! | [`conv1d`] | 1-D convolution as one product on overlapping windows (no im2col) |
//! | [`dot`] | the dot product |
//! | [`fma_peak`] | the machine's FMA limit, for the benchmark's fraction-of-peak figures |
//! | [`norm`] | layer normalization of one row |
//! | [`softmax`] | masked softmax rows (attention) |
//! | [`aligned`] | 64-byte aligned buffers |
//! | [`fresh`] | new buffers written once, in parallel blocks of rows (no zeroing first) |
//! | [`attention`] | fused multi-head attention of one sequence (inference) |
//! | [`act`] | the recurrent layers' activations, scalar |
//! | `simd` | the same activations on AVX-512 registers |
//! | [`threads`] | the helper thread, row sharing, thread policy |
//! | [`recurrent`] | the LSTM's and the GRU's passes through time |
//!
//! CPU features are detected once ([`cpu::Isa::best`]); a kernel with an
//! AVX-512 version picks it from that value, so no caller threads a flag
//! through. How many threads a pass gets depends on its size alone
//! ([`threads::row_threads`]): no state is carried between passes.

#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod act;
pub mod aligned;
pub mod attention;
pub mod conv1d;
pub mod cpu;
pub mod dot;
pub mod fma_peak;
pub mod fresh;
pub mod gemm;
pub mod norm;
pub mod packed;
pub mod recurrent;
mod shared;
#[cfg(target_arch = "x86_64")]
mod simd;
pub mod softmax;
pub mod threads;

pub use act::{Acts, GateAct, StateAct};
pub use cpu::Isa;
