//! Property tests of the batcher: padding direction never changes a
//! sequence's real data, lengths are right, and chunks concatenate back to
//! the sequences.

use ndarray::{Array2, Array4, Axis};
use proptest::prelude::*;
use seqnet_core::Activation;
use seqnet_data::*;

/// Observation `b`'s real steps in a chunk, as `[len, C·…]` rows, read
/// through the mask (`SeqLengths::span`).
fn real_steps(a: &Activation, b: usize) -> Vec<Vec<f32>> {
    let l = a.seq_lengths();
    l.span(b)
        .map(|t| {
            a.data
                .index_axis(Axis(0), t)
                .index_axis(Axis(0), b)
                .iter()
                .copied()
                .collect()
        })
        .collect()
}

/// Observation `b`'s padded steps.
fn padded_steps(a: &Activation, b: usize) -> Vec<f32> {
    let l = a.seq_lengths();
    (0..l.time)
        .filter(|&t| !l.is_real(b, t))
        .flat_map(|t| {
            a.data
                .index_axis(Axis(0), t)
                .index_axis(Axis(0), b)
                .iter()
                .copied()
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The rows of a `[T, C]` sequence, or of `[T, H, W, C]` frames in `[C, H, W]` order.
fn rows(s: &Sequence) -> Vec<Vec<f32>> {
    match s {
        Sequence::Features(x) => x.outer_iter().map(|r| r.to_vec()).collect(),
        Sequence::Images(x) => x
            .outer_iter()
            .map(|f| f.permuted_axes([2, 0, 1]).iter().copied().collect())
            .collect(),
    }
}

fn observations(
    lengths: &[usize],
    channels: usize,
    images: bool,
    classes: usize,
) -> Vec<Observation> {
    lengths
        .iter()
        .enumerate()
        .map(|(b, &t)| {
            let v = |s: usize, k: usize| (b * 10_000 + s * 100 + k) as f32;
            let data = if images {
                Sequence::Images(Array4::from_shape_fn(
                    (t, 2, 3, channels),
                    |(s, h, w, c)| v(s, (h * 3 + w) * channels + c),
                ))
            } else {
                Sequence::Features(Array2::from_shape_fn((t, channels), |(s, c)| v(s, c)))
            };
            let target = Target::ClassSequence((0..t).map(|s| (s + b) % classes).collect());
            Observation::new(data, target)
        })
        .collect()
}

fn batcher(sl: SequenceLength, dir: PaddingDirection, pad: f32, classes: usize) -> Batcher {
    Batcher::new(BatchOptions {
        sequence_length: sl,
        direction: dir,
        padding_value: pad,
    })
    .unwrap()
    .with_classes(classes)
}

/// The class of each real step of a one-hot per-step target.
fn classes_of(y: &Activation, b: usize) -> Vec<usize> {
    real_steps(y, b)
        .iter()
        .map(|row| row.iter().position(|&v| v == 1.0).unwrap_or(usize::MAX))
        .collect()
}

fn cases() -> impl Strategy<Value = (Vec<usize>, usize, bool, usize)> {
    (
        prop::collection::vec(1usize..12, 1..6),
        1usize..4,
        any::<bool>(),
        1usize..6,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn padding_direction_keeps_the_real_data((lengths, c, images, _n) in cases(), pad in -2.0f32..2.0) {
        let obs = observations(&lengths, c, images, 3);
        let right = batcher(SequenceLength::Longest, PaddingDirection::Right, pad, 3).batch(&obs).unwrap();
        let left = batcher(SequenceLength::Longest, PaddingDirection::Left, pad, 3).batch(&obs).unwrap();
        prop_assert_eq!(right.len(), 1);
        prop_assert_eq!(left.len(), 1);
        let longest = *lengths.iter().max().unwrap();
        for (b, o) in obs.iter().enumerate() {
            let want = rows(&o.data);
            prop_assert_eq!(&real_steps(&right[0].inputs, b), &want);
            prop_assert_eq!(&real_steps(&left[0].inputs, b), &want);
            for chunks in [&right, &left] {
                prop_assert!(padded_steps(&chunks[0].inputs, b).iter().all(|&v| v == pad));
                let y = chunks[0].targets.as_ref().unwrap();
                let t = match &o.target { Target::ClassSequence(t) => t.clone(), _ => unreachable!() };
                prop_assert_eq!(classes_of(y, b), t);
                prop_assert!(padded_steps(y, b).iter().all(|&v| v == 0.0));
            }
        }
        for chunks in [&right, &left] {
            let l = chunks[0].inputs.seq_lengths();
            prop_assert_eq!(&l.lengths, &lengths);
            prop_assert_eq!(l.time, longest);
        }
    }

    #[test]
    fn shortest_keeps_the_padding_side_end((lengths, c, images, _n) in cases()) {
        let obs = observations(&lengths, c, images, 3);
        let shortest = *lengths.iter().min().unwrap();
        for dir in [PaddingDirection::Right, PaddingDirection::Left] {
            let chunks = batcher(SequenceLength::Shortest, dir, 0.0, 3).batch(&obs).unwrap();
            prop_assert_eq!(chunks.len(), 1);
            let l = chunks[0].inputs.seq_lengths();
            prop_assert_eq!(l.time, shortest);
            prop_assert!(l.lengths.iter().all(|&x| x == shortest));
            for (b, o) in obs.iter().enumerate() {
                let all = rows(&o.data);
                let want = match dir {
                    PaddingDirection::Right => all[..shortest].to_vec(),
                    PaddingDirection::Left => all[all.len() - shortest..].to_vec(),
                };
                prop_assert_eq!(real_steps(&chunks[0].inputs, b), want);
            }
        }
    }

    #[test]
    fn chunks_concatenate_to_the_sequences((lengths, c, images, n) in cases(), left in any::<bool>()) {
        let dir = if left { PaddingDirection::Left } else { PaddingDirection::Right };
        let obs = observations(&lengths, c, images, 4);
        let chunks = batcher(SequenceLength::Fixed(n), dir, -7.0, 4).batch(&obs).unwrap();
        let longest = *lengths.iter().max().unwrap();
        prop_assert_eq!(chunks.len(), longest.div_ceil(n));
        let times: Vec<usize> = chunks.iter().map(|c| c.inputs.time()).collect();
        prop_assert_eq!(times.iter().sum::<usize>(), longest);
        prop_assert!(times[..times.len() - 1].iter().all(|&t| t == n));
        for (b, o) in obs.iter().enumerate() {
            let mut data = Vec::new();
            let mut targets = Vec::new();
            let mut total = 0;
            for ch in &chunks {
                let l = ch.inputs.seq_lengths();
                prop_assert_eq!(l.direction, dir);
                total += l.lengths[b];
                prop_assert_eq!(ch.active()[b], l.lengths[b] > 0);
                data.extend(real_steps(&ch.inputs, b));
                targets.extend(classes_of(ch.targets.as_ref().unwrap(), b));
                prop_assert!(padded_steps(&ch.inputs, b).iter().all(|&v| v == -7.0));
            }
            prop_assert_eq!(total, lengths[b]);
            prop_assert_eq!(data, rows(&o.data));
            let t = match &o.target { Target::ClassSequence(t) => t.clone(), _ => unreachable!() };
            prop_assert_eq!(targets, t);
            // Right: once ended, always 0; left: 0 until started.
            let active: Vec<bool> = chunks.iter().map(|ch| ch.active()[b]).collect();
            let mut sorted = active.clone();
            if left { sorted.sort(); } else { sorted.sort_by(|a, b| b.cmp(a)); }
            prop_assert_eq!(active, sorted);
        }
    }
}
