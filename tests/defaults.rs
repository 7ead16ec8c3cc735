//! The defaults file from the command line: where defaults are found (project
//! `imagespec.toml` up to the repository root, the user's file, `IMAGESPEC_CONFIG`), that
//! `IMAGESPEC_NO_CONFIG` turns them off, which change the image name (only `base_image` and
//! `registry`, exactly as the spec field would), bad keys (exit 2 with their position), and
//! `inspect` naming each default's file.

use assert_cmd::Command;
use serde_json::Value;
use std::path::PathBuf;

/// A repository (`.git` bounds the search for `imagespec.toml`) and an empty user config
/// directory, both temporary.
struct Repo {
    _dir: tempfile::TempDir,
    root: PathBuf,
    xdg: PathBuf,
}

impl Repo {
    fn new() -> Repo {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = std::fs::canonicalize(dir.path())
            .expect("canonical")
            .join("repo");
        let xdg = root.parent().expect("parent").join("xdg");
        std::fs::create_dir_all(root.join(".git")).expect("mkdir");
        std::fs::create_dir_all(&xdg).expect("mkdir");
        Repo {
            _dir: dir,
            root,
            xdg,
        }
    }

    fn write(&self, rel: &str, text: &str) -> PathBuf {
        let path = self.root.join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, text).expect("write");
        path
    }

    fn user_config(&self, text: &str) -> PathBuf {
        let path = self.xdg.join("imagespec/config.toml");
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, text).expect("write");
        path
    }

    /// imagespec in the repository with only this test's user config directory and no
    /// imagespec variables from outside.
    fn imagespec(&self) -> Command {
        let mut cmd = Command::cargo_bin("imagespec").expect("binary");
        cmd.current_dir(&self.root)
            .env("IMAGESPEC_NO_CACHE", "1")
            .env("XDG_CONFIG_HOME", &self.xdg)
            .env("HOME", &self.xdg);
        for var in [
            "IMAGESPEC_CONFIG",
            "IMAGESPEC_NO_CONFIG",
            "IMAGESPEC_DEFAULTS_KEEP_NAME",
            "IMAGESPEC_CA_BUNDLE",
            "IMAGESPEC_NO_FAST_PATH",
            "IMAGESPEC_NO_DAEMONLESS",
        ] {
            cmd.env_remove(var);
        }
        cmd
    }

    fn tag(&self, spec: &str, env: &[(&str, &str)]) -> String {
        let out = self
            .imagespec()
            .envs(env.iter().copied())
            .args(["tag", spec])
            .output()
            .expect("run");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn inspect(&self, spec: &str, env: &[(&str, &str)]) -> Value {
        let out = self
            .imagespec()
            .envs(env.iter().copied())
            .args(["inspect", "--json", spec])
            .output()
            .expect("run");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("json")
    }

    /// Exit 2 and the error line.
    fn refused(&self, args: &[&str]) -> String {
        let out = self.imagespec().args(args).output().expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(out.stdout.is_empty());
        stderr
            .trim_end()
            .replace(&self.root.to_string_lossy().into_owned(), "[REPO]")
    }
}

const SPEC: &str = "name = \"app\"\npackages = [\"numpy\"]\n";

fn setting<'v>(inspected: &'v Value, key: &str) -> &'v Value {
    inspected["defaults"]["settings"]
        .as_array()
        .expect("settings")
        .iter()
        .find(|s| s["key"] == key)
        .unwrap_or_else(|| panic!("no {key} in {inspected}"))
}

