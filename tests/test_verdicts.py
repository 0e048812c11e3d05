"""Verdicts a student can trust (Welch intervals) and two-factor grids (``compare … --by …``)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from typer.testing import CliRunner

from digitnet.cli import app
from digitnet.errors import ConfigError
from digitnet.sweep import Cell, CellResult, SweepSpec, mean_std, plan_sweep
from digitnet.sweep.aggregate import describe_result, verdict, verdicts, verdicts_markdown, welch_interval
from digitnet.sweep.plan import parse_by_values


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ([0.97, 0.975, 0.972], [0.965, 0.968, 0.970]),
        ([0.91, 0.95, 0.93, 0.92, 0.94], [0.90, 0.905, 0.91]),
        ([0.5, 0.52], [0.6, 0.61, 0.65, 0.7]),
    ],
)
def test_the_interval_is_welchs_as_scipy_computes_it_from_the_seeds(a: list[float], b: list[float]) -> None:
    low, high = welch_interval(mean_std(a), mean_std(b))
    reference = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert low == pytest.approx(reference.low, rel=1e-9)
    assert high == pytest.approx(reference.high, rel=1e-9)


def _cell(label: str, values: list[float], group: str = "", value: str = "", by: str = "") -> CellResult:
    return CellResult(Cell(label, value or label, group, {}, by), [], {"val_accuracy": mean_std(values)})


def test_a_clear_lead_and_a_difference_the_seeds_cannot_tell() -> None:
    clear = verdict(_cell("adam", [0.980, 0.981, 0.982]), _cell("sgd", [0.970, 0.971, 0.972]))
    assert clear.clear and clear.points == pytest.approx(1.0)
    assert f"adam is ahead of sgd by {clear.low:.2f} to {clear.high:.2f} points" in clear.sentence()
    unclear = verdict(_cell("bn/adam", [0.9776, 0.9765, 0.9787]), _cell("bn/sgd", [0.9766, 0.9756, 0.9776]))
    assert not unclear.clear and unclear.low < 0 < unclear.high
    assert "cannot be told apart with 3 seeds" in unclear.sentence()
    assert "more seeds" not in unclear.sentence()
    two_seeds = verdict(_cell("a", [0.90, 0.95]), _cell("b", [0.89, 0.93]))
    assert not two_seeds.clear and "more seeds, e.g. --seeds 5" in two_seeds.sentence()
    one_seed = verdict(_cell("a", [0.9]), _cell("b", [0.8]))
    assert not one_seed.tested and "not tested" in one_seed.sentence()
    assert math.isnan(one_seed.low)


def test_the_summary_states_the_verdict_against_the_runner_up() -> None:
    cells = [_cell("0.1", [0.97, 0.971, 0.972]), _cell("0.01", [0.96, 0.961, 0.962])]
    text = describe_result(SweepSpec("lr", seeds=3), cells)
    assert "Best lr: 0.1" in text
    assert verdict(cells[0], cells[1]).sentence() in text


def test_a_two_factor_grid_compares_within_rows_and_within_columns() -> None:
    spec = SweepSpec("lr", ("0.1", "0.01"), by="dropout", by_values=("0", "0.5"))
    cells = [
        _cell(c.label, [base + 0.001 * k for k in range(3)], c.group, c.value, c.by_value)
        for c, base in zip(plan_sweep(spec), (0.97, 0.96, 0.95, 0.94), strict=True)
    ]
    pairs = {(v.ahead, v.behind) for v in verdicts(spec, cells)}
    assert pairs == {
        ("lr 0.1 / dropout 0", "lr 0.01 / dropout 0"),  # rows: the rate at a fixed dropout
        ("lr 0.1 / dropout 0.5", "lr 0.01 / dropout 0.5"),
        ("lr 0.1 / dropout 0", "lr 0.1 / dropout 0.5"),  # columns: the dropout at a fixed rate
        ("lr 0.01 / dropout 0", "lr 0.01 / dropout 0.5"),
    }


def test_the_grid_is_every_value_times_every_value() -> None:
    spec = SweepSpec("hidden", ("100,50", "30,5"), by="epochs", by_values=("1", "3", "10"))
    cells = plan_sweep(spec)
    assert [(c.overrides["hidden"], c.overrides["epochs"]) for c in cells] == [
        (h, e) for e in (1, 3, 10) for h in ((100, 50), (30, 5))
    ]
    # norm fills in dropout 0; a dropout factor beside it keeps its own value, in either order
    for spec in (
        SweepSpec("dropout", ("0.5",), by="norm", by_values=("batch", "none")),
        SweepSpec("norm", ("batch",), by="dropout", by_values=("0.5", "0")),
    ):
        assert plan_sweep(spec)[0].overrides == {"model": "bn", "dropout": 0.5}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (dict(factor="lr", by="lr", by_values=("0.1", "0.2")), "must differ"),
        (dict(factor="lr", by="colour", by_values=("1", "2")), "--by: expected one of"),
        (dict(factor="lr", by="dropout"), "at least two values"),
        (dict(factor="epochs", by="hidden", by_values=("100,50,30,5",)), "at least two values"),
        (dict(factor="lr", by="dropout", by_values=("0", "0.0")), "same value"),
        (dict(factor="lr", by="dropout", by_values=("0.5", "0.5")), "same value"),
        (dict(factor="lr", models=("mlp",), by="dropout", by_values=("0", "0.5")), "does not combine"),
        (dict(factor="model", values=("mlp",), by="norm", by_values=("none", "batch")), "both set model"),
    ],
)
def test_bad_grids_are_refused_before_anything_trains(spec: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        plan_sweep(SweepSpec(**spec))  # type: ignore[arg-type]


def test_by_values_split_on_commas_except_for_hidden_sizes() -> None:
    assert parse_by_values("epochs", "1,3, 10") == ("1", "3", "10")
    assert parse_by_values("hidden", "100,50 30,5") == ("100,50", "30,5")


@pytest.mark.slow
def test_compare_by_writes_a_four_cell_table_a_heatmap_and_verdicts(tmp_path: Path) -> None:
    out = tmp_path / "grid"
    argv = ["compare", "hidden", "100,50", "30,5", "--by", "epochs", "1,2", "--dataset", "sample"]
    result = CliRunner().invoke(app, [*argv, "--seeds", "1", "--out", str(out), "--jobs", "1"])
    assert result.exit_code == 0, result.output
    with (out / "results.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["value"] for r in rows] == [
        "hidden 100,50 / epochs 1",
        "hidden 30,5 / epochs 1",
        "hidden 100,50 / epochs 2",
        "hidden 30,5 / epochs 2",
    ]
    assert (out / "heatmap.png").stat().st_size > 0
    svg = (out / "heatmap.svg").read_text()
    for row in rows:  # each cell's mean, as results.csv has it, is written in the heatmap
        assert f"{100 * float(row['val_accuracy_mean']):.2f}" in svg
    with (out / "verdicts.csv").open() as handle:
        assert len(list(csv.DictReader(handle))) == 4  # two rows, two columns: one comparison each
    # each cell trained with the settings of its row and column
    from digitnet.checkpoint import read_json

    configs = [read_json(p)["config"] for p in sorted((out / "runs").glob("*/config.json"))]
    combos = {(tuple(c["model"]["hidden_sizes"]), c["train"]["epochs"]) for c in configs}
    assert combos == {((100, 50), 1), ((30, 5), 1), ((100, 50), 2), ((30, 5), 2)}
    assert np.isfinite([float(r["val_accuracy_mean"]) for r in rows]).all()


def test_a_claim_is_the_verdict_of_its_two_cells_whichever_is_ahead() -> None:
    from types import SimpleNamespace

    from digitnet.report import Claim, claim_text

    cells = [_cell("0.1", [0.96, 0.961, 0.962]), _cell("0.03", [0.97, 0.971, 0.972])]
    result = SimpleNamespace(cells=cells)
    text = claim_text(Claim("c", "lr", "0.1", "0.03"), result)  # type: ignore[arg-type]
    assert verdict(cells[1], cells[0]).sentence() in text
    assert "validation 97.10 ± 0.10% for 0.03 against 96.10 ± 0.10% for 0.1" in text
    with pytest.raises(ValueError, match=r"no cell 0\.3"):
        claim_text(Claim("c", "lr", "0.3", "0.03"), result)  # type: ignore[arg-type]


def test_every_claim_is_on_a_page_and_names_cells_of_its_experiment() -> None:
    from digitnet.report import CLAIMS, experiments
    from digitnet.sweep import plan_sweep

    docs = Path(__file__).parent.parent / "docs"
    pages = "\n".join(p.read_text() for p in docs.rglob("*.md"))
    specs = {e.name: e.spec for e in experiments(False, None)}
    for claim in CLAIMS:
        assert f'"results/claims/{claim.name}.md"' in pages, f"claim {claim.name} is on no page"
        labels = {c.label for c in plan_sweep(specs[claim.experiment])}
        assert {claim.first, claim.second} <= labels, claim


def test_equal_means_are_called_a_tie_not_a_lead() -> None:
    tie = verdict(_cell("a", [0.9]), _cell("b", [0.9]))
    assert "a tie" in tie.sentence() and "ahead" not in tie.sentence()
    assert "have the same mean" in tie.sentence()
    # means printed as 97.72 and 97.71 are 0.003 points apart: "0.00" beside them read as a contradiction
    near = verdict(_cell("a", [0.97713, 0.97723, 0.97733]), _cell("b", [0.97710, 0.97720, 0.97730]))
    assert "a and b have means 0.003 points apart (95% interval" in near.sentence()
    assert "| a | b | 0.003 |" in verdicts_markdown([near])


def test_by_without_its_values_is_one_line_not_a_misread_option(tmp_path: Path) -> None:
    argv = ["compare", "lr", "0.1", "0.01", "--by", "epochs", "--seeds", "1", "--out", str(tmp_path / "x")]
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 2
    assert "its values come right after it" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "x").exists()


def test_seeds_that_end_at_chance_are_named_beside_those_that_diverged() -> None:
    """lr 1: one seed's loss overflowed, the other two finished at 10% with no NaN. "Diverged: 1 of 3"
    alone read as if two seeds had learnt."""
    from dataclasses import replace

    from digitnet.run import RunSummary
    from digitnet.sweep import RunRecord, aggregate

    def run(cell: Cell, seed: int, status: str, val: float | None) -> RunRecord:
        blank = RunSummary.failed(f"{cell.label}-{seed}", "stand-in")
        metrics = dict.fromkeys(("train_accuracy", "test_accuracy"), val) | {"val_accuracy": val}
        losses = dict.fromkeys(("train_loss", "val_loss", "test_loss"), 2.3 if val is not None else None)
        summary = replace(blank, status=status, epochs_completed=10, **metrics, **losses)  # type: ignore[arg-type]
        return RunRecord(cell, seed, summary.key, Path(summary.key), summary, False)

    big, good = Cell("1", "1", "", {}), Cell("0.03", "0.03", "", {})
    records = [run(big, 0, "diverged", None), run(big, 1, "completed", 0.0985), run(big, 2, "completed", 0.1)]
    records += [run(good, seed, "completed", 0.975 + seed / 1000) for seed in range(3)]
    cells = aggregate([big, good], records)
    assert [c.at_chance for c in cells] == [2, 0]
    text = describe_result(SweepSpec("lr", ("1", "0.03"), seeds=3), cells)
    assert "Diverged: lr 1 (1 of 3 seeds)." in text
    assert (
        "Near chance at the end (validation below 20%; a constant answer scores 10%): lr 1 (2 of 3 seeds)."
        in text
    )


def test_a_bound_that_excludes_zero_is_never_printed_as_zero() -> None:
    """The site's 'bn / momentum ahead of bn / rmsprop, +0.00 to +0.41' read as a contradiction of
    "ahead means the interval excludes zero": a bound that small gets the digits that show its sign."""
    from digitnet.sweep.aggregate import Verdict

    edge = Verdict("momentum", "rmsprop", points=0.21, low=0.0031, high=0.41, seeds=(3, 3))
    assert edge.clear and edge.interval == "+0.0031 to +0.41"
    assert "ahead of rmsprop by 0.0031 to 0.41 points" in edge.sentence()
    plain = Verdict("a", "b", points=0.5, low=0.12, high=0.88, seeds=(3, 3))
    assert plain.interval == "+0.12 to +0.88"


def test_unequal_seed_counts_say_which_side_had_which() -> None:
    """A diverged seed leaves its cell's mean with fewer seeds: the sentence names whose they are."""
    from digitnet.sweep.aggregate import Verdict

    uneven = Verdict("0.01", "1", points=60.0, low=50.0, high=70.0, seeds=(3, 2))
    assert "(95% interval, Welch, 3 seeds of 0.01, 2 of 1)" in uneven.sentence()
    even = Verdict("a", "b", points=0.5, low=0.1, high=0.9, seeds=(3, 3))
    assert "(95% interval, Welch, 3 seeds)" in even.sentence()


