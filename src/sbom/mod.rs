//! What is in an image, as an SPDX 2.3 document (the SBOM ko, buildx and syft attach): the
//! image itself, its base (name and digest), the copied source (one component, with the
//! digest of the files `org.imagespec.inputs` records), and the packages found in its
//! layers: Debian's (dpkg's status), Python's (every `site-packages`' dist-info, as pip and
//! uv install them) and conda's (`conda-meta`). The layers are read as they stream, as
//! syft's catalogers read an image ([`layers`]), whichever builder made it, so a BuildKit
//! build and the uv builder are described alike.
//!
//! The same image gives the same document, byte for byte: packages sorted, ids made of
//! what they name, `created` from `SOURCE_DATE_EPOCH` or else the image config's `created`
//! (never the clock), the namespace made of the image's digest.
//!
//! ```
//! use imagespec::sbom::{Contents, Ecosystem, Package, Subject, document};
//! use imagespec::oci::{Platform, reference::Repository};
//! let subject = Subject {
//!     repository: Repository::new(None, "localhost:5000/app").unwrap(),
//!     digest: imagespec::oci::Digest::of_bytes(b"manifest"),
//!     platform: Some(Platform::parse("linux/amd64").unwrap()),
//! };
//! let six = Package::new(Ecosystem::Python, "six", "1.16.0");
//! let contents = Contents { subject, created: "2024-01-01T00:00:00Z".into(),
//!     base: None, source: None, packages: vec![("site-packages/six".into(), six)] };
//! let doc = document(&contents);
//! assert_eq!(doc.packages[1].purl(), Some("pkg:pypi/six@1.16.0"));
//! ```

pub mod conda;
pub mod cyclonedx;
pub mod dpkg;
pub mod image;
pub mod layers;
pub mod provenance;
pub mod python;
pub mod reuse;
pub mod show;
pub mod spdx;

use crate::oci::reference::Repository;
use crate::oci::{Digest, ImageRef, Platform};
use serde::{Deserialize, Serialize};
use spdx::{Checksum, Document, ExternalRef, Relationship, SpdxPackage, spdx_id};

/// The media type (and OCI `artifactType`) of an SPDX JSON document.
pub const SPDX_MEDIA_TYPE: &str = "application/spdx+json";

/// Where a package was installed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ecosystem {
    Deb,
    Python,
    Conda,
}

impl Ecosystem {
    fn as_str(self) -> &'static str {
        match self {
            Ecosystem::Deb => "deb",
            Ecosystem::Python => "python",
            Ecosystem::Conda => "conda",
        }
    }
}

/// A package found in the image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Package {
    pub ecosystem: Ecosystem,
    pub name: String,
    pub version: String,
    /// dpkg's `Architecture` (`amd64`, `all`).
    pub architecture: Option<String>,
    /// An SPDX license expression the package declares.
    pub license: Option<String>,
    /// What else it says of its license (free text, classifiers).
    pub license_comment: Option<String>,
    /// purl qualifiers besides `arch` (conda's `build`, `subdir`), in order.
    pub qualifiers: Vec<(String, String)>,
    /// The sha256 (hex) of the archive it was installed from, where the installer gave it:
    /// a wheel uv installed from a `uv.lock` (the lock's hash of that file, which uv
    /// checked it against). Never a `RECORD`'s hash of an installed file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

impl Package {
    /// A package of `ecosystem` with a name and a version only.
    pub fn new(ecosystem: Ecosystem, name: &str, version: &str) -> Package {
        Package {
            ecosystem,
            name: name.into(),
            version: version.into(),
            architecture: None,
            license: None,
            license_comment: None,
            qualifiers: Vec::new(),
            sha256: None,
        }
    }

    /// The package URL (purl-spec): `pkg:deb/debian/NAME@VERSION?arch=ARCH`,
    /// `pkg:pypi/NAME@VERSION` (PEP 503's name), `pkg:conda/NAME@VERSION?build=…&subdir=…`.
    pub fn purl(&self) -> String {
        let (kind, name) = match self.ecosystem {
            Ecosystem::Deb => ("deb/debian", self.name.clone()),
            Ecosystem::Python => ("pypi", python::normalize_name(&self.name)),
            Ecosystem::Conda => ("conda", self.name.clone()),
        };
        let mut purl = format!("pkg:{kind}/{}@{}", encode(&name), encode(&self.version));
        let arch = self.architecture.iter().map(|a| ("arch", a.as_str()));
        let others = self
            .qualifiers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()));
        let qualifiers: Vec<String> = arch
            .chain(others)
            .map(|(k, v)| format!("{k}={}", encode(v)))
            .collect();
        if !qualifiers.is_empty() {
            purl.push('?');
            purl.push_str(&qualifiers.join("&"));
        }
        purl
    }

    /// The order of the document: ecosystem, name, version, architecture.
    fn key(&self) -> (Ecosystem, String, &str, Option<&str>) {
        let name = match self.ecosystem {
            Ecosystem::Python => python::normalize_name(&self.name),
            _ => self.name.clone(),
        };
        (
            self.ecosystem,
            name,
            &self.version,
            self.architecture.as_deref(),
        )
    }
}

