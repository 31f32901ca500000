//! The [`Datastore`] trait and [`Epoch`], which reads a datastore's
//! observations in a given order — on a background thread ahead of the
//! consumer, through a bounded queue, when the datastore asks for read-ahead.

use crate::error::{Error, Result};
use crate::observation::{FrameShape, Observation, TargetKind};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

/// A collection of observations read one at a time, by index.
///
/// Implementations are shared with the read-ahead thread, hence `Send + Sync`.
pub trait Datastore: Send + Sync {
    /// The number of observations `N`.
    fn len(&self) -> usize;

    /// Whether the datastore has no observation.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reads observation `i` (`0 ≤ i < N`): a sequence `[T, C]` or
    /// `[T, H, W, C]` and its target.
    fn read(&self, i: usize) -> Result<Observation>;

    /// The class names of classification targets; class index `k` is
    /// `classes()[k]`. `None` for datastores without class targets.
    fn classes(&self) -> Option<&[String]> {
        None
    }

    /// The number of time steps `T` of every observation, `[N]`. The default
    /// reads every observation; implementations that know the lengths
    /// cheaply override it.
    fn sequence_lengths(&self) -> Result<Vec<usize>> {
        (0..self.len())
            .map(|i| self.read(i).map(|o| o.len()))
            .collect()
    }

    /// The shape of one time step, the same for every observation (`None`
    /// when empty). The default reads observation 0.
    fn frame_shape(&self) -> Result<Option<FrameShape>> {
        if self.is_empty() {
            return Ok(None);
        }
        self.read(0).map(|o| Some(o.data.frame_shape()))
    }

    /// The kind of target, the same for every observation (`None` when
    /// empty). The default reads observation 0.
    fn target_kind(&self) -> Result<Option<TargetKind>> {
        if self.is_empty() {
            return Ok(None);
        }
        self.read(0).map(|o| Some(o.target.kind()))
    }

    /// How many observations an [`Epoch`] reads ahead of its consumer on a
    /// background thread; 0 reads in the consumer's thread (the default,
    /// right for data already in memory).
    fn read_ahead(&self) -> usize {
        0
    }
}

/// The observations of a datastore in a chosen order, as an iterator of
/// `(index, observation)`.
///
/// With read-ahead `d > 0` (from [`Datastore::read_ahead`]) a background
/// thread reads the observations in order into a queue bounded to `d`
/// observations, so at most about `d + 2` observations are in memory at
/// once (the queue, the one being read and the one the consumer holds).
/// After an error the iterator yields that error and then ends. Dropping the
/// `Epoch` early stops the thread.
pub struct Epoch {
    inner: Inner,
    /// Observations still to come.
    remaining: usize,
}

enum Inner {
    Sync {
        store: Arc<dyn Datastore>,
        order: std::vec::IntoIter<usize>,
    },
    Background {
        rx: Option<Receiver<Result<(usize, Observation)>>>,
        handle: Option<JoinHandle<()>>,
    },
    Done,
}

impl Epoch {
    /// Reads `store`'s observations in `order` (indices, repeats allowed),
    /// with the datastore's own read-ahead. An index `≥ N` is an error here,
    /// before anything is read.
    pub fn new(store: Arc<dyn Datastore>, order: Vec<usize>) -> Result<Self> {
        let depth = store.read_ahead();
        Self::with_read_ahead(store, order, depth)
    }

    /// As [`Epoch::new`] with read-ahead `depth` (0: read in the consumer's thread).
    pub fn with_read_ahead(
        store: Arc<dyn Datastore>,
        order: Vec<usize>,
        depth: usize,
    ) -> Result<Self> {
        let n = store.len();
        if let Some(&bad) = order.iter().find(|&&i| i >= n) {
            return Err(Error::Index { index: bad, len: n });
        }
        let remaining = order.len();
        let inner = if depth == 0 {
            Inner::Sync {
                store,
                order: order.into_iter(),
            }
        } else {
            let (tx, rx) = sync_channel(depth);
            let handle = std::thread::Builder::new()
                .name("seqnet-data read-ahead".into())
                .spawn(move || {
                    for i in order {
                        let r = store.read(i).map(|o| (i, o));
                        let failed = r.is_err();
                        // A closed channel means the consumer is gone: stop.
                        if tx.send(r).is_err() || failed {
                            return;
                        }
                    }
                })
                .map_err(|source| Error::Io {
                    path: "<read-ahead thread>".into(),
                    source,
                })?;
            Inner::Background {
                rx: Some(rx),
                handle: Some(handle),
            }
        };
        Ok(Epoch { inner, remaining })
    }

