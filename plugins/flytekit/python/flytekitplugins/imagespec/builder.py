"""The ``ImageSpecBuilder`` that hands a spec to the ``imagespec`` binary.

flytekit's ``ImageBuildEngine.build`` decides whether to build (``should_build``: ``exist()``,
``FLYTE_FORCE_PUSH_IMAGE_SPEC``, ``FLYTE_IMG_FAST_FAIL``), builds nested base specs first,
then calls ``build_image`` with a copy of the spec. The builder writes that spec to a
temporary JSON spec file and runs ``imagespec build`` on it:

- every field as written (paths too: they are part of the spec's id; the binary resolves them
  against this process's working directory with ``--relative-to``, as flytekit does);
- the nested base spec the engine was called with (the copy it hands builders names the base
  by image name, but keeps the id it computed with the nested spec, and that id is what the
  image's ``_F_IMG_ID`` and so ``is_container()`` compare); ``--bases-built``, because the
  engine has built them;
- ``--modules-from``: for ``source_copy_mode = loaded_modules``, the module files only this
  process knows, chosen as flytekit's ``list_imported_modules_as_files`` chooses them;
- ``--force`` when flytekit decided to overwrite an existing image (``force_push()``);
- ``--assume-exists`` unless ``FLYTE_IMG_FAST_FAIL`` is true: when the binary cannot tell
  whether the image exists, it then assumes it does, as flytekit's engine does (on its own,
  the binary fails with exit 3 instead).
"""

from __future__ import annotations

import collections
import copy
import enum
import inspect
import json
import os
import shutil
import site
import subprocess
import sys
import sysconfig
import tempfile
import typing
from dataclasses import fields
from pathlib import Path

import click
import flytekit
from flytekit.image_spec.image_spec import ImageBuildEngine, ImageSpec, ImageSpecBuilder

#: Above flytekit's default builder (1) and the envd plugin (5): the highest priority wins.
PRIORITY = 10
BUILDER_TYPE = "imagespec"

# Fields flytekit leaves out of the id (and the tag): any JSON form of them will do.
_NOT_HASHED = {"pip_secret_mounts", "builder", "runtime_packages"}


class ImagespecBuildError(RuntimeError):
    """``imagespec build`` failed; the message names the failing step and ends with its output."""

    def __init__(self, image: str, exit_code: int, report: str):
        super().__init__(f"imagespec could not build {image} (exit {exit_code}):\n{report}")
        self.image = image
        self.exit_code = exit_code
        self.report = report


def fast_fail() -> bool:
    """``FLYTE_IMG_FAST_FAIL`` as flytekit reads it (``str2bool``): unset, false, 0, off and no
    are false; anything else is true."""
    value = os.environ.get("FLYTE_IMG_FAST_FAIL")
    return value is not None and value.lower() not in ("false", "0", "off", "no")


def binary() -> str:
    """The ``imagespec`` binary: ``IMAGESPEC_BINARY``, the one installed with this wheel, or PATH."""
    explicit = os.environ.get("IMAGESPEC_BINARY")
    if explicit:
        return explicit
    for scripts in (sysconfig.get_path("scripts"), os.path.dirname(sys.executable)):
        candidate = os.path.join(scripts, "imagespec")
        if os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("imagespec")
    if found:
        return found
    raise RuntimeError("the imagespec binary was not found: reinstall flytekitplugins-imagespec or set IMAGESPEC_BINARY")


def _json_value(spec: ImageSpec, field: str, value: typing.Any) -> typing.Any:
    """``value`` as JSON holds it; an error when JSON would change its ``repr()`` (a tuple, a
    ``Path``, a non-string key), which is what flytekit hashes into the id and tag."""
    if field == "source_copy_mode" and isinstance(value, enum.Enum):
        return value.name.lower()
    if field in _NOT_HASHED:
        return [list(v) for v in value] if field == "pip_secret_mounts" else value
    try:
        same = repr(json.loads(json.dumps(value))) == repr(value)
    except (TypeError, ValueError):
        same = False
    if not same:
        raise ValueError(
            f"ImageSpec {spec.name!r}: {field}={value!r} has no JSON form with the same repr() "
            f"(flytekit hashes the repr into the image name); use plain str/int/float/bool/list/dict "
            f"values, or builder='default'"
        )
    return value