/// Percent-encoding as purl-spec asks of names, versions and qualifier values: all but
/// letters, digits and `.-_~+`.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'~' | b'+') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The image the document describes: one platform's manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    /// `registry/repository`, no tag.
    pub repository: Repository,
    /// The platform manifest's digest.
    pub digest: Digest,
    /// `os/arch[/variant]`, when known.
    pub platform: Option<Platform>,
}

/// The base image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseImage {
    pub name: ImageRef,
    /// Its digest in its registry, when it could be asked.
    pub digest: Option<Digest>,
}

/// The copied source, as one component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// sha256 over the file list `org.imagespec.inputs` records (`name digest` lines,
    /// sorted), when it records one.
    pub digest: Option<Digest>,
    pub files: usize,
    /// The layer that holds it, when the image says which (the fast path's).
    pub layer: Option<Digest>,
}

/// Everything the document says.
#[derive(Debug, Clone)]
pub struct Contents {
    pub subject: Subject,
    /// RFC 3339, whole seconds (see [`created`]).
    pub created: String,
    pub base: Option<BaseImage>,
    pub source: Option<Source>,
    /// Each package with the file it was found in.
    pub packages: Vec<(String, Package)>,
}

/// The document's `created`: `SOURCE_DATE_EPOCH` when set, else the image config's
/// `created`, else the epoch; RFC 3339 in whole seconds, UTC.
pub fn created(
    source_date_epoch: Option<crate::oci::epoch::SourceDateEpoch>,
    config_created: Option<&str>,
) -> String {
    use time::format_description::well_known::Rfc3339;
    if let Some(epoch) = source_date_epoch {
        return epoch.rfc3339();
    }
    let at = config_created
        .and_then(|c| time::OffsetDateTime::parse(c, &Rfc3339).ok())
        .map(|t| t.to_offset(time::UtcOffset::UTC))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let at = at.replace_nanosecond(0).unwrap_or(at);
    at.format(&Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into())
}

/// The SPDX id of the image in every document.
pub const IMAGE_ID: &str = "SPDXRef-Image";

/// The SPDX 2.3 document of `contents`.
pub fn document(contents: &Contents) -> Document {
    let subject = &contents.subject;
    let mut packages = vec![image_package(subject)];
    let mut relationships = vec![Relationship::new("SPDXRef-DOCUMENT", "DESCRIBES", IMAGE_ID)];
    if let Some(base) = &contents.base {
        packages.push(base_package(base));
        relationships.push(Relationship::new(
            IMAGE_ID,
            "DESCENDANT_OF",
            "SPDXRef-BaseImage",
        ));
    }
    if let Some(source) = &contents.source {
        packages.push(source_package(source));
        relationships.push(Relationship::new(IMAGE_ID, "CONTAINS", "SPDXRef-Source"));
    }
    let mut found: Vec<&(String, Package)> = contents.packages.iter().collect();
    found.sort_by(|a, b| a.1.key().cmp(&b.1.key()).then(a.0.cmp(&b.0)));
    let mut ids = std::collections::BTreeSet::new();
    for (path, package) in found {
        let p = found_package(path, package, &mut ids);
        relationships.push(Relationship::new(IMAGE_ID, "CONTAINS", &p.spdx_id));
        packages.push(p);
    }
    let name = format!("{}@{}", subject.repository, subject.digest);
    Document {
        spdx_version: "SPDX-2.3".into(),
        data_license: "CC0-1.0".into(),
        spdx_id: "SPDXRef-DOCUMENT".into(),
        document_namespace: format!(
            "https://imagespec.invalid/spdx/{}/{}",
            subject.repository,
            subject.digest.hex()
        ),
        name,
        creation_info: spdx::CreationInfo {
            created: contents.created.clone(),
            creators: vec![format!("Tool: imagespec-{}", env!("CARGO_PKG_VERSION"))],
        },
        packages,
        relationships,
    }
}

