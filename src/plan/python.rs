//! How a [`BuildPlan`](super::BuildPlan)'s Python packages are installed: flytekit 1.16's
//! `prepare_python_install` (index options, secret mounts, requirements or a lock file) and
//! `prepare_python_executable` (micromamba's Python, `python_exec`'s, or — imagespec's
//! choice when nothing asks for conda — the base image's `python3` in a venv).

use super::PlanError;
use super::image::{
    ContextFile, Flavor, IndexSecret, Micromamba, PythonInstall, RenderOptions, Secret,
    option_bool, option_str,
};
use crate::spec::NormalizedSpec;
use std::path::Path;

/// The Python part of a plan.
pub(super) struct PythonPlan {
    pub install: PythonInstall,
    pub micromamba: Option<Micromamba>,
    pub extra_path: &'static str,
    pub python_exec: &'static str,
    pub secrets: Vec<Secret>,
    pub index_secrets: Vec<IndexSecret>,
}

/// The installer's arguments and the files it reads; `files` gets the context files the
/// install step reads (lock files, `pyproject.toml`, `requirements_uv.txt`).
pub(super) fn python_plan(
    spec: &NormalizedSpec,
    options: &RenderOptions,
    files: &mut Vec<ContextFile>,
) -> Result<PythonPlan, PlanError> {
    let compat = options.flavor == Flavor::FlytekitCompat;
    let (mut args, index_secrets) = index_options(spec, compat);
    let secrets = pip_secrets(spec);
    if let Some(extra) = spec.pip_extra_args.as_deref().filter(|s| !s.is_empty()) {
        args.push(extra.to_string());
    }
    let requirements = requirements(spec, files)?;
    let interpreter = interpreter(spec, options, compat)?;
    let install = match requirements {
        // Without micromamba, `UV_PYTHON` is `/root/.venv/bin/python`, the venv uv sync
        // is about to make: uv sync is given the base's interpreter instead (else it
        // fails with "No interpreter found for path `.venv/bin/python`").
        Requirements::UvLock => {
            args.extend(["--locked", "--no-dev", "--no-install-project"].map(String::from));
            PythonInstall::UvLock {
                base_python: interpreter.base_python,
                args: args.join(" "),
            }
        }
        Requirements::PoetryLock => {
            args.push("--no-root".into());
            PythonInstall::PoetryLock {
                args: args.join(" "),
            }
        }
        Requirements::Lines(lines) => {
            let content = requirements_uv(spec, options, lines)?;
            files.push(ContextFile::Content {
                to: "requirements_uv.txt".into(),
                content,
            });
            args.push("--requirement requirements_uv.txt".into());
            let args = args.join(" ");
            match interpreter.base_python {
                Some(base_python) => PythonInstall::Venv { base_python, args },
                None => PythonInstall::Requirements { args },
            }
        }
    };
    Ok(PythonPlan {
        install,
        micromamba: interpreter.micromamba,
        extra_path: interpreter.extra_path,
        python_exec: interpreter.python_exec,
        secrets,
        index_secrets,
    })
}

/// `--index-url`/`--extra-index-url` options, and (imagespec's Dockerfile) the BuildKit
/// secret each URL with credentials is read from.
fn index_options(spec: &NormalizedSpec, compat: bool) -> (Vec<String>, Vec<IndexSecret>) {
    let mut args = Vec::new();
    let mut index_secrets = Vec::new();
    let indexes = spec
        .pip_index
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(|url| ("--index-url", url))
        .into_iter()
        .chain(
            spec.pip_extra_index_url
                .iter()
                .flatten()
                .map(|url| ("--extra-index-url", url.as_str())),
        );
    for (flag, url) in indexes {
        args.push(format!("{flag} {url}"));
        if !compat && crate::redact::has_url_credentials(url) {
            let n = index_secrets.len();
            index_secrets.push(IndexSecret {
                id: format!("imagespec_pip_index_{n}"),
                target: format!("/run/imagespec/pip-index-{n}"),
                flag,
                url: crate::redact::SecretString::new(url),
            });
        }
    }
    (args, index_secrets)
}

/// `pip_secret_mounts`: `secret_<n>` mounted at the spec's target.
fn pip_secrets(spec: &NormalizedSpec) -> Vec<Secret> {
    spec.pip_secret_mounts
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, m)| Secret {
            id: format!("secret_{i}"),
            source: spec.resolve(&m.source),
            target: m.target.clone(),
        })
        .collect()
}

