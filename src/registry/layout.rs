//! Images written to disk instead of a registry: an OCI image layout directory
//! (`oci:DIR`), the same as one tar (`oci-archive:FILE`), or a tar `docker load` reads
//! (`docker-archive:FILE`). Blobs are streamed from the registry to disk, never held in memory.
//!
//! The layout uses OCI media types throughout (a Docker schema 2 dependency image is
//! converted: same blobs, OCI descriptors), so umoci and skopeo read it as well as Docker.
//!
//! ```
//! use imagespec::registry::layout::OutputTarget;
//! let target: OutputTarget = "oci:./out".parse().unwrap();
//! assert_eq!(target, OutputTarget::OciDir("./out".into()));
//! ```

use super::client::{RegistryClient, RegistryError};
use oci_client::manifest::{OciDescriptor, OciImageManifest};
use std::fs;
use std::path::{Path, PathBuf};

/// Where `--output` writes the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputTarget {
    OciDir(PathBuf),
    OciArchive(PathBuf),
    DockerArchive(PathBuf),
}

impl std::str::FromStr for OutputTarget {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (kind, path) = s.split_once(':').ok_or_else(|| {
            format!("`{s}`: expected oci:DIR, oci-archive:FILE or docker-archive:FILE")
        })?;
        if path.is_empty() {
            return Err(format!("`{s}`: the path is missing"));
        }
        match kind {
            "oci" => Ok(OutputTarget::OciDir(path.into())),
            "oci-archive" => Ok(OutputTarget::OciArchive(path.into())),
            "docker-archive" => Ok(OutputTarget::DockerArchive(path.into())),
            other => Err(format!(
                "`{other}:`: unknown output kind; expected oci:, oci-archive: or docker-archive:"
            )),
        }
    }
}

impl std::fmt::Display for OutputTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OutputTarget::OciDir(p) => write!(f, "oci:{}", p.display()),
            OutputTarget::OciArchive(p) => write!(f, "oci-archive:{}", p.display()),
            OutputTarget::DockerArchive(p) => write!(f, "docker-archive:{}", p.display()),
        }
    }
}

/// An image to write: its layers are the dependency image's (read from `source` in the
/// registry) plus local ones.
pub struct ImageToWrite<'a> {
    /// `[registry/]name:tag`, the name the written image carries.
    pub image: &'a str,
    /// The image the remote layers are read from.
    pub source: &'a str,
    pub manifest: &'a OciImageManifest,
    pub config: &'a [u8],
    /// Layers present on disk, by digest.
    pub local_layers: Vec<(&'a str, &'a Path)>,
}

/// A failure writing the output.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(
        "the dependency image's manifest names the blob {digest:?}, not `sha256:` and 64 hex \
         digits: it is not written (its name would be a path)"
    )]
    BadDigest { digest: String },
}

