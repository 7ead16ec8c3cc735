//! Where the source files and `copy` entries go, for both plans: the context files a builder
//! reads them from, what each puts under `/root`, and the checks flytekit's
//! `create_docker_context` (and its envd plugin's `create_envd_config`) make on the way —
//! an entry must be relative and stay below the spec's directory, and nothing may be
//! written outside the context or `/root`.
//!
//! flytekit's own contexts (`compat`) get what `shutil.copytree` copies (directory links
//! followed, empty directories kept); imagespec's get exactly the files the tag hashed.
//!
//! ```text
//! copy = ["data/", "cfg/app.toml"]   (prefix "copy/")
//!   context: copy/data/…, copy/cfg/app.toml
//!   steps:   CopyStep { from: "copy/data", to: "data" }, CopyStep { from: "copy/cfg/app.toml", to: "cfg" }
//! ```

use super::image::ContextFile;
use super::{Misplaced, PlanError};
use crate::source::layer::{RootEntry, is_whiteout};
use crate::source::untrusted::Root;
use crate::source::{CopyEntry, LinkPolicy, SourceSet};
use crate::spec::NormalizedSpec;
use crate::tag::ImageTag;
use std::path::{Path, PathBuf};

/// One copy into `/root`: the context path `from` (a file or a directory) goes into the
/// directory `/root/<to>` (`to` is relative to `/root`, `.` for `/root` itself). A builder
/// writes it as it copies (a Dockerfile `COPY`, an envd `io.copy`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyStep {
    /// The path in the build context, `/`-separated.
    pub from: String,
    /// The directory under `/root` it is copied into, `/`-separated.
    pub to: String,
}

/// Puts the source files into the context under `prefix` (`src/`, `root/`, or nothing) and
/// records each under `/root` (at its path relative to `source_root`).
pub(super) fn place_source(
    set: &SourceSet,
    prefix: &str,
    files: &mut Vec<ContextFile>,
    root: &mut Vec<RootEntry>,
) {
    for f in &set.files {
        files.push(ContextFile::Copy {
            from: f.path.clone(),
            to: format!("{prefix}{}", f.rel),
        });
        root.push(RootEntry::File {
            to: f.rel.clone(),
            from: f.path.clone(),
        });
    }
}

/// Places the `copy` entries of `tag` in the context under `prefix` (`copy/`, `root/`, or
/// nothing), each checked, and returns one [`CopyStep`] per entry, in the spec's order.
/// With `compat`, a directory gets what flytekit's `shutil.copytree` copies; otherwise
/// exactly the files the tag hashed, so the image cannot change without its tag changing.
pub(super) fn place_copies(
    spec: &NormalizedSpec,
    tag: &ImageTag,
    prefix: &str,
    compat: bool,
    files: &mut Vec<ContextFile>,
    root: &mut Vec<RootEntry>,
) -> Result<Vec<CopyStep>, PlanError> {
    let Some(set) = &tag.copy else {
        return Ok(Vec::new());
    };
    let links = compat.then_some(set.links);
    set.entries
        .iter()
        .map(|entry| place_copy(spec, entry, prefix, links, files, root))
        .collect()
}

/// One `copy` entry (see [`place_copies`]); `links`: flytekit's copytree under this policy.
fn place_copy(
    spec: &NormalizedSpec,
    entry: &CopyEntry,
    prefix: &str,
    links: Option<LinkPolicy>,
    files: &mut Vec<ContextFile>,
    root: &mut Vec<RootEntry>,
) -> Result<CopyStep, PlanError> {
    let written = &entry.written;
    let parts = posix_parts(written);
    if written.starts_with('/') || parts.contains(&"..") {
        return Err(PlanError::CopyPath {
            at: spec.copy_entry_at(written),
            name: spec.name().to_string(),
            entry: written.clone(),
        });
    }
    let (posix, parent) = posix_and_parent(&parts);
    let in_context = format!("{prefix}{posix}");
    if entry.is_dir {
        match links {
            Some(links) => copy_tree(spec, entry, &in_context, links, files)?,
            None => {
                files.push(ContextFile::Dir {
                    to: in_context.trim_end_matches("/.").to_string(),
                });
                for (rel, from) in &entry.files {
                    files.push(ContextFile::Copy {
                        from: from.clone(),
                        to: format!("{in_context}/{rel}"),
                    });
                }
            }
        }
        root.push(RootEntry::Dir { to: posix.clone() });
        for (rel, from) in &entry.files {
            root.push(RootEntry::File {
                to: format!("{posix}/{rel}"),
                from: from.clone(),
            });
        }
        Ok(CopyStep {
            from: in_context,
            to: posix,
        })
    } else if let Some((_, from)) = entry.files.first() {
        files.push(ContextFile::Copy {
            from: from.clone(),
            to: in_context.clone(),
        });
        root.push(RootEntry::File {
            to: posix,
            from: from.clone(),
        });
        Ok(CopyStep {
            from: in_context,
            to: parent,
        })
    } else {
        Err(PlanError::CopyMissing {
            at: spec.copy_entry_at(written),
            name: spec.name().to_string(),
            entry: written.clone(),
            dir: spec.dir().to_path_buf(),
        })
    }
}

