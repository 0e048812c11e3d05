"""Regenerate every figure and table the docs site shows, from the project's own runs.

``digitnet report`` plans every write-up's experiment at once and trains all their runs in one pool of
worker processes (runs are cached by config, so a rerun only trains what is missing); as each experiment's
last run comes in, ``digitnet.sweep.run_sweep`` aggregates it from the cache and its figures and tables
are copied into the docs (``<docs>/figures/<experiment>/`` and ``<docs>/results/<experiment>/``) while
the workers train the rest. Each results folder also gets ``command.md``, the exact ``digitnet compare``
command that reproduces it.

``--quick`` runs the same path on the bundled sample with one seed and two epochs, for CI.

```python
written = run_report(Path("docs"), Path("runs/report"), quick=True)
```
"""

from __future__ import annotations

import dataclasses
import functools
import queue
import shlex
import shutil
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from digitnet.configs import DataConfig
from digitnet.errors import ConfigError
from digitnet.runtime import atomic_write_text
from digitnet.settings import RunConfig
from digitnet.sweep import Cell, RunRecord, SweepResult, SweepSpec, results_markdown, run_sweep
from digitnet.sweep.execution import RunCallback, execute, held_signals, shared_split

VARIANTS = ("lr=0.001 dropout=0.2", "lr=0.0005 dropout=0.4", "lr=0.0001 dropout=0.6")


@dataclass(frozen=True)
class Experiment:
    """One write-up's sweep: its folder name, the sweep, and the figures to publish."""

    name: str
    spec: SweepSpec
    figures: tuple[str, ...] = ("val_loss.png", "val_accuracy.png", "train_loss.png", "final.png")
    columns: tuple[str, ...] = ("value", "val acc (%)", "test acc (%)", "best epoch", "time (s)")
    """The columns its page discusses (``table.md``); ``results.md`` and ``results.csv`` keep them all"""


TRAIN_VAL_TEST = ("value", "train acc (%)", "val acc (%)", "test acc (%)")


@dataclass(frozen=True)
class Claim:
    """A comparison a page makes in words. The page includes ``results/claims/<name>.md``, the verdict
    generated from the cells' seeds, so the sentence changes when the numbers do and never outlives
    them; the prose around it says only what any outcome would leave true."""

    name: str
    experiment: str
    first: str  # two cell labels of that experiment's table, in either order
    second: str


CLAIMS = (
    Claim("lr-top", "lr", "0.1", "0.03"),
    Claim("lr-overshoot", "lr", "0.3", "0.1"),
    Claim("batch-16-32", "batch-size", "16", "32"),
    Claim("sgd-adam-mlp", "optimizer", "mlp / sgd (lr 0.01)", "mlp / adam (lr 0.001)"),
    Claim("sgd-adam-bn", "optimizer", "bn / sgd (lr 0.01)", "bn / adam (lr 0.001)"),
    Claim("bn-mlp-sgd", "optimizer", "bn / sgd (lr 0.01)", "mlp / sgd (lr 0.01)"),
    Claim("bn-mlp-adam", "optimizer", "bn / adam (lr 0.001)", "mlp / adam (lr 0.001)"),
    Claim("dropout-bn-sgd", "optimizer", "bn / sgd (lr 0.01)", "bn-dropout / sgd (lr 0.01)"),
    Claim("dropout-bn-adam", "optimizer", "bn / adam (lr 0.001)", "bn-dropout / adam (lr 0.001)"),
    Claim("nmlp-mlp", "nmlp", "nmlp", "mlp"),
    Claim("variants-first-two", "variants", "lr=0.001 dropout=0.2", "lr=0.0005 dropout=0.4"),
    Claim("dropout-at-slow-rate", "lr-dropout", "lr 0.0001 / dropout 0", "lr 0.0001 / dropout 0.6"),
    Claim("rate-at-heavy-dropout", "lr-dropout", "lr 0.001 / dropout 0.6", "lr 0.0001 / dropout 0.6"),
    Claim("dropout-0-02", "dropout", "0", "0.2"),
    Claim("layer-none", "norm", "layer", "none"),
    Claim("batch-none", "norm", "batch", "none"),
    Claim("batch-layer", "norm", "batch", "layer"),
    Claim("epochs-10-3", "epochs", "10", "3"),
    Claim("hidden-wide", "hidden", "300,100", "100,50"),
    Claim("bottleneck-10-epochs", "hidden-epochs", "hidden 30,5 / epochs 10", "hidden 100,50 / epochs 1"),
)


