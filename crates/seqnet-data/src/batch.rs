//! The [`Batcher`]: observations → mini-batch [`Activation`]s, with MATLAB's
//! `SequenceLength`, `SequencePaddingDirection` and `SequencePaddingValue`.
//!
//! # Layouts
//!
//! | what | observation | in a mini-batch chunk |
//! |---|---|---|
//! | feature sequence | `[T, C]` | `[Tc, B, C]` (`CBT`) |
//! | image sequence | `[T, H, W, C]` | `[Tc, B, C, H, W]` (`SSCBT`; channels move first) |
//! | class label | index `k` | one-hot `[B, K]` (`CB`) |
//! | class per step | `[T]` | one-hot `[Tc, B, K]` (`CBT`, zero rows at padding) |
//! | response | `[R]` | `[B, R]` (`CB`) |
//! | response per step | `[T, R]` | `[Tc, B, R]` (`CBT`, zeros at padding) |
//!
//! Every input activation carries [`SeqLengths`]: the real length of each
//! observation in the chunk and the padding direction — the mask.
//!
//! # Sequence length (MATLAB's `SequenceLength`)
//!
//! * [`SequenceLength::Longest`] (default): pad every sequence to the longest
//!   of the mini-batch. One chunk.
//! * [`SequenceLength::Shortest`]: truncate every sequence to the shortest of
//!   the mini-batch. With right padding direction the first steps are kept
//!   (the end is cut); with left padding direction the last steps are kept
//!   (the start is cut), as MATLAB truncates on the padding side. One chunk,
//!   no padding.
//! * [`SequenceLength::Fixed`]`(n)`: pad as `Longest` (to the longest length
//!   `T`, on the padding side), then split time into chunks `[0, n)`,
//!   `[n, 2n)`, …; the last chunk is shorter when `n` does not divide `T`
//!   (MATLAB's documented behaviour: "the mini-batches containing the ends of
//!   those sequences have length shorter than the specified sequence
//!   length"). The chunks of one mini-batch come in time order; a recurrent
//!   network carries its state from one chunk to the next.
//!
//! # Length-0 sequences in a chunk
//!
//! With `Fixed(n)` an observation can have no real step in a chunk: with
//! right padding once its sequence has ended, with left padding before it
//! has started. It is kept in the chunk (the batch size stays `B`) with
//! length 0 in [`SeqLengths`]: its data column holds only the padding
//! value, its per-step targets are zero, and its label or response target
//! row is zero. Recurrent layers keep the state of a length-0 sequence
//! unchanged through the chunk, and a loss must skip it:
//! [`Chunk::active`] tells which observations have real steps.
//!
//! Targets of a sequence-to-label or sequence-to-one network are repeated
//! in every chunk where the observation is active, as each chunk is a
//! training step of its own.

use crate::datastore::{Datastore, Epoch};
use crate::error::{Error, Result};
use crate::observation::{FrameShape, Observation, Sequence, Signature, Target, TargetKind};
use crate::order::{mini_batches, LastBatch};
use crate::share::Share;
use ndarray::{ArrayD, Axis, IxDyn};
use seqnet_core::{Activation, PaddingDirection, SeqLengths};
use std::ops::Range;
use std::sync::Arc;

/// MATLAB's `SequenceLength` option; in JSON `"longest"`, `"shortest"` or a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SequenceLength {
    /// Pad to the longest sequence of the mini-batch.
    #[default]
    Longest,
    /// Truncate to the shortest sequence of the mini-batch.
    Shortest,
    /// Pad to the longest, then split into chunks of this many steps.
    #[serde(untagged)]
    Fixed(usize),
}

/// How observations become a mini-batch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchOptions {
    /// MATLAB's `SequenceLength`: longest, shortest or a fixed chunk length.
    pub sequence_length: SequenceLength,
    /// Where padding goes (and which end truncation cuts).
    pub direction: PaddingDirection,
    /// The value of padded input steps (MATLAB's `SequencePaddingValue`).
    pub padding_value: f32,
}

