//! A `uv.lock` spec without a daemon: what the Dockerfile's
//!
//! ```text
//! WORKDIR /root   (uv.lock and pyproject.toml bind-mounted)
//! uv sync --python python3 [--index-url …] [pip_extra_args…] --locked --no-dev --no-install-project
//! ```
//!
//! does, as two uv runs on this machine that [`super::venv`] makes: `uv export --locked`
//! of the lock (the same `--locked` check as uv sync's — a lock out of date with
//! `pyproject.toml` fails alike — and the locked set, universal, with markers and hashes),
//! then `uv pip install --no-deps --require-hashes --no-build` of exactly that set for the
//! image's platform and Python (the markers are evaluated for the image, not this machine),
//! into a venv laid out as uv sync's project venv (no system site-packages, `prompt =` the
//! project's normalised name).
//!
//! This file holds the pure parts: which uv sync arguments go to which run
//! ([`split_sync_args`]), the project's name ([`project_prompt`]), what of `[tool.uv]` the
//! install could not honour ([`unhonoured_settings`]) and what of the locked set cannot be
//! installed from wheels as the Docker build installs it ([`check_locked`]: a git or local
//! source, an index only `pyproject.toml` names). Each of these is a [`Fallback`] to dockerd.

use super::Fallback;

/// uv sync's arguments split between the two runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncArgs {
    /// For `uv export` (selection, the `--locked` check, the indexes it resolves against).
    pub export: Vec<String>,
    /// For `uv pip install` (where the files come from).
    pub install: Vec<String>,
    /// The index URLs the install reads (`--index-url`/`--default-index`, else PyPI's, then
    /// the extra ones), without a trailing `/`.
    pub indexes: Vec<String>,
}

/// PyPI's simple index, uv's default.
pub const PYPI: &str = "https://pypi.org/simple";

/// Splits uv sync's arguments (shell words) between `uv export` and `uv pip install`; an
/// argument neither run can take as uv sync means it falls back to dockerd.
pub fn split_sync_args(words: &[String]) -> Result<SyncArgs, Fallback> {
    let mut out = SyncArgs::default();
    let mut default_index: Option<String> = None;
    let mut extra = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let word = words[i].as_str();
        let (flag, inline) = match word.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (word, None),
        };
        let mut value = || -> Result<String, Fallback> {
            if let Some(v) = inline.clone() {
                return Ok(v);
            }
            i += 1;
            words
                .get(i)
                .cloned()
                .ok_or_else(|| Fallback(format!("`{flag}` of uv sync has no value")))
        };
        match flag {
            // What is installed, and the lock check: uv export takes them as uv sync does.
            "--locked" | "--frozen" | "--no-dev" | "--only-dev" | "--all-extras"
            | "--all-packages" | "--no-sources" => out.export.push(flag.into()),
            "--extra" | "--group" | "--no-group" | "--only-group" | "--package"
            | "--resolution" | "--prerelease" | "--exclude-newer" => {
                let v = value()?;
                out.export.extend([flag.into(), v]);
            }
            // uv sync's "do not install" is uv export's "do not emit".
            "--no-install-project" => out.export.push("--no-emit-project".into()),
            "--no-install-workspace" => out.export.push("--no-emit-workspace".into()),
            "--no-install-package" => {
                let v = value()?;
                out.export.extend(["--no-emit-package".into(), v]);
            }
            // Where packages come from: the lock check resolves against them, the install
            // downloads from them.
            "--index-url" | "-i" | "--default-index" => {
                let v = value()?;
                default_index = Some(v.trim_end_matches('/').to_string());
                for run in [&mut out.export, &mut out.install] {
                    run.extend([flag.to_string(), v.clone()]);
                }
            }
            "--extra-index-url" | "--index" => {
                let v = value()?;
                // `--index name=url` names it.
                let url = if flag == "--index" {
                    v.split_once('=')
                        .filter(|(n, _)| !n.contains(':'))
                        .map_or(v.as_str(), |(_, u)| u)
                } else {
                    v.as_str()
                };
                extra.push(url.trim_end_matches('/').to_string());
                for run in [&mut out.export, &mut out.install] {
                    run.extend([flag.to_string(), v.clone()]);
                }
            }
            "--find-links" | "-f" | "--index-strategy" | "--allow-insecure-host" => {
                let v = value()?;
                for run in [&mut out.export, &mut out.install] {
                    run.extend([flag.to_string(), v.clone()]);
                }
            }
            "--no-index" | "--native-tls" | "--offline" => {
                if flag == "--no-index" {
                    default_index = Some(String::new());
                }
                out.export.push(flag.into());
                out.install.push(flag.into());
            }
            // Nothing to do: bytecode is the documented difference (the image compiles it
            // on first import), the venv is new (exact or not), output is uv's own.
            "--compile-bytecode" | "--inexact" | "--exact" | "--quiet" | "-q" | "--verbose"
            | "-v" | "--no-progress" => {}
            _ => {
                return Err(Fallback(format!(
                    "`{word}` of uv sync is not handled without a daemon"
                )));
            }
        }
        i += 1;
    }
    match default_index {
        Some(d) if d.is_empty() => {}
        Some(d) => out.indexes.push(d),
        None => out.indexes.push(PYPI.into()),
    }
    out.indexes.extend(extra);
    Ok(out)
}

