//! A window sliding over time, shared by [`super::Convolution1d`],
//! [`super::MaxPooling1d`] and [`super::AveragePooling1d`]: the padding
//! ([`Padding1d`]), each sequence's output length, and where each sequence of a
//! padded mini-batch reads and writes.
//!
//! Every sequence of a mini-batch is windowed as if it were alone: its padding
//! is resolved from its own length, its windows start at its own first real
//! step, and a window position outside its real steps is padding (never the
//! mini-batch's padded steps, whatever they hold). Its outputs are written
//! where the output's [`SeqLengths`] say its real steps are: first for right
//! padding, last for left padding. So a padded batch gives each sequence what
//! it gives alone, for every stride, padding and padding direction.

use crate::activation::SeqLengths;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Padding of the time dimension (MATLAB's `'Padding'` of the 1-D layers).
///
/// Serialised as `"same"`, `"causal"` or `[before, after]`; read also from one
/// number (both sides), as MATLAB accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Padding1d {
    /// MATLAB's `'same'`: `ceil(L / stride)` outputs for `L` steps; the total
    /// padding `max(0, (out − 1)·stride + extent − L)` is split in two, the
    /// odd step going after (filter 8: 3 before, 4 after).
    Same,
    /// MATLAB's `'causal'` (convolution only): `extent − 1` steps before, none
    /// after, so output `t` sees steps `≤ t·stride` only.
    Causal,
    /// Steps added `[before, after]`.
    Explicit([usize; 2]),
}

impl Default for Padding1d {
    /// No padding, MATLAB's default.
    fn default() -> Self {
        Padding1d::Explicit([0, 0])
    }
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum PaddingRepr {
    Name(String),
    One(usize),
    List(Vec<usize>),
}

impl Serialize for Padding1d {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Padding1d::Same => PaddingRepr::Name("same".into()),
            Padding1d::Causal => PaddingRepr::Name("causal".into()),
            Padding1d::Explicit(p) => PaddingRepr::List(p.to_vec()),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Padding1d {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error as _;
        match PaddingRepr::deserialize(d)? {
            PaddingRepr::Name(s) if s.eq_ignore_ascii_case("same") => Ok(Padding1d::Same),
            PaddingRepr::Name(s) if s.eq_ignore_ascii_case("causal") => Ok(Padding1d::Causal),
            PaddingRepr::Name(s) => Err(D::Error::custom(format!(
                "padding must be \"same\", \"causal\", a number or [before, after], got \"{s}\""
            ))),
            PaddingRepr::One(p) => Ok(Padding1d::Explicit([p, p])),
            PaddingRepr::List(v) => match v[..] {
                [p] => Ok(Padding1d::Explicit([p, p])),
                [b, a] => Ok(Padding1d::Explicit([b, a])),
                _ => Err(D::Error::custom(format!(
                    "padding must have 1 or 2 elements, got {}",
                    v.len()
                ))),
            },
        }
    }
}

/// A window over time, all settings checked by [`Window1d::new`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window1d {
    /// Filter or pool size `K`.
    pub size: usize,
    pub stride: usize,
    /// 1 for pooling.
    pub dilation: usize,
    pub padding: Padding1d,
}

/// Where one sequence of a padded mini-batch reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SeqWindow {
    /// The input step of the sequence's first real step, and its length `L`.
    pub in_start: usize,
    pub len: usize,
    /// Padding before the sequence, resolved from `L`.
    pub before: usize,
    /// The output step of its first output, and its output length.
    pub out_start: usize,
    pub out_len: usize,
}

impl SeqWindow {
    /// The position (relative to the sequence's first real step) that window
    /// tap `k` of the sequence's output `j` reads; outside `0..len` it is padding.
    #[inline]
    pub fn tap(&self, w: &Window1d, j: usize, k: usize) -> isize {
        (j * w.stride + k * w.dilation) as isize - self.before as isize
    }
}

/// The windows of a whole padded mini-batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BatchWindows {
    pub seqs: Vec<SeqWindow>,
    /// The output's padded length `T'` and lengths.
    pub out_lengths: SeqLengths,
}

impl BatchWindows {
    /// `T'`.
    pub fn out_time(&self) -> usize {
        self.out_lengths.time
    }
}

impl Window1d {
    /// Checks the settings. `what` names the size in messages (`"FilterSize"`, `"PoolSize"`).
    pub fn new(
        size: usize,
        stride: usize,
        dilation: usize,
        padding: Padding1d,
        what: &str,
    ) -> Result<Self, String> {
        if size == 0 {
            return Err(format!("{what} must be positive"));
        }
        if stride == 0 {
            return Err("Stride must be positive".into());
        }
        if dilation == 0 {
            return Err("DilationFactor must be positive".into());
        }
        Ok(Window1d {
            size,
            stride,
            dilation,
            padding,
        })
    }

    /// The steps a window spans, `dilation·(size − 1) + 1`.
    pub fn extent(&self) -> usize {
        self.dilation * (self.size - 1) + 1
    }

    /// The largest padding on either side over all sequence lengths (for the
    /// pooling layers' "padding smaller than the pool" check).
    pub fn max_side_padding(&self) -> usize {
        match self.padding {
            // Total at most extent − 1 (stride ≥ 1), the larger half after.
            Padding1d::Same => (self.extent() - 1).div_ceil(2),
            Padding1d::Causal => self.extent() - 1,
            Padding1d::Explicit([b, a]) => b.max(a),
        }
    }

