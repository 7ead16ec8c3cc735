//! Python's `posixpath` functions on strings, as flytekit's file walks apply them.
//!
//! flytekit decides which files an image gets, and how their paths are hashed, with
//! `os.path.join`/`relpath`/`commonpath` on the strings the user wrote (a relative
//! `source_root` stays relative). Reproducing those string operations exactly is what keeps
//! the hash identical, quirks included.

/// `os.path.isabs`.
pub fn isabs(p: &str) -> bool {
    p.starts_with('/')
}

/// `os.path.join(a, b)`.
pub fn join(a: &str, b: &str) -> String {
    if isabs(b) {
        b.to_string()
    } else if a.is_empty() || a.ends_with('/') {
        format!("{a}{b}")
    } else {
        format!("{a}/{b}")
    }
}

/// `os.path.normpath`.
pub fn normpath(path: &str) -> String {
    if path.is_empty() {
        return ".".into();
    }
    let initial = if path.starts_with("//") && !path.starts_with("///") {
        2
    } else if path.starts_with('/') {
        1
    } else {
        0
    };
    let mut comps: Vec<&str> = Vec::new();
    for comp in path.split('/') {
        if comp.is_empty() || comp == "." {
            continue;
        }
        if comp != ".." || (initial == 0 && comps.is_empty()) || comps.last() == Some(&"..") {
            comps.push(comp);
        } else if !comps.is_empty() {
            comps.pop();
        }
    }
    let joined = format!("{}{}", "/".repeat(initial), comps.join("/"));
    if joined.is_empty() {
        ".".into()
    } else {
        joined
    }
}

/// `os.path.abspath`, with `cwd` as the process's working directory.
pub fn abspath(p: &str, cwd: &str) -> String {
    if isabs(p) {
        normpath(p)
    } else {
        normpath(&join(cwd, p))
    }
}

/// `os.path.relpath(path, start)`.
pub fn relpath(path: &str, start: &str, cwd: &str) -> String {
    let abs_start = abspath(start, cwd);
    let abs_path = abspath(path, cwd);
    let start_list: Vec<&str> = abs_start.split('/').filter(|s| !s.is_empty()).collect();
    let path_list: Vec<&str> = abs_path.split('/').filter(|s| !s.is_empty()).collect();
    let common = start_list
        .iter()
        .zip(&path_list)
        .take_while(|(a, b)| a == b)
        .count();
    let mut rel: Vec<&str> = vec![".."; start_list.len() - common];
    rel.extend(&path_list[common..]);
    if rel.is_empty() {
        ".".into()
    } else {
        rel.join("/")
    }
}

/// `os.path.commonpath`; `None` where Python raises `ValueError` (absolute mixed with relative).
pub fn commonpath(paths: &[&str]) -> Option<String> {
    let first = paths.first()?;
    let abs = isabs(first);
    if paths.iter().any(|p| isabs(p) != abs) {
        return None;
    }
    let split: Vec<Vec<&str>> = paths
        .iter()
        .map(|p| {
            p.split('/')
                .filter(|c| !c.is_empty() && *c != ".")
                .collect()
        })
        .collect();
    let min = split.iter().min()?;
    let max = split.iter().max()?;
    let common = min
        .iter()
        .zip(max.iter())
        .take_while(|(a, b)| a == b)
        .count();
    Some(format!(
        "{}{}",
        if abs { "/" } else { "" },
        min[..common].join("/")
    ))
}

/// flytekit's `_file_is_in_directory`: `commonpath([file, directory]) == directory`, on the
/// strings as given (so `source_root="./src"` or a trailing `/` never matches).
pub fn file_is_in_directory(file: &str, directory: &str) -> bool {
    commonpath(&[file, directory]).is_some_and(|c| c == directory)
}

/// `os.path.dirname`.
pub fn dirname(p: &str) -> String {
    let i = p.rfind('/').map_or(0, |i| i + 1);
    let head = &p[..i];
    if !head.is_empty() && head.chars().any(|c| c != '/') {
        head.trim_end_matches('/').to_string()
    } else {
        head.to_string()
    }
}

/// `os.path.basename`.
pub fn basename(p: &str) -> &str {
    p.rfind('/').map_or(p, |i| &p[i + 1..])
}

/// `pathlib.PurePosixPath(p).as_posix()`: drops `.` components and repeated slashes.
pub fn pure_posix(p: &str) -> String {
    let lead = if p.starts_with("//") && !p.starts_with("///") {
        "//"
    } else if p.starts_with('/') {
        "/"
    } else {
        ""
    };
    let parts: Vec<&str> = p
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    let joined = format!("{lead}{}", parts.join("/"));
    if joined.is_empty() {
        ".".into()
    } else {
        joined
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_posixpath() {
        assert_eq!(join(".", "a"), "./a");
        assert_eq!(join("src/", "a"), "src/a");
        assert_eq!(normpath("./a//b/../c/."), "a/c");
        assert_eq!(normpath("../a"), "../a");
        assert_eq!(normpath("/../a"), "/a");
        assert_eq!(relpath("./sub/a.py", ".", "/w"), "sub/a.py");
        assert_eq!(relpath("/w/x/a", "/w/y", "/"), "../x/a");
        assert_eq!(commonpath(&["/a/b/c", "/a/b"]), Some("/a/b".into()));
        assert_eq!(commonpath(&["/a/b", "a"]), None);
        assert!(file_is_in_directory("/r/src/m.py", "/r/src"));
        assert!(!file_is_in_directory("/r/src/m.py", "/r/src/"));
        assert!(!file_is_in_directory("/r/src/m.py", "src"));
        assert_eq!(dirname("./sub/a.py"), "./sub");
        assert_eq!(dirname("a.py"), "");
        assert_eq!(dirname("/a"), "/");
        assert_eq!(pure_posix("./a/./b"), "a/b");
        assert_eq!(basename("dir/f.txt"), "f.txt");
    }
}