/// pathlib's `PurePosixPath(p).as_posix()` and its `.parts`.
pub(super) fn posix_parts(p: &str) -> Vec<&str> {
    p.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect()
}

/// The path of `parts` and of its parent directory, as pathlib writes them (`.` when empty).
fn posix_and_parent(parts: &[&str]) -> (String, String) {
    let posix = if parts.is_empty() {
        ".".to_string()
    } else {
        parts.join("/")
    };
    let parent = if parts.len() <= 1 {
        ".".to_string()
    } else {
        parts[..parts.len() - 1].join("/")
    };
    (posix, parent)
}

/// What flytekit's `shutil.copytree(dir, <context>/to, dirs_exist_ok=True)` puts in the
/// context for the `copy` directory `entry`: every directory (empty ones too) and file,
/// links to files and directories followed — but, as for the tag, not out of the entry
/// unless `links` allows it (flytekit follows `data/etc -> /etc` and copies all of it).
/// A dangling link, a special file (socket, FIFO, device) or a directory link loop fails the
/// copy, as copytree raises `shutil.Error`.
fn copy_tree(
    spec: &NormalizedSpec,
    entry: &CopyEntry,
    to: &str,
    links: LinkPolicy,
    files: &mut Vec<ContextFile>,
) -> Result<(), PlanError> {
    let refused = |source| PlanError::CopyLink {
        at: spec.copy_entry_at(&entry.written),
        name: spec.name().to_string(),
        entry: entry.written.clone(),
        source: Box::new(source),
    };
    let root = Root::new(&entry.path, links).map_err(refused)?;
    copytree(&entry.path, to, files, &mut Vec::new(), &root).map_err(|e| match e {
        Copytree::Fails(path) => PlanError::CopySpecial {
            at: spec.copy_entry_at(&entry.written),
            name: spec.name().to_string(),
            entry: entry.written.clone(),
            path,
        },
        Copytree::Refused(source) => refused(source),
    })
}

enum Copytree {
    /// copytree raises here.
    Fails(PathBuf),
    /// A link out of the entry.
    Refused(crate::source::SourceError),
}

fn copytree(
    dir: &Path,
    to: &str,
    files: &mut Vec<ContextFile>,
    ancestors: &mut Vec<PathBuf>,
    root: &Root,
) -> Result<(), Copytree> {
    let real = std::fs::canonicalize(dir).map_err(|_| Copytree::Fails(dir.to_path_buf()))?;
    if ancestors.contains(&real) {
        return Err(Copytree::Fails(dir.to_path_buf()));
    }
    ancestors.push(real);
    files.push(ContextFile::Dir { to: to.to_string() });
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|_| Copytree::Fails(dir.to_path_buf()))?
        .flatten()
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let target = format!("{to}/{}", entry.file_name().to_string_lossy());
        if entry.file_type().is_ok_and(|t| t.is_symlink()) {
            root.check_link(&path).map_err(Copytree::Refused)?;
        }
        // Follows links, as copytree(symlinks=False) does.
        let meta = std::fs::metadata(&path).map_err(|_| Copytree::Fails(path.clone()))?;
        if meta.is_dir() {
            copytree(&path, &target, files, ancestors, root)?;
        } else if meta.is_file() {
            files.push(ContextFile::Copy {
                from: path,
                to: target,
            });
        } else {
            return Err(Copytree::Fails(path));
        }
    }
    ancestors.pop();
    Ok(())
}

