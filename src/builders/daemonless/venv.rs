//! The venv the Dockerfile's install step makes at `/root/.venv`, made on this machine with
//! uv for the image's platform and Python:
//!
//! ```text
//! uv venv --python python3 --system-site-packages /root/.venv
//! uv pip install --python /root/.venv/bin/python <args> --requirement requirements_uv.txt
//! ```
//!
//! uv needs an interpreter to make a venv and to install into it, and cannot run the
//! image's. So the venv is made in a staging directory with a Python of this machine (the
//! image's minor version when there is one, any otherwise), and uv installs into it for
//! the image (`--python-version`, `--python-platform`: wheels only, `--no-build`), while a
//! dry run *with* builds allowed says what the Docker build would install: when the two
//! differ (a newest release with only a source distribution, which wheels only would
//! silently replace by an older one), it falls back to dockerd. Then the tree is made the image's:
//! `bin/python` → the base's interpreter, `pyvenv.cfg` naming it, `lib/pythonX.Y` for the
//! image's version, the staging path replaced by `/root/.venv` in the activate scripts and
//! console scripts' shebangs, and their `RECORD` hashes updated.
//!
//! A `uv.lock` spec (`uv sync` in the Dockerfile) takes the other road of [`Packages`]: the
//! project venv (no system site-packages, uv sync's prompt), the locked set from `uv export
//! --locked` installed as it is, wheels only and hash-checked; [`super::uvlock`] says how.
//!
//! uv is the PyPI wheel's binary: `IMAGESPEC_UV`, else the `uv` beside the running
//! `imagespec` (the `imagespec-cli` wheel brings it), else `uv` on `PATH`. uv's cache is
//! `UV_CACHE_DIR`, else `uv/` in the imagespec cache dir, so a second build downloads
//! nothing. uv does not use the system's CA store by default: it gets `UV_NATIVE_TLS=1`
//! (or `SSL_CERT_FILE` = `--ca-bundle`). `UV_*` settings and uv config files of this
//! machine are not used (a Docker build sees neither).

use super::Fallback;
use super::base::BasePython;
use super::kept::{Kept, UvForm};
use crate::oci::Platform;
use base64::Engine as _;
use sha2::{Digest as _, Sha256};
use std::path::{Path, PathBuf};

/// The environment variable naming the uv binary.
pub const UV_ENV: &str = "IMAGESPEC_UV";

/// The venv's place in the image.
pub const VENV: &str = "/root/.venv";

/// The uv binary: `IMAGESPEC_UV`, else the `uv` beside the running `imagespec` (the
/// `imagespec-cli` wheel depends on PyPI's `uv` wheel, so pip, pipx and `uv tool install`
/// put both in one venv's `bin/`), else `uv` on `PATH`.
pub fn find_uv() -> Result<PathBuf, Fallback> {
    let explicit = std::env::var_os(UV_ENV).filter(|p| !p.is_empty());
    // /proc/self/exe: the venv's own binary, also when PATH reaches it through pipx's or
    // uv's symlink in ~/.local/bin.
    let exe = std::env::current_exe().ok();
    let path = std::env::var_os("PATH");
    locate_uv(
        explicit.map(PathBuf::from),
        exe.as_deref(),
        path.as_deref(),
        |p| p.is_file(),
    )
}

/// Where [`find_uv`] looks, in order, given the environment's values; `is_file` is the only
/// look at the disk.
fn locate_uv(
    explicit: Option<PathBuf>,
    exe: Option<&Path>,
    path: Option<&std::ffi::OsStr>,
    is_file: impl Fn(&Path) -> bool,
) -> Result<PathBuf, Fallback> {
    if let Some(path) = explicit {
        return if is_file(&path) {
            Ok(path)
        } else {
            Err(Fallback(format!(
                "{UV_ENV}={} is not a file",
                path.display()
            )))
        };
    }
    let beside = exe.and_then(Path::parent).map(Path::to_path_buf);
    let on_path = path.map(|p| std::env::split_paths(p).collect::<Vec<_>>());
    beside
        .into_iter()
        .chain(on_path.into_iter().flatten())
        .map(|dir| dir.join("uv"))
        .find(|p| is_file(p))
        .ok_or_else(|| {
            Fallback(format!(
                "no uv on this machine (`pipx install imagespec-cli` brings it, or `pipx install uv`, or set {UV_ENV} to its binary)"
            ))
        })
}

/// The wheel platform uv installs for: `x86_64-manylinux_2_31` and the like, the newest
/// manylinux level (of those every uv since 0.4 knows) the base's glibc supports.
pub fn python_platform(platform: &Platform, glibc: (u32, u32)) -> Result<String, Fallback> {
    let arch = match platform.architecture() {
        "amd64" => "x86_64",
        "arm64" => "aarch64",
        other => return Err(Fallback(format!("no wheels platform for {other}"))),
    };
    let level = [(2, 31), (2, 28), (2, 17)]
        .into_iter()
        .find(|l| *l <= glibc)
        .ok_or_else(|| {
            Fallback(format!(
                "the base's glibc {}.{} is older than manylinux2014 (2.17)",
                glibc.0, glibc.1
            ))
        })?;
    Ok(format!("{arch}-manylinux_{}_{}", level.0, level.1))
}

