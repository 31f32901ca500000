//! Data-parallel training simulated with ranks as threads ([`ThreadGroup`]):
//! the weighted gradients of `N` shares add up to the whole mini-batch's
//! (masking and batch normalization included), and `N` ranks train the
//! weights one process trains on the same global mini-batches.

use ndarray::{Array2, ArrayD};
use seqnet_core::layers::*;
use seqnet_core::SharedReducer;
use seqnet_core::{LayerGraph, Mode, Network};
use seqnet_data::{
    BatchOptions, Batcher, Datastore, InMemoryDatastore, Observation, PaddingDirection, Sequence,
    Share, Target,
};
use seqnet_train::distributed::{sum_gradients, weigh_shares, CommunicatorReducer, StandInReducer};
use seqnet_train::*;
use std::sync::Arc;

const CLASSES: usize = 3;

/// Runs `rank(comm)` for each of `ranks` ranks of a [`ThreadGroup`], each
/// on its own thread; returns the results in rank order.
fn on_ranks<T: Send>(ranks: usize, rank: impl Fn(ThreadGroup) -> T + Sync) -> Vec<T> {
    std::thread::scope(|s| {
        let rank = &rank;
        let handles: Vec<_> = ThreadGroup::new(ranks)
            .into_iter()
            .map(|comm| s.spawn(move || rank(comm)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// `n` sequences of 3 features and lengths 2 to 9, labelled by the sign
/// pattern of their mean, so that there is something to learn.
fn labelled(n: usize) -> Arc<dyn Datastore> {
    labelled_with(n, |i| 2 + (i * 5) % 8)
}

/// As [`labelled`], observation `i` of `length(i)` steps.
fn labelled_with(n: usize, length: impl Fn(usize) -> usize) -> Arc<dyn Datastore> {
    let obs = (0..n)
        .map(|i| {
            let t = length(i);
            let x = Array2::from_shape_fn((t, 3), |(s, c)| {
                (((i * 7 + s * 3 + c * 11) % 13) as f32 / 6.5 - 1.0) + (i % CLASSES) as f32 * 0.3
            });
            Observation::new(Sequence::Features(x), Target::Class(i % CLASSES))
        })
        .collect();
    let classes = (0..CLASSES).map(|k| format!("c{k}")).collect();
    Arc::new(InMemoryDatastore::new(obs, Some(classes)).unwrap())
}

/// `n` sequences of 2 features and lengths 1 to 7 with a response per step.
fn per_step(n: usize) -> Arc<dyn Datastore> {
    let obs = (0..n)
        .map(|i| {
            let t = 1 + (i * 3) % 7;
            let x = Array2::from_shape_fn((t, 2), |(s, c)| {
                ((i + 2 * s + 5 * c) % 9) as f32 * 0.25 - 1.0
            });
            let y = Array2::from_shape_fn((t, 1), |(s, _)| x[[s, 0]] * 0.5 - x[[s, 1]]);
            Observation::new(Sequence::Features(x), Target::ResponseSequence(y))
        })
        .collect();
    Arc::new(InMemoryDatastore::new(obs, None).unwrap())
}

/// Sequence to label, with batch normalization over the real steps.
fn classifier() -> LayerGraph {
    LayerGraph::from_layers(vec![
        SequenceInput::new(3).into(),
        // Right after the input: a bias before batch normalization has no
        // effect, so its gradient is rounding noise that Adam would amplify.
        BatchNormalization::new().into(),
        FullyConnected::new(6).into(),
        Relu::new().into(),
        Lstm::new(5).output_mode(OutputMode::Last).into(),
        FullyConnected::new(CLASSES).into(),
        Softmax::new().into(),
        ClassificationOutput::new().into(),
    ])
    .unwrap()
}

/// Sequence to sequence regression, with batch normalization.
fn regressor() -> LayerGraph {
    LayerGraph::from_layers(vec![
        SequenceInput::new(2).into(),
        BatchNormalization::new().into(),
        FullyConnected::new(4).into(),
        Tanh::new().into(),
        Lstm::new(4).into(),
        FullyConnected::new(1).into(),
        RegressionOutput::new().into(),
    ])
    .unwrap()
}

/// The largest difference between the arrays relative to the largest magnitude of `b`.
fn relative_difference(a: &ArrayD<f32>, b: &ArrayD<f32>) -> f32 {
    assert_eq!(a.shape(), b.shape());
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

/// Every learnable and statistic of `a` against `b`.
fn assert_same_weights(a: &Network, b: &Network, tolerance: f32, what: &str) {
    for ((name, p), (_, q)) in a.learnables().iter().zip(b.learnables()) {
        let d = relative_difference(&p.value.to_owned(), &q.value.to_owned());
        assert!(d <= tolerance, "{what}: {name}.{} differs by {d}", p.name);
    }
    for ((name, p), (_, q)) in a.states().iter().zip(b.states()) {
        let d = relative_difference(&p.value.to_owned(), &q.value.to_owned());
        assert!(d <= tolerance, "{what}: {name}.{} differs by {d}", p.name);
    }
}

/// The gradient of every learnable, in network order.
fn gradients(network: &Network) -> Vec<ArrayD<f32>> {
    network
        .learnables()
        .iter()
        .map(|(_, p)| p.grad.clone())
        .collect()
}

/// One mini-batch's gradients: the whole batch in one process against the
/// sum of `ranks` threads' weighted share gradients.
fn check_one_batch(
    graph: &LayerGraph,
    store: &Arc<dyn Datastore>,
    indices: &[usize],
    options: BatchOptions,
    ranks: usize,
) {
    let batcher = Batcher::for_datastore(options, store.as_ref()).unwrap();
    let lengths = store.sequence_lengths().unwrap();
    let batch_lengths: Vec<usize> = indices.iter().map(|&i| lengths[i]).collect();
    let obs: Vec<Observation> = indices.iter().map(|&i| store.read(i).unwrap()).collect();

    // One process, the whole mini-batch (all its chunks, carrying state).
    let mut whole = Network::new(graph, 4).unwrap();
    whole.set_input_gradients(false);
    let mut expected = Vec::new();
    for chunk in batcher.batch(&obs).unwrap() {
        whole
            .forward(
                std::slice::from_ref(&chunk.inputs),
                Some(&[chunk.targets.clone().unwrap()]),
                Mode::Training,
                true,
            )
            .unwrap();
        let loss = whole.loss().unwrap();
        whole.backward().unwrap();
        expected.push((loss, gradients(&whole)));
    }

    let results: Vec<Vec<(f32, Vec<ArrayD<f32>>)>> = on_ranks(ranks, |comm| {
        let share = comm.share();
        let stand_in = share.is_stand_in(obs.len());
        let positions = batcher.share_positions(share, &batch_lengths);
        let mine: Vec<Observation> = positions.iter().map(|&p| obs[p].clone()).collect();
        let chunks = batcher
            .batch_share(&mine, &batch_lengths, &positions)
            .unwrap();
        let comm: Arc<dyn Communicator> = Arc::new(comm);
        let mut net = Network::new(graph, 4).unwrap();
        net.set_input_gradients(false);
        let reducer: SharedReducer = if stand_in {
            Arc::new(StandInReducer(comm.clone()))
        } else {
            Arc::new(CommunicatorReducer(comm.clone()))
        };
        net.set_stat_reducer(Some(reducer));
        let mut out = Vec::new();
        for chunk in chunks {
            net.forward(
                std::slice::from_ref(&chunk.inputs),
                Some(&[chunk.targets.clone().unwrap()]),
                Mode::Training,
                true,
            )
            .unwrap();
            let loss = weigh_shares(&mut net, comm.as_ref(), stand_in)
                .unwrap()
                .loss;
            net.backward().unwrap();
            sum_gradients(&mut net, comm.as_ref());
            out.push((loss, gradients(&net)));
        }
        out
    });
    for (rank, got) in results.iter().enumerate() {
        assert_eq!(got.len(), expected.len(), "chunks on rank {rank}");
        for (c, ((loss, grads), (want_loss, want))) in got.iter().zip(&expected).enumerate() {
            assert!(
                (loss - want_loss).abs() <= 1e-5 * want_loss.abs().max(1.0),
                "loss of chunk {c}, rank {rank}: {loss} vs {want_loss}"
            );
            for (k, (g, w)) in grads.iter().zip(want).enumerate() {
                let d = relative_difference(g, w);
                assert!(
                    d <= 1e-4,
                    "{ranks} ranks, chunk {c}, rank {rank}: gradient {k} differs by {d}"
                );
            }
        }
    }
}

#[test]
fn weighted_share_gradients_add_up_to_the_whole_batch_gradient() {
    let store = labelled(11);
    let indices: Vec<usize> = (0..11).rev().collect();
    for ranks in [2, 3, 4] {
        for direction in [PaddingDirection::Right, PaddingDirection::Left] {
            for sequence_length in [
                SequenceLength::Longest,
                SequenceLength::Fixed(3),
                SequenceLength::Shortest,
            ] {
                let options = BatchOptions {
                    sequence_length,
                    direction,
                    padding_value: 0.7,
                };
                check_one_batch(&classifier(), &store, &indices, options, ranks);
            }
        }
    }
}

/// Every 5th sequence 16 steps long, the others 2: shares balanced by time
/// steps have unequal observation counts.
fn skewed(n: usize) -> Arc<dyn Datastore> {
    labelled_with(n, |i| if i % 5 == 0 { 16 } else { 2 + i % 3 })
}

#[test]
fn shares_balanced_by_time_steps_with_unequal_counts_add_up_and_train_alike() {
    let store = skewed(23);
    // One 16-step sequence and nine of 2–4 steps.
    let indices: Vec<usize> = vec![0, 1, 2, 3, 4, 6, 7, 8, 9, 11];
    let lengths = store.sequence_lengths().unwrap();
    let batch_lengths: Vec<usize> = indices.iter().map(|&i| lengths[i]).collect();
    for ranks in [2, 3] {
        for direction in [PaddingDirection::Right, PaddingDirection::Left] {
            for sequence_length in [SequenceLength::Longest, SequenceLength::Fixed(3)] {
                let options = BatchOptions {
                    sequence_length,
                    direction,
                    padding_value: 0.7,
                };
                let batcher = Batcher::for_datastore(options, store.as_ref()).unwrap();
                let counts: Vec<usize> = (0..ranks)
                    .map(|rank| {
                        batcher
                            .share_positions(Share { rank, ranks }, &batch_lengths)
                            .len()
                    })
                    .collect();
                assert!(
                    counts.iter().min() < counts.iter().max(),
                    "{ranks} ranks: counts {counts:?} should differ"
                );
                check_one_batch(&classifier(), &store, &indices, options, ranks);
            }
        }
    }
    let options = TrainingOptions::new(Solver::Adam)
        .max_epochs(3)
        .mini_batch_size(10)
        .shuffle(Shuffle::EveryEpoch)
        .verbose(false)
        .seed(4);
    let (one, _) = Trainer::new(
        options
            .clone()
            .execution_environment(ExecutionEnvironment::Cpu),
    )
    .train(&classifier(), store.clone(), None)
    .unwrap();
    for ranks in [2, 3] {
        for (rank, m) in train_ranks(&classifier(), &store, &options, ranks)
            .iter()
            .enumerate()
        {
            assert_same_weights(
                &m.network,
                &one.network,
                1e-4,
                &format!("rank {rank} of {ranks}"),
            );
        }
    }
}

#[test]
fn stand_ins_count_for_nothing_in_a_batch_smaller_than_the_rank_count() {
    let store = labelled(5);
    for ranks in [3, 4] {
        for sequence_length in [SequenceLength::Longest, SequenceLength::Fixed(2)] {
            let options = BatchOptions {
                sequence_length,
                ..BatchOptions::default()
            };
            check_one_batch(&classifier(), &store, &[4, 1], options, ranks);
        }
    }
}

#[test]
fn weighted_share_gradients_add_up_per_step_with_masking() {
    let store = per_step(7);
    let indices: Vec<usize> = vec![3, 0, 6, 1, 5, 2, 4];
    for ranks in [2, 3] {
        for direction in [PaddingDirection::Right, PaddingDirection::Left] {
            for sequence_length in [SequenceLength::Longest, SequenceLength::Fixed(2)] {
                let options = BatchOptions {
                    sequence_length,
                    direction,
                    padding_value: -3.0,
                };
                check_one_batch(&regressor(), &store, &indices, options, ranks);
            }
        }
    }
}

/// Trains with `ranks` threads; returns each rank's model.
fn train_ranks(
    graph: &LayerGraph,
    store: &Arc<dyn Datastore>,
    options: &TrainingOptions,
    ranks: usize,
) -> Vec<Model> {
    on_ranks(ranks, |comm| {
        Trainer::new(options.clone())
            .communicator(Arc::new(comm))
            .train(graph, store.clone(), None)
            .unwrap()
            .0
    })
}

#[test]
fn ranks_train_the_weights_of_one_process() {
    let store = labelled(26);
    let base = TrainingOptions::new(Solver::Adam)
        .max_epochs(3)
        .mini_batch_size(8)
        .shuffle(Shuffle::EveryEpoch)
        .verbose(false)
        .seed(9);
    for options in [
        base.clone(),
        base.clone()
            .sequence_length(SequenceLength::Fixed(3))
            .sequence_padding_direction(PaddingDirection::Left),
        TrainingOptions {
            solver: Solver::Sgdm,
            ..base.clone()
        }
        .gradient_threshold(0.5),
    ] {
        let (one, record) = Trainer::new(
            options
                .clone()
                .execution_environment(ExecutionEnvironment::Cpu),
        )
        .train(&classifier(), store.clone(), None)
        .unwrap();
        assert!(record.iterations.len() >= 12);
        // 26 = 3·8 + 2: the last mini-batch is smaller than 3 ranks.
        for ranks in [2, 3] {
            let models = train_ranks(&classifier(), &store, &options, ranks);
            for (rank, m) in models.iter().enumerate() {
                assert_same_weights(
                    &m.network,
                    &one.network,
                    1e-4,
                    &format!("rank {rank} of {ranks}"),
                );
            }
        }
    }
}

#[test]
fn ranks_report_the_global_loss_and_accuracy_on_rank_zero_only() {
    let store = labelled(16);
    let options = TrainingOptions::new(Solver::Adam)
        .max_epochs(1)
        .mini_batch_size(8)
        .verbose(false)
        .seed(2);
    let mut want = Vec::new();
    Trainer::new(options.clone())
        .on_event(|e| {
            if let TrainingEvent::Iteration(i) = e {
                want.push((i.loss, i.accuracy));
            }
        })
        .train(&classifier(), store.clone(), None)
        .unwrap();
    let seen: Vec<Vec<(f32, Option<f32>)>> = on_ranks(2, |comm| {
        let mut seen = Vec::new();
        Trainer::new(options.clone())
            .communicator(Arc::new(comm))
            .on_event(|e| {
                if let TrainingEvent::Iteration(i) = e {
                    seen.push((i.loss, i.accuracy));
                }
            })
            .train(&classifier(), store.clone(), None)
            .unwrap();
        seen
    });
    assert_eq!(seen[0].len(), want.len());
    assert!(seen[1].is_empty(), "rank 1 reports nothing");
    for ((loss, acc), (want_loss, want_acc)) in seen[0].iter().zip(&want) {
        assert!(
            (loss - want_loss).abs() <= 1e-4 * want_loss.abs().max(1.0),
            "{loss} vs {want_loss}"
        );
        assert_eq!(acc, want_acc);
    }
}

#[test]
fn parallel_without_a_communicator_is_an_error() {
    let options = TrainingOptions::new(Solver::Adam)
        .max_epochs(1)
        .verbose(false)
        .execution_environment(ExecutionEnvironment::Parallel);
    let Err(err) = Trainer::new(options).train(&classifier(), labelled(4), None) else {
        panic!("trained without a communicator");
    };
    assert!(err.to_string().contains("ExecutionEnvironment"), "{err}");
}

#[test]
fn a_single_process_communicator_changes_nothing() {
    let store = labelled(12);
    let options = TrainingOptions::new(Solver::Adam)
        .max_epochs(2)
        .mini_batch_size(5)
        .verbose(false);
    let (a, _) = Trainer::new(options.clone())
        .train(&classifier(), store.clone(), None)
        .unwrap();
    let (b, _) = Trainer::new(options.execution_environment(ExecutionEnvironment::Parallel))
        .communicator(Arc::new(SingleProcess))
        .train(&classifier(), store, None)
        .unwrap();
    assert_same_weights(&a.network, &b.network, 0.0, "single process");
}

/// The backward hook sees every layer once, in the reverse of the forward
/// schedule, with gradients that backward no longer changes.
#[test]
fn the_backward_hook_hands_over_final_gradients_in_backward_order() {
    let store = labelled(6);
    let batcher = Batcher::for_datastore(BatchOptions::default(), store.as_ref()).unwrap();
    let obs: Vec<Observation> = (0..6).map(|i| store.read(i).unwrap()).collect();
    let chunk = batcher.batch(&obs).unwrap().remove(0);
    let mut net = Network::new(&classifier(), 4).unwrap();
    net.forward(
        std::slice::from_ref(&chunk.inputs),
        Some(&[chunk.targets.clone().unwrap()]),
        Mode::Training,
        true,
    )
    .unwrap();
    let mut seen = Vec::new();
    let mut handed = Vec::new();
    net.backward_with(&mut |layer, learnables| {
        seen.push(layer);
        handed.extend(learnables.iter().map(|p| p.grad.clone()));
    })
    .unwrap();
    assert_eq!(seen, net.backward_order());
    let mut sorted = seen.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..net.graph().layers.len()).collect::<Vec<_>>());
    // Handed over in backward order; `gradients` lists them in layer order.
    let mut by_layer: Vec<ArrayD<f32>> = Vec::new();
    for layer in 0..net.graph().layers.len() {
        let first: usize = seen
            .iter()
            .take_while(|&&l| l != layer)
            .map(|&l| net.learnables_of(l).len())
            .sum();
        let n = net.learnables_of(layer).len();
        by_layer.extend(handed[first..first + n].iter().cloned());
    }
    assert!(handed.iter().any(|g| g.iter().any(|&v| v != 0.0)));
    assert_eq!(by_layer, gradients(&net));
}

/// Gradients reduced in buckets during backward (on a communication
/// thread) train exactly the weights of one reduction after backward,
/// whatever the bucket size: every element is the same sum over ranks.
#[test]
fn bucketed_reduction_trains_exactly_the_unbucketed_weights() {
    let store = labelled(26);
    let options = TrainingOptions::new(Solver::Adam)
        .max_epochs(2)
        .mini_batch_size(8)
        .shuffle(Shuffle::EveryEpoch)
        .verbose(false)
        .seed(5);
    for ranks in [2, 3] {
        let plain = train_ranks(&classifier(), &store, &options, ranks);
        // Every layer alone (1 byte), a few layers together, one bucket.
        for megabytes in [1e-6, 2e-4, 25.0] {
            let bucketed = options.clone().gradient_bucket_size(megabytes);
            let models = train_ranks(&classifier(), &store, &bucketed, ranks);
            for (rank, m) in models.iter().enumerate() {
                assert_same_weights(
                    &m.network,
                    &plain[rank].network,
                    0.0,
                    &format!("rank {rank} of {ranks}, {megabytes} MB buckets"),
                );
            }
        }
    }
}

#[test]
fn a_bucket_size_must_be_positive() {
    for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let options = TrainingOptions::new(Solver::Adam)
            .max_epochs(1)
            .verbose(false)
            .gradient_bucket_size(bad);
        let Err(err) = Trainer::new(options).train(&classifier(), labelled(4), None) else {
            panic!("trained with {bad} MB buckets");
        };
        assert!(err.to_string().contains("GradientBucketSize"), "{err}");
    }
}

/// A rank's made-up gradient for learnable `p`, element `i`, round `round`.
fn made_up(rank: usize, p: usize, i: usize, round: usize) -> f32 {
    ((rank * 31 + p * 7 + i * 3 + round * 5) % 17) as f32 - 8.0
}

/// [`GradientSum`] with its kept buffers, over 3 ranks and 3 rounds, gives
/// every element its sum over the ranks: small gradients packed, large ones
/// (a 300×256 fully connected weight, once in column-major layout) summed
/// on their own and swapped in, the buffers reused from round to round.
#[test]
fn kept_buffers_sum_every_gradient_over_the_ranks() {
    let graph = LayerGraph::from_layers(vec![
        SequenceInput::new(256).into(),
        FullyConnected::new(300).into(),
        Relu::new().into(),
        FullyConnected::new(CLASSES).into(),
        Softmax::new().into(),
        ClassificationOutput::new().into(),
    ])
    .unwrap();
    let ranks = 3;
    let results: Vec<Vec<Vec<ArrayD<f32>>>> = on_ranks(ranks, |comm| {
        let mut network = Network::new(&graph, 1).unwrap();
        let mut sum = seqnet_train::distributed::GradientSum::default();
        let mut rounds = Vec::new();
        for round in 0..3 {
            for (p, (_, l)) in network.learnables_mut().into_iter().enumerate() {
                let shape = l.grad.shape().to_vec();
                let mut g = ArrayD::<f32>::zeros(shape.clone());
                if round == 1 && shape.len() == 2 {
                    // Column-major: not in standard layout.
                    g = ArrayD::zeros(vec![shape[1], shape[0]]).reversed_axes();
                }
                // In logical order, whatever the layout.
                for (i, v) in g.iter_mut().enumerate() {
                    *v = made_up(comm.rank(), p, i, round);
                }
                l.grad = g;
            }
            sum.sum(&mut network, &comm);
            rounds.push(gradients(&network));
        }
        rounds
    });
    let big = results[0][0].iter().filter(|g| g.len() >= 1 << 16).count();
    assert_eq!(big, 1, "one gradient takes the unpacked path");
    for (rank, rounds) in results.iter().enumerate() {
        for (round, grads) in rounds.iter().enumerate() {
            for (p, g) in grads.iter().enumerate() {
                let mut expected = ArrayD::<f32>::zeros(g.shape());
                for (i, v) in expected.iter_mut().enumerate() {
                    *v = (0..ranks).map(|r| made_up(r, p, i, round)).sum();
                }
                assert_eq!(g, &expected, "rank {rank}, round {round}, learnable {p}");
            }
        }
    }
}

/// A datastore that counts the observations read from it.
struct Counted {
    inner: Arc<dyn Datastore>,
    reads: std::sync::atomic::AtomicUsize,
}

impl Datastore for Counted {
    fn len(&self) -> usize {
        self.inner.len()
    }
    fn read(&self, i: usize) -> seqnet_data::Result<Observation> {
        self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.read(i)
    }
    fn classes(&self) -> Option<&[String]> {
        self.inner.classes()
    }
    fn sequence_lengths(&self) -> seqnet_data::Result<Vec<usize>> {
        self.inner.sequence_lengths()
    }
    fn frame_shape(&self) -> seqnet_data::Result<Option<seqnet_data::FrameShape>> {
        self.inner.frame_shape()
    }
    fn target_kind(&self) -> seqnet_data::Result<Option<seqnet_data::TargetKind>> {
        self.inner.target_kind()
    }
}

/// Rank 0 alone reads the validation data; every rank gets its metrics
/// (the same on every rank, those of one process within rounding), so the
/// records, early stopping and the best network agree.
#[test]
fn rank_zero_alone_validates_and_every_rank_gets_its_metrics() {
    let store = labelled(24);
    let validation = labelled(11);
    let options = TrainingOptions {
        validation_frequency: 2,
        ..TrainingOptions::new(Solver::Adam)
            .max_epochs(2)
            .mini_batch_size(8)
            .verbose(false)
            .seed(4)
    };
    let (_, one) = Trainer::new(options.clone())
        .train(&classifier(), store.clone(), Some(validation.clone()))
        .unwrap();
    let ranks: Vec<(TrainingRecord, usize)> = on_ranks(2, |comm| {
        let counted = Arc::new(Counted {
            inner: validation.clone(),
            reads: Default::default(),
        });
        let (_, record) = Trainer::new(options.clone())
            .communicator(Arc::new(comm))
            .train(&classifier(), store.clone(), Some(counted.clone()))
            .unwrap();
        let reads = counted.reads.load(std::sync::atomic::Ordering::SeqCst);
        (record, reads)
    });
    assert!(ranks[0].1 > 0, "rank 0 validates");
    assert_eq!(ranks[1].1, 0, "rank 1 reads no validation data");
    let validations = |r: &TrainingRecord| -> Vec<Metrics> {
        r.iterations.iter().filter_map(|i| i.validation).collect()
    };
    let (v0, v1, want) = (
        validations(&ranks[0].0),
        validations(&ranks[1].0),
        validations(&one),
    );
    assert_eq!(v0.len(), want.len());
    assert!(v0.len() >= 3);
    assert_eq!(v0, v1, "every rank has rank 0's metrics");
    assert_eq!(ranks[0].0.final_validation, ranks[1].0.final_validation);
    assert!(ranks[0].0.final_validation.is_some());
    for (got, want) in v0.iter().zip(&want) {
        assert!(
            (got.loss - want.loss).abs() <= 1e-4 * want.loss.abs().max(1.0),
            "{} vs {}",
            got.loss,
            want.loss
        );
        assert_eq!(got.accuracy, want.accuracy);
    }
}

/// Sequence to label with two learnables large enough to be sharded (the
/// LSTM's 160000 input and recurrent weights).
fn wide_classifier() -> LayerGraph {
    LayerGraph::from_layers(vec![
        SequenceInput::new(3).into(),
        FullyConnected::new(200).into(),
        Lstm::new(200).output_mode(OutputMode::Last).into(),
        FullyConnected::new(CLASSES).into(),
        Softmax::new().into(),
        ClassificationOutput::new().into(),
    ])
    .unwrap()
}

/// The sharded solver (each rank updates its shard of each large learnable
/// and the ranks exchange the weights) trains the weights of one process,
/// for every solver and clipping by norm (per learnable and global, whose
/// norms add the shards' partial sums), with gradient buckets too, and its
/// checkpoints (at an epoch's end, by iterations within an epoch) hold the
/// whole solver state: that of one process.
#[test]
fn the_sharded_solver_trains_the_weights_and_solver_state_of_one_process() {
    let store = labelled(26);
    let dir = std::env::temp_dir().join(format!("seqnet-sharded-{}", std::process::id()));
    let base = |solver| {
        TrainingOptions::new(solver)
            .max_epochs(2)
            .mini_batch_size(8)
            .shuffle(Shuffle::EveryEpoch)
            .verbose(false)
            .seed(6)
    };
    let large = Network::new(&wide_classifier(), 1).unwrap();
    let large = large
        .learnables()
        .iter()
        .filter(|(_, p)| p.value.len() >= 1 << 16)
        .count();
    assert_eq!(large, 2, "two learnables are sharded");
    let epoch = "checkpoint_epoch0001.safetensors";
    for (k, (options, file)) in [
        (
            base(Solver::Adam)
                .gradient_threshold(0.05)
                .gradient_threshold_method(GradientThresholdMethod::GlobalL2norm),
            epoch,
        ),
        (base(Solver::Sgdm).gradient_threshold(0.05), epoch),
        (base(Solver::Rmsprop), epoch),
        // Buckets sum the gradients whole during backward; the sharded
        // step then updates the shards and gathers the weights.
        (base(Solver::Adam).gradient_bucket_size(0.5), epoch),
        // A checkpoint in the middle of the first epoch (4 iterations).
        (
            base(Solver::Adam)
                .checkpoint_frequency_unit(FrequencyUnit::Iteration)
                .checkpoint_frequency(3),
            "checkpoint_iteration000003.safetensors",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let checkpoints = |what: &str| dir.join(format!("{k}-{what}"));
        let one_options = options
            .clone()
            .execution_environment(ExecutionEnvironment::Cpu)
            .checkpoint_path(checkpoints("one"));
        let (one, _) = Trainer::new(one_options)
            .train(&wide_classifier(), store.clone(), None)
            .unwrap();
        for ranks in [2, 3] {
            let sharded = options
                .clone()
                .shard_solver(true)
                .checkpoint_path(checkpoints(&format!("{ranks}")));
            let models = train_ranks(&wide_classifier(), &store, &sharded, ranks);
            for (rank, m) in models.iter().enumerate() {
                let what = format!("{:?}, rank {rank} of {ranks}", options.solver);
                assert_same_weights(&m.network, &one.network, 1e-4, &what);
            }
            let (_, want) = checkpoint::load_checkpoint(&checkpoints("one").join(file)).unwrap();
            let (_, got) =
                checkpoint::load_checkpoint(&checkpoints(&format!("{ranks}")).join(file)).unwrap();
            assert_eq!(got.solver.steps, want.solver.steps);
            let arrays = |s: &solver::SolverState| [s.first.clone(), s.second.clone()].concat();
            for (i, (g, w)) in arrays(&got.solver)
                .iter()
                .zip(&arrays(&want.solver))
                .enumerate()
            {
                let d = relative_difference(g, w);
                assert!(
                    d <= 1e-4,
                    "{:?}, {ranks} ranks: solver array {i} differs by {d}",
                    options.solver
                );
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
