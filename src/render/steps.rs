//! What each Dockerfile step is for, in words a person reads: the progress view shows
//! `install apt packages: git` where BuildKit names the step
//! `[stage-1 2/12] RUN --mount=type=cache,… apt-get update && apt-get install …`.
//!
//! The template marks each step with its kind (`{{ step('apt') }}`, which renders to
//! nothing in the Dockerfile that is built); rendering once more with the marks gives each
//! instruction's text and kind, and the plan gives the words (the package names, how many
//! files are copied). BuildKit names a step by its instruction's text, so
//! [`StepLabels::label`] finds the label by that text.

use crate::plan::{BuildPlan, ContextFile, PythonInstall};

/// The line that marks the instruction after it with its kind (only in the marked render).
const MARKER: &str = "#imagespec-step ";

/// The template's `step(kind)`: the marker line, or nothing.
pub(crate) fn marker(on: bool, kind: &str) -> String {
    if on {
        format!("{MARKER}{kind}\n")
    } else {
        String::new()
    }
}

/// Labels by instruction text, for one Dockerfile.
#[derive(Debug, Clone, Default)]
pub struct StepLabels {
    /// (the instruction as [`normalise`] writes it, its label), in Dockerfile order.
    steps: Vec<(String, String)>,
}

impl StepLabels {
    /// The labels of `plan`'s Dockerfile steps.
    pub fn new(plan: &BuildPlan) -> StepLabels {
        let marked = super::render(plan, true);
        let steps = instructions(&marked)
            .into_iter()
            .filter_map(|(kind, text)| {
                let label = label(plan, kind?.as_str(), &text)?;
                Some((normalise(&text), label))
            })
            .collect();
        StepLabels { steps }
    }

    /// Labels for a Dockerfile written elsewhere: `(instruction, label)` pairs.
    pub fn of<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> StepLabels {
        StepLabels {
            steps: pairs
                .into_iter()
                .map(|(text, label)| (normalise(text), label.to_string()))
                .collect(),
        }
    }

    /// The label of the step whose instruction is `instruction` (as BuildKit names it,
    /// without its `[stage n/m]` prefix).
    pub fn label(&self, instruction: &str) -> Option<&str> {
        let wanted = normalise(instruction);
        self.steps
            .iter()
            .find(|(text, _)| *text == wanted)
            .or_else(|| {
                self.steps
                    .iter()
                    .find(|(text, _)| expands_to(text, &wanted))
            })
            .map(|(_, label)| label.as_str())
    }
}

/// Whether `expanded` is `instruction` with its `$VAR`/`${VAR}` references replaced by
/// anything: BuildKit writes a step's name with the variables it knows expanded
/// (`echo "export PATH=$PATH"` is named `echo "export PATH=/root/.venv/bin:…"`).
fn expands_to(instruction: &str, expanded: &str) -> bool {
    static VARIABLE: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"\$(\{[^}]*\}|[A-Za-z_][A-Za-z0-9_]*)").expect("a valid pattern")
    });
    if !instruction.contains('$') {
        return false;
    }
    let literal: Vec<&str> = VARIABLE.split(instruction).collect();
    let (first, rest) = literal
        .split_first()
        .expect("split gives one part at least");
    let Some(mut remaining) = expanded.strip_prefix(first) else {
        return false;
    };
    for (i, part) in rest.iter().enumerate() {
        if i + 1 == rest.len() {
            return remaining.ends_with(part);
        }
        match remaining.find(part) {
            Some(at) => remaining = &remaining[at + part.len()..],
            None => return false,
        }
    }
    true
}

