//! `seqnet predict`: a trained model's predictions as CSV, and its accuracy
//! or RMSE when the data has labels or targets.

use super::data::{check_input, check_targets, open_data, output_kind, DataSet};
use super::{ensure_parent, flag_error, in_file, out, shown};
use super::{CliError, Result};
use ndarray::Array2;
use seqnet_data::Target;
use seqnet_train::{Model, PredictOptions};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// `seqnet predict`'s arguments.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example: seqnet predict --model model.safetensors --data data/japanese_vowels/JapaneseVowels_TEST.ts --out predictions.csv\n\n\
The CSV has one row per observation (observation numbers start at 1): the\n\
predicted label and one score per class, or the responses; for\n\
sequence-to-sequence networks one row per time step, with a step column.\n\
When the data has labels or targets, the last line printed is\n\
'accuracy=<fraction> n=<count>' or 'rmse=<value> n=<count>'."
)]
#[command(allow_negative_numbers = true)]
pub struct Args {
    /// The trained model (.safetensors).
    #[arg(long, value_name = "FILE")]
    pub model: PathBuf,
    /// The data: a .ts file or a datastore folder.
    #[arg(long, value_name = "DATA", required_unless_present = "input")]
    pub data: Option<PathBuf>,
    /// Instead of --data: one batch as a .npy array (float32) in the ONNX
    /// export's layout, [B, T, C] or [B, T, C, H, W], right-padded; the
    /// output is written as .npy ([B, K] or [B, T, K]).
    #[arg(long, value_name = "X.npy", conflicts_with_all = ["data", "confusion", "mini_batch_size"])]
    pub input: Option<PathBuf>,
    /// With --input: each sequence's length (.npy, int32 or int64, [B]);
    /// default: all fill the time axis.
    #[arg(long, value_name = "L.npy", requires = "input")]
    pub lengths: Option<PathBuf>,
    /// Where to write the predictions (.csv, or .npy with --input).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Observations per mini-batch [default: the model's training mini-batch size].
    #[arg(long, value_name = "N", value_parser = super::count)]
    pub mini_batch_size: Option<u64>,
    /// Draw the confusion matrix of a classification against the data's
    /// labels (per time step for sequence-to-sequence networks) to this
    /// picture (.png or .svg).
    #[arg(long, value_name = "FILE")]
    pub confusion: Option<PathBuf>,
}

/// Loads a model file, naming the file in errors that do not.
pub fn load_model(path: &Path) -> Result<Model> {
    if path.is_dir() {
        return Err(CliError::NotWhatIsNeeded {
            path: shown(path),
            problem: "is a folder, expected a model file (.safetensors)".into(),
        });
    }
    Model::load(path).map_err(|e| in_file(path, e.into()))
}

/// The options prediction uses: the model's training batching, or MATLAB's defaults.
pub fn predict_options(model: &Model, mini_batch_size: Option<u64>) -> PredictOptions {
    let mut o = model
        .options
        .as_ref()
        .map(PredictOptions::from)
        .unwrap_or_default();
    if let Some(n) = mini_batch_size {
        o.mini_batch_size = n as usize;
    }
    o
}

/// How well the predictions match the data's labels or targets.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Score {
    /// Fraction of correct labels over `n` predictions.
    Accuracy { fraction: f64, n: usize },
    /// Root mean squared error over `n` predictions.
    Rmse { value: f64, n: usize },
}

impl std::fmt::Display for Score {
    /// `accuracy=<fraction> n=<count>` or `rmse=<value> n=<count>`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Score::Accuracy { fraction, n } => write!(f, "accuracy={fraction:.4} n={n}"),
            Score::Rmse { value, n } => write!(f, "rmse={value:.6} n={n}"),
        }
    }
}

/// The predictions of a model on a data set, with what is needed to write and score them.
pub struct Predictions {
    /// `[steps, K]` per observation.
    pub outputs: Vec<Array2<f32>>,
    /// The class names (classification) or empty.
    pub classes: Vec<String>,
    /// Whether the network classifies.
    pub classification: bool,
    /// Whether the network predicts per time step.
    pub per_step: bool,
    /// Each observation's target.
    pub targets: Vec<Target>,
}

