//! Image references by the OCI distribution grammar (`distribution/reference`'s
//! `regexp.go`, which docker, containerd and registries apply), parsed once where a spec,
//! a flag or a daemon names an image, and carried as [`ImageRef`] from there on: the
//! registry host, the repository at that host and the tag are its accessors, never a
//! string split again.
//!
//! flytekit builds `[registry/]name:tag` by string concatenation and checks only the
//! registry, with a looser pattern: `name = "zzz/../adv1"` reports one repository and (after
//! URL normalisation) pushes to another, and `tag_format = "{spec_hash}?x=1"` pushes a tag
//! other than the one reported. Such names fail at `docker push` with flytekit; here they
//! fail before anything runs, naming the field.
//!
//! ```
//! use imagespec::oci::ImageRef;
//! let r: ImageRef = "localhost:5000/team/app:v1".parse().unwrap();
//! assert_eq!(r.registry(), Some("localhost:5000"));
//! assert_eq!(r.repository(), "team/app");
//! assert_eq!(r.tag(), Some("v1"));
//! assert_eq!(r.host(), "localhost:5000");
//! assert_eq!(r.name().to_string(), "localhost:5000/team/app");
//! assert!("zzz/../adv1:v1".parse::<ImageRef>().is_err());
//! ```

use regex::Regex;
use std::sync::LazyLock;

/// The longest tag the grammar allows.
pub const MAX_TAG_LEN: usize = 128;
const _: () = assert!(MAX_TAG_LEN == crate::py::format::MAX_TAG_LEN);
/// The longest repository name, registry included (`NameTotalLengthMax`).
pub const MAX_NAME_LEN: usize = 255;

// The grammar, verbatim from distribution/reference regexp.go, with `\w` spelled out: Go's
// `\w` is ASCII, the regex crate's is Unicode.
const ALPHANUMERIC: &str = "[a-z0-9]+";
const SEPARATOR: &str = "(?:[._]|__|[-]+)";
const DOMAIN_COMPONENT: &str = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
const IPV6: &str = r"\[(?:[a-fA-F0-9:]+)\]";
const TAG: &str = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}";
const DIGEST: &str = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}";

fn path_component() -> String {
    format!("{ALPHANUMERIC}(?:{SEPARATOR}{ALPHANUMERIC})*")
}

fn domain_and_port() -> String {
    format!("(?:{DOMAIN_COMPONENT}(?:\\.{DOMAIN_COMPONENT})*|{IPV6})(?::[0-9]+)?")
}

fn anchored(pattern: &str) -> Regex {
    Regex::new(&format!("^(?:{pattern})$"))
        .unwrap_or_else(|e| panic!("built-in pattern {pattern}: {e}"))
}

static PATH_COMPONENT: LazyLock<Regex> = LazyLock::new(|| anchored(&path_component()));
static DOMAIN_AND_PORT: LazyLock<Regex> = LazyLock::new(|| anchored(&domain_and_port()));
static TAG_RE: LazyLock<Regex> = LazyLock::new(|| anchored(TAG));
static DIGEST_RE: LazyLock<Regex> = LazyLock::new(|| anchored(DIGEST));

/// Why a string is not the part of an image reference it should be: what the grammar
/// expects and what was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected {expected}, found {found}")]
pub struct ReferenceError {
    pub expected: String,
    pub found: String,
}

/// `s` quoted for a message; a long one cut, with its length (which is always over 80).
fn shown(s: &str) -> String {
    const MAX: usize = 80;
    if s.is_empty() {
        "an empty string".into()
    } else if s.chars().count() > MAX {
        let head: String = s.chars().take(MAX).collect();
        format!("{head:?}... ({} characters)", s.chars().count())
    } else {
        format!("{s:?}")
    }
}

const PATH_RULE: &str = "lowercase letters and digits, joined by `.`, `_`, `__` or `-`, in \
                         `/`-separated parts (e.g. `team/my_app.v2`)";

/// Checks `/`-joined repository path components (`team/app`), part of `whole`.
fn check_path(path: &str, whole: &str, what: &str) -> Result<(), ReferenceError> {
    let bad = path
        .split('/')
        .find(|component| !PATH_COMPONENT.is_match(component));
    let Some(component) = bad else {
        return Ok(());
    };
    let found = if component == whole {
        shown(whole)
    } else if component.is_empty() {
        format!("{} (an empty part)", shown(whole))
    } else {
        format!("{} (the part {})", shown(whole), shown(component))
    };
    Err(ReferenceError {
        expected: format!("{what}: {PATH_RULE}"),
        found,
    })
}

