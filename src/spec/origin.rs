//! Where a spec's fields were written, kept past parsing: errors found later (a missing
//! `requirements` file, a `copy` entry that does not exist, a tag the registry would refuse)
//! name `file:line:column` and the field like a syntax error does.

use super::node::Pos;
use indexmap::IndexMap;
use std::path::PathBuf;

/// Where one spec was written and where each of its fields' values are.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Origin {
    /// The spec file.
    pub file: PathBuf,
    /// The spec's own place in the file: `""` at the top, `images.app`, `base_image`...
    pub path: String,
    /// Where the spec's table starts (the place of a field it does not write).
    pub pos: Pos,
    /// Each field's value, and the items of some lists and tables (`copy[1]`,
    /// `pip_secret_mounts[0]`, `builder_options.uv_image`).
    pub fields: IndexMap<String, Pos>,
}

impl Origin {
    /// Where `field` was written; a field not written is placed at its spec's table.
    pub fn at(&self, field: &str) -> FieldAt {
        let base = field.split(['[', '.']).next().unwrap_or(field);
        let pos = self
            .fields
            .get(field)
            .or_else(|| self.fields.get(base))
            .copied()
            .unwrap_or(self.pos);
        FieldAt(Box::new(Located {
            file: self.file.clone(),
            pos,
            field: if self.path.is_empty() {
                field.to_string()
            } else {
                format!("{}.{field}", self.path)
            },
        }))
    }

    /// The first of `fields` that was written, else the last of them.
    pub fn at_first_of(&self, fields: &[&str]) -> FieldAt {
        let written = fields.iter().find(|f| self.fields.contains_key(**f));
        self.at(written.or(fields.last()).copied().unwrap_or(""))
    }
}

/// A field of a spec file and where it was written; shown as ``spec.toml:3:8: `copy[1]` ``,
/// the same prefix a parse error has. Boxed: it rides in error enums, which stay small.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldAt(Box<Located>);

#[derive(Debug, Clone, PartialEq)]
struct Located {
    file: PathBuf,
    pos: Pos,
    field: String,
}

impl FieldAt {
    /// `field` written at `pos` in `file` (for files that are not specs: a defaults file).
    pub fn new(file: PathBuf, pos: Pos, field: String) -> FieldAt {
        FieldAt(Box::new(Located { file, pos, field }))
    }

    /// The spec file.
    pub fn file(&self) -> &std::path::Path {
        &self.0.file
    }

    /// Where the field's value (or its spec's table, when it is not written) starts.
    pub fn pos(&self) -> Pos {
        self.0.pos
    }

    /// The field's path in the file, e.g. `images.app.copy[1]`.
    pub fn field(&self) -> &str {
        &self.0.field
    }
}

impl std::fmt::Display for FieldAt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}: `{}`",
            self.0.file.display(),
            self.0.pos,
            self.0.field
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_items_and_unwritten_fields_are_placed() {
        let mut origin = Origin {
            file: "s.toml".into(),
            path: "images.app".into(),
            pos: Pos { line: 1, col: 1 },
            fields: IndexMap::new(),
        };
        origin.fields.insert("copy".into(), Pos { line: 3, col: 8 });
        origin
            .fields
            .insert("copy[1]".into(), Pos { line: 3, col: 15 });
        assert_eq!(
            origin.at("copy[1]").to_string(),
            "s.toml:3:15: `images.app.copy[1]`"
        );
        assert_eq!(origin.at("copy[7]").pos(), Pos { line: 3, col: 8 });
        assert_eq!(origin.at("tag_format").pos(), Pos { line: 1, col: 1 });
        assert_eq!(
            origin.at_first_of(&["source_copy_mode", "copy"]).field(),
            "images.app.copy"
        );
    }
}
