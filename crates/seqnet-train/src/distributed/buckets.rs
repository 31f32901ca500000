//! Gradient reduction overlapped with backward (PyTorch DDP's buckets):
//! the learnables are grouped, in the order backward finishes them, into
//! buckets of about `GradientBucketSize` megabytes; each bucket's sum over
//! the ranks starts as soon as its last layer's backward is done, on the
//! [`Funnel`]'s communication thread, while the training thread goes on
//! with the layers before it. Every element is the same sum over ranks as
//! in [`super::sum_gradients`]: only when it is computed changes.

use super::Communicator;
use crate::error::Result;
use seqnet_core::{Learnable, Network};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;

/// A collective for the communication thread, with where to send its result.
enum Request {
    SumF32(Vec<f32>, Sender<Vec<f32>>),
    SumF64(Vec<f64>, Sender<Vec<f64>>),
    Barrier(Sender<()>),
}

/// A [`Communicator`] whose collectives all run, in the order they were
/// asked for, on one thread of its own: the training thread can start a
/// sum ([`Communicator::start_sum_f32`]) and go on computing, and batch
/// normalization's reductions during backward queue behind the gradient
/// buckets already started, in the same order on every rank. (MPI: one
/// thread at a time calls MPI, `MPI_THREAD_SERIALIZED`.)
pub struct Funnel {
    inner: Arc<dyn Communicator>,
    requests: Option<Sender<Request>>,
    thread: Option<JoinHandle<()>>,
}

impl Funnel {
    /// Starts the communication thread over `inner`.
    pub fn new(inner: Arc<dyn Communicator>) -> Funnel {
        let (tx, rx) = channel::<Request>();
        let comm = inner.clone();
        let thread = std::thread::spawn(move || {
            // Ends when the Funnel drops its sender. A result nobody waits
            // for any more (the training thread failed) is dropped.
            for request in rx {
                match request {
                    Request::SumF32(mut v, back) => {
                        comm.sum_f32(&mut v);
                        let _ = back.send(v);
                    }
                    Request::SumF64(mut v, back) => {
                        comm.sum_f64(&mut v);
                        let _ = back.send(v);
                    }
                    Request::Barrier(back) => {
                        comm.barrier();
                        let _ = back.send(());
                    }
                }
            }
        });
        Funnel {
            inner,
            requests: Some(tx),
            thread: Some(thread),
        }
    }

    fn ask<T>(&self, make: impl FnOnce(Sender<T>) -> Request) -> Receiver<T> {
        let (tx, rx) = channel();
        if let Some(r) = &self.requests {
            // A send fails only if the thread has ended (a panic in the
            // communicator): the receiver then reports it.
            let _ = r.send(make(tx));
        }
        rx
    }
}

/// The result of a collective, or the communication thread's death.
fn wait<T>(rx: Receiver<T>) -> T {
    rx.recv()
        .expect("the gradient communication thread ended during a collective")
}

impl Communicator for Funnel {
    fn rank(&self) -> usize {
        self.inner.rank()
    }
    fn size(&self) -> usize {
        self.inner.size()
    }
    fn sum_f32(&self, values: &mut [f32]) {
        let sum = wait(self.ask(|tx| Request::SumF32(values.to_vec(), tx)));
        values.copy_from_slice(&sum);
    }
    fn sum_f64(&self, values: &mut [f64]) {
        let sum = wait(self.ask(|tx| Request::SumF64(values.to_vec(), tx)));
        values.copy_from_slice(&sum);
    }
    fn barrier(&self) {
        wait(self.ask(Request::Barrier));
    }
    fn abort(&self, message: &str) {
        self.inner.abort(message);
    }
    fn start_sum_f32(&self, values: Vec<f32>) -> Receiver<Vec<f32>> {
        self.ask(|tx| Request::SumF32(values, tx))
    }
    fn threads_allowed(&self) -> bool {
        self.inner.threads_allowed()
    }
}

impl Drop for Funnel {
    fn drop(&mut self) {
        self.requests = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One bucket in flight: the layers whose gradients it holds, in order,
/// and its sum to come.
struct InFlight {
    layers: Vec<usize>,
    sum: Receiver<Vec<f32>>,
}

/// [`Network::backward`], then every gradient summed over `comm`'s ranks,
/// in buckets of at least `bucket_elements` values (a learnable is never
/// split) started as backward finishes them. With `comm` a [`Funnel`], the
/// sums run while backward goes on; with another communicator each bucket
/// is summed on the spot.
pub fn backward_bucketed(
    network: &mut Network,
    comm: &dyn Communicator,
    bucket_elements: usize,
) -> Result<()> {
    let mut flying: Vec<InFlight> = Vec::new();
    let mut values: Vec<f32> = Vec::new();
    let mut layers: Vec<usize> = Vec::new();
    network.backward_with(&mut |layer, learnables: &[&Learnable]| {
        if learnables.is_empty() {
            return;
        }
        for p in learnables {
            match p.grad.as_slice() {
                Some(g) => values.extend_from_slice(g),
                None => values.extend(p.grad.iter().copied()),
            }
        }
        layers.push(layer);
        if values.len() >= bucket_elements {
            flying.push(InFlight {
                layers: std::mem::take(&mut layers),
                sum: comm.start_sum_f32(std::mem::take(&mut values)),
            });
        }
    })?;
    if !layers.is_empty() {
        flying.push(InFlight {
            layers,
            sum: comm.start_sum_f32(values),
        });
    }
    let firsts = first_learnable_of_layers(network);
    let mut params = network.learnables_mut();
    for bucket in flying {
        let sum = wait(bucket.sum);
        let mut at = 0;
        for layer in bucket.layers {
            for (_, p) in &mut params[firsts[layer]..firsts[layer + 1]] {
                let n = p.grad.len();
                let sum = &sum[at..at + n];
                match p.grad.as_slice_mut() {
                    Some(g) => g.copy_from_slice(sum),
                    None => p.grad.iter_mut().zip(sum).for_each(|(g, s)| *g = *s),
                }
                at += n;
            }
        }
    }
    Ok(())
}

/// For each layer index, where its learnables start in
/// [`Network::learnables_mut`]'s list (one more entry: the list's length).
fn first_learnable_of_layers(network: &Network) -> Vec<usize> {
    let n = network.graph().layers.len();
    let mut firsts = Vec::with_capacity(n + 1);
    let mut at = 0;
    for layer in 0..n {
        firsts.push(at);
        at += network.learnables_of(layer).len();
    }
    firsts.push(at);
    firsts
}
