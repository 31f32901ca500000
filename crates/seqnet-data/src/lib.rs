#![warn(missing_docs)]
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
//! | [`folder`] | [`FolderDatastore`]: `labels.csv` plus one `.npy` file per observation |
//! | [`labels_csv`] | parses `labels.csv` |
//! | [`npy`] | reads one `.npy` file as an `f32` sequence |
//! | [`batch`] | the [`Batcher`]: padding, truncation and chunking into [`seqnet_core::Activation`]s |
//! | [`order`] | sorting by length and splitting an index order into mini-batches |
//! | [`stats`] | per-channel normalization statistics |
//!
//! Every error is a [`seqnet_core::Error`]; malformed files give
//! [`seqnet_core::Error::Parse`] naming the file and the 1-based line (line 0
//! for files that are not line-based, such as `.npy`).

pub mod batch;
pub mod datastore;
pub mod folder;
pub mod labels_csv;
pub mod memory;
pub mod npy;
pub mod observation;
pub mod order;
pub mod stats;
mod text;
pub mod ts;

pub use batch::{BatchOptions, Batcher, Chunk, EpochBatches, MiniBatch, SequenceLength};
pub use datastore::{Datastore, Epoch};
pub use folder::{FolderDatastore, FolderOptions};
pub use memory::InMemoryDatastore;
pub use observation::{FrameShape, Observation, Sequence, Target, TargetKind};
pub use order::{mini_batches, sort_by_length, LastBatch};
pub use seqnet_core::PaddingDirection;
pub use stats::ChannelStats;
pub use ts::{parse_ts, read_ts, MissingPolicy, TsDataset, TsLabels, TsOptions};
