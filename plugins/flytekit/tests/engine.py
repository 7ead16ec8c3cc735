"""The builder as flytekit's ImageBuildEngine drives it, without Docker: IMAGESPEC_BINARY is a
recorder that keeps each call's arguments, JSON spec and module list, and answers `build` with
what the real binary's `tag` and `inspect` say of that spec (or fails like a failed build).

  - a spec on a nested base spec: the engine builds the base first; the binary gets the nested
    spec back (not the base's image name), `--bases-built`, and computes flytekit's id for it
    (the `_F_IMG_ID` that `is_container()` compares);
  - `force_push()` passes `--force`; a plain build does not;
  - `--assume-exists` (flytekit's "cannot tell → assume it exists") unless
    FLYTE_IMG_FAST_FAIL is true;
  - `loaded_modules`: the module list leaves out what flytekit leaves out (site-packages,
    flytekit, the interpreter) even when `source_root` contains them;
  - a failed build raises with the failing step and its output;
  - a base renamed by its builder (noop) is passed by its real name: the image is flytekit's;
  - a value JSON cannot hold (a tuple in builder_options) is refused before anything runs;
  - `builder="default"` still picks flytekit's builder.

Run with the plugin venv's python: python engine.py /path/to/real/imagespec
"""
import json
import os
import stat
import sys
import tempfile
from pathlib import Path

REAL = sys.argv[1]
work = Path(tempfile.mkdtemp(prefix="imagespec-engine-"))
record = work / "calls.jsonl"
fake = work / "imagespec"
fake.write_text(
    f"""#!{sys.executable}
import json, os, subprocess, sys
args = sys.argv[1:]
entry = {{"args": args, "spec": json.load(open(args[1], encoding="utf-8"))}}
if "--modules-from" in args:
    entry["modules"] = open(args[args.index("--modules-from") + 1], encoding="utf-8").read().splitlines()
if os.environ.get("FAKE_FAIL"):
    print("=> RUN uv pip install nothing-here", file=sys.stderr)
    print("error: build failed at step `RUN uv pip install nothing-here`: exit code 1", file=sys.stderr)
    print("--- step output (last 1 lines) ---", file=sys.stderr)
    print("  No solution found when resolving dependencies", file=sys.stderr)
    sys.exit(1)
plain = [a for a in args[1:] if a not in ("--bases-built", "--force", "--no-push", "--assume-exists")]
entry["image"] = subprocess.run([{REAL!r}, "tag", *plain], capture_output=True, text=True, check=True).stdout.strip()
inspect = subprocess.run([{REAL!r}, "inspect", "--json", *plain], capture_output=True, text=True, check=True).stdout
entry["id"] = json.loads(inspect)["id"]
with open({str(record)!r}, "a", encoding="utf-8") as f:
    f.write(json.dumps(entry) + "\\n")
print("=> building (recorded)", file=sys.stderr)
print(entry["image"])
"""
)
fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
os.environ["IMAGESPEC_BINARY"] = str(fake)
for var in [v for v in os.environ if v.startswith("FLYTE_")]:
    del os.environ[var]

from flytekit.image_spec.image_spec import CopyFileDetection, ImageBuildEngine, ImageSpec  # noqa: E402
from flytekitplugins.imagespec import ImagespecBuildError  # noqa: E402

# Every image is missing, so the engine builds each (flytekit's should_build is kept).
ImageSpec.exist = lambda self: False
os.chdir(work)
(work / "proj" / "pkg").mkdir(parents=True)
(work / "proj" / "pkg" / "__init__.py").write_text("")
(work / "proj" / "pkg" / "mod.py").write_text("X = 1\n")
sys.path.insert(0, str(work / "proj"))
import pkg.mod  # noqa: E402,F401

failures = []


def check(label, ok, detail=""):
    print(f"{'ok  ' if ok else 'FAIL'} {label}" + ("" if ok else f": {detail}"))
    if not ok:
        failures.append(label)


def calls():
    if not record.exists():
        return []
    out = [json.loads(line) for line in record.read_text().splitlines()]
    record.unlink()
    return out


# A nested base spec, the way pyflyte registers it.
base = ImageSpec(name="eng-base", registry="localhost:5000", packages=["numpy"], env={"B": "1"})
app = ImageSpec(name="eng-app", registry="localhost:5000", base_image=base, packages=["six"], source_root="proj")
ImageBuildEngine.build(app)
got = calls()
check("the engine builds the base, then the app, through the plugin", [c["spec"]["name"] for c in got] == ["eng-base", "eng-app"], got)
if len(got) == 2:
    b, a = got
    check("the binary gets the nested base spec", isinstance(a["spec"].get("base_image"), dict), a["spec"].get("base_image"))
    check("--bases-built", "--bases-built" in a["args"], a["args"])
    check("no --force for a missing image", "--force" not in a["args"], a["args"])
    check("--assume-exists without FLYTE_IMG_FAST_FAIL", "--assume-exists" in a["args"], a["args"])
    check("the app's image is flytekit's", a["image"] == app.image_name(), (a["image"], app.image_name()))
    check("the app's _F_IMG_ID is flytekit's id (nested base)", a["id"] == app.id, (a["id"], app.id))
    check("the base's id", b["id"] == base.id, (b["id"], base.id))
    check("relative paths stay as written, resolved against the cwd", a["spec"]["source_root"] == "proj" and a["args"][a["args"].index("--relative-to") + 1] == os.getcwd(), a["args"])

