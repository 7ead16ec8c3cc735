//! The security contract (docs/security.md): a spec and its source tree are untrusted data
//! (CI builds pull requests). Every attack here is made by the test in a temporary directory
//! (FIFOs, sockets and links to host files cannot live in git) and must exit 2 — or render
//! without the files it must not hold — within a second, never run planted code (marker
//! files) and never write outside the output directory.

use assert_cmd::Command;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::Command as Process;
use std::time::{Duration, Instant};

/// A hang is killed after this; the contract is one second (see [`run`]).
const HANG: Duration = Duration::from_secs(10);
const PROMPT: Duration = Duration::from_secs(1);

struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// `imagespec ARGS` in `dir`, with git isolated from this machine's configuration; fails the
/// test when it takes longer than a second (a FIFO read would block forever).
fn run(dir: &Path, args: &[&str]) -> Ran {
    run_with(dir, args, &[])
}

fn run_with(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Ran {
    let home = dir.join(".test-home");
    std::fs::create_dir_all(&home).expect("home");
    let mut cmd = Command::cargo_bin("imagespec").expect("binary");
    cmd.current_dir(dir)
        .env("IMAGESPEC_NO_CACHE", "1")
        .env("HOME", &home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env_remove("IMAGESPEC_ALLOW_EXTERNAL_LINKS")
        .env_remove("DOCKER_CONFIG")
        .timeout(HANG)
        .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let started = Instant::now();
    let out = cmd.output().expect("run imagespec");
    let took = started.elapsed();
    let ran = Ran {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(
        took < PROMPT,
        "imagespec {args:?} took {took:?} (killed after {HANG:?}): {}",
        ran.stderr
    );
    ran
}

/// Exit 2 with a message that holds every one of `says`.
fn refused(ran: &Ran, says: &[&str]) {
    assert_eq!(ran.code, Some(2), "must exit 2: {}", ran.stderr);
    assert!(!ran.stderr.contains("panicked"), "{}", ran.stderr);
    for s in says {
        assert!(ran.stderr.contains(s), "stderr lacks {s:?}: {}", ran.stderr);
    }
}

fn ok(ran: &Ran) {
    assert_eq!(ran.code, Some(0), "must succeed: {}", ran.stderr);
}

fn sh(dir: &Path, script: &str) {
    let status = Process::new("bash")
        .args(["-euc", script])
        .current_dir(dir)
        .env("HOME", dir.join(".test-home"))
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .status()
        .expect("bash");
    assert!(status.success(), "{script}");
}

fn write(path: &Path, text: &str) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("mkdir");
    }
    std::fs::write(path, text).expect("write");
}

/// A shell script at `path` that creates `marker` when run.
fn planted(path: &Path, marker: &Path) {
    use std::os::unix::fs::PermissionsExt;
    write(
        path,
        &format!("#!/bin/sh\ntouch '{}'\nexit 1\n", marker.display()),
    );
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                walk(root, &p, out);
            } else {
                out.push(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    walk(dir, dir, &mut out);
    out.sort();
    out
}

#[test]
fn credential_helpers_are_plain_names_run_only_from_path() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = tmp.path();
    let marker = d.join("HELPER-RAN");
    // What the repository plants: `docker-credential-x/evil` relative to the working directory,
    // and `docker-credential-evil` in it for a PATH that holds `.` or an empty entry.
    planted(&d.join("docker-credential-x/evil"), &marker);
    planted(&d.join("docker-credential-evil"), &marker);
    write(
        &d.join("spec.toml"),
        "name = \"creds\"\nregistry = \"127.0.0.1:9\"\nregistry_config = \"config.json\"\n",
    );
    let path = std::env::var("PATH").unwrap_or_default();
    for (config, key, path_var) in [
        (r#"{"credsStore": "x/evil"}"#, "credsStore", path.clone()),
        (
            r#"{"credHelpers": {"127.0.0.1:9": "x/evil"}}"#,
            "credHelpers.127.0.0.1:9",
            path.clone(),
        ),
        (r#"{"credsStore": ".."}"#, "credsStore", path.clone()),
        (
            r#"{"credsStore": "evil"}"#,
            "credsStore",
            format!(".:{path}"),
        ),
        (
            r#"{"credsStore": "evil"}"#,
            "credsStore",
            format!(":{path}"),
        ),
    ] {
        write(&d.join("config.json"), config);
        let ran = run_with(d, &["exists", "spec.toml"], &[("PATH", &path_var)]);
        refused(&ran, &["config.json", &format!("`{key}`")]);
        assert!(
            !marker.exists(),
            "{config} with PATH={path_var}: the helper ran"
        );
    }

    // A helper in an absolute PATH directory is found and run (the marker says so).
    let bin = d.join("bin");
    planted(&bin.join("docker-credential-good"), &marker);
    write(&d.join("config.json"), r#"{"credsStore": "good"}"#);
    let ran = run_with(
        d,
        &["exists", "spec.toml"],
        &[("PATH", &format!("{}:{path}", bin.display()))],
    );
    // The planted helper exits 1: credentials cannot be had, so whether the image exists
    // cannot be told (exit 3).
    assert_eq!(ran.code, Some(3), "{}", ran.stderr);
    assert!(
        marker.exists(),
        "a helper on PATH must be run: {}",
        ran.stderr
    );
}

#[test]
fn a_planted_fsmonitor_never_runs() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = tmp.path();
    let marker = d.join("FSMONITOR-RAN");
    planted(&d.join("fsmonitor.sh"), &marker);
    write(&d.join("src/app.py"), "print('app')\n");
    write(&d.join("src/.gitignore"), "*.log\n");
    write(&d.join("src/debug.log"), "log\n");
    write(
        &d.join("spec.toml"),
        "name = \"fsm\"\nsource_root = \"src\"\nsource_copy_mode = \"all\"\n",
    );
    sh(
        d,
        "git init -q && git add src/app.py src/.gitignore && \
         git config core.fsmonitor \"$PWD/fsmonitor.sh\"",
    );
    // The attack is real: git itself runs the hook for the very command imagespec needs.
    sh(
        &d.join("src"),
        "git ls-files -io --exclude-standard >/dev/null 2>&1",
    );
    assert!(marker.exists(), "git did not run the planted fsmonitor");
    std::fs::remove_file(&marker).expect("reset marker");

    ok(&run(d, &["tag", "spec.toml"]));
    let inspected = run(d, &["inspect", "spec.toml", "--json"]);
    ok(&inspected);
    ok(&run(d, &["render", "spec.toml", "-o", "out"]));
    assert!(!marker.exists(), "imagespec ran the repository's fsmonitor");
    // git still answered: its ignore rule applies to what is copied.
    let json: serde_json::Value = serde_json::from_str(&inspected.stdout).expect("json");
    assert_eq!(json["source"]["excluded"], serde_json::json!(["debug.log"]));
}

/// A project with a relative `source_root` whose ignore files exclude secrets.
fn project_with_secrets(d: &Path) {
    write(&d.join("src/main.py"), "print('main')\n");
    write(&d.join("src/pkg/mod.py"), "x = 1\n");
    write(&d.join("src/secrets.json"), "{\"token\": \"s3cr3t\"}\n");
    write(&d.join("src/.env"), "TOKEN=s3cr3t\n");
    write(&d.join("src/debug.log"), "log\n");
    write(&d.join("src/.dockerignore"), "secrets.json\n.env\n");
    write(&d.join("src/.gitignore"), "*.log\n");
    sh(
        d,
        "git init -q && git add src/main.py src/pkg src/.gitignore",
    );
    write(
        &d.join("spec.toml"),
        "name = \"secrets\"\nsource_root = \"src\"\nsource_copy_mode = \"all\"\n",
    );
}

#[test]
fn what_the_ignore_files_exclude_is_never_copied() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = tmp.path();
    project_with_secrets(d);
    let excluded = [".env", "debug.log", "secrets.json"];

    let inspected = run(d, &["inspect", "spec.toml", "--json"]);
    ok(&inspected);
    let json: serde_json::Value = serde_json::from_str(&inspected.stdout).expect("json");
    assert_eq!(json["source"]["excluded"], serde_json::json!(excluded));
    assert_eq!(
        json["source"]["files"],
        serde_json::json!([".dockerignore", ".gitignore", "main.py", "pkg/mod.py"])
    );

    // Every way a context is written: one warning naming the files, none of them copied.
    for (args, prefix) in [
        (vec!["render", "spec.toml", "-o", "docker"], "docker/src/"),
        (
            vec!["render", "spec.toml", "-o", "compat", "--flytekit-compat"],
            "compat/src/",
        ),
        (
            vec!["render", "spec.toml", "-o", "envd", "--builder", "envd"],
            "envd/root/",
        ),
        (
            vec![
                "render",
                "spec.toml",
                "-o",
                "envd-compat",
                "--builder",
                "envd",
                "--flytekit-compat",
            ],
            "envd-compat/",
        ),
    ] {
        let ran = run(d, &args);
        ok(&ran);
        let warnings: Vec<&str> = ran
            .stderr
            .lines()
            .filter(|l| l.starts_with("warning:"))
            .collect();
        assert_eq!(warnings.len(), 1, "{args:?}: {}", ran.stderr);
        for f in excluded {
            assert!(warnings[0].contains(f), "{args:?}: {}", warnings[0]);
        }
        let out = d.join(prefix.split('/').next().unwrap());
        let written = files_under(&out);
        let sub = prefix.split_once('/').unwrap().1;
        for f in ["main.py", "pkg/mod.py", ".dockerignore"] {
            assert!(
                written.contains(&format!("{sub}{f}")),
                "{args:?}: {f} missing in {written:?}"
            );
        }
        for f in excluded {
            assert!(
                !written.iter().any(|w| w.ends_with(f)),
                "{args:?}: {f} copied: {written:?}"
            );
        }
    }

    // The registry fast path and --output write the plan's files under /root as a layer.
    let file = imagespec::load(&d.join("spec.toml")).expect("spec");
    let (_, spec) = file.select(None).expect("one image");
    let tag = imagespec::tag::compute(spec, &Default::default()).expect("tag");
    let plan = imagespec::plan::BuildPlan::new(spec, &tag, &Default::default()).expect("plan");
    let in_layer: Vec<String> = plan
        .root_entries
        .iter()
        .filter_map(|e| match e {
            imagespec::plan::RootEntry::File { to, .. } => Some(to.clone()),
            imagespec::plan::RootEntry::Dir { .. } => None,
        })
        .collect();
    assert_eq!(
        in_layer,
        [".dockerignore", ".gitignore", "main.py", "pkg/mod.py"]
    );

    // The name stays flytekit's: flytekit hashes the excluded files, so a change to one of
    // them changes the tag (and a copied file's change always does).
    let before = run(d, &["tag", "spec.toml"]);
    write(&d.join("src/secrets.json"), "{\"token\": \"rotated\"}\n");
    let after = run(d, &["tag", "spec.toml"]);
    assert_ne!(before.stdout, after.stdout);
}

#[test]
fn links_out_of_source_root_are_refused_unless_allowed() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = tmp.path();
    write(&d.join("src/app.py"), "print('app')\n");
    write(&d.join("outside.txt"), "not in source_root\n");
    symlink("app.py", d.join("src/inside")).expect("link");
    symlink("/etc/passwd", d.join("src/host")).expect("link");
    write(
        &d.join("spec.toml"),
        "name = \"links\"\nsource_root = \"src\"\nsource_copy_mode = \"all\"\n",
    );
    for cmd in ["tag", "inspect", "exists", "render", "build"] {
        let mut args = vec![cmd, "spec.toml"];
        if cmd == "render" {
            args.extend(["-o", "out"]);
        }
        let ran = run(d, &args);
        refused(&ran, &["src/host", "/etc/passwd", "--allow-external-links"]);
    }
    assert!(!d.join("out").exists(), "nothing rendered");

    // The operator opts in (flag or environment): flytekit's behaviour, links read through.
    ok(&run(d, &["tag", "spec.toml", "--allow-external-links"]));
    let ran = run_with(
        d,
        &["render", "spec.toml", "-o", "out"],
        &[("IMAGESPEC_ALLOW_EXTERNAL_LINKS", "1")],
    );
    ok(&ran);
    assert_eq!(
        std::fs::read_to_string(d.join("out/src/host")).expect("read through"),
        std::fs::read_to_string("/etc/passwd").expect("passwd")
    );
    // A link inside the root is read through, as flytekit reads it.
    assert_eq!(
        std::fs::read_to_string(d.join("out/src/inside")).expect("inside"),
        "print('app')\n"
    );
    refused(
        &run_with(
            d,
            &["tag", "spec.toml"],
            &[("IMAGESPEC_ALLOW_EXTERNAL_LINKS", "false")],
        ),
        &["src/host"],
    );

    // A link out of source_root, but inside the project, is out of the root all the same.
    std::fs::remove_file(d.join("src/host")).expect("rm");
    symlink("../outside.txt", d.join("src/up")).expect("link");
    refused(
        &run(d, &["tag", "spec.toml"]),
        &["src/up", "../outside.txt"],
    );
    // Unless an ignore rule keeps it out of what is hashed: then it is never read.
    write(&d.join("src/.dockerignore"), "up\n");
    write(
        &d.join("spec.toml"),
        &format!(
            "name = \"links\"\nsource_root = \"{}\"\nsource_copy_mode = \"all\"\n",
            d.join("src").display()
        ),
    );
    ok(&run(d, &["tag", "spec.toml"]));

    // loaded_modules: a module file that is a link out of the root.
    symlink("/etc/passwd", d.join("src/mod.py")).expect("link");
    write(
        &d.join("modules.txt"),
        &format!("{}\n", d.join("src/mod.py").display()),
    );
    write(
        &d.join("modules.toml"),
        &format!(
            "name = \"links\"\nsource_root = \"{}\"\nsource_copy_mode = \"loaded_modules\"\n",
            d.join("src").display()
        ),
    );
    refused(
        &run(d, &["tag", "modules.toml", "--modules-from", "modules.txt"]),
        &["src/mod.py", "/etc/passwd"],
    );
}

#[test]
fn copy_entries_cannot_reach_out_through_links() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = tmp.path();
    symlink("/etc", d.join("etc")).expect("link");
    write(&d.join("data/a.txt"), "a\n");
    write(&d.join("other/b.txt"), "b\n");
    let spec = |copy: &str| {
        write(
            &d.join("spec.toml"),
            &format!("name = \"c\"\ncopy = {copy}\n"),
        )
    };

    // `copy = ["link-to-/etc"]` would hash and copy all of /etc.
    spec(r#"["etc"]"#);
    refused(&run(d, &["tag", "spec.toml"]), &["etc", "/etc"]);
    spec(r#"["etc/passwd"]"#);
    refused(&run(d, &["tag", "spec.toml"]), &["etc", "/etc"]);

    // A file link in a copied directory that leaves the entry.
    symlink("/etc/passwd", d.join("data/passwd")).expect("link");
    spec(r#"["data"]"#);
    refused(
        &run(d, &["tag", "spec.toml"]),
        &["data/passwd", "/etc/passwd"],
    );
    refused(
        &run(d, &["render", "spec.toml", "-o", "out"]),
        &["data/passwd"],
    );
    std::fs::remove_file(d.join("data/passwd")).expect("rm");

    // A directory link: not hashed (flytekit's compute_digest does not follow it), but
    // flytekit's copytree follows it, so the flytekit-compatible context refuses it.
    symlink("/etc", d.join("data/etc")).expect("link");
    ok(&run(d, &["tag", "spec.toml"]));
    ok(&run(d, &["render", "spec.toml", "-o", "out"]));
    refused(
        &run(
            d,
            &["render", "spec.toml", "-o", "compat", "--flytekit-compat"],
        ),
        &["data/etc", "/etc"],
    );
    assert!(!d.join("compat").exists());
    std::fs::remove_file(d.join("data/etc")).expect("rm");

    // Links inside an entry are fine, and so is an entry that is a link inside the project.
    symlink("a.txt", d.join("data/alias.txt")).expect("link");
    symlink("other", d.join("other-link")).expect("link");
    spec(r#"["data", "other-link"]"#);
    ok(&run(d, &["tag", "spec.toml"]));
    ok(&run(
        d,
        &["render", "spec.toml", "-o", "compat", "--flytekit-compat"],
    ));
    assert_eq!(
        std::fs::read_to_string(d.join("compat/data/alias.txt")).expect("alias"),
        "a\n"
    );
}

fn mkfifo(path: &Path) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("mkdir");
    }
    let status = Process::new("mkfifo").arg(path).status().expect("mkfifo");
    assert!(status.success());
}

#[test]
fn fifos_and_devices_are_refused_never_read() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = tmp.path();
    let spec = |text: &str| write(&d.join("spec.toml"), &format!("name = \"s\"\n{text}"));

    // A FIFO in a `copy` directory: tag, inspect, exists, render and build all stop at once.
    mkfifo(&d.join("data/pipe"));
    write(&d.join("data/a.txt"), "a\n");
    spec("copy = [\"data\"]\n");
    for cmd in ["tag", "inspect", "exists", "build"] {
        refused(&run(d, &[cmd, "spec.toml"]), &["data/pipe", "FIFO"]);
    }
    refused(
        &run(d, &["render", "spec.toml", "-o", "out"]),
        &["data/pipe"],
    );

    // `copy = ["zero"]` with zero -> /dev/zero: a link out, and a device even when allowed.
    symlink("/dev/zero", d.join("zero")).expect("link");
    spec("copy = [\"zero\"]\n");
    refused(&run(d, &["tag", "spec.toml"]), &["zero", "/dev/zero"]);
    refused(
        &run(d, &["tag", "spec.toml", "--allow-external-links"]),
        &["zero", "FIFO or device"],
    );

    // `requirements` naming a FIFO.
    mkfifo(&d.join("fifo.txt"));
    spec("requirements = \"fifo.txt\"\n");
    for cmd in ["tag", "inspect", "build"] {
        refused(&run(d, &[cmd, "spec.toml"]), &["fifo.txt", "FIFO"]);
    }

    // Under source_root: a FIFO, a link to a device, a FIFO .dockerignore.
    mkfifo(&d.join("src/pipe"));
    write(&d.join("src/app.py"), "x\n");
    spec("source_root = \"src\"\nsource_copy_mode = \"all\"\n");
    refused(&run(d, &["tag", "spec.toml"]), &["src/pipe"]);
    std::fs::remove_file(d.join("src/pipe")).expect("rm");
    symlink("/dev/zero", d.join("src/zero")).expect("link");
    refused(
        &run(d, &["tag", "spec.toml", "--allow-external-links"]),
        &["src/zero", "FIFO or device"],
    );
    std::fs::remove_file(d.join("src/zero")).expect("rm");
    mkfifo(&d.join("src/.dockerignore"));
    refused(&run(d, &["tag", "spec.toml"]), &["src/.dockerignore"]);
    std::fs::remove_file(d.join("src/.dockerignore")).expect("rm");

    // A FIFO .gitignore, which git itself would block on.
    sh(d, "git init -q");
    mkfifo(&d.join("src/.gitignore"));
    refused(&run(d, &["tag", "spec.toml"]), &["src/.gitignore"]);
    std::fs::remove_file(d.join("src/.gitignore")).expect("rm");
    ok(&run(d, &["tag", "spec.toml"]));

    // `registry_config` naming a FIFO.
    mkfifo(&d.join("config.fifo"));
    spec("registry = \"127.0.0.1:9\"\nregistry_config = \"config.fifo\"\n");
    refused(&run(d, &["exists", "spec.toml"]), &["config.fifo", "FIFO"]);
}

#[test]
fn nothing_is_written_outside_the_output() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = tmp.path();
    let src = d.join("proj/src");
    write(&src.join("app.py"), "print('app')\n");
    write(&d.join("payload.txt"), "payload\n");
    write(
        &d.join("proj/spec.toml"),
        &format!(
            "name = \"out\"\nregistry = \"127.0.0.1:9\"\nsource_root = \"{}\"\n\
             source_copy_mode = \"loaded_modules\"\n",
            src.display()
        ),
    );
    // An absolute source_root and a module path that climbs out of it: flytekit's relpath
    // makes it `../../payload.txt` relative to the context's src/.
    write(
        &d.join("modules.txt"),
        &format!(
            "{}\n{}/../../payload.txt\n",
            src.join("app.py").display(),
            src.display()
        ),
    );
    let out = d.join("work/ctx");
    let with_modules = |args: &[&str]| {
        let mut a: Vec<&str> = args.to_vec();
        a.extend(["--modules-from", "modules.txt"]);
        run(d, &a)
    };
    // The tag is flytekit's (it hashes the file)...
    ok(&with_modules(&["tag", "proj/spec.toml"]));
    // ...but nothing is written beside the output, nor beside /root in an image.
    let out_s = out.to_string_lossy().into_owned();
    refused(
        &with_modules(&["render", "proj/spec.toml", "-o", &out_s]),
        &["payload.txt", "outside the build context"],
    );
    let oci = format!("oci:{}", d.join("work/oci").display());
    refused(
        &with_modules(&["build", "proj/spec.toml", "--output", &oci]),
        &["payload.txt", "outside the build context"],
    );
    refused(
        &with_modules(&[
            "render",
            "proj/spec.toml",
            "-o",
            &out_s,
            "--builder",
            "envd",
        ]),
        &["payload.txt", "outside the build context"],
    );
    assert!(!d.join("work").exists(), "nothing may be written");

    // An output directory someone prepared with links: a directory link is refused, a file
    // link is replaced, never written through.
    write(&d.join("victim/keep.txt"), "keep\n");
    write(&d.join("victim-file"), "keep\n");
    std::fs::create_dir_all(&out).expect("mkdir");
    symlink(d.join("victim"), out.join("src")).expect("link");
    symlink(d.join("victim-file"), out.join("Dockerfile")).expect("link");
    write(
        &d.join("modules.txt"),
        &format!("{}\n", src.join("app.py").display()),
    );
    // A directory that is not empty is refused outright; --replace removes the links
    // themselves, never what they point at.
    let ran = with_modules(&["render", "proj/spec.toml", "-o", &out_s]);
    assert_eq!(ran.code, Some(2), "{}", ran.stderr);
    assert!(ran.stderr.contains("--replace"), "{}", ran.stderr);
    assert_eq!(files_under(&d.join("victim")), ["keep.txt"]);
    ok(&with_modules(&[
        "render",
        "proj/spec.toml",
        "-o",
        &out_s,
        "--replace",
    ]));
    assert_eq!(files_under(&d.join("victim")), ["keep.txt"]);
    assert_eq!(
        std::fs::read_to_string(d.join("victim-file")).expect("victim"),
        "keep\n"
    );
    assert!(
        !std::fs::symlink_metadata(out.join("Dockerfile"))
            .expect("Dockerfile")
            .file_type()
            .is_symlink()
    );
}
