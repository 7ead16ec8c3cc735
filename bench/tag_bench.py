#!/usr/bin/env python3
"""Benchmark: image tag of a source tree, imagespec vs flytekit 1.16, measured in one run.

For synthetic git work trees of 1k / 10k / 50k files (source_copy_mode=all), time:
  - flytekit end to end: a fresh `python -c` that imports flytekit and prints
    ImageSpec(...).image_name() (what `pyflyte` pays per invocation);
  - flytekit tag only: the same, timed inside the process after the import;
  - imagespec cold: `imagespec tag spec.toml` with the digest cache off;
  - imagespec warm: the same with the cache on and the tree unchanged.
Both tools must print the same image name, or the benchmark fails.
Writes the table into docs/benchmarks.md (between the tag-bench markers).

Usage: python3 bench/tag_bench.py [--sizes 1000,10000,50000] [--runs 5]
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

REPO = Path(__file__).resolve().parent.parent
VENV = Path(os.environ.get("IMAGESPEC_FLYTEKIT_VENV", "/tmp/imagespec-flytekit-venv"))
FLYTEKIT = "flytekit==1.16.31"


def venv_python() -> Path:
    py = VENV / "bin" / "python"
    ok = py.exists() and subprocess.run([py, "-c", "import flytekit"], capture_output=True).returncode == 0
    if not ok:
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
        subprocess.run([py, "-m", "pip", "install", "-q", FLYTEKIT, "pyyaml"], check=True)
    return py


def make_tree(root: Path, n: int) -> None:
    per_dir = 100
    for i in range(n):
        d = root / "pkg" / f"m{i // per_dir:04d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i:06d}.py").write_text(f"# module {i}\nVALUE = {i}\n\ndef f():\n    return VALUE * 2\n" + "x = 1\n" * (i % 7))
    (root / ".gitignore").write_text("*.log\nbuild/\n")
    (root / ".dockerignore").write_text("**/*.tmp\n")
    for i in range(0, n, 500):
        (root / "pkg" / f"m{i // per_dir:04d}" / f"debug{i}.log").write_text("ignored\n")
    env = dict(os.environ, GIT_AUTHOR_NAME="b", GIT_AUTHOR_EMAIL="b@b", GIT_COMMITTER_NAME="b", GIT_COMMITTER_EMAIL="b@b")
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run(["git", "add", "-A"], cwd=root, check=True, env=env)
    subprocess.run(["git", "commit", "-qm", "tree"], cwd=root, check=True, env=env)
    (root / "spec.toml").write_text('name = "bench"\nregistry = "localhost:5000"\nsource_root = "."\nsource_copy_mode = "all"\npackages = ["requests"]\n')


FLYTEKIT_SNIPPET = """
import time, sys
t0 = time.perf_counter()
from flytekit.image_spec import ImageSpec
from flytekit.constants import CopyFileDetection
t1 = time.perf_counter()
s = ImageSpec(name="bench", registry="localhost:5000", source_root=".", source_copy_mode=CopyFileDetection.ALL, packages=["requests"])
name = s.image_name()
t2 = time.perf_counter()
print(name)
print(t2 - t1, file=sys.stderr)
"""


def timed(cmd, cwd, env=None):
    t0 = time.perf_counter()
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if out.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed: {out.stderr}")
    return elapsed, out.stdout.strip(), out.stderr.strip()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000,10000,50000")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    subprocess.run(["cargo", "build", "--release", "-q"], cwd=REPO, check=True)
    binary = REPO / "target" / "release" / "imagespec"
    py = venv_python()
    clean_env = {k: v for k, v in os.environ.items() if not k.startswith("FLYTE")}
    rows = []
    for n in sizes:
        tmp = Path(tempfile.mkdtemp(prefix=f"imagespec-bench-{n}-"))
        try:
            make_tree(tmp, n)
            time.sleep(1.2)  # out of the digest cache's one-second "racy" window
            cache = tmp.parent / (tmp.name + "-cache")
            fk_e2e, fk_tag, cold, warm = [], [], [], []
            names = set()
            for _ in range(args.runs):
                t, out, err = timed([str(py), "-c", FLYTEKIT_SNIPPET], tmp, clean_env)
                fk_e2e.append(t)
                fk_tag.append(float(err.splitlines()[-1]))
                names.add(("flytekit", out))
                t, out, _ = timed([str(binary), "tag", "spec.toml"], tmp, dict(clean_env, IMAGESPEC_NO_CACHE="1"))
                cold.append(t)
                names.add(("imagespec", out))
            warm_env = dict(clean_env, IMAGESPEC_CACHE_DIR=str(cache))
            timed([str(binary), "tag", "spec.toml"], tmp, warm_env)  # fill the cache
            for _ in range(args.runs):
                t, out, _ = timed([str(binary), "tag", "spec.toml"], tmp, warm_env)
                warm.append(t)
                names.add(("imagespec", out))
            images = {v for _, v in names}
            if len(images) != 1:
                raise SystemExit(f"tools disagree on the image name for {n} files: {sorted(names)}")
            med = {k: statistics.median(v) for k, v in dict(fk_e2e=fk_e2e, fk_tag=fk_tag, cold=cold, warm=warm).items()}
            rows.append((n, med))
            print(f"{n:>6} files  flytekit {med['fk_e2e']:.3f}s (tag {med['fk_tag']:.3f}s)  imagespec cold {med['cold']:.3f}s  warm {med['warm']:.3f}s  "
                  f"ratio cold {med['fk_e2e'] / med['cold']:.1f}x  warm {med['fk_e2e'] / med['warm']:.1f}x", flush=True)
            shutil.rmtree(cache, ignore_errors=True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    table = [
        f"Measured {time.strftime('%Y-%m-%d')} on {platform.machine()}, {os.cpu_count()} cores, median of {args.runs} runs, "
        f"flytekit {FLYTEKIT.split('==')[1]} (Python {platform.python_version()}); both tools printed the same image name.",
        "",
        "| files | flytekit end to end | flytekit tag only (after import) | imagespec cold | imagespec warm (cache) | speed-up cold | speed-up warm |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n, m in rows:
        table.append(
            f"| {n:,} | {m['fk_e2e']:.3f} s | {m['fk_tag']:.3f} s | {m['cold']:.3f} s | {m['warm']:.3f} s | "
            f"{m['fk_e2e'] / m['cold']:.1f}× | {m['fk_e2e'] / m['warm']:.1f}× |"
        )
    if not args.no_write:
        write_section(REPO / "docs" / "benchmarks.md", "tag-bench", "\n".join(table))


def write_section(path: Path, marker: str, body: str) -> None:
    begin, end = f"<!-- {marker}:begin -->", f"<!-- {marker}:end -->"
    text = path.read_text() if path.exists() else ""
    block = f"{begin}\n{body}\n{end}"
    if begin in text and end in text:
        text = text[: text.index(begin)] + block + text[text.index(end) + len(end):]
    else:
        text += ("\n" if text else "") + block + "\n"
    path.write_text(text)


if __name__ == "__main__":
    main()
