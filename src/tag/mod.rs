//! flytekit-exact `ImageSpec.id`, `.tag` and `.image_name()`.
//!
//! - `id`: md5 of `str(asdict(spec))` with `None` fields and `pip_secret_mounts`, `builder`,
//!   `runtime_packages` left out (recursively, so a nested base spec is a nested dict),
//!   URL-safe base64 without padding.
//! - `tag`: the `id` of a copy where the base spec is replaced by its image name,
//!   `source_root` by the source digest, `copy` by its digest, `requirements` by the sha1 of
//!   the file, `registry_config` dropped; `-` → `_`; then `tag_format`.
//! - image name: `[registry/]name:tag`.

/// The Unicode version whose printability rules `repr()` follows here (CPython 3.11's).
pub use crate::py::UNICODE_VERSION as PYTHON_UNICODE_VERSION;

use crate::source::{self, CopySet, SourceError, SourceSet};
use crate::spec::reference::{ImageRef, ReferenceError, Tag};
use crate::spec::{CopyMode, FieldAt, NormalizedBase, NormalizedSpec, PyValue};
use base64::Engine;
use md5::{Digest, Md5};
use std::path::PathBuf;

/// Why a tag could not be computed. Every variant but [`TagError::Changed`] is about a
/// field of the spec and says where it was written.
#[derive(Debug, thiserror::Error)]
pub enum TagError {
    #[error("{at}: image `{name}`: `copy` entry `{entry}` does not exist (relative to {}); flytekit would name the image, but its build fails", dir.display())]
    CopyMissing {
        at: FieldAt,
        name: String,
        entry: String,
        dir: std::path::PathBuf,
    },
    #[error(
        "{at}: image `{name}`: `copy` entry `{entry}`: absolute paths and paths with `..` are not allowed (flytekit's build refuses them too)"
    )]
    CopyPath {
        at: FieldAt,
        name: String,
        entry: String,
    },
    #[error(
        "{at}: image `{name}`: `source_copy_mode = {mode}` needs `source_root` (flytekit: \"Field source_root for image spec {name} must be set when copy is set\")"
    )]
    MissingSourceRoot {
        at: FieldAt,
        name: String,
        mode: &'static str,
    },
    #[error(
        "{at}: image `{name}`: `source_copy_mode = loaded_modules` needs the list of loaded module files: pass `--modules-from FILE` or `--entry MODULE`, or use `source_copy_mode = \"all\"`"
    )]
    MissingModules { at: FieldAt, name: String },
    #[error("{at}: image `{name}`: cannot read {written} (from {}): {source}", dir.display())]
    Requirements {
        at: FieldAt,
        name: String,
        written: String,
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{at}: image `{name}`: {source}")]
    Source {
        at: FieldAt,
        name: String,
        #[source]
        source: SourceError,
    },
    #[error(
        "image `{name}`: the tag changed from {before} to {after} while the build context was written: files changed meanwhile; run again once they are stable"
    )]
    Changed {
        name: String,
        before: String,
        after: String,
    },
    #[error("{at}: image `{name}`: {message}")]
    TagFormat {
        at: FieldAt,
        name: String,
        message: String,
    },
    #[error("{at}: image `{name}`: the tag `tag_format` makes is not valid: {source}")]
    InvalidTag {
        at: FieldAt,
        name: String,
        #[source]
        source: ReferenceError,
    },
}

/// What the tag of one image was computed from.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageTag {
    /// `ImageSpec.id`, the value of `_F_IMG_ID` in the image.
    pub id: String,
    /// `ImageSpec.tag`.
    pub tag: String,
    /// `ImageSpec.image_name()`: `[registry/]name:tag`.
    pub image: String,
    /// [`ImageTag::image`] parsed: valid by the OCI distribution grammar.
    pub reference: ImageRef,
    /// The `source_root` files the image gets (`None` when nothing is copied).
    pub source: Option<SourceSet>,
    /// The `copy` entries and their files (`None` when `copy` is unset or empty).
    pub copy: Option<CopySet>,
    /// The tag of the base spec, when `base_image` is a spec.
    pub base: Option<Box<ImageTag>>,
}