/// The venv's prompt uv sync writes: the project's name, normalised (PEP 503: lower case,
/// runs of `-_.` → `-`).
pub fn project_prompt(pyproject: &str) -> Result<String, Fallback> {
    let doc: toml::Table = toml::from_str(pyproject)
        .map_err(|e| Fallback(format!("pyproject.toml does not parse: {}", e.message())))?;
    let name = doc
        .get("project")
        .and_then(|p| p.get("name"))
        .and_then(|n| n.as_str())
        .ok_or_else(|| Fallback("pyproject.toml has no [project] name".into()))?;
    let mut out = String::new();
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !out.ends_with('-') {
                out.push('-');
            }
        } else {
            out.extend(c.to_lowercase());
        }
    }
    Ok(out)
}

/// `[tool.uv]` settings that only shape the lock (uv export's `--locked` check sees them
/// as uv sync does) or the project; any other changes *how* uv sync installs (indexes,
/// builds, binaries), which the wheels-only install run apart from the project would not
/// honour.
const LOCK_SETTINGS: &[&str] = &[
    "dev-dependencies",
    "default-groups",
    "managed",
    "package",
    "sources",
    "index",
    "environments",
    "constraint-dependencies",
    "override-dependencies",
    "conflicts",
    "workspace",
    "resolution",
    "prerelease",
    "exclude-newer",
    "required-version",
];

/// The first `[tool.uv]` setting of `pyproject` the daemonless install would not honour.
pub fn unhonoured_settings(pyproject: &str) -> Result<(), Fallback> {
    let doc: toml::Table = toml::from_str(pyproject)
        .map_err(|e| Fallback(format!("pyproject.toml does not parse: {}", e.message())))?;
    let Some(tool_uv) = doc
        .get("tool")
        .and_then(|t| t.get("uv"))
        .and_then(|u| u.as_table())
    else {
        return Ok(());
    };
    match tool_uv
        .keys()
        .find(|k| !LOCK_SETTINGS.contains(&k.as_str()))
    {
        Some(key) => Err(Fallback(format!(
            "pyproject.toml's [tool.uv] sets `{key}`, which uv sync applies in the image"
        ))),
        None => Ok(()),
    }
}

/// PEP 503's normalised name.
fn normalise(name: &str) -> String {
    project_prompt(&format!("[project]\nname = {name:?}\n")).unwrap_or_default()
}

/// The package names of `uv export --format requirements-txt` output (`name==version`,
/// `name @ url`, with markers and `--hash` continuation lines); an editable or path line is
/// a [`Fallback`].
pub fn exported_names(exported: &str) -> Result<Vec<String>, Fallback> {
    let mut names = Vec::new();
    for line in exported.lines() {
        let line = line.trim_end_matches('\\').trim_end();
        if line.is_empty() || line.starts_with([' ', '\t', '#']) {
            continue;
        }
        if line.starts_with('-') || line.starts_with('.') || line.starts_with('/') {
            return Err(Fallback(format!(
                "the lock installs a local path ({line}): only uv.lock and pyproject.toml \
                 reach the build"
            )));
        }
        let end = line
            .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
            .unwrap_or(line.len());
        names.push(normalise(&line[..end]));
    }
    Ok(names)
}

