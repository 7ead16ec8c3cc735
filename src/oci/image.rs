//! Images and indexes as values, as go-containerregistry's `v1.Image` and `mutate.Append`
//! (`pkg/v1/mutate/mutate.go`) have them: an [`Image`] is a manifest, a config and layers,
//! each layer a descriptor with where its bytes are ([`Blob`]: in a registry, a file here,
//! or bytes); [`Image::append`] gives a new image with layers and a config change on top;
//! an [`Index`] joins the images of several platforms. Nothing here sends or writes a byte:
//! the publishers ([`crate::publish`]) do, and the digest an image has here is the one a
//! registry or a layout gives it (the sha256 of [`Image::manifest_bytes`]).
//!
//! ```
//! use imagespec::oci::image::{Blob, History, Image, NewLayer};
//! use imagespec::oci::Digest;
//! let base = Image::scratch(serde_json::json!({"architecture": "amd64", "os": "linux"}));
//! let layer = NewLayer {
//!     digest: Digest::of_bytes(b"gzip"),
//!     diff_id: Digest::of_bytes(b"tar"),
//!     size: 4,
//!     blob: Blob::Bytes(bytes::Bytes::from_static(b"gzip")),
//!     history: History::new("COPY . /root", "imagespec"),
//! };
//! let image = base.append(vec![layer], |config| config["config"] = serde_json::json!({"User": "flytekit"}), &[]);
//! assert_eq!(image.layers().len(), 1);
//! assert_eq!(image.config()["rootfs"]["diff_ids"][0], Digest::of_bytes(b"tar").as_str());
//! assert_eq!(image.digest(), Digest::of_bytes(&image.manifest_bytes()));
//! ```

pub mod artifact;

use super::digest::{Digest, DigestError};
use super::platform::Platform;
use super::reference::ImageRef;
use crate::scratch::ScratchFile;
use bytes::Bytes;
use oci_client::manifest::{
    IMAGE_CONFIG_MEDIA_TYPE, IMAGE_DOCKER_LAYER_GZIP_MEDIA_TYPE, IMAGE_LAYER_GZIP_MEDIA_TYPE,
    IMAGE_MANIFEST_LIST_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE, OCI_IMAGE_INDEX_MEDIA_TYPE,
    OCI_IMAGE_MEDIA_TYPE, OciDescriptor, OciImageManifest,
};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// Where a blob's bytes are.
#[derive(Clone)]
pub enum Blob {
    /// In a registry, in the repository of this image (`registry/repository[:tag]`): a
    /// publisher to the same repository has it, one to the same registry mounts it, others
    /// copy it from there.
    Remote(ImageRef),
    /// A file on this machine, removed when the last image holding it is dropped.
    File(Arc<ScratchFile>),
    /// Bytes in memory.
    Bytes(Bytes),
}

impl Blob {
    /// A written file (a layer), held by the image from now on.
    pub fn file(file: ScratchFile) -> Blob {
        Blob::File(Arc::new(file))
    }

    /// The file, for a blob that is one.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Blob::File(f) => Some(f.path()),
            _ => None,
        }
    }
}

impl std::fmt::Debug for Blob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Blob::Remote(image) => write!(f, "Remote({image})"),
            Blob::File(file) => write!(f, "File({})", file.path().display()),
            Blob::Bytes(b) => write!(f, "Bytes({} bytes)", b.len()),
        }
    }
}

/// A content descriptor, its digest typed (a registry's text parsed once, here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    pub urls: Option<Vec<String>>,
    pub annotations: Option<BTreeMap<String, String>>,
    pub artifact_type: Option<String>,
}

impl Descriptor {
    /// A descriptor with only a media type, a digest and a size.
    pub fn new(media_type: &str, digest: Digest, size: u64) -> Descriptor {
        Descriptor {
            media_type: media_type.to_string(),
            digest,
            size,
            urls: None,
            annotations: None,
            artifact_type: None,
        }
    }

    /// oci-client's descriptor, its digest checked (a negative size counts as 0: checked
    /// manifests have none).
    pub fn from_oci(d: &OciDescriptor) -> Result<Descriptor, DigestError> {
        Ok(Descriptor {
            media_type: d.media_type.clone(),
            digest: Digest::parse(&d.digest)?,
            size: u64::try_from(d.size).unwrap_or(0),
            urls: d.urls.clone(),
            annotations: d.annotations.clone(),
            artifact_type: d.artifact_type.clone(),
        })
    }