impl Default for BatchOptions {
    /// MATLAB's defaults: longest, right, 0.
    fn default() -> Self {
        BatchOptions {
            sequence_length: SequenceLength::Longest,
            direction: PaddingDirection::Right,
            padding_value: 0.0,
        }
    }
}

/// One stretch of time of a mini-batch.
#[derive(Debug, Clone)]
pub struct Chunk {
    /// `[Tc, B, C]` or `[Tc, B, C, H, W]`, with the [`SeqLengths`] of this chunk.
    pub inputs: Activation,
    /// The targets in the prediction's layout (see the module docs); `None`
    /// when the observations have no target.
    pub targets: Option<Activation>,
}

impl Chunk {
    /// The real lengths of the observations in this chunk, `[B]`.
    pub fn lengths(&self) -> Vec<usize> {
        self.inputs.seq_lengths().lengths
    }

    /// Whether each observation has at least one real step in this chunk, `[B]`.
    pub fn active(&self) -> Vec<bool> {
        self.lengths().into_iter().map(|l| l > 0).collect()
    }
}

/// A mini-batch: its observations' datastore indices and its chunks.
#[derive(Debug, Clone)]
pub struct MiniBatch {
    /// The datastore index of each observation, `[B]`, in batch order.
    pub indices: Vec<usize>,
    /// One chunk, or several in time order with [`SequenceLength::Fixed`].
    pub chunks: Vec<Chunk>,
}

/// Turns observations into mini-batches; see the module docs.
#[derive(Debug, Clone, PartialEq)]
pub struct Batcher {
    options: BatchOptions,
    num_classes: Option<usize>,
}

/// Where each observation's kept steps go in the padded mini-batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Layout {
    /// The padded length `T` of the whole mini-batch.
    pub time: usize,
    /// Per observation: the first kept step of its sequence, the number kept,
    /// and the global step where the first kept step lands.
    pub spans: Vec<(usize, usize, usize)>,
    /// The chunks, as global step ranges, in order.
    pub chunks: Vec<Range<usize>>,
}

impl Layout {
    /// The layout of sequences of `lengths` (each ≥ 1, at least one).
    pub fn new(lengths: &[usize], options: &BatchOptions) -> Layout {
        let longest = lengths.iter().copied().max().unwrap_or(0);
        let shortest = lengths.iter().copied().min().unwrap_or(0);
        let left = options.direction == PaddingDirection::Left;
        let (time, spans) = match options.sequence_length {
            SequenceLength::Shortest => (
                shortest,
                lengths
                    .iter()
                    .map(|&l| (if left { l - shortest } else { 0 }, shortest, 0))
                    .collect(),
            ),
            SequenceLength::Longest | SequenceLength::Fixed(_) => (
                longest,
                lengths
                    .iter()
                    .map(|&l| (0, l, if left { longest - l } else { 0 }))
                    .collect(),
            ),
        };
        let chunks = match options.sequence_length {
            SequenceLength::Fixed(n) if n > 0 => {
                (0..time).step_by(n).map(|s| s..(s + n).min(time)).collect()
            }
            _ => std::iter::once(0..time).collect(),
        };
        Layout {
            time,
            spans,
            chunks,
        }
    }

    /// For observation `b` in chunk `c`: its source steps and where the first
    /// lands in the chunk; an empty range when it has no step there.
    pub fn piece(&self, b: usize, c: &Range<usize>) -> (Range<usize>, usize) {
        let (src, kept, global) = self.spans[b];
        let start = global.max(c.start);
        let end = (global + kept).min(c.end);
        if start >= end {
            return (src..src, 0);
        }
        (
            src + (start - global)..src + (end - global),
            start - c.start,
        )
    }
}

impl Batcher {
    /// A batcher with `options`; `Fixed(0)` is an error.
    pub fn new(options: BatchOptions) -> Result<Self> {
        if options.sequence_length == SequenceLength::Fixed(0) {
            return Err(Error::InvalidOption {
                option: "SequenceLength",
                message: "a fixed sequence length must be at least 1".into(),
            });
        }
        Ok(Batcher {
            options,
            num_classes: None,
        })
    }