/// A registry as a spec's `registry` names it: `host[:port]` and optional path components
/// (`localhost:5000`, `ghcr.io/org`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Registry(String);

impl Registry {
    /// Parses a registry; `None` for the empty string (no registry, as flytekit reads it).
    pub fn parse(text: &str) -> Result<Option<Registry>, ReferenceError> {
        if text.is_empty() {
            return Ok(None);
        }
        let (host, path) = match text.split_once('/') {
            Some((host, path)) => (host, Some(path)),
            None => (text, None),
        };
        if !DOMAIN_AND_PORT.is_match(host) {
            return Err(ReferenceError {
                expected: "a registry host[:port] (letters, digits, `-` and `.` in the host, \
                           digits in the port), e.g. `localhost:5000` or `ghcr.io/org`"
                    .into(),
                found: if host == text {
                    shown(text)
                } else {
                    format!("{} (the host {})", shown(text), shown(host))
                },
            });
        }
        if let Some(path) = path {
            check_path(path, text, "a registry path after the host")?;
        }
        Ok(Some(Registry(text.to_string())))
    }

    /// As written (lower-cased by the spec).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A repository: `[registry/]name`, what a tag is applied to. Kept as Docker splits it:
/// the registry host and the path at that host (a spec registry's path prefix is part of
/// the path), so two spellings of one repository are equal.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Repository {
    registry: Option<String>,
    path: String,
}

impl Repository {
    /// The repository a spec names: its `registry` (already parsed) and its `name`, which
    /// must be path components; without a registry the name may start with a registry host
    /// (`name = "ghcr.io/org/app"`), as flytekit just concatenates them.
    pub fn new(registry: Option<&Registry>, name: &str) -> Result<Repository, ReferenceError> {
        let repository = match registry {
            Some(registry) => {
                check_path(name, name, "an image name")?;
                // Split as Docker splits the whole name: a registry `team` (no `.`, `:` or
                // `localhost`) is a path component on Docker Hub, not a host.
                Repository::parse(&format!("{}/{name}", registry.0))?
            }
            None => Repository::parse(name)?,
        };
        let full = repository.to_string();
        if full.len() > MAX_NAME_LEN {
            return Err(ReferenceError {
                expected: format!(
                    "an image name (with its registry) of at most {MAX_NAME_LEN} characters"
                ),
                found: shown(&full),
            });
        }
        Ok(repository)
    }

    /// Parses `[domain/]path`, choosing as the grammar does: a first component that is a
    /// valid host and followed by more components is the registry.
    fn parse(text: &str) -> Result<Repository, ReferenceError> {
        if let Some((first, rest)) = text.split_once('/') {
            // docker's rule for what is a host (`.`, `:`, `localhost` or an upper-case letter);
            // anything else valid as a path component is the first path component.
            let looks_like_host = first.contains(['.', ':'])
                || first == "localhost"
                || first.chars().any(|c| c.is_ascii_uppercase());
            if looks_like_host
                && DOMAIN_AND_PORT.is_match(first)
                && check_path(rest, text, "an image name").is_ok()
            {
                return Ok(Repository {
                    registry: Some(first.to_string()),
                    path: rest.to_string(),
                });
            }
            if first.contains(':') && DOMAIN_AND_PORT.is_match(first) {
                check_path(rest, text, "an image name after the registry host")?;
            }
        }
        check_path(text, text, "an image name")?;
        Ok(Repository {
            registry: None,
            path: text.to_string(),
        })
    }

    /// The registry host, if the name has one.
    pub fn registry(&self) -> Option<&str> {
        self.registry.as_deref()
    }

    /// The repository path at the registry host (a spec registry's path prefix included).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The registry host, as Docker decides it: the registry's first component (its host,
    /// without a path prefix), `docker.io` when the name has none.
    pub fn host(&self) -> &str {
        self.registry.as_deref().unwrap_or(DOCKER_HUB)
    }

    /// This repository with `tag`.
    pub fn with_tag(&self, tag: Tag) -> ImageRef {
        ImageRef {
            repository: self.clone(),
            tag: Some(tag.0),
            digest: None,
        }
    }
}

impl std::fmt::Display for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.registry {
            Some(registry) => write!(f, "{registry}/{}", self.path),
            None => f.write_str(&self.path),
        }
    }
}

/// The registry of a name without one (Docker Hub).
pub const DOCKER_HUB: &str = "docker.io";

