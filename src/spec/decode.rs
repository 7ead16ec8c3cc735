//! [`Node`] tree → [`Spec`]s, with flytekit's `__post_init__` checks, each failure located.

use super::control;
use super::error::SpecError;
use super::fields::{FIELDS, Spec};
use super::model::{BaseImage, CopyMode, Scalar, SecretMount};
use super::node::{Key, Node, Pos, Segment, Value};
use crate::py::PyValue;
use indexmap::{IndexMap, IndexSet};
use regex::Regex;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

/// flytekit's `validate_container_registry_name` pattern; Python's `$` also accepts one
/// trailing newline, hence `\n?\z`.
pub(super) static REGISTRY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(localhost:\d{1,5}|([a-z\d\._-]+)(:\d{1,5})?)(/[\w\.-]+)*\n?\z")
        .expect("registry pattern")
});

/// The key under which a multi-image file lists its images.
pub const IMAGES_KEY: &str = "images";

/// How many specs may build on one another (inline `base_image` tables and `{ spec = KEY }`
/// references together). Real chains are a few deep; a 3,000-image chain used to overflow
/// the stack (and take cubic time) resolving it.
pub const MAX_BASE_DEPTH: usize = 32;

/// How many base specs `spec` builds on (0 for none), counted without recursion.
fn base_depth(spec: &Spec) -> usize {
    let mut depth = 0;
    let mut current = spec;
    while let Some(BaseImage::Spec(base)) = &current.base_image {
        depth += 1;
        current = base;
    }
    depth
}

/// The images of a file, each decoded on its own: in a multi-image file one invalid image
/// does not hide the others (as each Python `ImageSpec(...)` stands alone).
pub type DecodedImages = IndexMap<String, Result<Spec, SpecError>>;

/// Decodes a whole file: one spec (key `""`), or the named specs of an `[images]` table with
/// `base_image = { spec = "KEY" }` references resolved.
pub fn decode_file(file: &Path, root: &Node) -> Result<(DecodedImages, bool), SpecError> {
    let d = Decoder {
        file: file.to_path_buf(),
    };
    let without_defaults = d.without_defaults_table(root)?;
    let root = without_defaults.as_ref().unwrap_or(root);
    let entries = d.map(root, "")?;
    let multi = entries.iter().any(|(k, _)| k.name == IMAGES_KEY);
    if !multi {
        control::check_tree(file, root, &mut Vec::new())?;
        let spec = d.spec(root, "", None, 0)?;
        return Ok((IndexMap::from([(String::new(), Ok(spec))]), false));
    }
    for (key, _) in entries {
        control::check_key(file, key, &[])?;
    }
    if let Some((k, _)) = entries.iter().find(|(k, _)| k.name != IMAGES_KEY) {
        return Err(SpecError::Invalid {
            file: d.file.clone(),
            pos: k.pos,
            field: k.name.clone(),
            message: format!(
                "a file with an `{IMAGES_KEY}` table holds only that table; move this field into one of its images"
            ),
        });
    }
    let (images_key, images_node) = &entries[0];
    let images = d.map(images_node, &images_key.name)?;
    for (key, _) in images {
        control::check_key(file, key, &[Segment::Key(IMAGES_KEY)])?;
    }
    if images.is_empty() {
        return Err(d.invalid(
            images_node.pos,
            IMAGES_KEY,
            "names no image; add e.g. `[images.app]`",
        ));
    }
    let names: IndexSet<&str> = images.iter().map(|(k, _)| k.name.as_str()).collect();
    let mut raw: IndexMap<String, Result<Spec, SpecError>> = IndexMap::new();
    let mut refs: IndexMap<String, (String, Pos)> = IndexMap::new();
    for (key, node) in images {
        let path = format!("{IMAGES_KEY}.{}", key.name);
        let mut reference = None;
        // Each image on its own: one image's bad string does not hide the others.
        let spec = control::check_tree(
            file,
            node,
            &mut vec![Segment::Key(IMAGES_KEY), Segment::Key(&key.name)],
        )
        .and_then(|()| d.spec(node, &path, Some((&names, &mut reference)), 0));
        if let Some(r) = reference {
            refs.insert(key.name.clone(), r);
        }
        raw.insert(key.name.clone(), spec);
    }
    let mut resolver = Resolver {
        d: &d,
        raw: &raw,
        refs: &refs,
        done: HashMap::new(),
    };
    let resolved = raw
        .keys()
        .map(|name| (name.clone(), resolver.resolve(name, &mut Vec::new())))
        .collect();
    Ok((resolved, true))
}

