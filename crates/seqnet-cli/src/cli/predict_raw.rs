//! `seqnet predict --input X.npy [--lengths L.npy] --out Y.npy`: one raw
//! batch in the ONNX export's layout in, the network's output out, so that
//! any runtime's results can be compared with seqnet's.

use super::{ensure_parent, in_file, io_error, out, shown, CliError, Result};
use ndarray::ArrayD;
use ndarray_npy::{read_npy, write_npy};
use seqnet_train::Model;
use std::path::Path;

/// Reads `x` (float32) and `lengths`, predicts, writes `out` (.npy).
pub fn run(model: &mut Model, x: &Path, lengths: Option<&Path>, out_path: &Path) -> Result<()> {
    let input: ArrayD<f32> = read_npy(x).map_err(|e| not_npy(x, "float32", e))?;
    let lengths = lengths.map(read_lengths).transpose()?;
    let y = seqnet_onnx::predict_batch_first(&mut model.network, &input, lengths.as_deref())
        .map_err(|e| in_file(x, e.into()))?;
    ensure_parent(out_path)?;
    write_npy(out_path, &y).map_err(|e| CliError::NotWhatIsNeeded {
        path: shown(out_path),
        problem: format!("cannot write the predictions: {e}"),
    })?;
    out(&format!(
        "wrote {:?} predictions to {}\n",
        y.shape(),
        shown(out_path)
    ))
}

/// Lengths as int32 or int64 `[B]`.
fn read_lengths(path: &Path) -> Result<Vec<usize>> {
    let as_i64: Vec<i64> = match read_npy::<_, ndarray::Array1<i32>>(path) {
        Ok(a) => a.iter().map(|&v| i64::from(v)).collect(),
        Err(_) => read_npy::<_, ndarray::Array1<i64>>(path)
            .map_err(|e| not_npy(path, "int32 or int64 [B]", e))?
            .to_vec(),
    };
    as_i64
        .into_iter()
        .map(|v| {
            usize::try_from(v).map_err(|_| CliError::NotWhatIsNeeded {
                path: shown(path),
                problem: format!("length {v} is negative"),
            })
        })
        .collect()
}

fn not_npy(path: &Path, what: &str, e: ndarray_npy::ReadNpyError) -> CliError {
    if let ndarray_npy::ReadNpyError::Io(io) = e {
        return io_error(path, io);
    }
    CliError::NotWhatIsNeeded {
        path: shown(path),
        problem: format!("not a {what} .npy array: {e}"),
    }
}
