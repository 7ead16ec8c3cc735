#!/usr/bin/env python3
"""Benchmark: build + push, imagespec vs flytekit 1.16's default builder, in one run.

The same spec for both tools. flytekit cannot `--push` without buildx, so its side is what
its builder does, spelled out: import flytekit, decide with `should_build` (exist()), render
with `create_docker_context`, `docker build` (Debian's 20.10 CLI, BuildKit), `docker push`.
Two adaptations let flytekit's Dockerfile build without Docker Hub/ghcr.io, applied to both
tools alike: `builder_config` names local uv and micromamba images, and the `#syntax=` line
(which pulls a frontend from Docker Hub) is removed. `python_exec` is set so neither tool
needs a conda channel.

Scenarios (median of --runs):
  cold     BuildKit cache and images pruned, new spec id (full build + push)
  noop     the image exists: the decision only
  change   one source file changed since the last build (rebuild + push)
Writes the table into docs/benchmarks.md (between the build-bench markers).
Needs the e2e services: scripts/e2e/up.sh && scripts/e2e/base-images.sh.
"""
import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tag_bench import REPO, FLYTEKIT, venv_python, write_section  # noqa: E402

DOCKER = "/usr/bin/docker"
BASE = os.environ.get("IMAGESPEC_E2E_BASE_PYTHON", "localhost:5000/debian-python:bookworm")
UV = os.environ.get("IMAGESPEC_E2E_UV_IMAGE", "localhost:5000/uv:0.5")

FLYTEKIT_BUILD = r'''
import os, re, subprocess, sys, tempfile, time, tomllib
from pathlib import Path
t0 = time.perf_counter()
from flytekit.image_spec import ImageSpec
from flytekit.image_spec.default_builder import create_docker_context, DefaultImageBuilder
d = tomllib.load(open("spec.toml", "rb"))
spec = ImageSpec(**d)
builder = DefaultImageBuilder()
if builder.should_build(spec):
    with tempfile.TemporaryDirectory() as tmp:
        create_docker_context(spec, Path(tmp))
        df = Path(tmp, "Dockerfile")
        df.write_text(re.sub(r"^#syntax=.*\n", "", df.read_text()))
        env = dict(os.environ, DOCKER_BUILDKIT="1")
        subprocess.run(["/usr/bin/docker", "build", "-q", "--tag", spec.image_name(), "--platform", spec.platform, tmp], check=True, env=env, stdout=subprocess.DEVNULL)
        subprocess.run(["/usr/bin/docker", "push", "-q", spec.image_name()], check=True, stdout=subprocess.DEVNULL)
print(spec.image_name())
'''


def spec_text(run_id: str, name: str) -> str:
    return f'''name = "{name}"
registry = "localhost:5000"
base_image = "{BASE}"
python_exec = "/usr/bin/python3"
apt_packages = ["jq"]
packages = ["requests", "pyyaml", "flytekit==1.16.31"]
env = {{ RUN_ID = "{run_id}" }}
commands = ["python -c 'import flytekit'"]
source_root = "."
source_copy_mode = "all"
builder_config = {{ uv_image = "{UV}", micromamba_image = "{BASE}" }}
'''


def make_project(root: Path, name: str, run_id: str) -> None:
    (root / "wf").mkdir(parents=True, exist_ok=True)
    for i in range(50):
        (root / "wf" / f"task{i}.py").write_text(f"def task{i}():\n    return {i}\n")
    (root / "spec.toml").write_text(spec_text(run_id, name))


def prune() -> None:
    subprocess.run([DOCKER, "builder", "prune", "-af"], check=True, capture_output=True)
    out = subprocess.run([DOCKER, "images", "--format", "{{.Repository}}:{{.Tag}}"], capture_output=True, text=True).stdout
    victims = [i for i in out.split() if "/bench-" in i]
    if victims:
        subprocess.run([DOCKER, "rmi", "-f", *victims], capture_output=True)


def timed(cmd, cwd, env=None) -> tuple[float, str]:
    t0 = time.perf_counter()
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{cmd[:2]} failed:\n{out.stdout}\n{out.stderr}")
    return time.perf_counter() - t0, out.stdout.strip().splitlines()[-1]


def setup() -> tuple[str, str, dict]:
    """The release binary (built now), flytekit's venv python, and an environment without
    FLYTE_* variables and without imagespec's digest cache (both tools start cold)."""
    subprocess.run(["cargo", "build", "--release", "-q"], cwd=REPO, check=True)
    binary = str(REPO / "target" / "release" / "imagespec")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLYTE")}
    env["IMAGESPEC_NO_CACHE"] = "1"
    return binary, str(venv_python()), env


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--cold-runs", type=int, default=1)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    binary, py, env = setup()
    results = {}
    work = Path(tempfile.mkdtemp(prefix="imagespec-build-bench-"))
    try:
        for tool in ("flytekit", "imagespec"):
            proj = work / tool
            cmd = [py, "-c", FLYTEKIT_BUILD] if tool == "flytekit" else [binary, "build", "-q", "spec.toml"]
            cold, noop, change = [], [], []
            for r in range(args.cold_runs):
                prune()
                make_project(proj, f"bench-{tool}", f"cold-{time.time_ns()}")
                t, image = timed(cmd, proj, env)
                cold.append(t)
            for r in range(args.runs):
                t, image2 = timed(cmd, proj, env)
                assert image2 == image, (image, image2)
                noop.append(t)
            for r in range(args.runs):
                (proj / "wf" / "task0.py").write_text(f"def task0():\n    return {time.time_ns()}\n")
                t, _ = timed(cmd, proj, env)
                change.append(t)
            results[tool] = {k: statistics.median(v) for k, v in dict(cold=cold, noop=noop, change=change).items()}
            print(tool, {k: round(v, 3) for k, v in results[tool].items()}, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    f, i = results["flytekit"], results["imagespec"]
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} on {platform.machine()}, {os.cpu_count()} cores, dockerd 20.10 (BuildKit) and a "
        f"local registry; flytekit {FLYTEKIT.split('==')[1]}; cold: median of {args.cold_runs}, others: median of {args.runs}.",
        "",
        "| scenario | flytekit default builder | imagespec | imagespec time as a share of flytekit's | speed-up |",
        "|---|---:|---:|---:|---:|",
    ]
    for key, label in (("cold", "cold build + push"), ("noop", "no-op (image exists)"), ("change", "one source file changed")):
        lines.append(f"| {label} | {f[key]:.2f} s | {i[key]:.2f} s | {i[key] / f[key]:.2f}× | {f[key] / i[key]:.1f}× |")
    table = "\n".join(lines)
    print(table)
    if not args.no_write:
        write_section(REPO / "docs" / "benchmarks.md", "build-bench", table)


if __name__ == "__main__":
    main()
