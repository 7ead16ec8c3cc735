"""The ``ImageSpecBuilder`` that hands a spec to the ``imagespec`` binary.

flytekit's ``ImageBuildEngine.build`` builds nested base specs first, asks the builder's
``should_build`` whether to build, then calls ``build_image`` with a copy of the spec.

``should_build`` is flytekit's, word for word, except that the registry is asked through
``imagespec exists`` instead of ``ImageSpec.exist()`` (which asks the Docker daemon and, on a
runner without one, answers None: flytekit then assumes every image exists and builds
nothing). The registry answers without a daemon; a spec without ``registry`` still asks the
local daemon.

``build_image`` writes the spec to a temporary JSON spec file and runs
``imagespec build --json`` on it:

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

The events are printed as progress lines as they come; the result event is logged in one
line (with the image's digest).
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
import threading
import typing
from dataclasses import fields
from pathlib import Path

import click
import flytekit
from flytekit.image_spec.image_spec import ImageBuildEngine, ImageSpec, ImageSpecBuilder

from ._fields import NOT_HASHED

#: Above flytekit's default builder (1) and the envd plugin (5): the highest priority wins.
PRIORITY = 10
BUILDER_TYPE = "imagespec"


class ImagespecError(RuntimeError):
    """A run of the binary failed: ``command`` (``build``, ``exists``) on ``image`` ended with
    ``exit_code``; ``report`` is its error (for a build, the failing step and the end of its
    output), once."""

    def __init__(self, command: str, image: str, exit_code: int, report: str):
        verb = "build" if command == "build" else f"run `imagespec {command}` for"
        super().__init__(f"imagespec could not {verb} {image} (exit {exit_code}):\n{report}")
        self.command = command
        self.image = image
        self.exit_code = exit_code
        self.report = report


class ImagespecBuildError(ImagespecError):
    """``imagespec build`` failed; the message names the failing step and ends with its output."""

    def __init__(self, image: str, exit_code: int, report: str):
        super().__init__("build", image, exit_code, report)


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
    # Fields flytekit leaves out of the id (and the tag): any JSON form of them will do.
    if field in NOT_HASHED:
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


def spec_for_binary(image_spec: ImageSpec, original: typing.Optional[ImageSpec] = None, warn: bool = True) -> ImageSpec:
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
    if warn and fresh.id != image_spec.id:
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
    the Python version of its interpreter. Neither enters the image name. flytekit has named
    the image already, so a defaults file's ``base_image`` and ``registry`` (which would change
    the name) are not applied; its other defaults (mirrors, CA bundle...) are."""
    from flytekit.image_spec.default_builder import get_flytekit_for_pypi

    env = dict(os.environ)
    env.setdefault("IMAGESPEC_DEFAULTS_KEEP_NAME", "1")
    env.setdefault("IMAGESPEC_FLYTEKIT_REQUIREMENT", get_flytekit_for_pypi())
    env.setdefault("IMAGESPEC_HOST_PYTHON_VERSION", f"{sys.version_info.major}.{sys.version_info.minor}")
    return env


class BinaryRun(typing.NamedTuple):
    """What a run of the binary left: its exit code, its stdout, and its stderr's lines (both
    the last 2000 lines)."""

    code: int
    stdout: str
    stderr: typing.List[str]


_KEPT_LINES = 2000


def _pump(stream: typing.IO[str], kept: typing.Deque[str], handle: typing.Optional[typing.Callable[[str], None]]) -> None:
    for line in stream:
        line = line.rstrip("\n")
        kept.append(line)
        if handle is not None:
            handle(line)


def run_binary(
    command: str,
    spec: ImageSpec,
    *extra: str,
    echo: bool = True,
    on_stdout: typing.Optional[typing.Callable[[str], None]] = None,
) -> BinaryRun:
    """Runs ``imagespec COMMAND`` on ``spec`` (written to a temporary JSON spec file).

    stdout and stderr are read at once, each by its own thread: a binary that fills one pipe
    while this process waits on the other would otherwise wait forever (a ``--json`` build
    writes every log line of every step to stdout). Each stdout line goes to ``on_stdout`` as
    it comes; stderr goes to this process's stderr line by line (``echo``) until the
    binary's final ``error:`` report, which is left to the caller (it is raised, not printed
    twice)."""
    with tempfile.TemporaryDirectory(prefix="imagespec-") as tmp:
        spec_file = Path(tmp, "spec.json")
        spec_file.write_text(json.dumps(spec_to_dict(spec), ensure_ascii=False), encoding="utf-8")
        args = [binary(), command, str(spec_file), "--relative-to", os.getcwd(), *extra]
        if any(s.source_root is not None for s in _specs(spec)):
            modules = Path(tmp, "modules.txt")
            modules.write_text("\n".join(loaded_module_files()), encoding="utf-8")
            args += ["--modules-from", str(modules)]
        out: typing.Deque[str] = collections.deque(maxlen=_KEPT_LINES)
        err: typing.Deque[str] = collections.deque(maxlen=_KEPT_LINES)
        reporting_error = False

        def echo_stderr(line: str) -> None:
            nonlocal reporting_error
            reporting_error = reporting_error or line.startswith("error: ")
            if echo and not reporting_error:
                sys.stderr.write(line + "\n")
                sys.stderr.flush()

        with subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
            env=binary_env(),
        ) as proc:
            assert proc.stderr is not None and proc.stdout is not None
            readers = [
                threading.Thread(target=_pump, args=(proc.stdout, out, on_stdout), daemon=True),
                threading.Thread(target=_pump, args=(proc.stderr, err, echo_stderr), daemon=True),
            ]
            for reader in readers:
                reader.start()
            for reader in readers:
                reader.join()
            code = proc.wait()
        return BinaryRun(code, "".join(line + "\n" for line in out), list(err))


