#!/usr/bin/env python3
"""Golden generator: computes ImageSpec id / tag / image name with flytekit itself.

For every case directory under ``testdata/corpus`` (sorted by name) this script

1. loads the spec (``spec.toml`` if present, else ``spec.yaml``, else ``spec.json``);
   for TOML cases it (re)writes ``spec.yaml`` and ``spec.json`` next to it, after checking
   that they load back to exactly the same Python object (types included);
2. materialises the case at the fixed path ``/tmp/imagespec-corpus/<case>/`` (rm -rf, copy,
   then ``bash setup.sh`` in it when the case has one);
3. chdirs into it, registers the fake modules of ``modules.txt`` (if any) in ``sys.modules``,
   builds the ``ImageSpec`` object(s) and records ``spec.id``, ``spec.tag`` and
   ``spec.image_name()`` (or the exception flytekit raised);
4. writes ``testdata/goldens/tags.json``.

Run it with any Python 3.11+: if flytekit 1.16.31 is not importable it creates a venv
(``$IMAGESPEC_FLYTEKIT_VENV``, default ``/tmp/imagespec-flytekit-venv``), installs the pinned
packages there and re-executes itself with that interpreter.

    python3 testdata/gen_goldens.py            # regenerate everything
    python3 testdata/gen_goldens.py --check    # fail if tags.json / spec.{yaml,json} would change
"""

import os
import subprocess
import sys

FLYTEKIT_VERSION = "1.16.31"
# flytekit does not pin these tightly; both influence results (PyYAML: the generated spec.yaml
# bytes, which are hashed by cases whose source_root is "."; docker: the .dockerignore matcher).
PINNED = [f"flytekit=={FLYTEKIT_VERSION}", "pyyaml==6.0.4", "docker==7.2.0"]
DEFAULT_VENV = "/tmp/imagespec-flytekit-venv"
CORPUS_ROOT = "/tmp/imagespec-corpus"
HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")
GOLDENS = os.path.join(HERE, "goldens", "tags.json")
_REEXEC_MARK = "_IMAGESPEC_GEN_GOLDENS_REEXEC"


def _flytekit_ok() -> bool:
    try:
        import flytekit  # noqa: F401
        import yaml  # noqa: F401
    except ImportError:
        return False
    return flytekit.__version__ == FLYTEKIT_VERSION


