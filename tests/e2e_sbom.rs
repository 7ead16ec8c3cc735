//! End-to-end tests of the SBOM (issue 23): every image `build` publishes gets an SPDX 2.3
//! document attached as an OCI 1.1 referrer. Checked from outside: the registry's referrers
//! tag (`sha256-<hex>`, curl: the harness's distribution registry has no referrers API),
//! the artifact manifest and its blob (curl), and the packages the image itself reports
//! (`docker run … dpkg-query -W`, Python's `importlib.metadata`). Services come from
//! `scripts/e2e/` (as for tests/e2e.rs); without them these tests fail under `CI`, and say
//! why and pass elsewhere.

use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command as Process;

mod common;

use common::e2e::{
    DOCKER, NO_DAEMON, Services, imagespec_in, output, registry_digest, run_id, run_json,
    write_spec,
};

const INDEX: &str = "application/vnd.oci.image.index.v1+json";
const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const SPDX: &str = "application/spdx+json";
const IN_TOTO: &str = "application/vnd.in-toto+json";

/// `imagespec build --json ARGS` in `proj` (uv from the harness): the result event.
fn build(proj: &Path, env: &Services, docker_host: Option<&str>, args: &[&str]) -> Value {
    let mut cmd = imagespec_in(proj);
    if let Some(uv) = env.file.uv() {
        cmd.env("IMAGESPEC_UV", uv);
    }
    if let Some(host) = docker_host {
        cmd.env("DOCKER_HOST", host);
    }
    let run = run_json(cmd.args(["build", "--json"]).args(args));
    assert!(run.ok(), "build failed:\n{}", run.text);
    run.result().clone()
}

/// GET `path` of the registry with `accept`: the body, or `None` on 404.
fn get(env: &Services, path: &str, accept: &str) -> Option<Vec<u8>> {
    let url = format!("http://{}/v2/{path}", env.registry_address);
    let out = Process::new("curl")
        .args([
            "-s",
            "-w",
            "\n%{http_code}",
            "-H",
            &format!("Accept: {accept}"),
            &url,
        ])
        .output()
        .expect("curl");
    let text = out.stdout;
    let split = text.iter().rposition(|b| *b == b'\n').expect("status line");
    let (body, code) = (&text[..split], String::from_utf8_lossy(&text[split + 1..]));
    match code.trim() {
        "200" => Some(body.to_vec()),
        "404" => None,
        other => panic!("GET {url}: {other}: {}", String::from_utf8_lossy(body)),
    }
}

/// A tool of `scripts/e2e/sbom-tools.sh` (`IMAGESPEC_<TOOL>`, else its pinned install in
/// the harness's cache: `<dir>/bin/<tool>`), or `None` with a note (a failure under `CI`).
fn sbom_tool(env: &Services, tool: &str, dir: &str) -> Option<std::path::PathBuf> {
    let var = format!("IMAGESPEC_{}", tool.to_uppercase());
    let path = std::env::var_os(&var)
        .map(Into::into)
        .unwrap_or_else(|| Path::new(&env.file.cache()).join(format!("{dir}/bin/{tool}")));
    if !path.is_file() && std::env::var_os("CI").is_some() && std::env::var_os(&var).is_none() {
        // Under CI, build it now (or wait for up.sh's build of it: the script locks).
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/e2e/sbom-tools.sh");
        let name = dir
            .split('-')
            .take_while(|p| !p.starts_with(char::is_numeric));
        let name = name.collect::<Vec<_>>().join("-").replace("-lib", "");
        output(Process::new("bash").arg(script).arg(name));
    }
    if path.is_file() {
        Some(path)
    } else {
        common::e2e::missing(&format!(
            "{tool} is not at {} (scripts/e2e/sbom-tools.sh installs it, or set {var})",
            path.display()
        ))
    }
}

