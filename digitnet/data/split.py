"""Train / validation / test: stratified, with a split seed apart from the training seed.

```pycon
>>> import torch
>>> keep, hold = stratified_split(torch.arange(100) % 10, 0.2, seed=0)
>>> len(keep), len(hold)
(80, 20)

```
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from digitnet.configs import DEFAULT_TEST_FRACTION, DataConfig
from digitnet.data.sources import IMAGE_SIZE, NUM_CLASSES, Digits, Source, load_source
from digitnet.errors import DataError
from digitnet.runtime import atomic_directory, atomic_write_bytes, atomic_write_text


@dataclass(frozen=True)
class Split:
    """Train / validation / test digits, plus what the user should know about how they were made."""

    source: str
    train: Digits
    val: Digits
    test: Digits
    test_is_holdout: bool  # True when the source had no test set and part of it was held out
    notes: tuple[str, ...] = ()
    location: str = ""  # the file or directory it was read from

    @property
    def name(self) -> str:
        """The data in words for tables and figure titles: MNIST, the sample, or the CSV's path."""
        names = {"mnist": "MNIST", "sample": "the bundled 5,000-digit sample"}
        return names.get(self.source, f"{self.source} {self.location}".strip())

    @property
    def test_set(self) -> str:
        """What the test accuracy is measured on, in words for tables and summaries."""
        if len(self.test) == 0:
            return "none (the split keeps no test set: validation only)"
        if self.test_is_holdout:
            share = len(self.test) / (len(self.train) + len(self.val) + len(self.test))
            return f"a held-out {share:.1%} of the source (it has no separate test set)"
        return "MNIST test set" if self.source == "mnist" else f"{self.source}'s own test set"


# ----------------------------------------------------------------------------------------------- split


