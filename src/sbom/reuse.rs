//! An SBOM read back as findings: the dependency image's document (attached when an image
//! was first appended to it) stands for all its layers, so the fast path reads only the
//! source layer it just wrote, on any machine, whatever this machine has cached. Each
//! found package's `sourceInfo` (`found in /PATH`) and purl give back the file and the
//! package, so the document of the image made from them is the one its layers would give.
//!
//! The document is kept on this machine by the dependency image's digest ([`keep`],
//! [`kept`]; `sbom-layers/images/` in imagespec's cache, beside the layers' findings): a
//! digest names one image forever, so a rebuild on the same dependency image asks the
//! registry nothing for it (no referrers lookup, no artifact read).

use super::layers::LayerFacts;
use super::spdx::{Document, NOASSERTION, SpdxPackage};
use super::{Ecosystem, IMAGE_ID, Package};
use crate::oci::{Digest, ImageRef};
use std::path::PathBuf;

/// A kept document larger than this is not read (a document lists a few thousand packages).
const KEPT_LIMIT: u64 = 64 << 20;

/// What a dependency image's document gives back: its packages as one layer's findings,
/// and the base it names (with its digest, when it has one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reused {
    pub facts: LayerFacts,
    pub base: Option<super::BaseImage>,
}

/// The findings `document` lists, when it is the document of `subject` (its image
/// package's checksum): `None` for another image's.
pub fn reused(document: &Document, subject: &Digest) -> Option<Reused> {
    let image = document.packages.iter().find(|p| p.spdx_id == IMAGE_ID)?;
    let checksum = image.checksums.first()?;
    if checksum.checksum_value != subject.hex() {
        return None;
    }
    let mut facts = LayerFacts::default();
    for p in &document.packages {
        if let Some((path, package)) = found(p) {
            facts.files.entry(path).or_default().push(package);
        }
    }
    let base = document
        .packages
        .iter()
        .find(|p| p.spdx_id == "SPDXRef-BaseImage")
        .and_then(base_image);
    Some(Reused { facts, base })
}

/// Where the document of the image `subject` is kept, when caching is on: named by the
/// digest's validated file name only.
fn kept_path(subject: &Digest) -> Option<PathBuf> {
    let home = crate::source::cache_home_if_enabled()?;
    let dir = home.join("sbom-layers").join("images");
    Some(dir.join(format!("{}.spdx.json", subject.file_name())))
}

/// Keeps `document` (SPDX JSON, the document of the image `subject`) on this machine; best
/// effort, as a cache is.
pub fn keep(subject: &Digest, document: &[u8]) {
    if let Some(path) = kept_path(subject) {
        crate::scratch::keep_in_cache(&path, document);
    }
}

/// What this run handed over of the dependency images it made ([`hand_over`]), by digest.
static IN_THIS_RUN: std::sync::Mutex<std::collections::BTreeMap<String, Reused>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

/// Hands what the image `subject` holds (`reused`) to this run's SBOMs of the images
/// appended to it, as its kept document would: a dependency image this run made is
/// described once, by the run that made it, also without a cache dir.
pub fn hand_over(subject: &Digest, reused: Reused) {
    if let Ok(mut handed) = IN_THIS_RUN.lock() {
        handed.insert(subject.as_str().to_string(), reused);
    }
}

/// The findings of the document kept for the image `subject` (handed over in this run, else
/// kept on this machine); `None` when none is kept, or it does not read as that image's.
pub fn kept(subject: &Digest) -> Option<Reused> {
    let handed = IN_THIS_RUN.lock().ok();
    let handed = handed.and_then(|m| m.get(subject.as_str()).cloned());
    handed.or_else(|| read_kept(&kept_path(subject)?, subject))
}

fn read_kept(path: &std::path::Path, subject: &Digest) -> Option<Reused> {
    use std::io::Read as _;
    let file = std::fs::File::open(path).ok()?;
    let mut bytes = Vec::new();
    file.take(KEPT_LIMIT).read_to_end(&mut bytes).ok()?;
    let document: Document = serde_json::from_slice(&bytes).ok()?;
    reused(&document, subject)
}

fn base_image(p: &SpdxPackage) -> Option<super::BaseImage> {
    let name: ImageRef = p.name.parse().ok()?;
    let digest = p
        .version_info
        .as_deref()
        .and_then(|v| Digest::parse(v).ok());
    Some(super::BaseImage { name, digest })
}

