//! Artifacts attached to an image as OCI 1.1 referrers (an SBOM; provenance and signatures
//! the same way): the artifact's manifest names the image as its `subject` and is pushed by
//! digest: [`Unlisted`] does all that may run beside the subject's own push (the blobs,
//! the questions, and without the referrers API the manifests and the referrers tag), then,
//! with the API, pushes the manifests once the subject is pushed. A registry with
//! the referrers API indexes it by itself; for one without (it answers 404, as the
//! distribution registry 2.x does) the referrers tag schema of distribution-spec 1.1 is
//! kept: an index of the referrers under the tag `sha256-<hex of the subject>`, merged with
//! what it lists already, which `oras discover`, `cosign` and `regctl` read alike.
//!
//! In an OCI layout (`--output oci:DIR`), the artifact's blobs and manifest go into
//! `blobs/`, named by the annotation `org.imagespec.sbom` of the image's `index.json`
//! entry; `index.json` lists no second manifest, which `skopeo copy oci:DIR` (no ref name)
//! would refuse.
//!
use super::PublishError;
use super::layout::{self, LayoutError};
use crate::oci::image::artifact::fallback_tag;
use crate::oci::{Digest, Image, ImageRef};
use crate::registry::client::RegistryClient;
use oci_client::manifest::{OCI_IMAGE_INDEX_MEDIA_TYPE, OCI_IMAGE_MEDIA_TYPE};
use serde_json::{Value, json};
use std::path::Path;

/// How a registry lists the attached artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listed {
    /// By its referrers API.
    ReferrersApi,
    /// Under the referrers tag schema's tag (`sha256-<hex>`).
    Tag(String),
}

/// An artifact attached: its manifest's digest, and how it is found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attached {
    pub digest: Digest,
    pub listed: Listed,
}

/// The `subject` digest of an artifact.
fn subject_of(artifact: &Image) -> Result<Digest, PublishError> {
    let manifest = artifact.manifest();
    let subject = manifest.subject.ok_or_else(|| PublishError::Io {
        context: "attaching an artifact".into(),
        source: std::io::Error::other("the artifact names no subject"),
    })?;
    Digest::parse(&subject.digest).map_err(|e| PublishError::Io {
        context: "the artifact's subject".into(),
        source: std::io::Error::other(e.to_string()),
    })
}

/// The entry of a referrers index that lists `artifact`.
fn referrer_entry(artifact: &Image) -> Value {
    let descriptor = artifact.descriptor();
    let mut entry = json!({
        "mediaType": OCI_IMAGE_MEDIA_TYPE,
        "digest": descriptor.digest.as_str(),
        "size": descriptor.size,
    });
    if let Some(kind) = artifact.artifact_type() {
        entry["artifactType"] = json!(kind);
    }
    if let Some(annotations) = artifact.manifest().annotations {
        entry["annotations"] = json!(annotations);
    }
    entry
}

/// A referrers index (`existing`, or a new one) listing `entry` once: an entry of the same
/// digest is replaced, the others kept in their order.
pub fn merged_referrers(existing: Option<&[u8]>, entry: Value) -> Result<Value, String> {
    let mut index = match existing {
        None => {
            json!({"schemaVersion": 2, "mediaType": OCI_IMAGE_INDEX_MEDIA_TYPE, "manifests": []})
        }
        Some(bytes) => serde_json::from_slice(bytes).map_err(|e| e.to_string())?,
    };
    let manifests = index
        .as_object_mut()
        .ok_or("not a JSON object")?
        .entry("manifests")
        .or_insert_with(|| json!([]))
        .as_array_mut()
        .ok_or("`manifests` is not a list")?;
    manifests.retain(|m| m["digest"] != entry["digest"]);
    manifests.push(entry);
    Ok(index)
}

/// Pushes `artifacts` (by digest, each about the same subject: an SBOM and its provenance)
/// into the repository of `name` (`registry/repository:tag`) and makes them referrers of
/// their subject (pushed already): [`Unlisted::upload`], then [`Unlisted::list`].
pub async fn attach(
    client: &RegistryClient,
    name: &ImageRef,
    artifacts: &[Image],
) -> Result<Vec<Attached>, PublishError> {
    match Unlisted::upload(client, name, artifacts).await? {
        Some(unlisted) => unlisted.list(client, name, artifacts).await,
        None => Ok(Vec::new()),
    }
}

