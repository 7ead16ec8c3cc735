//! Manifests, indexes and configs as read from a registry, a layout or an archive: checked
//! before anything uses them.
//!
//! A manifest is someone else's JSON. Before [`check_manifest`] hands back oci-client's
//! typed [`OciManifest`], it has made sure the body is within [`MANIFEST_LIMIT`], says
//! `schemaVersion: 2`, is an image manifest or an index (by its `mediaType`, or the
//! `Content-Type` it came with, or its shape when neither says), and that every descriptor
//! it holds has a [`Digest`] (`sha256`/`sha512`, lowercase hex of the right length) and a
//! size that is not negative. Code past this point may build a path from a descriptor's
//! digest; code before it may not.

use super::digest::{Digest, DigestError};
use oci_client::manifest::{
    IMAGE_MANIFEST_LIST_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE, OCI_IMAGE_INDEX_MEDIA_TYPE,
    OCI_IMAGE_MEDIA_TYPE, OciManifest,
};

/// The largest manifest or index read: 4 MiB, the size the distribution spec asks
/// registries to accept ("at least 4 megabytes"), and what containerd and
/// go-containerregistry refuse beyond.
pub const MANIFEST_LIMIT: u64 = 4 << 20;

/// The largest image config read: 16 MiB (a config with a long history is a few hundred
/// KiB; containerd's limit for configs is the same as for manifests, we allow more).
pub const CONFIG_LIMIT: u64 = 16 << 20;

/// Why a manifest or config is not used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("the manifest is larger than {} (the distribution spec's limit for manifests)", size(*limit))]
    TooLarge { limit: u64 },
    #[error("the manifest is not JSON: {0}")]
    NotJson(String),
    #[error("the manifest's schemaVersion is {0}, not 2")]
    SchemaVersion(String),
    #[error("the manifest's media type is {0:?}, not an image manifest or index")]
    MediaType(String),
    #[error("{at}: {source}")]
    Digest {
        at: String,
        #[source]
        source: DigestError,
    },
    #[error("{at}: the size is {size}, not a byte count")]
    Size { at: String, size: String },
    #[error("the manifest does not match its declared type: {0}")]
    Shape(String),
}

/// A byte count for messages: `4 MiB`.
pub fn size(bytes: u64) -> String {
    if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{bytes} bytes")
    }
}

const MANIFEST_TYPES: [&str; 4] = [
    IMAGE_MANIFEST_MEDIA_TYPE,
    OCI_IMAGE_MEDIA_TYPE,
    IMAGE_MANIFEST_LIST_MEDIA_TYPE,
    OCI_IMAGE_INDEX_MEDIA_TYPE,
];

/// Checks `body` (its `Content-Type` header, if any) and returns it typed; see the module
/// documentation for what is checked.
pub fn check_manifest(
    body: &[u8],
    content_type: Option<&str>,
) -> Result<OciManifest, ManifestError> {
    if body.len() as u64 > MANIFEST_LIMIT {
        return Err(ManifestError::TooLarge {
            limit: MANIFEST_LIMIT,
        });
    }
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| ManifestError::NotJson(e.to_string()))?;
    let Some(object) = value.as_object() else {
        return Err(ManifestError::NotJson("not an object".into()));
    };
    match object.get("schemaVersion") {
        Some(v) if v.as_u64() == Some(2) => {}
        Some(v) => return Err(ManifestError::SchemaVersion(bounded(&v.to_string()))),
        None => return Err(ManifestError::SchemaVersion("missing".into())),
    }
    let declared = object
        .get("mediaType")
        .map(|m| m.as_str().unwrap_or("(not a string)"));
    // The body's own type wins; a registry's header is the fallback (distribution answers
    // with the type it stored).
    let header = content_type
        .map(|c| c.split(';').next().unwrap_or("").trim())
        .filter(|c| MANIFEST_TYPES.contains(c));
    let media_type = match (declared, header) {
        (Some(m), _) if MANIFEST_TYPES.contains(&m) => Some(m),
        (Some(m), _) => return Err(ManifestError::MediaType(bounded(m))),
        (None, h) => h,
    };
    let is_index = match media_type {
        Some(m) => m == IMAGE_MANIFEST_LIST_MEDIA_TYPE || m == OCI_IMAGE_INDEX_MEDIA_TYPE,
        None => object.contains_key("manifests"),
    };
    if is_index {
        descriptors(object, "manifests", true)?;
    } else {
        let Some(config) = object.get("config") else {
            return Err(ManifestError::Shape(
                "an image manifest without a config".into(),
            ));
        };
        descriptor(config, "config")?;
        descriptors(object, "layers", true)?;
    }
    let typed: OciManifest =
        serde_json::from_value(value).map_err(|e| ManifestError::Shape(e.to_string()))?;
    match (&typed, is_index) {
        (OciManifest::Image(_), false) | (OciManifest::ImageIndex(_), true) => Ok(typed),
        _ => Err(ManifestError::Shape(
            "an index read as an image or the reverse".into(),
        )),
    }
}

