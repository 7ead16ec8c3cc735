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

use crate::oci::reference::{ImageRef, ReferenceError, Tag};
use crate::source::{self, CopySet, SourceError, SourceSet};
use crate::spec::{CopyMode, FieldAt, FieldValue, NormalizedBase, NormalizedSpec, PyValue};
use base64::Engine;
use md5::{Digest, Md5};
use std::path::PathBuf;
use std::sync::Arc;

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
    /// `ImageSpec.image_name()`: `[registry/]name:tag`, valid by the OCI distribution
    /// grammar (its `Display` is flytekit's string).
    pub image: ImageRef,
    /// The `source_root` files the image gets (`None` when nothing is copied).
    pub source: Option<SourceSet>,
    /// The `copy` entries and their files (`None` when `copy` is unset or empty).
    pub copy: Option<CopySet>,
    /// The tag of the base spec, when `base_image` is a spec.
    pub base: Option<Box<ImageTag>>,
    /// The hashed fields `id` was computed from.
    pub fields: Arc<HashedFields>,
}

/// Inputs only the running program knows, for `source_copy_mode = loaded_modules`.
#[derive(Debug, Clone, Default)]
pub struct TagOptions {
    /// Module files as Python's `__file__` names them (absolute paths, normally).
    pub modules: Option<Vec<String>>,
    /// Whether links in the source tree and `copy` entries may point outside them.
    pub links: source::LinkPolicy,
}

/// flytekit's `asdict(spec)` with its filter: the hashed fields in declaration order, `None`
/// dropped, a nested base spec as a nested dict. The id is the md5 of its `repr()`; the tag's
/// dict is a copy with some values replaced. Built once per image ([`compute`]) and carried
/// in its [`ImageTag`], so the inputs record and [`verify_unchanged`] need not build it again.
#[derive(Debug, Clone, PartialEq)]
pub struct HashedFields(Vec<(String, PyValue)>);

impl HashedFields {
    /// The dict of `spec` (and of its base specs).
    pub fn of(spec: &NormalizedSpec) -> HashedFields {
        HashedFields::with_base(spec, None)
    }

    /// The dict of `spec`, where `base` is the dict of its base spec when already built.
    fn with_base(spec: &NormalizedSpec, base: Option<&HashedFields>) -> HashedFields {
        let dict = spec
            .fields()
            .filter(|(field, _)| field.hashed)
            .map(|(field, value)| (field.name.to_string(), py_value(value, base)))
            .collect();
        HashedFields(dict)
    }

    /// The fields and their values, in flytekit's order.
    pub fn entries(&self) -> &[(String, PyValue)] {
        &self.0
    }

    /// `ImageSpec.id`: md5 of the dict's `repr()`, URL-safe base64 without padding.
    pub fn id(&self) -> String {
        hash_repr(&PyValue::Dict(self.0.clone()))
    }
}

/// A field's value as `asdict()` holds it; a base spec as its dict (`base`, when built).
fn py_value(value: FieldValue<'_>, base: Option<&HashedFields>) -> PyValue {
    let strings =
        |items: &[String]| PyValue::List(items.iter().cloned().map(PyValue::Str).collect());
    match value {
        FieldValue::Str(s) => PyValue::Str(s.to_string()),
        FieldValue::Strings(items) => strings(items),
        FieldValue::Scalar(s) => PyValue::from(s),
        FieldValue::Env(env) => PyValue::Dict(
            env.iter()
                .map(|(k, v)| (k.clone(), PyValue::from(v)))
                .collect(),
        ),
        FieldValue::Base(NormalizedBase::Ref(r)) => PyValue::Str(r.to_string()),
        FieldValue::Base(NormalizedBase::Empty) => PyValue::Str(String::new()),
        FieldValue::Base(NormalizedBase::Spec(inner)) => PyValue::Dict(match base {
            Some(fields) => fields.0.clone(),
            None => HashedFields::of(inner).0,
        }),
        FieldValue::SecretMounts(mounts) => PyValue::List(
            mounts
                .iter()
                .map(|m| {
                    PyValue::Tuple(vec![
                        PyValue::Str(m.source.clone()),
                        PyValue::Str(m.target.clone()),
                    ])
                })
                .collect(),
        ),
        FieldValue::CopyMode(mode) => PyValue::Repr(mode.python_repr().to_string()),
        FieldValue::Dict(entries) => PyValue::Dict(entries.to_vec()),
    }
}

/// `ImageSpec.id`.
pub fn id(spec: &NormalizedSpec) -> String {
    HashedFields::of(spec).id()
}

