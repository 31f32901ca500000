//! The `seqnet` command line: its arguments (clap), one module per command,
//! and how errors reach the user (one line, naming the file, line, layer or
//! option at fault).
//!
//! [`main`] is the whole program; the binary only calls it. Commands return
//! their outcome to it ([`run`] gives the exit code, or a [`CliError`] that
//! `main` shows as one line); nothing here ends the process itself, except
//! a second Ctrl-C during training, which asks for exactly that.

mod activations;
mod bench;
mod data;
mod demo;
mod docs_figures;
mod export_onnx;
mod forecast;
mod generate_sequences;
mod generate_videos;
mod import_onnx;
mod import_torch;
mod live_plot;
mod new;
mod parallel;
mod predict;
mod predict_raw;
mod progress;
mod summary;
mod train;

pub use crate::error::{CliError, Result};
use clap::{Parser, Subcommand};
use seqnet_core::LayerGraph;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;

pub use data::{open_data, DataSet};
pub use progress::{Progress, Verbosity};

/// seqnet: sequence neural networks (LSTM, BiLSTM, GRU) as graphs of named
/// layers, in the manner of MATLAB's Deep Learning Toolbox.
#[derive(Debug, Parser)]
#[command(name = "seqnet", version, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write one of the ready-made networks as graph JSON to standard output.
    New(new::Args),
    /// Train a network (graph JSON) on a .ts file or a datastore folder.
    Train(Box<train::Args>),
    /// Predict with a trained model; writes one CSV row per observation.
    Predict(predict::Args),
    /// Print the layer table of a graph JSON or a model file.
    Summary(summary::SummaryArgs),
    /// Print a graph JSON's or a model file's graph as Graphviz DOT (or JSON).
    Graph(summary::GraphArgs),
    /// Draw one layer's activations over time for one observation as a heat map.
    Activations(activations::Args),
    /// The main job: train the Japanese Vowels network, evaluate it, write
    /// the model and its pictures.
    Demo(demo::Args),
    /// Build a model file from a PyTorch state dict saved as safetensors.
    ImportTorch(import_torch::Args),
    /// Write a model as an ONNX model (input 'input' batch first, optional
    /// 'sequence_lens', output 'output').
    ExportOnnx(export_onnx::Args),
    /// Build a model file from an ONNX model written by torch.onnx.export.
    ImportOnnx(import_onnx::Args),
    /// Write a synthetic video set (the class is the direction of motion) as a
    /// datastore folder.
    GenerateVideos(generate_videos::Args),
    /// Forecast time series: prime on each observed sequence, then predict N
    /// steps closed loop (or open loop).
    Forecast(forecast::Args),
    /// Write synthetic signals with a waveform (or amplitude) per time step as
    /// a datastore folder, for sequence-to-sequence networks.
    GenerateWaveforms(generate_sequences::WaveformArgs),
    /// Write synthetic sine-wave series with next-step targets as a datastore
    /// folder, for forecasting.
    GenerateSeries(generate_sequences::SeriesArgs),
    /// Time the benchmark workloads (build in release mode).
    Bench(bench::Args),
    /// Draw the pictures of docs/LSTM.md: the LSTM unit, a sequence through
    /// the layer, and the sequence options on real Japanese Vowels mini-batches.
    DocsFigures(docs_figures::Args),
}

/// Runs a parsed command line: the exit code of a command that ran
/// (success, or 130 for a training stopped by Ctrl-C), or its error.
pub fn run(cli: Cli) -> Result<ExitCode> {
    let done = |r: Result<()>| r.map(|()| ExitCode::SUCCESS);
    match cli.command {
        Command::New(a) => done(new::run(a)),
        Command::Train(a) => train::run(*a),
        Command::Predict(a) => done(predict::run(a)),
        Command::Summary(a) => done(summary::run_summary(a)),
        Command::Graph(a) => done(summary::run_graph(a)),
        Command::Activations(a) => done(activations::run(a)),
        Command::Demo(a) => done(demo::run(a)),
        Command::ImportTorch(a) => done(import_torch::run(a)),
        Command::ExportOnnx(a) => done(export_onnx::run(a)),
        Command::ImportOnnx(a) => done(import_onnx::run(a)),
        Command::GenerateVideos(a) => done(generate_videos::run(a)),
        Command::Forecast(a) => done(forecast::run(a)),
        Command::GenerateWaveforms(a) => done(generate_sequences::run_waveforms(a)),
        Command::GenerateSeries(a) => done(generate_sequences::run_series(a)),
        Command::Bench(a) => done(bench::run(a)),
        Command::DocsFigures(a) => done(docs_figures::run(a)),
    }
}

