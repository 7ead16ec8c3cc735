#!/usr/bin/env python3
"""Golden generator for `imagespec render --builder envd --flytekit-compat`: the envd build
context (``build.envd`` and the files next to it) that flytekit 1.16.31's envd plugin
(``flytekitplugins-envd`` 1.16.31, ``create_envd_config``) writes, with envd 1.3.6 installed
(the plugin picks the ``io.copy(source=..., target=...)`` form from envd's version).

Cases: every case of ``testdata/corpus`` and of ``testdata/envd`` (envd-specific ones: commands
quoting, env values, package names, collisions in the context, cuda, conda, pip index, python
version, base image and copy forms), sorted, each image of its primary spec file. For each:

1. the case is materialised at ``/tmp/imagespec-corpus/<case>/`` (README.md, "Materialisation
   contract"; the envd cases are named ``envd_*`` so they never meet a corpus case there);
2. the ``ImageSpec`` is built and prepared as ``ImageBuildEngine.build`` prepares it (hashed,
   so the ``_F_IMG_ID`` is the id of the spec as written; deep-copied; a nested base spec
   replaced by its ``image_name()``; the tag computed), exactly as gen_render_goldens.py does;
3. ``create_envd_config(spec)`` writes the context, at the fixed directory
   ``/tmp/imagespec-corpus.envd-context`` (flytekit asks for a random local path) and the
   directory is snapshot.

Outputs: ``goldens/envd/<case>.envd`` or ``goldens/envd/<case>@<KEY>.envd`` (the build.envd
bytes) and ``goldens/envd.json``, in render.json's format (``build_envd`` instead of
``dockerfile``; ``files``, ``executable``, ``empty_dirs`` of the context without build.envd;
``error`` when flytekit refuses the image), each case with ``corpus`` (``corpus`` or ``envd``:
the testdata directory it comes from).

flytekit's default base image is ``cr.flyte.org/flyteorg/flytekit:py<major>.<minor>-<version>``
for the Python running flytekit: the goldens are made as if that were 3.11, whatever Python
runs this script (imagespec assumes the same).

    python3 testdata/gen_envd_goldens.py            # regenerate
    python3 testdata/gen_envd_goldens.py --check    # exit 1 if anything would change
"""

import json
import os
import shutil
import subprocess
import sys

sys.dont_write_bytecode = True  # no __pycache__ in testdata/
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import flytekit_oracle as oracle  # noqa: E402

PLUGIN_PINS = [f"flytekitplugins-envd=={oracle.FLYTEKIT_VERSION}", "envd==1.3.6"]
ENVD_CASES = os.path.join(oracle.HERE, "envd")
ENVD_JSON = os.path.join(oracle.GOLDENS_DIR, "envd.json")
ENVD_DIR = os.path.join(oracle.GOLDENS_DIR, "envd")
CONTEXT_DIR = oracle.CORPUS_ROOT + ".envd-context"


def _plugin_ok() -> bool:
    from importlib import metadata

    try:
        return metadata.version("flytekitplugins-envd") == oracle.FLYTEKIT_VERSION and metadata.version("envd") == "1.3.6"
    except metadata.PackageNotFoundError:
        return False


