//! `Network`: a checked graph compiled into kernels run in schedule order.

use crate::activation::Activation;
use crate::error::{Error, Result};
use crate::graph::{LayerGraph, Plan};
use crate::layer::{build_kernel, ForwardCtx, LayerKernel, Mode, Params};
use crate::learnable::{Learnable, StateArray};
use ndarray::{ArcArray, ArrayD, IxDyn};
use rand::rngs::StdRng;
use rand::SeedableRng;

/// An executable network: the graph, its schedule, and one kernel per layer
/// holding that layer's learnables.
pub struct Network {
    graph: LayerGraph,
    plan: Plan,
    kernels: Vec<Box<dyn LayerKernel>>,
    /// The last forward's outputs, per layer and output port.
    values: Vec<Vec<Option<Activation>>>,
    /// The loss gradient with respect to each input layer's data, after `backward`.
    input_grads: Vec<Option<ArrayD<f32>>>,
    inputs: Vec<usize>,
    outputs: Vec<usize>,
    rng: StdRng,
    /// The layers of a chain network (one input, one output, each layer feeding
    /// the next) in order, output layer excluded: the streaming path's layers.
    chain: Option<Vec<usize>>,
    /// The streaming path's two buffers (input and output of a layer).
    step_bufs: (Vec<f32>, Vec<f32>),
    /// Whether backward computes the gradient with respect to the input data.
    input_gradients: bool,
    /// Per layer: whether anything upstream of its outputs needs a gradient
    /// (a learnable, or the input data with `input_gradients`); backward skips
    /// layers that need none.
    needs_grad: Vec<bool>,
}

/// The layers of `plan` in order when they form a chain (see `Network::chain`).
fn chain_of(plan: &Plan, inputs: &[usize], outputs: &[usize]) -> Option<Vec<usize>> {
    if inputs.len() != 1 || outputs.len() != 1 {
        return None;
    }
    let order = &plan.order;
    if order.first() != Some(&inputs[0]) || order.last() != Some(&outputs[0]) {
        return None;
    }
    for w in order.windows(2) {
        let (prev, cur) = (w[0], w[1]);
        let src = &plan.sources[cur];
        if src.len() != 1 || src[0].layer != prev || src[0].port != 0 {
            return None;
        }
        let cons = &plan.consumers[prev];
        if cons.first().map(Vec::len) != Some(1) || cons.iter().skip(1).any(|c| !c.is_empty()) {
            return None;
        }
    }
    Some(order[..order.len() - 1].to_vec())
}

impl std::fmt::Debug for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Network")
            .field("graph", &self.graph)
            .finish_non_exhaustive()
    }
}

impl Network {
    /// Checks `graph` and builds its kernels, initializing the learnables from `seed`.
    pub fn new(graph: &LayerGraph, seed: u64) -> Result<Self> {
        let plan = graph.check()?;
        let mut rng = StdRng::seed_from_u64(seed);
        let mut kernels: Vec<Option<Box<dyn LayerKernel>>> =
            (0..graph.layers.len()).map(|_| None).collect();
        // Initialize in schedule order, so that adding a layer elsewhere does not
        // change the draws of layers before it.
        for &i in &plan.order {
            kernels[i] = Some(build_kernel(
                graph.layers[i].def(),
                &plan.input_shapes[i],
                &mut rng,
            )?);
        }
        let kernels = kernels
            .into_iter()
            .map(|k| k.expect("every layer is scheduled"))
            .collect();
        let inputs = (0..graph.layers.len())
            .filter(|&i| graph.layers[i].def().is_input())
            .collect::<Vec<_>>();
        let outputs = (0..graph.layers.len())
            .filter(|&i| graph.layers[i].def().is_output())
            .collect::<Vec<_>>();
        let chain = chain_of(&plan, &inputs, &outputs);
        let mut network = Network {
            chain,
            step_bufs: (Vec::new(), Vec::new()),
            input_gradients: true,
            needs_grad: Vec::new(),
            values: graph
                .layers
                .iter()
                .map(|l| vec![None; l.def().output_ports().len()])
                .collect(),
            input_grads: vec![None; inputs.len()],
            graph: graph.clone(),
            plan,
            kernels,
            inputs,
            outputs,
            rng: StdRng::seed_from_u64(seed ^ 0x5eed_da7a),
        };
        network.set_input_gradients(true);
        Ok(network)
    }

