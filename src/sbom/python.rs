//! Python distributions as installed (`<site-packages>/<name>-<version>.dist-info/METADATA`,
//! the core metadata of PEP 566 / PEP 639, which pip and uv write alike; an egg's
//! `PKG-INFO`, the same format): name, version and the license. Only the header is read (it
//! ends at the first blank line; the description follows).
//!
//! The license goes to SPDX's `licenseDeclared` only when the distribution declares an SPDX
//! expression (`License-Expression`, PEP 639); the free text of `License` and the
//! `License ::` classifiers are kept as a comment, since they are not SPDX expressions
//! (`BSD`, `MIT License`) and a validator would refuse them there.

use super::{Ecosystem, Package};

/// The distribution `METADATA` describes, or `None` without a name and a version.
pub fn parse_metadata(text: &str) -> Option<Package> {
    let header = text.split("\n\n").next().unwrap_or_default();
    let mut name = None;
    let mut version = None;
    let mut expression = None;
    let mut comments = Vec::new();
    for line in header.lines().filter(|l| !l.starts_with([' ', '\t'])) {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match key.trim().to_ascii_lowercase().as_str() {
            "name" => name = Some(value.to_string()),
            "version" => version = Some(value.to_string()),
            "license-expression" if !value.is_empty() => expression = Some(value.to_string()),
            "license" if !value.is_empty() && value != "UNKNOWN" => {
                comments.push(value.to_string())
            }
            "classifier" if value.starts_with("License ::") => comments.push(value.to_string()),
            _ => {}
        }
    }
    let (name, version) = (
        name.filter(|n| !n.is_empty())?,
        version.filter(|v| !v.is_empty())?,
    );
    Some(Package {
        ecosystem: Ecosystem::Python,
        name,
        version,
        architecture: None,
        license: expression,
        license_comment: (!comments.is_empty()).then(|| comments.join("; ")),
        qualifiers: Vec::new(),
        sha256: None,
    })
}

/// A distribution name as PEP 503 normalises it (and the pypi purl writes it): lower case,
/// runs of `-`, `_` and `.` as one `-`.
pub fn normalize_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut separator = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            separator = true;
            continue;
        }
        if separator && !out.is_empty() {
            out.push('-');
        }
        separator = false;
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// Whether `path` (in a layer) is a distribution's core metadata in a `site-packages` or
/// `dist-packages` directory (a venv's, the system's, a user's): a wheel install's
/// `NAME.dist-info/METADATA`, or an egg's `NAME.egg-info/PKG-INFO` or `NAME.egg-info` file
/// (what Debian's python3-* packages and setuptools' develop installs leave; the same
/// format), as `importlib.metadata` finds them.
pub fn is_metadata(path: &str) -> bool {
    let mut parts = path.rsplit('/');
    let (Some(file), Some(dir)) = (parts.next(), parts.next()) else {
        return false;
    };
    let packages = |name: &str| matches!(name, "site-packages" | "dist-packages");
    if file.ends_with(".egg-info") && packages(dir) {
        return true;
    }
    let Some(above) = parts.next() else {
        return false;
    };
    packages(above)
        && ((file == "METADATA" && dir.ends_with(".dist-info"))
            || (file == "PKG-INFO" && dir.ends_with(".egg-info")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_version_and_license_from_the_header_only() {
        let text = "Metadata-Version: 2.4\nName: Requests\nVersion: 2.32.3\n\
                    License: Apache 2.0\nClassifier: License :: OSI Approved :: Apache Software License\n\
                    Classifier: Programming Language :: Python\n\nName: not-me\nVersion: 0\n";
        let p = parse_metadata(text).unwrap();
        assert_eq!(
            (p.name.as_str(), p.version.as_str()),
            ("Requests", "2.32.3")
        );
        assert_eq!(p.license, None, "free text is not an SPDX expression");
        assert_eq!(
            p.license_comment.as_deref(),
            Some("Apache 2.0; License :: OSI Approved :: Apache Software License")
        );
    }

    #[test]
    fn a_pep_639_expression_is_the_declared_license() {
        let p =
            parse_metadata("Name: x\nVersion: 1\nLicense-Expression: MIT OR Apache-2.0\n").unwrap();
        assert_eq!(p.license.as_deref(), Some("MIT OR Apache-2.0"));
        assert_eq!(p.license_comment, None);
    }

    #[test]
    fn no_name_or_no_version_is_no_package() {
        assert!(parse_metadata("Name: x\n").is_none());
        assert!(parse_metadata("Version: 1\n").is_none());
        assert!(parse_metadata("").is_none());
    }

    #[test]
    fn names_normalise_as_pep_503() {
        assert_eq!(normalize_name("Flask_SQLAlchemy"), "flask-sqlalchemy");
        assert_eq!(normalize_name("zope.interface"), "zope-interface");
        assert_eq!(normalize_name("a--_b"), "a-b");
    }

    #[test]
    fn metadata_files_are_found_in_any_site_packages() {
        assert!(is_metadata(
            "opt/venv/lib/python3.12/site-packages/uv-0.4.dist-info/METADATA"
        ));
        assert!(is_metadata(
            "usr/lib/python3/dist-packages/six-1.16.0.dist-info/METADATA"
        ));
        assert!(!is_metadata("root/src/x.dist-info/METADATA"));
        assert!(!is_metadata(
            "opt/venv/lib/python3.12/site-packages/uv-0.4.dist-info/RECORD"
        ));
        assert!(!is_metadata("METADATA"));
        let dist = "usr/lib/python3/dist-packages";
        assert!(is_metadata(&format!(
            "{dist}/setuptools-66.1.1.egg-info/PKG-INFO"
        )));
        assert!(is_metadata(&format!("{dist}/distro_info-1.5.egg-info")));
        assert!(!is_metadata(&format!("{dist}/x.egg-info/SOURCES.txt")));
        assert!(!is_metadata(&format!("{dist}/x.dist-info/PKG-INFO")));
    }
}