def spec_to_dict(spec: ImageSpec) -> typing.Dict[str, typing.Any]:
    """Every set field of ``spec`` as imagespec's JSON spec format has it, nested base specs
    as nested objects, ``source_copy_mode`` by name. Paths stay as written."""
    out: typing.Dict[str, typing.Any] = {}
    for f in fields(spec):
        value = getattr(spec, f.name)
        if value is None:
            continue
        out[f.name] = spec_to_dict(value) if isinstance(value, ImageSpec) else _json_value(spec, f.name, value)
    return out


def _specs(spec: ImageSpec) -> typing.Iterator[ImageSpec]:
    """``spec`` and its nested base specs."""
    while isinstance(spec, ImageSpec):
        yield spec
        spec = spec.base_image


def loaded_module_files() -> typing.List[str]:
    """The loaded modules' files that may be user code: flytekit's
    ``list_imported_modules_as_files`` without its last test (in ``source_root``), which the
    binary applies per spec. Modules of flytekit itself, of the interpreter and of
    site-packages never count; duplicates stay, as flytekit hashes them twice."""
    from flytekit.tools.script_mode import _file_is_in_directory  # flytekit's commonpath test

    invalid = [
        os.path.dirname(flytekit.__file__),
        sys.prefix,
        sys.base_prefix,
        site.getusersitepackages(),
        *site.getsitepackages(),
    ]
    files = []
    for module in list(sys.modules.values()):
        try:
            path = module.__file__
        except AttributeError:
            continue
        if path is None or any(_file_is_in_directory(path, d) for d in invalid):
            continue
        files.append(path)
    return files


def _engine_build_code() -> typing.Optional[typing.Any]:
    """The code object of ``ImageBuildEngine.build`` (a classmethod around ``lru_cache``)."""
    build = inspect.getattr_static(ImageBuildEngine, "build", None)
    func = getattr(build, "__func__", build)
    func = getattr(func, "__wrapped__", func)
    return getattr(func, "__code__", None)


def engine_original(image_spec: ImageSpec) -> typing.Optional[ImageSpec]:
    """The spec ``ImageBuildEngine.build`` was called with, when it called us with its copy.

    The engine builds a nested base spec, then replaces it in its copy by the base's image
    name; the copy keeps the id computed with the nested spec (``id`` is cached, and the
    engine's ``lru_cache`` computed it). The default builder writes that id into the image.
    """
    code = _engine_build_code()
    frame = inspect.currentframe()
    try:
        caller = frame.f_back if frame is not None else None
        for _ in range(4):
            if caller is None:
                break
            if caller.f_code is code and caller.f_locals.get("spec") is image_spec:
                original = caller.f_locals.get("image_spec")
                return original if isinstance(original, ImageSpec) else None
            caller = caller.f_back
    finally:
        del frame
    return None


def spec_for_binary(image_spec: ImageSpec, original: typing.Optional[ImageSpec] = None) -> ImageSpec:
    """The spec to hand the binary: ``image_spec`` with the nested base spec of ``original``
    (the engine's spec) put back, unless a builder renamed that base's image (the nested form
    would name it by its computed name). Warns when the binary's id would not be the id
    flytekit has for the spec, since ``is_container()`` would then answer False in the image."""
    spec = image_spec
    base = original.base_image if original is not None else None
    if isinstance(base, ImageSpec) and isinstance(image_spec.base_image, str):
        real_names = getattr(ImageBuildEngine, "_IMAGE_NAME_TO_REAL_NAME", {})
        renamed = any(real == image_spec.base_image != name for name, real in real_names.items())
        if not renamed:
            spec = copy.copy(image_spec)
            for cached in ("id", "tag"):
                spec.__dict__.pop(cached, None)
            spec.base_image = base
    fresh = copy.copy(spec)
    fresh.__dict__.pop("id", None)
    if fresh.id != image_spec.id:
        click.secho(
            f"imagespec: the image {image_spec.image_name()} gets _F_IMG_ID={fresh.id}, flytekit's id for this "
            f"spec is {image_spec.id}: is_container() will answer False in it",
            fg="yellow",
            err=True,
        )
    return spec