    /// The number of observations not yet yielded.
    pub fn remaining(&self) -> usize {
        self.remaining
    }
}

impl Iterator for Epoch {
    type Item = Result<(usize, Observation)>;

    fn next(&mut self) -> Option<Self::Item> {
        let item = match &mut self.inner {
            Inner::Done => return None,
            Inner::Sync { store, order } => {
                let i = order.next()?;
                store.read(i).map(|o| (i, o))
            }
            Inner::Background { rx, handle } => {
                let received = rx.as_ref().and_then(|rx| rx.recv().ok());
                match received {
                    Some(r) => r,
                    None if self.remaining == 0 => {
                        self.inner = Inner::Done;
                        return None;
                    }
                    None => {
                        // The thread ended before sending everything: it panicked.
                        let panicked = handle.take().map(|h| h.join().is_err()).unwrap_or(false);
                        self.inner = Inner::Done;
                        return Some(Err(Error::ReadAhead(format!(
                            "the read-ahead thread stopped with {} observation{} unread{}",
                            self.remaining,
                            if self.remaining == 1 { "" } else { "s" },
                            if panicked { " (it panicked)" } else { "" }
                        ))));
                    }
                }
            }
        };
        self.remaining = self.remaining.saturating_sub(1);
        if item.is_err() {
            self.inner = Inner::Done;
        }
        Some(item)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.remaining))
    }
}

impl Drop for Epoch {
    fn drop(&mut self) {
        if let Inner::Background { rx, handle } = &mut self.inner {
            // Closing the channel first unblocks a thread waiting to send.
            drop(rx.take());
            if let Some(h) = handle.take() {
                let _ = h.join();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observation::{Sequence, Target};
    use ndarray::Array2;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Observation `i` is `[i + 1, 1]` of value `i`; reading `fail` fails.
    struct Counting {
        n: usize,
        fail: Option<usize>,
        reads: AtomicUsize,
        depth: usize,
    }

    impl Datastore for Counting {
        fn len(&self) -> usize {
            self.n
        }
        fn read(&self, i: usize) -> Result<Observation> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            if Some(i) == self.fail {
                return Err(Error::Observation {
                    index: i,
                    message: "cannot read it".into(),
                });
            }
            Ok(Observation::new(
                Sequence::Features(Array2::from_elem((i + 1, 1), i as f32)),
                Target::Class(0),
            ))
        }
        fn read_ahead(&self) -> usize {
            self.depth
        }
    }

    fn store(n: usize, fail: Option<usize>, depth: usize) -> Arc<Counting> {
        Arc::new(Counting {
            n,
            fail,
            reads: AtomicUsize::new(0),
            depth,
        })
    }

    #[test]
    fn reads_in_the_given_order_with_and_without_read_ahead() {
        for depth in [0, 1, 3] {
            let order = vec![4, 0, 2, 2, 1];
            let got: Vec<usize> = Epoch::new(store(5, None, depth), order.clone())
                .unwrap()
                .map(|r| {
                    let (i, o) = r.unwrap();
                    assert_eq!(o.len(), i + 1);
                    i
                })
                .collect();
            assert_eq!(got, order);
        }
    }

    #[test]
    fn an_error_ends_the_epoch() {
        for depth in [0, 2] {
            let mut e = Epoch::new(store(5, Some(2), depth), vec![0, 1, 2, 3, 4]).unwrap();
            assert!(e.next().unwrap().is_ok());
            assert!(e.next().unwrap().is_ok());
            assert!(e
                .next()
                .unwrap()
                .unwrap_err()
                .to_string()
                .contains("observation 2: cannot read it"));
            assert!(e.next().is_none());
        }
    }

    #[test]
    fn bad_index_is_rejected_up_front() {
        assert!(Epoch::new(store(3, None, 2), vec![0, 3]).is_err());
    }

    #[test]
    fn read_ahead_is_bounded_and_drop_stops_the_thread() {
        let s = store(1000, None, 4);
        let mut e = Epoch::new(s.clone(), (0..1000).collect()).unwrap();
        assert!(e.next().is_some());
        std::thread::sleep(std::time::Duration::from_millis(50));
        // One consumed, 4 queued, at most one being sent.
        assert!(
            s.reads.load(Ordering::SeqCst) <= 6,
            "{}",
            s.reads.load(Ordering::SeqCst)
        );
        drop(e);
        assert!(s.reads.load(Ordering::SeqCst) <= 6);
    }
}
