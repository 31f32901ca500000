//! `seqnet new <template>`: one of the seed's networks as graph JSON.

use super::{flag_error, out, Result};
use clap::ValueEnum;
use seqnet_core::layers::{InputSize, Normalization};
use seqnet_core::templates::transformer::TransformerSizes;
use seqnet_core::templates::{RecurrentLayer, Template, TemplateOptions};
use seqnet_core::Error;

/// The templates, as the command line names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TemplateName {
    /// sequence-to-label classification: lstm 'last', fc, softmax (Japanese Vowels: 12 features, 100 hidden, 9 classes)
    Seq2label,
    /// sequence-to-sequence classification, a label per time step (3 features, 200 hidden, 5 classes)
    #[value(name = "seq2seq-class")]
    Seq2seqClass,
    /// sequence-to-one regression: lstm 'last', fc (1 feature, 100 hidden, 1 response)
    Seq2one,
    /// sequence-to-sequence regression: lstm, fc 50, dropout 0.5, fc (17 features, 200 hidden, 1 response)
    #[value(name = "seq2seq-regress")]
    Seq2seqRegress,
    /// two lstm layers with dropout 0.2, then fc and softmax (12 features, 100 hidden, 9 classes)
    #[value(name = "deep-seq2label")]
    DeepSeq2label,
    /// video classification: folded 28x28x1 frames, conv 5x5 (20), batchnorm, relu, lstm 200 'last', 10 classes
    Video,
    /// 1-D CNN (Wang et al.'s FCN): conv1d 8/5/3 'same' with 128/256/128 filters, each with batchnorm and relu, global average pooling, fc; classification (9 classes) or, with --responses, regression
    Cnn1d,
    /// pre-LN transformer encoder: fc to --model-dim (64) plus learned position embedding, --blocks (2) of self-attention (--heads 4) and a relu feed-forward part (--ffn-dim 128) with residual additions, global average pooling, fc; classification (9 classes) or, with --responses, regression
    Transformer,
}

impl From<TemplateName> for Template {
    fn from(t: TemplateName) -> Self {
        match t {
            TemplateName::Seq2label => Template::Seq2Label,
            TemplateName::Seq2seqClass => Template::Seq2SeqClass,
            TemplateName::Seq2one => Template::Seq2One,
            TemplateName::Seq2seqRegress => Template::Seq2SeqRegress,
            TemplateName::DeepSeq2label => Template::DeepSeq2Label,
            TemplateName::Video => Template::Video,
            TemplateName::Cnn1d => Template::Cnn1d,
            TemplateName::Transformer => Template::Transformer,
        }
    }
}

/// The input normalization, as the command line names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NormalizationName {
    /// (x − mean) / standard deviation, per channel
    Zscore,
    /// x − mean
    Zerocenter,
    /// rescaled to [−1, 1] by the training data's minimum and maximum
    RescaleSymmetric,
    /// rescaled to [0, 1]
    RescaleZeroOne,
    /// none
    None,
}

impl From<NormalizationName> for Normalization {
    fn from(n: NormalizationName) -> Self {
        match n {
            NormalizationName::Zscore => Normalization::Zscore,
            NormalizationName::Zerocenter => Normalization::Zerocenter,
            NormalizationName::RescaleSymmetric => Normalization::RescaleSymmetric,
            NormalizationName::RescaleZeroOne => Normalization::RescaleZeroOne,
            NormalizationName::None => Normalization::None,
        }
    }
}

/// The recurrent layers, as the command line names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LayerName {
    /// long short-term memory
    Lstm,
    /// bidirectional LSTM (2×hidden outputs)
    Bilstm,
    /// gated recurrent unit
    Gru,
    /// bidirectional GRU (2×hidden outputs)
    Bigru,
}

