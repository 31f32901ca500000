//! Prediction with a trained network: `predict`, `classify`,
//! `predict_and_update_state` (streaming), `activations` and closed-loop `forecast`.

use crate::error::{Error, Result};
use crate::metrics::argmax;
use crate::model::Model;
use crate::options::TrainingOptions;
use ndarray::{Array2, Axis};
use seqnet_core::{Activation, Format, Mode, Network, PaddingDirection};
use seqnet_data::{
    BatchOptions, Batcher, Chunk, Datastore, InMemoryDatastore, LastBatch, Observation, Sequence,
    SequenceLength, Target,
};
use std::sync::Arc;

/// How prediction batches its data (MATLAB's `predict` name-value options).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PredictOptions {
    pub mini_batch_size: usize,
    pub sequence_length: SequenceLength,
    pub padding_direction: PaddingDirection,
    pub padding_value: f32,
}

impl Default for PredictOptions {
    fn default() -> Self {
        PredictOptions {
            mini_batch_size: 128,
            sequence_length: SequenceLength::Longest,
            padding_direction: PaddingDirection::Right,
            padding_value: 0.0,
        }
    }
}

impl From<&TrainingOptions> for PredictOptions {
    fn from(o: &TrainingOptions) -> Self {
        PredictOptions {
            mini_batch_size: o.mini_batch_size,
            sequence_length: o.sequence_length,
            padding_direction: o.sequence_padding_direction,
            padding_value: o.sequence_padding_value,
        }
    }
}

/// Writes the predictions of one chunk into each observation's output:
/// for `C×B` outputs the row of the last chunk in which the observation is
/// active; for `C×B×T` outputs its real steps, appended in time order.
fn collect(pred: &Activation, chunk: &Chunk, outputs: &mut [Vec<Vec<f32>>]) {
    let k = *pred.data.shape().last().unwrap_or(&0);
    let active = chunk.active();
    match pred.format {
        Format::CBT => {
            let lengths = pred.seq_lengths();
            for (b, out) in outputs.iter_mut().enumerate() {
                for t in lengths.span(b) {
                    out.push(
                        pred.data
                            .index_axis(Axis(0), t)
                            .index_axis(Axis(0), b)
                            .iter()
                            .copied()
                            .collect(),
                    );
                }
            }
        }
        _ => {
            for (b, out) in outputs.iter_mut().enumerate() {
                if active.get(b).copied().unwrap_or(true) {
                    out.clear();
                    out.push(
                        pred.data
                            .index_axis(Axis(0), b)
                            .iter()
                            .copied()
                            .take(k)
                            .collect(),
                    );
                }
            }
        }
    }
}

fn to_array(rows: Vec<Vec<f32>>) -> Array2<f32> {
    let k = rows.first().map_or(0, Vec::len);
    let n = rows.len();
    Array2::from_shape_vec((n, k), rows.into_iter().flatten().collect())
        .expect("rows of equal length")
}

/// The network's (first) output for every observation of `store`, in order:
/// `[steps, K]` per observation, one row for sequence-to-one networks and one
/// per real time step for sequence-to-sequence networks. Inference mode; the
/// recurrent state starts fresh for each mini-batch.
pub fn predict(
    network: &mut Network,
    store: Arc<dyn Datastore>,
    options: &PredictOptions,
) -> Result<Vec<Array2<f32>>> {
    if options.mini_batch_size == 0 {
        return Err(Error::InvalidOption {
            option: "MiniBatchSize",
            message: "must be at least 1".into(),
        });
    }
    let batch_options = BatchOptions {
        sequence_length: options.sequence_length,
        direction: options.padding_direction,
        padding_value: options.padding_value,
    };
    let batcher = Batcher::for_datastore(batch_options, store.as_ref())?;
    let order: Vec<usize> = (0..store.len()).collect();
    let stateful = matches!(options.sequence_length, SequenceLength::Fixed(_));
    let mut results = Vec::with_capacity(store.len());
    for batch in batcher.epoch(store, &order, options.mini_batch_size, LastBatch::Keep)? {
        let batch = batch?;
        network.reset_state();
        let mut outputs = vec![Vec::new(); batch.indices.len()];
        for chunk in &batch.chunks {
            let preds = network.forward(
                std::slice::from_ref(&chunk.inputs),
                None,
                Mode::Inference,
                stateful,
            )?;
            let pred = preds.first().ok_or(Error::NoOutput)?;
            collect(pred, chunk, &mut outputs);
        }
        results.extend(outputs.into_iter().map(to_array));
    }
    network.reset_state();
    Ok(results)
}

/// [`predict`] on sequences held in memory (`[T, C]` or `[T, H, W, C]` each).
pub fn predict_sequences(
    network: &mut Network,
    sequences: &[Sequence],
    options: &PredictOptions,
) -> Result<Vec<Array2<f32>>> {
    predict(network, unlabelled(sequences)?, options)
}

fn unlabelled(sequences: &[Sequence]) -> Result<Arc<dyn Datastore>> {
    let obs = sequences
        .iter()
        .map(|s| Observation::new(s.clone(), Target::None))
        .collect();
    Ok(Arc::new(InMemoryDatastore::new(obs, None)?))
}

/// One classified observation.
#[derive(Debug, Clone, PartialEq)]
pub struct Classification {
    /// The predicted class index per output step (one for sequence-to-label).
    pub classes: Vec<usize>,
    /// The class names of `classes`.
    pub labels: Vec<String>,
    /// The scores, `[steps, K]`.
    pub scores: Array2<f32>,
}

