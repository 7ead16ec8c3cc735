//! No string of a spec (or of a defaults file) can break a Dockerfile line: one rule,
//! checked over each image's value tree before any field is decoded ([`flaw`]).
//!
//! flytekit writes its fields into the Dockerfile (and envd's `build.envd`) with f-strings,
//! so a line break in an `env` key, an apt package or an index URL ends the instruction and
//! starts another: `apt_packages = ["git\nRUN curl … | sh"]` builds a step that `plan` and
//! `inspect` do not show. No field means anything by such a character (a package name, a URL,
//! a path, an image reference, a version), a Dockerfile cannot carry a line break in an `ENV`
//! value, and a line break inside one of `commands` renders a second `RUN` the plan does not
//! list: all are refused, with the field and the character. So are the two ways a value can
//! swallow the instructions after it: a trailing `\` (a line continuation: `USER flytekit`
//! would become part of the `commands` step) and a heredoc word (`<<EOF`, BuildKit's
//! `^\d*<<-?[^<]+$`: the rest of the Dockerfile would become the command's input). This is a
//! deliberate difference from flytekit, which renders them all.
//!
//! Refused characters ([`is_refused`]): every Unicode control character (`char::is_control`:
//! C0, DEL and C1, so `\n`, `\r`, `\t`, `\0`, ESC and NEL `U+0085`), the line and paragraph
//! separators `U+2028`/`U+2029`, and the bidirectional overrides and isolates
//! (`U+202A`–`U+202E`, `U+2066`–`U+2069`), which make the text a reviewer reads differ from
//! the text that runs. A tab is refused too, also in `commands` and `pip_extra_args` where a
//! shell would take it for a space: it cannot be told from spaces where the plan is shown.
//!
//! Left alone: `entrypoint` arguments (JSON in the Dockerfile's exec form, a Starlark literal
//! in `build.envd`: every character is encoded, and `python -c` may take a program of several
//! lines) and the `builder_options`/`builder_config` entries imagespec never reads (flytekit
//! only hashes them). The renderers hold without this check too: a value that bypassed it is
//! written with its refused characters escaped (`render::one_line`, `starlark_string`).
//!
//! ```
//! use imagespec::spec::SpecFile;
//! let text = "apt_packages = [\"git\", \"curl\\nRUN touch /pwned\"]\n";
//! let err = SpecFile::parse(std::path::Path::new("spec.toml"), text).unwrap_err();
//! assert!(err.to_string().starts_with("spec.toml:1:24: `apt_packages[1]`: expected"), "{err}");
//! assert!(err.to_string().contains(r#"(the character '\n' at 5)"#), "{err}");
//! ```

use super::error::SpecError;
use super::node::{Key, Node, Pos, Segment, Value, field_path};
use std::path::Path;

/// Whether `c` may not appear in any string of a spec.
pub fn is_refused(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
        )
}

/// The first refused character of `text` and its 1-based position in characters.
pub fn first_refused(text: &str) -> Option<(usize, char)> {
    text.chars()
        .enumerate()
        .find(|(_, c)| is_refused(*c))
        .map(|(i, c)| (i + 1, c))
}

