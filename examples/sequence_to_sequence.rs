//! Sequence-to-sequence classification and regression on data the example
//! generates: signals made of segments of three waveforms (sine, square,
//! sawtooth) with random frequency, amplitude and length, plus noise.
//!
//! - Classification: the waveform of the segment at every time step
//!   (bilstm 'sequence' → fully connected 3 → softmax → classification).
//! - Regression: the amplitude of the segment at every time step, which the
//!   network must infer from the noisy signal around that step
//!   (bilstm 'sequence' → fully connected 1 → regression).
//!
//! Run: `cargo run --release --example sequence_to_sequence`

use ndarray::{Array1, Array2};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use seqnet::data::{InMemoryDatastore, Observation, Sequence};
use seqnet::prelude::*;
use seqnet::train::{PredictOptions, Shuffle};
use std::sync::Arc;

const WAVES: [&str; 3] = ["sine", "square", "sawtooth"];

/// One signal: `(noisy [T, 1], amplitude per step [T], waveform per step [T])`.
fn signal(rng: &mut StdRng) -> (Array2<f32>, Vec<f32>, Vec<usize>) {
    let t = rng.random_range(60..140);
    let (mut noisy, mut clean, mut labels) = (Vec::new(), Vec::new(), Vec::new());
    let mut amplitude = Vec::new();
    while clean.len() < t {
        let kind = rng.random_range(0..3);
        let len = rng.random_range(15..40).min(t - clean.len());
        let (period, amp, phase) = (
            rng.random_range(6.0..16.0f32),
            rng.random_range(0.5..1.5f32),
            rng.random_range(0.0..1.0f32),
        );
        for i in 0..len {
            let p = (i as f32 / period + phase).fract();
            let v = amp
                * match kind {
                    0 => (2.0 * std::f32::consts::PI * p).sin(),
                    1 => {
                        if p < 0.5 {
                            1.0
                        } else {
                            -1.0
                        }
                    }
                    _ => 2.0 * p - 1.0,
                };
            clean.push(v);
            amplitude.push(amp);
            noisy.push(v + rng.random_range(-0.2..0.2f32));
            labels.push(kind);
        }
    }
    (
        Array2::from_shape_vec((t, 1), noisy).expect("t values"),
        amplitude,
        labels,
    )
}

fn sets(n: usize, seed: u64) -> (Vec<Observation>, Vec<Observation>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let (mut classify, mut regress) = (Vec::new(), Vec::new());
    for _ in 0..n {
        let (x, amplitude, labels) = signal(&mut rng);
        let t = amplitude.len();
        classify.push(Observation::new(
            Sequence::Features(x.clone()),
            Target::ClassSequence(labels),
        ));
        regress.push(Observation::new(
            Sequence::Features(x),
            Target::ResponseSequence(Array2::from_shape_vec((t, 1), amplitude).expect("t values")),
        ));
    }
    (classify, regress)
}

fn main() -> Result<()> {
    let classes: Vec<String> = WAVES.iter().map(|s| s.to_string()).collect();
    let (train_c, train_r) = sets(300, 1);
    let (test_c, test_r) = sets(100, 2);
    let options = TrainingOptions::new(Solver::Adam)
        .initial_learn_rate(0.01)
        .max_epochs(30)
        .mini_batch_size(20)
        .gradient_threshold(1.0)
        .shuffle(Shuffle::EveryEpoch)
        .seed(3);

    let classifier = LayerGraph::from_layers(vec![
        SequenceInput::new(1).into(),
        BiLstm::new(32).output_mode(OutputMode::Sequence).into(),
        FullyConnected::new(3).into(),
        Softmax::new().into(),
        ClassificationOutput::new().into(),
    ])?;
    let (mut model, _) = train_network(
        &classifier,
        Arc::new(InMemoryDatastore::new(train_c, Some(classes.clone()))?),
        None,
        &options,
        &mut |_| {},
    )?;
    let truth: Vec<Vec<usize>> = test_c
        .iter()
        .map(|o| {
            if let Target::ClassSequence(l) = &o.target {
                l.clone()
            } else {
                Vec::new()
            }
        })
        .collect();
    let predicted = model.classify(
        Arc::new(InMemoryDatastore::new(test_c, Some(classes))?),
        &PredictOptions::default(),
    )?;
    let (mut correct, mut total) = (0, 0);
    for (p, t) in predicted.iter().zip(&truth) {
        correct += p.classes.iter().zip(t).filter(|(a, b)| a == b).count();
        total += t.len();
    }
    println!(
        "per-step classification: test accuracy {:.2}% over {total} steps",
        100.0 * correct as f64 / total as f64
    );

    let regressor = LayerGraph::from_layers(vec![
        SequenceInput::new(1).into(),
        BiLstm::new(48).output_mode(OutputMode::Sequence).into(),
        FullyConnected::new(1).into(),
        RegressionOutput::new().into(),
    ])?;
    let (mut model, _) = train_network(
        &regressor,
        Arc::new(InMemoryDatastore::new(train_r, None)?),
        None,
        &options,
        &mut |_| {},
    )?;
    let truth: Vec<Array1<f32>> = test_r
        .iter()
        .map(|o| {
            if let Target::ResponseSequence(y) = &o.target {
                y.column(0).to_owned()
            } else {
                Array1::zeros(0)
            }
        })
        .collect();
    let predicted = model.predict(
        Arc::new(InMemoryDatastore::new(test_r, None)?),
        &PredictOptions::default(),
    )?;
    let rmse = |guess: &dyn Fn(usize, usize) -> f32| {
        let (se, n) = truth
            .iter()
            .enumerate()
            .fold((0.0f32, 0usize), |(se, n), (i, t)| {
                (
                    se + t
                        .iter()
                        .enumerate()
                        .map(|(s, y)| (guess(i, s) - y).powi(2))
                        .sum::<f32>(),
                    n + t.len(),
                )
            });
        (se / n as f32).sqrt()
    };
    let mean_amplitude = 1.0; // the middle of the uniform range 0.5..1.5 the amplitudes come from
    println!(
        "per-step regression (segment amplitude): test RMSE {:.3} (always guessing the mean amplitude: {:.3})",
        rmse(&|i, s| predicted[i][[s, 0]]),
        rmse(&|_, _| mean_amplitude)
    );
    Ok(())
}