/// `oras discover` of `reference` (`--plain-http` in `args`): the SBOM referrers it lists,
/// by digest.
fn oras_sboms(oras: &Path, args: &[&str], reference: &str) -> Vec<String> {
    oras_discover(oras, args, reference)
        .into_iter()
        .filter(|m| m["artifactType"] == SPDX)
        .map(|m| m["digest"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// The artifact types of the referrers `oras discover` lists for `reference`, sorted.
fn oras_referrers(oras: &Path, args: &[&str], reference: &str) -> Vec<String> {
    let mut kinds: Vec<String> = oras_discover(oras, args, reference)
        .iter()
        .map(|m| m["artifactType"].as_str().unwrap_or_default().to_string())
        .collect();
    kinds.sort();
    kinds
}

fn oras_discover(oras: &Path, args: &[&str], reference: &str) -> Vec<Value> {
    let out = output(
        Process::new(oras)
            .args(["discover", "--format", "json"])
            .args(args)
            .arg(reference),
    );
    let listed = json(out.as_bytes());
    listed["manifests"].as_array().expect("manifests").clone()
}

fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).expect("json")
}

/// The repository of `image` in the registry (`localhost:5000/x:t` → `x`).
fn repository(image: &str) -> &str {
    let path = image.split_once('/').expect("registry/name").1;
    path.rsplit_once(':').map_or(path, |(r, _)| r)
}

/// The SBOM attached to `digest` in `repository` (see [`attached`]).
fn attached_sbom(env: &Services, repository: &str, digest: &str) -> Vec<u8> {
    attached(env, repository, digest, SPDX)
}

/// The artifact of `kind` attached to `digest` in `repository`, read as a client without
/// the referrers API reads it: the referrers tag's index, the artifact manifest, its blob.
/// Asserts the artifact's shape on the way; the content's bytes.
fn attached(env: &Services, repository: &str, digest: &str, kind: &str) -> Vec<u8> {
    let hex = digest.strip_prefix("sha256:").expect("sha256");
    let api = get(env, &format!("{repository}/referrers/{digest}"), INDEX);
    assert!(api.is_none(), "the harness's registry has no referrers API");
    let index = get(env, &format!("{repository}/manifests/sha256-{hex}"), INDEX)
        .expect("the referrers tag sha256-<hex> exists");
    let index = json(&index);
    let entries: Vec<&Value> = index["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .filter(|m| m["artifactType"] == kind)
        .collect();
    assert_eq!(entries.len(), 1, "{index}");
    let artifact = get(
        env,
        &format!(
            "{repository}/manifests/{}",
            entries[0]["digest"].as_str().unwrap()
        ),
        MANIFEST,
    )
    .expect("the artifact manifest");
    let artifact = json(&artifact);
    assert_eq!(artifact["artifactType"], kind, "{artifact}");
    assert_eq!(artifact["subject"]["digest"], digest, "{artifact}");
    assert_eq!(
        artifact["config"]["mediaType"],
        "application/vnd.oci.empty.v1+json"
    );
    let layer = &artifact["layers"][0];
    assert_eq!(layer["mediaType"], kind, "{artifact}");
    get(
        env,
        &format!("{repository}/blobs/{}", layer["digest"].as_str().unwrap()),
        "*/*",
    )
    .expect("the artifact's blob")
}

/// The provenance attached to `digest` (an in-toto statement of SLSA provenance v1 about
/// it); `imagespec sbom --provenance` prints it.
fn check_provenance(env: &Services, proj: &Path, image: &str, digest: &str) -> Value {
    let bytes = attached(env, repository(image), digest, IN_TOTO);
    let statement = json(&bytes);
    assert_eq!(statement["_type"], "https://in-toto.io/Statement/v1");
    assert_eq!(statement["predicateType"], "https://slsa.dev/provenance/v1");
    let hex = digest.trim_start_matches("sha256:");
    assert_eq!(statement["subject"][0]["digest"]["sha256"], hex);
    let definition = &statement["predicate"]["buildDefinition"];
    let base = &definition["resolvedDependencies"][0];
    assert_eq!(base["name"], "base image", "{statement}");
    assert!(base["digest"]["sha256"].is_string(), "{statement}");
    let spec = &definition["externalParameters"]["spec"];
    assert!(spec["base_image"].is_string(), "{statement}");
    let text = String::from_utf8_lossy(&bytes);
    assert!(
        !text.contains(&*proj.to_string_lossy()),
        "no host path: {text}"
    );
    let run = &statement["predicate"]["runDetails"];
    assert!(run["builder"]["id"].is_string() && run["metadata"]["startedOn"].is_string());
    prints_attached(proj, &["--provenance", image], &bytes);
    statement
}

/// `document` validates as SPDX 2.3 (the SPDX tools' `pyspdxtools -i`).
fn validate_spdx(env: &Services, proj: &Path, document: &[u8]) {
    if let Some(validator) = sbom_tool(env, "pyspdxtools", "spdx-tools-0.8.5") {
        let file = proj.join("sbom.spdx.json");
        std::fs::write(&file, document).expect("write the document");
        let out = Process::new(validator)
            .arg("-i")
            .arg(&file)
            .output()
            .expect("pyspdxtools");
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && said.is_empty(),
            "SPDX 2.3 validation: {said}"
        );
    }
}

/// `(purl type, name, version, extra)` of every package the document lists, and the Python
/// packages' paths: `extra` is the deb architecture, or the METADATA path for pypi.
fn packages(document: &Value) -> BTreeSet<(String, String, String, String)> {
    document["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .filter(|p| p["primaryPackagePurpose"] == "LIBRARY")
        .map(|p| {
            let purl = p["externalRefs"][0]["referenceLocator"]
                .as_str()
                .unwrap_or_default();
            let kind = purl
                .trim_start_matches("pkg:")
                .split('/')
                .next()
                .unwrap_or_default();
            let name = p["name"].as_str().unwrap_or_default().to_string();
            let version = p["versionInfo"].as_str().unwrap_or_default().to_string();
            let extra = match kind {
                "deb" => purl
                    .rsplit_once("arch=")
                    .map(|(_, a)| a.to_string())
                    .unwrap_or_default(),
                _ => p["sourceInfo"]
                    .as_str()
                    .unwrap_or_default()
                    .trim_start_matches("found in ")
                    .trim_end_matches("/METADATA")
                    .trim_end_matches("/PKG-INFO")
                    .to_string(),
            };
            (kind.to_string(), name, version, extra)
        })
        .collect()
}

/// What the image reports of itself: dpkg's installed packages (deb, name, version,
/// architecture) and the distributions its Python sees (pypi, name, version, METADATA).
fn reported(image: &str) -> BTreeSet<(String, String, String, String)> {
    output(Process::new(DOCKER).args(["pull", "-q", image]));
    let script = r#"dpkg-query -W -f='${db:Status-Status} deb ${Package} ${Version} ${Architecture}\n' | sed -n 's/^installed //p'
python -c '
import importlib.metadata as m
for d in m.distributions():
    print("pypi", d.metadata["Name"], d.version, d._path)
'"#;
    let out = output(Process::new(DOCKER).args([
        "run",
        "--rm",
        "--user",
        "root",
        "--entrypoint",
        "bash",
        image,
        "-c",
        script,
    ]));
    out.lines()
        .filter_map(|l| {
            let mut parts = l.splitn(4, ' ');
            Some((
                parts.next()?.to_string(),
                parts.next()?.to_string(),
                parts.next()?.to_string(),
                parts.next()?.to_string(),
            ))
        })
        .collect()
}

/// The document lists exactly the image's dpkg packages, and every distribution its Python
/// sees (with the version installed, at its path); `imagespec sbom` prints the same bytes.
fn check_document(env: &Services, proj: &Path, image: &str, document: &[u8]) -> Value {
    validate_spdx(env, proj, document);
    let doc = json(document);
    assert_eq!(doc["spdxVersion"], "SPDX-2.3");
    assert_eq!(doc["packages"][0]["SPDXID"], "SPDXRef-Image");
    let listed = packages(&doc);
    let reported = reported(image);
    let debs = |set: &BTreeSet<(String, String, String, String)>| -> BTreeSet<_> {
        set.iter().filter(|p| p.0 == "deb").cloned().collect()
    };
    assert_eq!(debs(&listed), debs(&reported), "dpkg's packages");
    assert!(!debs(&listed).is_empty());
    for dist in reported.iter().filter(|p| p.0 == "pypi") {
        assert!(listed.contains(dist), "{dist:?} missing from {listed:#?}");
    }
    prints_attached(proj, &[image], document);
    doc
}

fn names(doc: &Value, kind: &str) -> BTreeSet<String> {
    packages(doc)
        .into_iter()
        .filter(|p| p.0 == kind)
        .map(|p| p.1.to_lowercase())
        .collect()
}

/// A project in a new directory: `src/main.py` holding `source`, and a spec named
/// `<prefix>-<run id>` with `lines` (all of `src` copied).
fn project(env: &Services, prefix: &str, source: &str, lines: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let proj = dir.path();
    std::fs::create_dir_all(proj.join("src")).expect("src");
    std::fs::write(proj.join("src/main.py"), source).expect("source");
    let name = format!("{prefix}-{}", run_id());
    let lines = format!("{lines}\nsource_root = \"src\"\nsource_copy_mode = \"all\"");
    write_spec(proj, env, &name, &lines);
    dir
}

/// A pip-only image made without a daemon (uv, then the source appended): its SBOM is
/// attached under the referrers tag and lists what uv installed and what dpkg has.
#[test]
fn a_daemonless_image_carries_its_sbom() {
    let Some(env) = common::e2e::services() else {
        return;
    };
    let packages = "packages = [\"six\", \"pyyaml\"]";
    let dir = project(&env, "h-sbom-uv", "import six\n", packages);
    let proj = dir.path();
    let result = build(proj, &env, Some(NO_DAEMON), &["spec.toml"]);
    assert_eq!(result["action"], "appended", "{result}");
    let image = result["image"].as_str().expect("image").to_string();
    let digest = registry_digest(&image);
    assert_eq!(result["digest"], digest.as_str());

    let document = attached_sbom(&env, repository(&image), &digest);
    if let Some(oras) = sbom_tool(&env, "oras", "oras-1.2.3") {
        let listed = oras_sboms(&oras, &["--plain-http"], &image);
        assert_eq!(listed.len(), 1, "oras discover lists the SBOM: {listed:?}");
    }
    let doc = check_document(&env, proj, &image, &document);
    let python = names(&doc, "pypi");
    assert!(
        python.contains("six") && python.contains("pyyaml"),
        "{python:?}"
    );
    let source = &doc["packages"][2];
    assert_eq!(source["SPDXID"], "SPDXRef-Source", "{doc}");
    assert_eq!(doc["packages"][1]["name"], env.base_python.as_str());
    let statement = check_provenance(&env, proj, &image, &digest);
    let builder = &statement["predicate"]["runDetails"]["builder"]["id"];
    assert!(
        builder.as_str().unwrap().ends_with("/registry-append"),
        "{builder}"
    );
    check_cyclonedx(&env, proj, &image, &doc);
    syft_agrees(&env, &image, &doc);
}

/// `imagespec ARGS` in `proj`: its stdout, once it succeeded (its stderr in the message).
fn imagespec_stdout(proj: &Path, args: &[&str]) -> Vec<u8> {
    stdout_of(imagespec_in(proj).args(args))
}

/// What `cmd` printed, once it succeeded (its stderr in the message).
fn stdout_of(cmd: &mut assert_cmd::Command) -> Vec<u8> {
    let out = cmd.output().expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// `imagespec sbom ARGS` prints `document` (and a newline), and nothing on stderr: it is
/// attached, not computed.
fn prints_attached(proj: &Path, args: &[&str], document: &[u8]) {
    let out = imagespec_in(proj)
        .arg("sbom")
        .args(args)
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.is_empty(), "{stderr}");
    let printed = out.stdout;
    assert_eq!(printed.strip_suffix(b"\n").unwrap_or(&printed), document);
}

/// `imagespec sbom --format cyclonedx` validates as CycloneDX 1.6 (cyclonedx-python-lib's
/// JSON validator) and lists the SPDX document's packages by purl.
fn check_cyclonedx(env: &Services, proj: &Path, image: &str, spdx: &Value) {
    let printed = imagespec_stdout(proj, &["sbom", "--format", "cyclonedx", image]);
    if let Some(python) = sbom_tool(env, "python", "cyclonedx-lib-9.1.0") {
        let file = proj.join("sbom.cdx.json");
        std::fs::write(&file, &printed).expect("write the BOM");
        let check = "import sys\nfrom cyclonedx.validation.json import JsonStrictValidator\n\
            from cyclonedx.schema import SchemaVersion\n\
            e = JsonStrictValidator(SchemaVersion.V1_6).validate_str(open(sys.argv[1]).read())\n\
            sys.exit(str(e) if e else 0)\n";
        let validated = Process::new(python)
            .args(["-c", check])
            .arg(&file)
            .output()
            .expect("python");
        assert!(
            validated.status.success(),
            "CycloneDX 1.6: {}",
            String::from_utf8_lossy(&validated.stderr)
        );
    }
    let bom = json(&printed);
    assert_eq!(bom["specVersion"], "1.6");
    let purls = |packages: &Value, key: &str| -> BTreeSet<String> {
        let all = packages.as_array().expect("a list").iter();
        all.filter_map(|p| p.pointer(key).and_then(Value::as_str).map(String::from))
            .filter(|p| !p.starts_with("pkg:oci/"))
            .collect()
    };
    assert_eq!(
        purls(&bom["components"], "/purl"),
        purls(&spdx["packages"], "/externalRefs/0/referenceLocator")
    );
}

/// The fast path on a machine that has read none of the image's layers (a new cache dir)
/// takes the dependency image's SBOM (attached by the first build, which read its layers)
/// and reads no layer: the source layer's findings come from writing it, and its findings
/// cache holds no layer. The document lists the same packages as the first build's.
#[test]
fn a_fast_path_build_on_a_new_machine_reads_no_layer() {
    let Some(env) = common::e2e::services() else {
        return;
    };
    let dir = project(&env, "h-sbom-fast", "import six\n", "packages = [\"six\"]");
    let proj = dir.path();
    let first = build(proj, &env, Some(NO_DAEMON), &["spec.toml"]);
    let image = first["image"].as_str().expect("image").to_string();
    let before = json(&attached_sbom(
        &env,
        repository(&image),
        &registry_digest(&image),
    ));
    let provenance = attached(&env, repository(&image), &registry_digest(&image), IN_TOTO);
    let dependency = json(&provenance)["predicate"]["buildDefinition"]["resolvedDependencies"]
        .as_array()
        .expect("resolved")
        .iter()
        .find(|d| d["name"] == "dependency image")
        .and_then(|d| d["uri"].as_str())
        .expect("the dependency image")
        .to_string();
    let dependency_digest = registry_digest(&dependency);
    let deps_doc = json(&attached_sbom(
        &env,
        repository(&dependency),
        &dependency_digest,
    ));
    assert_eq!(names(&deps_doc, "pypi"), names(&before, "pypi"));

    std::fs::write(proj.join("src/main.py"), "import six  # changed\n").expect("source");
    let cache = tempfile::tempdir().expect("cache");
    let mut cmd = imagespec_in(proj);
    cmd.env("IMAGESPEC_NO_CACHE", "0")
        .env("IMAGESPEC_CACHE_DIR", cache.path())
        .env("IMAGESPEC_UV", env.file.uv().unwrap_or_default())
        .env("DOCKER_HOST", NO_DAEMON);
    let run = run_json(cmd.args(["build", "--json", "spec.toml"]));
    assert!(run.ok(), "build failed:\n{}", run.text);
    assert_eq!(run.result()["action"], "appended", "{}", run.text);
    let findings = cache.path().join("sbom-layers");
    let read: Vec<_> = std::fs::read_dir(&findings)
        .expect("the findings cache")
        .filter_map(Result::ok)
        .filter(|e| e.path().is_file())
        .collect();
    assert!(read.is_empty(), "no layer was read (nor kept): {read:?}");
    // The dependency image's document is kept by its digest: the next build on it here
    // asks the registry nothing for it.
    let kept = findings.join("images").join(format!(
        "{}.spdx.json",
        dependency_digest.replacen(':', "-", 1)
    ));
    let kept_doc = json(&std::fs::read(&kept).expect("the dependency image's document kept"));
    assert_eq!(names(&kept_doc, "pypi"), names(&deps_doc, "pypi"));
    let second = run.result()["image"].as_str().expect("image").to_string();
    assert_ne!(second, image, "a new tag for the new source");
    let after = json(&attached_sbom(
        &env,
        repository(&second),
        &registry_digest(&second),
    ));
    assert_eq!(packages(&after), packages(&before));
    assert_ne!(after["name"], before["name"], "another image");
}

/// Each found package of an SPDX document: (purl, where found, declared license).
fn spdx_finds(document: &Value) -> BTreeSet<(String, String, String)> {
    let all = document["packages"].as_array().expect("packages").iter();
    all.filter(|p| p["primaryPackagePurpose"] == "LIBRARY")
        .map(|p| {
            let text = |key: &str| p.pointer(key).and_then(Value::as_str).unwrap_or_default();
            let found = text("/sourceInfo").trim_start_matches("found in ");
            let license = Some(text("/licenseDeclared")).filter(|l| *l != "NOASSERTION");
            let license = license.unwrap_or_default().to_string();
            let purl = text("/externalRefs/0/referenceLocator").to_string();
            (purl, found.to_string(), license)
        })
        .collect()
}

/// The same of a CycloneDX BOM (`imagespec sbom --format cyclonedx`, always computed).
fn cyclonedx_finds(bom: &Value) -> BTreeSet<(String, String, String)> {
    let all = bom["components"].as_array().expect("components").iter();
    all.filter(|c| c["type"] == "library")
        .map(|c| {
            let text = |key: &str| c.pointer(key).and_then(Value::as_str).unwrap_or_default();
            let purl = text("/purl").to_string();
            let found = text("/properties/0/value").to_string();
            (purl, found, text("/licenses/0/expression").to_string())
        })
        .collect()
}

/// What `imagespec sbom --format cyclonedx IMAGE` finds in a new process with no cache:
/// every layer read from the registry.
fn computed_from_the_registry(proj: &Path, image: &str) -> BTreeSet<(String, String, String)> {
    let printed = imagespec_stdout(proj, &["sbom", "--format", "cyclonedx", image]);
    cyclonedx_finds(&json(&printed))
}

/// A cold build (a new machine's cache): the findings of the base's layers come from the
/// builder's read of the base tree and those of uv's layers from the files it wrote, not
/// from the registry. The attached documents (the image's and its dependency image's) list
/// exactly what reading every layer from the registry finds.
#[test]
fn a_cold_builds_findings_from_the_builder_are_those_of_its_layers() {
    let Some(env) = common::e2e::services() else {
        return;
    };
    let packages = "packages = [\"six\", \"pyyaml\"]";
    let dir = project(&env, "h-sbom-cold", "import six\n", packages);
    let proj = dir.path();
    let cache = tempfile::tempdir().expect("cache");
    let mut cmd = imagespec_in(proj);
    cmd.env("IMAGESPEC_NO_CACHE", "0")
        .env("IMAGESPEC_CACHE_DIR", cache.path())
        .env("IMAGESPEC_UV", env.file.uv().unwrap_or_default())
        .env("DOCKER_HOST", NO_DAEMON);
    let run = run_json(cmd.args(["build", "--json", "spec.toml"]));
    assert!(run.ok(), "build failed:\n{}", run.text);
    let image = run.result()["image"].as_str().expect("image").to_string();
    let base_read = (run.events.iter()).any(|e| e["event"] == "step" && e["id"] == "base");
    assert!(base_read, "a new cache reads the base tree:\n{}", run.text);
    let document = |image: &str| {
        json(&attached_sbom(
            &env,
            repository(image),
            &registry_digest(image),
        ))
    };
    let attached = spdx_finds(&document(&image));
    assert_eq!(attached, computed_from_the_registry(proj, &image));
    let has = |kind: &str| attached.iter().any(|(purl, _, _)| purl.starts_with(kind));
    assert!(
        has("pkg:deb/debian/libc6@") && has("pkg:pypi/pyyaml@"),
        "{attached:?}"
    );
    let provenance = attached_provenance(&env, &image);
    let dependency = dependency_image(&provenance);
    assert_eq!(
        spdx_finds(&document(&dependency)),
        computed_from_the_registry(proj, &dependency),
        "the dependency image's"
    );
}

/// A `uv.lock` spec made without a daemon: every package uv installed into the venv carries
/// its wheel's sha256, the one the lock lists for the wheel of the image's platform (uv
/// checked the file against it), in the SPDX document (which validates) and as the digest
/// of its resolved dependency in the provenance.
#[test]
fn a_uv_lock_images_wheels_carry_their_locked_hashes() {
    let Some(env) = common::e2e::services() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let proj = dir.path();
    std::fs::create_dir_all(proj.join("src")).expect("src");
    std::fs::write(proj.join("src/main.py"), "import yaml\n").expect("source");
    let pyproject = "[project]\nname = \"h-sbom-lock\"\nversion = \"0.1.0\"\n\
                     requires-python = \">=3.9\"\ndependencies = [\"pyyaml\", \"six\"]\n";
    std::fs::write(proj.join("pyproject.toml"), pyproject).expect("pyproject");
    let uv = env.file.uv().expect("uv from the harness");
    let locked = Process::new(&uv)
        .args(["lock", "--quiet", "--no-config"])
        .env("UV_NATIVE_TLS", "1")
        .current_dir(proj)
        .output()
        .expect("uv lock");
    assert!(
        locked.status.success(),
        "{}",
        String::from_utf8_lossy(&locked.stderr)
    );
    let lines = "requirements = \"uv.lock\"\nsource_root = \"src\"\nsource_copy_mode = \"all\"";
    write_spec(proj, &env, &format!("h-sbom-lock-{}", run_id()), lines);
    let result = build(proj, &env, Some(NO_DAEMON), &["spec.toml"]);
    let image = result["image"].as_str().expect("image").to_string();
    let bytes = attached_sbom(&env, repository(&image), &registry_digest(&image));
    validate_spdx(&env, proj, &bytes);
    // The lock's wheels: file name → sha256, by normalised package name.
    let lock: toml::Table = toml::from_str(&std::fs::read_to_string(proj.join("uv.lock")).unwrap())
        .expect("uv.lock parses");
    let mut wheels: std::collections::BTreeMap<String, Vec<(String, String)>> = Default::default();
    for package in lock["package"].as_array().expect("packages") {
        let name = pep503(package["name"].as_str().unwrap());
        for wheel in package
            .get("wheels")
            .and_then(|w| w.as_array())
            .into_iter()
            .flatten()
        {
            let url = wheel["url"].as_str().unwrap();
            let hash = wheel["hash"]
                .as_str()
                .unwrap()
                .trim_start_matches("sha256:");
            let file = url.rsplit('/').next().unwrap().to_string();
            wheels
                .entry(name.clone())
                .or_default()
                .push((file, hash.to_string()));
        }
    }
    let arch = match std::env::consts::ARCH {
        "aarch64" => "aarch64",
        _ => "x86_64",
    };
    let doc = json(&bytes);
    let mut hashed = BTreeSet::new();
    let venv = doc["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .filter(|p| {
            p["primaryPackagePurpose"] == "LIBRARY"
                && p["sourceInfo"]
                    .as_str()
                    .is_some_and(|s| s.contains("/root/.venv/"))
        });
    for package in venv {
        let name = pep503(package["name"].as_str().unwrap());
        let checksum = &package["checksums"][0];
        assert_eq!(checksum["algorithm"], "SHA256", "{package}");
        let hex = checksum["checksumValue"].as_str().unwrap().to_string();
        let file = wheels[&name]
            .iter()
            .find(|(_, h)| *h == hex)
            .map(|(f, _)| f);
        let file = file.unwrap_or_else(|| panic!("{name}: {hex} is no wheel of the lock"));
        assert!(
            file.ends_with("-none-any.whl") || file.contains(arch),
            "{name}: the wheel of the image's platform, not {file}"
        );
        let purl = package["externalRefs"][0]["referenceLocator"]
            .as_str()
            .unwrap();
        hashed.insert((purl.to_string(), hex));
    }
    let names: BTreeSet<&str> = hashed.iter().map(|(p, _)| p.as_str()).collect();
    assert!(
        names.iter().any(|p| p.contains("pkg:pypi/pyyaml@")),
        "{names:?}"
    );
    assert!(
        names.iter().any(|p| p.contains("pkg:pypi/six@")),
        "{names:?}"
    );
    let provenance = attached_provenance(&env, &image);
    let resolved = provenance["predicate"]["buildDefinition"]["resolvedDependencies"]
        .as_array()
        .expect("resolved");
    for (purl, hex) in &hashed {
        let entry = resolved
            .iter()
            .find(|d| d["uri"] == purl.as_str())
            .expect("resolved");
        assert_eq!(entry["digest"]["sha256"], hex.as_str(), "{entry}");
    }
}

/// The provenance attached to `image`.
fn attached_provenance(env: &Services, image: &str) -> Value {
    json(&attached(
        env,
        repository(image),
        &registry_digest(image),
        IN_TOTO,
    ))
}

/// The dependency image a provenance names among its resolved dependencies.
fn dependency_image(provenance: &Value) -> String {
    provenance["predicate"]["buildDefinition"]["resolvedDependencies"]
        .as_array()
        .expect("resolved")
        .iter()
        .find(|d| d["name"] == "dependency image")
        .and_then(|d| d["uri"].as_str())
        .expect("the dependency image")
        .to_string()
}

/// An apt + pip image built by dockerd's BuildKit (a `commands` step: the whole Dockerfile):
/// the same, with the apt package among dpkg's.
#[test]
fn a_buildkit_image_carries_its_sbom() {
    let Some(env) = common::e2e::services() else {
        return;
    };
    let lines = "apt_packages = [\"jq\"]\npackages = [\"six\"]\ncommands = [\"jq --version\"]";
    let dir = project(&env, "h-sbom-docker", "import six\n", lines);
    let proj = dir.path();
    let result = build(proj, &env, None, &["spec.toml"]);
    assert_eq!(result["action"], "built", "{result}");
    let image = result["image"].as_str().expect("image").to_string();
    let digest = registry_digest(&image);

    let document = attached_sbom(&env, repository(&image), &digest);
    let doc = check_document(&env, proj, &image, &document);
    assert!(names(&doc, "deb").contains("jq"), "{doc}");
    assert!(names(&doc, "pypi").contains("six"), "{doc}");
    syft_agrees(&env, &image, &doc);
}

/// `--sbom=false`: nothing is attached, and `imagespec sbom` computes the document, saying so.
/// `--output oci:DIR`: the layout holds the SBOM as a manifest whose subject is the image,
/// named by the image's `index.json` entry (which stays the only one: skopeo reads `oci:DIR`).
#[test]
fn sbom_false_attaches_nothing_and_a_layout_holds_it() {
    let Some(env) = common::e2e::services() else {
        return;
    };
    let dir = project(&env, "h-sbom-off", "print(1)\n", "packages = [\"six\"]");
    let proj = dir.path();
    let result = build(proj, &env, Some(NO_DAEMON), &["spec.toml", "--sbom=false"]);
    let image = result["image"].as_str().expect("image").to_string();
    let digest = registry_digest(&image);
    let hex = digest.trim_start_matches("sha256:");
    let tag = format!("{}/manifests/sha256-{hex}", repository(&image));
    assert!(get(&env, &tag, INDEX).is_none(), "no referrers tag");
    let out = imagespec_in(proj)
        .args(["sbom", &image])
        .output()
        .expect("run");
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no SBOM attached; computed from the image"),
        "{stderr}"
    );
    assert!(names(&json(&out.stdout), "pypi").contains("six"));

    let layout = proj.join("out");
    let target = format!("oci:{}", layout.display());
    build(
        proj,
        &env,
        Some(NO_DAEMON),
        &["spec.toml", "--output", &target],
    );
    let index = json(&std::fs::read(layout.join("index.json")).expect("index.json"));
    let manifests = index["manifests"].as_array().expect("manifests");
    assert_eq!(
        manifests.len(),
        1,
        "one image listed (skopeo's oci:DIR): {index}"
    );
    let image_entry = &manifests[0];
    let blob = |d: &str| {
        let hex = d.trim_start_matches("sha256:").to_string();
        std::fs::read(layout.join("blobs/sha256").join(hex)).expect("blob")
    };
    let named = image_entry["annotations"]["org.imagespec.sbom"]
        .as_str()
        .expect("the entry names its SBOM");
    let artifacts: Vec<Value> = named.split(',').map(|d| json(&blob(d))).collect();
    let kinds: Vec<&Value> = artifacts.iter().map(|a| &a["artifactType"]).collect();
    assert_eq!(
        kinds,
        [SPDX, IN_TOTO],
        "the SBOM and the provenance: {named}"
    );
    let artifact = &artifacts[0];
    assert_eq!(
        artifact["subject"]["digest"], image_entry["digest"],
        "{artifact}"
    );
    let document = json(&blob(artifact["layers"][0]["digest"].as_str().unwrap()));
    assert!(names(&document, "pypi").contains("six"), "{document}");
    let seen = Process::new("skopeo")
        .args(["inspect", "--config", &target])
        .output()
        .expect("skopeo");
    assert!(
        seen.status.success(),
        "{}",
        String::from_utf8_lossy(&seen.stderr)
    );
}

