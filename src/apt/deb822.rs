//! Debian control paragraphs (deb822, as `dpkg`'s `parsecontrol.c` and python-debian's
//! `Deb822` read them): `Field: value` lines, continuation lines starting with a space or a
//! tab, paragraphs separated by blank lines, `#` comment lines (in `.sources` files). Field
//! names compare without case; the order of fields is kept, so a paragraph written back
//! (the dpkg `status` file) reads as dpkg wrote it.

/// One paragraph: its fields in order, each value as written (continuation lines kept with
/// their leading space, joined by `\n`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Paragraph {
    pub fields: Vec<(String, String)>,
}

/// A line that is neither a field, a continuation nor a comment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: expected `Field: value` or a continuation line, found {found:?}")]
pub struct Deb822Error {
    pub line: usize,
    pub found: String,
}

impl Paragraph {
    /// The value of `name` (any case), trimmed of the space after the colon.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Sets `name` to `value`, in place when present, else at the end.
    #[cfg(test)]
    pub fn set(&mut self, name: &str, value: &str) {
        match self
            .fields
            .iter_mut()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
        {
            Some((_, v)) => *v = value.to_string(),
            None => self.fields.push((name.to_string(), value.to_string())),
        }
    }

    /// The paragraph as dpkg writes it (`Field: value` lines, no blank line after).
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for (k, v) in &self.fields {
            out.push_str(k);
            out.push(':');
            if !v.is_empty() && !v.starts_with('\n') {
                out.push(' ');
            }
            out.push_str(v);
            out.push('\n');
        }
        out
    }
}

/// Every paragraph of `text`. A PGP-signed file (InRelease) is read through
/// [`strip_clearsign`] first.
pub fn parse(text: &str) -> Result<Vec<Paragraph>, Deb822Error> {
    let mut out = Vec::new();
    let mut current = Paragraph::default();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            if !current.fields.is_empty() {
                out.push(std::mem::take(&mut current));
            }
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            let Some((_, value)) = current.fields.last_mut() else {
                return Err(Deb822Error {
                    line: i + 1,
                    found: line.to_string(),
                });
            };
            value.push('\n');
            value.push_str(line);
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            return Err(Deb822Error {
                line: i + 1,
                found: line.to_string(),
            });
        };
        current
            .fields
            .push((key.trim().to_string(), value.trim().to_string()));
    }
    if !current.fields.is_empty() {
        out.push(current);
    }
    Ok(out)
}

/// `text` with only the fields `keep` names (any case) of each paragraph, continuation
/// lines with their field, paragraphs still apart: what [`parse`] of it gives is
/// [`parse`] of `text` without the other fields, from a fraction of the text (a `Packages`
/// index is mostly descriptions). A line that is not a field is kept, so [`parse`] still
/// reports it (its number is then the kept text's).
pub fn keep_fields(text: &str, keep: &[&str]) -> String {
    let mut out = String::with_capacity(text.len() / 4);
    let (mut keeping, mut open) = (false, false);
    for line in text.lines() {
        if line.trim().is_empty() {
            if open {
                out.push('\n');
            }
            (keeping, open) = (false, false);
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        if !line.starts_with([' ', '\t']) {
            keeping = match line.split_once(':') {
                Some((key, _)) => keep.iter().any(|k| k.eq_ignore_ascii_case(key.trim())),
                None => true,
            };
        }
        if keeping {
            out.push_str(line);
            out.push('\n');
            open = true;
        }
    }
    out
}

/// The signed text of a clearsigned message (`-----BEGIN PGP SIGNED MESSAGE-----`), with
/// any other text as it is (a Release file has no dash-escaped lines). The signature is not
/// checked here.
pub fn strip_clearsign(text: &str) -> &str {
    let Some(rest) = text.strip_prefix("-----BEGIN PGP SIGNED MESSAGE-----") else {
        return text;
    };
    // Hash headers, then a blank line, then the message up to the signature.
    let body = rest.split_once("\n\n").map_or("", |(_, b)| b);
    body.split_once("\n-----BEGIN PGP SIGNATURE-----")
        .map_or(body, |(m, _)| m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paragraphs_fields_and_continuations() {
        let text = "Package: jq\nVersion: 1.6-2.1\nDescription: lightweight\n and flexible\n .\n more\n\n\n# a comment\npackage: curl\n";
        let ps = parse(text).unwrap();
        assert_eq!(ps.len(), 2);
        assert_eq!(ps[0].get("package"), Some("jq"));
        assert_eq!(
            ps[0].get("Description"),
            Some("lightweight\n and flexible\n .\n more")
        );
        assert_eq!(ps[1].get("Package"), Some("curl"));
        assert_eq!(
            ps[0].to_text(),
            text.split("\n\n").next().unwrap().to_string() + "\n"
        );
    }

    #[test]
    fn kept_fields_parse_as_the_whole_text_without_the_others() {
        let text = "Package: jq\nVersion: 1.6\nDescription: lightweight\n and flexible\nDepends: libjq1 (= 1.6),\n libc6\n\n# c\n\nPackage: doc\nDescription: x\n\nMD5sum: 00\n\npackage: curl\n";
        let keep = ["Package", "Version", "depends"];
        let kept = keep_fields(text, &keep);
        assert_eq!(
            kept,
            "Package: jq\nVersion: 1.6\nDepends: libjq1 (= 1.6),\n libc6\n\nPackage: doc\n\npackage: curl\n"
        );
        let mut whole = parse(text).unwrap();
        for p in &mut whole {
            p.fields
                .retain(|(k, _)| keep.iter().any(|f| f.eq_ignore_ascii_case(k)));
        }
        whole.retain(|p| !p.fields.is_empty());
        assert_eq!(parse(&kept).unwrap(), whole);
        assert!(parse(&keep_fields("Package: a\nnot a field\n", &keep)).is_err());
    }

    #[test]
    fn a_stray_line_is_an_error_with_its_number() {
        let e = parse("Package: a\nnot a field\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(parse(" continuation first\n").is_err());
    }

    #[test]
    fn set_replaces_in_place_or_appends() {
        let mut p = parse("Package: a\nStatus: x\n").unwrap().remove(0);
        p.set("status", "install ok installed");
        p.set("Version", "1");
        assert_eq!(
            p.to_text(),
            "Package: a\nStatus: install ok installed\nVersion: 1\n"
        );
    }

    #[test]
    fn clearsigned_text_is_the_message() {
        let signed = "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\nOrigin: Debian\nSuite: stable\n-----BEGIN PGP SIGNATURE-----\nabc\n-----END PGP SIGNATURE-----\n";
        assert_eq!(strip_clearsign(signed), "Origin: Debian\nSuite: stable");
        assert_eq!(strip_clearsign("Origin: x\n"), "Origin: x\n");
    }
}
