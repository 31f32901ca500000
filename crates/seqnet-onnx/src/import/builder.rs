//! The seqnet graph being built: layers with MATLAB-style names, their
//! connections and the learnables read from the ONNX file.

use super::values::{Layout, Value};
use crate::error::{Error, Result};
use ndarray::ArrayD;
use seqnet_core::layers::{ClassificationOutput, RegressionOutput, Softmax};
use seqnet_core::{Layer, LayerGraph, Network};
use seqnet_train::Model;
use std::collections::HashMap;

pub(crate) struct Builder {
    /// What each ONNX tensor is, by name.
    pub values: HashMap<String, Value>,
    layers: Vec<Layer>,
    connections: Vec<(String, String)>,
    params: Vec<(String, &'static str, ArrayD<f32>)>,
    /// How many layers read each output port.
    pub readers: HashMap<String, usize>,
    /// The sequence folding layer's `miniBatchSize` port, once there is one.
    pub fold: Option<String>,
}

impl Builder {
    pub fn new() -> Self {
        Builder {
            values: HashMap::new(),
            layers: vec![],
            connections: vec![],
            params: vec![],
            readers: HashMap::new(),
            fold: None,
        }
    }

    /// Adds `layer`, named `stem` (or `stem_1`, … when taken), fed by
    /// `inputs` (output ports, in input-port order); returns its first
    /// output port as `"name/port"`.
    pub fn add(&mut self, stem: &str, mut layer: Layer, inputs: &[&str]) -> Result<String> {
        let taken = |n: &str| self.layers.iter().any(|l| l.name() == n);
        let mut name = stem.to_string();
        let mut k = 0;
        while taken(&name) {
            k += 1;
            name = format!("{stem}_{k}");
        }
        layer.set_name(name.clone());
        let ports = layer.def().input_ports();
        for (i, src) in inputs.iter().enumerate() {
            let port = ports.get(i).copied().unwrap_or("in");
            self.connections
                .push((src.to_string(), format!("{name}/{port}")));
            *self.readers.entry(src.to_string()).or_default() += 1;
        }
        let out = layer.def().output_ports().first().copied().unwrap_or("out");
        self.layers.push(layer);
        Ok(format!("{name}/{out}"))
    }

    /// Sets learnable (or statistic) `what` of the layer whose output is `port`.
    pub fn param(&mut self, port: &str, what: &'static str, value: ArrayD<f32>) {
        let layer = port.split('/').next().unwrap_or(port).to_string();
        self.params.push((layer, what, value));
    }

    /// The layer whose output port is `port`, mutable.
    pub fn layer_mut(&mut self, port: &str) -> Option<&mut Layer> {
        let name = port.split('/').next().unwrap_or(port);
        self.layers.iter_mut().find(|l| l.name() == name)
    }

    /// Ends the graph at ONNX tensor `output` with an output layer
    /// (classification after a softmax, classes "1".."K"; else regression)
    /// and builds the model.
    pub fn finish(mut self, output: &str) -> Result<Model> {
        let data = match self.values.get(output) {
            Some(Value::Data(d)) => d.clone(),
            _ => {
                return Err(Error::Import(format!(
                    "output '{output}' is not computed from the input by supported nodes"
                )))
            }
        };
        if !matches!(data.layout, Layout::Bc | Layout::Btc) {
            return Err(Error::Import(format!(
                "output '{output}' is not batch first ([B, K] or [B, T, K]): {:?}",
                data.layout
            )));
        }
        let classify = self
            .layer_mut(&data.port)
            .is_some_and(|l| l.is::<Softmax>());
        let classes: Vec<String> = if classify {
            (1..=data.shape.channels).map(|k| k.to_string()).collect()
        } else {
            vec![]
        };
        let out: Layer = if classify {
            ClassificationOutput::new().into()
        } else {
            RegressionOutput::new().into()
        };
        let stem = if classify {
            "classoutput"
        } else {
            "regressionoutput"
        };
        self.add(stem, out, &[&data.port])?;
        let mut graph = LayerGraph::new();
        graph.add_layers(self.layers)?;
        for (src, dst) in &self.connections {
            graph.connect(src, dst)?;
        }
        let mut network = Network::new(&graph, 0)?;
        for (layer, what, value) in self.params {
            network.set_learnable(&layer, what, value)?;
        }
        Ok(Model {
            network,
            classes,
            options: None,
        })
    }
}