/// A found package (`LIBRARY`) back as the file it was found in and the package.
fn found(p: &SpdxPackage) -> Option<(String, Package)> {
    if p.primary_package_purpose.as_deref() != Some("LIBRARY") {
        return None;
    }
    let path = p.source_info.as_deref()?.strip_prefix("found in /")?;
    let purl = p.purl()?.strip_prefix("pkg:")?;
    let (head, qualifiers) = purl.split_once('?').unwrap_or((purl, ""));
    let ecosystem = match head.split('/').next()? {
        "deb" => Ecosystem::Deb,
        "pypi" => Ecosystem::Python,
        "conda" => Ecosystem::Conda,
        _ => return None,
    };
    let mut package = Package::new(ecosystem, &p.name, p.version_info.as_deref()?);
    for pair in qualifiers.split('&').filter(|q| !q.is_empty()) {
        let (key, value) = pair.split_once('=')?;
        let value = decode(value)?;
        if key == "arch" && ecosystem == Ecosystem::Deb {
            package.architecture = Some(value);
        } else {
            package.qualifiers.push((key.to_string(), value));
        }
    }
    package.license = Some(p.license_declared.clone()).filter(|l| l != NOASSERTION);
    package.license_comment = p.license_comments.clone();
    package.sha256 = (p.checksums.iter())
        .find(|c| c.algorithm == "SHA256")
        .map(|c| c.checksum_value.clone());
    Some((path.to_string(), package))
}

/// purl's percent-decoding; `None` for a bad escape or bytes that are not UTF-8.
fn decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sbom::{Contents, document, layers};

    fn contents(digest: &Digest, packages: Vec<(String, Package)>) -> Contents {
        let mut contents = crate::sbom::sample(packages);
        contents.subject.digest = digest.clone();
        contents
    }

    #[test]
    fn a_document_read_back_gives_the_same_document() {
        let mut deb = Package::new(Ecosystem::Deb, "libc6", "1:2.36-9+deb12u4");
        deb.architecture = Some("amd64".into());
        let mut py = Package::new(Ecosystem::Python, "Flask_SQLAlchemy", "3.1.1");
        py.license = Some("MIT".into());
        py.sha256 = Some("ab".repeat(32));
        py.license_comment = Some("License :: OSI Approved".into());
        let mut conda = Package::new(Ecosystem::Conda, "numpy", "1.26.4");
        conda.qualifiers = vec![
            ("build".into(), "py312 0".into()),
            ("subdir".into(), "linux-64".into()),
        ];
        let packages = vec![
            ("var/lib/dpkg/status".to_string(), deb),
            ("venv/site-packages/f.dist-info/METADATA".to_string(), py),
            ("opt/conda/conda-meta/numpy.json".to_string(), conda),
        ];
        let digest = Digest::of_bytes(b"deps");
        let first = contents(&digest, packages);
        let doc = document(&first);
        let back = reused(&doc, &digest).expect("its own document");
        assert_eq!(back.base, first.base);
        let again = contents(&digest, layers::merge(&[back.facts]));
        assert_eq!(document(&again), doc);
        assert_eq!(reused(&doc, &Digest::of_bytes(b"other")), None);
    }

    #[test]
    fn a_kept_document_reads_back_for_its_image_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("images/x.spdx.json");
        let digest = Digest::of_bytes(b"deps");
        let py = Package::new(Ecosystem::Python, "six", "1.16.0");
        let doc = document(&contents(&digest, vec![("venv/six/METADATA".into(), py)]));
        assert_eq!(read_kept(&path, &digest), None, "nothing kept yet");
        crate::scratch::keep_in_cache(&path, &serde_json::to_vec(&doc).unwrap());
        let back = read_kept(&path, &digest).expect("kept");
        assert_eq!(Some(back), reused(&doc, &digest));
        assert_eq!(read_kept(&path, &Digest::of_bytes(b"other")), None);
        std::fs::write(&path, "{").unwrap();
        assert_eq!(read_kept(&path, &digest), None, "a broken file is a miss");
    }

    #[test]
    fn purl_escapes_decode_and_bad_ones_refuse() {
        assert_eq!(decode("1%3A2.36+x").as_deref(), Some("1:2.36+x"));
        assert_eq!(decode("%2"), None);
        assert_eq!(decode("%zz"), None);
        assert_eq!(decode("%FF"), None);
    }
}
