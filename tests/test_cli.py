"""The CLI maps options onto configs, prints results, and turns bad input into one line and exit 2."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import planned_sweep
from typer.testing import CliRunner

import digitnet.run
import digitnet.settings
from digitnet import __version__
from digitnet.cli import app
from digitnet.data import DataConfig
from digitnet.presets import PRESETS
from digitnet.settings import RunConfig

runner = CliRunner()


def test_version_and_help() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output
    result = runner.invoke(app, ["train", "--help"])
    assert result.exit_code == 0
    for flag in (
        "--model",
        "--hidden",
        "--dropout",
        "--optimizer",
        "--lr",
        "--momentum",
        "--weight-decay",
        "--schedule",
        "--batch-size",
        "--epochs",
        "--seed",
        "--dataset",
        "--data-dir",
        "--csv",
        "--normalize",
        "--augment",
        "--device",
        "--out",
        "--preset",
    ):
        assert flag in result.output


def test_train_options_become_the_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    received: list[RunConfig] = []

    def fake_run(config: RunConfig, run_dir: Path, **_: Any) -> Any:
        received.append(config)
        raise SystemExit(0)

    monkeypatch.setattr(digitnet.run, "run_experiment", fake_run)
    result = runner.invoke(
        app,
        [
            "train",
            "--optimizer",
            "adam",
            "--dropout",
            "0.2",
            "--model",
            "bn",
            "--hidden",
            "64,32,16",
            "--lr",
            "0.003",
            "--batch-size",
            "100",
            "--epochs",
            "4",
            "--seed",
            "7",
            "--normalize",
            "unit",
            "--augment",
            "--schedule",
            "onecycle",
            "--weight-decay",
            "0.0001",
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code == 0, result.output
    (config,) = received
    assert (config.model.name, config.model.hidden_sizes, config.model.dropout) == ("bn", (64, 32, 16), 0.2)
    assert (config.optim.name, config.optim.lr, config.optim.schedule, config.optim.weight_decay) == (
        "adam",
        0.003,
        "onecycle",
        0.0001,
    )
    assert (config.train.batch_size, config.train.epochs, config.train.seed, config.train.device) == (
        100,
        4,
        7,
        "cpu",
    )
    assert (config.data.normalize, config.data.augment) == ("unit", True)


def test_defaults_are_the_baseline(monkeypatch: pytest.MonkeyPatch) -> None:
    received: list[RunConfig] = []
    monkeypatch.setattr(
        digitnet.run,
        "run_experiment",
        lambda config, run_dir, **_: (received.append(config), exec("raise SystemExit(0)")),
    )
    runner.invoke(app, ["train"])
    # auto, pinned to what this machine has, and the 1/7 test share the sample holds out, recorded
    assert received == [RunConfig(data=DataConfig(dataset="sample", test_fraction=1 / 7))]
    assert (received[0].optim.name, received[0].optim.lr, received[0].train.epochs) == ("sgd", 0.01, 10)


def test_real_tiny_training_run_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = runner.invoke(
        app,
        [
            "train",
            "--epochs",
            "1",
            "--model",
            "cnn",
            "--optimizer",
            "adam",
            "--lr",
            "0.002",
            "--schedule",
            "onecycle",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "5,000-digit" in result.output  # the sample notice (stderr is mixed into output here)
    title = digitnet.settings.run_config_from_dict(
        json.loads((out / "config.json").read_text())["config"]
    ).title()
    assert title in [line.strip() for line in result.output.splitlines()]  # whole, on a line of its own
    assert f"run written to {out}" in result.output.replace("\n", "")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["test_accuracy"] > 0.5
    assert f"{100 * summary['test_accuracy']:.2f}%" in result.output


def test_divergence_exits_non_zero_with_a_clear_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["train", "--lr", "10000", "--epochs", "2", "--out", str(tmp_path / "d")])
    assert result.exit_code == 1
    assert "diverged at epoch 1, step" in result.output
    assert json.loads((tmp_path / "d" / "summary.json").read_text())["status"] == "diverged"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--lr", "0"], "--lr"),
        (["--lr", "-0.1"], "--lr"),
        (["--lr", "inf"], "--lr"),
        (["--lr", "1e400"], "--lr"),
        (["--weight-decay", "inf"], "--weight-decay"),
        (["--dropout", "1"], "--dropout"),
        (["--dropout", "-0.5"], "--dropout"),
        (["--batch-size", "0"], "--batch-size"),
        (["--epochs", "0"], "--epochs"),
        (["--epochs", "100000000000000000000"], "--epochs"),  # a typo that would train for ever
        (["--eval-batch-size", "0"], "--eval-batch-size"),
        (["--hidden", "100,,50"], "--hidden"),  # a width left out, not silently "100,50"
        (["--hidden", "100,0"], "--hidden"),
        (["--hidden", "wide"], "--hidden"),
        (["--model", "resnet"], "--model"),
        (["--optimizer", "lbfgs"], "--optimizer"),
        (["--schedule", "cosine"], "--schedule"),
        (["--normalize", "z"], "--normalize"),
        (["--device", "tpu"], "--device"),
        (["--dataset", "mnist", "--data-dir", "/nonexistent/mnist"], "/nonexistent/mnist"),
        (["--csv", "/nonexistent/train.csv"], "/nonexistent/train.csv"),
        (["--preset", "fastest"], "--preset"),
    ],
)
def test_bad_train_options_give_one_line_and_exit_2(args: list[str], needle: str, tmp_path: Path) -> None:
    out = tmp_path / "never"
    result = runner.invoke(app, ["train", *args, "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    error_lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and needle in error_lines[0]
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["train", "--epochs", "1.5"], "error: --epochs: expected a whole number"),  # Typer's, said as ours
        (["train", "--epoch", "3"], "--epochs"),  # a misspelt option: click's suggestion survives
        (["evaluate"], "RUN_DIR"),
        (["nosuch"], "'nosuch'"),
        (["data", "nosuch"], "digitnet data --help"),
        (["train", "--debug"], "goes before the command: digitnet --debug train …"),
        (["evaluate"], "Missing argument 'RUN_DIR' (see"),
        (["compare", "lr", "-1"], "a negative number was read as an option; no value here can be < 0"),
        (["compare", "lr", "-0.5"], "a negative number was read as an option"),  # click names it "-0"
        (["compare", "epochs", "1,2.5"], "epochs=2.5: expected a whole number"),  # not int()'s words
        (["compare", "lr", "abc"], "lr=abc: expected a number"),
    ],
)
def test_usage_errors_are_one_line_too(args: list[str], needle: str) -> None:
    """click's own usage errors (three lines: usage, hint, ``Error:``) read like digitnet's: one line."""
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], result.output


def test_debug_shows_the_traceback() -> None:
    result = runner.invoke(app, ["--debug", "train", "--lr", "0"])
    assert result.exit_code != 0 and result.exception is not None
    assert "--lr" in str(result.exception)


def test_data_show_and_prepare(tmp_path: Path) -> None:
    result = runner.invoke(app, ["data", "show", "--out", str(tmp_path / "figs")])
    assert result.exit_code == 0, result.output
    assert {"samples.png", "classes.png", "class_counts.png", "augmentation.png"} <= {
        p.name for p in (tmp_path / "figs").iterdir()
    }
    result = runner.invoke(app, ["data", "prepare", "--out", str(tmp_path / "split")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "split" / "split.npz").is_file()
    assert "total" in result.output


@pytest.mark.parametrize("command", ["train", "compare"])
def test_help_shows_every_setting_with_its_default_and_choices(command: str) -> None:
    """The options are derived from digitnet.settings.SETTINGS: each shows its choices and default."""
    from digitnet.presets import PRESETS
    from digitnet.settings import SETTINGS

    result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "400", "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    # Without any whitespace: help wraps where it likes, at spaces and after hyphens ("no-eval-⏎train").
    text = "".join(result.output.split())

    def shown(expected: str) -> bool:
        return "".join(expected.split()) in text

    for name, setting in SETTINGS.items():
        assert shown(f"--{name}")
        if setting.choices:
            assert shown("[" + " | ".join(setting.choices) + "]"), name
        if setting.default_text:
            assert shown(f"[default: ({setting.default_text})]"), name
        elif isinstance(setting.default, bool):
            assert shown(f"[default: {'' if setting.default else 'no-'}{name}]"), name
        elif setting.default is not None:  # --csv has none
            assert shown(f"[default: {setting.default}]"), name
    assert shown("[" + " | ".join(PRESETS) + "]")


def test_an_option_given_at_its_default_value_still_beats_the_preset(monkeypatch: pytest.MonkeyPatch) -> None:
    received: list[RunConfig] = []

    def fake_run(config: RunConfig, run_dir: Path, **_: Any) -> Any:
        received.append(config)
        raise SystemExit(0)

    monkeypatch.setattr(digitnet.run, "run_experiment", fake_run)
    result = runner.invoke(app, ["train", "--preset", "fast", "--epochs", "10", "--model", "mlp"])
    assert result.exit_code == 0, result.output
    assert received[0].train.epochs == 10 and received[0].model.name == "mlp"  # fast says 4 and cnn
    assert received[0].model.first_layer == "learned"  # fast's fixed first layer is its LeNet's
    assert received[0].optim.name == "adam"  # what was not given still comes from the preset


@pytest.mark.parametrize("preset", list(PRESETS))
def test_presets_build_and_explicit_options_win(preset: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from digitnet.settings import make_run_config

    received: list[RunConfig] = []

    def fake_run(config: RunConfig, run_dir: Path, **_: Any) -> Any:
        received.append(config)
        raise SystemExit(0)

    monkeypatch.setattr(digitnet.run, "run_experiment", fake_run)
    result = runner.invoke(app, ["train", "--preset", preset, "--epochs", "1", "--dataset", "sample"])
    assert result.exit_code == 0, result.output
    (config,) = received
    expected = make_run_config(PRESETS[preset] | {"epochs": 1, "dataset": "sample"})
    assert (config.model, config.optim, config.train) == (expected.model, expected.optim, expected.train)
    assert config.train.epochs == 1  # the explicit option, not the preset's


@pytest.mark.parametrize(("given", "expected"), [([], 0.001), (["--lr", "0.01"], 0.01)])
def test_train_uses_the_optimizers_conventional_rate_unless_lr_is_given(
    given: list[str], expected: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The card's own example, `digitnet train --optimizer adam --dropout 0.2`, must not run Adam at 0.01."""
    received: list[RunConfig] = []

    def fake_run(config: RunConfig, run_dir: Path, on_start: Any = None, **_: Any) -> Any:
        received.append(config)
        raise SystemExit(0)

    monkeypatch.setattr(digitnet.run, "run_experiment", fake_run)
    result = runner.invoke(app, ["train", "--optimizer", "adam", "--dropout", "0.2", *given])
    assert result.exit_code == 0, result.output
    assert received[0].optim.lr == expected


