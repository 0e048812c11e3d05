"""Export a trained run to ONNX, so it runs outside PyTorch: in onnxruntime, or in a browser.

The exported graph takes what a drawing gives, ``(N, 1, 28, 28)`` float pixels in 0..1 (white ink on
black, as MNIST), and returns the 10 logits: the run's pixel normalisation is part of the graph, so
whoever uses the file needs nothing else from the run. Input ``pixels``, output ``logits``, opset
[OPSET][digitnet.export.OPSET], the batch dimension free.

A file is only written once onnxruntime has run it on real digits and agreed with PyTorch to within
[TOLERANCE][digitnet.export.TOLERANCE]; otherwise nothing is written.

```python
result = export_onnx(Path("runs/cnn-adam-1a2b3c4d5e6f"), Path("model.onnx"))
print(result.size_bytes, result.max_abs_diff)
```
"""

from __future__ import annotations

import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from digitnet.checkpoint import load_checkpoint
from digitnet.data import NormStats
from digitnet.errors import DigitnetError
from digitnet.runtime import atomic_write_bytes

OPSET = 17  # supported by every onnxruntime (and onnxruntime-web) release since 1.14
INPUT_NAME = "pixels"
OUTPUT_NAME = "logits"
TOLERANCE = 1e-4  # largest |onnxruntime - torch| logit difference accepted on the check digits
CHECK_DIGITS = 256  # how many of the bundled sample's digits the check runs
MISSING_EXTRA = 'digitnet export needs the onnx extra: pip install "digitnet[onnx]"'
PRODUCER_KEY = "digitnet_run"  # metadata naming the run a file was exported from


class PixelsToLogits(nn.Module):
    """A run's model behind its own normalisation: 0..1 pixels in, logits out.

    Training normalised 0–255 pixels with the run's [NormStats][digitnet.data.NormStats]; baking that
    map into the graph means a browser or another program cannot forget it or use another one.
    """

    def __init__(self, model: nn.Module, stats: NormStats) -> None:
        super().__init__()
        self.model = model
        self.stats = stats

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        # (N, 1, 28, 28) in 0..1 -> the 0–255 scale the stats were computed on -> (N, 10)
        result: torch.Tensor = self.model(self.stats.apply(pixels * 255.0))
        return result


@dataclass(frozen=True)
class ExportResult:
    """What was written and how closely onnxruntime matched PyTorch on the check digits."""

    path: Path
    size_bytes: int
    max_abs_diff: float
    digits_checked: int
    model: str  # the run's model, as its config names it (e.g. "cnn")


def _require_onnx() -> tuple[Any, Any]:
    try:
        import onnx
        import onnxruntime
    except ImportError:
        raise DigitnetError(MISSING_EXTRA) from None
    return onnx, onnxruntime


def require_onnx(command: str) -> None:
    """Fail now, in one line, where ``command`` would export a model later without the onnx extra: a
    report should not train for minutes and then stop at the Playground's models. Only looked up, not
    imported: importing onnxruntime costs time and writes its device id under the user's cache folder."""
    from importlib.util import find_spec

    if find_spec("onnx") is None or find_spec("onnxruntime") is None:
        raise DigitnetError(MISSING_EXTRA.replace("digitnet export", command))


def check_digits(count: int = CHECK_DIGITS) -> np.ndarray:
    """(count, 1, 28, 28) float32 pixels in 0..1: real digits from the bundled sample, always at hand."""
    from digitnet.data.sources import load_sample

    images = load_sample().train.images[:count].numpy()
    return (images.astype(np.float32) / 255.0)[:, None]


def onnx_logits(model_bytes_or_path: bytes | Path, pixels: np.ndarray) -> np.ndarray:
    """(N, 10) logits of an exported model under onnxruntime's CPU provider."""
    _, onnxruntime = _require_onnx()
    source = str(model_bytes_or_path) if isinstance(model_bytes_or_path, Path) else model_bytes_or_path
    session = onnxruntime.InferenceSession(source, providers=["CPUExecutionProvider"])
    (logits,) = session.run([OUTPUT_NAME], {INPUT_NAME: pixels.astype(np.float32)})
    return np.asarray(logits)