    /// Another network over the same graph that shares this one's learnables
    /// and statistics (copy-on-write: nothing is copied until either network
    /// updates a value), with its own kernels, buffers and recurrent state.
    /// Give each thread that serves predictions its own share: the shares run
    /// concurrently and each gives exactly what this network gives.
    pub fn share(&self) -> Result<Network> {
        let mut kernels = Vec::with_capacity(self.kernels.len());
        for (i, k) in self.kernels.iter().enumerate() {
            let learnables = k.learnables().into_iter().map(Learnable::share).collect();
            let states = k.states().into_iter().cloned().collect();
            let def = self.graph.layers[i].def();
            let params = Params::from_parts(def.name(), learnables, states);
            kernels.push(def.build(&self.plan.input_shapes[i], params)?);
        }
        let mut network = Network {
            graph: self.graph.clone(),
            plan: self.plan.clone(),
            kernels,
            values: self.values.iter().map(|v| vec![None; v.len()]).collect(),
            input_grads: vec![None; self.inputs.len()],
            inputs: self.inputs.clone(),
            outputs: self.outputs.clone(),
            rng: self.rng.clone(),
            chain: self.chain.clone(),
            step_bufs: (Vec::new(), Vec::new()),
            input_gradients: self.input_gradients,
            needs_grad: Vec::new(),
        };
        network.set_input_gradients(self.input_gradients);
        Ok(network)
    }

    /// Whether [`Network::backward`] computes the loss gradient with respect to
    /// the input data ([`Network::input_gradients`]); on by default. Training
    /// turns it off: then layers whose inputs lead back only to the input data
    /// and to layers without learnables (a convolution or an LSTM right after
    /// the input, through folding) skip their input gradient, and such layers
    /// are skipped in backward altogether. Learnables' gradients are unchanged.
    pub fn set_input_gradients(&mut self, on: bool) {
        self.input_gradients = on;
        let mut needs = vec![false; self.kernels.len()];
        for &i in &self.plan.order {
            needs[i] = if self.inputs.contains(&i) {
                on
            } else {
                !self.kernels[i].learnables().is_empty()
                    || self.plan.sources[i].iter().any(|s| needs[s.layer])
            };
        }
        for &i in &self.plan.order {
            if !self.inputs.contains(&i) {
                let needed = self.plan.sources[i].iter().any(|s| needs[s.layer]);
                self.kernels[i].set_input_grad_needed(needed);
            }
        }
        self.needs_grad = needs;
    }

    /// Whether backward computes input gradients (see [`Network::set_input_gradients`]).
    pub fn input_gradients_enabled(&self) -> bool {
        self.input_gradients
    }

    /// The graph this network was built from.
    pub fn graph(&self) -> &LayerGraph {
        &self.graph
    }

    /// The schedule.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Reseeds the randomness of dropout.
    pub fn reseed(&mut self, seed: u64) {
        self.rng = StdRng::seed_from_u64(seed);
    }