/// A tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Tag(String);

impl Tag {
    /// Parses a tag.
    pub fn parse(text: &str) -> Result<Tag, ReferenceError> {
        if TAG_RE.is_match(text) {
            return Ok(Tag(text.to_string()));
        }
        let len = text.chars().count();
        let found =
            if len > MAX_TAG_LEN {
                format!("{} characters", len)
            } else if let Some(bad) = text.chars().enumerate().find(|&(i, c)| {
                !(c.is_ascii_alphanumeric() || c == '_' || (i > 0 && ".-".contains(c)))
            }) {
                format!(
                    "{} (the character {:?} at {})",
                    shown(text),
                    bad.1,
                    bad.0 + 1
                )
            } else {
                shown(text)
            };
        Err(ReferenceError {
            expected: format!(
                "a tag of 1 to {MAX_TAG_LEN} letters, digits, `_`, `.` and `-`, not starting \
                 with `.` or `-`"
            ),
            found,
        })
    }

    /// The tag.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A full image reference: `[registry/]repository[:tag][@digest]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    repository: Repository,
    tag: Option<String>,
    digest: Option<String>,
}

impl ImageRef {
    /// The registry host, if the name has one.
    pub fn registry(&self) -> Option<&str> {
        self.repository.registry()
    }

    /// The repository path at the registry host.
    pub fn repository(&self) -> &str {
        self.repository.path()
    }

    /// The tag, if any.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest (`sha256:...`), if any.
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// The registry host, as Docker decides it (`docker.io` when the name has none).
    pub fn host(&self) -> &str {
        self.repository.host()
    }

    /// `[registry/]repository`: the name without tag or digest.
    pub fn name(&self) -> &Repository {
        &self.repository
    }

    /// This image's repository with `tag` (and no digest).
    pub fn with_tag(&self, tag: Tag) -> ImageRef {
        self.repository.with_tag(tag)
    }

    /// This image's tag with `suffix` appended (`app:deps-1` → `app:deps-1-linux-arm64`),
    /// checked to still be a tag (at most [`MAX_TAG_LEN`] characters).
    pub fn with_tag_suffix(&self, suffix: &str) -> Result<ImageRef, ReferenceError> {
        let tag = format!("{}{suffix}", self.tag.as_deref().unwrap_or("latest"));
        Ok(self.with_tag(Tag::parse(&tag)?))
    }

    /// This image named by `digest` (its tag kept, as `name:tag@digest`).
    pub fn with_digest(&self, digest: &crate::oci::Digest) -> ImageRef {
        ImageRef {
            digest: Some(digest.as_str().to_string()),
            ..self.clone()
        }
    }
}

impl ImageRef {
    /// The same tag and digest in `repository` (where a mirror keeps the image).
    pub fn in_repository(&self, repository: Repository) -> ImageRef {
        ImageRef {
            repository,
            ..self.clone()
        }
    }
}

/// The repository itself, with no tag or digest (what is asked of a repository: its tags).
impl From<Repository> for ImageRef {
    fn from(repository: Repository) -> ImageRef {
        ImageRef {
            repository,
            tag: None,
            digest: None,
        }
    }
}

impl std::str::FromStr for ImageRef {
    type Err = ReferenceError;

    fn from_str(text: &str) -> Result<ImageRef, ReferenceError> {
        let (rest, digest) = match text.split_once('@') {
            Some((rest, digest)) => {
                if !DIGEST_RE.is_match(digest) {
                    return Err(ReferenceError {
                        expected: "a digest `algorithm:hex` (at least 32 hex digits) after `@`"
                            .into(),
                        found: format!("{} (the digest {})", shown(text), shown(digest)),
                    });
                }
                (rest, Some(digest.to_string()))
            }
            None => (text, None),
        };
        // A `:` after the last `/` starts the tag; one before it is a registry port.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].find(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        let tag = tag.map(Tag::parse).transpose()?.map(|t| t.0);
        let repository = Repository::parse(name).map_err(|e| ReferenceError {
            expected: format!(
                "an image reference `[registry/]name[:tag][@digest]` ({})",
                e.expected
            ),
            found: if name == text {
                e.found
            } else {
                format!("{} (the name {})", shown(text), shown(name))
            },
        })?;
        if repository.to_string().len() > MAX_NAME_LEN {
            return Err(ReferenceError {
                expected: format!("an image name of at most {MAX_NAME_LEN} characters"),
                found: format!("{} characters", repository.to_string().len()),
            });
        }
        Ok(ImageRef {
            repository,
            tag,
            digest,
        })
    }
}