    /// As oci-client (and the manifest's JSON) has it.
    pub fn to_oci(&self) -> OciDescriptor {
        OciDescriptor {
            media_type: self.media_type.clone(),
            digest: self.digest.to_string(),
            size: i64::try_from(self.size).unwrap_or(i64::MAX),
            urls: self.urls.clone(),
            annotations: self.annotations.clone(),
            artifact_type: self.artifact_type.clone(),
        }
    }
}

/// A layer of an image: as the manifest lists it, and where its bytes are.
#[derive(Debug, Clone)]
pub struct Layer {
    pub descriptor: Descriptor,
    pub blob: Blob,
}

/// A config `history` entry (`created` is the config's own `created`, so the same inputs
/// give the same config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct History {
    pub created_by: String,
    pub comment: String,
}

impl History {
    pub fn new(created_by: &str, comment: &str) -> History {
        History {
            created_by: created_by.to_string(),
            comment: comment.to_string(),
        }
    }

    fn to_json(&self, created: &Value, empty_layer: bool) -> Value {
        let mut entry = json!({
            "created": created,
            "created_by": self.created_by,
            "comment": self.comment,
        });
        if empty_layer {
            entry["empty_layer"] = json!(true);
        }
        entry
    }
}

/// A gzip'd tar layer to append ([`Image::append`]).
#[derive(Debug, Clone)]
pub struct NewLayer {
    /// Of the gzip'd tar (the blob).
    pub digest: Digest,
    /// Of the uncompressed tar (the config's `rootfs.diff_ids`).
    pub diff_id: Digest,
    pub size: u64,
    pub blob: Blob,
    pub history: History,
}

/// Why parts read from elsewhere do not make an image.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{at}: {source}")]
    Digest {
        at: String,
        #[source]
        source: DigestError,
    },
    #[error("the config is {found}, not the {expected} its descriptor names")]
    ConfigMismatch { expected: Digest, found: Digest },
    #[error("the config is not a JSON object: {0}")]
    Config(String),
}

/// An image: manifest, config and layers. Cloning is cheap enough (layer files are shared).
#[derive(Debug, Clone)]
pub struct Image {
    /// The manifest's fields other than `config` and `layers` (kept as the base has them:
    /// media type, annotations, subject).
    manifest: OciImageManifest,
    config_descriptor: Descriptor,
    config: Bytes,
    layers: Vec<Layer>,
}

impl Image {
    /// The image `manifest` describes, with `config` (its bytes, checked against the
    /// manifest's descriptor) and every layer's blob in `blobs_in` (a registry's
    /// `registry/repository[:tag]`).
    pub fn from_registry(
        manifest: &OciImageManifest,
        config: Bytes,
        blobs_in: &ImageRef,
    ) -> Result<Image, ImageError> {
        let at = |what: String| move |source| ImageError::Digest { at: what, source };
        let config_descriptor =
            Descriptor::from_oci(&manifest.config).map_err(at("the config".into()))?;
        let found = Digest::of_bytes(&config);
        if found != config_descriptor.digest {
            return Err(ImageError::ConfigMismatch {
                expected: config_descriptor.digest,
                found,
            });
        }
        serde_json::from_slice::<serde_json::Map<String, Value>>(&config)
            .map_err(|e| ImageError::Config(e.to_string()))?;
        let layers = manifest
            .layers
            .iter()
            .enumerate()
            .map(|(i, d)| {
                Ok(Layer {
                    descriptor: Descriptor::from_oci(d).map_err(at(format!("layer {i}")))?,
                    blob: Blob::Remote(blobs_in.clone()),
                })
            })
            .collect::<Result<_, ImageError>>()?;
        let mut template = manifest.clone();
        template.layers.clear();
        Ok(Image {
            manifest: template,
            config_descriptor,
            config,
            layers,
        })
    }

    /// The same image once pushed to `at` (`registry/repository[:tag]`): every layer's blob
    /// is in that repository now, so the image is appended to and published from there, and
    /// the files the layers were written to are let go.
    pub fn pushed_to(&self, at: &ImageRef) -> Image {
        let layers = self
            .layers
            .iter()
            .map(|l| Layer {
                descriptor: l.descriptor.clone(),
                blob: Blob::Remote(at.clone()),
            })
            .collect();
        Image {
            layers,
            ..self.clone()
        }
    }

