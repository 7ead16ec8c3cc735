#!/usr/bin/env python3
"""Benchmark: a code-only change of 1,000 files / ~5 MB, shipped to the registry.

flytekit 1.16's default builder rebuilds (`docker build` reusing the BuildKit cache for the
dependency steps, then `docker push`); imagespec appends one source layer to the dependency
image directly in the registry (no daemon). Same spec for both (as in build_bench.py, without
`commands`, which would make imagespec rebuild too), same change, one run.

Scenario (median of --runs): every one of the 1,000 source files is rewritten with new
content (~5 KB each), then the tool builds and pushes the image.
Writes the table into docs/benchmarks.md (between the fast-path-bench markers).
Needs the e2e services: scripts/e2e/up.sh && scripts/e2e/base-images.sh.
"""
import argparse
import os
import platform
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tag_bench import REPO, FLYTEKIT, write_section  # noqa: E402
from build_bench import FLYTEKIT_BUILD, BASE, UV, setup, timed  # noqa: E402

FILES = 1000
FILE_BYTES = 5000


def spec_text(name: str, run_id: str) -> str:
    return f'''name = "{name}"
registry = "localhost:5000"
base_image = "{BASE}"
python_exec = "/usr/bin/python3"
packages = ["pyyaml", "flytekit==1.16.31"]
env = {{ RUN_ID = "{run_id}" }}
source_root = "."
source_copy_mode = "all"
builder_config = {{ uv_image = "{UV}", micromamba_image = "{BASE}" }}
'''


def write_sources(root: Path) -> None:
    for i in range(FILES):
        d = root / "wf" / f"pkg{i // 100}"
        d.mkdir(parents=True, exist_ok=True)
        body = secrets.token_hex(FILE_BYTES // 2 - 40)
        (d / f"mod{i}.py").write_text(f"DATA = {body!r}\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    binary, py, env = setup()
    run_id = f"fp-{time.time_ns()}"
    results = {}
    work = Path(tempfile.mkdtemp(prefix="imagespec-fast-path-bench-"))
    try:
        for tool in ("flytekit", "imagespec"):
            proj = work / tool
            proj.mkdir()
            (proj / "spec.toml").write_text(spec_text(f"bench-fp-{tool}", run_id))
            cmd = [py, "-c", FLYTEKIT_BUILD] if tool == "flytekit" else [binary, "build", "-q", "spec.toml"]
            write_sources(proj)
            timed(cmd, proj, env)  # the first build: dependencies in place for both
            times = []
            for _ in range(args.runs):
                write_sources(proj)
                t, image = timed(cmd, proj, env)
                times.append(t)
            # From outside: the pushed image is there and has the last change.
            subprocess.run(["skopeo", "inspect", "--tls-verify=false", f"docker://{image}"], check=True, capture_output=True)
            results[tool] = statistics.median(times)
            print(tool, round(results[tool], 3), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    f, i = results["flytekit"], results["imagespec"]
    size = FILES * FILE_BYTES / 1e6
    table = "\n".join([
        f"Measured {time.strftime('%Y-%m-%d')} on {platform.machine()}, {os.cpu_count()} cores, dockerd 20.10 and a loopback "
        f"registry; flytekit {FLYTEKIT.split('==')[1]}; median of {args.runs}.",
        "",
        "| scenario | flytekit default builder (rebuild + push) | imagespec (registry fast path) | speed-up |",
        "|---|---:|---:|---:|",
        f"| {FILES:,} source files (~{size:.0f} MB) changed | {f:.2f} s | {i:.2f} s | {f / i:.1f}× |",
    ])
    print(table)
    if not args.no_write:
        write_section(REPO / "docs" / "benchmarks.md", "fast-path-bench", table)


if __name__ == "__main__":
    main()
