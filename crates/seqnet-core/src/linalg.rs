//! f32 matrix products through the `gemm` crate, on ndarray views of any strides
//! (so transposes are free: pass `a.t()`).

use ndarray::{ArrayView2, ArrayViewMut2};

/// Products smaller than this many multiply-adds run on one thread.
const PARALLEL_THRESHOLD: usize = 1 << 18;

/// `c = a·b` when `accumulate` is false, `c += a·b` when true, on all of
/// rayon's threads for large products.
///
/// Shapes: `a` `[m, k]`, `b` `[k, n]`, `c` `[m, n]`.
///
/// # Panics
/// On mismatched shapes: callers check sizes first, so that is a bug inside seqnet.
pub fn matmul_into(
    a: ArrayView2<f32>,
    b: ArrayView2<f32>,
    c: ArrayViewMut2<f32>,
    accumulate: bool,
) {
    matmul_into_threads(a, b, c, accumulate, rayon::current_num_threads());
}

/// [`matmul_into`] on at most `threads` threads (1: on the calling thread only,
/// for callers that already run in parallel). Products smaller than
/// `PARALLEL_THRESHOLD` multiply-adds always run on one thread.
pub fn matmul_into_threads(
    a: ArrayView2<f32>,
    b: ArrayView2<f32>,
    mut c: ArrayViewMut2<f32>,
    accumulate: bool,
    threads: usize,
) {
    let (m, k) = a.dim();
    let (k2, n) = b.dim();
    assert_eq!(k, k2, "matmul: inner sizes differ");
    assert_eq!(c.dim(), (m, n), "matmul: output shape");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            c.fill(0.0);
        }
        return;
    }
    let parallelism = if m * n * k >= PARALLEL_THRESHOLD && threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    let (a_rs, a_cs) = (a.strides()[0], a.strides()[1]);
    let (b_rs, b_cs) = (b.strides()[0], b.strides()[1]);
    let (c_rs, c_cs) = (c.strides()[0], c.strides()[1]);
    // SAFETY: the views' pointers and strides describe valid memory of the
    // checked shapes; `c` is a unique mutable view, so it aliases neither input.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            c_cs,
            c_rs,
            accumulate,
            a.as_ptr(),
            a_cs,
            a_rs,
            b.as_ptr(),
            b_cs,
            b_rs,
            if accumulate { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// `a·b` as a new array. Shapes: `a` `[m, k]`, `b` `[k, n]`, result `[m, n]`.
pub fn matmul(a: ArrayView2<f32>, b: ArrayView2<f32>) -> ndarray::Array2<f32> {
    let mut c = ndarray::Array2::zeros((a.nrows(), b.ncols()));
    matmul_into(a, b, c.view_mut(), false);
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    fn naive(a: ArrayView2<f32>, b: ArrayView2<f32>) -> Array2<f32> {
        let mut c = Array2::zeros((a.nrows(), b.ncols()));
        for i in 0..a.nrows() {
            for j in 0..b.ncols() {
                c[[i, j]] = (0..a.ncols()).map(|p| a[[i, p]] * b[[p, j]]).sum();
            }
        }
        c
    }

    #[test]
    fn matches_naive_product_with_transposes_and_accumulation() {
        let a = Array2::from_shape_fn((7, 5), |(i, j)| (i * 5 + j) as f32 * 0.1 - 1.0);
        let b = Array2::from_shape_fn((9, 5), |(i, j)| ((i + 2 * j) % 7) as f32 * 0.3 - 0.5);
        let expect = naive(a.view(), b.t());
        let got = matmul(a.view(), b.t());
        assert!((&got - &expect).iter().all(|d| d.abs() < 1e-5));
        let mut acc = expect.clone();
        matmul_into(a.view(), b.t(), acc.view_mut(), true);
        assert!((&acc - &(&expect * 2.0)).iter().all(|d| d.abs() < 1e-4));
        let big_a = Array2::from_shape_fn((64, 128), |(i, j)| ((i * 31 + j * 7) % 13) as f32 - 6.0);
        let big_b = Array2::from_shape_fn((128, 96), |(i, j)| ((i * 3 + j * 11) % 5) as f32 - 2.0);
        assert_eq!(
            matmul(big_a.view(), big_b.view()),
            naive(big_a.view(), big_b.view())
        );
    }
}

/// Columns per panel of a [`PackedPanels`] matrix: one AVX-512 register of f32.
pub const PANEL: usize = 16;

/// A right-hand matrix `[k, n]` packed once for many products with
/// [`gemm_packed`]: panels of [`PANEL`] columns, each stored `[k, PANEL]`
/// contiguously (columns past `n` are zero). The recurrent layers pack their
/// recurrent weights once per pass and multiply by them at every time step, so
/// no step pays for packing (the `gemm` crate packs its right-hand side anew in
/// every call).
#[derive(Debug, Clone, Default)]
pub struct PackedPanels {
    k: usize,
    n: usize,
    data: Vec<f32>,
}

impl PackedPanels {
    /// Packs `[k, n]` with `value(row, col)` giving each element, reusing the
    /// allocation. `value` is called once per element, column by column.
    pub fn pack(&mut self, k: usize, n: usize, mut value: impl FnMut(usize, usize) -> f32) {
        let panels = n.div_ceil(PANEL);
        self.k = k;
        self.n = n;
        self.data.clear();
        self.data.resize(panels * k * PANEL, 0.0);
        for col in 0..n {
            let (p, l) = (col / PANEL, col % PANEL);
            let base = p * k * PANEL + l;
            for row in 0..k {
                self.data[base + row * PANEL] = value(row, col);
            }
        }
    }

    /// Rows `k`.
    pub fn rows(&self) -> usize {
        self.k
    }

    /// Columns `n`.
    pub fn cols(&self) -> usize {
        self.n
    }

    /// Columns rounded up to whole panels: the row length [`gemm_packed`] writes.
    pub fn padded_cols(&self) -> usize {
        self.n.div_ceil(PANEL) * PANEL
    }
}

/// `c = a·b` for `a` `[m, k]` (row `i` at `a[i·lda..]`) and a packed `b`
/// `[k, n]`; writes `c[i·ldc + j]` for `j < b.padded_cols()` (the padding
/// columns get 0). Single-threaded: callers split the columns between threads.
///
/// Each row's result depends only on that row (the sum runs over `k` in order),
/// so a row gives the same bits whichever other rows come with it.
///
/// # Panics
/// When a slice is too short for the sizes.
pub fn gemm_packed(a: &[f32], lda: usize, m: usize, b: &PackedPanels, c: &mut [f32], ldc: usize) {
    let (k, np) = (b.k, b.n.div_ceil(PANEL));
    if m == 0 || np == 0 {
        return;
    }
    assert!(ldc >= np * PANEL, "gemm_packed: ldc too small");
    assert!(
        c.len() >= (m - 1) * ldc + np * PANEL,
        "gemm_packed: c too short"
    );
    if k == 0 {
        for i in 0..m {
            c[i * ldc..i * ldc + np * PANEL].fill(0.0);
        }
        return;
    }
    assert!(a.len() >= (m - 1) * lda + k, "gemm_packed: a too short");
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F; the sizes were checked above.
            unsafe { avx512::gemm(a.as_ptr(), lda, m, k, &b.data, np, c.as_mut_ptr(), ldc) };
            return;
        }
    }
    portable_gemm(a, lda, m, k, &b.data, np, c, ldc);
}

