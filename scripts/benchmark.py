"""Training throughput: digitnet's trainer against the tutorials' loop, same process, same machine.

The reference loop is how the assignments train: ``torchvision.datasets.MNIST(transform=ToTensor())``
(plus ``Normalize`` for the CNN) → ``DataLoader(batch_size, shuffle=True)`` → forward / backward / step
with ``torch.optim.Adam(lr=1e-3)``. digitnet runs :func:`digitnet.trainer.fit` on the same model, batch
size and number of samples. Both use this process's torch threads. Also printed: the machine's float32
matmul rate (the roofline the cases are compared with), evaluation throughput, peak memory, and the wall
time of ``digitnet compare lr --epochs 3`` at its default values.

    python scripts/benchmark.py                 # full MNIST from $DIGITNET_DATA (or --data-dir)
    python scripts/benchmark.py --quick --json  # CI: a few thousand samples, no compare timing
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NoReturn, cast

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from digitnet.data import DataConfig, TensorSplit, find_mnist_files, load_split, to_tensors
from digitnet.models import ModelConfig, build_model
from digitnet.optim import OptimConfig, build_optimizer
from digitnet.runtime import seed_everything
from digitnet.trainer import TrainConfig, evaluate, fit


@dataclass(frozen=True)
class Case:
    name: str
    model: ModelConfig
    batch_size: int
    target_ratio: float


CASES = (
    Case("MLP 784-100-50-10", ModelConfig("mlp", (100, 50)), 100, 10.0),
    Case("MLP 784-500-10", ModelConfig("mlp", (500,)), 100, 5.0),
    Case("LeNet CNN", ModelConfig("cnn"), 64, 2.0),
)


@dataclass
class Result:
    case: str
    batch_size: int
    samples: int
    reference_samples_per_s: float
    digitnet_samples_per_s: float
    ratio: float
    target_ratio: float
    train_gflop_per_sample: float
    digitnet_gflops: float
    fraction_of_matmul_peak: float
    reference_eval_samples_per_s: float
    digitnet_eval_samples_per_s: float
    peak_rss_mb: float


def matmul_peak_gflops(size: int = 1024, seconds: float = 2.0) -> float:
    """Best float32 GEMM rate this process reaches (size×size @ size×size), in GFLOP/s."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    for _ in range(3):
        a @ b
    best = 0.0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        for _ in range(5):
            a @ b
        best = max(best, 5 * 2 * size**3 / (time.perf_counter() - start) / 1e9)
    return best


def shape_rates() -> dict[str, float]:
    """GFLOP/s of the wide MLP's two large products alone, at the benchmark's batch of 100: the most its
    training step could reach if nothing else cost time."""
    shapes = {
        "forward x·Wᵀ (100×784 · 784×500)": (100, 784, 500),
        "weight gradient gᵀ·x (500×100 · 100×784)": (500, 100, 784),
    }
    rates = {}
    for name, (m, k, n) in shapes.items():
        a, b = torch.randn(m, k), torch.randn(k, n)
        for _ in range(10):
            a @ b
        start = time.perf_counter()
        for _ in range(200):
            a @ b
        rates[name] = 200 * 2 * m * k * n / (time.perf_counter() - start) / 1e9
    return rates


def hand_written_step_gflops(batch: int = 100, steps: int = 200) -> float:
    """GFLOP/s of the wide MLP's training step written out by hand on one fixed batch: no autograd, no
    batch gather, every buffer allocated once and written in place, the same fused Adam. No general
    training loop can beat this, so it shows how much of the gap to the matmul peak is the loop's and how
    much is the step's own arithmetic and memory traffic. Its gradients are checked against autograd's
    before it is timed."""
    torch.manual_seed(0)
    model = build_model(ModelConfig("mlp", (500,)))
    first, second = model[1], model[3]
    assert isinstance(first, nn.Linear) and isinstance(second, nn.Linear)
    params = list(model.parameters())  # first.weight, first.bias, second.weight, second.bias
    x, y = torch.rand(batch, 1, 28, 28), torch.randint(0, 10, (batch,))
    nn.functional.cross_entropy(model(x), y).backward()
    expected = [p.grad for p in params]

    pixels, rows = x.flatten(1), torch.arange(batch)
    hidden, logits, d_hidden = torch.empty(batch, 500), torch.empty(batch, 10), torch.empty(batch, 500)
    g_w1, g_b1, g_w2, g_b2 = grads = [torch.empty_like(p) for p in params]

    def gradients_by_hand() -> None:
        with torch.no_grad():
            torch.addmm(first.bias, pixels, first.weight.t(), out=hidden).relu_()
            torch.addmm(second.bias, hidden, second.weight.t(), out=logits)
            d_logits = logits.softmax(dim=1)
            d_logits[rows, y] -= 1
            d_logits /= batch  # ∂(mean cross-entropy)/∂logits = (softmax − one-hot) / batch
            torch.mm(d_logits.t(), hidden, out=g_w2)
            torch.sum(d_logits, dim=0, out=g_b2)
            torch.mm(d_logits, second.weight, out=d_hidden).mul_(hidden > 0)
            torch.mm(d_hidden.t(), pixels, out=g_w1)
            torch.sum(d_hidden, dim=0, out=g_b1)

    gradients_by_hand()
    for param, got, want in zip(params, grads, expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)
        param.grad = got  # the optimizer reads the buffers the step writes
    optimizer = torch.optim.Adam(params, lr=1e-3, fused=True)
    for _ in range(20):
        gradients_by_hand()
        optimizer.step()
    start = time.perf_counter()
    for _ in range(steps):
        gradients_by_hand()
        optimizer.step()
    seconds = time.perf_counter() - start
    return steps * batch * train_flops_per_sample(model) / seconds / 1e9


def train_flops_per_sample(model: nn.Module, batch: int = 64) -> float:
    """Forward + backward FLOPs of one training sample, counted by torch's own FlopCounterMode."""
    x = torch.randn(batch, 1, 28, 28)
    counter = FlopCounterMode(display=False)
    with counter:
        loss = nn.functional.cross_entropy(model(x), torch.zeros(batch, dtype=torch.long))
        loss.backward()
    return counter.get_total_flops() / batch


def torchvision_root(data_dir: Path) -> Path:
    """A temporary ``MNIST/raw`` with unpacked files: the layout torchvision's MNIST class reads."""
    files = find_mnist_files(data_dir)
    if files is None:
        raise SystemExit(f"{data_dir}: no MNIST files; set --data-dir or $DIGITNET_DATA")
    root = Path(tempfile.mkdtemp(prefix="digitnet-bench-"))
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for path in files.values():
        target = raw / path.name.removesuffix(".gz")
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as source, target.open("wb") as sink:
            shutil.copyfileobj(source, sink)
    return root


def reference_throughput(case: Case, root: Path, samples: int, seed: int) -> tuple[float, float]:
    """(train, eval) samples/s of the tutorials' loop on ``samples`` training samples."""
    from torchvision import datasets, transforms

    steps = [transforms.ToTensor()]
    if case.model.name == "cnn":
        steps.append(transforms.Normalize((0.1307,), (0.3081,)))
    transform = transforms.Compose(steps)
    train_set = datasets.MNIST(str(root), train=True, download=False, transform=transform)
    test_set = datasets.MNIST(str(root), train=False, download=False, transform=transform)
    torch.manual_seed(seed)
    model = build_model(case.model)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = torch.utils.data.DataLoader(train_set, batch_size=case.batch_size, shuffle=True)
    model.train()
    seen = 0
    start = time.perf_counter()
    for x, y in loader:
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        seen += len(y)
        if seen >= samples:
            break
    train_rate = seen / (time.perf_counter() - start)
    model.eval()
    eval_seen = 0
    start = time.perf_counter()
    with torch.no_grad():
        for x, y in torch.utils.data.DataLoader(test_set, batch_size=1000):
            model(x).argmax(1).eq(y).sum().item()
            eval_seen += len(y)
            if eval_seen >= min(samples, len(test_set)):
                break
    return train_rate, eval_seen / (time.perf_counter() - start)


