"""Time one sweep three ways on this machine: serial (--jobs 1), local workers (--jobs 2), and Ray.

Every way trains the same configurations from scratch (fresh directories), one thread per run, so the
tables are identical and only the wall time differs. Writes a markdown table for the docs.

    python scripts/scaling.py --data-dir "$DIGITNET_DATA" --out docs/results/scaling
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from digitnet.runtime import atomic_write_text
from digitnet.sweep import SweepSpec, run_sweep


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    base = (("data-dir", args.data_dir), ("dataset", "mnist"), ("epochs", args.epochs))
    spec = SweepSpec("lr", ("0.1", "0.03", "0.01", "0.003"), base=base, seeds=1)
    timings: list[tuple[str, float]] = []
    tables = []
    for label, jobs, backend in (
        ("local, --jobs 1", 1, "local"),
        ("local, --jobs 2", 2, "local"),
        ("Ray (local cluster, 2 CPUs)", 2, "ray"),
    ):
        with tempfile.TemporaryDirectory() as scratch:
            started = time.perf_counter()
            result = run_sweep(spec, Path(scratch) / "sweep", jobs=jobs, backend=backend)
            timings.append((label, time.perf_counter() - started))
            tables.append((Path(scratch) / "sweep" / "results.csv").read_text().splitlines()[1:])
            print(f"{label}: {timings[-1][1]:.1f} s ({result.trained} runs)", flush=True)
    same = all(
        [row.split(",")[:6] for row in table] == [row.split(",")[:6] for row in tables[0]] for table in tables
    )
    serial = timings[0][1]
    lines = [
        f"`digitnet compare lr 0.1 0.03 0.01 0.003 --epochs {args.epochs} --seeds 1` on full MNIST "
        "(4 runs, one thread each), timed end to end including start-up:",
        "",
        "| backend | wall time (s) | speed-up over --jobs 1 |",
        "|---|---|---|",
        *[f"| {label} | {seconds:.1f} | {serial / seconds:.2f}× |" for label, seconds in timings],
        "",
        f"Identical accuracy and loss columns across the three: {'yes' if same else 'NO'}.",
    ]
    print("\n".join(lines))
    if args.out:
        atomic_write_text(args.out / "scaling.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
