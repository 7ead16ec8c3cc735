//! The same contents as a CycloneDX 1.6 JSON BOM (`imagespec sbom --format cyclonedx`): the
//! image as the `metadata.component` (a container), its base and the copied source as
//! components, and every found package as a `library` with its purl. Like the SPDX
//! document, the same image gives the same bytes: the serial number is made of the image's
//! digest, the timestamp is the document's `created`.

use super::{Contents, Package, oci_purl};
use serde_json::{Value, json};

/// The media type of a CycloneDX JSON BOM.
pub const CYCLONEDX_MEDIA_TYPE: &str = "application/vnd.cyclonedx+json";

/// The CycloneDX 1.6 BOM of `contents`.
pub fn bom(contents: &Contents) -> Value {
    let subject = &contents.subject;
    let image_purl = oci_purl(
        &subject.repository,
        &subject.digest,
        subject.platform.as_ref(),
    );
    let mut components = Vec::new();
    if let Some(base) = &contents.base {
        let mut c = json!({"type": "container", "bom-ref": "base-image",
            "name": base.name.to_string()});
        if let Some(digest) = &base.digest {
            c["version"] = json!(digest.as_str());
            c["purl"] = json!(oci_purl(base.name.name(), digest, None));
        }
        components.push(c);
    }
    if let Some(source) = &contents.source {
        let mut c = json!({"type": "file", "bom-ref": "source", "name": "source",
            "description": format!("the files copied into the image ({} files)", source.files)});
        if let Some(digest) = &source.digest {
            c["hashes"] = json!([{"alg": "SHA-256", "content": digest.hex()}]);
        }
        components.push(c);
    }
    let mut found: Vec<&(String, Package)> = contents.packages.iter().collect();
    found.sort_by(|a, b| a.1.key().cmp(&b.1.key()).then(a.0.cmp(&b.0)));
    for (n, (path, package)) in found.into_iter().enumerate() {
        components.push(library(n, path, package));
    }
    json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": serial_number(subject.digest.hex()),
        "version": 1,
        "metadata": {
            "timestamp": contents.created,
            "tools": {"components": [{"type": "application", "name": "imagespec",
                "version": env!("CARGO_PKG_VERSION")}]},
            "component": {"type": "container", "bom-ref": "image",
                "name": subject.repository.to_string(), "version": subject.digest.as_str(),
                "purl": image_purl},
        },
        "components": components,
    })
}

/// A found package: its purl, its declared license, the file it was found in.
fn library(n: usize, path: &str, package: &Package) -> Value {
    let purl = package.purl();
    let mut c = json!({"type": "library", "bom-ref": format!("{purl}#{n}"),
        "name": package.name, "version": package.version, "purl": purl,
        "properties": [{"name": "imagespec:found-in", "value": format!("/{path}")}]});
    if let Some(license) = &package.license {
        c["licenses"] = json!([{"expression": license}]);
    }
    if let Some(hex) = &package.sha256 {
        c["hashes"] = json!([{"alg": "SHA-256", "content": hex}]);
    }
    c
}

/// `urn:uuid:` and the first 32 hex digits of `hex`, as a version-4-shaped UUID (the
/// schema's pattern), so the same image gives the same serial number.
fn serial_number(hex: &str) -> String {
    let h: Vec<char> = format!("{hex:0<32}").chars().take(32).collect();
    let part = |a: usize, b: usize| h[a..b].iter().collect::<String>();
    format!(
        "urn:uuid:{}-{}-4{}-8{}-{}",
        part(0, 8),
        part(8, 12),
        part(13, 16),
        part(17, 20),
        part(20, 32)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sbom::Ecosystem;

    #[test]
    fn the_bom_lists_the_image_and_its_packages_by_purl() {
        let mut six = Package::new(Ecosystem::Python, "six", "1.16.0");
        six.license = Some("MIT".into());
        let contents = crate::sbom::sample(vec![("venv/six.dist-info/METADATA".into(), six)]);
        let bom = bom(&contents);
        assert_eq!(bom["specVersion"], "1.6");
        assert_eq!(bom["metadata"]["component"]["type"], "container");
        assert_eq!(bom["components"][0]["bom-ref"], "base-image");
        assert_eq!(bom["components"][1]["hashes"][0]["alg"], "SHA-256");
        let c = &bom["components"][2];
        assert_eq!(c["purl"], "pkg:pypi/six@1.16.0");
        assert_eq!(c["licenses"][0]["expression"], "MIT");
        let serial = bom["serialNumber"].as_str().unwrap();
        assert_eq!(serial.len(), "urn:uuid:".len() + 36, "{serial}");
        assert_eq!(bom, super::bom(&contents), "the same bytes each time");
    }

    #[test]
    fn serial_numbers_have_the_uuid_shape() {
        assert_eq!(
            serial_number("0123456789abcdef0123456789abcdef0123"),
            "urn:uuid:01234567-89ab-4def-8123-456789abcdef"
        );
    }
}
