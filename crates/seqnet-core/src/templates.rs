//! The seed's networks as ready-made layer graphs, the ones `seqnet new`
//! writes: sequence-to-label and sequence-to-sequence classification,
//! sequence-to-one and sequence-to-sequence regression, a deeper
//! sequence-to-label network with two LSTM layers and dropout, and the video
//! network (a convolutional front end on folded frames, then an LSTM).
//! Each template's recurrent part can be an LSTM, a BiLSTM or a GRU, and a
//! stack of such layers with dropout between them ([`TemplateOptions`]),
//! and a 1-D convolutional network (Wang et al.'s FCN, `cnn1d`) and a
//! pre-LN transformer encoder (`transformer`).
//!
//! ```
//! use seqnet_core::templates::{Template, TemplateOptions};
//!
//! // MATLAB's Japanese Vowels network: 12 features, lstm 100 'last', 9 classes.
//! let graph = Template::Seq2Label.graph(&TemplateOptions::default()).unwrap();
//! assert_eq!(graph.layers.len(), 5);
//! let video = Template::Video.graph(&TemplateOptions::default()).unwrap();
//! println!("{}", video.summary().unwrap());
//! ```

use crate::error::{Error, Result};
use crate::graph::LayerGraph;
use crate::layers::*;
use std::fmt;
use std::str::FromStr;

pub mod cnn1d;
pub mod transformer;

/// One of the ready-made networks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Template {
    /// `sequenceInput → lstm('last') → fc(K) → softmax → classification`
    /// (MATLAB's "Sequence Classification Using Deep Learning").
    Seq2Label,
    /// `sequenceInput → lstm('sequence') → fc(K) → softmax → classification`:
    /// a label per time step.
    Seq2SeqClass,
    /// `sequenceInput → lstm('last') → fc(R) → regression`: one response vector per sequence.
    Seq2One,
    /// `sequenceInput → lstm('sequence') → fc(50) → dropout(0.5) → fc(R) →
    /// regression` (MATLAB's "Sequence-to-Sequence Regression Using Deep Learning").
    Seq2SeqRegress,
    /// `sequenceInput → lstm('sequence') → dropout(0.2) → lstm('last') →
    /// dropout(0.2) → fc(K) → softmax → classification`.
    DeepSeq2Label,
    /// `sequenceInput([H W C]) → sequenceFolding → conv2d(5×5, 20) →
    /// batchnorm → relu → sequenceUnfolding → flatten → lstm('last') →
    /// fc(K) → softmax → classification`, with the folding layer's
    /// `miniBatchSize` output connected to the unfolding layer's.
    Video,
    /// Wang et al.'s FCN: `sequenceInput → 3 × [convolution1d('same') →
    /// batchnorm → relu]` (128, 256, 128 filters of 8, 5, 3 steps) `→
    /// globalAveragePooling1d → fc(K) → softmax → classification`, or
    /// `→ fc(R) → regression` ([`TemplateOptions::regression`]).
    Cnn1d,
    /// A pre-LN transformer encoder: `sequenceInput → fc(D) + positionEmbedding
    /// → N × [layerNorm → selfAttention → +, layerNorm → fc(F) → relu → fc(D)
    /// → +] → globalAveragePooling1d → fc(K) → softmax → classification`, or
    /// `→ fc(R) → regression` (see [`transformer::graph`]).
    Transformer,
}

impl Template {
    /// Every template, in the order `seqnet new --help` lists them.
    pub const ALL: [Template; 8] = [
        Template::Seq2Label,
        Template::Seq2SeqClass,
        Template::Seq2One,
        Template::Seq2SeqRegress,
        Template::DeepSeq2Label,
        Template::Video,
        Template::Cnn1d,
        Template::Transformer,
    ];

