"""Running the binary: both pipes read at once (a binary that fills stderr while the plugin
reads stdout, or the reverse, must not hang), the error reported once."""
import stat
import sys
import threading

import pytest
from flytekit.image_spec.image_spec import ImageSpec

from flytekitplugins.imagespec.builder import failure_report, run_binary

# 4 MiB on each pipe, interleaved: far above a pipe's 64 KiB buffer.
NOISY = r'''#!{python}
import sys
line = "x" * 1023
for i in range(4096):
    sys.stderr.write(f"{{line}}\n")
    sys.stdout.write('{{"event": "log", "id": "1", "text": "' + line + '"}}\n')
sys.stdout.write('{{"event": "result", "image": "done"}}\n')
'''


def test_large_output_on_both_pipes_does_not_deadlock(tmp_path, monkeypatch):
    fake = tmp_path / "imagespec"
    fake.write_text(NOISY.format(python=sys.executable))
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("IMAGESPEC_BINARY", str(fake))
    seen = []
    done = {}

    def go():
        done["run"] = run_binary("build", ImageSpec(name="noisy"), echo=False, on_stdout=seen.append)

    runner = threading.Thread(target=go, daemon=True)
    runner.start()
    runner.join(timeout=60)
    assert not runner.is_alive(), "run_binary hung on a full pipe"
    run = done["run"]
    assert run.code == 0
    assert len(seen) == 4097 and seen[-1] == '{"event": "result", "image": "done"}'
    assert len(run.stderr) == 2000  # the tail is kept, not the whole stream


def test_failure_report_is_the_error_once():
    stderr = ["=> RUN false", "   | boom", "error: build failed at step `RUN false`: exit code 1",
              "--- step output (last 1 lines) ---", "boom", "  caused by: x"]
    event = {"event": "error", "message": "build failed at step `RUN false`: exit code 1\n--- step output ...\nboom"}
    report = failure_report(stderr, event)
    assert report.startswith("error: build failed at step `RUN false`") and report.count("boom") == 1
    assert "caused by: x" in report
    # Without a report on stderr: the error event's message.
    assert failure_report(["=> RUN false"], event) == f"error: {event['message']}"
    assert failure_report([], None) == "(the binary printed nothing)"


@pytest.mark.parametrize("code", [2, 3])
def test_exists_errors_other_than_cannot_tell_raise(tmp_path, monkeypatch, code):
    from flytekitplugins.imagespec.builder import Existence, ImagespecError, ask_exists

    fake = tmp_path / "imagespec"
    fake.write_text(f"#!{sys.executable}\nimport sys\nprint('error: something', file=sys.stderr)\nsys.exit({code})\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("IMAGESPEC_BINARY", str(fake))
    spec = ImageSpec(name="x", registry="localhost:5000")
    if code == 3:
        assert ask_exists(spec) == (Existence.UNKNOWN, "error: something")
    else:
        with pytest.raises(ImagespecError, match="exit 2"):
            ask_exists(spec)