/// Refuses a `pip_secret_mounts` source that does not exist.
pub(super) fn check_secrets(spec: &NormalizedSpec, secrets: &[Secret]) -> Result<(), PlanError> {
    match secrets.iter().enumerate().find(|(_, s)| !s.source.exists()) {
        Some((i, s)) => Err(PlanError::SecretMissing {
            at: spec.at(&format!("pip_secret_mounts[{i}]")),
            name: spec.name().to_string(),
            path: s.source.clone(),
        }),
        None => Ok(()),
    }
}

/// What `requirements` names.
enum Requirements {
    /// A requirements file's lines (none without one): packages are added to them.
    Lines(Vec<String>),
    UvLock,
    PoetryLock,
}

/// Reads `requirements`: a requirements file's lines, or a lock file (which, with its
/// `pyproject.toml`, goes into the context).
fn requirements(
    spec: &NormalizedSpec,
    files: &mut Vec<ContextFile>,
) -> Result<Requirements, PlanError> {
    let Some(req) = spec.requirements.as_deref().filter(|s| !s.is_empty()) else {
        return Ok(Requirements::Lines(Vec::new()));
    };
    let name = || spec.name().to_string();
    let path = spec.resolve(req);
    let basename = crate::py::path::basename(req);
    if basename != "uv.lock" && basename != "poetry.lock" {
        let text = std::fs::read_to_string(&path).map_err(|source| PlanError::Requirements {
            at: spec.at("requirements"),
            name: name(),
            path: path.clone(),
            source,
        })?;
        // Python's readlines() (universal newlines: `\r\n` and a lone `\r` end lines
        // too) + str.strip() (which also strips U+001C..U+001F).
        use crate::py::text::{python_readlines, python_strip};
        let lines = python_readlines(&text);
        return Ok(Requirements::Lines(
            lines.iter().map(|l| python_strip(l).to_string()).collect(),
        ));
    }
    if spec.packages.is_some() {
        return Err(PlanError::LockWithPackages {
            at: spec.at("requirements"),
            name: name(),
            lock: basename.into(),
        });
    }
    let pyproject = path
        .parent()
        .unwrap_or(Path::new("."))
        .join("pyproject.toml");
    if !pyproject.exists() {
        return Err(PlanError::MissingPyproject {
            at: spec.at("requirements"),
            name: name(),
            lock: basename.into(),
            missing: pyproject,
        });
    }
    files.push(ContextFile::Copy {
        from: path.clone(),
        to: basename.to_string(),
    });
    files.push(ContextFile::Copy {
        from: pyproject,
        to: "pyproject.toml".into(),
    });
    Ok(match basename {
        "uv.lock" => Requirements::UvLock,
        _ => Requirements::PoetryLock,
    })
}

/// `requirements_uv.txt`: the requirement file's lines, the packages, and flytekit's pin
/// unless they name flytekit (or `add_flytekit = false`).
fn requirements_uv(
    spec: &NormalizedSpec,
    options: &RenderOptions,
    mut lines: Vec<String>,
) -> Result<String, PlanError> {
    lines.extend(spec.packages.iter().flatten().cloned());
    let add_flytekit = option_bool(spec, "add_flytekit")?.unwrap_or(true);
    if add_flytekit && !lines.iter().any(|r| is_flytekit(r)) {
        let pin = option_str(spec, "flytekit_requirement")?
            .unwrap_or_else(|| options.flytekit_requirement.clone());
        lines.push(pin);
    }
    Ok(lines.join("\n"))
}

/// flytekit's `_is_flytekit`: the leading `[\w-]+` of a requirement is `flytekit`.
fn is_flytekit(requirement: &str) -> bool {
    let name: String = requirement
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '-')
        .collect();
    name == "flytekit"
}

/// The Python the packages go into.
struct Interpreter {
    micromamba: Option<Micromamba>,
    extra_path: &'static str,
    python_exec: &'static str,
    /// The interpreter a venv at `/root/.venv` is made from (`None`: micromamba's).
    base_python: Option<String>,
}

/// The venv at `/root/.venv`, made from `base_python`.
fn venv(base_python: String) -> Interpreter {
    Interpreter {
        micromamba: None,
        extra_path: "/root/.venv/bin",
        python_exec: "/root/.venv/bin/python",
        base_python: Some(base_python),
    }
}

