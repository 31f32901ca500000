//! Times one forward + backward of the recurrent layers in release mode:
//! `cargo run -p seqnet-core --release --example recurrent_speed [B T C H runs]`
//! (defaults 32 50 128 256 15). Prints the median and the minimum per layer.

use ndarray::ArrayD;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use seqnet_core::layers::{BiLstm, Gru, Lstm};
use seqnet_core::BuildKernel;
use seqnet_core::{Activation, ForwardCtx, Layer, Mode};
use std::time::Instant;

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let arg = |i: usize, d: usize| args.get(i).copied().unwrap_or(d);
    let (b, t, c, h, runs) = (arg(0, 32), arg(1, 50), arg(2, 128), arg(3, 256), arg(4, 15));
    let mut rng = StdRng::seed_from_u64(1);
    let x = Activation::sequence(
        ArrayD::from_shape_simple_fn(vec![t, b, c], || rng.random_range(-1.0..1.0)),
        None,
    )
    .expect("input");
    println!(
        "B={b} T={t} C={c} H={h}, {runs} runs, rayon threads: {}",
        rayon::current_num_threads()
    );
    let layers: Vec<Layer> = vec![
        Lstm::new(h).name("lstm").into(),
        Gru::new(h).name("gru").into(),
        BiLstm::new(h).name("bilstm").into(),
    ];
    for layer in layers {
        let mut k = layer
            .def()
            .build_kernel(&[x.shape()], &mut rng)
            .expect("build");
        let mut fwd = Vec::new();
        let mut total = Vec::new();
        for _ in 0..runs + 1 {
            let mut r = StdRng::seed_from_u64(0);
            let t0 = Instant::now();
            let y = k
                .forward(
                    &[&x],
                    &mut ForwardCtx {
                        mode: Mode::Training,
                        stateful: false,
                        rng: &mut r,
                        target: None,
                    },
                )
                .expect("forward");
            let t1 = Instant::now();
            let g = ArrayD::from_elem(y[0].data.shape(), 1e-3f32);
            k.backward(vec![Some(g)]).expect("backward");
            let t2 = Instant::now();
            fwd.push((t1 - t0).as_secs_f64() * 1e3);
            total.push((t2 - t0).as_secs_f64() * 1e3);
        }
        // The first run warms up.
        for v in [&mut fwd, &mut total] {
            v.remove(0);
            v.sort_by(f64::total_cmp);
        }
        println!(
            "{:>6}: forward+backward median {:.1} ms (min {:.1}), forward alone median {:.1} ms",
            layer.tag(),
            total[total.len() / 2],
            total[0],
            fwd[fwd.len() / 2]
        );
    }
}
