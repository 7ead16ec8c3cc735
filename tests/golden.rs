//! Golden tests against flytekit itself: for every case of `testdata/corpus`, the id, tag
//! and image name `imagespec inspect --json` gives, from the TOML, YAML and JSON forms of the
//! spec, must equal what flytekit 1.16 computed (`testdata/gen_goldens.py` made
//! `testdata/goldens/tags.json`). Cases are materialised at the fixed path the generator
//! used, `/tmp/imagespec-corpus/<case>`, because some specs hold absolute paths.

mod common;

use common::{case_args, isolated_imagespec, materialise, repo};
use serde_json::Value;

/// What imagespec does instead of what flytekit does, on purpose (docs/differences.md,
/// differences").
#[derive(Clone, Copy, PartialEq)]
enum Instead {
    /// imagespec rejects the spec (exit 2) where flytekit computes a tag.
    Rejects,
    /// A link in the source tree leaves `source_root`: refused (exit 2) unless
    /// `--allow-external-links`, with which the tag is flytekit's.
    RefusesExternalLinks,
}

/// (case, image key, format or "*", what imagespec does instead, why).
const DELIBERATE: &[(&str, &str, &str, Instead, &str)] = &[
    (
        "copy_edge_forms",
        "as_string_dir",
        "*",
        Instead::Rejects,
        "`copy` must be a list: flytekit hashes a string as a directory walk, then its builder copies each character",
    ),
    (
        "copy_edge_forms",
        "as_string_file",
        "*",
        Instead::Rejects,
        "same: `copy` as a string",
    ),
    (
        "yaml_only_scalar_typing",
        "",
        "yaml",
        Instead::Rejects,
        "mapping keys must be strings (PyYAML makes `yes:` the key True)",
    ),
    (
        "source_walk_special_files",
        "",
        "*",
        Instead::RefusesExternalLinks,
        "src/link_outside -> ../outside.txt leaves source_root: a link could bake any host file into the image (docs/security.md)",
    ),
    (
        "copy_edge_forms",
        "only_missing",
        "*",
        Instead::Rejects,
        "a missing `copy` entry: flytekit names the image, its build raises FileNotFoundError",
    ),
    (
        "copy_files_and_dirs",
        "",
        "*",
        Instead::Rejects,
        "a missing `copy` entry: flytekit names the image, its build raises FileNotFoundError",
    ),
    (
        "render_copy_rejected",
        "missing",
        "*",
        Instead::Rejects,
        "a missing `copy` entry: flytekit names the image, its build raises FileNotFoundError",
    ),
    (
        "copy_edge_forms",
        "absolute_file",
        "*",
        Instead::Rejects,
        "an absolute or `..` `copy` entry: flytekit names the image, its build raises ValueError",
    ),
    (
        "render_copy_rejected",
        "absolute",
        "*",
        Instead::Rejects,
        "an absolute or `..` `copy` entry: flytekit names the image, its build raises ValueError",
    ),
    (
        "render_copy_rejected",
        "dotdot_inside",
        "*",
        Instead::Rejects,
        "an absolute or `..` `copy` entry: flytekit names the image, its build raises ValueError",
    ),
    (
        "render_copy_rejected",
        "dotdot_outside",
        "*",
        Instead::Rejects,
        "an absolute or `..` `copy` entry: flytekit names the image, its build raises ValueError",
    ),
];

fn deliberate(case: &str, key: &str, format: &str) -> Option<Instead> {
    if common::refused_on_purpose(case, key) {
        return Some(Instead::Rejects);
    }
    DELIBERATE
        .iter()
        .find(|(c, k, f, _, _)| *c == case && *k == key && (*f == "*" || *f == format))
        .map(|(_, _, _, instead, _)| *instead)
}

