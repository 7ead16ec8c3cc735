//! Images written to disk instead of a registry: an OCI image layout directory
//! (`oci:DIR`), the same as one tar (`oci-archive:FILE`), or a tar `docker load` reads
//! (`docker-archive:FILE`). Blobs are streamed from the registry to disk, never held in memory.
//!
//! Writing is safe to interrupt and to repeat: blobs go to a scratch file, are verified
//! (digest and size) and renamed into place; blobs already in a layout are verified before
//! they are kept; `index.json` is merged (other images kept, the same ref name replaced) and
//! replaced atomically; archives are written beside their target and renamed over it.
//!
//! Nothing is written through a link someone planted in the output: a symbolic link where
//! the layout needs a directory (`blobs`, `blobs/sha256`) is refused ([`LayoutError::Link`]),
//! and a link where a file goes (a blob, `index.json`, `oci-layout`, the archive itself) is
//! replaced by the file, never read or written through. Files get mode 0666 less the umask
//! (0644 under the usual 022), as `docker save` and `skopeo copy` give theirs; directories
//! 0777 less the umask.
//!
//! The layout uses OCI media types throughout (a Docker schema 2 dependency image is
//! converted: same blobs, OCI descriptors), so umoci and skopeo read it as well as Docker.
//!
//! ```
//! use imagespec::publish::layout::OutputTarget;
//! let target: OutputTarget = "oci:./out".parse().unwrap();
//! assert_eq!(target, OutputTarget::OciDir("./out".into()));
//! ```

use super::{Check, PublishError, Publisher};
use crate::oci::digest::Algorithm;
use crate::oci::image::{Blob, Descriptor};
use crate::oci::{Digest, Image, ImageRef, Index, Platform};
use crate::progress::{Event, Meter, OUTPUT_STEP, Progress};
use crate::registry::client::{RegistryClient, RegistryError};
use crate::scratch::{ScratchDir, ScratchFile};
use oci_client::manifest::{OCI_IMAGE_MEDIA_TYPE, OciImageManifest};
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

/// A failure writing the output.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{} is a symbolic link (to {}) where the OCI layout needs a directory: imagespec does \
         not write through it (it could lead outside the output); remove the link, or write \
         to another directory",
        path.display(),
        target.display()
    )]
    Link { path: PathBuf, target: PathBuf },
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(
        "blob {digest} ({what}): {found} instead; the registry sent other bytes than its manifest names, nothing was written under that name"
    )]
    BlobMismatch {
        digest: String,
        what: String,
        found: String,
    },
    #[error(
        "{}: not an OCI image index ({message}); move it away, or write to another directory",
        path.display()
    )]
    Index { path: PathBuf, message: String },
    #[error(
        "the dependency image's manifest names the blob {digest:?}, not `sha256:` and 64 hex \
         digits: it is not written (its name would be a path)"
    )]
    BadDigest { digest: String },
    #[error(
        "a docker-archive holds one image per name, not several platforms: write an OCI \
         layout (oci:DIR) or archive (oci-archive:FILE)"
    )]
    SeveralPlatforms,
    #[error(transparent)]
    Epoch(#[from] crate::oci::epoch::EpochError),
    #[error("the image for {platform} is only a descriptor: its blobs are not at hand")]
    NotLocal { platform: Platform },
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

/// Makes `path` a directory of the layout (0777 less the umask) unless it is one: a
/// symbolic link there is refused, wherever it points (`blobs -> /home/u` would put the
/// blobs there), and so is a file.
pub(super) fn layout_dir(path: &Path) -> Result<(), LayoutError> {
    for _ in 0..2 {
        match fs::symlink_metadata(path) {
            Ok(meta) if meta.is_dir() => return Ok(()),
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(LayoutError::Link {
                    path: path.to_path_buf(),
                    target: fs::read_link(path).map_err(io(path))?,
                });
            }
            Ok(_) => {
                return Err(io(path)(std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "not a directory, where the OCI layout needs one",
                )));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => match fs::create_dir(path) {
                Ok(()) => return Ok(()),
                // Made meanwhile (another run writing into the same layout): look again.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io(path)(e)),
            },
            Err(e) => return Err(io(path)(e)),
        }
    }
    Err(io(path)(std::io::Error::other(
        "created and gone again: another process is changing the layout",
    )))
}