/// The reference path of [`gemm_packed`] for CPUs without AVX-512.
#[allow(clippy::too_many_arguments)]
fn portable_gemm(
    a: &[f32],
    lda: usize,
    m: usize,
    k: usize,
    b: &[f32],
    np: usize,
    c: &mut [f32],
    ldc: usize,
) {
    for p in 0..np {
        let panel = &b[p * k * PANEL..(p + 1) * k * PANEL];
        for i in 0..m {
            let mut acc = [0f32; PANEL];
            let row = &a[i * lda..i * lda + k];
            for (kk, &av) in row.iter().enumerate() {
                let bv = &panel[kk * PANEL..(kk + 1) * PANEL];
                for l in 0..PANEL {
                    acc[l] = av.mul_add(bv[l], acc[l]);
                }
            }
            c[i * ldc + p * PANEL..i * ldc + (p + 1) * PANEL].copy_from_slice(&acc);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::PANEL;
    use std::arch::x86_64::*;

    /// Rows per register block.
    const MR: usize = 8;

    /// `MR_ × NP·16` block: `c[r, ..] = Σ_k a[r, k]·b[k, ..]`.
    #[inline(always)]
    unsafe fn block<const MR_: usize, const NP: usize>(
        a: *const f32,
        lda: usize,
        k: usize,
        b: *const f32,
        c: *mut f32,
        ldc: usize,
    ) {
        let mut acc = [[_mm512_setzero_ps(); NP]; MR_];
        let bstride = k * PANEL;
        for kk in 0..k {
            let mut bv = [_mm512_setzero_ps(); NP];
            for (p, v) in bv.iter_mut().enumerate() {
                *v = _mm512_loadu_ps(b.add(p * bstride + kk * PANEL));
            }
            for (r, row) in acc.iter_mut().enumerate() {
                let av = _mm512_set1_ps(*a.add(r * lda + kk));
                for p in 0..NP {
                    row[p] = _mm512_fmadd_ps(av, bv[p], row[p]);
                }
            }
        }
        for (r, row) in acc.iter().enumerate() {
            for (p, v) in row.iter().enumerate() {
                _mm512_storeu_ps(c.add(r * ldc + p * PANEL), *v);
            }
        }
    }

    #[inline(always)]
    unsafe fn rows<const NP: usize>(
        a: *const f32,
        lda: usize,
        m: usize,
        k: usize,
        b: *const f32,
        c: *mut f32,
        ldc: usize,
    ) {
        let mut i = 0;
        while i + MR <= m {
            block::<MR, NP>(a.add(i * lda), lda, k, b, c.add(i * ldc), ldc);
            i += MR;
        }
        let (a, c) = (a.add(i * lda), c.add(i * ldc));
        match m - i {
            0 => {}
            1 => block::<1, NP>(a, lda, k, b, c, ldc),
            2 => block::<2, NP>(a, lda, k, b, c, ldc),
            3 => block::<3, NP>(a, lda, k, b, c, ldc),
            4 => block::<4, NP>(a, lda, k, b, c, ldc),
            5 => block::<5, NP>(a, lda, k, b, c, ldc),
            6 => block::<6, NP>(a, lda, k, b, c, ldc),
            _ => block::<7, NP>(a, lda, k, b, c, ldc),
        }
    }

    /// See [`super::gemm_packed`]; `np` panels of `b`.
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn gemm(
        a: *const f32,
        lda: usize,
        m: usize,
        k: usize,
        b: &[f32],
        np: usize,
        c: *mut f32,
        ldc: usize,
    ) {
        let b = b.as_ptr();
        let mut p = 0;
        while p + 2 <= np {
            rows::<2>(a, lda, m, k, b.add(p * k * PANEL), c.add(p * PANEL), ldc);
            p += 2;
        }
        if p < np {
            rows::<1>(a, lda, m, k, b.add(p * k * PANEL), c.add(p * PANEL), ldc);
        }
    }
}

/// `Σ a[i]·b[i]` over the shorter length, in 16 lanes (so that it
/// vectorizes), with AVX-512 where the CPU has it.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    #[inline(always)]
    fn body(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (a, b) = (&a[..n], &b[..n]);
        let mut acc = [0f32; 16];
        let (ac, bc) = (a.chunks_exact(16), b.chunks_exact(16));
        let tail: f32 = ac
            .remainder()
            .iter()
            .zip(bc.remainder())
            .map(|(x, y)| x * y)
            .sum();
        for (x, y) in ac.zip(bc) {
            for l in 0..16 {
                acc[l] = x[l].mul_add(y[l], acc[l]);
            }
        }
        acc.iter().sum::<f32>() + tail
    }
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f")]
        unsafe fn wide(a: &[f32], b: &[f32]) -> f32 {
            body(a, b)
        }
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F.
            return unsafe { wide(a, b) };
        }
    }
    body(a, b)
}

