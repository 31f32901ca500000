//! The second thread of the kernels' passes: one persistent helper thread
//! that takes half of a pass's work while the caller does the other half.
//!
//! Why not a rayon worker: an idle rayon worker sleeps, and on a virtual
//! machine a sleeping thread's CPU halts; waking it took 30 µs on a quiet
//! host and 1–5 ms on a busy one (measured: `lstm-infer` passes of 2.8 ms
//! where the worker arrived too late to help at all). The helper instead
//! waits for the next job by spinning, then yielding its CPU to any thread
//! that wants it, for [`SPIN`] after each job before it sleeps, as OpenMP
//! runtimes do between parallel regions (PyTorch's `KMP_BLOCKTIME`, ONNX
//! Runtime's spinning thread pool). Back-to-back passes (a prediction loop,
//! training) find it awake.
//!
//! On a busy host, waiting by yielding costs the thread that does the work:
//! the scheduler gives the process (its session's group, with autogroup) a
//! share of the CPUs, and a thread yielding in a loop spends that share
//! (profiled: 8 % of `lstm-train-step`'s CPU time went to the caller's
//! yields at the end of the forward pass, at load 8). So the caller,
//! waiting for the helper to finish its part, goes to sleep as soon as a
//! yield shows that another thread wanted the CPU (the yield took longer
//! than [`BUSY_YIELD`]), and the helper wakes it; the decision is taken anew
//! in every wait, nothing is carried from one pass to the next.
//!
//! One caller at a time: a caller that finds the helper taken by another
//! thread runs alone.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering::*};
use std::sync::{Mutex, OnceLock};
use std::thread::Thread;
use std::time::{Duration, Instant};

/// How long the helper stays awake (spinning, then yielding) after a job.
const SPIN: Duration = Duration::from_millis(2);
/// The first part of [`SPIN`], spent in a pure spin loop.
const HOT: Duration = Duration::from_micros(50);
/// A yield that takes longer than this gave the CPU to another thread: the
/// host is busy, and a waiting thread goes to sleep instead of yielding on.
const BUSY_YIELD: Duration = Duration::from_micros(20);

/// Yields the CPU; returns whether another thread ran meanwhile (the yield
/// took longer than [`BUSY_YIELD`]).
fn yield_was_busy() -> bool {
    let t0 = Instant::now();
    std::thread::yield_now();
    t0.elapsed() > BUSY_YIELD
}

thread_local! {
    /// How this thread's waits in [`with_helper`] yield ([`yield_was_busy`];
    /// the tests swap in a yield that always reports a busy host).
    static WAIT_YIELD: std::cell::Cell<fn() -> bool> = const { std::cell::Cell::new(yield_was_busy) };
}

/// A job's state (one job at a time).
const IDLE: u8 = 0;
const POSTED: u8 = 1;
const ENTERED: u8 = 2;
const WITHDRAWN: u8 = 3;
const DONE: u8 = 4;

/// A job for the helper: a borrowed closure, valid while the caller waits in
/// [`with_helper`].
#[derive(Clone, Copy)]
struct JobPtr(*const (dyn Fn() + Sync));
// SAFETY: the closure is `Sync`, and the caller keeps it alive until the
// helper has finished with it (see `with_helper`).
unsafe impl Send for JobPtr {}

struct Shared {
    /// Bumped for every posted job.
    seq: AtomicU64,
    state: AtomicU8,
    job: Mutex<Option<JobPtr>>,
    parked: AtomicBool,
    /// The caller waiting in [`with_helper`] for the job to finish, asleep
    /// (the helper wakes it when the job is DONE).
    caller: Mutex<Option<Thread>>,
    caller_parked: AtomicBool,
    /// Held by the one caller using the helper.
    busy: Mutex<()>,
    /// A panic of the job on the helper thread, for the caller to raise again.
    panic: Mutex<Option<Box<dyn std::any::Any + Send>>>,
}

static SHARED: Shared = Shared {
    seq: AtomicU64::new(0),
    state: AtomicU8::new(IDLE),
    job: Mutex::new(None),
    parked: AtomicBool::new(false),
    caller: Mutex::new(None),
    caller_parked: AtomicBool::new(false),
    busy: Mutex::new(()),
    panic: Mutex::new(None),
};

/// The helper thread, started on first use (`None` when it cannot be spawned).
fn helper() -> Option<&'static Thread> {
    static THREAD: OnceLock<Option<Thread>> = OnceLock::new();
    THREAD
        .get_or_init(|| {
            std::thread::Builder::new()
                .name("seqnet-helper".into())
                .spawn(helper_loop)
                .ok()
                .map(|h| h.thread().clone())
        })
        .as_ref()
}

