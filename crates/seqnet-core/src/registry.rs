//! The open layer set: [`Layer`], one layer of a graph whatever its type, and
//! the registry of layer types that graph JSON and model files can name.
//!
//! Built-in layers are registered exactly as a user's layers are, with
//! [`register_layer`]; the registry is filled with them on first use.

use crate::error::{Error, Result};
use crate::layer::{LayerDef, LayerType};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::any::{Any, TypeId};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::{OnceLock, RwLock};

/// What the registry keeps of a layer type.
#[derive(Clone, Copy)]
pub(crate) struct Entry {
    type_id: TypeId,
    rust_name: &'static str,
    from_json: fn(serde_json::Value) -> serde_json::Result<Layer>,
}

fn registry() -> &'static RwLock<BTreeMap<&'static str, Entry>> {
    static REGISTRY: OnceLock<RwLock<BTreeMap<&'static str, Entry>>> = OnceLock::new();
    REGISTRY.get_or_init(|| RwLock::new(crate::layers::builtins().into_iter().collect()))
}

/// The registry entry of `T`, under its tag (built-in layers fill the
/// registry with these; [`register_layer`] adds one).
pub(crate) fn entry_of<T: LayerType>() -> (&'static str, Entry) {
    let entry = Entry {
        type_id: TypeId::of::<T>(),
        rust_name: std::any::type_name::<T>(),
        from_json: |v| serde_json::from_value::<T>(v).map(Layer::new),
    };
    (T::TYPE, entry)
}

/// Registers layer type `T` under its tag [`LayerType::TYPE`], so that graph
/// JSON and model files naming that tag load as `T`. Registering the same type
/// again does nothing; a tag already taken by another type is an error naming both.
pub fn register_layer<T: LayerType>() -> Result<()> {
    let mut map = registry().write().unwrap_or_else(|e| e.into_inner());
    match map.get(T::TYPE) {
        Some(e) if e.type_id == TypeId::of::<T>() => Ok(()),
        Some(e) => Err(Error::LayerTypeTaken {
            tag: T::TYPE.to_string(),
            registered: e.rust_name.to_string(),
            new: std::any::type_name::<T>().to_string(),
        }),
        None => {
            let (tag, entry) = entry_of::<T>();
            map.insert(tag, entry);
            Ok(())
        }
    }
}

/// The tags of every registered layer type, sorted.
pub fn registered_types() -> Vec<&'static str> {
    let map = registry().read().unwrap_or_else(|e| e.into_inner());
    map.keys().copied().collect()
}

/// Whether `tag` is registered to the Rust type with id `type_id`.
fn registered_as(tag: &str, type_id: TypeId) -> bool {
    let map = registry().read().unwrap_or_else(|e| e.into_inner());
    map.get(tag).is_some_and(|e| e.type_id == type_id)
}

/// The object-safe face of a [`LayerType`], implemented for every one.
trait DynLayer: LayerDef {
    fn clone_box(&self) -> Box<dyn DynLayer>;
    fn eq_dyn(&self, other: &dyn DynLayer) -> bool;
    fn to_json(&self) -> serde_json::Result<serde_json::Value>;
    fn tag(&self) -> &'static str;
    fn as_any(&self) -> &dyn Any;
    fn as_any_mut(&mut self) -> &mut dyn Any;
    fn as_def(&self) -> &dyn LayerDef;
}

impl<T: LayerType> DynLayer for T {
    fn clone_box(&self) -> Box<dyn DynLayer> {
        Box::new(self.clone())
    }
    fn eq_dyn(&self, other: &dyn DynLayer) -> bool {
        other.as_any().downcast_ref::<T>() == Some(self)
    }
    fn to_json(&self) -> serde_json::Result<serde_json::Value> {
        serde_json::to_value(self)
    }
    fn tag(&self) -> &'static str {
        T::TYPE
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
    fn as_def(&self) -> &dyn LayerDef {
        self
    }
}