    /// An image of no layers with `config` (an OCI manifest), to append to.
    pub fn scratch(config: Value) -> Image {
        let bytes = Bytes::from(serde_json::to_vec(&config).expect("a JSON value serialises"));
        let config_descriptor = Descriptor::new(
            IMAGE_CONFIG_MEDIA_TYPE,
            Digest::of_bytes(&bytes),
            bytes.len() as u64,
        );
        Image {
            manifest: OciImageManifest {
                media_type: Some(OCI_IMAGE_MEDIA_TYPE.to_string()),
                ..Default::default()
            },
            config_descriptor,
            config: bytes,
            layers: Vec::new(),
        }
    }

    /// The manifest's media type (an OCI manifest when it names none).
    pub fn media_type(&self) -> &str {
        self.manifest
            .media_type
            .as_deref()
            .unwrap_or(OCI_IMAGE_MEDIA_TYPE)
    }

    /// Whether the manifest is Docker's schema 2 (its layers then get Docker's types).
    pub fn is_docker(&self) -> bool {
        self.manifest.media_type.as_deref() == Some(IMAGE_MANIFEST_MEDIA_TYPE)
    }

    /// The manifest.
    pub fn manifest(&self) -> OciImageManifest {
        let mut manifest = self.manifest.clone();
        manifest.config = self.config_descriptor.to_oci();
        manifest.layers = self.layers.iter().map(|l| l.descriptor.to_oci()).collect();
        manifest
    }

    /// The manifest as pushed or written.
    pub fn manifest_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&self.manifest()).expect("a manifest serialises")
    }

    /// The manifest's digest: what a registry or a layout names the image by.
    pub fn digest(&self) -> Digest {
        Digest::of_bytes(&self.manifest_bytes())
    }

    /// The manifest's descriptor (for an index).
    pub fn descriptor(&self) -> Descriptor {
        let bytes = self.manifest_bytes();
        Descriptor::new(
            self.media_type(),
            Digest::of_bytes(&bytes),
            bytes.len() as u64,
        )
    }

    /// The config's descriptor.
    pub fn config_descriptor(&self) -> &Descriptor {
        &self.config_descriptor
    }

    /// The config as pushed or written.
    pub fn config_bytes(&self) -> &Bytes {
        &self.config
    }

    /// The config.
    pub fn config(&self) -> Value {
        serde_json::from_slice(&self.config).expect("an image's config is JSON")
    }

    /// The layers, base first.
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    /// The same image without the manifest's annotations (what a base's manifest says of
    /// itself, which an image built on it does not inherit).
    pub fn without_annotations(mut self) -> Image {
        self.manifest.annotations = None;
        self
    }

    /// This image with `layers` on top, as go-containerregistry's `mutate.Append`: the
    /// config changed by `edit` first (its `config` object, `created`…), then each layer's
    /// `diff_id` appended to `rootfs.diff_ids` and its history entry to `history`, then
    /// `empty_layers` (steps that made no layer: `ENV`, `USER`…). Layers get the gzip'd
    /// tar type of the manifest's kind; the base's layers and fields are kept.
    pub fn append(
        &self,
        layers: Vec<NewLayer>,
        edit: impl FnOnce(&mut Value),
        empty_layers: &[History],
    ) -> Image {
        let mut config = self.config();
        edit(&mut config);
        if !config.is_object() {
            config = json!({});
        }
        let created = config.get("created").cloned().unwrap_or(Value::Null);
        let root = config.as_object_mut().expect("made an object");
        let rootfs = root
            .entry("rootfs")
            .or_insert_with(|| json!({"type": "layers", "diff_ids": []}));
        if let Some(ids) = rootfs.get_mut("diff_ids").and_then(Value::as_array_mut) {
            ids.extend(layers.iter().map(|l| json!(l.diff_id.as_str())));
        }
        let history = root.entry("history").or_insert_with(|| json!([]));
        if let Some(h) = history.as_array_mut() {
            h.extend(layers.iter().map(|l| l.history.to_json(&created, false)));
            h.extend(empty_layers.iter().map(|e| e.to_json(&created, true)));
        }
        let bytes = Bytes::from(serde_json::to_vec(&config).expect("a JSON value serialises"));
        let media_type = if self.is_docker() {
            IMAGE_DOCKER_LAYER_GZIP_MEDIA_TYPE
        } else {
            IMAGE_LAYER_GZIP_MEDIA_TYPE
        };
        let mut image = self.clone();
        image.config_descriptor = Descriptor::new(
            &self.config_descriptor.media_type,
            Digest::of_bytes(&bytes),
            bytes.len() as u64,
        );
        image.config = bytes;
        image.layers.extend(layers.into_iter().map(|l| Layer {
            descriptor: Descriptor::new(media_type, l.digest, l.size),
            blob: l.blob,
        }));
        image
    }
}

