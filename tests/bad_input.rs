//! The bad-input corpus, `testdata/bad/`: malformed specs in TOML, YAML and JSON — image
//! names and tags no registry accepts, errors found after parsing (missing files, a copy mode
//! without `source_root`...), and attacks on the parsers (alias bombs, 30,000 nested lists,
//! 3,000 chained base specs, 100 GB `tag_format` widths). Each must be refused by the binary
//! with exit 2, `file:line:column` and the field at fault, without a panic, within a second.
//! The messages are pinned in one snapshot (`cargo insta review` to accept a change).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Which command a case runs: the name commands (`tag`) refuse everything up to the tag;
/// errors in what the build context needs appear when it is planned (`render`).
#[derive(Clone, Copy, PartialEq)]
enum Run {
    Tag,
    Render,
}

/// One malformed spec and what its refusal must say.
struct Case {
    file: &'static str,
    run: Run,
    /// Extra arguments (`--image KEY`).
    args: &'static [&'static str],
    /// `line:column` of the value at fault.
    at: &'static str,
    /// The field named right after the position; `None` for syntax errors, which are in no
    /// field, and for nesting the `toml` and YAML parsers themselves refuse before any key.
    field: Option<&'static str>,
    /// A piece of the message that says what is wrong.
    says: &'static str,
}

const fn case(
    file: &'static str,
    at: &'static str,
    field: &'static str,
    says: &'static str,
) -> Case {
    Case {
        file,
        run: Run::Tag,
        args: &[],
        at,
        field: Some(field),
        says,
    }
}

const fn render(
    file: &'static str,
    at: &'static str,
    field: &'static str,
    says: &'static str,
) -> Case {
    Case {
        run: Run::Render,
        ..case(file, at, field, says)
    }
}

const fn image(
    file: &'static str,
    key: &'static [&'static str],
    at: &'static str,
    field: &'static str,
    says: &'static str,
) -> Case {
    Case {
        args: key,
        ..case(file, at, field, says)
    }
}

const fn unlocated_field(file: &'static str, at: &'static str, says: &'static str) -> Case {
    Case {
        field: None,
        ..case(file, at, "", says)
    }
}

const NAME: &str = "expected an image name";
const TAG: &str = "the tag `tag_format` makes is not valid";
const DEEP: &str = "values nest more than 64 levels deep";
const ALIASES: &str = "aliases expand to more than 10000 values";

