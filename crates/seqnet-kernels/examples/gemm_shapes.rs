//! GFLOP/s of `matmul_into` on the transformer workload's product shapes
//! (`cargo run --release -p seqnet-kernels --example gemm_shapes`), beside
//! the 1024³ product: which products run below the machine's gemm rate.

use ndarray::Array2;
use seqnet_kernels::gemm::{matmul_into, matmul_into_threads};
use std::time::Instant;

fn rate(m: usize, k: usize, n: usize, threads: usize, reps: usize) -> f64 {
    let a = Array2::from_shape_fn((m, k), |(i, j)| ((i * 7 + j * 3) % 11) as f32 * 0.1);
    let b = Array2::from_shape_fn((n, k), |(i, j)| ((i * 5 + j) % 13) as f32 * 0.1);
    let mut c = Array2::<f32>::zeros((m, n));
    let mut best = f64::MAX;
    for _ in 0..reps {
        let t = Instant::now();
        if threads == 0 {
            matmul_into(a.view(), b.t(), c.view_mut(), false);
        } else {
            matmul_into_threads(a.view(), b.t(), c.view_mut(), false, threads);
        }
        best = best.min(t.elapsed().as_secs_f64());
    }
    2.0 * (m * n * k) as f64 / best / 1e9
}

fn main() {
    for (name, m, k, n, threads) in [
        ("1024^3", 1024, 1024, 1024, 0),
        ("fc_in 4096x64x128", 4096, 64, 128, 0),
        ("qkv 4096x128x128", 4096, 128, 128, 0),
        ("qkv fused 4096x128x384", 4096, 128, 384, 0),
        ("fc1 4096x128x512", 4096, 128, 512, 0),
        ("fc2 4096x512x128", 4096, 512, 128, 0),
        ("scores 128x32x128 (1 thread)", 128, 32, 128, 1),
        ("AV 128x128x32 (1 thread)", 128, 128, 32, 1),
        ("1024^3 (1 thread)", 1024, 1024, 1024, 1),
    ] {
        let reps = if m * n * k > 1 << 26 { 10 } else { 200 };
        println!(
            "{name:32} {:7.1} GFLOP/s (best of {reps})",
            rate(m, k, n, threads, reps)
        );
    }
}