/// What goes into the venv, as the Dockerfile's install step says it.
#[derive(Debug, Clone, Copy)]
pub enum Packages<'a> {
    /// `uv pip install <args>` (shell words) of `requirements_uv.txt`, into a venv that
    /// sees the base's site-packages.
    Requirements {
        args: &'a str,
        requirements: &'a str,
    },
    /// `uv sync <args>` (shell words) of `uv.lock` and its `pyproject.toml`: the project
    /// venv (see [`super::uvlock`]).
    Lock {
        args: &'a str,
        lock: &'a str,
        pyproject: &'a str,
    },
}

impl Packages<'_> {
    /// The install step's arguments as the Dockerfile writes them.
    pub fn args(&self) -> &str {
        match self {
            Packages::Requirements { args, .. } | Packages::Lock { args, .. } => args,
        }
    }
}

/// What the install step is given.
#[derive(Debug, Clone)]
pub struct Install<'a> {
    pub uv: &'a Path,
    /// The base's interpreter and version.
    pub python: &'a BasePython,
    /// `x86_64-manylinux_2_31`…
    pub python_platform: &'a str,
    pub packages: Packages<'a>,
    pub ca_bundle: Option<&'a Path>,
    pub cache_dir: Option<PathBuf>,
    /// Pins of another platform's resolution (several platforms: one set of versions).
    pub constraints: Option<&'a str>,
    /// Told the versions of a requirements install from nothing as soon as its dry run
    /// has resolved them, before the install ends (they are the versions the install
    /// gives when it succeeds): the other platforms install with them meanwhile.
    pub resolved: Option<OnResolved<'a>>,
}

/// What is told the versions a dry run resolved ([`Install::resolved`]).
#[derive(Clone, Copy)]
pub struct OnResolved<'a>(pub &'a (dyn Fn(&str) + Sync));

impl std::fmt::Debug for OnResolved<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OnResolved")
    }
}

/// A failed uv run that is not a reason to fall back.
#[derive(Debug, thiserror::Error)]
#[error("uv {step} failed: {message}")]
pub struct UvError {
    pub step: &'static str,
    pub message: String,
}

/// What may end the install early: a reason for dockerd, or a real failure.
#[derive(Debug)]
pub enum InstallError {
    Fallback(Fallback),
    Failed(UvError),
}

impl From<Fallback> for InstallError {
    fn from(f: Fallback) -> Self {
        InstallError::Fallback(f)
    }
}

impl From<UvError> for InstallError {
    fn from(e: UvError) -> Self {
        InstallError::Failed(e)
    }
}

/// uv's words for "no wheel, and building is off" (its messages are wrapped: compared with
/// whitespace folded).
fn no_wheel(output: &str) -> bool {
    let text = output.split_whitespace().collect::<Vec<_>>().join(" ");
    [
        "building from source is disabled",
        "no usable wheels",
        "no binary distribution",
        "`--no-build`",
        "doesn't have a source distribution or wheel for the current platform",
    ]
    .iter()
    .any(|p| text.contains(p))
}

/// What the dry run would install that the wheels-only install did not (another version,
/// or nothing).
fn not_installed<'a>(wanted: &'a [String], installed: &[String]) -> Vec<&'a str> {
    wanted
        .iter()
        .filter(|p| !installed.contains(p))
        .map(String::as_str)
        .collect()
}

/// The last lines of uv's output, worth showing.
fn tail(text: &str) -> String {
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("Using Python"))
        .collect();
    lines[lines.len().saturating_sub(12)..].join("\n")
}

/// The requirements a dry run would install, as `name==version` (or `name @ url`) lines.
fn pins(dry_run_output: &str) -> Vec<String> {
    dry_run_output
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("+ "))
        .map(|l| l.trim().to_string())
        .collect()
}