const CASES: &[Case] = &[
    // Image references: names, registries, tags, base images (issue #10).
    case("name_dotdot.toml", "1:8", "name", "(the part \"..\")"),
    case("name_empty.toml", "1:8", "name", "found an empty string"),
    case("name_colon.toml", "1:8", "name", NAME),
    case("name_space.toml", "1:8", "name", NAME),
    case("name_unicode.yaml", "1:7", "name", NAME),
    case("name_empty_part.json", "2:11", "name", "(an empty part)"),
    case(
        "name_host_after_registry.toml",
        "2:8",
        "name",
        "(the part \"localhost:5000\")",
    ),
    case(
        "name_too_long.yaml",
        "2:7",
        "name",
        "at most 255 characters",
    ),
    case("name_in_nested_base.toml", "2:23", "base_image.name", NAME),
    case(
        "tag_format_query.toml",
        "2:14",
        "tag_format",
        "(the character '?' at 23)",
    ),
    case(
        "tag_format_fragment.yaml",
        "2:13",
        "tag_format",
        "(the character '#' at 1)",
    ),
    case("tag_format_spaces.json", "3:17", "tag_format", TAG),
    case(
        "tag_format_slash.toml",
        "1:14",
        "tag_format",
        "(the character '/' at 23)",
    ),
    case("tag_format_leading_dot.toml", "1:14", "tag_format", TAG),
    case(
        "tag_format_too_long.yaml",
        "1:13",
        "tag_format",
        "found 132 characters",
    ),
    case(
        "tag_format_huge_width.toml",
        "2:14",
        "tag_format",
        "width 99999999999",
    ),
    case(
        "tag_format_2gb_width.yaml",
        "2:13",
        "tag_format",
        "width 2147483648",
    ),
    case(
        "tag_format_unknown_field.json",
        "1:16",
        "tag_format",
        "unknown field `tag`",
    ),
    case(
        "tag_format_unclosed.toml",
        "1:14",
        "tag_format",
        "expected '}'",
    ),
    image(
        "tag_format_in_multi_image.toml",
        &["--image", "app"],
        "7:14",
        "images.app.tag_format",
        TAG,
    ),
    case(
        "registry_underscore_host.toml",
        "1:12",
        "registry",
        "expected a registry host",
    ),
    case(
        "registry_unicode_path.yaml",
        "1:11",
        "registry",
        "(the part \"été\")",
    ),
    case(
        "registry_trailing_newline.json",
        "1:14",
        "registry",
        "found \"ghcr.io/org\\n\" (the character '\\n' at 12)",
    ),
    case(
        "registry_url.toml",
        "1:12",
        "registry",
        "invalid container registry name",
    ),
    case(
        "base_image_uppercase.toml",
        "1:14",
        "base_image",
        "(the name \"Python\")",
    ),
    case(
        "base_image_short_digest.yaml",
        "1:13",
        "base_image",
        "expected a digest",
    ),
    case(
        "base_image_query.json",
        "1:39",
        "base_image",
        "expected a tag",
    ),
    // Control characters, which would add a Dockerfile instruction the plan does not show, a
    // trailing `\` and a heredoc, which would swallow the next ones (issue #20): refused in
    // every field, the message naming what was found.
    case(
        "env_value_newline.toml",
        "2:28",
        "env.A",
        "a Dockerfile cannot carry a line break in an ENV value",
    ),
    case(
        "env_key_newline.json",
        "3:11",
        "env.A=1\\nRUN touch /pwned\\nENV B",
        "an environment variable name without control characters",
    ),
    case(
        "apt_packages_newline.yaml",
        "4:5",
        "apt_packages[1]",
        "(the character '\\n' at 5)",
    ),
    case(
        "commands_newline.toml",
        "2:25",
        "commands[1]",
        "write the steps as separate list items",
    ),
    case(
        "pip_index_carriage_return.toml",
        "2:13",
        "pip_index",
        "(the character '\\r' at 24)",
    ),
    case(
        "builder_config_line_separator.yaml",
        "3:13",
        "builder_config.uv_image",
        "(the character '\\u{2028}' at 27)",
    ),
    case(
        "copy_entry_nel.json",
        "1:26",
        "copy[0]",
        "(the character '\\u{85}' at 5)",
    ),
    case(
        "python_version_nul.toml",
        "2:18",
        "python_version",
        "(the character '\\0' at 5)",
    ),
    case(
        "commands_trailing_backslash.toml",
        "2:13",
        "commands[0]",
        "(a trailing `\\`)",
    ),
    case(
        "apt_packages_heredoc.yaml",
        "4:5",
        "apt_packages[1]",
        "(the heredoc \"<<EOF\")",
    ),
    image(
        "secret_target_escape.toml",
        &["--image", "app"],
        "5:32",
        "images.app.pip_secret_mounts[0][1]",
        "(the character '\\u{1b}' at 13)",
    ),
    // Errors found after parsing, located (issue #10).
    case(
        "copy_mode_without_source_root.toml",
        "2:20",
        "source_copy_mode",
        "needs `source_root`",
    ),
    case(
        "source_root_empty.yaml",
        "2:14",
        "source_root",
        "needs `source_root`",
    ),
    case(
        "requirements_missing.json",
        "3:19",
        "requirements",
        "cannot read does-not-exist.txt",
    ),
    case(
        "source_root_missing_dir.toml",
        "1:15",
        "source_root",
        "is not a directory",
    ),
    case(
        "loaded_modules_without_list.toml",
        "1:15",
        "source_root",
        "--modules-from",
    ),
    render(
        "copy_missing_entry.toml",
        "2:26",
        "copy[1]",
        "`not-here.txt` does not exist",
    ),
    render("copy_absolute.yaml", "4:5", "copy[1]", "absolute paths"),
    render(
        "cuda_default_builder.json",
        "1:51",
        "cuda",
        "not used by the default builder",
    ),
    render(
        "secret_missing.toml",
        "1:58",
        "pip_secret_mounts[1]",
        "does not exist",
    ),
    render(
        "builder_option_wrong_type.toml",
        "2:16",
        "builder_options.add_flytekit",
        "expected true or false",
    ),
    render(
        "conda_with_python_exec.yaml",
        "2:17",
        "conda_packages",
        "`python_exec`",
    ),
    render(
        "lock_with_packages.toml",
        "1:16",
        "requirements",
        "mutually exclusive",
    ),
    Case {
        run: Run::Render,
        ..image(
            "multi_image_copy_missing.yaml",
            &["--image", "app"],
            "6:12",
            "images.app.copy[0]",
            "`missing-dir` does not exist",
        )
    },
    // Parser limits (issue #11).
    case("alias_bomb.yaml", "6:10", "builder_options.e[0]", ALIASES),
    case(
        "alias_bytes.yaml",
        "4:27",
        "builder_options.c[5]",
        "or 4 MB",
    ),
    case(
        "deep_block_lists.yaml",
        "4:129",
        "builder_options.a[0][0][0][0][0][0]...",
        DEEP,
    ),
    unlocated_field("deep_flow_lists.yaml", "3:261", "recursion limit exceeded"),
    case(
        "deep_block_maps.yaml",
        "65:132",
        "builder_options.k0.k1.k2.k3.k4.k5.k6...",
        DEEP,
    ),
    case(
        "deep_base_specs.yaml",
        "129:69",
        "base_image.base_image.base_image.base_image.base_image.base_image.base_image.base_image...",
        DEEP,
    ),
    case(
        "deep_base_specs_flow.yaml",
        "1:832",
        "base_image.base_image.base_image.base_image.base_image.base_image.base_image.base_image...",
        DEEP,
    ),
    case(
        "deep_inline_bases.toml",
        "2:494",
        "base_image.base_image.base_image.base_image.base_image.base_image.base_image.base_image...",
        "base images nest more than 32 levels deep",
    ),
    image(
        "chain_of_images.toml",
        &["--image", "i2999"],
        "68:23",
        "images.i33.base_image.spec",
        "builds on more than 32 nested base specs",
    ),
    unlocated_field("deep_arrays.toml", "2:85", "max recursion depth met"),
    case(
        "deep_arrays_70.toml",
        "2:67",
        "builder_options.a[0][0][0][0][0][0]...",
        DEEP,
    ),
    case(
        "deep_dotted_keys.toml",
        "2:125",
        "builder_options.x.x.x.x.x.x.x...",
        DEEP,
    ),
    case(
        "deep_arrays.json",
        "1:89",
        "builder_options.a[0][0][0][0][0][0]...",
        DEEP,
    ),
    case(
        "deep_objects_70.json",
        "1:397",
        "builder_options.a[1].k.k.k.k.k...",
        DEEP,
    ),
    // Other malformed specs, in every format.
    unlocated_field("syntax_error.toml", "2:17", "unclosed array"),
    unlocated_field("syntax_error.yaml", "2:6", "mapping values are not allowed"),
    unlocated_field(
        "syntax_error.json",
        "1:13",
        "Trailing commas are not allowed",
    ),
    unlocated_field("two_documents.yaml", "2:1", "expected a single document"),
    unlocated_field("undefined_alias.yaml", "1:11", "unknown anchor"),
    Case {
        // The field comes after "unknown field", with a suggestion.
        field: None,
        ..case(
            "unknown_field.yaml",
            "2:1",
            "",
            "unknown field `pakages`; did you mean `packages`?",
        )
    },
    case(
        "wrong_type.json",
        "1:14",
        "packages",
        "expected a list of strings",
    ),
    case(
        "copy_mode_unknown.toml",
        "2:20",
        "source_copy_mode",
        "is not a copy mode",
    ),
    image(
        "images_cycle.toml",
        &["--image", "a"],
        "4:23",
        "images.b.base_image.spec",
        "images form a cycle: a -> b -> a",
    ),
];

