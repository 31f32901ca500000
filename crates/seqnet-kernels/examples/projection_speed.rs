//! Times the video network's LSTM input-side products through
//! `gemm::matmul_into` on rayon's threads: the projection `X·Wᵀ`
//! (`[M, 11520]·[11520, 800]`, into row-major gates and into a transposed
//! buffer), the weight gradient `dGᵀ·X` (`[800, M]·[M, 11520]`) and the
//! input gradient `dG·W` (`[M, 800]·[800, 11520]`, into row-major rows and into a transposed buffer), with `M` real rows
//! (default 176: a mini-batch of 16 videos of 11 frames). The products take
//! turns within each repetition, so a loaded host slows them alike; prints
//! each one's median and minimum and GFLOP/s beside the machine's FMA peak.
//!
//! `cargo run --release -p seqnet-kernels --example projection_speed [M] [reps]`

use ndarray::Array2;
use seqnet_kernels::gemm::matmul_into;
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let m: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(176);
    let reps: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(21);
    let (c, g4) = (11520, 800);
    let x = Array2::from_shape_fn((m, c), |(i, j)| ((i * 7 + j * 3) % 11) as f32 * 0.01);
    let w = Array2::from_shape_fn((g4, c), |(i, j)| ((i * 5 + j) % 13) as f32 * 0.01);
    let dg = Array2::from_shape_fn((m, g4), |(i, j)| ((i + j * 3) % 7) as f32 * 0.01);
    let mut gates = Array2::<f32>::zeros((m, g4));
    let mut gates_t = Array2::<f32>::zeros((g4, m));
    let mut dw = Array2::<f32>::zeros((g4, c));
    let mut dx = Array2::<f32>::zeros((m, c));
    let mut dx_t = Array2::<f32>::zeros((c, m));
    let flop = 2.0 * (m * c * g4) as f64;
    let threads = rayon::current_num_threads();
    let (peak, _) = seqnet_kernels::fma_peak::fma_peak(threads, 300);
    println!("threads={threads} m={m} fma_peak_gflop_per_s={peak:.1}");
    let names = [
        "projection X·Wt",
        "projection into a transposed buffer",
        "weight grad dGt·X",
        "input grad dG·W",
        "input grad into a transposed buffer",
    ];
    let mut times = vec![Vec::new(); names.len()];
    for rep in 0..=reps {
        for (i, t) in times.iter_mut().enumerate() {
            let t0 = Instant::now();
            match i {
                0 => matmul_into(x.view(), w.t(), gates.view_mut(), true),
                1 => matmul_into(x.view(), w.t(), gates_t.view_mut().reversed_axes(), true),
                2 => matmul_into(dg.t(), x.view(), dw.view_mut(), false),
                3 => matmul_into(dg.view(), w.view(), dx.view_mut(), false),
                _ => matmul_into(dg.view(), w.view(), dx_t.view_mut().reversed_axes(), false),
            }
            if rep > 0 {
                t.push(t0.elapsed().as_secs_f64());
            }
        }
    }
    for (name, mut v) in names.iter().zip(times) {
        v.sort_by(f64::total_cmp);
        let (med, min) = (v[v.len() / 2], v[0]);
        let (g, gm) = (flop / med / 1e9, flop / min / 1e9);
        println!(
            "{name}: median {:.2} ms, {g:.1} GFLOP/s ({:.0}% of the FMA peak); min {:.2} ms, {gm:.1} GFLOP/s ({:.0}%)",
            med * 1e3,
            100.0 * g / peak,
            min * 1e3,
            100.0 * gm / peak
        );
    }
}