fn helper_loop() {
    let s = &SHARED;
    // Not the current count: the first job may have been posted before this
    // thread started.
    let mut seen = 0;
    let mut since = Instant::now();
    loop {
        let now = s.seq.load(SeqCst);
        if now == seen {
            let idle = since.elapsed();
            if idle < HOT {
                std::hint::spin_loop();
            } else if idle < SPIN {
                // (On a busy host, one yield here usually outlasts `SPIN`.)
                std::thread::yield_now();
            } else {
                s.parked.store(true, SeqCst);
                if s.seq.load(SeqCst) == seen {
                    std::thread::park();
                }
                s.parked.store(false, SeqCst);
                since = Instant::now();
            }
            continue;
        }
        seen = now;
        if s.state
            .compare_exchange(POSTED, ENTERED, AcqRel, Acquire)
            .is_ok()
        {
            let job = *s.job.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(JobPtr(f)) = job {
                // SAFETY: the job was ENTERED here, so the caller in
                // `with_helper` waits for DONE before the closure goes away.
                let f = unsafe { &*f };
                // A panic in the job must not kill the helper nor leave the
                // caller waiting: the caller sees DONE and raises it again.
                if let Err(payload) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
                    *s.panic.lock().unwrap_or_else(|e| e.into_inner()) = Some(payload);
                }
            }
            s.state.store(DONE, SeqCst);
            if s.caller_parked.load(SeqCst) {
                if let Some(t) = &*s.caller.lock().unwrap_or_else(|e| e.into_inner()) {
                    t.unpark();
                }
            }
        }
        since = Instant::now();
    }
}

/// What the caller's side sees of a posted job.
pub struct Posted {
    active: bool,
}

impl Posted {
    /// Whether the helper has started the job (the tests' view: `share`
    /// needs no answer, since its caller takes the parts left).
    #[cfg(test)]
    pub fn entered(&self) -> bool {
        self.active && matches!(SHARED.state.load(Acquire), ENTERED | DONE)
    }

    /// Takes the job back if the helper has not started it: `true` when the
    /// helper will not run it.
    pub fn withdraw(&self) -> bool {
        !self.active
            || matches!(
                SHARED
                    .state
                    .compare_exchange(POSTED, WITHDRAWN, AcqRel, Acquire),
                Ok(_) | Err(WITHDRAWN)
            )
    }

    /// Whether a helper was there to post the job to at all.
    #[cfg(test)]
    pub fn available(&self) -> bool {
        self.active
    }
}

/// Waits until the helper has finished the job it entered: spinning, then
/// yielding, and asleep once a yield shows the host busy (the helper wakes
/// a sleeping caller when the job is DONE). `yield_busy` yields and tells
/// whether the host is busy ([`yield_was_busy`]; tests force either answer).
fn wait_done(yield_busy: fn() -> bool) {
    let s = &SHARED;
    let t0 = Instant::now();
    while s.state.load(Acquire) != DONE {
        if t0.elapsed() < HOT {
            std::hint::spin_loop();
        } else if yield_busy() {
            *s.caller.lock().unwrap_or_else(|e| e.into_inner()) = Some(std::thread::current());
            s.caller_parked.store(true, SeqCst);
            // Parks until the helper's unpark (which may come before the
            // park: the token then makes it return at once) or spuriously.
            while s.state.load(SeqCst) != DONE {
                std::thread::park();
            }
            s.caller_parked.store(false, SeqCst);
            return;
        }
    }
}

