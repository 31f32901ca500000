//! The self-attention kernel: the rows of every sequence's real steps
//! projected to queries, keys and values with one product (the three
//! weights stacked), then attention per sequence and head.
//! Without padding the products work on the input's own rows `[T·B, C]`
//! (each sequence a strided view); with padding the real steps are packed
//! first and the output scattered back.

use crate::activation::{Activation, SeqLengths};
use crate::error::{Error, Result};
use crate::format::Format;
use crate::layer::{ForwardCtx, LayerKernel, Mode};
use crate::layers::util::{grad_or_zeros, no_forward, recycled_len};
use crate::learnable::Learnable;
use ndarray::{ArcArray, Array2, ArrayD, ArrayView2, ArrayViewMut2, Axis, Ix2, IxDyn, Slice};
use rayon::prelude::*;
use seqnet_kernels::attention::{attend_heads, AttentionScratch};
use seqnet_kernels::cpu::Isa;
use seqnet_kernels::gemm::{matmul_bias_packed, matmul_into, matmul_into_threads};
use seqnet_kernels::packed::{gemm_packed, PackedPanels};
use seqnet_kernels::softmax::{masked_softmax_row, softmax_row_backward};
use std::ops::Range;

/// The layer's sizes: input `c`, key `k`, value `v`, output `o` channels.
#[derive(Debug, Clone, Copy)]
pub(super) struct Sizes {
    pub c: usize,
    pub k: usize,
    pub v: usize,
    pub o: usize,
    pub heads: usize,
    pub causal: bool,
}

const Q: usize = 0;
const K: usize = 1;
const V: usize = 2;
const OUT: usize = 3;

pub(super) struct AttentionKernel {
    name: String,
    sizes: Sizes,
    /// Query, key, value and output weights (`[K, C]`, `[K, C]`, `[V, C]`, `[O, V]`).
    weights: [Learnable; 4],
    /// Their biases (`[K]`, `[K]`, `[V]`, `[O]`), with `HasBias`.
    biases: Option<[Learnable; 4]>,
    cache: Option<Cache>,
    /// Attention-weight buffers of the last training pass, kept through
    /// inference passes for the next training pass (a product overwrites
    /// them: no zeroing, no fresh pages).
    spare: Vec<Vec<f32>>,
    /// The last forward's output (shared): its allocation is reused by the
    /// next forward once nothing else holds it.
    last_output: Option<ArcArray<f32, IxDyn>>,
    input_grad_needed: bool,
}

/// Where each sequence's steps are in the rows the products work on.
enum Layout {
    /// No step padded: the input's own rows (`t·B + b`), `[T·B, ·]`;
    /// sequence `b` is every `B`-th row from row `b`.
    Full { time: usize, batch: usize },
    /// Some steps padded: the `N` real steps packed, sequence after sequence.
    Packed {
        /// The input row (`t·B + b`) of each packed row, `[N]`.
        rows: Vec<usize>,
        /// Each sequence's packed rows (empty sequences left out).
        seqs: Vec<Range<usize>>,
        /// `[T, B]` of the input.
        time_batch: (usize, usize),
    },
}

impl Layout {
    /// The layout of a batch with these lengths.
    fn of(lengths: &SeqLengths) -> Layout {
        let (time, batch) = (lengths.time, lengths.lengths.len());
        if time * batch > 0 && lengths.lengths.iter().all(|&l| l == time) {
            return Layout::Full { time, batch };
        }
        let (mut rows, mut seqs) = (Vec::new(), Vec::new());
        for b in 0..batch {
            let start = rows.len();
            rows.extend(lengths.span(b).map(|t| t * batch + b));
            if rows.len() > start {
                seqs.push(start..rows.len());
            }
        }
        Layout::Packed {
            rows,
            seqs,
            time_batch: (time, batch),
        }
    }

    /// The number of rows the products work on.
    fn rows(&self) -> usize {
        match self {
            Layout::Full { time, batch } => time * batch,
            Layout::Packed { rows, .. } => rows.len(),
        }
    }

    /// `[T, B]` of the input.
    fn time_batch(&self) -> (usize, usize) {
        match self {
            Layout::Full { time, batch } => (*time, *batch),
            Layout::Packed { time_batch, .. } => *time_batch,
        }
    }

