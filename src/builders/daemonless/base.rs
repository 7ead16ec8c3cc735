//! What the daemonless builder must know of a base image, read from its layers without
//! running it: the merged file tree (each layer applied in order, OCI whiteouts and opaque
//! directories honoured), the content of the few files the Dockerfile's steps read or
//! change (`/etc/passwd` and friends, `/etc/skel`, everything under `/root` and `/home`),
//! and version strings found in the Python interpreter, `libpython` and `libc.so.6`.
//!
//! From it come the base's Python for `uv venv --python python3` (looked up on the
//! install step's `PATH`, links followed; its version from its name and the `PY_VERSION`
//! string compiled into it) and its C library (glibc's "release version X.Y" string, or
//! musl's loader), which picks the wheels' platform tag. The tree is cached by the base's
//! manifest digest in the imagespec cache dir: a second build reads no layer.

use base64::Engine as _;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

/// A file's content is kept when it is at most this big…
const MAX_CAPTURED: u64 = 8 << 20;
/// …and while all kept content stays below this (a base with a large `/root` or `/home`,
/// whose files `chown -R` would copy into a layer, is left to dockerd).
const MAX_CAPTURED_TOTAL: u64 = 64 << 20;

/// The kind of a file system entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    File,
    Dir,
    Symlink,
    /// Devices, FIFOs…
    Other,
}

/// One entry of the merged tree.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Node {
    pub kind: Kind,
    /// Permission bits (`0o7777`).
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub size: u64,
    /// A symlink's target, as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

/// The merged file tree of a base image, with the content and strings the builder needs.
/// Paths are relative to `/` (`etc/passwd`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BaseTree {
    pub entries: BTreeMap<String, Node>,
    /// Base64 content of the captured files.
    contents: BTreeMap<String, String>,
    /// Version-like strings found in interpreters and C libraries.
    strings: BTreeMap<String, Vec<String>>,
    /// Files under `/root` or `/home` too big to capture.
    pub uncaptured: BTreeSet<String>,
    /// Bytes captured so far.
    #[serde(default)]
    captured: u64,
}

/// A layer the tree could not be read from.
#[derive(Debug, thiserror::Error)]
#[error("reading a layer of the base image: {0}")]
pub struct LayerError(#[from] std::io::Error);

fn normalize(path: &str) -> String {
    path.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect::<Vec<_>>()
        .join("/")
}

fn parent_of(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(p, _)| p)
}

fn basename(path: &str) -> &str {
    path.rsplit_once('/').map_or(path, |(_, b)| b)
}

/// The files whose content the builder reads (the user database, skeleton, what `chown -R`
/// copies up).
fn wants_content(path: &str) -> bool {
    matches!(
        path,
        "etc/passwd"
            | "etc/group"
            | "etc/shadow"
            | "etc/gshadow"
            | "etc/subuid"
            | "etc/subgid"
            | "etc/login.defs"
            | "etc/default/useradd"
            // What the apt step reads (crate::apt): os-release, apt sources, dpkg status,
            // the keyrings its InRelease files are verified with.
            | "etc/os-release"
            | "usr/lib/os-release"
            | "etc/apt/sources.list"
            | "var/lib/dpkg/status"
            | "etc/apt/trusted.gpg"
            | "var/lib/apt/extended_states"
    ) || [
        "etc/skel/",
        "root/",
        "home/",
        "etc/apt/sources.list.d/",
        "etc/apt/trusted.gpg.d/",
        "etc/apt/keyrings/",
        "usr/share/keyrings/",
    ]
    .iter()
    .any(|p| path.starts_with(p))
}

/// Interpreters and C libraries, whose version strings are kept.
fn wants_strings(path: &str) -> bool {
    let name = basename(path);
    let python = name
        .strip_prefix("python")
        .is_some_and(|v| !v.is_empty() && v.chars().all(|c| c.is_ascii_digit() || c == '.'));
    python || name.starts_with("libpython") && name.contains(".so") || name == "libc.so.6"
}

/// NUL- or control-separated strings of `bytes` that look like a version (`3.11.2`,
/// `3.13.0rc1`) or glibc's "release version 2.36".
fn version_strings(bytes: &[u8]) -> Vec<String> {
    let mut found = BTreeSet::new();
    for piece in bytes.split(|b| *b < 0x20 || *b >= 0x7f) {
        if piece.len() < 5 || piece.len() > 200 {
            continue;
        }
        let Ok(text) = std::str::from_utf8(piece) else {
            continue;
        };
        if let Some(i) = text.find("release version ") {
            let rest = &text[i + "release version ".len()..];
            let v: String = rest
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.')
                .collect();
            found.insert(format!("glibc {}", v.trim_end_matches('.')));
        } else if text.len() <= 16
            && text.split('.').count() == 3
            && text.starts_with(|c: char| c.is_ascii_digit())
            && text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '+')
        {
            found.insert(text.to_string());
        }
        if found.len() >= 64 {
            break;
        }
    }
    found.into_iter().collect()
}

