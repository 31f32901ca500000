//! `Addition` and `Concatenation`: layers with several inputs, so that real DAGs
//! (residual connections, parallel branches) can be built.

use super::util::{no_forward, LastOutputs, RUN};
use super::{name_field, named};
use crate::activation::Activation;
use crate::error::{Error, Result};
use crate::format::{ActShape, Format};
use crate::layer::{ForwardCtx, LayerDef, LayerKernel, Params, ShapeError};
use ndarray::{ArrayD, Axis};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Port names `in1` … `in16`; merge layers take at most this many inputs.
const PORTS: [&str; 16] = [
    "in1", "in2", "in3", "in4", "in5", "in6", "in7", "in8", "in9", "in10", "in11", "in12", "in13",
    "in14", "in15", "in16",
];

fn ports(n: usize) -> &'static [&'static str] {
    &PORTS[..n.clamp(1, PORTS.len())]
}

fn check_count(n: usize) -> Result<(), ShapeError> {
    if !(2..=PORTS.len()).contains(&n) {
        return Err(ShapeError::new(
            0,
            format!("NumInputs must be 2 to {}, got {n}", PORTS.len()),
        ));
    }
    Ok(())
}

/// MATLAB's `additionLayer(numInputs)`: the element-wise sum of its inputs, which
/// must all have the same shape and format. Ports `in1` … `inN`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Addition {
    #[serde(default)]
    pub name: String,
    pub num_inputs: usize,
}

named!(Addition);

impl Addition {
    pub fn new(num_inputs: usize) -> Self {
        Addition {
            name: String::new(),
            num_inputs,
        }
    }
}

impl LayerDef for Addition {
    name_field!();
    fn type_name(&self) -> &'static str {
        "Addition"
    }
    fn input_ports(&self) -> &'static [&'static str] {
        ports(self.num_inputs)
    }
    fn infer(&self, inputs: &[ActShape]) -> Result<Vec<ActShape>, ShapeError> {
        check_count(self.num_inputs)?;
        let first = *inputs
            .first()
            .ok_or_else(|| ShapeError::new(0, "no input"))?;
        if first.format == Format::BatchSize {
            return Err(ShapeError::new(0, "cannot take the mini-batch size"));
        }
        for (i, s) in inputs.iter().enumerate().skip(1) {
            if *s != first {
                return Err(ShapeError::new(
                    i,
                    format!("has size {s} but 'in1' has {first}; addition needs equal sizes"),
                ));
            }
        }
        Ok(vec![first])
    }
    fn build(&self, _inputs: &[ActShape], _params: Params) -> Result<Box<dyn LayerKernel>> {
        Ok(Box::new(AdditionKernel {
            name: self.name.clone(),
            n: self.num_inputs,
            ran: false,
            last_output: LastOutputs::default(),
        }))
    }
}

struct AdditionKernel {
    name: String,
    n: usize,
    ran: bool,
    /// The last two outputs (shared): their allocations are reused by
    /// the next forward once nothing else holds them.
    last_output: LastOutputs,
}

/// `out = Σ xs` element by element (every slice as long as `out`), in one
/// pass on rayon's threads.
fn sum_into(xs: &[&[f32]], out: &mut [f32]) {
    let (first, rest) = xs.split_first().expect("at least one input");
    out.par_chunks_mut(RUN).enumerate().for_each(|(i, o)| {
        let run = i * RUN..i * RUN + o.len();
        // The first two in one pass (`a + b`, the same bits as copying `a`
        // and adding `b`), then the others added in order.
        let more = match rest.split_first() {
            Some((second, more)) => {
                let (a, b) = (&first[run.clone()], &second[run.clone()]);
                o.iter_mut()
                    .zip(a.iter().zip(b))
                    .for_each(|(s, (a, b))| *s = a + b);
                more
            }
            None => {
                o.copy_from_slice(&first[run.clone()]);
                rest
            }
        };
        for x in more {
            for (s, v) in o.iter_mut().zip(&x[run.clone()]) {
                *s += v;
            }
        }
    });
}