    /// The rows of `data` (`[T, B, C]`, shared) the products work on, `[rows, C]`.
    fn take_in(&self, data: &ArcArray<f32, IxDyn>) -> ArcArray<f32, Ix2> {
        let c = data.shape()[2];
        let data = if data.is_standard_layout() {
            data.clone()
        } else {
            data.as_standard_layout().into_owned().into_shared()
        };
        match self {
            Layout::Full { .. } => data
                .into_shape_with_order((self.rows(), c))
                .expect("[T·B, C]"),
            Layout::Packed { rows, .. } => {
                gather(data.as_slice().expect("standard layout"), c, rows).into_shared()
            }
        }
    }

    /// Rows `[rows, C]` put back as `[T, B, C]` (0 at padded steps).
    fn put_out(&self, y: Array2<f32>) -> ArrayD<f32> {
        match self {
            Layout::Full { time, batch } => {
                let c = y.ncols();
                y.into_shape_with_order(vec![*time, *batch, c])
                    .expect("[T, B, C]")
            }
            Layout::Packed {
                rows, time_batch, ..
            } => scatter(&y, rows, *time_batch),
        }
    }

    /// Each sequence's rows as (first row, step between rows, length), in
    /// the order of [`Layout::seqs`].
    fn seq_rows(&self) -> Vec<(usize, usize, usize)> {
        match self {
            Layout::Full { time, batch } => (0..*batch).map(|b| (b, *batch, *time)).collect(),
            Layout::Packed { seqs, .. } => seqs.iter().map(|r| (r.start, 1, r.len())).collect(),
        }
    }

    /// Each sequence's rows of `a` `[rows, C]`, `[L, C]` each.
    fn seqs<'a>(&self, a: ArrayView2<'a, f32>) -> Vec<ArrayView2<'a, f32>> {
        match self {
            Layout::Full { time, batch } => {
                let a = a
                    .into_shape_with_order((*time, *batch, a.ncols()))
                    .expect("[T, B, C]");
                (0..*batch).map(|b| a.index_axis_move(Axis(1), b)).collect()
            }
            Layout::Packed { seqs, .. } => seqs
                .iter()
                .map(|r| a.slice_axis_move(Axis(0), Slice::from(r.clone())))
                .collect(),
        }
    }

    /// Each sequence's rows of `a` `[rows, C]`, mutable, `[L, C]` each.
    fn seqs_mut<'a>(&self, a: ArrayViewMut2<'a, f32>) -> Vec<ArrayViewMut2<'a, f32>> {
        let mut parts = Vec::new();
        match self {
            Layout::Full { time, batch } => {
                let c = a.ncols();
                let mut a = a
                    .into_shape_with_order((*time, *batch, c))
                    .expect("[T, B, C]");
                for _ in 0..*batch {
                    let (head, tail) = a.split_at(Axis(1), 1);
                    parts.push(head.index_axis_move(Axis(1), 0));
                    a = tail;
                }
            }
            Layout::Packed { seqs, .. } => {
                let mut a = a;
                for r in seqs {
                    let (head, tail) = a.split_at(Axis(0), r.len());
                    parts.push(head);
                    a = tail;
                }
            }
        }
        parts
    }
}

/// What backward needs, in the rows of the [`Layout`].
struct Cache {
    layout: Layout,
    /// Input `[rows, C]`.
    x: ArcArray<f32, Ix2>,
    /// Queries, keys and values side by side, `[rows, K + K + V]` (an
    /// inference pass that projected each sequence on its own keeps none:
    /// backward recomputes them).
    qkv: Option<Array2<f32>>,
    /// The query, key and value weights stacked, `[K + K + V, C]`, and
    /// their biases `[K + K + V]`.
    w_qkv: Array2<f32>,
    b_qkv: Vec<f32>,
    /// Per sequence of length `L`: each head's attention weights `[h, L, L]`
    /// (training passes; after an inference pass backward recomputes them).
    probs: Option<Vec<Vec<f32>>>,
    /// The heads' outputs concatenated, `[rows, V]`.
    concat: Array2<f32>,
}

