"""What ``digitnet train`` does beside torch's import: reading the MNIST files ahead in a thread, and
drawing the figures in a helper process. Each must give exactly what doing it in place gives, and fall
back to that."""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import pickle
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from conftest import digitnet_process, idx_bytes, make_digits, write_mnist_dir

from digitnet import idx
from digitnet.configs import DataConfig
from digitnet.errors import DataError
from digitnet.history import EpochRecord, History
from digitnet.plotting import run_figures
from digitnet.settings import run_config_from_dict


def _train_images(root: Path) -> Path:
    return root / "train-images-idx3-ubyte.gz"


# ------------------------------------------------------------------------------------------- prefetch


def test_prefetched_files_are_what_a_direct_read_gives(tmp_path: Path) -> None:
    root = write_mnist_dir(tmp_path / "mnist", train_count=300)
    direct = {path: idx.read_idx(path, 3 if "images" in path.name else 1) for path in root.iterdir()}
    assert idx.prefetch(DataConfig(data_dir=str(root)))
    for path, array in direct.items():
        prefetched = idx.read_idx(path, 3 if "images" in path.name else 1)
        assert np.array_equal(prefetched, array) and prefetched.flags.writeable
    assert not idx._prefetched  # each prefetched file is handed out once; later reads read the file


def test_only_the_latest_prefetch_is_kept(tmp_path: Path) -> None:
    first = write_mnist_dir(tmp_path / "first")
    second = write_mnist_dir(tmp_path / "second")
    assert idx.prefetch(DataConfig(data_dir=str(first))) and idx.prefetch(DataConfig(data_dir=str(second)))
    assert {Path(path).parent for path, _ in idx._prefetched} == {second.resolve()}


def test_a_file_rewritten_after_the_prefetch_is_read_again(tmp_path: Path) -> None:
    root = write_mnist_dir(tmp_path / "mnist")
    path = _train_images(root)
    assert idx.prefetch(DataConfig(data_dir=str(root)))
    idx._prefetched[(str(path.resolve()), 3)][1].result()  # the thread has read it; now it changes
    newer, _ = make_digits(7, seed=5)
    path.write_bytes(gzip.compress(idx_bytes(newer)))
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    assert np.array_equal(idx.read_idx(path, 3), newer)


def test_a_prefetched_bad_file_raises_the_same_error_when_read(tmp_path: Path) -> None:
    root = write_mnist_dir(tmp_path / "mnist")
    path = _train_images(root)
    path.write_bytes(gzip.compress(idx_bytes(np.zeros((3, 28, 28), np.uint8)))[:-12])
    with pytest.raises(DataError) as direct:
        idx.read_idx(path, 3)
    assert idx.prefetch(DataConfig(data_dir=str(root)))
    with pytest.raises(DataError) as prefetched:
        idx.read_idx(path, 3)
    assert str(prefetched.value) == str(direct.value) and "truncated gzip" in str(direct.value)


@pytest.mark.parametrize(
    "config",
    [
        DataConfig(dataset="sample"),
        DataConfig(dataset="csv", csv="train.csv"),
        DataConfig(data_dir="no-such-directory"),
    ],
    ids=["sample", "csv", "missing directory"],
)
def test_only_an_mnist_directory_is_read_ahead(config: DataConfig) -> None:
    assert not idx.prefetch(config)


def test_gzip_members_and_zero_padding_read_as_one_stream(tmp_path: Path) -> None:
    images, _ = make_digits(9)
    data = idx_bytes(images)
    path = tmp_path / "x-idx3-ubyte.gz"
    # Three members, then the zero padding some tools add: the gzip module reads this as one stream.
    path.write_bytes(
        gzip.compress(data[:100]) + gzip.compress(data[100:5000]) + gzip.compress(data[5000:]) + b"\0" * 9
    )
    assert gzip.decompress(path.read_bytes()) == data
    assert np.array_equal(idx.read_idx(path, 3), images)


def test_a_gzip_bomb_is_refused_without_inflating_it(tmp_path: Path) -> None:
    header = idx_bytes(np.zeros((2, 28, 28), np.uint8))
    path = tmp_path / "bomb-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(header + b"\0" * 2**26, compresslevel=1))  # 64 MiB behind a 2-digit header
    inflated: list[int] = []
    real = idx._Gunzip.read

    def counting(self: idx._Gunzip, size: int) -> bytes:
        data = real(self, size)
        inflated.append(len(data))
        return data

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(idx._Gunzip, "read", counting)
        with pytest.raises(DataError, match="found more"):
            idx.read_idx(path, 3)
    assert sum(inflated) <= len(header) + 1


# ------------------------------------------------------------------------------------------ the helper