/// One platform's manifest in an [`Index`]: the image, when it is to be published with
/// the index, else only its descriptor (a manifest in the registry already).
#[derive(Debug, Clone)]
pub struct IndexEntry {
    /// The platform of the manifest.
    pub platform: Platform,
    pub descriptor: Descriptor,
    pub image: Option<Image>,
}

/// The image index that joins several platforms' images, in the order given: a Docker
/// manifest list when every manifest is Docker's schema 2 (what dockerd pushes), else an
/// OCI image index, as buildx writes them. The same entries give the same bytes.
#[derive(Debug, Clone, Default)]
pub struct Index {
    pub manifests: Vec<IndexEntry>,
    /// The index's own annotations (what holds for every platform's image, such as its
    /// record of inputs), written when there are any; readers that do not know a key
    /// ignore it, also in a Docker manifest list.
    pub annotations: BTreeMap<String, String>,
}

impl Index {
    /// The index of `images` (platform, image).
    pub fn of_images(images: impl IntoIterator<Item = (Platform, Image)>) -> Index {
        Index {
            manifests: images
                .into_iter()
                .map(|(platform, image)| IndexEntry {
                    platform,
                    descriptor: image.descriptor(),
                    image: Some(image),
                })
                .collect(),
            annotations: BTreeMap::new(),
        }
    }

    /// Adds a platform's manifest that is in the registry already.
    pub fn push_descriptor(&mut self, platform: &Platform, descriptor: Descriptor) {
        self.manifests.push(IndexEntry {
            platform: platform.clone(),
            descriptor,
            image: None,
        });
    }