/// Columns `r` of `a`.
fn cols(a: ArrayView2<'_, f32>, r: Range<usize>) -> ArrayView2<'_, f32> {
    a.slice_axis_move(Axis(1), Slice::from(r))
}

/// Columns `r` of `a`, mutable.
fn cols_mut(a: ArrayViewMut2<'_, f32>, r: Range<usize>) -> ArrayViewMut2<'_, f32> {
    a.slice_axis_move(Axis(1), Slice::from(r))
}

fn mat(l: &Learnable) -> ArrayView2<'_, f32> {
    l.value.view().into_dimensionality::<Ix2>().expect("2-D")
}

/// Each sequence's queries `[L, K]`, keys `[L, K]` and values `[L, V]`
/// from the rows of `qkv` `[rows, K + K + V]`.
fn split_qkv<'a>(
    layout: &Layout,
    s: &Sizes,
    qkv: ArrayView2<'a, f32>,
) -> Vec<(
    ArrayView2<'a, f32>,
    ArrayView2<'a, f32>,
    ArrayView2<'a, f32>,
)> {
    let (k, v) = (s.k, s.v);
    layout
        .seqs(qkv)
        .into_iter()
        .map(|a| (cols(a, 0..k), cols(a, k..2 * k), cols(a, 2 * k..2 * k + v)))
        .collect()
}

/// The mutable counterpart of [`split_qkv`].
#[allow(clippy::type_complexity)]
fn split_qkv_mut<'a>(
    layout: &Layout,
    s: &Sizes,
    qkv: ArrayViewMut2<'a, f32>,
) -> Vec<(
    ArrayViewMut2<'a, f32>,
    ArrayViewMut2<'a, f32>,
    ArrayViewMut2<'a, f32>,
)> {
    layout
        .seqs_mut(qkv)
        .into_iter()
        .map(|a| {
            let (q, rest) = a.split_at(Axis(1), s.k);
            let (k, v) = rest.split_at(Axis(1), s.k);
            (q, k, v)
        })
        .collect()
}

/// `x·wᵀ + b` for rows `x` `[N, in]`, `w` `[out, in]`, `b` `[out]`, written
/// into `buf`'s allocation (see [`recycled_len`]) when it is large enough.
fn project(x: ArrayView2<f32>, w: &Learnable, b: Option<&Learnable>, buf: Vec<f32>) -> Array2<f32> {
    let w = mat(w);
    match b {
        Some(b) => matmul_bias_packed(x, w.t(), b.value.as_slice().expect("1-D"), buf),
        None => matmul_bias_packed(x, w.t(), &vec![0.0; w.nrows()], buf),
    }
}

impl AttentionKernel {
    pub(super) fn new(
        name: String,
        sizes: Sizes,
        weights: [Learnable; 4],
        biases: Option<[Learnable; 4]>,
    ) -> Self {
        AttentionKernel {
            name,
            sizes,
            weights,
            biases,
            cache: None,
            spare: Vec::new(),
            last_output: None,
            input_grad_needed: true,
        }
    }

    fn bias(&self, i: usize) -> Option<&Learnable> {
        self.biases.as_ref().map(|b| &b[i])
    }

    /// The query, key and value weights stacked `[K + K + V, C]` and their
    /// biases `[K + K + V]` (zeros without `HasBias`), for one product.
    fn stacked_qkv(&self) -> (Array2<f32>, Vec<f32>) {
        let s = self.sizes;
        let mut w = Vec::with_capacity((2 * s.k + s.v) * s.c);
        let mut b = Vec::with_capacity(2 * s.k + s.v);
        for i in [Q, K, V] {
            let wi = &self.weights[i].value;
            w.extend(wi.iter());
            match self.bias(i) {
                Some(bi) => b.extend(bi.value.iter()),
                None => b.resize(b.len() + wi.shape()[0], 0.0),
            }
        }
        let w = Array2::from_shape_vec((2 * s.k + s.v, s.c), w).expect("[K + K + V, C]");
        (w, b)
    }

