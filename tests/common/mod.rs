//! Shared by the test binaries: the corpus materialisation contract of `testdata/README.md`
//! (the golden tests) and, in [`e2e`], the end-to-end harness.

// Every tests/*.rs is a crate of its own that compiles this module whole and uses a part of
// it (the golden tests none of `e2e`, an e2e test none of the corpus); dead-code analysis
// runs per crate, so each item would warn in the binaries that leave it unused.
#![allow(dead_code)]

pub mod e2e;

use std::path::{Path, PathBuf};
use std::process::Command;

/// Where cases are materialised (the generators use the same fixed path: some specs hold
/// absolute paths under it).
pub const CORPUS_ROOT: &str = "/tmp/imagespec-corpus";

/// Held while a test uses [`CORPUS_ROOT`]: the golden tests of every checkout on the machine
/// (several worktrees, a CI run beside a developer's) materialise the same fixed paths, so
/// they take turns through an OS file lock, released when the guard drops.
pub struct CorpusLock(std::fs::File);

/// Waits for the corpus directory to be free and holds it.
pub fn corpus_lock() -> CorpusLock {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(format!("{CORPUS_ROOT}.lock"))
        .expect("open the corpus lock file");
    file.lock().expect("lock the corpus directory");
    CorpusLock(file)
}

/// Images whose name or tag the OCI distribution grammar refuses, (case, image key, why):
/// flytekit computes a name (and writes a context), and its `docker push` fails later;
/// imagespec refuses them (exit 2) before anything runs (docs/differences.md).
pub const INVALID_IMAGE_NAMES: &[(&str, &str, &str)] = &[
    (
        "name_unicode_lowercase",
        "",
        "non-ASCII letters in the name",
    ),
    (
        "name_unvalidated_chars",
        "",
        "spaces, `:` and `@` in the name",
    ),
    (
        "registry_validation_edge_cases",
        "trailing_newline",
        "a newline ends the registry (flytekit's pattern allows one)",
    ),
    (
        "registry_validation_edge_cases",
        "underscore_dash_dot",
        "`_` in the registry host",
    ),
    (
        "registry_validation_edge_cases",
        "unicode_digit_port",
        "non-ASCII digits in the registry port",
    ),
    (
        "registry_validation_edge_cases",
        "unicode_word_path",
        "non-ASCII letters in the registry path",
    ),
    (
        "tag_format_advanced",
        "repr_conversion",
        "`{spec_hash!r}` puts quotes in the tag",
    ),
    (
        "tag_format_advanced",
        "right_align",
        "`{spec_hash:>30}` puts spaces in the tag",
    ),
    (
        "tag_format_literal_braces",
        "",
        "`{{literal}}` puts braces in the tag",
    ),
];

/// Images with a string that would break a Dockerfile line (a control character: a line
/// break, NEL, U+2028...; a trailing `\`), (case, image key, why): flytekit writes it into the
/// Dockerfile / build.envd, where it ends the instruction and starts another (or continues it
/// into the next); imagespec refuses the spec (exit 2, docs/differences.md;
/// `src/spec/control.rs`).
pub const LINE_BREAKING_STRINGS: &[(&str, &str, &str)] = &[
    (
        "strings_control_chars",
        "",
        "every C0/C1 control character in `commands[0]`",
    ),
    (
        "strings_whitespace_escapes",
        "",
        "a line break in `commands[0]`",
    ),
    (
        "strings_nel_u0085_no_yaml_twin",
        "",
        "NEL (U+0085) in a package name",
    ),
    (
        "strings_unicode_nonprintable",
        "",
        "U+2028 in a package name",
    ),
    (
        "envd_env_values",
        "values",
        "a line break in an `env` value",
    ),
    (
        "strings_quotes_backslash",
        "",
        "a package name ending in `\\`",
    ),
];

