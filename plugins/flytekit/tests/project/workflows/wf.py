"""A small Flyte project for the registration e2e test: two task images, one on a nested
base spec, one with its source copied in (`source_root`)."""
import os

from flytekit import ImageSpec, task, workflow
from flytekit.image_spec.image_spec import CopyFileDetection

RUN = os.environ.get("PLUGIN_RUN_ID", "dev")
BASE_IMAGE = os.environ.get("IMAGESPEC_E2E_BASE_PYTHON", "localhost:5000/debian-python:bookworm")
UV = {"uv_image": os.environ.get("IMAGESPEC_E2E_UV_IMAGE", "localhost:5000/uv:0.5")}

base = ImageSpec(name="plug-base", registry="localhost:5000", base_image=BASE_IMAGE, packages=["pyyaml"], env={"RUN_ID": RUN}, builder_config=UV)
app = ImageSpec(name="plug-app", registry="localhost:5000", base_image=base, packages=["six"], builder_config=UV)
# The project root as packaged; a container gets the same string through the environment,
# so the spec (and its id, which is_container() compares) is the same there.
ROOT = os.environ.get("PLUGIN_PROJECT_ROOT", os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
src = ImageSpec(
    name="plug-src",
    registry="localhost:5000",
    base_image=BASE_IMAGE,
    source_root=ROOT,
    source_copy_mode=CopyFileDetection.ALL,
    env={"RUN_ID": RUN},
    builder_config=UV,
)


@task(container_image=app)
def uses_six(x: int) -> int:
    import six  # noqa: F401

    return x + 1


@task(container_image=src)
def uses_source(x: int) -> int:
    return x * 2


@workflow
def wf(x: int = 1) -> int:
    return uses_source(x=uses_six(x=x))