/// Posts `job` for the helper thread, runs `caller` here, then withdraws the
/// job if the helper has not started it, or waits until it has finished.
/// Without a helper (another caller holds it, or it could not be started)
/// the job is never run.
pub fn with_helper<R>(job: &(dyn Fn() + Sync), caller: impl FnOnce(&Posted) -> R) -> R {
    let s = &SHARED;
    let busy = match s.busy.try_lock() {
        Ok(g) => Some(g),
        // A caller panicked while it held the helper (after the helper had
        // finished with its job): the helper is free again.
        Err(std::sync::TryLockError::Poisoned(e)) => Some(e.into_inner()),
        Err(std::sync::TryLockError::WouldBlock) => None,
    };
    let guard = match (busy, helper()) {
        (Some(g), Some(t)) => Some((g, t)),
        _ => None,
    };
    let Some((_busy, thread)) = guard else {
        return caller(&Posted { active: false });
    };
    let ptr: *const (dyn Fn() + Sync + '_) = job;
    // SAFETY: only the lifetime is erased (same fat pointer); `job` outlives
    // every use the helper makes of it, since this function does not return
    // (nor unwind) before the job is withdrawn or DONE (see `Finish`).
    let ptr: *const (dyn Fn() + Sync) = unsafe { std::mem::transmute(ptr) };
    *s.job.lock().unwrap_or_else(|e| e.into_inner()) = Some(JobPtr(ptr));
    s.state.store(POSTED, SeqCst);
    s.seq.fetch_add(1, SeqCst);
    if s.parked.load(SeqCst) {
        thread.unpark();
    }
    let posted = Posted { active: true };
    // Waits for the helper even when `caller` panics.
    struct Finish<'a>(&'a Posted);
    impl Drop for Finish<'_> {
        fn drop(&mut self) {
            if !self.0.withdraw() {
                wait_done(WAIT_YIELD.with(|y| y.get()));
            }
            *SHARED.job.lock().unwrap_or_else(|e| e.into_inner()) = None;
            SHARED.state.store(IDLE, Release);
        }
    }
    let finish = Finish(&posted);
    let out = caller(finish.0);
    drop(finish);
    if let Some(payload) = s.panic.lock().unwrap_or_else(|e| e.into_inner()).take() {
        std::panic::resume_unwind(payload);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// The tests here take turns (other tests of the crate may still hold
    /// the helper, and then a test's caller runs alone).
    static TURN: Mutex<()> = Mutex::new(());

    /// Waits up to `limit` for the helper to enter the posted job.
    fn wait_entered(p: &Posted, limit: Duration) -> bool {
        let t0 = Instant::now();
        while p.available() && !p.entered() && t0.elapsed() < limit {
            std::hint::spin_loop();
        }
        p.entered()
    }

    #[test]
    fn the_helper_runs_a_job_or_it_is_withdrawn() {
        let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
        for _ in 0..200 {
            let ran = AtomicUsize::new(0);
            let job = || {
                ran.fetch_add(1, SeqCst);
            };
            let entered = with_helper(&job, |p| {
                wait_entered(p, Duration::from_millis(50)) || !p.withdraw()
            });
            // Once `with_helper` returns, the job ran exactly when it was entered.
            assert_eq!(ran.load(SeqCst), usize::from(entered));
        }
    }

    #[test]
    fn a_panic_on_the_helper_reaches_the_caller_and_the_helper_lives_on() {
        let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
        let job = || panic!("job failed");
        let caught = std::panic::catch_unwind(|| {
            with_helper(&job, |p| wait_entered(p, Duration::from_secs(5)))
        });
        // Entered (the helper was free and awake within 5 s): the panic comes back.
        if let Err(payload) = caught {
            assert_eq!(payload.downcast_ref::<&str>(), Some(&"job failed"));
        }
        let ran = AtomicUsize::new(0);
        let job = || {
            ran.fetch_add(1, SeqCst);
        };
        let entered = with_helper(&job, |p| {
            wait_entered(p, Duration::from_secs(5)) || !p.withdraw()
        });
        assert_eq!(ran.load(SeqCst), usize::from(entered));
    }

    /// On a busy host the caller sleeps until the helper has finished, and
    /// the helper wakes it (a yield that always reports a busy host).
    #[test]
    fn a_sleeping_caller_is_woken_when_the_job_is_done() {
        let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
        fn busy() -> bool {
            std::thread::yield_now();
            true
        }
        WAIT_YIELD.with(|y| y.set(busy));
        for _ in 0..20 {
            let ran = AtomicUsize::new(0);
            let job = || {
                std::thread::sleep(Duration::from_millis(2));
                ran.fetch_add(1, SeqCst);
            };
            let entered = with_helper(&job, |p| {
                wait_entered(p, Duration::from_secs(5)) || !p.withdraw()
            });
            // Returned only after the job finished (or it never ran).
            assert_eq!(ran.load(SeqCst), usize::from(entered));
        }
        WAIT_YIELD.with(|y| y.set(yield_was_busy));
    }

    #[test]
    fn a_withdrawn_job_never_runs() {
        let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
        for _ in 0..200 {
            let ran = AtomicUsize::new(0);
            let job = || {
                ran.fetch_add(1, SeqCst);
            };
            let withdrawn = with_helper(&job, |p| p.withdraw());
            if withdrawn {
                assert_eq!(ran.load(SeqCst), 0);
            }
        }
    }
}