def digitnet_throughput(case: Case, tensors: TensorSplit, samples: int, seed: int) -> tuple[float, float]:
    """(train, eval) samples/s of digitnet's trainer on the first ``samples`` training digits."""
    subset = tensors.head(samples, 1000)
    generator = seed_everything(seed)
    model = build_model(case.model)
    optimizer = build_optimizer(model.parameters(), OptimConfig("adam", lr=1e-3))
    history = fit(
        model, optimizer, subset, TrainConfig(epochs=1, batch_size=case.batch_size, seed=seed), generator
    )
    train_rate = history.epochs[0].samples_per_second
    n_eval = min(samples, len(tensors.test_y))
    evaluate(model, tensors.test_x[:n_eval], tensors.test_y[:n_eval])  # warm-up
    start = time.perf_counter()
    evaluate(model, tensors.test_x[:n_eval], tensors.test_y[:n_eval])
    return train_rate, n_eval / (time.perf_counter() - start)


def best_of(repeats: int, measure: Callable[[], tuple[float, float]]) -> tuple[float, float]:
    """The best of ``repeats`` measurements: the least disturbed by whatever else the machine does."""
    results = [measure() for _ in range(repeats)]
    return max(r[0] for r in results), max(r[1] for r in results)


# What the ``digitnet`` command runs (``main``; the code at an --against revision older than it: ``app``).
CONSOLE_SCRIPT = "import digitnet.cli as cli; getattr(cli, 'main', cli.app)()"


def compare_wall_time(data_dir: Path) -> float:
    """Seconds for ``digitnet compare lr --epochs 3`` (default values and seeds) in a fresh directory."""
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-c",
                CONSOLE_SCRIPT,
                "compare",
                "lr",
                "--epochs",
                "3",
                "--dataset",
                "mnist",
                "--data-dir",
                str(data_dir),
                "--out",
                out,
            ],
            check=True,
            capture_output=True,
        )
        return time.perf_counter() - start


# The busy-machine case's arms: the thread count torch picks by itself (one per core); one thread, whose
# idle time is the pace of a run that has one core to itself (the best a run beside a busy process can
# hope for on 2 cores); and digitnet's default, which leaves the cores other programs keep busy to them
# (digitnet.runtime.choose_threads).
ARMS = {
    f"one thread per core (--threads {os.cpu_count()})": ["--threads", str(os.cpu_count())],
    "one thread (--threads 1)": ["--threads", "1"],
    "digitnet's default (threads chosen by load)": [],
}


def train_process_seconds(arm: list[str], data_dir: Path, busy: bool) -> tuple[float, int]:
    """Wall seconds of one ``digitnet train --preset fast`` process on full MNIST, alone or beside one
    single-threaded busy process (a stand-in for a browser tab or a second training), and the thread
    count it trained with."""
    neighbour = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
    try:
        process = fast_process(data_dir, arm)
        return float(process["wall"]), int(process["threads"])
    finally:
        if neighbour is not None:
            neighbour.kill()
            neighbour.wait()


def busy_machine(data_dir: Path, repeats: int) -> list[dict[str, object]]:
    """Process times of ``--preset fast`` idle and beside one busy process, for each arm. The arms and
    the two conditions take turns within each repeat, so a drift in the machine's speed reaches them all
    alike; and the arms' order rotates from one repeat to the next, so no arm always runs in the same
    place (first, or just after a busy run), which on this machine can be a few percent faster or slower."""
    measured: dict[str, dict[str, list[float]]] = {name: {} for name in ARMS}
    names = list(ARMS)
    for repeat in range(repeats):
        for name in names[repeat % len(names) :] + names[: repeat % len(names)]:
            arm = ARMS[name]
            for condition in ("idle", "busy"):
                seconds, threads = train_process_seconds(arm, data_dir, busy=condition == "busy")
                measured[name].setdefault(f"{condition}_seconds", []).append(seconds)
                measured[name].setdefault(f"{condition}_threads", []).append(threads)
    rows: list[dict[str, object]] = []
    for name, times in measured.items():
        idle, busy = times["idle_seconds"], times["busy_seconds"]
        rows.append({"arm": name, **times})
        print(
            f"{name}: idle {' / '.join(f'{t:.1f}' for t in idle)} s · beside one busy process "
            f"{' / '.join(f'{t:.1f}' for t in busy)} s · busy/idle (medians) "
            f"{statistics.median(busy) / statistics.median(idle):.2f}",
            flush=True,
        )
    return rows


