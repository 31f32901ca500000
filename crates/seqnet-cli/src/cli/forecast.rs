//! `seqnet forecast`: time-series forecasting as MATLAB's "Time Series
//! Forecasting Using Deep Learning" does it. For each observed sequence the
//! network's state is primed with `predict_and_update_state` on its first
//! steps, then `N` steps are predicted one at a time, each fed back as the
//! next input (closed loop) or, where the data has it, the true value
//! instead (open loop).
//!
//! The network predicts the next step: `C` features in, `C` responses out per
//! step (a sequence-to-sequence regression network trained on `x[t] → x[t+1]`).
//! The true value of a forecast step comes from the data's per-step targets
//! when it has `C` responses per step (target `t` is the value after step
//! `t`), otherwise from the sequence's own steps after the primed ones.

use super::data::{check_input, open_data, output_kind, DataSet};
use super::predict::load_model;
use super::{ensure_parent, flag_error, out, shown, CliError, Result};
use clap::ValueEnum;
use ndarray::{Array2, ArrayView2, Axis, Slice};
use seqnet_core::Network;
use seqnet_data::{Observation, Sequence, Target};
use seqnet_train::predict_and_update_state;
use std::fmt::Write as _;
use std::path::PathBuf;

/// What the network is fed after the primed steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// its own previous prediction
    ClosedLoop,
    /// the true previous value while the data has it, then its own prediction
    OpenLoop,
}

impl Mode {
    fn label(self) -> &'static str {
        match self {
            Mode::ClosedLoop => "closed loop",
            Mode::OpenLoop => "open loop",
        }
    }
}

/// `seqnet forecast`'s arguments.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example: seqnet forecast --model model.safetensors --data series/test --prime 150 --steps 49 \\
    --mode closed-loop --out forecast.csv --plot forecast.png\n\n\
The CSV has one row per forecast step: the observation (from 1), the time step\n\
predicted (the primed steps are 1 to K), the forecast per channel and, where\n\
the data has them, the true values. When some true values are known, the last\n\
line printed is 'rmse=<value> n=<steps>'."
)]
pub struct Args {
    /// The trained model: sequence-to-sequence regression with as many
    /// responses as features (the next step).
    #[arg(long, value_name = "FILE")]
    pub model: PathBuf,
    /// The observed sequences: a .ts file or a datastore folder.
    #[arg(long, value_name = "DATA")]
    pub data: PathBuf,
    /// Number of steps to forecast after the primed ones.
    #[arg(long, value_name = "N", value_parser = super::count)]
    pub steps: u64,
    /// Where to write the forecasts (.csv).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Feed back the predictions or the true values.
    #[arg(long, value_enum, default_value = "closed-loop")]
    pub mode: Mode,
    /// Prime on the first K steps of each sequence [default: all of them].
    #[arg(long, value_name = "K", value_parser = super::count)]
    pub prime: Option<u64>,
    /// Draw the observed, forecast and true values of one observation (.png or .svg).
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,
    /// The observation to draw, counted from 1.
    #[arg(long, value_name = "I", default_value_t = 1, value_parser = super::count)]
    pub observation: u64,
}

/// One observation's forecast.
#[derive(Debug, Clone, PartialEq)]
pub struct Forecast {
    /// The primed steps, `[K, C]`.
    pub observed: Array2<f32>,
    /// The forecast of steps `K + 1` to `K + N`, `[N, C]`.
    pub predicted: Array2<f32>,
    /// The true values of the first `M ≤ N` forecast steps, `[M, C]`.
    pub truth: Array2<f32>,
}

/// Checks that `data` is a feature sequence the network takes and that the
/// network predicts one value per feature and step. Returns `C`.
fn check_network(network: &Network, data: &DataSet) -> Result<usize> {
    let graph = network.graph();
    check_input(graph, data)?;
    let c = match data.store.frame_shape()? {
        Some(seqnet_data::FrameShape::Features(c)) => c,
        _ => {
            return Err(CliError::NotWhatIsNeeded {
                path: data.name.clone(),
                problem: "forecasting takes feature sequences, not images".into(),
            })
        }
    };
    let out = output_kind(graph)?;
    if out.classification || !out.per_step || out.size != c {
        let what = match (out.classification, out.per_step) {
            (true, _) => "classifies".to_string(),
            (false, false) => format!("predicts {} responses per sequence", out.size),
            (false, true) => format!("predicts {} responses per time step", out.size),
        };
        return Err(flag_error(
            "--model",
            format!(
                "forecasting needs a network that predicts the next step of each of the data's {c} features (sequence-to-sequence regression with {c} responses), but this one {what}"
            ),
        ));
    }
    Ok(c)
}

