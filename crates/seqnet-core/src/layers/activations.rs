//! Element-wise activation layers: `Relu`, `LeakyRelu`, `Tanh`, `Sigmoid`.
//! Input and output have the same shape and format, any format.

use super::util::{grad_or_zeros, no_forward, single, LastOutputs, RUN};
use super::{name_field, named};
use crate::activation::Activation;
use crate::error::{Error, Result};
use crate::format::{ActShape, Format};
use crate::layer::{ForwardCtx, LayerDef, LayerKernel, Params, ShapeError};
use ndarray::{ArcArray, ArrayD, IxDyn, Zip};
use serde::{Deserialize, Serialize};

/// The function an element-wise layer applies.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Func {
    Relu,
    LeakyRelu(f32),
    Tanh,
    Sigmoid,
}

impl Func {
    fn apply(self, x: f32) -> f32 {
        match self {
            Func::Relu => x.max(0.0),
            Func::LeakyRelu(s) => {
                if x > 0.0 {
                    x
                } else {
                    s * x
                }
            }
            Func::Tanh => x.tanh(),
            Func::Sigmoid => 1.0 / (1.0 + (-x).exp()),
        }
    }
    /// The derivative at input `x` with output `y`.
    fn derivative(self, x: f32, y: f32) -> f32 {
        match self {
            Func::Relu => (x > 0.0) as u8 as f32,
            Func::LeakyRelu(s) => {
                if x > 0.0 {
                    1.0
                } else {
                    s
                }
            }
            Func::Tanh => 1.0 - y * y,
            Func::Sigmoid => y * (1.0 - y),
        }
    }
}

fn infer_elementwise(inputs: &[ActShape]) -> Result<Vec<ActShape>, ShapeError> {
    let x = single(inputs)?;
    if x.format == Format::BatchSize {
        return Err(ShapeError::new(0, "cannot take the mini-batch size"));
    }
    Ok(vec![x])
}

/// An array shared with the network's activations.
type Shared = ArcArray<f32, IxDyn>;

/// `y[i] = f(x[i])` on rayon's threads (`y` as long as `x`).
fn map_into(x: &[f32], y: &mut [f32], f: impl Fn(f32) -> f32 + Sync + Send) {
    use rayon::prelude::*;
    y.par_chunks_mut(RUN)
        .zip(x.par_chunks(RUN))
        .for_each(|(y, x)| y.iter_mut().zip(x).for_each(|(y, &x)| *y = f(x)));
}

struct ElementwiseKernel {
    name: String,
    func: Func,
    /// What backward needs of the last forward, shared with the activations
    /// (no copies): the output, and the input only where the derivative
    /// needs it (a ReLU's `x > 0` is its `y > 0`; holding its input would
    /// keep the producer from reusing that allocation).
    cache: Option<(Option<Shared>, Shared)>,
    /// The last outputs, for their allocations.
    last: LastOutputs,
}

