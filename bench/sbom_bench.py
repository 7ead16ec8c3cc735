#!/usr/bin/env python3
"""Benchmark: what the SBOM (and the provenance attached with it) costs a build (issue #23).

One binary, one run, the same cache state for both sides: each scenario is built with
`--sbom=false` and with the default (SBOM and provenance attached), in a random order each
round, and the cost is the difference of the medians as a share of the `--sbom=false`
build. Beside it, the CPU time each side took, imagespec's own (user + system) and the
loopback registry's (read from /proc: it shares this machine's cores, where a real
registry would not), as the difference of the medians.

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


REGISTRY_PID = Path(os.environ.get("IMAGESPEC_E2E_DIR", "/tmp/imagespec-e2e")) / "registry-plain.pid"


def registry_cpu() -> float:
    """The loopback registry's CPU time so far (user + system, seconds); 0 without one."""
    try:
        pid = REGISTRY_PID.read_text().strip()
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def measured(cmd: list[str], cwd: Path, env: dict) -> tuple[float, float, float]:
    """Wall time, imagespec's CPU time and the registry's CPU time of one build."""
    before, registry = os.times(), registry_cpu()
    wall, _ = timed(cmd, cwd, env)
    after = os.times()
    own = (after.children_user + after.children_system) - (
        before.children_user + before.children_system)
    return wall, own, registry_cpu() - registry


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
    cpu = {key: [] for key in times}
    registry = {key: [] for key in times}

    def record(scenario: str, kind: str, extra: list[str]) -> None:
        wall, own, reg = measured([binary, "build", "-q", "spec.toml", *extra], proj, env)
        times[scenario, kind].append(wall)
        cpu[scenario, kind].append(own)
        registry[scenario, kind].append(reg)

    def shuffled() -> list[tuple[str, list[str]]]:
        order = list(flags.items())
        random.shuffle(order)
        return order

    try:
        proj = work / "proj"
        proj.mkdir()
        write_sources(proj)
        stamp = time.time_ns()
        for r in range(args.cold_runs):
            for scenario in ("cold", "cold-new", "cold-empty"):
                for kind, extra in shuffled():
                    name = f"bench-sbom-{stamp}-{r}-{scenario}-{kind}"
                    (proj / "spec.toml").write_text(spec_text(name))
                    forget()
                    if scenario in ("cold-new", "cold-empty"):
                        shutil.rmtree(cache / "daemonless-bases", ignore_errors=True)
                    if scenario == "cold-empty":
                        for sub in ("uv", "layers", "layer-keys", "staging"):
                            shutil.rmtree(cache / sub, ignore_errors=True)
                    record(scenario, kind, extra)
        for r in range(args.runs):
            for scenario in ("new", "warm"):
                for kind, extra in shuffled():
                    if scenario == "new":
                        forget()
                    write_sources(proj)
                    record(scenario, kind, extra)
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
    median = statistics.median
    for s, title in names.items():
        off, cost, ratio = share(times[s, "on"], times[s, "off"])
        own = median(cpu[s, "on"]) - median(cpu[s, "off"])
        reg = median(registry[s, "on"]) - median(registry[s, "off"])
        rows.append(f"| {title} | {off:.2f} s | {off + cost:.2f} s | {cost * 1000:+.0f} ms | "
                    f"{ratio:+.1%} | {own * 1000:+.0f} ms | {reg * 1000:+.0f} ms |")
        print(title, round(off, 3), round(cost, 3), f"{ratio:+.1%}", flush=True)
    load = os.getloadavg()[0]
    table = "\n".join([
        f"Measured {time.strftime('%Y-%m-%d')} on {platform.machine()}, {os.cpu_count()} cores, load "
        f"{load:.1f}, `{Path(binary).parent.name}` binary, a loopback registry; cold: median of "
        f"{args.cold_runs}, fast path: median of {args.runs}.",
        "",
        "| scenario | `--sbom=false` | SBOM + provenance | cost | share of the build | imagespec's CPU | the registry's CPU |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *rows,
    ])
    print(table)
    if not args.no_write:
        write_section(REPO / "docs" / "benchmarks.md", "sbom-bench", table)


if __name__ == "__main__":
    main()
