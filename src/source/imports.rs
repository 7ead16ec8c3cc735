//! A static stand-in for `sys.modules`: follow the imports of entry modules inside
//! `source_root`.
//!
//! flytekit's `loaded_modules` mode copies the files of every module the Python process has
//! imported from `source_root`. Without a Python process, imagespec reads the entry modules
//! and follows `import a.b` / `from a.b import c` / `from . import x` statements that resolve
//! to files under the root (packages contribute their `__init__.py` files, as importing them
//! does). Differences from the live view: imports made dynamically (`importlib`,
//! `__import__`, conditional code that never runs, imports inside functions that are never
//! called are still followed here) are not known, and modules imported only by third-party
//! code are not followed.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The files of `entries` (dotted module names or `.py` paths under `root`) and of every
/// module they import, transitively, that resolves inside `root`. Paths are absolute.
pub fn scan(root: &Path, entries: &[String]) -> Result<Vec<String>, std::io::Error> {
    let root = std::path::absolute(root)?;
    let mut seen: BTreeSet<PathBuf> = BTreeSet::new();
    let mut queue: Vec<PathBuf> = Vec::new();
    for entry in entries {
        let as_path = root.join(entry);
        let found = if entry.ends_with(".py") && as_path.is_file() {
            vec![as_path]
        } else {
            resolve_module(&root, entry)
        };
        if found.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("entry module `{entry}` not found under {}", root.display()),
            ));
        }
        queue.extend(found);
    }
    while let Some(file) = queue.pop() {
        if !seen.insert(file.clone()) {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        let package = package_of(&root, &file);
        for module in imported_modules(&text, &package) {
            queue.extend(resolve_module(&root, &module));
        }
    }
    Ok(seen
        .into_iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect())
}

/// The dotted package a file belongs to (`a/b/c.py` → `a.b`).
fn package_of(root: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(root).unwrap_or(file);
    let parent = rel.parent().unwrap_or(Path::new(""));
    parent
        .iter()
        .map(|c| c.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(".")
}

/// Files that importing `module` loads: each package's `__init__.py` on the way, then the
/// module file (`a/b.py` or `a/b/__init__.py`).
fn resolve_module(root: &Path, module: &str) -> Vec<PathBuf> {
    let parts: Vec<&str> = module.split('.').filter(|p| !p.is_empty()).collect();
    let mut files = Vec::new();
    let mut dir = root.to_path_buf();
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        let pkg = dir.join(part);
        let init = pkg.join("__init__.py");
        if init.is_file() {
            files.push(init);
        } else if last && dir.join(format!("{part}.py")).is_file() {
            files.push(dir.join(format!("{part}.py")));
            return files;
        } else if !pkg.is_dir() {
            return if last { Vec::new() } else { files };
        }
        dir = pkg;
    }
    files
}

/// Module names imported by `text`, made absolute against `package` for relative imports.
fn imported_modules(text: &str, package: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut logical = String::new();
    for raw in text.lines() {
        let line = raw.split('#').next().unwrap_or("");
        logical.push_str(line.trim_end_matches('\\'));
        if line.trim_end().ends_with('\\') || open_parens(&logical) > 0 {
            logical.push(' ');
            continue;
        }
        let stmt = std::mem::take(&mut logical);
        for part in stmt.split(';') {
            let s = part.trim();
            if let Some(rest) = s.strip_prefix("import ") {
                for name in rest.split(',') {
                    let module = name.split_whitespace().next().unwrap_or("");
                    if !module.is_empty() {
                        out.push(module.to_string());
                    }
                }
            } else if let Some(rest) = s.strip_prefix("from ") {
                let mut words = rest.splitn(2, " import ");
                let from = words.next().unwrap_or("").trim();
                let names = words.next().unwrap_or("").replace(['(', ')'], " ");
                let dots = from.chars().take_while(|c| *c == '.').count();
                let base = if dots == 0 {
                    from.to_string()
                } else {
                    let mut pkg: Vec<&str> = package.split('.').filter(|p| !p.is_empty()).collect();
                    let up = dots - 1;
                    for _ in 0..up {
                        pkg.pop();
                    }
                    let tail = &from[dots..];
                    let mut joined = pkg.join(".");
                    if !tail.is_empty() {
                        if !joined.is_empty() {
                            joined.push('.');
                        }
                        joined.push_str(tail);
                    }
                    joined
                };
                if !base.is_empty() {
                    out.push(base.clone());
                }
                // `from pkg import mod` may name submodules.
                for name in names.split(',') {
                    let n = name.split_whitespace().next().unwrap_or("");
                    if !n.is_empty() && n != "*" {
                        out.push(if base.is_empty() {
                            n.to_string()
                        } else {
                            format!("{base}.{n}")
                        });
                    }
                }
            }
        }
    }
    out
}

fn open_parens(s: &str) -> i32 {
    s.chars().fold(0, |n, c| match c {
        '(' => n + 1,
        ')' => n - 1,
        _ => n,
    })
}
