//! Templates → Dockerfile (and, in [`build_envd`], `build.envd`). Nothing else: every decision
//! was made in the [`BuildPlan`]; the template
//! (`templates/Dockerfile.j2`, data compiled into the binary) only lays it out.
//!
//! `Flavor::FlytekitCompat` reproduces flytekit 1.16's Dockerfile byte for byte, including
//! its long lines: flytekit's templates are ordinary Python strings in which `\` + newline
//! is a line continuation of the *Python source*, so every `RUN a \` / `    b` pair comes out
//! as one line `RUN a     b`. The template keeps the readable form and the compat flavor
//! joins those lines the same way.

pub(crate) mod envd;
mod key;
pub(crate) mod steps;
mod write;
pub use envd::build_envd;
pub use write::{CONTEXT_MTIME, Existing, WriteError};

use crate::plan::{BuildPlan, CopyStep, Flavor, PythonInstall};
use minijinja::{Environment, context};

const DOCKERFILE_TEMPLATE: &str = include_str!("../../templates/Dockerfile.j2");

/// The Dockerfile for `plan`.
pub fn dockerfile(plan: &BuildPlan) -> String {
    render(plan, false)
}

/// The Dockerfile, and with `markers` a line `#imagespec-step KIND` before each step (what
/// [`steps::StepLabels`] reads; the Dockerfile built never has them).
fn render(plan: &BuildPlan, markers: bool) -> String {
    let compat = plan.flavor == Flavor::FlytekitCompat;
    let micromamba = plan.micromamba.as_ref().map(|m| {
        context! {
            python_version => m.python_version,
            packages => m.packages.join(" "),
            channels => m.channels.iter().map(|c| format!("-c {c}")).collect::<Vec<_>>().join(" "),
        }
    });
    let entrypoint = plan
        .entrypoint
        .as_ref()
        .map(|e| format!("ENTRYPOINT {}", crate::py::text::json_list(e)))
        .unwrap_or_default();
    let copy_lines: Vec<String> = plan
        .copies
        .iter()
        .map(|c| format!("{}{}", steps::marker(markers, "copy"), copy_line(c)))
        .collect();
    let (install, secret_mounts) = install(plan);
    let rendered = environment(markers)
        .get_template("Dockerfile")
        .and_then(|t| {
            t.render(context! {
                compat,
                uv_image => plan.uv_image,
                micromamba_image => plan.micromamba_image,
                base_image => plan.base_image.to_string(),
                apt_packages => plan.apt_packages.join(" "),
                micromamba,
                extra_path => plan.extra_path,
                python_exec => plan.python_exec,
                env => minijinja::Value::from_safe_string(env_line(plan)),
                install,
                pip_secret_mount => secret_mounts,
                ca_bundle => plan.ca_bundle.is_some(),
                entrypoint,
                copy_source => plan.source.is_some(),
                copy_commands => minijinja::Value::from_safe_string(copy_lines.join("\n")),
                run_commands => plan.commands.join(" && "),
                commands_first => plan.commands_before_copy,
                image_id => plan.image_id,
            })
        })
        .expect("templates/Dockerfile.j2 renders");
    if compat {
        rendered.replace("\\\n", "")
    } else {
        collapse_blank_lines(&rendered)
    }
}

/// The template environment: the Dockerfile template, `step(kind)` (a marker line with
/// `markers`, else nothing), and the formatter that keeps every value on one line.
fn environment(markers: bool) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_keep_trailing_newline(true);
    // The template is part of the binary and tested: failing to parse it is a bug.
    env.add_template("Dockerfile", DOCKERFILE_TEMPLATE)
        .expect("templates/Dockerfile.j2 parses");
    env.add_function("step", move |kind: String| {
        minijinja::Value::from_safe_string(steps::marker(markers, &kind))
    });
    // Every value the template writes is on one line: a refused character (a line break in
    // a field that bypassed the spec's check, see `spec::control`) is written escaped, so no
    // value can end its instruction and start another. The few values that are Dockerfile
    // text made here (the step markers, the ENV pairs and COPY lines joined) are marked safe
    // and were built from escaped pieces.
    env.set_formatter(|out, _state, value| {
        let text = value.to_string();
        let text = if value.is_safe() {
            text.into()
        } else {
            one_line(&text)
        };
        out.write_str(&text).map_err(|e| {
            minijinja::Error::new(minijinja::ErrorKind::WriteFailure, "write failed").with_source(e)
        })
    });
    env
}

