//! A suite's `Release` (or `InRelease`) file: the SHA256 of every index of the suite
//! (`SHA256:` lines ` <hex> <size> <path>`), which is how a `Packages` index is checked
//! before use, and through it every `.deb` (the index holds their SHA256).
//! The text parsed is the one [`super::signature`] verified.

use super::deb822;
use std::collections::BTreeMap;

/// An index file as the Release lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub sha256: String,
    pub size: u64,
}

/// The parts of a Release file the fetch uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Release {
    /// By path relative to the suite's directory (`main/binary-amd64/Packages.gz`).
    pub files: BTreeMap<String, Listed>,
    pub architectures: Vec<String>,
}

/// A Release file that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReleaseError {
    #[error("the Release file: {0}")]
    Deb822(#[from] deb822::Deb822Error),
    #[error("the Release file has no SHA256 list")]
    NoSha256,
    #[error("the Release file's SHA256 line {0:?} is not `<sha256> <size> <path>`")]
    Line(String),
}

impl Release {
    /// Reads a Release or InRelease file (its clearsigned text).
    pub fn parse(text: &str) -> Result<Release, ReleaseError> {
        let paragraphs = deb822::parse(deb822::strip_clearsign(text))?;
        let p = paragraphs.first().ok_or(ReleaseError::NoSha256)?;
        let list = p.get("SHA256").ok_or(ReleaseError::NoSha256)?;
        let mut files = BTreeMap::new();
        for line in list.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let bad = || ReleaseError::Line(line.to_string());
            let mut words = line.split_whitespace();
            let (Some(hash), Some(size), Some(path), None) =
                (words.next(), words.next(), words.next(), words.next())
            else {
                return Err(bad());
            };
            if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad());
            }
            files.insert(
                path.to_string(),
                Listed {
                    sha256: hash.to_ascii_lowercase(),
                    size: size.parse().map_err(|_| bad())?,
                },
            );
        }
        Ok(Release {
            files,
            architectures: p
                .get("Architectures")
                .map(|a| a.split_whitespace().map(String::from).collect())
                .unwrap_or_default(),
        })
    }

    /// The `Packages` index of `component` for `arch` this Release lists, best compression
    /// first that this build reads (xz, gzip, none): its path and listing.
    pub fn packages_index(&self, component: &str, arch: &str) -> Option<(&str, &Listed)> {
        ["Packages.xz", "Packages.gz", "Packages"]
            .iter()
            .find_map(|name| {
                self.files
                    .get_key_value(&format!("{component}/binary-{arch}/{name}"))
                    .map(|(k, v)| (k.as_str(), v))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_list_and_the_packages_index() {
        let text = std::fs::read_to_string("testdata/apt/InRelease").unwrap();
        let r = Release::parse(&text).unwrap();
        assert_eq!(r.architectures, ["amd64", "arm64"]);
        let (path, listed) = r.packages_index("main", "amd64").unwrap();
        assert_eq!(path, "main/binary-amd64/Packages.xz");
        assert_eq!(listed.size, 8_792_044);
        let (path, _) = r.packages_index("main", "arm64").unwrap();
        assert_eq!(path, "main/binary-arm64/Packages.gz");
        assert!(r.packages_index("contrib", "amd64").is_none());
    }

    #[test]
    fn a_bad_line_or_no_list_is_an_error() {
        assert_eq!(Release::parse("Suite: x\n"), Err(ReleaseError::NoSha256));
        let bad = "SHA256:\n abc 1 main/x\n";
        assert!(matches!(Release::parse(bad), Err(ReleaseError::Line(_))));
    }
}