    /// A batcher with `options` and the class count of `store` (if it has classes).
    pub fn for_datastore(options: BatchOptions, store: &dyn Datastore) -> Result<Self> {
        let b = Batcher::new(options)?;
        Ok(match store.classes() {
            Some(c) => b.with_classes(c.len()),
            None => b,
        })
    }

    /// Sets the class count `K` of one-hot targets.
    pub fn with_classes(mut self, k: usize) -> Self {
        self.num_classes = Some(k);
        self
    }

    /// The options.
    pub fn options(&self) -> &BatchOptions {
        &self.options
    }

    /// The class count `K`, when set.
    pub fn num_classes(&self) -> Option<usize> {
        self.num_classes
    }

    /// Batches `observations` (`B ≥ 1` of them, all of one frame shape and
    /// target kind, each with at least one step) into its chunks.
    pub fn batch(&self, observations: &[Observation]) -> Result<Vec<Chunk>> {
        let mut sig: Option<Signature> = None;
        for (b, o) in observations.iter().enumerate() {
            let bad = |message: String| Error::MiniBatch {
                position: b,
                message,
            };
            Signature::check(&mut sig, o).map_err(bad)?;
            if o.is_empty() {
                return Err(bad("the sequence has no time step".into()));
            }
            if let Some(t) = o.target.steps() {
                if t != o.len() {
                    return Err(bad(format!(
                        "the per-step target has {t} time steps, the sequence {}",
                        o.len()
                    )));
                }
            }
        }
        let Some(sig) = sig else {
            return Err(Error::EmptyMiniBatch);
        };
        let lengths: Vec<usize> = observations.iter().map(Observation::len).collect();
        let layout = Layout::new(&lengths, &self.options);
        layout
            .chunks
            .iter()
            .map(|c| self.chunk(observations, &layout, c, &sig))
            .collect()
    }

    fn chunk(
        &self,
        obs: &[Observation],
        layout: &Layout,
        c: &Range<usize>,
        sig: &Signature,
    ) -> Result<Chunk> {
        let tc = c.end - c.start;
        let batch = obs.len();
        let pieces: Vec<(Range<usize>, usize)> = (0..batch).map(|b| layout.piece(b, c)).collect();
        let lengths = SeqLengths::new(
            pieces.iter().map(|p| p.0.len()).collect(),
            tc,
            self.options.direction,
        )?;

        // Inputs.
        let mut shape = vec![tc, batch];
        match sig.frame {
            FrameShape::Features(ch) => shape.push(ch),
            FrameShape::Image {
                height,
                width,
                channels,
            } => shape.extend([channels, height, width]),
        }
        let mut data = ArrayD::from_elem(IxDyn(&shape), self.options.padding_value);
        for (b, (o, (src, at))) in obs.iter().zip(&pieces).enumerate() {
            for (k, step) in src.clone().enumerate() {
                let mut dst = data.index_axis_mut(Axis(0), at + k);
                let mut dst = dst.index_axis_mut(Axis(0), b);
                match &o.data {
                    Sequence::Features(x) => dst.assign(&x.row(step).into_dyn()),
                    // [H, W, C] → [C, H, W].
                    Sequence::Images(x) => dst.assign(
                        &x.index_axis(Axis(0), step)
                            .permuted_axes([2, 0, 1])
                            .into_dyn(),
                    ),
                }
            }
        }
        let inputs = match sig.frame {
            FrameShape::Features(_) => Activation::sequence(data, Some(lengths.clone()))?,
            FrameShape::Image { .. } => Activation::image_sequence(data, Some(lengths.clone()))?,
        };

        // Targets.
        let k = || {
            self.num_classes.ok_or_else(|| Error::InvalidOption {
                option: "classes",
                message: "class targets need the class count (Batcher::with_classes or Batcher::for_datastore)".into(),
            })
        };
        let class_err = |b: usize, class: usize, k: usize| Error::MiniBatch {
            position: b,
            message: format!("class index {class} is not below the class count {k}"),
        };
        let targets = match sig.target {
            TargetKind::None => None,
            TargetKind::Class | TargetKind::Response(_) => {
                let width = match sig.target {
                    TargetKind::Response(r) => r,
                    _ => k()?,
                };
                let mut y = ArrayD::<f32>::zeros(IxDyn(&[batch, width]));
                for (b, (o, (src, _))) in obs.iter().zip(&pieces).enumerate() {
                    if src.is_empty() {
                        continue;
                    }
                    match &o.target {
                        Target::Class(class) if *class < width => y[[b, *class]] = 1.0,
                        Target::Class(class) => return Err(class_err(b, *class, width)),
                        Target::Response(r) => {
                            y.index_axis_mut(Axis(0), b).assign(&r.view().into_dyn())
                        }
                        _ => {}
                    }
                }
                Some(Activation::features(y)?)
            }
            TargetKind::ClassSequence | TargetKind::ResponseSequence(_) => {
                let width = match sig.target {
                    TargetKind::ResponseSequence(r) => r,
                    _ => k()?,
                };
                let mut y = ArrayD::<f32>::zeros(IxDyn(&[tc, batch, width]));
                for (b, (o, (src, at))) in obs.iter().zip(&pieces).enumerate() {
                    for (i, step) in src.clone().enumerate() {
                        match &o.target {
                            Target::ClassSequence(cs) => match cs.get(step) {
                                Some(&class) if class < width => y[[at + i, b, class]] = 1.0,
                                Some(&class) => return Err(class_err(b, class, width)),
                                None => {}
                            },
                            Target::ResponseSequence(r) => {
                                let mut dst = y.index_axis_mut(Axis(0), at + i);
                                dst.index_axis_mut(Axis(0), b)
                                    .assign(&r.row(step).into_dyn());
                            }
                            _ => {}
                        }
                    }
                }
                Some(Activation::sequence(y, Some(lengths))?)
            }
        };
        Ok(Chunk { inputs, targets })
    }