/// Runs `model` on `data`.
pub fn predict_data(
    model: &mut Model,
    data: &DataSet,
    options: &PredictOptions,
) -> Result<Predictions> {
    let graph = model.network.graph().clone();
    check_input(&graph, data)?;
    // Targets that do not fit the network are not compared, but prediction goes on.
    let compare = match check_targets(&graph, data, false) {
        Ok(()) => true,
        Err(e) => {
            eprintln!(
                "warning: {}; predicting without comparing",
                super::message(&e)
            );
            false
        }
    };
    let kind = output_kind(&graph)?;
    let outputs = model.predict(data.store.clone(), options)?;
    let targets = (0..data.store.len())
        .map(|i| {
            data.store
                .read(i)
                .map(|o| if compare { o.target } else { Target::None })
        })
        .collect::<seqnet_data::Result<Vec<_>>>()?;
    Ok(Predictions {
        outputs,
        classes: model.classes.clone(),
        classification: kind.classification,
        per_step: kind.per_step,
        targets,
    })
}

fn argmax(row: ndarray::ArrayView1<f32>) -> usize {
    let mut best = (0, f32::NEG_INFINITY);
    for (i, &v) in row.iter().enumerate() {
        if v > best.1 {
            best = (i, v);
        }
    }
    best.0
}

/// A CSV field, quoted when it needs to be.
fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

impl Predictions {
    /// The class name of index `k`.
    fn label(&self, k: usize) -> String {
        self.classes
            .get(k)
            .cloned()
            .unwrap_or_else(|| k.to_string())
    }

    /// The predicted class of every row of every observation.
    pub fn predicted_classes(&self) -> Vec<Vec<usize>> {
        self.outputs
            .iter()
            .map(|o| o.rows().into_iter().map(argmax).collect())
            .collect()
    }

    /// The CSV text.
    pub fn csv(&self) -> String {
        let k = self.outputs.first().map_or(0, |o| o.ncols());
        let has_labels = self
            .targets
            .iter()
            .any(|t| matches!(t, Target::Class(_) | Target::ClassSequence(_)));
        let mut s = String::from("observation");
        if self.per_step {
            s.push_str(",step");
        }
        if self.classification {
            s.push_str(",label");
            if has_labels {
                s.push_str(",true_label");
            }
            for c in 0..k {
                s.push_str(&format!(",{}", field(&format!("score_{}", self.label(c)))));
            }
        } else {
            for r in 0..k {
                s.push_str(&format!(",response_{}", r + 1));
            }
        }
        s.push('\n');
        for (i, (o, t)) in self.outputs.iter().zip(&self.targets).enumerate() {
            for (step, row) in o.rows().into_iter().enumerate() {
                let _ = write!(s, "{}", i + 1);
                if self.per_step {
                    let _ = write!(s, ",{}", step + 1);
                }
                if self.classification {
                    let _ = write!(s, ",{}", field(&self.label(argmax(row))));
                    if has_labels {
                        let truth = match t {
                            Target::Class(c) => self.label(*c),
                            Target::ClassSequence(c) => {
                                c.get(step).map(|c| self.label(*c)).unwrap_or_default()
                            }
                            _ => String::new(),
                        };
                        let _ = write!(s, ",{}", field(&truth));
                    }
                }
                for v in row {
                    let _ = write!(s, ",{v}");
                }
                s.push('\n');
            }
        }
        s
    }

    /// The confusion counts (`counts[true][predicted]`, class indices) over
    /// every compared observation or step, when the network classifies and
    /// the data has labels.
    pub fn confusion_counts(&self) -> Option<Vec<Vec<usize>>> {
        if !self.classification {
            return None;
        }
        let k = self
            .outputs
            .first()
            .map_or(0, |o| o.ncols())
            .max(self.classes.len());
        let mut counts = vec![vec![0usize; k]; k];
        let mut any = false;
        for (o, t) in self.outputs.iter().zip(&self.targets) {
            let pairs: Vec<(usize, usize)> = match t {
                Target::Class(c) if o.nrows() > 0 => vec![(*c, argmax(o.row(o.nrows() - 1)))],
                Target::ClassSequence(cs) => o
                    .rows()
                    .into_iter()
                    .zip(cs)
                    .map(|(row, c)| (*c, argmax(row)))
                    .collect(),
                _ => Vec::new(),
            };
            for (truth, predicted) in pairs {
                if truth < k && predicted < k {
                    counts[truth][predicted] += 1;
                    any = true;
                }
            }
        }
        any.then_some(counts)
    }

