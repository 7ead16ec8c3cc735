//! An image read for its SBOM: from a registry (by the digest its publish returned) or from
//! an OCI layout directory (`--output oci:DIR`). Every platform of an index is read; each
//! layer is streamed to a scratch file and read from there ([`super::layers`]), unless its
//! facts are cached already.

use super::layers::{self, LayerFacts};
use super::spdx::Document;
use super::{BaseImage, Contents, Source, Subject};
use crate::oci::image::{Blob, Descriptor};
use crate::oci::manifest::{check_config, check_manifest};
use crate::oci::reference::Repository;
use crate::oci::{Digest, ImageRef, Platform};
use crate::registry::client::{RegistryClient, RegistryError};
use crate::timeouts::Timeouts;
use oci_client::manifest::{OciImageManifest, OciManifest};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Why an image could not be described.
#[derive(Debug, thiserror::Error)]
pub enum SbomError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("reading layer {digest}: {source}")]
    Layer {
        digest: Digest,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}: {message}")]
    Refused { what: String, message: String },
    #[error("{image} not found")]
    NotFound { image: ImageRef },
    #[error("not a spec file, nor an image reference: {0}")]
    Reference(#[source] crate::oci::reference::ReferenceError),
}

/// Where an image's manifests and blobs are.
#[derive(Clone, Copy)]
pub enum Store<'a> {
    /// A registry repository (`registry/repository[:tag]`).
    Registry {
        client: &'a RegistryClient,
        image: &'a ImageRef,
    },
    /// An OCI layout directory.
    Layout(&'a Path),
}

/// How the images of one repository are described: where they are read, the repository
/// the documents name, and what dates them.
#[derive(Clone, Copy)]
pub struct Reading<'a> {
    pub store: Store<'a>,
    pub repository: &'a Repository,
    /// `created`, when set; else the image config's.
    pub source_date_epoch: Option<crate::oci::epoch::SourceDateEpoch>,
    /// For the base image's digest, asked of its registry.
    pub timeouts: Timeouts,
}

/// One platform's image: its manifest's descriptor, the manifest and the config.
#[derive(Debug, Clone)]
pub struct PlatformImage {
    pub platform: Option<Platform>,
    pub descriptor: Descriptor,
    pub manifest: OciImageManifest,
    pub config: Value,
    /// The dependency image it was appended to (the fast path), whose SBOM stands for its
    /// lower layers.
    pub dependency: Option<Dependency>,
    /// Layers on this machine (just written): read here, not from the store.
    pub local: Vec<(Digest, Blob)>,
}

/// The dependency image an image was appended to: its first `layers` layers are its.
#[derive(Debug, Clone)]
pub struct Dependency {
    /// `<repository>:deps-<key>`.
    pub image: ImageRef,
    /// Its platform manifest.
    pub descriptor: Descriptor,
    pub layers: usize,
    /// Made by this run (it has no SBOM attached yet): its document is made here, of its
    /// layers' findings, and attached to it, without asking the registry for one.
    pub made_now: bool,
}

/// The document of one platform image, and the document of its dependency image when
/// that was read from its layers now (it had none attached): attaching that too lets the
/// next fast path on any machine read no base layer.
#[derive(Debug, Clone)]
pub struct Described {
    pub image: PlatformImage,
    /// What the document says (the provenance is made of it too).
    pub contents: Contents,
    pub document: Document,
    pub dependency: Option<(Dependency, Document)>,
}

fn refused(what: impl std::fmt::Display, message: impl std::fmt::Display) -> SbomError {
    SbomError::Refused {
        what: what.to_string(),
        message: message.to_string(),
    }
}