    /// Reads `indices` from `store` (in the caller's thread) and batches them.
    pub fn batch_indices(&self, store: &dyn Datastore, indices: &[usize]) -> Result<MiniBatch> {
        let obs = indices
            .iter()
            .map(|&i| store.read(i))
            .collect::<Result<Vec<_>>>()?;
        Ok(MiniBatch {
            indices: indices.to_vec(),
            chunks: self.batch(&obs)?,
        })
    }

    /// The mini-batches of one epoch: `order` split into mini-batches of
    /// `mini_batch_size` (the last smaller one kept or dropped per `last`),
    /// read through an [`Epoch`] (with the datastore's read-ahead, and
    /// nothing read for a dropped last mini-batch) and batched.
    pub fn epoch(
        &self,
        store: Arc<dyn Datastore>,
        order: &[usize],
        mini_batch_size: usize,
        last: LastBatch,
    ) -> Result<EpochBatches> {
        let batches = mini_batches(order, mini_batch_size, last)?;
        let flat: Vec<usize> = batches.iter().flatten().copied().collect();
        Ok(EpochBatches {
            epoch: Epoch::new(store, flat)?,
            batches: batches.into_iter(),
            batcher: self.clone(),
            failed: false,
            share: None,
        })
    }
}

/// Data-parallel training: one rank's share of each mini-batch.
impl Batcher {
    /// The real work each observation of a mini-batch with the sequence
    /// lengths `lengths` (`[B]`) brings: its time steps kept in the whole
    /// mini-batch's layout (all of them, or the shortest's count with
    /// [`SequenceLength::Shortest`]), `[B]`. What [`Share::positions`]
    /// balances.
    pub fn share_costs(&self, lengths: &[usize]) -> Vec<usize> {
        Layout::new(lengths, &self.options)
            .spans
            .iter()
            .map(|s| s.1)
            .collect()
    }