def test_a_row_that_leaves_out_a_diverged_seed_says_so_and_its_time_is_of_finished_runs() -> None:
    """lr 1 with one of three seeds diverged in epoch 1: its row is the mean of two seeds, not "over 3
    seeds" as the header said, and the diverged seed's 0 s (no epoch finished) pulled its time down."""
    from dataclasses import replace

    from digitnet.run import RunSummary
    from digitnet.sweep import RunRecord, aggregate
    from digitnet.sweep.aggregate import over_seeds, results_markdown

    def run(cell: Cell, seed: int, status: str, seconds: float) -> RunRecord:
        blank = RunSummary.failed(f"{cell.label}-{seed}", "stand-in")
        val = 0.97 if status == "completed" else None
        metrics = dict.fromkeys(("train_accuracy", "val_accuracy", "test_accuracy"), val)
        summary = replace(blank, status=status, epochs_completed=10, train_seconds=seconds, **metrics)  # type: ignore[arg-type]
        return RunRecord(cell, seed, summary.key, Path(summary.key), summary, False)

    big, good = Cell("1", "1", "", {}), Cell("BN", "BN", "", {})
    records = [run(big, 0, "diverged", 0.0), run(big, 1, "completed", 12.0), run(big, 2, "completed", 14.0)]
    records += [run(good, seed, "completed", 10.0) for seed in range(3)]
    cells = aggregate([big, good], records)
    assert cells[0].stats["train_seconds"].mean == pytest.approx(13.0)
    assert over_seeds(3, cells, "lr") == (
        "mean ± standard deviation over 3 seeds (over 2 for lr 1: a diverged or failed seed is left out)"
    )
    assert over_seeds(3, cells[1:]) == "mean ± standard deviation over 3 seeds"
    table = results_markdown(SweepSpec("lr", ("1", "BN"), seeds=3), cells, "")
    assert table.startswith("Mean ± standard deviation over 3 seeds (over 2 for lr 1:")


