//! Names the commit the binary is built from, for `imagespec --version` (`0.1.0 (3c527ee3e450)`):
//! `IMAGESPEC_COMMIT` when the build sets it (a wheel or crate built outside a git checkout),
//! else `git rev-parse HEAD` of the checkout, else `unknown commit`. No network.
//! A checkout with uncommitted changes to tracked files gets `-dirty`, as `git describe
//! --dirty` says it, so a wheel built from a modified tree does not claim a commit it is not.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=IMAGESPEC_COMMIT");
    let commit = match std::env::var("IMAGESPEC_COMMIT") {
        Ok(c) if !c.trim().is_empty() => c.trim().to_string(),
        _ => from_git().unwrap_or_else(|| "unknown commit".to_string()),
    };
    println!("cargo:rustc-env=IMAGESPEC_COMMIT={commit}");
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    out.status.success().then(|| text.trim().to_string())
}

/// The checkout's commit (12 hex digits, `-dirty` with changes), rebuilt when HEAD, the
/// branch it names or the index changes.
fn from_git() -> Option<String> {
    // Only this crate's own checkout: a crate unpacked inside another repository (vendored)
    // is not that repository's commit.
    let top = PathBuf::from(git(&["rev-parse", "--show-toplevel"])?);
    let here = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR")?);
    if top.canonicalize().ok()? != here.canonicalize().ok()? {
        return None;
    }
    let commit = git(&["rev-parse", "--short=12", "HEAD"])?;
    // HEAD and the branch's ref live in different directories in a worktree: ask git.
    let mut watched = vec![
        "HEAD".to_string(),
        "index".to_string(),
        "packed-refs".into(),
    ];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watched.push(branch);
    }
    for name in watched {
        if let Some(path) = git(&["rev-parse", "--git-path", &name]) {
            let path = PathBuf::from(path);
            if path.exists() {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
    }
    // The sources themselves are watched by cargo; an edit re-runs this script through
    // `src`, so `-dirty` follows the tree.
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=templates");
    println!("cargo:rerun-if-changed=Cargo.toml");
    let dirty =
        git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    Some(if dirty {
        format!("{commit}-dirty")
    } else {
        commit
    })
}
