//! The envd backend (`builder = "envd"`): writes the [`EnvdPlan`]'s context, runs the `envd`
//! CLI on it (`envd build --path DIR --tag IMAGE --platform P`), and turns its BuildKit
//! progress into [`Progress`] events. The image lands in dockerd: envd's default context
//! builds with dockerd's own BuildKit (`moby-worker`). The push is imagespec's, from dockerd,
//! as the Docker backend pushes: `envd build --output type=image,...,push=true` (what
//! flytekit's plugin runs) needs Docker API 1.46 ("platform" requires API version 1.46), which
//! dockerd 20.10 does not have.
//!
//! `Envd::find()?.build(&plan, &progress)`: the `envd` on `PATH` (or `IMAGESPEC_ENVD`) builds
//! the plan into dockerd.

use super::BackendError;
use crate::oci::ImageRef;
use crate::plan::EnvdPlan;
use crate::progress::{Event, Progress};
use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use tokio::io::{AsyncBufReadExt, BufReader};

/// The variable naming the envd binary; otherwise `envd` is looked up on `PATH`.
pub const ENVD_ENV: &str = "IMAGESPEC_ENVD";
/// The envd release imagespec is tested with.
pub const ENVD_VERSION: &str = "1.3.6";
/// Lines of output kept for the error message of a failed build.
const TAIL_LINES: usize = 40;

/// The envd CLI.
#[derive(Debug, Clone)]
pub struct Envd {
    binary: PathBuf,
}

impl Envd {
    /// `$IMAGESPEC_ENVD`, else `envd` on `PATH`.
    pub fn find() -> Result<Envd, BackendError> {
        if let Some(path) = std::env::var_os(ENVD_ENV).filter(|p| !p.is_empty()) {
            let binary = PathBuf::from(path);
            if !binary.is_file() {
                return Err(BackendError::EnvdMissing {
                    detail: format!("{ENVD_ENV}={} is not a file", binary.display()),
                });
            }
            return Ok(Envd { binary });
        }
        let found = std::env::var_os("PATH")
            .iter()
            .flat_map(std::env::split_paths)
            .map(|dir| dir.join("envd"))
            .find(|candidate| candidate.is_file());
        match found {
            Some(binary) => Ok(Envd { binary }),
            None => Err(BackendError::EnvdMissing {
                detail: "no `envd` on PATH".into(),
            }),
        }
    }

    /// Builds `plan` into dockerd as `plan.image`, streaming envd's progress.
    pub async fn build(&self, plan: &EnvdPlan, progress: &Progress) -> Result<(), BackendError> {
        if plan.platform.several() {
            return Err(BackendError::MultiPlatform {
                platform: plan.platform.clone(),
            });
        }
        if plan.ca_bundle.is_some() {
            progress.event(Event::Info(
                "warning: the CA bundle is not used by the envd builder: envd has no secret mounts, so a file can only \
                 reach its pip/apt steps inside an image layer; use a base image that trusts the CA",
            ));
        }
        for sparse in plan.sparse_files() {
            progress.event(Event::Warning(&sparse.to_string()));
        }
        // envd names the environment after the context directory (an image label, and the
        // working directory of `commands`): a directory named after the image keeps both the
        // same from build to build, so BuildKit's cache holds.
        let scratch = crate::scratch::ScratchDir::new_in(&std::env::temp_dir(), "envd")
            .map_err(|e| BackendError::Context(e.to_string()))?;
        let dir = scratch.path().join(environment_name(&plan.image));
        plan.write(&dir)
            .map_err(|e| BackendError::Context(e.to_string()))?;

        if let Some(context) = std::env::var("FLYTE_ENVD_CONTEXT")
            .ok()
            .filter(|c| !c.is_empty())
        {
            // flytekit's plugin switches envd's current context to this one, for good.
            self.run(&["context", "use", "--name", &context], progress)
                .await?;
        }
        let dir_arg = dir.to_string_lossy().into_owned();
        let platform = plan.platform.to_string();
        let image = plan.image.to_string();
        self.run(
            &[
                "build",
                "--path",
                &dir_arg,
                "--tag",
                &image,
                "--platform",
                &platform,
            ],
            progress,
        )
        .await
    }

