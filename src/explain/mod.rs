//! Why does a spec's tag differ from an image built earlier? Every image imagespec builds
//! records what its tag was computed from in its config, as the label
//! `org.imagespec.inputs`: the hashed fields as flytekit's `repr()` writes them, the copied
//! files with a digest each, and the dependency image. `imagespec explain` reads that label
//! back (from any registry, or from the record this machine keeps of its last build of the
//! same name) and compares it with the spec as it is now.
//!
//! The record is small and holds no secret: the fields are what flytekit hashes into the
//! tag (values that are already visible in the image's config, or in its name), with user
//! information removed from URLs and absolute host paths cut to their last component; file
//! digests are SHA-256 prefixes, not contents.

use crate::oci::{ImageRef, Platform};
use crate::spec::NormalizedSpec;
use crate::tag::ImageTag;
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The label that carries the record.
pub const INPUTS_LABEL: &str = "org.imagespec.inputs";

/// Past this many files the list is left out of the record (the label stays small); the
/// comparison then says so.
const MAX_FILES: usize = 20_000;

/// What an image's tag was computed from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inputs {
    /// Format version.
    pub v: u32,
    /// `[registry/]name:tag` (its string form in the record).
    pub image: ImageRef,
    /// Hashed field → Python `repr()` of its value, in flytekit's field order.
    pub fields: IndexMap<String, String>,
    /// Copied file (`src/<path>` for `source_root` files, `copy/<entry>/<path>` for `copy`
    /// files) → first 16 hex digits of its SHA-256.
    pub files: BTreeMap<String, String>,
    /// How many files there were when the list was left out (`files` is then empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files_omitted: Option<usize>,
    /// The dependency image (`<repository>:deps-<key>`), when the image has one.
    pub dependency_image: Option<ImageRef>,
}

/// A field that differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldChange {
    pub field: String,
    pub before: Option<String>,
    pub after: Option<String>,
}

/// Files added, removed and changed (relative names as in [`Inputs::files`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FileChanges {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
}

/// The difference between an earlier image's inputs and the spec's now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Explanation {
    pub before: String,
    pub after: String,
    pub fields: Vec<FieldChange>,
    pub files: FileChanges,
    /// Files removed and added with the same content: `(from, to)`.
    pub renamed: Vec<(String, String)>,
    pub dependencies_changed: bool,
    /// One side left its file list out: file changes cannot be listed.
    pub files_unknown: bool,
}

/// Cuts what must not leave the machine from a field's repr: user information in URLs
/// (`https://user:token@host` → `https://***@host`) and absolute paths (kept as `…/last`).
fn scrub(field: &str, repr: String) -> String {
    let mut out = crate::redact::url_credentials(&repr).into_owned();
    if matches!(
        field,
        "source_root" | "requirements" | "registry_config" | "copy"
    ) {
        out = scrub_paths(&out);
    }
    out
}

/// `'/home/me/proj/src'` → `'…/src'` inside a repr.
fn scrub_paths(repr: &str) -> String {
    let mut out = String::with_capacity(repr.len());
    let mut rest = repr;
    while let Some(q) = rest.find(['\'', '"']) {
        let quote = rest.as_bytes()[q] as char;
        out.push_str(&rest[..=q]);
        rest = &rest[q + 1..];
        let end = rest.find(quote).unwrap_or(rest.len());
        let value = &rest[..end];
        if value.starts_with('/') {
            let last = value.trim_end_matches('/').rsplit('/').next().unwrap_or("");
            out.push_str("…/");
            out.push_str(last);
        } else {
            out.push_str(value);
        }
        rest = &rest[end..];
        if !rest.is_empty() {
            out.push(quote);
            rest = &rest[1..];
        }
    }
    out.push_str(rest);
    out
}

