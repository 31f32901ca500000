//! [`share`]: parts of a pass that never meet, taken by the caller's thread
//! and the helper thread.

use super::helper::with_helper;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// Runs `f(part)` for every part in `0..parts` on the caller's thread and the
/// helper thread, each taking the next part not yet taken: parts that never
/// meet (the rows of a recurrent pass). When the helper starts late, the
/// caller takes its parts too, so nobody waits for a thread that is not
/// scheduled. One thread only when rayon's pool has one
/// (`RAYON_NUM_THREADS=1`).
pub fn share<F: Fn(usize) + Sync>(parts: usize, f: F) {
    let next = AtomicUsize::new(0);
    let work = || loop {
        let part = next.fetch_add(1, Relaxed);
        if part >= parts {
            break;
        }
        f(part);
    };
    if parts <= 1 || rayon::current_num_threads() < 2 {
        work();
        return;
    }
    with_helper(&work, |_| work());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_part_runs_once() {
        let runs: Vec<AtomicUsize> = (0..7).map(|_| AtomicUsize::new(0)).collect();
        share(runs.len(), |p| {
            runs[p].fetch_add(1, Relaxed);
        });
        assert!(runs.iter().all(|r| r.load(Relaxed) == 1));
    }
}