/// Why the base's Python cannot be used by the install step.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PythonError {
    #[error("the base image has no `{exec}` on PATH ({path_var})")]
    NotOnPath { exec: String, path_var: String },
    #[error("cannot tell the Python version of {path} (-> /{real}) from its name or content")]
    Version { path: String, real: String },
}

/// The base's Python, as the install step finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BasePython {
    /// The path found (on `PATH`, links not followed), e.g. `/usr/bin/python3`: what the
    /// venv's `bin/python` points to.
    pub path: String,
    /// `X.Y.Z` (or `X.Y` when no fuller string is compiled in).
    pub version: String,
    /// `X.Y`.
    pub minor: String,
}

/// The base's C library.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Libc {
    Glibc { major: u32, minor: u32 },
    Musl,
}

impl BaseTree {
    /// Applies one layer (an uncompressed tar) on top of the tree.
    pub fn apply_layer(&mut self, layer: impl Read) -> Result<(), LayerError> {
        let mut archive = tar::Archive::new(layer);
        let mut added: BTreeSet<String> = BTreeSet::new();
        for entry in archive.entries()? {
            let mut entry = entry?;
            let raw = entry.path()?.to_string_lossy().into_owned();
            let path = normalize(&raw);
            if path.is_empty() {
                continue;
            }
            let name = basename(&path);
            if name == ".wh..wh..opq" {
                // An opaque directory: what lower layers had in it is gone.
                let dir = parent_of(&path).to_string();
                self.remove_children(&dir, &added);
                continue;
            }
            if let Some(hidden) = name.strip_prefix(".wh.") {
                let parent = parent_of(&path);
                let target = if parent.is_empty() {
                    hidden.to_string()
                } else {
                    format!("{parent}/{hidden}")
                };
                self.remove(&target);
                continue;
            }
            let kind = entry.header().entry_type();
            if kind == tar::EntryType::Link {
                // A hard link: the same file as its target, already in the tree.
                let target = entry
                    .link_name()?
                    .map(|l| normalize(&l.to_string_lossy()))
                    .unwrap_or_default();
                let Some(node) = self.entries.get(&target).cloned() else {
                    continue;
                };
                self.replace(&path, node);
                if let Some(c) = self.contents.get(&target).cloned() {
                    self.contents.insert(path.clone(), c);
                }
                if let Some(s) = self.strings.get(&target).cloned() {
                    self.strings.insert(path.clone(), s);
                }
                added.insert(path);
                continue;
            }
            let header = entry.header();
            let mode = header.mode()? & 0o7777;
            // An empty owner field (some tar writers) is root.
            let uid = header.uid().unwrap_or(0);
            let gid = header.gid().unwrap_or(0);
            let node = match kind {
                tar::EntryType::Directory => Node {
                    kind: Kind::Dir,
                    mode,
                    uid,
                    gid,
                    size: 0,
                    link: None,
                },
                tar::EntryType::Symlink => Node {
                    kind: Kind::Symlink,
                    mode,
                    uid,
                    gid,
                    size: 0,
                    link: entry.link_name()?.map(|l| l.to_string_lossy().into_owned()),
                },
                tar::EntryType::Regular | tar::EntryType::Continuous => Node {
                    kind: Kind::File,
                    mode,
                    uid,
                    gid,
                    size: entry.size(),
                    link: None,
                },
                _ => Node {
                    kind: Kind::Other,
                    mode,
                    uid,
                    gid,
                    size: 0,
                    link: None,
                },
            };
            let size = node.size;
            let is_file = node.kind == Kind::File;
            self.replace(&path, node);
            if is_file && wants_content(&path) {
                if size <= MAX_CAPTURED && self.captured + size <= MAX_CAPTURED_TOTAL {
                    self.captured += size;
                    let mut bytes = Vec::with_capacity(size as usize);
                    entry.read_to_end(&mut bytes)?;
                    let text = base64::engine::general_purpose::STANDARD.encode(&bytes);
                    self.contents.insert(path.clone(), text);
                } else {
                    self.uncaptured.insert(path.clone());
                }
            } else if is_file && wants_strings(&path) {
                let mut bytes = Vec::with_capacity(size as usize);
                entry.read_to_end(&mut bytes)?;
                self.strings.insert(path.clone(), version_strings(&bytes));
            }
            added.insert(path);
        }
        Ok(())
    }

