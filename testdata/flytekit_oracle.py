"""Shared by the golden generators (gen_goldens.py, gen_render_goldens.py): bootstrapping a
flytekit 1.16.31 venv, isolating the environment, loading spec files, building ``ImageSpec``
objects from them, and materialising corpus cases (see README.md, "Materialisation contract").

Nothing here imports flytekit at import time: call ``bootstrap(script)`` first, which re-executes
``script`` under a venv holding the pinned packages when the current interpreter lacks them.
"""

import contextlib
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import types

FLYTEKIT_VERSION = "1.16.31"
# flytekit does not pin these tightly; both influence results (PyYAML: the generated spec.yaml
# bytes, which are hashed by cases whose source_root is "."; docker: the .dockerignore matcher).
PINNED = [f"flytekit=={FLYTEKIT_VERSION}", "pyyaml==6.0.4", "docker==7.2.0"]
DEFAULT_VENV = "/tmp/imagespec-flytekit-venv"
CORPUS_ROOT = "/tmp/imagespec-corpus"
HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")
GOLDENS_DIR = os.path.join(HERE, "goldens")
_REEXEC_MARK = "_IMAGESPEC_GEN_GOLDENS_REEXEC"


# ----------------------------------------------------------------- bootstrap


def _flytekit_ok() -> bool:
    try:
        import flytekit  # noqa: F401
        import yaml  # noqa: F401
    except ImportError:
        return False
    return flytekit.__version__ == FLYTEKIT_VERSION


