//! A team of threads that meet at a barrier ([`team`], [`SpinBarrier`]): the
//! caller's thread and the helper thread, for passes whose threads need each
//! other's results at every time step (the LSTM's backward).

use super::helper::with_helper;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A barrier for a fixed team of threads that spins (then yields) instead of
/// sleeping: the recurrent passes meet at it once per time step. It adds up
/// the time the team's first thread waits, so that [`team`] can tell when the
/// host is too busy for the team to run together.
#[derive(Debug)]
pub struct SpinBarrier {
    threads: usize,
    arrived: AtomicUsize,
    generation: AtomicUsize,
    /// Nanoseconds thread 0 spent waiting.
    waited_ns: AtomicU64,
}

impl SpinBarrier {
    /// A barrier for `threads` threads.
    pub fn new(threads: usize) -> Self {
        SpinBarrier {
            threads,
            arrived: 0.into(),
            generation: 0.into(),
            waited_ns: 0.into(),
        }
    }

    /// [`SpinBarrier::wait`] for thread `index` of the team (thread 0's waits are timed).
    pub fn wait_as(&self, index: usize) {
        if index == 0 && self.threads > 1 {
            let t0 = Instant::now();
            self.wait();
            self.waited_ns
                .fetch_add(t0.elapsed().as_nanos() as u64, Ordering::Relaxed);
        } else {
            self.wait();
        }
    }

    /// Waits until every thread of the team has called `wait` as often.
    pub fn wait(&self) {
        use Ordering::{AcqRel, Acquire, Release};
        if self.threads <= 1 {
            return;
        }
        let gen = self.generation.load(Acquire);
        if self.arrived.fetch_add(1, AcqRel) + 1 == self.threads {
            self.arrived.store(0, Release);
            self.generation.fetch_add(1, Release);
            return;
        }
        let mut spins = 0u32;
        while self.generation.load(Acquire) == gen {
            if spins < 20_000 {
                std::hint::spin_loop();
                spins += 1;
            } else {
                // The host is oversubscribed: let the other thread run.
                std::thread::yield_now();
            }
        }
    }
}

/// How a [`team`] fared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TeamReport {
    /// Threads the team ran on (1 when one was asked for, or when the
    /// helper came late).
    pub size: usize,
    /// Whether thread 0 spent more than half the run waiting at the barrier:
    /// the host is too busy for the team (see [`super::ThreadPolicy`]).
    pub starved: bool,
}

/// Runs `f(index, size, barrier)` on a team of `size` threads that may meet
/// at the shared barrier: the caller's thread (index 0) and, when `threads`
/// asks for more, the helper thread. `size` is 2 when the helper starts
/// within 200 µs, else 1 (the caller runs alone and the job is withdrawn), so
/// a team never waits at a barrier for a thread that has not started. Thread
/// 0's waits are timed ([`SpinBarrier::wait_as`]) and reported. At most 2
/// threads.
pub fn team<F: Fn(usize, usize, &SpinBarrier) + Sync>(threads: usize, f: F) -> TeamReport {
    let alone = TeamReport {
        size: 1,
        starved: false,
    };
    if threads <= 1 {
        f(0, 1, &SpinBarrier::new(1));
        return alone;
    }
    let barrier = SpinBarrier::new(2);
    let job = || f(1, 2, &barrier);
    with_helper(&job, |posted| {
        let t0 = Instant::now();
        while !posted.entered() {
            let late = !posted.available() || t0.elapsed() > Duration::from_micros(200);
            if late && posted.withdraw() {
                f(0, 1, &SpinBarrier::new(1));
                return alone;
            }
            std::hint::spin_loop();
        }
        let t0 = Instant::now();
        f(0, 2, &barrier);
        let total = t0.elapsed().as_nanos() as u64;
        let waited = barrier.waited_ns.load(Ordering::Relaxed);
        // With the work split in two, a pass takes `W/2 + waited`; alone it
        // would take about `W`: the team loses once it waits over half the pass.
        TeamReport {
            size: 2,
            starved: waited * 2 > total,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn team_meets_at_the_barrier() {
        let counter = AtomicUsize::new(0);
        let report = team(2, |_, size, b| {
            for round in 0..100 {
                counter.fetch_add(1, Ordering::SeqCst);
                b.wait();
                // Everyone of the team (2, or 1 when the worker came late) counted.
                assert_eq!(counter.load(Ordering::SeqCst), size * (round + 1));
                b.wait();
            }
        });
        assert_eq!(counter.load(Ordering::SeqCst), report.size * 100);
    }
}
