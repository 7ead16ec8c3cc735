//! Where a base image's packages come from: its apt sources, as apt reads them
//! (sources.list(5)): one-line `deb [options] uri suite component...` entries in
//! `/etc/apt/sources.list` and `sources.list.d/*.list`, and deb822 `*.sources` paragraphs
//! (`Types`, `URIs`, `Suites`, `Components`, `Architectures`, `Enabled`). Only `deb`
//! entries count (`deb-src` is for source packages). And `/etc/os-release`, which says
//! whether the base is Debian or Ubuntu at all.

use super::deb822;

/// One `deb` source: a mirror URI, a suite, its components.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// Without a trailing `/`.
    pub uri: String,
    pub suite: String,
    pub components: Vec<String>,
    /// The `arch=`/`Architectures:` restriction, empty when none.
    pub architectures: Vec<String>,
    /// The `signed-by=`/`Signed-By:` option: keyring paths (or fingerprints), or a key
    /// block written in the paragraph; `None`: apt's default keyrings.
    pub signed_by: Option<String>,
}

impl Source {
    /// Whether this source serves `arch`'s packages (the default: every architecture).
    pub fn serves(&self, arch: &str) -> bool {
        self.architectures.is_empty() || self.architectures.iter().any(|a| a == arch)
    }
}

/// A sources file apt would refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourcesError {
    #[error("{file}:{line}: expected `deb [options] uri suite [component...]`, found {found:?}")]
    OneLine {
        file: String,
        line: usize,
        found: String,
    },
    #[error("{file}: {source}")]
    Deb822 {
        file: String,
        #[source]
        source: deb822::Deb822Error,
    },
    #[error("{file}: a paragraph without {field}")]
    Missing { file: String, field: &'static str },
}

/// The `deb` entries of a one-line sources file (`file` names it in errors).
pub fn parse_list(file: &str, text: &str) -> Result<Vec<Source>, SourcesError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let bad = || SourcesError::OneLine {
            file: file.to_string(),
            line: i + 1,
            found: line.to_string(),
        };
        let (kind, rest) = line.split_once(char::is_whitespace).ok_or_else(bad)?;
        let mut rest = rest.trim_start();
        let (mut architectures, mut signed_by) = (Vec::new(), None);
        if let Some(opts) = rest.strip_prefix('[') {
            let (opts, after) = opts.split_once(']').ok_or_else(bad)?;
            for opt in opts.split_whitespace() {
                if let Some(list) = opt.strip_prefix("arch=") {
                    architectures = list.split(',').map(String::from).collect();
                } else if let Some(keys) = opt.strip_prefix("signed-by=") {
                    signed_by = Some(keys.to_string());
                }
            }
            rest = after.trim_start();
        }
        let mut words = rest.split_whitespace();
        let (uri, suite) = (words.next().ok_or_else(bad)?, words.next().ok_or_else(bad)?);
        if kind == "deb" {
            out.push(Source {
                uri: uri.trim_end_matches('/').to_string(),
                suite: suite.to_string(),
                components: words.map(String::from).collect(),
                architectures,
                signed_by,
            });
        } else if kind != "deb-src" {
            return Err(bad());
        }
    }
    Ok(out)
}

/// The `deb` entries of a deb822 `.sources` file.
pub fn parse_sources(file: &str, text: &str) -> Result<Vec<Source>, SourcesError> {
    let paragraphs = deb822::parse(text).map_err(|source| SourcesError::Deb822 {
        file: file.to_string(),
        source,
    })?;
    let mut out = Vec::new();
    for p in paragraphs {
        let words = |f: &str| -> Vec<String> {
            p.get(f)
                .map(|v| v.split_whitespace().map(String::from).collect())
                .unwrap_or_default()
        };
        if p.get("Enabled")
            .is_some_and(|e| e.eq_ignore_ascii_case("no"))
            || !words("Types").iter().any(|t| t == "deb")
        {
            continue;
        }
        let missing = |field| SourcesError::Missing {
            file: file.to_string(),
            field,
        };
        let uris = words("URIs");
        let suites = words("Suites");
        if uris.is_empty() {
            return Err(missing("URIs"));
        }
        if suites.is_empty() {
            return Err(missing("Suites"));
        }
        for uri in &uris {
            for suite in &suites {
                out.push(Source {
                    uri: uri.trim_end_matches('/').to_string(),
                    suite: suite.clone(),
                    components: words("Components"),
                    architectures: words("Architectures"),
                    signed_by: p.get("Signed-By").map(str::to_string),
                });
            }
        }
    }
    Ok(out)
}

/// `ID` and `VERSION_CODENAME` of an os-release(5) file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OsRelease {
    pub id: String,
    /// `ID_LIKE`'s words.
    pub id_like: Vec<String>,
    pub codename: Option<String>,
}

impl OsRelease {
    pub fn parse(text: &str) -> OsRelease {
        let mut out = OsRelease::default();
        for line in text.lines() {
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            let v = v.trim().trim_matches(['"', '\'']).to_string();
            match k.trim() {
                "ID" => out.id = v,
                "ID_LIKE" => out.id_like = v.split_whitespace().map(String::from).collect(),
                "VERSION_CODENAME" if !v.is_empty() => out.codename = Some(v),
                _ => {}
            }
        }
        out
    }