/// An index (linux/amd64 and linux/arm64, made without a daemon): one SBOM per platform,
/// each attached to its platform's manifest and listing that platform's Debian packages.
#[test]
fn each_platform_of_an_index_carries_its_own_sbom() {
    let Some(env) = common::e2e::services() else {
        return;
    };
    let dir = project(&env, "h-sbom-multi", "import six\n", "packages = [\"six\"]");
    let proj = dir.path();
    let spec = std::fs::read_to_string(proj.join("spec.toml")).expect("spec");
    let multi = format!(
        "base_image = \"{}\"\nplatform = \"linux/amd64,linux/arm64\"\n",
        env.file.base_python_multi()
    );
    let spec = spec.replace(&format!("base_image = \"{}\"\n", env.base_python), &multi);
    std::fs::write(proj.join("spec.toml"), spec).expect("spec");
    let result = build(proj, &env, Some(NO_DAEMON), &["spec.toml"]);
    assert_eq!(result["action"], "appended", "{result}");
    let image = result["image"].as_str().expect("image").to_string();
    let index = get(
        &env,
        &format!(
            "{}/manifests/{}",
            repository(&image),
            image.rsplit_once(':').unwrap().1
        ),
        &format!("{INDEX}, application/vnd.docker.distribution.manifest.list.v2+json"),
    )
    .expect("the index");
    let index = json(&index);
    let entries = index["manifests"].as_array().expect("an index");
    assert_eq!(entries.len(), 2, "{index}");
    for entry in entries {
        let arch = entry["platform"]["architecture"].as_str().expect("arch");
        let digest = entry["digest"].as_str().expect("digest");
        let doc = json(&attached_sbom(&env, repository(&image), digest));
        let debs: BTreeSet<String> = packages(&doc)
            .into_iter()
            .filter(|p| p.0 == "deb")
            .map(|p| p.3)
            .collect();
        assert!(debs.contains(arch), "{arch}: {debs:?}");
        assert!(
            debs.iter().all(|a| a == arch || a == "all"),
            "{arch}: {debs:?}"
        );
        assert!(names(&doc, "pypi").contains("six"), "{arch}");
        let statement = json(&attached(&env, repository(&image), digest, IN_TOTO));
        let platform = &statement["predicate"]["buildDefinition"]["externalParameters"]["platform"];
        assert_eq!(platform.as_str(), Some(format!("linux/{arch}").as_str()));
    }
    if let Some(oras) = sbom_tool(&env, "oras", "oras-1.2.3") {
        for entry in entries {
            let at = format!(
                "{}@{}",
                image.rsplit_once(':').unwrap().0,
                entry["digest"].as_str().unwrap()
            );
            let kinds = oras_referrers(&oras, &["--plain-http"], &at);
            assert_eq!(kinds, [SPDX, IN_TOTO], "oras discover {at}");
        }
    }
}

