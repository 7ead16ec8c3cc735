//! Which builder makes a dependency image: uv on this machine with no daemon
//! ([`crate::builders::daemonless`]), or dockerd's BuildKit from the Dockerfile. Pure: the
//! answer depends on the dependency plan, the caller's choice and, for `apt_packages`, the
//! apt step's facts gathered before the decision ([`with_apt`]: the package set and what
//! each package's maintainer scripts need), so `imagespec plan` shows it and every reason
//! is unit-tested.
//!
//! The daemonless builder reproduces exactly one shape of the Dockerfile
//! (templates/Dockerfile.j2): the `flytekit` user, `/root` handed to it, the base's Python
//! in a venv at `/root/.venv` with the packages uv installs (`uv pip install`, or `uv sync`
//! of a `uv.lock`), `ENV`, `ENTRYPOINT`; and the `apt_packages` step, whose packages are
//! laid down from the base's Debian mirror ([`crate::apt`]). Anything else that runs a
//! program *inside* the image (conda, `commands`, poetry) or mounts build secrets needs a container,
//! hence dockerd; `poetry.lock` too, as only poetry picks its groups and markers. What only
//! the build can find out (the base has no Python, a package has no wheel, a git source in
//! the lock) falls back to dockerd then, with its reason; an apt package whose maintainer
//! scripts must run, or a base that is not Debian, is known before (the apt facts).
//!
//! ```
//! use imagespec::engine::{DependencyBuilder, NotDaemonless};
//! let b = DependencyBuilder::Docker(NotDaemonless::AptPackage {
//!     package: "sudo".into(),
//!     why: "its postinst runs `addgroup --system sudo`".into(),
//! });
//! assert_eq!(
//!     b.to_string(),
//!     "dockerd (apt package sudo: its postinst runs `addgroup --system sudo`, \
//!      which only the base's apt-get does)"
//! );
//! ```

use crate::apt::facts::{self, AptFacts};
use crate::oci::Platform;
use crate::plan::{BuildPlan, Flavor, PythonInstall};

/// Who makes the dependency image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DependencyBuilder {
    /// uv on this machine, assembled and pushed without a daemon.
    Uv,
    /// dockerd builds the Dockerfile, for this reason.
    Docker(NotDaemonless),
}

impl DependencyBuilder {
    /// `uv` or `docker`, the name `plan --json` uses.
    pub fn name(&self) -> &'static str {
        match self {
            DependencyBuilder::Uv => "uv",
            DependencyBuilder::Docker(_) => "docker",
        }
    }

    /// Why dockerd builds it (`None` for uv).
    pub fn reason(&self) -> Option<String> {
        match self {
            DependencyBuilder::Uv => None,
            DependencyBuilder::Docker(why) => Some(why.to_string()),
        }
    }
}

impl std::fmt::Display for DependencyBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DependencyBuilder::Uv => f.write_str("without a daemon, with uv"),
            DependencyBuilder::Docker(why) => write!(f, "dockerd ({why})"),
        }
    }
}

