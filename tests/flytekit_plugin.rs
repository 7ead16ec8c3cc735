//! The flytekit plugin (`plugins/flytekit`): its wheel installed beside flytekit 1.16 in a
//! venv (`scripts/e2e/plugin.sh`, run by `scripts/test.sh`).
//!
//! - agree: flytekit's `image_name()` and `id` for a corpus of Python specs are what the
//!   binary computes from the JSON spec the plugin writes (the checkout's plugin code and
//!   binary);
//! - pytest (`plugins/flytekit/tests/test_*.py`): flytekit's `ImageBuildEngine` drives the
//!   plugin (a recording binary, no Docker): nested bases handed back whole, `should_build`'s
//!   answers, `--force`, module lists, failures, digests; `should_build` asks the real
//!   registry (present, absent, a closed port, force) with no daemon; large output on both
//!   pipes; refused values;
//! - registration: `pyflyte package` with the wheel builds and pushes through the plugin,
//!   checked from outside (skopeo, the package's task templates, `docker run`); then, after a
//!   code change, again with `DOCKER_HOST` pointing nowhere: the changed images are appended
//!   in the registry, the unchanged base skipped;
//! - the same on a CI pod with no Docker and the team's remote BuildKit builder named by
//!   `BUILDKIT_HOST` and a defaults file (its certificates): nothing changed in the project.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

mod common;

use common::e2e::{DOCKER, NO_DAEMON, missing, output, registry_digest, run_id, services};
use common::repo;

