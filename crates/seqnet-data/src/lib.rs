//! seqnet's data: everything between files on disk and the mini-batches a
//! network trains on, with the semantics of MATLAB's Deep Learning Toolbox
//! (`trainNetwork`'s `SequenceLength`, `SequencePaddingDirection` and
//! `SequencePaddingValue` options, datastores).
//!
//! | module | job |
//! |---|---|
//! | [`ts`] | reads the UEA/UCR `.ts` time-series format |
//! | [`observation`] | one observation: a sequence (`[T, C]` or `[T, H, W, C]`) and its target |
//! | [`datastore`] | the [`Datastore`] trait and epoch reading with a bounded read-ahead thread |
//! | [`memory`] | [`InMemoryDatastore`]: observations held in memory |
//! | [`folder`] | [`FolderDatastore`]: `labels.csv` plus one sequence file (`.npy` or `.csv`) per observation |
//! | [`labels_csv`] | parses `labels.csv` |
//! | [`npy`] | reads one `.npy` file as an `f32` sequence (and raw target values) |
//! | [`csv_sequence`] | reads one `.csv` file as a feature sequence |
//! | [`sequence_file`] | reads a sequence file by its extension |
//! | [`targets`] | per-step target files (`int64` classes, `float32` responses) and `classes.txt` |
//! | [`writer`] | writes observations as a datastore folder |
//! | [`batch`] | the [`Batcher`]: padding, truncation and chunking into [`seqnet_core::Activation`]s |
//! | [`order`] | sorting by length and splitting an index order into mini-batches |
//! | [`stats`] | per-channel normalization statistics |
//! | [`synthetic`] | a seeded synthetic video set whose class only motion reveals |
//! | [`waveforms`] | seeded synthetic signals for sequence-to-sequence classification and regression |
//! | [`series`] | seeded synthetic series for forecasting |
//! | [`error`] | the crate's [`Error`] |
//!
//! Every error is an [`Error`] naming what is at fault: malformed text
//! files give [`Error::Parse`] with the file and the 1-based line, `.npy`
//! files [`Error::Npy`], a file listed in a `labels.csv` [`Error::Listed`]
//! with the CSV's line, an observation [`Error::Observation`] with its index.
//!
//! ```
//! use seqnet_data::*;
//! use std::sync::Arc;
//!
//! # fn main() -> seqnet_data::Result<()> {
//! let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/japanese_vowels/JapaneseVowels_TRAIN.ts");
//! let train = Arc::new(InMemoryDatastore::open_ts(path, &TsOptions::default())?);
//! let stats = ChannelStats::from_datastore(train.clone())?; // mean, std, min, max: [12] each
//! let order = sort_by_length(&train.sequence_lengths()?);
//! let batcher = Batcher::for_datastore(BatchOptions::default(), train.as_ref())?;
//! for mini_batch in batcher.epoch(train.clone(), &order, 27, LastBatch::Discard)? {
//!     let chunk = &mini_batch?.chunks[0];
//!     let x = &chunk.inputs.data; // [T, 27, 12], padded on the right
//!     let y = &chunk.targets.as_ref().unwrap().data; // one-hot [27, 9]
//!     assert_eq!((x.shape()[1..].to_vec(), y.shape().to_vec()), (vec![27, 12], vec![27, 9]));
//! }
//! # assert_eq!(stats.mean.len(), 12);
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod batch;
pub mod csv_sequence;
pub mod datastore;
pub mod error;
pub mod folder;
pub mod labels_csv;
pub mod memory;
pub mod npy;
pub mod observation;
pub mod order;
pub mod sequence_file;
pub mod series;
pub mod share;
pub mod stats;
pub mod synthetic;
pub mod targets;
mod text;
pub mod ts;
pub mod waveforms;
pub mod writer;

pub use batch::{BatchOptions, Batcher, Chunk, EpochBatches, MiniBatch, SequenceLength};
pub use datastore::{Datastore, Epoch};
pub use error::{Error, Result};
pub use folder::{FolderDatastore, FolderOptions};
pub use memory::InMemoryDatastore;
pub use observation::{FrameShape, Observation, Sequence, Target, TargetKind};
pub use order::{mini_batches, sort_by_length, LastBatch};
pub use seqnet_core::PaddingDirection;
pub use share::{balanced_owners, Share};
pub use stats::{ChannelStats, StatsAccumulator};
pub use synthetic::{SyntheticVideo, SyntheticVideos};
pub use targets::{ClassList, StepTargetKind};
pub use ts::{parse_ts, read_ts, MissingPolicy, TsDataset, TsLabels, TsOptions};