/// Whether imagespec refuses this image's name or tag ([`INVALID_IMAGE_NAMES`]) or one of its
/// strings ([`LINE_BREAKING_STRINGS`]) on purpose.
pub fn refused_on_purpose(case: &str, key: &str) -> bool {
    invalid_image_name(case, key)
        || LINE_BREAKING_STRINGS
            .iter()
            .any(|(c, k, _)| *c == case && *k == key)
}

/// Whether imagespec refuses this image's name or tag on purpose ([`INVALID_IMAGE_NAMES`]).
pub fn invalid_image_name(case: &str, key: &str) -> bool {
    INVALID_IMAGE_NAMES
        .iter()
        .any(|(c, k, _)| *c == case && *k == key)
}

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read corpus case") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// Copies a case to its fixed place and runs its `setup.sh`, as the generators do.
pub fn materialise(case: &str) -> PathBuf {
    materialise_from("corpus", case)
}

/// The imagespec binary run in a materialised case, with git isolated from the user's
/// configuration (as the generators isolate it), no digest cache and no FLYTE_* variables.
pub fn isolated_imagespec(dir: &Path, home: &Path) -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("imagespec").expect("binary");
    cmd.current_dir(dir)
        .env("IMAGESPEC_NO_CACHE", "1")
        // The goldens are flytekit's names: no defaults file of this machine's.
        .env("IMAGESPEC_NO_CONFIG", "1")
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null");
    for (var, _) in std::env::vars() {
        // The goldens are flytekit's defaults: no outside FLYTE_* or imagespec render inputs.
        let render_input = matches!(
            var.as_str(),
            "IMAGESPEC_FLYTEKIT_REQUIREMENT"
                | "IMAGESPEC_HOST_PYTHON_VERSION"
                | "IMAGESPEC_CA_BUNDLE"
        );
        if var.starts_with("GIT_") && var != "GIT_CONFIG_NOSYSTEM" && var != "GIT_CONFIG_GLOBAL"
            || var.starts_with("FLYTE_")
            || render_input
        {
            cmd.env_remove(var);
        }
    }
    cmd
}

/// `--image KEY` for a multi-image case and `--modules-from` when the case lists modules.
pub fn case_args(cmd: &mut assert_cmd::Command, dir: &Path, key: &str) {
    if !key.is_empty() {
        cmd.args(["--image", key]);
    }
    if dir.join("modules.txt").exists() {
        cmd.args(["--modules-from", "modules.txt"]);
    }
}

/// [`materialise`] for a case of another testdata directory (e.g. `testdata/envd`), at the same
/// fixed place.
pub fn materialise_from(corpus: &str, case: &str) -> PathBuf {
    let dir = Path::new(CORPUS_ROOT).join(case);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).expect("clean case dir");
    }
    copy_dir(&repo().join("testdata").join(corpus).join(case), &dir);
    if dir.join("setup.sh").exists() {
        let status = Command::new("bash")
            .arg("setup.sh")
            .current_dir(&dir)
            .status()
            .expect("bash");
        assert!(status.success(), "{case}: setup.sh failed");
    }
    dir
}

/// What the generators record of a build context directory (`main_file`, the Dockerfile or
/// build.envd, apart): every other file by sha256 (links by target), the executable files,
/// the empty directories; lists sorted as Python sorts them.
#[derive(Default, PartialEq, Debug)]
pub struct Context {
    pub files: std::collections::BTreeMap<String, String>,
    pub executable: Vec<String>,
    pub empty_dirs: Vec<String>,
}

/// [`Context`] of the directory `root`.
pub fn snapshot_context(root: &Path, main_file: &str) -> Context {
    let mut out = Context::default();
    walk_context(root, root, main_file, &mut out);
    out.executable.sort();
    out.empty_dirs.sort();
    out
}

