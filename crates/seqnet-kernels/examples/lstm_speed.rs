//! Times one direction's fused LSTM forward pass ([`lstm_forward`]) on the
//! `lstm-infer` workload's layer (T = 50, B = 32, C = 128, H = 256), with
//! and without the tape: `cargo run --release -p seqnet-kernels --example
//! lstm_speed` (`RAYON_NUM_THREADS=1` for one thread). Prints the minimum and
//! median of the passes and the GFLOP/s at the minimum (`8·T·B·H·(C+H)`); on
//! a loaded host only the minimum means much. Then the time of packing the
//! layer's panels ([`GatePanels::pack`], at every training step). Last, the best rate of a pure
//! FMA loop on this thread ([`fma_loop`]), the one-thread peak to compare with.

use seqnet_kernels::act::Acts;
use seqnet_kernels::fma_peak::fma_loop;
use seqnet_kernels::recurrent::{lstm_forward, GatePanels, PassBuffers, Steps};
use std::time::Instant;

fn main() {
    let (t, b, c, h) = (50, 32, 128, 256);
    let steps = Steps::new(t, vec![0..t; b]);
    let x: Vec<f32> = (0..t * b * c)
        .map(|i| ((i % 13) as f32 - 6.0) * 0.05)
        .collect();
    let w_ih: Vec<f32> = (0..4 * h * c)
        .map(|i| ((i % 11) as f32 - 5.0) * 0.01)
        .collect();
    let w_hh: Vec<f32> = (0..4 * h * h)
        .map(|i| ((i % 7) as f32 - 3.0) * 0.01)
        .collect();
    let bias = vec![0.1f32; 4 * h];
    let mut panels = GatePanels::default();
    panels.pack(&w_ih, c, &w_hh, h, &bias, true);
    let mut gates = vec![0f32; t * b * 4 * h];
    let mut hs = vec![0f32; (t + 2) * b * h];
    let mut cs = vec![0f32; (t + 2) * b * h];
    let mut tc = vec![0f32; t * b * h];
    let flop = 8.0 * (t * b * h * (c + h)) as f64;
    let reps: usize = std::env::var("REPS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(200);
    for tape in [false, true] {
        let mut times = Vec::with_capacity(reps);
        for _ in 0..reps + 10 {
            let t0 = Instant::now();
            lstm_forward(
                Acts::default(),
                &steps,
                false,
                &x,
                &panels,
                PassBuffers {
                    gates: &mut gates,
                    h: &mut hs,
                    c: &mut cs,
                    tc: &mut tc,
                },
                tape,
            );
            times.push(t0.elapsed().as_secs_f64());
        }
        let mut times = times.split_off(10);
        times.sort_by(f64::total_cmp);
        let (min, med) = (times[0], times[times.len() / 2]);
        println!(
            "lstm_forward tape={tape}: min {:.3} ms, median {:.3} ms, {:.1} GFLOP/s at the minimum",
            min * 1e3,
            med * 1e3,
            flop / min / 1e9
        );
    }
    // Packing the panels, as the training step does at every iteration.
    let mut times: Vec<f64> = (0..reps)
        .map(|_| {
            let t0 = Instant::now();
            panels.pack(&w_ih, c, &w_hh, h, &bias, true);
            t0.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    println!(
        "GatePanels::pack: min {:.1} µs, median {:.1} µs",
        times[0] * 1e6,
        times[times.len() / 2] * 1e6
    );
    let mut best = 0f64;
    for _ in 0..50 {
        let t0 = Instant::now();
        let (v, flop) = fma_loop(50_000);
        std::hint::black_box(v);
        best = best.max(flop / t0.elapsed().as_secs_f64() / 1e9);
    }
    println!("fma_loop on one thread: {best:.1} GFLOP/s at best");
}