/// Checks the packages of `names` (exported) in `lock`: each must come from one of
/// `indexes` (the install reads no other) or a URL; a git source needs a build, a path,
/// directory or editable source is not in the build's context.
pub fn check_locked(lock: &str, names: &[String], indexes: &[String]) -> Result<(), Fallback> {
    let doc: toml::Table = toml::from_str(lock)
        .map_err(|e| Fallback(format!("uv.lock does not parse: {}", e.message())))?;
    let packages = doc
        .get("package")
        .and_then(|p| p.as_array())
        .map(Vec::as_slice)
        .unwrap_or_default();
    for package in packages {
        let Some(name) = package.get("name").and_then(|n| n.as_str()) else {
            continue;
        };
        if !names.contains(&normalise(name)) {
            continue;
        }
        let source = package.get("source").and_then(|s| s.as_table());
        let Some((kind, value)) = source.and_then(|s| s.iter().next()) else {
            continue;
        };
        let value = value.as_str().unwrap_or_default();
        match kind.as_str() {
            "registry" => {
                if !indexes
                    .iter()
                    .any(|i| i.as_str() == value.trim_end_matches('/'))
                {
                    return Err(Fallback(format!(
                        "uv.lock takes {name} from {value}, an index the install is not given \
                         (pyproject.toml's [tool.uv] names it)"
                    )));
                }
            }
            "url" => {}
            "git" => {
                return Err(Fallback(format!(
                    "uv.lock takes {name} from git ({value}), which needs a build"
                )));
            }
            other => {
                return Err(Fallback(format!(
                    "uv.lock takes {name} from a local {other} ({value}): only uv.lock and \
                     pyproject.toml reach the build"
                )));
            }
        }
    }
    Ok(())
}

/// The wheels a `uv.lock` lists, with the sha256 uv locked for each: what the install
/// checks every wheel against (`--require-hashes`), so the hash of the wheel installed is
/// the lock's line for the file whose tags are those the installed `WHEEL` file lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LockedWheels {
    /// (normalised name, version) → (the wheel's file name, its sha256 in hex).
    wheels: std::collections::BTreeMap<(String, String), Vec<(String, String)>>,
}

impl LockedWheels {
    /// The wheels of `lock` (none of a lock that does not parse: the SBOM then names no
    /// hash, the install reports the lock's error).
    pub fn of(lock: &str) -> LockedWheels {
        let mut out = LockedWheels::default();
        let Ok(doc) = toml::from_str::<toml::Table>(lock) else {
            return out;
        };
        let packages = doc.get("package").and_then(|p| p.as_array());
        for package in packages.map(Vec::as_slice).unwrap_or_default() {
            let field = |k: &str| package.get(k).and_then(|v| v.as_str());
            let (Some(name), Some(version)) = (field("name"), field("version")) else {
                continue;
            };
            let wheels = package.get("wheels").and_then(|w| w.as_array());
            let listed = wheels.map(Vec::as_slice).unwrap_or_default().iter();
            let files = listed.filter_map(|wheel| {
                let text = |k: &str| wheel.get(k).and_then(|v| v.as_str());
                let hex = text("hash")?.strip_prefix("sha256:")?;
                let file = text("filename").or_else(|| text("url")?.rsplit('/').next())?;
                let hex_ok = hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit());
                hex_ok.then(|| (file.to_string(), hex.to_ascii_lowercase()))
            });
            let key = (normalise(name), version.to_string());
            out.wheels.entry(key).or_default().extend(files);
        }
        out
    }

    /// The sha256 (hex) of the wheel of `name` `version` whose tags (and build number) are
    /// those `wheel_metadata` (its installed `.dist-info/WHEEL`) lists; `None` when the
    /// lock lists no such file, or more than one.
    pub fn hash_of(&self, name: &str, version: &str, wheel_metadata: &str) -> Option<&str> {
        let files = self.wheels.get(&(normalise(name), version.to_string()))?;
        let installed = installed_tags(wheel_metadata);
        let mut matching = files
            .iter()
            .filter(|(file, _)| file_tags(file).as_ref() == Some(&installed));
        let (_, hex) = matching.next()?;
        matching.next().is_none().then_some(hex.as_str())
    }
}

/// A wheel's tags and build number: (`py3-none-any`, … expanded), build.
type WheelTags = (std::collections::BTreeSet<String>, Option<String>);

/// The tags and build number of a wheel's file name (`name-version[-build]-py-abi-plat.whl`,
/// each tag part possibly a `.`-joined set).
fn file_tags(file: &str) -> Option<WheelTags> {
    let stem = file.strip_suffix(".whl")?;
    let parts: Vec<&str> = stem.split('-').collect();
    let build = match parts.len() {
        5 => None,
        6 => Some(parts[2].to_string()),
        _ => return None,
    };
    let [py, abi, plat] = parts[parts.len() - 3..] else {
        return None;
    };
    let mut tags = std::collections::BTreeSet::new();
    for py in py.split('.') {
        for abi in abi.split('.') {
            for plat in plat.split('.') {
                tags.insert(format!("{py}-{abi}-{plat}"));
            }
        }
    }
    Some((tags, build))
}