#[test]
fn a_base_image_default_names_the_image_as_the_spec_field_would() {
    let repo = Repo::new();
    repo.write(
        "imagespec.toml",
        "[defaults]\nbase_image = \"python:3.12-slim\"\n",
    );
    repo.write("svc/spec.toml", SPEC);
    repo.write(
        "svc/written.toml",
        &format!("{SPEC}base_image = \"python:3.12-slim\"\n"),
    );
    let no_config = [("IMAGESPEC_NO_CONFIG", "1")];
    let plain = repo.tag("svc/spec.toml", &no_config);
    let defaulted = repo.tag("svc/spec.toml", &[]);
    assert_ne!(defaulted, plain, "base_image is hashed");
    assert_eq!(defaulted, repo.tag("svc/written.toml", &no_config));

    // inspect says why the name changed, and where the default is written.
    let inspected = repo.inspect("svc/spec.toml", &[]);
    let file = repo.root.join("imagespec.toml");
    assert_eq!(inspected["defaults"]["files"], serde_json::json!([file]));
    let base = setting(&inspected, "base_image");
    assert_eq!(base["from"], format!("{}:2:14", file.display()));
    assert_eq!(base["applied"], true);
    assert_eq!(base["changes_name"], true);
    assert_eq!(inspected["spec"]["base_image"], "python:3.12-slim");

    // The spec's own base_image wins over the default.
    let inspected = repo.inspect("svc/written.toml", &[]);
    let base = setting(&inspected, "base_image");
    assert_eq!(base["applied"], false);
    assert_eq!(base["overridden_by"], "the spec's `base_image`");

    // IMAGESPEC_NO_CONFIG reads no file.
    let off = repo.inspect("svc/spec.toml", &no_config);
    assert_eq!(off["defaults"]["files"], serde_json::json!([]));
    assert_eq!(off["image"], plain);

    // The flytekit plugin's switch: defaults that would change flytekit's name stay unused.
    let kept = repo.inspect("svc/spec.toml", &[("IMAGESPEC_DEFAULTS_KEEP_NAME", "1")]);
    assert_eq!(kept["image"], plain);
    assert_eq!(setting(&kept, "base_image")["applied"], false);

    // The human view names it too.
    let out = repo
        .imagespec()
        .args(["inspect", "svc/spec.toml"])
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!(
            "default   base_image = \"python:3.12-slim\" ({}:2:14; applied; changes the image name)",
            file.display()
        )),
        "{text}"
    );
}

#[test]
fn build_settings_never_change_the_name() {
    let repo = Repo::new();
    repo.write("certs/ca.pem", "-----BEGIN CERTIFICATE-----\n");
    repo.write(
        "imagespec.toml",
        "[defaults]\nca_bundle = \"certs/ca.pem\"\nfast_path = false\ndaemonless = false\n\
         [defaults.builder_config]\nuv_image = \"mirror.example:5000/uv:0.5\"\n\
         micromamba_image = \"mirror.example:5000/mm:2\"\n\
         [defaults.registry_mirrors]\n\"docker.io\" = \"mirror.example:5000\"\n",
    );
    repo.write("spec.toml", SPEC);
    let plain = repo.tag("spec.toml", &[("IMAGESPEC_NO_CONFIG", "1")]);
    assert_eq!(repo.tag("spec.toml", &[]), plain);
    let inspected = repo.inspect("spec.toml", &[]);
    for key in [
        "ca_bundle",
        "fast_path",
        "daemonless",
        "builder_config.uv_image",
        "builder_config.micromamba_image",
        "registry_mirrors.docker.io",
    ] {
        let s = setting(&inspected, key);
        assert_eq!(s["applied"], true, "{key}: {s}");
        assert_eq!(s["changes_name"], false, "{key}: {s}");
    }
    assert_eq!(
        setting(&inspected, "ca_bundle")["value"],
        repo.root.join("certs/ca.pem").display().to_string(),
        "relative to the defaults file"
    );
    // A variable takes precedence over the file.
    let overridden = repo.inspect("spec.toml", &[("IMAGESPEC_NO_FAST_PATH", "0")]);
    assert_eq!(
        setting(&overridden, "fast_path")["overridden_by"],
        "IMAGESPEC_NO_FAST_PATH"
    );

    // The default uv image is what the Dockerfile uses (the spec's `builder_config` would
    // win); the Dockerfile on disk keeps the spec's base name (mirrors are for pulling).
    let out = repo.root.join("ctx");
    let status = repo
        .imagespec()
        .args(["render", "spec.toml", "-o"])
        .arg(&out)
        .output()
        .expect("run");
    assert!(status.status.success(), "{status:?}");
    let dockerfile = std::fs::read_to_string(out.join("Dockerfile")).expect("Dockerfile");
    assert!(
        dockerfile.contains("FROM mirror.example:5000/uv:0.5 as uv"),
        "{dockerfile}"
    );
    assert!(
        dockerfile.contains("FROM debian:bookworm-slim"),
        "{dockerfile}"
    );
}

