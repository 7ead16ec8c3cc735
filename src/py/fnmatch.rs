//! The two glob dialects flytekit's ignore rules use, translated to `regex` exactly as their
//! Python originals translate them.
//!
//! - [`python`]: the standard library's `fnmatch` (flytekit's `StandardIgnore`): `*` matches
//!   across `/`, case-sensitive on POSIX.
//! - [`docker_py`]: docker-py's `utils/fnmatch.py` (flytekit's `DockerIgnore`): `*` and `?`
//!   stop at `/`, `**` spans directories, and both name and pattern are lower-cased first.
//!   This is docker-py's dialect, not the Docker daemon's (which is case-sensitive): flytekit
//!   hashes with docker-py's, so we match with it.
//!
//! No crate implements these dialects bit-for-bit (`globset` has `{a,b}` alternation and other
//! `**` rules), hence the translation here.

use regex::Regex;

/// A compiled pattern; `matches` is Python's `re.match` of the translated pattern.
#[derive(Debug, Clone)]
pub struct Glob {
    re: Regex,
    lowercase: bool,
    /// The same test without a regex, for the common shapes of the standard library
    /// dialect (`*.pyc`, `__pycache__/*`, `**/x/*`, literals): the walk asks every file.
    literal: Option<Literal>,
}

#[derive(Debug, Clone)]
enum Literal {
    Equals(String),
    StartsWith(String),
    EndsWith(String),
    Contains(String),
}

impl Literal {
    /// The shape of a standard-library pattern whose only metacharacters are leading and/or
    /// trailing `*` (which match anything there, `/` and newlines included).
    fn of(pattern: &str) -> Option<Literal> {
        let core = pattern.trim_start_matches('*').trim_end_matches('*');
        if core.is_empty() || core.contains(['*', '?', '[']) {
            return None;
        }
        let (lead, trail) = (pattern.starts_with('*'), pattern.ends_with('*'));
        Some(match (lead, trail) {
            (false, false) => Literal::Equals(core.into()),
            (false, true) => Literal::StartsWith(core.into()),
            (true, false) => Literal::EndsWith(core.into()),
            (true, true) => Literal::Contains(core.into()),
        })
    }

    fn matches(&self, name: &str) -> bool {
        match self {
            Literal::Equals(s) => name == s,
            Literal::StartsWith(s) => name.starts_with(s.as_str()),
            Literal::EndsWith(s) => name.ends_with(s.as_str()),
            Literal::Contains(s) => name.contains(s.as_str()),
        }
    }
}

/// An error in a pattern Python's `re` would also reject (a reversed range like `[z-a]`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid pattern `{pattern}`: {message}")]
pub struct PatternError {
    pub pattern: String,
    pub message: String,
}

impl Glob {
    /// Whether `name` matches.
    pub fn matches(&self, name: &str) -> bool {
        if let Some(literal) = &self.literal {
            return literal.matches(name);
        }
        if self.lowercase {
            self.re.is_match(&name.to_lowercase())
        } else {
            self.re.is_match(name)
        }
    }
}

impl Glob {
    /// This glob with every test made by its regex, none by the literal shortcut: the two
    /// must agree (the `ignore_patterns` fuzz target checks that they do).
    pub(crate) fn regex_only(&self) -> Glob {
        Glob {
            literal: None,
            ..self.clone()
        }
    }
}

/// The standard library's `fnmatch.fnmatch(name, pattern)` on POSIX.
pub fn python(pattern: &str) -> Result<Glob, PatternError> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::from("(?s)^");
    let mut i = 0;
    let mut last_star = false;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        let star = c == '*';
        match c {
            '*' if last_star => {}
            '*' => out.push_str(".*"),
            '?' => out.push('.'),
            '[' => i = class(pattern, &chars, i, &mut out)?,
            c => out.push_str(&regex::escape(&c.to_string())),
        }
        last_star = star;
    }
    out.push_str(r"\z");
    let mut glob = compile(pattern, &out, false)?;
    glob.literal = Literal::of(pattern);
    Ok(glob)
}

/// docker-py's `fnmatch.fnmatch(name, pattern)`.
pub fn docker_py(pattern: &str) -> Result<Glob, PatternError> {
    let lowered = pattern.to_lowercase();
    let chars: Vec<char> = lowered.chars().collect();
    let n = chars.len();
    let mut out = String::from("^");
    let mut i = 0;
    while i < n {
        let c = chars[i];
        i += 1;
        match c {
            '*' if i < n && chars[i] == '*' => {
                i += 1;
                if i < n && chars[i] == '/' {
                    i += 1;
                }
                out.push_str(if i >= n { ".*" } else { "(.*/)?" });
            }
            '*' => out.push_str("[^/]*"),
            '?' => out.push_str("[^/]"),
            '[' => i = class(pattern, &chars, i, &mut out)?,
            c => out.push_str(&regex::escape(&c.to_string())),
        }
    }
    // Python's `$` also matches before a final newline.
    out.push_str(r"\n?\z");
    compile(pattern, &out, true)
}