fn bad_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/bad")
}

/// The binary, run in `dir` with no digest cache, no docker and no FLYTE_* settings.
fn imagespec(dir: &Path) -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("imagespec").expect("binary");
    cmd.current_dir(dir)
        .env("IMAGESPEC_NO_CACHE", "1")
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .timeout(Duration::from_secs(30));
    for (var, _) in std::env::vars() {
        if var.starts_with("FLYTE_") {
            cmd.env_remove(var);
        }
    }
    cmd
}

#[test]
fn every_file_is_a_case_and_every_case_a_file() {
    let mut files: Vec<String> = std::fs::read_dir(bad_dir())
        .expect("testdata/bad")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|name| {
            name.ends_with(".toml") || name.ends_with(".yaml") || name.ends_with(".json")
        })
        .collect();
    files.sort();
    let mut cases: Vec<String> = CASES.iter().map(|c| c.file.to_string()).collect();
    cases.sort();
    assert_eq!(files, cases);
    assert!(CASES.len() >= 40, "only {} cases", CASES.len());
    for ext in [".toml", ".yaml", ".json"] {
        assert!(
            CASES.iter().filter(|c| c.file.ends_with(ext)).count() >= 8,
            "too few {ext} cases"
        );
    }
}

#[test]
fn each_bad_spec_is_refused_with_exit_2_at_its_field() {
    let out_root = tempfile::tempdir().expect("output dir");
    let dir = bad_dir();
    let mut failures = Vec::new();
    let mut shown = String::new();
    for case in CASES {
        let mut cmd = imagespec(&dir);
        match case.run {
            Run::Tag => cmd.args(["tag", case.file]),
            Run::Render => cmd
                .args(["render", case.file, "-o"])
                .arg(out_root.path().join(case.file)),
        };
        cmd.args(case.args);
        let started = Instant::now();
        let out = cmd.output().expect("run imagespec");
        let took = started.elapsed();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let first = stderr.lines().next().unwrap_or("");
        let mut problems = Vec::new();
        if out.status.code() != Some(2) {
            problems.push(format!("exit {:?}, not 2", out.status.code()));
        }
        if stderr.contains("panicked") || stderr.contains("overflow") {
            problems.push("panicked".into());
        }
        let located = format!("error: {}:{}: ", case.file, case.at);
        if !first.starts_with(&located) {
            problems.push(format!("does not start with {located:?}"));
        }
        if let Some(field) = case.field {
            let named = format!("{located}`{field}`: ");
            if !first.starts_with(&named) {
                problems.push(format!("does not name the field: {named:?}"));
            }
        }
        if !first.contains(case.says) {
            problems.push(format!("does not say {:?}", case.says));
        }
        // A bound against hangs and blow-ups (the machine may be loaded), not a benchmark.
        if took > Duration::from_secs(10) {
            problems.push(format!("took {took:?}"));
        }
        if !out.stdout.is_empty() {
            problems.push(format!(
                "printed {:?}",
                String::from_utf8_lossy(&out.stdout)
            ));
        }
        if !problems.is_empty() {
            failures.push(format!(
                "{}: {}\n    {first}",
                case.file,
                problems.join("; ")
            ));
        }
        shown.push_str(&format!("{first}\n"));
    }
    assert!(
        failures.is_empty(),
        "{} of {} bad specs:\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n")
    );
    let shown = shown.replace(&dir.to_string_lossy().into_owned(), "[BAD]");
    insta::assert_snapshot!(shown);
}

