//! Two of MATLAB's documented custom-layer examples, written against seqnet's
//! public layer traits as a user would in their own crate:
//!
//! * [`PRelu`]: "Define Custom Deep Learning Layer with Learnable Parameters"
//!   (`preluLayer`): `f(x) = max(x, 0) + α ⊙ min(x, 0)`, a learnable slope `α`
//!   per channel.
//! * [`WeightedAddition`]: "Define Custom Deep Learning Layer with Multiple
//!   Inputs" (`weightedAdditionLayer`): `y = Σ_i w_i · x_i`, a learnable
//!   weight per input.
//!
//! Shared by `examples/custom_layer.rs` and `tests/custom_layer.rs`.

use ndarray::ArrayD;
use seqnet::core::onnx::{OnnxLayerCtx, OnnxValue};
use seqnet::core::{
    numbered_ports, ActShape, Activation, Error, ForwardCtx, Initializer, LayerDef, LayerKernel,
    LayerType, Learnable, LearnableSpec, Params, Result, ShapeError,
};
use serde::{Deserialize, Serialize};

/// MATLAB's `preluLayer`: any input format, its channels on the last axis.
///
/// * Input and output: same shape and format (`[..., C]`).
/// * Learnable: `Alpha` `[C]`, initialized to 0.25 as in MATLAB's example.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PRelu {
    #[serde(default)]
    pub name: String,
}

impl PRelu {
    pub fn new(name: &str) -> Self {
        PRelu { name: name.into() }
    }
}

impl LayerType for PRelu {
    const TYPE: &'static str = "prelu";
}

impl LayerDef for PRelu {
    fn name(&self) -> &str {
        &self.name
    }
    fn set_name(&mut self, name: String) {
        self.name = name;
    }
    fn type_name(&self) -> &'static str {
        "PReLU"
    }
    fn infer(&self, inputs: &[ActShape]) -> Result<Vec<ActShape>, ShapeError> {
        let x = inputs
            .first()
            .ok_or_else(|| ShapeError::new(0, "no input"))?;
        if x.channels == 0 {
            return Err(ShapeError::new(0, "expects channels"));
        }
        Ok(vec![*x])
    }
    fn learnables(&self, inputs: &[ActShape]) -> Vec<LearnableSpec> {
        let c = inputs.first().map(|s| s.channels).unwrap_or(0);
        // A slope, not a weight: no L2 regularization (MATLAB's example uses the default 1;
        // either is fine here).
        vec![LearnableSpec::weights(
            "Alpha",
            vec![c],
            Initializer::Constant(0.25),
        )]
    }
    fn build(&self, _inputs: &[ActShape], mut params: Params) -> Result<Box<dyn LayerKernel>> {
        Ok(Box::new(PReluKernel {
            name: self.name.clone(),
            alpha: params.learnable("Alpha")?,
            input: None,
        }))
    }
    /// ONNX's `PRelu` (slope `Alpha` `[C]`, broadcast over the last axis,
    /// where seqnet's feature formats keep their channels).
    fn onnx_export(&self, ctx: &mut OnnxLayerCtx) -> Result<Vec<OnnxValue>> {
        let x = ctx.input(0)?.clone();
        if x.shape.format.is_spatial() {
            return Err(ctx.unsupported("PReLU of images is not exported"));
        }
        let alpha = ctx.param("Alpha")?.iter().copied().collect::<Vec<_>>();
        let slope = ctx.float("Alpha", &[alpha.len()], alpha);
        let y = ctx.node("PRelu", &[&x.name, &slope], vec![]);
        Ok(vec![OnnxValue { name: y, ..x }])
    }
}

struct PReluKernel {
    name: String,
    alpha: Learnable,
    /// The last forward's input, `[..., C]`.
    input: Option<ArrayD<f32>>,
}

impl LayerKernel for PReluKernel {
    fn forward(
        &mut self,
        inputs: &[&Activation],
        _ctx: &mut ForwardCtx,
    ) -> Result<Vec<Activation>> {
        let x = inputs[0];
        let alpha = self.alpha.value.as_slice().expect("standard layout");
        if x.data.shape().last() != Some(&alpha.len()) {
            return Err(Error::layer(
                &self.name,
                format!(
                    "expects {} channels, got shape {:?}",
                    alpha.len(),
                    x.data.shape()
                ),
            ));
        }
        // Channels are the last axis: element i belongs to channel i % C.
        let input = x.data.as_standard_layout().into_owned();
        let mut y = input.clone();
        for (i, v) in y.iter_mut().enumerate() {
            if *v < 0.0 {
                *v *= alpha[i % alpha.len()];
            }
        }
        self.input = Some(input);
        Ok(vec![x.like(y)])
    }

    fn backward(
        &mut self,
        mut grads: Vec<Option<ArrayD<f32>>>,
    ) -> Result<Vec<Option<ArrayD<f32>>>> {
        let x = self
            .input
            .as_ref()
            .ok_or_else(|| Error::layer(&self.name, "backward before forward"))?;
        let alpha = self.alpha.value.as_slice().expect("standard layout");
        let c = alpha.len();
        let mut dx = match grads[0].take() {
            Some(g) => g.as_standard_layout().into_owned(),
            None => ArrayD::zeros(x.shape()),
        };
        // dL/dα_c = Σ over negative x of channel c of g·x; dL/dx = g·α there.
        let mut dalpha = vec![0.0f32; c];
        for (i, (g, &x)) in dx.iter_mut().zip(x.iter()).enumerate() {
            if x < 0.0 {
                dalpha[i % c] += *g * x;
                *g *= alpha[i % c];
            }
        }
        self.alpha.grad = ArrayD::from_shape_vec(vec![c], dalpha).expect("one per channel");
        Ok(vec![Some(dx)])
    }