impl LayerName {
    /// The template's recurrent layer.
    fn recurrent(self) -> Result<RecurrentLayer> {
        match self {
            LayerName::Lstm => Ok(RecurrentLayer::Lstm),
            LayerName::Bilstm => Ok(RecurrentLayer::BiLstm),
            LayerName::Gru => Ok(RecurrentLayer::Gru),
            LayerName::Bigru => Ok(RecurrentLayer::BiGru),
        }
    }
}

/// `seqnet new`'s arguments.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  seqnet new seq2label --features 12 --hidden 100 --classes 9 > net.json\n  seqnet new seq2seq-class --features 1 --classes 3 --layer bilstm --layers 2 --dropout 0.2 > net.json"
)]
#[command(allow_negative_numbers = true)]
pub struct Args {
    /// The network to write.
    #[arg(value_enum)]
    pub template: TemplateName,
    /// Features per time step (feature-sequence templates).
    #[arg(long, value_name = "N", value_parser = super::count, conflicts_with = "image")]
    pub features: Option<u64>,
    /// Frame size H,W,C (the video template), e.g. 28,28,1.
    #[arg(long, value_name = "H,W,C", value_parser = parse_image)]
    pub image: Option<[usize; 3]>,
    /// Hidden units of each recurrent layer (per direction for bilstm).
    #[arg(long, value_name = "N", value_parser = super::count)]
    pub hidden: Option<u64>,
    /// The recurrent layer [default: lstm].
    #[arg(long, value_enum)]
    pub layer: Option<LayerName>,
    /// Number of stacked recurrent layers [default: 2 for deep-seq2label, else 1].
    #[arg(long, value_name = "N", value_parser = super::count)]
    pub layers: Option<u64>,
    /// Dropout probability between stacked recurrent layers, in [0, 1)
    /// [default: 0.2 for deep-seq2label (also after its last layer), else none].
    #[arg(long, value_name = "P", value_parser = probability)]
    pub dropout: Option<f32>,
    /// Number of classes (classification templates).
    #[arg(long, value_name = "N", value_parser = super::count, conflicts_with = "responses")]
    pub classes: Option<u64>,
    /// Number of responses (regression templates).
    #[arg(long, value_name = "N", value_parser = super::count)]
    pub responses: Option<u64>,
    /// Input normalization; its statistics come from the training data.
    #[arg(long, value_enum, default_value = "none")]
    pub normalization: NormalizationName,
    /// Filters of the three 1-D convolutions (the cnn1d template), e.g. 128,256,128.
    #[arg(long, value_name = "N1,N2,N3", value_parser = parse_three)]
    pub filters: Option<[usize; 3]>,
    /// Filter sizes in steps of the three 1-D convolutions (the cnn1d template), e.g. 8,5,3.
    #[arg(long, value_name = "K1,K2,K3", value_parser = parse_three)]
    pub filter_sizes: Option<[usize; 3]>,
    /// Model width D of the transformer template [default: 64].
    #[arg(long, value_name = "D", value_parser = super::count)]
    pub model_dim: Option<u64>,
    /// Attention heads of the transformer template; divides --model-dim [default: 4].
    #[arg(long, value_name = "N", value_parser = super::count)]
    pub heads: Option<u64>,
    /// Encoder blocks of the transformer template [default: 2].
    #[arg(long, value_name = "N", value_parser = super::count)]
    pub blocks: Option<u64>,
    /// Hidden size of each feed-forward part of the transformer template [default: 2·D].
    #[arg(long, value_name = "F", value_parser = super::count)]
    pub ffn_dim: Option<u64>,
    /// Longest sequence the transformer's learned position embedding takes [default: 512].
    #[arg(long, value_name = "N", value_parser = super::count)]
    pub max_position: Option<u64>,
}

/// Parses three positive integers `a,b,c`.
fn parse_three(s: &str) -> std::result::Result<[usize; 3], String> {
    let values: Option<Vec<usize>> = s
        .split(',')
        .map(|p| p.trim().parse::<usize>().ok().filter(|&n| n > 0))
        .collect();
    match values.as_deref() {
        Some(&[a, b, c]) => Ok([a, b, c]),
        _ => Err(format!(
            "expected three positive integers such as 128,256,128, got '{s}'"
        )),
    }
}

