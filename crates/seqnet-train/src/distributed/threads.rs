//! [`ThreadGroup`]: the ranks of a data-parallel run as threads of one
//! process, for tests and simulations without MPI.

use super::Communicator;
use std::sync::{Arc, Barrier, Mutex};

/// What the ranks of one group share.
struct Shared {
    size: usize,
    barrier: Barrier,
    /// Each rank's contribution to the sum in progress.
    slots: Mutex<Vec<Vec<f64>>>,
    /// The message of the first rank that aborted.
    aborted: Mutex<Option<String>>,
}

/// One rank of a group of threads; [`ThreadGroup::new`] makes all of them.
/// Sums add the ranks' values in rank order (in f64), so every rank gets
/// the same result. An abort panics in the aborting thread with its
/// message; the other ranks then block, as MPI ranks would be killed:
/// tests only abort on rank counts of one.
#[derive(Clone)]
pub struct ThreadGroup {
    rank: usize,
    shared: Arc<Shared>,
}

impl ThreadGroup {
    /// The `size` ranks of a new group, rank 0 first; give each to its own thread.
    pub fn new(size: usize) -> Vec<ThreadGroup> {
        let shared = Arc::new(Shared {
            size,
            barrier: Barrier::new(size),
            slots: Mutex::new(vec![Vec::new(); size]),
            aborted: Mutex::new(None),
        });
        (0..size)
            .map(|rank| ThreadGroup {
                rank,
                shared: shared.clone(),
            })
            .collect()
    }

    fn sum(&self, values: &[f64]) -> Vec<f64> {
        let s = &self.shared;
        s.slots.lock().unwrap_or_else(|e| e.into_inner())[self.rank] = values.to_vec();
        s.barrier.wait();
        let total = {
            let slots = s.slots.lock().unwrap_or_else(|e| e.into_inner());
            let mut total = vec![0f64; values.len()];
            for slot in slots.iter() {
                total.iter_mut().zip(slot).for_each(|(t, v)| *t += v);
            }
            total
        };
        // Nobody writes the next sum's slots before everyone has read these.
        s.barrier.wait();
        total
    }
}

impl Communicator for ThreadGroup {
    fn rank(&self) -> usize {
        self.rank
    }
    fn size(&self) -> usize {
        self.shared.size
    }
    fn sum_f32(&self, values: &mut [f32]) {
        let wide: Vec<f64> = values.iter().map(|&v| v as f64).collect();
        for (v, s) in values.iter_mut().zip(self.sum(&wide)) {
            *v = s as f32;
        }
    }
    fn sum_f64(&self, values: &mut [f64]) {
        let total = self.sum(values);
        values.copy_from_slice(&total);
    }
    fn barrier(&self) {
        self.shared.barrier.wait();
    }
    fn abort(&self, message: &str) {
        let mut first = self
            .shared
            .aborted
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        first.get_or_insert_with(|| message.to_string());
        if self.shared.size > 1 {
            panic!("rank {} aborted the group: {message}", self.rank);
        }
    }
}