def binary_env() -> typing.Dict[str, str]:
    """This process's environment, plus what flytekit's default builder takes from the running
    flytekit: the flytekit requirement it adds to packages (``get_flytekit_for_pypi``) and
    the Python version of its interpreter. Neither enters the image name."""
    from flytekit.image_spec.default_builder import get_flytekit_for_pypi

    env = dict(os.environ)
    env.setdefault("IMAGESPEC_FLYTEKIT_REQUIREMENT", get_flytekit_for_pypi())
    env.setdefault("IMAGESPEC_HOST_PYTHON_VERSION", f"{sys.version_info.major}.{sys.version_info.minor}")
    return env


def run_binary(command: str, spec: ImageSpec, *extra: str, echo: bool = True) -> typing.Tuple[int, str, typing.List[str]]:
    """Runs ``imagespec COMMAND`` on ``spec`` (written to a temporary JSON spec file). Its
    progress (stderr) goes to this process's stderr line by line as it comes (``echo``).
    Returns the exit code, stdout, and stderr's lines (the last 2000)."""
    with tempfile.TemporaryDirectory(prefix="imagespec-") as tmp:
        spec_file = Path(tmp, "spec.json")
        spec_file.write_text(json.dumps(spec_to_dict(spec), ensure_ascii=False), encoding="utf-8")
        args = [binary(), command, str(spec_file), "--relative-to", os.getcwd(), *extra]
        if any(s.source_root is not None for s in _specs(spec)):
            modules = Path(tmp, "modules.txt")
            modules.write_text("\n".join(loaded_module_files()), encoding="utf-8")
            args += ["--modules-from", str(modules)]
        lines: typing.Deque[str] = collections.deque(maxlen=2000)
        with subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding="utf-8", errors="replace", env=binary_env()
        ) as proc:
            assert proc.stderr is not None and proc.stdout is not None
            for line in proc.stderr:
                lines.append(line.rstrip("\n"))
                if echo:
                    sys.stderr.write(line)
                    sys.stderr.flush()
            stdout = proc.stdout.read()
        return proc.returncode, stdout, list(lines)


def failure_report(lines: typing.List[str]) -> str:
    """The binary's error (``error: ...``: the failing step and the end of its output, and
    the causes) from its stderr, or the last lines when it printed none."""
    starts = [i for i, line in enumerate(lines) if line.startswith("error: ")]
    return "\n".join(lines[starts[-1]:] if starts else lines[-60:])


class ImagespecBuilder(ImageSpecBuilder):
    """Builds and pushes an ``ImageSpec`` with the ``imagespec`` binary."""

    builder_type = BUILDER_TYPE

    def build_image(self, image_spec: ImageSpec) -> typing.Optional[str]:
        """Builds (and, unless ``FLYTE_PUSH_IMAGE_SPEC`` is false, pushes) the image flytekit
        names ``image_spec.image_name()``. Returns None, as flytekit's default builder does:
        the image has flytekit's name."""
        spec = spec_for_binary(image_spec, engine_original(image_spec))
        extra = ["--bases-built"]
        # flytekit only calls a builder when the image is missing or when it is to be
        # overwritten; the binary would skip an existing image unless told.
        if getattr(image_spec, "_is_force_push", False):
            extra.append("--force")
        # flytekit's engine assumes an image exists when it cannot tell (exist() is None),
        # unless FLYTE_IMG_FAST_FAIL; the binary fails (exit 3) unless told to assume.
        if not fast_fail():
            extra.append("--assume-exists")
        code, stdout, lines = run_binary("build", spec, *extra)
        image = image_spec.image_name()
        if code != 0:
            raise ImagespecBuildError(image, code, failure_report(lines))
        out = stdout.strip().splitlines()
        built = out[-1] if out else ""
        if built != image:
            raise RuntimeError(f"imagespec built {built or '(nothing)'}, but flytekit names this spec {image}")
        return None


def register() -> None:
    """Registers the builder with flytekit (done when the plugin is imported)."""
    ImageBuildEngine.register(BUILDER_TYPE, ImagespecBuilder(), priority=PRIORITY)
