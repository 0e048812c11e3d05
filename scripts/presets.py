"""Measure each ``digitnet train --preset`` as users run it: whole processes, several seeds.

Wall time is the full process (interpreter start-up, imports, data loading, training, evaluation,
writing the run directory). Writes a markdown and a CSV table for the docs.

    python scripts/presets.py --data-dir "$DIGITNET_DATA" --seeds 3 --out docs/results/presets
    python scripts/presets.py --data-dir "$DIGITNET_DATA" --presets best-cnn --out docs/results/presets
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from digitnet.presets import PRESETS
from digitnet.runtime import atomic_write_text


def run_preset(name: str, seed: int, data_dir: str, out: Path) -> tuple[float, dict[str, object]]:
    started = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-c",
            "from digitnet.cli import main; main()",
            "train",
            "--preset",
            name,
            "--seed",
            str(seed),
            "--dataset",
            "mnist",
            "--data-dir",
            data_dir,
            "--out",
            str(out),
        ],
        check=True,
        capture_output=True,
    )
    wall = time.perf_counter() - started
    return wall, json.loads((out / "summary.json").read_text())


def flag(name: str, value: object) -> str:
    """A preset setting as the command-line option that gives it."""
    if isinstance(value, bool):
        return f"--{name}" if value else f"--no-{name}"
    if isinstance(value, tuple):
        return f"--{name} {','.join(map(str, value))}"
    return f"--{name} {value}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--presets", default=",".join(PRESETS))
    parser.add_argument("--out", type=Path, help="directory for presets.md and presets.csv")
    args = parser.parse_args()
    measured: dict[str, list[Row]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for name in args.presets.split(","):
            measured[name] = []
            for seed in range(args.seeds):
                wall, summary = run_preset(name, seed, args.data_dir, Path(scratch) / f"{name}-{seed}")
                accuracy = 100 * float(summary["test_accuracy"])  # type: ignore[arg-type]
                validation = 100 * float(summary["val_accuracy"])  # type: ignore[arg-type]
                measured[name].append((accuracy, wall, validation))
                print(
                    f"{name} seed {seed}: validation {validation:.2f}%, test {accuracy:.2f}% in {wall:.1f} s",
                    flush=True,
                )
    # The longest presets take minutes per seed, so a run may measure some of them: rows of the
    # presets it did not measure are kept from the table already there.
    if args.out and (args.out / "presets.csv").exists():
        measured = read_rows(args.out / "presets.csv") | measured
    table, csv = render(measured)
    print(table)
    if args.out:
        atomic_write_text(args.out / "presets.md", table)
        atomic_write_text(args.out / "presets.csv", csv)


# (test accuracy %, wall s, validation accuracy % or None where an older table did not record it)
Row = tuple[float, float, float | None]


def read_rows(path: Path) -> dict[str, list[Row]]:
    """preset → [Row per seed] from a presets.csv, for presets still defined."""
    rows: dict[str, list[Row]] = {}
    for line in path.read_text().splitlines()[1:]:
        name, _seed, accuracy, wall, *validation = line.split(",")
        if name in PRESETS:
            val = float(validation[0]) if validation and validation[0] else None
            rows.setdefault(name, []).append((float(accuracy), float(wall), val))
    return rows


def render(measured: dict[str, list[Row]]) -> tuple[str, str]:
    """The markdown table (presets in PRESETS order) and its CSV."""
    seeds = max(len(rows) for rows in measured.values())
    lines = [
        f"Whole `digitnet train --preset NAME --seed S` processes on full MNIST, seeds 0–{seeds - 1}; "
        "wall time includes start-up, data loading, evaluation and writing the run directory.",
        "",
        "| preset | settings | validation (%), mean | test accuracy (%) per seed | mean | "
        "wall time per process (s) | max |",
        "|---|---|---|---|---|---|---|",
    ]
    csv = ["preset,seed,test_accuracy,wall_seconds,val_accuracy"]
    for name in (n for n in PRESETS if n in measured):
        accuracies, walls, validations = zip(*measured[name], strict=True)
        known = [v for v in validations if v is not None]
        validation = f"{statistics.mean(known):.2f}" if len(known) == len(validations) else "—"
        # One code span per option, kept whole on the page (the flag class in extra.css): a table cell
        # may wrap between options, never inside "--weight-decay".
        settings = " ".join(f"`{flag(k, v)}`{{.flag}}" for k, v in PRESETS[name].items()) or "(the defaults)"
        lines.append(
            f"| `{name}`{{.flag}} | {settings} | {validation} | "
            f"{' / '.join(f'{a:.2f}' for a in accuracies)} | "
            f"{statistics.mean(accuracies):.2f} | {' / '.join(f'{w:.1f}' for w in walls)} | "
            f"{max(walls):.1f} |"
        )
        csv += [
            f"{name},{seed},{a:.4f},{w:.2f},{'' if v is None else f'{v:.4f}'}"
            for seed, (a, w, v) in enumerate(measured[name])
        ]
    return "\n".join(lines) + "\n", "\n".join(csv) + "\n"


if __name__ == "__main__":
    main()
