#!/usr/bin/env python3
"""Benchmark: a pip-only spec built and pushed by flytekit 1.16's default builder (spelled
out as in build_bench.py: should_build, create_docker_context, docker build, docker push)
and by imagespec without a daemon (the dependency image made by uv on the host, then the
source appended), both sides from the same cache state, in one run:

  cold  new spec, no package cache on either side: BuildKit's cache pruned (`docker builder
        prune -af`: its layer records and its uv cache mount); imagespec's uv cache, layer
        cache and kept venvs removed
  warm  new spec, package caches kept on both sides: BuildKit's layer records pruned
        (`--filter type=regular`), its uv cache mount kept; imagespec's layer cache and kept
        venvs removed, its uv cache kept
  add   one package added to the warm build's spec (same repository), the caches as that
        build left them

Every run has a new repository and a new `RUN_ID` in `env`; one untimed build first fills
each side's caches. `--with-docker` adds imagespec through dockerd (`--no-daemonless`).

Beside each time, the floor of this machine measured in the same run: bytes downloaded
(the installed wheels' sizes, from PyPI's JSON API) / the download rate (a large wheel
fetched from files.pythonhosted.org), the bytes to compress (the venv's files) / the
compression rate (zlib level 1 as the layers use, one core, times the cores), bytes
uploaded (the dependency image's new layers, from the registry) / the upload rate (a blob
pushed to the local registry); for `add`, the two index round trips (dry run, install) a
change needs instead of the download. The floor is their sum: the time with nothing but
the data moved, one stage after the other.
Writes the table into docs/benchmarks.md (between the daemonless-bench markers).
Needs the e2e services and uv: scripts/e2e/up.sh, base-images.sh, uv.sh.
"""
import argparse
import concurrent.futures
import hashlib
import io
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_bench import BASE, FLYTEKIT_BUILD, UV, timed  # noqa: E402
from tag_bench import FLYTEKIT, REPO, venv_python, write_section  # noqa: E402

UV_BIN = os.environ.get("IMAGESPEC_UV", "/var/cache/imagespec-e2e/uv-0.5.1/bin/uv")
REGISTRY = "localhost:5000"
PACKAGES = ["requests", "pyyaml", "flytekit==1.16.31"]
# Not in flytekit's dependencies: the venv really changes.
ADDED = "pyfiglet"
ACCEPT = ", ".join([
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
])


def spec_text(name: str, run_id: str, packages: list[str]) -> str:
    quoted = ", ".join(f'"{p}"' for p in packages)
    return f'''name = "{name}"
registry = "{REGISTRY}"
base_image = "{BASE}"
python_exec = "/usr/bin/python3"
packages = [{quoted}]
env = {{ RUN_ID = "{run_id}" }}
source_root = "."
source_copy_mode = "all"
builder_config = {{ uv_image = "{UV}", micromamba_image = "{BASE}" }}
'''


def make_project(root: Path, name: str, run_id: str, packages: list[str]) -> None:
    (root / "wf").mkdir(parents=True, exist_ok=True)
    for i in range(50):
        (root / "wf" / f"task{i}.py").write_text(f"def task{i}():\n    return {i}\n")
    (root / "spec.toml").write_text(spec_text(name, run_id, packages))


def prune(tool: str, cache: Path, keep_packages: bool) -> None:
    """The cache state of a scenario: `keep_packages` keeps the package caches (BuildKit's
    cache mounts, imagespec's uv cache), everything else of either side is removed."""
    if tool == "uv":
        for sub in ["layers", "layer-keys", "staging"] + ([] if keep_packages else ["uv"]):
            shutil.rmtree(cache / sub, ignore_errors=True)
        return
    cmd = ["/usr/bin/docker", "builder", "prune", "-af"]
    if keep_packages:
        cmd += ["--filter", "type=regular"]
    subprocess.run(cmd, check=True, capture_output=True)


def get(url: str, headers: dict | None = None) -> bytes:
    req = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(req, timeout=60) as r:
        return r.read()


def manifest_layers(repo: str, tag: str) -> list[tuple[str, int]]:
    m = json.loads(get(f"http://{REGISTRY}/v2/{repo}/manifests/{tag}", {"Accept": ACCEPT}))
    return [(layer["digest"], layer["size"]) for layer in m["layers"]]


def deps_tag(repo: str) -> str:
    tags = json.loads(get(f"http://{REGISTRY}/v2/{repo}/tags/list"))["tags"]
    return next(t for t in tags if t.startswith("deps-"))


def simple_files(name: str) -> list[dict]:
    """A project's files on PyPI's simple index (JSON: names, sizes, URLs)."""
    page = get(f"https://pypi.org/simple/{name}/", {"Accept": "application/vnd.pypi.simple.v1+json"})
    return json.loads(page)["files"]