/// A Dockerfile's instructions, continuation lines joined, each with the kind its marker
/// gave it (comments and blank lines dropped).
fn instructions(dockerfile: &str) -> Vec<(Option<String>, String)> {
    let mut out = Vec::new();
    let mut kind = None;
    let mut current: Option<String> = None;
    for line in dockerfile.lines() {
        if let Some(text) = &mut current {
            let (body, continues) = continued(line);
            text.push(' ');
            text.push_str(body);
            if !continues {
                out.push((kind.take(), current.take().expect("an instruction")));
            }
            continue;
        }
        let trimmed = line.trim();
        if let Some(marked) = trimmed.strip_prefix(MARKER) {
            kind = Some(marked.trim().to_string());
        } else if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        } else {
            let (body, continues) = continued(trimmed);
            if continues {
                current = Some(body.to_string());
            } else {
                out.push((kind.take(), body.to_string()));
            }
        }
    }
    if let Some(text) = current {
        out.push((kind, text));
    }
    out
}

/// A line without its continuation backslash, and whether the instruction goes on.
fn continued(line: &str) -> (&str, bool) {
    match line.trim_end().strip_suffix('\\') {
        Some(body) => (body, true),
        None => (line, false),
    }
}

/// An instruction as compared: runs of spaces folded, `--mount=...` options dropped (BuildKit
/// keeps them in a step's name, they say nothing of its purpose), a `FROM` image named as
/// BuildKit names it (`docker.io/library/` and a pinned digest dropped, `:latest` added).
fn normalise(instruction: &str) -> String {
    let words: Vec<&str> = instruction
        .split_whitespace()
        .filter(|w| !w.starts_with("--mount="))
        .collect();
    match words.split_first() {
        Some((from, rest)) if from.eq_ignore_ascii_case("FROM") => {
            let image = rest
                .iter()
                .find(|w| !w.starts_with("--"))
                .copied()
                .unwrap_or_default();
            format!("FROM {}", image_name(image))
        }
        _ => words.join(" "),
    }
}

/// `image` without `docker.io/library/` and a digest, with `:latest` when it has no tag.
fn image_name(image: &str) -> String {
    let image = image.split('@').next().unwrap_or(image);
    let image = image
        .strip_prefix("docker.io/library/")
        .or_else(|| image.strip_prefix("docker.io/"))
        .unwrap_or(image);
    let last = image.rsplit('/').next().unwrap_or(image);
    if last.contains(':') {
        image.to_string()
    } else {
        format!("{image}:latest")
    }
}

/// The label of one marked instruction.
fn label(plan: &BuildPlan, kind: &str, text: &str) -> Option<String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    Some(match kind {
        "uv" => format!("uv image {}", plan.uv_image),
        "micromamba" => format!(
            "micromamba image {}",
            plan.micromamba_image
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default()
        ),
        "base" => format!("base image {}", plan.base_image),
        "workdir" => format!("working directory {}", words.get(1)?),
        "apt" => format!("install apt packages: {}", plan.apt_packages.join(", ")),
        "ca-certificates" => "copy CA certificates from micromamba".into(),
        "user" => "create user flytekit".into(),
        "chown" => "give /root and /home to flytekit".into(),
        "conda" => {
            let m = plan.micromamba.as_ref()?;
            let mut packages = vec![format!("python={}", m.python_version)];
            packages.extend(m.packages.iter().cloned());
            format!("install conda packages: {}", packages.join(", "))
        }
        "poetry" => "install poetry".into(),
        "python" => match &plan.install {
            PythonInstall::Requirements { .. } | PythonInstall::Venv { .. } => {
                format!("install Python packages ({})", requirement_count(plan))
            }
            PythonInstall::UvLock { .. } => "install Python packages from uv.lock".into(),
            PythonInstall::PoetryLock { .. } => "install Python packages from poetry.lock".into(),
        },
        "commands" => match plan.commands.len() {
            0 => "run commands (none)".into(),
            1 => "run command".into(),
            n => format!("run commands ({n})"),
        },
        "source" => {
            let n = plan.source.as_ref().map_or(0, |s| s.files.len());
            format!("copy source ({n} file{})", if n == 1 { "" } else { "s" })
        }
        "copy" => {
            // COPY --chown=flytekit <in context> /root/<dest>/
            let from = words.iter().rev().nth(1)?;
            let from = from.strip_prefix("copy/").unwrap_or(from);
            format!("copy {from} to {}", words.last()?.replace("/./", "/"))
        }
        "profile" => "write PATH to ~/.profile".into(),
        _ => return None,
    })
}