/// syft's own scan of `image` (`syft registry:…`, plain HTTP): its Debian and Python
/// packages, as (kind, PEP 503 name, version).
fn syft_packages(syft: &Path, image: &str) -> BTreeSet<(String, String, String)> {
    let out = output(
        Process::new(syft)
            .env("SYFT_REGISTRY_INSECURE_USE_HTTP", "true")
            .env("SYFT_CHECK_FOR_APP_UPDATE", "false")
            .args(["-q", "-o", "json"])
            .arg(format!("registry:{image}")),
    );
    let scan = json(out.as_bytes());
    let artifacts = scan["artifacts"].as_array().expect("artifacts").iter();
    artifacts
        .filter_map(|a| {
            let kind = match a["type"].as_str()? {
                "deb" => "deb",
                "python" => "pypi",
                _ => return None,
            };
            Some((
                kind.to_string(),
                name_of(kind, a["name"].as_str()?),
                a["version"].as_str()?.to_string(),
            ))
        })
        .collect()
}

/// A package's name as the comparison takes it: PEP 503's for Python's, as is for Debian's.
fn name_of(kind: &str, name: &str) -> String {
    if kind == "pypi" {
        pep503(name)
    } else {
        name.to_string()
    }
}

/// A Python name as PEP 503 compares them (lower case, runs of `-_.` one `-`).
fn pep503(name: &str) -> String {
    let lower = name.to_lowercase().replace(['_', '.'], "-");
    lower
        .split('-')
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("-")
}