/// Makes the blobs of `artifacts` present in `name`'s repository, each once (their shared
/// empty config), all at once: what can be done before their subject is pushed (blobs no
/// manifest names are no one's referrers).
async fn upload(
    client: &RegistryClient,
    name: &ImageRef,
    artifacts: &[Image],
) -> Result<(), PublishError> {
    let mut blobs: Vec<(&Digest, &bytes::Bytes)> = Vec::new();
    for artifact in artifacts {
        let config = (
            &artifact.config_descriptor().digest,
            artifact.config_bytes(),
        );
        let mut content = vec![config];
        for layer in artifact.layers() {
            let crate::oci::image::Blob::Bytes(bytes) = &layer.blob else {
                return Err(PublishError::Io {
                    context: "attaching an artifact".into(),
                    source: std::io::Error::other("an artifact's content is held in memory"),
                });
            };
            content.push((&layer.descriptor.digest, bytes));
        }
        for blob in content {
            if !blobs.iter().any(|(d, _)| *d == blob.0) {
                blobs.push(blob);
            }
        }
    }
    let pushes = blobs
        .into_iter()
        .map(|(digest, bytes)| client.push_blob_bytes(name, bytes.clone(), digest.as_str()));
    futures_util::future::try_join_all(pushes).await?;
    Ok(())
}

/// The subject all of `artifacts` are about; `None` for none.
fn common_subject(artifacts: &[Image]) -> Result<Option<Digest>, PublishError> {
    let Some(first) = artifacts.first() else {
        return Ok(None);
    };
    let subject = subject_of(first)?;
    for artifact in artifacts {
        if subject_of(artifact)? != subject {
            return Err(PublishError::Io {
                context: "attaching artifacts".into(),
                source: std::io::Error::other("artifacts about different subjects"),
            });
        }
    }
    Ok(Some(subject))
}

/// How a registry lists the referrers of a subject, as asked before listing more.
enum Asked {
    /// By its referrers API.
    Api,
    /// Under the referrers tag, whose index is this as stored (`None`: no tag yet).
    Tag(Option<Vec<u8>>),
}

/// Asks whether the registry has the referrers API and reads the referrers tag of
/// `subject`, at once (the tag's read matters only without the API).
async fn ask(
    client: &RegistryClient,
    name: &ImageRef,
    subject: &Digest,
) -> Result<Asked, PublishError> {
    let tagged = name.with_tag(fallback_tag(subject));
    let (api, existing) = tokio::join!(client.referrers(name, subject), read_tag(client, &tagged));
    Ok(match api? {
        Some(_) => Asked::Api,
        None => Asked::Tag(existing?),
    })
}

/// Attaching in two halves, so that the subject's push can run beside the first
/// ([`Unlisted::upload`]), and what must wait for the subject ([`Unlisted::list`]).
/// [`attach`] runs both for a subject pushed already.
#[derive(Debug)]
pub struct Unlisted {
    /// `Some`: the registry has no referrers API, and the artifacts are listed already
    /// under the referrers tag; `None`: their manifests wait for the subject.
    by_tag: Option<Vec<Attached>>,
}

impl Unlisted {
    /// Uploads the blobs of `artifacts`, asks whether the registry has the referrers API
    /// and reads the referrers tag, all at once. Without the API, the manifests are pushed
    /// then (by digest) and the tag's index written: the tag is named by the subject's
    /// digest, so what it lists describes exactly that image whenever it exists (a push that
    /// fails leaves a tag for an image not there yet, which its retry completes). With the
    /// API the manifests wait: it lists a manifest as soon as it is pushed, and a registry
    /// may refuse a manifest whose subject is missing (GitLab's did).
    /// `None` for no artifacts.
    pub async fn upload(
        client: &RegistryClient,
        name: &ImageRef,
        artifacts: &[Image],
    ) -> Result<Option<Unlisted>, PublishError> {
        let Some(subject) = common_subject(artifacts)? else {
            return Ok(None);
        };
        let (uploaded, asked) =
            tokio::join!(upload(client, name, artifacts), ask(client, name, &subject));
        uploaded?;
        let by_tag = match asked? {
            Asked::Api => None,
            Asked::Tag(existing) => {
                let pushed = push_manifests(client, name, artifacts).await?;
                let tag = fallback_tag(&subject);
                write_tag(client, &name.with_tag(tag.clone()), existing, artifacts).await?;
                Some(attached(pushed, Listed::Tag(tag.as_str().to_string())))
            }
        };
        Ok(Some(Unlisted { by_tag }))
    }

