//! The image layers inside a video network: graph checks and their messages,
//! the summary, JSON settings, and a training step whose result ignores padding.

use ndarray::{ArrayD, Axis};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use seqnet_core::layers::*;
use seqnet_core::BuildKernel;
use seqnet_core::{Activation, Layer, LayerGraph, Mode, Network, PaddingDirection, SeqLengths};

fn video_graph() -> LayerGraph {
    let layers: Vec<Layer> = vec![
        SequenceInput::image([12, 10, 1]).name("in").into(),
        SequenceFolding::new().name("fold").into(),
        Convolution2d::new([3, 3], 4)
            .padding(Padding::Same)
            .name("conv")
            .into(),
        BatchNormalization::new().name("bn").into(),
        Relu::new().name("relu").into(),
        MaxPooling2d::new([2, 2]).stride([2, 2]).name("pool").into(),
        AveragePooling2d::new([2, 2]).name("avg").into(),
        SequenceUnfolding::new().name("unfold").into(),
        Flatten::new().name("flat").into(),
        FullyConnected::new(3).name("fc").into(),
        RegressionOutput::new().name("out").into(),
    ];
    let mut g = LayerGraph::from_layers(layers).unwrap();
    g.connect("fold/miniBatchSize", "unfold/miniBatchSize")
        .unwrap();
    g
}

#[test]
fn summary_shapes_and_learnables() {
    let s = video_graph().summary().unwrap();
    let row = |n: &str| s.rows.iter().find(|r| r.name == n).unwrap().clone();
    assert_eq!(row("conv").activations[0].1, "12×10×4×B");
    assert_eq!(
        row("conv").learnables,
        vec![("Weights", vec![4, 1, 3, 3]), ("Bias", vec![4])]
    );
    assert_eq!(
        row("bn").learnables,
        vec![("Scale", vec![4]), ("Offset", vec![4])]
    );
    assert_eq!(row("pool").activations[0].1, "6×5×4×B");
    assert_eq!(row("avg").activations[0].1, "5×4×4×B");
    assert_eq!(row("flat").activations[0].1, "80×B×T");
}

#[test]
fn image_layers_on_unfolded_sequences_ask_for_folding() {
    for layer in [
        Layer::from(Convolution2d::new([3, 3], 4).name("conv")),
        MaxPooling2d::new([2, 2]).name("conv").into(),
        AveragePooling2d::new([2, 2]).name("conv").into(),
    ] {
        let g = LayerGraph::from_layers(vec![
            SequenceInput::image([12, 10, 1]).name("in").into(),
            layer,
            Flatten::new().name("flat").into(),
            RegressionOutput::new().name("out").into(),
        ])
        .unwrap();
        let err = g.check().unwrap_err();
        let problem = err
            .graph_problems()
            .iter()
            .find(|p| p.layer() == Some("conv"))
            .expect("a problem at the layer")
            .to_string();
        assert!(problem.contains("fold"), "{problem}");
    }
}

#[test]
fn oversized_filters_and_empty_settings_are_shape_errors() {
    let graph = |l: Layer| {
        LayerGraph::from_layers(vec![
            SequenceInput::image([4, 4, 1]).name("in").into(),
            SequenceFolding::new().name("fold").into(),
            l,
            SequenceUnfolding::new().name("unfold").into(),
            Flatten::new().name("flat").into(),
            RegressionOutput::new().name("out").into(),
        ])
        .map(|mut g| {
            g.connect("fold/miniBatchSize", "unfold/miniBatchSize")
                .unwrap();
            g
        })
        .unwrap()
    };
    let cases: Vec<(Layer, &str)> = vec![
        (
            Convolution2d::new([5, 5], 2).name("l").into(),
            "larger than the padded input 4×4",
        ),
        (
            Convolution2d::new([3, 3], 2)
                .dilation_factor([2, 2])
                .name("l")
                .into(),
            "larger than the padded input",
        ),
        (
            Convolution2d::new([3, 3], 0).name("l").into(),
            "NumFilters must be positive",
        ),
        (
            Convolution2d::new([3, 3], 2)
                .stride([0, 1])
                .name("l")
                .into(),
            "Stride must be positive",
        ),
        (
            MaxPooling2d::new([2, 2])
                .padding(Padding::uniform(2))
                .name("l")
                .into(),
            "smaller than PoolSize",
        ),
        (
            BatchNormalization::new().mean_decay(1.5).name("l").into(),
            "MeanDecay",
        ),
    ];
    for (layer, want) in cases {
        let err = graph(layer).check().unwrap_err().to_string();
        assert!(err.contains("'l'") && err.contains(want), "{err}");
    }
    // 'same' padding lets a 5×5 filter run on 4×4 frames.
    assert!(graph(
        Convolution2d::new([5, 5], 2)
            .padding(Padding::Same)
            .name("l")
            .into()
    )
    .check()
    .is_ok());
}