#[test]
fn tags_match_flytekit_for_the_whole_corpus() {
    let _corpus = common::corpus_lock();
    let (failures, checked) = corpus_failures(None, &|_| {});
    assert!(
        failures.is_empty(),
        "{} of {checked} checks differ from flytekit:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(checked >= 60, "only {checked} checks ran");
}

/// A defaults file with every key that must not change a name (docs/defaults.md)
/// leaves every name flytekit's: `builder_config` defaults are not the spec's (which
/// flytekit hashes), mirrors and the rest are used only to build. TOML forms only.
#[test]
fn name_neutral_defaults_keep_every_name_flytekits() {
    let _corpus = common::corpus_lock();
    let config = tempfile::tempdir().expect("tempdir");
    std::fs::write(config.path().join("ca.pem"), "pem").expect("ca");
    let file = config.path().join("config.toml");
    std::fs::write(
        &file,
        "[defaults]\nca_bundle = \"ca.pem\"\nfast_path = false\ndaemonless = false\n\
         [defaults.builder_config]\nuv_image = \"mirror.example:5000/uv:9\"\n\
         micromamba_image = \"mirror.example:5000/mm:9\"\n\
         [defaults.registry_mirrors]\n\"docker.io\" = \"mirror.example:5000\"\n\
         \"ghcr.io\" = \"mirror.example:5000/ghcr\"\n",
    )
    .expect("config");
    // The file is read (else this test would prove nothing).
    let home = tempfile::tempdir().expect("empty HOME");
    std::fs::write(config.path().join("spec.toml"), "name = \"x\"\n").expect("spec");
    let out = isolated_imagespec(config.path(), home.path())
        .env_remove("IMAGESPEC_NO_CONFIG")
        .env("IMAGESPEC_CONFIG", &file)
        .args(["inspect", "--json", "spec.toml"])
        .output()
        .expect("run");
    let got: Value = serde_json::from_slice(&out.stdout).expect("inspect --json");
    assert_eq!(got["defaults"]["files"], serde_json::json!([file]), "{got}");
    assert_eq!(
        got["defaults"]["settings"].as_array().map(Vec::len),
        Some(7)
    );
    let (failures, checked) = corpus_failures(Some("toml"), &|cmd| {
        cmd.env_remove("IMAGESPEC_NO_CONFIG")
            .env("IMAGESPEC_CONFIG", &file);
    });
    assert!(
        failures.is_empty(),
        "{} of {checked} checks differ from flytekit with name-neutral defaults:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(checked >= 30, "only {checked} checks ran");
}

/// Runs `inspect --json` on every case (of `only_format`, when given), `configure`d, and
/// compares id, tag and image with flytekit's goldens: the differences, and how many checks
/// ran.
fn corpus_failures(
    only_format: Option<&str>,
    configure: &dyn Fn(&mut assert_cmd::Command),
) -> (Vec<String>, usize) {
    let goldens: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("testdata/goldens/tags.json")).expect("goldens"),
    )
    .expect("goldens json");
    let cases = goldens["cases"].as_object().expect("cases");
    assert!(
        cases.len() >= 30,
        "the corpus must have at least 30 cases, has {}",
        cases.len()
    );
    let mut failures = Vec::new();
    let mut checked = 0;
    // The generator isolates git from the user's configuration; so does this test.
    let home = tempfile::tempdir().expect("empty HOME");
    for (case, golden) in cases {
        let dir = materialise(case);
        for format in golden["formats"].as_array().expect("formats") {
            if only_format.is_some_and(|f| format != f) {
                continue;
            }
            let file = format!("spec.{}", format.as_str().expect("format"));
            for (key, want) in golden["images"].as_object().expect("images") {
                let mut cmd = isolated_imagespec(&dir, home.path());
                configure(&mut cmd);
                cmd.args(["inspect", &file, "--json"]);
                case_args(&mut cmd, &dir, key);
                let mut out = cmd.output().expect("run imagespec");
                checked += 1;
                let label = format!("{case}/{file}[{key}]");
                let instead = deliberate(case, key, format.as_str().unwrap_or(""));
                if instead == Some(Instead::RefusesExternalLinks) {
                    if out.status.code() != Some(2)
                        || !String::from_utf8_lossy(&out.stderr).contains("--allow-external-links")
                    {
                        failures.push(format!(
                            "{label}: imagespec must refuse the link out of source_root, exited {:?}",
                            out.status.code()
                        ));
                        continue;
                    }
                    out = cmd.arg("--allow-external-links").output().expect("run");
                }
                match instead.filter(|i| *i != Instead::RefusesExternalLinks) {
                    Some(Instead::Rejects) if out.status.code() != Some(2) => {
                        failures.push(format!(
                            "{label}: imagespec must reject this on purpose, exited {:?}",
                            out.status.code()
                        ));
                        continue;
                    }
                    Some(_) => continue,
                    None => {}
                }
                if let Some(err) = want.get("error") {
                    if out.status.code() != Some(2) {
                        failures.push(format!(
                            "{label}: flytekit rejects it ({err}), imagespec exited {:?}",
                            out.status.code()
                        ));
                    }
                    continue;
                }
                if !out.status.success() {
                    failures.push(format!(
                        "{label}: exit {:?}: {}",
                        out.status.code(),
                        String::from_utf8_lossy(&out.stderr)
                    ));
                    continue;
                }
                let got: Value = serde_json::from_slice(&out.stdout).expect("inspect --json");
                for field in ["id", "tag", "image"] {
                    if got[field] != want[field] {
                        failures.push(format!(
                            "{label}: {field}: imagespec {} != flytekit {}",
                            got[field], want[field]
                        ));
                    }
                }
            }
        }
    }
    (failures, checked)
}