/// The plugin venv's bin directory, or `None` (and a note) outside CI when it is missing.
fn venv_bin() -> Option<PathBuf> {
    let venv = std::env::var("IMAGESPEC_PLUGIN_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from("/var/cache/imagespec-e2e/plugin-venv"));
    let ok = Command::new(venv.join("bin/python"))
        .args(["-c", "import flytekitplugins.imagespec"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        return missing(&format!(
            "the plugin venv {} is missing: scripts/e2e/plugin.sh makes it",
            venv.display()
        ));
    }
    Some(venv.join("bin"))
}

/// The venv's python running the checkout's plugin code with this build's binary.
fn checkout_python(bin: &Path) -> Command {
    let mut cmd = Command::new(bin.join("python"));
    cmd.env("PYTHONPATH", repo().join("plugins/flytekit/python"))
        .env("IMAGESPEC_BINARY", env!("CARGO_BIN_EXE_imagespec"));
    cmd
}

#[test]
fn python_image_names_agree_with_the_binary() {
    let Some(bin) = venv_bin() else { return };
    let out = output(checkout_python(&bin).arg(repo().join("plugins/flytekit/tests/agree.py")));
    let last = out.lines().last().unwrap_or_default();
    let (agreed, total) = last
        .strip_suffix(" agree")
        .and_then(|s| s.split_once('/'))
        .expect("an `N/M agree` line");
    assert!(
        agreed == total && total.parse::<u32>().unwrap() >= 10,
        "{out}"
    );
}

/// The plugin's pytest suite (`plugins/flytekit/tests`, the README's test command): the
/// engine's decisions with a recording binary, `should_build` against the plain registry and a
/// closed port, the pipes, refused values. pytest's "no tests collected" (exit 5) fails here
/// like any other non-zero exit, and so does a suite smaller than it should be.
#[test]
fn plugin_pytest_suite_passes() {
    let Some(bin) = venv_bin() else { return };
    let mut cmd = checkout_python(&bin);
    cmd.current_dir(repo().join("plugins/flytekit"))
        .env("IMAGESPEC_REAL_BINARY", env!("CARGO_BIN_EXE_imagespec"))
        .args(["-m", "pytest", "-p", "no:cacheprovider", "-rs", "tests"]);
    let out = output(&mut cmd);
    let summary = out.lines().last().unwrap_or_default();
    let count = |word: &str| -> u32 {
        summary
            .split(", ")
            .filter_map(|part| part.trim_matches(|c| c == '=' || c == ' ').split_once(' '))
            .find(|(_, what)| what.starts_with(word))
            .and_then(|(n, _)| n.parse().ok())
            .unwrap_or(0)
    };
    assert!(count("passed") >= 30, "too few tests passed:\n{out}");
    if std::env::var_os("CI").is_some() {
        assert_eq!(count("skipped"), 0, "tests skipped under CI:\n{out}");
    }
}

fn package(bin: &Path, project: &Path, run_id: &str, out: &Path, env: &[(&str, &str)]) -> String {
    let output = Command::new(bin.join("pyflyte"))
        .current_dir(project)
        .env("PLUGIN_RUN_ID", run_id)
        .envs(env.iter().copied())
        .args([
            "--pkgs",
            "workflows",
            "package",
            "-f",
            "--output",
            out.to_str().unwrap(),
        ])
        .output()
        .expect("pyflyte");
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "pyflyte package failed:\n{text}");
    text
}

/// `docker run IMAGE python -c CODE` with the project's environment, as a task runs there.
fn in_image(image: &str, run_id: &str, root: &str, code: &str) -> String {
    output(Command::new(DOCKER).args([
        "run",
        "--rm",
        "-e",
        &format!("PLUGIN_RUN_ID={run_id}"),
        "-e",
        &format!("PLUGIN_PROJECT_ROOT={root}"),
        image,
        "python",
        "-c",
        code,
    ]))
}

/// Pulls the `app` and `src` images and checks what [`IS_CONTAINER`] prints in each (its
/// last line), as a task of this run sees it.
fn tasks_see(images: [&str; 2], run_id: &str, root: &str, expected: [&str; 2]) {
    for image in images {
        output(Command::new(DOCKER).args(["pull", "-q", image]));
    }
    for (image, expected) in images.into_iter().zip(expected) {
        let says = in_image(image, run_id, root, IS_CONTAINER);
        assert_eq!(says.lines().last(), Some(expected), "in {image}: {says}");
    }
}

/// Prints, as a task sees it: both specs' `is_container()`, both tasks run on 3, and whether
/// `/root/run_id.txt` (only in the `src` image) holds this run's id.
const IS_CONTAINER: &str = "import os\n\
from flytekit.core.context_manager import ExecutionState as E, FlyteContextManager as M\n\
import workflows.wf as wf\n\
c = M.current_context()\n\
copied = os.path.exists('/root/run_id.txt') and open('/root/run_id.txt').read() == wf.RUN\n\
with M.with_context(c.with_execution_state(c.execution_state.with_params(mode=E.Mode.TASK_EXECUTION))):\n    print(wf.app.is_container(), wf.src.is_container(), wf.uses_six(x=3), wf.uses_source(x=3), copied)";

/// A copy of the test project in `dir`, with a file only this run has (its id, returned): a
/// new `src` image, whose whole tree is copied in.
fn project_copy(dir: &Path) -> (PathBuf, String) {
    let project = dir.join("project");
    let from = repo().join("plugins/flytekit/tests/project");
    output(Command::new("cp").arg("-r").arg(&from).arg(&project));
    let run_id = run_id();
    std::fs::write(project.join("run_id.txt"), &run_id).expect("run id file");
    (project, run_id)
}

#[test]
fn pyflyte_package_builds_and_pushes_through_the_plugin() {
    let Some(bin) = venv_bin() else { return };
    if services().is_none() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (project, run_id) = project_copy(dir.path());
    let helper = repo().join("plugins/flytekit/tests/registration.py");
    let python = |args: &[&str]| {
        output(
            Command::new(bin.join("python"))
                .current_dir(&project)
                .env("PYTHONPATH", &project)
                .env("PLUGIN_RUN_ID", &run_id)
                .arg(&helper)
                .args(args),
        )
    };

    let pkg = dir.path().join("flyte-package.tgz");
    let log = package(&bin, &project, &run_id, &pkg, &[]);
    assert_eq!(
        log.matches("not found. building...").count(),
        3,
        "flytekit found three images to build:\n{log}"
    );
    assert!(
        log.contains("built and pushed") && log.contains("assembled in the registry"),
        "imagespec built the images:\n{log}"
    );

    // The task templates name flytekit's image names, and the registry has them (skopeo).
    let templates: Value =
        serde_json::from_str(&python(&["package-images", pkg.to_str().unwrap()])).expect("json");
    let names: Value = serde_json::from_str(&python(&["images"])).expect("json");
    let app_image = templates["workflows.wf.uses_six"]
        .as_str()
        .expect("uses_six's image");
    let src_image = templates["workflows.wf.uses_source"]
        .as_str()
        .expect("uses_source's image");
    assert_eq!(
        app_image,
        names["app"].as_str().unwrap(),
        "uses_six names flytekit's image name"
    );
    assert_eq!(
        src_image,
        names["src"].as_str().unwrap(),
        "uses_source names flytekit's image name"
    );
    let base_image = names["base"].as_str().unwrap();
    let images = [base_image, app_image, src_image];
    let digests: Vec<String> = images.iter().map(|i| registry_digest(i)).collect();

    // A second package builds nothing.
    let log = package(&bin, &project, &run_id, &pkg, &[]);
    assert!(
        !log.contains("not found") && log.matches("found. Skip building").count() == 3,
        "nothing to build the second time:\n{log}"
    );
    let again: Vec<String> = images.iter().map(|i| registry_digest(i)).collect();
    assert_eq!(digests, again, "registry digests unchanged");

    // is_container(), as a task sees it: false here, true in the image built from the spec
    // (the app's id is computed with its nested base spec, as flytekit's default builder
    // writes it), and the tasks run from the copied source.
    let root = project.to_str().unwrap();
    assert_eq!(python(&["is-container", "app"]), "False\n");
    assert_eq!(python(&["is-container", "src"]), "False\n");
    tasks_see(
        [app_image, src_image],
        &run_id,
        root,
        ["True False 4 6 False", "False True 4 6 True"],
    );

    // A code change on a runner without Docker: flytekit's own exist() would ask the daemon,
    // get no answer and assume every image exists; the plugin asks the registry, finds the
    // two images whose code changed missing, and the fast path appends the new code to their
    // dependency images, in the registry. The base, unchanged, is skipped.
    std::fs::write(
        project.join("workflows/helper.py"),
        "def inc(x):\n    return x + 10\n",
    )
    .expect("code change");
    let no_daemon = [("DOCKER_HOST", NO_DAEMON)];
    let log = package(&bin, &project, &run_id, &pkg, &no_daemon);
    let changed: Value = serde_json::from_str(&python(&["images"])).expect("json");
    let (new_app, new_src) = (
        changed["app"].as_str().unwrap(),
        changed["src"].as_str().unwrap(),
    );
    assert_eq!(
        changed["base"].as_str(),
        Some(base_image),
        "the base is unchanged"
    );
    assert!(
        new_app != app_image && new_src != src_image,
        "new code, new names"
    );
    assert!(
        log.contains(&format!("Image {base_image} found. Skip building."))
            && log.contains(&format!("Image {new_app} not found. building..."))
            && log.contains(&format!("Image {new_src} not found. building...")),
        "the registry was asked, not the daemon:\n{log}"
    );
    assert!(
        !log.contains("assumes the image") && !log.contains("built and pushed"),
        "nothing assumed, nothing built with a daemon:\n{log}"
    );
    assert_eq!(
        log.matches("assembled in the registry").count(),
        2,
        "both changed images appended in the registry:\n{log}"
    );
    let templates: Value =
        serde_json::from_str(&python(&["package-images", pkg.to_str().unwrap()])).expect("json");
    assert_eq!(templates["workflows.wf.uses_six"].as_str(), Some(new_app));
    assert_eq!(
        templates["workflows.wf.uses_source"].as_str(),
        Some(new_src)
    );
    let fresh: Vec<String> = [base_image, new_app, new_src]
        .iter()
        .map(|i| registry_digest(i))
        .collect();
    assert_eq!(fresh[0], digests[0], "the base was not rebuilt");

    // Daemonless again, with nothing changed: nothing to build.
    let log = package(&bin, &project, &run_id, &pkg, &no_daemon);
    assert!(
        !log.contains("not found") && log.matches("found. Skip building").count() == 3,
        "nothing to build the second daemonless time:\n{log}"
    );

    // The changed images carry the new code (inc adds 10 now).
    tasks_see(
        [new_app, new_src],
        &run_id,
        root,
        ["True False 13 6 False", "False True 13 6 True"],
    );
    for image in [app_image, src_image, new_app, new_src] {
        let _ = Command::new(DOCKER).args(["rmi", image]).output();
    }
}

/// `pyflyte package` on a CI pod with no Docker and the team's BuildKit builder named only in
/// the environment (`BUILDKIT_HOST`) and a defaults file (its mTLS files): the base spec,
/// whose `commands` need BuildKit, is built and pushed by the remote builder; the app's
/// dependency image is made without a daemon on top of it and the `src` image appended in
/// the registry. No code change in the project. Checked from outside: the images run.
#[test]
fn pyflyte_package_builds_on_a_remote_builder_without_docker() {
    let Some(bin) = venv_bin() else { return };
    let Some(env) = services() else { return };
    let Some(host) = env.file.get("IMAGESPEC_E2E_BUILDKIT_HOST") else {
        let _: Option<()> = missing(&format!(
            "no remote buildkitd in {} (scripts/e2e/buildkitd.sh up starts it)",
            env.file.path
        ));
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let (project, run_id) = project_copy(dir.path());
    let config = dir.path().join("imagespec.toml");
    std::fs::write(
        &config,
        format!(
            "[defaults.buildkit_tls]\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n",
            env.file.need("IMAGESPEC_E2E_BUILDKIT_CA"),
            env.file.need("IMAGESPEC_E2E_BUILDKIT_CERT"),
            env.file.need("IMAGESPEC_E2E_BUILDKIT_KEY"),
        ),
    )
    .expect("defaults file");
    let config = config.to_str().unwrap();
    let pod = [
        ("DOCKER_HOST", NO_DAEMON),
        ("BUILDKIT_HOST", host.as_str()),
        ("IMAGESPEC_CONFIG", config),
    ];
    let pkg = dir.path().join("flyte-package.tgz");
    let log = package(&bin, &project, &run_id, &pkg, &pod);
    assert_eq!(
        log.matches("not found. building...").count(),
        3,
        "three new images:\n{log}"
    );
    // The base (its `commands`) and the app's dependency image (on the nested base's venv).
    assert_eq!(
        log.matches(&format!("on the BuildKit builder at {host}"))
            .count(),
        2,
        "the base and the app's dependencies built on the remote builder:\n{log}"
    );
    assert!(
        !log.contains("with dockerd") && !log.contains("DOCKER_HOST"),
        "nothing asked of dockerd:\n{log}"
    );
    assert_eq!(
        log.matches("assembled in the registry").count(),
        2,
        "the app and src images appended in the registry:\n{log}"
    );

    let helper = repo().join("plugins/flytekit/tests/registration.py");
    let names = output(
        Command::new(bin.join("python"))
            .current_dir(&project)
            .env("PYTHONPATH", &project)
            .env("PLUGIN_RUN_ID", &run_id)
            .arg(&helper)
            .arg("images"),
    );
    let names: Value = serde_json::from_str(&names).expect("json");
    let (app, src) = (
        names["app"].as_str().unwrap(),
        names["src"].as_str().unwrap(),
    );
    let root = project.to_str().unwrap();
    tasks_see(
        [app, src],
        &run_id,
        root,
        ["True False 4 6 False", "False True 4 6 True"],
    );
    for image in [app, src] {
        let _ = Command::new(DOCKER).args(["rmi", image]).output();
    }
}
