"""Run directories: every file written, configs round-trip and validate, checkpoints load safely."""

from __future__ import annotations

import contextlib
import json
import math
import pickle
import platform
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
import torch

from digitnet.checkpoint import load_checkpoint
from digitnet.errors import CheckpointError, ConfigError
from digitnet.run import run_experiment
from digitnet.settings import RunConfig, make_run_config, parse_assignments, run_config_from_dict
from digitnet.trainer import evaluate

if TYPE_CHECKING:
    from matplotlib.figure import Figure

RUN_FILES = {
    ".digitnet",  # the marker that lets a later run of this config replace it (and nothing else)
    "config.json",
    "history.json",
    "history.csv",
    "summary.json",
    "model.pt",
    "loss.png",
    "loss.svg",
    "accuracy.png",
    "accuracy.svg",
}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    config = make_run_config(
        # one thread, fixed: the thread count digitnet picks by load changes the last bits of the
        # normalisation statistics, which one test compares exactly
        {"dataset": "sample", "epochs": 2, "batch-size": 128, "model": "bn", "optimizer": "adam", "lr": 0.002}
        | {"threads": 1}
    )
    return run_experiment(config, tmp_path_factory.mktemp("runs") / "r")


def test_run_directory_has_every_file(finished_run) -> None:  # type: ignore[no-untyped-def]
    assert {p.name for p in finished_run.run_dir.iterdir()} == RUN_FILES
    summary = json.loads((finished_run.run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["parameters"] > 0
    assert summary["test_accuracy"] == finished_run.history.test_accuracy
    history = json.loads((finished_run.run_dir / "history.json").read_text())
    # the test set's measuring time is recorded apart from the epochs (the start-up benchmark needs it)
    assert 0 < history["test_seconds"] < summary["total_seconds"] - summary["train_seconds"]
    config = json.loads((finished_run.run_dir / "config.json").read_text())
    assert config["environment"]["torch"] == torch.__version__
    assert {"device", "threads", "numpy"} <= set(config["environment"])
    # the processor and the kernels' instruction set: the last digits of a run depend on them
    assert config["environment"]["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert config["environment"]["device_name"]
    csv_lines = (finished_run.run_dir / "history.csv").read_text().splitlines()
    assert csv_lines[0].startswith("epoch,train_loss") and len(csv_lines) == 3


def test_checkpoint_rebuilds_the_same_model(finished_run) -> None:  # type: ignore[no-untyped-def]
    from digitnet.data import load_split, to_tensors

    checkpoint = load_checkpoint(finished_run.run_dir)
    config = checkpoint.config
    assert config == finished_run.config and config.data.dataset == "sample"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the run did: a reduction's last bits depend on the thread count
    try:
        tensors = to_tensors(load_split(config.data), config.data, torch.device("cpu"))
    finally:
        torch.set_num_threads(threads)
    assert checkpoint.normalization == tensors.stats
    result = evaluate(checkpoint.model, tensors.test_x, tensors.test_y)
    assert result.accuracy == finished_run.history.test_accuracy


def test_checkpoint_with_pickled_code_is_refused(tmp_path: Path) -> None:
    class Sneaky:
        def __reduce__(self):  # type: ignore[no-untyped-def]
            return (print, ("this must never run",))

    path = tmp_path / "model.pt"
    torch.save({"config": {}, "state_dict": {}, "payload": Sneaky()}, path)
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(tmp_path)
    path.write_bytes(pickle.dumps("not a checkpoint"))
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path)


def test_checkpoint_from_another_model_is_refused(finished_run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    payload = torch.load(finished_run.run_dir / "model.pt", weights_only=True)
    payload["config"]["model"]["name"] = "cnn"
    payload["config"]["model"]["hidden_sizes"] = [120, 84]
    torch.save(payload, tmp_path / "model.pt")
    with pytest.raises(CheckpointError, match="do not fit"):
        load_checkpoint(tmp_path)


def test_missing_checkpoint_is_named(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path)


def test_config_round_trips_and_unknown_keys_fail() -> None:
    config = make_run_config({"model": "nmlp", "hidden": (64, 32), "lr": 0.1, "augment": True})
    data = json.loads(json.dumps(asdict(config)))
    assert run_config_from_dict(data) == config
    data["optim"]["learning_rate"] = 0.1
    with pytest.raises(ConfigError, match="learning_rate"):
        run_config_from_dict(data)
    bad_type = json.loads(json.dumps(asdict(config)))
    bad_type["train"]["epochs"] = "ten"
    with pytest.raises(ConfigError, match="epochs"):
        run_config_from_dict(bad_type)


def test_keys_are_stable_and_distinct() -> None:
    a = make_run_config({"lr": 0.01})
    assert a.key() == make_run_config({"lr": 0.01}).key() == RunConfig().key()
    assert a.key() != make_run_config({"lr": 0.02}).key()
    assert a.key() != make_run_config({"seed": 1}).key()
    # the cache relies on keys computed in other processes (sweep workers, later sessions)
    import subprocess
    import sys

    code = "from digitnet.settings import make_run_config; print(make_run_config({'lr': 0.01}).key())"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert other.stdout.strip() == a.key() and len(a.key()) == 12


def test_settings_by_name() -> None:
    assert parse_assignments("lr=0.001 dropout=0.2") == {"lr": 0.001, "dropout": 0.2}
    assert parse_assignments("hidden=30,5") == {"hidden": (30, 5)}
    with pytest.raises(ConfigError, match="unknown setting"):
        parse_assignments("learning_rate=0.1")
    with pytest.raises(ConfigError, match="unknown setting"):
        make_run_config({"lr": 0.1, "epoch": 3})
    assert make_run_config({"model": "nmlp"}).model.dropout == 0.2


def test_figures_are_values_drawn_from_a_saved_history(finished_run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A notebook can redraw a run's figures from its history.json: Figures come back, nothing is written."""
    from matplotlib.figure import Figure

    from digitnet.plotting import plot_accuracy, plot_loss
    from digitnet.trainer import History

    before = sorted(p.name for p in finished_run.run_dir.iterdir()), sorted(tmp_path.iterdir())
    with (finished_run.run_dir / "history.json").open() as handle:
        history = History.from_dict(json.load(handle))
    loss, accuracy = plot_loss(history), plot_accuracy(history)
    assert isinstance(loss, Figure) and isinstance(accuracy, Figure)
    assert len(loss.axes[0].lines) >= 4  # per iteration, moving average, train and validation per epoch
    # The running train accuracy sits mid-epoch, where it was measured (as the train loss does);
    # validation at each epoch's end.
    assert [line.get_xdata().tolist() for line in accuracy.axes[0].lines[:2]] == [[0.5, 1.5], [1, 2]]
    train_loss = [line for line in loss.axes[0].lines if line.get_label() == "train loss (epoch mean)"]
    assert train_loss[0].get_xdata().tolist() == [0.5, 1.5]
    assert (sorted(p.name for p in finished_run.run_dir.iterdir()), sorted(tmp_path.iterdir())) == before


def test_a_short_run_is_drawn_on_whole_epochs_from_zero(finished_run) -> None:  # type: ignore[no-untyped-def]
    """One epoch must not be labelled 0.48, 0.54, …: the x axis starts where training started, in epochs."""
    from digitnet.plotting import plot_accuracy, plot_loss
    from digitnet.trainer import History

    with (finished_run.run_dir / "history.json").open() as handle:
        history = History.from_dict(json.load(handle))
    history.epochs = history.epochs[:1]
    for figure in (plot_loss(history), plot_accuracy(history)):
        shown = _shown_xticks(figure)[0]
        assert figure.axes[0].get_xlim()[0] == 0 and shown and all(float(tick).is_integer() for tick in shown)


def _shown_xticks(figure: Figure) -> list[list[float]]:
    """Each axes' x ticks inside its limits, as the figure draws them (ticks are placed when drawn)."""
    figure.canvas.draw()
    return [
        [tick for tick in axes.get_xticks() if axes.get_xlim()[0] <= tick <= axes.get_xlim()[1]]
        for axes in figure.axes
    ]


def test_a_one_epoch_diagnostics_figure_is_drawn_on_whole_epochs() -> None:
    """One point alone must not be labelled 0.945, 0.960, …"""
    from digitnet.history import EpochHealth, History, LayerHealth
    from digitnet.plotting import plot_diagnostics

    layers = [LayerHealth("fc1", 0.5, 1e-3, 0.0), LayerHealth("fc2", 0.2, 2e-3, 0.1)]
    for shown in _shown_xticks(plot_diagnostics(History(diagnostics=[EpochHealth(1, layers)]))):
        assert 1 in shown and all(float(tick).is_integer() for tick in shown)


def test_a_diagnostics_panel_within_a_decade_labels_each_tick_with_its_own_value() -> None:
    """Gradient norms between 1.25 and 1.45: two significant digits labelled the ticks 1.28, 1.36 and 1.44
    "1.3, 1.4, 1.4", and 1.25 "1.2"."""
    from digitnet.history import EpochHealth, History, LayerHealth
    from digitnet.plotting import plot_diagnostics

    epochs = [
        EpochHealth(e, [LayerHealth("fc1", norm, 1e-3, 0.0), LayerHealth("fc2", norm + 0.01, 2e-3, 0.1)])
        for e, norm in enumerate((1.25, 1.31, 1.38, 1.44), start=1)
    ]
    figure = plot_diagnostics(History(diagnostics=epochs))
    figure.canvas.draw()
    panel = figure.axes[0]
    low, high = panel.get_ylim()
    shown = [
        (t.get_position()[1], t.get_text())
        for t in panel.get_yticklabels()
        if low <= t.get_position()[1] <= high
    ]
    assert len(shown) >= 3
    texts = [text for _, text in shown]
    assert len(set(texts)) == len(texts)  # no two ticks read the same
    assert all(float(text) == pytest.approx(value, abs=1e-9) for value, text in shown)


def test_a_run_stopped_before_its_first_epoch_says_so_in_its_figures() -> None:
    from digitnet.history import History
    from digitnet.plotting import plot_accuracy, plot_loss

    for figure in (plot_loss(History(status="interrupted")), plot_accuracy(History(status="interrupted"))):
        axes = figure.axes[0]
        assert axes.get_xlim() == (0.0, 1.0) and list(axes.get_yticks()) == []
        assert [t.get_text() for t in axes.texts] == ["stopped before the first epoch finished"]


def test_a_diverged_runs_loss_figure_marks_the_step_where_it_diverged() -> None:
    """The losses of a diverged run run past its last finished epoch, so the plot takes the epoch's length
    from the record: the red line sits at the step, on a log scale that keeps the early steps visible."""
    from digitnet.history import History
    from digitnet.plotting import plot_accuracy, plot_loss

    losses = [2.3, 40.0, 3e8, math.nan, math.nan]
    history = History(
        iteration_loss=losses,
        status="diverged",
        diverged_at={"epoch": 1, "step": 4, "steps_per_epoch": 100},
    )
    figure = plot_loss(history)
    axes = figure.axes[0]
    figure.canvas.draw()
    (line,) = [line for line in axes.get_lines() if str(line.get_label()).startswith("diverged")]
    assert line.get_xdata()[0] == pytest.approx(0.04) and axes.get_xlim() == (0.0, 1.0)
    assert axes.get_yscale() == "log" and len(axes.get_yticks()) > 0 and not axes.texts
    labels = [line.get_label() for line in axes.get_lines()]
    assert "validation loss (epoch)" not in labels and "train loss (epoch mean)" not in labels
    history.test_accuracy = 0.1007  # a diverged run is still tested: its accuracy figure shows that alone
    accuracy = plot_accuracy(history).axes[0]
    assert [line.get_label() for line in accuracy.get_lines()] == ["test (final) 10.07%"]
    assert [t.get_text() for t in accuracy.texts] == ["diverged before the first epoch finished"]
    assert accuracy.get_ylim() == (0.0, 100.0) and len(accuracy.get_yticks()) > 0


@pytest.mark.parametrize("grid", [False, True])
def test_a_sweeps_keys_cover_no_curve_no_point_and_no_axis_label(grid: bool) -> None:
    """A value whose accuracy tops a panel's corner is where matplotlib's "best" legend can land, and a
    dozen series of a short sweep fill a panel; long category names, rotated, are where a key placed under
    a panel by hand can land."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from digitnet.plotting import CURVE_LABELS, SweepSeries, plot_sweep

    names = ["baseline", "lr=0.001 dropout=0.2", "lr=0.0005 dropout=0.4", "lr=0.0001 dropout=0.6"]
    accuracies = [0.2, 0.5, 0.7, 0.99]  # rising to the upper right corner, where "best" goes
    series = [
        SweepSeries(
            label=f"{group} {name}",
            value=name,
            group=group,
            curves={metric: [[acc / 2, acc]] for metric in CURVE_LABELS},
            final={"val_accuracy": (acc, 0.0), "test_accuracy": (acc - 0.01, 0.0)},
            seconds=(1.0 + acc, 0.1),
            diverged=0,
            seeds=1,
        )
        for group in (["mlp", "bn"] if grid else [""])
        for name, acc in zip(names, accuracies, strict=True)
    ]
    for name, figure in plot_sweep("variants", series).items():
        canvas = FigureCanvasAgg(figure)  # as the figure is saved: drawn, then measured
        canvas.draw()
        renderer = canvas.get_renderer()
        assert len(_keys(figure, renderer)) == (2 if grid and name == "final" else 1), name
        _assert_keys_clear(figure, renderer)


def test_a_one_epoch_sweep_shows_each_values_spread_apart_and_no_cap_on_the_frame() -> None:
    """``compare lr --epochs 1``: each value is one point at epoch 1, where a ±std band has no width and
    six points sat on one vertical line; the time panel's highest error bar touched its frame."""
    from matplotlib.collections import LineCollection

    from digitnet.plotting import CURVE_LABELS, SweepSeries, plot_sweep

    series = [
        SweepSeries(
            label=value,
            value=value,
            group="",
            curves={metric: [[acc - 0.05], [acc], [acc + 0.05]] for metric in CURVE_LABELS},
            final={"val_accuracy": (acc, 0.05), "test_accuracy": (acc, 0.05)},
            seconds=(0.06 + acc / 100, 0.004),
            diverged=0,
            seeds=3,
        )
        for value, acc in (("0.1", 0.57), ("0.03", 0.74), ("0.01", 0.59))
    ]
    figures = plot_sweep("lr", series)
    axes = figures["val_accuracy"].axes[0]
    points = [line.get_xdata()[0] for line in axes.get_lines() if len(line.get_xdata()) == 1]
    assert len(set(points)) == 3 and all(0.5 < x < 1.5 for x in points)
    bars = [c for c in axes.collections if isinstance(c, LineCollection)]
    assert len(bars) == 3  # one error bar per value: mean ± std over its three seeds
    (low, high), expected = bars[1].get_segments()[0][:, 1], (69.0, 79.0)
    assert (low, high) == pytest.approx(expected)
    time_axes = figures["final"].axes[1]
    assert time_axes.get_ylim()[1] >= 1.05 * max(s.seconds[0] + s.seconds[1] for s in series)
    # a two-factor grid's curves are its cells: the title names both factors, not "by lr" alone
    grid = plot_sweep("lr", series, by="optimizer")
    assert "per epoch, by lr × optimizer (" in grid["val_accuracy"].axes[0].get_title()
    assert [axes.get_title() for axes in grid["final"].axes] == [
        "final accuracy, lr × optimizer (mean ± std over seeds)",
        "time cost, lr × optimizer",
    ]


def _keys(figure: Figure, renderer: Any) -> list[Any]:
    """Where every key of ``figure`` is drawn: the figure's, its subfigures' and its panels' own."""
    legends = [*figure.legends, *(legend for sub in figure.subfigs for legend in sub.legends)]
    legends += [axes.get_legend() for axes in figure.axes if axes.get_legend()]
    return [legend.get_window_extent(renderer) for legend in legends]


def _assert_keys_clear(figure: Figure, renderer: Any) -> None:
    """No key of ``figure`` over a panel (so over no line or point), a tick label or an axis name."""
    for axes in figure.axes:
        taken = [axes.get_window_extent(renderer), axes.xaxis.label.get_window_extent(renderer)]
        taken += [label.get_window_extent(renderer) for label in axes.get_xticklabels() if label.get_text()]
        for key in _keys(figure, renderer):
            assert not any(key.overlaps(box) for box in taken)


def test_a_runs_figures_show_every_epoch_and_keep_their_keys_clear(finished_run) -> None:  # type: ignore[no-untyped-def]
    """A first epoch's validation loss above every training iteration's was drawn off the panel, under the
    key in its corner."""
    import dataclasses

    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from digitnet.plotting import plot_accuracy, plot_loss
    from digitnet.trainer import History

    with (finished_run.run_dir / "history.json").open() as handle:
        history = History.from_dict(json.load(handle))
    history.epochs[0] = dataclasses.replace(history.epochs[0], val_loss=3 * max(history.iteration_loss))
    for figure in (plot_loss(history), plot_accuracy(history)):
        canvas = FigureCanvasAgg(figure)
        canvas.draw()
        _assert_keys_clear(figure, canvas.get_renderer())
        low, high = figure.axes[0].get_ylim()
        for line in figure.axes[0].lines:
            if line.get_marker() not in (None, "None", ""):  # the per-epoch points
                assert all(low <= y <= high for y in line.get_ydata())


@contextlib.contextmanager
def _spinning_process() -> Iterator[subprocess.Popen[bytes]]:
    """A process that never sleeps, so keeps one core busy; past its start-up when the block begins, and
    stopped when it ends."""
    process = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.2)
        yield process
    finally:
        process.kill()
        process.wait()


def test_busy_cores_sees_a_busy_neighbour() -> None:
    from digitnet.runtime import busy_cores

    with _spinning_process():
        assert busy_cores(0.3) >= 0.7  # one process that never sleeps keeps one core busy


def test_the_load_window_counts_other_programs_not_this_one() -> None:
    """The window since the command started (torch's import) must not count this process's own work as
    another program's: spinning here reads as no one else busy; a spinning neighbour reads as one core."""
    from digitnet import cpuload

    since = cpuload.read()
    end = time.monotonic() + 0.6
    while time.monotonic() < end:  # this process keeps one core busy, as importing torch does
        pass
    own_only = cpuload.other_busy_cores(since)
    with _spinning_process():
        since = cpuload.read()
        time.sleep(0.6)
        with_neighbour = cpuload.other_busy_cores(since)
    assert own_only is not None and with_neighbour is not None
    assert own_only < 0.5 and with_neighbour >= 0.7
    assert cpuload.other_busy_cores(since, maximum=0.1) is None  # too old a window says nothing


def test_a_helper_process_counts_as_this_process_not_as_another_program(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The figure helper imports matplotlib while torch imports: its work is the run's own, and must not
    make the run think a core is taken by someone else (a spinning helper reads as no one else busy)."""
    from digitnet import cpuload

    monkeypatch.setattr(cpuload, "_helpers", set())
    with _spinning_process() as helper:
        cpuload.count_as_own(helper.pid)
        since = cpuload.read()
        time.sleep(0.6)
        others = cpuload.other_busy_cores(since)
    assert others is not None and others < 0.5


def test_the_load_is_read_on_the_cores_this_process_may_use(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the affinity set's cores are counted: a container's host has other tenants on the rest."""
    from digitnet import cpuload

    if not hasattr(cpuload.os, "sched_getaffinity") or cpuload.read() is None:
        pytest.skip("no /proc/stat or affinity on this platform")
    every, allowed = cpuload.read(), len(cpuload.os.sched_getaffinity(0))
    monkeypatch.setattr(cpuload.os, "sched_getaffinity", lambda pid: {0})
    one = cpuload.read()
    assert every is not None and one is not None
    assert one.cores == 1 and every.cores == allowed
    assert one.total_ticks < every.total_ticks or every.cores == 1


@pytest.mark.parametrize(
    ("busy", "omp", "expected"),
    [(0.1, None, (2, False)), (1.0, None, (1, True)), (1.9, None, (1, True)), (1.0, "2", (2, False))],
)
def test_a_run_leaves_the_cores_other_programs_use_to_them(
    busy: float, omp: str | None, expected: tuple[int, bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --threads, a run trains with the cores nobody else is using (one at least); a user's
    OMP_NUM_THREADS is kept; the run says when it chose fewer threads than torch would."""
    import digitnet.runtime

    monkeypatch.setattr(digitnet.runtime, "busy_cores", lambda seconds=None: busy)
    monkeypatch.setattr(digitnet.runtime.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    if omp is not None:
        monkeypatch.setenv("OMP_NUM_THREADS", omp)
    with digitnet.runtime.using_threads(2):
        threads, note = digitnet.runtime.choose_threads()
    assert (threads, note is not None) == expected
    if note:
        assert "--threads" in note and f"with {threads} thread" in note


def test_cpu_name_reads_the_model_name_and_falls_back_to_platform(tmp_path: Path) -> None:
    from digitnet.runtime import cpu_name

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R)  Xeon(R) 6338\n")
    assert cpu_name(cpuinfo) == "Intel(R) Xeon(R) 6338"
    cpuinfo.write_text("processor\t: 0\nmodel name\t:\n")  # no name (some ARM kernels): the machine type
    assert cpu_name(cpuinfo) in {platform.processor(), platform.machine()} and cpu_name(cpuinfo)
    assert cpu_name(tmp_path / "missing") == (platform.processor() or platform.machine())


def test_a_loss_figure_whose_first_steps_are_above_its_frame_says_so() -> None:
    """The frame leaves out a long run's few steepest steps so that its tail stays readable; the curve
    must not then read as if it started at the top of the frame."""
    from digitnet.history import History
    from digitnet.plotting import moving_average, plot_loss

    generator = np.random.default_rng(0)
    steep = [2.3 * 0.9**i for i in range(40)]  # 2.3 down to 0.04: the first 40 of 2,000 steps
    losses = steep + (0.1 + 0.05 * generator.random(1960)).tolist()
    axes = plot_loss(History(iteration_loss=losses)).axes[0]
    top = axes.get_ylim()[1]
    assert top < 1.0
    (note,) = [t.get_text() for t in axes.texts]
    smoothed = np.asarray(moving_average(losses, 10))
    assert (
        note == f"moving average above the frame for {int((smoothed > top).sum())} steps (it starts at 2.30)"
    )
    flat = plot_loss(History(iteration_loss=(0.1 + 0.05 * generator.random(2000)).tolist())).axes[0]
    assert not flat.texts


def test_a_run_trains_with_denormals_flushed_and_gives_the_setting_back(tmp_path: Path) -> None:
    """Denormal numbers (below 1.2e-38) are flushed to zero while a run trains, the slow path they take
    being pure cost (the Speed page); the run records it, and the caller's setting comes back after, so
    a notebook's own arithmetic is not changed behind its back."""
    from digitnet.runtime import flushes_denormals, flushing_denormals

    with flushing_denormals() as supported:
        pass
    if not supported:
        pytest.skip("this CPU cannot flush denormals")
    during: list[bool] = []
    config = make_run_config({"dataset": "sample", "epochs": 1, "batch-size": 256, "threads": 1})
    assert not flushes_denormals()
    run_experiment(config, tmp_path / "r", on_epoch=lambda record: during.append(flushes_denormals()))
    assert during == [True] and not flushes_denormals()
    environment = json.loads((tmp_path / "r" / "config.json").read_text())["environment"]
    assert environment["flush_denormals"] is True
    torch.set_flush_denormal(True)  # a caller who flushes them already keeps flushing them
    try:
        run_experiment(config, tmp_path / "r2")
        assert flushes_denormals()
    finally:
        torch.set_flush_denormal(False)
    assert np.float32(1e-39) != 0  # the denormal the check relies on exists again


def test_a_loss_band_on_a_log_axis_stops_at_the_lowest_seed_not_below_the_axes() -> None:
    """lr 1's seeds lost 3000, 10 and 1 in epoch 1: mean - std is below zero, and on the log axis the
    band ran down off the figure, as if some seed had reached a loss of zero."""
    from matplotlib.collections import PolyCollection

    from digitnet.plotting import CURVE_LABELS, SweepSeries, plot_sweep

    def series(value: str, runs: list[list[float]]) -> SweepSeries:
        return SweepSeries(
            label=value,
            value=value,
            group="",
            curves=dict.fromkeys(CURVE_LABELS, runs),
            final={"val_accuracy": (0.5, 0.1), "test_accuracy": (0.5, 0.1)},
            seconds=(1.0, 0.1),
            diverged=0,
            seeds=3,
        )

    overshooting = series("1", [[3000.0, 2.3, 2.3], [10.0, 2.3, 2.3], [1.0, 2.31, 2.29]])
    steady = series("0.01", [[0.5, 0.2, 0.1], [0.6, 0.25, 0.12], [0.55, 0.22, 0.11]])
    axes = plot_sweep("lr", [overshooting, steady])["train_loss"].axes[0]
    assert axes.get_yscale() == "log"
    bands = [c for c in axes.collections if isinstance(c, PolyCollection)]
    assert len(bands) == 2
    lowest = [min(path.vertices[:, 1].min() for path in band.get_paths()) for band in bands]
    assert lowest[0] == pytest.approx(1.0)  # the lowest seed of the first epoch, not 0 or below
    import statistics

    last = [0.1, 0.12, 0.11]  # a band above zero is mean - std as it was
    assert lowest[1] == pytest.approx(statistics.mean(last) - statistics.stdev(last))
