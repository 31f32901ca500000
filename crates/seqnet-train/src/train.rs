//! `train_network`: MATLAB's `trainNetwork` on datastores — class names,
//! normalization statistics, shuffling, mini-batches and checkpoints around [`fit`].

use crate::checkpoint::{load_checkpoint, save_checkpoint};
use crate::model::Model;
use crate::options::{Shuffle, TrainingOptions};
use crate::record::{TrainingEvent, TrainingRecord};
use crate::trainer::{fit_with, BatchSource, TrainingControl};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use seqnet_core::layers::Normalization;
use seqnet_core::{Error, Layer, LayerGraph, Network, Result};
use seqnet_data::{BatchOptions, Batcher, ChannelStats, Datastore, LastBatch, MiniBatch};
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// The mini-batches of a datastore, shuffled as the options say.
pub struct DatastoreBatches {
    store: Arc<dyn Datastore>,
    batcher: Batcher,
    mini_batch_size: usize,
    shuffle: Shuffle,
    last: LastBatch,
    order: Vec<usize>,
    rng: StdRng,
    /// Epochs whose shuffle has been applied to `order`.
    shuffled_through: usize,
}

impl DatastoreBatches {
    /// Training batches: MATLAB drops the last partial mini-batch (unless there
    /// would be no full one) and shuffles as `options.shuffle` says.
    pub fn training(store: Arc<dyn Datastore>, options: &TrainingOptions) -> Result<Self> {
        let last = if store.len() >= options.mini_batch_size {
            LastBatch::Discard
        } else {
            LastBatch::Keep
        };
        Self::new(store, options, options.shuffle, last)
    }

    /// Batches for validation or prediction: file order, every observation.
    pub fn in_order(store: Arc<dyn Datastore>, options: &TrainingOptions) -> Result<Self> {
        Self::new(store, options, Shuffle::Never, LastBatch::Keep)
    }

    fn new(
        store: Arc<dyn Datastore>,
        options: &TrainingOptions,
        shuffle: Shuffle,
        last: LastBatch,
    ) -> Result<Self> {
        if store.is_empty() {
            return Err(Error::InvalidInput(
                "the datastore has no observations".into(),
            ));
        }
        let batch_options = BatchOptions {
            sequence_length: options.sequence_length,
            direction: options.sequence_padding_direction,
            padding_value: options.sequence_padding_value,
        };
        let batcher = Batcher::for_datastore(batch_options, store.as_ref())?;
        let order = (0..store.len()).collect();
        Ok(DatastoreBatches {
            store,
            batcher,
            mini_batch_size: options.mini_batch_size,
            shuffle,
            last,
            order,
            rng: StdRng::seed_from_u64(options.seed ^ SHUFFLE_STREAM),
            shuffled_through: 0,
        })
    }
}

/// Keeps the shuffling stream apart from the other streams seeded by `options.seed`.
const SHUFFLE_STREAM: u64 = 0x5f1f_f1e5;

impl BatchSource for DatastoreBatches {
    fn epoch(&mut self, epoch: usize) -> Result<Box<dyn Iterator<Item = Result<MiniBatch>> + '_>> {
        // Replay the shuffles of any epochs not seen yet, so that a resumed run
        // sees the same orders as an uninterrupted one.
        while self.shuffled_through <= epoch {
            let e = self.shuffled_through;
            if self.shuffle == Shuffle::EveryEpoch || (self.shuffle == Shuffle::Once && e == 0) {
                self.order.shuffle(&mut self.rng);
            }
            self.shuffled_through += 1;
        }
        let batches = self.batcher.epoch(
            self.store.clone(),
            &self.order,
            self.mini_batch_size,
            self.last,
        )?;
        // seqnet-data's errors, as this crate's.
        Ok(Box::new(batches.map(|b| b.map_err(Into::into))))
    }
}

/// The class names a graph's classification layer holds (empty if none).
pub fn classes_of(graph: &LayerGraph) -> Vec<String> {
    graph
        .layers
        .iter()
        .find_map(|l| {
            if let Layer::ClassificationOutput(c) = l {
                Some(c.classes.clone())
            } else {
                None
            }
        })
        .unwrap_or_default()
}

/// Gives the classification layer the datastore's class names (checking their count).
fn with_classes(graph: &LayerGraph, classes: Option<&[String]>) -> Result<LayerGraph> {
    let mut graph = graph.clone();
    let Some(classes) = classes else {
        return Ok(graph);
    };
    for layer in &mut graph.layers {
        if let Layer::ClassificationOutput(c) = layer {
            if c.classes.is_empty() {
                c.classes = classes.to_vec();
            } else if c.classes != classes {
                return Err(Error::layer(
                    &c.name,
                    format!(
                        "the layer's classes {:?} differ from the data's {:?}",
                        c.classes, classes
                    ),
                ));
            }
        }
    }
    Ok(graph)
}