# Three levels: each nested spec is handed back whole.
top = ImageSpec(name="eng-top", registry="localhost:5000", base_image=ImageSpec(name="eng-mid", registry="localhost:5000", base_image=base, apt_packages=["jq"]), commands=["true"])
ImageBuildEngine.build(top)
got = calls()
check("three levels: mid and top built (base done already)", [c["spec"]["name"] for c in got] == ["eng-mid", "eng-top"], got)
if got:
    check("three levels: top's id", got[-1]["id"] == top.id and got[-1]["image"] == top.image_name(), (got[-1]["id"], top.id))

# A noop base: its builder renames its image (to its base_image), which the nested form
# cannot say: the binary gets the base by that name, so the image name is still flytekit's.
noop_base = ImageSpec(name="eng-noop", base_image="localhost:5000/debian-python:bookworm", builder="noop")
on_noop = ImageSpec(name="eng-on-noop", registry="localhost:5000", base_image=noop_base, packages=["six"])
ImageBuildEngine.build(on_noop)
got = calls()
check("a renamed (noop) base is passed by its real name", len(got) == 1 and got[0]["spec"]["base_image"] == "localhost:5000/debian-python:bookworm", got)
if got:
    check("on a noop base: the image is flytekit's", got[0]["image"] == on_noop.image_name(), (got[0]["image"], on_noop.image_name()))

# force_push(): flytekit overwrites an existing image, so does the binary.
ImageSpec.exist = lambda self: True
forced = ImageSpec(name="eng-forced", registry="localhost:5000", packages=["six"]).force_push()
ImageBuildEngine.build(forced)
got = calls()
check("force_push() passes --force", len(got) == 1 and "--force" in got[0]["args"], got)
ImageBuildEngine.build(ImageSpec(name="eng-exists", registry="localhost:5000"))
check("an existing image is not built", calls() == [])
ImageSpec.exist = lambda self: False

# FLYTE_IMG_FAST_FAIL: true → the binary fails when it cannot tell (exit 3), as flytekit
# raises; false or unset → it assumes the image exists, as flytekit's engine does.
for value, assumed in [("true", False), ("1", False), ("false", True), ("0", True)]:
    os.environ["FLYTE_IMG_FAST_FAIL"] = value
    ImageBuildEngine.build(ImageSpec(name=f"eng-fast-fail-{value}", registry="localhost:5000"))
    got = calls()
    check(f"FLYTE_IMG_FAST_FAIL={value}: --assume-exists {'passed' if assumed else 'not passed'}", len(got) == 1 and ("--assume-exists" in got[0]["args"]) == assumed, got and got[0]["args"])
del os.environ["FLYTE_IMG_FAST_FAIL"]

# loaded_modules with the venv under source_root: flytekit skips site-packages and flytekit.
venv_parent = os.path.dirname(sys.prefix)
mods = ImageSpec(name="eng-mods", source_root=venv_parent, source_copy_mode=CopyFileDetection.LOADED_MODULES)
ImageBuildEngine.build(mods)
got = calls()
check("loaded modules under a source_root holding the venv: same image", len(got) == 1 and got[0]["image"] == mods.image_name(), got and (got[0]["image"], mods.image_name()))
if got:
    leaked = [m for m in got[0].get("modules", []) if m.startswith(sys.prefix) or "site-packages" in m]
    check("no site-packages module in the list", not leaked, leaked[:3])
    check("the user's module is in the list", str(work / "proj" / "pkg" / "mod.py") in got[0].get("modules", []), got[0].get("modules", [])[:5])

# A failed build raises with the step and its output.
os.environ["FAKE_FAIL"] = "1"
try:
    ImageBuildEngine.build(ImageSpec(name="eng-fails", registry="localhost:5000", packages=["nothing-here"]))
    check("a failed build raises", False, "no exception")
except ImagespecBuildError as e:
    text = str(e)
    check("a failed build raises with the step and its output", "RUN uv pip install nothing-here" in text and "No solution found" in text, text)
del os.environ["FAKE_FAIL"]
calls()

# JSON cannot hold a tuple: refused before the binary runs.
try:
    ImageBuildEngine.build(ImageSpec(name="eng-tuple", builder_options={"t": (1, 2)}))
    check("a tuple in builder_options is refused", False, "no exception")
except ValueError as e:
    check("a tuple in builder_options is refused", "builder_options" in str(e) and calls() == [], str(e))

registry = ImageBuildEngine.get_registry()
check("builder priority above default and envd", registry["imagespec"][1] > max(1, 5), registry["imagespec"])
check("specs without a builder get the plugin", ImageSpec(name="x").builder == "imagespec")
check("builder='default' stays flytekit's", ImageSpec(name="x", builder="default").builder == "default" and type(registry["default"][0]).__name__ == "DefaultImageBuilder")

print(f"{'all passed' if not failures else f'{len(failures)} failed'}")
sys.exit(1 if failures else 0)