    /// A Docker manifest list, or an OCI image index.
    pub fn media_type(&self) -> &'static str {
        let docker = self
            .manifests
            .iter()
            .all(|e| e.descriptor.media_type == IMAGE_MANIFEST_MEDIA_TYPE);
        if docker {
            IMAGE_MANIFEST_LIST_MEDIA_TYPE
        } else {
            OCI_IMAGE_INDEX_MEDIA_TYPE
        }
    }

    /// The index as pushed or written.
    pub fn to_bytes(&self) -> Vec<u8> {
        let manifests: Vec<Value> = self
            .manifests
            .iter()
            .map(|e| {
                let mut p = json!({
                    "os": e.platform.os(),
                    "architecture": e.platform.architecture(),
                });
                if let Some(variant) = e.platform.variant() {
                    p["variant"] = json!(variant);
                }
                let d = &e.descriptor;
                json!({"mediaType": d.media_type, "digest": d.digest.as_str(), "size": d.size, "platform": p})
            })
            .collect();
        let mut index =
            json!({"schemaVersion": 2, "mediaType": self.media_type(), "manifests": manifests});
        if !self.annotations.is_empty() {
            index["annotations"] = json!(self.annotations);
        }
        serde_json::to_vec(&index).expect("an index serialises")
    }

    /// The index's digest.
    pub fn digest(&self) -> Digest {
        Digest::of_bytes(&self.to_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(s: &str) -> Digest {
        Digest::of_bytes(s.as_bytes())
    }

    fn base(media_type: &str) -> Image {
        let config = json!({
            "created": "2026-01-01T00:00:00Z",
            "architecture": "amd64",
            "os": "linux",
            "config": {"Env": ["PATH=/bin"]},
            "rootfs": {"type": "layers", "diff_ids": [digest("tar1").as_str()]},
            "history": [{"created": "2026-01-01T00:00:00Z", "created_by": "base"}],
        });
        let bytes = Bytes::from(serde_json::to_vec(&config).unwrap());
        let manifest = OciImageManifest {
            media_type: Some(media_type.to_string()),
            config: Descriptor::new("cfg/type", Digest::of_bytes(&bytes), bytes.len() as u64)
                .to_oci(),
            layers: vec![Descriptor::new("base/layer", digest("gz1"), 10).to_oci()],
            annotations: Some([("a".to_string(), "b".to_string())].into()),
            ..Default::default()
        };
        Image::from_registry(&manifest, bytes, &"localhost:5000/base:1".parse().unwrap()).unwrap()
    }

    fn new_layer(name: &str) -> NewLayer {
        NewLayer {
            digest: digest(&format!("gz-{name}")),
            diff_id: digest(&format!("tar-{name}")),
            size: 7,
            blob: Blob::Bytes(Bytes::from(name.to_string())),
            history: History::new(&format!("RUN {name}"), "test"),
        }
    }

    #[test]
    fn an_image_read_from_a_registry_serialises_as_it_was() {
        let image = base(OCI_IMAGE_MEDIA_TYPE);
        let manifest = image.manifest();
        assert_eq!(manifest.layers[0].media_type, "base/layer");
        assert_eq!(
            manifest.config.digest,
            image.config_descriptor().digest.as_str()
        );
        assert!(
            matches!(&image.layers()[0].blob, Blob::Remote(i) if i.to_string() == "localhost:5000/base:1")
        );
        let bytes = image.manifest_bytes();
        assert_eq!(image.digest(), Digest::of_bytes(&bytes));
        assert_eq!(image.descriptor().size, bytes.len() as u64);
    }

    #[test]
    fn parts_that_do_not_match_are_refused() {
        let image = base(OCI_IMAGE_MEDIA_TYPE);
        let mut manifest = image.manifest();
        let other = Bytes::from_static(b"{}");
        assert!(matches!(
            Image::from_registry(&manifest, other, &"x".parse().unwrap()),
            Err(ImageError::ConfigMismatch { .. })
        ));
        manifest.layers[0].digest = "sha256:../../etc/passwd".into();
        let config = image.config_bytes().clone();
        assert!(matches!(
            Image::from_registry(&manifest, config, &"x".parse().unwrap()),
            Err(ImageError::Digest { at, .. }) if at == "layer 0"
        ));
    }

    #[test]
    fn appending_keeps_the_base_layers_and_diff_ids_in_order() {
        let base = base(OCI_IMAGE_MEDIA_TYPE);
        let image = base.append(vec![new_layer("a"), new_layer("b")], |_| {}, &[]);
        let digests: Vec<&str> = image
            .layers()
            .iter()
            .map(|l| l.descriptor.digest.as_str())
            .collect();
        assert_eq!(
            digests,
            [digest("gz1"), digest("gz-a"), digest("gz-b")].map(|d| d.as_str().to_string())
        );
        assert_eq!(
            image.config()["rootfs"]["diff_ids"],
            json!([
                digest("tar1").as_str(),
                digest("tar-a").as_str(),
                digest("tar-b").as_str()
            ])
        );
        assert_eq!(
            image.layers()[1].descriptor.media_type,
            IMAGE_LAYER_GZIP_MEDIA_TYPE
        );
        assert_eq!(image.layers()[0].descriptor.media_type, "base/layer");
        assert_eq!(base.layers().len(), 1, "the base is a value, unchanged");
        let docker = base_docker().append(vec![new_layer("a")], |_| {}, &[]);
        assert_eq!(
            docker.layers()[1].descriptor.media_type,
            IMAGE_DOCKER_LAYER_GZIP_MEDIA_TYPE
        );
    }

    fn base_docker() -> Image {
        base(IMAGE_MANIFEST_MEDIA_TYPE)
    }

    #[test]
    fn a_pushed_image_is_the_same_image_with_its_layers_in_the_registry() {
        let made = base(OCI_IMAGE_MEDIA_TYPE).append(vec![new_layer("a")], |_| {}, &[]);
        let at: ImageRef = "localhost:5000/app:deps-1".parse().unwrap();
        let pushed = made.pushed_to(&at);
        assert_eq!(pushed.digest(), made.digest());
        assert_eq!(pushed.config_bytes(), made.config_bytes());
        assert!(matches!(&made.layers()[1].blob, Blob::Bytes(_)));
        assert!(
            pushed
                .layers()
                .iter()
                .all(|l| matches!(&l.blob, Blob::Remote(i) if *i == at)),
            "{:?}",
            pushed.layers()
        );
    }

    #[test]
    fn the_config_edit_comes_first_and_history_follows_the_layers() {
        let image = base(OCI_IMAGE_MEDIA_TYPE).append(
            vec![new_layer("a")],
            |c| c["config"]["User"] = json!("flytekit"),
            &[History::new("ENV X=1", "test")],
        );
        let config = image.config();
        assert_eq!(config["config"]["User"], "flytekit");
        assert_eq!(config["config"]["Env"], json!(["PATH=/bin"]));
        let history = config["history"].as_array().unwrap();
        assert_eq!(history.len(), 3);
        assert_eq!(
            history[1],
            json!({"created": "2026-01-01T00:00:00Z", "created_by": "RUN a", "comment": "test"})
        );
        assert_eq!(history[2]["empty_layer"], true);
        assert_eq!(history[2]["created_by"], "ENV X=1");
        // Key order is the base's (serde_json keeps it): the same inputs, the same bytes.
        let keys: Vec<&String> = config.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "created",
                "architecture",
                "os",
                "config",
                "rootfs",
                "history"
            ]
        );
    }

    #[test]
    fn the_manifest_names_the_new_config_and_keeps_the_base_fields() {
        let base = base(OCI_IMAGE_MEDIA_TYPE);
        let image = base.append(vec![new_layer("a")], |_| {}, &[]);
        let manifest = image.manifest();
        assert_eq!(
            manifest.config.digest,
            Digest::of_bytes(image.config_bytes()).as_str()
        );
        assert_eq!(manifest.config.size as usize, image.config_bytes().len());
        assert_eq!(manifest.config.media_type, "cfg/type");
        assert!(manifest.annotations.is_some());
        assert!(image.without_annotations().manifest().annotations.is_none());
        assert_eq!(
            base.digest(),
            base.append(vec![], |_| {}, &[]).digest(),
            "appending nothing changes nothing"
        );
    }

    #[test]
    fn the_same_inputs_give_the_same_digest() {
        let one = base(OCI_IMAGE_MEDIA_TYPE).append(vec![new_layer("a")], |_| {}, &[]);
        let two = base(OCI_IMAGE_MEDIA_TYPE).append(vec![new_layer("a")], |_| {}, &[]);
        assert_eq!(one.digest(), two.digest());
        assert_eq!(one.manifest_bytes(), two.manifest_bytes());
    }

    #[test]
    fn an_index_is_a_manifest_list_only_of_docker_manifests() {
        let platform = |p: &str| Platform::parse(p).unwrap();
        let oci = base(OCI_IMAGE_MEDIA_TYPE);
        let docker = base_docker();
        let index = Index::of_images([
            (platform("linux/amd64"), docker.clone()),
            (platform("linux/arm/v7"), docker.clone()),
        ]);
        assert_eq!(index.media_type(), IMAGE_MANIFEST_LIST_MEDIA_TYPE);
        let body: Value = serde_json::from_slice(&index.to_bytes()).unwrap();
        assert_eq!(body["manifests"][0]["digest"], docker.digest().as_str());
        assert_eq!(
            body["manifests"][1]["platform"],
            json!({"os": "linux", "architecture": "arm", "variant": "v7"})
        );
        assert_eq!(index.digest(), Digest::of_bytes(&index.to_bytes()));
        let mut mixed = Index::of_images([(platform("linux/amd64"), docker)]);
        mixed.push_descriptor(&platform("linux/arm64"), oci.descriptor());
        assert_eq!(mixed.media_type(), OCI_IMAGE_INDEX_MEDIA_TYPE);
        assert!(mixed.manifests[1].image.is_none());
    }

    #[test]
    fn an_index_writes_its_annotations_only_when_it_has_some() {
        let index = Index::of_images([(Platform::parse("linux/amd64").unwrap(), base_docker())]);
        let body: Value = serde_json::from_slice(&index.to_bytes()).unwrap();
        assert!(body.get("annotations").is_none());
        let mut annotated = index.clone();
        annotated.annotations.insert("k".into(), "v".into());
        let body: Value = serde_json::from_slice(&annotated.to_bytes()).unwrap();
        assert_eq!(body["annotations"], json!({"k": "v"}));
        assert_ne!(annotated.digest(), index.digest());
    }
}
