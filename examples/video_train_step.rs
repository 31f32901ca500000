//! The `video-train-step` workload of the benchmark (`../shared/bench/WORKLOADS.md`):
//! one training step (forward, backward, adam update; no clipping, no L2) of the
//! seed's video network — sequence input `[28 28 1]`, folding, convolution 5×5
//! with 20 filters, batch normalization, relu, unfolding, flatten, lstm 200
//! 'last', fully connected 10, softmax, classification — on random frames,
//! mini-batch 8, T = 16.
//!
//! Prints the median over `runs` steps (default 21, after two warm-up steps) of
//!
//! 1. the step as training runs it (`Network::forward`, `Network::backward`,
//!    `solver::step`): the workload's figure, as
//!    `workload=video-train-step median_ms=…`;
//! 2. the same step with each layer's kernel timed alone (forward and
//!    backward), run in the network's schedule, and the solver's update: where
//!    the time goes.
//!
//! It also times the solver update with the options the example trains with
//! (L2 regularization 1e-4, gradient threshold 1).
//!
//! Run: `cargo run --release --example video_train_step [runs]`.

use ndarray::ArrayD;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use seqnet::core::templates::{Template, TemplateOptions};
use seqnet::core::{ForwardCtx, LayerKernel};
use seqnet::prelude::*;
use seqnet::train::solver::{self, SolverState};
use seqnet_core::BuildKernel;
use std::time::{Duration, Instant};

const BATCH: usize = 8;
const STEPS: usize = 16;
const CLASSES: usize = 10;

