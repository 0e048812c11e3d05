"""The data layer: every source format, the stratified split, normalisation, batching, augmentation."""

from __future__ import annotations

import gzip
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import idx_bytes, make_digits, write_csv, write_mnist_dir
from sklearn.model_selection import train_test_split

from digitnet.data import (
    DataConfig,
    Digits,
    augment_batch,
    batch_loader,
    default_data_dir,
    load_mnist_dir,
    load_sample,
    load_saved_split,
    load_source,
    normalization_stats,
    read_csv_digits,
    read_idx,
    save_split,
    split_source,
    stratified_split,
    to_tensors,
)
from digitnet.data.tensors import BatchIndexSampler, TensorBatches
from digitnet.errors import ConfigError, DataError


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("layout", ["flat", "torchvision"])
def test_mnist_dir_formats_read_the_same_digits(tmp_path: Path, gz: bool, layout: str) -> None:
    root = write_mnist_dir(tmp_path / "d", gz=gz, layout=layout)
    source = load_mnist_dir(root)
    images, labels = make_digits(200, seed=0)
    assert source.name == "mnist"
    assert torch.equal(source.train.images, torch.from_numpy(images))
    assert torch.equal(source.train.labels, torch.from_numpy(labels.astype(np.int64)))
    assert source.test is not None and len(source.test) == 50