impl Install<'_> {
    fn command(&self, stage: &Path) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(self.uv);
        cmd.current_dir(stage);
        // A Docker build sees none of this machine's uv settings.
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy();
            if key.starts_with("UV_")
                && !matches!(
                    key.as_ref(),
                    "UV_CACHE_DIR"
                        | "UV_NATIVE_TLS"
                        | "UV_PYTHON_DOWNLOADS"
                        | "UV_PYTHON_INSTALL_DIR"
                )
            {
                cmd.env_remove(key.as_ref());
            }
        }
        if std::env::var_os("UV_CACHE_DIR").is_none()
            && let Some(dir) = &self.cache_dir
        {
            cmd.env("UV_CACHE_DIR", dir);
        }
        match self.ca_bundle {
            Some(bundle) => {
                cmd.env("SSL_CERT_FILE", bundle);
            }
            None if std::env::var_os("UV_NATIVE_TLS").is_none() => {
                cmd.env("UV_NATIVE_TLS", "1");
            }
            None => {}
        }
        // Links to uv's cache, not copies (uv copies when they are on different file
        // systems): only the bytes reach the layer, and every file changed below is
        // replaced, never written through a link into the cache.
        cmd.env("UV_LINK_MODE", "hardlink");
        // uv reads a project's `[tool.uv]` (uv export of a lock must: uv sync does), and
        // with it this user's uv.toml, which a Docker build does not see: none here.
        cmd.env("XDG_CONFIG_HOME", stage.join(".imagespec-no-user-config"));
        cmd.stdin(std::process::Stdio::null());
        cmd.kill_on_drop(true);
        cmd
    }

    async fn run(
        &self,
        stage: &Path,
        step: &'static str,
        args: &[String],
    ) -> Result<String, (String, UvError)> {
        let out = self.command(stage).args(args).output().await.map_err(|e| {
            (
                String::new(),
                UvError {
                    step,
                    message: format!("running {}: {e}", self.uv.display()),
                },
            )
        })?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        if out.status.success() {
            Ok(text)
        } else {
            let message = tail(&text);
            Err((text, UvError { step, message }))
        }
    }

    /// Makes the venv under `stage` (`stage/root/.venv`) as the image will have it, from
    /// the kept venv there when `previous` says what it was made from (a requirements
    /// file that only adds lines to its own: [`super::kept`]).
    pub async fn make(&self, stage: &Path, previous: Option<&Kept>) -> Result<Made, InstallError> {
        let venv = stage.join("root/.venv");
        let words = shlex::split(self.packages.args()).ok_or_else(|| {
            Fallback(format!(
                "the install arguments are not plain shell words: {}",
                self.packages.args()
            ))
        })?;
        let mut incremental = false;
        let pinned = match self.packages {
            Packages::Requirements { requirements, .. } => {
                let added = match previous {
                    Some(kept) => {
                        self.install_added(stage, &venv, &words, kept, requirements)
                            .await?
                    }
                    None => None,
                };
                match added {
                    Some(pins) => {
                        incremental = true;
                        pins
                    }
                    None => {
                        remove_venv(&venv)?;
                        let pins = self
                            .install_requirements(stage, &venv, words, requirements)
                            .await?;
                        // The dry run's venv is not kept.
                        let _ = std::fs::remove_dir_all(stage.join("dry-run"));
                        pins
                    }
                }
            }
            Packages::Lock {
                lock, pyproject, ..
            } => {
                self.install_lock(stage, &venv, &words, lock, pyproject)
                    .await?
            }
        };
        let system_site_packages = matches!(self.packages, Packages::Requirements { .. });
        let rewriting = |e: std::io::Error| UvError {
            step: "venv",
            message: format!("rewriting the venv for the image: {e}"),
        };
        let uv_form = uv_form(&venv, self.python).map_err(rewriting)?;
        make_the_images(&venv, self.python, system_site_packages).map_err(rewriting)?;
        Ok(Made {
            venv,
            pins: pinned,
            uv_form,
            incremental,
        })
    }

    /// Into the kept venv at `venv` (made from `kept`), what `requirements` adds to its
    /// lines, wheels only, checked against a dry run as [`Install::install_requirements`]
    /// does; the pins of the whole venv. `None` when it is no addition: a line removed or
    /// changed, or a package the new lines would upgrade or remove (then the venv is made
    /// from nothing).
    async fn install_added(
        &self,
        stage: &Path,
        venv: &Path,
        words: &[String],
        kept: &Kept,
        requirements: &str,
    ) -> Result<Option<String>, InstallError> {
        let Some(wanted) = super::kept::requirement_lines(requirements) else {
            return Ok(None);
        };
        let Some(added) = super::kept::added(&kept.lines, &wanted) else {
            return Ok(None);
        };
        // Under another platform's constraints (in the kept venv's key) only the same
        // requirements: what uv would add under them is not checked here.
        let constrained = self.constraints.is_some() && !added.is_empty();
        if constrained || restore_uv_form(venv, &kept.uv_form).is_err() {
            return Ok(None);
        }
        if added.is_empty() {
            return Ok(Some(kept.pins.clone()));
        }
        std::fs::write(stage.join("requirements_uv.txt"), added.join("\n")).map_err(|e| {
            UvError {
                step: "install",
                message: format!("writing requirements_uv.txt: {e}"),
            }
        })?;
        let python = format!("{}/bin/python", venv.to_string_lossy());
        let run = |first: &[&str]| {
            let mut args: Vec<String> = first.iter().map(|a| a.to_string()).collect();
            args.extend(["--python".to_string(), python.clone()]);
            args.extend(self.for_the_image());
            args.extend(words.iter().cloned());
            args
        };
        // One after the other: uv locks the venv, and the dry run must see it as it was.
        let resolved = self
            .run(stage, "resolve", &run(&["pip", "install", "--dry-run"]))
            .await
            .map_err(|(_, e)| e)?;
        if not_an_addition(&resolved) {
            return Ok(None);
        }
        let installed = self
            .run(stage, "install", &run(&["pip", "install", "--no-build"]))
            .await
            .map_err(|(text, e)| self.install_failed(&text, e))?;
        if not_an_addition(&installed) {
            return Ok(None);
        }
        let wanted = self.installed_as_resolved(&resolved, &installed)?;
        let mut all: Vec<&str> = kept
            .pins
            .lines()
            .chain(wanted.iter().map(String::as_str))
            .collect();
        all.sort_unstable();
        all.dedup();
        Ok(Some(all.join("\n")))
    }

    /// `uv venv` at each of `paths` (at the same time), with a Python of the image's version
    /// when this machine has one (the site-packages directory is named after it), any
    /// otherwise; whether it was the image's version.
    async fn make_venvs(
        &self,
        stage: &Path,
        paths: &[String],
        prompt: Option<&str>,
    ) -> Result<bool, UvError> {
        let mut made = Err(UvError {
            step: "venv",
            message: String::new(),
        });
        for python in [self.python.minor.as_str(), "python3"] {
            let runs = paths.iter().map(|path| {
                let mut args: Vec<String> = ["venv", "--no-config", "--quiet", "--python", python]
                    .map(String::from)
                    .into();
                if let Some(prompt) = prompt {
                    args.extend(["--prompt".to_string(), prompt.to_string()]);
                }
                args.push(path.clone());
                async move { self.run(stage, "venv", &args).await }
            });
            made = futures_util::future::join_all(runs)
                .await
                .into_iter()
                .collect::<Result<Vec<_>, _>>()
                .map(|_| python == self.python.minor)
                .map_err(|(_, e)| e);
            if made.is_ok() {
                break;
            }
        }
        made
    }

    /// The shared options of the install runs: the image's Python and platform.
    fn for_the_image(&self) -> Vec<String> {
        vec![
            "--no-config".to_string(),
            "--python-version".into(),
            self.python.version.clone(),
            "--python-platform".into(),
            self.python_platform.to_string(),
        ]
    }

    /// What a failed wheels-only install means: no wheel (a [`Fallback`]), or a failure.
    fn install_failed(&self, text: &str, e: UvError) -> InstallError {
        if no_wheel(text) {
            let said = e.message.split_whitespace().collect::<Vec<_>>().join(" ");
            return Fallback(format!(
                "a package has no wheel for {} (uv: {said})",
                self.python_platform
            ))
            .into();
        }
        e.into()
    }

    /// `uv pip install <args> --requirement requirements_uv.txt`, wheels only, checked
    /// against a dry run that may use source distributions.
    async fn install_requirements(
        &self,
        stage: &Path,
        venv: &Path,
        words: Vec<String>,
        requirements: &str,
    ) -> Result<String, InstallError> {
        std::fs::write(stage.join("requirements_uv.txt"), requirements).map_err(|e| UvError {
            step: "install",
            message: format!("writing requirements_uv.txt: {e}"),
        })?;
        let venv_arg = venv.to_string_lossy().into_owned();
        // The dry run has a venv of its own: uv locks the venv it installs into.
        let dry_venv = stage.join("dry-run/.venv").to_string_lossy().into_owned();
        self.make_venvs(stage, &[venv_arg.clone(), dry_venv.clone()], None)
            .await?;
        let mut shared = self.for_the_image();
        if let Some(pins) = self.constraints {
            std::fs::write(stage.join("shared-pins.txt"), pins).map_err(|e| UvError {
                step: "install",
                message: format!("writing shared-pins.txt: {e}"),
            })?;
            shared.extend(["--constraint".to_string(), "shared-pins.txt".into()]);
        }
        // What the Docker build would install (sources allowed), and the install with
        // wheels only, at the same time; the install stands when both chose the same.
        let mut dry = vec!["pip".to_string(), "install".into(), "--dry-run".into()];
        dry.extend(["--python".to_string(), format!("{dry_venv}/bin/python")]);
        dry.extend(shared.iter().cloned());
        dry.extend(words.iter().cloned());
        let mut install = vec!["pip".to_string(), "install".into(), "--no-build".into()];
        install.extend(["--python".to_string(), format!("{venv_arg}/bin/python")]);
        install.extend(shared);
        install.extend(words);
        let resolving = async {
            let resolved = self.run(stage, "resolve", &dry).await;
            if let (Ok(text), Some(OnResolved(tell))) = (&resolved, self.resolved) {
                tell(&pins(text).join("\n"));
            }
            resolved
        };
        let (resolved, installed) = tokio::join!(resolving, self.run(stage, "install", &install));
        let resolved = resolved.map_err(|(_, e)| e)?;
        let installed = installed.map_err(|(text, e)| self.install_failed(&text, e))?;
        Ok(self
            .installed_as_resolved(&resolved, &installed)?
            .join("\n"))
    }

    /// The pins of `resolved` (the dry run, sources allowed), checked to be what the
    /// wheels-only run `installed`: a release without a wheel for this platform is a
    /// [`Fallback`] (the Docker build would compile it).
    fn installed_as_resolved(
        &self,
        resolved: &str,
        installed: &str,
    ) -> Result<Vec<String>, Fallback> {
        let wanted = pins(resolved);
        let missing = not_installed(&wanted, &pins(installed));
        if missing.is_empty() {
            return Ok(wanted);
        }
        Err(Fallback(format!(
            "with wheels only for {}, uv would not install {} (a release without such a wheel)",
            self.python_platform,
            missing.join(", ")
        )))
    }

    /// `uv sync <args>` of a lock: `uv export` of the locked set (uv sync's `--locked`
    /// check included), then exactly that set installed, wheels only, with its hashes.
    async fn install_lock(
        &self,
        stage: &Path,
        venv: &Path,
        words: &[String],
        lock: &str,
        pyproject: &str,
    ) -> Result<String, InstallError> {
        let split = super::uvlock::split_sync_args(words)?;
        super::uvlock::unhonoured_settings(pyproject)?;
        let prompt = super::uvlock::project_prompt(pyproject)?;
        // As the Docker build's /root: the two files alone.
        let project = stage.join("project");
        let write = |name: &str, text: &str| {
            std::fs::create_dir_all(&project)
                .and_then(|()| std::fs::write(project.join(name), text))
                .map_err(|e| UvError {
                    step: "export",
                    message: format!("writing {name}: {e}"),
                })
        };
        write("uv.lock", lock)?;
        write("pyproject.toml", pyproject)?;
        let venv_arg = venv.to_string_lossy().into_owned();
        let image_version = self
            .make_venvs(stage, std::slice::from_ref(&venv_arg), Some(&prompt))
            .await?;
        let locked = stage.join("locked.txt");
        let mut export: Vec<String> = [
            "export",
            "--format",
            "requirements-txt",
            "--no-header",
            "--quiet",
        ]
        .map(String::from)
        .into();
        export.extend(["--output-file".to_string(), locked.to_string_lossy().into()]);
        // Any interpreter does (the lock is for every platform): the staging venv's, so
        // that uv looks for no other and downloads none.
        export.extend(["--python".to_string(), format!("{venv_arg}/bin/python")]);
        export.extend(split.export);
        match self.run(&project, "export of uv.lock", &export).await {
            Ok(_) => {}
            // uv checks the project's requires-python against the interpreter it is given:
            // uv sync's failure only when that is the image's version.
            Err((text, _))
                if !image_version
                    && text.contains("incompatible with the project's Python requirement") =>
            {
                return Err(Fallback(format!(
                    "this machine has no Python {} to check uv.lock's requires-python with",
                    self.python.minor
                ))
                .into());
            }
            Err((_, e)) => return Err(e.into()),
        }
        let exported = std::fs::read_to_string(&locked).map_err(|e| UvError {
            step: "export of uv.lock",
            message: format!("reading {}: {e}", locked.display()),
        })?;
        let names = super::uvlock::exported_names(&exported)?;
        super::uvlock::check_locked(lock, &names, &split.indexes)?;
        let mut install: Vec<String> = ["pip", "install", "--no-build", "--no-deps"]
            .map(String::from)
            .into();
        install.push("--require-hashes".into());
        install.extend(["--python".to_string(), format!("{venv_arg}/bin/python")]);
        install.extend(self.for_the_image());
        install.extend(split.install);
        install.extend(["--requirement".to_string(), "locked.txt".into()]);
        let installed = self
            .run(stage, "install", &install)
            .await
            .map_err(|(text, e)| self.install_failed(&text, e))?;
        // `uv pip install` leaves the venv's lock file behind, uv sync does not.
        match std::fs::remove_file(venv.join(".lock")) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(UvError {
                    step: "install",
                    message: format!("removing {}/.lock: {e}", venv.display()),
                }
                .into());
            }
            _ => {}
        }
        Ok(pins(&installed).join("\n"))
    }
}