impl LayerKernel for AdditionKernel {
    fn forward(
        &mut self,
        inputs: &[&Activation],
        _ctx: &mut ForwardCtx,
    ) -> Result<Vec<Activation>> {
        let first = inputs
            .first()
            .ok_or_else(|| Error::layer(&self.name, "no input"))?;
        for (i, x) in inputs.iter().enumerate().skip(1) {
            if x.data.shape() != first.data.shape() {
                return Err(Error::layer(
                    &self.name,
                    format!(
                        "input port '{}' has shape {:?}, 'in1' has {:?}",
                        PORTS[i],
                        x.data.shape(),
                        first.data.shape()
                    ),
                ));
            }
        }
        let slices: Option<Vec<&[f32]>> = inputs.iter().map(|x| x.data.as_slice()).collect();
        let sum = match slices {
            // One pass on rayon's threads when every input is in standard
            // layout, into the last output's allocation.
            Some(s) => {
                let mut out = self.last_output.buffer(first.data.len());
                sum_into(&s, &mut out);
                ArrayD::from_shape_vec(first.data.shape(), out).expect("same shape")
            }
            None => {
                let mut sum = first.data.to_owned();
                for x in &inputs[1..] {
                    sum += &x.data;
                }
                sum
            }
        }
        .into_shared();
        self.last_output.keep(&sum);
        self.ran = true;
        Ok(vec![Activation {
            data: sum,
            format: first.format,
            lengths: first.lengths.clone(),
        }])
    }
    fn backward(
        &mut self,
        mut grads: Vec<Option<ArrayD<f32>>>,
    ) -> Result<Vec<Option<ArrayD<f32>>>> {
        if !self.ran {
            return Err(no_forward(&self.name));
        }
        let g = grads.get_mut(0).and_then(Option::take);
        Ok(vec![g; self.n])
    }
}

/// MATLAB's `concatenationLayer` along the channel dimension (`depthConcatenationLayer`
/// for images): inputs of the same format and spatial size, channels stacked in port order.
/// Ports `in1` … `inN`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Concatenation {
    #[serde(default)]
    pub name: String,
    pub num_inputs: usize,
}

named!(Concatenation);

impl Concatenation {
    pub fn new(num_inputs: usize) -> Self {
        Concatenation {
            name: String::new(),
            num_inputs,
        }
    }
}

/// The channel axis of data in seqnet's layouts.
fn channel_axis(format: Format) -> Axis {
    match format {
        Format::CB | Format::SSCB => Axis(1),
        Format::CBT | Format::SSCBT | Format::BatchSize => Axis(2),
    }
}

impl LayerDef for Concatenation {
    name_field!();
    fn type_name(&self) -> &'static str {
        "Concatenation"
    }
    fn input_ports(&self) -> &'static [&'static str] {
        ports(self.num_inputs)
    }
    fn infer(&self, inputs: &[ActShape]) -> Result<Vec<ActShape>, ShapeError> {
        check_count(self.num_inputs)?;
        let first = *inputs
            .first()
            .ok_or_else(|| ShapeError::new(0, "no input"))?;
        if first.format == Format::BatchSize {
            return Err(ShapeError::new(0, "cannot take the mini-batch size"));
        }
        let mut channels = 0;
        for (i, s) in inputs.iter().enumerate() {
            if s.format != first.format || s.spatial != first.spatial {
                return Err(ShapeError::new(i, format!("has size {s} but 'in1' has {first}; concatenation needs the same format and spatial size")));
            }
            channels += s.channels;
        }
        Ok(vec![ActShape { channels, ..first }])
    }
    fn build(&self, _inputs: &[ActShape], _params: Params) -> Result<Box<dyn LayerKernel>> {
        Ok(Box::new(ConcatKernel {
            name: self.name.clone(),
            split: None,
        }))
    }
}

struct ConcatKernel {
    name: String,
    /// Channel axis and channel count of each input of the last forward.
    split: Option<(Axis, Vec<usize>)>,
}

impl LayerKernel for ConcatKernel {
    fn forward(
        &mut self,
        inputs: &[&Activation],
        _ctx: &mut ForwardCtx,
    ) -> Result<Vec<Activation>> {
        let first = inputs
            .first()
            .ok_or_else(|| Error::layer(&self.name, "no input"))?;
        let axis = channel_axis(first.format);
        let views: Vec<_> = inputs.iter().map(|x| x.data.view()).collect();
        let data = ndarray::concatenate(axis, &views)
            .map_err(|e| Error::layer(&self.name, format!("inputs do not fit together: {e}")))?;
        self.split = Some((
            axis,
            inputs.iter().map(|x| x.data.shape()[axis.0]).collect(),
        ));
        Ok(vec![first.like(data)])
    }
    fn backward(
        &mut self,
        mut grads: Vec<Option<ArrayD<f32>>>,
    ) -> Result<Vec<Option<ArrayD<f32>>>> {
        let (axis, sizes) = self.split.clone().ok_or_else(|| no_forward(&self.name))?;
        let Some(g) = grads.get_mut(0).and_then(Option::take) else {
            return Ok(vec![None; sizes.len()]);
        };
        let mut start = 0;
        Ok(sizes
            .iter()
            .map(|&c| {
                let part = g
                    .slice_axis(axis, ndarray::Slice::from(start..start + c))
                    .to_owned();
                start += c;
                Some(part)
            })
            .collect())
    }
}
