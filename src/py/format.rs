//! Python's `str.format(spec_hash=...)`, the part `tag_format` can use.
//!
//! Supports `{spec_hash}`, `{{`/`}}`, conversions `!s`/`!r`/`!a`, indexing `[n]`, and the
//! string format spec `[[fill]align][0][width][.precision][s]`. Anything Python would reject
//! (another field name, `{}`, a lone `}`) is an error here too.
//!
//! One deliberate limit: a width past [`MAX_TAG_LEN`] is refused before padding, since the
//! result is a tag, which cannot be longer (Python would allocate `{spec_hash:>99999999999}`,
//! 100 GB, and flytekit's push would then fail).

use super::repr::str_repr;

/// The widest field a format spec may ask for: 128, the longest tag the OCI distribution
/// grammar accepts (`oci::reference::MAX_TAG_LEN`; a test keeps the two equal).
pub const MAX_TAG_LEN: usize = 128;

/// Why Python's `str.format` would refuse a `tag_format` (its words where it has them).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("single '}}' encountered in format string")]
    LoneClosingBrace,
    #[error("expected '}}' before end of string")]
    Unclosed,
    #[error("positional fields like `{{}}` are not available; use `{{spec_hash}}`")]
    Positional,
    #[error("unknown field `{0}`; the only field is `{{spec_hash}}`")]
    UnknownField(String),
    #[error("string indices must be integers, not `{index}`")]
    Index {
        index: String,
        #[source]
        source: std::num::ParseIntError,
    },
    #[error("string index out of range")]
    IndexOutOfRange,
    #[error("unknown conversion specifier `{0}`")]
    Conversion(String),
    #[error("nested replacement fields in a format spec are not supported")]
    Nested,
    #[error("format specifier missing precision")]
    MissingPrecision,
    #[error("too many decimal digits in format string")]
    Precision,
    #[error("unknown format code `{0}` for a string")]
    FormatCode(String),
    #[error("'=' alignment not allowed in string format specifier")]
    EqualsAlignment,
    #[error(
        "width {width} in `{{spec_hash:{spec}}}` makes a tag longer than {} \
         characters, the longest a registry accepts",
        MAX_TAG_LEN
    )]
    Width { width: String, spec: String },
}

