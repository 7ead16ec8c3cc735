//! What a package's maintainer scripts would do, decided without running them: a package
//! is laid down without a daemon only when every script (`preinst`, `postinst`) does
//! nothing a fresh install needs beyond what the layers already hold, and its `triggers`
//! only ask for `ldconfig`.
//!
//! The rule, per command of a script (shell words after comments, `set -e`, `if`/`case`
//! scaffolding and `[`/`test` conditions are dropped):
//! - `ldconfig`: the linker cache. Not rewritten: Debian's `ld.so` searches the multiarch
//!   directories (`/usr/lib/<triplet>`) without it, where library packages install.
//! - `dpkg-maintscript-helper rm_conffile|mv_conffile`: act on an upgrade from an older
//!   version only; a fresh install does nothing.
//! - `update-alternatives --install LINK NAME PATH PRIORITY` (no `--slave`): the
//!   alternative recorded as [`Alternative`] for the caller to lay down.
//! - `update-alternatives --remove NAME PATH`: recorded in
//!   [`Effects::removed_alternatives`]; nothing unless the image has that alternative.
//! - an `if` block whose condition is false on a fresh install (`[ "$1" = upgrade ]` in a
//!   postinst, whose `$1` is `configure`; `[ -n "$2" ]`, the old version): skipped.
//! - `exit`, `echo` (a branch for an unknown argument), `true`, `:`.
//!
//! Anything else (`adduser`, `deb-systemd-helper`, `update-ca-certificates`, a `dpkg
//! --compare-versions`, a function…) means the script must run: [`NeedsRun`] names the
//! package, the script and the command.

/// An alternative a script installs (`update-alternatives --install`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alternative {
    pub link: String,
    pub name: String,
    pub path: String,
    pub priority: i64,
}

/// What the scripts of one package need done.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Effects {
    pub alternatives: Vec<Alternative>,
    /// `update-alternatives --remove NAME PATH`: nothing on a fresh install unless the
    /// image has the alternative `NAME` (the caller checks).
    pub removed_alternatives: Vec<String>,
}

/// A package whose maintainer scripts must run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("apt package {package}'s {script} runs `{command}`")]
pub struct NeedsRun {
    pub package: String,
    pub script: String,
    pub command: String,
}

/// Words that only steer a script (conditions, `case` labels, `fi`…).
const SCAFFOLDING: &[&str] = &[
    "if", "then", "else", "elif", "fi", "case", "esac", "in", "do", "done", ";;", "[", "test", "]",
    "set", "true", ":",
];