/// The template's `install` (kind, arguments, base interpreter) and the install step's
/// secret mounts.
fn install(plan: &BuildPlan) -> (minijinja::Value, String) {
    let compat = plan.flavor == Flavor::FlytekitCompat;
    let (kind, args, base_python) = match &plan.install {
        PythonInstall::Requirements { args } => ("requirements", args.as_str(), ""),
        PythonInstall::Venv { base_python, args } => ("venv", args.as_str(), base_python.as_str()),
        // flytekit's Dockerfile has no `--python` (its `UV_PYTHON` is micromamba's or
        // `python_exec`): compat leaves it out.
        PythonInstall::UvLock { base_python, args } => (
            "uv_lock",
            args.as_str(),
            base_python.as_deref().filter(|_| !compat).unwrap_or(""),
        ),
        PythonInstall::PoetryLock { args } => ("poetry_lock", args.as_str(), ""),
    };
    let (args, secret_mounts) = install_secrets(plan, args);
    (context! { kind, args, base_python }, secret_mounts)
}

/// The `ENV` pairs of the user space, each value on one line: `k=v` joined by spaces as
/// flytekit writes them (compat), else one quoted pair a line.
fn env_line(plan: &BuildPlan) -> String {
    let compat = plan.flavor == Flavor::FlytekitCompat;
    plan.env
        .iter()
        .map(|(k, v)| {
            let (k, v) = (one_line(k), one_line(v));
            if compat {
                format!("{k}={v}")
            } else {
                format!("{k}={}", env_value(&v))
            }
        })
        .collect::<Vec<_>>()
        .join(if compat { " " } else { " \\\n    " })
}

/// The install step's arguments and its secret mounts: `pip_secret_mounts`, then each index
/// URL with credentials, read from its BuildKit secret (never written on the `RUN` line: it
/// would stay in the image's history; the plan has none in compat).
fn install_secrets(plan: &BuildPlan, args: &str) -> (String, String) {
    let mut args = args.to_string();
    let mut mounts: Vec<String> = plan
        .secrets
        .iter()
        .map(|s| format!("--mount=type=secret,id={},target={}", s.id, s.target))
        .collect();
    for secret in &plan.index_secrets {
        let option = format!("{} {}", secret.flag, secret.url.expose());
        let from_secret = format!("{} \"$(cat {})\"", secret.flag, secret.target);
        args = args.replacen(&option, &from_secret, 1);
        mounts.push(format!(
            "--mount=type=secret,id={},target={},required=true",
            secret.id, secret.target
        ));
    }
    (args, mounts.join(" "))
}

/// A `copy` entry's `COPY` instruction (each value on one line, see [`one_line`]).
fn copy_line(step: &CopyStep) -> String {
    format!(
        "COPY --chown=flytekit {} /root/{}/",
        one_line(&step.from),
        one_line(&step.to)
    )
}

/// At most one blank line in a row: flytekit's layout leaves runs of them where optional
/// blocks are absent.
fn collapse_blank_lines(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank = 0;
    for line in text.split_inclusive('\n') {
        if line.trim().is_empty() {
            blank += 1;
            if blank > 1 {
                continue;
            }
        } else {
            blank = 0;
        }
        out.push_str(line);
    }
    out
}

/// `text` with every character the spec refuses (`spec::control::is_refused`)
/// escaped as `\n`, `\u{2028}`...: one line of Dockerfile text whatever a value holds.
pub fn one_line(text: &str) -> std::borrow::Cow<'_, str> {
    if crate::spec::control::first_refused(text).is_none() {
        text.into()
    } else {
        crate::spec::control::escaped(text).into()
    }
}