/// Formats `template` as `template.format(spec_hash=hash)`.
pub fn format_spec_hash(template: &str, hash: &str) -> Result<String, FormatError> {
    let mut out = String::new();
    let mut chars = template.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                out.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                out.push('}');
            }
            '}' => return Err(FormatError::LoneClosingBrace),
            '{' => {
                let mut field = String::new();
                let mut depth = 0;
                loop {
                    match chars.next() {
                        None => return Err(FormatError::Unclosed),
                        Some('{') => {
                            depth += 1;
                            field.push('{');
                        }
                        Some('}') if depth == 0 => break,
                        Some('}') => {
                            depth -= 1;
                            field.push('}');
                        }
                        Some(ch) => field.push(ch),
                    }
                }
                out.push_str(&replacement(&field, hash)?);
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

fn replacement(field: &str, hash: &str) -> Result<String, FormatError> {
    let (head, spec) = match field.find(':') {
        Some(i) => (&field[..i], Some(&field[i + 1..])),
        None => (field, None),
    };
    let (name, conversion) = match head.find('!') {
        Some(i) => (&head[..i], Some(&head[i + 1..])),
        None => (head, None),
    };
    let (base, index) = match name.find('[') {
        Some(i) if name.ends_with(']') => (&name[..i], Some(&name[i + 1..name.len() - 1])),
        _ => (name, None),
    };
    if base != "spec_hash" {
        return Err(if base.is_empty() {
            FormatError::Positional
        } else {
            FormatError::UnknownField(base.to_string())
        });
    }
    let mut value = hash.to_string();
    if let Some(index) = index {
        let i: usize = index.parse().map_err(|source| FormatError::Index {
            index: index.to_string(),
            source,
        })?;
        value = value
            .chars()
            .nth(i)
            .map(String::from)
            .ok_or(FormatError::IndexOutOfRange)?;
    }
    value = match conversion {
        None | Some("s") => value,
        Some("r") | Some("a") => str_repr(&value),
        Some(other) => return Err(FormatError::Conversion(other.to_string())),
    };
    match spec {
        None | Some("") => Ok(value),
        Some(spec) if spec.contains('{') => Err(FormatError::Nested),
        Some(spec) => apply_str_spec(&value, spec),
    }
}

fn apply_str_spec(value: &str, spec: &str) -> Result<String, FormatError> {
    let chars: Vec<char> = spec.chars().collect();
    let mut i = 0;
    let is_align = |c: char| matches!(c, '<' | '>' | '^' | '=');
    let (mut fill, mut align) = (' ', None);
    if chars.len() >= 2 && is_align(chars[1]) {
        fill = chars[0];
        align = Some(chars[1]);
        i = 2;
    } else if !chars.is_empty() && is_align(chars[0]) {
        align = Some(chars[0]);
        i = 1;
    }
    if i < chars.len() && chars[i] == '0' {
        if align.is_none() {
            fill = '0';
        }
        i += 1;
    }
    let mut width = String::new();
    while i < chars.len() && chars[i].is_ascii_digit() {
        width.push(chars[i]);
        i += 1;
    }
    let mut precision = None;
    if i < chars.len() && chars[i] == '.' {
        let mut p = String::new();
        i += 1;
        while i < chars.len() && chars[i].is_ascii_digit() {
            p.push(chars[i]);
            i += 1;
        }
        if p.is_empty() {
            return Err(FormatError::MissingPrecision);
        }
        // Python refuses a precision past sys.maxsize the same way.
        precision = Some(
            p.parse::<usize>()
                .ok()
                .filter(|&p| p <= isize::MAX as usize)
                .ok_or(FormatError::Precision)?,
        );
    }
    match &chars[i..] {
        [] | ['s'] => {}
        rest => {
            return Err(FormatError::FormatCode(rest.iter().collect()));
        }
    }
    if align == Some('=') {
        return Err(FormatError::EqualsAlignment);
    }
    let mut text: String = match precision {
        Some(p) => value.chars().take(p).collect(),
        None => value.to_string(),
    };
    let width: usize = if width.is_empty() {
        0
    } else {
        match width.parse::<usize>() {
            Ok(w) if w <= MAX_TAG_LEN => w,
            _ => {
                return Err(FormatError::Width {
                    width,
                    spec: spec.to_string(),
                });
            }
        }
    };
    let len = text.chars().count();
    if width > len {
        let pad = width - len;
        let (left, right) = match align.unwrap_or('<') {
            '>' => (pad, 0),
            '^' => (pad / 2, pad - pad / 2),
            _ => (0, pad),
        };
        let f = fill.to_string();
        text = format!("{}{text}{}", f.repeat(left), f.repeat(right));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::format_spec_hash as f;

    #[test]
    fn formats_like_python() {
        assert_eq!(f("{spec_hash}-dev", "abc").unwrap(), "abc-dev");
        assert_eq!(f("{spec_hash:.2}", "abc").unwrap(), "ab");
        assert_eq!(f("{{x}}-{spec_hash}", "abc").unwrap(), "{x}-abc");
        assert_eq!(f("{spec_hash:>5}", "abc").unwrap(), "  abc");
        assert_eq!(f("{spec_hash:*^7}", "abc").unwrap(), "**abc**");
        assert_eq!(f("{spec_hash!r}", "abc").unwrap(), "'abc'");
        assert_eq!(f("{spec_hash[1]}", "abc").unwrap(), "b");
        assert!(f("{other}", "abc").is_err());
        assert!(f("{}", "abc").is_err());
        assert!(f("a}b", "abc").is_err());
    }

    #[test]
    fn widths_past_a_tag_are_refused_before_padding() {
        assert_eq!(f("{spec_hash:>128}", "abc").unwrap().len(), 128);
        for template in [
            "{spec_hash:>129}",
            "{spec_hash:>99999999999}",
            "{spec_hash:2147483648}",
            "{spec_hash:099999999999999999999999}",
        ] {
            let err = f(template, "abc").unwrap_err().to_string();
            assert!(err.contains("longer than 128"), "{template}: {err}");
        }
        assert_eq!(f("{spec_hash:.9999999999}", "abc").unwrap(), "abc");
        assert!(f("{spec_hash:.99999999999999999999999}", "abc").is_err());
    }
}
