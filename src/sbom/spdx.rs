//! The SPDX 2.3 JSON document (what buildx and syft attach), as serde types: only the
//! fields imagespec fills, named as the SPDX 2.3 JSON schema names them.
//!
//! Written here rather than with a crate: `spdx-rs` models SPDX 2.2.1 (no
//! `primaryPackagePurpose`, no 2.3 fields) and brings chrono, uuid and nom with it;
//! `serde-spdx` generates its types from the JSON schema in a build script, with a builder
//! per struct, and its last release does not build on docs.rs. The document is a few
//! structs; the e2e tests check it against syft's scan.

use serde::{Deserialize, Serialize};

/// An SPDX 2.3 document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Document {
    pub spdx_version: String,
    pub data_license: String,
    #[serde(rename = "SPDXID")]
    pub spdx_id: String,
    pub name: String,
    pub document_namespace: String,
    pub creation_info: CreationInfo,
    pub packages: Vec<SpdxPackage>,
    pub relationships: Vec<Relationship>,
}

/// When and by what the document was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreationInfo {
    pub created: String,
    pub creators: Vec<String>,
}

/// A package: the image, its base, the source, or a package found in the image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SpdxPackage {
    #[serde(rename = "SPDXID")]
    pub spdx_id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_info: Option<String>,
    pub download_location: String,
    pub files_analyzed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_package_purpose: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checksums: Vec<Checksum>,
    pub license_concluded: String,
    pub license_declared: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license_comments: Option<String>,
    pub copyright_text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_info: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub external_refs: Vec<ExternalRef>,
}

impl SpdxPackage {
    /// A package with nothing asserted but its id, name and version.
    pub fn new(spdx_id: String, name: String, version: Option<String>) -> SpdxPackage {
        SpdxPackage {
            spdx_id,
            name,
            version_info: version,
            download_location: NOASSERTION.into(),
            files_analyzed: false,
            primary_package_purpose: None,
            checksums: Vec::new(),
            license_concluded: NOASSERTION.into(),
            license_declared: NOASSERTION.into(),
            license_comments: None,
            copyright_text: NOASSERTION.into(),
            source_info: None,
            comment: None,
            external_refs: Vec::new(),
        }
    }

    /// The package's purl (`pkg:…`), when it has one.
    pub fn purl(&self) -> Option<&str> {
        self.external_refs
            .iter()
            .find(|r| r.reference_type == "purl")
            .map(|r| r.reference_locator.as_str())
    }
}

/// SPDX's "nothing is asserted".
pub const NOASSERTION: &str = "NOASSERTION";

/// A package's checksum (`SHA256`, lower-case hex).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Checksum {
    pub algorithm: String,
    pub checksum_value: String,
}

/// A reference outside the document: a purl.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExternalRef {
    pub reference_category: String,
    pub reference_type: String,
    pub reference_locator: String,
}

impl ExternalRef {
    /// A `PACKAGE-MANAGER` reference of type `purl`.
    pub fn purl(locator: String) -> ExternalRef {
        ExternalRef {
            reference_category: "PACKAGE-MANAGER".into(),
            reference_type: "purl".into(),
            reference_locator: locator,
        }
    }
}

/// `spdx_element_id` `relationship_type` `related_spdx_element`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Relationship {
    pub spdx_element_id: String,
    pub relationship_type: String,
    pub related_spdx_element: String,
}

impl Relationship {
    pub fn new(from: &str, kind: &str, to: &str) -> Relationship {
        Relationship {
            spdx_element_id: from.into(),
            relationship_type: kind.into(),
            related_spdx_element: to.into(),
        }
    }
}

/// An SPDX id made of `parts`: `SPDXRef-` then letters, digits, `.` and `-` only (anything
/// else becomes `-`).
pub fn spdx_id(parts: &[&str]) -> String {
    let joined = parts.join("-");
    let clean = joined.replace(
        |c: char| !(c.is_ascii_alphanumeric() || ".-".contains(c)),
        "-",
    );
    format!("SPDXRef-{clean}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_keep_only_what_spdx_allows() {
        assert_eq!(
            spdx_id(&["deb", "libc6", "2.36-9+deb12u4", "amd64"]),
            "SPDXRef-deb-libc6-2.36-9-deb12u4-amd64"
        );
        assert_eq!(
            spdx_id(&["python", "zope_interface", "1:0"]),
            "SPDXRef-python-zope-interface-1-0"
        );
    }

    #[test]
    fn a_package_serialises_with_spdx_field_names() {
        let mut p = SpdxPackage::new("SPDXRef-x".into(), "x".into(), Some("1".into()));
        p.external_refs
            .push(ExternalRef::purl("pkg:pypi/x@1".into()));
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json["SPDXID"], "SPDXRef-x");
        assert_eq!(json["versionInfo"], "1");
        assert_eq!(json["filesAnalyzed"], false);
        assert_eq!(json["externalRefs"][0]["referenceType"], "purl");
        assert!(json.get("comment").is_none());
        assert_eq!(p.purl(), Some("pkg:pypi/x@1"));
    }
}