/// The true values of forecast steps `0..n` after priming on `k` steps of
/// `o`, `[M, C]`: its per-step targets `k-1…` when they have `C` responses,
/// else its own steps `k…`.
fn true_values(o: &Observation, x: &Array2<f32>, k: usize, n: usize) -> Array2<f32> {
    match &o.target {
        Target::ResponseSequence(y) if y.ncols() == x.ncols() => {
            let end = (k - 1 + n).min(y.nrows());
            y.slice_axis(Axis(0), Slice::from(k - 1..end)).to_owned()
        }
        _ => {
            let end = (k + n).min(x.nrows());
            x.slice_axis(Axis(0), Slice::from(k.min(end)..end))
                .to_owned()
        }
    }
}

/// Forecasts `n` steps after priming `network` on `observed` `[K, C]`; in
/// open loop the true value `truth` row `j` (when known) is the input after
/// forecast step `j`. Returns `[N, C]`. The state is reset before and after.
pub fn forecast_one(
    network: &mut Network,
    observed: ArrayView2<f32>,
    truth: ArrayView2<f32>,
    n: usize,
    mode: Mode,
) -> Result<Array2<f32>> {
    network.reset_state();
    let primed = predict_and_update_state(network, &[Sequence::Features(observed.to_owned())])?;
    let mut next = primed
        .first()
        .and_then(|p| p.rows().into_iter().next_back().map(|r| r.to_owned()))
        .ok_or_else(|| flag_error("--prime", "forecasting needs at least one primed step"))?;
    let mut predicted = Array2::zeros((n, observed.ncols()));
    for j in 0..n {
        predicted.row_mut(j).assign(&next);
        if j + 1 == n {
            break;
        }
        let input = match mode {
            Mode::OpenLoop if j < truth.nrows() => truth.row(j).to_owned(),
            _ => next,
        };
        let y =
            predict_and_update_state(network, &[Sequence::Features(input.insert_axis(Axis(0)))])?;
        next = y[0].row(0).to_owned();
    }
    network.reset_state();
    Ok(predicted)
}

/// Forecasts every observation of `data`.
fn forecast_all(network: &mut Network, data: &DataSet, args: &Args) -> Result<Vec<Forecast>> {
    let n = args.steps as usize;
    (0..data.store.len())
        .map(|i| {
            let o = data.store.read(i)?;
            let Sequence::Features(x) = &o.data else {
                return Err(CliError::NotWhatIsNeeded {
                    path: data.name.clone(),
                    problem: format!("observation {}: not a feature sequence", i + 1),
                });
            };
            let k = args.prime.map_or(x.nrows(), |k| k as usize);
            if k > x.nrows() {
                return Err(flag_error(
                    "--prime",
                    format!(
                        "{k} steps, but observation {} of {} has only {}",
                        i + 1,
                        data.name,
                        x.nrows()
                    ),
                ));
            }
            let observed = x.slice_axis(Axis(0), Slice::from(..k)).to_owned();
            let truth = true_values(&o, x, k, n);
            let predicted = forecast_one(network, observed.view(), truth.view(), n, args.mode)?;
            Ok(Forecast {
                observed,
                predicted,
                truth,
            })
        })
        .collect()
}

/// The CSV text: `observation,step,forecast_1..C,true_1..C`.
fn csv(forecasts: &[Forecast]) -> String {
    let c = forecasts.first().map_or(0, |f| f.predicted.ncols());
    let mut s = String::from("observation,step");
    for k in 1..=c {
        let _ = write!(s, ",forecast_{k}");
    }
    for k in 1..=c {
        let _ = write!(s, ",true_{k}");
    }
    s.push('\n');
    for (i, f) in forecasts.iter().enumerate() {
        let k = f.observed.nrows();
        for (j, row) in f.predicted.rows().into_iter().enumerate() {
            let _ = write!(s, "{},{}", i + 1, k + j + 1);
            for v in row {
                let _ = write!(s, ",{v}");
            }
            match f.truth.rows().into_iter().nth(j) {
                Some(t) => t.iter().for_each(|v| {
                    let _ = write!(s, ",{v}");
                }),
                None => s.push_str(&",".repeat(c)),
            }
            s.push('\n');
        }
    }
    s
}

