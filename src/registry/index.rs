//! The platforms of an image in a registry, and one platform's entry of the index that joins
//! several platforms' images under one name (`oci::Index` writes the index itself).

use crate::oci::{Platform, Platforms};
use serde_json::Value;

/// One platform's manifest, as an index names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    pub platform: Platform,
    pub media_type: String,
    /// `sha256:…` of the manifest.
    pub digest: String,
    pub size: usize,
}

/// The platforms an image in a registry has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImagePlatforms {
    /// An index: its entries' platforms (`os/arch[/variant]`).
    Index(Vec<String>),
    /// One image, of this platform (from its config; `None` when the config does not say).
    Single(Option<String>),
}

/// Whether an image of platform `have` serves `want`: the same, or `want` names no variant
/// (`linux/arm64` is served by `linux/arm64/v8`), or `want` is arm64's default variant.
fn serves(have: &str, want: &str) -> bool {
    have == want
        || (want.matches('/').count() == 1 && have.starts_with(&format!("{want}/")))
        || want
            .strip_suffix("/v8")
            .is_some_and(|w| w.ends_with("/arm64") && have == w)
}

impl ImagePlatforms {
    /// The platforms of `wanted` the image has no image for, in `wanted`'s order.
    pub fn missing<'a>(&self, wanted: &'a Platforms) -> Vec<&'a Platform> {
        let have: &[String] = match self {
            ImagePlatforms::Index(list) => list,
            ImagePlatforms::Single(Some(one)) => std::slice::from_ref(one),
            ImagePlatforms::Single(None) => &[],
        };
        wanted
            .iter()
            .filter(|want| !have.iter().any(|h| serves(h, want.as_str())))
            .collect()
    }
}

impl std::fmt::Display for ImagePlatforms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ImagePlatforms::Index(list) => write!(f, "an index of {}", list.join(", ")),
            ImagePlatforms::Single(Some(p)) => write!(f, "a single-platform image for {p}"),
            ImagePlatforms::Single(None) => f.write_str("a single-platform image"),
        }
    }
}

/// `os/arch[/variant]` of an image config (`{"os": …, "architecture": …, "variant": …}`).
pub fn config_platform(config: &Value) -> Option<String> {
    let os = config.get("os")?.as_str()?;
    let arch = config.get("architecture")?.as_str()?;
    Some(match config.get("variant").and_then(Value::as_str) {
        Some(v) if !v.is_empty() => format!("{os}/{arch}/{v}"),
        _ => format!("{os}/{arch}"),
    })
}

/// The platforms of `image`: its index's entries (attestation entries, `unknown/unknown`,
/// left out), or the platform its config names.
pub async fn platforms_of(
    client: &super::client::RegistryClient,
    image: &crate::oci::ImageRef,
) -> Result<ImagePlatforms, super::client::RegistryError> {
    use oci_client::manifest::OciManifest;
    let raw = client.manifest(image).await?;
    match &raw.manifest {
        OciManifest::ImageIndex(index) => Ok(ImagePlatforms::Index(
            index
                .manifests
                .iter()
                .filter_map(|e| e.platform.as_ref())
                .filter(|p| p.os.to_string() != "unknown")
                .map(|p| match &p.variant {
                    Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
                    None => format!("{}/{}", p.os, p.architecture),
                })
                .collect(),
        )),
        OciManifest::Image(m) => {
            let config = client.config(image, m).await?;
            Ok(ImagePlatforms::Single(config_platform(&config)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ps(list: &[&str]) -> Platforms {
        Platforms::parse(&list.join(",")).unwrap()
    }

    fn names(missing: Vec<&Platform>) -> Vec<&str> {
        missing.into_iter().map(Platform::as_str).collect()
    }

    #[test]
    fn missing_platforms_follow_the_variant_rules() {
        let index = ImagePlatforms::Index(vec![
            "linux/amd64".into(),
            "linux/arm64/v8".into(),
            "linux/arm/v7".into(),
        ]);
        assert!(
            index
                .missing(&ps(&["linux/amd64", "linux/arm64"]))
                .is_empty()
        );
        assert!(
            index
                .missing(&ps(&["linux/arm64/v8", "linux/arm/v7"]))
                .is_empty()
        );
        assert_eq!(
            names(index.missing(&ps(&["linux/arm/v6", "linux/s390x", "linux/amd64"]))),
            ["linux/arm/v6", "linux/s390x"]
        );
        let plain_arm64 = ImagePlatforms::Index(vec!["linux/arm64".into()]);
        assert!(plain_arm64.missing(&ps(&["linux/arm64/v8"])).is_empty());
        let single = ImagePlatforms::Single(Some("linux/amd64".into()));
        assert!(single.missing(&ps(&["linux/amd64"])).is_empty());
        assert_eq!(
            names(single.missing(&ps(&["linux/amd64", "linux/arm64"]))),
            ["linux/arm64"]
        );
        assert_eq!(
            single.to_string(),
            "a single-platform image for linux/amd64"
        );
        assert_eq!(
            names(ImagePlatforms::Single(None).missing(&ps(&["linux/amd64"]))),
            ["linux/amd64"]
        );
        assert_eq!(
            index.to_string(),
            "an index of linux/amd64, linux/arm64/v8, linux/arm/v7"
        );
    }

    #[test]
    fn a_config_names_its_platform() {
        let config = json!({"os": "linux", "architecture": "arm64", "variant": "v8"});
        assert_eq!(config_platform(&config).as_deref(), Some("linux/arm64/v8"));
        let config = json!({"os": "linux", "architecture": "amd64", "variant": ""});
        assert_eq!(config_platform(&config).as_deref(), Some("linux/amd64"));
        assert_eq!(config_platform(&json!({})), None);
    }
}
