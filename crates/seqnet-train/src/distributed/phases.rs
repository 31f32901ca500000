//! Timestamps of a run's phases, to see where a data-parallel run's time
//! goes outside the training loop (launch, MPI's start and end, reading the
//! data's index, writing the model): with the environment variable
//! `SEQNET_MPI_TIMES` set, [`mark`] notes the wall clock at each phase and
//! [`report`] gives them as one line per process (docs/DISTRIBUTED.md
//! "Where the time outside the loop goes"). Set to a Unix time (the
//! launcher's `date +%s.%N`), the line also gives each phase's time since
//! that launch; any other value, since the first mark.

use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// The phases marked so far: (what ended, Unix seconds, the process's CPU
/// seconds).
static PHASES: Mutex<Vec<(&'static str, f64, f64)>> = Mutex::new(Vec::new());
/// This process's (rank, size), once MPI has started.
static RANK: Mutex<Option<(usize, usize)>> = Mutex::new(None);

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The CPU seconds (user and system, all threads) this process has used,
/// from Linux's `/proc/self/stat` in clock ticks (assumed 100 per second,
/// as on every Linux distribution); 0 elsewhere.
fn cpu() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // The command name (field 2) may hold spaces: count from its ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    // utime and stime are fields 14 and 15, the 12th and 13th after ')'.
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// The launch time `SEQNET_MPI_TIMES` gives (a Unix time), if it is one.
fn launch() -> Option<f64> {
    let v = std::env::var("SEQNET_MPI_TIMES").ok()?;
    v.trim().parse::<f64>().ok().filter(|&t| t > 1e9)
}

/// Whether phases are being marked (`SEQNET_MPI_TIMES` set).
pub fn enabled() -> bool {
    std::env::var_os("SEQNET_MPI_TIMES").is_some()
}

/// Notes that `phase` ended now (when [`enabled`]).
pub fn mark(phase: &'static str) {
    if enabled() {
        if let Ok(mut p) = PHASES.lock() {
            p.push((phase, now(), cpu()));
        }
    }
}

/// Notes this process's rank among `size` (for [`report`]).
pub fn set_rank(rank: usize, size: usize) {
    if let Ok(mut r) = RANK.lock() {
        *r = Some((rank, size));
    }
}

/// The phases marked, as one line: each phase's seconds since the launch
/// (or the first mark) and, in parentheses, the wall and CPU seconds since
/// the previous mark. `None` when nothing was marked.
pub fn report() -> Option<String> {
    let phases = PHASES.lock().ok()?.clone();
    let first = phases.first()?.1;
    let origin = launch().unwrap_or(first);
    let who = match RANK.lock().ok().and_then(|r| *r) {
        Some((rank, size)) => format!("rank {rank} of {size}"),
        None => "one process".to_string(),
    };
    let since = if launch().is_some() {
        "launch"
    } else {
        "start"
    };
    let mut line =
        format!("seqnet: {who}: phases, seconds since {since} (wall, CPU since the previous):");
    let (mut previous, mut previous_cpu) = (origin, 0.0);
    for (phase, t, c) in phases {
        line.push_str(&format!(
            " {phase} {:.3} ({:.3}, {:.2});",
            t - origin,
            t - previous,
            c - previous_cpu
        ));
        (previous, previous_cpu) = (t, c);
    }
    Some(line)
}
