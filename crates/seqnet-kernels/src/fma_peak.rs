//! The machine's fused multiply-add limit: a loop of independent FMAs on
//! every core, the yardstick issue 16 measures the recurrent layers against
//! ("85 % of the FMA peak"). Zen 4 executes a 512-bit FMA as two 256-bit
//! halves, Zen 5 and Intel's server cores at full width; this loop shows
//! whichever the machine does.

use std::time::Instant;

/// Independent accumulators: enough to cover the FMA latency (4 cycles) on
/// two FMA ports with room to spare.
const CHAINS: usize = 12;

/// FLOPs of one FMA on one f32 lane.
const FLOP_PER_FMA: f64 = 2.0;

/// Runs `iterations` rounds of [`CHAINS`] independent FMAs on the best
/// vector width this CPU has, and returns a value depending on every
/// result (so the loop cannot be removed) and the FLOPs done.
pub fn fma_loop(iterations: u64) -> (f32, f64) {
    #[cfg(target_arch = "x86_64")]
    if crate::Isa::best().avx512() {
        // SAFETY: `Isa::best().avx512()` is true only when the CPU reports
        // AVX-512F, the one feature `fma_loop_avx512` is compiled for.
        let s = unsafe { fma_loop_avx512(iterations) };
        return (s, iterations as f64 * (CHAINS * 16) as f64 * FLOP_PER_FMA);
    }
    (
        fma_loop_portable(iterations),
        iterations as f64 * (CHAINS * 8) as f64 * FLOP_PER_FMA,
    )
}

/// GFLOP/s of [`fma_loop`] run on `threads` threads at once for about
/// `millis` milliseconds each (the median of 5 rounds), and the rate per thread.
pub fn fma_peak(threads: usize, millis: u64) -> (f64, f64) {
    let threads = threads.max(1);
    // Calibrate: iterations for about `millis` ms on one thread.
    let t0 = Instant::now();
    let probe = 200_000u64;
    std::hint::black_box(fma_loop(probe));
    let per_ms = probe as f64 / (t0.elapsed().as_secs_f64() * 1e3).max(1e-6);
    let iterations = ((per_ms * millis as f64) as u64).max(1000);
    let mut rates = Vec::with_capacity(5);
    for _ in 0..5 {
        let start = Instant::now();
        let flop: f64 = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|_| s.spawn(move || std::hint::black_box(fma_loop(iterations)).1))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap_or(0.0)).sum()
        });
        rates.push(flop / start.elapsed().as_secs_f64() / 1e9);
    }
    rates.sort_by(f64::total_cmp);
    let median = rates[rates.len() / 2];
    (median, median / threads as f64)
}

/// The portable loop: 8-lane arrays the compiler vectorizes to whatever the
/// target allows (no FMA without it: the rate is then mul + add).
fn fma_loop_portable(iterations: u64) -> f32 {
    let mut acc = [[1.0f32; 8]; CHAINS];
    let (a, b) = (
        std::hint::black_box(0.999_999f32),
        std::hint::black_box(1e-7f32),
    );
    for _ in 0..iterations {
        for chain in acc.iter_mut() {
            for v in chain.iter_mut() {
                *v = v.mul_add(a, b);
            }
        }
    }
    acc.iter().flatten().sum()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
/// # Safety
/// The CPU must have AVX-512F.
unsafe fn fma_loop_avx512(iterations: u64) -> f32 {
    use std::arch::x86_64::*;
    let a = _mm512_set1_ps(std::hint::black_box(0.999_999));
    let b = _mm512_set1_ps(std::hint::black_box(1e-7));
    let mut acc = [_mm512_set1_ps(1.0); CHAINS];
    for _ in 0..iterations {
        // Unrolled by the compiler: CHAINS independent dependency chains.
        for v in acc.iter_mut() {
            *v = _mm512_fmadd_ps(*v, a, b);
        }
    }
    let mut total = _mm512_setzero_ps();
    for v in acc {
        total = _mm512_add_ps(total, v);
    }
    _mm512_reduce_add_ps(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The loop computes what it says: each lane is `x ← a·x + b` iterated,
    /// which from 1 stays near 1 for these constants, on every width.
    #[test]
    fn fma_loop_values_and_flop_count() {
        let (s, flop) = fma_loop(1000);
        let lanes = if crate::Isa::best().avx512() { 16 } else { 8 };
        assert_eq!(flop, 1000.0 * (CHAINS * lanes) as f64 * 2.0);
        let mut x = 1.0f32;
        for _ in 0..1000 {
            x = x.mul_add(0.999_999, 1e-7);
        }
        let want = x * (CHAINS * lanes) as f32;
        assert!((s - want).abs() <= 1e-3 * want, "{s} vs {want}");
        let portable = fma_loop_portable(1000);
        let want = x * (CHAINS * 8) as f32;
        assert!(
            (portable - want).abs() <= 1e-4 * want,
            "{portable} vs {want}"
        );
    }

    #[test]
    fn peak_is_positive_and_per_thread_is_a_share() {
        let (all, per) = fma_peak(2, 5);
        assert!(all > 0.0 && (per - all / 2.0).abs() < 1e-9);
    }
}
