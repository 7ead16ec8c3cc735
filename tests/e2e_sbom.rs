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
    let out = output(
        Process::new(oras)
            .args(["discover", "--format", "json"])
            .args(args)
            .arg(reference),
    );
    json(out.as_bytes())["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .filter(|m| m["artifactType"] == SPDX)
        .map(|m| m["digest"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).expect("json")
}

/// The repository of `image` in the registry (`localhost:5000/x:t` → `x`).
fn repository(image: &str) -> &str {
    let path = image.split_once('/').expect("registry/name").1;
    path.rsplit_once(':').map_or(path, |(r, _)| r)
}

/// The SBOM attached to `digest` in `repository`, read as a client without the referrers API
/// reads it: the referrers tag's index, the artifact manifest, its blob. Asserts the
/// artifact's shape on the way; the document's bytes.
fn attached_sbom(env: &Services, repository: &str, digest: &str) -> Vec<u8> {
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
        .filter(|m| m["artifactType"] == SPDX)
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
    assert_eq!(artifact["artifactType"], SPDX, "{artifact}");
    assert_eq!(artifact["subject"]["digest"], digest, "{artifact}");
    assert_eq!(
        artifact["config"]["mediaType"],
        "application/vnd.oci.empty.v1+json"
    );
    let layer = &artifact["layers"][0];
    assert_eq!(layer["mediaType"], SPDX, "{artifact}");
    get(
        env,
        &format!("{repository}/blobs/{}", layer["digest"].as_str().unwrap()),
        "*/*",
    )
    .expect("the SBOM blob")
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
    let out = imagespec_in(proj)
        .args(["sbom", image])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = out.stdout;
    assert_eq!(
        printed.strip_suffix(b"\n").unwrap_or(&printed),
        document,
        "imagespec sbom prints it"
    );
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
    let artifact = json(&blob(named));
    assert_eq!(artifact["artifactType"], SPDX, "{artifact}");
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
    }
}
