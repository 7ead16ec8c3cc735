#!/usr/bin/env python3
"""Benchmark (issue 24): an apt + pip spec (`apt_packages = ["git", "curl", "jq"]`,
`packages = ["requests", "pyyaml"]`, 50 source files) on the e2e harness's Debian base,
flytekit 1.16's default builder against imagespec without a daemon, in one run:

  cold     no package caches on either side: BuildKit's cache pruned for flytekit (its apt
           and uv cache mounts, its layers); for imagespec the whole cache dir removed (the
           apt `Packages` indexes and `.deb`s kept on the host, uv's cache, the layer
           records, the base's tree); a new repository
  add      one apt package added (`tree`), same repository, the caches as `cold` left them
  platforms  imagespec alone on the two-platform base, `linux/amd64` against
           `linux/amd64,linux/arm64` (no qemu: each platform's packages from its own
           architecture's index), cold and add as above

flytekit's default builder runs as `ImageBuildEngine.build` does it (exist check, then
`DefaultImageBuilder`'s `docker build --push`) with `bench/docker-shim/docker` first on
PATH: buildx is missing here, the shim builds with the 20.10 CLI and BuildKit, then pushes.
Both sides get `builder_config` naming the local uv image (no ghcr.io) and `python_exec`.

Beside each imagespec figure, a floor: the bytes downloaded from the Debian mirror (what
the host cache gained) at the rate measured from that mirror in the same run, plus
compressing the new layers (their uncompressed bytes at gzip-1's rate on this machine);
the bytes uploaded (compressed layers the registry did not have) are printed. Where
imagespec's time went is printed from its `--json` step events.

Writes the table into docs/benchmarks.md (between the apt-bench markers).
Needs the e2e services and uv: scripts/e2e/up.sh, base-images.sh, uv.sh.
"""
import argparse
import gzip
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_bench import BASE, UV  # noqa: E402
from tag_bench import FLYTEKIT, REPO, venv_python, write_section  # noqa: E402

DOCKER = "/usr/bin/docker"
BASE_MULTI = os.environ.get("IMAGESPEC_E2E_BASE_PYTHON_MULTI", "localhost:5000/debian-python-multi:bookworm")
REGISTRY = "127.0.0.1:5000"
UV_BIN = os.environ.get("IMAGESPEC_UV", "/var/cache/imagespec-e2e/uv-0.5.1/bin/uv")
MIRROR = "http://deb.debian.org/debian"
APT = ["git", "curl", "jq"]
ADDED = "tree"
PACKAGES = ["requests", "pyyaml"]
NO_DAEMON = "unix:///nonexistent/docker.sock"

FLYTEKIT_BUILD = r'''
import tomllib
from flytekit.image_spec import ImageSpec
from flytekit.image_spec.image_spec import ImageBuildEngine
spec = ImageSpec(**tomllib.load(open("spec.toml", "rb")))
ImageBuildEngine.build(spec)
print(spec.image_name())
'''


def spec_text(name: str, run_id: str, apt: list[str], base: str, platforms: str | None) -> str:
    q = lambda items: ", ".join(f'"{i}"' for i in items)  # noqa: E731
    plat = f'platform = "{platforms}"\n' if platforms else ""
    return f'''name = "{name}"
registry = "localhost:5000"
base_image = "{base}"
python_exec = "/usr/bin/python3"
apt_packages = [{q(apt)}]
packages = [{q(PACKAGES)}]
env = {{ RUN_ID = "{run_id}" }}
source_root = "."
source_copy_mode = "all"
builder_config = {{ uv_image = "{UV}", micromamba_image = "{BASE}" }}
{plat}'''


def make_project(root: Path, name: str, run_id: str, apt: list[str], base: str = BASE, platforms: str | None = None) -> None:
    (root / "wf").mkdir(parents=True, exist_ok=True)
    for i in range(50):
        (root / "wf" / f"task{i}.py").write_text(f"def task{i}():\n    return {i}\n")
    (root / "spec.toml").write_text(spec_text(name, run_id, apt, base, platforms))


