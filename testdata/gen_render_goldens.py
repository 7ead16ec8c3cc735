#!/usr/bin/env python3
"""Golden generator for `imagespec render --flytekit-compat`: the Docker build context flytekit
1.16.31's default builder writes, for every image of every corpus case.

For every case of ``testdata/corpus`` (sorted) and every image of its primary spec file
(``spec.toml``, else ``spec.yaml``, else ``spec.json``; the formats are known to load alike,
see gen_goldens.py) this script

1. materialises the case at ``/tmp/imagespec-corpus/<case>/`` and chdirs into it with the fake
   modules of ``modules.txt`` registered (README.md, "Materialisation contract"; the code is
   shared with gen_goldens.py in ``flytekit_oracle.py``);
2. builds the ``ImageSpec`` as gen_goldens.py does, then does what
   ``ImageBuildEngine.build`` does before calling the builder: hashes it (``build`` is
   ``lru_cache``d, which caches ``spec.id``), deep-copies it and replaces a nested base spec
   by its ``image_name()`` (the base itself is not rendered here: it has its own golden when
   it is an image of a multi-image file);
3. calls ``DefaultImageBuilder._build_image(spec, push=False)`` itself, with its
   ``subprocess.run`` (the ``docker build`` call) replaced by a function that snapshots the
   context directory ``create_docker_context`` just filled. So the tag is computed before
   and checked after the context is written, exactly as in a real build;
4. records the Dockerfile bytes in ``goldens/render/<case>.Dockerfile`` (single-image files)
   or ``goldens/render/<case>@<KEY>.Dockerfile``, and in ``goldens/render.json``:

   ```
   "cases": {"<case>": {"spec": "spec.toml", "images": {"<KEY>": {
       "dockerfile": "render/<case>@<KEY>.Dockerfile",
       "files": {"<relative path>": "<sha256>", ...},   # every context file but Dockerfile
       "executable": ["<relative path>", ...],           # files with an x bit
       "empty_dirs": ["<relative path>", ...]            # directories with no entries
     }}}}
   ```

   or ``{"error": "<exception class>: <message>"}`` when flytekit (spec validation, tag, or
   ``create_docker_context``) rejects the image. The message is informative only.

flytekit pins ``flytekit==<its version>`` in ``requirements_uv.txt`` and, when the spec has no
``python_version``, uses ``<major>.<minor>`` of the interpreter running it: the goldens are
made as if that were 3.11 (imagespec's compat flavor assumes the same), whatever Python runs
this script.

    python3 testdata/gen_render_goldens.py            # regenerate
    python3 testdata/gen_render_goldens.py --check    # exit 1 if anything would change
"""

import json
import os
import shutil
import sys

sys.dont_write_bytecode = True  # no __pycache__ in testdata/
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import flytekit_oracle as oracle  # noqa: E402

RENDER_JSON = os.path.join(oracle.GOLDENS_DIR, "render.json")
RENDER_DIR = os.path.join(oracle.GOLDENS_DIR, "render")
CONTEXT_DIR = oracle.CORPUS_ROOT + ".context"  # where _build_image's temporary context goes


def dockerfile_name(case: str, key: str) -> str:
    return f"{case}.Dockerfile" if key == "" else f"{case}@{key}.Dockerfile"


def snapshot(context_dir: str) -> dict:
    """The context directory as recorded in render.json (the Dockerfile separately)."""
    snap = oracle.snapshot_context(context_dir, "Dockerfile")
    snap["dockerfile_bytes"] = snap.pop("main_bytes")
    return snap