def test_a_batch_larger_than_the_training_digits_is_said(tmp_path: Path) -> None:
    """--batch-size 100000 on the sample's 3,428 digits is one step an epoch: legal, and worth a word."""
    args = ["train", "--dataset", "sample", "--batch-size", "100000", "--epochs", "1", "--out", "run"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert "--batch-size 100000 is more than the 3,428 training digits: each epoch is one step" in said
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert len(history["iteration_loss"]) == 1


def test_train_says_which_rate_it_chose(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["train", "--optimizer", "adam", "--epochs", "1", "--batch-size", "512", "--out", "run"]
    )
    assert result.exit_code == 0, result.output
    assert "conventional rate for adam" in result.output
    assert json.loads((tmp_path / "run" / "config.json").read_text())["config"]["optim"]["lr"] == 0.001


def test_compare_gives_the_base_optimizer_its_conventional_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    result, spec = planned_sweep(
        monkeypatch, "dropout", "0", "0.2", "--optimizer", "adam", "--dataset", "sample"
    )
    assert dict(spec.base)["lr"] == 0.001 and "conventional rate for adam" in result.output


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["lr", "0.01,0.1"], ("0.01", "0.1")),
        (["lr", "0.01", "0.1,0.3"], ("0.01", "0.1", "0.3")),
        (["hidden", "100,50", "30,5"], ("100,50", "30,5")),
    ],
)
def test_compare_values_may_be_separated_by_commas(
    args: list[str], expected: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, spec = planned_sweep(monkeypatch, *args, "--dataset", "sample")
    assert spec.values == expected


def test_a_different_sweep_into_the_same_folder_is_said(tmp_path: Path) -> None:
    args = ["--seeds", "1", "--epochs", "1", "--batch-size", "512", "--dataset", "sample", "--out", "s"]
    first = runner.invoke(app, ["compare", "lr", "0.1", *args])
    assert first.exit_code == 0, first.output
    assert "different sweep" not in first.output
    assert "CPU time (s)" in first.output and "is the clock's" not in first.output  # one thread a run
    again = runner.invoke(app, ["compare", "lr", "0.1", *args])
    assert "different sweep" not in again.output and "0 run(s) trained, 1 reused" in again.output
    other = runner.invoke(app, ["compare", "lr", "0.1", "0.01", *args])
    assert other.exit_code == 0, other.output
    said = " ".join(other.output.split())
    threaded = runner.invoke(app, ["compare", "lr", "0.1", *args[:-1], "t", "--threads", "2"])
    assert threaded.exit_code == 0, threaded.output
    assert "CPU time (s)" not in threaded.output  # two threads: the clock's time, and why
    assert "Time is the clock's: a run on more than one thread" in " ".join(threaded.output.split())
    assert "holds the tables and figures of a different sweep: this one's replace them" in said
    assert said.index("different sweep") < said.index("data: ")  # before it trains, not after
    assert "1 run(s) trained, 1 reused" in other.output


@pytest.mark.parametrize(
    ("finished", "said"), [(1, "1 finished epoch: it was saved"), (2, "2 finished epochs: they")]
)
def test_an_interrupted_train_says_what_was_saved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, finished: int, said: str
) -> None:
    real = digitnet.run.run_experiment

    def stopping(*args: Any, on_epoch: Any = None, **kwargs: Any) -> Any:
        def on_epoch_then_stop(record: Any) -> None:
            on_epoch(record)
            if record.epoch == finished:
                raise KeyboardInterrupt

        return real(*args, on_epoch=on_epoch_then_stop, **kwargs)

    monkeypatch.setattr(digitnet.run, "run_experiment", stopping)
    args = [
        "train",
        "--dataset",
        "sample",
        "--epochs",
        "4",
        "--batch-size",
        "512",
        "--out",
        str(tmp_path / "r"),
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 130, result.output
    assert f"interrupted after {said}" in " ".join(result.output.split())
    assert "the same command resumes from there" in " ".join(result.output.split())
    # the test set is measured once training ends: the footer must not name it as if it had been
    assert "not measured: training was stopped" in " ".join(result.output.split())


def test_evaluating_an_interrupted_run_says_so(tmp_path: Path) -> None:
    from digitnet.run import run_experiment
    from digitnet.settings import make_run_config

    def stop(record: Any) -> None:
        raise KeyboardInterrupt

    config = make_run_config({"dataset": "sample", "epochs": 5, "batch-size": 512})
    run_experiment(config, tmp_path / "run", on_epoch=stop)
    result = runner.invoke(app, ["evaluate", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert "interrupted after 1 of 5 epochs" in " ".join(result.output.split())


def test_help_lists_the_sweeps_own_names_without_importing_torch() -> None:
    import subprocess
    import sys

    from digitnet.cli.runs import BACKEND_NAMES, FACTOR_NAMES
    from digitnet.sweep import BACKENDS, FACTORS

    assert tuple(FACTORS) == FACTOR_NAMES and BACKEND_NAMES == BACKENDS
    code = "import sys; from digitnet.cli import app; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"  # --help and typos answer at once
    help_text = " ".join(runner.invoke(app, ["compare", "--help"]).output.split())
    assert "one factor at a time: lr, batch-size, optimizer," in help_text and "[local | ray]" in help_text


# A module-level object whose finaliser prints: Python's own exit tears it down and prints, main's quick
# exit does not. An exit handler that prints: main must still run it.
_EXIT_PROBE = """
import atexit, sys, threading, time
from digitnet.cli import main
class Probe:
    def __del__(self):
        print("torn down", flush=True)
probe = Probe()
atexit.register(lambda: print("exit handler ran"))
if "--with-thread" in sys.argv:
    sys.argv.remove("--with-thread")
    threading.Thread(target=lambda: (time.sleep(0.5), print("thread finished", flush=True))).start()
main()
"""


@pytest.mark.parametrize(
    ("args", "code", "shown", "hidden"),
    [
        (["--version"], 0, ["digitnet", "exit handler ran"], ["torn down"]),
        (["train", "--epochs", "0"], 2, ["--epochs", "exit handler ran"], ["torn down", "Traceback"]),
        (["--with-thread", "--version"], 0, ["thread finished", "exit handler ran", "torn down"], []),
    ],
)
def test_console_script_exits_without_tearing_python_down(
    args: list[str], code: int, shown: list[str], hidden: list[str]
) -> None:
    """``main`` (the ``digitnet`` command) keeps the exit code, the output and the exit handlers, skips
    the interpreter's clean-up, and waits the usual way for a thread that is still running."""
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-c", _EXIT_PROBE, *args], capture_output=True, text=True, check=False, timeout=60
    )
    output = result.stdout + result.stderr
    assert result.returncode == code, output
    assert all(text in output for text in shown), output
    assert not any(text in output for text in hidden), output


@pytest.mark.parametrize(
    ("command", "usage", "argument"),
    [
        (["predict"], "Usage: digitnet predict [OPTIONS] RUN_DIR IMAGES...", "IMAGES <path>..."),
        (["compare"], "Usage: digitnet compare [OPTIONS] FACTOR [VALUES]...", "VALUES <str>..."),
        (["evaluate"], "Usage: digitnet evaluate [OPTIONS] RUN_DIR", "RUN_DIR <path>"),
    ],
)
def test_positional_arguments_are_shown_as_command_line_tools_show_them(
    command: list[str], usage: str, argument: str
) -> None:
    # not Typer's {RUN_DIR} (braces read as a set of choices) nor Python's <list[Path]>
    result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert usage in result.output and argument in result.output
    assert "{" not in result.output.splitlines()[0] and "list[" not in result.output


def test_evaluate_finds_moved_mnist_through_the_environment_and_says_how_when_it_cannot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conftest import write_mnist_dir

    monkeypatch.delenv("DIGITNET_DATA", raising=False)
    first = write_mnist_dir(tmp_path / "mnist")
    run = tmp_path / "run"
    trained = runner.invoke(
        app, ["train", "--data-dir", str(first), "--epochs", "1", "--threads", "1", "--out", str(run)]
    )
    assert trained.exit_code == 0, trained.output
    moved = first.rename(tmp_path / "moved")
    # evaluate takes no --data-dir: the error must not advise one, and must name the way that works
    lost = runner.invoke(app, ["evaluate", str(run), "--out", str(tmp_path / "e1")])
    assert lost.exit_code == 2 and "Traceback" not in lost.output
    said = " ".join(lost.output.split())
    assert f"{first.resolve()}: this run trained on the MNIST files in this directory" in said
    assert "set $DIGITNET_DATA" in said and "--data-dir" not in said
    assert not (tmp_path / "e1").exists()
    monkeypatch.setenv("DIGITNET_DATA", str(tmp_path / "elsewhere"))  # set, but wrong: said, not repeated
    wrong = runner.invoke(app, ["evaluate", str(run), "--out", str(tmp_path / "e1")])
    said = " ".join(wrong.output.split())
    assert wrong.exit_code == 2 and f"$DIGITNET_DATA ({tmp_path / 'elsewhere'}) holds no MNIST files" in said
    monkeypatch.setenv("DIGITNET_DATA", str(moved))
    found = runner.invoke(app, ["evaluate", str(run), "--out", str(tmp_path / "e2")])
    assert found.exit_code == 0, found.output
    measured = json.loads((tmp_path / "e2" / "metrics.json").read_text())["accuracy"]
    assert measured == json.loads((run / "summary.json").read_text())["test_accuracy"]  # the same test set


def test_a_run_that_waited_for_its_core_says_its_cpu_time_too() -> None:
    """Beside a busy program, a one-thread run's clock time counts the moments it waited: the line under
    the table says how much of it was on the CPU, and only then (a run on more threads has no CPU time)."""
    from dataclasses import replace

    from digitnet.cli.runs import training_time
    from digitnet.run import RunSummary

    blank = RunSummary.failed("k", "stand-in")
    assert training_time(replace(blank, train_seconds=6.0, train_cpu_seconds=5.9)) == "6.0 s training"
    assert training_time(replace(blank, train_seconds=6.0, train_cpu_seconds=None)) == "6.0 s training"
    waited = training_time(replace(blank, train_seconds=9.0, train_cpu_seconds=6.2))
    assert waited == "9.0 s training, 6.2 s of it on the CPU (other programs held the core the rest)"
