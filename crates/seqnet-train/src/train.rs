//! `train_network`: MATLAB's `trainNetwork` on datastores, and
//! `resume_training` — shortcuts for a [`Trainer`] — with what training on
//! datastores needs: the data's class names and normalization statistics.

use crate::checkpoint::read_options;
use crate::error::{Error, Result};
use crate::events::TrainingEvent;
use crate::model::Model;
use crate::options::TrainingOptions;
use crate::record::TrainingRecord;
use crate::trainer::Trainer;
use seqnet_core::layers::{ClassificationOutput, Normalization, SequenceInput};
use seqnet_core::{LayerGraph, Network};
use seqnet_data::{ChannelStats, Datastore};
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// The class names a graph's classification layer holds (empty if none).
pub fn classes_of(graph: &LayerGraph) -> Vec<String> {
    graph
        .layers
        .iter()
        .find_map(|l| l.downcast_ref::<ClassificationOutput>())
        .map(|c| c.classes.clone())
        .unwrap_or_default()
}

/// Gives the classification layer the datastore's class names (checking their count).
pub(crate) fn with_classes(graph: &LayerGraph, classes: Option<&[String]>) -> Result<LayerGraph> {
    let mut graph = graph.clone();
    let Some(classes) = classes else {
        return Ok(graph);
    };
    for layer in &mut graph.layers {
        if let Some(c) = layer.downcast_mut::<ClassificationOutput>() {
            if c.classes.is_empty() {
                c.classes = classes.to_vec();
            } else if c.classes != classes {
                return Err(Error::ClassesDiffer {
                    layer: c.name.clone(),
                    layer_classes: c.classes.clone(),
                    data: classes.to_vec(),
                });
            }
        }
    }
    Ok(graph)
}

/// Computes the input layers' normalization statistics from the training data.
pub(crate) fn set_normalization(network: &mut Network, store: &Arc<dyn Datastore>) -> Result<()> {
    let inputs: Vec<(String, Normalization)> = network
        .graph()
        .layers
        .iter()
        .filter_map(|l| l.downcast_ref::<SequenceInput>())
        .map(|s| (s.name.clone(), s.normalization))
        .filter(|(_, n)| *n != Normalization::None)
        .collect();
    if inputs.is_empty() {
        return Ok(());
    }
    let stats = ChannelStats::from_datastore(store.clone())?;
    for (layer, _) in inputs {
        let wanted: Vec<&str> = network
            .states()
            .iter()
            .filter(|(l, _)| *l == layer)
            .map(|(_, s)| s.name)
            .collect();
        for (name, value) in [
            ("Mean", &stats.mean),
            ("StandardDeviation", &stats.std),
            ("Min", &stats.min),
            ("Max", &stats.max),
        ] {
            if wanted.contains(&name) {
                network.set_state(&layer, name, value.clone().into_dyn())?;
            }
        }
    }
    Ok(())
}

/// Trains `graph` on `train` (MATLAB's `trainNetwork`), validating on
/// `validation` when given: fills in class names and normalization
/// statistics, writes a checkpoint after each epoch when
/// `options.checkpoint_path` is set, and gives every event to `on_event`.
/// Returns the model and the record. Prints nothing: to see MATLAB's verbose
/// table, attach a [`crate::VerboseTable`] to a [`Trainer`].
///
/// The same as `Trainer::new(options.clone()).on_event(on_event).train(graph, train, validation)`.
pub fn train_network(
    graph: &LayerGraph,
    train: Arc<dyn Datastore>,
    validation: Option<Arc<dyn Datastore>>,
    options: &TrainingOptions,
    on_event: &mut dyn FnMut(&TrainingEvent),
) -> Result<(Model, TrainingRecord)> {
    Trainer::new(options.clone())
        .on_event(on_event)
        .train(graph, train, validation)
}

/// Continues training from a checkpoint (written after an epoch, or when the
/// `stop` flag interrupted a run) with the options stored in it, to the same
/// final weights as an uninterrupted run. With `stop`, the resumed run can be
/// interrupted in turn.
///
/// The same as [`Trainer::resume`] on a trainer with the checkpoint's options.
pub fn resume_training(
    checkpoint: &Path,
    train: Arc<dyn Datastore>,
    validation: Option<Arc<dyn Datastore>>,
    on_event: &mut dyn FnMut(&TrainingEvent),
    stop: Option<&AtomicBool>,
) -> Result<(Model, TrainingRecord)> {
    let mut trainer = Trainer::new(read_options(checkpoint)?).on_event(on_event);
    if let Some(stop) = stop {
        trainer = trainer.stop_flag(stop);
    }
    trainer.resume(checkpoint, train, validation)
}