/// A staged venv made ([`Install::make`]): where, the versions in it (`name==version`
/// lines), what [`make_the_images`] changed (to undo before uv runs in it again), and
/// whether it was made from a kept venv.
#[derive(Debug)]
pub struct Made {
    pub venv: PathBuf,
    pub pins: String,
    pub uv_form: UvForm,
    pub incremental: bool,
}

/// Whether uv's output says it removes or reinstalls a package (` - x==1`, ` ~ x==1`).
fn not_an_addition(output: &str) -> bool {
    output.lines().any(|l| {
        let l = l.trim_start();
        l.starts_with("- ") || l.starts_with("~ ")
    })
}

/// Removes a venv that is no addition's start (none there is fine).
fn remove_venv(venv: &Path) -> Result<(), UvError> {
    match std::fs::remove_dir_all(venv) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(UvError {
            step: "venv",
            message: format!("removing {}: {e}", venv.display()),
        }),
        _ => Ok(()),
    }
}

/// `python`, `python3`, `python3.11`: the interpreter links of a venv's `bin/`.
fn is_python_link(name: &str) -> bool {
    name == "python"
        || name
            .strip_prefix("python")
            .is_some_and(|v| v.chars().all(|c| c.is_ascii_digit() || c == '.'))
}

/// What [`make_the_images`] is about to change in the staged `venv`, as uv left it.
fn uv_form(venv: &Path, python: &BasePython) -> std::io::Result<UvForm> {
    let mut links = Vec::new();
    for entry in std::fs::read_dir(venv.join("bin"))? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if is_python_link(&name) && entry.file_type()?.is_symlink() {
            let target = std::fs::read_link(entry.path())?;
            links.push((name, target.to_string_lossy().into_owned()));
        }
    }
    links.sort();
    let wanted = format!("python{}", python.minor);
    let mut lib = None;
    for entry in std::fs::read_dir(venv.join("lib"))? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name.starts_with("python") && name != wanted {
            lib = Some((name, wanted.clone()));
        }
    }
    Ok(UvForm {
        links,
        cfg: std::fs::read_to_string(venv.join("pyvenv.cfg"))?,
        lib,
    })
}

