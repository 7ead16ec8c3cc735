#!/usr/bin/env python3
"""bench/regression_bench.py OLD NEW [RUNS]: two imagespec release binaries (an earlier
commit's against today's), alternating in one run so the machine's load hits both alike:
the fast path (1,000 files rewritten), the no-op (image exists) and the daemonless cold
build (new repository, warm uv cache, no layer cache). Medians per binary and the ratio
new/old, with the load average. Needs the e2e services, as the other benchmarks."""
import os, shutil, statistics, subprocess, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
import fast_path_bench as fp
import daemonless_bench as dl
from build_bench import timed

OLD, NEW = sys.argv[1], sys.argv[2]
RUNS = int(sys.argv[3]) if len(sys.argv) > 3 else 7
BINS = {"old": OLD, "new": NEW}
work = Path(tempfile.mkdtemp(prefix="once-compare-"))
base_env = {k: v for k, v in os.environ.items() if not k.startswith("FLYTE")}

def load():
    return "load %.2f %.2f %.2f" % os.getloadavg()

def order(r):
    return ["old", "new"] if r % 2 == 0 else ["new", "old"]

def report(title, times):
    o, n = statistics.median(times["old"]), statistics.median(times["new"])
    print(f"{title}: old {o:.3f} s  new {n:.3f} s  new/old {n / o:.2f}  ({load()})")
    print("   old", [round(t, 3) for t in times["old"]])
    print("   new", [round(t, 3) for t in times["new"]], flush=True)

try:
    print("start", load(), flush=True)
    run_id = f"cmp-{time.time_ns()}"
    env = dict(base_env, IMAGESPEC_NO_CACHE="1")
    projs = {}
    for k in BINS:
        p = work / f"fp-{k}"
        p.mkdir()
        (p / "spec.toml").write_text(fp.spec_text(f"bench-cmp-fp-{k}", run_id))
        fp.write_sources(p)
        timed([BINS[k], "build", "-q", "spec.toml"], p, dict(env, IMAGESPEC_UV=dl.UV_BIN))
        projs[k] = p
    times = {k: [] for k in BINS}
    for r in range(RUNS):
        for k in order(r):
            fp.write_sources(projs[k])
            times[k].append(timed([BINS[k], "build", "-q", "spec.toml"], projs[k], env)[0])
    report("fast path (1,000 files changed)", times)
    times = {k: [] for k in BINS}
    for r in range(RUNS):
        for k in order(r):
            times[k].append(timed([BINS[k], "build", "-q", "spec.toml"], projs[k], env)[0])
    report("no-op (image exists)", times)
    times = {k: [] for k in BINS}
    for k in BINS:
        p = work / f"dl-{k}"
        dl.make_project(p, f"bench-cmp-dl-{k}", f"warm-{time.time_ns()}", dl.PACKAGES)
        timed([BINS[k], "build", "-q", "spec.toml"], p,
              dict(base_env, IMAGESPEC_UV=dl.UV_BIN, IMAGESPEC_CACHE_DIR=str(work / f"cache-{k}"),
                   DOCKER_HOST="unix:///nonexistent.sock"))
    for r in range(max(3, RUNS // 2)):
        for k in order(r):
            p = work / f"dl-{k}"
            rid = f"r{time.time_ns()}"
            dl.make_project(p, f"bench-cmp-dl-{k}-{rid}", rid, dl.PACKAGES)
            shutil.rmtree(work / f"cache-{k}" / "layers", ignore_errors=True)
            e = dict(base_env, IMAGESPEC_UV=dl.UV_BIN, IMAGESPEC_CACHE_DIR=str(work / f"cache-{k}"),
                     DOCKER_HOST="unix:///nonexistent.sock")
            times[k].append(timed([BINS[k], "build", "-q", "spec.toml"], p, e)[0])
    report("daemonless cold (new repository)", times)
finally:
    shutil.rmtree(work, ignore_errors=True)
