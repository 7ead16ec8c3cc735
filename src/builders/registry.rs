//! The daemonless backend: an image assembled directly in the registry from its dependency
//! image plus one layer of source files — no daemon, no rebuild, for code-only changes.
//!
//! The image of a spec is its *dependency image* (everything the Dockerfile does before it
//! copies the source and `copy` files: base, apt, Python packages, env, entrypoint, the
//! `flytekit` user) plus those files under `/root` and `ENV _F_IMG_ID`. The dependency image
//! is built once by the Docker backend from [`BuildPlan::dependencies`] and pushed under a
//! tag of its own, `<repository>:deps-<key>`, where the key digests its Dockerfile, platform
//! and context files: any change to what it installs gives a new key (and a full build);
//! a change to the source only gives a new image on the same dependency image.
//!
//! Appending: read the dependency manifest and config (a few KB), write the source layer
//! ([`crate::source::layer`]), upload it streamed (skipped when the registry has it), upload
//! the new config (`diff_ids`, history, `_F_IMG_ID`), and push the manifest last, so an
//! interrupted push never publishes the tag. The same dependency image and files give the
//! same manifest digest, every time.

use super::BackendError;
use crate::plan::{BuildPlan, DEPENDENCY_LABEL};
use crate::progress::{Event, Progress};
use crate::registry::client::{RegistryClient, RegistryError};
use crate::registry::index::{IndexEntry, platform_index};
use crate::source::layer::{DirAttrs, Layer, Owner, write_layer};
use oci_client::manifest::{OciDescriptor, OciImageManifest};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

/// A dependency image found in the registry, ready to append to.
#[derive(Debug, Clone)]
pub struct DependencyImage {
    /// `<repository>:deps-<key>`.
    pub image: String,
    manifest: OciImageManifest,
    config: Value,
    /// The `flytekit` user's ids in it.
    pub owner: Owner,
    /// What `/root` is in it.
    pub root_dir: DirAttrs,
}

/// The dependency label's value: `<flytekit uid> <uid> <gid> <octal mode>` (of /root).
fn parse_label(value: &str) -> Option<(Owner, DirAttrs)> {
    let f: Vec<&str> = value.split_whitespace().collect();
    if f.len() != 4 {
        return None;
    }
    let uid = f[0].parse().ok()?;
    // COPY --chown=user without a group: the group with the user's number.
    let owner = Owner { uid, gid: uid };
    Some((
        owner,
        DirAttrs {
            uid: f[1].parse().ok()?,
            gid: f[2].parse().ok()?,
            mode: u32::from_str_radix(f[3], 8).ok()?,
        },
    ))
}

/// The image that was pushed.
#[derive(Debug, Clone)]
pub struct Appended {
    /// `sha256:…` of the manifest.
    pub digest: String,
    /// Whether the source layer had to be uploaded (false: the registry had it).
    pub uploaded: bool,
    pub layer_size: u64,
    pub files: usize,
}