    /// `(padding before, output length)` of a sequence of `len` steps alone.
    /// A sequence shorter than the window (padding included) has no outputs.
    pub fn solo(&self, len: usize) -> (usize, usize) {
        let (s, e) = (self.stride, self.extent());
        if len == 0 {
            let before = match self.padding {
                Padding1d::Explicit([b, _]) => b,
                Padding1d::Causal => e - 1,
                Padding1d::Same => 0,
            };
            return (before, 0);
        }
        match self.padding {
            Padding1d::Same => {
                let out = len.div_ceil(s);
                let total = ((out - 1) * s + e).saturating_sub(len);
                (total / 2, out)
            }
            Padding1d::Causal => (e - 1, (len - 1) / s + 1),
            Padding1d::Explicit([b, a]) => {
                let padded = len + b + a;
                (b, if padded < e { 0 } else { (padded - e) / s + 1 })
            }
        }
    }

    /// Every sequence's window for a mini-batch with `lengths`.
    ///
    /// # Errors
    /// A message when the padded length itself is too short for one output.
    pub fn batch(&self, lengths: &SeqLengths) -> Result<BatchWindows, String> {
        let (_, out_time) = self.solo(lengths.time);
        if out_time == 0 {
            return Err(format!(
                "the sequences' padded length {} is shorter than the window of {} steps (padding included)",
                lengths.time,
                self.extent()
            ));
        }
        let seqs: Vec<SeqWindow> = (0..lengths.lengths.len())
            .map(|b| {
                let span = lengths.span(b);
                let (before, out_len) = self.solo(span.len());
                let out_start = match lengths.direction {
                    crate::PaddingDirection::Right => 0,
                    crate::PaddingDirection::Left => out_time - out_len,
                };
                SeqWindow {
                    in_start: span.start,
                    len: span.len(),
                    before,
                    out_start,
                    out_len,
                }
            })
            .collect();
        let out_lengths = SeqLengths {
            lengths: seqs.iter().map(|s| s.out_len).collect(),
            time: out_time,
            direction: lengths.direction,
        };
        Ok(BatchWindows { seqs, out_lengths })
    }
}

/// The gradient with respect to a `[T, B, C]` input of a windowed layer,
/// built one sequence at a time in parallel: `fill(b, window, d)` adds
/// sequence `b`'s contributions into `d` `[len, C]` (its real steps, in order);
/// padded steps get 0.
pub(crate) fn per_sequence_grad(
    time: usize,
    channels: usize,
    windows: &BatchWindows,
    fill: impl Fn(usize, &SeqWindow, &mut [f32]) + Sync,
) -> Vec<f32> {
    use rayon::prelude::*;
    let batch = windows.seqs.len();
    let per_seq: Vec<Vec<f32>> = windows
        .seqs
        .par_iter()
        .enumerate()
        .map(|(b, sw)| {
            let mut d = vec![0f32; sw.len * channels];
            fill(b, sw, &mut d);
            d
        })
        .collect();
    let mut dx = vec![0f32; time * batch * channels];
    for (b, (sw, d)) in windows.seqs.iter().zip(&per_seq).enumerate() {
        for (i, src) in d.chunks_exact(channels.max(1)).enumerate() {
            let at = ((sw.in_start + i) * batch + b) * channels;
            dx[at..at + channels].copy_from_slice(src);
        }
    }
    dx
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PaddingDirection;

    #[test]
    fn solo_lengths_and_padding() {
        let w = |k, s, d, p| Window1d::new(k, s, d, p, "FilterSize").unwrap();
        // 'same', filter 8: 3 before, 4 after.
        assert_eq!(w(8, 1, 1, Padding1d::Same).solo(10), (3, 10));
        // 'same', filter 4, stride 2, 7 steps: 4 outputs, total (4−1)·2 + 4 − 7 = 3.
        assert_eq!(w(4, 2, 1, Padding1d::Same).solo(7), (1, 4));
        assert_eq!(w(4, 2, 1, Padding1d::Same).solo(8), (1, 4));
        // Causal, filter 3 dilation 2: 4 before.
        assert_eq!(w(3, 1, 2, Padding1d::Causal).solo(5), (4, 5));
        assert_eq!(w(3, 2, 2, Padding1d::Causal).solo(5), (4, 3));
        // Explicit: floor((L + b + a − extent) / s) + 1.
        assert_eq!(w(3, 2, 1, Padding1d::Explicit([1, 1])).solo(9), (1, 5));
        assert_eq!(w(5, 1, 1, Padding1d::Explicit([0, 0])).solo(4), (0, 0));
        assert_eq!(w(5, 1, 1, Padding1d::Explicit([0, 0])).solo(0), (0, 0));
        assert!(Window1d::new(0, 1, 1, Padding1d::Same, "PoolSize").is_err());
    }

    #[test]
    fn left_padded_sequences_end_at_the_last_output_step() {
        let w = Window1d::new(3, 2, 1, Padding1d::Explicit([0, 0]), "PoolSize").unwrap();
        let l = SeqLengths::new(vec![9, 5, 2], 9, PaddingDirection::Left).unwrap();
        let b = w.batch(&l).unwrap();
        assert_eq!(b.out_time(), 4);
        assert_eq!(b.out_lengths.lengths, vec![4, 2, 0]);
        assert_eq!(
            b.seqs
                .iter()
                .map(|s| (s.in_start, s.out_start))
                .collect::<Vec<_>>(),
            vec![(0, 0), (4, 2), (7, 4)]
        );
        let short = SeqLengths::new(vec![2], 2, PaddingDirection::Right).unwrap();
        assert!(w.batch(&short).is_err());
    }
}
