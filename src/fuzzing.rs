//! The bodies of the fuzz targets (`fuzz/fuzz_targets/`), one function per parser of
//! untrusted text, each checking properties the code promises, not only "no panic".
//!
//! They live in the library so that the cargo-fuzz targets and a plain `cargo test` run the
//! very same checks: the targets are one line each, and the unit test below replays every
//! file under `testdata/fuzz/<target>/` (the seeds, and `regressions/`: inputs that once
//! failed) through the function of that target. Hidden from the docs: not an API.
//!
//! Each function takes the fuzzer's bytes; input that is not UTF-8 is skipped (a spec file
//! or `.dockerignore` that is not UTF-8 is refused before any parser sees it).

use crate::oci::ImageRef;
use crate::oci::reference::Tag;
use crate::py::fnmatch::{self, PatternError};
use crate::py::format::{MAX_TAG_LEN, format_spec_hash};
use crate::py::repr::str_repr;
use crate::source::ignore::DockerIgnore;
use crate::spec::{FIELDS, NormalizedBase, NormalizedSpec, Pos, SpecError, SpecFile};
use crate::tag::{self, ImageTag, TagError, TagOptions};
use std::path::Path;

/// A fuzz target's body: it panics when the input breaks one of its checks.
pub type Body = fn(&[u8]);

/// Every fuzz target: its name (the binary in `fuzz/` and the directory under
/// `testdata/fuzz/`) and its body.
pub const TARGETS: [(&str, Body); 6] = [
    ("spec_toml", spec_toml),
    ("spec_yaml", spec_yaml),
    ("spec_json", spec_json),
    ("tag_format", tag_format),
    ("ignore_patterns", ignore_patterns),
    ("registry_manifest", registry_manifest),
];

/// A manifest, index or config as a registry, a layout or an archive sends it, through the
/// checks every one passes before use (`oci::manifest`). Checks:
/// - a manifest accepted has only [`crate::oci::Digest`]s and byte counts in its
///   descriptors, and is an image with a config or an index;
/// - a config accepted has only digests in `rootfs.diff_ids`;
/// - a refusal is one line of at most 600 characters (it names the registry's text, which
///   may be anything).
pub fn registry_manifest(data: &[u8]) {
    use crate::oci::Digest;
    use crate::oci::manifest::{check_config, check_manifest};
    use oci_client::manifest::OciManifest;
    let said = |e: &dyn std::fmt::Display| {
        let text = e.to_string();
        assert!(
            !text.contains('\n') && text.chars().count() <= 600,
            "{text:?}"
        );
    };
    for content_type in [None, Some("application/vnd.oci.image.index.v1+json")] {
        match check_manifest(data, content_type) {
            Ok(OciManifest::Image(m)) => {
                for d in std::iter::once(&m.config).chain(&m.layers) {
                    assert!(Digest::parse(&d.digest).is_ok(), "{:?}", d.digest);
                    assert!(d.size >= 0, "{}", d.size);
                }
            }
            Ok(OciManifest::ImageIndex(i)) => {
                for d in &i.manifests {
                    assert!(Digest::parse(&d.digest).is_ok(), "{:?}", d.digest);
                    assert!(d.size >= 0, "{}", d.size);
                }
            }
            Err(e) => said(&e),
        }
    }
    match check_config(data) {
        Ok(config) => {
            for id in config
                .pointer("/rootfs/diff_ids")
                .and_then(|v| v.as_array())
                .into_iter()
                .flatten()
            {
                assert!(Digest::parse(id.as_str().unwrap_or("")).is_ok(), "{id}");
            }
        }
        Err(e) => said(&e),
    }
}

/// A spec file in TOML: see [`spec_file`].
pub fn spec_toml(data: &[u8]) {
    spec_file("toml", data);
}

/// A spec file in YAML: see [`spec_file`].
pub fn spec_yaml(data: &[u8]) {
    spec_file("yaml", data);
}

/// A spec file in JSON: see [`spec_file`].
pub fn spec_json(data: &[u8]) {
    spec_file("json", data);
}