def claim_text(claim: Claim, result: SweepResult) -> str:
    """The claim's verdict: the one ahead on mean validation accuracy first, both means, the interval."""
    from digitnet.sweep.aggregate import verdict

    cells = {c.cell.label: c for c in result.cells}
    missing = [label for label in (claim.first, claim.second) if label not in cells]
    if missing:
        raise ValueError(f"claim {claim.name}: no cell {', '.join(missing)} in experiment {claim.experiment}")
    first, second = cells[claim.first], cells[claim.second]
    if second.stats["val_accuracy"].mean > first.stats["val_accuracy"].mean:
        first, second = second, first
    found = verdict(first, second)
    means = (
        f"validation {first.stats['val_accuracy'].text()}% for {first.cell.label} against "
        f"{second.stats['val_accuracy'].text()}% for {second.cell.label}"
    )
    return f"**Verdict** ({means}): {found.sentence()}.\n"


def experiments(quick: bool, data_dir: str | None) -> list[Experiment]:
    """The report's sweeps. Full: MNIST, 3 seeds, the assignments' epochs; quick: sample, 1 seed, 2 epochs."""
    data: dict[str, Any] = report_data(quick, data_dir)
    epochs = 2 if quick else 10
    seeds = 1 if quick else 3

    def spec(
        factor: str,
        values: tuple[str, ...] = (),
        by: tuple[str, tuple[str, ...]] = ("", ()),
        close_call: bool = False,
        **settings: Any,
    ) -> SweepSpec:
        """``close_call``: five seeds, where three left the verdict hanging on the interval's edge."""
        base = data | {"epochs": epochs} | {k.replace("_", "-"): v for k, v in settings.items()}
        for swept in (factor, by[0]):  # the sweep sets these itself: "--epochs 10 --by epochs 1,3" misleads
            base.pop(swept, None)
        variants = VARIANTS if factor == "variants" else ()
        models = tuple(base.pop("models", ()))
        count = 5 if close_call and not quick else seeds
        return SweepSpec(factor, values, tuple(sorted(base.items())), count, models, variants, *by)

    # The variants pair a rate with a dropout; the grids below vary each with the other held fixed.
    # Adam at 0.001 is the fixed optimizer and rate of the one-factor experiments (dropout, norm), so
    # their cells are cells of the lr × dropout grid too, and are trained once.
    adam: dict[str, Any] = {"optimizer": "adam", "lr": 0.001}
    grid_figures = ("heatmap.png", "final.png", "val_accuracy.png")

    return [
        Experiment(
            "baseline",
            spec("lr", ("0.01",)),
            (),
            (*TRAIN_VAL_TEST, "train loss", "val loss", "test loss"),
        ),
        Experiment(
            "lr",
            # up to 1: the grid must reach rates where SGD overshoots, not stop where it still learns
            spec("lr", ("1", "0.3", "0.1", "0.03", "0.01", "0.003", "0.001", "0.0003")),
            # no time column: the rates above 0.1 were trained later, on a busier machine than the rest
            columns=(
                "value",
                "diverged",
                "train acc (%)",
                "train loss",
                "val acc (%)",
                "test acc (%)",
                "best epoch",
            ),
        ),
        Experiment("batch-size", spec("batch-size")),
        Experiment(
            "optimizer",
            spec("optimizer", models=("mlp", "bn", "bn-dropout")),
            columns=(*TRAIN_VAL_TEST, "time (s)"),
        ),
        Experiment(
            "nmlp",
            spec("model", ("mlp", "nmlp"), close_call=True),
            columns=(*TRAIN_VAL_TEST, "val loss", "best epoch"),
        ),
        # The baseline cell is Adam at 0.01, as published; said explicitly since --lr now defaults to
        # each optimizer's conventional rate (0.001 for Adam).
        Experiment(
            "variants",
            spec("variants", optimizer="adam", lr=0.01),
            columns=(*TRAIN_VAL_TEST, "val loss", "best epoch"),
        ),
        Experiment(
            "dropout",
            spec("dropout", ("0", "0.2", "0.4", "0.6"), **adam),
            columns=(*TRAIN_VAL_TEST, "val loss", "best epoch"),
        ),
        Experiment(
            "norm",
            spec("norm", ("none", "layer", "batch"), close_call=True, **adam),
            columns=(*TRAIN_VAL_TEST, "val loss"),
        ),
        Experiment(
            "lr-dropout",
            spec(
                "lr",
                ("0.001", "0.0005", "0.0001"),
                ("dropout", ("0", "0.2", "0.4", "0.6")),
                optimizer="adam",
            ),
            grid_figures,
            columns=(*TRAIN_VAL_TEST, "val loss"),
        ),
        Experiment(
            "epochs",
            spec("epochs", ("1", "3", "10") if not quick else ("1", "2")),
            columns=(*TRAIN_VAL_TEST, "time (s)"),
        ),
        Experiment(
            "hidden",
            spec("hidden", ("30,5", "100,50", "300,100"), close_call=True),
            columns=("value", "parameters", "train acc (%)", "val acc (%)", "test acc (%)"),
        ),
        Experiment(
            "hidden-epochs",
            spec("hidden", ("100,50", "30,5"), ("epochs", ("1", "3", "10") if not quick else ("1", "2"))),
            grid_figures,
            columns=TRAIN_VAL_TEST,
        ),
        Experiment(
            "cnn",
            spec("model", ("cnn",), optimizer="adam", lr=0.001, epochs=2 if quick else 5),
            columns=("value", "parameters", *TRAIN_VAL_TEST[1:], "test loss", "time (s)"),
        ),
    ]