impl Store<'_> {
    fn blob_path(dir: &Path, digest: &Digest) -> PathBuf {
        dir.join("blobs")
            .join(digest.algorithm().as_str())
            .join(digest.hex())
    }

    /// The manifest `digest` names, its bytes and media type.
    async fn manifest(&self, digest: &Digest) -> Result<(OciManifest, Descriptor), SbomError> {
        let (bytes, manifest) = match self {
            Store::Registry { client, image } => {
                let raw = client.manifest_by_digest(image, digest.as_str()).await?;
                (raw.bytes.to_vec(), raw.manifest)
            }
            Store::Layout(dir) => {
                let path = Self::blob_path(dir, digest);
                let bytes = std::fs::read(&path).map_err(|source| SbomError::Io {
                    path: path.clone(),
                    source,
                })?;
                if Digest::of_bytes(&bytes) != *digest {
                    return Err(refused(path.display(), "its content is not its digest"));
                }
                let manifest = check_manifest(&bytes, None).map_err(|e| refused(digest, e))?;
                (bytes, manifest)
            }
        };
        let media_type = match &manifest {
            OciManifest::Image(m) => m.media_type.clone(),
            OciManifest::ImageIndex(i) => i.media_type.clone(),
        };
        let media_type = media_type.unwrap_or_else(|| match &manifest {
            OciManifest::Image(_) => oci_client::manifest::OCI_IMAGE_MEDIA_TYPE.into(),
            OciManifest::ImageIndex(_) => oci_client::manifest::OCI_IMAGE_INDEX_MEDIA_TYPE.into(),
        });
        let descriptor = Descriptor::new(&media_type, digest.clone(), bytes.len() as u64);
        Ok((manifest, descriptor))
    }

    async fn config(&self, manifest: &OciImageManifest) -> Result<Value, SbomError> {
        match self {
            Store::Registry { client, image } => Ok(client.config(image, manifest).await?),
            Store::Layout(dir) => {
                let digest =
                    Digest::parse(&manifest.config.digest).map_err(|e| refused("the config", e))?;
                let path = Self::blob_path(dir, &digest);
                let bytes =
                    std::fs::read(&path).map_err(|source| SbomError::Io { path, source })?;
                check_config(&bytes).map_err(|e| refused("the config", e))
            }
        }
    }

    /// The facts of the layer `layer`: cached, else read from `local` (its bytes on this
    /// machine) or its blob in the store.
    async fn layer_facts(
        &self,
        layer: &Descriptor,
        local: Option<&Blob>,
    ) -> Result<LayerFacts, SbomError> {
        let digest = &layer.digest;
        if let Some(facts) = layers::cached(digest.hex()) {
            return Ok(facts);
        }
        if let Some(Blob::Bytes(bytes)) = local {
            let facts = layers::read_layer(&bytes[..]).map_err(|source| SbomError::Layer {
                digest: digest.clone(),
                source,
            })?;
            layers::remember(digest.hex(), &facts);
            return Ok(facts);
        }
        let scratch;
        let path = match (self, local.and_then(Blob::path)) {
            (_, Some(path)) => path.to_path_buf(),
            (Store::Layout(dir), None) => Self::blob_path(dir, digest),
            (Store::Registry { client, image }, None) => {
                scratch = tempfile::tempdir().map_err(|source| SbomError::Layer {
                    digest: digest.clone(),
                    source,
                })?;
                let path = scratch.path().join(digest.hex());
                client
                    .blob_to_file(image, digest.as_str(), Some(layer.size), &path, None)
                    .await?;
                path
            }
        };
        let read =
            tokio::task::spawn_blocking(move || layers::read_layer(std::fs::File::open(path)?));
        let facts = read
            .await
            .map_err(std::io::Error::other)
            .and_then(|r| r)
            .map_err(|source| SbomError::Layer {
                digest: digest.clone(),
                source,
            })?;
        layers::remember(digest.hex(), &facts);
        Ok(facts)
    }
}

/// The platform images of the manifest `digest` names: itself, or each entry of an index
/// (attestations and other `unknown/unknown` entries left out).
pub async fn platform_images(
    store: Store<'_>,
    digest: &Digest,
) -> Result<Vec<PlatformImage>, SbomError> {
    let (manifest, descriptor) = store.manifest(digest).await?;
    let index = match manifest {
        OciManifest::Image(manifest) => {
            return Ok(vec![read(store, None, manifest, descriptor).await?]);
        }
        OciManifest::ImageIndex(index) => index,
    };
    let mut images = Vec::new();
    for entry in &index.manifests {
        let platform = entry.platform.as_ref().map(|p| {
            let mut s = format!("{}/{}", p.os, p.architecture);
            if let Some(v) = &p.variant {
                s.push('/');
                s.push_str(v);
            }
            s
        });
        if platform.as_deref().is_some_and(|p| p.contains("unknown")) {
            continue;
        }
        // An entry's platform is the registry's input: one that is not a platform is unknown.
        let platform = platform.and_then(|p| Platform::parse(&p).ok());
        let digest = Digest::parse(&entry.digest).map_err(|e| refused("an index entry", e))?;
        let (manifest, descriptor) = store.manifest(&digest).await?;
        let OciManifest::Image(manifest) = manifest else {
            return Err(refused(&digest, "an index inside an index"));
        };
        images.push(read(store, platform, manifest, descriptor).await?);
    }
    Ok(images)
}