/// A blob digest that is safe as a file name under `blobs/sha256/`: the registry (named by
/// the spec) writes the manifest, and `sha256:../../x` would be written outside the output.
fn check_digest(digest: &str) -> Result<(), LayoutError> {
    let hex = digest.strip_prefix("sha256:").unwrap_or_default();
    if hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        Ok(())
    } else {
        Err(LayoutError::BadDigest {
            digest: digest.to_string(),
        })
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> LayoutError {
    let path = path.to_path_buf();
    move |source| LayoutError::Io { path, source }
}

fn hex(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap_or(digest)
}

/// The manifest with OCI media types (the blobs are the same).
fn as_oci(manifest: &OciImageManifest) -> OciImageManifest {
    use oci_client::manifest as m;
    let mut out = manifest.clone();
    out.media_type = Some(m::OCI_IMAGE_MEDIA_TYPE.to_string());
    out.config.media_type = m::IMAGE_CONFIG_MEDIA_TYPE.to_string();
    for layer in &mut out.layers {
        if layer.media_type == m::IMAGE_DOCKER_LAYER_GZIP_MEDIA_TYPE {
            layer.media_type = m::IMAGE_LAYER_GZIP_MEDIA_TYPE.to_string();
        } else if layer.media_type == m::IMAGE_DOCKER_LAYER_TAR_MEDIA_TYPE {
            layer.media_type = m::IMAGE_LAYER_MEDIA_TYPE.to_string();
        }
    }
    out
}

/// Puts every blob of `image` into `blobs` (as `<hex>` files), fetching what is not local.
async fn collect_blobs(
    client: &RegistryClient,
    image: &ImageToWrite<'_>,
    blobs: &Path,
) -> Result<(), LayoutError> {
    for layer in &image.manifest.layers {
        check_digest(&layer.digest)?;
    }
    check_digest(&image.manifest.config.digest)?;
    fs::create_dir_all(blobs).map_err(io(blobs))?;
    for layer in &image.manifest.layers {
        let target = blobs.join(hex(&layer.digest));
        if target.exists() {
            continue;
        }
        match image.local_layers.iter().find(|(d, _)| *d == layer.digest) {
            Some((_, path)) => {
                fs::copy(path, &target).map_err(io(path))?;
            }
            None => {
                client
                    .blob_to_file(image.source, &layer.digest, &target)
                    .await?
            }
        }
    }
    let config = blobs.join(hex(&image.manifest.config.digest));
    fs::write(&config, image.config).map_err(io(&config))?;
    Ok(())
}

/// Writes `image` to `target`.
pub async fn write(
    client: &RegistryClient,
    image: &ImageToWrite<'_>,
    target: &OutputTarget,
) -> Result<(), LayoutError> {
    match target {
        OutputTarget::OciDir(dir) => write_oci_dir(client, image, dir).await,
        OutputTarget::OciArchive(file) | OutputTarget::DockerArchive(file) => {
            let parent = file
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            fs::create_dir_all(parent).map_err(io(parent))?;
            let staging = tempfile::tempdir_in(parent).map_err(io(parent))?;
            if matches!(target, OutputTarget::OciArchive(_)) {
                write_oci_dir(client, image, staging.path()).await?;
            } else {
                write_docker_dir(client, image, staging.path()).await?;
            }
            tar_dir(staging.path(), file)
        }
    }
}

async fn write_oci_dir(
    client: &RegistryClient,
    image: &ImageToWrite<'_>,
    dir: &Path,
) -> Result<(), LayoutError> {
    let blobs = dir.join("blobs/sha256");
    collect_blobs(client, image, &blobs).await?;
    let manifest = as_oci(image.manifest);
    let body = serde_json::to_vec(&manifest).expect("a manifest serialises");
    let digest = format!("sha256:{}", sha256_hex(&body));
    let path = blobs.join(hex(&digest));
    fs::write(&path, &body).map_err(io(&path))?;
    let (_, tag) = super::split_tag(image.image);
    let ref_name = layout_ref_name(tag.unwrap_or("latest"));
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": oci_client::manifest::OCI_IMAGE_INDEX_MEDIA_TYPE,
        "manifests": [{
            "mediaType": oci_client::manifest::OCI_IMAGE_MEDIA_TYPE,
            "digest": digest,
            "size": body.len(),
            "annotations": {
                "org.opencontainers.image.ref.name": ref_name,
                "io.containerd.image.name": image.image,
            },
        }],
    });
    let path = dir.join("index.json");
    fs::write(&path, serde_json::to_vec(&index).expect("json")).map_err(io(&path))?;
    let path = dir.join("oci-layout");
    fs::write(&path, br#"{"imageLayoutVersion":"1.0.0"}"#).map_err(io(&path))
}

/// The layout's name for the image: its tag, when the tag fits the OCI layout grammar
/// (`component ::= alphanum (separator alphanum)*`, separators `-._:@+` or `--`); else
/// `latest`. flytekit's tags are base64url, so a few start or end with `_` or hold `__`,
/// which Docker accepts in a tag but OCI tools (skopeo, umoci) refuse as a layout ref; the
/// full name stays in `io.containerd.image.name`.
pub fn layout_ref_name(tag: &str) -> &str {
    let separator = |c: char| matches!(c, '-' | '.' | '_' | ':' | '@' | '+');
    let chars: Vec<char> = tag.chars().collect();
    let mut i = 0;
    let mut after_alphanum = false;
    while i < chars.len() {
        let c = chars[i];
        if c.is_ascii_alphanumeric() {
            after_alphanum = true;
            i += 1;
        } else if separator(c) && after_alphanum {
            // One separator, or "--", then an alphanumeric must follow.
            let width = if c == '-' && chars.get(i + 1) == Some(&'-') {
                2
            } else {
                1
            };
            i += width;
            if !chars.get(i).is_some_and(char::is_ascii_alphanumeric) {
                return "latest";
            }
            after_alphanum = false;
        } else {
            return "latest";
        }
    }
    if after_alphanum { tag } else { "latest" }
}

