"""A small Flyte project for the registration e2e test: two task images, one on a nested
base spec (with the modules this program loaded copied in), one with its whole source tree
copied in (`source_root`, `all`)."""
import os

from flytekit import ImageSpec, task, workflow
from flytekit.image_spec.image_spec import CopyFileDetection

from workflows import helper

RUN = os.environ.get("PLUGIN_RUN_ID", "dev")
BASE_IMAGE = os.environ.get("IMAGESPEC_E2E_BASE_PYTHON", "localhost:5000/debian-python:bookworm")
UV = {"uv_image": os.environ.get("IMAGESPEC_E2E_UV_IMAGE", "localhost:5000/uv:0.5")}
# The project root as packaged; a container gets the same string through the environment,
# so the specs (and their ids, which is_container() compares) are the same there.
ROOT = os.environ.get("PLUGIN_PROJECT_ROOT", os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# RUN in `commands` (run last) makes a new base, hence a new app, each test run while the
# dependency layers stay in BuildKit's cache; the test writes a file into the project copy,
# which makes a new `src` image.
base = ImageSpec(name="plug-base", registry="localhost:5000", base_image=BASE_IMAGE, packages=["pyyaml"], commands=[f"echo base {RUN}"], builder_config=UV)
# Explicit source_root and mode: pyflyte would otherwise set them for this registration only,
# and the spec a container builds from the module would have another id.
app = ImageSpec(
    name="plug-app",
    registry="localhost:5000",
    base_image=base,
    packages=["six"],
    source_root=ROOT,
    source_copy_mode=CopyFileDetection.LOADED_MODULES,
    builder_config=UV,
)
src = ImageSpec(
    name="plug-src",
    registry="localhost:5000",
    base_image=BASE_IMAGE,
    source_root=ROOT,
    source_copy_mode=CopyFileDetection.ALL,
    builder_config=UV,
)


@task(container_image=app)
def uses_six(x: int) -> int:
    import six  # noqa: F401

    return helper.inc(x)


@task(container_image=src)
def uses_source(x: int) -> int:
    return x * 2


@workflow
def wf(x: int = 1) -> int:
    return uses_source(x=uses_six(x=x))
