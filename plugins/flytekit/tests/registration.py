"""Helpers for the registration e2e test (run with the plugin venv's python from the
project directory).

  registration.py images           the image names flytekit computes for the project's specs (JSON)
  registration.py package-images P  the images the task templates in package P name (JSON)
  registration.py is-container N    spec N's is_container() as a task sees it (prints True/False)
"""
import json
import sys
import tarfile


def images():
    from workflows.wf import app, base, src

    print(json.dumps({"base": base.image_name(), "app": app.image_name(), "src": src.image_name()}))


def package_images(path):
    from flyteidl.admin.task_pb2 import TaskSpec

    found = {}
    with tarfile.open(path) as tar:
        for member in tar.getmembers():
            if not member.name.endswith(".pb"):
                continue
            data = tar.extractfile(member).read()
            spec = TaskSpec()
            try:
                spec.ParseFromString(data)
            except Exception:
                continue
            if spec.template.id.name and spec.template.container.image:
                found[spec.template.id.name] = spec.template.container.image
    print(json.dumps(found))


def is_container(name):
    from flytekit.core.context_manager import ExecutionState, FlyteContextManager

    import workflows.wf as wf

    ctx = FlyteContextManager.current_context()
    state = ctx.execution_state.with_params(mode=ExecutionState.Mode.TASK_EXECUTION)
    with FlyteContextManager.with_context(ctx.with_execution_state(state)):
        print(getattr(wf, name).is_container())


if __name__ == "__main__":
    {"images": images, "package-images": package_images, "is-container": is_container}[sys.argv[1]](*sys.argv[2:])