    /// Runs the network. `inputs`: one activation per input layer, in graph order.
    /// `targets`: one per output layer (same layout as its prediction) to compute
    /// the loss, or `None`. With `stateful`, recurrent layers start from and keep
    /// their state. Returns each output layer's prediction (the activation feeding it).
    pub fn forward(
        &mut self,
        inputs: &[Activation],
        targets: Option<&[Activation]>,
        mode: Mode,
        stateful: bool,
    ) -> Result<Vec<Activation>> {
        if inputs.len() != self.inputs.len() {
            return Err(Error::WrongCount {
                what: "input",
                expected: self.inputs.len(),
                got: inputs.len(),
            });
        }
        if let Some(t) = targets {
            if t.len() != self.outputs.len() {
                return Err(Error::WrongCount {
                    what: "output",
                    expected: self.outputs.len(),
                    got: t.len(),
                });
            }
        }
        for v in &mut self.values {
            v.iter_mut().for_each(|x| *x = None);
        }
        for &i in &self.plan.order {
            let layer_inputs: Vec<&Activation> =
                if let Some(k) = self.inputs.iter().position(|&j| j == i) {
                    vec![&inputs[k]]
                } else {
                    self.plan.sources[i]
                        .iter()
                        .map(|s| {
                            self.values[s.layer][s.port]
                                .as_ref()
                                .expect("scheduled: producer ran first")
                        })
                        .collect()
                };
            let target = match (targets, self.outputs.iter().position(|&j| j == i)) {
                (Some(t), Some(k)) => Some(&t[k]),
                _ => None,
            };
            let mut ctx = ForwardCtx {
                mode,
                stateful,
                rng: &mut self.rng,
                target,
            };
            let outs = self.kernels[i].forward(&layer_inputs, &mut ctx)?;
            for (slot, out) in self.values[i].iter_mut().zip(outs) {
                *slot = Some(out);
            }
        }
        Ok(self
            .outputs
            .iter()
            .map(|&o| {
                let s = self.plan.sources[o][0];
                self.values[s.layer][s.port].clone().expect("computed")
            })
            .collect())
    }

    /// Whether [`Network::forward_step`] can run: the network is a chain (one
    /// input layer, one output layer, each layer feeding the next) of feature
    /// layers that all have a streaming step (sequence input with at most
    /// `MinLength` 1, LSTM, fully connected, softmax, element-wise activations,
    /// output layers).
    pub fn can_step(&self) -> bool {
        self.chain
            .as_ref()
            .is_some_and(|c| c.iter().all(|&i| self.kernels[i].can_step()))
            && self.outputs.iter().all(|&o| self.kernels[o].can_step())
    }

    /// Whether the network's (first) output has a time dimension (`C×B×T`):
    /// a sequence-to-sequence network predicts at every step.
    pub fn output_has_time(&self) -> bool {
        self.outputs.first().is_some_and(|&o| {
            self.plan.input_shapes[o]
                .first()
                .is_some_and(|s| s.format.has_time())
        })
    }

    /// The lean streaming path: runs one time step of one observation (`x`,
    /// the input layer's features) in inference mode from the recurrent state
    /// kept by the last stateful forward or step (the initial state when none),
    /// keeps the new state, and returns the output feeding the output layer.
    /// It gives what [`Network::forward`] gives for the `[1, 1, C]` sequence with
    /// `stateful` set, without building activations, masks or tapes: no
    /// allocation once its buffers have grown, a few microseconds for a small
    /// LSTM. `predict_and_update_state` uses it for one feature sequence.
    ///
    /// It does not record activations ([`Network::activations`] still shows
    /// the last [`Network::forward`]) and leaves nothing for a backward.
    /// Errors when [`Network::can_step`] is false or `x` has the wrong size.
    pub fn forward_step(&mut self, x: &[f32]) -> Result<&[f32]> {
        if !self.can_step() {
            return Err(Error::NoStreamingStep);
        }
        let chain = self.chain.as_ref().expect("checked by can_step");
        let (mut cur, mut next) = std::mem::take(&mut self.step_bufs);
        cur.clear();
        cur.extend_from_slice(x);
        let mut result = Ok(());
        for &i in chain {
            result = self.kernels[i].forward_step(&cur, &mut next);
            if result.is_err() {
                break;
            }
            std::mem::swap(&mut cur, &mut next);
        }
        self.step_bufs = (cur, next);
        result?;
        Ok(&self.step_bufs.0)
    }

    /// The total loss of the last forward with targets (sum over output layers).
    pub fn loss(&self) -> Option<f32> {
        self.outputs.iter().map(|&o| self.kernels[o].loss()).sum()
    }