def onnx_bytes(run_dir: Path) -> tuple[bytes, PixelsToLogits, str]:
    """The run's model as an ONNX file's bytes (not yet checked), the PyTorch module it came from, and
    the model's name."""
    onnx, _ = _require_onnx()
    checkpoint = load_checkpoint(run_dir)
    wrapped = PixelsToLogits(checkpoint.model, checkpoint.normalization).eval()
    with tempfile.TemporaryDirectory(prefix="digitnet-export-") as scratch, warnings.catch_warnings():
        # The TorchScript-based exporter is deprecated in favour of the dynamo one, which needs onnxscript
        # and torch.export; for these feed-forward models the classic one is exact, offline and light.
        warnings.simplefilter("ignore")
        path = Path(scratch) / "model.onnx"
        torch.onnx.export(
            wrapped,
            (torch.zeros(1, 1, 28, 28),),
            path,
            dynamo=False,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            opset_version=OPSET,
        )
        proto = onnx.load(str(path))
    proto.doc_string = (
        f"digitnet {checkpoint.config.model.name}: input '{INPUT_NAME}' (N, 1, 28, 28) float pixels in 0..1, "
        f"white ink on black; output '{OUTPUT_NAME}' (N, 10); normalisation included"
    )
    entry = proto.metadata_props.add()
    entry.key, entry.value = PRODUCER_KEY, run_dir.resolve().name
    onnx.checker.check_model(proto)
    return proto.SerializeToString(), wrapped, checkpoint.config.model.name


def _refuse_foreign(out: Path, named: str) -> None:
    """``--out`` replaces only an ONNX file digitnet exported, never a student's other files. ``named`` is
    how the error names the path: ``--out notes.txt``, as every other refused output is named, or the
    default file's bare path."""
    if out.is_dir():
        raise DigitnetError(f"{named}: a directory is there; give the path of the .onnx file to write")
    if not out.exists():
        return
    onnx, _ = _require_onnx()
    try:
        keys = {entry.key for entry in onnx.load(str(out), load_external_data=False).metadata_props}
    except Exception:
        keys = set()
    if PRODUCER_KEY not in keys:
        raise DigitnetError(
            f"{named}: a file digitnet did not export is there; export replaces only its own .onnx, "
            "so choose another path"
        )


def export_onnx(run_dir: Path, out: Path | None = None, pixels: np.ndarray | None = None) -> ExportResult:
    """Write ``run_dir``'s model as ONNX (default ``RUN_DIR/model.onnx``), checked against PyTorch.

    ``pixels`` are the check digits (default [check_digits][digitnet.export.check_digits]). If
    onnxruntime's logits differ from PyTorch's by more than [TOLERANCE][digitnet.export.TOLERANCE] the
    export fails and nothing is written.
    """
    target = out if out is not None else run_dir / "model.onnx"
    _refuse_foreign(target, f"--out {out}" if out is not None else str(target))
    data, wrapped, model_name = onnx_bytes(run_dir)
    pixels = check_digits() if pixels is None else pixels
    with torch.inference_mode():
        expected = wrapped(torch.from_numpy(pixels)).numpy()
    got = onnx_logits(data, pixels)
    difference = float(np.abs(got - expected).max())
    if not difference <= TOLERANCE:  # also catches NaN
        raise DigitnetError(
            f"{run_dir}: onnxruntime's logits differ from PyTorch's by {difference:.2g} "
            f"(more than {TOLERANCE:g}); nothing written"
        )
    try:
        atomic_write_bytes(target, data)
    except OSError as error:
        raise DigitnetError(f"{target}: cannot write ({error.strerror or error})") from None
    return ExportResult(target, len(data), difference, len(pixels), model_name)


def onnx_test_accuracy(model: Path, run_dir: Path, batch_size: int = 1000) -> tuple[float, int]:
    """Accuracy (0..1) of an exported model on its run's own test set, and how many digits that is.

    The digits go in as a browser would give them, pixels / 255 and nothing else: the check that the
    normalisation really is inside the graph.
    """
    from digitnet.data import load_split, saved_run_data

    test = load_split(saved_run_data(load_checkpoint(run_dir).config.data)).test
    images = test.images.numpy()
    labels = test.labels.numpy()
    correct = 0
    for start in range(0, len(labels), batch_size):
        pixels = images[start : start + batch_size, None].astype(np.float32) / 255.0
        correct += int(
            (onnx_logits(model, pixels).argmax(axis=1) == labels[start : start + batch_size]).sum()
        )
    return correct / len(labels), len(labels)


__all__ = [
    "INPUT_NAME",
    "OPSET",
    "OUTPUT_NAME",
    "TOLERANCE",
    "ExportResult",
    "PixelsToLogits",
    "check_digits",
    "export_onnx",
    "onnx_bytes",
    "onnx_logits",
    "onnx_test_accuracy",
]