/// Resolves the `{ spec = KEY }` references between the images of one file.
struct Resolver<'a> {
    d: &'a Decoder,
    /// Each image as decoded, its reference not yet resolved.
    raw: &'a IndexMap<String, Result<Spec, SpecError>>,
    /// Each referring image's target, and where the reference was written.
    refs: &'a IndexMap<String, (String, Pos)>,
    /// The images resolved so far (so a long chain is walked once).
    done: HashMap<String, Result<Spec, SpecError>>,
}

impl Resolver<'_> {
    /// Resolves `name`'s reference, recursively; `seen` is the chain of images that led here.
    fn resolve(&mut self, name: &str, seen: &mut Vec<String>) -> Result<Spec, SpecError> {
        if let Some(result) = self.done.get(name) {
            return result.clone();
        }
        let result = self.resolve_uncached(name, seen);
        // A failure deeper in a chain may be the chain's (a cycle, too deep), not this
        // image's: only results for a whole chain, or successes, are kept.
        if seen.is_empty() || result.is_ok() {
            self.done.insert(name.to_string(), result.clone());
        }
        result
    }

    fn resolve_uncached(&mut self, name: &str, seen: &mut Vec<String>) -> Result<Spec, SpecError> {
        let d = self.d;
        let written = self.raw[name].as_ref().map_err(Clone::clone)?;
        let Some((target, pos)) = self.refs.get(name) else {
            return Ok(written.clone());
        };
        let field = format!("{IMAGES_KEY}.{name}.base_image.spec");
        if seen.iter().any(|s| s == target) || target == name {
            seen.push(name.to_string());
            return Err(d.invalid(
                *pos,
                &field,
                &format!("images form a cycle: {} -> {target}", seen.join(" -> ")),
            ));
        }
        // Checked before recursing: the stack holds at most MAX_BASE_DEPTH frames.
        if seen.len() >= MAX_BASE_DEPTH {
            return Err(chain_too_deep(d, *pos, &field, seen, name));
        }
        seen.push(name.to_string());
        let base = self.resolve(target, seen);
        seen.pop();
        let base = base?;
        if seen.len() + 1 + base_depth(&base) > MAX_BASE_DEPTH {
            return Err(chain_too_deep(d, *pos, &field, seen, name));
        }
        let mut spec = written.clone();
        spec.base_image = Some(BaseImage::Spec(Box::new(base)));
        Ok(spec)
    }
}

fn chain_too_deep(d: &Decoder, pos: Pos, field: &str, seen: &[String], name: &str) -> SpecError {
    let start = seen.first().map_or(name, String::as_str);
    d.invalid(
        pos,
        field,
        &format!(
            "`{start}` builds on more than {MAX_BASE_DEPTH} nested base specs; build a base \
             image and name it in `base_image` instead"
        ),
    )
}

/// The image keys of a multi-image file, and where to record a `{ spec = KEY }` reference.
type ReferenceSlot<'a> = (&'a IndexSet<&'a str>, &'a mut Option<(String, Pos)>);
type References<'a> = Option<ReferenceSlot<'a>>;

pub(super) struct Decoder {
    file: PathBuf,
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_string()
    } else {
        format!("{path}.{field}")
    }
}

