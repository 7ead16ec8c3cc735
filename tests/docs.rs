//! The examples in README.md and docs/*.md run, as cargo runs its book's: docs cannot rot.
//!
//! - every ```toml spec (a block without `[defaults`) is written to a scratch directory,
//!   under the name its first line gives (`# train.toml`), else `spec.toml`, with the
//!   directories its `source_root` and `copy` name, and must load: `imagespec inspect`
//!   exits 0;
//! - then every `$ imagespec …` line of a ```console block runs in that directory. The lines below it, up to the next `$`,
//!   are its expected stdout, exactly (`...` on a line matches any lines). A command shown
//!   without output asks a registry or a daemon: it must accept its arguments and spec (not
//!   exit 2, bad input), whatever the services; its outcome is the e2e tests' business.
//!
//! trycmd runs console blocks too, but takes a command's files from a directory beside the
//! page, not from the page's own toml blocks, which are what a reader copies.

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;

/// A fenced block of a page: its info string and its lines.
struct Block {
    info: String,
    lines: Vec<String>,
    /// The page's line where the block starts (for messages).
    at: usize,
    /// The fence's indentation (a block in a list item), taken off every line.
    indent: usize,
}

fn blocks(text: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut open: Option<Block> = None;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        match (&mut open, trimmed.strip_prefix("```")) {
            (None, Some(info)) => {
                open = Some(Block {
                    info: info.trim().to_string(),
                    lines: Vec::new(),
                    at: i + 1,
                    indent: line.len() - trimmed.len(),
                });
            }
            (Some(_), Some(_)) => out.extend(open.take()),
            (Some(block), None) => {
                let cut = block.indent.min(line.len() - trimmed.len());
                block.lines.push(line[cut..].to_string());
            }
            (None, None) => {}
        }
    }
    out
}

