//! conda packages as conda records them: one `conda-meta/<name>-<version>-<build>.json` per
//! installed package (`conda list` reads these), with `name`, `version`, `build`, `subdir`,
//! `channel` and `license`.

use super::{Ecosystem, Package};

#[derive(serde::Deserialize)]
struct Record {
    name: String,
    version: String,
    #[serde(default)]
    build: Option<String>,
    #[serde(default)]
    subdir: Option<String>,
    #[serde(default)]
    license: Option<String>,
}

/// The package a `conda-meta` record describes, or `None` when it is not one.
pub fn parse_record(bytes: &[u8]) -> Option<Package> {
    let record: Record = serde_json::from_slice(bytes).ok()?;
    if record.name.is_empty() || record.version.is_empty() {
        return None;
    }
    let mut qualifiers = Vec::new();
    if let Some(build) = record.build.filter(|b| !b.is_empty()) {
        qualifiers.push(("build".to_string(), build));
    }
    if let Some(subdir) = record.subdir.filter(|s| !s.is_empty()) {
        qualifiers.push(("subdir".to_string(), subdir));
    }
    Some(Package {
        ecosystem: Ecosystem::Conda,
        name: record.name,
        version: record.version,
        architecture: None,
        license: None,
        license_comment: record.license.filter(|l| !l.is_empty()),
        qualifiers,
        sha256: None,
    })
}

/// Whether `path` (in a layer) is a record in a `conda-meta` directory.
pub fn is_record(path: &str) -> bool {
    let mut parts = path.rsplit('/');
    matches!(
        (parts.next(), parts.next()),
        (Some(file), Some("conda-meta")) if file.ends_with(".json")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_gives_name_version_and_build() {
        let json = br#"{"name": "numpy", "version": "1.26.4", "build": "py312h8753938_0",
            "subdir": "linux-64", "license": "BSD-3-Clause", "files": ["a", "b"]}"#;
        let p = parse_record(json).unwrap();
        assert_eq!((p.name.as_str(), p.version.as_str()), ("numpy", "1.26.4"));
        assert_eq!(
            p.qualifiers,
            [
                ("build".to_string(), "py312h8753938_0".to_string()),
                ("subdir".to_string(), "linux-64".to_string())
            ]
        );
        assert_eq!(p.license_comment.as_deref(), Some("BSD-3-Clause"));
    }

    #[test]
    fn not_a_record_is_no_package() {
        assert!(parse_record(b"{}").is_none());
        assert!(parse_record(b"not json").is_none());
        assert!(parse_record(br#"{"name": "", "version": "1"}"#).is_none());
    }

    #[test]
    fn records_are_json_files_in_conda_meta() {
        assert!(is_record("opt/conda/conda-meta/numpy-1.26.4-py312_0.json"));
        assert!(!is_record("opt/conda/conda-meta/history"));
        assert!(!is_record("opt/conda/pkgs/numpy.json"));
    }
}
