//! Golden test of `imagespec render --flytekit-compat` against flytekit itself: for every image
//! of every case of `testdata/corpus`, the build context must be the one flytekit 1.16.31's
//! default builder writes (`testdata/gen_render_goldens.py` made `testdata/goldens/render.json`
//! and `testdata/goldens/render/*.Dockerfile`): the Dockerfile byte for byte, the same context
//! files with the same contents (sha256), executable bits and empty directories; and where
//! flytekit refuses the image, imagespec exits 2. Cases are materialised at the fixed path the
//! generators use, `/tmp/imagespec-corpus/<case>`, because some specs hold absolute paths.

mod common;

use common::{case_args, isolated_imagespec, materialise, repo};
use serde_json::Value;

/// (case, image key, why): images imagespec rejects (exit 2) on purpose where flytekit writes
/// a context (docs/differences.md).
const DELIBERATE_REJECTS: &[(&str, &str, &str)] = &[
    (
        "yaml_only_scalar_typing",
        "",
        "mapping keys must be strings (PyYAML makes `yes:` the key True)",
    ),
    (
        "id_excluded_fields",
        "with_excluded",
        "a `pip_secret_mounts` source that does not exist fails the plan; flytekit writes the context and its \
         `docker build --secret id=secret_0,src=/home/u/.netrc` fails afterwards",
    ),
];

fn deliberately_rejected(case: &str, key: &str) -> bool {
    common::refused_on_purpose(case, key)
        || DELIBERATE_REJECTS
            .iter()
            .any(|(c, k, _)| *c == case && *k == key)
}

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

/// A line diff (longest common subsequence), `-` flytekit, `+` imagespec, 2 lines of context.
fn line_diff(want: &str, got: &str) -> String {
    let a: Vec<&str> = want.split_inclusive('\n').collect();
    let b: Vec<&str> = got.split_inclusive('\n').collect();
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let mut ops = Vec::new(); // (tag, line number in want / got, text)
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            ops.push((' ', i + 1, a[i]));
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            ops.push(('-', i + 1, a[i]));
            i += 1;
        } else {
            ops.push(('+', j + 1, b[j]));
            j += 1;
        }
    }
    let near_change = |k: usize| {
        ops[k.saturating_sub(2)..(k + 3).min(ops.len())]
            .iter()
            .any(|(t, _, _)| *t != ' ')
    };
    let mut out = String::new();
    let mut skipped = false;
    let mut shown_lines = 0;
    for (k, (tag, n, line)) in ops.iter().enumerate() {
        if shown_lines == 40 {
            out.push_str("      ... (diff cut at 40 lines)\n");
            break;
        }
        if *tag == ' ' && !near_change(k) {
            skipped = true;
            continue;
        }
        if skipped {
            out.push_str("      ...\n");
            skipped = false;
        }
        let shown = line
            .strip_suffix('\n')
            .map(|l| format!("{l:?}"))
            .unwrap_or_else(|| format!("{line:?} (no newline at end)"));
        out.push_str(&format!("    {tag}{n:>4} {shown}\n"));
        shown_lines += 1;
    }
    out
}

#[test]
fn render_matches_flytekit_for_the_whole_corpus() {
    let _corpus = common::corpus_lock();
    let goldens: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("testdata/goldens/render.json"))
            .expect("render goldens"),
    )
    .expect("render goldens json");
    let cases = goldens["cases"].as_object().expect("cases");
    assert!(
        cases.len() >= 95,
        "the corpus must have at least 90 cases, has {}",
        cases.len()
    );
    let mut failures = Vec::new();
    let (mut checked, mut contexts, mut left_out) = (0, 0, 0);
    // The generator isolates git from the user's configuration; so does this test.
    let home = tempfile::tempdir().expect("empty HOME");
    let out_root = tempfile::tempdir().expect("output dir");
    for (case, golden) in cases {
        let dir = materialise(case);
        let file = golden["spec"].as_str().expect("spec file");
        for (key, want) in golden["images"].as_object().expect("images") {
            let output = out_root.path().join(format!("{case}@{key}"));
            let mut cmd = isolated_imagespec(&dir, home.path());
            cmd.args([
                "render",
                file,
                "--builder",
                "default",
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
                deliberately_rejected(case, key),
                want,
                &mut failures,
            ) {
                continue;
            }
            contexts += 1;
            let expected = std::fs::read(
                repo()
                    .join("testdata/goldens")
                    .join(want["dockerfile"].as_str().expect("dockerfile")),
            )
            .expect("golden Dockerfile");
            let actual = std::fs::read(output.join("Dockerfile")).unwrap_or_default();
            if actual != expected {
                failures.push(format!(
                    "{label}: Dockerfile differs (- flytekit {}, + imagespec):\n{}",
                    want["dockerfile"].as_str().unwrap_or(""),
                    line_diff(
                        &String::from_utf8_lossy(&expected),
                        &String::from_utf8_lossy(&actual)
                    )
                ));
            }
            let got = snapshot_context(&output, "Dockerfile");
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
            // Deliberate difference: source files the ignore rules exclude are hashed (the tag
            // is flytekit's) but not copied, also in flytekit's own context; the Dockerfile
            // stays flytekit's. Only files imagespec reports as excluded may be missing.
            if wanted.files.keys().any(|k| !got.files.contains_key(k)) {
                let excluded = common::excluded_source_files(&dir, home.path(), file, key);
                let before = wanted.files.len();
                wanted.files.retain(|path, _| {
                    !path
                        .strip_prefix("src/")
                        .is_some_and(|rel| excluded.iter().any(|e| e == rel))
                });
                wanted
                    .executable
                    .retain(|path| wanted.files.contains_key(path));
                left_out += before - wanted.files.len();
            }
            for path in wanted
                .files
                .keys()
                .chain(got.files.keys())
                .collect::<std::collections::BTreeSet<_>>()
            {
                match (wanted.files.get(path), got.files.get(path)) {
                    (Some(w), Some(g)) if w != g => {
                        // Small text files (requirements_uv.txt, mostly) are shown as imagespec wrote them.
                        let shown = std::fs::read(output.join(path))
                            .ok()
                            .filter(|b| b.len() <= 4096)
                            .and_then(|b| String::from_utf8(b).ok())
                            .map(|t| format!("; imagespec wrote {t:?}"))
                            .unwrap_or_default();
                        failures.push(format!("{label}: context file {path}: content differs (sha256 imagespec {g} != flytekit {w}){shown}"))
                    }
                    (Some(_), None) => failures.push(format!(
                        "{label}: context file {path}: missing (flytekit writes it)"
                    )),
                    (None, Some(_)) => failures.push(format!(
                        "{label}: context file {path}: extra (flytekit does not write it)"
                    )),
                    _ => {}
                }
            }
            if got.executable != wanted.executable {
                failures.push(format!(
                    "{label}: executable files: imagespec {:?} != flytekit {:?}",
                    got.executable, wanted.executable
                ));
            }
            if got.empty_dirs != wanted.empty_dirs {
                failures.push(format!(
                    "{label}: empty directories: imagespec {:?} != flytekit {:?}",
                    got.empty_dirs, wanted.empty_dirs
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
        checked >= 250 && contexts >= 175,
        "only {checked} images ({contexts} rendered) checked"
    );
    // The corpus's relative-root ignore cases (dockerignore_source_root_forms, ...) exercise
    // the difference: flytekit copies what their rules exclude, imagespec does not.
    assert!(
        left_out >= 40,
        "only {left_out} excluded source files left out of flytekit's contexts"
    );
}
