"""The ``ImageSpecBuilder`` that hands a spec to the ``imagespec`` binary."""

from __future__ import annotations

import collections
import dataclasses
import enum
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import typing
from pathlib import Path

from flytekit.image_spec.image_spec import ImageBuildEngine, ImageSpec, ImageSpecBuilder

#: Above flytekit's default builder (1) and the envd plugin (5).
PRIORITY = 10
BUILDER_TYPE = "imagespec"


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


def spec_to_dict(spec: ImageSpec) -> typing.Dict[str, typing.Any]:
    """Every field of ``spec`` as imagespec's JSON spec format has it: unset fields left
    out, nested base specs as nested objects, ``source_copy_mode`` by name. Paths stay as
    written (they are part of the id); the binary resolves them against this process's
    working directory, as flytekit does."""
    out: typing.Dict[str, typing.Any] = {}
    for field in dataclasses.fields(spec):
        if field.name.startswith("_"):
            continue
        value = getattr(spec, field.name)
        if value is None:
            continue
        if isinstance(value, ImageSpec):
            value = spec_to_dict(value)
        elif isinstance(value, enum.Enum):
            value = value.name.lower()
        elif isinstance(value, tuple):
            value = list(value)
        if field.name == "pip_secret_mounts":
            value = [list(pair) for pair in value]
        out[field.name] = value
    return out


def loaded_module_files() -> typing.List[str]:
    """``__file__`` of every loaded module: what flytekit's ``loaded_modules`` mode copies
    (the binary keeps those under ``source_root``)."""
    files = []
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if isinstance(path, str):
            files.append(path)
    return files


def run_binary(command: str, spec: ImageSpec, *extra: str, echo: bool = True) -> typing.Tuple[int, str, str]:
    """Runs ``imagespec COMMAND`` on ``spec``: its progress (stderr) is passed on to this
    process's stderr line by line as it comes; returns the exit code, stdout and the last
    lines of stderr."""
    with tempfile.TemporaryDirectory(prefix="imagespec-") as tmp:
        spec_file = Path(tmp, "spec.json")
        spec_file.write_text(json.dumps(spec_to_dict(spec), ensure_ascii=False))
        args = [binary(), command, str(spec_file), "--relative-to", os.getcwd(), *extra]
        if spec.source_root is not None:
            modules = Path(tmp, "modules.txt")
            modules.write_text("\n".join(loaded_module_files()))
            args += ["--modules-from", str(modules)]
        tail: typing.Deque[str] = collections.deque(maxlen=80)
        with subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
            assert proc.stderr is not None and proc.stdout is not None
            for line in proc.stderr:
                tail.append(line.rstrip("\n"))
                if echo:
                    sys.stderr.write(line)
                    sys.stderr.flush()
            stdout = proc.stdout.read()
        return proc.returncode, stdout, "\n".join(tail)


class ImagespecBuilder(ImageSpecBuilder):
    """Builds and pushes an ``ImageSpec`` with the ``imagespec`` binary."""

    builder_type = BUILDER_TYPE

    def build_image(self, image_spec: ImageSpec) -> typing.Optional[str]:
        # flytekit has decided to build (should_build); the binary asks the registry again
        # (one request) and reads FLYTE_PUSH_IMAGE_SPEC / FLYTE_FORCE_PUSH_IMAGE_SPEC from
        # the same environment, so it does what flytekit's default builder would.
        code, stdout, tail = run_binary("build", image_spec)
        if code != 0:
            raise RuntimeError(f"imagespec build of {image_spec.image_name()} failed (exit {code}):\n{tail}")
        lines = stdout.strip().splitlines()
        image = lines[-1] if lines else image_spec.image_name()
        if image != image_spec.image_name():
            raise RuntimeError(f"imagespec built {image}, but flytekit names this spec {image_spec.image_name()}")
        return image


def register() -> None:
    """Registers the builder with flytekit (done when the plugin is imported)."""
    ImageBuildEngine.register(BUILDER_TYPE, ImagespecBuilder(), priority=PRIORITY)