/// Opens the regular file `path` for reading, never through a link and never blocking
/// (a FIFO would wait for a writer).
fn open_no_link(path: &Path) -> std::io::Result<fs::File> {
    use rustix::fs::OFlags;
    use std::os::unix::fs::OpenOptionsExt;
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags((OFlags::NOFOLLOW | OFlags::NONBLOCK).bits() as i32)
        .open(path)?;
    let file_type = file.metadata()?.file_type();
    if file_type.is_file() {
        Ok(file)
    } else {
        Err(crate::source::untrusted::not_regular(file_type))
    }
}

/// Whether `path` is a regular file (not a link to one).
fn is_plain_file(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.is_file())
}

/// The file of the layout at `path`, unless there is none or it is a link (which is then
/// replaced, never read: `index.json -> ~/.docker/config.json` would copy the file into the
/// layout).
pub(super) fn read_layout_file(path: &Path) -> Result<Option<Vec<u8>>, LayoutError> {
    use std::io::Read;
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(path)(e)),
        Ok(meta) if meta.file_type().is_symlink() => Ok(None),
        Ok(_) => {
            let mut bytes = Vec::new();
            open_no_link(path)
                .and_then(|mut file| file.read_to_end(&mut bytes))
                .map_err(io(path))?;
            Ok(Some(bytes))
        }
    }
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

/// What a blob file holds: `Ok(())` when it is `digest` with `size` bytes (`size` < 0:
/// any), else a description of what it is instead.
pub(super) fn check_blob(
    path: &Path,
    digest: &Digest,
    size: i64,
) -> Result<Result<(), String>, LayoutError> {
    if digest.algorithm() != Algorithm::Sha256 {
        return Ok(Err(format!(
            "`{digest}` is not a sha256 digest, which is all an OCI layout written here holds"
        )));
    }
    let mut file = open_no_link(path).map_err(io(path))?;
    let len = file.metadata().map_err(io(path))?.len();
    if size >= 0 && len != size as u64 {
        return Ok(Err(format!("{len} bytes, {size} expected")));
    }
    let mut verifier = digest.verifier();
    let mut buffer = vec![0; 1 << 16];
    loop {
        let n = std::io::Read::read(&mut file, &mut buffer).map_err(io(path))?;
        if n == 0 {
            break;
        }
        verifier.update(&buffer[..n]);
    }
    let found = verifier.finish();
    Ok(if found == *digest {
        Ok(())
    } else {
        Err(found.to_string())
    })
}