def download_rate() -> float:
    """Bytes per second of a large wheel (botocore's newest) from PyPI's file host."""
    url = [f["url"] for f in simple_files("botocore") if f["filename"].endswith(".whl")][-1]
    t0 = time.perf_counter()
    n = len(get(url))
    return n / (time.perf_counter() - t0)


def index_round_trip() -> float:
    """Seconds of one PyPI simple-index request (what uv revalidates per package)."""
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        get("https://pypi.org/simple/requests/", {"Accept": "application/vnd.pypi.simple.v1+json"})
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def wheel_bytes(pins: list[str]) -> int:
    """The sizes of the wheels uv downloads for `pins` (x86_64 manylinux, CPython 3.11)."""
    def size(pin: str) -> int:
        name, _, version = pin.partition("==")
        wheels = [f for f in simple_files(name)
                  if f["filename"].endswith(".whl") and f"-{version}-" in f["filename"]]
        fits = [f for f in wheels if ("x86_64" in f["filename"] and "manylinux" in f["filename"]
                                      and ("cp311" in f["filename"] or "abi3" in f["filename"]))]
        fits = fits or [f for f in wheels if f["filename"].endswith("-none-any.whl")] or wheels
        return min(f.get("size") or 0 for f in fits) if fits else 0
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        return sum(pool.map(size, [p for p in pins if "==" in p]))


def upload_rate() -> float:
    """Bytes per second of a 32 MiB blob pushed to the local registry (monolithic PUT)."""
    blob = os.urandom(32 << 20)
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    req = urllib.request.Request(f"http://{REGISTRY}/v2/bench-upload-rate/blobs/uploads/", method="POST")
    t0 = time.perf_counter()
    with urllib.request.urlopen(req) as r:
        location = r.headers["Location"]
    if location.startswith("/"):
        location = f"http://{REGISTRY}{location}"
    sep = "&" if "?" in location else "?"
    put = urllib.request.Request(f"{location}{sep}digest={digest}", data=blob, method="PUT",
                                 headers={"Content-Type": "application/octet-stream"})
    urllib.request.urlopen(put).read()
    return len(blob) / (time.perf_counter() - t0)


def venv_bytes(venv: Path) -> int:
    return sum(p.stat().st_size for p in venv.rglob("*") if p.is_file() and not p.is_symlink())