/// The `Tag:` lines and `Build:` of a `WHEEL` file.
fn installed_tags(wheel_metadata: &str) -> WheelTags {
    let mut tags = std::collections::BTreeSet::new();
    let mut build = None;
    for line in wheel_metadata.lines() {
        if let Some((key, value)) = line.split_once(':') {
            match key.trim() {
                "Tag" => {
                    tags.insert(value.trim().to_string());
                }
                "Build" => build = Some(value.trim().to_string()),
                _ => {}
            }
        }
    }
    (tags, build)
}

#[cfg(test)]
mod tests {
    use super::*;

    const WHEELS_LOCK: &str = r#"version = 1
[[package]]
name = "PyYAML"
version = "6.0.2"
source = { registry = "https://pypi.org/simple" }
sdist = { url = "https://f.org/pyyaml-6.0.2.tar.gz", hash = "sha256:d584d9ec91ad65861cc08d42e834324ef890a082e591037abe114850ff7bbc3e" }
wheels = [
    { url = "https://f.org/PyYAML-6.0.2-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl", hash = "sha256:80bab7bfc629882493af4aa31a4cfa43a4c57c83813253626916b8c7ada83476", size = 1 },
    { url = "https://f.org/PyYAML-6.0.2-cp312-cp312-manylinux_2_17_aarch64.manylinux2014_aarch64.whl", hash = "sha256:0ffe8360bab4910ef1b9e87fb812d8bc0a308b0d0eef8c8f44e0254ab3b07133", size = 1 },
]
[[package]]
name = "six"
version = "1.16.0"
source = { registry = "https://pypi.org/simple" }
wheels = [{ url = "https://f.org/six-1.16.0-py2.py3-none-any.whl", hash = "sha256:8ABB2F1D86890A2DFB989F9A77CFCFD3E47C2A354B01111771326F8AA26E0254" }]
"#;

    #[test]
    fn the_installed_wheel_is_the_locked_file_with_its_tags() {
        let wheels = LockedWheels::of(WHEELS_LOCK);
        let x86 = "Wheel-Version: 1.0\nRoot-Is-Purelib: false\n\
                   Tag: cp312-cp312-manylinux_2_17_x86_64\nTag: cp312-cp312-manylinux2014_x86_64\n";
        assert_eq!(
            wheels.hash_of("pyyaml", "6.0.2", x86),
            Some("80bab7bfc629882493af4aa31a4cfa43a4c57c83813253626916b8c7ada83476")
        );
        let arm = x86.replace("x86_64", "aarch64");
        assert_eq!(
            wheels.hash_of("PyYAML", "6.0.2", &arm),
            Some("0ffe8360bab4910ef1b9e87fb812d8bc0a308b0d0eef8c8f44e0254ab3b07133")
        );
        let pure = "Tag: py2-none-any\nTag: py3-none-any\n";
        assert_eq!(
            wheels.hash_of("six", "1.16.0", pure),
            Some("8abb2f1d86890a2dfb989f9a77cfcfd3e47c2a354b01111771326f8aa26e0254")
        );
        // Another version, other tags, a build number the file has not: no hash.
        assert_eq!(wheels.hash_of("six", "1.17.0", pure), None);
        assert_eq!(wheels.hash_of("six", "1.16.0", "Tag: py3-none-any\n"), None);
        let built = format!("{pure}Build: 1\n");
        assert_eq!(wheels.hash_of("six", "1.16.0", &built), None);
        assert_eq!(LockedWheels::of("not toml ["), LockedWheels::default());
    }

    fn words(s: &str) -> Vec<String> {
        shlex::split(s).unwrap()
    }

    #[test]
    fn sync_args_go_to_export_and_install_as_uv_sync_uses_them() {
        let split = split_sync_args(&words(
            "--index-url https://pypi.example.com/simple/ --extra-index-url https://x.org/s \
             --extra fast --group=docs --locked --no-dev --no-install-project --compile-bytecode",
        ))
        .unwrap();
        assert_eq!(
            split.export,
            words(
                "--index-url https://pypi.example.com/simple/ --extra-index-url https://x.org/s \
                 --extra fast --group docs --locked --no-dev --no-emit-project"
            )
        );
        assert_eq!(
            split.install,
            words("--index-url https://pypi.example.com/simple/ --extra-index-url https://x.org/s")
        );
        assert_eq!(
            split.indexes,
            ["https://pypi.example.com/simple", "https://x.org/s"]
        );
        let plain = split_sync_args(&words("--locked --no-dev --no-install-project")).unwrap();
        assert_eq!(plain.indexes, [PYPI]);
        assert!(plain.install.is_empty());
        assert_eq!(
            split_sync_args(&words("--index internal=https://i.org/simple"))
                .unwrap()
                .indexes,
            [PYPI, "https://i.org/simple"]
        );
        assert!(
            split_sync_args(&words("--no-index --find-links /w"))
                .unwrap()
                .indexes
                .is_empty()
        );
    }