def main() -> int:
    oracle.bootstrap(__file__)
    oracle.reexec_in_utf8_mode(__file__)
    oracle.isolate_environment()

    import copy
    import types
    import warnings

    import flytekit
    from flytekit.image_spec import default_builder
    from flytekit.image_spec.image_spec import ImageSpec

    # prepare_python_executable reads sys.version_info.
    oracle.pin_host_python(default_builder)

    captured = []

    def fake_docker_build(command, check=False, **kwargs):
        # _build_image ends with run(["docker", "build", ..., tmp_dir], check=True).
        captured.append(snapshot(command[-1]))

    class FixedTemporaryDirectory:
        """_build_image's tempfile.TemporaryDirectory() at a fixed path, so that error messages
        naming files in the context are the same on every run."""

        def __enter__(self):
            shutil.rmtree(CONTEXT_DIR, ignore_errors=True)
            os.makedirs(CONTEXT_DIR)
            return CONTEXT_DIR

        def __exit__(self, *exc):
            shutil.rmtree(CONTEXT_DIR, ignore_errors=True)

    default_builder.tempfile = types.SimpleNamespace(TemporaryDirectory=FixedTemporaryDirectory)
    default_builder.run = fake_docker_build
    default_builder.click.secho = lambda *a, **k: None  # "Run command: docker build ..."
    builder = default_builder.DefaultImageBuilder()

    def render(build):
        image_spec = build()
        # ImageBuildEngine.build. It is an lru_cache'd classmethod: calling it hashes the spec,
        # and ImageSpec.__hash__ is hash(self.id), so the id is cached on the object (nested
        # base spec and all) before the deep copy, which keeps it: the _F_IMG_ID of the
        # Dockerfile is the id of the spec as written, not of the copy with a base image name.
        hash(image_spec)
        spec = copy.deepcopy(image_spec)
        if isinstance(spec.base_image, ImageSpec):
            spec.base_image = spec.base_image.image_name()
        spec.image_name()
        # DefaultImageBuilder.build_image
        captured.clear()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # unsupported parameters, "uv.lock support is experimental"
            builder._build_image(spec, push=False)
        assert len(captured) == 1, "docker build was not reached"
        return captured[0]

    out_files = oracle.Writer(check_only="--check" in sys.argv[1:])
    results = {}
    dockerfiles = set()
    for case in oracle.cases():
        spec_file = oracle.primary_spec_file(os.path.join(oracle.CORPUS, case))
        obj = oracle.load(spec_file)
        dst = oracle.materialise(case)
        images = {}
        with oracle.in_case(dst):
            for key, build in oracle.spec_builders(obj):
                try:
                    snap = render(build)
                except Exception as e:  # flytekit's validation, tag or context errors
                    images[key] = {"error": oracle.error_text(e)}
                    continue
                name = dockerfile_name(case, key)
                dockerfiles.add(name)
                out_files.write_bytes_if_changed(os.path.join(RENDER_DIR, name), snap.pop("dockerfile_bytes"))
                images[key] = {"dockerfile": f"render/{name}", **snap}
        results[case] = {"spec": os.path.basename(spec_file), "images": images}

    if os.path.isdir(RENDER_DIR):
        for name in sorted(os.listdir(RENDER_DIR)):
            if name not in dockerfiles:
                out_files.remove_if_present(os.path.join(RENDER_DIR, name))

    out = {
        "flytekit_version": flytekit.__version__,
        "environment": {**oracle.environment_info(), "host_python_version": "%d.%d" % oracle.HOST_PYTHON},
        "cases": results,
    }
    out_files.write_if_changed(RENDER_JSON, json.dumps(out, indent=2, sort_keys=True, ensure_ascii=False) + "\n")

    if out_files.check_only and out_files.stale:
        print("gen_render_goldens --check: out of date:\n  " + "\n  ".join(out_files.stale), file=sys.stderr)
        return 1
    n_img = sum(len(c["images"]) for c in results.values())
    n_err = sum(1 for c in results.values() for r in c["images"].values() if "error" in r)
    print(
        f"gen_render_goldens: {len(results)} cases, {n_img} images ({n_err} rejected); "
        f"updated: {len(out_files.stale)} file(s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