    /// Runs `envd ARGS` with imagespec's defaults, its output as progress events.
    async fn run(&self, args: &[&str], progress: &Progress) -> Result<(), BackendError> {
        let mut command = tokio::process::Command::new(&self.binary);
        // envd reports usage to segment.io unless told not to: a build tool should not
        // phone home on its own. An explicit ENVD_ANALYTICS is respected.
        if std::env::var_os("ENVD_ANALYTICS").is_none() {
            command.env("ENVD_ANALYTICS", "false");
        }
        // Files copied into the image belong to root, not to whoever runs the build (envd's
        // default owner is the calling user's uid:gid). ENVD_BUILD_OWNER overrides it.
        if std::env::var_os("ENVD_BUILD_OWNER").is_none() {
            command.args(["--owner", "0:0"]);
        }
        command
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        command.kill_on_drop(true);
        let shown = format!("envd {}", args.join(" "));
        let mut child = command.spawn().map_err(|e| BackendError::EnvdMissing {
            detail: format!("{}: {e}", self.binary.display()),
        })?;
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        let mut stderr = BufReader::new(child.stderr.take().expect("piped stderr")).lines();
        let mut output = PlainProgress::default();
        let (mut out_open, mut err_open) = (true, true);
        while out_open || err_open {
            tokio::select! {
                line = stdout.next_line(), if out_open => match line {
                    Ok(Some(line)) => output.line(&line, progress),
                    _ => out_open = false,
                },
                line = stderr.next_line(), if err_open => match line {
                    Ok(Some(line)) => output.line(&line, progress),
                    _ => err_open = false,
                },
            }
        }
        output.finish(progress);
        let status = child.wait().await.map_err(|e| BackendError::BuildFailed {
            step: None,
            command: None,
            message: format!("{shown}: {e}"),
            log: Vec::new(),
            log_shown: false,
        })?;
        if status.success() {
            return Ok(());
        }
        let (step, log) = output.failed();
        // A shown step's output went by as it came in the plain view; a hidden one's
        // (envd's `[internal]` bookkeeping), or envd's own, did not.
        let log_shown = progress.shows_step_output()
            && !log.is_empty()
            && step.as_deref().is_some_and(|s| !bookkeeping(s));
        let message = output
            .fatal
            .as_deref()
            .map(short_error)
            .unwrap_or_else(|| format!("`{shown}` exited with {status}"));
        // envd's step names are their commands: no command line of its own.
        Err(BackendError::BuildFailed {
            step,
            command: None,
            message,
            log,
            log_shown,
        })
    }
}

/// The context directory's name: the image's repository name (`a/b/name:tag` → `name`), in
/// the characters envd accepts for an environment name. A repository path component is
/// never empty and holds only `[a-z0-9._-]` (the reference grammar `ImageRef` was parsed
/// by), so only `.` needs replacing.
fn environment_name(image: &ImageRef) -> String {
    let repository = image.repository();
    let last = repository.rsplit('/').next().unwrap_or(repository);
    last.replace('.', "-")
}

/// BuildKit's plain progress (what envd prints when its output is not a terminal), turned
/// into step events:
///
/// ```text
/// #7 [internal] pip install six        a step starts (a new number); its name may go on
/// #7 0.623 Collecting six              over more lines, up to a blank line or the next #
/// #7 DONE 0.8s                         ... CACHED, or ERROR: <message, maybe several lines>
/// ------                               then BuildKit repeats the failed step's output
/// time="..." level=fatal msg=exit app=envd error="<why envd failed>"
/// ```
#[derive(Default)]
struct PlainProgress {
    names: HashMap<String, String>,
    /// A step's name or error message still being read (they may span several lines).
    continuing: Option<Continued>,
    done: HashSet<String>,
    logs: HashMap<String, Vec<String>>,
    failed: Option<String>,
    /// The step that started last (`#0` output lines are its).
    current: Option<String>,
    tail: VecDeque<String>,
    fatal: Option<String>,
}

enum Continued {
    Name(String),
    Error(String, String),
}

impl PlainProgress {
    fn line(&mut self, line: &str, progress: &Progress) {
        if let Some(error) = line
            .contains("level=fatal")
            .then(|| go_quoted_field(line, "error"))
            .flatten()
        {
            self.fatal = Some(error);
            return;
        }
        if self.tail.len() == TAIL_LINES {
            self.tail.pop_front();
        }
        self.tail.push_back(line.to_string());
        let numbered = line
            .strip_prefix('#')
            .and_then(|l| l.split_once(' '))
            .filter(|(id, _)| !id.is_empty() && id.chars().all(|c| c.is_ascii_digit()));
        let Some((id, rest)) = numbered else {
            self.unnumbered(line, progress);
            return;
        };
        self.end_continued(progress);
        // envd's BuildKit prints a running command's output as `#0 <time> <line>`: it is the
        // step that started last's. After that step ended, `#0` lines are BuildKit
        // repeating a failed step's output under its error: shown already.
        let id = if id == "0" {
            match &self.current {
                Some(current) if !self.done.contains(current) => current.clone(),
                _ => return,
            }
        } else {
            format!("#{id}")
        };
        if !self.names.contains_key(&id) {
            self.names.insert(id.clone(), rest.trim().to_string());
            self.current = Some(id.clone());
            self.continuing = Some(Continued::Name(id));
            return;
        }
        if self.done.contains(&id) {
            // BuildKit repeats a failed step's output under the error: already shown.
            return;
        }
        self.step_line(id, rest, progress);
    }