/// Where one blob comes from.
enum BlobSource<'a> {
    /// Read from the registry (the repository of this image).
    Registry(&'a ImageRef),
    /// A file on disk.
    File(&'a Path),
    Bytes(&'a [u8]),
}

/// Puts blob `digest` (`size` bytes) into `blobs`, unless a verified copy is there: written
/// to a scratch file in `scratch` (same file system), verified, then renamed. A blob that is
/// there but wrong (an older run's interrupted or corrupted download) is replaced, and so is
/// anything there that is not a regular file (a link is never read through).
/// `written` hears the bytes written so far, when a layer's are counted.
#[allow(clippy::too_many_arguments)]
async fn put_blob(
    client: &RegistryClient,
    blobs: &Path,
    scratch: &Path,
    digest: &Digest,
    size: i64,
    from: BlobSource<'_>,
    progress: &Progress,
    written: Option<Meter>,
) -> Result<(), LayoutError> {
    let target = blobs.join(digest.hex());
    match fs::symlink_metadata(&target) {
        Ok(meta) if meta.is_file() => match check_blob(&target, digest, size)? {
            Ok(()) => return Ok(()),
            Err(found) => progress.event(Event::Info(&format!(
                "{}: {found} instead of {digest}; replacing it",
                target.display()
            ))),
        },
        Ok(_) => progress.event(Event::Info(&format!(
            "{}: not a regular file; replacing it",
            target.display()
        ))),
        Err(_) => {}
    }
    let file = ScratchFile::for_output_in(scratch, "blob").map_err(io(scratch))?;
    match from {
        BlobSource::Registry(image) => {
            client
                .blob_to_file(
                    image,
                    digest.as_str(),
                    Some(size.max(0) as u64),
                    file.path(),
                    written.clone(),
                )
                .await?
        }
        BlobSource::File(path) => {
            let mut source = fs::File::open(path).map_err(io(path))?;
            let copied = std::io::copy(&mut source, &mut file.file()).map_err(io(file.path()))?;
            if let Some(written) = &written {
                written(copied);
            }
        }
        BlobSource::Bytes(bytes) => {
            std::io::Write::write_all(&mut file.file(), bytes).map_err(io(file.path()))?
        }
    }
    if let Err(found) = check_blob(file.path(), digest, size)? {
        let what = match from {
            BlobSource::Registry(image) => format!("from {image}"),
            BlobSource::File(path) => path.display().to_string(),
            BlobSource::Bytes(_) => "written by imagespec".into(),
        };
        return Err(LayoutError::BlobMismatch {
            digest: digest.to_string(),
            what,
            found,
        });
    }
    file.persist(&target).map_err(io(&target))
}

/// Puts every blob of `image` into `<dir>/blobs/sha256`, fetching what is not there.
async fn collect_blobs(
    client: &RegistryClient,
    image: &Image,
    dir: &Path,
    progress: &Progress,
) -> Result<(), LayoutError> {
    for layer in image.layers() {
        check_digest(layer.descriptor.digest.as_str())?;
    }
    check_digest(image.config_descriptor().digest.as_str())?;
    layout_dir(&dir.join("blobs"))?;
    let blobs = dir.join("blobs/sha256");
    layout_dir(&blobs)?;
    // The layers not there yet, each counted from the start so that the step shows the
    // whole size to write (`writing 45.2 MB / 120.0 MB`).
    let meters: Vec<Option<Meter>> = image
        .layers()
        .iter()
        .map(|layer| {
            let d = &layer.descriptor;
            (!is_plain_file(&blobs.join(d.digest.hex()))).then(|| {
                let meter = progress.write_meter(OUTPUT_STEP, d.digest.as_str(), d.size);
                meter(0);
                meter
            })
        })
        .collect();
    for (layer, meter) in image.layers().iter().zip(meters) {
        let from = match &layer.blob {
            Blob::File(file) => BlobSource::File(file.path()),
            Blob::Bytes(bytes) => BlobSource::Bytes(bytes),
            Blob::Remote(source) => BlobSource::Registry(source),
        };
        let d = &layer.descriptor;
        let size = i64::try_from(d.size).unwrap_or(i64::MAX);
        put_blob(client, &blobs, dir, &d.digest, size, from, progress, meter).await?;
    }
    let config = image.config_bytes();
    put_blob(
        client,
        &blobs,
        dir,
        &image.config_descriptor().digest,
        config.len() as i64,
        BlobSource::Bytes(config),
        progress,
        None,
    )
    .await
}

/// Writes `bytes` to `path` through a scratch file and a rename: `path` is always either
/// the old or the new content (a link there is replaced, not written through).
pub(super) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), LayoutError> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let file = ScratchFile::for_output_in(dir, "write").map_err(io(dir))?;
    std::io::Write::write_all(&mut file.file(), bytes).map_err(io(file.path()))?;
    file.persist(path).map_err(io(path))
}

/// Writes `image` to `target`. Safe to interrupt and to repeat: every file appears complete
/// or not at all, blobs already there are verified before they are kept, and scratch files
/// are removed (also on SIGINT/SIGTERM, see [`crate::scratch`]).
pub async fn write(
    client: &RegistryClient,
    name: &ImageRef,
    image: &Image,
    target: &OutputTarget,
    progress: &Progress,
) -> Result<Digest, LayoutError> {
    write_images(client, name, &[(None, image)], target, progress).await
}

/// Writes the images of several platforms (`os/arch[/variant]`, each with its image) as one
/// OCI image index named `name`, to an OCI layout or archive, as [`write()`] writes one image.
/// A `docker-archive:` holds one image per name: it is refused.
pub async fn write_platforms(
    client: &RegistryClient,
    name: &ImageRef,
    images: &[(&Platform, &Image)],
    target: &OutputTarget,
    progress: &Progress,
) -> Result<Digest, LayoutError> {
    let images: Vec<(Option<&Platform>, &Image)> =
        images.iter().map(|(p, i)| (Some(*p), *i)).collect();
    write_images(client, name, &images, target, progress).await
}