#[test]
fn the_nearest_project_file_wins_over_the_users_and_config_replaces_both() {
    let repo = Repo::new();
    repo.user_config("[defaults]\nbase_image = \"user/base:1\"\nregistry = \"localhost:5000\"\n");
    repo.write("spec.toml", SPEC);
    let user = repo.inspect("spec.toml", &[]);
    assert_eq!(user["spec"]["base_image"], "user/base:1");
    assert!(
        user["image"]
            .as_str()
            .is_some_and(|i| i.starts_with("localhost:5000/app:")),
        "{user}"
    );

    // A project file above the spec: its base_image over the user's, the user's registry
    // still applies (key by key).
    repo.write(
        "imagespec.toml",
        "[defaults]\nbase_image = \"project/base:1\"\n",
    );
    repo.write("svc/spec.toml", SPEC);
    let both = repo.inspect("svc/spec.toml", &[]);
    assert_eq!(both["spec"]["base_image"], "project/base:1");
    assert_eq!(both["spec"]["registry"], "localhost:5000");
    let files: Vec<&str> = both["defaults"]["files"]
        .as_array()
        .expect("files")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(files[0].ends_with("repo/imagespec.toml"), "{files:?}");
    assert!(files[1].ends_with("imagespec/config.toml"), "{files:?}");

    // A spec file named imagespec.toml holding [defaults] is both: its own defaults apply to
    // its spec, and beat the parent's.
    repo.write(
        "svc/imagespec.toml",
        &format!("{SPEC}[defaults]\nbase_image = \"svc/base:1\"\n"),
    );
    let own = repo.inspect("svc/imagespec.toml", &[]);
    assert_eq!(own["spec"]["base_image"], "svc/base:1");
    assert_eq!(own["spec"]["name"], "app");

    // --config (IMAGESPEC_CONFIG) reads that file only.
    let other = repo.write("other.toml", "[defaults]\nbase_image = \"other/base:1\"\n");
    let chosen = repo.inspect(
        "svc/spec.toml",
        &[("IMAGESPEC_CONFIG", other.to_str().expect("utf-8"))],
    );
    assert_eq!(chosen["spec"]["base_image"], "other/base:1");
    assert_eq!(chosen["spec"].get("registry"), None);
    assert_eq!(chosen["defaults"]["files"], serde_json::json!([other]));
}

#[test]
fn discovery_stops_at_the_repository_root() {
    let repo = Repo::new();
    // Above the repository (the directory with .git): not read.
    std::fs::write(
        repo.root.parent().expect("parent").join("imagespec.toml"),
        "[defaults]\nbase_image = \"outside/base:1\"\n",
    )
    .expect("write");
    repo.write("spec.toml", SPEC);
    let inspected = repo.inspect("spec.toml", &[]);
    assert_eq!(inspected["defaults"]["files"], serde_json::json!([]));
    assert_eq!(inspected["spec"].get("base_image"), None);
}

#[test]
fn bad_defaults_are_bad_input_with_their_position() {
    let repo = Repo::new();
    repo.write("spec.toml", SPEC);
    repo.write(
        "imagespec.toml",
        "[defaults]\nbase_imag = \"python:3.12\"\n",
    );
    insta::assert_snapshot!(
        repo.refused(&["tag", "spec.toml"]),
        @"error: [REPO]/imagespec.toml:2:1: unknown field `defaults.base_imag`; did you mean `base_image`?"
    );
    repo.write(
        "imagespec.toml",
        "[defaults.registry_mirrors]\n\"docker.io\" = 5000\n",
    );
    insta::assert_snapshot!(
        repo.refused(&["tag", "spec.toml"]),
        @"error: [REPO]/imagespec.toml:2:15: `defaults.registry_mirrors.docker.io`: expected a string, found the integer 5000"
    );
    repo.write(
        "imagespec.toml",
        "[defaults]\nca_bundle = \"missing.pem\"\n",
    );
    insta::assert_snapshot!(
        repo.refused(&["tag", "spec.toml"]),
        @"error: [REPO]/imagespec.toml:2:13: `defaults.ca_bundle`: [REPO]/missing.pem is not a file (a PEM bundle of CA certificates; a relative path is relative to this file's directory)"
    );
    std::fs::remove_file(repo.root.join("imagespec.toml")).expect("rm");

    // [defaults] in a spec file of another name would never be read: refused.
    repo.write(
        "with-defaults.toml",
        &format!("{SPEC}[defaults]\nfast_path = false\n"),
    );
    insta::assert_snapshot!(
        repo.refused(&["tag", "with-defaults.toml"]),
        @"error: with-defaults.toml:3:2: `defaults`: a `[defaults]` table is read only from a file named `imagespec.toml` (next to the spec or in a directory above it) or from the user's config file; move it there"
    );
    // --config naming a missing file.
    let err = repo.refused(&["tag", "spec.toml", "--config", "nope.toml"]);
    assert!(
        err.starts_with("error: nope.toml: cannot read the defaults file:"),
        "{err}"
    );
}
