//! The training loop on small problems that need no recurrent layer: it learns,
//! it is deterministic, it validates, stops early and refuses a diverging loss.

use ndarray::{Array3, ArrayD};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use seqnet_core::layers::*;
use seqnet_core::{Activation, LayerGraph, Network};
use seqnet_data::{Chunk, MiniBatch};
use seqnet_train::*;

/// Per-step regression: y = 2·x0 − x1 + 0.5, on sequences of 3 steps.
fn batches(n: usize, seed: u64) -> Vec<MiniBatch> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let x = Array3::from_shape_fn((3, 8, 2), |_| rng.random_range(-1.0..1.0f32));
            let y = Array3::from_shape_fn((3, 8, 1), |(t, b, _)| {
                2.0 * x[[t, b, 0]] - x[[t, b, 1]] + 0.5
            });
            let chunk = Chunk {
                inputs: Activation::sequence(x.into_dyn(), None).unwrap(),
                targets: Some(Activation::sequence(y.into_dyn(), None).unwrap()),
            };
            MiniBatch {
                indices: (0..8).collect(),
                chunks: vec![chunk],
            }
        })
        .collect()
}

fn net() -> Network {
    let g = LayerGraph::from_layers(vec![
        SequenceInput::new(2).into(),
        FullyConnected::new(1).into(),
        RegressionOutput::new().into(),
    ])
    .unwrap();
    Network::new(&g, 3).unwrap()
}

fn weights(n: &Network) -> Vec<ArrayD<f32>> {
    n.learnables()
        .iter()
        .map(|(_, p)| p.value.clone())
        .collect()
}

#[test]
fn learns_a_linear_map_deterministically() {
    let data = batches(10, 1);
    let opts = TrainingOptions::new(Solver::Adam)
        .initial_learn_rate(0.05)
        .max_epochs(40)
        .l2_regularization(0.0)
        .seed(4);
    let run = || {
        let mut n = net();
        let rec = fit(
            &mut n,
            &mut InMemoryBatches(data.clone()),
            None,
            &opts,
            &mut |_| {},
        )
        .unwrap();
        (n, rec)
    };
    let (n1, rec) = run();
    let (n2, _) = run();
    assert_eq!(weights(&n1), weights(&n2), "same seed, same weights");
    let last = rec.iterations.last().unwrap();
    assert!(last.rmse.unwrap() < 0.05, "rmse {}", last.rmse.unwrap());
    let w = &weights(&n1)[0];
    assert!(
        (w[[0, 0]] - 2.0).abs() < 0.1 && (w[[0, 1]] + 1.0).abs() < 0.1,
        "{w}"
    );
    assert_eq!(rec.iterations.len(), 400);
}

#[test]
fn every_solver_reduces_the_loss() {
    for solver in [Solver::Sgdm, Solver::Adam, Solver::Rmsprop] {
        let data = batches(5, 2);
        let opts = TrainingOptions::new(solver)
            .initial_learn_rate(0.02)
            .max_epochs(30)
            .seed(1);
        let mut n = net();
        let rec = fit(
            &mut n,
            &mut InMemoryBatches(data.clone()),
            None,
            &opts,
            &mut |_| {},
        )
        .unwrap();
        let epoch_loss = |e: usize| {
            rec.iterations
                .iter()
                .filter(|i| i.epoch == e)
                .map(|i| i.loss)
                .sum::<f32>()
        };
        let (first, last) = (epoch_loss(1), epoch_loss(30));
        assert!(last < first * 0.5, "{solver:?}: loss {first} -> {last}");
    }
}

#[test]
fn validation_patience_stops_early_and_best_network_is_returned() {
    let data = batches(4, 3);
    let val = batches(2, 4);
    // A learning rate so large that the loss soon rises: patience must stop it.
    let opts = TrainingOptions::new(Solver::Sgdm)
        .initial_learn_rate(0.9)
        .momentum(0.0)
        .max_epochs(200)
        .validation_frequency(1)
        .validation_patience(3)
        .output_network(OutputNetwork::BestValidationLoss)
        .l2_regularization(0.0);
    let mut n = net();
    match fit(
        &mut n,
        &mut InMemoryBatches(data.clone()),
        Some(&mut InMemoryBatches(val.clone())),
        &opts,
        &mut |_| {},
    ) {
        Ok(rec) => {
            assert!(
                rec.iterations.len() < 800,
                "stopped early: {:?}",
                rec.stop_reason
            );
            assert_eq!(
                rec.stop_reason,
                Some(StopReason::ValidationPatience { validations: 3 })
            );
            let best = rec
                .iterations
                .iter()
                .filter_map(|i| i.validation.map(|v| v.loss))
                .fold(f32::INFINITY, f32::min);
            assert!(
                (rec.final_validation.unwrap().loss - best).abs() < 1e-5,
                "returns the best network"
            );
        }
        Err(Error::NonFiniteLoss { iteration, .. }) => assert!(iteration > 1),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn a_diverging_loss_stops_training_with_its_iteration() {
    let data = batches(4, 5);
    let opts = TrainingOptions::new(Solver::Sgdm)
        .initial_learn_rate(50.0)
        .max_epochs(100);
    let mut n = net();
    let err = fit(
        &mut n,
        &mut InMemoryBatches(data.clone()),
        None,
        &opts,
        &mut |_| {},
    )
    .unwrap_err();
    assert!(
        matches!(err, Error::NonFiniteLoss { iteration, .. } if iteration > 1),
        "{err}"
    );
    assert!(err.to_string().contains("iteration"), "{err}");
}

#[test]
fn verbose_table_prints_matlab_columns() {
    let data = batches(3, 6);
    let opts = TrainingOptions::new(Solver::Adam)
        .max_epochs(2)
        .verbose_frequency(2);
    let mut table = VerboseTable::new(Vec::new(), opts.verbose_frequency);
    let mut n = net();
    Trainer::new(opts)
        .observer(&mut table)
        .fit(&mut n, &mut InMemoryBatches(data.clone()), None)
        .unwrap();
    let text = String::from_utf8(table.finish().unwrap()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    for want in [
        "Epoch",
        "Iteration",
        "Time Elapsed",
        "RMSE",
        "Base Learning",
        "Training finished",
    ] {
        assert!(text.contains(want), "{text}");
    }
    // Rows at iterations 1, 2, 4, 6 (frequency 2).
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with("| ") && l.contains("e-"))
            .count(),
        4,
        "{text}"
    );
}