/// `pkg:oci/NAME@DIGEST?repository_url=…`: the OCI purl of an image.
fn oci_purl(repository: &Repository, digest: &Digest, platform: Option<&Platform>) -> String {
    let path = repository.path();
    let name = path.rsplit('/').next().unwrap_or(path);
    let mut purl = format!(
        "pkg:oci/{}@{}?repository_url={}",
        encode(&name.to_ascii_lowercase()),
        encode(digest.as_str()),
        encode(&repository.to_string())
    );
    if let Some(arch) = platform.map(Platform::architecture) {
        purl.push_str(&format!("&arch={}", encode(arch)));
    }
    purl
}

fn sha256(digest: &Digest) -> Vec<Checksum> {
    vec![Checksum {
        algorithm: digest.algorithm().as_str().to_ascii_uppercase(),
        checksum_value: digest.hex().into(),
    }]
}

fn image_package(subject: &Subject) -> SpdxPackage {
    let mut p = SpdxPackage::new(
        IMAGE_ID.into(),
        subject.repository.to_string(),
        Some(subject.digest.to_string()),
    );
    p.primary_package_purpose = Some("CONTAINER".into());
    p.checksums = sha256(&subject.digest);
    p.external_refs = vec![ExternalRef::purl(oci_purl(
        &subject.repository,
        &subject.digest,
        subject.platform.as_ref(),
    ))];
    p.comment = subject.platform.as_ref().map(|p| format!("platform {p}"));
    p
}

fn base_package(base: &BaseImage) -> SpdxPackage {
    let version = base.digest.as_ref().map(ToString::to_string);
    let name = base.name.to_string();
    let mut p = SpdxPackage::new("SPDXRef-BaseImage".into(), name, version);
    p.primary_package_purpose = Some("CONTAINER".into());
    if let Some(digest) = &base.digest {
        p.checksums = sha256(digest);
        p.external_refs = vec![ExternalRef::purl(oci_purl(base.name.name(), digest, None))];
    }
    p
}

fn source_package(source: &Source) -> SpdxPackage {
    let version = source.digest.as_ref().map(ToString::to_string);
    let mut p = SpdxPackage::new("SPDXRef-Source".into(), "source".into(), version);
    p.primary_package_purpose = Some("SOURCE".into());
    if let Some(digest) = &source.digest {
        p.checksums = sha256(digest);
    }
    let layer = match &source.layer {
        Some(layer) => format!(", in layer {layer}"),
        None => String::new(),
    };
    p.comment = Some(format!(
        "the files copied into the image ({} files){layer}; the digest is the sha256 of the \
         file list the org.imagespec.inputs label records",
        source.files
    ));
    p
}

/// A found package, its id unique in the document (`ids`: those given so far).
fn found_package(
    path: &str,
    package: &Package,
    ids: &mut std::collections::BTreeSet<String>,
) -> SpdxPackage {
    let arch = package.architecture.as_deref().unwrap_or_default();
    let base = spdx_id(&[
        package.ecosystem.as_str(),
        &package.name,
        &package.version,
        arch,
    ]);
    let base = base.trim_end_matches('-').to_string();
    let mut id = base.clone();
    let mut n = 1;
    while !ids.insert(id.clone()) {
        n += 1;
        id = format!("{base}-{n}");
    }
    let mut p = SpdxPackage::new(id, package.name.clone(), Some(package.version.clone()));
    p.primary_package_purpose = Some("LIBRARY".into());
    if let Some(license) = &package.license {
        p.license_declared = license.clone();
    }
    p.license_comments = package.license_comment.clone();
    p.source_info = Some(format!("found in /{path}"));
    p.external_refs = vec![ExternalRef::purl(package.purl())];
    p.checksums = package
        .sha256
        .iter()
        .map(|hex| Checksum {
            algorithm: "SHA256".into(),
            checksum_value: hex.clone(),
        })
        .collect();
    p
}

