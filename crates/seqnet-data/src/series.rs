//! Seeded synthetic series for forecasting (as MATLAB's "Time Series
//! Forecasting Using Deep Learning" trains on): each channel is the sum of
//! two sine waves, of periods 25 and 9 steps, with random amplitudes
//! (`[0.6, 1)` and `[0.2, 0.5)`) and phases, plus uniform noise in
//! `[-noise, noise]`.
//!
//! [`SineSeries::observations`] turns each series `x` of `T` steps into the
//! next-step regression a forecasting network trains on: the sequence
//! `x[0..T-1]` with the per-step targets `x[1..T]`.
//!
//! ```
//! use seqnet_data::series::SineSeries;
//!
//! let set = SineSeries { count: 3, steps: 50, ..Default::default() };
//! let series = set.generate().unwrap(); // [50, 1] each
//! let observations = set.observations().unwrap();
//! assert_eq!(observations[0].len(), 49);
//! assert_eq!(series[0].nrows(), 50);
//! ```

use crate::error::{Error, Result};
use crate::observation::{Observation, Sequence, Target};
use ndarray::{Array2, Axis, Slice};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::f32::consts::PI;

/// The settings of a set of series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SineSeries {
    /// The number of series.
    pub count: usize,
    /// Steps per series `T`.
    pub steps: usize,
    /// Channels per step `C`.
    pub channels: usize,
    /// The half-width of the uniform noise.
    pub noise: f32,
    /// The seed: the same settings give the same series.
    pub seed: u64,
}

impl Default for SineSeries {
    /// 100 series of 200 steps, 1 channel, noise 0.03, seed 0.
    fn default() -> Self {
        SineSeries {
            count: 100,
            steps: 200,
            channels: 1,
            noise: 0.03,
            seed: 0,
        }
    }
}

impl SineSeries {
    /// Checks the settings, naming the first one out of range.
    pub fn validate(&self) -> Result<()> {
        let bad =
            |option: &'static str, message: String| Err(Error::InvalidOption { option, message });
        if self.count == 0 {
            return bad("count", "must be at least 1".into());
        }
        if self.steps < 2 {
            return bad("steps", format!("must be at least 2, got {}", self.steps));
        }
        if self.channels == 0 {
            return bad("channels", "must be at least 1".into());
        }
        if !(0.0..=1.0).contains(&self.noise) {
            return bad("noise", format!("must be in [0, 1], got {}", self.noise));
        }
        Ok(())
    }

    /// The series, `[T, C]` each.
    pub fn generate(&self) -> Result<Vec<Array2<f32>>> {
        self.validate()?;
        let mut rng = StdRng::seed_from_u64(self.seed);
        Ok((0..self.count).map(|_| self.series(&mut rng)).collect())
    }

    fn series(&self, rng: &mut StdRng) -> Array2<f32> {
        let mut x = Array2::zeros((self.steps, self.channels));
        for c in 0..self.channels {
            let (a1, a2) = (rng.random_range(0.6..1.0f32), rng.random_range(0.2..0.5f32));
            let (p1, p2) = (
                rng.random_range(0.0..2.0 * PI),
                rng.random_range(0.0..2.0 * PI),
            );
            for t in 0..self.steps {
                let tf = t as f32;
                let noise = if self.noise > 0.0 {
                    rng.random_range(-self.noise..self.noise)
                } else {
                    0.0
                };
                x[[t, c]] = a1 * (2.0 * PI * tf / 25.0 + p1).sin()
                    + a2 * (2.0 * PI * tf / 9.0 + p2).sin()
                    + noise;
            }
        }
        x
    }

    /// Each series `x` as the sequence `x[0..T-1]` `[T-1, C]` with the
    /// per-step targets `x[1..T]` `[T-1, C]`.
    pub fn observations(&self) -> Result<Vec<Observation>> {
        Ok(self
            .generate()?
            .into_iter()
            .map(|x| {
                Observation::new(
                    Sequence::Features(x.slice_axis(Axis(0), Slice::from(..-1isize)).to_owned()),
                    Target::ResponseSequence(x.slice_axis(Axis(0), Slice::from(1..)).to_owned()),
                )
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_the_next_steps() {
        let set = SineSeries {
            count: 4,
            steps: 30,
            channels: 2,
            noise: 0.0,
            seed: 9,
        };
        let series = set.generate().unwrap();
        let obs = set.observations().unwrap();
        for (x, o) in series.iter().zip(&obs) {
            let (Sequence::Features(input), Target::ResponseSequence(next)) = (&o.data, &o.target)
            else {
                panic!("{o:?}")
            };
            assert_eq!(input.shape(), &[29, 2]);
            for t in 0..29 {
                assert_eq!(input.row(t), x.row(t));
                assert_eq!(next.row(t), x.row(t + 1));
            }
            // Without noise each channel is the two sines: below 1.0 + 0.5.
            assert!(x.iter().all(|v| v.abs() < 1.5));
        }
        assert_ne!(series[0].column(0), series[0].column(1));
        assert!(SineSeries {
            steps: 1,
            ..Default::default()
        }
        .validate()
        .is_err());
    }
}