/// Inputs only the running program knows, for `source_copy_mode = loaded_modules`.
#[derive(Debug, Clone, Default)]
pub struct TagOptions {
    /// Module files as Python's `__file__` names them (absolute paths, normally).
    pub modules: Option<Vec<String>>,
    /// Whether links in the source tree and `copy` entries may point outside them.
    pub links: source::LinkPolicy,
}

/// `ImageSpec.id`.
pub fn id(spec: &NormalizedSpec) -> String {
    hash_repr(&PyValue::Dict(spec_dict(spec)))
}

fn hash_repr(value: &PyValue) -> String {
    let digest = Md5::digest(crate::py::repr::repr(value).as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
}

/// `asdict(spec)` with flytekit's filter: fields in declaration order, `None` dropped.
pub fn spec_dict(spec: &NormalizedSpec) -> Vec<(String, PyValue)> {
    let s = |v: &Option<String>| v.as_ref().map(|x| PyValue::Str(x.clone()));
    let list = |v: &Option<Vec<String>>| {
        v.as_ref()
            .map(|x| PyValue::List(x.iter().cloned().map(PyValue::Str).collect()))
    };
    let fields: [(&str, Option<PyValue>); 26] = [
        ("name", Some(PyValue::Str(spec.name().to_string()))),
        (
            "python_version",
            spec.python_version.as_ref().map(PyValue::from),
        ),
        ("source_root", s(&spec.source_root)),
        (
            "env",
            spec.env.as_ref().map(|env| {
                PyValue::Dict(
                    env.iter()
                        .map(|(k, v)| (k.clone(), PyValue::from(v)))
                        .collect(),
                )
            }),
        ),
        ("registry", s(&spec.registry)),
        ("packages", list(&spec.packages)),
        ("conda_packages", list(&spec.conda_packages)),
        ("conda_channels", list(&spec.conda_channels)),
        ("requirements", s(&spec.requirements)),
        ("apt_packages", list(&spec.apt_packages)),
        ("cuda", spec.cuda.as_ref().map(PyValue::from)),
        ("cudnn", spec.cudnn.as_ref().map(PyValue::from)),
        (
            "base_image",
            spec.base().map(|b| match b {
                NormalizedBase::Ref(r) => PyValue::Str(r.clone()),
                NormalizedBase::Spec(inner) => PyValue::Dict(spec_dict(inner)),
            }),
        ),
        ("platform", Some(PyValue::Str(spec.platform().to_string()))),
        ("pip_index", s(&spec.pip_index)),
        ("pip_extra_index_url", list(&spec.pip_extra_index_url)),
        ("pip_extra_args", s(&spec.pip_extra_args)),
        ("registry_config", s(&spec.registry_config)),
        ("entrypoint", list(&spec.entrypoint)),
        ("commands", list(&spec.commands)),
        ("tag_format", s(&spec.tag_format)),
        (
            "source_copy_mode",
            spec.source_copy_mode
                .map(|m| PyValue::Repr(m.python_repr().to_string())),
        ),
        ("copy", list(&spec.copy)),
        ("python_exec", s(&spec.python_exec)),
        (
            "builder_options",
            spec.builder_options.clone().map(PyValue::Dict),
        ),
        (
            "builder_config",
            spec.builder_config.clone().map(PyValue::Dict),
        ),
    ];
    fields
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k.to_string(), v)))
        .collect()
}