def bootstrap() -> None:
    """The oracle venv (flytekit), plus the envd plugin and envd pinned in it."""
    oracle.bootstrap(__file__)
    if not _plugin_ok():
        print(f"gen_envd_goldens: installing {' '.join(PLUGIN_PINS)} into {sys.prefix}", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", *PLUGIN_PINS], check=True)
        if not _plugin_ok():
            sys.exit("gen_envd_goldens: flytekitplugins-envd / envd still not at the pinned versions")
    # build.envd is written with open(path, "w+"): the locale's encoding.
    oracle.reexec_in_utf8_mode(__file__)


def golden_name(case: str, key: str) -> str:
    return f"{case}.envd" if key == "" else f"{case}@{key}.envd"


def snapshot(context_dir: str) -> dict:
    """The context directory as recorded in envd.json (build.envd separately)."""
    snap = oracle.snapshot_context(context_dir, "build.envd")
    snap["build_envd_bytes"] = snap.pop("main_bytes")
    return snap


def all_cases():
    """(case, source directory), corpus cases first, then the envd ones."""
    out = [(c, os.path.join(oracle.CORPUS, c)) for c in oracle.cases()]
    out += [(c, os.path.join(ENVD_CASES, c)) for c in sorted(os.listdir(ENVD_CASES)) if os.path.isdir(os.path.join(ENVD_CASES, c))]
    names = [c for c, _ in out]
    assert len(names) == len(set(names)), "an envd case has a corpus case's name"
    return out


def materialise(case: str, src: str) -> str:
    """oracle.materialise for a case from any directory."""
    dst = os.path.join(oracle.CORPUS_ROOT, case)
    shutil.rmtree(dst, ignore_errors=True)
    os.makedirs(oracle.CORPUS_ROOT, exist_ok=True)
    shutil.copytree(src, dst, symlinks=True)
    if os.path.exists(os.path.join(dst, "setup.sh")):
        r = subprocess.run(["bash", "setup.sh"], cwd=dst, capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit(f"{case}: setup.sh failed ({r.returncode}):\n{r.stdout}{r.stderr}")
    return dst


def main() -> int:
    bootstrap()
    oracle.isolate_environment()

    import copy
    import warnings

    import flytekit
    from flytekit.configuration import default_images
    from flytekit.core.data_persistence import FileAccessProvider
    from flytekit.image_spec.image_spec import ImageSpec
    from flytekitplugins.envd import image_builder

    # DefaultImages.find_image_for reads sys.version_info.
    oracle.pin_host_python(default_images)

    # create_envd_config asks for a random local path; a fixed one keeps error messages stable.
    FileAccessProvider.get_random_local_path = lambda self, file_path_or_file_name=None: os.path.join(
        CONTEXT_DIR, "build.envd"
    )

    def render(build):
        image_spec = build()
        # ImageBuildEngine.build, as in gen_render_goldens.py: the id (the _F_IMG_ID) is cached
        # by hashing before the deep copy in which a nested base spec becomes its image name.
        hash(image_spec)
        spec = copy.deepcopy(image_spec)
        if isinstance(spec.base_image, ImageSpec):
            spec.base_image = spec.base_image.image_name()
        spec.image_name()
        shutil.rmtree(CONTEXT_DIR, ignore_errors=True)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                path = image_builder.create_envd_config(spec)
            assert path == os.path.join(CONTEXT_DIR, "build.envd"), path
            return snapshot(CONTEXT_DIR)
        finally:
            shutil.rmtree(CONTEXT_DIR, ignore_errors=True)

    out_files = oracle.Writer(check_only="--check" in sys.argv[1:])
    results = {}
    written = set()
    for case, src in all_cases():
        spec_file = oracle.primary_spec_file(src)
        obj = oracle.load(spec_file)
        dst = materialise(case, src)
        images = {}
        with oracle.in_case(dst):
            for key, build in oracle.spec_builders(obj):
                try:
                    snap = render(build)
                except Exception as e:  # flytekit's validation, tag or context errors
                    images[key] = {"error": oracle.error_text(e)}
                    continue
                name = golden_name(case, key)
                written.add(name)
                out_files.write_bytes_if_changed(os.path.join(ENVD_DIR, name), snap.pop("build_envd_bytes"))
                images[key] = {"build_envd": f"envd/{name}", **snap}
        results[case] = {
            "corpus": os.path.relpath(os.path.dirname(src), oracle.HERE),
            "spec": os.path.basename(spec_file),
            "images": images,
        }

    if os.path.isdir(ENVD_DIR):
        for name in sorted(os.listdir(ENVD_DIR)):
            if name not in written:
                out_files.remove_if_present(os.path.join(ENVD_DIR, name))

    from importlib import metadata

    out = {
        "flytekit_version": flytekit.__version__,
        "flytekitplugins_envd_version": metadata.version("flytekitplugins-envd"),
        "envd_version": metadata.version("envd"),
        "environment": {**oracle.environment_info(), "host_python_version": "%d.%d" % oracle.HOST_PYTHON},
        "cases": results,
    }
    out_files.write_if_changed(ENVD_JSON, json.dumps(out, indent=2, sort_keys=True, ensure_ascii=False) + "\n")

    if out_files.check_only and out_files.stale:
        print("gen_envd_goldens --check: out of date:\n  " + "\n  ".join(out_files.stale), file=sys.stderr)
        return 1
    n_img = sum(len(c["images"]) for c in results.values())
    n_err = sum(1 for c in results.values() for r in c["images"].values() if "error" in r)
    print(
        f"gen_envd_goldens: {len(results)} cases, {n_img} images ({n_err} rejected); "
        f"updated: {len(out_files.stale)} file(s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