def failure_report(stderr: typing.List[str], error_event: typing.Optional[typing.Dict[str, typing.Any]] = None) -> str:
    """The binary's error, once: its ``error: ...`` report on stderr (the failing step, the
    end of that step's output, the causes), else the message of its ``--json`` error event,
    else the last lines it printed."""
    starts = [i for i, line in enumerate(stderr) if line.startswith("error: ")]
    if starts:
        return "\n".join(stderr[starts[-1]:])
    if error_event is not None and error_event.get("message"):
        return f"error: {error_event['message']}"
    return "\n".join(stderr[-60:]) or "(the binary printed nothing)"


class _Events:
    """Reads ``imagespec build --json``'s events as they come: prints them as the binary's
    plain progress lines would read, keeps the ``result`` and ``error`` events."""

    def __init__(self, echo: bool = True):
        self.echo = echo
        self.result: typing.Optional[typing.Dict[str, typing.Any]] = None
        self.error: typing.Optional[typing.Dict[str, typing.Any]] = None

    def _say(self, text: str) -> None:
        if self.echo:
            sys.stderr.write(text + "\n")
            sys.stderr.flush()

    def __call__(self, line: str) -> None:
        try:
            event = json.loads(line)
        except ValueError:
            self._say(line)
            return
        if not isinstance(event, dict):
            self._say(line)
            return
        kind = event.get("event")
        if kind == "result":
            self.result = event
        elif kind == "error":
            self.error = event
        elif kind == "info":
            self._say(str(event.get("message", "")))
        elif kind == "warning":
            self._say(f"warning: {event.get('message', '')}")
        elif kind == "step" and event.get("state") == "started":
            # `label` says what the step is for ("install Python packages (3)"); binaries
            # before it sent BuildKit's `name` only.
            self._say(f"=> {event.get('label') or event.get('name', '')}")
        elif kind == "step":
            failed = event.get("state") == "failed"
            mark, when = ("✗", f"{event.get('seconds') or 0:.1f}s") if failed else ("·", "cached") if event.get("cached") else ("✓", f"{event.get('seconds') or 0:.1f}s")
            self._say(f"{mark} {event.get('label') or event.get('name', '')} ({when})")
        elif kind == "log":
            for text in str(event.get("text", "")).splitlines():
                if text.strip():
                    self._say(f"   | {text}")
        elif kind == "push":
            status = str(event.get("status", ""))
            if status.startswith("Pushed"):
                self._say("   | layer pushed")
            elif "exists" in status:
                self._say("   | layer already exists")


def result_line(result: typing.Dict[str, typing.Any]) -> str:
    """One line for the log: what the binary did to the image, and its digest (the result
    event's ``digest``, when the binary reports one)."""
    what = {"built": "built and pushed" if result.get("pushed") else "built", "appended": "assembled in the registry"}.get(
        str(result.get("action")), str(result.get("action"))
    )
    line = f"imagespec: {result.get('image')} {what} ({result.get('strategy')}: {result.get('reason')})"
    if isinstance(result.get("seconds"), (int, float)):
        line += f" in {result['seconds']:.1f}s"
    if result.get("digest"):
        return f"{line}, digest {result['digest']}"
    # Binaries before the result carried the digest: say what else they did report.
    shown = ("event", "elapsed", "base", "image", "action", "strategy", "reason", "seconds")
    rest = ", ".join(f"{k}={v}" for k, v in result.items() if k not in shown)
    return f"{line}; no digest reported ({rest})"


class Existence(enum.Enum):
    """The binary's answer to ``imagespec exists``: flytekit's ``exist()`` True, False, None."""

    YES = True
    NO = False
    UNKNOWN = None