def test_a_table_shows_cpu_time_only_when_every_run_recorded_it() -> None:
    """The report's first learning rates took half as long again by the clock as the later ones, only
    because figures were drawn beside them: CPU time, which every sweep run records, is the column then.
    One run without it (trained with more threads, or before it was recorded) puts the table on the
    clock, never a mix of the two."""
    from dataclasses import replace

    from digitnet.run import RunSummary
    from digitnet.sweep import RunRecord, aggregate
    from digitnet.sweep.aggregate import CLOCK_NOTE, TIME_NOTE, results_markdown

    def run(cell: Cell, seed: int, wall: float, cpu: float | None) -> RunRecord:
        blank = RunSummary.failed(f"{cell.label}-{seed}", "stand-in")
        metrics = dict.fromkeys(("train_accuracy", "val_accuracy", "test_accuracy"), 0.97)
        summary = replace(
            blank,
            status="completed",
            epochs_completed=10,
            train_seconds=wall,
            train_cpu_seconds=cpu,
            **metrics,  # type: ignore[arg-type]
        )
        return RunRecord(cell, seed, summary.key, Path(summary.key), summary, False)

    fast, slow = Cell("0.3", "0.3", "", {}), Cell("0.001", "0.001", "", {})
    spec = SweepSpec("lr", ("0.3", "0.001"), seeds=2)
    records = [run(fast, s, 8.9, 5.6) for s in range(2)] + [run(slow, s, 5.7, 5.6) for s in range(2)]
    columns = ("value", "time (s)")
    table = results_markdown(spec, aggregate([fast, slow], records), "", columns=columns)
    assert "| value | CPU time (s) |" in table and TIME_NOTE[1:] in table
    assert "| 0.3 | 5.6 ± 0.0 |" in table and "| 0.001 | 5.6 ± 0.0 |" in table
    records[-1] = run(slow, 1, 5.7, None)
    table = results_markdown(spec, aggregate([fast, slow], records), "", columns=columns)
    assert "| value | time (s) |" in table and "CPU time (s)" not in table and CLOCK_NOTE[1:] in table
    assert "| 0.3 | 8.9 ± 0.0 |" in table and "| 0.001 | 5.7 ± 0.0 |" in table


