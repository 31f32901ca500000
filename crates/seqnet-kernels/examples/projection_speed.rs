//! Times the video network's LSTM input-side products through
//! `gemm::matmul_into` on the rayon pool (2 threads by default): the
//! projection `X·Wᵀ` (`[M, 11520]·[11520, 800]`), the weight gradient
//! `dGᵀ·X` (`[800, M]·[M, 11520]`) and the input gradient `dG·W`
//! (`[M, 800]·[800, 11520]`), with `M` real rows (default 176: a mini-batch
//! of 16 videos of 11 frames). Prints each product's median and GFLOP/s
//! beside the machine's FMA peak.
//!
//! `cargo run --release -p seqnet-kernels --example projection_speed [M] [reps]`

use ndarray::Array2;
use seqnet_kernels::gemm::matmul_into;
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Median and minimum seconds of `reps` calls after one warm-up call.
fn time(reps: usize, mut f: impl FnMut()) -> (f64, f64) {
    f();
    let v: Vec<f64> = (0..reps)
        .map(|_| {
            let t0 = Instant::now();
            f();
            t0.elapsed().as_secs_f64()
        })
        .collect();
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    (median(v), min)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let m: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(176);
    let reps: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(21);
    let (c, g4) = (11520, 800);
    let x = Array2::from_shape_fn((m, c), |(i, j)| ((i * 7 + j * 3) % 11) as f32 * 0.01);
    let w = Array2::from_shape_fn((g4, c), |(i, j)| ((i * 5 + j) % 13) as f32 * 0.01);
    let dg = Array2::from_shape_fn((m, g4), |(i, j)| ((i + j * 3) % 7) as f32 * 0.01);
    let mut gates = Array2::<f32>::zeros((m, g4));
    let mut dw = Array2::<f32>::zeros((g4, c));
    let mut dx = Array2::<f32>::zeros((m, c));
    let flop = 2.0 * (m * c * g4) as f64;
    let threads = rayon::current_num_threads();
    let (peak, _) = seqnet_kernels::fma_peak::fma_peak(threads, 300);
    println!("threads={threads} fma_peak_gflop_per_s={peak:.1}");
    let rate = |name: &str, (s, min): (f64, f64)| {
        let (g, gm) = (flop / s / 1e9, flop / min / 1e9);
        println!(
            "{name}: median {:.2} ms, {g:.1} GFLOP/s ({:.0}% of the FMA peak); min {:.2} ms, {gm:.1} GFLOP/s ({:.0}%)",
            s * 1e3,
            100.0 * g / peak,
            min * 1e3,
            100.0 * gm / peak
        )
    };
    rate(
        "projection X·Wt",
        time(reps, || {
            matmul_into(x.view(), w.t(), gates.view_mut(), true)
        }),
    );
    let mut gates_t = Array2::<f32>::zeros((g4, m));
    rate(
        "projection into a transposed buffer (W·Xt)",
        time(reps, || {
            matmul_into(x.view(), w.t(), gates_t.view_mut().reversed_axes(), true)
        }),
    );
    rate(
        "weight grad dGt·X",
        time(reps, || matmul_into(dg.t(), x.view(), dw.view_mut(), false)),
    );
    rate(
        "input grad dG·W",
        time(reps, || {
            matmul_into(dg.view(), w.view(), dx.view_mut(), false)
        }),
    );
}