/// A barrier for a fixed team of threads that spins (then yields) instead of
/// sleeping: the recurrent layers meet at it once per time step. It adds up
/// the time the team's first thread waits, so that [`team`] can tell when the
/// host is too busy for the team to run together.
#[derive(Debug)]
pub struct SpinBarrier {
    threads: usize,
    arrived: std::sync::atomic::AtomicUsize,
    generation: std::sync::atomic::AtomicUsize,
    /// Nanoseconds thread 0 spent waiting.
    waited_ns: std::sync::atomic::AtomicU64,
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
            let t0 = std::time::Instant::now();
            self.wait();
            self.waited_ns.fetch_add(
                t0.elapsed().as_nanos() as u64,
                std::sync::atomic::Ordering::Relaxed,
            );
        } else {
            self.wait();
        }
    }

    /// Waits until every thread of the team has called `wait` as often.
    pub fn wait(&self) {
        use std::sync::atomic::Ordering::{AcqRel, Acquire, Release};
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

/// Passes left to run on one thread after a team was found waiting (see [`team`]).
static SOLO_PASSES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// How many threads a team should have, given the `wanted` count: 1 for a
/// while after a team spent more than half its time at the barrier (the host
/// is oversubscribed, so that a thread keeps waiting for its partner to be
/// scheduled: one thread is then faster, up to several times), else
/// `wanted`. After 8 solo passes a team is tried again.
pub fn team_threads(wanted: usize) -> usize {
    use std::sync::atomic::Ordering::Relaxed;
    if wanted <= 1 {
        return 1;
    }
    let left = SOLO_PASSES.load(Relaxed);
    if left > 0 {
        SOLO_PASSES.store(left - 1, Relaxed);
        return 1;
    }
    wanted
}

/// Runs `f(index, size, barrier)` on a team of `size` threads that may meet
/// at the shared barrier: the caller's thread (index 0) and, when `threads`
/// asks for more, the helper thread (`helper.rs`). `size` is 2 when the
/// helper starts within 200 µs, else 1 (the caller runs alone and the job is
/// withdrawn), so a team never waits at a barrier for a thread that has not
/// started. Thread 0's waits are timed
/// ([`SpinBarrier::wait_as`]): when they exceed half the run, the next passes
/// asking [`team_threads`] run alone. At most 2 threads.
pub fn team<F: Fn(usize, usize, &SpinBarrier) + Sync>(threads: usize, f: F) {
    use std::sync::atomic::Ordering::Relaxed;
    if threads <= 1 {
        f(0, 1, &SpinBarrier::new(1));
        return;
    }
    let barrier = SpinBarrier::new(2);
    let job = || f(1, 2, &barrier);
    crate::helper::with_helper(&job, |posted| {
        let t0 = std::time::Instant::now();
        while !posted.entered() {
            let late = !posted.available() || t0.elapsed() > std::time::Duration::from_micros(200);
            if late && posted.withdraw() {
                f(0, 1, &SpinBarrier::new(1));
                return;
            }
            std::hint::spin_loop();
        }
        let t0 = std::time::Instant::now();
        f(0, 2, &barrier);
        let total = t0.elapsed().as_nanos() as u64;
        let waited = barrier.waited_ns.load(Relaxed);
        // With the work split in two, a pass takes `W/2 + waited`; alone it
        // would take about `W`: the team loses once it waits over half the pass.
        if waited * 2 > total {
            SOLO_PASSES.store(8, Relaxed);
        }
    });
}

/// How many threads share the rows of a recurrent pass ([`share`]): two (at
/// most rayon's thread count) when there are at least 8 rows and a step's
/// product has enough multiply-adds (`macs`, from 2^18) to pay for handing
/// half of the pass to another thread, else one.
pub fn row_threads(rows: usize, macs: usize) -> usize {
    if rows >= 8 && macs >= 1 << 18 {
        rayon::current_num_threads().clamp(1, 2)
    } else {
        1
    }
}

/// Runs `f(part)` for every part in `0..parts` on the caller's thread and the
/// helper thread (`helper.rs`), each taking the next part not yet
/// taken: parts that never meet (the rows of a recurrent pass). When the
/// helper starts late, the caller takes its parts too, so nobody waits for a
/// thread that is not scheduled. One thread only when rayon's pool has one
/// (`RAYON_NUM_THREADS=1`).
pub fn share<F: Fn(usize) + Sync>(parts: usize, f: F) {
    use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
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
    crate::helper::with_helper(&work, |_| work());
}

/// Whether the CPU has AVX-512F, for the kernels that have an AVX-512 version.
#[inline]
pub fn has_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// A zeroed `f32` buffer whose start is aligned to 64 bytes (a cache line
/// and an AVX-512 register): packed weights read with full-register loads
/// then never straddle two cache lines. (A `Vec<f32>` of this size comes
/// from `mmap` at 16 bytes past a page boundary.)
#[derive(Debug, Clone, Default)]
pub struct AlignedBuf {
    blocks: Vec<Line>,
    len: usize,
}

#[derive(Debug, Clone, Copy, Default)]
#[repr(C, align(64))]
struct Line([f32; 16]);

impl AlignedBuf {
    /// `len` zeros, reusing the allocation.
    pub fn zeroed(&mut self, len: usize) {
        self.blocks.clear();
        self.blocks.resize(len.div_ceil(16), Line::default());
        self.len = len;
    }

    pub fn as_slice(&self) -> &[f32] {
        // SAFETY: `blocks` holds at least `len` contiguous f32 values.
        unsafe { std::slice::from_raw_parts(self.blocks.as_ptr().cast(), self.len) }
    }

    pub fn as_mut_slice(&mut self) -> &mut [f32] {
        // SAFETY: as above, borrowed mutably.
        unsafe { std::slice::from_raw_parts_mut(self.blocks.as_mut_ptr().cast(), self.len) }
    }
}

/// A raw pointer that threads of a [`team`] share to write disjoint parts of
/// one buffer.
#[derive(Debug, Clone, Copy)]
pub struct SharedMut(pub *mut f32);
// SAFETY: users write disjoint elements and meet at a barrier before reading
// what another thread wrote.
unsafe impl Send for SharedMut {}
unsafe impl Sync for SharedMut {}

#[cfg(test)]
mod packed_tests {
    use super::*;
    use ndarray::Array2;

    #[test]
    fn packed_product_matches_gemm_on_ragged_sizes() {
        for &(m, k, n) in &[
            (1, 1, 1),
            (3, 7, 17),
            (9, 33, 40),
            (32, 64, 100),
            (17, 5, 48),
        ] {
            let a = Array2::from_shape_fn((m, k), |(i, j)| ((i * 7 + j * 3) % 11) as f32 - 5.0);
            let b = Array2::from_shape_fn((k, n), |(i, j)| ((i * 5 + j) % 7) as f32 - 3.0);
            let mut p = PackedPanels::default();
            p.pack(k, n, |r, c| b[[r, c]]);
            let ldc = p.padded_cols() + 3;
            let mut c = vec![f32::NAN; m * ldc];
            gemm_packed(a.as_slice().unwrap(), k, m, &p, &mut c, ldc);
            let want = matmul(a.view(), b.view());
            let mut c2 = vec![f32::NAN; m * ldc];
            portable_gemm(
                a.as_slice().unwrap(),
                k,
                m,
                k,
                &p.data,
                n.div_ceil(PANEL),
                &mut c2,
                ldc,
            );
            for i in 0..m {
                for j in 0..n {
                    assert_eq!(c[i * ldc + j], want[[i, j]], "{m}x{k}x{n} at {i},{j}");
                    assert_eq!(c2[i * ldc + j], want[[i, j]]);
                }
                for j in n..p.padded_cols() {
                    assert_eq!(c[i * ldc + j], 0.0);
                }
            }
        }
    }

    #[test]
    fn team_meets_at_the_barrier() {
        let counter = std::sync::atomic::AtomicUsize::new(0);
        team(2, |_, size, b| {
            for round in 0..100 {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                b.wait();
                // Everyone of the team (2, or 1 when the worker came late) counted.
                assert_eq!(
                    counter.load(std::sync::atomic::Ordering::SeqCst),
                    size * (round + 1)
                );
                b.wait();
            }
        });
    }
}