/// Parses `data` as a spec file with this extension, and checks, for every image in it:
/// - its id is an md5 in URL-safe base64 (22 characters);
/// - every field is placed (`file:line:column`) inside the text, and so is every error;
/// - when its tag can be computed without reading files (no `source_root`, `copy`,
///   `requirements`), the tag is at most [`MAX_TAG_LEN`] characters, the image name is
///   `repository:tag`, and that name parses back to the same reference.
pub fn spec_file(extension: &str, data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let bounds = Bounds::of(text);
    let path = format!("fuzz.{extension}");
    let file = match SpecFile::parse(Path::new(&path), text) {
        Ok(file) => file,
        Err(e) => return bounds.check_spec_error(&e),
    };
    let keys: Vec<Option<&str>> = if file.is_multi() {
        file.keys().map(Some).collect()
    } else {
        vec![None]
    };
    for key in keys {
        match file.select(key) {
            Ok((_, spec)) => check_image(spec, &bounds),
            Err(e) => bounds.check_spec_error(&e),
        }
    }
}

fn check_image(spec: &NormalizedSpec, bounds: &Bounds) {
    let id = tag::id(spec);
    assert_eq!(
        id.len(),
        22,
        "an id is an md5 in base64 without padding: {id}"
    );
    check_places(spec, bounds);
    if reads_files(spec) {
        // The tag would hash files on this machine; the template alone is still checked.
        if let Some(template) = spec.tag_format.as_deref() {
            check_tag_format(template, &id.replace('-', "_"));
        }
        return;
    }
    match tag::compute(spec, &TagOptions::default()) {
        Ok(tag) => check_tag(spec, &tag),
        Err(e) => bounds.check_tag_error(&e),
    }
}

/// Every field of `spec` and of its base specs is placed inside the text.
fn check_places(spec: &NormalizedSpec, bounds: &Bounds) {
    for field in FIELDS {
        bounds.check(spec.at(field).pos(), field);
    }
    for entry in spec.copy.iter().flatten() {
        bounds.check(spec.copy_entry_at(entry).pos(), entry);
    }
    if let Some(NormalizedBase::Spec(inner)) = spec.base() {
        check_places(inner, bounds);
    }
}

/// Whether computing the tag of `spec` (or of a base spec) reads files.
fn reads_files(spec: &NormalizedSpec) -> bool {
    spec.source_root.is_some()
        || spec.copy.as_ref().is_some_and(|c| !c.is_empty())
        || spec.requirements.as_ref().is_some_and(|r| !r.is_empty())
        || matches!(spec.base(), Some(NormalizedBase::Spec(inner)) if reads_files(inner))
}

fn check_tag(spec: &NormalizedSpec, tag: &ImageTag) {
    assert!(
        tag.tag.chars().count() <= MAX_TAG_LEN,
        "a tag longer than {MAX_TAG_LEN} characters: {:?}",
        tag.tag
    );
    assert_eq!(tag.id, tag::id(spec));
    let image = tag.image.to_string();
    assert_eq!(image, format!("{}:{}", spec.repository(), tag.tag));
    let reparsed: ImageRef = image
        .parse()
        .unwrap_or_else(|e| panic!("the image name {image:?} does not parse: {e}"));
    assert_eq!(reparsed, tag.image);
    assert_eq!(reparsed.tag(), Some(tag.tag.as_str()));
    if let (Some(NormalizedBase::Spec(inner)), Some(base)) = (spec.base(), &tag.base) {
        check_tag(inner, base);
    }
}

/// `tag_format` on its own: the bytes are `value\0template` (the value is what
/// `{spec_hash}` stands for), or just a template for a real-looking hash. Checks that:
/// - the output is never longer than the template's literal text plus, per `{spec_hash`
///   field in it, the longer of [`MAX_TAG_LEN`] and the value's `repr()`: a width never
///   makes more (Python would pad `{spec_hash:>99999999999}` to 100 GB);
/// - a template without braces is copied as is;
/// - an output that is a valid tag reads back as that tag of an image name.
pub fn tag_format(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (value, template) = text
        .split_once('\0')
        .unwrap_or(("m8Xw_1N1c8Mq3B0uyJmHxQ", text));
    check_tag_format(template, value);
}