/// Computes id, tag and image name, reading the files the spec points at.
pub fn compute(spec: &NormalizedSpec, options: &TagOptions) -> Result<ImageTag, TagError> {
    let name = spec.name().to_string();
    let cwd = spec.dir();
    let mut dict = spec_dict(spec);
    let mut replace = |field: &str, value: Option<PyValue>| {
        if let Some(i) = dict.iter().position(|(k, _)| k == field) {
            match value {
                Some(v) => dict[i].1 = v,
                None => {
                    dict.remove(i);
                }
            }
        }
    };

    let base = match spec.base() {
        Some(NormalizedBase::Spec(inner)) => {
            let base_tag = compute(inner, options)?;
            replace("base_image", Some(PyValue::Str(base_tag.image.clone())));
            Some(Box::new(base_tag))
        }
        _ => None,
    };

    let mut source = None;
    if let Some(mode) = spec.source_copy_mode.filter(|m| *m != CopyMode::NoCopy) {
        let root = spec
            .source_root
            .as_deref()
            .filter(|r| !r.is_empty())
            .ok_or_else(|| TagError::MissingSourceRoot {
                at: spec
                    .origin
                    .at_first_of(&["source_copy_mode", "source_root"]),
                name: name.clone(),
                mode: if mode == CopyMode::All {
                    "all"
                } else {
                    "loaded_modules"
                },
            })?;
        let set = match mode {
            CopyMode::All => SourceSet::all_with(root, cwd, options.links),
            _ => {
                let modules = options
                    .modules
                    .as_ref()
                    .ok_or_else(|| TagError::MissingModules {
                        at: spec
                            .origin
                            .at_first_of(&["source_copy_mode", "source_root"]),
                        name: name.clone(),
                    })?;
                SourceSet::loaded_modules(root, modules, cwd, options.links)
            }
        }
        .map_err(|source| TagError::Source {
            at: spec.at("source_root"),
            name: name.clone(),
            source,
        })?;
        replace("source_root", Some(PyValue::Str(set.digest.clone())));
        source = Some(set);
    }

    let mut copy_set = None;
    if let Some(copy) = spec.copy.as_ref().filter(|c| !c.is_empty()) {
        let set =
            source::copy_digest(copy, cwd, options.links).map_err(|source| TagError::Source {
                at: spec.at("copy"),
                name: name.clone(),
                source,
            })?;
        // flytekit hashes a missing entry as nothing and names the image; its build then
        // fails. A name that cannot be built is never handed out: refused here, for every
        // command (a deliberate difference, listed in the README).
        if let Some(bad) = copy
            .iter()
            .find(|written| written.starts_with('/') || written.split('/').any(|part| part == ".."))
        {
            return Err(TagError::CopyPath {
                at: spec.copy_entry_at(bad),
                name,
                entry: bad.clone(),
            });
        }
        if let Some(missing) = copy
            .iter()
            .find(|written| std::fs::symlink_metadata(cwd.join(written)).is_err())
        {
            return Err(TagError::CopyMissing {
                at: spec.copy_entry_at(missing),
                name,
                entry: missing.clone(),
                dir: cwd.to_path_buf(),
            });
        }
        replace("copy", Some(PyValue::Str(set.digest.clone())));
        copy_set = Some(set);
    }

    if let Some(req) = spec.requirements.as_deref().filter(|r| !r.is_empty()) {
        let digest = source::requirements_digest(&cwd.join(req)).map_err(|source| {
            TagError::Requirements {
                at: spec.at("requirements"),
                name: name.clone(),
                written: req.to_string(),
                dir: cwd.to_path_buf(),
                source,
            }
        })?;
        replace("requirements", Some(PyValue::Str(digest)));
    }

    replace("registry_config", None);
    let id = id(spec);
    let hash = hash_repr(&PyValue::Dict(dict)).replace('-', "_");
    let tag = match spec.tag_format.as_deref().filter(|f| !f.is_empty()) {
        Some(format) => crate::py::format::format_spec_hash(format, &hash).map_err(|message| {
            TagError::TagFormat {
                at: spec.at("tag_format"),
                name: name.clone(),
                message: message.to_string(),
            }
        })?,
        None => hash,
    };
    // flytekit pushes whatever `tag_format` makes; a tag the registry refuses, or (`?`, `#`)
    // one a URL turns into another tag, fails here instead, before anything runs.
    let parsed = Tag::parse(&tag).map_err(|source| TagError::InvalidTag {
        at: spec.at("tag_format"),
        name: name.clone(),
        source,
    })?;
    let reference = spec.repository().with_tag(parsed);
    let image = reference.to_string();
    Ok(ImageTag {
        id,
        tag,
        image,
        reference,
        source,
        copy: copy_set,
        base,
    })
}

/// Recomputes the tag and fails when it differs from `tag` (flytekit checks this too after
/// writing the context: a file that changed meanwhile would make the image not match its
/// name).
pub fn verify_unchanged(
    spec: &NormalizedSpec,
    options: &TagOptions,
    tag: &ImageTag,
) -> Result<(), TagError> {
    let again = compute(spec, options)?;
    if again.tag != tag.tag {
        return Err(TagError::Changed {
            name: spec.name().to_string(),
            before: tag.tag.clone(),
            after: again.tag,
        });
    }
    Ok(())
}
