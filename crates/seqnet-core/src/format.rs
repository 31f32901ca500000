//! Activation formats with MATLAB's labels: S (spatial), C (channel), B (batch), T (time).
//!
//! The label order is MATLAB's (`S×S×C×B×T`); the memory layout is seqnet's own,
//! chosen so that a time step and a folded frame are contiguous blocks:
//!
//! | format | label | memory layout (row-major) |
//! |---|---|---|
//! | [`Format::CB`] | `C×B` | `[B, C]` |
//! | [`Format::CBT`] | `C×B×T` | `[T, B, C]` |
//! | [`Format::SSCB`] | `S×S×C×B` | `[B, C, H, W]` |
//! | [`Format::SSCBT`] | `S×S×C×B×T` | `[T, B, C, H, W]` |
//! | [`Format::BatchSize`] | the `miniBatchSize` port of sequence folding | `[B, T]`, values unused |
//!
//! Folding `[T, B, C, H, W]` into `[T·B, C, H, W]` is therefore a free reshape;
//! folded frame `n` is time step `n / B` of observation `n % B`.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The layout of an activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Format {
    /// Features of a batch: `[B, C]`.
    CB,
    /// A feature sequence: `[T, B, C]`.
    CBT,
    /// A batch of images (or folded frames): `[B, C, H, W]`.
    SSCB,
    /// An image sequence: `[T, B, C, H, W]`.
    SSCBT,
    /// The mini-batch size carried from sequence folding to unfolding.
    BatchSize,
}

impl Format {
    /// Whether the format has a time dimension.
    pub fn has_time(self) -> bool {
        matches!(self, Format::CBT | Format::SSCBT)
    }

    /// Whether the format has two spatial dimensions.
    pub fn is_spatial(self) -> bool {
        matches!(self, Format::SSCB | Format::SSCBT)
    }

    /// MATLAB's label, e.g. `"SSCBT"`.
    pub fn label(self) -> &'static str {
        match self {
            Format::CB => "CB",
            Format::CBT => "CBT",
            Format::SSCB => "SSCB",
            Format::SSCBT => "SSCBT",
            Format::BatchSize => "B",
        }
    }
}

/// The shape of an activation without its batch and time sizes, as shape
/// inference sees it: the format, the channel count and, for images, `[H, W]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ActShape {
    pub format: Format,
    pub channels: usize,
    /// `[H, W]` for spatial formats, `[0, 0]` otherwise.
    pub spatial: [usize; 2],
}

impl ActShape {
    /// A feature vector per observation (`C×B`).
    pub fn features(channels: usize) -> Self {
        ActShape {
            format: Format::CB,
            channels,
            spatial: [0, 0],
        }
    }
    /// A feature sequence (`C×B×T`).
    pub fn sequence(channels: usize) -> Self {
        ActShape {
            format: Format::CBT,
            channels,
            spatial: [0, 0],
        }
    }
    /// Images (`S×S×C×B`).
    pub fn images(h: usize, w: usize, channels: usize) -> Self {
        ActShape {
            format: Format::SSCB,
            channels,
            spatial: [h, w],
        }
    }
    /// An image sequence (`S×S×C×B×T`).
    pub fn image_sequence(h: usize, w: usize, channels: usize) -> Self {
        ActShape {
            format: Format::SSCBT,
            channels,
            spatial: [h, w],
        }
    }
    /// The `miniBatchSize` port's shape.
    pub fn batch_size() -> Self {
        ActShape {
            format: Format::BatchSize,
            channels: 0,
            spatial: [0, 0],
        }
    }
    /// Elements per observation and time step (`H·W·C`, or `C`); saturates
    /// instead of overflowing (see [`ActShape::MAX_ELEMENTS`]).
    pub fn elements(&self) -> usize {
        if self.format.is_spatial() {
            self.spatial[0]
                .saturating_mul(self.spatial[1])
                .saturating_mul(self.channels)
        } else {
            self.channels
        }
    }

    /// The most elements one observation's time step may have; larger shapes
    /// fail the graph checks rather than an allocation.
    pub const MAX_ELEMENTS: usize = 1 << 28;
    /// The same shape with the time dimension added or removed.
    pub fn with_time(self, time: bool) -> Self {
        let format = match (self.format, time) {
            (Format::CB | Format::CBT, true) => Format::CBT,
            (Format::CB | Format::CBT, false) => Format::CB,
            (Format::SSCB | Format::SSCBT, true) => Format::SSCBT,
            (Format::SSCB | Format::SSCBT, false) => Format::SSCB,
            (f, _) => f,
        };
        ActShape { format, ..self }
    }
}

impl fmt::Display for ActShape {
    /// MATLAB's way, e.g. `28×28×1×B×T` or `100×B`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.format {
            Format::CB => write!(f, "{}×B", self.channels),
            Format::CBT => write!(f, "{}×B×T", self.channels),
            Format::SSCB => write!(
                f,
                "{}×{}×{}×B",
                self.spatial[0], self.spatial[1], self.channels
            ),
            Format::SSCBT => write!(
                f,
                "{}×{}×{}×B×T",
                self.spatial[0], self.spatial[1], self.channels
            ),
            Format::BatchSize => f.write_str("B (mini-batch size)"),
        }
    }
}