    /// Per output layer, in output order: its name, its loss of the last
    /// forward with targets and the number of observations that loss was
    /// averaged over (`None` where the layer computed no loss, or does not
    /// tell its normalizer).
    pub fn loss_terms(&self) -> Vec<(&str, Option<f32>, Option<usize>)> {
        self.outputs
            .iter()
            .map(|&o| {
                let k = &self.kernels[o];
                (self.graph.layers[o].name(), k.loss(), k.loss_observations())
            })
            .collect()
    }

    /// Multiplies the loss gradient of each output layer (in output order)
    /// by its factor before the next [`Network::backward`]: data-parallel
    /// training weights each rank's share so that the ranks' gradients add
    /// up to the global mini-batch's. Extra or missing factors are ignored.
    pub fn scale_loss_gradients(&mut self, factors: &[f32]) {
        for (&o, &f) in self.outputs.iter().zip(factors) {
            self.kernels[o].scale_loss_gradient(f);
        }
    }

    /// Gives every layer the reducer that adds statistics across the ranks
    /// of a data-parallel run (`None`: a single process, the default).
    /// Batch normalization then normalizes training mini-batches with the
    /// statistics of the whole global mini-batch.
    pub fn set_stat_reducer(&mut self, reducer: Option<crate::reduce::SharedReducer>) {
        for k in &mut self.kernels {
            k.set_stat_reducer(reducer.clone());
        }
    }

    /// Backpropagates the loss of the last forward with targets, writing every
    /// learnable's gradient and the gradient with respect to the input data.
    pub fn backward(&mut self) -> Result<()> {
        self.backward_with(&mut |_, _| {})
    }

    /// The layer indices (as in [`Network::learnables_of`]) in the order
    /// [`Network::backward_with`] finishes them: the reverse of the forward
    /// schedule.
    pub fn backward_order(&self) -> Vec<usize> {
        self.plan.order.iter().rev().copied().collect()
    }

    /// The learnables of the layer at `layer` (an index into the graph's
    /// layers), in the order [`Network::learnables`] lists them.
    pub fn learnables_of(&self, layer: usize) -> Vec<&Learnable> {
        self.kernels
            .get(layer)
            .map_or(Vec::new(), |k| k.learnables())
    }

    /// [`Network::backward`], calling `finished(layer, learnables)` as soon
    /// as each layer's learnables have their final gradients (in
    /// [`Network::backward_order`], every layer once, also those backward
    /// skips): data-parallel training starts reducing gradients while the
    /// rest of the backward pass runs.
    pub fn backward_with(&mut self, finished: &mut dyn FnMut(usize, &[&Learnable])) -> Result<()> {
        let mut grads: Vec<Vec<Option<ArrayD<f32>>>> = self
            .graph
            .layers
            .iter()
            .map(|l| vec![None; l.def().output_ports().len()])
            .collect();
        for &i in self.plan.order.iter().rev() {
            if !self.needs_grad[i] {
                // Nothing upstream needs a gradient (see `set_input_gradients`).
                if let Some(k) = self.inputs.iter().position(|&j| j == i) {
                    self.input_grads[k] = None;
                }
                finished(i, &self.kernels[i].learnables());
                continue;
            }
            let g = std::mem::take(&mut grads[i]);
            let gin = self.kernels[i].backward(g)?;
            finished(i, &self.kernels[i].learnables());
            if let Some(k) = self.inputs.iter().position(|&j| j == i) {
                self.input_grads[k] = gin.into_iter().next().flatten();
                continue;
            }
            for (p, g) in gin.into_iter().enumerate() {
                let (Some(g), Some(src)) = (g, self.plan.sources[i].get(p)) else {
                    continue;
                };
                let slot = &mut grads[src.layer][src.port];
                match slot {
                    Some(acc) => *acc += &g,
                    None => *slot = Some(g),
                }
            }
        }
        Ok(())
    }

    /// The loss gradient with respect to each input layer's data, after [`Network::backward`].
    pub fn input_gradients(&self) -> &[Option<ArrayD<f32>>] {
        &self.input_grads
    }