impl Decoder {
    /// The file without its top-level `[defaults]` table, which is not part of any spec: an
    /// `imagespec.toml` may hold both (the defaults file reads only that table, see
    /// [`super::defaults`]). `None` when there is no such table. In a file of another name the
    /// table would never be read as defaults: refused, saying where it belongs.
    fn without_defaults_table(&self, root: &Node) -> Result<Option<Node>, SpecError> {
        let Value::Map(entries) = &root.value else {
            return Ok(None);
        };
        let Some((key, _)) = entries
            .iter()
            .find(|(k, _)| k.name == super::defaults::TABLE)
        else {
            return Ok(None);
        };
        let is_project_file = self
            .file
            .file_name()
            .is_some_and(|n| n == super::defaults::PROJECT_FILE);
        if !is_project_file {
            return Err(self.invalid(
                key.pos,
                super::defaults::TABLE,
                &format!(
                    "a `[defaults]` table is read only from a file named `{}` (next to the \
                     spec or in a directory above it) or from the user's config file; move \
                     it there",
                    super::defaults::PROJECT_FILE
                ),
            ));
        }
        let kept = entries
            .iter()
            .filter(|(k, _)| k.name != super::defaults::TABLE)
            .cloned()
            .collect();
        Ok(Some(Node {
            value: Value::Map(kept),
            pos: root.pos,
        }))
    }

    fn type_error(&self, node: &Node, field: &str, expected: &str) -> SpecError {
        type_error(&self.file, node, field, expected)
    }

    fn invalid(&self, pos: Pos, field: &str, message: &str) -> SpecError {
        SpecError::Invalid {
            file: self.file.clone(),
            pos,
            field: field.to_string(),
            message: message.to_string(),
        }
    }