/// The RMSE over every forecast step with a true value, and that step count.
fn rmse(forecasts: &[Forecast]) -> Option<(f64, usize)> {
    let (mut squared, mut values, mut steps) = (0f64, 0usize, 0usize);
    for f in forecasts {
        for (p, t) in f.predicted.rows().into_iter().zip(f.truth.rows()) {
            steps += 1;
            for (a, b) in p.iter().zip(t) {
                squared += f64::from(a - b).powi(2);
                values += 1;
            }
        }
    }
    (values > 0).then(|| ((squared / values as f64).sqrt(), steps))
}

/// Runs `seqnet forecast`.
pub fn run(args: Args) -> Result<()> {
    if let Some(p) = &args.plot {
        super::train::picture_extension("--plot", p)?;
    }
    let mut model = load_model(&args.model)?;
    let data = open_data(&args.data, None)?;
    let c = check_network(&model.network, &data)?;
    let chosen = args.observation as usize;
    if chosen > data.store.len() {
        return Err(flag_error(
            "--observation",
            format!(
                "{chosen}, but {} has {} observations",
                data.name,
                data.store.len()
            ),
        ));
    }
    let forecasts = forecast_all(&mut model.network, &data, &args)?;
    ensure_parent(&args.out)?;
    seqnet_train::model::write_atomically(&args.out, csv(&forecasts).as_bytes())
        .map_err(CliError::from_write)?;
    let mut text = format!(
        "{} step{} forecast ({}) for {} observation{} of {c} channel{} written to {}\n",
        args.steps,
        if args.steps == 1 { "" } else { "s" },
        args.mode.label(),
        forecasts.len(),
        if forecasts.len() == 1 { "" } else { "s" },
        if c == 1 { "" } else { "s" },
        shown(&args.out)
    );
    if let Some(p) = &args.plot {
        let f = &forecasts[chosen - 1];
        let title = format!(
            "Observation {chosen}: {} steps forecast ({})",
            args.steps,
            args.mode.label()
        );
        let label = format!("Forecast ({})", args.mode.label());
        ensure_parent(p)?;
        crate::plots::forecast_plot(
            &crate::plots::ForecastFigure {
                title: &title,
                forecast_label: &label,
                observed: f.observed.view(),
                forecast: f.predicted.view(),
                truth: f.truth.view(),
            },
            p,
        )?;
        let _ = writeln!(
            text,
            "forecast of observation {chosen} drawn to {}",
            shown(p)
        );
    }
    if let Some((value, n)) = rmse(&forecasts) {
        let _ = writeln!(text, "rmse={value:.6} n={n}");
    }
    out(&text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    fn obs(x: Array2<f32>, target: Target) -> Observation {
        Observation::new(Sequence::Features(x), target)
    }

    #[test]
    fn true_values_come_from_targets_or_the_sequence() {
        let x = array![[1.0f32], [2.], [3.], [4.]];
        // Targets: the next value.
        let y = array![[2.0f32], [3.], [4.], [5.]];
        let with = obs(x.clone(), Target::ResponseSequence(y));
        assert_eq!(true_values(&with, &x, 2, 2), array![[3.0], [4.0]]);
        assert_eq!(true_values(&with, &x, 4, 3), array![[5.0]]);
        let without = obs(x.clone(), Target::None);
        assert_eq!(true_values(&without, &x, 2, 5), array![[3.0], [4.0]]);
        assert_eq!(true_values(&without, &x, 4, 2).nrows(), 0);
    }

    #[test]
    fn csv_and_rmse_cover_known_steps_only() {
        let f = Forecast {
            observed: array![[0.0f32, 0.0], [1.0, 1.0]],
            predicted: array![[2.0f32, 2.0], [3.0, 5.0]],
            truth: array![[2.0f32, 4.0]],
        };
        let text = csv(std::slice::from_ref(&f));
        assert_eq!(
            text,
            "observation,step,forecast_1,forecast_2,true_1,true_2\n1,3,2,2,2,4\n1,4,3,5,,\n"
        );
        let (value, n) = rmse(&[f]).unwrap();
        assert_eq!(n, 1);
        assert!((value - 2f64.sqrt()).abs() < 1e-12); // sqrt((0 + 4) / 2)
    }
}