/// syft's scan of `image` finds the same Debian and Python packages (name, version) as
/// imagespec's document `doc`.
fn syft_agrees(env: &Services, image: &str, doc: &Value) {
    let Some(syft) = sbom_tool(env, "syft", "syft-1.18.1") else {
        return;
    };
    let ours: BTreeSet<(String, String, String)> = packages(doc)
        .into_iter()
        .map(|(kind, name, version, _)| (name_of(&kind, &name), kind, version))
        .map(|(name, kind, version)| (kind, name, version))
        .collect();
    let theirs = syft_packages(&syft, image);
    assert_eq!(
        ours, theirs,
        "imagespec's SBOM against syft's scan of {image}"
    );
}

/// A stock `cosign sign --key` (a key made here, no transparency log) and `cosign verify
/// --key` pass on an imagespec image by digest, and the SBOM and the provenance are still
/// its referrers (`oras discover`) beside the signature.
#[test]
fn cosign_signs_and_verifies_and_the_sbom_stays() {
    let Some(env) = common::e2e::services() else {
        return;
    };
    let (Some(cosign), Some(oras)) = (
        sbom_tool(&env, "cosign", "cosign-2.6.5"),
        sbom_tool(&env, "oras", "oras-1.2.3"),
    ) else {
        return;
    };
    let dir = project(&env, "h-sbom-cosign", "print(1)\n", "packages = [\"six\"]");
    let proj = dir.path();
    build(proj, &env, Some(NO_DAEMON), &["spec.toml"]);
    let mut cmd = imagespec_in(proj);
    cmd.env("DOCKER_HOST", NO_DAEMON)
        .args(["build", "-q", "--print-ref", "digest", "spec.toml"]);
    let printed = stdout_of(&mut cmd);
    let reference = String::from_utf8_lossy(&printed).trim().to_string();
    assert!(reference.contains("@sha256:"), "{reference}");
    let cosign_in = |args: &[&str]| {
        let mut c = Process::new(&cosign);
        // A key of this test's own; the TUF root stays here: nothing is asked of sigstore.
        c.current_dir(proj)
            .env("COSIGN_PASSWORD", "e2e-only-pass")
            .env("TUF_ROOT", proj.join("tuf"))
            .args(args);
        output(&mut c)
    };
    cosign_in(&["generate-key-pair"]);
    let http = ["--allow-insecure-registry", "--allow-http-registry"];
    let mut sign = vec!["sign", "--key", "cosign.key", "--tlog-upload=false", "-y"];
    sign.extend(http);
    sign.push(&reference);
    cosign_in(&sign);
    let mut verify = vec![
        "verify",
        "--key",
        "cosign.pub",
        "--insecure-ignore-tlog",
        "--offline",
    ];
    verify.extend(http);
    verify.push(&reference);
    let verified = json(cosign_in(&verify).as_bytes());
    let digest = reference.rsplit_once('@').unwrap().1;
    assert_eq!(
        verified[0]["critical"]["image"]["docker-manifest-digest"], digest,
        "{verified}"
    );
    let kinds = oras_referrers(&oras, &["--plain-http"], &reference);
    assert_eq!(kinds, [SPDX, IN_TOTO], "oras discover {reference}");
}