/// The platform image `manifest` describes, its config read from `store` (its platform
/// the config's when the index named none).
async fn read(
    store: Store<'_>,
    platform: Option<Platform>,
    manifest: OciImageManifest,
    descriptor: Descriptor,
) -> Result<PlatformImage, SbomError> {
    let config = store.config(&manifest).await?;
    Ok(PlatformImage {
        platform: platform.or_else(|| config_platform(&config)),
        descriptor,
        manifest,
        config,
        dependency: None,
        local: Vec::new(),
    })
}

/// The findings of each layer of `image`, lowest first: the layers its dependency image
/// has come from that image's attached SBOM (one entry for all of them) when this machine
/// has not read them all before; the others are read (cached, local or from `store`), all
/// at once.
/// With them, what the dependency image's document said of its base; and whether the
/// dependency image's layers were read here (so it had no SBOM to reuse).
async fn layer_findings(
    store: Store<'_>,
    image: &PlatformImage,
) -> Result<(Vec<LayerFacts>, Option<BaseImage>, bool), SbomError> {
    let descriptors = layer_descriptors(image)?;
    let mut facts = Vec::new();
    let (mut skip, mut base, mut read_dependency) = (0, None, false);
    if let Some(dep) = image
        .dependency
        .as_ref()
        .filter(|d| d.layers <= descriptors.len())
    {
        let lower = &descriptors[..dep.layers];
        let cached = lower
            .iter()
            .all(|d| layers::cached(d.digest.hex()).is_some());
        let kept = super::reuse::kept(&dep.descriptor.digest);
        match (kept, cached, store) {
            (Some(reused), _, _) => {
                facts.push(reused.facts);
                (skip, base) = (dep.layers, reused.base);
            }
            (None, _, _) if dep.made_now => read_dependency = true,
            (None, false, Store::Registry { client, .. }) => {
                if let Some(reused) = dependency_sbom(client, dep).await? {
                    facts.push(reused.facts);
                    (skip, base) = (dep.layers, reused.base);
                } else {
                    read_dependency = true;
                }
            }
            (None, cached, _) => read_dependency = !cached,
        }
    }
    // Read side by side: each layer streams from the registry while others are parsed.
    let reads = descriptors[skip..].iter().map(|descriptor| {
        let local = image.local.iter().find(|(d, _)| *d == descriptor.digest);
        store.layer_facts(descriptor, local.map(|(_, b)| b))
    });
    facts.extend(futures_util::future::try_join_all(reads).await?);
    Ok((facts, base, read_dependency))
}

fn layer_descriptors(image: &PlatformImage) -> Result<Vec<Descriptor>, SbomError> {
    let layers = image.manifest.layers.iter();
    layers
        .map(|l| Descriptor::from_oci(l).map_err(|e| refused("a layer", e)))
        .collect()
}

/// The SBOM attached to the dependency image `dep`, read back as findings and kept on this
/// machine by its digest ([`super::reuse::keep`]: the next build on it asks the registry
/// nothing); `None` when it has none (or one about another image).
async fn dependency_sbom(
    client: &RegistryClient,
    dep: &Dependency,
) -> Result<Option<super::reuse::Reused>, SbomError> {
    let subject = &dep.descriptor.digest;
    let Some(bytes) = attached(client, &dep.image, subject, super::SPDX_MEDIA_TYPE).await? else {
        return Ok(None);
    };
    // An unreadable document is one to make anew, not a failed SBOM.
    let document: Option<Document> = serde_json::from_slice(&bytes).ok();
    let reused = document.and_then(|d| super::reuse::reused(&d, subject));
    if reused.is_some() {
        super::reuse::keep(subject, &bytes);
    }
    Ok(reused)
}

