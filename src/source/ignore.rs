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
//! is absolute, but as walked (`./pkg/x.py`, `src/pkg/x.py`) when it is relative. That
//! decides the tag; what is *copied* is judged by the rules as written, on paths relative to
//! the root ([`IgnoreGroup::rules_exclude`]), so a `.env` the user excluded never ships.
//!
//! git runs on the source tree, which may be an attacker's: its repository configuration must
//! not run programs. [`git_ls_files`] turns off every setting `ls-files` would execute or
//! follow (see there), and a git that never answers (a `.gitignore` that is a FIFO) is
//! stopped after [`GIT_TIMEOUT`].

use super::SourceError;
use super::untrusted::{self, Root};
use crate::py::fnmatch::{self, Glob, PatternError};
use crate::py::path as pypath;
use crate::py::text::{python_readlines, python_strip};
use std::collections::HashSet;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// How long git may take to list the ignored files before the walk gives up on it.
pub const GIT_TIMEOUT: Duration = Duration::from_secs(120);

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
    docker: DockerIgnore,
    standard: Vec<Glob>,
    dockerignore: String,
}

/// `git ls-files -io --exclude-standard`, started at once and read when first needed.
#[derive(Debug)]
struct Git {
    dir: std::path::PathBuf,
    child: std::sync::Mutex<Option<std::process::Child>>,
    /// Its stdout, read to the end by a thread (so a long list never fills the pipe).
    stdout: std::sync::Mutex<Option<std::sync::mpsc::Receiver<Vec<u8>>>>,
    answer: std::sync::OnceLock<Result<(HashSet<String>, String), u64>>,
}

impl Git {
    fn start(dir: &Path) -> Git {
        let mut child = git_ls_files(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .ok();
        let stdout = child.as_mut().and_then(|c| c.stdout.take()).map(|mut out| {
            let (send, receive) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let mut bytes = Vec::new();
                let _ = out.read_to_end(&mut bytes);
                let _ = send.send(bytes);
            });
            receive
        });
        Git {
            dir: dir.to_path_buf(),
            child: std::sync::Mutex::new(child),
            stdout: std::sync::Mutex::new(stdout),
            answer: std::sync::OnceLock::new(),
        }
    }

    /// Waits for git (at most `timeout`, the first time; it is stopped then); a git that
    /// fails or cannot run ignores nothing, as in flytekit.
    fn wait(&self, timeout: Duration) -> &Result<(HashSet<String>, String), u64> {
        self.answer.get_or_init(|| {
            let received = self
                .stdout
                .lock()
                .ok()
                .and_then(|mut r| r.take())
                .map(|r| r.recv_timeout(timeout));
            let mut child = self.child.lock().ok().and_then(|mut c| c.take());
            match (received, child.as_mut()) {
                (Some(Ok(stdout)), Some(child)) => match child.wait() {
                    Ok(status) if status.success() => Ok(split_git_output(&stdout)),
                    _ => Ok((HashSet::new(), String::new())),
                },
                (Some(Err(_)), Some(child)) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    Err(timeout.as_secs())
                }
                _ => Ok((HashSet::new(), String::new())),
            }
        })
    }

    fn answer(&self) -> &(HashSet<String>, String) {
        static NOTHING: std::sync::OnceLock<(HashSet<String>, String)> = std::sync::OnceLock::new();
        match self.wait(GIT_TIMEOUT) {
            Ok(answer) => answer,
            Err(_) => NOTHING.get_or_init(|| (HashSet::new(), String::new())),
        }
    }
}