    /// The template's name on the command line (`seq2label`, `video`, …).
    pub fn name(self) -> &'static str {
        match self {
            Template::Seq2Label => "seq2label",
            Template::Seq2SeqClass => "seq2seq-class",
            Template::Seq2One => "seq2one",
            Template::Seq2SeqRegress => "seq2seq-regress",
            Template::DeepSeq2Label => "deep-seq2label",
            Template::Video => "video",
            Template::Cnn1d => "cnn1d",
            Template::Transformer => "transformer",
        }
    }

    /// A one-line description.
    pub fn description(self) -> &'static str {
        match self {
            Template::Seq2Label => "sequence-to-label classification: lstm 'last', fc, softmax",
            Template::Seq2SeqClass => {
                "sequence-to-sequence classification: a label per time step"
            }
            Template::Seq2One => "sequence-to-one regression: lstm 'last', fc, regression",
            Template::Seq2SeqRegress => {
                "sequence-to-sequence regression: lstm, fc 50, dropout 0.5, fc"
            }
            Template::DeepSeq2Label => "two lstm layers with dropout, then fc and softmax",
            Template::Video => {
                "video classification: folded frames through conv 5x5 (20), batchnorm, relu, then lstm 'last'"
            }
            Template::Cnn1d => {
                "1-D CNN (FCN): conv1d 8/5/3 'same' with 128/256/128 filters, batchnorm, relu, global average pooling, fc"
            }
            Template::Transformer => {
                "pre-LN transformer encoder: fc to the model width plus learned position embedding, blocks of self-attention and a relu feed-forward part, global average pooling, fc"
            }
        }
    }

    /// Whether the network classifies (else it regresses) by default.
    pub fn is_classification(self) -> bool {
        !matches!(self, Template::Seq2One | Template::Seq2SeqRegress)
    }

    /// Whether the template also regresses ([`TemplateOptions::regression`]).
    pub fn can_regress(self) -> bool {
        !self.is_classification() || matches!(self, Template::Cnn1d | Template::Transformer)
    }

    /// Whether the template has recurrent layers (whose size is `hidden`).
    pub fn is_recurrent(self) -> bool {
        !matches!(self, Template::Cnn1d | Template::Transformer)
    }

    /// Whether the network takes image sequences (else feature sequences).
    pub fn takes_images(self) -> bool {
        self == Template::Video
    }

    /// The sizes used when [`TemplateOptions`] leaves them unset:
    /// `(input, hidden units, outputs)`.
    ///
    /// | template | input | hidden | outputs |
    /// |---|---|---|---|
    /// | `seq2label`, `deep-seq2label` | 12 features (Japanese Vowels) | 100 | 9 classes |
    /// | `seq2seq-class` | 3 features | 200 | 5 classes |
    /// | `seq2one` | 1 feature (a spectrum read as a sequence) | 100 | 1 response |
    /// | `seq2seq-regress` | 17 features | 200 | 1 response |
    /// | `video` | 28×28×1 frames | 200 | 10 classes |
    /// | `cnn1d`, `transformer` | 12 features | – (no recurrent layer: 0) | 9 classes |
    pub fn defaults(self) -> (InputSize, usize, usize) {
        match self {
            Template::Seq2Label | Template::DeepSeq2Label => (InputSize::Features(12), 100, 9),
            Template::Cnn1d | Template::Transformer => (InputSize::Features(12), 0, 9),
            Template::Seq2SeqClass => (InputSize::Features(3), 200, 5),
            Template::Seq2One => (InputSize::Features(1), 100, 1),
            Template::Seq2SeqRegress => (InputSize::Features(17), 200, 1),
            Template::Video => (InputSize::Image([28, 28, 1]), 200, 10),
        }
    }

    /// The template's layer graph with `options` (checked).
    ///
    /// # Errors
    /// [`Error::InvalidOption`] naming the option when a size is zero, when
    /// an image size is given to a feature template or a feature count to
    /// the video template, or when the video frames are smaller than the
    /// 5×5 filters; any problem the graph checks find.
    pub fn graph(self, options: &TemplateOptions) -> Result<LayerGraph> {
        let (default_input, default_hidden, default_outputs) = self.defaults();
        let input = options.input.unwrap_or(default_input);
        let hidden = options.hidden.unwrap_or(default_hidden);
        let outputs = options.outputs.unwrap_or(default_outputs);
        let bad =
            |option: &'static str, message: String| Err(Error::InvalidOption { option, message });
        match (input, self.takes_images()) {
            (InputSize::Image(_), false) => {
                return bad(
                    "image",
                    format!(
                        "the {} template takes feature sequences (give a feature count instead)",
                        self.name()
                    ),
                )
            }
            (InputSize::Features(_), true) => {
                return bad(
                    "features",
                    "the video template takes image sequences (give an image size H,W,C instead)"
                        .into(),
                )
            }
            (InputSize::Features(0), _) => {
                return bad("features", "the feature count must be at least 1".into())
            }
            (InputSize::Image([h, w, c]), _) if h == 0 || w == 0 || c == 0 => {
                return bad(
                    "image",
                    format!("every image size must be at least 1, got {h},{w},{c}"),
                )
            }
            (InputSize::Image([h, w, _]), _) if h < 5 || w < 5 => {
                return bad(
                    "image",
                    format!("frames of {h}×{w} pixels are smaller than the 5×5 filters"),
                )
            }
            _ => {}
        }
        self.check_cnn1d_options(options)?;
        if hidden == 0 && self.is_recurrent() {
            return bad(
                "hidden",
                "the number of hidden units must be at least 1".into(),
            );
        }
        if outputs == 0 {
            let option = if self.is_classification() && !options.regression {
                "classes"
            } else {
                "responses"
            };
            return bad(option, format!("the number of {option} must be at least 1"));
        }
        let input_layer = match input {
            InputSize::Features(c) => SequenceInput::new(c),
            InputSize::Image(size) => SequenceInput::image(size),
        }
        .normalization(options.normalization)
        .name("sequenceinput");
        if self == Template::Transformer {
            let sizes = options.transformer.resolve()?;
            let graph = transformer::graph(input_layer, &sizes, outputs, options.regression)?;
            graph.check()?;
            return Ok(graph);
        }
        let stack = self.stack(options, hidden)?;
        let classify = |layers: &mut Vec<Layer>| {
            layers.push(FullyConnected::new(outputs).name("fc").into());
            layers.push(Softmax::new().name("softmax").into());
            layers.push(ClassificationOutput::new().name("classoutput").into());
        };
        let mut layers: Vec<Layer> = vec![input_layer.into()];
        match self {
            Template::Seq2Label | Template::DeepSeq2Label => {
                layers.extend(stack.layers(OutputMode::Last));
                classify(&mut layers);
            }
            Template::Seq2SeqClass => {
                layers.extend(stack.layers(OutputMode::Sequence));
                classify(&mut layers);
            }
            Template::Seq2One => {
                layers.extend(stack.layers(OutputMode::Last));
                layers.push(FullyConnected::new(outputs).name("fc").into());
                layers.push(RegressionOutput::new().name("regressionoutput").into());
            }
            Template::Seq2SeqRegress => {
                layers.extend(stack.layers(OutputMode::Sequence));
                layers.push(FullyConnected::new(50).name("fc_1").into());
                layers.push(Dropout::new(0.5).name("dropout").into());
                layers.push(FullyConnected::new(outputs).name("fc_2").into());
                layers.push(RegressionOutput::new().name("regressionoutput").into());
            }
            Template::Cnn1d => layers.extend(cnn1d::layers(
                options.filters.unwrap_or(cnn1d::FILTERS),
                options.filter_sizes.unwrap_or(cnn1d::FILTER_SIZES),
                outputs,
                options.regression,
            )?),
            Template::Transformer => {
                return Err(Error::InvalidOption {
                    option: "template",
                    message: "the transformer graph is built apart".into(),
                })
            }
            Template::Video => {
                layers.push(SequenceFolding::new().name("fold").into());
                layers.push(Convolution2d::new([5, 5], 20).name("conv").into());
                layers.push(BatchNormalization::new().name("bn").into());
                layers.push(Relu::new().name("relu").into());
                layers.push(SequenceUnfolding::new().name("unfold").into());
                layers.push(Flatten::new().name("flatten").into());
                layers.extend(stack.layers(OutputMode::Last));
                classify(&mut layers);
            }
        }
        let mut graph = LayerGraph::from_layers(layers)?;
        if self == Template::Video {
            graph.connect("fold/miniBatchSize", "unfold/miniBatchSize")?;
        }
        graph.check()?;
        Ok(graph)
    }
}