/// A registry with the OCI referrers API (`scripts/e2e/referrers-registry`, in memory), on a
/// free loopback port, stopped (by its PID) when dropped.
struct ReferrersRegistry {
    child: std::process::Child,
    address: String,
}

impl ReferrersRegistry {
    /// Started, or `None` with a note when it cannot be built here (a failure under `CI`).
    fn start() -> Option<ReferrersRegistry> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/e2e/sbom-tools.sh");
        let built = Process::new("bash")
            .arg(script)
            .arg("referrers-registry")
            .output()
            .expect("bash");
        let path = String::from_utf8_lossy(&built.stdout).trim().to_string();
        if !built.status.success() || !Path::new(&path).is_file() {
            let said = String::from_utf8_lossy(&built.stderr).into_owned();
            return common::e2e::missing(&format!("no referrers registry: {said}"));
        }
        let mut child = Process::new(path)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start the referrers registry");
        let mut port = String::new();
        let stdout = child.stdout.take().expect("stdout");
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut port)
            .expect("its port");
        let address = format!("127.0.0.1:{}", port.trim());
        Some(ReferrersRegistry { child, address })
    }

    /// GET `path` of its `/v2/` API: the JSON body (a 200 asserted).
    fn get(&self, path: &str) -> Value {
        let url = format!("http://{}/v2/{path}", self.address);
        json(
            output(Process::new("curl").args([
                "-sf",
                "-H",
                &format!("Accept: {INDEX}, {MANIFEST}"),
                &url,
            ]))
            .as_bytes(),
        )
    }
}