    fn map<'n>(&self, node: &'n Node, field: &str) -> Result<&'n [(Key, Node)], SpecError> {
        match &node.value {
            Value::Map(entries) => Ok(entries),
            _ => Err(self.type_error(
                node,
                if field.is_empty() {
                    "(top level)"
                } else {
                    field
                },
                "a table",
            )),
        }
    }

    fn string(&self, node: &Node, field: &str) -> Result<String, SpecError> {
        match &node.value {
            Value::Str(s) => Ok(s.clone()),
            _ => Err(self.type_error(node, field, "a string")),
        }
    }

    fn strings(&self, node: &Node, field: &str) -> Result<Vec<String>, SpecError> {
        match &node.value {
            Value::List(items) => items
                .iter()
                .enumerate()
                .map(|(i, item)| self.string(item, &format!("{field}[{i}]")))
                .collect(),
            _ => Err(self.type_error(node, field, "a list of strings")),
        }
    }

    /// A value flytekit passes through untyped into an f-string: string, number or boolean.
    fn scalar(
        &self,
        node: &Node,
        field: &str,
        allow_bool_and_null: bool,
    ) -> Result<Scalar, SpecError> {
        match &node.value {
            Value::Str(s) => Ok(Scalar::Str(s.clone())),
            Value::Int(i) => Ok(Scalar::Int(*i)),
            Value::Float(x) => Ok(Scalar::Float(*x)),
            Value::Bool(b) if allow_bool_and_null => Ok(Scalar::Bool(*b)),
            Value::Null if allow_bool_and_null => Ok(Scalar::None),
            _ => Err(self.type_error(node, field, "a string")),
        }
    }

    fn pyvalue(&self, node: &Node, field: &str) -> Result<PyValue, SpecError> {
        Ok(match &node.value {
            Value::Null => PyValue::None,
            Value::Bool(b) => PyValue::Bool(*b),
            Value::Int(i) => PyValue::Int(*i),
            Value::Float(x) => PyValue::Float(*x),
            Value::Str(s) => PyValue::Str(s.clone()),
            Value::List(items) => PyValue::List(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, n)| self.pyvalue(n, &format!("{field}[{i}]")))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Map(entries) => PyValue::Dict(self.pydict(entries, field)?),
            Value::Date(d) => PyValue::Repr(d.python_repr()),
        })
    }

    fn pydict(
        &self,
        entries: &[(Key, Node)],
        field: &str,
    ) -> Result<Vec<(String, PyValue)>, SpecError> {
        entries
            .iter()
            .map(|(k, v)| Ok((k.name.clone(), self.pyvalue(v, &join(field, &k.name))?)))
            .collect()
    }

    fn spec(
        &self,
        node: &Node,
        path: &str,
        refs: References<'_>,
        depth: usize,
    ) -> Result<Spec, SpecError> {
        let mut spec = Spec::default();
        spec.origin.file = self.file.clone();
        spec.origin.path = path.to_string();
        spec.origin.pos = node.pos;
        let mut fields = FieldDecoder {
            decoder: self,
            refs,
            depth,
        };
        for (key, value) in self.map(node, path)? {
            let field = join(path, &key.name);
            // A null value means "not set", as None does in Python.
            if value.value == Value::Null {
                if !FIELDS.contains(&key.name.as_str()) {
                    return Err(self.unknown(key, path));
                }
                continue;
            }
            record_positions(&mut spec.origin.fields, &key.name, value);
            if !spec.decode_field(&key.name, value, &field, &mut fields)? {
                return Err(self.unknown(key, path));
            }
        }
        Ok(spec)
    }

    fn unknown(&self, key: &Key, path: &str) -> SpecError {
        SpecError::UnknownField {
            file: self.file.clone(),
            pos: key.pos,
            field: join(path, &key.name),
            suggestion: did_you_mean(&key.name, FIELDS),
        }
    }

    fn base_image(
        &self,
        node: &Node,
        field: &str,
        refs: Option<&mut ReferenceSlot<'_>>,
        depth: usize,
    ) -> Result<BaseImage, SpecError> {
        match &node.value {
            Value::Str(s) => Ok(BaseImage::Ref(s.clone())),
            Value::Map(entries) if entries.len() == 1 && entries[0].0.name == "spec" => {
                let (key, target) = &entries[0];
                let target_name = self.string(target, &join(field, "spec"))?;
                let Some((names, slot)) = refs else {
                    return Err(self.invalid(key.pos, &join(field, "spec"), "`{ spec = ... }` refers to an image of an `[images]` table, and this file has none; write the base spec inline or as an image reference"));
                };
                if !names.contains(&target_name.as_str()) {
                    return Err(self.invalid(
                        target.pos,
                        &join(field, "spec"),
                        &format!(
                            "no image `{target_name}` in this file; it has: {}",
                            names.iter().copied().collect::<Vec<_>>().join(", ")
                        ),
                    ));
                }
                **slot = Some((target_name, target.pos));
                Ok(BaseImage::Ref(String::new()))
            }
            Value::Map(_) if depth >= MAX_BASE_DEPTH => Err(self.invalid(
                node.pos,
                &shortened(field),
                &format!(
                    "base images nest more than {MAX_BASE_DEPTH} levels deep; build a base \
                     image and name it in `base_image` instead"
                ),
            )),
            Value::Map(_) => Ok(BaseImage::Spec(Box::new(self.spec(
                node,
                field,
                None,
                depth + 1,
            )?))),
            _ => Err(self.type_error(node, field, "an image reference (string) or a spec (table)")),
        }
    }

    fn secret_mounts(&self, node: &Node, field: &str) -> Result<Vec<SecretMount>, SpecError> {
        let Value::List(items) = &node.value else {
            return Err(self.type_error(node, field, "a list of [source, mount path] pairs"));
        };
        items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let f = format!("{field}[{i}]");
                match &item.value {
                    Value::List(pair) if pair.len() == 2 => Ok(SecretMount {
                        source: self.string(&pair[0], &format!("{f}[0]"))?,
                        target: self.string(&pair[1], &format!("{f}[1]"))?,
                    }),
                    _ => Err(self.type_error(
                        item,
                        &f,
                        "a pair of two strings, [source, mount path]",
                    )),
                }
            })
            .collect()
    }
}