    /// The output of `"layer"` or `"layer/port"` in the last forward.
    pub fn activations(&self, spec: &str) -> Result<&Activation> {
        let p = self
            .graph
            .resolve(spec, crate::error::PortDirection::Output)
            .map_err(|e| Error::InvalidGraph(crate::error::GraphProblems(vec![e])))?;
        self.values[p.layer][p.port]
            .as_ref()
            .ok_or_else(|| Error::layer(spec, "no activations yet: run a forward pass first"))
    }

    /// Every learnable with its layer's name, in layer order.
    pub fn learnables(&self) -> Vec<(&str, &Learnable)> {
        self.graph
            .layers
            .iter()
            .zip(&self.kernels)
            .flat_map(|(l, k)| k.learnables().into_iter().map(move |p| (l.name(), p)))
            .collect()
    }

    /// Every learnable with its layer's name, mutable, in layer order.
    pub fn learnables_mut(&mut self) -> Vec<(&str, &mut Learnable)> {
        self.graph
            .layers
            .iter()
            .zip(self.kernels.iter_mut())
            .flat_map(|(l, k)| k.learnables_mut().into_iter().map(move |p| (l.name(), p)))
            .collect()
    }

    /// Every stored statistic with its layer's name.
    pub fn states(&self) -> Vec<(&str, &StateArray)> {
        self.graph
            .layers
            .iter()
            .zip(&self.kernels)
            .flat_map(|(l, k)| k.states().into_iter().map(move |p| (l.name(), p)))
            .collect()
    }

    fn kernel_mut(&mut self, layer: &str) -> Result<&mut Box<dyn LayerKernel>> {
        let i = self
            .graph
            .index(layer)
            .ok_or_else(|| Error::layer(layer, "no such layer"))?;
        Ok(&mut self.kernels[i])
    }

    /// Sets learnable or statistic `name` of `layer` (e.g. an LSTM's
    /// `InputWeights`, the input layer's `Mean`); the shape must match.
    pub fn set_learnable(
        &mut self,
        layer: &str,
        name: &str,
        value: impl Into<ArcArray<f32, IxDyn>>,
    ) -> Result<()> {
        let value = value.into();
        let k = self.kernel_mut(layer)?;
        let slot = if k.learnables().iter().any(|p| p.name == name) {
            k.learnables_mut()
                .into_iter()
                .find(|p| p.name == name)
                .map(|p| &mut p.value)
        } else {
            k.states_mut()
                .into_iter()
                .find(|p| p.name == name)
                .map(|p| &mut p.value)
        };
        let Some(slot) = slot else {
            return Err(Error::Learnable {
                layer: layer.into(),
                learnable: name.into(),
                message: "no such learnable or statistic".into(),
            });
        };
        if slot.shape() != value.shape() {
            return Err(Error::Learnable {
                layer: layer.into(),
                learnable: name.into(),
                message: format!("expects shape {:?}, got {:?}", slot.shape(), value.shape()),
            });
        }
        *slot = value;
        Ok(())
    }

    /// Sets statistic `name` of `layer`: the same as [`Network::set_learnable`],
    /// which takes learnables and statistics alike.
    pub fn set_state(
        &mut self,
        layer: &str,
        name: &str,
        value: impl Into<ArcArray<f32, IxDyn>>,
    ) -> Result<()> {
        self.set_learnable(layer, name, value)
    }

    /// Forgets the state every recurrent layer kept.
    pub fn reset_state(&mut self) {
        self.kernels.iter_mut().for_each(|k| k.reset_state());
    }

    /// Names of the input layers, in the order `forward` takes their data.
    pub fn input_names(&self) -> Vec<&str> {
        self.inputs
            .iter()
            .map(|&i| self.graph.layers[i].name())
            .collect()
    }

    /// Names of the output layers, in the order `forward` returns predictions.
    pub fn output_names(&self) -> Vec<&str> {
        self.outputs
            .iter()
            .map(|&i| self.graph.layers[i].name())
            .collect()
    }
}
