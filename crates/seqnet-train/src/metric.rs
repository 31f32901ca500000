//! MATLAB's `Metrics` training option: the metrics besides the loss that
//! training computes on every mini-batch and validation — accuracy,
//! precision, recall, F-score and AUC for classification, RMSE, MAE and MAPE
//! for regression — and their accumulation over the real (unpadded) steps of
//! predictions.

use crate::error::{Error, Result};
use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// A metric (MATLAB's names, lowercase in JSON and on the command line).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    /// Fraction of steps (or observations) whose largest score is the true class.
    Accuracy,
    /// Macro average over classes of TP / (TP + FP).
    Precision,
    /// Macro average over classes of TP / (TP + FN).
    Recall,
    /// Macro average over classes of 2·P·R / (P + R).
    Fscore,
    /// Area under the ROC curve, one class against the rest, averaged over
    /// the classes that have both positives and negatives.
    Auc,
    /// Root mean squared error.
    Rmse,
    /// Mean absolute error.
    Mae,
    /// Mean absolute percentage error, in percent, over targets that are not 0.
    Mape,
}

impl Metric {
    /// Every metric, in the order tables and plots show them.
    pub const ALL: [Metric; 8] = [
        Metric::Accuracy,
        Metric::Precision,
        Metric::Recall,
        Metric::Fscore,
        Metric::Auc,
        Metric::Rmse,
        Metric::Mae,
        Metric::Mape,
    ];

    /// The lowercase name (`fscore`).
    pub fn name(self) -> &'static str {
        match self {
            Metric::Accuracy => "accuracy",
            Metric::Precision => "precision",
            Metric::Recall => "recall",
            Metric::Fscore => "fscore",
            Metric::Auc => "auc",
            Metric::Rmse => "rmse",
            Metric::Mae => "mae",
            Metric::Mape => "mape",
        }
    }

    /// The title tables and plots show (`F-Score`).
    pub fn title(self) -> &'static str {
        match self {
            Metric::Accuracy => "Accuracy",
            Metric::Precision => "Precision",
            Metric::Recall => "Recall",
            Metric::Fscore => "F-Score",
            Metric::Auc => "AUC",
            Metric::Rmse => "RMSE",
            Metric::Mae => "MAE",
            Metric::Mape => "MAPE",
        }
    }

    /// The metric named `name` (case-insensitive; `f-score` and `f1` too).
    pub fn parse(name: &str) -> Option<Metric> {
        let n = name.trim().to_ascii_lowercase();
        match n.as_str() {
            "f-score" | "f1" => Some(Metric::Fscore),
            _ => Metric::ALL.into_iter().find(|m| m.name() == n),
        }
    }

    /// Whether the metric is one of classification's (else regression's).
    pub fn for_classification(self) -> bool {
        matches!(
            self,
            Metric::Accuracy | Metric::Precision | Metric::Recall | Metric::Fscore | Metric::Auc
        )
    }

    /// Whether the metric is shown in percent (accuracy, MAPE).
    pub fn in_percent(self) -> bool {
        matches!(self, Metric::Accuracy | Metric::Mape)
    }

    /// `value` as tables and progress bars show it (`97.50%`, `0.9731`).
    pub fn format(self, value: f32) -> String {
        match self {
            Metric::Accuracy => format!("{:.2}%", value * 100.0),
            Metric::Mape => format!("{value:.2}%"),
            _ => format!("{value:.4}"),
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Checks that every metric of `metrics` suits the network's task, naming
/// the first that does not.
pub fn check_metrics(metrics: &[Metric], classification: bool) -> Result<()> {
    match metrics
        .iter()
        .find(|m| m.for_classification() != classification)
    {
        Some(m) => Err(Error::InvalidOption {
            option: "Metrics",
            message: format!(
                "'{m}' is a {} metric, and the network does {}",
                if classification {
                    "regression"
                } else {
                    "classification"
                },
                if classification {
                    "classification"
                } else {
                    "regression"
                },
            ),
        }),
        None => Ok(()),
    }
}

/// The values of some metrics (a metric without a value was not asked for,
/// or is undefined on the data, such as AUC with one class only). Stored as
/// a JSON object from metric name to value.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MetricValues([Option<f32>; 8]);

impl MetricValues {
    /// The value of `metric`, if any.
    pub fn get(&self, metric: Metric) -> Option<f32> {
        self.0[metric.index()]
    }

    /// Sets the value of `metric`.
    pub fn set(&mut self, metric: Metric, value: f32) {
        self.0[metric.index()] = Some(value);
    }

    /// The metrics with a value, in [`Metric::ALL`]'s order.
    pub fn iter(&self) -> impl Iterator<Item = (Metric, f32)> + '_ {
        Metric::ALL
            .into_iter()
            .filter_map(|m| self.get(m).map(|v| (m, v)))
    }

    /// Whether no metric has a value.
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(Option::is_none)
    }
}

