"""``digitnet writeup``: a lab report from a real tiny sweep and a real run, checked against the runs'
own files, numpy and scipy, and opened in a headless browser."""

from __future__ import annotations

import base64
import csv
import json
import math
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import stats
from typer.testing import CliRunner

from digitnet.cli import app
from digitnet.sweep.aggregate import mean_std
from digitnet.writeup import INTERPRETATION, WriteupConfig, mean_interval, write_report

LRS = ("0.01", "0.003", "0.001")
IMAGE_LINK = re.compile(r"!\[[^\]]*\]\(([^)]+)\)")


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A sweep (``compare lr 0.01 0.003 0.001``, 2 seeds) and a run (``train``), 1 epoch on the sample."""
    root = tmp_path_factory.mktemp("writeup")
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("DIGITNET_DATA", raising=False)
        patch.setenv("XDG_CACHE_HOME", str(root / "cache"))
        patch.setenv("MPLBACKEND", "Agg")
        patch.chdir(root)
        common = ["--dataset", "sample", "--epochs", "1"]
        runner = CliRunner()
        sweep = runner.invoke(
            app, ["compare", "lr", *LRS, "--seeds", "2", "--jobs", "1", *common, "--out", "sweep"]
        )
        assert sweep.exit_code == 0, sweep.output
        run = runner.invoke(app, ["train", *common, "--out", "run"])
        assert run.exit_code == 0, run.output
        yield root


@pytest.fixture(scope="module")
def report(made: Path) -> Path:
    """The report of both, PDF included when Chromium is installed."""
    out = made / "report"
    result = CliRunner().invoke(app, ["writeup", str(made / "sweep"), str(made / "run"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_report_quotes_the_sweeps_numbers_and_verdicts(made: Path, report: Path) -> None:
    text = (report / "report.md").read_text()
    runs = _csv(made / "sweep" / "runs.csv")
    accuracy = {value: [float(r["val_accuracy"]) for r in runs if r["value"] == value] for value in LRS}
    for value, values in accuracy.items():
        # mean ± std over seeds, by numpy, as the row of the report's table shows it
        row = next(line for line in text.splitlines() if line.startswith(f"| {value} |"))
        assert f"{100 * np.mean(values):.2f} ± {100 * np.std(values, ddof=1):.2f}" in row
        # the 95% interval of the mean, by scipy (cut at 0 and 100, where no accuracy lies)
        low, high = stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=stats.sem(values))
        assert f"{max(0, 100 * low):.2f} to {min(100, 100 * high):.2f}" in row
    # The verdict: Welch's interval of the difference, by scipy's own t-test.
    best, other, _ = sorted(accuracy, key=lambda v: -np.mean(accuracy[v]))
    welch = stats.ttest_ind(accuracy[best], accuracy[other], equal_var=False).confidence_interval(0.95)
    assert f"| {100 * welch.low:+.2f} to {100 * welch.high:+.2f} |" in text
    # ... and the summary sentence the sweep wrote, word for word.
    summary = (made / "sweep" / "results.md").read_text().strip().split("\n\n")[-1]
    assert summary in text


def test_a_best_value_at_the_edge_of_the_grid_is_a_warning(made: Path, report: Path) -> None:
    runs = _csv(made / "sweep" / "runs.csv")
    means = {v: np.mean([float(r["val_accuracy"]) for r in runs if r["value"] == v]) for v in LRS}
    best = max(means, key=lambda v: means[v])
    warnings = (report / "report.md").read_text().split("### Warnings")[1].split("##")[0]
    at_edge = best in (max(LRS, key=float), min(LRS, key=float))
    assert (f"{best} is at the edge of the grid" in warnings) == at_edge, warnings


def test_report_states_the_setup_from_the_runs(made: Path, report: Path) -> None:
    text = (report / "report.md").read_text()
    sizes = json.loads((made / "run" / "summary.json").read_text())["sizes"]
    assert f"{sizes['train']:,} train / {sizes['val']:,} validation / {sizes['test']:,} test digits" in text
    parameters = 784 * 100 + 100 + 100 * 50 + 50 + 50 * 10 + 10  # the default MLP 784-100-50-10
    assert f"| parameters | {parameters:,} |" in text
    assert (
        "| learning rate | **varied:** 0.01 / 0.003 / 0.001 |" in text
    )  # what the sweep varied, and nothing else
    assert text.count("**varied:**") == 1
    assert "| seeds | 2 (0, 1) |" in text and "| seeds | 1 (0) |" in text
    assert "| precision | float32 |" in text  # bfloat16 runs say so: it changes the arithmetic
    assert f"torch {torch.__version__}" in text
    from digitnet.runtime import cpu_name  # the processor and its kernels: a rerun elsewhere differs slightly

    assert f"| device | cpu ({cpu_name()}, {torch.backends.cpu.get_cpu_capability()}) |" in text
    assert "not the full 70,000-digit MNIST" in text  # the sample is named as the sample


def test_every_figure_is_there_and_embedded(report: Path) -> None:
    text = (report / "report.md").read_text()
    links = IMAGE_LINK.findall(text)
    assert len(links) == 4 + 2  # the sweep's final/val_accuracy/val_loss/train_loss, the run's two
    for link in links:
        with Image.open(report / link) as image:
            image.verify()
    html = (report / "report.html").read_text()
    sources = re.findall(r'<img [^>]*src="([^"]+)"', html)
    assert len(sources) == len(links) and all(s.startswith("data:image/png;base64,") for s in sources)
    embedded = [base64.b64decode(s.split(",", 1)[1]) for s in sources]
    assert embedded == [(report / link).read_bytes() for link in links]  # self-contained: one file
    cells = re.findall(r"<td>([^<]*±[^<]*)</td>", html)
    assert cells and all(" ±" not in c and "± " not in c for c in cells)  # "88.54 ±" never ends a line


def test_a_box_for_the_students_own_words_beside_each_figure_and_table(report: Path) -> None:
    text = (report / "report.md").read_text()
    boxes = [line for line in text.splitlines() if line.startswith(f"> {INTERPRETATION}")]
    figures = len(IMAGE_LINK.findall(text))
    # question, discussion, conclusion; per sweep: results and verdicts; per run: results
    assert len(boxes) == figures + 3 + 2 + 1


def test_pdf_is_printed_when_chromium_is_there(report: Path) -> None:
    if shutil.which("chromium") is None and shutil.which("chromium-browser") is None:
        pytest.skip("no chromium on this machine")
    data = (report / "report.pdf").read_bytes()
    assert data.startswith(b"%PDF-")
    pages = len(re.findall(rb"/Type\s*/Page[^s]", data))
    assert pages > 1, pages


def test_without_chromium_one_line_says_how_to_get_the_pdf(
    made: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    result = CliRunner().invoke(app, ["writeup", str(made / "run"), "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    notes = [line for line in result.output.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "print it to PDF" in notes[0] and "apt install chromium" in notes[0]
    assert not (tmp_path / "r" / "report.pdf").exists() and (tmp_path / "r" / "report.html").is_file()


def test_mean_interval_matches_scipy() -> None:
    values = [0.91, 0.93, 0.96, 0.9]
    low, high = mean_interval(mean_std(values))
    expected = stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=stats.sem(values))
    assert (low, high) == pytest.approx(expected)
    assert all(math.isnan(v) for v in mean_interval(mean_std([0.9])))


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda root: [root / "missing"], "no such directory"),
        (lambda root: [root / "sweep" / "results.csv"], "a file, not a directory"),
        (lambda root: [root / "cache"], "not written by digitnet"),
        (lambda root: [root / "run", root / "run"], "given twice"),
    ],
    ids=["missing", "file", "neither", "twice"],
)
def test_bad_inputs_fail_in_one_line_and_write_nothing(
    made: Path, tmp_path: Path, make: object, expected: str
) -> None:
    sources = make(made)  # type: ignore[operator]
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["writeup", *map(str, sources), "--out", str(out)])
    assert result.exit_code == 2 and f"{expected}" in result.output, result.output
    assert result.output.startswith("error:") and "Traceback" not in result.output
    assert not out.exists()


def test_out_inside_an_input_or_a_file_or_someones_folder_is_refused(made: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    inside = runner.invoke(app, ["writeup", str(made / "sweep"), "--out", str(made / "sweep" / "report")])
    assert inside.exit_code == 2 and "inside the input" in inside.output
    assert not (made / "sweep" / "report").exists()
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")
    refused = runner.invoke(app, ["writeup", str(made / "run"), "--out", str(a_file)])
    assert refused.exit_code == 2 and "a file is there" in refused.output and a_file.read_text() == "mine"
    folder = tmp_path / "thesis"
    folder.mkdir()
    (folder / "chapter1.md").write_text("mine")
    refused = runner.invoke(app, ["writeup", str(made / "run"), "--out", str(folder)])
    assert refused.exit_code == 2 and "did not write" in refused.output
    assert [p.name for p in folder.iterdir()] == ["chapter1.md"]


def test_rewriting_keeps_the_students_edits_safe(made: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    config = WriteupConfig(pdf=False)
    write_report([made / "run"], out, config)
    write_report([made / "run"], out, config)  # unchanged: may be written again
    edited = (
        (out / "report.md").read_text().replace("*what did you want", "I wanted to see *what did you want")
    )
    (out / "report.md").write_text(edited)
    result = CliRunner().invoke(app, ["writeup", str(made / "run"), "--out", str(out), "--no-pdf"])
    assert result.exit_code == 2 and "edited" in result.output and "--render" in result.output
    assert (out / "report.md").read_text() == edited


def test_render_turns_the_filled_in_report_into_html(made: Path, tmp_path: Path) -> None:
    """What the student wrote in report.md reaches report.html (and the PDF) they hand in."""
    out = tmp_path / "report"
    write_report([made / "run"], out, WriteupConfig(pdf=False))
    answer = "My answer: the loss falls every epoch."
    text = (out / "report.md").read_text().replace("*what did you want", f"{answer} *what did you want", 1)
    (out / "report.md").write_text(text)
    result = CliRunner().invoke(app, ["writeup", "--render", "--out", str(out), "--no-pdf"])
    assert result.exit_code == 0, result.output
    assert answer in (out / "report.html").read_text()
    assert (out / "report.md").read_text() == text  # read, never rewritten
    again = CliRunner().invoke(app, ["writeup", str(made / "run"), "--out", str(out), "--no-pdf"])
    assert again.exit_code == 2  # the edited report is still protected
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "report.md").write_text("# my own notes\n")
    refused = CliRunner().invoke(app, ["writeup", "--render", "--out", str(mine)])
    assert refused.exit_code == 2 and "no report that 'digitnet writeup' wrote" in refused.output
    assert not (mine / "report.html").exists()


@pytest.mark.slow
def test_report_html_loads_every_image_in_a_browser(report: Path) -> None:
    from test_docs import _browser  # the same headless Debian chromium as the docs' browser test

    driver = _browser()
    try:
        driver.get((report / "report.html").as_uri())
        images = driver.execute_script(
            "return Array.from(document.images).map(i => [i.complete, i.naturalWidth]);"
        )
        assert len(images) == 6 and all(done and width > 0 for done, width in images), images
        # Nothing to scroll sideways: the tables and the page fit the window (a wide figure may leave the
        # text column, below, but not the window).
        cut = driver.execute_script(
            "return Array.from(document.querySelectorAll('table, pre, html'))"
            ".filter(e => e.scrollWidth > e.clientWidth + 1).map(e => e.tagName);"
        )
        assert cut == []
        # the two-panel final.png leaves the text column, centred and inside the window, so its labels keep
        # their size; the one-panel figures stay at their own width
        boxes = driver.execute_script(
            "const c = document.body.getBoundingClientRect();"
            "return [c.left, c.right, window.innerWidth, ...Array.from(document.images).map(i => {"
            "const r = i.getBoundingClientRect(); return [r.left, r.right, i.naturalWidth];})];"
        )
        column_left, column_right, window_width, final, *others = boxes
        assert (
            final[0] < column_left and final[1] > column_right and final[0] >= 0 and final[1] <= window_width
        )
        middle = (column_left + column_right) / 2
        assert abs((final[0] + final[1]) / 2 - middle) < 2
        assert all(abs((right - left) - natural) < 2 for left, right, natural in others)
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert errors == []
    finally:
        driver.quit()


def test_generated_sentences_are_only_the_sweeps_own(made: Path, report: Path) -> None:
    """No prose of the report's own about effects: each verdict bullet is the sweep's summary or one of
    its verdicts, as ``digitnet compare`` worded them."""
    from digitnet.sweep.aggregate import Verdict

    verdicts = {
        Verdict(
            r["ahead"],
            r["behind"],
            float(r["points"]),
            float(r["low"] or "nan"),
            float(r["high"] or "nan"),
            (int(r["seeds_ahead"]), int(r["seeds_behind"])),
        ).sentence()
        + "."
        for r in _csv(made / "sweep" / "verdicts.csv")
    }
    summary = (made / "sweep" / "results.md").read_text().strip().split("\n\n")[-1]
    section = (report / "report.md").read_text().split("### Generated verdicts")[1].split("###")[0]
    bullets = [line[2:] for line in section.splitlines() if line.startswith("- ")]
    assert bullets and bullets[0] == summary
    assert set(bullets[1:]) <= verdicts


def test_a_sweep_whose_runs_live_elsewhere_still_reports(made: Path, tmp_path: Path) -> None:
    moved = tmp_path / "sweep"
    shutil.copytree(made / "sweep", moved, ignore=shutil.ignore_patterns("runs"))
    result = write_report([moved], tmp_path / "out", WriteupConfig(pdf=False))
    text = (tmp_path / "out" / "report.md").read_text()
    assert "6 of the sweep's runs are not under" in text
    assert "3,428 train / 857 validation / 715 test digits" in text  # the data line of results.md
    assert result.interpretation_boxes == text.count(INTERPRETATION) - 1  # the intro names the box


def test_a_damaged_run_is_one_line(made: Path, tmp_path: Path) -> None:
    broken = tmp_path / "run"
    shutil.copytree(made / "run", broken)
    (broken / "summary.json").write_text("{not json")
    result = CliRunner().invoke(app, ["writeup", str(broken), "--out", str(tmp_path / "out"), "--no-pdf"])
    assert result.exit_code == 2 and "summary.json: not valid JSON" in result.output
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_a_two_factor_grid_leads_with_its_heatmap(tmp_path: Path) -> None:
    args = ["compare", "hidden", "100,50", "30,5", "--by", "epochs", "1,3", "--dataset", "sample"]
    made = CliRunner().invoke(app, [*args, "--seeds", "1", "--jobs", "1", "--out", "grid"])
    assert made.exit_code == 0, made.output
    write_report([Path("grid")], Path("out"), WriteupConfig(pdf=False))
    text = Path("out/report.md").read_text()
    assert IMAGE_LINK.findall(text)[0] == "figures/1-heatmap.png"
    assert "| epochs | **varied:** 1 / 3 |" in text and "| model | **varied:** " in text
    results = text.split("### Results")[1].split("###")[0]
    rows = [line for line in results.splitlines() if line.startswith("| hidden ")]
    assert len(rows) == 4  # every cell of the grid
    assert "With one seed per value" in text


def test_an_optimizer_sweep_at_conventional_rates_says_the_rate_changed_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from digitnet.plotting import SweepSeries, plot_sweep

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DIGITNET_DATA", raising=False)
    args = ["compare", "optimizer", "sgd", "adam", "--dataset", "sample", "--epochs", "1", "--seeds", "2"]
    made = CliRunner().invoke(app, [*args, "--jobs", "1", "--out", "opt"])
    assert made.exit_code == 0, made.output
    write_report([Path("opt")], Path("out"), WriteupConfig(pdf=False))
    warnings = Path("out/report.md").read_text().split("### Warnings")[1]
    assert "verdicts compare optimizer-and-rate pairs" in " ".join(warnings.split())
    # the final figure's ticks name the rate each optimizer ran at, as the table's labels do
    curves = {"val_loss": [[0.5]], "val_accuracy": [[0.9]], "train_loss": [[0.5]]}
    final_stats = {"val_accuracy": (0.9, 0.0), "test_accuracy": (0.9, 0.0)}
    series = [
        SweepSeries(f"{name} (lr {lr})", name, "", curves, final_stats, (1.0, 0.0), 0, 2)
        for name, lr in (("sgd", "0.01"), ("adam", "0.001"))
    ]
    final = plot_sweep("optimizer", series)["final"]
    ticks = [label.get_text() for label in final.axes[0].get_xticklabels()]
    assert ticks == ["sgd (lr 0.01)", "adam (lr 0.001)"]


def test_a_sweep_of_one_setting_has_no_such_warning(report: Path) -> None:
    assert "optimizer-and-rate pairs" not in (report / "report.md").read_text()