def command_line(spec: SweepSpec) -> str:
    """The ``digitnet compare`` command that reproduces ``spec``, as a user types it: the data directory
    comes from ``$DIGITNET_DATA`` rather than this machine's path."""
    words = ["digitnet", "compare", spec.factor, *spec.values]
    for name, value in spec.base:
        if name == "data-dir":
            continue
        text = ",".join(map(str, value)) if isinstance(value, tuple) else str(value)
        words += [f"--{name}", text]
    words += ["--seeds", str(spec.seeds)]
    if spec.models:
        words += ["--models", ",".join(spec.models)]
    for variant in spec.variants:
        words += ["--variant", variant]
    if spec.by:
        separator = " " if spec.by == "hidden" else ","
        words += ["--by", spec.by, separator.join(spec.by_values)]
    return shlex.join(words)


ReportCallback = Callable[[str, SweepResult], None]
ReportRunCallback = Callable[[str, RunRecord, int, int], None]


def _publish(source_dir: Path, names: tuple[str, ...], target_dir: Path, prefix: str = "") -> list[Path]:
    """Copy ``names`` from a run or sweep directory into the docs (as ``prefix + name``)."""
    target_dir.mkdir(parents=True, exist_ok=True)
    copied = []
    for name in names:
        target = target_dir / f"{prefix}{name}"
        shutil.copyfile(source_dir / name, target)
        copied.append(target)
    return copied


@dataclass(frozen=True)
class ReportPlan:
    """Every run the report needs, in the order they train, and which of them each step waits for."""

    experiments: list[Experiment]
    health: SweepSpec
    """The Inside page's training-health runs (see [health_spec][digitnet.inside.health_spec])"""
    runs: list[tuple[Cell, int, RunConfig]]
    """Each distinct run once, in training order (see [TRAINED_FIRST][digitnet.report.TRAINED_FIRST])"""
    keys: dict[str, frozenset[str]]
    """Experiment name (and ``"health"``) → the keys of its runs"""
    owner: dict[str, str]
    """Run key → the first experiment, in the report's order, that plans it: the one that counts it trained"""


TRAINED_FIRST = ("cnn", "baseline", "health")
"""The experiments whose runs train first: the CNN's are the longest (one of them left for last would keep
one core busy and the other idle), and the Inside page's views of the baseline's and the CNN's first
runs (t-SNE takes a while) and its health runs can then be drawn while the others train."""


