//! Learn-rate schedules: MATLAB's `LearnRateSchedule` option with the
//! schedule objects of R2024b (`piecewiseLearnRate`, `warmupLearnRate`,
//! `polynomialLearnRate`, `exponentialLearnRate`, `cosineLearnRate`,
//! `cyclicalLearnRate`), their property names in camelCase.
//!
//! A schedule scales the base rate (`InitialLearnRate`) by a factor that
//! depends on the schedule step `k` (0-based): the epoch when
//! `frequencyUnit` is `epoch` (every iteration of an epoch has the same
//! rate), the iteration when it is `iteration`.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// What a schedule counts its steps in (MATLAB's `FrequencyUnit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum FrequencyUnit {
    #[default]
    Epoch,
    Iteration,
}

/// How the learning rate changes during training. In JSON an object with a
/// `type` and the schedule's properties (any subset; the rest take MATLAB's
/// defaults), e.g. `{"type": "cosine", "period": 20}`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "type")]
pub enum LearnRateSchedule {
    /// The initial rate throughout.
    None,
    /// Multiply by `drop_factor` every `drop_period` epochs
    /// (`LearnRateDropFactor`, `LearnRateDropPeriod`).
    #[serde(rename_all = "camelCase")]
    Piecewise {
        drop_factor: f32,
        drop_period: usize,
    },
    /// From `initial_factor` to `final_factor` linearly over `num_steps`
    /// steps, then `final_factor`: factor(k) = γ0 + (γN − γ0)·k/N for k < N.
    #[serde(rename_all = "camelCase")]
    Warmup {
        #[serde(default)]
        initial_factor: f32,
        #[serde(default = "one")]
        final_factor: f32,
        #[serde(default = "five")]
        num_steps: usize,
        #[serde(default = "iteration")]
        frequency_unit: FrequencyUnit,
    },
    /// A power law from `initial_factor` to `final_factor` over `num_steps`
    /// steps (`None`: `MaxEpochs`, over the whole training), then
    /// `final_factor`: factor(k) = γN + (γ0 − γN)·(1 − k/N)^λ for k ≤ N.
    #[serde(rename_all = "camelCase")]
    Polynomial {
        #[serde(default = "one")]
        initial_factor: f32,
        #[serde(default)]
        final_factor: f32,
        #[serde(default = "one")]
        power: f32,
        #[serde(default)]
        num_steps: Option<usize>,
        #[serde(default)]
        frequency_unit: FrequencyUnit,
    },
    /// Multiply by `drop_factor` every `period` steps, smoothly:
    /// factor(k) = DropFactor^(k/Period).
    #[serde(rename_all = "camelCase")]
    Exponential {
        #[serde(default = "half")]
        drop_factor: f32,
        #[serde(default = "one_step")]
        period: usize,
        #[serde(default)]
        frequency_unit: FrequencyUnit,
    },
    /// A half cosine from `initial_factor` down to `final_factor` over
    /// `period` steps (`None`: `MaxEpochs`), restarting after each period
    /// (warm restarts), each period `period_growth_factor` times longer than
    /// the one before: factor = γN + ½(γ0 − γN)(1 + cos(π·t/P)), where `t`
    /// is the step within the current period of length `P`.
    #[serde(rename_all = "camelCase")]
    Cosine {
        #[serde(default = "one")]
        initial_factor: f32,
        #[serde(default)]
        final_factor: f32,
        #[serde(default)]
        period: Option<usize>,
        #[serde(default = "one")]
        period_growth_factor: f32,
        #[serde(default)]
        frequency_unit: FrequencyUnit,
    },
    /// A triangle wave between 1 and `max_factor` with `period` steps per
    /// cycle: rising for `step_ratio`·Period steps from 1, then falling back
    /// over the rest of the cycle.
    #[serde(rename_all = "camelCase")]
    Cyclical {
        #[serde(default = "ten")]
        max_factor: f32,
        #[serde(default = "ten_steps")]
        period: usize,
        #[serde(default = "quarter")]
        step_ratio: f32,
        #[serde(default)]
        frequency_unit: FrequencyUnit,
    },
}

