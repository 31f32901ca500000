//! A loss that becomes infinite stops training with an error naming the
//! iteration, and the checkpoint written before it stays intact and loadable.

use ndarray::Array3;
use seqnet_core::layers::*;
use seqnet_core::{Activation, LayerGraph, Network};
use seqnet_data::{Chunk, MiniBatch};
use seqnet_train::checkpoint::{load_checkpoint, save_checkpoint};
use seqnet_train::*;

fn batch(target: f32) -> MiniBatch {
    let x = Array3::from_shape_fn((3, 4, 2), |(t, b, c)| (t + b + c) as f32 * 0.1);
    let y = Array3::from_elem((3, 4, 1), target);
    let chunk = Chunk {
        inputs: Activation::sequence(x.into_dyn(), None).unwrap(),
        targets: Some(Activation::sequence(y.into_dyn(), None).unwrap()),
    };
    MiniBatch {
        indices: (0..4).collect(),
        chunks: vec![chunk],
    }
}

/// Two good mini-batches per epoch; in epoch 3 the second has an overflowing target.
struct Poisoned;

impl BatchSource for Poisoned {
    fn epoch(&mut self, epoch: usize) -> Result<Box<dyn Iterator<Item = Result<MiniBatch>> + '_>> {
        let second = if epoch == 2 { 3e38 } else { 0.5 };
        Ok(Box::new(
            vec![Ok(batch(0.5)), Ok(batch(second))].into_iter(),
        ))
    }
}

#[test]
fn an_infinite_loss_names_its_iteration_and_keeps_the_checkpoint() {
    let dir = std::env::temp_dir().join(format!("seqnet-nonfinite-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("checkpoint.safetensors");
    let g = LayerGraph::from_layers(vec![
        SequenceInput::new(2).into(),
        Lstm::new(3).into(),
        FullyConnected::new(1).into(),
        RegressionOutput::new().into(),
    ])
    .unwrap();
    let mut net = Network::new(&g, 1).unwrap();
    let opts = TrainingOptions::new(Solver::Adam)
        .max_epochs(5)
        .verbose(false);
    let mut saved = None;
    let err = fit(&mut net, &mut Poisoned, None, &opts, &mut |e| {
        if let TrainingEvent::EpochFinished { network, state, .. } = e {
            save_checkpoint(&path, network, &[], &opts, state).unwrap();
            saved = Some(std::fs::read(&path).unwrap());
        }
    })
    .unwrap_err();
    match &err {
        Error::NonFiniteLoss { iteration, loss } => {
            assert_eq!(*iteration, 6, "epoch 3's second mini-batch");
            assert!(loss.is_infinite(), "{loss}");
        }
        other => panic!("expected a training error, got {other}"),
    }
    assert!(err.to_string().contains("iteration 6"), "{err}");
    assert!(err.to_string().contains("the loss became inf"), "{err}");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        saved.unwrap(),
        "the last good checkpoint is untouched"
    );
    let (_, state) = load_checkpoint(&path).unwrap();
    assert_eq!((state.epoch, state.iteration), (2, 4));
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        1,
        "no temporary file left behind"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
