//! Times the image layers on the video benchmark workload: 128 frames of
//! 1×28×28, a 5×5 convolution with 20 filters (forward + backward), then
//! batch normalization (training mode) and ReLU on its output (forward + backward).
//!
//! Run: `cargo run -p seqnet-core --release --example bench_vision [runs]`.

use ndarray::ArrayD;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use seqnet_core::layers::{BatchNormalization, Convolution2d, Relu};
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
        .unwrap_or(21);
    let mut rng = StdRng::seed_from_u64(1);
    let in_shape = ActShape::images(28, 28, 1);
    let conv_def = Convolution2d::new([5, 5], 20).name("conv");
    let out = conv_def.infer(&[in_shape]).expect("shapes")[0];
    let mut conv = conv_def.build(&[in_shape], &mut rng).expect("conv");
    let mut bn = BatchNormalization::new()
        .name("bn")
        .build(&[out], &mut rng)
        .expect("bn");
    let mut relu = Relu::new()
        .name("relu")
        .build(&[out], &mut rng)
        .expect("relu");
    let x = Activation::images(ArrayD::from_shape_simple_fn(vec![128, 1, 28, 28], || {
        rng.random_range(-1.0..1.0)
    }))
    .expect("x");
    let dy = ArrayD::from_shape_simple_fn(vec![128, 20, 24, 24], || rng.random_range(-1.0f32..1.0));
    let (mut t_conv, mut t_bn, mut t_all) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..runs + 2 {
        let mut frng = StdRng::seed_from_u64(0);
        let mut ctx = ForwardCtx {
            mode: Mode::Training,
            stateful: false,
            rng: &mut frng,
            target: None,
        };
        let t0 = Instant::now();
        let c = conv
            .forward(&[&x], &mut ctx)
            .expect("conv forward")
            .remove(0);
        let t1 = Instant::now();
        let b = bn.forward(&[&c], &mut ctx).expect("bn forward").remove(0);
        let ta = Instant::now();
        let _r = relu
            .forward(&[&b], &mut ctx)
            .expect("relu forward")
            .remove(0);
        let tb = Instant::now();
        let g = relu
            .backward(vec![Some(dy.clone())])
            .expect("relu backward")
            .remove(0);
        let tc = Instant::now();
        let g = bn.backward(vec![g]).expect("bn backward").remove(0);
        let t2 = Instant::now();
        if std::env::var("BENCH_DETAIL").is_ok() {
            eprintln!(
                "bn fwd {:.2} relu fwd {:.2} relu bwd {:.2} bn bwd {:.2}",
                (ta - t1).as_secs_f64() * 1e3,
                (tb - ta).as_secs_f64() * 1e3,
                (tc - tb).as_secs_f64() * 1e3,
                (t2 - tc).as_secs_f64() * 1e3
            );
        }
        let _dx = conv.backward(vec![g]).expect("conv backward");
        let t3 = Instant::now();
        if i >= 2 {
            t_conv.push(((t1 - t0) + (t3 - t2)).as_secs_f64() * 1e3);
            t_bn.push((t2 - t1).as_secs_f64() * 1e3);
            t_all.push((t3 - t0).as_secs_f64() * 1e3);
        }
    }
    println!("threads: {}, runs: {runs}", rayon::current_num_threads());
    println!(
        "conv2d forward+backward:          median {:.2} ms",
        median(t_conv)
    );
    println!(
        "batchnorm+relu forward+backward:  median {:.2} ms",
        median(t_bn)
    );
    println!(
        "total:                            median {:.2} ms",
        median(t_all)
    );
}