    /// The positions of `share` in a mini-batch with the sequence lengths
    /// `lengths` (`[B]`): [`Share::positions`] of [`Batcher::share_costs`],
    /// or position 0 as a stand-in ([`Share::is_stand_in`]).
    pub fn share_positions(&self, share: Share, lengths: &[usize]) -> Vec<usize> {
        if share.is_stand_in(lengths.len()) {
            return (0..lengths.len().min(1)).collect();
        }
        share.positions(&self.share_costs(lengths))
    }

    /// The chunks of the observations at `positions` (ascending) of a
    /// mini-batch whose observations have the sequence lengths `lengths`
    /// (`[B]`): `observations` are those of `positions` only, in that
    /// order, and the chunks are the rows `positions` of the chunks
    /// [`Batcher::batch`] makes of the whole mini-batch (same padded length,
    /// truncation and chunk boundaries).
    pub fn batch_share(
        &self,
        observations: &[Observation],
        lengths: &[usize],
        positions: &[usize],
    ) -> Result<Vec<Chunk>> {
        let ascending = positions.windows(2).all(|w| w[0] < w[1]);
        if positions.is_empty()
            || !ascending
            || positions.iter().any(|&p| p >= lengths.len())
            || positions.len() != observations.len()
        {
            return Err(Error::EmptyMiniBatch);
        }
        let mut sig: Option<Signature> = None;
        for (o, &position) in observations.iter().zip(positions) {
            let bad = |message: String| Error::MiniBatch { position, message };
            Signature::check(&mut sig, o).map_err(bad)?;
            if o.len() != lengths[position] || o.is_empty() {
                return Err(bad(format!(
                    "the sequence has {} time steps, the datastore's lengths say {}",
                    o.len(),
                    lengths[position]
                )));
            }
            if let Some(t) = o.target.steps() {
                if t != o.len() {
                    return Err(bad(format!(
                        "the per-step target has {t} time steps, the sequence {}",
                        o.len()
                    )));
                }
            }
        }
        let sig = sig.ok_or(Error::EmptyMiniBatch)?;
        if lengths.contains(&0) {
            return Err(Error::EmptyMiniBatch);
        }
        let whole = Layout::new(lengths, &self.options);
        let layout = Layout {
            time: whole.time,
            spans: positions.iter().map(|&p| whole.spans[p]).collect(),
            chunks: whole.chunks,
        };
        layout
            .chunks
            .iter()
            .map(|c| self.chunk(observations, &layout, c, &sig))
            .collect()
    }

    /// As [`Batcher::epoch`], but each mini-batch is this rank's `share`
    /// of it ([`Batcher::batch_share`]), and only the share's observations
    /// are read. `lengths` holds the sequence length of every observation of
    /// `store` (`[N]`, [`Datastore::sequence_lengths`]); each mini-batch's
    /// `indices` are those of the share, empty for a stand-in
    /// ([`Share::is_stand_in`]).
    pub fn epoch_share(
        &self,
        store: Arc<dyn Datastore>,
        order: &[usize],
        mini_batch_size: usize,
        last: LastBatch,
        share: Share,
        lengths: Arc<Vec<usize>>,
    ) -> Result<EpochBatches> {
        let batches = mini_batches(order, mini_batch_size, last)?;
        if let Some(&i) = order.iter().find(|&&i| i >= lengths.len()) {
            return Err(Error::Index {
                index: i,
                len: lengths.len(),
            });
        }
        let flat: Vec<usize> = batches
            .iter()
            .flat_map(|b| {
                let batch_lengths: Vec<usize> = b.iter().map(|&i| lengths[i]).collect();
                self.share_positions(share, &batch_lengths)
                    .into_iter()
                    .map(|p| b[p])
                    .collect::<Vec<_>>()
            })
            .collect();
        Ok(EpochBatches {
            epoch: Epoch::new(store, flat)?,
            batches: batches.into_iter(),
            batcher: self.clone(),
            failed: false,
            share: Some((share, lengths)),
        })
    }
}

/// The mini-batches of one epoch in order (see [`Batcher::epoch`]). After an
/// error the iterator yields that error and ends.
pub struct EpochBatches {
    epoch: Epoch,
    batches: std::vec::IntoIter<Vec<usize>>,
    batcher: Batcher,
    failed: bool,
    /// Data-parallel training: this rank's share and every observation's length.
    share: Option<(Share, Arc<Vec<usize>>)>,
}

