//! Data on the command line: a `.ts` file or a datastore folder (`labels.csv`
//! plus `.npy` files), its class names made to agree with a model's, and the
//! checks that it fits a network.

use super::{CliError, Result};
use seqnet_core::layers::{ClassificationOutput, InputSize, SequenceInput};
use seqnet_core::LayerGraph;
use seqnet_data::{
    sort_by_length, Datastore, FolderDatastore, FolderOptions, FrameShape, InMemoryDatastore,
    Observation, Target, TargetKind, TsOptions,
};
use std::path::Path;
use std::sync::Arc;

/// A data set opened from the command line.
#[derive(Clone)]
pub struct DataSet {
    /// The observations.
    pub store: Arc<dyn Datastore>,
    /// The path as given, for messages.
    pub name: String,
}

impl DataSet {
    /// The class names of class targets (empty for regression or no targets).
    pub fn classes(&self) -> Vec<String> {
        self.store
            .classes()
            .map(<[String]>::to_vec)
            .unwrap_or_default()
    }

    /// The kind of target every observation has.
    pub fn target_kind(&self) -> Result<TargetKind> {
        Ok(self.store.target_kind()?.unwrap_or(TargetKind::None))
    }

    /// The same data in order of increasing sequence length (stable), as
    /// MATLAB's examples sort training data.
    pub fn sorted_by_length(self) -> Result<Self> {
        let order = sort_by_length(&self.store.sequence_lengths()?);
        Ok(DataSet {
            store: Arc::new(Reordered {
                inner: self.store,
                order,
            }),
            name: self.name,
        })
    }
}

/// Opens a `.ts` file or a datastore folder. With `classes` (a model's or the
/// training data's class names), class labels are numbered by that list and
/// a label outside it is an error.
pub fn open_data(path: &Path, classes: Option<&[String]>) -> Result<DataSet> {
    let name = path.display().to_string();
    let store: Arc<dyn Datastore> = if path.is_dir() {
        if !path.join("labels.csv").is_file() {
            return Err(CliError::NotWhatIsNeeded {
                path: name,
                problem: "the folder has no labels.csv; a datastore folder holds a labels.csv and one .npy or .csv file per observation".into(),
            });
        }
        let options = FolderOptions {
            classes: classes.filter(|c| !c.is_empty()).map(<[String]>::to_vec),
            ..FolderOptions::default()
        };
        Arc::new(FolderDatastore::open_with(path, options)?)
    } else if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("ts"))
    {
        let store = InMemoryDatastore::open_ts(path, &TsOptions::default())?;
        match classes.filter(|c| !c.is_empty()) {
            Some(wanted) => Arc::new(renumber(store, wanted, &name)?),
            None => Arc::new(store),
        }
    } else if !path.exists() {
        return Err(CliError::Io {
            path: name,
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        });
    } else {
        return Err(CliError::NotWhatIsNeeded {
            path: name,
            problem:
                "not a .ts file nor a datastore folder (a folder with labels.csv and .npy files)"
                    .into(),
        });
    };
    if store.is_empty() {
        return Err(CliError::NoObservations { data: name });
    }
    Ok(DataSet { store, name })
}

/// The observations of `store` with class indices into `wanted`.
fn renumber(store: InMemoryDatastore, wanted: &[String], name: &str) -> Result<InMemoryDatastore> {
    let Some(have) = store.classes().map(<[String]>::to_vec) else {
        return Ok(store);
    };
    if have == wanted {
        return Ok(store);
    }
    let map = have
        .iter()
        .map(|c| {
            wanted
                .iter()
                .position(|w| w == c)
                .ok_or_else(|| CliError::UnknownClass {
                    data: name.to_string(),
                    class: c.clone(),
                    classes: wanted.to_vec(),
                })
        })
        .collect::<Result<Vec<_>>>()?;
    let observations: Vec<Observation> = store
        .into_observations()
        .into_iter()
        .map(|o| {
            let target = match o.target {
                Target::Class(k) => Target::Class(map[k]),
                Target::ClassSequence(ks) => {
                    Target::ClassSequence(ks.into_iter().map(|k| map[k]).collect())
                }
                t => t,
            };
            Observation::new(o.data, target)
        })
        .collect();
    Ok(InMemoryDatastore::new(observations, Some(wanted.to_vec()))?)
}

/// A datastore read in another order.
struct Reordered {
    inner: Arc<dyn Datastore>,
    order: Vec<usize>,
}

impl Datastore for Reordered {
    fn len(&self) -> usize {
        self.order.len()
    }
    fn read(&self, i: usize) -> seqnet_data::Result<Observation> {
        let j = *self.order.get(i).ok_or(seqnet_data::Error::Index {
            index: i,
            len: self.order.len(),
        })?;
        self.inner.read(j)
    }
    fn classes(&self) -> Option<&[String]> {
        self.inner.classes()
    }
    fn sequence_lengths(&self) -> seqnet_data::Result<Vec<usize>> {
        let lengths = self.inner.sequence_lengths()?;
        Ok(self.order.iter().map(|&j| lengths[j]).collect())
    }
    fn frame_shape(&self) -> seqnet_data::Result<Option<FrameShape>> {
        self.inner.frame_shape()
    }
    fn target_kind(&self) -> seqnet_data::Result<Option<TargetKind>> {
        self.inner.target_kind()
    }
    fn read_ahead(&self) -> usize {
        self.inner.read_ahead()
    }
}

