//! The record of its inputs an image carries (`INPUTS_LABEL`), kept on this machine by the
//! image's manifest digest when this machine pushed it. A digest names one manifest, hence
//! one config and one record, forever: the skip path then asks the registry one manifest
//! request (the existence check, which gives the digest) instead of reading the manifest and
//! config again to warn about renamed files. An image pushed elsewhere is read from the
//! registry ([`explain::recorded_in`]), as before. Best effort, as a cache is: a record that
//! cannot be written or read is read from the registry.

use crate::explain::{self, Inputs};
use crate::oci::{Digest, ImageRef, Platform};
use crate::registry::client::RegistryClient;
use std::path::PathBuf;

/// The record of `image` (whose manifest digest is `digest`, when known) for `platform`:
/// kept here, else read from the registry. `None` when it has none or cannot be read.
pub(super) async fn inputs(
    client: &RegistryClient,
    image: &ImageRef,
    platform: &Platform,
    digest: Option<&Digest>,
) -> Option<Inputs> {
    if let Some(kept) = digest.and_then(kept) {
        return Some(kept);
    }
    explain::recorded_in(client, image, platform).await.ok()
}

/// Keeps `inputs` as the record of the image this run pushed as `digest`.
pub(super) fn remember(digest: &Digest, inputs: &Inputs) {
    if let Some(path) = path(digest) {
        explain::keep_record(&path, inputs);
    }
}

fn kept(digest: &Digest) -> Option<Inputs> {
    let text = std::fs::read_to_string(path(digest)?).ok()?;
    Inputs::from_label(&text).ok()
}

/// Named only by the digest's validated file name.
fn path(digest: &Digest) -> Option<PathBuf> {
    Some(
        crate::source::cache_home_if_enabled()?
            .join("pushed")
            .join(digest.file_name()),
    )
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
}