impl EpochBatches {
    /// The number of mini-batches not yet yielded.
    pub fn remaining(&self) -> usize {
        if self.failed {
            0
        } else {
            self.batches.len()
        }
    }

    fn next_batch(&mut self, batch: Vec<usize>) -> Result<MiniBatch> {
        let (indices, positions) = match &self.share {
            Some((share, lengths)) => {
                let batch_lengths: Vec<usize> = batch.iter().map(|&i| lengths[i]).collect();
                let positions = self.batcher.share_positions(*share, &batch_lengths);
                let indices = positions.iter().map(|&p| batch[p]).collect();
                (indices, Some((positions, batch_lengths)))
            }
            None => (batch.clone(), None),
        };
        let mut obs = Vec::with_capacity(indices.len());
        for &want in &indices {
            match self.epoch.next() {
                Some(Ok((i, o))) if i == want => obs.push(o),
                Some(Ok((i, _))) => {
                    return Err(Error::ReadAhead(format!(
                        "the epoch reader gave observation {i} where {want} was expected"
                    )))
                }
                Some(Err(e)) => return Err(e),
                None => return Err(Error::ReadAhead("the epoch reader ended early".into())),
            }
        }
        let chunks = match positions {
            Some((positions, lengths)) => self.batcher.batch_share(&obs, &lengths, &positions)?,
            None => self.batcher.batch(&obs)?,
        };
        let stand_in = self
            .share
            .as_ref()
            .is_some_and(|(share, _)| share.is_stand_in(batch.len()));
        let indices = if stand_in { Vec::new() } else { indices };
        Ok(MiniBatch { indices, chunks })
    }
}

impl Iterator for EpochBatches {
    type Item = Result<MiniBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let indices = self.batches.next()?;
        let r = self.next_batch(indices);
        self.failed = r.is_err();
        Some(r)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.remaining()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::InMemoryDatastore;
    use ndarray::{array, Array1, Array2, Array4};

    /// A `[t, 2]` sequence with step `s` = `[base + s, -(base + s)]`.
    fn feat(t: usize, base: f32) -> Sequence {
        Sequence::Features(Array2::from_shape_fn((t, 2), |(s, c)| {
            let v = base + s as f32;
            if c == 0 {
                v
            } else {
                -v
            }
        }))
    }

    fn opts(sl: SequenceLength, dir: PaddingDirection, pad: f32) -> BatchOptions {
        BatchOptions {
            sequence_length: sl,
            direction: dir,
            padding_value: pad,
        }
    }

    fn col(a: &Activation, b: usize, c: usize) -> Vec<f32> {
        (0..a.data.shape()[0]).map(|t| a.data[[t, b, c]]).collect()
    }

    #[test]
    fn longest_right_and_left() {
        let obs = vec![
            Observation::new(feat(3, 10.), Target::Class(1)),
            Observation::new(feat(1, 20.), Target::Class(0)),
        ];
        let b = Batcher::new(opts(SequenceLength::Longest, PaddingDirection::Right, -1.))
            .unwrap()
            .with_classes(3);
        let chunks = b.batch(&obs).unwrap();
        assert_eq!(chunks.len(), 1);
        let x = &chunks[0].inputs;
        assert_eq!(x.data.shape(), &[3, 2, 2]);
        assert_eq!(col(x, 0, 0), vec![10., 11., 12.]);
        assert_eq!(col(x, 1, 0), vec![20., -1., -1.]);
        assert_eq!(col(x, 1, 1), vec![-20., -1., -1.]);
        assert_eq!(x.seq_lengths().lengths, vec![3, 1]);
        let y = chunks[0].targets.as_ref().unwrap();
        assert_eq!(y.format, seqnet_core::Format::CB);
        assert_eq!(
            y.data.view().into_dimensionality::<ndarray::Ix2>().unwrap(),
            array![[0., 1., 0.], [1., 0., 0.]]
        );

        let b = Batcher::new(opts(SequenceLength::Longest, PaddingDirection::Left, 0.))
            .unwrap()
            .with_classes(3);
        let x = &b.batch(&obs).unwrap()[0].inputs;
        assert_eq!(col(x, 1, 0), vec![0., 0., 20.]);
        let l = x.seq_lengths();
        assert_eq!(l.direction, PaddingDirection::Left);
        assert_eq!(l.span(1), 2..3);
    }