def plan_report(quick: bool, data_dir: str | None) -> ReportPlan:
    """The report's runs, planned at once so that one pool of workers trains them all.

    Planned one experiment at a time, each experiment's last runs left a core idle while they finished,
    and every experiment started its workers again (torch's import and the data, ~6 s each time).
    """
    from digitnet.inside import health_spec
    from digitnet.sweep import plan_sweep, run_configs

    chosen = experiments(quick, data_dir)
    health = health_spec(report_data(quick, data_dir), epochs=2 if quick else 10)
    specs = {e.name: e.spec for e in chosen} | {"health": health}
    keyed = {
        name: [(run, run[2].key()) for run in run_configs(spec, plan_sweep(spec))]
        for name, spec in specs.items()
    }
    keys = {name: frozenset(key for _, key in runs) for name, runs in keyed.items()}
    owner: dict[str, str] = {}
    for name in specs:
        for _, key in keyed[name]:
            owner.setdefault(key, name)
    order = [*TRAINED_FIRST, *(name for name in specs if name not in TRAINED_FIRST)]
    runs: dict[str, tuple[Cell, int, RunConfig]] = {}
    for name in order:
        for run, key in keyed[name]:
            runs.setdefault(key, run)
    return ReportPlan(chosen, health, list(runs.values()), keys, owner)


def report_data(quick: bool, data_dir: str | None) -> dict[str, str]:
    """The report's data settings: the bundled sample for ``--quick``, else MNIST (from ``data_dir``)."""
    if quick:
        return {"dataset": "sample"}
    return {"dataset": "mnist", **({"data-dir": data_dir} if data_dir else {})}


def run_report(
    docs_dir: Path,
    cache_dir: Path,
    quick: bool = False,
    data_dir: str | None = None,
    jobs: int = 1,
    on_experiment: ReportCallback | None = None,
    on_run: ReportRunCallback | None = None,
) -> list[Path]:
    """Run every experiment (reusing cached runs) and publish figures and tables under ``docs_dir``.

    One pool of ``jobs`` workers trains every run of the report ([plan_report][digitnet.report.plan_report]);
    meanwhile this process publishes each experiment as soon as its last run is in, so tables, figures
    and the Inside page's views are drawn while the workers train the rest. ``on_run`` hears of every
    run as it ends (cached ones first) with the name of the experiment that counts it, from a thread of
    its own when ``jobs`` > 1; ``on_experiment`` of every experiment once it is published. Bad options,
    a broken data file and a cache folder holding someone else's files fail before anything trains.
    """
    from threadpoolctl import threadpool_limits

    from digitnet.export import require_onnx
    from digitnet.runtime import claim_output, using_threads

    if jobs < 1:  # execute checks it too, but only once the plan is made and the data loaded
        raise ConfigError(f"--jobs: expected a whole number ≥ 1, got {jobs}")
    if docs_dir.exists() and not docs_dir.is_dir():
        raise ConfigError(f"--docs-dir {docs_dir}: a file is there; the report writes a directory of pages")
    require_onnx("digitnet report (it exports the Playground's models)")
    plan = plan_report(quick, data_dir)
    for name in (*(e.name for e in plan.experiments), "health"):
        claim_output(cache_dir / name, "sweep", flag="--cache-dir")  # before any training, as a sweep does
    data_config = DataConfig(dataset="sample") if quick else DataConfig(dataset="mnist", data_dir=data_dir)
    shared_split(data_config)  # a broken data file fails here, before any worker starts
    data = report_data(quick, data_dir)
    publisher = _Publisher(plan, docs_dir, cache_dir, data_config, data, quick, on_experiment)

    def progress(record: RunRecord, done: int, total: int) -> None:
        if on_run is not None:
            on_run(plan.owner[record.key], record, done, total)

    # While the workers train, this process draws with one thread (torch's, and the OpenMP threads of
    # t-SNE): more would wait on cores the workers keep busy (the Speed page's busy machine).
    threads = 1 if jobs > 1 else None
    with using_threads(threads), threadpool_limits(threads):
        if jobs == 1:  # one run after another in this process, each experiment published as it completes

            def finished(record: RunRecord, done: int, total: int) -> None:
                progress(record, done, total)
                publisher.run_finished(record)

            execute(plan.runs, cache_dir / "runs", 1, finished)
        else:
            _train_while_publishing(plan, cache_dir / "runs", jobs, progress, publisher)
        publisher.publish_ready()
    return publisher.written


