//! A format-neutral value tree with source positions.
//!
//! TOML, YAML and JSON are each parsed into [`Node`]s first, so that decoding the spec (and
//! every error it reports) works the same for all three, with the `line:column` of the value
//! at fault. Scalars keep the type the file gave them, the way Python's parsers would
//! (`python_version = 3.10` is the float `3.1`), because that type is part of flytekit's hash.

/// A 1-based line and column in a spec file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

impl std::fmt::Display for Pos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

impl Pos {
    /// The position of byte `offset` in `text`.
    pub fn at_offset(text: &str, offset: usize) -> Pos {
        let offset = offset.min(text.len());
        let before = &text.as_bytes()[..offset];
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let line_start = before.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let col = String::from_utf8_lossy(&before[line_start..]).chars().count() + 1;
        Pos { line, col }
    }
}

/// A parsed value and where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub pos: Pos,
}

/// A mapping key and where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub name: String,
    pub pos: Pos,
}

/// The values a spec file can hold, typed as Python's `tomllib`, `yaml.safe_load` and
/// `json.load` would type them.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    List(Vec<Node>),
    Map(Vec<(Key, Node)>),
    /// A date or time (TOML datetimes, YAML timestamps): Python would make a `datetime`,
    /// which no ImageSpec field can use.
    Date(String),
}

impl Value {
    /// What this value is, in words for an error message.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a float",
            Value::Str(_) => "a string",
            Value::List(_) => "a list",
            Value::Map(_) => "a table",
            Value::Date(_) => "a date/time",
        }
    }
}
