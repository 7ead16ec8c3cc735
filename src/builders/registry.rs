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
//! Appending: read the dependency manifest and config (a few KB) as an [`Image`], write the
//! source layer ([`crate::source::layer`]) and append it with the new config (`diff_ids`,
//! history, `_F_IMG_ID`): [`assemble_image`]. Publishing it (the layer uploaded streamed,
//! the manifest last) is [`crate::publish::registry`]'s, or [`crate::publish::layout`]'s
//! for `--output`. The same dependency image and files give the same manifest digest,
//! every time.

use super::BackendError;
use crate::oci::epoch::SourceDateEpoch;
use crate::oci::image::{Blob, History, Image, NewLayer};
use crate::oci::{Digest, ImageRef, Platform, Platforms};
use crate::plan::{BuildPlan, DEPENDENCY_LABEL};
use crate::progress::{Event, Progress};
use crate::registry::client::{
    Operation, RawManifest, RegistryClient, RegistryError, RegistryErrorKind,
};
use crate::sbom::layers as sbom_layers;
use crate::source::layer::{DirAttrs, Layer, Owner, write_layer_keeping};
use oci_client::manifest::OciImageManifest;
use serde_json::{Value, json};

/// A dependency image found in the registry, ready to append to.
#[derive(Debug, Clone)]
pub struct DependencyImage {
    /// `<repository>:deps-<key>`.
    pub image: ImageRef,
    /// The image itself: its layers are in the registry, under `image`.
    pub value: Image,
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

/// The manifest and config of `image` for `platform`, or `None` when the registry does not
/// have it.
pub async fn image_config(
    client: &RegistryClient,
    image: &ImageRef,
    platform: &Platform,
) -> Result<Option<(OciImageManifest, Value)>, BackendError> {
    Ok(read_image(client, image, platform)
        .await?
        .map(|(manifest, value)| (manifest, value.config())))
}

/// `image` for `platform` as a value (its layers left in the registry), with its manifest as
/// read, or `None` when the registry does not have it.
async fn read_image(
    client: &RegistryClient,
    image: &ImageRef,
    platform: &Platform,
) -> Result<Option<(OciImageManifest, Image)>, BackendError> {
    match manifest_or_none(client, image).await? {
        Some(raw) => platform_image(client, image, raw, platform).await,
        None => Ok(None),
    }
}

/// The manifest (or index) `image` names, or `None` when the registry does not have it. No
/// HEAD first: a missing tag is the manifest request's 404.
async fn manifest_or_none(
    client: &RegistryClient,
    image: &ImageRef,
) -> Result<Option<RawManifest>, BackendError> {
    match client.manifest(image).await {
        Ok(raw) => Ok(Some(raw)),
        Err(e) if e.not_found() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The image for `platform` of `raw`, `image`'s manifest (or index) as already read, as a
/// value; `None` when an index has no image for it.
async fn platform_image(
    client: &RegistryClient,
    image: &ImageRef,
    raw: RawManifest,
    platform: &Platform,
) -> Result<Option<(OciImageManifest, Image)>, BackendError> {
    let manifest = match client.platform_manifest(image, raw, platform).await {
        Ok((_, manifest)) => manifest,
        Err(e) if e.not_found() => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    image_of(client, image, manifest).await.map(Some)
}

/// The config of `image` for `platform`, from `raw`, its manifest (or index) as already
/// read: no second request for the manifest of a one-platform image. `None` when an index
/// has no image for `platform`.
pub async fn config_of(
    client: &RegistryClient,
    image: &ImageRef,
    raw: RawManifest,
    platform: &Platform,
) -> Result<Option<Value>, BackendError> {
    let found = platform_image(client, image, raw, platform).await?;
    Ok(found.map(|(_, value)| value.config()))
}

/// `image`, whose image manifest is `manifest`, as a value: its config read and checked.
async fn image_of(
    client: &RegistryClient,
    image: &ImageRef,
    manifest: OciImageManifest,
) -> Result<(OciImageManifest, Image), BackendError> {
    let declared = u64::try_from(manifest.config.size).ok();
    let bytes = client
        .blob(image, &manifest.config.digest, declared)
        .await?;
    let failed = |kind| RegistryError::new(image, Operation::ReadConfig, kind);
    crate::oci::manifest::check_config(&bytes)
        .map_err(|source| failed(RegistryErrorKind::Config { source }))?;
    let value = Image::from_registry(&manifest, bytes.into(), image)
        .map_err(|source| failed(RegistryErrorKind::Image { source }))?;
    Ok((manifest, value))
}

impl DependencyImage {
    /// `value`, named `image`, if its config has the label imagespec puts on dependency
    /// images.
    pub fn from_image(image: &ImageRef, value: Image) -> Option<DependencyImage> {
        let (owner, root_dir) = value
            .config()
            .pointer("/config/Labels")
            .and_then(|l| l.get(DEPENDENCY_LABEL))
            .and_then(Value::as_str)
            .and_then(parse_label)?;
        Some(DependencyImage {
            image: image.clone(),
            value,
            owner,
            root_dir,
        })
    }
}

/// The config change of `plan`'s image on its dependency image: `created` set to
/// `SOURCE_DATE_EPOCH`'s time when set (else the dependency image's is kept), `_F_IMG_ID`
/// set (last in `Env`), the dependency label gone, `plan`'s labels added (no labels left:
/// `null`).
fn image_config_edit(plan: &BuildPlan, epoch: Option<SourceDateEpoch>, config: &mut Value) {
    if let (Some(created), Some(root)) = (
        crate::oci::epoch::created(epoch, None),
        config.as_object_mut(),
    ) {
        root.insert("created".into(), created);
    }
    let Some(inner) = config.get_mut("config").and_then(Value::as_object_mut) else {
        return;
    };
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

/// `plan`'s image: `deps` with `layer` (the source files under `/root`) and `_F_IMG_ID`.
fn assemble(
    plan: &BuildPlan,
    deps: &DependencyImage,
    layer: Layer,
    epoch: Option<SourceDateEpoch>,
) -> Image {
    let new = NewLayer {
        digest: layer.digest,
        diff_id: layer.diff_id,
        size: layer.size,
        blob: Blob::file(layer.file),
        history: History::new(
            "COPY --chown=flytekit source and copy files /root # imagespec",
            "imagespec source layer",
        ),
    };
    let env = History::new(&format!("ENV _F_IMG_ID={}", plan.image_id), "imagespec");
    deps.value
        .append(vec![new], |c| image_config_edit(plan, epoch, c), &[env])
}

/// The source layer of `plan` for `owner`, written in a blocking task, every entry at
/// `mtime`.
pub async fn source_layer(
    plan: &BuildPlan,
    owner: Owner,
    root_dir: DirAttrs,
    mtime: u64,
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
    let dir = std::env::temp_dir();
    // The SBOM's catalogers' files are kept as they go in: the layer is described without
    // being read back.
    let keep = (
        sbom_layers::cataloged as fn(&str) -> bool,
        sbom_layers::FILE_LIMIT,
    );
    let writing = async move {
        tokio::task::spawn_blocking(move || {
            write_layer_keeping(&entries, owner, root_dir, mtime, &dir, keep)
        })
        .await
        .map_err(|e| BackendError::Context(e.to_string()))?
        .map_err(|e| BackendError::Context(e.to_string()))
    };
    let (layer, kept) = progress.in_step("source-layer", &step, writing).await?;
    sbom_layers::hand_over(layer.digest.hex(), &sbom_layers::facts_of_kept(&kept));
    Ok(layer)
}

/// The image of `plan` on top of its dependency image, ready to publish or write out.
pub struct Assembled {
    pub image: Image,
    /// The source layer's digest, size and number of files.
    pub layer_digest: Digest,
    pub layer_size: u64,
    pub files: usize,
}

/// Writes the source layer and makes `plan`'s image on `deps` (go-containerregistry's
/// `mutate.Append`, [`Image::append`]); `SOURCE_DATE_EPOCH`, when set, is every time it
/// writes (the layer's entries, `created`, the new history entries).
pub async fn assemble_image(
    plan: &BuildPlan,
    deps: &DependencyImage,
    progress: &Progress,
) -> Result<Assembled, BackendError> {
    let epoch = SourceDateEpoch::from_env().map_err(|e| BackendError::Context(e.to_string()))?;
    let mtime = crate::oci::epoch::layer_mtime(epoch);
    let layer = source_layer(plan, deps.owner, deps.root_dir, mtime, progress).await?;
    let (layer_digest, layer_size, files) = (layer.digest.clone(), layer.size, layer.files);
    let image = assemble(plan, deps, layer, epoch);
    Ok(Assembled {
        image,
        layer_digest,
        layer_size,
        files,
    })
}

/// The dependency image `image` for each of `platforms`, if the registry has it with the
/// label imagespec puts on dependency images (an image without it was not made by imagespec
/// and is not appended to); `None` when one is missing. The tag is read once (an index, for
/// several platforms), each platform's manifest then by its digest.
pub async fn find_dependency_images(
    client: &RegistryClient,
    image: &ImageRef,
    platforms: &Platforms,
) -> Result<Option<Vec<DependencyImage>>, BackendError> {
    let Some(raw) = manifest_or_none(client, image).await? else {
        return Ok(None);
    };
    let mut found = Vec::new();
    for platform in platforms.iter() {
        let read = platform_image(client, image, raw.clone(), platform).await?;
        match read.and_then(|(_, value)| DependencyImage::from_image(image, value)) {
            Some(deps) => found.push(deps),
            None => return Ok(None),
        }
    }
    Ok(Some(found))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(labels: &[(&str, &str)]) -> BuildPlan {
        let mut plan = crate::builders::daemonless::config::tests::plan(&[]);
        plan.labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        plan
    }

    #[test]
    fn the_image_config_sets_the_id_last_and_drops_the_dependency_label() {
        let plan = plan(&[]);
        let mut config = json!({"config": {
            "Env": ["PATH=/bin", "_F_IMG_ID=old", "A=1"],
            "Labels": {DEPENDENCY_LABEL: "1000 1000 0 700"},
        }});
        image_config_edit(&plan, None, &mut config);
        let id = format!("_F_IMG_ID={}", plan.image_id);
        assert_eq!(config["config"]["Env"], json!(["PATH=/bin", "A=1", id]));
        assert_eq!(config["config"]["Labels"], Value::Null, "no label left");
        let plan = self::plan(&[("team", "a")]);
        let mut config = json!({"config": {"Labels": {DEPENDENCY_LABEL: "x", "b": "2"}}});
        image_config_edit(&plan, None, &mut config);
        assert_eq!(config["config"]["Labels"], json!({"b": "2", "team": "a"}));
        assert!(config.get("created").is_none(), "kept as it was");
        let epoch = SourceDateEpoch::parse("1700000000").ok();
        let mut config = json!({"created": "2026-01-01T00:00:00Z", "config": {}});
        image_config_edit(&plan, epoch, &mut config);
        assert_eq!(config["created"], "2023-11-14T22:13:20Z");
    }

    #[test]
    fn the_dependency_label_gives_the_owner_and_root() {
        let (owner, root) = parse_label("1001 0 0 700").unwrap();
        assert_eq!((owner.uid, owner.gid), (1001, 1001));
        assert_eq!((root.uid, root.gid, root.mode), (0, 0, 0o700));
        for bad in ["", "1 2 3", "a 0 0 700", "1 0 0 9"] {
            assert!(parse_label(bad).is_none(), "{bad:?}");
        }
        let base = Image::scratch(json!({"config": {"Labels": {DEPENDENCY_LABEL: "1 2 3 755"}}}));
        let deps = DependencyImage::from_image(&"r/x:deps-1".parse().unwrap(), base).unwrap();
        assert_eq!(deps.root_dir.mode, 0o755);
        assert!(
            DependencyImage::from_image(&"r/x:1".parse().unwrap(), Image::scratch(json!({})))
                .is_none()
        );
    }
}