    #[test]
    fn sync_args_no_run_can_take_fall_back() {
        for args in [
            "--locked --no-binary",
            "--keyring-provider subprocess",
            "--config-setting x=y",
            "--extra",
        ] {
            let why = split_sync_args(&words(args)).unwrap_err().0;
            assert!(why.contains("uv sync"), "{args}: {why}");
        }
    }

    #[test]
    fn the_prompt_is_the_normalised_project_name() {
        let p = "[project]\nname = \"My_Lock..App\"\nversion = \"1\"\n";
        assert_eq!(project_prompt(p).unwrap(), "my-lock-app");
        assert!(project_prompt("[tool.uv]\nmanaged = true\n").is_err());
        assert!(project_prompt("not toml [").is_err());
    }

    #[test]
    fn tool_uv_settings_that_change_the_install_fall_back() {
        let lock_only = "[project]\nname = \"a\"\n[tool.uv]\ndev-dependencies = []\n\
                         [tool.uv.sources]\nx = { git = \"https://g\" }\n";
        assert_eq!(unhonoured_settings(lock_only), Ok(()));
        assert_eq!(unhonoured_settings("[project]\nname = \"a\"\n"), Ok(()));
        let why = unhonoured_settings("[tool.uv]\nno-binary = true\n")
            .unwrap_err()
            .0;
        assert!(why.contains("`no-binary`"), "{why}");
    }

    const EXPORTED: &str = "certifi==2026.10.19.post1 \\\n    --hash=sha256:13\n\
        colorama==0.4.6 ; sys_platform == 'win32' \\\n    --hash=sha256:aa\n\
        Zope.Interface==7.0\nwheel-pkg @ https://e.org/w-1-py3-none-any.whl \\\n    --hash=sha256:bb\n";

    #[test]
    fn exported_lines_give_names_and_local_paths_fall_back() {
        assert_eq!(
            exported_names(EXPORTED).unwrap(),
            ["certifi", "colorama", "zope-interface", "wheel-pkg"]
        );
        assert!(exported_names("-e ./libs/mine\n").is_err());
        assert!(exported_names("./libs/mine\n").is_err());
    }

    fn lock(sources: &[(&str, &str, &str)]) -> String {
        let mut out = String::from("version = 1\nrequires-python = \">=3.9\"\n");
        for (name, kind, value) in sources {
            out.push_str(&format!(
                "\n[[package]]\nname = \"{name}\"\nversion = \"1.0\"\nsource = {{ {kind} = \"{value}\" }}\n"
            ));
        }
        out
    }

    #[test]
    fn only_registry_and_url_sources_of_the_installed_set_pass() {
        let names = ["certifi".to_string(), "wheel-pkg".to_string()];
        let ok = lock(&[
            ("certifi", "registry", "https://pypi.org/simple/"),
            ("wheel-pkg", "url", "https://e.org/w-1-py3-none-any.whl"),
            ("dev-only", "git", "https://g.org/x?rev=1#abc"),
            ("demo", "editable", "."),
        ]);
        assert_eq!(check_locked(&ok, &names, &[PYPI.into()]), Ok(()));
        let private = lock(&[("certifi", "registry", "https://private.org/simple")]);
        let why = check_locked(&private, &names, &[PYPI.into()])
            .unwrap_err()
            .0;
        assert!(why.contains("private.org"), "{why}");
        assert_eq!(
            check_locked(&private, &names, &["https://private.org/simple".into()]),
            Ok(())
        );
        let git = lock(&[("certifi", "git", "https://g.org/c?rev=1#abc")]);
        assert!(
            check_locked(&git, &names, &[PYPI.into()])
                .unwrap_err()
                .0
                .contains("git")
        );
        let path = lock(&[("wheel-pkg", "directory", "libs/w")]);
        assert!(
            check_locked(&path, &names, &[PYPI.into()])
                .unwrap_err()
                .0
                .contains("local directory")
        );
    }
}