/// Undoes [`make_the_images`] in a kept venv: uv's `lib/python*` name, interpreter links
/// and `pyvenv.cfg` again (the scripts keep `/root/.venv`: uv does not read them).
fn restore_uv_form(venv: &Path, form: &UvForm) -> std::io::Result<()> {
    if let Some((uv, image)) = &form.lib {
        std::fs::rename(venv.join("lib").join(image), venv.join("lib").join(uv))?;
    }
    let bin = venv.join("bin");
    for entry in std::fs::read_dir(&bin)? {
        let entry = entry?;
        if is_python_link(&entry.file_name().to_string_lossy()) {
            std::fs::remove_file(entry.path())?;
        }
    }
    for (name, target) in &form.links {
        std::os::unix::fs::symlink(target, bin.join(name))?;
    }
    replace_file(&venv.join("pyvenv.cfg"), form.cfg.as_bytes())
}

/// `sha256=<urlsafe base64>,<size>`, a RECORD line's hash and size fields.
fn record_hash(content: &[u8]) -> String {
    let digest = Sha256::digest(content);
    format!(
        "sha256={},{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest),
        content.len()
    )
}

/// Turns the staging venv at `venv` into the image's `/root/.venv`; `system_site_packages`:
/// it sees the base's site-packages (`uv venv --system-site-packages`; uv sync's project
/// venv does not).
pub fn make_the_images(
    venv: &Path,
    python: &BasePython,
    system_site_packages: bool,
) -> std::io::Result<()> {
    let wanted = rename_lib(venv, python)?;
    let bin = venv.join("bin");
    relink_python(&bin, python)?;
    rewrite_cfg(venv, python, system_site_packages)?;
    let changed = rewrite_staged_paths(&bin, &venv.to_string_lossy())?;
    fix_records(&wanted.join("site-packages"), &changed)
}