def test_read_idx_round_trips_an_array(tmp_path: Path) -> None:
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / "x-idx3-ubyte"
    path.write_bytes(idx_bytes(array))
    assert np.array_equal(read_idx(path, 3), array)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda b: b"\x00\x00\x09\x03" + b[4:], "wrong magic"),
        (lambda b: b[:-5], "header promises"),
        (lambda b: b + b"\x00", "header promises"),
        (lambda b: b[:6], "too short"),
    ],
)
def test_read_idx_rejects_malformed_files(tmp_path: Path, mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "bad-idx3-ubyte"
    path.write_bytes(mutate(idx_bytes(np.zeros((2, 28, 28), dtype=np.uint8))))
    with pytest.raises(DataError, match=message):
        read_idx(path, 3)


def test_truncated_gzip_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "t-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros(100, dtype=np.uint8)))[:-12])
    with pytest.raises(DataError, match="gzip"):
        read_idx(path, 1)


def test_incomplete_directory_names_the_missing_files(tmp_path: Path) -> None:
    root = write_mnist_dir(tmp_path / "d")
    (root / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="missing t10k-labels-idx1-ubyte"):
        load_mnist_dir(root)


def test_kaggle_csv_with_header(tmp_path: Path) -> None:
    digits = read_csv_digits(write_csv(tmp_path / "train.csv", header=True))
    images, labels = make_digits(100)
    assert torch.equal(digits.images, torch.from_numpy(images))
    assert torch.equal(digits.labels, torch.from_numpy(labels.astype(np.int64)))


def test_headerless_label_first_csv(tmp_path: Path) -> None:
    digits = read_csv_digits(write_csv(tmp_path / "mnist_train.csv", header=False))
    assert torch.equal(digits.labels, torch.from_numpy(make_digits(100)[1].astype(np.int64)))


def test_unlabelled_kaggle_test_csv_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "test.csv"
    images, _ = make_digits(5)
    rows = [",".join(f"pixel{i}" for i in range(784))] + [",".join(map(str, im.reshape(-1))) for im in images]
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(DataError, match="unlabelled"):
        read_csv_digits(path)


def test_bundled_sample_is_5000_real_digits() -> None:
    source = load_sample()
    assert len(source.train) == 5000 and source.test is None
    assert source.train.images.dtype == torch.uint8 and source.train.images.shape[1:] == (28, 28)
    assert sorted(set(source.train.labels.tolist())) == list(range(10))
    # Real MNIST ink: mostly blank background, strokes near 255.
    assert float((source.train.images == 0).float().mean()) > 0.7
    assert any("5,000-digit" in note for note in source.notes)


def test_auto_prefers_full_mnist_then_sample(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_source(DataConfig()).name == "sample"
    root = write_mnist_dir(tmp_path / "d")
    monkeypatch.setenv("DIGITNET_DATA", str(root))
    assert load_source(DataConfig()).name == "mnist"
    assert default_data_dir() == root
    assert default_data_dir(tmp_path / "x") == tmp_path / "x"


def test_mnist_dataset_insists_on_the_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such data directory") as refused:
        load_source(DataConfig(dataset="mnist", data_dir=str(tmp_path / "nowhere")))
    assert "'digitnet data download'" in str(refused.value)  # how to get them, not only where to point


def test_split_matches_scikit_learn_and_keeps_class_shares() -> None:
    labels = torch.from_numpy(np.repeat(np.arange(10), [50, 60, 70, 80, 90, 100, 110, 120, 130, 140]))
    keep, hold = stratified_split(labels, 0.2, seed=3)
    expected_keep, expected_hold = train_test_split(
        np.arange(len(labels)), test_size=0.2, stratify=labels.numpy(), random_state=3
    )
    assert np.array_equal(keep, np.sort(expected_keep)) and np.array_equal(hold, np.sort(expected_hold))
    full = np.bincount(labels.numpy()) / len(labels)
    held = np.bincount(labels.numpy()[hold], minlength=10) / len(hold)
    assert np.abs(full - held).max() < 0.01
    assert set(keep).isdisjoint(hold) and len(keep) + len(hold) == len(labels)


def test_split_keeps_mnist_test_set_apart(mnist_dir: Path) -> None:
    source = load_mnist_dir(mnist_dir)
    split = split_source(source, DataConfig())
    assert (len(split.train), len(split.val)) == (160, 40)
    assert split.test is source.test and not split.test_is_holdout


def test_sources_without_test_set_hold_one_out_and_say_so() -> None:
    split = split_source(load_sample(), DataConfig())
    assert split.test_is_holdout
    assert len(split.train) + len(split.val) + len(split.test) == 5000
    assert abs(len(split.test) - 5000 / 7) < 1
    assert any("no separate test set" in note for note in split.notes)


def test_standard_normalisation_uses_training_split_only() -> None:
    split = split_source(load_sample(), DataConfig())
    stats = normalization_stats(split.train.images, "standard")
    train_pixels = split.train.images.double()
    assert stats.mean == pytest.approx(float(train_pixels.mean()))
    assert stats.std == pytest.approx(float(train_pixels.std()))
    all_pixels = torch.cat([split.train.images, split.val.images]).double()
    assert stats.mean != pytest.approx(float(all_pixels.mean()), rel=1e-9)
    tensors = to_tensors(split, DataConfig(normalize="standard"), torch.device("cpu"))
    assert float(tensors.train_x.mean()) == pytest.approx(0.0, abs=1e-4)
    assert float(tensors.train_x.std()) == pytest.approx(1.0, abs=1e-3)
    assert tensors.train_x.shape[1:] == (1, 28, 28)
    unit = to_tensors(split, DataConfig(normalize="unit"), torch.device("cpu"))
    assert float(unit.train_x.max()) <= 1.0 and float(unit.train_x.min()) >= 0.0


def test_head_keeps_the_first_digits_and_how_they_are_prepared() -> None:
    split = split_source(load_sample(), DataConfig())
    tensors = to_tensors(split, DataConfig(augment=True), torch.device("cpu"))
    head = tensors.head(100, 20)
    assert torch.equal(head.train_x, tensors.train_x[:100])
    assert torch.equal(head.train_y, tensors.train_y[:100])
    assert [len(head.val_y), len(head.test_y)] == [20, 20]
    assert torch.equal(head.test_x, tensors.test_x[:20])
    assert (head.stats, head.augment, head.background) == (tensors.stats, True, tensors.background)
    assert head.background != 0.0  # standard normalisation moves blank pixels off zero


def test_shuffled_loader_covers_each_index_once_and_depends_on_seed() -> None:
    x, y = torch.zeros(103, 1, 28, 28), torch.arange(103)

    def order(seed: int) -> list[int]:
        generator = torch.Generator().manual_seed(seed)
        loader = batch_loader(x, y, batch_size=10, shuffle=True, generator=generator)
        batches = [labels for _, labels in loader]
        assert [len(b) for b in batches] == [10] * 10 + [3]
        return torch.cat(batches).tolist()

    assert sorted(order(0)) == list(range(103))
    assert order(0) == order(0) and order(0) != order(1)


@pytest.mark.parametrize("augment", [False, True])
def test_batches_are_what_a_dataloader_yields(augment: bool) -> None:
    """The loader without torch's DataLoader gives the same batches, bit for bit, over two epochs: the same
    sampler and dataset, the same draws from the generator (shuffling, then augmentation); and it leaves
    torch's global generator, which dropout draws from, where a DataLoader leaves it."""
    x, y = torch.rand(45, 1, 28, 28), torch.arange(45)

    def epochs(batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> list[torch.Tensor]:
        torch.manual_seed(9)
        pairs = [t for _ in range(2) for pair in batches for t in pair]
        return [*pairs, torch.rand(3)]  # the global generator's next numbers

    ours = batch_loader(x, y, 8, shuffle=True, generator=torch.Generator().manual_seed(4), augment=augment)
    generator = torch.Generator().manual_seed(4)
    dataset = TensorBatches(x, y, augment, generator)
    sampler = BatchIndexSampler(len(dataset), 8, True, generator)
    theirs = torch.utils.data.DataLoader(dataset, batch_size=None, sampler=sampler, collate_fn=lambda b: b)
    assert len(ours) == len(theirs) == 6
    mine, reference = epochs(ours), epochs(theirs)
    assert len(mine) == len(reference) == 25
    assert all(torch.equal(a, b) for a, b in zip(mine, reference, strict=True))


def test_reshuffles_every_epoch() -> None:
    generator = torch.Generator().manual_seed(0)
    loader = batch_loader(torch.zeros(50, 1, 28, 28), torch.arange(50), 50, shuffle=True, generator=generator)
    first, second = (next(iter(loader))[1].tolist() for _ in range(2))
    assert first != second


def test_evaluation_loader_keeps_order() -> None:
    loader = batch_loader(torch.zeros(7, 1, 28, 28), torch.arange(7), batch_size=3)
    assert torch.cat([y for _, y in loader]).tolist() == list(range(7))


def test_augmentation_is_identity_without_rotation_or_shift() -> None:
    images = torch.rand(4, 1, 28, 28)
    same = augment_batch(images, torch.Generator().manual_seed(0), max_degrees=0, max_shift=0)
    assert torch.allclose(same, images, atol=1e-5)


def test_augmentation_is_per_sample_seeded_and_keeps_background() -> None:
    images = torch.full((8, 1, 28, 28), -0.4)
    images[:, :, 10:18, 12:16] = 2.0
    a = augment_batch(images, torch.Generator().manual_seed(1), background=-0.4)
    b = augment_batch(images, torch.Generator().manual_seed(1), background=-0.4)
    assert torch.equal(a, b) and a.shape == images.shape
    assert not torch.allclose(a[0], a[1])  # each sample gets its own rotation/shift
    assert torch.allclose(a[:, :, 0, :], torch.full_like(a[:, :, 0, :], -0.4), atol=1e-5)


def test_shift_moves_ink_by_whole_pixels() -> None:
    image = torch.zeros(1, 1, 28, 28)
    image[0, 0, 14, 14] = 1.0
    shifted = augment_batch(image, torch.Generator().manual_seed(0), max_degrees=0, max_shift=2)
    row, col = divmod(int(shifted.flatten().argmax()), 28)
    assert abs(row - 14) <= 2 and abs(col - 14) <= 2
    assert float(shifted.sum()) == pytest.approx(1.0, abs=1e-4)  # mass is moved, not created


def test_prepare_writes_a_reusable_split(tmp_path: Path) -> None:
    split = split_source(load_sample(), DataConfig())
    written = save_split(split, tmp_path / "split")
    assert [p.name for p in written] == ["split.npz", "class_counts.csv"]
    loaded = load_saved_split(tmp_path / "split" / "split.npz")
    for part in ("train", "val", "test"):
        assert torch.equal(getattr(loaded, part).images, getattr(split, part).images)
        assert torch.equal(getattr(loaded, part).labels, getattr(split, part).labels)
    assert (loaded.source, loaded.test_is_holdout) == ("sample", True)
    lines = (tmp_path / "split" / "class_counts.csv").read_text().splitlines()
    assert lines[1].split(",")[1:-1] == [str(c) for c in split.train.class_counts()]


def test_digits_class_counts() -> None:
    digits = Digits(torch.zeros(4, 28, 28, dtype=torch.uint8), torch.tensor([0, 0, 3, 9]))
    assert digits.class_counts() == [2, 0, 0, 1, 0, 0, 0, 0, 0, 1]


def test_data_config_validates() -> None:
    with pytest.raises(ConfigError, match="--normalize"):
        DataConfig(normalize="zscore")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="--csv"):
        DataConfig(dataset="csv")


def test_auto_is_pinned_to_the_concrete_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from digitnet.data import resolve_data_config

    assert resolve_data_config(DataConfig()).dataset == "sample"
    root = write_mnist_dir(tmp_path / "d")
    monkeypatch.setenv("DIGITNET_DATA", str(root))
    pinned = resolve_data_config(DataConfig())
    assert (pinned.dataset, pinned.data_dir) == ("mnist", str(root.resolve()))
    csv_pinned = resolve_data_config(DataConfig(csv="x.csv"))
    assert csv_pinned.dataset == "csv" and Path(csv_pinned.csv or "").is_absolute()


def test_a_split_is_cached_so_later_runs_need_no_scikit_learn(tmp_path: Path) -> None:
    import subprocess
    import sys

    from digitnet.data.split import split_cache_dir

    labels = torch.arange(300) % 10
    first = stratified_split(labels, 0.2, seed=5)
    (cached,) = split_cache_dir().glob("*.npz")
    again = stratified_split(labels, 0.2, seed=5)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    # The cached indices are scikit-learn's own, and a later process reads them without importing it.
    code = (
        "import sys, torch; from digitnet.data import stratified_split; "
        "keep, hold = stratified_split(torch.arange(300) % 10, 0.2, seed=5); "
        "print('sklearn' in sys.modules, len(keep), len(hold))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "240", "60"]
    # Another seed is another split; a damaged cache file is ignored and rewritten.
    assert not np.array_equal(stratified_split(labels, 0.2, seed=6)[1], first[1])
    cached.write_bytes(b"not numpy")
    assert np.array_equal(stratified_split(labels, 0.2, seed=5)[1], first[1])
    assert np.load(cached)["hold"].tolist() == first[1].tolist()