impl ReferrersRegistry {
    /// The artifact types of the manifests its referrers API lists for `digest`, read from
    /// each manifest (its listing gives the config's media type, not the manifest's
    /// `artifactType`), sorted.
    fn referrers(&self, repository: &str, digest: &str) -> Vec<String> {
        let listed = self.get(&format!("{repository}/referrers/{digest}"));
        let mut kinds: Vec<String> = listed["manifests"]
            .as_array()
            .expect("manifests")
            .iter()
            .map(|m| {
                let at = m["digest"].as_str().expect("digest");
                let manifest = self.get(&format!("{repository}/manifests/{at}"));
                assert_eq!(manifest["subject"]["digest"], digest, "{manifest}");
                manifest["artifactType"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect();
        kinds.sort();
        kinds
    }
}

impl Drop for ReferrersRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A registry with the referrers API lists the artifacts itself: the SBOM and the
/// provenance of a cold build (uv) and of a fast-path build, and the dependency image's
/// SBOM, are found by its API, and no referrers tag is written. The artifacts' manifests
/// wait for the image's push there (the API lists a manifest as soon as it is pushed). That
/// registry answers a manifest pushed by digest without a `Location` header, as ECR does:
/// the pushes go through (oci-client's push panicked on that answer).
#[test]
fn a_registry_with_the_referrers_api_lists_the_artifacts_itself() {
    let Some(env) = common::e2e::services() else {
        return;
    };
    let Some(registry) = ReferrersRegistry::start() else {
        return;
    };
    let base = format!("{}/debian-python:bookworm", registry.address);
    output(Process::new("skopeo").args([
        "copy",
        "-q",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        &format!("docker://{}", env.base_python),
        &format!("docker://{base}"),
    ]));
    let dir = project(&env, "h-sbom-api", "import six\n", "packages = [\"six\"]");
    let proj = dir.path();
    let spec = std::fs::read_to_string(proj.join("spec.toml")).expect("spec");
    let spec = spec.replace(&env.base_python, &base).replace(
        &format!("registry = \"{}\"", env.registry),
        &format!("registry = \"{}\"", registry.address),
    );
    std::fs::write(proj.join("spec.toml"), spec).expect("spec");
    for round in ["cold", "fast path"] {
        if round == "fast path" {
            std::fs::write(proj.join("src/main.py"), "import six  # changed\n").expect("source");
        }
        let result = build(proj, &env, Some(NO_DAEMON), &["spec.toml"]);
        assert_eq!(result["action"], "appended", "{round}: {result}");
        let image = result["image"].as_str().expect("image").to_string();
        let digest = result["digest"].as_str().expect("digest");
        let repository = repository(&image);
        let kinds = registry.referrers(repository, digest);
        assert_eq!(kinds, [SPDX, IN_TOTO], "{round}");
        let tags = registry.get(&format!("{repository}/tags/list"));
        let tags: Vec<&str> = tags["tags"]
            .as_array()
            .expect("tags")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert!(
            !tags.iter().any(|t| t.starts_with("sha256-")),
            "{round}: no referrers tag: {tags:?}"
        );
        let deps = tags
            .iter()
            .find(|t| t.starts_with("deps-"))
            .expect("the dependency image");
        let deps_digest = output(Process::new("skopeo").args([
            "inspect",
            "--tls-verify=false",
            "--format",
            "{{.Digest}}",
            &format!("docker://{}/{repository}:{deps}", registry.address),
        ]));
        let deps_kinds = registry.referrers(repository, deps_digest.trim());
        assert_eq!(deps_kinds, [SPDX], "{round}: the dependency image's SBOM");
    }
}
