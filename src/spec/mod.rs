//! The ImageSpec model and its file formats.
//!
//! A spec file is TOML (primary), YAML or JSON, chosen by extension, with flytekit's
//! `ImageSpec` field names. It holds one spec, or several under `[images.<key>]`, where one
//! may build on another with `base_image = { spec = "<key>" }`:
//!
//! ```
//! let file = imagespec::spec::SpecFile::parse(
//!     std::path::Path::new("images.toml"),
//!     "[images.base]\npackages = [\"numpy\"]\n[images.app]\nbase_image = { spec = \"base\" }\n",
//! ).unwrap();
//! let (key, app) = file.select(Some("app")).unwrap();
//! assert_eq!((key, app.name()), ("app", "flytekit"));
//! ```

pub(crate) mod control;
mod decode;
pub mod defaults;
mod error;
mod fields;
pub(crate) mod json;
mod model;
mod node;
mod normalize;
mod origin;
pub(crate) mod toml;
pub(crate) mod yaml;

pub use crate::py::PyValue;
pub use decode::MAX_BASE_DEPTH;
pub use defaults::{ConfigChoice, Defaults};
pub use error::SpecError;
pub use fields::{FIELD_TABLE, FIELDS, Field, FieldValue, Spec};
pub use model::{BaseImage, CopyMode, Scalar, SecretMount};
pub use node::{Key, LineIndex, MAX_DEPTH, Node, Pos, Value};
pub use normalize::{NormalizedBase, NormalizedSpec, default_platform};
pub use origin::{FieldAt, Origin};

use indexmap::IndexMap;
use std::path::{Path, PathBuf};

/// The formats a spec file can be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Toml,
    Yaml,
    Json,
}

impl Format {
    /// The format a file's extension names.
    pub fn from_path(path: &Path) -> Option<Format> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "toml" => Some(Format::Toml),
            "yaml" | "yml" => Some(Format::Yaml),
            "json" => Some(Format::Json),
            _ => None,
        }
    }

    /// Parses `text` in this format.
    pub fn parse(self, text: &str) -> Result<Node, toml::SyntaxError> {
        match self {
            Format::Toml => toml::parse(text),
            Format::Yaml => yaml::parse(text),
            Format::Json => json::parse(text),
        }
    }
}

/// A loaded spec file: its normalised images by key (`""` for a single-image file).
#[derive(Debug, Clone)]
pub struct SpecFile {
    path: PathBuf,
    images: IndexMap<String, Result<NormalizedSpec, SpecError>>,
    multi: bool,
    defaults: std::sync::Arc<Defaults>,
}

impl SpecFile {
    /// Reads and decodes a spec file, reading no defaults file.
    pub fn load(path: &Path) -> Result<SpecFile, SpecError> {
        SpecFile::parse(path, &read(path)?)
    }

    /// Reads and decodes a spec file with the defaults `choice` names (found from the spec's
    /// directory; see [`defaults`]); `keep_name`: only the defaults that keep the name.
    pub fn load_with(
        path: &Path,
        choice: &ConfigChoice,
        keep_name: bool,
    ) -> Result<SpecFile, SpecError> {
        SpecFile::parse_with(path, &read(path)?, choice, keep_name)
    }

    /// [`SpecFile::parse`] with the defaults `choice` names, found from `path`'s directory.
    pub fn parse_with(
        path: &Path,
        text: &str,
        choice: &ConfigChoice,
        keep_name: bool,
    ) -> Result<SpecFile, SpecError> {
        let defaults = Defaults::load(choice, &spec_dir(path), keep_name)?;
        SpecFile::parse_with_defaults(path, text, defaults)
    }

    /// Decodes spec text; `path` names the file (its extension picks the format, its directory
    /// anchors relative paths). No defaults file is read.
    pub fn parse(path: &Path, text: &str) -> Result<SpecFile, SpecError> {
        SpecFile::parse_with_defaults(path, text, Defaults::default())
    }