impl Serialize for MetricValues {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        // Only finite values: JSON has no NaN.
        let finite: Vec<(Metric, f32)> = self.iter().filter(|(_, v)| v.is_finite()).collect();
        let mut map = s.serialize_map(Some(finite.len()))?;
        for (m, v) in finite {
            map.serialize_entry(m.name(), &v)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for MetricValues {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Values;
        impl<'de> Visitor<'de> for Values {
            type Value = MetricValues;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object from metric names to numbers")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<MetricValues, A::Error> {
                let mut values = MetricValues::default();
                while let Some((name, value)) = map.next_entry::<String, f32>()? {
                    let metric = Metric::parse(&name).ok_or_else(|| {
                        serde::de::Error::custom(format!("unknown metric '{name}'"))
                    })?;
                    values.set(metric, value);
                }
                Ok(values)
            }
        }
        d.deserialize_map(Values)
    }
}

/// Accumulates what the asked-for metrics need, step by step: a confusion
/// matrix and (for AUC) every step's scores for classification; error sums
/// for regression.
#[derive(Debug, Clone, Default)]
pub struct MetricAccumulator {
    metrics: Vec<Metric>,
    /// `K×K`, row = true class, column = predicted class (grown as needed).
    confusion: Vec<Vec<u64>>,
    /// Per step: the scores of every class and the true class (AUC only).
    scores: Vec<(Vec<f32>, usize)>,
    squared_error: f64,
    absolute_error: f64,
    elements: usize,
    /// Σ |error / target| · 100 over targets that are not 0, and their count.
    percentage_error: f64,
    percentage_elements: usize,
}

impl MetricAccumulator {
    /// An accumulator for `metrics` (nothing is kept for metrics not asked for).
    pub fn new(metrics: &[Metric]) -> Self {
        MetricAccumulator {
            metrics: metrics.to_vec(),
            ..Default::default()
        }
    }

    /// Whether any metric is asked for (else adding does nothing).
    pub fn is_active(&self) -> bool {
        !self.metrics.is_empty()
    }

    /// Adds one classified step: the scores of every class and the true class.
    pub fn add_class(&mut self, scores: &[f32], truth: usize) {
        if self.metrics.is_empty() {
            return;
        }
        let k = scores.len().max(truth + 1);
        if self.confusion.len() < k {
            self.confusion.resize(k, Vec::new());
        }
        for row in &mut self.confusion {
            row.resize(k.max(row.len()), 0);
        }
        self.confusion[truth][argmax(scores)] += 1;
        if self.metrics.contains(&Metric::Auc) {
            self.scores.push((scores.to_vec(), truth));
        }
    }

    /// Adds one regression step: predicted and target responses.
    pub fn add_responses(&mut self, predicted: &[f32], target: &[f32]) {
        if self.metrics.is_empty() {
            return;
        }
        for (&p, &t) in predicted.iter().zip(target) {
            let e = p as f64 - t as f64;
            self.squared_error += e * e;
            self.absolute_error += e.abs();
            self.elements += 1;
            if t != 0.0 {
                self.percentage_error += (e / t as f64).abs() * 100.0;
                self.percentage_elements += 1;
            }
        }
    }

    /// The values of the asked-for metrics that are defined on what was added.
    pub fn values(&self) -> MetricValues {
        let mut out = MetricValues::default();
        for &m in &self.metrics {
            if let Some(v) = self.value(m) {
                out.set(m, v as f32);
            }
        }
        out
    }

