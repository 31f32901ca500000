//! How many threads a pass runs on: the rules by size ([`row_threads`],
//! [`ThreadPolicy::lstm_backward_threads`]) and the memory of how a team
//! fared ([`ThreadPolicy`]), a value each user of a team owns.

use super::team::TeamReport;

/// Passes run on one thread after a team was found starved.
const SOLO_PASSES: usize = 8;

/// The thread policy of one user of [`super::team()`] (an LSTM layer's
/// backward): how many threads the next team gets. After a team spent more
/// than half its time at the barrier (the host is oversubscribed, so that a
/// thread keeps waiting for its partner to be scheduled: one thread is then
/// faster, up to several times), the next `SOLO_PASSES` (8) passes asking run
/// on one thread; then a team is tried again.
///
/// Owned by its user rather than global, so that one layer's busy spell does
/// not send another layer, or another network, onto one thread.
#[derive(Debug, Clone, Default)]
pub struct ThreadPolicy {
    /// Passes left to run on one thread.
    solo_passes: usize,
}

impl ThreadPolicy {
    /// A policy that starts by trusting teams.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many threads a team should have, given the `wanted` count: 1
    /// while solo passes are left (this call uses one), else `wanted`.
    pub fn team_threads(&mut self, wanted: usize) -> usize {
        if wanted <= 1 {
            return 1;
        }
        if self.solo_passes > 0 {
            self.solo_passes -= 1;
            return 1;
        }
        wanted
    }

    /// Takes note of how a team fared: a starved team sends the next passes
    /// onto one thread.
    pub fn record(&mut self, report: TeamReport) {
        if report.starved {
            self.solo_passes = SOLO_PASSES;
        }
    }

    /// How many threads run one direction's LSTM backward pass through time
    /// for batch `b` and `h` hidden units: two (or rayon's thread count, at
    /// most 2) when a step's recurrent product is large enough to pay for
    /// meeting at a barrier every step, else one; and one while the policy
    /// says so ([`ThreadPolicy::team_threads`]). (Measured: at 1M
    /// multiply-adds per step, Japanese Vowels' 27×100·100×400, one thread is
    /// as fast on an idle host and many times faster on a loaded one, where a
    /// thread waits at every barrier for its partner to be scheduled again.)
    pub fn lstm_backward_threads(&mut self, b: usize, h: usize) -> usize {
        let macs = b * 4 * h * h;
        if macs >= 1 << 21 && h >= 32 {
            self.team_threads(rayon::current_num_threads().clamp(1, 2))
        } else {
            1
        }
    }
}

/// How many threads share the rows of a recurrent pass ([`super::share()`]):
/// two (at most rayon's thread count) when there are at least 8 rows and a
/// step's product has enough multiply-adds (`macs`, from 2^18) to pay for
/// handing half of the pass to another thread, else one.
pub fn row_threads(rows: usize, macs: usize) -> usize {
    if rows >= 8 && macs >= 1 << 18 {
        rayon::current_num_threads().clamp(1, 2)
    } else {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_starved_team_sends_eight_passes_onto_one_thread() {
        let mut p = ThreadPolicy::new();
        assert_eq!(p.team_threads(2), 2);
        p.record(TeamReport {
            size: 2,
            starved: false,
        });
        assert_eq!(p.team_threads(2), 2);
        p.record(TeamReport {
            size: 2,
            starved: true,
        });
        for _ in 0..SOLO_PASSES {
            assert_eq!(p.team_threads(2), 1);
        }
        assert_eq!(p.team_threads(2), 2);
        // Another owner's policy is untouched by this one's history.
        let mut other = ThreadPolicy::new();
        p.record(TeamReport {
            size: 2,
            starved: true,
        });
        assert_eq!(other.team_threads(2), 2);
        assert_eq!(p.team_threads(1), 1);
    }
}