fn compile(pattern: &str, re: &str, lowercase: bool) -> Result<Glob, PatternError> {
    let re = Regex::new(re).map_err(|e| PatternError {
        pattern: pattern.into(),
        message: e.to_string(),
    })?;
    Ok(Glob {
        re,
        lowercase,
        literal: None,
    })
}

/// Translates a `[...]` class starting after `[` at `start`; returns the index after it.
/// Both dialects: `[!` negates, a leading `]` is literal, an unclosed `[` is a literal `[`,
/// backslashes are literal.
fn class(
    pattern: &str,
    chars: &[char],
    start: usize,
    out: &mut String,
) -> Result<usize, PatternError> {
    let n = chars.len();
    let mut j = start;
    if j < n && chars[j] == '!' {
        j += 1;
    }
    if j < n && chars[j] == ']' {
        j += 1;
    }
    while j < n && chars[j] != ']' {
        j += 1;
    }
    if j >= n {
        out.push_str(r"\[");
        return Ok(start);
    }
    let mut stuff = &chars[start..j];
    let mut negate = false;
    if stuff.first() == Some(&'!') {
        negate = true;
        stuff = &stuff[1..];
    }
    if stuff.is_empty() {
        // `[!]` is "any character" in Python's fnmatch.
        out.push_str(if negate { "." } else { "[^\\s\\S]" });
        return Ok(j + 1);
    }
    let esc = |c: char| {
        if c.is_alphanumeric() {
            c.to_string()
        } else {
            format!("\\{c}")
        }
    };
    let mut body = String::new();
    let mut k = 0;
    while k < stuff.len() {
        if k + 2 < stuff.len() && stuff[k + 1] == '-' {
            let (lo, hi) = (stuff[k], stuff[k + 2]);
            if lo > hi {
                return Err(PatternError {
                    pattern: pattern.into(),
                    message: format!("bad character range {lo}-{hi}"),
                });
            }
            body.push_str(&format!("{}-{}", esc(lo), esc(hi)));
            k += 3;
        } else {
            body.push_str(&esc(stuff[k]));
            k += 1;
        }
    }
    out.push_str(&format!("[{}{body}]", if negate { "^" } else { "" }));
    Ok(j + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_star_crosses_slashes() {
        assert!(python("*.pyc").unwrap().matches("a/b/c.pyc"));
        assert!(
            python("**/__pycache__/*")
                .unwrap()
                .matches("./x/__pycache__/y")
        );
        assert!(!python("__pycache__/*").unwrap().matches("x/__pycache__/y"));
        assert!(!python("*.PYC").unwrap().matches("a.pyc"));
        assert!(python("[a-c]x").unwrap().matches("bx"));
        assert!(python("[!a]x").unwrap().matches("bx"));
    }

    #[test]
    fn literal_shapes_agree_with_the_regex() {
        for pattern in [
            "*.pyc",
            ".cache",
            ".cache/*",
            "__pycache__/*",
            "**/__pycache__/*",
            "a*b",
            "*",
        ] {
            let fast = python(pattern).unwrap();
            let mut slow = fast.clone();
            slow.literal = None;
            for name in [
                "x.pyc",
                "a/b.pyc",
                ".cache",
                ".cache/x",
                "x/.cache",
                "__pycache__/m",
                "./a/__pycache__/m",
                "ab",
                "a\nb",
                "pyc",
            ] {
                assert_eq!(
                    fast.matches(name),
                    slow.matches(name),
                    "{pattern} vs {name:?}"
                );
            }
        }
    }

    #[test]
    fn docker_py_dialect() {
        assert!(docker_py("*.txt").unwrap().matches("A.TXT"));
        assert!(!docker_py("*.txt").unwrap().matches("d/a.txt"));
        assert!(docker_py("**/*.txt").unwrap().matches("d/e/a.txt"));
        assert!(docker_py("**/*.txt").unwrap().matches("a.txt"));
        assert!(docker_py("d/**").unwrap().matches("d/e/f"));
        assert!(docker_py("a?c").unwrap().matches("abc"));
        assert!(!docker_py("a?c").unwrap().matches("a/c"));
        assert!(docker_py("[").unwrap().matches("["));
        assert!(docker_py("[z-a]").is_err());
    }
}