def _train_while_publishing(
    plan: ReportPlan, runs_dir: Path, jobs: int, progress: RunCallback, publisher: _Publisher
) -> None:
    """Train ``plan``'s runs in ``jobs`` workers, driven from a thread that reports each run as it ends,
    while this (main) thread publishes the experiments whose runs are in. Publishing here keeps Ctrl-C
    and SIGTERM, which only the main thread receives, able to stop a long drawing (t-SNE) at once; the
    workers are then stopped as ``execute`` stops them (finished runs kept) before the error goes on."""
    finished: queue.Queue[RunRecord | BaseException | None] = queue.Queue()
    stop = threading.Event()

    def ended(record: RunRecord, done: int, total: int) -> None:
        progress(record, done, total)
        finished.put(record)

    def train() -> None:
        try:
            execute(plan.runs, runs_dir, jobs, ended, stop=stop)
            finished.put(None)
        except BaseException as error:  # handed to the main thread, which raises it
            finished.put(error)

    trainer = threading.Thread(target=train, name="digitnet-report-training")
    trainer.start()
    try:
        while True:
            try:
                item = finished.get(timeout=0.5)  # a timeout, so that Ctrl-C is heard between waits
            except queue.Empty:
                continue
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            publisher.run_finished(item)
    finally:
        stop.set()
        with held_signals():  # the workers' stop is bounded (execute); a second Ctrl-C would only orphan it
            trainer.join()


