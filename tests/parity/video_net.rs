//! PyTorch parity of the seed's video network on a `video_net` fixture: frames
//! folded, conv → batch norm (training mode) → ReLU, unfolded and flattened in
//! `(C, H, W)` order, LSTM 'last', fully connected, softmax, mean cross-entropy.
//! Checks `probs`, `loss`, `grad.input` and every parameter gradient.

use super::conv_bn_relu::{check_probs_and_loss, compare, convolution, Fixture, GRADIENT_TOL};
use ndarray::ArrayD;
use seqnet::prelude::*;

fn config_usize(fx: &Fixture, path: &[&str]) -> Result<usize, String> {
    let mut v = &fx.spec["config"];
    for p in path {
        v = &v[*p];
    }
    v.as_u64()
        .map(|n| n as usize)
        .ok_or_else(|| format!("config.{} missing or not an integer", path.join(".")))
}

fn learnable(net: &Network, layer: &str, name: &str) -> Result<ArrayD<f32>, String> {
    net.learnables()
        .into_iter()
        .find(|(l, p)| *l == layer && p.name == name)
        .map(|(_, p)| p.grad.clone())
        .ok_or_else(|| format!("no learnable {layer}.{name}"))
}

/// Checks one `video_net` fixture; returns a line per compared quantity.
pub fn check_video_net(bytes: &[u8]) -> Result<Vec<String>, String> {
    let fx = Fixture::parse(bytes)?;
    let [c, h, w] = match fx.spec["config"]["frame"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_u64()).collect::<Vec<_>>())
    {
        Some(v) if v.len() == 3 => [v[0] as usize, v[1] as usize, v[2] as usize],
        _ => return Err("config.frame must be [C, H, W]".into()),
    };
    let filters = config_usize(&fx, &["conv", "filters"])?;
    let conv = convolution(&fx.spec["config"]["conv"], filters)?;
    let hidden = config_usize(&fx, &["lstm_hidden"])?;
    let classes = config_usize(&fx, &["classes"])?;
    if fx.spec["config"]["lstm_output"].as_str() != Some("last") {
        return Err("only lstm_output 'last' is known".into());
    }
    let layers: Vec<Layer> = vec![
        SequenceInput::image([h, w, c]).name("input").into(),
        SequenceFolding::new().name("fold").into(),
        conv.name("conv").into(),
        BatchNormalization::new().epsilon(1e-5).name("bn").into(),
        Relu::new().name("relu").into(),
        SequenceUnfolding::new().name("unfold").into(),
        Flatten::new().name("flatten").into(),
        Lstm::new(hidden)
            .output_mode(OutputMode::Last)
            .name("lstm")
            .into(),
        FullyConnected::new(classes).name("fc").into(),
        Softmax::new().name("softmax").into(),
        ClassificationOutput::new().name("output").into(),
    ];
    let err = |e: seqnet::core::Error| e.to_string();
    let mut graph = LayerGraph::from_layers(layers).map_err(err)?;
    graph
        .connect("fold/miniBatchSize", "unfold/miniBatchSize")
        .map_err(err)?;
    let mut net = Network::new(&graph, 0).map_err(err)?;
    let lstm_bias = fx.array("param.lstm.bias_ih_l0")? + fx.array("param.lstm.bias_hh_l0")?;
    for (layer, name, value) in [
        ("conv", "Weights", fx.array("param.conv.weight")?),
        ("conv", "Bias", fx.array("param.conv.bias")?),
        ("bn", "Scale", fx.array("param.bn.weight")?),
        ("bn", "Offset", fx.array("param.bn.bias")?),
        ("lstm", "InputWeights", fx.array("param.lstm.weight_ih_l0")?),
        (
            "lstm",
            "RecurrentWeights",
            fx.array("param.lstm.weight_hh_l0")?,
        ),
        ("lstm", "Bias", lstm_bias),
        ("fc", "Weights", fx.array("param.fc.weight")?),
        ("fc", "Bias", fx.array("param.fc.bias")?),
    ] {
        net.set_learnable(layer, name, value).map_err(err)?;
    }

    // PyTorch's [B, T, C, H, W] is seqnet's [T, B, C, H, W] with B and T swapped.
    let input = fx.array("input")?;
    let x = input
        .clone()
        .permuted_axes(vec![1, 0, 2, 3, 4])
        .as_standard_layout()
        .to_owned();
    let onehot = fx.onehot_labels(classes)?;
    let x = Activation::image_sequence(x, None).map_err(err)?;
    let t = Activation::features(onehot.into_dyn()).map_err(err)?;
    let probs = net
        .forward(&[x], Some(&[t]), Mode::Training, false)
        .map_err(err)?;
    let mut report = Vec::new();
    check_probs_and_loss(&net, &probs[0], &fx, "", &mut report)?;
    let mut check =
        |what: &str, got: &ArrayD<f32>, want: &ArrayD<f32>, tol: f32| -> Result<(), String> {
            let e = compare(what, got, want, tol)?;
            report.push(format!("{what}: scaled error {e:.2e}"));
            Ok(())
        };
    net.backward().map_err(err)?;
    let gx = net.input_gradients()[0]
        .clone()
        .ok_or("no input gradient")?;
    let gx = gx
        .permuted_axes(vec![1, 0, 2, 3, 4])
        .as_standard_layout()
        .to_owned();
    check("grad.input", &gx, &fx.array("grad.input")?, GRADIENT_TOL)?;
    for (layer, name, torch) in [
        ("conv", "Weights", "grad.conv.weight"),
        ("conv", "Bias", "grad.conv.bias"),
        ("bn", "Scale", "grad.bn.weight"),
        ("bn", "Offset", "grad.bn.bias"),
        ("lstm", "InputWeights", "grad.lstm.weight_ih_l0"),
        ("lstm", "RecurrentWeights", "grad.lstm.weight_hh_l0"),
        ("lstm", "Bias", "grad.lstm.bias_ih_l0"),
        ("lstm", "Bias", "grad.lstm.bias_hh_l0"),
        ("fc", "Weights", "grad.fc.weight"),
        ("fc", "Bias", "grad.fc.bias"),
    ] {
        check(
            torch,
            &learnable(&net, layer, name)?,
            &fx.array(torch)?,
            GRADIENT_TOL,
        )?;
    }
    Ok(report)
}
