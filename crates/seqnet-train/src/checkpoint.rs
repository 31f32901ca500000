//! Checkpoints: a model file that also holds where training stands (solver
//! moments, epoch and mini-batch, the record so far, the best validation), so
//! that training resumes to the same final weights as an uninterrupted run.

use crate::error::{CheckpointProblem, Error, Result};
use crate::model::{keys, model_bytes_with, write_atomically, Model, TRAINING_PREFIX};
use crate::options::TrainingOptions;
use crate::record::TrainingRecord;
use crate::solver::SolverState;
use crate::training_loop::TrainingState;
use ndarray::ArrayD;
use safetensors::SafeTensors;
use seqnet_core::Network;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

/// The metadata key of the training state.
pub const STATE_KEY: &str = "seqnet.training_state";

/// The scalar part of a [`TrainingState`], stored as JSON in the metadata.
#[derive(Serialize, Deserialize)]
struct StateMeta {
    epoch: usize,
    batches_done: usize,
    iteration: usize,
    solver_steps: u64,
    solver_arrays: usize,
    record: TrainingRecord,
    best_loss: Option<f32>,
    best_arrays: usize,
    since_best: usize,
    last_validated: Option<usize>,
    elapsed: f64,
}

/// Writes a checkpoint atomically: the model plus `state`.
pub fn save_checkpoint(
    path: &Path,
    network: &Network,
    classes: &[String],
    options: &TrainingOptions,
    state: &TrainingState,
) -> Result<()> {
    let mut tensors: Vec<(String, &ArrayD<f32>)> = Vec::new();
    for (i, a) in state.solver.first.iter().enumerate() {
        tensors.push((format!("{TRAINING_PREFIX}solver.first.{i}"), a));
    }
    for (i, a) in state.solver.second.iter().enumerate() {
        tensors.push((format!("{TRAINING_PREFIX}solver.second.{i}"), a));
    }
    let best = state.best.as_ref();
    for (i, a) in best.map(|b| b.1.iter()).into_iter().flatten().enumerate() {
        tensors.push((format!("{TRAINING_PREFIX}best.{i}"), a));
    }
    let meta = StateMeta {
        epoch: state.epoch,
        batches_done: state.batches_done,
        iteration: state.iteration,
        solver_steps: state.solver.steps,
        solver_arrays: state.solver.first.len(),
        record: state.record.clone(),
        best_loss: best.map(|b| b.0),
        best_arrays: best.map_or(0, |b| b.1.len()),
        since_best: state.since_best,
        last_validated: state.last_validated,
        elapsed: state.elapsed,
    };
    let mut extra = HashMap::new();
    // Numbers, strings and options of numbers: serialising cannot fail.
    extra.insert(
        STATE_KEY.to_string(),
        serde_json::to_string(&meta).expect("the state serialises"),
    );
    write_atomically(
        path,
        &model_bytes_with(network, classes, Some(options), &tensors, extra)?,
    )
}

/// The training options a checkpoint (or a model file) was trained with,
/// read from its metadata alone.
pub fn read_options(path: &Path) -> Result<TrainingOptions> {
    let file = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let (_, header) =
        SafeTensors::read_metadata(&bytes).map_err(|source| Error::NotSafetensors {
            file: file.clone(),
            source,
        })?;
    let json = header
        .metadata()
        .as_ref()
        .and_then(|m| m.get(keys::OPTIONS))
        .ok_or_else(|| Error::Checkpoint {
            file: file.clone(),
            problem: CheckpointProblem::NoOptions,
        })?;
    TrainingOptions::from_stored_json(json).map_err(|source| Error::BadMetadata {
        file,
        key: keys::OPTIONS,
        source,
    })
}

/// Training-state tensor `name` of checkpoint `file`, as f32.
fn training_array(st: &SafeTensors, file: &str, name: String) -> Result<ArrayD<f32>> {
    let bad = |message: String| Error::Checkpoint {
        file: file.to_string(),
        problem: CheckpointProblem::Tensor {
            tensor: name.clone(),
            message,
        },
    };
    let t = st.tensor(&name).map_err(|_| bad("missing".into()))?;
    if t.dtype() != safetensors::Dtype::F32 {
        return Err(bad(format!("{:?}, expected F32", t.dtype())));
    }
    let values: Vec<f32> = t
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    ArrayD::from_shape_vec(t.shape().to_vec(), values).map_err(|e| bad(e.to_string()))
}

/// Reads a checkpoint: the model (with the options it was trained with) and
/// where training stood.
pub fn load_checkpoint(path: &Path) -> Result<(Model, TrainingState)> {
    let file = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let model = Model::from_bytes(&bytes, &file)?;
    let not_safetensors = |source| Error::NotSafetensors {
        file: file.clone(),
        source,
    };
    let (_, header) = SafeTensors::read_metadata(&bytes).map_err(not_safetensors)?;
    let st = SafeTensors::deserialize(&bytes).map_err(not_safetensors)?;
    let meta_json = header
        .metadata()
        .as_ref()
        .and_then(|m| m.get(STATE_KEY))
        .ok_or_else(|| Error::MissingMetadata {
            file: file.clone(),
            key: STATE_KEY,
            expected: "a model file, not a checkpoint",
        })?;
    let meta: StateMeta = serde_json::from_str(meta_json).map_err(|source| Error::BadMetadata {
        file: file.clone(),
        key: STATE_KEY,
        source,
    })?;
    let array = |name: String| training_array(&st, &file, name);
    let learnables = model.network.learnables().len();
    if meta.solver_arrays != 0 && meta.solver_arrays != learnables {
        return Err(Error::Checkpoint {
            file,
            problem: CheckpointProblem::SolverArrays {
                arrays: meta.solver_arrays,
                learnables,
            },
        });
    }
    let solver = SolverState {
        first: (0..meta.solver_arrays)
            .map(|i| array(format!("{TRAINING_PREFIX}solver.first.{i}")))
            .collect::<Result<_>>()?,
        second: (0..meta.solver_arrays)
            .map(|i| array(format!("{TRAINING_PREFIX}solver.second.{i}")))
            .collect::<Result<_>>()?,
        steps: meta.solver_steps,
    };
    let best = match meta.best_loss {
        Some(loss) => Some((
            loss,
            (0..meta.best_arrays)
                .map(|i| array(format!("{TRAINING_PREFIX}best.{i}")))
                .collect::<Result<_>>()?,
        )),
        None => None,
    };
    let state = TrainingState {
        epoch: meta.epoch,
        batches_done: meta.batches_done,
        iteration: meta.iteration,
        solver,
        record: meta.record,
        best,
        since_best: meta.since_best,
        last_validated: meta.last_validated,
        elapsed: meta.elapsed,
    };
    Ok((model, state))
}