/// Decodes one field's value: the methods the field table's decoder column names (see
/// [`super::fields`]), each `(value, field path) -> value`.
pub(super) struct FieldDecoder<'d, 'r> {
    decoder: &'d Decoder,
    /// Where a `{ spec = KEY }` base is recorded, in a multi-image file.
    refs: References<'r>,
    /// How many base specs deep this spec is.
    depth: usize,
}

impl FieldDecoder<'_, '_> {
    pub(super) fn string(&mut self, node: &Node, field: &str) -> Result<String, SpecError> {
        self.decoder.string(node, field)
    }

    pub(super) fn strings(&mut self, node: &Node, field: &str) -> Result<Vec<String>, SpecError> {
        self.decoder.strings(node, field)
    }

    /// A string or a number (`python_version = 3.10`, `cuda = 12`).
    pub(super) fn scalar(&mut self, node: &Node, field: &str) -> Result<Scalar, SpecError> {
        self.decoder.scalar(node, field, false)
    }

    /// A table of names to strings, numbers, booleans or nulls.
    pub(super) fn env(
        &mut self,
        node: &Node,
        field: &str,
    ) -> Result<IndexMap<String, Scalar>, SpecError> {
        let d = self.decoder;
        d.map(node, field)?
            .iter()
            .map(|(k, v)| Ok((k.name.clone(), d.scalar(v, &join(field, &k.name), true)?)))
            .collect()
    }

    /// flytekit's `validate_container_registry_name`.
    pub(super) fn registry(&mut self, node: &Node, field: &str) -> Result<String, SpecError> {
        let registry = self.decoder.string(node, field)?;
        let lowered = registry.to_lowercase();
        if !lowered.is_empty() && !REGISTRY.is_match(&lowered) {
            return Err(self.decoder.invalid(
                node.pos,
                field,
                &format!(
                    "invalid container registry name `{registry}`; expected e.g. `localhost:30000`, `ghcr.io/username` or `docker.io/username`"
                ),
            ));
        }
        Ok(registry)
    }

    pub(super) fn base_image(&mut self, node: &Node, field: &str) -> Result<BaseImage, SpecError> {
        self.decoder
            .base_image(node, field, self.refs.as_mut(), self.depth)
    }

    pub(super) fn secret_mounts(
        &mut self,
        node: &Node,
        field: &str,
    ) -> Result<Vec<SecretMount>, SpecError> {
        self.decoder.secret_mounts(node, field)
    }

    pub(super) fn copy_mode(&mut self, node: &Node, field: &str) -> Result<CopyMode, SpecError> {
        let text = self.decoder.string(node, field)?;
        CopyMode::parse(&text).ok_or_else(|| {
            self.decoder.invalid(node.pos, field, &format!("`{text}` is not a copy mode; expected `all`, `loaded_modules` (or `auto`), `no_copy` (or `none`)"))
        })
    }

    /// A table of any values, as Python holds them.
    pub(super) fn dict(
        &mut self,
        node: &Node,
        field: &str,
    ) -> Result<Vec<(String, PyValue)>, SpecError> {
        self.decoder.pydict(self.decoder.map(node, field)?, field)
    }
}

/// `field` with at most 8 dotted parts, for a field nested very deep.
fn shortened(field: &str) -> String {
    let parts: Vec<&str> = field.split('.').collect();
    if parts.len() <= 8 {
        field.to_string()
    } else {
        format!("{}...", parts[..8].join("."))
    }
}