    fn value(&self, metric: Metric) -> Option<f64> {
        let n = self.elements as f64;
        match metric {
            Metric::Accuracy => {
                let total: u64 = self.confusion.iter().flatten().sum();
                let right: u64 = (0..self.confusion.len())
                    .map(|c| self.confusion[c][c])
                    .sum();
                (total > 0).then(|| right as f64 / total as f64)
            }
            Metric::Precision => self.macro_average(|tp, fp, _| ratio(tp, tp + fp)),
            Metric::Recall => self.macro_average(|tp, _, fn_| ratio(tp, tp + fn_)),
            Metric::Fscore => self.macro_average(|tp, fp, fn_| {
                let (p, r) = (ratio(tp, tp + fp), ratio(tp, tp + fn_));
                if p + r > 0.0 {
                    2.0 * p * r / (p + r)
                } else {
                    0.0
                }
            }),
            Metric::Auc => self.auc(),
            Metric::Rmse => (self.elements > 0).then(|| (self.squared_error / n).sqrt()),
            Metric::Mae => (self.elements > 0).then(|| self.absolute_error / n),
            Metric::Mape => (self.percentage_elements > 0)
                .then(|| self.percentage_error / self.percentage_elements as f64),
        }
    }

    /// The mean of `per_class(TP, FP, FN)` over the classes that occur as a
    /// true or a predicted class.
    fn macro_average(&self, per_class: impl Fn(u64, u64, u64) -> f64) -> Option<f64> {
        let k = self.confusion.len();
        let mut sum = 0.0;
        let mut classes = 0;
        for c in 0..k {
            let tp = self.confusion[c][c];
            let fn_: u64 = self.confusion[c].iter().sum::<u64>() - tp;
            let fp: u64 = (0..k).map(|t| self.confusion[t][c]).sum::<u64>() - tp;
            if tp + fn_ + fp > 0 {
                sum += per_class(tp, fp, fn_);
                classes += 1;
            }
        }
        (classes > 0).then(|| sum / classes as f64)
    }