def stratified_split(labels: Tensor, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (keep, hold-out) with every class in the same proportion in both: scikit-learn's split.

    The split depends only on the labels, the fraction, the seed and scikit-learn's version, so it is
    cached under those (``<user cache>/splits/``): importing scikit-learn costs over a second of every
    run's start-up, and only the first run on a dataset pays it. A cache file that cannot be read is
    ignored and rewritten.
    """
    from importlib.metadata import version

    key = hashlib.sha256(
        labels.numpy().astype(np.int64).tobytes()
        + f"{test_fraction!r} {seed} {version('scikit-learn')}".encode()
    ).hexdigest()[:24]
    cached = split_cache_dir() / f"{key}.npz"
    try:
        with np.load(cached, allow_pickle=False) as saved:
            keep, hold = saved["keep"], saved["hold"]
        if len(keep) + len(hold) == len(labels) and len(np.union1d(keep, hold)) == len(labels):
            return keep, hold
    except (OSError, KeyError, ValueError, EOFError):
        pass
    from sklearn.model_selection import train_test_split

    indices = np.arange(len(labels))
    keep, hold = train_test_split(
        indices, test_size=test_fraction, stratify=labels.numpy(), random_state=seed, shuffle=True
    )
    keep, hold = np.sort(keep), np.sort(hold)
    with contextlib.suppress(OSError):  # a read-only or full cache only costs the next run the import
        buffer = io.BytesIO()
        np.savez(buffer, keep=keep, hold=hold)
        cached.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(cached, buffer.getvalue())
    return keep, hold


def split_cache_dir() -> Path:
    """Where split indices are cached: the per-user cache directory, beside downloaded MNIST."""
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("digitnet")) / "splits"


def _stratified_or_error(
    source: Source, labels: Tensor, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """[stratified_split][digitnet.data.stratified_split], with scikit-learn's error for a class too small to
    split in two (one
    row of a digit, say) turned into one line that names the class and its count."""
    try:
        return stratified_split(labels, fraction, seed)
    except ValueError:
        counts = torch.bincount(labels, minlength=NUM_CLASSES).tolist()
        rare = [f"digit {d} has {n} row" for d, n in enumerate(counts) if n == 1]
        detail = ", ".join(rare) if rare else "too few digits for the split"
        raise DataError(
            f"{source.location}: cannot split every digit class into train/validation/test ({detail}); "
            "each class needs a few more examples"
        ) from None


def split_source(source: Source, config: DataConfig) -> Split:
    """80/20 stratified train/validation split; a stratified test hold-out (``config.test_fraction``,
    1/7 by default, none at 0) when the source has no test set of its own."""
    notes = list(source.notes)
    pool = source.train
    if source.test is not None and config.test_fraction is not None:
        raise DataError(
            f"{source.name} has its own test set ({len(source.test):,} digits); --test-fraction is for "
            "sources without one (--csv, the sample)"
        )
    if source.test is None:
        if len(pool) < 7 * NUM_CLASSES:
            raise DataError(f"{source.location}: only {len(pool)} digits; need at least 70 to split")
        fraction = config.held_out_fraction
        if fraction == 0:
            test = pool.subset(np.arange(0))
            notes.append(
                f"--test-fraction 0: no test set; {source.name} is split {1 - config.val_fraction:.0%}/"
                f"{config.val_fraction:.0%} into train/validation; validation is the only held-out measure"
            )
        else:
            keep, hold = _stratified_or_error(source, pool.labels, fraction, config.split_seed)
            test, pool = pool.subset(hold), pool.subset(keep)
            usual = fraction == DEFAULT_TEST_FRACTION
            notes.append(
                f"{source.name} has no separate test set: holding out a stratified "
                f"{'1/7' if usual else f'{fraction:.0%}'} ({len(test):,} digits) as the test set"
                + (", as MNIST's 10,000 of 70,000" if usual else "")
                + " (--test-fraction 0: none)"
            )
    else:
        test = source.test
    train_index, val_index = _stratified_or_error(source, pool.labels, config.val_fraction, config.split_seed)
    return Split(
        source=source.name,
        train=pool.subset(train_index),
        val=pool.subset(val_index),
        test=test,
        test_is_holdout=source.test is None,
        notes=tuple(notes),
        location=source.location,
    )


def load_split(config: DataConfig) -> Split:
    """Load the configured source and split it (or read a saved split): the one call most code needs."""
    if config.split:
        return load_saved_split(Path(config.split))
    return split_source(load_source(config), config)


# ------------------------------------------------------------------------------------ prepare, download


def save_split(split: Split, out_dir: Path) -> list[Path]:
    """Write the split for reuse: ``split.npz`` (uint8 images, labels per split, the source's name) and
    ``class_counts.csv``. ``--split`` reads it back, digit for digit in the same order, so a run on it
    is the run on the split it came from."""
    with atomic_directory(out_dir, "split") as staging:
        arrays = {
            "source": np.array(split.source),
            "location": np.array(split.location),
            "test_is_holdout": np.array(split.test_is_holdout),
        }
        for name in ("train", "val", "test"):
            digits: Digits = getattr(split, name)
            arrays[f"{name}_images"] = digits.images.numpy()
            arrays[f"{name}_labels"] = digits.labels.numpy()
        np.savez_compressed(staging / "split.npz", **arrays)  # type: ignore[arg-type]
        rows = ["split," + ",".join(str(c) for c in range(NUM_CLASSES)) + ",total"]
        for name in ("train", "val", "test"):
            counts = getattr(split, name).class_counts()
            rows.append(f"{name}," + ",".join(map(str, counts)) + f",{sum(counts)}")
        atomic_write_text(staging / "class_counts.csv", "\n".join(rows) + "\n")
    return [out_dir / "split.npz", out_dir / "class_counts.csv"]


def load_saved_split(path: Path) -> Split:
    """Read back a ``split.npz`` written by [save_split][digitnet.data.save_split], checked as any
    other input: shapes, label range, and a non-empty train and validation part."""
    if path.is_dir() and (path / "split.npz").is_file():
        path = path / "split.npz"  # the directory 'data prepare --out' wrote
    if not path.is_file():
        what = "is a directory without split.npz" if path.is_dir() else "no such file"
        raise DataError(f"{path}: {what} (--split takes the split.npz written by 'digitnet data prepare')")
    if not zipfile.is_zipfile(path):  # numpy's own message would suggest loading it with pickles allowed
        raise DataError(
            f"{path}: not a .npz file; --split takes the split.npz written by 'digitnet data prepare'"
        )
    try:
        with np.load(path, allow_pickle=False) as arrays:
            parts = {
                name: Digits(
                    torch.from_numpy(arrays[f"{name}_images"]), torch.from_numpy(arrays[f"{name}_labels"])
                )
                for name in ("train", "val", "test")
            }
            source = str(arrays["source"]) if "source" in arrays else "saved split"
            holdout = bool(arrays["test_is_holdout"]) if "test_is_holdout" in arrays else False
            location = str(arrays["location"]) if "location" in arrays else str(path)
    except (OSError, KeyError, ValueError, EOFError) as error:
        raise DataError(f"{path}: not a split written by 'digitnet data prepare' ({error})") from None
    for name, digits in parts.items():
        images, labels = digits.images, digits.labels
        if (
            images.dtype != torch.uint8
            or images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE)
            or labels.dtype != torch.int64
            or labels.shape != images.shape[:1]
            or (len(labels) and not 0 <= int(labels.min()) <= int(labels.max()) < NUM_CLASSES)
        ):
            raise DataError(f"{path}: its {name} part is not 28×28 uint8 digits with labels 0–9")
    if len(parts["train"]) == 0 or len(parts["val"]) == 0:
        raise DataError(f"{path}: its train or validation part is empty")
    return Split(
        source=source,
        train=parts["train"],
        val=parts["val"],
        test=parts["test"],
        test_is_holdout=holdout,
        notes=(f"using the split saved in {path}",),
        location=location,
    )


def image_grid_rows(digits: Digits, per_class: int, generator: torch.Generator) -> Tensor:
    """(10, per_class, 28, 28) uint8: ``per_class`` random examples of each digit, for the data figures."""
    rows = []
    for digit in range(NUM_CLASSES):
        members = torch.nonzero(digits.labels == digit).flatten()
        if len(members) == 0:
            rows.append(torch.zeros(per_class, IMAGE_SIZE, IMAGE_SIZE, dtype=torch.uint8))
            continue
        chosen = members[torch.randint(len(members), (per_class,), generator=generator)]
        rows.append(digits.images[chosen])
    return torch.stack(rows)


def describe_split(split: Split) -> str:
    """One line for people: sizes of each part of the split."""
    return (
        f"{split.name}: {len(split.train):,} train / {len(split.val):,} validation / "
        f"{len(split.test):,} test digits"
    )


__all__ = [
    "Split",
    "describe_split",
    "image_grid_rows",
    "load_saved_split",
    "load_split",
    "save_split",
    "split_source",
    "stratified_split",
]