def _bootstrap() -> None:
    """Re-exec under a venv holding the pinned flytekit if the current interpreter lacks it."""
    if _flytekit_ok():
        return
    if os.environ.get(_REEXEC_MARK):
        sys.exit(f"gen_goldens: flytekit {FLYTEKIT_VERSION} still not importable after bootstrapping")
    venv = os.environ.get("IMAGESPEC_FLYTEKIT_VENV", DEFAULT_VENV)
    py = os.path.join(venv, "bin", "python")
    probe = f"import flytekit, yaml, sys; sys.exit(flytekit.__version__ != {FLYTEKIT_VERSION!r})"
    if not (os.path.exists(py) and subprocess.run([py, "-c", probe], capture_output=True).returncode == 0):
        print(f"gen_goldens: creating venv {venv} with {' '.join(PINNED)}", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
        subprocess.run([py, "-m", "pip", "install", "--quiet", *PINNED], check=True)
    env = dict(os.environ)
    env[_REEXEC_MARK] = "1"
    os.execve(py, [py, os.path.abspath(__file__), *sys.argv[1:]], env)


def _isolate_environment() -> None:
    """Make the results independent of the host: no FLYTE_* settings, no user/system git config
    (flytekit's GitIgnore runs `git ls-files`, whose output depends on core.excludesFile,
    core.quotePath, ...), and an amd64 host (ImageSpec picks linux/arm64 as the default
    platform for localhost registries on arm64 hosts)."""
    for k in list(os.environ):
        if k.startswith("FLYTE_") or k.startswith("GIT_"):
            del os.environ[k]
    home = CORPUS_ROOT + ".home"  # empty: no ~/.gitconfig, no ~/.config/git/ignore
    os.makedirs(home, exist_ok=True)
    os.environ["HOME"] = home
    os.environ["XDG_CONFIG_HOME"] = home
    os.environ["GIT_CONFIG_NOSYSTEM"] = "1"
    os.environ["GIT_CONFIG_GLOBAL"] = "/dev/null"
    os.environ["LC_ALL"] = "C.UTF-8"
    os.environ["PYTHONUTF8"] = "1"

    import platform

    platform.machine = lambda: "x86_64"  # image_spec.py calls platform.machine()


def main() -> int:
    _bootstrap()
    _isolate_environment()

    import json
    import shutil
    import tomllib
    import types
    import unicodedata
    from importlib import metadata

    import yaml

    import flytekit
    from flytekit.constants import CopyFileDetection
    from flytekit.image_spec.image_spec import ImageSpec

    check_only = "--check" in sys.argv[1:]
    stale = []

    def write_if_changed(path: str, text: str) -> None:
        old = None
        if os.path.exists(path):
            with open(path, "r", encoding="utf-8", newline="") as f:
                old = f.read()
        if old == text:
            return
        stale.append(os.path.relpath(path, HERE))
        if not check_only:
            with open(path, "w", encoding="utf-8", newline="") as f:
                f.write(text)

    def remove_if_present(path: str) -> None:
        if os.path.exists(path):
            stale.append(os.path.relpath(path, HERE))
            if not check_only:
                os.remove(path)

    # ---------------------------------------------------------------- loading

    def strict_eq(a, b) -> bool:
        """Equality that also compares types and dict order (1 != 1.0 != True, nan == nan)."""
        if type(a) is not type(b):
            return False
        if isinstance(a, dict):
            return list(a) == list(b) and all(strict_eq(a[k], b[k]) for k in a)
        if isinstance(a, (list, tuple)):
            return len(a) == len(b) and all(strict_eq(x, y) for x, y in zip(a, b))
        if isinstance(a, float):
            return repr(a) == repr(b)
        return a == b

    def load(path: str):
        if path.endswith(".toml"):
            with open(path, "rb") as f:
                return tomllib.load(f)
        with open(path, "r", encoding="utf-8") as f:
            if path.endswith(".yaml"):
                return yaml.safe_load(f)
            return json.load(f)

    def dump_yaml(obj) -> str:
        return yaml.safe_dump(obj, sort_keys=False, allow_unicode=True)

    def dump_json(obj) -> str:
        return json.dumps(obj, ensure_ascii=False, indent=2, allow_nan=False) + "\n"

    def sync_formats(case_dir: str):
        """Returns (spec object, formats). For TOML cases writes the YAML / JSON twins."""
        toml_path = os.path.join(case_dir, "spec.toml")
        if not os.path.exists(toml_path):
            for fmt in ("yaml", "json"):
                p = os.path.join(case_dir, f"spec.{fmt}")
                if os.path.exists(p):
                    return load(p), [fmt]
            raise SystemExit(f"{case_dir}: no spec.toml / spec.yaml / spec.json")
        obj = load(toml_path)
        formats = ["toml"]
        for fmt, dump, parse in (
            ("yaml", dump_yaml, yaml.safe_load),
            ("json", dump_json, json.loads),
        ):
            path = os.path.join(case_dir, f"spec.{fmt}")
            try:
                text = dump(obj)
                ok = strict_eq(parse(text), obj)
            except (ValueError, TypeError, yaml.YAMLError):
                ok = False
            if ok:
                formats.append(fmt)
                write_if_changed(path, text)
            else:
                remove_if_present(path)
        return obj, formats

    # --------------------------------------------------------- spec building

    MODES = {
        "all": CopyFileDetection.ALL,
        "no_copy": CopyFileDetection.NO_COPY,
        "none": CopyFileDetection.NO_COPY,
        "loaded_modules": CopyFileDetection.LOADED_MODULES,
        "auto": CopyFileDetection.LOADED_MODULES,
    }

    class SpecFileError(ValueError):
        """A problem of the spec file format itself (not something flytekit checks)."""

    def is_ref(v) -> bool:
        return isinstance(v, dict) and list(v) == ["spec"]

    def make_spec(fields, images=None, stack=()):
        if not isinstance(fields, dict):
            raise SpecFileError(f"a spec must be a table/mapping, got {type(fields).__name__}")
        kwargs = dict(fields)
        mode = kwargs.get("source_copy_mode")
        if isinstance(mode, str):
            if mode.lower() not in MODES:
                raise SpecFileError(f"invalid source_copy_mode {mode!r}")
            kwargs["source_copy_mode"] = MODES[mode.lower()]
        mounts = kwargs.get("pip_secret_mounts")
        if isinstance(mounts, list):
            kwargs["pip_secret_mounts"] = [tuple(m) if isinstance(m, list) else m for m in mounts]
        base = kwargs.get("base_image")
        if isinstance(base, dict):
            if images is not None and is_ref(base):
                key = base["spec"]
                if key not in images:
                    raise SpecFileError(f"base_image refers to unknown image {key!r}")
                if key in stack:
                    raise SpecFileError("cyclic base_image references: " + " -> ".join([*stack, key]))
                kwargs["base_image"] = make_spec(images[key], images, (*stack, key))
            else:
                kwargs["base_image"] = make_spec(base, images, stack)
        return ImageSpec(**kwargs)

    def evaluate(build):
        try:
            spec = build()
            return {"id": spec.id, "tag": spec.tag, "image": spec.image_name()}
        except Exception as e:  # flytekit's own validation errors, I/O errors, ...
            return {"error": f"{type(e).__name__}: {e}"}

    def evaluate_file(obj):
        if isinstance(obj, dict) and list(obj) == ["images"] and isinstance(obj["images"], dict):
            images = obj["images"]
            return {key: evaluate(lambda key=key: make_spec(images[key], images, (key,))) for key in sorted(images)}
        return {"": evaluate(lambda: make_spec(obj))}

    # ------------------------------------------------------- materialisation

    def materialise(case: str) -> str:
        dst = os.path.join(CORPUS_ROOT, case)
        shutil.rmtree(dst, ignore_errors=True)
        os.makedirs(CORPUS_ROOT, exist_ok=True)
        shutil.copytree(os.path.join(CORPUS, case), dst, symlinks=True)
        if os.path.exists(os.path.join(dst, "setup.sh")):
            r = subprocess.run(["bash", "setup.sh"], cwd=dst, capture_output=True, text=True)
            if r.returncode != 0:
                raise SystemExit(f"{case}: setup.sh failed ({r.returncode}):\n{r.stdout}{r.stderr}")
        return dst

    def read_modules(case_dir: str):
        path = os.path.join(case_dir, "modules.txt")
        if not os.path.exists(path):
            return []
        with open(path, "r", encoding="utf-8") as f:
            lines = [line.rstrip("\n") for line in f]
        return [os.path.join(case_dir, line) for line in lines if line.strip()]

    # ------------------------------------------------------------------ main

    cwd = os.getcwd()
    results = {}
    for case in sorted(os.listdir(CORPUS)):
        src = os.path.join(CORPUS, case)
        if not os.path.isdir(src):
            continue
        obj, formats = sync_formats(src)
        dst = materialise(case)
        modules = []
        for i, path in enumerate(read_modules(dst)):
            name = f"_imagespec_corpus_module_{i}"
            mod = types.ModuleType(name)
            mod.__file__ = path
            sys.modules[name] = mod
            modules.append(name)
        os.chdir(dst)
        try:
            # A fresh ImageSpec per format would be redundant: the formats were checked above
            # to load to the very same Python object.
            images = evaluate_file(obj)
        finally:
            os.chdir(cwd)
            for name in modules:
                del sys.modules[name]
        results[case] = {"formats": formats, "images": images}

    out = {
        "flytekit_version": flytekit.__version__,
        "environment": {
            "python_version": ".".join(map(str, sys.version_info[:3])),
            "unicode_version": unicodedata.unidata_version,
            "pyyaml_version": yaml.__version__,
            "docker_version": metadata.version("docker"),
            "platform_machine": "x86_64 (forced)",
        },
        "cases": results,
    }
    os.makedirs(os.path.dirname(GOLDENS), exist_ok=True)
    write_if_changed(GOLDENS, json.dumps(out, indent=2, sort_keys=True, ensure_ascii=False) + "\n")

    if check_only and stale:
        print("gen_goldens --check: out of date:\n  " + "\n  ".join(stale), file=sys.stderr)
        return 1
    n_img = sum(len(c["images"]) for c in results.values())
    n_err = sum(1 for c in results.values() for r in c["images"].values() if "error" in r)
    print(f"gen_goldens: {len(results)} cases, {n_img} images ({n_err} rejected); updated: {len(stale)} file(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
