"""Never lose a student's work: output paths digitnet did not write, resume, SIGTERM/SIGKILL, full disks.

Each test makes the situation a student meets (a thesis in the --out directory, a laptop that kills the
run, a USB stick that fills up) and checks that nothing digitnet did not write is touched, nothing is
half-written, and nothing finished is lost.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from conftest import digitnet_process
from typer.testing import CliRunner

from digitnet.checkpoint import resume_path
from digitnet.cli import app
from digitnet.run import RunSummary, run_experiment
from digitnet.settings import config_difference, make_run_config, resolve_run_config
from digitnet.trainer import EpochCallback, EpochRecord

runner = CliRunner()
TINY = ["--dataset", "sample", "--batch-size", "512", "--threads", "1"]


def _one_error(result: object) -> str:
    output = result.output  # type: ignore[attr-defined]
    assert result.exit_code == 2, output  # type: ignore[attr-defined]
    assert "Traceback" not in output
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, output
    return errors[0]


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "cache" not in p.relative_to(root).parts
    }


# ------------------------------------------------------------------------------------------ --out


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("owned")
    result = runner.invoke(app, ["train", *TINY, "--epochs", "1", "--out", str(root / "run")])
    assert result.exit_code == 0, result.output
    return root / "run"


def _foreign_dir(tmp: Path) -> tuple[list[str], Path]:
    (tmp / "d").mkdir()
    (tmp / "d" / "thesis.tex").write_text("three years of work")
    return ["train", *TINY, "--out", "d"], tmp / "d"


def _foreign_file(tmp: Path) -> tuple[list[str], Path]:
    (tmp / "notes.txt").write_text("my notes")
    return ["train", *TINY, "--out", "notes.txt"], tmp / "notes.txt"


def _split_over_thesis(tmp: Path) -> tuple[list[str], Path]:
    _, path = _foreign_dir(tmp)
    return ["data", "prepare", "--dataset", "sample", "--out", "d"], path


def _figures_over_thesis(tmp: Path) -> tuple[list[str], Path]:
    _, path = _foreign_dir(tmp)
    return ["data", "show", "--dataset", "sample", "--out", "d"], path


def _under_a_file(tmp: Path) -> tuple[list[str], Path]:
    (tmp / "plain").write_text("a file, not a folder")
    return ["train", *TINY, "--out", "plain/run"], tmp / "plain"


def _here(tmp: Path) -> tuple[list[str], Path]:
    (tmp / "keep.txt").write_text("x")
    return ["train", *TINY, "--out", "."], tmp / "keep.txt"


def _empty(tmp: Path) -> tuple[list[str], Path]:
    (tmp / "keep.txt").write_text("x")
    return ["train", *TINY, "--out", ""], tmp / "keep.txt"


def _parent(tmp: Path) -> tuple[list[str], Path]:
    (tmp / "keep.txt").write_text("x")
    return ["train", *TINY, "--out", ".."], tmp / "keep.txt"


OUT_CASES = {
    "train --out over a folder with a thesis": _foreign_dir,
    "train --out over a file": _foreign_file,
    "data prepare --out over a folder with a thesis": _split_over_thesis,
    "data show --out over a folder with a thesis": _figures_over_thesis,
    "train --out under a file": _under_a_file,
    "train --out .": _here,
    "train --out ''": _empty,
    "train --out ..": _parent,
}


@pytest.mark.parametrize("name", list(OUT_CASES))
def test_out_never_replaces_what_digitnet_did_not_write(name: str, tmp_path: Path) -> None:
    args, precious = OUT_CASES[name](tmp_path)
    before = _tree(tmp_path)
    started = time.monotonic()
    error = _one_error(runner.invoke(app, args))
    assert "--out" in error
    assert precious.exists()
    assert _tree(tmp_path) == before  # nothing deleted, nothing written, no staging left
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert time.monotonic() - started < 30  # refused before training, not after


@pytest.mark.parametrize("target", ["", "model.pt"])
def test_evaluate_out_cannot_wipe_the_run_it_evaluates(run_dir: Path, target: str) -> None:
    before = _tree(run_dir)
    error = _one_error(runner.invoke(app, ["evaluate", str(run_dir), "--out", str(run_dir / target)]))
    assert str(run_dir) in error
    assert _tree(run_dir) == before


def test_train_refuses_a_run_directory_of_another_config(run_dir: Path) -> None:
    before = _tree(run_dir)
    error = _one_error(runner.invoke(app, ["train", *TINY, "--epochs", "2", "--out", str(run_dir)]))
    epochs = json.loads((run_dir / "config.json").read_text())["config"]["train"]["epochs"]
    assert f"another config (--epochs {epochs} there, 2 here)" in error  # which option to change back
    assert _tree(run_dir) == before


def test_the_refusal_names_settings_as_a_student_types_them(run_dir: Path) -> None:
    saved = json.loads((run_dir / "config.json").read_text())["config"]
    saved["data"] |= {
        "test_fraction": None,
        "augment": True,
    }  # as a run on full MNIST with --augment saved it
    config = resolve_run_config(make_run_config({"dataset": "sample", "threads": 1}))
    said = config_difference(saved, config)
    fraction = config.data.test_fraction
    assert fraction is not None and f"--test-fraction not set there, {fraction:g} here" in said
    assert "--augment on there, off here" in said
    assert "None" not in said and "True" not in said and "0.14285714" not in said


def test_same_config_rerun_replaces_its_files_and_keeps_the_rest(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["train", *TINY, "--epochs", "1", "--out", str(out)]
    fresh = runner.invoke(app, args)
    assert fresh.exit_code == 0 and "already holds" not in fresh.output
    evaluated = runner.invoke(app, ["evaluate", str(out)])
    assert evaluated.exit_code == 0, evaluated.output
    (out / "notes.md").write_text("what I saw")
    first_config = json.loads((out / "config.json").read_text())
    first_weights = (out / "model.pt").read_bytes()
    again = runner.invoke(app, args)
    assert again.exit_code == 0
    assert "already holds a finished run of this config: training it again replaces it" in again.output
    assert (out / "notes.md").read_text() == "what I saw"
    # The same seed on one thread gives the same weights, bit for bit: the evaluation still describes
    # them, so it stays (a student rerunning to see the run again lost it), and nothing is said removed.
    assert (out / "model.pt").read_bytes() == first_weights
    assert (out / "evaluation" / "metrics.json").is_file()
    assert "removed" not in again.output
    assert json.loads((out / "config.json").read_text())["key"] == first_config["key"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging, no resume file


def test_other_weights_in_the_same_run_folder_take_the_old_evaluation_with_them(tmp_path: Path) -> None:
    """Weights that differ from the evaluated ones, even in one byte, leave no evaluation beside them."""
    from digitnet.run import RunSummary, write_run_dir
    from digitnet.trainer import History

    out = tmp_path / "run"
    assert runner.invoke(app, ["train", *TINY, "--epochs", "1", "--out", str(out)]).exit_code == 0
    assert runner.invoke(app, ["evaluate", str(out)]).exit_code == 0
    config = resolve_run_config(
        make_run_config({"dataset": "sample", "batch-size": 512, "threads": 1, "epochs": 1})
    )
    assert config.key() == json.loads((out / "config.json").read_text())["key"]
    weights = bytearray((out / "model.pt").read_bytes())
    weights[-30] ^= 1
    summary = RunSummary.from_dict(json.loads((out / "summary.json").read_text()))
    removed = write_run_dir(out, config, History(), summary, bytes(weights), {})
    assert removed == ["evaluation"] and not (out / "evaluation").exists()


def test_a_students_notes_inside_digitnets_evaluation_survive_a_rerun(tmp_path: Path) -> None:
    """The stale evaluation's figures go; the notes a student wrote beside them stay, and so does the
    marker, so a new 'digitnet evaluate' can write there again."""
    out = tmp_path / "run"
    args = ["train", *TINY, "--epochs", "2", "--out", str(out)]
    # an evaluation of the first epoch's weights, which the resumed run replaces
    config = resolve_run_config(
        make_run_config({"dataset": "sample", "batch-size": 512, "threads": 1, "epochs": 2})
    )
    run_experiment(config, out, on_epoch=_stop_after(1))
    assert runner.invoke(app, ["evaluate", str(out)]).exit_code == 0
    figures = {p.name for p in (out / "evaluation").iterdir()} - {".digitnet"}
    assert figures  # the evaluation wrote something to lose
    (out / "evaluation" / "my_analysis.txt").write_text("my reading of the confusion matrix")
    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    assert "files you added there are kept" in " ".join(again.output.split())
    assert {p.name for p in (out / "evaluation").iterdir()} == {".digitnet", "my_analysis.txt"}
    assert (out / "evaluation" / "my_analysis.txt").read_text() == "my reading of the confusion matrix"
    evaluated = runner.invoke(app, ["evaluate", str(out)])
    assert evaluated.exit_code == 0, evaluated.output
    assert figures <= {p.name for p in (out / "evaluation").iterdir()}
    assert (out / "evaluation" / "my_analysis.txt").is_file()


def test_a_students_evaluation_folder_survives_a_rerun(tmp_path: Path) -> None:
    """Only digitnet's own evaluation (by its marker) counts as derived from the weights."""
    out = tmp_path / "run"
    args = ["train", *TINY, "--epochs", "1", "--out", str(out)]
    assert runner.invoke(app, args).exit_code == 0
    (out / "evaluation").mkdir()
    (out / "evaluation" / "mine.txt").write_text("my own notes")
    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    assert (out / "evaluation" / "mine.txt").read_text() == "my own notes"
    assert "removed" not in again.output