    #[test]
    fn shortest_truncates_on_the_padding_side() {
        let obs = vec![
            Observation::new(feat(4, 0.), Target::None),
            Observation::new(feat(2, 100.), Target::None),
        ];
        let right =
            Batcher::new(opts(SequenceLength::Shortest, PaddingDirection::Right, 0.)).unwrap();
        let c = right.batch(&obs).unwrap();
        assert!(c[0].targets.is_none());
        assert_eq!(col(&c[0].inputs, 0, 0), vec![0., 1.]);
        assert_eq!(col(&c[0].inputs, 1, 0), vec![100., 101.]);
        let left =
            Batcher::new(opts(SequenceLength::Shortest, PaddingDirection::Left, 0.)).unwrap();
        let c = left.batch(&obs).unwrap();
        assert_eq!(col(&c[0].inputs, 0, 0), vec![2., 3.]);
        assert!(c[0].inputs.seq_lengths().is_full());
    }

    #[test]
    fn fixed_chunks_with_length_zero() {
        let obs = vec![
            Observation::new(feat(5, 0.), Target::ClassSequence(vec![0, 1, 0, 1, 0])),
            Observation::new(feat(2, 50.), Target::ClassSequence(vec![1, 1])),
        ];
        let b = Batcher::new(opts(SequenceLength::Fixed(2), PaddingDirection::Right, 9.))
            .unwrap()
            .with_classes(2);
        let chunks = b.batch(&obs).unwrap();
        let tcs: Vec<usize> = chunks.iter().map(|c| c.inputs.time()).collect();
        assert_eq!(tcs, vec![2, 2, 1]);
        assert_eq!(chunks[0].lengths(), vec![2, 2]);
        assert_eq!(chunks[1].lengths(), vec![2, 0]);
        assert_eq!(chunks[2].lengths(), vec![1, 0]);
        assert_eq!(chunks[1].active(), vec![true, false]);
        assert_eq!(col(&chunks[1].inputs, 1, 0), vec![9., 9.]);
        assert_eq!(col(&chunks[2].inputs, 0, 0), vec![4.]);
        let y = chunks[1].targets.as_ref().unwrap();
        assert_eq!(y.data.shape(), &[2, 2, 2]);
        assert_eq!(col(y, 0, 1), vec![0., 1.]);
        assert_eq!(col(y, 1, 0), vec![0., 0.]);

        // Left: the short sequence is absent from the first chunks.
        let b = Batcher::new(opts(SequenceLength::Fixed(2), PaddingDirection::Left, 9.))
            .unwrap()
            .with_classes(2);
        let chunks = b.batch(&obs).unwrap();
        let lens: Vec<Vec<usize>> = chunks.iter().map(Chunk::lengths).collect();
        assert_eq!(lens, vec![vec![2, 0], vec![2, 1], vec![1, 1]]);
        assert_eq!(col(&chunks[1].inputs, 1, 0), vec![9., 50.]);
        assert_eq!(col(&chunks[2].inputs, 1, 0), vec![51.]);
    }

    #[test]
    fn label_targets_are_zero_where_inactive() {
        let obs = vec![
            Observation::new(feat(3, 0.), Target::Response(array![1.0, 2.0])),
            Observation::new(feat(1, 0.), Target::Response(array![3.0, 4.0])),
        ];
        let b = Batcher::new(opts(SequenceLength::Fixed(2), PaddingDirection::Right, 0.)).unwrap();
        let chunks = b.batch(&obs).unwrap();
        let y0 = chunks[0].targets.as_ref().unwrap().data.clone();
        let y1 = chunks[1].targets.as_ref().unwrap().data.clone();
        assert_eq!(
            y0.into_dimensionality::<ndarray::Ix2>().unwrap(),
            array![[1., 2.], [3., 4.]]
        );
        assert_eq!(
            y1.into_dimensionality::<ndarray::Ix2>().unwrap(),
            array![[1., 2.], [0., 0.]]
        );
    }

