//! The benchmark workloads of `bench/WORKLOADS.md` (copied from the project's
//! shared benchmark folder): [`run`] times each and prints one line per workload,
//!
//! ```text
//! workload=<name> median_ms=<float> [gflop_per_s=<float>] [reps=<n>] [min_ms=<float>] [peak_rss_mb=<float>]
//! ```
//!
//! `peak_rss_mb` is the whole process's peak resident memory during the
//! workload (Linux: `VmHWM`, reset before each workload through
//! `/proc/self/clear_refs`; absent elsewhere).
//!
//! plus a `machine=gemm-f32-1024` line with the f32 matrix-product rate of a
//! 1024³ product through the `gemm` crate as [`seqnet_core::kernels::gemm`] uses it,
//! and a `machine=fma-peak` line with the rate of a pure FMA loop on every
//! thread ([`fma_peak`]), so that each figure can be read as a fraction of
//! the machine's limit (`fma_peak_pct` on every line with a FLOP count).
//!
//! | workload | module |
//! |---|---|
//! | `vowels-epoch` | [`vowels`] |
//! | `lstm-train-step`, `lstm-infer` | [`lstm`] |
//! | `video-train-step` | [`video`] |
//! | `stream-step` | [`stream`] |
//! | `cnn1d-train-step` | [`cnn1d`] |
//! | `video-epoch` | [`video_epoch`] |
//! | `transformer-train-step`, `transformer-infer` | [`transformer`] |
//! | `gru-train-step`, `gru-infer`, `bilstm-train-step` | [`gru`] |
//!
//! Every figure is wall-clock time, the median of several repetitions after a
//! warm-up, on rayon's global pool (as many threads as cores, or
//! `RAYON_NUM_THREADS`). `bench/compare.sh` runs the same workloads in PyTorch
//! right after and prints the ratios.

pub mod cnn1d;
pub mod gru;
pub mod lstm;
mod peak_memory;
pub mod stream;
pub mod transformer;
pub mod video;
pub mod video_epoch;
pub mod vowels;

use crate::{CliError, Result};
use seqnet_core::{Activation, Mode, Network};
use seqnet_train::solver::{self, SolverState};
use seqnet_train::{Solver, TrainingOptions};
use std::time::Instant;

/// The workloads, in the order [`run`] runs them.
pub const WORKLOADS: &[&str] = &[
    "vowels-epoch",
    "lstm-train-step",
    "lstm-infer",
    "video-train-step",
    "stream-step",
    "cnn1d-train-step",
    "video-epoch",
    "transformer-train-step",
    "transformer-infer",
    "gru-train-step",
    "bilstm-train-step",
    "gru-infer",
];

/// Random `[t, b, f]` inputs in [-1, 1) and one-hot `[b, k]` targets, from
/// a fixed seed (every run of a workload gets the same numbers).
fn random_batch(t: usize, b: usize, f: usize, k: usize) -> Result<(Activation, Activation)> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let x = ndarray::ArrayD::from_shape_simple_fn(ndarray::IxDyn(&[t, b, f]), || {
        rng.random_range(-1.0f32..1.0)
    });
    let mut y = ndarray::ArrayD::<f32>::zeros(ndarray::IxDyn(&[b, k]));
    for row in 0..b {
        y[[row, rng.random_range(0..k)]] = 1.0;
    }
    Ok((Activation::sequence(x, None)?, Activation::features(y)?))
}

/// Timings of one workload, in milliseconds, warm-up excluded.
#[derive(Debug, Clone)]
pub struct Timings(pub Vec<f64>);

impl Timings {
    /// The median (the upper one of an even count).
    pub fn median(&self) -> f64 {
        let mut v = self.0.clone();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    }

    /// The fastest repetition.
    pub fn min(&self) -> f64 {
        self.0.iter().copied().fold(f64::INFINITY, f64::min)
    }
}