/// Parses a probability in `[0, 1)`.
fn probability(s: &str) -> std::result::Result<f32, String> {
    match s.trim().parse::<f32>() {
        Ok(p) if (0.0..1.0).contains(&p) => Ok(p),
        _ => Err(format!("expected a probability in [0, 1), got '{s}'")),
    }
}

/// Parses `H,W,C`.
fn parse_image(s: &str) -> std::result::Result<[usize; 3], String> {
    let parts: Vec<&str> = s.split([',', 'x', 'X']).map(str::trim).collect();
    let values: Vec<usize> = parts
        .iter()
        .map(|p| p.parse::<usize>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| {
            format!("expected three positive integers H,W,C such as 28,28,1, got '{s}'")
        })?;
    match values[..] {
        [h, w, c] if h > 0 && w > 0 && c > 0 => Ok([h, w, c]),
        _ => Err(format!(
            "expected three positive integers H,W,C such as 28,28,1, got '{s}'"
        )),
    }
}

/// The graph JSON of the template with the flags' sizes.
pub fn graph_json(args: &Args) -> Result<String> {
    let template = Template::from(args.template);
    if !template.can_regress() && args.responses.is_some() {
        return Err(flag_error(
            "--responses",
            format!("the {template} template classifies; give --classes instead"),
        ));
    }
    if !template.is_classification() && args.classes.is_some() {
        return Err(flag_error(
            "--classes",
            format!("the {template} template regresses; give --responses instead"),
        ));
    }
    if template.takes_images() && args.features.is_some() {
        return Err(flag_error(
            "--features",
            "the video template takes image sequences; give --image H,W,C instead",
        ));
    }
    if !template.takes_images() && args.image.is_some() {
        return Err(flag_error(
            "--image",
            format!("the {template} template takes feature sequences; give --features N instead"),
        ));
    }
    let input = match (args.features, args.image) {
        (Some(f), _) => Some(InputSize::Features(f as usize)),
        (_, Some(i)) => Some(InputSize::Image(i)),
        _ => None,
    };
    let options = TemplateOptions {
        input,
        hidden: args.hidden.map(|h| h as usize),
        recurrent: args
            .layer
            .map_or(Ok(RecurrentLayer::Lstm), LayerName::recurrent)?,
        layers: args.layers.map(|n| n as usize),
        dropout: args.dropout,
        outputs: args.classes.or(args.responses).map(|n| n as usize),
        normalization: args.normalization.into(),
        regression: template.is_classification() && args.responses.is_some(),
        filters: args.filters,
        filter_sizes: args.filter_sizes,
        transformer: TransformerSizes {
            model_dim: args.model_dim.map(|n| n as usize),
            heads: args.heads.map(|n| n as usize),
            blocks: args.blocks.map(|n| n as usize),
            ffn_dim: args.ffn_dim.map(|n| n as usize),
            max_position: args.max_position.map(|n| n as usize),
        },
    };
    let graph = template.graph(&options).map_err(|e| match e {
        Error::InvalidOption { option, message } => {
            let flag = match option {
                "image" => "--image",
                "features" => "--features",
                "hidden" => "--hidden",
                "classes" => "--classes",
                "responses" => "--responses",
                "layers" => "--layers",
                "dropout" => "--dropout",
                "filters" => "--filters",
                "filter-sizes" => "--filter-sizes",
                "model-dim" => "--model-dim",
                "heads" => "--heads",
                "blocks" => "--blocks",
                "ffn-dim" => "--ffn-dim",
                "max-position" => "--max-position",
                other => other,
            };
            flag_error(flag, message)
        }
        other => other.into(),
    })?;
    Ok(graph.to_json())
}

/// Runs `seqnet new`.
pub fn run(args: Args) -> Result<()> {
    let json = graph_json(&args)?;
    out(&format!("{json}\n"))
}