def run(cmd: list[str], cwd: Path, env: dict) -> tuple[float, str]:
    t0 = time.perf_counter()
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if out.returncode != 0:
        raise SystemExit(f"{cmd[:3]} failed in {cwd}:\n{out.stdout[-4000:]}\n{out.stderr[-4000:]}")
    return elapsed, out.stdout


def steps(json_out: str) -> list[str]:
    """imagespec's finished steps (`--json`), slowest first, each with when it started and
    ended (seconds since the start: what overlapped with what)."""
    said = []
    for line in json_out.splitlines():
        try:
            e = json.loads(line)
        except ValueError:
            continue
        if e.get("event") == "step" and e.get("state") == "done" and e.get("seconds", 0) >= 0.05:
            end = e.get("elapsed", 0.0)
            what = f"{e.get('platform', '')} {e.get('label') or e.get('name')}".strip()
            said.append((e["seconds"], f"[{end - e['seconds']:6.2f} → {end:6.2f}]  {what}"))
        if e.get("event") == "info" and "apt layers" in e.get("message", ""):
            said.append((0, e["message"]))
    return [f"{s:6.2f} s  {what}" for s, what in sorted(said, reverse=True)]


def result_image(json_out: str) -> str:
    for line in reversed(json_out.splitlines()):
        try:
            e = json.loads(line)
        except ValueError:
            continue
        if e.get("event") == "result":
            return e.get("image") or ""
    return ""


def registry_get(path: str, accept: str = "") -> bytes:
    req = urllib.request.Request(f"http://{REGISTRY}/v2/{path}")
    if accept:
        req.add_header("Accept", accept)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(req, timeout=60) as r:
        return r.read()


MANIFESTS = ",".join([
    "application/vnd.oci.image.index.v1+json", "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
])


def layers(image: str) -> dict[str, tuple[str, int]]:
    """The layers of `image` (every platform's): digest -> (repository, compressed size)."""
    ref = image.split("/", 1)[1]
    repo, tag = ref.rsplit(":", 1) if "@" not in ref else ref.split("@", 1)
    found = {}
    todo = [tag]
    while todo:
        m = json.loads(registry_get(f"{repo}/manifests/{todo.pop()}", MANIFESTS))
        todo += [c["digest"] for c in m.get("manifests", [])]
        for layer in m.get("layers", []):
            found[layer["digest"]] = (repo, layer["size"])
    return found


def compress_floor(new: dict[str, tuple[str, int]]) -> tuple[int, int, float]:
    """The new layers' compressed and uncompressed bytes, and gzip -1 on this machine's
    time to compress them (one core, as one layer is written)."""
    packed = unpacked = 0
    seconds = 0.0
    for digest, (repo, size) in new.items():
        raw = gzip.decompress(registry_get(f"{repo}/blobs/{digest}"))
        t0 = time.perf_counter()
        c = zlib.compressobj(1, zlib.DEFLATED, 31)
        c.compress(raw)
        c.flush()
        seconds += time.perf_counter() - t0
        packed += size
        unpacked += len(raw)
    return packed, unpacked, seconds


def mirror_rate() -> float:
    """Bytes per second from the Debian mirror: bookworm's amd64 `Packages.xz` (~9 MB)."""
    out = subprocess.run(["curl", "-fsS", "-o", "/dev/null", "-w", "%{speed_download}",
                          f"{MIRROR}/dists/bookworm/main/binary-amd64/Packages.xz"],
                         capture_output=True, text=True, check=True)
    return float(out.stdout)


def cache_bytes(cache: Path) -> dict[str, int]:
    """The mirror's files kept on the host (named by their SHA256): name -> size."""
    d = cache / "apt" / "sha256"
    if not d.is_dir():
        return {}
    return {p.name: p.stat().st_size for p in d.iterdir() if len(p.name) == 64}


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