fn file_digest(path: &Path) -> std::io::Result<String> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
    }
    Ok(hash.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// The copied files by the names the record uses (`src/<path>`, `copy/<entry>/<path>`), with
/// where they are read from.
fn listed_files(tag: &ImageTag) -> Vec<(String, PathBuf)> {
    let mut listed: Vec<(String, PathBuf)> = Vec::new();
    if let Some(source) = &tag.source {
        listed.extend(
            source
                .files
                .iter()
                .map(|f| (format!("src/{}", f.rel), f.path.clone())),
        );
    }
    if let Some(copy) = &tag.copy {
        for entry in &copy.entries {
            let written = entry.written.trim_end_matches('/');
            listed.extend(
                entry
                    .files
                    .iter()
                    .map(|(rel, path)| (format!("copy/{written}/{rel}"), path.clone())),
            );
        }
    }
    listed
}

/// When an image found under the spec's name recorded other file *names* than the spec would
/// copy now — flytekit's digest does not see every rename (`pkg/mod.py` → `pkgmod.py` keeps
/// the tag) — the sentence that says so; `None` when they agree (or the record has no list).
/// Names only: no file is read.
pub fn stale_files(recorded: &Inputs, tag: &ImageTag) -> Option<String> {
    if recorded.files_omitted.is_some() {
        return None;
    }
    let now: std::collections::BTreeSet<String> = listed_files(tag)
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    let added: Vec<&String> = now
        .iter()
        .filter(|n| !recorded.files.contains_key(*n))
        .collect();
    let removed: Vec<&String> = recorded
        .files
        .keys()
        .filter(|n| !now.contains(*n))
        .collect();
    if added.is_empty() && removed.is_empty() {
        return None;
    }
    let example = match (removed.first(), added.first()) {
        (Some(r), Some(a)) => format!(", e.g. `{r}` → `{a}`"),
        (Some(r), None) => format!(", e.g. `{r}` is gone"),
        (None, Some(a)) => format!(", e.g. `{a}` is new"),
        (None, None) => String::new(),
    };
    Some(format!(
        "{} exists, but it holds other files than the spec copies now ({} added, {} removed{example}): flytekit's digest does not see every rename, so the name did not change; `--force` rebuilds it",
        recorded.image,
        added.len(),
        removed.len()
    ))
}

impl Inputs {
    /// The inputs of `spec`'s image as `tag` computed it; `dependency_image` from its plan.
    pub fn of(
        spec: &NormalizedSpec,
        tag: &ImageTag,
        dependency_image: Option<ImageRef>,
    ) -> std::io::Result<Inputs> {
        let mut fields = tag
            .fields
            .entries()
            .iter()
            .map(|(k, v)| (k.clone(), scrub(k, crate::py::repr::repr(v))))
            .collect::<IndexMap<_, _>>();
        if let Some(req) = &spec.requirements {
            let digest = file_digest(&spec.resolve(req)).unwrap_or_else(|_| "missing".into());
            fields.insert("requirements (contents)".into(), digest);
        }
        let listed = listed_files(tag);
        let (files, files_omitted) = if listed.len() > MAX_FILES {
            (BTreeMap::new(), Some(listed.len()))
        } else {
            let mut files = BTreeMap::new();
            for (name, path) in listed {
                files.insert(name, file_digest(&path)?);
            }
            (files, None)
        };
        Ok(Inputs {
            v: 1,
            image: tag.image.clone(),
            fields,
            files,
            files_omitted,
            dependency_image,
        })
    }

    /// The label value: compact JSON.
    pub fn to_label(&self) -> String {
        serde_json::to_string(self).expect("inputs serialise")
    }

    /// Reads a label value back.
    pub fn from_label(text: &str) -> Result<Inputs, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// What changed from `self` (earlier) to `now`.
    pub fn compare(&self, now: &Inputs) -> Explanation {
        let mut fields = Vec::new();
        for (k, before) in &self.fields {
            let after = now.fields.get(k);
            if after != Some(before) {
                fields.push(FieldChange {
                    field: k.clone(),
                    before: Some(before.clone()),
                    after: after.cloned(),
                });
            }
        }
        for (k, after) in &now.fields {
            if !self.fields.contains_key(k) {
                fields.push(FieldChange {
                    field: k.clone(),
                    before: None,
                    after: Some(after.clone()),
                });
            }
        }
        let files_unknown = self.files_omitted.is_some() || now.files_omitted.is_some();
        let mut files = FileChanges::default();
        let mut renamed = Vec::new();
        if !files_unknown {
            for (name, digest) in &self.files {
                match now.files.get(name) {
                    None => files.removed.push(name.clone()),
                    Some(d) if d != digest => files.changed.push(name.clone()),
                    Some(_) => {}
                }
            }
            files.added = now
                .files
                .keys()
                .filter(|k| !self.files.contains_key(*k))
                .cloned()
                .collect();
            for removed in &files.removed {
                let digest = &self.files[removed];
                if let Some(added) = files
                    .added
                    .iter()
                    .find(|a| &now.files[*a] == digest && !renamed.iter().any(|(_, t)| t == *a))
                {
                    renamed.push((removed.clone(), added.clone()));
                }
            }
        }
        Explanation {
            before: self.image.to_string(),
            after: now.image.to_string(),
            fields,
            files,
            renamed,
            dependencies_changed: self.dependency_image != now.dependency_image,
            files_unknown,
        }
    }
}

impl Explanation {
    /// `{"fields": [...], "files": {...}, "dependencies_changed": ...}` and the rest.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("explanation serialises")
    }
}

