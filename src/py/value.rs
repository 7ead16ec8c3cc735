//! A Python value, as flytekit's `ImageSpec` fields hold them: what `repr()` prints and
//! what the id and tag hash.

/// Any value Python could hold in `builder_options` / `builder_config`.
#[derive(Debug, Clone, PartialEq)]
pub enum PyValue {
    None,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    List(Vec<PyValue>),
    Tuple(Vec<PyValue>),
    Dict(Vec<(String, PyValue)>),
    /// An object whose `repr()` is given verbatim, e.g. `<CopyFileDetection.ALL: 2>`.
    Repr(String),
}