fn check_tag_format(template: &str, value: &str) {
    let Ok(out) = format_spec_hash(template, value) else {
        return;
    };
    let fields = template.matches("{spec_hash").count();
    let widest = str_repr(value).chars().count().max(MAX_TAG_LEN);
    let bound = template.chars().count() + fields * widest;
    assert!(
        out.chars().count() <= bound,
        "{template:?} with {value:?} made {} characters (at most {bound})",
        out.chars().count()
    );
    if !template.contains(['{', '}']) {
        assert_eq!(out, template);
    }
    if Tag::parse(&out).is_ok() {
        let image: ImageRef = format!("app:{out}")
            .parse()
            .unwrap_or_else(|e| panic!("the tag {out:?} is valid, but not in an image: {e}"));
        assert_eq!(image.tag(), Some(out.as_str()));
    }
}

/// How many patterns and paths one input of [`ignore_patterns`] tries, and for how many
/// paths it adds a line: each pattern or line is a regex compiled, which is most of the
/// time of a run; more would only slow the fuzzer down (other inputs bring other paths).
const LIMIT: usize = 24;
const LINES_ADDED_FOR: usize = 4;

/// The two glob dialects of the ignore rules. The bytes are the text of a `.dockerignore`,
/// then NUL-separated paths (each line of the file, less a leading `!`, is a path too).
/// Checks that:
/// - the standard library dialect (the standard patterns' `fnmatch`) gives the same answer
///   with and without its literal shortcut, for every line as a pattern and every path;
/// - `.dockerignore` (docker-py's dialect): a path with no glob characters is ignored once
///   a line naming it is appended, and not ignored once `!` and it are appended (the last
///   matching line decides); its files are ignored with it.
pub fn ignore_patterns(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = text.split('\0');
    let dockerignore = parts.next().unwrap_or_default();
    let lines: Vec<&str> = dockerignore.lines().collect();
    let paths: Vec<&str> = parts
        .chain(lines.iter().map(|l| l.strip_prefix('!').unwrap_or(l)))
        .take(LIMIT)
        .collect();

    for pattern in lines.iter().take(LIMIT) {
        if let Ok(glob) = fnmatch::python(pattern) {
            let slow = glob.regex_only();
            for path in &paths {
                assert_eq!(
                    glob.matches(path),
                    slow.matches(path),
                    "fnmatch {pattern:?} on {path:?}: the literal shortcut disagrees"
                );
            }
        }
    }

    let Ok(rules) = DockerIgnore::parse(dockerignore) else {
        return;
    };
    for path in &paths {
        rules.matches(path);
    }
    let plain = paths.iter().enumerate().filter(|(_, p)| plain_path(p));
    for (i, path) in plain.take(LINES_ADDED_FOR) {
        let with = |line: String| {
            rules.with_line(&line).unwrap_or_else(|e: PatternError| {
                panic!("appending the literal {line:?} broke the rules: {e}")
            })
        };
        assert!(
            !with(format!("!{path}")).matches(path),
            "`!{path}` as the last line does not re-include {path:?}"
        );
        // docker-py always appends `!.dockerignore` last: it, and what is below a
        // directory of that name, is never ignored.
        if !under_dockerignore(path) {
            let ignored = with(path.to_string());
            assert!(ignored.matches(path), "`{path}` as the last line, {path:?}");
            let below = paths[(i + 1) % paths.len()];
            if plain_path(below) {
                let inside = format!("{path}/{below}");
                assert!(
                    ignored.matches(&inside),
                    "`{path}` as the last line, {inside:?}"
                );
            }
        }
    }
}

/// A relative path that a `.dockerignore` line names literally: `/`-separated names, none
/// empty, `.` or `..`; no glob characters, line breaks or surrounding whitespace, and not
/// starting like a comment or an exception (`#`, `!`).
fn plain_path(path: &str) -> bool {
    !path.is_empty()
        && !path.starts_with(['#', '!'])
        && path
            .split('/')
            .all(|name| !name.is_empty() && name != "." && name != "..")
        && !path.contains(['*', '?', '[', '\n', '\r'])
        && crate::py::text::python_strip(path) == path
}