    #[test]
    fn image_frames_move_channels_first() {
        let img = Array4::from_shape_fn((2, 3, 4, 2), |(t, h, w, c)| {
            (t * 1000 + h * 100 + w * 10 + c) as f32
        });
        let obs = vec![
            Observation::new(
                Sequence::Images(img),
                Target::ResponseSequence(Array2::zeros((2, 1))),
            ),
            Observation::new(
                Sequence::Images(Array4::ones((1, 3, 4, 2))),
                Target::ResponseSequence(Array2::ones((1, 1))),
            ),
        ];
        let b = Batcher::new(BatchOptions::default()).unwrap();
        let c = b.batch(&obs).unwrap();
        let x = &c[0].inputs;
        assert_eq!(x.format, seqnet_core::Format::SSCBT);
        assert_eq!(x.data.shape(), &[2, 2, 2, 3, 4]);
        assert_eq!(x.data[[1, 0, 1, 2, 3]], 1231.);
        assert_eq!(x.data[[1, 1, 0, 0, 0]], 0.);
        assert_eq!(x.seq_lengths().lengths, vec![2, 1]);
        let y = c[0].targets.as_ref().unwrap();
        assert_eq!(y.data.shape(), &[2, 2, 1]);
        assert_eq!(y.data[[0, 1, 0]], 1.);
    }

    #[test]
    fn bad_batches_are_errors() {
        let b = Batcher::new(BatchOptions::default()).unwrap();
        assert!(b.batch(&[]).is_err());
        let cls = Observation::new(feat(2, 0.), Target::Class(2));
        assert!(b.batch(std::slice::from_ref(&cls)).is_err()); // no class count
        assert!(b
            .clone()
            .with_classes(2)
            .batch(std::slice::from_ref(&cls))
            .is_err());
        let mixed = vec![
            cls,
            Observation::new(feat(2, 0.), Target::Response(Array1::zeros(1))),
        ];
        assert!(b.clone().with_classes(3).batch(&mixed).is_err());
        let short = Observation::new(feat(3, 0.), Target::ClassSequence(vec![0]));
        assert!(b.clone().with_classes(3).batch(&[short]).is_err());
        assert!(Batcher::new(opts(SequenceLength::Fixed(0), PaddingDirection::Right, 0.)).is_err());
    }

    #[test]
    fn epoch_batches_follow_the_order() {
        let obs: Vec<Observation> = (0..7)
            .map(|i| Observation::new(feat(i + 1, i as f32), Target::Class(i % 2)))
            .collect();
        let ds = Arc::new(InMemoryDatastore::new(obs, Some(vec!["a".into(), "b".into()])).unwrap());
        let b = Batcher::for_datastore(BatchOptions::default(), ds.as_ref()).unwrap();
        let order = vec![6, 0, 5, 1, 4, 2, 3];
        let keep: Vec<MiniBatch> = b
            .epoch(ds.clone(), &order, 3, LastBatch::Keep)
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(
            keep.iter().map(|m| m.indices.clone()).collect::<Vec<_>>(),
            vec![vec![6, 0, 5], vec![1, 4, 2], vec![3]]
        );
        assert_eq!(
            keep[0].chunks[0].inputs.seq_lengths().lengths,
            vec![7, 1, 6]
        );
        let drop = b.epoch(ds.clone(), &order, 3, LastBatch::Discard).unwrap();
        assert_eq!(drop.remaining(), 2);
        assert_eq!(drop.count(), 2);
        let direct = b.batch_indices(ds.as_ref(), &[6, 0, 5]).unwrap();
        assert_eq!(direct.chunks[0].inputs.data, keep[0].chunks[0].inputs.data);
    }
}