class _Publisher:
    """The report's publishing steps, each taken once every run it reads is in (in the report's order
    when several are ready at once): the data figures, one step per experiment, the Inside page, and
    the claims and the Playground's table once everything is."""

    def __init__(
        self,
        plan: ReportPlan,
        docs_dir: Path,
        cache_dir: Path,
        data_config: DataConfig,
        data: dict[str, str],
        quick: bool,
        on_experiment: ReportCallback | None,
    ) -> None:
        self.plan, self.docs_dir, self.cache_dir = plan, docs_dir, cache_dir
        self.data_config, self.data, self.quick = data_config, data, quick
        self.on_experiment = on_experiment
        self.written: list[Path] = []
        self.results: dict[str, SweepResult] = {}
        self.playground_rows: dict[str, str] = {}
        self.first_runs: dict[str, Path] = {}
        self.done: set[str] = set()
        self.trained: set[str] = set()
        inside = plan.keys["health"] | plan.keys["baseline"] | plan.keys["cnn"]
        self.steps: list[tuple[frozenset[str], Callable[[], None]]] = [
            (frozenset(), self.data_figures),  # at the first run's end, while the workers train on
            *((plan.keys[e.name], functools.partial(self.experiment, e)) for e in plan.experiments),
            (inside, self.inside),
            (frozenset(plan.owner), self.claims_and_playground),
        ]

    def run_finished(self, record: RunRecord) -> None:
        self.done.add(record.key)
        if not record.cached:
            self.trained.add(record.key)
        self.publish_ready()

    def trained_for(self, name: str) -> int:
        """How many of experiment ``name``'s runs this report trained, each counted by the first experiment
        (in the report's order) that plans it, as when the experiments were trained one after another."""
        return sum(1 for key in self.plan.keys[name] if key in self.trained and self.plan.owner[key] == name)

    def publish_ready(self) -> None:
        while ready := [step for step in self.steps if step[0] <= self.done]:
            self.steps.remove(ready[0])
            ready[0][1]()

    def data_figures(self) -> None:
        from digitnet.analysis import draw_data_figures

        figures, tables = self.docs_dir / "figures" / "data", self.docs_dir / "results" / "data"
        self.written += draw_data_figures(self.data_config, figures, tables_dir=tables)[0]

    def experiment(self, experiment: Experiment) -> None:
        """Aggregate one experiment's (cached) runs and publish its figures, tables and command."""
        from digitnet.evaluate import evaluate_run

        name, docs_dir, cache_dir = experiment.name, self.docs_dir, self.cache_dir
        result = run_sweep(experiment.spec, cache_dir / name, runs_dir=cache_dir / "runs")
        new = self.trained_for(name)
        result = self.results[name] = dataclasses.replace(
            result, trained=new, reused=result.trained + result.reused - new
        )
        figures_dir = docs_dir / "figures" / name
        results_dir = docs_dir / "results" / name
        written = self.written
        written += _publish(result.out_dir, experiment.figures, figures_dir)
        if name in PLAYGROUND_MODELS:
            # the first seed's own figures: per-iteration loss with its moving average, accuracy per epoch
            first_run = self.first_runs[name] = result.cells[0].runs[0].run_dir
            written += _publish(first_run, ("loss.png", "accuracy.png"), figures_dir, prefix="run_")
            self.playground_rows[name] = _export_playground_model(first_run, docs_dir, name)
            written.append(docs_dir / "playground" / "models" / f"{PLAYGROUND_MODELS[name]}.onnx")
        written += _publish(
            result.out_dir, ("results.md", "results.csv", "verdicts.md", "verdicts.csv"), results_dir
        )
        table = results_markdown(
            experiment.spec,
            result.cells,
            result.summary,
            result.data,
            experiment.columns,
            f"results/{name}/results.csv",
        )
        atomic_write_text(results_dir / "table.md", table)
        atomic_write_text(results_dir / "command.md", f"```bash\n{command_line(experiment.spec)}\n```\n")
        written += [results_dir / "table.md", results_dir / "command.md"]
        if name == "cnn":
            evaluation = evaluate_run(self.first_runs[name], cache_dir / "cnn-evaluation")
            gallery = ("confusion_matrix.png", "misclassified.png", "confident_mistakes.png", "correct.png")
            written += _publish(evaluation.files[0].parent, gallery, figures_dir)
        if self.on_experiment is not None:
            self.on_experiment(name, result)

    def inside(self) -> None:
        """ "Inside the network": the baseline MLP's and the CNN's views, and the lr page's range test."""
        from digitnet.inside import draw_inside_figures

        runs = {"mlp": self.first_runs["baseline"], "cnn": self.first_runs["cnn"]}
        epochs = 2 if self.quick else 10
        self.written += draw_inside_figures(self.docs_dir, self.cache_dir, runs, self.data, epochs=epochs)

    def claims_and_playground(self) -> None:
        """Each claim's verdict (skipped where the quick grids lack its cells) and the Playground's table."""
        claims_dir = self.docs_dir / "results" / "claims"
        for claim in CLAIMS:
            result = self.results[claim.experiment]
            if self.quick and not {claim.first, claim.second} <= {c.cell.label for c in result.cells}:
                continue  # the quick grids are smaller (2 epochs): a claim about epoch 10 has no cells there
            atomic_write_text(claims_dir / f"{claim.name}.md", claim_text(claim, result))
            self.written.append(claims_dir / f"{claim.name}.md")
        rows = "".join(self.playground_rows[name] for name in PLAYGROUND_MODELS)
        atomic_write_text(self.docs_dir / "results" / "playground" / "models.md", PLAYGROUND_HEADER + rows)
        self.written.append(self.docs_dir / "results" / "playground" / "models.md")
        machine = self.docs_dir / "results" / "machine.md"
        runs = self.cache_dir / "runs"  # where execute trains them, each in the folder named by its key
        atomic_write_text(machine, machine_text(runs / key for key in sorted(self.plan.owner)))
        self.written.append(machine)