/// An ENV value as Dockerfile text: quoted when it holds whitespace or quotes (flytekit
/// writes `k=v` raw, which breaks on a space); `$VAR` still expands, as in flytekit.
fn env_value(v: &str) -> String {
    if v.is_empty()
        || v.chars()
            .any(|c| c.is_whitespace() || c == '"' || c == '\'' || c == '\\')
    {
        format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        v.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{BuildPlan, RenderOptions};

    fn dockerfile_of(toml: &str, flavor: Flavor) -> String {
        let files = [
            ("uv.lock", "version = 1\n"),
            ("pyproject.toml", "[project]\n"),
        ];
        let options = RenderOptions {
            flavor,
            ..Default::default()
        };
        dockerfile(&crate::plan::plan_in_dir(toml, &files, &options))
    }

    #[test]
    fn a_copy_step_is_one_copy_line_whatever_its_paths_hold() {
        let step = |from: &str, to: &str| CopyStep {
            from: from.into(),
            to: to.into(),
        };
        assert_eq!(
            copy_line(&step("copy/data", "data")),
            "COPY --chown=flytekit copy/data /root/data/"
        );
        assert_eq!(
            copy_line(&step("copy/x\nRUN y", ".")),
            "COPY --chown=flytekit copy/x\\nRUN y /root/./"
        );
    }

    #[test]
    fn secrets_become_mounts_and_index_urls_are_read_from_theirs() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("netrc"), "x").unwrap();
        let toml = "pip_index = \"https://u:p@h/s\"\n\
                    pip_extra_index_url = [\"https://x/s\"]\n\
                    pip_secret_mounts = [[\"netrc\", \"/root/.netrc\"]]\n";
        std::fs::write(dir.path().join("spec.toml"), toml).unwrap();
        let file = crate::load(&dir.path().join("spec.toml")).unwrap();
        let (_, spec) = file.select(None).unwrap();
        let tag = crate::tag::compute(spec, &Default::default()).unwrap();
        let plan = BuildPlan::new(spec, &tag, &RenderOptions::default()).unwrap();
        let (args, mounts) = install_secrets(&plan, "--index-url https://u:p@h/s --pre");
        assert_eq!(
            args,
            "--index-url \"$(cat /run/imagespec/pip-index-0)\" --pre"
        );
        assert_eq!(
            mounts,
            "--mount=type=secret,id=secret_0,target=/root/.netrc \
             --mount=type=secret,id=imagespec_pip_index_0,target=/run/imagespec/pip-index-0,required=true"
        );
        assert!(env_line(&plan).starts_with("PYTHONPATH=/root"));
    }

    /// `UV_PYTHON` names the venv uv sync is about to make: without micromamba, uv sync is
    /// given the base's interpreter (it failed with "No interpreter found" before).
    #[test]
    fn uv_sync_gets_the_bases_python_unless_micromamba_or_compat() {
        let lock = "requirements = \"uv.lock\"\n";
        let run = |toml: &str, flavor| {
            dockerfile_of(toml, flavor)
                .lines()
                .find(|l| l.contains("uv sync"))
                .unwrap()
                .trim()
                .to_string()
        };
        assert!(
            run(lock, Flavor::Imagespec)
                .starts_with("uv sync --python python3 --locked --no-dev --no-install-project"),
        );
        let exec = format!("{lock}python_exec = \"/usr/bin/python3\"\n");
        assert!(run(&exec, Flavor::Imagespec).starts_with("uv sync --python /usr/bin/python3 "));
        let micromamba = format!("{lock}python_version = \"3.11\"\n");
        assert!(run(&micromamba, Flavor::Imagespec).starts_with("uv sync --locked "));
        assert!(run(&exec, Flavor::FlytekitCompat).contains("uv sync --locked "));
    }

    /// The CA bundle's mount and exports are template text (a line continuation included),
    /// not values: they are written as they are, never escaped (escaping them once turned
    /// the continuation into a literal `\n` that ran as a command).
    #[test]
    fn the_ca_bundle_mount_keeps_its_line_continuation() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("spec.toml"),
            "packages = [\"requests\"]\napt_packages = [\"git\"]\n",
        )
        .unwrap();
        let file = crate::load(&dir.path().join("spec.toml")).unwrap();
        let (_, spec) = file.select(None).unwrap();
        let tag = crate::tag::compute(spec, &Default::default()).unwrap();
        let options = RenderOptions {
            ca_bundle: Some(dir.path().join("ca.pem")),
            ..Default::default()
        };
        let text = dockerfile(&BuildPlan::new(spec, &tag, &options).unwrap());
        assert!(!text.contains("\\n"), "{text}");
        let mounts = text
            .lines()
            .filter(|l| {
                l.trim_end()
                    .ends_with("target=/run/imagespec/ca-bundle.crt \\")
            })
            .count();
        assert_eq!(mounts, 2, "the apt and the pip step:\n{text}");
        assert!(
            text.contains("export SSL_CERT_FILE=/run/imagespec/ca-bundle.crt"),
            "{text}"
        );
    }
}