/// The last panic's message, kept by the panic hook for [`main`] to report.
static PANIC_MESSAGE: Mutex<Option<String>> = Mutex::new(None);

/// The whole program: parses the arguments, runs the command and turns any
/// failure into one `error: …` line on standard error and a non-zero exit
/// code (2 for a bad command line, 1 otherwise). Never shows a panic or a
/// backtrace: a panic (a bug) is reported as one line too.
pub fn main() -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_string());
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        if let Ok(mut slot) = PANIC_MESSAGE.lock() {
            *slot = Some(format!("{}{at}", one_line(&message)));
        }
    }));
    // Parsing runs value parsers, which could panic on a bug too.
    let cli = match std::panic::catch_unwind(Cli::try_parse) {
        Ok(Ok(cli)) => cli,
        Ok(Err(e)) => return clap_error(e),
        Err(_) => return internal_error(),
    };
    let result = std::panic::catch_unwind(|| run(cli));
    seqnet_train::distributed::phases::mark("ended");
    if let Some(line) = seqnet_train::distributed::phases::report() {
        eprintln!("{line}");
    }
    match result {
        Ok(Ok(code)) => code,
        Ok(Err(e)) => report(&e),
        Err(_) => internal_error(),
    }
}

/// Reports the panic the hook kept as one line; exit code 101.
fn internal_error() -> ExitCode {
    let what = PANIC_MESSAGE
        .lock()
        .ok()
        .and_then(|mut m| m.take())
        .unwrap_or_else(|| "unknown panic".to_string());
    eprintln!("error: internal error ({what}); this is a bug in seqnet, please report it");
    ExitCode::from(101)
}

/// A clap error as one line (help and version are printed as they are).
fn clap_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = e.print();
            ExitCode::SUCCESS
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            ExitCode::from(2)
        }
        _ => {
            let text = e.render().to_string();
            let mut parts: Vec<String> = Vec::new();
            for line in text.lines() {
                let line = line.trim();
                if line.is_empty() {
                    continue;
                }
                if line.starts_with("Usage:") || line.starts_with("For more information") {
                    break;
                }
                let line = line.strip_prefix("error: ").unwrap_or(line);
                let line = line.strip_prefix("tip: ").unwrap_or(line);
                parts.push(line.to_string());
            }
            let mut msg = parts
                .first()
                .cloned()
                .unwrap_or_else(|| "bad arguments".into());
            let rest: Vec<&String> = parts.iter().skip(1).collect();
            if !rest.is_empty() {
                let sep = if msg.ends_with(':') { " " } else { "; " };
                msg = format!(
                    "{msg}{sep}{}",
                    rest.iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            // "see 'seqnet train --help'": the command from the usage line.
            let command = text
                .lines()
                .find_map(|l| l.trim().strip_prefix("Usage:"))
                .map(|u| {
                    u.split_whitespace()
                        .take_while(|w| !w.starts_with(['[', '<', '-']))
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .filter(|c| !c.is_empty())
                .unwrap_or_else(|| "seqnet".to_string());
            eprintln!("error: {msg} (see '{command} --help')");
            ExitCode::from(2)
        }
    }
}

/// The exit code of a failed command, after its one-line message on
/// standard error: 1, or 0 for a closed standard output (`seqnet new … | head`).
pub fn report(e: &CliError) -> ExitCode {
    if is_broken_pipe(e) {
        return ExitCode::SUCCESS;
    }
    eprintln!("error: {}", message(e));
    ExitCode::from(1)
}

/// Whether the error is a closed standard output.
fn is_broken_pipe(e: &CliError) -> bool {
    e.io_failure()
        .is_some_and(|(_, source)| source.kind() == std::io::ErrorKind::BrokenPipe)
}

/// `s` on one line: line breaks (and the bullets of listed problems) become "; ".
fn one_line(s: &str) -> String {
    let mut out = String::new();
    for (i, line) in s
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .enumerate()
    {
        let line = line.strip_prefix("- ").unwrap_or(line);
        if i > 0 {
            out.push_str(if out.ends_with(':') { " " } else { "; " });
        }
        out.push_str(line);
    }
    out
}

/// The one-line message of an error.
pub fn message(e: &CliError) -> String {
    let text = match e.io_failure() {
        Some((path, source)) => {
            let what = match source.kind() {
                std::io::ErrorKind::NotFound => "no such file or folder".to_string(),
                std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
                _ => {
                    let s = source.to_string();
                    match s.find(" (os error") {
                        Some(i) => s[..i].to_string(),
                        None => s,
                    }
                }
            };
            format!("{path}: {what}")
        }
        None => e.to_string(),
    };
    one_line(&text)
}

/// Parses a whole number of at least 1 (a count of epochs, units, …).
pub(crate) fn count(s: &str) -> std::result::Result<u64, String> {
    match s.trim().parse::<u64>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("expected a whole number of at least 1, got '{s}'")),
    }
}