def test_a_seed_that_ends_above_chance_with_a_loss_above_a_uniform_guess_is_named_unsteady() -> None:
    """A student's one-seed lr 1 ended at 28% validation with a training loss of 2.68: above chance,
    so not "near chance", yet worse in loss than guessing 1/10 for every class. Said as such."""
    from dataclasses import replace

    from digitnet.run import RunSummary
    from digitnet.sweep import RunRecord, aggregate

    def run(cell: Cell, val: float, train_loss: float) -> RunRecord:
        blank = RunSummary.failed(cell.label, "stand-in")
        metrics = dict.fromkeys(("train_accuracy", "val_accuracy", "test_accuracy"), val)
        summary = replace(blank, status="completed", train_loss=train_loss, **metrics)  # type: ignore[arg-type]
        return RunRecord(cell, 0, summary.key, Path(summary.key), summary, False)

    big, good, lost = Cell("1", "1", "", {}), Cell("0.01", "0.01", "", {}), Cell("3", "3", "", {})
    cells = aggregate([big, good, lost], [run(big, 0.28, 2.68), run(good, 0.97, 0.1), run(lost, 0.1, 2.4)])
    assert [c.unsteady for c in cells] == [1, 0, 0]  # the run at chance is named as such, not twice
    text = describe_result(SweepSpec("lr", ("1", "0.01", "3"), seeds=1), cells)
    assert "Unsteady (the last epoch's training loss above 2.30, a uniform guess's" in text
    assert "not learning): lr 1 (1 of 1 seed)." in text
    assert "lr 3 (1 of 1 seed)." in text.split("Near chance")[1]


