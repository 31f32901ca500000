//! Time-series forecasting (MATLAB's "Time Series Forecasting Using Deep
//! Learning"): train sequence-to-sequence regression to predict the next step
//! of a series, then forecast closed loop with `predict_and_update_state`,
//! feeding each prediction back as the next input.
//!
//! The series are sums of two sine waves with random phases and amplitudes plus
//! a little noise; each test series is primed with its first 150 steps and the
//! next 50 are forecast and compared with the held-out values.
//!
//! Run: `cargo run --release --example forecasting`

use ndarray::{s, Array2};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use seqnet::data::{InMemoryDatastore, Observation, Sequence};
use seqnet::prelude::*;
use seqnet::train::{forecast, Shuffle};
use std::sync::Arc;

const LEN: usize = 200;
const PRIME: usize = 150;

fn series(rng: &mut StdRng) -> Vec<f32> {
    let (a1, a2) = (rng.random_range(0.6..1.0f32), rng.random_range(0.2..0.5f32));
    let (p1, p2) = (rng.random_range(0.0..6.3f32), rng.random_range(0.0..6.3f32));
    (0..LEN)
        .map(|t| {
            let t = t as f32;
            a1 * (t * 2.0 * std::f32::consts::PI / 25.0 + p1).sin()
                + a2 * (t * 2.0 * std::f32::consts::PI / 9.0 + p2).sin()
                + rng.random_range(-0.03..0.03f32)
        })
        .collect()
}

fn main() -> Result<()> {
    let mut rng = StdRng::seed_from_u64(7);
    let train: Vec<Vec<f32>> = (0..60).map(|_| series(&mut rng)).collect();
    let test: Vec<Vec<f32>> = (0..20).map(|_| series(&mut rng)).collect();

    // Predictors: steps 0..T−1; responses: steps 1..T (the next value).
    let obs = train
        .iter()
        .map(|x| {
            let a = Array2::from_shape_vec((LEN, 1), x.clone()).expect("LEN values");
            Observation::new(
                Sequence::Features(a.slice(s![..LEN - 1, ..]).to_owned()),
                Target::ResponseSequence(a.slice(s![1.., ..]).to_owned()),
            )
        })
        .collect();
    let graph = LayerGraph::from_layers(vec![
        SequenceInput::new(1).into(),
        Lstm::new(64).output_mode(OutputMode::Sequence).into(),
        FullyConnected::new(1).into(),
        RegressionOutput::new().into(),
    ])?;
    let options = TrainingOptions::new(Solver::Adam)
        .initial_learn_rate(0.01)
        .max_epochs(150)
        .mini_batch_size(10)
        .gradient_threshold(1.0)
        .shuffle(Shuffle::EveryEpoch)
        .seed(1);
    let (mut model, record) = train_network(
        &graph,
        Arc::new(InMemoryDatastore::new(obs, None)?),
        None,
        &options,
        &mut |_| {},
    )?;
    println!(
        "final training RMSE (one step ahead) {:.4}",
        record
            .iterations
            .last()
            .and_then(|i| i.rmse)
            .unwrap_or(f32::NAN)
    );

    let (mut se, mut se_naive, mut n) = (0.0f32, 0.0f32, 0usize);
    for x in &test {
        let history =
            Array2::from_shape_vec((PRIME, 1), x[..PRIME].to_vec()).expect("PRIME values");
        let predicted = forecast(&mut model.network, &history, LEN - PRIME)?;
        for (k, truth) in x[PRIME..].iter().enumerate() {
            se += (predicted[[k, 0]] - truth).powi(2);
            se_naive += (x[PRIME - 1] - truth).powi(2);
            n += 1;
        }
    }
    println!(
        "closed-loop forecast of {} steps: RMSE {:.4} against held-out values (repeating the last value: {:.4})",
        LEN - PRIME,
        (se / n as f32).sqrt(),
        (se_naive / n as f32).sqrt()
    );
    Ok(())
}