def ask_exists(image_spec: ImageSpec, original: typing.Optional[ImageSpec] = None) -> typing.Tuple[Existence, str]:
    """Whether the image flytekit names ``image_spec.image_name()`` exists, asked through
    ``imagespec exists``: of the registry when the spec names one (no daemon), else of the
    local daemon. Returns the answer and, when it cannot tell, the binary's reason."""
    spec = spec_for_binary(image_spec, original, warn=False)
    image = image_spec.image_name()
    run = run_binary("exists", spec, echo=False)
    answer = run.stdout.split()
    if run.code in (0, 1) and answer[:1] == ["yes" if run.code == 0 else "no"]:
        asked = answer[1] if len(answer) > 1 else ""
        if asked != image:
            raise RuntimeError(f"imagespec asked about {asked or '(nothing)'}, but flytekit names this spec {image}")
        return (Existence.YES if run.code == 0 else Existence.NO), ""
    if run.code == 3:
        return Existence.UNKNOWN, failure_report(run.stderr)
    raise ImagespecError("exists", image, run.code, failure_report(run.stderr))


class ImagespecBuilder(ImageSpecBuilder):
    """Builds and pushes an ``ImageSpec`` with the ``imagespec`` binary."""

    builder_type = BUILDER_TYPE

    def should_build(self, image_spec: ImageSpec) -> bool:
        """flytekit's ``ImageSpecBuilder.should_build`` with the registry asked through the
        binary instead of ``image_spec.exist()``, which asks the Docker daemon (and, with none,
        answers None, so flytekit assumes the image exists and builds nothing): found → skip
        (overwrite with ``force_push()``/``FLYTE_FORCE_PUSH_IMAGE_SPEC``); not found → build;
        cannot tell → assume it exists, or raise under ``FLYTE_IMG_FAST_FAIL``. flytekit's
        messages, word for word."""
        img_name = image_spec.image_name()
        exist, reason = ask_exists(image_spec, engine_original(image_spec))
        if exist is Existence.NO:
            click.secho(f"Image {img_name} not found. building...", fg="blue")
            return True
        if exist is Existence.YES:
            if getattr(image_spec, "_is_force_push", False):
                click.secho(f"Overwriting existing image {img_name}.", fg="blue")
                return True
            click.secho(f"Image {img_name} found. Skip building.", fg="blue")
            return False
        click.secho(f"Failed to check if the image exists with error:\n {reason}", fg="red")
        fail = getattr(image_spec, "_fast_fail", None)
        if fail if fail is not None else fast_fail():
            click.secho(f"FLYTE_IMG_FAST_FAIL set to {fail}.", fg="red")
            raise RuntimeError(
                "Build failed as ImageSpec failed to check if the image exists due to a "
                "permission issue or other reason. \n"
                "Note, this fast failure is configured with the env var `FLYTE_IMG_FAST_FAIL`."
            )
        click.secho(f"Flytekit assumes the image {img_name} already exists.", fg="blue")
        return False

    def build_image(self, image_spec: ImageSpec) -> typing.Optional[str]:
        """Builds (and, unless ``FLYTE_PUSH_IMAGE_SPEC`` is false, pushes) the image flytekit
        names ``image_spec.image_name()``. Returns None, as flytekit's default builder does:
        the image has flytekit's name."""
        spec = spec_for_binary(image_spec, engine_original(image_spec))
        extra = ["--bases-built", "--json"]
        # flytekit only calls a builder when the image is missing or when it is to be
        # overwritten; the binary would skip an existing image unless told.
        if getattr(image_spec, "_is_force_push", False):
            extra.append("--force")
        # flytekit's engine assumes an image exists when it cannot tell (exist() is None),
        # unless FLYTE_IMG_FAST_FAIL; the binary fails (exit 3) unless told to assume.
        if not fast_fail():
            extra.append("--assume-exists")
        events = _Events()
        run = run_binary("build", spec, *extra, on_stdout=events)
        image = image_spec.image_name()
        if run.code != 0:
            raise ImagespecBuildError(image, run.code, failure_report(run.stderr, events.error))
        result = events.result
        if result is None:
            raise ImagespecError("build", image, run.code, "the binary ended without a result event:\n" + "\n".join(run.stderr[-20:]))
        if result.get("image") != image:
            raise RuntimeError(f"imagespec built {result.get('image') or '(nothing)'}, but flytekit names this spec {image}")
        click.secho(result_line(result), err=True)
        return None


def register() -> None:
    """Registers the builder with flytekit (done when the plugin is imported)."""
    ImageBuildEngine.register(BUILDER_TYPE, ImagespecBuilder(), priority=PRIORITY)