/// What the document of `image` (read as `reading` says) says: its layers' packages, the
/// source and base its `org.imagespec.inputs` label records (the base's digest asked of its
/// registry, best effort, unless the dependency image's document gave it), `created` from
/// `source_date_epoch` or the config. With it, the contents of its dependency image when
/// its layers were read now.
pub async fn contents(
    reading: Reading<'_>,
    image: &PlatformImage,
) -> Result<(Contents, Option<Contents>), SbomError> {
    let Reading {
        store,
        repository,
        source_date_epoch,
        timeouts,
    } = reading;
    let (facts, reused_base, read_dependency) = layer_findings(store, image).await?;
    let inputs = inputs_label(&image.config);
    let base = named_base(store, reused_base, inputs.as_ref(), timeouts).await;
    let config_created = image.config.get("created").and_then(Value::as_str);
    let created = super::created(source_date_epoch, config_created);
    let dependency = image
        .dependency
        .as_ref()
        .filter(|_| read_dependency)
        .map(|dep| Contents {
            subject: Subject {
                repository: dep.image.name().clone(),
                digest: dep.descriptor.digest.clone(),
                platform: image.platform.clone(),
            },
            created: created.clone(),
            base: base.clone(),
            source: None,
            packages: layers::merge(&facts[..dep.layers.min(facts.len())]),
        });
    let descriptors = layer_descriptors(image)?;
    let own = Contents {
        subject: Subject {
            repository: repository.clone(),
            digest: image.descriptor.digest.clone(),
            platform: image.platform.clone(),
        },
        created,
        base,
        source: inputs
            .as_ref()
            .map(|i| source_of(i, &image.config, &descriptors)),
        packages: layers::merge(&facts),
    };
    Ok((own, dependency))
}

/// The base image the inputs label `inputs` names: `reused` (what a dependency image's
/// document said of it) when it names the same image, else with the digest asked of its
/// registry (best effort).
async fn named_base(
    store: Store<'_>,
    reused: Option<BaseImage>,
    inputs: Option<&Value>,
    timeouts: Timeouts,
) -> Option<BaseImage> {
    let name = inputs.and_then(base_name)?;
    match reused {
        Some(base) if base.name == name => Some(base),
        _ => Some(BaseImage {
            digest: base_digest(store, &name, timeouts).await,
            name,
        }),
    }
}

/// A dependency image this run made, described before the image appended to it is made:
/// what the SBOM of that image takes from it, and what its own document needs.
#[derive(Debug, Clone)]
pub struct MadeDependency {
    /// `<repository>:deps-<key>`.
    pub name: ImageRef,
    pub image: PlatformImage,
    /// Its packages, each with the file it was found in.
    pub packages: Vec<(String, super::Package)>,
}

/// The dependency image `image` (named `name`) this run made, when this machine has the
/// findings of all its layers (its builder handed them over, or they are cached; nothing
/// is read): handed to this run's SBOM of the image appended to it, which then reads none
/// of them ([`super::reuse::hand_over`]) and leaves the dependency image's own document to
/// [`dependency_contents`]. `None` when a layer would have to be read (dockerd built it).
pub fn hand_over_made(name: &ImageRef, image: PlatformImage) -> Option<MadeDependency> {
    let descriptors = layer_descriptors(&image).ok()?;
    let facts: Option<Vec<LayerFacts>> = (descriptors.iter())
        .map(|d| layers::cached(d.digest.hex()))
        .collect();
    let packages = layers::merge(&facts?);
    let reused = super::reuse::Reused {
        facts: layers::squashed(&packages),
        base: None,
    };
    super::reuse::hand_over(&image.descriptor.digest, reused);
    Some(MadeDependency {
        name: name.clone(),
        image,
        packages,
    })
}