/// Computes the input layers' normalization statistics from the training data.
fn set_normalization(network: &mut Network, store: &Arc<dyn Datastore>) -> Result<()> {
    let inputs: Vec<(String, Normalization)> = network
        .graph()
        .layers
        .iter()
        .filter_map(|l| {
            if let Layer::SequenceInput(s) = l {
                Some((s.name.clone(), s.normalization))
            } else {
                None
            }
        })
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

/// Trains `graph` on `train` (MATLAB's `trainNetwork`): fills in class names and
/// normalization statistics, then runs [`crate::fit`] with checkpoints after each epoch
/// when `options.checkpoint_path` is set, printing MATLAB's verbose table to
/// standard output when `options.verbose` is set (the default, as in MATLAB).
/// Returns the model and the record.
pub fn train_network(
    graph: &LayerGraph,
    train: Arc<dyn Datastore>,
    validation: Option<Arc<dyn Datastore>>,
    options: &TrainingOptions,
    on_event: &mut dyn FnMut(&TrainingEvent),
) -> Result<(Model, TrainingRecord)> {
    train_network_with(graph, train, validation, options, on_event, None)
}

/// [`train_network`] that stops after the current mini-batch when `stop` is set,
/// writing a checkpoint (into `options.checkpoint_path`, required then) from
/// which [`resume_training`] continues; `record.stop_reason` is then
/// "interrupted" and `record.checkpoint` names the file.
pub fn train_network_with(
    graph: &LayerGraph,
    train: Arc<dyn Datastore>,
    validation: Option<Arc<dyn Datastore>>,
    options: &TrainingOptions,
    on_event: &mut dyn FnMut(&TrainingEvent),
    stop: Option<&AtomicBool>,
) -> Result<(Model, TrainingRecord)> {
    options.validate()?;
    let graph = with_classes(graph, train.classes())?;
    let mut network = Network::new(&graph, options.seed)?;
    set_normalization(&mut network, &train)?;
    run(
        network,
        train,
        validation,
        options,
        on_event,
        TrainingControl { resume: None, stop },
    )
}

/// Continues training from a checkpoint written by [`train_network_with`] (or
/// after any epoch), with the options stored in it, to the same final weights
/// as an uninterrupted run.
pub fn resume_training(
    checkpoint: &Path,
    train: Arc<dyn Datastore>,
    validation: Option<Arc<dyn Datastore>>,
    on_event: &mut dyn FnMut(&TrainingEvent),
    stop: Option<&AtomicBool>,
) -> Result<(Model, TrainingRecord)> {
    let (model, state) = load_checkpoint(checkpoint)?;
    let options = model.options.clone().ok_or_else(|| Error::Parse {
        file: checkpoint.display().to_string(),
        line: 0,
        message: "the checkpoint holds no training options".into(),
    })?;
    if let (Some(have), Some(data)) = (
        Some(&model.classes).filter(|c| !c.is_empty()),
        train.classes(),
    ) {
        if have.as_slice() != data {
            return Err(Error::InvalidInput(format!(
                "the checkpoint's classes {have:?} differ from the data's {data:?}"
            )));
        }
    }
    run(
        model.network,
        train,
        validation,
        &options,
        on_event,
        TrainingControl {
            resume: Some(state),
            stop,
        },
    )
}

fn run(
    mut network: Network,
    train: Arc<dyn Datastore>,
    validation: Option<Arc<dyn Datastore>>,
    options: &TrainingOptions,
    on_event: &mut dyn FnMut(&TrainingEvent),
    control: TrainingControl,
) -> Result<(Model, TrainingRecord)> {
    let classes = classes_of(network.graph());
    let mut source = DatastoreBatches::training(train, options)?;
    let mut val = validation
        .map(|v| DatastoreBatches::in_order(v, options))
        .transpose()?;
    let checkpoint = options.checkpoint_path.clone();
    if control.stop.is_some() && checkpoint.is_none() {
        return Err(Error::InvalidOption {
            option: "CheckpointPath",
            message: "interruptible training needs a checkpoint folder".into(),
        });
    }
    if let Some(dir) = &checkpoint {
        std::fs::create_dir_all(dir).map_err(|e| Error::Io {
            path: dir.display().to_string(),
            source: e,
        })?;
    }
    let mut checkpoint_error = None;
    let mut table = options
        .verbose
        .then(|| crate::record::VerboseTable::new(options.verbose_frequency, val.is_some()));
    let (mut record, state) = fit_with(
        &mut network,
        &mut source,
        val.as_mut().map(|v| v as &mut dyn BatchSource),
        options,
        &mut |e| {
            if let (
                Some(dir),
                TrainingEvent::EpochFinished {
                    epoch,
                    network,
                    state,
                },
            ) = (&checkpoint, e)
            {
                let path = dir.join(format!("checkpoint_epoch{epoch:04}.safetensors"));
                if let Err(err) = save_checkpoint(&path, network, &classes, options, state) {
                    checkpoint_error.get_or_insert(err);
                }
            }
            if let Some(t) = table.as_mut() {
                for line in t.lines(e) {
                    println!("{line}");
                }
            }
            on_event(e)
        },
        control,
    )?;
    if let Some(e) = checkpoint_error {
        return Err(e);
    }
    if record.stop_reason == "interrupted" {
        if let Some(dir) = &checkpoint {
            let path = dir.join(format!(
                "checkpoint_iteration{:06}.safetensors",
                state.iteration
            ));
            save_checkpoint(&path, &network, &classes, options, &state)?;
            record.checkpoint = Some(path);
        }
    }
    Ok((
        Model {
            network,
            classes,
            options: Some(options.clone()),
        },
        record,
    ))
}