    /// Decodes spec text, its images normalised with `defaults`.
    pub fn parse_with_defaults(
        path: &Path,
        text: &str,
        defaults: Defaults,
    ) -> Result<SpecFile, SpecError> {
        let format = Format::from_path(path).ok_or_else(|| SpecError::Format {
            file: path.to_path_buf(),
            ext: path.extension().map(|e| e.to_string_lossy().into_owned()),
        })?;
        let root = format.parse(text).map_err(|e| SpecError::Syntax {
            file: path.to_path_buf(),
            pos: e.pos,
            message: e.message,
        })?;
        let (specs, multi) = decode::decode_file(path, &root)?;
        let dir = spec_dir(path);
        let defaults = std::sync::Arc::new(defaults);
        let images = specs
            .into_iter()
            .map(|(k, s)| {
                let normalized = s.and_then(|s| NormalizedSpec::with_defaults(s, &dir, &defaults));
                (k, normalized)
            })
            .collect();
        Ok(SpecFile {
            path: path.to_path_buf(),
            images,
            multi,
            defaults,
        })
    }

    /// The defaults this file's images were normalised with, and the files they came from.
    pub fn defaults(&self) -> &Defaults {
        &self.defaults
    }

    /// The file this was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the file lists several images under `[images]`.
    pub fn is_multi(&self) -> bool {
        self.multi
    }

    /// All images with their keys; the first invalid one is an error.
    pub fn images(&self) -> Result<Vec<(&str, &NormalizedSpec)>, SpecError> {
        self.images
            .iter()
            .map(|(k, v)| v.as_ref().map(|s| (k.as_str(), s)).map_err(Clone::clone))
            .collect()
    }

    /// The keys of all images, valid or not.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.images.keys().map(String::as_str)
    }

    /// The image named `key`, or the only one when `key` is `None`.
    pub fn select(&self, key: Option<&str>) -> Result<(&str, &NormalizedSpec), SpecError> {
        let keys = || {
            self.images
                .keys()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        };
        match key {
            Some(k) if !self.multi => Err(SpecError::Selection {
                file: self.path.clone(),
                message: format!(
                    "`--image {k}` given, but this file holds a single spec (no `[images]` table)"
                ),
            }),
            Some(k) => match self.images.get_key_value(k) {
                Some((k, Ok(v))) => Ok((k.as_str(), v)),
                Some((_, Err(e))) => Err(e.clone()),
                None => {
                    let closest = self
                        .images
                        .keys()
                        .map(|have| (strsim::jaro_winkler(k, have), have))
                        .filter(|(score, _)| *score > 0.8)
                        .max_by(|a, b| a.0.total_cmp(&b.0))
                        .map(|(_, have)| format!(" (did you mean `{have}`?)"))
                        .unwrap_or_default();
                    Err(SpecError::Selection {
                        file: self.path.clone(),
                        message: format!("no image `{k}`{closest}; this file has: {}", keys()),
                    })
                }
            },
            None if self.images.len() == 1 => match self.images.first() {
                Some((k, Ok(v))) => Ok((k.as_str(), v)),
                Some((_, Err(e))) => Err(e.clone()),
                None => unreachable!("len is 1"),
            },
            None => Err(SpecError::Selection {
                file: self.path.clone(),
                message: format!(
                    "this file holds several images; pick one with `--image KEY` ({})",
                    keys()
                ),
            }),
        }
    }
}

fn read(path: &Path) -> Result<String, SpecError> {
    std::fs::read_to_string(path).map_err(|source| SpecError::Read {
        file: path.to_path_buf(),
        source: std::sync::Arc::new(source),
    })
}

/// The directory relative paths in a spec file are relative to (absolute when possible).
fn spec_dir(path: &Path) -> PathBuf {
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::path::absolute(parent).unwrap_or_else(|_| parent.to_path_buf())
}