impl Template {
    /// The recurrent stack `options` ask for, checked: the template's layer
    /// count and dropout unless set (2 layers with dropout 0.2 for
    /// `deep-seq2label`, one layer without dropout for the others).
    fn stack(self, options: &TemplateOptions, hidden: usize) -> Result<RecurrentStack> {
        let deep = self == Template::DeepSeq2Label;
        let count = options.layers.unwrap_or(if deep { 2 } else { 1 });
        let dropout = options.dropout.unwrap_or(if deep { 0.2 } else { 0.0 });
        let bad = |option: &'static str, message: String| Error::InvalidOption { option, message };
        if count == 0 {
            return Err(bad(
                "layers",
                "the number of recurrent layers must be at least 1".into(),
            ));
        }
        if !(0.0..1.0).contains(&dropout) {
            return Err(bad(
                "dropout",
                format!("the dropout probability must be in [0, 1), got {dropout}"),
            ));
        }
        if dropout > 0.0 && count == 1 && !deep {
            return Err(bad(
                "dropout",
                "dropout goes between stacked recurrent layers: give 2 or more layers".into(),
            ));
        }
        Ok(RecurrentStack {
            kind: options.recurrent,
            hidden,
            count,
            dropout,
            numbered: deep || count > 1,
            trailing_dropout: deep,
        })
    }
}