/// Why a dependency image is not built without a daemon.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotDaemonless {
    #[error("--no-daemonless or IMAGESPEC_NO_DAEMONLESS")]
    TurnedOff,
    #[error("--flytekit-compat renders flytekit's own Dockerfile")]
    FlytekitDockerfile,
    /// A package of the apt step whose maintainer scripts must run (or do what is not
    /// reproduced without running them): [`with_apt`].
    #[error("apt package {package}: {why}, which only the base's apt-get does")]
    AptPackage { package: String, why: String },
    /// The apt step is not laid down without a daemon on `platform` (the base is not
    /// Debian, apt would resolve the set otherwise…): [`with_apt`].
    #[error("`apt_packages` for {platform}: {why}")]
    Apt { platform: Platform, why: String },
    #[error("`conda_packages`/`conda_channels` are installed by micromamba in the image")]
    Conda,
    #[error("`python_version` is installed by micromamba in the image")]
    PythonVersion,
    #[error("`commands` run in the image")]
    Commands,
    #[error("`poetry.lock` is installed by poetry in the image")]
    PoetryLock,
    /// A `uv.lock`'s uv sync arguments the daemonless install cannot take.
    #[error("{0}")]
    SyncArgs(String),
    #[error("`pip_secret_mounts` are files mounted into the build")]
    PipSecretMounts,
    #[error("`env` {key}: {why}")]
    Env { key: String, why: String },
    #[error("`pip_extra_args` use shell syntax the build's shell would expand")]
    ShellArgs,
    #[error("the base is a nested spec's image, whose venv the build extends")]
    NestedBase,
    /// uv is not on this machine (or `IMAGESPEC_UV` names no file): the reason says which.
    #[error("{0}")]
    NoUv(String),
    /// The base, as read from its registry before the decision, is not one uv starts from
    /// (it cannot be read, is another platform, has `ONBUILD` triggers): the reason says
    /// which.
    #[error("{0}")]
    Base(String),
}

/// Who makes `deps`'s dependency image (`deps` is [`BuildPlan::dependencies`]).
/// `nested_base`: the base image is a nested spec's (it has a venv, extended in the image);
/// `enabled`: the caller did not turn the daemonless builder off; `uv`: this machine's uv
/// binary was found, else why not (asked last, so that a spec dockerd must build anyway gives
/// the spec's reason).
pub fn dependency_builder(
    deps: &BuildPlan,
    nested_base: bool,
    enabled: bool,
    uv: Result<(), &str>,
) -> DependencyBuilder {
    match not_daemonless(deps, nested_base, enabled) {
        Some(why) => DependencyBuilder::Docker(why),
        None => match uv {
            Ok(()) => DependencyBuilder::Uv,
            Err(why) => DependencyBuilder::Docker(NotDaemonless::NoUv(why.to_string())),
        },
    }
}

/// Who makes the dependency image once the apt step's facts are in (`apt`: each platform's,
/// gathered when `builder` was uv): uv still, unless a platform's packages cannot be laid
/// down without a daemon — the first package whose maintainer scripts must run, or why the
/// step is not laid down — then dockerd, naming it. [`AptFacts::Failed`] stays uv: its
/// error is reported by the build, not fallen back from.
pub fn with_apt(builder: DependencyBuilder, apt: &[(Platform, AptFacts)]) -> DependencyBuilder {
    if builder != DependencyBuilder::Uv {
        return builder;
    }
    for (platform, found) in apt {
        match found {
            AptFacts::Resolved(packages) => {
                if let Some((package, why)) = facts::blocker(packages) {
                    return DependencyBuilder::Docker(NotDaemonless::AptPackage { package, why });
                }
            }
            AptFacts::Unavailable(why) => {
                return DependencyBuilder::Docker(NotDaemonless::Apt {
                    platform: platform.clone(),
                    why: why.clone(),
                });
            }
            AptFacts::Failed(_) => {}
        }
    }
    builder
}

