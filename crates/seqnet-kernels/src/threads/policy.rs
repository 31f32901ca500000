//! How many threads a pass runs on: the rule by size ([`row_threads`]).

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