    /// Lists `artifacts` (those [`Unlisted::upload`] had) once their subject is pushed:
    /// their manifests pushed (the API lists them); under the tag they are listed already.
    pub async fn list(
        self,
        client: &RegistryClient,
        name: &ImageRef,
        artifacts: &[Image],
    ) -> Result<Vec<Attached>, PublishError> {
        match self.by_tag {
            Some(listed) => Ok(listed),
            None => {
                let pushed = push_manifests(client, name, artifacts).await?;
                Ok(attached(pushed, Listed::ReferrersApi))
            }
        }
    }
}

/// Pushes the manifests of `artifacts` by digest, all at once; their digests.
async fn push_manifests(
    client: &RegistryClient,
    name: &ImageRef,
    artifacts: &[Image],
) -> Result<Vec<Digest>, PublishError> {
    let manifests = artifacts.iter().map(|artifact| async move {
        let body = artifact.manifest_bytes();
        let digest = Digest::of_bytes(&body);
        let media_type = artifact.media_type();
        let pushing =
            client.push_manifest_by_digest(name, body.into(), media_type, digest.as_str());
        pushing.await.map(|()| digest)
    });
    Ok(futures_util::future::try_join_all(manifests).await?)
}

/// The artifacts `pushed`, each `listed` so.
fn attached(pushed: Vec<Digest>, listed: Listed) -> Vec<Attached> {
    let each = pushed.into_iter().map(|digest| Attached {
        digest,
        listed: listed.clone(),
    });
    each.collect()
}