/// The effects of `package`'s control files (`script` name → text), or which one must run.
/// `prerm`/`postrm` only run on removal and are not read.
pub fn effects<'a>(
    package: &str,
    files: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<Effects, NeedsRun> {
    let mut out = Effects::default();
    for (script, text) in files {
        let needs = |command: &str| NeedsRun {
            package: package.to_string(),
            script: script.to_string(),
            command: command.to_string(),
        };
        match script {
            "preinst" | "postinst" | "config" => {
                let arg = if script == "preinst" {
                    "install"
                } else {
                    "configure"
                };
                for command in commands(text, arg) {
                    if let ["update-alternatives", "--remove", name, _path] = command
                        .iter()
                        .map(String::as_str)
                        .collect::<Vec<_>>()
                        .as_slice()
                    {
                        out.removed_alternatives.push(name.to_string());
                        continue;
                    }
                    match classify(&command) {
                        Some(Some(alt)) => out.alternatives.push(alt),
                        Some(None) => {}
                        None => return Err(needs(&command.join(" "))),
                    }
                }
            }
            "triggers" => {
                for line in text.lines().map(str::trim) {
                    let words: Vec<&str> = line.split_whitespace().collect();
                    match words.as_slice() {
                        [] => {}
                        [w, ..] if w.starts_with('#') => {}
                        ["activate" | "activate-noawait", "ldconfig"] => {}
                        _ => return Err(needs(line)),
                    }
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

/// `Some(None)`: nothing to do; `Some(Some(alt))`: an alternative; `None`: must run.
fn classify(words: &[String]) -> Option<Option<Alternative>> {
    let w: Vec<&str> = words.iter().map(String::as_str).collect();
    match w.as_slice() {
        // `exit`/`echo` only end or report (an unknown argument's branch).
        ["exit", ..] | ["echo", ..] | ["ldconfig"] => Some(None),
        ["dpkg-maintscript-helper", "rm_conffile" | "mv_conffile", ..] => Some(None),
        [
            "update-alternatives",
            "--install",
            link,
            name,
            path,
            priority,
        ] => Some(Some(Alternative {
            link: link.to_string(),
            name: name.to_string(),
            path: path.to_string(),
            priority: priority.parse().ok()?,
        })),
        _ => None,
    }
}

/// A script's lines with continuations (`\`, a trailing `&&` or `||`) joined, comments and
/// blank lines dropped.
fn logical_lines(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut open = false;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (body, joined) = match line.strip_suffix('\\') {
            Some(b) => (b.trim(), true),
            None => (line, line.ends_with("&&") || line.ends_with("||")),
        };
        match out.last_mut() {
            Some(last) if open => {
                last.push(' ');
                last.push_str(body);
            }
            _ => out.push(body.to_string()),
        }
        open = joined;
    }
    out
}

/// Whether an `if` condition is false on a fresh install, where the script's first
/// argument is `arg` and there is no old version: one of its `&&` parts tests `$1`
/// against another value, or `-n "$2"`.
fn false_on_install(condition: &str, arg: &str) -> bool {
    if condition.contains("||") {
        return false;
    }
    condition.split("&&").any(|part| {
        let part = part
            .trim()
            .trim_end_matches(';')
            .trim_end_matches("then")
            .trim();
        let words = shlex::split(part).unwrap_or_default();
        let w: Vec<&str> = words
            .iter()
            .map(String::as_str)
            .filter(|w| *w != "]")
            .collect();
        match w.as_slice() {
            ["[" | "test", "$1", "=" | "==", value] => *value != arg,
            ["[" | "test", "-n", "$2"] => true,
            _ => false,
        }
    })
}

/// The commands of a shell script that are not scaffolding, as words (quotes removed),
/// for a fresh install (`arg`: the script's first argument). An `if` block whose condition
/// is false then ([`false_on_install`]) is skipped to its `fi`; a `[ ... ]` / `test ...`
/// condition is dropped.
fn commands(text: &str, arg: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    // Nesting depth of a skipped `if` block (0: not skipping).
    let mut skipping = 0usize;
    for line in logical_lines(text) {
        let first = line.split_whitespace().next().unwrap_or_default();
        if skipping > 0 {
            match first {
                "if" => skipping += 1,
                "fi" | "fi;" => skipping -= 1,
                _ => {}
            }
            continue;
        }
        if let Some(condition) = line.strip_prefix("if ") {
            let condition = condition.split("; then").next().unwrap_or(condition);
            if false_on_install(condition, arg) {
                // A one-line `if …; then …; fi` ends here.
                let one_line = line.ends_with("fi") || line.ends_with("fi;");
                skipping = usize::from(!one_line);
                continue;
            }
        }
        for part in split_commands(&line) {
            let Some(words) = shlex::split(&part) else {
                out.push(vec![part]);
                continue;
            };
            let words = drop_scaffolding(words);
            if !words.is_empty() {
                out.push(words);
            }
        }
    }
    out
}

/// A line cut at `;`, `&&`, `||` and after `case` labels (`configure)`).
fn split_commands(line: &str) -> Vec<String> {
    let line = line.split(" #").next().unwrap_or(line);
    let mut parts = Vec::new();
    for piece in line
        .split(';')
        .flat_map(|p| p.split("&&"))
        .flat_map(|p| p.split("||"))
    {
        // A `case` label: `configure|abort-upgrade)` or `*)`.
        let piece = match piece.split_once(')') {
            Some((label, rest)) if !label.contains(['(', '$', '"', ' ']) || label.trim() == "*" => {
                rest
            }
            _ => piece,
        };
        parts.push(piece.trim().to_string());
    }
    parts
}

/// The words with leading keywords, conditions and `set` options dropped.
fn drop_scaffolding(words: Vec<String>) -> Vec<String> {
    let mut rest: &[String] = &words;
    while let Some(first) = rest.first() {
        let w = first.as_str();
        if w == "[" || w == "test" || w == "set" || w == "case" {
            // A condition, `set -e`, `case "$1" in`: the whole command.
            return Vec::new();
        }
        if SCAFFOLDING.contains(&w) {
            rest = &rest[1..];
            continue;
        }
        break;
    }
    rest.to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(name: &str) -> String {
        std::fs::read_to_string(format!("testdata/apt/scripts/{name}")).unwrap()
    }

    #[test]
    fn ldconfig_triggers_and_debhelper_scaffolding_need_nothing() {
        let postinst = read("ldconfig.postinst");
        let triggers = "# Triggers added by dh_makeshlibs\nactivate-noawait ldconfig\n";
        assert_eq!(
            effects(
                "libx",
                [("postinst", postinst.as_str()), ("triggers", triggers)]
            ),
            Ok(Effects::default())
        );
        assert_eq!(effects("empty", []), Ok(Effects::default()));
        let conffile = read("rm_conffile.preinst");
        assert_eq!(
            effects("git", [("preinst", conffile.as_str())]),
            Ok(Effects::default())
        );
    }

    #[test]
    fn blocks_for_upgrades_are_skipped_on_a_fresh_install() {
        let git = read("git.preinst");
        assert_eq!(
            effects("git", [("preinst", git.as_str())]),
            Ok(Effects::default())
        );
        let perl = read("perl.postinst");
        assert_eq!(
            effects("perl", [("postinst", perl.as_str())]),
            Ok(Effects {
                removed_alternatives: vec!["rename".into()],
                ..Effects::default()
            })
        );
        assert!(false_on_install(
            "[ \"$1\" = upgrade ] && x; then",
            "configure"
        ));
        assert!(!false_on_install(
            "[ \"$1\" = configure ]; then",
            "configure"
        ));
        assert!(!false_on_install("[ \"$1\" = upgrade ] || x", "configure"));
        let one_line = "if [ \"$1\" = upgrade ]; then adduser x; fi\nldconfig\n";
        assert_eq!(
            effects("p", [("postinst", one_line)]),
            Ok(Effects::default())
        );
    }

    #[test]
    fn alternatives_are_collected() {
        let postinst = read("alternatives.postinst");
        let e = effects("vim-tiny", [("postinst", postinst.as_str())]).unwrap();
        assert_eq!(
            e.alternatives,
            [Alternative {
                link: "/usr/bin/vi".into(),
                name: "vi".into(),
                path: "/usr/bin/vim.tiny".into(),
                priority: 15,
            }]
        );
    }

    #[test]
    fn anything_else_must_run_and_names_the_package() {
        let postinst = read("adduser.postinst");
        let e = effects("openssh-server", [("postinst", postinst.as_str())]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "apt package openssh-server's postinst runs `adduser --system --group sshd`"
        );
        let e = effects(
            "man-db",
            [("triggers", "interest-noawait /usr/share/man\n")],
        )
        .unwrap_err();
        assert_eq!(e.script, "triggers");
        let slave = "update-alternatives --install /usr/bin/x x /usr/bin/y 10 --slave a b c\n";
        assert!(effects("p", [("postinst", slave)]).is_err());
        // prerm/postrm run on removal only.
        assert_eq!(
            effects("p", [("postrm", "rm -rf /\n")]),
            Ok(Effects::default())
        );
    }
}