/// `docker save`'s format (manifest.json naming the config and layer files), which
/// `docker load` reads; gzip'd layers are fine for it.
async fn write_docker_dir(
    client: &RegistryClient,
    image: &ImageToWrite<'_>,
    dir: &Path,
) -> Result<(), LayoutError> {
    let blobs = dir.join("blobs/sha256");
    collect_blobs(client, image, &blobs).await?;
    let layers: Vec<String> = image
        .manifest
        .layers
        .iter()
        .map(|l: &OciDescriptor| format!("blobs/sha256/{}", hex(&l.digest)))
        .collect();
    let manifest = serde_json::json!([{
        "Config": format!("blobs/sha256/{}", hex(&image.manifest.config.digest)),
        "RepoTags": [image.image],
        "Layers": layers,
    }]);
    let path = dir.join("manifest.json");
    fs::write(&path, serde_json::to_vec(&manifest).expect("json")).map_err(io(&path))
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `dir`'s contents as a tar at `file` (sorted, fixed times: the same image gives the same
/// archive).
fn tar_dir(dir: &Path, file: &Path) -> Result<(), LayoutError> {
    let out = fs::File::create(file).map_err(io(file))?;
    let mut tar = tar::Builder::new(std::io::BufWriter::new(out));
    for entry in walkdir::WalkDir::new(dir).min_depth(1).sort_by_file_name() {
        let path = entry
            .map_err(|e| LayoutError::Io {
                path: dir.to_path_buf(),
                source: e.into(),
            })?
            .into_path();
        let rel = path.strip_prefix(dir).expect("under dir");
        let meta = fs::metadata(&path).map_err(io(&path))?;
        let mut header = tar::Header::new_gnu();
        header.set_mtime(crate::context::CONTEXT_MTIME);
        header.set_uid(0);
        header.set_gid(0);
        if meta.is_dir() {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_mode(0o755);
            header.set_size(0);
            tar.append_data(&mut header, format!("{}/", rel.display()), std::io::empty())
                .map_err(io(&path))?;
        } else {
            header.set_entry_type(tar::EntryType::Regular);
            header.set_mode(0o644);
            header.set_size(meta.len());
            tar.append_data(&mut header, rel, fs::File::open(&path).map_err(io(&path))?)
                .map_err(io(&path))?;
        }
    }
    tar.into_inner()
        .map_err(io(file))?
        .into_inner()
        .map_err(|e| LayoutError::Io {
            path: file.to_path_buf(),
            source: e.into_error(),
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sha256_hex_digests_become_file_names() {
        let good = format!("sha256:{}", "0a".repeat(32));
        assert!(check_digest(&good).is_ok());
        for bad in [
            "sha256:../../../etc/passwd".to_string(),
            format!("sha256:{}/x", "0a".repeat(31)),
            format!("sha256:{}", "0A".repeat(32)),
            format!("sha512:{}", "0a".repeat(32)),
            "0a".repeat(32),
        ] {
            assert!(check_digest(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn targets_parse() {
        assert_eq!(
            "oci-archive:/tmp/x.tar".parse(),
            Ok(OutputTarget::OciArchive("/tmp/x.tar".into()))
        );
        assert_eq!(
            "docker-archive:x.tar".parse(),
            Ok(OutputTarget::DockerArchive("x.tar".into()))
        );
        assert!("zip:x".parse::<OutputTarget>().is_err());
        assert!("oci:".parse::<OutputTarget>().is_err());
        assert!("x.tar".parse::<OutputTarget>().is_err());
    }

    #[test]
    fn layout_ref_names_follow_the_oci_grammar() {
        assert_eq!(
            layout_ref_name("cIxoTC7rdhBq7ozcg2L12Q"),
            "cIxoTC7rdhBq7ozcg2L12Q"
        );
        assert_eq!(layout_ref_name("a_b-c.d"), "a_b-c.d");
        assert_eq!(layout_ref_name("a--b"), "a--b");
        assert_eq!(layout_ref_name("_4ueNh38AuWVvJ4VXT7HnQ"), "latest");
        assert_eq!(layout_ref_name("abc_"), "latest");
        assert_eq!(layout_ref_name("a__b"), "latest");
        assert_eq!(layout_ref_name("a-_b"), "latest");
        assert_eq!(layout_ref_name("x_-y--z"), "latest");
        assert_eq!(layout_ref_name("a---b"), "latest");
    }
}