/// The imagespec cache directory (`$IMAGESPEC_CACHE_DIR`, else `$XDG_CACHE_HOME/imagespec`,
/// else `~/.cache/imagespec`), unless `IMAGESPEC_NO_CACHE` is set.
fn cache_base() -> Option<PathBuf> {
    crate::source::cache_home_if_enabled()
}

/// Where the last build of `repository` (`[registry/]name`) is recorded.
fn record_path(repository: &str) -> Option<PathBuf> {
    let file = repository.replace(
        |c: char| !(c.is_ascii_alphanumeric() || ".-".contains(c)),
        "_",
    );
    Some(
        cache_base()?
            .join("last-built")
            .join(format!("{file}.json")),
    )
}

/// Records `inputs` as the last image built for its repository (best effort: a cache).
pub fn record_last_built(inputs: &Inputs) {
    let Some(path) = record_path(&inputs.image.name().to_string()) else {
        return;
    };
    keep_record(&path, inputs);
}

/// Writes `inputs` to `path` (best effort: a cache), beside and renamed: a reader never sees
/// half a record.
pub fn keep_record(path: &std::path::Path, inputs: &Inputs) {
    let Some(dir) = path.parent() else { return };
    if std::fs::create_dir_all(dir).is_err() {
        return;
    }
    let Ok(mut tmp) = tempfile::NamedTempFile::new_in(dir) else {
        return;
    };
    if std::io::Write::write_all(&mut tmp, inputs.to_label().as_bytes()).is_ok() {
        let _ = tmp.persist(path);
    }
}

/// The record of the last image this machine built for `repository`, if any.
pub fn last_built(repository: &str) -> Option<Inputs> {
    let text = std::fs::read_to_string(record_path(repository)?).ok()?;
    Inputs::from_label(&text).ok()
}

/// Why an earlier image's inputs cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    #[error("{image} is not in its registry")]
    NotFound { image: String },
    #[error(
        "{image} carries no `{INPUTS_LABEL}` label: it was not built by imagespec (or by one older than this record)"
    )]
    NoRecord { image: String },
    #[error("{image}: its `{INPUTS_LABEL}` label cannot be read: {source}")]
    Unreadable {
        image: String,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "this machine has no record of an earlier build of {repository}: name the image to compare with, `--against IMAGE`"
    )]
    NoLastBuild { repository: String },
    #[error(transparent)]
    Registry(#[from] crate::builders::BackendError),
}

impl ExplainError {
    /// 2 when the user must say more, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            ExplainError::NoLastBuild { .. } => 2,
            _ => 1,
        }
    }
}

/// The inputs recorded in `image` (its `platform` image, when it is an index), asked of its
/// registry with the credentials `registry_config` (or docker's config) has for it.
pub async fn recorded(
    image: &ImageRef,
    platform: &Platform,
    registry_config: Option<&Path>,
    timeouts: crate::timeouts::Timeouts,
) -> Result<Inputs, ExplainError> {
    use crate::builders::BackendError;
    let host = image.host();
    let client =
        crate::registry::session(host, registry_config, timeouts).map_err(BackendError::from)?;
    recorded_in(&client, image, platform).await
}

/// The inputs recorded in `image`, asked through an existing registry session.
pub async fn recorded_in(
    client: &crate::registry::client::RegistryClient,
    image: &ImageRef,
    platform: &Platform,
) -> Result<Inputs, ExplainError> {
    let Some((_, config)) =
        crate::builders::registry::image_config(client, image, platform).await?
    else {
        return Err(ExplainError::NotFound {
            image: image.to_string(),
        });
    };
    recorded_in_config(image, &config)
}

/// The inputs recorded in `image`, whose manifest (or index) `raw` was already read: only
/// its config is asked for (and, for an index, the platform's manifest).
pub async fn recorded_in_manifest(
    client: &crate::registry::client::RegistryClient,
    image: &ImageRef,
    raw: crate::registry::client::RawManifest,
    platform: &Platform,
) -> Result<Inputs, ExplainError> {
    let Some(config) = crate::builders::registry::config_of(client, image, raw, platform).await?
    else {
        return Err(ExplainError::NotFound {
            image: image.to_string(),
        });
    };
    recorded_in_config(image, &config)
}