def compression_rate(venv: Path) -> float:
    """Bytes per second zlib level 1 (the layers' compressor and level) turns a tar of the
    venv's first 64 MiB into, on one core, times the cores (the layers' gzip is parallel)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for p in sorted(venv.rglob("*")):
            if buf.tell() > 64 << 20:
                break
            if p.is_file() and not p.is_symlink():
                tar.add(p, arcname=str(p.relative_to(venv)), recursive=False)
    data = buf.getvalue()
    t0 = time.perf_counter()
    c = zlib.compressobj(1, zlib.DEFLATED, 31)
    c.compress(data)
    c.flush()
    return len(data) / (time.perf_counter() - t0) * (os.cpu_count() or 1)


def kept_venv(cache: Path) -> tuple[Path, list[str]]:
    """The venv and pins the last daemonless build kept."""
    meta = next((cache / "staging" / "kept").glob("*/kept.json"))
    return meta.parent / "root" / ".venv", json.loads(meta.read_text())["pins"].splitlines()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--binary", default=None, help="imagespec binary (default: build --release)")
    ap.add_argument("--with-docker", action="store_true", help="also imagespec through dockerd")
    ap.add_argument("--only-uv", action="store_true", help="imagespec only (a check of the script)")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    if args.binary:
        binary = str(Path(args.binary).resolve())  # the builds run in their project dirs
    else:
        subprocess.run(["cargo", "build", "--release", "-q"], cwd=REPO, check=True)
        binary = str(REPO / "target" / "release" / "imagespec")
    py = str(venv_python())
    work = Path(tempfile.mkdtemp(prefix="imagespec-daemonless-bench-"))
    cache = work / "cache"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLYTE")}
    env.update(IMAGESPEC_UV=UV_BIN, IMAGESPEC_CACHE_DIR=str(cache))
    tools = {
        "flytekit": ([py, "-c", FLYTEKIT_BUILD], env),
        "uv": ([binary, "build", "-q", "spec.toml"], dict(env, DOCKER_HOST="unix:///nonexistent.sock")),
    }
    if args.only_uv:
        del tools["flytekit"]
    if args.with_docker:
        tools["docker"] = ([binary, "build", "-q", "--no-daemonless", "spec.toml"], env)
    results, loads, sizes = {}, [], {}
    try:
        for tool, (cmd, tool_env) in tools.items():
            proj = work / tool
            make_project(proj, f"bench-dl-{tool}", f"warm-{time.time_ns()}", PACKAGES)
            timed(cmd, proj, tool_env)  # fills the caches
            times = {"cold": [], "warm": [], "add": []}
            for _ in range(args.runs):
                for scenario in ("cold", "warm"):
                    prune(tool, cache, keep_packages=scenario == "warm")
                    run_id = f"r{time.time_ns()}"
                    name = f"bench-dl-{tool}-{run_id}"
                    make_project(proj, name, run_id, PACKAGES)
                    loads.append(os.getloadavg()[0])
                    times[scenario].append(timed(cmd, proj, tool_env)[0])
                    if tool == "uv":
                        sizes[scenario] = sum(s for _, s in manifest_layers(name, deps_tag(name)))
                # One package added to the warm build's spec: its repository, its caches.
                before = manifest_layers(name, deps_tag(name)) if tool == "uv" else []
                make_project(proj, name, run_id, PACKAGES + [ADDED])
                loads.append(os.getloadavg()[0])
                times["add"].append(timed(cmd, proj, tool_env)[0])
                if tool == "uv":
                    tags = json.loads(get(f"http://{REGISTRY}/v2/{name}/tags/list"))["tags"]
                    after = [t for t in tags if t.startswith("deps-")]
                    new = set()
                    for t in after:
                        new |= set(manifest_layers(name, t))
                    sizes["add"] = sum(s for d, s in new - set(before))
            results[tool] = {k: statistics.median(v) for k, v in times.items()}
            print(tool, {k: [round(t, 2) for t in v] for k, v in times.items()}, flush=True)
        base_layers = set(manifest_layers(BASE.split("/", 1)[1].split(":")[0], BASE.split(":")[-1]))
        base_bytes = sum(s for _, s in base_layers)
        venv, pins = kept_venv(cache)
        floor = {
            "download": wheel_bytes(pins), "download_rate": download_rate(),
            "rtt": index_round_trip(), "upload_rate": upload_rate(),
            "raw": venv_bytes(venv), "compress_rate": compression_rate(venv),
        }
        figlet = next(venv.glob("lib/python*/site-packages/pyfiglet"))
        floor["raw_add"] = venv_bytes(figlet)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({"floor": floor, "uploaded": sizes}), flush=True)
    MB = 1e6
    # Uploaded: the dependency image's layers but the base's (in the registry already).
    up = {k: max(v - (base_bytes if k != "add" else 0), 0) for k, v in sizes.items()}
    parts = {
        "cold": [floor["download"] / floor["download_rate"], floor["raw"] / floor["compress_rate"],
                 up["cold"] / floor["upload_rate"]],
        "warm": [0.0, floor["raw"] / floor["compress_rate"], up["warm"] / floor["upload_rate"]],
        "add": [2 * floor["rtt"], floor["raw_add"] / floor["compress_rate"], up["add"] / floor["upload_rate"]],
    }
    if "flytekit" not in results:
        print(results, parts)
        return
    f, u = results["flytekit"], results["uv"]
    lo, hi = min(loads), max(loads)
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} on {platform.machine()}, {os.cpu_count()} cores, load "
        f"{lo:.1f}–{hi:.1f} during the builds, dockerd 20.10 "
        f"(BuildKit) and a local registry; flytekit {FLYTEKIT.split('==')[1]}; "
        f"uv {subprocess.run([UV_BIN, '--version'], capture_output=True, text=True).stdout.split()[1]}; "
        f"median of {args.runs}; release binary. Floor = download + compression + upload at this "
        f"machine's measured rates: PyPI {floor['download_rate'] / MB:.1f} MB/s "
        f"({floor['download'] / MB:.0f} MB of wheels; an index round trip {floor['rtt'] * 1000:.0f} ms), "
        f"zlib level 1 {floor['compress_rate'] / MB:.0f} MB/s over {os.cpu_count()} cores "
        f"({floor['raw'] / MB:.0f} MB of venv), registry upload {floor['upload_rate'] / MB:.0f} MB/s.",
        "",
        "| scenario | flytekit default builder | imagespec without a daemon | share of flytekit's time | speed-up | floor (download + compress + upload) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    labels = (
        ("cold", "new spec, **no package cache on either side**"),
        ("warm", "new spec, package caches kept on both sides"),
        ("add", "one package added (caches as the warm build left them)"),
    )
    for key, label in labels:
        p = parts[key]
        first = "index" if key == "add" else "download"
        lines.append(
            f"| {label} | {f[key]:.2f} s | {u[key]:.2f} s | {u[key] / f[key]:.2f}× | {f[key] / u[key]:.1f}× "
            f"| {sum(p):.2f} s ({first} {p[0]:.2f} + {p[1]:.2f} + {p[2]:.2f}) |"
        )
    if "docker" in results:
        d = results["docker"]
        lines.append("")
        lines.append("imagespec through dockerd (`--no-daemonless`): " + ", ".join(
            f"{k} {d[k]:.2f} s" for k, _ in labels))
    table = "\n".join(lines)
    print(table)
    if not args.no_write:
        write_section(REPO / "docs" / "benchmarks.md", "daemonless-bench", table)


if __name__ == "__main__":
    main()
