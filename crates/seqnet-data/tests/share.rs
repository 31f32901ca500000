//! Data-parallel shares: a rank's chunks are the rows of the whole
//! mini-batch's chunks, for every sequence-length option and padding side,
//! and each rank reads only its share.

use ndarray::{ArcArray, Array2, ArrayD, Axis, IxDyn};
use seqnet_data::{
    BatchOptions, Batcher, Chunk, Datastore, InMemoryDatastore, LastBatch, Observation,
    PaddingDirection, Sequence, SequenceLength, Share, Target,
};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Observation `i` of length `t`: features `[t, 2]`, a class per step.
fn obs(i: usize, t: usize) -> Observation {
    let x = Array2::from_shape_fn((t, 2), |(s, c)| (i * 100 + s * 2 + c) as f32);
    Observation::new(
        Sequence::Features(x),
        Target::ClassSequence((0..t).map(|s| (i + s) % 3).collect()),
    )
}

fn rows(a: &ArcArray<f32, IxDyn>, positions: &[usize]) -> ArrayD<f32> {
    a.select(Axis(1), positions)
}

fn pick<T: Clone>(v: &[T], positions: &[usize]) -> Vec<T> {
    positions.iter().map(|&p| v[p].clone()).collect()
}

fn assert_rows(whole: &[Chunk], part: &[Chunk], positions: &[usize]) {
    assert_eq!(whole.len(), part.len(), "chunk count");
    for (w, p) in whole.iter().zip(part) {
        assert_eq!(rows(&w.inputs.data, positions), p.inputs.data.to_owned());
        assert_eq!(pick(&w.lengths(), positions), p.lengths()[..]);
        let (wt, pt) = (w.targets.as_ref().unwrap(), p.targets.as_ref().unwrap());
        assert_eq!(rows(&wt.data, positions), pt.data.to_owned());
        assert_eq!(
            pick(&wt.seq_lengths().lengths, positions),
            pt.seq_lengths().lengths[..]
        );
    }
}

#[test]
fn a_share_is_the_rows_of_the_whole_batch() {
    let lengths = [5, 2, 7, 3, 4, 1, 6];
    let all: Vec<Observation> = lengths
        .iter()
        .enumerate()
        .map(|(i, &t)| obs(i, t))
        .collect();
    for sequence_length in [
        SequenceLength::Longest,
        SequenceLength::Shortest,
        SequenceLength::Fixed(2),
        SequenceLength::Fixed(3),
    ] {
        for direction in [PaddingDirection::Right, PaddingDirection::Left] {
            let batcher = Batcher::new(BatchOptions {
                sequence_length,
                direction,
                padding_value: -1.5,
            })
            .unwrap()
            .with_classes(3);
            let whole = batcher.batch(&all).unwrap();
            for ranks in 1..=4 {
                let mut covered = Vec::new();
                for rank in 0..ranks {
                    let positions = batcher.share_positions(Share { rank, ranks }, &lengths);
                    let part = batcher
                        .batch_share(&pick(&all, &positions), &lengths, &positions)
                        .unwrap();
                    assert_rows(&whole, &part, &positions);
                    covered.extend(positions);
                }
                covered.sort();
                assert_eq!(covered, (0..all.len()).collect::<Vec<_>>());
            }
        }
    }
}

#[test]
fn wrong_lengths_or_an_empty_share_are_errors() {
    let all: Vec<Observation> = (0..3).map(|i| obs(i, i + 2)).collect();
    let batcher = Batcher::new(BatchOptions::default())
        .unwrap()
        .with_classes(3);
    assert!(batcher.batch_share(&all[0..1], &[3, 3, 4], &[0]).is_err());
    assert!(batcher.batch_share(&[], &[2, 3, 4], &[]).is_err());
    assert!(batcher.batch_share(&all[0..2], &[2, 3, 4], &[0]).is_err());
    assert!(batcher
        .batch_share(&all[0..2], &[2, 3, 4], &[1, 0])
        .is_err());
    assert!(batcher
        .batch_share(&all[0..2], &[2, 3, 4], &[0, 3])
        .is_err());
}

