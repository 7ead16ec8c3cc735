//! Golden test of `imagespec render --builder envd --flytekit-compat` against flytekit's envd
//! plugin itself: for every image of every case of `testdata/corpus` and `testdata/envd`, the
//! context must be the one `flytekitplugins-envd` 1.16.31's `create_envd_config` writes
//! (`testdata/gen_envd_goldens.py` made `testdata/goldens/envd.json` and
//! `testdata/goldens/envd/*.envd`): `build.envd` byte for byte, the same context files with the
//! same contents (sha256), executable bits and empty directories; where flytekit refuses the
//! image, imagespec exits 2.
//!
//! The default flavor (what `imagespec build` uses) differs on purpose (docs/envd.md): `/root` gets exactly the hashed files from one `root/` directory, strings are
//! Starlark literals, `'` in commands is escaped for envd's `bash -c '...'`, env values are
//! strings, `entrypoint` is kept. `default_flavor_of_the_envd_cases` pins it with a snapshot
//! and checks that it is refused exactly where the compat flavor is.

mod common;

use common::{case_args, isolated_imagespec, materialise, materialise_from, repo};
use serde_json::Value;

/// (case, image key, why): images imagespec rejects (exit 2) on purpose where flytekit writes
/// a context (docs/differences.md).
const DELIBERATE_REJECTS: &[(&str, &str, &str)] = &[(
    "yaml_only_scalar_typing",
    "",
    "mapping keys must be strings (PyYAML makes `yes:` the key True)",
)];

use common::{Context, snapshot_context};

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// The lines that differ, `-` flytekit, `+` imagespec (build.envd files are short).
fn line_diff(want: &str, got: &str) -> String {
    let (a, b): (Vec<&str>, Vec<&str>) = (want.lines().collect(), got.lines().collect());
    let mut out = String::new();
    for i in 0..a.len().max(b.len()) {
        match (a.get(i), b.get(i)) {
            (Some(x), Some(y)) if x == y => {}
            (x, y) => {
                if let Some(x) = x {
                    out.push_str(&format!("    -{:>3} {x:?}\n", i + 1));
                }
                if let Some(y) = y {
                    out.push_str(&format!("    +{:>3} {y:?}\n", i + 1));
                }
            }
        }
    }
    if want.ends_with('\n') != got.ends_with('\n') {
        out.push_str("    (final newline differs)\n");
    }
    out
}

/// Both tests materialise cases at the same fixed paths: one at a time.
static MATERIALISED: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn goldens() -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(repo().join("testdata/goldens/envd.json")).expect("envd goldens"),
    )
    .expect("envd goldens json")
}

fn materialise_case(golden: &Value, case: &str) -> std::path::PathBuf {
    match golden["corpus"].as_str().expect("corpus") {
        "corpus" => materialise(case),
        other => materialise_from(other, case),
    }
}

