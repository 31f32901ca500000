//! `seqnet demo`: the main job. Trains the Japanese Vowels network of
//! MATLAB's "Sequence Classification Using Deep Learning" on the data in
//! `data/japanese_vowels`, evaluates it on the test set, and writes the
//! model, the training progress and the confusion matrix.

use super::data::{open_data, true_classes};
use super::predict::{predict_data, predict_options, Score};
use super::progress::Verbosity;
use super::train::{report, save_model, train_with_progress};
use super::{flag_error, io_error, out, repository_path, shown};
use super::{CliError, Result};
use seqnet_core::templates::{Template, TemplateOptions};
use seqnet_train::{Shuffle, Solver, TrainingOptions};
use std::path::PathBuf;

/// `seqnet demo`'s arguments.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example: seqnet demo --out out/demo")]
#[command(allow_negative_numbers = true)]
pub struct Args {
    /// The folder for the model and the pictures.
    #[arg(long, value_name = "DIR", default_value = "out/demo")]
    pub out: PathBuf,
    /// Training epochs.
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = super::count)]
    pub epochs: u64,
    /// Seed of the initial weights.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub seed: u64,
    /// The folder with JapaneseVowels_TRAIN.ts and JapaneseVowels_TEST.ts
    /// [default: data/japanese_vowels].
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Show MATLAB's verbose table instead of progress bars.
    #[arg(long, conflicts_with = "quiet")]
    pub verbose: bool,
    /// Show no progress, only the results.
    #[arg(long)]
    pub quiet: bool,
}

/// The demo's training options: adam, gradient threshold 1, mini-batch 27,
/// no shuffling (the data is sorted by length), sequences padded to the
/// longest of each mini-batch.
pub fn demo_options(epochs: usize, seed: u64) -> TrainingOptions {
    TrainingOptions::new(Solver::Adam)
        .gradient_threshold(1.0)
        .max_epochs(epochs)
        .mini_batch_size(27)
        .shuffle(Shuffle::Never)
        .verbose(false)
        .seed(seed)
}

/// Runs `seqnet demo`.
pub fn run(args: Args) -> Result<()> {
    let dir = args
        .data
        .clone()
        .unwrap_or_else(|| repository_path("data/japanese_vowels"));
    let train_path = dir.join("JapaneseVowels_TRAIN.ts");
    let test_path = dir.join("JapaneseVowels_TEST.ts");
    for p in [&train_path, &test_path] {
        if !p.is_file() {
            return Err(CliError::NotWhatIsNeeded {
                path: shown(p),
                problem: "the Japanese Vowels data is not there; run the demo from the repository's folder or give --data DIR".into(),
            });
        }
    }
    if args.out.exists() && !args.out.is_dir() {
        return Err(flag_error(
            "--out",
            format!("'{}' is a file, not a folder", shown(&args.out)),
        ));
    }
    std::fs::create_dir_all(&args.out).map_err(|e| io_error(&args.out, e))?;

    let train = open_data(&train_path, None)?.sorted_by_length()?;
    let classes = train.classes();
    let test = open_data(&test_path, Some(&classes))?;
    let graph = Template::Seq2Label.graph(&TemplateOptions {
        outputs: Some(classes.len()),
        ..TemplateOptions::default()
    })?;
    let options = demo_options(args.epochs as usize, args.seed);
    let display = Verbosity::from_flags(args.quiet, args.verbose);
    if display != Verbosity::Quiet {
        eprintln!(
            "Japanese Vowels: {} training and {} test sequences of 12 features, {} speakers",
            train.store.len(),
            test.store.len(),
            classes.len()
        );
        eprintln!("{}", graph.summary()?);
        eprintln!(
            "training: adam, gradient threshold 1, {} epochs, mini-batch 27, sorted by length, no shuffling, seed {}",
            options.max_epochs, options.seed
        );
    }
    let trained = train_with_progress(&graph, &train, None, &options, display)?;
    let mut model = trained.model;

    let model_path = args.out.join("model.safetensors");
    save_model(&model, &model_path)?;
    let progress_png = args.out.join("training_progress.png");
    let progress_svg = args.out.join("training_progress.svg");
    crate::plots::training_progress(&trained.record, &progress_png)?;
    crate::plots::training_progress(&trained.record, &progress_svg)?;

    let predict = predict_options(&model, None);
    let predictions = predict_data(&mut model, &test, &predict)?;
    let truth = true_classes(test.store.as_ref())?;
    let predicted = predictions.predicted_classes();
    let k = classes.len();
    let mut counts = vec![vec![0usize; k]; k];
    for (t, p) in truth.iter().zip(&predicted) {
        if let (Some(&t), Some(&p)) = (t.first(), p.last()) {
            if t < k && p < k {
                counts[t][p] += 1;
            }
        }
    }
    let confusion = args.out.join("confusion_matrix.png");
    crate::plots::confusion_matrix(&counts, &classes, &confusion)?;

    let mut text = report(&trained.record, trained.seconds);
    let score = predictions.score();
    if let Some(Score::Accuracy { fraction, n }) = score {
        let correct = (fraction * n as f64).round() as usize;
        text.push_str(&format!(
            "test accuracy {:.2}% ({correct}/{n})\n",
            fraction * 100.0
        ));
    }
    text.push_str(&format!(
        "model:             {}\ntraining progress: {} (and .svg)\nconfusion matrix:  {}\n",
        shown(&model_path),
        shown(&progress_png),
        shown(&confusion)
    ));
    if let Some(score) = score {
        text.push_str(&format!("{score}\n"));
    }
    out(&text)
}