impl LayerKernel for ElementwiseKernel {
    fn forward(
        &mut self,
        inputs: &[&Activation],
        _ctx: &mut ForwardCtx,
    ) -> Result<Vec<Activation>> {
        let x = inputs
            .first()
            .ok_or_else(|| Error::layer(&self.name, "no input"))?;
        let f = self.func;
        // The last pass's output (cached for backward) may be the buffer
        // reused below: let go of it first.
        self.cache = None;
        let y = match x.data.as_slice() {
            Some(xs) => {
                let mut y = self.last.buffer(xs.len());
                match f {
                    // The ReLU's own closure, so that its loop has no `match` inside.
                    Func::Relu => map_into(xs, &mut y, |v| v.max(0.0)),
                    _ => map_into(xs, &mut y, |v| f.apply(v)),
                }
                ArrayD::from_shape_vec(x.data.shape(), y).expect("same shape")
            }
            None => x.data.mapv(|v| f.apply(v)),
        }
        .into_shared();
        self.last.keep(&y);
        let keep_x = matches!(f, Func::LeakyRelu(_));
        self.cache = Some((keep_x.then(|| x.data.clone()), y.clone()));
        Ok(vec![Activation {
            data: y,
            format: x.format,
            lengths: x.lengths.clone(),
        }])
    }
    fn backward(
        &mut self,
        mut grads: Vec<Option<ArrayD<f32>>>,
    ) -> Result<Vec<Option<ArrayD<f32>>>> {
        let (x, y) = self.cache.as_ref().ok_or_else(|| no_forward(&self.name))?;
        // Where the input was not kept the output stands in for it (ReLU:
        // `y > 0` exactly where `x > 0`; tanh and sigmoid read `y` only).
        let x = x.as_ref().unwrap_or(y);
        let mut g = grad_or_zeros(&mut grads, y.shape());
        let f = self.func;
        match (g.as_slice_mut(), x.as_slice(), y.as_slice()) {
            (Some(gs), Some(xs), Some(ys)) if gs.len() == xs.len() && gs.len() == ys.len() => {
                use rayon::prelude::*;
                let pairs = gs.par_iter_mut().zip(xs.par_iter().zip(ys.par_iter()));
                let pairs = pairs.with_min_len(RUN);
                match f {
                    // The ReLU's own closure: a select the compiler
                    // vectorizes (`derivative`'s `match` kept the loop scalar).
                    Func::Relu => {
                        pairs.for_each(|(g, (_, &y))| *g *= if y > 0.0 { 1.0 } else { 0.0 })
                    }
                    _ => pairs.for_each(|(g, (&x, &y))| *g *= f.derivative(x, y)),
                }
            }
            _ => Zip::from(&mut g)
                .and(x)
                .and(y)
                .for_each(|g, &x, &y| *g *= f.derivative(x, y)),
        }
        Ok(vec![Some(g)])
    }
    fn can_step(&self) -> bool {
        true
    }
    fn forward_step(&mut self, x: &[f32], out: &mut Vec<f32>) -> Result<()> {
        let f = self.func;
        out.clear();
        out.extend(x.iter().map(|&v| f.apply(v)));
        Ok(())
    }
}

macro_rules! elementwise_layer {
    ($ty:ident, $type_name:literal, $doc:literal, |$s:ident| $func:expr) => {
        #[doc = $doc]
        #[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
        pub struct $ty {
            #[serde(default)]
            pub name: String,
        }
        named!($ty);
        impl $ty {
            pub fn new() -> Self {
                Self::default()
            }
        }
        impl LayerDef for $ty {
            name_field!();
            fn type_name(&self) -> &'static str {
                $type_name
            }
            fn infer(&self, inputs: &[ActShape]) -> Result<Vec<ActShape>, ShapeError> {
                infer_elementwise(inputs)
            }
            fn build(&self, _inputs: &[ActShape], _params: Params) -> Result<Box<dyn LayerKernel>> {
                let $s = self;
                Ok(Box::new(ElementwiseKernel {
                    name: self.name.clone(),
                    func: $func,
                    cache: None,
                    last: LastOutputs::default(),
                }))
            }
        }
    };
}

elementwise_layer!(Relu, "ReLU", "MATLAB's `reluLayer`: `max(x, 0)`.", |_s| {
    Func::Relu
});
elementwise_layer!(Tanh, "Tanh", "MATLAB's `tanhLayer`.", |_s| Func::Tanh);
elementwise_layer!(
    Sigmoid,
    "Sigmoid",
    "MATLAB's `sigmoidLayer`: `1 / (1 + e^−x)`.",
    |_s| Func::Sigmoid
);

/// MATLAB's `leakyReluLayer`: `x` for positive `x`, `scale·x` otherwise (scale 0.01).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeakyRelu {
    #[serde(default)]
    pub name: String,
    #[serde(default = "default_scale")]
    pub scale: f32,
}

fn default_scale() -> f32 {
    0.01
}

named!(LeakyRelu);

impl Default for LeakyRelu {
    fn default() -> Self {
        LeakyRelu {
            name: String::new(),
            scale: default_scale(),
        }
    }
}

impl LeakyRelu {
    pub fn new(scale: f32) -> Self {
        LeakyRelu {
            name: String::new(),
            scale,
        }
    }
}

impl LayerDef for LeakyRelu {
    name_field!();
    fn type_name(&self) -> &'static str {
        "Leaky ReLU"
    }
    fn infer(&self, inputs: &[ActShape]) -> Result<Vec<ActShape>, ShapeError> {
        infer_elementwise(inputs)
    }
    fn build(&self, _inputs: &[ActShape], _params: Params) -> Result<Box<dyn LayerKernel>> {
        Ok(Box::new(ElementwiseKernel {
            name: self.name.clone(),
            func: Func::LeakyRelu(self.scale),
            cache: None,
            last: LastOutputs::default(),
        }))
    }
}
