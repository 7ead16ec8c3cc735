#!/usr/bin/env python3
"""Benchmark: what the SBOM (and the provenance attached with it) costs a build (issue #23).

One binary, one run, the same cache state for both sides: each scenario is built with
`--sbom=false` and with the default (SBOM and provenance attached), alternating, and the
cost is the difference of the medians as a share of the `--sbom=false` build.

Scenarios (a pip-only spec built without a daemon: uv makes the dependency image, then the
source layer is appended; 1,000 source files, as fast_path_bench.py):
- cold: a new repository each run (the dependency image made by uv, warm uv cache), no
  SBOM findings cached on this machine (the base tree kept: its findings with it);
- cold, new machine: the same with the base trees removed too (both sides read the base's
  layers; the SBOM takes their findings from that read);
- cold, nothing cached: a new CI machine: the uv cache and the layer caches removed too
  (both sides download their wheels);
- fast path, new machine: every source file rewritten, no SBOM findings cached on this
  machine (`sbom-layers/` removed before each run, with the dependency images' documents
  kept in it);
- fast path: the same with the findings cache kept.
Writes the table into docs/benchmarks.md (between the sbom-bench markers).
Needs the e2e services: scripts/e2e/up.sh && scripts/e2e/base-images.sh.
Usage: bench/sbom_bench.py [--binary PATH] [--runs N] [--cold-runs N] [--no-write]
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
from tag_bench import REPO, write_section  # noqa: E402
from build_bench import BASE, UV, timed  # noqa: E402
from fast_path_bench import write_sources  # noqa: E402

NO_DAEMON = "unix:///nonexistent/docker.sock"


def spec_text(name: str) -> str:
    return f'''name = "{name}"
registry = "localhost:5000"
base_image = "{BASE}"
packages = ["pyyaml", "requests"]
source_root = "."
source_copy_mode = "all"
builder_config = {{ uv_image = "{UV}" }}
builder_options = {{ add_flytekit = false }}
'''


def share(on: list[float], off: list[float]) -> tuple[float, float, float]:
    a, b = statistics.median(on), statistics.median(off)
    return b, a - b, (a - b) / b


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=None, help="default: cargo build --release")
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--cold-runs", type=int, default=3)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    binary = args.binary
    if binary is None:
        subprocess.run(["cargo", "build", "--release", "-q"], cwd=REPO, check=True)
        binary = str(REPO / "target" / "release" / "imagespec")
    work = Path(tempfile.mkdtemp(prefix="imagespec-sbom-bench-"))
    cache = work / "cache"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLYTE")}
    env.update(DOCKER_HOST=NO_DAEMON, IMAGESPEC_CACHE_DIR=str(cache))
    uv = Path(os.environ.get("IMAGESPEC_E2E_CACHE", "/var/cache/imagespec-e2e")) / "uv-0.5.1/bin/uv"
    if "IMAGESPEC_UV" not in env and uv.is_file():
        env["IMAGESPEC_UV"] = str(uv)
    forget = lambda: shutil.rmtree(cache / "sbom-layers", ignore_errors=True)  # noqa: E731
    flags = {"on": [], "off": ["--sbom=false"]}
    times = {(s, k): [] for s in ("cold", "cold-new", "cold-empty", "new", "warm") for k in flags}
    try:
        proj = work / "proj"
        proj.mkdir()
        write_sources(proj)
        stamp = time.time_ns()
        for r in range(args.cold_runs):
            for scenario in ("cold", "cold-new", "cold-empty"):
                for kind, extra in flags.items():
                    name = f"bench-sbom-{stamp}-{r}-{scenario}-{kind}"
                    (proj / "spec.toml").write_text(spec_text(name))
                    forget()
                    if scenario in ("cold-new", "cold-empty"):
                        shutil.rmtree(cache / "daemonless-bases", ignore_errors=True)
                    if scenario == "cold-empty":
                        for sub in ("uv", "layers", "layer-keys", "staging"):
                            shutil.rmtree(cache / sub, ignore_errors=True)
                    t, _ = timed([binary, "build", "-q", "spec.toml", *extra], proj, env)
                    times[scenario, kind].append(t)
        for r in range(args.runs):
            for scenario in ("new", "warm"):
                for kind, extra in flags.items():
                    if scenario == "new":
                        forget()
                    write_sources(proj)
                    t, _ = timed([binary, "build", "-q", "spec.toml", *extra], proj, env)
                    times[scenario, kind].append(t)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    names = {
        "cold": "cold build (uv, new repository)",
        "cold-new": "cold build, new machine (no base tree either)",
        "cold-empty": "cold build, nothing cached (no uv cache either: wheels downloaded)",
        "new": "fast path, nothing cached on this machine",
        "warm": "fast path, SBOM findings cached",
    }
    rows = []
    for s, title in names.items():
        off, cost, ratio = share(times[s, "on"], times[s, "off"])
        rows.append(f"| {title} | {off:.2f} s | {off + cost:.2f} s | {cost * 1000:+.0f} ms | {ratio:+.1%} |")
        print(title, round(off, 3), round(cost, 3), f"{ratio:+.1%}", flush=True)
    load = os.getloadavg()[0]
    table = "\n".join([
        f"Measured {time.strftime('%Y-%m-%d')} on {platform.machine()}, {os.cpu_count()} cores, load "
        f"{load:.1f}, `{Path(binary).parent.name}` binary, a loopback registry; cold: median of "
        f"{args.cold_runs}, fast path: median of {args.runs}.",
        "",
        "| scenario | `--sbom=false` | SBOM + provenance | cost | share of the build |",
        "|---|---:|---:|---:|---:|",
        *rows,
    ])
    print(table)
    if not args.no_write:
        write_section(REPO / "docs" / "benchmarks.md", "sbom-bench", table)


if __name__ == "__main__":
    main()