    /// A line that continues the one before (a step's name, an error's message), or ends it.
    fn unnumbered(&mut self, line: &str, progress: &Progress) {
        match &mut self.continuing {
            Some(Continued::Name(id)) if !line.trim().is_empty() && !line.starts_with("------") => {
                let name = self.names.entry(id.clone()).or_default();
                name.push_str("; ");
                name.push_str(line.trim());
            }
            Some(Continued::Error(_, message))
                if !line.trim().is_empty() && !line.starts_with("------") =>
            {
                message.push('\n');
                message.push_str(line);
            }
            _ => self.end_continued(progress),
        }
    }

    /// `rest` of a line of step `id`, whose name is known: it ends the step, fails it, or is
    /// its output.
    fn step_line(&mut self, id: String, rest: &str, progress: &Progress) {
        let name = self.names[&id].clone();
        let hidden = bookkeeping(&name);
        if rest.starts_with("DONE") || rest == "CACHED" {
            self.done.insert(id.clone());
            if !hidden {
                progress.event(Event::StepDone {
                    id: &id,
                    name: &name,
                    label: None,
                    cached: rest == "CACHED",
                    error: None,
                });
            }
        } else if let Some(error) = rest.strip_prefix("ERROR: ") {
            self.continuing = Some(Continued::Error(id, error.to_string()));
        } else if rest.starts_with("CANCELED") {
            self.continuing = Some(Continued::Error(id, "canceled".into()));
        } else {
            // "0.623 Collecting six": the timestamp goes; status lines ("transferring ...")
            // have none.
            let text = match rest.split_once(' ') {
                Some((time, text)) if time.parse::<f64>().is_ok() => text,
                _ => rest,
            };
            self.logs
                .entry(id.clone())
                .or_default()
                .push(text.to_string());
            if !hidden {
                progress.event(Event::Log {
                    id: &id,
                    text: &format!("{text}\n"),
                });
            }
        }
    }

    /// A step whose name was being read starts; a step whose error was being read fails.
    fn end_continued(&mut self, progress: &Progress) {
        match self.continuing.take() {
            Some(Continued::Name(id)) => {
                let name = &self.names[&id];
                if !bookkeeping(name) {
                    progress.event(Event::StepStarted {
                        id: &id,
                        name,
                        label: None,
                    });
                }
            }
            Some(Continued::Error(id, message)) => {
                self.done.insert(id.clone());
                let name = self.names[&id].clone();
                if bookkeeping(&name) {
                    // Hidden while it ran: shown now that it failed.
                    progress.event(Event::StepStarted {
                        id: &id,
                        name: &name,
                        label: None,
                    });
                }
                let error = short_error(&message);
                progress.event(Event::StepDone {
                    id: &id,
                    name: &name,
                    label: None,
                    cached: false,
                    error: Some(&error),
                });
                self.failed.get_or_insert(id);
            }
            None => {}
        }
    }

    fn finish(&mut self, progress: &Progress) {
        self.end_continued(progress);
    }

    /// The failing step's name and the tail of its output (or of all output).
    fn failed(&self) -> (Option<String>, Vec<String>) {
        match &self.failed {
            Some(id) => {
                let log = self.logs.get(id).cloned().unwrap_or_default();
                (
                    self.names.get(id).cloned(),
                    log[log.len().saturating_sub(TAIL_LINES)..].to_vec(),
                )
            }
            None => (None, self.tail.iter().cloned().collect()),
        }
    }
}

/// BuildKit's error without the wrappers around it: envd's "failed to build the image:
/// failed to build: ... failed to solve: " chain, and `executor failed running [<the whole
/// script>]: exit code: N` (the script is the step's name already) as `exit code: N`.
fn short_error(message: &str) -> String {
    let inner = message
        .rsplit("failed to solve: ")
        .next()
        .unwrap_or(message);
    match (
        inner.strip_prefix("executor failed running ["),
        inner.rfind("]: "),
    ) {
        (Some(_), Some(end)) => inner[end + 3..].trim().to_string(),
        _ => inner.trim().to_string(),
    }
}