/// The recurrent layers of a template: `count` layers of `kind`, a dropout
/// layer between consecutive ones (and after the last with `trailing_dropout`).
struct RecurrentStack {
    kind: RecurrentLayer,
    hidden: usize,
    count: usize,
    dropout: f32,
    /// Names `lstm_1, lstm_2, …` (else `lstm` for a single layer).
    numbered: bool,
    trailing_dropout: bool,
}

impl RecurrentStack {
    /// The layers, the last one with output mode `last_mode` (the others
    /// output whole sequences for the next one).
    fn layers(&self, last_mode: OutputMode) -> Vec<Layer> {
        let mut layers = Vec::new();
        for i in 1..=self.count {
            let last = i == self.count;
            let mode = if last {
                last_mode
            } else {
                OutputMode::Sequence
            };
            let stem = self.kind.name();
            let name = if self.numbered {
                format!("{stem}_{i}")
            } else {
                stem.to_string()
            };
            let h = self.hidden;
            layers.push(match self.kind {
                RecurrentLayer::Lstm => Lstm::new(h).output_mode(mode).name(name).into(),
                RecurrentLayer::BiLstm => BiLstm::new(h).output_mode(mode).name(name).into(),
                RecurrentLayer::Gru => Gru::new(h).output_mode(mode).name(name).into(),
                RecurrentLayer::BiGru => BiGru::new(h).output_mode(mode).name(name).into(),
            });
            if self.dropout > 0.0 && (!last || self.trailing_dropout) {
                layers.push(
                    Dropout::new(self.dropout)
                        .name(format!("dropout_{i}"))
                        .into(),
                );
            }
        }
        layers
    }
}

/// The kind of recurrent layer a template uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RecurrentLayer {
    /// [`Lstm`] (the default).
    #[default]
    Lstm,
    /// [`BiLstm`]: both directions, `2H` outputs.
    BiLstm,
    /// [`Gru`] (MATLAB's default `ResetGateMode`, `after-multiplication`).
    Gru,
    /// [`BiGru`]: both directions, `2H` outputs.
    BiGru,
}