/// What the document of the dependency image `made` says: its packages, its base as
/// `inputs` (the `org.imagespec.inputs` label of the image appended to it) names it, its
/// `created` from `source_date_epoch` or its config (the appended image keeps it).
pub async fn dependency_contents(
    reading: Reading<'_>,
    made: &MadeDependency,
    inputs: Option<&Value>,
) -> Contents {
    let image = &made.image;
    let config_created = image.config.get("created").and_then(Value::as_str);
    Contents {
        subject: Subject {
            repository: made.name.name().clone(),
            digest: image.descriptor.digest.clone(),
            platform: image.platform.clone(),
        },
        created: super::created(reading.source_date_epoch, config_created),
        base: named_base(reading.store, None, inputs, reading.timeouts).await,
        source: None,
        packages: made.packages.clone(),
    }
}

/// The SPDX document of every platform image of the manifest `digest` names, in the
/// index's order.
pub async fn documents(reading: Reading<'_>, digest: &Digest) -> Result<Vec<Described>, SbomError> {
    let images = platform_images(reading.store, digest).await?;
    documents_of(reading, images).await
}

/// [`documents`] of images already in hand (just published: their manifests are not read
/// back), their layers read from the store (or from this machine, for those they hold).
pub async fn documents_of(
    reading: Reading<'_>,
    images: Vec<PlatformImage>,
) -> Result<Vec<Described>, SbomError> {
    let mut out = Vec::new();
    for image in images {
        let (own, dependency) = contents(reading, &image).await?;
        let dependency = image
            .dependency
            .clone()
            .zip(dependency.as_ref().map(super::document));
        out.push(Described {
            document: super::document(&own),
            contents: own,
            image,
            dependency,
        });
    }
    Ok(out)
}

impl PlatformImage {
    /// An image value as published (`platform`, when it is one of an index).
    pub fn of(image: &crate::oci::Image, platform: Option<Platform>) -> PlatformImage {
        let config = image.config();
        let local = image
            .layers()
            .iter()
            .filter(|l| !matches!(l.blob, Blob::Remote(_)));
        PlatformImage {
            platform: platform.or_else(|| config_platform(&config)),
            descriptor: image.descriptor(),
            manifest: image.manifest(),
            config,
            dependency: None,
            local: local
                .map(|l| (l.descriptor.digest.clone(), l.blob.clone()))
                .collect(),
        }
    }

    /// The same image, appended to the dependency image `value` (named `image`; made by
    /// this run when `made_now`).
    pub fn on_dependency(
        self,
        image: &ImageRef,
        value: &crate::oci::Image,
        made_now: bool,
    ) -> PlatformImage {
        PlatformImage {
            dependency: Some(Dependency {
                image: image.clone(),
                descriptor: value.descriptor(),
                layers: value.layers().len(),
                made_now,
            }),
            ..self
        }
    }
}

/// The artifact of type `artifact_type` attached to the platform image `subject` in
/// `image`'s repository (the last one its referrers list, when several): its content as
/// stored; `None` when none is.
pub async fn attached(
    client: &RegistryClient,
    image: &ImageRef,
    subject: &Digest,
    artifact_type: &str,
) -> Result<Option<Vec<u8>>, SbomError> {
    let listed = client.referrers_listed(image, subject).await?;
    let Some(entry) = listed
        .iter()
        .rev()
        .find(|e| e.artifact_type.as_deref() == Some(artifact_type))
    else {
        return Ok(None);
    };
    let raw = client.manifest_by_digest(image, &entry.digest).await?;
    let OciManifest::Image(manifest) = raw.manifest else {
        return Err(refused(&entry.digest, "a referrer that is an index"));
    };
    let Some(layer) = manifest
        .layers
        .iter()
        .find(|l| l.media_type == artifact_type)
    else {
        return Err(refused(
            &entry.digest,
            format!("an artifact without a {artifact_type} layer"),
        ));
    };
    let size = u64::try_from(layer.size).ok();
    Ok(Some(client.blob(image, &layer.digest, size).await?))
}

/// The platform an image config names; `None` when it names none, or not a platform.
fn config_platform(config: &Value) -> Option<Platform> {
    let platform = crate::registry::index::config_platform(config)?;
    Platform::parse(&platform).ok()
}

/// The `org.imagespec.inputs` label of a config, parsed.
pub(crate) fn inputs_label(config: &Value) -> Option<Value> {
    let label = config
        .get("config")?
        .get("Labels")?
        .get("org.imagespec.inputs")?
        .as_str()?;
    serde_json::from_str(label).ok()
}

