//! Seeded synthetic signals for sequence-to-sequence tasks: each signal is
//! a run of segments of three waveforms (sine, square, sawtooth) of random
//! period, amplitude, phase and length, plus uniform noise in `[-0.2, 0.2]`.
//!
//! - **Classification**: the waveform of the segment at every time step
//!   (`[T]` class indices into [`WAVEFORMS`]).
//! - **Regression**: the amplitude of the segment at every time step
//!   (`[T, 1]`), which a network must infer from the noisy signal around it.
//!
//! ```
//! use seqnet_data::waveforms::{WaveformTask, Waveforms};
//!
//! let set = Waveforms { count: 4, seed: 3, ..Default::default() };
//! let signals = set.generate().unwrap();
//! assert_eq!(signals.len(), 4);
//! let (observations, classes) = set.observations(WaveformTask::Classification).unwrap();
//! assert_eq!(classes.unwrap(), ["sine", "square", "sawtooth"]);
//! assert_eq!(observations[0].len(), signals[0].signal.nrows());
//! ```

use crate::error::{Error, Result};
use crate::observation::{Observation, Sequence, Target};
use ndarray::Array2;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The waveform names in class order.
pub const WAVEFORMS: [&str; 3] = ["sine", "square", "sawtooth"];

/// The settings of a synthetic signal set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Waveforms {
    /// The number of signals.
    pub count: usize,
    /// The shortest signal, in steps.
    pub min_steps: usize,
    /// The longest signal, in steps.
    pub max_steps: usize,
    /// The seed: the same settings give the same signals.
    pub seed: u64,
}

impl Default for Waveforms {
    /// 200 signals of 60 to 139 steps, seed 0.
    fn default() -> Self {
        Waveforms {
            count: 200,
            min_steps: 60,
            max_steps: 139,
            seed: 0,
        }
    }
}

/// One signal and what it is made of, step by step.
#[derive(Debug, Clone, PartialEq)]
pub struct WaveformSignal {
    /// The noisy signal, `[T, 1]`.
    pub signal: Array2<f32>,
    /// The waveform of each step, `[T]` (indices into [`WAVEFORMS`]).
    pub waveform: Vec<usize>,
    /// The amplitude of each step's segment, `[T]`.
    pub amplitude: Vec<f32>,
}

/// What the network predicts at each step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaveformTask {
    /// The waveform (3 classes).
    Classification,
    /// The amplitude (1 response).
    Regression,
}

impl Waveforms {
    /// Checks the settings, naming the first one out of range.
    pub fn validate(&self) -> Result<()> {
        let bad =
            |option: &'static str, message: String| Err(Error::InvalidOption { option, message });
        if self.count == 0 {
            return bad("count", "must be at least 1".into());
        }
        if self.min_steps < 2 || self.min_steps > self.max_steps {
            return bad(
                "steps",
                format!(
                    "need 2 ≤ min_steps ≤ max_steps, got {} and {}",
                    self.min_steps, self.max_steps
                ),
            );
        }
        Ok(())
    }

    /// Generates the signals.
    pub fn generate(&self) -> Result<Vec<WaveformSignal>> {
        self.validate()?;
        let mut rng = StdRng::seed_from_u64(self.seed);
        Ok((0..self.count).map(|_| self.signal(&mut rng)).collect())
    }

    fn signal(&self, rng: &mut StdRng) -> WaveformSignal {
        let t = rng.random_range(self.min_steps..=self.max_steps);
        let (mut signal, mut waveform, mut amplitude) = (Vec::new(), Vec::new(), Vec::new());
        while signal.len() < t {
            let kind = rng.random_range(0..WAVEFORMS.len());
            let len = rng.random_range(15..40).min(t - signal.len());
            let period = rng.random_range(6.0..16.0f32);
            let amp = rng.random_range(0.5..1.5f32);
            let phase = rng.random_range(0.0..1.0f32);
            for i in 0..len {
                let p = (i as f32 / period + phase).fract();
                let v = amp
                    * match kind {
                        0 => (2.0 * std::f32::consts::PI * p).sin(),
                        1 if p < 0.5 => 1.0,
                        1 => -1.0,
                        _ => 2.0 * p - 1.0,
                    };
                signal.push(v + rng.random_range(-0.2..0.2f32));
                waveform.push(kind);
                amplitude.push(amp);
            }
        }
        WaveformSignal {
            signal: Array2::from_shape_vec((t, 1), signal).expect("t values"),
            waveform,
            amplitude,
        }
    }

    /// The signals as observations for `task`, with the class names for
    /// classification.
    pub fn observations(
        &self,
        task: WaveformTask,
    ) -> Result<(Vec<Observation>, Option<Vec<String>>)> {
        let observations = self
            .generate()?
            .into_iter()
            .map(|s| {
                let t = s.signal.nrows();
                let target = match task {
                    WaveformTask::Classification => Target::ClassSequence(s.waveform),
                    WaveformTask::Regression => Target::ResponseSequence(
                        Array2::from_shape_vec((t, 1), s.amplitude).expect("t values"),
                    ),
                };
                Observation::new(Sequence::Features(s.signal), target)
            })
            .collect();
        let classes = (task == WaveformTask::Classification)
            .then(|| WAVEFORMS.iter().map(|s| s.to_string()).collect());
        Ok((observations, classes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_follow_their_segments() {
        let set = Waveforms {
            count: 20,
            seed: 5,
            ..Default::default()
        };
        let signals = set.generate().unwrap();
        assert_eq!(signals, set.generate().unwrap(), "seeded");
        for s in &signals {
            let t = s.signal.nrows();
            assert!((60..=139).contains(&t));
            assert_eq!((s.waveform.len(), s.amplitude.len()), (t, t));
            for (k, (&v, &a)) in s.signal.iter().zip(&s.amplitude).enumerate() {
                // |signal| ≤ amplitude + noise.
                assert!(v.abs() <= a + 0.2 + 1e-5, "step {k}: {v} vs amplitude {a}");
                assert!((0.5..1.5).contains(&a));
            }
            // Square segments take ±amplitude (plus noise) only.
            for ((&v, &a), &w) in s.signal.iter().zip(&s.amplitude).zip(&s.waveform) {
                if w == 1 {
                    assert!((v.abs() - a).abs() <= 0.2 + 1e-5);
                }
            }
        }
        let kinds: std::collections::BTreeSet<usize> =
            signals.iter().flat_map(|s| s.waveform.clone()).collect();
        assert_eq!(kinds.len(), 3);
        assert!(Waveforms {
            count: 0,
            ..Default::default()
        }
        .validate()
        .is_err());
    }
}
