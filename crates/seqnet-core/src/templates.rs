//! The seed's networks as ready-made layer graphs, the ones `seqnet new`
//! writes: sequence-to-label and sequence-to-sequence classification,
//! sequence-to-one and sequence-to-sequence regression, a deeper
//! sequence-to-label network with two LSTM layers and dropout, and the video
//! network (a convolutional front end on folded frames, then an LSTM), and
//! a 1-D convolutional network (Wang et al.'s FCN, `cnn1d`).
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
}

impl Template {
    /// Every template, in the order `seqnet new --help` lists them.
    pub const ALL: [Template; 7] = [
        Template::Seq2Label,
        Template::Seq2SeqClass,
        Template::Seq2One,
        Template::Seq2SeqRegress,
        Template::DeepSeq2Label,
        Template::Video,
        Template::Cnn1d,
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
        }
    }

    /// Whether the network classifies (else it regresses) by default.
    pub fn is_classification(self) -> bool {
        !matches!(self, Template::Seq2One | Template::Seq2SeqRegress)
    }

    /// Whether the template also regresses ([`TemplateOptions::regression`]).
    pub fn can_regress(self) -> bool {
        !self.is_classification() || self == Template::Cnn1d
    }

    /// Whether the template has recurrent layers (whose size is `hidden`).
    pub fn is_recurrent(self) -> bool {
        self != Template::Cnn1d
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
    /// | `cnn1d` | 12 features | – (no recurrent layer: 0) | 9 classes |
    pub fn defaults(self) -> (InputSize, usize, usize) {
        match self {
            Template::Seq2Label | Template::DeepSeq2Label => (InputSize::Features(12), 100, 9),
            Template::Cnn1d => (InputSize::Features(12), 0, 9),
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
        let classify = |layers: &mut Vec<Layer>| {
            layers.push(FullyConnected::new(outputs).name("fc").into());
            layers.push(Softmax::new().name("softmax").into());
            layers.push(ClassificationOutput::new().name("classoutput").into());
        };
        let mut layers: Vec<Layer> = vec![input_layer.into()];
        match self {
            Template::Seq2Label => {
                layers.push(lstm(hidden, OutputMode::Last, "lstm"));
                classify(&mut layers);
            }
            Template::Seq2SeqClass => {
                layers.push(lstm(hidden, OutputMode::Sequence, "lstm"));
                classify(&mut layers);
            }
            Template::Seq2One => {
                layers.push(lstm(hidden, OutputMode::Last, "lstm"));
                layers.push(FullyConnected::new(outputs).name("fc").into());
                layers.push(RegressionOutput::new().name("regressionoutput").into());
            }
            Template::Seq2SeqRegress => {
                layers.push(lstm(hidden, OutputMode::Sequence, "lstm"));
                layers.push(FullyConnected::new(50).name("fc_1").into());
                layers.push(Dropout::new(0.5).name("dropout").into());
                layers.push(FullyConnected::new(outputs).name("fc_2").into());
                layers.push(RegressionOutput::new().name("regressionoutput").into());
            }
            Template::DeepSeq2Label => {
                layers.push(lstm(hidden, OutputMode::Sequence, "lstm_1"));
                layers.push(Dropout::new(0.2).name("dropout_1").into());
                layers.push(lstm(hidden, OutputMode::Last, "lstm_2"));
                layers.push(Dropout::new(0.2).name("dropout_2").into());
                classify(&mut layers);
            }
            Template::Cnn1d => layers.extend(cnn1d::layers(
                options.filters.unwrap_or(cnn1d::FILTERS),
                options.filter_sizes.unwrap_or(cnn1d::FILTER_SIZES),
                outputs,
                options.regression,
            )?),
            Template::Video => {
                layers.push(SequenceFolding::new().name("fold").into());
                layers.push(Convolution2d::new([5, 5], 20).name("conv").into());
                layers.push(BatchNormalization::new().name("bn").into());
                layers.push(Relu::new().name("relu").into());
                layers.push(SequenceUnfolding::new().name("unfold").into());
                layers.push(Flatten::new().name("flatten").into());
                layers.push(lstm(hidden, OutputMode::Last, "lstm"));
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
        if self == Template::Cnn1d {
            if options.hidden.is_some() {
                return bad(
                    "hidden",
                    "the cnn1d template has no recurrent layer; its sizes are the filters and filter sizes".into(),
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

fn lstm(hidden: usize, mode: OutputMode, name: &str) -> Layer {
    Lstm::new(hidden).output_mode(mode).name(name).into()
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
    /// Hidden units of each LSTM layer.
    pub hidden: Option<usize>,
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

    fn count_of<T: crate::LayerType>(g: &LayerGraph) -> usize {
        g.layers.iter().filter(|l| l.is::<T>()).count()
    }
}