/// The lines of `requirements_uv.txt`: the packages (and requirement files' lines) the
/// install step resolves.
fn requirement_count(plan: &BuildPlan) -> usize {
    plan.files
        .iter()
        .find_map(|f| match f {
            ContextFile::Content { to, content } if to == "requirements_uv.txt" => Some(
                content
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .count(),
            ),
            _ => None,
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Flavor, RenderOptions};

    #[test]
    fn step_labels_match_run_lines_without_mounts_or_spaces() {
        let labels = StepLabels::of([("RUN --mount=type=cache,target=/x make", "build it")]);
        assert_eq!(labels.label("RUN make"), Some("build it"));
        assert_eq!(
            labels.label("RUN   --mount=type=cache,target=/x   make "),
            Some("build it")
        );
        assert_eq!(labels.label("RUN make install"), None);
    }

    fn plan_with(toml: &str, flavor: Flavor) -> BuildPlan {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("src/pkg")).unwrap();
        for f in ["a.py", "b.py", "pkg/c.py"] {
            std::fs::write(d.join("src").join(f), "x = 1\n").unwrap();
        }
        std::fs::write(d.join("extra.txt"), "x").unwrap();
        std::fs::write(d.join("spec.toml"), toml).unwrap();
        let file = crate::load(&d.join("spec.toml")).unwrap();
        let spec = file.select(None).unwrap().1;
        let tag = crate::tag::compute(spec, &Default::default()).unwrap();
        let options = RenderOptions {
            flavor,
            ..Default::default()
        };
        BuildPlan::new(spec, &tag, &options).unwrap()
    }

    fn plan(toml: &str) -> BuildPlan {
        plan_with(toml, Flavor::Imagespec)
    }

    /// Every step of the rendered Dockerfile that BuildKit shows as a step (FROM, RUN,
    /// COPY, WORKDIR) has a label, and the labels say what the spec asked for.
    fn labels_of(plan: &BuildPlan) -> Vec<(String, String)> {
        let labels = StepLabels::new(plan);
        instructions(&crate::render::dockerfile(plan))
            .into_iter()
            .filter(|(_, text)| {
                ["FROM", "RUN", "COPY", "WORKDIR"]
                    .iter()
                    .any(|k| text.starts_with(k))
            })
            .map(|(_, text)| {
                let label = labels.label(&text).map(str::to_string);
                (
                    text.clone(),
                    label.unwrap_or_else(|| panic!("no label: {text}")),
                )
            })
            .collect()
    }

    const FULL: &str = r#"
name = "x"
registry = "localhost:5000"
base_image = "localhost:5000/debian-python:bookworm"
apt_packages = ["git", "curl"]
packages = ["six", "requests==2.31"]
commands = ["echo one", "echo two"]
source_root = "src"
source_copy_mode = "all"
copy = ["extra.txt"]
builder_config = { uv_image = "localhost:5000/uv:0.5" }
builder_options = { add_flytekit = false }
"#;

    #[test]
    fn each_step_of_the_dockerfile_has_a_label_from_the_plan() {
        let plan = plan(FULL);
        let labels: Vec<String> = labels_of(&plan).into_iter().map(|(_, l)| l).collect();
        for wanted in [
            "uv image localhost:5000/uv:0.5",
            "base image localhost:5000/debian-python:bookworm",
            "install apt packages: git, curl",
            "create user flytekit",
            "install Python packages (2)",
            "run commands (2)",
            "copy source (3 files)",
            "copy extra.txt to /root/",
            "working directory /root",
            "write PATH to ~/.profile",
        ] {
            assert!(labels.iter().any(|l| l == wanted), "{wanted}: {labels:#?}");
        }
    }

    /// Asserts that `labels` holds `label`.
    fn assert_label(labels: &[String], label: &str) {
        assert!(labels.iter().any(|l| l == label), "{labels:#?}");
    }

    #[test]
    fn compat_lock_files_and_conda_steps_have_labels() {
        let compat = plan_with(
            "name = \"x\"\npython_version = \"3.12\"\nconda_packages = [\"numpy\"]\npackages = [\"six\"]\n",
            Flavor::FlytekitCompat,
        );
        let labels: Vec<String> = labels_of(&compat).into_iter().map(|(_, l)| l).collect();
        assert_label(&labels, "install conda packages: python=3.12, numpy");
        assert_label(
            &labels,
            "micromamba image mambaorg/micromamba:2.0.3-debian12-slim",
        );
        // flytekit's own Dockerfile runs an empty commands step.
        assert_label(&labels, "run commands (none)");
        // add_flytekit: the flytekit pin is one more requirement.
        assert_label(&labels, "install Python packages (2)");
    }

    #[test]
    fn lock_file_installs_have_labels() {
        for (lock, label) in [
            ("uv.lock", "install Python packages from uv.lock"),
            ("poetry.lock", "install Python packages from poetry.lock"),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let d = dir.path();
            std::fs::write(d.join(lock), "# lock\n").unwrap();
            std::fs::write(
                d.join("pyproject.toml"),
                "[project]\nname = \"p\"\nversion = \"0\"\n",
            )
            .unwrap();
            let toml = format!("name = \"x\"\nrequirements = \"{lock}\"\n");
            std::fs::write(d.join("spec.toml"), toml).unwrap();
            let file = crate::load(&d.join("spec.toml")).unwrap();
            let spec = file.select(None).unwrap().1;
            let tag = crate::tag::compute(spec, &Default::default()).unwrap();
            let plan = BuildPlan::new(spec, &tag, &RenderOptions::default()).unwrap();
            let labels: Vec<String> = labels_of(&plan).into_iter().map(|(_, l)| l).collect();
            assert!(labels.iter().any(|l| l == label), "{lock}: {labels:#?}");
        }
    }

    #[test]
    fn buildkit_names_find_their_labels() {
        let plan = plan(FULL);
        let labels = StepLabels::new(&plan);
        // As dockerd 20.10's BuildKit names them (the stage prefix taken off by the caller).
        for (name, label) in [
            (
                "RUN --mount=type=cache,sharing=locked,mode=0777,target=/var/cache/apt,id=apt apt-get update && apt-get install -y --no-install-recommends     git curl",
                "install apt packages: git, curl",
            ),
            (
                "RUN --mount=type=cache,sharing=locked,mode=0777,target=/root/.cache/uv,id=uv --mount=from=uv,source=/uv,target=/usr/bin/uv --mount=type=bind,target=requirements_uv.txt,src=requirements_uv.txt  { [ -x /root/.venv/bin/python ] || uv venv --python python3 --system-site-packages /root/.venv; } && uv pip install --python /root/.venv/bin/python --requirement requirements_uv.txt && chown -R flytekit /root/.venv",
                "install Python packages (2)",
            ),
            ("COPY --chown=flytekit ./src /root", "copy source (3 files)"),
            (
                "FROM localhost:5000/debian-python:bookworm",
                "base image localhost:5000/debian-python:bookworm",
            ),
            (
                "FROM localhost:5000/uv:0.5@sha256:0123",
                "uv image localhost:5000/uv:0.5",
            ),
            ("WORKDIR /root", "working directory /root"),
        ] {
            assert_eq!(labels.label(name), Some(label), "{name}");
        }
        assert_eq!(labels.label("RUN echo something else"), None);
    }

    #[test]
    fn variables_buildkit_expanded_still_match() {
        let labels = StepLabels::of([(
            r#"RUN mkdir -p $HOME && echo "export PATH=$PATH" >> $HOME/.profile"#,
            "write PATH to ~/.profile",
        )]);
        for name in [
            r#"RUN mkdir -p $HOME && echo "export PATH=/root/.venv/bin:/usr/bin" >> $HOME/.profile"#,
            r#"RUN mkdir -p /root && echo "export PATH=" >> /root/.profile"#,
        ] {
            assert_eq!(
                labels.label(name),
                Some("write PATH to ~/.profile"),
                "{name}"
            );
        }
        for name in [
            r#"RUN mkdir -p $HOME && echo "export PATH=/x" >> $HOME/.bashrc"#,
            r#"RUN rm -rf $HOME && echo "export PATH=/x" >> $HOME/.profile"#,
        ] {
            assert_eq!(labels.label(name), None, "{name}");
        }
        assert!(expands_to("RUN echo ${A}b", "RUN echo xyzb"));
        assert!(!expands_to("RUN echo b", "RUN echo b"));
    }

    #[test]
    fn image_names_compare_as_buildkit_writes_them() {
        assert_eq!(
            normalise("FROM debian:bookworm-slim"),
            "FROM debian:bookworm-slim"
        );
        assert_eq!(
            normalise("FROM docker.io/library/debian:bookworm-slim@sha256:ab"),
            "FROM debian:bookworm-slim"
        );
        assert_eq!(normalise("FROM debian"), "FROM debian:latest");
        assert_eq!(
            normalise("FROM localhost:5000/x as uv"),
            "FROM localhost:5000/x:latest"
        );
        assert_eq!(
            normalise("FROM --platform=linux/arm64 ghcr.io/a/b:1 as b"),
            "FROM ghcr.io/a/b:1"
        );
    }

    #[test]
    fn the_dockerfile_built_has_no_markers() {
        let plan = plan(FULL);
        let dockerfile = crate::render::dockerfile(&plan);
        assert!(!dockerfile.contains(MARKER.trim()), "{dockerfile}");
        let marked = crate::render::render(&plan, true);
        let unmarked: String = marked
            .split_inclusive('\n')
            .filter(|l| !l.starts_with(MARKER))
            .collect();
        assert_eq!(unmarked, dockerfile);
    }

    #[test]
    fn index_credentials_are_read_from_secrets_except_in_flytekit_s_dockerfile() {
        let spec = "name = \"i\"\n\
                    pip_index = \"https://u:s3cret@idx.example/simple\"\n\
                    pip_extra_index_url = [\"https://tok@x.example/s\", \"https://y.example/s\"]\n";
        let ours = plan(spec);
        let dockerfile = crate::render::dockerfile(&ours);
        assert!(
            !dockerfile.contains("s3cret") && !dockerfile.contains("tok@"),
            "{dockerfile}"
        );
        for n in [0, 1] {
            assert!(
                dockerfile.contains(&format!(
                    "--mount=type=secret,id=imagespec_pip_index_{n},\
                     target=/run/imagespec/pip-index-{n},required=true"
                )),
                "{dockerfile}"
            );
        }
        assert!(
            dockerfile.contains(
                "--index-url \"$(cat /run/imagespec/pip-index-0)\" \
                 --extra-index-url \"$(cat /run/imagespec/pip-index-1)\" \
                 --extra-index-url https://y.example/s"
            ),
            "{dockerfile}"
        );
        // The step still has its label (BuildKit names it by this text).
        labels_of(&ours);
        // The key changes with the index's host, not with its credentials.
        let rotated = plan(&spec.replace("s3cret", "rotated"));
        assert_eq!(ours.dependencies().image, rotated.dependencies().image);
        let moved = plan(&spec.replace("idx.example", "other.example"));
        assert_ne!(ours.dependencies().image, moved.dependencies().image);
        // flytekit's own Dockerfile writes the URL on the line, as flytekit does.
        let compat = plan_with(spec, Flavor::FlytekitCompat);
        assert!(compat.index_secrets.is_empty());
        let dockerfile = crate::render::dockerfile(&compat);
        assert!(
            dockerfile.contains("--index-url https://u:s3cret@idx.example/simple"),
            "{dockerfile}"
        );
    }
}