/// Written as its string form (a record on disk, a JSON answer).
impl serde::Serialize for ImageRef {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Read from its string form, parsed by the grammar: a record with anything else is refused.
impl<'de> serde::Deserialize<'de> for ImageRef {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<ImageRef, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl std::fmt::Display for ImageRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn image(text: &str) -> Result<ImageRef, ReferenceError> {
        text.parse()
    }

    #[test]
    fn accepts_what_docker_accepts() {
        for ok in [
            "python",
            "python:3.11-slim",
            "library/python:3.11",
            "docker.io/library/python",
            "localhost:5000/debian-python:bookworm",
            "registry.test:5443/envd-python:bookworm",
            "nvcr.io/nvidia/tensorrt:24.01-py3",
            "ghcr.io/org/img@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "10.0.0.1:5000/a/b:c",
            "[::1]:5000/app:v",
            "a__b/c---d/e.f_g:_x",
            "flytekit:_________8HvzZqJcsGZ_sAEJ6_P83Q_________",
        ] {
            let parsed = image(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
            assert_eq!(parsed.to_string(), ok);
        }
    }

    #[test]
    fn splits_registry_repository_tag_and_digest() {
        let r = image("localhost:5000/a/b:v1").unwrap();
        assert_eq!(
            (r.registry(), r.repository(), r.tag(), r.digest()),
            (Some("localhost:5000"), "a/b", Some("v1"), None)
        );
        let r = image("team/app").unwrap();
        assert_eq!(
            (r.registry(), r.repository(), r.tag()),
            (None, "team/app", None)
        );
        let r = image("ghcr.io/o/i@sha256:0123456789abcdef0123456789abcdef").unwrap();
        assert_eq!(r.digest(), Some("sha256:0123456789abcdef0123456789abcdef"));
    }

    #[test]
    fn serialises_as_its_string() {
        let r = image("localhost:5000/a/b:t").unwrap();
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(json, "\"localhost:5000/a/b:t\"");
        assert_eq!(serde_json::from_str::<ImageRef>(&json).unwrap(), r);
        assert!(serde_json::from_str::<ImageRef>("\"a/../b\"").is_err());
    }

    #[test]
    fn hosts_and_paths_at_the_host() {
        let r = image("localhost:5000/a/b:t").unwrap();
        assert_eq!((r.host(), r.repository()), ("localhost:5000", "a/b"));
        assert_eq!(r.name().to_string(), "localhost:5000/a/b");
        let r = image("library/python:3.11").unwrap();
        assert_eq!((r.host(), r.repository()), ("docker.io", "library/python"));
        assert_eq!(image("python").unwrap().host(), "docker.io");
        let ghcr = Registry::parse("ghcr.io/org").unwrap();
        let repo = Repository::new(ghcr.as_ref(), "team/app").unwrap();
        assert_eq!((repo.host(), repo.path()), ("ghcr.io", "org/team/app"));
        let parsed: ImageRef = "ghcr.io/org/team/app:v1".parse().unwrap();
        assert_eq!(parsed.name(), &repo);
        let tagged = repo.with_tag(Tag::parse("v1").unwrap());
        assert_eq!(tagged.to_string(), "ghcr.io/org/team/app:v1");
        let suffixed = tagged.with_tag_suffix("-linux-arm64").unwrap();
        assert_eq!(suffixed.to_string(), "ghcr.io/org/team/app:v1-linux-arm64");
        assert!(tagged.with_tag_suffix(&"x".repeat(128)).is_err());
        let digest = crate::oci::Digest::of_bytes(b"x");
        let pinned = tagged.with_digest(&digest);
        let expected = format!("ghcr.io/org/team/app:v1@{}", digest.as_str());
        assert_eq!(pinned.to_string(), expected);
        assert_eq!(pinned.with_tag(Tag::parse("v2").unwrap()).digest(), None);
    }

    #[test]
    fn a_registry_that_is_no_host_is_a_path_on_docker_hub() {
        // Found by the spec fuzz targets: `registry = "ghcrn"` names docker.io/ghcrn/…, as
        // Docker reads `ghcrn/flytekit`; the spec's repository and its name reparsed agree.
        let team = Registry::parse("ghcrn").unwrap();
        let repo = Repository::new(team.as_ref(), "flytekit").unwrap();
        assert_eq!((repo.registry(), repo.path()), (None, "ghcrn/flytekit"));
        assert_eq!(repo.host(), "docker.io");
        let parsed: ImageRef = "ghcrn/flytekit:t".parse().unwrap();
        assert_eq!(parsed.name(), &repo);
        let local = Registry::parse("localhost:5000/team").unwrap();
        let repo = Repository::new(local.as_ref(), "app").unwrap();
        assert_eq!(
            (repo.registry(), repo.path()),
            (Some("localhost:5000"), "team/app")
        );
    }

    #[test]
    fn rejects_what_would_push_elsewhere_or_fail() {
        for bad in [
            "",
            "zzz/../adv1:t",
            "a:b:c",
            "has space:t",
            "app/Case",
            "Python:3.11",
            "app:tag?x=1",
            "app:tag#frag",
            "app:.dot",
            "app:-dash",
            "app:",
            "a//b",
            "a/",
            "/a",
            "école:t",
            "my_reg-1.example.com:443/a/app:t",
            "localhost:٥٠٠٠/app:t",
            "app@sha256:short",
            "app@",
        ] {
            assert!(image(bad).is_err(), "{bad:?} must be refused");
        }
        let long_tag = format!("app:{}", "a".repeat(129));
        assert!(image(&long_tag).is_err());
        assert!(image(&format!("app:{}", "a".repeat(128))).is_ok());
        assert!(image(&format!("{}:t", "a".repeat(256))).is_err());
    }

    #[test]
    fn spec_names_and_registries() {
        let ghcr = Registry::parse("ghcr.io/org").unwrap();
        assert_eq!(Registry::parse("").unwrap(), None);
        let repo = Repository::new(ghcr.as_ref(), "team/app").unwrap();
        assert_eq!(repo.to_string(), "ghcr.io/org/team/app");
        assert_eq!(repo.registry(), Some("ghcr.io"));
        // With a registry, the name is path components only.
        assert!(Repository::new(ghcr.as_ref(), "localhost:5000/app").is_err());
        // Without, it may begin with a host, as flytekit concatenates.
        let repo = Repository::new(None, "localhost:5000/app").unwrap();
        assert_eq!(repo.registry(), Some("localhost:5000"));
        for bad in ["", "a:b", "has space", "zzz/../adv1", "x/", "É"] {
            assert!(Repository::new(None, bad).is_err(), "{bad:?}");
        }
        for bad in [
            "ghcr.io/org\n",
            "ghcr.io/été",
            "my_reg.example.com",
            "h:port",
            "h/",
        ] {
            assert!(Registry::parse(bad).is_err(), "{bad:?}");
        }
        let err = Repository::new(None, "zzz/../adv1").unwrap_err();
        assert_eq!(err.found, "\"zzz/../adv1\" (the part \"..\")");
    }

    #[test]
    fn tag_errors_say_what_is_wrong() {
        let err = Tag::parse("abc?x=1").unwrap_err();
        assert!(err.found.contains("'?'"), "{err}");
        let err = Tag::parse(&"a".repeat(200)).unwrap_err();
        assert_eq!(err.found, "200 characters");
    }

    proptest! {
        #[test]
        fn parsing_never_panics_and_round_trips(text in "[a-zA-Z0-9:/@._\\-\\[\\] ]{0,60}") {
            if let Ok(r) = image(&text) {
                prop_assert_eq!(r.to_string(), text);
            }
        }

        #[test]
        fn valid_tags_are_accepted(tag in "[A-Za-z0-9_][A-Za-z0-9_.\\-]{0,127}") {
            prop_assert!(Tag::parse(&tag).is_ok());
            let reference = format!("localhost:5000/app:{tag}");
            let parsed = image(&reference).map(|r| r.tag().map(String::from));
            prop_assert_eq!(parsed, Ok(Some(tag)));
        }

        #[test]
        fn valid_paths_are_accepted(
            parts in prop::collection::vec("[a-z0-9]{1,5}((\\.|_|__|-{1,3})[a-z0-9]{1,5}){0,2}", 1..4)
        ) {
            let path = parts.join("/");
            prop_assert!(Repository::new(None, &path).is_ok(), "{}", path);
        }

        #[test]
        fn tags_with_other_characters_are_refused(
            head in "[a-z]{0,5}",
            bad in "[^A-Za-z0-9_.\\-]",
            tail in "[a-z]{0,5}",
        ) {
            let tag = format!("{head}{bad}{tail}");
            prop_assert!(Tag::parse(&tag).is_err());
        }
    }
}