    /// Head `j`'s attention weights for one sequence (`q`, `k` `[L, K]`):
    /// the masked softmax of `q_j·k_jᵀ/sqrt(K/h)` written to `p` `[L, L]`.
    fn head_probs(s: &Sizes, q: ArrayView2<f32>, k: ArrayView2<f32>, j: usize, p: &mut [f32]) {
        let l = q.nrows();
        let dk = s.k / s.heads;
        let scale = 1.0 / (dk as f32).sqrt();
        let mut pm = ArrayViewMut2::from_shape((l, l), p).expect("[L, L]");
        let (qj, kj) = (cols(q, j * dk..(j + 1) * dk), cols(k, j * dk..(j + 1) * dk));
        matmul_into_threads(qj, kj.t(), pm.view_mut(), false, 1);
        for (i, mut row) in pm.rows_mut().into_iter().enumerate() {
            let visible = if s.causal { i + 1 } else { l };
            masked_softmax_row(row.as_slice_mut().expect("contiguous"), visible, scale);
        }
    }

    /// Attention of one sequence in training (`q`, `k` `[L, K]`, `v`
    /// `[L, V]`): writes the heads' outputs into `out` `[L, V]`. Returns
    /// `buf` (any contents, reused as scratch) holding every head's weights
    /// `[h, L, L]` for backward. (Inference takes the fused
    /// [`attend_heads`].)
    fn attend(
        s: &Sizes,
        (q, k, v): (ArrayView2<f32>, ArrayView2<f32>, ArrayView2<f32>),
        mut out: ArrayViewMut2<f32>,
        mut buf: Vec<f32>,
    ) -> Vec<f32> {
        let l = q.nrows();
        let dv = s.v / s.heads;
        buf.resize(s.heads * l * l, 0.0);
        for j in 0..s.heads {
            let p = &mut buf[j * l * l..(j + 1) * l * l];
            Self::head_probs(s, q, k, j, p);
            let pm = ArrayView2::from_shape((l, l), &*p).expect("[L, L]");
            let vj = cols(v, j * dv..(j + 1) * dv);
            let oj = cols_mut(out.view_mut(), j * dv..(j + 1) * dv);
            matmul_into_threads(pm, vj, oj, false, 1);
        }
        buf
    }

    /// The backward of [`Self::attend`] for one sequence: from `dout` `[L, V]`
    /// writes `dq`, `dk` `[L, K]` and `dv` `[L, V]`.
    #[allow(clippy::too_many_arguments)]
    fn attend_backward(
        s: &Sizes,
        q: ArrayView2<f32>,
        k: ArrayView2<f32>,
        v: ArrayView2<f32>,
        probs: Option<&[f32]>,
        dout: ArrayView2<f32>,
        mut dq: ArrayViewMut2<f32>,
        mut dk: ArrayViewMut2<f32>,
        mut dv: ArrayViewMut2<f32>,
    ) {
        let l = q.nrows();
        let (hk, hv) = (s.k / s.heads, s.v / s.heads);
        let scale = 1.0 / (hk as f32).sqrt();
        let mut ds = Array2::<f32>::zeros((l, l));
        let mut scratch = Vec::new();
        for j in 0..s.heads {
            let p = match probs {
                Some(p) => &p[j * l * l..(j + 1) * l * l],
                None => {
                    scratch.resize(l * l, 0.0);
                    Self::head_probs(s, q, k, j, &mut scratch);
                    &scratch[..]
                }
            };
            let pm = ArrayView2::from_shape((l, l), p).expect("[L, L]");
            let (ck, cv) = (j * hk..(j + 1) * hk, j * hv..(j + 1) * hv);
            let doj = cols(dout, cv.clone());
            // dA = dO_j·V_jᵀ, dV_j = Aᵀ·dO_j.
            matmul_into_threads(doj, cols(v, cv.clone()).t(), ds.view_mut(), false, 1);
            matmul_into_threads(pm.t(), doj, cols_mut(dv.view_mut(), cv), false, 1);
            for (prow, mut drow) in pm.rows().into_iter().zip(ds.rows_mut()) {
                let d = drow.as_slice_mut().expect("contiguous");
                softmax_row_backward(prow.as_slice().expect("contiguous"), d, scale);
            }
            // dQ_j = dS·K_j, dK_j = dSᵀ·Q_j.
            let (qj, kj) = (cols(q, ck.clone()), cols(k, ck.clone()));
            matmul_into_threads(ds.view(), kj, cols_mut(dq.view_mut(), ck.clone()), false, 1);
            matmul_into_threads(ds.t(), qj, cols_mut(dk.view_mut(), ck), false, 1);
        }
    }
}