/// One image (`None` platform: written as the layout's image itself) or several platforms'
/// (an index), to `target`.
async fn write_images(
    client: &RegistryClient,
    name: &ImageRef,
    images: &[(Option<&Platform>, &Image)],
    target: &OutputTarget,
    progress: &Progress,
) -> Result<Digest, LayoutError> {
    match target {
        OutputTarget::DockerArchive(_) if images.len() != 1 => {
            return Err(LayoutError::SeveralPlatforms);
        }
        _ => {}
    }
    match target {
        OutputTarget::OciDir(dir) => {
            write_oci_dir(client, name, images, dir, Shared::Yes, progress).await
        }
        OutputTarget::OciArchive(file) | OutputTarget::DockerArchive(file) => {
            let parent = file
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            // Beside the archive: the same file system, so the rename at the end is atomic.
            let staging = ScratchDir::new_in(parent, "staging").map_err(io(parent))?;
            let digest = if matches!(target, OutputTarget::OciArchive(_)) {
                write_oci_dir(client, name, images, staging.path(), Shared::No, progress).await?
            } else {
                write_docker_dir(client, name, images[0].1, staging.path(), progress).await?
            };
            let archive = ScratchFile::for_output_in(parent, "archive").map_err(io(parent))?;
            tar_dir(staging.path(), archive.file(), archive.path())?;
            drop(staging);
            // Renamed over FILE: a link there is replaced, as `docker save -o` replaces it,
            // and what it pointed at is left as it was.
            archive.persist(file).map_err(io(file))?;
            Ok(digest)
        }
    }
}

/// `index.json` with `entry` added: the other images of an existing index are kept, one
/// with the same `org.opencontainers.image.ref.name` is replaced (as `skopeo copy` to
/// `oci:DIR:REF` does).
fn merged_index(
    existing: Option<&[u8]>,
    entry: serde_json::Value,
) -> Result<serde_json::Value, String> {
    const REF_NAME: &str = "org.opencontainers.image.ref.name";
    let mut index = match existing {
        None => serde_json::json!({
            "schemaVersion": 2,
            "mediaType": oci_client::manifest::OCI_IMAGE_INDEX_MEDIA_TYPE,
            "manifests": [],
        }),
        Some(bytes) => serde_json::from_slice(bytes).map_err(|e| e.to_string())?,
    };
    let ref_name = entry["annotations"][REF_NAME].clone();
    let manifests = index
        .as_object_mut()
        .ok_or("not a JSON object")?
        .entry("manifests")
        .or_insert_with(|| serde_json::json!([]))
        .as_array_mut()
        .ok_or("`manifests` is not a list")?;
    manifests.retain(|m| m["annotations"][REF_NAME] != ref_name);
    manifests.push(entry);
    Ok(index)
}

/// Whether other runs may write into a layout at the same time (a user's directory), or
/// not (our own staging folder, which is locked as scratch already).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shared {
    Yes,
    No,
}

/// Writes `images` into the layout at `dir`; the digest `index.json` names them by.
async fn write_oci_dir(
    client: &RegistryClient,
    name: &ImageRef,
    images: &[(Option<&Platform>, &Image)],
    dir: &Path,
    shared: Shared,
    progress: &Progress,
) -> Result<Digest, LayoutError> {
    fs::create_dir_all(dir).map_err(io(dir))?;
    let mut index = Index::default();
    let mut alone = None;
    for (platform, image) in images {
        collect_blobs(client, image, dir, progress).await?;
        let body = serde_json::to_vec(&as_oci(&image.manifest())).expect("a manifest serialises");
        let descriptor = put_bytes(client, dir, &body, progress).await?;
        let descriptor = Descriptor::new(OCI_IMAGE_MEDIA_TYPE, descriptor.0, descriptor.1);
        match platform {
            Some(platform) => index.push_descriptor(platform, descriptor),
            None => alone = Some(descriptor),
        }
    }
    // One image is the layout's image itself; several platforms' are joined by an index
    // blob, which the layout's index.json names (as `skopeo copy --all` writes them).
    let top = match alone {
        Some(one) if images.len() == 1 => one,
        _ => {
            let (digest, size) = put_bytes(client, dir, &index.to_bytes(), progress).await?;
            Descriptor::new(index.media_type(), digest, size)
        }
    };
    let (media_type, digest, size) = (&top.media_type, top.digest.as_str(), top.size);
    let layout = dir.join("oci-layout");
    let layout_json = br#"{"imageLayoutVersion":"1.0.0"}"#;
    if read_layout_file(&layout)?.as_deref() != Some(layout_json.as_slice()) {
        write_atomically(&layout, layout_json)?;
    }
    let ref_name = layout_ref_name(name.tag().unwrap_or("latest"));
    let entry = serde_json::json!({
        "mediaType": media_type,
        "digest": digest,
        "size": size,
        "annotations": {
            "org.opencontainers.image.ref.name": ref_name,
            "io.containerd.image.name": name.to_string(),
        },
    });
    // Read, merge and replace under a lock on the directory: two runs writing into one
    // layout at once both keep their image.
    let lock = fs::File::open(dir).map_err(io(dir))?;
    if shared == Shared::Yes {
        lock.lock().map_err(io(dir))?;
    }
    let path = dir.join("index.json");
    let existing = read_layout_file(&path)?;
    let index = merged_index(existing.as_deref(), entry).map_err(|message| LayoutError::Index {
        path: path.clone(),
        message,
    })?;
    write_atomically(&path, &serde_json::to_vec(&index).expect("json"))?;
    Ok(top.digest)
}

