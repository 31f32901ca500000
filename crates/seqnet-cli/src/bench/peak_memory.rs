//! The whole process's peak resident memory over one workload, from Linux's
//! `/proc/self/status` (`VmHWM`). Writing `5` to `/proc/self/clear_refs`
//! resets the peak to the current resident size, so each workload's figure
//! is its own even when several run in one process (the memory a previous
//! workload still holds is counted, as it would be in any process).

use std::fs;

/// Measures the peak from [`Tracker::start`] to [`Tracker::peak_mb`].
pub struct Tracker {
    /// Whether the reset worked; without it the peak would be the process's.
    reset: bool,
}

impl Tracker {
    /// Resets the process's peak resident size to its current one.
    pub fn start() -> Self {
        Tracker {
            reset: fs::write("/proc/self/clear_refs", "5").is_ok(),
        }
    }

    /// The peak resident size since [`Tracker::start`] in MiB, or `None`
    /// where the system does not tell it.
    pub fn peak_mb(&self) -> Option<f64> {
        if !self.reset {
            return None;
        }
        let status = fs::read_to_string("/proc/self/status").ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib / 1024.0)
    }
}