    /// Puts `node` at `path`; a directory replaced by something else takes its children.
    fn replace(&mut self, path: &str, node: Node) {
        if node.kind != Kind::Dir
            && self
                .entries
                .get(path)
                .is_some_and(|old| old.kind == Kind::Dir)
        {
            self.remove_children(path, &BTreeSet::new());
        }
        self.contents.remove(path);
        self.strings.remove(path);
        self.uncaptured.remove(path);
        self.entries.insert(path.to_string(), node);
    }

    fn remove(&mut self, path: &str) {
        self.entries.remove(path);
        self.contents.remove(path);
        self.strings.remove(path);
        self.uncaptured.remove(path);
        self.remove_children(path, &BTreeSet::new());
    }

    /// Removes what is below `dir` (all of it for `""`), except `keep`.
    fn remove_children(&mut self, dir: &str, keep: &BTreeSet<String>) {
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        let below: Vec<String> = self
            .entries
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(k, _)| k.clone())
            .filter(|k| !keep.contains(k))
            .collect();
        for k in below {
            self.entries.remove(&k);
            self.contents.remove(&k);
            self.strings.remove(&k);
            self.uncaptured.remove(&k);
        }
    }

    /// A captured file's content.
    pub fn content(&self, path: &str) -> Option<Vec<u8>> {
        self.contents
            .get(&normalize(path))
            .and_then(|c| base64::engine::general_purpose::STANDARD.decode(c).ok())
    }

    /// The entry at `path` (links not followed).
    pub fn node(&self, path: &str) -> Option<&Node> {
        self.entries.get(&normalize(path))
    }

    /// The entries below `dir` (not `dir` itself), in path order.
    pub fn below<'a>(&'a self, dir: &str) -> impl Iterator<Item = (&'a String, &'a Node)> {
        let prefix = format!("{}/", normalize(dir));
        self.entries
            .range(prefix.clone()..)
            .take_while(move |(k, _)| k.starts_with(&prefix))
    }

    /// `path` with every link followed (as the kernel resolves it, at most 40 links), and
    /// its entry; `None` when it does not exist.
    pub fn resolve(&self, path: &str) -> Option<(String, &Node)> {
        let mut pending: Vec<String> = normalize(path)
            .split('/')
            .filter(|c| !c.is_empty())
            .rev()
            .map(str::to_string)
            .collect();
        let mut done: Vec<String> = Vec::new();
        let mut links = 0;
        while let Some(part) = pending.pop() {
            if part == ".." {
                done.pop();
                continue;
            }
            done.push(part);
            let here = done.join("/");
            // A directory a layer only implies (it has entries below, but none of its own)
            // is still a directory.
            let Some(node) = self.entries.get(&here) else {
                continue;
            };
            if node.kind == Kind::Symlink {
                links += 1;
                if links > 40 {
                    return None;
                }
                let target = node.link.clone().unwrap_or_default();
                done.pop();
                if target.starts_with('/') {
                    done.clear();
                }
                pending.extend(
                    target
                        .split('/')
                        .filter(|c| !c.is_empty() && *c != ".")
                        .rev()
                        .map(str::to_string),
                );
            }
        }
        let path = done.join("/");
        let node = self.entries.get(&path)?;
        Some((path, node))
    }

    /// An executable found as a shell finds `name` on `path_var` (`/`-containing names as
    /// they are): the path as found, links not followed.
    pub fn executable(&self, name: &str, path_var: &str) -> Option<String> {
        let candidates: Vec<String> = if name.contains('/') {
            vec![format!("/{}", normalize(name))]
        } else {
            path_var
                .split(':')
                .filter(|d| d.starts_with('/'))
                .map(|d| format!("{}/{name}", d.trim_end_matches('/')))
                .collect()
        };
        candidates.into_iter().find(|c| {
            self.resolve(c)
                .is_some_and(|(_, n)| n.kind == Kind::File && n.mode & 0o111 != 0)
        })
    }

    /// The base's Python for `uv venv --python EXEC`, or why there is none.
    pub fn python(&self, exec: &str, path_var: &str) -> Result<BasePython, PythonError> {
        let Some(path) = self.executable(exec, path_var) else {
            return Err(PythonError::NotOnPath {
                exec: exec.to_string(),
                path_var: path_var.to_string(),
            });
        };
        let (real, _) = self.resolve(&path).expect("found above");
        let name = basename(&real);
        let from_name = name.strip_prefix("python").and_then(|v| {
            let (major, minor) = v.split_once('.')?;
            (major.parse::<u32>().is_ok() && minor.parse::<u32>().is_ok())
                .then(|| format!("{major}.{minor}"))
        });
        let own: Vec<&String> = self.strings.get(&real).into_iter().flatten().collect();
        let minor = match from_name {
            Some(m) => m,
            None => own
                .iter()
                .find_map(|s| {
                    let mut parts = s.split('.');
                    let (a, b) = (parts.next()?, parts.next()?);
                    (a == "3" && b.parse::<u32>().is_ok()).then(|| format!("{a}.{b}"))
                })
                .ok_or_else(|| PythonError::Version {
                    path: path.clone(),
                    real: real.clone(),
                })?,
        };
        // PY_VERSION ("3.11.2") is compiled into the interpreter, or into libpython when the
        // interpreter links it.
        let prefix = format!("{minor}.");
        let full = |strings: &[&String]| {
            strings
                .iter()
                .find(|s| {
                    s.strip_prefix(&prefix)
                        .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
                })
                .map(|s| s.to_string())
        };
        let libpython = format!("libpython{minor}");
        let version = full(&own)
            .or_else(|| {
                self.strings
                    .iter()
                    .filter(|(p, _)| basename(p).starts_with(&libpython))
                    .find_map(|(_, s)| full(&s.iter().collect::<Vec<_>>()))
            })
            .unwrap_or_else(|| minor.clone());
        Ok(BasePython {
            path,
            version,
            minor,
        })
    }

    /// The base's C library, when it has one imagespec recognises.
    pub fn libc(&self) -> Option<Libc> {
        if self
            .entries
            .keys()
            .any(|p| basename(p).starts_with("ld-musl-"))
        {
            return Some(Libc::Musl);
        }
        self.strings
            .iter()
            .filter(|(p, _)| basename(p) == "libc.so.6")
            .flat_map(|(_, s)| s)
            .find_map(|s| {
                let v = s.strip_prefix("glibc ")?;
                let (major, minor) = v.split_once('.')?;
                Some(Libc::Glibc {
                    major: major.parse().ok()?,
                    minor: minor.split('.').next()?.parse().ok()?,
                })
            })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn a_python_is_found_through_its_link() {
        let mut tree = BaseTree::default();
        let mut tar = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o755);
        h.set_size(7);
        tar.append_data(&mut h, "usr/bin/python3.11", &b"\x003.11.9\x00"[..])
            .unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_mode(0o777);
        h.set_size(0);
        tar.append_link(&mut h, "usr/bin/python3", "python3.11")
            .unwrap();
        tree.apply_layer(&tar.into_inner().unwrap()[..]).unwrap();
        let python = tree.python("python3", "/usr/local/bin:/usr/bin").unwrap();
        assert_eq!(
            (python.path.as_str(), python.version.as_str()),
            ("/usr/bin/python3", "3.11.9")
        );
    }

    /// A layer tar from (path, kind, content or link target).
    /// A tree of one layer of `entries` (as [`layer`] takes them).
    pub(crate) fn tree(entries: &[(&str, char, &str)]) -> BaseTree {
        let mut t = BaseTree::default();
        t.apply_layer(&layer(entries)[..]).unwrap();
        t
    }

    pub(crate) fn layer(entries: &[(&str, char, &str)]) -> Vec<u8> {
        let mut tar = tar::Builder::new(Vec::new());
        for (path, kind, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_uid(0);
            h.set_gid(0);
            match kind {
                'd' => {
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_mode(0o755);
                    h.set_size(0);
                    tar.append_data(&mut h, path, std::io::empty()).unwrap();
                }
                'l' => {
                    h.set_entry_type(tar::EntryType::Symlink);
                    h.set_mode(0o777);
                    h.set_size(0);
                    tar.append_link(&mut h, path, data).unwrap();
                }
                'h' => {
                    h.set_entry_type(tar::EntryType::Link);
                    h.set_size(0);
                    tar.append_link(&mut h, path, data).unwrap();
                }
                'x' | 'f' => {
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_mode(if *kind == 'x' { 0o755 } else { 0o644 });
                    h.set_size(data.len() as u64);
                    tar.append_data(&mut h, path, data.as_bytes()).unwrap();
                }
                _ => unreachable!(),
            }
        }
        tar.into_inner().unwrap()
    }

    #[test]
    fn whiteouts_and_opaque_directories_hide_lower_layers() {
        let mut t = tree(&[
            ("etc", 'd', ""),
            ("etc/passwd", 'f', "root:x:0:0::/root:/bin/sh\n"),
            ("opt/a/1", 'f', "1"),
            ("opt/a/2", 'f', "2"),
            ("opt/b/3", 'f', "3"),
            ("root/.profile", 'f', "p"),
        ]);
        t.apply_layer(
            &layer(&[
                ("opt/a/.wh..wh..opq", 'f', ""),
                ("opt/a/new", 'f', "n"),
                ("opt/.wh.b", 'f', ""),
                ("root/.wh..profile", 'f', ""),
            ])[..],
        )
        .unwrap();
        let paths: Vec<&str> = t.entries.keys().map(String::as_str).collect();
        assert_eq!(paths, ["etc", "etc/passwd", "opt/a/new"]);
        assert_eq!(
            t.content("/etc/passwd").unwrap(),
            b"root:x:0:0::/root:/bin/sh\n"
        );
        assert_eq!(t.content("root/.profile"), None, "removed with its file");
    }

    #[test]
    fn links_resolve_through_usr_merge_and_relative_targets() {
        let t = tree(&[
            ("bin", 'l', "usr/bin"),
            ("usr/bin/python3.12", 'x', "\u{0}3.12.7\u{0}"),
            ("usr/bin/python3", 'l', "python3.12"),
            ("usr/local/bin/py", 'l', "../../bin/python3"),
            ("usr/local/bin/loop", 'l', "loop"),
            ("usr/bin/hard", 'h', "usr/bin/python3.12"),
        ]);
        assert_eq!(t.resolve("/bin/python3").unwrap().0, "usr/bin/python3.12");
        assert_eq!(
            t.resolve("/usr/local/bin/py").unwrap().0,
            "usr/bin/python3.12"
        );
        assert!(t.resolve("/usr/local/bin/loop").is_none());
        assert_eq!(
            t.executable("python3", "/usr/local/bin:/bin:/usr/bin"),
            Some("/bin/python3".to_string()),
            "the first PATH entry that has it, as found"
        );
        let p = t.python("python3", "/usr/bin").unwrap();
        assert_eq!(
            (p.path.as_str(), p.version.as_str(), p.minor.as_str()),
            ("/usr/bin/python3", "3.12.7", "3.12")
        );
        assert_eq!(t.node("usr/bin/hard").unwrap().kind, Kind::File);
        let missing = t.python("python3", "/opt/bin").unwrap_err().to_string();
        assert!(missing.contains("no `python3` on PATH"), "{missing}");
    }

    #[test]
    fn the_version_comes_from_libpython_when_the_interpreter_links_it() {
        let t = tree(&[
            ("usr/local/bin/python3.11", 'x', "ELF small"),
            ("usr/local/bin/python3", 'l', "python3.11"),
            (
                "usr/local/lib/libpython3.11.so.1.0",
                'x',
                "x\u{0}3.11.9\u{0}%.80s (%.80s) %.80s\u{0}",
            ),
            ("usr/bin/python3", 'f', "not executable"),
        ]);
        let p = t.python("python3", "/usr/bin:/usr/local/bin").unwrap();
        assert_eq!(
            (p.path.as_str(), p.version.as_str()),
            ("/usr/local/bin/python3", "3.11.9")
        );
        assert_eq!(t.libc(), None);
    }

    #[test]
    fn glibc_and_musl_are_recognised() {
        let t = tree(&[
            ("lib", 'l', "usr/lib"),
            (
                "usr/lib/x86_64-linux-gnu/libc.so.6",
                'x',
                "\u{0}GNU C Library (Debian GLIBC 2.36-9+deb12u13) stable release version 2.36.\u{0}",
            ),
        ]);
        assert_eq!(
            t.libc(),
            Some(Libc::Glibc {
                major: 2,
                minor: 36
            })
        );
        let m = tree(&[("lib/ld-musl-x86_64.so.1", 'x', "")]);
        assert_eq!(m.libc(), Some(Libc::Musl));
    }

    #[test]
    fn the_tree_round_trips_through_the_cache_format() {
        let t = tree(&[
            ("etc/group", 'f', "root:x:0:\n"),
            ("usr/bin/python3", 'x', "\u{0}3.9.2\u{0}"),
        ]);
        let json = serde_json::to_string(&t).unwrap();
        let back: BaseTree = serde_json::from_str(&json).unwrap();
        assert_eq!(back, t);
        assert_eq!(back.content("etc/group").unwrap(), b"root:x:0:\n");
    }
}
