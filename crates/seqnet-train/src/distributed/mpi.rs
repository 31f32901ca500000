//! The [`Communicator`] over MPI (feature `mpi`): the ranks are the
//! processes `mpirun -np N` or `srun` started, talking through the system's
//! MPI library (rsmpi over Open MPI, MPICH, …).

use super::{shard_range, Communicator};
use crate::error::{Error, Result};
use mpi::collective::SystemOperation;
use mpi::environment::Universe;
use mpi::point_to_point::send_receive_into;
use mpi::topology::{Process, SimpleCommunicator};
use mpi::traits::{Communicator as _, CommunicatorCollectives};
use mpi::Threading;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// The most elements one `MPI_Allreduce` sums (MPI counts are `int`):
/// longer sums run piece by piece. Not smaller: on 2 ranks, 37.5 MB summed
/// in pieces of 8 or 16 MB cost more CPU time than in one call (Open MPI
/// picks another algorithm for the smaller messages), see
/// docs/DISTRIBUTED.md "Open MPI settings".
const PIECE: usize = 1 << 30;

/// MPI, initialized for this process until dropped (dropping finalizes it):
/// hold it for as long as training runs, then drop it before the process
/// ends. Only one can exist at a time.
pub struct MpiSession {
    _universe: Universe,
    world: Arc<MpiWorld>,
}

impl MpiSession {
    /// Initializes MPI, asking for `MPI_THREAD_SERIALIZED`: the gradient
    /// buckets' [`super::Funnel`] calls MPI from its communication thread,
    /// one thread at a time. An MPI library giving less can still train
    /// without buckets. A process not started by an MPI launcher is rank 0
    /// of 1.
    pub fn start() -> Result<MpiSession> {
        let (universe, threading) = mpi::initialize_with_threading(Threading::Serialized)
            .ok_or_else(|| Error::InvalidOption {
                option: "ExecutionEnvironment",
                message: "MPI is already initialized in this process".into(),
            })?;
        let world = universe.world();
        super::phases::set_rank(world.rank() as usize, world.size() as usize);
        let world = Arc::new(MpiWorld {
            rank: world.rank() as usize,
            size: world.size() as usize,
            serialized: threading >= Threading::Serialized,
            scratch: Mutex::new(Vec::new()),
            gradient_time: Tally::default(),
            small_time: Tally::default(),
        });
        Ok(MpiSession {
            _universe: universe,
            world,
        })
    }

    /// `MPI_COMM_WORLD` as a communicator.
    pub fn world(&self) -> Arc<dyn Communicator> {
        self.world.clone()
    }
}

impl Drop for MpiSession {
    /// With the environment variable `SEQNET_MPI_TIMES` set, each rank
    /// prints the time it spent in collectives (moving and adding data, and
    /// waiting for the other ranks), to see where a data-parallel run's time
    /// goes (docs/DISTRIBUTED.md "Sharded solver").
    fn drop(&mut self) {
        if !super::phases::enabled() {
            return;
        }
        super::phases::mark("finalizing");
        let w = &self.world;
        let (g, gn) = w.gradient_time.read();
        let (s, sn) = w.small_time.read();
        eprintln!(
            "seqnet: rank {} of {}: {g:.3} s in {gn} f32 collectives (gradients, weights, solver state), {s:.3} s in {sn} f64 reductions (loss weights, metrics, batch normalization, clipping norms, stop flags)",
            w.rank, w.size
        );
    }
}

/// Time spent in one kind of MPI call, and the number of calls.
#[derive(Default)]
struct Tally {
    nanos: AtomicU64,
    calls: AtomicU64,
}

impl Tally {
    /// Runs `f`, counting its time.
    fn time<T>(&self, f: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let out = f();
        let nanos = start.elapsed().as_nanos().min(u64::MAX as u128) as u64;
        self.nanos.fetch_add(nanos, Ordering::Relaxed);
        self.calls.fetch_add(1, Ordering::Relaxed);
        out
    }
    /// Seconds and calls so far.
    fn read(&self) -> (f64, u64) {
        let nanos = self.nanos.load(Ordering::Relaxed);
        (nanos as f64 * 1e-9, self.calls.load(Ordering::Relaxed))
    }
}

/// `MPI_COMM_WORLD`; only [`MpiSession::start`] makes one, so MPI is
/// initialized whenever it is used.
pub struct MpiWorld {
    rank: usize,
    size: usize,
    /// Whether MPI gave `MPI_THREAD_SERIALIZED` (or more).
    serialized: bool,
    /// The send buffer of an in-place sum (rsmpi has no `MPI_IN_PLACE`),
    /// kept from call to call: no allocation and page faults per call.
    scratch: Mutex<Vec<f32>>,
    /// Time in f32 collectives (`SEQNET_MPI_TIMES`, see [`MpiSession`]'s drop).
    gradient_time: Tally,
    /// Time in f64 reductions.
    small_time: Tally,
}

fn world() -> SimpleCommunicator {
    SimpleCommunicator::world()
}