/// Counts reads.
struct Counting {
    inner: InMemoryDatastore,
    reads: AtomicUsize,
}

impl Datastore for Counting {
    fn len(&self) -> usize {
        self.inner.len()
    }
    fn read(&self, i: usize) -> seqnet_data::Result<Observation> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.inner.read(i)
    }
    fn classes(&self) -> Option<&[String]> {
        self.inner.classes()
    }
}

#[test]
fn each_rank_reads_only_its_share_of_an_epoch() {
    let lengths: Vec<usize> = (0..10).map(|i| 1 + (i * 7) % 5).collect();
    let all: Vec<Observation> = lengths
        .iter()
        .enumerate()
        .map(|(i, &t)| obs(i, t))
        .collect();
    let classes = Some(vec!["a".into(), "b".into(), "c".into()]);
    let batcher = Batcher::new(BatchOptions::default())
        .unwrap()
        .with_classes(3);
    let order: Vec<usize> = vec![3, 1, 4, 0, 5, 9, 2, 6, 8, 7];
    let whole_store = Arc::new(InMemoryDatastore::new(all.clone(), classes.clone()).unwrap());
    let whole: Vec<_> = batcher
        .epoch(whole_store, &order, 4, LastBatch::Discard)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let ranks = 3;
    let mut read = 0;
    for rank in 0..ranks {
        let store = Arc::new(Counting {
            inner: InMemoryDatastore::new(all.clone(), classes.clone()).unwrap(),
            reads: AtomicUsize::new(0),
        });
        let share = Share { rank, ranks };
        let parts: Vec<_> = batcher
            .epoch_share(
                store.clone(),
                &order,
                4,
                LastBatch::Discard,
                share,
                Arc::new(lengths.clone()),
            )
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(parts.len(), whole.len());
        for (w, p) in whole.iter().zip(&parts) {
            let batch_lengths: Vec<usize> = w.indices.iter().map(|&i| lengths[i]).collect();
            let positions = batcher.share_positions(share, &batch_lengths);
            assert_eq!(p.indices, pick(&w.indices, &positions));
            assert_rows(&w.chunks, &p.chunks, &positions);
        }
        let n = store.reads.load(Ordering::SeqCst);
        assert_eq!(n, parts.iter().map(|p| p.indices.len()).sum::<usize>());
        read += n;
    }
    assert_eq!(
        read, 8,
        "every observation of the two mini-batches read once over the ranks"
    );
}

#[test]
fn a_mini_batch_smaller_than_the_rank_count_gives_stand_ins() {
    let lengths = vec![3, 2, 4, 1, 2];
    let all: Vec<Observation> = lengths
        .iter()
        .enumerate()
        .map(|(i, &t)| obs(i, t))
        .collect();
    let store = Arc::new(
        InMemoryDatastore::new(all, Some(vec!["a".into(), "b".into(), "c".into()])).unwrap(),
    );
    let batcher = Batcher::new(BatchOptions::default())
        .unwrap()
        .with_classes(3);
    let order = [0, 1, 2, 3, 4];
    let whole: Vec<_> = batcher
        .epoch(store.clone(), &order, 4, LastBatch::Keep)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for rank in 0..3 {
        let parts: Vec<_> = batcher
            .epoch_share(
                store.clone(),
                &order,
                4,
                LastBatch::Keep,
                Share { rank, ranks: 3 },
                Arc::new(lengths.clone()),
            )
            .unwrap()
            .map(Result::unwrap)
            .collect();
        // Rank 0 has the one observation, the others a stand-in copy of it.
        let want: Vec<usize> = if rank == 0 { vec![4] } else { vec![] };
        assert_eq!(parts[1].indices, want);
        assert_rows(&whole[1].chunks, &parts[1].chunks, &[0]);
    }
}