    /// The class names for a confusion matrix of `k` classes (indices when
    /// the model has no names).
    fn class_names(&self, k: usize) -> Vec<String> {
        (0..k).map(|c| self.label(c)).collect()
    }

    /// The accuracy or RMSE against the data's targets, when it has them.
    pub fn score(&self) -> Option<Score> {
        let (mut correct, mut n) = (0usize, 0usize);
        let (mut squared, mut elements) = (0f64, 0usize);
        for (o, t) in self.outputs.iter().zip(&self.targets) {
            match t {
                Target::None => return None,
                Target::Class(c) => {
                    n += 1;
                    correct += (o.nrows() > 0 && argmax(o.row(o.nrows() - 1)) == *c) as usize;
                }
                Target::ClassSequence(cs) => {
                    for (row, c) in o.rows().into_iter().zip(cs) {
                        n += 1;
                        correct += (argmax(row) == *c) as usize;
                    }
                }
                Target::Response(r) => {
                    n += 1;
                    if let Some(row) = o.rows().into_iter().next_back() {
                        for (a, b) in row.iter().zip(r) {
                            squared += ((a - b) as f64).powi(2);
                            elements += 1;
                        }
                    }
                }
                Target::ResponseSequence(rs) => {
                    for (row, r) in o.rows().into_iter().zip(rs.rows()) {
                        n += 1;
                        for (a, b) in row.iter().zip(r) {
                            squared += ((a - b) as f64).powi(2);
                            elements += 1;
                        }
                    }
                }
            }
        }
        if self.classification {
            (n > 0).then(|| Score::Accuracy {
                fraction: correct as f64 / n as f64,
                n,
            })
        } else {
            (elements > 0).then(|| Score::Rmse {
                value: (squared / elements as f64).sqrt(),
                n,
            })
        }
    }
}

/// Runs `seqnet predict`.
pub fn run(args: Args) -> Result<()> {
    if let Some(p) = &args.confusion {
        // Refuse a bad picture name before predicting, not after.
        super::train::picture_extension("--confusion", p)?;
    }
    let mut model = load_model(&args.model)?;
    let data_path = match (&args.input, &args.data) {
        (Some(x), _) => {
            return super::predict_raw::run(&mut model, x, args.lengths.as_deref(), &args.out)
        }
        (None, Some(d)) => d,
        (None, None) => {
            return Err(flag_error("--data", "give --data or --input"));
        }
    };
    let classes = model.classes.clone();
    let data = open_data(data_path, Some(&classes))?;
    let options = predict_options(&model, args.mini_batch_size);
    let predictions = predict_data(&mut model, &data, &options)?;
    ensure_parent(&args.out)?;
    seqnet_train::model::write_atomically(&args.out, predictions.csv().as_bytes())
        .map_err(CliError::from_write)?;
    let rows: usize = predictions.outputs.iter().map(|o| o.nrows()).sum();
    let mut text = format!(
        "{rows} prediction{} for {} observation{} written to {}\n",
        if rows == 1 { "" } else { "s" },
        predictions.outputs.len(),
        if predictions.outputs.len() == 1 {
            ""
        } else {
            "s"
        },
        shown(&args.out)
    );
    if let Some(path) = &args.confusion {
        let counts = predictions.confusion_counts().ok_or_else(|| {
            flag_error(
                "--confusion",
                if predictions.classification {
                    "the data has no labels to compare the predictions with"
                } else {
                    "the model does regression, not classification"
                },
            )
        })?;
        ensure_parent(path)?;
        crate::plots::confusion_matrix(&counts, &predictions.class_names(counts.len()), path)?;
        text.push_str(&format!("confusion matrix drawn to {}\n", shown(path)));
    }
    if let Some(score) = predictions.score() {
        text.push_str(&format!("{score}\n"));
    }
    out(&text)
}
