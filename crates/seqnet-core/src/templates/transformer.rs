//! The `transformer` template: a pre-LN transformer encoder for sequence
//! classification or regression, as MATLAB layers.

use crate::error::{Error, Result};
use crate::graph::LayerGraph;
use crate::layers::*;

/// The sizes of the transformer template; `None` takes the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TransformerSizes {
    /// Channels `D` of the model (64).
    pub model_dim: Option<usize>,
    /// Attention heads `h` (4); divides `D`.
    pub heads: Option<usize>,
    /// Encoder blocks `N` (2).
    pub blocks: Option<usize>,
    /// Hidden size of each feed-forward part (`2·D`).
    pub ffn_dim: Option<usize>,
    /// The longest sequence the learned position embedding takes (512).
    pub max_position: Option<usize>,
}

/// [`TransformerSizes`] with every default filled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizes {
    pub model_dim: usize,
    pub heads: usize,
    pub blocks: usize,
    pub ffn_dim: usize,
    pub max_position: usize,
}

impl TransformerSizes {
    /// The sizes with defaults, checked.
    ///
    /// # Errors
    /// [`Error::InvalidOption`] naming the option when a size is zero or the
    /// heads do not divide the model width.
    pub fn resolve(&self) -> Result<Sizes> {
        let model_dim = self.model_dim.unwrap_or(64);
        let s = Sizes {
            model_dim,
            heads: self.heads.unwrap_or(4),
            blocks: self.blocks.unwrap_or(2),
            ffn_dim: self.ffn_dim.unwrap_or(2 * model_dim),
            max_position: self.max_position.unwrap_or(512),
        };
        for (option, v) in [
            ("model-dim", s.model_dim),
            ("heads", s.heads),
            ("blocks", s.blocks),
            ("ffn-dim", s.ffn_dim),
            ("max-position", s.max_position),
        ] {
            if v == 0 {
                return Err(Error::InvalidOption {
                    option,
                    message: "must be at least 1".into(),
                });
            }
        }
        if !s.model_dim.is_multiple_of(s.heads) {
            return Err(Error::InvalidOption {
                option: "heads",
                message: format!(
                    "{} heads do not divide the model width {}",
                    s.heads, s.model_dim
                ),
            });
        }
        Ok(s)
    }

    /// Whether any size is set (only the transformer template takes them).
    pub fn any(&self) -> bool {
        *self != TransformerSizes::default()
    }
}

/// The graph after `input`: `fc_in` (fully connected to `D`) plus the learned
/// position embedding `pos` (`add_pos`), then `N` pre-LN blocks, block `i`:
///
/// ```text
/// ln1_i → attn_i (selfAttention, h heads, K = V = O = D) → add_attn_i (+ block input)
/// ln2_i → fc1_i (F) → relu_i → fc2_i (D) → add_ffn_i (+ add_attn_i)
/// ```
///
/// then `gap` (global average pooling over each sequence's real steps) and
/// `fc → softmax → classoutput`, or `fc → regressionoutput` when `regression`.
///
/// # Errors
/// Any problem the graph checks find.
pub fn graph(
    input: SequenceInput,
    s: &Sizes,
    outputs: usize,
    regression: bool,
) -> Result<LayerGraph> {
    let d = s.model_dim;
    let mut layers: Vec<Layer> = vec![
        input.into(),
        FullyConnected::new(d).name("fc_in").into(),
        PositionEmbedding::new(d, s.max_position).name("pos").into(),
        Addition::new(2).name("add_pos").into(),
    ];
    // Skip connections: (block input, addition) pairs the chain does not make.
    let mut skips = vec![("fc_in".to_string(), "add_pos".to_string())];
    let mut block_in = "add_pos".to_string();
    for i in 1..=s.blocks {
        layers.extend::<[Layer; 8]>([
            LayerNormalization::new().name(format!("ln1_{i}")).into(),
            SelfAttention::new(s.heads, d)
                .name(format!("attn_{i}"))
                .into(),
            Addition::new(2).name(format!("add_attn_{i}")).into(),
            LayerNormalization::new().name(format!("ln2_{i}")).into(),
            FullyConnected::new(s.ffn_dim)
                .name(format!("fc1_{i}"))
                .into(),
            Relu::new().name(format!("relu_{i}")).into(),
            FullyConnected::new(d).name(format!("fc2_{i}")).into(),
            Addition::new(2).name(format!("add_ffn_{i}")).into(),
        ]);
        skips.push((block_in.clone(), format!("add_attn_{i}")));
        skips.push((format!("add_attn_{i}"), format!("add_ffn_{i}")));
        block_in = format!("add_ffn_{i}");
    }
    layers.push(GlobalAveragePooling1d::new().name("gap").into());
    layers.push(FullyConnected::new(outputs).name("fc").into());
    if regression {
        layers.push(RegressionOutput::new().name("regressionoutput").into());
    } else {
        layers.push(Softmax::new().name("softmax").into());
        layers.push(ClassificationOutput::new().name("classoutput").into());
    }
    let mut graph = LayerGraph::from_layers(layers)?;
    for (from, to) in skips {
        graph.connect(&from, &format!("{to}/in2"))?;
    }
    Ok(graph)
}