/// Runs `f` `warmup` times untimed, then `reps` times timed.
pub fn time_reps(warmup: usize, reps: usize, mut f: impl FnMut() -> Result<()>) -> Result<Timings> {
    for _ in 0..warmup {
        f()?;
    }
    let mut v = Vec::with_capacity(reps);
    for _ in 0..reps {
        let t0 = Instant::now();
        f()?;
        v.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    Ok(Timings(v))
}

/// Times one training step of `net` on inputs `x` and one-hot targets `y`
/// as the `*-train-step` workloads define it: forward, backward and an adam
/// update (learning rate 1e-3, no L2, no clipping), without the input
/// gradient (as `fit`), `warmup` steps untimed, then `reps` timed.
pub fn time_train_step(
    net: &mut Network,
    x: &Activation,
    y: &Activation,
    warmup: usize,
    reps: usize,
) -> Result<Timings> {
    let options = TrainingOptions::new(Solver::Adam)
        .initial_learn_rate(1e-3)
        .l2_regularization(0.0);
    let mut state = SolverState::default();
    net.set_input_gradients(false);
    time_reps(warmup, reps, || {
        net.forward(
            std::slice::from_ref(x),
            Some(std::slice::from_ref(y)),
            Mode::Training,
            false,
        )?;
        net.backward()?;
        let mut params: Vec<_> = net.learnables_mut().into_iter().map(|(_, p)| p).collect();
        solver::step(&mut params, &mut state, &options, 1e-3);
        Ok(())
    })
}

/// The result line of one workload; `flop` (per repetition) adds `gflop_per_s`.
pub fn line(name: &str, t: &Timings, flop: Option<f64>, extra: &str) -> String {
    let med = t.median();
    let mut s = format!("workload={name} median_ms={med:.4}");
    if let Some(f) = flop {
        let rate = f / (med * 1e-3) / 1e9;
        s += &format!(
            " gflop_per_s={rate:.1} fma_peak_pct={:.0}",
            100.0 * rate / fma_peak().0
        );
    }
    s += &format!(" reps={} min_ms={:.4}", t.0.len(), t.min());
    if !extra.is_empty() {
        s.push(' ');
        s += extra;
    }
    s
}

/// FLOPs of an LSTM forward over `t` steps, batch `b`, input `f`, hidden `h`
/// (the spec's `8·T·B·H·(F+H)`).
pub fn lstm_forward_flop(t: usize, b: usize, f: usize, h: usize) -> f64 {
    8.0 * (t * b * h * (f + h)) as f64
}

/// The machine's FMA limit on rayon's thread count, measured once per
/// process (about half a second): GFLOP/s on all threads, and per thread.
pub fn fma_peak() -> (f64, f64) {
    static PEAK: std::sync::OnceLock<(f64, f64)> = std::sync::OnceLock::new();
    *PEAK
        .get_or_init(|| seqnet_core::kernels::fma_peak::fma_peak(rayon::current_num_threads(), 100))
}

/// The `machine=fma-peak` line: [`fma_peak`], the yardstick of the
/// `fma_peak_pct` field.
pub fn fma_peak_line() -> String {
    let (all, per) = fma_peak();
    format!(
        "machine=fma-peak gflop_per_s={all:.1} per_thread={per:.1} threads={} isa={}",
        rayon::current_num_threads(),
        seqnet_core::kernels::Isa::best().name()
    )
}

/// The f32 product rate of a 1024³ product through [`seqnet_core::kernels::gemm::matmul_into`]
/// (the `gemm` crate, rayon's threads): the `machine=gemm-f32-1024` line.
pub fn gemm_peak() -> String {
    let n = 1024;
    let a = ndarray::Array2::from_shape_fn((n, n), |(i, j)| ((i * 7 + j * 13) % 17) as f32 * 0.1);
    let b = ndarray::Array2::from_shape_fn((n, n), |(i, j)| ((i * 5 + j * 3) % 11) as f32 * 0.1);
    let mut c = ndarray::Array2::<f32>::zeros((n, n));
    let t = time_reps(2, 9, || {
        seqnet_core::kernels::gemm::matmul_into(a.view(), b.view(), c.view_mut(), false);
        Ok(())
    })
    .expect("a product cannot fail");
    let med = t.median();
    format!(
        "machine=gemm-f32-1024 median_ms={med:.3} gflop_per_s={:.1} threads={}",
        2.0 * (n * n * n) as f64 / (med * 1e-3) / 1e9,
        rayon::current_num_threads()
    )
}

/// Runs the workloads named in `only` (all when `None`), printing one line
/// each, then the machine's product rate. Unknown names are an error.
pub fn run(only: Option<&[String]>) -> Result<()> {
    run_with(only, true)
}

/// [`run`], with or without the machine's product-rate line (without it, a
/// process's peak memory is the workloads' own).
pub fn run_with(only: Option<&[String]>, machine_line: bool) -> Result<()> {
    let chosen: Vec<&str> = match only {
        None => WORKLOADS.to_vec(),
        Some(names) => {
            for n in names {
                if !WORKLOADS.contains(&n.as_str()) {
                    return Err(CliError::UnknownWorkload {
                        name: n.clone(),
                        known: WORKLOADS.to_vec(),
                    });
                }
            }
            WORKLOADS
                .iter()
                .copied()
                .filter(|w| names.iter().any(|n| n == w))
                .collect()
        }
    };
    for w in chosen {
        let peak = peak_memory::Tracker::start();
        let mut l = match w {
            "vowels-epoch" => vowels::run()?,
            "lstm-train-step" => lstm::train_step()?,
            "lstm-infer" => lstm::infer()?,
            "video-train-step" => video::run()?,
            "stream-step" => stream::run()?,
            "cnn1d-train-step" => cnn1d::train_step()?,
            "video-epoch" => video_epoch::run()?,
            "transformer-train-step" => transformer::train_step()?,
            "transformer-infer" => transformer::infer()?,
            "gru-train-step" => gru::train_step()?,
            "bilstm-train-step" => gru::bilstm_train_step()?,
            "gru-infer" => gru::infer()?,
            _ => unreachable!("checked above"),
        };
        if let Some(mb) = peak.peak_mb() {
            l += &format!(" peak_rss_mb={mb:.1}");
        }
        println!("{l}");
    }
    if machine_line {
        println!("{}", gemm_peak());
        println!("{}", fma_peak_line());
    }
    Ok(())
}