def _history() -> History:
    epochs = [
        EpochRecord(e, 1 / e, 0.9 + e / 100, 1.2 / e, 0.88 + e / 100, 0.01, 1.0, 0.1, 1000.0)
        for e in (1, 2, 3)
    ]
    losses = [float(v) for v in np.linspace(2.0, 0.1, 30)]
    return History(epochs=epochs, iteration_loss=losses, test_loss=0.2, test_accuracy=0.91)


def _in_a_process(code: str, tmp_path: Path, cwd: Path | None = None) -> dict[str, object]:
    """Run ``code`` in a fresh Python (no matplotlib imported yet) and return the JSON it prints last."""
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(code))
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=cwd or tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    result: dict[str, object] = json.loads(done.stdout.splitlines()[-1])
    return result


HELPER_SCRIPT = """
    import json, os, signal, sys
    from pathlib import Path
    from digitnet import figure_helper
    from digitnet.history import History
    figure_helper.start()
    history = History.from_dict(json.loads(Path("history.json").read_text()))
    {before_draw}
    files = figure_helper.draw(history, "a title")
    for name, data in files.items():
        Path(name).write_bytes(data)
    print(json.dumps({{"names": sorted(files), "matplotlib here": "matplotlib" in sys.modules}}))
"""


def test_the_helper_draws_the_same_files_and_this_process_never_imports_matplotlib(tmp_path: Path) -> None:
    history = _history()
    (tmp_path / "history.json").write_text(json.dumps(history.to_dict()))
    result = _in_a_process(HELPER_SCRIPT.format(before_draw=""), tmp_path)
    expected = run_figures(history, "a title")
    assert result == {"names": sorted(expected), "matplotlib here": False}
    assert sorted(expected) == ["accuracy.png", "accuracy.svg", "loss.png", "loss.svg"]
    for name, data in expected.items():
        assert (tmp_path / name).read_bytes() == data


DRAW_AT_ONCE_SCRIPT = """
    import json, os
    from pathlib import Path
    from digitnet import figure_helper, plotting
    from digitnet.history import History
    helper, real = os.getpid(), plotting.run_figure

    def recording(history, stem, title=""):  # which process drew which figure
        if os.getpid() != helper and stem == {failing!r}:
            os._exit(3)  # a child that dies before it replies
        Path(f"{{stem}}.{{os.getpid()}}").touch()
        return real(history, stem, title)

    plotting.run_figure = recording
    history = History.from_dict(json.loads(Path("history.json").read_text()))
    files = figure_helper._draw_at_once(history, "a title")
    for name, data in files.items():
        Path(name).write_bytes(data)
    drawn = {{p.suffix[1:]: p.stem for p in Path().glob("*.[0-9]*")}}  # pid → stem
    print(json.dumps({{"names": list(files), "helper": str(helper), "drawn by": drawn}}))
"""


@pytest.mark.skipif(sys.platform != "linux", reason="the figures are drawn one after the other there")
@pytest.mark.parametrize("failing", [None, "accuracy"])
def test_the_helper_draws_each_figure_in_a_process_of_its_own(tmp_path: Path, failing: str | None) -> None:
    """Two figures drawn at once, the same bytes as one after the other; a child that fails leaves its
    figure to the helper itself."""
    history = _history()
    (tmp_path / "history.json").write_text(json.dumps(history.to_dict()))
    result = _in_a_process(DRAW_AT_ONCE_SCRIPT.format(failing=failing), tmp_path)
    expected = run_figures(history, "a title")
    assert result["names"] == list(expected)  # in run_figures' order
    for name, data in expected.items():
        assert (tmp_path / name).read_bytes() == data
    drawn_by = result["drawn by"]
    assert isinstance(drawn_by, dict)
    if failing is None:
        assert sorted(drawn_by.values()) == ["accuracy", "loss"]
        assert drawn_by.get(result["helper"]) == "loss"  # and accuracy in another process
    else:  # the helper drew both in the end; the child left no mark
        assert {p.stem for p in tmp_path.glob("*.[0-9]*")} == {"loss", "accuracy"}
        assert {p.suffix[1:] for p in tmp_path.glob("*.[0-9]*")} == {result["helper"]}


def test_the_helper_imports_this_digitnet_not_one_in_the_working_directory(tmp_path: Path) -> None:
    history = _history()
    work = tmp_path / "work"  # a folder holding some other digitnet, where the command is run from
    (work / "digitnet").mkdir(parents=True)
    (work / "digitnet" / "__init__.py").write_text("raise ImportError('another digitnet')\n")
    # and a student's own random.py, a name the helper's imports use: it must not run in the helper
    (work / "random.py").write_text("open('random.py ran', 'w').close()\nfrom secrets import *\n")
    (work / "history.json").write_text(json.dumps(history.to_dict()))
    result = _in_a_process(HELPER_SCRIPT.format(before_draw=""), tmp_path, cwd=work)
    assert result["matplotlib here"] is False  # the helper drew them: it found the real digitnet
    assert not (work / "random.py ran").exists()