impl AttentionKernel {
    /// Inference on AVX-512: for each sequence, its rows of `xp` `[rows, C]`
    /// times the stacked weights (packed once, [`PackedPanels`]) plus the
    /// biases into a per-thread buffer `[L, K + K + V]`, then
    /// [`attend_heads`] from it into the sequence's rows of `concat`
    /// (`parts`, `[L, V]` each). Each row's projection is what
    /// [`matmul_bias_packed`] gives it.
    fn project_and_attend(
        s: &Sizes,
        layout: &Layout,
        xp: &ArcArray<f32, Ix2>,
        (w_qkv, b_qkv): (&Array2<f32>, &[f32]),
        parts: Vec<ArrayViewMut2<f32>>,
    ) {
        let width = 2 * s.k + s.v;
        let mut panels = PackedPanels::default();
        panels.pack(s.c, width, |row, col| w_qkv[[col, row]]);
        let ld = panels.padded_cols();
        let xs = xp.as_slice().expect("standard layout");
        let c = s.c;
        parts
            .into_iter()
            .zip(layout.seq_rows())
            .collect::<Vec<_>>()
            .into_par_iter()
            .for_each_init(
                || (Vec::new(), AttentionScratch::default()),
                |(buf, scratch), (out, (first, step, len))| {
                    if buf.len() < len * ld {
                        buf.resize(len * ld, 0.0);
                    }
                    let buf = &mut buf[..len * ld];
                    gemm_packed(&xs[first * c..], step * c, len, &panels, buf, ld);
                    for row in buf.chunks_exact_mut(ld) {
                        for (y, &b) in row.iter_mut().zip(b_qkv) {
                            *y += b;
                        }
                    }
                    let a = ArrayView2::from_shape((len, ld), &*buf).expect("[L, ld]");
                    let (q, k) = (cols(a, 0..s.k), cols(a, s.k..2 * s.k));
                    let v = cols(a, 2 * s.k..width);
                    attend_heads(q, k, v, s.heads, s.causal, out, scratch);
                },
            );
    }

    /// The output projection of `concat` `[rows, V]`, the cache for
    /// backward, and the output activation (`[T, B, O]`, 0 at padded steps).
    fn finish(
        &mut self,
        x: &Activation,
        layout: Layout,
        xp: ArcArray<f32, Ix2>,
        (qkv, w_qkv, b_qkv): (Option<Array2<f32>>, Array2<f32>, Vec<f32>),
        probs: Option<Vec<Vec<f32>>>,
        concat: Array2<f32>,
    ) -> Vec<Activation> {
        let s = self.sizes;
        let y = match &layout {
            Layout::Full { .. } => recycled_len(self.last_output.take(), layout.rows() * s.o),
            Layout::Packed { .. } => Vec::new(),
        };
        let y = project(concat.view(), &self.weights[OUT], self.bias(OUT), y);
        let y = layout.put_out(y).into_shared();
        self.last_output = Some(y.clone());
        self.cache = Some(Cache {
            layout,
            x: xp,
            qkv,
            w_qkv,
            b_qkv,
            probs,
            concat,
        });
        vec![Activation {
            data: y,
            format: x.format,
            lengths: x.lengths.clone(),
        }]
    }
}

/// Rows `rows` of `data` (`[T·B, C]` as a slice) packed into `[N, C]`.
fn gather(data: &[f32], c: usize, rows: &[usize]) -> Array2<f32> {
    let mut out = Vec::with_capacity(rows.len() * c);
    for &r in rows {
        out.extend_from_slice(&data[r * c..(r + 1) * c]);
    }
    Array2::from_shape_vec((rows.len(), c), out).expect("[N, C]")
}