/// Keeps where `field` was written, and its items for the fields whose items errors name.
fn record_positions(fields: &mut IndexMap<String, Pos>, field: &str, value: &Node) {
    fields.insert(field.to_string(), value.pos);
    match (field, &value.value) {
        ("copy" | "pip_secret_mounts", Value::List(items)) => {
            for (i, item) in items.iter().enumerate() {
                fields.insert(format!("{field}[{i}]"), item.pos);
            }
        }
        ("builder_options" | "builder_config", Value::Map(entries)) => {
            for (key, item) in entries {
                fields.insert(format!("{field}.{}", key.name), item.pos);
            }
        }
        _ => {}
    }
}

/// The known name closest to `written`, when one is close enough to be a typo of it.
pub(super) fn did_you_mean(written: &str, known: &[&str]) -> Option<String> {
    known
        .iter()
        .map(|f| (strsim::jaro_winkler(f, written), *f))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, f)| f.to_string())
}

/// Names a found value for an error message, with its text when it is short.
/// `field` of `file` holds `node`, which is not what was `expected`.
pub(super) fn type_error(file: &Path, node: &Node, field: &str, expected: &str) -> SpecError {
    SpecError::Type {
        file: file.to_path_buf(),
        pos: node.pos,
        field: field.to_string(),
        expected: expected.to_string(),
        found: describe(&node.value),
    }
}

pub(super) fn describe(value: &Value) -> String {
    match value {
        Value::Str(s) if s.chars().count() <= 40 => format!("the string {s:?}"),
        Value::Int(i) => format!("the integer {i}"),
        Value::Float(x) => format!("the float {}", crate::py::repr::float_repr(*x)),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Date(d) => format!("the date {} (quote it to make it a string)", d.text),
        other => other.kind().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use crate::spec::{MAX_BASE_DEPTH, SpecFile};
    use std::path::Path;

    fn inline_chain(depth: usize) -> String {
        let mut text = String::from("name = \"top\"\nbase_image = ");
        text.push_str(&"{ base_image = ".repeat(depth - 1));
        text.push_str("{ name = \"bottom\" }");
        text.push_str(&" }".repeat(depth - 1));
        text.push('\n');
        text
    }

    fn images_chain(len: usize) -> String {
        let mut text = String::from("[images.i0]\nname = \"root\"\n");
        for i in 1..len {
            text.push_str(&format!(
                "[images.i{i}]\nbase_image = {{ spec = \"i{}\" }}\n",
                i - 1
            ));
        }
        text
    }

    #[test]
    fn base_specs_nest_up_to_the_limit() {
        let at_limit = SpecFile::parse(Path::new("s.toml"), &inline_chain(MAX_BASE_DEPTH));
        assert!(at_limit.unwrap().select(None).is_ok());
        let past = SpecFile::parse(Path::new("s.toml"), &inline_chain(MAX_BASE_DEPTH + 1));
        let err = past.unwrap_err().to_string();
        assert!(err.contains("base images nest more than 32"), "{err}");
    }

    #[test]
    fn image_chains_resolve_up_to_the_limit_in_any_order() {
        let text = images_chain(MAX_BASE_DEPTH + 5);
        let file = SpecFile::parse(Path::new("s.toml"), &text).unwrap();
        let last_ok = format!("i{MAX_BASE_DEPTH}");
        assert!(file.select(Some(&last_ok)).is_ok());
        let first_bad = format!("i{}", MAX_BASE_DEPTH + 1);
        let err = file.select(Some(&first_bad)).unwrap_err().to_string();
        assert!(
            err.contains(&format!("`{first_bad}` builds on more than 32")),
            "{err}"
        );
        assert!(file.select(Some("i36")).is_err());
        // Listed deepest first, resolution recurses at most MAX_BASE_DEPTH deep.
        let mut parts: Vec<&str> = text.split("[images.").filter(|s| !s.is_empty()).collect();
        parts.reverse();
        let reversed: String = parts.iter().map(|s| format!("[images.{s}")).collect();
        let file = SpecFile::parse(Path::new("s.toml"), &reversed).unwrap();
        assert!(file.select(Some(&last_ok)).is_ok());
        assert!(file.select(Some("i36")).is_err());
    }
}
