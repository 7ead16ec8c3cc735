"""flytekit's ImageBuildEngine driving the plugin, with the recording binary (conftest.py):
what it asks (``exists``) and what it builds, with which arguments; no Docker, no registry."""
import os
import sys
from pathlib import Path

import pytest
from flytekit.image_spec.image_spec import CopyFileDetection, ImageBuildEngine, ImageSpec

from flytekitplugins.imagespec import ImagespecBuildError

REG = "localhost:5000"


def names(calls):
    return [c["spec"]["name"] for c in calls]


def arg_after(call, flag):
    return call["args"][call["args"].index(flag) + 1]


def test_a_nested_base_is_built_first_and_handed_back_whole(recorder):
    (Path("proj")).mkdir()
    base = ImageSpec(name="eng-base", registry=REG, packages=["numpy"], env={"B": "1"})
    app = ImageSpec(name="eng-app", registry=REG, base_image=base, packages=["six"], source_root="proj")
    ImageBuildEngine.build(app)
    calls = recorder.calls()
    assert [(c["command"], c["spec"]["name"]) for c in calls] == [
        ("exists", "eng-base"),
        ("build", "eng-base"),
        ("exists", "eng-app"),
        ("build", "eng-app"),
    ]
    b, a = calls[1], calls[3]
    # The engine's copy names the base by image; the binary gets the nested spec back, so it
    # computes flytekit's id (the _F_IMG_ID that is_container() compares) — for `exists` too.
    assert isinstance(calls[2]["spec"]["base_image"], dict)
    assert isinstance(a["spec"]["base_image"], dict)
    assert "--bases-built" in a["args"] and "--json" in a["args"]
    assert "--force" not in a["args"]
    assert "--assume-exists" in a["args"]
    assert a["image"] == calls[2]["image"] == app.image_name()
    assert a["id"] == app.id and b["id"] == base.id
    # Relative paths stay as written, resolved against the working directory.
    assert a["spec"]["source_root"] == "proj" and arg_after(a, "--relative-to") == os.getcwd()


def test_three_levels_each_nested_spec_handed_back(recorder):
    base = ImageSpec(name="eng-base", registry=REG, packages=["numpy"])
    mid = ImageSpec(name="eng-mid", registry=REG, base_image=base, apt_packages=["jq"])
    top = ImageSpec(name="eng-top", registry=REG, base_image=mid, commands=["true"])
    recorder.answer("eng-base", "yes")
    ImageBuildEngine.build(top)
    builds = recorder.calls("build")
    assert names(builds) == ["eng-mid", "eng-top"]
    assert builds[-1]["id"] == top.id and builds[-1]["image"] == top.image_name()
    assert isinstance(builds[-1]["spec"]["base_image"]["base_image"], dict)


def test_a_base_renamed_by_its_builder_is_passed_by_its_real_name(recorder):
    noop_base = ImageSpec(name="eng-noop", base_image="localhost:5000/debian-python:bookworm", builder="noop")
    on_noop = ImageSpec(name="eng-on-noop", registry=REG, base_image=noop_base, packages=["six"])
    ImageBuildEngine.build(on_noop)
    builds = recorder.calls("build")
    assert len(builds) == 1
    assert builds[0]["spec"]["base_image"] == "localhost:5000/debian-python:bookworm"
    assert builds[0]["image"] == on_noop.image_name()


@pytest.mark.parametrize("existence", ["yes", "unknown"])
def test_an_existing_or_unknown_image_is_not_built(recorder, existence, capsys):
    spec = ImageSpec(name="eng-exists", registry=REG)
    recorder.answer("eng-exists", existence)
    ImageBuildEngine.build(spec)
    assert recorder.calls("build") == []
    said = capsys.readouterr().out
    if existence == "yes":
        assert f"Image {spec.image_name()} found. Skip building." in said
    else:
        assert f"Flytekit assumes the image {spec.image_name()} already exists." in said
        assert "connection refused" in said


def test_a_missing_image_is_built(recorder, capsys):
    spec = ImageSpec(name="eng-missing", registry=REG)
    ImageBuildEngine.build(spec)
    assert names(recorder.calls("build")) == ["eng-missing"]
    assert f"Image {spec.image_name()} not found. building..." in capsys.readouterr().out


def test_force_push_overwrites_an_existing_image(recorder, capsys):
    forced = ImageSpec(name="eng-forced", registry=REG, packages=["six"]).force_push()
    recorder.answer("eng-forced", "yes")
    ImageBuildEngine.build(forced)
    builds = recorder.calls("build")
    assert len(builds) == 1 and "--force" in builds[0]["args"]
    assert f"Overwriting existing image {forced.image_name()}." in capsys.readouterr().out