class Imagespec:
    """imagespec without a daemon, its caches in `cache`."""

    def __init__(self, binary: str, work: Path):
        self.cache = work / "cache"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("FLYTE", "UV_"))}
        env.update(IMAGESPEC_UV=UV_BIN, IMAGESPEC_CACHE_DIR=str(self.cache), DOCKER_HOST=NO_DAEMON)
        env.pop("IMAGESPEC_NO_CACHE", None)
        env.pop("IMAGESPEC_NO_DAEMONLESS", None)
        self.env, self.cmd = env, [binary, "build", "--json", "spec.toml"]

    def clear(self) -> None:
        shutil.rmtree(self.cache, ignore_errors=True)

    def build(self, proj: Path, rate: float, before: str | None) -> dict:
        """One build: its time, its floor, where its time went."""
        had = cache_bytes(self.cache)
        t, out = run(self.cmd, proj, self.env)
        if '"dependency_builder":"docker"' in out.replace(" ", ""):
            raise SystemExit(f"imagespec fell back to dockerd:\n{out[-3000:]}")
        image = result_image(out)
        downloaded = sum(s for n, s in cache_bytes(self.cache).items() if n not in had)
        old = layers(before) if before else {}
        new = {d: v for d, v in layers(image).items() if d not in old}
        packed, unpacked, compress = compress_floor(new)
        floor = downloaded / rate + compress
        return dict(time=t, image=image, downloaded=downloaded, uploaded=packed, unpacked=unpacked,
                    compress=compress, floor=floor, steps=steps(out), load=load())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--binary", default=None, help="imagespec binary (default: build --release)")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--only", choices=["platforms"], default=None,
                    help="only the two-platform rows (printed, not written)")
    args = ap.parse_args()
    if args.binary:
        binary = str(Path(args.binary).resolve())
    else:
        subprocess.run(["cargo", "build", "--release", "-q"], cwd=REPO, check=True)
        binary = str(REPO / "target" / "release" / "imagespec")
    py = str(venv_python())
    work = Path(tempfile.mkdtemp(prefix="imagespec-apt-bench-"))
    fenv = {k: v for k, v in os.environ.items() if not k.startswith("FLYTE")}
    fenv["PATH"] = f"{REPO / 'bench' / 'docker-shim'}:{fenv['PATH']}"
    fenv["DOCKER_HOST"] = "unix:///var/run/docker.sock"
    isp = Imagespec(binary, work)
    res = {k: [] for k in ("f_cold", "f_add", "i_cold", "i_add", "p1_cold", "p1_add", "p2_cold", "p2_add")}
    pushed = []
    try:
        rate = mirror_rate()
        print(f"mirror rate {rate / 1e6:.1f} MB/s, load {load()}", flush=True)
        for r in range(args.runs):
            for side in () if args.only else ("flytekit", "imagespec"):
                run_id = f"r{time.time_ns()}"
                name = f"bench-apt-{side}-{run_id}"
                proj = work / f"{side}-{r}"
                make_project(proj, name, run_id, APT)
                if side == "flytekit":
                    subprocess.run([DOCKER, "builder", "prune", "-af"], check=True, capture_output=True)
                    t, out = run([py, "-c", FLYTEKIT_BUILD], proj, fenv)
                    pushed.append(out.strip().splitlines()[-1])
                    res["f_cold"].append(dict(time=t, load=load()))
                    make_project(proj, name, run_id, APT + [ADDED])
                    t, out = run([py, "-c", FLYTEKIT_BUILD], proj, fenv)
                    pushed.append(out.strip().splitlines()[-1])
                    res["f_add"].append(dict(time=t, load=load()))
                else:
                    isp.clear()
                    cold = isp.build(proj, rate, f"{BASE}")
                    res["i_cold"].append(cold)
                    make_project(proj, name, run_id, APT + [ADDED])
                    res["i_add"].append(isp.build(proj, rate, cold["image"]))
                print(side, {k: round(v[-1]["time"], 2) for k, v in res.items() if v}, f"load {load()}", flush=True)
            for key, plats in (("p1", "linux/amd64"), ("p2", "linux/amd64,linux/arm64")):
                run_id = f"r{time.time_ns()}"
                name = f"bench-apt-{key}-{run_id}"
                proj = work / f"{key}-{r}"
                make_project(proj, name, run_id, APT, BASE_MULTI, plats)
                isp.clear()
                cold = isp.build(proj, rate, BASE_MULTI)
                res[f"{key}_cold"].append(cold)
                make_project(proj, name, run_id, APT + [ADDED], BASE_MULTI, plats)
                res[f"{key}_add"].append(isp.build(proj, rate, cold["image"]))
                print(key, round(cold["time"], 2), round(res[f"{key}_add"][-1]["time"], 2), f"load {load()}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if pushed:
            subprocess.run([DOCKER, "rmi", "-f", *set(pushed)], capture_output=True)
    for key, rows in res.items():
        for row in rows:
            if "steps" in row:
                print(f"-- {key}: {row['time']:.2f} s (floor {row['floor']:.2f} s), load {row['load']}")
                print("   " + "\n   ".join(row["steps"][:16]))
    if args.only:
        print("\n".join(platform_rows(res)), f"\nload after: {load()}")
        return
    print(table(res, rate, args.runs))
    if not args.no_write:
        write_section(REPO / "docs" / "benchmarks.md", "apt-bench", table(res, rate, args.runs))


def med(rows: list[dict], key: str = "time") -> float:
    return statistics.median(r[key] for r in rows)


def table(res: dict, rate: float, runs: int) -> str:
    floor = floor_text
    fc, fa, ic, ia = (med(res[k]) for k in ("f_cold", "f_add", "i_cold", "i_add"))
    loads = sorted({r["load"] for rows in res.values() for r in rows})
    goal = lambda ok: "met" if ok else "**not met**"  # noqa: E731
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} on {platform.machine()}, {os.cpu_count()} cores (load averages "
        f"1/5/15 min after each build: {loads[0]} … {loads[-1]}), dockerd 20.10 (BuildKit) and a local registry; "
        f"flytekit {FLYTEKIT.split('==')[1]}; uv "
        f"{subprocess.run([UV_BIN, '--version'], capture_output=True, text=True).stdout.split()[1]}; "
        f"Debian mirror {MIRROR} at {rate / 1e6:.1f} MB/s (measured in the run); median of {runs}.",
        "",
        "| scenario | flytekit default builder | imagespec without a daemon | ratio | goal | imagespec's floor |",
        "|---|---:|---:|---:|---|---|",
        f"| cold (no package caches) | {fc:.2f} s | {ic:.2f} s | {ic / fc:.2f}× flytekit's | ≤ 0.3×: {goal(ic / fc <= 0.3)} "
        f"| {floor(res['i_cold'])} |",
        f"| one apt package added (`{ADDED}`) | {fa:.2f} s | {ia:.2f} s | {fa / ia:.1f}× faster | ≥ 10×: "
        f"{goal(fa / ia >= 10)} | {floor(res['i_add'])} |",
        "",
        *platform_rows(res),
    ]
    return "\n".join(lines)


