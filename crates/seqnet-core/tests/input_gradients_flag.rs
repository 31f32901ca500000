//! `Network::set_input_gradients(false)`: the learnables' gradients do not
//! change, the input gradient is not computed.

use ndarray::{ArrayD, IxDyn};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use seqnet_core::layers::*;
use seqnet_core::{Activation, Layer, LayerGraph, Mode, Network};

fn check(graph: &LayerGraph, x: Activation, k: usize) {
    let mut rng = StdRng::seed_from_u64(4);
    let b = x.batch();
    let mut y = ArrayD::<f32>::zeros(IxDyn(&[b, k]));
    for i in 0..b {
        y[[i, rng.random_range(0..k)]] = 1.0;
    }
    let y = Activation::features(y).unwrap();
    let mut grads = Vec::new();
    for on in [true, false] {
        let mut net = Network::new(graph, 3).unwrap();
        net.set_input_gradients(on);
        assert_eq!(net.input_gradients_enabled(), on);
        net.forward(
            std::slice::from_ref(&x),
            Some(std::slice::from_ref(&y)),
            Mode::Training,
            false,
        )
        .unwrap();
        net.backward().unwrap();
        assert_eq!(net.input_gradients()[0].is_some(), on);
        grads.push(
            net.learnables()
                .iter()
                .map(|(_, p)| p.grad.clone())
                .collect::<Vec<_>>(),
        );
    }
    assert_eq!(grads[0], grads[1]);
}

#[test]
fn learnable_gradients_do_not_depend_on_input_gradients() {
    let mut rng = StdRng::seed_from_u64(1);
    let layers: Vec<Layer> = vec![
        SequenceInput::new(3).name("in").into(),
        Lstm::new(5)
            .output_mode(OutputMode::Last)
            .name("lstm")
            .into(),
        FullyConnected::new(4).name("fc").into(),
        Softmax::new().name("sm").into(),
        ClassificationOutput::new().name("out").into(),
    ];
    let g = LayerGraph::from_layers(layers).unwrap();
    let x = ArrayD::from_shape_simple_fn(IxDyn(&[6, 2, 3]), || rng.random_range(-1.0f32..1.0));
    check(&g, Activation::sequence(x, None).unwrap(), 4);

    let layers: Vec<Layer> = vec![
        SequenceInput::image([8, 8, 1]).name("in").into(),
        SequenceFolding::new().name("fold").into(),
        Convolution2d::new([3, 3], 2).name("conv").into(),
        BatchNormalization::new().name("bn").into(),
        Relu::new().name("relu").into(),
        SequenceUnfolding::new().name("unfold").into(),
        Flatten::new().name("flat").into(),
        Lstm::new(4)
            .output_mode(OutputMode::Last)
            .name("lstm")
            .into(),
        FullyConnected::new(3).name("fc").into(),
        Softmax::new().name("sm").into(),
        ClassificationOutput::new().name("out").into(),
    ];
    let mut g = LayerGraph::from_layers(layers).unwrap();
    g.connect("fold/miniBatchSize", "unfold/miniBatchSize")
        .unwrap();
    let x = ArrayD::from_shape_simple_fn(IxDyn(&[4, 2, 1, 8, 8]), || rng.random_range(0.0f32..1.0));
    check(&g, Activation::image_sequence(x, None).unwrap(), 3);
}