/// `lib/pythonH.M` (this machine's Python) → `lib/pythonX.Y` (the image's), and `lib64` a
/// link to `lib`; the new `lib/pythonX.Y`.
fn rename_lib(venv: &Path, python: &BasePython) -> std::io::Result<PathBuf> {
    let lib = venv.join("lib");
    let wanted = lib.join(format!("python{}", python.minor));
    for entry in std::fs::read_dir(&lib)? {
        let path = entry?.path();
        if path != wanted
            && path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("python"))
        {
            std::fs::rename(&path, &wanted)?;
        }
    }
    let lib64 = venv.join("lib64");
    if std::fs::symlink_metadata(&lib64).is_err() {
        std::os::unix::fs::symlink("lib", &lib64)?;
    }
    Ok(wanted)
}

/// `bin/python` → the base's interpreter; `python3`, `pythonX.Y` → `python`.
fn relink_python(bin: &Path, python: &BasePython) -> std::io::Result<()> {
    use std::os::unix::fs::symlink;
    for entry in std::fs::read_dir(bin)? {
        let entry = entry?;
        if is_python_link(&entry.file_name().to_string_lossy()) {
            std::fs::remove_file(entry.path())?;
        }
    }
    symlink(&python.path, bin.join("python"))?;
    let major = python.minor.split('.').next().unwrap_or("3");
    symlink("python", bin.join(format!("python{major}")))?;
    symlink("python", bin.join(format!("python{}", python.minor)))
}

/// `pyvenv.cfg`: the base's interpreter.
fn rewrite_cfg(
    venv: &Path,
    python: &BasePython,
    system_site_packages: bool,
) -> std::io::Result<()> {
    let cfg_path = venv.join("pyvenv.cfg");
    let cfg = std::fs::read_to_string(&cfg_path)?;
    let home = python
        .path
        .rsplit_once('/')
        .map_or("/", |(d, _)| if d.is_empty() { "/" } else { d });
    let cfg: String = cfg
        .lines()
        .map(|line| {
            let key = line.split('=').next().unwrap_or("").trim();
            match key {
                "home" => format!("home = {home}\n"),
                "version_info" => format!("version_info = {}\n", python.version),
                "include-system-site-packages" => {
                    format!("include-system-site-packages = {system_site_packages}\n")
                }
                _ => format!("{line}\n"),
            }
        })
        .collect();
    replace_file(&cfg_path, cfg.as_bytes())
}

