//! Times `packed::gemm_packed` on one recurrent step's product per thread
//! (`[32, 256]·[256, 512]`), single-threaded: `cargo run --release -p seqnet-kernels --example packed_speed`.

use seqnet_kernels::packed::{gemm_packed, PackedPanels};
use std::time::Instant;

fn main() {
    let (m, k, n) = (32, 256, 512);
    let a: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 * 0.1).collect();
    let mut p = PackedPanels::default();
    p.pack(k, n, |r, c| ((r + c) % 5) as f32 * 0.1);
    let mut c = vec![0f32; m * p.padded_cols()];
    let reps = 2000;
    for _ in 0..100 {
        gemm_packed(&a, k, m, &p, &mut c, p.padded_cols());
    }
    let t0 = Instant::now();
    for _ in 0..reps {
        gemm_packed(&a, k, m, &p, &mut c, p.padded_cols());
    }
    let s = t0.elapsed().as_secs_f64() / reps as f64;
    println!(
        "{m}x{k}x{n}: {:.2} us, {:.1} GFLOP/s",
        s * 1e6,
        2.0 * (m * k * n) as f64 / s / 1e9
    );
}