/// The pages whose examples run.
fn pages() -> Vec<PathBuf> {
    let root = common::repo();
    let mut pages = vec![root.join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("docs/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.sort();
    pages.extend(docs);
    pages
}

/// `imagespec ARGS` in `dir`, with no defaults file, no daemon and a scratch home.
fn imagespec(dir: &Path, args: &[String]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_imagespec"))
        .current_dir(dir)
        .args(args)
        .env("IMAGESPEC_NO_CONFIG", "1")
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .env("HOME", dir)
        .env("IMAGESPEC_CACHE_DIR", dir.join(".cache"))
        .env("IMAGESPEC_CONNECT_TIMEOUT", "2")
        .env("IMAGESPEC_NO_SBOM", "1")
        .output()
        .expect("imagespec")
}

/// Whether `expected` lines (`...`: any lines) match `actual`.
fn matches(expected: &[String], actual: &[&str]) -> bool {
    match expected.split_first() {
        None => actual.is_empty(),
        Some((first, rest)) if first == "..." => {
            (0..=actual.len()).any(|skip| matches(rest, &actual[skip..]))
        }
        Some((first, rest)) => {
            actual.first() == Some(&first.as_str()) && matches(rest, &actual[1..])
        }
    }
}

/// The `$ ` commands of a console block, each with its expected output.
fn commands(block: &Block) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for line in &block.lines {
        if let Some(cmd) = line.strip_prefix("$ ") {
            out.push((cmd.to_string(), Vec::new()));
        } else if let Some((_, expected)) = out.last_mut() {
            expected.push(line.clone());
        }
    }
    for (_, expected) in &mut out {
        while expected.last().is_some_and(|l| l.trim().is_empty()) {
            expected.pop();
        }
    }
    out
}

/// Writes a spec block into `dir` under the name its first line gives (else `spec.toml`),
/// with the directories its `source_root` and `copy` name (one file each), as the reader's
/// project has them; the file name.
fn write_spec(dir: &Path, block: &Block) -> String {
    let file = block
        .lines
        .first()
        .and_then(|l| l.strip_prefix("# "))
        .filter(|f| f.ends_with(".toml") && !f.contains(['/', ' ']))
        .unwrap_or("spec.toml");
    let text = block.lines.join("\n") + "\n";
    std::fs::write(dir.join(file), &text).expect("spec");
    let value: toml::Table = text.parse().unwrap_or_default();
    let named = value.get("source_root").into_iter().chain(
        value
            .get("copy")
            .and_then(|c| c.as_array())
            .into_iter()
            .flatten(),
    );
    for path in named.filter_map(|v| v.as_str()) {
        let path = dir.join(path);
        if path.starts_with(dir) && !path.exists() {
            std::fs::create_dir_all(&path).expect("source dir");
            std::fs::write(path.join("main.py"), "print('hi')\n").expect("source file");
        }
    }
    file.to_string()
}

/// Runs a console block's `$ imagespec` lines in `dir`; the failures.
fn run_console(dir: &Path, block: &Block, at: &str) -> Vec<String> {
    let mut failures = Vec::new();
    for (cmd, expected) in commands(block) {
        let words = shlex::split(&cmd).unwrap_or_default();
        let Some(("imagespec", args)) = words.split_first().map(|(f, r)| (f.as_str(), r)) else {
            continue;
        };
        let out = imagespec(dir, args);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = stdout.lines().collect();
        if expected.is_empty() {
            if out.status.code() == Some(2) {
                failures.push(format!("{at}: `{cmd}` is bad input:\n{stderr}"));
            }
        } else if !out.status.success() || !matches(&expected, &lines) {
            failures.push(format!(
                "{at}: `{cmd}` gave ({}):\n{stdout}{stderr}\nexpected:\n{}",
                out.status,
                expected.join("\n")
            ));
        }
    }
    failures
}

/// Runs one page's examples (its specs written first); the failures, naming page and line.
fn run_page(page: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(page).expect("page");
    let dir = tempfile::tempdir().expect("tempdir");
    let name = page
        .strip_prefix(common::repo())
        .unwrap_or(page)
        .display()
        .to_string();
    let blocks = blocks(&text);
    let specs = blocks
        .iter()
        .filter(|b| b.info == "toml" && !b.lines.iter().any(|l| l.starts_with("[defaults")));
    let mut failures = Vec::new();
    for block in specs {
        let file = write_spec(dir.path(), block);
        let out = imagespec(dir.path(), &["inspect".into(), file]);
        if !out.status.success() {
            failures.push(format!(
                "{name}:{}: the spec does not load: {}",
                block.at,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    for block in blocks.iter().filter(|b| b.info == "console") {
        failures.extend(run_console(
            dir.path(),
            block,
            &format!("{name}:{}", block.at),
        ));
    }
    failures
}

#[test]
fn the_examples_in_the_readme_and_docs_run() {
    let mut failures = Vec::new();
    let mut ran = 0;
    for page in pages() {
        failures.extend(run_page(&page));
        ran += 1;
    }
    assert!(ran > 10, "README.md and the docs pages were read");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn expected_output_matches_exactly_or_with_an_ellipsis() {
    let lines = |s: &[&str]| s.iter().map(|l| l.to_string()).collect::<Vec<_>>();
    assert!(matches(&lines(&["a", "b"]), &["a", "b"]));
    assert!(!matches(&lines(&["a"]), &["a", "b"]));
    assert!(matches(&lines(&["a", "...", "d"]), &["a", "b", "c", "d"]));
    assert!(matches(&lines(&["..."]), &[]));
    assert!(!matches(&lines(&["a", "...", "d"]), &["a", "b"]));
    let block =
        &blocks("x\n```console\n$ imagespec tag a.toml\nname\n\n$ imagespec plan a.toml\n```\n")[0];
    assert_eq!(block.at, 2);
    let cmds = commands(block);
    assert_eq!(
        cmds[0],
        ("imagespec tag a.toml".into(), vec!["name".to_string()])
    );
    assert_eq!(cmds[1], ("imagespec plan a.toml".into(), vec![]));
}

#[test]
fn every_relative_link_in_the_docs_names_a_file_that_exists() {
    let link = regex::Regex::new(r"\]\(([^)#\s]+)(#[^)]*)?\)").expect("regex");
    let mut broken = Vec::new();
    for page in pages() {
        let text = std::fs::read_to_string(&page).expect("page");
        let base = page.parent().expect("dir");
        for (i, line) in text.lines().enumerate() {
            for c in link.captures_iter(line) {
                let target = &c[1];
                if target.contains("://") || target.starts_with("mailto:") {
                    continue;
                }
                if !base.join(target).exists() {
                    broken.push(format!("{}:{}: {target}", page.display(), i + 1));
                }
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}