def _stop_inside_epoch_1(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C at the third optimizer step, long before epoch 1 ends."""
    import digitnet.run

    real = digitnet.run.build_optimizer

    def stopping(*args: object, **kwargs: object) -> torch.optim.Optimizer:
        optimizer = real(*args, **kwargs)  # type: ignore[arg-type]
        steps = 0

        def interrupt(*_: object, **__: object) -> None:
            nonlocal steps
            steps += 1
            if steps == 3:
                raise KeyboardInterrupt

        optimizer.register_step_pre_hook(interrupt)
        return optimizer

    monkeypatch.setattr(digitnet.run, "build_optimizer", stopping)


@pytest.mark.parametrize("earlier", [False, True])
def test_ctrl_c_inside_epoch_1_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, earlier: bool
) -> None:
    """Half an epoch's weights, written as a "partial run" of 0 epochs, were evaluated as a model (93%
    for a CNN); and a finished earlier run of the same config was replaced by them."""
    out = tmp_path / "run"
    args = ["train", *TINY, "--epochs", "2", "--out", str(out)]
    if earlier:
        assert runner.invoke(app, args).exit_code == 0
    before = _tree(tmp_path)
    _stop_inside_epoch_1(monkeypatch)
    stopped = runner.invoke(app, args)
    assert stopped.exit_code == 130, stopped.output
    assert "interrupted before epoch 1 finished: nothing was written" in " ".join(stopped.output.split())
    assert _tree(tmp_path) == before  # the earlier run, if any, untouched; nothing new
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging, no resume file


def test_resuming_a_run_removes_the_evaluation_of_its_half_trained_weights(tmp_path: Path) -> None:
    out = tmp_path / "run"
    config = make_run_config({"dataset": "sample", "epochs": 2, "batch-size": 512, "threads": 1})
    run_experiment(config, out, on_epoch=_stop_after(1))
    assert runner.invoke(app, ["evaluate", str(out)]).exit_code == 0
    resumed = run_experiment(config, out)
    assert resumed.history.status == "completed" and resumed.removed == ("evaluation",)
    assert not (out / "evaluation").exists()


def test_an_interrupted_run_is_not_called_finished(tmp_path: Path) -> None:
    """Its resume checkpoint gone (deleted, or another machine): the rerun trains it from scratch, and must
    not say it replaces "a finished run"."""
    out = tmp_path / "run"
    args = ["train", *TINY, "--epochs", "2", "--out", str(out)]
    config = make_run_config({"dataset": "sample", "epochs": 2, "batch-size": 512, "threads": 1})
    run_experiment(config, out, on_epoch=_stop_after(1))
    resume_path(out).unlink()
    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    assert "already holds a finished run" not in again.output


def test_the_writeup_of_an_interrupted_run_says_its_test_set_was_not_measured(tmp_path: Path) -> None:
    """The test set is measured once training ends; a stopped run has "—" there, and its write-up must
    say why, not that it was measured."""
    out = tmp_path / "run"
    config = make_run_config({"dataset": "sample", "epochs": 2, "batch-size": 512, "threads": 1})
    run_experiment(config, out, on_epoch=_stop_after(1))
    written = runner.invoke(app, ["writeup", str(out), "--out", str(tmp_path / "report"), "--no-pdf"])
    assert written.exit_code == 0, written.output
    results = (tmp_path / "report" / "report.md").read_text().split("### Results")[1]
    assert "the test set was not measured" in results and "measured once, after training" not in results
    accuracy_row = results.split("| accuracy (%) |")[1].split("\n")[0]
    assert accuracy_row.endswith("— |")  # the test column


def test_a_second_process_training_into_the_same_out_is_refused(tmp_path: Path) -> None:
    """Two identical commands in two terminals: while one trains (its marker names a live process), the
    other stops in one line and touches nothing; a marker left by a killed process is cleaned up."""
    out = tmp_path / "run"
    busy = tmp_path / f".run.{os.getppid()}.training"  # a process that is alive: pytest's parent
    busy.touch()
    error = _one_error(runner.invoke(app, ["train", *TINY, "--epochs", "1", "--out", str(out)]))
    assert f"another digitnet process (pid {os.getppid()}) is training into it" in error
    assert sorted(p.name for p in tmp_path.iterdir()) == [busy.name]
    busy.replace(tmp_path / f".run.{2**22 + 12345}.training")  # above Linux's pid_max: no such process
    assert runner.invoke(app, ["train", *TINY, "--epochs", "1", "--out", str(out)]).exit_code == 0
    assert (out / "summary.json").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no marker left, old or new


def test_stale_staging_of_a_killed_process_is_cleaned_and_retired_entries_restored(tmp_path: Path) -> None:
    from digitnet.runtime import atomic_directory

    dead = 2**22 + 12345  # above Linux's default pid_max: no such process
    (tmp_path / f".out.{dead}.abc.tmp").mkdir()
    retired = tmp_path / f".out.{dead}.def.old" / "out"
    retired.mkdir(parents=True)
    (retired / "notes.md").write_text("kept")
    with atomic_directory(tmp_path / "out", "figures") as staging:
        (staging / "a.txt").write_text("new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert (tmp_path / "out" / "notes.md").read_text() == "kept"


def test_files_honour_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        assert runner.invoke(app, ["train", *TINY, "--epochs", "1", "--out", "run"]).exit_code == 0
    finally:
        os.umask(previous)
    assert (tmp_path / "run").stat().st_mode & 0o777 == 0o755
    assert (tmp_path / "run" / "model.pt").stat().st_mode & 0o777 == 0o644


# ------------------------------------------------------------------------------------------ resume

RESUMABLE = {
    # dropout (global RNG), augmentation and shuffling (the data generator), Adam moments, a schedule
    "dataset": "sample",
    "model": "nmlp",
    "hidden": (32,),
    "optimizer": "adam",
    "lr": 0.003,
    "schedule": "onecycle",
    "augment": True,
    "batch-size": 256,
    "epochs": 4,
    "threads": 1,
}


def _weights(run: Path) -> dict[str, torch.Tensor]:
    state: dict[str, torch.Tensor] = torch.load(run / "model.pt", weights_only=True)["state_dict"]
    return state


def _same_run(a: Path, b: Path) -> None:
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)  # bit for bit
    ha, hb = (json.loads((run / "history.json").read_text()) for run in (a, b))
    assert ha["iteration_loss"] == hb["iteration_loss"]
    assert [e["val_accuracy"] for e in ha["epochs"]] == [e["val_accuracy"] for e in hb["epochs"]]
    assert ha["test_accuracy"] == hb["test_accuracy"]


def _stop_after(epoch: int) -> EpochCallback:
    def on_epoch(record: EpochRecord) -> None:
        if record.epoch == epoch:
            raise KeyboardInterrupt

    return on_epoch


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("reference") / "run"
    run_experiment(make_run_config(RESUMABLE), run)
    return run


def test_interrupted_then_resumed_equals_uninterrupted_bit_for_bit(
    uninterrupted: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    stopped = run_experiment(make_run_config(RESUMABLE), run, on_epoch=_stop_after(2))
    assert stopped.history.status == "interrupted" and len(stopped.history.epochs) == 2
    assert resume_path(run).is_file()
    seen: list[int] = []
    resumed = run_experiment(make_run_config(RESUMABLE), run, on_epoch=lambda r: seen.append(r.epoch))
    assert seen == [3, 4]  # it continued, it did not start again
    assert resumed.history.status == "completed"
    # the whole run's time, both processes': the second alone was shorter than the training it reports
    summary = resumed.summary
    assert summary.total_seconds is not None and summary.total_seconds >= summary.train_seconds
    _same_run(uninterrupted, run)
    assert not resume_path(run).exists()


def test_restart_starts_over(uninterrupted: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    run_experiment(make_run_config(RESUMABLE), run, on_epoch=_stop_after(1))
    seen: list[int] = []
    run_experiment(make_run_config(RESUMABLE), run, on_epoch=lambda r: seen.append(r.epoch), restart=True)
    assert seen == [1, 2, 3, 4]
    _same_run(uninterrupted, run)


def test_an_interrupted_run_of_another_config_is_not_overwritten(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run_experiment(make_run_config(RESUMABLE), run, on_epoch=_stop_after(1))
    saved = resume_path(run).read_bytes()
    error = _one_error(runner.invoke(app, ["train", *TINY, "--epochs", "1", "--out", str(run)]))
    assert "another config" in error
    assert resume_path(run).read_bytes() == saved


def test_interrupted_model_pt_holds_the_last_finished_epoch(tmp_path: Path) -> None:
    run = tmp_path / "run"
    config = make_run_config(RESUMABLE)
    run_experiment(config, run, on_epoch=_stop_after(2))
    resume = torch.load(resume_path(run), weights_only=True)
    saved = _weights(run)
    assert all(torch.equal(saved[k], v) for k, v in resume["model"].items())


# -------------------------------------------------------------------------------- signals, processes


def _wait_for_epoch(process: subprocess.Popen[str], epoch: int, total: int) -> str:
    assert process.stderr is not None
    seen = ""
    while f"epoch {epoch}/{total}" not in seen:
        line = process.stderr.readline()
        assert line, seen
        seen += line
    return seen


SLOW_RUN = ["--dataset", "sample", "--model", "cnn", "--batch-size", "64", "--threads", "1"]


@pytest.mark.slow
@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL])
def test_killed_train_resumes_bit_for_bit(tmp_path: Path, how: signal.Signals) -> None:
    epochs = "6"
    reference = digitnet_process("train", *SLOW_RUN, "--epochs", epochs, "--out", "reference", cwd=tmp_path)
    _, stderr = reference.communicate(timeout=600)
    assert reference.returncode == 0, stderr
    process = digitnet_process("train", *SLOW_RUN, "--epochs", epochs, "--out", "run", cwd=tmp_path)
    _wait_for_epoch(process, 2, 6)
    process.send_signal(how)
    _, stderr = process.communicate(timeout=120)
    if how == signal.SIGTERM:
        assert process.returncode == 143, stderr
        assert "Traceback" not in stderr and "interrupted after" in stderr
        assert json.loads((tmp_path / "run" / "summary.json").read_text())["status"] == "interrupted"
    else:
        assert process.returncode == -signal.SIGKILL
    assert resume_path(tmp_path / "run").is_file()
    again = digitnet_process("train", *SLOW_RUN, "--epochs", epochs, "--out", "run", cwd=tmp_path)
    _, stderr = again.communicate(timeout=600)
    assert again.returncode == 0, stderr
    assert "resuming after epoch" in stderr and "epoch 1/6" not in stderr
    _same_run(tmp_path / "reference", tmp_path / "run")


def _children(pid: int) -> list[int]:
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        with contextlib.suppress(OSError):
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line)
            if int(fields.get("PPid", "0").strip()) == pid:
                found.append(int(status.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][0]
    except OSError:
        return False
    return state != "Z"


@contextlib.contextmanager
def _sweep(tmp: Path) -> Iterator[tuple[subprocess.Popen[str], list[int]]]:
    args = ["compare", "epochs", "200", "201", "202", "--seeds", "1", "--jobs", "2", *SLOW_RUN]
    process = digitnet_process(*args, "--out", "sweep", cwd=tmp)
    try:
        workers: list[int] = []
        deadline = time.monotonic() + 120
        while len(workers) < 2 and time.monotonic() < deadline:  # the pool's workers (plus its helper)
            workers = [p for p in _children(process.pid) if "multiprocessing" in _cmdline(p)]
            time.sleep(0.2)
        assert len(workers) >= 2
        resume = tmp / "sweep" / "runs"
        deadline = time.monotonic() + 240
        while len(list(resume.glob(".*.resume.pt"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(list(resume.glob(".*.resume.pt"))) == 2  # both runs have a finished epoch on disk
        yield process, workers
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.communicate(timeout=60)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")
    except OSError:
        return ""


def _wait_gone(pids: list[int], seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.2)
    return [p for p in pids if _alive(p)]


@pytest.mark.slow
def test_sigterm_stops_a_sweep_and_its_workers_saving_their_runs(tmp_path: Path) -> None:
    with _sweep(tmp_path) as (process, workers):
        process.send_signal(signal.SIGTERM)  # the parent alone, as `kill` or a scheduler would
        _, stderr = process.communicate(timeout=120)
        assert process.returncode == 143, stderr
        assert "Traceback" not in stderr
        assert _wait_gone(workers, 30) == []
    runs = [p for p in (tmp_path / "sweep" / "runs").iterdir() if not p.name.startswith(".")]
    statuses = sorted(json.loads((p / "summary.json").read_text())["status"] for p in runs)
    assert statuses == ["interrupted", "interrupted"]  # both running runs saved what they finished


@pytest.mark.slow
def test_ctrl_c_twice_stops_a_sweep_promptly(tmp_path: Path) -> None:
    """``timeout -s INT`` signals the command and then its whole group, and a student presses Ctrl-C
    again when nothing seems to happen: the second signal once cut the pool's shutdown short and left
    the parent waiting for workers that waited for work, for ever."""
    with _sweep(tmp_path) as (process, workers):
        os.killpg(process.pid, signal.SIGINT)
        time.sleep(0.3)  # while the workers save their runs
        os.kill(process.pid, signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
        assert process.returncode == 130, stderr
        assert "Traceback" not in stderr and stderr.count("error:") == 1, stderr
        assert _wait_gone(workers, 10) == []


@pytest.mark.slow
def test_sigkill_of_a_sweep_leaves_no_worker_behind(tmp_path: Path) -> None:
    with _sweep(tmp_path) as (process, workers):
        process.kill()  # only the parent: its workers must notice by themselves
        process.communicate(timeout=60)
        assert _wait_gone(workers, 30) == []


# --------------------------------------------------------------------------------- full, read-only


@contextlib.contextmanager
def _tmpfs(where: Path, options: str) -> Iterator[Path]:
    where.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True, check=False
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a test filesystem here: {mounted.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_read_only_filesystem_is_refused_before_training(tmp_path: Path) -> None:
    with _tmpfs(tmp_path / "ro", "ro,size=1m") as ro:
        started = time.monotonic()
        error = _one_error(runner.invoke(app, ["train", *TINY, "--out", str(ro / "run")]))
        assert str(ro) in error and "Read-only" in error
        assert time.monotonic() - started < 30
        assert list(ro.iterdir()) == []


def test_full_filesystem_fails_in_one_line_and_leaves_nothing_half_written(tmp_path: Path) -> None:
    with _tmpfs(tmp_path / "full", "size=64k") as full:
        result = runner.invoke(app, ["train", *TINY, "--epochs", "2", "--out", str(full / "run")])
        error = _one_error(result)
        assert "No space left" in error
        assert not (full / "run").exists()  # no half run directory
        assert not [p for p in full.iterdir() if p.name.endswith(".tmp")]


# ------------------------------------------------------------------------------ silent wrong results


@pytest.mark.parametrize("kind", ["missing", "file"])
def test_digitnet_data_pointing_nowhere_is_an_error_not_the_sample(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    target = tmp_path / "mnist"
    if kind == "file":
        target.write_text("not a folder")
    monkeypatch.setenv("DIGITNET_DATA", str(target))
    error = _one_error(runner.invoke(app, ["train", "--epochs", "1", "--out", "run"]))
    assert str(target) in error and "DIGITNET_DATA" in error
    assert not (tmp_path / "run").exists()


def test_headerless_csv_with_a_byte_order_mark_reads(tmp_path: Path) -> None:
    from conftest import write_csv

    from digitnet.data import read_csv_digits

    plain = write_csv(tmp_path / "plain.csv", count=30, header=False)
    marked = tmp_path / "bom.csv"
    marked.write_bytes(b"\xef\xbb\xbf" + plain.read_bytes())
    a, b = read_csv_digits(plain), read_csv_digits(marked)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)


def test_a_diverged_run_writes_strict_json(tmp_path: Path) -> None:
    config = make_run_config({"dataset": "sample", "epochs": 1, "lr": 1e12, "threads": 1})
    run = run_experiment(config, tmp_path / "run").run_dir

    def refuse(constant: str) -> None:
        raise AssertionError(f"non-standard JSON constant {constant}")

    summary = json.loads((run / "summary.json").read_text(), parse_constant=refuse)
    history = json.loads((run / "history.json").read_text(), parse_constant=refuse)
    assert summary["status"] == "diverged" and None in history["iteration_loss"]


def _truncate_history(run: Path) -> None:
    history = run / "history.json"
    history.write_text(history.read_text()[:40])  # as a full disk or a killed copy leaves it


def _drop_summary_key(run: Path) -> None:
    summary = json.loads((run / "summary.json").read_text())
    del summary["val_accuracy"]
    (run / "summary.json").write_text(json.dumps(summary))


def _string_metric(run: Path) -> None:
    summary = json.loads((run / "summary.json").read_text())
    summary["test_accuracy"] = "0.97"
    (run / "summary.json").write_text(json.dumps(summary))


@pytest.mark.parametrize("damage", [_truncate_history, _drop_summary_key, _string_metric])
def test_a_damaged_cached_run_is_trained_again(tmp_path: Path, damage: Callable[[Path], None]) -> None:
    args = ["compare", "epochs", "1", "--seeds", "1", "--jobs", "1", *TINY[:2], "--out", "sweep"]
    assert runner.invoke(app, args).exit_code == 0
    (run,) = [p for p in (tmp_path / "sweep" / "runs").iterdir() if not p.name.startswith(".")]
    damage(run)
    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    assert "1 run(s) trained, 0 reused" in again.output
    json.loads((run / "history.json").read_text())
    assert isinstance(json.loads((run / "summary.json").read_text())["test_accuracy"], float)


def test_a_second_sweep_waits_for_and_reuses_the_first_ones_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from filelock import FileLock

    from digitnet.sweep import execution

    config = make_run_config({"dataset": "sample", "epochs": 1, "threads": 1, "batch-size": 512})
    run_dir = tmp_path / "runs" / config.key()
    run_dir.parent.mkdir()
    results: list[RunSummary] = []
    with FileLock(run_dir.parent / f".{run_dir.name}.lock"):  # the first sweep is training this config
        waiting = threading.Thread(target=lambda: results.append(execution.train_one(config, run_dir)))
        waiting.start()
        time.sleep(0.5)
        assert results == []  # it waits
        finished = run_experiment(config, run_dir).summary

        def must_not_train(*args: object, **kwargs: object) -> object:
            raise AssertionError("trained a configuration another sweep had just trained")

        monkeypatch.setattr(execution, "run_experiment", must_not_train)
    waiting.join(timeout=60)
    assert results and results[0].key == finished.key


# ------------------------------------------------------------------------------------------- images


def _page(height: int = 120, width: int = 90) -> object:
    import numpy as np

    page = np.full((height, width), 255, np.uint8)  # a black "7" on white paper
    page[25:33, 20:70] = 0
    for row in range(33, 100):
        column = 66 - (row - 33) // 3
        page[row, column - 4 : column + 4] = 0
    return page


def _prepared(path: Path) -> object:
    from digitnet.images import load_image, to_mnist

    return to_mnist(load_image(path)).astype(int)


def test_sixteen_bit_png_prepares_like_eight_bit(tmp_path: Path) -> None:
    import numpy as np
    from PIL import Image

    page = _page()
    Image.fromarray(page).save(tmp_path / "8.png")
    Image.fromarray(page.astype(np.uint16) * 257).save(tmp_path / "16.png")  # 0..65535
    assert Image.open(tmp_path / "16.png").mode.startswith("I")
    assert np.abs(_prepared(tmp_path / "16.png") - _prepared(tmp_path / "8.png")).max() <= 1


def test_exif_orientation_is_honoured(tmp_path: Path) -> None:
    import numpy as np
    from PIL import Image

    page = _page()
    Image.fromarray(page).save(tmp_path / "upright.jpg", quality=95)
    # A phone stores the photo turned and records "rotate 90° clockwise to view" (orientation 6).
    sideways = Image.fromarray(page).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    sideways.save(tmp_path / "phone.jpg", quality=95, exif=exif)
    difference = np.abs(_prepared(tmp_path / "phone.jpg") - _prepared(tmp_path / "upright.jpg"))
    assert difference.mean() < 3  # the same digit, up to JPEG noise


def test_a_page_frame_is_not_ink(tmp_path: Path) -> None:
    import numpy as np
    from PIL import Image

    page = _page()
    framed = page.copy()
    framed[2:4, 2:-2] = framed[-4:-2, 2:-2] = 0
    framed[2:-2, 2:4] = framed[2:-2, -4:-2] = 0
    Image.fromarray(page).save(tmp_path / "page.png")
    Image.fromarray(framed).save(tmp_path / "framed.png")
    assert np.abs(_prepared(tmp_path / "framed.png") - _prepared(tmp_path / "page.png")).max() <= 1


def test_a_large_zero_is_kept_as_ink() -> None:
    import numpy as np

    from digitnet.images import to_mnist

    ys, xs = np.mgrid[0:100, 0:100]
    ring = np.abs(np.hypot((ys - 50) / 49, (xs - 50) / 40) - 0.95) < 0.05  # a "0" touching the edges
    digit = to_mnist(np.where(ring, 0.0, 255.0))
    assert digit[14, 14] == 0 and (digit > 128).sum() > 40  # still a ring, not "no digit found"


def test_a_decompression_bomb_is_one_error_and_no_warning(tmp_path: Path) -> None:
    import warnings

    from PIL import Image

    from digitnet.errors import DataError
    from digitnet.images import load_image

    Image.new("L", (9500, 9500), 255).save(tmp_path / "big.png")  # 90 Mpx: past PIL's warning limit
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning leaking to the terminal fails the test
        with pytest.raises(DataError, match="too large"):
            load_image(tmp_path / "big.png")


def test_a_stopped_compare_leaves_the_last_finished_compares_tables_and_label(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A compare of other values, stopped before its tables are written, must not leave the folder
    labelled as the new sweep over the old one's tables; and the student is told whose tables they are."""
    import digitnet.sweep

    out = tmp_path / "sweep"
    first = [
        "compare",
        "lr",
        "0.01",
        "--seeds",
        "1",
        "--epochs",
        "1",
        "--jobs",
        "1",
        *TINY,
        "--out",
        str(out),
    ]
    assert runner.invoke(app, first).exit_code == 0
    label, tables = (out / ".digitnet").read_text(), (out / "results.md").read_text()

    def stopped(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(digitnet.sweep, "execute", stopped)
    second = runner.invoke(app, [*first[:2], "0.1", *first[3:]])
    assert second.exit_code == 130
    assert f"the tables and figures in {out} are still those of the last compare" in " ".join(
        second.output.split()
    )
    assert (out / ".digitnet").read_text() == label and (out / "results.md").read_text() == tables
