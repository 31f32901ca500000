//! Activations: data, format and the real length of each sequence.

use crate::error::{Error, Result};
use crate::format::{ActShape, Format};
use ndarray::{ArcArray, ArrayD, IxDyn};
use serde::{Deserialize, Serialize};
use std::ops::Range;
use std::sync::Arc;

/// Where padding goes when sequences of a mini-batch are made the same length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PaddingDirection {
    /// Real steps first, padding after (MATLAB's default).
    #[default]
    Right,
    /// Padding first, real steps last.
    Left,
}

/// The real length of each sequence of a padded mini-batch: the mask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeqLengths {
    /// Real length of each observation, `[B]`; each at most `time`.
    pub lengths: Vec<usize>,
    /// Padded length `T`.
    pub time: usize,
    pub direction: PaddingDirection,
}

impl SeqLengths {
    /// Checks that every length is at most `time`.
    pub fn new(lengths: Vec<usize>, time: usize, direction: PaddingDirection) -> Result<Self> {
        if let Some(&l) = lengths.iter().find(|&&l| l > time) {
            return Err(Error::SequenceLengths {
                message: format!("sequence length {l} is longer than the padded length {time}"),
            });
        }
        Ok(SeqLengths {
            lengths,
            time,
            direction,
        })
    }

    /// All `batch` sequences have the full length `time`.
    pub fn full(batch: usize, time: usize) -> Self {
        SeqLengths {
            lengths: vec![time; batch],
            time,
            direction: PaddingDirection::Right,
        }
    }

    /// The time steps `[start, end)` holding observation `b`'s real steps.
    pub fn span(&self, b: usize) -> Range<usize> {
        let len = self.lengths[b];
        match self.direction {
            PaddingDirection::Right => 0..len,
            PaddingDirection::Left => self.time - len..self.time,
        }
    }

    /// Whether step `t` of observation `b` is real (not padding).
    pub fn is_real(&self, b: usize, t: usize) -> bool {
        self.span(b).contains(&t)
    }

    /// Whether each row of a `[T, B, …]` sequence, or each frame the folding
    /// layer makes of it, is real: `[T·B]`, row `r` being step `r / B` of
    /// observation `r % B`.
    pub fn real_rows(&self) -> Vec<bool> {
        let b = self.lengths.len();
        (0..self.time * b)
            .map(|r| self.is_real(r % b, r / b))
            .collect()
    }

    /// Whether no observation is padded.
    pub fn is_full(&self) -> bool {
        self.lengths.iter().all(|&l| l == self.time)
    }

    /// One step per observation: 1 for those with a real step, 0 for the
    /// others (the mask of a sequence's 'last' output).
    pub fn one_step(&self) -> SeqLengths {
        SeqLengths {
            lengths: self.lengths.iter().map(|&l| l.min(1)).collect(),
            time: 1,
            direction: PaddingDirection::Right,
        }
    }

    /// Total number of real steps.
    pub fn real_steps(&self) -> usize {
        self.lengths.iter().sum()
    }
}

/// One activation flowing along an edge of the network.
///
/// `data`'s memory layout is given by `format` (see [`crate::format`]);
/// `lengths` is present on every activation with a time dimension and on
/// folded frames (whose frame `n` is step `n / B` of observation `n % B`).
#[derive(Debug, Clone)]
pub struct Activation {
    pub data: ArcArray<f32, IxDyn>,
    pub format: Format,
    pub lengths: Option<Arc<SeqLengths>>,
}

impl Activation {
    /// A feature sequence from `[T, B, C]` data; `lengths` `None` means all full.
    pub fn sequence(data: ArrayD<f32>, lengths: Option<SeqLengths>) -> Result<Self> {
        Self::with_time(data, Format::CBT, 3, lengths)
    }

    /// An image sequence from `[T, B, C, H, W]` data.
    pub fn image_sequence(data: ArrayD<f32>, lengths: Option<SeqLengths>) -> Result<Self> {
        Self::with_time(data, Format::SSCBT, 5, lengths)
    }

    fn with_time(
        data: ArrayD<f32>,
        format: Format,
        ndim: usize,
        lengths: Option<SeqLengths>,
    ) -> Result<Self> {
        if data.ndim() != ndim {
            return Err(Error::ActivationShape {
                format: format.label(),
                dims: ndim,
                shape: data.shape().to_vec(),
            });
        }
        let (t, b) = (data.shape()[0], data.shape()[1]);
        let lengths = lengths.unwrap_or_else(|| SeqLengths::full(b, t));
        if lengths.lengths.len() != b || lengths.time != t {
            return Err(Error::SequenceLengths {
                message: format!(
                    "lengths for {} sequences of padded length {} do not fit data of shape {:?}",
                    lengths.lengths.len(),
                    lengths.time,
                    data.shape()
                ),
            });
        }
        Ok(Activation {
            data: data.into_shared(),
            format,
            lengths: Some(Arc::new(lengths)),
        })
    }

    /// Features per observation from `[B, C]` data.
    pub fn features(data: ArrayD<f32>) -> Result<Self> {
        if data.ndim() != 2 {
            return Err(Error::ActivationShape {
                format: "CB",
                dims: 2,
                shape: data.shape().to_vec(),
            });
        }
        Ok(Activation {
            data: data.into_shared(),
            format: Format::CB,
            lengths: None,
        })
    }

    /// Images from `[B, C, H, W]` data.
    pub fn images(data: ArrayD<f32>) -> Result<Self> {
        if data.ndim() != 4 {
            return Err(Error::ActivationShape {
                format: "SSCB",
                dims: 4,
                shape: data.shape().to_vec(),
            });
        }
        Ok(Activation {
            data: data.into_shared(),
            format: Format::SSCB,
            lengths: None,
        })
    }

    /// An activation of the same format and lengths as `self` with new data.
    pub fn like(&self, data: ArrayD<f32>) -> Self {
        Activation {
            data: data.into_shared(),
            format: self.format,
            lengths: self.lengths.clone(),
        }
    }

    /// The batch size `B`.
    pub fn batch(&self) -> usize {
        match self.format {
            Format::CB | Format::SSCB | Format::BatchSize => self.data.shape()[0],
            Format::CBT | Format::SSCBT => self.data.shape()[1],
        }
    }

    /// The padded sequence length `T` (1 without a time dimension).
    pub fn time(&self) -> usize {
        if self.format.has_time() {
            self.data.shape()[0]
        } else {
            1
        }
    }

    /// The lengths of a time-carrying activation (all full when absent).
    pub fn seq_lengths(&self) -> SeqLengths {
        match &self.lengths {
            Some(l) => (**l).clone(),
            None => SeqLengths::full(self.batch(), self.time()),
        }
    }

    /// The shape as shape inference sees it.
    pub fn shape(&self) -> ActShape {
        let s = self.data.shape();
        match self.format {
            Format::CB => ActShape::features(s[1]),
            Format::CBT => ActShape::sequence(s[2]),
            Format::SSCB => ActShape::images(s[2], s[3], s[1]),
            Format::SSCBT => ActShape::image_sequence(s[3], s[4], s[2]),
            Format::BatchSize => ActShape::batch_size(),
        }
    }
}
