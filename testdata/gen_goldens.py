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
packages there and re-executes itself with that interpreter. The shared machinery (loading,
spec building, materialisation, environment isolation) is in ``flytekit_oracle.py``.

    python3 testdata/gen_goldens.py            # regenerate everything
    python3 testdata/gen_goldens.py --check    # fail if tags.json / spec.{yaml,json} would change
"""

import json
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in testdata/
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import flytekit_oracle as oracle  # noqa: E402

GOLDENS = os.path.join(oracle.GOLDENS_DIR, "tags.json")


def main() -> int:
    oracle.bootstrap(__file__)
    oracle.isolate_environment()

    import yaml

    import flytekit

    out_files = oracle.Writer(check_only="--check" in sys.argv[1:])

    def sync_formats(case_dir: str):
        """Returns (spec object, formats). For TOML cases writes the YAML / JSON twins."""
        toml_path = os.path.join(case_dir, "spec.toml")
        if not os.path.exists(toml_path):
            for fmt in ("yaml", "json"):
                p = os.path.join(case_dir, f"spec.{fmt}")
                if os.path.exists(p):
                    return oracle.load(p), [fmt]
            raise SystemExit(f"{case_dir}: no spec.toml / spec.yaml / spec.json")
        obj = oracle.load(toml_path)
        formats = ["toml"]
        for fmt, dump, parse in (
            ("yaml", oracle.dump_yaml, yaml.safe_load),
            ("json", oracle.dump_json, json.loads),
        ):
            path = os.path.join(case_dir, f"spec.{fmt}")
            try:
                text = dump(obj)
                ok = oracle.strict_eq(parse(text), obj)
            except (ValueError, TypeError, yaml.YAMLError):
                ok = False
            if ok:
                formats.append(fmt)
                out_files.write_if_changed(path, text)
            else:
                out_files.remove_if_present(path)
        return obj, formats

    def evaluate(build):
        try:
            spec = build()
            return {"id": spec.id, "tag": spec.tag, "image": spec.image_name()}
        except Exception as e:  # flytekit's own validation errors, I/O errors, ...
            return {"error": oracle.error_text(e)}

    results = {}
    for case in oracle.cases():
        obj, formats = sync_formats(os.path.join(oracle.CORPUS, case))
        dst = oracle.materialise(case)
        with oracle.in_case(dst):
            # A fresh ImageSpec per format would be redundant: the formats were checked above
            # to load to the very same Python object.
            images = {key: evaluate(build) for key, build in oracle.spec_builders(obj)}
        results[case] = {"formats": formats, "images": images}

    out = {
        "flytekit_version": flytekit.__version__,
        "environment": oracle.environment_info(),
        "cases": results,
    }
    out_files.write_if_changed(GOLDENS, json.dumps(out, indent=2, sort_keys=True, ensure_ascii=False) + "\n")

    if out_files.check_only and out_files.stale:
        print("gen_goldens --check: out of date:\n  " + "\n  ".join(out_files.stale), file=sys.stderr)
        return 1
    n_img = sum(len(c["images"]) for c in results.values())
    n_err = sum(1 for c in results.values() for r in c["images"].values() if "error" in r)
    print(f"gen_goldens: {len(results)} cases, {n_img} images ({n_err} rejected); updated: {len(out_files.stale)} file(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