#[test]
fn envd_render_matches_flytekit_for_the_whole_corpus() {
    let _one_at_a_time = MATERIALISED.lock().unwrap_or_else(|e| e.into_inner());
    let _corpus = common::corpus_lock();
    let goldens = goldens();
    let cases = goldens["cases"].as_object().expect("cases");
    assert!(
        cases.len() >= 110,
        "the corpus must have at least 110 cases, has {}",
        cases.len()
    );
    let mut failures = Vec::new();
    let (mut checked, mut contexts, mut left_out) = (0, 0, 0);
    let home = tempfile::tempdir().expect("empty HOME");
    let out_root = tempfile::tempdir().expect("output dir");
    for (case, golden) in cases {
        let dir = materialise_case(golden, case);
        let file = golden["spec"].as_str().expect("spec file");
        for (key, want) in golden["images"].as_object().expect("images") {
            let output = out_root.path().join(format!("{case}@{key}"));
            let mut cmd = isolated_imagespec(&dir, home.path());
            cmd.args([
                "render",
                file,
                "--builder",
                "envd",
                "--flytekit-compat",
                "-o",
            ])
            .arg(&output);
            case_args(&mut cmd, &dir, key);
            checked += 1;
            let label = format!("{case}/{file}[{key}]");
            let out = common::output_allowing_links(case, &label, &mut cmd, &mut failures);
            if !common::both_rendered(
                &label,
                &out,
                common::refused_on_purpose(case, key)
                    || DELIBERATE_REJECTS
                        .iter()
                        .any(|(c, k, _)| c == case && k == key),
                want,
                &mut failures,
            ) {
                continue;
            }
            contexts += 1;
            let golden_file = want["build_envd"].as_str().expect("build_envd");
            let expected = std::fs::read(repo().join("testdata/goldens").join(golden_file))
                .expect("golden build.envd");
            let actual = std::fs::read(output.join("build.envd")).unwrap_or_default();
            if actual != expected {
                failures.push(format!(
                    "{label}: build.envd differs (- flytekit {golden_file}, + imagespec):\n{}",
                    line_diff(
                        &String::from_utf8_lossy(&expected),
                        &String::from_utf8_lossy(&actual)
                    )
                ));
            }

            let got = snapshot_context(&output, "build.envd");
            let mut wanted = Context {
                files: want["files"]
                    .as_object()
                    .expect("files")
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                    .collect(),
                executable: strings(&want["executable"]),
                empty_dirs: strings(&want["empty_dirs"]),
            };
            // Deliberate difference (as in render_golden.rs): source files the ignore rules
            // exclude are hashed but not copied; the plugin puts them at the context root.
            if wanted.files.keys().any(|k| !got.files.contains_key(k)) {
                let excluded = common::excluded_source_files(&dir, home.path(), file, key);
                let before = wanted.files.len();
                wanted
                    .files
                    .retain(|path, _| !excluded.iter().any(|e| e == path));
                wanted
                    .executable
                    .retain(|path| wanted.files.contains_key(path));
                left_out += before - wanted.files.len();
            }
            if got != wanted {
                failures.push(format!(
                    "{label}: context differs:\n    flytekit  {wanted:?}\n    imagespec {got:?}"
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures in {checked} images ({contexts} rendered) compared with flytekit:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // Fewer since the images with control characters are refused (LINE_BREAKING_STRINGS).
    assert!(
        checked >= 300 && contexts >= 225,
        "only {checked} images ({contexts} rendered) checked"
    );
    assert!(
        left_out >= 40,
        "only {left_out} excluded source files left out of flytekit's contexts"
    );
}

/// The default flavor of the envd-specific cases: refused exactly where flytekit refuses, and
/// pinned by a snapshot (build.envd and the context's file list), so that a change to the
/// deliberate differences is seen in review (`cargo insta review`).
#[test]
fn default_flavor_of_the_envd_cases() {
    let _one_at_a_time = MATERIALISED.lock().unwrap_or_else(|e| e.into_inner());
    let _corpus = common::corpus_lock();
    let goldens = goldens();
    let home = tempfile::tempdir().expect("empty HOME");
    let out_root = tempfile::tempdir().expect("output dir");
    let mut shown = String::new();
    let mut failures = Vec::new();
    for (case, golden) in goldens["cases"].as_object().expect("cases") {
        if golden["corpus"] != "envd" {
            continue;
        }
        let dir = materialise_case(golden, case);
        let file = golden["spec"].as_str().expect("spec file");
        for (key, want) in golden["images"].as_object().expect("images") {
            let output = out_root.path().join(format!("{case}@{key}"));
            let mut cmd = isolated_imagespec(&dir, home.path());
            cmd.args(["render", file, "--builder", "envd", "-o"])
                .arg(&output);
            case_args(&mut cmd, &dir, key);
            let out = cmd.output().expect("run imagespec");
            shown.push_str(&format!("=== {case}[{key}]\n"));
            match (want.get("error"), out.status.code()) {
                (Some(_), Some(2)) => {
                    let stderr = String::from_utf8_lossy(&out.stderr);
                    shown.push_str(&format!(
                        "refused: {}\n",
                        stderr.lines().next().unwrap_or("")
                    ));
                    continue;
                }
                (None, Some(2)) if common::refused_on_purpose(case, key) => {
                    let stderr = String::from_utf8_lossy(&out.stderr);
                    shown.push_str(&format!(
                        "refused on purpose: {}\n",
                        stderr.lines().next().unwrap_or("")
                    ));
                    continue;
                }
                (None, Some(0)) => {}
                (want, code) => {
                    failures.push(format!(
                        "{case}[{key}]: flytekit {}, imagespec exit {code:?}: {}",
                        if want.is_some() { "refuses" } else { "renders" },
                        String::from_utf8_lossy(&out.stderr).trim_end()
                    ));
                    continue;
                }
            }
            shown
                .push_str(&std::fs::read_to_string(output.join("build.envd")).expect("build.envd"));
            let context = snapshot_context(&output, "build.envd");
            shown.push_str(&format!(
                "--- context: {:?}",
                context.files.keys().collect::<Vec<_>>()
            ));
            if !context.executable.is_empty() {
                shown.push_str(&format!(" executable: {:?}", context.executable));
            }
            if !context.empty_dirs.is_empty() {
                shown.push_str(&format!(" empty: {:?}", context.empty_dirs));
            }
            shown.push('\n');
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Paths under the fixed materialisation root are the same on every machine.
    insta::assert_snapshot!(shown);
}