/// Puts `body` (a manifest or index made here) into the layout's blobs: its digest and size.
async fn put_bytes(
    client: &RegistryClient,
    dir: &Path,
    body: &[u8],
    progress: &Progress,
) -> Result<(Digest, u64), LayoutError> {
    let digest = Digest::of_bytes(body);
    let blobs = dir.join("blobs/sha256");
    let size = body.len() as i64;
    let from = BlobSource::Bytes(body);
    put_blob(client, &blobs, dir, &digest, size, from, progress, None).await?;
    Ok((digest, body.len() as u64))
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
/// `docker load` reads; gzip'd layers are fine for it. The digest is the config's (the
/// image ID `docker load` gives it): an archive has no manifest.
async fn write_docker_dir(
    client: &RegistryClient,
    name: &ImageRef,
    image: &Image,
    dir: &Path,
    progress: &Progress,
) -> Result<Digest, LayoutError> {
    collect_blobs(client, image, dir, progress).await?;
    let layers: Vec<String> = image
        .layers()
        .iter()
        .map(|l| format!("blobs/sha256/{}", l.descriptor.digest.hex()))
        .collect();
    let config = &image.config_descriptor().digest;
    let manifest = serde_json::json!([{
        "Config": format!("blobs/sha256/{}", config.hex()),
        "RepoTags": [name.to_string()],
        "Layers": layers,
    }]);
    let path = dir.join("manifest.json");
    fs::write(&path, serde_json::to_vec(&manifest).expect("json")).map_err(io(&path))?;
    Ok(config.clone())
}

/// `dir`'s contents as a tar into `out` (at `file`; sorted, fixed times —
/// `SOURCE_DATE_EPOCH`'s, else 1980-01-01: the same image gives the same archive).
fn tar_dir(dir: &Path, out: &fs::File, file: &Path) -> Result<(), LayoutError> {
    let mtime = crate::oci::epoch::layer_mtime(crate::oci::epoch::SourceDateEpoch::from_env()?);
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
        header.set_mtime(mtime);
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

/// An OCI layout, oci-archive or docker-archive to write images to, under `name`; blobs
/// that are in a registry are read with `client`.
pub struct Layout<'a> {
    pub client: &'a RegistryClient,
    /// `[registry/]name:tag`, the name the written image carries.
    pub name: &'a ImageRef,
    pub target: &'a OutputTarget,
    pub progress: &'a Progress,
}

impl Layout<'_> {
    async fn checked(&self, check: Check) -> Result<(), PublishError> {
        check.start().finish().await
    }
}

