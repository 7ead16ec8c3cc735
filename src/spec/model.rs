//! The types of an ImageSpec's fields as written in a file, with the Python types the file
//! gave its values (the fields themselves are one table, [`super::fields`]).

use super::fields::Spec;
use super::origin::FieldAt;
use crate::py::PyValue;

/// A value whose Python type matters to the hash: `python_version = 3.10` is the float `3.1`
/// to flytekit, and `env = { PORT = 8080 }` holds the int `8080`.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    None,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
}

impl std::fmt::Display for Scalar {
    /// Python's `str()` of the value: what an f-string renders into a Dockerfile.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scalar::None => f.write_str("None"),
            Scalar::Bool(true) => f.write_str("True"),
            Scalar::Bool(false) => f.write_str("False"),
            Scalar::Int(i) => write!(f, "{i}"),
            Scalar::Float(x) => f.write_str(&crate::py::repr::float_repr(*x)),
            Scalar::Str(s) => f.write_str(s),
        }
    }
}

impl From<&Scalar> for PyValue {
    fn from(s: &Scalar) -> Self {
        match s {
            Scalar::None => PyValue::None,
            Scalar::Bool(b) => PyValue::Bool(*b),
            Scalar::Int(i) => PyValue::Int(*i),
            Scalar::Float(x) => PyValue::Float(*x),
            Scalar::Str(s) => PyValue::Str(s.clone()),
        }
    }
}

/// flytekit's `CopyFileDetection`: which source files go into the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CopyMode {
    /// `loaded_modules` / `auto`: the Python modules the program imported from `source_root`.
    LoadedModules,
    /// `all`: every file under `source_root` that no ignore rule excludes.
    All,
    /// `no_copy` / `none`: nothing.
    NoCopy,
}

impl CopyMode {
    /// Parses the names flytekit's CLI accepts, case-insensitively.
    pub fn parse(text: &str) -> Option<CopyMode> {
        match text.to_ascii_lowercase().as_str() {
            "loaded_modules" | "auto" => Some(CopyMode::LoadedModules),
            "all" => Some(CopyMode::All),
            "no_copy" | "none" => Some(CopyMode::NoCopy),
            _ => None,
        }
    }

    /// The enum's Python `repr()`, which is what flytekit hashes.
    pub fn python_repr(self) -> &'static str {
        match self {
            CopyMode::LoadedModules => "<CopyFileDetection.LOADED_MODULES: 1>",
            CopyMode::All => "<CopyFileDetection.ALL: 2>",
            CopyMode::NoCopy => "<CopyFileDetection.NO_COPY: 3>",
        }
    }
}

/// `base_image`: an image reference, or another spec to build first.
#[derive(Debug, Clone, PartialEq)]
pub enum BaseImage {
    Ref(String),
    Spec(Box<Spec>),
}

/// A `pip_secret_mounts` entry: a local secret file and where RUN steps see it. Paths only
/// (the secret's content is never read into the spec), so its `Debug` shows nothing secret.
#[derive(Debug, Clone, PartialEq)]
pub struct SecretMount {
    pub source: String,
    pub target: String,
}

impl Spec {
    /// Where `field` (`copy`, `copy[1]`, `builder_options.x`) was written, for an error.
    pub fn at(&self, field: &str) -> FieldAt {
        self.origin.at(field)
    }

    /// Where the `copy` entry written as `entry` is.
    pub fn copy_entry_at(&self, entry: &str) -> FieldAt {
        match self
            .copy
            .iter()
            .flatten()
            .position(|written| written == entry)
        {
            Some(i) => self.at(&format!("copy[{i}]")),
            None => self.at("copy"),
        }
    }
}