/// Whether the last rule, `!.dockerignore`, applies to `path` (the path or its first
/// directory is `.dockerignore`, in any case).
fn under_dockerignore(path: &str) -> bool {
    path.split('/').next().unwrap_or(path).to_lowercase() == ".dockerignore"
}

/// Where a position in a text may be: lines and columns from 1, no further than its end.
struct Bounds {
    lines: usize,
    chars: usize,
}

impl Bounds {
    fn of(text: &str) -> Bounds {
        Bounds {
            // Some parsers end lines at a lone `\r` too.
            lines: 1 + text.matches(['\n', '\r']).count(),
            chars: text.chars().count(),
        }
    }

    fn check(&self, pos: Pos, what: &str) {
        assert!(
            (1..=self.lines).contains(&pos.line) && (1..=self.chars + 1).contains(&pos.col),
            "{what}: placed at {pos}, outside a text of {} lines and {} characters",
            self.lines,
            self.chars
        );
    }

    fn check_spec_error(&self, error: &SpecError) {
        if let Some(pos) = error.pos() {
            self.check(pos, &error.to_string());
        }
    }

    fn check_tag_error(&self, error: &TagError) {
        let message = error.to_string();
        match error {
            TagError::CopyMissing { at, .. }
            | TagError::CopyPath { at, .. }
            | TagError::MissingSourceRoot { at, .. }
            | TagError::MissingModules { at, .. }
            | TagError::Requirements { at, .. }
            | TagError::Source { at, .. }
            | TagError::TagFormat { at, .. }
            | TagError::InvalidTag { at, .. } => self.check(at.pos(), &message),
            TagError::Changed { .. } => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn corpus() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/fuzz")
    }

    /// Every seed and every regression under `testdata/fuzz/<target>/` passes its target's
    /// checks: crashes the fuzzer once found stay fixed, without cargo-fuzz or nightly.
    #[test]
    fn every_saved_input_passes_its_target() {
        let mut failed = Vec::new();
        for (target, body) in TARGETS {
            let dir = corpus().join(target);
            let mut files = 0;
            for entry in walkdir::WalkDir::new(&dir).sort_by_file_name() {
                let entry = entry.unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
                if !entry.file_type().is_file() {
                    continue;
                }
                let data = std::fs::read(entry.path()).unwrap();
                if std::panic::catch_unwind(|| body(&data)).is_err() {
                    failed.push(entry.path().display().to_string());
                }
                files += 1;
            }
            assert!(files > 0, "no seeds in {}", dir.display());
        }
        assert!(
            failed.is_empty(),
            "failing inputs (see above):\n{}",
            failed.join("\n")
        );
    }

    /// A directory under `testdata/fuzz/` that no target reads would be replayed by nothing.
    #[test]
    fn every_corpus_directory_has_a_target() {
        for entry in std::fs::read_dir(corpus()).unwrap() {
            let name = entry.unwrap().file_name();
            assert!(
                TARGETS.iter().any(|(t, _)| name.to_str() == Some(*t)),
                "testdata/fuzz/{name:?} is no fuzz target's"
            );
        }
    }

    /// The checks themselves catch what they are for.
    #[test]
    fn the_checks_fail_on_what_they_guard() {
        assert!(
            std::panic::catch_unwind(|| Bounds::of("a\nb").check(Pos::default(), "x")).is_err()
        );
        assert!(
            std::panic::catch_unwind(|| Bounds::of("ab").check(Pos { line: 1, col: 4 }, "x"))
                .is_err()
        );
        Bounds::of("ab").check(Pos { line: 1, col: 3 }, "x");
        assert!(plain_path("a/b.txt") && !plain_path("a//b") && !plain_path("*.txt"));
        assert!(!plain_path(" a") && !plain_path("a/../b") && !plain_path(""));
    }
}
