//! `x·wᵀ + bias` two ways on the transformer workload's shapes, interleaved
//! in one process (`cargo run --release -p seqnet-kernels --example
//! bias_product`): the bias rows written over the whole output first and the
//! product accumulating into them ([`matmul_bias`], what the layers use),
//! against [`matmul_bias_packed`] (weights packed once, bias epilogue per
//! block in cache). Best-of times, so load affects both alike.

use ndarray::Array2;
use seqnet_kernels::gemm::{matmul_bias, matmul_bias_packed};
use std::time::Instant;

fn main() {
    for (name, m, k, n) in [
        ("fc_in 4096x64x128", 4096, 64, 128),
        ("qkv 4096x128x128", 4096, 128, 128),
        ("qkv fused 4096x128x384", 4096, 128, 384),
        ("fc1 4096x128x512", 4096, 128, 512),
        ("fc2 4096x512x128", 4096, 512, 128),
    ] {
        let a = Array2::from_shape_fn((m, k), |(i, j)| ((i * 7 + j * 3) % 11) as f32 * 0.1);
        let w = Array2::from_shape_fn((n, k), |(i, j)| ((i * 5 + j) % 13) as f32 * 0.1);
        let bias: Vec<f32> = (0..n).map(|j| j as f32).collect();
        let (mut old_best, mut new_best) = (f64::MAX, f64::MAX);
        let (mut old_buf, mut new_buf) = (Vec::<f32>::new(), Vec::<f32>::new());
        for _ in 0..60 {
            let t = Instant::now();
            let y = matmul_bias(a.view(), w.t(), &bias, std::mem::take(&mut old_buf));
            old_best = old_best.min(t.elapsed().as_secs_f64());
            old_buf = y.into_raw_vec_and_offset().0;
            let t = Instant::now();
            let y = matmul_bias_packed(a.view(), w.t(), &bias, std::mem::take(&mut new_buf));
            new_best = new_best.min(t.elapsed().as_secs_f64());
            new_buf = y.into_raw_vec_and_offset().0;
        }
        let gf = |t: f64| 2.0 * (m * n * k) as f64 / t / 1e9;
        println!(
            "{name:26} matmul_bias {:6.1} GFLOP/s, matmul_bias_packed {:6.1} GFLOP/s, time ratio {:.3}",
            gf(old_best),
            gf(new_best),
            new_best / old_best
        );
    }
}