/// The referrers tag's index as stored; `None` when there is none yet.
async fn read_tag(
    client: &RegistryClient,
    tagged: &ImageRef,
) -> Result<Option<Vec<u8>>, PublishError> {
    match client.manifest(tagged).await {
        Ok(raw) => Ok(Some(raw.bytes.to_vec())),
        Err(e) if e.not_found() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Lists `artifacts` in the referrers tag's index (`existing`, as read) and writes it.
async fn write_tag(
    client: &RegistryClient,
    tagged: &ImageRef,
    existing: Option<Vec<u8>>,
    artifacts: &[Image],
) -> Result<(), PublishError> {
    let mut index = existing;
    for artifact in artifacts {
        let merged = merged_referrers(index.as_deref(), referrer_entry(artifact));
        let merged = merged.map_err(|m| PublishError::Io {
            context: format!("the referrers index {tagged}"),
            source: std::io::Error::other(m),
        })?;
        index = Some(serde_json::to_vec(&merged).expect("an index serialises"));
    }
    let body = index.expect("one artifact at least");
    client
        .push_manifest(tagged, body.into(), OCI_IMAGE_INDEX_MEDIA_TYPE)
        .await?;
    Ok(())
}

/// The annotation of a layout's `index.json` entry that names the SBOM manifests written
/// beside the image (comma-separated digests).
pub const LAYOUT_SBOM_ANNOTATION: &str = "org.imagespec.sbom";

/// Writes `artifact` into the OCI layout at `dir` (its subject written there already): its
/// blobs and its manifest, in `blobs/`. The manifest is not listed in `index.json`: a
/// layout whose `index.json` lists one image is what `skopeo copy oci:DIR` reads without a
/// ref name, and a second entry would make it refuse ("more than one image"); see
/// [`annotate_layout`]. Repeating it changes nothing.
pub fn write_to_layout(dir: &Path, artifact: &Image) -> Result<Digest, LayoutError> {
    let blobs = dir.join("blobs").join("sha256");
    layout::layout_dir(&dir.join("blobs"))?;
    layout::layout_dir(&blobs)?;
    let put = |bytes: &[u8]| -> Result<Digest, LayoutError> {
        let digest = Digest::of_bytes(bytes);
        let path = blobs.join(digest.hex());
        let present =
            path.exists() && layout::check_blob(&path, &digest, bytes.len() as i64)?.is_ok();
        if !present {
            layout::write_atomically(&path, bytes)?;
        }
        Ok(digest)
    };
    put(artifact.config_bytes())?;
    for layer in artifact.layers() {
        let crate::oci::image::Blob::Bytes(bytes) = &layer.blob else {
            return Err(LayoutError::Io {
                path: blobs.clone(),
                source: std::io::Error::other("an artifact's content is held in memory"),
            });
        };
        put(bytes)?;
    }
    put(&artifact.manifest_bytes())
}

/// Names `artifacts` (manifests written by [`write_to_layout`]) in the annotation
/// [`LAYOUT_SBOM_ANNOTATION`] of the `index.json` entry of `top` (the image or index they
/// are about), under the layout's lock.
pub fn annotate_layout(dir: &Path, top: &Digest, artifacts: &[Digest]) -> Result<(), LayoutError> {
    let path = dir.join("index.json");
    let io = |source| LayoutError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let lock = std::fs::File::open(dir).map_err(io)?;
    lock.lock().map_err(io)?;
    let existing = layout::read_layout_file(&path)?;
    let index =
        annotated(existing.as_deref(), top, artifacts).map_err(|message| LayoutError::Index {
            path: path.clone(),
            message,
        })?;
    layout::write_atomically(&path, &serde_json::to_vec(&index).expect("json"))
}

/// `index.json` with the entry of `top` annotated with `artifacts`.
fn annotated(existing: Option<&[u8]>, top: &Digest, artifacts: &[Digest]) -> Result<Value, String> {
    let mut index: Value =
        serde_json::from_slice(existing.ok_or("no index.json")?).map_err(|e| e.to_string())?;
    let manifests = index["manifests"]
        .as_array_mut()
        .ok_or("`manifests` is not a list")?;
    let entry = manifests
        .iter_mut()
        .find(|m| m["digest"] == top.as_str())
        .ok_or_else(|| format!("no entry for {top}"))?;
    let list: Vec<&str> = artifacts.iter().map(Digest::as_str).collect();
    let annotations = entry
        .as_object_mut()
        .ok_or("an entry is not a JSON object")?
        .entry("annotations")
        .or_insert_with(|| json!({}));
    annotations[LAYOUT_SBOM_ANNOTATION] = json!(list.join(","));
    Ok(index)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::image::Descriptor;

    fn artifact(content: &'static [u8]) -> Image {
        let subject = Descriptor::new(OCI_IMAGE_MEDIA_TYPE, Digest::of_bytes(b"image"), 5);
        Image::artifact(
            "application/spdx+json",
            "application/spdx+json",
            bytes::Bytes::from_static(content),
            &subject,
            Default::default(),
        )
    }

    #[test]
    fn merging_keeps_other_referrers_and_lists_each_once() {
        let (a, b) = (
            referrer_entry(&artifact(b"a")),
            referrer_entry(&artifact(b"b")),
        );
        let one = merged_referrers(None, a.clone()).unwrap();
        assert_eq!(one["mediaType"], OCI_IMAGE_INDEX_MEDIA_TYPE);
        assert_eq!(one["manifests"][0]["artifactType"], "application/spdx+json");
        let bytes = serde_json::to_vec(&one).unwrap();
        let two = merged_referrers(Some(&bytes), b.clone()).unwrap();
        let bytes = serde_json::to_vec(&two).unwrap();
        let again = merged_referrers(Some(&bytes), a.clone()).unwrap();
        let digests: Vec<&Value> = again["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| &m["digest"])
            .collect();
        assert_eq!(digests, [&b["digest"], &a["digest"]]);
        assert!(merged_referrers(Some(b"[1]"), a).is_err());
    }

    #[test]
    fn a_layout_gets_the_artifact_beside_its_image_named_by_its_entry() {
        let dir = tempfile::tempdir().unwrap();
        let image = Digest::of_bytes(b"image");
        let index = json!({"schemaVersion": 2, "manifests": [
            {"mediaType": OCI_IMAGE_MEDIA_TYPE, "digest": image.as_str(), "size": 5,
             "annotations": {"org.opencontainers.image.ref.name": "v1"}}]});
        std::fs::write(dir.path().join("index.json"), index.to_string()).unwrap();
        let sbom = artifact(b"{}");
        let digest = write_to_layout(dir.path(), &sbom).unwrap();
        assert_eq!(write_to_layout(dir.path(), &sbom).unwrap(), digest);
        let manifest = std::fs::read(dir.path().join("blobs/sha256").join(digest.hex())).unwrap();
        assert_eq!(manifest, sbom.manifest_bytes());
        annotate_layout(dir.path(), &image, std::slice::from_ref(&digest)).unwrap();
        let index: Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("index.json")).unwrap()).unwrap();
        let manifests = index["manifests"].as_array().unwrap();
        assert_eq!(manifests.len(), 1, "one image listed: {index}");
        assert_eq!(
            manifests[0]["annotations"][LAYOUT_SBOM_ANNOTATION],
            digest.as_str()
        );
        assert_eq!(
            manifests[0]["annotations"]["org.opencontainers.image.ref.name"],
            "v1"
        );
        assert!(annotate_layout(dir.path(), &Digest::of_bytes(b"other"), &[digest]).is_err());
    }
}
