//! flytekit's `IgnoreGroup([GitIgnore, DockerIgnore, StandardIgnore])`, rule for rule.
//!
//! - Git: flytekit asks `git ls-files -io --exclude-standard` (in `source_root`) for the
//!   untracked ignored files and compares each path against that list. We run the same git
//!   command rather than re-implementing gitignore, because parity includes git's own
//!   behaviour: tracked files are never ignored, `.git/info/exclude` and `core.excludesFile`
//!   apply, nothing applies outside a work tree, and git quotes unusual names (so such files
//!   are never matched: a flytekit quirk reproduced here).
//! - Docker: docker-py's `PatternMatcher` over `.dockerignore` (see [`super::fnmatch`]).
//! - Standard: `*.pyc`, `.cache`, `.cache/*`, `__pycache__/*`, `**/__pycache__/*` with the
//!   standard library's fnmatch.
//!
//! Paths reach the matchers as flytekit passes them: relative to the root when `source_root`
//! is absolute, but as walked (`./pkg/x.py`, `src/pkg/x.py`) when it is relative.

use super::fnmatch::{self, Glob, PatternError};
use super::pypath;
use std::collections::HashSet;
use std::path::Path;
use std::process::Command;

/// flytekit's `STANDARD_IGNORE_PATTERNS`.
pub const STANDARD_PATTERNS: [&str; 5] = [
    "*.pyc",
    ".cache",
    ".cache/*",
    "__pycache__/*",
    "**/__pycache__/*",
];

/// The combined ignore rules for one `source_root`.
#[derive(Debug)]
pub struct IgnoreGroup {
    root: String,
    root_dir: std::path::PathBuf,
    /// git's answer, asked in the background while the tree is walked (see [`Git`]).
    git: Git,
    /// `git ls-files -io --exclude-standard --directory`, asked only when a walked path,
    /// joined to the root again, names a directory (see [`IgnoreGroup::git`]).
    git_ignored_dirs: std::sync::OnceLock<HashSet<String>>,
    docker: Vec<DockerPattern>,
    standard: Vec<Glob>,
    dockerignore: String,
}

/// `git ls-files -io --exclude-standard`, started at once and read when first needed.
#[derive(Debug)]
struct Git {
    child: std::sync::Mutex<Option<std::process::Child>>,
    answer: std::sync::OnceLock<(HashSet<String>, String)>,
}

impl Git {
    fn start(dir: &Path) -> Git {
        let child = Command::new("git")
            .args(["ls-files", "-io", "--exclude-standard"])
            .current_dir(dir)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .ok();
        Git {
            child: std::sync::Mutex::new(child),
            answer: std::sync::OnceLock::new(),
        }
    }

    fn answer(&self) -> &(HashSet<String>, String) {
        self.answer.get_or_init(|| {
            let child = self.child.lock().ok().and_then(|mut c| c.take());
            match child.map(|c| c.wait_with_output()) {
                Some(Ok(out)) if out.status.success() => split_git_output(&out.stdout),
                _ => (HashSet::new(), String::new()),
            }
        })
    }
}

#[derive(Debug)]
struct DockerPattern {
    exclusion: bool,
    dirs: usize,
    glob: Glob,
}