#[test]
fn settings_read_from_json_as_matlab_writes_them() {
    let json = r#"[
        {"type": "convolution2d", "name": "c", "filterSize": 5, "numFilters": 20, "padding": "same", "stride": [2, 1]},
        {"type": "convolution2d", "name": "d", "filterSize": [3, 2], "numFilters": 2, "padding": [1, 2], "dilationFactor": 2},
        {"type": "batchNormalization", "name": "bn", "epsilon": 1e-3},
        {"type": "maxPooling2d", "name": "mp", "poolSize": 2, "stride": 2},
        {"type": "averagePooling2d", "name": "ap", "poolSize": [3, 3], "padding": 1, "paddingValue": "mean"}
    ]"#;
    let layers: Vec<Layer> = serde_json::from_str(json).unwrap();
    assert_eq!(
        layers[0],
        Layer::from(
            Convolution2d::new([5, 5], 20)
                .padding(Padding::Same)
                .stride([2, 1])
                .name("c")
        )
    );
    assert_eq!(
        layers[1],
        Layer::from(
            Convolution2d::new([3, 2], 2)
                .padding(Padding::Explicit([1, 1, 2, 2]))
                .dilation_factor([2, 2])
                .name("d")
        )
    );
    assert_eq!(
        layers[2],
        Layer::from(BatchNormalization::new().epsilon(1e-3).name("bn"))
    );
    assert_eq!(
        layers[3],
        Layer::from(MaxPooling2d::new([2, 2]).stride([2, 2]).name("mp"))
    );
    assert_eq!(
        layers[4],
        Layer::from(
            AveragePooling2d::new([3, 3])
                .padding(Padding::uniform(1))
                .padding_value(PoolPaddingValue::Mean)
                .name("ap")
        )
    );
    // And back: what is written reads as the same layers.
    let again: Vec<Layer> = serde_json::from_str(&serde_json::to_string(&layers).unwrap()).unwrap();
    assert_eq!(again, layers);
    let g = video_graph();
    assert_eq!(LayerGraph::from_json(&g.to_json(), "video").unwrap(), g);
    let bad = r#"{"type": "convolution2d", "filterSize": 3, "numFilters": 2, "padding": "valid"}"#;
    assert!(serde_json::from_str::<Layer>(bad)
        .unwrap_err()
        .to_string()
        .contains("padding"));
}

/// Loss and gradients of a padded mini-batch equal those of the same videos
/// each on their own (the regression loss is a sum over real steps).
#[test]
fn a_training_step_ignores_padded_frames() {
    let mut rng = StdRng::seed_from_u64(5);
    let g = video_graph();
    let lengths = SeqLengths::new(vec![3, 1], 3, PaddingDirection::Right).unwrap();
    let x = ArrayD::from_shape_simple_fn(vec![3, 2, 1, 12, 10], || rng.random_range(-1.0f32..1.0));
    let y = ArrayD::from_shape_simple_fn(vec![3, 2, 3], || rng.random_range(-1.0f32..1.0));
    let run = |x: ArrayD<f32>, y: ArrayD<f32>| {
        let mut net = Network::new(&g, 11).unwrap();
        let input = Activation::image_sequence(x, Some(lengths.clone())).unwrap();
        let target = Activation::sequence(y, Some(lengths.clone())).unwrap();
        net.forward(&[input], Some(&[target]), Mode::Training, false)
            .unwrap();
        net.backward().unwrap();
        let grads: Vec<ArrayD<f32>> = net
            .learnables()
            .iter()
            .map(|(_, p)| p.grad.clone())
            .collect();
        let dx = net.input_gradients()[0].clone().unwrap();
        (net.loss().unwrap(), grads, dx)
    };
    let (loss, grads, dx) = run(x.clone(), y.clone());
    // Garbage in the padded steps of observation 1.
    let (mut x2, mut y2) = (x.clone(), y.clone());
    for t in 1..3 {
        x2.index_axis_mut(Axis(0), t)
            .index_axis_mut(Axis(0), 1)
            .fill(100.0);
        y2.index_axis_mut(Axis(0), t)
            .index_axis_mut(Axis(0), 1)
            .fill(-100.0);
    }
    let (loss2, grads2, dx2) = run(x2, y2);
    assert_eq!(loss, loss2);
    assert_eq!(grads, grads2);
    assert_eq!(dx, dx2);
    assert!(dx
        .index_axis(Axis(0), 2)
        .index_axis(Axis(0), 1)
        .iter()
        .all(|&v| v == 0.0));
    assert!(
        grads.iter().all(|g| g.iter().all(|v| v.is_finite()))
            && grads.iter().any(|g| g.iter().any(|&v| v != 0.0))
    );
}

#[test]
fn learnables_of_the_wrong_shape_are_errors_not_panics() {
    use seqnet_core::{ActShape, ForwardCtx};
    let shape = ActShape::images(6, 6, 2);
    let x = Activation::images(ArrayD::zeros(vec![3, 2, 6, 6])).unwrap();
    let mut rng = StdRng::seed_from_u64(0);
    let mut conv = Convolution2d::new([3, 3], 4)
        .name("c")
        .build_kernel(&[shape], &mut rng)
        .unwrap();
    conv.learnables_mut()[0].value = ArrayD::zeros(vec![4, 2, 2, 3]);
    let mut bn = BatchNormalization::new()
        .name("b")
        .build_kernel(&[shape], &mut rng)
        .unwrap();
    bn.states_mut()[1].value = ArrayD::zeros(vec![3]);
    let mut ctx = ForwardCtx {
        mode: Mode::Inference,
        stateful: false,
        rng: &mut rng,
        target: None,
    };
    let e = conv.forward(&[&x], &mut ctx).unwrap_err().to_string();
    assert!(e.contains("'c'") && e.contains("Weights"), "{e}");
    let e = bn.forward(&[&x], &mut ctx).unwrap_err().to_string();
    assert!(e.contains("'b'") && e.contains("TrainedVariance"), "{e}");
    // And a run-time input of another size than built for.
    let mut pool = MaxPooling2d::new([2, 2])
        .name("p")
        .build_kernel(&[shape], &mut StdRng::seed_from_u64(0))
        .unwrap();
    let small = Activation::images(ArrayD::zeros(vec![3, 2, 5, 6])).unwrap();
    let e = pool.forward(&[&small], &mut ctx).unwrap_err().to_string();
    assert!(e.contains("'p'") && e.contains("6×6×2×B"), "{e}");
}