/// One layer of a layer array or graph: its type and settings, not its
/// weights. Any [`LayerType`] converts into it (`Lstm::new(100).into()`).
///
/// Serialised as the settings' JSON object with a `"type"` tag first, e.g.
/// `{"type": "lstm", "name": "lstm", "numHiddenUnits": 100}`.
pub struct Layer(Box<dyn DynLayer>);

impl Layer {
    /// Wraps a layer's settings.
    pub fn new<T: LayerType>(layer: T) -> Self {
        Layer(Box::new(layer))
    }

    /// The layer's definition: shape inference, ports, kernel building.
    pub fn def(&self) -> &dyn LayerDef {
        self.0.as_def()
    }

    /// The layer's name.
    pub fn name(&self) -> &str {
        self.0.name()
    }

    /// Sets the layer's name.
    pub fn set_name(&mut self, name: impl Into<String>) {
        self.0.set_name(name.into());
    }

    /// The JSON tag of the layer's type (e.g. `"lstm"`), also the stem of auto-names.
    pub fn tag(&self) -> &'static str {
        self.0.tag()
    }

    /// Whether the layer's type is registered under its tag (so that a saved
    /// graph holding it loads back).
    pub fn is_registered(&self) -> bool {
        registered_as(self.tag(), self.0.as_any().type_id())
    }

    /// The settings as `T`, when the layer is a `T`.
    pub fn downcast_ref<T: LayerType>(&self) -> Option<&T> {
        self.0.as_any().downcast_ref()
    }

    /// The settings as `T`, mutable, when the layer is a `T`.
    pub fn downcast_mut<T: LayerType>(&mut self) -> Option<&mut T> {
        self.0.as_any_mut().downcast_mut()
    }

    /// Whether the layer is a `T`.
    pub fn is<T: LayerType>(&self) -> bool {
        self.downcast_ref::<T>().is_some()
    }
}

impl<T: LayerType> From<T> for Layer {
    fn from(layer: T) -> Self {
        Layer::new(layer)
    }
}

impl Clone for Layer {
    fn clone(&self) -> Self {
        Layer(self.0.clone_box())
    }
}

impl PartialEq for Layer {
    fn eq(&self, other: &Self) -> bool {
        self.0.eq_dyn(other.0.as_ref())
    }
}

impl fmt::Debug for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for Layer {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::Error as _;
        let value = self.0.to_json().map_err(S::Error::custom)?;
        let serde_json::Value::Object(fields) = value else {
            return Err(S::Error::custom(format!(
                "layer '{}': its settings must serialise as a JSON object",
                self.name()
            )));
        };
        let mut tagged = serde_json::Map::new();
        tagged.insert("type".into(), self.tag().into());
        tagged.extend(fields.into_iter().filter(|(k, _)| k != "type"));
        serde_json::Value::Object(tagged).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Layer {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let mut value = serde_json::Value::deserialize(d)?;
        let serde_json::Value::Object(fields) = &mut value else {
            return Err(D::Error::custom("a layer must be a JSON object"));
        };
        let name = fields
            .get("name")
            .and_then(|n| n.as_str())
            .unwrap_or("")
            .to_string();
        let Some(serde_json::Value::String(tag)) = fields.remove("type") else {
            return Err(D::Error::custom(format!(
                "layer '{name}' has no \"type\" (such as \"lstm\")"
            )));
        };
        let entry = {
            let map = registry().read().unwrap_or_else(|e| e.into_inner());
            map.get(tag.as_str()).copied()
        };
        let Some(entry) = entry else {
            return Err(D::Error::custom(
                Error::UnknownLayerType {
                    tag,
                    layer: name,
                    registered: registered_types().join(", "),
                }
                .to_string(),
            ));
        };
        (entry.from_json)(value)
            .map_err(|e| D::Error::custom(format!("layer '{name}' of type '{tag}': {e}")))
    }
}