impl IgnoreGroup {
    /// Loads the rules for `root` (as written in the spec), `cwd` anchoring relative paths.
    pub fn new(root: &str, cwd: &Path) -> Result<IgnoreGroup, PatternError> {
        let root_dir = cwd.join(root);
        let git = Git::start(&root_dir);
        let dockerignore = std::fs::read_to_string(root_dir.join(".dockerignore")).ok();
        let mut docker = Vec::new();
        let lines = dockerignore
            .as_deref()
            .map(python_readlines)
            .unwrap_or_default();
        for line in lines
            .iter()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| python_strip(l))
        {
            if let Some(p) = docker_pattern(line)? {
                docker.push(p);
            }
        }
        // docker-py always appends `!.dockerignore`.
        docker.push(docker_pattern("!.dockerignore")?.expect("non-empty pattern"));
        let standard = STANDARD_PATTERNS
            .iter()
            .map(|p| fnmatch::python(p))
            .collect::<Result<_, _>>()?;
        Ok(IgnoreGroup {
            root: root.to_string(),
            root_dir,
            git_ignored_dirs: std::sync::OnceLock::new(),
            git,
            docker,
            standard,
            dockerignore: dockerignore.unwrap_or_default(),
        })
    }

    /// `IgnoreGroup.is_ignored(path)` for a path as flytekit's walk produced it (`walked`),
    /// with `rel` = `os.path.relpath(walked, root)`, which flytekit substitutes for absolute
    /// paths.
    pub fn is_ignored(&self, walked: &str, rel: &str) -> bool {
        self.is_ignored_by_patterns(walked, rel) || self.is_ignored_by_git(walked, rel)
    }

    /// The `.dockerignore` and standard rules only (no need to wait for git).
    pub fn is_ignored_by_patterns(&self, walked: &str, rel: &str) -> bool {
        let path = if pypath::isabs(walked) { rel } else { walked };
        self.docker(path) || self.standard.iter().any(|g| g.matches(path))
    }

    /// The `.gitignore` rules (waits for git's answer).
    pub fn is_ignored_by_git(&self, walked: &str, rel: &str) -> bool {
        let path = if pypath::isabs(walked) { rel } else { walked };
        self.git(path, rel)
    }

    /// Everything the rules depend on besides the file list, for caching digests.
    pub fn fingerprint(&self) -> String {
        format!("{}\0{}", self.git.answer().1, self.dockerignore)
    }

    /// flytekit's `GitIgnore._is_ignored`: the path is in git's ignored list; or, when
    /// `os.path.join(root, path)` is a directory (possible only with a relative root other
    /// than `.`, where the walked path `src/a` is joined again to `src/src/a`), its `dir/`
    /// form is in git's ignored directories. A quirk, reproduced because it decides the tag.
    fn git(&self, path: &str, rel: &str) -> bool {
        let ignored = &self.git.answer().0;
        if ignored.is_empty() {
            return false;
        }
        let posix = pypath::pure_posix(path);
        if ignored.contains(&posix) {
            return true;
        }
        let joined = pypath::join(&self.root, path);
        if pypath::normpath(&joined) == pypath::normpath(&pypath::join(&self.root, rel)) {
            // That is the walked file itself, not a directory.
            return false;
        }
        let Some(below) = joined.strip_prefix(&self.root) else {
            return false;
        };
        if !self.root_dir.join(below.trim_start_matches('/')).is_dir() {
            return false;
        }
        let dirs = self
            .git_ignored_dirs
            .get_or_init(|| git_ignored_files(&self.root_dir, true).0);
        !dirs.is_empty() && dirs.contains(&format!("{posix}/"))
    }

    /// docker-py `PatternMatcher.matches`: the last matching pattern decides.
    fn docker(&self, path: &str) -> bool {
        let parent = pypath::dirname(path);
        let parent_dirs: Vec<&str> = parent
            .split('/')
            .filter(|p| !p.is_empty() && *p != ".")
            .collect();
        let mut matched = false;
        for p in &self.docker {
            let mut hit = p.glob.matches(path);
            if !hit && !parent.is_empty() && p.dirs <= parent_dirs.len() {
                hit = p.glob.matches(&parent_dirs[..p.dirs].join("/"));
            }
            if hit {
                matched = !p.exclusion;
            }
        }
        matched
    }
}

/// docker-py `Pattern(...)`; `None` for a pattern with no path components (docker-py drops it).
fn docker_pattern(text: &str) -> Result<Option<DockerPattern>, PatternError> {
    let (exclusion, rest) = match text.strip_prefix('!') {
        Some(r) => (true, r),
        None => (false, text),
    };
    let mut dirs: Vec<&str> = python_strip(rest)
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    let mut i = 0;
    while i < dirs.len() {
        if dirs[i] == ".." {
            dirs.remove(i);
            if i > 0 {
                dirs.remove(i - 1);
                i -= 1;
            }
        } else {
            i += 1;
        }
    }
    if dirs.is_empty() {
        return Ok(None);
    }
    let glob = fnmatch::docker_py(&dirs.join("/"))?;
    Ok(Some(DockerPattern {
        exclusion,
        dirs: dirs.len(),
        glob,
    }))
}

/// Python's `f.readlines()`: lines keep their `\n`, and `\r\n`/`\r` end lines too
/// (universal newlines), all translated to `\n`.
pub(crate) fn python_readlines(text: &str) -> Vec<String> {
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    text.split_inclusive('\n').map(str::to_string).collect()
}

/// Python's `str.strip()` (Unicode whitespace).
pub(crate) fn python_strip(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c))
}

/// `git ls-files -io --exclude-standard [--directory]` in `dir`, split as flytekit splits it.
fn git_ignored_files(dir: &Path, directories: bool) -> (HashSet<String>, String) {
    let mut cmd = Command::new("git");
    cmd.args(["ls-files", "-io", "--exclude-standard"])
        .current_dir(dir);
    if directories {
        cmd.arg("--directory");
    }
    match cmd.output() {
        Ok(out) if out.status.success() => split_git_output(&out.stdout),
        _ => (HashSet::new(), String::new()),
    }
}

/// `stdout.decode().split("\n")[:-1]`, as flytekit splits git's answer.
fn split_git_output(stdout: &[u8]) -> (HashSet<String>, String) {
    let text = String::from_utf8_lossy(stdout).into_owned();
    let mut lines: Vec<&str> = text.split('\n').collect();
    lines.pop();
    (lines.into_iter().map(str::to_string).collect(), text)
}
