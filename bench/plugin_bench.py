#!/usr/bin/env python3
"""Benchmark: `pyflyte package` of a small Flyte project with flytekit 1.16's default builder
vs with the imagespec plugin, in one run: cold, no-op (images exist) and one source file
changed.

The project (two task images: one on a nested base spec, one with `source_root`) is made
in a temporary directory. flytekit's default builder runs `docker build --push` with a
`#syntax=` line, which needs buildx and Docker Hub: `bench/docker-shim/docker` (first on
PATH for flytekit's side only) does the same with Debian's docker 20.10 CLI (BuildKit build,
then `docker push`). Both sides get specs that build without a conda channel or ghcr.io
(`python_exec`, local uv/micromamba images in `builder_config`).

Writes the table into docs/benchmarks.md (between the plugin-bench markers).
Needs the e2e services and the plugin venv: scripts/e2e/up.sh, base-images.sh, plugin.sh.
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
from build_bench import BASE, UV, prune  # noqa: E402

PLUGIN_VENV = Path(os.environ.get("IMAGESPEC_PLUGIN_VENV", "/var/cache/imagespec-e2e/plugin-venv"))

WF = '''import os
from flytekit import ImageSpec, task, workflow
from flytekit.image_spec.image_spec import CopyFileDetection
from workflows import helper

RUN = "{run}"
CFG = {{"uv_image": "{uv}", "micromamba_image": "{base}"}}
B = {builder!r}  # the builder under test (not part of the image name)
base = ImageSpec(name="{prefix}-base", registry="localhost:5000", base_image="{base}", python_exec="/usr/bin/python3", builder=B,
                 packages=["pyyaml"], env={{"RUN_ID": RUN}}, builder_config=CFG)
app = ImageSpec(name="{prefix}-app", registry="localhost:5000", base_image=base, python_exec="/usr/bin/python3", builder=B,
                packages=["six"], builder_config=CFG)
src = ImageSpec(name="{prefix}-src", registry="localhost:5000", base_image="{base}", python_exec="/usr/bin/python3", builder=B,
                source_root="{root}", source_copy_mode=CopyFileDetection.ALL, env={{"RUN_ID": RUN}}, builder_config=CFG)


@task(container_image=app)
def a(x: int) -> int:
    return helper.f(x)


@task(container_image=src)
def b(x: int) -> int:
    return x * 2


@workflow
def wf(x: int = 1) -> int:
    return b(x=a(x=x))
'''


def make_project(root: Path, prefix: str, run: str, builder: str) -> None:
    (root / "workflows").mkdir(parents=True, exist_ok=True)
    (root / "workflows" / "__init__.py").write_text("")
    (root / "workflows" / "helper.py").write_text("def f(x):\n    return x + 1\n")
    (root / "workflows" / "wf.py").write_text(WF.format(run=run, uv=UV, base=BASE, prefix=prefix, root=root, builder=builder))


def package_output(python: Path, project: Path, env: dict) -> str:
    """`pyflyte package`'s output (it must succeed)."""
    pyflyte = python.parent / "pyflyte"
    out = subprocess.run([str(pyflyte), "--pkgs", "workflows", "package", "-f", "--output", str(project.parent / f"{project.name}.tgz")],
                         cwd=project, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"pyflyte package failed in {project}:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return out.stdout + out.stderr


def package(python: Path, project: Path, env: dict, builds: int | None = None) -> float:
    """Wall time of `pyflyte package`; `builds`: how many images flytekit must find missing
    (checked in its output, so a no-op is one)."""
    t0 = time.perf_counter()
    # The package goes beside the project: inside it, it would be a new source file of the
    # image that copies the whole project, so every run would build that image again.
    said = package_output(python, project, env)
    elapsed = time.perf_counter() - t0
    built = said.count("not found. building")
    if builds is not None and built != builds:
        raise SystemExit(f"pyflyte package in {project} built {built} images, expected {builds}:\n{said[-3000:]}")
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    subprocess.run([str(REPO / "scripts" / "e2e" / "plugin.sh"), "--quiet"], check=True, capture_output=True)
    pythons = {"flytekit default builder": venv_python(), "imagespec plugin": PLUGIN_VENV / "bin" / "python"}
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("FLYTE")}
    work = Path(tempfile.mkdtemp(prefix="imagespec-plugin-bench-"))
    setups = {}
    for tool, python in pythons.items():
        env = dict(base_env)
        prefix = "bench-plug-default" if "default" in tool else "bench-plug-imagespec"
        if "default" in tool:
            env["PATH"] = f"{REPO / 'bench' / 'docker-shim'}:{env['PATH']}"
        setups[tool] = (python, work / prefix, env, prefix)
    times = {tool: {"noop": [], "change": []} for tool in pythons}
    try:
        for tool, (python, proj, env, prefix) in setups.items():
            prune()
            make_project(proj, prefix, f"cold-{time.time_ns()}", "default" if "default" in tool else "imagespec")
            times[tool]["cold"] = package(python, proj, env, builds=3)
        # One unmeasured change each: the second prune emptied the first side's build cache.
        for tool, (python, proj, env, _) in setups.items():
            (proj / "workflows" / "helper.py").write_text(f"def f(x):\n    return x + 1  # warm {time.time_ns()}\n")
            package(python, proj, env)
        # The warm runs alternate between the two sides, so that load from other work on the
        # machine falls on both alike.
        for _ in range(args.runs):
            for tool, (python, proj, env, _) in setups.items():
                times[tool]["noop"].append(package(python, proj, env, builds=0))
        for _ in range(args.runs):
            for tool, (python, proj, env, _) in setups.items():
                (proj / "workflows" / "helper.py").write_text(f"def f(x):\n    return x + 1  # {time.time_ns()}\n")
                times[tool]["change"].append(package(python, proj, env, builds=2))
        # A registration runner without Docker: DOCKER_HOST points nowhere. flytekit's default
        # builder cannot tell whether an image exists, assumes it does and builds nothing
        # (the package then names images that were never pushed); the plugin asks the
        # registry and appends the changed source there.
        nowhere = "unix:///nonexistent/docker.sock"
        python, proj, env, _ = setups["flytekit default builder"]
        (proj / "workflows" / "helper.py").write_text(f"def f(x):\n    return x + 1  # {time.time_ns()}\n")
        said = package_output(python, proj, dict(env, DOCKER_HOST=nowhere))
        assumed = said.count("assumes the image")
        if "not found. building" in said or assumed == 0:
            raise SystemExit(f"expected flytekit to assume the images exist without a daemon:\n{said[-3000:]}")
        print(f"flytekit default builder without a daemon: assumed {assumed} images exist, built none", flush=True)
        python, proj, env, _ = setups["imagespec plugin"]
        for _ in range(args.runs):
            (proj / "workflows" / "helper.py").write_text(f"def f(x):\n    return x + 1  # {time.time_ns()}\n")
            times["imagespec plugin"].setdefault("nodaemon", []).append(
                package(python, proj, dict(env, DOCKER_HOST=nowhere), builds=2))
            times["imagespec plugin"].setdefault("nodaemon_noop", []).append(
                package(python, proj, dict(env, DOCKER_HOST=nowhere), builds=0))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results = {tool: {"cold": t["cold"], "noop": statistics.median(t["noop"]), "change": statistics.median(t["change"])} for tool, t in times.items()}
    plugin_times = times["imagespec plugin"]
    nodaemon = statistics.median(plugin_times["nodaemon"])
    nodaemon_noop = statistics.median(plugin_times["nodaemon_noop"])
    for tool, r in results.items():
        print(tool, {k: round(v, 2) for k, v in r.items()}, flush=True)
    f, i = results["flytekit default builder"], results["imagespec plugin"]
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} on {platform.machine()}, {os.cpu_count()} cores, dockerd 20.10 and a loopback registry; "
        f"flytekit {FLYTEKIT.split('==')[1]}; cold: one run each (BuildKit cache pruned first), others: median of {args.runs}, the two sides alternating.",
        "",
        "| `pyflyte package` (3 images) | flytekit default builder | imagespec plugin | speed-up |",
        "|---|---:|---:|---:|",
    ]
    for key, label in (("cold", "cold"), ("noop", "no-op (images exist)"), ("change", "one source file changed")):
        lines.append(f"| {label} | {f[key]:.2f} s | {i[key]:.2f} s | {f[key] / i[key]:.1f}× |")
    # What the builder adds to a change, beyond pyflyte's own work (its no-op run).
    fb, ib = f["change"] - f["noop"], i["change"] - i["noop"]
    lines.append(f"| one file changed, the build's share (change − no-op) | {fb:.2f} s | {ib:.2f} s | {fb / ib:.1f}× |")
    lines.append(
        f"| one file changed, **no Docker daemon** (`DOCKER_HOST` nowhere) | cannot: assumes the images exist, builds nothing "
        f"| {nodaemon:.2f} s (the build's share: {nodaemon - nodaemon_noop:.2f} s) | — |")
    table = "\n".join(lines)
    print(table)
    if not args.no_write:
        write_section(REPO / "docs" / "benchmarks.md", "plugin-bench", table)


if __name__ == "__main__":
    main()
