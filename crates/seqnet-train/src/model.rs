//! One-file models: a `.safetensors` file holding every learnable and statistic
//! under `<layer>.<Name>`, with the graph JSON, class names and training options
//! in its metadata. Files are written to a temporary file and renamed into place,
//! so an interrupted write never leaves a broken file where a good one was.

use crate::error::{Error, Result};
use crate::options::TrainingOptions;
use ndarray::ArrayD;
use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;
use seqnet_core::{LayerGraph, Network};
use std::collections::HashMap;
use std::path::Path;

/// Metadata keys of a seqnet model file.
pub mod keys {
    pub const FORMAT: &str = "seqnet.format";
    pub const GRAPH: &str = "seqnet.graph";
    pub const CLASSES: &str = "seqnet.classes";
    pub const OPTIONS: &str = "seqnet.training_options";
    pub const FORMAT_VERSION: &str = "1";
}

/// Tensors under this prefix hold training state (checkpoints); models skip them.
pub const TRAINING_PREFIX: &str = "training.";

/// A trained network with what prediction needs to know about its data.
pub struct Model {
    pub network: Network,
    /// Class names in score order (classification), else empty.
    pub classes: Vec<String>,
    /// The options the network was trained with, if known.
    pub options: Option<TrainingOptions>,
}

/// Writes `bytes` to `path` through a temporary file in the same folder and a rename.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name().ok_or_else(|| Error::NotAFilePath {
        path: path.display().to_string(),
    })?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(path, e));
    }
    Ok(())
}

/// Saves a network with its class names and options, atomically.
pub fn save_network(
    path: &Path,
    network: &Network,
    classes: &[String],
    options: Option<&TrainingOptions>,
) -> Result<()> {
    write_atomically(path, &model_bytes(network, classes, options)?)
}

/// A model file's bytes.
pub fn model_bytes(
    network: &Network,
    classes: &[String],
    options: Option<&TrainingOptions>,
) -> Result<Vec<u8>> {
    model_bytes_with(network, classes, options, &[], HashMap::new())
}

/// A model file's bytes with extra tensors (named `training.…`, which loading a
/// model skips) and extra metadata, as checkpoints use.
pub fn model_bytes_with(
    network: &Network,
    classes: &[String],
    options: Option<&TrainingOptions>,
    extra_tensors: &[(String, &ArrayD<f32>)],
    extra_meta: HashMap<String, String>,
) -> Result<Vec<u8>> {
    // A file naming a type nobody registered could not be loaded back.
    if let Some(l) = network.graph().layers.iter().find(|l| !l.is_registered()) {
        return Err(Error::UnregisteredLayerType {
            layer: l.name().to_string(),
            tag: l.tag(),
        });
    }
    {
        let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
        let mut push = |name: String, value: ndarray::ArrayViewD<f32>| {
            tensors.push((name, value.shape().to_vec(), le_bytes(&value)));
        };
        for (layer, p) in network.learnables() {
            push(format!("{layer}.{}", p.name), p.value.view());
        }
        for (layer, s) in network.states() {
            push(format!("{layer}.{}", s.name), s.value.view());
        }
        for (name, value) in extra_tensors {
            push(name.clone(), value.view());
        }
        let views: Vec<(String, TensorView)> = tensors
            .iter()
            .map(|(n, shape, bytes)| {
                Ok((
                    n.clone(),
                    TensorView::new(Dtype::F32, shape.clone(), bytes)?,
                ))
            })
            .collect::<Result<_>>()?;
        let mut meta = extra_meta;
        meta.insert(keys::FORMAT.to_string(), keys::FORMAT_VERSION.to_string());
        meta.insert(keys::GRAPH.to_string(), network.graph().to_json());
        // Strings, and options of numbers and strings: serialising cannot fail.
        meta.insert(
            keys::CLASSES.to_string(),
            serde_json::to_string(classes).expect("strings serialise"),
        );
        if let Some(o) = options {
            meta.insert(
                keys::OPTIONS.to_string(),
                serde_json::to_string(o).expect("options serialise"),
            );
        }
        Ok(safetensors::serialize(views, Some(meta))?)
    }
}

/// The values of `value` in logical order as little-endian bytes, in one
/// loop over a buffer made at its size (a chain of per-value byte iterators
/// was 2 % of a data-parallel video epoch's samples, for its checkpoint).
fn le_bytes(value: &ndarray::ArrayViewD<f32>) -> Vec<u8> {
    let mut bytes = vec![0u8; value.len() * 4];
    let write = |(out, v): (&mut [u8], &f32)| out.copy_from_slice(&v.to_le_bytes());
    match value.as_slice() {
        Some(values) => bytes.chunks_exact_mut(4).zip(values).for_each(write),
        None => bytes.chunks_exact_mut(4).zip(value.iter()).for_each(write),
    }
    bytes
}

impl Model {
    /// Another model sharing this one's weights (see [`Network::share`]):
    /// cheap, for serving predictions from several threads, one share each.
    pub fn share(&self) -> Result<Model> {
        Ok(Model {
            network: self.network.share()?,
            classes: self.classes.clone(),
            options: self.options.clone(),
        })
    }