impl RecurrentLayer {
    /// The layer's type name in graph JSON and auto-names (`lstm`, `bilstm`, `gru`, `bigru`).
    pub fn name(self) -> &'static str {
        match self {
            RecurrentLayer::Lstm => "lstm",
            RecurrentLayer::BiLstm => "bilstm",
            RecurrentLayer::Gru => "gru",
            RecurrentLayer::BiGru => "bigru",
        }
    }
}

impl Template {
    /// Checks the options only some templates take: `regression`, `filters`
    /// and `filter_sizes` (cnn1d) and `hidden` (not cnn1d).
    fn check_cnn1d_options(self, options: &TemplateOptions) -> Result<()> {
        let bad =
            |option: &'static str, message: String| Err(Error::InvalidOption { option, message });
        if options.regression && !self.can_regress() {
            return bad(
                "responses",
                format!(
                    "the {} template classifies; give a number of classes",
                    self.name()
                ),
            );
        }
        if self != Template::Transformer && options.transformer.any() {
            return bad(
                "model-dim",
                format!(
                    "the {} template has no transformer blocks (only transformer has)",
                    self.name()
                ),
            );
        }
        if matches!(self, Template::Cnn1d | Template::Transformer) {
            if options.layers.is_some() || options.dropout.is_some() {
                let option = if options.layers.is_some() {
                    "layers"
                } else {
                    "dropout"
                };
                return bad(
                    option,
                    format!(
                        "the {} template has no recurrent layers to stack",
                        self.name()
                    ),
                );
            }
            if options.hidden.is_some() {
                return bad(
                    "hidden",
                    format!(
                        "the {} template has no recurrent layer; its sizes are {}",
                        self.name(),
                        if self == Template::Cnn1d {
                            "the filters and filter sizes"
                        } else {
                            "--model-dim, --heads, --blocks, --ffn-dim, --max-position"
                        }
                    ),
                );
            }
        } else if options.filters.is_some() || options.filter_sizes.is_some() {
            let option = if options.filters.is_some() {
                "filters"
            } else {
                "filter-sizes"
            };
            return bad(
                option,
                format!(
                    "the {} template has no 1-D convolutions (only cnn1d has)",
                    self.name()
                ),
            );
        }
        Ok(())
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Template {
    type Err = Error;

    /// A template by its name (`seq2label`, `seq2seq-class`, `seq2one`,
    /// `seq2seq-regress`, `deep-seq2label`, `video`).
    fn from_str(s: &str) -> Result<Self> {
        Template::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| Error::InvalidOption {
                option: "template",
                message: format!(
                    "unknown template '{s}' (known: {})",
                    Template::ALL.map(Template::name).join(", ")
                ),
            })
    }
}

/// The sizes of a template's network; `None` takes the template's default
/// ([`Template::defaults`]).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct TemplateOptions {
    /// Features per time step, or `[H, W, C]` frames for the video template.
    pub input: Option<InputSize>,
    /// Hidden units of each recurrent layer (per direction for a BiLSTM).
    pub hidden: Option<usize>,
    /// The recurrent layer (an LSTM by default).
    pub recurrent: RecurrentLayer,
    /// How many recurrent layers are stacked (2 for `deep-seq2label`, else 1).
    pub layers: Option<usize>,
    /// The dropout probability between stacked recurrent layers, in `[0, 1)`
    /// (0.2 for `deep-seq2label`, which also has one after its last layer;
    /// 0, no dropout, for the others).
    pub dropout: Option<f32>,
    /// The number of classes (classification) or responses (regression).
    pub outputs: Option<usize>,
    /// The input layer's normalization (none by default).
    pub normalization: Normalization,
    /// For templates that do both (`cnn1d`): end in `fc(outputs) →
    /// regression` instead of classifying.
    pub regression: bool,
    /// `cnn1d`: the filters of its three convolutions (128, 256, 128).
    pub filters: Option<[usize; 3]>,
    /// `cnn1d`: the filter sizes of its three convolutions (8, 5, 3 steps).
    pub filter_sizes: Option<[usize; 3]>,
    /// `transformer`: model width, heads, blocks, feed-forward size, maximum position.
    pub transformer: transformer::TransformerSizes,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_checks_with_defaults() {
        for t in Template::ALL {
            let g = t.graph(&TemplateOptions::default()).unwrap();
            assert_eq!(t.name().parse::<Template>().unwrap(), t);
            assert_eq!(LayerGraph::from_json(&g.to_json(), "t").unwrap(), g);
        }
    }

