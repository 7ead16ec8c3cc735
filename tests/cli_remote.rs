//! The remote builder's choice on the command line, without services: where the address
//! comes from (`--builder-host`, `BUILDKIT_HOST`, the defaults file), what `plan` shows,
//! and a bad address refused as bad input (exit 2) naming where it came from.

use assert_cmd::Command;
use predicates::prelude::*;

/// `imagespec ARGS` in a directory with a spec without a registry, no defaults file read
/// unless `defaults` is given (then written as the project's `imagespec.toml`).
fn imagespec(
    defaults: Option<&str>,
    env: &[(&str, &str)],
    args: &[&str],
) -> assert_cmd::assert::Assert {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("spec.toml"),
        "name = \"x\"\npackages = [\"six\"]\n",
    )
    .unwrap();
    let mut cmd = Command::cargo_bin("imagespec").unwrap();
    cmd.current_dir(dir.path())
        .env_remove("BUILDKIT_HOST")
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .env("HOME", dir.path());
    match defaults {
        Some(text) => {
            std::fs::write(dir.path().join("imagespec.toml"), text).unwrap();
            std::fs::create_dir_all(dir.path().join(".git")).unwrap();
        }
        None => {
            cmd.env("IMAGESPEC_NO_CONFIG", "1");
        }
    }
    cmd.envs(env.iter().copied()).args(args).assert()
}

#[test]
fn plan_names_the_builder_and_where_its_address_came_from() {
    // The spec names no registry: a remote builder could not keep the image here (exit 2),
    // and the plan still names the builder.
    imagespec(
        None,
        &[("BUILDKIT_HOST", "tcp://127.0.0.1:1")],
        &["plan", "spec.toml"],
    )
    .code(2)
    .stdout(predicate::str::contains(
        "  builder:    BuildKit at tcp://127.0.0.1:1 (BUILDKIT_HOST), pushes the image itself",
    ))
    .stdout(predicate::str::contains(
        "a remote BuildKit builder pushes the image it builds, but the spec names no registry",
    ));
    // The flag wins over the variable.
    imagespec(
        None,
        &[("BUILDKIT_HOST", "tcp://127.0.0.1:1")],
        &[
            "plan",
            "spec.toml",
            "--json",
            "--builder-host",
            "unix:///run/b.sock",
        ],
    )
    .stdout(predicate::str::contains(
        r#""builder_host":"unix:///run/b.sock""#,
    ));
    // The defaults file's, shown with where it is written; none: dockerd builds.
    imagespec(
        Some("[defaults]\nbuildkit_host = \"tcp://10.0.0.1:1234\"\n"),
        &[],
        &["plan", "spec.toml"],
    )
    .stdout(predicate::str::contains(
        "BuildKit at tcp://10.0.0.1:1234 (buildkit_host at ",
    ));
    imagespec(None, &[], &["plan", "spec.toml", "--json"])
        .stdout(predicate::str::contains(r#""builder_host":null"#));
}

#[test]
fn a_bad_builder_address_is_bad_input_naming_where_it_came_from() {
    imagespec(
        None,
        &[],
        &["plan", "spec.toml", "--builder-host", "buildkit:1"],
    )
    .code(2)
    .stderr(predicate::str::contains(
        "builder host `buildkit:1`: unknown scheme; expected tcp://HOST:PORT or unix:///PATH",
    ));
    imagespec(
        None,
        &[("BUILDKIT_HOST", "tcp://b")],
        &["plan", "spec.toml"],
    )
    .code(2)
    .stderr(predicate::str::contains(
        "the remote builder (BUILDKIT_HOST): builder host `tcp://b`: no port",
    ));
    imagespec(
        Some("[defaults]\nbuildkit_host = \"b:1\"\n"),
        &[],
        &["plan", "spec.toml"],
    )
    .code(2)
    .stderr(predicate::str::contains("defaults.buildkit_host"));
}