/// The inputs recorded in `config`, `image`'s config.
fn recorded_in_config(
    image: &ImageRef,
    config: &serde_json::Value,
) -> Result<Inputs, ExplainError> {
    let label = config
        .pointer("/config/Labels")
        .and_then(|l| l.get(INPUTS_LABEL))
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| ExplainError::NoRecord {
            image: image.to_string(),
        })?;
    Inputs::from_label(label).map_err(|source| ExplainError::Unreadable {
        image: image.to_string(),
        source,
    })
}

/// The record of the last image this machine built for `repository`.
pub fn last_built_or_err(repository: &str) -> Result<Inputs, ExplainError> {
    last_built(repository).ok_or_else(|| ExplainError::NoLastBuild {
        repository: repository.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(fields: &[(&str, &str)], files: &[(&str, &str)], deps: &str) -> Inputs {
        Inputs {
            v: 1,
            image: "r/app:t".parse().unwrap(),
            fields: fields
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            files: files
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            files_omitted: None,
            dependency_image: Some(deps.parse().unwrap()),
        }
    }

    #[test]
    fn changed_fields_and_files_are_named() {
        let before = inputs(
            &[("name", "'app'"), ("packages", "['a']")],
            &[("src/a.py", "1"), ("src/b.py", "2"), ("src/old.py", "3")],
            "r/app:deps-1",
        );
        let now = inputs(
            &[
                ("name", "'app'"),
                ("packages", "['a', 'b']"),
                ("env", "{'X': '1'}"),
            ],
            &[
                ("src/a.py", "1"),
                ("src/b.py", "9"),
                ("src/new.py", "3"),
                ("src/c.py", "4"),
            ],
            "r/app:deps-2",
        );
        let e = before.compare(&now);
        assert_eq!(
            e.fields,
            vec![
                FieldChange {
                    field: "packages".into(),
                    before: Some("['a']".into()),
                    after: Some("['a', 'b']".into())
                },
                FieldChange {
                    field: "env".into(),
                    before: None,
                    after: Some("{'X': '1'}".into())
                },
            ]
        );
        assert_eq!(e.files.added, ["src/c.py", "src/new.py"]);
        assert_eq!(e.files.removed, ["src/old.py"]);
        assert_eq!(e.files.changed, ["src/b.py"]);
        assert_eq!(e.renamed, [("src/old.py".into(), "src/new.py".into())]);
        assert!(e.dependencies_changed);
        let json = e.to_json();
        assert_eq!(json["files"]["changed"][0], "src/b.py");
        assert_eq!(json["fields"][0]["field"], "packages");
    }

    #[test]
    fn env_order_alone_is_a_field_change() {
        let before = inputs(&[("env", "{'A': '1', 'B': '2'}")], &[], "d");
        let now = inputs(&[("env", "{'B': '2', 'A': '1'}")], &[], "d");
        let e = before.compare(&now);
        assert_eq!(e.fields.len(), 1);
        assert!(!e.dependencies_changed);
        assert_eq!(e.files, FileChanges::default());
    }

    #[test]
    fn secrets_in_urls_and_host_paths_stay_out() {
        assert_eq!(
            scrub(
                "pip_index",
                "'https://user:t0ken@pypi.example/simple'".into()
            ),
            "'https://***@pypi.example/simple'"
        );
        // Every URL of a list, not only the first.
        assert_eq!(
            scrub(
                "pip_extra_index_url",
                "['https://a:1@x/s', 'https://b:2@y/s']".into()
            ),
            "['https://***@x/s', 'https://***@y/s']"
        );
        assert_eq!(
            scrub("source_root", "'/home/me/proj/src'".into()),
            "'…/src'"
        );
        assert_eq!(scrub("source_root", "'src'".into()), "'src'");
        assert_eq!(
            scrub("copy", "['/abs/dir/', 'rel']".into()),
            "['…/dir', 'rel']"
        );
    }

    #[test]
    fn the_label_reads_back() {
        let i = inputs(&[("name", "'x'")], &[("src/a", "00")], "d");
        assert_eq!(Inputs::from_label(&i.to_label()).unwrap(), i);
    }
}