    #[test]
    fn bad_sizes_name_the_option() {
        let e = Template::Video
            .graph(&TemplateOptions {
                input: Some(InputSize::Features(3)),
                ..Default::default()
            })
            .unwrap_err();
        assert!(e.to_string().contains("option features"), "{e}");
        let e = Template::Seq2One
            .graph(&TemplateOptions {
                outputs: Some(0),
                ..Default::default()
            })
            .unwrap_err();
        assert!(e.to_string().contains("option responses"), "{e}");
        assert!("nope".parse::<Template>().is_err());
        for (layers, dropout, option) in [
            (Some(0), None, "layers"),
            (None, Some(1.0), "dropout"),
            (None, Some(0.3), "dropout"),
        ] {
            let e = Template::Seq2Label
                .graph(&TemplateOptions {
                    layers,
                    dropout,
                    ..Default::default()
                })
                .unwrap_err();
            assert!(e.to_string().contains(&format!("option {option}")), "{e}");
        }
    }

    /// `(tag, name, output mode)` of every recurrent layer and the names of the dropout layers.
    fn recurrent_layers(g: &LayerGraph) -> (Vec<(String, String, OutputMode)>, Vec<String>) {
        let mut rec = Vec::new();
        let mut drop = Vec::new();
        for l in &g.layers {
            let name = l.name().to_string();
            if let Some(x) = l.downcast_ref::<Lstm>() {
                rec.push(("lstm".into(), name, x.options.output_mode));
            } else if let Some(x) = l.downcast_ref::<BiLstm>() {
                rec.push(("bilstm".into(), name, x.options.output_mode));
            } else if let Some(x) = l.downcast_ref::<Gru>() {
                rec.push(("gru".into(), name, x.options.output_mode));
            } else if let Some(x) = l.downcast_ref::<BiGru>() {
                rec.push(("bigru".into(), name, x.options.output_mode));
            } else if l.is::<Dropout>() {
                drop.push(name);
            }
        }
        (rec, drop)
    }

    #[test]
    fn recurrent_stacks() {
        use OutputMode::{Last, Sequence};
        let opts = |recurrent, layers, dropout| TemplateOptions {
            recurrent,
            layers,
            dropout,
            ..Default::default()
        };
        // Three GRUs with dropout between, the last one 'last'.
        let g = Template::Seq2Label
            .graph(&opts(RecurrentLayer::Gru, Some(3), Some(0.25)))
            .unwrap();
        let (rec, drop) = recurrent_layers(&g);
        let names: Vec<(&str, &str, OutputMode)> = rec
            .iter()
            .map(|(t, n, m)| (t.as_str(), n.as_str(), *m))
            .collect();
        assert_eq!(
            names,
            vec![
                ("gru", "gru_1", Sequence),
                ("gru", "gru_2", Sequence),
                ("gru", "gru_3", Last)
            ]
        );
        assert_eq!(drop, vec!["dropout_1", "dropout_2"]);
        // A single BiLSTM keeps the plain name; sequence templates end 'sequence'.
        let g = Template::Seq2SeqClass
            .graph(&opts(RecurrentLayer::BiLstm, None, None))
            .unwrap();
        assert_eq!(
            recurrent_layers(&g).0,
            vec![("bilstm".into(), "bilstm".into(), Sequence)]
        );
        // The deep template's defaults are the graph it always had.
        let g = Template::DeepSeq2Label
            .graph(&TemplateOptions::default())
            .unwrap();
        let (rec, drop) = recurrent_layers(&g);
        assert_eq!(rec.len(), 2);
        assert_eq!((rec[0].1.as_str(), rec[1].1.as_str()), ("lstm_1", "lstm_2"));
        assert_eq!(drop, vec!["dropout_1", "dropout_2"]);
        // Every recurrent template takes every recurrent layer, stacked.
        for t in Template::ALL.into_iter().filter(|t| t.is_recurrent()) {
            for r in [
                RecurrentLayer::Lstm,
                RecurrentLayer::BiLstm,
                RecurrentLayer::Gru,
                RecurrentLayer::BiGru,
            ] {
                let g = t.graph(&opts(r, Some(2), Some(0.1))).unwrap();
                let (rec, _) = recurrent_layers(&g);
                assert_eq!(rec.len(), 2, "{t} {r:?}");
                assert!(rec.iter().all(|(tag, _, _)| tag == r.name()));
            }
        }
    }

