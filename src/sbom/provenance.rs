//! How an image was made, as SLSA provenance v1 (an in-toto Statement v1 whose
//! `predicateType` is `https://slsa.dev/provenance/v1`, what buildx attaches with
//! `--provenance`): the build type, the spec as external parameters, what the build
//! resolved (the base and the dependency image by digest, the Python and conda packages
//! found, the Debian packages the spec asked for, the source's digest), the builder and
//! the invocation. Attached beside the SBOM, one per platform.
//!
//! The external parameters are the spec as the `org.imagespec.inputs` label records it
//! (`crate::explain`'s record): the hashed fields as flytekit's `repr()` writes them, with
//! user information removed from URLs and host paths cut to their last component, so the
//! statement holds no secret and no path of the build machine, as the label does not.
//!
//! ```
//! use imagespec::sbom::provenance::{Invocation, statement};
//! use imagespec::sbom::{Contents, Subject};
//! use imagespec::oci::{Digest, reference::Repository};
//! let contents = Contents {
//!     subject: Subject { repository: Repository::new(None, "localhost:5000/app").unwrap(),
//!         digest: Digest::of_bytes(b"manifest"), platform: None },
//!     created: "2024-01-01T00:00:00Z".into(), base: None, source: None, packages: vec![] };
//! let run = Invocation { builder: "uv".into(), id: "1".into(),
//!     started_on: "2024-01-01T00:00:00Z".into(), finished_on: "2024-01-01T00:00:01Z".into() };
//! let s = statement(&contents, &serde_json::json!({}), &run);
//! assert_eq!(s["predicateType"], "https://slsa.dev/provenance/v1");
//! ```

use super::{BaseImage, Contents, Ecosystem, Source};
use serde_json::{Map, Value, json};

/// The media type (and OCI `artifactType`) of an in-toto statement.
pub const IN_TOTO_MEDIA_TYPE: &str = "application/vnd.in-toto+json";
/// The statement's `predicateType`.
pub const SLSA_PROVENANCE_V1: &str = "https://slsa.dev/provenance/v1";
/// The `buildType` of every imagespec build: the external parameters are a spec's fields.
pub const BUILD_TYPE: &str = "https://imagespec.invalid/provenance/build/v1";

/// The run that made the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// What built it: `docker` (BuildKit through dockerd), `remote-buildkit`, `envd`,
    /// `registry-append` (the source layer appended to a dependency image made by uv or
    /// BuildKit).
    pub builder: String,
    pub id: String,
    /// RFC 3339.
    pub started_on: String,
    pub finished_on: String,
}

/// `runDetails.builder.id`: imagespec, its version and the builder used.
pub fn builder_id(builder: &str) -> String {
    format!(
        "https://imagespec.invalid/builder/imagespec@{}/{builder}",
        env!("CARGO_PKG_VERSION")
    )
}

/// The statement about `contents.subject`: `config` is the image's config (its
/// `org.imagespec.inputs` label gives the external parameters and the dependency image).
pub fn statement(contents: &Contents, config: &Value, run: &Invocation) -> Value {
    let inputs = super::image::inputs_label(config);
    let subject = &contents.subject;
    let mut external = Map::new();
    if let Some(inputs) = &inputs {
        external.insert("image".into(), inputs["image"].clone());
        external.insert("spec".into(), inputs["fields"].clone());
    }
    if let Some(platform) = &subject.platform {
        external.insert("platform".into(), json!(platform.as_str()));
    }
    let mut resolved = Vec::new();
    if let Some(base) = &contents.base {
        resolved.push(base_dependency(base));
    }
    if let Some(dep) = inputs.as_ref().and_then(|i| i["dependency_image"].as_str()) {
        resolved.push(json!({"name": "dependency image", "uri": dep}));
    }
    if let Some(source) = &contents.source {
        resolved.push(source_dependency(source));
    }
    let asked = apt_packages(inputs.as_ref());
    resolved.extend(packages(contents, &asked));
    json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{
            "name": subject.repository.to_string(),
            "digest": {subject.digest.algorithm().as_str(): subject.digest.hex()},
        }],
        "predicateType": SLSA_PROVENANCE_V1,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": external,
                "internalParameters": {"builder": run.builder},
                "resolvedDependencies": resolved,
            },
            "runDetails": {
                "builder": {
                    "id": builder_id(&run.builder),
                    "version": {"imagespec": env!("CARGO_PKG_VERSION")},
                },
                "metadata": {
                    "invocationId": run.id,
                    "startedOn": run.started_on,
                    "finishedOn": run.finished_on,
                },
            },
        },
    })
}

fn digest_set(digest: &crate::oci::Digest) -> Value {
    json!({digest.algorithm().as_str(): digest.hex()})
}

fn base_dependency(base: &BaseImage) -> Value {
    let mut d = json!({"name": "base image", "uri": base.name.to_string()});
    if let Some(digest) = &base.digest {
        d["digest"] = digest_set(digest);
    }
    d
}

fn source_dependency(source: &Source) -> Value {
    let mut d = json!({"name": "source", "annotations": {"files": source.files}});
    if let Some(digest) = &source.digest {
        d["digest"] = digest_set(digest);
    }
    d
}

