"""``should_build`` answered by the real binary against real registries: the plain e2e
registry for present and absent images, a closed port for one that cannot be reached; no
Docker daemon anywhere (DOCKER_HOST points nowhere)."""
import subprocess
import uuid

import pytest
from flytekit.image_spec.image_spec import ImageSpec

from conftest import skopeo_exists
from flytekitplugins.imagespec import ImagespecBuilder
from flytekitplugins.imagespec.builder import Existence, ask_exists

PREFIX = "h-plugin-should-build"


@pytest.fixture(autouse=True)
def no_daemon(monkeypatch, real_binary):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    monkeypatch.setenv("IMAGESPEC_BINARY", real_binary)


@pytest.fixture
def absent(registry):
    spec = ImageSpec(name=f"{PREFIX}-{uuid.uuid4().hex[:12]}", registry="localhost:5000", packages=["six"])
    assert not skopeo_exists(spec.image_name())
    return spec


@pytest.fixture
def present(registry):
    """A spec whose image the registry has: busybox copied to its name with skopeo."""
    spec = ImageSpec(name=f"{PREFIX}-{uuid.uuid4().hex[:12]}", registry="localhost:5000", packages=["six"])
    subprocess.run(
        ["skopeo", "copy", "-q", "--src-tls-verify=false", "--dest-tls-verify=false",
         "docker://localhost:5000/busybox:stable", f"docker://{spec.image_name()}"],
        check=True,
    )
    assert skopeo_exists(spec.image_name())
    return spec


def unreachable():
    # Port 1 on loopback: nothing listens there, the connection is refused at once.
    return ImageSpec(name=f"{PREFIX}-unreachable", registry="localhost:1", packages=["six"])


def test_present_is_skipped(present, capsys):
    assert ask_exists(present)[0] is Existence.YES
    assert ImagespecBuilder().should_build(present) is False
    assert f"Image {present.image_name()} found. Skip building." in capsys.readouterr().out


def test_absent_is_built(absent, capsys):
    assert ask_exists(absent)[0] is Existence.NO
    assert ImagespecBuilder().should_build(absent) is True
    assert f"Image {absent.image_name()} not found. building..." in capsys.readouterr().out


def test_force_push_builds_a_present_image(present, capsys):
    assert ImagespecBuilder().should_build(present.force_push()) is True
    assert f"Overwriting existing image {present.image_name()}." in capsys.readouterr().out


def test_force_push_env_builds_a_present_image(present, monkeypatch):
    monkeypatch.setenv("FLYTE_FORCE_PUSH_IMAGE_SPEC", "true")
    again = ImageSpec(name=present.name, registry=present.registry, packages=present.packages)
    assert ImagespecBuilder().should_build(again) is True


def test_unreachable_is_assumed_to_exist(capsys):
    spec = unreachable()
    existence, reason = ask_exists(spec)
    assert existence is Existence.UNKNOWN and "localhost:1" in reason
    assert ImagespecBuilder().should_build(spec) is False
    out = capsys.readouterr().out
    assert "Failed to check if the image exists with error:" in out
    assert f"Flytekit assumes the image {spec.image_name()} already exists." in out


def test_unreachable_under_fast_fail_raises(monkeypatch):
    monkeypatch.setenv("FLYTE_IMG_FAST_FAIL", "true")
    with pytest.raises(RuntimeError, match="FLYTE_IMG_FAST_FAIL"):
        ImagespecBuilder().should_build(unreachable())


def test_no_registry_and_no_daemon_cannot_tell(capsys):
    # Without a registry the binary asks the local daemon, as flytekit's exist() does; with
    # none, it cannot tell, and flytekit assumes.
    spec = ImageSpec(name=f"{PREFIX}-local", packages=["six"])
    assert ask_exists(spec)[0] is Existence.UNKNOWN
    assert ImagespecBuilder().should_build(spec) is False
    assert "Flytekit assumes the image" in capsys.readouterr().out