def test_an_interval_wider_than_any_difference_of_accuracies_is_cut_at_100_points() -> None:
    """Two seeds, SGD at 80% against Adam at chance: Welch's interval ran from -52.48 to +192.15 points."""
    wide = verdict(_cell("sgd", [0.75, 0.85]), _cell("adam", [0.10, 0.1008]))
    assert (
        wide.high > 100
        and "to 100.00 points (cut at ±100, the most two accuracies can differ)" in wide.sentence()
    )
    narrow = verdict(_cell("a", [0.97, 0.975, 0.972]), _cell("b", [0.965, 0.968, 0.970]))
    assert "cut at" not in narrow.sentence()


def test_the_summary_names_cells_once_and_keeps_to_one_pair_of_brackets() -> None:
    """'Best optimizer: adam (lr 0.001) (validation …)', 'Best optimizer: bn / momentum' (a model and an
    optimizer) and 'lr × optimizer lr 0.1 / optimizer adam' each said a cell clumsily."""
    cells = [_cell("adam (lr 0.001)", [0.90, 0.902]), _cell("sgd (lr 0.01)", [0.85, 0.86])]
    text = describe_result(SweepSpec("optimizer", seeds=2), cells)
    assert text.startswith("Best optimizer: adam (lr 0.001; validation 90.10 ± 0.14%).")
    grid = [
        _cell("bn / momentum (lr 0.01)", [0.97, 0.971], group="bn"),
        _cell("bn / sgd (lr 0.01)", [0.96, 0.961], group="bn"),
    ]
    assert describe_result(SweepSpec("optimizer", seeds=2, models=("bn",)), grid).startswith(
        "Best model / optimizer: bn / momentum (lr 0.01; validation"
    )
    from dataclasses import replace

    from digitnet.run import RunSummary
    from digitnet.sweep import RunRecord, aggregate

    lost = Cell("mlp / sgd (lr 0.01)", "sgd", "mlp", {})
    summary = replace(RunSummary.failed("k", "stand-in"), status="completed", val_accuracy=0.1)
    (cell,) = aggregate([lost], [RunRecord(lost, 0, "k", Path("k"), summary, False)])
    chance = describe_result(SweepSpec("optimizer", seeds=1, models=("mlp",)), [cell])
    assert "mlp / sgd (lr 0.01; 1 of 1 seed)." in chance