    #[test]
    fn cnn1d_options_are_checked() {
        for (t, options, option) in [
            (
                Template::Cnn1d,
                TemplateOptions {
                    hidden: Some(10),
                    ..Default::default()
                },
                "hidden",
            ),
            (
                Template::Cnn1d,
                TemplateOptions {
                    filters: Some([4, 0, 4]),
                    ..Default::default()
                },
                "filters",
            ),
            (
                Template::Cnn1d,
                TemplateOptions {
                    filter_sizes: Some([0, 3, 3]),
                    ..Default::default()
                },
                "filter-sizes",
            ),
            (
                Template::Seq2Label,
                TemplateOptions {
                    filters: Some([4, 4, 4]),
                    ..Default::default()
                },
                "filters",
            ),
            (
                Template::Seq2Label,
                TemplateOptions {
                    regression: true,
                    ..Default::default()
                },
                "responses",
            ),
            (
                Template::Cnn1d,
                TemplateOptions {
                    regression: true,
                    outputs: Some(0),
                    ..Default::default()
                },
                "responses",
            ),
        ] {
            let e = t.graph(&options).unwrap_err();
            assert!(
                e.to_string().contains(&format!("option {option}")),
                "{t} {option}: {e}"
            );
        }
    }

    #[test]
    fn cnn1d_is_wangs_fcn() {
        let g = Template::Cnn1d.graph(&TemplateOptions::default()).unwrap();
        let convs: Vec<&Convolution1d> = g.layers.iter().filter_map(|l| l.downcast_ref()).collect();
        let sizes: Vec<(usize, usize, Padding1d)> = convs
            .iter()
            .map(|c| (c.filter_size, c.num_filters, c.padding))
            .collect();
        assert_eq!(
            sizes,
            vec![
                (8, 128, Padding1d::Same),
                (5, 256, Padding1d::Same),
                (3, 128, Padding1d::Same)
            ]
        );
        let count = |f: fn(&Layer) -> bool| g.layers.iter().filter(|l| f(l)).count();
        assert_eq!(count(|l| l.is::<BatchNormalization>()), 3);
        assert_eq!(count(|l| l.is::<Relu>()), 3);
        assert_eq!(count(|l| l.is::<GlobalAveragePooling1d>()), 1);
        assert_eq!(count(|l| l.is::<ClassificationOutput>()), 1);
        let summary = g.summary().unwrap();
        let fc = summary.rows.iter().find(|r| r.name == "fc").unwrap();
        assert_eq!(fc.learnables[0], ("Weights", vec![9, 128]));
        // Regression with other sizes.
        let g = Template::Cnn1d
            .graph(&TemplateOptions {
                input: Some(InputSize::Features(3)),
                outputs: Some(2),
                regression: true,
                filters: Some([4, 5, 6]),
                filter_sizes: Some([3, 3, 2]),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(count_of::<RegressionOutput>(&g), 1);
        assert_eq!(count_of::<Softmax>(&g), 0);
        let summary = g.summary().unwrap();
        let c3 = summary.rows.iter().find(|r| r.name == "conv1d_3").unwrap();
        assert_eq!(c3.learnables[0], ("Weights", vec![6, 5, 2]));
    }

    #[test]
    fn transformer_is_a_pre_ln_encoder() {
        use super::transformer::TransformerSizes;
        let g = Template::Transformer
            .graph(&TemplateOptions::default())
            .unwrap();
        // Defaults: D 64, 4 heads, 2 blocks, F 128, 512 positions.
        assert_eq!(count_of::<SelfAttention>(&g), 2);
        assert_eq!(count_of::<LayerNormalization>(&g), 4);
        assert_eq!(count_of::<Addition>(&g), 5);
        assert_eq!(count_of::<PositionEmbedding>(&g), 1);
        assert_eq!(count_of::<GlobalAveragePooling1d>(&g), 1);
        assert_eq!(count_of::<ClassificationOutput>(&g), 1);
        let summary = g.summary().unwrap();
        let row = |n: &str| summary.rows.iter().find(|r| r.name == n).unwrap();
        assert_eq!(row("pos").learnables[0], ("Weights", vec![512, 64]));
        assert_eq!(row("attn_2").learnables[0], ("QueryWeights", vec![64, 64]));
        assert_eq!(row("fc1_2").learnables[0], ("Weights", vec![128, 64]));
        assert_eq!(row("fc").learnables[0], ("Weights", vec![9, 64]));
        // Residuals: each block's attention adds to the block input, the
        // feed-forward part to the attention's sum.
        let into = |dst: &str| -> Vec<String> {
            g.connections
                .iter()
                .filter(|c| c.destination.starts_with(&format!("{dst}/")))
                .map(|c| c.source.clone())
                .collect()
        };
        assert_eq!(into("add_attn_2").len(), 2);
        assert!(into("add_attn_2").contains(&"add_ffn_1/out".to_string()));
        assert!(into("add_ffn_2").contains(&"add_attn_2/out".to_string()));
        assert!(into("add_pos").contains(&"fc_in/out".to_string()));
        // Sizes as flags, regression.
        let sizes = TransformerSizes {
            model_dim: Some(8),
            heads: Some(2),
            blocks: Some(3),
            ffn_dim: Some(5),
            max_position: Some(30),
        };
        let g = Template::Transformer
            .graph(&TemplateOptions {
                input: Some(InputSize::Features(3)),
                outputs: Some(2),
                regression: true,
                transformer: sizes,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(count_of::<SelfAttention>(&g), 3);
        assert_eq!(count_of::<RegressionOutput>(&g), 1);
        assert_eq!(count_of::<Softmax>(&g), 0);
        let summary = g.summary().unwrap();
        let fc1 = summary.rows.iter().find(|r| r.name == "fc1_3").unwrap();
        assert_eq!(fc1.learnables[0], ("Weights", vec![5, 8]));
    }

    #[test]
    fn transformer_options_are_checked() {
        use super::transformer::TransformerSizes;
        let err = |t: Template, o: TemplateOptions| match t.graph(&o) {
            Err(Error::InvalidOption { option, .. }) => option,
            other => panic!("{t}: expected an option error, got {other:?}"),
        };
        let sizes = |heads, model_dim| TransformerSizes {
            heads: Some(heads),
            model_dim: Some(model_dim),
            ..Default::default()
        };
        let with = |transformer| TemplateOptions {
            transformer,
            ..Default::default()
        };
        assert_eq!(err(Template::Transformer, with(sizes(3, 8))), "heads");
        assert_eq!(err(Template::Transformer, with(sizes(0, 8))), "heads");
        assert_eq!(err(Template::Transformer, with(sizes(2, 0))), "model-dim");
        assert_eq!(err(Template::Seq2Label, with(sizes(2, 8))), "model-dim");
        let hidden = TemplateOptions {
            hidden: Some(10),
            ..Default::default()
        };
        assert_eq!(err(Template::Transformer, hidden), "hidden");
    }

    fn count_of<T: crate::LayerType>(g: &LayerGraph) -> usize {
        g.layers.iter().filter(|l| l.is::<T>()).count()
    }
}
