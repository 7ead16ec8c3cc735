//! Errors in a spec file, each naming the file, `line:column` and field at fault.

use super::node::Pos;
use std::path::PathBuf;

/// A spec file that cannot be used as written. Every variant is bad input (exit code 2).
#[derive(Debug, Clone, thiserror::Error)]
pub enum SpecError {
    #[error("{}: cannot read the spec file: {source}", file.display())]
    Read {
        file: PathBuf,
        #[source]
        source: std::sync::Arc<std::io::Error>,
    },
    #[error("{}: cannot read the defaults file: {source}", file.display())]
    ReadDefaults {
        file: PathBuf,
        #[source]
        source: std::sync::Arc<std::io::Error>,
    },
    #[error("{}: unknown spec format{}: name the file *.toml, *.yaml, *.yml or *.json", file.display(), ext.as_ref().map(|e| format!(" `.{e}`")).unwrap_or_default())]
    Format { file: PathBuf, ext: Option<String> },
    #[error("{}:{pos}: {message}", file.display())]
    Syntax {
        file: PathBuf,
        pos: Pos,
        message: String,
    },
    #[error("{}:{pos}: `{field}`: expected {expected}, found {found}", file.display())]
    Type {
        file: PathBuf,
        pos: Pos,
        field: String,
        expected: String,
        found: String,
    },
    #[error("{}:{pos}: unknown field `{field}`{}", file.display(), suggestion.as_ref().map(|s| format!("; did you mean `{s}`?")).unwrap_or_default())]
    UnknownField {
        file: PathBuf,
        pos: Pos,
        field: String,
        suggestion: Option<String>,
    },
    #[error("{}:{pos}: `{field}`: {message}", file.display())]
    Invalid {
        file: PathBuf,
        pos: Pos,
        field: String,
        message: String,
    },
    #[error("{}: {message}", file.display())]
    Selection { file: PathBuf, message: String },
}

impl SpecError {
    /// Where in the file the error is, when it is at a place (not about the whole file).
    pub fn pos(&self) -> Option<Pos> {
        match self {
            SpecError::Syntax { pos, .. }
            | SpecError::Type { pos, .. }
            | SpecError::UnknownField { pos, .. }
            | SpecError::Invalid { pos, .. } => Some(*pos),
            SpecError::Read { .. }
            | SpecError::ReadDefaults { .. }
            | SpecError::Format { .. }
            | SpecError::Selection { .. } => None,
        }
    }
}
