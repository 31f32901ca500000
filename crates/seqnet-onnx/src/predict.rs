//! Predictions on raw tensors in the export's layout, so that any runtime's
//! results can be compared with seqnet's.

use crate::error::{Error, Result};
use ndarray::ArrayD;
use seqnet_core::{Activation, Format, Mode, Network, PaddingDirection, SeqLengths};

/// Runs `network` on a batch-first batch `x` (`[B, T, C]`, or `[B, T, C, H, W]`
/// for image sequences, frames in `(C, H, W)` order) whose sequences are
/// right-padded to `lengths` (`None`: all fill `T`), in inference mode.
/// Returns the output batch first: `[B, K]` or `[B, T, K]` (values at padded
/// steps are whatever the network computes there).
pub fn predict_batch_first(
    network: &mut Network,
    x: &ArrayD<f32>,
    lengths: Option<&[usize]>,
) -> Result<ArrayD<f32>> {
    let bad = |m: String| Error::Input(m);
    if !matches!(x.ndim(), 3 | 5) {
        return Err(bad(format!(
            "the input has {} axes; expected [B, T, C] or [B, T, C, H, W]",
            x.ndim()
        )));
    }
    let (b, t) = (x.shape()[0], x.shape()[1]);
    let lengths = match lengths {
        Some(l) if l.len() != b => {
            return Err(bad(format!(
                "{} lengths for a batch of {b} sequences",
                l.len()
            )))
        }
        Some(l) if l.iter().any(|&v| v == 0 || v > t) => {
            return Err(bad(format!(
                "lengths must be 1 to {t} (the time axis), got {l:?}"
            )))
        }
        Some(l) => l.to_vec(),
        None => vec![t; b],
    };
    let mut perm: Vec<usize> = (0..x.ndim()).collect();
    perm.swap(0, 1);
    let time_major = x
        .view()
        .permuted_axes(perm.clone())
        .as_standard_layout()
        .to_owned();
    let seq = SeqLengths::new(lengths, t, PaddingDirection::Right)?;
    let input = if x.ndim() == 5 {
        Activation::image_sequence(time_major, Some(seq))?
    } else {
        Activation::sequence(time_major, Some(seq))?
    };
    let mut outputs = network.forward(&[input], None, Mode::Inference, false)?;
    if outputs.len() != 1 {
        return Err(bad(format!(
            "the network has {} outputs; one is written",
            outputs.len()
        )));
    }
    let y = outputs.remove(0);
    Ok(match y.format {
        Format::CBT | Format::SSCBT => {
            let mut p: Vec<usize> = (0..y.data.ndim()).collect();
            p.swap(0, 1);
            y.data
                .view()
                .permuted_axes(p)
                .as_standard_layout()
                .to_owned()
        }
        _ => y.data.to_owned(),
    })
}