impl Publisher for Layout<'_> {
    /// The digest is the one `index.json` names (a docker-archive's: the config's).
    async fn publish(&self, image: &Image, check: Check) -> Result<Digest, PublishError> {
        self.checked(check).await?;
        Ok(write(self.client, self.name, image, self.target, self.progress).await?)
    }

    /// Only the images are written (as the index's own blob): the entries without one are
    /// in a registry, not here, and are refused.
    async fn publish_index(&self, index: &Index, check: Check) -> Result<Digest, PublishError> {
        self.checked(check).await?;
        let images = index
            .manifests
            .iter()
            .map(|e| match &e.image {
                Some(image) => Ok((&e.platform, image)),
                None => Err(LayoutError::NotLocal {
                    platform: e.platform.clone(),
                }),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let written = write_platforms(self.client, self.name, &images, self.target, self.progress);
        Ok(written.await?)
    }
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

    /// The digests of `index`'s manifests, in order.
    fn manifest_digests(index: &serde_json::Value) -> Vec<&str> {
        index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["digest"].as_str().unwrap())
            .collect()
    }

    #[test]
    fn merging_an_index_keeps_other_images_and_replaces_the_same_ref_name() {
        let entry = |name: &str, digest: &str| {
            serde_json::json!({
                "mediaType": oci_client::manifest::OCI_IMAGE_MEDIA_TYPE,
                "digest": digest,
                "size": 1,
                "annotations": {"org.opencontainers.image.ref.name": name},
            })
        };
        let fresh = merged_index(None, entry("a", "sha256:1")).unwrap();
        assert_eq!(fresh["schemaVersion"], 2);
        assert_eq!(fresh["manifests"].as_array().unwrap().len(), 1);

        let mut other = fresh.clone();
        other["annotations"] = serde_json::json!({"kept": "yes"});
        other["manifests"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({"digest": "sha256:unnamed"}));
        let bytes = serde_json::to_vec(&other).unwrap();
        let merged = merged_index(Some(&bytes), entry("b", "sha256:2")).unwrap();
        let digests = manifest_digests(&merged);
        assert_eq!(digests, ["sha256:1", "sha256:unnamed", "sha256:2"]);
        assert_eq!(merged["annotations"]["kept"], "yes", "other fields stay");

        let bytes = serde_json::to_vec(&merged).unwrap();
        let replaced = merged_index(Some(&bytes), entry("a", "sha256:3")).unwrap();
        let digests = manifest_digests(&replaced);
        assert_eq!(digests, ["sha256:unnamed", "sha256:2", "sha256:3"]);

        assert!(merged_index(Some(b"{\"manifests\": 1}"), entry("a", "x")).is_err());
        assert!(merged_index(Some(b"\0\0\0"), entry("a", "x")).is_err());
        assert!(merged_index(Some(b"[]"), entry("a", "x")).is_err());
    }

    #[test]
    fn blobs_are_checked_by_size_and_digest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        fs::write(&path, b"hello").unwrap();
        let digest = Digest::of_bytes(b"hello");
        assert_eq!(check_blob(&path, &digest, 5).unwrap(), Ok(()));
        assert_eq!(check_blob(&path, &digest, -1).unwrap(), Ok(()));
        assert!(check_blob(&path, &digest, 6).unwrap().is_err());
        fs::write(&path, b"hellO").unwrap();
        assert_eq!(
            check_blob(&path, &digest, 5).unwrap(),
            Err(format!("sha256:{}", Digest::of_bytes(b"hellO").hex()))
        );
        let sha512 = Digest::parse(&format!("sha512:{}", "0".repeat(128))).unwrap();
        assert!(check_blob(&path, &sha512, 5).unwrap().is_err());
    }

    /// An image of one layer, all on disk under `dir` (no registry is asked), and the
    /// layer's digest.
    fn local_image(dir: &Path) -> (Image, Digest) {
        use crate::oci::image::{History, NewLayer};
        let layer = crate::scratch::ScratchFile::new_in(dir, "layer").unwrap();
        std::io::Write::write_all(&mut layer.file(), b"layer bytes").unwrap();
        let config = serde_json::json!({"architecture": "amd64", "os": "linux"});
        let digest = Digest::of_bytes(b"layer bytes");
        let new = NewLayer {
            digest: digest.clone(),
            diff_id: Digest::of_bytes(b"tar"),
            size: 11,
            blob: Blob::file(layer),
            history: History::new("test", "test"),
        };
        let image = Image::scratch(config).append(vec![new], |_| {}, &[]);
        (image, digest)
    }

    async fn write_local(dir: &Path, target: &OutputTarget) -> Result<(), LayoutError> {
        let (image, _) = local_image(dir);
        let (client, progress) = offline();
        write(&client, test_name(), &image, target, &progress).await?;
        Ok(())
    }

    fn mkfifo(path: &Path) {
        rustix::fs::mknodat(
            rustix::fs::CWD,
            path,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
    }

    /// A link where the layout needs a directory is refused, naming the link and where it
    /// points, and nothing is written there; links where files go are replaced unread.
    #[tokio::test]
    async fn links_planted_in_a_layout_are_refused_or_replaced() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        for link in ["blobs", "blobs/sha256"] {
            let layout = d.join(format!("layout-{}", link.replace('/', "-")));
            let victim = d.join(format!("victim-{}", link.replace('/', "-")));
            fs::create_dir_all(&victim).unwrap();
            fs::create_dir_all(layout.join(link).parent().unwrap()).unwrap();
            std::os::unix::fs::symlink(&victim, layout.join(link)).unwrap();
            let err = write_local(d, &OutputTarget::OciDir(layout.clone()))
                .await
                .unwrap_err();
            assert!(
                matches!(&err, LayoutError::Link { path, target }
                    if *path == layout.join(link) && *target == victim),
                "{err}"
            );
            assert!(err.to_string().contains("is a symbolic link (to "), "{err}");
            assert_eq!(fs::read_dir(&victim).unwrap().count(), 0, "{link}");
        }

        let layout = d.join("file-links");
        fs::create_dir_all(&layout).unwrap();
        fs::write(
            d.join("secret.json"),
            r#"{"manifests": [], "token": "s3cret"}"#,
        )
        .unwrap();
        std::os::unix::fs::symlink(d.join("secret.json"), layout.join("index.json")).unwrap();
        write_local(d, &OutputTarget::OciDir(layout.clone()))
            .await
            .unwrap();
        let index = fs::read_to_string(layout.join("index.json")).unwrap();
        assert!(!index.contains("s3cret"), "{index}");
        assert!(
            fs::symlink_metadata(layout.join("index.json"))
                .unwrap()
                .is_file()
        );
        assert!(
            fs::read_to_string(d.join("secret.json"))
                .unwrap()
                .contains("s3cret")
        );
    }

    /// FIFOs where a blob goes, or named like a killed run's scratch file, never block a
    /// write (opening one for reading waits for a writer): the blob is replaced, the
    /// stranger's FIFO left alone.
    #[test]
    fn fifos_planted_in_a_layout_do_not_block_it() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        let layout = d.join("layout");
        let (_, digest) = local_image(d);
        fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
        let blob = layout.join("blobs/sha256").join(digest.hex());
        mkfifo(&blob);
        mkfifo(&layout.join(format!("{}blob-planted", crate::scratch::PREFIX)));
        // On a thread of its own: a blocked open() cannot be cancelled, only waited for.
        let (done, wait) = std::sync::mpsc::channel();
        let (dir, target) = (d.to_path_buf(), OutputTarget::OciDir(layout.clone()));
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let _ = done.send(
                runtime
                    .block_on(write_local(&dir, &target))
                    .map_err(|e| e.to_string()),
            );
        });
        wait.recv_timeout(std::time::Duration::from_secs(20))
            .expect("a FIFO blocked the write")
            .unwrap();
        assert_eq!(fs::read(&blob).unwrap(), b"layer bytes");
    }

    /// Written files are 0666 less the umask, as `docker save`'s: 0644 under the usual
    /// 022 (the umask of the test process is not changed: the expectation follows it).
    #[tokio::test]
    async fn written_files_get_0666_less_the_umask() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        // The umask, as a file created with 0666 gets it.
        let probe = d.join("probe");
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&probe)
            .unwrap();
        let expected = fs::metadata(&probe).unwrap().permissions().mode() & 0o777;
        let layout = d.join("layout");
        write_local(d, &OutputTarget::OciDir(layout.clone()))
            .await
            .unwrap();
        let archive = d.join("image.tar");
        fs::write(&archive, "old").unwrap();
        fs::set_permissions(&archive, fs::Permissions::from_mode(0o600)).unwrap();
        write_local(d, &OutputTarget::OciArchive(archive.clone()))
            .await
            .unwrap();
        let mut files = vec![
            layout.join("index.json"),
            layout.join("oci-layout"),
            archive,
        ];
        for entry in fs::read_dir(layout.join("blobs/sha256")).unwrap() {
            files.push(entry.unwrap().path());
        }
        assert_eq!(files.len(), 6, "{files:?}");
        for file in files {
            let mode = fs::metadata(&file).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, expected, "{}", file.display());
        }
    }

    #[test]
    fn layout_ref_names_follow_the_oci_grammar() {
        for valid in ["cIxoTC7rdhBq7ozcg2L12Q", "a_b-c.d", "a--b"] {
            assert_eq!(layout_ref_name(valid), valid);
        }
        let invalid = [
            "_4ueNh38AuWVvJ4VXT7HnQ",
            "abc_",
            "a__b",
            "a-_b",
            "x_-y--z",
            "a---b",
        ];
        for name in invalid {
            assert_eq!(layout_ref_name(name), "latest", "{name}");
        }
    }

    /// A registry session nothing listens for, and a quiet progress view.
    /// A temporary directory with a local image in it, an offline client, and an `oci:`
    /// target in the directory's `name`.
    fn offline_oci_dir(
        name: &str,
    ) -> (
        tempfile::TempDir,
        Image,
        (RegistryClient, Progress),
        OutputTarget,
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let (image, _) = local_image(tmp.path());
        let target = OutputTarget::OciDir(tmp.path().join(name));
        (tmp, image, offline(), target)
    }

    fn offline() -> (RegistryClient, Progress) {
        let client = RegistryClient::new("127.0.0.1:9", None, Default::default());
        (client, Progress::new(false, true))
    }

    /// The name the tests' images are written under.
    fn test_name() -> &'static ImageRef {
        static NAME: std::sync::LazyLock<ImageRef> =
            std::sync::LazyLock::new(|| "127.0.0.1:9/x:1".parse().unwrap());
        &NAME
    }

    fn layout_at<'a>(
        client: &'a RegistryClient,
        target: &'a OutputTarget,
        progress: &'a Progress,
    ) -> Layout<'a> {
        Layout {
            client,
            name: test_name(),
            target,
            progress,
        }
    }

    /// The publisher returns the digest the layout names the image by, and an index of
    /// the platforms' images when there are several; a docker-archive takes one image.
    #[tokio::test]
    async fn the_layout_publisher_returns_what_index_json_names() {
        let (tmp, image, (client, progress), target) = offline_oci_dir("one");
        let d = tmp.path();
        let layout = layout_at(&client, &target, &progress);
        let named = |dir: &str| {
            let index: serde_json::Value =
                serde_json::from_slice(&fs::read(d.join(dir).join("index.json")).unwrap()).unwrap();
            index["manifests"][0]["digest"]
                .as_str()
                .unwrap()
                .to_string()
        };
        let digest = layout.publish(&image, Check::none()).await.unwrap();
        assert_eq!(digest.as_str(), named("one"));
        assert_eq!(
            digest,
            Digest::of_bytes(&serde_json::to_vec(&as_oci(&image.manifest())).unwrap())
        );

        let index = Index::of_images([
            (Platform::parse("linux/amd64").unwrap(), image.clone()),
            (Platform::parse("linux/arm64").unwrap(), image.clone()),
        ]);
        let target = OutputTarget::OciDir(d.join("two"));
        let layout = Layout {
            target: &target,
            ..layout
        };
        let digest = layout.publish_index(&index, Check::none()).await.unwrap();
        assert_eq!(digest.as_str(), named("two"));
        assert!(d.join("two/blobs/sha256").join(digest.hex()).is_file());

        let mut remote = Index::default();
        let amd64 = Platform::parse("linux/amd64").unwrap();
        remote.push_descriptor(&amd64, image.descriptor());
        let refused = layout.publish_index(&remote, Check::none()).await;
        assert!(matches!(
            refused,
            Err(PublishError::Layout(LayoutError::NotLocal { .. }))
        ));
        let target = OutputTarget::DockerArchive(d.join("x.tar"));
        let layout = Layout {
            target: &target,
            ..layout
        };
        let refused = layout.publish_index(&index, Check::none()).await;
        assert!(matches!(
            refused,
            Err(PublishError::Layout(LayoutError::SeveralPlatforms))
        ));
        let digest = layout.publish(&image, Check::none()).await.unwrap();
        assert_eq!(&digest, &image.config_descriptor().digest, "the image ID");
    }

    /// A failed check writes nothing.
    #[tokio::test]
    async fn nothing_is_written_when_the_check_fails() {
        let (tmp, image, (client, progress), target) = offline_oci_dir("out");
        let d = tmp.path();
        let layout = layout_at(&client, &target, &progress);
        let changed = Check::new(|| {
            Err(crate::tag::TagError::Changed {
                name: "x".into(),
                before: "a".into(),
                after: "b".into(),
            })
        });
        let err = layout.publish(&image, changed).await.unwrap_err();
        assert!(matches!(err, PublishError::Check(_)), "{err}");
        assert!(!d.join("out").exists());
    }
}
