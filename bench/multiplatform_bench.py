#!/usr/bin/env python3
"""Benchmark: one platform against two (linux/amd64 + linux/arm64, arm64 under qemu).

The same spec (apt package, Python package, env, 50 source files) built by imagespec for
`linux/amd64` and for `linux/amd64,linux/arm64`, on the two-platform base of the e2e
harness:

- dependencies changed: the dependency image is built (per platform) and pushed, then the
  source appended. The BuildKit cache is shared with other users of this dockerd and is not
  pruned: the apt step is kept out of it by repeating its package a run-specific number of
  times (`apt-get install jq jq …`), the later steps by a new `env` value;
- one source file changed: appended in the registry to every platform (no daemon).

Also reports the apt and uv steps' own times per platform (from `--json` step events): what
emulation costs. Writes the table into docs/benchmarks.md (between the multiplatform-bench
markers). Needs the e2e services and the two-platform base:
scripts/e2e/up.sh && scripts/e2e/base-images.sh.
"""
import argparse
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tag_bench import REPO, write_section  # noqa: E402

BASE = os.environ.get("IMAGESPEC_E2E_BASE_PYTHON_MULTI", "localhost:5000/debian-python-multi:bookworm")
UV = os.environ.get("IMAGESPEC_E2E_UV_IMAGE", "localhost:5000/uv:0.5")
NO_DAEMON = "unix:///nonexistent/docker.sock"
PLATFORMS = ["linux/amd64", "linux/amd64,linux/arm64"]


def spec_text(name: str, platforms: str, run_id: str, apt_repeat: int) -> str:
    apt = ", ".join(['"jq"'] * apt_repeat)
    return f'''name = "{name}"
registry = "localhost:5000"
base_image = "{BASE}"
platform = "{platforms}"
apt_packages = [{apt}]
packages = ["pyyaml"]
env = {{ RUN_ID = "{run_id}" }}
source_root = "src"
source_copy_mode = "all"
builder_config = {{ uv_image = "{UV}" }}
builder_options = {{ add_flytekit = false }}
'''


def write_sources(root: Path) -> None:
    for i in range(50):
        d = root / "src" / f"pkg{i // 10}"
        d.mkdir(parents=True, exist_ok=True)
        (d / "__init__.py").write_text("")
        (d / f"mod{i}.py").write_text(f"X = {i}\n")


def build(binary: str, proj: Path, env: dict) -> tuple[float, list]:
    t0 = time.perf_counter()
    out = subprocess.run([binary, "build", "--json", "spec.toml"], cwd=proj, env=env,
                         capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if out.returncode != 0:
        raise SystemExit(f"build failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    events = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    return elapsed, events


def step_seconds(events: list, needle: str) -> dict:
    """Seconds of the first finished, uncached step whose name holds `needle`, per platform."""
    found = {}
    for e in events:
        if e.get("event") == "step" and e.get("state") == "done" and not e.get("cached") \
                and needle in e.get("name", ""):
            found.setdefault(e.get("platform", "linux/amd64"), e["seconds"])
    return found


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "-q"], cwd=REPO, check=True)
    binary = str(REPO / "target" / "release" / "imagespec")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLYTE")}
    env["IMAGESPEC_NO_CACHE"] = "1"
    results, steps = {}, {}
    work = Path(tempfile.mkdtemp(prefix="imagespec-multiplatform-bench-"))
    try:
        for platforms in PLATFORMS:
            proj = work / str(len(platforms.split(",")))
            proj.mkdir()
            write_sources(proj)
            run_id = f"mp-{time.time_ns()}"
            (proj / "spec.toml").write_text(
                spec_text(f"bench-mp-{len(platforms.split(','))}", platforms, run_id,
                          random.randint(2, 400)))
            cold, events = build(binary, proj, env)
            result = events[-1]
            assert result["strategy"] == "build_dependencies_then_append", result
            steps[platforms] = {"apt": step_seconds(events, "apt-get update"),
                                "uv": step_seconds(events, "uv pip install")}
            change_env = dict(env, DOCKER_HOST=NO_DAEMON)
            change = []
            for r in range(args.runs):
                (proj / "src" / "pkg0" / "mod0.py").write_text(f"X = {time.time_ns()}\n")
                t, events = build(binary, proj, change_env)
                assert events[-1]["strategy"] == "append", events[-1]
                change.append(t)
            # From outside: the image is there, an index for two platforms.
            image = events[-1]["image"]
            raw = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{image}"],
                                 check=True, capture_output=True, text=True).stdout
            assert ("manifests" in json.loads(raw)) == ("," in platforms), raw[:200]
            results[platforms] = {"cold": cold, "change": statistics.median(change)}
            print(platforms, {k: round(v, 3) for k, v in results[platforms].items()}, steps[platforms], flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    one, two = results[PLATFORMS[0]], results[PLATFORMS[1]]
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} on {platform.machine()}, {os.cpu_count()} cores, "
        f"dockerd 20.10 (BuildKit, arm64 under qemu-user-static 7.2) and a loopback registry; "
        f"dependencies changed: one run each; code change: median of {args.runs}.",
        "",
        "| scenario | linux/amd64 | linux/amd64 + linux/arm64 | two platforms / one |",
        "|---|---:|---:|---:|",
        f"| dependencies changed (dependency image built and pushed, source appended) | "
        f"{one['cold']:.1f} s | {two['cold']:.1f} s | {two['cold'] / one['cold']:.1f}× |",
        f"| one source file changed (registry fast path, no daemon) | "
        f"{one['change']:.2f} s | {two['change']:.2f} s | {two['change'] / one['change']:.1f}× |",
        "",
        "| step (two-platform build) | linux/amd64 | linux/arm64 (qemu) | arm64 / amd64 |",
        "|---|---:|---:|---:|",
    ]
    for name, label in (("apt", "`apt-get update && apt-get install jq`"),
                        ("uv", "`uv venv` + `uv pip install pyyaml` (bytecode compiled)")):
        s = steps[PLATFORMS[1]][name]
        amd, arm = s.get("linux/amd64"), s.get("linux/arm64")
        if amd and arm:
            lines.append(f"| {label} | {amd:.1f} s | {arm:.1f} s | {arm / amd:.1f}× |")
    table = "\n".join(lines)
    print(table)
    if not args.no_write:
        write_section(REPO / "docs" / "benchmarks.md", "multiplatform-bench", table)


if __name__ == "__main__":
    main()