def floor_text(rows: list[dict]) -> str:
    mb = lambda b: f"{b / 1e6:.1f} MB"  # noqa: E731
    r = rows[len(rows) // 2]
    return (f"{r['floor']:.2f} s ({mb(r['downloaded'])} from the mirror, "
            f"{mb(r['unpacked'])} compressed to {mb(r['uploaded'])} uploaded)")


def platform_rows(res: dict) -> list[str]:
    """The two-platform table: imagespec alone, one platform against two."""
    p1c, p1a, p2c, p2a = (med(res[k]) for k in ("p1_cold", "p1_add", "p2_cold", "p2_add"))
    goal = lambda ok: "met" if ok else "**not met**"  # noqa: E731
    return [
        "| imagespec without a daemon, two-platform base | linux/amd64 | linux/amd64 + linux/arm64 | two / one | goal | floor (two) |",
        "|---|---:|---:|---:|---|---|",
        f"| cold (no package caches) | {p1c:.2f} s | {p2c:.2f} s | {p2c / p1c:.2f}× | ≤ 1.3×: {goal(p2c / p1c <= 1.3)} "
        f"| {floor_text(res['p2_cold'])} |",
        f"| one apt package added (`{ADDED}`) | {p1a:.2f} s | {p2a:.2f} s | {p2a / p1a:.2f}× | ≤ 1.3×: "
        f"{goal(p2a / p1a <= 1.3)} | {floor_text(res['p2_add'])} |",
    ]


if __name__ == "__main__":
    main()