    /// One-vs-rest AUC averaged over the classes with positives and
    /// negatives: for each, the probability that a positive step scores
    /// higher than a negative one (ties count half).
    fn auc(&self) -> Option<f64> {
        let k = self.confusion.len();
        let mut sum = 0.0;
        let mut classes = 0;
        for c in 0..k {
            let mut ranked: Vec<(f32, bool)> = self
                .scores
                .iter()
                .map(|(s, t)| (s.get(c).copied().unwrap_or(f32::NEG_INFINITY), *t == c))
                .collect();
            let positives = ranked.iter().filter(|r| r.1).count();
            let negatives = ranked.len() - positives;
            if positives == 0 || negatives == 0 {
                continue;
            }
            ranked.sort_by(|a, b| a.0.total_cmp(&b.0));
            // Mann–Whitney: the positives' mid-ranks.
            let mut rank_sum = 0.0;
            let mut i = 0;
            while i < ranked.len() {
                let mut j = i;
                while j < ranked.len() && ranked[j].0 == ranked[i].0 {
                    j += 1;
                }
                let mid_rank = (i + 1 + j) as f64 / 2.0;
                rank_sum += mid_rank * ranked[i..j].iter().filter(|r| r.1).count() as f64;
                i = j;
            }
            let (p, n) = (positives as f64, negatives as f64);
            sum += (rank_sum - p * (p + 1.0) / 2.0) / (p * n);
            classes += 1;
        }
        (classes > 0).then(|| sum / classes as f64)
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// Index of the largest value (the first of equals).
fn argmax(values: &[f32]) -> usize {
    let mut best = (0, f32::NEG_INFINITY);
    for (i, &v) in values.iter().enumerate() {
        if v > best.1 {
            best = (i, v);
        }
    }
    best.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: Option<f32>, b: f64) {
        let a = a.expect("a value");
        assert!((a as f64 - b).abs() < 1e-6, "{a} != {b}");
    }

    /// Six steps of three classes. Predicted (argmax) against true:
    ///
    /// | true \ predicted | 0 | 1 | 2 |
    /// |---|---|---|---|
    /// | 0 | 2 | 1 | 0 |
    /// | 1 | 0 | 1 | 1 |
    /// | 2 | 0 | 0 | 1 |
    #[test]
    fn classification_metrics_by_hand() {
        let steps: [([f32; 3], usize); 6] = [
            ([0.7, 0.2, 0.1], 0),
            ([0.6, 0.3, 0.1], 0),
            ([0.3, 0.6, 0.1], 0),
            ([0.2, 0.5, 0.3], 1),
            ([0.1, 0.4, 0.5], 1),
            ([0.1, 0.2, 0.7], 2),
        ];
        let mut acc = MetricAccumulator::new(&Metric::ALL[..5]);
        for (s, t) in &steps {
            acc.add_class(s, *t);
        }
        let v = acc.values();
        close(v.get(Metric::Accuracy), 4.0 / 6.0);
        // Precision: class 0: 2/2, class 1: 1/2, class 2: 1/2.
        close(v.get(Metric::Precision), (1.0 + 0.5 + 0.5) / 3.0);
        // Recall: 2/3, 1/2, 1/1.
        close(v.get(Metric::Recall), (2.0 / 3.0 + 0.5 + 1.0) / 3.0);
        // F: 2·1·(2/3)/(5/3) = 0.8, 0.5, 2·0.5·1/1.5 = 2/3.
        close(v.get(Metric::Fscore), (0.8 + 0.5 + 2.0 / 3.0) / 3.0);
        // AUC, class 0: positives score 0.7, 0.6, 0.3; negatives 0.2, 0.1, 0.1:
        // every pair ordered: 1. Class 1: positives 0.5, 0.4; negatives 0.2,
        // 0.3, 0.6, 0.2: 0.5 beats 3 of 4, 0.4 beats 3 of 4: 6/8. Class 2:
        // positive 0.7 beats all five: 1.
        close(v.get(Metric::Auc), (1.0 + 0.75 + 1.0) / 3.0);
        assert_eq!(v.get(Metric::Rmse), None);
    }

    #[test]
    fn auc_counts_ties_half_and_skips_one_sided_classes() {
        let mut acc = MetricAccumulator::new(&[Metric::Auc]);
        // Class 0: positive 0.5 and negative 0.5 tie; class 1 the reverse.
        acc.add_class(&[0.5, 0.5], 0);
        acc.add_class(&[0.5, 0.5], 1);
        close(acc.values().get(Metric::Auc), 0.5);
        let mut one = MetricAccumulator::new(&[Metric::Auc]);
        one.add_class(&[0.9, 0.1], 0);
        assert_eq!(one.values().get(Metric::Auc), None);
    }

    #[test]
    fn regression_metrics_by_hand() {
        let mut acc = MetricAccumulator::new(&[Metric::Rmse, Metric::Mae, Metric::Mape]);
        // Errors 1, −2, 0.5 (two-response step, then one with a zero target).
        acc.add_responses(&[3.0, 2.0], &[2.0, 4.0]);
        acc.add_responses(&[0.5], &[0.0]);
        let v = acc.values();
        close(v.get(Metric::Rmse), ((1.0 + 4.0 + 0.25) / 3.0f64).sqrt());
        close(v.get(Metric::Mae), 3.5 / 3.0);
        // |1/2| and |−2/4| in percent; the zero target is left out.
        close(v.get(Metric::Mape), 50.0);
        assert_eq!(v.get(Metric::Accuracy), None);
    }

    #[test]
    fn values_read_back_from_json_and_names_parse() {
        let mut v = MetricValues::default();
        v.set(Metric::Fscore, 0.5);
        v.set(Metric::Auc, f32::NAN);
        let json = serde_json::to_string(&v).unwrap();
        assert_eq!(json, r#"{"fscore":0.5}"#);
        let back: MetricValues = serde_json::from_str(&json).unwrap();
        assert_eq!(back.get(Metric::Fscore), Some(0.5));
        assert_eq!(Metric::parse("F-Score"), Some(Metric::Fscore));
        assert_eq!(Metric::parse("AUC"), Some(Metric::Auc));
        assert_eq!(Metric::parse("r2"), None);
        assert!(check_metrics(&[Metric::Rmse], true).is_err());
        assert!(check_metrics(&[Metric::Auc, Metric::Accuracy], true).is_ok());
    }
}