def test_flyte_force_push_image_spec_overwrites(recorder, monkeypatch):
    monkeypatch.setenv("FLYTE_FORCE_PUSH_IMAGE_SPEC", "true")
    recorder.answer("eng-forced-env", "yes")
    ImageBuildEngine.build(ImageSpec(name="eng-forced-env", registry=REG))
    builds = recorder.calls("build")
    assert len(builds) == 1 and "--force" in builds[0]["args"]


@pytest.mark.parametrize("value,assumed", [("true", False), ("1", False), ("false", True), ("0", True)])
def test_fast_fail_decides_assume_exists(recorder, monkeypatch, value, assumed):
    monkeypatch.setenv("FLYTE_IMG_FAST_FAIL", value)
    ImageBuildEngine.build(ImageSpec(name=f"eng-fast-fail-{value}", registry=REG))
    builds = recorder.calls("build")
    assert len(builds) == 1 and ("--assume-exists" in builds[0]["args"]) == assumed


def test_fast_fail_raises_when_the_registry_cannot_tell(recorder, monkeypatch):
    monkeypatch.setenv("FLYTE_IMG_FAST_FAIL", "true")
    recorder.answer("eng-unknown", "unknown")
    with pytest.raises(RuntimeError, match="FLYTE_IMG_FAST_FAIL"):
        ImageBuildEngine.build(ImageSpec(name="eng-unknown", registry=REG))
    assert recorder.calls("build") == []


def test_loaded_modules_leave_out_site_packages(recorder, tmp_path, monkeypatch):
    (tmp_path / "proj" / "pkg").mkdir(parents=True)
    (tmp_path / "proj" / "pkg" / "__init__.py").write_text("")
    (tmp_path / "proj" / "pkg" / "mod.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path / "proj"))
    monkeypatch.delitem(sys.modules, "pkg", raising=False)
    monkeypatch.delitem(sys.modules, "pkg.mod", raising=False)
    __import__("pkg.mod")
    # The venv lies under source_root: flytekit skips site-packages and flytekit anyway.
    mods = ImageSpec(name="eng-mods", source_root=os.path.dirname(sys.prefix), source_copy_mode=CopyFileDetection.LOADED_MODULES)
    ImageBuildEngine.build(mods)
    builds = recorder.calls("build")
    assert len(builds) == 1 and builds[0]["image"] == mods.image_name()
    modules = builds[0]["modules"]
    assert not [m for m in modules if m.startswith(sys.prefix) or "site-packages" in m]
    assert str(tmp_path / "proj" / "pkg" / "mod.py") in modules


def test_a_failed_build_raises_with_the_step_and_its_output_once(recorder, capsys):
    recorder.fail_builds()
    with pytest.raises(ImagespecBuildError) as failed:
        ImageBuildEngine.build(ImageSpec(name="eng-fails", registry=REG, packages=["nothing-here"]))
    text = str(failed.value)
    assert "RUN uv pip install nothing-here" in text
    assert text.count("No solution found") == 1, text
    assert failed.value.exit_code == 1
    # The progress showed the step and its output as it ran; the error itself is raised, not
    # printed as well.
    err = capsys.readouterr().err
    assert "=> RUN uv pip install nothing-here" in err and "   |   No solution found" in err
    assert "error: build failed" not in err


def test_the_result_digest_is_logged(recorder, capsys):
    digest = "sha256:" + "ab" * 32
    recorder.report_digest(digest)
    spec = ImageSpec(name="eng-digest", registry=REG)
    ImageBuildEngine.build(spec)
    err = capsys.readouterr().err
    assert f"imagespec: {spec.image_name()} assembled in the registry" in err
    assert f"digest {digest}" in err


def test_a_result_without_digest_logs_what_it_has(recorder, capsys):
    ImageBuildEngine.build(ImageSpec(name="eng-no-digest", registry=REG))
    err = capsys.readouterr().err
    assert "no digest reported" in err and "(append: recorded)" in err and "pushed=True" in err


@pytest.mark.parametrize(
    "field,value",
    [
        ("builder_options", {"t": (1, 2)}),
        ("builder_options", {1: "non-string key"}),
        ("env", {"P": Path("/x")}),
    ],
)
def test_values_json_cannot_hold_are_refused_before_anything_runs(recorder, field, value):
    with pytest.raises(ValueError, match=field):
        ImageBuildEngine.build(ImageSpec(name="eng-refused", registry=REG, **{field: value}))
    assert recorder.calls() == []


def test_builder_priorities():
    registry = ImageBuildEngine.get_registry()
    assert registry["imagespec"][1] > max(1, 5)
    assert ImageSpec(name="x").builder == "imagespec"
    default = ImageSpec(name="x", builder="default")
    assert default.builder == "default" and type(registry["default"][0]).__name__ == "DefaultImageBuilder"