/// Turns scores into classes and labels.
pub fn classification(scores: Array2<f32>, class_names: &[String]) -> Classification {
    let classes: Vec<usize> = scores
        .rows()
        .into_iter()
        .map(|r| argmax(r.iter()))
        .collect();
    let labels = classes
        .iter()
        .map(|&c| class_names.get(c).cloned().unwrap_or_else(|| c.to_string()))
        .collect();
    Classification {
        classes,
        labels,
        scores,
    }
}

impl Model {
    /// MATLAB's `classify`: labels and scores for every observation of `store`.
    pub fn classify(
        &mut self,
        store: Arc<dyn Datastore>,
        options: &PredictOptions,
    ) -> Result<Vec<Classification>> {
        let scores = predict(&mut self.network, store, options)?;
        Ok(scores
            .into_iter()
            .map(|s| classification(s, &self.classes))
            .collect())
    }

    /// MATLAB's `predict`: see [`predict`].
    pub fn predict(
        &mut self,
        store: Arc<dyn Datastore>,
        options: &PredictOptions,
    ) -> Result<Vec<Array2<f32>>> {
        predict(&mut self.network, store, options)
    }
}

/// MATLAB's `predictAndUpdateState`: runs each stream's next chunk (sequence
/// `b` continues stream `b` of the previous call) from the kept recurrent state
/// and keeps the new state. Returns each stream's outputs, `[steps, K]`.
/// Call `network.reset_state()` to start the streams afresh.
///
/// One feature sequence on a network with a streaming step
/// ([`Network::can_step`]: a chain of sequence input, LSTM, fully connected,
/// softmax, element-wise and output layers) takes the lean path,
/// [`Network::forward_step`] per time step, which gives the same outputs and
/// state without batching (a few microseconds per step instead of tens);
/// everything else goes through the batcher and [`Network::forward`].
pub fn predict_and_update_state(
    network: &mut Network,
    sequences: &[Sequence],
) -> Result<Vec<Array2<f32>>> {
    if let [Sequence::Features(x)] = sequences {
        if x.nrows() > 0 && network.can_step() {
            return Ok(vec![stream_steps(network, x)?]);
        }
    }
    let obs: Vec<Observation> = sequences
        .iter()
        .map(|s| Observation::new(s.clone(), Target::None))
        .collect();
    let batcher = Batcher::new(BatchOptions::default())?;
    let mut outputs = vec![Vec::new(); obs.len()];
    for chunk in batcher.batch(&obs)? {
        let preds = network.forward(
            std::slice::from_ref(&chunk.inputs),
            None,
            Mode::Inference,
            true,
        )?;
        let pred = preds.first().ok_or(Error::NoOutput)?;
        collect(pred, &chunk, &mut outputs);
    }
    Ok(outputs.into_iter().map(to_array).collect())
}

/// The lean path of [`predict_and_update_state`]: `x` `[T, C]` step by step.
fn stream_steps(network: &mut Network, x: &Array2<f32>) -> Result<Array2<f32>> {
    let per_step = network.output_has_time();
    let mut data = Vec::new();
    let mut k = 0;
    let mut row = Vec::new();
    for (t, r) in x.rows().into_iter().enumerate() {
        let y = match r.as_slice() {
            Some(s) => network.forward_step(s)?,
            None => {
                row.clear();
                row.extend(r.iter().copied());
                network.forward_step(&row)?
            }
        };
        k = y.len();
        if per_step || t + 1 == x.nrows() {
            data.extend_from_slice(y);
        }
    }
    let steps = if per_step { x.nrows() } else { 1 };
    Ok(Array2::from_shape_vec((steps, k), data).expect("steps·k values"))
}

/// MATLAB's `classifyAndUpdateState`: [`predict_and_update_state`] with labels.
pub fn classify_and_update_state(
    model: &mut Model,
    sequences: &[Sequence],
) -> Result<Vec<Classification>> {
    let scores = predict_and_update_state(&mut model.network, sequences)?;
    Ok(scores
        .into_iter()
        .map(|s| classification(s, &model.classes))
        .collect())
}

/// The output of layer `layer` (`"name"` or `"name/port"`) for one sequence.
pub fn activations(network: &mut Network, sequence: &Sequence, layer: &str) -> Result<Activation> {
    let obs = [Observation::new(sequence.clone(), Target::None)];
    let chunks = Batcher::new(BatchOptions::default())?.batch(&obs)?;
    let chunk = chunks.first().ok_or(Error::EmptySequence)?;
    network.forward(
        std::slice::from_ref(&chunk.inputs),
        None,
        Mode::Inference,
        false,
    )?;
    Ok(network.activations(layer).cloned()?)
}

/// Closed-loop forecasting: primes the state with `history` (`[T, C]`), then
/// feeds each prediction back as the next input for `steps` steps. The network
/// must map `C` features to `C` responses per step. Returns `[steps, C]`.
pub fn forecast(network: &mut Network, history: &Array2<f32>, steps: usize) -> Result<Array2<f32>> {
    network.reset_state();
    let primed = predict_and_update_state(network, &[Sequence::Features(history.clone())])?;
    let last = primed
        .first()
        .and_then(|p| p.rows().into_iter().next_back().map(|r| r.to_owned()))
        .ok_or(Error::EmptyHistory)?;
    if last.len() != history.ncols() {
        return Err(Error::ForecastSize {
            responses: last.len(),
            features: history.ncols(),
        });
    }
    let mut out = Array2::zeros((steps, history.ncols()));
    let mut x = last;
    for s in 0..steps {
        out.row_mut(s).assign(&x);
        if s + 1 == steps {
            break;
        }
        let step = x.clone().insert_axis(Axis(0));
        let y = predict_and_update_state(network, &[Sequence::Features(step)])?;
        x = y[0].row(0).to_owned();
    }
    network.reset_state();
    Ok(out)
}