    /// The model file's bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        model_bytes(&self.network, &self.classes, self.options.as_ref())
    }

    /// Saves the model to `path` atomically.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        write_atomically(path.as_ref(), &self.to_bytes()?)
    }

    /// Loads a model file; every disagreement between metadata and tensors is an
    /// error naming the file and the tensor or layer.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Self::from_bytes(&bytes, &path.display().to_string())
    }

    /// A model from a file's bytes; `origin` names the file in errors.
    pub fn from_bytes(bytes: &[u8], origin: &str) -> Result<Self> {
        let file = || origin.to_string();
        let not_safetensors = |source| Error::NotSafetensors {
            file: file(),
            source,
        };
        let (_, header) = SafeTensors::read_metadata(bytes).map_err(not_safetensors)?;
        let st = SafeTensors::deserialize(bytes).map_err(not_safetensors)?;
        let meta = header.metadata().clone().unwrap_or_default();
        let graph_json = meta
            .get(keys::GRAPH)
            .ok_or_else(|| Error::MissingMetadata {
                file: file(),
                key: keys::GRAPH,
                expected: "not a seqnet model",
            })?;
        let graph =
            LayerGraph::from_json(graph_json, &format!("{origin} (metadata {})", keys::GRAPH))?;
        let bad_metadata = |key: &'static str| {
            move |source| Error::BadMetadata {
                file: file(),
                key,
                source,
            }
        };
        let classes: Vec<String> = match meta.get(keys::CLASSES) {
            Some(c) => serde_json::from_str(c).map_err(bad_metadata(keys::CLASSES))?,
            None => Vec::new(),
        };
        let options = match meta.get(keys::OPTIONS) {
            Some(o) => {
                Some(TrainingOptions::from_stored_json(o).map_err(bad_metadata(keys::OPTIONS))?)
            }
            None => None,
        };
        check_shapes(&graph, &st, origin)?;
        let network = network_from(&graph, &st, origin)?;
        Ok(Model {
            network,
            classes,
            options,
        })
    }
}

/// Checks the graph's learnables against the file's tensors before building
/// anything, so that no allocation exceeds what the file itself holds.
fn check_shapes(graph: &LayerGraph, st: &SafeTensors, origin: &str) -> Result<()> {
    let summary = graph.summary()?;
    for row in &summary.rows {
        for (name, shape) in &row.learnables {
            let key = format!("{}.{name}", row.name);
            let t = st.tensor(&key).map_err(|_| Error::MissingTensor {
                file: origin.to_string(),
                tensor: key.clone(),
                layer: row.name.clone(),
            })?;
            if t.shape() != shape.as_slice() {
                return Err(Error::TensorShape {
                    file: origin.to_string(),
                    tensor: key,
                    layer: row.name.clone(),
                    found: t.shape().into(),
                    expected: shape.as_slice().into(),
                });
            }
        }
    }
    Ok(())
}

/// The network of `graph` with every learnable and statistic from the file's
/// tensors; tensors that belong to no layer (other than training state) are
/// an error.
fn network_from(graph: &LayerGraph, st: &SafeTensors, origin: &str) -> Result<Network> {
    let mut network = Network::new(graph, 0)?;
    let expected: Vec<(String, String, bool)> = network
        .learnables()
        .iter()
        .map(|(l, p)| (l.to_string(), p.name.to_string(), true))
        .chain(
            network
                .states()
                .iter()
                .map(|(l, s)| (l.to_string(), s.name.to_string(), false)),
        )
        .collect();
    let mut used = 0usize;
    for (layer, name, learnable) in &expected {
        let key = format!("{layer}.{name}");
        let t = st.tensor(&key).map_err(|_| Error::MissingTensor {
            file: origin.to_string(),
            tensor: key.clone(),
            layer: layer.clone(),
        })?;
        if t.dtype() != Dtype::F32 {
            return Err(Error::TensorType {
                file: origin.to_string(),
                tensor: key,
                dtype: format!("{:?}", t.dtype()),
            });
        }
        let values: Vec<f32> = t
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        // safetensors checked that the data holds exactly shape·4 bytes.
        let arr = ArrayD::from_shape_vec(t.shape().to_vec(), values)
            .expect("safetensors checks the data length against the shape");
        let set = if *learnable {
            network.set_learnable(layer, name, arr)
        } else {
            network.set_state(layer, name, arr)
        };
        set.map_err(|source| Error::TensorRefused {
            file: origin.to_string(),
            tensor: key,
            source: Box::new(source),
        })?;
        used += 1;
    }
    let training = st
        .names()
        .iter()
        .filter(|n| n.starts_with(TRAINING_PREFIX))
        .count();
    if st.len() != used + training {
        let known: std::collections::HashSet<String> = expected
            .iter()
            .map(|(l, n, _)| format!("{l}.{n}"))
            .collect();
        let tensors: Vec<String> = st
            .names()
            .into_iter()
            .filter(|n| !known.contains(*n) && !n.starts_with(TRAINING_PREFIX))
            .map(|n| n.to_string())
            .collect();
        return Err(Error::UnusedTensors {
            file: origin.to_string(),
            tensors,
        });
    }
    Ok(network)
}