    fn learnables(&self) -> Vec<&Learnable> {
        vec![&self.alpha]
    }
    fn learnables_mut(&mut self) -> Vec<&mut Learnable> {
        vec![&mut self.alpha]
    }
}

/// MATLAB's `weightedAdditionLayer(numInputs)`: `y = Σ_i w_i · x_i` over inputs
/// of one shape and format. Ports `in1` … `inN`.
///
/// * Learnable: `Weights` `[N]`, drawn uniformly in `[0, 1)` as MATLAB's
///   example does (`rand(1, numInputs)`), here as Glorot-free uniform values
///   from the network's seeded generator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WeightedAddition {
    #[serde(default)]
    pub name: String,
    pub num_inputs: usize,
}

impl WeightedAddition {
    pub fn new(name: &str, num_inputs: usize) -> Self {
        WeightedAddition {
            name: name.into(),
            num_inputs,
        }
    }
}

impl LayerType for WeightedAddition {
    const TYPE: &'static str = "weightedAddition";
}

impl LayerDef for WeightedAddition {
    fn name(&self) -> &str {
        &self.name
    }
    fn set_name(&mut self, name: String) {
        self.name = name;
    }
    fn type_name(&self) -> &'static str {
        "Weighted Addition"
    }
    fn input_ports(&self) -> &'static [&'static str] {
        numbered_ports(self.num_inputs)
    }
    fn infer(&self, inputs: &[ActShape]) -> Result<Vec<ActShape>, ShapeError> {
        if !(2..=16).contains(&self.num_inputs) {
            return Err(ShapeError::new(
                0,
                format!("NumInputs must be 2 to 16, got {}", self.num_inputs),
            ));
        }
        let first = inputs[0];
        for (i, s) in inputs.iter().enumerate().skip(1) {
            if *s != first {
                return Err(ShapeError::new(
                    i,
                    format!("has size {s} but 'in1' has {first}"),
                ));
            }
        }
        Ok(vec![first])
    }
    fn learnables(&self, _inputs: &[ActShape]) -> Vec<LearnableSpec> {
        // Uniform in [0, 1): Glorot's bound sqrt(6 / (fan_in + fan_out)) is 1 for fans summing to 6;
        // taking |w| keeps them positive as MATLAB's rand does.
        vec![LearnableSpec::weights(
            "Weights",
            vec![self.num_inputs],
            Initializer::Values(ArrayD::from_elem(
                vec![self.num_inputs],
                1.0 / self.num_inputs as f32,
            )),
        )]
    }
    fn build(&self, _inputs: &[ActShape], mut params: Params) -> Result<Box<dyn LayerKernel>> {
        Ok(Box::new(WeightedAdditionKernel {
            name: self.name.clone(),
            weights: params.learnable("Weights")?,
            inputs: Vec::new(),
        }))
    }
}

struct WeightedAdditionKernel {
    name: String,
    weights: Learnable,
    /// The last forward's inputs.
    inputs: Vec<ArrayD<f32>>,
}

impl LayerKernel for WeightedAdditionKernel {
    fn forward(
        &mut self,
        inputs: &[&Activation],
        _ctx: &mut ForwardCtx,
    ) -> Result<Vec<Activation>> {
        if inputs.len() != self.weights.value.len() {
            return Err(Error::layer(&self.name, "wrong number of inputs"));
        }
        let mut y = ArrayD::<f32>::zeros(inputs[0].data.shape());
        for (x, &w) in inputs.iter().zip(self.weights.value.iter()) {
            y.scaled_add(w, &x.data);
        }
        self.inputs = inputs.iter().map(|x| x.data.to_owned()).collect();
        Ok(vec![inputs[0].like(y)])
    }

    fn backward(
        &mut self,
        mut grads: Vec<Option<ArrayD<f32>>>,
    ) -> Result<Vec<Option<ArrayD<f32>>>> {
        if self.inputs.is_empty() {
            return Err(Error::layer(&self.name, "backward before forward"));
        }
        let g = grads[0]
            .take()
            .unwrap_or_else(|| ArrayD::zeros(self.inputs[0].shape()));
        // dL/dw_i = Σ g ⊙ x_i; dL/dx_i = w_i · g.
        let dw: Vec<f32> = self.inputs.iter().map(|x| (&g * x).sum()).collect();
        self.weights.grad = ArrayD::from_shape_vec(vec![dw.len()], dw).expect("one per input");
        Ok(self.weights.value.iter().map(|&w| Some(&g * w)).collect())
    }

    fn learnables(&self) -> Vec<&Learnable> {
        vec![&self.weights]
    }
    fn learnables_mut(&mut self) -> Vec<&mut Learnable> {
        vec![&mut self.weights]
    }
}
