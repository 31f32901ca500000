//! Times the image layers on the video benchmark workload: 128 frames of
//! 1×28×28, a 5×5 convolution with 20 filters (forward + backward), then
//! batch normalization (training mode) and ReLU on its output (forward + backward).
//!
//! Run: `cargo run -p seqnet-core --release --example bench_vision [runs]`.
//! Prints the median over `runs` (default 21) after two warm-up runs.

use ndarray::ArrayD;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use seqnet_core::layers::{BatchNormalization, Convolution2d, Relu};
use seqnet_core::BuildKernel;
use seqnet_core::{ActShape, Activation, ForwardCtx, LayerDef, Mode};
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(21)
        .max(1);
    let mut rng = StdRng::seed_from_u64(1);
    let in_shape = ActShape::images(28, 28, 1);
    let conv_def = Convolution2d::new([5, 5], 20).name("conv");
    let out = conv_def.infer(&[in_shape]).expect("shapes")[0];
    let mut conv = conv_def.build_kernel(&[in_shape], &mut rng).expect("conv");
    let mut bn = BatchNormalization::new()
        .name("bn")
        .build_kernel(&[out], &mut rng)
        .expect("bn");
    let mut relu = Relu::new()
        .name("relu")
        .build_kernel(&[out], &mut rng)
        .expect("relu");
    let x = Activation::images(ArrayD::from_shape_simple_fn(vec![128, 1, 28, 28], || {
        rng.random_range(-1.0..1.0)
    }))
    .expect("x");
    let dy = ArrayD::from_shape_simple_fn(vec![128, 20, 24, 24], || rng.random_range(-1.0f32..1.0));
    // Per run: conv, batchnorm, relu (each forward + backward) in ms.
    let mut times: Vec<[f64; 3]> = Vec::new();
    for i in 0..runs + 2 {
        let mut frng = StdRng::seed_from_u64(0);
        let mut ctx = ForwardCtx {
            mode: Mode::Training,
            stateful: false,
            rng: &mut frng,
            target: None,
        };
        let upstream = dy.clone();
        let t0 = Instant::now();
        let c = conv.forward(&[&x], &mut ctx).expect("conv").remove(0);
        let t1 = Instant::now();
        let b = bn.forward(&[&c], &mut ctx).expect("bn").remove(0);
        let t2 = Instant::now();
        let _r = relu.forward(&[&b], &mut ctx).expect("relu").remove(0);
        let g = relu.backward(vec![Some(upstream)]).expect("relu").remove(0);
        let t3 = Instant::now();
        let g = bn.backward(vec![g]).expect("bn").remove(0);
        let t4 = Instant::now();
        let _dx = conv.backward(vec![g]).expect("conv");
        let t5 = Instant::now();
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
        if i >= 2 {
            times.push([
                ms((t1 - t0) + (t5 - t4)),
                ms((t2 - t1) + (t4 - t3)),
                ms(t3 - t2),
            ]);
        }
    }
    let stat = |v: Vec<f64>| {
        let min = v.iter().copied().fold(f64::INFINITY, f64::min);
        format!("median {:6.2} ms (min {:6.2})", median(v), min)
    };
    let col = |k: usize| stat(times.iter().map(|t| t[k]).collect());
    let sum = |ks: &[usize]| {
        stat(
            times
                .iter()
                .map(|t| ks.iter().map(|&k| t[k]).sum())
                .collect(),
        )
    };
    println!("threads: {}, runs: {runs}", rayon::current_num_threads());
    println!("conv2d forward+backward:     {}", col(0));
    println!("batchnorm forward+backward:  {}", col(1));
    println!("relu forward+backward:       {}", col(2));
    println!("batchnorm+relu:              {}", sum(&[1, 2]));
    println!("total:                       {}", sum(&[0, 1, 2]));
}