/// Packed rows `[N, C]` put back at rows `rows` of a `[T, B, C]` array, 0
/// elsewhere, written in one pass.
fn scatter(packed: &Array2<f32>, rows: &[usize], (t, b): (usize, usize)) -> ArrayD<f32> {
    let c = packed.ncols();
    let mut at = vec![usize::MAX; t * b];
    for (p, &r) in rows.iter().enumerate() {
        at[r] = p;
    }
    let packed = packed.as_slice().expect("standard layout");
    let mut out = Vec::with_capacity(t * b * c);
    for &p in &at {
        match p {
            usize::MAX => out.resize(out.len() + c, 0.0),
            p => out.extend_from_slice(&packed[p * c..(p + 1) * c]),
        }
    }
    ArrayD::from_shape_vec(vec![t, b, c], out).expect("[T, B, C]")
}

impl LayerKernel for AttentionKernel {
    fn forward(&mut self, inputs: &[&Activation], ctx: &mut ForwardCtx) -> Result<Vec<Activation>> {
        let x = inputs
            .first()
            .ok_or_else(|| Error::layer(&self.name, "no input"))?;
        let s = self.sizes;
        if x.format != Format::CBT || x.data.shape()[2] != s.c {
            return Err(Error::layer(
                &self.name,
                format!(
                    "expects [T, B, {}] sequences, got shape {:?}",
                    s.c,
                    x.data.shape()
                ),
            ));
        }
        let layout = Layout::of(&x.seq_lengths());
        let xp = layout.take_in(&x.data);
        // The last pass's arrays, their allocations reused (no fresh pages).
        // Every value of these is overwritten below (each head writes its
        // columns of `concat` for every row).
        let (old_qkv, old_concat, old_probs) = match self.cache.take() {
            Some(c) => (c.qkv, Some(c.concat), c.probs),
            None => (None, None, None),
        };
        let n = layout.rows();
        let (w_qkv, b_qkv) = self.stacked_qkv();
        let concat = recycled_len(old_concat, n * s.v);
        let mut concat = Array2::from_shape_vec((n, s.v), concat).expect("[rows, V]");
        let parts = layout.seqs_mut(concat.view_mut());
        let training = ctx.mode == Mode::Training;
        if !training && Isa::best().avx512() {
            // Each sequence projected and attended on its own, while its
            // queries, keys and values are in the core's cache (the whole
            // `[rows, K + K + V]` went to memory and back: 6 MB per layer on
            // transformer-infer, read in rows 4 KB-aligned apart).
            Self::project_and_attend(&s, &layout, &xp, (&w_qkv, &b_qkv), parts);
            if self.spare.is_empty() {
                self.spare = old_probs.unwrap_or_default();
            }
            return Ok(self.finish(x, layout, xp, (None, w_qkv, b_qkv), None, concat));
        }
        let buf = recycled_len(old_qkv, n * (2 * s.k + s.v));
        let qkv = matmul_bias_packed(xp.view(), w_qkv.t(), &b_qkv, buf);
        let seqs = split_qkv(&layout, &s, qkv.view());
        let probs = if training {
            // Every head's weights kept for backward, in the last training
            // pass's buffers.
            let mut spare = std::mem::take(&mut self.spare);
            spare.extend(old_probs.into_iter().flatten());
            spare.resize_with(parts.len(), Vec::new);
            let bufs: Vec<Vec<f32>> = parts
                .into_iter()
                .zip(seqs.into_iter().zip(spare))
                .collect::<Vec<_>>()
                .into_par_iter()
                .map(|(out, (qkv, buf))| Self::attend(&s, qkv, out, buf))
                .collect();
            Some(bufs)
        } else {
            // Scores, softmax and values fused per block of queries: no
            // `[L, L]` matrix per head (backward, if called, recomputes them).
            if self.spare.is_empty() {
                self.spare = old_probs.unwrap_or_default();
            }
            parts
                .into_iter()
                .zip(seqs)
                .collect::<Vec<_>>()
                .into_par_iter()
                .for_each_init(AttentionScratch::default, |scratch, (out, (q, k, v))| {
                    attend_heads(q, k, v, s.heads, s.causal, out, scratch);
                });
            None
        };
        Ok(self.finish(x, layout, xp, (Some(qkv), w_qkv, b_qkv), probs, concat))
    }