def machine_text(run_dirs: Iterable[Path]) -> str:
    """Where the report's runs trained, from each run's recorded environment: processor, the instruction
    set PyTorch's kernels used, threads, versions. A number's last digits depend on these (the home page
    says why), so the site names them; runs reused from another machine get a line of their own."""
    from collections import Counter

    from digitnet.checkpoint import read_json

    machines: Counter[str] = Counter()
    for run_dir in run_dirs:
        environment = read_json(run_dir / "config.json").get("environment", {})
        if str(environment.get("device", "cpu")).startswith("cuda"):
            where = f"{environment.get('device_name') or 'a CUDA GPU'} (CUDA)"
        else:
            processor = environment.get("device_name") or "a processor not recorded"
            where = (
                f"{processor} (PyTorch's CPU kernels: {environment.get('cpu_capability') or 'not recorded'})"
            )
        threads = environment.get("threads")
        per_run = f"{threads} thread{'' if threads == 1 else 's'} each" if threads else "threads not recorded"
        versions = f"torch {environment.get('torch', '?')}, Python {environment.get('python', '?')}"
        machines[f"{where}, {per_run}; {versions}"] += 1
    if len(machines) == 1:
        ((machine, count),) = machines.items()
        return f"{'The run' if count == 1 else f'All {count:,} runs'} trained on {machine}.\n"
    lines = [
        f"- {count:,} run{'' if count == 1 else 's'}: {machine}" for machine, count in machines.most_common()
    ]
    return "The runs trained on more than one machine:\n\n" + "\n".join(lines) + "\n"


# The Playground page's models: the first run (seed 0) of these experiments, exported to ONNX.
PLAYGROUND_MODELS = {"baseline": "mlp", "cnn": "cnn"}
PLAYGROUND_HEADER = (
    "| model | run | ONNX file (KiB) | test acc, PyTorch (%) | test acc, onnxruntime, pixels / 255 (%) |\n"
    "|---|---|---|---|---|\n"
)


def _export_playground_model(run_dir: Path, docs_dir: Path, experiment: str) -> str:
    """Export one run for the Playground (``docs/playground/models/``) and return its row of the table:
    the file's size, and its test accuracy under onnxruntime beside the run's own."""
    from digitnet.checkpoint import read_json
    from digitnet.export import export_onnx, onnx_test_accuracy

    name = PLAYGROUND_MODELS[experiment]
    result = export_onnx(run_dir, docs_dir / "playground" / "models" / f"{name}.onnx")
    accuracy, _ = onnx_test_accuracy(result.path, run_dir)
    torch_accuracy = float(read_json(run_dir / "summary.json")["test_accuracy"])
    return (
        f"| {name.upper()} | `{run_dir.name}` | {result.size_bytes / 1024:.0f} | "
        f"{100 * torch_accuracy:.2f} | {100 * accuracy:.2f} |\n"
    )


def cli_reference() -> str:
    """Markdown reference of every command and option, generated by Typer from the app itself."""
    import subprocess
    import sys

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "typer",
            "digitnet.cli",
            "utils",
            "docs",
            "--name",
            "digitnet",
            "--title",
            "Command-line reference",
        ],
        check=True,
        capture_output=True,
        text=True,
        env=_plain_env(),
    )
    return _escape_angle_brackets(result.stdout)


def _escape_angle_brackets(markdown: str) -> str:
    """``<`` and ``>`` in the reference's prose as entities: a default such as ``runs/<model>-…`` would
    otherwise read as an HTML tag and vanish from the page. Code spans and fenced blocks stay as they are."""
    lines, fenced = [], False
    for line in markdown.splitlines(keepends=True):
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced:
            parts = line.split("`")  # odd-numbered parts are inside code spans
            line = "`".join(
                part if index % 2 else part.replace("<", "&lt;").replace(">", "&gt;")
                for index, part in enumerate(parts)
            )
        lines.append(line)
    return "".join(lines)


def _plain_env() -> dict[str, str]:
    """The environment with a fixed terminal width, so generated help text wraps the same everywhere."""
    import os

    return {**os.environ, "COLUMNS": "100", "TERM": "dumb", "NO_COLOR": "1"}


def write_cli_reference(docs_dir: Path) -> Path:
    """Regenerate ``<docs>/cli.md`` from the Typer app."""
    path = docs_dir / "cli.md"
    atomic_write_text(path, cli_reference())
    return path


__all__ = [
    "CLAIMS",
    "Claim",
    "Experiment",
    "claim_text",
    "cli_reference",
    "command_line",
    "experiments",
    "run_report",
    "write_cli_reference",
]
