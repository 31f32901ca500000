//! `seqnet activations`: one layer's output over time for one observation,
//! drawn as a heat map.

use super::data::open_data;
use super::predict::load_model;
use super::Result;
use super::{ensure_parent, flag_error, out, shown};
use ndarray::{Array2, Axis};
use seqnet_core::layers::{BiGru, BiLstm, Gru, Lstm, OutputMode, RegressionOutput};
use seqnet_core::{Activation, Format, Network};
use seqnet_data::Target;
use std::collections::BTreeSet;
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
    super::train::picture_extension("--out", &args.out)?;
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
    super::data::check_input(&graph, &data)?;
    let obs = data.store.read(i - 1)?;
    let mut cut;
    let (network, note) = match every_step(&model.network, layer_name)? {
        Some(n) => {
            cut = n;
            (
                &mut cut,
                format!(
                    " (layer '{layer_name}' outputs its last step only; drawn with output mode 'sequence' to show every step)"
                ),
            )
        }
        None => (&mut model.network, String::new()),
    };
    let act = seqnet_train::activations(network, &obs.data, &args.layer)?;
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
        "Layer '{}' ({}), observation {i}{label}",
        args.layer,
        layer.def().type_name(),
    );
    ensure_parent(&args.out)?;
    crate::plots::activations_heatmap(values.view(), &title, &args.out)?;
    out(&format!(
        "activations of layer '{}' for observation {i} ({} steps × {} values) drawn to {}{note}\n",
        args.layer,
        values.nrows(),
        values.ncols(),
        shown(&args.out)
    ))
}

/// For a recurrent layer that outputs its last step only (`OutputMode`
/// 'last'), the network up to that layer with the layer set to output every
/// step, with the trained weights; `None` for any other layer.
fn every_step(network: &Network, layer: &str) -> Result<Option<Network>> {
    let graph = network.graph();
    let mut cut = graph.clone();
    let Some(i) = cut.index(layer) else {
        return Ok(None);
    };
    let l = &mut cut.layers[i];
    let options = if let Some(l) = l.downcast_mut::<Lstm>() {
        &mut l.options
    } else if let Some(l) = l.downcast_mut::<BiLstm>() {
        &mut l.options
    } else if let Some(l) = l.downcast_mut::<Gru>() {
        &mut l.options
    } else if let Some(l) = l.downcast_mut::<BiGru>() {
        &mut l.options
    } else {
        return Ok(None);
    };
    if options.output_mode != OutputMode::Last {
        return Ok(None);
    }
    options.output_mode = OutputMode::Sequence;
    // Keep the layer and what feeds it; end it with an output layer.
    let layer_of = |port: &str| port.split('/').next().unwrap_or_default().to_string();
    let mut keep: BTreeSet<String> = BTreeSet::from([layer.to_string()]);
    loop {
        let before = keep.len();
        for c in &cut.connections {
            if keep.contains(&layer_of(&c.destination)) {
                keep.insert(layer_of(&c.source));
            }
        }
        if keep.len() == before {
            break;
        }
    }
    let drop: Vec<String> = cut
        .layers
        .iter()
        .map(|l| l.name().to_string())
        .filter(|n| !keep.contains(n))
        .collect();
    let drop: Vec<&str> = drop.iter().map(String::as_str).collect();
    cut.remove_layers(&drop)?;
    let end = "activations_output";
    cut.add_layers([RegressionOutput::new().name(end).into()])?;
    cut.connect(layer, end)?;
    let mut copy = Network::new(&cut, 0)?;
    for (l, p) in network.learnables() {
        if keep.contains(l) {
            copy.set_learnable(l, p.name, p.value.clone())?;
        }
    }
    for (l, s) in network.states() {
        if keep.contains(l) {
            copy.set_state(l, s.name, s.value.clone())?;
        }
    }
    Ok(Some(copy))
}