def test_a_helper_whose_command_ended_leaves_at_once_not_after_its_import(tmp_path: Path) -> None:
    """With the pipe closed before anything is sent, the helper must end without finishing its import
    (made to take a minute here); before, it imported matplotlib first and only then noticed."""
    code = """
        import sys, time
        class Slow:
            def find_spec(self, name, path=None, target=None):
                if name == "digitnet.plotting":
                    time.sleep(60)
        sys.meta_path.insert(0, Slow())
        from digitnet.figure_helper import _serve
        _serve()
    """
    (tmp_path / "helper.py").write_text(textwrap.dedent(code))
    done = subprocess.run(
        [sys.executable, str(tmp_path / "helper.py")], stdin=subprocess.DEVNULL, timeout=30, check=False
    )
    assert done.returncode == 0


def test_the_helper_replies_and_ends_without_pythons_clean_up(tmp_path: Path) -> None:
    """The command reads the reply until the pipe closes; a helper that went through Python's clean-up at
    exit (its exit handlers, every module taken apart) would hold it open a tenth of a second longer."""
    code = """
        import atexit
        from pathlib import Path
        atexit.register(lambda: Path("clean-up ran").touch())
        from digitnet.figure_helper import _serve
        _serve()
    """
    (tmp_path / "helper.py").write_text(textwrap.dedent(code))
    history = _history()
    request = pickle.dumps((history.to_dict(), "a title"))
    done = subprocess.run(
        [sys.executable, str(tmp_path / "helper.py")],
        input=request,
        capture_output=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert pickle.loads(done.stdout) == run_figures(history, "a title")
    assert not (tmp_path / "clean-up ran").exists()


def test_a_helper_that_fails_while_a_child_draws_does_not_keep_the_command_waiting(tmp_path: Path) -> None:
    """The command reads the helper's reply until every copy of that pipe is closed: a child still
    drawing must not hold one, or a helper that failed would keep the command waiting for the child."""
    code = """
        import os, time
        from digitnet import figure_helper, plotting
        helper = os.getpid()

        def run_figure(history, stem, title=""):
            if os.getpid() == helper:
                raise RuntimeError("the helper's own figure fails")
            time.sleep(60)  # a child that is slow to draw

        plotting.run_figure = run_figure
        figure_helper._serve()
    """
    (tmp_path / "helper.py").write_text(textwrap.dedent(code))
    request = pickle.dumps((_history().to_dict(), "a title"))
    helper = subprocess.Popen(
        [sys.executable, str(tmp_path / "helper.py")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=tmp_path,
        start_new_session=True,
    )
    try:
        reply, _ = helper.communicate(request, timeout=30)  # not the child's 60 s
        assert helper.returncode != 0
        assert reply == b""  # and the command draws the figures itself
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(helper.pid, signal.SIGKILL)  # the sleeping child too
        helper.wait()


def test_a_helper_that_died_leaves_the_drawing_to_this_process(tmp_path: Path) -> None:
    history = _history()
    (tmp_path / "history.json").write_text(json.dumps(history.to_dict()))
    kill = "os.kill(figure_helper._helper.pid, signal.SIGKILL); figure_helper._helper.wait()"
    result = _in_a_process(HELPER_SCRIPT.format(before_draw=kill), tmp_path)
    assert result["matplotlib here"] is True  # drawn here, after all
    for name, data in run_figures(history, "a title").items():
        assert (tmp_path / name).read_bytes() == data


def test_a_helper_that_is_never_asked_ends_with_the_command(tmp_path: Path) -> None:
    code = """
        import json
        from digitnet import figure_helper
        figure_helper.start()
        print(json.dumps({"pid": figure_helper._helper.pid}))
    """
    pid = _in_a_process(code, tmp_path)["pid"]
    assert isinstance(pid, int)
    for _ in range(600):  # its pipe closed when the command ended; it reads that and returns
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        subprocess.run(["sleep", "0.05"], check=True)
    pytest.fail(f"the helper (pid {pid}) outlived the command by 30 s")


def test_the_digitnet_command_writes_the_helpers_figures(tmp_path: Path) -> None:
    root = write_mnist_dir(tmp_path / "mnist", train_count=120, test_count=30)
    process = digitnet_process(
        "train", "--data-dir", str(root), "--epochs", "2", "--hidden", "16", "--out", "run", cwd=tmp_path
    )
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
    run = tmp_path / "run"
    history = History.from_dict(json.loads((run / "history.json").read_text()))
    title = run_config_from_dict(json.loads((run / "config.json").read_text())["config"]).title()
    expected = run_figures(history, title)  # the same bytes as drawing in this process
    assert sorted(p.name for p in run.iterdir() if p.suffix in (".png", ".svg")) == sorted(expected)
    for name, data in expected.items():
        assert (run / name).read_bytes() == data
