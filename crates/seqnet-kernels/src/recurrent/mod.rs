//! The recurrent layers' passes through time: the LSTM's fused forward
//! ([`lstm_forward()`]), backward ([`lstm_backward_into()`]) and streaming step
//! ([`lstm_step`]), the GRU's fused forward ([`gru_forward()`]) and backward
//! ([`gru`]) (and [`gru_before`] for the reset gate before the
//! multiplication), and the projected LSTM's ([`lstm_proj`]).
//!
//! # Conventions
//!
//! `B` is the batch size, `T` the padded length, `C` the input channels, `H`
//! the hidden units. Weights are row-major in PyTorch's layout (an LSTM's
//! gates `i, f, g, o`, a GRU's `r, z, n`, each `H` rows).
//!
//! * The input `C×B×T` is stored `[T, B, C]`, so its `T·B` rows `[T·B, C]`
//!   are a free reshape and the input projection of every step is one matrix
//!   product.
//! * The states of one direction live in a buffer of `T + 2` slots of
//!   `[B, H]` (`[(T+2)·B, H]` row-major): slot `t + 1` holds the state after
//!   step `t`; the initial state sits in slot `0` for the forward direction
//!   and in slot `T + 1` for the backward direction. The state *before* step
//!   `t` is then slot `t` (forward) or `t + 2` (backward), and those `T`
//!   slots are contiguous, in time order: the recurrent weights' gradient is
//!   one product over all steps.
//! * A padded step copies the previous state into its slot, so every slot
//!   holds the state "so far": padding never changes the state and gets no
//!   gradient.

pub mod gru;
pub mod gru_before;
pub mod gru_forward;
pub mod lstm_backward;
pub mod lstm_forward;
pub mod lstm_proj;
pub mod lstm_step;
mod row_pass;

pub use gru::{gru_backward_into, GruGrads, GruTrace};
pub use gru_before::{gru_before_backward, gru_before_forward};
pub use gru_forward::{gru_forward, GruBuffers, GruPanels};
pub use lstm_backward::{lstm_backward_into, LstmTrace, OutputGrad};
pub use lstm_forward::{fold_input, lstm_forward, GatePanels, PassBuffers};
pub use lstm_proj::{lstm_proj_backward, lstm_proj_forward, ProjBuffers, ProjTrace, ProjWeights};
pub use lstm_step::StepWeights;

use std::ops::Range;

/// The sizes and real-step spans of one pass through time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Steps {
    /// Padded length `T`.
    pub t: usize,
    /// Batch size `B`.
    pub b: usize,
    /// Observation `b`'s real steps (`B` spans).
    pub spans: Vec<Range<usize>>,
}

impl Steps {
    /// The steps of `spans.len()` observations padded to `t` steps.
    pub fn new(t: usize, spans: Vec<Range<usize>>) -> Self {
        Steps {
            t,
            b: spans.len(),
            spans,
        }
    }

    /// Whether observation `b` has a real step at time `t`.
    #[inline]
    pub fn real(&self, b: usize, t: usize) -> bool {
        self.spans[b].contains(&t)
    }

    /// Time step processed at position `k` of a direction's pass.
    #[inline]
    pub fn step(&self, k: usize, reverse: bool) -> usize {
        if reverse {
            self.t - 1 - k
        } else {
            k
        }
    }

    /// The slots of the state before and after step `t` (see the module docs).
    #[inline]
    pub fn slots(&self, t: usize, reverse: bool) -> (usize, usize) {
        if reverse {
            (t + 2, t + 1)
        } else {
            (t, t + 1)
        }
    }

    /// The slot of the initial state.
    pub fn initial_slot(&self, reverse: bool) -> usize {
        if reverse {
            self.t + 1
        } else {
            0
        }
    }

    /// The slot of the final state (after the last step the direction processes).
    pub fn final_slot(&self, reverse: bool) -> usize {
        if reverse {
            1
        } else {
            self.t
        }
    }

    /// The first of the `T` contiguous slots holding the state before each step.
    pub fn prev_start(&self, reverse: bool) -> usize {
        if reverse {
            2
        } else {
            0
        }
    }

    /// For each time step, one past the last observation with a real step
    /// there: the rows a step's product must cover (a batch sorted by
    /// decreasing length shrinks as its sequences end, as PyTorch's packed
    /// sequences do).
    pub fn active_rows(&self) -> Vec<usize> {
        (0..self.t)
            .map(|t| {
                (0..self.b)
                    .rev()
                    .find(|&bi| self.real(bi, t))
                    .map_or(0, |bi| bi + 1)
            })
            .collect()
    }

    /// Panics unless there is one span per observation (the kernels' first check).
    pub(crate) fn check(&self) {
        assert_eq!(self.spans.len(), self.b, "steps: one span per observation");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_of_both_directions() {
        let s = Steps {
            t: 4,
            b: 1,
            spans: std::iter::once(0..4).collect(),
        };
        assert_eq!(s.slots(0, false), (0, 1));
        assert_eq!(s.slots(3, true), (5, 4));
        assert_eq!((s.initial_slot(false), s.initial_slot(true)), (0, 5));
        assert_eq!((s.final_slot(false), s.final_slot(true)), (4, 1));
    }

    #[test]
    fn active_rows_shrink_as_sorted_sequences_end() {
        let s = Steps::new(4, vec![0..4, 0..2, 1..2, 0..0]);
        assert_eq!(s.active_rows(), vec![2, 3, 1, 1]);
    }
}