def busy_markdown(rows: list[dict[str, object]]) -> str:
    """The busy-machine case as a markdown table for the docs: medians, every run listed."""

    def median(values: object) -> float:
        assert isinstance(values, list)
        return float(sorted(values)[len(values) // 2])

    def runs(values: object) -> str:
        assert isinstance(values, list)
        return " / ".join(f"{v:.1f}" for v in values)

    lines = [
        "`digitnet train --preset fast` on full MNIST, whole processes, 2 cores; busy = beside one "
        "single-threaded process that never sleeps.",
        "",
        "| threads | idle (s) | beside a busy process (s) | busy / idle (medians) |",
        "|---|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['arm']} | {runs(row['idle_seconds'])} | {runs(row['busy_seconds'])} | "
            f"{median(row['busy_seconds']) / median(row['idle_seconds']):.2f} |"
        )
    per_core, one, ours = rows[0], rows[1], rows[-1]
    cost = median(ours["idle_seconds"]) / median(per_core["idle_seconds"]) - 1
    floor = median(one["idle_seconds"]) / median(per_core["idle_seconds"])
    slowed = median(one["busy_seconds"]) / median(one["idle_seconds"])
    against_one = median(ours["busy_seconds"]) / median(one["busy_seconds"])
    lines += [
        "",
        f"- Idle cost of digitnet's default against one thread per core: {100 * cost:+.1f}% (medians).",
        f"- One core's pace: one thread on the idle machine takes {floor:.2f}× the time of one thread per "
        "core (medians), the least a run that is left one core can take.",
        f"- Beside the busy process, one thread takes {slowed:.2f}× its own idle time, and digitnet's "
        f"default {against_one:.2f}× one thread's time there (medians).",
        "- Threads digitnet's default trained with: idle "
        + " / ".join(f"{t:.0f}" for t in cast(list[float], ours["idle_threads"]))
        + ", beside the busy process "
        + " / ".join(f"{t:.0f}" for t in cast(list[float], ours["busy_threads"]))
        + ".",
    ]
    return "\n".join(lines) + "\n"


def choice_of_threads_seconds(calls: int = 200) -> tuple[float, float, int]:
    """What digitnet's choice of threads costs, timed in this process: the reading of the CPU counters
    that every command takes when it starts (``cpuload.read``), and ``choose_threads``, which a run with
    no ``--threads`` calls to read them again and compare. Medians of ``calls`` timings each, in seconds,
    and the count chosen.

    ``choose_threads`` is given a start-up reading one second old, so it takes the path a ``train``
    process takes (the window since start-up, no sampling pause of its own)."""
    from digitnet import cpuload, runtime

    def median_seconds(call: Callable[[], object]) -> float:
        times = []
        for _ in range(calls):
            start = time.perf_counter()
            call()
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    read = median_seconds(cpuload.read)
    cpuload.START = cpuload.read()
    time.sleep(1.0)
    choose = median_seconds(runtime.choose_threads)
    return read, choose, runtime.choose_threads()[0]


def idle_cost(data_dir: Path, pairs: int) -> str:
    """The idle cost of letting digitnet choose the threads, two ways, as markdown for the docs.

    Directly: the work the default adds (``choose_threads``, timed by ``choice_of_threads_seconds``) as a
    share of an idle process.
    As whole processes: ``pairs`` pairs of idle ``--preset fast`` processes, the default and ``--threads``
    one per core, back to back in alternating order so that a drift in the machine's speed reaches both
    alike; the mean of the pairs' log ratios and its 95% t-interval (scipy.stats)."""
    from scipy import stats

    cores = os.cpu_count() or 1
    read, choose, chosen = choice_of_threads_seconds()
    default: list[float] = []
    per_core: list[float] = []
    default_threads: list[int] = []
    for pair in range(pairs):
        arms = [[], ["--threads", str(cores)]]
        for arm in arms if pair % 2 == 0 else arms[::-1]:
            seconds, threads = train_process_seconds(arm, data_dir, busy=False)
            (per_core if arm else default).append(seconds)
            if not arm:
                default_threads.append(threads)
        print(
            f"pair {pair + 1}/{pairs}: default {default[-1]:.1f} s, --threads {cores} {per_core[-1]:.1f} s",
            flush=True,
        )
    logs = [math.log(d / p) for d, p in zip(default, per_core, strict=True)]
    mean = statistics.fmean(logs)
    half = (
        stats.t.ppf(0.975, pairs - 1) * statistics.stdev(logs) / math.sqrt(pairs) if pairs > 1 else math.nan
    )
    lo, hi = mean - half, mean + half
    idle = statistics.median(default)
    lines = [
        f"`digitnet train --preset fast` on full MNIST, idle machine, {cores} cores: digitnet's default "
        f"(threads chosen by load) against `--threads {cores}`, {pairs} pairs of whole processes, each pair "
        "back to back in alternating order.",
        "",
        "| pair | default (s) | " + f"--threads {cores} (s) | default / --threads {cores} |",
        "|---:|---:|---:|---:|",
        *(
            f"| {i} | {d:.1f} | {p:.1f} | {d / p:.3f} |"
            for i, (d, p) in enumerate(zip(default, per_core, strict=True), start=1)
        ),
        "",
        "- Threads the default trained with: "
        + " / ".join(str(t) for t in default_threads)
        + f" (this process's `choose_threads` chose {chosen}).",
        f"- What the default adds to a run: choosing the threads, {1e3 * choose:.3f} ms (median of 200 "
        f"timings), {100 * choose / idle:.4f}% of the default's median idle process ({idle:.1f} s); the "
        f"reading of the CPU counters it compares with ({1e3 * read:.3f} ms) is taken when any command "
        "starts, `--threads` or not.",
        f"- Whole processes: the default's time against `--threads {cores}`'s, geometric mean of the "
        f"pairs' ratios: {100 * (math.exp(mean) - 1):+.1f}%, 95% interval {100 * (math.exp(lo) - 1):+.1f}% "
        f"to {100 * (math.exp(hi) - 1):+.1f}%.",
    ]
    return "\n".join(lines) + "\n"


# The imports a `fast` process pays for, by module: "-X importtime" reports each one's cumulative time.
IMPORTS = {
    "torch": "… importing torch",
    "torch._dynamo": "… torch.optim importing torch's compiler stack",
    "matplotlib.pyplot": "… importing matplotlib (the run's figures)",
    "matplotlib.figure": "… importing matplotlib (the run's figures)",
    "sklearn": "… importing scikit-learn (only before a split is cached)",
}


def _import_seconds(stderr: str) -> dict[str, float]:
    """Cumulative import time of each module in IMPORTS from ``-X importtime`` output (microseconds)."""
    found: dict[str, float] = {}
    for line in stderr.splitlines():
        if not line.startswith("import time:"):
            continue
        parts = [part.strip() for part in line[len("import time:") :].split("|")]
        if len(parts) == 3 and parts[1].isdigit() and parts[2] in IMPORTS:
            label = IMPORTS[parts[2]]
            found[label] = max(found.get(label, 0.0), int(parts[1]) / 1e6)
    return found


def fast_process(
    data_dir: Path,
    options: list[str],
    importtime: bool = False,
    code: Path | None = None,
    preset: str = "fast",
    before: str = "",
    extra: tuple[str, ...] = (),
) -> dict[str, Any]:
    """One whole ``digitnet train --preset PRESET [options]`` process on full MNIST: its wall time, its
    ``history.json`` and ``summary.json``, and (with ``importtime``) its ``-X importtime`` report.
    ``code``: a checkout whose ``digitnet`` package runs instead of this one (put first on PYTHONPATH);
    ``before``: Python statements the process runs before the command (``--denormals`` turns one off);
    ``extra``: options added after ``options`` (one side of a ``paired_runs`` comparison).
    The environment's OpenMP settings are left out, so the process picks its threads as digitnet does
    for a student who set none."""
    with tempfile.TemporaryDirectory() as out:
        flags = ["-X", "importtime"] if importtime else []
        command = [sys.executable, *flags, "-c", before + CONSOLE_SCRIPT, "train"]
        # resolved: the process runs in the scratch folder, where a relative --data-dir means nothing
        data = str(data_dir.resolve())
        command += ["--preset", preset, *options, *extra, "--data-dir", data, "--out", f"{out}/run"]
        start = time.perf_counter()
        env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
        env |= {"PYTHONPATH": str(code)} if code else {}
        # run from the scratch folder: "python -c" puts the working directory first on sys.path, where a
        # checkout's own digitnet would shadow ``code``
        done = subprocess.run(command, check=False, capture_output=True, text=True, env=env, cwd=out)
        if done.returncode != 0:
            raise SystemExit(f"benchmark: {' '.join(command[3:])} failed:\n{done.stderr[-2000:]}")
        wall = time.perf_counter() - start
        history = json.loads((Path(out) / "run" / "history.json").read_text())
        summary = json.loads((Path(out) / "run" / "summary.json").read_text())
        threads = json.loads((Path(out) / "run" / "config.json").read_text())["environment"].get("threads")
    return {"wall": wall, "history": history, "summary": summary, "threads": threads, "stderr": done.stderr}


def startup_run(data_dir: Path, importtime: bool) -> dict[str, float]:
    """One ``digitnet train --preset fast`` process: wall time, and from its history the training epochs,
    the per-epoch validation and the test set; with ``importtime``, also what each large import cost."""
    process = fast_process(data_dir, [], importtime)
    history, wall = process["history"], process["wall"]
    train = sum(e["train_seconds"] for e in history["epochs"])
    validation = sum(e["eval_seconds"] for e in history["epochs"])
    test = history["test_seconds"]
    row = {
        "threads": process["threads"],
        "the whole process": wall,
        "training epochs": train,
        "validation after each epoch": validation,
        "the test set, measured once at the end": test,
        "everything else (start-up, data, writing the run)": wall - train - validation - test,
    }
    if importtime:
        row |= _import_seconds(process["stderr"])
    return row


def one_factor_comparison(data_dir: Path, seeds: int, preset: str, setting: str, values: list[str]) -> str:
    """``--preset PRESET`` with ``--SETTING`` at each of two ``values``, one factor changed, seeds
    0..seeds-1 (the two values alternate, so both see the machine at the same moments): training time,
    whole process and accuracy, and the paired t interval of each difference. Returned as markdown."""
    from scipy import stats

    first, second = values
    measured: dict[str, list[dict[str, float]]] = {first: [], second: []}
    for seed in range(seeds):
        for value, runs in measured.items():
            # threads pinned: the count digitnet picks by load could differ between the two arms
            options = ["--seed", str(seed), f"--{setting}", value, "--threads", str(os.cpu_count())]
            process = fast_process(data_dir, options, preset=preset)
            epochs = process["history"]["epochs"]
            runs.append(
                {
                    "train": sum(e["train_seconds"] for e in epochs),
                    "wall": process["wall"],
                    "val": 100 * process["summary"]["val_accuracy"],
                    "test": 100 * process["summary"]["test_accuracy"],
                }
            )
            print(f"seed {seed} {value}: {runs[-1]}", flush=True)

    def column(value: str, name: str) -> list[float]:
        return [run[name] for run in measured[value]]

    lines = [
        f"`digitnet train --preset {preset} --{setting} V --seed S --threads {os.cpu_count()}` on full "
        f"MNIST, seeds 0–{seeds - 1}, whole processes, idle, each seed at both values one after the "
        f"other; mean ± std, and the 95% interval of the mean paired difference {second} − {first} "
        "(Student's t over the seeds: pairing takes out both the seed and the machine's drift between "
        "pairs).",
        "",
        f"| measure | {first} | {second} | {second} − {first} (95% interval) |",
        "|---|---:|---:|---:|",
    ]
    names = {"train": "training epochs (s)", "wall": "whole process (s)"}
    names |= {"val": "validation accuracy (%)", "test": "test accuracy (%)"}
    for name, label in names.items():
        a, b = column(first, name), column(second, name)
        low, high = stats.ttest_rel(b, a).confidence_interval(0.95)
        lines.append(
            f"| {label} | {statistics.mean(a):.2f} ± {statistics.stdev(a):.2f} | "
            f"{statistics.mean(b):.2f} ± {statistics.stdev(b):.2f} | {low:+.2f} to {high:+.2f} |"
        )
    for name, label in (("train", "Training epochs"), ("wall", "Whole processes")):
        ratio = statistics.median(column(first, name)) / statistics.median(column(second, name))
        lines += ["", f"{label} at {second} take 1/{ratio:.2f} of their time at {first} (medians)."]
    return "\n".join(lines) + "\n"


def report_cost(docs_dir: Path) -> str:
    """What each experiment of ``digitnet report`` costs to train from scratch, as markdown: the runs it
    plans (``digitnet.report.experiments``, full MNIST) priced by the mean training seconds per run in its
    published ``results.csv``. Experiments share cells (``dropout`` is a row of ``lr-dropout``): the report
    trains a shared run once, so the last column counts each run only where it first appears. Single-thread
    training seconds; a sweep runs ``--jobs`` of them at once."""
    import csv

    from digitnet.report import experiments
    from digitnet.sweep.plan import plan_sweep, run_configs

    seen: set[str] = set()
    lines = [
        "Training seconds of the runs `digitnet report --data-dir <mnist>` plans, each priced at the mean "
        "training time per run its `results.csv` records (one thread per run, as the report trains them): "
        "their CPU time, which does not depend on what ran beside them (the clock's where a table has "
        "none); *new* counts only the runs no earlier experiment already trained.",
        "",
        "| experiment | runs | training (s) | new runs | new training (s) |",
        "|---|---:|---:|---:|---:|",
    ]
    totals = [0, 0.0, 0, 0.0]
    for experiment in experiments(quick=False, data_dir=None):
        table = docs_dir / "results" / experiment.name / "results.csv"
        if not table.exists():
            continue
        with table.open() as handle:
            per_run = {row["value"]: _training_seconds(row) for row in csv.DictReader(handle)}
        runs = [
            (cell.label, config.key())
            for cell, _, config in run_configs(experiment.spec, plan_sweep(experiment.spec))
        ]
        new = [(label, key) for label, key in runs if key not in seen]
        seen.update(key for _, key in runs)
        row = [
            len(runs),
            sum(per_run[label] for label, _ in runs),
            len(new),
            sum(per_run[label] for label, _ in new),
        ]
        totals = [a + b for a, b in zip(totals, row, strict=True)]
        lines.append(f"| {experiment.name} | {row[0]} | {row[1]:.0f} | {row[2]} | {row[3]:.0f} |")
    lines.append(f"| **all** | {totals[0]} | {totals[1]:.0f} | {totals[2]} | **{totals[3]:.0f}** |")
    lines += [
        "",
        f"Training the report's {totals[2]} distinct runs takes {totals[3] / 60:.0f} minutes of one core, "
        f"so about {totals[3] / 120:.0f} minutes of wall time on 2 cores (`--jobs 2`), before the Inside "
        "page's views, the range test and writing the figures.",
    ]
    return "\n".join(lines) + "\n"


def _training_seconds(row: dict[str, str]) -> float:
    """A ``results.csv`` row's mean training time per run: its CPU time, else (older tables, runs on
    several threads) the clock's."""
    cpu = row.get("train_cpu_seconds_mean", "")
    return float(cpu) if cpu not in ("", "nan") else float(row["train_seconds_mean"])


def report_wall(data_dir: Path, keep: Path | None) -> str:
    """Run ``digitnet report`` on full MNIST from an empty cache (2 cores: 2 workers, its default), time it
    with nothing else running, and describe its timeline (see ``report_timeline``)."""
    root = keep or Path(tempfile.mkdtemp(prefix="digitnet-report-"))
    docs, cache = root / "docs", root / "runs"
    docs.mkdir(parents=True)
    command = [sys.executable, "-c", CONSOLE_SCRIPT, "report", "--data-dir", str(data_dir)]
    command += ["--docs-dir", str(docs), "--cache-dir", str(cache)]
    started = time.time()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ended = time.time()
    (cache / "wall.json").write_text(json.dumps({"started": started, "ended": ended}))
    try:
        return report_timeline(cache)
    finally:
        if keep is None:
            shutil.rmtree(root, ignore_errors=True)


def report_timeline(cache: Path) -> str:
    """Where a report's wall time went, from its cache: a run's ``summary.json`` is written when its training
    and evaluation end and records how long they took, and its figures are the last files written, so the
    runs' intervals show how many were in progress at each moment between the report's start and end
    (``wall.json``: Unix times)."""
    try:
        stamps = json.loads((cache / "wall.json").read_text())
        started, ended = float(stamps["started"]), float(stamps["ended"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise SystemExit(
            f"benchmark: {cache / 'wall.json'}: {error!r}; write the report's start and end there as "
            '{"started": <Unix time>, "ended": <Unix time>} (--report-wall does)'
        ) from None
    summaries = sorted((cache / "runs").glob("*/summary.json"))
    if not summaries:
        raise SystemExit(f"benchmark: {cache}: no runs/*/summary.json; pass the report's --cache-dir")
    intervals = []
    training = 0.0
    cpu: list[float | None] = []  # the same epochs' CPU time: what they took less their waits for a core
    for summary in summaries:
        recorded = json.loads(summary.read_text())
        seconds = float(recorded["total_seconds"])
        training += float(recorded["train_seconds"])
        # a run that finished no epoch (diverged in its first) recorded neither time: 0 s of each
        cpu.append(recorded.get("train_cpu_seconds") if recorded.get("epochs_completed", 1) else 0.0)
        last_file = max(path.stat().st_mtime for path in summary.parent.iterdir())
        intervals.append((summary.stat().st_mtime - seconds, last_file))
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    busy = [0.0, 0.0, 0.0]  # seconds with 0, 1, 2 or more runs training
    running, last = 0, started
    for moment, change in events:
        moment = min(max(moment, started), ended)
        busy[min(running, 2)] += moment - last
        running, last = running + change, moment
    busy[min(running, 2)] += ended - last
    wall = ended - started
    lines = [
        f"{len(intervals)} runs, {wall:.0f} s ({wall / 60:.1f} min) wall; the runs (training, evaluation, "
        f"figures) add up to {sum(end - start for start, end in intervals):.0f} s, of which {training:.0f} s "
        "in training epochs (the runs' own records)"
        + (
            f", {sum(c for c in cpu if c is not None):.0f} s of them on a core (their CPU time)."
            if None not in cpu
            else "."
        ),
        "",
        "| runs training at once | seconds of the report |",
        "|---|---:|",
        f"| none (start-up, figures, the Inside page's views) | {busy[0]:.0f} |",
        f"| one (one core idle, unless drawing) | {busy[1]:.0f} |",
        f"| two or more | {busy[2]:.0f} |",
    ]
    return "\n".join(lines) + "\n"


def bare_torch_import() -> float:
    """Seconds ``import torch`` takes in a fresh Python that does nothing else: the yardstick of how fast
    this (shared, drifting) machine is today, to set start-up tables from different days side by side."""
    code = "import time; t = time.perf_counter(); import torch; print(time.perf_counter() - t)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(done.stdout)


def startup_breakdown(data_dir: Path, repeats: int) -> str:
    """Where a ``fast`` process's time goes, as markdown: medians of ``repeats`` plain processes, and
    the large imports from one more process run with ``-X importtime`` (which slows it slightly)."""
    startup_run(data_dir, importtime=False)  # warm the file cache and the split cache first
    runs = [startup_run(data_dir, importtime=False) for _ in range(repeats)]
    imports = startup_run(data_dir, importtime=True)
    bare = statistics.median(bare_torch_import() for _ in range(repeats))
    walls = " / ".join(f"{r['the whole process']:.2f}" for r in runs)
    threads = " / ".join(str(int(r.pop("threads"))) for r in runs)
    one = sum(name.startswith("…") for name in imports) == 1
    parts = "the row starting … is part" if one else "the rows starting … are parts"
    lines = [
        f"`digitnet train --preset fast` on full MNIST, whole processes, {os.cpu_count()} cores, idle; "
        f"medians of {repeats} processes (their wall times: {walls} s; threads digitnet chose: {threads}); "
        f"{parts} of everything else, from one more process run with "
        f"`python -X importtime`. For comparing days: `import torch` alone, in a Python doing nothing else, "
        f"took {bare:.2f} s (median of {repeats}).",
        "",
        "| part of the process | seconds |",
        "|---|---:|",
    ]
    for name in runs[0]:
        values = sorted(r[name] for r in runs)
        lines.append(f"| {name} | {values[len(values) // 2]:.2f} |")
    for name, seconds in imports.items():
        if name.startswith("…"):
            lines.append(f"| {name} | {seconds:.2f} |")
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def checkout_at(revision: str) -> Iterator[Path]:
    """A temporary git worktree of this repository at ``revision``, removed afterwards: its ``digitnet``
    package runs in place of this one when the folder is put first on PYTHONPATH (``fast_process``)."""
    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as scratch:
        before = Path(scratch) / "before"
        subprocess.run(
            ["git", "-C", str(root), "worktree", "add", "-q", "--detach", str(before), revision], check=True
        )
        try:
            yield before
        finally:
            subprocess.run(["git", "-C", str(root), "worktree", "remove", "--force", str(before)], check=True)


def startup_against(data_dir: Path, repeats: int, revision: str) -> str:
    """The start-up of the same ``fast`` recipe with the code at ``revision`` and with this checkout, as
    markdown: processes alternate (so both see the machine at the same moments), float32 and
    ``--threads`` pinned on both sides (the recipe and thread count as ``revision`` ran them), medians of
    ``repeats`` each. "Outside training" is the process less its training epochs and validation."""
    with checkout_at(revision) as before:
        threads = ["--threads", str(os.cpu_count())]
        sides = {f"`{revision}`": (before, threads), "now": (None, [*threads, "--precision", "float32"])}
        measured: dict[str, list[tuple[float, float]]] = {name: [] for name in sides}
        fast_process(data_dir, sides["now"][1])  # warm the file and split caches
        for _ in range(repeats):
            for name, (code, options) in sides.items():
                process = fast_process(data_dir, options, code=code)
                epochs = process["history"]["epochs"]
                inside = sum(e["train_seconds"] + e["eval_seconds"] for e in epochs)
                measured[name].append((process["wall"], process["wall"] - inside))
                print(
                    f"{name}: whole {process['wall']:.2f} s, outside training {measured[name][-1][1]:.2f} s",
                    flush=True,
                )
    lines = [
        f"`digitnet train --preset fast --precision float32 --threads {os.cpu_count()}` on full MNIST "
        "(the precision and threads spelled out, so both sides run alike), whole processes, "
        f"the code at {' and '.join(sides)} alternating; "
        f"medians of {repeats} each (`python scripts/benchmark.py --startup --against {revision}`).",
        "",
        "| code | whole process (s) | outside training and validation (s) |",
        "|---|---:|---:|",
    ]
    for name, rows in measured.items():
        lines.append(
            f"| {name} | {statistics.median(r[0] for r in rows):.2f} | "
            f"{statistics.median(r[1] for r in rows):.2f} |"
        )
    # Each "now" process against the one just before it: torch's import alone drifts by tenths of a second
    # between minutes, and the pairs take most of that drift out of the difference.
    before_rows, now_rows = measured.values()
    lines.append("")
    for column, title in ((0, "whole process"), (1, "outside training and validation")):
        differences = sorted(
            now[column] - before[column] for before, now in zip(before_rows, now_rows, strict=True)
        )
        low, median, high = (
            f"{d:+.2f}".replace("-", "−")
            for d in (differences[0], statistics.median(differences), differences[-1])
        )
        lines.append(
            f"- {title}, now − `{revision}`, paired by repeat: median {median} s (from {low} to {high})."
        )
    return "\n".join(lines) + "\n"


def run_numbers(history: dict[str, Any]) -> str:
    """What a run computed, as one string two runs share only if they are the same to the last digit:
    every step's loss and every epoch's losses and accuracies (a run's ``history.json``)."""
    keys = ("train_loss", "train_accuracy", "val_loss", "val_accuracy")
    return json.dumps([history["iteration_loss"], [[e[k] for k in keys] for e in history["epochs"]]])


def paired_runs(
    data_dir: Path, cases: dict[str, list[str]], sides: dict[str, dict[str, Any]], repeats: int
) -> list[str]:
    """Markdown rows ``| case | first side (s) | second (s) | second ÷ first | same run |`` for
    ``digitnet train --preset baseline FLAGS`` processes on full MNIST, each case's two sides (keyword
    arguments for ``fast_process``: another checkout, statements run first) alternating, ``repeats``
    times; medians of the training epochs' seconds, and whether every process of a case computed the same
    run (``run_numbers``)."""
    seconds: dict[tuple[str, str], list[float]] = {}
    results: dict[str, set[str]] = {}
    for _ in range(repeats):
        for case, flags in cases.items():
            for side, how in sides.items():
                history = fast_process(data_dir, flags, preset="baseline", **how)["history"]
                seconds.setdefault((case, side), []).append(
                    sum(e["train_seconds"] for e in history["epochs"])
                )
                results.setdefault(case, set()).add(run_numbers(history))
                print(f"{case}, {side}: training {seconds[case, side][-1]:.2f} s", flush=True)
    rows = []
    for case in cases:
        first, second = (statistics.median(seconds[case, side]) for side in sides)
        same = "yes" if len(results[case]) == 1 else "no"
        rows.append(f"| {case} | {first:.2f} | {second:.2f} | {second / first:.2f} | {same} |")
    return rows


def paired_table(caption: str, first: str, second: str, ratio: str, rows: list[str]) -> list[str]:
    """The lines of a ``paired_runs`` table under its ``caption``: one column per side (``first``,
    ``second``), their ``ratio``, and whether each case computed the same run."""
    return [
        caption,
        "",
        f"| run | {first} | {second} | {ratio} | the same run, to the last digit |",
        "|---|---:|---:|---:|---|",
        *rows,
    ]


def code_against(
    data_dir: Path, repeats: int, revision: str, cases: dict[str, list[str]], command: str, flag: str
) -> str:
    """``cases`` (``digitnet train --preset baseline`` flags each) with the code at ``revision`` and with
    this checkout, as markdown: processes alternate (``paired_runs``), medians of ``repeats``; the
    table's first line shows ``command`` as the student types it and ``flag`` as this script's option."""
    with checkout_at(revision) as before:
        fast_process(
            data_dir, next(iter(cases.values())), preset="baseline"
        )  # warm the file and split caches
        rows = paired_runs(data_dir, cases, {revision: {"code": before}, "now": {}}, repeats)
    caption = (
        f"`{command}` on full MNIST (the baseline MLP at batch 32 on one thread, as a `compare` or `report` "
        f"worker trains it), whole processes, the code at `{revision}` and now alternating; medians of "
        f"{repeats} each (`python scripts/benchmark.py {flag} {revision}`)."
    )
    first, ratio = f"`{revision}` training (s)", f"now ÷ `{revision}`"
    return "\n".join(paired_table(caption, first, "now (s)", ratio, rows)) + "\n"


def training_against(data_dir: Path, repeats: int, revision: str) -> str:
    """The report's typical run (the baseline MLP, batch 32, one thread, as a sweep's worker trains it;
    three epochs), SGD and Adam, with the code at ``revision`` and now (``code_against``); the same run
    means every step's loss equal, to the last digit (``run_numbers``)."""
    options = {name: ["--threads", "1", "--epochs", "3", "--optimizer", name] for name in ("sgd", "adam")}
    command = "digitnet train --preset baseline --threads 1 --epochs 3 --optimizer OPTIMIZER"
    return code_against(data_dir, repeats, revision, options, command, "--training-against")


DIAGNOSED = {
    f"{name}, 1 thread": ["--threads", "1", "--epochs", "3", "--optimizer", name] for name in ("sgd", "adam")
}
"""The runs ``--diagnostics`` times: the baseline MLP's first three epochs, as the report's health runs
train it (SGD) and with the optimizer the other pages use most (Adam)"""


def diagnostics_cost(data_dir: Path, repeats: int) -> str:
    """What ``--diagnostics`` costs, as markdown: the baseline MLP without and with the flag, processes
    alternating (``paired_runs``), medians of ``repeats`` of the training epochs' seconds, and whether
    both computed the same run (the hooks only read, so they must)."""
    fast_process(data_dir, DIAGNOSED["sgd, 1 thread"], preset="baseline")  # warm the file and split caches
    sides = {"without": {}, "with": {"extra": ("--diagnostics",)}}
    rows = paired_runs(data_dir, DIAGNOSED, sides, repeats)
    caption = (
        "`digitnet train --preset baseline --threads 1 --epochs 3 --optimizer OPTIMIZER [--diagnostics]` on "
        "full MNIST (the baseline MLP at batch 32 on one thread), whole processes, without and with the "
        f"flag alternating; medians of {repeats} each (`python scripts/benchmark.py --diagnostics`)."
    )
    columns = ("without: training (s)", "with `--diagnostics` (s)", "with ÷ without")
    return "\n".join(paired_table(caption, *columns, rows)) + "\n"


def diagnostics_against(data_dir: Path, repeats: int, revision: str) -> str:
    """``--diagnostics`` with the code at ``revision`` and now (``code_against``), for SGD and Adam as
    ``diagnostics_cost`` runs them, and SGD without the flag as the control, whose code did not change."""
    cases = {f"{case}, `--diagnostics`": [*flags, "--diagnostics"] for case, flags in DIAGNOSED.items()}
    cases |= {"sgd, 1 thread, without (the control)": DIAGNOSED["sgd, 1 thread"]}
    command = "digitnet train --preset baseline --threads 1 --epochs 3 --optimizer OPTIMIZER [--diagnostics]"
    return code_against(data_dir, repeats, revision, cases, command, "--diagnostics --against")


# Run before the command: digitnet trains as it did before it flushed denormals (its context manager,
# as run.py imported it, replaced by one that changes nothing).
KEEP_DENORMALS = (
    "import contextlib, digitnet.run; "
    "digitnet.run.flushing_denormals = lambda: contextlib.nullcontext(False); "
)


DENORMAL_PROBE = """
import statistics, sys, time, torch
torch.set_num_threads(1)
torch.set_flush_denormal(sys.argv[1] == "flushed")
out = torch.empty(200_000)
def per_call(value):
    numbers = torch.full((200_000,), value)
    times = []
    for _ in range(7):
        start = time.perf_counter()
        for _ in range(50):
            torch.mul(numbers, 0.9, out=out)
        times.append((time.perf_counter() - start) / 50)
    return statistics.median(times)
print(per_call(1e-39), per_call(1e-30))
"""


def denormal_multiply() -> dict[str, tuple[float, float]]:
    """Seconds to multiply 200,000 float32 numbers by 0.9 on one thread (median of 7 × 50 calls), for
    denormal numbers (1e-39) and ordinary ones (1e-30), with denormals kept and flushed: the slow path
    itself, apart from any training. A process each, so the setting is in force from its start."""
    found: dict[str, tuple[float, float]] = {}
    for side in ("kept", "flushed"):
        done = subprocess.run(
            [sys.executable, "-c", DENORMAL_PROBE, side], check=True, capture_output=True, text=True
        )
        denormal, ordinary = (float(word) for word in done.stdout.split())
        found[side] = (denormal, ordinary)
    return found


def denormals(data_dir: Path, repeats: int) -> str:
    """The report's typical runs (the baseline MLP, batch 32, ten epochs, one thread as a sweep's worker
    trains it; and one default two-thread ``digitnet train``) with denormal numbers flushed to zero, as
    digitnet trains, and kept, as the CPU does by default, as markdown: processes alternate, medians of
    ``repeats`` of the training epochs' seconds, and whether both computed the same run (every step's
    loss and every epoch's accuracies equal, to the last digit)."""
    cases = {
        f"{name}, 1 thread": ["--threads", "1", "--optimizer", name] for name in ("sgd", "adam", "rmsprop")
    } | {"adam, 2 threads": ["--threads", "2", "--optimizer", "adam"]}
    fast_process(data_dir, ["--epochs", "1"], preset="baseline")  # warm the file and split caches
    rows = paired_runs(data_dir, cases, {"kept": {"before": KEEP_DENORMALS}, "flushed": {}}, repeats)
    caption = (
        "`digitnet train --preset baseline --optimizer OPTIMIZER --threads N` on full MNIST (the baseline "
        "MLP at batch 32 for 10 epochs; one thread is how a `compare` or `report` worker trains it), whole "
        "processes, denormals kept (as before) and flushed (as digitnet trains now) alternating; medians of "
        f"{repeats} each (`python scripts/benchmark.py --denormals`)."
    )
    lines = paired_table(caption, "kept: training (s)", "flushed (s)", "flushed ÷ kept", rows)
    probe = denormal_multiply()
    (slow, ordinary), (flushed_slow, _) = probe["kept"], probe["flushed"]
    lines += [
        "",
        "The slow path itself: multiplying 200,000 float32 numbers by 0.9 on one thread (`torch.mul`, median "
        f"of 7 × 50 calls) takes {slow * 1e3:.3f} ms when they are denormal (1e-39) and {ordinary * 1e3:.3f} "
        f"ms when they are not (1e-30): {slow / ordinary:.0f} times as long. Flushed, the denormals take "
        f"{flushed_slow * 1e3:.3f} ms.",
    ]
    return "\n".join(lines) + "\n"


def preset_against(data_dir: Path, preset: str, revision: str) -> str:
    """One ``digitnet train --preset PRESET`` process (seed 0) with the code at ``revision`` and one with
    this checkout, on this machine now, as markdown: each one's wall time and test accuracy, and whether
    they computed the same run. When a published figure of ``revision``'s day differs from today's, this
    says whether the code or the machine made the difference: the same run at about the same speed here
    means the machine."""
    rows: list[tuple[str, dict[str, Any]]] = []
    with checkout_at(revision) as before:
        for side, code in ((f"`{revision}`", before), ("now", None)):
            process = fast_process(data_dir, ["--seed", "0"], code=code, preset=preset)
            rows.append((side, process))
            print(f"{side}: {process['wall']:.1f} s", flush=True)
    same = len({run_numbers(process["history"]) for _, process in rows}) == 1
    lines = [
        f"`digitnet train --preset {preset} --seed 0` on full MNIST, one whole process with the code at "
        f"`{revision}` and one with this checkout, one after the other on this machine "
        f"(`python scripts/benchmark.py --preset-against {revision} --preset {preset}`).",
        "",
        "| code | whole process (s) | test accuracy (%) |",
        "|---|---:|---:|",
    ]
    for side, process in rows:
        accuracy = 100 * float(process["history"]["test_accuracy"])
        lines.append(f"| {side} | {process['wall']:.1f} | {accuracy:.2f} |")
    lines += ["", f"The same run, to the last digit of every step's loss: {'yes' if same else 'no'}."]
    return "\n".join(lines) + "\n"


def markdown_table(report: dict[str, object], samples: int, repeats: int) -> str:
    """The benchmark as a markdown table for the docs."""
    cases = report["cases"]
    assert isinstance(cases, list)
    lines = [
        f"torch {report['torch']}, {report['threads']} threads, float32 matmul peak "
        f"{report['matmul_peak_gflops']:.1f} GFLOP/s; {samples:,} training samples per case, "
        f"best of {repeats}.",
        "",
        "| case | batch | tutorial loop (samples/s) | digitnet (samples/s) | ratio |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in cases:
        lines.append(
            f"| {r['case']} | {r['batch_size']} | {r['reference_samples_per_s']:,.0f} | "
            f"{r['digitnet_samples_per_s']:,.0f} | {r['ratio']:.1f}× |"
        )
    # The arithmetic rate and evaluation speed in a second table, so neither is wider than a page.
    lines += [
        "",
        "| case | GFLOP/s | % of matmul peak | evaluation, tutorial loop (samples/s) | evaluation, digitnet "
        "(samples/s) |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in cases:
        lines.append(
            f"| {r['case']} | {r['digitnet_gflops']:.1f} | {100 * r['fraction_of_matmul_peak']:.0f}% | "
            f"{r['reference_eval_samples_per_s']:,.0f} | {r['digitnet_eval_samples_per_s']:,.0f} |"
        )
    rates = report["wide_mlp_matmul_gflops"]
    assert isinstance(rates, dict)
    peak = float(report["matmul_peak_gflops"])  # type: ignore[arg-type]
    lines += ["", "The wide MLP's two large matrix products alone, at batch 100:", ""]
    lines += [
        f"- {name}: {rate:.1f} GFLOP/s, {100 * rate / peak:.0f}% of the peak" for name, rate in rates.items()
    ]
    hand = float(report["wide_mlp_hand_written_step_gflops"])  # type: ignore[arg-type]
    lines += [
        "",
        f"The wide MLP's whole training step written by hand (no autograd, buffers allocated once, the same "
        f"fused Adam), at batch 100: {hand:.1f} GFLOP/s, {100 * hand / peak:.0f}% of the peak.",
    ]
    seconds = report.get("compare_lr_epochs3_seconds")
    if isinstance(seconds, float):
        lines += [
            "",
            f"`digitnet compare lr --epochs 3` (6 values × 3 seeds, 2 workers): {seconds:.1f} s wall.",
        ]
    return "\n".join(lines) + "\n"


def mnist_files_or_none(directory: Path) -> dict[str, Path] | None:
    """The four MNIST files in ``directory``, or None where they are not all there (or it is no folder)."""
    from digitnet.errors import DigitnetError

    try:
        return find_mnist_files(directory) if directory.is_dir() else None
    except DigitnetError:  # some but not all of them
        return None


class OneLineErrors(argparse.ArgumentParser):
    """argparse, with a bad option told in one line (not after the whole usage block)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (--help lists the options)\n")


def compared_setting(text: str, parser: argparse.ArgumentParser) -> tuple[str, list[str]]:
    """``"first-layer=learned,pca"`` → ``("first-layer", ["learned", "pca"])``, each value checked as
    digitnet checks the option, so a typo fails here in one line rather than in the first process."""
    from digitnet.errors import ConfigError
    from digitnet.settings import SETTINGS, parse_setting

    setting, _, listed = text.partition("=")
    values = [value.strip() for value in listed.split(",") if value.strip()]
    if setting not in SETTINGS or len(values) != 2 or values[0] == values[1]:
        parser.error(f"--compare {text}: expected SETTING=A,B, two different values of a digitnet setting")
    try:
        for value in values:
            parse_setting(setting, value)
    except ConfigError as error:
        parser.error(f"--compare {text}: {error}")
    choices = SETTINGS[setting].choices
    if choices and not set(values) <= set(choices):
        parser.error(f"--compare {text}: {setting} is one of {', '.join(choices)}")
    return setting, values


def main() -> None:
    parser = OneLineErrors(
        description=__doc__.splitlines()[0]
        + " Without an option whose help starts with 'only', that throughput table is what runs; each 'only' "
        "option runs its own measurement instead (give one at a time). Whole "
        "trainings are timed: run them on an idle machine, one at a time.",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=os.environ.get("DIGITNET_DATA"),
        help="the four MNIST files [$DIGITNET_DATA]",
    )
    parser.add_argument("--quick", action="store_true", help="few samples, no compare timing (for CI)")
    parser.add_argument("--samples", type=int, help="training samples per case [48000; quick 4096]")
    parser.add_argument(
        "--repeats",
        type=int,
        help="measurements per case, best kept [2; quick 1]; processes (or seeds) per arm for --startup, "
        "--compare, --compare-precision, --busy, --denormals, --diagnostics and --training-against [3]; "
        "pairs for "
        "--idle-cost [10]",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--markdown", type=Path, help="also write the table as markdown to this file")
    parser.add_argument(
        "--startup",
        action="store_true",
        help="only the start-up breakdown: where a --preset fast process's time goes",
    )
    parser.add_argument(
        "--against",
        metavar="REV",
        help="with --startup or --diagnostics: the same runs with the code at git revision REV, alternating "
        "with this one",
    )
    parser.add_argument(
        "--training-against",
        metavar="REV",
        help="only the report's typical run (baseline MLP, batch 32, one thread) with the code at git "
        "revision REV and with this checkout, alternating, and whether both compute the same numbers",
    )
    parser.add_argument(
        "--preset-against",
        metavar="REV",
        help="only one --preset PRESET process (seed 0) with the code at git revision REV and one with this "
        "checkout, on this machine: whether the code or the machine changed a published figure",
    )
    parser.add_argument(
        "--denormals",
        action="store_true",
        help="only the baseline MLP's ten epochs (SGD, Adam and RMSprop on one thread, as the report's "
        "workers train them; Adam on two) with denormal numbers flushed to zero and kept, alternating, "
        "whether both compute the same run, and the slow path itself (about 5 minutes on 2 cores)",
    )
    parser.add_argument(
        "--diagnostics",
        action="store_true",
        help="only what digitnet train --diagnostics costs: the baseline MLP's first three epochs (SGD, "
        "Adam) without and with the flag, alternating; with --against REV, the flag's cost at REV against "
        "now (about 3 minutes on 2 cores)",
    )
    parser.add_argument(
        "--report-cost",
        action="store_true",
        help="only what each experiment of digitnet report costs to train (from docs/results/*/results.csv)",
    )
    parser.add_argument(
        "--report-wall",
        action="store_true",
        help="only the whole digitnet report from an empty cache, timed, with how many runs trained at once "
        "(about 12 minutes on 2 cores)",
    )
    parser.add_argument(
        "--keep", type=Path, metavar="DIR", help="with --report-wall: keep the report's docs and runs in DIR"
    )
    parser.add_argument(
        "--report-timeline",
        type=Path,
        metavar="CACHE",
        help="only the timeline of a report already run with --cache-dir CACHE (after --report-wall --keep "
        'DIR: DIR/runs), from its runs/ and a CACHE/wall.json of {"started": …, "ended": …} Unix times',
    )
    parser.add_argument(
        "--compare-precision",
        action="store_true",
        help="only --preset PRESET at float32 against bfloat16, each seed at both (whole trainings: "
        "5 to 12 minutes for best-fast, depending on the processor)",
    )
    parser.add_argument(
        "--compare",
        metavar="SETTING=A,B",
        help="only --preset PRESET with one setting at two values, each seed at both, e.g. "
        "first-layer=learned,pca (--compare-precision is precision=float32,bfloat16)",
    )
    parser.add_argument(
        "--preset", help="with --compare, --compare-precision or --preset-against: the preset to run [fast]"
    )
    parser.add_argument(
        "--busy",
        action="store_true",
        help="only the busy-machine case: --preset fast processes idle and beside one busy process",
    )
    parser.add_argument(
        "--idle-cost",
        action="store_true",
        help="only the idle cost of digitnet's choice of threads: the work it adds, timed, and idle "
        "--preset fast processes paired against --threads N (--repeats pairs [10])",
    )
    args = parser.parse_args()
    if args.against and not (args.startup or args.diagnostics):
        parser.error("--against goes with --startup or --diagnostics")
    if args.keep and not args.report_wall:
        parser.error("--keep goes with --report-wall")
    if args.compare and args.compare_precision:
        parser.error("--compare-precision is --compare precision=float32,bfloat16: give one of them")
    if args.preset and not (args.compare_precision or args.compare or args.preset_against):
        parser.error("--preset goes with --compare, --compare-precision or --preset-against")
    repeats = args.repeats or 3
    if (args.compare_precision or args.compare) and repeats < 2:
        parser.error("--compare needs --repeats 2 or more: its intervals come from the seeds")
    if args.idle_cost and args.repeats is not None and args.repeats < 2:
        parser.error("--idle-cost needs --repeats 2 or more: its interval comes from the pairs")
    table: str | None = None
    if args.report_cost:  # reads the published results only, no MNIST
        table = report_cost(Path(__file__).resolve().parents[1] / "docs")
    elif args.report_timeline:
        table = report_timeline(args.report_timeline)
    elif args.data_dir is None:
        parser.error("benchmark needs full MNIST: --data-dir or $DIGITNET_DATA")
    elif not mnist_files_or_none(Path(args.data_dir)):
        parser.error(f"--data-dir {args.data_dir}: the four MNIST files are not there")
    elif args.denormals:
        table = denormals(Path(args.data_dir), repeats)
    elif args.preset_against:
        table = preset_against(Path(args.data_dir), args.preset or "fast", args.preset_against)
    elif args.training_against:
        table = training_against(Path(args.data_dir), repeats, args.training_against)
    elif args.diagnostics or args.startup:  # each measured now, or with --against REV against REV
        now, then = (
            (diagnostics_cost, diagnostics_against)
            if args.diagnostics
            else (startup_breakdown, startup_against)
        )
        data_dir = Path(args.data_dir)
        table = then(data_dir, repeats, args.against) if args.against else now(data_dir, repeats)
    elif args.compare_precision or args.compare:
        setting, values = compared_setting(args.compare or "precision=float32,bfloat16", parser)
        table = one_factor_comparison(Path(args.data_dir), repeats, args.preset or "fast", setting, values)
    elif args.report_wall:
        table = report_wall(Path(args.data_dir), args.keep)
    elif args.busy:
        table = busy_markdown(busy_machine(Path(args.data_dir), repeats))
    elif args.idle_cost:
        table = idle_cost(Path(args.data_dir), args.repeats or 10)
    if table is not None:
        print(table, end="")
        if args.markdown:
            from digitnet.runtime import atomic_write_text

            atomic_write_text(args.markdown, table)
        return
    samples = args.samples or (4096 if args.quick else 48_000)
    repeats = args.repeats or (1 if args.quick else 2)

    peak = matmul_peak_gflops(seconds=0.5 if args.quick else 2.0)
    config = DataConfig(dataset="mnist", data_dir=str(args.data_dir))
    tensors = to_tensors(load_split(config), config, torch.device("cpu"))
    root = torchvision_root(Path(args.data_dir))
    results = []
    try:
        for case in CASES:
            flops = train_flops_per_sample(build_model(case.model))
            ref_train, ref_eval = best_of(repeats, lambda c=case: reference_throughput(c, root, samples, 0))
            our_train, our_eval = best_of(repeats, lambda c=case: digitnet_throughput(c, tensors, samples, 0))
            gflops = our_train * flops / 1e9
            results.append(
                Result(
                    case=case.name,
                    batch_size=case.batch_size,
                    samples=samples,
                    reference_samples_per_s=ref_train,
                    digitnet_samples_per_s=our_train,
                    ratio=our_train / ref_train,
                    target_ratio=case.target_ratio,
                    train_gflop_per_sample=flops / 1e9,
                    digitnet_gflops=gflops,
                    fraction_of_matmul_peak=gflops / peak,
                    reference_eval_samples_per_s=ref_eval,
                    digitnet_eval_samples_per_s=our_eval,
                    peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                )
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    compare_seconds = None if args.quick else compare_wall_time(Path(args.data_dir))

    report = {
        "wide_mlp_matmul_gflops": shape_rates(),
        "wide_mlp_hand_written_step_gflops": hand_written_step_gflops(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "matmul_peak_gflops": peak,
        "cases": [asdict(r) for r in results],
        "compare_lr_epochs3_seconds": compare_seconds,
    }
    if args.markdown:
        from digitnet.runtime import atomic_write_text

        atomic_write_text(args.markdown, markdown_table(report, samples, repeats))
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(
        f"torch {torch.__version__} · {torch.get_num_threads()} threads · "
        f"float32 matmul peak {peak:.1f} GFLOP/s"
        f" · {samples:,} training samples per case, best of {repeats}"
    )
    header = (
        f"{'case':<20} {'batch':>5} {'reference/s':>12} {'digitnet/s':>11} {'ratio':>6} {'target':>6} "
        f"{'GFLOP/s':>8} {'% peak':>6} {'eval ref/s':>11} {'eval ours/s':>11} {'peak MB':>8}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        mark = "ok" if r.ratio >= r.target_ratio else "below"
        print(
            f"{r.case:<20} {r.batch_size:>5} {r.reference_samples_per_s:>12,.0f} "
            f"{r.digitnet_samples_per_s:>11,.0f} "
            f"{r.ratio:>5.1f}× {r.target_ratio:>5.0f}× {r.digitnet_gflops:>8.1f} "
            f"{100 * r.fraction_of_matmul_peak:>5.0f}% {r.reference_eval_samples_per_s:>11,.0f} "
            f"{r.digitnet_eval_samples_per_s:>11,.0f} {r.peak_rss_mb:>8.0f}  {mark}"
        )
    for name, rate in report["wide_mlp_matmul_gflops"].items():  # type: ignore[attr-defined]
        print(f"wide MLP {name}: {rate:.1f} GFLOP/s ({100 * rate / peak:.0f}% of peak)")
    hand = report["wide_mlp_hand_written_step_gflops"]
    print(f"wide MLP step by hand, no autograd: {hand:.1f} GFLOP/s ({100 * hand / peak:.0f}% of peak)")
    if compare_seconds is not None:
        print(f"digitnet compare lr --epochs 3 (6 values × 3 seeds): {compare_seconds:.1f} s wall")
    if not all(math.isfinite(r.ratio) for r in results):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