impl Drop for Git {
    /// A walk that failed (or never asked) leaves no git behind, also one blocked forever.
    fn drop(&mut self) {
        if let Some(mut child) = self.child.lock().ok().and_then(|mut c| c.take()) {
            if !matches!(child.try_wait(), Ok(Some(_))) {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
    }
}

#[derive(Debug, Clone)]
struct DockerPattern {
    exclusion: bool,
    dirs: usize,
    glob: Glob,
}

impl IgnoreGroup {
    /// Loads the rules for `root` (as written in the spec), `cwd` anchoring relative paths.
    /// `.dockerignore` is read only when it is a regular file inside `links`' root (a FIFO
    /// would block; a link out of the tree is refused under `Root`'s policy).
    pub fn new(root: &str, cwd: &Path, links: &Root) -> Result<IgnoreGroup, SourceError> {
        let root_dir = cwd.join(root);
        let git = Git::start(&root_dir);
        let dockerignore = read_dockerignore(&root_dir.join(".dockerignore"), links)?;
        let docker = DockerIgnore::parse(dockerignore.as_deref().unwrap_or(""))?;
        let standard = STANDARD_PATTERNS
            .iter()
            .map(|p| fnmatch::python(p))
            .collect::<Result<_, PatternError>>()?;
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
        self.docker.matches(path) || self.standard.iter().any(|g| g.matches(path))
    }

    /// The `.gitignore` rules (waits for git's answer).
    pub fn is_ignored_by_git(&self, walked: &str, rel: &str) -> bool {
        let path = if pypath::isabs(walked) { rel } else { walked };
        self.git(path, rel)
    }

    /// Whether the rules as written exclude `rel` (relative to the root): the path judged
    /// as flytekit judges it for an absolute `source_root`, whatever the spec wrote. What is
    /// copied into the image follows this; the tag follows [`IgnoreGroup::is_ignored`].
    pub fn rules_exclude(&self, rel: &str) -> bool {
        self.docker.matches(rel)
            || self.standard.iter().any(|g| g.matches(rel))
            || self.git.answer().0.contains(&pypath::pure_posix(rel))
    }

    /// Waits for git's answer (at most `timeout`); an error when git did not answer in time.
    pub fn wait_for_git(&self, timeout: Duration) -> Result<(), SourceError> {
        match self.git.wait(timeout) {
            Ok(_) => Ok(()),
            Err(seconds) => Err(SourceError::GitTimeout {
                dir: self.git.dir.clone(),
                seconds: *seconds,
            }),
        }
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
}

/// docker-py's `PatternMatcher` over the text of a `.dockerignore` (flytekit's
/// `DockerIgnore`): no file access, so the rules can be tested (and fuzzed) on their own.
#[derive(Debug)]
pub struct DockerIgnore {
    patterns: Vec<DockerPattern>,
}

impl DockerIgnore {
    /// The rules of a `.dockerignore` with this text (`""` when there is none): lines as
    /// `f.readlines()` gives them, `#` comments and empty lines skipped, each stripped, and
    /// `!.dockerignore` appended as docker-py does.
    pub fn parse(text: &str) -> Result<DockerIgnore, PatternError> {
        let mut patterns = Vec::new();
        for line in python_readlines(text) {
            patterns.extend(line_pattern(&line)?);
        }
        patterns.push(docker_pattern("!.dockerignore")?.expect("non-empty pattern"));
        Ok(DockerIgnore { patterns })
    }

    /// These rules with `line` (one line, without its line break) added at the end of the
    /// file: what [`DockerIgnore::parse`] of the longer text gives, without compiling every
    /// pattern again (the fuzz target asks this for many lines).
    pub(crate) fn with_line(&self, line: &str) -> Result<DockerIgnore, PatternError> {
        let mut patterns = self.patterns.clone();
        if let Some(p) = line_pattern(&format!("{line}\n"))? {
            // Before the `!.dockerignore` docker-py appends.
            patterns.insert(patterns.len() - 1, p);
        }
        Ok(DockerIgnore { patterns })
    }

    /// docker-py `PatternMatcher.matches`: the last matching pattern decides; a pattern
    /// matches a path or one of its leading directories.
    pub fn matches(&self, path: &str) -> bool {
        let parent = pypath::dirname(path);
        let parent_dirs: Vec<&str> = parent
            .split('/')
            .filter(|p| !p.is_empty() && *p != ".")
            .collect();
        let mut matched = false;
        for p in &self.patterns {
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

/// The pattern of one line of `f.readlines()` (with its `\n`): none for an empty line or
/// a `#` comment; else the line, stripped.
fn line_pattern(line: &str) -> Result<Option<DockerPattern>, PatternError> {
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    docker_pattern(python_strip(line))
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

/// `git ls-files -io --exclude-standard [--directory]` in `dir`, split as flytekit splits it.
fn git_ignored_files(dir: &Path, directories: bool) -> (HashSet<String>, String) {
    let mut cmd = git_ls_files(dir);
    if directories {
        cmd.arg("--directory");
    }
    match cmd.stdin(Stdio::null()).stderr(Stdio::null()).output() {
        Ok(out) if out.status.success() => split_git_output(&out.stdout),
        _ => (HashSet::new(), String::new()),
    }
}

/// The settings a repository's own configuration (`.git/config`, `config.worktree`, files
/// it includes) could use to make `git ls-files -io --exclude-standard` run a program or
/// reach out, each turned off on the command line (which outranks every config file):
/// - `core.fsmonitor`: a hook git runs to ask which files changed — any program. Empty
///   means off for every git version (`false` would run `/bin/false` before 2.36);
/// - `core.hooksPath`: no hook runs for `ls-files` today, pointed at nothing in case a later
///   git fires one (e.g. `post-index-change` on an index refresh);
/// - `protocol.allow=never` and `GIT_NO_LAZY_FETCH`: in a partial clone, reading a missing
///   `.gitignore` blob of a sparse entry fetches it, which runs `core.sshCommand`,
///   `core.gitProxy` or a remote helper; no transport is allowed;
/// - `safe.bareRepository=explicit`: a bare repository planted in the tree (its `config`
///   with the settings above) is not picked up by discovery (`ls-files` fails in a bare
///   repository anyway, so no answer changes).
///
/// Not overridden, because `ls-files` neither executes nor follows them: `diff.external`
/// and textconv drivers (diffs only), `filter.*` clean/smudge (checkout and add, not
/// listing), `core.pager` (output is a pipe; `--no-pager` anyway), `core.editor`,
/// credential helpers and `core.sshCommand` themselves (network, refused above),
/// `core.untrackedCache` (a cache of the same answer, no program). Repositories owned by
/// another user stay refused by git's `safe.directory` check, as in flytekit (then no
/// `.gitignore` rule applies, to the tag or the copy); system and global configuration are
/// the operator's, not the tree's, and stay in force (`core.excludesFile` is part of the
/// answer flytekit gets).
pub fn git_ls_files(dir: &Path) -> Command {
    let mut cmd = Command::new("git");
    cmd.arg("--no-pager");
    for setting in [
        "core.fsmonitor=",
        "core.hooksPath=/dev/null",
        "protocol.allow=never",
        "safe.bareRepository=explicit",
    ] {
        cmd.args(["-c", setting]);
    }
    cmd.args(["ls-files", "-io", "--exclude-standard"])
        .current_dir(dir)
        .env("GIT_NO_LAZY_FETCH", "1")
        .env("GIT_TERMINAL_PROMPT", "0");
    cmd
}

/// `.dockerignore`'s text, if it is there: read through a link only inside the root, never
/// from a FIFO or a device.
fn read_dockerignore(path: &Path, links: &Root) -> Result<Option<String>, SourceError> {
    let io = |source| SourceError::Io {
        path: path.to_path_buf(),
        source,
    };
    match std::fs::symlink_metadata(path) {
        Err(_) => return Ok(None),
        Ok(m) if m.file_type().is_symlink() => {
            if !links.check_link(path)? {
                return Ok(None);
            }
        }
        Ok(_) => {}
    }
    match std::fs::metadata(path) {
        // As before: what cannot be read as a file holds no rules.
        Err(_) => return Ok(None),
        Ok(m) if m.is_dir() => return Ok(None),
        Ok(m) if untrusted::is_special(m.file_type()) => {
            return Err(SourceError::Special {
                path: path.to_path_buf(),
            });
        }
        Ok(_) => {}
    }
    let mut file = untrusted::open_regular(path).map_err(io)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(io)?;
    // flytekit reads it as text; undecodable bytes fail there too (imagespec: no rules).
    Ok(String::from_utf8(bytes).ok())
}

/// `stdout.decode().split("\n")[:-1]`, as flytekit splits git's answer.
fn split_git_output(stdout: &[u8]) -> (HashSet<String>, String) {
    let text = String::from_utf8_lossy(stdout).into_owned();
    let mut lines: Vec<&str> = text.split('\n').collect();
    lines.pop();
    (lines.into_iter().map(str::to_string).collect(), text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::untrusted::LinkPolicy;

    #[test]
    fn rules_as_written_match_relative_paths_where_flytekit_sees_walked_ones() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir_all(&src).unwrap();
        std::fs::write(src.join(".dockerignore"), "secrets.json\n").unwrap();
        let links = Root::new(&src, LinkPolicy::StayInside).unwrap();
        let rules = IgnoreGroup::new("src", dir.path(), &links).unwrap();
        // flytekit: the walked path `src/secrets.json` does not match `secrets.json`...
        assert!(!rules.is_ignored_by_patterns("src/secrets.json", "secrets.json"));
        // ...the rules as written do, and so do the standard patterns.
        assert!(rules.rules_exclude("secrets.json"));
        assert!(rules.rules_exclude(".cache/x"));
        assert!(!rules.rules_exclude("main.py"));
    }

    #[test]
    fn dockerignore_rules_from_text_alone() {
        let rules = DockerIgnore::parse("# comment\n*.txt\n!keep.txt\r\n  secret/  \n").unwrap();
        assert!(rules.matches("a.txt") && rules.matches("A.TXT"));
        assert!(!rules.matches("keep.txt") && !rules.matches("d/a.txt"));
        assert!(rules.matches("secret/k/v") && !rules.matches("# comment"));
        assert!(!DockerIgnore::parse("*\n").unwrap().matches(".dockerignore"));
        assert!(DockerIgnore::parse("[z-a]\n").is_err());
        // A line added gives what the longer file gives.
        let text = "*.txt\n";
        let base = DockerIgnore::parse(text).unwrap();
        for line in ["!keep.txt", "# c", "", "d", "!.dockerignore"] {
            let added = base.with_line(line).unwrap();
            let parsed = DockerIgnore::parse(&format!("{text}{line}\n")).unwrap();
            for path in ["a.txt", "keep.txt", "d/x", "# c", ".dockerignore"] {
                assert_eq!(
                    added.matches(path),
                    parsed.matches(path),
                    "{line:?} {path:?}"
                );
            }
        }
    }

    #[test]
    fn git_runs_with_the_repository_settings_that_run_programs_off() {
        let cmd = git_ls_files(Path::new("."));
        let args: Vec<String> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        for setting in [
            "core.fsmonitor=",
            "core.hooksPath=/dev/null",
            "protocol.allow=never",
        ] {
            let at = args.iter().position(|a| a == setting);
            assert!(
                at.is_some_and(|i| i > 0 && args[i - 1] == "-c"),
                "{setting}: {args:?}"
            );
        }
        assert!(
            cmd.get_envs()
                .any(|(k, v)| k == "GIT_NO_LAZY_FETCH" && v.is_some_and(|v| v == "1"))
        );
    }
}