    fn backward(
        &mut self,
        mut grads: Vec<Option<ArrayD<f32>>>,
    ) -> Result<Vec<Option<ArrayD<f32>>>> {
        let c = self.cache.as_ref().ok_or_else(|| no_forward(&self.name))?;
        let s = self.sizes;
        let (t, b) = c.layout.time_batch();
        let dy = grad_or_zeros(&mut grads, &[t, b, s.o]);
        if dy.shape() != [t, b, s.o] {
            return Err(Error::layer(
                &self.name,
                format!(
                    "output gradient of shape {:?}, expected {:?}",
                    dy.shape(),
                    [t, b, s.o]
                ),
            ));
        }
        let dyp = c.layout.take_in(&dy.into_shared());
        // Queries, keys and values (recomputed after an inference pass that
        // did not keep them).
        let recomputed;
        let qkv = match &c.qkv {
            Some(qkv) => qkv,
            None => {
                recomputed = matmul_bias_packed(c.x.view(), c.w_qkv.t(), &c.b_qkv, Vec::new());
                &recomputed
            }
        };
        let n = c.layout.rows();
        // Output projection.
        let mut dwo = Array2::zeros((s.o, s.v));
        matmul_into(dyp.t(), c.concat.view(), dwo.view_mut(), false);
        let mut dconcat = Array2::zeros((n, s.v));
        matmul_into(
            dyp.view(),
            mat(&self.weights[OUT]),
            dconcat.view_mut(),
            false,
        );
        // Attention, per sequence, into the gradients of the stacked
        // queries, keys and values `[rows, K + K + V]`.
        let mut dqkv = Array2::zeros((n, 2 * s.k + s.v));
        let l = &c.layout;
        let probs = (0..).map(|i| c.probs.as_ref().map(|p| &p[i][..]));
        let parts = split_qkv_mut(l, &s, dqkv.view_mut())
            .into_iter()
            .zip(split_qkv(l, &s, qkv.view()))
            .zip(l.seqs(dconcat.view()))
            .zip(probs)
            .collect::<Vec<_>>();
        parts
            .into_par_iter()
            .for_each(|((((dq, dk, dv), (q, k, v)), dout), p)| {
                Self::attend_backward(&s, q, k, v, p, dout, dq, dk, dv);
            });
        // Input projections: one product each for the stacked weights'
        // gradient `[K + K + V, C]` and the input's.
        let mut dw_qkv = Array2::zeros(c.w_qkv.raw_dim());
        matmul_into(dqkv.t(), c.x.view(), dw_qkv.view_mut(), false);
        let split = [0, s.k, 2 * s.k, 2 * s.k + s.v];
        let mut dws: Vec<Array2<f32>> = split
            .windows(2)
            .map(|r| {
                dw_qkv
                    .slice_axis(Axis(0), Slice::from(r[0]..r[1]))
                    .to_owned()
            })
            .collect();
        let dx = self.input_grad_needed.then(|| {
            let mut dx = Array2::zeros((n, s.c));
            matmul_into(dqkv.view(), c.w_qkv.view(), dx.view_mut(), false);
            c.layout.put_out(dx)
        });
        let db_qkv = dqkv.sum_axis(Axis(0));
        let mut dbs: Vec<ArrayD<f32>> = split
            .windows(2)
            .map(|r| {
                db_qkv
                    .slice_axis(Axis(0), Slice::from(r[0]..r[1]))
                    .to_owned()
                    .into_dyn()
            })
            .collect();
        dbs.push(dyp.sum_axis(Axis(0)).into_dyn());
        dws.push(dwo);
        for (w, dw) in self.weights.iter_mut().zip(dws) {
            w.grad = dw.into_dyn();
        }
        if let Some(biases) = &mut self.biases {
            for (bias, db) in biases.iter_mut().zip(dbs) {
                bias.grad = db;
            }
        }
        Ok(vec![dx])
    }

    fn set_input_grad_needed(&mut self, needed: bool) {
        self.input_grad_needed = needed;
    }

    fn learnables(&self) -> Vec<&Learnable> {
        let mut l: Vec<&Learnable> = self.weights.iter().collect();
        l.extend(self.biases.iter().flatten());
        l
    }
    fn learnables_mut(&mut self) -> Vec<&mut Learnable> {
        let mut l: Vec<&mut Learnable> = self.weights.iter_mut().collect();
        l.extend(self.biases.iter_mut().flatten());
        l
    }
}
