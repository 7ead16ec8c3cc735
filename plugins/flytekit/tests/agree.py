"""Agree-test: for a corpus of Python ImageSpecs, the image the plugin's binary names is
flytekit's `spec.image_name()`, through the very path the builder uses (spec → JSON →
`imagespec tag`), and `imagespec inspect` reports flytekit's `spec.id`. Specs on nested base
specs are also checked the way flytekit's ImageBuildEngine hands them to a builder (a copy
whose base is an image name, with the id computed on the nested spec).

Run with the plugin venv's python, from any directory: python agree.py
Exit 0 when every case agrees; prints one line per case.
"""
import copy
import json
import os
import sys
import tempfile
from pathlib import Path

from flytekit.image_spec.image_spec import CopyFileDetection, ImageSpec
from flytekitplugins.imagespec.builder import run_binary, spec_for_binary

work = Path(tempfile.mkdtemp(prefix="imagespec-agree-"))
os.chdir(work)
(work / "src" / "pkg").mkdir(parents=True)
(work / "src" / "pkg" / "__init__.py").write_text("")
(work / "src" / "pkg" / "tasks.py").write_text("def t():\n    return 1\n")
(work / "src" / "notes.md").write_text("notes\n")
(work / "src" / ".dockerignore").write_text("*.md\n")
(work / "requirements.txt").write_text("requests==2.32.3\n\npyyaml\n")
(work / "conf").mkdir()
(work / "conf" / "app.ini").write_text("[app]\nk = 1\n")
(work / "assets" / "sub").mkdir(parents=True)
(work / "assets" / "sub" / "b.txt").write_text("b\n")
(work / "secret.txt").write_text("token\n")
(work / "tree" / "pkg").mkdir(parents=True)
(work / "tree" / "pkg" / "ünï.py").write_text("S = '✓'\n")
(work / "tree" / "build").mkdir()
(work / "tree" / "build" / "out.bin").write_bytes(b"\x00\x01")
(work / "tree" / ".gitignore").write_text("build/\n")
os.system(f"git -C {work / 'tree'} init -q")
sys.path.insert(0, str(work / "src"))
import pkg.tasks  # noqa: E402,F401  (a loaded module under source_root)

base = ImageSpec(name="agree-base", registry="localhost:5000", packages=["numpy"], env={"B": "1"})
cases = {
    "packages": ImageSpec(name="agree", registry="localhost:5000", packages=["pyyaml", "requests==2.32.3"]),
    "env order and unicode": ImageSpec(name="agree", env={"Z": "last", "A": "ünïcødé ✓", "Q": "it's \"quoted\""}),
    "nested base spec": ImageSpec(name="agree-app", registry="localhost:5000", base_image=base, packages=["six"]),
    "base as an image name": ImageSpec(name="agree-app", registry="localhost:5000", base_image=base.image_name(), packages=["six"]),
    "requirements": ImageSpec(name="agree", registry="localhost:5000", requirements="requirements.txt"),
    "source_root all": ImageSpec(name="agree", source_root="src", source_copy_mode=CopyFileDetection.ALL),
    "source_root loaded modules": ImageSpec(name="agree", source_root="src"),
    "copy": ImageSpec(name="agree", copy=["conf/app.ini", "assets"]),
    "everything": ImageSpec(
        name="Agree-Everything",
        python_version="3.11",
        registry="Localhost:5000",
        packages=["a", "b"],
        conda_packages=["c"],
        conda_channels=["conda-forge"],
        apt_packages=["git", "jq"],
        cuda="12.1",
        cudnn="8",
        platform="linux/amd64,linux/arm64",
        pip_index="https://pypi.org/simple",
        pip_extra_index_url=["https://a.example/simple"],
        pip_secret_mounts=[("secret.txt", "/run/secrets/token")],
        pip_extra_args="--no-deps",
        entrypoint=["python", "-m", "x"],
        commands=["echo hi", "true"],
        tag_format="{spec_hash}-dev",
        builder_options={"k": 1, "b": True},
        builder_config={"uv_image": "localhost:5000/uv:0.5"},
        runtime_packages=["r"],
        python_exec="/usr/bin/python3",
    ),
    "float python_version": ImageSpec(name="agree", python_version=3.10),
    "no_copy": ImageSpec(name="agree", source_root="src", source_copy_mode=CopyFileDetection.NO_COPY),
    "absolute source_root, git ignore, unicode file": ImageSpec(name="agree", source_root=str(work / "tree"), source_copy_mode=CopyFileDetection.ALL),
    "loaded modules, absolute root": ImageSpec(name="agree", source_root=str(work / "src"), env={"N": 1, "F": 2.5, "T": True}),
    "three levels of nested specs": ImageSpec(
        name="agree-top",
        registry="localhost:5000",
        base_image=ImageSpec(name="agree-mid", registry="localhost:5000", base_image=base, apt_packages=["jq"], copy=["conf"]),
        source_root=str(work / "src"),
        source_copy_mode=CopyFileDetection.ALL,
    ),
}


def engine_copy(spec):
    """What ImageBuildEngine.build hands a builder: a deep copy (id already computed, by its
    lru_cache hashing the spec) whose nested base is replaced by that base's image name."""
    hash(spec)
    c = copy.deepcopy(spec)
    if isinstance(c.base_image, ImageSpec):
        c.base_image = c.base_image.image_name()
    return c


for label in ["nested base spec", "three levels of nested specs"]:
    original = cases[label]
    cases[f"{label}, as the engine hands it"] = (original, spec_for_binary(engine_copy(original), original))

failures = 0
for label, spec in cases.items():
    want, spec = spec if isinstance(spec, tuple) else (spec, spec)
    want_image, want_id = want.image_name(), want.id
    code, stdout, tail = run_binary("tag", spec, echo=False)
    got_image = stdout.strip()
    code2, stdout2, tail2 = run_binary("inspect", spec, "--json", echo=False)
    got_id = json.loads(stdout2)["id"] if code2 == 0 else f"<exit {code2}: {tail2}>"
    ok = code == 0 and got_image == want_image and got_id == want_id
    failures += not ok
    print(f"{'ok  ' if ok else 'FAIL'} {label}: {want_image} {want_id}" + ("" if ok else f" | binary: {got_image or tail} {got_id}"))
print(f"{len(cases) - failures}/{len(cases)} agree")
sys.exit(1 if failures else 0)
