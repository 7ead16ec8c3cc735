//! The record of its inputs an image carries (`INPUTS_LABEL`), kept on this machine by the
//! image's manifest digest when this machine pushed it or read it. A digest names one
//! manifest, hence one config and one record, forever: the skip path then asks the registry
//! one manifest request (the existence check, a HEAD, which gives the digest) instead of
//! reading the manifest and config again to warn about renamed files. In a repository this
//! machine knows nothing of (its images pushed elsewhere: CI, another machine), the
//! existence check is a GET instead ([`ask_with_head`]), and the record is read through the
//! manifest it gave ([`explain::recorded_in_manifest`]): one manifest request either way
//! (an index imagespec pushed carries the record as an annotation, [`annotate`]; for one
//! without, the platform's manifest too: the record is in that image's config). Best
//! effort, as a cache is: a record that cannot be written or read is read from the registry.

use crate::explain::{self, INPUTS_LABEL, Inputs};
use crate::oci::{Digest, ImageRef, Index, Platform};
use crate::registry::client::{RawManifest, RegistryClient};
use oci_client::manifest::OciManifest;
use std::path::PathBuf;

/// The record of `image` (whose manifest digest is `digest`, when known) for `platform`:
/// kept here, else read from the registry, through `manifest` when the existence check read
/// it, and then kept. `None` when it has none or cannot be read.
pub(super) async fn inputs(
    client: &RegistryClient,
    image: &ImageRef,
    platform: &Platform,
    digest: Option<&Digest>,
    manifest: Option<RawManifest>,
) -> Option<Inputs> {
    if let Some(kept) = digest.and_then(kept) {
        return Some(kept);
    }
    let raw = match manifest {
        Some(raw) => raw,
        None => client.manifest(image).await.ok()?,
    };
    let read = match annotated(&raw) {
        Some(record) => record,
        None => explain::recorded_in_manifest(client, image, raw, platform)
            .await
            .ok()?,
    };
    if let Some(digest) = digest {
        keep(image, digest, &read);
    }
    Some(read)
}

/// Puts `inputs`, the record every platform's image carries in its config, on `index` too,
/// so that a reader of the index needs no platform's manifest to read it.
pub(super) fn annotate(index: &mut Index, inputs: &Inputs) {
    (index.annotations).insert(INPUTS_LABEL.to_string(), inputs.to_label());
}

/// The record an index carries ([`annotate`]); `None` for an image manifest, an index
/// without one, or one that does not read.
fn annotated(raw: &RawManifest) -> Option<Inputs> {
    let OciManifest::ImageIndex(index) = &raw.manifest else {
        return None;
    };
    let label = index.annotations.as_ref()?.get(INPUTS_LABEL)?;
    Inputs::from_label(label).ok()
}

/// Keeps `inputs` as the record of the image this run pushed as `digest`.
pub(super) fn remember(digest: &Digest, inputs: &Inputs) {
    keep(&inputs.image, digest, inputs);
}

/// Whether the existence check of `image` is a HEAD: when this machine keeps records of
/// images of its repository (it pushed one, or read its record), whose digest then finds
/// the record here, or names a tag not pushed yet (the next build's); else a GET, whose
/// manifest leads to the record. A tag of a known repository pushed elsewhere (a
/// teammate's) costs a second request, for its manifest: the HEAD cannot tell it from a new
/// tag, and a GET for every new tag would read manifests a build does not need (a registry
/// such as Docker Hub counts each GET as a pull). With the cache off (`IMAGESPEC_NO_CACHE`)
/// nothing is remembered and the check stays the HEAD it always was (its failures name the
/// HEAD, as scripts and tests read them): a skip then reads the record with a second
/// request.
pub(crate) fn ask_with_head(image: &ImageRef) -> bool {
    repository_path(image).is_none_or(|path| path.exists())
}

/// Keeps `inputs` under `digest`, and notes that `image`'s repository is known.
fn keep(image: &ImageRef, digest: &Digest, inputs: &Inputs) {
    if let Some(path) = path(digest) {
        explain::keep_record(&path, inputs);
    }
    if let Some(path) = repository_path(image)
        && let Some(dir) = path.parent()
        && std::fs::create_dir_all(dir).is_ok()
    {
        let _ = std::fs::write(path, digest.to_string());
    }
}

fn kept(digest: &Digest) -> Option<Inputs> {
    let text = std::fs::read_to_string(path(digest)?).ok()?;
    Inputs::from_label(&text).ok()
}

/// Named only by the digest's validated file name.
fn path(digest: &Digest) -> Option<PathBuf> {
    Some(pushed_dir()?.join(digest.file_name()))
}

/// The note that `image`'s repository is known: named by the digest of the repository's
/// name, never by the name.
fn repository_path(image: &ImageRef) -> Option<PathBuf> {
    let name = Digest::of_bytes(image.name().to_string().as_bytes());
    Some(pushed_dir()?.join("repositories").join(name.file_name()))
}

fn pushed_dir() -> Option<PathBuf> {
    Some(crate::source::cache_home_if_enabled()?.join("pushed"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_kept_under_its_digest_file_name_only() {
        let digest = Digest::of_bytes(b"manifest");
        let Some(path) = path(&digest) else { return };
        assert_eq!(
            path.file_name().and_then(|n| n.to_str()),
            Some(digest.file_name().as_str())
        );
        assert_eq!(
            path.parent().and_then(|p| p.file_name()),
            Some(std::ffi::OsStr::new("pushed"))
        );
    }

    #[test]
    fn a_repository_is_noted_by_its_digest_only() {
        let image = |name: &str| name.parse::<ImageRef>().unwrap();
        let Some(path) = repository_path(&image("localhost:5000/team/app:v1")) else {
            return;
        };
        assert_eq!(
            repository_path(&image("localhost:5000/team/app:v2")),
            Some(path.clone())
        );
        let name = Digest::of_bytes(b"localhost:5000/team/app").file_name();
        assert_eq!(
            path.file_name().and_then(|n| n.to_str()),
            Some(name.as_str())
        );
        assert_eq!(
            path.parent().and_then(|p| p.file_name()),
            Some(std::ffi::OsStr::new("repositories"))
        );
    }
}