/// The contents the tests of this module's files describe: `localhost:5000/app` (the
/// digest of `image`, linux/amd64) on `localhost:5000/python:3.12`, two source files.
#[cfg(test)]
pub(crate) fn sample(packages: Vec<(String, Package)>) -> Contents {
    Contents {
        subject: Subject {
            repository: Repository::new(None, "localhost:5000/app").unwrap(),
            digest: Digest::of_bytes(b"image"),
            platform: Some(Platform::parse("linux/amd64").unwrap()),
        },
        created: "2024-01-01T00:00:00Z".into(),
        base: Some(BaseImage {
            name: "localhost:5000/python:3.12".parse().unwrap(),
            digest: Some(Digest::of_bytes(b"base")),
        }),
        source: Some(Source {
            digest: Some(Digest::of_bytes(b"files")),
            files: 2,
            layer: None,
        }),
        packages,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject() -> Subject {
        Subject {
            repository: Repository::new(None, "localhost:5000/app").unwrap(),
            digest: Digest::of_bytes(b"m"),
            platform: Some(Platform::parse("linux/arm64/v8").unwrap()),
        }
    }

    #[test]
    fn purls_follow_purl_spec() {
        let mut deb = Package::new(Ecosystem::Deb, "libc6", "1:2.36-9+deb12u4");
        deb.architecture = Some("amd64".into());
        assert_eq!(
            deb.purl(),
            "pkg:deb/debian/libc6@1%3A2.36-9+deb12u4?arch=amd64"
        );
        let py = Package::new(Ecosystem::Python, "Flask_SQLAlchemy", "3.1.1");
        assert_eq!(py.purl(), "pkg:pypi/flask-sqlalchemy@3.1.1");
        let mut conda = Package::new(Ecosystem::Conda, "numpy", "1.26.4");
        conda.qualifiers = vec![("build".into(), "py312_0".into())];
        assert_eq!(conda.purl(), "pkg:conda/numpy@1.26.4?build=py312_0");
    }

    /// `SOURCE_DATE_EPOCH` as the process reads it: a bad value counts as unset.
    fn epoch(value: &str) -> Option<crate::oci::epoch::SourceDateEpoch> {
        crate::oci::epoch::SourceDateEpoch::parse(value).ok()
    }

    #[test]
    fn created_is_source_date_epoch_else_the_configs_never_now() {
        assert_eq!(
            created(epoch("1700000000"), Some("2001-01-01T00:00:00Z")),
            "2023-11-14T22:13:20Z"
        );
        assert_eq!(
            created(None, Some("2024-05-01T12:34:56.123456789Z")),
            "2024-05-01T12:34:56Z"
        );
        assert_eq!(
            created(epoch("not a number"), Some("2024-05-01T12:34:56+02:00")),
            "2024-05-01T10:34:56Z"
        );
        assert_eq!(created(None, None), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn the_same_contents_in_any_order_give_the_same_document() {
        let mut a = Package::new(Ecosystem::Deb, "a", "1");
        a.architecture = Some("amd64".into());
        let b = Package::new(Ecosystem::Python, "B", "2");
        let b_again = Package::new(Ecosystem::Python, "b", "2");
        let packages = vec![
            ("venv2/site-packages/b".to_string(), b_again),
            ("venv/site-packages/b".to_string(), b),
            ("var/lib/dpkg/status".to_string(), a),
        ];
        let mut contents = sample(packages);
        contents.subject = subject();
        let doc = document(&contents);
        contents.packages.reverse();
        assert_eq!(
            serde_json::to_string(&doc).unwrap(),
            serde_json::to_string(&document(&contents)).unwrap()
        );
        let ids: Vec<&str> = doc.packages.iter().map(|p| p.spdx_id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "SPDXRef-Image",
                "SPDXRef-BaseImage",
                "SPDXRef-Source",
                "SPDXRef-deb-a-1-amd64",
                "SPDXRef-python-B-2",
                "SPDXRef-python-b-2"
            ]
        );
        assert_eq!(doc.relationships.len(), 1 + 1 + 1 + 3);
        assert!(doc.packages.iter().all(|p| p.spdx_id == "SPDXRef-Image"
            || p.spdx_id == "SPDXRef-BaseImage"
            || p.spdx_id == "SPDXRef-Source"
            || p.checksums.is_empty()));
        let mut wheel = Package::new(Ecosystem::Python, "six", "1.16.0");
        wheel.sha256 = Some("8abb".repeat(16));
        let hashed = document(&sample(vec![("site-packages/six".into(), wheel)]));
        let found = &hashed.packages[3];
        assert_eq!(found.checksums.len(), 1);
        assert_eq!(
            (
                found.checksums[0].algorithm.as_str(),
                found.checksums[0].checksum_value.as_str()
            ),
            ("SHA256", "8abb".repeat(16).as_str())
        );
        assert_eq!(
            doc.packages[0].external_refs[0].reference_locator,
            format!(
                "pkg:oci/app@sha256%3A{}?repository_url=localhost%3A5000%2Fapp&arch=arm64",
                Digest::of_bytes(b"m").hex()
            )
        );
        assert!(
            doc.document_namespace
                .ends_with(Digest::of_bytes(b"m").hex())
        );
    }
}