/// A registry that records whether anyone connected: the spec names it, so a network call
/// made before the name is checked would show.
struct Tripwire(TcpListener);

impl Tripwire {
    fn new() -> Tripwire {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        Tripwire(listener)
    }

    fn registry(&self) -> String {
        format!("127.0.0.1:{}", self.0.local_addr().expect("addr").port())
    }

    fn touched(&self) -> bool {
        self.0.accept().is_ok()
    }
}

#[test]
fn invalid_names_stop_every_command_before_any_network_call() {
    let tripwire = Tripwire::new();
    let registry = tripwire.registry();
    let dir = tempfile::tempdir().expect("spec dir");
    let specs = [
        (
            "name.toml",
            format!("registry = \"{registry}\"\nname = \"zzz/../adv1\"\n"),
            "name.toml:2:8: `name`:",
        ),
        (
            "tag.yaml",
            format!("registry: \"{registry}\"\nname: app\ntag_format: \"{{spec_hash}}?x=1\"\n"),
            "tag.yaml:3:13: `tag_format`:",
        ),
        (
            "base.json",
            format!("{{\"registry\": \"{registry}\", \"base_image\": \"a b\"}}"),
            // The column depends on the port's digits.
            "base.json:1:COL: `base_image`:",
        ),
    ];
    for (file, text, located) in &specs {
        std::fs::write(dir.path().join(file), text).expect("write spec");
        let col = text.find("\"a b\"").map_or(0, |i| i + 1);
        let located = located.replace("COL", &col.to_string());
        let out_dir = dir.path().join(format!("{file}.out"));
        let out_dir = out_dir.to_string_lossy().into_owned();
        let commands: [&[&str]; 6] = [
            &["tag"],
            &["inspect"],
            &["exists"],
            &["render", "-o", &out_dir],
            &["build"],
            &["build", "--output", "oci:layout"],
        ];
        for command in commands {
            let out = imagespec(dir.path())
                .arg(command[0])
                .arg(file)
                .args(&command[1..])
                .output()
                .expect("run imagespec");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{command:?} {file}: {stderr}");
            assert!(
                stderr.starts_with(&format!("error: {located}")),
                "{command:?} {file}: {stderr}"
            );
        }
        assert!(!Path::new(&out_dir).exists(), "render wrote {out_dir}");
    }
    assert!(!tripwire.touched(), "a command connected to the registry");
}