fn walk_context(root: &Path, dir: &Path, main_file: &str, out: &mut Context) {
    use sha2::Digest;
    use std::os::unix::fs::PermissionsExt;
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("read context")
        .map(|e| e.expect("entry"))
        .collect();
    entries.sort_by_key(|e| e.file_name());
    let rel = |p: &Path| {
        p.strip_prefix(root)
            .expect("under root")
            .to_string_lossy()
            .into_owned()
    };
    if entries.is_empty() && dir != root {
        out.empty_dirs.push(rel(dir));
    }
    for entry in entries {
        let path = entry.path();
        let meta = std::fs::symlink_metadata(&path).expect("lstat");
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&path).expect("readlink");
            out.files
                .insert(rel(&path), format!("symlink:{}", target.to_string_lossy()));
        } else if meta.is_dir() {
            walk_context(root, &path, main_file, out);
        } else if dir != root || entry.file_name() != main_file {
            let bytes = std::fs::read(&path).expect("read context file");
            out.files
                .insert(rel(&path), format!("{:x}", sha2::Sha256::digest(&bytes)));
            if meta.permissions().mode() & 0o111 != 0 {
                out.executable.push(rel(&path));
            }
        }
    }
}

/// How imagespec's run compares with what flytekit did for one image, before the contexts
/// are compared: `true` when both rendered a context (compare them); otherwise a failure is
/// recorded when imagespec did not reject (exit 2) what flytekit rejects or what imagespec
/// rejects on purpose, or when imagespec failed where flytekit rendered.
pub fn both_rendered(
    label: &str,
    out: &std::process::Output,
    deliberately_rejected: bool,
    want: &serde_json::Value,
    failures: &mut Vec<String>,
) -> bool {
    if deliberately_rejected {
        if out.status.code() != Some(2) {
            failures.push(format!(
                "{label}: imagespec must reject this on purpose, exited {:?}",
                out.status.code()
            ));
        }
        return false;
    }
    if let Some(err) = want.get("error") {
        if out.status.code() != Some(2) {
            failures.push(format!(
                "{label}: flytekit rejects it ({err}), imagespec exited {:?}",
                out.status.code()
            ));
        }
        return false;
    }
    if !out.status.success() {
        failures.push(format!(
            "{label}: exit {:?}: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).trim_end()
        ));
        return false;
    }
    true
}

/// Cases whose source tree holds a link out of `source_root` (`src/link_outside ->
/// ../outside.txt`): imagespec refuses them (exit 2, naming the link) unless
/// `--allow-external-links`, with which the result is flytekit's (docs/security.md).
pub const EXTERNAL_LINK_CASES: &[&str] = &["source_walk_special_files"];

/// Runs `cmd`; for an [`EXTERNAL_LINK_CASES`] case, checks that imagespec refuses the link
/// (a failure is recorded otherwise) and runs it again with `--allow-external-links`.
pub fn output_allowing_links(
    case: &str,
    label: &str,
    cmd: &mut assert_cmd::Command,
    failures: &mut Vec<String>,
) -> std::process::Output {
    let out = cmd.output().expect("run imagespec");
    if !EXTERNAL_LINK_CASES.contains(&case) {
        return out;
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() != Some(2) || !stderr.contains("--allow-external-links") {
        failures.push(format!(
            "{label}: imagespec must refuse the link out of source_root (exit 2), exited {:?}: {stderr}",
            out.status.code()
        ));
    }
    cmd.arg("--allow-external-links")
        .output()
        .expect("run imagespec")
}

/// The source files imagespec hashes (they are part of flytekit's tag) but leaves out of the
/// image because the ignore rules, read as written, exclude them: `inspect --json`'s
/// `source.excluded` (docs/differences.md).
pub fn excluded_source_files(dir: &Path, home: &Path, file: &str, key: &str) -> Vec<String> {
    let mut cmd = isolated_imagespec(dir, home);
    cmd.args(["inspect", file, "--json"]);
    case_args(&mut cmd, dir, key);
    // With `--image`, or for a single-image file, the answer is that image's object.
    let out = cmd.output().expect("run imagespec");
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    value["source"]["excluded"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}