/// Checks every descriptor of the list `key` (required when `required`).
fn descriptors(
    object: &serde_json::Map<String, serde_json::Value>,
    key: &str,
    required: bool,
) -> Result<(), ManifestError> {
    match object.get(key) {
        Some(serde_json::Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                descriptor(item, &format!("{key}[{i}]"))?;
            }
            Ok(())
        }
        None if !required => Ok(()),
        _ => Err(ManifestError::Shape(format!("`{key}` is not a list"))),
    }
}

/// One descriptor: an object with a valid digest and a size that is a byte count.
fn descriptor(item: &serde_json::Value, at: &str) -> Result<(), ManifestError> {
    let Some(d) = item.as_object() else {
        return Err(ManifestError::Shape(format!("{at} is not an object")));
    };
    let text = d.get("digest").and_then(|v| v.as_str()).unwrap_or("");
    Digest::parse(text).map_err(|source| ManifestError::Digest {
        at: at.to_string(),
        source,
    })?;
    match d.get("size") {
        Some(s) if s.as_u64().is_some() => Ok(()),
        Some(s) => Err(ManifestError::Size {
            at: at.to_string(),
            size: bounded(&s.to_string()),
        }),
        None => Err(ManifestError::Size {
            at: at.to_string(),
            size: "missing".into(),
        }),
    }
}

/// Checks what an image config must be before its `rootfs.diff_ids` are used: a JSON
/// object within [`CONFIG_LIMIT`] whose diff ids (if any) are digests. Returns the value.
pub fn check_config(body: &[u8]) -> Result<serde_json::Value, ManifestError> {
    if body.len() as u64 > CONFIG_LIMIT {
        return Err(ManifestError::TooLarge {
            limit: CONFIG_LIMIT,
        });
    }
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| ManifestError::NotJson(e.to_string()))?;
    if !value.is_object() {
        return Err(ManifestError::NotJson("the config is not an object".into()));
    }
    if let Some(ids) = value.pointer("/rootfs/diff_ids") {
        let Some(ids) = ids.as_array() else {
            return Err(ManifestError::Shape("rootfs.diff_ids is not a list".into()));
        };
        for (i, id) in ids.iter().enumerate() {
            Digest::parse(id.as_str().unwrap_or("")).map_err(|source| ManifestError::Digest {
                at: format!("rootfs.diff_ids[{i}]"),
                source,
            })?;
        }
    }
    Ok(value)
}

/// `text` escaped and cut to 100 characters, for a message.
fn bounded(text: &str) -> String {
    super::digest::escaped(text, 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";

    fn image(layer_digest: &str, size: &str) -> String {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_IMAGE_MEDIA_TYPE}",
              "config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{D}","size":2}},
              "layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{layer_digest}","size":{size}}}]}}"#
        )
    }

    #[test]
    fn a_good_manifest_and_index_are_typed() {
        assert!(matches!(
            check_manifest(image(D, "3").as_bytes(), None),
            Ok(OciManifest::Image(_))
        ));
        let index = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_IMAGE_INDEX_MEDIA_TYPE}","manifests":[
               {{"mediaType":"{OCI_IMAGE_MEDIA_TYPE}","digest":"{D}","size":5,
                 "platform":{{"os":"linux","architecture":"amd64"}}}}]}}"#
        );
        assert!(matches!(
            check_manifest(index.as_bytes(), None),
            Ok(OciManifest::ImageIndex(_))
        ));
    }

    #[test]
    fn path_like_digests_are_refused_before_use() {
        for bad in [
            "sha256:../../../home/u/.ssh/authorized_keys",
            "/etc/passwd",
            "md5:abc",
        ] {
            let e = check_manifest(image(bad, "3").as_bytes(), None).unwrap_err();
            assert!(
                matches!(e, ManifestError::Digest { ref at, .. } if at == "layers[0]"),
                "{e}"
            );
        }
    }

    #[test]
    fn sizes_versions_and_types_are_checked() {
        let e = check_manifest(image(D, "-1").as_bytes(), None).unwrap_err();
        assert!(matches!(e, ManifestError::Size { .. }), "{e}");
        let v1 = image(D, "3").replace("\"schemaVersion\":2", "\"schemaVersion\":1");
        assert!(matches!(
            check_manifest(v1.as_bytes(), None),
            Err(ManifestError::SchemaVersion(_))
        ));
        let html = image(D, "3").replace(OCI_IMAGE_MEDIA_TYPE, "text/html");
        assert!(matches!(
            check_manifest(html.as_bytes(), None),
            Err(ManifestError::MediaType(_))
        ));
        assert!(matches!(
            check_manifest(b"<html>", Some("text/html")),
            Err(ManifestError::NotJson(_))
        ));
        let big = vec![b' '; MANIFEST_LIMIT as usize + 1];
        let e = check_manifest(&big, None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the manifest is larger than 4 MiB (the distribution spec's limit for manifests)"
        );
    }

    #[test]
    fn configs_must_name_digests() {
        let good = format!(r#"{{"rootfs":{{"type":"layers","diff_ids":["{D}"]}}}}"#);
        assert!(check_config(good.as_bytes()).is_ok());
        let bad = r#"{"rootfs":{"type":"layers","diff_ids":["sha256:../x"]}}"#;
        assert!(check_config(bad.as_bytes()).is_err());
        assert!(check_config(b"[]").is_err());
    }
}