fn hash_repr(value: &PyValue) -> String {
    let digest = Md5::digest(crate::py::repr::repr(value).as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
}

/// Computes id, tag and image name, reading the files the spec points at.
pub fn compute(spec: &NormalizedSpec, options: &TagOptions) -> Result<ImageTag, TagError> {
    compute_from(spec, options, None)
}

/// [`compute`]; with `earlier`, a tag computed before for `spec`, whose hashed fields are
/// taken as they are (only the files are read again).
fn compute_from(
    spec: &NormalizedSpec,
    options: &TagOptions,
    earlier: Option<&ImageTag>,
) -> Result<ImageTag, TagError> {
    let base = match spec.base() {
        Some(NormalizedBase::Spec(inner)) => {
            let earlier_base = earlier.and_then(|e| e.base.as_deref());
            Some(Box::new(compute_from(inner, options, earlier_base)?))
        }
        _ => None,
    };
    let fields = match earlier {
        Some(e) => Arc::clone(&e.fields),
        None => Arc::new(HashedFields::with_base(
            spec,
            base.as_deref().map(|b| &*b.fields),
        )),
    };
    let source = source_set(spec, options)?;
    let copy = copy_set(spec, options)?;
    let requirements = requirements_digest(spec)?;
    let mut dict = fields.entries().to_vec();
    let digest = |digest: &str| Some(PyValue::Str(digest.to_string()));
    let replacements = [
        (
            "base_image",
            base.as_ref().and_then(|b| digest(&b.image.to_string())),
        ),
        (
            "source_root",
            source.as_ref().and_then(|s| digest(&s.digest)),
        ),
        ("copy", copy.as_ref().and_then(|c| digest(&c.digest))),
        ("requirements", requirements.as_deref().and_then(digest)),
    ];
    for (field, value) in replacements {
        if let Some(value) = value {
            replace(&mut dict, field, Some(value));
        }
    }
    replace(&mut dict, "registry_config", None);
    let hash = hash_repr(&PyValue::Dict(dict)).replace('-', "_");
    let (tag, reference) = tag_of(spec, hash)?;
    Ok(ImageTag {
        id: fields.id(),
        tag,
        image: reference,
        source,
        copy,
        base,
        fields,
    })
}

/// Sets `field` of `dict` to `value` (removes it for `None`), when `dict` has it.
fn replace(dict: &mut Vec<(String, PyValue)>, field: &str, value: Option<PyValue>) {
    if let Some(i) = dict.iter().position(|(k, _)| k == field) {
        match value {
            Some(v) => dict[i].1 = v,
            None => {
                dict.remove(i);
            }
        }
    }
}

/// The `source_root` files the image gets, by `source_copy_mode` (`None` for `no_copy`).
fn source_set(spec: &NormalizedSpec, options: &TagOptions) -> Result<Option<SourceSet>, TagError> {
    let Some(mode) = spec.source_copy_mode.filter(|m| *m != CopyMode::NoCopy) else {
        return Ok(None);
    };
    let name = spec.name().to_string();
    let at = || {
        spec.origin
            .at_first_of(&["source_copy_mode", "source_root"])
    };
    let root = spec
        .source_root
        .as_deref()
        .filter(|r| !r.is_empty())
        .ok_or_else(|| TagError::MissingSourceRoot {
            at: at(),
            name: name.clone(),
            mode: if mode == CopyMode::All {
                "all"
            } else {
                "loaded_modules"
            },
        })?;
    let cwd = spec.dir();
    let set = match mode {
        CopyMode::All => SourceSet::all_with(root, cwd, options.links),
        _ => {
            let modules = options
                .modules
                .as_ref()
                .ok_or_else(|| TagError::MissingModules {
                    at: at(),
                    name: name.clone(),
                })?;
            SourceSet::loaded_modules(root, modules, cwd, options.links)
        }
    };
    set.map(Some).map_err(|source| TagError::Source {
        at: spec.at("source_root"),
        name,
        source,
    })
}

/// The `copy` entries and their files (`None` when `copy` is unset or empty).
fn copy_set(spec: &NormalizedSpec, options: &TagOptions) -> Result<Option<CopySet>, TagError> {
    let Some(copy) = spec.copy.as_ref().filter(|c| !c.is_empty()) else {
        return Ok(None);
    };
    let name = spec.name().to_string();
    let cwd = spec.dir();
    let set = source::copy_digest(copy, cwd, options.links).map_err(|source| TagError::Source {
        at: spec.at("copy"),
        name: name.clone(),
        source,
    })?;
    // flytekit hashes a missing entry as nothing and names the image; its build then
    // fails. A name that cannot be built is never handed out: refused here, for every
    // command (a deliberate difference, listed in docs/differences.md).
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
    Ok(Some(set))
}

/// The sha1 of the `requirements` file, when one is named.
fn requirements_digest(spec: &NormalizedSpec) -> Result<Option<String>, TagError> {
    let Some(req) = spec.requirements.as_deref().filter(|r| !r.is_empty()) else {
        return Ok(None);
    };
    let cwd = spec.dir();
    source::requirements_digest(&cwd.join(req))
        .map(Some)
        .map_err(|source| TagError::Requirements {
            at: spec.at("requirements"),
            name: spec.name().to_string(),
            written: req.to_string(),
            dir: cwd.to_path_buf(),
            source,
        })
}

/// The tag `tag_format` makes of `hash` (`hash` itself without one), and the image name.
fn tag_of(spec: &NormalizedSpec, hash: String) -> Result<(String, ImageRef), TagError> {
    let name = || spec.name().to_string();
    let tag = match spec.tag_format.as_deref().filter(|f| !f.is_empty()) {
        Some(format) => crate::py::format::format_spec_hash(format, &hash).map_err(|message| {
            TagError::TagFormat {
                at: spec.at("tag_format"),
                name: name(),
                message: message.to_string(),
            }
        })?,
        None => hash,
    };
    // flytekit pushes whatever `tag_format` makes; a tag the registry refuses, or (`?`, `#`)
    // one a URL turns into another tag, fails here instead, before anything runs.
    let parsed = Tag::parse(&tag).map_err(|source| TagError::InvalidTag {
        at: spec.at("tag_format"),
        name: name(),
        source,
    })?;
    Ok((tag, spec.repository().with_tag(parsed)))
}

/// Recomputes the tag and fails when it differs from `tag` (flytekit checks this too after
/// writing the context: a file that changed meanwhile would make the image not match its
/// name).
pub fn verify_unchanged(
    spec: &NormalizedSpec,
    options: &TagOptions,
    tag: &ImageTag,
) -> Result<(), TagError> {
    let again = compute_from(spec, options, Some(tag))?;
    if again.tag != tag.tag {
        return Err(TagError::Changed {
            name: spec.name().to_string(),
            before: tag.tag.clone(),
            after: again.tag,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::SpecFile;
    use std::path::Path;

    fn spec(text: &str) -> NormalizedSpec {
        let file = SpecFile::parse(Path::new("/nowhere/s.toml"), text).unwrap();
        file.select(None).unwrap().1.clone()
    }

    fn keys(dict: &[(String, PyValue)]) -> Vec<&str> {
        dict.iter().map(|(k, _)| k.as_str()).collect()
    }

    #[test]
    fn the_dict_holds_the_hashed_fields_with_the_base_spec_nested() {
        let spec = spec(
            "name = \"App\"\nbuilder = \"x\"\nruntime_packages = [\"r\"]\n\
             base_image = { name = \"b\", packages = [\"p\"] }\n",
        );
        let fields = HashedFields::of(&spec);
        assert_eq!(keys(fields.entries()), ["name", "base_image", "platform"]);
        assert_eq!(fields.entries()[0].1, PyValue::Str("app".into()));
        let PyValue::Dict(base) = &fields.entries()[1].1 else {
            panic!("the base spec is a dict: {fields:?}");
        };
        assert_eq!(keys(base), ["name", "packages", "platform"]);
    }

    #[test]
    fn a_tag_carries_the_dict_its_id_was_computed_from() {
        let spec = spec("name = \"app\"\nbase_image = { name = \"b\" }\ncuda = 12\n");
        let tag = compute(&spec, &TagOptions::default()).unwrap();
        assert_eq!(*tag.fields, HashedFields::of(&spec));
        assert_eq!(tag.id, tag.fields.id());
        assert_eq!(tag.id, id(&spec));
        let base = tag.base.as_deref().unwrap();
        assert_eq!(
            keys(tag.fields.entries()),
            ["name", "cuda", "base_image", "platform"]
        );
        let PyValue::Dict(nested) = &tag.fields.entries()[2].1 else {
            panic!("the base spec is a dict");
        };
        assert_eq!(nested, base.fields.entries());
        // Computed again from the same fields, the tag is the same, and the dict is the one
        // computed first (built once per image: verify_unchanged reads only the files).
        let again = compute_from(&spec, &TagOptions::default(), Some(&tag)).unwrap();
        assert_eq!(again, tag);
        assert!(Arc::ptr_eq(&again.fields, &tag.fields));
        let again_base = again.base.as_deref().unwrap();
        assert!(Arc::ptr_eq(&again_base.fields, &base.fields));
        verify_unchanged(&spec, &TagOptions::default(), &tag).unwrap();
    }

    #[test]
    fn values_are_what_asdict_holds() {
        let spec = spec(
            "env = { A = 1, B = true }\nsource_copy_mode = \"all\"\nsource_root = \"s\"\n\
             builder_options = { k = [1, \"x\"] }\n",
        );
        let dict = PyValue::Dict(HashedFields::of(&spec).entries().to_vec());
        assert_eq!(
            crate::py::repr::repr(&dict),
            "{'name': 'flytekit', 'source_root': 's', 'env': {'A': 1, 'B': True}, \
             'platform': 'linux/amd64', 'source_copy_mode': <CopyFileDetection.ALL: 2>, \
             'builder_options': {'k': [1, 'x']}}"
        );
    }
}