/// The staging path `staged` → `/root/.venv` in `bin`'s text files (activate scripts,
/// shebangs); the files changed, with their new content.
fn rewrite_staged_paths(bin: &Path, staged: &str) -> std::io::Result<Vec<(PathBuf, Vec<u8>)>> {
    let mut changed = Vec::new();
    for entry in std::fs::read_dir(bin)? {
        let path = entry?.path();
        if !std::fs::symlink_metadata(&path)?.is_file() {
            continue;
        }
        let bytes = std::fs::read(&path)?;
        if !contains(&bytes, staged.as_bytes()) {
            continue;
        }
        let fixed = replace(&bytes, staged.as_bytes(), VENV.as_bytes());
        replace_file(&path, &fixed)?;
        changed.push((path, fixed));
    }
    Ok(changed)
}

/// The `RECORD` lines (in `site`'s dist-infos) of the `changed` files get their new hash
/// and size.
fn fix_records(site: &Path, changed: &[(PathBuf, Vec<u8>)]) -> std::io::Result<()> {
    for entry in std::fs::read_dir(site)? {
        let dist = entry?.path();
        let record = dist.join("RECORD");
        if !dist.to_string_lossy().ends_with(".dist-info") || !record.is_file() {
            continue;
        }
        let text = std::fs::read_to_string(&record)?;
        let mut touched = false;
        let lines: Vec<String> = text
            .lines()
            .map(|line| {
                let Some((file, _)) = line.split_once(',') else {
                    return line.to_string();
                };
                let target = normalize_join(site, file);
                match changed.iter().find(|(p, _)| *p == target) {
                    Some((_, content)) => {
                        touched = true;
                        format!("{file},{}", record_hash(content))
                    }
                    None => line.to_string(),
                }
            })
            .collect();
        if touched {
            let mut out = lines.join("\n");
            if text.ends_with('\n') {
                out.push('\n');
            }
            replace_file(&record, out.as_bytes())?;
        }
    }
    Ok(())
}

/// Writes `content` to a new file renamed over `path`, keeping its permissions: `path` may
/// be a hard link into uv's cache, which must not change.
fn replace_file(path: &Path, content: &[u8]) -> std::io::Result<()> {
    let permissions = std::fs::metadata(path)?.permissions();
    let tmp = path.with_extension("imagespec-tmp");
    std::fs::write(&tmp, content)?;
    std::fs::set_permissions(&tmp, permissions)?;
    std::fs::rename(&tmp, path)
}