fn not_daemonless(deps: &BuildPlan, nested_base: bool, enabled: bool) -> Option<NotDaemonless> {
    if !enabled {
        return Some(NotDaemonless::TurnedOff);
    }
    if deps.flavor != Flavor::Imagespec {
        return Some(NotDaemonless::FlytekitDockerfile);
    }
    // `apt_packages` are laid down without a daemon (crate::apt); a package whose
    // maintainer scripts must run is found at the build, which falls back then.
    if let Some(mm) = &deps.micromamba {
        return Some(if mm.packages.is_empty() && mm.channels.is_empty() {
            NotDaemonless::PythonVersion
        } else {
            NotDaemonless::Conda
        });
    }
    if deps.runs_commands() {
        return Some(NotDaemonless::Commands);
    }
    // The Dockerfile's shell splits and expands the arguments; uv gets them as plain words.
    let words = |args: &str| {
        shlex::split(args).filter(|_| !args.contains(['$', '`', ';', '|', '&', '<', '>', '(', ')']))
    };
    match &deps.install {
        PythonInstall::Venv { args, .. } => {
            if words(args).is_none() {
                return Some(NotDaemonless::ShellArgs);
            }
        }
        PythonInstall::UvLock {
            base_python: Some(_),
            args,
        } => {
            let Some(words) = words(args) else {
                return Some(NotDaemonless::ShellArgs);
            };
            if let Err(why) = crate::builders::daemonless::uvlock::split_sync_args(&words) {
                return Some(NotDaemonless::SyncArgs(why.0));
            }
        }
        PythonInstall::PoetryLock { .. } => return Some(NotDaemonless::PoetryLock),
        // Only with micromamba, handled above.
        PythonInstall::Requirements { .. } | PythonInstall::UvLock { .. } => {
            return Some(NotDaemonless::PythonVersion);
        }
    }
    if !deps.secrets.is_empty() {
        return Some(NotDaemonless::PipSecretMounts);
    }
    if nested_base {
        return Some(NotDaemonless::NestedBase);
    }
    let empty = crate::oci::config::EnvList::default();
    for (key, value) in &deps.env {
        if let Err(e) = crate::oci::config::expand(value, &empty) {
            return Some(NotDaemonless::Env {
                key: key.clone(),
                why: e.to_string(),
            });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The dependency plan of a spec written as TOML.
    fn deps(toml: &str) -> BuildPlan {
        deps_with(toml, &Default::default())
    }

    fn deps_with(toml: &str, options: &crate::plan::RenderOptions) -> BuildPlan {
        let files = [
            ("requirements.txt", "six\n"),
            ("uv.lock", "version = 1\n"),
            ("poetry.lock", ""),
            ("pyproject.toml", "[project]\n"),
            ("secret", "x"),
        ];
        crate::plan::plan_in_dir(toml, &files, options).dependencies()
    }

    fn why(toml: &str) -> Option<NotDaemonless> {
        match dependency_builder(&deps(toml), false, true, Ok(())) {
            DependencyBuilder::Uv => None,
            DependencyBuilder::Docker(why) => Some(why),
        }
    }

    #[test]
    fn python_packages_env_and_entrypoint_build_without_a_daemon() {
        let spec = r#"
packages = ["pyyaml"]
requirements = "requirements.txt"
pip_index = "https://pypi.org/simple"
pip_extra_index_url = ["https://example.org/simple"]
pip_extra_args = "--prerelease allow"
env = { A = "1", P = "/opt/bin:$PATH", Q = "${HOME}/x" }
entrypoint = ["python"]
python_exec = "/usr/bin/python3"
"#;
        assert_eq!(why(spec), None);
        let several = format!("{spec}platform = \"linux/amd64,linux/arm64\"\n");
        assert_eq!(why(&several), None, "uv makes every platform's wheels");
        let b = dependency_builder(&deps(spec), false, true, Ok(()));
        assert_eq!((b.name(), b.reason()), ("uv", None));
    }

    #[test]
    fn what_runs_in_the_image_falls_back_to_dockerd_with_its_reason() {
        let cases = [
            (r#"conda_packages = ["numpy"]"#, NotDaemonless::Conda),
            (r#"conda_channels = ["bioconda"]"#, NotDaemonless::Conda),
            (r#"python_version = "3.11""#, NotDaemonless::PythonVersion),
            (r#"commands = ["echo hi"]"#, NotDaemonless::Commands),
            (
                "commands = [\"echo hi\"]\nbuilder_options = { commands_before_copy = true }",
                NotDaemonless::Commands,
            ),
            (r#"requirements = "poetry.lock""#, NotDaemonless::PoetryLock),
            (
                r#"pip_secret_mounts = [["secret", "/run/secrets/x"]]"#,
                NotDaemonless::PipSecretMounts,
            ),
            (
                r#"pip_extra_args = "--index-url $INDEX""#,
                NotDaemonless::ShellArgs,
            ),
            (
                r#"pip_extra_args = "--x 'unclosed""#,
                NotDaemonless::ShellArgs,
            ),
        ];
        for (spec, expected) in cases {
            assert_eq!(why(spec), Some(expected), "{spec}");
        }
        let Some(NotDaemonless::Env { key, .. }) = why(r#"env = { A = "${B:-c}" }"#) else {
            panic!("an unexpandable env value falls back")
        };
        assert_eq!(key, "A");
    }

    #[test]
    fn apt_packages_build_without_a_daemon() {
        assert_eq!(
            why("apt_packages = [\"git\", \"curl\"]\npackages = [\"six\"]\n"),
            None
        );
        let several = "apt_packages = [\"jq\"]\nplatform = \"linux/amd64,linux/arm64\"\n";
        assert_eq!(why(several), None, "each platform's own architecture");
    }

    #[test]
    fn a_uv_lock_builds_without_a_daemon_unless_its_arguments_need_uv_sync() {
        let lock = "requirements = \"uv.lock\"\n";
        assert_eq!(why(lock), None);
        let with_index = format!(
            "{lock}pip_index = \"https://pypi.example.com/simple\"\n\
             pip_extra_args = \"--extra fast --group docs\"\n"
        );
        assert_eq!(why(&with_index), None);
        let several = format!("{lock}platform = \"linux/amd64,linux/arm64\"\n");
        assert_eq!(why(&several), None, "uv makes every platform's wheels");
        let Some(NotDaemonless::SyncArgs(reason)) =
            why(&format!("{lock}pip_extra_args = \"--no-binary\"\n"))
        else {
            panic!("an argument only uv sync takes falls back")
        };
        assert_eq!(
            reason,
            "`--no-binary` of uv sync is not handled without a daemon"
        );
        assert_eq!(
            why(&format!("{lock}pip_extra_args = \"--extra $X\"\n")),
            Some(NotDaemonless::ShellArgs)
        );
        assert_eq!(
            why(&format!("{lock}python_version = \"3.11\"\n")),
            Some(NotDaemonless::PythonVersion),
            "micromamba's Python is made in the image"
        );
        assert_eq!(
            why(&format!("{lock}apt_packages = [\"jq\"]\n")),
            None,
            "apt packages are laid down without a daemon"
        );
    }

    #[test]
    fn the_caller_flytekits_dockerfile_and_nested_bases_fall_back() {
        let plan = deps(r#"packages = ["six"]"#);
        assert_eq!(
            dependency_builder(&plan, false, false, Ok(())),
            DependencyBuilder::Docker(NotDaemonless::TurnedOff)
        );
        assert_eq!(
            dependency_builder(&plan, true, true, Ok(())),
            DependencyBuilder::Docker(NotDaemonless::NestedBase)
        );
        let compat = crate::plan::RenderOptions {
            flavor: Flavor::FlytekitCompat,
            ..Default::default()
        };
        assert_eq!(
            dependency_builder(
                &deps_with(r#"packages = ["six"]"#, &compat),
                false,
                true,
                Ok(())
            ),
            DependencyBuilder::Docker(NotDaemonless::FlytekitDockerfile)
        );
    }

    #[test]
    fn no_uv_here_falls_back_but_a_specs_own_reason_comes_first() {
        let why = "no uv on this machine";
        assert_eq!(
            dependency_builder(&deps(r#"packages = ["six"]"#), false, true, Err(why)),
            DependencyBuilder::Docker(NotDaemonless::NoUv(why.into()))
        );
        assert_eq!(
            dependency_builder(
                &deps("packages = [\"six\"]\napt_packages = [\"jq\"]\n"),
                false,
                true,
                Err(why)
            ),
            DependencyBuilder::Docker(NotDaemonless::NoUv(why.into())),
            "apt packages are laid down without a daemon, the venv needs uv"
        );
        assert_eq!(
            dependency_builder(
                &deps("packages = [\"six\"]\ncommands = [\"echo\"]\n"),
                false,
                true,
                Err(why)
            ),
            DependencyBuilder::Docker(NotDaemonless::Commands)
        );
        assert_eq!(
            dependency_builder(&deps(r#"packages = ["six"]"#), false, false, Err(why)),
            DependencyBuilder::Docker(NotDaemonless::TurnedOff)
        );
    }

    fn package(name: &str, postinst: &str) -> crate::apt::facts::PackageFacts {
        crate::apt::facts::PackageFacts {
            name: name.into(),
            version: "1.0".into(),
            scripts: crate::apt::scripts::effects(name, [("postinst", postinst)]),
            removes_base_alternative: None,
        }
    }

    #[test]
    fn the_apt_facts_leave_a_package_whose_scripts_must_run_to_dockerd_naming_it() {
        let amd64 = Platform::parse("linux/amd64").unwrap();
        let arm64 = Platform::parse("linux/arm64").unwrap();
        let fine = AptFacts::Resolved(vec![
            package("libjq1", "#!/bin/sh\nset -e\nldconfig\n"),
            package("jq", ""),
        ]);
        let both = [(amd64.clone(), fine.clone()), (arm64.clone(), fine.clone())];
        assert_eq!(
            with_apt(DependencyBuilder::Uv, &both),
            DependencyBuilder::Uv
        );
        let sudo = AptFacts::Resolved(vec![
            package("libjq1", "ldconfig\n"),
            package("sudo", "#!/bin/sh\nset -e\naddgroup --system sudo\n"),
        ]);
        let b = with_apt(
            DependencyBuilder::Uv,
            &[(amd64.clone(), fine), (arm64, sudo)],
        );
        assert_eq!(
            b,
            DependencyBuilder::Docker(NotDaemonless::AptPackage {
                package: "sudo".into(),
                why: "its postinst runs `addgroup --system sudo`".into(),
            })
        );
        assert_eq!(
            b.reason().unwrap(),
            "apt package sudo: its postinst runs `addgroup --system sudo`, \
             which only the base's apt-get does"
        );
        let alpine = [(
            amd64.clone(),
            AptFacts::Unavailable("`apt_packages` need a Debian or Ubuntu base".into()),
        )];
        assert!(matches!(
            with_apt(DependencyBuilder::Uv, &alpine),
            DependencyBuilder::Docker(NotDaemonless::Apt { .. })
        ));
        let failed = [(amd64, AptFacts::Failed("bad signature".into()))];
        assert_eq!(
            with_apt(DependencyBuilder::Uv, &failed),
            DependencyBuilder::Uv,
            "an error is the build's to report, not a fallback"
        );
        let commands = DependencyBuilder::Docker(NotDaemonless::Commands);
        assert_eq!(
            with_apt(commands.clone(), &alpine),
            commands,
            "the spec's reason first"
        );
    }

    #[test]
    fn every_reason_is_one_line() {
        let all = [
            NotDaemonless::TurnedOff,
            NotDaemonless::FlytekitDockerfile,
            NotDaemonless::AptPackage {
                package: "sudo".into(),
                why: "its postinst runs `x`".into(),
            },
            NotDaemonless::Apt {
                platform: Platform::parse("linux/amd64").unwrap(),
                why: "the base image has no apt sources".into(),
            },
            NotDaemonless::Conda,
            NotDaemonless::PythonVersion,
            NotDaemonless::Commands,
            NotDaemonless::PoetryLock,
            NotDaemonless::SyncArgs(
                "`--no-binary` of uv sync is not handled without a daemon".into(),
            ),
            NotDaemonless::PipSecretMounts,
            NotDaemonless::ShellArgs,
            NotDaemonless::NestedBase,
            NotDaemonless::NoUv("no uv on this machine".into()),
        ];
        for why in all {
            let text = DependencyBuilder::Docker(why).to_string();
            assert!(
                text.starts_with("dockerd (") && !text.contains('\n'),
                "{text}"
            );
        }
    }
}
