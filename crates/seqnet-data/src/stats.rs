//! Per-channel normalization statistics (for `SequenceInput`'s `zerocenter`,
//! `zscore`, `rescale-symmetric` and `rescale-zero-one`), over every real
//! time step of every observation — and, for image sequences, every pixel.
//! Padding never enters: statistics are taken from the observations
//! themselves, not from mini-batches.

use crate::datastore::{Datastore, Epoch};
use crate::error::{Error, Result};
use crate::observation::{FrameShape, Sequence};
use ndarray::{Array1, ArrayView2, Ix2};
use std::sync::Arc;

/// Mean, standard deviation, minimum and maximum of each channel, `[C]` each.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelStats {
    /// `[C]`.
    pub mean: Array1<f32>,
    /// `[C]`, the population standard deviation (normalized by the count `N`,
    /// not `N − 1`).
    pub std: Array1<f32>,
    /// `[C]`.
    pub min: Array1<f32>,
    /// `[C]`.
    pub max: Array1<f32>,
    /// The number of values per channel `N` (time steps × pixels).
    pub count: u64,
}

impl ChannelStats {
    /// The statistics of all of `store`'s observations, read in index order
    /// (through an [`Epoch`], so with the datastore's read-ahead).
    pub fn from_datastore(store: Arc<dyn Datastore>) -> Result<Self> {
        let n = store.len();
        let mut acc = StatsAccumulator::default();
        for item in Epoch::new(store, (0..n).collect())? {
            acc.add(&item?.1.data)?;
        }
        acc.finish()
    }

    /// The statistics of the given sequences.
    pub fn from_sequences<'a>(sequences: impl IntoIterator<Item = &'a Sequence>) -> Result<Self> {
        let mut acc = StatsAccumulator::default();
        for s in sequences {
            acc.add(s)?;
        }
        acc.finish()
    }
}

/// Accumulates [`ChannelStats`] one sequence at a time (numerically stable:
/// per-sequence two-pass moments merged with Chan et al.'s formula, in `f64`).
#[derive(Debug, Clone, Default)]
pub struct StatsAccumulator {
    frame: Option<FrameShape>,
    count: u64,
    mean: Vec<f64>,
    m2: Vec<f64>,
    min: Vec<f32>,
    max: Vec<f32>,
}

impl StatsAccumulator {
    /// Adds every value of `sequence`; its frame shape must match earlier ones.
    pub fn add(&mut self, sequence: &Sequence) -> Result<()> {
        let frame = sequence.frame_shape();
        match self.frame {
            Some(f) if f != frame => {
                return Err(Error::Statistics(format!(
                    "a sequence of {frame} after sequences of {f}"
                )))
            }
            Some(_) => {}
            None => {
                let c = frame.channels();
                self.frame = Some(frame);
                self.mean = vec![0.0; c];
                self.m2 = vec![0.0; c];
                self.min = vec![f32::INFINITY; c];
                self.max = vec![f32::NEG_INFINITY; c];
            }
        }
        match sequence {
            Sequence::Features(a) => self.add_rows(a.view()),
            Sequence::Images(a) => {
                let c = frame.channels();
                let std = a.as_standard_layout();
                let rows = std.len() / c.max(1);
                let view = std
                    .view()
                    .into_shape_with_order((rows, c))
                    .map_err(|e| Error::Statistics(e.to_string()))?;
                self.add_rows(
                    view.into_dimensionality::<Ix2>()
                        .map_err(|e| Error::Statistics(e.to_string()))?,
                )
            }
        }
        Ok(())
    }

    /// Adds the rows of `[N, C]` values.
    fn add_rows(&mut self, x: ArrayView2<f32>) {
        let n_b = x.nrows() as u64;
        if n_b == 0 {
            return;
        }
        let n = self.count + n_b;
        for (c, col) in x.columns().into_iter().enumerate() {
            let mean_b = col.iter().map(|&v| f64::from(v)).sum::<f64>() / n_b as f64;
            let m2_b: f64 = col.iter().map(|&v| (f64::from(v) - mean_b).powi(2)).sum();
            let delta = mean_b - self.mean[c];
            self.mean[c] += delta * n_b as f64 / n as f64;
            self.m2[c] += m2_b + delta * delta * (self.count as f64) * (n_b as f64) / n as f64;
            for &v in col {
                self.min[c] = self.min[c].min(v);
                self.max[c] = self.max[c].max(v);
            }
        }
        self.count = n;
    }

    /// The statistics; an error when nothing was added.
    pub fn finish(self) -> Result<ChannelStats> {
        if self.count == 0 {
            return Err(Error::Statistics(
                "there is no data: the datastore is empty".into(),
            ));
        }
        let n = self.count as f64;
        Ok(ChannelStats {
            mean: self.mean.iter().map(|&m| m as f32).collect(),
            std: self.m2.iter().map(|&m2| (m2 / n).sqrt() as f32).collect(),
            min: Array1::from(self.min),
            max: Array1::from(self.max),
            count: self.count,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{array, Array4};

    #[test]
    fn matches_direct_computation() {
        let a = Sequence::Features(array![[1.0, 10.0], [2.0, 20.0]]);
        let b = Sequence::Features(array![[3.0, 30.0], [4.0, 40.0], [5.0, 50.0]]);
        let s = ChannelStats::from_sequences([&a, &b]).unwrap();
        assert_eq!(s.count, 5);
        assert!((s.mean[0] - 3.0).abs() < 1e-6 && (s.mean[1] - 30.0).abs() < 1e-5);
        assert!((s.std[0] - 2f32.sqrt()).abs() < 1e-6);
        assert!((s.std[1] - 10.0 * 2f32.sqrt()).abs() < 1e-5);
        assert_eq!(s.min, array![1.0, 10.0]);
        assert_eq!(s.max, array![5.0, 50.0]);
    }

    #[test]
    fn image_channels_are_the_last_axis() {
        let img =
            Array4::from_shape_fn(
                (2, 2, 3, 2),
                |(t, h, w, c)| if c == 0 { (t + h + w) as f32 } else { -1.0 },
            );
        let s = ChannelStats::from_sequences([&Sequence::Images(img)]).unwrap();
        assert_eq!(s.count, 12);
        assert_eq!(s.min, array![0.0, -1.0]);
        assert_eq!(s.max, array![4.0, -1.0]);
        assert_eq!(s.std[1], 0.0);
        assert!((s.mean[0] - 2.0).abs() < 1e-6);
    }

    #[test]
    fn empty_and_mixed_are_errors() {
        assert!(ChannelStats::from_sequences([]).is_err());
        let a = Sequence::Features(array![[1.0, 2.0]]);
        let b = Sequence::Features(array![[1.0]]);
        assert!(ChannelStats::from_sequences([&a, &b]).is_err());
    }
}