/// An error for a command-line flag.
pub(crate) fn flag_error(flag: &'static str, message: impl Into<String>) -> CliError {
    CliError::Flag {
        flag,
        message: message.into(),
    }
}

/// Reads a text file, naming it in errors.
pub(crate) fn read_text(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| io_error(path, e))?;
    String::from_utf8(bytes).map_err(|e| CliError::NotText {
        path: shown(path),
        byte: e.utf8_error().valid_up_to(),
    })
}

/// An I/O error naming `path`.
pub(crate) fn io_error(path: &Path, e: std::io::Error) -> CliError {
    CliError::io(path, e)
}

/// Reads a graph JSON file and checks the graph; graph problems are
/// prefixed with the file's name.
pub(crate) fn load_graph(path: &Path) -> Result<LayerGraph> {
    if path.is_dir() {
        return Err(CliError::NotWhatIsNeeded {
            path: shown(path),
            problem: "is a folder, expected a graph JSON file".into(),
        });
    }
    graph_from_text(&read_text(path)?, &shown(path))
}

/// A checked graph from JSON text; `name` names its file in errors.
pub(crate) fn graph_from_text(text: &str, name: &str) -> Result<LayerGraph> {
    if text.trim().is_empty() {
        return Err(CliError::EmptyGraphFile {
            path: name.to_string(),
        });
    }
    let graph = LayerGraph::from_json(text, name)?;
    graph
        .check()
        .map_err(|e| in_file(Path::new(name), e.into()))?;
    Ok(graph)
}

/// Prefixes an error whose message does not name the file with `path`.
pub(crate) fn in_file(path: &Path, e: CliError) -> CliError {
    let path = shown(path);
    if e.to_string().contains(&path) {
        e
    } else {
        CliError::InFile {
            path,
            source: Box::new(e),
        }
    }
}

/// Writes `text` to standard output (a closed pipe is not an error).
pub(crate) fn out(text: &str) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|_| stdout.flush())
        .map_err(|e| io_error(Path::new("standard output"), e))
}

/// Creates the parent folder of `path` when it does not exist.
pub(crate) fn ensure_parent(path: &Path) -> Result<()> {
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        if !dir.is_dir() {
            std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
        }
    }
    Ok(())
}

/// A path in messages: as given.
pub(crate) fn shown(path: &Path) -> String {
    path.display().to_string()
}

/// Resolves `relative` (e.g. `data/japanese_vowels`) against the current
/// folder, falling back to the repository this binary was built from.
pub(crate) fn repository_path(relative: &str) -> PathBuf {
    let here = PathBuf::from(relative);
    if here.exists() {
        return here;
    }
    let built = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(relative);
    if built.exists() {
        built
    } else {
        here
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_one_line() {
        assert_eq!(one_line("a:\n  - b\n  - c"), "a: b; c");
        let e = CliError::Core(seqnet_core::Error::Parse {
            file: "x.json".into(),
            line: 0,
            message: "bad".into(),
        });
        assert_eq!(message(&e), "x.json: bad");
        let e = CliError::Io {
            path: "nope".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        assert_eq!(message(&e), "nope: no such file or folder");
        let e = CliError::Train(seqnet_train::Error::Io {
            path: "gone.safetensors".into(),
            source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        });
        assert_eq!(message(&e), "gone.safetensors: permission denied");
    }

    #[test]
    fn a_failed_command_exits_with_1_and_a_closed_pipe_with_0() {
        let e = flag_error("--epochs", "must be at least 1");
        assert_eq!(report(&e), ExitCode::from(1));
        let e = CliError::Io {
            path: "standard output".into(),
            source: std::io::Error::from(std::io::ErrorKind::BrokenPipe),
        };
        assert_eq!(report(&e), ExitCode::SUCCESS);
    }
}