/// The seed's video network with `classes` outputs: the `video` template
/// (the same graph `seqnet bench` times).
fn video_network(classes: usize) -> seqnet::core::Result<LayerGraph> {
    Template::Video.graph(&TemplateOptions {
        input: Some(InputSize::Image([28, 28, 1])),
        hidden: Some(200),
        outputs: Some(classes),
        ..Default::default()
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() -> Result<()> {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(21)
        .max(1);
    let mut rng = StdRng::seed_from_u64(1);
    let x = Activation::image_sequence(
        ArrayD::from_shape_simple_fn(vec![STEPS, BATCH, 1, 28, 28], || rng.random_range(0.0..1.0)),
        None,
    )?;
    let mut onehot = ArrayD::zeros(vec![BATCH, CLASSES]);
    for b in 0..BATCH {
        onehot[[b, rng.random_range(0..CLASSES)]] = 1.0;
    }
    let y = Activation::features(onehot)?;
    let options = TrainingOptions::new(Solver::Adam).l2_regularization(0.0);
    let lr = options.learn_rate();
    let graph = video_network(CLASSES)?;

    // 1. The step as `fit` runs it.
    let mut network = Network::new(&graph, 0)?;
    let mut state = SolverState::default();
    let mut whole = Vec::new();
    let mut parts: Vec<[f64; 3]> = Vec::new();
    for run in 0..runs + 2 {
        let t0 = Instant::now();
        network.forward(
            std::slice::from_ref(&x),
            Some(std::slice::from_ref(&y)),
            Mode::Training,
            false,
        )?;
        let t1 = Instant::now();
        network.backward()?;
        let t2 = Instant::now();
        let mut params: Vec<_> = network
            .learnables_mut()
            .into_iter()
            .map(|(_, p)| p)
            .collect();
        solver::step(&mut params, &mut state, &options, lr);
        let t3 = Instant::now();
        if run >= 2 {
            whole.push(ms(t3 - t0));
            parts.push([ms(t1 - t0), ms(t2 - t1), ms(t3 - t2)]);
        }
    }
    let col = |k: usize| median(parts.iter().map(|p| p[k]).collect());
    println!(
        "cores: {}, runs: {runs}, batch {BATCH}, T = {STEPS}",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "workload=video-train-step median_ms={:.2} min_ms={:.2} forward_ms={:.2} backward_ms={:.2} update_ms={:.2}",
        median(whole.clone()),
        whole.iter().copied().fold(f64::INFINITY, f64::min),
        col(0),
        col(1),
        col(2)
    );

    // The update as the example trains (MATLAB's L2 1e-4, gradient threshold 1
    // per learnable), on the last step's gradients.
    let trained_options = TrainingOptions::new(Solver::Adam)
        .initial_learn_rate(2e-4)
        .gradient_threshold(1.0);
    let mut regularized = Vec::new();
    for _ in 0..runs {
        let mut params: Vec<_> = network
            .learnables_mut()
            .into_iter()
            .map(|(_, p)| p)
            .collect();
        let t = Instant::now();
        solver::step(&mut params, &mut state, &trained_options, 2e-4);
        regularized.push(ms(t.elapsed()));
    }
    println!(
        "update with L2 1e-4 and gradient threshold 1 (as the example trains): median {:.2} ms",
        median(regularized)
    );

    // 2. The same step, one kernel at a time.
    let plan = graph.check()?;
    let n = graph.layers.len();
    let mut build_rng = StdRng::seed_from_u64(0);
    let mut kernels: Vec<Box<dyn LayerKernel>> = (0..n)
        .map(|i| {
            graph.layers[i]
                .def()
                .build_kernel(&plan.input_shapes[i], &mut build_rng)
        })
        .collect::<seqnet::core::Result<_>>()?;
    let input = graph.index("sequenceinput").expect("input layer");
    let output = graph.index("classoutput").expect("output layer");
    let mut state = SolverState::default();
    let mut per_layer: Vec<Vec<(f64, f64)>> = vec![Vec::new(); n];
    let mut update = Vec::new();
    let mut instrumented = Vec::new();
    for run in 0..runs + 2 {
        let start = Instant::now();
        let mut times = vec![(Duration::ZERO, Duration::ZERO); n];
        let mut values: Vec<Vec<Activation>> = vec![Vec::new(); n];
        let mut drop_rng = StdRng::seed_from_u64(0);
        for &i in &plan.order {
            let inputs: Vec<&Activation> = if i == input {
                vec![&x]
            } else {
                plan.sources[i]
                    .iter()
                    .map(|s| &values[s.layer][s.port])
                    .collect()
            };
            let mut ctx = ForwardCtx {
                mode: Mode::Training,
                stateful: false,
                rng: &mut drop_rng,
                target: (i == output).then_some(&y),
            };
            let t = Instant::now();
            let out = kernels[i].forward(&inputs, &mut ctx)?;
            times[i].0 = t.elapsed();
            values[i] = out;
        }
        let mut grads: Vec<Vec<Option<ArrayD<f32>>>> = graph
            .layers
            .iter()
            .map(|l| vec![None; l.def().output_ports().len()])
            .collect();
        for &i in plan.order.iter().rev() {
            let g = std::mem::take(&mut grads[i]);
            let t = Instant::now();
            let gin = kernels[i].backward(g)?;
            times[i].1 = t.elapsed();
            if i == input {
                continue;
            }
            for (p, g) in gin.into_iter().enumerate() {
                if let (Some(g), Some(src)) = (g, plan.sources[i].get(p)) {
                    grads[src.layer][src.port] = Some(g);
                }
            }
        }
        let t = Instant::now();
        let mut params: Vec<_> = kernels
            .iter_mut()
            .flat_map(|k| k.learnables_mut())
            .collect();
        solver::step(&mut params, &mut state, &options, lr);
        let update_time = t.elapsed();
        if run >= 2 {
            for (acc, t) in per_layer.iter_mut().zip(&times) {
                acc.push((ms(t.0), ms(t.1)));
            }
            update.push(ms(update_time));
            instrumented.push(ms(start.elapsed()));
        }
    }
    println!(
        "\nper layer, median ms (instrumented step: median {:.2} ms)",
        median(instrumented)
    );
    println!(
        "{:<16} {:>9} {:>9} {:>9}",
        "layer", "forward", "backward", "total"
    );
    let mut total = 0.0;
    for &i in &plan.order {
        let f = median(per_layer[i].iter().map(|t| t.0).collect());
        let b = median(per_layer[i].iter().map(|t| t.1).collect());
        let t = median(per_layer[i].iter().map(|t| t.0 + t.1).collect());
        total += t;
        println!("{:<16} {f:>9.2} {b:>9.2} {t:>9.2}", graph.layers[i].name());
    }
    let u = median(update);
    println!("{:<16} {:>9} {:>9} {u:>9.2}", "adam update", "", "");
    println!("{:<16} {:>9} {:>9} {:>9.2}", "sum", "", "", total + u);
    Ok(())
}