/// A step shown only when it fails: BuildKit's and envd's `[internal]` bookkeeping. envd
/// also calls its pip, conda and Python installs `[internal] ...`: those are shown.
fn bookkeeping(name: &str) -> bool {
    name.starts_with("[internal]") && !name.contains("install")
}

/// The value of `key="..."` in a logrus text line (Go `%q` quoting undone).
fn go_quoted_field(line: &str, key: &str) -> Option<String> {
    let start = line.find(&format!(" {key}=\""))? + key.len() + 3;
    let mut out = String::new();
    let mut chars = line[start..].chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(out),
            '\\' => match chars.next()? {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                other => out.push(other),
            },
            c => out.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::Mode;

    /// `text`'s lines read by a fresh [`PlainProgress`], finished.
    fn plain(text: &str) -> PlainProgress {
        let progress = Progress::with_mode(Mode::Quiet);
        let mut p = PlainProgress::default();
        for line in text.lines() {
            p.line(line, &progress);
        }
        p.finish(&progress);
        p
    }

    #[test]
    fn plain_progress_steps_logs_and_failure() {
        let text = "#1 docker-image://registry.test:5443/base:1\n#1 DONE 0.0s\n\n#7 [internal] pip install six\n#7 0.623 Collecting six\n#7 DONE 0.8s\n\n#8 bash -c set -euo pipefail\necho hi\npython -c 'import x'\n\n#8 0.17 ModuleNotFoundError: No module named 'x'\n#8 ERROR: executor failed running [bash -c set -euo pipefail\necho hi\npython -c import x\n]: exit code: 1\n------\n > bash -c set -euo pipefail\necho hi\n:\n#8 0.17 ModuleNotFoundError: No module named 'x'\n------\ntime=\"2026-11-25T08:32:03Z\" level=fatal msg=exit app=envd error=\"failed to build: \\\"x\\\" exit code: 1\" version=v1.3.6";
        let p = plain(text);
        assert_eq!(
            p.names["#8"],
            "bash -c set -euo pipefail; echo hi; python -c 'import x'"
        );
        assert_eq!(p.logs["#7"], ["Collecting six"]);
        let (step, log) = p.failed();
        assert_eq!(
            step.as_deref(),
            Some("bash -c set -euo pipefail; echo hi; python -c 'import x'")
        );
        assert_eq!(log, ["ModuleNotFoundError: No module named 'x'"]);
        assert_eq!(
            p.fatal.as_deref(),
            Some("failed to build: \"x\" exit code: 1")
        );
        assert_eq!(
            short_error(
                "failed to build the image: failed to solve LLB: failed to solve: executor failed running [bash -c set -euo pipefail\necho hi\n]: exit code: 1"
            ),
            "exit code: 1"
        );
        assert_eq!(
            short_error("failed to get the base image: nope"),
            "failed to get the base image: nope"
        );
    }

    /// envd 1.3's BuildKit prints a command's output as `#0` lines, and repeats them under
    /// the error: they are the running step's output, once.
    #[test]
    fn zero_numbered_output_is_the_running_steps_and_shown_once() {
        let text = "#3 docker-image://registry.test:5443/envd-python:bookworm\n#3 ...\n\n#4 bash -c set -euo pipefail\necho about to fail\n\n#0 0.277 about to fail\n#0 0.366 ModuleNotFoundError: No module named 'x'\n#4 ERROR: executor failed running [bash -c set -euo pipefail\necho about to fail\n]: exit code: 1\n------\n > bash -c set -euo pipefail\necho about to fail\n:\n#0 0.277 about to fail\n#0 0.366 ModuleNotFoundError: No module named 'x'\n------";
        let p = plain(text);
        assert!(!p.names.contains_key("#0"), "{:?}", p.names);
        let (step, log) = p.failed();
        assert_eq!(
            step.as_deref(),
            Some("bash -c set -euo pipefail; echo about to fail")
        );
        assert_eq!(
            log,
            ["about to fail", "ModuleNotFoundError: No module named 'x'"]
        );
    }

    #[test]
    fn environment_names() {
        assert_eq!(
            environment_name(&"registry.test:5443/org/envd-app:abc".parse().unwrap()),
            "envd-app"
        );
        assert_eq!(
            environment_name(&"localhost:5000/a.b:x".parse().unwrap()),
            "a-b"
        );
        assert_eq!(environment_name(&"name".parse().unwrap()), "name");
    }
}