def bootstrap(script: str) -> None:
    """Re-exec ``script`` under a venv holding the pinned flytekit if the current interpreter
    lacks it."""
    if _flytekit_ok():
        return
    prog = os.path.basename(script)
    if os.environ.get(_REEXEC_MARK):
        sys.exit(f"{prog}: flytekit {FLYTEKIT_VERSION} still not importable after bootstrapping")
    venv = os.environ.get("IMAGESPEC_FLYTEKIT_VENV", DEFAULT_VENV)
    py = os.path.join(venv, "bin", "python")
    probe = f"import flytekit, yaml, sys; sys.exit(flytekit.__version__ != {FLYTEKIT_VERSION!r})"
    if not (os.path.exists(py) and subprocess.run([py, "-c", probe], capture_output=True).returncode == 0):
        print(f"{prog}: creating venv {venv} with {' '.join(PINNED)}", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
        subprocess.run([py, "-m", "pip", "install", "--quiet", *PINNED], check=True)
    env = dict(os.environ)
    env[_REEXEC_MARK] = "1"
    os.execve(py, [py, os.path.abspath(script), *sys.argv[1:]], env)


def isolate_environment() -> None:
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


class Writer:
    """Writes generated files only when their content changes; in check mode only records
    which ones would change."""

    def __init__(self, check_only: bool):
        self.check_only = check_only
        self.stale = []

    def write_if_changed(self, path: str, text: str) -> None:
        self.write_bytes_if_changed(path, text.encode("utf-8"))

    def write_bytes_if_changed(self, path: str, data: bytes) -> None:
        old = None
        if os.path.exists(path):
            with open(path, "rb") as f:
                old = f.read()
        if old == data:
            return
        self.stale.append(os.path.relpath(path, HERE))
        if not self.check_only:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(data)

    def remove_if_present(self, path: str) -> None:
        if os.path.exists(path):
            self.stale.append(os.path.relpath(path, HERE))
            if not self.check_only:
                os.remove(path)


# ------------------------------------------------------------------- loading


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
    import tomllib

    import yaml

    if path.endswith(".toml"):
        with open(path, "rb") as f:
            return tomllib.load(f)
    with open(path, "r", encoding="utf-8") as f:
        if path.endswith(".yaml"):
            return yaml.safe_load(f)
        return json.load(f)


def dump_yaml(obj) -> str:
    import yaml

    return yaml.safe_dump(obj, sort_keys=False, allow_unicode=True)


def dump_json(obj) -> str:
    return json.dumps(obj, ensure_ascii=False, indent=2, allow_nan=False) + "\n"


def primary_spec_file(case_dir: str) -> str:
    for fmt in ("toml", "yaml", "json"):
        p = os.path.join(case_dir, f"spec.{fmt}")
        if os.path.exists(p):
            return p
    raise SystemExit(f"{case_dir}: no spec.toml / spec.yaml / spec.json")


# ------------------------------------------------------------- spec building


class SpecFileError(ValueError):
    """A problem of the spec file format itself (not something flytekit checks)."""


def _modes():
    from flytekit.constants import CopyFileDetection

    return {
        "all": CopyFileDetection.ALL,
        "no_copy": CopyFileDetection.NO_COPY,
        "none": CopyFileDetection.NO_COPY,
        "loaded_modules": CopyFileDetection.LOADED_MODULES,
        "auto": CopyFileDetection.LOADED_MODULES,
    }


def is_ref(v) -> bool:
    return isinstance(v, dict) and list(v) == ["spec"]


def make_spec(fields, images=None, stack=()):
    """``ImageSpec(**fields)`` with the spec-file conversions of README.md, "Spec loading"."""
    from flytekit.image_spec.image_spec import ImageSpec

    if not isinstance(fields, dict):
        raise SpecFileError(f"a spec must be a table/mapping, got {type(fields).__name__}")
    kwargs = dict(fields)
    mode = kwargs.get("source_copy_mode")
    if isinstance(mode, str):
        modes = _modes()
        if mode.lower() not in modes:
            raise SpecFileError(f"invalid source_copy_mode {mode!r}")
        kwargs["source_copy_mode"] = modes[mode.lower()]
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


def spec_builders(obj):
    """``[(image key, () -> ImageSpec)]`` for a loaded spec file: key ``""`` for single-image
    files, else one per ``[images.KEY]``, sorted."""
    if isinstance(obj, dict) and list(obj) == ["images"] and isinstance(obj["images"], dict):
        images = obj["images"]
        return [(key, lambda key=key: make_spec(images[key], images, (key,))) for key in sorted(images)]
    return [("", lambda: make_spec(obj))]


def error_text(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}"


# ----------------------------------------------------------- materialisation


def cases():
    """The corpus case names, sorted."""
    return [c for c in sorted(os.listdir(CORPUS)) if os.path.isdir(os.path.join(CORPUS, c))]


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


@contextlib.contextmanager
def in_case(case_dir: str):
    """cwd = the materialised case, its modules.txt entries registered as fake modules."""
    cwd = os.getcwd()
    modules = []
    for i, path in enumerate(read_modules(case_dir)):
        name = f"_imagespec_corpus_module_{i}"
        mod = types.ModuleType(name)
        mod.__file__ = path
        sys.modules[name] = mod
        modules.append(name)
    os.chdir(case_dir)
    try:
        yield
    finally:
        os.chdir(cwd)
        for name in modules:
            del sys.modules[name]


def environment_info() -> dict:
    import unicodedata
    from importlib import metadata

    import yaml

    return {
        "python_version": ".".join(map(str, sys.version_info[:3])),
        "unicode_version": unicodedata.unidata_version,
        "pyyaml_version": yaml.__version__,
        "docker_version": metadata.version("docker"),
        "platform_machine": "x86_64 (forced)",
    }


def snapshot_context(context_dir: str, main_file: str) -> dict:
    """A build context as the goldens record it: `main_file` (Dockerfile, build.envd) as
    bytes under "main_bytes", every other file by sha256 (links by target), the executable
    ones, and the empty directories."""
    files, executable, empty_dirs = {}, [], []
    for root, dirs, names in os.walk(context_dir):
        dirs.sort()
        rel_root = os.path.relpath(root, context_dir)
        if not dirs and not names and rel_root != ".":
            empty_dirs.append(rel_root)
        for name in names:
            path = os.path.join(root, name)
            rel = os.path.relpath(path, context_dir)
            if rel == main_file:
                continue
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                files[rel] = "symlink:" + os.readlink(path)
                continue
            with open(path, "rb") as f:
                files[rel] = hashlib.sha256(f.read()).hexdigest()
            if st.st_mode & 0o111:
                executable.append(rel)
        # A symlink to a directory is listed in `dirs` but os.walk does not descend into it.
        for name in dirs:
            path = os.path.join(root, name)
            if os.path.islink(path):
                files[os.path.relpath(path, context_dir)] = "symlink:" + os.readlink(path)
    for rel in files:
        rel.encode("utf-8")  # a non-UTF-8 name would need an encoding scheme shared with the tests
    with open(os.path.join(context_dir, main_file), "rb") as f:
        main = f.read()
    return {
        "main_bytes": main,
        "files": dict(sorted(files.items())),
        "executable": sorted(executable),
        "empty_dirs": sorted(empty_dirs),
    }


#: The Python version the goldens assume for flytekit's own interpreter.
HOST_PYTHON = (3, 11)


def reexec_in_utf8_mode(script: str) -> None:
    """flytekit writes context files (Dockerfile, requirements_uv.txt, build.envd) in the
    locale's encoding: make that UTF-8 whatever the host's locale is (PYTHONUTF8 has to be
    set before the interpreter starts, so `script` is started again with it)."""
    if sys.flags.utf8_mode:
        return
    env = dict(os.environ)
    env["PYTHONUTF8"] = "1"
    os.execve(sys.executable, [sys.executable, os.path.abspath(script), *sys.argv[1:]], env)


def pin_host_python(module: types.ModuleType) -> None:
    """Makes `module` (which reads `sys.version_info` for flytekit's own Python version) see
    HOST_PYTHON, whatever Python runs the generator."""
    if sys.version_info[:2] == HOST_PYTHON:
        return
    fake_sys = types.SimpleNamespace(**{k: getattr(sys, k) for k in dir(sys) if not k.startswith("__")})
    fake_sys.version_info = types.SimpleNamespace(major=HOST_PYTHON[0], minor=HOST_PYTHON[1])
    module.sys = fake_sys
