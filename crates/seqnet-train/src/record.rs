//! What training reports: per-iteration figures, the whole record, and why
//! training stopped.

use crate::metric::MetricValues;
use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;

/// The figures of one training iteration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IterationInfo {
    /// 1-based epoch.
    pub epoch: usize,
    /// 1-based iteration, counted over the whole training.
    pub iteration: usize,
    /// The mini-batch loss (with the loss layers' normalization).
    pub loss: f32,
    /// Mini-batch accuracy in [0, 1] (classification).
    pub accuracy: Option<f32>,
    /// Mini-batch root mean squared error (regression).
    pub rmse: Option<f32>,
    pub learn_rate: f32,
    /// Seconds since training started.
    pub elapsed: f64,
    pub validation: Option<Metrics>,
    /// The mini-batch values of the metrics `TrainingOptions::metrics` asks for.
    #[serde(default)]
    pub metrics: MetricValues,
}

/// Loss and metric of a data set or mini-batch.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub loss: f32,
    pub accuracy: Option<f32>,
    pub rmse: Option<f32>,
    /// The metrics `TrainingOptions::metrics` asks for.
    #[serde(default)]
    pub metrics: MetricValues,
}

/// The whole training history (MATLAB's `info` output of `trainNetwork`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainingRecord {
    pub iterations: Vec<IterationInfo>,
    /// Iterations per epoch.
    pub iterations_per_epoch: usize,
    /// Why training ended; `None` while it is under way (as in the record a
    /// checkpoint holds).
    #[serde(default, deserialize_with = "stop_reason_or_legacy")]
    pub stop_reason: Option<StopReason>,
    /// The checkpoint written when training was interrupted, if any.
    #[serde(default)]
    pub checkpoint: Option<std::path::PathBuf>,
    /// The validation loss of the returned network, when validating.
    pub final_validation: Option<Metrics>,
}

/// Why training stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "reason")]
#[non_exhaustive]
pub enum StopReason {
    /// `MaxEpochs` epochs were trained.
    MaxEpochs,
    /// The validation loss did not decrease for `validations` validations in
    /// a row (`ValidationPatience`).
    ValidationPatience { validations: usize },
    /// An observer asked to stop ([`crate::TrainingObserver::wants_stop`]),
    /// as a MATLAB output function returning true does. The network is then
    /// what `OutputNetwork` says, as at any other normal end.
    StopRequested,
    /// The stop flag was set (Ctrl-C): training stopped between mini-batches
    /// and left the network as it was, with a checkpoint to resume from
    /// (`TrainingRecord::checkpoint`).
    Interrupted,
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StopReason::MaxEpochs => f.write_str("max epochs completed"),
            StopReason::ValidationPatience { validations } => write!(
                f,
                "validation loss did not decrease for {validations} validations"
            ),
            StopReason::StopRequested => f.write_str("stopped by an observer"),
            StopReason::Interrupted => f.write_str("interrupted"),
        }
    }
}

impl StopReason {
    /// The reason from the text earlier versions stored in checkpoints (their
    /// `Display`); `None` for the empty text of a run under way.
    fn from_legacy(text: &str) -> Option<Self> {
        let patience = text
            .strip_prefix("validation loss did not decrease for ")
            .and_then(|rest| rest.strip_suffix(" validations"))
            .and_then(|n| n.parse().ok());
        match text {
            "max epochs completed" => Some(StopReason::MaxEpochs),
            "interrupted" => Some(StopReason::Interrupted),
            _ => patience.map(|validations| StopReason::ValidationPatience { validations }),
        }
    }
}

/// Reads a stop reason as written now (an object, or null) or as earlier
/// versions wrote it into checkpoints (a string).
fn stop_reason_or_legacy<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<StopReason>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Stored {
        Now(Option<StopReason>),
        Legacy(String),
    }
    Ok(match Stored::deserialize(d)? {
        Stored::Now(r) => r,
        Stored::Legacy(s) => StopReason::from_legacy(&s),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_reasons_read_back_and_from_earlier_checkpoints() {
        for reason in [
            StopReason::MaxEpochs,
            StopReason::ValidationPatience { validations: 3 },
            StopReason::StopRequested,
            StopReason::Interrupted,
        ] {
            let record = TrainingRecord {
                stop_reason: Some(reason),
                ..Default::default()
            };
            let json = serde_json::to_string(&record).unwrap();
            let back: TrainingRecord = serde_json::from_str(&json).unwrap();
            assert_eq!(back.stop_reason, Some(reason), "{json}");
        }
        let legacy = |s: &str| {
            let json = format!(
                r#"{{"iterations": [], "iterations_per_epoch": 0, "stop_reason": "{s}", "final_validation": null}}"#
            );
            serde_json::from_str::<TrainingRecord>(&json)
                .unwrap()
                .stop_reason
        };
        assert_eq!(legacy(""), None);
        assert_eq!(legacy("interrupted"), Some(StopReason::Interrupted));
        assert_eq!(legacy("max epochs completed"), Some(StopReason::MaxEpochs));
        assert_eq!(
            legacy("validation loss did not decrease for 4 validations"),
            Some(StopReason::ValidationPatience { validations: 4 })
        );
    }
}