/// Whether `to` (relative to the context, `/`-separated) stays inside it once `.` and `..`
/// are resolved: a module path `src/../../x` would be written beside the context, and land
/// beside `/root` in the image.
fn inside_context(to: &str) -> bool {
    if to.starts_with('/') {
        return false;
    }
    let mut depth = 0usize;
    for part in to.split('/') {
        match part {
            "" | "." => {}
            ".." if depth == 0 => return false,
            ".." => depth -= 1,
            _ => depth += 1,
        }
    }
    true
}

/// Refuses a plan that would write a file outside its context (or outside `/root`), or one
/// whose name a layer would read as a whiteout.
pub(super) fn check_inside(
    spec: &NormalizedSpec,
    files: &[ContextFile],
    root_entries: &[RootEntry],
) -> Result<(), PlanError> {
    let refuse = |why, to: String, from: Option<&PathBuf>| PlanError::Placement {
        at: spec.at("source_root"),
        name: spec.name().to_string(),
        to,
        from: from.cloned(),
        why,
    };
    let outside = |to: &str, from| refuse(Misplaced::OutsideContext, to.to_string(), from);
    let whiteout = |to: String, from| refuse(Misplaced::Whiteout, to, from);
    for file in files {
        match file {
            ContextFile::Copy { from, to } if is_whiteout(to) => {
                return Err(whiteout(to.clone(), Some(from)));
            }
            ContextFile::Content { to, .. } | ContextFile::Dir { to } if is_whiteout(to) => {
                return Err(whiteout(to.clone(), None));
            }
            ContextFile::Copy { from, to } if !inside_context(to) => {
                return Err(outside(to, Some(from)));
            }
            ContextFile::Content { to, .. } | ContextFile::Dir { to } if !inside_context(to) => {
                return Err(outside(to, None));
            }
            _ => {}
        }
    }
    for entry in root_entries {
        match entry {
            RootEntry::File { to, from } if is_whiteout(to) => {
                return Err(whiteout(format!("/root/{to}"), Some(from)));
            }
            RootEntry::Dir { to } if is_whiteout(to) => {
                return Err(whiteout(format!("/root/{to}"), None));
            }
            RootEntry::File { to, from } if !inside_context(to) => {
                return Err(outside(&format!("/root/{to}"), Some(from)));
            }
            RootEntry::Dir { to } if !inside_context(to) => {
                return Err(outside(&format!("/root/{to}"), None));
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_a_layer_reads_as_a_whiteout_is_refused_wherever_it_is_copied() {
        for name in [".wh.app.py", "pkg/.wh..wh..opq", ".wh.pkg/x.py"] {
            assert!(is_whiteout(name), "{name}");
        }
        for name in ["x.wh.py", "pkg/wh.x", ".whx", "a/.w.h/b"] {
            assert!(!is_whiteout(name), "{name}");
        }
        let spec_file =
            crate::SpecFile::parse(Path::new("/p/spec.toml"), "name = \"i\"\n").unwrap();
        let (_, spec) = spec_file.select(None).unwrap();
        let copied = ContextFile::Copy {
            from: PathBuf::from("/m/.wh.app.py"),
            to: "src/.wh.app.py".into(),
        };
        let err = check_inside(spec, &[copied], &[]).unwrap_err().to_string();
        assert!(
            err.contains("/m/.wh.app.py would be written to `src/.wh.app.py`"),
            "{err}"
        );
        assert!(err.contains("OCI whiteout"), "{err}");
        let layered = RootEntry::File {
            to: ".wh.pkg/x.py".into(),
            from: PathBuf::from("/m/.wh.pkg/x.py"),
        };
        let err = check_inside(spec, &[], &[layered]).unwrap_err().to_string();
        assert!(err.contains("written to `/root/.wh.pkg/x.py`"), "{err}");
        let dir = RootEntry::Dir {
            to: "pkg/.wh..wh..opq".into(),
        };
        let err = check_inside(spec, &[], &[dir]).unwrap_err().to_string();
        assert!(err.contains("the path `/root/pkg/.wh..wh..opq`"), "{err}");
    }

    #[test]
    fn context_paths_stay_inside_once_dots_are_resolved() {
        for inside in ["src/a.py", "src/./a.py", "src/pkg/../a.py", "copy/x/", "."] {
            assert!(inside_context(inside), "{inside}");
        }
        for outside in ["src/../../payload.txt", "../x", "/etc/passwd", "a/../../b"] {
            assert!(!inside_context(outside), "{outside}");
        }
        let file = |to: &str| ContextFile::Copy {
            from: PathBuf::from("/m/x.py"),
            to: to.into(),
        };
        let spec_file =
            crate::SpecFile::parse(Path::new("/p/spec.toml"), "name = \"i\"\n").unwrap();
        let (_, spec) = spec_file.select(None).unwrap();
        assert!(check_inside(spec, &[file("src/x.py")], &[]).is_ok());
        let err = check_inside(spec, &[file("src/../../x.py")], &[]).unwrap_err();
        assert!(
            err.to_string().contains("/m/x.py would be written to"),
            "{err}"
        );
        let layer = RootEntry::File {
            to: "../etc/cron.d/x".into(),
            from: PathBuf::from("/m/x"),
        };
        let err = check_inside(spec, &[], &[layer]).unwrap_err();
        assert!(err.to_string().contains("/root/../etc/cron.d/x"), "{err}");
    }

    #[test]
    fn paths_are_written_as_pathlib_writes_them() {
        assert_eq!(posix_parts("./a//b/./c/"), ["a", "b", "c"]);
        let pair = |p: &str| posix_and_parent(&posix_parts(p));
        assert_eq!(pair("a/b/c.txt"), ("a/b/c.txt".into(), "a/b".into()));
        assert_eq!(pair("c.txt"), ("c.txt".into(), ".".into()));
        assert_eq!(pair("."), (".".into(), ".".into()));
    }

    /// The spec in a directory holding `data/{a,b}.txt` and `cfg/app.toml`.
    fn placed(prefix: &str, compat: bool) -> (Vec<CopyStep>, Vec<ContextFile>, Vec<RootEntry>) {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("data")).unwrap();
        std::fs::create_dir_all(d.join("cfg")).unwrap();
        for f in ["data/a.txt", "data/b.txt", "cfg/app.toml"] {
            std::fs::write(d.join(f), "x").unwrap();
        }
        let toml = "name = \"i\"\ncopy = [\"data/\", \"cfg/app.toml\"]\n";
        std::fs::write(d.join("spec.toml"), toml).unwrap();
        let file = crate::load(&d.join("spec.toml")).unwrap();
        let (_, spec) = file.select(None).unwrap();
        let tag = crate::tag::compute(spec, &Default::default()).unwrap();
        let (mut files, mut root) = (Vec::new(), Vec::new());
        let steps = place_copies(spec, &tag, prefix, compat, &mut files, &mut root).unwrap();
        (steps, files, root)
    }

    #[test]
    fn copy_entries_become_one_step_each_and_their_files() {
        let (steps, files, root) = placed("copy/", false);
        let step = |from: &str, to: &str| CopyStep {
            from: from.into(),
            to: to.into(),
        };
        assert_eq!(
            steps,
            [step("copy/data", "data"), step("copy/cfg/app.toml", "cfg")]
        );
        let to: Vec<String> = files
            .iter()
            .map(|f| match f {
                ContextFile::Copy { to, .. } => to.clone(),
                ContextFile::Dir { to } => format!("{to}/"),
                ContextFile::Content { to, .. } => to.clone(),
            })
            .collect();
        assert_eq!(
            to,
            [
                "copy/data/",
                "copy/data/a.txt",
                "copy/data/b.txt",
                "copy/cfg/app.toml"
            ]
        );
        let in_root: Vec<String> = root
            .iter()
            .map(|e| match e {
                RootEntry::File { to, .. } => to.clone(),
                RootEntry::Dir { to } => format!("{to}/"),
            })
            .collect();
        assert_eq!(
            in_root,
            ["data/", "data/a.txt", "data/b.txt", "cfg/app.toml"]
        );
        // flytekit's context: at the root, as copytree copies.
        let (compat, _, _) = placed("", true);
        assert_eq!(compat, [step("data", "data"), step("cfg/app.toml", "cfg")]);
    }
}
