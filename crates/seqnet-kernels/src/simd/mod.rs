//! Kernels' building blocks on AVX-512 registers. Every function here must be
//! inlined into a function compiled with `#[target_feature(enable = "avx512f")]`
//! and reached only with an [`crate::cpu::Isa`] that allows AVX-512.

pub(crate) mod act512;