/// The packages the build resolved: every Python and conda package found, and the Debian
/// packages the spec's `apt_packages` names (the others are the base's, which its digest
/// pins), by purl, in the SBOM's order, each once.
fn packages(contents: &Contents, apt: &[String]) -> Vec<Value> {
    let mut found: Vec<&super::Package> = contents
        .packages
        .iter()
        .map(|(_, p)| p)
        .filter(|p| p.ecosystem != Ecosystem::Deb || apt.contains(&p.name))
        .collect();
    found.sort_by(|a, b| a.key().cmp(&b.key()));
    // One entry per purl, in the SBOM's order: with the archive's hash when a find has it.
    let mut resolved: Vec<(String, Option<&str>)> = Vec::new();
    let mut at: std::collections::BTreeMap<String, usize> = Default::default();
    for package in found {
        let purl = package.purl();
        match at.get(&purl) {
            Some(&i) => {
                let slot = &mut resolved[i].1;
                *slot = slot.or(package.sha256.as_deref());
            }
            None => {
                at.insert(purl.clone(), resolved.len());
                resolved.push((purl, package.sha256.as_deref()));
            }
        }
    }
    let entry = |(uri, sha256): (String, Option<&str>)| match sha256 {
        Some(hex) => json!({"uri": uri, "digest": {"sha256": hex}}),
        None => json!({"uri": uri}),
    };
    resolved.into_iter().map(entry).collect()
}

/// The names in the record's `apt_packages` (a Python list repr, `['jq', 'git']`).
fn apt_packages(inputs: Option<&Value>) -> Vec<String> {
    let repr = inputs.and_then(|i| i["fields"]["apt_packages"].as_str());
    let Some(list) = repr.and_then(|r| r.strip_prefix('[')?.strip_suffix(']')) else {
        return Vec::new();
    };
    list.split(',')
        .map(|item| item.trim().trim_matches(['\'', '"']).to_string())
        .filter(|name| !name.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::Digest;
    use crate::sbom::Package;

    fn contents() -> Contents {
        let mut jq = Package::new(Ecosystem::Deb, "jq", "1.6-2.1");
        jq.architecture = Some("amd64".into());
        let libc = Package::new(Ecosystem::Deb, "libc6", "2.36");
        let six = Package::new(Ecosystem::Python, "six", "1.16.0");
        let mut hashed = six.clone();
        hashed.sha256 = Some("8abb".repeat(16));
        crate::sbom::sample(vec![
            ("var/lib/dpkg/status".into(), jq),
            ("var/lib/dpkg/status".into(), libc),
            ("venv/six.dist-info/METADATA".into(), six),
            ("venv2/six.dist-info/METADATA".into(), hashed),
        ])
    }

    fn config() -> Value {
        let inputs = json!({"v": 1, "image": "localhost:5000/app:abc",
            "fields": {"base_image": "'localhost:5000/python:3.12'",
                       "apt_packages": "['jq']", "pip_index": "'https://pypi.org/simple'"},
            "files": {}, "dependency_image": "localhost:5000/app:deps-1"});
        json!({"config": {"Labels": {"org.imagespec.inputs": inputs.to_string()}}})
    }

    #[test]
    fn the_statement_names_the_subject_the_spec_and_what_was_resolved() {
        let run = Invocation {
            builder: "docker".into(),
            id: "42".into(),
            started_on: "2024-01-01T00:00:00Z".into(),
            finished_on: "2024-01-01T00:00:09Z".into(),
        };
        let s = statement(&contents(), &config(), &run);
        assert_eq!(s["_type"], "https://in-toto.io/Statement/v1");
        assert_eq!(s["subject"][0]["name"], "localhost:5000/app");
        let hex = Digest::of_bytes(b"image").hex().to_string();
        assert_eq!(s["subject"][0]["digest"]["sha256"], hex);
        let definition = &s["predicate"]["buildDefinition"];
        assert_eq!(definition["buildType"], BUILD_TYPE);
        let external = &definition["externalParameters"];
        assert_eq!(external["spec"]["apt_packages"], "['jq']");
        assert_eq!(external["platform"], "linux/amd64");
        let uris: Vec<&str> = definition["resolvedDependencies"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|d| d["uri"].as_str())
            .collect();
        assert_eq!(
            uris,
            [
                "localhost:5000/python:3.12",
                "localhost:5000/app:deps-1",
                "pkg:deb/debian/jq@1.6-2.1?arch=amd64",
                "pkg:pypi/six@1.16.0",
            ]
        );
        let deps = definition["resolvedDependencies"].as_array().unwrap();
        assert_eq!(deps[2]["name"], "source");
        assert_eq!(
            deps[4]["digest"]["sha256"],
            "8abb".repeat(16),
            "the wheel's hash"
        );
        assert!(deps[3].get("digest").is_none(), "a Debian package has none");
        assert_eq!(deps[2]["annotations"]["files"], 2);
        let builder = &s["predicate"]["runDetails"]["builder"];
        assert!(builder["id"].as_str().unwrap().ends_with("/docker"));
        let metadata = &s["predicate"]["runDetails"]["metadata"];
        assert_eq!(metadata["finishedOn"], "2024-01-01T00:00:09Z");
    }

    #[test]
    fn apt_packages_come_from_the_list_repr() {
        let inputs = |repr: &str| json!({"fields": {"apt_packages": repr}});
        assert_eq!(
            apt_packages(Some(&inputs("['jq', \"git\"]"))),
            ["jq", "git"]
        );
        assert!(apt_packages(Some(&inputs("None"))).is_empty());
        assert!(apt_packages(Some(&inputs("[]"))).is_empty());
        assert!(apt_packages(None).is_empty());
    }
}