impl Communicator for MpiWorld {
    fn rank(&self) -> usize {
        self.rank
    }
    fn size(&self) -> usize {
        self.size
    }
    fn sum_f32(&self, values: &mut [f32]) {
        self.gradient_time.time(|| {
            let world = world();
            let mut scratch = self.scratch.lock().unwrap_or_else(|e| e.into_inner());
            for piece in values.chunks_mut(PIECE) {
                scratch.clear();
                scratch.extend_from_slice(piece);
                world.all_reduce_into(&scratch[..], piece, SystemOperation::sum());
            }
        })
    }
    fn sum_f32_into(&self, values: &[f32], sums: &mut [f32]) {
        self.gradient_time.time(|| {
            let world = world();
            for (piece, sum) in values.chunks(PIECE).zip(sums.chunks_mut(PIECE)) {
                world.all_reduce_into(piece, sum, SystemOperation::sum());
            }
        })
    }
    /// A ring over point-to-point messages (`MPI_Sendrecv`): `N−1` steps,
    /// each passing one shard to the next rank and adding the one received
    /// from the previous rank to this rank's partial sum of it. Open MPI
    /// 4.1's `MPI_Reduce_scatter_block` cost 1.5–2× its ring allreduce
    /// here (docs/DISTRIBUTED.md "Open MPI settings"); this moves the bytes
    /// of half a ring allreduce.
    fn reduce_scatter_f32(&self, values: &mut [f32]) {
        self.gradient_time.time(|| {
            let (n, r) = (self.size, self.rank);
            if n < 2 {
                return;
            }
            let world = world();
            let (right, left) = neighbours(&world, r, n);
            let longest = values.len().div_ceil(n);
            let mut scratch = self.scratch.lock().unwrap_or_else(|e| e.into_inner());
            for step in 0..n - 1 {
                let send = shard_range(values.len(), (r + 2 * n - step - 1) % n, n);
                let recv = shard_range(values.len(), (r + 2 * n - step - 2) % n, n);
                if scratch.len() < recv.len() {
                    scratch.resize(recv.len(), 0.0);
                }
                let received = &mut scratch[..recv.len()];
                exchange(&values[send], &right, received, &left, longest);
                for (v, x) in values[recv].iter_mut().zip(received.iter()) {
                    *v += *x;
                }
            }
        })
    }
    /// A ring over point-to-point messages: `N−1` steps, each passing the
    /// shard received last (this rank's own first) to the next rank,
    /// received straight into place.
    fn all_gather_f32(&self, values: &mut [f32]) {
        self.gradient_time.time(|| {
            let (n, r) = (self.size, self.rank);
            if n < 2 {
                return;
            }
            let world = world();
            let (right, left) = neighbours(&world, r, n);
            let longest = values.len().div_ceil(n);
            for step in 0..n - 1 {
                let send = shard_range(values.len(), (r + n - step) % n, n);
                let recv = shard_range(values.len(), (r + 2 * n - step - 1) % n, n);
                let (send, recv) = disjoint(values, send, recv);
                exchange(send, &right, recv, &left, longest);
            }
        })
    }
    fn sum_f64(&self, values: &mut [f64]) {
        self.small_time.time(|| {
            let send = values.to_vec();
            world().all_reduce_into(&send[..], values, SystemOperation::sum());
        })
    }
    fn barrier(&self) {
        world().barrier();
    }
    fn threads_allowed(&self) -> bool {
        self.serialized
    }
    fn abort(&self, message: &str) {
        eprintln!(
            "seqnet: {message}\nseqnet: stopping all {} processes (MPI_Abort); the last checkpoint written stays as it was",
            self.size
        );
        world().abort(1);
    }
}

/// The next and the previous rank of rank `r` of `n` in the ring.
fn neighbours(world: &SimpleCommunicator, r: usize, n: usize) -> (Process<'_>, Process<'_>) {
    (
        world.process_at_rank(((r + 1) % n) as i32),
        world.process_at_rank(((r + n - 1) % n) as i32),
    )
}

/// Sends `send` to `to` while receiving `recv` (its length known) from
/// `from`, in pieces of at most [`PIECE`] elements (MPI counts are `int`):
/// as many as the longest shard (`longest` elements) needs, the same number
/// on every rank (empty pieces keep the calls paired).
fn exchange(send: &[f32], to: &Process<'_>, recv: &mut [f32], from: &Process<'_>, longest: usize) {
    for k in 0..longest.div_ceil(PIECE).max(1) {
        let piece = |len: usize| (k * PIECE).min(len)..((k + 1) * PIECE).min(len);
        let (s, r) = (piece(send.len()), piece(recv.len()));
        send_receive_into(&send[s], to, &mut recv[r], from);
    }
}

/// The two disjoint ranges `a` and `b` of `values`, the first to read and
/// the second to write.
fn disjoint(values: &mut [f32], a: Range<usize>, b: Range<usize>) -> (&[f32], &mut [f32]) {
    if a.start < b.start {
        let (low, high) = values.split_at_mut(b.start);
        (&low[a], &mut high[..b.len()])
    } else {
        let (low, high) = values.split_at_mut(a.start);
        (&high[..a.len()], &mut low[b])
    }
}