fn one() -> f32 {
    1.0
}
fn half() -> f32 {
    0.5
}
fn quarter() -> f32 {
    0.25
}
fn ten() -> f32 {
    10.0
}
fn five() -> usize {
    5
}
fn one_step() -> usize {
    1
}
fn ten_steps() -> usize {
    10
}
fn iteration() -> FrequencyUnit {
    FrequencyUnit::Iteration
}

impl LearnRateSchedule {
    /// The schedule MATLAB's `LearnRateSchedule` name stands for, with its
    /// default properties (`piecewise`: factor 0.1 every 10 epochs).
    pub fn named(name: &str) -> Option<Self> {
        let json = format!(r#"{{"type": "{name}"}}"#);
        match name {
            "none" => Some(LearnRateSchedule::None),
            "piecewise" => Some(LearnRateSchedule::Piecewise {
                drop_factor: 0.1,
                drop_period: 10,
            }),
            _ => serde_json::from_str(&json).ok(),
        }
    }

    /// The factor by which the base rate is scaled in 0-based `epoch`, at
    /// 0-based `iteration` (iterations trained before this one), for a run of
    /// `max_epochs` epochs.
    pub fn factor(&self, epoch: usize, iteration: usize, max_epochs: usize) -> f32 {
        let step = |unit: FrequencyUnit| match unit {
            FrequencyUnit::Epoch => epoch,
            FrequencyUnit::Iteration => iteration,
        } as f64;
        let f = match *self {
            LearnRateSchedule::None => 1.0,
            LearnRateSchedule::Piecewise {
                drop_factor,
                drop_period,
            } => (drop_factor as f64).powi((epoch / drop_period.max(1)) as i32),
            LearnRateSchedule::Warmup {
                initial_factor,
                final_factor,
                num_steps,
                frequency_unit,
            } => {
                let progress = (step(frequency_unit) / num_steps.max(1) as f64).min(1.0);
                initial_factor as f64 + (final_factor as f64 - initial_factor as f64) * progress
            }
            LearnRateSchedule::Polynomial {
                initial_factor,
                final_factor,
                power,
                num_steps,
                frequency_unit,
            } => {
                let n = num_steps.unwrap_or(max_epochs).max(1) as f64;
                let rest = (1.0 - step(frequency_unit) / n).max(0.0);
                final_factor as f64
                    + (initial_factor as f64 - final_factor as f64) * rest.powf(power as f64)
            }
            LearnRateSchedule::Exponential {
                drop_factor,
                period,
                frequency_unit,
            } => (drop_factor as f64).powf(step(frequency_unit) / period.max(1) as f64),
            LearnRateSchedule::Cosine {
                initial_factor,
                final_factor,
                period,
                period_growth_factor,
                frequency_unit,
            } => {
                let first = period.unwrap_or(max_epochs).max(1) as f64;
                let (t, p) =
                    within_period(step(frequency_unit), first, period_growth_factor as f64);
                final_factor as f64
                    + 0.5
                        * (initial_factor as f64 - final_factor as f64)
                        * (1.0 + (std::f64::consts::PI * t / p).cos())
            }
            LearnRateSchedule::Cyclical {
                max_factor,
                period,
                step_ratio,
                frequency_unit,
            } => {
                let p = period.max(1) as f64;
                let t = step(frequency_unit) % p;
                let up = step_ratio as f64 * p;
                let peak = max_factor as f64 - 1.0;
                if t < up {
                    1.0 + peak * t / up
                } else {
                    max_factor as f64 - peak * (t - up) / (p - up)
                }
            }
        };
        f as f32
    }

    /// Checks the schedule's properties, naming the first one out of range
    /// (MATLAB's name, e.g. `NumSteps`).
    pub fn validate(&self) -> Result<()> {
        match *self {
            LearnRateSchedule::None => Ok(()),
            LearnRateSchedule::Piecewise {
                drop_factor,
                drop_period,
            } => {
                within("LearnRateDropFactor", drop_factor, 0.0, 1.0, true)?;
                at_least_one("LearnRateDropPeriod", drop_period)
            }
            LearnRateSchedule::Warmup {
                initial_factor,
                final_factor,
                num_steps,
                ..
            } => {
                non_negative("InitialFactor", initial_factor)?;
                positive("FinalFactor", final_factor)?;
                at_least_one("NumSteps", num_steps)
            }
            LearnRateSchedule::Polynomial {
                initial_factor,
                final_factor,
                power,
                num_steps,
                ..
            } => {
                positive("InitialFactor", initial_factor)?;
                non_negative("FinalFactor", final_factor)?;
                positive("Power", power)?;
                num_steps.map_or(Ok(()), |n| at_least_one("NumSteps", n))
            }
            LearnRateSchedule::Exponential {
                drop_factor,
                period,
                ..
            } => {
                within("DropFactor", drop_factor, 0.0, 1.0, false)?;
                at_least_one("Period", period)
            }
            LearnRateSchedule::Cosine {
                initial_factor,
                final_factor,
                period,
                period_growth_factor,
                ..
            } => {
                positive("InitialFactor", initial_factor)?;
                non_negative("FinalFactor", final_factor)?;
                within(
                    "PeriodGrowthFactor",
                    period_growth_factor,
                    1.0,
                    f32::MAX,
                    true,
                )?;
                period.map_or(Ok(()), |n| at_least_one("Period", n))
            }
            LearnRateSchedule::Cyclical {
                max_factor,
                period,
                step_ratio,
                ..
            } => {
                within("MaxFactor", max_factor, 1.0, f32::MAX, true)?;
                within("StepRatio", step_ratio, 0.0, 1.0, false)?;
                at_least_one("Period", period)
            }
        }
    }
}

fn bad(option: &'static str, message: String) -> Result<()> {
    Err(Error::InvalidOption { option, message })
}

fn positive(option: &'static str, v: f32) -> Result<()> {
    if v > 0.0 && v.is_finite() {
        Ok(())
    } else {
        bad(option, format!("must be positive, got {v}"))
    }
}

fn non_negative(option: &'static str, v: f32) -> Result<()> {
    if v >= 0.0 && v.is_finite() {
        Ok(())
    } else {
        bad(option, format!("must be at least 0, got {v}"))
    }
}

fn at_least_one(option: &'static str, n: usize) -> Result<()> {
    if n == 0 {
        bad(option, "must be at least 1".into())
    } else {
        Ok(())
    }
}

/// `v` in `[lo, hi]` (`closed`) or `(lo, hi)`.
fn within(option: &'static str, v: f32, lo: f32, hi: f32, closed: bool) -> Result<()> {
    let inside = if closed {
        v >= lo && v <= hi
    } else {
        v > lo && v < hi
    };
    match (inside, closed, hi == f32::MAX) {
        (true, _, _) => Ok(()),
        (false, _, true) => bad(option, format!("must be at least {lo}, got {v}")),
        (false, true, false) => bad(option, format!("must be in [{lo}, {hi}], got {v}")),
        (false, false, false) => bad(option, format!("must be in ({lo}, {hi}), got {v}")),
    }
}

/// Where step `k` falls among periods of length `first`, `first·g`,
/// `first·g²`, …: the step within its period and that period's length.
fn within_period(k: f64, first: f64, growth: f64) -> (f64, f64) {
    let (mut t, mut p) = (k, first);
    while t >= p {
        t -= p;
        p *= growth;
    }
    (t, p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f32, b: f64) {
        assert!((a as f64 - b).abs() < 1e-6, "{a} != {b}");
    }

    fn schedule(json: &str) -> LearnRateSchedule {
        let s: LearnRateSchedule = serde_json::from_str(json).unwrap();
        s.validate().unwrap();
        s
    }

    /// Warm-up with MATLAB's defaults: 0 → 1 over 5 iterations.
    #[test]
    fn warmup_ramps_linearly_per_iteration() {
        let s = LearnRateSchedule::named("warmup").unwrap();
        // k/5 for k = 0..4, then 1; the epoch does not matter.
        for (k, want) in [(0, 0.0), (1, 0.2), (2, 0.4), (4, 0.8), (5, 1.0), (40, 1.0)] {
            close(s.factor(3, k, 30), want);
        }
        let s = schedule(
            r#"{"type": "warmup", "initialFactor": 0.5, "numSteps": 4, "frequencyUnit": "epoch"}"#,
        );
        // 0.5 + 0.5·e/4 by epoch.
        close(s.factor(1, 99, 30), 0.625);
        close(s.factor(3, 0, 30), 0.875);
    }

    #[test]
    fn polynomial_drops_by_a_power_law_over_max_epochs_by_default() {
        let s = schedule(r#"{"type": "polynomial", "power": 2}"#);
        // (1 − e/10)² over MaxEpochs = 10.
        close(s.factor(0, 0, 10), 1.0);
        close(s.factor(3, 0, 10), 0.49);
        close(s.factor(5, 0, 10), 0.25);
        close(s.factor(10, 0, 10), 0.0);
        close(s.factor(12, 0, 10), 0.0);
        let s = schedule(
            r#"{"type": "polynomial", "initialFactor": 2, "finalFactor": 0.5, "numSteps": 4, "frequencyUnit": "iteration"}"#,
        );
        // 0.5 + 1.5·(1 − 1/4) at iteration 1.
        close(s.factor(0, 1, 10), 1.625);
    }

    #[test]
    fn exponential_drops_by_drop_factor_every_period() {
        let s = schedule(r#"{"type": "exponential", "dropFactor": 0.25, "period": 2}"#);
        close(s.factor(0, 0, 10), 1.0);
        close(s.factor(1, 0, 10), 0.5);
        close(s.factor(2, 0, 10), 0.25);
        close(s.factor(5, 0, 10), 0.25f64.powf(2.5));
        close(
            LearnRateSchedule::named("exponential")
                .unwrap()
                .factor(3, 0, 10),
            0.125,
        );
    }

    #[test]
    fn cosine_restarts_with_growing_periods() {
        let s = schedule(r#"{"type": "cosine", "period": 4, "periodGrowthFactor": 2}"#);
        // Period 4: ½(1 + cos(πk/4)) for k = 0..3.
        close(s.factor(0, 0, 30), 1.0);
        close(
            s.factor(1, 0, 30),
            0.5 * (1.0 + (std::f64::consts::PI / 4.0).cos()),
        );
        close(s.factor(2, 0, 30), 0.5);
        // Epoch 4 restarts a period of 8: epoch 8 is step 4 of 8.
        close(s.factor(4, 0, 30), 1.0);
        close(s.factor(8, 0, 30), 0.5);
        // Epoch 12 starts the third period (of 16).
        close(s.factor(12, 0, 30), 1.0);
        // Default period: MaxEpochs = 20, so epoch 10 is half way.
        let s = schedule(r#"{"type": "cosine", "initialFactor": 1, "finalFactor": 0.2}"#);
        close(s.factor(10, 0, 20), 0.6);
    }

    #[test]
    fn cyclical_is_a_triangle_wave() {
        let s = schedule(
            r#"{"type": "cyclical", "maxFactor": 5, "period": 8, "stepRatio": 0.25, "frequencyUnit": "iteration"}"#,
        );
        // Up from 1 to 5 over 2 steps, down over 6.
        let want = [
            1.0,
            3.0,
            5.0,
            5.0 - 4.0 / 6.0,
            5.0 - 8.0 / 6.0,
            3.0,
            1.0 + 8.0 / 6.0,
        ];
        for (k, w) in want.iter().enumerate() {
            close(s.factor(0, k, 10), *w);
        }
        close(s.factor(0, 8, 10), 1.0);
        close(s.factor(0, 10, 10), 5.0);
    }

    #[test]
    fn out_of_range_properties_are_named() {
        for (json, option) in [
            (r#"{"type": "warmup", "numSteps": 0}"#, "NumSteps"),
            (
                r#"{"type": "exponential", "dropFactor": 1.5}"#,
                "DropFactor",
            ),
            (
                r#"{"type": "cosine", "periodGrowthFactor": 0.5}"#,
                "PeriodGrowthFactor",
            ),
            (r#"{"type": "cyclical", "stepRatio": 1}"#, "StepRatio"),
            (r#"{"type": "polynomial", "power": -1}"#, "Power"),
        ] {
            let s: LearnRateSchedule = serde_json::from_str(json).unwrap();
            let e = s.validate().unwrap_err().to_string();
            assert!(e.contains(option), "{json}: {e}");
        }
    }
}