/// The base image the record names: its `base_image` field, when it is a string (its
/// Python repr is `'name'`).
fn base_name(inputs: &Value) -> Option<ImageRef> {
    let repr = inputs.get("fields")?.get("base_image")?.as_str()?;
    let name = repr.strip_prefix('\'')?.strip_suffix('\'')?;
    // The label is the image's (input): a name that is not a reference names no base.
    name.parse().ok()
}

/// The source component: the digest of the file list the record holds, and the layer the
/// history names as the source layer.
fn source_of(inputs: &Value, config: &Value, layers: &[Descriptor]) -> Source {
    let files = inputs.get("files").and_then(Value::as_object);
    let listed = files.map_or(0, |f| f.len());
    let omitted = inputs.get("files_omitted").and_then(Value::as_u64);
    let digest = files.filter(|f| !f.is_empty()).map(|files| {
        let mut lines: Vec<String> = files
            .iter()
            .map(|(name, d)| format!("{name} {}\n", d.as_str().unwrap_or_default()))
            .collect();
        lines.sort();
        Digest::of_bytes(lines.concat().as_bytes())
    });
    Source {
        digest,
        files: omitted.map_or(listed, |n| n as usize),
        layer: source_layer(config, layers),
    }
}

/// The layer whose history entry imagespec's fast path wrote (`imagespec source layer`).
fn source_layer(config: &Value, layers: &[Descriptor]) -> Option<Digest> {
    let history = config.get("history")?.as_array()?;
    let with_layers = history.iter().filter(|h| {
        !h.get("empty_layer")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    });
    with_layers
        .zip(layers)
        .find(|(h, _)| h.get("comment").and_then(Value::as_str) == Some("imagespec source layer"))
        .map(|(_, l)| l.digest.clone())
}

/// The base's digest in its registry (the spec's registry client when it is the same
/// registry, else an anonymous session with stored credentials); `None` when it cannot be
/// asked.
async fn base_digest(store: Store<'_>, name: &ImageRef, timeouts: Timeouts) -> Option<Digest> {
    let host = name.host();
    if let Store::Registry { client, image } = store
        && image.host() == host
    {
        return client.digest(name).await.ok().flatten();
    }
    // Best effort, so short: a base read through a mirror may not be reachable by name.
    let short = Timeouts {
        connect: timeouts.connect.min(std::time::Duration::from_secs(3)),
        stall: timeouts.stall.min(std::time::Duration::from_secs(10)),
    };
    let client = crate::registry::session(host, None, short).ok()?;
    client.digest(name).await.ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(files: Value) -> Value {
        let inputs = json!({"v": 1, "image": "r/app:t",
            "fields": {"base_image": "'localhost:5000/python:3.12-slim'", "name": "'app'"},
            "files": files, "dependency_image": null});
        json!({"created": "2024-01-01T00:00:00Z",
        "config": {"Labels": {"org.imagespec.inputs": inputs.to_string()}},
        "history": [
            {"created_by": "base"},
            {"created_by": "ENV X=1", "empty_layer": true},
            {"created_by": "COPY", "comment": "imagespec source layer"},
        ]})
    }

    #[test]
    fn the_label_gives_the_base_and_the_source() {
        let config = config(json!({"src/a.py": "00aa", "src/b.py": "11bb"}));
        let inputs = inputs_label(&config).unwrap();
        assert_eq!(
            base_name(&inputs).map(|n| n.to_string()).as_deref(),
            Some("localhost:5000/python:3.12-slim")
        );
        let layers = [
            Descriptor::new("t", Digest::of_bytes(b"base"), 1),
            Descriptor::new("t", Digest::of_bytes(b"source"), 1),
        ];
        let source = source_of(&inputs, &config, &layers);
        assert_eq!(source.files, 2);
        assert_eq!(source.layer, Some(Digest::of_bytes(b"source")));
        assert_eq!(
            source.digest,
            Some(Digest::of_bytes(b"src/a.py 00aa\nsrc/b.py 11bb\n"))
        );
    }

    #[test]
    fn no_label_no_base_and_a_none_base_is_none() {
        assert!(inputs_label(&json!({"config": {}})).is_none());
        assert_eq!(base_name(&json!({"fields": {"base_image": "None"}})), None);
    }
}