/// `base/rel` with `..` and `.` folded (no links followed).
fn normalize_join(base: &Path, rel: &str) -> PathBuf {
    let mut out = base.to_path_buf();
    for part in rel.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            p => out.push(p),
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn replace(haystack: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len());
    let mut i = 0;
    while i < haystack.len() {
        if haystack[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(haystack[i]);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `bin/` with the files named, as a wheel's install leaves it.
    fn bin_with(files: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for f in files {
            std::fs::write(dir.path().join(f), "").unwrap();
        }
        dir
    }

    #[test]
    fn uv_is_found_beside_the_binary_before_path_and_after_the_variable() {
        let venv = bin_with(&["imagespec", "uv"]);
        let elsewhere = bin_with(&["uv"]);
        let exe = venv.path().join("imagespec");
        let path = std::env::join_paths([elsewhere.path()]).unwrap();
        let find = |explicit: Option<PathBuf>, exe: Option<&Path>| {
            locate_uv(explicit, exe, Some(&path), |p| p.is_file())
        };
        // The wheel's venv: its own uv, not the one PATH finds first.
        assert_eq!(find(None, Some(&exe)).unwrap(), venv.path().join("uv"));
        // A binary without uv beside it (cargo install): PATH's.
        let bare = bin_with(&["imagespec"]);
        let bare_exe = bare.path().join("imagespec");
        assert_eq!(
            find(None, Some(&bare_exe)).unwrap(),
            elsewhere.path().join("uv")
        );
        // IMAGESPEC_UV first, and a wrong one is said, not replaced by another uv.
        let chosen = elsewhere.path().join("uv");
        assert_eq!(find(Some(chosen.clone()), Some(&exe)).unwrap(), chosen);
        let wrong = find(Some(venv.path().join("nope")), Some(&exe)).unwrap_err();
        assert!(
            wrong.0.contains("IMAGESPEC_UV=") && wrong.0.contains("not a file"),
            "{}",
            wrong.0
        );
        // None anywhere: the reason names what to install.
        let none = locate_uv(None, Some(&bare_exe), None, |p| p.is_file()).unwrap_err();
        assert!(none.0.contains("pipx install imagespec-cli"), "{}", none.0);
    }

    #[test]
    fn the_platform_tag_follows_the_base_glibc() {
        assert_eq!(
            python_platform(&Platform::parse("linux/amd64").unwrap(), (2, 36)).unwrap(),
            "x86_64-manylinux_2_31"
        );
        assert_eq!(
            python_platform(&Platform::parse("linux/arm64").unwrap(), (2, 28)).unwrap(),
            "aarch64-manylinux_2_28"
        );
        assert_eq!(
            python_platform(&Platform::parse("linux/arm64/v8").unwrap(), (2, 17)).unwrap(),
            "aarch64-manylinux_2_17"
        );
        assert!(python_platform(&Platform::parse("linux/amd64").unwrap(), (2, 12)).is_err());
        assert!(python_platform(&Platform::parse("linux/s390x").unwrap(), (2, 36)).is_err());
    }

    #[test]
    fn dry_run_lines_become_pins_and_no_wheel_is_recognised() {
        let out = "Resolved 2 packages\nWould install 2 packages\n + pyyaml==6.0.4\n + x @ https://e.org/x.whl\n";
        assert_eq!(pins(out), ["pyyaml==6.0.4", "x @ https://e.org/x.whl"]);
        assert!(no_wheel(
            "Because pycrypto==2.6.1 has no usable wheels and building from source\n is disabled"
        ));
        assert!(no_wheel(
            "and all versions of docopt have no usable wheels and building from\n      source is disabled"
        ));
        assert!(!no_wheel(
            "No solution found: nosuchpkg was not found in the package registry"
        ));
    }

    /// A staged venv as `uv venv` + `uv pip install` leave it, made the image's.
    #[test]
    fn the_staged_venv_points_at_the_base_and_its_scripts_at_root_venv() {
        use std::os::unix::fs::symlink;
        let stage = tempfile::tempdir().unwrap();
        let venv = stage.path().join("root/.venv");
        let staged = venv.to_string_lossy().into_owned();
        let site = venv.join("lib/python3.11/site-packages");
        std::fs::create_dir_all(&site).unwrap();
        std::fs::create_dir_all(venv.join("bin")).unwrap();
        std::fs::write(
            venv.join("pyvenv.cfg"),
            "home = /home/me/.pyenv/bin\nimplementation = CPython\nuv = 0.5.1\nversion_info = 3.11.7\n",
        )
        .unwrap();
        symlink("/home/me/.pyenv/bin/python3.11", venv.join("bin/python")).unwrap();
        symlink("python", venv.join("bin/python3")).unwrap();
        symlink("python", venv.join("bin/python3.11")).unwrap();
        std::fs::write(
            venv.join("bin/activate"),
            format!("VIRTUAL_ENV='{staged}'\n"),
        )
        .unwrap();
        let script = format!("#!{staged}/bin/python\nimport tool\n");
        // As uv links it from its cache.
        let cached = stage.path().join("cache-entry");
        std::fs::write(&cached, &script).unwrap();
        std::fs::hard_link(&cached, venv.join("bin/tool")).unwrap();
        std::fs::create_dir_all(site.join("tool-1.0.dist-info")).unwrap();
        std::fs::write(
            site.join("tool-1.0.dist-info/RECORD"),
            format!(
                "../../../bin/tool,{}\ntool.py,sha256=abc,3\n",
                record_hash(script.as_bytes())
            ),
        )
        .unwrap();

        let python = BasePython {
            path: "/usr/bin/python3".into(),
            version: "3.12.7".into(),
            minor: "3.12".into(),
        };
        let form = uv_form(&venv, &python).unwrap();
        make_the_images(&venv, &python, true).unwrap();
        // A kept venv: back to uv's form (links, pyvenv.cfg, lib name), and made again.
        restore_uv_form(&venv, &form).unwrap();
        assert_eq!(uv_form(&venv, &python).unwrap(), form);
        assert!(site.is_dir(), "uv's lib/python3.11 again");
        assert_eq!(
            std::fs::read_link(venv.join("bin/python")).unwrap(),
            Path::new("/home/me/.pyenv/bin/python3.11")
        );
        make_the_images(&venv, &python, true).unwrap();

        let link = |p: &str| std::fs::read_link(venv.join(p)).unwrap();
        assert_eq!(link("bin/python"), Path::new("/usr/bin/python3"));
        assert_eq!(link("bin/python3.12"), Path::new("python"));
        assert!(std::fs::symlink_metadata(venv.join("bin/python3.11")).is_err());
        assert_eq!(link("lib64"), Path::new("lib"));
        assert!(venv.join("lib/python3.12/site-packages").is_dir());
        assert_eq!(
            std::fs::read_to_string(venv.join("pyvenv.cfg")).unwrap(),
            "home = /usr/bin\nimplementation = CPython\nuv = 0.5.1\nversion_info = 3.12.7\n"
        );
        assert_eq!(
            std::fs::read_to_string(venv.join("bin/activate")).unwrap(),
            "VIRTUAL_ENV='/root/.venv'\n"
        );
        let fixed = "#!/root/.venv/bin/python\nimport tool\n";
        assert_eq!(
            std::fs::read_to_string(venv.join("bin/tool")).unwrap(),
            fixed
        );
        assert_eq!(
            std::fs::read_to_string(&cached).unwrap(),
            script,
            "uv's cache is not written through the link"
        );
        assert_eq!(
            std::fs::read_to_string(
                venv.join("lib/python3.12/site-packages/tool-1.0.dist-info/RECORD")
            )
            .unwrap(),
            format!(
                "../../../bin/tool,{}\ntool.py,sha256=abc,3\n",
                record_hash(fixed.as_bytes())
            )
        );
    }
}
