//! Credentials in URLs, cut out of everything imagespec records or prints.
//!
//! A private index is commonly written with its token in the URL's user information
//! (`https://__token__:pypi-…@host/simple`, CodeArtifact's `https://aws:TOKEN@…`, Artifact
//! Registry's `https://oauth2accesstoken:TOKEN@…`, Gemfury's `https://TOKEN@…`): pip and uv
//! take it from there. flytekit hashes the value as written into the tag (so imagespec does
//! too: the name stays flytekit's), and its Dockerfile passes it on a `RUN` line, which
//! lands in the image's history. imagespec passes such a URL to a Dockerfile build as a
//! BuildKit secret ([`crate::plan::IndexSecret`]) and writes it everywhere else — the
//! history of images it assembles, labels, `inspect`/`plan --json`, progress and errors —
//! with the user information replaced by `***`, as the `org.imagespec.inputs` label always
//! has.
//!
//! ```
//! use imagespec::redact::url_credentials;
//! assert_eq!(
//!     url_credentials("--index-url https://user:pass@host/simple -U"),
//!     "--index-url https://***@host/simple -U"
//! );
//! assert_eq!(url_credentials("['https://t@a/s', 'https://b/s']"), "['https://***@a/s', 'https://b/s']");
//! assert_eq!(url_credentials("https://host/simple"), "https://host/simple");
//! ```

use std::borrow::Cow;

/// What the user information of a URL is replaced with.
pub const REDACTED: &str = "***";

/// Where each URL's user information (`user:pass@`, `token@`) is in `text`: the byte range
/// from after `://` to the last `@` of the authority. The authority ends at `/`, `?`, `#`,
/// whitespace, a quote or a backslash (a URL inside a Python repr, a shell line or JSON);
/// a password with a raw `@` is cut up to the last one, as urllib's `rpartition('@')`
/// reads it.
fn userinfo_ranges(text: &str) -> Vec<std::ops::Range<usize>> {
    let mut ranges = Vec::new();
    let mut from = 0;
    while let Some(found) = text[from..].find("://") {
        let start = from + found + 3;
        let authority_len = text[start..]
            .find(|c: char| {
                matches!(c, '/' | '?' | '#' | '\'' | '"' | '\\' | '`' | '<' | '>')
                    || c.is_whitespace()
            })
            .unwrap_or(text.len() - start);
        let authority = &text[start..start + authority_len];
        if let Some(at) = authority.rfind('@') {
            ranges.push(start..start + at);
        }
        from = start + authority_len;
    }
    ranges
}

/// `text` with the user information of every URL in it replaced by [`REDACTED`].
pub fn url_credentials(text: &str) -> Cow<'_, str> {
    let ranges = userinfo_ranges(text);
    if ranges.iter().all(|r| &text[r.clone()] == REDACTED) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for range in ranges {
        out.push_str(&text[last..range.start]);
        out.push_str(REDACTED);
        last = range.end;
    }
    out.push_str(&text[last..]);
    Cow::Owned(out)
}

/// Whether `text` holds a URL with user information (something [`url_credentials`] cuts).
pub fn has_url_credentials(text: &str) -> bool {
    !matches!(url_credentials(text), Cow::Borrowed(_))
}

/// Every string of `value` (keys too) through [`url_credentials`]: for JSON that is printed
/// or recorded.
pub fn json_strings(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::String(s) => {
            if let Cow::Owned(redacted) = url_credentials(s) {
                *s = redacted;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(json_strings),
        Value::Object(map) => {
            if map.keys().any(|k| has_url_credentials(k)) {
                let entries = std::mem::take(map);
                for (k, mut v) in entries {
                    json_strings(&mut v);
                    map.insert(url_credentials(&k).into_owned(), v);
                }
            } else {
                map.values_mut().for_each(json_strings);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// A value that holds a credential: never shown, also not by `Debug` (`Secret(***)`).
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    pub fn new(value: impl Into<String>) -> SecretString {
        SecretString(value.into())
    }

    /// The secret itself: only for the builder that passes it on.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret({REDACTED})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_information_is_cut_from_every_url() {
        let cases = [
            ("https://user:pass@host/simple", "https://***@host/simple"),
            ("https://token@host", "https://***@host"),
            ("https://user:p@ss@host:8443/s", "https://***@host:8443/s"),
            ("http://u:p@h?x=1", "http://***@h?x=1"),
            (
                "--index-url https://a:b@h1/s --extra-index-url https://c:d@h2/s",
                "--index-url https://***@h1/s --extra-index-url https://***@h2/s",
            ),
            ("\"https://a:b@h\"", "\"https://***@h\""),
            (
                "git+https://tok@github.com/o/r",
                "git+https://***@github.com/o/r",
            ),
            ("https://***@host/simple", "https://***@host/simple"),
            ("pkg @ https://host/pkg.whl", "pkg @ https://host/pkg.whl"),
            ("https://host/path@v1", "https://host/path@v1"),
            ("mail me@example.org", "mail me@example.org"),
            ("://", "://"),
            ("https://", "https://"),
            ("https://@h", "https://***@h"),
            ("é://ü:ö@ß/x", "é://***@ß/x"),
        ];
        for (text, want) in cases {
            assert_eq!(url_credentials(text), want, "{text}");
        }
        assert!(has_url_credentials("x https://u@h"));
        assert!(!has_url_credentials("x https://h/u@v"));
        assert!(!has_url_credentials("https://***@h"));
    }

    #[test]
    fn json_strings_and_keys_are_redacted() {
        let mut v = serde_json::json!({
            "pip_index": "https://u:p@h/s",
            "list": ["https://t@h", 1, null],
            "https://k:v@h": {"x": "https://y@z"},
        });
        json_strings(&mut v);
        let text = v.to_string();
        assert!(!text.contains("u:p") && !text.contains("k:v"), "{text}");
        assert!(!text.contains("//t@") && !text.contains("//y@"), "{text}");
        assert_eq!(v["pip_index"], "https://***@h/s");
    }

    #[test]
    fn a_secret_string_debugs_as_redacted() {
        let s = SecretString::new("https://u:p@h");
        assert_eq!(format!("{s:?}"), "Secret(***)");
        assert_eq!(s.expose(), "https://u:p@h");
    }

    proptest::proptest! {
        #[test]
        fn redaction_is_idempotent_and_leaves_no_userinfo(text in ".{0,80}") {
            let once = url_credentials(&text).into_owned();
            proptest::prop_assert_eq!(url_credentials(&once).into_owned(), once.clone());
            for r in userinfo_ranges(&once) {
                proptest::prop_assert_eq!(&once[r], REDACTED);
            }
        }
    }
}