/// flytekit's `prepare_python_executable`, with imagespec's choice when nothing asks for
/// conda.
fn interpreter(
    spec: &NormalizedSpec,
    options: &RenderOptions,
    compat: bool,
) -> Result<Interpreter, PlanError> {
    let conda_packages = spec.conda_packages.as_ref().is_some_and(|v| !v.is_empty());
    let conda_channels = spec.conda_channels.as_ref().is_some_and(|v| !v.is_empty());
    let python_version = spec
        .python_version
        .as_ref()
        .map(|v| v.to_string())
        .filter(|v| !v.is_empty());
    if let Some(exec) = spec.python_exec.as_deref().filter(|s| !s.is_empty()) {
        let field = match (conda_channels, conda_packages) {
            (true, _) => "conda_channels",
            (_, true) => "conda_packages",
            _ => return Ok(venv(exec.to_string())),
        };
        return Err(PlanError::CondaWithPythonExec {
            at: spec.at(field),
            name: spec.name().to_string(),
            field,
        });
    }
    if !(compat || conda_packages || conda_channels || python_version.is_some()) {
        // Deliberate difference: flytekit installs a second Python with micromamba (at the
        // version of the Python running flytekit) even when the spec asks for neither
        // conda nor a version. imagespec uses the base image's python3 in a venv instead,
        // which needs no conda channel and does not depend on the host.
        return Ok(venv("python3".to_string()));
    }
    Ok(Interpreter {
        micromamba: Some(Micromamba {
            python_version: python_version.unwrap_or_else(|| options.host_python_version.clone()),
            packages: spec.conda_packages.clone().unwrap_or_default(),
            channels: spec.conda_channels.clone().unwrap_or_default(),
        }),
        extra_path: "/opt/micromamba/envs/runtime/bin",
        python_exec: "/opt/micromamba/envs/runtime/bin/python",
        base_python: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec_of(toml: &str) -> crate::SpecFile {
        crate::SpecFile::parse(Path::new("/p/spec.toml"), toml).unwrap()
    }

    #[test]
    fn flytekit_is_recognised_by_its_leading_name() {
        for yes in [
            "flytekit",
            "flytekit==1.16",
            "flytekit[all]>=1",
            "flytekit @ git+x",
        ] {
            assert!(is_flytekit(yes), "{yes}");
        }
        for no in ["flytekitplugins-envd", "flyte", "six", " flytekit"] {
            assert!(!is_flytekit(no), "{no}");
        }
    }

    #[test]
    fn index_urls_with_credentials_get_a_secret_except_in_flytekit_s_dockerfile() {
        let file = spec_of(
            "name = \"i\"\npip_index = \"https://u:p@h/s\"\n\
             pip_extra_index_url = [\"https://x/s\"]\n",
        );
        let (_, spec) = file.select(None).unwrap();
        let (args, secrets) = index_options(spec, false);
        assert_eq!(
            args,
            [
                "--index-url https://u:p@h/s",
                "--extra-index-url https://x/s"
            ]
        );
        assert_eq!(secrets.len(), 1);
        assert_eq!(
            (secrets[0].id.as_str(), secrets[0].target.as_str()),
            ("imagespec_pip_index_0", "/run/imagespec/pip-index-0")
        );
        assert!(index_options(spec, true).1.is_empty());
    }

    #[test]
    fn the_interpreter_is_python_exec_s_micromamba_s_or_the_base_s() {
        let of = |toml: &str, compat: bool| {
            let file = spec_of(toml);
            let (_, spec) = file.select(None).unwrap();
            interpreter(spec, &RenderOptions::default(), compat)
                .map(|i| (i.python_exec, i.base_python, i.micromamba.is_some()))
        };
        let base = ("/root/.venv/bin/python", Some("python3".to_string()), false);
        assert_eq!(of("name = \"i\"\n", false).unwrap(), base);
        let mamba = "/opt/micromamba/envs/runtime/bin/python";
        assert_eq!(of("name = \"i\"\n", true).unwrap(), (mamba, None, true));
        let version = "name = \"i\"\npython_version = \"3.12\"\n";
        assert_eq!(of(version, false).unwrap(), (mamba, None, true));
        let exec = "name = \"i\"\npython_exec = \"/usr/bin/python3\"\n";
        assert_eq!(
            of(exec, true).unwrap().1.as_deref(),
            Some("/usr/bin/python3")
        );
        let both = format!("{exec}conda_packages = [\"numpy\"]\n");
        assert!(matches!(
            of(&both, false),
            Err(PlanError::CondaWithPythonExec {
                field: "conda_packages",
                ..
            })
        ));
    }
}
