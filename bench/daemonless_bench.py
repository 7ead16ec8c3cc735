#!/usr/bin/env python3
"""Benchmark: a pip-only spec's first build and a dependency change, in one run, three ways:
flytekit 1.16's default builder (spelled out as in build_bench.py: should_build,
create_docker_context, docker build, docker push), imagespec through dockerd
(`--no-daemonless`: the dependency image built by BuildKit, then the source appended), and
imagespec without a daemon (the dependency image made by uv on the host, then appended).

Scenarios (median of --runs; every run has a new repository and a new `RUN_ID` in `env`):
  first    a fresh runner: BuildKit's cache pruned (`docker builder prune -af`: its layers
           and its uv cache mount) for the two dockerd columns; for the daemonless one, a
           warm uv cache on the host (a CI cache of it) but no imagespec layer cache
           (`layers/` removed: every layer compressed and uploaded)
  add      one package added to the previous spec (a dependency change), same repository,
           the caches as the first build left them
One untimed build first fills the host's uv cache.
Writes the table into docs/benchmarks.md (between the daemonless-bench markers).
Needs the e2e services and uv: scripts/e2e/up.sh, base-images.sh, uv.sh.
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
from build_bench import BASE, FLYTEKIT_BUILD, UV, timed  # noqa: E402
from tag_bench import FLYTEKIT, REPO, venv_python, write_section  # noqa: E402

UV_BIN = os.environ.get("IMAGESPEC_UV", "/var/cache/imagespec-e2e/uv-0.5.1/bin/uv")
PACKAGES = ["requests", "pyyaml", "flytekit==1.16.31"]
# Not in flytekit's dependencies: the venv really changes.
ADDED = "pyfiglet"


def spec_text(name: str, run_id: str, packages: list[str]) -> str:
    quoted = ", ".join(f'"{p}"' for p in packages)
    return f'''name = "{name}"
registry = "localhost:5000"
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--binary", default=None, help="imagespec binary (default: build --release)")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    if args.binary:
        binary = args.binary
    else:
        subprocess.run(["cargo", "build", "--release", "-q"], cwd=REPO, check=True)
        binary = str(REPO / "target" / "release" / "imagespec")
    py = str(venv_python())
    work = Path(tempfile.mkdtemp(prefix="imagespec-daemonless-bench-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLYTE")}
    env.update(IMAGESPEC_UV=UV_BIN, IMAGESPEC_CACHE_DIR=str(work / "cache"))
    tools = {
        "flytekit": ([py, "-c", FLYTEKIT_BUILD], env),
        "docker": ([binary, "build", "-q", "--no-daemonless", "spec.toml"], env),
        "uv": ([binary, "build", "-q", "spec.toml"], dict(env, DOCKER_HOST="unix:///nonexistent.sock")),
    }
    results = {}
    try:
        for tool, (cmd, tool_env) in tools.items():
            proj = work / tool
            make_project(proj, f"bench-dl-{tool}", f"warm-{time.time_ns()}", PACKAGES)
            timed(cmd, proj, tool_env)  # warms the caches
            first, add = [], []
            for _ in range(args.runs):
                # A new repository: nothing of the image is in it yet.
                run_id = f"r{time.time_ns()}"
                name = f"bench-dl-{tool}-{run_id}"
                make_project(proj, name, run_id, PACKAGES)
                if tool == "uv":
                    shutil.rmtree(work / "cache" / "layers", ignore_errors=True)
                else:
                    subprocess.run(["/usr/bin/docker", "builder", "prune", "-af"],
                                   check=True, capture_output=True)
                first.append(timed(cmd, proj, tool_env)[0])
                make_project(proj, name, run_id, PACKAGES + [ADDED])
                add.append(timed(cmd, proj, tool_env)[0])
            results[tool] = dict(first=statistics.median(first), add=statistics.median(add))
            print(tool, {k: round(v, 2) for k, v in results[tool].items()}, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    f, d, u = results["flytekit"], results["docker"], results["uv"]
    load = os.getloadavg()[0]
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} on {platform.machine()}, {os.cpu_count()} cores (load "
        f"{load:.1f}), dockerd 20.10 (BuildKit) and a local registry; flytekit {FLYTEKIT.split('==')[1]}; "
        f"uv {subprocess.run([UV_BIN, '--version'], capture_output=True, text=True).stdout.split()[1]}; "
        f"first: fresh runner (BuildKit cache pruned; host uv cache warm, no layer cache); "
        f"add: caches as the first build left them; median of {args.runs}.",
        "",
        "| scenario | flytekit default builder | imagespec via dockerd | imagespec without a daemon | share of flytekit's time | speed-up |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for key, label in (("first", "dependencies + source, new spec"), ("add", "one package added")):
        lines.append(
            f"| {label} | {f[key]:.2f} s | {d[key]:.2f} s | {u[key]:.2f} s | {u[key] / f[key]:.2f}× | {f[key] / u[key]:.1f}× |"
        )
    table = "\n".join(lines)
    print(table)
    if not args.no_write:
        write_section(REPO / "docs" / "benchmarks.md", "daemonless-bench", table)


if __name__ == "__main__":
    main()