/// What a network's output layer predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputKind {
    /// A classification layer (else regression).
    pub classification: bool,
    /// One prediction per time step (else one per sequence).
    pub per_step: bool,
    /// Classes or responses.
    pub size: usize,
}

/// The kind of the graph's (first) output.
pub fn output_kind(graph: &LayerGraph) -> Result<OutputKind> {
    let plan = graph.check()?;
    let i = graph
        .layers
        .iter()
        .position(|l| l.def().is_output())
        .ok_or(CliError::MissingLayer { what: "output" })?;
    let shape = plan.input_shapes[i]
        .first()
        .copied()
        .ok_or(CliError::MissingLayer {
            what: "connected output",
        })?;
    Ok(OutputKind {
        classification: graph.layers[i].is::<ClassificationOutput>(),
        per_step: shape.format.has_time(),
        size: shape.elements(),
    })
}

/// Checks that `data` fits `graph`: its frames match the input layer and
/// its targets (required when `need_targets`, for training) match the
/// output layer. Errors name the data, the layer and the sizes.
pub fn check_fits(graph: &LayerGraph, data: &DataSet, need_targets: bool) -> Result<()> {
    check_input(graph, data)?;
    check_targets(graph, data, need_targets)
}

/// Checks that the data's time steps have the size the input layer takes.
pub fn check_input(graph: &LayerGraph, data: &DataSet) -> Result<()> {
    let name = &data.name;
    let input = graph
        .layers
        .iter()
        .find_map(|l| l.downcast_ref::<SequenceInput>())
        .ok_or(CliError::MissingLayer {
            what: "sequence input",
        })?;
    let frame = data.store.frame_shape()?;
    let fits = match (input.input_size, frame) {
        (InputSize::Features(c), Some(FrameShape::Features(d))) => c == d,
        (
            InputSize::Image([h, w, c]),
            Some(FrameShape::Image {
                height,
                width,
                channels,
            }),
        ) => [h, w, c] == [height, width, channels],
        _ => false,
    };
    if !fits {
        let wants = match input.input_size {
            InputSize::Features(1) => "1 feature".to_string(),
            InputSize::Features(c) => format!("{c} features"),
            InputSize::Image([h, w, c]) => format!("{h}×{w}×{c} images"),
        };
        let has = match frame {
            None => "nothing".to_string(),
            Some(FrameShape::Features(1)) => "1 feature".to_string(),
            Some(f) => f.to_string(),
        };
        return Err(CliError::InputMismatch {
            data: name.clone(),
            layer: input.name.clone(),
            has,
            takes: wants,
        });
    }
    Ok(())
}

/// Checks that the data's targets are what the output layer predicts
/// (data without targets passes unless `need_targets`).
pub fn check_targets(graph: &LayerGraph, data: &DataSet, need_targets: bool) -> Result<()> {
    let name = &data.name;
    let kind = data.target_kind()?;
    if kind == TargetKind::None {
        if need_targets {
            return Err(CliError::NoTargets { data: name.clone() });
        }
        return Ok(());
    }
    let out = output_kind(graph)?;
    let output_layer = graph
        .layers
        .iter()
        .find(|l| l.def().is_output())
        .map(|l| l.name().to_string())
        .unwrap_or_default();
    let wants = match (out.classification, out.per_step) {
        (true, false) => "a class label per sequence".to_string(),
        (true, true) => "a class label per time step".to_string(),
        (false, false) => format!("{} responses per sequence", out.size),
        (false, true) => format!("{} responses per time step", out.size),
    };
    let ok = match kind {
        TargetKind::Class => out.classification && !out.per_step,
        TargetKind::ClassSequence => out.classification && out.per_step,
        TargetKind::Response(r) => !out.classification && !out.per_step && r == out.size,
        TargetKind::ResponseSequence(r) => !out.classification && out.per_step && r == out.size,
        TargetKind::None => true,
    };
    if !ok {
        return Err(CliError::TargetMismatch {
            data: name.clone(),
            layer: output_layer,
            has: kind.to_string(),
            predicts: wants,
        });
    }
    if out.classification {
        let k = data.classes().len();
        if k != out.size {
            return Err(CliError::ClassCount {
                data: name.clone(),
                classes: k,
                predicts: out.size,
                layer: feeding_layer(graph, &output_layer),
            });
        }
    }
    Ok(())
}

/// The layer that sets the output size: the last one with learnables before
/// the output layer (usually the fully connected layer).
fn feeding_layer(graph: &LayerGraph, output: &str) -> String {
    let Ok(summary) = graph.summary() else {
        return output.to_string();
    };
    summary
        .rows
        .iter()
        .rev()
        .find(|r| !r.learnables.is_empty())
        .map(|r| r.name.clone())
        .unwrap_or_else(|| output.to_string())
}

/// The real class of every observation of sequence-to-label data (`None`
/// where it has none), or every step's class for per-step labels.
pub fn true_classes(store: &dyn Datastore) -> Result<Vec<Vec<usize>>> {
    let classes = (0..store.len())
        .map(|i| {
            store.read(i).map(|o| match o.target {
                Target::Class(c) => vec![c],
                Target::ClassSequence(c) => c,
                _ => Vec::new(),
            })
        })
        .collect::<seqnet_data::Result<_>>()?;
    Ok(classes)
}