    /// Debian or a derivative (Ubuntu): apt and dpkg are its package manager.
    pub fn is_debian_like(&self) -> bool {
        self.id == "debian" || self.id_like.iter().any(|i| i == "debian")
    }
}

/// dpkg's architecture name for an OCI platform (`linux/arm/v7` → `armhf`), or `None` for
/// one Debian has no port of.
pub fn dpkg_arch(platform: &crate::oci::Platform) -> Option<&'static str> {
    Some(match (platform.architecture(), platform.variant()) {
        ("amd64", _) => "amd64",
        ("arm64", _) => "arm64",
        ("arm", Some("v7")) => "armhf",
        ("arm", Some("v5" | "v6")) => "armel",
        ("386", _) => "i386",
        ("ppc64le", _) => "ppc64el",
        ("s390x", _) => "s390x",
        ("riscv64", _) => "riscv64",
        _ => return None,
    })
}

/// Every `deb` source of a base's files: `sources.list` and the `sources.list.d/` files
/// (`.list` one-line, `.sources` deb822; others ignored, as apt does), by path, in the order
/// apt reads them (sources.list first, then the directory's files by name).
pub fn all_sources(files: &[(String, String)]) -> Result<Vec<Source>, SourcesError> {
    let mut sorted: Vec<&(String, String)> = files.iter().collect();
    sorted.sort_by_key(|(path, _)| (path.contains("sources.list.d/"), path.clone()));
    let mut out = Vec::new();
    for (path, text) in sorted {
        if path.ends_with(".sources") {
            out.extend(parse_sources(path, text)?);
        } else if path.ends_with(".list") {
            out.extend(parse_list(path, text)?);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dpkg_architectures() {
        let p = |s: &str| crate::oci::Platform::parse(s).unwrap();
        assert_eq!(dpkg_arch(&p("linux/amd64")), Some("amd64"));
        assert_eq!(dpkg_arch(&p("linux/arm64")), Some("arm64"));
        assert_eq!(dpkg_arch(&p("linux/arm/v7")), Some("armhf"));
        assert_eq!(dpkg_arch(&p("linux/mips64le")), None);
    }

    #[test]
    fn sources_list_first_then_the_directory_by_name() {
        let files = [
            (
                "etc/apt/sources.list.d/b.sources".to_string(),
                "Types: deb\nURIs: http://b\nSuites: s\nComponents: main\n".to_string(),
            ),
            (
                "etc/apt/sources.list.d/a.list".to_string(),
                "deb http://a s main\n".to_string(),
            ),
            (
                "etc/apt/sources.list.d/c.txt".to_string(),
                "junk".to_string(),
            ),
            (
                "etc/apt/sources.list".to_string(),
                "deb http://l s main\n".to_string(),
            ),
        ];
        let uris: Vec<_> = all_sources(&files)
            .unwrap()
            .into_iter()
            .map(|s| s.uri)
            .collect();
        assert_eq!(uris, ["http://l", "http://a", "http://b"]);
    }

    #[test]
    fn one_line_entries() {
        let text = std::fs::read_to_string("testdata/apt/sources.list").unwrap();
        let s = parse_list("sources.list", &text).unwrap();
        assert_eq!(s.len(), 2, "{s:?}");
        assert_eq!(s[0].uri, "http://deb.debian.org/debian");
        assert_eq!(
            (s[0].suite.as_str(), s[0].components.clone()),
            ("bookworm", vec!["main".to_string()])
        );
        assert_eq!(s[1].architectures, vec!["amd64".to_string()]);
        assert_eq!(s[0].signed_by, None);
        assert_eq!(s[1].signed_by.as_deref(), Some("/usr/share/keyrings/x.gpg"));
        assert!(s[1].serves("amd64") && !s[1].serves("arm64") && s[0].serves("arm64"));
        let e = parse_list("x.list", "deb http://a\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "x.list:1: expected `deb [options] uri suite [component...]`, found \"deb http://a\""
        );
    }

    #[test]
    fn deb822_entries_multiply_uris_and_suites() {
        let text = std::fs::read_to_string("testdata/apt/debian.sources").unwrap();
        let s = parse_sources("debian.sources", &text).unwrap();
        let pairs: Vec<_> = s.iter().map(|s| format!("{} {}", s.uri, s.suite)).collect();
        assert_eq!(
            pairs,
            [
                "http://deb.debian.org/debian bookworm",
                "http://deb.debian.org/debian bookworm-updates",
                "http://deb.debian.org/debian-security bookworm-security",
            ]
        );
        assert_eq!(
            s[2].signed_by.as_deref(),
            Some("/usr/share/keyrings/debian-archive-keyring.gpg")
        );
        let e = parse_sources("x.sources", "Types: deb\nSuites: a\n").unwrap_err();
        assert_eq!(e.to_string(), "x.sources: a paragraph without URIs");
    }

    #[test]
    fn os_release() {
        let debian = OsRelease::parse(
            "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_CODENAME=bookworm\n",
        );
        assert!(debian.is_debian_like());
        assert_eq!(debian.codename.as_deref(), Some("bookworm"));
        assert!(OsRelease::parse("ID=ubuntu\nID_LIKE=debian\n").is_debian_like());
        assert!(!OsRelease::parse("ID=alpine\n").is_debian_like());
    }
}
