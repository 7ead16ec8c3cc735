"""Fixtures of the plugin's tests (run with the plugin venv's python, see the README):

- ``real_binary``: the imagespec binary under test (``IMAGESPEC_REAL_BINARY``, else the one
  the plugin would run);
- ``recorder``: a stand-in binary that records each call (arguments, the JSON spec, the module
  list), answers ``exists`` as told (``answer(...)``) and ``build`` with what the real
  binary's ``tag`` and ``inspect`` say of the spec, as ``--json`` events;
- ``registry``: the plain e2e registry (127.0.0.1:5000), or a skip (a failure under CI=1);
- a clean flytekit state per test: no ``FLYTE_*`` variables, the engine's cache emptied.
"""
import inspect
import json
import os
import stat
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from flytekit.image_spec.image_spec import ImageBuildEngine

TESTS = Path(__file__).resolve().parent

RECORDER = r'''#!{python}
import json, os, subprocess, sys
args = sys.argv[1:]
entry = {{"command": args[0], "args": args, "spec": json.load(open(args[1], encoding="utf-8"))}}
if "--modules-from" in args:
    entry["modules"] = open(args[args.index("--modules-from") + 1], encoding="utf-8").read().splitlines()
flags = ("--bases-built", "--force", "--no-push", "--assume-exists", "--json")
plain = [a for a in args[1:] if a not in flags]
image = subprocess.run([{real!r}, "tag", *plain], capture_output=True, text=True, check=True).stdout.strip()
entry["image"] = image
with open({record!r}, "a", encoding="utf-8") as f:
    f.write(json.dumps(entry) + "\n")
state = {{}}
if os.path.exists({state!r}):
    state = json.load(open({state!r}, encoding="utf-8"))
if args[0] == "exists":
    answer = state.get("exists", {{}}).get(entry["spec"]["name"], "no")
    if answer == "unknown":
        print(f"error: cannot tell whether {{image}} exists: 127.0.0.1:1: connection refused", file=sys.stderr)
        sys.exit(3)
    print(f"{{answer}} {{image}}")
    sys.exit(0 if answer == "yes" else 1)
if state.get("fail"):
    step = "RUN uv pip install nothing-here"
    message = f"build failed at step `{{step}}`: exit code 1\n--- step output (last 1 lines) ---\n  No solution found when resolving dependencies"
    print(json.dumps({{"event": "step", "id": "1", "name": step, "state": "started"}}), flush=True)
    print(json.dumps({{"event": "log", "id": "1", "text": "  No solution found when resolving dependencies"}}), flush=True)
    print(json.dumps({{"event": "step", "id": "1", "name": step, "state": "failed", "error": "exit code 1"}}), flush=True)
    print(json.dumps({{"event": "error", "message": message, "exit_code": 1}}), flush=True)
    print(f"error: {{message}}", file=sys.stderr)
    sys.exit(1)
inspected = json.loads(subprocess.run([{real!r}, "inspect", "--json", *plain], capture_output=True, text=True, check=True).stdout)
entry_id = inspected["id"]
with open({record!r}, "a", encoding="utf-8") as f:
    f.write(json.dumps({{"command": "id", "id": entry_id}}) + "\n")
print(json.dumps({{"event": "info", "message": "building (recorded)"}}), flush=True)
result = {{"event": "result", "image": image, "id": entry_id, "tag": image.rsplit(":", 1)[1], "action": "appended",
          "strategy": "append", "reason": "recorded", "pushed": True, "seconds": 0.1}}
if state.get("digest"):
    result["digest"] = state["digest"]
print(json.dumps(result))
'''


@pytest.fixture(autouse=True)
def clean_flytekit(monkeypatch):
    """No FLYTE_* variable from the caller's environment; the engine's lru_cache emptied, so
    each test's specs are decided afresh."""
    for var in [v for v in os.environ if v.startswith("FLYTE_")]:
        monkeypatch.delenv(var)
    build = inspect.getattr_static(ImageBuildEngine, "build")
    build.__func__.cache_clear()
    yield
    build.__func__.cache_clear()


@pytest.fixture(scope="session")
def real_binary():
    explicit = os.environ.get("IMAGESPEC_REAL_BINARY") or os.environ.get("IMAGESPEC_BINARY")
    if explicit:
        return explicit
    from flytekitplugins.imagespec.builder import binary

    return binary()


class Recorder:
    """The stand-in binary's calls and the answers it gives."""

    def __init__(self, work: Path, real: str):
        self.record = work / "calls.jsonl"
        self.state = work / "state.json"
        self.path = work / "imagespec"
        self.path.write_text(
            RECORDER.format(python=sys.executable, real=real, record=str(self.record), state=str(self.state))
        )
        self.path.chmod(self.path.stat().st_mode | stat.S_IXUSR)
        self._state = {"exists": {}}
        self._save()

    def _save(self):
        self.state.write_text(json.dumps(self._state))

    def answer(self, name, existence):
        """``exists`` answers ``existence`` ("yes", "no", "unknown") for the spec ``name``."""
        self._state["exists"][name] = existence
        self._save()

    def fail_builds(self, fail=True):
        self._state["fail"] = fail
        self._save()

    def report_digest(self, digest):
        self._state["digest"] = digest
        self._save()

    def calls(self, command=None):
        """The calls since the last look (``command``: only those), ids folded into builds."""
        if not self.record.exists():
            return []
        out = []
        for line in self.record.read_text().splitlines():
            entry = json.loads(line)
            if entry["command"] == "id":
                out[-1]["id"] = entry["id"]
            else:
                out.append(entry)
        self.record.unlink()
        return [c for c in out if command is None or c["command"] == command]


@pytest.fixture
def recorder(tmp_path, monkeypatch, real_binary):
    rec = Recorder(tmp_path, real_binary)
    monkeypatch.setenv("IMAGESPEC_BINARY", str(rec.path))
    monkeypatch.chdir(tmp_path)
    return rec


def registry_up(address):
    try:
        with urllib.request.urlopen(f"http://{address}/v2/", timeout=3) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture(scope="session")
def registry():
    """The plain e2e registry's address."""
    address = "127.0.0.1:5000"
    if not registry_up(address):
        if os.environ.get("CI"):
            pytest.fail(f"the e2e registry {address} is not running (scripts/e2e/up.sh)")
        pytest.skip(f"the e2e registry {address} is not running (scripts/e2e/up.sh)")
    return address


def skopeo_exists(image):
    """Whether the registry has ``image``, asked with skopeo (not with imagespec)."""
    out = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{image}"], capture_output=True)
    return out.returncode == 0