/// Attacks too big to keep in the repository, generated the same way each time.
#[test]
fn generated_attacks_are_refused_quickly() {
    let dir = tempfile::tempdir().expect("dir");
    // 3,000 base specs nested in YAML block style (indented one space per level: 4.5 MB).
    let mut text = String::from("name: n0\n");
    for i in 1..3000 {
        let indent = " ".repeat(i - 1);
        text.push_str(&format!("{indent}base_image:\n{indent} name: n{i}\n"));
    }
    std::fs::write(dir.path().join("bases.yaml"), &text).expect("write");
    let started = Instant::now();
    let out = imagespec(dir.path())
        .args(["tag", "bases.yaml"])
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.starts_with("error: bases.yaml:129:69: `base_image.base_image.")
            && stderr.contains(DEEP),
        "{stderr}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}

/// Positions come from a line index built once: 100,000 values are located in linear time
/// (rescanning the file per value took a minute for TOML and JSON).
#[test]
fn a_hundred_thousand_packages_parse_in_linear_time() {
    use imagespec::spec::SpecFile;
    let names: Vec<String> = (0..100_000).map(|i| format!("\"package-{i}\"")).collect();
    let toml = format!("name = \"big\"\npackages = [\n{}\n]\n", names.join(",\n"));
    // JSON on one line: columns count characters from a 1.6 MB line's start.
    let json = format!(
        "{{\"name\": \"big\", \"packages\": [{}]}}",
        names.join(", ")
    );
    let yaml = format!(
        "name: big\npackages:\n{}\n",
        names
            .iter()
            .map(|n| format!("- {n}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    for (file, text) in [("big.toml", toml), ("big.json", json), ("big.yaml", yaml)] {
        let started = Instant::now();
        let spec = SpecFile::parse(Path::new(file), &text).expect(file);
        let took = started.elapsed();
        let (_, image) = spec.select(None).expect("image");
        assert_eq!(image.packages.as_ref().map(Vec::len), Some(100_000));
        // Debug build, shared machine: linear is well under this; quadratic took 60 s.
        assert!(took < Duration::from_secs(30), "{file}: {took:?}");
    }
    // And the position of the last value is still right.
    let err = SpecFile::parse(
        Path::new("big.json"),
        &format!("{{\"packages\": [{}, 1]}}", names.join(", ")),
    )
    .expect_err("an int in packages");
    let json_col = "{\"packages\": [".len() + names.join(", ").len() + ", ".len() + 1;
    assert!(
        err.to_string()
            .starts_with(&format!("big.json:1:{json_col}: `packages[100000]`")),
        "{err}"
    );
}

#[test]
fn a_source_date_epoch_that_is_no_time_is_bad_input_before_anything_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("spec.toml"),
        "name = \"x\"\nregistry = \"127.0.0.1:1\"\npackages = [\"six\"]\n",
    )
    .expect("spec");
    for command in ["build", "plan"] {
        let out = imagespec(dir.path())
            .env("SOURCE_DATE_EPOCH", "yesterday")
            .args([command, "spec.toml"])
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{command}: {stderr}");
        assert!(
            stderr.contains("SOURCE_DATE_EPOCH=\"yesterday\": expected whole seconds"),
            "{command}: {stderr}"
        );
        // Refused before the registry (a closed port) was asked.
        assert!(!stderr.contains("127.0.0.1:1"), "{command}: {stderr}");
    }
}
