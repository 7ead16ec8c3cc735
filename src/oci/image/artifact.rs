//! OCI 1.1 artifacts (image-spec's "artifacts guidance"): an image manifest with an
//! `artifactType`, the empty config, one layer (the artifact's content) and a `subject`, the
//! manifest it is about. An SBOM is one; provenance and signatures are attached alike. The
//! value is an [`Image`], so the publishers push or write it as any image.

use super::{Blob, Descriptor, Image, Layer};
use crate::oci::Digest;
use bytes::Bytes;
use oci_client::manifest::{OCI_IMAGE_MEDIA_TYPE, OciImageManifest};
use std::collections::BTreeMap;

/// The empty config's media type (image-spec 1.1), for manifests that are not images.
pub const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";

/// The referrers tag schema's tag of `subject` (distribution-spec 1.1): `<algorithm>-<hex>`,
/// the tag under which a registry without the referrers API keeps the index of `subject`'s
/// referrers.
///
/// ```
/// use imagespec::oci::{Digest, image::artifact::fallback_tag};
/// let subject = Digest::of_bytes(b"image");
/// assert_eq!(fallback_tag(&subject).as_str(), format!("sha256-{}", subject.hex()));
/// ```
pub fn fallback_tag(subject: &Digest) -> crate::oci::reference::Tag {
    // The schema cuts the hex at 64 characters, so a sha512's tag is a tag too (at most
    // 128 characters): `sha256`/`sha512`, `-` and hex digits always parse.
    let hex = &subject.hex()[..subject.hex().len().min(64)];
    let tag = format!("{}-{hex}", subject.algorithm().as_str());
    crate::oci::reference::Tag::parse(&tag).expect("an algorithm and hex digits make a tag")
}

impl Image {
    /// The artifact of type `artifact_type` whose content is `content` (a blob of
    /// `media_type`), about `subject`, with `annotations`.
    pub fn artifact(
        artifact_type: &str,
        media_type: &str,
        content: Bytes,
        subject: &Descriptor,
        annotations: BTreeMap<String, String>,
    ) -> Image {
        let config = Bytes::from_static(b"{}");
        let layer = Descriptor::new(media_type, Digest::of_bytes(&content), content.len() as u64);
        Image {
            manifest: OciImageManifest {
                schema_version: 2,
                media_type: Some(OCI_IMAGE_MEDIA_TYPE.to_string()),
                artifact_type: Some(artifact_type.to_string()),
                subject: Some(subject.to_oci()),
                annotations: (!annotations.is_empty()).then_some(annotations),
                ..Default::default()
            },
            config_descriptor: Descriptor::new(EMPTY_MEDIA_TYPE, Digest::of_bytes(&config), 2),
            config,
            layers: vec![Layer {
                descriptor: layer,
                blob: Blob::Bytes(content),
            }],
        }
    }

    /// The manifest's `artifactType`, for an artifact.
    pub fn artifact_type(&self) -> Option<&str> {
        self.manifest.artifact_type.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_artifact_names_its_subject_and_has_the_empty_config() {
        let subject = Descriptor::new(OCI_IMAGE_MEDIA_TYPE, Digest::of_bytes(b"image"), 5);
        let artifact = Image::artifact(
            "application/spdx+json",
            "application/spdx+json",
            Bytes::from_static(b"{\"spdxVersion\":\"SPDX-2.3\"}"),
            &subject,
            BTreeMap::new(),
        );
        let manifest: serde_json::Value =
            serde_json::from_slice(&artifact.manifest_bytes()).unwrap();
        assert_eq!(manifest["artifactType"], "application/spdx+json");
        assert_eq!(manifest["subject"]["digest"], subject.digest.as_str());
        assert_eq!(manifest["config"]["mediaType"], EMPTY_MEDIA_TYPE);
        assert_eq!(
            manifest["config"]["digest"],
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        assert_eq!(manifest["layers"].as_array().unwrap().len(), 1);
        assert!(manifest.get("annotations").is_none());
        assert_eq!(artifact.artifact_type(), Some("application/spdx+json"));
    }
}
