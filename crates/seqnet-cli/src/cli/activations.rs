//! `seqnet activations`: one layer's output over time for one observation,
//! drawn as a heat map.

use super::data::open_data;
use super::predict::load_model;
use super::{ensure_parent, flag_error, out, shown};
use ndarray::{Array2, Axis};
use seqnet_core::{Activation, Format, Result};
use seqnet_data::Target;
use std::path::PathBuf;

/// `seqnet activations`'s arguments.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example: seqnet activations --model model.safetensors --data data/japanese_vowels/JapaneseVowels_TEST.ts --layer lstm --observation 1 --out lstm.png"
)]
#[command(allow_negative_numbers = true)]
pub struct Args {
    /// The trained model (.safetensors).
    #[arg(long, value_name = "FILE")]
    pub model: PathBuf,
    /// The data: a .ts file or a datastore folder.
    #[arg(long, value_name = "DATA")]
    pub data: PathBuf,
    /// The layer (or "layer/port") whose output to draw.
    #[arg(long, value_name = "NAME")]
    pub layer: String,
    /// Which observation, counted from 1.
    #[arg(long, value_name = "I", default_value_t = 1, value_parser = super::count)]
    pub observation: u64,
    /// The picture (.png or .svg).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

/// One observation's activation as `[steps, values]`: the time steps (or
/// folded frames) down, the channels (times the pixels of images) across.
pub fn as_steps(a: &Activation) -> Option<Array2<f32>> {
    let shape = a.data.shape();
    let (rows, cols) = match a.format {
        Format::CB => (1, shape[1]),
        Format::CBT => (shape[0], shape[2]),
        Format::SSCB => (shape[0], shape[1..].iter().product()),
        Format::SSCBT => (shape[0], shape[2..].iter().product()),
        Format::BatchSize => return None,
    };
    let data = match a.format {
        // [T, 1, …]: drop the batch axis of one observation.
        Format::CBT | Format::SSCBT => a.data.index_axis(Axis(1), 0).to_owned(),
        _ => a.data.to_owned(),
    };
    data.into_shape_with_order((rows, cols))
        .ok()
        .map(|d| d.into_dimensionality().expect("two axes"))
}

/// Runs `seqnet activations`.
pub fn run(args: Args) -> Result<()> {
    let mut model = load_model(&args.model)?;
    let classes = model.classes.clone();
    let data = open_data(&args.data, Some(&classes))?;
    let graph = model.network.graph().clone();
    let layer_name = args.layer.split('/').next().unwrap_or_default();
    let Some(layer) = graph.layer(layer_name) else {
        let names: Vec<&str> = graph.layers.iter().map(|l| l.name()).collect();
        return Err(flag_error(
            "--layer",
            format!(
                "the model has no layer '{layer_name}' (its layers: {})",
                names.join(", ")
            ),
        ));
    };
    if layer.def().output_ports().is_empty() {
        return Err(flag_error(
            "--layer",
            format!(
                "layer '{layer_name}' is an output layer and has no activations to draw; pick the layer before it"
            ),
        ));
    }
    let n = data.store.len();
    let i = args.observation as usize;
    if i > n {
        return Err(flag_error(
            "--observation",
            format!("{} has {n} observations, so {i} is out of range", data.name),
        ));
    }
    super::data::check_fits(&graph, &data, false)?;
    let obs = data.store.read(i - 1)?;
    let act = seqnet_train::activations(&mut model.network, &obs.data, &args.layer)?;
    let values = as_steps(&act).ok_or_else(|| {
        flag_error(
            "--layer",
            format!(
                "'{}' carries the mini-batch size, not activations; pick a layer's data output",
                args.layer
            ),
        )
    })?;
    let label = match &obs.target {
        Target::Class(c) => classes
            .get(*c)
            .map(|l| format!(", label {l}"))
            .unwrap_or_default(),
        _ => String::new(),
    };
    let title = format!(
        "{} ({}) of observation {i}{label}: {} steps × {} values",
        args.layer,
        layer.def().type_name(),
        values.nrows(),
        values.ncols()
    );
    ensure_parent(&args.out)?;
    crate::plots::activations_heatmap(values.view(), &title, &args.out)?;
    out(&format!(
        "activations of layer '{}' for observation {i} ({} × {}) drawn to {}\n",
        args.layer,
        values.nrows(),
        values.ncols(),
        shown(&args.out)
    ))
}
