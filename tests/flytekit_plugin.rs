//! The flytekit plugin (`plugins/flytekit`): its wheel installed beside flytekit 1.16 in a
//! venv (`scripts/e2e/plugin.sh`, run by `scripts/test.sh`), checked from outside: the
//! images flytekit names are what the binary builds, `pyflyte package` builds through the
//! plugin and pushes to the e2e registry (skopeo sees them), the task templates name those
//! images, a second package builds nothing, and `is_container()` answers inside the image.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

const DOCKER: &str = "/usr/bin/docker";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The plugin venv's bin directory, or `None` (and a note) outside CI when it is missing.
fn venv_bin() -> Option<PathBuf> {
    let venv = std::env::var("IMAGESPEC_PLUGIN_VENV").map(PathBuf::from).unwrap_or_else(|_| PathBuf::from("/var/cache/imagespec-e2e/plugin-venv"));
    let ok = Command::new(venv.join("bin/python")).args(["-c", "import flytekitplugins.imagespec"]).output().is_ok_and(|o| o.status.success());
    if !ok {
        assert!(std::env::var_os("CI").is_none(), "the plugin venv {} is missing: scripts/e2e/plugin.sh makes it", venv.display());
        eprintln!("plugin venv missing: run scripts/e2e/plugin.sh");
        return None;
    }
    Some(venv.join("bin"))
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{cmd:?} failed:\n{text}\n{}", String::from_utf8_lossy(&out.stderr));
    text
}

fn registry_digest(image: &str) -> Option<String> {
    let out = Command::new("skopeo").args(["inspect", "--tls-verify=false", &format!("docker://{image}")]).output().ok()?;
    out.status.success().then(|| serde_json::from_slice::<Value>(&out.stdout).ok()?["Digest"].as_str().map(String::from)).flatten()
}

#[test]
fn python_image_names_agree_with_the_binary() {
    let Some(bin) = venv_bin() else { return };
    let out = run(Command::new(bin.join("python")).arg(repo().join("plugins/flytekit/tests/agree.py")));
    assert!(out.contains("11/11 agree"), "{out}");
}

#[test]
fn the_plugin_is_flytekits_builder_unless_a_spec_names_another() {
    let Some(bin) = venv_bin() else { return };
    let script = r#"
import flytekit
from flytekit.image_spec.image_spec import ImageBuildEngine, ImageSpec
registry = {k: v[1] for k, v in ImageBuildEngine.get_registry().items()}
print(registry["imagespec"] > registry["default"], ImageSpec(name="x").builder, ImageSpec(name="x", builder="default").builder)
"#;
    assert_eq!(run(Command::new(bin.join("python")).args(["-c", script])), "True imagespec default\n");
}

fn package(bin: &Path, project: &Path, run_id: &str, out: &Path) -> String {
    let output = Command::new(bin.join("pyflyte"))
        .current_dir(project)
        .env("PLUGIN_RUN_ID", run_id)
        .args(["--pkgs", "workflows", "package", "-f", "--output", out.to_str().unwrap()])
        .output()
        .expect("pyflyte");
    let text = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "pyflyte package failed:\n{text}");
    text
}

#[test]
fn pyflyte_package_builds_and_pushes_through_the_plugin() {
    let Some(bin) = venv_bin() else { return };
    let up = Command::new("curl").args(["-sf", "http://127.0.0.1:5000/v2/"]).output().is_ok_and(|o| o.status.success());
    if !up {
        assert!(std::env::var_os("CI").is_none(), "the e2e registry is not running");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let project = dir.path().join("project");
    run(Command::new("cp").args(["-r", repo().join("plugins/flytekit/tests/project").to_str().unwrap(), project.to_str().unwrap()]));
    let run_id = format!("{}-{}", std::process::id(), std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos());
    let helper = repo().join("plugins/flytekit/tests/registration.py");
    let python = |args: &[&str]| run(Command::new(bin.join("python")).current_dir(&project).env("PYTHONPATH", &project).env("PLUGIN_RUN_ID", &run_id).arg(&helper).args(args));

    let pkg = dir.path().join("flyte-package.tgz");
    let log = package(&bin, &project, &run_id, &pkg);
    assert!(log.contains("built and pushed") && log.contains("assembled in the registry"), "imagespec built the images:\n{log}");

    // The task templates name images that are in the registry, seen by skopeo.
    let templates: Value = serde_json::from_str(&python(&["package-images", pkg.to_str().unwrap()])).expect("json");
    let names: Value = serde_json::from_str(&python(&["images"])).expect("json");
    let src_image = templates["workflows.wf.uses_source"].as_str().expect("uses_source's image");
    let app_image = templates["workflows.wf.uses_six"].as_str().expect("uses_six's image");
    assert_eq!(src_image, names["src"].as_str().unwrap(), "the template names flytekit's image name");
    assert!(app_image.starts_with("localhost:5000/plug-app:"), "{app_image}");
    let base_image = names["base"].as_str().unwrap();
    let digests: Vec<String> = [src_image, app_image, base_image].iter().map(|i| registry_digest(i).unwrap_or_else(|| panic!("{i} is not in the registry"))).collect();

    // A second package builds nothing.
    let log = package(&bin, &project, &run_id, &pkg);
    assert!(!log.contains("not found") && log.matches("found. Skip building").count() == 3, "nothing to build the second time:\n{log}");
    let again: Vec<String> = [src_image, app_image, base_image].iter().map(|i| registry_digest(i).unwrap()).collect();
    assert_eq!(digests, again);

    // is_container(), as a task sees it: true in the image built from the spec, false here.
    let root = project.to_str().unwrap();
    assert_eq!(python(&["is-container", "src"]), "False\n");
    run(Command::new(DOCKER).args(["pull", "-q", src_image]));
    let inside = run(Command::new(DOCKER).args([
        "run", "--rm", "-e", &format!("PLUGIN_RUN_ID={run_id}"), "-e", &format!("PLUGIN_PROJECT_ROOT={root}"), src_image, "python", "-c",
        "from flytekit.core.context_manager import ExecutionState as E, FlyteContextManager as M\n\
         import workflows.wf as wf\n\
         c = M.current_context()\n\
         with M.with_context(c.with_execution_state(c.execution_state.with_params(mode=E.Mode.TASK_EXECUTION))):\n    print(wf.src.is_container(), wf.uses_source(x=3))",
    ]));
    assert_eq!(inside.lines().last(), Some("True 6"), "{inside}");
    run(Command::new(DOCKER).args(["rmi", src_image]));
}