/// `text` with its refused characters escaped (`\n`, `\u{2028}`), for a message or a field
/// path: a message of one line, whatever the spec holds.
pub fn escaped(text: &str) -> String {
    text.chars()
        .map(|c| {
            if is_refused(c) {
                c.escape_debug().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Refuses the first string (value or table key) under `node` that holds a refused
/// character; `path` is where `node` is (empty at the top of a file).
pub(super) fn check_tree<'n>(
    file: &Path,
    node: &'n Node,
    path: &mut Vec<Segment<'n>>,
) -> Result<(), SpecError> {
    // The format parsers refuse trees deeper than MAX_DEPTH: the recursion is bounded.
    match &node.value {
        Value::Str(s) => match flaw(s) {
            Some(flaw) => Err(refused(file, node.pos, path, None, s, flaw)),
            None => Ok(()),
        },
        Value::List(items) => items.iter().enumerate().try_for_each(|(i, item)| {
            if exempt(path, Segment::Index(i)) {
                return Ok(());
            }
            path.push(Segment::Index(i));
            let checked = check_tree(file, item, path);
            path.pop();
            checked
        }),
        Value::Map(entries) => entries.iter().try_for_each(|(key, value)| {
            if exempt(path, Segment::Key(&key.name)) {
                return Ok(());
            }
            check_key(file, key, path)?;
            path.push(Segment::Key(&key.name));
            let checked = check_tree(file, value, path);
            path.pop();
            checked
        }),
        Value::Null | Value::Bool(_) | Value::Int(_) | Value::Float(_) | Value::Date(_) => Ok(()),
    }
}

/// Refuses the table key `key` under `path` when it holds a refused character.
pub(super) fn check_key(file: &Path, key: &Key, path: &[Segment<'_>]) -> Result<(), SpecError> {
    match flaw(&key.name) {
        Some(flaw) => Err(refused(
            file,
            key.pos,
            path,
            Some(&key.name),
            &key.name,
            flaw,
        )),
        None => Ok(()),
    }
}

/// The values the rule leaves alone, where a control character is written in a form that
/// carries it: an `entrypoint` argument (JSON in the Dockerfile's exec form, a Starlark
/// literal in `build.envd`: `python -c` may take a program of several lines), and the
/// `builder_options`/`builder_config` entries imagespec never reads (flytekit only hashes
/// them; another builder may give them a meaning).
fn exempt(parent: &[Segment<'_>], item: Segment<'_>) -> bool {
    match (parent, item) {
        ([.., Segment::Key("entrypoint")], Segment::Index(_)) => true,
        ([.., Segment::Key("builder_options")], Segment::Key(key)) => {
            !READ_BUILDER_OPTIONS.contains(&key)
        }
        ([.., Segment::Key("builder_config")], Segment::Key(key)) => {
            !READ_BUILDER_CONFIG.contains(&key)
        }
        _ => false,
    }
}

/// The `builder_options` imagespec reads that hold text (`flytekit_requirement` is a line of
/// the requirements file).
const READ_BUILDER_OPTIONS: [&str; 1] = ["flytekit_requirement"];
/// The `builder_config` entries imagespec reads: images written into a `FROM` line.
const READ_BUILDER_CONFIG: [&str; 2] = ["uv_image", "micromamba_image"];

/// What makes a string unfit for a line of a Dockerfile or build.envd.
#[derive(Debug, Clone, PartialEq)]
pub enum Flaw {
    /// A refused character ([`is_refused`]) and its 1-based position.
    Control(usize, char),
    /// A trailing `\`: at the end of a Dockerfile line it continues the instruction, and the
    /// next one (`USER flytekit`, a `COPY`) becomes part of it.
    Continuation,
    /// A heredoc (`<<EOF`, BuildKit's `^\d*<<-?[^<]+$` word): in a `RUN` line the Dockerfile
    /// lines after it become its input, and their steps do not run.
    Heredoc(String),
}

/// The first flaw of `text`, if any.
pub fn flaw(text: &str) -> Option<Flaw> {
    static HEREDOC: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"^[0-9]*<<-?[^<]+$").expect("a valid pattern")
    });
    if let Some((at, c)) = first_refused(text) {
        return Some(Flaw::Control(at, c));
    }
    if text.ends_with('\\') {
        return Some(Flaw::Continuation);
    }
    // Words as BuildKit's lexer sees them, near enough: quotes do not hide a heredoc.
    text.split_whitespace()
        .find(|word| HEREDOC.is_match(&word.replace(['"', '\''], "")))
        .map(|word| Flaw::Heredoc(word.to_string()))
}

/// The error for `text` at `pos`: the value under `path`, or the table key `key` there.
fn refused(
    file: &Path,
    pos: Pos,
    path: &[Segment<'_>],
    key: Option<&str>,
    text: &str,
    flaw: Flaw,
) -> SpecError {
    let command =
        matches!(path, [.., Segment::Key("commands"), Segment::Index(_)]) && key.is_none();
    let expected = match (&flaw, path, key) {
        (Flaw::Continuation, ..) => {
            "text that does not end with `\\`: at the end of a Dockerfile line it continues \
             the instruction, and the next one becomes part of it"
        }
        (Flaw::Heredoc(_), ..) if command => {
            "a command without a heredoc: the Dockerfile lines after it would become its \
             input and their steps would not run; write the file with `printf`, or add it \
             with `copy`"
        }
        (Flaw::Heredoc(_), ..) => {
            "text without a heredoc (`<<WORD`): in a RUN line the Dockerfile lines after it \
             would become its input and their steps would not run"
        }
        (Flaw::Control(..), ..) if command => {
            "one command on one line: a line break in a command renders a second RUN \
             instruction that `plan` does not show; write the steps as separate list items \
             (they are joined by `&&`) or join them with `&&`"
        }
        (Flaw::Control(..), [.., Segment::Key("env"), Segment::Key(_)], None) => {
            "an environment variable value without control characters: a Dockerfile cannot \
             carry a line break in an ENV value (it would end the instruction and start \
             another)"
        }
        (Flaw::Control(..), [.., Segment::Key("env")], Some(_)) => {
            "an environment variable name without control characters"
        }
        (Flaw::Control(..), ..) => {
            "text without control characters (line breaks, tabs, escapes...): written into \
             the Dockerfile or build.envd, a line break ends the instruction and starts another"
        }
    };
    let escaped_key = key.map(escaped);
    let mut segments = path.to_vec();
    segments.extend(escaped_key.as_deref().map(Segment::Key));
    const SHOWN: usize = 60;
    let shown: String = text.chars().take(SHOWN).collect();
    let more = if text.chars().count() > SHOWN {
        "..."
    } else {
        ""
    };
    SpecError::Type {
        file: file.to_path_buf(),
        pos,
        field: field_path(&segments),
        expected: expected.to_string(),
        found: format!(
            "{shown:?}{more} ({})",
            match &flaw {
                Flaw::Control(at, c) => format!("the character {c:?} at {at}"),
                Flaw::Continuation => "a trailing `\\`".to_string(),
                Flaw::Heredoc(word) => format!("the heredoc {word:?}"),
            }
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flaws_are_what_breaks_a_dockerfile_line() {
        for (text, want) in [
            ("git", None),
            ("a\tb", Some(Flaw::Control(2, '\t'))),
            ("a\u{2029}", Some(Flaw::Control(2, '\u{2029}'))),
            ("\u{202e}txt", Some(Flaw::Control(1, '\u{202e}'))),
            ("git \\", Some(Flaw::Continuation)),
            ("C:\\dir", None),
            ("cat <<EOF > /x", Some(Flaw::Heredoc("<<EOF".into()))),
            ("cat 2<<-'X'", Some(Flaw::Heredoc("2<<-'X'".into()))),
            ("cat \"<<EOF\"", Some(Flaw::Heredoc("\"<<EOF\"".into()))),
            // Not heredocs to BuildKit either: a here-string, a shift, `<<` alone.
            ("cat <<< hi", None),
            ("echo $((1<<2))", None),
            ("a<<b", None),
            ("cat << EOF", None),
        ] {
            assert_eq!(flaw(text), want, "{text:?}");
        }
        assert_eq!(escaped("a\nb\u{85}"), "a\\nb\\u{85}");
    }
}