fn sha256(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut out = String::from("sha256:");
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// The manifest and config of `image` for `platform`, or `None` when the registry does not
/// have it.
pub async fn image_config(
    client: &RegistryClient,
    image: &str,
    platform: &str,
) -> Result<Option<(OciImageManifest, Value)>, BackendError> {
    // No HEAD first: a missing tag is the manifest request's 404.
    let manifest = match client.image_manifest(image, platform).await {
        Ok((_, manifest)) => manifest,
        Err(e) if e.not_found() => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let config = client.config(image, &manifest).await?;
    Ok(Some((manifest, config)))
}

/// The dependency image `image` for `platform`, if the registry has it with the label
/// imagespec puts on dependency images (an image without it was not made by imagespec
/// and is not appended to).
pub async fn find_dependency_image(
    client: &RegistryClient,
    image: &str,
    platform: &str,
) -> Result<Option<DependencyImage>, BackendError> {
    let Some((manifest, config)) = image_config(client, image, platform).await? else {
        return Ok(None);
    };
    Ok(DependencyImage::from_parts(image, manifest, config))
}

impl DependencyImage {
    /// `image` with this manifest and config, if the config has the label imagespec puts
    /// on dependency images.
    pub fn from_parts(
        image: &str,
        manifest: OciImageManifest,
        config: Value,
    ) -> Option<DependencyImage> {
        let (owner, root_dir) = config
            .pointer("/config/Labels")
            .and_then(|l| l.get(DEPENDENCY_LABEL))
            .and_then(Value::as_str)
            .and_then(parse_label)?;
        Some(DependencyImage {
            image: image.to_string(),
            manifest,
            config,
            owner,
            root_dir,
        })
    }
}

/// The config and manifest of `plan`'s image on top of `deps` with `layer`.
fn assemble(
    plan: &BuildPlan,
    deps: &DependencyImage,
    layer: &Layer,
) -> (Vec<u8>, OciImageManifest) {
    let mut config = deps.config.clone();
    let created = config.get("created").cloned().unwrap_or(Value::Null);
    if let Some(inner) = config.get_mut("config").and_then(Value::as_object_mut) {
        let variable = format!("_F_IMG_ID={}", plan.image_id);
        let env = inner.entry("Env").or_insert_with(|| json!([]));
        if !env.is_array() {
            *env = json!([]);
        }
        let list = env.as_array_mut().expect("made an array");
        list.retain(|v| !v.as_str().is_some_and(|s| s.starts_with("_F_IMG_ID=")));
        list.push(Value::String(variable));
        if let Some(labels) = inner.get_mut("Labels").and_then(Value::as_object_mut) {
            labels.remove(DEPENDENCY_LABEL);
        }
        if !plan.labels.is_empty() {
            let labels = inner.entry("Labels").or_insert_with(|| json!({}));
            if !labels.is_object() {
                *labels = json!({});
            }
            let labels = labels.as_object_mut().expect("made an object");
            for (key, value) in &plan.labels {
                labels.insert(key.clone(), Value::String(value.clone()));
            }
        }
        if inner
            .get("Labels")
            .and_then(Value::as_object)
            .is_some_and(|l| l.is_empty())
        {
            inner.insert("Labels".into(), Value::Null);
        }
    }
    let root = config
        .as_object_mut()
        .expect("an image config is an object");
    let diff_ids = root
        .entry("rootfs")
        .or_insert_with(|| json!({"type": "layers", "diff_ids": []}));
    if let Some(ids) = diff_ids.get_mut("diff_ids").and_then(Value::as_array_mut) {
        ids.push(Value::String(layer.diff_id.clone()));
    }
    let history = root.entry("history").or_insert_with(|| json!([]));
    if let Some(h) = history.as_array_mut() {
        h.push(json!({"created": created, "created_by": "COPY --chown=flytekit source and copy files /root # imagespec", "comment": "imagespec source layer"}));
        h.push(json!({"created": created, "created_by": format!("ENV _F_IMG_ID={}", plan.image_id), "comment": "imagespec", "empty_layer": true}));
    }
    let config_bytes = serde_json::to_vec(&config).expect("a JSON value serialises");

    let docker = deps.manifest.media_type.as_deref()
        == Some(oci_client::manifest::IMAGE_MANIFEST_MEDIA_TYPE);
    let mut manifest = deps.manifest.clone();
    manifest.config = OciDescriptor {
        media_type: deps.manifest.config.media_type.clone(),
        digest: sha256(&config_bytes),
        size: config_bytes.len() as i64,
        ..Default::default()
    };
    manifest.layers.push(OciDescriptor {
        media_type: if docker {
            oci_client::manifest::IMAGE_DOCKER_LAYER_GZIP_MEDIA_TYPE
        } else {
            oci_client::manifest::IMAGE_LAYER_GZIP_MEDIA_TYPE
        }
        .to_string(),
        digest: layer.digest.clone(),
        size: layer.size as i64,
        ..Default::default()
    });
    (config_bytes, manifest)
}

/// The source layer of `plan` for `owner`, written in a blocking task.
pub async fn source_layer(
    plan: &BuildPlan,
    owner: Owner,
    root_dir: DirAttrs,
    progress: &Progress,
) -> Result<Layer, BackendError> {
    let entries = plan.root_entries.clone();
    for sparse in crate::source::layer::sparse_entries(&entries) {
        progress.event(Event::Warning(&sparse.to_string()));
    }
    let step = match entries.len() {
        1 => "write source layer (1 entry)".to_string(),
        n => format!("write source layer ({n} entries)"),
    };
    progress.event(Event::StepStarted {
        id: "source-layer",
        name: &step,
        label: None,
    });
    let dir = std::env::temp_dir();
    let layer = tokio::task::spawn_blocking(move || write_layer(&entries, owner, root_dir, &dir))
        .await
        .map_err(|e| BackendError::Context(e.to_string()))?
        .map_err(|e| BackendError::Context(e.to_string()));
    progress.event(Event::StepDone {
        id: "source-layer",
        name: &step,
        label: None,
        cached: false,
        error: layer.as_ref().err().map(|e| e.to_string()).as_deref(),
    });
    layer
}

/// The image of `plan` on top of `deps`, ready to publish or write out.
pub struct Assembled {
    pub layer: Layer,
    /// The config JSON.
    pub config: Vec<u8>,
    pub manifest: OciImageManifest,
}

/// Writes the source layer and makes the config and manifest of `plan`'s image on `deps`.
pub async fn assemble_image(
    plan: &BuildPlan,
    deps: &DependencyImage,
    progress: &Progress,
) -> Result<Assembled, BackendError> {
    let layer = source_layer(plan, deps.owner, deps.root_dir, progress).await?;
    let (config, manifest) = assemble(plan, deps, &layer);
    Ok(Assembled {
        layer,
        config,
        manifest,
    })
}

/// Pushes `plan.image` as `deps` plus `plan`'s files under `/root` and `_F_IMG_ID`.
/// `verify` runs (on a blocking thread) while the blobs upload, and the manifest is pushed
/// only when it succeeds: the caller checks there that the tag still matches the files.
pub async fn append<E: From<BackendError> + Send + 'static>(
    client: &RegistryClient,
    plan: &BuildPlan,
    deps: &DependencyImage,
    progress: &Progress,
    verify: impl FnOnce() -> Result<(), E> + Send + 'static,
) -> Result<Appended, E> {
    let Assembled {
        layer,
        config,
        manifest,
    } = assemble_image(plan, deps, progress).await?;
    // The dependency image was named by the line before ("dependencies unchanged (...)").
    let step = format!(
        "push {} ({} files, {} on the dependency image)",
        plan.image,
        layer.files,
        crate::progress::bytes(layer.size)
    );
    progress.event(Event::StepStarted {
        id: "append",
        name: &step,
        label: None,
    });
    let verified = tokio::task::spawn_blocking(verify);
    // Blobs first (the layer streamed from disk, the config beside it), the manifest last.
    let (layer_pushed, config_pushed) = tokio::join!(
        client.push_blob_file(
            &plan.image,
            layer.path(),
            &layer.digest,
            layer.size,
            Some(progress.meter("append", &layer.digest, layer.size)),
        ),
        client.push_blob_bytes(&plan.image, config.into(), &manifest.config.digest),
    );
    let result = layer_pushed
        .and_then(|uploaded| config_pushed.map(|_| uploaded))
        .map_err(BackendError::from);
    let uploaded = match result {
        Ok(u) => u,
        Err(e) => {
            progress.event(Event::StepDone {
                id: "append",
                name: &step,
                label: None,
                cached: false,
                error: Some(&e.to_string()),
            });
            return Err(e.into());
        }
    };
    verified
        .await
        .map_err(|e| BackendError::Context(e.to_string()))??;
    let body = serde_json::to_vec(&manifest).expect("a manifest serialises");
    let digest = sha256(&body);
    let media_type = manifest
        .media_type
        .clone()
        .unwrap_or_else(|| oci_client::manifest::OCI_IMAGE_MEDIA_TYPE.to_string());
    let pushed = client
        .push_manifest(&plan.image, body.into(), &media_type)
        .await;
    progress.event(Event::StepDone {
        id: "append",
        name: &step,
        label: None,
        cached: false,
        error: pushed.as_ref().err().map(|e| e.to_string()).as_deref(),
    });
    pushed.map_err(BackendError::from)?;
    Ok(Appended {
        digest,
        uploaded,
        layer_size: layer.size,
        files: layer.files,
    })
}

/// The dependency image of every platform in `platforms` (one index under `image`), or
/// `None` when one of them is missing.
pub async fn find_dependency_images(
    client: &RegistryClient,
    image: &str,
    platforms: &[&str],
) -> Result<Option<Vec<DependencyImage>>, BackendError> {
    let mut found = Vec::new();
    for platform in platforms {
        match find_dependency_image(client, image, platform).await {
            Ok(Some(deps)) => found.push(deps),
            Ok(None) => return Ok(None),
            Err(e) => return Err(e),
        }
    }
    Ok(Some(found))
}

/// The multi-platform fast path: for each platform, its dependency image plus the source
/// layer, pushed by digest; then one image index under `plan.image`, last.
pub async fn append_platforms<E: From<BackendError> + Send + 'static>(
    client: &RegistryClient,
    plan: &BuildPlan,
    platforms: &[&str],
    deps: &[DependencyImage],
    progress: &Progress,
    verify: impl FnOnce() -> Result<(), E> + Send + 'static,
) -> Result<Appended, E> {
    let mut entries = Vec::new();
    let (mut uploaded, mut layer_size, mut files) = (false, 0, 0);
    for (platform, deps) in platforms.iter().zip(deps) {
        let Assembled {
            layer,
            config,
            manifest,
        } = assemble_image(plan, deps, progress).await?;
        let step = format!(
            "push {} for {platform} ({} files, {})",
            plan.image,
            layer.files,
            crate::progress::bytes(layer.size)
        );
        progress.event(Event::StepStarted {
            id: "append",
            name: &step,
            label: None,
        });
        let result = async {
            let up = client
                .push_blob_file(
                    &plan.image,
                    layer.path(),
                    &layer.digest,
                    layer.size,
                    Some(progress.meter("append", &layer.digest, layer.size)),
                )
                .await?;
            client
                .push_blob_bytes(&plan.image, config.into(), &manifest.config.digest)
                .await?;
            let body = serde_json::to_vec(&manifest).expect("a manifest serialises");
            let media_type = manifest
                .media_type
                .clone()
                .unwrap_or_else(|| oci_client::manifest::OCI_IMAGE_MEDIA_TYPE.to_string());
            let digest = sha256(&body);
            let size = body.len();
            client
                .push_manifest_by_digest(&plan.image, body.into(), &media_type, &digest)
                .await?;
            Ok::<_, RegistryError>((up, media_type, digest, size))
        }
        .await;
        progress.event(Event::StepDone {
            id: "append",
            name: &step,
            label: None,
            cached: false,
            error: result.as_ref().err().map(|e| e.to_string()).as_deref(),
        });
        let (up, media_type, digest, size) = result.map_err(BackendError::from)?;
        uploaded |= up;
        layer_size = layer.size;
        files = layer.files;
        entries.push(IndexEntry {
            platform: platform.to_string(),
            media_type,
            digest,
            size,
        });
    }
    tokio::task::spawn_blocking(verify)
        .await
        .map_err(|e| BackendError::Context(e.to_string()))??;
    let (body, media_type) = platform_index(&entries);
    let digest = sha256(&body);
    client
        .push_manifest(&plan.image, body.into(), media_type)
        .await
        .map_err(BackendError::from)?;
    Ok(Appended {
        digest,
        uploaded,
        layer_size,
        files,
    })
}
